from pipeline.cli import app

app(prog_name="m3-profiles")
