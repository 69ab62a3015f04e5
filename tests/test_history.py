"""The history across runs (issue 16, item 2): three hand-made nights with hand-counted
profile changes and versions; a rerun adds nothing; a killed run adds nothing, and a run
killed between its swap and its history is added by the next run."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import history
from pipeline.config import Config
from pipeline.runner import run_stages

HEAD_C = ("citizen_id;birth_year;reviewed;physical_illness;psych_diagnosis;psych_undiagnosed;"
          "alcohol;soft_drugs;hard_drugs\n")
HEAD_E = "citizen_id;start_date;benefit;match_group\n"
IN_M3 = "01-01-2020;kontanthjaelp;3\n"


def night_export(folder: Path, citizens: dict[str, str], episodes: list[str]) -> Path:
    """citizens: id -> 'reviewed;phys;psych_dx;psych_undx;alc;soft;hard'."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "citizens.csv").write_text(
        HEAD_C + "".join(f"{cid};1980;{flags}\n" for cid, flags in citizens.items()), "utf-8")
    (folder / "episodes.csv").write_text(HEAD_E + "".join(episodes), "utf-8")
    return folder


NIGHTS = {
    # A physically ill; B substance misuse; C maybe suitable; D not reviewed
    dt.date(2024, 4, 30): (
        {"A": "ja;1;0;0;0;0;0", "B": "ja;0;0;0;1;0;0", "C": "ja;0;0;0;0;0;0",
         "D": "nej;;;;;;"},
        [f"{c};{IN_M3}" for c in "ABCD"],
    ),
    # B re-reviewed: dual diagnosis; C moved to match group 2 on 1 May; D reviewed: maybe
    # suitable; E new: physically ill
    dt.date(2024, 5, 31): (
        {"A": "ja;1;0;0;0;0;0", "B": "ja;0;1;0;1;0;0", "C": "ja;0;0;0;0;0;0",
         "D": "ja;0;0;0;0;0;0", "E": "ja;1;0;0;0;0;0"},
        [f"{c};{IN_M3}" for c in "ABCDE"] + ["C;01-05-2024;kontanthjaelp;2\n"],
    ),
    # A no longer in the export
    dt.date(2024, 6, 30): (
        {"B": "ja;0;1;0;1;0;0", "C": "ja;0;0;0;0;0;0", "D": "ja;0;0;0;0;0;0",
         "E": "ja;1;0;0;0;0;0"},
        [f"{c};{IN_M3}" for c in "BCDE"] + ["C;01-05-2024;kontanthjaelp;2\n"],
    ),
}


def run_night(tmp_path: Path, day: dt.date) -> None:
    citizens, episodes = NIGHTS[day]
    export = night_export(tmp_path / f"export-{day}", citizens, episodes)
    run_stages(("ingest", "segment"), tmp_path / "out", Config(reference_date=day),
               input_dir=export)


