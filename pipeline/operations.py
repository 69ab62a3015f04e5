"""What an operator watches a run with, besides its exit code: a metrics file in the
Prometheus textfile format (node_exporter's textfile collector reads it), a dead man's
switch pinged at start and end (healthchecks.io's protocol), and JSON log lines.

Reads the run's manifest (`run.json` in the output folder after a success, in
`<out>.failed/` after a failure) and the previous metrics file; writes only the metrics file
named by the config's `metrics_file`, atomically (a temporary file beside it, fsynced, then
renamed), and only where no file stands that the pipeline did not write (its first line is
`HEADER`). Nothing here ever fails a run: a ping that cannot be sent, or a metrics file that
cannot be written, is one warning line, and the run's own exit code stands.

Every figure here is internal: the operator's monitoring sees unsuppressed row and citizen
counts, never anything per person.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HEADER = "# m3-profiles metrics: written by each run (README, Scheduling); do not edit"
PING_TIMEOUT_S = 10.0
_LAST_SUCCESS = "m3_profiles_last_success_timestamp_seconds"


class MetricsFileError(ValueError):
    """The metrics file named in the config is a file the pipeline did not write."""


def check_metrics_file(path: Path) -> None:
    """Refuse, before the run, a `metrics_file` that exists and is not ours: a run never
    overwrites a file it did not create (a typo pointing at another exporter's file)."""
    if path.is_dir():
        raise MetricsFileError(f"{path}: metrics_file is a folder; expected a file path")
    if path.exists() and _first_line(path) != HEADER:
        raise MetricsFileError(
            f"{path}: metrics_file exists and was not written by m3-profiles; choose another "
            f"path (e.g. <textfile directory>/m3_profiles.prom) or remove it"
        )


def _first_line(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\n")
    except OSError:
        return None


def _previous_success(path: Path) -> float | None:
    """The last success time the previous metrics file recorded: a failed run keeps it, so
    an alert on `time() - last_success > 26h` fires on the right night."""
    try:
        text = path.read_text("utf-8")
    except OSError:
        return None
    m = re.search(rf"^{_LAST_SUCCESS} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(
    *,
    outcome: str,
    exit_code: int,
    finished: float,
    duration_s: float,
    manifest: Mapping[str, Any] | None,
    last_success: float | None,
) -> str:
    """The textfile: the run's outcome and duration, the rows read / loaded / quarantined per
    table, the citizens per profile source and the suppressed cells the manifest holds, and
    the last success time. Names follow Prometheus' conventions (base units, `_total` only for
    counters; these are gauges of the last run)."""
    run_id = (manifest or {}).get("run_id", "")
    lines = [HEADER]

    def gauge(name: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{inner}}} {_number(value)}" if inner
                         else f"{name} {_number(value)}")

    gauge("m3_profiles_last_run_success", "1 if the last run succeeded, else 0.",
          [({"run_id": run_id}, 1.0 if outcome == "success" else 0.0)])
    gauge("m3_profiles_last_run_exit_code", "Exit code of the last run (README, exit codes).",
          [({}, float(exit_code))])
    gauge("m3_profiles_last_run_timestamp_seconds", "When the last run ended (Unix time).",
          [({}, finished)])
    gauge("m3_profiles_last_run_duration_seconds", "Wall time of the last run.",
          [({}, duration_s)])
    if last_success is not None:
        gauge(_LAST_SUCCESS, "When a run last succeeded (Unix time).", [({}, last_success)])
    rows = (manifest or {}).get("rows") or {}
    if rows:
        gauge("m3_profiles_rows", "Rows of the export in the last run, per table and kind "
              "(read = loaded + quarantined).",
              [({"table": t, "kind": k}, float(c[k]))
               for t, c in sorted(rows.items()) for k in ("read", "loaded", "quarantined")])
    sources = ((manifest or {}).get("segment") or {}).get("by_profile_source") or {}
    if sources:
        gauge("m3_profiles_citizens", "Citizens in scope per profile source in the last run.",
              [({"profile_source": s}, float(n)) for s, n in sorted(sources.items())])
    report = (manifest or {}).get("report") or {}
    if "hidden_primary" in report:
        gauge("m3_profiles_suppressed_cells", "Cells hidden in the last run's published "
              "tables, by why (primary: a small count; secondary: to protect one).",
              [({"reason": r}, float(report[f"hidden_{r}"])) for r in ("primary", "secondary")])
    release = (manifest or {}).get("release") or {}
    if "published" in release:
        gauge("m3_profiles_release_published", "1 if the last run published a new release, 0"
              " if it kept the earlier one (the audit across releases, README Privacy).",
              [({}, 1.0 if release["published"] else 0.0)])
    return "\n".join(lines) + "\n"


def _number(v: float) -> str:
    if math.isfinite(v) and v == int(v):
        return str(int(v))
    return repr(float(v))


