"""The report stage's published outputs, end to end on a small demo (interface, *Where things
go*; definitions §5-§6): no small count anywhere, hidden cells shown as `c` everywhere, shares
only with their count and denominator, the spreadsheet equal to the tidy CSVs, the charts equal
to matplotlib's own tight renders, a failing report leaving the previous output whole, and the
page working in a real headless Chromium."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import openpyxl
import pytest
from conftest import snapshot

import pipeline.charts
import pipeline.workbook
from pipeline.config import Config
from pipeline.labels import HIDDEN, Labels, reading
from pipeline.release import published
from pipeline.report import OUTPUTS
from pipeline.rules import load_rules
from pipeline.runner import RunState, run_stages
from pipeline.vocabulary import TABLE_IDS, TABLES
from pipeline.workbook import CSV_COLUMNS

REF = dt.date(2026, 11, 25)
ROW_DIMS = {t.id: t.row_dim for t in TABLES}  # what a table's rows are (base profiles or not)
# small enough that cells are below min_cell, and that two profiles' totals are hidden (so
# some shown counts have a hidden denominator)
CITIZENS, SEED = 800, 3
MIN_CELL = 5
CFG = Config(reference_date=REF, min_cell=MIN_CELL)
TOTAL = "total"
STAGES = ("ingest", "segment", "report")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# a "<5"-style marker (raw or as an entity): would tell which hidden cells are small. ("≤" is
# not searched for: the label "≤ 3 år" of a course-history column is legitimate; the count and
# share cells themselves are checked to hold only numbers or `c`.)
SMALL_MARKER = re.compile(r"(<|&lt;|&#0*60;|&#x0*3c;)\s*=?\s*\d", re.IGNORECASE)
DA_COUNT = re.compile(r"\d{1,3}(\.\d{3})*")  # Danish thousands separator: 1.116
DA_SHARE = re.compile(r"(\d+) %")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
INSTALL_CHROMIUM = (
    "install Debian's Chromium and its driver: `sudo apt-get update && sudo apt-get install -y"
    " chromium chromium-driver` (`make test` does this when it runs as root or with sudo)"
)


@dataclass(frozen=True)
class Release:
    """One pipeline run on the demo, and its tidy tables read back."""

    input_dir: Path
    out: Path
    state: RunState
    csv: dict[str, list[dict[str, str]]]  # table id -> rows of tables/<id>.csv, in file order

    def grid(self, table_id: str) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
        """Row codes and column codes in file order, and the cells by (row, col)."""
        rows, cols, cells = [], [], {}
        for rec in self.csv[table_id]:
            if rec["row"] not in rows:
                rows.append(rec["row"])
            if rec["col"] not in cols:
                cols.append(rec["col"])
            cells[(rec["row"], rec["col"])] = rec
        return rows, cols, cells


def denominator(row: str, col: str) -> tuple[str, str]:
    """table_cells.sql: a cell's share is of its row total; a total-column cell's share is of
    the grand total."""
    return (row, TOTAL) if col != TOTAL else (TOTAL, TOTAL)


def labels() -> Labels:
    return Labels(CFG.lang, load_rules(None))


# issue 16: the movement section's tidy files (their own columns: docs/definitions-movement.md)
MOVEMENT_CSVS = ("cohort_status", "time_to_leave")

@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Release:
    from pipeline.demo import write_demo

    base = tmp_path_factory.mktemp("report")
    write_demo(base / "in", n=CITIZENS, seed=SEED, reference_date=REF)
    out = base / "out"
    state = run_stages(STAGES, out, CFG.resolved(), input_dir=base / "in")
    tables = {}
    for path in sorted((out / "publish" / "tables").glob("*.csv")):
        if path.stem in MOVEMENT_CSVS:  # issue 16: a form of their own (test_movement_publish)
            continue
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            assert tuple(reader.fieldnames or ()) == CSV_COLUMNS, path.name
            tables[path.stem] = list(reader)
    return Release(base / "in", out, state, tables)


# ---------------------------------------------------------------------------------------
# report.html, read with the standard library's parser


class ReportPage(HTMLParser):
    """The tables of `report.html` (section.table > table.stat), its images and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict[str, Any]] = {}
        self.images: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self._table: dict[str, Any] | None = None
        self._part: str | None = None
        self._row: dict[str, Any] | None = None
        self._cell: dict[str, Any] | None = None
        self._span: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "img":
            self.images.append(a)
        elif tag == "section" and "table" in classes:
            self._table = self.tables.setdefault(
                a["id"], {"stat_tables": 0, "columns": [], "rows": []})
        elif self._table is None:
            return
        elif tag == "table":
            assert "stat" in classes
            self._table["stat_tables"] += 1
        elif tag in ("thead", "tbody"):
            self._part = tag
        elif tag == "tr":
            self._row = {"total": "total" in classes, "label": None, "cells": []}
        elif tag in ("th", "td"):
            self._cell = {"tag": tag, "classes": classes, "text": "", "spans": {}}
        elif tag == "span" and self._cell is not None:
            self._span = a.get("class")
            self._cell["spans"][self._span] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._table = None
        elif self._table is None:
            return
        elif tag == "span":
            self._span = None
        elif tag in ("th", "td") and self._cell is not None and self._row is not None:
            cell, self._cell = self._cell, None
            if self._part == "thead":
                self._row["cells"].append(cell["text"])
            elif tag == "th":
                self._row["label"] = cell["text"]
            else:
                self._row["cells"].append(cell)
        elif tag == "tr" and self._row is not None:
            if self._part == "thead":
                self._table["columns"] = self._row["cells"][1:]  # after the row header
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag in ("thead", "tbody"):
            self._part = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data
            if self._span is not None:
                self._cell["spans"][self._span] += data


@pytest.fixture(scope="module")
def page(release) -> ReportPage:
    return ReportPage((release.out / "publish" / "report.html").read_text(encoding="utf-8"))


