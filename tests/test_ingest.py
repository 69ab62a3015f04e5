"""Ingest: one test per parsing rule of the data contract, a hand-made messy export with its
exact quarantine, privacy, and round-trips of generated tables through CSV and XLSX."""

from __future__ import annotations

import dataclasses
import datetime as dt
import string
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import privacy, readers, warehouse
from pipeline.config import Config
from pipeline.errors import InputError, RejectedError
from pipeline.ingest import define_macros, find_inputs, ingest

REF = dt.date(2024, 6, 30)
CFG = Config(reference_date=REF, max_reject_share=1.0)


def write_csv(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def load(folder: Path, cfg: Config = CFG):
    con = warehouse.connect()
    result = ingest(con, cfg, folder, "test")
    return con, result


def one_citizen(tmp_path: Path, column: str, value: str, *, sep: str = ";"):
    """Load one citizen whose `column` holds `value`; return (staged value, quarantine rows)."""
    header = (
        ["citizen_id", "birth_year", column]
        if column not in ("birth_year",)
        else ["citizen_id", "birth_year"]
    )
    row = ["A1", "1980", value] if column != "birth_year" else ["A1", value]
    write_csv(tmp_path, "citizens.csv", sep.join(header) + "\n" + sep.join(row) + "\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    con, _ = load(tmp_path)
    staged = con.execute(f"select {column} from staging.citizens").fetchall()
    problems = con.execute(
        "select column_name, value, reason from quarantine.rows where table_name='citizens'"
    ).fetchall()
    return (staged[0][0] if staged else None), problems


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("0", False),
        ("true", True),
        ("FALSE", False),
        ("ja", True),
        ("Nej", False),
        ("yes", True),
        ("no", False),
        ("x", True),
        ("X", True),
        ("", False),
        (" ", False),
        ("1.0", True),
    ],
)
def test_boolean_flag_values(tmp_path, value, expected):
    staged, problems = one_citizen(tmp_path, "alcohol", value)
    assert (staged, problems) == (expected, [])


def test_boolean_word_outside_list_is_out_of_domain(tmp_path):
    staged, problems = one_citizen(tmp_path, "alcohol", "måske")
    assert (staged, problems) == (None, [("alcohol", "måske", "out_of_domain")])


@pytest.mark.parametrize(("value", "expected"), [("", True), ("nej", False), ("ja", True)])
def test_reviewed_defaults_to_true(tmp_path, value, expected):
    assert one_citizen(tmp_path, "reviewed", value) == (expected, [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("K", "K"),
        ("m", "M"),
        ("F", "K"),
        ("kvinde", "K"),
        ("Mand", "M"),
        ("female", "K"),
        ("male", "M"),
        ("", None),
    ],
)
def test_sex_codes(tmp_path, value, expected):
    assert one_citizen(tmp_path, "sex", value) == (expected, [])


def test_unknown_sex_is_out_of_domain(tmp_path):
    assert one_citizen(tmp_path, "sex", "X") == (None, [("sex", "X", "out_of_domain")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", "3"),
        ("M3", "3"),
        ("m2", "2"),
        ("3.0", "3"),
        ("Aktivitetsparat", "aktivitetsparat"),
        ("jobparat", "jobparat"),
        ("", None),
    ],
)
def test_match_group_codes(tmp_path, value, expected):
    assert one_citizen(tmp_path, "match_group", value) == (expected, [])


@pytest.mark.parametrize("value", ["6", "M0", "sygemeldt"])
def test_unknown_match_group_is_out_of_domain(tmp_path, value):
    assert one_citizen(tmp_path, "match_group", value) == (
        None,
        [("match_group", value, "out_of_domain")],
    )


@pytest.mark.parametrize(
    ("value", "expected", "problems"),
    [
        ("1980", 1980, []),
        ("1980.0", 1980, []),
        (" 1980 ", 1980, []),
        ("19x0", None, [("birth_year", "19x0", "unparseable_integer")]),
        ("1980.5", None, [("birth_year", "1980.5", "unparseable_integer")]),
        ("1899", None, [("birth_year", "1899", "out_of_domain")]),
        ("1900", 1900, []),
        ("2009", 2009, []),  # reference year 2024 - 15
        ("2010", None, [("birth_year", "2010", "out_of_domain")]),
        ("", None, [("birth_year", "", "missing_required")]),
    ],
)
def test_birth_year(tmp_path, value, expected, problems):
    assert one_citizen(tmp_path, "birth_year", value) == (expected, problems)


