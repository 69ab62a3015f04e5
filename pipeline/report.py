"""The report stage: the published profile tables, the spreadsheet, the charts and the report
page (definitions §5-§6; interface, *Where things go*).

Reads `marts.citizens` and `marts.profiles` (segment's output), the rules file (profile labels
and depth order), `pipeline/labels.toml` (every other label, Danish and English) and the ingest
layers (the input files' names). Writes, in one transaction, the table marts of
`pipeline.tables` (`marts.suppressed_cells` keeps why a cell is hidden: internal), then the
publish folder `publish/` of the output folder: `tables/<id>.csv`, `tables.xlsx`,
`charts/<id>.png` and `report.html`, and nothing else: every number in it is a number of the
suppressed release (the internal files — the warehouse, citizens.parquet, run.json,
quarantine.csv, run.log — stay at the output folder's root, outside it). The folder is made
as a temporary folder inside the output folder and renamed into place only when everything
succeeded and the warehouse is committed, so a failing report leaves no partial files.
Everything after the SQL works on the small published tables; it never sees a citizen. Knows
nothing of terminals or exit codes.

The files themselves are made by `pipeline.workbook` (the CSVs and the spreadsheet),
`pipeline.charts` and `pipeline.page`, in the words of `pipeline.labels`; this module counts,
suppresses, audits, gathers what the run was made of, and puts the files in place.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline import (
    chart_workers,
    charts,
    model_card,
    movement,
    page,
    privacy,
    warehouse,
    workbook,
)
from pipeline.config import Config, ConfigError
from pipeline.errors import InputError, ReportError
from pipeline.ingest import IngestResult
from pipeline.labels import HIDDEN, Labels
from pipeline.page import RunInfo
from pipeline.release import Profiles, Release, publish
from pipeline.rules import Rules, RulesError
from pipeline.suppression import TOTAL
from pipeline.vocabulary import age_band_codes
from pipeline.worklist import (
    Catalogue,
    Worklist,
    load_catalogue,
    load_worklist,
    reason_counts,
)
from pipeline.worklist import write_files as write_worklist

# interface: what may be published, in a folder of its own inside the output folder, which
# can be sent on as it is
PUBLISH = "publish"
# the worklist (issue 17) is internal: at the output folder's root, never in publish/
OUTPUTS: tuple[str, ...] = ("tables", "tables.xlsx", "charts", "report.html")
WORKLIST_OUTPUTS: tuple[str, ...] = ("worklist.xlsx", "worklist.csv")


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
    # paths written, relative to the output folder (all in publish/)
    files: tuple[str, ...]
    # the rule set the release describes (what segment stored): file, version, sha256
    rules: Mapping[str, str]
    # the headline figures as the page publishes them (hidden ones as `c`), for the terminal
    headline: str
    # the profile totals as published (hidden ones as `c`), in the page's order, for the
    # terminal
    profile_totals: str = ""
    # issue 17: the worklist and catalogue files used (file, version, sha256), the citizens
    # the worklist lists (internal)
    worklist: Mapping[str, str] | None = None
    catalogue: Mapping[str, str] | None = None
    listed: int = 0

    @property
    def hidden(self) -> int:
        return self.hidden_primary + self.hidden_secondary

    def summary_lines(self) -> list[str]:
        """Plain lines for the run summary: only numbers the release publishes (the terminal's
        output is copied into e-mails too). The unsuppressed count of citizens and how many
        hidden cells are small (if all were, every hidden cell would be proven small) stay
        in run.json."""
        return [
            f"Report: {len(self.tables)} tables, {self.cells:,} cells, {self.hidden:,} hidden"
            f" as '{HIDDEN}' (min_cell {self.min_cell}).",
            self.profile_totals,
            self.headline,
            f"Wrote {PUBLISH}/: {', '.join(OUTPUTS)} ({self.lang}): what may be published."
            " Every other file of the output folder is internal, among them"
            f" {', '.join(WORKLIST_OUTPUTS)} ({self.listed:,} citizens listed for re-review).",
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for run.json)."""
        d = asdict(self)
        d["reference_date"] = self.reference_date.isoformat()
        d["tables"] = list(self.tables)
        d["files"] = list(self.files)
        d["rules"] = dict(self.rules)
        d["worklist"] = dict(self.worklist) if self.worklist else None
        d["catalogue"] = dict(self.catalogue) if self.catalogue else None
        return d


