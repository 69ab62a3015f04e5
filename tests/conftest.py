"""Shared fixtures: small real warehouses (never mocks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import duckdb
import pytest

from pipeline.vocabulary import FLAG_COLUMNS
from pipeline.warehouse import connect

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
