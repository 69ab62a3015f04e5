"""The report stage: the published profile tables, the spreadsheet, the charts and the report
page (definitions §5-§6; interface, *Where things go*).

Reads `marts.citizens` and `marts.profiles` (segment's output), the rules file (profile labels
and depth order), `pipeline/labels.toml` (every other label, Danish and English) and the ingest
layers (data counts). Writes, in one transaction, the table marts of `pipeline.tables`
(`marts.suppressed_cells` keeps why a cell is hidden: internal), then into the output folder
`tables/<id>.csv`, `tables.xlsx`, `charts/<id>.png` and `report.html`. The files are made in a
temporary folder inside the output folder and moved into place only when everything succeeded
and the warehouse is committed, so a failing report leaves no partial files. Everything after
the SQL works on the small published tables; it never sees a citizen. Knows nothing of terminals
or exit codes.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import itertools
import os
import shutil
import textwrap
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import numpy as np
import xlsxwriter
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

import pipeline
from pipeline import chart_workers
from pipeline.config import Config, ConfigError
from pipeline.errors import InputError
from pipeline.rules import Rules, RulesError, load_rules
from pipeline.segment import age_band_codes
from pipeline.suppression import TOTAL, audit, suppress
from pipeline.tables import (
    TABLE_IDS,
    Cell,
    Headline,
    PublishedTable,
    base_profile_order,
    build_tables,
    headline,
    profile_order,
    published,
    release,
    store_pattern,
)

# interface: what the report stage puts in the output folder
OUTPUTS: tuple[str, ...] = ("tables", "tables.xlsx", "charts", "report.html")
CSV_COLUMNS: tuple[str, ...] = ("row", "col", "n", "share", "hidden")
HIDDEN = "c"  # §6: every hidden cell is shown the same way
# charts: stacked shares for additive tables, a heat map for multi-response ones
_DARK_FIRST = {"course_history"}  # the first column is the deepest ("long course")
_SEA = ListedColormap(["#dbe9f6", "#b2d2ea", "#7fb2d9", "#4a8cc2", "#2166a5", "#0b3f75",
                       "#062a52"], name="sea")
_HIDDEN_GREY = "#d5dbe1"
_NEUTRAL_GREY = "#9aa5b1"
_DPI = 110
_PAD = 0.2  # inches of white around a chart
_CHART_RC = {"font.family": "DejaVu Sans", "font.size": 9, "svg.hashsalt": "m3",
             "axes.spines.top": False, "axes.spines.right": False}


class ReportError(RuntimeError):
    """The release failed its disclosure audit or a label is missing: nothing was published."""


@dataclass(frozen=True)
class ReportResult:
    """What the report stage published (counts of printed cells, not of citizens)."""

    reference_date: dt.date
    lang: str
    min_cell: int
    tables: tuple[str, ...]
    # citizens in the tables (in scope, with a profile) and printed cells in the release
    tabulated: int
    cells: int
    hidden_primary: int
    hidden_secondary: int
    # paths written, relative to the output folder
    files: tuple[str, ...]

    @property
    def hidden(self) -> int:
        return self.hidden_primary + self.hidden_secondary

    def summary_lines(self) -> list[str]:
        """Plain lines for the run summary (no personal data: counts of cells)."""
        return [
            f"Report: {len(self.tables)} tables of {self.tabulated:,} citizens with a profile,"
            f" {self.cells:,} cells, {self.hidden:,} hidden as '{HIDDEN}' (min_cell"
            f" {self.min_cell}: {self.hidden_primary:,} small, {self.hidden_secondary:,} to"
            " protect them).",
            f"Wrote {', '.join(OUTPUTS)} ({self.lang}).",
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for run.json)."""
        d = asdict(self)
        d["reference_date"] = self.reference_date.isoformat()
        d["tables"] = list(self.tables)
        d["files"] = list(self.files)
        return d


# ---------------------------------------------------------------------------------------
# Labels


_DA_MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
              "september", "oktober", "november", "december")


