"""The wait-time predictors, behind one small interface.

Owns `Prediction` (mean, p10, p90 seconds from issue to first call) and the predictors that
give it for tickets waiting on a `Floor`: `best` (the mean-path forecast of
`office.waittime.forecast`, calibrated on past days) and the baselines it is measured against —
`naive`, the industry standard (people ahead × mean service time ÷ open counters); `capacity`,
the office's own `CapacityEstimator` fed from the event log; `hol`, the head of the queue's wait so
far; `les`, the wait of the service's last ticket called; `erlangc`, the stationary M/M/c wait with
the learned rates. Baselines print the range the office prints today (0.75×–1.3× the estimate),
except Erlang C, whose wait has a distribution of its own. Each gives the wait of a ticket
already waiting as its wait so far plus what is left (`hol`, `les`, `erlangc`: the larger of
the two). Pure; a predictor keeps no more than a cache of the day's plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from office.config import Counter, Hours, OfficeConfig, Rules, Service, Text
from office.estimate import UNREACHABLE_MINUTES, CapacityEstimator
from office.state import CounterState, CounterStatus, OfficeState
from office.waittime.calibrate import Calibration
from office.waittime.floor import CLOSED, OPEN, PAUSED, DayPlan, Floor, Ticket
from office.waittime.forecast import INF, Forecaster
from office.waittime.params import Params, expected_by

BAND_LOW, BAND_HIGH = CapacityEstimator.LOW, CapacityEstimator.HIGH
_LONGEST_S = UNREACHABLE_MINUTES * 60.0  # the office's own "past closing": a day


@dataclass(frozen=True, slots=True)
class Prediction:
    mean: float  # seconds from issue to first call
    p10: float
    p90: float


class Predictor(Protocol):
    name: str

    def predict(self, floor: Floor, tickets: Sequence[Ticket]) -> list[Prediction]:
        """Predictions for these waiting tickets of the floor, as it is now, in their order."""
        ...


def _band(elapsed: float, left: float) -> Prediction:
    return Prediction(elapsed + left, elapsed + BAND_LOW * left, elapsed + BAND_HIGH * left)


# -- best --------------------------------------------------------------------------------------
class Best:
    """The mean-path forecast, calibrated (office.waittime.forecast, .calibrate)."""

    name = "best"

    def __init__(self, params: Params, calibration: Calibration | None = None) -> None:
        self.params = params
        self.forecaster = Forecaster(params)
        self.calibration = calibration or Calibration()
        self._fallback = Naive(params)
        # A ticket no counter's plan reaches: the plain arithmetic's figure (replay, scoring), or
        # infinity (the office model's seam, where it means "not today": the reception cut-off).
        self.unreached_is_inf = False

    def raw(self, floor: Floor, tickets: Sequence[Ticket]) -> list[float]:
        """Seconds from now to the forecast first call of each ticket (INF: no counter will)."""
        forecast = self.forecaster.run(floor, [t.id for t in tickets])
        now = floor.now
        return [max(0.0, forecast.get(t.id, INF) - now) for t in tickets]

    def predict(self, floor: Floor, tickets: Sequence[Ticket]) -> list[Prediction]:
        out = []
        now = floor.now
        apply = self.calibration.apply
        kind = floor.plan.kind if floor.plan is not None else ""  # as the calibration saw the day
        hour = int(now // 3600)
        for t, left in zip(tickets, self.raw(floor, tickets), strict=True):
            elapsed = max(0.0, now - t.issued)
            if left == INF:  # no counter's plan reaches it: fall back on the plain arithmetic
                out.append(
                    Prediction(INF, INF, INF) if self.unreached_is_inf else self._fallback.predict(floor, [t])[0]
                )
                continue
            mean, low, high = apply(left, t.service, kind, hour)
            out.append(Prediction(elapsed + mean, elapsed + low, elapsed + high))
        return out


# -- baselines ---------------------------------------------------------------------------------
class Naive:
    """People ahead × mean service time ÷ open counters for the service (at least one)."""

    name = "naive"

    def __init__(self, params: Params) -> None:
        self.params = params

    def predict(self, floor: Floor, tickets: Sequence[Ticket]) -> list[Prediction]:
        out = []
        for t in tickets:
            mean = self.params.service(t.service).occupation
            left = floor.ahead(t) * mean / max(1, floor.open_counters(t.service))
            out.append(_band(max(0.0, floor.now - t.issued), left))
        return out


class HeadOfLine:
    """The wait so far of the ticket at the head of the service's queue."""

    name = "hol"

    def predict(self, floor: Floor, tickets: Sequence[Ticket]) -> list[Prediction]:
        out = []
        for t in tickets:
            queue = floor.queues.get(t.service)
            head = floor.tickets[queue[0][1]] if queue else t
            elapsed = max(0.0, floor.now - t.issued)
            out.append(_band(0.0, max(elapsed, floor.now - head.issued)))
        return out


