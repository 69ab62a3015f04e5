"""Issue 13 item 3: the releases published from one output folder are safe together
(definitions §6: the attacker holds every earlier release and compares them).

The oracle is tests/attacker.py's `attack_pair` (written apart from pipeline.suppression and
pipeline.releases): an exact integer program over both releases with the leavers and the
entrants of every joint class, knowing how many left and how many entered. Without the
policy the second release of a population with one citizen removed hands that citizen's
categories to it; with the policy (`pipeline.releases`) that release is not published, and
a release the policy does publish leaves the oracle nothing. The real-process test runs
`m3-profiles run` twice into one output folder.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from attacker import attack_pair, knowledge
from faults import cli, snapshot
from test_disclosure import REF, demo_release, without

from pipeline import changes, releases
from pipeline.config import Config
from pipeline.ingest import ingest
from pipeline.release import publish
from pipeline.segment import segment
from pipeline.warehouse import connect


def second_release(folder: Path, cfg: Config, rules):  # noqa: ANN001, ANN202
    con = connect()
    ingest(con, cfg, folder, "test")
    segment(con, cfg, rules)
    return con, publish(con, cfg)


@pytest.fixture(scope="module")
def first60(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("first60")
    con, rel, cfg, rules = demo_release(tmp / "a", 60, 1)
    return tmp, con, rel, cfg, rules, releases.snapshot(con, cfg, "20240630T000000-first")


def test_the_snapshot_gives_back_every_number(first60):
    """Where each citizen is counted gives back every number of the release (the check
    `snapshot` makes itself), and the record reads back as it was written."""
    tmp, con, rel, cfg, rules, snap = first60
    assert snap.tabulated == rel.tabulated
    assert sum(c.hidden for t in rel.tables for c in t.cells.values()) <= len(snap.hidden)
    assert snap.citizens.num_rows == con.execute(
        "select count(*) from marts.citizens where in_scope or (profile is not null and"
        " citizen_id in (select citizen_id from marts.cohort_status))").fetchone()[0]
    folder = tmp / "out"
    folder.mkdir()
    releases.write_record(snap, folder)
    store = tmp / "hist" / releases.STORE
    assert releases.append(store, folder / releases.RECORD)
    assert not releases.append(store, folder / releases.RECORD)  # once
    (back,) = releases.kept(store)
    assert back.as_json() == snap.as_json()
    assert back.citizens.equals(snap.citizens)
    assert dict(back.groups) == snap.groups
    # the memberships are in groups.parquet, not in release.json (format 2)
    (kept_dir,) = store.iterdir()
    assert sorted(p.name for p in kept_dir.iterdir()) == [
        "citizens.parquet", "groups.parquet", "release.json"]
    assert "groups" not in json.loads((kept_dir / "release.json").read_text("utf-8"))
    # a record of format 1 (memberships inside release.json) still reads back
    old = store / "20240101T000000Z-00000001"
    old.mkdir()
    shutil.copy(kept_dir / "citizens.parquet", old)
    (old / "release.json").write_text(json.dumps(
        {**snap.as_json(), "format": 1, "run_id": old.name, "groups": snap.groups}), "utf-8")
    first, _ = releases.kept(store)
    assert first.run_id == old.name and first.groups == snap.groups
    # config release_audit_window: only the latest ones are read (and audited against)
    assert [s.run_id for s in releases.kept(store, 1)] == [snap.run_id]
    assert [s.run_id for s in releases.kept(store, 5)] == [old.name, snap.run_id]
    # and only those are kept: the older one goes (a run appends, then prunes)
    assert releases.prune(store, 0) == []  # 0: every release is kept
    assert releases.prune(store, 1) == [old.name]
    assert sorted(p.name for p in store.iterdir()) == [snap.run_id]
    assert releases.prune(store, 1) == []
    # the same release again: nothing changed, nothing to learn
    verdict = releases.audit_chain([back], snap)
    assert verdict.safe and verdict.changed == 0


def test_one_citizen_removed_is_read_by_the_oracle_and_refused_by_the_audit(first60):
    """Before: the second release (one maybe-suitable citizen fewer) published beside the
    first hands the oracle that citizen's profile, course class, age band, time in M3 and
    ticks (flows fixed at 1). After: the audit across releases refuses it, naming the same
    profile total."""
    tmp, con, rel, cfg, rules, snap = first60
    first = knowledge(con, rel, cfg, rules, label="first")
    leaver = next(c for c in first.citizens if c["profile"] == "maybe_suitable")
    folder = without(tmp / "a", tmp / "b", leaver["id"])
    con2, rel2 = second_release(folder, cfg, rules)
    second = knowledge(con2, rel2, cfg, rules, label="second")
    p = leaver["profile"]
    a = attack_pair(first, second, hidden_numbers=False)  # the flows suffice here
    fixed = {(key, what, value) for _, key, what, value in a.fixed}
    assert (("profile_distribution", p, "total"), "left", 1) in fixed
    assert not a.safe
    verdict = releases.audit_chain([snap], releases.snapshot(con2, cfg, "20240701T000000-b"))
    assert not verdict.safe and verdict.changed == 1
    assert any(f"left 1/cell|profile_distribution|{p}|total': fixed at 1" in x
               for x in verdict.problems)


def test_a_month_later_with_four_citizens_changed_is_refused(first60):
    """The same export a month later (reference date 2024-07-31): four citizens change
    (time in M3, leaving M3). With so few, the coarsened column totals fix the flows (the
    entrants all have a known age and a course: the oracle finds the same, bench/
    disclosure.py --across compares the two on every pair): refused."""
    tmp, con, rel, cfg, rules, snap = first60
    later = Config(reference_date=dt.date(2024, 7, 31), min_cell=5)
    con2, rel2 = second_release(tmp / "a", later, rules)
    # before: both published, the oracle fixes flows of the second release
    k1 = knowledge(con, rel, cfg, rules, label="first")
    k2 = knowledge(con2, rel2, later, rules, label="later")
    a = attack_pair(k1, k2, hidden_numbers=False)
    fixed = {(key, what, v) for _, key, what, v in a.fixed}
    assert {f for f in fixed if not f[0][0].startswith("cohort_")} == {
        (("age_groups", "total", "all_ages"), "entered", 3),
        (("course_history", "total", "any_course"), "entered", 3),
        (("headline", "reviewed", "total"), "entered", 3),
        (("m3_duration", "total", "1y_plus"), "left", 3),
        (("m3_duration", "total", "under_1y"), "left", 2)}
    # the oracle holds both pages whole. The cohort (its date a month later too): two of
    # its citizens went off support at 12 months and two joined it; a mover is a citizen
    # whose membership changed (its tables' record or its cohort's), so the cohort has 3
    # leavers (those two and one whose table record changed), all in M3 at every horizon
    assert {f for f in fixed if f[0][0].startswith("cohort_")} == {
        ((f"cohort_{h}", "total", "m3"), "left", 3) for h in ("1m", "3m", "6m", "12m")}
    # after: refused
    second = releases.snapshot(con2, later, "20240731T000000-c")
    verdict = releases.audit_chain([snap], second)
    assert not verdict.safe and verdict.changed == 4
    assert any("cell|age_groups|total|all_ages': fixed at" in x for x in verdict.problems)
    # the profile changes table (issue 16) such a second page would print: nobody changed
    # profile, nobody entered, 2 left (hidden). The oracle, holding it with both pages,
    # derives the hidden 2 and reads both leavers' profile (physically ill): the flows'
    # volumes are known to it (the worst case), and with nobody new and no move the
    # entrants are the citizens who stayed and changed otherwise, so the leavers beyond
    # them are the ones who left. The report would publish neither (changes.decide: not
    # safe with the table, not without it)
    table = changes.suppress(changes.count(snap, second), 5)
    assert (table["entered"], table["left"], table["hidden"]) == (0, 2, [["total", "left"]])
    assert not any(any(row) for row in table["moves"])
    b = attack_pair(k1, k2, changes=table)
    assert ("later", "changes", "total", "left") in {f.key for f in b.findings if f.kind == "exact"}
    assert ("later", ("changes", "left", "physically_ill"), "left", 2) in b.fixed
    checked = changes.decide(second, [snap])
    assert not checked.verdict.safe and checked.table is None


# ---------------------------------------------------------------------------------------
# the cohort table (issue 16) across releases


def _shown_cohort(con) -> dict[tuple[str, str, str], int]:  # noqa: ANN001
    return {(h, p, s): n for h, p, s, n in con.execute(
        "select horizon, profile, status, n_published from marts.published_cohort"
        " where n_published is not null").fetchall()}


def test_a_cohort_citizen_out_of_scope_removed_is_refused(tmp_path):
    """Demo 150 seed 3: one citizen of the cohort (in M3 a year before the reference date,
    physically ill) has left scope (fleksjob/pension), so the profile tables and the
    headline do not count it. The same export without it: only the cohort table differs.
    Before (the record knew the tables' cells and the headline only): nothing changed for
    the audit, the release was published, and the cells shown in both that differ read
    that citizen's profile and its status at 1 and 3 months. After: the record keeps each
    citizen's cohort status per horizon, and the audit refuses it, naming the cohort."""
    con, rel, cfg, rules = demo_release(tmp_path / "a", 150, 3)
    cid, profile, path = con.execute(
        "select c.citizen_id, c.profile, string_agg(s.horizon || '=' || s.status, ';'"
        " order by s.day) from marts.cohort_status s join marts.citizens c using (citizen_id)"
        " where c.profile is not null and not c.in_scope group by all").fetchone()
    assert (cid, profile, path) == ("B0000085", "physically_ill",
                                    "1m=m3;3m=m3;6m=fleksjob_pension;12m=fleksjob_pension")
    con2, rel2 = second_release(without(tmp_path / "a", tmp_path / "b", cid), cfg, rules)
    # the tables count the same citizens (their true numbers are equal below); the joint
    # pattern may differ, since the cohort's numbers are in it
    assert rel.headline.in_scope == rel2.headline.in_scope
    # the attack: subtraction of the cells shown in both releases
    a, b = _shown_cohort(con), _shown_cohort(con2)
    read = {k: a[k] - b[k] for k in a.keys() & b.keys() if a[k] != b[k]}
    # at least: one citizen fewer in the cohort, in M3 at 1 and 3 months (the joint pattern
    # decides whether its profile's row is shown in both, and so read too)
    assert {**{(h, "total", "total"): 1 for h in ("1m", "3m", "6m", "12m")},
            **{(h, "total", "m3"): 1 for h in ("1m", "3m")}}.items() <= read.items()
    old = releases.snapshot(con, cfg, "20240630T000000-a")
    new = releases.snapshot(con2, cfg, "20240701T000000-b")
    assert old.citizens.num_rows == 140  # 139 in scope and the cohort citizen out of it
    assert new.citizens.num_rows == 139
    assert {k: v for k, v in old.values.items() if k.startswith("cell|") and "cohort" not in k} \
        == {k: v for k, v in new.values.items() if k.startswith("cell|") and "cohort" not in k}
    left, entered, changed = releases.flows(old, new)
    assert changed == 1 and entered == {}
    assert left == {releases.cell_name((f"cohort_{h}", r, c)): 1
                    for h, st in (("1m", "m3"), ("3m", "m3"), ("6m", "fleksjob_pension"),
                                  ("12m", "fleksjob_pension"))
                    for r in (profile, "total") for c in (st, "total")}
    verdict = releases.audit_chain([old], new)
    assert not verdict.safe and verdict.changed == 1
    assert any(f"left 1/cell|cohort_1m|{profile}|total': fixed at 1" in x
               for x in verdict.problems)


def test_a_record_without_the_cohort_is_not_comparable(first60):
    """A release kept before the cohort branch (its record has no cohort) cannot be audited
    with one that has it: the earlier release's cohort numbers are unknown, so it fails
    closed (no new release from that folder)."""
    *_, snap = first60
    before = releases.Snapshot.from_json(
        {**snap.as_json(), "structure": {k: v for k, v in snap.structure.items()
                                         if k != "cohort"}}, snap.citizens, snap.groups)
    verdict = releases.audit_chain([before], snap)
    assert not verdict.safe and not verdict.comparable
    assert "cohort" in verdict.problems[0]


# ---------------------------------------------------------------------------------------
# the policy with real processes


def _removed(src: Path, dst: Path) -> Path:
    """`src` without its first citizen."""
    first = (src / "citizens.csv").read_bytes().split(b"\n")[1].split(b";")[0]
    dst.mkdir()
    for name in ("citizens.csv", "episodes.csv"):
        lines = (src / name).read_bytes().split(b"\n")
        dst.joinpath(name).write_bytes(
            b"\n".join(x for x in lines if not x.startswith(first + b";")))
    return dst


def test_two_runs_into_one_folder_keep_the_first_release(tmp_path):
    """A run killed after its output is in place but before its release is kept leaves the
    record beside it; the next run keeps it first. A run whose release would let the two be
    compared (one citizen fewer) exits 0, refreshes the internal files, keeps publish/
    byte for byte, and says so on the terminal, in run.json, run.log and the metrics."""
    from pipeline.demo import write_demo

    write_demo(tmp_path / "in1", n=60, seed=1, reference_date=REF)
    in2 = _removed(tmp_path / "in1", tmp_path / "in2")
    out = tmp_path / "out"
    store = tmp_path / "out.history" / releases.STORE
    config = tmp_path / "m3.toml"
    config.write_text(f'metrics_file = "{tmp_path / "m3.prom"}"\n', encoding="utf-8")
    args = ("run", "--out", str(out), "--reference-date", REF.isoformat(), "--config",
            str(config), "--input")

    killed = cli(*args, str(tmp_path / "in1"), env={"M3_FAULT_AT": "history:KILL"})
    assert killed.returncode != 0
    assert (out / releases.RECORD).is_dir() and not store.exists()

    first = cli(*args, str(tmp_path / "in1"))
    assert first.returncode == 0, first.stderr
    assert "added the previous run's release" in first.stdout + first.stderr
    # the killed run's release; this one is the same release again: no second record
    assert len(releases.kept(store)) == 1
    published = snapshot(out / "publish")
    citizens_before = (out / "citizens.parquet").read_bytes()

    second = cli(*args, str(in2))
    assert second.returncode == 0, second.stderr
    line = ("No new release: 1 citizen changed since the release of 2024-06-30; its tables "
            "stand (use a new output folder for a separate release).")
    assert line in " ".join(second.stdout.split())
    assert "Headline as published" not in second.stdout  # none of its numbers is printed
    assert snapshot(out / "publish") == published
    assert (out / "citizens.parquet").read_bytes() != citizens_before  # refreshed
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    assert manifest["outcome"] == "success"
    assert manifest["release"]["published"] is False
    assert manifest["release"]["changed"] == 1
    assert line in (out / "run.log").read_text("utf-8")
    assert "m3_profiles_release_published 0" in (tmp_path / "m3.prom").read_text("utf-8")
    assert len(releases.kept(store)) == 1
    assert not (out / releases.RECORD).exists()
