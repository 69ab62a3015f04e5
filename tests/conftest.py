"""Shared fixtures: small real warehouses (never mocks)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import settings

from pipeline.vocabulary import FLAG_COLUMNS
from pipeline.warehouse import connect

# No wall-clock deadline: the properties here run DuckDB queries, whose time on a loaded
# 2-core machine says nothing about the code (a 200 ms deadline failed one CI run in three).
# A failure prints the blob that reproduces it. In CI (CI=true) the examples are the same on
# every run, so a red build is reproduced by running it again.
settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

# The staging layer as ingest writes it (the contract segment reads).
STAGING_DDL = f"""
create table staging.citizens (
    citizen_id varchar primary key, birth_year integer, sex varchar,
    municipality_code integer, match_group varchar, reviewed boolean not null,
    {", ".join(f"{c} boolean not null" for c in FLAG_COLUMNS)},
    departments_involved integer, notes varchar, _file varchar, _line bigint
);
create table staging.episodes (
    citizen_id varchar not null, start_date date not null, end_date date,
    benefit varchar not null, match_group varchar, _file varchar, _line bigint
);
"""

CITIZEN_DEFAULTS: dict[str, Any] = {
    "birth_year": 1980, "sex": None, "municipality_code": 320, "match_group": None,
    "reviewed": True, **dict.fromkeys(FLAG_COLUMNS, False),
    "departments_involved": None, "notes": None,
}  # fmt: skip
EPISODE_DEFAULTS: dict[str, Any] = {
    "end_date": None,
    "benefit": "kontanthjaelp",
    "match_group": None,
}

StagingFactory = Callable[
    [Iterable[Mapping[str, Any]], Iterable[Mapping[str, Any]]], duckdb.DuckDBPyConnection
]


def load_staging(
    citizens: Iterable[Mapping[str, Any]], episodes: Iterable[Mapping[str, Any]] = ()
) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory warehouse whose staging holds these rows (unset columns: defaults)."""
    con = connect()
    con.execute(STAGING_DDL)
    for table, rows, defaults in (
        ("citizens", citizens, CITIZEN_DEFAULTS),
        ("episodes", episodes, EPISODE_DEFAULTS),
    ):
        rows = [
            {**defaults, **r, "_file": f"{table}.csv", "_line": i + 2} for i, r in enumerate(rows)
        ]
        if rows:
            cols = list(rows[0])
            con.executemany(
                f"insert into staging.{table} ({', '.join(cols)}) values"
                f" ({', '.join('?' for _ in cols)})",
                [[r[c] for c in cols] for r in rows],
            )
    return con


@pytest.fixture(scope="session")
def staging() -> StagingFactory:
    """Factory: `staging(citizens, episodes)` -> connection to a new in-memory warehouse."""
    return load_staging


def snapshot(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path: "left byte for byte"."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
