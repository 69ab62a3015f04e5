"""Broken input files are refused as broken, never loaded short nor crashed on: a CSV cut
anywhere in its last record, UTF-16/UTF-32 text, a header with nothing below it, a note larger
than the CSV reader's block, Parquet extra columns of nested types, and .xlsx/.parquet files
that are not what their names say. Real files, written here; no mocks."""

from __future__ import annotations

import codecs
import datetime as dt
import io
import zipfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter
from typer.testing import CliRunner

from pipeline import readers, warehouse
from pipeline.cli import app
from pipeline.config import Config
from pipeline.demo import write_demo
from pipeline.errors import InputError
from pipeline.ingest import ingest, validate

REF = dt.date(2024, 6, 30)
CFG = Config(reference_date=REF)
ROWS = 200  # demo citizens; header = line 1, no newline inside a value (checked below)
EPISODES = "citizen_id;start_date;benefit\nA1;2020-01-01;dagpenge\nA2;2020-01-01;dagpenge\n"
TRUNCATED_IN_QUOTE = (
    "{file}: malformed CSV: the file ends inside a quoted field of the record on line {line}: "
    "it looks truncated (or a quote in that record is never closed); expected the complete "
    "export"
)
TRUNCATED_ROW = (
    "{file}: line {line} has {fields} fields; expected {width} (separator ';'), and the file "
    "ends there without a line end: it looks truncated; expected the complete export"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, bytes]:
    """A valid demo export (Windows-1252, CRLF, `;`, quoted values), as bytes per file."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo(folder, n=ROWS, seed=1, reference_date=REF)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    # one physical line per record, so a record's line is the count of newlines before it;
    # no quote inside a value, so a cut ends inside a quote when it leaves an odd count
    assert files["citizens.csv"].count(b"\r\n") == ROWS + 1
    assert all(b'""' not in data for data in files.values())
    return files


def export(folder: Path, **files: bytes) -> Path:
    """Write `files` (name -> bytes; `citizens_csv=` for citizens.csv) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name.replace("_", ".")).write_bytes(data)
    return folder


def refusal(folder: Path) -> str:
    """The message of the file-level error (not a too-many-rejects one) `validate` raises."""
    with pytest.raises(InputError) as e:
        validate(CFG, folder)
    assert type(e.value) is InputError  # not RejectedError: the file, not its rows
    return str(e.value)


def last_record_cuts(data: bytes) -> tuple[int, list[int]]:
    """The offset where the last record starts, and every offset inside that record."""
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    return start, list(range(start + 1, len(data)))


# --- a CSV cut short ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["citizens.csv", "episodes.csv"])
def test_every_cut_inside_the_last_record_is_refused_as_truncated(demo, tmp_path, name):
    """Cut the demo file at every byte of its last record. Before: a cut inside a quoted
    value loaded with that value cut short, exit 0. Now every cut is refused, naming the
    record's line, except where the bytes left are a complete file: after the closing quote
    or the CR of the last value, and after the last separator (an empty last value, which
    no reader can tell from a cut one)."""
    data = demo[name]
    start, cuts = last_record_cuts(data)
    line = data.count(b"\n", 0, start) + 1
    width = data[: data.index(b"\r\n")].count(b";") + 1
    last_sep = data.rindex(b'"', 0, len(data) - 3) - 1  # before the last value's quote
    assert data[last_sep : last_sep + 2] == b';"' and data.endswith(b'"\r\n')
    complete = {last_sep + 1, len(data) - 2, len(data) - 1}  # `;|`, `"|\r\n`, `"\r|\n`
    path = tmp_path / name
    outcomes: Counter[str] = Counter()
    for cut in cuts:
        path.write_bytes(data[:cut])
        if cut in complete:
            assert readers.read_file(path).table.num_rows == line - 1
            outcomes["loads"] += 1
            continue
        with pytest.raises(InputError) as e:
            readers.read_file(path)
        row = data[start:cut]
        in_quote = row.count(b'"') % 2 == 1  # the demo never quotes a quote
        expected = (
            TRUNCATED_IN_QUOTE.format(file=name, line=line)
            if in_quote
            else TRUNCATED_ROW.format(file=name, line=line, fields=row.count(b";") + 1,
                                      width=width)
        )
        assert str(e.value) == expected, cut
        outcomes["in quote" if in_quote else "short row"] += 1
    assert outcomes["loads"] == 3 and outcomes["in quote"] > 30 and outcomes["short row"] > 5


