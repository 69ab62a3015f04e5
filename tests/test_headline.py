"""The report's headline figures (definitions §5) reveal nothing the tables hide (§6): counts
outside the tables are numbers of the release, suppressed with the tables in one pattern, so
each is shown only when it and its complement are zero or >= min_cell and nothing hidden
follows from it."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import load_staging

from pipeline.config import Config
from pipeline.release import publish
from pipeline.rules import load_rules
from pipeline.segment import segment

REF = dt.date(2024, 6, 30)
EPISODE = {"start_date": dt.date(2023, 1, 1), "match_group": "3"}


def headline_for(profiled: int, unreviewed: int, complex_n: int, min_cell: int = 5):
    citizens = [
        {"citizen_id": f"p{i}", "match_group": "3", "departments_involved": 3 * (i < complex_n)}
        for i in range(profiled)
    ] + [{"citizen_id": f"u{i}", "match_group": "3", "reviewed": False} for i in range(unreviewed)]
    con = load_staging(citizens, [{**EPISODE, "citizen_id": c["citizen_id"]} for c in citizens])
    cfg = Config(reference_date=REF, min_cell=min_cell).resolved()
    rules = load_rules()
    segment(con, cfg, rules)
    return publish(con, cfg).headline


@pytest.mark.parametrize(
    ("profiled", "unreviewed", "complex_n", "in_scope", "shown_unreviewed", "shown_complex"),
    [
        (20, 0, 5, 20, 0, 5),  # zeros are shown
        (20, 7, 15, 27, 7, 15),  # everything >= 5
        (20, 3, 2, None, None, None),  # 3 unreviewed: hidden with the total; 2 complex: hidden
        (20, 6, 17, 26, 6, None),  # 17 complex leaves 3 without: hidden
    ],
)
def test_small_counts_outside_the_tables_are_hidden(
    profiled, unreviewed, complex_n, in_scope, shown_unreviewed, shown_complex
):
    head = headline_for(profiled, unreviewed, complex_n)
    assert head.profiled.n == profiled
    assert head.in_scope == in_scope
    assert head.unreviewed == shown_unreviewed
    assert head.complex_case.n == shown_complex
    assert head.complex_case.hidden is (shown_complex is None)


def test_hidden_grand_total_hides_the_count_in_scope_or_the_unreviewed():
    head = headline_for(3, 10, 0)  # 3 profiled citizens: the grand total itself is small
    assert head.profiled.n is None and head.profiled.hidden
    # in scope = with a profile + unreviewed: showing 13 and 10 would give the hidden 3. The
    # headline is in the suppression (§6: fewest citizens hidden), which hides the 10
    # unreviewed rather than the 13 in scope
    assert (head.in_scope, head.unreviewed) == (13, None)


def test_min_cell_zero_shows_everything():
    head = headline_for(20, 3, 2, min_cell=0)
    assert (head.in_scope, head.unreviewed, head.complex_case.n) == (23, 3, 2)
    assert head.profile_shares["maybe_suitable"].n == 20


def test_numbers_outside_the_tables_are_cells_of_the_pattern():
    """suppression.Relations.cells: a published number no table prints (the headline's) is
    hidden or shown like a cell, primary when small, and the relations tie it to the tables."""
    import numpy as np

    from pipeline.suppression import Relations, Table, audit, solve

    t = Table("t", "profile", ("a", "b"), (), np.array([[3], [7], [10]]))
    a, b, grand = ("t", "a", "total"), ("t", "b", "total"), ("t", "total", "total")
    same_as_b, small = ("headline", "y", "total"), ("headline", "x", "total")
    known = Relations(equal=({same_as_b: 1, b: -1},), cells={same_as_b: 7, small: 2})
    # hiding b as a's protection leaks b through the headline's number equal to it
    assert audit([t], {a, b}, 5, relations=known) == [
        "headline[x, total] is below 5 and shown",
        "the profile total of 'a': primary cell provably at most 3 < min_cell 5",
        "the profile total of 'b': hidden cell is determined exactly by what is shown"]
    # the pattern hides the grand total instead (10 citizens, not 7 + 7 in two numbers),
    # and the small number outside the tables as a primary
    assert solve([t], 5, relations=known).pattern == {
        a: "primary", grand: "secondary", small: "primary"}
