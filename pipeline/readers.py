"""Read one input file (.csv, .xlsx, .parquet) into an Arrow table of text cells, each row
with the line it starts on.

Every cell comes back as text exactly as exported (typing and validation are SQL, in
staging), so the three formats share one validation path. File-level problems raise
`InputError` naming the file and what was expected; a value is never echoed in an error,
since any cell may hold personal data.

CSV: encoding is decided by a strict pass over the bytes (BOM -> UTF-8; else UTF-8 if it
decodes; else Windows-1252, whose five undefined bytes make it "unknown encoding"); the
separator is the one the header uses; Arrow's multithreaded reader parses; the physical
line of each record is computed from the newlines inside its quoted values, and
reconciled against the file's own line count, falling back to Python's strict `csv`
module (exact start lines) when they disagree (blank lines, unterminated quotes).

xlsx: the first sheet; an Excel date is read as `yyyy-mm-dd`, and so is a bare number in a
date column (an unformatted serial date). Which columns hold dates is decided by header
name, as the file spells it, so the caller passes the names after the config's column
mapping (`read_file(path, date_columns=...)`).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.errors import InputError

LINE = "_line"
# the canonical names of the columns holding dates (data contract, table `episodes`)
DATE_COLUMNS: frozenset[str] = frozenset({"start_date", "end_date"})
_CP1252_ONLY = bytes(range(0x80, 0xA0))  # where Windows-1252 and Latin-1 differ
_SEPARATORS = (";", ",", "\t")


@dataclass(frozen=True)
class FileRead:
    """One input file as text cells, plus what the manifest records about it."""

    path: Path
    table: pa.Table  # header names as in the file (trimmed), all string, plus `_line`
    sha256: str
    encoding: str  # csv: utf-8 | utf-8-sig | cp1252; other formats: the format
    separator: str  # csv only


def read_file(path: Path, date_columns: Collection[str] = DATE_COLUMNS) -> FileRead:
    """Read one input file as text cells (see the module docstring).

    `date_columns` are the names *as the file spells them* (matched like the column mapping:
    trimmed, case-insensitive) of the columns that hold dates. Only the .xlsx reader needs
    them, and before any header is mapped: a number in such a column is an unformatted Excel
    serial date and is read as that date (41275 -> 2013-01-01), elsewhere it stays a number.
    The default is the canonical names; a caller whose config maps the date columns to other
    names (`[columns.episodes] start_date = "Startdato"`) passes the mapped names
    (`ingest._read_table` does), so the reader never has to know about the mapping.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".xlsx":
        return _read_xlsx(path, date_columns)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise InputError(
        f"{path.name}: unsupported file type {suffix!r}; expected .csv, .xlsx or .parquet"
    )


# --- CSV ---------------------------------------------------------------------------------


def _to_utf8(name: str, data: bytes) -> tuple[str, bytes]:
    """The encoding of `data` and its text as UTF-8 bytes without a BOM. One strict decode
    at most: ASCII needs none, and most exports are ASCII outside the notes."""
    if data.startswith(codecs.BOM_UTF8):
        body = data[len(codecs.BOM_UTF8) :]
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(
                f"{name}: has a UTF-8 byte-order mark but byte offset "
                f"{e.start + 3} is not UTF-8; expected UTF-8 text"
            ) from None
        return "utf-8-sig", body
    if data.isascii():
        return "utf-8", data
    try:
        data.decode("utf-8")
        return "utf-8", data
    except UnicodeDecodeError:
        pass
    if len(data.translate(None, _CP1252_ONLY)) == len(data):
        # Windows-1252 is Latin-1 outside 0x80-0x9F (printable there, five bytes undefined):
        # without such bytes, Latin-1's fast codec gives the same text (~3x faster here).
        return "cp1252", data.decode("latin-1").encode("utf-8")
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{name}: unknown encoding: byte 0x{data[e.start]:02x} at offset {e.start} is "
            "neither UTF-8 nor Windows-1252; expected UTF-8 or Windows-1252/Latin-1 text"
        ) from None
    return "cp1252", text.encode("utf-8")


