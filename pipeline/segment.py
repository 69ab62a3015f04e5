"""Segmentation: from the staged export to one row per citizen (definitions §1-§5, §7).

Reads `staging.citizens` and `staging.episodes`; writes, in one transaction, the tables
`marts.profiles` (the rules, for labels) and `marts.citizens` (one row per citizen: scope, age
band, course class, M3 time, profile with the rule and flags that made it), and the views
`marts.episode_marks` (episodes marked for the merges), `marts.courses` (citizen × course of
public support) and `marts.m3_stretches` (citizen × stretch in an M3-equivalent group). Then
runs the data checks listed in `CHECKS` and returns the headline figures. `export_citizens`
writes `citizens.parquet` (interface: in-scope citizens only).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import Config, ConfigError
from pipeline.rules import Rules
from pipeline.warehouse import bind, check, create_table_as, create_view_as, sql_text

# Built in this order (each reads only staging and the models before it).
MODELS: tuple[str, ...] = (
    "marts.episode_marks",
    "marts.courses",
    "marts.m3_stretches",
    "marts.profiles",
    "marts.citizens",
)
# Kept as views: marts.citizens reads the marks in its own query, and nothing in a run reads
# the course and stretch rows, which took half the stage's time to write at 1,000,000
# citizens; an analyst's query computes them (for one citizen, at once).
VIEWS: frozenset[str] = frozenset({"marts.episode_marks", "marts.courses", "marts.m3_stretches"})
# Run after the models, inside the same transaction: a failure rolls the marts back.
CHECKS: tuple[str, ...] = (
    "marts__citizens__one_row_per_citizen",
    "marts__citizens__profile_source",
    "marts__citizens__consistent_measures",
)
# The checks of the views: each computes its view, so the test suite runs them (on every
# generated history), not the run.
VIEW_CHECKS: tuple[str, ...] = (
    "marts__courses__no_overlap",
    "marts__m3_stretches__no_overlap",
)
# interface: the columns of citizens.parquet, in this order.
EXPORT_COLUMNS: tuple[str, ...] = (
    "citizen_id", "profile", "base_profile", "rule", "profile_source", "profile_probability",
    "age", "age_band", "course_class", "current_course_days", "support_days_total",
    "m3_days", "m3_band", "misuse_any", "complex_case",
)  # fmt: skip
PROFILE_SOURCES: tuple[str, ...] = ("rules", "model", "unreviewed")
M3_BANDS: tuple[str, ...] = ("under_1y", "1_to_2y", "2y_plus", "not_in_m3")
COURSE_CLASSES: tuple[str, ...] = (
    "long_continuous", "short_continuous", "several_separate", "no_history",
)  # fmt: skip

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@dataclass(frozen=True)
class SegmentResult:
    """Counts and headline figures of one segmentation run (definitions §5).

    Shares are fractions (0-1) of the in-scope citizens, None when there are none; profile
    shares are of the in-scope citizens that have a profile (`unreviewed` counted apart).
    """

    reference_date: dt.date
    rules_version: str
    rules_sha256: str
    citizens: int
    in_scope: int
    # in-scope citizens by profile source: rules / model / unreviewed (all keys present)
    by_profile_source: dict[str, int]
    episodes: int
    # definitions §7: episodes starting after the reference date, ignored
    episodes_after_reference: int
    courses: int
    m3_stretches: int
    # in-scope citizens per profile, every code in rule order (zeros included)
    profile_counts: dict[str, int]
    profile_shares: dict[str, float | None]
    share_m3_over_1y: float | None
    share_long_continuous: float | None
    share_complex_case: float | None

    @property
    def unreviewed(self) -> int:
        """In-scope citizens without a trustworthy profile (counted apart in the headline)."""
        return self.by_profile_source["unreviewed"]

    def summary_lines(self) -> list[str]:
        """The run summary's lines (definitions §5 headline figures, plain text)."""

        def pct(share: float | None) -> str:
            return "-" if share is None else f"{100 * share:.1f} %"

        profiled = sum(self.profile_counts.values())
        lines = [
            f"Reference date {self.reference_date.isoformat()}; rules {self.rules_version}.",
            f"Citizens: {self.citizens:,}; in scope: {self.in_scope:,}"
            f" (with a profile from the rules: {self.by_profile_source['rules']:,},"
            f" model: {self.by_profile_source['model']:,},"
            f" unreviewed: {self.unreviewed:,}).",
            f"Episodes: {self.episodes:,}; ignored, starting after the reference date:"
            f" {self.episodes_after_reference:,}.",
            f"Profiles (of {profiled:,} in scope with a profile): "
            + ", ".join(f"{k} {pct(v)}" for k, v in self.profile_shares.items())
            + ".",
            f"More than one year in M3: {pct(self.share_m3_over_1y)}; continuous course longer"
            f" than three years: {pct(self.share_long_continuous)}; complex cases:"
            f" {pct(self.share_complex_case)}.",
        ]
        return lines

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for run.json and the report)."""
        d = asdict(self)
        d["reference_date"] = self.reference_date.isoformat()
        return d


def age_band_codes(bands: tuple[int, ...]) -> tuple[str, ...]:
    """Band codes from the lower bounds: (25, 30, 60) -> under_25, 25_29, 30_59, 60_plus."""
    if not bands:
        return ("all_ages",)
    middle = [f"{lo}_{hi - 1}" for lo, hi in zip(bands, bands[1:], strict=False)]
    return (f"under_{bands[0]}", *middle, f"{bands[-1]}_plus")


def model_params(cfg: Config, rules: Rules) -> dict[str, Any]:
    """The named parameters of the marts models and checks (each takes the ones it uses)."""
    cfg = cfg.resolved()
    if len(cfg.m3_band_days) != 2:
        raise ConfigError(
            "m3_band_days must have exactly two edges (under_1y | 1_to_2y | 2y_plus),"
            f" got {list(cfg.m3_band_days)}"
        )
    return {
        "reference_date": cfg.reference_date,
        "course_gap_days": cfg.course_gap_days,
        "long_course_days": cfg.long_course_days,
        "support_excluded": list(cfg.support_excluded),
        "m3_groups": list(cfg.m3_groups),
        "scope": cfg.scope,
        "age_bands": list(cfg.age_bands),
        "age_band_codes": list(age_band_codes(cfg.age_bands)),
        "m3_band_days": list(cfg.m3_band_days),
        "complex_case_departments": cfg.complex_case_departments,
        "rules_version": rules.version,
        "rule_codes": [r.code for r in rules.rules],
        "rule_labels_da": [r.label_da for r in rules.rules],
        "rule_labels_en": [r.label_en for r in rules.rules],
        "rule_depths": [r.depth for r in rules.rules],
        "rule_conditions": [r.condition.text for r in rules.rules],
        "base_rule_codes": [r.code for r in rules.base_rules],
    }


def rule_placeholders(rules: Rules) -> dict[str, str]:
    """SQL expressions compiled from the validated rules, for the model's placeholders."""
    return {
        "rule": rules.rule_sql(),
        "base_profile": rules.base_profile_sql(),
        "matched_flags": rules.matched_flags_sql('"rule"'),
    }