@pytest.mark.parametrize(
    ("value", "expected", "problems"),
    [
        ("3", 3, []),
        ("0", 0, []),
        ("4.0", 4, []),
        ("", None, []),
        ("-1", None, [("departments_involved", "-1", "out_of_domain")]),
        ("tre", None, [("departments_involved", "tre", "unparseable_integer")]),
        ("2147483647", 2147483647, []),
        ("12345678901", None, [("departments_involved", "12345678901", "out_of_domain")]),
    ],
)
def test_departments_involved(tmp_path, value, expected, problems):
    assert one_citizen(tmp_path, "departments_involved", value) == (expected, problems)


def test_municipality_code_defaults_to_config(tmp_path):
    assert one_citizen(tmp_path, "municipality_code", "") == (320, [])
    assert one_citizen(tmp_path, "municipality_code", "259") == (259, [])


def one_episode(
    tmp_path: Path, start: str, end: str = "", benefit: str = "dagpenge", group: str = ""
):
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\nA1;1980\n")
    write_csv(
        tmp_path,
        "episodes.csv",
        f"citizen_id;start_date;end_date;benefit;match_group\nA1;{start};{end};{benefit};{group}\n",
    )
    con, _ = load(tmp_path)
    staged = con.execute(
        "select start_date, end_date, benefit, match_group from staging.episodes"
    ).fetchall()
    problems = con.execute("select column_name, value, reason from quarantine.rows").fetchall()
    return (staged[0] if staged else None), problems


@pytest.mark.parametrize(
    "text", ["2013-02-01", "01-02-2013", "01.02.2013", "01/02/2013", "1-2-2013", " 01-02-2013 "]
)
def test_dates_iso_and_day_first(tmp_path, text):
    staged, problems = one_episode(tmp_path, text)
    assert (staged[0], problems) == (dt.date(2013, 2, 1), [])


@pytest.mark.parametrize(
    "text",
    ["31-02-2013", "2013-13-01", "13-02-01", "01-02-13", "primo 2013", "2013/02/01", "01-02.2013x",
     "00-02-2013", "01-13-2013", "1x-02-2013",  # these three in the dd-mm-yyyy shape
     "2013-02-30", "2013-00-10", "2013-1x-01"],  # these in the yyyy-mm-dd shape
)
def test_unparseable_dates(tmp_path, text):
    staged, problems = one_episode(tmp_path, text)
    assert (staged, problems) == (None, [("start_date", text, "unparseable_date")])


# The date rules without the fast paths for the shapes exports write (pipeline/sql/macros.sql):
# the fast paths must read every text exactly as these do.
GENERAL_DATE_RULES = """
create or replace temp macro general_date(s) as
    case
        when strpos(trim(s), '-') = 5 then try_strptime(trim(s), '%Y-%m-%d')::date
        when length(trim(s)) between 8 and 10 and substr(trim(s), -5, 1) in ('-', '.', '/')
            then try_strptime(trim(s), ['%d-%m-%Y', '%d.%m.%Y', '%d/%m/%Y'])::date
    end
"""
DAY_MONTH_YEAR = st.tuples(st.integers(0, 32), st.integers(0, 13), st.integers(1899, 2100))
DATE_PIECES = st.sampled_from(["0", "1", "01", "12", "13", "29", "30", "31", "00", "2013", "1x"])
DATE_TEXTS = st.one_of(
    # the two shapes with a fast path, days and months in and out of range
    DAY_MONTH_YEAR.map(lambda t: f"{t[2]:04d}-{t[1]:02d}-{t[0]:02d}"),
    DAY_MONTH_YEAR.map(lambda t: f"{t[0]:02d}-{t[1]:02d}-{t[2]:04d}"),
    st.tuples(DATE_PIECES, st.sampled_from("-./ "), DATE_PIECES, st.sampled_from("-./ "),
              DATE_PIECES, st.sampled_from(["", " "])).map("".join),
    st.text(alphabet="0123456789-./ x", max_size=12),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(DATE_TEXTS, min_size=1, max_size=20))
def test_date_fast_paths_read_like_the_general_rules(texts):
    con = warehouse.connect()
    define_macros(con)
    con.execute(GENERAL_DATE_RULES)
    rows = con.execute(
        "select s, m3_date(s), general_date(s) from unnest($texts::varchar[]) t(s)",
        {"texts": texts},
    ).fetchall()
    assert [(s, fast) for s, fast, _ in rows] == [(s, general) for s, _, general in rows]


