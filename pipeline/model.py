"""The profile model (issue 15): the rule flags of the unreviewed citizens, learned from the
reviewed citizens of the same run.

Reads `marts.citizens_ruled` (history measures, scope, the rules' profile of the reviewed),
`staging.citizens` (ONLY the columns named in `_CASE_COLUMNS`: the targets, sex, birth year,
departments involved, the notes; never origin, nationality, citizenship, language,
`barrier_language` or any column outside the contract) and `staging.episodes` (benefit mix).
Writes, as registry Python models of the segment stage:

- `marts.predictions` (`predictions_model`): one row per unreviewed citizen in scope: the
  predicted flags and their calibrated probabilities, the profile the SAME rules give for the
  predicted flags, its probability, the source (`model`, or `uncertain` below
  `model_min_probability`), the top reasons, the model version and the inputs hash.
- `marts.model_evaluation` (`evaluation_model`, internal): cross-validated metrics on the
  reviewed, in long form (see `pipeline.model_eval`).

How a flag is learned: per flag a logistic regression over (a) TF-IDF of the note's word
stems and stem bigrams (Danish snowball stemmer), where words in a negated clause ("ingen
tegn på misbrug"), a clause about a relative ("moderen drikker") or a clause about the past
("stoffri i 4 år") are marked as such (`neg_`, `rel_`, `past_`) so they are not the word
itself, (b) TF-IDF of character 3-5-grams of the unmarked rare words (misspellings and
abbreviations share n-grams with the word they misspell), (c) the structured history
(standardised). Calibrated by `CalibratedClassifierCV` (sigmoid, 3 folds,
`ensemble=False`: one final estimator, so an explanation is its coefficients times the
citizen's features). Everything is seeded.

The profile's probability: the flags' probabilities taken as independent given the inputs,
the probability of every combination of the flags (2^k, k = the flags the rules test) is
their product; the rules map each combination to a profile; the profile's probability is
the summed probability of the combinations that give it. The profile itself is the rules'
profile of the flags predicted (probability >= 0.5), so a consultant's rules file decides
both, and a profile probability below one half says the flags are unsure where the rules
look.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.registry import Context
from pipeline.rules import BOOLEAN_COLUMNS, INTEGER_COLUMNS
from pipeline.vocabulary import BENEFITS, COURSE_CLASSES

MODEL_CODE_VERSION = "profile-model-1"
MISUSE_FLAGS = ("alcohol", "soft_drugs", "hard_drugs")  # definitions §1: misuse_any
# unreviewed citizens featurised and explained at a time (bounds the memory of prediction)
PREDICT_CHUNK = 50_000
# a note word in fewer training notes than this is "rare": only rare words get character
# n-gram features (the common ones are learnt as words; n-grams for every word cost ten
# times the fitting time for one to nine points of F1 on the demo)
RARE_WORD_DF = 20
# the only case-review columns the model may read besides the rule flags (its targets)
_CASE_COLUMNS = ("citizen_id", "sex", "birth_year", "departments_involved", "notes")
# structured history: what the model sees besides the note (definitions §2-§4 measures)
HISTORY_FEATURES = (
    "age", "male", "sex_unknown", "departments_involved", "courses", "m3_stretches",
    "log_current_course_days", "log_support_days_total", "log_m3_days",
    *(f"course_{c}" for c in COURSE_CLASSES),
    *(f"benefit_share_{b}" for b in BENEFITS),
)  # fmt: skip
# note words about origin, nationality, citizenship and language are dropped before the
# model sees the note (stems, Danish snowball): the note must not carry what the columns may
# not (a partial guard; the report says so)
EXCLUDED_STEMS = frozenset({
    "tolk", "sprog", "sproget", "dansk", "danskuddannels", "flygtning", "indvandr",
    "indvandrer", "efterkomm", "etnisk", "statsborg", "statsborgerskab", "nationalitet",
    "herkomst", "oprindels", "udland", "asyl", "asylansøg", "religion", "muslim",
    "modersmål", "integration", "integrationsprogram",
})  # fmt: skip
_NEGATION = frozenset({"ingen", "ikke", "intet", "aldrig", "afvis", "afviser", "benægt",
                       "benægter", "uden", "hverk"})  # fmt: skip
_NEGATION_AFTER = frozenset({"afkræftet", "afkræft", "udelukket", "udeluk"})
_RELATIVES = frozenset({"moderen", "moder", "mor", "faderen", "fader", "far", "broderen",
                        "broder", "bror", "søsteren", "søster", "kæresten", "kærest",
                        "ægtefællen", "ægtefæll", "sønnen", "søn", "datteren", "datter",
                        "eks-manden", "manden", "konen", "forældr", "forældrene",
                        "familien", "partner", "partneren", "samlever"})  # fmt: skip
_PAST = frozenset({"tidliger", "tidligere", "stoffri", "ædru", "stoppede", "stoppet",
                   "ophørt", "ophørte", "afsluttet", "tørlagt", "siden"})  # fmt: skip
# clause ends (RE2 syntax, Arrow's split; \s is ASCII white space there)
_CLAUSE_PATTERN = r"[.;:!?,]+|\s+men\s+|\s+-\s+"
# distinct clauses kept analysed; beyond this the cache starts again (bounded memory on
# free-text notes whose clauses rarely repeat)
_CLAUSE_CACHE = 500_000
_WORD = re.compile(r"[a-zæøåéü0-9]+(?:-[a-zæøåéü0-9]+)*")


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


class NoteAnalyzer:
    """Note -> (marked stem tokens, text of the unmarked words for char n-grams).

    A clause (split at . , ; : ! ? and 'men') is about a relative, about the past, or negated
    from its cue on; its stems are then prefixed rel_ / past_ / neg_. Stems are cached: a
    municipality's notes use some thousands of words."""

    def __init__(self) -> None:
        import snowballstemmer

        self._stemmer = snowballstemmer.stemmer("danish")
        self._cache: dict[str, str] = {}
        # notes repeat their clauses ("Ingen ændringer siden sidst"): each is analysed once
        self._clauses: dict[str, tuple[list[str], list[str]]] = {}

    def stem(self, word: str) -> str:
        s = self._cache.get(word)
        if s is None:
            s = self._stemmer.stemWord(word)
            self._cache[word] = s
        return s

    def analyse(self, note: str | None) -> tuple[list[str], list[str]]:
        """(marked stem tokens and their bigrams, the unmarked words)."""
        tokens: list[str] = []
        plain: list[str] = []
        (_, which, _), clauses = split_clauses([note])
        for i in which:
            t, p = self.clause(clauses[i])
            tokens += t
            plain += p
        return tokens, plain

    def clause(self, clause: str) -> tuple[list[str], list[str]]:
        """One lower-cased clause's (marked tokens and bigrams, unmarked words), cached."""
        done = self._clauses.get(clause)
        if done is None:
            if len(self._clauses) >= _CLAUSE_CACHE:
                self._clauses.clear()
            done = self._clause(clause)
            self._clauses[clause] = done
        return done

    def _clause(self, clause: str) -> tuple[list[str], list[str]]:
        words = _WORD.findall(clause)
        keep = [(w, s) for w in words if (s := self.stem(w)) not in EXCLUDED_STEMS
                and w not in EXCLUDED_STEMS]  # fmt: skip
        if not keep:
            return [], []
        present = {w for w, _ in keep} | {s for _, s in keep}
        for cue, mark in ((_RELATIVES, "rel_"), (_PAST, "past_"), (_NEGATION_AFTER, "neg_")):
            if present & cue:
                return [mark + s for _, s in keep], []
        negated = False
        out: list[str] = []
        plain: list[str] = []
        for w, s in keep:
            if w in _NEGATION or s in _NEGATION:
                negated = True
                out.append("neg")
                continue
            out.append(("neg_" + s) if negated else s)
            if not negated:
                plain.append(w)
        return out + [f"{a} {b}" for a, b in zip(out, out[1:], strict=False)], plain


