"""Profile changes since the previous release (issue 16 item 2, published; definitions:
docs/definitions-movement.md §8.7; safety: docs/disclosure.md §2.8).

The table: for the citizens tabulated (definitions §5) in both the previous release published
from the output folder (the last record in the store, `pipeline.releases.kept`) and this
one, how many changed from profile A to profile B (A ≠ B); and two totals: `entered` (in
this release's tables, not in the previous one's) and `left` (the other way round). Not
published: the diagonal (who kept the profile) and entrants and leavers per profile: with
the two releases' profile totals, either would give the other, and a profile nobody left
would hand the reader its entrants exactly. It is computed from the two records alone
(`pipeline.releases.Snapshot`: where each pseudonymised citizen is counted), so it counts
exactly the citizens the audit across releases models.

Suppression: every published count from 1 to min_cell − 1 is hidden. The table prints no sums
of its own; what ties it to the releases (their profile totals, the flows between them) is
modelled by `pipeline.releases.audit_chain`, the exact judge: a release that fails with the
table and passes without it is published without it, and the page says so (`check`).

Reads: the snapshots. Writes: tables/profile_changes.csv (`write_csv`, called by the report).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.suppression import TOTAL

ENTERED = "entered"
LEFT = "left"
CSV_COLUMNS = ("from_profile", "to_profile", "n", "hidden")
_PROFILE_TOTAL = "cell|profile_distribution|"
HIDDEN = "c"


def profiles_of(snap: Any) -> dict[str, str]:
    """Membership signature -> the profile whose total counts it (tabulated citizens only).
    Read from the memberships' Arrow table (a record's groups.parquet, never turned into
    Python lists whole)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("g", snap.groups_table())
        rows = con.execute(
            """
            select sig, q[length($prefix) + 1:length(q) - length($suffix)]
            from (select sig, unnest(numbers) as q from g)
            where starts_with(q, $prefix) and ends_with(q, $suffix) and q <> $grand""",
            {"prefix": _PROFILE_TOTAL, "suffix": "|" + TOTAL,
             "grand": f"{_PROFILE_TOTAL}{TOTAL}|{TOTAL}"}).fetchall()
    finally:
        con.close()
    return dict(rows)


def _rows(snap: Any) -> list[str]:
    for t in snap.tables:
        if t["id"] == "profile_distribution":
            return list(t["rows"])
    return []


def count(old: Any, new: Any) -> dict[str, Any]:
    """The table between two snapshots, unsuppressed (see the module docstring): `moves`
    (row = the old profile, column = the new one; the diagonal is not published and
    recorded as 0), the totals `entered` and `left`, and per profile the entrants and
    leavers (`unpublished`: internal, the audit's true values)."""
    import duckdb
    import pyarrow as pa

    po, pn = profiles_of(old), profiles_of(new)
    con = duckdb.connect()
    try:
        for name, snap, prof in (("o", old, po), ("n", new, pn)):
            sigs = pa.table({"sig": list(prof), "profile": list(prof.values())},
                            schema=pa.schema([("sig", pa.string()), ("profile", pa.string())]))
            con.register(f"{name}_sig", sigs)
            con.register(f"{name}_cit", snap.citizens)
        pairs = con.execute(
            """
            with o as (select citizen_id, profile from o_cit join o_sig using (sig)),
                 n as (select citizen_id, profile from n_cit join n_sig using (sig))
            select o.profile, n.profile, count(*)
            from o full join n using (citizen_id) group by all"""
        ).fetchall()
    finally:
        con.close()
    profiles = _rows(new)
    for p in _rows(old):  # a profile only one release knows (cannot happen when comparable)
        if p not in profiles:
            profiles.append(p)
    moves = [[0] * len(profiles) for _ in profiles]
    entered_by = dict.fromkeys(profiles, 0)
    left_by = dict.fromkeys(profiles, 0)
    for a, b, n in pairs:
        if a is None:
            entered_by[b] += int(n)
        elif b is None:
            left_by[a] += int(n)
        elif a != b:
            moves[profiles.index(a)][profiles.index(b)] += int(n)
    return {"previous_run_id": old.run_id, "previous_reference_date": old.reference_date,
            "profiles": profiles, "moves": moves, "entered": sum(entered_by.values()),
            "left": sum(left_by.values()), "hidden": [],
            "unpublished": {"entered": entered_by, "left": left_by}}


