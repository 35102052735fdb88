"""Wait-time estimates behind one small interface.

The office model needs an estimate for the ticket and for the reception cut-off. This first
estimator uses each service's typical minutes and the counters planned for it; the learned
predictor of the wait-time service replaces it through the same `WaitEstimator` protocol.
"""

from __future__ import annotations

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
