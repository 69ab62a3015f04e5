"""The published tables as files: one tidy CSV per table and the spreadsheet `tables.xlsx`
(interface, *Where things go*).

Reads the published tables (`PublishedTable`: what survived suppression, hidden cells already
empty) and their labels; nothing from the warehouse. Writes `tables/<id>.csv` (codes, for
machines) and `tables.xlsx` (labels, for people) to the paths it is given. Same input, same
bytes.

Text from outside the package reaches the spreadsheet: the profile labels are the rules file's
`label_da`/`label_en`, free text a consultant wrote. Every text cell is a string cell
(`write_string`, xlsxwriter's formula, number and URL guessing off), so `=1+1` is the text
`=1+1`; a text that `privacy.looks_like_formula` also gets Excel's quote prefix, which keeps
it text when someone edits the cell. The tidy CSVs hold no such text: their `row` and `col`
are codes (profile codes, validated `[a-z][a-z0-9_]*` by `pipeline.rules`, `total`, and the
catalogue's column and age-band codes), the rest numbers and `c`.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xlsxwriter

import pipeline
from pipeline.config import Config
from pipeline.labels import (
    HIDDEN,
    Labels,
    coarsened_note,
    heading,
    hidden_note,
    population,
    reading,
    row_header,
)
from pipeline.page import RunInfo, provenance
from pipeline.privacy import looks_like_formula
from pipeline.release import PublishedTable
from pipeline.suppression import TOTAL

# interface: the tidy form of every table
CSV_COLUMNS: tuple[str, ...] = ("row", "col", "n", "share", "hidden")


def write_csv(table: PublishedTable, path: Path) -> None:
    """The tidy form (interface): row, col, n, share, hidden; codes, `total` for totals;
    n and share empty where hidden, share also where its denominator is hidden or zero."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for r in table.all_rows:
            for c in table.all_cols:
                cell = table.cell(r, c)
                w.writerow([
                    r, c,
                    "" if cell.n is None else cell.n,
                    "" if cell.share is None else f"{cell.share:.4f}",
                    HIDDEN if cell.hidden else "",
                ])


