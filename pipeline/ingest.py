"""Ingest: an input folder (citizens + episodes as .csv/.xlsx/.parquet) -> the warehouse's
`raw`, `quarantine` and `staging` layers.

Reads the files (`readers`), maps export column names onto the canonical ones (config
`[columns.*]`), applies the privacy rules before anything is stored (`privacy`), loads
`raw.*` as text with file, line and load id, then builds the SQL models that type, validate
and quarantine (`pipeline/sql/quarantine`, `pipeline/sql/staging`) in one transaction.
File-level problems raise `InputError` before the warehouse is touched; too many
quarantined rows raise `RejectedError` after the quarantine is built (the caller keeps it
for diagnosis).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter

from pipeline import privacy, progress, warehouse
from pipeline.config import Config
from pipeline.errors import InputError, RejectedError
from pipeline.readers import LINE, FileRead, read_file
from pipeline.registry import Context
from pipeline.vocabulary import REQUIRED_COLUMNS, TABLE_COLUMNS

TABLES = TABLE_COLUMNS
SUFFIXES = (".csv", ".xlsx", ".parquet")


@dataclass(frozen=True)
class TableCounts:
    file: str
    read: int
    loaded: int
    quarantined: int
    cpr_masked: int

    @property
    def reject_share(self) -> float:
        return self.quarantined / self.read if self.read else 0.0


@dataclass(frozen=True)
class InputFile:
    table: str
    path: str
    sha256: str
    encoding: str
    separator: str
    extra_columns: tuple[str, ...]


@dataclass(frozen=True)
class IngestResult:
    counts: dict[str, TableCounts]
    files: tuple[InputFile, ...]
    pseudonymised: bool
    problems_by_reason: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_warehouse(cls, con: duckdb.DuckDBPyConnection) -> IngestResult | None:
        """What the last ingest into this warehouse recorded (`meta.input_files`,
        `meta.row_counts`), or None if nothing was ingested: a later stage run on its own
        reports the same provenance as a whole run."""
        if not warehouse.exists(con, "meta.input_files"):
            return None
        rows = warehouse.records(
            con,
            "select * from meta.input_files join meta.row_counts using (table_name)"
            " order by table_name",
        )
        reasons = con.execute(
            "select reason, count(*) from quarantine.rows group by 1 order by 1"
        ).fetchall()
        return cls(
            counts={
                r["table_name"]: TableCounts(
                    r["file"], r["rows_read"], r["rows_loaded"], r["rows_quarantined"],
                    r["cpr_masked"],
                )
                for r in rows
            },
            files=tuple(
                InputFile(r["table_name"], r["path"], r["sha256"], r["encoding"],
                          r["separator"], tuple(r["extra_columns"]))
                for r in rows
            ),
            pseudonymised=bool(rows and rows[0]["pseudonymised"]),
            problems_by_reason=dict(reasons),
        )


def find_inputs(input_dir: Path) -> dict[str, Path]:
    """The one file per table in `input_dir` (data contract: two candidates is an error).
    Messages name the folder masked: its name may hold a CPR number."""
    shown = privacy.mask_name(str(input_dir))
    if input_dir.is_file():
        raise InputError(
            f"{shown}: this is a file, and --input takes a folder: the one holding the "
            "citizens and episodes files"
        )
    if not input_dir.is_dir():
        raise InputError(
            f"{shown}: input folder not found; expected a folder holding "
            "citizens and episodes files"
        )
    found: dict[str, Path] = {}
    for table in TABLES:
        candidates = sorted(
            p
            for p in input_dir.iterdir()
            if p.is_file() and p.stem.lower() == table and p.suffix.lower() in SUFFIXES
        )
        if not candidates:
            raise InputError(
                f"{shown}: no {table} file; expected {table}.csv, "
                f"{table}.xlsx or {table}.parquet"
            )
        if len(candidates) > 1:
            raise InputError(
                f"{shown}: two candidate files for table {table}: "
                f"{' and '.join(p.name for p in candidates)}; expected exactly one"
            )
        found[table] = candidates[0]
    return found


def canonical_table(
    read: FileRead, table: str, mapping: dict[str, str]
) -> tuple[pa.Table, tuple[str, ...]]:
    """Rename the file's columns to canonical names; add absent optional columns as empty.
    Returns the table (canonical columns first, then extras, then `_line`) and the extras.

    A header is a name, but may hold a CPR number: an extra column keeps its header masked
    (`privacy.mask_name`) in the warehouse and in the list of extras, and no message echoes a
    header or a mapped name unmasked. An extra whose name is taken (by a canonical column,
    or by another header masked alike; DuckDB names are case-insensitive) gets `_extra`."""
    name = read.path.name
    by_key: dict[str, str] = {}
    for col in read.table.column_names:
        if col == LINE:
            continue
        key = col.strip().lower()
        if key in by_key:
            raise InputError(
                f"{name}: column {privacy.mask_name(col)!r} appears twice (names are matched "
                "case-insensitively); expected unique column names"
            )
        by_key[key] = col
    wanted = {canon: export.strip().lower() for canon, export in mapping.items()}
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    used: set[str] = set()
    n = read.table.num_rows
    for canon in TABLES[table]:
        key = wanted.get(canon, canon)
        if key in by_key:
            columns[canon] = read.table[by_key[key]]
            used.add(key)
        elif canon in REQUIRED_COLUMNS[table]:
            hint = (f" (mapped from {privacy.mask_name(mapping[canon])!r} in the config)"
                    if canon in mapping else "")
            found = ", ".join(repr(privacy.mask_name(c)) for c in by_key.values())
            raise InputError(
                f"{name}: missing required column {canon!r}{hint}; expected "
                f"columns {', '.join(REQUIRED_COLUMNS[table])} at least, found {found}."
                f" If the export names it otherwise, map it in a config file:"
                f' [columns.{table}] {canon} = "<its name in the export>"'
            )
        else:
            columns[canon] = pa.nulls(n, pa.string())
    extras = tuple(by_key[k] for k in by_key if k not in used)
    taken = {c.lower() for c in columns} | {LINE}
    for col in extras:
        stored = privacy.mask_name(col)
        while stored.lower() in taken:
            stored += "_extra"
        taken.add(stored.lower())
        columns[stored] = read.table[col]
    columns[LINE] = read.table[LINE]
    return pa.table(columns), tuple(privacy.mask_name(col) for col in extras)


def _mask_cells(t: pa.Table) -> tuple[pa.Table, int]:
    """Mask CPR-like numbers in every text column except the id (handled on its own)."""
    total = 0
    for i, name in enumerate(t.column_names):
        if name in ("citizen_id", LINE):
            continue
        col = t.column(i)
        if not privacy.may_hold_cpr(col):  # the usual case: one pass over the column's bytes
            continue
        longest = pc.max(pc.utf8_length(col)).as_py()
        if not longest or longest < 10:  # a CPR-like number needs ten characters (a hit
            continue  # across cells of short values, e.g. years end to end, is no CPR)
        masked, count = privacy.mask_array(col.combine_chunks())
        if count:
            t = t.set_column(i, name, masked)
            total += count
    return t, total


def _read_table(table: str, path: Path, cfg: Config) -> tuple[pa.Table, InputFile, int]:
    """Read, map and mask one table; raise InputError on a file-level problem.

    The config's column mapping is applied twice: to the reader's list of date columns
    first, since an .xlsx reader decides by header name which numbers are Excel serial
    dates before any header is mapped (`start_date = "Startdato"`: cells under `Startdato`
    are dates), then to the headers themselves (`canonical_table`)."""
    from pipeline.readers import DATE_COLUMNS

    mapping = cfg.columns.get(table, {})
    progress.count(privacy.mask_name(path.name), 0, None, "rows read")
    read = read_file(path, date_columns={mapping.get(c, c) for c in DATE_COLUMNS})
    if read.table.num_rows == 0:
        raise InputError(
            f"{path.name}: empty table; expected at least one {table} row below the header"
        )
    t, extras = canonical_table(read, table, mapping)
    t, masked = _mask_cells(t)
    file = InputFile(table, str(path), read.sha256, read.encoding, read.separator, extras)
    return t, file, masked


def _cpr_ids(t: pa.Table) -> int:
    return privacy.count_cpr_ids(t["citizen_id"].combine_chunks())


def read_and_load_raw(
    con: duckdb.DuckDBPyConnection,
    input_dir: Path,
    cfg: Config,
    load_id: str,
    key: privacy.PseudonymKey | None,
) -> tuple[list[InputFile], dict[str, int]]:
    """Read, map and check both tables, and write each one's raw layer as soon as it is
    read; return the files (in table order) and the CPR-like numbers masked per table.

    The two files are read at the same time: part of reading one (reading, hashing and
    decoding its bytes) keeps a single core busy, and the other file's parsing, or writing
    the raw layer of the file read first, can use the rest. Problems are raised in table
    order, as if read one after the other. A table with CPR-like ids is never written; the
    caller's transaction is rolled back on any error, so nothing is kept."""
    paths = find_inputs(input_dir)
    cpr_ids: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        futures = {pool.submit(_read_table, t, path, cfg): t for t, path in paths.items()}
        for future in as_completed(futures):
            if future.exception() is not None:
                break  # raised below, in table order
            t, file, _ = future.result()
            cpr_ids[file.table] = _cpr_ids(t)
            if cpr_ids[file.table] and key is None:
                break
            load_raw(con, t, file, load_id, key)
    done = {table: future.result() for future, table in futures.items()}  # in table order
    for table, (t, _, _) in done.items():
        if table not in cpr_ids:
            cpr_ids[table] = _cpr_ids(t)
    if sum(cpr_ids.values()) and key is None:
        raise InputError(
            f"{', '.join(paths)}: column citizen_id holds {sum(cpr_ids.values())} "
            "CPR-like id(s) in the two tables together; expected pseudonymous ids. Nothing was "
            "stored. Export pseudonymous ids, or switch on pseudonymisation with a secret key "
            f"(environment variable {privacy.KEY_ENV} or config pseudonym_key_file)"
        )
    files = [done[t][1] for t in paths]
    masked = {t: done[t][2] for t in paths}
    return files, masked