class Labels:
    """Labels in one language: profiles from the rules file, the rest from labels.toml."""

    def __init__(self, lang: str, rules: Rules, catalogue: Mapping[str, Any] | None = None):
        if lang not in ("da", "en"):
            raise ConfigError(f"lang must be da or en, got {lang!r}")
        self.lang = lang
        self.rules = rules
        self.cat = catalogue if catalogue is not None else load_catalogue()

    def text(self, key: str, **fmt: Any) -> str:
        return self.cat["text"][key][self.lang].format(**fmt)

    def table(self, table_id: str, field: str) -> str:
        return self.cat["table"][table_id][f"{field}_{self.lang}"]

    def row(self, code: str) -> str:
        if code == TOTAL:
            return self.col(TOTAL)
        return self.rules.label(code, self.lang)

    def col(self, code: str) -> str:
        if code in self.cat["column"]:
            return self.cat["column"][code][self.lang]
        bands = self.cat["age_band"]
        if code in ("all_ages", "unknown"):
            return bands[code][self.lang]
        parts = code.split("_")
        if len(parts) == 2 and parts[0] == "under" and parts[1].isdigit():
            return bands["under"][self.lang].format(n=parts[1])
        if len(parts) == 2 and parts[1] == "plus" and parts[0].isdigit():
            return bands["plus"][self.lang].format(n=parts[0])
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            return bands["range"][self.lang].format(lo=parts[0], hi=parts[1])
        raise ReportError(f"pipeline/labels.toml: no label for column code {code!r}")

    def date(self, d: dt.date) -> str:
        if self.lang == "da":
            return f"{d.day}. {_DA_MONTHS[d.month - 1]} {d.year}"
        return d.strftime("%d %B %Y").lstrip("0")

    def n(self, n: int | None) -> str:
        """A count, with the language's thousands separator; `c` when hidden."""
        if n is None:
            return HIDDEN
        text = f"{n:,}"
        return text.replace(",", ".") if self.lang == "da" else text

    def share(self, share: float | None) -> str:
        """A share as a whole percentage ("45 %" in Danish); "–" for none (0 of 0)."""
        if share is None:
            return "–"
        pct = f"{share * 100:.0f}"
        return f"{pct} %" if self.lang == "da" else f"{pct}%"

    def share_of(self, cell: Cell) -> str:
        """A cell's share; `c` when the count or its denominator is hidden (§6)."""
        return HIDDEN if cell.share_hidden else self.share(cell.share)


def load_catalogue() -> dict[str, Any]:
    """The label catalogue shipped with the package (pipeline/labels.toml)."""
    return tomllib.loads((resources.files("pipeline") / "labels.toml").read_text("utf-8"))


# ---------------------------------------------------------------------------------------
# The stage


def report(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    rules: Rules | Path | None,
    out_dir: Path,
    manifest: Mapping[str, Any] | None = None,
    step: Callable[[str], None] | None = None,
) -> ReportResult:
    """Count, suppress, audit and publish the tables of definitions §5 into `out_dir`.

    `rules` is a loaded `Rules`, a rules file, or None for the shipped one; it must be the one
    segment used. `manifest` is what the runner knows of the run so far (run id, input files
    with SHA-256); without it the report shows what the warehouse knows."""
    cfg = cfg.resolved()
    step = step or (lambda _: None)
    if not isinstance(rules, Rules):
        rules = load_rules(rules)
    labels = Labels(cfg.lang, rules)
    out_dir = Path(out_dir)
    _check_warehouse(con, cfg, rules)

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".report-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    con.execute("begin transaction")
    try:
        step("report: counting the tables")
        build_tables(con, cfg, rules)
        tables = release(con)
        step(f"report: suppressing small counts (min_cell {cfg.min_cell})")
        # the charts' fork server (already running in a `run`) gets ready while the
        # suppression is solved and the tables written; not sooner, as its start-up would
        # take a core from counting the tables
        chart_workers.start_server()
        pattern = suppress(tables, cfg.min_cell)
        problems = audit(tables, pattern.keys(), cfg.min_cell)
        if problems:
            raise ReportError("the suppression pattern failed its audit (§6); nothing was"
                              " published: " + "; ".join(problems[:5]))
        store_pattern(con, pattern, cfg)
        pub = published(con)
        head = headline(con, pub, cfg)
        info = _run_info(con, cfg, rules, manifest)
        step("report: writing tables, spreadsheet, charts and report.html")
        files = _write_outputs(tmp, pub, head, info, labels, cfg, rules)
        con.execute("commit")
    except BaseException:
        try:
            con.execute("rollback")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _move_into_place(tmp, out_dir)
    reasons = list(pattern.values())
    tabulated = int(tables[0].counts[-1, -1]) if tables else 0
    return ReportResult(
        reference_date=cfg.reference_date,
        lang=cfg.lang,
        min_cell=cfg.min_cell,
        tables=tuple(t.id for t in pub),
        tabulated=tabulated,
        cells=sum(len(t.cells) for t in pub),
        hidden_primary=reasons.count("primary"),
        hidden_secondary=reasons.count("secondary"),
        files=files,
    )


