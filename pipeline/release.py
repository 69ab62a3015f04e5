"""The release: the profile tables (definitions §5) and what of them may be published (§6),
counted, suppressed and audited once, by `publish(con, cfg) -> Release`. The report stage,
the tests and the bench all call it; nothing else re-creates the order.

Builds the registry's report models in the caller's transaction (`pipeline.registry`):
`marts.profile_groups` scans the in-scope citizens with a profile once (their counts per
profile × base profile × course class × age band × M3 band, with the flag counts the tables
need); the `marts.table_<id>` models count each table's own columns from those few hundred
rows; `marts.table_cells` makes every table's whole grid (zeros, totals, shares; internal);
the Python model `marts.release_cells` takes each table to the level of its coarsening
hierarchy chosen (`pipeline.coarsening`: columns merged where a table would hide too much);
the Python model `marts.suppressed_cells` chooses the pattern (`pipeline.suppression`) and
audits it, knowing every relation between the tables that the rules in use imply
(`relations`); `marts.published_cells` is what the published files show. Profile codes,
labels and order come from `marts.profiles` (segment's copy of the rules); the relations need
the base rules' conditions too, read from the rules file segment used (`rules_in_use`).
Everything after the first model works on a few hundred cells, except one more scan of the
tabulated citizens when the rules test a flag that a table counts (the shipped rules test
the misuse kinds): the true counts of the rule classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import warehouse
from pipeline.config import Config
from pipeline.errors import ReportError
from pipeline.registry import Context, Model
from pipeline.rules import (
    BOOLEAN_COLUMNS,
    BaseRule,
    Rule,
    Rules,
    compile_condition,
)
from pipeline.suppression import TOTAL, Relations, Table, audit, solve
from pipeline.vocabulary import TABLES, age_band_codes
from pipeline.worklist import Worklist, load_worklist


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
    # coarsening (pipeline.coarsening): the level of the table's hierarchy shown (0 =
    # finest) and its merged columns, code -> the fine codes it stands for
    level: int = 0
    merges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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
    # issue 15: of the citizens with a profile, from a case review and from the model; of
    # those without one, the model's uncertain (None: hidden, as the counts above)
    reviewed: int | None = None
    model: int | None = None
    uncertain: int | None = None


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


def context(cfg: Config, worklist: Worklist | None = None, previous: Any = None) -> Context:
    """What the report models are built with: the tables (vocabulary), the age bands and
    min_cell of the config; the union of the per-table count models for table_cells; the
    worklist's reasons for marts.worklist (None: the shipped worklist); `previous`: the last
    release published from the output folder (`pipeline.releases.Snapshot`, or None), whose
    levels and pattern the coarsening and the suppression start from (pipeline.coarsening)."""
    worklist = worklist or load_worklist()
    return Context(
        cfg,
        inputs={"previous": previous},
        params={
            **worklist.params(),
            "table_ids": [t.id for t in TABLES],
            "table_row_dims": [t.row_dim for t in TABLES],
            "table_multi_response": [t.multi_response for t in TABLES],
            "age_band_codes": list(age_band_codes(cfg.age_bands)),
            "min_cell": cfg.min_cell,
        },
        placeholders={
            "table_counts": "\n    union all by name\n    ".join(
                f"select '{t.id}' as table_id, * from {t.model}" for t in TABLES if t.model
            ),
            **worklist.placeholders(),
        },
    )


def publish(
    con: duckdb.DuckDBPyConnection, cfg: Config, *, counted: Callable[[], None] = lambda: None,
    worklist: Worklist | None = None, previous: Any = None,
) -> Release:
    """Count every table, choose and audit the suppression pattern, and read back what may be
    published. Runs in the caller's transaction: a failing check or audit leaves the
    marts as they were once the caller rolls back. `counted` is called when the tables are
    counted, before the suppression is solved (the report starts its chart workers then).
    The stage's last model is the internal worklist (`worklist`; None: the shipped one),
    which nothing of the release reads. `previous`: the last release published from the
    output folder (`context`)."""
    cfg = cfg.resolved()

    def before(model: Model) -> None:
        if model.name == "marts.suppressed_cells":
            counted()

    warehouse.build_stage(con, "report", context(cfg, worklist, previous), before)
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


def counted_tables(con: duckdb.DuckDBPyConnection,
                   source: str = "marts.release_cells") -> list[Table]:
    """The tables of the release as `pipeline.suppression` takes them (totals included), at
    the level of coarsening chosen; `source="marts.table_cells"`: at their finest."""
    assert source in ("marts.release_cells", "marts.table_cells")
    rows = con.execute(
        f'select table_id, row_dim, multi_response, "row", col, n from {source}'
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
    once, with every relation the rules in use imply between them (`relations`), and
    audited again before anything is written (§6)."""
    tables = counted_tables(con)
    # min_cell 0 or 1 hides nothing (§6: internal work): no relations to derive
    known = relations(con, ctx.cfg, tables) if ctx.cfg.min_cell > 1 else None
    # definitions §8.5: the cohort table's numbers are numbers of this release (x16)
    from pipeline.movement import cohort_relations

    known = cohort_relations(con, tables, known, ctx.cfg)
    from pipeline.coarsening import costs  # the same preference the levels were chosen by

    pattern = solve(tables, ctx.cfg.min_cell, relations=known,
                    costs=costs(ctx.cfg, tables, ctx.inputs.get("previous"))).pattern
    problems = audit(tables, pattern.keys(), ctx.cfg.min_cell, relations=known)
    if problems:
        raise ReportError("the suppression pattern failed its audit (§6); nothing was"
                          " published: " + "; ".join(problems[:5]))
    keys = sorted(pattern)
    return pa.table(
        [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
         [pattern[k] for k in keys]],
        schema=_SUPPRESSED_SCHEMA,
    )


