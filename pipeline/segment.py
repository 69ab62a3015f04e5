"""Segmentation: from the staged export to one row per citizen (definitions §1-§5, §7).

Reads `staging.citizens` and `staging.episodes`; builds the registry's segment models in one
transaction (`pipeline.registry`: `marts.profiles`, the rules for labels and order;
`marts.citizens`, one row per citizen: scope, age band, course class, M3 time, profile with
the rule and flags that made it; the views `marts.episode_marks`, `marts.courses` and
`marts.m3_stretches`), runs their checks and returns the headline figures.
`export_citizens` writes `citizens.parquet` (interface: in-scope citizens only).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline import privacy, warehouse
from pipeline.config import Config, ConfigError
from pipeline.registry import Context
from pipeline.rules import Rules
from pipeline.vocabulary import EXPORT_COLUMNS, PROFILE_SOURCES, age_band_codes


@dataclass(frozen=True)
class SegmentResult:
    """Counts and headline figures of one segmentation run (definitions §5).

    Shares are fractions (0-1) of the tabulated citizens (in scope, with a profile: the
    citizens the report's tables count, so the run summary and the page state one number for
    one figure), None when there are none; `unreviewed` are counted apart.
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
    # the citizens the tables count: in scope, with a profile
    tabulated: int
    # tabulated citizens per profile, every code in rule order (zeros included)
    profile_counts: dict[str, int]
    profile_shares: dict[str, float | None]
    share_m3_over_1y: float | None
    share_long_continuous: float | None
    share_complex_case: float | None

    @property
    def unreviewed(self) -> int:
        """In-scope citizens without a trustworthy profile (counted apart in the headline)."""
        return self.by_profile_source["unreviewed"]

    def summary_lines(self, internal: bool = True) -> list[str]:
        """The run summary's lines (plain text). `internal`: with the counts and the headline
        shares segment computed, unsuppressed, labelled internal (segment run on its own);
        a run that made a report prints only what it publishes (`ReportResult.summary_lines`)
        and takes the first line alone."""

        def pct(share: float | None) -> str:
            return "-" if share is None else f"{100 * share:.1f}%"

        lines = [f"Reference date {self.reference_date.isoformat()}; rules {self.rules_version}."]
        if not internal:
            return lines
        return lines + [
            "INTERNAL, not for publication (unsuppressed counts; 'm3-profiles report' makes"
            " the publishable figures):",
            f"Citizens: {self.citizens:,}; in scope: {self.in_scope:,}"
            f" (with a profile from the rules: {self.by_profile_source['rules']:,},"
            f" model: {self.by_profile_source['model']:,},"
            f" unreviewed: {self.unreviewed:,}).",
            f"Episodes: {self.episodes:,}; ignored, starting after the reference date:"
            f" {self.episodes_after_reference:,}.",
            f"Of the {self.tabulated:,} in scope with a profile: "
            + ", ".join(f"{k} {pct(v)}" for k, v in self.profile_shares.items())
            + f"; more than one year in M3 {pct(self.share_m3_over_1y)}; continuous course"
            f" longer than three years {pct(self.share_long_continuous)}; complex cases"
            f" {pct(self.share_complex_case)}.",
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for run.json and the report)."""
        d = asdict(self)
        d["reference_date"] = self.reference_date.isoformat()
        return d


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
        "cohort_months": cfg.cohort_months,
        "survival_window_days": cfg.survival_window_days,
        "rules_version": rules.version,
        "rules_sha256": rules.sha256,
        # what the page and a later report's manifest name: never a path whose folders may
        # hold a CPR number (issue 12)
        "rules_source": privacy.mask_name(rules.source),
        "rule_codes": [r.code for r in rules.rules],
        "rule_labels_da": [r.label_da for r in rules.rules],
        "rule_labels_en": [r.label_en for r in rules.rules],
        "rule_depths": [r.depth for r in rules.rules],
        "rule_conditions": [r.condition.text for r in rules.rules],
        "base_rule_codes": [r.code for r in rules.base_rules],
        "base_rule_conditions": [r.condition.text for r in rules.base_rules],
    }


def rule_placeholders(rules: Rules) -> dict[str, str]:
    """SQL expressions compiled from the validated rules, for the model's placeholders."""
    return {
        "rule": rules.rule_sql(),
        "base_profile": rules.base_profile_sql(),
        "matched_flags": rules.matched_flags_sql('"rule"'),
    }


def context(cfg: Config, rules: Rules) -> Context:
    """What the segment models are built with."""
    return Context(cfg, model_params(cfg, rules), rule_placeholders(rules))


def segment(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules) -> SegmentResult:
    """Build the marts from staging in one transaction, check them, return the headline."""
    cfg = cfg.resolved()
    with warehouse.transaction(con):
        warehouse.build_stage(con, "segment", context(cfg, rules))
        return _summarise(con, cfg, rules)


def _share(n: int, total: int) -> float | None:
    return n / total if total else None


def _summarise(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules) -> SegmentResult:
    # definitions §5: "more than one year in M3" = the lower edge of the 1_to_2y band
    totals = warehouse.query(con, "citizen_totals", {"one_year": cfg.m3_band_days[0]}).fetchone()
    (citizens, courses, stretches, in_scope, tabulated, m3_over_1y, long_continuous,
     complex_case) = totals
    by_source = dict.fromkeys(PROFILE_SOURCES, 0)
    by_source.update(
        con.execute(
            "select profile_source, count(*) from marts.citizens where in_scope group by all"
        ).fetchall()
    )
    profile_counts = dict.fromkeys(rules.codes, 0)
    profile_counts.update(
        con.execute(
            "select profile, count(*) from marts.citizens where tabulated group by all"
        ).fetchall()
    )
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
        tabulated=tabulated,
        profile_shares={k: _share(v, tabulated) for k, v in profile_counts.items()},
        share_m3_over_1y=_share(m3_over_1y, tabulated),
        share_long_continuous=_share(long_continuous, tabulated),
        share_complex_case=_share(complex_case, tabulated),
    )


def export_citizens(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    """Write the in-scope citizens to parquet (interface columns, ordered by citizen_id).

    `path` is the file, or a folder to hold `citizens.parquet`. Returns the file written.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "citizens.parquet"
    columns = ", ".join(f'"{c}"' for c in EXPORT_COLUMNS)
    return warehouse.copy_to(
        con, f"select {columns} from marts.citizens where in_scope order by citizen_id", path
    )
