"""Suppression of small counts in a release of count tables (definitions §6).

Reads: in-memory `Table` objects (counts with their total row and total column), nothing
from disk. Writes: nothing; `suppress` returns the cells to hide with the reason
(`primary` / `secondary`, internal only: published outputs show every hidden cell as `c`),
and `audit` returns human-readable violations of the §6 safety property (used by the
pipeline as a post-check).

Method (definitions §6, "the attacker"):

* One variable per *statistic*, not per printed cell: the total-column cell of row r is
  one variable in every table with the same `row_dim`, and the grand total is one variable
  in every table (§6: "a number that appears in more than one table is hidden in all of
  them or in none"). Equal numbers that are not the same statistic are not linked.
* Relations: every row sums to its total-column cell and every column to its total-row
  cell; in a multi-response table only the columns add up (§5), and the attacker also
  knows that a cell is at most its row total (ticks of one column by citizens of the row).
  Beyond the tables, the caller gives what the definitions and the rules imply
  (`Relations`: e.g. profile and base-profile rows counting the same citizens, a "none"
  column as the complement of "at least one tick"): linear relations among cells and
  *unpublished* quantities (counts of joint classes of citizens), which are variables of
  the attacker in every pattern, >= 0, never hidden or shown themselves; and published
  numbers outside the tables (the report's headline: `Relations.cells`), each a statistic
  of its own, hidden or shown like a cell, tied to the tables only by the relations given.
* Attacker: for each hidden variable, the smallest and largest whole-number value
  consistent with every shown number, every relation, and "hidden >= 1" (zeros are shown).
  It is solved as an LP (HiGHS) per connected component of the hidden cells; when the LP
  optimum is not attained at a whole-number point, a MILP gives the exact integer bound,
  so the attacker is the exact one of §6. Every whole-number solution found is kept as
  a witness (it shows how far each cell can move), which spares most LPs.
* Safe: every hidden variable has min < max, every primary one max >= min_cell.
* Choice of the pattern (the caller may weigh it, `Costs`: per-table limits first, then
  weights per cell; the default is §6's): a MILP over binary hide-variables, cost
  value*M + cells (fewest hidden citizens, a shared number counted once, then fewest
  printed cells), with necessary conditions per relation as constraints. The candidate
  is audited; every exposed variable yields a cut valid for all safe patterns (a Benders
  / Fischetti-Salazar capacity cut from the LP duals, or a no-good cut when only the
  integer attacker succeeds), and the MILP is solved again. Patterns are finite and each
  cut removes the current candidate, so the loop ends; the first candidate that passes is
  optimal. Before solving again, the failed candidate is completed greedily towards its
  cuts and audited, a few times, for more cuts (`_deepen`): a primary protected through a
  long chain of relations otherwise costs one master solve per link.
* A safe pattern always exists: every relation is homogeneous (a sum of cells minus a
  total equals 0), so with every non-zero cell hidden the true table t and every multiple
  k*t (k >= 1 whole) are consistent; each hidden cell then ranges from at most its value
  to infinity. `SuppressionInfeasible` therefore signals a solver failure, not a property
  of the data. If the work budget runs out, hidden cells are added greedily (cheapest
  first, next to an exposed cell) until the audit passes, which ends at the latest at
  "everything non-zero hidden".
* The budget is work, never wall-clock time (`MAX_ROUNDS` rounds of the cut loop,
  `NODE_LIMIT` branch-and-bound nodes per master MILP, HiGHS's `node_limit`), so the
  pattern is a function of the data alone: a busy machine takes longer, it does not choose
  differently. HiGHS is deterministic for one input (same build, same options).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["CellKey", "Costs", "Relations", "Solution", "SuppressionInfeasible", "Table", "audit",
           "solve", "suppress"]

TOTAL = "total"
CellKey = tuple[str, str, str]  # (table id, row code or "total", col code or "total")
Ref = CellKey | str  # a printed cell, or the name of a quantity no table prints
Reason = Literal["primary", "secondary"]

_TOL = 1e-6
# the work budget of the pattern search (see the module docstring). Measured on the demo's
# releases (bench/disclosure.py, 60-1,000 citizens): at most 15 rounds, and the largest
# master MILP well under 10,000 nodes; the budget leaves an order of magnitude of room
MAX_ROUNDS = 200
NODE_LIMIT = 200_000
# audits of greedy completions per round of the cut loop, for more cuts (`_deepen`)
DEEPEN_STEPS = 30
# from this round on: the first rounds' masters are small and learn from dozens of cuts
# anyway (measured on nine demo releases, 150-1,000 citizens: 76 s in all from round 3,
# 81 s from round 1; without it one of them ran over 10 minutes)
DEEPEN_FROM = 3


class SuppressionInfeasible(RuntimeError):
    """No safe pattern could be found (cannot happen for valid tables, see the module
    docstring; raised only if the solver fails)."""


@dataclass(frozen=True, eq=False)
class Table:
    """One table of a release: `counts[i, j]` for rows + total row (last) and columns +
    total column (last). `eq=False`: tables compare by identity (an array has no single
    truth value)."""

    id: str
    row_dim: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    counts: np.ndarray
    multi_response: bool = False
    # which release the table belongs to, when several are modelled together (the audit
    # across releases): numbers are shared between tables of one release only
    release: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "cols", tuple(self.cols))
        raw = np.asarray(self.counts)
        shape = (len(self.rows) + 1, len(self.cols) + 1)
        if raw.shape != shape:
            raise ValueError(f"table {self.id!r}: counts shape {raw.shape}, expected {shape}")
        if raw.size and not np.all(np.isfinite(raw.astype(float))):
            raise ValueError(f"table {self.id!r}: counts must be finite")
        counts = np.rint(raw.astype(float)).astype(np.int64)
        if np.any(np.abs(counts - raw.astype(float)) > 0) or np.any(counts < 0):
            raise ValueError(f"table {self.id!r}: counts must be whole numbers >= 0")
        counts.setflags(write=False)
        object.__setattr__(self, "counts", counts)
        for kind, codes in (("row", self.rows), ("column", self.cols)):
            if TOTAL in codes:
                raise ValueError(f"table {self.id!r}: {kind} code {TOTAL!r} is reserved")
            if len(set(codes)) != len(codes):
                raise ValueError(f"table {self.id!r}: duplicate {kind} codes")
        self._check_sums()

    def _check_sums(self) -> None:
        c = self.counts
        if self.rows:  # each column (incl. the total column) sums over the rows (§5)
            bad = np.nonzero(c[:-1].sum(axis=0) != c[-1])[0]
            if bad.size:
                col = (*self.cols, TOTAL)[bad[0]]
                raise ValueError(f"table {self.id!r}: column {col!r} does not sum to its total")
        if self.cols and not self.multi_response:
            bad = np.nonzero(c[:, :-1].sum(axis=1) != c[:, -1])[0]
            if bad.size:
                row = (*self.rows, TOTAL)[bad[0]]
                raise ValueError(f"table {self.id!r}: row {row!r} does not sum to its total")
        if self.multi_response and self.cols:
            # a citizen ticks a column at most once: ticks <= citizens of the row
            if np.any(c[:, :-1] > c[:, -1:]):
                raise ValueError(f"table {self.id!r}: a multi-response cell exceeds its row total")


@dataclass(frozen=True)
class Relations:
    """What a reader knows about the release beyond each table's own sums (definitions §6:
    every relation the definitions and the rules file imply).

    `unpublished`: whole quantities >= 0 that no table prints but the relations speak of
    (counts of joint classes of citizens, "citizens with at least one tick"), with their
    true values. `equal`: each a sum `coefficient * quantity` that is 0; `at_most`: each a
    sum that is <= 0. A quantity is a printed cell (table id, row, col) or an unpublished
    name. The attacker never sees an unpublished quantity; it is never hidden or shown, and
    it may be 0 (a hidden cell is >= 1).

    `cells`: published numbers outside the tables (the report's headline), keyed like a
    cell (an id that is no table's, row, col), with their true values: each a number of its
    own, hidden or shown like a table's cell (primary when small), with no sums of its own;
    the relations tie it to the tables."""

    unpublished: Mapping[str, int] = field(default_factory=dict)
    equal: tuple[Mapping[Ref, int], ...] = ()
    at_most: tuple[Mapping[Ref, int], ...] = ()
    cells: Mapping[CellKey, int] = field(default_factory=dict)
    # of `cells`: facts the reader is assumed to know (e.g. how many citizens left between
    # two releases), never hidden and never small-count cells themselves
    known: frozenset[CellKey] = frozenset()


@dataclass(frozen=True)
class Costs:
    """What the pattern prefers, beyond §6's cost (fewest hidden citizens, then fewest
    printed cells). Only which safe pattern is chosen changes, never what is safe.

    `cells`: weights by cell key (1 if absent): a number's citizens count the largest
    weight of its printings. Across releases: hiding again what the previous release hid
    costs less, so patterns stay consistent between periods (Eurostat).

    `limits`: per table id, the share of its citizens (its inner counts: ticks in a
    multi-response table, the row totals of a table without columns) that may be hidden.
    Soft and first: among safe patterns the one with the fewest citizens hidden beyond the
    limits, summed over the tables, and among those the cheapest by the weights. The
    coarsening's goal (no table hides more than a third) is then met at a level where any
    safe pattern meets it, not only where the cheapest one happens to."""

    cells: Mapping[CellKey, float] = field(default_factory=dict)
    limits: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for w in self.cells.values():
            if isinstance(w, bool) or not isinstance(w, int | float) or not (
                    0 <= w < math.inf):
                raise ValueError(f"a cost weight must be a number >= 0, got {w!r}")
        for w in self.limits.values():
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 1:
                raise ValueError(f"a limit must be a share between 0 and 1, got {w!r}")

    def weight(self, cell: CellKey) -> float:
        return float(self.cells.get(cell, 1.0))


# ---------------------------------------------------------------------------------------
# Model: variables (statistics), relations and values, in a canonical order


class _Model:
    """The release as the attacker sees it: variables = distinct statistics."""

    def __init__(self, tables: Sequence[Table], min_cell: int,
                 relations: Relations | None = None, costs: Costs | None = None) -> None:
        if isinstance(min_cell, bool) or int(min_cell) != min_cell or min_cell < 0:
            raise ValueError(f"min_cell must be a whole number >= 0, got {min_cell!r}")
        self.min_cell = int(min_cell)
        ids = [t.id for t in tables]
        if len(set(ids)) != len(ids):
            raise ValueError("table ids must be unique within a release")
        # canonical order (sorted ids) so that the input order cannot change the pattern
        self.tables = sorted(tables, key=lambda t: t.id)
        self.keys: list[tuple[str, ...]] = []
        self.values: list[int] = []
        self.instances: list[list[CellKey]] = []
        self.names: list[str] = []
        index: dict[tuple[str, ...], int] = {}
        self.cell_var: dict[CellKey, int] = {}

        def var(key: tuple[str, ...], value: int, cell: CellKey, name: str) -> int:
            if key in index:
                v = index[key]
                if self.values[v] != value:
                    raise ValueError(
                        f"{name} is {self.values[v]} in {self.instances[v][0][0]!r} but "
                        f"{value} in {cell[0]!r}: a shared number must agree (§6)"
                    )
                self.instances[v].append(cell)
            else:
                v = index[key] = len(self.keys)
                self.keys.append(key)
                self.values.append(value)
                self.instances.append([cell])
                self.names.append(name)
            self.cell_var[cell] = v
            return v

        eqs: dict[tuple[tuple[int, int], ...], None] = {}  # ordered set, deduplicated
        ineqs: dict[tuple[tuple[int, int], ...], None] = {}

        def relation(store: dict, parts: Iterable[int], total: int) -> None:
            coef: dict[int, int] = {}
            for p in parts:
                coef[p] = coef.get(p, 0) + 1
            coef[total] = coef.get(total, 0) - 1
            terms = tuple(sorted((v, c) for v, c in coef.items() if c))
            if terms:
                store[terms] = None

        for t in self.tables:
            rows, cols = (*t.rows, TOTAL), (*t.cols, TOTAL)
            grid = np.empty((len(rows), len(cols)), dtype=np.int64)
            for i, r in enumerate(rows):
                for j, c in enumerate(cols):
                    val = int(t.counts[i, j])
                    cell = (t.id, r, c)
                    ns = (t.release,) if t.release else ()
                    if r == TOTAL and c == TOTAL:
                        key, name = ("grand", *ns), "the grand total"
                    elif c == TOTAL:  # shared by every table with this row_dim (§6)
                        key = ("row", *ns, t.row_dim, r)
                        name = f"the {t.row_dim} total of {r!r}"
                    else:
                        key, name = ("cell", t.id, r, c), f"{t.id}[{r}, {c}]"
                    if ns and c == TOTAL:
                        name = f"{name} (release {t.release})"
                    grid[i, j] = var(key, val, cell, name)
            if t.rows:  # vertical relations hold in every table (each citizen in one row)
                for j in range(len(cols)):
                    relation(eqs, grid[:-1, j], grid[-1, j])
            if t.cols and not t.multi_response:
                for i in range(len(rows)):
                    relation(eqs, grid[i, :-1], grid[i, -1])
            if t.cols and t.multi_response:
                # cell <= row total, written as "cell - total <= 0"
                for i in range(len(rows)):
                    for j in range(len(cols) - 1):
                        relation(ineqs, [grid[i, j]], grid[i, -1])

        relations = relations or Relations()
        ids = set(ids)
        for cell in sorted(relations.cells):
            if cell[0] in ids:
                raise ValueError(f"a number outside the tables is keyed {cell!r}, a table's")
            value = relations.cells[cell]
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"{cell!r} must be a whole number >= 0")
            var(("loose", *cell), int(value), cell, f"{cell[0]}[{cell[1]}, {cell[2]}]")

        # the unpublished quantities: variables with no printed cell, always unknown
        first_aux = len(self.keys)
        for name in sorted(relations.unpublished):
            value = relations.unpublished[name]
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"unpublished {name!r} must be a whole number >= 0")
            index[("aux", name)] = len(self.keys)
            self.keys.append(("aux", name))
            self.values.append(int(value))
            self.instances.append([])
            self.names.append(f"unpublished {name!r}")

        self.aux_index = {k[1]: v for k, v in index.items() if k[0] == "aux"}

        def ref(r: Ref) -> int:
            if isinstance(r, str):
                if ("aux", r) not in index:
                    raise ValueError(f"a relation names {r!r}, which is not unpublished")
                return index[("aux", r)]
            if r not in self.cell_var:
                raise ValueError(f"a relation names {r!r}, which is no cell of the release")
            return self.cell_var[r]

        for store, given in ((eqs, relations.equal), (ineqs, relations.at_most)):
            for rel in given:
                coef: dict[int, int] = {}
                for r, c in rel.items():
                    if int(c) != c:
                        raise ValueError("relation coefficients must be whole numbers")
                    v = ref(r)
                    coef[v] = coef.get(v, 0) + int(c)
                terms = tuple(sorted((v, c) for v, c in coef.items() if c))
                if terms:
                    store[terms] = None

        n = len(self.keys)
        self.n = n
        self.aux = np.arange(n) >= first_aux
        self.known = np.zeros(n, dtype=bool)
        for cell in relations.known:
            if cell not in relations.cells:
                raise ValueError(f"known {cell!r} is no number outside the tables")
            self.known[self.cell_var[cell]] = True
        self.a = np.array(self.values, dtype=float)
        self.eq_terms = list(eqs)
        self.E = np.zeros((len(eqs), n))
        for k, terms in enumerate(self.eq_terms):
            for v, c in terms:
                self.E[k, v] = c
        self.F = np.zeros((len(ineqs), n))
        for k, terms in enumerate(ineqs):
            for v, c in terms:
                self.F[k, v] = c
        self.slack = -(self.F @ self.a)  # F y <= slack for y = x - a; >= 0 by validation
        if np.any(self.E @ self.a != 0) or np.any(self.slack < 0):
            raise ValueError("a relation does not hold for the counts given")
        self.ninst = np.array([len(x) for x in self.instances], dtype=float)
        costs = costs or Costs()
        self.weight = np.array([max((costs.weight(k) for k in inst), default=1.0)
                                for inst in self.instances])
        # §6's cost of hiding each variable: its citizens (weighted) first, then its printed
        # cells (the master's objective, and the order of the greedy completions)
        self.price = self.a * self.weight * (self.ninst.sum() + 1.0) + self.ninst
        # per limited table: its inner counts by variable, and how many may be hidden
        limited = [t for t in self.tables if costs.limits.get(t.id, 1.0) < 1.0]
        self.limit_rows = np.zeros((len(limited), n))
        self.limit_rhs = np.zeros(len(limited))
        for k, t in enumerate(limited):
            cols = t.cols or (TOTAL,)
            for r in t.rows:
                for c in cols:
                    v = self.cell_var[(t.id, r, c)]
                    self.limit_rows[k, v] += self.a[v]
            self.limit_rhs[k] = costs.limits[t.id] * self.limit_rows[k].sum()
        m = self.min_cell
        self.primary = (self.a >= 1) & (self.a <= m - 1) & ~self.aux & ~self.known
        self.nonzero = (self.a >= 1) & ~self.aux & ~self.known  # the cells that may be hidden

    def describe(self, v: int) -> str:
        return self.names[v]

    def cell_var_aux(self, name: str) -> int:
        """The variable of an unpublished quantity."""
        return self.aux_index[name]


# ---------------------------------------------------------------------------------------
# Attacker: bounds of one hidden variable, with duals for the cut


@dataclass
class _Bound:
    value: float  # max of dir*y_v (y = x - a); inf when unbounded
    exact: bool  # the bound is attained at a whole-number point (or unbounded)
    lam: np.ndarray | None = None  # multipliers for E (dual certificate)
    mu: np.ndarray | None = None  # multipliers for F (>= 0)


class _Attacker:
    """LPs of the attacker for one hidden set, in y = x - a (true values at y = 0)."""

    def __init__(self, model: _Model, hidden: np.ndarray,
                 pool: list[np.ndarray] | None = None) -> None:
        self.m = model
        # the unpublished quantities are unknown to the attacker whatever the pattern
        hidden = np.union1d(hidden, np.nonzero(model.aux)[0]).astype(int)
        self.hidden = hidden  # sorted variable indices
        self.pos = {v: k for k, v in enumerate(hidden)}
        e_sub = model.E[:, hidden]
        f_sub = model.F[:, hidden]
        # relations without a hidden variable are 0 = 0 (or shown <= shown): drop them
        self.eq_rows = np.nonzero(np.any(e_sub != 0, axis=1))[0]
        self.ub_rows = np.nonzero(np.any(f_sub != 0, axis=1))[0]
        self.A_eq = e_sub[self.eq_rows]
        self.A_ub = f_sub[self.ub_rows]
        self.b_ub = model.slack[self.ub_rows]
        # hidden >= 1 (zeros are shown); an unpublished quantity >= 0
        self.lb = np.where(model.aux[hidden], 0.0, 1.0) - model.a[hidden]
        # how far each hidden cell is already known to move up / down at some whole-number
        # point consistent with what is shown: every solution found is a witness for
        # every cell, which saves most of the LPs
        self.up = np.zeros(len(hidden))
        self.down = np.zeros(len(hidden))
        # witnesses of earlier patterns stay valid when every cell they move is still
        # hidden (same equations, same bounds): reuse them across the cut loop
        self.labels: np.ndarray | None = None
        self.parts: dict[int, tuple] = {}
        self.pool = pool if pool is not None else []
        if self.pool:
            mask = np.zeros(model.n, dtype=bool)
            mask[hidden] = True
            for w in self.pool:
                if not np.any(w[~mask]):
                    self._update(w[hidden])

    def _update(self, y: np.ndarray) -> None:
        np.maximum(self.up, y, out=self.up)
        np.maximum(self.down, -y, out=self.down)

    def _witness(self, cols: np.ndarray, y_part: np.ndarray) -> None:
        """A whole-number solution of one component (the rest at y = 0) is a witness."""
        if np.all(np.abs(y_part - np.rint(y_part)) < _TOL):
            y = np.zeros(len(self.hidden))
            y[cols] = np.rint(y_part)
            self._update(y)
            full = np.zeros(self.m.n)
            full[self.hidden] = y
            self.pool.append(full)

    def _component(self, k: int) -> tuple:
        """The sub-LP of the connected component of hidden cell k: hidden cells linked by
        relations; the others stay at their true values without loss (independent)."""
        if self.labels is None:
            incidence = np.vstack([self.A_eq, self.A_ub]) != 0
            adj = csr_matrix(incidence.T.astype(np.int8)) @ csr_matrix(incidence.astype(np.int8))
            self.labels = connected_components(adj, directed=False)[1]
        lab = self.labels[k]
        if lab not in self.parts:
            cols = np.nonzero(self.labels == lab)[0]
            eq = np.nonzero(np.any(self.A_eq[:, cols] != 0, axis=1))[0]
            ub = np.nonzero(np.any(self.A_ub[:, cols] != 0, axis=1))[0]
            self.parts[lab] = (cols, {c: i for i, c in enumerate(cols)}, eq, ub,
                               self.A_eq[np.ix_(eq, cols)], self.A_ub[np.ix_(ub, cols)])
        return self.parts[lab]

    def spread(self, need: np.ndarray, direction: int = +1) -> None:
        """Witnesses in bulk: per component, one LP that moves every cell with need > 0
        towards dir*y = need (the cap keeps it bounded). A whole-number optimum witnesses
        many cells at once; a fractional one is simply not used."""
        done: set[int] = set()
        for k in np.nonzero(need > 0)[0]:
            cols, _, eq, ub, a_eq, a_ub = self._component(k)
            if self.labels[k] in done:
                continue
            done.add(self.labels[k])
            want = need[cols] > 0
            if direction > 0:
                bounds = np.column_stack([self.lb[cols], np.where(want, need[cols], np.inf)])
            else:
                bounds = np.column_stack([np.where(want, np.maximum(self.lb[cols], -need[cols]),
                                                   self.lb[cols]), np.full(len(cols), np.inf)])
            kw = {}
            if a_eq.size:
                kw.update(A_eq=a_eq, b_eq=np.zeros(len(eq)))
            if a_ub.size:
                kw.update(A_ub=a_ub, b_ub=self.b_ub[ub])
            res = linprog(-direction * want.astype(float), bounds=bounds, method="highs", **kw)
            if res.status == 0:
                self._witness(cols, res.x)

    def bound(self, v: int, direction: int, integer: bool = False) -> _Bound:
        cols, local, eq, ub, a_eq, a_ub = self._component(self.pos[v])
        b_ub = self.b_ub[ub]
        lb = self.lb[cols]
        c = np.zeros(len(cols))
        c[local[self.pos[v]]] = -direction  # minimise -dir*y_v
        if integer:
            cons = []
            if a_eq.size:
                cons.append(LinearConstraint(a_eq, 0.0, 0.0))
            if a_ub.size:
                cons.append(LinearConstraint(a_ub, -np.inf, b_ub))
            res = milp(c, constraints=cons, integrality=np.ones_like(c),
                       bounds=Bounds(lb, np.inf), options={"mip_rel_gap": 0.0})
            if res.status == 2:  # as the LP below: y = 0 is feasible, presolve erred
                res = milp(c, constraints=cons, integrality=np.ones_like(c),
                           bounds=Bounds(lb, np.inf),
                           options={"mip_rel_gap": 0.0, "presolve": False})
            if res.status != 0 or res.fun is None:
                raise SuppressionInfeasible(f"attacker MILP failed: {res.message}")
            self._witness(cols, res.x)
            return _Bound(-res.fun, True)
        kw = {}
        if a_eq.size:
            kw.update(A_eq=a_eq, b_eq=np.zeros(len(eq)))
        if a_ub.size:
            kw.update(A_ub=a_ub, b_ub=b_ub)
        bounds = np.column_stack([lb, np.full(len(lb), np.inf)])
        res = linprog(c, bounds=bounds, method="highs", **kw)
        if res.status == 2:
            # y = 0 (the true values) is always feasible (the model checks every relation
            # against the counts), so "infeasible" is HiGHS's presolve mistaking an
            # unbounded LP (seen: demo 400 seed 2, a cohort cell; without presolve HiGHS
            # says unbounded). Solve it again without presolve
            res = linprog(c, bounds=bounds, method="highs", options={"presolve": False}, **kw)
        if res.status == 3:
            (self.up if direction > 0 else self.down)[self.pos[v]] = np.inf
            return _Bound(np.inf, True)
        if res.status != 0:
            raise SuppressionInfeasible(f"attacker LP failed: {res.message}")
        exact = bool(np.all(np.abs(res.x - np.rint(res.x)) < _TOL))
        self._witness(cols, res.x)
        lam = np.zeros(self.m.E.shape[0])
        mu = np.zeros(self.m.F.shape[0])
        # HiGHS marginals are d(objective)/d(rhs) of the minimisation of -dir*y_v; the
        # multipliers of "dir*y_v <= ..." are their negatives (see _cut_terms).
        if len(eq):
            lam[self.eq_rows[eq]] = -res.eqlin.marginals
        if len(ub):
            mu[self.ub_rows[ub]] = np.maximum(0.0, -res.ineqlin.marginals)
        return _Bound(-res.fun, exact, lam, mu)


def _cut_terms(model: _Model, v: int, direction: int, b: _Bound) -> tuple[np.ndarray, float]:
    """Coefficients c and constant k with dir*y_v <= k + sum_j c_j h_j for EVERY pattern h
    (weak LP duality with the multipliers of the current pattern); c_j = inf when hiding j
    alone makes the bound useless. Valid for any multipliers, so numerical noise can only
    weaken the cut, never make it wrong."""
    e = np.zeros(model.n)
    e[v] = direction
    r = e - model.E.T @ b.lam - model.F.T @ b.mu
    # dir*y_v = lam'Ey + mu'Fy + r'y <= mu'slack + sum_j r_j y_j, y_j in [1 - a_j, inf)
    coef = np.where(r > 1e-9, np.inf, np.maximum(0.0, -r) * (model.a - 1.0))
    # an unpublished quantity is unknown in every pattern, y_j in [-a_j, inf): a constant
    aux = model.aux
    if np.any(r[aux] > 1e-9):
        return np.full(model.n, np.inf), 0.0  # no valid cut from these multipliers
    const = float(b.mu @ model.slack) + float(np.maximum(0.0, -r[aux]) @ model.a[aux])
    coef[aux] = 0.0
    return coef, const


@dataclass
class _Violation:
    var: int
    message: str
    cut: tuple[np.ndarray, float] | None  # (coefficients, rhs) of sum c_j h_j >= rhs*h_v


def _check(model: _Model, hidden: np.ndarray, want_cuts: bool,
           pool: list[np.ndarray] | None = None,
           watch: Sequence[int] = ()) -> list[_Violation]:
    """Exact audit of the hidden variables (definitions §6); with cuts for the master.
    `pool` collects whole-number attacker solutions, reused by later calls. `watch`:
    unpublished quantities that must not be fixed when their true value is from 1 to
    min_cell - 1 (the flows between releases: `audit`), checked without cuts."""
    out: list[_Violation] = []
    watch = [v for v in watch if 1 <= model.a[v] <= model.min_cell - 1]
    if not len(hidden) and not watch:
        return out
    att = _Attacker(model, hidden, pool)
    hidden_mask = np.zeros(model.n, dtype=bool)
    hidden_mask[hidden] = True
    no_good = None
    if want_cuts:
        # any pattern H' with v in H' and H' within H leaves v at least as exposed
        # (fixing more cells only shrinks the attacker's feasible set)
        no_good = ((~hidden_mask & model.nonzero).astype(float), 1.0)

    att.spread(np.where(model.primary[att.hidden], model.min_cell - model.a[att.hidden], 0.0))
    # then every cell not yet seen to move, up by one, or else down by one
    cells = ~model.aux[att.hidden]
    att.spread(np.where(cells & (att.up < 1 - _TOL) & (att.down < 1 - _TOL), 1.0, 0.0), +1)
    att.spread(np.where(cells & (att.up < 1 - _TOL) & (att.down < 1 - _TOL)
                        & (model.a[att.hidden] >= 2), 1.0, 0.0), -1)
    # primary cells first: their LPs move many cells and give witnesses for the rest
    for v in sorted(hidden, key=lambda v: (not model.primary[v], v)):
        a_v = int(model.a[v])
        name = model.describe(v)
        k = att.pos[v]
        if model.primary[v]:
            need = model.min_cell - a_v  # x_v must be able to reach min_cell
            if att.up[k] >= need - _TOL:
                continue
            up = att.bound(v, +1)
            if up.value >= need - _TOL:
                if _reaches(att, v, +1, up, need):
                    continue
                out.append(_Violation(v, f"{name}: primary cell provably below {model.min_cell}"
                                      " (whole-number attacker)", no_good))
                continue
            cut = None
            if want_cuts:
                coef, const = _cut_terms(model, v, +1, up)
                cut = _finish_cut(coef, need - const, hidden_mask, no_good)
            out.append(_Violation(
                v, f"{name}: primary cell provably at most {math.floor(a_v + up.value + _TOL)} "
                f"< min_cell {model.min_cell}", cut))
            continue
        # secondary: min < max, i.e. the cell can move up or down by at least 1
        moves, up, down = _moves(att, v)
        if moves:
            continue
        cut = None
        if up.value < 1 - _TOL and down.value < 1 - _TOL:
            msg = f"{name}: hidden cell is determined exactly by what is shown"
            if want_cuts:  # sliding protection: max - min >= 1 (Fischetti-Salazar)
                c1, k1 = _cut_terms(model, v, +1, up)
                c2, k2 = _cut_terms(model, v, -1, down)
                cut = _finish_cut(c1 + c2, 1.0 - k1 - k2, hidden_mask, no_good)
        else:
            msg = f"{name}: hidden cell is determined (whole-number attacker)"
            cut = no_good
        out.append(_Violation(v, msg, cut))
    if watch:
        need = np.zeros(len(att.hidden))
        need[[att.pos[v] for v in watch]] = 1.0
        for direction in (+1, -1):  # the mask again after each: the first spread settles some
            att.spread(np.where((need > 0) & (att.up < 1 - _TOL) & (att.down < 1 - _TOL),
                                1.0, 0.0), direction)
    for v in watch:
        if _moves(att, v)[0]:
            continue
        out.append(_Violation(v, f"{model.describe(v)}: fixed at {int(model.a[v])} (below "
                              f"{model.min_cell}) by what is shown", None))
    return sorted(out, key=lambda x: x.var)


def _moves(att: _Attacker, v: int) -> tuple[bool, _Bound | None, _Bound | None]:
    """Whether hidden `v` can move by at least 1 up or down (for whole numbers), with the
    bounds computed on the way (None where a witness already settled it)."""
    k = att.pos[v]
    if att.up[k] >= 1 - _TOL or att.down[k] >= 1 - _TOL:
        return True, None, None
    up = att.bound(v, +1)
    if up.value >= 1 - _TOL and _reaches(att, v, +1, up, 1.0):
        return True, up, None
    down = att.bound(v, -1)
    if down.value >= 1 - _TOL and _reaches(att, v, -1, down, 1.0):
        return True, up, down
    return False, up, down


def _reaches(att: _Attacker, v: int, direction: int, b: _Bound, need: float) -> bool:
    """The LP says dir*y_v can reach `need`: confirm for whole numbers (the LP optimum
    at a whole-number point is exact; otherwise ask the MILP)."""
    if b.exact:
        return True
    return att.bound(v, direction, integer=True).value >= need - _TOL


def _finish_cut(coef: np.ndarray, rhs: float, hidden_mask: np.ndarray,
                no_good: tuple[np.ndarray, float] | None) -> tuple[np.ndarray, float] | None:
    """Cap coefficients at the right-hand side (one such term satisfies the cut) and check
    that the cut removes the current pattern; else fall back to the no-good cut."""
    if rhs <= _TOL:
        return no_good
    capped = np.minimum(coef, rhs)
    if capped[hidden_mask].sum() >= rhs - 1e-7:  # not violated: numerically unreliable
        return no_good
    return capped, rhs


# ---------------------------------------------------------------------------------------
# Master MILP


def _initial_rows(model: _Model, cand: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Necessary conditions per relation, as rows "sum c_j h_j >= rhs*h_v" (§6).

    In one relation sum(parts) = total, a hidden v can move by 1 only if another hidden
    j can compensate: j on the other side (unbounded upward), or j >= 2 (can go down, as
    hidden cells are >= 1), or v >= 2 (v can go down). A primary p must be able to rise
    by K = min_cell - p: same-side cells give at most value - 1 each, the other side
    is unbounded."""
    rows: list[tuple[np.ndarray, float]] = []
    a = model.a
    for terms in model.eq_terms:
        if any(abs(c) != 1 for _, c in terms):
            continue  # only sums of parts against totals are read this way
        members = [(v, c) for v, c in terms if cand[v]]
        # an unpublished quantity is unknown in every pattern: it compensates a move when
        # it is on the other side (it can rise), or can fall (>= 1), or v can fall
        aux = [(j, c) for j, c in terms if model.aux[j]]
        for v, cv in members:
            if not any(cj != cv or a[j] >= 1 or a[v] >= 2 for j, cj in aux):
                coef = np.zeros(model.n)
                for j, cj in members:
                    if j != v and (cj != cv or a[j] >= 2 or a[v] >= 2):
                        coef[j] = 1.0
                coef[v] = -1.0
                rows.append((coef, 0.0))  # sum_{j} m_j h_j - h_v >= 0
            if model.primary[v]:
                k = model.min_cell - a[v]
                k -= sum(k if cj != cv else a[j] for j, cj in aux)
                if k <= 0:
                    continue
                coef = np.zeros(model.n)
                for j, cj in members:
                    if j != v:
                        coef[j] = k if cj != cv else min(k, a[j] - 1)
                rows.append((coef, k))
    return rows


def _solve_master(model: _Model, cand: np.ndarray, rows: list[tuple[np.ndarray, float]],
                  node_limit: int) -> tuple[np.ndarray | None, bool, int]:
    """The cheapest pattern meeting every row so far: (pattern or None, optimal, nodes).
    Bounded by nodes explored, never by time: the same rows give the same answer."""
    n, k = model.n, len(model.limit_rhs)
    # fewest hidden citizens (a shared number once), then fewest printed cells (§6)
    cost = np.where(cand, model.price, 0.0)
    lb = np.where(model.primary, 1.0, 0.0)
    ub = np.where(cand, 1.0, 0.0)
    cons = []
    if rows:
        mat = np.array([r[0] for r in rows])
        rhs = np.array([r[1] for r in rows])
        cons = [LinearConstraint(np.hstack([mat, np.zeros((len(rows), k))]), rhs, np.inf)]
    integrality = np.concatenate([np.ones(n), np.zeros(k)])
    bounds = Bounds(np.concatenate([lb, np.zeros(k)]), np.concatenate([ub, np.full(k, np.inf)]))
    options = {"mip_rel_gap": 0.0, "node_limit": int(node_limit)}
    nodes = 0
    if k:
        # the limits (Costs.limits): s_t >= hidden citizens of table t - its limit, and
        # first the fewest such citizens, then the cost below with their sum held there
        cons.append(LinearConstraint(np.hstack([model.limit_rows, -np.eye(k)]), -np.inf,
                                     model.limit_rhs))
        res = milp(np.concatenate([np.zeros(n), np.ones(k)]), constraints=cons,
                   integrality=integrality, bounds=bounds, options=options)
        nodes += int(getattr(res, "mip_node_count", 0) or 0)
        if res.x is None:
            if res.status == 2:
                raise SuppressionInfeasible("no safe suppression pattern exists")
            return None, False, nodes
        over = float(res.x[n:].sum())
        cons.append(LinearConstraint(np.concatenate([np.zeros(n), np.ones(k)])[None, :],
                                     -np.inf, over + 1e-6))
    res = milp(np.concatenate([cost, np.zeros(k)]), constraints=cons,
               integrality=integrality, bounds=bounds, options=options)
    nodes += int(getattr(res, "mip_node_count", 0) or 0)
    if res.x is None:
        if res.status == 2:  # infeasible: impossible, all-hidden satisfies every cut
            raise SuppressionInfeasible("no safe suppression pattern exists")
        return None, False, nodes
    return res.x[:n] > 0.5, res.status == 0, nodes


def _deepen(model: _Model, hide: np.ndarray, viol: list[_Violation],
            pool: list[np.ndarray], steps: int) -> list[_Violation]:
    """More cuts from one failed candidate, without solving the master again: meet each
    cut greedily (the cheapest cells per unit of the cut's shortfall), audit the pattern
    that gives, and keep its cuts; `steps` times or until a pattern passes.

    Every cut is valid for every safe pattern, wherever it was found, so the loop still
    ends at an optimal pattern (of the same cost; among ties the master may pick another),
    in fewer rounds, and deterministically (no clock, no randomness here). Why: where a
    primary is protected through a long chain of relations (the cohort table linked to
    the profile tables both ways, definitions §8.5), each round's cut only names the next
    link, and the master paid a full solve per link (demo 400 seed 5: 72 rounds, 74 s
    without the per-table limits; with them, over 10 minutes). A check costs a tenth of
    a master solve."""
    found: list[_Violation] = []
    h = hide.copy()
    for _ in range(steps):
        grew = False
        for x in viol:
            if x.cut is None:
                continue
            coef, rhs = x.cut
            short = rhs - float(coef[h].sum())
            # a cell whose coefficient is 0 or that may not be hidden does not help
            usable = np.nonzero(~h & model.nonzero & (coef > _TOL))[0]
            per_unit = model.price[usable] / np.minimum(coef[usable], max(short, _TOL))
            for j in usable[np.lexsort((usable, per_unit))]:
                if short <= _TOL:
                    break
                h[j] = True
                grew = True
                short -= coef[j]
        if not grew:
            break
        viol = _check(model, np.nonzero(h)[0], want_cuts=True, pool=pool)
        if not viol:
            break
        found.extend(viol)
    return found


def _greedy_repair(model: _Model, hide: np.ndarray) -> np.ndarray:
    """Fallback when the work budget is spent: hide more until the audit passes. Each
    round hides, for every exposed cell, the cheapest shown non-zero cell in a relation
    with it (or anywhere, if none is left). Ends at the latest with every non-zero cell
    hidden, which is always safe (module docstring)."""
    hide = hide.copy()
    incidence = model.E != 0
    pool: list[np.ndarray] = []
    while True:
        viol = _check(model, np.nonzero(hide)[0], want_cuts=False, pool=pool)
        if not viol:
            return hide
        add = set()
        for x in viol:
            near = np.any(incidence[incidence[:, x.var]], axis=0) & model.nonzero & ~hide
            choice = near if near.any() else model.nonzero & ~hide
            if not choice.any():  # everything non-zero hidden is safe; cannot get here
                raise SuppressionInfeasible(f"{model.describe(x.var)} cannot be protected")
            idx = np.nonzero(choice)[0]
            add.add(int(idx[np.argmin(model.price[idx])]))
        hide[sorted(add)] = True


# ---------------------------------------------------------------------------------------
# Public API


def suppress(tables: Sequence[Table], min_cell: int = 5, *, max_rounds: int = MAX_ROUNDS,
             node_limit: int = NODE_LIMIT, relations: Relations | None = None,
             costs: Costs | None = None) -> dict[CellKey, Reason]:
    """Cells to hide in the release (definitions §6), with the reason; shown cells absent.

    `relations`: what the reader knows beyond each table's sums (`Relations`); `costs`:
    which safe pattern to prefer (`Costs`; None: fewest hidden citizens, then cells).
    `max_rounds` (of the cut loop) and `node_limit` (per master MILP) bound the search for
    the optimal pattern by work, not time; past them, the best candidate is completed
    greedily (safe, perhaps not minimal), the same way on every machine."""
    return solve(tables, min_cell, max_rounds=max_rounds, node_limit=node_limit,
                 relations=relations, costs=costs).pattern


@dataclass(frozen=True)
class Solution:
    """A pattern and how it was found: `greedy` when the work budget ran out and the
    fallback completed it (safe, perhaps not minimal); `rounds` of the cut loop; `nodes`:
    branch-and-bound nodes of the master MILPs, all rounds; `seconds`: measured, for the
    bench only (nothing depends on it)."""

    pattern: dict[CellKey, Reason]
    greedy: bool
    rounds: int
    seconds: float
    nodes: int = 0


def _digest(*parts: object) -> str:
    """A key for everything `solve` reads, in the order given (the order of the relations
    can decide between patterns of equal cost, so it is part of the key)."""

    def plain(x: object) -> object:
        if isinstance(x, np.ndarray):
            return (x.dtype.str, x.shape, x.tolist())
        if isinstance(x, Table | Relations | Costs):
            return (type(x).__name__, *(plain(getattr(x, f)) for f in x.__dataclass_fields__))
        if isinstance(x, Mapping):
            return ("map", *((plain(k), plain(v)) for k, v in x.items()))
        if isinstance(x, frozenset | set):
            return ("set", *sorted(map(repr, x)))
        if isinstance(x, list | tuple):
            return ("seq", *map(plain, x))
        return x

    return hashlib.sha256(repr(plain(parts)).encode()).hexdigest()


# the last patterns solved in this process, by `_digest` of their input: the report solves
# the release it publishes twice (`coarsening.choose` judging the level, then
# marts.suppressed_cells), with the same input; the second is read from here
_SOLVED: dict[str, Solution] = {}
_SOLVED_KEEP = 8


def solve(tables: Sequence[Table], min_cell: int = 5, *, max_rounds: int = MAX_ROUNDS,
          node_limit: int = NODE_LIMIT, relations: Relations | None = None,
          costs: Costs | None = None) -> Solution:
    """`suppress`, with how the pattern was found. The budget is work (module docstring):
    the pattern depends on the data and the budget only, so a pattern already solved in
    this process for the same input is returned again (`_SOLVED`)."""
    key = _digest(tables, min_cell, max_rounds, node_limit, DEEPEN_STEPS, relations, costs)
    if key not in _SOLVED:
        _SOLVED[key] = _solve(tables, min_cell, max_rounds, node_limit, relations, costs)
        while len(_SOLVED) > _SOLVED_KEEP:
            del _SOLVED[next(iter(_SOLVED))]
    got = _SOLVED[key]
    return replace(got, pattern=dict(got.pattern))  # the caller's own copy


def _solve(tables: Sequence[Table], min_cell: int, max_rounds: int, node_limit: int,
           relations: Relations | None, costs: Costs | None) -> Solution:
    start = time.monotonic()
    model = _Model(tables, min_cell, relations, costs)
    if model.min_cell <= 1 or not model.primary.any():
        return Solution({}, False, 0, time.monotonic() - start)
    cand = model.nonzero  # zeros are always shown (§6)
    rows = _initial_rows(model, cand)
    unit = np.arange(model.n)
    hide = model.primary.copy()
    pool: list[np.ndarray] = []
    greedy = False
    rounds = nodes = 0
    while True:
        if rounds >= max_rounds:  # the budget is spent: complete the last candidate
            hide = _greedy_repair(model, hide)
            greedy = True
            break
        rounds += 1
        got, optimal, used = _solve_master(model, cand, rows, node_limit)
        nodes += used
        if got is None:  # no candidate within the node budget: complete the last one
            hide = _greedy_repair(model, hide)
            greedy = True
            break
        hide = got
        viol = _check(model, np.nonzero(hide)[0], want_cuts=True, pool=pool)
        if not viol:
            break
        if not optimal:  # the MILP stopped at its node limit: complete this candidate
            hide = _greedy_repair(model, hide)
            greedy = True
            break
        if rounds >= DEEPEN_FROM:
            viol = viol + _deepen(model, hide, viol, pool, DEEPEN_STEPS)
        # each cut "sum_j c_j h_j >= rhs * h_v" becomes the row "c - rhs*e_v >= 0"
        rows.extend((np.where(unit == x.var, x.cut[0] - x.cut[1], x.cut[0]), 0.0)
                    for x in viol if x.cut is not None)
    out: dict[CellKey, Reason] = {}
    for t in model.tables:
        for r in (*t.rows, TOTAL):
            for c in (*t.cols, TOTAL):
                v = model.cell_var[(t.id, r, c)]
                if hide[v]:
                    out[(t.id, r, c)] = "primary" if model.primary[v] else "secondary"
    for cell in sorted(relations.cells if relations else ()):
        v = model.cell_var[cell]
        if hide[v]:
            out[cell] = "primary" if model.primary[v] else "secondary"
    return Solution(out, greedy, rounds, time.monotonic() - start, nodes)


def audit(tables: Sequence[Table], hidden: Collection[CellKey], min_cell: int = 5, *,
          relations: Relations | None = None, watch: Collection[str] = ()) -> list[str]:
    """Violations of definitions §6 for a proposed set of hidden cells; [] means safe.
    `watch`: unpublished quantities of `relations` (e.g. how many citizens left a cell
    between two releases) that must not be fixed at a value from 1 to min_cell - 1."""
    model = _Model(tables, min_cell, relations)
    unknown = sorted(set(watch) - set((relations or Relations()).unpublished))
    if unknown:
        raise ValueError(f"watched quantities {unknown[:3]} are not unpublished")
    watched = sorted(model.cell_var_aux(w) for w in watch)
    problems: list[str] = []
    hidden_set = set(hidden)
    for key in sorted(hidden_set - model.cell_var.keys()):
        problems.append(f"{key}: no such cell in the release")
    hidden_set &= model.cell_var.keys()
    hide = np.zeros(model.n, dtype=bool)
    for v in range(model.n):
        inst = model.instances[v]
        shown = [k for k in inst if k not in hidden_set]
        if len(shown) < len(inst):
            if shown:
                problems.append(f"{model.describe(v)} is hidden in some tables but shown in "
                                f"{sorted({k[0] for k in shown})} (§6: all or none)")
            elif model.a[v] == 0:
                problems.append(f"{model.describe(v)} is zero and must be shown")
            else:
                hide[v] = True
        if model.min_cell > 1 and model.primary[v] and shown:
            problems.append(f"{model.describe(v)} is below {model.min_cell} and shown")
    # only numbers hidden in every table are hidden for the attacker
    problems.extend(x.message for x in _check(model, np.nonzero(hide)[0], False,
                                              watch=watched))
    return problems
