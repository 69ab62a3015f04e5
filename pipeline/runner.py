"""Runs stages against an output folder so that a failed, interrupted or killed run leaves
the previous output whole (interface, *Where things go*; README, *When a run fails*).

Reads nothing and writes nothing until the paths are checked: `--out` must be a new or
empty folder or an m3-profiles output (it holds `.m3-profiles-output`), never the input
folder, one around it or inside it; a `database` outside it must be a new file or an
m3-profiles warehouse. Then takes the run lock (`warehouse.locked`: kernel `flock`, the
holder named in the lock file), puts right what a killed run left beside `--out` (its work
folder, the previous output renamed away in a swap), works in `.<out>.tmp-<run id>/` (a
fresh folder when the run starts with ingest, else a copy of the current output) and swaps
it into place with one `renameat2(RENAME_EXCHANGE)` (two renames where the platform has
none) only when every stage succeeded, after fsyncing it. In the output folder, `publish/`
(the report stage's) holds what may be published; everything else at its root is internal
(`RUN_FILES`; the layout before `publish/`, with the published files at the root, is still
recognised as a run's). A failed run's folder becomes
`<out>.failed/` with its quarantine, log and manifest; a run stopped by SIGTERM / SIGINT or
by its environment (disk full, permission denied, out of memory) keeps only the log and
the manifest there. Knows nothing of terminals or exit codes: it raises the library's named
errors (`pipeline.errors`).

Test hook: `M3_FAULT_AT=<point>:<SIGNAL>` (e.g. `swap-exchanged:KILL`) makes the run send
itself the signal at a named point (`FAULT_POINTS`), so the fault tests (`make faults`) stop
a real process at each step without depending on timing. `M3_SWAP=rename` uses the two
renames even where the exchange exists, to test the fallback's recovery.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import datetime as dt
import errno
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

import pipeline
from pipeline import chart_workers, history, operations, privacy, warehouse
from pipeline.config import Config, ConfigError
from pipeline.errors import (
    EnvironmentFault,
    InputError,
    LockedError,
    OutputError,
    Stopped,
)
from pipeline.ingest import IngestResult, export_quarantine, ingest
from pipeline.rules import Rules, load_rules
from pipeline.worklist import Catalogue, Worklist, load_catalogue, load_worklist

log = logging.getLogger("m3_profiles")
STAGES = ("ingest", "segment", "report")
DB_NAME = "warehouse.duckdb"
# the output folder's own marker: a folder holding it is an m3-profiles output, and a run
# may replace it as a whole
MARKER = ".m3-profiles-output"
# UTC, ISO 8601 basic format with its Z, then 8 random hex digits. The Z is load-bearing:
# "…T221055-2472febf" (local time, before) reads as a CPR number (221055-2472) to the
# masker, which then hid the run id in the logs of about one run in 30. The optional Z
# still recognises the leftovers of runs that named their folders the old way.
_RUN_ID = r"\d{8}T\d{6}Z?-[0-9a-f]{8}"
# the publish folder (pipeline.report.PUBLISH): what may be published, and nothing else;
# the rest of the output folder is internal
PUBLISH = "publish"
# what the report stage wrote at the output folder's root before there was a publish folder
LEGACY_PUBLISHED = frozenset({"tables", "tables.xlsx", "report.html", "charts"})
# what a run writes into its folder: a leftover or failed folder holding nothing else is a
# run's (also one from before the marker, or from before the publish folder)
RUN_FILES = frozenset({
    MARKER, "run.log", "run.json", "quarantine.csv", "quarantine.xlsx", "citizens.parquet",
    PUBLISH, DB_NAME, f"{DB_NAME}.wal", f"{DB_NAME}.tmp", history.NIGHT_FILE,
    history.RELEASE_RECORD,  # the record of the release published, until the store has it
    *LEGACY_PUBLISHED,
    # issue 17: the re-review worklist, internal, at the folder's root
    "worklist.xlsx", "worklist.csv",
})  # fmt: skip

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
    current: str | None = None  # the stage running, for the log of a failed run
    # issue 17: parsed before anything was read, when the run reports; None: no report
    worklist: Worklist | None = None
    catalogue: Catalogue | None = None
    # issue 13 item 3: the output folder, and what the publication policy decided
    out_dir: Path | None = None
    release: Any = None  # pipeline.releases.Decision
    # False: the reference date is today's by default, so a report run on its own takes
    # the one segment used instead (`_segment_reference_date`)
    reference_given: bool = True


def _sha256(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else None


def _config_digest(cfg: Config, path: Path | None) -> dict[str, Any]:
    # paths and export column names may hold a CPR number: the manifest keeps them masked,
    # the hash covers the settings as given
    return {
        "file": privacy.mask_name(str(path)) if path else None,
        "file_sha256": _sha256(path),
        "effective_sha256": cfg.effective_sha256(),
        "effective": json.loads(privacy.mask_name(cfg.effective_json())),
    }


def _new_run_id(now: dt.datetime | None = None, suffix: str | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + (suffix or uuid.uuid4().hex[:8])


def _stage_ingest(
    con: duckdb.DuckDBPyConnection, st: RunState, step: Callable[[str], None]
) -> None:
    if st.input_dir is None:
        raise InputError("ingest needs --input: the folder holding the citizens and episodes files")
    try:
        st.ingest = ingest(con, st.cfg, st.input_dir, st.run_id, step)
    except BaseException as e:
        # a run stopped by a signal keeps only its log and manifest: writing its quarantine
        # (quarantine.xlsx of a large one takes seconds) would only keep Ctrl-C waiting
        if not (isinstance(e, Stopped) or _interrupted(e)):
            export_quarantine(con, st.workdir / "quarantine.csv")
        raise
    export_quarantine(con, st.workdir / "quarantine.csv")


def _stage_segment(
    con: duckdb.DuckDBPyConnection, st: RunState, step: Callable[[str], None]
) -> None:
    from pipeline import segment as segment_mod

    assert st.rules is not None
    if "report" in st.stages:
        threading.Thread(target=_preload_report, name="preload-report", daemon=True).start()
    step("segmenting: courses, time in M3, profiles")
    st.segment = segment_mod.segment(con, st.cfg, st.rules, st.run_id)
    step("writing citizens.parquet")
    segment_mod.export_citizens(con, st.workdir / "citizens.parquet")
    # this night's conclusions, added to the history once the output is in place (_commit)
    history.write_night(con, st.cfg, st.run_id, st.rules.sha256, st.workdir / history.NIGHT_FILE)


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
    if "segment" not in st.stages:
        st.cfg = _segment_reference_date(con, st)
    # the page shows this run's id and input files: the manifest so far (the final one is
    # written after every stage)
    manifest = _manifest(st, "running", None)
    # the publication policy (issue 13 item 3): the new release against the releases
    # published from this output folder; not safe together, the earlier publish folder
    # is put back unchanged (the internal files are refreshed all the same). The report
    # checks it first, with and without the profile changes table (pipeline.changes)
    from pipeline import changes, releases

    assert st.out_dir is not None
    cfg = st.cfg.resolved()
    against = (changes.Against(st.run_id, releases.kept(releases.store(cfg, st.out_dir),
                                                        cfg.release_audit_window))
               if cfg.min_cell > 1 else None)
    st.report = report_mod.report(con, st.cfg, st.rules, st.workdir, manifest, step,
                                  st.worklist, st.catalogue, against=against,
                                  # issue 13: the last release's levels and pattern
                                  previous=against.previous[-1]
                                  if against is not None and against.previous else None)
    st.release = releases.decide(con, st.cfg, st.run_id, st.out_dir, st.workdir, against)
    if st.release is not None:
        if st.release.published:
            log.info(st.release.line)
        else:
            log.warning(st.release.line)
            for problem in st.release.problems[:10]:
                log.info("across releases: %s", problem)


def _segment_reference_date(con: duckdb.DuckDBPyConnection, st: RunState) -> Config:
    """The config a report run on its own counts with: the reference date segment used.
    The profiles, courses and times in M3 in the warehouse are of that date; a page dated
    otherwise (today, by default) would mislabel them, and the cohort would be a year
    before the wrong day. A date given that differs is refused, as other rules are."""
    if not warehouse.exists(con, "meta.runs"):
        return st.cfg
    row = con.execute(
        "select reference_date from meta.runs where outcome = 'success'"
        " and list_contains(string_split(stages, ','), 'segment')"
        " order by finished desc limit 1"
    ).fetchone()
    if row is None or row[0] is None or row[0] == st.cfg.reference_date:
        return st.cfg
    if st.reference_given:
        raise ConfigError(
            f"reference date {st.cfg.reference_date}: the warehouse was segmented for"
            f" {row[0]}; report without --reference-date (it takes {row[0]}), or run"
            f" segment again with {st.cfg.reference_date}")
    return dataclasses.replace(st.cfg, reference_date=row[0])


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
            "file": privacy.mask_name(str(st.rules_path)) if st.rules_path else "(shipped)",
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
    if st.release is not None:
        m["release"] = st.release.as_dict()
    if error:
        m["error"] = privacy.mask_name(error)
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


# --- the output folder is the pipeline's own --------------------------------------------


def _manifest_of(folder: Path) -> dict[str, Any] | None:
    """The run manifest in `folder` (`run.json` naming its run), else None."""
    try:
        m = json.loads((folder / "run.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and "run_id" in m and "package_version" in m else None


def is_output(folder: Path) -> bool:
    """Whether `folder` is an m3-profiles output: it holds the marker, or (written before
    there was one) a run manifest."""
    return (folder / MARKER).is_file() or _manifest_of(folder) is not None


def _is_runs(folder: Path) -> bool:
    """Whether `folder` (a failed run's folder or a leftover with the pipeline's name) holds
    only what a run writes: the marker, a manifest, or nothing but a run's file names."""
    if is_output(folder):
        return True
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    # the report stage's work folder, and the publish folder it renames away to replace it
    return all(n in RUN_FILES or n.startswith((".report-", f".{PUBLISH}.old-")) for n in names)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _is_warehouse(db: Path) -> bool | None:
    """Whether the file `db` is an m3-profiles warehouse (a DuckDB file with `meta.runs`);
    None when DuckDB cannot open it because another process has it open."""
    try:
        with open(db, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    if head[8:12] != b"DUCK":  # DuckDB's file header: a checksum, then the magic bytes
        return False
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.IOException as e:
        return None if "lock" in str(e).lower() else False
    except duckdb.Error:
        return False
    try:
        return warehouse.exists(con, "meta.runs", "table")
    finally:
        con.close()


def check_paths(
    out_dir: Path, db_path: Path, input_dir: Path | None, keep: Sequence[Path] = ()
) -> None:
    """Refuse (OutputError) an output folder or warehouse path a run may not replace, before
    anything is read or written. `out_dir` and `db_path` are resolved; `keep` are files the
    user named (config, rules, key file), which must not lie in the output folder."""
    out = out_dir
    why = "a run replaces its output folder as a whole"
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file, not a folder; name the folder for the outputs")
    if input_dir is not None:
        inp = input_dir.resolve()
        if out == inp:
            raise OutputError(
                f"--out {out}: is the input folder; {why}, which would delete the export. "
                "Name another folder"
            )
        if out in inp.parents:
            raise OutputError(
                f"--out {out}: contains the input folder {inp}; {why}, which would delete the "
                "export. Name a folder beside it"
            )
        if inp in out.parents:
            raise OutputError(
                f"--out {out}: lies inside the input folder {inp}, which a run never writes. "
                "Name a folder outside it"
            )
    if out.is_dir() and not is_output(out) and any(out.iterdir()):
        raise OutputError(
            f"--out {out}: is a folder with files in it that is not an m3-profiles output (it "
            f"has no {MARKER}); {why}, which would delete them. Name a new or empty folder"
        )
    failed = out.with_name(f"{out.name}.failed")
    if failed.exists() and not (failed.is_dir() and _is_runs(failed)):
        raise OutputError(
            f"{failed}: is in the way of a failed run's folder and is not one (a failed run's "
            "folder replaces the previous one); move it away"
        )
    for f in keep:
        if _inside(f.resolve(), out):
            raise OutputError(
                f"{f}: lies inside the output folder {out}, and {why}; keep it outside"
            )
    if input_dir is not None and _inside(db_path, input_dir.resolve()):
        raise OutputError(
            f"database {db_path}: lies inside the input folder, which a run never writes"
        )
    if _inside(db_path, out) or not db_path.exists() and not db_path.is_symlink():
        return
    if not db_path.is_file():
        raise OutputError(f"database {db_path}: is not a file; name a new file or a warehouse")
    found = _is_warehouse(db_path)
    if found is None and not db_path.with_name(f".{db_path.name}.lock").exists():
        raise OutputError(
            f"database {db_path}: another program has this DuckDB file open, and it is not "
            "known as an m3-profiles warehouse; name a new file or the output folder's"
        )
    if found is False:
        raise OutputError(
            f"database {db_path}: exists and is not an m3-profiles warehouse (no meta.runs); "
            "a run would replace it. Name a new file, or leave `database` empty for "
            "<out>/warehouse.duckdb"
        )


# --- what a killed run left behind -------------------------------------------------------


def _leftovers(out_dir: Path) -> dict[str, list[Path]]:
    """The folders beside `out_dir` named as a run names them, by kind."""
    name = re.escape(out_dir.name)
    kinds = {
        "tmp": re.compile(rf"\.{name}\.tmp-{_RUN_ID}"),
        # the previous output renamed away in a two-rename swap (today's run ids; 8 hex digits
        # before them)
        "old": re.compile(rf"\.{name}\.old-(?:{_RUN_ID}|[0-9a-f]{{8}})"),
        "failed_old": re.compile(rf"\.{name}\.failed\.old-(?:{_RUN_ID}|[0-9a-f]{{8}})"),
    }
    found: dict[str, list[Path]] = {k: [] for k in kinds}
    with contextlib.suppress(FileNotFoundError):
        for p in sorted(out_dir.parent.iterdir()):
            for kind, pattern in kinds.items():
                if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
                    found[kind].append(p)
    return found


def _remove(folder: Path) -> None:
    """Remove a run's folder: its marker first, so a removal cut short never leaves
    something that looks like a whole output."""
    with contextlib.suppress(FileNotFoundError):
        (folder / MARKER).unlink()
    shutil.rmtree(folder)


def recover(out_dir: Path, db_path: Path) -> list[str]:
    """Put right what an interrupted run left (called under the lock): restore the previous
    output where a swap was cut between its two renames, finish the swap of an outside
    warehouse whose output was swapped in, and remove the rest. Only folders with the
    pipeline's names holding only a run's files are touched. Returns what was done, for the
    log."""
    done: list[str] = []
    found = _leftovers(out_dir)
    old = [p for p in found["old"] if _is_runs(p)]
    if not out_dir.exists():
        whole = [p for p in old if is_output(p)]
        if whole:
            latest = max(whole, key=lambda p: p.stat().st_mtime)
            os.rename(latest, out_dir)
            _fsync_dir(out_dir.parent)
            old.remove(latest)
            done.append(
                f"restored the previous output {out_dir} from {latest.name}, where a run "
                "was stopped in the middle of its swap"
            )
    for p in old + [p for k in ("tmp", "failed_old") for p in found[k] if _is_runs(p)]:
        _remove(p)
        done.append(f"removed {p.name}, left by an interrupted run")
    for p in [p for k in found for p in found[k] if p.exists()]:
        done.append(f"left {p.name} alone: it holds files a run does not write")
    if not _inside(db_path, out_dir):
        done += _recover_database(out_dir, db_path)
    return done


def _recover_database(out_dir: Path, db_path: Path) -> list[str]:
    done: list[str] = []
    pattern = re.compile(rf"\.{re.escape(db_path.name)}\.tmp-({_RUN_ID})(\.wal|\.tmp)?")
    published = (_manifest_of(out_dir) or {}).get("run_id") if out_dir.exists() else None
    with contextlib.suppress(FileNotFoundError):
        for p in sorted(db_path.parent.iterdir()):
            m = pattern.fullmatch(p.name)
            if not m or p.is_symlink():
                continue
            if m.group(1) == published and not m.group(2) and p.is_file():
                # the run swapped its output in and was stopped before its warehouse
                os.replace(p, db_path)
                _fsync_dir(db_path.parent)
                done.append(f"finished the swap of {db_path} (run {published})")
            elif p.is_dir():
                shutil.rmtree(p)
                done.append(f"removed {p.name}, left by an interrupted run")
            else:
                p.unlink()
                done.append(f"removed {p.name}, left by an interrupted run")
    return done


# --- durable, atomic swaps ---------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder`: what is renamed into place must be on
    disk before the rename is."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            _fsync_file(os.path.join(root, name))
        _fsync_dir(Path(root))


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_renameat2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths `a` and `b` in one step (Linux `renameat2(RENAME_EXCHANGE)`, glibc ≥ 2.28):
    there is no instant with neither. False where the platform or file system has no such
    call (the caller then renames twice)."""
    global _renameat2
    if os.environ.get("M3_SWAP") == "rename" or not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            fn = libc.renameat2
        except (OSError, AttributeError):
            _renameat2 = False
            return False
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                       ctypes.c_uint]
        fn.restype = ctypes.c_int
        _renameat2 = fn
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # no such call, or not here
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _put_in_place(src: Path, dest: Path, run_id: str, at: Callable[[str], None]) -> Path | None:
    """Move folder `src` to `dest`, replacing a folder there; return where the replaced one
    now is (to be removed), or None. One exchange where the platform has it; else the old one
    is renamed away first, so `dest` is never a mix of two runs (a run stopped between the two
    renames leaves `.<dest>.old-<run id>`, which the next run restores)."""
    if not dest.exists():
        os.rename(src, dest)
        return None
    if _exchange(src, dest):
        at("exchanged")
        return src
    old = dest.with_name(f".{dest.name}.old-{run_id}")
    os.rename(dest, old)
    at("renamed-away")
    try:
        os.rename(src, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    at("exchanged")
    return old


# --- signals and the environment ---------------------------------------------------------


class _Signals:
    """SIGTERM and SIGINT raise `Stopped` in the run's (main) thread, once: a second signal
    while the run cleans up is noted, not raised. While `deferred`, a signal is only noted;
    the code that deferred it acts on it at a safe point (`check`)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if first and not self.deferred:
            raise Stopped(signum)

    def check(self) -> None:
        if self.received is not None:
            raise Stopped(self.received)


_SPACE = "; free space there (config temp_directory moves DuckDB's spill files elsewhere)"
_ACCESS = "; give the user running m3-profiles access to it"
_MEMORY = "; lower config memory_limit or threads, or give the run more memory"
_ENV_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", _SPACE),
    errno.EDQUOT: ("disk quota exceeded", _SPACE),
    errno.EFBIG: ("file too large for the file system or the process's limit", _SPACE),
    errno.EACCES: ("permission denied", _ACCESS),
    errno.EPERM: ("operation not permitted", _ACCESS),
    errno.EROFS: ("read-only file system", "; the disk is mounted read-only"),
    errno.EIO: ("input/output error", "; check the disk"),
    errno.ENOMEM: ("out of memory", _MEMORY),
    errno.EMFILE: ("too many open files", "; raise the open-files limit"),
    errno.ENFILE: ("too many open files in the system", "; raise the open-files limit"),
}
_ENV_MESSAGES = (  # what DuckDB and Arrow say, as text (they raise their own error types)
    ("no space left on device", "no space left on the device", _SPACE),
    ("disk quota exceeded", "disk quota exceeded", _SPACE),
    ("permission denied", "permission denied", _ACCESS),
    ("read-only file system", "read-only file system", "; the disk is mounted read-only"),
    ("out of memory", "out of memory", _MEMORY),
    ("cannot allocate memory", "out of memory", _MEMORY),
    ("failed to allocate", "out of memory", _MEMORY),
    ("bad_alloc", "out of memory", _MEMORY),
    ("can't start new thread", "out of memory: could not start a thread", _MEMORY),
    ("failed to launch worker thread", "out of memory: could not start a thread", _MEMORY),
)


