"""Benchmark anchors for segmentation (definitions §2-§3): the same per-citizen course and M3
figures computed by vectorised pandas (the bare one-window DuckDB query is in bare_segment.py).

Reads DataFrames shaped like `staging.citizens` / `staging.episodes` (or, for the bare query,
the warehouse's `staging.episodes`); writes nothing. `synthetic_staging` fills a warehouse's
staging layer with numpy-generated citizens and episodes for timing runs.

    .venv/bin/python bench/pandas_segment.py [N_CITIZENS]   # times segment vs the anchors
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from bare_segment import bare_duckdb_courses_sql

_EPOCH = np.datetime64("1970-01-01", "D")


def _days(values: pd.Series) -> np.ndarray:
    """Dates (date objects or datetime64) as int64 days since 1970-01-01; NaT -> -1."""
    as_dt = pd.to_datetime(values)
    out = (as_dt.to_numpy(dtype="datetime64[D]") - _EPOCH).astype("int64")
    out[as_dt.isna().to_numpy()] = -1
    return out


def _islands(ids: np.ndarray, start: np.ndarray, end: np.ndarray, gap: int) -> pd.DataFrame:
    """Merge spells per citizen (sorted by citizen, start): one row per island.

    An island opens where the start lies more than gap + 1 days after the latest end so far.
    """
    frame = pd.DataFrame({"citizen_id": ids, "start": start, "end": end})
    latest_before = frame.groupby("citizen_id", sort=False)["end"].cummax()
    latest_before = latest_before.groupby(frame["citizen_id"], sort=False).shift()
    opens = latest_before.isna().to_numpy() | (start - latest_before.fillna(0).to_numpy() > gap + 1)
    island = np.cumsum(opens)
    return frame.groupby(island, sort=False).agg(
        citizen_id=("citizen_id", "first"), first=("start", "min"), last=("end", "max")
    )


def _spells(episodes: pd.DataFrame, mask: np.ndarray, ref: int) -> tuple[np.ndarray, ...]:
    """The kept spells (start <= ref), clipped to ref, sorted by citizen and start."""
    start = _days(episodes["start_date"])
    end = _days(episodes["end_date"])
    end = np.where((end < 0) | (end > ref), ref, end)
    keep = mask & (start <= ref)
    ids = episodes["citizen_id"].to_numpy()[keep]
    start, end = start[keep], end[keep]
    order = np.lexsort((end, start, ids))
    return ids[order], start[order], end[order]


def pandas_segment(citizens: pd.DataFrame, episodes: pd.DataFrame, cfg: Any) -> pd.DataFrame:
    """Per citizen: courses, course_class, current_course_days, support_days_total, m3_days.

    `cfg` is a `pipeline.config.Config` (its reference_date resolved or set).
    """
    cfg = cfg.resolved()
    ref = int((np.datetime64(cfg.reference_date, "D") - _EPOCH).astype("int64"))
    gap = cfg.course_gap_days

    support = ~episodes["benefit"].isin(list(cfg.support_excluded)).to_numpy()
    ids, start, end = _spells(episodes, support, ref)
    courses = _islands(ids, start, end, gap)
    courses["days"] = courses["last"] - courses["first"] + 1
    courses["covers"] = (courses["first"] <= ref) & (ref <= courses["last"])
    covered = _islands(ids, start, end, 0)  # gap 0: distinct days covered
    covered["days"] = covered["last"] - covered["first"] + 1

    by_course = courses.groupby("citizen_id").agg(courses=("days", "size"), longest=("days", "max"))
    by_course["current_course_days"] = (
        courses[courses["covers"]].groupby("citizen_id")["days"].max()
    )
    by_course["support_days_total"] = covered.groupby("citizen_id")["days"].sum()

    m3 = episodes["match_group"].isin(list(cfg.m3_groups)).to_numpy()
    m3_stretches = _islands(*_spells(episodes, m3, ref), gap)
    m3_stretches["days"] = m3_stretches["last"] - m3_stretches["first"] + 1
    now = (m3_stretches["first"] <= ref) & (ref <= m3_stretches["last"])
    m3_days = m3_stretches[now].groupby("citizen_id")["days"].max()

    out = pd.DataFrame({"citizen_id": citizens["citizen_id"].to_numpy()})
    out = out.join(by_course, on="citizen_id").join(m3_days.rename("m3_days"), on="citizen_id")
    n = out["courses"].fillna(0).astype("int64")
    out["courses"] = n
    out["course_class"] = np.select(
        [n == 0, n >= 2, out["longest"] > cfg.long_course_days],
        ["no_history", "several_separate", "long_continuous"],
        "short_continuous",
    )
    for col in ("current_course_days", "support_days_total", "m3_days"):
        out[col] = out[col].fillna(0).astype("int64")
    return out.drop(columns="longest")


def synthetic_staging(con: Any, n_citizens: int, seed: int = 0, reference_date=None) -> None:
    """Fill `staging.citizens` / `staging.episodes` with a random export (~4.5 episodes each).

    Each citizen has 1-8 episodes laid end to end with random gaps (0-120 days) from a start
    up to 10 years before the reference date; some run past it, some are ongoing.
    """
    from pipeline.vocabulary import BENEFITS, FLAG_COLUMNS

    ref = np.datetime64(reference_date or dt.date(2024, 6, 30), "D")
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.arange(n_citizens).astype(str))
    citizens = pd.DataFrame(
        {
            "citizen_id": ids,
            "birth_year": rng.integers(1955, 2006, n_citizens, dtype=np.int32),
            "sex": rng.choice(np.array(["K", "M"], dtype=object), n_citizens),
            "municipality_code": np.full(n_citizens, 320, dtype=np.int32),
            "match_group": rng.choice(
                np.array(["3", "aktivitetsparat", "2", None], dtype=object),
                n_citizens,
                p=[0.5, 0.2, 0.1, 0.2],
            ),
            "reviewed": rng.random(n_citizens) < 0.9,
            **{c: rng.random(n_citizens) < 0.15 for c in FLAG_COLUMNS},
            "departments_involved": rng.integers(0, 6, n_citizens).astype(np.int32),
            "notes": np.full(n_citizens, None, dtype=object),
            "_file": "citizens.csv",
            "_line": np.arange(2, n_citizens + 2, dtype=np.int64),
        }
    )
    per = rng.integers(1, 9, n_citizens)
    n = int(per.sum())
    owner = np.repeat(np.arange(n_citizens), per)
    length = rng.integers(1, 700, n)
    gap = rng.integers(0, 121, n)
    step = length + gap
    first = np.repeat(np.cumsum(per) - per, per)  # index of each citizen's first episode
    before = np.cumsum(step) - step  # sum of all earlier steps
    offset = before - before[first]  # sum of this citizen's earlier steps
    origin = ref - rng.integers(30, 3650, n_citizens).astype("timedelta64[D]")
    start = np.repeat(origin, per) + offset.astype("timedelta64[D]")
    end = start + (length - 1).astype("timedelta64[D]")
    ongoing = rng.random(n) < 0.1
    episodes = pd.DataFrame(
        {
            "citizen_id": ids[owner],
            "start_date": start,
            "end_date": pd.Series(end).mask(ongoing),
            "benefit": rng.choice(np.array(BENEFITS, dtype=object), n),
            "match_group": rng.choice(
                np.array(["3", "aktivitetsparat", "2", "1", None], dtype=object), n
            ),
            "_file": "episodes.csv",
            "_line": np.arange(2, n + 2, dtype=np.int64),
        }
    )
    con.register("_citizens_df", citizens)
    con.register("_episodes_df", episodes)
    con.execute("create or replace table staging.citizens as select * from _citizens_df")
    con.execute(
        "create or replace table staging.episodes as select citizen_id,"
        " start_date::date as start_date, end_date::date as end_date, benefit, match_group,"
        " _file, _line from _episodes_df"
    )
    con.unregister("_citizens_df")
    con.unregister("_episodes_df")


def main(n_citizens: int = 1_000_000) -> None:
    """Time segment() against the pandas anchor and the bare one-window query."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from pipeline.config import Config
    from pipeline.rules import load_rules
    from pipeline.segment import model_params, segment
    from pipeline.warehouse import bind, connect

    cfg = Config(reference_date=dt.date(2024, 6, 30))
    con = connect()
    t = time.perf_counter()
    synthetic_staging(con, n_citizens)
    n_eps = con.execute("select count(*) from staging.episodes").fetchall()[0][0]
    print(f"staging: {n_citizens:,} citizens, {n_eps:,} episodes ({time.perf_counter() - t:.1f} s)")

    params = model_params(cfg, load_rules())
    t = time.perf_counter()
    con.execute(
        f"create or replace table bare_courses as {bare_duckdb_courses_sql}",
        bind(bare_duckdb_courses_sql, params),
    )
    print(f"bare one-window query: {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    result = segment(con, cfg, load_rules())
    print(f"segment (models + checks + summary): {time.perf_counter() - t:.2f} s")
    print(f"  in scope {result.in_scope:,}; shares {result.profile_shares}")

    citizens = con.execute("select citizen_id from staging.citizens").df()
    episodes = con.execute("select * from staging.episodes").df()
    t = time.perf_counter()
    pandas_segment(citizens, episodes, cfg)
    print(f"pandas_segment: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