def test_end_before_start_is_reported_on_end_date(tmp_path):
    assert one_episode(tmp_path, "01-02-2013", "31-01-2013") == (
        None,
        [("end_date", "31-01-2013", "end_before_start")],
    )


def test_one_day_spell_is_valid(tmp_path):
    staged, problems = one_episode(tmp_path, "01-02-2013", "01-02-2013")
    assert (staged[:2], problems) == ((dt.date(2013, 2, 1), dt.date(2013, 2, 1)), [])


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("kontanthjælp", "kontanthjaelp"),
        ("Uddannelseshjælp", "uddannelseshjaelp"),
        ("ressourceforløb", "ressourceforloeb"),
        ("FØRTIDSPENSION", "foertidspension"),
        ("kontanthjaelp", "kontanthjaelp"),
        (" fleksjob ", "fleksjob"),
        ("other", "other"),
    ],
)
def test_benefit_codes(tmp_path, text, code):
    staged, problems = one_episode(tmp_path, "2013-02-01", benefit=text)
    assert (staged[2], problems) == (code, [])


def test_unknown_and_missing_benefit(tmp_path):
    assert one_episode(tmp_path, "2013-02-01", benefit="pension")[1] == [
        ("benefit", "pension", "out_of_domain")
    ]
    assert one_episode(tmp_path, "2013-02-01", benefit="")[1] == [
        ("benefit", "", "missing_required")
    ]
    assert one_episode(tmp_path, "")[1] == [("start_date", "", "missing_required")]


def test_comma_separator_and_quoted_separator(tmp_path):
    write_csv(
        tmp_path, "citizens.csv", 'citizen_id,birth_year,notes\nA1,1980,"Har job, men ""syg"""\n'
    )
    write_csv(tmp_path, "episodes.csv", "citizen_id,start_date,benefit\nA1,2020-01-01,dagpenge\n")
    con, _ = load(tmp_path)
    assert con.execute("select notes from staging.citizens").fetchall() == [('Har job, men "syg"',)]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "latin-1"])
def test_encodings(tmp_path, encoding):
    write_csv(
        tmp_path, "citizens.csv", "citizen_id;birth_year;notes\nA1;1980;Søren på Ærø\n", encoding
    )
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    con, result = load(tmp_path)
    assert con.execute("select citizen_id, notes from staging.citizens").fetchall() == [
        ("A1", "Søren på Ærø")
    ]
    expected = {
        "utf-8": "utf-8",
        "utf-8-sig": "utf-8-sig",
        "cp1252": "cp1252",
        "latin-1": "cp1252",
    }[encoding]
    assert {f.table: f.encoding for f in result.files}["citizens"] == expected


def test_windows_1252_only_characters(tmp_path):
    # "€" and "–" exist in Windows-1252 but not in Latin-1 (library notes)
    write_csv(
        tmp_path,
        "citizens.csv",
        "citizen_id;birth_year;notes\nA1;1980;Gæld 500 € – rykker\n",
        "cp1252",
    )
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    con, _ = load(tmp_path)
    assert con.execute("select notes from staging.citizens").fetchone() == ("Gæld 500 € – rykker",)


