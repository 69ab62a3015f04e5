"""The config file: documented defaults, unknown keys and wrong types refused by name."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from pipeline.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).parent.parent / "m3-profiles.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m3.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_no_file_gives_the_documented_defaults():
    cfg = load_config(None)
    assert (
        cfg.course_gap_days,
        cfg.long_course_days,
        cfg.min_cell,
        cfg.max_reject_share,
        cfg.m3_groups,
        cfg.scope,
        cfg.age_bands,
        cfg.municipality_code,
    ) == (30, 1095, 5, 0.05, ("3", "aktivitetsparat"), "m3", (25, 30, 40, 50, 60), 320)


def test_example_file_loads_and_states_every_default():
    cfg = load_config(EXAMPLE)
    assert cfg == Config()
    keys = set(tomllib.loads(EXAMPLE.read_text("utf-8")))
    documented = {
        line.lstrip("# ").split(" =")[0]
        for line in EXAMPLE.read_text("utf-8").splitlines()
        if " = " in line
    }
    fields = set(Config.__dataclass_fields__)
    assert fields <= documented | keys


def test_values_are_read(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "reference_date = 2014-01-31\ncourse_gap_days = 14\n"
            'm3_groups = ["3"]\nmax_reject_share = 0.1\n'
            '[columns.citizens]\nbirth_year = "Fødselsår"\n',
        )
    )
    assert (
        cfg.reference_date,
        cfg.course_gap_days,
        cfg.m3_groups,
        cfg.max_reject_share,
        cfg.columns,
    ) == (dt.date(2014, 1, 31), 14, ("3",), 0.1, {"citizens": {"birth_year": "Fødselsår"}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_cel = 5", "unknown key 'min_cel'"),
        ("min_cell = '5'", "key 'min_cell' must be an integer, got '5'"),
        ("min_cell = -1", "key 'min_cell' must be a non-negative integer"),
        ("max_reject_share = 5", "key 'max_reject_share' must be a share between 0 and 1"),
        ("scope = 'some'", "key 'scope' must be one of m3, all"),
        ("reference_date = '31-01-2014'",
         "key 'reference_date': '31-01-2014' is not a date; expected YYYY-MM-DD, e.g. 2024-06-30"),
        ("age_bands = [30, 25]", "key 'age_bands' must be a strictly increasing list"),
        ("m3_groups = [3]", "key 'm3_groups' must be a list of str"),
        (
            "[columns.citizens]\nbirthyear = 'x'",
            "[columns.citizens] has unknown canonical column 'birthyear'",
        ),
        ("min_cell = ", "not valid TOML"),
    ],
)
def test_bad_config_is_refused_naming_key_and_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # TOML reads these itself and fails with its own words ("Expected newline or end of
        # document after a statement (at line 2, column 22)", "Invalid date or datetime")
        ("min_cell = 5\nreference_date = 2024-13-01\n",
         "key 'reference_date' (line 2): 2024-13-01 is not a date"),
        ("reference_date = 2024-02-30  # leap day?\n",
         "key 'reference_date' (line 1): 2024-02-30 is not a date"),
        ("reference_date = 2024-6-30\n", "key 'reference_date' (line 1): 2024-6-30 is not a date"),
        ("reference_date =\n", "key 'reference_date' (line 1): nothing is not a date"),
        # TOML reads these fine, as text or a number: still no date
        ("reference_date = 'end of June'\n",
         "key 'reference_date': 'end of June' is not a date"),
        ("reference_date = '20240630'\n", "key 'reference_date': '20240630' is not a date"),
        ("reference_date = 20240630\n", "key 'reference_date': 20240630 is not a date"),
        ("reference_date = 2024-06-30T12:00:00\n",
         "key 'reference_date': 2024-06-30T12:00:00 is not a date"),
    ],
)
def test_a_bad_date_in_the_config_says_how_to_write_one(tmp_path, text, message):
    """Issue 14: `reference_date = 2024-13-01` gave TOML's parser message; now the file, the
    key and the format, whether TOML or the config reader finds it wrong."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: {message}; expected YYYY-MM-DD, e.g. 2024-06-30"


def test_a_toml_mistake_elsewhere_keeps_tomls_message(tmp_path):
    path = write(tmp_path, "reference_date = 2024-06-30\nmin_cell = 5 5\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: not valid TOML: ")
    assert "line 2" in str(e.value)


def test_overrides_and_resolution():
    cfg = Config().with_overrides(min_cell=0, lang=None)
    assert (cfg.min_cell, cfg.lang) == (0, "da")
    assert Config().resolved().reference_date == dt.date.today()