def html_count(text: str) -> int | None:
    """A count as the Danish page prints it; None for `c`."""
    if text == HIDDEN:
        return None
    assert DA_COUNT.fullmatch(text), text
    return int(text.replace(".", ""))


# ---------------------------------------------------------------------------------------
# 1. the run, and that the privacy tests below have something to find


def test_the_release_has_small_counts_to_hide(release):
    manifest = json.loads((release.out / "run.json").read_text(encoding="utf-8"))
    assert manifest["outcome"] == "success"
    assert manifest["stages"] == list(STAGES)
    assert set(release.csv) == set(TABLE_IDS)
    for name in OUTPUTS:
        assert (release.out / "publish" / name).exists(), name
    assert sorted(p.name for p in (release.out / "publish" / "charts").iterdir()) == sorted(
        [f"{t}.png" for t in TABLE_IDS] + ["time_to_leave.png"])
    assert sorted(p.stem for p in (release.out / "publish" / "tables").iterdir()) == sorted(
        [*TABLE_IDS, *MOVEMENT_CSVS])
    result = release.state.report
    assert result.min_cell == MIN_CELL
    assert result.hidden_primary > 0 and result.hidden_secondary > 0
    hidden = [(t, r["row"], r["col"]) for t, rows in release.csv.items() for r in rows
              if r["hidden"] == HIDDEN]
    assert len(hidden) == result.hidden_primary + result.hidden_secondary
    assert sum(len(rows) for rows in release.csv.values()) == result.cells
    # the unsuppressed counts (internal) do hold counts from 1 to min_cell - 1, and exactly
    # those cells are the primary-suppressed ones
    con = duckdb.connect(str(release.out / "warehouse.duckdb"), read_only=True)
    try:
        small = set(con.execute(
            'select table_id, "row", col from marts.table_cells where n between 1 and $m',
            {"m": MIN_CELL - 1}).fetchall())
        primary = set(con.execute(
            "select table_id, \"row\", col from marts.suppressed_cells where reason = 'primary'"
            # the profile tables' (the cohort table's are test_movement_publish's)
            " and table_id in (select table_id from marts.table_cells)"
        ).fetchall())
    finally:
        con.close()
    assert len(small) == result.hidden_primary
    assert small == primary
    assert small <= set(hidden)


# ---------------------------------------------------------------------------------------
# 2. no count from 1 to min_cell - 1 in any published output; hidden = `c` everywhere


def test_no_small_count_in_the_tidy_csvs(release):
    for table_id, rows in release.csv.items():
        for rec in rows:
            where = f"tables/{table_id}.csv {rec['row']}/{rec['col']}"
            assert rec["hidden"] in ("", HIDDEN), where
            if rec["hidden"]:
                assert (rec["n"], rec["share"]) == ("", ""), where
            else:
                assert rec["n"].isdigit(), where
                assert not 1 <= int(rec["n"]) < MIN_CELL, where


def test_no_small_count_in_the_spreadsheet(release):
    wb = openpyxl.load_workbook(release.out / "publish" / "tables.xlsx")
    numbers = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                v = cell.value
                where = f"tables.xlsx '{ws.title}'!{cell.coordinate}"
                if isinstance(v, bool):
                    pytest.fail(f"{where}: a boolean")
                if isinstance(v, int | float):
                    numbers += 1
                    if cell.number_format == "0%":  # a share
                        assert 0 <= v <= 1, where
                    elif cell.number_format == "0":  # issue 16: a month of the curves
                        assert ws.title == labels().section("movement", "summary_sheet"), where
                    else:  # a count
                        assert cell.number_format == "#,##0", where
                        assert v == int(v), where
                        assert not 1 <= v < MIN_CELL, f"{where}: {v}"
    assert numbers > 0


def test_no_small_count_in_the_report_page(release, page):
    assert set(page.tables) == set(TABLE_IDS)
    shown = 0
    for table_id, tab in page.tables.items():
        assert tab["stat_tables"] == 1, table_id
        for row in tab["rows"]:
            for j, cell in enumerate(row["cells"]):
                where = f"report.html #{table_id} {row['label']!r} column {j + 1}"
                assert cell["text"] == "".join(cell["spans"].values()), where
                n = html_count(cell["spans"]["n"])
                assert ("hidden" in cell["classes"]) == (n is None), where
                if n is not None:
                    shown += 1
                    assert not 1 <= n < MIN_CELL, f"{where}: {n}"
    assert shown > 0


def test_hidden_cells_are_exactly_c_in_spreadsheet_and_page(release, page):
    wb = openpyxl.load_workbook(release.out / "publish" / "tables.xlsx")
    lb = labels()
    checked = 0
    for table_id in TABLE_IDS:
        rows, cols, cells = release.grid(table_id)
        ws = wb[lb.table(table_id, "sheet")[:31]]
        html_rows = page.tables[table_id]["rows"]
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                if cells[(r, c)]["hidden"] != HIDDEN:
                    continue
                checked += 1
                assert ws.cell(6 + i, 2 + 2 * j).value == HIDDEN, (table_id, r, c)
                assert ws.cell(6 + i, 3 + 2 * j).value == HIDDEN, (table_id, r, c)
                td = html_rows[i]["cells"][j]
                assert td["spans"] == {"n": HIDDEN}, (table_id, r, c)
                assert "hidden" in td["classes"], (table_id, r, c)
    assert checked == release.state.report.hidden


def test_no_small_count_marker_anywhere(release, page):
    for path in sorted((release.out / "publish" / "tables").glob("*.csv")):
        text = path.read_text(encoding="utf-8")
        assert not SMALL_MARKER.search(text), path.name
    wb = openpyxl.load_workbook(release.out / "publish" / "tables.xlsx")
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    assert not SMALL_MARKER.search(cell.value), (ws.title, cell.coordinate)
    html = (release.out / "publish" / "report.html").read_text(encoding="utf-8")
    assert not SMALL_MARKER.search(html)
    assert not SMALL_MARKER.search("\n".join(page.text))


