"""What an operator watches a nightly run with (issue 16, item 4): the metrics file, the
dead man's switch, JSON log lines, --quiet, and the deploy units. Real processes: the CLI
runs as its own process, pinging a real HTTP server in this one."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import operations

ROOT = Path(__file__).resolve().parents[1]
CITIZENS = "citizen_id;birth_year\n" + "".join(f"C{i};1980\n" for i in range(30))
EPISODES = "citizen_id;start_date;benefit;match_group\n" + "".join(
    f"C{i};01-01-2020;kontanthjaelp;3\n" for i in range(30)
)


def export(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "citizens.csv").write_text(CITIZENS, encoding="utf-8")
    (folder / "episodes.csv").write_text(EPISODES, encoding="utf-8")
    return folder


class Pings:
    """A healthchecks-style endpoint on localhost: records (path, body) of every POST."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        pings = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                pings.got.append((self.path, body.decode()))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/ping/0f1e2d3c-uuid"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pings():
    p = Pings()
    yield p
    p.close()


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=300,
    )


def config(tmp_path: Path, **keys: str) -> Path:
    lines = ['reference_date = 2024-06-30'] + [f'{k} = "{v}"' for k, v in keys.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def metrics(path: Path) -> dict[tuple[str, tuple], float]:
    """The metrics file read by Prometheus' own parser: {(name, labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text("utf-8"))
        for s in family.samples
    }


def test_a_nightly_run_pings_writes_metrics_and_json_lines(tmp_path, pings):
    export(tmp_path / "export")
    cfg = config(tmp_path, metrics_file="m3.prom", ping_url=pings.url, log_format="json")
    done = cli("run", "--input", "export", "--out", "out", "--config", str(cfg), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_id = json.loads((tmp_path / "out" / "run.json").read_text())["run_id"]
    assert pings.got == [
        ("/ping/0f1e2d3c-uuid/start", "start"),
        ("/ping/0f1e2d3c-uuid", json.dumps({"run_id": run_id, "exit_code": 0})),
    ]
    m = metrics(tmp_path / "m3.prom")
    assert m[("m3_profiles_last_run_success", (("run_id", run_id),))] == 1
    assert m[("m3_profiles_last_run_exit_code", ())] == 0
    assert m[("m3_profiles_last_success_timestamp_seconds", ())] == m[
        ("m3_profiles_last_run_timestamp_seconds", ())]
    for kind, n in (("read", 30), ("loaded", 30), ("quarantined", 0)):
        assert m[("m3_profiles_rows", (("kind", kind), ("table", "citizens")))] == n
        assert m[("m3_profiles_rows", (("kind", kind), ("table", "episodes")))] == n
    # 30 citizens in M3 on the reference date; without a `reviewed` column all count as
    # reviewed, and the rules give each a profile
    assert m[("m3_profiles_citizens", (("profile_source", "rules"),))] == 30
    assert m[("m3_profiles_citizens", (("profile_source", "unreviewed"),))] == 0
    assert not list(tmp_path.glob(".m3.prom.tmp-*"))  # written atomically, nothing left over
    # one JSON event per line, each with the run id, in run.log and on stderr
    for text in ((tmp_path / "out" / "run.log").read_text(), done.stderr):
        events = [json.loads(line) for line in text.splitlines()]
        assert {e["run_id"] for e in events} == {run_id}
        assert {"stage ingest", "stage segment", "stage report"} <= {e["message"] for e in events}
        assert all(set(e) == {"time", "level", "run_id", "message"} for e in events)
    assert "Output in" in done.stdout  # not quiet: the summary is printed


def test_a_failed_run_pings_its_exit_code_and_keeps_the_last_success(tmp_path, pings):
    export(tmp_path / "export")
    cfg = config(tmp_path, metrics_file="m3.prom", ping_url=pings.url)
    assert cli("run", "--input", "export", "--out", "out", "--config", str(cfg),
               cwd=tmp_path).returncode == 0
    last_success = metrics(tmp_path / "m3.prom")[("m3_profiles_last_success_timestamp_seconds",
                                                   ())]
    (tmp_path / "export" / "citizens.csv").unlink()  # the export is refused: exit 3
    done = cli("run", "--input", "export", "--out", "out", "--config", str(cfg), cwd=tmp_path)
    assert done.returncode == 3
    failed_id = json.loads((tmp_path / "out.failed" / "run.json").read_text())["run_id"]
    assert pings.got[2:] == [
        ("/ping/0f1e2d3c-uuid/start", "start"),
        ("/ping/0f1e2d3c-uuid/3", json.dumps({"run_id": failed_id, "exit_code": 3})),
    ]
    m = metrics(tmp_path / "m3.prom")
    assert m[("m3_profiles_last_run_success", (("run_id", failed_id),))] == 0
    assert m[("m3_profiles_last_run_exit_code", ())] == 3
    assert m[("m3_profiles_last_success_timestamp_seconds", ())] == last_success


def test_a_run_killed_by_the_kernel_is_reported_by_its_supervisor(tmp_path, pings):
    """SIGKILL (the out-of-memory killer) leaves the run no time to say anything: the
    supervising process pings 137 and writes the metrics."""
    export(tmp_path / "export")
    cfg = config(tmp_path, metrics_file="m3.prom", ping_url=pings.url)
    done = cli("run", "--input", "export", "--out", "out", "--config", str(cfg), cwd=tmp_path,
               env={"M3_FAULT_AT": "stage-segment:KILL"})
    assert done.returncode == 137, done.stderr
    assert [p for p, _ in pings.got] == ["/ping/0f1e2d3c-uuid/start", "/ping/0f1e2d3c-uuid/137"]
    m = metrics(tmp_path / "m3.prom")
    assert m[("m3_profiles_last_run_exit_code", ())] == 137
    assert ("m3_profiles_last_success_timestamp_seconds", ()) not in m  # never succeeded


def test_quiet_prints_nothing_on_success_and_one_line_on_failure(tmp_path):
    export(tmp_path / "export")
    done = cli("run", "--input", "export", "--out", "out", "--quiet",
               "--reference-date", "2024-06-30", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = cli("run", "--input", "nowhere", "--out", "out", "--quiet", cwd=tmp_path)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "input folder not found" in done.stderr


def test_quiet_json_prints_only_the_failure_as_json(tmp_path):
    export(tmp_path / "export")
    cfg = config(tmp_path, log_format="json")
    assert cli("run", "--input", "export", "--out", "out", "--quiet", "--config", str(cfg),
               cwd=tmp_path).stderr == ""
    done = cli("run", "--input", "nowhere", "--out", "out", "--quiet", "--config", str(cfg),
               cwd=tmp_path)
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert done.returncode == 3
    assert [e["level"] for e in events] == ["error", "error"]  # the run's event, then the CLI's
    assert events[-1]["exit_code"] == 3 and "input folder not found" in events[-1]["message"]


def test_a_stopped_runs_last_json_line_carries_its_run_id(tmp_path):
    """Found under systemd (`systemctl stop` during a run): every event named the run but
    the last, the CLI's own error line, which said "run_id": null. The on-call person greps
    the journal by run id."""
    export(tmp_path / "export")
    cfg = config(tmp_path, log_format="json")
    done = cli("run", "--input", "export", "--out", "out", "--quiet", "--config", str(cfg),
               cwd=tmp_path, env={"M3_FAULT_AT": "stage-segment:TERM"})
    assert done.returncode == 143, done.stderr
    run_id = json.loads((tmp_path / "out.failed" / "run.json").read_text())["run_id"]
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert events[-1]["exit_code"] == 143 and events[-1]["message"].startswith(
        "stopped by SIGTERM: nothing was published")
    assert {e["run_id"] for e in events} == {run_id}


def test_an_unreachable_ping_url_is_a_warning_not_a_failure(tmp_path):
    export(tmp_path / "export")
    cfg = config(tmp_path, ping_url="http://127.0.0.1:9/ping/0f1e2d3c-uuid")  # port 9: closed
    done = cli("run", "--input", "export", "--out", "out", "--quiet", "--config", str(cfg),
               cwd=tmp_path)
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: could not ping") for line in lines)
    assert "0f1e2d3c-uuid" not in done.stderr  # the check's secret is never printed whole


def test_a_metrics_file_the_pipeline_did_not_write_is_never_touched(tmp_path):
    export(tmp_path / "export")
    theirs = tmp_path / "node.prom"
    theirs.write_text("# another exporter's metrics\nup 1\n", encoding="utf-8")
    cfg = config(tmp_path, metrics_file="node.prom")
    done = cli("run", "--input", "export", "--out", "out", "--config", str(cfg), cwd=tmp_path)
    assert done.returncode == 2 and "not written by m3-profiles" in done.stderr
    assert theirs.read_text() == "# another exporter's metrics\nup 1\n"
    assert not (tmp_path / "out").exists()  # refused before anything was read


def test_a_metrics_folder_not_there_yet_is_one_warning_with_the_run_id(tmp_path):
    """Found installing deploy/ by hand: node_exporter (which makes the textfile folder) is
    often installed after m3-profiles. The night still succeeds; the warning names the
    folder and the fix, carries the run id, and leaves no temp file."""
    export(tmp_path / "export")
    cfg = config(tmp_path, metrics_file="node-exporter/m3.prom", log_format="json")
    done = cli("run", "--input", "export", "--out", "out", "--quiet", "--config", str(cfg),
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_id = json.loads((tmp_path / "out" / "run.json").read_text())["run_id"]
    [event] = [json.loads(line) for line in done.stderr.splitlines()]
    assert event["level"] == "warning" and event["run_id"] == run_id
    assert event["message"] == (
        "could not write the metrics file node-exporter/m3.prom: its folder node-exporter"
        " does not exist (install node_exporter's textfile collector, or set"
        ' metrics_file = "")')
    assert not (tmp_path / "node-exporter").exists()  # not ours to create


def test_a_metrics_folder_the_user_may_not_write_in_is_one_warning_naming_the_fix(tmp_path):
    """Found running deploy/ under systemd: node_exporter's textfile folder is its own
    (root or prometheus, 0755), so the service user gets EACCES. One warning that says so
    and points to the fix, not a bare "Permission denied"; the night still succeeds. As
    root, CAP_DAC_OVERRIDE is dropped (setpriv) so that the folder's mode counts."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root writes anywhere; dropping CAP_DAC_OVERRIDE needs setpriv")
    export(tmp_path / "export")
    (tmp_path / "node-exporter").mkdir(mode=0o555)
    cfg = config(tmp_path, metrics_file="node-exporter/m3.prom", log_format="json")
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] \
        if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "pipeline", "run", "--input", "export", "--out", "out",
         "--quiet", "--config", str(cfg)], cwd=tmp_path, capture_output=True, text=True,
        timeout=300)
    (tmp_path / "node-exporter").chmod(0o755)
    assert done.returncode == 0, done.stderr
    [event] = [json.loads(line) for line in done.stderr.splitlines()]
    assert event["level"] == "warning"
    assert event["message"] == (
        "could not write the metrics file node-exporter/m3.prom: this user may not write in"
        " its folder node-exporter (give the service user write access to it: README,"
        " Scheduling)")
    assert list((tmp_path / "node-exporter").iterdir()) == []


