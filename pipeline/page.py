"""The report page, `report.html`: self-contained (charts embedded), printable (interface,
*Where things go*).

Reads the published tables and headline figures, the charts drawn for the page (PNG bytes),
what the run was made of (`RunInfo`, gathered by the report stage), the config and the profiles
(for the definitions section) and the labels; the page's markup is
`pipeline/templates/report.html.j2`. Writes nothing: `render_html` returns the page as text.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2

import pipeline
from pipeline.config import Config
from pipeline.labels import (
    Labels,
    coarsened_note,
    heading,
    hidden_note,
    population,
    reading,
    row_header,
)
from pipeline.release import Headline, Profiles, PublishedTable
from pipeline.suppression import TOTAL
from pipeline.worklist import Catalogue, Intervention, Reason, Worklist


@dataclass(frozen=True)
class RunInfo:
    """What the run was made of, for the page's last section. Defined here, by the page that
    shows it; the report stage gathers it (`pipeline.report`), and imports this module."""

    reference_date: dt.date
    rules_version: str
    rules_source: str
    rules_sha256: str
    config_sha256: str
    run_id: str | None
    # (file name, sha256): names only, never a path of the machine that ran it (the page is
    # published), and masked: `privacy.shown_name`. No count of the export (rows read,
    # loaded, quarantined; episodes ignored): the page is published, and a count outside
    # the suppressed release bounds its hidden numbers (issue 13: "unreviewed <= loaded -
    # with a profile"). Those stay in run.json and run.log
    input_files: tuple[tuple[str, str | None], ...]


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


class _Section:
    """`worklist_t.key` in a partial: a text of the catalogue's `[worklist]` section."""

    def __init__(self, labels: Labels, section: str) -> None:
        self._labels, self._section = labels, section

    def __getattr__(self, key: str) -> str:
        return self._labels.section(self._section, key)


def render_html(pub: Sequence[PublishedTable], head: Headline, info: RunInfo,
                charts: Mapping[str, bytes], labels: Labels, cfg: Config,
                profiles: Profiles, model_card: Mapping[str, Any] | None = None, *,
                worklist: tuple[Worklist, Sequence[tuple[Reason, int]], int] | None = None,
                catalogue: Catalogue | None = None,
                movement: tuple[Any, bytes] | None = None) -> str:
    """The self-contained report page: headline figures, each table with its chart and a
    reading aid, the opportunity catalogue beside each profile and the worklist's numbers
    per reason (issue 17; sections left out when None), the definitions used, and what the
    run was made of."""
    lb = labels
    scope_label = lb.text("in_scope" if cfg.scope == "m3" else "in_scope_all")
    cards = [
        {"value": lb.n(head.in_scope), "label": scope_label,
         "note": f"{lb.text('profiled')}: {lb.n(head.profiled.n)} ({sources(lb, head)}); "
                 f"{lb.text('unreviewed')}: {lb.n(head.unreviewed)}"},
        {"value": lb.share_of(head.m3_over_1y),
         "label": lb.text("m3_over_1y"), "note": lb.text("of_profiled")},
        {"value": lb.share_of(head.long_continuous), "label": lb.text("long_continuous"),
         "note": lb.text("of_profiled")},
        {"value": lb.share_of(head.complex_case),
         "label": lb.text("complex_case", n=cfg.complex_case_departments),
         "note": lb.text("of_profiled")},
    ]
    order = profiles.order
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
            rows.append({"label": lb.row(r, t.row_dim), "total": r == TOTAL, "cells": cells})
        tables.append({
            "id": t.id,
            "heading": heading(t, number, lb),
            "faxe": lb.table(t.id, "faxe"),
            "chart": base64.b64encode(charts[t.id]).decode("ascii"),
            "row_header": row_header(t, lb),
            "columns": [lb.column(t, c) for c in t.all_cols],
            "rows": rows,
            "reading": reading(t.id, lb, cfg),
            "any_hidden": any(c.share_hidden for c in t.cells.values()),
            "source": lb.text("source_file", id=t.id),
            "coarsened": coarsened_note(t, lb),
        })
    return _template().render(
        lang=lb.lang,
        title=lb.text("report_title"),
        reference_date=lb.date(cfg.reference_date),
        population=population(lb, cfg),
        t=_Text(lb),
        worklist_t=_Section(lb, "worklist"),
        catalogue_t=_Section(lb, "catalogue"),
        cards=cards,
        profile_bars=profile_bars,
        tables=tables,
        hidden_note=hidden_note(lb, cfg),
        internal_only=cfg.min_cell == 0,
        worklist=_worklist_part(lb, cfg, *worklist) if worklist else None,
        catalogue=_catalogue_part(lb, catalogue, pub, profiles) if catalogue else None,
        definitions=_definitions(lb, cfg, profiles),
        run_info=_run_rows(lb, info, head, cfg),
        generated_by=lb.text("generated_by", version=pipeline.__version__),
        model_card=model_card,
        movement_t=_Section(lb, "movement"),
        movement=_movement_part(lb, cfg, *movement) if movement else None,
    )


