"""What a person at the terminal sees (issue 14, "a terminal people trust"): the help, the
progress of the long steps on a terminal and in a log, and Ctrl-C in the commands that are
not a run. Real processes where the terminal or a signal matters."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import snapshot
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.registry import stage_models
from pipeline.vocabulary import TABLES

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
REF_OPT = ["--reference-date", "2024-06-30"]
STAMP = re.compile(r"^\d\d:\d\d:\d\d ", re.M)


def export(folder: Path, rows: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "citizens.csv").write_text(
        "citizen_id;birth_year\n" + "".join(f"C{i};1980\n" for i in range(rows)), "utf-8"
    )
    (folder / "episodes.csv").write_text(
        "citizen_id;start_date;benefit;match_group\n"
        + "".join(f"C{i};01-01-2020;kontanthjaelp;3\n" for i in range(rows)),
        "utf-8",
    )
    return folder


# --- help ------------------------------------------------------------------------------

LISTED = {
    "run": ["--input", "--out", "--config", "--rules", "--reference-date", "--min-cell", "--lang",
            "--quiet", "--worklist"],
    "ingest": ["--input", "--out", "--config", "--reference-date"],
    "segment": ["--out", "--config", "--rules", "--reference-date"],
    "report": ["--out", "--config", "--rules", "--reference-date", "--min-cell", "--lang",
               "--worklist"],
    "validate": ["--input", "--config", "--rules", "--reference-date", "--worklist"],
    "demo": ["--out", "--citizens", "--seed", "--scenario", "--reference-date",
             "--unreviewed-share", "--dirty", "--series", "--every"],
    "history": ["--out", "--config"],
    "movement": ["--out"],
    "explain": ["--out", "--config", "--lang"],
}  # fmt: skip


def option_rows(command: str) -> dict[str, str]:
    """The help's option rows, by option, a row's wrapped lines joined."""
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    rows: dict[str, str] = {}
    last = None
    for line in result.output.splitlines():
        m = re.match(r"│\s*\*?\s*(--[a-z-]+)(.*)│$", line)
        if m:
            last = m.group(1)
            rows[last] = " ".join(m.group(2).split())
        elif last and (more := re.match(r"│(.*)│$", line)):
            rows[last] += " " + " ".join(more.group(1).split())
    return {k: v.strip() for k, v in rows.items()}


@pytest.mark.parametrize("command", sorted(LISTED))
def test_the_help_lists_what_a_command_uses_with_its_default(command):
    # issue 14: defaults not shown, flags shown as `<bool>`, stage commands listing options
    # they ignore
    rows = option_rows(command)
    assert list(rows) == [*LISTED[command], "--help"]
    for option, row in rows.items():
        assert "<bool>" not in row, row
        if option != "--help":
            assert "[default: " in row or row.endswith("[required]"), row


def test_every_command_is_in_the_help_test():
    assert sorted(LISTED) == sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_the_defaults_the_help_shows():
    rows = option_rows("run") | {f"demo {k}": v for k, v in option_rows("demo").items()}
    expected = {
        "--config": "[default: (none: every key at its default)]",
        "--rules": "[default: (the shipped rules)]",
        "--reference-date": "YYYY-MM-DD Day the analysis describes. "
                            "[default: (config reference_date, else today)]",
        "--min-cell": "[default: (config min_cell, else 5)]",
        "--lang": "<da|en> Language of labels. [default: (config lang, else da)]",
        "demo --reference-date": "[default: (today)]",
        "demo --citizens": "[default: 10000]",
        "demo --dirty": "--no-dirty Add a few bad rows of each kind in the data contract."
                        " [default: no-dirty]",
    }  # fmt: skip
    for option, text in expected.items():
        assert rows[option].endswith(text), (option, rows[option])


def test_a_flag_takes_no_value(tmp_path):
    runner = CliRunner()
    refused = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--dirty", "true"])
    assert refused.exit_code == 2
    for flag in ("--dirty", "--no-dirty"):
        done = runner.invoke(app, ["demo", "--out", str(tmp_path / flag), "--citizens", "20",
                                   "--seed", "1", *REF_OPT, flag])  # fmt: skip
        assert done.exit_code == 0, done.output
    dirty = (tmp_path / "--dirty" / "citizens.csv").read_text("cp1252").count("\n")
    clean = (tmp_path / "--no-dirty" / "citizens.csv").read_text("cp1252").count("\n")
    assert dirty > clean == 21


def test_a_stage_still_takes_the_options_it_does_not_list(tmp_path):
    # the interface: every stage takes run's options, so a script may give them all alike
    out = tmp_path / "out"
    args = ["--out", str(out), *REF_OPT, "--min-cell", "3", "--lang", "en"]
    ingest = CliRunner().invoke(app, ["ingest", "--input", str(export(tmp_path / "in")), *args,
                                      "--rules", str(ROOT / "pipeline" / "rules.toml")])
    assert ingest.exit_code == 0, ingest.output
    segment = CliRunner().invoke(app, ["segment", *args])
    assert segment.exit_code == 0, segment.output


# --- progress ----------------------------------------------------------------------------


def models(stage: str) -> int:
    return len(stage_models(stage))


def test_progress_off_a_terminal_is_plain_log_lines(tmp_path):
    """stderr to a pipe (a log, cron): one line per step and per finished count, exactly."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--input", str(export(tmp_path / "in")),
         "--out", str(tmp_path / "out"), *REF_OPT],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert STAMP.findall(proc.stderr) and not STAMP.sub("", proc.stderr).count("\x1b")
    lines = STAMP.sub("", proc.stderr).splitlines()
    # the two files are read at once: which one is done first is the machine's business
    assert sorted(lines[2:4]) == ["citizens.csv: 30 rows read", "episodes.csv: 30 rows read"]
    assert lines[:2] + lines[4:] == [
        "stage ingest",
        "reading input files into the raw layer",
        "validating into staging and quarantine",
        f"ingest: {models('ingest')} models built",
        "stage segment",
        "segmenting: courses, time in M3, profiles",
        f"segment: {models('segment')} models built",
        "writing citizens.parquet",
        "stage report",
        "report: counting the tables",
        "report: suppressing small counts (min_cell 5)",
        f"report: {models('report')} models built",
        "report: checking the release against the releases published before",
        "report: writing tables, spreadsheet, charts and report.html",
        f"report: {len(TABLES)} charts drawn",
        "report: writing the internal worklist (worklist.xlsx, worklist.csv)",
    ]


