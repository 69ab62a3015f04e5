"""The report's charts: one per published table, as PNG bytes (definitions §5-§6).

Reads the published tables (`PublishedTable`), their labels, the reference date and min_cell
(passed in); nothing from the warehouse or the disk. Writes nothing: returns each chart twice.
The one the report stage writes to `charts/<id>.png` is made to stand alone on a slide: the
table's full title above it, a footer line with the reference date, the source and what `c`
means, at 200 dpi. The one embedded in the page has neither (the page shows them) and stays
at 110 dpi. Drawn with matplotlib's Agg canvas, no pyplot: no global state, the same bytes
every time. With two cores or more the charts are drawn side by side in
`pipeline.chart_workers`' processes, which import this module by name.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import textwrap
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from pipeline import chart_workers, progress
from pipeline.labels import HIDDEN, Labels, chart_footer, coarsened_title
from pipeline.release import PublishedTable
from pipeline.suppression import TOTAL

# charts: stacked shares for additive tables, a heat map for multi-response ones
_DARK_FIRST = {"course_history"}  # the first column is the deepest ("long course")
_SEA_COLOURS = ["#dbe9f6", "#b2d2ea", "#7fb2d9", "#4a8cc2", "#2166a5", "#0b3f75", "#062a52"]
_SEA = ListedColormap(_SEA_COLOURS, name="sea")
# the heat maps' scale is continuous: two shares a few points apart get different colours
_SEA_RAMP = LinearSegmentedColormap.from_list("sea_ramp", _SEA_COLOURS)
_NONE_RAMP = LinearSegmentedColormap.from_list("none_ramp", ["#f2f4f6", "#6b7785"])
# a multi-response table's "none of them" column (definitions §5: misuse no, not stated)
_NONE_COLUMNS = ("misuse_no", "motivation_not_stated")
_HIDDEN_GREY = "#d5dbe1"
_NEUTRAL_GREY = "#9aa5b1"
_DPI = 110  # the page's charts: the page scales them to its width
_SLIDE_DPI = 200  # charts/: sharp on a projector or a printed slide
_PAD = 0.2  # inches of white around a chart
_CHART_RC = {"font.family": "DejaVu Sans", "font.size": 9, "svg.hashsalt": "m3",
             "axes.spines.top": False, "axes.spines.right": False}


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _colors(n: int, dark_first: bool) -> list:
    shades = [_SEA(x) for x in np.linspace(0.15, 0.95, n)] if n else []
    return shades[::-1] if dark_first else shades


def _ink(rgba) -> str:  # noqa: ANN001 - a colour tuple
    r, g, b = rgba[:3]
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.55 else "#1b2631"


def chart_png(table: PublishedTable, number: int, labels: Labels, reference_date: dt.date,
              min_cell: int, *, title: bool = True) -> bytes:
    """One chart of `chart_pngs`: for slides (charts/) or for the page."""
    return chart_pngs(table, number, labels, reference_date, min_cell)[0 if title else 1]


def chart_pngs(table: PublishedTable, number: int, labels: Labels, reference_date: dt.date,
               min_cell: int) -> tuple[bytes, bytes]:
    """One chart per table, drawn from the published values only (hidden cells reveal
    nothing: a hidden part of a row is drawn as one grey `c` block whose size is known
    anyway from the shown numbers: row total minus the shown cells). Returns the PNG for
    charts/, which stands alone on a slide (the table's full title above, the footer line of
    `labels.chart_footer` below, 200 dpi), and the same chart without title and footer, for
    the page (where the title is the heading and the notes are under the table)."""
    with rc_context(_CHART_RC):
        fig = _chart_figure(table, labels)
        heading = _add_title(fig, table, number, labels)
        # One figure saved twice, each cut to what bbox_inches="tight" would cut; measured
        # here, once per dpi, instead of by a draw of its own inside each savefig (nothing in
        # these charts needs drawing before it can be measured: no layout engine), and
        # measured at the dpi it is saved at (text extents do not scale exactly with the dpi).
        # The footer goes below what the chart measures, and adds only its own extent.
        footer, titled_box = _add_footer(fig, table, labels, reference_date, min_cell)
        titled = _png(fig, titled_box.padded(_PAD), _SLIDE_DPI)
        heading.set_visible(False)
        footer.set_visible(False)
        fig.set_dpi(_DPI)
        plain = _png(fig, fig.get_tightbbox().padded(_PAD), _DPI)
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


def chart_title(table: PublishedTable, number: int, labels: Labels) -> str:
    """The title of a chart for slides: the table's number and title, and, as on the page,
    that several answers are possible (a multi-response table's shares do not add up)."""
    text = f"{labels.text('table')} {number}. {labels.table(table.id, 'title')}"
    coarse = coarsened_title(table, labels)
    text = f"{text} ({coarse})" if coarse else text
    return f"{text} ({labels.text('multi_response')})" if table.multi_response else text


def _add_title(fig: Figure, table: PublishedTable, number: int, labels: Labels) -> Text:
    sp = fig.subplotpars  # the title starts at the figure's left edge, like a heading
    return fig.axes[0].set_title(
        _wrap(chart_title(table, number, labels), 90), loc="left",
        x=-(sp.left - 0.01) / (sp.right - sp.left),
        pad=14, fontsize=11, fontweight="bold", color="#0b2545")


_FOOTER_GAP = 0.12  # inches between the lowest drawn thing and the footer line


def _add_footer(fig: Figure, table: PublishedTable, labels: Labels, reference_date: dt.date,
                min_cell: int) -> tuple[Text, Bbox]:
    """The footer line (`labels.chart_footer`) below everything drawn, from the figure's left
    edge like the title. Placed by measuring the chart at the dpi it is saved at (the
    legends of the stacked charts hang below the figure's bottom edge). Returns the footer
    and the tight box (inches) of the chart with it: the box measured before, widened by
    the footer's extent."""
    fig.set_dpi(_SLIDE_DPI)
    box = fig.get_tightbbox()
    footer = fig.text(0.01, (box.y0 - _FOOTER_GAP) / fig.get_figheight(),
                      chart_footer(table, labels, reference_date, min_cell),
                      ha="left", va="top", fontsize=7.5, color="#4a5868")
    extent = footer.get_window_extent().transformed(fig.dpi_scale_trans.inverted())
    return footer, Bbox.union([box, extent])


# zlib level 3: the same pixels as the default 6 in a 2 % larger file, in 60 % of the time
_PNG_OPTIONS = {"compress_level": 3}


def _png(fig: Figure, box: Bbox, dpi: int) -> bytes:
    buf = io.BytesIO()
    # pinned metadata: no software version or date in the file (byte-identical PNGs); the dpi
    # is written in the file (pHYs), so a slide or a print takes the chart at its size
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=box, metadata={"Software": None},
                pil_kwargs=_PNG_OPTIONS)
    return buf.getvalue()