# DuckDB stores a table in row groups of this many rows. Given Arrow record batches of exactly
# one row group each, it writes them in parallel, each straight into its own row group; given
# batches of any other size (the CSV reader's hold ~60,000 rows) it must merge them into row
# groups first, which made writing raw take ~40 % longer (1M citizens: 8.8 s -> 6.3 s).
ROW_GROUP_ROWS = 122_880


def _row_group_batches(t: pa.Table, task: str = "") -> pa.RecordBatchReader:
    """`t`, same rows in the same order, as a stream of record batches of one DuckDB row
    group each, cut as DuckDB reads them (so no second copy of the table is held). The rows
    DuckDB has taken so far are counted as read (`progress`, task `task`)."""

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        for start in range(0, t.num_rows, ROW_GROUP_ROWS):
            progress.count(task, done, t.num_rows, "rows read")
            for batch in t.slice(start, ROW_GROUP_ROWS).combine_chunks().to_batches():
                yield batch
                done += batch.num_rows

    return pa.RecordBatchReader.from_batches(t.schema, batches())


def load_raw(
    con: duckdb.DuckDBPyConnection,
    t: pa.Table,
    f: InputFile,
    load_id: str,
    key: privacy.PseudonymKey | None,
) -> None:
    """raw.<table>: the file as read (text), ids pseudonymised when a key is given."""
    if key is not None:
        t = t.set_column(0, "citizen_id", privacy.normalise_ids(t["citizen_id"].combine_chunks()))
    task = privacy.mask_name(Path(f.path).name)  # a file name may hold a CPR number
    con.register("arrow_input", _row_group_batches(t, task))
    id_sql = privacy.HMAC_SQL if key is not None else "citizen_id"
    params = {"load_id": load_id, "file": Path(f.path).name}
    if key is not None:
        params |= key.hmac_params()
    warehouse.create_table_as(
        con,
        f"raw.{f.table}",
        f"""select {id_sql} as citizen_id, * exclude (citizen_id, {LINE}),
            $file as _file, {LINE} as _line, $load_id as _load_id
        from arrow_input""",
        params,
    )
    con.unregister("arrow_input")
    progress.count(task, t.num_rows, t.num_rows, "rows read")


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    con.execute((resources.files("pipeline") / "sql" / "macros.sql").read_text("utf-8"))


