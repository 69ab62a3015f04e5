"""Movement from one export (definitions §8, docs/definitions-movement.md): hand-made
histories with hand-counted statuses and spells at every boundary; the Wilson interval and
the Kaplan-Meier estimate against values computed by hand."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pytest

from pipeline import movement
from pipeline.config import Config
from pipeline.runner import run_stages

REF = dt.date(2024, 6, 30)  # cohort date 2023-06-30; horizons 07-30, 09-30, 12-30, 2024-06-30
START = "01-01-2020"
EPISODES = {
    # in M3 throughout
    "A": [(START, "", "kontanthjaelp", "3")],
    # M3 ends on the cohort date: in the cohort; off support afterwards
    "B": [(START, "30-06-2023", "kontanthjaelp", "3")],
    # M3 ends the day before the cohort date: not in the cohort
    "C": [(START, "29-06-2023", "kontanthjaelp", "3")],
    # to jobparat on the 1-month horizon itself
    "D": [(START, "29-07-2023", "kontanthjaelp", "3"), ("30-07-2023", "", "kontanthjaelp", "2")],
    # the M3 stretch's last day is the 1-month horizon; fleksjob from the next day
    "E": [(START, "30-07-2023", "kontanthjaelp", "3"), ("31-07-2023", "", "fleksjob", "")],
    # out of M3 for 19 days, a gap that the merge closes (at most course_gap_days): never
    # left
    "F": [(START, "31-08-2023", "kontanthjaelp", "3"), ("20-09-2023", "", "kontanthjaelp", "3")],
    # sickness benefit without a match group from 16 September
    "G": [(START, "15-09-2023", "kontanthjaelp", "3"), ("16-09-2023", "", "sygedagpenge", "")],
    # a short stretch ended 15 days before the reference date: censored, not left
    "H": [("10-06-2024", "15-06-2024", "kontanthjaelp", "3")],
    # a stretch that started the day before the survival window: no spell
    "I": [("30-06-2019", "31-12-2019", "kontanthjaelp", "3")],
    # one that started on the window's first day (2024-06-30 - 1826 days = 2019-07-01, two
    # leap days between): a spell, left
    "J": [("01-07-2019", "31-12-2019", "kontanthjaelp", "3")],
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    folder = tmp_path_factory.mktemp("movement")
    export = folder / "export"
    export.mkdir()
    (export / "citizens.csv").write_text(
        "citizen_id;birth_year;reviewed\n" + "".join(f"{c};1980;ja\n" for c in EPISODES),
        "utf-8")
    (export / "episodes.csv").write_text(
        "citizen_id;start_date;end_date;benefit;match_group\n" + "".join(
            f"{c};{s};{e};{b};{g}\n" for c, eps in EPISODES.items() for s, e, b, g in eps),
        "utf-8")
    run_stages(("ingest", "segment"), folder / "out", Config(reference_date=REF),
               input_dir=export)
    con = duckdb.connect(str(folder / "out" / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_cohort_statuses_at_every_horizon(warehouse):
    rows = warehouse.execute(
        "select citizen_id, horizon, day, status from marts.cohort_status order by all"
    ).fetchall()
    days = {"1m": dt.date(2023, 7, 30), "3m": dt.date(2023, 9, 30),
            "6m": dt.date(2023, 12, 30), "12m": REF}
    expected = {
        "A": ("m3", "m3", "m3", "m3"),
        "B": ("off_support",) * 4,
        "D": ("other_group",) * 4,
        "E": ("m3", "fleksjob_pension", "fleksjob_pension", "fleksjob_pension"),
        "F": ("m3", "m3", "m3", "m3"),
        "G": ("m3", "other_benefit", "other_benefit", "other_benefit"),
    }
    # the 12-month horizon falls on the reference date: no separate reference-date row
    assert rows == sorted(
        (c, h, days[h], st) for c, sts in expected.items() for h, st in zip(days, sts, strict=True))


def test_cohort_shares_by_profile_with_wilson_intervals(warehouse):
    cs = movement.cohort_status(warehouse)
    assert cs.cohort_date == dt.date(2023, 6, 30)
    assert cs.cohort == {"maybe_suitable": 6}  # no flags: all maybe suitable
    s = cs.shares[("maybe_suitable", "3m", "m3")]
    assert (s.n, s.of) == (2, 6)  # A and F
    assert cs.shares[("maybe_suitable", "1m", "m3")].n == 4  # A, E, F, G


def test_spells_censored_or_left_at_their_boundaries(warehouse):
    rows = warehouse.execute(
        "select citizen_id, first_day, last_day, duration_days, left_m3 from marts.m3_spells"
        " order by citizen_id").fetchall()
    d = dt.date
    start = d(2020, 1, 1)

    def days(a: dt.date, b: dt.date) -> int:
        return (b - a).days + 1

    assert rows == [
        ("A", start, REF, days(start, REF), False),
        ("B", start, d(2023, 6, 30), days(start, d(2023, 6, 30)), True),
        ("C", start, d(2023, 6, 29), days(start, d(2023, 6, 29)), True),
        ("D", start, d(2023, 7, 29), days(start, d(2023, 7, 29)), True),
        ("E", start, d(2023, 7, 30), days(start, d(2023, 7, 30)), True),
        ("F", start, REF, days(start, REF), False),  # the 19-day gap is merged
        ("G", start, d(2023, 9, 15), days(start, d(2023, 9, 15)), True),
        ("H", d(2024, 6, 10), d(2024, 6, 15), 6, False),  # 15 days out: not known to have left
        ("J", d(2019, 7, 1), d(2019, 12, 31), days(d(2019, 7, 1), d(2019, 12, 31)), True),
    ]


def test_wilson_interval_against_the_formula():
    n, k, z = 10, 3, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    s = movement.wilson(k, n)
    assert (s.n, s.of, s.share) == (3, 10, 0.3)
    assert s.low == pytest.approx(centre - half, abs=1e-12)
    assert s.high == pytest.approx(centre + half, abs=1e-12)


def test_kaplan_meier_against_a_hand_computed_curve():
    # left after 1, 2, 3, 5, 8 days; still in M3 (censored) after 4 and 6
    km = movement.kaplan_meier(np.array([1, 2, 3, 5, 8, 4, 6], dtype=float),
                               np.array([True] * 5 + [False] * 2))
    # at risk 7, 6, 5, then 3 at day 5 (4 censored), 1 at day 8 (6 censored)
    s1, s2, s3 = 6 / 7, 6 / 7 * 5 / 6, 6 / 7 * 5 / 6 * 4 / 5
    s5 = s3 * 2 / 3
    assert km.days == (1, 2, 3, 4, 5, 6, 8)
    assert km.still == pytest.approx((s1, s2, s3, s3, s5, s5, 0.0))
    assert (km.spells, km.left) == (7, 5)
    assert km.quartiles["q25"][0] == 2  # S(2) = 5/7 <= 0.75 first
    assert km.quartiles["median"][0] == 5  # S(5) = 8/21 <= 0.5 first
    assert km.quartiles["q75"][0] == 8
    assert km.after_1y[0] == 0.0


def test_a_curve_that_never_reaches_a_level_says_so():
    km = movement.kaplan_meier(np.array([400, 500, 600], dtype=float),
                               np.array([True, False, False]))
    assert km.quartiles["median"][0] is None and movement.fmt_days(None) == "not reached"
    assert km.after_1y[0] == 1.0  # nobody left in the first year