def draw_charts(pub: Sequence[PublishedTable], labels: Labels, reference_date: dt.date,
                min_cell: int) -> list[tuple[bytes, bytes]]:
    """`chart_pngs` of every table, in order. Drawing is most of the report stage's fixed
    time and no chart needs another, so with more than one core they are drawn side by side
    in worker processes (`pipeline.chart_workers`). The workers only draw: no DuckDB, no
    files. They are gone before this returns or raises."""
    workers = min(chart_workers.available(), len(pub))

    def counted(charts: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        progress.count("report", 0, len(pub), "charts drawn")
        for done, chart in enumerate(charts, start=1):
            progress.count("report", done, len(pub), "charts drawn")
            yield chart

    if workers < 2:
        return list(counted(chart_pngs(t, number, labels, reference_date, min_cell)
                            for number, t in enumerate(pub, start=1)))
    # the charts with the most cells (the most text to draw) first: no worker is left alone
    # with a big one at the end
    order = sorted(range(len(pub)), key=lambda i: -len(pub[i].cells))
    pool = chart_workers.pool(workers)
    try:
        drawn = pool.map(chart_pngs, [pub[i] for i in order], [i + 1 for i in order],
                         itertools.repeat(labels), itertools.repeat(reference_date),
                         itertools.repeat(min_cell))
        by_index = dict(zip(order, counted(drawn), strict=True))
        return [by_index[i] for i in range(len(pub))]
    finally:
        # on a failure: charts not begun are dropped, the ones being drawn run out, and
        # every worker has exited before the report's transaction is rolled back
        pool.shutdown(wait=True, cancel_futures=True)


def _row_labels(table: PublishedTable, labels: Labels) -> list[str]:
    return [_wrap(labels.row(r, table.row_dim), 30) for r in table.all_rows]


def _row_mark(ax, y: float, text: str, fontsize: float = 9) -> None:  # noqa: ANN001 - Axes
    """`c` (or "–") for a row with no bar: a few points right of the axis line, not on it."""
    ax.annotate(text, (0, y), xytext=(4, 0), textcoords="offset points", va="center",
                fontsize=fontsize)


def _row_limits(ax, y: np.ndarray) -> None:  # noqa: ANN001 - Axes
    """Half a row of room above the top bar and below the bottom one, drawn or not: a last
    row with no bar would otherwise sit on the x axis (set_yticks only widens the limits to
    the tick itself)."""
    ax.set_ylim(float(y.min()) - 0.6, float(y.max()) + 0.6)


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
            _row_mark(ax, yi, HIDDEN if cell.hidden else "–", fontsize=9)
            continue
        ax.barh(yi, share, color=color, height=0.7)
        ax.text(share + top * 0.01, yi, f"{labels.n(cell.n)}  ({labels.share(share)})",
                va="center", fontsize=9)
    ax.set_yticks(y, [_wrap(labels.row(r), 34) for r in rows])
    _row_limits(ax, y)
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
            _row_mark(ax, yi, HIDDEN if total.hidden else "–")
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
    _row_limits(ax, y)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda v, _: labels.share(v))
    ax.set_xlabel(labels.text("chart_share_of_row"))
    handles = [Patch(color=colors[j], label=_wrap(labels.column(table, c), 34))
               for j, c in enumerate(cols)]
    if any_hidden:
        handles.append(Patch(facecolor=_HIDDEN_GREY, hatch="///", edgecolor="white",
                             label=labels.text("hidden_segment")))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=min(len(handles), 3), frameon=False, fontsize=8)
    fig.subplots_adjust(left=0.27, right=0.97, top=1 - 0.75 / fig.get_figheight(), bottom=0.3)
    return fig


