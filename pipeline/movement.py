"""Movement from one export (definitions §8, docs/definitions-movement.md): the cohort's
status after 1, 3, 6 and 12 months by profile, with Wilson intervals, and the time to leave
M3 by profile, Kaplan–Meier with censoring.

Reads the segment stage's views `marts.cohort_status` and `marts.m3_spells` with the
profiles of `marts.citizens`; writes nothing. The counts are unsuppressed and internal: the
page publishes them only once the release handles their population (definitions §8.4).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from scipy import stats

from pipeline import warehouse
from pipeline.config import Config
from pipeline.labels import Labels
from pipeline.registry import Context
from pipeline.suppression import TOTAL, Relations, Table

STATUSES: tuple[str, ...] = ("m3", "other_group", "fleksjob_pension", "other_benefit",
                             "off_support")
HORIZONS: tuple[str, ...] = ("1m", "3m", "6m", "12m", "reference_date")


@dataclass(frozen=True)
class Share:
    n: int
    of: int
    share: float
    low: float
    high: float


def wilson(n: int, of: int) -> Share:
    """A share with its 95 % Wilson score interval (scipy)."""
    ci = stats.binomtest(n, of).proportion_ci(confidence_level=0.95, method="wilson")
    return Share(n, of, n / of, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class CohortStatus:
    cohort_date: dt.date
    horizons: tuple[tuple[str, dt.date], ...]
    cohort: dict[str, int]  # profile -> citizens in the cohort
    shares: dict[tuple[str, str, str], Share]  # (profile, horizon, status) -> share


def cohort_status(con: duckdb.DuckDBPyConnection) -> CohortStatus | None:
    """§8.2 by profile (the citizens of the cohort with a profile). None: no cohort."""
    rows = con.execute(
        """
        select c.profile, s.horizon, any_value(s.day), s.status, count(*), any_value(s.cohort_date)
        from marts.cohort_status as s
        join marts.citizens as c using (citizen_id)
        where c.profile is not null
        group by all
        """
    ).fetchall()
    if not rows:
        return None
    counts: dict[tuple[str, str, str], int] = {}
    days: dict[str, dt.date] = {}
    size: dict[tuple[str, str], int] = {}
    cohort_date = rows[0][5]
    for profile, horizon, day, status, n, _ in rows:
        counts[(profile, horizon, status)] = n
        days[horizon] = day
        size[(profile, horizon)] = size.get((profile, horizon), 0) + n
    # every horizon counts the whole cohort once
    cohort = {p: n for (p, h), n in size.items() if h == min(days, key=days.get)}
    shares = {
        (p, h, st): wilson(counts.get((p, h, st), 0), size[(p, h)])
        for (p, h) in size for st in STATUSES
    }
    horizons = tuple((h, days[h]) for h in HORIZONS if h in days)
    return CohortStatus(cohort_date, horizons, dict(sorted(cohort.items())), shares)


@dataclass(frozen=True)
class Survival:
    """Kaplan–Meier of the time to leave M3 for one profile (days)."""

    spells: int
    left: int
    # the share still in M3 after 365 days, with its 95 % interval (log-log)
    after_1y: tuple[float, float, float]
    # quartiles of the time to leave (25 %, 50 %, 75 % left): (estimate, low, high); None
    # where the curve (or its bound) never reaches the level
    quartiles: dict[str, tuple[float | None, float | None, float | None]]
    days: tuple[float, ...]  # the curve's steps
    still: tuple[float, ...]


def _crossing(times: np.ndarray, surv: np.ndarray, level: float) -> float | None:
    """The first time the survival function is at or below `level` (a quantile of the time
    to leave); None if it never gets there."""
    below = np.nonzero(surv <= level + 1e-12)[0]
    return float(times[below[0]]) if below.size else None


def kaplan_meier(durations: np.ndarray, left: np.ndarray) -> Survival:
    data = stats.CensoredData(uncensored=durations[left], right=durations[~left])
    res = stats.ecdf(data).sf
    with warnings.catch_warnings():  # undefined at the last steps: a feature, said scipy
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = res.confidence_interval(0.95, method="log-log")
    times = res.quantiles
    surv = res.probabilities
    # log-log is undefined where the estimate is 1 or 0 (no event yet, none left): there
    # the interval is the estimate itself
    low = np.where(np.isnan(ci.low.probabilities), surv, ci.low.probabilities)
    high = np.where(np.isnan(ci.high.probabilities), surv, ci.high.probabilities)

    def at(t: float, values: np.ndarray, start: float) -> float:
        idx = np.searchsorted(times, t, side="right") - 1
        return start if idx < 0 else float(values[idx])

    quartiles = {
        name: (_crossing(times, surv, level),
               _crossing(times, low, level),  # the lower band reaches a level first
               _crossing(times, high, level))
        for name, level in (("q25", 0.75), ("median", 0.5), ("q75", 0.25))
    }
    return Survival(
        spells=int(durations.size), left=int(left.sum()),
        after_1y=(at(365, surv, 1.0), at(365, low, 1.0), at(365, high, 1.0)),
        quartiles=quartiles, days=tuple(float(t) for t in times),
        still=tuple(float(s) for s in surv),
    )


def survival(con: duckdb.DuckDBPyConnection) -> dict[str, Survival]:
    """§8.3 per profile (citizens with a profile and a spell in the window)."""
    rows = con.execute(
        """
        select c.profile, list(s.duration_days order by s.citizen_id),
            list(s.left_m3 order by s.citizen_id)
        from marts.m3_spells as s
        join marts.citizens as c using (citizen_id)
        where c.profile is not null
        group by all order by all
        """
    ).fetchall()
    return {
        profile: kaplan_meier(np.asarray(d, dtype=float), np.asarray(e, dtype=bool))
        for profile, d, e in rows
    }


def fmt_days(v: float | None) -> str:
    return "not reached" if v is None or math.isnan(v) else f"{v:,.0f}"


# ---------------------------------------------------------------------------------------
# Publication (definitions §8.5, docs/disclosure.md §7). The cohort table is a table of the
# release: its numbers join the one suppression pattern and audit (`cohort_relations`, the
# release's hook). The time-to-leave curve is no count: it is published on a monthly grid,
# only while enough citizens are followed, and only where the leavers since the point
# before are none or at least min_cell (`published_curve`).

GRID_MONTHS = 60  # the survival window's five years
CURVE_MONTHS = (6, 12, 24)  # the summary's "still in M3 after"


def month_day(m: int) -> int:
    """The day of the grid's month m: m average months (6 → 183, 12 → 365, 24 → 730)."""
    return round(m * 365.25 / 12)


