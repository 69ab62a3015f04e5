"""Output folder semantics: atomic replacement, the failed-run folder, the run lock, the
manifest, and the CLI's exit codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import snapshot
from filelock import FileLock
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Config
from pipeline.errors import InputError, LockedError, RejectedError
from pipeline.runner import run_stages

CFG = Config(reference_date=__import__("datetime").date(2024, 6, 30))
GOOD_C = "citizen_id;birth_year\n" + "".join(f"C{i};1980\n" for i in range(30))
GOOD_E = "citizen_id;start_date;benefit;match_group\n" + "".join(
    f"C{i};01-01-2020;kontanthjaelp;3\n" for i in range(30)
)


def export(folder: Path, citizens: str = GOOD_C, episodes: str = GOOD_E) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "citizens.csv").write_text(citizens, encoding="utf-8")
    (folder / "episodes.csv").write_text(episodes, encoding="utf-8")
    return folder


def test_ingest_writes_warehouse_quarantine_log_and_manifest(tmp_path):
    out = tmp_path / "out"
    st = run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "in"))
    assert sorted(p.name for p in out.iterdir()) == [
        ".m3-profiles-output",  # issue 12: the folder is marked as an m3-profiles output
        "quarantine.csv",
        "quarantine.xlsx",
        "run.json",
        "run.log",
        "warehouse.duckdb",
    ]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["outcome"] == "success"
    assert manifest["run_id"] == st.run_id
    assert manifest["rows"] == {
        "citizens": {"read": 30, "loaded": 30, "quarantined": 0, "cpr_masked": 0},
        "episodes": {"read": 30, "loaded": 30, "quarantined": 0, "cpr_masked": 0},
    }
    citizens_sha = hashlib.sha256(GOOD_C.encode()).hexdigest()
    assert [f["sha256"] for f in manifest["input_files"]][0] == citizens_sha
    assert manifest["reference_date"] == "2024-06-30"
    assert (out / "quarantine.csv").read_text() == "table_name,file,line,column_name,value,reason\n"
    # nothing of the run is left beside the output but the lock file
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "in", "out"]


def test_rejected_run_keeps_previous_output_byte_identical(tmp_path):
    out = tmp_path / "out"
    run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "good"))
    before = snapshot(out)
    bad_c = GOOD_C + "".join(f"X{i};19x0\n" for i in range(5))
    with pytest.raises(RejectedError):
        run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "bad", bad_c))
    assert snapshot(out) == before
    failed = tmp_path / "out.failed"
    q = (failed / "quarantine.csv").read_text().splitlines()
    assert q[0] == "table_name,file,line,column_name,value,reason"
    assert q[1:] == [
        f"citizens,citizens.csv,{32 + i},birth_year,19x0,unparseable_integer" for i in range(5)
    ]
    assert json.loads((failed / "run.json").read_text())["outcome"] == "failed"


def test_file_level_error_keeps_previous_output_and_replaces_failed_folder(tmp_path):
    out = tmp_path / "out"
    run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "good"))
    before = snapshot(out)
    for attempt in range(2):
        with pytest.raises(InputError, match="missing required column 'birth_year'"):
            run_stages(
                ["ingest"],
                out,
                CFG,
                input_dir=export(tmp_path / f"bad{attempt}", "citizen_id\nC1\n"),
            )
    assert snapshot(out) == before
    manifest = json.loads((tmp_path / "out.failed" / "run.json").read_text())
    assert manifest["outcome"] == "failed"
    assert "missing required column" in manifest["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.lock",
        "bad0",
        "bad1",
        "good",
        "out",
        "out.failed",
    ]


def test_run_history_is_carried_into_the_new_warehouse(tmp_path):
    import duckdb

    out = tmp_path / "out"
    first = run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "in"))
    second = run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "in"))
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    assert con.execute("select run_id, outcome from meta.runs order by started").fetchall() == [
        (first.run_id, "success"),
        (second.run_id, "success"),
    ]


def test_lock_held_means_locked(tmp_path):
    out = tmp_path / "out"
    with FileLock(str(tmp_path / ".out.lock")):
        with pytest.raises(LockedError):
            run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "in"))
        result = CliRunner().invoke(
            app, ["ingest", "--input", str(tmp_path / "in"), "--out", str(out)]
        )
    assert result.exit_code == 4
    assert not out.exists()


def test_cli_exit_codes(tmp_path):
    runner = CliRunner()
    good = export(tmp_path / "good")
    ok = runner.invoke(
        app,
        [
            "ingest",
            "--input",
            str(good),
            "--out",
            str(tmp_path / "o"),
            "--reference-date",
            "2024-06-30",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "citizens.csv" in ok.output
    missing = runner.invoke(
        app, ["ingest", "--input", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]
    )
    assert missing.exit_code == 3
    usage = runner.invoke(app, ["ingest", "--out", str(tmp_path / "o")])
    assert usage.exit_code == 2
    bad_date = runner.invoke(
        app,
        [
            "ingest",
            "--input",
            str(good),
            "--out",
            str(tmp_path / "o"),
            "--reference-date",
            "30-06-2024",
        ],
    )
    assert bad_date.exit_code == 2
    cfg = tmp_path / "c.toml"
    cfg.write_text("min_cel = 3\n")
    bad_cfg = runner.invoke(
        app, ["ingest", "--input", str(good), "--out", str(tmp_path / "o"), "--config", str(cfg)]
    )
    assert bad_cfg.exit_code == 2


def test_validate_writes_nothing(tmp_path):
    folder = export(tmp_path / "in", GOOD_C + "Z1;19x0\n")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(app, ["validate", "--input", str(folder)])
    assert result.exit_code == 0, result.output
    assert "unparseable_integer" in result.output
    assert snapshot(tmp_path) == before
    refused = CliRunner().invoke(
        app, ["validate", "--input", str(export(tmp_path / "in2", "citizen_id\nC1\n"))]
    )
    assert refused.exit_code == 3


def test_every_command_is_documented():
    result = CliRunner().invoke(app, ["--help"])
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    for name in commands:
        assert name in result.output
        sub = CliRunner().invoke(app, [name, "--help"])
        assert "Example: m3-profiles " + name in sub.output


def test_database_outside_the_output_folder_is_replaced_atomically_and_locked(tmp_path):
    import dataclasses

    import duckdb

    db = tmp_path / "wh" / "m3.duckdb"
    cfg = dataclasses.replace(CFG, database=str(db))
    out = tmp_path / "out"
    run_stages(["ingest", "segment"], out, cfg, input_dir=export(tmp_path / "good"))
    assert not (out / "warehouse.duckdb").exists()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from marts.citizens").fetchone()[0] == 30
    con.close()
    before_db, before_out = hashlib.sha256(db.read_bytes()).hexdigest(), snapshot(out)

    bad_c = GOOD_C + "".join(f"X{i};19x0\n" for i in range(5))
    with pytest.raises(RejectedError):
        run_stages(["ingest"], out, cfg, input_dir=export(tmp_path / "bad", bad_c))
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before_db
    assert snapshot(out) == before_out
    assert (tmp_path / "out.failed" / "warehouse.duckdb").exists()
    assert sorted(p.name for p in db.parent.iterdir()) == [".m3.duckdb.lock", "m3.duckdb"]

    # a stage alone reads and replaces the outside warehouse
    run_stages(["segment"], out, cfg)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from meta.runs where outcome = 'success'").fetchone() == (
        2,
    )
    con.close()

    with FileLock(str(db.with_name(".m3.duckdb.lock"))):
        with pytest.raises(LockedError, match="m3.duckdb.lock"):
            run_stages(["segment"], tmp_path / "other-out", cfg)


def test_stages_one_at_a_time_from_the_cli(tmp_path):
    runner = CliRunner()
    good, out = export(tmp_path / "good"), str(tmp_path / "o")
    ref = ["--reference-date", "2024-06-30"]
    assert runner.invoke(app, ["ingest", "--input", str(good), "--out", out, *ref]).exit_code == 0
    seg = runner.invoke(app, ["segment", "--out", out, *ref])
    assert seg.exit_code == 0, seg.output
    assert not (tmp_path / "o" / "publish" / "report.html").exists()
    rep = runner.invoke(app, ["report", "--out", out, "--lang", "en", "--min-cell", "3", *ref])
    assert rep.exit_code == 0, rep.output
    # the terminal prints the release's numbers only (min_cell 3: the 30 are shown)
    assert "Report: 8 tables, " in rep.output
    assert "Citizens with a profile, as published (c = hidden): 30: " in rep.output
    assert '<html lang="en">' in (tmp_path / "o" / "publish" / "report.html").read_text()
    manifest = json.loads((tmp_path / "o" / "run.json").read_text())
    assert manifest["stages"] == ["report"]
    # the page names the run that made it
    page = (tmp_path / "o" / "publish" / "report.html").read_text()
    assert f"<dd>{manifest['run_id']}</dd>" in page
    assert manifest["report"]["min_cell"] == 3 and manifest["report"]["lang"] == "en"
    # report before segment: the warehouse has no marts, input rejected
    assert runner.invoke(app, ["ingest", "--input", str(good), "--out", out]).exit_code == 0
    assert runner.invoke(app, ["report", "--out", out, *ref]).exit_code == 3


def test_stages_one_at_a_time_with_other_rules_as_the_readme_shows(tmp_path):
    # README: `segment --out DIR` (e.g. with other --rules), then `report --out DIR`, which
    # labels the profiles from what segment stored: no --rules needed again
    runner = CliRunner()
    good, out = export(tmp_path / "good"), str(tmp_path / "o")
    ref = ["--reference-date", "2024-06-30"]
    shipped = (Path(__file__).parent.parent / "pipeline" / "rules.toml").read_text("utf-8")
    mine = tmp_path / "my-rules.toml"
    mine.write_text(
        shipped.replace('version = "faxe-2013.1"', 'version = "consultant-2026.1"').replace(
            'label_da = "Psykisk syge misbrugere"', 'label_da = "Dobbeltdiagnose"'
        ),
        encoding="utf-8",
    )
    assert runner.invoke(app, ["ingest", "--input", str(good), "--out", out, *ref]).exit_code == 0
    seg = runner.invoke(app, ["segment", "--out", out, "--rules", str(mine), *ref])
    assert seg.exit_code == 0, seg.output
    rep = runner.invoke(app, ["report", "--out", out, "--min-cell", "0", *ref])
    assert rep.exit_code == 0, rep.output
    page = (tmp_path / "o" / "publish" / "report.html").read_text("utf-8")
    assert "consultant-2026.1 (my-rules.toml)" in page  # a file name, never a path
    assert "Dobbeltdiagnose" in page and "Psykisk syge misbrugere" not in page
    # a rules file named for the report must be the one segment used
    other = runner.invoke(app, ["report", "--out", out, "--rules", "pipeline/rules.toml", *ref])
    assert other.exit_code == 2
    assert "segmented with rules 'consultant-2026.1'" in other.output


def test_report_alone_writes_the_same_provenance_as_run(tmp_path):
    good, out = export(tmp_path / "good"), tmp_path / "o"
    run_stages(["ingest", "segment"], out, CFG, input_dir=good)
    run_stages(["report"], out, CFG)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["stages"] == ["report"]
    assert [(f["table"], f["sha256"]) for f in manifest["input_files"]] == [
        ("citizens", hashlib.sha256(GOOD_C.encode()).hexdigest()),
        ("episodes", hashlib.sha256(GOOD_E.encode()).hexdigest()),
    ]
    assert manifest["rows"] == {
        "citizens": {"read": 30, "loaded": 30, "quarantined": 0, "cpr_masked": 0},
        "episodes": {"read": 30, "loaded": 30, "quarantined": 0, "cpr_masked": 0},
    }
    assert manifest["rules"]["version"] == "faxe-2013.1"
    page = (out / "publish" / "report.html").read_text("utf-8")
    assert f"citizens.csv, SHA-256 {hashlib.sha256(GOOD_C.encode()).hexdigest()}" in page


@pytest.mark.parametrize("name", ["o'brien", "æøå out", "100% done"])
def test_paths_with_quotes_spaces_and_danish_letters_work(tmp_path, name):
    # nothing pastes a path into SQL text: quarantine.csv, citizens.parquet, the carried run
    # history and an outside warehouse all take their paths as parameters
    folder = tmp_path / name
    good = export(folder / "input")
    bad_c = GOOD_C + "X1;19x0\n"  # one quarantined row: quarantine.csv has a line
    out = folder / "out"
    cfg = Config(reference_date=CFG.reference_date, database=str(folder / "db" / "w.duckdb"))
    run_stages(["ingest", "segment", "report"], out, cfg, input_dir=good)
    export(good, citizens=bad_c)
    st = run_stages(["ingest", "segment", "report"], out, cfg, input_dir=good)
    assert (out / "quarantine.csv").read_text().splitlines()[1].startswith("citizens,")
    assert (out / "citizens.parquet").is_file() and (out / "publish" / "report.html").is_file()
    import duckdb

    con = duckdb.connect(str(folder / "db" / "w.duckdb"), read_only=True)
    runs = con.execute("select run_id from meta.runs order by started").fetchall()
    con.close()
    assert len(runs) == 2 and runs[-1][0] == st.run_id


def test_leftovers_of_an_interrupted_run_from_before_the_marker_are_put_right(tmp_path):
    # issue 12: today's two-rename swap, killed between its renames, left no `out` and
    # yesterday's output only in `.out.old-<8 hex>`; killed runs left `.out.tmp-<run id>`
    # with a whole warehouse. The next start restores the one, removes the other, says so,
    # and leaves alone a folder with the pipeline's name holding files a run never writes.
    import shutil

    out = tmp_path / "out"
    run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "good"))
    (out / ".m3-profiles-output").unlink()  # as an output of the version before the marker
    before = snapshot(out)
    out.rename(tmp_path / ".out.old-0a1b2c3d")
    work = tmp_path / ".out.tmp-20261201T020000-0a1b2c3d"
    work.mkdir()
    shutil.copyfile(tmp_path / ".out.old-0a1b2c3d" / "warehouse.duckdb", work / "warehouse.duckdb")
    (work / "run.log").write_text("2026-12-01 02:00:00,000 INFO stage ingest\n")
    foreign = tmp_path / ".out.tmp-20261201T030000-0a1b2c3d"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    steps: list[str] = []
    with pytest.raises(InputError, match="missing required column 'birth_year'"):
        run_stages(["ingest"], out, CFG, input_dir=export(tmp_path / "bad", "citizen_id\nC1\n"),
                   step=steps.append)
    assert snapshot(out) == before
    said = [
        f"restored the previous output {out} from .out.old-0a1b2c3d, where a run was stopped"
        " in the middle of its swap",
        f"removed {work.name}, left by an interrupted run",
        f"left {foreign.name} alone: it holds files a run does not write",
    ]
    assert steps[:3] == said
    log = (tmp_path / "out.failed" / "run.log").read_text("utf-8")
    assert all(line in log for line in said)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.lock", foreign.name, "bad", "good", "out", "out.failed"]
    assert (foreign / "holiday.jpg").read_bytes() == b"\xff\xd8"
