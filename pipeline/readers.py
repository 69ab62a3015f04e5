"""Read one input file (.csv, .xlsx, .parquet) into an Arrow table of text cells, each row
with the line it starts on.

Every cell comes back as text exactly as exported (typing and validation are SQL, in
staging), so the three formats share one validation path. File-level problems raise
`InputError` naming the file and what was expected; a value is never echoed in an error,
since any cell may hold personal data.

CSV: encoding is decided by a strict pass over the bytes (BOM -> UTF-8; else UTF-8 if it
decodes; else Windows-1252, whose five undefined bytes make it "unknown encoding"; UTF-16
and UTF-32, by byte-order mark or by the pattern of NUL bytes in the first 4 KB, are named
and refused); the separator is the one the header uses; Arrow's multithreaded reader
parses (a record larger than its block is read again in one block); the physical line of
each record is computed from the newlines inside its quoted values, and reconciled against
the file's own line count, falling back to Python's strict `csv` module (exact start lines)
when they disagree (blank lines, unterminated quotes). A cut file is refused as truncated:
one that ends inside a quoted field (Arrow would close the field at the end of the file),
inside a UTF-8 character, or on a last line with too few fields and no line end. A header
with no record below it, with or without a line end, is an empty table.

Parquet: columns of any type become text; nested ones (list, struct, map) as JSON.

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
import json
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline import privacy
from pipeline.errors import InputError

LINE = "_line"
# the canonical names of the columns holding dates (data contract, table `episodes`)
DATE_COLUMNS: frozenset[str] = frozenset({"start_date", "end_date"})
_CP1252_ONLY = bytes(range(0x80, 0xA0))  # where Windows-1252 and Latin-1 differ
_SEPARATORS = (";", ",", "\t")
_BLOCK = 1 << 24  # Arrow's CSV block: a record may span two blocks at most
_MAX_BLOCK = (1 << 31) - 1  # Arrow's block size is an int32
_WIDE_BOMS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)
_EOF_IN_QUOTE = "unexpected end of data"  # the csv module's words, strict mode
_field_limit_lock = threading.Lock()  # csv.field_size_limit is process-wide; two files are
# read at once


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


def _wide_encoding(head: bytes) -> str | None:
    """What the file is ('is UTF-16 (little-endian, ...) text') if `head`, its first bytes,
    are UTF-16 or UTF-32 text or binary, else None. Without a byte-order mark the NUL
    bytes tell: text of mostly ASCII or Latin letters has NULs in the high bytes of every
    code unit (UTF-16 LE `c\\0i\\0`, UTF-32 BE `\\0\\0\\0c`), which are valid UTF-8, so the
    strict decode would accept them. Any other NUL in the head means binary, not text."""
    for bom, label in _WIDE_BOMS:
        if head.startswith(bom):
            return f"is {label[:-1]}, with a byte-order mark) text"
    if b"\x00" not in head:
        return None
    n = len(head) // 4 * 4
    # the share of NUL bytes at each position of a 4-byte group
    nul = [head[i:n:4].count(0) / max(n // 4, 1) for i in range(4)]
    if nul[2] > 0.9 and nul[3] > 0.9 and nul[0] < 0.5:
        label = "UTF-32 (little-endian)"
    elif nul[0] > 0.9 and nul[1] > 0.9 and nul[3] < 0.5:
        label = "UTF-32 (big-endian)"
    elif nul[1] > 0.5 and nul[3] > 0.5 and nul[0] < 0.5 and nul[2] < 0.5:
        label = "UTF-16 (little-endian)"
    elif nul[0] > 0.5 and nul[2] > 0.5 and nul[1] < 0.5 and nul[3] < 0.5:
        label = "UTF-16 (big-endian)"
    else:
        return f"holds a NUL byte (offset {head.index(0)}), so it is not text"
    return f"is {label[:-1]}, without a byte-order mark) text"


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


def _check_utf8_complete(name: str, data: bytes) -> None:
    """Refuse UTF-8 text cut inside a character. Its strict decode fails only at the last
    bytes, so it would be read as Windows-1252, every letter beyond ASCII garbled. A
    Windows-1252 file fails earlier, unless its only non-ASCII byte is its last (it is
    read as Windows-1252 then). Only a file ending in a non-ASCII byte needs the check."""
    if not data or data[-1] < 0x80:
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        cut = e.reason == "unexpected end of data" and e.end == len(data)
        if cut and not data[: e.start].isascii():
            line = data.count(b"\n", 0, e.start) + 1
            raise InputError(
                f"{name}: the file ends inside a UTF-8 character on line {line}: it looks "
                "truncated; expected the complete export"
            ) from None


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


def _allow_fields_of(size: int) -> None:
    """Let the csv module read a cell as large as the file (its default limit is 128 KB):
    the file is in memory already, so a large note is no risk, and a limit would report it
    as a quoting error."""
    with _field_limit_lock:
        if csv.field_size_limit() < size:
            csv.field_size_limit(size)


def _arrow_csv(data: bytes, names: list[str], skip: int, sep: str, block: int) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, block_size=block),
        parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=b'"' in data),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False
        ),
    )


def _read_csv(path: Path) -> FileRead:
    name = path.name
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    wide = _wide_encoding(raw[:4096])
    if wide:
        raise InputError(
            f"{name}: the file {wide}; expected UTF-8 or Windows-1252: save it again "
            "as CSV in UTF-8 (Excel: 'CSV UTF-8') or in Windows-1252 (Excel: 'CSV')"
        )
    _check_utf8_complete(name, raw)
    encoding, data = _to_utf8(name, raw)
    del raw  # only the UTF-8 text is kept: peak memory is what one table needs
    _allow_fields_of(len(data))
    header, sep, header_span = _header(name, data)
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = _arrow_csv(data, names, header_span, sep, _BLOCK)
    except pa.ArrowInvalid as e:
        table = None  # Arrow's message quotes the offending row: never show it
        if "straddl" in str(e) and len(data) > _BLOCK:
            # a record larger than a block (a note of tens of MB): read again as one block,
            # on one thread; rare enough not to size every file's blocks for it
            try:
                table = _arrow_csv(data, names, header_span, sep, min(len(data) + 1, _MAX_BLOCK))
            except pa.ArrowInvalid as again:
                if "straddl" in str(again):
                    raise InputError(
                        f"{name}: a record is larger than {_MAX_BLOCK >> 20} MB, the most "
                        "the CSV reader can hold; expected smaller cells"
                    ) from None
    if table is None:
        if not _python_lines(name, data, sep, len(header)):  # raises, naming the line
            # a header and nothing below it (Arrow refuses one without a line end)
            table = pa.table({n: pa.array([], pa.string()) for n in names})
        else:
            raise InputError(f"{name}: malformed CSV; expected {len(header)} fields per row")
    newlines = data.count(b"\n")
    physical = newlines + (0 if data.endswith(b"\n") or not data else 1)
    n = table.num_rows
    quoted = b'"' in data
    if not quoted or physical == header_span + n:
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
        if quoted and n:
            _check_last_record(name, data, sep, int(lines[-1]), newlines)
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


def _ends_in_quote(name: str, line: int) -> InputError:
    return InputError(
        f"{name}: malformed CSV: the file ends inside a quoted field of the record on line "
        f"{line}: it looks truncated (or a quote in that record is never closed); expected "
        "the complete export"
    )


def _check_last_record(name: str, data: bytes, sep: str, line: int, newlines: int) -> None:
    """Refuse a file that ends inside a quoted field. Arrow closes such a field at the end of
    the file, so a file cut inside its last record's note would load with the note cut short.
    Only the last record can be open at the end, and its start `line` is known: the strict
    csv module parses that record alone (it starts after the file's (line-1)-th newline,
    found from the end, so the cost is the size of one record)."""
    start = len(data)
    for _ in range(newlines - line + 2):
        start = data.rfind(b"\n", 0, start)
    try:
        for _ in csv.reader(_text_stream(data[start + 1 :]), delimiter=sep, strict=True):
            pass
    except csv.Error as e:
        # only the end matters here: what else strict mode refuses (`"a"b`) Arrow reads, in
        # every record alike
        if str(e) == _EOF_IN_QUOTE:
            raise _ends_in_quote(name, line) from None


def _python_lines(name: str, data: bytes, sep: str, width: int) -> list[int]:
    """Exact start line of every record (header = line 1) by the strict csv module; blank
    lines are skipped, a ragged row or an unterminated quote is a file-level error (a cut
    file's: "it looks truncated")."""
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
                # too few fields on a last line without a line end: the file was cut there
                cut = len(row) < width and not data.endswith((b"\n", b"\r"))
                if cut and next(reader, None) is None:
                    raise InputError(
                        f"{name}: line {start} has {len(row)} fields; expected {width} "
                        f"(separator {sep!r}), and the file ends there without a line end: "
                        "it looks truncated; expected the complete export"
                    )
                raise InputError(
                    f"{name}: line {start} has {len(row)} fields; expected {width} "
                    f"(separator {sep!r})"
                )
            starts.append(start)
    except csv.Error as e:
        if str(e) == _EOF_IN_QUOTE:
            raise _ends_in_quote(name, previous_end + 1) from None
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


def _xlsx_problem(data: bytes) -> str:
    """Why calamine could not open `data`, told from its framing: an .xlsx workbook is a zip
    archive, which begins with a local file header and ends with its directory's end record
    (within the last 64 KB, the most a zip comment takes)."""
    if not data:
        return "the file is empty"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return "it is an OLE2 file: a password-protected workbook, or an old .xls renamed"
    if not data.startswith(b"PK"):
        return "it is not a zip archive, as an .xlsx workbook is (a renamed CSV?)"
    if b"PK\x05\x06" not in data[-(1 << 16) - 22 :]:
        return "the zip archive has no end record: it looks truncated"
    return "the workbook is damaged"


def _read_xlsx(path: Path, date_columns: Collection[str]) -> FileRead:
    from python_calamine import CalamineWorkbook

    data = path.read_bytes()
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet = book.get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
    except Exception as e:  # calamine raises its own error types per format problem
        raise InputError(
            f"{path.name}: unreadable .xlsx ({type(e).__name__}): {_xlsx_problem(data)}; "
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


def _json_default(value: object) -> object:
    if isinstance(value, (dt.date, dt.time)):  # datetime included
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)  # Decimal, timedelta, an interval: their own text


def _cell(value: object, nested: bool) -> str | None:
    if value is None:
        return None
    if nested:
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return value if isinstance(value, str) else str(_json_default(value))


def _as_text(file: str, name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column of any type as text. Data contract: extra columns are kept, so one Arrow
    cannot cast to text (a list, struct or map; binary that is not UTF-8; an interval) is
    converted cell by cell: nested values as JSON (a map as a list of [key, value] pairs,
    which keeps every key of any type), others as their Python text."""
    t = col.type
    value_type = t.value_type if pa.types.is_dictionary(t) else t
    nested = pa.types.is_nested(value_type)
    if not nested:
        try:
            if pa.types.is_timestamp(t):
                col = pc.cast(col, pa.date32())
            elif pa.types.is_floating(t):
                # Excel-style 3.0 is the integer 3 (data contract); Arrow prints 3.0 as "3"
                return pc.cast(col, pa.string())
            elif pa.types.is_dictionary(t):
                col = pc.cast(col, t.value_type)
            return pc.cast(col, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            pass
    try:
        return pa.chunked_array(
            [pa.array([_cell(v, nested) for v in c.to_pylist()], pa.string()) for c in col.chunks],
            pa.string(),
        )
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as e:
        shown = privacy.mask_text(name)[0]  # a header may hold a CPR number
        raise InputError(
            f"{file}: column {shown!r} of Parquet type {t} cannot be read as text "
            f"({type(e).__name__}); expected columns of plain values, lists, structs or maps"
        ) from None


def _parquet_problem(data: bytes) -> str:
    """Why Arrow could not open `data`, told from its framing (a Parquet file begins and
    ends with `PAR1`)."""
    if not data:
        return "the file is empty"
    if not data.startswith(b"PAR1"):
        return "it is not a Parquet file (it does not begin with PAR1)"
    if not data.endswith(b"PAR1"):
        return "the file ends before its Parquet footer: it looks truncated"
    return "it is damaged"


def _read_parquet(path: Path) -> FileRead:
    data = path.read_bytes()
    try:
        raw = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        raise InputError(
            f"{path.name}: unreadable .parquet ({e.__class__.__name__}): "
            f"{_parquet_problem(data)}; expected an Apache Parquet file"
        ) from None
    names = raw.column_names
    columns = [_as_text(path.name, n, c) for n, c in zip(names, raw.columns, strict=True)]
    # data contract: row index + 2 (numpy: a Python range takes ~1.5 s for 4.5M rows)
    lines = pa.array(np.arange(2, raw.num_rows + 2, dtype=np.int64))
    table = pa.Table.from_arrays(
        columns + [lines], names=[n.strip() for n in raw.column_names] + [LINE]
    )
    return FileRead(path, table, hashlib.sha256(data).hexdigest(), "parquet", "")
