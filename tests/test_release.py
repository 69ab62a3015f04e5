"""The eight tables of definitions §5 on a hand-made data set: every expected count and share is
written by hand (with the citizens that make it), never computed. Suppression is off
(min_cell = 0): it is tested in test_suppression.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest
from conftest import StagingFactory

from pipeline.config import Config
from pipeline.release import publish
from pipeline.rules import load_rules
from pipeline.segment import segment
from pipeline.vocabulary import TABLE_IDS

REF = dt.date(2024, 6, 30)
CFG = Config(reference_date=REF, min_cell=0)
D = dt.date


def ep(start: dt.date, end: dt.date | None = None, benefit: str = "kontanthjaelp", group=None):
    return {"start_date": start, "end_date": end, "benefit": benefit, "match_group": group}


# Histories: (course history class §2, M3 duration band §3) on 2024-06-30.
LONG = [ep(D(2020, 1, 1), group="3")]  # one course of 1,643 days; M3 1,643 days: long, 2y_plus
SHORT_1Y = [ep(D(2023, 1, 1), group="3")]  # 365 + 182 = 547 days: short, 1_to_2y
SHORT = [ep(D(2024, 1, 1), group="3")]  # 182 days: short, under_1y
# two courses (3 years apart); M3 only in the second: several, under_1y
SEVERAL = [ep(D(2020, 1, 1), D(2020, 12, 31), group="2"), ep(D(2024, 1, 1), group="3")]
# the fleksjob year splits the support into two courses but not the M3 stretch: several, 2y_plus
SEVERAL_2Y = [
    ep(D(2021, 1, 1), D(2021, 12, 31), group="3"),
    ep(D(2022, 1, 1), D(2022, 12, 31), benefit="fleksjob", group="3"),
    ep(D(2023, 1, 1), group="3"),
]
FLEKS = [ep(D(2023, 1, 1), benefit="fleksjob", group="3")]  # no support: no_history, 1_to_2y
SHORT_NOT_M3 = [ep(D(2023, 7, 1), group="2")]  # short; never in an M3 group: not_in_m3
NONE: list[dict] = []  # no_history, not_in_m3

# id, birth year (age on 2024), match group cell, history, profile flags, focus_*,
# motivation_*, barrier_*.  Profile (definitions §1) and base profile in the comments.
CITIZENS: list[tuple[str, int, str | None, list[dict], str, str, str, str]] = [
    # maybe_suitable (5), base maybe_suitable
    ("m1", 2001, "3", SHORT, "", "ordinary_work upskilling", "work education", "economy"),
    ("m2", 1997, "3", SHORT, "", "ordinary_work", "work", "economy transport"),
    ("m3", 1990, "3", SHORT_1Y, "", "ordinary_work", "work", ""),
    ("m4", 1985, "aktivitetsparat", SEVERAL_2Y, "", "upskilling", "", ""),
    ("m5", 1980, "3", LONG, "", "", "", ""),
    # physically_ill (2), base physically_ill
    ("p1", 1975, "3", NONE, "physical_illness", "physical_treatment", "overcomes_barriers",
     "transport"),
    ("p2", 1965, "3", LONG, "physical_illness", "physical_treatment pension_case", "",
     "isolation"),
    # substance_misuse (3): s1, s3 base maybe_suitable; s2 base physically_ill
    ("s1", 1995, "3", FLEKS, "alcohol soft_drugs hard_drugs", "misuse_treatment", "none",
     "housing economy isolation"),
    ("s2", 1994, "3", SEVERAL_2Y, "hard_drugs physical_illness",
     "misuse_treatment activation", "none", "housing"),
    ("s3", 1984, "aktivitetsparat", SHORT_NOT_M3, "alcohol", "", "education", ""),
    # diffuse_psychiatric (1, over misuse), base diffuse_psychiatric
    ("f1", 1970, "3", SEVERAL, "psych_undiagnosed soft_drugs hard_drugs", "psych_treatment rest",
     "", "housing isolation"),
    # diagnosed: nobody in scope (o1, o2 would be, if they were in scope)
    # dual_diagnosis (4), base diagnosed
    ("d1", 1988, "3", LONG, "psych_diagnosis alcohol", "psych_treatment misuse_treatment",
     "work", "housing"),
    ("d2", 1980, "3", SEVERAL_2Y, "psych_diagnosis alcohol soft_drugs", "misuse_treatment",
     "none", "housing children isolation"),
    ("d3", 1976, "3", SHORT, "psych_diagnosis psych_undiagnosed alcohol", "rest", "", ""),
    ("d4", 1974, "3", SHORT_1Y, "psych_diagnosis hard_drugs", "support_scheme", "", ""),
    # kept out of every table. Each would show: the diagnosed row (o1, o2), age 60_plus,
    # focus_pension_case, motivation_pension, barrier_language.
    # u1: in scope but unreviewed (§1)
    ("u1", 1960, "3", NONE, "psych_diagnosis", "pension_case", "pension", "language"),
    # o1: the cell says match group 2 (it wins over the M3 episode): out of scope
    ("o1", 1960, "2", LONG, "psych_diagnosis", "pension_case", "pension", "language"),
    # o2: no cell, and the M3 episode ended the day before: no group, out of scope (§3)
    ("o2", 1960, None, [ep(D(2023, 1, 1), D(2024, 6, 29), group="3")], "psych_diagnosis",
     "pension_case", "pension", "language"),
]  # fmt: skip
UNREVIEWED = {"u1"}


def dataset(citizens=CITIZENS) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Staging rows (citizens, episodes) for `load_staging`."""
    rows, episodes = [], []
    for cid, birth_year, group, history, flags, focus, motivation, barriers in citizens:
        row: dict[str, Any] = {
            "citizen_id": cid, "birth_year": birth_year, "match_group": group,
            "reviewed": cid not in UNREVIEWED,
        }  # fmt: skip
        row.update(dict.fromkeys(flags.split(), True))
        for prefix, names in (("focus_", focus), ("motivation_", motivation),
                              ("barrier_", barriers)):  # fmt: skip
            row.update(dict.fromkeys((prefix + n for n in names.split()), True))
        rows.append(row)
        episodes += [{"citizen_id": cid, **e} for e in history]
    return rows, episodes


