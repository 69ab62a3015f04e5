"""`make bench`: time the pipeline's stages on the demo at N citizens against their anchors,
all in one run, and write the figures to bench/results/.

Each measured step runs in its own child process, so its wall time and peak RSS (from
`os.wait4`) are its own. Anchors (interface issues): a bare DuckDB `read_csv` /
`read_parquet` of the same files into a table of a warehouse file (ingest); a bare
one-window gaps-and-islands query and a vectorised pandas version of the definitions
(segment); one grouped scan of the citizens (the report's tables, timed 3 times each,
medians compared: both take well under a second); the profile model (bench/model.py:
training and prediction at 10,000, 100,000 and N citizens, 80 % unreviewed). Beside the
segment anchors, two figures that are no goal show how its ratio splits: the same window
making both merges of the definitions (courses and M3 stretches), and writing a copy of
segment's output table. The machine is noisy: the ratio within one run is the figure that counts.

    python bench/run.py --citizens 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
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


# The bare queries' parameters: the config's defaults, written out (the anchors import no
# pipeline code).
BARE_SEGMENT_PARAMS = {
    "reference_date": REFERENCE_DATE,
    "course_gap_days": 30,
    "support_excluded": ["fleksjob", "foertidspension"],
    "m3_groups": ["3", "aktivitetsparat"],
}


def step_bare_segment(data: Path, db: Path) -> dict:
    import duckdb
    from bare_segment import bare_duckdb_courses_sql

    con = duckdb.connect(str(db))
    t0 = time.perf_counter()
    con.execute(
        "create or replace table bench_courses as " + bare_duckdb_courses_sql,
        {k: v for k, v in BARE_SEGMENT_PARAMS.items() if k != "m3_groups"},
    )
    seconds = time.perf_counter() - t0
    n = con.execute("select count(*) from bench_courses").fetchone()[0]
    con.close()
    return {"rows": n, "query_seconds": round(seconds, 3)}


def step_bare_both_merges(data: Path, db: Path) -> dict:
    """Not a named anchor: the two merges segment must make (bare_segment.py), for reading
    how far segment is from what any implementation has to do."""
    import duckdb
    from bare_segment import bare_duckdb_both_merges_sql

    con = duckdb.connect(str(db))
    con.execute(
        "create or replace table bench_both_merges as " + bare_duckdb_both_merges_sql,
        BARE_SEGMENT_PARAMS,
    )
    n = con.execute("select count(*) from bench_both_merges").fetchone()[0]
    con.close()
    return {"rows": n}


def step_write_citizens(data: Path, db: Path) -> dict:
    """Not a named anchor: writing a copy of segment's output table, marts.citizens, as it
    is (one table write into the warehouse file, the part of segment no query plan avoids);
    the copy is dropped again."""
    import duckdb

    con = duckdb.connect(str(db))
    t0 = time.perf_counter()
    con.execute("create or replace table bench_citizens_copy as select * from marts.citizens")
    seconds = time.perf_counter() - t0
    con.execute("drop table bench_citizens_copy")
    con.close()
    return {"write_seconds": round(seconds, 3)}


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


def _recorder() -> tuple[list[tuple[float, str]], object]:
    marks: list[tuple[float, str]] = []
    return marks, lambda message: marks.append((time.perf_counter(), message))


def _phases(marks: list[tuple[float, str]], end: float, names: dict[str, str]) -> dict:
    """Seconds per phase: from a step message starting with a key of `names` to the next."""
    out: dict[str, float] = {}
    stamps = [(t, m) for t, m in marks if any(m.startswith(k) for k in names)] + [(end, "")]
    for (t, m), (t_next, _) in zip(stamps, stamps[1:], strict=False):
        name = next(v for k, v in names.items() if m.startswith(k))
        out[name] = round(out.get(name, 0.0) + t_next - t, 3)
    return out


REPORT_PHASES = {
    "report: counting": "tables",
    "report: suppressing": "suppression",
    "report: writing": "rendering",
}


# The table computation and its anchor take well under a second at 1M citizens, where this
# machine's noise alone can double one timing: each is timed REPEATS times in its process,
# the same way for both, and the ratio is of the medians (the first timing is kept too).
REPEATS = 3


def step_report(data: Path, db: Path) -> dict:
    from pipeline import warehouse
    from pipeline.config import Config
    from pipeline.release import publish
    from pipeline.report import report

    cfg = Config(reference_date=REFERENCE_DATE)
    con = warehouse.connect(db)
    marks, step = _recorder()
    r = report(con, cfg, None, db.parent / "report", step=step)
    end = time.perf_counter()
    # the tables again, as the report counts them (then rolled back): the release's models
    # and checks up to the suppression, whose start `publish` signals
    repeats, counted = [], []
    for _ in range(REPEATS - 1):
        con.execute("begin transaction")
        t0 = time.perf_counter()
        publish(con, cfg, counted=lambda: counted.append(time.perf_counter()))
        repeats.append(round(counted[-1] - t0, 3))
        con.execute("rollback")
    con.close()
    phases = _phases(marks, end, REPORT_PHASES)
    return {
        "phases": phases,
        "tables_seconds": [phases["tables"], *repeats],
        "tabulated": r.tabulated,
        "cells": r.cells,
        "hidden": r.hidden,
    }


def step_bare_marts_scan(data: Path, db: Path) -> dict:
    """The floor for the tables: one grouped scan of the citizens reading every column the
    tables count (profile, base profile, bands and classes from marts.citizens, the flag
    columns from the case review in staging.citizens, joined on citizen_id)."""
    import duckdb

    from pipeline.vocabulary import FLAG_COLUMNS

    con = duckdb.connect(str(db), read_only=True)
    flags = ", ".join(f"sum({c}::int) as {c}" for c in FLAG_COLUMNS)
    seconds = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        rows = con.execute(
            "select profile, base_profile, course_class, age_band, m3_band, count(*) as n, "
            f"{flags} from marts.citizens join staging.citizens using (citizen_id)"
            " where in_scope and profile is not null group by all"
        ).fetchall()
        seconds.append(round(time.perf_counter() - t0, 3))
    con.close()
    return {"groups": len(rows), "query_seconds": seconds[0], "query_seconds_all": seconds}


RUN_PHASES = {  # the first key a message starts with names its phase
    "stage ingest": "ingest",
    "stage segment": "segment",
    "report: counting": "report_tables",
    "report: suppressing": "report_suppression",
    # a run into an output folder that keeps releases: the snapshot of the release and its
    # audit against those kept (the first run: the snapshot alone)
    "report: checking the release": "report_release_check",
    "report: writing the internal worklist": "report_worklist",
    "report: writing": "report_rendering",
}


def step_run(data: Path, db: Path, **config: object) -> dict:
    """`m3-profiles run` end to end, as the CLI runs it (lock, temporary folder, manifest)."""
    from pipeline.config import Config
    from pipeline.runner import STAGES, run_stages

    marks, step = _recorder()
    out = db.parent / f"run_out{'_' + '_'.join(config) if config else ''}"
    st = run_stages(
        STAGES,
        out,
        Config(reference_date=REFERENCE_DATE, **config),
        input_dir=data,
        step=step,
    )
    end = time.perf_counter()
    return {"phases": _phases(marks, end, RUN_PHASES), "in_scope": st.segment.in_scope}


def step_run_rules(data: Path, db: Path) -> dict:
    """The same run without the profile model (issue 15): no flag has enough reviewed
    citizens to learn from, so the unreviewed stay unreviewed. What a run did before the
    model, the worklist and the releases' audit were added to it, but for the worklist and
    the snapshot of the release, which every run writes (docs/decisions.md, the whole-run
    goal)."""
    return step_run(data, db, model_min_reviewed_per_flag=10**9)


STEPS = {
    f.__name__.removeprefix("step_"): f
    for f in (
        step_ingest,
        step_bare_csv,
        step_bare_parquet,
        step_segment,
        step_bare_segment,
        step_bare_both_merges,
        step_write_citizens,
        step_pandas_segment,
        step_report,
        step_bare_marts_scan,
        step_run,
        step_run_rules,
    )
}


# --- the parent: data, children, figures ------------------------------------------------


def prepared(n: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """`prepare` in a child process: a forked child's peak RSS starts at its parent's, so
    the parent must never hold the demo data."""
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--prepare",
            str(folder),
            "--citizens",
            str(n),
            "--seed",
            str(seed),
        ],
        check=True,
    )
    return folder / "csv", folder / "parquet"


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


def show(label: str, run: dict) -> None:
    phases = run["result"].get("phases")
    extra = "  " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()) if phases else ""
    print(
        f"{label:<16} {run['wall_seconds']:>8.2f} s {run['peak_rss_mib']:>8.0f} MiB{extra}",
        flush=True,
    )


def publication_path(run: dict) -> float:
    """A run's seconds from ingest to the published page: every phase but the release's
    check across releases and the internal worklist (docs/decisions.md, the whole-run
    goal)."""
    phases = run["result"]["phases"]
    return round(sum(v for k, v in phases.items()
                     if k not in ("report_release_check", "report_worklist")), 2)


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
    ap.add_argument("--prepare", type=Path)
    args = ap.parse_args()
    if args.step:  # child
        args.result.write_text(json.dumps(STEPS[args.step](args.data, args.db)))
        return
    if args.prepare:  # child
        prepare(args.citizens, args.seed, args.prepare)
        return

    n = args.citizens
    work = HERE / "data" / f"n{n}_s{args.seed}"
    csv_dir, pq_dir = prepared(n, args.seed, work)
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
        show(label, runs[label])
    segment_db = dbs / "segment.duckdb"
    shutil.copy(dbs / "ingest_csv.duckdb", segment_db)
    # segment first: report and the marts scan read what it builds
    for step in (
        "segment",
        "bare_segment",
        "bare_both_merges",
        "write_citizens",
        "pandas_segment",
        "report",
        "bare_marts_scan",
    ):
        runs[step] = measure(step, csv_dir, segment_db)
        show(step, runs[step])
    runs["run"] = measure("run", csv_dir, dbs / "run.duckdb")
    show("run", runs["run"])
    runs["run_rules"] = measure("run_rules", csv_dir, dbs / "run_rules.duckdb")
    show("run_rules", runs["run_rules"])
    # the same run on a small export: suppression and rendering should not grow with it
    small_n = 10_000
    small_csv, _ = prepared(small_n, args.seed, HERE / "data" / f"n{small_n}_s{args.seed}")
    (dbs / "small").mkdir()
    runs[f"run_{small_n}"] = measure("run", small_csv, dbs / "small" / "run.duckdb")
    show(f"run_{small_n}", runs[f"run_{small_n}"])

    def phase(label: str, name: str) -> float:
        return runs[label]["result"]["phases"][name]

    ratios = {
        "ingest_csv / bare read_csv": ratio(runs["ingest_csv"], runs["bare_csv"]),
        "ingest_parquet / bare read_parquet": ratio(runs["ingest_parquet"], runs["bare_parquet"]),
        "segment / bare gaps-and-islands": ratio(runs["segment"], runs["bare_segment"]),
        "pandas segment / segment": ratio(runs["pandas_segment"], runs["segment"]),
        # not goals: how the segment ratio splits (see step_bare_both_merges, _write_citizens)
        "bare both merges / bare gaps-and-islands": ratio(
            runs["bare_both_merges"], runs["bare_segment"]
        ),
        "segment / bare both merges": ratio(runs["segment"], runs["bare_both_merges"]),
        "writing marts.citizens / bare gaps-and-islands (in-process)": round(
            runs["write_citizens"]["result"]["write_seconds"]
            / runs["bare_segment"]["result"]["query_seconds"],
            2,
        ),
        "report tables / one scan of the marts (in-process, medians of 3)": round(
            statistics.median(runs["report"]["result"]["tables_seconds"])
            / statistics.median(runs["bare_marts_scan"]["result"]["query_seconds_all"]),
            2,
        ),
        "report tables / one scan of the marts (in-process, first timings)": round(
            phase("report", "tables") / runs["bare_marts_scan"]["result"]["query_seconds"], 2
        ),
        f"run suppression, {n:,} / {small_n:,} citizens": round(
            phase("run", "report_suppression") / phase(f"run_{small_n}", "report_suppression"), 2
        ),
        f"run rendering, {n:,} / {small_n:,} citizens": round(
            phase("run", "report_rendering") / phase(f"run_{small_n}", "report_rendering"), 2
        ),
    }
    peak = max(
        runs[k]["peak_rss_mib"]
        for k in ("ingest_csv", "ingest_parquet", "segment", "report", "run")
    )
    goals = {  # the issues' goals, as (figure, met)
        "ingest within 2x of the bare read (csv)": ratios["ingest_csv / bare read_csv"] <= 2,
        "ingest within 2x of the bare read (parquet)": ratios["ingest_parquet / bare read_parquet"]
        <= 2,
        "segment within 2x of the bare gaps-and-islands": ratios["segment / bare gaps-and-islands"]
        <= 2,
        "segment at least 3x faster than pandas": ratios["pandas segment / segment"] >= 3,
        "report tables within 2x of one marts scan": ratios[
            "report tables / one scan of the marts (in-process, medians of 3)"
        ]
        <= 2,
        "run end to end under 30 s": runs["run"]["wall_seconds"] < 30,
        # proposed (docs/decisions.md, "The whole-run goal"): the path issue 3 set the goal
        # on, without the parts added since with goals or anchors of their own
        "publication path under 30 s (run_rules: ingest, segment, tables, suppression,"
        " page)": publication_path(runs["run_rules"]) < 30,
        "peak memory under 2 GB (2,000,000,000 bytes)": peak * 2**20 < 2e9,
    }
    # issue 15: the profile model at 10,000, 100,000 and N citizens (80 % unreviewed), in the
    # same run (bench/model.py; its children, its own cached demo data)
    import model as model_bench

    model_sizes = tuple(sorted({10_000, 100_000, n}))
    model_report = model_bench.run(model_sizes, args.seed)
    goals.update(model_report["goals_met"])
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
        "model": model_report,
        "goals_met": goals,
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
    lines += ["", "| phase of a step | s |", "|---|---:|"]
    lines += [
        f"| {k}: {name} | {sec:.2f} |"
        for k, v in runs.items()
        for name, sec in v["result"].get("phases", {}).items()
    ]
    lines += ["", f"Publication path (run_rules without the release check and the worklist):"
              f" {publication_path(runs['run_rules']):.2f} s; the model in the run (its"
              f" segment minus run_rules'):"
              f" {phase('run', 'segment') - phase('run_rules', 'segment'):.2f} s."]
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    lines += model_bench.markdown(model_report, goals=False)  # its goals: the table below
    lines += ["", "| goal | met |", "|---|---|"]
    lines += [f"| {k} | {'yes' if v else 'NO'} |" for k, v in goals.items()]
    md = "\n".join(lines) + "\n"
    (results / f"bench-{n}-{stamp}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
