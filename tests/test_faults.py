"""Faults with real processes (issue 12): a run stopped at a named point by SIGKILL, SIGTERM
or SIGINT leaves the previous output or the new one, and the next start puts right what it
left; the output folder is the pipeline's own or refused; a full disk, an unreadable file, a
read-only disk and a memory cap give one line and exit 5; the lock names its holder and
refuses a symlink. The helpers and the full sweep (`make faults`) are in `tests/faults.py`;
these are the representative few."""

from __future__ import annotations

import json

import duckdb
import faults
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

REF = faults.REF.isoformat()


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> faults.Setup:
    """A previous output of `ingest` on 150 demo citizens."""
    return faults.make_setup(tmp_path_factory.mktemp("previous"), "ingest")


# --- stopped at a point: the previous output or the new one, and the next run cleans up ---


@pytest.mark.parametrize(
    ("point", "sig", "after"),
    [
        # Ctrl-C while DuckDB validates the export: stopped cleanly, exit 130
        ("ingest-query", "INT", "previous"),
        # the OOM killer kills the run: its supervisor says so and cleans up, exit 137
        ("ingest-read", "KILL", "previous"),
        # killed with the supervisor (kill -9 of the job) with a complete work folder: the
        # next start removes it
        ("swap-synced", "KILL@group", "previous"),
        # ... between the two renames of the fallback swap: the next start restores --out
        ("swap-renamed-away", "KILL@group", "missing"),
        # the run killed once swapped in: the new output stays, the previous one is removed
        ("swap-exchanged", "KILL", "new"),
    ],
)
def test_a_stopped_run_leaves_a_whole_output_and_the_next_run_cleans_up(
    previous, tmp_path, point, sig, after
):
    o = faults.kill_case(previous, tmp_path / "case", point, sig)
    assert o.problems == []
    assert (o.exit_code, o.after) == (faults.EXIT[sig], after)
    assert o.after_probe == ("previous" if after == "missing" else after)
    # the next start said what it put right (after a supervised kill, nothing was left)
    said = [line.split(" ")[0] for line in o.recovered]
    if sig == "KILL@group":
        assert said == (["restored", "removed"] if after == "missing" else ["removed"])
        assert o.recovered[-1].startswith("removed .out.tmp-")
        assert o.recovered[-1].endswith(", left by an interrupted run")
    else:
        assert said == []
    if after == "missing":
        assert o.recovered[0].startswith(
            f"restored the previous output {tmp_path / 'case' / 'out'} from .out.old-"
        )


def test_a_library_abort_is_reported_by_the_supervisor(previous, tmp_path):
    # under a memory cap Arrow aborts the process when malloc fails (SIGABRT): one line,
    # exit 134, the work folder gone, the log kept
    out = tmp_path / "out"
    faults.shutil.copytree(previous.out, out)
    before = faults.snapshot(out)
    done = faults.cli(*previous.args(out), env={"M3_FAULT_AT": "ingest-read:ABRT"})
    assert done.returncode == 134
    assert faults.error_lines(done.stderr) == [
        "error: the run was killed by SIGABRT (a library aborted, most often as memory ran "
        "out: see the lines above): nothing was published, the previous output is untouched; "
        f"the run's log is in {out}.failed/run.log"
    ]
    assert faults.snapshot(out) == before and faults.strays(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "out.failed").iterdir()) == ["run.json", "run.log"]
    assert "was killed by SIGABRT: nothing was published" in (
        tmp_path / "out.failed" / "run.log").read_text("utf-8")


def test_sigterm_and_sigint_exit_codes_and_log_line(previous, tmp_path):
    out = tmp_path / "out"
    for sig, code in (("TERM", 143), ("INT", 130)):
        done = faults.cli(*previous.args(out), env={"M3_FAULT_AT": f"stage-ingest:{sig}"})
        assert done.returncode == code
        assert faults.error_lines(done.stderr) == [
            f"error: stopped by SIG{sig}: nothing was published, the previous output is "
            f"untouched; the run's log is in {out}.failed/run.log"
        ]
        log = (tmp_path / "out.failed" / "run.log").read_text("utf-8")
        assert f"stopped by SIG{sig} during stage ingest: nothing was published" in log
        assert not out.exists() and faults.strays(tmp_path) == []


# --- the output folder is the pipeline's own, or refused (exit 2, before anything is read) --


