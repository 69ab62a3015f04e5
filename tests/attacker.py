"""An independent attacker on a published release (definitions §6): the tests' oracle.

Reads a warehouse after `pipeline.release.publish` — the tabulated citizens
(`marts.citizens` joined with `staging.citizens`: their true joint classes) and every cell's
true count (`marts.table_cells`) — with the `Release` as published, the rules file and the
config. Writes nothing. It never imports `pipeline.suppression`: it is the check of that
module, written from the definitions, not from its model.

What the attacker knows (§6): every number the release shows (every table, the headline
with its reviewed / model / uncertain split, the cohort table at every horizon, the model
card's published groups: `knowledge` reads them from the release and the published marts,
as the page prints them, so every caller gets the whole page),
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

The page beyond the profile tables (issue 13 item 5):

* The headline's split (issue 15, definitions §1): reviewed + model = the tables' grand
  total; with a model trained every unreviewed citizen in scope is the model's or uncertain
  (uncertain = unreviewed), without one the model's and the uncertain are 0. When a model
  was trained the rule class carries the profile's source, and a model-assigned citizen's
  flags are the predicted ones the rules test, every other flag false (data contract: not
  recorded is false), so it is in the "none" column of a block the rules do not test.
* The cohort table (docs/definitions-movement.md §8.2, §8.5): a population of its own, per
  horizon and profile its statuses (each horizon a dimension dealt out on its own), a
  profile's cohort one number printed at every horizon; tied to the tables on the reference
  date (the 12 months' horizon by default): still in M3 at most the profile's total and at
  most its citizens with more than a year in M3, and (`Knowledge.both_ways`) the other way
  round, each where the data keep it (see `_cohort_program`).
* The model card (docs/disclosure.md §6): the evaluated citizens by sex, by age band and the
  reliability curve's bins (a group not listed is 0); a band is the tables' reviewed citizens
  of the band plus reviewed citizens outside the tables, when no cap applied; the card's
  model-assigned and uncertain counts are the headline's.

For each hidden number it computes the smallest and largest whole value consistent with
all of that (an LP, then a MILP when the LP's optimum is not whole: HiGHS through scipy),
and reports a hidden number derived exactly (min = max) and a small one proven small
(max < min_cell).
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix

from pipeline.config import Config
from pipeline.rules import Rules
from pipeline.vocabulary import COURSE_CLASSES, FLAG_COLUMNS, M3_BANDS, age_band_codes

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
    # issue 15: a model was trained (the card says so, or says "no model"): the tables then
    # count model-assigned citizens too, whose unpredicted flags are false (not recorded,
    # data contract); the headline splits the profiles by source
    model_trained: bool = False
    # citizens in scope who are neither tabulated nor without a profile (reviewed, no
    # profile: impossible under rules with a catch-all; an unpublished number when not 0)
    in_scope_other: int = 0
    # the cohort table (issue 16), None when the page has none
    cohort: CohortKnowledge | None = None
    # the model card's published partitions (issue 15), None when the page has no card
    card: CardKnowledge | None = None
    # the link between the cohort and the tables the other way round too (a tabulated
    # citizen with more than a year in M3 is in the cohort, in M3 at every horizon), where
    # the data keep it (docs/disclosure.md §7); False: one way only, for the tests that
    # show what the other direction adds
    both_ways: bool = True


@dataclass
class CohortKnowledge:
    """The cohort table's structure and its citizens (definitions-movement §8.2, §8.5): per
    citizen of the cohort its profile, its status per horizon, and whether (and with which
    M3 band) the profile tables count it."""

    horizons: tuple[str, ...]
    ref_horizon: str | None  # the horizon on the reference date (the 12 months' by default)
    profiles: tuple[str, ...]
    citizens: list[dict[str, Any]]


@dataclass
class CardKnowledge:
    """The model card's partitions of the citizens evaluated (docs/disclosure.md §6): by
    sex, by age band, and the reliability curve's bins (of the pooled flag predictions: the
    evaluated times the flags the model predicts). `all_reviewed`: no cap applied, so the
    evaluated are every reviewed citizen, in scope or not (model_eval: the training sample,
    capped at model_max_training_citizens, of which at most model_eval_max_citizens)."""

    sexes: tuple[str, ...]
    bands: tuple[str, ...]
    bins: tuple[str, ...]
    flags: int
    all_reviewed: bool


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
        """select count(*) filter (where profile_source in ('unreviewed', 'uncertain')),
                  count(*) filter (where tabulated and complex_case),
                  count(*) filter (where tabulated and profile_source = 'rules'),
                  count(*) filter (where tabulated and profile_source = 'model'),
                  count(*) filter (where profile_source = 'uncertain'),
                  count(*) filter (where not tabulated
                                   and profile_source not in ('unreviewed', 'uncertain'))
           from marts.citizens where in_scope""").fetchone()
    grand = truth[("profile_distribution", T, T)]
    truth[("headline", "unreviewed", T)] = truth_h[0]
    truth[("headline", "in_scope", T)] = truth_h[0] + grand + truth_h[5]
    truth[("headline", "complex_case", T)] = truth_h[1]
    truth[("headline", "m3_over_1y", T)] = sum(truth[("m3_duration", T, c)]
                                               for c in ("1_to_2y", "2y_plus"))
    truth[("headline", "reviewed", T)] = truth_h[2]
    truth[("headline", "model", T)] = truth_h[3]
    truth[("headline", "uncertain", T)] = truth_h[4]
    shown[("headline", "unreviewed", T)] = h.unreviewed
    shown[("headline", "in_scope", T)] = h.in_scope
    shown[("headline", "complex_case", T)] = h.complex_case.n
    shown[("headline", "m3_over_1y", T)] = h.m3_over_1y.n
    # issue 15: the profiles' split by source, on the page beside the headline
    shown[("headline", "reviewed", T)] = getattr(h, "reviewed", None)
    shown[("headline", "model", T)] = getattr(h, "model", None)
    shown[("headline", "uncertain", T)] = getattr(h, "uncertain", None)
    trained = _model_trained(con)
    # definitions §1: a reviewed citizen's flags as recorded; a model-assigned one's are the
    # predicted flags the rules test, every other flag false (data contract: not recorded
    # is false; the motivation table counts them as not stated)
    flags = FLAG_COLUMNS
    predicted = _predicted_flags(con) if trained else ()
    pick = ", ".join(
        f"case when c.profile_source = 'model' then p.{f} else s.{f} end as {f}"
        if f in predicted else
        f"case when c.profile_source = 'model' then false else s.{f} end as {f}"
        for f in flags)
    join = ("left join marts.predictions p on p.citizen_id = c.citizen_id"
            " and c.profile_source = 'model'" if predicted else "")
    cur = con.execute(
        f"""select c.citizen_id as id, c.profile, c.base_profile as base, c.course_class,
                  coalesce(c.age_band, 'unknown') as age_band, c.m3_band,
                  c.complex_case as complex, c.profile_source as source,
                  s.* exclude (citizen_id, {", ".join(flags)}), {pick}
           from marts.citizens c join staging.citizens s using (citizen_id) {join}
           where c.tabulated""")
    names = [d[0] for d in cur.description]
    citizens = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    kn = Knowledge(cfg, rules, tables, shown, truth, citizens, truth_h[0], label, merges,
                   model_trained=trained, in_scope_other=truth_h[5])
    _read_cohort(con, cfg, kn)
    _read_card(con, cfg, release, kn)
    return kn


def _model_trained(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the run trained a model: the card shows its evaluation (else its "no model"
    message), so the reader knows it."""
    try:
        ((n,),) = con.execute("select count(*) from marts.model_evaluation"
                              " where section = 'status' and metric = 'citizens_evaluated'"
                              ).fetchall()
    except duckdb.CatalogException:
        return False
    return n > 0


