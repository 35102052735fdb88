"""What a simulated office day shows and ends with: immutable pictures of the floor.

`counterfloor.simulate` builds them; `counterfloor.demo` draws them (the live view and the
closing summary) and tests read them. Values only: no behaviour beyond a derived figure or two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time


@dataclass(frozen=True, slots=True)
class ServiceView:
    id: str
    prefix: str
    name: str
    waiting: int
    longest_wait_minutes: float | None
    issued: int
    served: int
    mean_wait_minutes: float | None


@dataclass(frozen=True, slots=True)
class CounterView:
    id: str
    name: str
    status: str  # closed / open / paused
    activity: str  # off, idle, ready (about to call), calling, serving, lunch, overtime
    ticket: str | None
    service: str | None
    served: int


@dataclass(frozen=True, slots=True)
class CallView:
    at: datetime
    ticket: str
    counter: str
    recall: bool


@dataclass(frozen=True, slots=True)
class FloorView:
    """An immutable picture of the floor at one simulated moment, for drawing."""

    now: datetime
    start: datetime
    planned_end: datetime
    period: str
    issued: int
    refused: int
    waiting: int
    served: int
    mean_wait_minutes: float | None
    services: tuple[ServiceView, ...]
    counters: tuple[CounterView, ...]
    recent_calls: tuple[CallView, ...]
    done: bool

    @property
    def progress(self) -> float:
        """Fraction of the planned day behind us (1.0 once done; draining past the plan stays < 1)."""
        if self.done:
            return 1.0
        span = (self.planned_end - self.start).total_seconds()
        return min(0.999, max(0.0, (self.now - self.start).total_seconds() / span)) if span > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    """Tickets counted under the service they were issued for: issued = served + no_show + left."""

    id: str
    prefix: str
    name: str
    issued: int
    served: int
    no_show: int
    left_at_close: int
    transferred_out: int
    mean_wait_minutes: float | None
    max_wait_minutes: float | None
    within_estimate: float | None  # share of called tickets whose wait fell in their p10–p90 (WaitRange.holds)


@dataclass(frozen=True, slots=True)
class DaySummary:
    office: str
    office_name: str
    day: date
    rush: bool
    seed: int
    opens: time
    closes: time
    ended_at: datetime
    residents: int  # everyone who came for a ticket
    walked_away: int  # saw the estimated wait on the board and left without a ticket
    issued: int
    refused: tuple[tuple[str, int], ...]  # (reason, count), by reason
    served: int
    no_show: int
    gave_up: int  # of the no-shows: residents who had left after waiting too long
    left_at_close: int
    recalls: int
    transfers: int
    mean_wait_minutes: float | None
    max_wait_minutes: float | None
    services: tuple[ServiceSummary, ...]
    served_by_counter: tuple[tuple[str, int], ...]
    within_estimate: float | None = None  # share of all called tickets whose wait fell in their p10–p90
    within_printed_minutes: float | None = None  # the same at the ticket's whole minutes (holds_at_minutes)

    @property
    def refused_total(self) -> int:
        return sum(n for _, n in self.refused)