def test_three_nights_give_the_hand_counted_changes_and_versions(tmp_path):
    days = sorted(NIGHTS)
    run_night(tmp_path, days[0])
    run_night(tmp_path, days[1])
    folder = tmp_path / "out.history"
    assert history.changes(folder) == (days[0], days[1], [
        ("maybe_suitable", "not_in_m3", 1),  # C
        ("not_in_export", "physically_ill", 1),  # E
        ("physically_ill", "physically_ill", 1),  # A
        ("substance_misuse", "dual_diagnosis", 1),  # B
        ("unreviewed", "maybe_suitable", 1),  # D
    ])
    run_night(tmp_path, days[2])
    assert history.changes(folder) == (days[1], days[2], [
        ("dual_diagnosis", "dual_diagnosis", 1),  # B
        ("maybe_suitable", "maybe_suitable", 1),  # D
        ("not_in_m3", "not_in_m3", 1),  # C
        ("physically_ill", "not_in_export", 1),  # A
        ("physically_ill", "physically_ill", 1),  # E
    ])
    assert [(n.reference_date, n.citizens, n.in_scope, n.by_source)
            for n in history.nights(folder)] == [
        (days[0], 4, 4, {"rules": 3, "unreviewed": 1}),
        (days[1], 5, 4, {"rules": 4}),
        (days[2], 4, 3, {"rules": 3}),
    ]
    d0, d1, d2 = days
    # the cohort of the first night (A, B, C, D in scope), on the night nearest one month
    # later (30 days: 31 May, a day off) and on the latest; three months (30 Jul) has no
    # night within a week
    assert history.cohort(folder) == history.CohortAcross(d0, [("1m", d1), ("latest", d2)], [
        ("1m", "maybe_suitable", "not_in_m3", 1),  # C: match group 2 from 1 May
        ("1m", "physically_ill", "in_m3", 1),  # A
        ("1m", "substance_misuse", "in_m3", 1),  # B (dual diagnosis by then: still its row)
        ("1m", "unreviewed", "in_m3", 1),  # D
        ("latest", "maybe_suitable", "not_in_m3", 1),
        ("latest", "physically_ill", "not_in_export", 1),  # A gone from the export
        ("latest", "substance_misuse", "in_m3", 1),
        ("latest", "unreviewed", "in_m3", 1),
    ])
    versions = history.connect(folder).execute(
        "select citizen_id, version, profile, profile_source, valid_from, valid_to, nights"
        " from history.profile_versions").fetchall()
    assert versions == [
        ("A", 1, "physically_ill", "rules", d0, d2, 2),  # absent on the third night
        ("B", 1, "substance_misuse", "rules", d0, d1, 1),
        ("B", 2, "dual_diagnosis", "rules", d1, None, 2),
        ("C", 1, "maybe_suitable", "rules", d0, d1, 1),  # left M3 before the second night
        ("D", 1, None, "unreviewed", d0, d1, 1),
        ("D", 2, "maybe_suitable", "rules", d1, None, 2),
        ("E", 1, "physically_ill", "rules", d1, None, 2),
    ]


def test_a_rerun_of_the_same_night_adds_and_replaces_nothing(tmp_path):
    day = dt.date(2024, 4, 30)
    run_night(tmp_path, day)
    folder = tmp_path / "out.history"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    run_night(tmp_path, day)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert len(before) == 2  # the marker and one night


def test_a_night_run_on_a_corrected_export_is_a_new_version_and_the_views_take_it(tmp_path):
    day = dt.date(2024, 4, 30)
    run_night(tmp_path, day)
    citizens, episodes = NIGHTS[day]
    fixed = night_export(tmp_path / "fixed", {**citizens, "D": "ja;0;0;1;0;0;0"}, episodes)
    run_stages(("ingest", "segment"), tmp_path / "out", Config(reference_date=day),
               input_dir=fixed)
    folder = tmp_path / "out.history"
    assert len(list(folder.glob("*.parquet"))) == 2
    [night] = history.nights(folder)
    assert night.by_source == {"rules": 4}


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=300)


@pytest.mark.parametrize("point", ["stage-report", "swap-synced"])
def test_a_killed_run_adds_nothing(tmp_path, point):
    day = dt.date(2024, 4, 30)
    citizens, episodes = NIGHTS[day]
    night_export(tmp_path / "export", citizens, episodes)
    done = cli("run", "--input", "export", "--out", "out", "--reference-date", str(day),
               cwd=tmp_path, env={"M3_FAULT_AT": f"{point}:KILL"})
    assert done.returncode == 137
    assert not list((tmp_path / "out.history").glob("*.parquet"))


def test_a_run_killed_before_its_history_is_added_by_the_next_run(tmp_path):
    day = dt.date(2024, 4, 30)
    citizens, episodes = NIGHTS[day]
    night_export(tmp_path / "export", citizens, episodes)
    args = ("run", "--input", "export", "--out", "out", "--reference-date", str(day))
    done = cli(*args, cwd=tmp_path, env={"M3_FAULT_AT": "history:KILL"})
    assert done.returncode == 137
    assert (tmp_path / "out" / history.NIGHT_FILE).is_file()  # the output is in place
    assert not list((tmp_path / "out.history").glob("*.parquet"))
    # the next run, of any kind, puts it right first (a report alone reads no export)
    done = cli("report", "--out", "out", cwd=tmp_path, env={})
    assert done.returncode == 0, done.stderr
    assert "added the previous run's night to the history" in done.stderr
    assert [n.reference_date for n in history.nights(tmp_path / "out.history")] == [day]