# ---------------------------------------------------------------------------------------
# The stage


def report(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    rules: Rules | None,
    out_dir: Path,
    manifest: Mapping[str, Any] | None = None,
    step: Callable[[str], None] | None = None,
    worklist: Worklist | None = None,
    catalogue: Catalogue | None = None,
    *,
    against: Any = None,
    previous: Any = None,
) -> ReportResult:
    """Count, suppress, audit and publish the tables of definitions §5 into `out_dir`.

    The profiles, their labels and order are the ones segment stored (`marts.profiles`), so
    no rules file is needed; `rules`, when the user names one, must be the one segment used.
    `manifest` is what the runner knows of the run so far (its id); the input files and row
    counts are what ingest recorded in the warehouse. `worklist` and `catalogue` (issue 17;
    None: the shipped worklist, the catalogue config `catalogue` names or the shipped one)
    give the internal worklist files and the page's catalogue. `against`
    (`pipeline.changes.Against`; the runner's): the releases published before, for the
    profile changes table and the audit across releases (`against.checked` is set).
    `previous`: the last release published from the output folder
    (`pipeline.releases.Snapshot`; None: none), whose coarsening levels and pattern this
    release starts from (docs/disclosure.md §3)."""
    cfg = cfg.resolved()
    step = step or (lambda _: None)
    out_dir = Path(out_dir)
    worklist = worklist or load_worklist()
    catalogue = catalogue or load_catalogue(cfg.catalogue or None)
    _check_warehouse(con, cfg, rules)
    codes = con.execute("select list(code order by precedence) from marts.profiles").fetchone()[0]
    worklist.check_profiles(codes, "the rules segment used")
    catalogue.check_profiles(codes, "the rules segment used")

    def counted() -> None:
        step(f"report: suppressing small counts (min_cell {cfg.min_cell})")
        # the charts' fork server (already running in a `run`) gets ready while the
        # suppression is solved and the tables written; not sooner, as its start-up would
        # take a core from counting the tables
        chart_workers.start_server()

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".report-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    internal = out_dir / f"{tmp.name}-internal"  # the worklist's, named as a run's leftover
    internal.mkdir()
    try:
        # the files are written inside the transaction: a failure writing them rolls the
        # release's marts back too
        with warehouse.transaction(con):
            step("report: counting the tables")
            rel = publish(con, cfg, counted=counted, worklist=worklist, previous=previous)
            moves = movement.published(con, cfg)  # issue 16: part of the same release
            if against is not None:  # issue 16 item 2: the changes since the last release
                step("report: checking the release against the releases published before")
                against.checked = _check_changes(con, cfg, against)
            info = _run_info(con, cfg, rel.profiles, manifest)
            labels = Labels(cfg.lang, rel.profiles)
            counts, listed = reason_counts(con, worklist)
            step("report: writing tables, spreadsheet, charts and report.html")
            card = model_card.card(con, cfg, labels, rel)
            files = _write_outputs(tmp, rel, info, labels, cfg, card,
                                   (worklist, counts, listed), catalogue, moves,
                                   against.checked if against is not None else None)
            step("report: writing the internal worklist (worklist.xlsx, worklist.csv)")
            write_worklist(internal, con, worklist, labels, cfg)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(internal, ignore_errors=True)
        raise
    _move_into_place(tmp, out_dir)
    # the worklist beside the warehouse, never in publish/
    for name in WORKLIST_OUTPUTS:
        os.replace(internal / name, out_dir / name)
    internal.rmdir()
    files = tuple(f"{PUBLISH}/{f}" for f in files)  # what is published; the worklist is not
    return ReportResult(
        reference_date=cfg.reference_date,
        lang=cfg.lang,
        min_cell=cfg.min_cell,
        tables=tuple(t.id for t in rel.tables),
        tabulated=rel.tabulated,
        cells=rel.cells,
        hidden_primary=rel.hidden_primary,
        hidden_secondary=rel.hidden_secondary,
        files=files,
        rules={"file": rel.profiles.source, "version": rel.profiles.version,
               "sha256": rel.profiles.sha256},
        headline=headline_line(rel),
        profile_totals=profile_totals_line(rel),
        worklist={"file": privacy.mask_name(worklist.source), "version": worklist.version,
                  "sha256": worklist.sha256},
        catalogue={"file": privacy.mask_name(catalogue.source), "version": catalogue.version,
                   "sha256": catalogue.sha256},
        listed=listed,
    )