def _predicted_flags(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    cols = {r[0] for r in con.execute("describe marts.predictions").fetchall()}
    return tuple(f for f in FLAG_COLUMNS if f in cols)


def _read_cohort(con: duckdb.DuckDBPyConnection, cfg: Config, kn: Knowledge) -> None:
    """The cohort table as the page prints it (pipeline.movement.published: every horizon,
    every profile and the total row, the five statuses and the cohort), and its citizens:
    marts.cohort_status (the citizens in M3 on the cohort date, their status per horizon)
    with their profile and whether the tables count them."""
    from pipeline.movement import STATUSES
    from pipeline.movement import published as published_movement

    try:
        moves = published_movement(con, cfg)
    except duckdb.CatalogException:
        return
    cohort = moves.cohort
    if cohort is None:
        return
    horizons = tuple(h for h, _ in cohort.horizons)
    ref = [h for h, d in cohort.horizons if d == cfg.reference_date]
    profiles = tuple(p for p in cohort.profiles if p != T)
    for (hz, p, st), cell in cohort.cells.items():
        kn.shown[(f"cohort_{hz}", p, st)] = None if cell.hidden else cell.n
    rows = con.execute(
        """select s.citizen_id, c.profile, s.horizon, s.status, c.tabulated, c.m3_band
           from marts.cohort_status s join marts.citizens c using (citizen_id)
           where c.profile is not null""").fetchall()
    people: dict[str, dict[str, Any]] = {}
    for cid, p, hz, st, tab, band in rows:
        d = people.setdefault(cid, {"id": cid, "profile": p, "tabulated": bool(tab),
                                    "m3_band": band, "status": {}})
        d["status"][hz] = st
    for hz in horizons:
        for p in (*profiles, T):
            for st in (*STATUSES, T):
                kn.truth[(f"cohort_{hz}", p, st)] = sum(
                    1 for c in people.values() if p in (T, c["profile"])
                    and st in (T, c["status"][hz]))
    kn.cohort = CohortKnowledge(horizons, ref[0] if ref else None, profiles,
                                list(people.values()))


_SEXES = ("men", "women", "unknown")


def _read_card(con: duckdb.DuckDBPyConnection, cfg: Config, release: Any,
               kn: Knowledge) -> None:
    """The model card's numbers as the page prints them (pipeline.model_card.card: the
    strings of the page, `c` where hidden), mapped back to their groups by their labels."""
    if not kn.model_trained:
        return
    from pipeline.labels import Labels
    from pipeline.model_card import card

    lb = Labels(cfg.lang, release.profiles)
    page = card(con, cfg, lb, release)
    if page is None or not page.get("trained"):
        return

    def number(text: str) -> int | None:
        return None if text == "c" else int(text.replace(".", "").replace(",", ""))

    rows = con.execute("select section, subject, grp, metric, n from marts.model_evaluation"
                       ).fetchall()
    status = {r[3]: int(r[4]) for r in rows if r[0] == "status" and r[4] is not None}
    sizes = dict(page["sizes"])
    cat = lb.cat["model_card"]
    for key, label in (("trained", "trained_on"), ("evaluated", "evaluated"),
                       ("model_assigned", "model_assigned"), ("uncertain", "uncertain")):
        text = cat[label][lb.lang]
        if text in sizes:
            kn.shown[("card", key, T)] = number(sizes[text])
    kn.truth[("card", "trained", T)] = status.get("citizens_trained", 0)
    kn.truth[("card", "evaluated", T)] = status["citizens_evaluated"]
    kn.truth[("card", "model_assigned", T)] = kn.truth[("headline", "model", T)]
    kn.truth[("card", "uncertain", T)] = kn.truth[("headline", "uncertain", T)]
    # the fairness tables' groups: their printed names back to their codes
    bands = (*age_band_codes(cfg.age_bands), "unknown")
    names = {"sex": {cat[{"men": "men", "women": "women"}.get(g, "sex_unknown")][lb.lang]: g
                     for g in _SEXES},
             "age_band": {lb.col(b): b for b in bands}}
    for by, table in zip(("sex", "age_band"), page["fairness"], strict=True):
        for g in (_SEXES if by == "sex" else bands):
            kn.shown[(f"card_{by}", g, T)] = 0  # a group with no citizen is not listed
            kn.truth[(f"card_{by}", g, T)] = 0
        for name, text in table["groups"]:
            kn.shown[(f"card_{by}", names[by][name], T)] = number(text)
        for r in rows:
            if r[0] == f"fairness_{by}" and r[1] == "all" and r[3] == "accuracy" \
                    and r[2] != "ratio":
                kn.truth[(f"card_{by}", r[2], T)] = int(r[4])
    # the reliability curve: one printed line per non-empty bin, in the bins' order
    present = sorted({r[2] for r in rows if r[0] == "calibration" and r[1] == "flags"
                      and r[2].startswith("bin_")}, key=lambda b: int(b.removeprefix("bin_")))
    all_bins = tuple(f"bin_{i}" for i in range(10))
    for b in all_bins:
        kn.shown[("card_bin", b, T)] = 0
        kn.truth[("card_bin", b, T)] = 0
    assert len(present) == len(page["curve"])
    for b, (_, _, text) in zip(present, page["curve"], strict=True):
        kn.shown[("card_bin", b, T)] = number(text)
    for r in rows:
        if r[0] == "calibration" and r[1] == "flags" and r[3] == "predicted":
            kn.truth[("card_bin", r[2], T)] = int(r[4])
    flags = len(_predicted_flags(con))
    all_reviewed = (status["citizens_evaluated"] < cfg.model_eval_max_citizens
                    and status.get("citizens_trained", 0) < cfg.model_max_training_citizens)
    if all_reviewed:
        # the evaluated are every reviewed citizen: checked here against the warehouse
        ((reviewed,),) = con.execute("select count(*) from marts.citizens"
                                     " where profile_source = 'rules'").fetchall()
        assert reviewed == status["citizens_evaluated"] == status["citizens_trained"], (
            reviewed, status)
    kn.card = CardKnowledge(_SEXES, bands, all_bins, flags, all_reviewed)


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
    # sum <= 0 where the population's own numbers keep it (the cohort's link to the tables,
    # docs/disclosure.md §7): knowledge for a population that keeps it, none for one that
    # breaks it; `holding` picks them for a population (the release, its leavers, ...)
    cond: list[dict[int, float]] = field(default_factory=list)

    def var(self, name: tuple) -> int:
        if name not in self.index:
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]


