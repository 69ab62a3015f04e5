"""CPR detection and masking against a literal reading of the data contract, and the
SQL HMAC against Python's hmac."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import re

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import privacy
from pipeline.ingest import define_macros


def contract_cpr_like(text: str, i: int, j: int) -> bool:
    """Is text[i:j] a CPR-like number? Literal: ten digits (optionally DDMMYY-SSSS or
    DDMMYY SSSS) whose first six form a valid date in some century, not part of a longer
    run of digits."""
    s = text[i:j]
    digits = s.replace("-", "").replace(" ", "") if len(s) == 11 and s[6] in "- " else s
    if len(digits) != 10 or not digits.isdigit() or (len(s) == 11 and not s[:6].isdigit()):
        return False
    if (i > 0 and text[i - 1].isdigit()) or (j < len(text) and text[j].isdigit()):
        return False
    dd, mm, yy = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    for century in (1800, 1900, 2000, 2100):
        try:
            if 1 <= mm <= 12 and 1 <= dd <= calendar.monthrange(century + yy, mm)[1]:
                return True
        except ValueError:
            pass
    return False


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("0101901234", ["0101901234"]),
        ("010190-1234", ["010190-1234"]),
        ("010190 1234", ["010190 1234"]),
        ("3102901234", []),
        ("2902001234", ["2902001234"]),
        ("2902011234", []),
        ("2902041234", ["2902041234"]),
        ("0013901234", []),
        ("12345678901", []),
        ("x0101901234y", ["0101901234"]),
        ("01019012345", []),
        ("cpr:010190-1234.", ["010190-1234"]),
        ("0101901234 3112991234", ["0101901234", "3112991234"]),
    ],
)
def test_find_cpr(text, found):
    assert privacy.find_cpr(text) == found


def test_mask_text_counts():
    assert privacy.mask_text("a 010190-1234 b 0101901234 c 3102901234") == (
        "a [CPR] b [CPR] c 3102901234",
        2,
    )


@given(st.text(alphabet="0123456789 -ab", max_size=40))
def test_find_cpr_matches_contract_reading(text):
    found = privacy.find_cpr(text)
    # every reported number is CPR-like by the literal reading
    for number in found:
        i = text.index(number)
        assert contract_cpr_like(text, i, i + len(number))
    # and every CPR-like 10/11-character window is reported or overlaps a reported one
    masked, n = privacy.mask_text(text)
    assert n == len(found)
    for i in range(len(text)):
        for width in (10, 11):
            if contract_cpr_like(text, i, i + width):
                assert any(text[i : i + width] in f or f in text[i : i + width] for f in found)


def test_mask_array_only_touches_candidates():
    arr = pa.array(["ingen", None, "ring 010190-1234", "tlf 12345678"])
    masked, n = privacy.mask_array(arr)
    assert (masked.to_pylist(), n) == (["ingen", None, "ring [CPR]", "tlf 12345678"], 1)


def test_cpr_digits_and_normalise():
    assert privacy.cpr_digits(" 010190-1234 ") == "0101901234"
    assert privacy.cpr_digits("A0101901234") is None
    assert privacy.normalise_ids(pa.array(["010190 1234", " B7 "])).to_pylist() == [
        "0101901234",
        "B7",
    ]


@given(key=st.binary(min_size=1, max_size=100), value=st.text(max_size=30))
def test_sql_hmac_equals_python_hmac(key, value):
    k = privacy.PseudonymKey(key, "test")
    con = duckdb.connect()
    got = con.execute(
        f"select {privacy.HMAC_SQL} from (select $v as citizen_id)", {**k.hmac_params(), "v": value}
    ).fetchone()[0]
    assert got == hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def test_load_key_from_file_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv(privacy.KEY_ENV, " env-key ")
    assert privacy.load_key().secret == b"env-key"
    f = tmp_path / "key"
    f.write_bytes(b"file-key\n")
    assert privacy.load_key(str(f)).secret == b"file-key"
    monkeypatch.delenv(privacy.KEY_ENV)
    assert privacy.load_key() is None
    f.write_bytes(b"")
    with pytest.raises(privacy.PseudonymKeyError, match="is empty"):
        privacy.load_key(str(f))


# --- the column-level prefilter: never misses a cell the per-cell prefilter would pick ----

_CELL = st.one_of(
    st.none(),
    st.text(alphabet="0123456789- x", max_size=14),
    st.sampled_from(["010190-1234", "0101901234", "1980", "01-02-2013", ""]),
)


@given(
    cells=st.lists(_CELL, max_size=30),
    cut=st.integers(0, 30),
    start=st.integers(0, 5),
    large=st.booleans(),
)
def test_may_hold_cpr_never_misses_a_candidate_cell(cells, cut, start, large):
    typ = pa.large_string() if large else pa.string()
    chunks = [pa.array(cells[:cut], typ), pa.array(cells[cut:], typ)]
    col = pa.chunked_array([c.slice(min(start, len(c))) for c in chunks], typ)
    per_cell = any(
        privacy._candidates(chunk) for chunk in col.chunks if len(chunk)
    )  # what mask_array would look at
    if per_cell:
        assert privacy.may_hold_cpr(col) is True
    if not any(c for c in col.to_pylist() if c):
        assert privacy.may_hold_cpr(col) is False


def test_may_hold_cpr_exact_cases():
    assert privacy.may_hold_cpr(pa.array(["ring 010190-1234 op", None])) is True
    assert privacy.may_hold_cpr(pa.array(["01-02-2013", "1980", None, ""])) is False
    # years end to end look like ten digits across cells: a false alarm, never a miss
    assert privacy.may_hold_cpr(pa.array(["198019", "801980"])) is True
    assert privacy.mask_array(pa.array(["198019", "801980"]))[1] == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        " abc",
        "abc ",
        "\u00a0abc\u00a0",
        "\u2003x\u3000",
        "\tabc\t",
        "a b",
        "\n",
        "æøå ",
        None,
    ],
)
def test_notes_macro_equals_trim_then_blank(text):
    con = duckdb.connect()
    define_macros(con)
    assert con.execute(
        "select m3_text($t) is not distinct from m3_blank($t)", {"t": text}
    ).fetchone() == (True,)


# --- names: masked like values ------------------------------------------------------------


def test_mask_name_and_shown_name():
    assert privacy.mask_name("/data/export-010190-1234/citizens.csv") == (
        "/data/export-[CPR]/citizens.csv")
    assert privacy.mask_name("0101901234") == "[CPR]"
    assert privacy.mask_name("/data/2024-06-30/01019012345") == "/data/2024-06-30/01019012345"
    assert privacy.shown_name("/data/010190-1234/citizens.csv") == "citizens.csv"
    assert privacy.shown_name("/data/x/regler-010190-1234.toml") == "regler-[CPR].toml"
    assert privacy.shown_name("pipeline/rules.toml") == "rules.toml"


def test_load_key_messages_mask_the_key_files_path(tmp_path):
    folder = tmp_path / "010190-1234"
    folder.mkdir()
    with pytest.raises(privacy.PseudonymKeyError) as e:
        privacy.load_key(str(folder / "key"))
    assert str(e.value) == f"pseudonym key file {tmp_path}/[CPR]/key: No such file or directory"


# --- text for a spreadsheet: the rule, and SQL that agrees with it --------------------------


@pytest.mark.parametrize(
    ("text", "formula"),
    [
        ("=1+1", True), ("=cmd|' /C calc'!A0", True), ("+SUM(1,1)", True), ("@SUM(1)", True),
        ("-2+3", True), ("-", True), ("\t=1+1", True), ("\r=1", True), ("\n=1", True),
        ("\x00=1", True), ("-5", False), ("+45", False), ("-5,5", False), ("-0.25", False),
        ("-5,", True), ("- 5", True), ("1-1", False), (" =1", False), ("a=1", False),
        ("", False), ("K", False), ("'=1", False),
    ],
)
def test_looks_like_formula(text, formula):
    assert privacy.looks_like_formula(text) is formula


@given(text=st.one_of(
    st.text(max_size=8),
    st.text(alphabet="=+-@\t\r\n\x0001,. a'", max_size=8),
    st.none(),
))
def test_spreadsheet_text_sql_neutralises_what_looks_like_a_formula(text):
    con = duckdb.connect()
    (got,) = con.execute(
        f"select {privacy.spreadsheet_text_sql('v')} from (select $t::varchar as v)",
        {"t": text},
    ).fetchone()
    if text is None:
        assert got is None
    else:
        assert got == ("'" + text if privacy.looks_like_formula(text) else text)


def test_the_old_run_id_could_read_as_a_cpr_number():
    # 22:10:55 local time and a suffix starting with four digits: 221055-2472 is a valid
    # CPR shape, so the log's masker hid part of the run id (seen in a nightly run's log)
    assert privacy.find_cpr("20261204T221055-2472febf") == ["221055-2472"]


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)),
       st.text("0123456789abcdef", min_size=8, max_size=8))
def test_no_run_id_reads_as_a_cpr_number(when, suffix):
    from pipeline.runner import _RUN_ID, _new_run_id

    run_id = _new_run_id(when.replace(tzinfo=dt.UTC), suffix)
    assert re.fullmatch(_RUN_ID, run_id)
    assert privacy.find_cpr(run_id) == []
    assert privacy.mask_text(f"run {run_id} stopped")[0] == f"run {run_id} stopped"