def _chain(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def environment_fault(e: BaseException, where: str | None = None) -> EnvironmentFault | None:
    """The environment fault behind `e` (disk full, permission denied, out of memory), as one
    line naming the file (else `where`) and the cause, and what to do; None for any other
    error."""
    for x in _chain(e):
        if isinstance(x, OSError) and x.errno in _ENV_ERRNOS:
            cause, hint = _ENV_ERRNOS[x.errno]
            at = x.filename if x.filename is not None else x.filename2
            if hint is _MEMORY:
                return EnvironmentFault(f"{cause}{hint}")
            return EnvironmentFault(f"{at or where or 'the run'}: {cause}{hint}")
        if isinstance(x, MemoryError):
            return EnvironmentFault(f"out of memory{_MEMORY}")
    for x in _chain(e):
        if isinstance(x, InputError | LockedError | OutputError):
            continue  # the pipeline's own messages (which quote file contents) say enough
        text = str(x)
        for needle, cause, hint in _ENV_MESSAGES:
            if needle in text.lower():
                if hint is _MEMORY:
                    return EnvironmentFault(f"{cause}{hint}")
                quoted = re.search(r'"(/[^"]+)"', text)
                at = quoted.group(1) if quoted else where or "the run"
                return EnvironmentFault(f"{at}: {cause}{hint}")
    return None


def _interrupted(e: BaseException) -> bool:
    """Whether `e` is DuckDB's report of a query interrupted by a signal (DuckDB checks for
    Python's signals while it works, and raises its own error in place of the handler's)."""
    return any(
        isinstance(x, duckdb.InterruptException | KeyboardInterrupt)
        or (isinstance(x, RuntimeError) and "interrupted" in str(x).lower())
        for x in _chain(e)
    )


def _classify(e: BaseException, signals: _Signals, where: str | None = None) -> BaseException:
    """The error a failed run reports: Stopped when a signal stopped it (whatever the code it
    interrupted raised), EnvironmentFault for the machine's faults, else `e` itself."""
    if isinstance(e, Stopped | EnvironmentFault):
        return e
    if signals.received is not None:
        return Stopped(signals.received)
    if _interrupted(e):
        return Stopped(signal.SIGINT)
    if isinstance(e, InputError | LockedError | OutputError):
        return e
    return environment_fault(e, where) or e


# --- the test hook -----------------------------------------------------------------------

FAULT_ENV = "M3_FAULT_AT"
# every point a fault test may stop a run at, in the order a full run passes them
FAULT_POINTS = (
    "start",  # lock held, leftovers put right, work folder and log made
    "stage-ingest",
    "ingest-read",  # reading the input files into the raw layer
    "ingest-validate",  # raw layer read (uncommitted), validation about to start
    "ingest-query",  # from a thread, while a DuckDB query of the validation runs
    "stage-segment",
    "segment-build",
    "segment-export",
    "stage-report",
    "report-count",
    "report-suppress",
    "report-write",
    "stages-done",  # every stage done; manifest not yet recorded
    "swap-synced",  # the work folder is complete and on disk; nothing swapped yet
    "swap-renamed-away",  # two-rename swap only (M3_SWAP=rename): --out renamed away
    "swap-exchanged",  # the new output is in place; the previous one not yet removed
    "swap-database",  # outside warehouse only: the folder swapped, the warehouse not yet
    "history",  # the new output in place; its night not yet added to the history
    "done",  # the previous output removed; the run about to return
)
_STEP_POINTS = {  # the stages' progress messages that are fault points
    "reading input files": "ingest-read",
    "validating into staging": "ingest-validate",
    "segmenting": "segment-build",
    "writing citizens.parquet": "segment-export",
    "report: counting": "report-count",
    "report: suppressing": "report-suppress",
    "report: writing": "report-write",
}


def _fault_spec() -> tuple[str, signal.Signals, bool] | None:
    """(point, signal, to the whole process group) from `M3_FAULT_AT`, or None."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    point, _, name = spec.partition(":")
    name, _, whom = name.partition("@")
    try:
        signum = signal.Signals["SIG" + name.upper().removeprefix("SIG")]
    except KeyError:
        raise ValueError(f"{FAULT_ENV}={spec}: unknown signal {name!r}") from None
    if point not in FAULT_POINTS or whom not in ("", "group"):
        raise ValueError(f"{FAULT_ENV}={spec}: unknown point (known: {', '.join(FAULT_POINTS)};"
                         " a signal, optionally @group)")
    return point, signum, whom == "group"


def _fault(point: str) -> None:
    """Test hook: at point `point`, send this process the signal `M3_FAULT_AT` names for it
    (`<point>:<SIGNAL>`), or its whole process group (`<point>:<SIGNAL>@group`: the run and
    the command's supervisor together, as a power cut or `kill -9` of the job would)."""
    spec = _fault_spec()
    if spec is None or spec[0] != point:
        return
    log.warning("fault hook %s: sending %s to this %s", point, spec[1].name,
                "process group" if spec[2] else "process")
    for h in log.handlers:
        h.flush()
    if point == "ingest-query":
        _signal_during_query(spec[1], spec[2])
    elif spec[2]:
        os.killpg(os.getpgrp(), spec[1])
    else:
        os.kill(os.getpid(), spec[1])


def _signal_during_query(signum: int, group: bool) -> None:
    """Send `signum` from a thread once the main thread is inside a DuckDB call of the
    warehouse's model builders (the signal lands while DuckDB works, not between calls)."""
    main, pid = threading.main_thread().ident, os.getpid()
    builders = {"create_table_as", "create_view_as", "check"}

    def watch() -> None:
        while True:
            frame = sys._current_frames().get(main)
            if frame is None:
                return
            if frame.f_code.co_name in builders and frame.f_code.co_filename.endswith(
                "warehouse.py"
            ):
                os.killpg(os.getpgrp(), signum) if group else os.kill(pid, signum)
                return
            time.sleep(0.0005)

    threading.Thread(target=watch, name="fault-hook", daemon=True).start()


# --- the supervisor's view of a run ----------------------------------------------------

_announce_fd: int | None = None


def announce_to(fd: int) -> None:
    """Tell the command's supervisor (the process that forked this one, `pipeline.cli`),
    through pipe `fd`, which run and work folder this process is about to use: if the kernel
    kills it (out of memory) or a library aborts, the supervisor puts them right
    (`after_killed`)."""
    global _announce_fd
    _announce_fd = fd


def _announce(**info: str) -> None:
    if _announce_fd is not None:
        with contextlib.suppress(OSError):
            os.write(_announce_fd, (json.dumps(info) + "\n").encode())


def after_killed(announced: dict[str, str], how: str) -> tuple[list[str], bool]:
    """After the run `announced` died where it could not say so itself (`how`: "was killed by
    SIGKILL" — the kernel's out-of-memory killer, `kill -9` —, a library's abort): under the
    lock, make its work folder `<out>.failed/` with a log line saying so (the log and the
    manifest only), and put right whatever else it left (`recover`). Returns what was done
    and whether its new output is in place (it died after the swap)."""
    out_dir, db_path = Path(announced["out"]), Path(announced["db"])
    run_id = announced["run_id"]
    locks = [out_dir.with_name(f".{out_dir.name}.lock")]
    if not _inside(db_path, out_dir):
        locks.append(db_path.with_name(f".{db_path.name}.lock"))
    holder = {"run_id": f"cleanup of {run_id}", "pid": os.getpid(),
              "host": socket.gethostname(),
              "started": dt.datetime.now().isoformat(timespec="seconds")}
    done: list[str] = []
    with warehouse.locked(locks, holder):
        workdir = out_dir.with_name(f".{out_dir.name}.tmp-{run_id}")
        try:
            own = json.loads((workdir / MARKER).read_text("utf-8")).get("run_id") == run_id
        except (OSError, ValueError):
            own = False
        if own:  # not swapped in: the run's own work
            for p in workdir.iterdir():
                if p.name not in ("run.log", "run.json", MARKER):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            with open(workdir / "run.log", "a", encoding="utf-8") as f:
                stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
                f.write(f"{stamp} ERROR run {run_id} {how}: nothing was published; the "
                        "previous output is untouched\n")
            manifest = _manifest_of(workdir) or {"run_id": run_id,
                                                 "package_version": pipeline.__version__}
            manifest.update(outcome="failed", error=f"the run {how}")
            (workdir / "run.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                              encoding="utf-8")
            (workdir / MARKER).unlink()
            failed = out_dir.with_name(f"{out_dir.name}.failed")
            replaced = _put_in_place(workdir, failed, run_id, lambda _: None)
            if replaced is not None:
                shutil.rmtree(replaced, ignore_errors=True)
            done.append(f"kept the killed run's log in {failed.name}/run.log")
        done += recover(out_dir, db_path)
    published = (_manifest_of(out_dir) or {}).get("run_id") == run_id
    return done, published


# --- the run -----------------------------------------------------------------------------


class _RunLog(logging.FileHandler):
    """run.log: a write that fails (a full disk) is dropped, never printed as a traceback;
    the error that ends the run says what happened. Every line is masked: a path or an
    error's text may hold a CPR number (a folder's name)."""

    def format(self, record: logging.LogRecord) -> str:
        return privacy.mask_name(super().format(record))

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def _formatter(cfg: Config, run_id: str) -> logging.Formatter:
    if cfg.log_format == "json":
        return operations.JsonLines()
    return logging.Formatter("%(asctime)s %(levelname)s %(message)s")


def run_stages(
    stages: Sequence[str],
    out_dir: Path,
    cfg: Config,
    *,
    input_dir: Path | None = None,
    rules_path: Path | None = None,
    config_path: Path | None = None,
    step: Callable[[str], None] = lambda _: None,
    worklist_path: Path | None = None,
) -> RunState:
    """Run `stages` (in pipeline order) into `out_dir` atomically; return the run's state.

    The rules file is parsed and validated first, then the paths checked (`check_paths`),
    before any lock is taken or file read (a typo costs nothing); a report run on its own
    needs no rules: it labels the profiles from what segment stored, and checks a rules file
    given against it. A run that reports parses the worklist (`worklist_path`, else the
    shipped one) and the catalogue (config `catalogue`) first too. Raises OutputError for
    paths it may not write, LockedError, Stopped on SIGTERM / SIGINT, EnvironmentFault for
    the machine's faults, and the stages' errors."""
    reference_given = cfg.reference_date is not None
    cfg = cfg.resolved()
    rules = load_rules(rules_path) if "segment" in stages or rules_path else None
    worklist = catalogue = None
    if "report" in stages:
        worklist = load_worklist(worklist_path)
        catalogue = load_catalogue(cfg.catalogue or None)
        if rules is not None:
            against = f"the rules {rules.version}"
            worklist.check_profiles(rules.codes, against)
            catalogue.check_profiles(rules.codes, against)
    _fault_spec()  # a mistyped test hook fails here, not silently
    out_dir = out_dir.resolve()
    db_path = warehouse_path(cfg, out_dir)
    keep = [p for p in (config_path, rules_path, worklist_path) if p is not None]
    if cfg.catalogue:
        keep.append(Path(cfg.catalogue))
    if cfg.pseudonym_key_file:
        keep.append(Path(cfg.pseudonym_key_file))
    check_paths(out_dir, db_path, input_dir, keep)
    if "segment" in stages or "report" in stages:
        history.check(history.folder(cfg, out_dir))
    run_id = _new_run_id()
    tag = operations.RunId(run_id)
    log.addFilter(tag)
    with _Signals() as signals, contextlib.ExitStack() as cleanup:
        cleanup.callback(log.removeFilter, tag)
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            locks = [out_dir.with_name(f".{out_dir.name}.lock")]
            if not _inside(db_path, out_dir):
                # interface: the lock covers the output and the database
                db_path.parent.mkdir(parents=True, exist_ok=True)
                locks.append(db_path.with_name(f".{db_path.name}.lock"))
            holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                      "started": dt.datetime.now().isoformat(timespec="seconds")}
            with warehouse.locked(locks, holder):
                recovered = recover(out_dir, db_path)
                if history.append(history.folder(cfg, out_dir), out_dir / history.NIGHT_FILE):
                    # the last run was stopped between its swap and its history
                    recovered.append("added the previous run's night to the history")
                if _keep_release(cfg, out_dir):
                    recovered.append("added the previous run's release to the releases kept")
                check_paths(out_dir, db_path, input_dir, keep)  # as the lock found it
                return _run_locked(
                    tuple(stages), out_dir, db_path, cfg, input_dir, rules_path, rules,
                    config_path, step, run_id, recovered, signals, worklist, catalogue,
                    reference_given=reference_given,
                )
        except BaseException as e:
            signals.deferred = True
            err = _classify(e, signals, str(out_dir.parent))
            if not isinstance(err, LockedError):  # a refused run never started
                # the CLI's last line names the run its log lines named (JSON events)
                with contextlib.suppress(AttributeError, TypeError):
                    err.run_id = run_id
            if err is e:
                raise
            raise err from e


def warehouse_path(cfg: Config, out_dir: Path) -> Path:
    """The warehouse file: config `database` (relative to the working directory), else
    `warehouse.duckdb` in the output folder."""
    return Path(cfg.database).resolve() if cfg.database else out_dir.resolve() / DB_NAME


def _write_marker(folder: Path, run_id: str) -> None:
    (folder / MARKER).write_text(
        json.dumps({"m3_profiles": "output folder", "run_id": run_id,
                    "package_version": pipeline.__version__}) + "\n",
        encoding="utf-8",
    )


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
    run_id: str,
    recovered: list[str],
    signals: _Signals,
    worklist: Worklist | None = None,
    catalogue: Catalogue | None = None,
    *,
    reference_given: bool = True,
) -> RunState:
    workdir = out_dir.with_name(f".{out_dir.name}.tmp-{run_id}")
    external = not _inside(db_path, out_dir)
    # an outside warehouse gets a working copy beside it, renamed into place like the folder
    work_db = (
        db_path.with_name(f".{db_path.name}.tmp-{run_id}")
        if external
        else workdir / db_path.relative_to(out_dir)
    )
    if stages[0] != "ingest" and not db_path.exists():
        for line in recovered:
            step(line)
        raise InputError(
            f"{privacy.mask_name(str(db_path))}: no warehouse from an earlier stage; run "
            f"'m3-profiles ingest' (or 'run') first"
        )
    workdir.mkdir()
    handler: logging.Handler | None = None
    st = RunState(
        run_id, stages, cfg, input_dir, rules_path, rules, config_path, workdir,
        dt.datetime.now(), worklist=worklist, catalogue=catalogue, out_dir=out_dir,
        reference_given=reference_given,
    )
    con: duckdb.DuckDBPyConnection | None = None

    def logged_step(message: str) -> None:
        signals.check()  # a signal a library swallowed still stops the run here
        log.info(message)
        step(message)
        point = next((p for k, p in _STEP_POINTS.items() if message.startswith(k)), None)
        if point:
            _fault(point)
        if point == "ingest-validate":
            _fault("ingest-query")

    _announce(out=str(out_dir), db=str(db_path), run_id=run_id)
    try:
        _write_marker(workdir, run_id)
        if stages[0] != "ingest" and (out_dir / "run.log").is_file():
            # a stage run alone continues the log of the runs that built its warehouse
            shutil.copyfile(out_dir / "run.log", workdir / "run.log")
        handler = _RunLog(workdir / "run.log", encoding="utf-8")
        handler.setFormatter(_formatter(cfg, run_id))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.info("run %s (pid %d) into %s", run_id, os.getpid(), out_dir)
        for line in recovered:
            log.warning(line)
            step(line)
        if stages[0] != "ingest" and out_dir.exists():
            legacy = sorted(n for n in LEGACY_PUBLISHED if (out_dir / n).exists())
            if legacy:
                # an output from before the publish folder: its published files are not
                # carried over (a report writes publish/; segment alone makes them stale)
                log.info("the previous output has its published files at its root (%s), the "
                         "layout before %s/: not carried over", ", ".join(legacy), PUBLISH)

            def carried(folder: str, names: list[str]) -> set[str]:
                skip = {"run.log", MARKER}
                if Path(folder) == out_dir:
                    skip |= LEGACY_PUBLISHED
                return skip & set(names)

            shutil.copytree(out_dir, workdir, dirs_exist_ok=True, ignore=carried)
        if external and stages[0] != "ingest":
            shutil.copyfile(db_path, work_db)
        _fault("start")
        if "report" in stages[1:]:
            # the charts' fork server: its own process, importing the report's libraries
            # while the stages before the report run
            chart_workers.start_server()
        work_db.parent.mkdir(parents=True, exist_ok=True)
        con = warehouse.connect(work_db, cfg=cfg)
        if stages[0] == "ingest":
            _carry_history(con, db_path)
        for stage in stages:
            st.current = stage
            logged_step(f"stage {stage}")
            _fault(f"stage-{stage}")
            STAGE_FUNCS[stage](con, st, logged_step)
        st.current = None
        _fault("stages-done")
        st.manifest = _manifest(st, "success", None)
        _record(con, st, st.manifest)
        con.close()
        (workdir / "run.json").write_text(
            json.dumps(st.manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
        log.info("run %s succeeded; swapping it into place", run_id)
        handler.flush()
        _fsync_tree(workdir)
        if external:
            _fsync_file(work_db)
        _fault("swap-synced")
    except BaseException as e:
        signals.deferred = True  # nothing stops the cleanup half-way
        err = _classify(e, signals, str(out_dir.parent))
        if isinstance(err, EnvironmentFault) and err is not e and st.current:
            err = EnvironmentFault(f"stage {st.current}: {err}")  # where it ran out
        _fail(st, err, con, handler, workdir, work_db if external else None, out_dir, e)
        if err is e:
            raise
        raise err from e
    return _commit(st, out_dir, db_path, work_db if external else None, handler, signals)


def _commit(
    st: RunState,
    out_dir: Path,
    db_path: Path,
    work_db: Path | None,
    handler: logging.Handler | None,
    signals: _Signals,
) -> RunState:
    """Swap the complete work folder into place. A signal from here on is honoured only
    once the swap is whole: before the exchange it stops the run as before any other step;
    after it, the run finishes the swap and then reports the stop (the new output in
    place)."""
    signals.deferred = True
    if signals.received is not None:
        err = Stopped(signals.received)
        _fail(st, err, None, handler, st.workdir, work_db, out_dir)
        raise err
    try:
        replaced = _put_in_place(st.workdir, out_dir, st.run_id,
                                 lambda at: _fault(f"swap-{at}"))
    except OSError as e:
        # a rename failed (a read-only disk, permissions): nothing was swapped
        err = _classify(e, signals, str(out_dir.parent))
        _fail(st, err, None, handler, st.workdir, work_db, out_dir)
        if err is e:
            raise
        raise err from e
    # the new output is in place: from here, what cannot be done is put right by the next run
    log.info("run %s in place at %s", st.run_id, out_dir)
    problem: EnvironmentFault | None = None
    try:
        _fsync_dir(out_dir.parent)
        if work_db is not None:
            _fault("swap-database")
            os.replace(work_db, db_path)
            _fsync_dir(db_path.parent)
    except OSError as e:
        problem = environment_fault(e, str(db_path)) or EnvironmentFault(f"{db_path}: {e}")
        log.error("the new output is in place, but its warehouse is not: %s (the next run "
                  "finishes the swap)", problem)
    _fault("history")
    try:
        if history.append(history.folder(st.cfg, out_dir), out_dir / history.NIGHT_FILE):
            log.info("night %s added to the history", st.cfg.reference_date)
    except OSError as e:
        log.warning("could not add this night to the history (%s): the next run adds it", e)
    try:
        if _keep_release(st.cfg, out_dir):
            log.info("release %s kept for the audit of later releases", st.run_id)
    except OSError as e:
        log.warning("could not keep this release for the audit of later releases (%s): the "
                    "next run keeps it", e)
    if replaced is not None:
        try:
            _remove(replaced)
            log.info("removed the previous output")
        except OSError as e:
            log.warning("could not remove the previous output %s (%s): the next run removes "
                        "it", replaced, e)
    _fault("done")
    st.workdir = out_dir
    _close_log(handler)
    if problem is not None:
        raise problem
    if signals.received is not None:
        raise Stopped(signals.received, published=True)
    return st


def _keep_release(cfg: Config, out_dir: Path) -> bool:
    """Add the output's release record to the releases kept (pipeline.releases), if it has
    one; imported only then (it loads the report's libraries)."""
    if not (out_dir / history.RELEASE_RECORD).is_dir():
        return False
    from pipeline import releases

    kept = releases.store(cfg, out_dir)
    added = releases.append(kept, out_dir / history.RELEASE_RECORD)
    if added:
        releases.prune(kept, cfg.release_audit_window)
    return added


def _close_log(handler: logging.Handler | None) -> None:
    if handler is not None:
        log.removeHandler(handler)
        handler.close()



def _fail(
    st: RunState,
    err: BaseException,
    con: duckdb.DuckDBPyConnection | None,
    handler: logging.Handler | None,
    workdir: Path,
    work_db: Path | None,
    out_dir: Path,
    cause: BaseException | None = None,
) -> None:
    """Make the work folder `<out>.failed/`, best effort at every step (the disk may be full):
    the log and the manifest saying what stopped the run, and for a run that failed on its
    data or code also its quarantine and warehouse, for diagnosis. A run stopped by a signal
    or its environment keeps only the log and the manifest: its warehouse is half-built and
    holds personal data, and on a full disk it holds the space."""
    stopped_env = isinstance(err, Stopped | EnvironmentFault)
    during = f" during stage {st.current}" if st.current else ""
    if isinstance(err, Stopped):
        query = " (it interrupted a DuckDB query)" if cause and _interrupted(cause) else ""
        log.error("run %s stopped by %s%s%s: nothing was published; the previous output is "
                  "untouched", st.run_id, err.name, during, query)
    else:
        log.error("run %s failed%s: %s: %s", st.run_id, during, type(err).__name__, err)
    manifest = _manifest(st, "failed", f"{type(err).__name__}: {err}")
    st.manifest = manifest
    if con is not None:
        with contextlib.suppress(Exception):
            con.close()
    if work_db is not None:
        for p in work_db.parent.glob(f"{work_db.name}*"):
            with contextlib.suppress(OSError):
                if stopped_env or p.name != work_db.name:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                else:  # kept for diagnosis, like the default
                    shutil.move(p, workdir / DB_NAME)
    if stopped_env and workdir.exists():
        for p in workdir.iterdir():
            if p.name not in ("run.log", "run.json"):
                with contextlib.suppress(OSError):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    with contextlib.suppress(OSError):  # after the trimming: on a full disk it fits now
        (workdir / "run.json").write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
    with contextlib.suppress(OSError):
        (workdir / MARKER).unlink()  # a failed run's folder is no output
    failed = out_dir.with_name(f"{out_dir.name}.failed")
    try:
        replaced = _put_in_place(workdir, failed, st.run_id, lambda _: None)
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)
    except OSError as e:
        log.error("could not keep the run's folder as %s (%s); the next run removes it",
                  failed, e)
    _close_log(handler)