def write_xlsx(path: Path, pub: Sequence[PublishedTable], labels: Labels, cfg: Config,
               info: RunInfo | None = None, movement: Any = None, changes: Any = None) -> None:
    """One formatted sheet per table (labels, frozen header, number formats, `c` with a
    footnote) after an overview sheet, which says what the tables were made from (`info`:
    run id, reference date, rules, config). Each table prints one page wide, landscape A4,
    with its row labels and column headings repeated on every page. Same input, same bytes:
    the created date is fixed to the reference date."""
    # no guessing from text: a string is never turned into a formula, number or link
    wb = xlsxwriter.Workbook(str(path), {
        "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False,
        "in_memory": True,
    })
    wb.set_properties({
        "title": labels.text("report_title"),
        "created": dt.datetime.combine(cfg.reference_date, dt.time()),
        "comments": f"m3-profiles {pipeline.__version__}",
    })
    f_title = wb.add_format({"bold": True, "font_size": 13, "font_color": "#0b2545"})
    f_note = wb.add_format({"italic": True, "font_color": "#5d6d7e"})
    f_wrap_note = wb.add_format({"font_color": "#5d6d7e", "text_wrap": True, "valign": "top"})
    f_link = wb.add_format({"font_color": "#1f4e79", "underline": 1})
    head = {"bold": True, "bg_color": "#0b2545", "font_color": "#ffffff", "border": 1,
            "text_wrap": True, "valign": "bottom"}
    f_head = wb.add_format({**head, "align": "center"})
    f_head_left = wb.add_format({**head, "align": "left"})
    f_sub = wb.add_format({**head, "align": "right", "bold": False, "font_size": 9})

    def fmt(total_row: bool, kind: str):  # noqa: ANN202 - an xlsxwriter Format
        props: dict[str, Any] = {"border": 1, "border_color": "#c9d3dd"}
        if total_row:
            props.update(bold=True, top=2, top_color="#1b2631")
        if kind == "n":
            props["num_format"] = "#,##0"
        elif kind == "share":
            props.update(num_format="0%", font_color="#5d6d7e")
        elif kind == "hidden":
            props.update(align="right", bg_color="#eceff3")
        elif kind == "quoted_label":  # Excel's ' prefix: the cell stays text when edited
            props["quote_prefix"] = True
        return wb.add_format(props)

    formats = {(t, k): fmt(t, k) for t in (False, True)
               for k in ("n", "share", "hidden", "label", "quoted_label", "none")}

    overview = wb.add_worksheet(labels.text("tables")[:31])
    overview.set_column(0, 0, 90)
    overview.write_string(0, 0, labels.text("report_title"), f_title)
    overview.write_string(1, 0, population(labels, cfg), f_note)
    overview.write_string(2, 0, hidden_note(labels, cfg), f_wrap_note)
    overview.set_row(2, 45)
    sheet_names = [labels.table(t.id, "sheet")[:31] for t in pub]
    for i, (t, name) in enumerate(zip(pub, sheet_names, strict=True), start=1):
        overview.write_url(3 + i, 0, f"internal:'{name}'!A1", f_link,
                           string=heading(t, i, labels))
    # provenance: a workbook passed on alone still says which run, date and rules it shows
    if info is not None:
        top = 5 + len(pub)
        lines = [f"{what}: {value}" for what, value in provenance(labels, info, cfg)]
        lines.append(labels.text("generated_by", version=pipeline.__version__))
        for k, line in enumerate(lines):
            overview.write_string(top + k, 0, line, f_note)

    for number, (t, name) in enumerate(zip(pub, sheet_names, strict=True), start=1):
        ws = wb.add_worksheet(name)
        ws.write_string(0, 0, heading(t, number, labels), f_title)
        ws.write_string(1, 0, population(labels, cfg), f_note)
        header_row, sub_row, first = 3, 4, 5
        ws.write_string(header_row, 0, row_header(t, labels), f_head_left)
        ws.write_blank(sub_row, 0, None, f_head_left)
        for j, c in enumerate(t.all_cols):
            col = 1 + 2 * j
            # merge_range writes its text with write(): merge empty, then write the string
            ws.merge_range(header_row, col, header_row, col + 1, "", f_head)
            ws.write_string(header_row, col, labels.column(t, c), f_head)
            ws.write_string(sub_row, col, labels.text("count"), f_sub)
            ws.write_string(sub_row, col + 1, labels.text("share"), f_sub)
        for i, r in enumerate(t.all_rows):
            total_row = r == TOTAL
            # a profile's label: the rules file's free text
            text = labels.row(r, t.row_dim)
            kind = "quoted_label" if looks_like_formula(text) else "label"
            ws.write_string(first + i, 0, text, formats[(total_row, kind)])
            for j, c in enumerate(t.all_cols):
                cell = t.cell(r, c)
                col = 1 + 2 * j
                if cell.n is None:
                    ws.write_string(first + i, col, HIDDEN, formats[(total_row, "hidden")])
                else:
                    ws.write_number(first + i, col, cell.n, formats[(total_row, "n")])
                if cell.share is not None:
                    ws.write_number(first + i, col + 1, cell.share, formats[(total_row, "share")])
                elif cell.share_hidden:  # hidden count or hidden denominator
                    ws.write_string(first + i, col + 1, HIDDEN, formats[(total_row, "hidden")])
                else:
                    ws.write_blank(first + i, col + 1, None, formats[(total_row, "none")])
        last = first + len(t.all_rows)
        ws.write_string(last + 1, 0, reading(t.id, labels, cfg), f_note)
        ws.write_string(last + 2, 0, hidden_note(labels, cfg), f_note)
        ws.write_string(last + 3, 0, labels.text("source_file", id=t.id), f_note)
        notes = 3
        if t.merges:  # a coarsened table names its merges (pipeline.coarsening)
            notes = 4
            ws.write_string(last + notes, 0, coarsened_note(t, labels), f_note)
        ws.set_column(0, 0, 46)
        ws.set_column(1, 2 * len(t.all_cols), 10)
        ws.set_row(header_row, 60)
        ws.freeze_panes(first, 1)
        # paper: landscape A4, one page wide, the row labels and headings on every page
        ws.set_landscape()
        ws.set_paper(9)
        ws.fit_to_pages(1, 0)
        ws.repeat_rows(header_row, sub_row)
        ws.repeat_columns(0)
        ws.print_area(0, 0, last + notes, 2 * len(t.all_cols))
    if movement is not None:  # issue 16: the cohort and the time to leave M3
        _movement_sheets(wb, movement, labels, cfg, formats, f_title, f_note, f_head_left)
    if changes is not None and changes.table is not None:  # issue 16 item 2
        _changes_sheet(wb, changes, labels, cfg, formats, f_title, f_note, f_head_left)
    wb.close()


