"""`make bench`: time the pipeline's stages on the demo at N citizens against their anchors,
all in one run, and write the figures to bench/results/.

Each measured step runs in its own child process, so its wall time and peak RSS (from
`os.wait4`) are its own. Anchors (interface issues): a bare DuckDB `read_csv` /
`read_parquet` of the same files into a table of a warehouse file (ingest); a bare
one-window gaps-and-islands query and a vectorised pandas version of the definitions
(segment). The machine is noisy: the ratio within one run is the figure that counts.

    python bench/run.py --citizens 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

REFERENCE_DATE = dt.date(2026, 11, 25)  # fixed, so cached demo data stay valid


# --- measured steps (each runs in a child process) ---------------------------------------


def step_ingest(data: Path, db: Path) -> dict:
    from pipeline import warehouse
    from pipeline.config import Config
    from pipeline.ingest import ingest

    con = warehouse.connect(db)
    r = ingest(con, Config(reference_date=REFERENCE_DATE), data, "bench")
    con.close()
    return {
        t: {"read": c.read, "loaded": c.loaded, "quarantined": c.quarantined}
        for t, c in r.counts.items()
    }


def step_bare_csv(data: Path, db: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(db))
    rows = {}
    for t in ("citizens", "episodes"):
        # DuckDB reads latin-1, not Windows-1252; the demo's text is inside their overlap
        con.execute(
            f"create table {t} as select * from read_csv('{data / (t + '.csv')}', "
            "delim=';', header=true, encoding='latin-1')"
        )
        rows[t] = con.execute(f"select count(*) from {t}").fetchone()[0]
    con.close()
    return rows


def step_bare_parquet(data: Path, db: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(db))
    rows = {}
    for t in ("citizens", "episodes"):
        con.execute(f"create table {t} as select * from read_parquet('{data / (t + '.parquet')}')")
        rows[t] = con.execute(f"select count(*) from {t}").fetchone()[0]
    con.close()
    return rows


def step_segment(data: Path, db: Path) -> dict:
    from pipeline import warehouse
    from pipeline.config import Config
    from pipeline.rules import load_rules
    from pipeline.segment import segment

    con = warehouse.connect(db)
    r = segment(con, Config(reference_date=REFERENCE_DATE), load_rules())
    con.close()
    return {"citizens": r.citizens, "in_scope": r.in_scope}


def step_bare_segment(data: Path, db: Path) -> dict:
    import duckdb
    from pandas_segment import bare_duckdb_courses_sql

    con = duckdb.connect(str(db))
    con.execute(
        "create or replace table bench_courses as " + bare_duckdb_courses_sql,
        {"reference_date": REFERENCE_DATE, "course_gap_days": 30},
    )
    n = con.execute("select count(*) from bench_courses").fetchone()[0]
    con.close()
    return {"rows": n}


def step_pandas_segment(data: Path, db: Path) -> dict:
    import duckdb
    from pandas_segment import pandas_segment

    from pipeline.config import Config

    con = duckdb.connect(str(db), read_only=True)
    citizens = con.execute("select * from staging.citizens").df()
    episodes = con.execute("select * from staging.episodes").df()
    con.close()
    t0 = time.perf_counter()
    result = pandas_segment(citizens, episodes, Config(reference_date=REFERENCE_DATE))
    return {"rows": len(result), "compute_seconds": round(time.perf_counter() - t0, 3)}


STEPS = {
    f.__name__.removeprefix("step_"): f
    for f in (
        step_ingest,
        step_bare_csv,
        step_bare_parquet,
        step_segment,
        step_bare_segment,
        step_pandas_segment,
    )
}


# --- the parent: data, children, figures ------------------------------------------------


def measure(name: str, data: Path, db: Path) -> dict:
    """Run one step in a child process: wall seconds, peak RSS (MiB), what it returned."""
    out = db.with_suffix(".result.json")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--step",
            name,
            "--data",
            str(data),
            "--db",
            str(db),
            "--result",
            str(out),
        ]
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench step {name} failed")
    return {
        "step": name,
        "wall_seconds": round(wall, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "result": json.loads(out.read_text()),
    }


def prepare(n: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """Demo export as CSV (Windows-1252, ';') and the same tables as Parquet; cached."""
    csv_dir, pq_dir = folder / "csv", folder / "parquet"
    if not (pq_dir / "episodes.parquet").exists():
        import duckdb

        from pipeline.demo import write_demo

        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        write_demo(csv_dir, n=n, seed=seed, reference_date=REFERENCE_DATE)
        print(f"demo data: {n:,} citizens in {time.perf_counter() - t0:.1f} s", flush=True)
        pq_dir.mkdir(parents=True)
        con = duckdb.connect()
        for t in ("citizens", "episodes"):
            con.execute(
                f"copy (select * from read_csv('{csv_dir / (t + '.csv')}', delim=';', "
                "header=true, encoding='latin-1', dateformat='%d-%m-%Y')) "
                f"to '{pq_dir / (t + '.parquet')}' (format parquet)"
            )
    return csv_dir, pq_dir


def ratio(a: dict, b: dict) -> float:
    return round(a["wall_seconds"] / b["wall_seconds"], 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--citizens", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--step")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--result", type=Path)
    args = ap.parse_args()
    if args.step:  # child
        args.result.write_text(json.dumps(STEPS[args.step](args.data, args.db)))
        return

    n = args.citizens
    work = HERE / "data" / f"n{n}_s{args.seed}"
    csv_dir, pq_dir = prepare(n, args.seed, work)
    dbs = work / "db"
    shutil.rmtree(dbs, ignore_errors=True)
    dbs.mkdir()
    runs: dict[str, dict] = {}
    plan = [
        ("bare_csv", csv_dir, "bare_csv"),
        ("ingest", csv_dir, "ingest_csv"),
        ("bare_parquet", pq_dir, "bare_parquet"),
        ("ingest", pq_dir, "ingest_parquet"),
    ]
    for step, data, label in plan:
        runs[label] = measure(step, data, dbs / f"{label}.duckdb")
        print(
            f"{label:<16} {runs[label]['wall_seconds']:>8.2f} s "
            f"{runs[label]['peak_rss_mib']:>8.0f} MiB",
            flush=True,
        )
    segment_db = dbs / "segment.duckdb"
    shutil.copy(dbs / "ingest_csv.duckdb", segment_db)
    for step in ("segment", "bare_segment", "pandas_segment"):
        try:
            runs[step] = measure(step, csv_dir, segment_db)
        except (SystemExit, ImportError) as e:
            print(f"{step}: not measured ({e})", flush=True)
            continue
        print(
            f"{step:<16} {runs[step]['wall_seconds']:>8.2f} s "
            f"{runs[step]['peak_rss_mib']:>8.0f} MiB",
            flush=True,
        )

    ratios = {
        "ingest_csv / bare read_csv": ratio(runs["ingest_csv"], runs["bare_csv"]),
        "ingest_parquet / bare read_parquet": ratio(runs["ingest_parquet"], runs["bare_parquet"]),
    }
    if "segment" in runs and "bare_segment" in runs:
        ratios["segment / bare gaps-and-islands"] = ratio(runs["segment"], runs["bare_segment"])
    if "segment" in runs and "pandas_segment" in runs:
        ratios["pandas segment / segment"] = ratio(runs["pandas_segment"], runs["segment"])
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    report = {
        "when": stamp,
        "citizens": n,
        "episodes": runs["ingest_csv"]["result"]["episodes"]["read"],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "input_bytes": {p.name: p.stat().st_size for d in (csv_dir, pq_dir) for p in d.iterdir()},
        "runs": runs,
        "ratios": ratios,
    }
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"bench-{n}-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Bench {stamp}: {n:,} citizens, {report['episodes']:,} episodes",
        "",
        "| step | wall s | peak RSS MiB |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {k} | {v['wall_seconds']:.2f} | {v['peak_rss_mib']:.0f} |" for k, v in runs.items()
    ]
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    md = "\n".join(lines) + "\n"
    (results / f"bench-{n}-{stamp}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