def min_at_risk(cfg: Config) -> int:
    """The fewest citizens still followed for a point of the curve to be published (config
    `survival_min_at_risk`; 0 = twice min_cell), at least 1."""
    return max(1, cfg.survival_min_at_risk or 2 * cfg.min_cell)


def cohort_relations(con: duckdb.DuckDBPyConnection, tables: Sequence[Table],
                     known: Relations | None, cfg: Config,
                     merges: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
                     ) -> Relations:
    """`known` with the cohort table's numbers as numbers of the release (`Relations.cells`:
    its population is not the tables', so it is no `Table` sharing their grand total) and
    what ties them: per horizon, each profile's statuses add up to its cohort and each
    status's profiles to its total; a profile's cohort is the same at every horizon; the
    cohort's citizens in M3 on the reference date, per profile, are at most the tables'
    profile total and at most its citizens with more than a year in M3 (each added only
    when it holds: a relation the data break is no knowledge; one they keep makes the
    attacker stronger, never weaker). `merges`: the merged columns of coarsened tables
    (None: those of marts.release_cells; the coarsening passes the ones it is trying)."""
    known = known or Relations()
    rows = con.execute(
        "select horizon, day, profile, status, n, cell_table, cell_row, cell_col"
        " from marts.cohort_cells").fetchall()
    if not rows:
        return known
    key = {(h, p, s): (t, r, c) for h, _, p, s, _, t, r, c in rows}
    cells = {(t, r, c): int(n) for _, _, _, _, n, t, r, c in rows}
    horizons = sorted({(d, h) for h, d, *_ in rows})
    profiles = sorted({p for _, _, p, *_ in rows} - {TOTAL})
    statuses = list(STATUSES)
    equal: list[dict] = []
    for _, h in horizons:
        for p in (*profiles, TOTAL):
            equal.append({**{key[(h, p, s)]: 1 for s in statuses}, key[(h, p, TOTAL)]: -1})
        for s in (*statuses, TOTAL):
            equal.append({**{key[(h, p, s)]: 1 for p in profiles}, key[(h, TOTAL, s)]: -1})
    # a profile's cohort is the same number at every horizon, printed at each: one printing
    # shown fixes the others, so the pattern hides all or none of them, and hiding it costs
    # what it hides (every share of the profile's rows), not one number's worth
    for (_, h), (_, h2) in itertools.pairwise(horizons):
        for p in (*profiles, TOTAL):
            equal.append({key[(h, p, TOTAL)]: 1, key[(h2, p, TOTAL)]: -1})
    at_most: list[dict] = []
    ref = cfg.resolved().reference_date
    on_ref = [h for d, h in horizons if d == ref]
    by_id = {t.id: t for t in tables}
    m3 = by_id.get("m3_duration")
    # per m3_duration row (and its total row): the citizens with more than a year in M3,
    # the columns within the bands 1_to_2y and 2y_plus; empty when no column is
    long_: dict[str, int] = {}
    if m3 is not None:
        if merges is None:
            from pipeline.coarsening import release_merges

            merges = release_merges(con)
        merged = merges.get(m3.id, {})
        over = [c for c in m3.cols if set(merged.get(c, (c,))) <= {"1_to_2y", "2y_plus"}]
        if over:
            idx = [m3.cols.index(c) for c in over]
            long_ = {r: int(m3.counts[i, idx].sum()) for i, r in enumerate((*m3.rows, TOTAL))}
    if on_ref and "profile_distribution" in by_id:
        (h,) = on_ref
        dist = by_id["profile_distribution"]
        for p in profiles:
            if p not in dist.rows:
                continue
            still = cells[key[(h, p, "m3")]]
            total = int(dist.counts[dist.rows.index(p), -1])
            if still <= total:
                at_most.append({key[(h, p, "m3")]: 1, (dist.id, p, TOTAL): -1})
            if p in long_ and still <= long_[p]:
                at_most.append({key[(h, p, "m3")]: 1, **{(m3.id, p, c): -1 for c in over}})
    # and the other way (found by the independent oracle, tests/test_oracle_page.py): a
    # tabulated citizen with more than a year in M3 was in M3 on the cohort date and at every
    # horizon since, so the tables' "more than a year" is at most the cohort's `m3` at each
    # horizon; but for a stretch begun between the cohort date and 365 days before the
    # reference date (calendar months against days), so again only where the data keep it.
    # At 150 citizens (seed 3) it gave fleksjob_pension = 1 at 6 and 12 months, a primary.
    for _, h in horizons:
        for p in (*profiles, TOTAL):
            if p in long_ and (h, p, "m3") in key and long_[p] <= cells[key[(h, p, "m3")]]:
                at_most.append({**{(m3.id, p, c): 1 for c in over}, key[(h, p, "m3")]: -1})
    return Relations(known.unpublished, (*known.equal, *equal), (*known.at_most, *at_most),
                     {**known.cells, **cells})


