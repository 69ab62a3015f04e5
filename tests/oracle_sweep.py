"""The oracle on the whole page (issue 13 item 5) over the demo's sizes and seeds: for each
release as published (reference date 2024-06-30, min_cell 5, default coarsening), what the
page holds beyond the profile tables (the headline's split, the cohort table, the model
card), and the verdict of tests/attacker.py with the pipeline's own relations and with the
cohort's link to the tables read both ways (`Knowledge.both_ways`). Writes
bench/results/oracle-page-<timestamp>.md. Not a test (a sweep of minutes):

    python tests/oracle_sweep.py [--sizes 60 100 ...] [--seeds 1 2 3] [--model]

`--model`: a model at small sizes too (model_min_reviewed_per_flag 5,
model_min_probability 0.3), so the card and the split are on every page.
Since the suppression knows the link both ways (`pipeline.movement.cohort_relations`),
"both ways" is the verdict that counts; "one way" shows what the other direction adds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from attacker import attack, knowledge  # noqa: E402

from pipeline.config import Config  # noqa: E402
from pipeline.demo import write_demo  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.release import publish  # noqa: E402
from pipeline.rules import load_rules  # noqa: E402
from pipeline.segment import segment  # noqa: E402
from pipeline.warehouse import connect  # noqa: E402

REF = dt.date(2024, 6, 30)
MODEL = {"model_min_reviewed_per_flag": 5, "model_min_probability": 0.3}


def one(n: int, seed: int, extra: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(reference_date=REF, min_cell=5, **extra)
        write_demo(Path(tmp), n=n, seed=seed, reference_date=REF)
        rules = load_rules()
        con = connect()
        ingest(con, cfg, Path(tmp), "sweep")
        segment(con, cfg, rules)
        start = time.monotonic()
        rel = publish(con, cfg)
        seconds = time.monotonic() - start
    kn = knowledge(con, rel, cfg, rules, label=f"{n}/{seed}")

    def part(k: tuple) -> str:
        t = k[0]
        if t.startswith("cohort_"):
            return "cohort"
        if t.startswith("card"):
            return "card"
        return "headline" if t == "headline" else "tables"

    counts: dict[str, list[int]] = {}
    for k, v in kn.shown.items():
        c = counts.setdefault(part(k), [0, 0])
        c[0] += 1
        c[1] += v is None
    start = time.monotonic()
    kn.both_ways = False
    one_way = attack(kn)
    kn.both_ways = True
    both = attack(kn)
    attack_s = time.monotonic() - start
    con.close()
    return {"n": n, "seed": seed, "counts": counts, "model": kn.model_trained,
            "one_way": one_way.findings, "both": both.findings, "publish_s": seconds,
            "attack_s": attack_s}


def markdown(rows: list[dict], extra: dict) -> str:
    parts = ("tables", "headline", "cohort", "card")
    lines = [
        "# The oracle on the whole page (issue 13 item 5): demo, reference date "
        f"{REF}, min_cell 5{', a model at every size ' + str(extra) if extra else ''}",
        "",
        "Numbers: printed numbers of each part (hidden). One way: tests/attacker.py with the",
        "relations the pipeline models (the cohort's still-in-M3 at most the tables' more than",
        "a year). Both ways: also a tabulated citizen with more than a year in M3 in the",
        "cohort, in M3 at every horizon (where the data keep it). Findings: hidden numbers",
        "derived exactly or primaries proven small.",
        "",
        "| size | seed | model | " + " | ".join(parts) + " | one way | both ways"
        " | s publish | s attack |",
        "|---:|---:|:-:|" + "---:|" * len(parts) + ":-:|:-:|---:|---:|",
    ]
    for r in rows:
        cells = [f"{r['counts'].get(p, [0, 0])[0]} ({r['counts'].get(p, [0, 0])[1]})"
                 for p in parts]

        def verdict(f: list) -> str:
            return "safe" if not f else f"**{len(f)} findings**"

        lines.append(f"| {r['n']} | {r['seed']} | {'yes' if r['model'] else 'no'} | "
                     + " | ".join(cells) + f" | {verdict(r['one_way'])} | {verdict(r['both'])}"
                     f" | {r['publish_s']:.0f} | {r['attack_s']:.1f} |")
    safe1 = sum(not r["one_way"] for r in rows)
    safe2 = sum(not r["both"] for r in rows)
    lines += ["", f"Safe: {safe1} of {len(rows)} one way, {safe2} of {len(rows)} both ways.",
              "", "## Findings", ""]
    for r in rows:
        for name in ("one_way", "both"):
            for f in r[name]:
                lines.append(f"- {r['n']}/{r['seed']} ({name.replace('_', ' ')}): {f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[60, 100, 150, 250, 400, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--model", action="store_true")
    args = ap.parse_args()
    extra = MODEL if args.model else {}
    rows: list[dict] = []
    errors: list[str] = []
    for n in args.sizes:
        for seed in args.seeds:
            try:
                rows.append(one(n, seed, extra))
            except Exception as e:  # a release the pipeline cannot make: say so, go on
                print(f"{n}/{seed}: the pipeline failed: {type(e).__name__}: {e}", flush=True)
                errors.append(f"- {n}/{seed}: the pipeline failed: {type(e).__name__}: {e}")
                continue
            r = rows[-1]
            print(f"{n}/{seed}: one way {len(r['one_way'])}, both ways {len(r['both'])}"
                  f" findings ({r['publish_s']:.0f} s + {r['attack_s']:.1f} s)", flush=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = HERE.parent / "bench" / "results" / f"oracle-page-{stamp}.md"
    text = markdown(rows, extra)
    if errors:
        text += "\n## Releases the pipeline could not make\n\n" + "\n".join(errors) + "\n"
    out.write_text(text, "utf-8")
    print(out)


if __name__ == "__main__":
    main()
