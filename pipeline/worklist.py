"""The re-review worklist and the opportunity catalogue (issue 17): rules and interventions
as data, validated before any data is read.

Reads `pipeline/worklist.toml` (shipped) or a user's file (`--worklist FILE`), and
`pipeline/catalogue.toml` (shipped) or the file config `catalogue` names. A worklist
reason's condition is parsed and compiled by `pipeline.rules` (the one parser), over the
per-citizen facts segment derived as well as the case review's flags (`COLUMNS`); the
registry model `marts.worklist` (report stage) places the compiled reasons in
`sql/marts/worklist.sql`. Writes `worklist.xlsx` and `worklist.csv` (`write_files`): the
citizens behind the reasons, by pseudonymous id, for the job centre's own planning. They are
internal, never published: the page shows the reasons (their number of citizens,
`reason_counts`, only when the page itself is internal: docs/disclosure.md §5), and beside
each profile the interventions of the catalogue with the barriers table's published cells
(no new number).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import xlsxwriter

import pipeline
from pipeline import warehouse
from pipeline.config import Config
from pipeline.privacy import looks_like_formula, spreadsheet_text_sql
from pipeline.rules import (
    MACROS,
    Columns,
    Condition,
    RulesError,
    compile_condition,
    read_toml,
)
from pipeline.vocabulary import COURSE_CLASSES, FLAG_COLUMNS, M3_BANDS

# rows of a worklist sheet: a list longer than this is no month's plan (Copenhagen, the
# largest job centre, has some 10,000-15,000 citizens in M3), and writing it costs about
# 25 s per 100,000 rows; a longer sheet ends with a line pointing to worklist.csv, which
# holds every row. Well within Excel's 1,048,576.
XLSX_ROWS = 50_000
_BATCH = 10_000

SHIPPED_WORKLIST = "pipeline/worklist.toml"
SHIPPED_CATALOGUE = "pipeline/catalogue.toml"

# definitions §1 (issue 15 adds `uncertain`): where a citizen's profile comes from
PROFILE_SOURCE_CODES: tuple[str, ...] = ("rules", "model", "uncertain", "unreviewed")
# What a worklist condition may name: the case review's flags and integers (as the profile
# rules), and what segment derived per citizen (marts.citizens). `profile` and
# `base_profile` take the codes of the rules in use, checked when those are known.
COLUMNS = Columns(
    booleans=(*FLAG_COLUMNS, "reviewed", "complex_case"),
    integers=("departments_involved", "birth_year", "municipality_code", "age", "m3_days",
              "current_course_days", "support_days_total", "courses"),
    categories={"profile": None, "base_profile": None, "course_class": COURSE_CLASSES,
                "m3_band": M3_BANDS, "profile_source": PROFILE_SOURCE_CODES},
)
# definitions §1: the case review's flags are trusted only for a reviewed citizen, so a
# reason that tests one applies to reviewed citizens only (an unreviewed citizen's flags are
# empty: "not focus_activation" would hold for every one of them)
REVIEW_COLUMNS = frozenset((*FLAG_COLUMNS, *MACROS))
FOCUS = tuple(c for c in FLAG_COLUMNS if c.startswith("focus_"))
MOTIVATION = tuple(c for c in FLAG_COLUMNS if c.startswith("motivation_"))
BARRIERS = tuple(c for c in FLAG_COLUMNS if c.startswith("barrier_"))

_CODE = re.compile(r"[a-z][a-z0-9_]*\Z")
_REASON_FIELDS = ("code", "label_da", "label_en", "priority", "condition", "source")
_INTERVENTION_FIELDS = ("code", "label_da", "label_en", "description_da", "description_en",
                        "profiles", "barriers", "source")


class WorklistError(RulesError):
    """The worklist or catalogue file is unreadable or invalid (the message names the entry).
    A RulesError: the command line refuses it as it refuses a bad rules file (exit 2)."""


@dataclass(frozen=True)
class Reason:
    """One worklist reason: why a citizen's case should be looked at again."""

    code: str
    label_da: str
    label_en: str
    priority: int  # 1 = first
    condition: Condition
    source: str  # the seed it comes from

    @property
    def review_only(self) -> bool:
        """Whether the condition tests the case review's flags (then: reviewed citizens)."""
        return any(n in REVIEW_COLUMNS for n in self.condition.names)

    def label(self, lang: str) -> str:
        return self.label_da if lang == "da" else self.label_en

    def sql(self) -> str:
        return f"(reviewed and {self.condition.sql})" if self.review_only else self.condition.sql