# ---------------------------------------------------------------------------------------
# 3. a share never reveals a hidden count


def test_a_share_is_shown_only_with_its_count_and_denominator(release):
    shares = withheld = 0
    for table_id in TABLE_IDS:
        _, _, cells = release.grid(table_id)
        for (r, c), rec in cells.items():
            where = f"tables/{table_id}.csv {r}/{c}"
            den = cells[denominator(r, c)]
            if rec["share"]:
                shares += 1
                assert rec["hidden"] == "" and rec["n"] != "", where
                assert den["hidden"] == "" and den["n"] != "", where
                assert rec["share"] == f"{int(rec['n']) / int(den['n']):.4f}", where
            elif not rec["hidden"]:
                # write_csv: a shown count has no share only when its denominator is hidden
                # or zero
                assert den["hidden"] == HIDDEN or den["n"] == "0", where
                withheld += den["hidden"] == HIDDEN
    assert shares > 0
    # the release has shown counts whose denominator is hidden, so this is not vacuous
    assert withheld > 0


# ---------------------------------------------------------------------------------------
# 4. the spreadsheet (and the page) equal the tidy CSVs cell for cell


def test_spreadsheet_matches_the_tidy_csvs(release):
    lb = labels()
    wb = openpyxl.load_workbook(release.out / "publish" / "tables.xlsx")
    assert wb.sheetnames == [lb.text("tables")[:31]] + [
        lb.table(t, "sheet")[:31] for t in TABLE_IDS] + [
        lb.section("movement", "cohort_sheet"), lb.section("movement", "summary_sheet")]
    for table_id in TABLE_IDS:
        rows, cols, cells = release.grid(table_id)
        ws = wb[lb.table(table_id, "sheet")[:31]]
        assert ws.max_column == 1 + 2 * len(cols), table_id
        for j, c in enumerate(cols):  # header row 4: column labels over (count, share) pairs
            assert ws.cell(4, 2 + 2 * j).value == lb.col(c), (table_id, c)
            assert ws.cell(5, 2 + 2 * j).value == lb.text("count")
            assert ws.cell(5, 3 + 2 * j).value == lb.text("share")
        for i, r in enumerate(rows):  # data from row 6, one row per row code
            assert ws.cell(6 + i, 1).value == lb.row(r, ROW_DIMS[table_id]), (table_id, r)
            for j, c in enumerate(cols):
                rec = cells[(r, c)]
                den = cells[denominator(r, c)]
                n_cell, share_cell = ws.cell(6 + i, 2 + 2 * j), ws.cell(6 + i, 3 + 2 * j)
                where = f"'{ws.title}'!{n_cell.coordinate} = tables/{table_id}.csv {r}/{c}"
                if rec["hidden"]:
                    assert n_cell.value == HIDDEN, where
                else:
                    assert type(n_cell.value) is int, where
                    assert n_cell.value == int(rec["n"]), where
                if rec["share"]:
                    expected = int(rec["n"]) / int(den["n"])
                    assert share_cell.value == pytest.approx(expected, rel=1e-15, abs=0), where
                    assert f"{share_cell.value:.4f}" == rec["share"], where
                elif rec["hidden"] or den["hidden"]:
                    assert share_cell.value == HIDDEN, where
                else:  # a zero denominator: no share
                    assert share_cell.value is None, where
        # the table ends where the CSV does: a blank row, then the notes
        assert all(c.value is None for c in ws[6 + len(rows)]), table_id
        assert ws.cell(7 + len(rows), 1).value == reading(table_id, lb, CFG)


def test_report_page_tables_match_the_tidy_csvs(release, page):
    lb = labels()
    for table_id in TABLE_IDS:
        rows, cols, cells = release.grid(table_id)
        tab = page.tables[table_id]
        assert tab["columns"] == [lb.col(c) for c in cols], table_id
        assert [row["label"] for row in tab["rows"]] == [
            lb.row(r, ROW_DIMS[table_id]) for r in rows], table_id
        assert [row["total"] for row in tab["rows"]] == [r == TOTAL for r in rows]
        for i, r in enumerate(rows):
            assert len(tab["rows"][i]["cells"]) == len(cols), (table_id, r)
            for j, c in enumerate(cols):
                rec, den = cells[(r, c)], cells[denominator(r, c)]
                td = tab["rows"][i]["cells"][j]
                where = f"report.html #{table_id} {r}/{c}"
                n = html_count(td["spans"]["n"])
                assert n == (None if rec["hidden"] else int(rec["n"])), where
                share = td["spans"].get("share")
                if rec["hidden"]:
                    assert share is None, where
                elif rec["share"]:
                    m = DA_SHARE.fullmatch(share or "")
                    assert m, f"{where}: {share!r}"
                    assert abs(int(m[1]) - 100 * int(rec["n"]) / int(den["n"])) <= 0.5, where
                elif den["hidden"]:
                    assert share == HIDDEN, where
                else:
                    assert share == "–", where


# ---------------------------------------------------------------------------------------
# 5. the charts: each figure is drawn once and saved twice, the same as saving it with its
# title and footer at 200 dpi (charts/, for slides), and saving it without them at the page's
# dpi, with bbox_inches="tight"


def tight_png(fig, dpi: int) -> bytes:  # noqa: ANN001 - a matplotlib Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None},
                bbox_inches="tight", pad_inches=pipeline.charts._PAD,
                pil_kwargs=pipeline.charts._PNG_OPTIONS)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pub(release) -> dict[str, Any]:
    """The published tables, read back from the release's warehouse."""
    con = duckdb.connect(str(release.out / "warehouse.duckdb"), read_only=True)
    try:
        return {t.id: t for t in published(con)}
    finally:
        con.close()