def build(staging: StagingFactory, citizens=CITIZENS) -> duckdb.DuckDBPyConnection:
    con = staging(*dataset(citizens))
    rules = load_rules()
    segment(con, CFG, rules)
    publish(con, CFG)
    return con


@pytest.fixture(scope="module")
def con(staging: StagingFactory) -> duckdb.DuckDBPyConnection:
    return build(staging)


def cells(con: duckdb.DuckDBPyConnection, table_id: str, value: str = "n") -> dict:
    """{row: {col: n or share}} of one table, in display order."""
    out: dict[str, dict[str, Any]] = {}
    for row, col, v in con.execute(
        f'select "row", col, {value} from marts.table_cells where table_id = ?'
        " order by row_order, col_order",
        [table_id],
    ).fetchall():
        out.setdefault(row, {})[col] = v
    return out


def grid(cols: tuple[str, ...], rows: dict[str, tuple[int, ...]]) -> dict[str, dict[str, int]]:
    return {r: dict(zip(cols, values, strict=True)) for r, values in rows.items()}


PROFILE_ROWS = ("maybe_suitable", "physically_ill", "substance_misuse", "diffuse_psychiatric",
                "diagnosed", "dual_diagnosis", "total")  # fmt: skip

# Expected counts, rows in depth order (the sea figure), the total column last.
EXPECTED: dict[str, dict[str, dict[str, int]]] = {
    "profile_distribution": grid(("total",), {
        "maybe_suitable": (5,),
        "physically_ill": (2,),
        "substance_misuse": (3,),
        "diffuse_psychiatric": (1,),
        "diagnosed": (0,),  # o1, o2 (out of scope) and u1 (unreviewed) are not counted
        "dual_diagnosis": (4,),
        "total": (15,),  # 18 citizens - u1 - o1 - o2
    }),
    # long_continuous | short_continuous | several_separate | no_history (non-zero: p1, s1)
    "course_history": grid(
        ("long_continuous", "short_continuous", "several_separate", "no_history", "total"), {
            "maybe_suitable": (1, 3, 1, 0, 5),  # m5 | m1 m2 m3 | m4
            "physically_ill": (1, 0, 0, 1, 2),  # p2 | | | p1
            "substance_misuse": (0, 1, 1, 1, 3),  # | s3 | s2 | s1 (fleksjob is no support)
            "diffuse_psychiatric": (0, 0, 1, 0, 1),  # f1 several
            "diagnosed": (0, 0, 0, 0, 0),
            "dual_diagnosis": (1, 2, 1, 0, 4),  # d1 | d3 d4 | d2
            "total": (3, 6, 4, 2, 15),
        }),
    # ages 2024 - birth year; 60_plus is zero but shown (only u1, o1, o2 are 64)
    "age_groups": grid(
        ("under_25", "25_29", "30_39", "40_49", "50_59", "60_plus", "total"), {
            "maybe_suitable": (1, 1, 2, 1, 0, 0, 5),  # m1 23 | m2 27 | m3 34, m4 39 | m5 44
            "physically_ill": (0, 0, 0, 1, 1, 0, 2),  # p1 49 | p2 59
            "substance_misuse": (0, 1, 1, 1, 0, 0, 3),  # s1 29 | s2 30 | s3 40
            "diffuse_psychiatric": (0, 0, 0, 0, 1, 0, 1),  # f1 54
            "diagnosed": (0, 0, 0, 0, 0, 0, 0),
            "dual_diagnosis": (0, 0, 1, 2, 1, 0, 4),  # d1 36 | d2 44, d3 48 | d4 50
            "total": (1, 2, 4, 5, 3, 0, 15),
        }),
    # multi-response: the total column counts citizens (m1 ticks two columns, row total 5)
    "case_focus": grid(
        ("focus_ordinary_work", "focus_upskilling", "focus_support_scheme", "focus_activation",
         "focus_physical_treatment", "focus_psych_treatment", "focus_misuse_treatment",
         "focus_rest", "focus_pension_case", "total"), {
            # ordinary m1 m2 m3, upskilling m1 m4; m5 ticks nothing
            "maybe_suitable": (3, 2, 0, 0, 0, 0, 0, 0, 0, 5),
            "physically_ill": (0, 0, 0, 0, 2, 0, 0, 0, 1, 2),  # physical p1 p2, pension p2
            "substance_misuse": (0, 0, 0, 1, 0, 0, 2, 0, 0, 3),  # activation s2, misuse s1 s2
            "diffuse_psychiatric": (0, 0, 0, 0, 0, 1, 0, 1, 0, 1),  # f1 ticks two
            "diagnosed": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            # support d4, psych d1, misuse d1 d2, rest d3
            "dual_diagnosis": (0, 0, 1, 0, 0, 1, 2, 1, 0, 4),
            "total": (3, 2, 1, 1, 2, 2, 4, 2, 1, 15),  # 18 ticks, 15 citizens
        }),
    # rows by base profile (§1): the misuse rules left out, so substance_misuse and
    # dual_diagnosis citizens are counted under their base profile
    "misuse": grid(("alcohol", "soft_drugs", "hard_drugs", "misuse_no", "total"), {
        # m1-m5 no misuse; s1 alcohol + soft + hard; s3 alcohol
        "maybe_suitable": (2, 1, 1, 5, 7),
        "physically_ill": (0, 0, 1, 2, 3),  # p1 p2 no misuse; s2 hard
        "diffuse_psychiatric": (0, 1, 1, 0, 1),  # f1 soft + hard: one citizen
        # alcohol d1 d2 d3, soft d2, hard d4 (the profile row `diagnosed` is empty)
        "diagnosed": (3, 1, 1, 0, 4),
        "total": (5, 3, 4, 7, 15),
    }),
    # not_stated = no motivation flag set
    "motivation": grid(
        ("motivation_overcomes_barriers", "motivation_work", "motivation_education",
         "motivation_none", "motivation_pension", "motivation_not_stated", "total"), {
            # work m1 m2 m3, education m1 (m1 ticks two); not stated m4 m5
            "maybe_suitable": (0, 3, 1, 0, 0, 2, 5),
            "physically_ill": (1, 0, 0, 0, 0, 1, 2),  # p1 | not stated p2
            "substance_misuse": (0, 0, 1, 2, 0, 0, 3),  # s3 | s1 s2
            "diffuse_psychiatric": (0, 0, 0, 0, 0, 1, 1),  # f1 not stated
            "diagnosed": (0, 0, 0, 0, 0, 0, 0),
            "dual_diagnosis": (0, 1, 0, 1, 0, 2, 4),  # d1 | d2 | not stated d3 d4
            "total": (1, 4, 2, 3, 0, 6, 15),  # pension: only u1, o1, o2
        }),
    "m3_duration": grid(("under_1y", "1_to_2y", "2y_plus", "not_in_m3", "total"), {
        "maybe_suitable": (2, 1, 2, 0, 5),  # m1 m2 | m3 | m4 m5
        "physically_ill": (0, 0, 1, 1, 2),  # p2 | p1 (M3 cell, no M3 episode)
        "substance_misuse": (0, 1, 1, 1, 3),  # s1 (fleksjob counts for M3) | s2 | s3
        "diffuse_psychiatric": (1, 0, 0, 0, 1),  # f1
        "diagnosed": (0, 0, 0, 0, 0),
        "dual_diagnosis": (1, 1, 2, 0, 4),  # d3 | d4 | d1 d2
        "total": (4, 3, 6, 2, 15),
    }),
    "barriers": grid(
        ("barrier_housing", "barrier_economy", "barrier_transport", "barrier_children",
         "barrier_language", "barrier_isolation", "total"), {
            "maybe_suitable": (0, 2, 1, 0, 0, 0, 5),  # economy m1 m2, transport m2
            "physically_ill": (0, 0, 1, 0, 0, 1, 2),  # p1 | p2
            # housing s1 s2, economy s1, isolation s1 (s1 ticks three)
            "substance_misuse": (2, 1, 0, 0, 0, 1, 3),
            "diffuse_psychiatric": (1, 0, 0, 0, 0, 1, 1),
            "diagnosed": (0, 0, 0, 0, 0, 0, 0),
            # housing d1 d2, children d2, isolation d2
            "dual_diagnosis": (2, 0, 0, 1, 0, 1, 4),
            "total": (5, 3, 2, 1, 0, 4, 15),  # language: only u1, o1, o2
        }),
}  # fmt: skip


