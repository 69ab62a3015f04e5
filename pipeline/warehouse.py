"""The DuckDB warehouse and its mechanics: connect, lock, transactions, build a model of the
registry (`pipeline.registry`), run data checks, export to files. Stages call these; they
keep no SQL of their own beyond a one-line parameterised query.

Layers are schemas (`raw`, `staging`, `quarantine`, `marts`, `meta`). A SQL model is one file
`pipeline/sql/<layer>/<table>.sql` holding one `select`; a Python model is a function whose
frame is written the same way. A check is a query in `pipeline/sql/checks/` that returns the
offending rows: zero rows = pass. Values reach SQL as named parameters, never pasted in (a
path with an apostrophe is a path like any other).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from pipeline import progress
from pipeline.errors import LockedError, OutputError
from pipeline.registry import BY_NAME, Context, Model, stage_models

LAYERS = ("raw", "staging", "quarantine", "marts", "meta")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class CheckFailed(RuntimeError):
    """A data check returned rows: a stage produced something the definitions forbid."""


def connect(
    path: Path | str = ":memory:", *, read_only: bool = False, cfg: Any = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, creating the layer schemas; never download extensions. `cfg` (a
    `Config`) sets DuckDB's memory limit, threads and spill folder where it gives them."""
    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if cfg is not None:
        if cfg.memory_limit:
            config["memory_limit"] = cfg.memory_limit
        if cfg.threads:
            config["threads"] = cfg.threads
        if cfg.temp_directory:
            config["temp_directory"] = cfg.temp_directory
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    if not read_only:
        for layer in LAYERS:
            con.execute(f"create schema if not exists {layer}")
    return con


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back when it raises. DDL is
    transactional in DuckDB, so a failed stage leaves every table as it was. A rollback that
    fails itself (DuckDB may already have aborted the transaction, e.g. on a full disk) does
    not hide the error that caused it."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise
    con.execute("commit")


def exists(con: duckdb.DuckDBPyConnection, name: str, kind: str | None = None) -> bool:
    """Whether `[<database>.]<schema>.<relation>` exists (in the warehouse, or in an attached
    database), as a "table" or "view" if `kind` is given, else as either."""
    *database, schema, relation = name.split(".")
    types = {"table": ["BASE TABLE"], "view": ["VIEW"], None: ["BASE TABLE", "VIEW"]}[kind]
    (found,) = con.execute(
        "select count(*) from information_schema.tables where table_catalog ="
        " coalesce($database, current_database()) and table_schema = $schema"
        " and table_name = $relation and list_contains($types, table_type)",
        {"database": database[0] if database else None, "schema": schema,
         "relation": relation, "types": types},
    ).fetchone()
    return bool(found)


