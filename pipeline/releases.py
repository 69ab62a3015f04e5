"""The releases published from one output folder, and the audit of a new release against
them (definitions §6: the attacker holds every earlier release; issue 13 item 3;
docs/disclosure.md §2).

A release is kept as a *record*: what it showed (the tables' structure, every number's true
value, the hidden cells, the relations the rules imply) and, per pseudonymised citizen in
scope, where that citizen is counted in it (the cells, rule class and headline numbers:
`membership_parts`, stored once per distinct membership, `sig`). Two records of the same structure
give the flows between them exactly: a citizen whose membership changed is a leaver of the
old release and an entrant of the new one.

The audit (`audit_chain`) models every kept release and the new one together, as
`pipeline.suppression` models one: each release's numbers (shown, or hidden and >= 1) and
relations; between consecutive releases, per number q, new[q] = old[q] - L[q] + E[q], with
the leavers L and the entrants E unpublished, whole, each satisfying every relation a
population satisfies (the old release's for L, the new one's for E), L <= old and E <= new,
and the flow volumes (how many tabulated citizens left, how many entered) known to the
attacker (the worst case: "one citizen left"). It fails when a hidden number of any release
is fixed, a small one is proven small, or a published number's flow (in or out) is fixed at
a value from 1 to min_cell - 1 (one citizen's categories read from the differences).

Reads: the report's marts (`pipeline.release`) after `publish`; the store. Writes: a record
folder `release-record/` into the run's work folder (`write_record`), and the store
`<history folder>/releases/<run id>/` (`append`: copied beside its place, fsynced, renamed,
as `pipeline.history.append`; a run killed before it is appended by the next run). Per
person and unsuppressed: internal, never published.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from pipeline import history
from pipeline.config import Config
from pipeline.errors import ReportError
from pipeline.suppression import TOTAL, Relations, Table, audit

STORE = "releases"  # in the history folder
RECORD = history.RELEASE_RECORD  # in the output folder: the record of the release published
_JSON = "release.json"
_CITIZENS = "citizens.parquet"
_GROUPS = "groups.parquet"
# 2: the memberships in groups.parquet (one row per distinct membership, its numbers
# dictionary-encoded by Parquet), not in release.json: as JSON lists of names they were
# 600 MB per release at 1,000,000 citizens (370,000 distinct memberships)
FORMAT = 2

# definitions §5: the tables whose columns are the values of one category of the citizen
_CATEGORY = {"course_history": "course_class", "age_groups": "age_band",
             "m3_duration": "m3_band"}
_ROW = {"profile": "profile", "base_profile": "base_profile"}
_HEADLINE = "headline"
_M3_OVER_1Y_BANDS = ("1_to_2y", "2y_plus")


def cell_name(key: Sequence[str]) -> str:
    return "cell|" + "|".join(key)


def _q(name: str) -> str:
    return "q|" + name


@dataclass
class Snapshot:
    """One release as the audit across releases needs it (see the module docstring)."""

    run_id: str
    reference_date: str
    structure: dict[str, Any]  # what must agree for two releases to be compared
    tables: list[dict[str, Any]]  # id, row_dim, rows, cols, multi_response
    values: dict[str, int]  # every number of the release and unpublished quantity
    equal: list[list[tuple[str, int]]]
    at_most: list[list[tuple[str, int]]]
    hidden: list[str]
    groups: Mapping[str, list[str]]  # membership signature -> quantities counted in
    citizens: pa.Table | None = field(default=None, repr=False)  # citizen_id, sig
    # the profile changes since the release before it, when published (pipeline.changes)
    changes: dict[str, Any] | None = None

    @property
    def tabulated(self) -> int:
        return self.values.get(cell_name(("profile_distribution", TOTAL, TOTAL)), 0)

    def as_json(self) -> dict[str, Any]:
        """Everything but the memberships (`groups_table`) and the citizens."""
        return {"format": FORMAT, "run_id": self.run_id, "reference_date": self.reference_date,
                "structure": self.structure, "tables": self.tables, "values": self.values,
                "equal": self.equal, "at_most": self.at_most, "hidden": self.hidden,
                **({"changes": self.changes} if self.changes is not None else {})}

    def groups_table(self) -> pa.Table:
        if isinstance(self.groups, _Groups):  # as read from the store: no round trip
            return self.groups.table
        return pa.table({"sig": pa.array(list(self.groups), pa.string()),
                         "numbers": pa.array([list(v) for v in self.groups.values()],
                                             pa.list_(pa.string()))})

    @classmethod
    def from_json(cls, d: Mapping[str, Any], citizens: pa.Table | None,
                  groups: Mapping[str, list[str]] | None = None) -> Snapshot:
        """`groups`: read from groups.parquet (format 2); format 1 kept them in `d`."""
        if groups is None:
            groups = {k: list(v) for k, v in d["groups"].items()}
        return cls(d["run_id"], d["reference_date"], d["structure"], d["tables"],
                   {k: int(v) for k, v in d["values"].items()},
                   [[(r, int(c)) for r, c in rel] for rel in d["equal"]],
                   [[(r, int(c)) for r, c in rel] for rel in d["at_most"]],
                   list(d["hidden"]), groups, citizens, d.get("changes"))


def with_changes(snap: Snapshot, table: dict[str, Any]) -> Snapshot:
    """`snap` publishing the profile changes since the release before it (`table`:
    `pipeline.changes.suppress`)."""
    import dataclasses

    return dataclasses.replace(snap, changes=table)


class _Groups(Mapping[str, list[str]]):
    """groups.parquet, read lazily: a membership becomes a Python list only when asked for
    (the flows ask only for the memberships of citizens who changed)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._numbers = table.column("numbers")
        self._row = {s: i for i, s in enumerate(table.column("sig").to_pylist())}

    def __getitem__(self, sig: str) -> list[str]:
        return self._numbers[self._row[sig]].as_py()

    def __iter__(self) -> Any:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