def split_clauses(notes: Iterable[Any]) -> tuple[tuple[np.ndarray, np.ndarray, int], list[str]]:
    """The notes (a non-string = no note) lower-cased and split at clause ends, vectorised:
    ((note of each clause, index of its distinct clause, notes), the distinct clauses)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = notes.tolist() if isinstance(notes, pd.Series) else list(notes)
    arr = pa.array([v if isinstance(v, str) else None for v in values], type=pa.large_string())
    parts = pc.split_pattern_regex(pc.utf8_lower(arr), pattern=_CLAUSE_PATTERN)
    parent = pc.list_parent_indices(parts).to_numpy(zero_copy_only=False)
    encoded = pc.list_flatten(parts).dictionary_encode()
    which = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return (parent.astype(np.int64), which, len(arr)), encoded.dictionary.to_pylist()


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def target_flags(rule_sql: str) -> tuple[str, ...]:
    """The boolean columns the compiled rules test, in the contract's order: what the model
    predicts (the shipped rules: the six flags of definitions §1)."""
    named = set(re.findall(r'"(\w+)"', rule_sql))
    return tuple(c for c in BOOLEAN_COLUMNS if c in named)


def frame_query(flags: tuple[str, ...], which: str | None = None, ids: bool = False) -> str:
    """The SQL of `load_frame` (parameters $reference_date, $benefits). `which`: None =
    every citizen, "reviewed" = the reviewed (in scope or not: the flags mean the same),
    "todo" = the unreviewed in scope (what the model predicts). `ids`: only the citizens of
    the parameter $ids."""
    cols = ", ".join(f'c."{x}"' for x in (*_CASE_COLUMNS[1:], *flags))
    per_benefit = ", ".join(
        f"coalesce(sum(days) filter (where benefit = $benefits[{i + 1}]), 0) as b{i}"
        for i in range(len(BENEFITS)))
    shares = ", ".join(f"coalesce(mix.b{i} / nullif(mix.total, 0), 0.0) as benefit_share_{b}"
                       for i, b in enumerate(BENEFITS))  # fmt: skip
    where = {None: "true", "reviewed": "coalesce(r.reviewed, false)",
             "todo": "not coalesce(r.reviewed, false) and coalesce(r.in_scope, false)"}[which]
    if ids:
        where += " and r.citizen_id in (select unnest($ids::varchar[]))"
    return f"""
        with days as (
            select citizen_id, benefit,
                   sum(least(coalesce(end_date, $reference_date), $reference_date)
                       - start_date + 1)::double as days
            from staging.episodes
            where start_date <= $reference_date and list_contains($benefits, benefit)
            group by all
        ), mix as (
            select citizen_id, {per_benefit}, sum(days) as total from days group by citizen_id
        )
        select r.citizen_id, r.in_scope, r.reviewed, r.profile as rules_profile, r.age,
               r.age_band, r.course_class, r.courses, r.m3_stretches,
               r.current_course_days, r.support_days_total, r.m3_days, {cols}, {shares}
        from marts.citizens_ruled r join staging.citizens c using (citizen_id)
        left join mix using (citizen_id)
        where {where}
        order by r.citizen_id
        """


def load_frame(con: duckdb.DuckDBPyConnection, params: dict[str, Any],
               flags: tuple[str, ...], which: str | None = None,
               ids: list[str] | None = None) -> pd.DataFrame:
    """One row per citizen (of `which`, see `frame_query`): measures, the named case-review
    columns, the benefit mix (each benefit's share of the citizen's days on the contract's
    benefits up to the reference date; 0 without any), in citizen order. One query: a
    pandas pivot of the episodes' mix held 1.7 GB at 1,000,000 citizens."""
    # through Arrow, as `predict` streams its chunks: the same types on both sides
    query = frame_query(flags, which, ids is not None)
    bound = {**_frame_params(params), **({"ids": ids} if ids is not None else {})}
    reader = con.sql(query, params=bound).to_arrow_reader()
    return reader.read_all().to_pandas()