def _heatmap_chart(table: PublishedTable, labels: Labels) -> Figure:
    """Multi-response table: the share of each profile's citizens ticking each column.

    The colour scale: the tick columns share one scale, from 0 to the largest share shown in
    any of them, so that small shares (misuse: 3-15 %) get colours of their own and a colour
    means the same share in every tick column. A "none of them" column (misuse_no,
    motivation_not_stated: often ~80 %) has a grey scale of its own, 0-100 %: on the shared
    scale it would set the top and wash every tick column out. Every cell prints its share,
    so no colour has to be read as a number."""
    rows, cols = table.all_rows, table.cols
    fig = Figure(figsize=(9, 0.5 * len(rows) + 3.4))
    ax = fig.add_subplot()
    ticks = [c for c in cols if c not in _NONE_COLUMNS]
    top = max([s for r in rows for c in ticks
               if (s := table.cell(r, c).share) is not None and s > 0] + [0.0]) or 1.0

    def colour(col: str, share: float):  # noqa: ANN202 - an RGBA tuple
        return _NONE_RAMP(share) if col in _NONE_COLUMNS else _SEA_RAMP(share / top)

    image = np.ones((len(rows), len(cols), 4))  # white under the cells drawn as patches
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            share = table.cell(r, c).share
            if share is not None:
                image[i, j] = colour(c, share)
    ax.imshow(image, aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = table.cell(r, c)
            if cell.share is None:
                ax.add_patch(_rect(j, i, _HIDDEN_GREY if cell.share_hidden else "white"))
                text, color = labels.share_of(cell), "#1b2631"
            else:
                text, color = labels.share(cell.share), _ink(colour(c, cell.share))
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color,
                    fontweight="bold" if r == TOTAL else "normal")
    for j, c in enumerate(cols):
        if c in _NONE_COLUMNS:  # a gap: its colours are on another scale
            ax.axvline(j - 0.5, color="white", linewidth=4)
    # steep enough that neighbouring labels of two lines do not run into each other
    ax.set_xticks(np.arange(len(cols)), [_wrap(labels.column(table, c), 26) for c in cols],
                  fontsize=8, rotation=50, ha="left", rotation_mode="anchor")
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


