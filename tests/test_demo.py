"""The synthetic Faxe-like export (pipeline/demo.py): calibration, determinism, file shape,
dirty rows. Files are read back with Python's csv module, never with the demo's own code."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from reference import reference
from typer.testing import CliRunner

from pipeline import demo
from pipeline.cli import app
from pipeline.config import Config

REF = dt.date(2025, 6, 30)
# data contract, table `citizens`, in its order, without `match_group` (taken from episodes)
CITIZEN_HEADER = [
    "citizen_id", "birth_year", "sex", "municipality_code", "reviewed",
    "physical_illness", "psych_diagnosis", "psych_undiagnosed",
    "alcohol", "soft_drugs", "hard_drugs", "potential_m2",
    "focus_ordinary_work", "focus_upskilling", "focus_support_scheme", "focus_activation",
    "focus_physical_treatment", "focus_psych_treatment", "focus_misuse_treatment",
    "focus_rest", "focus_pension_case",
    "motivation_overcomes_barriers", "motivation_work", "motivation_education",
    "motivation_none", "motivation_pension",
    "barrier_housing", "barrier_economy", "barrier_transport", "barrier_children",
    "barrier_language", "barrier_isolation",
    "departments_involved", "notes",
]  # fmt: skip
EPISODE_HEADER = ["citizen_id", "start_date", "end_date", "benefit", "match_group"]
FLAGS = CITIZEN_HEADER[5:32]
CPR_LIKE = re.compile(r"(?<!\d)\d{6}[- ]?\d{4}(?!\d)")  # stricter than the contract: no date test
DATE = re.compile(r"\d{2}-\d{2}-\d{4}")


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and records of a `;`-separated Windows-1252 file."""
    with open(path, encoding="cp1252", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    return rows[0], rows[1:]


def as_dicts(path: Path) -> list[dict[str, str]]:
    header, rows = read(path)
    return [dict(zip(header, r, strict=True)) for r in rows]


@pytest.fixture(scope="module")
def calibration_10k() -> dict[str, demo.CalibrationItem]:
    citizens, episodes = demo.generate(10_000, 42, REF)
    return {item.name: item for item in demo.calibration(citizens, episodes, REF)}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> demo.DemoResult:
    return demo.write_demo(tmp_path_factory.mktemp("clean"), n=2_000, seed=7, reference_date=REF)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> demo.DemoResult:
    return demo.write_demo(
        tmp_path_factory.mktemp("dirty"), n=100, seed=7, reference_date=REF, dirty=True
    )


# --- calibration ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [t.name for t in demo.TARGETS])
def test_calibration_within_3_points_at_10k(calibration_10k, name):
    item = calibration_10k[name]
    assert abs(item.achieved - item.target) <= 0.03, (
        f"{name}: achieved {item.achieved:.4f}, target {item.target:.4f}"
    )


def test_targets_table_is_what_calibration_reports(calibration_10k):
    assert list(calibration_10k) == [t.name for t in demo.TARGETS]
    assert len({t.name for t in demo.TARGETS}) == len(demo.TARGETS) == 20
    assert all(0 < t.target < 1 and t.description for t in demo.TARGETS)
    profiles = [t.target for t in demo.TARGETS if t.name.startswith("profile_")]
    assert sum(profiles) == pytest.approx(1.0)


def test_calibration_of_the_written_files_equals_that_of_the_frames(clean):
    """write_demo reports what the generated tables give (same seed, same numbers)."""
    citizens, episodes = demo.generate(2_000, 7, REF)
    assert clean.calibration == demo.calibration(citizens, episodes, REF)


def test_per_citizen_merge_on_hand_made_histories():
    """definitions §2/§3 boundaries: a gap of 30 days keeps a course, 31 splits it; a non-M3
    spell inside a short gap does not break the M3 stretch; spells after the date and
    non-support benefits do not count; an ungrouped covering spell gives no group."""
    d = dt.date
    citizens = pd.DataFrame({"citizen_id": ["A", "B", "C", "D", "E"]})
    rows = [
        # A: gap of exactly 30 days -> one course from 2020-01-01, long; M3 the whole time
        ("A", d(2020, 1, 1), d(2021, 12, 31), "kontanthjaelp", "aktivitetsparat"),
        ("A", d(2022, 1, 31), None, "kontanthjaelp", "aktivitetsparat"),
        # B: gap of 31 days -> two courses; M3 stretch = the second spell only
        ("B", d(2020, 1, 1), d(2021, 12, 31), "kontanthjaelp", "aktivitetsparat"),
        ("B", d(2022, 2, 1), None, "kontanthjaelp", "aktivitetsparat"),
        # C: jobparat spell between two M3 spells, M3 gap 20 days -> one M3 stretch
        ("C", d(2023, 1, 1), d(2024, 1, 10), "kontanthjaelp", "aktivitetsparat"),
        ("C", d(2024, 1, 11), d(2024, 1, 30), "kontanthjaelp", "jobparat"),
        ("C", d(2024, 1, 31), None, "ressourceforloeb", "aktivitetsparat"),
        ("C", d(2025, 7, 1), None, "kontanthjaelp", "jobparat"),  # after the date: ignored
        # D: support ended, now on early pension (no group) -> not in scope
        ("D", d(2019, 5, 1), d(2024, 4, 30), "kontanthjaelp", "aktivitetsparat"),
        ("D", d(2024, 5, 1), None, "foertidspension", None),
        # E: only a spell after the date
        ("E", d(2025, 7, 1), None, "kontanthjaelp", "aktivitetsparat"),
    ]
    episodes = pd.DataFrame(rows, columns=EPISODE_HEADER)
    for c in ("start_date", "end_date"):
        episodes[c] = pd.to_datetime(episodes[c]).astype("datetime64[s]")
    got = demo.per_citizen(citizens, episodes, REF)
    assert got["course_class"].tolist() == [
        "long_continuous", "several_separate", "short_continuous", "long_continuous",
        "no_history",
    ]  # fmt: skip
    assert got["m3_days"].tolist() == [
        (REF - d(2020, 1, 1)).days + 1, (REF - d(2022, 2, 1)).days + 1,
        (REF - d(2023, 1, 1)).days + 1, 0, 0,
    ]  # fmt: skip
    assert got["in_scope"].tolist() == [True, True, True, False, False]


def test_per_citizen_agrees_with_the_reference_definitions():
    """The vectorised merge against tests/reference.py (day by day) on generated histories."""
    citizens, episodes = demo.generate(300, 3, REF)
    got = demo.per_citizen(citizens, episodes, REF)
    cit_rows = [
        {**{k: (False if pd.isna(v) else v) for k, v in r.items()}, "match_group": None}
        for r in citizens.to_dict("records")
    ]
    ep_rows = [
        {
            "citizen_id": r["citizen_id"],
            "start_date": r["start_date"].date(),
            "end_date": None if pd.isna(r["end_date"]) else r["end_date"].date(),
            "benefit": r["benefit"],
            "match_group": None if pd.isna(r["match_group"]) else r["match_group"],
        }
        for r in episodes.to_dict("records")
    ]
    want = reference(cit_rows, ep_rows, Config(reference_date=REF))
    ids = citizens["citizen_id"].tolist()
    assert got["course_class"].tolist() == [want[i]["course_class"] for i in ids]
    assert got["m3_days"].tolist() == [want[i]["m3_days"] for i in ids]
    assert got["in_scope"].tolist() == [want[i]["in_scope"] for i in ids]


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_and_date_give_identical_bytes(tmp_path):
    a = demo.write_demo(tmp_path / "a", n=1_500, seed=11, reference_date=REF)
    b = demo.write_demo(tmp_path / "b", n=1_500, seed=11, reference_date=REF)
    c = demo.write_demo(tmp_path / "c", n=1_500, seed=12, reference_date=REF)
    for attr in ("citizens_path", "episodes_path"):
        assert getattr(a, attr).read_bytes() == getattr(b, attr).read_bytes()
        assert getattr(a, attr).read_bytes() != getattr(c, attr).read_bytes()


# --- file shape (clean) -----------------------------------------------------------------------


def test_headers_separator_and_counts(clean):
    c_header, c_rows = read(clean.citizens_path)
    e_header, e_rows = read(clean.episodes_path)
    assert c_header == CITIZEN_HEADER
    assert e_header == EPISODE_HEADER
    raw = clean.citizens_path.read_bytes()
    assert raw.startswith(";".join(CITIZEN_HEADER).encode() + b"\r\n")
    assert clean.n_citizens == len(c_rows) == 2_000
    assert clean.n_episodes == len(e_rows)
    assert {len(r) for r in c_rows} == {len(CITIZEN_HEADER)}
    assert {len(r) for r in e_rows} == {len(EPISODE_HEADER)}
    # no line breaks inside clean notes: one physical line per record
    assert raw.count(b"\r\n") == 2_001 and raw.count(b"\n") == 2_001


def test_encoding_is_windows_1252_with_danish_letters(clean):
    raw = clean.citizens_path.read_bytes()
    for letter in "æøå":
        assert letter.encode("cp1252") in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_cells_follow_the_export_conventions(clean):
    citizens = as_dicts(clean.citizens_path)
    episodes = as_dicts(clean.episodes_path)
    assert all(re.fullmatch(r"B\d{7}", c["citizen_id"]) for c in citizens)
    assert len({c["citizen_id"] for c in citizens}) == 2_000
    assert {c["reviewed"] for c in citizens} == {"ja", "nej"}
    assert sum(c["reviewed"] == "nej" for c in citizens) == 400  # unreviewed_share 0.2, exact
    assert {c[f] for c in citizens for f in FLAGS} == {"x", ""}
    unreviewed = [c for c in citizens if c["reviewed"] == "nej"]
    assert all(c[f] == "" for c in unreviewed for f in FLAGS)
    assert sum(c["notes"] != "" for c in unreviewed) > 0.9 * len(unreviewed)
    assert {c["sex"] for c in citizens} == {"K", "M"}
    assert {c["municipality_code"] for c in citizens} == {"320"}
    ages = {REF.year - int(c["birth_year"]) for c in citizens}
    assert min(ages) >= 18 and max(ages) <= 64
    assert all(c["departments_involved"].isdigit() for c in citizens)
    assert {e["benefit"] for e in episodes} <= set(demo.BENEFITS)
    assert {e["match_group"] for e in episodes} <= {*demo.MATCH_GROUPS, ""}


def test_dates_are_danish_day_first_and_spells_are_ordered(clean):
    episodes = as_dicts(clean.episodes_path)
    ids = {c["citizen_id"] for c in as_dicts(clean.citizens_path)}
    parse = lambda s: dt.datetime.strptime(s, "%d-%m-%Y").date()  # noqa: E731
    reform = dt.date(2014, 1, 1)
    for e in episodes:
        assert DATE.fullmatch(e["start_date"]), e
        assert e["end_date"] == "" or DATE.fullmatch(e["end_date"]), e
        start = parse(e["start_date"])
        assert e["end_date"] == "" or parse(e["end_date"]) >= start, e
        assert e["citizen_id"] in ids
        # post-2014 names from the reform on, M1-M5 before; pension / flex job: no group
        if e["benefit"] in demo.NON_SUPPORT:
            assert e["match_group"] == ""
        elif start >= reform:
            assert e["match_group"] in ("jobparat", "aktivitetsparat"), e
        else:
            assert e["match_group"] in ("1", "2", "3", "4", "5"), e
    per_citizen = pd.Series([e["citizen_id"] for e in episodes]).value_counts()
    assert per_citizen.min() >= 1 and per_citizen.max() <= 10
    assert set(per_citizen.index) == ids  # every citizen has a history
    after = sum(parse(e["start_date"]) > REF for e in episodes) / len(episodes)
    assert 0.005 <= after <= 0.015  # about 1 % start after the reference date (§7)


def test_no_cpr_like_number_anywhere_in_clean_output(clean):
    for path in (clean.citizens_path, clean.episodes_path):
        assert CPR_LIKE.findall(path.read_text(encoding="cp1252")) == []


def test_notes_round_trip_through_a_csv_reader(clean):
    """Notes hold ',' and ';' (quoted) but never '"' or line breaks; the file gives back
    exactly the generated notes."""
    citizens, _ = demo.generate(2_000, 7, REF)
    notes = [c["notes"] for c in as_dicts(clean.citizens_path)]
    want = citizens["notes"].fillna("").tolist()
    assert notes == want
    assert any(";" in n for n in notes) and any("," in n for n in notes)
    assert not any('"' in n or "\n" in n or "\r" in n for n in notes)


def test_typed_frames(clean):
    citizens, episodes = demo.generate(500, 5, REF)
    assert list(citizens.columns) == CITIZEN_HEADER
    assert list(episodes.columns) == EPISODE_HEADER
    assert citizens["reviewed"].dtype == bool
    assert all(str(citizens[f].dtype) == "boolean" for f in FLAGS)
    assert citizens.loc[~citizens["reviewed"], FLAGS].isna().all().all()
    assert citizens.loc[citizens["reviewed"], FLAGS].notna().all().all()
    assert str(citizens["birth_year"].dtype) == "int64"
    assert str(episodes["start_date"].dtype) == "datetime64[s]"
    assert episodes["start_date"].notna().all() and episodes["end_date"].isna().any()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scenario"):
        demo.write_demo(tmp_path, n=10, scenario="odense")
    with pytest.raises(ValueError, match="at least 1"):
        demo.generate(0, 1, REF)
    with pytest.raises(ValueError, match="unreviewed_share"):
        demo.generate(10, 1, REF, unreviewed_share=1.5)


def test_unreviewed_share_is_the_share_not_reviewed(tmp_path):
    """`unreviewed_share=0.9` leaves 10 % of the citizens reviewed (`reviewed` = ja). The flag
    is drawn stratified within the 4 statuses on the reference date (`_strat_uniform`), so
    each status gets its expected count to within one citizen: 2,000 citizens give 200
    reviewed, give or take 3."""
    result = demo.write_demo(
        tmp_path / "lib", n=2_000, seed=7, reference_date=REF, unreviewed_share=0.9
    )
    citizens = as_dicts(result.citizens_path)
    assert len(citizens) == 2_000
    assert {c["reviewed"] for c in citizens} == {"ja", "nej"}
    reviewed = sum(c["reviewed"] == "ja" for c in citizens)
    assert abs(reviewed - 200) <= 3, reviewed
    # the command line's option means the same, and the old misleading name is gone
    cli = CliRunner().invoke(
        app,
        ["demo", "--out", str(tmp_path / "cli"), "--citizens", "2000", "--seed", "7",
         "--reference-date", REF.isoformat(), "--unreviewed-share", "0.9"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert (tmp_path / "cli" / "citizens.csv").read_bytes() == result.citizens_path.read_bytes()
    old = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path / "old"), "--reviewed-share", "0.9"]
    )
    assert old.exit_code == 2
    assert not (tmp_path / "old").exists()


