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

The files themselves are made by `pipeline.workbook` (the CSVs and the spreadsheet),
`pipeline.charts` and `pipeline.page`, in the words of `pipeline.labels`; this module counts,
suppresses, audits, gathers what the run was made of, and puts the files in place.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline import chart_workers, charts, page, workbook
from pipeline.config import Config, ConfigError
from pipeline.errors import InputError, ReportError
from pipeline.labels import HIDDEN, Labels
from pipeline.page import RunInfo
from pipeline.rules import Rules, RulesError, load_rules
from pipeline.segment import age_band_codes
from pipeline.suppression import audit, suppress
from pipeline.tables import (
    Headline,
    PublishedTable,
    build_tables,
    headline,
    published,
    release,
    store_pattern,
)

# interface: what the report stage puts in the output folder
OUTPUTS: tuple[str, ...] = ("tables", "tables.xlsx", "charts", "report.html")


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
# Run information (the page's last section; `pipeline.page.RunInfo`)


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
    """Every file of the release, into `tmp`; returns their paths relative to it."""
    (tmp / "tables").mkdir()
    (tmp / "charts").mkdir()
    files: list[str] = []
    for t in pub:
        workbook.write_csv(t, tmp / "tables" / f"{t.id}.csv")
        files.append(f"tables/{t.id}.csv")
    workbook.write_xlsx(tmp / "tables.xlsx", pub, labels, cfg)
    files.append("tables.xlsx")
    page_charts: dict[str, bytes] = {}
    for t, (titled, plain) in zip(pub, charts.draw_charts(pub, labels), strict=True):
        # charts/ for slides carry their title; the page has it as a heading already
        (tmp / "charts" / f"{t.id}.png").write_bytes(titled)
        files.append(f"charts/{t.id}.png")
        page_charts[t.id] = plain
    html = page.render_html(pub, head, info, page_charts, labels, cfg, rules)
    (tmp / "report.html").write_text(html, encoding="utf-8")
    files.append("report.html")
    return tuple(files)


__all__ = ["OUTPUTS", "ReportError", "ReportResult", "report"]