__all__ = ["chart_png", "chart_pngs", "draw_charts"]


# ---------------------------------------------------------------------------------------
# Movement (issue 16, definitions §8.5): the time to leave M3, one Kaplan–Meier curve per
# profile on the published monthly grid (pipeline.movement.published_curve), as steps:
# between two points shown nothing is published, so the curve holds its last value


_CURVE_DASHES = ("-", (0, (6, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (3, 1)),
                 (0, (8, 2, 1, 2, 1, 2)))


def survival_chart_pngs(curves: Sequence, labels: Labels,
                        reference_date: dt.date) -> tuple[bytes, bytes]:
    """The time-to-leave chart: for slides (title and a footer line, 200 dpi) and for the
    page (neither). `curves`: `pipeline.movement.Curve`s, the `total` one dashed."""
    with rc_context(_CHART_RC):
        fig = Figure(figsize=(7.2, 3.8))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        shades = [_SEA(x) for x in np.linspace(0.35, 0.95, max(len(curves) - 1, 1))]
        i = 0
        for c in curves:
            months = [p[0] for p in c.points]
            still = [100 * p[2] for p in c.points]
            if c.profile == TOTAL:
                ax.step(months, still, where="post", color="#1b2631", linestyle="--",
                        linewidth=1.6, label=labels.section("movement", "all_profiles"))
            else:
                # shades of one colour and a dash pattern each: told apart in grey print too
                ax.step(months, still, where="post", color=shades[i % len(shades)],
                        linestyle=_CURVE_DASHES[i % len(_CURVE_DASHES)], linewidth=1.8,
                        label=labels.row(c.profile))
                i += 1
        ax.set_ylim(0, 102)
        ax.set_xlim(left=0)
        ax.set_xlabel(labels.section("movement", "curve_axis_x"))
        ax.set_ylabel(labels.section("movement", "curve_axis_y"))
        ax.yaxis.set_major_formatter(lambda v, _: labels.share(v / 100))
        ax.grid(axis="y", color="#e3e8ed", linewidth=0.6)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        title = fig.suptitle(_wrap(labels.section("movement", "curve_title"), 80), x=0.01,
                             ha="left", fontsize=10, fontweight="bold", color="#0b2545")
        fig.set_dpi(_SLIDE_DPI)
        box = fig.get_tightbbox()
        footer = fig.text(0.01, (box.y0 - _FOOTER_GAP) / fig.get_figheight(),
                          labels.text("chart_source", date=labels.date(reference_date),
                                      id="time_to_leave"),
                          ha="left", va="top", fontsize=7.5, color="#4a5868")
        extent = footer.get_window_extent().transformed(fig.dpi_scale_trans.inverted())
        titled = _png(fig, Bbox.union([box, extent]).padded(_PAD), _SLIDE_DPI)
        title.set_visible(False)
        footer.set_visible(False)
        fig.set_dpi(_DPI)
        plain = _png(fig, fig.get_tightbbox().padded(_PAD), _DPI)
    return titled, plain
