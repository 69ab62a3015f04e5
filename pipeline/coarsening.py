"""Coarsening (definitions §6, issue 13 item 4; docs/disclosure.md §3): tables that stay
readable at small populations. A table that hides too many of its citizens is shown with
some of its columns merged, along a hierarchy the config declares (τ-Argus's global
recoding), before it is suppressed.

Reads the config's `[coarsening]` section (`plan`: the hierarchy per table, with defaults,
validated), the finest tables (`marts.table_cells`) and, when a multi-response table merges
columns, the tabulated citizens once more (a merged column there counts the citizens with
ANY of its flags, which no sum of cells gives). Writes the Python model
`marts.release_cells`: every table at the level chosen, in the grain and columns of
`marts.table_cells`, plus `level` (0 = finest) and `merged_from` (the fine codes a merged
column stands for; null for a column as it is). `marts.published_cells` and the suppression
read it.

The choice (`choose`): start every table at its finest level (or at the level of the last
release published from the output folder, `Context.inputs["previous"]`), suppress (the same
model, relations and preference as the release: `pipeline.release.relations`, the cohort
table's `pipeline.movement.cohort_relations`, `costs`), and coarsen one level each table
that hides more than `threshold` of its citizens (the counts in its hidden inner cells,
ticks in a multi-response table, over all its inner counts); repeat until none does or every
such table is at its coarsest; then, if a table that cannot be coarsened still hides too
much, another table one level coarser where that helps. Deterministic: the same input gives
the same levels. `costs`: the suppression's preference (`suppression.Costs`): no table over
the threshold where a safe pattern allows it, then the fewest hidden citizens, a cell the
previous release hid costing none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.config import Config, ConfigError
from pipeline.suppression import TOTAL, Costs, Table, solve
from pipeline.vocabulary import COURSE_CLASSES, FLAG_COLUMNS, M3_BANDS, age_band_codes

log = logging.getLogger("m3_profiles")

DEFAULT_THRESHOLD = 1 / 3
_CODE = re.compile(r"[a-z0-9][a-z0-9_]*")


@dataclass(frozen=True)
class Columns:
    """The finest columns of one table (definitions §5): in order; those shown only when
    non-zero and a multi-response table's "none" column, which are never merged."""

    cols: tuple[str, ...]
    multi_response: bool
    fixed: tuple[str, ...] = ()


def _flags(prefix: str) -> tuple[str, ...]:
    return tuple(c for c in FLAG_COLUMNS if c.startswith(prefix))


def columns(cfg: Config) -> dict[str, Columns]:
    """The tables that have columns to merge, with their finest columns (as the
    marts.table_<id> models count them)."""
    return {
        "course_history": Columns(COURSE_CLASSES, False, ("no_history",)),
        "age_groups": Columns((*age_band_codes(cfg.age_bands), "unknown"), False,
                              ("unknown",)),
        "case_focus": Columns(_flags("focus_"), True),
        "misuse": Columns(("alcohol", "soft_drugs", "hard_drugs", "misuse_no"), True,
                          ("misuse_no",)),
        "motivation": Columns((*_flags("motivation_"), "motivation_not_stated"), True,
                              ("motivation_not_stated",)),
        "m3_duration": Columns(M3_BANDS, False, ("not_in_m3",)),
        "barriers": Columns(_flags("barrier_"), True),
    }


Level = tuple[tuple[str, tuple[str, ...]], ...]  # (merged code, the fine codes), in order


@dataclass(frozen=True)
class Plan:
    """The hierarchy: per table its coarser levels, finest first (level 0, the table as
    defined, is implicit), and the share of hidden citizens that coarsens a table."""

    threshold: float
    levels: Mapping[str, tuple[Level, ...]]


def _age_levels(cfg: Config) -> list[Level]:
    """Under 30 / 30-49 / 50 and over, then all ages: as far as the config's bands allow
    (a coarse band is a union of fine ones, so only edges the config has are kept)."""
    fine = age_band_codes(cfg.age_bands)
    out: list[Level] = []
    edges = tuple(e for e in (30, 50) if e in cfg.age_bands)
    if len(edges) < len(cfg.age_bands):
        groups: dict[str, list[str]] = {}
        coarse = age_band_codes(edges)
        for i, code in enumerate(fine):
            lower = 0 if i == 0 else cfg.age_bands[i - 1]
            groups.setdefault(coarse[sum(1 for e in edges if e <= lower)], []).append(code)
        level = tuple((c, tuple(g)) for c, g in groups.items() if len(g) > 1)
        if level:
            out.append(level)
    if len(fine) > 1:
        out.append((("all_ages", fine),))
    return out