def _check_warehouse(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules) -> None:
    """Refuse a warehouse that segment has not built, or built with other rules or bands."""
    have = {
        (s, t) for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name ="
            " current_database()").fetchall()
    }
    if ("marts", "citizens") not in have:
        raise InputError("the warehouse has no marts.citizens: run 'm3-profiles segment'"
                         " (or 'run') before 'report'")
    if ("marts", "profiles") in have:
        codes, version = con.execute(
            "select list(code order by precedence), any_value(rules_version)"
            " from marts.profiles").fetchone()
        if version is not None and (tuple(codes) != rules.codes or version != rules.version):
            raise RulesError(
                f"{rules.source}: the warehouse was segmented with rules {version!r}"
                f" ({', '.join(codes)}), not {rules.version!r} ({', '.join(rules.codes)}):"
                " report with the rules segment used (--rules), or run segment again")
    unknown = con.execute(
        "select list(distinct profile order by profile) filter"
        " (where not list_contains($codes, profile)),"
        " list(distinct age_band order by age_band) filter"
        " (where not list_contains($bands, age_band))"
        " from marts.citizens where in_scope",
        {"codes": list(rules.codes), "bands": list(age_band_codes(cfg.age_bands))},
    ).fetchone()
    if unknown[0]:
        raise RulesError(f"{rules.source}: marts.citizens has profiles the rules do not know:"
                         f" {', '.join(unknown[0])}; run segment with these rules")
    if unknown[1]:
        raise ConfigError(f"marts.citizens has age bands {', '.join(unknown[1])} that the"
                          f" config's age_bands {list(cfg.age_bands)} do not make: report with"
                          " the config segment used, or run segment again")


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Replace each output of an earlier report by the new one (a rename each)."""
    for name in OUTPUTS:
        target = out_dir / name
        if target.is_dir():
            old = out_dir / f".{name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            shutil.rmtree(old)
        elif target.exists():
            target.unlink()
        os.replace(tmp / name, target)
    tmp.rmdir()


# ---------------------------------------------------------------------------------------
# Run information (the report's last section)


@dataclass(frozen=True)
class RunInfo:
    reference_date: dt.date
    rules_version: str
    rules_source: str
    rules_sha256: str
    config_sha256: str
    run_id: str | None
    input_files: tuple[tuple[str, str | None], ...]  # (path, sha256)
    rows: Mapping[str, tuple[int, int, int]]  # table -> (read, loaded, quarantined)
    episodes_after_reference: int | None


def _run_info(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules,
              manifest: Mapping[str, Any] | None) -> RunInfo:
    manifest = manifest or {}
    have = {
        f"{s}.{t}" for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name ="
            " current_database()").fetchall()
    }
    rows: dict[str, tuple[int, int, int]] = {}
    for table in ("citizens", "episodes"):
        if f"raw.{table}" in have and f"staging.{table}" in have:
            read = con.execute(f"select count(*) from raw.{table}").fetchone()[0]
            loaded = con.execute(f"select count(*) from staging.{table}").fetchone()[0]
            rows[table] = (read, loaded, read - loaded)  # data contract: read = loaded + q.
    after = None
    if "staging.episodes" in have:
        after = con.execute(
            "select count(*) from staging.episodes where start_date > $d",
            {"d": cfg.reference_date}).fetchone()[0]
    files: list[tuple[str, str | None]] = [
        (str(f.get("path", "")), f.get("sha256")) for f in manifest.get("input_files", [])
    ]
    if not files and "raw.citizens" in have and "raw.episodes" in have:
        files = [(name, None) for (name,) in con.execute(
            "select distinct _file from (select _file from raw.citizens union all"
            " select _file from raw.episodes) order by 1").fetchall()]
    return RunInfo(
        reference_date=cfg.reference_date,
        rules_version=rules.version,
        rules_source=rules.source,
        rules_sha256=rules.sha256,
        config_sha256=cfg.effective_sha256(),
        run_id=manifest.get("run_id"),
        input_files=tuple(files),
        rows=rows,
        episodes_after_reference=after,
    )


# ---------------------------------------------------------------------------------------
# Outputs


def _write_outputs(tmp: Path, pub: Sequence[PublishedTable], head: Headline, info: RunInfo,
                   labels: Labels, cfg: Config, rules: Rules) -> tuple[str, ...]:
    (tmp / "tables").mkdir()
    (tmp / "charts").mkdir()
    files: list[str] = []
    for t in pub:
        write_csv(t, tmp / "tables" / f"{t.id}.csv")
        files.append(f"tables/{t.id}.csv")
    write_xlsx(tmp / "tables.xlsx", pub, labels, cfg)
    files.append("tables.xlsx")
    charts: dict[str, bytes] = {}
    for t, (titled, plain) in zip(pub, _draw_charts(pub, labels), strict=True):
        # charts/ for slides carry their title; the page has it as a heading already
        (tmp / "charts" / f"{t.id}.png").write_bytes(titled)
        files.append(f"charts/{t.id}.png")
        charts[t.id] = plain
    html = render_html(pub, head, info, charts, labels, cfg, rules)
    (tmp / "report.html").write_text(html, encoding="utf-8")
    files.append("report.html")
    return tuple(files)


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


def _heading(table: PublishedTable, number: int, labels: Labels) -> str:
    what = labels.text("multi_response") if table.multi_response else labels.text(
        "counts_and_shares")
    return f"{labels.text('table')} {number}. {labels.table(table.id, 'title')} ({what})"


def _row_header(table: PublishedTable, labels: Labels) -> str:
    return labels.text("base_profile" if table.row_dim == "base_profile" else "profile")


def _population(labels: Labels, cfg: Config) -> str:
    key = "population" if cfg.scope == "m3" else "population_all"
    return labels.text(key, date=labels.date(cfg.reference_date))


def _hidden_note(labels: Labels, cfg: Config) -> str:
    if cfg.min_cell == 0:
        return labels.text("no_suppression")
    return labels.text("hidden_note", min_cell=cfg.min_cell)


def write_xlsx(path: Path, pub: Sequence[PublishedTable], labels: Labels, cfg: Config) -> None:
    """One formatted sheet per table (labels, frozen header, number formats, `c` with a
    footnote) after an overview sheet. Same input, same bytes: the created date is fixed to
    the reference date."""
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "in_memory": True})
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
        return wb.add_format(props)

    formats = {(t, k): fmt(t, k) for t in (False, True)
               for k in ("n", "share", "hidden", "label", "none")}

    overview = wb.add_worksheet(labels.text("tables")[:31])
    overview.set_column(0, 0, 90)
    overview.write(0, 0, labels.text("report_title"), f_title)
    overview.write(1, 0, _population(labels, cfg), f_note)
    overview.write(2, 0, _hidden_note(labels, cfg), f_wrap_note)
    overview.set_row(2, 45)
    sheet_names = [labels.table(t.id, "sheet")[:31] for t in pub]
    for i, (t, name) in enumerate(zip(pub, sheet_names, strict=True), start=1):
        overview.write_url(3 + i, 0, f"internal:'{name}'!A1", f_link,
                           string=_heading(t, i, labels))

    for number, (t, name) in enumerate(zip(pub, sheet_names, strict=True), start=1):
        ws = wb.add_worksheet(name)
        ws.write(0, 0, _heading(t, number, labels), f_title)
        ws.write(1, 0, _population(labels, cfg), f_note)
        header_row, sub_row, first = 3, 4, 5
        ws.write(header_row, 0, _row_header(t, labels), f_head_left)
        ws.write(sub_row, 0, "", f_head_left)
        for j, c in enumerate(t.all_cols):
            col = 1 + 2 * j
            ws.merge_range(header_row, col, header_row, col + 1, labels.col(c), f_head)
            ws.write(sub_row, col, labels.text("count"), f_sub)
            ws.write(sub_row, col + 1, labels.text("share"), f_sub)
        for i, r in enumerate(t.all_rows):
            total_row = r == TOTAL
            ws.write(first + i, 0, labels.row(r), formats[(total_row, "label")])
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
        ws.write(last + 1, 0, labels.table(t.id, "reading"), f_note)
        ws.write(last + 2, 0, _hidden_note(labels, cfg), f_note)
        ws.write(last + 3, 0, labels.text("source_file", id=t.id), f_note)
        ws.set_column(0, 0, 46)
        ws.set_column(1, 2 * len(t.all_cols), 10)
        ws.set_row(header_row, 60)
        ws.freeze_panes(first, 1)
    wb.close()


# ---------------------------------------------------------------------------------------
# Charts (matplotlib's Agg canvas, no pyplot: no global state, the same bytes every time)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _colors(n: int, dark_first: bool) -> list:
    shades = [_SEA(x) for x in np.linspace(0.15, 0.95, n)] if n else []
    return shades[::-1] if dark_first else shades


def _ink(rgba) -> str:  # noqa: ANN001 - a colour tuple
    r, g, b = rgba[:3]
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.55 else "#1b2631"


def chart_png(table: PublishedTable, number: int, labels: Labels, *, title: bool = True) -> bytes:
    """One chart of `chart_pngs`: with its title (charts/) or without (the page)."""
    return chart_pngs(table, number, labels)[0 if title else 1]


def chart_pngs(table: PublishedTable, number: int, labels: Labels) -> tuple[bytes, bytes]:
    """One chart per table, drawn from the published values only (hidden cells reveal
    nothing: a hidden part of a row is drawn as one grey `c` block whose size is known
    anyway from the shown numbers: row total minus the shown cells). Returns the PNG with
    the table's title above the chart, for charts/, and the same chart without it, for the
    page (where the title is the heading)."""
    with rc_context(_CHART_RC):
        fig = _chart_figure(table, labels)
        heading = _add_title(fig, table, number, labels)
        # One figure saved twice, each cut to what bbox_inches="tight" would cut; measured
        # here, once, instead of by a draw of its own inside each savefig (nothing in these
        # charts needs drawing before it can be measured: no layout engine), and measured
        # at the dpi it is saved at (text extents do not scale exactly with the dpi).
        fig.set_dpi(_DPI)
        titled_box = fig.get_tightbbox().padded(_PAD)
        heading.set_visible(False)
        plain = _png(fig, fig.get_tightbbox().padded(_PAD))
        heading.set_visible(True)
        titled = _png(fig, titled_box)
    return titled, plain


def _chart_figure(table: PublishedTable, labels: Labels) -> Figure:
    if table.id == "profile_distribution":
        fig = _bars_chart(table, labels)
    elif table.multi_response:
        fig = _heatmap_chart(table, labels)
    else:
        fig = _stacked_chart(table, labels)
    FigureCanvasAgg(fig)
    return fig


def _add_title(fig: Figure, table: PublishedTable, number: int, labels: Labels) -> Text:
    sp = fig.subplotpars  # the title starts at the figure's left edge, like a heading
    text = f"{labels.text('table')} {number}. {labels.table(table.id, 'title')}"
    return fig.axes[0].set_title(
        _wrap(text, 90), loc="left", x=-(sp.left - 0.01) / (sp.right - sp.left),
        pad=14, fontsize=11, fontweight="bold", color="#0b2545")


# zlib level 3: the same pixels as the default 6 in a 2 % larger file, in 60 % of the time
_PNG_OPTIONS = {"compress_level": 3}


def _png(fig: Figure, box: Bbox) -> bytes:
    buf = io.BytesIO()
    # pinned metadata: no software version or date in the file (byte-identical PNGs)
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches=box, metadata={"Software": None},
                pil_kwargs=_PNG_OPTIONS)
    return buf.getvalue()


def _draw_charts(pub: Sequence[PublishedTable], labels: Labels) -> list[tuple[bytes, bytes]]:
    """`chart_pngs` of every table, in order. Drawing is most of the report stage's fixed
    time and no chart needs another, so with more than one core they are drawn side by side
    in worker processes (`pipeline.chart_workers`). The workers only draw: no DuckDB, no
    files. They are gone before this returns or raises."""
    workers = min(chart_workers.available(), len(pub))
    if workers < 2:
        return [chart_pngs(t, number, labels) for number, t in enumerate(pub, start=1)]
    # the charts with the most cells (the most text to draw) first: no worker is left alone
    # with a big one at the end
    order = sorted(range(len(pub)), key=lambda i: -len(pub[i].cells))
    pool = chart_workers.pool(workers)
    try:
        drawn = pool.map(chart_pngs, [pub[i] for i in order], [i + 1 for i in order],
                         itertools.repeat(labels))
        by_index = dict(zip(order, drawn, strict=True))
        return [by_index[i] for i in range(len(pub))]
    finally:
        # on a failure: charts not begun are dropped, the ones being drawn run out, and
        # every worker has exited before the report's transaction is rolled back
        pool.shutdown(wait=True, cancel_futures=True)


def _row_labels(table: PublishedTable, labels: Labels) -> list[str]:
    return [_wrap(labels.row(r), 30) for r in table.all_rows]


def _bars_chart(table: PublishedTable, labels: Labels) -> Figure:
    """Profile distribution: one bar per profile, deeper profiles lower and darker (the sea)."""
    rows = table.rows
    fig = Figure(figsize=(9, 0.5 * len(rows) + 1.5))
    ax = fig.add_subplot()
    colors = _colors(len(rows), dark_first=False)
    y = np.arange(len(rows))[::-1]
    shares = [table.cell(r, TOTAL).share for r in rows]
    top = max([s for s in shares if s is not None] + [0.01])
    for yi, r, color, share in zip(y, rows, colors, shares, strict=True):
        cell = table.cell(r, TOTAL)
        if share is None:
            ax.text(0.002, yi, HIDDEN if cell.hidden else "–", va="center", fontsize=9)
            continue
        ax.barh(yi, share, color=color, height=0.7)
        ax.text(share + top * 0.01, yi, f"{labels.n(cell.n)}  ({labels.share(share)})",
                va="center", fontsize=9)
    ax.set_yticks(y, [_wrap(labels.row(r), 34) for r in rows])
    ax.set_xlim(0, top * 1.25)
    ax.xaxis.set_major_formatter(lambda v, _: labels.share(v))
    ax.set_xlabel(labels.text("chart_share_of_all"))
    fig.subplots_adjust(left=0.3, right=0.97, top=0.86, bottom=0.18)
    return fig


def _stacked_chart(table: PublishedTable, labels: Labels) -> Figure:
    """Additive table: 100 % bars per profile (and the total), in the column order."""
    rows = table.all_rows
    cols = table.cols
    fig = Figure(figsize=(9, 0.48 * len(rows) + 1.6))
    ax = fig.add_subplot()
    colors = _colors(len(cols), dark_first=table.id in _DARK_FIRST)
    if cols and cols[-1] in ("not_in_m3", "no_history", "unknown"):
        colors[-1] = (0.6, 0.64, 0.69, 1.0)  # "none" columns in neutral grey
    y = np.arange(len(rows), dtype=float)[::-1]
    y[-1] -= 0.4  # a gap before the total bar
    any_hidden = False
    for yi, r in zip(y, rows, strict=True):
        total = table.cell(r, TOTAL)
        if not total.n:  # hidden or zero: no proportions to draw
            ax.text(0.005, yi, HIDDEN if total.hidden else "–", va="center")
            continue
        left = 0.0
        for j, c in enumerate(cols):
            cell = table.cell(r, c)
            if cell.share is None or cell.n == 0:
                continue
            ax.barh(yi, cell.share, left=left, color=colors[j], height=0.72,
                    edgecolor="white", linewidth=0.6)
            if cell.share >= 0.06:
                ax.text(left + cell.share / 2, yi, labels.share(cell.share), ha="center",
                        va="center", fontsize=8, color=_ink(colors[j]))
            left += cell.share
        rest = 1.0 - left
        if rest > 1e-9:  # the hidden cells of this row, together (row total minus shown)
            any_hidden = True
            ax.barh(yi, rest, left=left, color=_HIDDEN_GREY, height=0.72, hatch="///",
                    edgecolor="white", linewidth=0.6)
            ax.text(left + rest / 2, yi, HIDDEN, ha="center", va="center", fontsize=8)
    ax.set_yticks(y, _row_labels(table, labels))
    ax.get_yticklabels()[-1].set_fontweight("bold")
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda v, _: labels.share(v))
    ax.set_xlabel(labels.text("chart_share_of_row"))
    handles = [Patch(color=colors[j], label=_wrap(labels.col(c), 34)) for j, c in enumerate(cols)]
    if any_hidden:
        handles.append(Patch(facecolor=_HIDDEN_GREY, hatch="///", edgecolor="white",
                             label=labels.text("hidden_segment")))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=min(len(handles), 3), frameon=False, fontsize=8)
    fig.subplots_adjust(left=0.27, right=0.97, top=1 - 0.75 / fig.get_figheight(), bottom=0.3)
    return fig


def _heatmap_chart(table: PublishedTable, labels: Labels) -> Figure:
    """Multi-response table: the share of each profile's citizens ticking each column."""
    rows, cols = table.all_rows, table.cols
    fig = Figure(figsize=(9, 0.5 * len(rows) + 3.4))
    ax = fig.add_subplot()
    data = np.array([[np.nan if table.cell(r, c).share is None else table.cell(r, c).share
                      for c in cols] for r in rows], dtype=float)
    ax.imshow(np.ma.masked_invalid(data), cmap=_SEA, vmin=0, vmax=1, aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = table.cell(r, c)
            if cell.share is None:
                ax.add_patch(_rect(j, i, _HIDDEN_GREY if cell.share_hidden else "white"))
                text, color = labels.share_of(cell), "#1b2631"
            else:
                text, color = labels.share(cell.share), _ink(_SEA(cell.share))
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color,
                    fontweight="bold" if r == TOTAL else "normal")
    # steep enough that neighbouring labels of two lines do not run into each other
    ax.set_xticks(np.arange(len(cols)), [_wrap(labels.col(c), 26) for c in cols], fontsize=8,
                  rotation=50, ha="left", rotation_mode="anchor")
    ax.set_yticks(np.arange(len(rows)), _row_labels(table, labels))
    ax.get_yticklabels()[-1].set_fontweight("bold")
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    ax.axhline(len(rows) - 1.5, color="#1b2631", linewidth=1.2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(labels.text("chart_share_of_row"))
    fig.subplots_adjust(left=0.27, right=0.9, top=1 - 2.2 / fig.get_figheight(), bottom=0.08)
    return fig


def _rect(x: int, y: int, color: str):  # noqa: ANN202 - a matplotlib Rectangle
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=color, edgecolor="white")


