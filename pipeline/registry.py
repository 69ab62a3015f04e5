"""Every model of the warehouse, declared once: its name (= layer and table), the stage that
builds it, whether it is kept as a view, whether it is SQL or Python, and the data checks run
after it.

A stage is "build the models of my stage, in the order declared here, in one transaction,
each followed by its checks" (`warehouse.build_stage`). The order is the dependency order:
a model reads only the sources and the models declared before it (a test parses every SQL
model and checks this).

- **SQL model**: the file `pipeline/sql/<layer>/<table>.sql`, one `select`, taking DuckDB
  named parameters (`$reference_date`) and, for the rule expressions, `{{ placeholders }}`.
- **Python model**: `python="module:function"`, a function `(con, ctx) -> frame` returning a
  `pyarrow.Table` or `pandas.DataFrame`; the warehouse writes it as the table, by the same
  mechanism as a SQL model's result. Imported only when built (the report's scipy need not
  load for ingest). See `docs/architecture.md` for a worked example.
- **Sources** are written by Python before a stage's models: `raw.*`, the files as read.
- **Checks** (`pipeline/sql/checks/<name>.sql`) return offending rows; zero rows = pass.
  `checks` run in the stage's transaction, so a failure rolls the stage back; `tested` are
  the checks too costly for a run (each computes a view): the test suite runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from pipeline.config import Config
from pipeline.vocabulary import TABLES

STAGES: tuple[str, ...] = ("ingest", "segment", "report")

# Written by `ingest.load_raw` from the files as read: every layer's origin.
SOURCES: tuple[str, ...] = ("raw.citizens", "raw.episodes")


@dataclass(frozen=True)
class Model:
    """One table or view of the warehouse and how it is made."""

    name: str  # "<layer>.<table>"
    stage: str
    view: bool = False
    python: str | None = None  # "module:function"; None = pipeline/sql/<layer>/<table>.sql
    checks: tuple[str, ...] = ()
    tested: tuple[str, ...] = ()

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split(".", 1)[1]

    def function(self) -> Callable[..., Any]:
        """The Python model's function (imported now)."""
        assert self.python is not None, f"{self.name} is a SQL model"
        module, name = self.python.split(":")
        return getattr(import_module(module), name)


@dataclass(frozen=True)
class Context:
    """What a stage's models are built with.

    `params`: the named parameters of the SQL models and checks (each takes the ones it
    uses). `placeholders`: SQL expressions compiled from the validated rules file, for the
    `{{ name }}` placeholders. `inputs`: what the stage hands its Python models that is not
    in the warehouse (ingest: the files' facts; report: `previous`, the last release
    published from the output folder, or None)."""

    cfg: Config
    params: Mapping[str, Any] = field(default_factory=dict)
    placeholders: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)


MODELS: tuple[Model, ...] = (
    # ingest: type and validate the raw layer; every rejected row with its reason
    Model("quarantine.citizen_problems", "ingest"),
    Model("staging.citizens", "ingest", checks=("staging__citizens__unique_id",)),
    Model("quarantine.episode_problems", "ingest"),
    Model("staging.episodes", "ingest", checks=("staging__episodes__known_citizen",)),
    Model("quarantine.rows", "ingest"),
    # the run's facts, for the manifest and for a later stage run on its own: the files read
    # (name, SHA-256, encoding) and the rows each gave
    Model("meta.input_files", "ingest", python="pipeline.ingest:input_files_model"),
    Model("meta.row_counts", "ingest", checks=("meta__row_counts__reconcile",)),
    # segment: definitions §1-§5, one row per citizen. The marks are a view: marts.citizens
    # reads them in its own query, and nothing in a run reads the course and stretch rows,
    # which took half the stage's time to write at 1,000,000 citizens; an analyst's query
    # computes them (for one citizen, at once).
    Model("marts.episode_marks", "segment", view=True),
    Model("marts.courses", "segment", view=True, tested=("marts__courses__no_overlap",)),
    Model(
        "marts.m3_stretches", "segment", view=True, tested=("marts__m3_stretches__no_overlap",)
    ),
    Model("marts.profiles", "segment"),
    # the rules' profiles of the reviewed, and every measure; the model (issue 15) learns the
    # flags of the unreviewed from them, and marts.citizens joins its predictions back
    Model("marts.citizens_ruled", "segment"),
    Model(
        "marts.predictions",
        "segment",
        python="pipeline.model:predictions_model",
        checks=("marts__predictions__probabilities_in_range",),
    ),
    # the model's cross-validated evaluation on the reviewed (internal)
    Model("marts.model_evaluation", "segment", python="pipeline.model_eval:evaluation_model"),
    # the AI Act's record-keeping: every prediction of the run, with the model's version
    Model("marts.prediction_log", "segment"),
    Model(
        "marts.citizens",
        "segment",
        checks=(
            "marts__citizens__one_row_per_citizen",
            "marts__citizens__profile_source",
            "marts__citizens__consistent_measures",
        ),
    ),
    # the flags the tables count: recorded, or predicted for a model-assigned citizen
    Model("marts.case_flags", "segment", view=True),
    # movement, definitions §8 (docs/definitions-movement.md): views, computed when asked
    # for (`m3-profiles movement`), nothing in a run reads them
    Model("marts.cohort_status", "segment", view=True),
    Model("marts.m3_spells", "segment", view=True),
    # report: the citizens are scanned once, into the profile groups; every table is counted
    # from their few hundred rows. profile_distribution has no model of its own: its one
    # column is the total column of every table.
    Model(
        "marts.profile_groups", "report", checks=("marts__profile_groups__counts_every_citizen",)
    ),
    Model("marts.profile_group_flags", "report"),
    *(Model(t.model, "report") for t in TABLES if t.model),
    Model(
        "marts.table_cells",
        "report",
        checks=(
            "marts__table_cells__complete",
            "marts__table_cells__totals_add_up",
            "marts__table_cells__shared_numbers_agree",
        ),
    ),
    # movement (definitions §8.5): the cohort table, counted; its numbers join the one
    # suppression pattern of marts.suppressed_cells (pipeline.movement.cohort_relations).
    # Before release_cells: the coarsening judges a level on the pattern the release will
    # have, so it solves with the cohort's numbers and their link to the profile tables too
    Model("marts.cohort_cells", "report"),
    # definitions §6: every table at the level of its hierarchy chosen for the release (a
    # table that would hide too many of its citizens has columns merged; internal)
    Model("marts.release_cells", "report", python="pipeline.coarsening:release_cells_model"),
    # the time-to-leave curve as published: a monthly grid, while enough are followed
    Model("marts.survival_points", "report", python="pipeline.movement:survival_points_model"),
    # definitions §6: the cells hidden, and why (internal)
    Model("marts.suppressed_cells", "report", python="pipeline.release:suppressed_cells_model"),
    Model(
        "marts.published_cells",
        "report",
        checks=(
            "marts__published_cells__no_small_count_shown",
            "marts__published_cells__shares_need_both",
            "marts__published_cells__shared_numbers_all_or_none",
        ),
    ),
    # the cohort table as published (definitions §8.5)
    Model("marts.published_cohort", "report",
          checks=("marts__published_cohort__no_small_count_shown",)),
    # issue 17: the re-review worklist (internal, never published: pseudonymous ids), from
    # the worklist file's reasons (`pipeline.worklist`)
    Model("marts.worklist", "report"),
)

BY_NAME: Mapping[str, Model] = {m.name: m for m in MODELS}


def stage_models(stage: str) -> tuple[Model, ...]:
    """The models `stage` builds, in build order."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return tuple(m for m in MODELS if m.stage == stage)