def default_levels(cfg: Config) -> dict[str, tuple[Level, ...]]:
    """The defaults (docs/disclosure.md §3; m3-profiles.example.toml): age bands as far as
    the bands allow, then all ages; time in M3 under one year / one year or more; long and
    short continuous courses as one, then every course as one (as "all ages": the table
    then says little more than the profile totals, but says it); misuse by kind with the
    drugs as one, then yes / no; and each multi-response table's rarest columns (in
    Faxe-like data about a tenth of the citizens each) as "other", then the next rarest
    too. One level each was not enough for the goal at 150 citizens (bench/results)."""
    focus_other = ("focus_support_scheme", "focus_misuse_treatment", "focus_rest")
    barrier_other = ("barrier_housing", "barrier_language")
    motivation_other = ("motivation_none", "motivation_pension")
    return {
        "age_groups": tuple(_age_levels(cfg)),
        "m3_duration": ((("1y_plus", ("1_to_2y", "2y_plus")),),),
        "course_history": (
            (("continuous", ("long_continuous", "short_continuous")),),
            (("any_course", ("long_continuous", "short_continuous", "several_separate")),),
        ),
        "case_focus": (
            (("focus_other", focus_other),),
            (("focus_treatment", ("focus_physical_treatment", "focus_psych_treatment")),
             ("focus_other", (*focus_other, "focus_upskilling", "focus_pension_case"))),
        ),
        "misuse": (
            (("drugs", ("soft_drugs", "hard_drugs")),),
            (("misuse_yes", ("alcohol", "soft_drugs", "hard_drugs")),),
        ),
        "motivation": (
            (("motivation_other", motivation_other),),
            (("motivation_other", (*motivation_other, "motivation_overcomes_barriers")),),
        ),
        "barriers": (
            (("barrier_other", barrier_other),),
            (("barrier_other", (*barrier_other, "barrier_children", "barrier_transport")),),
        ),
    }


def plan(cfg: Config, source: str = "config") -> Plan:
    """The config's `[coarsening]` section over the defaults, validated. `threshold`: a
    share; every other key a table id whose value replaces that table's default levels
    (a list of levels, finest first, each a table `merged code = [fine codes]`; `[]` never
    coarsens it). A `ConfigError` names what is wrong."""
    raw = dict(cfg.coarsening)
    threshold = raw.pop("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (
            0 <= threshold <= 1):
        raise ConfigError(f"{source}: [coarsening] threshold must be a share between 0 and 1,"
                          f" got {threshold!r}")
    known = columns(cfg)
    levels = default_levels(cfg)
    for tid, given in raw.items():
        if tid not in known:
            raise ConfigError(f"{source}: [coarsening] has unknown table '{tid}' (tables with"
                              f" columns to merge: {', '.join(known)}; or threshold)")
        levels[tid] = _parse_levels(tid, given, known[tid], source)
    for tid, lv in levels.items():
        _validate(tid, lv, known[tid], source)
    return Plan(float(threshold), levels)


def _parse_levels(tid: str, given: Any, cols: Columns, source: str) -> tuple[Level, ...]:
    where = f"{source}: [coarsening] {tid}"
    if not isinstance(given, list):
        raise ConfigError(f"{where} must be a list of levels, each a table"
                          " `merged code = [columns]`")
    out = []
    for k, level in enumerate(given, start=1):
        if not isinstance(level, dict) or not level:
            raise ConfigError(f"{where}: level {k} must be a table `merged code = [columns]`")
        groups = []
        for code, members in level.items():
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise ConfigError(f"{where}: level {k}, '{code}' must be a list of column codes")
            groups.append((code, tuple(members)))
        out.append(tuple(groups))
    return tuple(out)


def _validate(tid: str, levels: Sequence[Level], cols: Columns, source: str) -> None:
    where = f"{source}: [coarsening] {tid}"
    previous: Level = ()
    for k, level in enumerate(levels, start=1):
        seen: dict[str, str] = {}
        for code, members in level:
            if not _CODE.fullmatch(code) or code == TOTAL:
                raise ConfigError(f"{where}: level {k}: '{code}' is no valid column code"
                                  " (lower-case letters, digits and _; not 'total')")
            if code in cols.cols:
                raise ConfigError(f"{where}: level {k}: '{code}' is already a column of the"
                                  " table; name the merged column otherwise")
            if len(members) < 2:
                raise ConfigError(f"{where}: level {k}: '{code}' merges fewer than two columns")
            for m in members:
                if m not in cols.cols:
                    raise ConfigError(f"{where}: level {k}: unknown column '{m}' (columns:"
                                      f" {', '.join(c for c in cols.cols if c not in cols.fixed)})")
                if m in cols.fixed:
                    raise ConfigError(f"{where}: level {k}: column '{m}' cannot be merged (a"
                                      " 'none' column or one shown only when non-zero)")
                if m in seen:
                    raise ConfigError(f"{where}: level {k}: column '{m}' is in two merged"
                                      f" columns ('{seen[m]}' and '{code}')")
                seen[m] = code
        # levels go from finest to coarsest: a merged column stays within one of the next
        for code, members in previous:
            outer = {seen.get(m) for m in members}
            if len(outer) != 1 or None in outer:
                raise ConfigError(f"{where}: level {k} splits '{code}' of level {k - 1} (each"
                                  " level must merge the columns of the one before further)")
        previous = level


