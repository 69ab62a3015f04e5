"""The model in the published report (issue 15, item 6): the headline's reviewed / model /
uncertain split inside the suppression, every count of the model card through the
small-count rule (with an attack on the card's partitions), the no-model message in the
run's language, and citizens.parquet's probability and reasons. Real demo files through
the real stages; no mocks."""

from __future__ import annotations

import datetime as dt
import json
import re

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline import model_card
from pipeline.config import Config
from pipeline.demo import write_demo
from pipeline.labels import Labels
from pipeline.release import publish
from pipeline.runner import STAGES, run_stages

REF = dt.date(2024, 6, 30)
N, SEED = 3000, 42
CFG = Config(reference_date=REF)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3,000-citizen demo (600 unreviewed) through every stage."""
    root = tmp_path_factory.mktemp("card")
    write_demo(root / "in", n=N, seed=SEED, reference_date=REF)
    run_stages(STAGES, root / "out", CFG, input_dir=root / "in")
    return root / "out"


def released(out, **changes):
    """The release and the model card of the run's warehouse under another config (the
    report stage's models rebuilt in a transaction that is rolled back)."""
    cfg = Config(reference_date=REF, **changes).resolved()
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    try:
        con.execute("begin transaction")
        rel = publish(con, cfg)
        card = model_card.card(con, cfg, Labels(cfg.lang, rel.profiles), rel)
        truth = dict(con.execute("select profile_source, count(*) from marts.citizens"
                                 " where in_scope group by all").fetchall())  # fmt: skip
        evaluation = con.execute("select section, subject, grp, metric, n"
                                 " from marts.model_evaluation").fetchall()  # fmt: skip
        con.execute("rollback")
    finally:
        con.close()
    return rel, card, truth, evaluation


# --- the headline ---------------------------------------------------------------------------


def test_headline_splits_reviewed_model_uncertain(run):
    rel, _, truth, _ = released(run)
    head = rel.headline
    assert truth["model"] > 0 and truth["uncertain"] > 0
    assert (head.reviewed, head.model, head.uncertain) == (
        truth["rules"], truth["model"], truth["uncertain"])
    assert head.reviewed + head.model == head.profiled.n
    # a model was trained: every unreviewed citizen is the model's or uncertain
    assert head.unreviewed == head.uncertain
    page = (run / "publish" / "report.html").read_text(encoding="utf-8")
    def da(n: int) -> str:
        return f"{n:,}".replace(",", ".")

    assert f"fra gennemgang {da(head.reviewed)}, fra modellen {da(head.model)}" in page
    assert f"modellen usikker, til gennemgang {da(head.uncertain)}" in page


def test_a_small_uncertain_count_is_hidden_and_cannot_be_worked_out(run):
    _, _, truth, _ = released(run)
    rel, _, _, _ = released(run, min_cell=truth["uncertain"] + 1)
    head = rel.headline
    assert head.uncertain is None and head.unreviewed is None
    # in scope = with a profile + unreviewed (= uncertain): not both shown
    assert head.in_scope is None or head.profiled.n is None
    # reviewed + model = with a profile: not exactly one of the three hidden
    hidden = [v is None for v in (head.reviewed, head.model, head.profiled.n)]
    assert sum(hidden) != 1


# --- the model card -------------------------------------------------------------------------


def test_protect_hides_small_groups_and_one_more():
    assert model_card.protect({"a": 3, "b": 50, "c": 60}, 5) == ({"a", "b"}, False)
    assert model_card.protect({"a": 3, "b": 2, "c": 60}, 5) == ({"a", "b"}, False)
    assert model_card.protect({"a": 0, "b": 50}, 5) == (set(), False)  # zero is shown
    assert model_card.protect({"a": 50, "b": 60, "c": 70}, 5, {"b"}) == ({"a", "b"}, False)
    assert model_card.protect({"a": 3, "b": 0}, 5) == ({"a"}, True)  # nothing else: the total
    assert model_card.protect({"a": 3, "b": 50}, 0) == (set(), False)  # suppression off
    # a count of reviewed citizens beside the headline's reviewed count
    assert model_card.safe_size(2400, False, 2400, 5)  # the same number
    assert not model_card.safe_size(2403, False, 2400, 5)  # 3 reviewed outside the tables
    assert model_card.safe_size(2410, False, 2400, 5)
    assert model_card.safe_size(3000, True, 2, 5)  # the cap: a configured constant
    assert not model_card.safe_size(2400, False, None, 5)  # the headline's is hidden


def _groups(fair: dict) -> dict[str, str]:
    return dict(fair["groups"])