def _movement_part(lb: Labels, cfg: Config, moves: Any, chart: bytes) -> dict:
    """The movement section (issue 16, `pipeline.movement.PublishedMovement`): one table per
    horizon of the cohort, the time-to-leave chart (`chart`: its PNG) and its summary."""
    from pipeline import movement as mv

    cohort = []
    if moves.cohort is not None:
        c = moves.cohort
        statuses = (*mv.STATUSES, TOTAL)
        for h, _ in c.horizons:
            rows = []
            for p in c.profiles:
                cells = []
                for st in statuses:
                    cell = c.cell(h, p, st)
                    css = " ".join(x for x in ("hidden" if cell.hidden else "",
                                               "totalcol" if st == TOTAL else "") if x)
                    cells.append({"n": lb.n(cell.n), "css": css,
                                  "share": None if cell.share is None or st == TOTAL
                                  else lb.share(cell.share),
                                  "interval": mv.interval(lb, cell.low, cell.high)})
                rows.append({"label": mv.profile_label(lb, p), "total": p == TOTAL,
                             "cells": cells})
            cohort.append({
                "id": f"cohort-{h}",
                "heading": mv.cohort_title(lb, c, h),
                "columns": [mv.status_label(lb, st) for st in statuses],
                "rows": rows,
                "reading": mv.cohort_reading(lb, h),
                "any_hidden": any(x.hidden for (hh, _, _), x in c.cells.items() if hh == h),
            })
    head, rows = mv.summary_rows(lb, moves)
    return {
        "cohort": cohort,
        "chart": base64.b64encode(chart).decode("ascii") if moves.curves else None,
        "summary_head": head,
        "source_cohort": lb.section("movement", "source", file="cohort_status"),
        "source_curve": lb.section("movement", "source", file="time_to_leave"),
        "summary_rows": rows,
        "curve_reading": lb.section("movement", "curve_reading", at_risk=moves.min_at_risk,
                                    min_cell=max(cfg.min_cell, 1)),
        "dropped": lb.section("movement", "curve_dropped",
                              profiles=", ".join(lb.row(p) for p in moves.dropped))
        if moves.dropped else None,
    }


def _worklist_part(lb: Labels, cfg: Config, worklist: Worklist,
                   counts: Sequence[tuple[Reason, int]], listed: int) -> dict:
    """The worklist's section: its reasons, never who is listed. The number per reason only
    on an internal page (min_cell <= 1, nothing hidden anyway): a reason couples facts the
    tables publish one at a time, so its count is no cell of the release and is not audited
    with it (docs/disclosure.md §5)."""
    internal = cfg.min_cell <= 1
    return {
        "rows": [{"label": r.label(lb.lang), "priority": r.priority, "n": lb.n(n),
                  "source": r.source} for r, n in counts],
        "counts": internal,
        "listed": lb.n(listed),
        "note": lb.section("worklist", "counts_internal", min_cell=cfg.min_cell) if internal
        else lb.section("worklist", "counts_withheld"),
        "rules": lb.section("worklist", "rules", version=worklist.version),
    }


