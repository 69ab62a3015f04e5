"""`make disclosure`: attack the demo's releases (issue 13) with the tests' independent
attacker (tests/attacker.py), before and after the suppression knew the relations the
rules imply, and write the table to bench/results/disclosure-<timestamp>.md.

For each size and seed (reference date 2024-06-30, min_cell 5): the cells of the release,
the hidden cells, the citizens hidden (the sum of the hidden numbers, a number shared by
several tables once), the share of the tables' counts in shown cells, whether the attacker
found nothing (safe), and, for the pattern published now, the suppression's time and
whether its greedy fallback was used. "Before" is the pattern the suppression chooses
without the relations (the model of issue 13), attacked by the same attacker.

    python bench/disclosure.py [--sizes 60 100 ...] [--seeds 1 2 3] [--min-cell 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from attacker import attack, knowledge  # noqa: E402

from pipeline.config import Config  # noqa: E402
from pipeline.demo import write_demo  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.release import counted_tables, publish, relations  # noqa: E402
from pipeline.rules import load_rules  # noqa: E402
from pipeline.segment import segment  # noqa: E402
from pipeline.suppression import TOTAL, solve  # noqa: E402
from pipeline.warehouse import connect  # noqa: E402

REF = dt.date(2024, 6, 30)
SIZES = (60, 100, 150, 250, 400, 1000)
SEEDS = (1, 2, 3)


def shown_share(tables, hidden) -> tuple[float, float]:
    """(share of all counted citizens in shown inner cells, the smallest share of a table).
    A multi-response table's count is its ticks; profile_distribution's its row totals."""
    shown_all = total_all = 0
    worst = 1.0
    for t in tables:
        cols = t.cols or (TOTAL,)
        col_idx = [t.cols.index(c) if c != TOTAL else len(t.cols) for c in cols]
        counted = shown = 0
        for i, r in enumerate(t.rows):
            for j, c in zip(col_idx, cols, strict=True):
                n = int(t.counts[i, j])
                counted += n
                if (t.id, r, c) not in hidden:
                    shown += n
        if counted:
            worst = min(worst, shown / counted)
        shown_all += shown
        total_all += counted
    return (shown_all / total_all if total_all else 1.0), worst


def hidden_citizens(tables, hidden) -> int:
    """Sum of hidden numbers; a profile total or the grand total counted once."""
    seen = {}
    for t in tables:
        for i, r in enumerate((*t.rows, TOTAL)):
            for j, c in enumerate((*t.cols, TOTAL)):
                if (t.id, r, c) in hidden:
                    key = ("grand",) if r == c == TOTAL else (
                        ("row", t.row_dim, r) if c == TOTAL else (t.id, r, c))
                    seen[key] = int(t.counts[i, j])
    return sum(seen.values())


def measure(n: int, seed: int, min_cell: int) -> dict:
    cfg = Config(reference_date=REF, min_cell=min_cell)
    with tempfile.TemporaryDirectory() as tmp:
        write_demo(Path(tmp), n=n, seed=seed, reference_date=REF)
        rules = load_rules()
        con = connect()
        ingest(con, cfg, Path(tmp), "bench")
        segment(con, cfg, rules)
    rel = publish(con, cfg)
    tables = counted_tables(con)
    after = {k for k, v in knowledge(con, rel, cfg, rules).shown.items() if v is None}
    # the pattern published, timed again on its own (publish also builds the tables)
    sol = solve(tables, min_cell, relations=relations(con, cfg, tables))
    before = set(solve(tables, min_cell).pattern)
    out = {"size": n, "seed": seed, "cells": rel.cells, "tabulated": rel.tabulated,
           "seconds": sol.seconds, "greedy": sol.greedy, "rounds": sol.rounds}
    for name, hidden in (("before", before), ("after", after)):
        kn = knowledge(con, rel, cfg, rules, label=f"{n}/{seed} {name}")
        kn.shown = {k: (None if (k in hidden if k[0] != "headline" else v is None)
                        else kn.truth[k]) for k, v in kn.shown.items()}
        table_hidden = {k for k in hidden if k[0] != "headline"}
        a = attack(kn, min_cell)
        share, worst = shown_share(tables, table_hidden)
        out[name] = {"hidden": len(table_hidden),
                     "citizens_hidden": hidden_citizens(tables, table_hidden),
                     "share": share, "worst": worst, "findings": len(a.findings),
                     "safe": a.safe}
    con.close()
    return out


def markdown(rows: list[dict], min_cell: int) -> str:
    lines = [
        f"# Disclosure: the demo's releases under the independent attacker (min_cell {min_cell},"
        f" reference date {REF})",
        "",
        "Before: the pattern chosen without the relations the rules imply (issue 13).",
        "After: the pattern published now. Hidden: printed cells hidden. Citizens hidden: the",
        "sum of the hidden numbers (a shared number once). Shown: the share of the tables'",
        "counts (ticks in a multi-response table) in shown cells, overall and in the worst",
        "table. Findings: hidden cells derived exactly or small ones proven small.",
        "",
        "| size | seed | cells | hidden before | hidden after | citizens hidden before"
        " | citizens hidden after | shown before | shown after | worst table after"
        " | findings before | safe before | safe after | suppression s | greedy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|---:|:-:|",
    ]
    for r in rows:
        b, a = r["before"], r["after"]
        lines.append(
            f"| {r['size']} | {r['seed']} | {r['cells']} | {b['hidden']} | {a['hidden']}"
            f" | {b['citizens_hidden']} | {a['citizens_hidden']} | {b['share']:.0%}"
            f" | {a['share']:.0%} | {a['worst']:.0%} | {b['findings']}"
            f" | {'yes' if b['safe'] else 'no'} | {'yes' if a['safe'] else 'no'}"
            f" | {r['seconds']:.1f} | {'yes' if r['greedy'] else 'no'} |")
    safe_b = sum(r["before"]["safe"] for r in rows)
    safe_a = sum(r["after"]["safe"] for r in rows)
    greedy = sum(r["greedy"] for r in rows)
    lines += ["", f"Safe: {safe_b} of {len(rows)} before, {safe_a} of {len(rows)} after."
              f" Greedy fallback used in {greedy} of {len(rows)} releases; slowest"
              f" suppression {max(r['seconds'] for r in rows):.1f} s.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--min-cell", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        for seed in args.seeds:
            start = time.monotonic()
            r = measure(n, seed, args.min_cell)
            rows.append(r)
            print(f"{n:>5} seed {seed}: safe before {r['before']['safe']}, after"
                  f" {r['after']['safe']} (hidden {r['before']['hidden']} ->"
                  f" {r['after']['hidden']}; suppression {r['seconds']:.1f} s,"
                  f" greedy {r['greedy']}; {time.monotonic() - start:.0f} s)", flush=True)
    text = markdown(rows, args.min_cell)
    out = HERE / "results" / f"disclosure-{dt.datetime.now():%Y%m%dT%H%M%S}.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")
    if not all(r["after"]["safe"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
