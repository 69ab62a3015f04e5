"""The page's words that depend on the run's config and on the width of the screen (issue
14): Tabel 2's reading aid names the configured course gap, and "matchgruppe 3" never breaks
between the word and the number. Read from a real run's report.html (and tables.xlsx), in
both languages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
from pathlib import Path

import openpyxl
import pytest

from pipeline.config import Config
from pipeline.demo import write_demo
from pipeline.report import PUBLISH
from pipeline.runner import STAGES, run_stages

REF = dt.date(2024, 6, 30)
GAP = 14  # not the default 30
CFG = Config(reference_date=REF, course_gap_days=GAP)
NBSP = "\u00a0"
READING = {
    "da": f"afbrydelser på højst {GAP}{NBSP}dage tæller ikke",
    "en": f"breaks of {GAP}{NBSP}days or less do not count",
}
NAME = {"da": "matchgruppe", "en": "match group"}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """report.html's text and tables.xlsx by language: one run in Danish, then the report
    stage again in English."""
    base = tmp_path_factory.mktemp("words")
    write_demo(base / "in", n=150, seed=7, reference_date=REF)
    out = base / "out"
    pages = {}
    for lang, stages in (("da", STAGES), ("en", ("report",))):
        cfg = dataclasses.replace(CFG, lang=lang)
        run_stages(stages, out, cfg, input_dir=base / "in")
        xlsx = base / f"tables-{lang}.xlsx"
        xlsx.write_bytes((out / PUBLISH / "tables.xlsx").read_bytes())
        pages[lang] = ((out / PUBLISH / "report.html").read_text(encoding="utf-8"), xlsx)
    return pages


def reading_of(page: str, table_id: str) -> str:
    """The reading aid under table `table_id` on the page, as text."""
    section = page[page.index(f'id="{table_id}"'):]
    m = re.search(r'<p class="reading">(.*?)</p>', section, re.S)
    assert m, table_id
    return html.unescape(m.group(1))


@pytest.mark.parametrize("lang", ["da", "en"])
def test_tabel_2_reading_aid_names_the_configured_gap(outputs, lang):
    # issue 14: it said "30 dage" whatever course_gap_days was
    page, xlsx = outputs[lang]
    text = reading_of(page, "course_history")
    assert READING[lang] in text, text
    assert "30" not in text
    # the spreadsheet prints the same reading aid under its table
    ws = openpyxl.load_workbook(xlsx)["Forløbshistorik" if lang == "da" else "Course history"]
    notes = [c.value for c in ws["A"] if isinstance(c.value, str)]
    assert text in notes


@pytest.mark.parametrize("lang", ["da", "en"])
def test_matchgruppe_3_never_breaks_between_the_word_and_the_number(outputs, lang):
    page, _ = outputs[lang]
    text = html.unescape(page)
    name = NAME[lang]
    # every "matchgruppe" followed by a number is joined to it by a no-break space
    breakable = re.findall(rf"{name}[ \t\r\n]+\d", text, re.I)
    assert breakable == []
    joined = re.findall(rf"{name}{NBSP}3", text, re.I)
    # the title, the headline card, Tabel 7's heading and the definitions at least
    assert len(joined) >= 4, joined


@pytest.mark.parametrize(("lang", "gap", "expected"), [
    ("da", 1, f"afbrydelser på højst 1{NBSP}dag tæller ikke"),
    ("en", 1, f"breaks of 1{NBSP}day or less do not count"),
    ("da", 2, f"afbrydelser på højst 2{NBSP}dage tæller ikke"),
    ("en", 1000, f"breaks of 1,000{NBSP}days or less do not count"),
])
def test_a_gap_of_one_day_is_singular(lang, gap, expected):
    # "1 dage" was printed with course_gap_days = 1; the definitions' long course too
    from pipeline.labels import Labels, reading
    from pipeline.page import _definitions
    from pipeline.release import Profiles

    lb = Labels(lang, Profiles(("p",), ("p",), (), {"p": {"da": "P", "en": "P"}}, "", "", ""))
    cfg = Config(reference_date=REF, course_gap_days=gap, long_course_days=1)
    assert expected in reading("course_history", lb, cfg)
    course = next(d for d in _definitions(lb, cfg, lb.profiles)
                  if d.startswith(("Forløb", "Course")))
    long_one = {"da": f"mere end 1{NBSP}dag.", "en": f"more than 1{NBSP}day."}[lang]
    assert course.endswith(long_one), course
