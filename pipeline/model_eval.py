"""The profile model's evaluation, every run (issue 15): stratified, seeded cross-validation on
the reviewed citizens of the run.

Reads what `pipeline.model.train` reads; writes `marts.model_evaluation` (internal, long
form: one row per section x subject x group x metric, with `value`, bootstrap `lo` / `hi`
where there are intervals, and `n`, the citizens behind the figure):

- `flag` / `profile`: precision and recall per flag and per profile (out-of-fold);
- `macro_f1`: macro-F1 of the profile for the model, the majority-profile baseline, the same
  model without the notes, and a keyword matcher (what a model must beat);
- `calibration`: the reliability curve (`calibration_curve`, 10 equal-width bins) of the
  pooled flag probabilities and of the profile probability, and the expected calibration
  error (ECE) of each;
- `fairness`: by sex and by age band, each group's accuracy and, per profile, the
  false-positive and false-negative rate (bootstrap 95 % intervals), and per metric the
  largest ratio between groups (`ratio` = smallest / largest, fairlearn's convention; 1 =
  equal); `n` = the citizens the rate is over (a small group's figure is marked);
- `status`: the model step's plain message, the citizens evaluated.

The evaluation takes at most `model_eval_max_citizens` of the reviewed citizens the model
learned from (all the reviewed, or the training sample above `model_max_training_citizens`;
a seeded sample, stratified by profile): the figures' precision is then bounded by that
size, not the municipality's, and the run's cost stays flat.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from pipeline import model
from pipeline.registry import Context

# What a keyword matcher would look for: the baseline the model must beat clearly
KEYWORDS: dict[str, str] = {
    "physical_illness": r"ryg|gigt|kol\b|diabet|hjerte|fibromyalgi|piskesmæld|sklerose|migræne"
                        r"|smerte|astma|epilepsi|diskus|prolaps|fysisk",
    "psych_diagnosis": r"diagnos|ptsd|skizofren|bipolar|adhd|ocd|autis|psykose|personligheds",
    "psych_undiagnosed": r"stress|angst|nedtrykt|depress|søvn|udbrændt|selvværd|psykisk|uro",
    "alcohol": r"alkohol|drikk|drak|øl\b|spiritus|sprut|antabus|\bvin\b|ædru",
    "soft_drugs": r"hash|cannabis|\bpot\b|joint",
    "hard_drugs": r"kokain|amfetamin|heroin|metadon|piller|ecstasy|stof",
}  # fmt: skip
SEXES = {"M": "men", "K": "women"}


def keyword_flags(notes: Sequence[str | None], flags: Sequence[str]) -> np.ndarray:
    """(rows, flags): the flag is set when its keyword occurs anywhere in the note."""
    out = np.zeros((len(notes), len(flags)), bool)
    for j, f in enumerate(flags):
        pattern = re.compile(KEYWORDS.get(f, r"(?!x)x"))
        out[:, j] = [isinstance(n, str) and pattern.search(n.lower()) is not None
                     for n in notes]
    return out


def profiles_of(flag_matrix: np.ndarray, combo_rule: np.ndarray) -> np.ndarray:
    """The rules' profile of each row of set flags (via `model.combinations`' order)."""
    k = flag_matrix.shape[1]
    index = (flag_matrix.astype(np.int64) << np.arange(k)[None, :]).sum(axis=1)
    return combo_rule[index]


def ece(y_true: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: over equal-width probability bins, the gap between the
    mean probability and the observed share, weighted by the bin's share of the rows."""
    y_true, prob = np.asarray(y_true, float), np.asarray(prob, float)
    if len(prob) == 0:
        return float("nan")
    which = np.minimum((prob * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(y_true[m].mean() - prob[m].mean())
    return float(total)


def reliability(y_true: np.ndarray, prob: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """The reliability curve: per non-empty equal-width bin, the mean probability, the observed
    share and the rows (scikit-learn's `calibration_curve`, plus the counts)."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y_true, prob, n_bins=bins, strategy="uniform")
    which = np.minimum((np.asarray(prob) * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    return pd.DataFrame({"bin": np.flatnonzero(counts), "predicted": predicted,
                         "observed": observed, "n": counts[counts > 0]})  # fmt: skip


def fairness(true_profile: np.ndarray, pred_profile: np.ndarray, groups: np.ndarray,
             codes: Sequence[str], seed: int, n_boot: int = 200) -> pd.DataFrame:
    """Per group: accuracy, and per profile the false-positive and false-negative rate (one
    profile against the rest), with bootstrap 95 % intervals (percentiles of `n_boot` seeded
    resamples of the citizens), and per metric the ratio smallest / largest group value.

    Not fairlearn's MetricFrame: its bootstrap took 490 s for 14 frames of 1,600 citizens
    here; a resample is a row of multinomial weights, so every group and metric of all
    resamples is one matrix product."""
    n = len(groups)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)  # (B, n)
    names = sorted(set(groups.tolist()))
    rows = []

    def rate(hit: np.ndarray, among: np.ndarray) -> tuple[dict, dict]:
        point, boot = {}, {}
        for g in names:
            m = (groups == g) & among
            den = m.sum()
            point[g] = float(hit[m].mean()) if den else float("nan")
            with np.errstate(invalid="ignore", divide="ignore"):
                boot[g] = (weights @ (hit & m)) / (weights @ m)
        return point, boot

    metrics: list[tuple[str, str, np.ndarray, np.ndarray]] = [
        ("all", "accuracy", true_profile == pred_profile, np.ones(n, bool))]
    for c in codes:
        yt, yp = true_profile == c, pred_profile == c
        metrics += [(c, "false_positive_rate", yp & ~yt, ~yt),
                    (c, "false_negative_rate", ~yp & yt, yt)]  # fmt: skip
    for subject, metric, hit, among in metrics:
        point, boot = rate(hit, among)
        for g in names:
            lo, hi = (np.nanpercentile(boot[g], [2.5, 97.5]) if np.isfinite(boot[g]).any()
                      else (np.nan, np.nan))  # fmt: skip
            rows.append((subject, str(g), metric, point[g], float(lo), float(hi),
                         int(((groups == g) & among).sum())))  # fmt: skip
        values = [v for v in point.values() if np.isfinite(v)]
        ratio = min(values) / max(values) if values and max(values) > 0 else float("nan")
        rows.append((subject, "ratio", metric, ratio, None, None, int(among.sum())))
    return pd.DataFrame(rows, columns=["subject", "grp", "metric", "value", "lo", "hi", "n"])


def cross_validated(frame: pd.DataFrame, flags: tuple[str, ...], seed: int, folds: int,
                    use_notes: bool = True) -> np.ndarray:
    """(rows, flags): out-of-fold calibrated probabilities, folds stratified by profile."""
    from sklearn.model_selection import StratifiedKFold

    strata = frame["rules_profile"].astype(str).to_numpy()
    # a profile with fewer citizens than folds cannot be stratified: pooled with the rest
    counts = pd.Series(strata).value_counts()
    strata = np.where(pd.Series(strata).map(counts).to_numpy() < folds, "_small", strata)
    out = np.zeros((len(frame), len(flags)))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(np.zeros(len(frame)), strata):
        train, test = frame.iloc[train_idx], frame.iloc[test_idx]
        fitted, _ = model.fit(train, flags, seed, use_notes)
        x = fitted.featurizer.transform(test["notes"], model.history_matrix(test))
        out[test_idx] = fitted.probabilities(x)
    return out


def sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most `limit` rows, a seeded sample stratified by profile (all rows when fewer)."""
    return model.stratified_sample(frame, limit, seed)


def evaluate(con: duckdb.DuckDBPyConnection, ctx: Context,
             trained: model.Trained) -> pd.DataFrame:
    """The evaluation table's rows (see the module docstring)."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    cfg = ctx.cfg
    rows: list[tuple] = [("status", "model", "all", "message", None, None, None, 0,
                          trained.message),
                         ("status", "model", "all", "reason", None, None, None, 0,
                          trained.reason)]  # fmt: skip
    if trained.models is None:
        return _frame(rows)
    flags = trained.flags
    codes = tuple(ctx.params["rule_codes"])
    combo_rule = model.rule_of_combinations(con, ctx.placeholders["rule"], flags)
    reviewed = trained.frame[trained.frame["reviewed"].fillna(False).astype(bool)]
    data = sample(reviewed, cfg.model_eval_max_citizens, cfg.model_seed)
    n = len(data)
    rows += [("status", "model", "all", "citizens_evaluated", float(n), None, None, n, None),
             ("status", "model", "all", "citizens_trained", float(trained.trained_on), None,
              None, trained.trained_on, None),
             ("status", "model", "all", "citizens_reviewed", float(trained.reviewed), None,
              None, trained.reviewed, None)]  # fmt: skip
    truth = data[list(flags)].fillna(False).to_numpy(dtype=bool)
    true_profile = profiles_of(truth, combo_rule)
    p = cross_validated(data, flags, cfg.model_seed, cfg.model_cv_folds)
    pred_profile, prob = model.assign_profiles(p, combo_rule, codes)
    p_plain = cross_validated(data, flags, cfg.model_seed, cfg.model_cv_folds, use_notes=False)
    plain_profile = profiles_of(p_plain >= 0.5, combo_rule)
    keyword_profile = profiles_of(keyword_flags(list(data["notes"]), flags), combo_rule)
    majority = pd.Series(true_profile).value_counts().index[0]
    certain = prob >= cfg.model_min_probability

    for j, f in enumerate(flags):
        yt, yp = truth[:, j], p[:, j] >= 0.5
        rows += [("flag", f, "all", "precision", precision_score(yt, yp, zero_division=0),
                  None, None, int(yp.sum()), None),
                 ("flag", f, "all", "recall", recall_score(yt, yp, zero_division=0),
                  None, None, int(yt.sum()), None)]  # fmt: skip
    for c in codes:
        yt, yp = true_profile == c, pred_profile == c
        rows += [("profile", c, "all", "precision", precision_score(yt, yp, zero_division=0),
                  None, None, int(yp.sum()), None),
                 ("profile", c, "all", "recall", recall_score(yt, yp, zero_division=0),
                  None, None, int(yt.sum()), None)]  # fmt: skip

    def macro(pred: np.ndarray, among: np.ndarray | None = None) -> float:
        m = np.ones(n, bool) if among is None else among
        return float(f1_score(true_profile[m], pred[m], labels=list(codes), average="macro",
                              zero_division=0))  # fmt: skip

    rows += [
        ("macro_f1", "model", "all", "macro_f1", macro(pred_profile), None, None, n, None),
        ("macro_f1", "model_certain", "all", "macro_f1", macro(pred_profile, certain), None,
         None, int(certain.sum()), None),
        ("macro_f1", "majority_baseline", "all", "macro_f1",
         macro(np.full(n, majority, dtype=object)), None, None, n, majority),
        ("macro_f1", "no_notes_baseline", "all", "macro_f1", macro(plain_profile), None, None,
         n, None),
        ("macro_f1", "keyword_matcher", "all", "macro_f1", macro(keyword_profile), None, None,
         n, None),
    ]  # fmt: skip

    correct = (pred_profile == true_profile).astype(float)
    for subject, yt, pp in (("flags", truth.ravel().astype(float), p.ravel()),
                            ("profile", correct, prob)):
        rows.append(("calibration", subject, "all", "ece", ece(yt, pp), None, None, len(pp),
                     None))  # fmt: skip
        for r in reliability(yt, pp).itertuples():
            rows += [("calibration", subject, f"bin_{r.bin}", "predicted", float(r.predicted),
                      None, None, int(r.n), None),
                     ("calibration", subject, f"bin_{r.bin}", "observed", float(r.observed),
                      None, None, int(r.n), None)]  # fmt: skip

    sex = data["sex"].astype("object").map(SEXES).fillna("unknown").to_numpy()
    band = data["age_band"].astype("object").fillna("unknown").to_numpy()
    for by, groups in (("sex", sex), ("age_band", band)):
        table = fairness(true_profile, pred_profile, groups, codes, cfg.model_seed)
        for r in table.itertuples():
            rows.append((f"fairness_{by}", r.subject, r.grp, r.metric, r.value, r.lo, r.hi,
                         r.n, None))  # fmt: skip
    return _frame(rows)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["section", "subject", "grp", "metric", "value", "lo", "hi",
                                     "n", "note"])  # fmt: skip
    for c in ("value", "lo", "hi"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["n"] = df["n"].astype("int64")
    df["note"] = df["note"].astype("object")
    return df


def evaluation_model(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """marts.model_evaluation (internal): the run's cross-validated evaluation."""
    return evaluate(con, ctx, model.trained_for(con, ctx))