@pytest.mark.parametrize("table_id", ["profile_distribution", "course_history", "case_focus"])
def test_charts_are_the_tight_renders_with_and_without_title(release, page, pub, table_id):
    from matplotlib import rc_context

    table, number = pub[table_id], TABLE_IDS.index(table_id) + 1
    with rc_context(pipeline.charts._CHART_RC):  # two figures, each saved on its own
        fig = pipeline.charts._chart_figure(table, labels())
        pipeline.charts._add_title(fig, table, number, labels())
        pipeline.charts._add_footer(fig, table, labels(), REF, MIN_CELL)
        titled = tight_png(fig, pipeline.charts._SLIDE_DPI)
        plain = tight_png(pipeline.charts._chart_figure(table, labels()), pipeline.charts._DPI)
    assert (release.out / "publish" / "charts" / f"{table_id}.png").read_bytes() == titled
    src = page.images[number - 1]["src"] or ""
    assert src.startswith("data:image/png;base64,"), src[:40]
    assert base64.b64decode(src.split(",", 1)[1]) == plain
    assert len(plain) < len(titled)
    # the release's were drawn in worker processes (given two cores); in this one, the same
    assert pipeline.charts.chart_pngs(table, number, labels(), REF, MIN_CELL) == (titled, plain)


def png_dpi(data: bytes) -> tuple[float, float]:
    """The dots per inch a PNG's pHYs chunk records (pixels per metre, unit 1)."""
    assert data.startswith(PNG_SIGNATURE)
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"pHYs":
            x, y, unit = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big"), body[8]
            assert unit == 1  # per metre
            return x * 0.0254, y * 0.0254
        pos += 12 + length
    pytest.fail("no pHYs chunk: the PNG does not say its dpi")


def test_slide_charts_are_200_dpi(release):
    for path in sorted((release.out / "publish" / "charts").glob("*.png")):
        x, y = png_dpi(path.read_bytes())
        assert (round(x), round(y)) == (200, 200), path.name


def drawn_texts(fig) -> list[str]:  # noqa: ANN001 - a matplotlib Figure
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))
            if t.get_visible() and t.get_text()]


@pytest.mark.parametrize(("table_id", "title"), [
    ("course_history", "Tabel 2. Profil fordelt på forløbshistorik"),
    ("case_focus", "Tabel 4. Fokus i sagsbehandlingen fordelt på profil (flere svar mulige)"),
    ("misuse", "Tabel 5. Misbrug fordelt på profiler (flere svar mulige)"),
])  # fmt: skip
def test_a_slide_chart_stands_alone(pub, table_id, title):
    # a slide made from charts/ says what the page says around it: the full title (several
    # answers possible), the reference date, the source and what `c` means, on one line
    # below everything drawn
    from matplotlib import rc_context

    table, number = pub[table_id], TABLE_IDS.index(table_id) + 1
    assert any(c.share_hidden for c in table.cells.values())  # the chart shows a `c`
    footer_text = (f"Opgørelsesdag 25. november 2026. Kilde: m3-profiles, tables/{table_id}.csv."
                   " c = skjult: antal fra 1 til 4 og tal, de kan regnes ud fra.")
    with rc_context(pipeline.charts._CHART_RC):
        fig = pipeline.charts._chart_figure(table, labels())
        heading = pipeline.charts._add_title(fig, table, number, labels())
        fig.set_dpi(pipeline.charts._SLIDE_DPI)
        chart_box = fig.get_tightbbox()  # everything but the footer
        footer, _ = pipeline.charts._add_footer(fig, table, labels(), REF, MIN_CELL)
        assert heading.get_text().replace("\n", " ") == title
        assert footer.get_text() == footer_text
        assert footer_text in drawn_texts(fig)
        box = footer.get_window_extent().transformed(fig.dpi_scale_trans.inverted())
    assert "\n" not in footer.get_text()
    assert box.width <= fig.get_figwidth()  # one line, within the chart's width
    assert box.y1 < chart_box.y0  # below the legend and the axis, touching neither


def test_a_chart_footer_says_internal_use_without_disclosure_control(pub):
    from pipeline.labels import chart_footer

    table = pub["course_history"]
    assert chart_footer(table, labels(), REF, 0) == (
        "Opgørelsesdag 25. november 2026. Kilde: m3-profiles, tables/course_history.csv."
        " Diskretionering slået fra (min_cell = 0): kun til intern brug.")
    assert chart_footer(table, Labels("en", load_rules(None)), REF, 2) == (
        "Reference date 25 November 2026. Source: m3-profiles, tables/course_history.csv."
        " c = hidden: counts of 1 and numbers they could be worked out from.")


def cell_colour(fig, col: int, row: int) -> tuple[int, int, int]:  # noqa: ANN001 - Figure
    """The colour drawn in a heat map's cell, sampled near its corner, away from its text."""
    ax = fig.axes[0]
    fig.canvas.draw()
    x, y = ax.transData.transform((col - 0.38, row - 0.38))
    pixels = np.asarray(fig.canvas.buffer_rgba())
    r, g, b, _ = pixels[pixels.shape[0] - int(round(y)), int(round(x))]
    return int(r), int(g), int(b)


def test_heatmap_tells_small_shares_apart(pub):
    # misuse: "Nej" (~80 %) must not set the colour scale of the "Ja" columns (3-15 %)
    from matplotlib import rc_context

    table = pub["misuse"]
    ticks = [c for c in table.cols if c != "misuse_no"]
    with rc_context(pipeline.charts._CHART_RC):
        fig = pipeline.charts._chart_figure(table, labels())
    shown = [(table.cell(r, c).share, cell_colour(fig, j, i))
             for i, r in enumerate(table.all_rows) for j, c in enumerate(table.cols)
             if c in ticks and table.cell(r, c).share is not None]
    pairs = [(a, b) for a, b in itertools.combinations(shown, 2) if abs(a[0] - b[0]) >= 0.02]
    assert len(pairs) >= 3, shown  # not vacuous: shown "Ja" cells 2 points apart or more
    assert max(s for s, _ in shown) < 0.2
    for (share_a, rgb_a), (share_b, rgb_b) in pairs:
        # 2 points apart: at least 12 of 255 apart in some channel (plainly visible)
        assert max(abs(p - q) for p, q in zip(rgb_a, rgb_b, strict=True)) >= 12, (
            share_a, rgb_a, share_b, rgb_b)


