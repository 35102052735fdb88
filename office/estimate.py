"""Wait-time estimates behind one small interface.

The office model needs an estimate for the ticket and for the reception cut-off. This first
estimator weighs each service's typical minutes against the counter time planned for it; the
learned predictor of the wait-time service replaces it through the same `WaitEstimator` protocol.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol

from office.calendar import ModeOverride, counter_shifts, plan_for
from office.config import OfficeConfig
from office.state import CounterStatus, OfficeState


@dataclass(frozen=True, slots=True)
class WaitRange:
    """A ticket's wait until its first call, in seconds: the expected (mean) wait and its 10th and
    90th percentiles. Residents see the range p10–p90 in whole minutes, each rounded to the
    nearest (rounding outwards would widen every range, most of all the short ones residents
    check first); the reception cut-off compares p10 itself with closing time."""

    mean_s: float
    p10_s: float
    p90_s: float

    @classmethod
    def of_minutes(cls, low: int, high: int) -> WaitRange:
        """A range given in minutes, its mean halfway (an estimator that knows only a range)."""
        return cls((low + high) * 30.0, low * 60.0, high * 60.0)

    @property
    def low_minutes(self) -> int:
        return round(self.p10_s / 60)

    @property
    def high_minutes(self) -> int:
        return max(round(self.p90_s / 60), self.low_minutes)

    def holds(self, wait_s: float) -> bool:
        """The wait fell inside the range: its p10–p90 in seconds, which the ticket prints with each
        end rounded to whole minutes. (A wait in seconds against the rounded ends would count 12 s
        on a ticket that printed "0 min" — p90 19 s — as a miss.)"""
        return self.p10_s <= wait_s <= self.p90_s

    def holds_at_minutes(self, wait_s: float) -> bool:
        """The wait, rounded to whole minutes as the ticket's ends are, fell inside the printed
        range: what a resident reading the ticket sees (wider than p10–p90 by up to a minute)."""
        return self.low_minutes <= round(wait_s / 60) <= self.high_minutes


class WaitEstimator(Protocol):
    def estimate(
        self, state: OfficeState, service: str, ahead: int, now: datetime, ticket: str | None = None
    ) -> WaitRange:
        """How long a ticket of `service` with `ahead` people before it will wait from `now`: the
        mean and the 10th–90th percentile range, in seconds. `ticket`: the waiting ticket asked
        about (a reprint); None for a new one (the dispenser, the board, the cut-off)."""
        ...


_UNBOUNDED = float("inf")
_OPEN = CounterStatus.OPEN


class CapacityEstimator:
    """The work ahead of a ticket against the counter time planned for its service today.

    Work ahead is (ahead + ½) × the service's typical minutes: the half because the counters are
    busy with someone when a ticket is taken. Each counter that calls the service gives it its
    planned shifts, at full rate where the service is its first priority and half rate where
    another comes first; a counter open outside its planned shifts (or with none planned) counts
    from now until the office closes. The wait is the time until that capacity has covered the
    work, so lunch rotations and a thinner evening lengthen it, and a queue that the rest of the
    day's shifts cannot clear gives a wait past closing: the reception cut-off. A shift with no
    end ("until the queue is empty") never runs out.
    """

    LOW = 0.75  # the range printed: the estimate widened, more above than below
    HIGH = 1.3

    def __init__(self, config: OfficeConfig) -> None:
        self.config = config
        self._tz = config.tz
        self._typical = {s.id: s.typical_minutes for s in config.services}
        self._day: date | None = None
        self._override: ModeOverride | None = None  # the day's remote override the tables were built for
        self._closes = 0.0
        self._shifts: dict[str, list[tuple[float, float]]] = {}
        self._known: frozenset[str] = frozenset()
        self._rates: dict[str, list[tuple[float, float]]] = {}
        self._tables: dict[str, _Capacity] = {}
        # The minutes at which some planned shift starts or ends, and the last segment between
        # two of them that was asked about: (from, to, the counters no shift covers in it).
        self._bounds: list[float] = []
        self._segment: tuple[float, float, tuple[str, ...]] = (_UNBOUNDED, -_UNBOUNDED, ())

    def _today(self, day: date, override: ModeOverride | None = None) -> None:
        if day == self._day and override is self._override:
            return
        plan = plan_for(self.config, day, override)
        self._day, self._override, self._rates, self._tables = day, override, {}, {}
        self._closes = _minutes(plan.closes) if plan.closes else 0.0
        self._shifts = {
            c.id: [(_minutes(a), _minutes(b) if b else _UNBOUNDED) for a, b in counter_shifts(self.config, plan, c.id)]
            for c in self.config.counters
        }
        self._known = frozenset(self._shifts)
        self._bounds = sorted({x for shifts in self._shifts.values() for ab in shifts for x in ab if x != _UNBOUNDED})
        self._segment = (_UNBOUNDED, -_UNBOUNDED, ())

    def rates(self, day: date, service: str) -> list[tuple[float, float]]:
        """The service's planned capacity over the day as steps (from minute, counters' rate), by
        the plan loaded for `day` (with the override it was loaded with), else the calendar's."""
        if day != self._day:
            self._today(day)
        steps = self._rates.get(service)
        if steps is None:
            steps = self._rates[service] = self._build(service)
        return steps

    def _build(self, service: str) -> list[tuple[float, float]]:
        changes: dict[float, float] = {}
        for counter in self.config.counters:
            if service not in counter.services:
                continue
            weight = 1.0 if counter.services[0] == service else 0.5
            for a, b in self._shifts[counter.id]:
                changes[a] = changes.get(a, 0.0) + weight
                if b != _UNBOUNDED:
                    changes[b] = changes.get(b, 0.0) - weight
        steps: list[tuple[float, float]] = [(0.0, 0.0)]
        rate = 0.0
        for t in sorted(changes):
            rate += changes[t]
            steps.append((t, max(rate, 0.0)))
        return steps

    def table(self, day: date, service: str) -> _Capacity:
        table = self._tables.get(service)
        if table is None or day != self._day:
            steps = self.rates(day, service)
            table = self._tables[service] = _Capacity(steps)
        return table

    def unplanned_rate(self, state: OfficeState, service: str, t: float) -> float:
        """Counters open now although no planned shift covers now: staff the plan does not know."""
        counters = state.counters
        rate = 0.0
        for cid in self._unplanned_at(t):
            c = counters.get(cid)
            if c is not None and c.status is CounterStatus.OPEN and service in c.services:
                rate += 1.0 if c.services[0] == service else 0.5
        if not self._known.issuperset(counters):
            # Counters the config no longer has (changed during the day): never planned.
            for cid, c in counters.items():
                if cid not in self._known and c.status is CounterStatus.OPEN and service in c.services:
                    rate += 1.0 if c.services[0] == service else 0.5
        return rate

    def _unplanned_at(self, t: float) -> tuple[str, ...]:
        """The configured counters that no planned shift covers at minute `t`. Between two
        consecutive shift starts or ends that set cannot change, so it is worked out once per
        such segment, not on every ticket."""
        lo, hi, off = self._segment
        if lo <= t < hi:
            return off
        bounds = self._bounds
        i = bisect.bisect_right(bounds, t)
        lo = bounds[i - 1] if i else -_UNBOUNDED
        hi = bounds[i] if i < len(bounds) else _UNBOUNDED
        off = tuple(cid for cid, shifts in self._shifts.items() if not any(a <= t < b for a, b in shifts))
        self._segment = (lo, hi, off)
        return off

    def wait_minutes(self, service: str, ahead: int, now: datetime, state: OfficeState | None = None) -> float:
        local = now if now.tzinfo is self._tz else now.astimezone(self._tz)
        day = local.date()
        override = state.overrides.get(day) if state is not None else None
        if day != self._day or override is not self._override:
            self._today(day, override)  # the day's shifts, which unplanned_rate reads
        t = local.hour * 60.0 + local.minute + local.second / 60.0
        work = (ahead + 0.5) * self._typical[service]
        extra = self.unplanned_rate(state, service, t) if state is not None else 0.0
        if not extra:
            return (self._tables.get(service) or self.table(day, service)).wait(t, work)
        # Unplanned counters add their rate from now until closing: a one-off table.
        steps = _plus_rate(self.rates(day, service), extra, t, self._closes)
        return _Capacity(steps).wait(t, work)

    def estimate(
        self, state: OfficeState, service: str, ahead: int, now: datetime, ticket: str | None = None
    ) -> WaitRange:
        """`wait_minutes` widened to the printed range, worked out in one pass: this runs for every
        ticket issued, right after the fsync of the command before it, when every extra call is
        slow (tests/test_estimate.py checks it against `wait_minutes`)."""
        local = now if now.tzinfo is self._tz else now.astimezone(self._tz)
        day = local.date()
        override = state.overrides.get(day) if state.overrides else None
        if day != self._day or override is not self._override:
            self._today(day, override)
        t = local.hour * 60.0 + local.minute + local.second / 60.0
        work = (ahead + 0.5) * self._typical[service]
        # unplanned_rate, inline: the counters open now that no planned shift covers.
        lo, hi, off = self._segment
        if not lo <= t < hi:
            off = self._unplanned_at(t)
        counters = state.counters
        extra = 0.0
        for cid in off:
            c = counters.get(cid)
            if c is not None and c.status is _OPEN and service in c.services:
                extra += 1.0 if c.services[0] == service else 0.5
        if not self._known.issuperset(counters):
            for cid, c in counters.items():
                if cid not in self._known and c.status is _OPEN and service in c.services:
                    extra += 1.0 if c.services[0] == service else 0.5
        if extra:
            minutes = _Capacity(_plus_rate(self.rates(day, service), extra, t, self._closes)).wait(t, work)
        else:
            minutes = (self._tables.get(service) or self.table(day, service)).wait(t, work)
        if minutes == _UNBOUNDED:
            return UNREACHABLE
        return WaitRange(minutes * 60.0, int(minutes * self.LOW) * 60.0, math.ceil(minutes * self.HIGH) * 60.0)