def suppress(table: dict[str, Any], min_cell: int) -> dict[str, Any]:
    """`table` with its hidden numbers ([[row, col], ...]; the totals are
    [entered, total] and [total, left]): every count from 1 to min_cell − 1. The table
    prints no sums of its own, so nothing within it needs a second hidden cell; what the
    releases and the flows between them tie it to is the audit's (`check`)."""
    hidden = []
    if min_cell > 1:
        ps = table["profiles"]
        hidden = [[a, b] for i, a in enumerate(ps) for j, b in enumerate(ps)
                  if i != j and 0 < table["moves"][i][j] < min_cell]
        if 0 < table["entered"] < min_cell:
            hidden.append([ENTERED, TOTAL])
        if 0 < table["left"] < min_cell:
            hidden.append([TOTAL, LEFT])
    return {**table, "hidden": sorted(hidden)}


@dataclass(eq=False)
class Against:
    """What the runner hands the report: this run's id and the releases kept (oldest
    first); the report sets `checked` (`check`) before it writes anything."""

    run_id: str
    previous: list[Any]
    checked: Checked | None = None


@dataclass(frozen=True)
class Checked:
    """What the report decided before writing: the snapshot of the release (with the
    table when published), the audit's verdict, and the table as published (None: no
    earlier release, or withheld)."""

    snapshot: Any
    verdict: Any
    table: dict[str, Any] | None
    withheld: bool = False  # the release passes only without the table
    previous: str | None = None  # the reference date of the previous release


def check(con: Any, cfg: Any, run_id: str, previous: Sequence[Any]) -> Checked:
    """The table of this release against the last release kept, and the audit across
    releases with it; without it when only that passes."""
    from pipeline import releases

    return decide(releases.snapshot(con, cfg, run_id), previous)


def decide(snap: Any, previous: Sequence[Any]) -> Checked:
    """`check` for a snapshot already taken: with the table if the audit passes with it,
    without it (`withheld`) if only that passes."""
    from pipeline import releases

    if not previous:
        return Checked(snap, releases.Verdict(True, (), 0), None)
    last = previous[-1]
    if not releases.comparable(last, snap):
        return Checked(snap, releases.audit_chain(previous, snap), None,
                       previous=last.reference_date)
    table = suppress(count(last, snap), int(snap.structure["min_cell"]))
    with_table = releases.with_changes(snap, table)
    verdict = releases.audit_chain(previous, with_table)
    if verdict.safe:
        return Checked(with_table, verdict, table, previous=last.reference_date)
    without = releases.audit_chain(previous, snap)
    if without.safe:
        return Checked(snap, without, None, withheld=True, previous=last.reference_date)
    # not published at all (decide keeps the earlier release): the page is never shown
    return Checked(snap, without, None, withheld=True, previous=last.reference_date)


def cell(table: dict[str, Any], row: str, col: str) -> tuple[int | None, bool]:
    """(count, hidden) of a published number: a move (row and column profiles; None on
    the diagonal, which is not published), [entered, total] or [total, left]."""
    hidden = [row, col] in table["hidden"]
    if (row, col) == (ENTERED, TOTAL):
        return table["entered"], hidden
    if (row, col) == (TOTAL, LEFT):
        return table["left"], hidden
    ps = table["profiles"]
    if row == col:
        return None, False
    return table["moves"][ps.index(row)][ps.index(col)], hidden


def published_cells(table: dict[str, Any]) -> list[tuple[str, str]]:
    ps = table["profiles"]
    return [*((a, b) for a in ps for b in ps if a != b), (ENTERED, TOTAL), (TOTAL, LEFT)]


def write_csv(table: dict[str, Any], path: Path) -> None:
    """tables/profile_changes.csv: one row per published number (a change of profile,
    then the entrants' and the leavers' totals); a hidden one has an empty `n` and
    `hidden` = c."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for r, c in published_cells(table):
            n, hidden = cell(table, r, c)
            w.writerow([r, c, "" if hidden else n, HIDDEN if hidden else ""])