def test_unknown_encoding_is_file_level(tmp_path):
    (tmp_path / "citizens.csv").write_bytes(b"citizen_id;birth_year\nA\x81;1980\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(InputError, match=r"citizens.csv: unknown encoding: byte 0x81"):
        load(tmp_path)


def test_column_names_case_insensitive_and_mapping(tmp_path):
    write_csv(tmp_path, "citizens.csv", " CITIZEN_ID ;Fødselsår;Extra\nA1;1980;keep\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;Startdato;benefit\nA1;2020-01-01;dagpenge\n")
    cfg = dataclasses.replace(
        CFG,
        columns={"citizens": {"birth_year": "fødselsår"}, "episodes": {"start_date": "Startdato"}},
    )
    con, result = load(tmp_path, cfg)
    assert con.execute("select citizen_id, birth_year from staging.citizens").fetchall() == [
        ("A1", 1980)
    ]
    # unknown extra columns are kept in raw, ignored afterwards
    assert con.execute('select "Extra" from raw.citizens').fetchall() == [("keep",)]
    assert result.files[0].extra_columns == ("Extra",)


def test_missing_required_column_names_file_and_column(tmp_path):
    write_csv(tmp_path, "citizens.csv", "citizen_id;sex\nA1;K\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(InputError, match=r"^citizens.csv: missing required column 'birth_year'"):
        load(tmp_path)


def test_two_candidate_files_named(tmp_path):
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\nA1;1980\n")
    write_csv(tmp_path, "Citizens.parquet", "")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(
        InputError,
        match=r"two candidate files for table citizens: "
        r"Citizens.parquet and citizens.csv",
    ):
        load(tmp_path)


def test_empty_table_is_file_level(tmp_path):
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(InputError, match=r"citizens.csv: empty table"):
        load(tmp_path)


def test_ragged_row_names_its_line_without_echoing_values(tmp_path):
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year;notes\nA1;1980;ok\nA2;1981\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(InputError) as e:
        load(tmp_path)
    assert str(e.value) == "citizens.csv: line 3 has 2 fields; expected 3 (separator ';')"


def test_unterminated_quote_is_file_level(tmp_path):
    write_csv(tmp_path, "citizens.csv", 'citizen_id;birth_year;notes\nA1;1980;"open\nA2;1981;x\n')
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(InputError, match=r"citizens.csv: malformed CSV"):
        load(tmp_path)


def test_blank_lines_keep_physical_line_numbers(tmp_path):
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\n\nA1;1980\n\nA2;19x0\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    con, _ = load(tmp_path)
    assert con.execute("select _line from raw.citizens order by 1").fetchall() == [(3,), (5,)]
    assert con.execute("select line from quarantine.rows").fetchall() == [(5,)]


# --- the hand-made messy export ---------------------------------------------------------

MESSY_CITIZENS = "\ufeff"  # a BOM is not possible in cp1252; written below without it
CITIZENS_TEXT = (
    "Citizen_ID;Birth_Year;Sex;Reviewed;Alcohol;Psych_Diagnosis;Notes\r\n"
    "B1;1980;K;ja;x;;Borgeren ønsker arbejde\r\n"  # line 2
    'B2;1975;mand;Ja;;X;"Ringet op; CPR 010190-1234 nævnt\r\nopfølgning i næste uge"\r\n'  # 3-4
    "B3;19x0;M;nej;;;ok\r\n"  # line 5
    "B4;1990.0;Kvinde;;1;0;\r\n"  # line 6
    "B4;1991;M;;;;dublet\r\n"  # line 7
    "B5;1970;K;måske;;;\r\n"  # line 8
)
EPISODES_TEXT = (
    "citizen_id,start_date,end_date,benefit,match_group\n"
    "B1,01-02-2013,,kontanthjælp,3\n"  # line 2
    "B1,01.03.2012,31.01.2013,sygedagpenge,M3\n"  # line 3
    "B2,2012-05-01,2012-04-30,dagpenge,3\n"  # line 4: ends before it starts
    "B9,01/02/2013,,dagpenge,aktivitetsparat\n"  # line 5: orphan
    "B4,01/02/2013,,dagpenge,3\n"  # line 6: citizen duplicated
    "B3,01/02/2013,,dagpenge,3\n"  # line 7: citizen quarantined
    "B2,32-01-2013,,pension,9\n"  # line 8: three problems
)


@pytest.fixture
def messy(tmp_path):
    folder = tmp_path / "export"
    write_csv(folder, "citizens.csv", CITIZENS_TEXT, "cp1252")
    write_csv(folder, "episodes.csv", EPISODES_TEXT, "utf-8-sig")
    return folder


def test_messy_export_exact_quarantine(messy):
    con, result = load(messy)
    rows = con.execute("select * from quarantine.rows").fetchall()
    assert rows == [
        ("citizens", "citizens.csv", 5, "birth_year", "19x0", "unparseable_integer"),
        ("citizens", "citizens.csv", 6, "citizen_id", "B4", "duplicate_id"),
        ("citizens", "citizens.csv", 7, "citizen_id", "B4", "duplicate_id"),
        ("citizens", "citizens.csv", 8, "reviewed", "måske", "out_of_domain"),
        ("episodes", "episodes.csv", 4, "end_date", "2012-04-30", "end_before_start"),
        ("episodes", "episodes.csv", 5, "citizen_id", "B9", "unknown_citizen"),
        ("episodes", "episodes.csv", 6, "citizen_id", "B4", "unknown_citizen"),
        ("episodes", "episodes.csv", 7, "citizen_id", "B3", "unknown_citizen"),
        ("episodes", "episodes.csv", 8, "benefit", "pension", "out_of_domain"),
        ("episodes", "episodes.csv", 8, "match_group", "9", "out_of_domain"),
        ("episodes", "episodes.csv", 8, "start_date", "32-01-2013", "unparseable_date"),
    ]
    counts = {t: (c.read, c.loaded, c.quarantined, c.cpr_masked) for t, c in result.counts.items()}
    assert counts == {"citizens": (6, 2, 4, 1), "episodes": (7, 2, 5, 0)}
    assert con.execute(
        "select citizen_id, birth_year, sex, reviewed, alcohol, psych_diagnosis, notes, _line "
        "from staging.citizens order by 1"
    ).fetchall() == [
        ("B1", 1980, "K", True, True, False, "Borgeren ønsker arbejde", 2),
        (
            "B2",
            1975,
            "M",
            True,
            False,
            True,
            "Ringet op; CPR [CPR] nævnt\r\nopfølgning i næste uge",
            3,
        ),
    ]
    assert con.execute(
        "select citizen_id, start_date, end_date, benefit, match_group, _line "
        "from staging.episodes order by _line"
    ).fetchall() == [
        ("B1", dt.date(2013, 2, 1), None, "kontanthjaelp", "3", 2),
        ("B1", dt.date(2012, 3, 1), dt.date(2013, 1, 31), "sygedagpenge", "3", 3),
    ]


def all_text_in_warehouse(con) -> list[str]:
    """Every text cell of every table in every layer (DuckDB compresses on disk, so the
    search has to go through SQL, not bytes)."""
    cells: list[str] = []
    tables = con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
    for schema, table in tables:
        cols = con.execute(
            "select column_name from duckdb_columns() where schema_name = $s and table_name = $t",
            {"s": schema, "t": table},
        ).fetchall()
        for (col,) in cols:
            cells += [
                v
                for (v,) in con.execute(
                    f'select distinct "{col}"::varchar from {schema}."{table}"'
                ).fetchall()
                if v
            ]
    return cells


def test_messy_export_cpr_reaches_no_table(messy, tmp_path):
    db = tmp_path / "wh.duckdb"
    con = warehouse.connect(db)
    ingest(con, CFG, messy, "test")
    con.close()
    con = warehouse.connect(db, read_only=True)
    cells = all_text_in_warehouse(con)
    assert len(cells) > 40  # the search really looked at the layers
    assert not [c for c in cells if "1234" in c and "0101" in c.replace("-", "")]
    assert any("[CPR]" in c for c in cells)


def test_too_many_rejects_raises_with_counts(messy):
    con = warehouse.connect()
    with pytest.raises(RejectedError) as e:
        ingest(con, dataclasses.replace(CFG, max_reject_share=0.05), messy, "test")
    assert str(e.value).startswith(
        "citizens.csv: 4 of 6 rows quarantined (66.7%); "
        "episodes.csv: 5 of 7 rows quarantined (71.4%)"
    )
    # the quarantine was built, so the caller can keep it for diagnosis
    assert con.execute("select count(*) from quarantine.rows").fetchone() == (11,)


def test_reject_share_boundary_is_strict(tmp_path):
    # 1 bad row of 20 = exactly 5 %: allowed ("exceed strictly")
    rows = "".join(f"C{i};1980\n" for i in range(19)) + "C19;19x0\n"
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\n" + rows)
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nC1;2020-01-01;dagpenge\n")
    con, result = load(tmp_path, dataclasses.replace(CFG, max_reject_share=0.05))
    assert result.counts["citizens"].quarantined == 1


# --- privacy -----------------------------------------------------------------------------


def cpr_export(tmp_path: Path) -> Path:
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\n010190-1234;1980\nA2;1981\n")
    write_csv(
        tmp_path,
        "episodes.csv",
        "citizen_id;start_date;benefit\n0101901234;2020-01-01;dagpenge\nA2;2020-01-01;dagpenge\n",
    )
    return tmp_path


def test_cpr_ids_refused_without_key_and_nothing_stored(tmp_path, monkeypatch):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    con = warehouse.connect()
    with pytest.raises(InputError) as e:
        ingest(con, CFG, cpr_export(tmp_path), "test")
    message = str(e.value)
    assert "column citizen_id holds 2 CPR-like id(s) in the two tables together" in message
    assert "1234" not in message
    assert con.execute("select count(*) from duckdb_tables()").fetchone() == (0,)


@pytest.mark.parametrize("table", ["citizens", "episodes"])
def test_cpr_ids_in_one_table_refuse_both(tmp_path, monkeypatch, table):
    """The tables are written to raw as each is read: the clean one may be written first,
    and must be gone after the refusal."""
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    second = {t: "0101901234" if t == table else "A2" for t in ("citizens", "episodes")}
    write_csv(tmp_path, "citizens.csv",
              f"citizen_id;birth_year\nA1;1980\n{second['citizens']};1981\n")  # fmt: skip
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n"
              f"{second['episodes']};2020-01-01;dagpenge\n")  # fmt: skip
    con = warehouse.connect()
    with pytest.raises(InputError, match=r"holds 1 CPR-like id\(s\) in the two tables together"):
        ingest(con, CFG, tmp_path, "test")
    assert con.execute("select count(*) from duckdb_tables()").fetchone() == (0,)


def test_file_problems_raised_in_table_order(tmp_path):
    """Both files broken: the citizens file's problem is the one reported, whichever file
    finished reading first; nothing is kept of the episodes read before it."""
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\n" + "A1;1980\n" * 20000 + "A2\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;benefit\nA1;dagpenge\n")
    con = warehouse.connect()
    with pytest.raises(InputError, match=r"^citizens.csv: line 20002 has 1 fields"):
        ingest(con, CFG, tmp_path, "test")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(InputError, match=r"^citizens.csv: line 20002 has 1 fields"):
        ingest(con, CFG, tmp_path, "test")
    assert con.execute("select count(*) from duckdb_tables()").fetchone() == (0,)


def test_cpr_ids_pseudonymised_with_key(tmp_path, monkeypatch):
    monkeypatch.setenv(privacy.KEY_ENV, "s3cret")
    con, result = load(cpr_export(tmp_path))
    key = privacy.PseudonymKey(b"s3cret", "test")
    ids = con.execute("select citizen_id from staging.citizens order by _line").fetchall()
    # 010190-1234 and 0101901234 are one person; every id is replaced, CPR-like or not
    assert ids == [(key.pseudonym("0101901234"),), (key.pseudonym("A2"),)]
    assert con.execute("select count(*) from staging.episodes").fetchone() == (2,)
    assert result.pseudonymised is True
    assert not [c for c in all_text_in_warehouse(con) if "1234" in c and "0101" in c]


def test_pseudonyms_stable_across_runs_and_key_dependent(tmp_path, monkeypatch):
    monkeypatch.setenv(privacy.KEY_ENV, "k1")
    first = load(cpr_export(tmp_path))[0].execute("select citizen_id from raw.citizens").fetchall()
    again = load(cpr_export(tmp_path))[0].execute("select citizen_id from raw.citizens").fetchall()
    monkeypatch.setenv(privacy.KEY_ENV, "k2")
    other = load(cpr_export(tmp_path))[0].execute("select citizen_id from raw.citizens").fetchall()
    assert first == again
    assert set(first).isdisjoint(other)


# --- round trips -------------------------------------------------------------------------

text = st.text(alphabet=string.ascii_letters + "æøåÆØÅ ,;\"'-.", min_size=0, max_size=12)
citizen_rows = st.lists(
    st.tuples(
        st.integers(1900, 2009),
        st.sampled_from(["K", "M", ""]),
        st.booleans(),
        st.booleans(),
        st.none() | st.integers(0, 9),
        text,
    ),
    min_size=1,
    max_size=15,
)
episode_rows = st.lists(
    st.tuples(
        st.integers(0, 14),
        st.dates(dt.date(1990, 1, 1), dt.date(2024, 6, 1)),
        st.none() | st.integers(0, 2000),
        st.sampled_from(["kontanthjaelp", "dagpenge", "fleksjob", "other"]),
        st.sampled_from(["3", "aktivitetsparat", "jobparat", ""]),
    ),
    min_size=1,
    max_size=30,
)
HEADER_C = [
    "citizen_id",
    "birth_year",
    "sex",
    "alcohol",
    "psych_diagnosis",
    "departments_involved",
    "notes",
]
HEADER_E = ["citizen_id", "start_date", "end_date", "benefit", "match_group"]


def as_tables(citizens, episodes):
    crow = [[f"C{i}", y, s, a, p, d, n] for i, (y, s, a, p, d, n) in enumerate(citizens)]
    erows = []
    for ci, start, length, benefit, group in episodes:
        end = start + dt.timedelta(days=length) if length is not None else None
        erows.append([f"C{ci % len(citizens)}", start, end, benefit, group])
    return crow, erows


def _none_first(row: tuple) -> tuple:
    """A sort key for rows whose cells may be None (an ongoing spell has no end date)."""
    return tuple((False, 0) if v is None else (True, v) for v in row)


def expected(crow, erows):
    cit = sorted(
        ((r[0], r[1], r[2] or None, r[3], r[4], r[5], r[6].strip() or None) for r in crow),
        key=_none_first,
    )
    epi = sorted(((r[0], r[1], r[2], r[3], r[4] or None) for r in erows), key=_none_first)
    return cit, epi


def staged(con):
    cit = con.execute(
        "select citizen_id, birth_year, sex, alcohol, psych_diagnosis, "
        "departments_involved, notes from staging.citizens"
    ).fetchall()
    epi = con.execute(
        "select citizen_id, start_date, end_date, benefit, match_group from staging.episodes"
    ).fetchall()
    return sorted(cit, key=_none_first), sorted(epi, key=_none_first)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    citizens=citizen_rows,
    episodes=episode_rows,
    sep=st.sampled_from([";", ","]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
)
def test_csv_round_trip(tmp_path_factory, citizens, episodes, sep, encoding):
    import csv
    import io

    folder = tmp_path_factory.mktemp("csv")
    crow, erows = as_tables(citizens, episodes)
    for name, header, rows in (("citizens.csv", HEADER_C, crow), ("episodes.csv", HEADER_E, erows)):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=sep, lineterminator="\r\n")
        w.writerow(header)
        for r in rows:
            w.writerow(
                [
                    ""
                    if v is None
                    else (
                        "x"
                        if v is True
                        else ""
                        if v is False
                        else v.strftime("%d-%m-%Y")
                        if isinstance(v, dt.date)
                        else v
                    )
                    for v in r
                ]
            )
        write_csv(folder, name, buf.getvalue(), encoding)
    con, result = load(folder)
    assert staged(con) == expected(crow, erows)
    assert {t: (c.read, c.loaded, c.quarantined) for t, c in result.counts.items()} == {
        "citizens": (len(crow), len(crow), 0),
        "episodes": (len(erows), len(erows), 0),
    }


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(citizens=citizen_rows, episodes=episode_rows)
def test_xlsx_round_trip(tmp_path_factory, citizens, episodes):
    folder = tmp_path_factory.mktemp("xlsx")
    crow, erows = as_tables(citizens, episodes)
    for name, header, rows in (
        ("citizens.xlsx", HEADER_C, crow),
        ("episodes.xlsx", HEADER_E, erows),
    ):
        book = xlsxwriter.Workbook(str(folder / name))
        sheet = book.add_worksheet()
        date_format = book.add_format({"num_format": "dd-mm-yyyy"})
        sheet.write_row(0, 0, header)
        for i, r in enumerate(rows, start=1):
            for j, v in enumerate(r):
                if isinstance(v, dt.date):
                    sheet.write_datetime(i, j, dt.datetime.combine(v, dt.time()), date_format)
                elif v is None or v == "":
                    continue
                else:
                    sheet.write(i, j, v)  # numbers as numbers, booleans as Excel booleans
        book.close()
    con, result = load(folder)
    assert staged(con) == expected(crow, erows)
    lines = con.execute("select min(_line), max(_line) from raw.episodes").fetchone()
    assert lines == (2, len(erows) + 1)  # the sheet's own row numbers