# ---------------------------------------------------------------------------------------
# The relations a reader knows (definitions §6), derived from the rules file in use.
#
# Every published count is a sum over joint classes of citizens. Each table counts ONE
# dimension (a category, a flag, or a multi-response block whose "none" column depends on
# all its flags) against the profile or the base profile; so the classes that matter are
# the *rule classes* K = (profile, base profile, the values of the published dimensions the
# rules test), and a dimension the rules do not test can be dealt out to the citizens of a
# row independently of the others (which is why its table's own sums say all there is).
# The suppression model gets one unpublished count per rule class, the identities tying
# them to the cells, and, for a multi-response block the rules do not test, the number of
# citizens of a row with at least one tick (between the largest tick count and their sum;
# the "none" column is the row total minus it).

# definitions §5: the tables whose columns are the values of one category of the citizen
_CATEGORY = {"course_history": "course_class", "age_groups": "age_band",
             "m3_duration": "m3_band"}
# definitions §5: multi-response tables with a "none" column (no flag of the others set);
# in the others each column is one flag, counted on its own
_NONE_COLUMN = {"misuse": "misuse_no", "motivation": "motivation_not_stated"}
# the compiled condition of a rule tests a boolean column as "name", an integer one as
# coalesce("name" <op> <whole number>, false) (pipeline.rules._Compiler)
_COMPARISON = re.compile(r'coalesce\("([a-z_]+)" (?:>=|>|<=|<|=|<>) (\d+), false\)')
# beyond these, the rule classes are taken from the data (see `relations`): 2^24 rows of
# the grid take about a second; a few thousand classes keep the suppression model small
_MAX_GRID = 2**24
_MAX_CLASSES = 4096


def rules_in_use(con: duckdb.DuckDBPyConnection) -> Rules:
    """The rules segment used, as marts.profiles keeps them (the profile rules' and the base
    rules' conditions), so the report needs no rules file to know how its tables are linked."""
    rows = warehouse.records(con, "select * from marts.profiles order by precedence")
    if not rows or "base_condition" not in rows[0]:
        raise ReportError("marts.profiles does not hold the rules' conditions (a warehouse"
                          " segmented by an older version): run segment again")
    based = sorted((r for r in rows if r["base_precedence"] is not None),
                   key=lambda r: r["base_precedence"])
    return Rules(
        rows[0]["rules_version"],
        tuple(Rule(r["code"], r["label_da"], r["label_en"], r["depth"],
                   compile_condition(r["condition"], f"rule '{r['code']}'")) for r in rows),
        tuple(BaseRule(r["code"], compile_condition(r["base_condition"],
                                                    f"base_rule '{r['code']}'"))
              for r in based),
        rows[0]["rules_sha256"], rows[0]["rules_source"])