def model_sql(name: str, placeholders: Mapping[str, str]) -> str:
    """The model's SQL with its `{{ name }}` placeholders filled (see marts/citizens.sql)."""

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in placeholders:
            raise KeyError(f"model {name} has an unknown placeholder {m.group(0)}")
        return placeholders[m.group(1)]

    return _PLACEHOLDER.sub(fill, sql_text(name))


def build_model(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Mapping[str, Any],
    placeholders: Mapping[str, str],
) -> None:
    """Replace table (or view, if in `VIEWS`) `name` with its model's result."""
    sql = model_sql(name, placeholders)
    if name in VIEWS:
        create_view_as(con, name, sql, params)
    else:
        create_table_as(con, name, sql, bind(sql, params))


def segment(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules) -> SegmentResult:
    """Build the marts from staging in one transaction, check them, return the headline."""
    cfg = cfg.resolved()
    params = model_params(cfg, rules)
    placeholders = rule_placeholders(rules)
    con.execute("begin transaction")
    try:
        for name in MODELS:
            build_model(con, name, params, placeholders)
        for name in CHECKS:
            check(con, name, params)
        result = _summarise(con, cfg, rules)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return result


def _share(n: int, total: int) -> float | None:
    return n / total if total else None


def _summarise(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules) -> SegmentResult:
    totals = con.execute(
        """
        select
            count(*),
            coalesce(sum(courses), 0),
            coalesce(sum(m3_stretches), 0),
            count(*) filter (where in_scope),
            count(*) filter (where in_scope and m3_days >= $one_year),
            count(*) filter (where in_scope and course_class = 'long_continuous'),
            count(*) filter (where in_scope and complex_case)
        from marts.citizens
        """,
        # definitions §5: "more than one year in M3" = the lower edge of the 1_to_2y band
        {"one_year": cfg.m3_band_days[0]},
    ).fetchall()[0]
    (citizens, courses, stretches, in_scope, m3_over_1y, long_continuous, complex_case) = totals
    by_source = dict.fromkeys(PROFILE_SOURCES, 0)
    by_source.update(
        con.execute(
            "select profile_source, count(*) from marts.citizens where in_scope group by all"
        ).fetchall()
    )
    profile_counts = dict.fromkeys(rules.codes, 0)
    profile_counts.update(
        con.execute(
            "select profile, count(*) from marts.citizens"
            " where in_scope and profile is not null group by all"
        ).fetchall()
    )
    profiled = sum(profile_counts.values())
    episodes, after = con.execute(
        "select count(*), count(*) filter (where start_date > $reference_date)"
        " from staging.episodes",
        {"reference_date": cfg.reference_date},
    ).fetchall()[0]
    return SegmentResult(
        reference_date=cfg.reference_date,
        rules_version=rules.version,
        rules_sha256=rules.sha256,
        citizens=citizens,
        in_scope=in_scope,
        by_profile_source=by_source,
        episodes=episodes,
        episodes_after_reference=after,
        courses=courses,
        m3_stretches=stretches,
        profile_counts=profile_counts,
        profile_shares={k: _share(v, profiled) for k, v in profile_counts.items()},
        share_m3_over_1y=_share(m3_over_1y, in_scope),
        share_long_continuous=_share(long_continuous, in_scope),
        share_complex_case=_share(complex_case, in_scope),
    )


def export_citizens(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    """Write the in-scope citizens to parquet (interface columns, ordered by citizen_id).

    `path` is the file, or a folder to hold `citizens.parquet`. Returns the file written.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "citizens.parquet"
    columns = ", ".join(f'"{c}"' for c in EXPORT_COLUMNS)
    con.execute(
        f"copy (select {columns} from marts.citizens where in_scope order by citizen_id)"
        " to $path (format parquet)",
        {"path": str(path)},
    )
    return path