def holding(rows: Iterable[Mapping[int, float]], x: Sequence[float] | np.ndarray
            ) -> list[dict[int, float]]:
    """The rows (sum <= 0) that the population `x` keeps."""
    return [dict(r) for r in rows if sum(x[v] * c for v, c in r.items()) <= 1e-9]


def _add(*terms: Mapping[int, float], signs: Iterable[float] | None = None) -> dict[int, float]:
    out: dict[int, float] = {}
    for t, s in zip(terms, signs or [1.0] * len(terms), strict=True):
        for k, v in t.items():
            out[k] = out.get(k, 0.0) + s * v
    return {k: v for k, v in out.items() if v}


def record(c: Mapping[str, Any], rc: RuleClasses, cfg: Config,
           merges: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
           sources: bool = False) -> list[tuple]:
    """The variables one citizen counts in: its rule class first, then one per dimension.
    `sources`: a model was trained, so the class says where the profile came from (a
    model-assigned citizen's unpredicted flags are false, data contract)."""
    merges = merges or {}
    src = (c.get("source", "rules"),) if sources else ()
    out: list[tuple] = [("K", (*rc.key(c), *src))]
    if c["complex"] and not rc.complex_linked:
        out.append(("complex",))
    for tid, td in table_defs(cfg).items():
        r = c[td.row_dim]
        if td.kind == "cat" and td.dim not in rc.linked:
            out.append(("cat", td.dim, r, c[td.dim], *src))
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
            free = [f for f in td.flags if f not in rc.linked]
            if src == ("model",) and free:
                continue  # the unpredicted flags are false: no variable of their own
            linked = tuple(bool(c[f]) for f in td.flags if f in rc.linked)
            pattern = tuple(bool(c[f]) for f in free)
            out.append(("pattern", tid, r, linked, pattern))
    return out