WORKER_OF_A_KILLED_RUN = """
import os, time
from pipeline import chart_workers
pool = chart_workers.pool(1)
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(60)
"""


def running(pid: int) -> bool:
    """Not gone, and not a zombie waiting for init to reap it (Linux's /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_chart_workers_exit_with_a_killed_run():
    # killed by a signal, a run never shuts its pool down; its idle workers would wait for
    # charts forever
    proc = subprocess.Popen([sys.executable, "-c", WORKER_OF_A_KILLED_RUN],
                            stdout=subprocess.PIPE, text=True)
    try:
        worker = int(proc.stdout.readline())
        assert running(worker)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while running(worker):
        assert time.monotonic() < deadline, f"chart worker {worker} outlived its run"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# 6. a run failing in the report stage leaves the previous output whole


def _fail_in_write_xlsx(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("injected failure in write_xlsx")

    monkeypatch.setattr(pipeline.workbook, "write_xlsx", boom)
    return "injected failure in write_xlsx"


def _fail_in_third_chart(monkeypatch):
    # by table, not by call, and from a module the chart workers import by name: the charts
    # may be drawn side by side in worker processes
    from failing_charts import chart_pngs_failing_on_the_third

    monkeypatch.setattr(pipeline.charts, "chart_pngs", chart_pngs_failing_on_the_third)
    return "injected failure in a chart"


@pytest.mark.parametrize("inject", [_fail_in_write_xlsx, _fail_in_third_chart],
                         ids=["write_xlsx", "chart"])
def test_failure_in_report_stage_keeps_previous_output(release, tmp_path, monkeypatch, inject):
    out = tmp_path / "out"
    shutil.copytree(release.out, out)  # a previous good output of our own
    before = snapshot(out)
    assert "publish/report.html" in before and "publish/tables.xlsx" in before
    message = inject(monkeypatch)
    with pytest.raises(RuntimeError, match=message):
        run_stages(STAGES, out, CFG.resolved(), input_dir=release.input_dir)
    assert snapshot(out) == before
    # the history beside it: the copied output's night, added as a killed run's would be
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.lock", "out", "out.failed", "out.history"]
    failed = tmp_path / "out.failed"
    manifest = json.loads((failed / "run.json").read_text(encoding="utf-8"))
    assert manifest["outcome"] == "failed"
    assert manifest["error"] == f"RuntimeError: {message}"
    assert "segment" in manifest and "report" not in manifest
    # the report's own temporary folder is gone and no report file was half-written
    assert sorted(p.name for p in failed.iterdir()) == [
        "citizens.parquet", "history-night.parquet", "quarantine.csv", "quarantine.xlsx",
        "run.json", "run.log",
        "warehouse.duckdb"]
    assert ("failed during stage report: RuntimeError: " + message
            in (failed / "run.log").read_text("utf-8"))
    con = duckdb.connect(str(failed / "warehouse.duckdb"), read_only=True)
    try:  # the report's transaction was rolled back: segment's marts, no table marts
        marts = {t for (t,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()}
    finally:
        con.close()
    assert "citizens" in marts
    assert not {"table_cells", "suppressed_cells"} & marts


# ---------------------------------------------------------------------------------------
# 7. the page in a real headless browser, on screen and printed


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):  # noqa: ANN201 - a selenium WebDriver
    # `make test` installs the browser where it can (root or sudo with apt); elsewhere the
    # page tests are skipped with how to install it. CI must test the page: there they fail.
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            if os.environ.get("CI") == "true":
                pytest.fail(f"{binary} is missing: {INSTALL_CHROMIUM}", pytrace=False)
            pytest.skip(f"{binary} is missing: {INSTALL_CHROMIUM}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: .venv/bin/python -m pip install -e '.[dev]'",
                    pytrace=False)

    folder = tmp_path_factory.mktemp("chromium")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={folder / 'chromium-profile'}", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER), log_output=str(folder / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, release, width: int, media: str = "screen") -> None:  # noqa: ANN001
    """The report in a viewport `width` CSS pixels wide, laid out for the screen (with a
    scroll bar, as a reader has) or for print (on paper, none)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    # "screen": no emulated media at all, so that printing still prints with the print style
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "" if media == "screen"
                                                          else media})
    driver.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": media == "print"})
    driver.get((release.out / "publish" / "report.html").resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.execute_script("return window.innerWidth") == width


def test_report_opens_in_headless_chromium(release, chromium, tmp_path):
    driver = chromium
    driver.get_log("browser")  # what earlier pages logged
    open_page(driver, release, 1280)
    assert driver.title.startswith(labels().text("report_title"))
    images = driver.execute_script(
        "return Array.from(document.images, i => [i.complete, i.naturalWidth,"
        " i.src.slice(0, 22)])")
    charts = sorted((release.out / "publish" / "charts").glob("*.png"))
    assert len(images) == len(charts) == len(TABLE_IDS) + 1  # issue 16: the curves
    assert all(complete and width > 0 for complete, width, _ in images), images
    assert {src for _, _, src in images} == {"data:image/png;base64,"}
    # self-contained: the page fetched nothing beyond itself
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    # the log does catch errors (so the check above is not vacuous)
    driver.execute_script("console.error('m3-profiles probe')")
    assert any("m3-profiles probe" in e["message"] for e in driver.get_log("browser")
               if e["level"] == "SEVERE")
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot))
    width = driver.execute_script("return window.innerWidth * window.devicePixelRatio")
    data = shot.read_bytes()
    assert len(data) > 0
    assert data.startswith(PNG_SIGNATURE)
    assert int.from_bytes(data[16:20], "big") == width  # IHDR: the viewport's width