def records(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] = {}
) -> list[dict[str, Any]]:
    """The rows of a (small) query as dicts by column name."""
    rel = con.execute(sql, params)
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def count(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """Rows of table or view `name` (a registry name: never data)."""
    return con.execute(f"select count(*) from {name}").fetchone()[0]


def sql_text(name: str) -> str:
    """The SQL of model or check `name` ("staging.citizens", "checks.<file stem>")."""
    layer, table = name.split(".", 1)
    return (resources.files("pipeline") / "sql" / layer / f"{table}.sql").read_text("utf-8")


def bind(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The named parameters `sql` uses, taken from `params` (DuckDB refuses unused ones)."""
    wanted = set(_PARAM.findall(_strip_comments(sql)))
    missing = wanted - set(params)
    if missing:
        raise KeyError(f"SQL needs parameters not given: {', '.join(sorted(missing))}")
    return {k: params[k] for k in wanted}


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


# Free text (case notes) is stored with zstd. DuckDB's default for strings (dictionary +
# FSST) suits short codes, but on long texts it costs ~5x the CPU of zstd and compresses
# less (the 1M-citizen demo's notes: 3.3 vs 0.7 CPU-s to write, 92 vs 17 MB).
FREE_TEXT_COLUMNS = frozenset({"notes"})


def create_table_as(
    con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Mapping[str, Any] = {}
) -> None:
    """`create or replace table <name> as <sql>`, free-text columns compressed with zstd."""
    _drop_if(con, name, "view")
    columns = con.execute(f"describe {sql}", params).fetchall()
    if not any(c[0] in FREE_TEXT_COLUMNS and c[1] == "VARCHAR" for c in columns):
        con.execute(f"create or replace table {name} as\n{sql}", params)
        return
    # a column's compression can only be chosen where the table is defined
    definitions = ", ".join(
        f"{_quoted(column)} {kind}"
        + (" using compression zstd" if column in FREE_TEXT_COLUMNS and kind == "VARCHAR" else "")
        for column, kind, *_ in columns
    )
    con.execute(f"create or replace table {name} ({definitions})")
    con.execute(f"insert into {name}\n{sql}", params)


def create_view_as(
    con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Mapping[str, Any] = {}
) -> None:
    """`create or replace view <name> as <sql>`, its `$parameters` written in as literals.

    DuckDB cannot keep prepared parameters in a view, so the values are fixed when the view
    is made, and its stored SQL shows what it was made with.
    """
    values = bind(sql, params)
    sql = _PARAM.sub(
        lambda m: sql_literal(values[m.group(1)]) if m.group(1) in values else m.group(0), sql
    )
    _drop_if(con, name, "table")
    con.execute(f"create or replace view {name} as\n{sql}")


def _drop_if(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    """Drop `name` if it is a `kind` ("table" / "view"): a model may change how it is kept,
    and DuckDB's `create or replace` does not replace a table by a view or back."""
    if exists(con, name, kind):
        con.execute(f"drop {kind} {name}")


def sql_literal(value: Any) -> str:
    """A DuckDB literal for a parameter value (None, bool, int, float, str, date, list)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return f"date '{value.isoformat()}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    raise TypeError(f"no SQL literal for {type(value).__name__} {value!r}")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def model_sql(name: str, placeholders: Mapping[str, str] = {}) -> str:
    """SQL model `name`'s text with its `{{ name }}` placeholders filled (marts/citizens.sql:
    the rule expressions compiled from the validated rules file)."""

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in placeholders:
            raise KeyError(f"model {name} has an unknown placeholder {m.group(0)}")
        return placeholders[m.group(1)]

    return _PLACEHOLDER.sub(fill, sql_text(name))


def build(con: duckdb.DuckDBPyConnection, model: Model | str, ctx: Context) -> None:
    """Replace model `model`'s table (or view) with its result, from its SQL file or its
    Python function."""
    if isinstance(model, str):
        model = BY_NAME[model]
    if model.python is not None:
        frame = model.function()(con, ctx)
        con.register("python_model", frame)
        try:
            create_table_as(con, model.name, "select * from python_model")
        finally:
            con.unregister("python_model")
        return
    sql = model_sql(model.name, ctx.placeholders)
    if model.view:
        create_view_as(con, model.name, sql, ctx.params)
    else:
        create_table_as(con, model.name, sql, bind(sql, ctx.params))


def build_stage(
    con: duckdb.DuckDBPyConnection,
    stage: str,
    ctx: Context,
    before: Callable[[Model], None] = lambda _: None,
) -> None:
    """Build the registry's models of `stage` in order, each followed by its checks. The
    caller holds the transaction, so a failing model or check leaves the stage undone.
    `before` is called with each model about to be built (progress, or a hook)."""
    models = stage_models(stage)
    for i, model in enumerate(models):
        progress.count(stage, i, len(models), "models built")
        before(model)
        build(con, model, ctx)
        for name in model.checks:
            check(con, name, ctx.params)
    progress.count(stage, len(models), len(models), "models built")


def check(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] = {}) -> None:
    """Run data check `checks.<name>`; raise CheckFailed with a sample if it returns rows."""
    sql = sql_text(f"checks.{name}")
    rel = con.execute(sql, bind(sql, params))
    rows = rel.fetchmany(5)
    if rows:
        raise CheckFailed(f"data check {name} failed; first offending rows: {rows}")


def query(
    con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] = {}
) -> duckdb.DuckDBPyConnection:
    """Run the read-only query `pipeline/sql/queries/<name>.sql` (what a stage reads back to
    report on: no model, nothing stored); fetch from the returned connection."""
    sql = sql_text(f"queries.{name}")
    return con.execute(sql, bind(sql, params))


def copy_to(
    con: duckdb.DuckDBPyConnection,
    query: str,
    path: Path,
    options: str = "format parquet",
    params: Mapping[str, Any] = {},
) -> Path:
    """Write `query`'s result to `path` (DuckDB's COPY; `options` as COPY takes them, e.g.
    "header, delimiter ','"). The path is a parameter: any character is fine in it."""
    con.execute(f"copy ({query}) to $path ({options})", {**params, "path": str(path)})
    return path


@contextlib.contextmanager
def locked(paths: Sequence[Path], holder: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Hold the run lock on every path, or raise LockedError at once naming the run that
    holds one. The lock is the kernel's `flock` on a plain file (a killed holder's lock frees
    itself); while it is held the file names its holder (`holder`: pid, run id, start time,
    host). A symlink, a hard link or anything but a plain file at a lock path is refused
    (OutputError): the lock is never taken through a link, so nothing at its target is
    truncated or written."""
    held: list[int] = []
    try:
        for path in paths:
            fd = _open_lock(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = _lock_holder(fd)
                os.close(fd)
                raise LockedError(
                    f"{path}: another run holds the lock on this output folder or warehouse"
                    + (f" ({who})" if who else "")
                ) from None
            held.append(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(dict(holder or {}), default=str) + "\n").encode(), 0)
        yield
    finally:
        for fd in reversed(held):
            with contextlib.suppress(OSError):  # a stale name in a free lock misleads no one
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the flock


def _open_lock(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OutputError(
                f"{path}: the lock path is a symbolic link. m3-profiles takes its run lock "
                "only on a plain file of its own; remove the link and run again"
            ) from None
        if e.errno == errno.EISDIR:
            raise OutputError(
                f"{path}: the lock path is a folder, not the run's lock file; remove it and "
                "run again"
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "is not a plain file" if not stat.S_ISREG(st.st_mode) else "is a hard link"
        raise OutputError(
            f"{path}: the lock path {what}. m3-profiles takes its run lock only on a plain "
            "file of its own; remove it and run again"
        )
    return fd


def _lock_holder(fd: int) -> str:
    """What the lock file says of its holder: "run <id>, pid <pid> on <host>, started <time>";
    empty while the holder has not written it yet."""
    try:
        who = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return ""
    if not isinstance(who, dict) or not who:
        return ""
    return (
        f"held by run {who.get('run_id', '?')}, pid {who.get('pid', '?')} on "
        f"{who.get('host', '?')}, started {who.get('started', '?')}"
    )
