"""A demo that evolves (issue 16, item 3): a series of exports of one population, one per
night (or month), in which citizens leave match group 3 (to jobparat, fleksjob, førtidspension
or off public support), enter it, get reviewed, and get a diagnosis that changes their
profile. Deterministic per seed.

Writes `<out>/<reference date>/citizens.csv` and `episodes.csv` for each night, in the same
format as `m3-profiles demo` (which makes the first night's population).

Rates are per 30 days and scale with the step (`1 - (1 - p) ** (every / 30)`). Calibrated on
the seeds: Odense's Camp 100 saw about 30 % of its participants out of *aktivitetsparat*
after about a year (95 % interval roughly 25-35 %). Leaving M3 at 3.2 % a month for the maybe
suitable, 1.3 % for the physically ill and 1.7 % for the rest, on top of the spells that end
in the first night's own histories, takes 32 % (seed 11) and 34 % (seed 12) of the citizens
in M3 on the first night out of M3 twelve monthly steps later (3,000 citizens; a test keeps
it within 25-35 %). Faxe found about half of the citizens in M3 there for more than a year,
which the first night's population (`pipeline.demo`, calibrated on Faxe) carries. Reviews:
8 % of the unreviewed a month (Faxe reviewed about 100 case files in a few months);
entrants: new citizens, 2.5 % a month of those in M3, unreviewed, roughly replacing the
leavers (each a copy of a random citizen's person and flags, with a new id and a first
episode in M3 from the night on).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import demo
from pipeline.config import Config

# per 30 days
LEAVE_M3 = {"maybe_suitable": 0.032, "physically_ill": 0.013, "other": 0.017}
DESTINATIONS = ("jobparat", "fleksjob", "foertidspension", "off_support")
DESTINATION_SHARES = (0.45, 0.12, 0.13, 0.30)
REVIEW = 0.08
DIAGNOSIS = 0.02  # psych_undiagnosed -> psych_diagnosis (diffuse psychiatric -> diagnosed)
# new citizens entering M3 per 30 days, as a share of those in M3: about the leaving rate,
# so the caseload shrinks only slowly (2,790 -> 2,628 in a year at 3,000 citizens, seed 11)
ENTER_M3 = 0.025


@dataclass(frozen=True)
class Night:
    reference_date: dt.date
    folder: Path
    in_m3: int
    left: int
    entered: int
    reviewed: int
    diagnosed: int


def _rate(p30: float, every: int) -> float:
    return 1.0 - (1.0 - p30) ** (every / 30.0)


def _covering(episodes: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """Each citizen's episode covering `day` (the latest started, as definitions §3 reads the
    match group), with its row index."""
    ep = episodes[(episodes["start_date"] <= day)
                  & (episodes["end_date"].isna() | (episodes["end_date"] >= day))]
    return ep.sort_values(["citizen_id", "start_date"]).groupby("citizen_id").tail(1)


def write_series(
    out_dir: Path,
    n: int,
    seed: int,
    last: dt.date,
    nights: int,
    every: int = 30,
    unreviewed_share: float = 0.2,
) -> list[Night]:
    """Write `nights` exports, `every` days apart, the last on `last`."""
    if nights < 1 or every < 1:
        raise ValueError("nights and every must be at least 1")
    first = last - dt.timedelta(days=every * (nights - 1))
    # every citizen's true flags: the series reveals them as reviews happen
    citizens, episodes = demo.generate(n, seed, first, unreviewed_share=0.0)
    truth = citizens[list(demo.FLAG_COLUMNS)].fillna(False).astype(bool)
    rng = np.random.default_rng([seed, 16, 0])
    reviewed = rng.random(n) >= unreviewed_share
    m3 = set(Config().m3_groups)
    out: list[Night] = []
    for k in range(nights):
        day = first + dt.timedelta(days=every * k)
        ts = pd.Timestamp(day)
        counts = {"left": 0, "entered": 0, "reviewed": 0, "diagnosed": 0}
        if k:
            rng = np.random.default_rng([seed, 16, k])
            citizens, episodes, truth, reviewed, counts = _step(
                rng, k, citizens, episodes, truth, reviewed, ts, every, m3)
        cit = citizens.copy()
        cit["reviewed"] = reviewed
        for name in demo.FLAG_COLUMNS:
            cit[name] = pd.Series(pd.arrays.BooleanArray(truth[name].to_numpy(), ~reviewed))
        folder = Path(out_dir) / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        demo._write_csv(folder / "citizens.csv", demo._citizens_text(cit))
        demo._write_csv(folder / "episodes.csv", demo._episodes_text(episodes))
        cover = _covering(episodes, ts)
        out.append(Night(day, folder, int(cover["match_group"].isin(m3).sum()), **counts))
    return out


def _step(rng: np.random.Generator, k: int, citizens: pd.DataFrame, episodes: pd.DataFrame,
          truth: pd.DataFrame, reviewed: np.ndarray, day: pd.Timestamp, every: int,
          m3: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray,
                                 dict[str, int]]:
    """One step to `day`: who leaves M3 (the covering episode ends the day before; a new one
    starts on `day` unless off support), who is reviewed, who is diagnosed, and the new
    citizens entering M3. Returns citizens, episodes, truth and reviewed after the step."""
    before = day - pd.Timedelta(days=every)
    cover = _covering(episodes, before)
    in_m3 = cover[cover["match_group"].isin(m3)]
    index = pd.Series(np.arange(len(citizens)), index=citizens["citizen_id"])
    flags = truth.iloc[index[in_m3["citizen_id"]].to_numpy()]
    other = ["psych_diagnosis", "psych_undiagnosed", "alcohol", "soft_drugs", "hard_drugs"]
    any_other = flags[other].any(axis=1).to_numpy()
    ill = flags["physical_illness"].to_numpy()
    p = np.where(~any_other & ~ill, LEAVE_M3["maybe_suitable"],
                 np.where(~any_other, LEAVE_M3["physically_ill"], LEAVE_M3["other"]))
    leave = rng.random(len(in_m3)) < 1.0 - (1.0 - p) ** (every / 30.0)
    leavers = in_m3[leave]
    dest = np.asarray(DESTINATIONS)[
        rng.choice(len(DESTINATIONS), size=len(leavers), p=DESTINATION_SHARES)]

    episodes = episodes.copy()
    episodes.loc[leavers.index.to_numpy(), "end_date"] = day - pd.Timedelta(days=1)
    moved = leavers[dest != "off_support"]
    dest = dest[dest != "off_support"]
    new_episodes = [episodes, pd.DataFrame({
        "citizen_id": moved["citizen_id"].to_numpy(),
        "start_date": day,
        "end_date": pd.NaT,
        "benefit": np.where(dest == "jobparat", moved["benefit"].to_numpy(), dest),
        "match_group": np.where(
            dest == "jobparat",
            np.where(moved["match_group"].to_numpy() == "aktivitetsparat", "jobparat", "2"),
            None),
    })]

    review = ~reviewed & (rng.random(len(reviewed)) < _rate(REVIEW, every))
    reviewed = reviewed | review
    diagnose = (reviewed & truth["psych_undiagnosed"].to_numpy()
                & (rng.random(len(reviewed)) < _rate(DIAGNOSIS, every)))
    truth = truth.copy()
    truth.loc[diagnose, "psych_undiagnosed"] = False
    truth.loc[diagnose, "psych_diagnosis"] = True

    # entrants: copies of random citizens (person and flags), new ids, unreviewed
    m = int(rng.binomial(len(in_m3), _rate(ENTER_M3, every)))
    template = rng.integers(0, len(citizens), size=m)
    ids = [f"N{k:03d}{i:06d}" for i in range(m)]
    joined = citizens.iloc[template].copy()
    joined["citizen_id"] = ids
    citizens = pd.concat([citizens, joined], ignore_index=True)
    truth = pd.concat([truth, truth.iloc[template]], ignore_index=True)
    reviewed = np.concatenate([reviewed, np.zeros(m, dtype=bool)])
    new_episodes.append(pd.DataFrame({
        "citizen_id": ids, "start_date": day, "end_date": pd.NaT,
        "benefit": "kontanthjaelp", "match_group": "aktivitetsparat",
    }))
    episodes = pd.concat(new_episodes, ignore_index=True)
    episodes["start_date"] = episodes["start_date"].astype("datetime64[s]")
    episodes["end_date"] = episodes["end_date"].astype("datetime64[s]")
    counts = {"left": int(len(leavers)), "entered": m, "reviewed": int(review.sum()),
              "diagnosed": int(diagnose.sum())}
    return citizens, episodes, truth, reviewed, counts