@pytest.mark.parametrize("width", [1280, 800])
def test_the_page_never_scrolls_sideways(release, chromium, width):
    # a table wider than the page (case focus at 800 px) scrolls in its own box
    open_page(chromium, release, width)
    scroll_width, client_width = chromium.execute_script(
        "const e = document.scrollingElement; return [e.scrollWidth, e.clientWidth]")
    assert width - 20 <= client_width <= width  # less the vertical scroll bar
    assert scroll_width <= client_width
    # not vacuous: at 800 px the case-focus table is wider than its box, which scrolls
    wider = chromium.execute_script(
        "return Array.from(document.querySelectorAll('section.table .scroll'),"
        " b => [b.closest('section').id, b.scrollWidth > b.clientWidth])")
    assert len(wider) == len(TABLE_IDS)
    if width == 800:
        assert ["case_focus", True] in wider


# a number followed by a unit, or a sign and its number, with any white space between them
SPLIT_UNIT_JS = r"""
const parts = /\d[\s\u00a0]+(år|years?|dage|days)(?!\p{L})|[<>≤≥][\s\u00a0]+\d/gu;
const found = [], broken = [];
for (const el of document.querySelectorAll('table.stat thead th, section.table h3')) {
  const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    for (const m of node.data.matchAll(parts)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set(Array.from(range.getClientRects(), r => Math.round(r.top)));
      found.push(m[0]);
      if (tops.size !== 1) broken.push(el.textContent);
    }
  }
}
return [found, broken];
"""


@pytest.mark.parametrize("width", [1280, 800])
def test_no_heading_breaks_between_a_number_and_its_unit(release, chromium, width):
    open_page(chromium, release, width)
    found, broken = chromium.execute_script(SPLIT_UNIT_JS)
    # not vacuous: "> 3 år", "≤ 3 år", the age bands, the M3 bands
    assert len(found) >= 10, found
    assert broken == []


UNIT_AFTER_NUMBER = re.compile(r"(\d|[<>≤≥])[ \t]+(\d|år|years?|dage|days)(?!\w)")


@pytest.mark.parametrize("lang", ["da", "en"])
def test_labels_join_units_to_their_numbers(lang):
    # every column label and table heading, in both languages: a number and its unit (or a
    # sign and its number) are joined by a no-break space, so no browser, spreadsheet or
    # chart breaks a line between them
    from pipeline.labels import heading
    from pipeline.release import PublishedTable
    from pipeline.vocabulary import COURSE_CLASSES, M3_BANDS, TABLES, age_band_codes

    lb = Labels(lang, load_rules(None))
    texts = [lb.col(c) for c in (*COURSE_CLASSES, *M3_BANDS,
                                 *age_band_codes(Config().age_bands), "unknown")]
    texts += [heading(PublishedTable(t.id, t.row_dim, t.multi_response, (), (), {}), n, lb)
              for n, t in enumerate(TABLES, start=1)]
    texts += [lb.text(k) for k in ("m3_over_1y", "long_continuous")]
    assert [t for t in texts if UNIT_AFTER_NUMBER.search(t)] == []
    joined = [t for t in texts if re.search(r"\d\u00a0(år|years?)", t)]
    assert len(joined) >= (9 if lang == "da" else 5), texts


# A4 less the page's @page margins (14 mm top and bottom, 12 mm left and right), in CSS px
A4_WIDTH_PX = round((210 - 2 * 12) / 25.4 * 96)
A4_HEIGHT_PX = round((297 - 2 * 14) / 25.4 * 96)


def test_print_layout(release, chromium):
    # laid out for print at the width of an A4 page: no table is cut at the page's edge, the
    # charts take the full width (the heat maps' labels stay legible), and the run section
    # fits on one page and may not be split
    open_page(chromium, release, A4_WIDTH_PX, media="print")
    try:
        scroll_width, client_width = chromium.execute_script(
            "const e = document.scrollingElement; return [e.scrollWidth, e.clientWidth]")
        assert client_width == A4_WIDTH_PX
        assert scroll_width <= client_width
        tables = chromium.execute_script(
            "return Array.from(document.querySelectorAll('table.stat'),"
            " t => [t.closest('section').id, t.getBoundingClientRect().right])")
        assert len(tables) == len(TABLE_IDS)
        assert [t for t in tables if t[1] > A4_WIDTH_PX + 0.5] == []
        charts = chromium.execute_script(
            "return Array.from(document.querySelectorAll('img.chart'), i =>"
            " [i.getBoundingClientRect().width, i.closest('section').clientWidth])")
        assert all(abs(w - full) <= 1 for w, full in charts), charts
        height, avoid = chromium.execute_script(
            "const s = document.querySelector('section.run');"
            " return [s.getBoundingClientRect().height, getComputedStyle(s).breakInside]")
        assert avoid == "avoid"
        assert 0 < height <= A4_HEIGHT_PX
    finally:
        chromium.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        chromium.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": False})


def pdf_pages(pdf: Path) -> list[tuple[str, int]] | None:
    """The text and the number of images of each page of a PDF, with poppler's pdftotext and
    pdfimages or with pypdf, whichever is here; None when neither is."""
    if shutil.which("pdftotext") and shutil.which("pdfimages"):
        def run(*args: str) -> str:
            return subprocess.run([*args, str(pdf), "-"] if args[0] == "pdftotext" else
                                  [*args, str(pdf)], check=True, capture_output=True
                                  ).stdout.decode("utf-8")

        texts = run("pdftotext", "-enc", "UTF-8").split("\f")[:-1]  # a form feed ends a page
        # pdfimages -list: two header lines, then one line per image, its page first
        pages = [int(line.split()[0]) for line in run("pdfimages", "-list").splitlines()[2:]]
        return [(text, pages.count(i)) for i, text in enumerate(texts, start=1)]
    try:
        import pypdf
    except ImportError:
        return None
    return [(page.extract_text(), len(page.images)) for page in pypdf.PdfReader(pdf).pages]