# ---------------------------------------------------------------------------------------
# a table at a level


def _layout(t_cols: Sequence[str], level: Level) -> list[tuple[str, tuple[str, ...]]]:
    """The columns of a table at `level`, in order: (code, fine codes); a merged column
    stands where its first fine column stood."""
    group_of = {m: (code, members) for code, members in level for m in members}
    out: list[tuple[str, tuple[str, ...]]] = []
    done: set[str] = set()
    for c in t_cols:
        if c in group_of:
            code, members = group_of[c]
            if code not in done:
                done.add(code)
                out.append((code, members))
        else:
            out.append((c, (c,)))
    return out


def coarsen(t: Table, level: Level, any_counts: Mapping[str, np.ndarray] | None = None) -> Table:
    """`t` with the columns of `level` merged: a category's merged column is the sum of its
    cells; a multi-response table's counts the citizens with any of its flags
    (`any_counts[code]`: per row, the total row last)."""
    if not level:
        return t
    layout = _layout(t.cols, level)
    cols = tuple(code for code, _ in layout)
    out = np.zeros((len(t.rows) + 1, len(cols) + 1), dtype=np.int64)
    for j, (code, members) in enumerate(layout):
        if len(members) == 1 and members[0] == code:
            out[:, j] = t.counts[:, t.cols.index(code)]
        elif t.multi_response:
            out[:, j] = (any_counts or {})[code]
        else:
            out[:, j] = t.counts[:, [t.cols.index(m) for m in members]].sum(axis=1)
    out[:, -1] = t.counts[:, -1]
    return Table(t.id, t.row_dim, t.rows, cols, out, t.multi_response)


def merges_of(t_cols: Sequence[str], level: Level) -> dict[str, tuple[str, ...]]:
    return {code: members for code, members in _layout(t_cols, level)
            if not (len(members) == 1 and members[0] == code)}


def _any_counts(con: duckdb.DuckDBPyConnection, t: Table, level: Level) -> dict[str, np.ndarray]:
    """Per merged column of a multi-response table: the citizens of each row with any of its
    flags (one scan of the tabulated citizens; the flags are validated column codes)."""
    dim = "profile" if t.row_dim == "profile" else "base_profile"
    exprs = [" or ".join(f'coalesce(reviews."{f}", false)' for f in members)
             for _, members in level]
    sql = (f"select c.{dim}, " + ", ".join(f"count_if({e})" for e in exprs)
           + " from marts.citizens as c join marts.case_flags as reviews using (citizen_id)"
           " where c.tabulated group by all")
    by_row = {r[0]: r[1:] for r in con.execute(sql).fetchall()}
    out = {}
    for k, (code, _) in enumerate(level):
        col = np.array([int(by_row.get(r, (0,) * len(level))[k]) for r in t.rows],
                       dtype=np.int64)
        out[code] = np.append(col, col.sum())
    return out


def hidden_share(t: Table, hidden: Any) -> float:
    """The share of a table's citizens in hidden inner cells: its inner counts (ticks in a
    multi-response table; the row totals of a table without columns) in hidden cells over
    all of them."""
    cols = t.cols or (TOTAL,)
    counted = shown = 0
    for i, r in enumerate(t.rows):
        for c in cols:
            n = int(t.counts[i, t.cols.index(c) if c != TOTAL else len(t.cols)])
            counted += n
            if (t.id, r, c) not in hidden:
                shown += n
    return 1 - shown / counted if counted else 0.0


# the weight of a citizen in a cell the previous release hid too (`costs`): hiding it again
# costs only the printed cell, so the new pattern agrees with the old one wherever a safe
# pattern can (Eurostat: consistent suppression patterns between periods)
AGAIN = 0.0