def test_the_metrics_file_is_readable_by_node_exporter_under_the_services_umask(tmp_path):
    """Found under systemd: with the unit's UMask=0077 the file was 0600, which
    node_exporter (its own user) cannot read. It is 0644 whatever the umask."""
    export(tmp_path / "export")
    cfg = config(tmp_path, metrics_file="m3.prom")
    done = subprocess.run(
        ["sh", "-c", f'umask 0077 && exec "{sys.executable}" -m pipeline run --input export'
                     f' --out out --quiet --config "{cfg}"'],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m3.prom").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out" / "run.json").stat().st_mode & 0o777 == 0o600  # the rest: umask


def test_the_service_may_write_where_the_run_writes_and_starts_without_node_exporter():
    """ProtectSystem=strict makes everything read-only but ReadWritePaths; a listed path
    that does not exist stops the unit from starting (226/NAMESPACE) unless it is
    optional ("-"). The run writes its output, the lock, the history and a failed run's
    folder beside --out, and the metrics file the batch config names."""
    service = (ROOT / "deploy" / "m3-profiles.service").read_text()
    paths = re.search(r"^ReadWritePaths=(.+)$", service, re.M).group(1).split()
    required = [p for p in paths if not p.startswith("-")]
    optional = [p.removeprefix("-") for p in paths if p.startswith("-")]
    out = Path(re.search(r"--out (\S+)", service).group(1))
    assert required == [str(out.parent)]
    metrics_file = re.search(r'^metrics_file = "(.+)"$',
                             (ROOT / "deploy" / "config.toml").read_text(), re.M).group(1)
    assert optional == [str(Path(metrics_file).parent)]