def _catalogue_part(lb: Labels, catalogue: Catalogue, pub: Sequence[PublishedTable],
                    profiles: Profiles) -> dict:
    """The interventions for every profile once, then beside each profile (depth order) the
    ones aimed at it, and for each barrier any of them addresses the barriers table's
    published cell for the profile (a hidden one stays `c`): no number the release does not
    already show."""
    barriers = next(t for t in pub if t.id == "barriers")

    def item(i: Intervention) -> dict:
        return {"label": i.text("label", lb.lang), "description": i.text("description", lb.lang),
                "source": lb.section("catalogue", "source", source=i.source)}

    general = [i for i in catalogue.interventions if not i.profiles]
    out = []
    for code in profiles.order:
        aimed = [i for i in catalogue.interventions if i.profiles and code in i.profiles]
        addressed = dict.fromkeys(b for i in (*general, *aimed) for b in i.barriers
                                  if b in barriers.cols)
        cells = []
        for b in addressed:
            cell = barriers.cell(code, b) if code in barriers.rows else None
            cells.append({"label": lb.col(b), "n": lb.n(cell.n if cell else None),
                          "hidden": cell is None or cell.hidden})
        out.append({"label": lb.row(code), "interventions": [item(i) for i in aimed],
                    "barriers": cells})
    return {"general": [item(i) for i in general], "profiles": out,
            "version": lb.section("catalogue", "version", version=catalogue.version)}


def _definitions(lb: Labels, cfg: Config, profiles: Profiles) -> list[str]:
    groups = " / ".join(f"M{g}" if g.isdigit() else g for g in cfg.m3_groups)
    return [
        lb.text("def_scope", groups=groups) if cfg.scope == "m3" else lb.text("def_scope_all"),
        lb.text("def_profiles", order=" → ".join(lb.row(c) for c in profiles.codes),
                rules=profiles.version),
        lb.text("def_base"),
        lb.text("def_course", excluded=", ".join(lb.benefit(b) for b in cfg.support_excluded),
                gap=lb.days(cfg.course_gap_days), long=lb.days(cfg.long_course_days)),
        lb.text("def_m3", groups=groups),
        lb.text("def_age"),
        lb.text("def_complex", n=cfg.complex_case_departments),
        lb.text("def_shares"),
        hidden_note(lb, cfg),
    ]


def provenance(lb: Labels, info: RunInfo, cfg: Config) -> list[tuple[str, str]]:
    """What a published file was made from (run id, reference date, rules, config): the
    page's run section starts with it, and the workbook's overview sheet carries it."""
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
    return rows


def _run_rows(lb: Labels, info: RunInfo, head: Headline, cfg: Config) -> list[tuple[str, str]]:
    rows = provenance(lb, info, cfg)
    for name, sha in info.input_files:
        rows.append((lb.text("input_file"), name + (f", SHA-256 {sha}" if sha else "")))
    # the headline's numbers as published (suppressed with the tables)
    scope = lb.text("in_scope" if cfg.scope == "m3" else "in_scope_all")
    rows.append((scope, f"{lb.n(head.in_scope)} ({lb.text('profiled')} "
                        f"{lb.n(head.profiled.n)}, {sources(lb, head)}; {lb.text('unreviewed')} "
                        f"{lb.n(head.unreviewed)}, {uncertain(lb, head)})"))
    return rows


def sources(lb: Labels, head: Headline) -> str:
    """Issue 15: "from a reviewed case R, from the model M" (hidden counts as the
    suppression shows them)."""
    return (f"{lb.section('headline_sources', 'reviewed')} {lb.n(head.reviewed)}, "
            f"{lb.section('headline_sources', 'model')} {lb.n(head.model)}")


def uncertain(lb: Labels, head: Headline) -> str:
    """Issue 15: "the model uncertain, for review U", of those without a profile."""
    return f"{lb.section('headline_sources', 'uncertain')} {lb.n(head.uncertain)}"


__all__ = ["RunInfo", "render_html"]