def test_the_data_set_is_what_the_tables_assume(con):
    # 18 citizens; o1, o2 out of scope; u1 in scope without a profile
    assert con.execute(
        "select count(*), count(*) filter (where in_scope),"
        " count(*) filter (where in_scope and profile_source = 'unreviewed')"
        " from marts.citizens"
    ).fetchall() == [(18, 16, 1)]
    assert set(EXPECTED) == set(TABLE_IDS)


@pytest.mark.parametrize("table_id", TABLE_IDS)
def test_table_counts(con, table_id):
    got = cells(con, table_id)
    expected = EXPECTED[table_id]
    assert got == expected
    # display order: rows in depth order, the total column last
    assert list(got) == list(expected)
    assert all(list(got[r]) == list(expected[r]) for r in expected)


def test_no_history_column_only_when_non_zero(staging):
    # the only citizens without support are unreviewed (u) or out of scope (o)
    citizens = [
        ("a", 1980, "3", SHORT, "", "", "", ""),
        ("b", 1980, "3", LONG, "physical_illness", "", "", ""),
        ("u1", 1980, "3", NONE, "", "", "", ""),
        ("o", 1980, "2", NONE, "", "", "", ""),
    ]
    cols = ("long_continuous", "short_continuous", "several_separate", "total")
    assert cells(build(staging, citizens), "course_history") == grid(cols, {
        "maybe_suitable": (0, 1, 0, 1),
        "physically_ill": (1, 0, 0, 1),
        "substance_misuse": (0, 0, 0, 0),
        "diffuse_psychiatric": (0, 0, 0, 0),
        "diagnosed": (0, 0, 0, 0),
        "dual_diagnosis": (0, 0, 0, 0),
        "total": (1, 1, 0, 2),
    })  # fmt: skip


