"""The report's model card (issue 15): what the profile model is for, its inputs and
exclusions, its training size and its evaluation, from `marts.model_evaluation`.

Reads `marts.model_evaluation` and the release (`pipeline.release.Release`: the headline's
model-assigned and uncertain counts, the age table's hidden cells); writes nothing (the page
renders the dict `card` returns with `templates/_model_card.html.j2`, texts from
labels.toml's `[model_card]`, in the run's language).

Every number the card publishes goes through the suppression's small-count rule
(definitions §6; docs/disclosure.md "The model card"):

- the model-assigned and uncertain counts are the headline's (suppressed with the tables);
- the training size and the citizens evaluated are shown when the configured cap set them
  (a constant) or when they differ from the headline's reviewed count by 0 or at least
  `min_cell` (else the difference, reviewed citizens outside the tables, is a small count);
- the groups of the fairness tables (sex, age band) and the reliability curve's bins are
  partitions of the citizens evaluated: a group with 1 to `min_cell - 1` citizens is hidden
  (`c`, with every rate over it, since a rate times its count is a count), an age band the
  release hides in its age table is hidden, and when that leaves exactly one group of a
  partition hidden, the next smallest is hidden too (the total minus the shown groups would
  otherwise give it); a profile's false-positive or false-negative rate in a shown group is
  shown when the citizens it is over number at least `min_cell`; the largest ratio between
  groups is taken over the shown rates only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb

from pipeline.config import Config
from pipeline.labels import Labels
from pipeline.suppression import TOTAL

HIDDEN = "c"


def _t(lb: Labels, key: str, **fmt: Any) -> str:
    return lb.cat["model_card"][key][lb.lang].format(**fmt)


def protect(counts: Mapping[str, int], min_cell: int,
            forced: Iterable[str] = ()) -> tuple[set[str], bool]:
    """(groups to hide, whether the partition's total must be hidden too) for one partition
    of the citizens evaluated: the small groups (1 to min_cell - 1) and the `forced` ones;
    when exactly one group is hidden, the smallest shown non-empty group is hidden with it,
    or, when there is none, the total."""
    if min_cell <= 1:  # suppression off (min_cell 0 or 1): everything is shown
        return set(), False
    hidden = {g for g, n in counts.items() if 1 <= n < min_cell} | set(forced)
    if len(hidden) != 1:
        return hidden, False
    rest = sorted((n, g) for g, n in counts.items() if g not in hidden and n > 0)
    if rest:
        return hidden | {rest[0][1]}, False
    return hidden, True


def safe_size(n: int | None, capped: bool, reviewed: int | None, min_cell: int) -> bool:
    """Whether a count of reviewed citizens outside the tables (training size, evaluated)
    may be shown beside the headline's reviewed count."""
    if n is None:
        return False
    if capped or min_cell <= 1:
        return True
    if reviewed is None or 1 <= n < min_cell:
        return False
    return n - reviewed == 0 or n - reviewed >= min_cell


def card(con: duckdb.DuckDBPyConnection, cfg: Config, lb: Labels,
         release: Any = None) -> dict[str, Any] | None:
    """The model card's texts and figures; None when the warehouse has no evaluation.
    `release`: the run's `Release` (its headline and tables); without one every count
    outside the tables is hidden unless the suppression is off."""
    exists = con.execute(
        "select count(*) from information_schema.tables"
        " where table_schema = 'marts' and table_name = 'model_evaluation'"
    ).fetchone()[0]
    if not exists:
        return None
    rows = con.execute(
        "select section, subject, grp, metric, value, lo, hi, n, note from marts.model_evaluation"
    ).fetchall()
    min_cell = cfg.min_cell
    head = getattr(release, "headline", None)

    def pct(v: float | None) -> str:
        return "-" if v is None or v != v else f"{100 * v:.0f} %".replace(".", ",")

    def status(metric: str) -> Any:
        return next((r for r in rows if r[0] == "status" and r[3] == metric), None)

    reason = status("reason")
    out: dict[str, Any] = {
        "heading": _t(lb, "heading"), "purpose": _t(lb, "purpose"),
        "inputs": _t(lb, "inputs"), "excluded": _t(lb, "excluded"),
        "limits": _t(lb, "limits"), "message": None, "trained": False,
        "t": {k: _t(lb, k) for k in ("curve", "predicted", "observed", "citizens", "fairness",
                                     "group", "n", "accuracy", "interval", "ratio")},
    }  # fmt: skip
    if reason is not None and reason[8] in ("too_few", "no_flags"):
        # the run's language, and no counts (the reviewed citizens per flag are unsuppressed)
        out["message"] = _t(lb, f"no_model_{reason[8]}", n=cfg.model_min_reviewed_per_flag)
    evaluated = status("citizens_evaluated")
    if evaluated is None:
        return out
    trained_row = status("citizens_trained")
    reviewed_all = status("citizens_reviewed")
    reviewed = head.reviewed if head is not None else None
    all_n = int(reviewed_all[7]) if reviewed_all is not None else None

    def size(n: int | None, cap: int) -> str:
        if n is None:
            return HIDDEN
        capped = all_n is not None and n < all_n and n == cap
        return lb.n(n) if safe_size(n, capped, reviewed, min_cell) else HIDDEN

    f1 = {r[1]: r[4] for r in rows if r[0] == "macro_f1"}
    ece = {r[1]: r[4] for r in rows if r[0] == "calibration" and r[3] == "ece"}
    sizes = []
    if trained_row is not None:
        sizes.append((_t(lb, "trained_on"),
                      size(int(trained_row[7]), cfg.model_max_training_citizens)))
    sizes += [
        (_t(lb, "evaluated"), size(int(evaluated[7]), cfg.model_eval_max_citizens)),
        (_t(lb, "model_assigned"), lb.n(head.model) if head is not None else HIDDEN),
        (_t(lb, "uncertain"), lb.n(head.uncertain) if head is not None else HIDDEN),
    ]
    if min_cell <= 1 and head is None:  # suppression off: the warehouse's counts as they are
        sources = dict(con.execute("select profile_source, count(*) from marts.citizens"
                                   " where in_scope group by all").fetchall())  # fmt: skip
        sizes[-2:] = [(_t(lb, "model_assigned"), lb.n(sources.get("model", 0))),
                      (_t(lb, "uncertain"), lb.n(sources.get("uncertain", 0)))]
    out.update(
        trained=True,
        sizes=sizes,
        scores=[(_t(lb, f"f1_{k}"), pct(f1.get(k))) for k in
                ("model", "majority_baseline", "no_notes_baseline", "keyword_matcher")],
        calibration=[(_t(lb, f"ece_{k}"), pct(ece.get(k))) for k in ("flags", "profile")],
        curve=_curve(rows, min_cell, pct, lb),
        fairness=[_fairness(rows, by, min_cell, pct, lb, _forced(release, by))
                  for by in ("sex", "age_band")],
    )  # fmt: skip
    return out


def _curve(rows: list[tuple], min_cell: int, pct: Any, lb: Labels) -> list[tuple[str, ...]]:
    """The reliability curve's bins: (predicted, observed, flags); a hidden bin shows its
    mean probability only (observed share x flags = a count)."""
    bins = {r[2]: r for r in rows if r[0] == "calibration" and r[1] == "flags"
            and r[3] == "predicted"}  # fmt: skip
    observed = {r[2]: r for r in rows if r[0] == "calibration" and r[1] == "flags"
                and r[3] == "observed"}  # fmt: skip
    hidden, _ = protect({b: int(r[7]) for b, r in bins.items()}, min_cell)
    out = []
    for b in sorted(bins, key=lambda k: int(k.removeprefix("bin_"))):
        p, o = bins[b], observed[b]
        shown = b not in hidden
        out.append((pct(p[4]), pct(o[4]) if shown else HIDDEN,
                    lb.n(int(p[7])) if shown else HIDDEN))  # fmt: skip
    return out


def _forced(release: Any, by: str) -> set[str]:
    """The age bands whose citizens the release hides in its age table (the card's band is
    a subset of them: showing it beside a hidden cell would narrow that cell)."""
    if by != "age_band" or release is None:
        return set()
    table = next((t for t in release.tables if t.id == "age_groups"), None)
    if table is None:
        return set()
    return {c for c in table.cols if table.cell(TOTAL, c).hidden}


def _fairness(rows: list[tuple], by: str, min_cell: int, pct: Any, lb: Labels,
              forced: set[str]) -> dict[str, Any]:
    """One fairness table: the groups as columns (with their citizens), accuracy and each
    profile's false-positive and false-negative rate as rows, `rate (lo-hi)` per cell, and
    the ratio smallest / largest of the shown rates."""
    section = f"fairness_{by}"
    mine = [r for r in rows if r[0] == section and r[2] != "ratio"]
    size = {r[2]: int(r[7]) for r in mine if r[1] == "all" and r[3] == "accuracy"}
    order = list(size)
    hidden, _ = protect(size, min_cell, forced & set(size))
    def name(g: str) -> str:
        if by == "sex":
            return _t(lb, {"men": "men", "women": "women"}.get(g, "sex_unknown"))
        return lb.col(g)

    groups = [(name(g), lb.n(size[g]) if g not in hidden else HIDDEN) for g in order]
    by_key = {(r[1], r[3], r[2]): r for r in mine}
    metrics = [("all", "accuracy", _t(lb, "accuracy"))]
    profiles = sorted({r[1] for r in mine if r[1] != "all"},
                      key=[r[1] for r in mine].index)  # fmt: skip
    for code in profiles:
        label = lb.row(code)
        metrics += [(code, "false_positive_rate", _t(lb, "fpr", profile=label)),
                    (code, "false_negative_rate", _t(lb, "fnr", profile=label))]  # fmt: skip
    table = []
    for subject, metric, label in metrics:
        cells, shown_values = [], []
        for g in order:
            r = by_key.get((subject, metric, g))
            if g in hidden:
                cells.append(HIDDEN)
                continue
            if r is None or r[4] is None or r[4] != r[4]:  # a rate over no citizens
                cells.append("-")
                continue
            if min_cell > 1 and int(r[7]) < min_cell:
                cells.append(HIDDEN)
                continue
            shown_values.append(r[4])
            cells.append(f"{pct(r[4])} ({pct(r[5])}-{pct(r[6])})")
        ratio = (pct(min(shown_values) / max(shown_values))
                 if len(shown_values) >= 2 and max(shown_values) > 0 else "-")  # fmt: skip
        table.append((label, cells, ratio))
    return {"caption": _t(lb, "fairness_caption", by=_t(lb, section)), "groups": groups,
            "rows": table}  # fmt: skip