def build_program(kn: Knowledge, page: bool = True, card: bool | None = None
                  ) -> tuple[Program, dict[int, int]]:
    """The program and the true value of each variable (from the citizens). `page`: also
    the cohort table and the model card (False: the tables and the headline only).
    `card`: the card too (default: as `page`); the attack across releases models the
    movers without it (the card's groups are not counted per citizen of the tables)."""
    cfg, rc = kn.cfg, RuleClasses(kn.rules, kn.cfg)
    prog = Program()
    true: dict[int, int] = {}
    sources = ("rules", "model") if kn.model_trained else ()

    def count(name: tuple, n: int = 1) -> None:
        v = prog.var(name)
        true[v] = true.get(v, 0) + n

    def new(name: tuple) -> int:
        v = prog.var(name)
        true.setdefault(v, 0)
        return v

    n_k = {(*k, *s): prog.var(("K", (*k, *s)))
           for k in rc.classes for s in ([(x,) for x in sources] or [()])}
    for v in n_k.values():
        true.setdefault(v, 0)
    # the true classes; the pipeline's profile and base must be what the rules give here
    for c in kn.citizens:
        k = record(c, rc, cfg, sources=bool(sources))[0]
        assert k[1][:2] == (c["profile"], c["base"]), (k, c["profile"], c["base"])
        assert k[1] in n_k, f"class {k} is not one the rules can produce"
        count(k)

    def members(row_dim: str, row: str, linked: Mapping[str, Any] | None = None,
                src: str | None = None) -> dict:
        pos = 0 if row_dim == "profile" else 1
        out = {}
        for k, v in n_k.items():
            if k[pos] != row or (src is not None and k[3] != src):
                continue
            if linked and any(k[2][rc.linked.index(a)] != b for a, b in linked.items()):
                continue
            out[v] = 1.0
        return out

    # whose unpredicted flags a table counts: everyone, or the reviewed when a model was
    # trained (a model-assigned citizen's other flags are false, not recorded)
    flagged = "rules" if sources else None
    fine_cells: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    # a category's count per (dimension, row, value, source), for the card's age bands
    by_source: dict[tuple[str, str, str, str], dict[int, float]] = {}
    profiles = tuple(r.code for r in kn.rules.rules)
    bases = tuple(r.code for r in kn.rules.base_rules)
    grand = {v: 1.0 for v in n_k.values()}
    cats = categories(cfg)
    prog.expr[("headline", "grand", T)] = grand
    for tid, td in table_defs(cfg).items():
        rows, cols = kn.tables[tid]
        row_codes = profiles if td.row_dim == "profile" else bases
        assert set(rows) == set(row_codes), (tid, rows)
        merged = kn.merges.get(tid, {})
        covered = {f for fs in merged.values() for f in fs}
        for r in rows:
            total = members(td.row_dim, r)
            prog.expr[(tid, r, T)] = total
            cells: dict[str, dict[int, float]] = {}
            if td.kind == "cat" and td.dim in rc.linked:
                for val in cats[td.dim]:
                    cells[val] = members(td.row_dim, r, {td.dim: val})
                    for s in sources:
                        by_source[(td.dim, r, val, s)] = members(td.row_dim, r,
                                                                 {td.dim: val}, s)
            elif td.kind == "cat":
                for s in sources or (None,):
                    parts = {}
                    for val in cats[td.dim]:
                        v = new(("cat", td.dim, r, val, *((s,) if s else ())))
                        parts[v] = 1.0
                        cells[val] = _add(cells.get(val, {}), {v: 1.0})
                        if s:
                            by_source[(td.dim, r, val, s)] = {v: 1.0}
                    prog.eq.append(_add(parts, members(td.row_dim, r, src=s), signs=(1, -1)))
            elif td.kind == "flags":
                reviewed = members(td.row_dim, r, src=flagged)
                for code, fs in merged.items():
                    lk = [f for f in fs if f in rc.linked]
                    none_linked = members(td.row_dim, r, dict.fromkeys(lk, False)) if lk else {}
                    e = _add(total, none_linked, signs=(1, -1)) if lk else {}
                    if any(f not in rc.linked for f in fs):
                        v = new(("merged", tid, code, r))
                        e = _add(e, {v: 1.0})
                        bound = (members(td.row_dim, r, dict.fromkeys(lk, False), flagged)
                                 if lk else reviewed)
                        prog.le.append(_add({v: 1.0}, bound, signs=(1, -1)))
                    cells[code] = e
                for f in td.flags:
                    if f in covered and f not in rc.linked:
                        continue
                    if f in rc.linked:
                        cells[f] = members(td.row_dim, r, {f: True})
                    else:
                        v = new(("flag", f, r))
                        cells[f] = {v: 1.0}
                        prog.le.append(_add({v: 1.0}, reviewed, signs=(1, -1)))
            elif td.kind == "block":
                linked = [f for f in td.flags if f in rc.linked]
                free = [f for f in td.flags if f not in rc.linked]
                cells = {f: {} for f in (*td.flags, td.none_col, *merged)}
                for lv in itertools.product((False, True), repeat=len(linked)):
                    group = dict(zip(linked, lv, strict=True))
                    g_total = members(td.row_dim, r, group, flagged if free else None)
                    if free and sources:
                        # model-assigned: their linked flags predicted, the others false
                        # (not recorded): no variable of their own
                        g_model = members(td.row_dim, r, group, "model")
                        for f in linked:
                            if group[f]:
                                cells[f] = _add(cells[f], g_model)
                        if not any(lv):
                            cells[td.none_col] = _add(cells[td.none_col], g_model)
                        for code, fs in merged.items():
                            if any(group.get(f) for f in fs):
                                cells[code] = _add(cells.get(code, {}), g_model)
                    if not g_total:
                        continue
                    parts = {}
                    for pattern in itertools.product((False, True), repeat=len(free)):
                        v = new(("pattern", tid, r, lv, pattern))
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
        i = rc.linked.index("complex")
        complex_e = {v: 1.0 for k, v in n_k.items() if k[2][i]}
    else:
        cv = new(("complex",))
        complex_e = {cv: 1.0}
        prog.le.append(_add(complex_e, grand, signs=(1, -1)))
    prog.expr[("headline", "complex_case", T)] = complex_e
    uv = prog.var(("unreviewed",))
    true[uv] = kn.unreviewed
    prog.expr[("headline", "unreviewed", T)] = {uv: 1.0}
    in_scope = _add(grand, {uv: 1.0})
    if kn.in_scope_other:  # reviewed in scope without a profile (no catch-all rule)
        ov = prog.var(("in_scope_other",))
        true[ov] = kn.in_scope_other
        in_scope = _add(in_scope, {ov: 1.0})
    prog.expr[("headline", "in_scope", T)] = in_scope
    prog.expr[("headline", "m3_over_1y", T)] = _add(*(
        fine_cells[("m3_duration", r)][c] for r in kn.tables["m3_duration"][0]
        for c in ("1_to_2y", "2y_plus")))
    # issue 15 (definitions §1): reviewed + model = the grand total; with a model trained
    # every unreviewed citizen in scope is the model's or uncertain, without one none is
    if sources:
        prog.expr[("headline", "reviewed", T)] = {v: 1.0 for k, v in n_k.items()
                                                   if k[3] == "rules"}
        prog.expr[("headline", "model", T)] = {v: 1.0 for k, v in n_k.items()
                                                if k[3] == "model"}
        if kn.truth[("headline", "uncertain", T)] == kn.unreviewed:
            prog.expr[("headline", "uncertain", T)] = {uv: 1.0}
        else:  # unreviewed in scope without a prediction: not in the definitions; weaker
            unc = prog.var(("uncertain",))
            true[unc] = kn.truth[("headline", "uncertain", T)]
            prog.expr[("headline", "uncertain", T)] = {unc: 1.0}
            prog.le.append({unc: 1.0, uv: -1.0})
    else:
        prog.expr[("headline", "reviewed", T)] = grand
        prog.expr[("headline", "model", T)] = {}
        prog.expr[("headline", "uncertain", T)] = {}
    # the true citizens' other dimensions
    for c in kn.citizens:
        for name in record(c, rc, cfg, kn.merges, bool(sources))[1:]:
            count(name)
    if page and kn.cohort is not None:
        _cohort_program(kn, prog, true, fine_cells, members)
    if (page if card is None else card) and kn.card is not None:
        _card_program(kn, prog, true, by_source, new)
    return prog, true


