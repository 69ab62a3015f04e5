"""Movement from one export (definitions §8, docs/definitions-movement.md): the cohort's
status after 1, 3, 6 and 12 months by profile, with Wilson intervals, and the time to leave
M3 by profile, Kaplan–Meier with censoring.

Reads the segment stage's views `marts.cohort_status` and `marts.m3_spells` with the
profiles of `marts.citizens`; writes nothing. The counts are unsuppressed and internal: the
page publishes them only once the release handles their population (definitions §8.4).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass

import duckdb
import numpy as np
from scipy import stats

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
