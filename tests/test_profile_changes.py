"""Issue 16 item 2: "profile changes since the previous release", a published table of the
release (pipeline.changes), audited with every earlier release (pipeline.releases
.audit_chain; docs/disclosure.md §2.8).

Hand-made releases of one table (the profile totals) with hand-counted changes, the exact
published cells and CSV; an oracle of this file (`transitions_attack`: an exact integer
program over the citizens' transitions, written apart from pipeline.releases) that agrees
with the audit; and two real runs into one output folder on the demo series.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from faults import cli
from scipy.optimize import Bounds, LinearConstraint, milp

from pipeline import changes, releases
from pipeline.suppression import TOTAL

PD = "profile_distribution"
PROFILES = ("a", "b", "c")
NONE = None


def _snapshot(run_id: str, day: str, citizens: dict[str, str], hidden=()) -> releases.Snapshot:
    """A release of one table: the profile totals, counted from `citizens` (id -> profile)."""
    values = {releases.cell_name((PD, p, TOTAL)): 0 for p in (*PROFILES, TOTAL)}
    groups, rows = {}, []
    for cid, p in sorted(citizens.items()):
        names = sorted([releases.cell_name((PD, p, TOTAL)), releases.cell_name((PD, TOTAL, TOTAL))])
        for q in names:
            values[q] += 1
        sig = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        groups[sig] = names
        rows.append((cid, sig))
    table = pa.table({"citizen_id": [c for c, _ in rows], "sig": [s for _, s in rows]})
    structure = {"tables": [[PD, "profile", False]], "min_cell": 5}
    meta = [{"id": PD, "row_dim": "profile", "rows": list(PROFILES), "cols": [],
             "multi_response": False}]
    return releases.Snapshot(run_id, day, structure, meta, values, [], [],
                             sorted(releases.cell_name((PD, p, TOTAL)) for p in hidden),
                             groups, table)


def _nights(moves: dict[tuple[str, str], int], stay: dict[str, int], entered: dict[str, int],
            left: dict[str, int]) -> tuple[dict[str, str], dict[str, str]]:
    """Two populations: `stay[A]` citizens keep A, `moves[(A, B)]` change A -> B,
    `entered[B]` are new with B, `left[A]` leave."""
    old, new = {}, {}
    ids = (f"C{i:04d}" for i in itertools.count())
    for a, n in stay.items():
        for _ in range(n):
            cid = next(ids)
            old[cid] = new[cid] = a
    for (a, b), n in moves.items():
        for _ in range(n):
            cid = next(ids)
            old[cid], new[cid] = a, b
    for b, n in entered.items():
        for _ in range(n):
            new[next(ids)] = b
    for a, n in left.items():
        for _ in range(n):
            old[next(ids)] = a
    return old, new


# the hand-made nights: 45 citizens, then 48
MOVES = {("a", "b"): 6, ("a", "c"): 1, ("b", "a"): 5}
STAY = {"a": 12, "b": 10, "c": 10}
ENTERED = {"a": 3, "c": 1}
LEFT = {"a": 1}


@pytest.fixture(scope="module")
def hand():
    old_c, new_c = _nights(MOVES, STAY, ENTERED, LEFT)
    old = _snapshot("20250531T000000-a", "2025-05-31", old_c)
    new = _snapshot("20250630T000000-b", "2025-06-30", new_c)
    return old, new


def test_the_hand_made_changes_and_their_published_cells(hand, tmp_path):
    old, new = hand
    # hand-counted: a 20 -> 20 (12 stay, 5 from b, 3 new), b 15 -> 16, c 10 -> 12
    assert [old.values[releases.cell_name((PD, p, TOTAL))] for p in (*PROFILES, TOTAL)] == \
        [20, 15, 10, 45]
    assert [new.values[releases.cell_name((PD, p, TOTAL))] for p in (*PROFILES, TOTAL)] == \
        [20, 16, 12, 48]
    table = changes.count(old, new)
    assert table["profiles"] == ["a", "b", "c"]
    assert table["moves"] == [[0, 6, 1], [5, 0, 0], [0, 0, 0]]
    assert (table["entered"], table["left"]) == (4, 1)
    assert table["unpublished"] == {"entered": {"a": 3, "b": 0, "c": 1},
                                    "left": {"a": 1, "b": 0, "c": 0}}
    table = changes.suppress(table, 5)
    assert table["hidden"] == [["a", "c"], ["entered", "total"], ["total", "left"]]
    changes.write_csv(table, tmp_path / "profile_changes.csv")
    with open(tmp_path / "profile_changes.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["from_profile", "to_profile", "n", "hidden"],
        ["a", "b", "6", ""], ["a", "c", "", "c"], ["b", "a", "5", ""], ["b", "c", "0", ""],
        ["c", "a", "0", ""], ["c", "b", "0", ""],
        ["entered", "total", "", "c"], ["total", "left", "", "c"]]
    # the diagonal (kept the profile) is not published
    assert changes.cell(table, "a", "a") == (None, False)


def test_hand_made_the_audit_withholds_what_the_oracle_reads(hand):
    """Without the table the pair is safe (audit and oracle). With it, the attacker who
    knows how many citizens changed (13 left a profile total, 16 entered one) reads the
    hidden a -> c (1) and the leavers (1): 6 + 5 shown moves leave room for exactly 2 more,
    each hidden number at least 1; then the entrants (4 = 48 - 45 + 1). The audit refuses
    exactly those three; the oracle finds the same."""
    old, new = hand
    table = changes.suppress(changes.count(old, new), 5)
    assert releases.audit_chain([old], new).safe
    verdict = releases.audit_chain([old], releases.with_changes(new, table))
    assert not verdict.safe and verdict.changed == 17
    assert any("changes[a, c]" in p for p in verdict.problems)
    old_c, new_c = _nights(MOVES, STAY, ENTERED, LEFT)
    assert transitions_attack(old_c, new_c, None) == {}
    read = transitions_attack(old_c, new_c, table)
    assert read == {("a", "c"): (1, 1), ("entered", "total"): (4, 4), ("total", "left"): (1, 1)}
    refused = {tuple(re.search(r"changes\[(\w+), (\w+)\]", p).groups())
               for p in verdict.problems}
    assert refused == set(read)


def test_hand_made_a_table_the_audit_publishes_tells_the_oracle_nothing():
    """More leavers and entrants (every published number 0 or at least 5): the table is
    published, and neither the audit nor the oracle finds anything."""
    moves = {("a", "b"): 6, ("b", "a"): 5, ("c", "a"): 7}
    stay = {"a": 12, "b": 10, "c": 10}
    entered, left = {"a": 3, "b": 2, "c": 4}, {"a": 2, "b": 3, "c": 2}
    old_c, new_c = _nights(moves, stay, entered, left)
    old = _snapshot("20250531T000000-a", "2025-05-31", old_c)
    new = _snapshot("20250630T000000-b", "2025-06-30", new_c)
    table = changes.suppress(changes.count(old, new), 5)
    assert table["hidden"] == []
    assert (table["entered"], table["left"]) == (9, 7)
    assert releases.audit_chain([old], releases.with_changes(new, table)).safe
    assert transitions_attack(old_c, new_c, table) == {}


def test_the_report_decides_with_or_without_the_table_and_the_page_says_so(hand):
    """`changes.decide` (what the report calls before it writes): the hand-made pair passes
    only without its table, so it is published without it and the page's section says why;
    a first release says there is no earlier one."""
    import datetime as dt

    from pipeline.config import Config
    from pipeline.labels import Labels
    from pipeline.page import _changes_part

    old, new = hand
    checked = changes.decide(new, [old])
    assert checked.table is None and checked.withheld and checked.verdict.safe
    assert checked.snapshot.changes is None and checked.previous == "2025-05-31"
    lb = Labels("da", None)
    cfg = Config(reference_date=dt.date(2025, 6, 30))
    part = _changes_part(lb, cfg, checked)
    assert part["rows"] is None
    assert part["note"] == (
        "Ændringerne siden udgivelsen pr. 31. maj 2025 vises ikke: sammen med den udgivelse"
        " ville de afsløre enkelte borgeres ændringer. Tabellerne ovenfor er udgivet uden dem.")
    first = changes.decide(old, [])
    assert first.table is None and not first.withheld and first.previous is None
    assert _changes_part(Labels("en", None), cfg, first)["note"] == (
        "There is no earlier release from this output folder to compare with; the changes"
        " are shown from the next release on.")


def transitions_attack(old: dict[str, str], new: dict[str, str],
                       table: dict | None, min_cell: int = 5) -> dict:
    """An oracle of this file, independent of pipeline.releases: one whole variable per
    transition A -> B of a citizen (A, B a profile or None: not in the tables), the
    attacker knowing both releases' profile totals, how many citizens changed (left a
    profile, entered one), and the published changes (shown: fixed; hidden: >= 1). Returns
    the hidden published numbers it fixes or proves small: key -> (lowest, highest)."""
    states = (*PROFILES, NONE)
    pairs = [(a, b) for a in states for b in states if (a, b) != (NONE, NONE)]
    idx = {p: i for i, p in enumerate(pairs)}
    eq, rhs = [], []

    def row(terms: dict[tuple, int], value: float) -> None:
        r = np.zeros(len(pairs))
        for k, c in terms.items():
            r[idx[k]] += c
        eq.append(r)
        rhs.append(value)

    count = {}
    for cid in old.keys() | new.keys():
        k = (old.get(cid), new.get(cid))
        count[k] = count.get(k, 0) + 1
    for p in PROFILES:
        row({(p, b): 1 for b in states}, sum(1 for v in old.values() if v == p))
        row({(a, p): 1 for a in states}, sum(1 for v in new.values() if v == p))
    changed = {k: 1 for k in pairs if k[0] != k[1]}
    row({k: 1 for k in changed if k[0] is not None}, sum(
        n for k, n in count.items() if k[0] != k[1] and k[0] is not None))
    row({k: 1 for k in changed if k[1] is not None}, sum(
        n for k, n in count.items() if k[0] != k[1] and k[1] is not None))
    hidden = {}
    if table is not None:
        published = {(a, b): {(a, b): 1} for a in PROFILES for b in PROFILES if a != b}
        published[("entered", TOTAL)] = {(NONE, b): 1 for b in PROFILES}
        published[(TOTAL, "left")] = {(a, NONE): 1 for a in PROFILES}
        for key, terms in published.items():
            n, is_hidden = changes.cell(table, *key)
            if is_hidden:
                hidden[key] = terms
            else:
                row(terms, n)
    a_eq = np.array(eq)
    b_eq = np.array(rhs, dtype=float)
    found = {}
    for key, terms in hidden.items():
        c = np.zeros(len(pairs))
        for k, v in terms.items():
            c[idx[k]] = v
        cons = [LinearConstraint(a_eq, b_eq, b_eq)]
        cons += [LinearConstraint(np.array([[1.0 if k in t else 0.0 for k in pairs]]), 1,
                                  np.inf) for t in hidden.values()]  # hidden: >= 1
        ends = []
        for sign in (1, -1):
            res = milp(sign * c, constraints=cons, integrality=np.ones(len(pairs)),
                       bounds=Bounds(0, np.inf))
            assert res.status == 0, res.message
            ends.append(round(sign * res.fun))
        lo, hi = ends
        if lo == hi or hi < min_cell:
            found[key] = (lo, hi)
    return found


# ---------------------------------------------------------------------------------------
# two real runs into one output folder


def test_two_nights_of_the_demo_series_publish_the_changes(tmp_path):
    """`m3-profiles demo --series 2` and `m3-profiles run` twice into one --out: the first
    page says there is no earlier release; the second publishes the table (page, CSV,
    workbook sheet), and its record keeps it."""
    import openpyxl

    series = tmp_path / "series"
    made = cli("demo", "--out", str(series), "--citizens", str(SERIES_CITIZENS), "--seed",
               str(SERIES_SEED), "--series", "2", "--every", "30", "--reference-date",
               "2025-06-30")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    nights = sorted(p.name for p in series.iterdir())
    assert nights == ["2025-05-31", "2025-06-30"]
    first = cli("run", "--input", str(series / nights[0]), "--out", str(out),
                "--reference-date", nights[0])
    assert first.returncode == 0, first.stderr
    page = (out / "publish" / "report.html").read_text("utf-8")
    assert "Der er ingen tidligere udgivelse fra denne outputmappe" in page
    assert not (out / "publish" / "tables" / "profile_changes.csv").exists()
    second = cli("run", "--input", str(series / nights[1]), "--out", str(out),
                 "--reference-date", nights[1])
    assert second.returncode == 0, second.stderr
    assert "New release published" in second.stdout
    page = (out / "publish" / "report.html").read_text("utf-8")
    assert "Borgere, der har skiftet profil mellem udgivelsen pr. 31. maj 2025" in page
    with open(out / "publish" / "tables" / "profile_changes.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept = releases.kept(tmp_path / "out.history" / releases.STORE)
    assert len(kept) == 2 and kept[-1].changes is not None
    table = kept[-1].changes
    assert table["previous_run_id"] == kept[0].run_id
    assert [(r["from_profile"], r["to_profile"]) for r in rows] == \
        changes.published_cells(table)
    for r in rows:
        n, hidden = changes.cell(table, r["from_profile"], r["to_profile"])
        assert (r["n"], r["hidden"]) == (("", "c") if hidden else (str(n), ""))
        assert hidden or not 0 < n < 5
    wb = openpyxl.load_workbook(out / "publish" / "tables.xlsx", read_only=True)
    assert "Profilændringer" in wb.sheetnames
    assert (Path(out) / "publish" / "tables" / "profile_changes.csv").stat().st_size > 0


SERIES_CITIZENS = 600
SERIES_SEED = 7
