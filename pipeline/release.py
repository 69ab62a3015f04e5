"""The release: the profile tables (definitions §5) and what of them may be published (§6),
counted, suppressed and audited once, by `publish(con, cfg) -> Release`. The report stage,
the tests and the bench all call it; nothing else re-creates the order.

Builds the registry's report models in the caller's transaction (`pipeline.registry`):
`marts.profile_groups` scans the in-scope citizens with a profile once (their counts per
profile × base profile × course class × age band × M3 band, with the flag counts the tables
need); the `marts.table_<id>` models count each table's own columns from those few hundred
rows; `marts.table_cells` makes every table's whole grid (zeros, totals, shares; internal);
the Python model `marts.suppressed_cells` chooses the pattern (`pipeline.suppression`) and
audits it; `marts.published_cells` is what the published files show. Profile codes, labels
and order come from `marts.profiles` (segment's copy of the rules), so the report needs no
rules file. Everything after the first model works on a few hundred cells: its time does not
grow with the number of citizens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import warehouse
from pipeline.config import Config
from pipeline.errors import ReportError
from pipeline.registry import Context, Model
from pipeline.suppression import TOTAL, Table, audit, suppress
from pipeline.vocabulary import TABLES, age_band_codes


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


@dataclass(frozen=True)
class Profiles:
    """The profile rules segment used, as `marts.profiles` keeps them: codes in precedence
    order, labels, depth order, and the rule set's version, source and SHA-256."""

    codes: tuple[str, ...]  # precedence order (the rules file's)
    order: tuple[str, ...]  # depth order (the sea figure: nearest the labour market first)
    base_order: tuple[str, ...]  # the base profiles, in depth order
    labels: Mapping[str, Mapping[str, str]]  # code -> lang -> label
    version: str
    source: str
    sha256: str

    def label(self, code: str, lang: str = "da") -> str:
        return self.labels[code][lang]

    @classmethod
    def from_warehouse(cls, con: duckdb.DuckDBPyConnection) -> Profiles:
        rows = warehouse.records(con, "select * from marts.profiles order by precedence")
        by_depth = sorted(rows, key=lambda r: (r["depth"], r["precedence"]))
        return cls(
            codes=tuple(r["code"] for r in rows),
            order=tuple(r["code"] for r in by_depth),
            base_order=tuple(r["code"] for r in by_depth if r["base_precedence"] is not None),
            labels={r["code"]: {"da": r["label_da"], "en": r["label_en"]} for r in rows},
            version=rows[0]["rules_version"] if rows else "",
            source=rows[0]["rules_source"] if rows else "",
            sha256=rows[0]["rules_sha256"] if rows else "",
        )


@dataclass(frozen=True)
class Release:
    """One release: the tables as published, the headline figures, the profiles they
    describe, and how many cells were hidden and why (counts of cells, not citizens)."""

    tables: tuple[PublishedTable, ...]
    headline: Headline
    profiles: Profiles
    tabulated: int  # citizens in the tables: in scope, with a profile
    hidden_primary: int
    hidden_secondary: int

    @property
    def cells(self) -> int:
        return sum(len(t.cells) for t in self.tables)


def context(cfg: Config) -> Context:
    """What the report models are built with: the tables (vocabulary), the age bands and
    min_cell of the config; the union of the per-table count models for table_cells."""
    return Context(
        cfg,
        params={
            "table_ids": [t.id for t in TABLES],
            "table_row_dims": [t.row_dim for t in TABLES],
            "table_multi_response": [t.multi_response for t in TABLES],
            "age_band_codes": list(age_band_codes(cfg.age_bands)),
            "min_cell": cfg.min_cell,
        },
        placeholders={
            "table_counts": "\n    union all by name\n    ".join(
                f"select '{t.id}' as table_id, * from {t.model}" for t in TABLES if t.model
            )
        },
    )


def publish(
    con: duckdb.DuckDBPyConnection, cfg: Config, *, counted: Callable[[], None] = lambda: None
) -> Release:
    """Count every table, choose and audit the suppression pattern, and read back what may be
    published. Runs in the caller's transaction: a failing check or audit leaves the
    marts as they were once the caller rolls back. `counted` is called when the tables are
    counted, before the suppression is solved (the report starts its chart workers then)."""
    cfg = cfg.resolved()

    def before(model: Model) -> None:
        if model.name == "marts.suppressed_cells":
            counted()

    warehouse.build_stage(con, "report", context(cfg), before)
    tables = published(con)
    primary, secondary, tabulated = warehouse.query(con, "release_counts").fetchone()
    return Release(
        tables=tables,
        headline=headline(con, tables, cfg),
        profiles=Profiles.from_warehouse(con),
        tabulated=tabulated or 0,
        hidden_primary=primary,
        hidden_secondary=secondary,
    )


def counted_tables(con: duckdb.DuckDBPyConnection) -> list[Table]:
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


_SUPPRESSED_SCHEMA = pa.schema(
    [("table_id", pa.string()), ("row", pa.string()), ("col", pa.string()),
     ("reason", pa.string())]
)


def suppressed_cells_model(con: duckdb.DuckDBPyConnection, ctx: Context) -> pa.Table:
    """marts.suppressed_cells (a Python model of the registry): the cells to hide and why
    (`primary` / `secondary`; internal), chosen by `pipeline.suppression` over every table at
    once and audited again before anything is written (§6)."""
    tables = counted_tables(con)
    pattern = suppress(tables, ctx.cfg.min_cell)
    problems = audit(tables, pattern.keys(), ctx.cfg.min_cell)
    if problems:
        raise ReportError("the suppression pattern failed its audit (§6); nothing was"
                          " published: " + "; ".join(problems[:5]))
    keys = sorted(pattern)
    return pa.table(
        [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
         [pattern[k] for k in keys]],
        schema=_SUPPRESSED_SCHEMA,
    )


def published(con: duckdb.DuckDBPyConnection) -> tuple[PublishedTable, ...]:
    """Every table as published, in report order, read from `marts.published_cells`."""
    rows = warehouse.query(con, "published_grid").fetchall()
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
    in_scope, unreviewed, complex_n = warehouse.query(con, "headline_counts").fetchone()

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