def _frame_params(params: dict[str, Any]) -> dict[str, Any]:
    return {"reference_date": params["reference_date"], "benefits": list(BENEFITS)}


def history_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The structured history as a dense float matrix (columns = HISTORY_FEATURES)."""
    sex = frame["sex"].astype("object")
    cols = {
        "age": frame["age"].astype("float64").fillna(45.0),
        "male": (sex == "M").astype(float),
        "sex_unknown": (~sex.isin(["M", "K"])).astype(float),
        "departments_involved": frame["departments_involved"].astype("float64").fillna(1.0),
        "courses": frame["courses"].astype("float64"),
        "m3_stretches": frame["m3_stretches"].astype("float64"),
        "log_current_course_days": np.log1p(frame["current_course_days"].astype("float64")),
        "log_support_days_total": np.log1p(frame["support_days_total"].astype("float64")),
        "log_m3_days": np.log1p(frame["m3_days"].astype("float64")),
    }
    for c in COURSE_CLASSES:
        cols[f"course_{c}"] = (frame["course_class"] == c).astype(float)
    for b in BENEFITS:
        cols[f"benefit_share_{b}"] = frame[f"benefit_share_{b}"].astype("float64")
    return np.column_stack([np.asarray(cols[k], dtype=float) for k in HISTORY_FEATURES])


@dataclass
class Featurizer:
    """Fitted on the training rows: the vocabularies, the idf weights and the history's
    scaling. The character n-grams (3-5, within words, as scikit-learn's `char_wb`) are those
    of the note's rare words (`RARE_WORD_DF`), the sum of its words' n-grams, so they are
    computed once per distinct word and multiplied out (a sparse product).

    A note's features are the sum of its clauses' (a clause's stems, bigrams and words never
    cross its ends), so the notes are split into clauses by Arrow's vectorised regex split,
    each distinct clause is analysed once, and a note is a row of counts over the distinct
    clauses: its word and spelling counts are that row times the clauses' counts (one
    sparse product for all notes, not a Python loop per note; 1,000,000 notes in seconds)."""

    seed: int
    use_notes: bool = True
    max_char_features: int = 20_000

    def fit_transform(self, notes: Iterable[str | None], history: np.ndarray) -> sp.csr_matrix:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
        from sklearn.preprocessing import StandardScaler

        self.analyzer = NoteAnalyzer()
        self.scaler = StandardScaler().fit(history)
        blocks = [sp.csr_matrix(self.scaler.transform(history))]
        self.names = [f"history:{h}" for h in HISTORY_FEATURES]
        if self.use_notes:
            per_note, tokens, plain = self._clauses(notes)
            self.word_idf = self.char_idf = None
            if not any(tokens):  # no reviewed citizen has a note: the history alone
                return sp.hstack(blocks, format="csr")
            every = CountVectorizer(analyzer=_identity, dtype=np.float32)
            word_counts = (per_note @ every.fit_transform(tokens)).tocsr()
            # min_df = 2 over notes, as CountVectorizer(min_df=2) on the notes would keep
            df = np.asarray((word_counts > 0).sum(axis=0)).ravel()
            kept = np.flatnonzero(df >= 2)
            vocab = every.get_feature_names_out()[kept]
            self.words = CountVectorizer(analyzer=_identity, dtype=np.float32,
                                         vocabulary={w: i for i, w in enumerate(vocab)})
            self.word_idf = TfidfTransformer(sublinear_tf=True)
            blocks.append(self.word_idf.fit_transform(word_counts[:, kept]))
            self.chars = CountVectorizer(analyzer="char_wb", ngram_range=(3, 5), dtype=np.float32)
            counts = self._char_counts(per_note, plain, fit=True)
            if counts is None:  # no rare word to spell out: no spelling features
                self.names += [f"note:{w}" for w in vocab]
                return sp.hstack(blocks, format="csr")
            df = np.asarray((counts > 0).sum(axis=0)).ravel()
            keep = np.flatnonzero(df >= 3)
            keep = keep[np.argsort(-df[keep], kind="stable")][: self.max_char_features]
            self.char_keep = np.sort(keep)
            self.char_idf = TfidfTransformer(sublinear_tf=True)
            blocks.append(self.char_idf.fit_transform(counts[:, self.char_keep]))
            self.names += [f"note:{w}" for w in vocab]
            grams = self.chars.get_feature_names_out()[self.char_keep]
            self.names += [f"spelling:{c.strip()}" for c in grams]
        return sp.hstack(blocks, format="csr")

    def transform(self, notes: Iterable[str | None], history: np.ndarray) -> sp.csr_matrix:
        blocks = [sp.csr_matrix(self.scaler.transform(history))]
        if self.use_notes and self.word_idf is not None:
            per_note, tokens, plain = self._clauses(notes)
            words = (per_note @ self.words.transform(tokens)).tocsr()
            blocks.append(self.word_idf.transform(words))
            if self.char_idf is not None:
                counts = self._char_counts(per_note, plain, fit=False)
                blocks.append(self.char_idf.transform(counts[:, self.char_keep]))
        return sp.hstack(blocks, format="csr")

    def _char_counts(self, per_note: sp.csr_matrix, plain: list[list[str]],
                     fit: bool) -> sp.csr_matrix | None:
        """The notes' n-gram counts of their rare words; None when fitting finds no rare
        word (then the n-gram vectoriser has nothing to learn)."""
        from sklearn.feature_extraction.text import CountVectorizer

        rows = per_note.shape[0]
        if not any(plain):
            return None if fit else sp.csr_matrix((rows, len(self.chars.vocabulary_)),
                                                  dtype=np.float32)
        per_clause = CountVectorizer(analyzer=_identity, dtype=np.float32)
        clause_words = per_clause.fit_transform(plain)
        vocab = per_clause.get_feature_names_out()
        note_words = (per_note @ clause_words).tocsr()
        if fit:
            df = np.asarray((note_words > 0).sum(axis=0)).ravel()
            self.common = frozenset(vocab[df >= RARE_WORD_DF].tolist())
        # the words the word features know well need no spelling features: only the rare
        # ones (misspellings, abbreviations, new words) are split into n-grams
        rare = np.flatnonzero([w not in self.common for w in vocab])
        if len(rare) == 0:
            return None if fit else sp.csr_matrix((rows, len(self.chars.vocabulary_)),
                                                  dtype=np.float32)
        words = vocab[rare].tolist()
        grams = self.chars.fit_transform(words) if fit else self.chars.transform(words)
        return (note_words[:, rare] @ grams).tocsr()

    def _clauses(self, notes: Iterable[str | None]
                 ) -> tuple[sp.csr_matrix, list[list[str]], list[list[str]]]:
        """(notes x distinct clauses counts, each clause's marked tokens, its plain words)."""
        (parent, which, rows), clauses = split_clauses(notes)
        done = [self.analyzer.clause(c) for c in clauses]
        per_note = sp.csr_matrix(
            (np.ones(len(which), np.float32), (parent, which)), shape=(rows, len(clauses))
        )
        per_note.sum_duplicates()
        return per_note, [d[0] for d in done], [d[1] for d in done]


def _identity(tokens: list[str]) -> list[str]:
    return tokens


# ---------------------------------------------------------------------------------------------
# Fitting and predicting
# ---------------------------------------------------------------------------------------------


def new_classifier(seed: int):
    """One flag's classifier: logistic regression, sigmoid-calibrated on 3 folds."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    return CalibratedClassifierCV(
        LogisticRegression(C=2.0, solver="liblinear", max_iter=200, random_state=seed),
        method="sigmoid",
        cv=StratifiedKFold(3, shuffle=True, random_state=seed),
        ensemble=False,
    )


@dataclass
class FlagModels:
    """The fitted featurizer and one calibrated classifier per flag."""

    featurizer: Featurizer
    flags: tuple[str, ...]
    classifiers: dict[str, Any]

    def probabilities(self, x: sp.csr_matrix) -> np.ndarray:
        """(rows, flags) calibrated probabilities."""
        return np.column_stack([self.classifiers[f].predict_proba(x)[:, 1] for f in self.flags])

    def coefficients(self, flag: str) -> np.ndarray:
        """The final (not cross-fitted) estimator's coefficients: what an explanation shows."""
        return self.classifiers[flag].calibrated_classifiers_[0].estimator.coef_.ravel()


def fit(frame: pd.DataFrame, flags: tuple[str, ...], seed: int,
        use_notes: bool = True) -> tuple[FlagModels, sp.csr_matrix]:
    """Fit on the rows of `frame` (reviewed citizens); returns the models and their X."""
    feat = Featurizer(seed, use_notes)
    x = feat.fit_transform(frame["notes"], history_matrix(frame))
    classifiers = {}
    for f in flags:
        y = frame[f].fillna(False).to_numpy(dtype=bool)
        classifiers[f] = new_classifier(seed).fit(x, y)
    return FlagModels(feat, flags, classifiers), x


def stratified_sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most `limit` rows, a seeded sample stratified by the rules' profile (all rows, in
    citizen order, when fewer)."""
    if len(frame) <= limit:
        return frame.reset_index(drop=True)
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(frame, train_size=limit, random_state=seed,
                               stratify=frame["rules_profile"].astype(str))  # fmt: skip
    return kept.sort_values("citizen_id").reset_index(drop=True)


def trained_message(sample: int, reviewed: int) -> str:
    if sample < reviewed:
        return (f"Model trained on a sample of {sample:,} of the {reviewed:,} reviewed"
                " citizens (stratified by profile).")
    return f"Model trained on {reviewed:,} reviewed citizens."


def flag_counts(frame: pd.DataFrame, flags: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Per flag: (reviewed citizens with it set, without it)."""
    out = {}
    for f in flags:
        y = frame[f].fillna(False).to_numpy(dtype=bool)
        out[f] = (int(y.sum()), int((~y).sum()))
    return out