def costs(cfg: Config, tables: Sequence[Table], previous: Any = None) -> Costs | None:
    """What the release's suppression prefers (`suppression.Costs`): with a threshold
    below 1, no table hiding more than it (soft, first); then the fewest hidden citizens,
    a cell the previous release from the output folder hid (`previous`, a
    `pipeline.releases.Snapshot`) counting `AGAIN` of its citizens. The coarsening and the
    release's suppression (marts.suppressed_cells) solve with the same, so the pattern a
    level was judged on is the one published."""
    threshold = plan(cfg).threshold
    limits = {t.id: threshold for t in tables} if threshold < 1 else {}
    again = {key: AGAIN for key in previous_hidden(previous)}
    if not limits and not again:
        return None
    return Costs(cells=again, limits=limits)


def previous_hidden(previous: Any) -> list[tuple[str, str, str]]:
    """The cells the previous release hid (its snapshot's `hidden`: "cell|table|row|col")."""
    out = []
    for name in getattr(previous, "hidden", None) or ():
        parts = name.split("|")
        if len(parts) == 4 and parts[0] == "cell":
            out.append((parts[1], parts[2], parts[3]))
    return out


def previous_levels(cfg: Config, previous: Any) -> dict[str, int]:
    """The level of each table in the previous release (its snapshot's merges, matched to
    the hierarchy in use; a table whose merges are no level of it starts at the finest)."""
    structure = getattr(previous, "structure", None) or {}
    merged = structure.get("merges") or {}
    out: dict[str, int] = {}
    for tid, levels in plan(cfg).levels.items():
        got = {c: tuple(fs) for c, fs in (merged.get(tid) or {}).items()}
        for k, level in enumerate(levels, start=1):
            if got and got == dict(level):
                out[tid] = k
    return out


@dataclass(frozen=True)
class Choice:
    """The tables at the levels chosen, with each table's level and merges, and the
    pattern the suppression chose for them."""

    tables: tuple[Table, ...]
    levels: Mapping[str, int]
    merges: Mapping[str, Mapping[str, tuple[str, ...]]]
    pattern: Mapping[tuple[str, str, str], str]


def overshoot(tables: Sequence[Table], hidden: Any, threshold: float) -> float:
    """Citizens hidden beyond the threshold, summed over the tables (what `Costs.limits`
    minimises first)."""
    out = 0.0
    for t in tables:
        counted = int(t.counts[:-1, :-1].sum()) if t.cols else int(t.counts[:-1, -1].sum())
        out += max(0.0, hidden_share(t, hidden) - threshold) * counted
    return out


def choose(con: duckdb.DuckDBPyConnection, cfg: Config, fine: Sequence[Table],
           previous: Any = None) -> Choice:
    """The levels (module docstring): from the finest (or from the levels of `previous`,
    the last release published from the output folder, never finer), one level coarser
    for each table that hides more than the threshold, until none does or each such table
    is at its coarsest. Then, while a table at its coarsest (or without levels: the
    profile totals) still hides more, the one table one level coarser that lowers the
    citizens hidden beyond the threshold most (the first in table order on a tie), as
    long as one does."""
    from pipeline.movement import cohort_relations
    from pipeline.release import relations  # release builds the models that call this

    cfg = cfg.resolved()
    p = plan(cfg)
    top = {t.id: len(p.levels.get(t.id, ())) for t in fine}
    start = previous_levels(cfg, previous)
    levels = {t.id: min(start.get(t.id, 0), top[t.id]) for t in fine}
    cache: dict[tuple[str, int], tuple[Table, dict]] = {}
    tried: dict[tuple[int, ...], Choice] = {}

    def at(t: Table, k: int) -> tuple[Table, dict]:
        if (t.id, k) not in cache:
            level = p.levels.get(t.id, ())[k - 1] if k else ()
            counts = _any_counts(con, t, level) if level and t.multi_response else None
            cache[(t.id, k)] = (coarsen(t, level, counts), merges_of(t.cols, level))
        return cache[(t.id, k)]

    def evaluate(lv: Mapping[str, int]) -> Choice:
        key = tuple(lv[t.id] for t in fine)
        if key not in tried:
            got = [at(t, lv[t.id]) for t in fine]
            tables = tuple(g[0] for g in got)
            merges = {t.id: g[1] for t, g in zip(fine, got, strict=True) if g[1]}
            pattern: dict = {}
            if cfg.min_cell > 1:
                # every relation the release's suppression will know, the cohort table's
                # numbers and their link to the profile tables included (marts.cohort_cells
                # is built before this model): a level is judged on the pattern that will
                # be published, solved with the same preference (`costs`)
                known = cohort_relations(con, tables, relations(con, cfg, tables, merges),
                                         cfg, merges)
                pattern = solve(tables, cfg.min_cell, relations=known,
                                costs=costs(cfg, tables, previous)).pattern
            tried[key] = Choice(tables, dict(lv), merges, pattern)
        return tried[key]

    while True:
        got = evaluate(levels)
        if cfg.min_cell <= 1:
            return got
        over = [t.id for t in got.tables if hidden_share(t, got.pattern) > p.threshold]
        if not over:
            return got
        can = [tid for tid in over if levels[tid] < top[tid]]
        if can:
            for tid in can:
                levels[tid] += 1
            continue
        # stuck: what hides too much cannot be coarsened; the joint pattern can still
        # change with another table's level (the tables are linked)
        now = overshoot(got.tables, got.pattern, p.threshold)
        best: tuple[float, dict[str, int]] | None = None
        for t in fine:
            if levels[t.id] < top[t.id]:
                trial = {**levels, t.id: levels[t.id] + 1}
                c = evaluate(trial)
                o = overshoot(c.tables, c.pattern, p.threshold)
                if o < now - 1e-9 and (best is None or o < best[0] - 1e-9):
                    best = (o, trial)
        if best is None:
            return got
        levels = best[1]