def test_xlsx_dates_under_mapped_column_names(tmp_path):
    """Config `[columns.episodes]` renames the date columns: the .xlsx reader is told the
    export's names, so Excel dates and unformatted serial numbers under `Startdato` /
    `Slutdato` load as dates (before: the serials stayed '41275' and were quarantined as
    unparseable_date). A number in any other column stays a number."""
    write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\nA1;1980\nA2;1985\nA3;1990\n")
    book = xlsxwriter.Workbook(str(tmp_path / "episodes.xlsx"))
    sheet = book.add_worksheet()
    date_format = book.add_format({"num_format": "dd-mm-yyyy"})
    sheet.write_row(0, 0, ["citizen_id", "Startdato", "Slutdato", "benefit", "Sagsnr"])
    # line 2: real Excel dates (date-formatted cells)
    sheet.write_string(1, 0, "A1")
    sheet.write_datetime(1, 1, dt.datetime(2013, 1, 1), date_format)
    sheet.write_datetime(1, 2, dt.datetime(2013, 6, 30), date_format)
    sheet.write_string(1, 3, "dagpenge")
    sheet.write_number(1, 4, 41275)
    # line 3: unformatted serial numbers (41275 = 2013-01-01, 41455 = 2013-06-30)
    sheet.write_string(2, 0, "A2")
    sheet.write_number(2, 1, 41275)
    sheet.write_number(2, 2, 41455)
    sheet.write_string(2, 3, "kontanthjaelp")
    # line 4: a serial start (43890 = 2020-02-29), no end: an ongoing spell
    sheet.write_string(3, 0, "A3")
    sheet.write_number(3, 1, 43890)
    sheet.write_string(3, 3, "sygedagpenge")
    book.close()
    cfg = dataclasses.replace(
        CFG, columns={"episodes": {"start_date": "Startdato", "end_date": "slutdato"}}
    )
    con, result = load(tmp_path, cfg)
    assert con.execute("select * from quarantine.rows").fetchall() == []
    assert con.execute(
        "select _line, citizen_id, start_date, end_date, benefit from staging.episodes order by 1"
    ).fetchall() == [
        (2, "A1", dt.date(2013, 1, 1), dt.date(2013, 6, 30), "dagpenge"),
        (3, "A2", dt.date(2013, 1, 1), dt.date(2013, 6, 30), "kontanthjaelp"),
        (4, "A3", dt.date(2020, 2, 29), None, "sygedagpenge"),
    ]
    assert con.execute(
        'select _line, start_date, end_date, "Sagsnr" from raw.episodes order by 1'
    ).fetchall() == [
        (2, "2013-01-01", "2013-06-30", "41275"),
        (3, "2013-01-01", "2013-06-30", ""),
        (4, "2020-02-29", "", ""),
    ]
    assert (result.counts["episodes"].read, result.counts["episodes"].quarantined) == (3, 0)
    assert result.files[1].extra_columns == ("Sagsnr",)