def write_metrics(
    path: Path,
    *,
    outcome: str,
    exit_code: int,
    started: float,
    manifest: Mapping[str, Any] | None,
    json_lines: bool = False,
    run_id: str | None = None,
) -> None:
    """Write the metrics file atomically; a failure to write is a warning, never the run's."""
    finished = time.time()
    last = finished if outcome == "success" else _previous_success(path)
    text = metrics_text(outcome=outcome, exit_code=exit_code, finished=finished,
                        duration_s=finished - started, manifest=manifest, last_success=last)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.exists() and _first_line(path) != HEADER:
            raise MetricsFileError(f"{path}: not written by m3-profiles; left as it is")
        with open(tmp, "w", encoding="utf-8") as f:
            # node_exporter reads it as its own user; the service's UMask=0077 would make
            # it 0600 (found under systemd). Counts, not persons: readable like its
            # neighbours in the textfile folder
            os.fchmod(f.fileno(), 0o644)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, MetricsFileError) as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        # the usual cause on a new machine: node_exporter (which makes the folder) is not
        # installed yet; the temp file's name in OSError's text would only confuse
        # the next one (found under systemd): node_exporter's folder belongs to its own
        # user, and the service user may not write in it
        if not path.parent.is_dir():
            why = (f"its folder {path.parent} does not exist (install node_exporter's textfile"
                   f" collector, or set metrics_file = \"\")")
        elif isinstance(e, PermissionError):
            why = (f"this user may not write in its folder {path.parent} (give the service"
                   " user write access to it: README, Scheduling)")
        else:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        _warn(f"warning: could not write the metrics file {path}: {why}", json_lines, run_id)


def run_manifest(out_dir: Path, since: dt.datetime) -> dict[str, Any] | None:
    """The manifest of the run that started at or after `since` (local time, as manifests
    write it): `<out>/run.json` when it succeeded, `<out>.failed/run.json` when not; None
    when the run was refused before it wrote one (a lock held, a path refused)."""
    found = []
    for folder in (out_dir, out_dir.with_name(f"{out_dir.name}.failed")):
        try:
            m = json.loads((folder / "run.json").read_text("utf-8"))
            started = dt.datetime.fromisoformat(m["started"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if started >= since:
            found.append(m)
    return max(found, key=lambda m: m.get("finished") or "", default=None)


class Heartbeat:
    """A dead man's switch (healthchecks.io's protocol): `<url>/start` when a run starts,
    `<url>` when it succeeds, `<url>/<exit code>` when it fails. The body says only the run
    id and the exit code. Off when the URL is empty."""

    def __init__(self, url: str, json_lines: bool = False) -> None:
        self.url = url.rstrip("/")
        self.json_lines = json_lines

    def start(self) -> None:
        self._send(f"{self.url}/start", "start")

    def end(self, exit_code: int, run_id: str | None = None) -> None:
        body = json.dumps({"run_id": run_id, "exit_code": exit_code})
        self._send(self.url if exit_code == 0 else f"{self.url}/{exit_code}", body)

    def _send(self, url: str, body: str) -> None:
        if not self.url:
            return
        req = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8",
                                              "User-Agent": "m3-profiles"})
        try:
            with urllib.request.urlopen(req, timeout=PING_TIMEOUT_S) as resp:
                resp.read(256)
        except (OSError, urllib.error.URLError, ValueError) as e:
            # the monitoring's outage is not the run's: it says so and carries on
            _warn(f"warning: could not ping {_without_secret(url)}: {e}", self.json_lines)


def _without_secret(url: str) -> str:
    """A ping URL's last path part is its secret (the check's UUID): never printed whole."""
    head, _, tail = url.rstrip("/").rpartition("/")
    if tail in ("start",) or tail.isdigit():
        head, _, uuid = head.rpartition("/")
        return f"{head}/{uuid[:4]}…/{tail}"
    return f"{head}/{tail[:4]}…"


def json_event(level: str, message: str, run_id: str | None = None,
               created: float | None = None, **extra: Any) -> str:
    """One log event as a JSON line: time (ISO 8601 with its UTC offset), level, run id,
    message, and `extra` fields (e.g. the CLI's exit code)."""
    when = dt.datetime.fromtimestamp(created) if created is not None else dt.datetime.now()
    event = {"time": when.astimezone().isoformat(timespec="seconds"), "level": level,
             "run_id": run_id, **extra, "message": message}
    return json.dumps(event, ensure_ascii=False)


def _warn(line: str, json_lines: bool, run_id: str | None = None) -> None:
    """A warning outside the run's log (before it opens or after it closed): on stderr, as
    text or as a JSON event like the log's."""
    if json_lines:
        line = json_event("warning", line.removeprefix("warning: "), run_id)
    print(line, file=sys.stderr, flush=True)


class RunId(logging.Filter):
    """Tags every record of a run with its run id (for the JSON lines)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time (ISO 8601 with its UTC offset), level, run id,
    message."""

    def format(self, record: logging.LogRecord) -> str:
        return json_event(record.levelname.lower(), record.getMessage(),
                          getattr(record, "run_id", None), record.created)