def too_few(counts: dict[str, tuple[int, int]], minimum: int) -> list[str]:
    """The flags with fewer than `minimum` reviewed citizens on either side."""
    return [f for f, (pos, neg) in counts.items() if min(pos, neg) < minimum]


# ---------------------------------------------------------------------------------------------
# Rules over predicted flags
# ---------------------------------------------------------------------------------------------


def combinations(flags: tuple[str, ...]) -> np.ndarray:
    """(2^k, k) booleans: every combination of the flags."""
    k = len(flags)
    return ((np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)


def rule_of_combinations(con: duckdb.DuckDBPyConnection, rule_sql: str,
                         flags: tuple[str, ...]) -> np.ndarray:
    """The profile code the compiled rules give each combination of `combinations(flags)`
    (the other boolean columns false, the integer columns unknown). Evaluated by DuckDB with
    the rules' own compiled SQL, so the model's profiles follow the rules file."""
    import pyarrow as pa

    combos = combinations(flags)
    table = {c: pa.array(np.zeros(len(combos), bool)) for c in BOOLEAN_COLUMNS}
    for j, f in enumerate(flags):
        table[f] = pa.array(combos[:, j])
    for c in INTEGER_COLUMNS:
        table[c] = pa.array([None] * len(combos), pa.int64())
    table["_combo"] = pa.array(np.arange(len(combos)))
    rel = pa.table(table)  # noqa: F841 - read by name below (DuckDB's replacement scan)
    cur = con.cursor()
    try:
        cur.register("_m3_model_combinations", rel)
        rows = cur.execute(
            f"select {rule_sql} as code from _m3_model_combinations order by _combo"
        ).fetchall()
        cur.unregister("_m3_model_combinations")
    finally:
        cur.close()
    return np.array([r[0] for r in rows], dtype=object)


def profile_probabilities(p: np.ndarray, combo_rule: np.ndarray,
                          codes: tuple[str, ...], chunk: int = 100_000) -> np.ndarray:
    """(rows, profiles): the probability of each profile, from independent flag
    probabilities `p` (rows, k) summed over the combinations the rules map to it."""
    combos = combinations(tuple(range(p.shape[1])))
    member = np.stack([combo_rule == c for c in codes], axis=1).astype(np.float64)
    out = np.empty((len(p), len(codes)))
    for lo in range(0, len(p), chunk):
        q = np.clip(p[lo : lo + chunk], 0.0, 1.0)
        # log-space product over flags: (rows, combos)
        logp = np.log(np.maximum(q, 1e-300)) @ combos.T + np.log(
            np.maximum(1 - q, 1e-300)
        ) @ (~combos).T
        out[lo : lo + chunk] = np.exp(logp) @ member
    return out


def assign_profiles(p: np.ndarray, combo_rule: np.ndarray,
                    codes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(profile of the predicted flags, its probability) per row."""
    k = p.shape[1]
    index = ((p >= 0.5).astype(np.int64) << np.arange(k)[None, :]).sum(axis=1)
    profile = combo_rule[index]
    probs = profile_probabilities(p, combo_rule, codes)
    col = np.array([codes.index(c) for c in profile], dtype=np.int64)
    return profile, probs[np.arange(len(p)), col]


# ---------------------------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------------------------


def _top_per_row(r: np.ndarray, s: np.ndarray, rows: int,
                 top: int) -> tuple[np.ndarray, np.ndarray]:
    """Of entries sorted by row `r` with scores `s`: the positions of each row's `top`
    largest scores, sorted by row then score (ties: the earlier entry first), and their
    rank in the row. Rows are grouped by their number of entries (up to 8, 16, 32, ...),
    each group laid out as a padded matrix in which a partition finds the row's top-th
    score; only the entries at or above it are sorted (a global sort of the 100 million
    entries of 800,000 citizens' six flags is what this avoids)."""
    if len(r) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    count = np.bincount(r, minlength=rows)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    pos = np.arange(len(r)) - start[r]
    # the group of a row: the smallest power-of-two width (at least 8) holding its entries
    group = np.maximum(3, np.ceil(np.log2(np.maximum(count, 1))).astype(np.int64))
    picked = []
    for g in np.unique(group[count > 0]):
        width = 1 << int(g)
        members = np.flatnonzero((group == g) & (count > 0))
        local = np.full(rows, -1, np.int64)
        local[members] = np.arange(len(members))
        e = np.flatnonzero(local[r] >= 0)
        grid = np.full((len(members), width), np.inf)
        grid[local[r[e]], pos[e]] = -s[e]
        k = min(top, width)
        floor = np.partition(grid, k - 1, axis=1)[:, k - 1]
        row_of, col_of = np.nonzero((grid <= floor[:, None]) & (grid < np.inf))
        picked.append(start[members[row_of]] + col_of)
    pick = np.concatenate(picked)
    pick = pick[np.lexsort((pick, -s[pick], r[pick]))]
    rank = np.arange(len(pick)) - np.searchsorted(r[pick], r[pick], side="left")
    keep = rank < top
    return pick[keep], rank[keep]


def explanations(models: FlagModels, x: sp.csr_matrix, predicted: np.ndarray,
                 top: int = 5) -> list[str]:
    """Per row, JSON: for each flag predicted set, the features that weighed most for it
    (coefficient x feature value, largest first, ties in feature order), with their weights
    rounded to 3 decimals; for a row with no flag set, what weighed most against each flag.
    Exactly `json.dumps({flag: [[feature, weight], ...]}, ensure_ascii=False,
    sort_keys=True)`, but built for all rows at once (numpy over the nonzero entries, the
    strings joined as object arrays): a Python loop per citizen took 150 s at 800,000."""
    x = x.tocsr()
    x.sort_indices()
    n = x.shape[0]
    per_row = np.diff(x.indptr)
    rows = np.repeat(np.arange(n, dtype=np.int64), per_row)
    any_set = predicted.any(axis=1)
    names = np.array([json.dumps(v, ensure_ascii=False) for v in models.featurizer.names],
                     dtype=object)  # fmt: skip
    out = np.full(n, "", dtype=object)
    first = np.ones(n, bool)
    for j, f in sorted(enumerate(models.flags), key=lambda jf: jf[1]):
        listed = predicted[:, j] | ~any_set
        contrib = models.coefficients(f)[x.indices] * x.data
        # evidence for a flag set (weight > 0), against one not set (< 0), in listed rows
        m = np.repeat(listed, per_row) & (contrib != 0)
        m &= (contrib > 0) == np.repeat(predicted[:, j], per_row)
        r, col, c = rows[m], x.indices[m], contrib[m]
        pick, rank = _top_per_row(r, np.abs(c), n, top)
        text = np.full(n, "", dtype=object)
        if len(pick):
            weight, inverse = np.unique(np.round(c[pick], 3), return_inverse=True)
            weights = np.array([repr(float(v)) for v in weight], dtype=object)[inverse]
            opening = np.full(len(pick), ", [", dtype=object)
            opening[rank == 0] = "["
            pieces = opening + names[col[pick]] + ", " + weights + "]"
            starts = np.flatnonzero(rank == 0)
            text[r[pick][starts]] = np.add.reduceat(pieces, starts)
        sep = np.where(first, "", ", ").astype(object)
        out[listed] = out[listed] + sep[listed] + (json.dumps(f) + ": [") + text[listed] + "]"
        first &= ~listed
    return list("{" + out + "}")


# ---------------------------------------------------------------------------------------------
# The registry's Python models
# ---------------------------------------------------------------------------------------------


def _hash(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _frame_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame[columns], index=False).to_numpy().tobytes()
    ).hexdigest()[:16]


PREDICTION_COLUMNS = ("citizen_id", "profile", "profile_probability", "profile_source",
                      "top_reasons", "model_version", "inputs_hash")  # fmt: skip


def _empty_predictions(flags: tuple[str, ...]) -> pd.DataFrame:
    cols: dict[str, Any] = {
        "citizen_id": pd.Series([], dtype="object"),
        "profile": pd.Series([], dtype="object"),
        "profile_probability": pd.Series([], dtype="float64"),
        "profile_source": pd.Series([], dtype="object"),
        "top_reasons": pd.Series([], dtype="object"),
        "model_version": pd.Series([], dtype="object"),
        "inputs_hash": pd.Series([], dtype="object"),
        "misuse_any": pd.Series([], dtype="bool"),
        "flags_json": pd.Series([], dtype="object"),
    }
    for f in flags:
        cols[f] = pd.Series([], dtype="bool")
        cols[f"p_{f}"] = pd.Series([], dtype="float64")
    return pd.DataFrame(cols)


@dataclass
class Trained:
    """What one run's model step learned (or why it learned nothing)."""

    flags: tuple[str, ...]
    # the reviewed citizens the model learned from (`load_frame(..., "reviewed")`: all of
    # them, or the sample when there are more than model_max_training_citizens)
    frame: pd.DataFrame
    models: FlagModels | None
    version: str
    message: str
    trained_on: int = 0  # the reviewed citizens the model learned from (its sample)
    reason: str = "trained"  # or why not: "too_few" (reviewed per flag), "no_flags"
    reviewed: int = 0  # the run's reviewed citizens


def train(con: duckdb.DuckDBPyConnection, ctx: Context) -> Trained:
    """Fit the flag models on the run's reviewed citizens (or say why not)."""
    cfg = ctx.cfg
    rule_sql = ctx.placeholders["rule"]
    flags = target_flags(rule_sql + ctx.placeholders["base_profile"])
    params = dict(ctx.params)
    # first the reviewed citizens' profiles and flags (light), then the rows of the training
    # sample only: 800,000 reviewed citizens' notes are never loaded; the unreviewed are
    # streamed chunk by chunk by `predict`
    keys = con.sql(
        "select r.citizen_id, r.profile as rules_profile, "
        + ", ".join(f'c."{f}"' for f in flags) + (", " if flags else "")
        + "true as _reviewed from marts.citizens_ruled r join staging.citizens c"
        " using (citizen_id) where coalesce(r.reviewed, false) order by r.citizen_id"
    ).to_arrow_table().to_pandas()
    capped = len(keys) > cfg.model_max_training_citizens
    if not flags:
        return Trained(flags, keys, None, _hash(MODEL_CODE_VERSION, rule_sql),
                       "The rules test no flag: no model.", reason="no_flags")
    counts = flag_counts(keys, flags)
    short = too_few(counts, cfg.model_min_reviewed_per_flag)
    if short:
        detail = ", ".join(f"{f} ({counts[f][0]} with, {counts[f][1]} without)" for f in short)
        return Trained(
            flags, keys, None, _hash(MODEL_CODE_VERSION, rule_sql),
            f"No model: too few reviewed citizens to learn from (at least"
            f" {cfg.model_min_reviewed_per_flag} with and without each flag are needed;"
            f" {detail}). The unreviewed citizens stay unreviewed.", reason="too_few",
        )  # fmt: skip
    # the same rows a sample of the whole frame would take: the split depends only on the
    # number of rows, the profiles and the seed
    chosen = stratified_sample(keys, cfg.model_max_training_citizens, cfg.model_seed)
    sample = load_frame(con, params, flags, "reviewed",
                        ids=chosen["citizen_id"].tolist() if capped else None)  # fmt: skip
    version = _hash(
        MODEL_CODE_VERSION,
        _frame_hash(sample, ["citizen_id", *_CASE_COLUMNS[1:], *flags]),
        cfg.model_seed, cfg.model_min_reviewed_per_flag, cfg.model_min_probability, rule_sql,
        *((cfg.model_max_training_citizens, len(keys)) if capped else ()),
    )
    models, _ = fit(sample, flags, cfg.model_seed)
    return Trained(flags, sample, models, version, trained_message(len(sample), len(keys)),
                   trained_on=len(sample), reviewed=len(keys))


def predictions_model(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """marts.predictions: one row per unreviewed citizen in scope (none when no model)."""
    trained = train(con, ctx)
    _TRAINED[id(con)] = trained  # for the evaluation, built next in the same transaction
    return predict(con, ctx, trained)


def predict(con: duckdb.DuckDBPyConnection, ctx: Context, trained: Trained) -> Any:
    """The predictions for the unreviewed citizens in scope: a `pyarrow.RecordBatchReader`
    computing them chunk by chunk (`PREDICT_CHUNK` citizens) as the warehouse writes them,
    so only the input (Arrow, compact) and one chunk's features, evidence and strings are
    ever held: at 800,000 citizens the explanations alone are about 500 MB of text. A
    pandas frame of no rows when there is no model or no one to predict."""
    import itertools

    import pyarrow as pa

    flags = trained.flags
    if trained.models is None:
        return _empty_predictions(flags)
    codes = tuple(ctx.params["rule_codes"])
    combo_rule = rule_of_combinations(con, ctx.placeholders["rule"], flags)
    todo = con.sql(frame_query(flags, "todo"),
                   params=_frame_params(dict(ctx.params))).to_arrow_table()  # fmt: skip
    if todo.num_rows == 0:
        return _empty_predictions(flags)
    chunks = (_predict_chunk(todo.slice(lo, PREDICT_CHUNK), trained, combo_rule, codes,
                             ctx.cfg.model_min_probability)
              for lo in range(0, todo.num_rows, PREDICT_CHUNK))  # fmt: skip
    first = next(chunks)
    return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], chunks))