class _Capacity:
    """A service's planned capacity as a cumulative table, so that the time at which a given
    amount of counter time has been delivered is two bisections, not a walk over the steps."""

    __slots__ = ("cum", "rates", "times")

    def __init__(self, steps: list[tuple[float, float]]) -> None:
        self.times = [t for t, _ in steps]
        self.rates = [r for _, r in steps]
        self.cum = [0.0]
        for i in range(1, len(steps)):
            self.cum.append(self.cum[-1] + self.rates[i - 1] * (self.times[i] - self.times[i - 1]))

    def wait(self, t: float, work: float) -> float:
        """Minutes from `t` until `work` counter-minutes have been delivered (inf if never)."""
        times, rates, cum = self.times, self.rates, self.cum
        i = bisect.bisect_right(times, t) - 1
        target = cum[i] + rates[i] * (t - times[i]) + work
        k = bisect.bisect_left(cum, target)
        if k == len(cum):
            last = len(cum) - 1
            return times[last] + (target - cum[last]) / rates[last] - t if rates[last] > 0.0 else _UNBOUNDED
        if cum[k] == target:
            return times[k] - t
        return times[k - 1] + (target - cum[k - 1]) / rates[k - 1] - t


def _plus_rate(steps: list[tuple[float, float]], extra: float, start: float, end: float) -> list[tuple[float, float]]:
    """The steps with `extra` added over [start, end)."""
    points = sorted({t for t, _ in steps} | {start, end})
    out = []
    for p in points:
        rate = steps[bisect.bisect_right(steps, (p, _UNBOUNDED)) - 1][1]
        out.append((p, rate + extra if start <= p < end else rate))
    return out


def _minutes(t: time) -> float:
    return t.hour * 60.0 + t.minute


# A wait that today's remaining shifts cannot reach: past any closing time.
UNREACHABLE_MINUTES = 24 * 60
UNREACHABLE = WaitRange(UNREACHABLE_MINUTES * 60.0, UNREACHABLE_MINUTES * 60.0, UNREACHABLE_MINUTES * 60.0)
