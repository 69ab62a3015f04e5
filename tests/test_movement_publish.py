"""Movement published (issue 16, definitions §8.5, docs/disclosure.md §6): a hand-made
export whose cohort table has hand-counted counts and a hidden cell, the time-to-leave
curve's grid rule, and an exact integer attacker of our own (scipy's MILP, independent of
pipeline.suppression) that derives no hidden cohort count."""

from __future__ import annotations

import csv
import datetime as dt
import itertools

import duckdb
import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from pipeline import movement
from pipeline.config import Config
from pipeline.runner import run_stages

REF = dt.date(2024, 6, 30)  # cohort date 2023-06-30; horizons 07-30, 09-30, 12-30, 2024-06-30
START = "01-01-2021"
STATUSES = movement.STATUSES


def _citizens() -> dict[str, list[tuple[str, str, str, str]]]:
    """One profile (reviewed, no flag: the rules' default), 23 citizens:
    12 in M3 throughout; 6 to jobparat on 2023-08-16 (still M3 on the 1-month horizon);
    2 in M3 until 2023-10-31 and off support after (M3 at 3 months, off at 6 and 12);
    3 who entered M3 in 2024 (not in the cohort; in the profile tables)."""
    out: dict[str, list] = {}
    for i in range(12):
        out[f"A{i:02}"] = [(START, "", "kontanthjaelp", "3")]
    for i in range(6):
        out[f"B{i:02}"] = [(START, "15-08-2023", "kontanthjaelp", "3"),
                           ("16-08-2023", "", "kontanthjaelp", "2")]
    for i in range(2):
        out[f"C{i:02}"] = [(START, "31-10-2023", "kontanthjaelp", "3")]
    for i in range(3):
        out[f"D{i:02}"] = [("01-02-2024", "", "kontanthjaelp", "3")]
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("movement_publish")
    export = folder / "export"
    export.mkdir()
    episodes = _citizens()
    (export / "citizens.csv").write_text(
        "citizen_id;birth_year;reviewed\n" + "".join(f"{c};1980;ja\n" for c in episodes),
        "utf-8")
    (export / "episodes.csv").write_text(
        "citizen_id;start_date;end_date;benefit;match_group\n" + "".join(
            f"{c};{s};{e};{b};{g}\n" for c, eps in episodes.items() for s, e, b, g in eps),
        "utf-8")
    out = folder / "out"
    run_stages(("ingest", "segment", "report"), out, Config(reference_date=REF),
               input_dir=export)
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    yield out, con
    con.close()


