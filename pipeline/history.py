"""The history across runs (issue 16; README, History): what each night concluded about each
citizen, kept when the output folder and its warehouse are rebuilt by the next run.

Layout: a folder (config `history_dir`, default `<out>.history` beside the output folder)
holding `.m3-profiles-history` and one Parquet file per night and version,
`<reference date>_<digest>.parquet`. The digest covers the input files, the rules and the
config, so a rerun of the same night with the same export, rules and config adds nothing and
replaces nothing, and a night run again on a corrected export adds a version (the views read
the latest version of each night). Append-only: a night is written once, by a rename, and
never rewritten, so a night's cost does not grow with the nights before it.

Writes: the night file in the run's work folder during segment (`write_night`), and the
history file after the run's output is in place (`append`; a run killed between the two is
appended by the next run, which calls `append` at its start). Reads: `nights`, `changes`,
`profile_versions`. Pseudonymous and per person: internal, never published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline import warehouse
from pipeline.config import Config
from pipeline.errors import OutputError

MARKER = ".m3-profiles-history"
NIGHT_FILE = "history-night.parquet"
NIGHT_QUERY = "history_night"  # pipeline/sql/queries/history_night.sql
# the record of the release a run published, in its output folder until the history's
# `releases/` has it (pipeline.releases; named here so that the runner needs no import of
# the report's libraries to recognise it)
RELEASE_RECORD = "release-record"
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})_([0-9a-f]{16})\.parquet$")
# a citizen's state on a night when it has no profile in scope
NOT_IN_M3 = "not_in_m3"  # in the export, not in scope (left M3, or never in it)
NOT_IN_EXPORT = "not_in_export"  # absent from the export that night


def folder(cfg: Config, out_dir: Path) -> Path:
    """The history folder: config `history_dir`, else `<out>.history` beside `--out`."""
    if cfg.history_dir:
        return Path(cfg.history_dir).resolve()
    out_dir = out_dir.resolve()
    return out_dir.with_name(f"{out_dir.name}.history")


def check(path: Path) -> None:
    """Refuse a history folder the pipeline did not make (a typo pointing at other files)."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: the history folder is a file; expected a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise OutputError(
            f"{path}: not an m3-profiles history folder (no {MARKER}) and not empty; set "
            f"history_dir to a new folder"
        )


