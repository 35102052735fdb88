"""The capacity estimator's cumulative table agrees with walking the capacity steps."""

from __future__ import annotations

import math
from datetime import date, datetime
from datetime import time as dt_time

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


@given(minute=st.integers(8 * 60 + 30, 9 * 60 + 59), ahead=st.integers(0, 80))
def test_an_unplanned_open_counter_adds_its_rate_until_closing(nerima: OfficeConfig, minute: int, ahead: int) -> None:
    """Counter 12 is planned from 10:00; opened earlier it adds a full rate for 'move' (its first
    service) from now until 19:00, on top of the planned steps."""
    from office.state import CounterState, CounterStatus, OfficeState

    state = OfficeState()
    state.counters["12"] = CounterState("12", CounterStatus.OPEN, ("move", "certificate", "insurance"))
    estimator = CapacityEstimator(nerima)
    now = datetime.combine(DAY, dt_time(minute // 60, minute % 60), tzinfo=nerima.tz)
    work = (ahead + 0.5) * nerima.service("move").typical_minutes
    planned = estimator.rates(DAY, "move")
    closes = 19 * 60.0
    cuts = sorted({p for p, _ in planned} | {float(minute), closes})
    with_extra = [
        (p, dict(planned).get(p, [r for q, r in planned if q <= p][-1]) + (1.0 if p < closes else 0.0)) for p in cuts
    ]
    assert estimator.wait_minutes("move", ahead, now, state) == pytest.approx(walk(with_extra, minute, work), rel=1e-9)
    assert estimator.wait_minutes("move", ahead, now, state) < estimator.wait_minutes("move", ahead, now)
