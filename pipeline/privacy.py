"""Privacy at the door: CPR-like numbers are found, masked or pseudonymised before anything
is stored (data contract, *Privacy*).

Works on Arrow string arrays as read from an input file, before they reach the warehouse.
A cheap RE2 prefilter (Arrow, vectorised) finds the few cells holding a ten-digit run; only
those go through the exact Python check, which needs look-arounds and a calendar. Before
that, `may_hold_cpr` runs the same prefilter once over a column's whole text buffer, so a
column without a single hit (most are) costs one pass over its bytes, not one match per cell.

Names are masked like values (`mask_name`): a folder, a file name or a column header holding
a CPR-like number is stored, logged and shown with [CPR] in its place.

Also here, for text that leaves the pipeline for a spreadsheet: which text a spreadsheet would
read as a formula (`looks_like_formula`; `spreadsheet_text_sql` in SQL) and how a CSV cell of
it is neutralised (OWASP, *CSV Injection*).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CPR_MASK = "[CPR]"
KEY_ENV = "M3_PSEUDONYM_KEY"

# data contract: ten digits, optionally DDMMYY-SSSS or DDMMYY SSSS, not part of a longer run
# of digits. Whether the first six form a date is checked in `_valid_ddmmyy`.
_CPR = re.compile(r"(?<!\d)(\d{2})(\d{2})(\d{2})[- ]?(\d{4})(?!\d)")
_CPR_FULL = re.compile(r"\s*(\d{6})[- ]?(\d{4})\s*")
# RE2 prefilter: every CPR-like value contains this; most cells are rejected at C speed.
_PREFILTER = r"\d{6}[- ]?\d{4}"
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class PseudonymKeyError(ValueError):
    """The pseudonymisation key file is unreadable or empty."""


def _valid_ddmmyy(dd: str, mm: str, yy: str) -> bool:
    """DDMMYY is a real date in some century (29 February needs a leap year: YY % 4 == 0
    holds for 19YY or 20YY, and 2000 makes YY = 00 a leap year too)."""
    d, m, y = int(dd), int(mm), int(yy)
    if not 1 <= m <= 12 or d < 1:
        return False
    if m == 2 and d == 29:
        return y % 4 == 0
    return d <= _DAYS[m - 1]


def find_cpr(text: str) -> list[str]:
    """The CPR-like numbers in `text`, as written."""
    return [
        m.group(0) for m in _CPR.finditer(text) if _valid_ddmmyy(m.group(1), m.group(2), m.group(3))
    ]


def mask_text(text: str) -> tuple[str, int]:
    """`text` with each CPR-like number replaced by [CPR], and how many were replaced."""
    count = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal count
        if _valid_ddmmyy(m.group(1), m.group(2), m.group(3)):
            count += 1
            return CPR_MASK
        return m.group(0)

    return _CPR.sub(repl, text), count


def mask_name(name: str) -> str:
    """A folder, file or column name (or a whole path) with each CPR-like number replaced
    by [CPR]: what a log line, a message, the manifest or the warehouse may show of it."""
    return mask_text(name)[0]


def shown_name(path: str) -> str:
    """What a published page may show of a file's path: its name alone (no folder of the
    machine that ran it), masked."""
    return mask_name(Path(path).name)


def cpr_digits(value: str) -> str | None:
    """The ten digits if the whole value is one CPR-like number, else None."""
    m = _CPR_FULL.fullmatch(value)
    if m and _valid_ddmmyy(m.group(1)[:2], m.group(1)[2:4], m.group(1)[4:]):
        return m.group(1) + m.group(2)
    return None


_OFFSETS = {pa.string(): np.int32, pa.large_string(): np.int64}


def may_hold_cpr(col: pa.Array | pa.ChunkedArray) -> bool:
    """False only if no cell of `col` can hold a CPR-like number: the RE2 prefilter finds
    nothing in the text buffer of any chunk (its cells end to end), matched as one value.
    Every cell is a slice of that buffer, so a cell the per-cell prefilter would pick is a
    hit here too; a hit straddling two cells is a false alarm that only costs the per-cell
    pass (`mask_array`)."""
    for chunk in col.chunks if isinstance(col, pa.ChunkedArray) else [col]:
        if chunk.null_count == len(chunk):
            continue
        offset_type = _OFFSETS.get(chunk.type)
        if offset_type is None:
            return True  # not a plain text array: leave it to the per-cell pass
        _, offsets, data = chunk.buffers()
        if data is None:
            continue  # only empty cells
        bounds = np.frombuffer(offsets, offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        start, size = int(bounds[0]), int(bounds[-1] - bounds[0])
        one_value = pa.py_buffer(np.array([0, size], offset_type))
        text = pa.Array.from_buffers(chunk.type, 1, [None, one_value, data.slice(start, size)])
        if pc.match_substring_regex(text, _PREFILTER)[0].as_py():
            return True
    return False


def _candidates(arr: pa.Array) -> list[int]:
    hit = pc.fill_null(pc.match_substring_regex(arr, _PREFILTER), False)
    return pc.indices_nonzero(hit).to_pylist()


def mask_array(arr: pa.Array) -> tuple[pa.Array, int]:
    """Mask CPR-like numbers in a string array; return the new array and the count masked."""
    idx = _candidates(arr)
    if not idx:
        return arr, 0
    values = arr.to_pylist()
    total = 0
    for i in idx:  # only the prefiltered cells: a handful, not one per row
        values[i], n = mask_text(values[i])
        total += n
    return pa.array(values, type=pa.string()), total


def count_cpr_ids(arr: pa.Array) -> int:
    """How many ids contain a CPR-like number (a reason to refuse the file without a key)."""
    if not may_hold_cpr(arr):
        return 0
    return sum(
        1 for v in pc.take(arr, pa.array(_candidates(arr), pa.int64())).to_pylist() if find_cpr(v)
    )


def normalise_ids(arr: pa.Array) -> pa.Array:
    """Trim ids and reduce a CPR-like id to its ten digits, so `010190-1234` and
    `0101901234` are one person after hashing (data contract)."""
    arr = pc.utf8_trim_whitespace(arr)
    idx = _candidates(arr)
    if not idx:
        return arr
    values = arr.to_pylist()
    for i in idx:
        digits = cpr_digits(values[i])
        if digits is not None:
            values[i] = digits
    return pa.array(values, type=pa.string())


@dataclass(frozen=True)
class PseudonymKey:
    """A secret key for HMAC-SHA256 pseudonymisation; `source` says where it came from."""

    secret: bytes
    source: str

    def hmac_params(self) -> dict[str, bytes]:
        """The inner and outer padded keys (RFC 2104), so DuckDB can compute the HMAC as
        sha256(opad || sha256(ipad || message)) set-based, without a Python call per id."""
        key = self.secret
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        return {
            "hmac_ipad": bytes(b ^ 0x36 for b in key),
            "hmac_opad": bytes(b ^ 0x5C for b in key),
        }

    def pseudonym(self, value: str) -> str:
        """Reference implementation (tests, small look-ups): the id's pseudonym."""
        return hmac.new(self.secret, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def load_key(key_file: str = "") -> PseudonymKey | None:
    """The key from the config's key file, else from M3_PSEUDONYM_KEY; None if neither."""
    if key_file:
        try:
            secret = Path(key_file).read_bytes().strip()
        except OSError as e:
            raise PseudonymKeyError(
                f"pseudonym key file {mask_name(key_file)}: {e.strerror}"
            ) from None
        if not secret:
            raise PseudonymKeyError(f"pseudonym key file {mask_name(key_file)} is empty")
        return PseudonymKey(secret, f"file {mask_name(key_file)}")
    env = os.environ.get(KEY_ENV, "")
    if env.strip():
        return PseudonymKey(env.strip().encode("utf-8"), f"${KEY_ENV}")
    return None


# SQL expression (DuckDB) matching PseudonymKey.pseudonym, over a column named `citizen_id`.
HMAC_SQL = "left(sha256($hmac_opad || unhex(sha256($hmac_ipad || encode(citizen_id)))), 32)"


# --- text that leaves for a spreadsheet ------------------------------------------------
# OWASP (CSV Injection): a cell starting with = + - @ is read as a formula, and one starting
# with tab or CR can be, by a reader that strips leading white space first; LF and NUL (which
# ASVS 5.0, 1.2.10, names) for the same reason. A plain decimal number is exempt: -5 or +45
# is read as that number, never as a formula, and is shown as it was exported.
_FORMULA_START = r"[=+\-@\t\r\n\x00]"
_PLAIN_NUMBER = r"[+-]?[0-9]+([.,][0-9]+)?"


def looks_like_formula(text: str) -> bool:
    """Would a spreadsheet read this text, as a cell, as a formula?"""
    return re.match(_FORMULA_START, text) is not None and not re.fullmatch(_PLAIN_NUMBER, text)


def spreadsheet_text_sql(column: str) -> str:
    """SQL (DuckDB) for the text column `column` as a CSV cell that a spreadsheet reads as
    text: a value that `looks_like_formula` gets one ' in front (OWASP's neutralisation),
    any other value (and NULL) is unchanged. `column` is an identifier of the caller's
    query, never data. Same patterns as `looks_like_formula` (RE2 reads them alike)."""
    return (
        f"case when regexp_matches({column}, '^{_FORMULA_START}')"
        f" and not regexp_full_match({column}, '{_PLAIN_NUMBER}')"
        f" then '''' || {column} else {column} end"
    )