# --- dirty mode -------------------------------------------------------------------------------


def test_dirty_mode_appends_the_designed_rows(dirty, tmp_path):
    clean = demo.write_demo(tmp_path, n=100, seed=7, reference_date=REF)
    _, clean_citizens = read(clean.citizens_path)
    _, clean_episodes = read(clean.episodes_path)
    header, citizens = read(dirty.citizens_path)
    _, episodes = read(dirty.episodes_path)
    assert header == CITIZEN_HEADER
    assert citizens[:100] == clean_citizens and episodes[: len(clean_episodes)] == clean_episodes
    extra_c = [dict(zip(CITIZEN_HEADER, r, strict=True)) for r in citizens[100:]]
    extra_e = [dict(zip(EPISODE_HEADER, r, strict=True)) for r in episodes[len(clean_episodes) :]]
    assert len(extra_c) == 7 and len(extra_e) == 11
    assert dirty.n_citizens == 107 and dirty.n_episodes == len(clean_episodes) + 11

    # citizens: 0 unparseable integer + sex X, 1 year 1850 + boolean 'måske', 2 missing year,
    # 3-4 duplicate id, 5 CPR-like number in the note, 6 line break in the note
    assert (extra_c[0]["birth_year"], extra_c[0]["sex"]) == ("19x0", "X")
    assert (extra_c[1]["birth_year"], extra_c[1]["alcohol"]) == ("1850", "måske")
    assert extra_c[2]["birth_year"] == ""
    assert extra_c[3]["citizen_id"] == extra_c[4]["citizen_id"] == "B0000104"
    assert [c[0] for c in citizens].count("B0000104") == 2
    assert "010190-1234" in extra_c[5]["notes"]
    assert "\n" in extra_c[6]["notes"]
    assert all(CPR_LIKE.search(c["notes"]) is None for c in extra_c[:5] + extra_c[6:])

    # episodes: dates 31-02-2013 / 2013-13-01, benefit 'pension', empty start and benefit,
    # orphan, end before start, two spells of the duplicated id, two valid spells
    assert extra_e[0]["start_date"] == "31-02-2013"
    assert extra_e[1]["end_date"] == "2013-13-01"
    assert extra_e[2]["benefit"] == "pension"
    assert extra_e[3]["start_date"] == "" and extra_e[4]["benefit"] == ""
    ids = {c[0] for c in citizens}
    assert extra_e[5]["citizen_id"] not in ids
    assert [e["citizen_id"] for e in extra_e[7:9]] == ["B0000104"] * 2
    s, e = (dt.datetime.strptime(extra_e[6][k], "%d-%m-%Y") for k in ("start_date", "end_date"))
    assert e < s
    assert [e["citizen_id"] for e in extra_e[9:]] == ["B0000105", "B0000106"]
    assert all(e["start_date"] == "30-06-2025" and e["end_date"] == "" for e in extra_e[9:])


