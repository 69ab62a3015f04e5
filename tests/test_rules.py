"""The rules file (definitions §1): refusals name the rule, rules are data (reordering the file
changes the result without code changes), compiled conditions and matched flags are exact."""

from __future__ import annotations

import datetime as dt
import hashlib
from importlib import resources
from pathlib import Path

import pytest
from conftest import load_staging

from pipeline.config import Config
from pipeline.rules import RulesError, compile_condition, load_rules
from pipeline.segment import segment

SHIPPED = resources.files("pipeline").joinpath("rules.toml").read_text("utf-8")
CFG = Config(reference_date=dt.date(2024, 6, 30), scope="all")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def profiles(rules, citizens: dict[str, dict]) -> dict[str, tuple]:
    con = load_staging([{"citizen_id": cid, **flags} for cid, flags in citizens.items()])
    segment(con, CFG, rules)
    return {
        r[0]: r[1:]
        for r in con.execute(
            'select citizen_id, profile, "rule", base_profile, matched_flags from marts.citizens'
        ).fetchall()
    }


def test_shipped_rules():
    rules = load_rules()
    assert rules.version == "faxe-2013.1"
    assert rules.codes == (
        "dual_diagnosis", "diagnosed", "diffuse_psychiatric", "substance_misuse",
        "physically_ill", "maybe_suitable",
    )  # fmt: skip
    assert rules.base_codes == ("diagnosed", "diffuse_psychiatric", "physically_ill",
                                "maybe_suitable")  # fmt: skip
    assert [r.depth for r in rules.rules] == [6, 5, 4, 3, 2, 1]
    assert rules.label("maybe_suitable") == "De måske egnede"
    assert rules.label("dual_diagnosis", "en") == "Psychiatric illness with misuse"
    shipped = resources.files("pipeline").joinpath("rules.toml").read_bytes()
    assert rules.sha256 == hashlib.sha256(shipped).hexdigest()


def test_path_gives_the_same_rules_and_hash(tmp_path):
    rules = load_rules(write(tmp_path, SHIPPED))
    assert rules.rules == load_rules().rules
    assert rules.sha256 == load_rules().sha256
    assert rules.source == str(tmp_path / "rules.toml")


# --- refusals: each names the rule -------------------------------------------------------


def replace_condition(code: str, condition: str) -> str:
    """The shipped file with one rule's condition replaced."""
    start = SHIPPED.index(f'code = "{code}"')
    line = SHIPPED.index("condition = ", start)
    end = SHIPPED.index("\n", line)
    return SHIPPED[:line] + f"condition = {condition}" + SHIPPED[end:]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (replace_condition("diagnosed", '"psych_diagnoss"'),
         "rule 'diagnosed': unknown column 'psych_diagnoss'"),
        (replace_condition("physically_ill", '"physical_illness and"'),
         "rule 'physically_ill': syntax error"),
        (replace_condition("physically_ill", '"(physical_illness"'),
         "rule 'physically_ill': syntax error"),
        (replace_condition("physically_ill", '""'), "rule 'physically_ill': syntax error"),
        (replace_condition("substance_misuse", '"__import__(\'os\').system(\'x\')"'),
         "rule 'substance_misuse': '__import__('os').system('x')' is not allowed"),
        (replace_condition("substance_misuse", '"alcohol + 1"'),
         "rule 'substance_misuse': 'alcohol + 1' is not allowed"),
        (replace_condition("substance_misuse", '"departments_involved"'),
         "rule 'substance_misuse': integer column 'departments_involved' must be compared"),
        (replace_condition("substance_misuse", '"departments_involved >= \'3\'"'),
         "rule 'substance_misuse': 'departments_involved' must be compared with a whole number"),
        (replace_condition("substance_misuse", '"alcohol >= 1"'),
         "rule 'substance_misuse': column 'alcohol' is not an integer column"),
        (replace_condition("substance_misuse", '"notes"'),
         "rule 'substance_misuse': unknown column 'notes'"),
        (replace_condition("diagnosed", "3"),
         "rule 'diagnosed': field 'condition' must be text"),
        (replace_condition("diagnosed", '"true"'),
         "rule 'diagnosed': condition is always true, so 'diffuse_psychiatric' after it"),
        (replace_condition("maybe_suitable", '"not physical_illness"'),
         "rule 'maybe_suitable': the last rule must be the catch-all"),
        (SHIPPED.replace('code = "diagnosed"\nlabel_da', 'code = "dual_diagnosis"\nlabel_da'),
         "rule 'dual_diagnosis': duplicate code (rule #2)"),
        (SHIPPED.replace('label_en = "Fysisk syge"', "").replace(
            'label_en = "Physically ill"\n', ""),
         "rule 'physically_ill': missing field 'label_en'"),
        (SHIPPED.replace('depth = 3\ncondition = "alcohol', 'condition = "alcohol'),
         "rule 'substance_misuse': missing field 'depth'"),
        (SHIPPED.replace('depth = 3\n', 'depth = "deep"\n'),
         "rule 'substance_misuse': field 'depth' must be a positive integer"),
        (SHIPPED.replace('depth = 3\n', 'depth = 3\nconditon = "x"\n'),
         "rule 'substance_misuse': unknown field 'conditon'"),
        (SHIPPED.replace('code = "physically_ill"\nlabel_da', 'label_da'),
         "rule #5: missing field 'code'"),
        (SHIPPED.replace('code = "physically_ill"\nlabel_da', 'code = "Fysisk syge"\nlabel_da'),
         "rule #5 ('Fysisk syge'): field 'code' must be lower-case"),
        (SHIPPED[: SHIPPED.index("\n[[rule]]")], "no [[rule]] tables: the rule list is empty"),
        (SHIPPED[: SHIPPED.index("# Base profile")], "no [[base_rule]] tables"),
        (SHIPPED.replace('code = "diffuse_psychiatric"\ncondition', 'code = "misuse"\ncondition'),
         "base_rule 'misuse': code is not the code of a [[rule]]"),
        (SHIPPED.replace('version = "faxe-2013.1"', ""), "missing 'version'"),
        (SHIPPED.replace('version = "faxe-2013.1"', 'version = "1"\nrules_version = "2"'),
         "unknown key 'rules_version'"),
        ("version = ", "not valid TOML"),
    ],
)  # fmt: skip
def test_refusals_name_the_rule(tmp_path, text, message):
    with pytest.raises(RulesError) as e:
        load_rules(write(tmp_path, text))
    assert message in str(e.value)
    assert str(tmp_path / "rules.toml") in str(e.value)