def test_printed_page(release, chromium, page, tmp_path):
    # printed as Chromium prints it (Page.printToPDF, the page's own A4 size and margins):
    # page 1 is not a headline alone, "Om kørslen" is not split, and the page count is sane
    open_page(chromium, release, 1280)
    # as a reader's browser prints: no emulated screen (an emulated width would lay the page
    # out at that width on paper too)
    chromium.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    printed = chromium.execute_cdp_cmd("Page.printToPDF", {
        "printBackground": True, "preferCSSPageSize": True})
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(base64.b64decode(printed["data"]))
    count = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf.read_bytes()))
    # about a page per table with its chart, and the headline and the notes; the opportunity
    # catalogue and the worklist's counts (issue 17) take up to two more, the model card's
    # two fairness tables (issue 15: a row per profile's error rates) up to two more; the
    # movement section (issue 16: four cohort tables, the curves and their summary) up to
    # four
    assert 3 <= count <= len(TABLE_IDS) + 11, count
    pages = pdf_pages(pdf)
    if pages is None:
        pytest.skip("neither poppler-utils (pdftotext, pdfimages) nor pypdf is installed: the"
                    " printed page's text is not checked")
    assert len(pages) == count
    flat = [" ".join(text.split()).casefold() for text, _ in pages]
    lb = labels()
    # page 1: the headline, and table 1's heading with its chart (the page's first image)
    first = f"{lb.text('table')} 1.".casefold()
    assert first in flat[0], "page 1 holds the headline only"
    assert pages[0][1] == 1, "table 1's chart is not on page 1"
    assert sum(images for _, images in pages) == len(TABLE_IDS) + 1  # issue 16: the curves
    run_keys = [lb.text(k) for k in ("about_run", "reference_date", "rules_version",
                                     "config_hash", "min_cell")]
    run_keys.append(lb.text("generated_by", version=pipeline.__version__))
    on = [i for i, p in enumerate(flat) if lb.text("about_run").casefold() in p]
    assert len(on) == 1, on
    assert [k for k in run_keys if k.casefold() not in flat[on[0]]] == []


# ---------------------------------------------------------------------------------------
# 8. the words: what a manager reads on the page (and in the spreadsheet, which prints the
# same notes)


@pytest.mark.parametrize(("lang", "min_cell", "note"), [
    ("da", 5, "c: fortroligt. Antal fra 1 til 4 skjules, og det samme gør de tal, som et skjult"
              " antal ellers ville kunne regnes ud fra (diskretionering). Nul vises. En andel"
              " vises kun, når både dens antal og det antal, den er en andel af, vises."),
    ("en", 5, "c: confidential. Counts from 1 to 4 are hidden, and so are the numbers from"
              " which a hidden count could otherwise be worked out (disclosure control). Zeros"
              " are shown. A share is shown only when both its count and the count it is a"
              " share of are shown."),
    ("da", 10, "c: fortroligt. Antal fra 1 til 9 skjules, og det samme gør de tal, som et skjult"
               " antal ellers ville kunne regnes ud fra (diskretionering). Nul vises. En andel"
               " vises kun, når både dens antal og det antal, den er en andel af, vises."),
    ("da", 2, "c: fortroligt. Antal på 1 skjules, og det samme gør de tal, som et skjult"
              " antal ellers ville kunne regnes ud fra (diskretionering). Nul vises. En andel"
              " vises kun, når både dens antal og det antal, den er en andel af, vises."),
    ("en", 1, "No small counts are hidden (min_cell = 1)."),
    ("da", 0, "Diskretionering er slået fra (min_cell = 0): tabellerne er kun til intern brug."),
])  # fmt: skip
def test_the_c_footnote_says_which_counts_are_hidden(lang, min_cell, note):
    # definitions §6: counts from 1 to min_cell - 1 are hidden; zero is shown
    from pipeline.labels import hidden_note

    assert hidden_note(Labels(lang, load_rules(None)), Config(min_cell=min_cell)) == note


def test_the_page_prints_the_c_footnote_of_its_run(release, page):
    from pipeline.labels import hidden_note

    text = "\n".join(page.text)
    assert hidden_note(labels(), CFG) in text
    assert "Tal under" not in text and "rækkens i alt" not in text


FAXE_TABLES = {  # definitions §5, "source in the Faxe report"
    "profile_distribution": ("Faxe-rapportens hovedtal", "the Faxe report's headline shares"),
    "course_history": ("tabel 1, 5 og 6 i Faxe-rapporten", "Tables 1, 5 and 6 of the Faxe report"),
    "age_groups": ("tabel 2 i Faxe-rapporten", "Table 2 of the Faxe report"),
    "case_focus": ("tabel 3 i Faxe-rapporten", "Table 3 of the Faxe report"),
    "misuse": ("tabel 4 og 7 i Faxe-rapporten", "Tables 4 and 7 of the Faxe report"),
    "motivation": ("tabel 8 i Faxe-rapporten", "Table 8 of the Faxe report"),
    "m3_duration": ("halvdelen havde været der i mere end 1\u00a0år",
                    "about half had been in it for more than 1\u00a0year"),
    "barriers": ("Faxe-rapporten, men til dens helhedssyn", "Faxe report but to its holistic view"),
}  # fmt: skip


