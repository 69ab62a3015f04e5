"""`make bench-series`: the nightly batch over a 30-night evolving demo (issue 16): per night,
the run's wall time and peak memory, the warehouse's size and the history's size, against
the night number, into bench/results/series-<citizens>-<timestamp>.md (and .json).

The goal: flat per night. The output folder's warehouse is rebuilt each night (its size
follows the night's export, not the nights before); the history grows by one night's file.
Each night is `m3-profiles run` as its own process (unsupervised, so the process measured is
the run), as the timer runs it.

    python bench/series.py [--citizens 100000] [--nights 30] [--every 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from run import RUN_PHASES, _phases  # noqa: E402  (bench/run.py: make bench's phases)

from pipeline.config import Config  # noqa: E402
from pipeline.demo_series import write_series  # noqa: E402

# a run's log line: "2026-12-05 08:00:06,454 INFO message"
_LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


def phases(log: Path) -> dict[str, float]:
    """Seconds per phase of a night's run, from its run.log (each step's line to the next
    step's; the last phase ends at the log's last line: the swap, the history and the
    release's record)."""
    marks = []
    for line in log.read_text("utf-8").splitlines():
        stamp, _, rest = line.partition(" INFO ")
        if rest:
            marks.append((dt.datetime.strptime(stamp, _LOG_TIME).timestamp(), rest))
    return _phases(marks, marks[-1][0], RUN_PHASES)