def published_curve(durations: np.ndarray, left: np.ndarray, at_risk: int,
                    min_cell: int) -> list[tuple[int, int, float, float, float]]:
    """The Kaplan–Meier curve as published: (month, day, still in M3, low, high) at month 0
    and at the grid's months while at least `at_risk` citizens are still followed after the
    day; a month whose leavers since the last point shown number 1 to min_cell − 1 is left
    out (the next point shown spans both). Empty: too few spells to show any month."""
    if durations.size < at_risk or durations.size == 0:
        return []
    data = stats.CensoredData(uncensored=durations[left], right=durations[~left])
    sf = stats.ecdf(data).sf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = sf.confidence_interval(0.95, method="log-log")
    out = [(0, 0, 1.0, 1.0, 1.0)]
    last = 0
    for m in range(1, GRID_MONTHS + 1):
        d = month_day(m)
        if int((durations > d).sum()) < at_risk:
            break
        leavers = int(((durations > last) & (durations <= d) & left).sum())
        if 0 < leavers < min_cell:
            continue
        s = float(sf.evaluate(d))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = float(ci.low.evaluate(d)), float(ci.high.evaluate(d))
        # log-log is undefined where nobody has left yet: the interval is the estimate
        out.append((m, d, s, s if math.isnan(lo) else lo, s if math.isnan(hi) else hi))
        last = d
    return out if len(out) > 1 else []


_CURVE_SCHEMA = pa.schema([("profile", pa.string()), ("month", pa.int32()),
                           ("day", pa.int32()), ("still_in_m3", pa.float64()),
                           ("low", pa.float64()), ("high", pa.float64())])


