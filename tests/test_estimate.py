"""The capacity estimator's cumulative table agrees with walking the capacity steps."""

from __future__ import annotations

import math
from datetime import date, datetime
from datetime import time as dt_time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from office.config import OfficeConfig
from office.estimate import CapacityEstimator, WaitRange

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


@given(
    moments=st.lists(st.integers(7 * 60, 20 * 60), min_size=1, max_size=30),
    statuses=st.lists(st.sampled_from(["open", "paused", "closed", "absent"]), min_size=12, max_size=12),
)
def test_unplanned_rate_agrees_with_checking_every_shift(
    nerima: OfficeConfig, moments: list[int], statuses: list[str]
) -> None:
    """The estimator remembers which counters no shift covers per segment between shift
    boundaries; asked at moments in any order it must agree with checking every counter's shifts."""
    from office.calendar import counter_shifts, plan_for
    from office.state import CounterState, CounterStatus, OfficeState

    state = OfficeState()
    for counter, status in zip(nerima.counters, statuses, strict=False):
        if status != "absent":
            state.counters[counter.id] = CounterState(counter.id, CounterStatus(status), counter.services)
    state.counters["gone"] = CounterState("gone", CounterStatus.OPEN, ("move",))  # no longer in the config
    plan = plan_for(nerima, DAY)
    shifts = {
        c.id: [
            (a.hour * 60 + a.minute, b.hour * 60 + b.minute if b else math.inf)
            for a, b in counter_shifts(nerima, plan, c.id)
        ]
        for c in nerima.counters
    }
    estimator = CapacityEstimator(nerima)
    estimator.rates(DAY, "move")  # loads the day
    for minute in moments:
        for service in ("move", "certificate", "seal"):
            want = sum(
                (1.0 if c.services[0] == service else 0.5)
                for cid, c in state.counters.items()
                if c.status is CounterStatus.OPEN
                and service in c.services
                and not any(a <= minute < b for a, b in shifts.get(cid, ()))
            )
            assert estimator.unplanned_rate(state, service, float(minute)) == want, (minute, service)


@given(
    asks=st.lists(
        st.tuples(st.integers(7 * 60, 20 * 60 - 1), st.integers(0, 59), st.integers(0, 120)), min_size=1, max_size=20
    ),
    statuses=st.lists(st.sampled_from(["open", "paused", "closed", "absent"]), min_size=12, max_size=12),
    gone=st.sampled_from(["open", "closed", "absent"]),
)
def test_estimate_is_wait_minutes_widened(
    nerima: OfficeConfig, asks: list[tuple[int, int, int]], statuses: list[str], gone: str
) -> None:
    """`estimate` works the wait out in one pass (the ticket's hot path); asked in any order, with
    any counters open inside or outside their shifts, it gives `wait_minutes` widened."""
    from office.estimate import UNREACHABLE_MINUTES
    from office.state import CounterState, CounterStatus, OfficeState

    state = OfficeState()
    for counter, status in zip(nerima.counters, statuses, strict=False):
        if status != "absent":
            state.counters[counter.id] = CounterState(counter.id, CounterStatus(status), counter.services)
    if gone != "absent":  # a counter the config no longer has
        state.counters["gone"] = CounterState("gone", CounterStatus(gone), ("move", "seal"))
    estimator, reference = CapacityEstimator(nerima), CapacityEstimator(nerima)
    for minute, second, ahead in asks:
        now = datetime.combine(DAY, dt_time(minute // 60, minute % 60, second), tzinfo=nerima.tz)
        for service in ("move", "certificate", "seal"):
            minutes = reference.wait_minutes(service, ahead, now, state)
            want = (
                (UNREACHABLE_MINUTES, UNREACHABLE_MINUTES)
                if math.isinf(minutes)
                else (int(minutes * CapacityEstimator.LOW), math.ceil(minutes * CapacityEstimator.HIGH))
            )
            got = estimator.estimate(state, service, ahead, now)
            assert (got.low_minutes, got.high_minutes) == want, (minute, second, ahead, service)
            if not math.isinf(minutes):  # the mean is the estimate itself, inside its range
                assert got.mean_s == pytest.approx(minutes * 60) and got.p10_s <= got.mean_s <= got.p90_s


def test_a_wait_holds_against_the_range_before_and_after_its_ends_are_rounded() -> None:
    """The ticket prints "0 min" for p10 3 s – p90 19 s: 12 s is inside; 25 s is past p90 but
    rounds to the printed 0 min; 31 s rounds to 1 min, past the printed range."""
    wait = WaitRange(10.0, 3.0, 19.0)
    assert (wait.low_minutes, wait.high_minutes) == (0, 0)
    assert wait.holds(12) and not wait.holds(25) and not wait.holds(2)
    assert wait.holds_at_minutes(25) and wait.holds_at_minutes(2) and not wait.holds_at_minutes(31)