def input_files_model(con: duckdb.DuckDBPyConnection, ctx: Context) -> pa.Table:
    """meta.input_files: one row per input file as read (a Python model of the registry):
    its name, path, SHA-256, encoding and separator, the columns it had beyond the contract,
    the CPR-like numbers masked in it, and the load id. The path is stored masked
    (`privacy.mask_name`): a folder's name may hold a CPR number, and the path goes on to
    the manifest (`IngestResult.from_warehouse`)."""
    files: list[InputFile] = ctx.inputs["files"]
    masked: dict[str, int] = ctx.inputs["masked"]
    return pa.table(
        {
            "table_name": [f.table for f in files],
            "file": [privacy.mask_name(Path(f.path).name) for f in files],
            "path": [privacy.mask_name(f.path) for f in files],
            "sha256": [f.sha256 for f in files],
            "encoding": [f.encoding for f in files],
            "separator": [f.separator for f in files],
            "extra_columns": pa.array([list(f.extra_columns) for f in files],
                                      pa.list_(pa.string())),
            "cpr_masked": pa.array([masked[f.table] for f in files], pa.int64()),
            "pseudonymised": pa.array([ctx.inputs["pseudonymised"]] * len(files), pa.bool_()),
            "load_id": [ctx.inputs["load_id"]] * len(files),
        }
    )