# ---------------------------------------------------------------------------------------
# the model

_SCHEMA = pa.schema([
    ("table_id", pa.string()), ("table_order", pa.int64()), ("row_dim", pa.string()),
    ("multi_response", pa.bool_()), ("row", pa.string()), ("col", pa.string()),
    ("row_order", pa.int64()), ("col_order", pa.int64()), ("n", pa.int64()),
    ("denominator_row", pa.string()), ("denominator_col", pa.string()),
    ("denominator", pa.int64()), ("share", pa.float64()), ("level", pa.int64()),
    ("merged_from", pa.list_(pa.string())),
])


def release_cells_model(con: duckdb.DuckDBPyConnection, ctx: Any) -> pa.Table:
    """marts.release_cells (a Python model of the registry): every table at the level
    `choose` picks, in the grain of marts.table_cells (internal: unsuppressed counts)."""
    from pipeline.release import counted_tables

    fine = counted_tables(con, "marts.table_cells")
    previous = ctx.inputs.get("previous")
    choice = choose(con, ctx.cfg, fine, previous)
    if previous is not None:
        start = previous_levels(ctx.cfg, previous)
        for tid, k in sorted(choice.levels.items()):
            if k != start.get(tid, 0):
                # the release is then not comparable with the previous one (the audit
                # across releases refuses it: docs/disclosure.md §2.3)
                log.warning("coarsening: table %s at level %d, the previous release's %d",
                            tid, k, start.get(tid, 0))
    meta = con.execute(
        'select table_id, any_value(table_order), "row", any_value(row_order), col,'
        " any_value(col_order) from marts.table_cells group by table_id, \"row\", col"
    ).fetchall()
    t_order = {r[0]: r[1] for r in meta}
    r_order = {(r[0], r[2]): r[3] for r in meta}
    c_order = {(r[0], r[4]): r[5] for r in meta}
    cols: dict[str, list] = {f.name: [] for f in _SCHEMA}
    for t in choice.tables:
        merges = choice.merges.get(t.id, {})
        grand = int(t.counts[-1, -1])
        for i, r in enumerate((*t.rows, TOTAL)):
            row_total = int(t.counts[i, -1])
            for j, c in enumerate((*t.cols, TOTAL)):
                n = int(t.counts[i, j])
                denom = grand if c == TOTAL else row_total
                fine_codes = merges.get(c)
                order = (min(c_order[(t.id, m)] for m in fine_codes) if fine_codes
                         else c_order[(t.id, c)])
                for name, value in (
                    ("table_id", t.id), ("table_order", t_order[t.id]), ("row_dim", t.row_dim),
                    ("multi_response", t.multi_response), ("row", r), ("col", c),
                    ("row_order", r_order[(t.id, r)]), ("col_order", order), ("n", n),
                    ("denominator_row", TOTAL if c == TOTAL else r),
                    ("denominator_col", TOTAL), ("denominator", denom),
                    ("share", n / denom if denom else None),
                    ("level", choice.levels[t.id]),
                    ("merged_from", list(fine_codes) if fine_codes else None),
                ):
                    cols[name].append(value)
    return pa.table(cols, schema=_SCHEMA)


def release_merges(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, tuple[str, ...]]]:
    """The merged columns of the release in the warehouse: table -> code -> fine codes."""
    rows = con.execute(
        "select distinct table_id, col, merged_from from marts.release_cells"
        " where merged_from is not null").fetchall()
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for tid, col, fine in rows:
        out.setdefault(tid, {})[col] = tuple(fine)
    return out