def test_a_history_folder_the_pipeline_did_not_make_is_refused(tmp_path):
    theirs = tmp_path / "out.history"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine", "utf-8")
    day = dt.date(2024, 4, 30)
    citizens, episodes = NIGHTS[day]
    export = night_export(tmp_path / "export", citizens, episodes)
    with pytest.raises(Exception, match="not an m3-profiles history folder"):
        run_stages(("ingest", "segment"), tmp_path / "out", Config(reference_date=day),
                   input_dir=export)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "out").exists()


def _night_file(folder: Path, day: dt.date, rows: list[tuple[str, bool, str | None]]) -> None:
    """A night file as `write_night` leaves it: (citizen, in scope, profile)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(exist_ok=True)
    (folder / history.MARKER).touch()
    pq.write_table(pa.table({
        "reference_date": [day] * len(rows), "run_id": ["r"] * len(rows),
        "night_digest": ["0" * 16] * len(rows), "citizen_id": [r[0] for r in rows],
        "in_scope": [r[1] for r in rows], "match_group": ["3" if r[1] else "2" for r in rows],
        "profile": [r[2] for r in rows],
        "profile_source": ["rules" if r[2] else "unreviewed" for r in rows],
        "m3_days": pa.array([400] * len(rows), pa.int32())}),
        folder / f"{day.isoformat()}_{'0' * 16}.parquet")


def test_the_cohort_across_nights_reads_the_night_within_a_week_of_each_horizon(tmp_path):
    start = dt.date(2024, 1, 1)
    folder = tmp_path / "out.history"
    _night_file(folder, start, [("a", True, "diagnosed"), ("b", True, None),
                                ("c", False, None)])  # c: not in scope, not in the cohort
    assert history.cohort(folder) is None  # one night: no cohort across nights
    # 1 month = day 30: day 37 is within a week; 3 months = day 91: day 99 is not (8 days)
    _night_file(folder, start + dt.timedelta(days=37), [("a", True, "diagnosed"),
                                                        ("b", False, None)])
    _night_file(folder, start + dt.timedelta(days=99), [("a", False, None)])
    got = history.cohort(folder)
    assert got.nights == [("1m", start + dt.timedelta(days=37)),
                          ("latest", start + dt.timedelta(days=99))]
    assert got.rows == [
        ("1m", "diagnosed", "in_m3", 1), ("1m", "unreviewed", "not_in_m3", 1),
        ("latest", "diagnosed", "not_in_m3", 1), ("latest", "unreviewed", "not_in_export", 1),
    ]
    # day 84 (7 days before 91) is within a week: the 3-month horizon reads it
    _night_file(folder, start + dt.timedelta(days=84), [("b", True, "diagnosed")])
    assert history.cohort(folder).nights == [
        ("1m", start + dt.timedelta(days=37)), ("3m", start + dt.timedelta(days=84)),
        ("latest", start + dt.timedelta(days=99))]


def test_history_prints_the_cohort_across_nights(tmp_path):
    start = dt.date(2024, 1, 1)
    folder = tmp_path / "out.history"
    _night_file(folder, start, [(f"p{i}", True, "diagnosed") for i in range(4)]
                + [("u", True, None)])
    _night_file(folder, start + dt.timedelta(days=30),
                [(f"p{i}", i < 3, "diagnosed") for i in range(4)] + [("u", True, None)])
    _night_file(folder, start + dt.timedelta(days=45), [("p0", True, "diagnosed")])
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "history", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}, check=False)
    assert result.returncode == 0, result.stderr
    lines = [" ".join(ln.replace("│", " ").split()) for ln in result.stdout.splitlines()]
    # 4 diagnosed: 3 in scope after a month (day 30), 1 on the latest night (day 45), where
    # 3 are not in the export; the unreviewed one in scope, then gone
    assert "diagnosed 4 3 (75%) 1 (25%) 0 3" in lines
    assert "unreviewed 1 1 (100%) 0 (0%) 0 1" in lines
    assert any("The cohort of 2024-01-01" in ln for ln in lines)
