"""The registry (`pipeline/registry.py`) is the one list of models: every model in it exists
(as a SQL file or an importable function), every SQL file and check shipped is in it (nothing
orphaned), and every model reads only the sources and the models declared before it (so the
declared order is a dependency order)."""

from __future__ import annotations

import inspect
import re
from importlib import resources

import pytest

from pipeline.registry import BY_NAME, MODELS, SOURCES, STAGES, stage_models
from pipeline.vocabulary import TABLES

SQL = resources.files("pipeline") / "sql"
LAYERS = ("raw", "staging", "quarantine", "marts", "meta")
# a relation named in SQL: <layer>.<table> (a column of an alias, e.g. `cell.hidden`, has no
# layer for its prefix)
RELATION = re.compile(rf"\b({'|'.join(LAYERS)})\.([a-z_][a-z0-9_]*)\b")


def _sql_without_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def _reads(model_name: str) -> set[str]:
    layer, table = model_name.split(".")
    text = _sql_without_comments((SQL / layer / f"{table}.sql").read_text("utf-8"))
    return {f"{a}.{b}" for a, b in RELATION.findall(text)} - {model_name}


def test_names_are_unique_and_stages_known():
    assert len(BY_NAME) == len(MODELS)
    assert {m.stage for m in MODELS} == set(STAGES)
    assert all(m.layer in LAYERS for m in MODELS)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_every_model_exists(model):
    if model.python is None:
        assert (SQL / model.layer / f"{model.table}.sql").is_file()
    else:
        fn = model.function()
        assert list(inspect.signature(fn).parameters) == ["con", "ctx"]
        assert not (SQL / model.layer / f"{model.table}.sql").is_file()  # one definition


def test_every_sql_file_is_a_registered_model():
    shipped = {
        f"{folder.name}.{f.name.removesuffix('.sql')}"
        for folder in SQL.iterdir()
        if folder.is_dir() and folder.name in LAYERS
        for f in folder.iterdir()
        if f.name.endswith(".sql")
    }
    sql_models = {m.name for m in MODELS if m.python is None}
    assert shipped == sql_models


def test_every_check_runs_somewhere_and_exists():
    declared = [c for m in MODELS for c in (*m.checks, *m.tested)]
    shipped = {f.name.removesuffix(".sql") for f in (SQL / "checks").iterdir()
               if f.name.endswith(".sql")}
    assert len(declared) == len(set(declared))  # each check after one model
    assert set(declared) == shipped


@pytest.mark.parametrize(
    "model", [m for m in MODELS if m.python is None], ids=lambda m: m.name
)
def test_a_model_reads_only_what_is_built_before_it(model):
    before = set(SOURCES)
    for m in MODELS:
        if m is model:
            break
        before.add(m.name)
    assert _reads(model.name) <= before, _reads(model.name) - before


def test_a_check_reads_only_its_model_and_what_came_before():
    for i, model in enumerate(MODELS):
        available = {*SOURCES, *(m.name for m in MODELS[: i + 1])}
        for name in (*model.checks, *model.tested):
            text = _sql_without_comments((SQL / "checks" / f"{name}.sql").read_text("utf-8"))
            reads = {f"{a}.{b}" for a, b in RELATION.findall(text)}
            assert reads <= available, (name, reads - available)


def test_every_published_table_has_its_count_model():
    report = {m.name for m in stage_models("report")}
    assert {t.model for t in TABLES if t.model} <= report
    # the one table without a model is the one whose column is every table's total column
    assert [t.id for t in TABLES if t.model is None] == ["profile_distribution"]


def test_every_query_file_is_used_by_the_library():
    # pipeline/sql/queries/ holds what a stage reads back to report on (no model): each is
    # run by name through warehouse.query, so a file no module names is dead
    library = "\n".join(
        p.read_text("utf-8") for p in resources.files("pipeline").iterdir()
        if p.name.endswith(".py")
    )
    for f in (SQL / "queries").iterdir():
        if f.name.endswith(".sql"):
            name = f.name.removesuffix(".sql")
            assert f'"{name}"' in library, name
