"""What a board shows at one moment, as an immutable value: the `BoardSnapshot`.

Owns the snapshot types and `build_snapshot`, which copies what the screens need out of the office
model (config, `OfficeState`, a wait estimator, the calendar's `ModeNow`) into frozen values.
Nothing in a snapshot refers to live state, so a renderer may hold one as long as it likes while
the floor moves on. Renderers (board, LED frames, RS-485 text lines) read only snapshots.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum

from office.calendar import ModeNow, ModeOverride, mode_at, plan_for
from office.config import OfficeConfig, Text
from office.estimate import UNREACHABLE_MINUTES, WaitEstimator
from office.state import OfficeState, Ticket, TicketStatus

CALLING_LIMIT = 3  # numbers shown large as "now calling"
RECENT_LIMIT = 4  # earlier calls listed small beneath them


class ServiceStatus(StrEnum):
    OPEN = "open"  # tickets are issued; `wait` is the estimate for a ticket taken now
    ENDED = "ended"  # offered in this mode, but the queue already fills the rest of the day (cut-off)
    NOT_NOW = "not_now"  # not offered in the current mode (an evening, a Saturday, closed)


@dataclass(frozen=True, slots=True)
class CallEntry:
    """One call: the ticket as printed ("B-023"), where to go, and when it was called."""

    ticket: str
    prefix: str
    number: int
    counter: str
    counter_name: Text
    at: datetime


@dataclass(frozen=True, slots=True)
class ServiceLine:
    id: str
    prefix: str
    name: Text
    waiting: int
    status: ServiceStatus
    wait_low: int | None  # minutes; None unless status is OPEN
    wait_high: int | None


@dataclass(frozen=True, slots=True)
class HoursLine:
    """One open period of today: mode and local times."""

    mode: str
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class BoardSnapshot:
    """Everything a waiting-room board or call display draws, at the moment `at` (office local)."""

    office_name: Text
    at: datetime
    mode: ModeNow  # the calendar's own value: frozen, and holds nothing live
    calling: tuple[CallEntry, ...]  # newest first; calling[0] is highlighted
    recent: tuple[CallEntry, ...]  # earlier calls, newest first
    services: tuple[ServiceLine, ...]  # in config order
    hours: tuple[HoursLine, ...]  # today's open periods (empty on a closed day)
    day_reason: Text | None  # why today differs from the usual week (holiday, rush Saturday)
    url: str  # the public congestion page

    @property
    def newest(self) -> CallEntry | None:
        return self.calling[0] if self.calling else None


# A call as the boards order them: (called_at, issued_seq, ticket), compared in C, never down to
# the ticket (seqs are unique).
_Called = tuple[datetime, int, Ticket]


def _newest_calls(state: OfficeState, enough: int) -> tuple[list[_Called], list[_Called]]:
    """The tickets counters attend (status CALLED), and at least the `enough` newest calls of
    tickets called and still at a counter (attending or served there; a no-show, a ticket
    transferred, held or back in its queue is at none), with every call as new as the last of
    those. The gateway builds a snapshot on its loop at every change, and a rush day has
    thousands of calls: the attended tickets are the counters' current ones, and the newest
    calls are read from the end of `state.calls` (whose call times never decrease)."""
    tickets = state.tickets
    attending_status = TicketStatus.CALLED  # an enum member looked up once
    attending: list[_Called] = []
    for c in state.counters.values():
        t = tickets.get(c.current) if c.current is not None else None
        if t is not None and t.status is attending_status and t.called_at is not None and t.counter is not None:
            attending.append((t.called_at, t.issued_seq, t))
    called: list[_Called] = []
    last: datetime | None = None
    for t in state.calls_at_counters():
        at = t.called_at
        if at is None:
            continue
        if len(called) >= enough and at != last:
            break  # older than every call kept: the ties of the last one are in
        called.append((at, t.issued_seq, t))
        last = at
    return attending, called


def build_snapshot(
    config: OfficeConfig,
    state: OfficeState,
    estimator: WaitEstimator,
    at: datetime,
    *,
    override: ModeOverride | None = None,
    calling_limit: int = CALLING_LIMIT,
    recent_limit: int = RECENT_LIMIT,
) -> BoardSnapshot:
    """A snapshot of the floor at the aware moment `at`, copied out of `state` (never kept).

    "Now calling" are the tickets counters are attending (status CALLED), newest call first; the
    rest of today's calls, newest first, are the earlier calls. A state from another day (or none
    yet) shows no calls and nobody waiting. `override`: today's remote mode override, if any."""
    if at.tzinfo is None:
        raise ValueError("the snapshot moment must be timezone-aware")
    local = at.astimezone(config.tz)
    mode = mode_at(config, local, override)
    today = local.date()
    current_day = state.day == today
    services_by_id = {s.id: s for s in config.services}
    counters = {c.id: c for c in config.counters}

    attending: list[_Called] = []
    called: list[_Called] = []
    if current_day:
        attending, called = _newest_calls(state, calling_limit + recent_limit)

    def entry(t: Ticket) -> CallEntry:
        assert t.counter is not None and t.called_at is not None
        counter = counters.get(t.counter)
        name = counter.name if counter is not None else Text(t.counter, t.counter)
        prefix = services_by_id[t.service].prefix if t.service in services_by_id else t.id[:1]
        return CallEntry(t.id, prefix, t.number, t.counter, name, t.called_at.astimezone(config.tz))

    # Only the newest few are shown, newest call first.
    calling_t = [c[2] for c in heapq.nlargest(calling_limit, attending)]
    shown = {t.id for t in calling_t}
    calling = [entry(t) for t in calling_t]
    newest = heapq.nlargest(recent_limit + len(shown), called)
    recent = [entry(c[2]) for c in newest if c[2].id not in shown][:recent_limit]

    offered = set(mode.services)
    lines: list[ServiceLine] = []
    for s in config.services:
        waiting = len(state.queues.get(s.id, ())) if current_day else 0
        status, low, high = ServiceStatus.NOT_NOW, None, None
        if s.id in offered:
            wait = estimator.estimate(state, s.id, waiting, local)
            if wait.low_minutes >= UNREACHABLE_MINUTES or wait.high_minutes >= UNREACHABLE_MINUTES:
                status = ServiceStatus.ENDED
            else:
                status, low, high = ServiceStatus.OPEN, wait.low_minutes, wait.high_minutes
        lines.append(ServiceLine(s.id, s.prefix, s.name, waiting, status, low, high))

    plan = plan_for(config, today, override)
    return BoardSnapshot(
        office_name=config.name,
        at=local,
        mode=mode,
        calling=tuple(calling),
        recent=tuple(recent),
        services=tuple(lines),
        hours=tuple(HoursLine(p.mode, p.start, p.end) for p in plan.periods),
        day_reason=plan.reason,
        url=config.public_base_url,
    )