def test_metrics_text_is_exact_for_a_hand_made_manifest():
    manifest = {
        "run_id": "R1",
        "rows": {"citizens": {"read": 12, "loaded": 10, "quarantined": 2, "cpr_masked": 1}},
        "segment": {"by_profile_source": {"rules": 7, "unreviewed": 3}},
        "report": {"hidden_primary": 4, "hidden_secondary": 2},
    }
    text = operations.metrics_text(outcome="success", exit_code=0, finished=100.0,
                                   duration_s=2.5, manifest=manifest, last_success=100.0)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == [
        'm3_profiles_last_run_success{run_id="R1"} 1',
        "m3_profiles_last_run_exit_code 0",
        "m3_profiles_last_run_timestamp_seconds 100",
        "m3_profiles_last_run_duration_seconds 2.5",
        "m3_profiles_last_success_timestamp_seconds 100",
        'm3_profiles_rows{table="citizens",kind="read"} 12',
        'm3_profiles_rows{table="citizens",kind="loaded"} 10',
        'm3_profiles_rows{table="citizens",kind="quarantined"} 2',
        'm3_profiles_citizens{profile_source="rules"} 7',
        'm3_profiles_citizens{profile_source="unreviewed"} 3',
        'm3_profiles_suppressed_cells{reason="primary"} 4',
        'm3_profiles_suppressed_cells{reason="secondary"} 2',
    ]
    assert text.splitlines()[0] == operations.HEADER


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_units_verify(tmp_path):
    """systemd-analyze checks the units; the ExecStart binary must exist, so the installed
    path is pointed at this checkout's console script."""
    script = Path(sys.executable).with_name("m3-profiles")
    unit = (ROOT / "deploy" / "m3-profiles.service").read_text()
    assert "/opt/m3-profiles/.venv/bin/m3-profiles" in unit
    (tmp_path / "m3-profiles.service").write_text(
        unit.replace("/opt/m3-profiles/.venv/bin/m3-profiles", str(script)))
    shutil.copy(ROOT / "deploy" / "m3-profiles.timer", tmp_path)
    done = subprocess.run(["systemd-analyze", "verify", "m3-profiles.service",
                           "m3-profiles.timer"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    timer = (ROOT / "deploy" / "m3-profiles.timer").read_text()
    assert re.search(r"^Persistent=true$", timer, re.M)
    assert re.search(r"^OnCalendar=", timer, re.M)


def test_the_crontab_line_runs_what_the_service_runs():
    service = (ROOT / "deploy" / "m3-profiles.service").read_text()
    cron = [line for line in (ROOT / "deploy" / "crontab").read_text().splitlines()
            if line and not line.startswith("#")]
    exec_start = re.search(r"^ExecStart=(.+)$", service, re.M).group(1)
    assert len(cron) == 1 and cron[0].endswith(exec_start)
