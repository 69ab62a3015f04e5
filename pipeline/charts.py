"""The report's charts: one per published table, as PNG bytes (definitions §5-§6).

Reads the published tables (`PublishedTable`) and their labels; nothing from the warehouse
or the disk. Writes nothing: returns each chart twice, with its title (the report stage writes
it to `charts/<id>.png`) and without (embedded in the page). Drawn with matplotlib's Agg
canvas, no pyplot: no global state, the same bytes every time. With two cores or more the
charts are drawn side by side in `pipeline.chart_workers`' processes, which import this module
by name.
"""

from __future__ import annotations

import io
import itertools
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from pipeline import chart_workers
from pipeline.labels import HIDDEN, Labels
from pipeline.release import PublishedTable
from pipeline.suppression import TOTAL

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


def draw_charts(pub: Sequence[PublishedTable], labels: Labels) -> list[tuple[bytes, bytes]]:
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


__all__ = ["chart_png", "chart_pngs", "draw_charts"]
