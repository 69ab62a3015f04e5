"""An independent attacker on a published release (definitions §6): the tests' oracle.

Reads a warehouse after `pipeline.release.publish` — the tabulated citizens
(`marts.citizens` joined with `staging.citizens`: their true joint classes) and every cell's
true count (`marts.table_cells`) — with the `Release` as published, the rules file and the
config. Writes nothing. It never imports `pipeline.suppression`: it is the check of that
module, written from the definitions, not from its model.

What the attacker knows (§6): every number the release shows (every table, the headline),
that counts are whole numbers, that a hidden number is at least 1 (zeros are shown), that a
column "shown only when non-zero" and left out is zero everywhere, and every relation the
definitions and the rules file imply. It holds them as one integer program whose variables
are counts of *joint classes of citizens*, every published number being a sum of them:

* The finest cross-classification the release is made from is profile × base profile ×
  course class × age band × M3 band × every flag the tables count × the atoms the rules
  test. Each table counts ONE of those dimensions (a categorical one, one flag, or one
  multi-response block whose "none" column depends on all its flags) against the profile
  or the base profile. So, given the counts of the *rule classes* K = (profile, base
  profile, the values of the published dimensions the rules themselves test), the other
  dimensions can be handed to the citizens of a class independently of each other (line
  the citizens up and deal each dimension out separately): a set of class counts is
  consistent with the full cross-classification exactly when it is consistent per
  dimension. The variables are therefore: one count per rule class K (every K the rules
  can produce, found by evaluating the rules' conditions over every combination of their
  atoms, not only the classes present in the data), and, per table dimension the rules do
  not test, the counts per (row, value) — or, for a multi-response block with a "none"
  column, per (row, tick pattern) over all 2^k patterns.
* The rule classes are found by evaluating the rules file's conditions here, in Python,
  from their text (not with the pipeline's compiled SQL); the true classes of the data
  are checked against them, and the model is checked to give back every true cell count
  at the true class counts, so a wrong model fails loudly instead of attacking nothing.

For each hidden number it computes the smallest and largest whole value consistent with
all of that (an LP, then a MILP when the LP's optimum is not whole: HiGHS through scipy),
and reports a hidden number derived exactly (min = max) and a small one proven small
(max < min_cell).
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix

from pipeline.config import Config
from pipeline.rules import Rules
from pipeline.vocabulary import COURSE_CLASSES, M3_BANDS, age_band_codes

T = "total"
Key = tuple[str, str, str]  # (table or "headline", row, col)

# definitions §5, read from the definitions: what each table counts against its rows.
# kind "cat": one categorical dimension; "flags": one column per flag (multi-response, no
# "none" column: each flag is its own dimension); "block": flags + a "none" column.
FOCUS = ("focus_ordinary_work", "focus_upskilling", "focus_support_scheme", "focus_activation",
         "focus_physical_treatment", "focus_psych_treatment", "focus_misuse_treatment",
         "focus_rest", "focus_pension_case")
BARRIERS = ("barrier_housing", "barrier_economy", "barrier_transport", "barrier_children",
            "barrier_language", "barrier_isolation")
MISUSE = ("alcohol", "soft_drugs", "hard_drugs")
MOTIVATION = ("motivation_overcomes_barriers", "motivation_work", "motivation_education",
              "motivation_none", "motivation_pension")


@dataclass(frozen=True)
class TableDef:
    row_dim: str  # "profile" or "base"
    kind: str  # "none" (only totals), "cat", "flags", "block"
    dim: str = ""  # the categorical dimension
    flags: tuple[str, ...] = ()
    none_col: str = ""


def table_defs(cfg: Config) -> dict[str, TableDef]:
    return {
        "profile_distribution": TableDef("profile", "none"),
        "course_history": TableDef("profile", "cat", "course_class"),
        "age_groups": TableDef("profile", "cat", "age_band"),
        "m3_duration": TableDef("profile", "cat", "m3_band"),
        "case_focus": TableDef("profile", "flags", flags=FOCUS),
        "barriers": TableDef("profile", "flags", flags=BARRIERS),
        "misuse": TableDef("base", "block", flags=MISUSE, none_col="misuse_no"),
        "motivation": TableDef("profile", "block", flags=MOTIVATION,
                               none_col="motivation_not_stated"),
    }


def categories(cfg: Config) -> dict[str, tuple[str, ...]]:
    """Every value a categorical dimension can take (a column left out is known zero)."""
    return {
        "course_class": COURSE_CLASSES,
        "age_band": (*age_band_codes(cfg.age_bands), "unknown"),
        "m3_band": M3_BANDS,
    }


# ---------------------------------------------------------------------------------------
# the rules, evaluated here from their text

_KEYWORDS = re.compile(r"\b(and|or|not|true|false)\b", re.IGNORECASE)
_MISUSE_ANY = "(alcohol or soft_drugs or hard_drugs)"
_OPS = {ast.GtE: lambda a, b: a >= b, ast.Gt: lambda a, b: a > b,
        ast.LtE: lambda a, b: a <= b, ast.Lt: lambda a, b: a < b,
        ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}


def _parse(text: str) -> ast.expr:
    text = _KEYWORDS.sub(lambda m: m.group(1).lower(), text.strip())
    text = re.sub(r"\bmisuse_any\b", _MISUSE_ANY, text)
    return ast.parse(text, mode="eval").body


def _atoms(node: ast.expr, flags: set[str], ints: dict[str, set[int]]) -> None:
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _atoms(v, flags, ints)
    elif isinstance(node, ast.UnaryOp):
        _atoms(node.operand, flags, ints)
    elif isinstance(node, ast.Name) and node.id not in ("true", "false"):
        flags.add(node.id)
    elif isinstance(node, ast.Compare):
        ints.setdefault(node.left.id, set()).add(node.comparators[0].value)


def _holds(node: ast.expr, env: Mapping[str, Any]) -> bool:
    if isinstance(node, ast.BoolOp):
        vals = [_holds(v, env) for v in node.values]
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.UnaryOp):
        return not _holds(node.operand, env)
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.Name):
        if node.id in ("true", "false"):
            return node.id == "true"
        return bool(env[node.id])
    if isinstance(node, ast.Compare):
        value = env[node.left.id]
        # a missing value never satisfies a comparison (rules.toml)
        return value is not None and _OPS[type(node.ops[0])](value, node.comparators[0].value)
    raise ValueError(ast.unparse(node))


class RuleClasses:
    """The rule classes K = (profile, base, linked values) the rules can produce.

    Linked values: the published flags the rules test, "complex" (the headline's
    departments_involved >= threshold) when the rules test departments_involved, and the age
    band when the rules test birth_year."""

    def __init__(self, rules: Rules, cfg: Config) -> None:
        self.rules = [(r.code, _parse(r.condition.text)) for r in rules.rules]
        self.base_rules = [(r.code, _parse(r.condition.text)) for r in rules.base_rules]
        flags: set[str] = set()
        ints: dict[str, set[int]] = {}
        for _, node in (*self.rules, *self.base_rules):
            _atoms(node, flags, ints)
        self.rule_flags = tuple(sorted(flags))
        self.cfg = cfg
        ref_year = cfg.reference_date.year
        published = set(FOCUS) | set(BARRIERS) | set(MISUSE) | set(MOTIVATION)
        self.linked_flags = tuple(f for f in self.rule_flags if f in published)
        self.complex_linked = "departments_involved" in ints
        self.age_linked = "birth_year" in ints
        if self.complex_linked:
            ints["departments_involved"].add(cfg.complex_case_departments)
        if self.age_linked:
            ints["birth_year"].update(ref_year - b for b in cfg.age_bands)
        # every region of an integer column: below, at and above each critical value, null
        reps = {col: sorted({v + d for v in vals for d in (-1, 0, 1)}, key=int) + [None]
                for col, vals in ints.items()}
        self.linked = (*self.linked_flags, *(("complex",) if self.complex_linked else ()),
                       *(("age_band",) if self.age_linked else ()))
        classes: set[tuple] = set()
        int_cols = sorted(reps)
        for bits in itertools.product((False, True), repeat=len(self.rule_flags)):
            for ivals in itertools.product(*(reps[c] for c in int_cols)):
                env = dict(zip(self.rule_flags, bits, strict=True))
                env.update(zip(int_cols, ivals, strict=True))
                classes.add(self.key(env))
        self.classes: tuple[tuple, ...] = tuple(sorted(classes, key=repr))

    def _first(self, rules: Sequence[tuple[str, ast.expr]], env: Mapping[str, Any]) -> str:
        for code, node in rules:
            if _holds(node, env):
                return code
        raise AssertionError("the last rule is the catch-all")

    def linked_values(self, env: Mapping[str, Any]) -> tuple:
        out: list[Any] = [bool(env[f]) for f in self.linked_flags]
        if self.complex_linked:
            d = env.get("departments_involved")
            out.append(d is not None and d >= self.cfg.complex_case_departments)
        if self.age_linked:
            b = env.get("birth_year")
            codes = age_band_codes(self.cfg.age_bands)
            if b is None:
                out.append("unknown")
            else:
                age = self.cfg.reference_date.year - b
                out.append(codes[sum(1 for e in self.cfg.age_bands if e <= age)])
        return tuple(out)

    def key(self, env: Mapping[str, Any]) -> tuple:
        return (self._first(self.rules, env), self._first(self.base_rules, env),
                self.linked_values(env))


# ---------------------------------------------------------------------------------------
# what the reader sees


@dataclass
class Knowledge:
    """A release as the attacker holds it, with the truth beside it (to judge the attack).

    `shown[key]`: the published value, None when hidden. `truth[key]`: the true value.
    `tables`: table id -> (rows, cols) as published. `citizens`: one dict per tabulated
    citizen (profile, base, dimensions, flags, departments_involved, birth_year)."""

    cfg: Config
    rules: Rules
    tables: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    shown: dict[Key, int | None]
    truth: dict[Key, int]
    citizens: list[dict[str, Any]]
    unreviewed: int
    label: str = ""
    # coarsened tables (definitions §6): table -> merged column -> the fine codes it stands
    # for; a category's merged column is their sum, a multi-response one counts the
    # citizens with any of them
    merges: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


def knowledge(con: duckdb.DuckDBPyConnection, release: Any, cfg: Config, rules: Rules,
              label: str = "") -> Knowledge:
    """What the published `release` shows, and the truth from the warehouse."""
    cfg = cfg.resolved()
    tables: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    shown: dict[Key, int | None] = {}
    for t in release.tables:
        tables[t.id] = (t.rows, t.cols)
        for (r, c), cell in t.cells.items():
            shown[(t.id, r, c)] = None if cell.hidden else cell.n
            if cell.share is not None:
                assert not cell.hidden, f"a share is shown beside a hidden count: {t.id}"
    truth = {(tid, r, c): n for tid, r, c, n in con.execute(
        'select table_id, "row", col, n from marts.table_cells').fetchall()}
    # a coarsened table's merged columns, as the pipeline counted them
    truth.update({(tid, r, c): n for tid, r, c, n in con.execute(
        'select table_id, "row", col, n from marts.release_cells').fetchall()})
    merges = {t.id: dict(t.merges) for t in release.tables if getattr(t, "merges", None)}
    h = release.headline
    truth_h = con.execute(
        """select count(*) filter (where profile_source = 'unreviewed'),
                  count(*) filter (where tabulated and complex_case)
           from marts.citizens where in_scope""").fetchone()
    grand = truth[("profile_distribution", T, T)]
    truth[("headline", "unreviewed", T)] = truth_h[0]
    truth[("headline", "in_scope", T)] = truth_h[0] + grand
    truth[("headline", "complex_case", T)] = truth_h[1]
    truth[("headline", "m3_over_1y", T)] = sum(truth[("m3_duration", T, c)]
                                               for c in ("1_to_2y", "2y_plus"))
    shown[("headline", "unreviewed", T)] = h.unreviewed
    shown[("headline", "in_scope", T)] = h.in_scope
    shown[("headline", "complex_case", T)] = h.complex_case.n
    shown[("headline", "m3_over_1y", T)] = h.m3_over_1y.n
    cur = con.execute(
        """select c.citizen_id as id, c.profile, c.base_profile as base, c.course_class,
                  coalesce(c.age_band, 'unknown') as age_band, c.m3_band,
                  c.complex_case as complex, s.* exclude (citizen_id)
           from marts.citizens c join staging.citizens s using (citizen_id)
           where c.tabulated""")
    names = [d[0] for d in cur.description]
    citizens = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return Knowledge(cfg, rules, tables, shown, truth, citizens, truth_h[0], label, merges)


# ---------------------------------------------------------------------------------------
# the integer program


@dataclass
class Program:
    """Variables (class counts, >= 0 whole), and every published number as a sum of them."""

    names: list[tuple] = field(default_factory=list)
    index: dict[tuple, int] = field(default_factory=dict)
    expr: dict[Key, dict[int, float]] = field(default_factory=dict)
    eq: list[dict[int, float]] = field(default_factory=list)  # sum = 0
    le: list[dict[int, float]] = field(default_factory=list)  # sum <= 0

    def var(self, name: tuple) -> int:
        if name not in self.index:
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]


def _add(*terms: Mapping[int, float], signs: Iterable[float] | None = None) -> dict[int, float]:
    out: dict[int, float] = {}
    for t, s in zip(terms, signs or [1.0] * len(terms), strict=True):
        for k, v in t.items():
            out[k] = out.get(k, 0.0) + s * v
    return {k: v for k, v in out.items() if v}


def record(c: Mapping[str, Any], rc: RuleClasses, cfg: Config,
           merges: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None) -> list[tuple]:
    """The variables one citizen counts in: its rule class first, then one per dimension."""
    merges = merges or {}
    out: list[tuple] = [("K", rc.key(c))]
    if c["complex"] and not rc.complex_linked:
        out.append(("complex",))
    for tid, td in table_defs(cfg).items():
        r = c[td.row_dim]
        if td.kind == "cat" and td.dim not in rc.linked:
            out.append(("cat", td.dim, r, c[td.dim]))
        elif td.kind == "flags":
            merged = merges.get(tid, {})
            in_merged = {f for fs in merged.values() for f in fs}
            out.extend(("flag", f, r) for f in td.flags
                       if f not in rc.linked and f not in in_merged and c[f])
            for code, fs in merged.items():
                # a merged column: with any of its flags; its unlinked part, among those
                # without a linked one of them, is a dimension of its own
                if not any(c[f] for f in fs if f in rc.linked) and any(
                        c[f] for f in fs if f not in rc.linked):
                    out.append(("merged", tid, code, r))
        elif td.kind == "block":
            linked = tuple(bool(c[f]) for f in td.flags if f in rc.linked)
            pattern = tuple(bool(c[f]) for f in td.flags if f not in rc.linked)
            out.append(("pattern", tid, r, linked, pattern))
    return out


def build_program(kn: Knowledge) -> tuple[Program, dict[int, int]]:
    """The program and the true value of each variable (from the citizens)."""
    cfg, rc = kn.cfg, RuleClasses(kn.rules, kn.cfg)
    prog = Program()
    true: dict[int, int] = {}

    def count(name: tuple, n: int = 1) -> None:
        v = prog.var(name)
        true[v] = true.get(v, 0) + n

    n_k = {k: prog.var(("K", k)) for k in rc.classes}
    for v in n_k.values():
        true.setdefault(v, 0)
    # the true classes; the pipeline's profile and base must be what the rules give here
    for c in kn.citizens:
        k = record(c, rc, cfg)[0]
        assert k[1][:2] == (c["profile"], c["base"]), (k, c["profile"], c["base"])
        assert k[1] in n_k, f"class {k} is not one the rules can produce"
        count(k)

    def members(row_dim: str, row: str, linked: Mapping[str, Any] | None = None) -> dict:
        pos = 0 if row_dim == "profile" else 1
        out = {}
        for k, v in n_k.items():
            if k[pos] != row:
                continue
            if linked and any(k[2][rc.linked.index(a)] != b for a, b in linked.items()):
                continue
            out[v] = 1.0
        return out

    fine_cells: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    profiles = tuple(r.code for r in kn.rules.rules)
    bases = tuple(r.code for r in kn.rules.base_rules)
    grand = {v: 1.0 for v in n_k.values()}
    cats = categories(cfg)
    prog.expr[("headline", "grand", T)] = grand
    for tid, td in table_defs(cfg).items():
        rows, cols = kn.tables[tid]
        row_codes = profiles if td.row_dim == "profile" else bases
        assert set(rows) == set(row_codes), (tid, rows)
        col_expr: dict[str, dict[str, dict[int, float]]] = {}  # row -> col -> expr
        merged = kn.merges.get(tid, {})
        covered = {f for fs in merged.values() for f in fs}
        for r in rows:
            total = members(td.row_dim, r)
            prog.expr[(tid, r, T)] = total
            cells: dict[str, dict[int, float]] = {}
            if td.kind == "cat" and td.dim in rc.linked:
                for val in cats[td.dim]:
                    cells[val] = members(td.row_dim, r, {td.dim: val})
            elif td.kind == "cat":
                parts = {}
                for val in cats[td.dim]:
                    v = prog.var(("cat", td.dim, r, val))
                    true.setdefault(v, 0)
                    parts[v] = 1.0
                    cells[val] = {v: 1.0}
                prog.eq.append(_add(parts, total, signs=(1, -1)))
            elif td.kind == "flags":
                for code, fs in merged.items():
                    lk = [f for f in fs if f in rc.linked]
                    none_linked = members(td.row_dim, r, dict.fromkeys(lk, False)) if lk else {}
                    e = _add(total, none_linked, signs=(1, -1)) if lk else {}
                    if any(f not in rc.linked for f in fs):
                        v = prog.var(("merged", tid, code, r))
                        true.setdefault(v, 0)
                        e = _add(e, {v: 1.0})
                        prog.le.append(_add({v: 1.0}, none_linked if lk else total,
                                            signs=(1, -1)))
                    cells[code] = e
                for f in td.flags:
                    if f in covered and f not in rc.linked:
                        continue
                    if f in rc.linked:
                        cells[f] = members(td.row_dim, r, {f: True})
                    else:
                        v = prog.var(("flag", f, r))
                        true.setdefault(v, 0)
                        cells[f] = {v: 1.0}
                        prog.le.append(_add({v: 1.0}, total, signs=(1, -1)))
            elif td.kind == "block":
                linked = [f for f in td.flags if f in rc.linked]
                free = [f for f in td.flags if f not in rc.linked]
                cells = {f: {} for f in (*td.flags, td.none_col, *merged)}
                for lv in itertools.product((False, True), repeat=len(linked)):
                    group = dict(zip(linked, lv, strict=True))
                    g_total = members(td.row_dim, r, group)
                    if not g_total:
                        continue
                    parts = {}
                    for pattern in itertools.product((False, True), repeat=len(free)):
                        v = prog.var(("pattern", tid, r, lv, pattern))
                        true.setdefault(v, 0)
                        parts[v] = 1.0
                        ticks = {**group, **dict(zip(free, pattern, strict=True))}
                        for f in td.flags:
                            if ticks[f]:
                                cells[f][v] = 1.0
                        if not any(ticks.values()):
                            cells[td.none_col][v] = 1.0
                        for code, fs in merged.items():
                            if any(ticks[f] for f in fs):
                                cells.setdefault(code, {})[v] = 1.0
                    prog.eq.append(_add(parts, g_total, signs=(1, -1)))
            if td.kind == "cat":
                for code, fs in merged.items():
                    cells[code] = _add(*(cells[f] for f in fs))
            fine_cells[(tid, r)] = cells
            col_expr[r] = cells
            for c in cols:
                prog.expr[(tid, r, c)] = cells[c]
            # a category or column not published is known to be zero (left out, §5)
            for c, e in cells.items():
                if c not in cols and c not in covered and e:
                    prog.eq.append(e)
        for c in (*cols, T):
            prog.expr[(tid, T, c)] = _add(*(prog.expr[(tid, r, c)] for r in rows))

    # the headline: complex cases among the tabulated, unreviewed, in scope
    if rc.complex_linked:
        complex_e = {v: 1.0 for k, v in n_k.items() if k[2][rc.linked.index("complex")]}
    else:
        cv = prog.var(("complex",))
        true.setdefault(cv, 0)
        complex_e = {cv: 1.0}
        prog.le.append(_add(complex_e, grand, signs=(1, -1)))
    prog.expr[("headline", "complex_case", T)] = complex_e
    uv = prog.var(("unreviewed",))
    prog.expr[("headline", "unreviewed", T)] = {uv: 1.0}
    prog.expr[("headline", "in_scope", T)] = _add(grand, {uv: 1.0})
    prog.expr[("headline", "m3_over_1y", T)] = _add(*(
        fine_cells[("m3_duration", r)][c] for r in kn.tables["m3_duration"][0]
        for c in ("1_to_2y", "2y_plus")))
    # the true citizens' other dimensions
    for c in kn.citizens:
        for name in record(c, rc, cfg, kn.merges)[1:]:
            count(name)
    true[uv] = kn.unreviewed
    return prog, true


# ---------------------------------------------------------------------------------------
# the attack


@dataclass(frozen=True)
class Finding:
    key: Key
    value: int
    low: float
    high: float
    kind: str  # "exact": min = max; "small": a primary cell whose max < min_cell

    def __str__(self) -> str:
        what = "derived exactly" if self.kind == "exact" else "proven small"
        return f"{self.key} = {self.value}: {what} (range {self.low:g}..{self.high:g})"


@dataclass
class Attack:
    label: str
    ranges: dict[Key, tuple[float, float]]
    findings: list[Finding]
    hidden_cells: int
    cells: int

    @property
    def safe(self) -> bool:
        return not self.findings


def _matrix(rows: Sequence[Mapping[int, float]], n: int):
    r, c, v = [], [], []
    for i, row in enumerate(rows):
        for j, x in row.items():
            r.append(i)
            c.append(j)
            v.append(x)
    return coo_matrix((v, (r, c)), shape=(len(rows), n)).tocsr()


def attack(kn: Knowledge, min_cell: int | None = None, exact: bool = False) -> Attack:
    """Every hidden number's range and the findings that break §6. `exact`: the range of
    every hidden number is its exact min..max; else a number the witnesses already show
    safe keeps the range they show (within its true range), which decides the same
    findings with far fewer programs."""
    min_cell = kn.cfg.min_cell if min_cell is None else min_cell
    prog, true = build_program(kn)
    n = len(prog.names)
    x_true = np.zeros(n)
    for v, val in true.items():
        x_true[v] = val
    # the model must give back every true count at the true class counts
    for key, e in prog.expr.items():
        if key in kn.truth:
            got = sum(x_true[v] * c for v, c in e.items())
            assert got == kn.truth[key], (key, got, kn.truth[key])
    for row in prog.eq:
        assert abs(sum(x_true[v] * c for v, c in row.items())) < 1e-9, row
    for row in prog.le:
        assert sum(x_true[v] * c for v, c in row.items()) <= 1e-9, row

    eq_rows, eq_rhs = list(prog.eq), [0.0] * len(prog.eq)
    ub_rows, ub_rhs = list(prog.le), [0.0] * len(prog.le)
    hidden: list[Key] = []
    for key, value in kn.shown.items():
        if key not in prog.expr:
            continue
        if value is None:
            if key[0] == "headline" and key[1] == "m3_over_1y":
                continue  # hidden because a part is hidden: no number of its own
            hidden.append(key)
            ub_rows.append({v: -c for v, c in prog.expr[key].items()})
            ub_rhs.append(-1.0)  # a hidden number is not zero
        else:
            eq_rows.append(prog.expr[key])
            eq_rhs.append(float(value))
    hidden = sorted(set(hidden))
    a_eq, b_eq = _matrix(eq_rows, n), np.array(eq_rhs)
    a_ub, b_ub = _matrix(ub_rows, n), np.array(ub_rhs)
    cons = [LinearConstraint(a_eq, b_eq, b_eq), LinearConstraint(a_ub, -np.inf, b_ub)]

    # witnesses: whole-number solutions found on the way (the truth first); a number seen
    # at two values, and a small one seen at min_cell or more, needs no program of its own
    distinct: dict[tuple, list[Key]] = {}
    for key in hidden:
        distinct.setdefault(tuple(sorted(prog.expr[key].items())), []).append(key)
    exprs = list(distinct)
    mat = _matrix([dict(e) for e in exprs], n)
    seen_lo = mat @ x_true
    seen_hi = seen_lo.copy()

    def witness(x: np.ndarray) -> None:
        vals = mat @ np.rint(x)
        np.minimum(seen_lo, vals, out=seen_lo)
        np.maximum(seen_hi, vals, out=seen_hi)

    def extreme(e: Mapping[int, float], sign: float) -> float:
        """max of sign * e (inf when unbounded): LP, then MILP if the LP is not whole."""
        c = np.zeros(n)
        for v, x in e.items():
            c[v] = -sign * x
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None),
                      method="highs")
        if res.status == 3:  # unbounded LP: the integer program is too (rational data)
            return np.inf
        assert res.status == 0, res.message
        if np.all(np.abs(res.x - np.rint(res.x)) < 1e-7):
            witness(res.x)
            return float(np.rint(-res.fun))
        res = milp(c, constraints=cons, integrality=np.ones(n), bounds=Bounds(0, np.inf),
                   options={"mip_rel_gap": 0.0})
        assert res.status == 0, res.message
        witness(res.x)
        return float(np.rint(-res.fun))

    ranges: dict[Key, tuple[float, float]] = {}
    findings: list[Finding] = []
    small = {i for i, e in enumerate(exprs) if 1 <= kn.truth[distinct[e][0]] < min_cell}
    for i in sorted(range(len(exprs)), key=lambda i: (i not in small, i)):
        e = dict(exprs[i])

        def settled(i: int = i) -> bool:
            return seen_hi[i] > seen_lo[i] and (i not in small or seen_hi[i] >= min_cell)

        lo = hi = None
        if exact or not settled():
            hi = extreme(e, +1.0)
        if exact or not settled():
            lo = -extreme(e, -1.0)
        lo = seen_lo[i] if lo is None else lo
        hi = seen_hi[i] if hi is None else hi
        for key in distinct[exprs[i]]:
            value = kn.truth[key]
            ranges[key] = (lo, hi)
            if lo == hi:
                findings.append(Finding(key, value, lo, hi, "exact"))
            elif 1 <= value < min_cell and hi < min_cell:
                findings.append(Finding(key, value, lo, hi, "small"))
    findings.sort(key=lambda f: f.key)
    cells = sum(1 for k in kn.shown if k[0] != "headline")
    hidden_cells = sum(1 for k, v in kn.shown.items() if k[0] != "headline" and v is None)
    return Attack(kn.label, ranges, findings, hidden_cells, cells)


# ---------------------------------------------------------------------------------------
# two releases of overlapping populations (definitions §6: earlier releases, differencing)


@dataclass
class PairAttack:
    """What an attacker holding two releases learns: hidden numbers of either release
    (`findings`, as `attack`); the cells a leaver or an entrant is proven to be in
    (`flows`: (release label, cell key, "left" | "entered"), the flow from 1 to
    min_cell - 1 and at least 1 for every solution); and among those, the flows fixed
    exactly (`fixed`: ..., with the value): one citizen's categories read from the
    differences (definitions §6). A grand total's flow is not counted: the attacker is
    given the flow volumes."""

    findings: list[Finding]
    flows: list[tuple[str, Key, str]]
    fixed: list[tuple[str, Key, str, int]] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        """Nothing hidden derived, nothing small proven small, no flow fixed."""
        return not self.findings and not self.fixed


def attack_pair(old: Knowledge, new: Knowledge, min_cell: int | None = None,
                hidden_numbers: bool = True) -> PairAttack:
    """The attacker with both releases who also knows how many citizens left and how many
    entered (the worst case: e.g. "one citizen left"). Class counts of the new population
    are those of the old one minus the leavers plus the entrants, class by class (the
    per-dimension counts too: a leaver leaves every dimension of its class; dealing the
    dimensions out independently stays exact for the flows, as for the counts). The true
    flows come from the citizens of both releases (matched by id): a citizen whose record
    changed counts as one leaver and one entrant."""
    min_cell = new.cfg.min_cell if min_cell is None else min_cell
    p_old, t_old = build_program(old)
    p_new, t_new = build_program(new)
    names = sorted(set(p_old.names) | set(p_new.names), key=repr)
    n = len(names)
    pos = {nm: i for i, nm in enumerate(names)}
    blocks = {"x": 0, "y": n, "L": 2 * n, "E": 3 * n}  # old, new, leavers, entrants

    def lift(prog: Program, part: str, e: Mapping[int, float]) -> dict[int, float]:
        return {blocks[part] + pos[prog.names[v]]: c for v, c in e.items()}

    x = np.zeros(n)
    y = np.zeros(n)
    for v, val in t_old.items():
        x[pos[p_old.names[v]]] = val
    for v, val in t_new.items():
        y[pos[p_new.names[v]]] = val
    # the true flows: who left or changed (their old record), who entered or changed
    rc_old, rc_new = RuleClasses(old.rules, old.cfg), RuleClasses(new.rules, new.cfg)
    before = {c["id"]: record(c, rc_old, old.cfg, old.merges) for c in old.citizens}
    after = {c["id"]: record(c, rc_new, new.cfg, new.merges) for c in new.citizens}
    flow_l, flow_e = np.zeros(n), np.zeros(n)
    for cid in before.keys() | after.keys():
        if before.get(cid) == after.get(cid):
            continue
        for nm in before.get(cid, []):
            flow_l[pos[nm]] += 1
        for nm in after.get(cid, []):
            flow_e[pos[nm]] += 1
    unreviewed = pos[("unreviewed",)]
    flow_l[unreviewed] = max(x[unreviewed] - y[unreviewed], 0)
    flow_e[unreviewed] = max(y[unreviewed] - x[unreviewed], 0)
    truth = np.concatenate([x, y, flow_l, flow_e])
    eq_rows: list[dict[int, float]] = []
    eq_rhs: list[float] = []
    ub_rows: list[dict[int, float]] = []
    ub_rhs: list[float] = []
    for prog, part in ((p_old, "x"), (p_new, "y"), (p_new, "L"), (p_new, "E")):
        eq_rows.extend(lift(prog, part, r) for r in prog.eq)
        eq_rhs.extend([0.0] * len(prog.eq))
        ub_rows.extend(lift(prog, part, r) for r in prog.le)
        ub_rhs.extend([0.0] * len(prog.le))
    for i in range(n):  # y = x - L + E, class by class and dimension by dimension
        eq_rows.append({blocks["y"] + i: 1.0, blocks["x"] + i: -1.0, blocks["L"] + i: 1.0,
                        blocks["E"] + i: -1.0})
        eq_rhs.append(0.0)
    classes = [pos[nm] for nm in names if nm[0] == "K"]
    for part in ("L", "E"):  # how many left, how many entered
        eq_rows.append({blocks[part] + i: 1.0 for i in classes})
        eq_rhs.append(float(sum(truth[blocks[part] + i] for i in classes)))
    hidden: list[tuple[str, Key, dict[int, float], int]] = []
    for kn, prog, part in ((old, p_old, "x"), (new, p_new, "y")):
        for key, value in kn.shown.items():
            if key not in prog.expr or (key[0] == "headline" and key[1] == "m3_over_1y"
                                        and value is None):
                continue
            e = lift(prog, part, prog.expr[key])
            if value is None:
                ub_rows.append({v: -c for v, c in e.items()})
                ub_rhs.append(-1.0)
                hidden.append((kn.label, key, e, kn.truth[key]))
            else:
                eq_rows.append(e)
                eq_rhs.append(float(value))
    nv = 4 * n
    a_eq, b_eq = _matrix(eq_rows, nv), np.array(eq_rhs)
    a_ub, b_ub = _matrix(ub_rows, nv), np.array(ub_rhs)
    assert np.allclose(a_eq @ truth, b_eq) and np.all(a_ub @ truth <= b_ub + 1e-9)
    cons = [LinearConstraint(a_eq, b_eq, b_eq), LinearConstraint(a_ub, -np.inf, b_ub)]

    def extreme(e: Mapping[int, float], sign: float) -> float:
        c = np.zeros(nv)
        for v, k in e.items():
            c[v] = -sign * k
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None),
                      method="highs")
        if res.status == 3:
            return np.inf
        assert res.status == 0, res.message
        if not np.all(np.abs(res.x - np.rint(res.x)) < 1e-7):
            res = milp(c, constraints=cons, integrality=np.ones(nv), bounds=Bounds(0, np.inf),
                       options={"mip_rel_gap": 0.0})
            assert res.status == 0, res.message
        return float(np.rint(-res.fun))

    findings = []
    for label, key, e, value in hidden if hidden_numbers else ():
        hi = extreme(e, +1.0)
        lo = -extreme(e, -1.0)
        if lo == hi:
            findings.append(Finding((label, *key), value, lo, hi, "exact"))
        elif 1 <= value < min_cell and hi < min_cell:
            findings.append(Finding((label, *key), value, lo, hi, "small"))
    flows = []
    fixed: list[tuple[str, Key, str, int]] = []
    seen: set[tuple] = set()
    for part, what in (("L", "left"), ("E", "entered")):
        for key, e in p_new.expr.items():
            le = lift(p_new, part, e)
            true_flow = sum(truth[v] * c for v, c in le.items())
            sig = (part, tuple(sorted(le.items())))
            if not 1 <= true_flow < min_cell or sig in seen:
                continue
            seen.add(sig)
            lo = -extreme(le, -1.0)
            if lo >= 1:  # proven: someone who left / entered is in it
                flows.append((new.label, key, what))
                grand = key[1:] == (T, T) or key == ("headline", "grand", T)
                if not grand and extreme(le, +1.0) == lo:
                    fixed.append((new.label, key, what, int(lo)))
    return PairAttack(findings, flows, fixed)