def ingest(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    input_dir: Path,
    load_id: str,
    step: Callable[[str], None] = lambda _: None,
) -> IngestResult:
    """Load `input_dir` into raw, quarantine and staging; return the reconciled counts.

    Raises InputError (nothing committed) for file-level problems and RejectedError (layers
    written, so the quarantine can be kept) when a table's reject share exceeds the config's.
    """
    cfg = cfg.resolved()
    assert cfg.reference_date is not None
    key = privacy.load_key(cfg.pseudonym_key_file)
    step("reading input files into the raw layer")
    define_macros(con)
    params: dict[str, Any] = {
        "reference_year": cfg.reference_date.year,
        "municipality_code": cfg.municipality_code,
    }
    with warehouse.transaction(con):
        files, masked = read_and_load_raw(con, input_dir, cfg, load_id, key)
        # the files' Arrow tables are gone; give their memory back to the system instead of
        # keeping it pooled for the rest of a run that allocates little through Arrow
        pa.default_memory_pool().release_unused()
        step("validating into staging and quarantine")
        inputs = {"files": files, "masked": masked, "pseudonymised": key is not None,
                  "load_id": load_id}
        warehouse.build_stage(con, "ingest", Context(cfg, params, inputs=inputs))
    result = IngestResult.from_warehouse(con)
    assert result is not None
    over = [c for c in result.counts.values() if c.reject_share > cfg.max_reject_share]
    if over:
        raise RejectedError(
            "; ".join(
                f"{c.file}: {c.quarantined} of {c.read} rows quarantined ({c.reject_share:.1%})"
                for c in over
            )
            + f"; expected at most {cfg.max_reject_share:.1%} (config max_reject_share)",
            result,
        )
    return result


# quarantine.csv's columns; the text ones are neutralised for a spreadsheet
QUARANTINE_COLUMNS: tuple[str, ...] = ("table_name", "file", "line", "column_name", "value",
                                       "reason")
_QUARANTINE_TEXT = frozenset(QUARANTINE_COLUMNS) - {"line"}
# the most rows a worksheet holds (Excel 2007 and later, LibreOffice 7.4 and later)
EXCEL_ROWS = 1_048_576