@dataclass(frozen=True)
class _Block:
    """One dimension a table counts against its rows: flags (a category has none)."""

    table: str
    row_dim: str
    flags: tuple[str, ...]
    none_col: str | None
    cols: Mapping[str, tuple[str, ...]]  # each column: the flags it counts (any of them)


def _blocks(tables: Sequence[Table],
            merges: Mapping[str, Mapping[str, tuple[str, ...]]]) -> list[_Block]:
    out = []
    for t in tables:
        if not t.multi_response:
            continue
        none_col = _NONE_COLUMN.get(t.id)
        merged = merges.get(t.id, {})
        # a merged column (pipeline.coarsening) counts the citizens with any of its flags
        cols = {c: tuple(merged.get(c, (c,))) for c in t.cols if c != none_col}
        flags = tuple(f for fs in cols.values() for f in fs)
        unknown = set(flags) - set(BOOLEAN_COLUMNS)
        if unknown:
            raise ReportError(f"table {t.id!r}: columns {sorted(unknown)} are no flags")
        if none_col is not None:
            out.append(_Block(t.id, t.row_dim, flags, none_col, cols))
        else:
            out.extend(_Block(t.id, t.row_dim, fs, None, {c: fs}) for c, fs in cols.items())
    return out


@dataclass(frozen=True)
class Linking:
    """What the rules in use test among the published dimensions: the rule class is
    (profile, base profile, *linked flags, complex if `complex_linked`, age band if
    `age_linked`) — `dims` — and its unpublished count is named `class_name(values)`."""

    rules: Rules
    tested: set[str]
    ints: dict[str, set[int]]
    blocks: list[_Block]
    linked: list[str]
    age_linked: bool
    complex_linked: bool

    @property
    def dims(self) -> tuple[str, ...]:
        return ("profile", "base_profile", *self.linked,
                *(("complex",) if self.complex_linked else ()),
                *(("age_band",) if self.age_linked else ()))


def class_name(values: Sequence[Any]) -> str:
    """The unpublished quantity of one rule class (`relations`)."""
    return "class " + "|".join(map(str, values))


def _linking(con: duckdb.DuckDBPyConnection, cfg: Config, tables: Sequence[Table],
             merges: Mapping[str, Mapping[str, tuple[str, ...]]]) -> Linking:
    rules = rules_in_use(con)
    sqls = [r.condition.sql for r in (*rules.rules, *rules.base_rules)]
    tested = {c for c in BOOLEAN_COLUMNS if any(f'"{c}"' in q for q in sqls)}
    ints: dict[str, set[int]] = {}
    for q in sqls:
        for col, value in _COMPARISON.findall(q):
            ints.setdefault(col, set()).add(int(value))
    blocks = _blocks(tables, merges)
    # a block the rules test is part of the class, all its flags (its "none" needs them all)
    linked = sorted({f for b in blocks if tested & set(b.flags) for f in b.flags})
    age_linked = "birth_year" in ints
    if age_linked:
        ref_year = cfg.reference_date.year
        ints["birth_year"].update(ref_year - edge for edge in cfg.age_bands)
    # a rule on departments_involved makes the headline's complex cases a sum of rule
    # classes: "complex" (definitions §5) is then part of the class
    complex_linked = "departments_involved" in ints
    if complex_linked:
        ints["departments_involved"].add(cfg.complex_case_departments)
    return Linking(rules, tested, ints, blocks, linked, age_linked, complex_linked)


def linking(con: duckdb.DuckDBPyConnection, cfg: Config, tables: Sequence[Table],
            merges: Mapping[str, Mapping[str, tuple[str, ...]]]) -> Linking:
    """The rule classes' dimensions and the blocks of `tables` (see `Linking`)."""
    return _linking(con, cfg.resolved(), tables, merges)


