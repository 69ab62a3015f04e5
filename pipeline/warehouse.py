"""The DuckDB warehouse: connect, load SQL models shipped with the package, build them, run
data checks.

Layers are schemas (`raw`, `staging`, `quarantine`, `marts`, `meta`). A model is one file
`pipeline/sql/<layer>/<table>.sql` holding one `select`; `build(con, "staging.citizens",
params)` replaces the table `staging.citizens` with its result. A model can instead be kept as
a view (`create_view_as`), computed when read. A check is a query in `pipeline/sql/checks/`
that returns the offending rows: zero rows = pass.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

LAYERS = ("raw", "staging", "quarantine", "marts", "meta")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class CheckFailed(RuntimeError):
    """A data check returned rows: a stage produced something the definitions forbid."""


def connect(path: Path | str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, creating the layer schemas; never download extensions."""
    con = duckdb.connect(
        str(path),
        read_only=read_only,
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    if not read_only:
        for layer in LAYERS:
            con.execute(f"create schema if not exists {layer}")
    return con


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
    schema, relation = name.split(".", 1)
    table_type = "VIEW" if kind == "view" else "BASE TABLE"
    found = con.execute(
        "select count(*) from information_schema.tables where table_catalog = current_database()"
        " and table_schema = $schema and table_name = $relation and table_type = $type",
        {"schema": schema, "relation": relation, "type": table_type},
    ).fetchall()[0][0]
    if found:
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


def build(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] = {}) -> int:
    """Replace table `name` with its model's result; return its row count."""
    sql = sql_text(name)
    create_table_as(con, name, sql, bind(sql, params))
    return con.execute(f"select count(*) from {name}").fetchone()[0]


def build_all(
    con: duckdb.DuckDBPyConnection, names: Iterable[str], params: Mapping[str, Any] = {}
) -> dict[str, int]:
    """Build models in the given (dependency) order; return row counts by model."""
    return {name: build(con, name, params) for name in names}


def check(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] = {}) -> None:
    """Run data check `checks.<name>`; raise CheckFailed with a sample if it returns rows."""
    sql = sql_text(f"checks.{name}")
    rel = con.execute(sql, bind(sql, params))
    rows = rel.fetchmany(5)
    if rows:
        raise CheckFailed(f"data check {name} failed; first offending rows: {rows}")


def available_checks(prefix: str) -> list[str]:
    """Names of the shipped checks whose file name starts with `prefix` (e.g. "staging__")."""
    folder = resources.files("pipeline") / "sql" / "checks"
    return sorted(
        p.name.removesuffix(".sql")
        for p in folder.iterdir()
        if p.name.startswith(prefix) and p.name.endswith(".sql")
    )