class NotComparable(Exception):
    """The release cannot be modelled per citizen (a table this module does not know)."""


# ---------------------------------------------------------------------------------------
# the snapshot of the release just counted


def snapshot(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str) -> Snapshot:
    """The release in the warehouse (after `pipeline.release.publish`), with where each
    citizen in scope is counted; every number given back exactly by the citizens, or
    `NotComparable`."""
    from pipeline.coarsening import release_merges
    from pipeline.movement import cohort_relations
    from pipeline.release import counted_tables, linking, relations

    cfg = cfg.resolved()
    tables = counted_tables(con)
    merges = release_merges(con)
    # the cohort table (issue 16) is a part of the release as release.suppressed_cells_model
    # counts it: its numbers and relations, and per citizen its cohort status per horizon
    known = cohort_relations(con, tables, relations(con, cfg, tables, merges), cfg)
    link = linking(con, cfg, tables, merges)
    values: dict[str, int] = {}
    meta = []
    for t in tables:
        meta.append({"id": t.id, "row_dim": t.row_dim, "rows": list(t.rows),
                     "cols": list(t.cols), "multi_response": t.multi_response})
        for i, r in enumerate((*t.rows, TOTAL)):
            for j, c in enumerate((*t.cols, TOTAL)):
                values[cell_name((t.id, r, c))] = int(t.counts[i, j])
    for key, v in known.cells.items():
        values[cell_name(key)] = int(v)
    for name, v in known.unpublished.items():
        values[_q(name)] = int(v)

    def ref(r: Any) -> str:
        return _q(r) if isinstance(r, str) else cell_name(r)

    equal = [sorted((ref(r), int(c)) for r, c in rel.items()) for rel in known.equal]
    at_most = [sorted((ref(r), int(c)) for r, c in rel.items()) for rel in known.at_most]
    # every number hidden is a number of the record: one it did not know (a new kind of
    # table) could not be audited across releases, so the release is not kept
    hidden = sorted(cell_name(k) for k in con.execute(
        'select table_id, "row", col from marts.suppressed_cells').fetchall())
    unknown = [n for n in hidden if n not in values]
    if unknown:
        raise NotComparable(f"hidden numbers the record does not know ({unknown[:3]})")
    structure = {
        "rules_sha256": link.rules.sha256,
        "dims": list(link.dims),
        "merges": {t: {c: list(fs) for c, fs in sorted(m.items())}
                   for t, m in sorted(merges.items())},
        "tables": [[m["id"], m["row_dim"], m["multi_response"]] for m in meta],
        "age_bands": list(cfg.age_bands),
        "complex_case_departments": cfg.complex_case_departments,
        "min_cell": cfg.min_cell,
        # a record before the cohort branch left the cohort table out: not comparable
        "cohort": {"months": cfg.cohort_months, "horizons": cohort_horizons(con)},
    }
    flags = sorted({f for b in link.blocks for f in b.flags} | set(link.linked))
    flag_cols = "".join(f', coalesce(f."{f}", false) as "{f}"' for f in flags)
    attrs = ["in_scope", "tabulated", "unreviewed", "source", "profile", "base_profile",
             "course_class", "age_band", "m3_band", "complex", "cohort", *flags]
    con.execute("drop table if exists temp.release_members")
    con.execute(f"""
        create temp table release_members as
        select c.citizen_id, c.in_scope, c.tabulated,
               c.profile_source in ('uncertain', 'unreviewed') as unreviewed,
               c.profile_source as source, c.profile, c.base_profile, c.course_class,
               coalesce(c.age_band, 'unknown') as age_band, c.m3_band,
               coalesce(c.complex_case, false) as complex, k.cohort{flag_cols},
               dense_rank() over (order by {", ".join(f'"{a}"' for a in attrs)}) as grp
        from marts.citizens c left join marts.case_flags f using (citizen_id)
        left join ({_COHORT_SQL}) k using (citizen_id)
        where c.in_scope or k.cohort is not null""")
    picked = ", ".join(f'any_value("{a}")' for a in attrs)
    group_rows = con.execute(
        f"select grp, {picked}, count(*) from temp.release_members group by grp"
        " order by grp").fetchall()
    groups: dict[str, list[str]] = {}
    sig_of: dict[int, str] = {}
    counted: dict[str, int] = {}
    cache: dict[tuple, list[str]] = {}
    weight: dict[tuple, int] = {}  # citizens per part (each counted in its numbers once)
    for grp, *vals, n in group_rows:
        parts = membership_parts(dict(zip(attrs, vals, strict=True)), meta, merges, link,
                                 values, cache)
        every = [q for _, part in parts for q in part]
        names = sorted(set(every))
        sig = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        groups[sig] = names
        sig_of[int(grp)] = sig
        if len(names) == len(every):
            for key, _ in parts:
                weight[key] = weight.get(key, 0) + int(n)
        else:  # a number named by two parts is counted once
            for q in names:
                counted[q] = counted.get(q, 0) + int(n)
    for key, k in weight.items():
        for q in cache[key]:
            counted[q] = counted.get(q, 0) + k
    wrong = sorted(q for q in set(values) | set(counted) if values.get(q, 0) != counted.get(q, 0))
    if wrong:
        raise NotComparable("the citizens do not give back the release's numbers "
                            f"({len(wrong)}, e.g. {wrong[:3]})")
    mapping = pa.table({"grp": list(sig_of), "sig": list(sig_of.values())})
    con.register("release_sig", mapping)
    try:
        citizens = con.sql(
            "select citizen_id, sig from temp.release_members join release_sig using (grp)"
            " order by citizen_id").to_arrow_table()
    finally:
        con.unregister("release_sig")
        con.execute("drop table if exists temp.release_members")
    return Snapshot(run_id, cfg.reference_date.isoformat(), structure, meta, values, equal,
                    at_most, hidden, groups, citizens)