def _cohort_program(kn: Knowledge, prog: Program, true: dict[int, int],
                    fine_cells: Mapping[tuple[str, str], Mapping[str, dict[int, float]]],
                    members: Callable[..., dict]) -> None:
    """The cohort table (definitions-movement §8.2, §8.5) as numbers of the page. Its
    population is its own (in M3 on the cohort date, with a profile), so its variables
    are its own: per horizon, profile and status the citizens (a status per horizon is a
    dimension of its own, dealt out independently, as the tables' categories), a
    profile's cohort the same at every horizon. What ties it to the tables: the citizens
    still in M3 on the reference date are, per profile, at most the profile's total and
    at most its citizens with more than a year in M3 (a citizen in M3 on the cohort date
    and on the reference date whose stretch did not break has been in M3 more than a
    year); and the other way round, a tabulated citizen with more than a year in M3 was
    in M3 on the cohort date (a year before) and at every horizon since, unless its
    stretch began in the day or two between the cohort date and a year of days before the
    reference date. Neither is exact in the definitions (a stretch can break and start
    again; the citizens file's match group decides the scope), so each is a conditional
    relation (`Program.cond`), per profile, held for a population whose numbers keep it
    (`holding`): a relation the data break is no knowledge, one they keep is what a reader
    may well assume (docs/disclosure.md §7's rule, both ways); across releases the same
    holds for the leavers and the entrants."""
    from pipeline.movement import STATUSES

    co = kn.cohort
    assert co is not None
    coh = {p: prog.var(("cohort", p)) for p in co.profiles}
    y = {(h, p, st): prog.var(("cohort", h, p, st)) for h in co.horizons
         for p in co.profiles for st in STATUSES}
    for v in (*coh.values(), *y.values()):
        true.setdefault(v, 0)
    for c in co.citizens:
        true[coh[c["profile"]]] += 1
        for h in co.horizons:
            true[y[(h, c["profile"], c["status"][h])]] += 1
    for h in co.horizons:
        t = f"cohort_{h}"
        for p in co.profiles:
            prog.eq.append(_add({y[(h, p, st)]: 1.0 for st in STATUSES}, {coh[p]: 1.0},
                                signs=(1, -1)))
            prog.expr[(t, p, T)] = {coh[p]: 1.0}
            for st in STATUSES:
                prog.expr[(t, p, st)] = {y[(h, p, st)]: 1.0}
        for st in STATUSES:
            prog.expr[(t, T, st)] = {y[(h, p, st)]: 1.0 for p in co.profiles}
        prog.expr[(t, T, T)] = {v: 1.0 for v in coh.values()}
    if co.ref_horizon is None:
        return
    rows = kn.tables["m3_duration"][0]

    for p in co.profiles:
        if p not in rows:
            continue
        still = {y[(co.ref_horizon, p, "m3")]: 1.0}
        over = _add(*(fine_cells[("m3_duration", p)][c] for c in ("1_to_2y", "2y_plus")))
        total = members("profile", p)
        pairs = [(still, total), (still, over)]
        if kn.both_ways:
            pairs += [(over, {y[(h, p, "m3")]: 1.0}) for h in co.horizons]
        prog.cond += [_add(small, big, signs=(1, -1)) for small, big in pairs]


def _card_program(kn: Knowledge, prog: Program, true: dict[int, int],
                  by_source: Mapping[tuple[str, str, str, str], dict[int, float]],
                  new: Callable[[tuple], int]) -> None:
    """The model card's partitions (docs/disclosure.md §6) as numbers of the page. The
    citizens evaluated are reviewed citizens: when no cap applied, every reviewed citizen,
    in scope or not, so an age band of the card is the tables' reviewed citizens of that
    band (a part of the age table's column, the rest model-assigned) plus reviewed
    citizens outside the tables (out of scope), and the evaluated are the headline's
    reviewed plus those; under a cap a sample of them (a band at most that). Sex is in no
    table: a partition of the evaluated. The reliability curve's bins split the pooled flag
    predictions: the evaluated times the flags the model predicts."""
    cd = kn.card
    assert cd is not None
    rows = kn.tables["age_groups"][0]
    band: dict[str, dict[int, float]] = {}
    for b in cd.bands:
        inside = _add(*(by_source.get(("age_band", r, b, "rules"), {}) for r in rows))
        tab = sum(1 for c in kn.citizens if c["source"] == "rules" and c["age_band"] == b)
        out = new(("card_out", b))  # reviewed citizens of band b outside the tables
        if cd.all_reviewed:
            true[out] = kn.truth[("card_age_band", b, T)] - tab
            assert true[out] >= 0, (b, kn.truth[("card_age_band", b, T)], tab)
            band[b] = _add(inside, {out: 1.0})
        else:  # a sample of them
            g = new(("card_age_band", b))
            true[g] = kn.truth[("card_age_band", b, T)]
            true[out] = max(true[g] - tab, 0)
            prog.le.append(_add({g: 1.0}, inside, {out: 1.0}, signs=(1, -1, -1)))
            band[b] = {g: 1.0}
        prog.expr[("card_age_band", b, T)] = band[b]
    evaluated = _add(*band.values())
    prog.expr[("card", "evaluated", T)] = evaluated
    if cd.all_reviewed:
        prog.expr[("card", "trained", T)] = evaluated
    else:
        tv = new(("card_trained",))
        true[tv] = kn.truth[("card", "trained", T)]
        prog.le.append(_add(evaluated, {tv: 1.0}, signs=(1, -1)))
        prog.expr[("card", "trained", T)] = {tv: 1.0}
    prog.expr[("card", "model_assigned", T)] = prog.expr[("headline", "model", T)]
    prog.expr[("card", "uncertain", T)] = prog.expr[("headline", "uncertain", T)]
    for part, groups, times in (("card_sex", cd.sexes, 1), ("card_bin", cd.bins, cd.flags)):
        vs = {}
        for g in groups:
            v = new((part, g))
            true[v] = kn.truth[(part, g, T)]
            vs[v] = 1.0
            prog.expr[(part, g, T)] = {v: 1.0}
        got = sum(kn.truth[(part, g, T)] for g in groups)
        assert got == times * kn.truth[("card", "evaluated", T)], (part, got, times)
        prog.eq.append(_add(vs, evaluated, signs=(1, -times)))


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