def relations(con: duckdb.DuckDBPyConnection, cfg: Config, tables: Sequence[Table],
              merges: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None) -> Relations:
    """Every relation between the cells of `tables` that the definitions and the rules in
    use imply (see the comment above), with the true value of each unpublished count.
    `merges`: the merged columns of coarsened tables (table -> code -> fine codes; None:
    those of marts.release_cells); a merged column is a sum of its fine cells' classes."""
    cfg = cfg.resolved()
    if merges is None:
        from pipeline.coarsening import release_merges

        merges = release_merges(con) if warehouse.exists(con, "marts.release_cells") else {}
    link = _linking(con, cfg, tables, merges)
    rules, tested, ints, blocks = link.rules, link.tested, link.ints, link.blocks
    linked, age_linked, complex_linked = link.linked, link.age_linked, link.complex_linked
    counts = _class_counts(con, linked, age_linked, complex_linked)
    grid = 2 ** len(tested | set(linked))
    for values in ints.values():
        grid *= 3 * len(values) + 1
    if grid <= _MAX_GRID:
        classes = _rule_classes(con, cfg, rules, sorted(tested | set(linked)), ints, linked,
                                age_linked, complex_linked)
    else:
        classes = []
    if not classes or len(classes) > _MAX_CLASSES:
        # rules that test very many flags: the classes present in the data instead of every
        # class the rules can make. The attacker then also "knows" the empty classes are
        # empty: stronger than the real one, so a pattern safe against it is safe
        classes = sorted(counts)
    dims = list(link.dims)
    unknown = set(counts) - set(classes)
    if unknown:
        raise ReportError(f"citizens in classes the rules cannot make: {sorted(unknown)[:3]}")
    name = {k: class_name(k) for k in classes}
    unpublished = {name[k]: counts.get(k, 0) for k in classes}
    equal: list[dict] = []
    at_most: list[dict] = []
    by_id = {t.id: t for t in tables}

    def members(row_dim: str, row: str, *, any_of: Sequence[str] = (), **values: Any) -> dict:
        pos = dims.index(row_dim)
        return {name[k]: 1 for k in classes if k[pos] == row
                and all(k[dims.index(d)] == v for d, v in values.items())
                and (not any_of or any(k[dims.index(f)] is True for f in any_of))}

    def tie(cell: tuple[str, str, str], parts: Mapping[str, int]) -> None:
        equal.append({cell: 1, **{p: -c for p, c in parts.items()}})

    # each profile's and each base profile's total counts its classes
    for row_dim in ("profile", "base_profile"):
        t = next((t for t in tables if t.row_dim == row_dim), None)
        if t is not None:
            for r in t.rows:
                tie((t.id, r, TOTAL), members(row_dim, r))
    # a category the rules test (the age band, through birth_year)
    if age_linked and "age_groups" in by_id:
        t = by_id["age_groups"]
        bands = (*age_band_codes(cfg.age_bands), "unknown")
        merged = merges.get(t.id, {})
        in_col = {f: c for c, fs in merged.items() for f in fs}
        for r in t.rows:
            cells: dict[str, dict] = {}
            for band in bands:
                parts = members(t.row_dim, r, age_band=band)
                col = in_col.get(band, band)
                if col in t.cols:  # a merged column is the sum of its bands
                    cells.setdefault(col, {}).update(parts)
                elif parts:  # a column left out is zero (§5)
                    equal.append(parts)
            for col, parts in cells.items():
                tie((t.id, r, col), parts)
    for b in blocks:
        t = by_id[b.table]
        for r in t.rows:
            if b.flags[0] in linked:
                for c, fs in b.cols.items():
                    tie((t.id, r, c), members(t.row_dim, r, any_of=fs))
                if b.none_col is not None:
                    tie((t.id, r, b.none_col),
                        members(t.row_dim, r, **dict.fromkeys(b.flags, False)))
            elif b.none_col is not None:
                # citizens with at least one tick: none + it = the row total, and it lies
                # between the largest tick count and their sum
                i = t.rows.index(r)
                any_tick = f"at least one tick|{t.id}|{r}"
                unpublished[any_tick] = int(t.counts[i, -1] - t.counts[i, t.cols.index(b.none_col)])
                equal.append({(t.id, r, b.none_col): 1, any_tick: 1, (t.id, r, TOTAL): -1})
                for c in b.cols:
                    at_most.append({(t.id, r, c): 1, any_tick: -1})
                at_most.append({any_tick: 1, **{(t.id, r, c): -1 for c in b.cols}})
    complex_classes = None
    if complex_linked:
        pos = dims.index("complex")
        complex_classes = [name[k] for k in classes if k[pos]]
    return headline_relations(con, tables, Relations(unpublished, tuple(equal), tuple(at_most)),
                              complex_classes, merges)