@dataclass(frozen=True)
class Worklist:
    """A validated worklist file: its reasons in the order written."""

    version: str
    reasons: tuple[Reason, ...]
    sha256: str
    source: str

    @property
    def shipped(self) -> bool:
        return self.source == SHIPPED_WORKLIST

    def reason(self, code: str) -> Reason:
        return next(r for r in self.reasons if r.code == code)

    def check_profiles(self, codes: Sequence[str], against: str) -> None:
        """Refuse a user's worklist naming a profile the rules in use do not make. The
        shipped one is written for the shipped rules: under others, a reason naming an
        unknown profile simply matches nobody by it."""
        if self.shipped:
            return
        for r in self.reasons:
            for column, code in r.condition.codes:
                if column in ("profile", "base_profile") and code not in codes:
                    raise WorklistError(
                        f"{self.source}: reason '{r.code}': profile {code!r} is not a profile"
                        f" of {against} ({', '.join(codes)})")

    def placeholders(self) -> dict[str, str]:
        """The SQL for marts.worklist's placeholders (validated ASTs and codes only)."""
        items = ", ".join(f"case when {r.sql()} then '{r.code}' end" for r in self.reasons)
        return {
            "reasons": f"list_filter([{items}]::varchar[], lambda r: r is not null)",
            "focus": _true_flags(FOCUS),
            "motivation": _true_flags(MOTIVATION),
        }

    def params(self) -> dict[str, Any]:
        return {"reason_codes": [r.code for r in self.reasons],
                "reason_priorities": [r.priority for r in self.reasons]}


def _true_flags(flags: Sequence[str]) -> str:
    items = ", ".join(f"case when \"{f}\" then '{f}' end" for f in flags)
    return f"list_filter([{items}]::varchar[], lambda f: f is not null)"


@dataclass(frozen=True)
class Intervention:
    """One intervention of the opportunity catalogue."""

    code: str
    label_da: str
    label_en: str
    description_da: str
    description_en: str
    profiles: tuple[str, ...]  # empty: every profile
    barriers: tuple[str, ...]  # barrier_* columns it addresses
    source: str

    def text(self, field: str, lang: str) -> str:
        return getattr(self, f"{field}_{lang}")

    def addresses(self, profile: str) -> bool:
        return not self.profiles or profile in self.profiles


@dataclass(frozen=True)
class Catalogue:
    """A validated opportunity catalogue."""

    version: str
    interventions: tuple[Intervention, ...]
    sha256: str
    source: str

    @property
    def shipped(self) -> bool:
        return self.source == SHIPPED_CATALOGUE

    def check_profiles(self, codes: Sequence[str], against: str) -> None:
        """As `Worklist.check_profiles`: a user's catalogue must name profiles in use."""
        if self.shipped:
            return
        for i in self.interventions:
            unknown = [p for p in i.profiles if p not in codes]
            if unknown:
                raise WorklistError(
                    f"{self.source}: intervention '{i.code}': {', '.join(map(repr, unknown))}"
                    f" is not a profile of {against} ({', '.join(codes)})")


# ---------------------------------------------------------------------------------------
# Reading and validating


def _read(path: Path | None, shipped: str, what: str) -> tuple[dict[str, Any], str, str]:
    return read_toml(path, shipped, what, WorklistError)


