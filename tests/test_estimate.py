"""The capacity estimator's cumulative table agrees with walking the capacity steps."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from office.config import OfficeConfig
from office.estimate import CapacityEstimator

DAY = date(2027, 3, 15)  # a Monday: office and evening periods


def walk(steps: list[tuple[float, float]], t: float, work: float) -> float:
    """The reference: step through the capacity function minute by step until work is done."""
    i = max(j for j, (start, _) in enumerate(steps) if start <= t)
    clock = t
    while True:
        rate = steps[i][1]
        end = steps[i + 1][0] if i + 1 < len(steps) else math.inf
        if rate > 0 and work <= rate * (end - clock):
            return clock + work / rate - t
        if rate > 0:
            work -= rate * (end - clock)
        if end == math.inf:
            return math.inf
        clock, i = end, i + 1


@pytest.mark.parametrize("service", ["move", "seal", "certificate", "insurance", "payment", "guidance"])
@given(t=st.floats(0, 1439.9), work=st.floats(0.01, 3000))
def test_table_matches_the_walk(nerima: OfficeConfig, service: str, t: float, work: float) -> None:
    estimator = CapacityEstimator(nerima)
    steps = estimator.rates(DAY, service)
    got = estimator.table(DAY, service).wait(t, work)
    want = walk(steps, t, work)
    if math.isinf(want):
        assert math.isinf(got)
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6)