def _rule_classes(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules,
                  flags: Sequence[str], ints: Mapping[str, set[int]], linked: Sequence[str],
                  age_linked: bool, complex_linked: bool = False) -> list[tuple]:
    """Every rule class the rules can make: the rules' own SQL (as segment runs it) over
    every combination of the flags they test and of the regions of their integer columns
    (below, at and above each number compared with; missing)."""
    params: dict[str, Any] = {}
    parts = []
    for f in flags:
        parts.append(f'(select unnest([false, true]) as "{f}")')
    for col, values in sorted(ints.items()):
        params[f"v_{col}"] = sorted({v + d for v in values for d in (-1, 0, 1)}) + [None]
        parts.append(f'(select unnest(${"v_" + col}::integer[]) as "{col}")')
    grid = " cross join ".join(parts) if parts else "(select 1 as one)"
    age = ""
    if age_linked:
        params.update(age_band_codes=list(age_band_codes(cfg.age_bands)),
                      age_bands=list(cfg.age_bands), reference_year=cfg.reference_date.year)
        # definitions §4, as marts.citizens computes it
        age = (""", case when "birth_year" is null then 'unknown' else
                  ($age_band_codes::varchar[])[1 + len(list_filter($age_bands::integer[],
                  lambda b: b <= $reference_year - "birth_year"))] end""")
    linked_cols = "".join(f', "{f}"' for f in linked)
    if complex_linked:  # definitions §5, as marts.citizens computes it
        params["complex_case_departments"] = cfg.complex_case_departments
        linked_cols += ', coalesce("departments_involved" >= $complex_case_departments, false)'
    sql = (f"select distinct {rules.rule_sql()}, {rules.base_profile_sql()}{linked_cols}{age}"
           f" from {grid}")
    return sorted(tuple(r) for r in con.execute(sql, params).fetchall())


def _class_counts(con: duckdb.DuckDBPyConnection, linked: Sequence[str],
                  age_linked: bool, complex_linked: bool = False) -> dict[tuple, int]:
    """The tabulated citizens per rule class. Without a flag in the class the profile groups
    hold the counts; with one, the case reviews are read again (one scan)."""
    age = ", coalesce(age_band, 'unknown')" if age_linked else ""
    if complex_linked:  # marts.citizens.complex_case, in the class before the age band
        age = ", complex_case" + age
    if not linked and not complex_linked:
        rows = con.execute(f"select profile, base_profile{age}, sum(n)::bigint"
                           " from marts.profile_groups group by all").fetchall()
    else:
        flags = "".join(f', reviews."{f}"' for f in linked)
        rows = con.execute(
            f"select profile, base_profile{flags}{age}, count(*)"
            " from marts.citizens join marts.case_flags as reviews using (citizen_id)"
            " where tabulated group by all").fetchall()
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


# The headline (definitions §5) shows numbers no table prints: the citizens in scope, the
# unreviewed, the complex cases (and so, beside the grand total, the others), and more than
# one year in M3 (two column totals added). §6: the attacker sees every number the release
# shows, so they are numbers of the release, in the one pattern and the one audit, tied to
# the tables by what the definitions say: in scope = with a profile (the grand total) +
# unreviewed; complex + not complex = the grand total; more than one year = the
# `1_to_2y` + `2y_plus` column totals of m3_duration; under rules that test
# departments_involved, the complex cases are a sum of rule classes (`relations`).
HEADLINE = "headline"
_IN_SCOPE, _UNREVIEWED = (HEADLINE, "in_scope", TOTAL), (HEADLINE, "unreviewed", TOTAL)
_COMPLEX, _NOT_COMPLEX = (HEADLINE, "complex_case", TOTAL), (HEADLINE, "not_complex_case", TOTAL)
_M3_OVER_1Y = (HEADLINE, "m3_over_1y", TOTAL)
# issue 15: the profiles' sources (queries/headline_sources.sql)
_REVIEWED, _MODEL = (HEADLINE, "reviewed", TOTAL), (HEADLINE, "model", TOTAL)
_UNCERTAIN = (HEADLINE, "uncertain", TOTAL)
_M3_OVER_1Y_BANDS = ("1_to_2y", "2y_plus")


