"""Every number that leaves is in the release (issue 13 item 2): what may be published is in a
folder of its own, `publish/` (the page, the workbook, the tidy CSVs, the charts), and holds
no count outside the suppressed release; everything per person or unsuppressed stays at the
output folder's root; the terminal of `run` prints only published figures."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline import report as report_mod
from pipeline import runner
from pipeline.cli import app
from pipeline.config import Config
from pipeline.demo import write_demo
from pipeline.runner import RUN_FILES, recover, run_stages
from pipeline.vocabulary import TABLE_IDS

REF = dt.date(2024, 6, 30)
PUBLISHED = sorted(
    ["report.html", "tables.xlsx"] + [f"tables/{t}.csv" for t in TABLE_IDS]
    + [f"charts/{t}.png" for t in TABLE_IDS])
INTERNAL = [".m3-profiles-output", "citizens.parquet", "history-night.parquet", "publish",
            "quarantine.csv", "quarantine.xlsx", "run.json", "run.log", "warehouse.duckdb",
            "worklist.csv", "worklist.xlsx"]  # issue 17: the re-review worklist, internal


@dataclass(frozen=True)
class Run:
    out: Path
    output: str  # what `run` printed on stdout


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Run:
    """`m3-profiles run` on the demo (150 citizens, some bad rows: quarantined)."""
    base = tmp_path_factory.mktemp("publish")
    write_demo(base / "in", n=150, seed=3, reference_date=REF, dirty=True)
    result = CliRunner().invoke(app, ["run", "--input", str(base / "in"), "--out",
                                      str(base / "out"), "--reference-date", REF.isoformat()])
    assert result.exit_code == 0, result.output
    return Run(base / "out", result.stdout)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_publish_folder_holds_exactly_what_may_be_published(cli_run):
    assert sorted(p.name for p in cli_run.out.iterdir()) == INTERNAL
    assert files_under(cli_run.out / "publish") == PUBLISHED
    manifest = json.loads((cli_run.out / "run.json").read_text("utf-8"))
    assert sorted(manifest["report"]["files"]) == [f"publish/{f}" for f in PUBLISHED]
    # nothing per person: no citizen's id (pseudonymous as it is) in any published file
    ids = pq.read_table(cli_run.out / "citizens.parquet").column("citizen_id").to_pylist()
    assert len(ids) > 100
    texts = [p.read_text("utf-8") for p in (cli_run.out / "publish").rglob("*")
             if p.suffix in (".html", ".csv")]
    texts += workbook_strings(cli_run.out / "publish" / "tables.xlsx")
    text = "\n".join(texts)
    assert not [i for i in ids if i in text]


def test_runner_and_report_agree_on_the_layout():
    assert runner.PUBLISH == report_mod.PUBLISH == "publish"
    assert runner.LEGACY_PUBLISHED == set(report_mod.OUTPUTS)


def workbook_strings(path: Path) -> list[str]:
    book = openpyxl.load_workbook(path, read_only=True)
    return [str(v) for sheet in book.worksheets for row in sheet.values for v in row
            if v is not None]


def numbers_in(text: str) -> set[int]:
    """Every whole number written in `text` (Danish thousands separator: 1.116), after
    taking out the embedded images, hashes and run ids."""
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", " ", text)
    text = re.sub(r"\b[0-9a-f]{64}\b|\b\d{8}T\d{6}Z?-[0-9a-f]{8}\b", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return {int(t.replace(".", "")) for t in re.findall(r"(?<![\d.,])\d{1,3}(?:\.\d{3})+(?![\d])"
                                                        r"|(?<![\d.,])\d+(?![\d])", text)}


def published(run: Run) -> set[int]:
    """Every number the release publishes: its cells and its headline."""
    out: set[int] = set()
    for path in (run.out / "publish" / "tables").glob("*.csv"):
        out |= {int(n) for n in re.findall(r"^[^,]*,[^,]*,(\d+),", path.read_text(),
                                           re.MULTILINE)}
    head = json.loads((run.out / "run.json").read_text("utf-8"))["report"]["headline"]
    return out | {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", head)}


def test_the_page_and_the_workbook_carry_no_count_of_the_export(cli_run):
    """Issue 13: the run section's "rows read / loaded" bounded the hidden headline counts
    (in scope <= loaded). The counts of the export are in run.json (and run.log) only."""
    manifest = json.loads((cli_run.out / "run.json").read_text("utf-8"))
    rows = manifest["rows"]
    counts = {f"{t} {k}": v for t, c in rows.items() for k, v in c.items()
              if k in ("read", "loaded", "quarantined")}
    counts["episodes after the reference date"] = manifest["segment"]["episodes_after_reference"]
    counts["citizens in the export"] = manifest["segment"]["citizens"]
    assert rows["citizens"]["quarantined"] > 0 and rows["episodes"]["quarantined"] > 0
    page = (cli_run.out / "publish" / "report.html").read_text("utf-8")
    book = "\n".join(workbook_strings(cli_run.out / "publish" / "tables.xlsx"))
    # what the release publishes may coincide with a count of the export: those are left out
    checked = {k: v for k, v in counts.items() if v not in published(cli_run) and v >= 10}
    assert len(checked) >= 5, counts
    for name, text in (("report.html", page), ("tables.xlsx", book)):
        found = numbers_in(text)
        assert not {k: v for k, v in checked.items() if v in found}, name
    for label in ("Rækker læst", "indlæst", "i karantæne", "Forløbsrækker efter"):
        assert label not in page and label not in book


def test_the_run_prints_only_published_figures(cli_run):
    manifest = json.loads((cli_run.out / "run.json").read_text("utf-8"))
    out = cli_run.output
    # no count of the export, no unsuppressed share or count segment computed
    assert "Rows per table" not in out and "INTERNAL" not in out
    seg = manifest["segment"]
    for share in seg["profile_shares"].values():
        assert f"{100 * share:.1f}%" not in out
    printed = {int(n.replace(",", "")) for n in re.findall(r"(?<![\w.-])\d[\d,]*(?![\w-])",
                                                           out)}
    unpublished = {k: seg[k] for k in ("citizens", "in_scope", "episodes",
                                       "episodes_after_reference", "tabulated")
                   if seg[k] not in published(cli_run)}
    unpublished |= {f"{t} {k}": v for t, c in manifest["rows"].items() for k, v in c.items()
                    if v not in published(cli_run)}
    assert len(unpublished) >= 5
    assert not {k: v for k, v in unpublished.items() if v in printed}
    # the profile totals and the headline are the release's: `c` where hidden
    con = __import__("duckdb").connect(str(cli_run.out / "warehouse.duckdb"), read_only=True)
    try:
        cells = dict(con.execute(
            "select \"row\", n_published from marts.published_cells"
            " where table_id = 'profile_distribution' and col = 'total'").fetchall())
    finally:
        con.close()
    line = next(x for x in out.splitlines() if x.startswith("Citizens with a profile"))
    expected = ", ".join(f"{code} {'c' if cells[code] is None else cells[code]}"
                         for code in ("maybe_suitable", "physically_ill", "substance_misuse",
                                      "diffuse_psychiatric", "diagnosed", "dual_diagnosis"))
    grand = "c" if cells["total"] is None else cells["total"]
    assert line == f"Citizens with a profile, as published (c = hidden): {grand}: {expected}."
    assert any(v is None for v in cells.values())  # something to hide at 150 citizens
    assert any(x.startswith("Headline as published") for x in out.splitlines())


def test_segment_alone_prints_its_shares_labelled_internal(cli_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(cli_run.out, out)
    result = CliRunner().invoke(app, ["segment", "--out", str(out), "--reference-date",
                                      REF.isoformat()])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    i = next(k for k, x in enumerate(lines) if x.startswith("INTERNAL, not for publication"))
    seg = json.loads((out / "run.json").read_text("utf-8"))["segment"]
    share = f"maybe_suitable {100 * seg['profile_shares']['maybe_suitable']:.1f}%"
    assert any(share in x for x in lines[i:])
    assert not any(share in x for x in lines[:i])


# ---------------------------------------------------------------------------------------
# an output folder of the layout before publish/ (the published files at its root)


def old_layout(out: Path) -> None:
    """Turn a current output into one of the layout before publish/."""
    for p in (out / "publish").iterdir():
        p.rename(out / p.name)
    (out / "publish").rmdir()


@pytest.mark.parametrize("stages", [("ingest", "segment", "report"), ("report",),
                                    ("segment",)], ids=["run", "report", "segment"])
def test_an_output_of_the_old_layout_is_replaced_cleanly(cli_run, tmp_path, stages):
    out = tmp_path / "out"
    shutil.copytree(cli_run.out, out)
    old_layout(out)
    assert runner.is_output(out)
    assert {"report.html", "tables", "charts", "tables.xlsx"} <= {p.name for p in out.iterdir()}
    cfg = Config(reference_date=REF)
    run_stages(stages, out, cfg, input_dir=cli_run.out.parent / "in")
    names = sorted(p.name for p in out.iterdir())
    if "report" in stages:
        assert names == INTERNAL
        assert files_under(out / "publish") == PUBLISHED
    else:  # segment alone: the stale published files of the old layout are not carried
        assert names == [n for n in INTERNAL if n != "publish"]
    # nothing left beside it but the lock and the history (README, History)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out", "out.history"]


@pytest.mark.parametrize("layout", ["old", "new"])
def test_a_killed_runs_leftover_of_either_layout_is_recognised(cli_run, tmp_path, layout):
    """A work folder a killed run left (before its marker, or after the marker was
    removed) holds only a run's files: recognised and removed, in either layout."""
    out = tmp_path / "out"
    shutil.copytree(cli_run.out, out)
    left = tmp_path / ".out.tmp-20260101T000000-0123abcd"
    shutil.copytree(cli_run.out / "publish", left / "publish")
    shutil.copy(cli_run.out / "citizens.parquet", left)
    if layout == "old":
        old_layout(left)
    else:  # killed while the report replaced the publish folder
        shutil.copytree(left / "publish", left / ".publish.old-0123abcd")
    assert {p.name for p in left.iterdir()} - RUN_FILES <= {".publish.old-0123abcd"}
    done = recover(out, out / "warehouse.duckdb")
    assert done == [f"removed {left.name}, left by an interrupted run"]
    assert not left.exists()
