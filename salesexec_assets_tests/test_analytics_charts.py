"""The report's chart helpers: binning and axis bounds hold for any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from salesexec_assets.analytics.charts import bin_counts, nice_ceiling
from salesexec_assets.analytics.report import MINUTE_EDGES, MINUTE_LABELS

minutes = st.floats(min_value=0, max_value=1e7, allow_nan=False)


@given(st.lists(minutes, max_size=50))
def test_every_minute_value_lands_in_exactly_the_bin_that_holds_it(values: list[float]) -> None:
    counts = bin_counts(values, MINUTE_EDGES)
    assert len(counts) == len(MINUTE_LABELS)
    assert sum(counts) == len(values)
    for value in values:
        alone = bin_counts([value], MINUTE_EDGES)
        index = alone.index(1)
        upper = MINUTE_EDGES[index + 1] if index + 1 < len(MINUTE_EDGES) else float("inf")
        assert MINUTE_EDGES[index] <= value < upper


def test_five_minutes_is_already_outside_the_first_bin() -> None:
    assert bin_counts([4.99, 5.0], MINUTE_EDGES)[:2] == [1, 1]


@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False))
def test_the_axis_maximum_holds_the_value_and_is_at_most_two_and_a_half_times_it(
    value: float,
) -> None:
    ceiling = nice_ceiling(value)
    assert value <= ceiling <= value * 2.5 + 1e-9
