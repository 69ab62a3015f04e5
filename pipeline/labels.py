"""The report's words and numbers, in Danish or English: labels, counts, shares and dates.

Reads the profile labels from the rules segment used (`release.Profiles`, from
`marts.profiles`) and every other label from
`pipeline/labels.toml`. Writes nothing. The spreadsheet, the charts and the page all print
through `Labels`, so a count, a share or a hidden cell (`c`, definitions §6) reads the same in
each; the headings and notes the spreadsheet and the page both print are here for the same
reason.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any, Protocol

from pipeline.config import Config, ConfigError
from pipeline.errors import ReportError
from pipeline.release import Cell, PublishedTable
from pipeline.suppression import TOTAL
from pipeline.vocabulary import LANGS, age_band_bounds

HIDDEN = "c"  # §6: every hidden cell is shown the same way

_DA_MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
              "september", "oktober", "november", "december")


class ProfileLabels(Protocol):
    """Where profile labels come from: `release.Profiles` (what segment stored) in a run, or a
    loaded rules file."""

    def label(self, code: str, lang: str = "da") -> str: ...


class Labels:
    """Labels in one language: profiles from the rules segment used, the rest from
    labels.toml."""

    def __init__(self, lang: str, profiles: ProfileLabels,
                 catalogue: Mapping[str, Any] | None = None):
        if lang not in LANGS:
            raise ConfigError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
        self.lang = lang
        self.profiles = profiles
        self.cat = catalogue if catalogue is not None else load_catalogue()

    def text(self, key: str, **fmt: Any) -> str:
        return self.cat["text"][key][self.lang].format(**fmt)

    def section(self, section: str, key: str, **fmt: Any) -> str:
        """A text of a section of its own (`[worklist]`, `[catalogue]`)."""
        return self.cat[section][key][self.lang].format(**fmt)

    def table(self, table_id: str, field: str) -> str:
        return self.cat["table"][table_id][f"{field}_{self.lang}"]

    def row(self, code: str, row_dim: str = "profile") -> str:
        """A row's label. A base profile's (the misuse table's rows) says so: it counts more
        citizens than the profile of the same name, and a reader must not see one name with
        two numbers."""
        if code == TOTAL:
            return self.col(TOTAL)
        label = self.profiles.label(code, self.lang)
        return self.text("base_row", label=label) if row_dim == "base_profile" else label

    def benefit(self, code: str) -> str:
        """A benefit's name (data contract codes); a code the catalogue lacks as it is."""
        names = self.cat.get("benefit", {})
        return names[code][self.lang] if code in names else code

    def column(self, table: PublishedTable, code: str) -> str:
        """A column's label in `table`: a merged column of a coarsened table (pipeline.
        coarsening) has its own label or, from the config without one, its columns'."""
        fine = table.merges.get(code)
        if fine is None:
            return self.col(code)
        merged = self.cat.get("coarsening", {}).get("column", {})
        if code in merged:
            return merged[code][self.lang]
        if code == "all_ages" or age_band_bounds(code) is not None:
            return self.col(code)
        return " / ".join(self.col(f) for f in fine)

    def col(self, code: str) -> str:
        if code in self.cat["column"]:
            return self.cat["column"][code][self.lang]
        bands = self.cat["age_band"]
        if code in ("all_ages", "unknown"):
            return bands[code][self.lang]
        ages = age_band_bounds(code)
        if ages is None:
            raise ReportError(f"pipeline/labels.toml: no label for column code {code!r}")
        lo, hi = ages
        if lo is None:
            return bands["under"][self.lang].format(n=hi + 1)
        if hi is None:
            return bands["plus"][self.lang].format(n=lo)
        return bands["range"][self.lang].format(lo=lo, hi=hi)

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

    def days(self, n: int) -> str:
        """A number of days with its unit, joined by a no-break space: "1\u00a0dag",
        "30\u00a0dage" (a setting of 1 day must not read "1 dage")."""
        unit = {"da": ("dag", "dage"), "en": ("day", "days")}[self.lang][n != 1]
        return f"{self.n(n)}\u00a0{unit}"

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


# The headings and notes both the spreadsheet and the page print: one wording for both


def heading(table: PublishedTable, number: int, labels: Labels) -> str:
    what = labels.text("multi_response") if table.multi_response else labels.text(
        "counts_and_shares")
    coarse = coarsened_title(table, labels)
    coarse = f" ({coarse})" if coarse else ""
    return (f"{labels.text('table')} {number}. {labels.table(table.id, 'title')}{coarse}"
            f" ({what})")


# columns never merged, so not counted in "age in three groups"
_FIXED = ("unknown", "no_history", "not_in_m3", "misuse_no", "motivation_not_stated")


def coarsened_title(table: PublishedTable, labels: Labels) -> str:
    """What a coarsened table's title adds ("grupperet: alder i tre grupper"); "" for a
    table at its finest level."""
    if not table.merges:
        return ""
    cat = labels.cat["coarsening"]
    what = cat["what"][table.id]
    n = sum(1 for c in table.cols if c not in _FIXED)
    if n == 1 and f"{labels.lang}_one" in what:
        text = what[f"{labels.lang}_one"]
    else:
        words = cat["numbers"][labels.lang]
        text = what[labels.lang].format(n=words[n - 1] if 1 <= n <= len(words) else n)
    return cat["title"][labels.lang].format(what=text)


def coarsened_note(table: PublishedTable, labels: Labels) -> str:
    """The footnote of a coarsened table naming its merges; "" for a table at its finest."""
    if not table.merges:
        return ""
    cat = labels.cat["coarsening"]
    parts = []
    for code in table.cols:
        fine = table.merges.get(code)
        if fine is None:
            continue
        names = [labels.col(f) for f in fine]
        if table.multi_response:
            parts.append(cat["any"][labels.lang].format(
                label=labels.column(table, code), parts=", ".join(names)))
        else:
            parts.append(cat["sum"][labels.lang].format(
                label=labels.column(table, code), parts=" + ".join(names)))
    return cat["note"][labels.lang].format(merges="; ".join(parts))


def row_header(table: PublishedTable, labels: Labels) -> str:
    return labels.text("base_profile" if table.row_dim == "base_profile" else "profile")


def reading(table_id: str, labels: Labels, cfg: Config) -> str:
    """A table's reading aid, with the config's settings it names (the course gap: a
    consultant's 14 days must not be printed as 30)."""
    return labels.table(table_id, "reading").format(gap=labels.days(cfg.course_gap_days))


def population(labels: Labels, cfg: Config) -> str:
    key = "population" if cfg.scope == "m3" else "population_all"
    return labels.text(key, date=labels.date(cfg.reference_date))


def _small_counts(labels: Labels, min_cell: int) -> str:
    """The counts a primary suppression hides (definitions §6: from 1 to min_cell - 1; zero
    is shown), in words: "antal fra 1 til 4"."""
    if min_cell == 2:
        return labels.text("hidden_small_one")
    return labels.text("hidden_small", largest=min_cell - 1)


def hidden_note(labels: Labels, cfg: Config) -> str:
    """The `c` footnote of the page and the spreadsheet, with the run's min_cell."""
    if cfg.min_cell == 0:
        return labels.text("no_suppression")
    if cfg.min_cell == 1:  # nothing is small: no count is ever hidden
        return labels.text("hidden_none")
    small = _small_counts(labels, cfg.min_cell)
    return labels.text("hidden_note", small=small[:1].upper() + small[1:])


def chart_footer(table: PublishedTable, labels: Labels, reference_date: dt.date,
                 min_cell: int) -> str:
    """The one line under a chart for slides, so that it stands alone: the reference date and
    the source; what `c` means where the chart shows one (as the page's footnote, only under
    a table with a hidden number); that it is for internal use only when nothing is hidden
    (min_cell = 0), on every chart."""
    parts = [labels.text("chart_source", date=labels.date(reference_date), id=table.id)]
    if min_cell == 0:
        parts.append(labels.text("chart_no_suppression"))
    elif any(c.share_hidden for c in table.cells.values()):
        parts.append(labels.text("chart_hidden", small=_small_counts(labels, min_cell)))
    return " ".join(parts)


__all__ = [
    "HIDDEN", "Labels", "chart_footer", "coarsened_note", "coarsened_title", "heading",
    "hidden_note", "load_catalogue", "population", "reading", "row_header",
]