def predict_table(con: duckdb.DuckDBPyConnection, ctx: Context, trained: Trained) -> pd.DataFrame:
    """`predict`'s rows at once, as a pandas frame (tests, small runs)."""
    out = predict(con, ctx, trained)
    return out if isinstance(out, pd.DataFrame) else out.read_all().to_pandas()


def _predict_chunk(chunk: Any, trained: Trained, combo_rule: np.ndarray,
                   codes: tuple[str, ...], min_probability: float) -> Any:
    """One chunk of unreviewed citizens (Arrow rows of `frame_query`) -> its predictions
    (a `pyarrow.RecordBatch`, the columns of marts.predictions)."""
    import pyarrow as pa

    models, flags = trained.models, trained.flags
    part = chunk.to_pandas()
    x = models.featurizer.transform(part["notes"], history_matrix(part))
    p = models.probabilities(x)
    predicted = p >= 0.5
    reasons = pa.array(explanations(models, x, predicted), pa.string())
    del x
    profile, prob = assign_profiles(p, combo_rule, codes)
    source = np.where(prob >= min_probability, "model", "uncertain")
    input_cols = list(_CASE_COLUMNS[1:]) + [
        "age", "course_class", "courses", "m3_stretches", "current_course_days",
        "support_days_total", "m3_days", *(f"benefit_share_{b}" for b in BENEFITS),
    ]  # fmt: skip
    row_hash = pd.util.hash_pandas_object(part[input_cols], index=False).to_numpy()
    out = {
        "citizen_id": chunk.column("citizen_id").cast(pa.string()).combine_chunks(),
        "profile": pa.array(profile, pa.string()),
        "profile_probability": pa.array(np.round(prob, 6)),
        "profile_source": pa.array(source, pa.string()),
        "top_reasons": reasons,
        "model_version": pa.array([trained.version] * len(p), pa.string()),
        "inputs_hash": pa.array(np.char.mod("%016x", row_hash), pa.string()),
        "flags_json": flags_json(p, flags),
    }
    misuse = [j for j, f in enumerate(flags) if f in MISUSE_FLAGS]
    out["misuse_any"] = pa.array(predicted[:, misuse].any(axis=1))
    for j, f in enumerate(flags):
        out[f] = pa.array(predicted[:, j])
        out[f"p_{f}"] = pa.array(np.round(p[:, j], 6))
    return pa.record_batch(out)