def _changes_sheet(wb: xlsxwriter.Workbook, checked: Any, labels: Labels, cfg: Config,
                   formats: dict, f_title: Any, f_note: Any, f_head: Any) -> None:
    """The profile changes since the previous release (`pipeline.changes`): one block,
    previous profiles down, this release's across, `c` where hidden."""
    from pipeline import changes as ch

    lb, table = labels, checked.table
    previous = lb.date(dt.date.fromisoformat(checked.previous))
    now = lb.date(cfg.reference_date)

    ps = table["profiles"]
    ws = wb.add_worksheet(lb.section("changes", "sheet")[:31])
    ws.set_column(0, 0, 40)
    ws.set_column(1, len(ps) + 1, 12)
    ws.write_string(0, 0, lb.section("changes", "title", previous=previous, now=now), f_title)
    ws.write_string(1, 0, lb.section("changes", "row_header", previous=previous), f_head)
    for j, c in enumerate(ps, start=1):
        ws.write_string(1, j, lb.row(c), f_head)
    ws.set_row(1, 45)

    def put(row: int, col: int, r: str, c: str) -> None:
        n, hidden = ch.cell(table, r, c)
        if n is None:
            ws.write_string(row, col, lb.section("changes", "same"), formats[(False, "none")])
        elif hidden:
            ws.write_string(row, col, HIDDEN, formats[(False, "hidden")])
        else:
            ws.write_number(row, col, n, formats[(False, "n")])

    row = 2
    for a in ps:
        text = lb.row(a)
        ws.write_string(row, 0, text, formats[(False, "quoted_label" if looks_like_formula(
            text) else "label")])
        for j, b in enumerate(ps, start=1):
            put(row, j, a, b)
        row += 1
    row += 1
    for key, r, c in (("entered", ch.ENTERED, TOTAL), ("left", TOTAL, ch.LEFT)):
        ws.write_string(row, 0, lb.section("changes", key), formats[(True, "label")])
        put(row, 1, r, c)
        row += 1
    ws.write_string(row + 1, 0, lb.section("changes", "reading"), f_note)
    if table["hidden"]:
        ws.write_string(row + 2, 0, hidden_note(lb, cfg), f_note)


# ---------------------------------------------------------------------------------------
# Movement (issue 16, definitions §8.5): `pipeline.movement.PublishedMovement`

COHORT_CSV_COLUMNS: tuple[str, ...] = ("horizon", "day", "profile", "status", "n", "share",
                                       "share_low", "share_high", "hidden")
# the month's day (`pipeline.movement.month_day`) is in the definitions, not in the file
CURVE_CSV_COLUMNS: tuple[str, ...] = ("profile", "month", "still_in_m3", "low", "high")