def night_digest(con: duckdb.DuckDBPyConnection, cfg: Config, rules_sha256: str) -> str:
    """What makes two runs of one night the same: the input files, the rules, the config."""
    files = con.execute(
        "select string_agg(sha256, ',' order by table_name, path) from meta.input_files"
    ).fetchone()[0]
    text = "\n".join((files or "", rules_sha256, cfg.effective_sha256()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_night(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str, rules_sha256: str,
                path: Path) -> Path:
    """The night file: every citizen of the export with this run's conclusion."""
    params = {
        "reference_date": cfg.resolved().reference_date,
        "run_id": run_id,
        "night_digest": night_digest(con, cfg, rules_sha256),
    }
    return warehouse.copy_to(con, warehouse.sql_text(f"queries.{NIGHT_QUERY}"), path,
                             params=params)


def _key(night: Path) -> tuple[dt.date, str] | None:
    """(reference date, digest) of a night file; None for a night without citizens."""
    row = duckdb.connect().execute(
        "select reference_date, night_digest from read_parquet($p) limit 1", {"p": str(night)}
    ).fetchone()
    return (row[0], row[1]) if row else None


def append(history: Path, night: Path) -> bool:
    """Add `night` to the history unless that night and version are there; True if added.
    Atomic: written beside its place, fsynced, renamed."""
    if not night.is_file():
        return False
    key = _key(night)
    if key is None:
        return False
    check(history)
    target = history / f"{key[0].isoformat()}_{key[1]}.parquet"
    if target.exists():
        return False
    history.mkdir(parents=True, exist_ok=True)
    (history / MARKER).touch()
    for stale in history.glob(".*.parquet.tmp-*"):  # a copy a killed run left (under the lock)
        stale.unlink()
    tmp = history / f".{target.name}.tmp-{os.getpid()}"
    try:
        with open(night, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(history, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def night_files(history: Path) -> dict[dt.date, Path]:
    """The latest version of each night (the last one appended), by reference date."""
    latest: dict[dt.date, Path] = {}
    for p in sorted(history.glob("*.parquet")) if history.is_dir() else ():
        m = _NAME.match(p.name)
        if not m:
            continue
        day = dt.date.fromisoformat(m.group(1))
        if day not in latest or p.stat().st_mtime_ns > latest[day].stat().st_mtime_ns:
            latest[day] = p
    return dict(sorted(latest.items()))


def connect(history: Path, days: list[dt.date] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with `history.nights` (the latest version of each night, or of
    `days`) and the view `history.profile_versions`."""
    files = night_files(history)
    chosen = [str(p) for d, p in files.items() if days is None or d in days]
    con = duckdb.connect()
    con.execute("create schema history")
    if chosen:
        con.execute("create table history.nights as select * from read_parquet($files)",
                    {"files": chosen})
    else:
        con.execute(
            "create table history.nights (reference_date date, run_id varchar, night_digest "
            "varchar, citizen_id varchar, in_scope boolean, match_group varchar, profile "
            "varchar, profile_source varchar, m3_days integer)"
        )
    con.execute("create view history.profile_versions as "
                + warehouse.sql_text("history.profile_versions"))
    return con


@dataclass(frozen=True)
class Night:
    reference_date: dt.date
    run_id: str
    citizens: int
    in_scope: int
    by_source: dict[str, int]


def nights(history: Path) -> list[Night]:
    """Each night kept: reference date, the run that wrote it, citizens, in scope per
    profile source."""
    con = connect(history)
    rows = con.execute(
        "select reference_date, any_value(run_id), count(*), count(*) filter (where in_scope)"
        " from history.nights group by reference_date order by reference_date"
    ).fetchall()
    by_source: dict[dt.date, dict[str, int]] = {}
    for day, source, n in con.execute(
        "select reference_date, profile_source, count(*) from history.nights where in_scope"
        " group by all order by all"
    ).fetchall():
        by_source.setdefault(day, {})[source] = n
    return [Night(day, run_id, n, scoped, by_source.get(day, {}))
            for day, run_id, n, scoped in rows]


def changes(history: Path) -> tuple[dt.date, dt.date, list[tuple[str, str, int]]] | None:
    """From -> to between the two latest nights, counts of citizens: a profile in scope, its
    profile source when in scope without one (`unreviewed`, `uncertain`), else `not_in_m3`
    (in the export, out of scope) or `not_in_export`. Reads only those two nights. None with
    fewer than two nights."""
    files = night_files(history)
    if len(files) < 2:
        return None
    before, after = list(files)[-2:]
    con = connect(history, [before, after])
    rows = con.execute(
        """
        with state as (
            select reference_date, citizen_id,
                   case when not in_scope then $not_in_m3
                        when profile is null then profile_source
                        else profile end as state
            from history.nights
        )
        select coalesce(b.state, $not_in_export) as from_state,
               coalesce(a.state, $not_in_export) as to_state, count(*) as n
        from (select * from state where reference_date = $before) as b
        full join (select * from state where reference_date = $after) as a using (citizen_id)
        group by all order by all
        """,
        {"before": before, "after": after, "not_in_m3": NOT_IN_M3,
         "not_in_export": NOT_IN_EXPORT},
    ).fetchall()
    return before, after, [(f, t, n) for f, t, n in rows]


# the cohort across nights: the horizons after the first night kept (months, as the cohort
# table of one export: docs/definitions-movement.md §8.6), each read from the night kept
# nearest to it, if one is within NEAR_DAYS (nightly or monthly runs both have one)
HORIZON_MONTHS = (1, 3, 6, 12)
NEAR_DAYS = 7
IN_M3 = "in_m3"
LATEST = "latest"


@dataclass(frozen=True)
class CohortAcross:
    """The citizens in scope on the first night kept, by what that night concluded
    (profile, else profile source), and where each is on later nights: `in_m3` (in scope),
    `not_in_m3` (in the export, out of scope), `not_in_export`."""

    start: dt.date
    nights: list[tuple[str, dt.date]]  # (horizon: "1m" … "12m", or "latest"), the night read
    rows: list[tuple[str, str, str, int]]  # horizon, state on the first night, status, n


def cohort(history: Path) -> CohortAcross | None:
    """The cohort across the nights kept (definitions-movement §8.6); None with fewer than
    two nights. Reads only the first night and the nights it needs (at most five), so its
    cost does not grow with the nights kept. Internal: unsuppressed counts."""
    from pipeline.movement import month_day

    days = list(night_files(history))
    if len(days) < 2:
        return None
    start, later = days[0], days[1:]
    picked: list[tuple[str, dt.date]] = []
    for m in HORIZON_MONTHS:
        target = start + dt.timedelta(days=month_day(m))
        near = min(later, key=lambda d: (abs((d - target).days), d))
        if abs((near - target).days) <= NEAR_DAYS:
            picked.append((f"{m}m", near))
    picked.append((LATEST, later[-1]))
    con = connect(history, sorted({start, *(d for _, d in picked)}))
    con.execute("create table horizons (horizon varchar, night date, k integer)")
    con.executemany("insert into horizons values (?, ?, ?)",
                    [(h, d, k) for k, (h, d) in enumerate(picked)])
    rows = con.execute(
        """
        with first_night as (
            select citizen_id, coalesce(profile, profile_source) as state
            from history.nights where reference_date = $start and in_scope
        )
        select h.horizon, c.state,
               case when n.citizen_id is null then $not_in_export
                    when n.in_scope then $in_m3 else $not_in_m3 end as status,
               count(*) as n
        from first_night c cross join horizons h
        left join history.nights n
               on n.citizen_id = c.citizen_id and n.reference_date = h.night
        group by h.k, h.horizon, c.state, status
        order by h.k, c.state, status
        """,
        {"start": start, "in_m3": IN_M3, "not_in_m3": NOT_IN_M3,
         "not_in_export": NOT_IN_EXPORT},
    ).fetchall()
    return CohortAcross(start, picked, [(h, s, st, n) for h, s, st, n in rows])