def flags_json(p: np.ndarray, flags: tuple[str, ...]) -> Any:
    """Per row, JSON {flag: {"probability": p rounded to 6 decimals, "set": p >= 0.5}}, keys
    sorted, as `json.dumps(..., sort_keys=True)` writes it (assembled by DuckDB, whose
    doubles print as Python's repr); an Arrow string array."""
    import pyarrow as pa

    parts = []
    for j, f in sorted(enumerate(flags), key=lambda jf: jf[1]):
        key = json.dumps(f)
        parts.append(f"""'{key}: {{"probability": ' || p{j}::varchar || ', "set": '"""
                     f" || (case when s{j} then 'true' else 'false' end) || '}}'")
    table = pa.table({**{f"p{j}": np.round(p[:, j], 6) for j in range(len(flags))},
                      **{f"s{j}": p[:, j] >= 0.5 for j in range(len(flags))}})
    con = duckdb.connect()
    try:
        con.register("_p", table)
        got = con.sql("select '{' || " + " || ', ' || ".join(parts) + " || '}' as j from _p")
        return got.to_arrow_table().column("j").combine_chunks()
    finally:
        con.close()


# what `predictions_model` learned, handed to `pipeline.model_eval.evaluation_model` (the next
# model of the stage, on the same connection) so the models are fitted once per run
_TRAINED: dict[int, Trained] = {}