# A syntax error says what was found, where, and what to write instead, with the grammar and
# an example: "invalid syntax" alone tells a consultant nothing
GRAMMAR = ("A condition names a flag alone to test it (psych_undiagnosed), compares an integer"
           " column with a whole number (departments_involved >= 3), and joins these with"
           ' and / or / not and parentheses, e.g. "psych_diagnosis and not misuse_any"')


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("psych_undiagnosed = 1",
         "found '=' at character 19: '=' is not how a flag is tested; write the flag alone:"
         " 'psych_undiagnosed' instead of 'psych_undiagnosed = 1'"),
        ("(psych_undiagnosed=0) and alcohol",
         "found '=' at character 19: '=' is not how a flag is tested; write the flag alone:"
         " 'not psych_undiagnosed' instead of 'psych_undiagnosed = 0'"),
        ("departments_involved = 3",
         "found '=' at character 22: compare with '==' (or >=, >, <=, <, !=):"
         " 'departments_involved == 3'"),
        ("alcohol && soft_drugs", "found '&&' at character 9: write 'and' instead of '&&'"),
        ("alcohol || soft_drugs", "found '||' at character 9: write 'or' instead of '||'"),
        ("!alcohol", "found '!' at character 1: write 'not' instead of '!'"),
        ("departments_involved => 3", "found '=>' at character 22: write '>=' instead of '=>'"),
        ("departments_involved ≥ 3", "found '≥' at character 22: write '>=' instead of '≥'"),
        ("departments_involved <> 3", "found '<>' at character 22: write '!=' instead of '<>'"),
        ("alcohol AND", "it ends after 'and': something must follow it"),
        ("(alcohol or soft_drugs", "found '(' at character 1: '(' is never closed"),
        ("alcohol soft_drugs", "found 'soft_drugs' at character 9 (invalid syntax)"),
        ("", "the condition is empty"),
    ],
)  # fmt: skip
def test_a_syntax_error_says_what_was_found_and_what_to_write(condition, says):
    with pytest.raises(RulesError) as e:
        compile_condition(condition, "rules.toml: rule 'x'")
    assert str(e.value) == (f"rules.toml: rule 'x': syntax error in condition {condition!r}:"
                            f" {says}. {GRAMMAR}")


def test_a_flag_compared_with_a_number_says_how_a_flag_is_tested():
    with pytest.raises(RulesError) as e:
        compile_condition("psych_undiagnosed == 1", "rules.toml: rule 'x'")
    assert str(e.value) == (
        "rules.toml: rule 'x': column 'psych_undiagnosed' is not an integer column: a flag is"
        " tested by its name alone ('psych_undiagnosed', or 'not psych_undiagnosed') in"
        " condition 'psych_undiagnosed == 1'")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(RulesError, match="rules file not found"):
        load_rules(tmp_path / "nope.toml")