def survival_points_model(con: duckdb.DuckDBPyConnection, ctx: Context) -> pa.Table:
    """marts.survival_points (a Python model of the registry): the published time-to-leave
    curve per profile and for every profile together (`total`), `published_curve` of the
    spells of marts.m3_spells. A profile without a row is not shown (too few spells)."""
    cfg = ctx.cfg
    # the spells as three numeric columns, a profile by its number (not a Python list per
    # profile, nor a string per spell: at 1,000,000 citizens those took 2-3 s); the curve
    # does not depend on the spells' order
    (profiles,) = con.execute(
        "select coalesce(list(distinct profile order by profile), []) from marts.citizens"
        " where profile is not null").fetchone()
    spells = con.execute(
        """
        select list_position($profiles, c.profile)::integer as k, s.duration_days, s.left_m3
        from marts.m3_spells as s
        join marts.citizens as c using (citizen_id)
        where c.profile is not null
        """, {"profiles": profiles}
    ).fetchnumpy()
    k = np.asarray(spells["k"])
    days = np.asarray(spells["duration_days"], dtype=float)
    left = np.asarray(spells["left_m3"], dtype=bool)
    cols: dict[str, list] = {f.name: [] for f in _CURVE_SCHEMA}
    threshold = min_at_risk(cfg)
    present = {profiles[i - 1] for i in np.unique(k)}
    for group in sorted({*present, TOTAL} if k.size else ()):
        mask = (np.ones(k.size, dtype=bool) if group == TOTAL
                else k == profiles.index(group) + 1)
        points = published_curve(days[mask], left[mask], threshold, cfg.min_cell)
        for m, day, s, lo, hi in points:
            for name, v in zip(cols, (group, m, day, s, lo, hi), strict=True):
                cols[name].append(v)
    return pa.table(cols, schema=_CURVE_SCHEMA)


@dataclass(frozen=True)
class CohortCell:
    """One published cell of the cohort table: `n` None when hidden; the share of the
    profile's cohort and its 95 % Wilson interval only when the count and the cohort are
    shown."""

    n: int | None
    hidden: bool
    share: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PublishedCohort:
    cohort_date: dt.date
    horizons: tuple[tuple[str, dt.date], ...]
    profiles: tuple[str, ...]  # depth order, then `total`
    cells: Mapping[tuple[str, str, str], CohortCell]  # (horizon, profile, status or total)

    def cell(self, horizon: str, profile: str, status: str) -> CohortCell:
        return self.cells[(horizon, profile, status)]


@dataclass(frozen=True)
class Quantile:
    """A quantile of the time to leave in months, from the published points: the first
    month shown where the curve (its lower, upper bound) is at or below the level; None:
    not within the months shown."""

    months: int | None
    low: int | None
    high: int | None


@dataclass(frozen=True)
class Curve:
    profile: str
    points: tuple[tuple[int, int, float, float, float], ...]  # month, day, S, low, high

    @property
    def last_month(self) -> int:
        return self.points[-1][0]

    def quantile(self, level: float) -> Quantile:
        def first(i: int) -> int | None:
            return next((p[0] for p in self.points if p[i] <= level + 1e-12), None)

        # the upper bound reaches a level last: it gives the interval's upper end
        return Quantile(first(2), first(3), first(4))

    def at(self, month: int) -> tuple[float, float, float] | None:
        """Still in M3 after `month` months, with its interval; None: not published."""
        return next((p[2:] for p in self.points if p[0] == month), None)


@dataclass(frozen=True)
class PublishedMovement:
    cohort: PublishedCohort | None
    curves: tuple[Curve, ...]  # depth order, then `total`
    dropped: tuple[str, ...]  # profiles without a curve (too few spells)
    min_at_risk: int