def headline_relations(con: duckdb.DuckDBPyConnection, tables: Sequence[Table],
                       known: Relations | None = None,
                       complex_classes: Sequence[str] | None = None,
                       merges: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
                       ) -> Relations:
    """`known` with the headline's numbers as numbers of the release (see above).
    `complex_classes`: the unpublished rule classes whose citizens are complex cases, when
    the rules test departments_involved (else the complex cases are free of the tables).
    `merges`: the merged columns of coarsened tables (pipeline.coarsening)."""
    known = known or Relations()
    at_most = list(known.at_most)
    by_id = {t.id: t for t in tables}
    dist = by_id["profile_distribution"]
    grand = (dist.id, TOTAL, TOTAL)
    tabulated = int(dist.counts[-1, -1])
    # fetchall: a pending result would keep the connection from registering the model
    ((in_scope, unreviewed, complex_n),) = warehouse.query(con, "headline_counts").fetchall()
    cells = {_IN_SCOPE: in_scope, _UNREVIEWED: unreviewed, _COMPLEX: complex_n,
             _NOT_COMPLEX: tabulated - complex_n}
    unpublished = dict(known.unpublished)
    scope: dict = {_IN_SCOPE: 1, _UNREVIEWED: -1, grand: -1}
    if in_scope != tabulated + unreviewed:  # in scope, reviewed, without a profile
        unpublished["in scope without a profile"] = in_scope - tabulated - unreviewed
        scope["in scope without a profile"] = -1
    equal = [scope, {_COMPLEX: 1, _NOT_COMPLEX: 1, grand: -1}]
    _source_relations(con, cells, unpublished, equal, grand, unreviewed)
    if complex_classes is not None:
        equal.append({_COMPLEX: 1, **dict.fromkeys(complex_classes, -1)})
    m3 = by_id.get("m3_duration")
    if m3 is not None:
        # a merged column (coarsening) within the bands counts whole; one that also holds
        # other bands holds an unknown part of the number (0 to its count)
        fine = {c: set((merges or {}).get(m3.id, {}).get(c, (c,))) for c in m3.cols}
        bands = set(_M3_OVER_1Y_BANDS)
        parts = [(m3.id, TOTAL, c) for c in m3.cols if fine[c] <= bands]
        mixed = [(m3.id, TOTAL, c) for c in m3.cols if fine[c] & bands and not fine[c] <= bands]
        ((over_n,),) = con.execute(
            "select coalesce(sum(n), 0)::bigint from marts.table_cells where table_id ="
            " 'm3_duration' and \"row\" = $total and list_contains($cols, col)",
            {"total": TOTAL, "cols": list(_M3_OVER_1Y_BANDS)}).fetchall()
        cells[_M3_OVER_1Y] = int(over_n)
        over: dict = {_M3_OVER_1Y: 1, **dict.fromkeys(parts, -1)}
        if mixed:
            part = sum(int(m3.counts[-1, m3.cols.index(c[2])]) for c in parts)
            unpublished["more than a year in M3, in merged columns"] = int(over_n) - part
            over["more than a year in M3, in merged columns"] = -1
            at_most.append({"more than a year in M3, in merged columns": 1,
                            **dict.fromkeys(mixed, -1)})
        equal.append(over)
    return Relations(unpublished, (*known.equal, *equal), tuple(at_most),
                     {**known.cells, **cells})