def _refused(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [*args, "--reference-date", REF])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_a_folder_that_is_not_an_output_is_refused(previous, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export PATH\n")
    (home / "thesis.txt").write_text("three years of work\n")
    before = faults.snapshot(home)
    _refused(["run", "--input", str(previous.input_dir), "--out", str(home)],
             f"--out {home}: is a folder with files in it that is not an m3-profiles output")
    assert faults.snapshot(home) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no lock, no work folder


def test_the_input_folder_its_parent_and_its_child_are_refused(previous, tmp_path):
    data = tmp_path / "data"
    raw = faults.export(data / "raw", 30)
    before = faults.snapshot(data)
    _refused(["run", "--input", str(raw), "--out", str(raw)],
             f"--out {raw}: is the input folder")
    _refused(["run", "--input", str(raw), "--out", str(data)],
             f"--out {data}: contains the input folder {raw}")
    _refused(["ingest", "--input", str(raw), "--out", str(raw / "out")],
             f"--out {raw / 'out'}: lies inside the input folder {raw}")
    assert faults.snapshot(data) == before
    assert sorted(p.name for p in data.iterdir()) == ["raw"]


def test_a_file_as_out_is_refused(previous, tmp_path):
    (tmp_path / "out").write_text("not a folder\n")
    _refused(["ingest", "--input", str(previous.input_dir), "--out", str(tmp_path / "out")],
             "is a file, not a folder")
    assert (tmp_path / "out").read_text() == "not a folder\n"


@pytest.mark.parametrize("kind", ["text", "duckdb"])
def test_a_database_that_is_not_a_warehouse_is_refused(previous, tmp_path, kind):
    # a config `database` outside the output folder naming another program's file: neither
    # replaced nor given a lock file beside it
    other = tmp_path / "elsewhere" / ("notes.txt" if kind == "text" else "app.duckdb")
    other.parent.mkdir()
    if kind == "text":
        other.write_text("my notes\n")
    else:
        con = duckdb.connect(str(other))
        con.execute("create table accounts as select 1 as id")
        con.close()
    before = faults.snapshot(other.parent)
    config = tmp_path / "c.toml"
    config.write_text(f'database = "{other}"\n')
    _refused(["ingest", "--input", str(previous.input_dir), "--out", str(tmp_path / "out"),
              "--config", str(config)],
             f"database {other}: exists and is not an m3-profiles warehouse")
    assert faults.snapshot(other.parent) == before
    assert sorted(p.name for p in other.parent.iterdir()) == [other.name]
    assert not (tmp_path / "out").exists()


def test_an_output_from_before_the_marker_is_adopted(previous, tmp_path):
    # an output written before the marker existed (its run.json names a run) is replaced
    out = tmp_path / "out"
    faults.shutil.copytree(previous.out, out)
    (out / ".m3-profiles-output").unlink()
    result = CliRunner().invoke(
        app, ["ingest", "--input", str(previous.input_dir), "--out", str(out),
              "--reference-date", REF])
    assert result.exit_code == 0, result.output
    assert json.loads((out / ".m3-profiles-output").read_text())["run_id"] == faults.run_id(out)


# --- the lock ------------------------------------------------------------------------------


def test_a_symlink_at_the_lock_path_is_refused(previous, tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate\n")
    (tmp_path / ".out.lock").symlink_to(victim)
    _refused(["ingest", "--input", str(previous.input_dir), "--out", str(tmp_path / "out")],
             f"{tmp_path / '.out.lock'}: the lock path is a symbolic link")
    assert victim.read_text() == "do not truncate\n"
    assert not (tmp_path / "out").exists()


def test_the_lock_names_its_holder(tmp_path):
    o = faults.lock_held(tmp_path)
    assert o.problems == []
    assert o.exit_code == 4


# --- the environment: one line, exit 5, the previous output untouched ---------------------


def test_an_unreadable_input_file(tmp_path):
    if faults.is_root() and not faults.shutil.which("setpriv"):
        pytest.skip("root reads a mode-000 file; dropping CAP_DAC_OVERRIDE needs setpriv")
    o = faults.unreadable_input(tmp_path)
    assert o.problems == []
    assert o.message.startswith("error: ") and "permission denied; give the user" in o.message


@pytest.mark.skipif(not faults.is_root(), reason="mounting a tmpfs needs root (CI runs as root)")
def test_a_full_disk(tmp_path):
    o = faults.disk_full(tmp_path)
    assert o.problems == []
    assert "no space left on the device; free space there" in o.message


@pytest.mark.skipif(not faults.is_root(), reason="mounting a tmpfs needs root (CI runs as root)")
def test_a_read_only_output_disk(tmp_path):
    o = faults.read_only_output(tmp_path)
    assert o.problems == []


@pytest.mark.skipif(not faults.shutil.which("prlimit"), reason="needs prlimit (util-linux)")
def test_a_memory_cap_fails_with_a_message_not_a_kill(tmp_path):
    # DuckDB alone reserves ~1 GB of address space: under this cap no run can finish; it
    # must say so (exit 5 from the run, or 127 / 134 from its supervisor: tests/faults.py)
    o = faults.memory_cap(tmp_path)
    assert o.problems == []
    assert o.exit_code in (5, 127, 134)


def test_the_fault_hook_refuses_an_unknown_point(previous, tmp_path):
    done = faults.cli(*previous.args(tmp_path / "out"), env={"M3_FAULT_AT": "nowhere:KILL"})
    assert done.returncode == 1 and "M3_FAULT_AT=nowhere:KILL: unknown point" in done.stderr