def export_quarantine(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Write `quarantine.rows` (if ingest got that far) to `path` (quarantine.csv) and to
    quarantine.xlsx beside it, for whoever fixes the export: table, file, line, column,
    value, reason.

    The .csv is the machine-readable file (UTF-8, comma, RFC 4180: scripts read it); a
    Danish Excel opens it as one column of mojibake, so the same rows, with the same headings,
    go to the .xlsx, which opens right with a double-click (`write_quarantine_xlsx`). Both are
    opened in a spreadsheet, and a value holds whatever the export had (`=HYPERLINK(...)`):
    every text cell that a spreadsheet would read as a formula gets a leading ' in both
    (`privacy.spreadsheet_text_sql`, OWASP), so the two files hold the same cells; COPY
    quotes as RFC 4180 says."""
    if warehouse.exists(con, "quarantine.rows"):
        select = ", ".join(
            f"{privacy.spreadsheet_text_sql(c)} as {c}" if c in _QUARANTINE_TEXT else c
            for c in QUARANTINE_COLUMNS
        )
        query = f"select {select} from quarantine.rows"
        warehouse.copy_to(con, query, path, "header, delimiter ','")
        total = warehouse.count(con, "quarantine.rows")  # before the rows: one result a time
        write_quarantine_xlsx(con.execute(query), total, path.with_suffix(".xlsx"), path.name)


def write_quarantine_xlsx(
    rows: duckdb.DuckDBPyConnection, total: int, path: Path, csv_name: str,
    max_rows: int = EXCEL_ROWS,
) -> int:
    """The `total` quarantine rows of `rows` (a query's result, in QUARANTINE_COLUMNS order)
    as one worksheet: the headings of the .csv in bold, frozen, with a filter; `line` a
    number, every other cell text (never a formula, number or link guessed from it).
    Streamed row by row (xlsxwriter's constant_memory), so a large quarantine costs no
    memory. Past `max_rows` (a worksheet's limit) it holds the first rows and, in its last
    row, a note (Danish and English: ingest has no language) that all of them are in
    `csv_name`. Returns the data rows written."""
    wb = xlsxwriter.Workbook(str(path), {
        "constant_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
        "strings_to_urls": False,
    })
    try:
        wb.set_properties({"created": dt.datetime(2000, 1, 1)})  # same rows, same bytes
        ws = wb.add_worksheet("quarantine")
        bold = wb.add_format({"bold": True})
        for j, name in enumerate(QUARANTINE_COLUMNS):
            ws.write_string(0, j, name, bold)
        ws.freeze_panes(1, 0)
        for j, width in enumerate((11, 16, 8, 16, 30, 24)):
            ws.set_column(j, j, width)
        # the headings, and the note when the rows do not fit
        room = total if total <= max_rows - 1 else max_rows - 2
        written = 0
        while written < room and (batch := rows.fetchmany(min(10_000, room - written))):
            for row in batch:
                written += 1
                for j, value in enumerate(row):
                    if value is None:
                        continue
                    if QUARANTINE_COLUMNS[j] == "line":
                        ws.write_number(written, j, value)
                    else:
                        ws.write_string(written, j, str(value))
        ws.autofilter(0, 0, written, len(QUARANTINE_COLUMNS) - 1)
        if written < total:
            def da(n: int) -> str:
                return f"{n:,}".replace(",", ".")

            ws.write_string(
                written + 1, 0,
                f"Arket viser de første {da(written)} af {da(total)} rækker; alle står i "
                f"{csv_name}. / This sheet shows the first {written:,} of {total:,} rows; "
                f"all of them are in {csv_name}.",
                wb.add_format({"bold": True, "font_color": "#9c0006"}),
            )
    finally:
        wb.close()
    return written


def validate(
    cfg: Config, input_dir: Path, step: Callable[[str], None] = lambda _: None
) -> tuple[IngestResult, list[tuple]]:
    """Ingest into a throw-away in-memory warehouse: the counts and quarantine rows, nothing
    written. Raises like `ingest`."""
    con = warehouse.connect()
    try:
        result = ingest(con, cfg, input_dir, "validate", step)
        rows = con.execute("select * from quarantine.rows").fetchall()
        return result, rows
    finally:
        con.close()