def trained_for(con: duckdb.DuckDBPyConnection, ctx: Context) -> Trained:
    """The model `predictions_model` just trained on `con` (taken), else trained now."""
    return _TRAINED.pop(id(con), None) or train(con, ctx)


# ---------------------------------------------------------------------------------------------
# A citizen's explanation in plain words (m3-profiles explain)
# ---------------------------------------------------------------------------------------------

_TEXT = {
    "en": {
        "head": "Citizen {cid}",
        "purpose": "The model's profile is for statistics and for prioritising case review:"
                   " it is never a decision about this person.",
        "rules": "Profile {profile} from the case review (the rules file): rule {rule};"
                 " the flags that made it match: {flags}.",
        "model": "Profile {profile} predicted by the model, probability {prob}."
                 " The same rules file turned the predicted flags into the profile.",
        "uncertain": "The model is uncertain (profile probability {prob}, below the threshold):"
                     " no profile is given; this citizen is listed for a caseworker's review."
                     " The most likely profile was {profile}.",
        "unreviewed": "Not reviewed, and no model could be trained in this run"
                      " (or the citizen is out of scope): no profile.",
        "flags": "Predicted flags (probability):",
        "why": "What weighed most (weight: how much it moved the flag's score):",
        "against": "Nothing points to any flag; what weighed most against each:",
        "note": "the note says '{w}'", "neg": "the note says '{w}' in a negated sentence",
        "rel": "the note says '{w}' about a relative", "past": "the note says '{w}' about the past",
        "spelling": "a rare word in the note contains '{w}' (spelling)",
        "history": "history: {w}", "set": "set", "not_set": "not set",
        "missing": "no citizen {cid} in this run's warehouse",
    },
    "da": {
        "head": "Borger {cid}",
        "purpose": "Modellens profil er til statistik og til at prioritere sagsgennemgang:"
                   " den er aldrig en afgørelse om personen.",
        "rules": "Profil {profile} fra sagsgennemgangen (regelfilen): regel {rule};"
                 " de markeringer der gav den: {flags}.",
        "model": "Profil {profile} forudsagt af modellen, sandsynlighed {prob}."
                 " Den samme regelfil gjorde de forudsagte markeringer til profilen.",
        "uncertain": "Modellen er usikker (profilens sandsynlighed {prob}, under tærsklen):"
                     " der gives ingen profil; borgeren står på listen til gennemgang."
                     " Den mest sandsynlige profil var {profile}.",
        "unreviewed": "Ikke gennemgået, og der kunne ikke trænes en model i denne kørsel"
                      " (eller borgeren er uden for målgruppen): ingen profil.",
        "flags": "Forudsagte markeringer (sandsynlighed):",
        "why": "Det der vejede mest (vægt: hvor meget det flyttede markeringens score):",
        "against": "Intet peger på en markering; det der vejede mest imod hver:",
        "note": "notatet siger '{w}'", "neg": "notatet siger '{w}' i en benægtende sætning",
        "rel": "notatet siger '{w}' om en pårørende", "past": "notatet siger '{w}' om fortiden",
        "spelling": "et sjældent ord i notatet indeholder '{w}' (stavning)",
        "history": "forløb: {w}", "set": "sat", "not_set": "ikke sat",
        "missing": "ingen borger {cid} i denne kørsels database",
    },
}  # fmt: skip