# per citizen of the cohort (definitions §8.2: in M3 on the cohort date, with a profile), its
# status per horizon as "horizon=status;..." (the horizons in day order); null: not in it
_COHORT_SQL = """
    select s.citizen_id, string_agg(s.horizon || '=' || s.status, ';' order by s.day)
        as cohort
    from marts.cohort_status as s join marts.citizens as c using (citizen_id)
    where c.profile is not null
    group by s.citizen_id"""


def cohort_horizons(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [h for h, _ in con.execute(
        "select distinct horizon, horizon_order from marts.cohort_cells"
        " order by horizon_order").fetchall()]


def cohort_membership(a: Mapping[str, Any]) -> list[str]:
    """The cohort table's numbers (marts.cohort_cells: table `cohort_<horizon>`, row the
    profile, column the status) one citizen is counted in: per horizon its status and the
    cohort, in its profile's row and in the total row."""
    out: list[str] = []
    for part in (a.get("cohort") or "").split(";") if a.get("cohort") else ():
        horizon, status = part.split("=", 1)
        tid = f"cohort_{horizon}"
        for r in (a["profile"], TOTAL):
            out += [cell_name((tid, r, status)), cell_name((tid, r, TOTAL))]
    return out


def membership_parts(a: Mapping[str, Any], tables: Sequence[Mapping[str, Any]],
                     merges: Mapping[str, Mapping[str, Sequence[str]]], link: Any,
                     values: Mapping[str, int], cache: dict[tuple, list[str]]
                     ) -> list[tuple[tuple, list[str]]]:
    """The numbers of the release one citizen (its attributes `a`) is counted in, in
    parts, each (key, its numbers): the cohort's, the headline's and the rule class's, one
    per table. A part depends on a few of the attributes only (its
    key), so over a release's distinct memberships (370,000 at 1,000,000 citizens) each is
    built once per key from `cache` (a few hundred keys), not once per membership."""
    from pipeline.release import _NONE_COLUMN

    out: list[tuple[tuple, list[str]]] = []

    def part(key: tuple, build: Any) -> None:
        names = cache.get(key)
        if names is None:
            names = cache[key] = build()
        out.append((key, names))

    part(("cohort", a.get("cohort") or None, a["profile"]), lambda: cohort_membership(a))
    if not a["in_scope"]:
        return out
    dims = {"profile": a["profile"], "base_profile": a["base_profile"],
            "complex": bool(a["complex"]), "age_band": a["age_band"]}
    linked = tuple(dims.get(d, a.get(d)) for d in link.dims)
    part(("headline", bool(a["unreviewed"]), a["source"], bool(a["tabulated"]), dims["complex"],
          linked), lambda: _headline_membership(a, link, linked))
    if not a["tabulated"]:
        return out
    for t in tables:
        tid, row_dim = t["id"], t["row_dim"]
        if row_dim not in _ROW:
            raise NotComparable(f"table {tid!r}: rows {row_dim!r} are not known per citizen")
        if tid in _CATEGORY:
            what: tuple = (a[_CATEGORY[tid]],)
        elif t["multi_response"]:
            merged = merges.get(tid, {})
            none_col = _NONE_COLUMN.get(tid)
            what = tuple(bool(a[f]) for c in t["cols"] if c != none_col
                         for f in merged.get(c, (c,)))
        elif not t["cols"]:
            what = ()
        else:
            raise NotComparable(f"table {tid!r} is not known per citizen")
        part(("table", tid, a[_ROW[row_dim]], what),
             lambda t=t: _table_membership(a, t, merges, values))
    return out


def _headline_membership(a: Mapping[str, Any], link: Any, linked: tuple) -> list[str]:
    """The headline's numbers and the rule class of a citizen in scope."""
    from pipeline.release import class_name

    out = [cell_name((_HEADLINE, "in_scope", TOTAL))]
    if a["unreviewed"]:
        out.append(cell_name((_HEADLINE, "unreviewed", TOTAL)))
        # issue 15: the headline's split (release._source_relations)
        out.append(cell_name((_HEADLINE, "uncertain", TOTAL)) if a["source"] == "uncertain"
                   else _q("not reviewed, no model's profile"))
    if not a["tabulated"]:
        if not a["unreviewed"]:
            out.append(_q("in scope without a profile"))
        return out
    out.append(cell_name((_HEADLINE, "model" if a["source"] == "model" else "reviewed", TOTAL)))
    out.append(cell_name((_HEADLINE, "complex_case" if a["complex"] else "not_complex_case",
                          TOTAL)))
    out.append(_q(class_name(list(linked))))
    return out


def _table_membership(a: Mapping[str, Any], t: Mapping[str, Any],
                      merges: Mapping[str, Mapping[str, Sequence[str]]],
                      values: Mapping[str, int]) -> list[str]:
    """One table's numbers a tabulated citizen is counted in."""
    from pipeline.release import _NONE_COLUMN

    tid = t["id"]
    r = a[_ROW[t["row_dim"]]]
    out = [cell_name((tid, r, TOTAL)), cell_name((tid, TOTAL, TOTAL))]
    cols = t["cols"]
    merged = merges.get(tid, {})
    if not cols:
        return out
    if tid in _CATEGORY:
        v = a[_CATEGORY[tid]]
        in_col = {f: c for c, fs in merged.items() for f in fs}
        col = in_col.get(v, v)
        if col in cols:
            out += [cell_name((tid, r, col)), cell_name((tid, TOTAL, col))]
        if tid == "m3_duration" and v in _M3_OVER_1Y_BANDS:
            out.append(cell_name((_HEADLINE, "m3_over_1y", TOTAL)))
            fine = set(merged.get(col, (col,)))
            if not fine <= set(_M3_OVER_1Y_BANDS):
                out.append(_q("more than a year in M3, in merged columns"))
        return out
    none_col = _NONE_COLUMN.get(tid)
    ticks = [c for c in cols if c != none_col]
    any_tick = False
    for c in ticks:
        if any(bool(a[f]) for f in merged.get(c, (c,))):
            any_tick = True
            out += [cell_name((tid, r, c)), cell_name((tid, TOTAL, c))]
    if none_col is not None:
        if not any_tick:
            out += [cell_name((tid, r, none_col)), cell_name((tid, TOTAL, none_col))]
        elif _q(f"at least one tick|{tid}|{r}") in values:
            out.append(_q(f"at least one tick|{tid}|{r}"))
    return out


# ---------------------------------------------------------------------------------------
# the record and the store


def write_record(snap: Snapshot, folder: Path) -> Path:
    """The record of a published release, in the run's work folder (renamed into the store
    after the run is in place: `append`)."""
    target = folder / RECORD
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    (target / _JSON).write_text(json.dumps(snap.as_json(), sort_keys=True) + "\n", "utf-8")
    import pyarrow.parquet as pq

    pq.write_table(snap.citizens, target / _CITIZENS)
    pq.write_table(snap.groups_table(), target / _GROUPS)
    return target


def store(cfg: Config, out_dir: Path) -> Path:
    """The store of the releases published from `out_dir`, in its history folder."""
    return history.folder(cfg, out_dir) / STORE


def append(store_dir: Path, record: Path) -> bool:
    """Add `record` (a folder from `write_record`) to the store unless it is there, then
    remove it (the store holds it); True if added. Atomic: copied beside its place,
    fsynced, renamed."""
    if not all((record / n).is_file() for n in (_JSON, _CITIZENS, _GROUPS)):
        return False
    run_id = json.loads((record / _JSON).read_text("utf-8"))["run_id"]
    hist = store_dir.parent
    history.check(hist)
    target = store_dir / run_id
    if target.exists():
        shutil.rmtree(record, ignore_errors=True)
        return False
    store_dir.mkdir(parents=True, exist_ok=True)
    (hist / history.MARKER).touch()
    for stale in store_dir.glob(".*.tmp-*"):  # a copy a killed run left (under the lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = store_dir / f".{run_id}.tmp-{os.getpid()}"
    try:
        tmp.mkdir()
        for name in (_JSON, _CITIZENS, _GROUPS):
            with open(record / name, "rb") as src, open(tmp / name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
        _fsync_dir(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(store_dir)
    shutil.rmtree(record, ignore_errors=True)
    return True


def prune(store_dir: Path, window: int) -> list[str]:
    """Remove the releases no audit reads any more: all but the latest `window` (0 keeps
    every one). Per-person records are kept no longer than they are needed (and the store
    would grow by a release most nights: 3.6 MB each at 100,000 citizens). Each goes by a
    rename to a hidden name first, so a run killed midway leaves a folder the next `append`
    removes, never half a release that `kept` would read. Returns the run ids removed."""
    if window <= 0:
        return []
    gone = _kept_dirs(store_dir)[:-window]
    for d in gone:
        hidden = d.with_name(f".{d.name}.tmp-prune")
        os.replace(d, hidden)
        shutil.rmtree(hidden, ignore_errors=True)
    if gone:
        _fsync_dir(store_dir)
    return [d.name for d in gone]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _kept_dirs(store_dir: Path) -> list[Path]:
    """The releases kept, in the order published (run ids begin with their start time)."""
    return [d for d in (sorted(store_dir.iterdir()) if store_dir.is_dir() else ())
            if not d.name.startswith(".") and (d / _JSON).is_file()]


def kept(store_dir: Path, last: int = 0) -> list[Snapshot]:
    """The releases kept, in the order published: the `last` latest ones (0: every one)."""
    import pyarrow.parquet as pq

    out = []
    dirs = _kept_dirs(store_dir)
    for d in dirs[-last:] if last else dirs:
        data = json.loads((d / _JSON).read_text("utf-8"))
        groups = _Groups(pq.read_table(d / _GROUPS)) if data["format"] >= 2 else None
        out.append(Snapshot.from_json(data, pq.read_table(d / _CITIZENS), groups))
    return out


# ---------------------------------------------------------------------------------------
# the audit across releases


def flows(old: Snapshot, new: Snapshot) -> tuple[dict[str, int], dict[str, int], int]:
    """(leavers' numbers in the old release's terms, entrants' in the new one's, citizens
    whose membership changed): a citizen who changed counts in both."""
    con = duckdb.connect()
    try:
        con.register("o", old.citizens)
        con.register("n", new.citizens)
        rows = con.execute(
            "select o.sig, n.sig, count(*) from o full join n using (citizen_id)"
            " where o.sig is distinct from n.sig group by all").fetchall()
    finally:
        con.close()
    left: dict[str, int] = {}
    entered: dict[str, int] = {}
    changed = 0
    for o_sig, n_sig, k in rows:
        changed += k
        for sig, snap, acc in ((o_sig, old, left), (n_sig, new, entered)):
            if sig is not None:
                for q in snap.groups[sig]:
                    acc[q] = acc.get(q, 0) + k
    return left, entered, changed


def comparable(a: Snapshot, b: Snapshot) -> bool:
    return a.structure == b.structure


def _population(snap: Snapshot, prefix: str, values: Mapping[str, int]
                ) -> tuple[dict[str, int], list[dict[str, int]], list[dict[str, int]]]:
    """A group of citizens (leavers or entrants) counted as `snap` counts: every number an
    unpublished quantity named `prefix + name`, with every relation a population of that
    release satisfies (its tables' sums, numbers shared between tables, the rules')."""
    unpublished = {prefix + q: int(values.get(q, 0)) for q in snap.values}
    equal: list[dict[str, int]] = []
    at_most: list[dict[str, int]] = []

    def n(*key: str) -> str:
        return prefix + cell_name(key)

    first: dict[str, str] = {}
    for t in snap.tables:
        tid, rows, cols = t["id"], t["rows"], t["cols"]
        first.setdefault(t["row_dim"], tid)
        equal.append({n(tid, TOTAL, TOTAL): 1, n("profile_distribution", TOTAL, TOTAL): -1}
                     if tid != "profile_distribution" else {})
        for r in rows:
            if first[t["row_dim"]] != tid:  # a row total is one number in every table
                equal.append({n(tid, r, TOTAL): 1, n(first[t["row_dim"]], r, TOTAL): -1})
        for c in (*cols, TOTAL):
            equal.append({**{n(tid, r, c): 1 for r in rows}, n(tid, TOTAL, c): -1})
        for r in (*rows, TOTAL):
            if not cols:
                continue
            if t["multi_response"]:
                at_most += [{n(tid, r, c): 1, n(tid, r, TOTAL): -1} for c in cols]
            else:
                equal.append({**{n(tid, r, c): 1 for c in cols}, n(tid, r, TOTAL): -1})
    for rel in snap.equal:
        equal.append({prefix + q: c for q, c in rel})
    for rel in snap.at_most:
        # most hold citizen by citizen; the cohort's link to the profile tables holds in the
        # release's data only (movement.cohort_relations), so a group of movers gets it only
        # where it holds for them: a relation their numbers break is no knowledge
        if sum(c * int(values.get(q, 0)) for q, c in rel) <= 0:
            at_most.append({prefix + q: c for q, c in rel})
    return unpublished, [e for e in equal if e], at_most


def _release_tables(snap: Snapshot, ns: str) -> tuple[list[Table], dict[tuple, int],
                                                      dict[str, Any]]:
    """`snap` as tables of release `ns`: (tables, loose numbers, name -> reference)."""
    tables = []
    ref: dict[str, Any] = {}
    for t in snap.tables:
        tid, rows, cols = t["id"], tuple(t["rows"]), tuple(t["cols"])
        grid = np.array([[snap.values[cell_name((tid, r, c))] for c in (*cols, TOTAL)]
                         for r in (*rows, TOTAL)], dtype=np.int64)
        tables.append(Table(f"{ns}/{tid}", t["row_dim"], rows, cols, grid,
                            bool(t["multi_response"]), release=ns))
        for r in (*rows, TOTAL):
            for c in (*cols, TOTAL):
                ref[cell_name((tid, r, c))] = (f"{ns}/{tid}", r, c)
    loose = {}
    for q, v in snap.values.items():
        if q.startswith("cell|") and q not in ref:
            _, tid, r, c = q.split("|", 3)
            key = (f"{ns}/{tid}", r, c)
            loose[key] = v
            ref[q] = key
        elif q.startswith("q|"):
            ref[q] = f"{ns}/{q}"
    return tables, loose, ref


@dataclass(frozen=True)
class Verdict:
    safe: bool
    problems: tuple[str, ...]
    changed: int  # citizens whose published membership changed since the last release
    comparable: bool = True  # counted the same way as every release kept


def audit_chain(previous: Sequence[Snapshot], new: Snapshot) -> Verdict:
    """The new release against every release kept before it (see the module docstring)."""
    chain = [*previous, new]
    changed = flows(previous[-1], new)[2] if previous else 0
    if any(not comparable(s, new) for s in previous):
        diff = sorted({k for s in previous for k in new.structure
                       if s.structure.get(k) != new.structure[k]})
        return Verdict(False, (f"the tables are not counted as in the earlier releases: {diff}",),
                       changed, comparable=False)
    min_cell = int(new.structure["min_cell"])
    tables: list[Table] = []
    loose: dict[tuple, int] = {}
    unpublished: dict[str, int] = {}
    equal: list[dict] = []
    at_most: list[dict] = []
    hidden: list[tuple] = []
    watch: list[str] = []
    refs = []
    for i, snap in enumerate(chain):
        ns = f"{snap.reference_date}#{i}"
        t, lo, ref = _release_tables(snap, ns)
        refs.append(ref)
        tables += t
        loose.update(lo)
        unpublished.update({ref[q]: v for q, v in snap.values.items() if q.startswith("q|")})
        equal += [{ref[q]: c for q, c in rel} for rel in snap.equal]
        at_most += [{ref[q]: c for q, c in rel} for rel in snap.at_most]
        hidden += [ref[q] for q in snap.hidden]
    grand = cell_name(("profile_distribution", TOTAL, TOTAL))
    for i in range(1, len(chain)):
        old, cur = chain[i - 1], chain[i]
        left, entered, _ = flows(old, cur)
        for part, snap, values in (("left", old, left), ("entered", cur, entered)):
            prefix = f"{part} {i}/"
            u, e, a = _population(snap, prefix, values)
            unpublished.update(u)
            equal += e
            at_most += a
            # the flows are parts of their release's population
            at_most += [{prefix + q: 1, refs[i - 1 if part == "left" else i][q]: -1}
                        for q in snap.values]
            # the attacker knows how many left and how many entered (the worst case)
            volume = (f"flows {i}", part, TOTAL)
            loose[volume] = int(values.get(grand, 0))
            equal.append({volume: 1, prefix + grand: -1})
            watch += [prefix + q for q in snap.values
                      if q.startswith("cell|") and not q.endswith(f"|{TOTAL}|{TOTAL}")]
        for q in sorted(set(old.values) | set(cur.values)):
            rel = {}
            if q in cur.values:
                rel[refs[i][q]] = 1
            if q in old.values:
                rel[refs[i - 1][q]] = -1
                rel[f"left {i}/{q}"] = 1
            if q in cur.values:
                rel[f"entered {i}/{q}"] = -1
            equal.append(rel)
        if cur.changes is not None:
            lo, e, h, u = _changes_model(cur.changes, i, left, entered,
                                         f"{cur.reference_date}#{i}")
            loose.update(lo)
            equal += e
            hidden += h
            unpublished.update(u)
            # entrants and leavers per profile are not published (pipeline.changes): fixed
            # at 1 to min_cell - 1 they would name a profile of a few movers, as a flow does
            watch += [q for q in u if "/entered|" in q or "/left|" in q]
    volumes = frozenset(k for k in loose if k[0].startswith("flows "))
    relations = Relations(unpublished, tuple(equal), tuple(at_most), loose, volumes)
    problems = audit(tables, hidden, min_cell, relations=relations, watch=watch)
    return Verdict(not problems, tuple(problems), changed)


def _changes_model(ch: Mapping[str, Any], i: int, left: Mapping[str, int],
                   entered: Mapping[str, int], ns: str) -> tuple:
    """The profile changes of release i (against release i − 1; `pipeline.changes`) for the
    audit: each published number a number of release i outside its tables, tied to the
    flows between the two releases (docs/disclosure.md §2.8). Per profile A, with the
    entrants e_A, the leavers l_A (out of the tables) and s_A (kept A, another membership)
    unpublished, whole, >= 0:
      leavers of A's total  = Σ_B moves[A→B] + l_A + s_A,
      entrants of A's total = Σ_B moves[B→A] + e_A + s_A,
      Σ_A e_A = entered, Σ_A l_A = left;
    e_A and l_A are watched as the flows are (not fixed at 1 to min_cell − 1).
    Returns (loose numbers, equal, hidden, unpublished)."""
    from pipeline.changes import ENTERED, LEFT

    tid = f"{ns}/changes"
    ps = list(ch["profiles"])
    moves = ch["moves"]
    loose: dict[tuple, int] = {}
    for a_i, a in enumerate(ps):
        for b_i, b in enumerate(ps):
            if a != b:
                loose[(tid, a, b)] = int(moves[a_i][b_i])
    loose[(tid, ENTERED, TOTAL)] = int(ch["entered"])
    loose[(tid, TOTAL, LEFT)] = int(ch["left"])
    unpublished: dict[str, int] = {}
    equal: list[dict] = []
    e_names, l_names = {}, {}
    for a_i, a in enumerate(ps):
        q = cell_name(("profile_distribution", a, TOTAL))
        e, lv, st = (f"changes {i}/{kind}|{a}" for kind in ("entered", "left", "same profile"))
        out = sum(int(moves[a_i][j]) for j in range(len(ps)) if j != a_i)
        into = sum(int(moves[j][a_i]) for j in range(len(ps)) if j != a_i)
        unpublished[e] = int(ch["unpublished"]["entered"].get(a, 0))
        unpublished[lv] = int(ch["unpublished"]["left"].get(a, 0))
        unpublished[st] = int(left.get(q, 0)) - out - unpublished[lv]
        if unpublished[st] < 0 or int(entered.get(q, 0)) - into - unpublished[e] != \
                unpublished[st]:
            raise NotComparable(f"the profile changes do not match the flows ({a})")
        e_names[a], l_names[a] = e, lv
        equal.append({f"left {i}/{q}": 1, lv: -1, st: -1,
                      **{(tid, a, b): -1 for b in ps if b != a}})
        equal.append({f"entered {i}/{q}": 1, e: -1, st: -1,
                      **{(tid, b, a): -1 for b in ps if b != a}})
    equal.append({(tid, ENTERED, TOTAL): 1, **{e: -1 for e in e_names.values()}})
    equal.append({(tid, TOTAL, LEFT): 1, **{lv: -1 for lv in l_names.values()}})
    hidden = [(tid, r, c) for r, c in ch["hidden"]]
    return loose, equal, hidden, unpublished


# ---------------------------------------------------------------------------------------
# the publication policy


@dataclass(frozen=True)
class Decision:
    """What a run did with its release: `published` (a new release) or kept the earlier
    one; `line`: what the user reads; `previous`: the reference date of the last release
    kept; `changed`: citizens whose published categories changed since it."""

    published: bool
    line: str
    previous: str | None = None
    changed: int = 0
    releases_kept: int = 0
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"published": self.published, "line": self.line, "previous": self.previous,
                "changed": self.changed, "releases_kept": self.releases_kept,
                "problems": list(self.problems[:20])}


def decide(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str, out_dir: Path,
           workdir: Path, against: Any = None) -> Decision | None:
    """The publication policy (docs/disclosure.md §2). Checks the release the report just
    wrote into `workdir/publish` against the releases published from `out_dir`: safe, its
    record goes into `workdir` (to the store once the run is in place); not, the earlier
    publish folder is put back unchanged and no record is written. None: nothing is
    published that the policy protects (min_cell 0 or 1: internal tables). `against`
    (`pipeline.changes.Against`, the runner's): the releases kept, already read, and what
    the report decided against them (`checked`: the snapshot with the profile changes table
    when the page shows it, and its verdict)."""
    cfg = cfg.resolved()
    record = workdir / RECORD
    if record.exists():  # carried over from the output it replaces: already in the store
        shutil.rmtree(record)
    if cfg.min_cell <= 1:
        return None
    stored = len(_kept_dirs(store(cfg, out_dir)))
    previous = (against.previous if against is not None
                else kept(store(cfg, out_dir), cfg.release_audit_window))
    if against is not None and against.checked is not None:
        snap, verdict = against.checked.snapshot, against.checked.verdict
    else:
        try:
            snap = snapshot(con, cfg, run_id)
        except NotComparable as e:
            raise ReportError(
                f"the release cannot be kept for the audit across releases: {e}") from e
        verdict = audit_chain(previous, snap) if previous else Verdict(True, (), 0)
    last = previous[-1].reference_date if previous else None
    citizens = f"{verdict.changed:,} citizen{'' if verdict.changed == 1 else 's'}"
    if verdict.safe:
        # (nobody changed: a profile changes table is all zeros, which the audit's attacker
        # knows already, the flow volumes being 0)
        same = bool(previous) and verdict.changed == 0 and (
            snap.values, snap.hidden) == (previous[-1].values, previous[-1].hidden)
        if not same:  # the same numbers again need no record: the chain does not grow
            write_record(snap, workdir)
        line = ("New release published" + (f" ({citizens} changed since the release of"
                                           f" {last})" if last else "") + ".")
        return Decision(True, line, last, verdict.changed, stored + (0 if same else 1))
    from pipeline.report import PUBLISH

    shutil.rmtree(workdir / PUBLISH, ignore_errors=True)
    if (out_dir / PUBLISH).is_dir():
        shutil.copytree(out_dir / PUBLISH, workdir / PUBLISH, symlinks=True)
        stand = "its tables stand"
    else:
        stand = "its publish folder is gone, so nothing is published"
    if verdict.comparable:
        why = f"{citizens} changed since the release of {last}"
    else:  # a count of changed citizens means nothing when the tables differ
        why = (f"the tables are not counted as in the release of {last} (rules, configuration"
               " or grouping of the tables changed)")
    line = f"No new release: {why}; {stand} (use a new output folder for a separate release)."
    return Decision(False, line, last, verdict.changed, stored, verdict.problems)