def published(con: duckdb.DuckDBPyConnection, cfg: Config) -> PublishedMovement:
    """What the report publishes of §8: marts.published_cohort and marts.survival_points."""
    cfg = cfg.resolved()
    order = [c for (c,) in con.execute(
        "select code from marts.profiles order by depth, precedence").fetchall()]
    rows = warehouse.records(con, "select * from marts.published_cohort")
    cohort = None
    if rows:
        cells = {}
        for r in rows:
            share = r["share_published"]
            low = high = None
            if share is not None and r["status"] != TOTAL:
                s = wilson(int(r["n"]), int(r["cohort_n"]))
                low, high = s.low, s.high
            cells[(r["horizon"], r["profile"], r["status"])] = CohortCell(
                r["n_published"], bool(r["hidden"]), share, low, high)
        horizons = tuple(dict.fromkeys((r["horizon"], r["day"]) for r in rows))
        (cohort_date,) = con.execute(
            "select any_value(cohort_date) from marts.cohort_status").fetchone()
        cohort = PublishedCohort(cohort_date, horizons, (*order, TOTAL), cells)
    points: dict[str, list] = {}
    for p, m, d, s, lo, hi in con.execute(
            "select * from marts.survival_points order by profile, month").fetchall():
        points.setdefault(p, []).append((m, d, s, lo, hi))
    curves = tuple(Curve(p, tuple(points[p])) for p in (*order, TOTAL) if p in points)
    return PublishedMovement(cohort, curves, tuple(p for p in order if p not in points),
                             min_at_risk(cfg))


# ---------------------------------------------------------------------------------------
# The words the page, the workbook and the CSVs share (labels.toml [movement])


def horizon_months(horizon: str) -> int | None:
    """1, 3, 6, 12 for "1m" … "12m"; None for the reference date."""
    return int(horizon[:-1]) if horizon.endswith("m") and horizon[:-1].isdigit() else None


def cohort_title(lb: Labels, cohort: PublishedCohort, horizon: str) -> str:
    months = horizon_months(horizon)
    if months is None:
        return lb.section("movement", "cohort_title_ref", date=lb.date(cohort.cohort_date))
    return lb.section("movement", "cohort_title", date=lb.date(cohort.cohort_date),
                      after=after(lb, months))


def cohort_reading(lb: Labels, horizon: str) -> str:
    months = horizon_months(horizon)
    if months is None:
        return lb.section("movement", "cohort_reading_ref")
    return lb.section("movement", "cohort_reading", after=after(lb, months))


def after(lb: Labels, months: int | None) -> str:
    """"1 måned", "3 måneder"; "–" for the reference date's horizon."""
    if months is None:
        return "–"
    return lb.section("movement", "month_one" if months == 1 else "month_many", months=months)


def interval(lb: Labels, low: float | None, high: float | None) -> str:
    """A 95 % interval of a share in whole percentages, "(22–50 %)"; "" when not shown."""
    if low is None or high is None:
        return ""
    unit = " %" if lb.lang == "da" else "%"
    return f"({low * 100:.0f}–{high * 100:.0f}{unit})"


def months_text(lb: Labels, q: Quantile, last: int) -> str:
    """A quantile in months with its interval: "14 (11–19)", "> 24" when not reached."""
    def one(v: int | None) -> str:
        return lb.section("movement", "not_reached", months=last) if v is None else str(v)

    if q.months is None:
        return one(None)
    if q.high is None:  # the interval's upper end lies beyond the months shown
        return lb.section("movement", "open_interval", months=q.months, low=one(q.low),
                          last=last)
    return f"{q.months} ({one(q.low)}–{one(q.high)})"


def summary_rows(lb: Labels, moves: PublishedMovement) -> tuple[list[str], list[list[str]]]:
    """The time-to-leave summary as text: its column headings and one row per curve
    (profile label, the quartiles, still in M3 after 6/12/24 months, the last month shown)."""
    head = [lb.text("profile"), lb.section("movement", "col_q25"),
            lb.section("movement", "col_median"), lb.section("movement", "col_q75"),
            *(lb.section("movement", "col_after", months=m) for m in CURVE_MONTHS),
            lb.section("movement", "col_shown_to")]
    rows = []
    for c in moves.curves:
        label = (lb.section("movement", "all_profiles") if c.profile == TOTAL
                 else lb.row(c.profile))
        after = []
        for m in CURVE_MONTHS:
            v = c.at(m)
            after.append(lb.section("movement", "not_shown") if v is None
                         else f"{lb.share(v[0])} {interval(lb, v[1], v[2])}")
        rows.append([label, *(months_text(lb, c.quantile(level), c.last_month)
                              for level in (0.75, 0.5, 0.25)), *after, str(c.last_month)])
    return head, rows


def status_label(lb: Labels, status: str) -> str:
    return lb.section("movement", f"status_{status}")


def profile_label(lb: Labels, profile: str) -> str:
    return lb.row(profile)
