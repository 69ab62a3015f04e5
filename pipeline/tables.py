"""The profile tables (definitions §5) and what of them may be published (§6).

Reads `marts.citizens` (in-scope citizens with a profile) once, into `marts.profile_groups`
(their counts per profile × base profile × course class × age band × M3 band, with the flag
counts the tables need; `marts.profile_group_flags` has the flag counts in long form).
Writes from those one model per table with columns of its own, `marts.table_<id>`
(`pipeline/sql/marts/table_*.sql`: only what the table has of its own, its column codes in
display order and the profile groups counted in each, sparse), then `marts.table_cells`
(every table's whole grid: zeros, total column, total row and shares, built once for all
tables; internal), `marts.suppressed_cells` (the pattern
chosen by `pipeline.suppression`, with the reason) and `marts.published_cells` (what the
published files show). Everything after the SQL works on the small tables (a few hundred
cells), so its time does not grow with the number of citizens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from pipeline.config import Config
from pipeline.rules import Rules
from pipeline.segment import age_band_codes
from pipeline.suppression import TOTAL, CellKey, Table
from pipeline.warehouse import bind, check, create_table_as, sql_text

# definitions §5, in the order of the report
TABLE_IDS: tuple[str, ...] = (
    "profile_distribution", "course_history", "age_groups", "case_focus", "misuse",
    "motivation", "m3_duration", "barriers",
)  # fmt: skip
# the citizens are scanned once, by the first model; the others read its few hundred rows.
# profile_distribution has no model: its one column is the total column of every table.
MODELS: tuple[str, ...] = (
    "marts.profile_groups",
    "marts.profile_group_flags",
    *(f"marts.table_{t}" for t in TABLE_IDS if t != "profile_distribution"),
    "marts.table_cells",
)
# run on the counts, before suppression
COUNT_CHECKS: tuple[str, ...] = (
    "marts__profile_groups__counts_every_citizen",
    "report__table_cells__complete",
    "report__table_cells__totals_add_up",
    "report__table_cells__shared_numbers_agree",
)
# run on what is published
PUBLISH_CHECKS: tuple[str, ...] = (
    "report__published_cells__no_small_count_shown",
    "report__published_cells__shares_need_both",
    "report__published_cells__shared_numbers_all_or_none",
)

_SUPPRESSED_DDL = """
create or replace table marts.suppressed_cells (
    table_id varchar not null, "row" varchar not null, col varchar not null,
    reason varchar not null check (reason in ('primary', 'secondary')),
    primary key (table_id, "row", col)
)"""


@dataclass(frozen=True)
class Cell:
    """One published cell. `hidden`: the count is shown as `c` (`n` is None).
    `share_hidden`: the share is not shown because its count or its denominator is hidden
    (§6); a share that is None while not hidden has a zero denominator."""

    n: int | None
    share: float | None
    hidden: bool
    share_hidden: bool


@dataclass(frozen=True)
class PublishedTable:
    """One table as published: rows and columns without the totals, in display order."""

    id: str
    row_dim: str
    multi_response: bool
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    cells: Mapping[tuple[str, str], Cell]

    def cell(self, row: str, col: str) -> Cell:
        return self.cells[(row, col)]

    @property
    def all_rows(self) -> tuple[str, ...]:
        return (*self.rows, TOTAL)

    @property
    def all_cols(self) -> tuple[str, ...]:
        return (*self.cols, TOTAL)


@dataclass(frozen=True)
class Headline:
    """The headline figures of definitions §5, from the published tables (so that they can
    reveal nothing the tables hide). Shares are of the citizens with a profile."""

    in_scope: int | None  # None: hidden (see `headline`)
    unreviewed: int | None
    profiled: Cell
    profile_shares: Mapping[str, Cell]
    m3_over_1y: Cell
    long_continuous: Cell
    complex_case: Cell


def profile_order(rules: Rules) -> tuple[str, ...]:
    """Profile codes in depth order (the sea figure: nearest the labour market first)."""
    precedence = {code: i for i, code in enumerate(rules.codes)}
    return tuple(sorted(rules.codes, key=lambda c: (rules.rule(c).depth, precedence[c])))


def base_profile_order(rules: Rules) -> tuple[str, ...]:
    """Base-profile codes in depth order."""
    return tuple(c for c in profile_order(rules) if c in rules.base_codes)


def table_params(cfg: Config, rules: Rules) -> dict[str, Any]:
    """The named parameters of the table models and checks."""
    return {
        "profile_codes": list(profile_order(rules)),
        "base_profile_codes": list(base_profile_order(rules)),
        "age_band_codes": list(age_band_codes(cfg.age_bands)),
        "min_cell": cfg.min_cell,
    }


def _replace(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any]) -> None:
    sql = sql_text(name)
    create_table_as(con, name, sql, bind(sql, params))


def build_tables(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules) -> None:
    """Count every table (definitions §5) into the warehouse and check the counts."""
    params = table_params(cfg, rules)
    for name in MODELS:
        _replace(con, name, params)
    for name in COUNT_CHECKS:
        check(con, name, params)


def release(con: duckdb.DuckDBPyConnection) -> list[Table]:
    """The tables of the release as `pipeline.suppression` takes them (totals included)."""
    rows = con.execute(
        'select table_id, row_dim, multi_response, "row", col, n from marts.table_cells'
        " order by table_order, row_order, col_order"
    ).fetchall()
    return [
        Table(tid, dim, t_rows, t_cols, counts, multi)
        for tid, dim, multi, t_rows, t_cols, counts in _grids(rows)
    ]


def _grids(rows: Sequence[tuple]) -> list[tuple]:
    """Group ordered (table, row_dim, multi, row, col, value) rows into grids per table."""
    out: list[tuple] = []
    by_table: dict[str, dict[str, Any]] = {}
    for tid, dim, multi, row, col, value in rows:
        t = by_table.get(tid)
        if t is None:
            t = by_table[tid] = {"dim": dim, "multi": multi, "rows": {}, "cols": {}, "v": {}}
        t["rows"].setdefault(row, None)
        t["cols"].setdefault(col, None)
        t["v"][(row, col)] = value
    for tid, t in by_table.items():
        t_rows = tuple(r for r in t["rows"] if r != TOTAL)
        t_cols = tuple(c for c in t["cols"] if c != TOTAL)
        grid = [[t["v"][(r, c)] for c in (*t_cols, TOTAL)] for r in (*t_rows, TOTAL)]
        out.append((tid, t["dim"], bool(t["multi"]), t_rows, t_cols, grid))
    return out


def store_pattern(
    con: duckdb.DuckDBPyConnection, pattern: Mapping[CellKey, str], cfg: Config
) -> None:
    """Record the suppression pattern (with reasons: internal) and build what is published."""
    con.execute(_SUPPRESSED_DDL)
    if pattern:
        con.executemany(
            'insert into marts.suppressed_cells (table_id, "row", col, reason) values (?, ?, ?, ?)',
            [[t, r, c, reason] for (t, r, c), reason in sorted(pattern.items())],
        )
    _replace(con, "marts.published_cells", {})
    for name in PUBLISH_CHECKS:
        check(con, name, {"min_cell": cfg.min_cell})


def published(con: duckdb.DuckDBPyConnection) -> tuple[PublishedTable, ...]:
    """Every table as published, in report order, read from `marts.published_cells`."""
    rows = con.execute(
        'select table_id, row_dim, multi_response, "row", col,'
        " {'n': n_published, 'share': share_published, 'hidden': hidden,"
        " 'share_hidden': hidden or denominator_hidden}"
        " from marts.published_cells order by table_order, row_order, col_order"
    ).fetchall()
    out = []
    for tid, dim, multi, t_rows, t_cols, grid in _grids(rows):
        cells = {
            (r, c): Cell(v["n"], v["share"], v["hidden"], v["share_hidden"])
            for r, line in zip((*t_rows, TOTAL), grid, strict=True)
            for c, v in zip((*t_cols, TOTAL), line, strict=True)
        }
        out.append(PublishedTable(tid, dim, multi, t_rows, t_cols, cells))
    return tuple(out)


def _ratio(n: int | None, d: Cell) -> float | None:
    return n / d.n if n is not None and d.n else None


def headline(
    con: duckdb.DuckDBPyConnection, tables: Sequence[PublishedTable], cfg: Config
) -> Headline:
    """The headline figures (definitions §5) from the published tables.

    "More than one year in M3" adds two published column totals, so it is shown only when
    both are. The complex-case count is in no table: it is shown only when it and its
    complement (citizens with a profile minus it) are each zero or at least `min_cell`, the
    rule the suppression would apply to a two-cell row (§6). The unreviewed count follows the
    same rule, and the count in scope (tabulated + unreviewed) is shown only when both of its
    parts are."""
    by_id = {t.id: t for t in tables}
    dist, m3, course = by_id["profile_distribution"], by_id["m3_duration"], by_id["course_history"]
    grand = dist.cell(TOTAL, TOTAL)
    in_scope, unreviewed, complex_n = con.execute(
        """
        select
            count(*),
            count(*) filter (where profile_source = 'unreviewed'),
            count(*) filter (where profile_source <> 'unreviewed' and profile is not null
                             and complex_case)
        from marts.citizens
        where in_scope
        """
    ).fetchone()

    over = [m3.cell(TOTAL, c) for c in ("1_to_2y", "2y_plus")]
    over_n = None if any(c.n is None for c in over) else sum(c.n for c in over)
    m3_over_1y = Cell(over_n, _ratio(over_n, grand), over_n is None,
                      over_n is None or grand.hidden)

    long_cell = course.cell(TOTAL, "long_continuous")

    def small(k: int) -> bool:
        return cfg.min_cell > 1 and 1 <= k < cfg.min_cell

    complex_shown = grand.n is not None and not small(complex_n) and not small(grand.n - complex_n)
    complex_case = Cell(
        complex_n if complex_shown else None,
        _ratio(complex_n if complex_shown else None, grand),
        not complex_shown,
        not complex_shown,
    )
    # in scope = with a profile + unreviewed: a two-cell row whose first cell is the grand
    # total of the tables; a small unreviewed count hides itself and the row total
    unreviewed_shown = not small(unreviewed)
    in_scope_shown = unreviewed_shown and grand.n is not None
    return Headline(
        in_scope=in_scope if in_scope_shown else None,
        unreviewed=unreviewed if unreviewed_shown else None,
        profiled=grand,
        profile_shares={r: dist.cell(r, TOTAL) for r in dist.rows},
        m3_over_1y=m3_over_1y,
        long_continuous=long_cell,
        complex_case=complex_case,
    )