def test_cut_inside_row_100_is_blamed_on_truncation_not_rejects(demo, tmp_path):
    """Before: the citizens file cut inside the note of the record on line 101 loaded 100
    citizens, and the run was refused as '... of 885 rows quarantined' in episodes."""
    data = demo["citizens.csv"]
    line_101 = _line_start(data, 101)
    cut = data.index(b'"', data.rindex(b";", line_101, _line_start(data, 102))) + 10
    folder = export(tmp_path, citizens_csv=data[:cut], episodes_csv=demo["episodes.csv"])
    assert refusal(folder) == TRUNCATED_IN_QUOTE.format(file="citizens.csv", line=101)


def _line_start(data: bytes, line: int) -> int:
    pos = -1
    for _ in range(line - 1):
        pos = data.index(b"\n", pos + 1)
    return pos + 1


@pytest.mark.parametrize("line", [300, 451, 800])
def test_episodes_cut_mid_file_inside_a_value_are_refused(demo, tmp_path, line):
    """The fuzz found episode files cut mid-file that loaded (exit 0): every value of the
    demo's episodes is quoted, so a cut inside a row ends inside a quote."""
    data = demo["episodes.csv"]
    cut = _line_start(data, line) + 25  # inside the second value, `"07-06-2021"`
    folder = export(tmp_path, citizens_csv=demo["citizens.csv"], episodes_csv=data[:cut])
    assert refusal(folder) == TRUNCATED_IN_QUOTE.format(file="episodes.csv", line=line)


def test_short_last_row_without_line_end_is_truncated_but_with_one_is_ragged(tmp_path):
    head = b"citizen_id;birth_year;notes\nA1;1980;ok\nA2;1981"
    path = export(tmp_path, citizens_csv=head) / "citizens.csv"
    with pytest.raises(InputError) as e:
        readers.read_file(path)
    assert str(e.value) == TRUNCATED_ROW.format(file="citizens.csv", line=3, fields=2, width=3)
    path.write_bytes(head + b"\n")  # a line end: the row was written short, not cut
    with pytest.raises(InputError) as e:
        readers.read_file(path)
    assert str(e.value) == "citizens.csv: line 3 has 2 fields; expected 3 (separator ';')"


def test_last_record_spanning_lines_cut_in_its_note_names_its_first_line(tmp_path):
    """A record whose note holds newlines: the line named is where the record starts."""
    path = export(
        tmp_path,
        citizens_csv=b'citizen_id;birth_year;notes\nA1;1980;"a\nb"\nA2;1981;"c\nd\ne',
    ) / "citizens.csv"
    with pytest.raises(InputError) as e:
        readers.read_file(path)
    assert str(e.value) == TRUNCATED_IN_QUOTE.format(file="citizens.csv", line=4)


def test_utf8_cut_inside_a_character_is_truncated_not_windows_1252(tmp_path):
    """Before: the strict UTF-8 decode failed on the last byte, and the file was read as
    Windows-1252 with every æ, ø, å garbled (exit 0)."""
    text = "citizen_id;birth_year;notes\nA1;1980;Søren\nA2;1981;på Ærø\n".encode()
    path = export(tmp_path, citizens_csv=text[: text.index("Ærø".encode()) + 1]) / "citizens.csv"
    with pytest.raises(InputError) as e:
        readers.read_file(path)
    assert str(e.value) == (
        "citizens.csv: the file ends inside a UTF-8 character on line 3: it looks truncated; "
        "expected the complete export"
    )


def test_cli_exit_3_names_the_truncation(demo, tmp_path):
    data = demo["citizens.csv"]
    folder = export(tmp_path, citizens_csv=data[:-20], episodes_csv=demo["episodes.csv"])
    result = CliRunner().invoke(
        app, ["validate", "--input", str(folder), "--reference-date", REF.isoformat()]
    )
    assert result.exit_code == 3, result.output
    assert "citizens.csv: malformed CSV: the file ends inside a quoted field of the record on " \
        f"line {ROWS + 1}: it looks truncated" in result.stderr
    assert "Traceback" not in result.output


# --- encodings ---------------------------------------------------------------------------

WIDE = [
    ("utf-16", "UTF-16 (little-endian, with a byte-order mark)"),
    ("utf-16-le", "UTF-16 (little-endian, without a byte-order mark)"),
    ("utf-16-be", "UTF-16 (big-endian, without a byte-order mark)"),
    ("bom+utf-16-be", "UTF-16 (big-endian, with a byte-order mark)"),
    ("utf-32", "UTF-32 (little-endian, with a byte-order mark)"),
    ("utf-32-le", "UTF-32 (little-endian, without a byte-order mark)"),
    ("utf-32-be", "UTF-32 (big-endian, without a byte-order mark)"),
    ("bom+utf-32-be", "UTF-32 (big-endian, with a byte-order mark)"),
]