def on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run `m3-profiles <args>` with its stderr on a pseudo-terminal (rich sees a terminal,
    as on a person's screen); its exit code and what the terminal received, escape codes
    removed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args], stdout=subprocess.DEVNULL, stderr=slave,
        env={**ENV, "TERM": "xterm-256color", "COLUMNS": "120"},
    )  # fmt: skip
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    code = proc.wait(timeout=300)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", received.decode("utf-8"))
    return code, text


def test_progress_on_a_terminal_is_a_bar_per_count(tmp_path):
    code, text = on_a_terminal(
        ["run", "--input", str(export(tmp_path / "in")), "--out", str(tmp_path / "out"),
         *REF_OPT]
    )  # fmt: skip
    assert code == 0, text
    # a bar for each file's rows and each stage's models, drawn full before it goes
    bar = r"[━╸╺]+"  # drawn, half-drawn and to-be-drawn cells
    for task, figures in [("citizens.csv", "30/30 rows read"),
                          ("episodes.csv", "30/30 rows read"),
                          ("ingest", f"{models('ingest')}/{models('ingest')} models built"),
                          ("segment", f"{models('segment')}/{models('segment')} models built"),
                          ("report", f"{models('report')}/{models('report')} models built"),
                          ("report", f"{len(TABLES)}/{len(TABLES)} charts drawn")]:
        assert re.search(rf"{task} +{bar} {figures} \d:\d\d:\d\d", text), task
    # a stage's bar part-way: models built so far of all
    assert re.search(rf"segment +{bar} 1/{models('segment')} models built", text)
    # the steps and finished counts stay on screen as lines, as off a terminal
    for line in ("stage ingest", "citizens.csv: 30 rows read",
                 f"segment: {models('segment')} models built"):
        assert re.search(rf"\d\d:\d\d:\d\d {line}\r?\n", text), line


# --- Ctrl-C ------------------------------------------------------------------------------


def interrupted(args: list[str], when: str) -> subprocess.CompletedProcess:
    """Start `m3-profiles <args>`, send it SIGINT (as Ctrl-C does) once its stderr says
    `when`, and return what it did. The work after `when` takes seconds: the signal lands
    while the command works."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if when in line:
            proc.send_signal(signal.SIGINT)
            break
    stdout, rest = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "".join(seen) + rest)


def test_ctrl_c_in_validate_is_one_line_and_130(tmp_path):
    big = export(tmp_path / "in", rows=400_000)
    proc = interrupted(["validate", "--input", str(big)], "reading input files")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "error: stopped by SIGINT: the check did not finish (validate writes nothing)"
    )
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr
    assert proc.stdout == ""
    assert sorted(p.name for p in big.iterdir()) == ["citizens.csv", "episodes.csv"]


def test_ctrl_c_in_demo_is_one_line_and_130_and_keeps_the_previous_files(tmp_path):
    out = tmp_path / "demo"
    first = CliRunner().invoke(app, ["demo", "--out", str(out), "--citizens", "50", *REF_OPT])
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    proc = interrupted(["demo", "--out", str(out), "--citizens", "400000", *REF_OPT],
                       "generating 400,000 citizens")  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"error: stopped by SIGINT: no demo files were written; {out} is as it was"
    )
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr
    assert proc.stdout == ""
    assert snapshot(out) == before