def test_each_table_says_which_table_of_the_faxe_report_it_is(release):
    import html

    page_html = (release.out / "publish" / "report.html").read_text(encoding="utf-8")
    under_heading = dict(re.findall(
        r'<section class="table" id="(\w+)">\s*<div class="lead-in">\s*<h3>[^<]*</h3>\s*'
        r'<p class="faxe">([^<]*)</p>', page_html))
    assert set(under_heading) == set(TABLE_IDS)
    english = Labels("en", load_rules(None))
    for table_id, (da, en) in FAXE_TABLES.items():
        assert da in html.unescape(under_heading[table_id]), table_id
        assert en in english.table(table_id, "faxe"), table_id


def test_the_sea_is_explained_where_it_is_first_used(page):
    # "havet" is the Faxe report's figure: a reader of the page has not read the report
    first = next(t for t in page.text if re.search(r"\bhav(et)?\b", t))
    assert "Faxe-rapporten bruger billedet af et hav: jo dybere nede en profil ligger, jo" \
           " længere er vejen tilbage til arbejde." in first


def test_a_barrier_label_says_what_it_means():
    # the barrier is a lack of a network, not "isolation and network"
    assert labels().col("barrier_isolation") == "Isolation, manglende netværk"
    assert Labels("en", load_rules(None)).col("barrier_isolation") == "Isolation, no network"


def test_an_all_zero_not_in_m3_column_is_left_out(release, page):
    # definitions §5: "not in M3 on the reference date" is shown only when non-zero; under the
    # default scope nobody tabulated here is out of M3
    con = duckdb.connect(str(release.out / "warehouse.duckdb"), read_only=True)
    try:
        (out_of_m3,) = con.execute(
            "select count(*) from marts.citizens where in_scope and m3_band = 'not_in_m3'"
        ).fetchone()
    finally:
        con.close()
    assert CFG.scope == "m3" and out_of_m3 == 0
    _, cols, _ = release.grid("m3_duration")
    assert cols == ["under_1y", "1_to_2y", "2y_plus", TOTAL]
    assert labels().col("not_in_m3") not in page.tables["m3_duration"]["columns"]


def test_without_disclosure_control_the_page_says_so_at_the_top(release, pub):
    # min_cell = 0 (internal work): the first thing on the page says it must not leave the
    # building, not only a bullet near the bottom
    from pipeline.page import RunInfo, render_html
    from pipeline.release import Profiles, headline

    con = duckdb.connect(str(release.out / "warehouse.duckdb"), read_only=True)
    try:
        tables = tuple(pub.values())
        head, profiles = headline(con, tables, CFG), Profiles.from_warehouse(con)
    finally:
        con.close()
    info = RunInfo(REF, profiles.version, profiles.source, profiles.sha256, "0" * 64, None, ())
    charts = {t.id: b"" for t in tables}
    lb = labels()
    for min_cell, banner in [(0, True), (MIN_CELL, False)]:
        cfg = Config(reference_date=REF, min_cell=min_cell)
        body = ReportPage(render_html(tables, head, info, charts, lb, cfg, profiles)).text
        body = [t.strip() for t in body if t.strip()]
        top = f"{lb.text('internal_only')}: {lb.text('no_suppression')}"
        before_h1 = body[body.index(lb.text("report_title")) - 1]
        assert (before_h1 == top) is banner, before_h1[:100]


def test_a_base_profile_row_says_it_is_one(release):
    # issue 14: "De måske egnede" was 2,640 in Tabel 1 and 3,348 in the misuse table, which
    # counts base profiles: one name with two numbers. The base-profile rows say what they are
    lb = labels()
    assert lb.row("maybe_suitable") == "De måske egnede"
    assert lb.row("maybe_suitable", "base_profile") == "De måske egnede (basisprofil)"
    assert Labels("en", load_rules(None)).row("maybe_suitable", "base_profile") == (
        "Maybe suitable (base profile)")
    assert lb.row("total", "base_profile") == lb.col("total")
    page = (release.out / "publish" / "report.html").read_text("utf-8")
    assert page.count("De måske egnede (basisprofil)") == 1  # the misuse table's row
    book = openpyxl.load_workbook(release.out / "publish" / "tables.xlsx", read_only=True)
    sheet = book[lb.table("misuse", "sheet")[:31]]
    assert "De måske egnede (basisprofil)" in {row[0] for row in sheet.values}


def test_the_definitions_name_benefits_not_codes(release):
    page = (release.out / "publish" / "report.html").read_text("utf-8")
    assert "foertidspension" not in page
    assert "alle ydelser undtagen fleksjob, førtidspension" in page


def test_the_workbook_prints_one_page_wide_and_says_what_it_was_made_from(release):
    # issue 14: tables.xlsx printed as 25 pages for 8 tables, continuation pages without row
    # labels, and carried no run id, reference date or rules version
    book = openpyxl.load_workbook(release.out / "publish" / "tables.xlsx")
    lb = labels()
    for table_id in TABLE_IDS:
        ws = book[lb.table(table_id, "sheet")[:31]]
        setup = ws.page_setup
        assert (setup.orientation, setup.paperSize) == ("landscape", 9)  # A4
        assert ws.sheet_properties.pageSetUpPr.fitToPage
        # one page wide (OOXML's default width 1 is left out of the file), as long as needed
        assert (setup.fitToWidth or 1, setup.fitToHeight) == (1, 0)
        assert ws.print_title_rows == "$4:$5" and ws.print_title_cols == "$A:$A"
    overview = [v for (v,) in book[lb.text("tables")[:31]].iter_rows(values_only=True) if v]
    manifest = json.loads((release.out / "run.json").read_text("utf-8"))
    assert f"Kørsel: {manifest['run_id']}" in overview
    assert "Opgørelsesdag: 25. november 2026 (2026-11-25)" in overview
    assert any(v.startswith("Profilregler: faxe-2013.1 (rules.toml), SHA-256 ") for v in overview)
