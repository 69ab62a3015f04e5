"""quarantine.xlsx (issue 14: "quarantine.csv opens as one column of mojibake in a Danish
Excel"): the same rows as quarantine.csv, cell for cell, in a file a spreadsheet opens with
a double-click; CPR-like values masked and formula-like ones neutralised as in the .csv; a
quarantine larger than a worksheet holds the first rows and says where the rest are."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import openpyxl
import pytest

from pipeline.config import Config
from pipeline.errors import RejectedError
from pipeline.ingest import QUARANTINE_COLUMNS, write_quarantine_xlsx
from pipeline.privacy import CPR_MASK
from pipeline.runner import run_stages

REF = dt.date(2024, 6, 30)
CPR = "010190-1234"
GOOD = 40
# (column, value) of citizens that end in quarantine, each one row there
BAD = (
    ("birth_year", CPR),  # a CPR number where a year belongs
    ("birth_year", "19x0"),
    ("sex", '=HYPERLINK("http://example.invalid/?q="&A1,"klik")'),
    ("sex", "+SUM(1,1)"),
    ("sex", "æøå; \"quoted\", <b>"),  # Danish letters, the csv's separators, markup
    ("sex", " leading and trailing "),
)


def export(folder: Path, bad: tuple[tuple[str, str], ...] = BAD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"citizen_id": f"C{i}", "birth_year": "1980", "sex": "K"} for i in range(GOOD)]
    rows += [{"citizen_id": f"B{i}", "birth_year": "1980", "sex": "K", column: value}
             for i, (column, value) in enumerate(bad)]  # fmt: skip
    with open(folder / "citizens.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, ["citizen_id", "birth_year", "sex"], delimiter=";")
        w.writeheader()
        w.writerows(rows)
    (folder / "episodes.csv").write_text(
        "citizen_id;start_date;benefit;match_group\n"
        + "".join(f"C{i};01-01-2020;kontanthjaelp;3\n" for i in range(GOOD)),
        "utf-8",
    )
    return folder


def sheet_rows(path: Path) -> list[list[str]]:
    """The worksheet as the .csv writes it: every cell as text, an empty cell as ''."""
    ws = openpyxl.load_workbook(path).worksheets[0]
    return [["" if v is None else str(v) for v in row] for row in ws.iter_rows(values_only=True)]


def csv_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_quarantine_xlsx_holds_the_csv_rows_cell_for_cell(tmp_path):
    out = tmp_path / "out"
    config = Config(reference_date=REF, max_reject_share=0.5)
    run_stages(["ingest"], out, config, input_dir=export(tmp_path / "in"))
    rows = csv_rows(out / "quarantine.csv")
    assert len(rows) == 1 + len(BAD)
    assert sheet_rows(out / "quarantine.xlsx") == rows
    # what the two files hold: the CPR number masked, formulas neutralised with a ', and
    # the rest as the export had it
    first = GOOD + 2  # the header is line 1
    assert rows[1:] == [
        ["citizens", "citizens.csv", str(first), "birth_year", CPR_MASK, "unparseable_integer"],
        ["citizens", "citizens.csv", str(first + 1), "birth_year", "19x0", "unparseable_integer"],
        ["citizens", "citizens.csv", str(first + 2), "sex",
         '\'=HYPERLINK("http://example.invalid/?q="&A1,"klik")', "out_of_domain"],
        ["citizens", "citizens.csv", str(first + 3), "sex", "'+SUM(1,1)", "out_of_domain"],
        ["citizens", "citizens.csv", str(first + 4), "sex", 'æøå; "quoted", <b>', "out_of_domain"],
        ["citizens", "citizens.csv", str(first + 5), "sex", " leading and trailing ",
         "out_of_domain"],
    ]  # fmt: skip
    # (the .xlsx is a zip: its cells are read, not its bytes)
    cells = [(out / "quarantine.csv").read_text("utf-8")] + [
        v for row in sheet_rows(out / "quarantine.xlsx") for v in row]
    assert not [v for v in cells if CPR in v or CPR.replace("-", "") in v]
    # a spreadsheet reads the line as a number and everything else as text, never a formula
    ws = openpyxl.load_workbook(out / "quarantine.xlsx").worksheets[0]
    assert [c.value for c in ws[1]] == list(QUARANTINE_COLUMNS)
    for row in ws.iter_rows(min_row=2):
        assert [c.data_type for c in row] == ["s", "s", "n", "s", "s", "s"]
        assert type(row[2].value) is int
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:F{1 + len(BAD)}"


def test_a_rejected_run_keeps_quarantine_xlsx_for_diagnosis(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RejectedError):
        run_stages(["ingest"], out, Config(reference_date=REF), input_dir=export(tmp_path / "in"))
    failed = tmp_path / "out.failed"
    assert sheet_rows(failed / "quarantine.xlsx") == csv_rows(failed / "quarantine.csv")
    # the runner owns the file: the next run replaces the failed folder holding it
    run_stages(["ingest"], out, Config(reference_date=REF),
               input_dir=export(tmp_path / "good", bad=()))  # fmt: skip
    assert sheet_rows(out / "quarantine.xlsx") == [list(QUARANTINE_COLUMNS)]


def test_a_quarantine_larger_than_a_worksheet_holds_the_first_rows_and_says_so(tmp_path):
    con = duckdb.connect()
    con.execute("""create table q as select 'episodes' as table_name, 'episodes.csv' as file,
                   i + 2 as line, 'start_date' as column_name, 'x' || i as value,
                   'unparseable_date' as reason from range(10) t(i)""")
    path = tmp_path / "q.xlsx"
    # a worksheet of 6 rows: the headings, 4 rows, the note
    written = write_quarantine_xlsx(con.execute("select * from q order by line"), 10, path,
                                    "quarantine.csv", max_rows=6)  # fmt: skip
    assert written == 4
    rows = sheet_rows(path)
    assert rows[:5] == [list(QUARANTINE_COLUMNS)] + [
        ["episodes", "episodes.csv", str(i + 2), "start_date", f"x{i}", "unparseable_date"]
        for i in range(4)
    ]
    assert rows[5] == [
        "Arket viser de første 4 af 10 rækker; alle står i quarantine.csv. / This sheet shows"
        " the first 4 of 10 rows; all of them are in quarantine.csv.", "", "", "", "", "",
    ]
    assert len(rows) == 6
    # exactly a worksheet's worth fits without a note
    written = write_quarantine_xlsx(con.execute("select * from q order by line limit 5"), 5,
                                    path, "quarantine.csv", max_rows=6)  # fmt: skip
    assert written == 5 and len(sheet_rows(path)) == 6