# --- the grammar --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sql", "flags"),
    [
        ("psych_diagnosis and (alcohol or soft_drugs or hard_drugs)",
         '("psych_diagnosis" and ("alcohol" or "soft_drugs" or "hard_drugs"))',
         ("psych_diagnosis", "alcohol", "soft_drugs", "hard_drugs")),
        ("psych_diagnosis AND misuse_any",
         '("psych_diagnosis" and ("alcohol" or "soft_drugs" or "hard_drugs"))',
         ("psych_diagnosis", "alcohol", "soft_drugs", "hard_drugs")),
        ("psych_undiagnosed and not psych_diagnosis",
         '("psych_undiagnosed" and (not "psych_diagnosis"))', ("psych_undiagnosed",)),
        ("departments_involved >= 3", 'coalesce("departments_involved" >= 3, false)',
         ("departments_involved",)),
        ("TRUE", "true", ()),
        ("false or alcohol", '(false or "alcohol")', ("alcohol",)),
    ],
)  # fmt: skip
def test_compiled_conditions(text, sql, flags):
    cond = compile_condition(text)
    assert (cond.sql, cond.flags) == (sql, flags)


# --- rules are data -----------------------------------------------------------------------

CITIZENS = {
    "dual": {"psych_diagnosis": True, "alcohol": True, "hard_drugs": True},
    "undiag_alcohol": {"psych_undiagnosed": True, "alcohol": True},
    "both_psych": {"psych_diagnosis": True, "psych_undiagnosed": True},
    "none": {},
}


def test_matched_flags_exact():
    got = profiles(load_rules(), CITIZENS)
    assert got == {
        "dual": ("dual_diagnosis", "dual_diagnosis", "diagnosed",
                 ["psych_diagnosis", "alcohol", "hard_drugs"]),
        "undiag_alcohol": ("diffuse_psychiatric", "diffuse_psychiatric", "diffuse_psychiatric",
                           ["psych_undiagnosed"]),
        "both_psych": ("diagnosed", "diagnosed", "diagnosed", ["psych_diagnosis"]),
        "none": ("maybe_suitable", "maybe_suitable", "maybe_suitable", []),
    }  # fmt: skip


def move_rule_before(text: str, code: str, before: str) -> str:
    """The rules file with [[rule]] `code` moved to just before [[rule]] `before`."""
    blocks = text.split("[[rule]]\n")
    head, rules = blocks[0], blocks[1:]
    tail = rules[-1][rules[-1].index("# Base profile") :]
    rules[-1] = rules[-1][: rules[-1].index("# Base profile")]
    by_code = {b.split('"')[1]: b for b in rules}
    order = [c for c in by_code if c != code]
    order.insert(order.index(before), code)
    return head + "".join("[[rule]]\n" + by_code[c] for c in order) + tail


def test_reordering_the_file_changes_the_result(tmp_path):
    rules = load_rules(write(tmp_path, move_rule_before(SHIPPED, "diffuse_psychiatric",
                                                        "dual_diagnosis")))  # fmt: skip
    assert rules.codes[0] == "diffuse_psychiatric"
    got = profiles(rules, CITIZENS)
    assert got["both_psych"][:2] == ("diffuse_psychiatric", "diffuse_psychiatric")
    assert got["both_psych"][3] == ["psych_undiagnosed"]
    assert got["dual"][0] == "dual_diagnosis"  # not psych_undiagnosed: unchanged
    assert got["undiag_alcohol"][0] == "diffuse_psychiatric"

    rules = load_rules(write(tmp_path, move_rule_before(SHIPPED, "substance_misuse",
                                                        "dual_diagnosis")))  # fmt: skip
    got = profiles(rules, CITIZENS)
    assert got["dual"][0] == "substance_misuse"
    assert got["dual"][3] == ["alcohol", "hard_drugs"]
    assert got["undiag_alcohol"][0] == "substance_misuse"
    assert got["dual"][2] == "diagnosed"  # the base profile has its own rules


def test_a_new_rule_with_a_comparison(tmp_path):
    text = SHIPPED.replace(
        '[[rule]]\ncode = "dual_diagnosis"',
        '[[rule]]\ncode = "complex"\nlabel_da = "Komplekse"\nlabel_en = "Complex"\ndepth = 7\n'
        'condition = "departments_involved >= 3 and not physical_illness"\n\n'
        '[[rule]]\ncode = "dual_diagnosis"',
    )
    rules = load_rules(write(tmp_path, text))
    got = profiles(rules, {
        "three": {"departments_involved": 3, "alcohol": True},
        "two": {"departments_involved": 2},
        "unknown": {"departments_involved": None},
        "ill": {"departments_involved": 5, "physical_illness": True},
    })  # fmt: skip
    assert got["three"][0] == "complex" and got["three"][3] == ["departments_involved"]
    assert got["two"][0] == "maybe_suitable"
    assert got["unknown"][0] == "maybe_suitable"
    assert got["ill"][0] == "physically_ill"