def _read(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_the_published_cohort_table_has_the_hand_counted_cells(release):
    out, con = release
    (profile,) = {p for (p,) in con.execute(
        "select profile from marts.citizens where profile is not null").fetchall()}
    rows = _read(out / "publish" / "tables" / "cohort_status.csv")
    got = {(r["horizon"], r["profile"], r["status"]): r for r in rows}
    days = {"1m": "2023-07-30", "3m": "2023-09-30", "6m": "2023-12-30", "12m": "2024-06-30"}
    assert [h for h in dict.fromkeys(r["horizon"] for r in rows)] == list(days)
    assert all(r["day"] == days[r["horizon"]] for r in rows)
    # hand-counted: (m3, other_group, fleksjob_pension, other_benefit, off_support, cohort)
    true = {"1m": (20, 0, 0, 0, 0, 20), "3m": (14, 6, 0, 0, 0, 20),
            "6m": (12, 6, 0, 0, 2, 20), "12m": (12, 6, 0, 0, 2, 20)}
    # hidden: the 2 off support (1-4: primary) and, as the cheapest protection, the 6 to
    # another group in the same row; with one profile the total row equals it, so the same
    # two cells of the total row too (the other profiles' zeros are shown). On the reference
    # date the 12 still in M3 are hidden instead of the 6: shown, they would prove the
    # profile tables' hidden 3 with less than a year in M3 small (the 12 are among the 15
    # of the profile, all with more than a year in M3: test_the_attacker_has_teeth)
    hidden = {("6m", "other_group"), ("6m", "off_support"),
              ("12m", "m3"), ("12m", "off_support")}
    for h, counts in true.items():
        for st, n in zip((*STATUSES, "total"), counts, strict=True):
            for p in (profile, "total"):
                r = got[(h, p, st)]
                if (h, st) in hidden:
                    assert (r["n"], r["share"], r["share_low"], r["hidden"]) == ("", "", "", "c")
                else:
                    assert (r["n"], r["hidden"]) == (str(n), ""), (h, p, st)
                    assert r["share"] == f"{n / 20:.4f}"
    # the Wilson interval beside a shown share: 14 of 20 at 3 months
    w = movement.wilson(14, 20)
    r = got[("3m", profile, "m3")]
    assert (r["share_low"], r["share_high"]) == (f"{w.low:.4f}", f"{w.high:.4f}")
    assert 0.48 < w.low < 0.49 and 0.85 < w.high < 0.86
    # every other profile: a row of zeros, shown
    others = {k for k in got if k[1] not in (profile, "total")}
    assert others and all(got[k]["n"] == "0" for k in others)
    # the pattern is in the one table of the release's hidden cells (internal)
    assert set(con.execute(
        "select table_id, \"row\", col from marts.suppressed_cells"
        " where table_id like 'cohort%'").fetchall()) == {
        (f"cohort_{h}", p, st) for h, st in hidden for p in (profile, "total")}


def test_the_page_and_workbook_show_the_movement(release):
    out, _ = release
    html = (out / "publish" / "report.html").read_text("utf-8")
    assert 'id="movement"' in html and 'id="cohort-12m"' in html
    assert "Tid til borgeren forlader matchgruppe" in html
    assert (out / "publish" / "charts" / "time_to_leave.png").stat().st_size > 1000
    from openpyxl import load_workbook

    wb = load_workbook(out / "publish" / "tables.xlsx", read_only=True)
    assert wb.sheetnames[-2:] == ["Kohorte i M3 - status", "Tid til M3 forlades"]


def test_the_curve_is_published_on_a_monthly_grid_while_enough_are_followed(release):
    out, con = release
    rows = _read(out / "publish" / "tables" / "time_to_leave.csv")
    (profile,) = {r["profile"] for r in rows} - {"total"}
    # the spells: 12 from 2021 still in M3, 6 + 2 left after 957 and 1,034 days, 3 from
    # 2024-02-01, censored at 151 days. min_cell 5: at risk at least 10
    points = [(int(r["month"]), float(r["still_in_m3"])) for r in rows if r["profile"] == profile]
    months = [m for m, _ in points]
    # at risk after day d: 23 up to 151 days (5 months = 152 days: 20 left), 20 up to
    # 957 days (month 31 = 943 days; month 32 = 974 days: 14 followed, 6 left since the
    # last point: shown), 14 at month 33 = 1,004 days, 12 after 1,034 days (month 34 =
    # 1,035: 2 left since month 32: skipped), until 12 ≥ 10 ends with the longest spells
    assert months[:33] == list(range(33))
    assert 34 not in months  # 2 leavers since the point before: 1 to min_cell - 1
    assert dict(points)[32] == pytest.approx(14 / 20)
    s_later = 14 / 20 * 12 / 14
    assert all(s == pytest.approx(s_later) for m, s in points if m >= 35)
    assert all(s == 1.0 for m, s in points if m <= 31)


def test_a_curve_with_too_few_spells_is_not_published():
    few = movement.published_curve(np.arange(1, 10, dtype=float) * 40, np.ones(9, bool), 10, 5)
    assert few == []
    ten = movement.published_curve(np.arange(1, 11, dtype=float) * 40, np.ones(10, bool), 10, 5)
    # at month 1 (30 days) all 10 are followed; after month 2 (61 days) 9: the curve ends
    assert [p[:3] for p in ten] == [(0, 0, 1.0), (1, 30, 1.0)]
    many = movement.published_curve(np.full(40, 400.0), np.ones(40, bool), 10, 5)
    assert [p[0] for p in many] == list(range(14))  # 13 months = 396 days < 400
    assert many[-1][2] == 1.0


# ---------------------------------------------------------------------------------------
# The attacker: the published cohort table and the time-in-M3 table of the profile tables,
# with the relations between them (each horizon's rows and columns add up; a profile's
# cohort is one number at every horizon; the m3_duration table's rows and columns add up;
# the cohort's citizens in M3 on the reference date are at most the profile's citizens with
# more than a year in M3), whole counts, a hidden count at least 1. For every hidden count,
# its smallest and largest value by an exact integer program (scipy's MILP).

OVER_1Y = {"1_to_2y", "2y_plus", "1y_plus"}


def attack(cohort_rows: list[dict[str, str]], m3_rows: list[dict[str, str]],
           ref: str) -> dict[tuple, tuple[int, int]]:
    horizons = list(dict.fromkeys(r["horizon"] for r in cohort_rows))
    profiles = [p for p in dict.fromkeys(r["profile"] for r in cohort_rows) if p != "total"]
    day = {r["horizon"]: r["day"] for r in cohort_rows}
    m3_profiles = [p for p in dict.fromkeys(r["row"] for r in m3_rows) if p != "total"]
    m3_cols = [c for c in dict.fromkeys(r["col"] for r in m3_rows) if c != "total"]
    var: dict = {}
    for p in (*profiles, "total"):
        var[("cohort", p)] = len(var)
    for h, p, s in itertools.product(horizons, (*profiles, "total"), STATUSES):
        var[(h, p, s)] = len(var)
    for p, c in itertools.product((*m3_profiles, "total"), (*m3_cols, "total")):
        var[("m3_duration", p, c)] = len(var)

    def key(h: str, p: str, s: str):
        return ("cohort", p) if s == "total" else (h, p, s)

    n = len(var)
    lb, ub = np.zeros(n), np.full(n, 10.0**6)  # far beyond any count here: "unbounded"
    hidden = []
    published = [(key(r["horizon"], r["profile"], r["status"]), r) for r in cohort_rows]
    published += [(("m3_duration", r["row"], r["col"]), r) for r in m3_rows]
    for k, r in published:
        v = var[k]
        if r["hidden"]:
            lb[v] = max(lb[v], 1)
            hidden.append(k)
        else:
            lb[v] = ub[v] = int(r["n"])
    rows, lo, hi = [], [], []

    def relation(terms: dict, low: float = 0, high: float = 0) -> None:
        a = np.zeros(n)
        for k, c in terms.items():
            a[var[k]] += c
        rows.append(a)
        lo.append(low)
        hi.append(high)

    for h in horizons:
        for p in (*profiles, "total"):
            relation({**{(h, p, s): 1 for s in STATUSES}, ("cohort", p): -1})
        for s in STATUSES:
            relation({**{(h, p, s): 1 for p in profiles}, (h, "total", s): -1})
    relation({**{("cohort", p): 1 for p in profiles}, ("cohort", "total"): -1})
    for p in (*m3_profiles, "total"):
        relation({**{("m3_duration", p, c): 1 for c in m3_cols}, ("m3_duration", p, "total"): -1})
    for c in (*m3_cols, "total"):
        relation({**{("m3_duration", p, c): 1 for p in m3_profiles},
                  ("m3_duration", "total", c): -1})
    for h in horizons:
        if day[h] != ref:
            continue
        for p in set(profiles) & set(m3_profiles):
            over = {("m3_duration", p, c): -1 for c in m3_cols if c in OVER_1Y}
            relation({(h, p, "m3"): 1, **over}, -np.inf, 0)
    cons = LinearConstraint(np.array(rows), lo, hi)
    out = {}
    for k in dict.fromkeys(hidden):
        bounds = []
        for sign in (1, -1):
            c = np.zeros(n)
            c[var[k]] = sign
            res = milp(c, constraints=cons, integrality=np.ones(n), bounds=Bounds(lb, ub))
            assert res.status == 0, res.message
            bounds.append(round(sign * res.fun))
        out[k] = (bounds[0], bounds[1])
    return out


def _true_counts(con) -> dict:
    true = {(("cohort", p) if s == "total" else (h, p, s)): n for h, p, s, n in con.execute(
        "select horizon, profile, status, n from marts.cohort_cells").fetchall()}
    true.update({("m3_duration", r, c): n for r, c, n in con.execute(
        "select \"row\", col, n from marts.release_cells where table_id = 'm3_duration'"
    ).fetchall()})
    return true


def _published(out) -> tuple[list[dict], list[dict]]:
    tables = out / "publish" / "tables"
    return _read(tables / "cohort_status.csv"), _read(tables / "m3_duration.csv")


def assert_safe(cohort_rows, m3_rows, true, ref: str, min_cell: int = 5) -> int:
    bounds = attack(cohort_rows, m3_rows, ref)
    for k, (low, high) in bounds.items():
        assert low <= true[k] <= high, k
        assert low < high, f"{k} derivable: {low}"
        if 1 <= true[k] < min_cell:
            assert high >= min_cell, f"{k} = {true[k]} proven below {min_cell}"
    return len(bounds)


def test_no_hidden_count_is_derivable(release):
    out, con = release
    # 8 hidden cohort cells, 4 hidden m3_duration cells
    assert assert_safe(*_published(out), _true_counts(con), REF.isoformat()) == 12


def test_the_attacker_has_teeth(release):
    """The attacker is not toothless. Shown the total row in full, it derives the hidden
    off-support count of the profile's row; shown the cohort's 12 still in M3 on the
    reference date (hidden only for the link to the profile tables), it proves the hidden 3
    with less than a year in M3 small: 12 ≤ more than a year = 15 − less than a year."""
    out, con = release
    true = _true_counts(con)
    cohort_rows, m3_rows = _published(out)
    (profile,) = {r["profile"] for r in cohort_rows if r["status"] == "total"
                  and r["n"] not in ("0", "") and r["profile"] != "total"} or {
        r["profile"] for r in cohort_rows if r["status"] == "total" and r["hidden"]}

    def showing(which) -> list[dict]:
        rows = [dict(r) for r in cohort_rows]
        for r in rows:
            if r["hidden"] and which(r):
                r["hidden"], r["n"] = "", str(true[(r["horizon"], r["profile"], r["status"])])
        return rows

    bounds = attack(showing(lambda r: r["profile"] == "total"), m3_rows, REF.isoformat())
    assert bounds[("6m", profile, "off_support")] == (2, 2)
    bounds = attack(showing(lambda r: (r["horizon"], r["status"]) == ("12m", "m3")), m3_rows,
                    REF.isoformat())
    assert bounds[("m3_duration", profile, "under_1y")] == (1, 3)


def test_quartiles_are_read_off_the_published_points():
    c = movement.Curve("p", ((0, 0, 1.0, 1.0, 1.0), (1, 30, 0.9, 0.8, 1.0),
                             (2, 61, 0.7, 0.6, 0.8), (4, 122, 0.45, 0.35, 0.6)))
    # the first month shown at or below the level: the curve, its lower and upper bound
    assert c.quantile(0.75) == movement.Quantile(2, 2, 4)
    assert c.quantile(0.5) == movement.Quantile(4, 4, None)
    assert c.quantile(0.25) == movement.Quantile(None, None, None)
    assert c.at(2) == (0.7, 0.6, 0.8) and c.at(3) is None  # month 3 was not published
    from pipeline.labels import Labels
    from pipeline.release import Profiles

    lb = Labels("da", Profiles(("p",), ("p",), (), {"p": {"da": "P", "en": "P"}}, "", "", ""))
    assert movement.months_text(lb, c.quantile(0.75), c.last_month) == "2 (2–4)"
    assert movement.months_text(lb, c.quantile(0.5), c.last_month) == "4 (4 til over 4)"
    assert movement.months_text(lb, c.quantile(0.25), c.last_month) == "> 4"


def test_a_second_night_into_the_same_folder(release, tmp_path):
    """The audit across releases (pipeline.releases) records a release's hidden numbers;
    the cohort table's are no number it records, and a second night must not trip on them
    (it failed with a KeyError on a hidden cohort cell before)."""
    out, _ = release
    export = out.parent / "export"
    again = tmp_path / "out"
    for ref in (REF, dt.date(2024, 7, 31)):
        run_stages(("ingest", "segment", "report"), again, Config(reference_date=ref),
                   input_dir=export)
    assert (again / "publish" / "tables" / "cohort_status.csv").exists()
