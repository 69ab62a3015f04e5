"""A chart function that fails on the third table, for the report's failure test. The charts
are drawn in worker processes that import what they run by name: a function patched into
`pipeline.charts` in the test's process would not reach them, this module does."""

from __future__ import annotations

from typing import Any

import pipeline.charts

_chart_pngs = pipeline.charts.chart_pngs  # the real one, before any test patches it


def chart_pngs_failing_on_the_third(table: Any, number: int, *args: Any) -> tuple[bytes, bytes]:
    if number == 3:
        raise RuntimeError("injected failure in a chart")
    return _chart_pngs(table, number, *args)