def _reason(name: str, lang: str) -> str:
    t = _TEXT[lang]
    kind, _, what = name.partition(":")
    if kind == "note":
        for mark in ("neg", "rel", "past"):
            if what.startswith(mark + "_"):
                return t[mark].format(w=what[len(mark) + 1:].replace(f" {mark}_", " "))
        return t["note"].format(w=what)
    return t.get(kind, "{w}").format(w=what)


def explain_text(con: duckdb.DuckDBPyConnection, citizen_id: str, lang: str = "en") -> str:
    """One citizen's profile and, for a model's, the evidence per flag, in plain words."""
    t = _TEXT[lang]
    row = con.execute(
        "select profile_source, profile, \"rule\", matched_flags, profile_probability,"
        " top_reasons from marts.citizens where citizen_id = $id", {"id": citizen_id}
    ).fetchone()
    if row is None:
        raise KeyError(t["missing"].format(cid=citizen_id))
    source, profile, rule, matched, prob, reasons = row
    lines = [t["head"].format(cid=citizen_id)]
    pct = "-" if prob is None else f"{100 * prob:.0f} %"
    if source == "rules":
        lines.append(t["rules"].format(profile=profile, rule=rule,
                                       flags=", ".join(matched or []) or "-"))  # fmt: skip
        return "\n".join(lines) + "\n"
    if source == "unreviewed":
        lines.append(t["unreviewed"])
        return "\n".join(lines) + "\n"
    pred = con.execute("select profile, flags_json from marts.predictions"
                       " where citizen_id = $id", {"id": citizen_id}).fetchone()  # fmt: skip
    lines.append(t["purpose"])
    if source == "model":
        lines.append(t["model"].format(profile=profile, prob=pct))
    else:
        lines.append(t["uncertain"].format(profile=pred[0], prob=pct))
    flags = json.loads(pred[1])
    lines.append(t["flags"])
    for f, v in sorted(flags.items(), key=lambda kv: -kv[1]["probability"]):
        state = t["set"] if v["set"] else t["not_set"]
        lines.append(f"  {f}: {100 * v['probability']:.0f} % ({state})")
    why = json.loads(reasons or "{}")
    any_set = any(v["set"] for v in flags.values())
    lines.append(t["why"] if any_set else t["against"])
    for f, items in why.items():
        lines.append(f"  {f}:")
        for name, weight in items:
            lines.append(f"    {weight:+.2f}  {_reason(name, lang)}")
    return "\n".join(lines) + "\n"