def write_movement_csvs(folder: Path, movement: Any) -> list[str]:
    """tables/cohort_status.csv (tidy, as the other tables, with the share's 95 % Wilson
    interval beside a shown share) and tables/time_to_leave.csv (the published points of
    the curves); returns the names written."""
    names = []
    if movement.cohort is not None:
        c = movement.cohort
        with open(folder / "cohort_status.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(COHORT_CSV_COLUMNS)
            for h, day in c.horizons:
                for p in c.profiles:
                    for st in (*_STATUSES, TOTAL):
                        cell = c.cell(h, p, st)
                        w.writerow([h, day.isoformat(), p, st,
                                    "" if cell.n is None else cell.n,
                                    *("" if v is None else f"{v:.4f}"
                                      for v in (cell.share, cell.low, cell.high)),
                                    HIDDEN if cell.hidden else ""])
        names.append("cohort_status.csv")
    with open(folder / "time_to_leave.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CURVE_CSV_COLUMNS)
        for curve in movement.curves:
            for m, _, s, lo, hi in curve.points:
                w.writerow([curve.profile, m, f"{s:.4f}", f"{lo:.4f}", f"{hi:.4f}"])
    names.append("time_to_leave.csv")
    return names


def _movement_sheets(wb: xlsxwriter.Workbook, movement: Any, labels: Labels, cfg: Config,
                     formats: dict, f_title: Any, f_note: Any, f_head: Any) -> None:
    """Two sheets: the cohort (every horizon, one block each) and the time in M3 (the
    summary, then the curves' points)."""
    from pipeline import movement as mv

    lb = labels

    def label(total: bool, text: str) -> Any:
        # a profile's label is the rules file's free text: Excel's quote prefix where it
        # looks like a formula, as on the tables' sheets
        return formats[(total, "quoted_label" if looks_like_formula(text) else "label")]

    if movement.cohort is not None:
        c = movement.cohort
        ws = wb.add_worksheet(lb.section("movement", "cohort_sheet")[:31])
        ws.set_column(0, 0, 40)
        ws.set_column(1, 3 * (len(_STATUSES) + 1), 9)
        row = 0
        for h, _ in c.horizons:
            ws.write_string(row, 0, mv.cohort_title(lb, c, h), f_title)
            row += 1
            ws.write_string(row, 0, lb.text("profile"), f_head)
            for j, st in enumerate((*_STATUSES, TOTAL)):
                col = 1 + 3 * j
                ws.write_string(row, col, mv.status_label(lb, st), f_head)
                ws.write_string(row + 1, col, lb.text("count"), f_head)
                ws.write_string(row + 1, col + 1, lb.text("share"), f_head)
                ws.write_string(row + 1, col + 2, "95 %", f_head)
            ws.write_blank(row + 1, 0, None, f_head)
            ws.set_row(row, 45)
            row += 2
            for p in c.profiles:
                total = p == TOTAL
                text = mv.profile_label(lb, p)
                ws.write_string(row, 0, text, label(total, text))
                for j, st in enumerate((*_STATUSES, TOTAL)):
                    cell, col = c.cell(h, p, st), 1 + 3 * j
                    if cell.hidden:
                        ws.write_string(row, col, HIDDEN, formats[(total, "hidden")])
                    else:
                        ws.write_number(row, col, cell.n, formats[(total, "n")])
                    if cell.share is not None:
                        ws.write_number(row, col + 1, cell.share, formats[(total, "share")])
                    else:
                        ws.write_blank(row, col + 1, None, formats[(total, "none")])
                    ws.write_string(row, col + 2, mv.interval(lb, cell.low, cell.high),
                                    formats[(total, "label")])
                row += 1
            ws.write_string(row, 0, mv.cohort_reading(lb, h), f_note)
            row += 3
        ws.write_string(row, 0, hidden_note(lb, cfg), f_note)
        ws.write_string(row + 1, 0, lb.section("movement", "source", file="cohort_status"),
                        f_note)
    f_month = wb.add_format({"num_format": "0", "border": 1, "border_color": "#c9d3dd"})
    ws = wb.add_worksheet(lb.section("movement", "summary_sheet")[:31])
    ws.set_column(0, 0, 40)
    ws.set_column(1, 8, 18)
    ws.write_string(0, 0, lb.section("movement", "summary_title"), f_title)
    head, rows = mv.summary_rows(lb, movement)
    for j, text in enumerate(head):
        ws.write_string(1, j, text, f_head)
    ws.set_row(1, 45)
    for i, line in enumerate(rows, start=2):
        for j, text in enumerate(line):
            ws.write_string(i, j, text, label(False, text))
    row = 3 + len(rows)
    ws.write_string(row, 0, lb.section("movement", "summary_reading"), f_note)
    ws.write_string(row + 1, 0, lb.section("movement", "curve_reading",
                                           at_risk=movement.min_at_risk,
                                           min_cell=max(cfg.min_cell, 1)), f_note)
    if movement.dropped:
        ws.write_string(row + 2, 0, lb.section(
            "movement", "curve_dropped",
            profiles=", ".join(lb.row(p) for p in movement.dropped)), f_note)
    row += 4
    ws.write_string(row, 0, lb.section("movement", "curve_title"), f_title)
    for j, text in enumerate((lb.text("profile"), lb.section("movement", "curve_axis_x"),
                              lb.section("movement", "curve_axis_y"), "95 %")):
        ws.write_string(row + 1, j, text, f_head)
    row += 2
    for curve in movement.curves:
        name = (lb.section("movement", "all_profiles") if curve.profile == TOTAL
                else lb.row(curve.profile))
        for m, _, s, lo, hi in curve.points:
            ws.write_string(row, 0, name, label(False, name))
            ws.write_number(row, 1, m, f_month)
            ws.write_number(row, 2, s, formats[(False, "share")])
            ws.write_string(row, 3, mv.interval(lb, lo, hi), formats[(False, "label")])
            row += 1
    ws.write_string(row + 1, 0, lb.section("movement", "source", file="time_to_leave"), f_note)


_STATUSES: tuple[str, ...] = ("m3", "other_group", "fleksjob_pension", "other_benefit",
                              "off_support")

__all__ = ["CSV_COLUMNS", "write_csv", "write_movement_csvs", "write_xlsx"]
