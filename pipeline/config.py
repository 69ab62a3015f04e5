"""The run configuration: one TOML file, every key optional, defaults documented here
and in `m3-profiles.example.toml`.

Reads a TOML file (or nothing) and returns a frozen `Config`. An unknown key or a value of
the wrong type is a `ConfigError` naming the key and the file, so a typo in a consultant's
config never silently falls back to a default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.vocabulary import LANGS, TABLE_COLUMNS

# how DuckDB runs, not what the analysis is (see Config.effective_json)
RESOURCE_KEYS: tuple[str, ...] = ("memory_limit", "threads", "temp_directory")
# how a run is watched, not what it finds: also left out of the config hash
OPERATION_KEYS: tuple[str, ...] = ("metrics_file", "ping_url", "log_format")


class ConfigError(ValueError):
    """The config file is unreadable, has an unknown key or a value of the wrong type."""


@dataclass(frozen=True)
class Config:
    """Every threshold of the definitions, with the defaults the tests and the demo use."""

    # The day the analysis describes; None = today (resolved by `resolved()`).
    reference_date: dt.date | None = None
    # Municipality code filled in where the citizens table has none (Faxe = 320).
    municipality_code: int = 320
    # definitions §2: a gap of at most this many days between spells keeps a course whole.
    course_gap_days: int = 30
    # definitions §2: a course longer than this is `long_continuous` (3 x 365).
    long_course_days: int = 1095
    # definitions §2: benefits outside the support set (not counted as public support).
    support_excluded: tuple[str, ...] = ("fleksjob", "foertidspension")
    # definitions §3: match-group codes that count as M3.
    m3_groups: tuple[str, ...] = ("3", "aktivitetsparat")
    # definitions §4: lower bounds of the age bands after the first one.
    age_bands: tuple[int, ...] = (25, 30, 40, 50, 60)
    # definitions §3: m3 duration band edges in days (under_1y | 1_to_2y | 2y_plus).
    m3_band_days: tuple[int, ...] = (365, 730)
    # definitions §5: "m3" = citizens in an M3-equivalent group on the reference date; "all".
    scope: str = "m3"
    # definitions §5: complex case = at least this many departments involved (Greve).
    complex_case_departments: int = 3
    # definitions §8.2 (docs/definitions-movement.md): the cohort date is the reference date
    # minus this many calendar months.
    cohort_months: int = 12
    # definitions §8.3: the time to leave M3 follows M3 stretches that started at most this
    # many days before the reference date (five years).
    survival_window_days: int = 1826
    # definitions §8.5 (docs/disclosure.md §7): the published time-to-leave curve stops where
    # fewer citizens than this are still followed (at risk); a profile with fewer spells is
    # not shown. 0 = twice min_cell (10 at min_cell 5).
    survival_min_at_risk: int = 0
    # definitions §6: smallest count shown in published tables; 0 switches suppression off.
    min_cell: int = 5
    # docs/disclosure.md §2: a new release is audited against this many of the releases
    # published before it from the same output folder, the latest ones (0 = all of them).
    # The audit's cost grows faster than the number of releases it models (at 100,000
    # citizens: 1.4 s against one, 32 s against three), and a nightly batch publishes most
    # nights at that size: a window keeps a night's cost flat.
    release_audit_window: int = 6
    # data contract: a table with a larger share of quarantined rows is refused (exit 3).
    max_reject_share: float = 0.05
    # Warehouse file; empty = `<out>/warehouse.duckdb`.
    database: str = ""
    # DuckDB's memory limit (e.g. "1.5GB"); past it DuckDB spills to temp_directory. 1GB
    # keeps a 1,000,000-citizen run under 2 GB in all (the readers' Arrow tables come on
    # top); empty = DuckDB's default, 80 % of the machine's memory, whatever else runs.
    memory_limit: str = "1GB"
    # DuckDB's worker threads; 0 = DuckDB's default, one per core.
    threads: int = 0
    # Where DuckDB spills what does not fit in memory_limit; empty = DuckDB's default (a
    # `.tmp` folder beside the warehouse file).
    temp_directory: str = ""
    # definitions §1 (issue 15): the profile model. Fewer reviewed citizens than this with,
    # or without, any flag the rules test: no model, the unreviewed stay unreviewed.
    model_min_reviewed_per_flag: int = 30
    # A model-assigned profile less probable than this is `uncertain` (left to a caseworker).
    model_min_probability: float = 0.6
    # The model's seed (cross-validation folds, solver): same data and seed, same predictions.
    model_seed: int = 15
    # Folds of the evaluation's stratified cross-validation on the reviewed.
    model_cv_folds: int = 5
    # The evaluation takes at most this many reviewed citizens (seeded, stratified sample).
    model_eval_max_citizens: int = 3000
    # The model learns from at most this many reviewed citizens (seeded sample stratified by
    # profile): training costs the same at 20,000 or 200,000 reviewed (issue 15's 1M bench).
    model_max_training_citizens: int = 20000
    # Language of labels in the spreadsheet and report: "da" or "en".
    lang: str = "da"
    # issue 17: the opportunity catalogue shown beside each profile (TOML, as
    # pipeline/catalogue.toml); empty = the shipped one.
    catalogue: str = ""
    # File holding the pseudonymisation key (else the M3_PSEUDONYM_KEY environment variable).
    pseudonym_key_file: str = ""
    # The history across runs (README, History): one Parquet file per night, kept when the
    # output folder is rebuilt; empty = `<out>.history` beside the output folder.
    history_dir: str = ""
    # Operations (README, Scheduling). A Prometheus textfile written at the end of every run,
    # success or failure (e.g. /var/lib/prometheus/node-exporter/m3_profiles.prom); empty =
    # none.
    metrics_file: str = ""
    # A dead man's switch (healthchecks.io's protocol: <url>/start, <url>, <url>/<exit code>);
    # empty = off. Pings say only the run id and the exit code.
    ping_url: str = ""
    # Log lines in run.log and on stderr: "text" (for people) or "json" (one event per line,
    # with the run id, for a log collector).
    log_format: str = "text"
    # [columns.citizens] / [columns.episodes]: canonical name -> name in the export.
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    # [coarsening] (definitions §6, pipeline.coarsening): `threshold` and, per table, its
    # hierarchy of merged columns; empty = the documented defaults.
    coarsening: dict[str, Any] = field(default_factory=dict)

    def effective_json(self) -> str:
        """The settings that decide the results, as canonical JSON: what the manifest records
        and its hash covers. DuckDB's resources (memory, threads, spill folder) are left out:
        they change how fast a run is, never what it finds, so two runs that differ only in
        them carry the same hash."""
        settings = dataclasses.asdict(self)
        for key in (*RESOURCE_KEYS, *OPERATION_KEYS):
            del settings[key]
        return json.dumps(settings, default=str, sort_keys=True)

    def effective_sha256(self) -> str:
        return hashlib.sha256(self.effective_json().encode()).hexdigest()

    def resolved(self) -> Config:
        """The config with its run-time defaults filled in (today's date)."""
        if self.reference_date is None:
            return dataclasses.replace(self, reference_date=dt.date.today())
        return self

    def with_overrides(self, **overrides: Any) -> Config:
        """CLI options win over the file; a None option leaves the file's value."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)


def _check_type(key: str, value: Any, default: Any, source: str) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: key '{key}' must be {expected}, got {value!r}")

    if key == "reference_date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return parse_date(value)
        shown = repr(value) if isinstance(value, str) else str(value).replace(" ", "T")
        raise ConfigError(_bad_date(source, shown))
    if key == "columns":
        if not isinstance(value, dict) or not set(value) <= {"citizens", "episodes"}:
            raise fail("tables [columns.citizens] and/or [columns.episodes]")
        known = TABLE_COLUMNS
        for table, mapping in value.items():
            if not isinstance(mapping, dict):
                raise fail(f"a table [columns.{table}]")
            for canon, export in mapping.items():
                if canon not in known[table]:
                    raise ConfigError(
                        f"{source}: [columns.{table}] has unknown canonical column '{canon}'"
                        f" (known: {', '.join(known[table])})"
                    )
                if not isinstance(export, str) or not export.strip():
                    raise ConfigError(
                        f"{source}: [columns.{table}] '{canon}' must be a column name (text)"
                    )
        return {t: dict(m) for t, m in value.items() if m}
    if key == "coarsening":
        if not isinstance(value, dict):
            raise fail("a table [coarsening]")
        return dict(value)  # its content is checked by pipeline.coarsening.plan
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        if value < 0:
            raise fail("a non-negative integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        if not 0 <= value <= 1:
            raise fail("a share between 0 and 1")
        return float(value)
    if isinstance(default, tuple):
        item_type = type(default[0])
        if not isinstance(value, list) or not all(
            isinstance(v, item_type) and not isinstance(v, bool) for v in value
        ):
            raise fail(f"a list of {item_type.__name__}")
        if item_type is int and list(value) != sorted(set(value)):
            raise fail("a strictly increasing list of integers")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail("text")
        return value
    raise AssertionError(f"no type rule for config key {key}")  # pragma: no cover


# the config's date keys: a value TOML itself cannot read (`2024-13-01`, `2024-6-30`) gets
# the same message as a string that is no date, not the TOML parser's
DATE_KEYS: tuple[str, ...] = ("reference_date",)
DATE_FORMAT = "expected YYYY-MM-DD, e.g. 2024-06-30"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str) -> dt.date:
    """A date written YYYY-MM-DD and nothing else (fromisoformat also takes 20240630 and
    2024-W26-7); ValueError otherwise. The config file and `--reference-date` alike."""
    if not _DATE.fullmatch(text):
        raise ValueError(text)
    return dt.date.fromisoformat(text)


def _bad_date(source: str, shown: str, key: str = "reference_date", line: int = 0) -> str:
    where = f" (line {line})" if line else ""
    return f"{source}: key '{key}'{where}: {shown} is not a date; {DATE_FORMAT}"


def _toml_error(source: str, text: str, e: tomllib.TOMLDecodeError) -> ConfigError:
    """TOML's own message, unless the line it stopped at gives a date key: then what a date
    looks like, which is what the person who wrote `reference_date = 2024-13-01` needs."""
    at = re.search(r"at line (\d+)", str(e))
    if at:
        lines = text.splitlines()
        n = int(at.group(1))
        line = lines[n - 1] if 0 < n <= len(lines) else ""
        m = re.match(r"\s*(\w+)\s*=\s*(.*?)\s*(?:#.*)?$", line)
        if m and m.group(1) in DATE_KEYS:
            return ConfigError(_bad_date(source, m.group(2) or "nothing", m.group(1), n))
    return ConfigError(f"{source}: not valid TOML: {e}")


_CHOICES = {"scope": ("m3", "all"), "lang": LANGS, "log_format": ("text", "json")}


def load_config(path: Path | None = None) -> Config:
    """Read `path` (None = all defaults) into a `Config`, refusing unknown keys and bad types."""
    if path is None:
        return Config()
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not valid TOML: the file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise _toml_error(source, text, e) from None
    defaults = {f.name: f for f in dataclasses.fields(Config)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in defaults:
            raise ConfigError(
                f"{source}: unknown key '{key}' (known: {', '.join(sorted(defaults))})"
            )
        f = defaults[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if key == "reference_date":
            default = None
        values[key] = _check_type(key, value, default, source)
        if key in _CHOICES and values[key] not in _CHOICES[key]:
            raise ConfigError(
                f"{source}: key '{key}' must be one of {', '.join(_CHOICES[key])}, got {value!r}"
            )
    cfg = Config(**values)
    from pipeline.coarsening import plan  # imports this module

    plan(cfg, source)  # the hierarchy, with the age bands it is made of
    return cfg