# ---------------------------------------------------------------------------------------
# report.html


def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: (resources.files("pipeline") / "templates" / name).read_text("utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


class _Text:
    """`t.key` in the template: a text of the label catalogue."""

    def __init__(self, labels: Labels) -> None:
        self._labels = labels

    def __getattr__(self, key: str) -> str:
        return self._labels.text(key)


def render_html(pub: Sequence[PublishedTable], head: Headline, info: RunInfo,
                charts: Mapping[str, bytes], labels: Labels, cfg: Config, rules: Rules) -> str:
    """The self-contained report page: headline figures, each table with its chart and a
    reading aid, the definitions used, and what the run was made of."""
    lb = labels
    scope_label = lb.text("in_scope" if cfg.scope == "m3" else "in_scope_all")
    cards = [
        {"value": lb.n(head.in_scope), "label": scope_label,
         "note": f"{lb.text('profiled')}: {lb.n(head.profiled.n)}; "
                 f"{lb.text('unreviewed')}: {lb.n(head.unreviewed)}"},
        {"value": lb.share_of(head.m3_over_1y),
         "label": lb.text("m3_over_1y"), "note": lb.text("of_profiled")},
        {"value": lb.share_of(head.long_continuous), "label": lb.text("long_continuous"),
         "note": lb.text("of_profiled")},
        {"value": lb.share_of(head.complex_case),
         "label": lb.text("complex_case", n=cfg.complex_case_departments),
         "note": lb.text("of_profiled")},
    ]
    order = profile_order(rules)
    shown = [c.share for c in head.profile_shares.values() if c.share is not None]
    top = max(shown + [0.01])
    profile_bars = []
    for depth, code in enumerate(order):
        cell = head.profile_shares[code]
        profile_bars.append({
            "label": lb.row(code),
            "width": None if cell.share is None else round(100 * cell.share / top, 1),
            "opacity": round(0.35 + 0.65 * depth / max(len(order) - 1, 1), 2),
            "value": lb.share_of(cell),
        })
    tables = []
    for number, t in enumerate(pub, start=1):
        rows = []
        for r in t.all_rows:
            cells = []
            for c in t.all_cols:
                cell = t.cell(r, c)
                css = " ".join(x for x in ("hidden" if cell.hidden else "",
                                           "totalcol" if c == TOTAL else "") if x)
                cells.append({"n": lb.n(cell.n), "css": css,
                              "share": None if cell.hidden else lb.share_of(cell)})
            rows.append({"label": lb.row(r), "total": r == TOTAL, "cells": cells})
        tables.append({
            "id": t.id,
            "heading": _heading(t, number, lb),
            "chart": base64.b64encode(charts[t.id]).decode("ascii"),
            "row_header": _row_header(t, lb),
            "columns": [lb.col(c) for c in t.all_cols],
            "rows": rows,
            "reading": lb.table(t.id, "reading"),
            "any_hidden": any(c.share_hidden for c in t.cells.values()),
            "source": lb.text("source_file", id=t.id),
        })
    return _template().render(
        lang=lb.lang,
        title=lb.text("report_title"),
        reference_date=lb.date(cfg.reference_date),
        population=_population(lb, cfg),
        t=_Text(lb),
        cards=cards,
        profile_bars=profile_bars,
        tables=tables,
        hidden_note=_hidden_note(lb, cfg),
        definitions=_definitions(lb, cfg, rules),
        run_info=_run_rows(lb, info, head, cfg),
        generated_by=lb.text("generated_by", version=pipeline.__version__),
    )


def _definitions(lb: Labels, cfg: Config, rules: Rules) -> list[str]:
    groups = " / ".join(f"M{g}" if g.isdigit() else g for g in cfg.m3_groups)
    return [
        lb.text("def_scope", groups=groups) if cfg.scope == "m3" else lb.text("def_scope_all"),
        lb.text("def_profiles", order=" → ".join(lb.row(c) for c in rules.codes),
                rules=rules.version),
        lb.text("def_base"),
        lb.text("def_course", excluded=", ".join(cfg.support_excluded),
                gap=cfg.course_gap_days, long=lb.n(cfg.long_course_days)),
        lb.text("def_m3", groups=groups),
        lb.text("def_age"),
        lb.text("def_complex", n=cfg.complex_case_departments),
        lb.text("def_shares"),
        _hidden_note(lb, cfg),
    ]


def _run_rows(lb: Labels, info: RunInfo, head: Headline, cfg: Config) -> list[tuple[str, str]]:
    rows = [
        (lb.text("reference_date"), f"{lb.date(info.reference_date)} "
                                    f"({info.reference_date.isoformat()})"),
        (lb.text("rules_version"), f"{info.rules_version} ({info.rules_source}), "
                                   f"SHA-256 {info.rules_sha256}"),
        (lb.text("config_hash"), info.config_sha256),
        (lb.text("min_cell"), str(cfg.min_cell)),
    ]
    if info.run_id:
        rows.insert(0, (lb.text("run_id"), info.run_id))
    for path, sha in info.input_files:
        rows.append((lb.text("input_file"), f"{path}" + (f", SHA-256 {sha}" if sha else "")))
    for table, (read, loaded, quarantined) in info.rows.items():
        rows.append((f"{lb.text('rows_read')}: {lb.text(table)}",
                     f"{lb.n(read)} ({lb.text('rows_loaded')} {lb.n(loaded)}, "
                     f"{lb.text('rows_quarantined')} {lb.n(quarantined)})"))
    if info.episodes_after_reference is not None:
        rows.append((lb.text("episodes_after"), lb.n(info.episodes_after_reference)))
    scope = lb.text("in_scope" if cfg.scope == "m3" else "in_scope_all")
    rows.append((scope, f"{lb.n(head.in_scope)} ({lb.text('profiled')} "
                        f"{lb.n(head.profiled.n)}; {lb.text('unreviewed')} "
                        f"{lb.n(head.unreviewed)})"))
    return rows


__all__ = [
    "CSV_COLUMNS", "HIDDEN", "OUTPUTS", "TABLE_IDS", "Labels", "ReportError", "ReportResult",
    "base_profile_order", "chart_png", "chart_pngs", "render_html", "report", "write_csv",
    "write_xlsx",
]
