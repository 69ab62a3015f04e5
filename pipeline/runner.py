"""Runs stages against an output folder so that a failed or interrupted run leaves the
previous output whole (interface, *Where things go*).

Takes the run lock (`filelock`, kernel `flock`: a killed run's lock frees itself), works in
a temporary folder beside `--out` (a fresh one when the run starts with ingest, else a copy
of the current output), and renames it into place only when every stage succeeded. A failed
run's folder becomes `<out>.failed/` with its quarantine, log and manifest. Knows nothing of
terminals or exit codes: it raises the library's named errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

import pipeline
from pipeline import chart_workers, warehouse
from pipeline.config import Config
from pipeline.errors import InputError
from pipeline.ingest import IngestResult, export_quarantine, ingest
from pipeline.rules import Rules, load_rules

log = logging.getLogger("m3_profiles")
STAGES = ("ingest", "segment", "report")
DB_NAME = "warehouse.duckdb"

META_RUNS_DDL = """
create table if not exists meta.runs (
    run_id varchar primary key, started timestamp, finished timestamp, stages varchar,
    reference_date date, outcome varchar, manifest json
)"""


@dataclass
class RunState:
    """What the stages of one run share and what the manifest reports."""

    run_id: str
    stages: tuple[str, ...]
    cfg: Config
    input_dir: Path | None
    rules_path: Path | None
    rules: Rules | None  # parsed before anything was read; None: report alone, no --rules
    config_path: Path | None
    workdir: Path
    started: dt.datetime
    ingest: IngestResult | None = None
    segment: Any = None
    report: Any = None
    manifest: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else None


def _config_digest(cfg: Config, path: Path | None) -> dict[str, Any]:
    return {
        "file": str(path) if path else None,
        "file_sha256": _sha256(path),
        "effective_sha256": cfg.effective_sha256(),
        "effective": json.loads(cfg.effective_json()),
    }


def _new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _stage_ingest(
    con: duckdb.DuckDBPyConnection, st: RunState, step: Callable[[str], None]
) -> None:
    if st.input_dir is None:
        raise InputError("ingest needs --input: the folder holding the citizens and episodes files")
    try:
        st.ingest = ingest(con, st.cfg, st.input_dir, st.run_id, step)
    finally:
        export_quarantine(con, st.workdir / "quarantine.csv")


def _stage_segment(
    con: duckdb.DuckDBPyConnection, st: RunState, step: Callable[[str], None]
) -> None:
    from pipeline import segment as segment_mod

    assert st.rules is not None
    if "report" in st.stages:
        threading.Thread(target=_preload_report, name="preload-report", daemon=True).start()
    step("segmenting: courses, time in M3, profiles")
    st.segment = segment_mod.segment(con, st.cfg, st.rules)
    step("writing citizens.parquet")
    segment_mod.export_citizens(con, st.workdir / "citizens.parquet")


def _preload_report() -> None:
    """Import the report stage's libraries (matplotlib, scipy.optimize, jinja2: ~1.4 s of one
    core) while segment runs: DuckDB works without the GIL and leaves part of a core idle,
    so the report stage starts at once (a 1M run: about 0.7-1 s sooner). A failure here is
    left for the report stage to raise, when it imports the module itself."""
    with contextlib.suppress(Exception):
        importlib.import_module("pipeline.report")


def _stage_report(
    con: duckdb.DuckDBPyConnection, st: RunState, step: Callable[[str], None]
) -> None:
    from pipeline import report as report_mod

    if st.ingest is None:  # a report run on its own: what the ingest before it recorded
        st.ingest = IngestResult.from_warehouse(con)
    # the page shows this run's id and input files: the manifest so far (the final one is
    # written after every stage)
    manifest = _manifest(st, "running", None)
    st.report = report_mod.report(con, st.cfg, st.rules, st.workdir, manifest, step)


STAGE_FUNCS = {"ingest": _stage_ingest, "segment": _stage_segment, "report": _stage_report}


def _carry_history(con: duckdb.DuckDBPyConnection, previous_db: Path) -> None:
    """Keep the run history of the warehouse this run replaces."""
    con.execute(META_RUNS_DDL)
    if previous_db.exists():
        con.execute("attach $path as previous (read_only)", {"path": str(previous_db)})
        try:
            if warehouse.exists(con, "previous.meta.runs"):
                con.execute("insert into meta.runs select * from previous.meta.runs")
        finally:
            con.execute("detach previous")


def _manifest(st: RunState, outcome: str, error: str | None) -> dict[str, Any]:
    m: dict[str, Any] = {
        "run_id": st.run_id,
        "package_version": pipeline.__version__,
        "stages": list(st.stages),
        "started": st.started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "reference_date": st.cfg.reference_date.isoformat() if st.cfg.reference_date else None,
        "config": _config_digest(st.cfg, st.config_path),
        "outcome": outcome,
    }
    if st.rules is not None:
        m["rules"] = {
            "file": str(st.rules_path) if st.rules_path else "(shipped)",
            "version": st.rules.version,
            "sha256": st.rules.sha256,
        }
    elif st.report is not None:  # a report alone: the rules segment stored
        m["rules"] = dict(st.report.rules)
    if st.ingest is not None:
        m["input_files"] = [
            {
                "table": f.table,
                "path": f.path,
                "sha256": f.sha256,
                "encoding": f.encoding,
                "separator": f.separator,
                "extra_columns": list(f.extra_columns),
            }
            for f in st.ingest.files
        ]
        m["rows"] = {
            t: {
                "read": c.read,
                "loaded": c.loaded,
                "quarantined": c.quarantined,
                "cpr_masked": c.cpr_masked,
            }
            for t, c in st.ingest.counts.items()
        }
        m["quarantine_reasons"] = st.ingest.problems_by_reason
        m["pseudonymised"] = st.ingest.pseudonymised
    if st.segment is not None:
        m["segment"] = st.segment.as_dict()
    if st.report is not None:
        m["report"] = st.report.as_dict()
    if error:
        m["error"] = error
    return m


def _record(con: duckdb.DuckDBPyConnection, st: RunState, manifest: dict[str, Any]) -> None:
    con.execute(META_RUNS_DDL)
    con.execute(
        "insert or replace into meta.runs values ($id, $s, $f, $stages, $ref, $o, $m)",
        {
            "id": st.run_id,
            "s": st.started,
            "f": dt.datetime.now(),
            "stages": ",".join(st.stages),
            "ref": st.cfg.reference_date,
            "o": manifest["outcome"],
            "m": json.dumps(manifest, default=str),
        },
    )


def _replace_dir(src: Path, dest: Path) -> None:
    """Move `src` to `dest`, replacing it; the old one is renamed away first so `dest` is
    never a mix of two runs."""
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(src, dest)
    if old.exists():
        shutil.rmtree(old)


def run_stages(
    stages: Sequence[str],
    out_dir: Path,
    cfg: Config,
    *,
    input_dir: Path | None = None,
    rules_path: Path | None = None,
    config_path: Path | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> RunState:
    """Run `stages` (in pipeline order) into `out_dir` atomically; return the run's state.

    The rules file is parsed and validated first, before any lock is taken or file read
    (a typo costs nothing); a report run on its own needs none: it labels the profiles from
    what segment stored, and checks a rules file given against it."""
    cfg = cfg.resolved()
    rules = load_rules(rules_path) if "segment" in stages or rules_path else None
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    db_path = warehouse_path(cfg, out_dir)
    locks = [out_dir.with_name(f".{out_dir.name}.lock")]
    if db_path.parent != out_dir:  # interface: the lock covers the output and the database
        db_path.parent.mkdir(parents=True, exist_ok=True)
        locks.append(db_path.with_name(f".{db_path.name}.lock"))
    with warehouse.locked(locks):
        return _run_locked(
            tuple(stages), out_dir, db_path, cfg, input_dir, rules_path, rules, config_path, step
        )


def warehouse_path(cfg: Config, out_dir: Path) -> Path:
    """The warehouse file: config `database` (relative to the working directory), else
    `warehouse.duckdb` in the output folder."""
    return Path(cfg.database).resolve() if cfg.database else out_dir.resolve() / DB_NAME


def _run_locked(
    stages: tuple[str, ...],
    out_dir: Path,
    db_path: Path,
    cfg: Config,
    input_dir: Path | None,
    rules_path: Path | None,
    rules: Rules | None,
    config_path: Path | None,
    step: Callable[[str], None],
) -> RunState:
    run_id = _new_run_id()
    workdir = out_dir.with_name(f".{out_dir.name}.tmp-{run_id}")
    external = db_path.parent != out_dir
    # an outside warehouse gets a working copy beside it, renamed into place like the folder
    work_db = db_path.with_name(f".{db_path.name}.tmp-{run_id}") if external else (
        workdir / DB_NAME
    )
    if stages[0] != "ingest" and not db_path.exists():
        raise InputError(
            f"{db_path}: no warehouse from an earlier stage; run "
            f"'m3-profiles ingest' (or 'run') first"
        )
    if stages[0] == "ingest" or not out_dir.exists():
        workdir.mkdir()
    else:
        shutil.copytree(out_dir, workdir)
    if external and stages[0] != "ingest":
        shutil.copyfile(db_path, work_db)
    handler = logging.FileHandler(workdir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    def logged_step(message: str) -> None:
        log.info(message)
        step(message)

    st = RunState(
        run_id, stages, cfg, input_dir, rules_path, rules, config_path, workdir,
        dt.datetime.now(),
    )
    if "report" in stages[1:]:
        # the charts' fork server: its own process, importing the report's libraries while
        # the stages before the report run
        chart_workers.start_server()
    con = warehouse.connect(work_db, cfg=cfg)
    try:
        if stages[0] == "ingest":
            _carry_history(con, db_path)
        for stage in stages:
            logged_step(f"stage {stage}")
            STAGE_FUNCS[stage](con, st, logged_step)
        st.manifest = _manifest(st, "success", None)
        _record(con, st, st.manifest)
        con.close()
        (workdir / "run.json").write_text(
            json.dumps(st.manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
        log.info("run %s succeeded", run_id)
        log.removeHandler(handler)
        handler.close()
        _replace_dir(workdir, out_dir)
        if external:
            os.replace(work_db, db_path)
        return st
    except BaseException as e:
        log.error("run %s failed: %s: %s", run_id, type(e).__name__, e)
        manifest = _manifest(st, "failed", f"{type(e).__name__}: {e}")
        try:
            con.close()
        except duckdb.Error:
            pass
        (workdir / "run.json").write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
        log.removeHandler(handler)
        handler.close()
        if external and work_db.exists():
            shutil.move(work_db, workdir / DB_NAME)  # kept for diagnosis, like the default
        _replace_dir(workdir, out_dir.with_name(f"{out_dir.name}.failed"))
        st.manifest = manifest
        raise