def _encode(text: str, encoding: str) -> bytes:
    if encoding.startswith("bom+"):
        bom = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-32-be": codecs.BOM_UTF32_BE}
        return bom[encoding[4:]] + text.encode(encoding[4:])
    return text.encode(encoding)


@pytest.mark.parametrize(("encoding", "named"), WIDE)
def test_utf16_and_utf32_are_named(demo, tmp_path, encoding, named):
    """Before: 'citizens.csv: line 2 has 1 fields; expected 34 (separator ';')'."""
    text = demo["citizens.csv"].decode("cp1252")  # æ, ø, å in the notes
    folder = export(
        tmp_path, citizens_csv=_encode(text, encoding), episodes_csv=demo["episodes.csv"]
    )
    assert refusal(folder) == (
        f"citizens.csv: the file is {named} text; expected UTF-8 or Windows-1252: save it "
        "again as CSV in UTF-8 (Excel: 'CSV UTF-8') or in Windows-1252 (Excel: 'CSV')"
    )


def test_utf16_episodes_file_is_named_too(demo, tmp_path):
    folder = export(
        tmp_path,
        citizens_csv=demo["citizens.csv"],
        episodes_csv=demo["episodes.csv"].decode("cp1252").encode("utf-16"),
    )
    assert refusal(folder).startswith(
        "episodes.csv: the file is UTF-16 (little-endian, with a byte-order mark) text;"
    )


def test_a_workbook_saved_as_csv_is_not_text(tmp_path):
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    book.add_worksheet().write_row(0, 0, ["citizen_id", "birth_year"])
    book.close()
    path = export(tmp_path, citizens_csv=buf.getvalue()) / "citizens.csv"
    with pytest.raises(InputError) as e:
        readers.read_file(path)
    assert str(e.value).startswith("citizens.csv: the file holds a NUL byte (offset ")
    assert "so it is not text; expected UTF-8 or Windows-1252" in str(e.value)


# --- a header and nothing below it -------------------------------------------------------


@pytest.mark.parametrize("header", [b"citizen_id;birth_year", b"citizen_id;birth_year\r\n",
                                    b"citizen_id;birth_year\n\n\n"])
def test_header_only_is_an_empty_table(tmp_path, header):
    """Before, without a line end: 'citizens.csv: malformed CSV; expected 2 fields per row'."""
    folder = export(tmp_path, citizens_csv=header, episodes_csv=EPISODES.encode())
    assert refusal(folder) == (
        "citizens.csv: empty table; expected at least one citizens row below the header"
    )


# --- a cell larger than the CSV reader's block (16 MB) ------------------------------------

NOTE = "æ" * (50 << 20)  # 50 MB in Windows-1252


def test_a_50_mb_note_is_read(tmp_path):
    """Before: 'malformed CSV near line 2 (field larger than field limit (131072))'."""
    folder = export(
        tmp_path,
        citizens_csv=f'citizen_id;birth_year;notes\r\nA1;1980;"{NOTE}"\r\nA2;1981;kort\r\n'
        .encode("cp1252"),
        episodes_csv=EPISODES.encode(),
    )
    con = warehouse.connect()
    ingest(con, CFG, folder, "test")
    assert con.execute(
        "select citizen_id, notes, _line from staging.citizens order by 1"
    ).fetchall() == [("A1", NOTE, 2), ("A2", "kort", 3)]


def test_a_large_note_among_blank_lines_is_read_by_the_strict_reader(tmp_path):
    """Blank lines make the line numbers come from Python's csv module, whose own limit on
    a cell is 128 KB. Before: 'malformed CSV near line 3 (field larger than field limit
    (131072))'."""
    note = "ø" * (1 << 20)
    path = export(
        tmp_path,
        citizens_csv=f'citizen_id;birth_year;notes\r\n\r\nA1;1980;"{note}"\r\n\r\nA2;1981;kort\r\n'
        .encode("cp1252"),
    ) / "citizens.csv"
    read = readers.read_file(path)
    assert read.table["_line"].to_pylist() == [3, 5]
    assert read.table["notes"].to_pylist() == [note, "kort"]


# --- Parquet extra columns of nested types -----------------------------------------------


def nested_citizens() -> pa.Table:
    return pa.table(
        {
            "citizen_id": ["P1", "P2"],
            "birth_year": [1980, 1990],
            "tags": pa.array([[1, 2], None], pa.list_(pa.int64())),
            "contact": pa.array(
                [{"phone": "1234", "since": dt.date(2020, 1, 31)}, {"phone": None, "since": None}]
            ),
            "scores": pa.array([[("a", 1), ("b", 2)], []], pa.map_(pa.string(), pa.int64())),
            "history": pa.array([[{"år": 2019, "note": "ø"}], []]),
            "blob": pa.array([b"\xff\x00", b"ok"], pa.binary()),
        }
    )