def _entries(data: dict[str, Any], key: str, fields: tuple[str, ...],
             source: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The [[key]] tables: each with a valid, unique code, exactly `fields`, and non-empty
    text where text is due. Returns (code, where, table)."""
    for k in data:
        if k not in ("version", key):
            raise WorklistError(f"{source}: unknown key '{k}' (known: version, {key})")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise WorklistError(f"{source}: missing 'version' (text, e.g. version = \"seeds-1\")")
    raw = data.get(key)
    if not raw:
        raise WorklistError(f"{source}: no [[{key}]] tables: the list is empty")
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise WorklistError(f"{source}: '{key}' must be a list of [[{key}]] tables")
    out: list[tuple[str, str, dict[str, Any]]] = []
    for i, t in enumerate(raw, start=1):
        code = t.get("code")
        if not isinstance(code, str) or not _CODE.match(code):
            raise WorklistError(f"{source}: {key} #{i}: field 'code' must be lower-case"
                                " letters, digits and _" if code is not None else
                                f"{source}: {key} #{i}: missing field 'code'")
        where = f"{source}: {key} '{code}'"
        if code in {c for c, _, _ in out}:
            raise WorklistError(f"{where}: duplicate code ({key} #{i})")
        for name in t:
            if name not in fields:
                raise WorklistError(f"{where}: unknown field '{name}' (known: {', '.join(fields)})")
        for name in fields:
            if name not in t:
                raise WorklistError(f"{where}: missing field '{name}'")
            if (name.startswith(("label_", "description_")) or name == "source") and (
                    not isinstance(t[name], str) or not t[name].strip()):
                raise WorklistError(f"{where}: field '{name}' must be non-empty text")
        out.append((code, where, t))
    return out


def load_worklist(path: Path | None = None) -> Worklist:
    """Read and validate a worklist file (None = the one shipped with the package)."""
    data, source, sha = _read(path, SHIPPED_WORKLIST, "worklist")
    reasons = []
    for code, where, t in _entries(data, "reason", _REASON_FIELDS, source):
        priority = t["priority"]
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 1:
            raise WorklistError(f"{where}: field 'priority' must be a positive integer"
                                f" (1 = first), got {priority!r}")
        text = t["condition"]
        if isinstance(text, str):  # a long condition may be written over several lines
            text = " ".join(text.split())
        try:
            cond = compile_condition(text, where, COLUMNS)
        except RulesError as e:
            raise WorklistError(str(e)) from None
        reasons.append(Reason(code, t["label_da"].strip(), t["label_en"].strip(), priority,
                              cond, t["source"].strip()))
    return Worklist(data["version"].strip(), tuple(reasons), sha, source)


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """Read and validate an opportunity catalogue (None or "" = the shipped one)."""
    data, source, sha = _read(Path(path) if path else None, SHIPPED_CATALOGUE, "catalogue")
    items = []
    for code, where, t in _entries(data, "intervention", _INTERVENTION_FIELDS, source):
        lists = {}
        for name in ("profiles", "barriers"):
            v = t[name]
            if not isinstance(v, list) or not all(isinstance(x, str) and _CODE.match(x)
                                                  for x in v):
                empty = "every profile" if name == "profiles" else "none"
                raise WorklistError(f"{where}: field '{name}' must be a list of codes"
                                    f" ([] for {empty})")
            lists[name] = tuple(dict.fromkeys(v))
        unknown = [b for b in lists["barriers"] if b not in BARRIERS]
        if unknown:
            raise WorklistError(f"{where}: unknown barrier {unknown[0]!r} (known:"
                                f" {', '.join(BARRIERS)})")
        items.append(Intervention(code, t["label_da"].strip(), t["label_en"].strip(),
                                  t["description_da"].strip(), t["description_en"].strip(),
                                  lists["profiles"], lists["barriers"], t["source"].strip()))
    return Catalogue(data["version"].strip(), tuple(items), sha, source)


# ---------------------------------------------------------------------------------------
# What the report makes of them


def reason_counts(con: duckdb.DuckDBPyConnection,
                  worklist: Worklist) -> tuple[list[tuple[Reason, int]], int]:
    """Citizens per reason and citizens on the list (internal: exact counts). The page shows
    them only when it is itself internal (min_cell <= 1): docs/disclosure.md §5."""
    per = dict(con.execute("select reason, count(*) from marts.worklist group by all").fetchall())
    (listed,) = con.execute("select count(distinct citizen_id) from marts.worklist").fetchone()
    return [(r, per.get(r.code, 0)) for r in worklist.reasons], listed


# the worklist's columns: (key of the label in labels.toml [worklist], SQL over marts.worklist
# grouped per citizen)
_ROWS_SQL = """
select
    citizen_id,
    min(priority) as priority,
    list(reason order by priority, list_position($reason_codes::varchar[], reason)) as reasons,
    any_value(profile) as profile,
    any_value(profile_source) as profile_source,
    any_value(profile_probability) as profile_probability,
    any_value("rule") as "rule",
    any_value(matched_flags) as matched_flags,
    any_value(m3_days) as m3_days,
    any_value(course_class) as course_class,
    any_value(current_course_days) as current_course_days,
    any_value(departments_involved) as departments_involved,
    any_value(focus) as focus,
    any_value(motivation) as motivation
from marts.worklist
group by citizen_id
"""
# the list's rows in its order, from the rows above (`source`: the query, or the temporary
# table write_files fills once from it)
_LIST_SQL = """
select * from {source}
where $only is null or list_contains(reasons, $only)
order by priority, m3_days desc, citizen_id
limit $limit
"""
_ROWS_TABLE = "worklist_rows"  # temporary
CSV_COLUMNS = ("citizen_id", "priority", "reasons", "profile", "profile_source",
               "profile_probability", "rule", "matched_flags", "m3_days", "course_class",
               "current_course_days", "departments_involved", "focus", "motivation")


def iter_rows(con: duckdb.DuckDBPyConnection, worklist: Worklist, only: str | None = None,
              limit: int | None = None, table: str | None = None
              ) -> Iterator[dict[str, Any]]:
    """One row per citizen on the list (`only`: with that reason): every reason that applies
    (in priority order), the priority (the smallest number), the facts; sorted by priority,
    then the longest time in M3 first, then id. Read in batches: at a million citizens the
    list is most of them. On `con` itself, not a cursor: the report writes the list inside
    its transaction, which a cursor (a connection of its own) would not see; nothing else
    may run on `con` until the rows are read."""
    params: dict[str, Any] = {"only": only, "limit": limit}
    if table is None:
        params["reason_codes"] = _codes(worklist)
    cur = con.execute(_LIST_SQL.format(source=table or f"({_ROWS_SQL})"), params)
    names = [d[0] for d in cur.description]
    while batch := cur.fetchmany(_BATCH):
        for r in batch:
            yield dict(zip(names, r, strict=True))


def _codes(worklist: Worklist) -> list[str]:
    return [r.code for r in worklist.reasons]


def rows(con: duckdb.DuckDBPyConnection, worklist: Worklist) -> list[dict[str, Any]]:
    """Every row of `iter_rows` (tests, small lists)."""
    return list(iter_rows(con, worklist))


# worklist.csv's cells from _ROWS_SQL's columns: lists joined by ';', the probability with
# four decimals, an id a spreadsheet would run as a formula quoted (it is the export's text);
# an empty list is an empty cell (NULL), as csv.writer wrote it, not ""
_CSV_CELLS = {
    "citizen_id": spreadsheet_text_sql("citizen_id"),
    "reasons": "nullif(array_to_string(reasons, ';'), '')",
    "profile_probability": "printf('%.4f', profile_probability)",
    "matched_flags": "nullif(array_to_string(matched_flags, ';'), '')",
    "focus": "nullif(array_to_string(focus, ';'), '')",
    "motivation": "nullif(array_to_string(motivation, ';'), '')",
}


def write_files(folder: Path, con: duckdb.DuckDBPyConnection, worklist: Worklist,
                labels: Any, cfg: Config) -> tuple[str, ...]:
    """worklist.csv (codes, for machines) and worklist.xlsx (labels, a sheet with every
    citizen on the list and one per reason) into `folder`; returns their names."""
    # the rows grouped per citizen once (at 1,000,000 citizens 790,000 rows, 4 s a
    # grouping), then the csv and each sheet read them; the csv is one COPY, not a Python
    # loop (12 s of CPU as csv.writer rows)
    con.execute(f"create or replace temp table {_ROWS_TABLE} as {_ROWS_SQL}",
                {"reason_codes": _codes(worklist)})
    try:
        cells = ", ".join(_CSV_CELLS.get(c, f'"{c}"') + f' as "{c}"' for c in CSV_COLUMNS)
        warehouse.copy_to(con, f"select {cells} from ({_LIST_SQL.format(source=_ROWS_TABLE)})",
                          folder / "worklist.csv", "header, delimiter ','",
                          {"only": None, "limit": None})
        _write_xlsx(folder / "worklist.xlsx", con, worklist, labels, cfg)
    finally:
        con.execute(f"drop table if exists temp.{_ROWS_TABLE}")
    return ("worklist.xlsx", "worklist.csv")


def _sheet_name(text: str, used: set[str]) -> str:
    name = re.sub(r"[\[\]:*?/\\']", " ", text).strip()[:31] or "reason"
    base, k = name, 2
    while name.lower() in used:
        suffix = f" {k}"
        name, k = base[: 31 - len(suffix)] + suffix, k + 1
    used.add(name.lower())
    return name


def _write_xlsx(path: Path, con: duckdb.DuckDBPyConnection, worklist: Worklist,
                labels: Any, cfg: Config) -> None:
    lang = labels.lang

    def t(key: str, **fmt: Any) -> str:
        return labels.cat["worklist"][key][lang].format(**fmt)

    # constant memory: each row goes to the sheet's file as written (the list may hold most
    # of a million citizens), which is why the rows are written strictly in order
    wb = xlsxwriter.Workbook(str(path), {
        "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False,
        "constant_memory": True, "tmpdir": str(path.parent),
    })
    wb.set_properties({"title": t("title"),
                       "created": dt.datetime.combine(cfg.reference_date, dt.time()),
                       "comments": f"m3-profiles {pipeline.__version__}"})
    f_title = wb.add_format({"bold": True, "font_size": 13, "font_color": "#0b2545"})
    f_warn = wb.add_format({"bold": True, "font_color": "#a61b1b"})
    f_note = wb.add_format({"italic": True, "font_color": "#5d6d7e"})
    f_head = wb.add_format({"bold": True, "bg_color": "#0b2545", "font_color": "#ffffff",
                            "border": 1, "text_wrap": True, "valign": "bottom"})
    f_text = wb.add_format({"border": 1, "border_color": "#c9d3dd", "valign": "top",
                            "text_wrap": True})
    f_quoted = wb.add_format({"border": 1, "border_color": "#c9d3dd", "valign": "top",
                              "text_wrap": True, "quote_prefix": True})
    f_num = wb.add_format({"border": 1, "border_color": "#c9d3dd", "valign": "top",
                           "num_format": "#,##0"})
    headers = [t("col_citizen"), t("col_priority"), t("col_reasons"), labels.text("profile"),
               t("col_source"), t("col_explanation"), t("col_m3_days"), t("col_course"),
               t("col_course_days"), t("col_departments"), t("col_focus"),
               t("col_motivation")]
    widths = [18, 9, 40, 30, 16, 40, 10, 28, 10, 12, 40, 40]

    def reasons_text(codes: Sequence[str]) -> str:
        return "; ".join(worklist.reason(c).label(lang) for c in codes)

    def codes_text(codes: Sequence[str]) -> str:
        return ", ".join(labels.col(c) for c in codes)

    def profile_text(r: Mapping[str, Any]) -> str:
        return labels.row(r["profile"]) if r["profile"] else t("no_profile")

    def explanation(r: Mapping[str, Any]) -> str:
        src = r["profile_source"]
        if src == "rules" and r["rule"]:
            flags = ", ".join(_flag_label(labels, f) for f in r["matched_flags"] or [])
            return t("explain_rules", rule=r["rule"], flags=flags or "–")
        if r["profile_probability"] is not None:
            return t("explain_model", p=labels.share(r["profile_probability"]))
        return ""

    def text(ws: Any, i: int, j: int, value: str) -> None:
        """A text cell; one a spreadsheet would read as a formula gets Excel's quote prefix,
        which keeps it text when someone edits the cell (as tables.xlsx does)."""
        ws.write_string(i, j, value, f_quoted if looks_like_formula(value) else f_text)

    # the cells' texts by the values they are made of: a list's rows take few distinct
    # values but for the id, so each text is built (and checked for a formula) once, not
    # once per row (at 50,000 rows a sheet the Python per cell is what the sheet costs)
    memo: dict[tuple, tuple[str, Any]] = {}

    def cell(key: tuple, build: Callable[..., str], *args: Any) -> tuple[str, Any]:
        got = memo.get(key)
        if got is None:
            value = build(*args)
            got = memo[key] = (value, f_quoted if looks_like_formula(value) else f_text)
        return got

    def write_sheet(name: str, heading: str, notes: Sequence[str],
                    sheet_rows: Iterator[Mapping[str, Any]]) -> None:
        ws = wb.add_worksheet(name)
        ws.write_string(0, 0, heading, f_title)
        ws.write_string(1, 0, t("internal"), f_warn)
        for k, note in enumerate(notes):
            ws.write_string(2 + k, 0, note, f_note)
        top = 3 + len(notes)
        for j, wdt in enumerate(widths):
            ws.set_column(j, j, wdt)
        ws.freeze_panes(top + 1, 1)
        for j, h in enumerate(headers):
            ws.write_string(top, j, h, f_head)
        i = top
        for i, r in enumerate(sheet_rows, start=top + 1):
            if i > top + XLSX_ROWS:  # say where the rest is
                ws.write_string(i, 0, t("truncated"), f_warn)
                break
            text(ws, i, 0, str(r["citizen_id"]))
            ws.write_number(i, 1, r["priority"], f_num)
            # reason and profile labels: a consultant's free text
            reasons = tuple(r["reasons"])
            ws.write_string(i, 2, *cell(("reasons", reasons), reasons_text, reasons))
            ws.write_string(i, 3, *cell(("profile", r["profile"]), profile_text, r))
            source = r["profile_source"]
            ws.write_string(i, 4, cell(("source", source), t, f"source_{source}")[0], f_text)
            ws.write_string(i, 5, *cell(
                ("explanation", source, r["rule"], tuple(r["matched_flags"] or ()),
                 r["profile_probability"]), explanation, r))
            ws.write_number(i, 6, r["m3_days"], f_num)
            ws.write_string(i, 7, cell(("course", r["course_class"]), labels.col,
                                       r["course_class"])[0], f_text)
            ws.write_number(i, 8, r["current_course_days"], f_num)
            if r["departments_involved"] is None:
                ws.write_blank(i, 9, None, f_text)
            else:
                ws.write_number(i, 9, r["departments_involved"], f_num)
            for j, field in ((10, "focus"), (11, "motivation")):
                codes = tuple(r[field])
                ws.write_string(i, j, cell((field, codes), codes_text, codes)[0], f_text)
        ws.autofilter(top, 0, max(i, top + 1), len(headers) - 1)

    per, listed = reason_counts(con, worklist)
    counts = "; ".join(f"{r.label(lang)} {labels.n(n)}" for r, n in per)
    used: set[str] = set()
    write_sheet(_sheet_name(t("sheet_all"), used), t("title"),
                [t("sorted"), t("reference_date", date=labels.date(cfg.reference_date),
                                version=worklist.version),
                 t("counts", counts=counts, listed=labels.n(listed))],
                iter_rows(con, worklist, limit=XLSX_ROWS + 1, table=_ROWS_TABLE))
    for reason in worklist.reasons:
        write_sheet(_sheet_name(reason.label(lang), used), reason.label(lang),
                    [t("condition", condition=reason.condition.text),
                     t("seed", source=reason.source)],
                    iter_rows(con, worklist, reason.code, XLSX_ROWS + 1, _ROWS_TABLE))
    wb.close()


def _flag_label(labels: Any, flag: str) -> str:
    """A flag's name: the tables' column label, else the worklist's (the profile flags are
    no table's column), else its code."""
    own = labels.cat["worklist"].get(f"flag_{flag}")
    if own is not None:
        return own[labels.lang]
    return labels.col(flag) if flag in labels.cat["column"] else flag


__all__ = [
    "COLUMNS", "Catalogue", "Intervention", "Reason", "Worklist", "WorklistError",
    "iter_rows", "load_catalogue", "load_worklist", "reason_counts", "rows", "write_files",
]