def _check_changes(con: duckdb.DuckDBPyConnection, cfg: Config, against: Any) -> Any:
    from pipeline import changes, releases

    try:
        return changes.check(con, cfg, against.run_id, against.previous)
    except releases.NotComparable as e:
        raise ReportError(
            f"the release cannot be kept for the audit across releases: {e}") from e


def profile_totals_line(rel: Release) -> str:
    """The profile totals as the release publishes them, in one line for the terminal."""
    lb = Labels("en", rel.profiles)
    dist = next(t for t in rel.tables if t.id == "profile_distribution")
    return (f"Citizens with a profile, as published ({HIDDEN} = hidden):"
            f" {lb.n(dist.cell(TOTAL, TOTAL).n)}: "
            + ", ".join(f"{code} {lb.n(dist.cell(code, TOTAL).n)}" for code in rel.profiles.order
                        if code in dist.rows) + ".")


def headline_line(rel: Release) -> str:
    """The headline as the page publishes it, in one line of English for the terminal: the
    same numbers, bases and hidden cells as the page's (definitions §5-§6)."""
    lb, head = Labels("en", rel.profiles), rel.headline
    return (
        f"Headline as published (of the {lb.n(head.profiled.n)} in scope with a profile;"
        f" {HIDDEN} = hidden): "
        + ", ".join(f"{code} {lb.share_of(head.profile_shares[code])}"
                    for code in rel.profiles.order)
        + f"; more than one year in M3 {lb.share_of(head.m3_over_1y)}; continuous course longer"
        f" than three years {lb.share_of(head.long_continuous)}; complex cases"
        f" {lb.share_of(head.complex_case)}; in scope {lb.n(head.in_scope)}, unreviewed"
        f" {lb.n(head.unreviewed)}; profiles from a reviewed case {lb.n(head.reviewed)}, from"
        f" the model {lb.n(head.model)}, the model uncertain {lb.n(head.uncertain)}."
    )