def _source_relations(con: duckdb.DuckDBPyConnection, cells: dict, unpublished: dict,
                      equal: list, grand: tuple[str, str, str], unreviewed: int) -> None:
    """Issue 15's split of the headline as numbers of the release: reviewed + model = the
    grand total; uncertain + the not reviewed without a model's profile = unreviewed."""
    ((reviewed, by_model, uncertain),) = warehouse.query(con, "headline_sources").fetchall()
    cells.update({_REVIEWED: reviewed, _MODEL: by_model, _UNCERTAIN: uncertain})
    equal.append({_REVIEWED: 1, _MODEL: 1, grand: -1})
    rest = {_UNREVIEWED: 1, _UNCERTAIN: -1}
    if unreviewed != uncertain:  # no model: the unreviewed stay without a profile
        unpublished["not reviewed, no model's profile"] = unreviewed - uncertain
        rest["not reviewed, no model's profile"] = -1
    equal.append(rest)


def published(con: duckdb.DuckDBPyConnection) -> tuple[PublishedTable, ...]:
    """Every table as published, in report order, read from `marts.published_cells`."""
    rows = warehouse.query(con, "published_grid").fetchall()
    from pipeline.coarsening import release_merges

    merges = release_merges(con)
    levels = dict(con.execute("select table_id, max(level) from marts.release_cells"
                              " group by table_id").fetchall())
    out = []
    for tid, dim, multi, t_rows, t_cols, grid in _grids(rows):
        cells = {
            (r, c): Cell(v["n"], v["share"], v["hidden"], v["share_hidden"])
            for r, line in zip((*t_rows, TOTAL), grid, strict=True)
            for c, v in zip((*t_cols, TOTAL), line, strict=True)
        }
        out.append(PublishedTable(tid, dim, multi, t_rows, t_cols, cells,
                                  int(levels.get(tid, 0)), merges.get(tid, {})))
    return tuple(out)


def _ratio(n: int | None, d: Cell) -> float | None:
    return n / d.n if n is not None and d.n else None


def headline(
    con: duckdb.DuckDBPyConnection, tables: Sequence[PublishedTable], cfg: Config
) -> Headline:
    """The headline figures (definitions §5), as the release publishes them: the counts no
    table prints are numbers of the release (`headline_relations`), hidden where
    marts.suppressed_cells hides them, in the one pattern with the tables (§6); the rest
    are the tables' published cells. A share is shown when its count and the grand total
    are."""
    by_id = {t.id: t for t in tables}
    dist, course = by_id["profile_distribution"], by_id["course_history"]
    grand = dist.cell(TOTAL, TOTAL)
    in_scope, unreviewed, complex_n = warehouse.query(con, "headline_counts").fetchone()
    (over_n,) = con.execute(
        "select coalesce(sum(n), 0)::bigint from marts.table_cells"
        " where table_id = 'm3_duration' and \"row\" = $total and list_contains($cols, col)",
        {"total": TOTAL, "cols": list(_M3_OVER_1Y_BANDS)}).fetchone()
    hidden = {(r, c) for r, c in con.execute(
        'select "row", col from marts.suppressed_cells where table_id = $t',
        {"t": HEADLINE}).fetchall()}

    def shown(key: tuple[str, str, str], n: int) -> int | None:
        return None if key[1:] in hidden else n

    def share_cell(key: tuple[str, str, str], n: int) -> Cell:
        value = shown(key, n)
        return Cell(value, _ratio(value, grand), value is None, value is None or grand.hidden)

    return Headline(
        in_scope=shown(_IN_SCOPE, in_scope),
        unreviewed=shown(_UNREVIEWED, unreviewed),
        profiled=grand,
        profile_shares={r: dist.cell(r, TOTAL) for r in dist.rows},
        m3_over_1y=share_cell(_M3_OVER_1Y, over_n),
        # a coarsened course table may have merged it away: then it is no published number
        long_continuous=(course.cell(TOTAL, "long_continuous") if "long_continuous" in course.cols
                         else Cell(None, None, True, True)),
        complex_case=share_cell(_COMPLEX, complex_n),
        **dict(zip(("reviewed", "model", "uncertain"), (
            shown(key, n) for key, n in zip(
                (_REVIEWED, _MODEL, _UNCERTAIN),
                warehouse.query(con, "headline_sources").fetchone(), strict=True)),
            strict=True)),
    )
