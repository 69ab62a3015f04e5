"""The command line's checks before any data is read: a `--rules` file with a typo is a usage
error (exit 2) from every command that takes `--rules`, and `validate --rules` checks a rules
file on its own. Real files, a real process and typer's CliRunner; no mocks."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
from conftest import snapshot
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Config
from pipeline.demo import write_demo
from pipeline.runner import run_stages

ROOT = Path(__file__).resolve().parents[1]
REF = dt.date(2024, 6, 30)
REF_OPT = ["--reference-date", REF.isoformat()]
SHIPPED = resources.files("pipeline").joinpath("rules.toml").read_text("utf-8")
# one letter missing in the condition of rule `diagnosed`
TYPO = SHIPPED.replace('condition = "psych_diagnosis"\n', 'condition = "psych_diagnoss"\n', 1)
TYPO_MESSAGE = "rule 'diagnosed': unknown column 'psych_diagnoss' in condition 'psych_diagnoss'"
INGEST_STEP = "reading input files into the raw layer"

GOOD_C = "citizen_id;birth_year\n" + "".join(f"C{i};1980\n" for i in range(30))
GOOD_E = "citizen_id;start_date;benefit;match_group\n" + "".join(
    f"C{i};01-01-2020;kontanthjaelp;3\n" for i in range(30)
)


def rules_file(folder: Path, text: str, name: str = "rules.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def small_export(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "citizens.csv").write_text(GOOD_C, encoding="utf-8")
    (folder / "episodes.csv").write_text(GOOD_E, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def demo_20k(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo20k")
    write_demo(folder, n=20_000, seed=3, reference_date=REF)
    return folder


def test_run_refuses_a_rules_typo_before_ingesting(demo_20k, tmp_path):
    """A real `m3-profiles run` process on 20,000 citizens: exit 2 naming the rule, and the
    runner never starts (its step log on stderr has no ingest line, nothing is written)."""
    typo = rules_file(tmp_path, TYPO)
    out = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--input", str(demo_20k), "--out", str(out),
         "--rules", str(typo), *REF_OPT],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    assert f"error: {typo}: {TYPO_MESSAGE}" in proc.stderr
    assert INGEST_STEP not in proc.stderr
    assert "stage " not in proc.stderr
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules.toml"]  # no out, no .failed
    assert elapsed < 30, elapsed  # generous: a process start, no 20,000-citizen ingest


def test_ingest_refuses_a_rules_typo(demo_20k, tmp_path):
    typo = rules_file(tmp_path / "r", TYPO)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["ingest", "--input", str(demo_20k), "--out", str(out), "--rules", str(typo), *REF_OPT]
    )
    assert result.exit_code == 2, result.output
    assert f"error: {typo}: {TYPO_MESSAGE}" in result.stderr
    assert INGEST_STEP not in result.stderr
    assert not out.exists() and not (tmp_path / "out.failed").exists()


@pytest.mark.parametrize("command", ["segment", "report"])
def test_later_stages_refuse_a_rules_typo_before_touching_the_output(command, tmp_path):
    out = tmp_path / "out"
    run_stages(["ingest", "segment"], out, Config(reference_date=REF),
               input_dir=small_export(tmp_path / "in"))  # fmt: skip
    before = snapshot(out)
    typo = rules_file(tmp_path / "r", TYPO)
    result = CliRunner().invoke(app, [command, "--out", str(out), "--rules", str(typo), *REF_OPT])
    assert result.exit_code == 2, result.output
    assert f"error: {typo}: {TYPO_MESSAGE}" in result.stderr
    assert "stage " not in result.stderr  # the runner never started
    assert snapshot(out) == before
    assert not (tmp_path / "out.failed").exists()


def test_validate_checks_a_rules_file_alone(tmp_path):
    runner = CliRunner()
    good = rules_file(tmp_path, SHIPPED, "good.toml")
    started = time.monotonic()
    result = runner.invoke(app, ["validate", "--rules", str(good)])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"The rules file {good} is valid: version faxe-2013.1, 6 rules, 4 base rules.\n"
    )
    assert elapsed < 1.0, elapsed

    bad = rules_file(tmp_path, TYPO, "bad.toml")
    result = runner.invoke(app, ["validate", "--rules", str(bad)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {bad}: {TYPO_MESSAGE}\n"
    assert result.stdout == ""
    # a rules error keeps its brackets (the message is not read as rich markup)
    empty = rules_file(tmp_path, 'version = "1"\n', "empty.toml")
    result = runner.invoke(app, ["validate", "--rules", str(empty)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {empty}: no [[rule]] tables: the rule list is empty\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "empty.toml", "good.toml"]


def test_validate_checks_the_rules_first_then_the_export(tmp_path):
    runner = CliRunner()
    good, bad = rules_file(tmp_path, SHIPPED, "good.toml"), rules_file(tmp_path, TYPO, "bad.toml")
    export = small_export(tmp_path / "in")
    both = runner.invoke(app, ["validate", "--input", str(export), "--rules", str(good), *REF_OPT])
    assert both.exit_code == 0, both.output
    assert both.stdout.startswith(f"The rules file {good} is valid")
    assert both.stdout.rstrip().endswith("The export would load.")
    # a bad rules file is refused before the export is looked at (a missing folder would be 3)
    refused = runner.invoke(
        app, ["validate", "--input", str(tmp_path / "nowhere"), "--rules", str(bad)]
    )
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == f"error: {bad}: {TYPO_MESSAGE}\n"
    missing = runner.invoke(
        app, ["validate", "--input", str(tmp_path / "nowhere"), "--rules", str(good)]
    )
    assert missing.exit_code == 3, missing.output


def test_validate_needs_something_to_check():
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2
    assert result.stderr == "error: nothing to check: give --input FOLDER, --rules FILE or both\n"


def test_the_terminal_headline_is_the_page_headline(tmp_path):
    # issue: the terminal said "complex cases 33.8 %" (of all in scope) while the page said
    # "31 %" (of those with a profile). One definition, one number: the run summary prints
    # the headline as published, the same figures the page's cards and profile bars show
    import re

    from pipeline.demo import write_demo

    write_demo(tmp_path / "in", n=400, seed=5, reference_date=dt.date(2024, 6, 30))
    result = CliRunner().invoke(app, [
        "run", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
        "--reference-date", "2024-06-30", "--lang", "en",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("Headline as published"))
    page = (tmp_path / "out" / "publish" / "report.html").read_text("utf-8")
    cards = re.findall(r'<div class="value">([^<]*)</div>\s*<div class="label">([^<]*)</div>',
                       page)
    bars = re.findall(r'<div class="num">([^<]*)</div>', page)
    assert len(cards) == 4 and len(bars) == 6
    in_scope, m3_over_1y, long_course, complex_case = (value for value, _ in cards)
    shares = re.findall(r"(\w+) (\d+%|c)[,;]", line.split("): ", 1)[1])
    assert [s for _, s in shares[:6]] == bars  # the profiles, in the page's (depth) order
    assert f"more than one year in M3 {m3_over_1y};" in line
    assert f"continuous course longer than three years {long_course};" in line
    assert f"complex cases {complex_case};" in line
    assert f"in scope {in_scope}," in line
    # and no unsuppressed share is printed beside it
    assert "Of the " not in result.output


@pytest.mark.parametrize("date", ["2024-13-01", "20240630", "2024-W26-7"])
@pytest.mark.parametrize("command", ["run", "validate", "demo"])
def test_a_bad_reference_date_says_how_to_write_one(tmp_path, command, date):
    # issue 14: "--reference-date 2024-13-01" said "does not match the formats '%Y-%m-%d'"
    args = {"run": ["--input", str(tmp_path), "--out", str(tmp_path / "o")],
            "validate": ["--input", str(tmp_path)], "demo": ["--out", str(tmp_path / "d")]}
    result = CliRunner().invoke(app, [command, *args[command], "--reference-date", date])
    assert result.exit_code == 2
    text = " ".join(result.output.split()).replace("│", "").replace("  ", " ")
    assert f"'{date}' is not a date written YYYY-MM-DD (year-month-day), e.g. 2024-06-30" in (
        " ".join(text.split()))
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_bad_date_in_the_config_file_says_how_to_write_one(tmp_path, command):
    # issue 14: `reference_date = 2024-13-01` in a config gave TOML's parser message
    config = tmp_path / "m3.toml"
    config.write_text("min_cell = 5\nreference_date = 2024-13-01\n", encoding="utf-8")
    args = {"run": ["--input", str(small_export(tmp_path / "in")), "--out", str(tmp_path / "o")],
            "validate": ["--input", str(small_export(tmp_path / "in"))]}
    result = CliRunner().invoke(app, [command, *args[command], "--config", str(config)])
    assert result.exit_code == 2  # as every config error
    assert result.stderr == (
        f"error: {config}: key 'reference_date' (line 2): 2024-13-01 is not a date; expected "
        "YYYY-MM-DD, e.g. 2024-06-30\n"
    )
    assert not (tmp_path / "o").exists()


def test_a_report_on_its_own_takes_the_reference_date_segment_used(tmp_path):
    # found running `report --lang en` after `run --reference-date 2024-06-30`: the page
    # and run.json said today's date over tables counted for 2024-06-30
    import json

    small_export(tmp_path / "in")
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["run", "--input", str(tmp_path / "in"), "--out", str(out),
                                    *REF_OPT])
    assert done.exit_code == 0, done.output
    done = CliRunner().invoke(app, ["report", "--out", str(out), "--lang", "en"])
    assert done.exit_code == 0, done.output
    assert json.loads((out / "run.json").read_text())["reference_date"] == "2024-06-30"
    assert "reference date 2024-06-30)." in " ".join(done.output.split())
    page = (out / "publish" / "report.html").read_text("utf-8")
    assert "2024-06-30" in page and dt.date.today().isoformat() not in page
    before = (out / "run.json").read_bytes()
    done = CliRunner().invoke(app, ["report", "--out", str(out), "--reference-date",
                                    "2024-07-31"])
    assert done.exit_code == 2
    assert done.output.strip().splitlines()[-1] == (
        "error: reference date 2024-07-31: the warehouse was segmented for 2024-06-30; report"
        " without --reference-date (it takes 2024-06-30), or run segment again with"
        " 2024-07-31")
    assert (out / "run.json").read_bytes() == before  # nothing replaced