def _extreme(e: Mapping[int, float], sign: float, n: int, a_ub: Any, b_ub: np.ndarray,
             a_eq: Any, b_eq: np.ndarray, cons: list) -> tuple[float, np.ndarray | None]:
    """max of sign * e over the whole-number solutions (inf when unbounded), and a solution
    reaching it: the LP, then the MILP if the LP's optimum is not whole."""
    c = np.zeros(n)
    for v, x in e.items():
        c[v] = -sign * x
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None),
                  method="highs")
    if res.status == 2:
        # the truth is always feasible (checked before attacking), so "infeasible" is
        # HiGHS's presolve mistaking an unbounded LP (pipeline.suppression's attacker met it
        # on demo 400 seed 2): solve it again without presolve
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None),
                      method="highs", options={"presolve": False})
    if res.status == 3:  # unbounded LP: the integer program is too (rational data)
        return np.inf, None
    assert res.status == 0, res.message
    if not np.all(np.abs(res.x - np.rint(res.x)) < 1e-7):
        res = milp(c, constraints=cons, integrality=np.ones(n), bounds=Bounds(0, np.inf),
                   options={"mip_rel_gap": 0.0})
        assert res.status == 0, res.message
    return float(np.rint(-res.fun)), res.x


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
    ub_rows = [*prog.le, *holding(prog.cond, x_true)]
    ub_rhs = [0.0] * len(ub_rows)
    hidden: list[Key] = []
    for key, value in kn.shown.items():
        if key not in prog.expr:
            continue
        if value is None:
            if key[0] == "headline" and key[1] == "m3_over_1y":
                continue  # hidden because a part is hidden: no number of its own
            # zeros are shown (§6): a hidden number is at least 1, or the page lies
            assert kn.truth[key] >= 1, f"a zero is hidden: {key}"
            hidden.append(key)
            ub_rows.append({v: -c for v, c in prog.expr[key].items()})
            ub_rhs.append(-1.0)  # a hidden number is not zero
        else:
            # the page prints the truth: the oracle's own counts must agree with it
            assert value == kn.truth[key], (key, value, kn.truth[key])
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
        value, x = _extreme(e, sign, n, a_ub, b_ub, a_eq, b_eq, cons)
        if x is not None:
            witness(x)
        return value

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
    given the flow volumes. With the profile changes table, the entrants and the leavers
    of each profile (not published) are flows too: key ("changes", "entered" | "left",
    profile)."""

    findings: list[Finding]
    flows: list[tuple[str, Key, str]]
    fixed: list[tuple[str, Key, str, int]] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        """Nothing hidden derived, nothing small proven small, no flow fixed."""
        return not self.findings and not self.fixed


# the model card's variables (_card_program): its groups are not counted per citizen of the
# tables, so no flow links them between releases; each release keeps its own
_CARD = frozenset({"card_out", "card_age_band", "card_trained", "card_sex", "card_bin"})


def _own(part: str, name: tuple) -> tuple:
    return ("release", part, *name) if name[0] in _CARD else name


def _cohort_records(kn: Knowledge) -> dict[str, list[tuple]]:
    """Per citizen of the cohort table, the variables it counts in (as _cohort_program)."""
    if kn.cohort is None:
        return {}
    return {c["id"]: [("cohort", c["profile"]),
                      *(("cohort", h, c["profile"], c["status"][h]) for h in kn.cohort.horizons)]
            for c in kn.cohort.citizens}


def attack_pair(old: Knowledge, new: Knowledge, min_cell: int | None = None,
                hidden_numbers: bool = True, changes: Mapping[str, Any] | None = None,
                volumes: Sequence[str] = ("tables", "cohort")) -> PairAttack:
    """The attacker with both releases — every number of both pages: the tables, the
    headline, the cohort table, the model card — who also knows how many citizens left
    and how many entered, in the tables and in the cohort (the worst case: e.g. "one
    citizen left"). Class counts of the new population are those of the old one minus the
    leavers plus the entrants, class by class (the per-dimension counts too: a leaver
    leaves every dimension of its class; dealing the dimensions out independently stays
    exact for the flows, as for the counts), and the cohort's counts the same way; the
    leavers are a part of the old population and the entrants of the new one, variable by
    variable; each is a population counted as a release counts one (the tables' relations;
    the cohort's link to the tables where their own numbers keep it). The model card's
    groups are each release's own. The true flows come from the citizens of both releases
    (matched by id): a citizen whose record changed (its tables' or its cohort's) counts as
    one leaver and one entrant of both. (Counting the two records apart gives an attacker
    who knows how many citizens' table categories changed and, separately, how many cohort
    statuses: stronger than docs/disclosure.md §2.2 models; on demo 400 seed 1 a month
    later it proves 28 hidden cohort cells small. Not this oracle.)

    `volumes`: the flow volumes known, of the tables' citizens and of the cohort's.

    `changes`: the profile changes table the second release publishes (pipeline.changes,
    as published: `profiles`, `moves`, `entered`, `left`, `hidden`), checked here against
    the citizens of both releases and tied to the flows as the definitions imply
    (docs/definitions-movement.md §8.7): per profile A, with the entrants e_A and leavers
    l_A of the tables and s_A (kept A, changed otherwise), all unpublished, whole, >= 0:
    leavers of A's total = Σ_B moves[A→B] + l_A + s_A, entrants of A's total =
    Σ_B moves[B→A] + e_A + s_A, Σ e_A = entered, Σ l_A = left."""
    min_cell = new.cfg.min_cell if min_cell is None else min_cell
    if (old.cohort is None) != (new.cohort is None) or (
            old.cohort and new.cohort and old.cohort.horizons != new.cohort.horizons):
        raise ValueError("the two releases' cohort tables are not counted alike")
    p_old, t_old = build_program(old)
    p_new, t_new = build_program(new)
    p_flow, _ = build_program(new, card=False)  # the movers, counted as the new release
    n_old = [_own("old", nm) for nm in p_old.names]
    n_new = [_own("new", nm) for nm in p_new.names]
    n_flow = list(p_flow.names)
    names = sorted(set(n_old) | set(n_new) | set(n_flow), key=repr)
    n = len(names)
    pos = {nm: i for i, nm in enumerate(names)}
    blocks = {"x": 0, "y": n, "L": 2 * n, "E": 3 * n}  # old, new, leavers, entrants

    def lift(nms: Sequence[tuple], part: str, e: Mapping[int, float]) -> dict[int, float]:
        return {blocks[part] + pos[nms[v]]: c for v, c in e.items()}

    x = np.zeros(n)
    y = np.zeros(n)
    for v, val in t_old.items():
        x[pos[n_old[v]]] = val
    for v, val in t_new.items():
        y[pos[n_new[v]]] = val
    # the true flows: who left or changed (their old record), who entered or changed
    rc_old, rc_new = RuleClasses(old.rules, old.cfg), RuleClasses(new.rules, new.cfg)
    flow_l, flow_e = np.zeros(n), np.zeros(n)
    volumes: dict[str, list[float]] = {}
    records = {
        "tables": ({c["id"]: record(c, rc_old, old.cfg, old.merges, old.model_trained)
                    for c in old.citizens},
                   {c["id"]: record(c, rc_new, new.cfg, new.merges, new.model_trained)
                    for c in new.citizens}),
        "cohort": (_cohort_records(old), _cohort_records(new))}
    # a mover: a citizen whose membership of the release changed, its tables' record or its
    # cohort record; it leaves and enters with both (as releases.flows counts it, and as the
    # cohort's link needs: a population's cohort part and table part are the same people)
    moved = {cid for before, after in records.values() for cid in before.keys() | after.keys()
             if before.get(cid) != after.get(cid)}
    for what, (before, after) in records.items():
        volumes[what] = [0.0, 0.0]
        for cid in before.keys() | after.keys():
            if cid not in moved:
                continue
            volumes[what][0] += cid in before
            volumes[what][1] += cid in after
            for nm in before.get(cid, []):
                flow_l[pos[nm]] += 1
            for nm in after.get(cid, []):
                flow_e[pos[nm]] += 1
    # counts of citizens outside the tables: their flows are the differences
    for nm in (("unreviewed",), ("in_scope_other",), ("uncertain",)):
        if nm in pos:
            i = pos[nm]
            flow_l[i] = max(x[i] - y[i], 0)
            flow_e[i] = max(y[i] - x[i], 0)
    truth = np.concatenate([x, y, flow_l, flow_e])
    eq_rows: list[dict[int, float]] = []
    eq_rhs: list[float] = []
    ub_rows: list[dict[int, float]] = []
    for nms, prog, part, own in ((n_old, p_old, "x", x), (n_new, p_new, "y", y),
                                 (n_flow, p_flow, "L", flow_l), (n_flow, p_flow, "E", flow_e)):
        eq_rows.extend(lift(nms, part, r) for r in prog.eq)
        eq_rhs.extend([0.0] * len(prog.eq))
        # the cohort's link: for a population whose own numbers keep it
        at = np.array([own[pos[nm]] for nm in nms])
        ub_rows.extend(lift(nms, part, r) for r in (*prog.le, *holding(prog.cond, at)))
    ub_rhs = [0.0] * len(ub_rows)
    for nm in names:  # y = x - L + E, number by number, for what both releases count
        if nm[0] == "release":
            continue
        i = pos[nm]
        eq_rows.append({blocks["y"] + i: 1.0, blocks["x"] + i: -1.0, blocks["L"] + i: 1.0,
                        blocks["E"] + i: -1.0})
        eq_rhs.append(0.0)
        # a leaver is one of the old population, an entrant one of the new
        ub_rows += [{blocks["L"] + i: 1.0, blocks["x"] + i: -1.0},
                    {blocks["E"] + i: 1.0, blocks["y"] + i: -1.0}]
        ub_rhs += [0.0, 0.0]
    # how many left and how many entered, in the tables and in the cohort
    for what, part in itertools.product(volumes, ("L", "E")):
        kind = "K" if what == "tables" else "cohort"
        idx = [pos[nm] for nm in names if nm[0] == kind and (kind == "K" or len(nm) == 2)]
        if idx:
            eq_rows.append({blocks[part] + i: 1.0 for i in idx})
            eq_rhs.append(volumes[what][part == "E"])
    hidden: list[tuple[str, Key, dict[int, float], int]] = []
    for kn, nms, prog, part in ((old, n_old, p_old, "x"), (new, n_new, p_new, "y")):
        for key, value in kn.shown.items():
            if key not in prog.expr or (key[0] == "headline" and key[1] == "m3_over_1y"
                                        and value is None):
                continue
            e = lift(nms, part, prog.expr[key])
            if value is None:
                ub_rows.append({v: -c for v, c in e.items()})
                ub_rhs.append(-1.0)
                hidden.append((kn.label, key, e, kn.truth[key]))
            else:
                eq_rows.append(e)
                eq_rhs.append(float(value))
    extra: list[tuple[Key, dict[int, float], int]] = []  # the changes' unpublished flows
    nv = 4 * n
    if changes is not None:
        nv, truth = _changes_program(old, new, changes, p_flow, n_flow, lift, truth, 4 * n,
                                     eq_rows, eq_rhs, ub_rows, ub_rhs, hidden, extra)
    a_eq, b_eq = _matrix(eq_rows, nv), np.array(eq_rhs)
    a_ub, b_ub = _matrix(ub_rows, nv), np.array(ub_rhs)
    assert np.allclose(a_eq @ truth, b_eq) and np.all(a_ub @ truth <= b_ub + 1e-9)
    cons = [LinearConstraint(a_eq, b_eq, b_eq), LinearConstraint(a_ub, -np.inf, b_ub)]

    def extreme(e: Mapping[int, float], sign: float) -> float:
        return _extreme(e, sign, nv, a_ub, b_ub, a_eq, b_eq, cons)[0]

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
    watched = [(key, lift(n_flow, part, e), what) for part, what in (("L", "left"),
                                                                    ("E", "entered"))
               for key, e in p_flow.expr.items()
               if not (key[1:] == (T, T) or key == ("headline", "grand", T))]
    watched += [(key, e, key[1]) for key, e, _ in extra]
    for key, le, what in watched:
        true_flow = sum(truth[v] * c for v, c in le.items())
        sig = (what, tuple(sorted(le.items())))
        if not 1 <= true_flow < min_cell or sig in seen:
            continue
        seen.add(sig)
        lo = -extreme(le, -1.0)
        if lo >= 1:  # proven: someone who left / entered is in it
            flows.append((new.label, key, what))
            if extreme(le, +1.0) == lo:
                fixed.append((new.label, key, what, int(lo)))
    return PairAttack(findings, flows, fixed)


def _changes_program(old: Knowledge, new: Knowledge, table: Mapping[str, Any], p_flow: Program,
                     n_flow: Sequence[tuple], lift: Callable[..., dict[int, float]],
                     truth: np.ndarray, start: int, eq_rows: list, eq_rhs: list, ub_rows: list,
                     ub_rhs: list, hidden: list, extra: list) -> tuple[int, np.ndarray]:
    """The profile changes table (see `attack_pair`) as variables from `start` on: the
    moves A → B (A ≠ B) and per profile e_A, l_A, s_A. Appends to the rows given; returns
    the number of variables and the truth with the new ones."""
    before = {c["id"]: c["profile"] for c in old.citizens}
    after = {c["id"]: c["profile"] for c in new.citizens}
    profiles = list(table["profiles"])
    moves: dict[tuple[str, str], int] = {}
    ent = dict.fromkeys(profiles, 0)
    lft = dict.fromkeys(profiles, 0)
    for cid in before.keys() | after.keys():
        a, b = before.get(cid), after.get(cid)
        if a is None:
            ent[b] += 1
        elif b is None:
            lft[a] += 1
        elif a != b:
            moves[(a, b)] = moves.get((a, b), 0) + 1
    # the table as published must count what the citizens give
    for i, a in enumerate(profiles):
        for j, b in enumerate(profiles):
            if a != b:
                assert table["moves"][i][j] == moves.get((a, b), 0), (a, b)
    assert (table["entered"], table["left"]) == (sum(ent.values()), sum(lft.values()))
    var: dict[tuple, int] = {}
    for nm in [*(("move", a, b) for a in profiles for b in profiles if a != b),
               *((kind, p) for p in profiles for kind in ("entered", "left", "same"))]:
        var[nm] = start + len(var)
    values = np.zeros(len(var))
    for (a, b), k in moves.items():
        values[var[("move", a, b)] - start] = k
    for p in profiles:
        values[var[("entered", p)] - start] = ent[p]
        values[var[("left", p)] - start] = lft[p]
    truth = np.concatenate([truth, values])
    for p in profiles:
        total = p_flow.expr[("profile_distribution", p, T)]
        out_l = lift(n_flow, "L", total)
        out_e = lift(n_flow, "E", total)
        same = sum(truth[v] * c for v, c in out_l.items()) - sum(
            moves.get((p, b), 0) for b in profiles) - lft[p]
        truth[var[("same", p)]] = same
        assert same >= 0 and sum(truth[v] * c for v, c in out_e.items()) - sum(
            moves.get((b, p), 0) for b in profiles) - ent[p] == same, p
        eq_rows.append(_add(out_l, {var[("move", p, b)]: 1.0 for b in profiles if b != p},
                            {var[("left", p)]: 1.0, var[("same", p)]: 1.0},
                            signs=(1, -1, -1)))
        eq_rows.append(_add(out_e, {var[("move", b, p)]: 1.0 for b in profiles if b != p},
                            {var[("entered", p)]: 1.0, var[("same", p)]: 1.0},
                            signs=(1, -1, -1)))
        eq_rhs += [0.0, 0.0]
        for kind in ("entered", "left"):
            extra.append((("changes", kind, p), {var[(kind, p)]: 1.0}, 0))
    cells = {**{(a, b): {var[("move", a, b)]: 1.0} for a in profiles for b in profiles
                if a != b},
             ("entered", T): {var[("entered", p)]: 1.0 for p in profiles},
             (T, "left"): {var[("left", p)]: 1.0 for p in profiles}}
    hide = {tuple(h) for h in table["hidden"]}
    for (r, c), e in cells.items():
        value = int(sum(truth[v] for v in e))
        if (r, c) in hide:
            assert value >= 1, (r, c)
            ub_rows.append({v: -1.0 for v in e})
            ub_rhs.append(-1.0)
            hidden.append((new.label, ("changes", r, c), e, value))
        else:
            eq_rows.append(e)
            eq_rhs.append(float(value))
    return start + len(var), truth