def slope(rows: list[dict], key: str) -> tuple[float, float]:
    """Least squares of `key` against the night number: (seconds per night, the half-width
    of its 95 % interval). Flat: an interval that holds 0."""
    from scipy import stats

    xs = [r["night"] for r in rows]
    ys = [r[key] if key in r else r["phases"].get(key, 0.0) for r in rows]
    fit = stats.linregress(xs, ys)
    t = stats.t.ppf(0.975, len(xs) - 2)
    return round(fit.slope, 3), round(t * fit.stderr, 3)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _run_night(folder: Path, out: Path, day: dt.date) -> tuple[float, float, int]:
    """One night as its own process: (wall seconds, CPU seconds, peak RSS in bytes). The CPU
    seconds are the figure to read on a shared machine: wall time follows the load."""
    env = {**os.environ, "M3_SUPERVISE": "0"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--input", str(folder), "--out", str(out),
         "--reference-date", day.isoformat(), "--quiet"], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"night {day} failed with exit {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--citizens", type=int, default=100_000)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--every", type=int, default=1, help="days between nights")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", type=Path, default=HERE / "data" / "series")
    args = ap.parse_args()

    last = dt.date(2024, 6, 30)
    work = args.work / f"{args.citizens}-{args.nights}-{args.every}"
    exports, out = work / "exports", work / "out"
    for p in (out, out.with_name("out.history"), out.with_name("out.failed")):
        subprocess.run(["rm", "-rf", str(p)], check=True)
    t0 = time.perf_counter()
    nights = write_series(exports, args.citizens, args.seed, last, args.nights, args.every)
    generate_s = time.perf_counter() - t0
    rows = []
    for k, night in enumerate(nights, 1):
        wall, cpu, rss = _run_night(night.folder, out, night.reference_date)
        hist = out.with_name("out.history")
        release = json.loads((out / "run.json").read_text("utf-8")).get("release") or {}
        rows.append({
            "night": k, "reference_date": night.reference_date.isoformat(),
            "in_m3": night.in_m3, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(rss / 2**20),
            "published": bool(release.get("published")),
            "releases_kept": release.get("releases_kept", 0),
            "releases_mb": round(_size(hist / "releases") / 2**20, 2)
            if (hist / "releases").exists() else 0.0,
            "warehouse_mb": round(_size(out / "warehouse.duckdb") / 2**20, 1),
            "output_mb": round(_size(out) / 2**20, 1),
            "history_mb": round(_size(hist) / 2**20, 2),
            "history_files": len(list(hist.glob("*.parquet"))),
            "phases": phases(out / "run.log"),
        })
        print(json.dumps(rows[-1]), flush=True)

    first, rest = rows[: len(rows) // 3], rows[-(len(rows) // 3):]
    # the audit models the releases of its window: from the night after it is full, a
    # night's work should not grow with the nights before it
    window = Config().release_audit_window
    steady = [r for r in rows if r["night"] > window + 1]
    def mean(rs, k):  # noqa: E306, ANN001, ANN202
        return sum(r[k] for r in rs) / len(rs)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    base = HERE / "results" / f"series-{args.citizens}-{stamp}"
    summary = {
        "citizens": args.citizens, "nights": args.nights, "every_days": args.every,
        "generate_s": round(generate_s, 1),
        "wall_first_third_s": round(mean(first, "wall_s"), 2),
        "wall_last_third_s": round(mean(rest, "wall_s"), 2),
        "cpu_first_third_s": round(mean(first, "cpu_s"), 2),
        "cpu_last_third_s": round(mean(rest, "cpu_s"), 2),
        "published_nights": sum(r["published"] for r in rows),
        "load_at_end": os.getloadavg()[0],
        "warehouse_first_third_mb": round(mean(first, "warehouse_mb"), 1),
        "warehouse_last_third_mb": round(mean(rest, "warehouse_mb"), 1),
        "history_per_night_mb": round(rows[-1]["history_mb"] / len(rows), 2),
        "machine": f"{os.cpu_count()} cores",
        "release_audit_window": window,
        "steady_from_night": window + 2,
        "slopes_s_per_night": {k: slope(steady, k) for k in
                               ("cpu_s", "wall_s", *sorted({p for r in steady
                                                           for p in r["phases"]}))}
        if len(steady) > 2 else {},
    }
    base.with_suffix(".json").write_text(json.dumps({"summary": summary, "nights": rows},
                                                    indent=2) + "\n")
    lines = [f"# Nightly series: {args.citizens:,} citizens, {args.nights} nights, every "
             f"{args.every} day(s)", "",
             f"Generated in {generate_s:.1f} s. Mean run CPU time, first third of the nights "
             f"{summary['cpu_first_third_s']} s, last third {summary['cpu_last_third_s']} s "
             f"(wall {summary['wall_first_third_s']} s, {summary['wall_last_third_s']} s; "
             f"load average {summary['load_at_end']:.1f} at the end); "
             f"{summary['published_nights']} of {len(rows)} nights published a release; "
             f"warehouse {summary['warehouse_first_third_mb']} MB -> "
             f"{summary['warehouse_last_third_mb']} MB; the history grows "
             f"{summary['history_per_night_mb']} MB a night.", "",
             f"From night {window + 2} (the audit's window of {window} releases full), "
             "least squares against the night number, seconds per night (± the 95 % "
             "interval's half-width; flat when it holds 0):", "",
             "| figure | s per night | ± |", "|---|---:|---:|",
             *(f"| {k} | {v[0]} | {v[1]} |" for k, v in summary["slopes_s_per_night"].items()),
             "",
             "| night | reference date | in M3 | CPU s | wall s | peak RSS MB | published | "
             "releases kept | releases MB | warehouse MB | output MB | history MB | "
             "history files | phases (s) |", "|" + "---|" * 14]
    lines += [f"| {r['night']} | {r['reference_date']} | {r['in_m3']:,} | {r['cpu_s']} | "
              f"{r['wall_s']} | {r['peak_rss_mb']} | {'yes' if r['published'] else 'no'} | "
              f"{r['releases_kept']} | {r['releases_mb']} | {r['warehouse_mb']} | "
              f"{r['output_mb']} | {r['history_mb']} | {r['history_files']} | "
              + ", ".join(f"{k} {v}" for k, v in r["phases"].items()) + " |" for r in rows]
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {base}.md")


if __name__ == "__main__":
    main()