class LastToEnterService:
    """The wait of the service's latest ticket called (0 before the day's first call)."""

    name = "les"

    def predict(self, floor: Floor, tickets: Sequence[Ticket]) -> list[Prediction]:
        out = []
        for t in tickets:
            elapsed = max(0.0, floor.now - t.issued)
            out.append(_band(0.0, max(elapsed, floor.last_wait.get(t.service, 0.0))))
        return out


class ErlangC:
    """The stationary M/M/c mean wait: arrivals at the rate learned for this hour (scaled by how
    busy today is), the learned mean time per call (a service or a no-show, and the turnaround),
    c the open counters that call the service. An overloaded queue (ρ ≥ 1) has no stationary wait:
    then the people ahead are worked off at c counters' rate."""

    name = "erlangc"
    WINDOW_S = 1800.0  # the arrival rate now: over the half hours either side

    def __init__(self, params: Params) -> None:
        self.params = params
        self.forecaster = Forecaster(params)

    def predict(self, floor: Floor, tickets: Sequence[Ticket]) -> list[Prediction]:
        load = self.forecaster.load_factor(floor)
        out = []
        now = floor.now
        for t in tickets:
            m = self.params.service(t.service)
            arrivals = self.params.flow(floor.plan.kind if floor.plan is not None else None, t.service)[0]
            window = self.WINDOW_S
            lam = (expected_by(arrivals, now + window) - expected_by(arrivals, now - window)) / (2 * window)
            lam *= load.get(t.service, load[""])
            p = m.p_no_show[0]
            per_call = p * m.no_show_occupation + (1 - p) * m.occupation + self.params.turnaround_all
            mu = 1.0 / per_call
            c = max(1, floor.open_counters(t.service))
            elapsed = max(0.0, now - t.issued)
            rho = lam / (c * mu)
            if rho >= 1.0:
                out.append(_band(elapsed, (floor.ahead(t) + 1) / (c * mu)))
                continue
            waits = erlang_c(c, lam / mu)  # the chance of waiting at all
            theta = c * mu - lam
            mean = waits / theta

            def quantile(q: float, waits: float = waits, theta: float = theta) -> float:
                return 0.0 if q <= 1.0 - waits else -math.log((1.0 - q) / waits) / theta

            # Near ρ = 1 the stationary wait runs to days: none is longer than the office's day.
            low, mean, high = (min(x, _LONGEST_S) for x in (quantile(0.1), mean, quantile(0.9)))
            out.append(Prediction(max(elapsed, mean), max(elapsed, low), max(elapsed, high)))
        return out