def test_card_counts_are_suppressed_and_a_hidden_group_cannot_be_derived(run):
    """The attack: the card shows the citizens evaluated and each group's count; a hidden
    group must not be the evaluated total minus the shown groups (so at least two are
    hidden), no group with 1 to min_cell - 1 citizens is shown, nor any rate over it, and
    an age band the age table hides is hidden in the card too."""
    _, _, _, evaluation = released(run)
    bands = sorted(n for s, subj, g, m, n in evaluation
                   if s == "fairness_age_band" and subj == "all" and m == "accuracy"
                   and g != "ratio")  # fmt: skip
    min_cell = bands[0] + 1  # exactly one band is a small count
    assert bands[1] >= min_cell
    rel, card, _, evaluation = released(run, min_cell=min_cell)
    size = {(s, g): n for s, subj, g, m, n in evaluation
            if s.startswith("fairness_") and subj == "all" and m == "accuracy" and g != "ratio"}
    evaluated = dict(card["sizes"])[Labels("da", rel.profiles).cat["model_card"]
                                    ["evaluated"]["da"]]
    for fair, section in zip(card["fairness"], ("fairness_sex", "fairness_age_band"),
                             strict=True):
        groups = _groups(fair)
        hidden = [g for g, n in groups.items() if n == "c"]
        for n in groups.values():
            if n != "c":
                assert int(n.replace(".", "")) >= min_cell
        if evaluated != "c":
            # total - shown = the hidden groups' sum: it must not be one group's count
            assert len(hidden) != 1, (section, groups)
        # every rate of a hidden group is hidden
        index = list(groups)
        for _, cells, _ in fair["rows"]:
            for g in hidden:
                assert cells[index.index(g)] == "c"
    # the smallest band is hidden, and a second band with it
    age = card["fairness"][1]
    assert sum(n == "c" for n in _groups(age).values()) >= 2
    # a band the age table hides is hidden in the card
    table = next(t for t in rel.tables if t.id == "age_groups")
    labels = {g: n for g, n in zip(
        [g for s, g in size if s == "fairness_age_band"], _groups(age).values(), strict=True)}
    for c in table.cols:
        if table.cell("total", c).hidden and c in labels:
            assert labels[c] == "c"
    # the reliability curve's bins: a hidden bin's count and observed share both hidden
    for _, observed, n in card["curve"]:
        assert (observed == "c") == (n == "c")
        if n != "c":
            assert int(n.replace(".", "")) >= min_cell


def test_card_shows_every_rate_by_group_with_intervals_and_the_ratio(run):
    rel, card, _, _ = released(run, min_cell=0)
    profiles = len(rel.profiles.codes)
    sex = card["fairness"][0]
    assert [g for g, _ in sex["groups"]][:2] == ["mænd", "kvinder"]
    labels = [label for label, _, _ in sex["rows"]]
    assert labels[0] == "Træfsikkerhed"
    assert sum(label.startswith("Falsk positiv-rate") for label in labels) == profiles
    assert sum(label.startswith("Falsk negativ-rate") for label in labels) == profiles
    accuracy = sex["rows"][0]
    assert all("(" in c and "%" in c for c in accuracy[1])  # rate (lo-hi)
    assert accuracy[2].endswith("%")  # the ratio smallest / largest


# --- the no-model message, citizens.parquet -------------------------------------------------


@pytest.mark.parametrize(("lang", "text"), [
    ("da", "Ingen model i denne kørsel: for få gennemgåede borgere at lære af"),
    ("en", "No model in this run: too few reviewed citizens to learn from"),
])  # fmt: skip
def test_no_model_message_in_the_runs_language_without_counts(tmp_path, lang, text):
    write_demo(tmp_path / "in", n=150, seed=3, reference_date=REF)
    cfg = Config(reference_date=REF, lang=lang)
    run_stages(STAGES, tmp_path / "out", cfg, input_dir=tmp_path / "in")
    page = (tmp_path / "out" / "publish" / "report.html").read_text(encoding="utf-8")
    assert text in page
    # the internal message's counts per flag ("3 with, 97 without") are not published
    # (the pattern of that message, "<flag> (<n> with, <n> without)", in either language:
    # plain " med, " also occurs in the page's Danish prose, e.g. the movement section's)
    assert not re.search(r"\(\d+ (with|med), \d+ (without|uden)\)", page)


def test_citizens_parquet_has_the_probability_and_the_reasons(run):
    citizens = pq.read_table(run / "citizens.parquet").to_pandas()
    model = citizens[citizens["profile_source"] == "model"]
    assert len(model) > 0
    assert (model["profile_probability"] >= CFG.model_min_probability).all()
    reasons = [json.loads(r) for r in model["top_reasons"]]
    assert all(isinstance(r, dict) and r for r in reasons)
    uncertain = citizens[citizens["profile_source"] == "uncertain"]
    assert (uncertain["profile_probability"] < CFG.model_min_probability).all()
    assert uncertain["profile"].isna().all()
    assert citizens.loc[citizens["profile_source"] == "rules", "top_reasons"].isna().all()
