"""The warehouse helpers: models kept as views get their parameters written in as literals."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.warehouse import connect, create_table_as, create_view_as, sql_literal


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (30, "30"),
        (-2, "-2"),
        (0.5, "0.5"),
        ("fleksjob", "'fleksjob'"),
        ("it's", "'it''s'"),
        (dt.date(2024, 6, 30), "date '2024-06-30'"),
        (["3", "aktivitetsparat"], "['3', 'aktivitetsparat']"),
        ((365, 730), "[365, 730]"),
        ([], "[]"),
    ],
)
def test_sql_literal(value, literal):
    assert sql_literal(value) == literal


def test_sql_literal_refuses_what_it_cannot_write():
    with pytest.raises(TypeError, match="datetime"):
        sql_literal(dt.datetime(2024, 6, 30, 12, 0))
    with pytest.raises(TypeError, match="inf"):
        sql_literal(float("inf"))


@given(st.text())
def test_text_literals_read_back_as_the_same_text(text):
    con = connect()
    assert con.execute(f"select {sql_literal(text)}").fetchall() == [(text,)]


def test_view_holds_the_values_it_was_made_with():
    con = connect()
    con.execute("create table marts.t as select * from range(10) r(i)")
    sql = (
        "-- rows below $limit; $unknown in a comment is left alone\n"
        "select i, $day as day from marts.t where i < $limit and $names::varchar[] <> []"
    )
    params = {"limit": 3, "day": dt.date(2024, 6, 30), "names": ["a'b"], "unused": 1}
    create_view_as(con, "marts.v", sql, params)
    assert con.execute("select i, day from marts.v order by i").fetchall() == [
        (0, dt.date(2024, 6, 30)), (1, dt.date(2024, 6, 30)), (2, dt.date(2024, 6, 30)),
    ]  # fmt: skip
    # the stored SQL shows the values (DuckDB keeps its own rendering of the query)
    (stored,) = con.execute("select sql from duckdb_views() where view_name = 'v'").fetchone()
    assert "'2024-06-30'" in stored and "(i < 3)" in stored and "'a''b'" in stored
    assert "$" not in stored


def test_view_needs_every_parameter_its_query_uses():
    con = connect()
    with pytest.raises(KeyError, match="limit"):
        create_view_as(con, "marts.v", "select $limit as n", {})


def test_a_model_can_change_from_table_to_view_and_back():
    con = connect()
    create_table_as(con, "marts.m", "select 1 as n")
    create_view_as(con, "marts.m", "select $n as n", {"n": 2})
    assert con.execute("select n from marts.m").fetchall() == [(2,)]
    assert con.execute(
        "select count(*) from duckdb_tables() where table_name = 'm'"
    ).fetchall() == [(0,)]
    create_table_as(con, "marts.m", "select 3 as n")
    assert con.execute("select n from marts.m").fetchall() == [(3,)]
    assert con.execute("select count(*) from duckdb_views() where view_name = 'm'").fetchall() == [
        (0,)
    ]


# --- a Python model step, as docs/architecture.md shows it ----------------------------------


def doubled_model(con, ctx):
    """A Python model: a pandas frame computed from a table before it, scaled by the config's
    min_cell (so the context reaches it)."""
    frame = con.execute("select id, n from marts.numbers order by id").df()
    frame["n"] = frame["n"] * ctx.cfg.min_cell
    return frame


def test_a_python_model_is_written_like_a_sql_model_in_the_stage_transaction():
    from pipeline.config import Config
    from pipeline.registry import Context, Model
    from pipeline.warehouse import CheckFailed, build, transaction

    con = connect()
    con.execute("create table marts.numbers as select * from (values (1, 2), (2, 3)) t(id, n)")
    model = Model("marts.doubled", "segment", python=f"{__name__}:doubled_model")
    build(con, model, Context(Config(min_cell=10)))
    assert con.execute("select id, n from marts.doubled order by id").fetchall() == [
        (1, 20), (2, 30)
    ]
    # rebuilt in a stage whose check then fails: the stage is rolled back, the table is as
    # it was
    with pytest.raises(CheckFailed), transaction(con):
        build(con, model, Context(Config(min_cell=100)))
        assert con.execute("select sum(n) from marts.doubled").fetchone() == (500,)
        raise CheckFailed("a check after the model failed")
    assert con.execute("select sum(n) from marts.doubled").fetchone() == (50,)
