"""Wait-time estimates behind one small interface.

The office model needs an estimate for the ticket and for the reception cut-off. This first
estimator uses each service's typical minutes and the counters planned for it; the learned
predictor of the wait-time service replaces it through the same `WaitEstimator` protocol.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol

from office.calendar import counter_shifts, plan_for
from office.config import OfficeConfig
from office.state import CounterStatus, OfficeState


@dataclass(frozen=True, slots=True)
class WaitRange:
    low_minutes: int
    high_minutes: int


class WaitEstimator(Protocol):
    def estimate(self, state: OfficeState, service: str, ahead: int, now: datetime) -> WaitRange:
        """How long a ticket of `service` with `ahead` people before it will wait, as a range."""
        ...


class TypicalTimeEstimator:
    """ahead × typical minutes ÷ counters serving the service, widened into a range."""

    def __init__(self, config: OfficeConfig) -> None:
        self.config = config
        self._shifts: dict[date, dict[str, list[tuple[time, time | None]]]] = {}

    def shifts_on(self, day: date) -> dict[str, list[tuple[time, time | None]]]:
        shifts = self._shifts.get(day)
        if shifts is None:
            plan = plan_for(self.config, day)
            shifts = {c.id: counter_shifts(self.config, plan, c.id) for c in self.config.counters}
            self._shifts = {day: shifts}  # only today matters; keep the cache from growing
        return shifts

    def servers(self, state: OfficeState, service: str, now: datetime) -> float:
        local = now.astimezone(self.config.tz)
        shifts = self.shifts_on(local.date())
        t = local.time()
        count = 0.0
        for counter in self.config.counters:
            live = state.counters.get(counter.id)
            services = live.services if live and live.status is not CounterStatus.CLOSED else counter.services
            if service not in services:
                continue
            on_shift = any(start <= t and (end is None or t < end) for start, end in shifts[counter.id])
            if (live and live.status is CounterStatus.OPEN) or on_shift:
                # A counter that calls this service only after others gives it part of its time.
                count += 1.0 if services[0] == service else 0.5
        return max(count, 1.0)

    def estimate(self, state: OfficeState, service: str, ahead: int, now: datetime) -> WaitRange:
        minutes = ahead * self.config.service(service).typical_minutes / self.servers(state, service, now)
        return WaitRange(int(minutes * 0.7), int(minutes * 1.3 + 0.999))


def minutes_until(local_now: datetime, until: time) -> float:
    """Minutes from a local moment to a time of the same day (negative once it has passed)."""
    end = local_now.replace(hour=until.hour, minute=until.minute, second=0, microsecond=0)
    return (end - local_now).total_seconds() / 60.0


_UNBOUNDED = float("inf")


class CapacityEstimator:
    """The work ahead of a ticket against the counter time planned for its service today.

    Work ahead is (ahead + ½) × the service's typical minutes: the half because the counters are
    busy with someone when a ticket is taken. Each counter that calls the service gives it its
    planned shifts, at full rate where the service is its first priority and half rate where
    another comes first. The wait is the time until that capacity has covered the work, so lunch
    rotations and a thinner evening lengthen it, and a queue that the rest of the day's shifts
    cannot clear gives a wait past closing: the reception cut-off. A shift with no end ("until
    the queue is empty") never runs out.
    """

    LOW = 0.75  # the range printed: the estimate widened, more above than below
    HIGH = 1.3

    def __init__(self, config: OfficeConfig) -> None:
        self.config = config
        self._day: date | None = None
        self._rates: dict[str, list[tuple[float, float]]] = {}

    def rates(self, day: date, service: str) -> list[tuple[float, float]]:
        """The service's capacity over the day as steps (from minute, counters' rate), sorted."""
        if day != self._day:
            self._day, self._rates = day, {}
        steps = self._rates.get(service)
        if steps is None:
            steps = self._rates[service] = self._build(day, service)
        return steps

    def _build(self, day: date, service: str) -> list[tuple[float, float]]:
        plan = plan_for(self.config, day)
        changes: dict[float, float] = {}
        for counter in self.config.counters:
            if service not in counter.services:
                continue
            weight = 1.0 if counter.services[0] == service else 0.5
            for start, end in counter_shifts(self.config, plan, counter.id):
                a = start.hour * 60.0 + start.minute
                changes[a] = changes.get(a, 0.0) + weight
                if end is not None:
                    b = end.hour * 60.0 + end.minute
                    changes[b] = changes.get(b, 0.0) - weight
        steps: list[tuple[float, float]] = [(0.0, 0.0)]
        rate = 0.0
        for t in sorted(changes):
            rate += changes[t]
            steps.append((t, max(rate, 0.0)))
        return steps

    def wait_minutes(self, service: str, ahead: int, now: datetime) -> float:
        local = now.astimezone(self.config.tz)
        t = local.hour * 60.0 + local.minute + local.second / 60.0
        work = (ahead + 0.5) * self.config.service(service).typical_minutes
        steps = self.rates(local.date(), service)
        i = bisect.bisect_right(steps, (t, _UNBOUNDED)) - 1
        clock = t
        while True:
            rate = steps[i][1]
            end = steps[i + 1][0] if i + 1 < len(steps) else _UNBOUNDED
            if rate > 0.0:
                if work <= rate * (end - clock):
                    return clock + work / rate - t
                work -= rate * (end - clock)
            if end == _UNBOUNDED:
                return _UNBOUNDED  # no capacity left today
            clock = end
            i += 1

    def estimate(self, state: OfficeState, service: str, ahead: int, now: datetime) -> WaitRange:
        minutes = self.wait_minutes(service, ahead, now)
        if minutes == _UNBOUNDED:
            return WaitRange(UNREACHABLE_MINUTES, UNREACHABLE_MINUTES)
        return WaitRange(int(minutes * self.LOW), math.ceil(minutes * self.HIGH))


# A wait that today's remaining shifts cannot reach: past any closing time.
UNREACHABLE_MINUTES = 24 * 60
