"""The re-review worklist and the opportunity catalogue (issue 17): hand-made citizens, one
per shipped reason and its boundaries, with the exact expected worklist; worklist and
catalogue files validated before any data is read; the worklist internal (never among the
published files); the page's counts per reason and the catalogue beside each profile."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pytest
from conftest import load_staging

from pipeline import warehouse
from pipeline.config import Config
from pipeline.release import context
from pipeline.rules import load_rules
from pipeline.segment import segment
from pipeline.worklist import (
    WorklistError,
    load_catalogue,
    load_worklist,
    rows,
)

REF = dt.date(2024, 6, 30)
CFG = Config(reference_date=REF, min_cell=0)


def days_ago(n: int) -> dt.date:
    return REF - timedelta(days=n)


def m3_for(days: int, benefit: str = "kontanthjaelp") -> list[dict]:
    """One ongoing M3 episode: `days` days in M3 (and in one course) on the reference date."""
    return [{"start_date": days_ago(days - 1), "end_date": None, "benefit": benefit,
             "match_group": "3"}]


def long_course_m3(days: int) -> list[dict]:
    """A continuous course of 1,501 days (long_continuous), its last `days` days in M3."""
    return [{"start_date": days_ago(1500), "end_date": days_ago(days), "benefit":
             "kontanthjaelp", "match_group": "2"}, *m3_for(days)]


# id: (citizen fields, episodes); every citizen is in M3 on the reference date (match group 3)
# unless said otherwise
CASES: dict[str, tuple[dict, list[dict]]] = {
    # parked maybe-suitable: exactly 365 days in M3 is "more than a year" (the headline's
    # edge, definitions §5); 364 is not
    "park_365": ({}, m3_for(365)),
    "park_364": ({}, m3_for(364)),
    # a potential M2 of another profile is parked too; activation or ordinary-work focus ends it
    "park_m2": ({"physical_illness": True, "potential_m2": True,
                 "focus_physical_treatment": True}, m3_for(800)),
    "park_act": ({"focus_activation": True}, m3_for(500)),
    "park_work": ({"focus_ordinary_work": True}, m3_for(500)),
    # complex case: 3 departments is one, 2 is not
    "dept_3": ({"departments_involved": 3}, m3_for(100)),
    "dept_2": ({"departments_involved": 2}, m3_for(100)),
    # motivated for work or education, no activation or upskilling focus
    "motivated": ({"motivation_work": True, "focus_ordinary_work": True}, m3_for(100)),
    "motivated_up": ({"motivation_education": True, "focus_upskilling": True}, m3_for(100)),
    # a long continuous course without a pension case
    "long": ({"physical_illness": True, "focus_physical_treatment": True},
             long_course_m3(200)),
    "long_pension": ({"physical_illness": True, "focus_pension_case": True},
                     long_course_m3(200)),
    # not reviewed: the case review's flags are not recorded, so only the reasons that test
    # no flag apply (complex case: yes; long course without a pension case: not known)
    "unreviewed": ({"reviewed": False, "departments_involved": 4}, long_course_m3(300)),
    # every one of the four reasons at once: priority 1, the reasons in priority order
    "all_four": ({"departments_involved": 5, "motivation_work": True}, m3_for(2000)),
    # outside the scope (match group 2 on the reference date): never listed
    "out_of_scope": ({"match_group": "2", "departments_involved": 5}, m3_for(2000)),
}

# (citizen, priority, reasons in priority order, m3_days), sorted by priority, then the
# longest time in M3 first, then id
EXPECTED = [
    ("all_four", 1, ["parked_maybe_suitable", "complex_uncoordinated", "motivated_not_activated",
                     "long_course_no_pension_case"], 2000),
    ("park_m2", 1, ["parked_maybe_suitable"], 800),
    ("park_365", 1, ["parked_maybe_suitable"], 365),
    ("unreviewed", 2, ["complex_uncoordinated"], 300),
    ("dept_3", 2, ["complex_uncoordinated"], 100),
    ("motivated", 3, ["motivated_not_activated"], 100),
    ("long", 4, ["long_course_no_pension_case"], 200),
]


def build(cases, worklist=None, cfg: Config = CFG):
    citizens = [{"citizen_id": cid, "match_group": "3", **fields}
                for cid, (fields, _) in cases.items()]
    episodes = [{"citizen_id": cid, **e} for cid, (_, eps) in cases.items() for e in eps]
    con = load_staging(citizens, episodes)
    segment(con, cfg, load_rules())
    with warehouse.transaction(con):
        warehouse.build(con, "marts.worklist", context(cfg, worklist))
    return con


def test_the_shipped_reasons_give_exactly_the_expected_worklist():
    con = build(CASES)
    got = [(r["citizen_id"], r["priority"], r["reasons"], r["m3_days"])
           for r in rows(con, load_worklist())]
    assert got == EXPECTED


def test_the_facts_behind_each_reason_are_on_the_row():
    con = build(CASES)
    by_id = {r["citizen_id"]: r for r in rows(con, load_worklist())}
    r = by_id["all_four"]
    assert (r["profile"], r["profile_source"], r["course_class"], r["departments_involved"],
            r["focus"], r["motivation"]) == (
        "maybe_suitable", "rules", "long_continuous", 5, [], ["motivation_work"])
    r = by_id["park_m2"]
    assert (r["profile"], r["rule"], r["matched_flags"], r["focus"]) == (
        "physically_ill", "physically_ill", ["physical_illness"], ["focus_physical_treatment"])
    assert (by_id["unreviewed"]["profile"], by_id["unreviewed"]["profile_source"]) == (
        None, "unreviewed")


def test_model_uncertain_matches_the_citizens_the_model_could_not_place():
    # issue 15 writes profile_source = 'uncertain'; until it lands nobody is, so the reason
    # is tried on a warehouse where segment's row says so, as the model will write it
    con = build({"u": ({"reviewed": False}, m3_for(40)), "r": ({}, m3_for(40))})
    assert rows(con, load_worklist()) == []
    con.execute("update marts.citizens set profile_source = 'uncertain' where citizen_id = 'u'")
    with warehouse.transaction(con):
        warehouse.build(con, "marts.worklist", context(CFG))
    assert [(r["citizen_id"], r["reasons"]) for r in rows(con, load_worklist())] == [
        ("u", ["model_uncertain"])]


def test_a_replaced_worklist_and_its_priorities(tmp_path):
    path = tmp_path / "wl.toml"
    path.write_text('version = "mine-1"\n'
                    '[[reason]]\ncode = "young_long"\nlabel_da = "Ung"\nlabel_en = "Young"\n'
                    'priority = 2\ncondition = "age < 30 and m3_band != \\"under_1y\\""\n'
                    'source = "own"\n'
                    '[[reason]]\ncode = "any_dept"\nlabel_da = "Afd"\nlabel_en = "Dept"\n'
                    'priority = 1\ncondition = "departments_involved >= 1"\nsource = "own"\n',
                    encoding="utf-8")
    wl = load_worklist(path)
    con = build({"y": ({"birth_year": 2000, "departments_involved": 1}, m3_for(400)),
                 "o": ({"birth_year": 1960}, m3_for(400)),
                 "s": ({"birth_year": 2000}, m3_for(100))}, wl)
    assert [(r["citizen_id"], r["priority"], r["reasons"]) for r in rows(con, wl)] == [
        ("y", 1, ["any_dept", "young_long"])]


# ---------------------------------------------------------------------------------------
# validation: before any data is read


def _reason(**over) -> str:
    fields = {"code": '"r1"', "label_da": '"a"', "label_en": '"a"', "priority": "1",
              "condition": '"complex_case"', "source": '"s"', **over}
    return "[[reason]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)


@pytest.mark.parametrize(("text", "message"), [
    ('version = "1"\n' + _reason(condition='"m3_dayz >= 365"'),
     "reason 'r1': unknown column 'm3_dayz' in condition 'm3_dayz >= 365'"),
    ('version = "1"\n' + _reason(condition='"complex_case and"'),
     "reason 'r1': syntax error in condition 'complex_case and': it ends after 'and'"),
    ('version = "1"\n' + _reason() + _reason(),
     "reason 'r1': duplicate code (reason #2)"),
    ('version = "1"\n' + _reason(condition='"course_class == \\"long\\""'),
     "unknown code 'long' for 'course_class' (known: long_continuous, short_continuous,"
     " several_separate, no_history)"),
    ('version = "1"\n' + _reason(priority="0"), "field 'priority' must be a positive integer"),
    ('version = "1"\n' + _reason(source=None), "reason 'r1': missing field 'source'"),
    ('version = "1"\n[[reason]\n', "not valid TOML"),
    ('version = "1"\n' + _reason(colour='"red"'), "reason 'r1': unknown field 'colour'"),
])
def test_a_bad_worklist_is_refused_with_its_reason(tmp_path, text, message):
    path = tmp_path / "wl.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WorklistError) as e:
        load_worklist(path)
    assert message in str(e.value)


def test_the_shipped_files_are_valid_and_cite_their_seeds():
    wl = load_worklist()
    assert [r.code for r in wl.reasons] == [
        "parked_maybe_suitable", "complex_uncoordinated", "motivated_not_activated",
        "long_course_no_pension_case", "model_uncertain"]
    for r in wl.reasons:
        assert r.source.split(" ")[0] in ("Faxe", "Greve", "Definitioner"), r.source
    cat = load_catalogue()
    seeds = {i.source.split(" ")[0] for i in cat.interventions}
    assert seeds == {"Faxe", "Greve", "Varde", "Odense"}
    rules = load_rules()
    for i in cat.interventions:
        assert set(i.profiles) <= set(rules.codes)


@pytest.mark.parametrize(("text", "message"), [
    ('version = "1"\n[[intervention]]\ncode = "x"\nlabel_da = "a"\nlabel_en = "a"\n'
     'description_da = "d"\ndescription_en = "d"\nprofiles = []\nbarriers = ["barrier_bus"]\n'
     'source = "s"\n', "intervention 'x': unknown barrier 'barrier_bus'"),
    ('version = "1"\n[[intervention]]\ncode = "x"\nlabel_da = "a"\nlabel_en = "a"\n'
     'description_da = ""\ndescription_en = "d"\nprofiles = []\nbarriers = []\nsource = "s"\n',
     "intervention 'x': field 'description_da' must be non-empty text"),
    ('version = "1"\n[[intervention]]\ncode = "x"\nlabel_da = "a"\nlabel_en = "a"\n'
     'description_da = "d"\ndescription_en = "d"\nprofiles = "all"\nbarriers = []\n'
     'source = "s"\n', "intervention 'x': field 'profiles' must be a list of codes"),
])
def test_a_bad_catalogue_is_refused_with_its_reason(tmp_path, text, message):
    path = tmp_path / "cat.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WorklistError) as e:
        load_catalogue(path)
    assert message in str(e.value)