def test_dirty_rows_table_counts_and_reject_share(dirty):
    bad = {t: [r for r in demo.DIRTY_ROWS if r.table == t and r.reasons] for t in
           ("citizens", "episodes")}  # fmt: skip
    assert len(bad["citizens"]) == 5 and len(bad["episodes"]) == 9
    reasons = sorted(code for r in demo.DIRTY_ROWS for _, code in r.reasons)
    assert reasons == sorted(
        ["unparseable_integer", "out_of_domain", "out_of_domain", "out_of_domain",
         "missing_required", "duplicate_id", "duplicate_id",
         "unparseable_date", "unparseable_date", "out_of_domain", "missing_required",
         "missing_required", "unknown_citizen", "end_before_start", "unknown_citizen",
         "unknown_citizen"]
    )  # fmt: skip
    # below the default max_reject_share (5 %) of either table even at 100 citizens
    assert len(bad["citizens"]) / dirty.n_citizens < 0.05
    assert len(bad["episodes"]) / dirty.n_episodes < 0.05


def test_dirty_file_layout_line_numbers(dirty):
    """Each appended row starts on line clean_rows + 2 + offset; the line break note is last."""
    lines = dirty.citizens_path.read_bytes().split(b"\r\n")
    assert lines[-1] == b""  # the file ends with a line end
    first_dirty = 100 + 2  # header is line 1
    assert lines[first_dirty - 1].startswith(b'"B0000101";"19x0"')
    assert lines[first_dirty + 4 - 1].startswith(b'"B0000104";"1981"')
    # the line-break note: its record starts on line 108 and spans two physical lines
    assert lines[first_dirty + 6 - 1].startswith(b'"B0000106"')
    assert dirty.citizens_path.read_bytes().count(b"\n") == 107 + 1 + 1