def test_every_cell_is_there_with_nobody_to_count(staging):
    # marts.table_cells makes every grid from the tables' sparse counts: with no citizen in
    # any table, each table still has all its rows and columns, as zeros; `no_history`,
    # `not_in_m3` and `unknown`, shown only when non-zero, are left out
    citizens = [
        ("u1", 1980, "3", NONE, "", "ordinary_work", "work", "housing"),  # unreviewed
        ("o", 1980, "2", LONG, "alcohol", "rest", "none", "economy"),  # out of scope
    ]
    con = build(staging, citizens)
    for table_id in TABLE_IDS:
        expected = {
            r: dict.fromkeys((c for c in cols if c not in ("no_history", "not_in_m3")), 0)
            for r, cols in EXPECTED[table_id].items()
        }
        got = cells(con, table_id)
        assert got == expected, table_id
        order = [list(got), *map(list, got.values())]  # rows, then each row's columns
        assert order == [list(expected), *map(list, expected.values())], table_id


def test_every_flag_count_fills_one_table_column(con):
    # the multi-response tables take their ticks from marts.profile_group_flags by column
    # code: a flag count that no table names, or a code that names no count, would be lost
    flags = con.execute("select distinct flag from marts.profile_group_flags").fetchall()
    multi = con.execute("select distinct table_id from marts.table_cells where multi_response")
    columns = [c for (t,) in multi.fetchall() for c in EXPECTED[t]["total"] if c != "total"]
    assert sorted(columns) == sorted(f for (f,) in flags)