def _check_warehouse(con: duckdb.DuckDBPyConnection, cfg: Config, rules: Rules | None) -> None:
    """Refuse a warehouse that segment has not built, or built with other rules (when the
    user names a rules file) or other age bands."""
    if not warehouse.exists(con, "marts.citizens") or not warehouse.exists(con, "marts.profiles"):
        raise InputError("the warehouse has no marts.citizens: run 'm3-profiles segment'"
                         " (or 'run') before 'report'")
    codes, version = con.execute(
        "select list(code order by precedence), any_value(rules_version) from marts.profiles"
    ).fetchone()
    if rules is not None and (tuple(codes) != rules.codes or version != rules.version):
        raise RulesError(
            f"{rules.source}: the warehouse was segmented with rules {version!r}"
            f" ({', '.join(codes)}), not {rules.version!r} ({', '.join(rules.codes)}):"
            " report with the rules segment used (or without --rules), or run segment again")
    unknown = warehouse.query(
        con, "unknown_codes", {"codes": codes, "bands": list(age_band_codes(cfg.age_bands))}
    ).fetchone()
    if unknown[0]:
        raise RulesError(f"marts.citizens has profiles marts.profiles does not know:"
                         f" {', '.join(unknown[0])}; run segment again")
    if unknown[1]:
        raise ConfigError(f"marts.citizens has age bands {', '.join(unknown[1])} that the"
                          f" config's age_bands {list(cfg.age_bands)} do not make: report with"
                          " the config segment used, or run segment again")


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Make `tmp` the publish folder (one rename), replacing an earlier report's; remove
    the published files an output folder of the layout before publish/ held at its root."""
    target = out_dir / PUBLISH
    if target.exists():
        old = out_dir / f".{PUBLISH}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
        shutil.rmtree(old)
    os.replace(tmp, target)
    for name in OUTPUTS:
        legacy = out_dir / name
        if legacy.is_dir() and not legacy.is_symlink():
            shutil.rmtree(legacy)
        elif legacy.exists() or legacy.is_symlink():
            legacy.unlink()


# ---------------------------------------------------------------------------------------
# Run information (the page's last section; `pipeline.page.RunInfo`)


def _run_info(con: duckdb.DuckDBPyConnection, cfg: Config, profiles: Profiles,
              manifest: Mapping[str, Any] | None) -> RunInfo:
    """What the run was made of, from what the stages recorded: the input files (`meta`,
    written by ingest), the rule set (`marts.profiles`), the run id. No count of the export:
    the page is published (see `RunInfo`).

    The page is published: it names files, never a path of the machine (the input folder's
    or the rules file's, whose folder names may hold a CPR number), masked
    (`privacy.shown_name`)."""
    ingested = IngestResult.from_warehouse(con)
    files = tuple((privacy.shown_name(f.path), f.sha256) for f in ingested.files) if (
        ingested) else ()
    return RunInfo(
        reference_date=cfg.reference_date,
        rules_version=profiles.version,
        rules_source=privacy.shown_name(profiles.source),
        rules_sha256=profiles.sha256,
        config_sha256=cfg.effective_sha256(),
        run_id=(manifest or {}).get("run_id"),
        input_files=files,
    )


# ---------------------------------------------------------------------------------------
# Outputs


def _write_outputs(tmp: Path, rel: Release, info: RunInfo, labels: Labels,
                   cfg: Config, card: Mapping[str, Any] | None = None, worklist: Any = None,
                   catalogue: Catalogue | None = None,
                   moves: movement.PublishedMovement | None = None,
                   checked: Any = None) -> tuple[str, ...]:
    """Every file of the release, into `tmp`; returns their paths relative to it. The page
    carries the model card (`card`), the worklist's numbers per reason (`worklist`: the
    worklist, its counts as `worklist.reason_counts` gives them; shown only on an internal
    page) and the catalogue beside each profile."""
    pub = rel.tables
    (tmp / "tables").mkdir()
    (tmp / "charts").mkdir()
    files: list[str] = []
    for t in pub:
        workbook.write_csv(t, tmp / "tables" / f"{t.id}.csv")
        files.append(f"tables/{t.id}.csv")
    if checked is not None and checked.table is not None:  # issue 16 item 2
        from pipeline import changes

        changes.write_csv(checked.table, tmp / "tables" / "profile_changes.csv")
        files.append("tables/profile_changes.csv")
    workbook.write_xlsx(tmp / "tables.xlsx", pub, labels, cfg, info, movement=moves,
                        changes=checked)
    moving = None
    if moves is not None:  # issue 16: the cohort's CSV, the curves' CSV and chart
        files += [f"tables/{f}" for f in workbook.write_movement_csvs(tmp / "tables", moves)]
        titled, plain = charts.survival_chart_pngs(moves.curves, labels, cfg.reference_date)
        (tmp / "charts" / "time_to_leave.png").write_bytes(titled)
        files.append("charts/time_to_leave.png")
        moving = (moves, plain)
    files.append("tables.xlsx")
    page_charts: dict[str, bytes] = {}
    drawn = charts.draw_charts(pub, labels, cfg.reference_date, cfg.min_cell)
    for t, (titled, plain) in zip(pub, drawn, strict=True):
        # charts/ for slides carry their title; the page has it as a heading already
        (tmp / "charts" / f"{t.id}.png").write_bytes(titled)
        files.append(f"charts/{t.id}.png")
        page_charts[t.id] = plain
    html = page.render_html(pub, rel.headline, info, page_charts, labels, cfg, rel.profiles,
                            card, worklist=worklist, catalogue=catalogue, movement=moving,
                            changes=checked)
    (tmp / "report.html").write_text(html, encoding="utf-8")
    files.append("report.html")
    return tuple(files)


__all__ = ["OUTPUTS", "WORKLIST_OUTPUTS", "ReportError", "ReportResult", "report"]
