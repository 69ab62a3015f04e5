"""The contract's vocabulary: age-band codes are made and read back in one module."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.vocabulary import age_band_bounds, age_band_codes


def test_age_band_bounds_of_the_default_bands():
    codes = age_band_codes((25, 30, 40, 50, 60))
    assert [age_band_bounds(c) for c in codes] == [
        (None, 24), (25, 29), (30, 39), (40, 49), (50, 59), (60, None),
    ]  # fmt: skip
    assert age_band_bounds("all_ages") is None
    assert age_band_bounds("unknown") is None
    assert age_band_bounds("under_") is None


@settings(deadline=None)
@given(st.lists(st.integers(1, 120), min_size=1, max_size=8, unique=True).map(sorted))
def test_bounds_read_back_the_bands_they_were_made_from(bounds):
    got = [age_band_bounds(c) for c in age_band_codes(tuple(bounds))]
    lows = [lo for lo, _ in got]
    highs = [hi for _, hi in got]
    assert lows == [None, *bounds]
    assert highs == [b - 1 for b in bounds] + [None]