def test_profile_distribution_shares_of_the_grand_total(con):
    assert cells(con, "profile_distribution", "share") == {
        "maybe_suitable": {"total": 5 / 15},
        "physically_ill": {"total": 2 / 15},
        "substance_misuse": {"total": 3 / 15},
        "diffuse_psychiatric": {"total": 1 / 15},
        "diagnosed": {"total": 0.0},
        "dual_diagnosis": {"total": 4 / 15},
        "total": {"total": 1.0},
    }


@pytest.mark.parametrize(
    ("table_id", "row", "col", "share"),
    [
        # a cell: of its row total
        ("misuse", "maybe_suitable", "alcohol", 2 / 7),
        ("course_history", "dual_diagnosis", "several_separate", 1 / 4),
        ("motivation", "maybe_suitable", "motivation_not_stated", 2 / 5),
        # multi-response: the row's shares add up to more than 1 (m1 ticks two columns)
        ("case_focus", "maybe_suitable", "focus_ordinary_work", 3 / 5),
        ("case_focus", "maybe_suitable", "focus_upskilling", 2 / 5),
        # a row total: of the grand total (for misuse, the base profile's share)
        ("age_groups", "dual_diagnosis", "total", 4 / 15),
        ("misuse", "maybe_suitable", "total", 7 / 15),
        # a column total: of the grand total
        ("m3_duration", "total", "2y_plus", 6 / 15),
        ("barriers", "total", "barrier_housing", 5 / 15),
        # a zero cell of a non-empty row; an empty row has no share (0 / 0)
        ("age_groups", "total", "60_plus", 0.0),
        ("m3_duration", "diagnosed", "under_1y", None),
        ("m3_duration", "diagnosed", "total", 0.0),
    ],
)  # fmt: skip
def test_shares(con, table_id, row, col, share):
    assert cells(con, table_id, "share")[row][col] == share


def test_check_catches_a_group_count_that_misses_citizens(staging: StagingFactory):
    from pipeline.warehouse import CheckFailed, check

    con = build(staging)
    check(con, "marts__profile_groups__counts_every_citizen")
    con.execute("update marts.profile_groups set n = n - 1 where profile = 'maybe_suitable'")
    with pytest.raises(CheckFailed, match="counts_every_citizen"):
        check(con, "marts__profile_groups__counts_every_citizen")
