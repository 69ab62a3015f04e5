"""The evolving demo (issue 16, item 3): deterministic per seed, calibrated on the seeds
(about 30 % out of M3 after a year, as Odense's Camp 100), and its nights give a history
whose rows grow by one night's citizens per night."""

from __future__ import annotations

import datetime as dt

import duckdb
from conftest import snapshot

from pipeline import history
from pipeline.config import Config
from pipeline.demo_series import write_series
from pipeline.runner import run_stages

LAST = dt.date(2024, 6, 30)


def test_the_same_seed_writes_the_same_series_byte_for_byte(tmp_path):
    a = write_series(tmp_path / "a", 300, 5, LAST, 3, 30)
    b = write_series(tmp_path / "b", 300, 5, LAST, 3, 30)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert [n.reference_date for n in a] == [dt.date(2024, 5, 1), dt.date(2024, 5, 31), LAST]
    assert a == [type(n)(n.reference_date, tmp_path / "a" / n.reference_date.isoformat(),
                         n.in_m3, n.left, n.entered, n.reviewed, n.diagnosed) for n in b]


def test_about_30_percent_of_a_cohort_leave_m3_within_a_year(tmp_path):
    """The citizens in M3 on the first night, 12 monthly steps later: the share no longer
    in M3 follows the Odense figure (about 30 %, a 95 % interval of 25-35 %)."""
    nights = write_series(tmp_path, 3000, 11, LAST, 13, 30)
    first, last = nights[0], nights[-1]
    con = duckdb.connect()
    in_m3 = """
        select distinct citizen_id from (
            select citizen_id, match_group,
                   row_number() over (partition by citizen_id order by start_date desc) as r
            from read_csv($f, delim=';', dateformat='%d-%m-%Y', all_varchar=false)
            where start_date <= $d and (end_date is null or end_date >= $d)
        ) where r = 1 and match_group in ('3', 'aktivitetsparat')"""
    cohort = {r[0] for r in con.execute(in_m3, {"f": str(first.folder / "episodes.csv"),
                                                 "d": first.reference_date}).fetchall()}
    still = {r[0] for r in con.execute(in_m3, {"f": str(last.folder / "episodes.csv"),
                                                "d": last.reference_date}).fetchall()}
    left = 1 - len(cohort & still) / len(cohort)
    assert 0.25 <= left <= 0.35, left
    assert sum(n.left for n in nights) > 0 and sum(n.entered for n in nights) > 0


def test_history_rows_grow_by_one_night_of_citizens_per_night(tmp_path):
    nights = write_series(tmp_path / "series", 150, 3, LAST, 4, 30)
    out = tmp_path / "out"
    sizes = []
    for n in nights:
        run_stages(("ingest", "segment"), out, Config(reference_date=n.reference_date),
                   input_dir=n.folder)
        citizens = sum(1 for _ in open(n.folder / "citizens.csv", encoding="cp1252")) - 1
        sizes.append(citizens)
    con = history.connect(history.folder(Config(), out))
    per_night = con.execute("select count(*) from history.nights group by reference_date "
                            "order by reference_date").fetchall()
    assert [r[0] for r in per_night] == sizes
    assert len(list((tmp_path / "out.history").glob("*.parquet"))) == len(nights)
