"""The contract's vocabulary, defined once: the columns of the export, the codes the
definitions use (benefits, match groups, course classes, M3 bands, age bands, profile
sources), the published tables and the languages. Everything else imports these names; the
SQL models take them as parameters where they need them.

Settings a municipality may change (which groups count as M3, the band edges, the support
set) are not here but in `pipeline.config` with their defaults: what counts as M3 is data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# data contract: the citizens table (one row per citizen) and the episodes table
CITIZEN_COLUMNS: tuple[str, ...] = (
    "citizen_id", "birth_year", "sex", "municipality_code", "match_group", "reviewed",
    "physical_illness", "psych_diagnosis", "psych_undiagnosed",
    "alcohol", "soft_drugs", "hard_drugs", "potential_m2",
    "focus_ordinary_work", "focus_upskilling", "focus_support_scheme", "focus_activation",
    "focus_physical_treatment", "focus_psych_treatment", "focus_misuse_treatment",
    "focus_rest", "focus_pension_case",
    "motivation_overcomes_barriers", "motivation_work", "motivation_education",
    "motivation_none", "motivation_pension",
    "barrier_housing", "barrier_economy", "barrier_transport", "barrier_children",
    "barrier_language", "barrier_isolation",
    "departments_involved", "notes",
)  # fmt: skip
EPISODE_COLUMNS: tuple[str, ...] = (
    "citizen_id", "start_date", "end_date", "benefit", "match_group",
)  # fmt: skip
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "citizens": CITIZEN_COLUMNS,
    "episodes": EPISODE_COLUMNS,
}
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "citizens": ("citizen_id", "birth_year"),
    "episodes": ("citizen_id", "start_date", "benefit"),
}
# data contract: the episodes' date columns (an .xlsx date cell is read as a date here only)
DATE_COLUMNS: tuple[str, ...] = ("start_date", "end_date")
# data contract: the boolean case-review flags (empty = not recorded = false)
FLAG_COLUMNS: tuple[str, ...] = tuple(
    c for c in CITIZEN_COLUMNS
    if c in ("physical_illness", "psych_diagnosis", "psych_undiagnosed",
             "alcohol", "soft_drugs", "hard_drugs", "potential_m2")
    or c.startswith(("focus_", "motivation_", "barrier_"))
)  # fmt: skip
# data contract: the benefit codes (pipeline/sql/macros.sql's m3_benefit reads them, with
# the Danish spellings)
BENEFITS: tuple[str, ...] = (
    "kontanthjaelp", "uddannelseshjaelp", "dagpenge", "sygedagpenge", "ressourceforloeb",
    "ledighedsydelse", "fleksjob", "foertidspension", "other",
)  # fmt: skip
# data contract: match-group codes (which of them count as M3 is config `m3_groups`)
MATCH_GROUPS: tuple[str, ...] = ("1", "2", "3", "4", "5", "aktivitetsparat", "jobparat")

# definitions §2: course history classes, in the order of the tables' columns
COURSE_CLASSES: tuple[str, ...] = (
    "long_continuous", "short_continuous", "several_separate", "no_history",
)  # fmt: skip
# definitions §3: time-in-M3 bands (config `m3_band_days` holds the two edges)
M3_BANDS: tuple[str, ...] = ("under_1y", "1_to_2y", "2y_plus", "not_in_m3")
# interface: where a citizen's profile comes from
PROFILE_SOURCES: tuple[str, ...] = ("rules", "model", "uncertain", "unreviewed")
# interface: the columns of citizens.parquet, in this order
EXPORT_COLUMNS: tuple[str, ...] = (
    "citizen_id", "profile", "base_profile", "rule", "profile_source", "profile_probability",
    "age", "age_band", "course_class", "current_course_days", "support_days_total",
    "m3_days", "m3_band", "misuse_any", "complex_case", "top_reasons",
)  # fmt: skip
# the languages of labels (pipeline/labels.toml, the rules file's label_da / label_en)
LANGS: tuple[str, ...] = ("da", "en")


def age_band_codes(bands: tuple[int, ...]) -> tuple[str, ...]:
    """definitions §4: band codes from the lower bounds (config `age_bands`):
    (25, 30, 60) -> under_25, 25_29, 30_59, 60_plus; no bounds -> all_ages."""
    if not bands:
        return ("all_ages",)
    middle = [f"{lo}_{hi - 1}" for lo, hi in zip(bands, bands[1:], strict=False)]
    return (f"under_{bands[0]}", *middle, f"{bands[-1]}_plus")


_AGE_BAND = re.compile(r"under_(\d+)|(\d+)_plus|(\d+)_(\d+)")


def age_band_bounds(code: str) -> tuple[int | None, int | None] | None:
    """The ages an age-band code of `age_band_codes` stands for, (lowest, highest), None for
    an open end: under_25 -> (None, 24), 25_29 -> (25, 29), 60_plus -> (60, None); None for a
    code that is no age band (all_ages, unknown)."""
    m = _AGE_BAND.fullmatch(code)
    if m is None:
        return None
    under, plus, lo, hi = m.groups()
    if under is not None:
        return (None, int(under) - 1)
    if plus is not None:
        return (int(plus), None)
    return (int(lo), int(hi))


@dataclass(frozen=True)
class TableSpec:
    """One published table of definitions §5.

    `row_dim`: what its rows are (`profile`, or `base_profile` for misuse by base profile);
    `multi_response`: a citizen may tick several columns, so the total column counts
    citizens, not ticks."""

    id: str
    row_dim: str
    multi_response: bool

    @property
    def model(self) -> str | None:
        """The model counting its columns; profile_distribution has none: its one column is
        the total column of every table."""
        return None if self.id == "profile_distribution" else f"marts.table_{self.id}"


# definitions §5, in the order of the report
TABLES: tuple[TableSpec, ...] = (
    TableSpec("profile_distribution", "profile", False),
    TableSpec("course_history", "profile", False),
    TableSpec("age_groups", "profile", False),
    TableSpec("case_focus", "profile", True),
    TableSpec("misuse", "base_profile", True),
    TableSpec("motivation", "profile", True),
    TableSpec("m3_duration", "profile", False),
    TableSpec("barriers", "profile", True),
)
TABLE_IDS: tuple[str, ...] = tuple(t.id for t in TABLES)