def test_parquet_nested_extra_columns_are_kept_as_json(tmp_path):
    """Before: ArrowNotImplementedError 'Unsupported cast from list<element: int64> to utf8',
    a traceback and exit 1."""
    pq.write_table(nested_citizens(), tmp_path / "citizens.parquet")
    export(tmp_path, episodes_csv=EPISODES.replace("A", "P").encode())
    con = warehouse.connect()
    result = ingest(con, CFG, tmp_path, "test")
    assert result.files[0].extra_columns == ("tags", "contact", "scores", "history", "blob")
    assert con.execute(
        "select citizen_id, tags, contact, scores, history, blob from raw.citizens order by 1"
    ).fetchall() == [
        ("P1", "[1, 2]", '{"phone": "1234", "since": "2020-01-31"}', '[["a", 1], ["b", 2]]',
         '[{"år": 2019, "note": "ø"}]', "\\xff\x00"),
        ("P2", None, '{"phone": null, "since": null}', "[]", "[]", "ok"),
    ]
    assert con.execute("select citizen_id, birth_year from staging.citizens order by 1"
                       ).fetchall() == [("P1", 1980), ("P2", 1990)]


def test_cli_validates_a_parquet_export_with_nested_columns(tmp_path):
    pq.write_table(nested_citizens(), tmp_path / "citizens.parquet")
    pq.write_table(
        pa.table({"citizen_id": ["P1"], "start_date": [dt.date(2020, 1, 1)],
                  "benefit": ["dagpenge"], "flags": pa.array([{"x": [1]}])}),
        tmp_path / "episodes.parquet",
    )
    result = CliRunner().invoke(
        app, ["validate", "--input", str(tmp_path), "--reference-date", REF.isoformat()]
    )
    assert result.exit_code == 0, result.output


# --- .xlsx and .parquet that are not what their names say --------------------------------


def _workbook() -> bytes:
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["citizen_id", "birth_year"])
    for i in range(300):
        sheet.write_row(i + 1, 0, [f"A{i}", 1980])
    book.close()
    return buf.getvalue()


def _zip_of_text() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a workbook")
    return buf.getvalue()


XLSX_CASES = {
    "empty": (lambda: b"", "the file is empty"),
    "csv": (lambda: b"citizen_id;birth_year\nA1;1980\n",
            "it is not a zip archive, as an .xlsx workbook is (a renamed CSV?)"),
    "ole2": (lambda: bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504),
             "it is an OLE2 file: a password-protected workbook, or an old .xls renamed"),
    "cut": (lambda: _workbook()[:3000], "the zip archive has no end record: it looks truncated"),
    "zip": (_zip_of_text, "the workbook is damaged"),
}


@pytest.mark.parametrize("case", sorted(XLSX_CASES))
def test_broken_xlsx_is_refused_naming_the_file(tmp_path, case):
    make, why = XLSX_CASES[case]
    folder = export(tmp_path, citizens_xlsx=make(), episodes_csv=EPISODES.encode())
    message = refusal(folder)
    assert message.startswith("citizens.xlsx: unreadable .xlsx (")
    assert message.endswith(
        f": {why}; expected an Excel workbook whose first sheet holds the table"
    )


def _parquet() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"citizen_id": ["P1"] * 100, "birth_year": [1980] * 100}), buf)
    return buf.getvalue()


PARQUET_CASES = {
    "empty": (lambda: b"", "the file is empty"),
    "csv": (lambda: b"citizen_id;birth_year\nA1;1980\n",
            "it is not a Parquet file (it does not begin with PAR1)"),
    "cut": (lambda: _parquet()[:-30],
            "the file ends before its Parquet footer: it looks truncated"),
    "damaged": (lambda: (lambda b: b[:8] + bytes(len(b) - 16) + b[-8:])(_parquet()),
                "it is damaged"),
}


@pytest.mark.parametrize("case", sorted(PARQUET_CASES))
def test_broken_parquet_is_refused_naming_the_file(tmp_path, case):
    make, why = PARQUET_CASES[case]
    folder = export(tmp_path, citizens_parquet=make(), episodes_csv=EPISODES.encode())
    message = refusal(folder)
    assert message.startswith("citizens.parquet: unreadable .parquet (")
    assert message.endswith(f": {why}; expected an Apache Parquet file")
