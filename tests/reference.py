"""The definitions (§1-§4, §7) in plain Python, one citizen at a time: slow and obvious.

Days are counted one by one: a course is a maximal run of covered days in which no more than
`course_gap_days` uncovered days lie between two covered days (the same thing as the spec's
"merge each episode into the course so far", said without episodes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.config import Config

MISUSE = ("alcohol", "soft_drugs", "hard_drugs")


def covered_days(spans: list[tuple[dt.date, dt.date | None]], ref: dt.date) -> list[dt.date]:
    """Sorted days covered by the spans, ongoing spans run to `ref`, nothing after `ref`."""
    days: set[dt.date] = set()
    for start, end in spans:
        if start > ref:  # definitions §7: ignored
            continue
        last = ref if end is None or end > ref else end
        day = start
        while day <= last:
            days.add(day)
            day += dt.timedelta(days=1)
    return sorted(days)


def runs(days: list[dt.date], gap: int) -> list[tuple[dt.date, dt.date]]:
    """(first, last) of each run of days with at most `gap` missing days inside."""
    result: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if result and (day - result[-1][1]).days - 1 <= gap:
            result[-1] = (result[-1][0], day)
        else:
            result.append((day, day))
    return result


def length(run: tuple[dt.date, dt.date]) -> int:
    return (run[1] - run[0]).days + 1


def age_band(age: int, bands: Sequence[int]) -> str:
    if age < bands[0]:
        return f"under_{bands[0]}"
    for lo, hi in zip(bands, bands[1:], strict=False):
        if lo <= age < hi:
            return f"{lo}_{hi - 1}"
    return f"{bands[-1]}_plus"


def profile(c: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """definitions §1: (profile, base profile, flags that made it match)."""
    misuse = [f for f in MISUSE if c[f]]
    if c["psych_diagnosis"] and misuse:
        result = ("dual_diagnosis", ["psych_diagnosis", *misuse])
    elif c["psych_diagnosis"]:
        result = ("diagnosed", ["psych_diagnosis"])
    elif c["psych_undiagnosed"]:
        result = ("diffuse_psychiatric", ["psych_undiagnosed"])
    elif misuse:
        result = ("substance_misuse", misuse)
    elif c["physical_illness"]:
        result = ("physically_ill", ["physical_illness"])
    else:
        result = ("maybe_suitable", [])
    if c["psych_diagnosis"]:
        base = "diagnosed"
    elif c["psych_undiagnosed"]:
        base = "diffuse_psychiatric"
    elif c["physical_illness"]:
        base = "physically_ill"
    else:
        base = "maybe_suitable"
    return result[0], base, result[1]


def reference_citizen(
    citizen: Mapping[str, Any], episodes: Sequence[Mapping[str, Any]], cfg: Config
) -> dict[str, Any]:
    """The marts.citizens fields of one citizen; `episodes` are that citizen's, in file order."""
    ref = cfg.reference_date
    assert ref is not None

    support = [
        (e["start_date"], e.get("end_date"))
        for e in episodes
        if e["benefit"] not in cfg.support_excluded
    ]
    support_days = covered_days(support, ref)
    courses = runs(support_days, cfg.course_gap_days)
    if not courses:
        course_class = "no_history"
    elif len(courses) >= 2:
        course_class = "several_separate"
    elif length(courses[0]) > cfg.long_course_days:
        course_class = "long_continuous"
    else:
        course_class = "short_continuous"
    current = [length(r) for r in courses if r[0] <= ref <= r[1]]

    m3 = [
        (e["start_date"], e.get("end_date"))
        for e in episodes
        if e.get("match_group") in cfg.m3_groups
    ]
    stretches = runs(covered_days(m3, ref), cfg.course_gap_days)
    m3_now = [length(r) for r in stretches if r[0] <= ref <= r[1]]
    m3_days = m3_now[0] if m3_now else 0
    lo, hi = cfg.m3_band_days
    m3_band = (
        "not_in_m3" if m3_days == 0
        else "under_1y" if m3_days < lo
        else "1_to_2y" if m3_days < hi
        else "2y_plus"
    )  # fmt: skip

    # definitions §3: the cell, else the covering episode that started last (ties: the
    # ongoing / later-ending one, then the later row); episodes without a group pass.
    group = citizen.get("match_group")
    if group is None:
        covering = [
            (e["start_date"], e.get("end_date") or dt.date.max, i, e["match_group"])
            for i, e in enumerate(episodes)
            if e.get("match_group") is not None
            and e["start_date"] <= ref
            and (e.get("end_date") is None or e["end_date"] >= ref)
        ]
        group = max(covering)[3] if covering else None

    age = ref.year - citizen["birth_year"]
    if citizen["reviewed"]:
        prof, base, flags = profile(citizen)
        source = "rules"
    else:
        prof, base, flags, source = None, None, None, "unreviewed"
    departments = citizen.get("departments_involved")
    return {
        "match_group_on_reference_date": group,
        "in_scope": cfg.scope == "all" or group in cfg.m3_groups,
        "age": age,
        "age_band": age_band(age, cfg.age_bands),
        "courses": len(courses),
        "course_class": course_class,
        "current_course_days": current[0] if current else 0,
        "support_days_total": len(support_days),
        "m3_days": m3_days,
        "m3_band": m3_band,
        "profile": prof,
        "base_profile": base,
        "rule": prof,
        "matched_flags": flags,
        "profile_source": source,
        "misuse_any": any(citizen[f] for f in MISUSE),
        "complex_case": departments is not None and departments >= cfg.complex_case_departments,
        "episodes_after_reference": sum(e["start_date"] > ref for e in episodes),
    }


def reference_runs(
    episodes: Sequence[Mapping[str, Any]], cfg: Config, m3: bool
) -> list[tuple[dt.date, dt.date, int, int, int, bool]]:
    """The rows of marts.courses (m3=False) or marts.m3_stretches (m3=True) of one citizen,
    in time order: (first day, last day, days, covered days, episodes, covers the reference
    date). An episode belongs to the run its start day lies in."""
    ref = cfg.reference_date
    assert ref is not None
    kept = [
        e
        for e in episodes
        if e["start_date"] <= ref
        and (
            e.get("match_group") in cfg.m3_groups
            if m3
            else e["benefit"] not in cfg.support_excluded
        )
    ]
    days = covered_days([(e["start_date"], e.get("end_date")) for e in kept], ref)
    rows = []
    for first, last in runs(days, cfg.course_gap_days):
        covered = sum(first <= d <= last for d in days)
        members = sum(first <= e["start_date"] <= last for e in kept)
        rows.append((first, last, length((first, last)), covered, members, first <= ref <= last))
    return rows


def reference(
    citizens: Sequence[Mapping[str, Any]], episodes: Sequence[Mapping[str, Any]], cfg: Config
) -> dict[str, dict[str, Any]]:
    """reference_citizen for every citizen, by citizen_id."""
    return {
        c["citizen_id"]: reference_citizen(
            c, [e for e in episodes if e["citizen_id"] == c["citizen_id"]], cfg
        )
        for c in citizens
    }