def test_generate_dirty_returns_the_cells_of_the_files(dirty):
    citizens, episodes = demo.generate(100, 7, REF, dirty=True)
    _, rows = read(dirty.citizens_path)
    assert citizens.fillna("").astype(str).values.tolist() == rows
    _, rows = read(dirty.episodes_path)
    assert episodes.fillna("").astype(str).values.tolist() == rows


def test_text_is_read_back_by_pandas_too(clean):
    """A second, independent reader (pandas' C parser) sees the same table."""
    frame = pd.read_csv(
        io.BytesIO(clean.citizens_path.read_bytes()), sep=";", encoding="cp1252",
        dtype=str, keep_default_na=False,
    )  # fmt: skip
    assert list(frame.columns) == CITIZEN_HEADER and len(frame) == 2_000


def test_the_pipeline_finds_the_calibrated_shares_in_the_files(tmp_path, calibration_10k):
    """Issue "done when": `make report` on the demo shows the calibrated shares. The demo's
    own measurement (from its frames) and the pipeline's (from the written files, through
    ingest and segment) must agree exactly, and so be within 3 points of the targets."""
    import pyarrow.parquet as pq

    from pipeline.runner import run_stages

    demo.write_demo(tmp_path / "in", n=10_000, seed=42, reference_date=REF)
    run_stages(("ingest", "segment"), tmp_path / "out", Config(reference_date=REF),
               input_dir=tmp_path / "in")  # fmt: skip
    rows = pq.read_table(tmp_path / "out" / "citizens.parquet").to_pylist()
    ruled = [r for r in rows if r["profile_source"] == "rules"]
    for p in ("maybe_suitable", "physically_ill", "diffuse_psychiatric", "diagnosed"):
        share = sum(r["base_profile"] == p for r in ruled) / len(ruled)
        assert share == pytest.approx(calibration_10k[f"profile_{p}"].achieved, abs=1e-12)
    # course and M3 shares are of everyone in scope (citizens.parquet), unreviewed included
    checks = {
        "misuse_any": sum(r["misuse_any"] for r in ruled) / len(ruled),
        "long_continuous": sum(r["course_class"] == "long_continuous" for r in rows) / len(rows),
        "m3_1y_plus": sum(r["m3_days"] >= 365 for r in rows) / len(rows),
        "m3_1_to_2y": sum(365 <= r["m3_days"] < 730 for r in rows) / len(rows),
    }
    for name, share in checks.items():
        assert share == pytest.approx(calibration_10k[name].achieved, abs=1e-12), name