def _text_stream(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")


def _header(name: str, data: bytes) -> tuple[list[str], str, int]:
    """Header fields, separator and the number of physical lines the header spans."""
    end = data.find(b"\n")
    first_line = (data if end < 0 else data[:end]).decode("utf-8")
    if not first_line.strip():
        raise InputError(f"{name}: empty file; expected a header line with column names")
    counts = {s: first_line.count(s) for s in _SEPARATORS}
    sep = max(_SEPARATORS, key=lambda s: counts[s])
    if counts[sep] == 0:
        sep = ";"  # a one-column file: the column check will say what is missing
    reader = csv.reader(_text_stream(data), delimiter=sep, strict=True)
    try:
        header = next(reader)
    except csv.Error as e:
        raise InputError(f"{name}: malformed header line: {e}") from None
    return [h.strip() for h in header], sep, reader.line_num


def _read_csv(path: Path) -> FileRead:
    name = path.name
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    encoding, data = _to_utf8(name, raw)
    del raw  # only the UTF-8 text is kept: peak memory is what one table needs
    header, sep, header_span = _header(name, data)
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=header_span, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=b'"' in data),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid:
        table = None  # Arrow's message quotes the offending row: never show it
    if table is None:
        _python_lines(name, data, sep, len(header))  # raises, naming the line
        raise InputError(f"{name}: malformed CSV; expected {len(header)} fields per row")
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    n = table.num_rows
    if b'"' not in data or physical == header_span + n:
        # no newlines inside values (none can hide in unquoted text, and when the records
        # fill every physical line there are no blank lines nor quoted newlines, both being
        # counts >= 0): record k is on line header_span + 1 + k
        extra = None
        counted = header_span + n
    else:
        extra = pa.array(np.zeros(n, np.int64))
        for col in table.columns:
            extra = pc.add(extra, pc.cast(pc.count_substring(col, "\n"), pa.int64()))
        if isinstance(extra, pa.ChunkedArray):
            extra = extra.combine_chunks()
        counted = header_span + n + (pc.sum(extra).as_py() or 0)
    if counted == physical:
        lines = np.arange(header_span + 1, header_span + 1 + n, dtype=np.int64)
        if extra is not None:
            # each record starts after the lines spanned by the records before it
            lines += np.cumsum(extra.to_numpy()) - extra.to_numpy()
        lines = pa.array(lines)
    else:
        lines = pa.array(_python_lines(name, data, sep, len(header)), pa.int64())
        if len(lines) != n:
            raise InputError(
                f"{name}: malformed CSV: {len(lines)} records by the strict reader, "
                f"{n} by the fast one; expected well-formed quoting"
            )
    table = table.rename_columns(header).append_column(LINE, lines)
    return FileRead(path, table, sha256, encoding, sep)


def _python_lines(name: str, data: bytes, sep: str, width: int) -> list[int]:
    """Exact start line of every record (header = line 1) by the strict csv module; blank
    lines are skipped, a ragged row or an unterminated quote is a file-level error."""
    starts: list[int] = []
    reader = csv.reader(_text_stream(data), delimiter=sep, strict=True)
    previous_end = 0
    try:
        for row in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if start == 1 or not row:
                continue
            if len(row) != width:
                raise InputError(
                    f"{name}: line {start} has {len(row)} fields; expected {width} "
                    f"(separator {sep!r})"
                )
            starts.append(start)
    except csv.Error as e:
        raise InputError(
            f"{name}: malformed CSV near line {previous_end + 1} ({e}); "
            "expected every quoted field to be closed"
        ) from None
    return starts


# --- xlsx --------------------------------------------------------------------------------

_EXCEL_EPOCH = dt.date(1899, 12, 30)


def _cell_text(value: object, date_column: bool) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer():
            if date_column and 0 < value < 2958466:  # an unformatted Excel serial date
                return (_EXCEL_EPOCH + dt.timedelta(days=int(value))).isoformat()
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        if date_column and 0 < value < 2958466:
            return (_EXCEL_EPOCH + dt.timedelta(days=value)).isoformat()
        return str(value)
    return str(value)


def _read_xlsx(path: Path, date_columns: Collection[str]) -> FileRead:
    from python_calamine import CalamineWorkbook

    data = path.read_bytes()
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet = book.get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
    except Exception as e:  # calamine raises its own error types per format problem
        raise InputError(
            f"{path.name}: unreadable .xlsx ({type(e).__name__}); "
            "expected an Excel workbook whose first sheet holds the table"
        ) from None
    # sheet row numbers: the first row returned is sheet row 1 when the empty area is kept
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(v not in (None, "") for v in r)]
    if not numbered:
        raise InputError(f"{path.name}: empty sheet; expected a header row with column names")
    header_line, header_row = numbered[0]
    header = [str(v).strip() if v is not None else "" for v in header_row]
    while header and header[-1] == "":
        header.pop()
    width = len(header)
    body = numbered[1:]
    dates = {d.strip().lower() for d in date_columns}
    columns = []
    for j, name in enumerate(header):
        is_date = name.strip().lower() in dates
        columns.append(
            pa.array(
                [_cell_text(r[j] if j < len(r) else None, is_date) for _, r in body], pa.string()
            )
        )
    lines = pa.array([n for n, _ in body], pa.int64())
    table = pa.Table.from_arrays(columns + [lines], names=header[:width] + [LINE])
    return FileRead(path, table, hashlib.sha256(data).hexdigest(), "xlsx", "")


# --- parquet -----------------------------------------------------------------------------


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_timestamp(t):
        col = pc.cast(col, pa.date32())
    elif pa.types.is_floating(t):
        # Excel-style 3.0 is the integer 3 (data contract); Arrow prints 3.0 as "3" already
        return pc.cast(col, pa.string())
    elif pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
    return pc.cast(col, pa.string())


def _read_parquet(path: Path) -> FileRead:
    data = path.read_bytes()
    try:
        raw = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(
            f"{path.name}: unreadable .parquet ({e.__class__.__name__}); "
            "expected an Apache Parquet file"
        ) from None
    columns = [_as_text(c) for c in raw.columns]
    # data contract: row index + 2 (numpy: a Python range takes ~1.5 s for 4.5M rows)
    lines = pa.array(np.arange(2, raw.num_rows + 2, dtype=np.int64))
    table = pa.Table.from_arrays(
        columns + [lines], names=[n.strip() for n in raw.column_names] + [LINE]
    )
    return FileRead(path, table, hashlib.sha256(data).hexdigest(), "parquet", "")
