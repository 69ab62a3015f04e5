"""The report's model card (issue 15): what the profile model is for, its inputs and
exclusions, its training size and its evaluation, from `marts.model_evaluation`.

Reads `marts.model_evaluation` and `marts.citizens`; writes nothing (the page renders the
dict `card` returns with `templates/_model_card.html.j2`, texts from labels.toml's
`[model_card]`). Every count shown follows the suppression's small-count rule (definitions
§6): a count between 1 and `min_cell - 1` is not shown, and a group's rate is shown only
when the group has at least `min_cell` citizens (a rate over 3 citizens is a small count).
"""

from __future__ import annotations

from typing import Any

import duckdb

from pipeline.config import Config
from pipeline.labels import Labels


def _t(lb: Labels, key: str, **fmt: Any) -> str:
    return lb.cat["model_card"][key][lb.lang].format(**fmt)


def card(con: duckdb.DuckDBPyConnection, cfg: Config, lb: Labels) -> dict[str, Any] | None:
    """The model card's texts and figures; None when the warehouse has no evaluation."""
    exists = con.execute(
        "select count(*) from information_schema.tables"
        " where table_schema = 'marts' and table_name = 'model_evaluation'"
    ).fetchone()[0]
    if not exists:
        return None
    rows = con.execute(
        "select section, subject, grp, metric, value, lo, hi, n, note from marts.model_evaluation"
    ).fetchall()

    def small(k: int | None) -> bool:
        return k is None or (cfg.min_cell > 1 and 1 <= k < cfg.min_cell)

    def count(k: int | None) -> str:
        return "c" if small(k) else lb.n(k)

    def pct(v: float | None) -> str:
        return "-" if v is None or v != v else f"{100 * v:.0f} %".replace(".", ",")

    message = next((r[8] for r in rows if r[0] == "status" and r[3] == "message"), None)
    out: dict[str, Any] = {
        "heading": _t(lb, "heading"), "purpose": _t(lb, "purpose"),
        "inputs": _t(lb, "inputs"), "excluded": _t(lb, "excluded"),
        "limits": _t(lb, "limits"), "message": message, "trained": False,
        "t": {k: _t(lb, k) for k in ("curve", "predicted", "observed", "citizens", "fairness",
                                     "group", "n", "accuracy", "interval")},
    }  # fmt: skip
    evaluated = next((r[7] for r in rows if r[0] == "status" and r[3] == "citizens_evaluated"),
                     None)  # fmt: skip
    if evaluated is None:
        return out
    sources = dict(con.execute(
        "select profile_source, count(*) from marts.citizens where in_scope group by all"
    ).fetchall())  # fmt: skip
    f1 = {r[1]: r[4] for r in rows if r[0] == "macro_f1"}
    ece = {r[1]: r[4] for r in rows if r[0] == "calibration" and r[3] == "ece"}
    out.update(
        trained=True,
        sizes=[
            (_t(lb, "evaluated"), count(evaluated)),
            (_t(lb, "model_assigned"), count(sources.get("model", 0))),
            (_t(lb, "uncertain"), count(sources.get("uncertain", 0))),
        ],
        scores=[(_t(lb, f"f1_{k}"), pct(f1.get(k))) for k in
                ("model", "majority_baseline", "no_notes_baseline", "keyword_matcher")],
        calibration=[(_t(lb, f"ece_{k}"), pct(ece.get(k))) for k in ("flags", "profile")],
        curve=[
            (pct(p[4]), pct(o[4]), count(p[7]))
            for p in rows if p[0] == "calibration" and p[1] == "flags" and p[3] == "predicted"
            for o in rows if o[0] == "calibration" and o[1] == "flags" and o[2] == p[2]
            and o[3] == "observed"
        ],
        fairness=[],
    )
    for section in ("fairness_sex", "fairness_age_band"):
        for r in rows:
            if r[0] != section or r[1] != "all" or r[3] != "accuracy" or r[2] == "ratio":
                continue
            shown = not small(r[7])
            group = {"men": _t(lb, "men"), "women": _t(lb, "women")}.get(r[2], r[2])
            out["fairness"].append((
                _t(lb, section), group.replace("_", "-"), count(r[7]),
                pct(r[4]) if shown else "c",
                f"{pct(r[5])} - {pct(r[6])}" if shown else "c",
            ))  # fmt: skip
    return out