def erlang_c(c: int, a: float) -> float:
    """The chance an arrival waits in M/M/c with offered load a = λ/μ < c (Erlang B recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho + rho * b)


class Capacity:
    """The office's `CapacityEstimator`, given what the event log says instead of a config: the
    counters and shifts of the latest `schedule` and, for each service's typical minutes, its
    learned mean service time. Its estimate (mean, and the range the office prints) is for a
    ticket with `ahead` people before it."""

    name = "capacity"

    def __init__(self, params: Params) -> None:
        self.params = params
        self._plan: DayPlan | None = None
        self._estimator: _ScheduleCapacity | None = None
        self._services: frozenset[str] = frozenset()

    def _for(self, floor: Floor) -> _ScheduleCapacity:
        plan = floor.plan
        services = frozenset(floor.queues) | frozenset(floor.issued)
        if self._estimator is None or plan is not self._plan or not services <= self._services:
            known = set(self.params.services) | services
            if plan is not None:
                known.update(s for svc in plan.services.values() for s in svc)
            known.update(s for c in floor.counters.values() for s in c.services)
            self._plan, self._services = plan, frozenset(known)
            self._estimator = _ScheduleCapacity(plan, {s: self.params.service(s).occupation / 60.0 for s in known})
        return self._estimator

    def predict(self, floor: Floor, tickets: Sequence[Ticket]) -> list[Prediction]:
        estimator = self._for(floor)
        state = OfficeState(
            counters={cid: _counter_state(c.id, c.status, c.services) for cid, c in floor.counters.items()}
        )
        at = estimator.moment(floor)
        out = []
        for t in tickets:
            wait = estimator.estimate(state, t.service, floor.ahead(t), at)  # what the office prints
            elapsed = max(0.0, floor.now - t.issued)
            out.append(Prediction(elapsed + wait.mean_s, elapsed + wait.p10_s, elapsed + wait.p90_s))
        return out


_STATUS = {CLOSED: CounterStatus.CLOSED, OPEN: CounterStatus.OPEN, PAUSED: CounterStatus.PAUSED}


def _counter_state(cid: str, status: int, services: tuple[str, ...]) -> CounterState:
    return CounterState(cid, _STATUS[status], services)


_NO_TEXT = Text("", "")
_DAY = Hours(datetime.min.time(), datetime.max.time())


class _ScheduleCapacity(CapacityEstimator):
    """CapacityEstimator with its day's shifts from a `schedule` event rather than the calendar.
    Times are the log's wall clock, given to it in UTC (its zone) so nothing is converted."""

    def __init__(self, plan: DayPlan | None, typical_minutes: dict[str, float]) -> None:
        counters = plan.services if plan is not None else {}
        config = OfficeConfig(
            id="",
            name=_NO_TEXT,
            timezone="UTC",
            public_base_url="",
            weekday=_DAY,
            evening=None,
            saturday=None,
            exceptions=(),
            rules=Rules(),
            services=tuple(Service(s, "", _NO_TEXT, 1, 1, (), m) for s, m in typical_minutes.items()),
            counters=tuple(Counter(cid, _NO_TEXT, svc, ()) for cid, svc in counters.items()),
        )
        self.plan = plan
        super().__init__(config)

    def _today(self, day: date, override: object = None) -> None:
        if day == self._day:
            return
        plan = self.plan
        self._day, self._override, self._rates, self._tables = day, None, {}, {}
        self._closes = plan.closes / 60.0 if plan is not None and plan.closes is not None else 0.0
        self._shifts = {
            c.id: [(a / 60.0, b / 60.0) for a, b in (plan.blocks.get(c.id, ()) if plan is not None else ())]
            for c in self.config.counters
        }
        self._known = frozenset(self._shifts)
        self._bounds = sorted({x for shifts in self._shifts.values() for ab in shifts for x in ab if x != INF})
        self._segment = (INF, -INF, ())

    _EPOCH_DAY = date(2000, 1, 3)

    def moment(self, floor: Floor) -> datetime:
        return datetime.combine(self._EPOCH_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(seconds=floor.now)


PREDICTORS = ("best", "naive", "capacity", "hol", "les", "erlangc")


def baseline(name: str, params: Params) -> Predictor:
    """A baseline predictor by name (see PREDICTORS; `best` needs calibrating: office.waittime.replay)."""
    if name == "naive":
        return Naive(params)
    if name == "capacity":
        return Capacity(params)
    if name == "hol":
        return HeadOfLine()
    if name == "les":
        return LastToEnterService()
    if name == "erlangc":
        return ErlangC(params)
    if name == "best":
        return Best(params)
    raise ValueError(f"unknown predictor {name!r} (one of {', '.join(PREDICTORS)})")