def test_parquet_input_typed_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table(
            {
                "citizen_id": ["P1", "P2"],
                "birth_year": [1980, 1990],
                "alcohol": [True, None],
                "departments_involved": [3.0, None],
            }
        ),
        tmp_path / "citizens.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "citizen_id": ["P1", "P3"],
                "start_date": [dt.date(2020, 1, 1), dt.date(2020, 2, 1)],
                "benefit": ["dagpenge", "dagpenge"],
            }
        ),
        tmp_path / "episodes.parquet",
    )
    con, result = load(tmp_path)
    assert con.execute(
        "select citizen_id, birth_year, alcohol, departments_involved "
        "from staging.citizens order by 1"
    ).fetchall() == [("P1", 1980, True, 3), ("P2", 1990, False, None)]
    # parquet lines are the row index + 2, as if a header came first
    assert con.execute("select line, reason from quarantine.rows").fetchall() == [
        (3, "unknown_citizen")
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(alphabet="aæøå€–’\x81;\n", max_size=20).map(
    lambda s: s.encode("cp1252", errors="ignore")))
def test_windows_1252_decoding_has_one_meaning(data):
    """The Latin-1 shortcut gives exactly what the strict Windows-1252 codec gives, and an
    undefined byte is refused either way."""
    try:
        data.decode("utf-8")
        return  # read as UTF-8: another rule
    except UnicodeDecodeError:
        pass
    try:
        expected = data.decode("cp1252").encode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(InputError, match="unknown encoding"):
            readers._to_utf8("x.csv", data)
        return
    assert readers._to_utf8("x.csv", data) == ("cp1252", expected)


def test_missing_required_column_lists_the_columns_found_and_the_mapping(tmp_path):
    # issue 14: an export with Danish headings must be told what was found and what to do
    write_csv(tmp_path, "citizens.csv", "citizen_id;Fødselsår;Køn\nA1;1980;K\n")
    write_csv(tmp_path, "episodes.csv", "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\n")
    with pytest.raises(InputError) as e:
        load(tmp_path)
    assert str(e.value) == (
        "citizens.csv: missing required column 'birth_year'; expected columns citizen_id,"
        " birth_year at least, found 'citizen_id', 'Fødselsår', 'Køn'. If the export names it"
        ' otherwise, map it in a config file: [columns.citizens] birth_year = "<its name in the'
        ' export>"'
    )


def test_an_input_that_is_a_file_is_named_as_such(tmp_path):
    path = write_csv(tmp_path, "citizens.csv", "citizen_id;birth_year\nA1;1980\n")
    with pytest.raises(InputError, match=r"citizens.csv: this is a file, and --input takes a"):
        find_inputs(path)
