"""The floor as the predictor sees it: the replay of one business day's public records.

Owns the waiting tickets per service in calling order, the counters (open, paused or closed,
their service priorities, whom they serve and since when), today's plan from the latest
`schedule`, and the few running figures the baselines read (the last wait ended per service,
tickets issued so far). Tolerant like its reader: an event about a ticket or counter it never
saw (a log that starts mid-day) is absorbed, never an error. A new business day (a `schedule`
with `new_day`, or a record of a later date) starts afresh. Pure and deterministic: only the
records applied so far are known, so a prediction made here cannot look ahead.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from office.waittime import records as r
from office.waittime.records import UNTIL_EMPTY

WAITING, CALLED, HELD, SERVED, NO_SHOW = range(5)

CLOSED, OPEN, PAUSED = range(3)
_HYPOTHETICAL = "\x00new"  # the id of Floor.hypothetical's ticket: no real ticket id has a NUL


class Ticket:
    __slots__ = (
        "called_at",
        "counter",
        "first_called",
        "id",
        "issue_service",
        "issued",
        "issued_ts",
        "order",
        "recalls",
        "requeued",
        "service",
        "status",
    )

    def __init__(self, tid: str, service: str, issued: float, issued_ts: str, order: int) -> None:
        self.id = tid
        self.service = service
        self.issue_service = service
        self.issued = issued
        self.issued_ts = issued_ts
        self.order = order  # place in its queue: issue seq; a requeued no-show's is its no_show seq
        self.status = WAITING
        self.requeued = False
        self.counter: str | None = None
        self.called_at: float | None = None
        self.first_called: float | None = None
        self.recalls = 0


class Counter:
    __slots__ = ("busy_since", "current", "free_since", "id", "recalled", "services", "status")

    def __init__(self, cid: str) -> None:
        self.id = cid
        self.status = CLOSED
        self.services: tuple[str, ...] = ()
        self.current: str | None = None
        self.busy_since = 0.0  # when its current ticket was called
        self.free_since = 0.0  # when it last had nobody in front of it
        self.recalled = False  # its current ticket has been recalled


@dataclass(slots=True)
class DayPlan:
    """Today's plan from the latest `schedule`: each counter's services and its working blocks
    (adjacent shifts merged, [start, end) seconds; end UNTIL_EMPTY for an open end), the
    closing time and, per service, when its reception ends."""

    services: dict[str, tuple[str, ...]]
    blocks: dict[str, tuple[tuple[float, float], ...]]
    closes: float | None
    reception_end: dict[str, float] = field(default_factory=dict)
    kind: str = ""  # the day's modes, e.g. "evening+office": days alike in shape (arrivals are learned per kind)

    @classmethod
    def from_schedule(cls, e: r.Schedule) -> DayPlan:
        blocks: dict[str, tuple[tuple[float, float], ...]] = {}
        for c in e.counters:
            merged: list[list[float]] = []
            for start, end in sorted(c.shifts):
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            blocks[c.counter] = tuple((a, b) for a, b in merged)
        ends: dict[str, float] = {}
        for p in e.periods:
            for s in p.services:
                ends[s] = max(ends.get(s, 0.0), p.end)
        kind = "+".join(sorted({p.mode for p in e.periods}))
        return cls({c.counter: c.services for c in e.counters}, blocks, e.closes, ends, kind)


class Floor:
    """The state of one office's floor for the business day of the records applied so far."""

    def __init__(self) -> None:
        self.day: str | None = None
        self.office = ""
        self.now = 0.0
        self.plan: DayPlan | None = None
        self._reset()

    def _reset(self) -> None:
        self.tickets: dict[str, Ticket] = {}
        self.counters: dict[str, Counter] = {}
        # Per service, the waiting tickets as sorted (order, ticket id): the calling order.
        self.queues: dict[str, list[tuple[int, str]]] = {}
        self.last_wait: dict[str, float] = {}  # the wait of the service's latest first call
        self.issued: dict[str, int] = {}  # tickets issued today per service (at issue)
        self.issued_total = 0
        self._order = 0  # stands in for seq in records that lack it

    # -- queries -----------------------------------------------------------------------------
    def ahead(self, ticket: Ticket) -> int:
        """Tickets before this one in its service's queue (it must be waiting)."""
        return bisect.bisect_left(self.queues.get(ticket.service, ()), (ticket.order, ticket.id))

    def waiting(self) -> list[Ticket]:
        tickets = self.tickets
        return [tickets[tid] for q in self.queues.values() for _, tid in q]

    def counter(self, cid: str) -> Counter:
        c = self.counters.get(cid)
        if c is None:
            c = self.counters[cid] = Counter(cid)
        return c

    @contextmanager
    def hypothetical(self, service: str) -> Iterator[Ticket]:
        """A ticket of `service` as if taken now, waiting last in its queue while the block runs
        (for the estimate a dispenser shows before a ticket exists); the floor is as it was after."""
        t = Ticket(_HYPOTHETICAL, service, self.now, "", self._order + 1)
        key = (t.order, t.id)
        self.tickets[t.id] = t
        queue = self.queues.setdefault(service, [])
        queue.append(key)
        try:
            yield t
        finally:
            del self.tickets[t.id]
            queue.remove(key)
            if not queue:
                del self.queues[service]

    def open_counters(self, service: str) -> int:
        return sum(1 for c in self.counters.values() if c.status == OPEN and service in c.services)

    # -- replay ------------------------------------------------------------------------------
    def apply(self, e: r.Event) -> None:
        if e.day != self.day and (self.day is None or e.day > self.day):
            self.day = e.day
            self.plan = None
            self._reset()
        self.office = e.office or self.office
        if e.day == self.day:  # (a record of an earlier day, out of order, leaves the clock)
            self.now = e.t
        seq = e.seq
        if seq is None:
            self._order += 1
            seq = self._order
        else:
            self._order = max(self._order, seq)
        _HANDLERS[type(e)](self, e, seq)

    def _ticket(self, tid: str, service: str | None = None) -> Ticket:
        """The ticket, or a stand-in for one issued before the log starts (not waiting)."""
        t = self.tickets.get(tid)
        if t is None:
            t = self.tickets[tid] = Ticket(tid, service or "", self.now, "", -1)
            t.status = SERVED
        return t

    def _enqueue(self, t: Ticket) -> None:
        t.status = WAITING
        t.counter = None
        bisect.insort(self.queues.setdefault(t.service, []), (t.order, t.id))

    def _leave(self, t: Ticket) -> None:
        """Out of its queue, or away from the counter it was at."""
        if t.status == WAITING:
            queue = self.queues.get(t.service)
            if queue:
                i = bisect.bisect_left(queue, (t.order, t.id))
                if i < len(queue) and queue[i][1] == t.id:
                    del queue[i]
                    if not queue:
                        del self.queues[t.service]
        elif t.counter is not None:
            c = self.counters.get(t.counter)
            if c is not None and c.current == t.id:
                c.current = None
                c.free_since = self.now
        t.counter = None

    def _on_schedule(self, e: r.Schedule, seq: int) -> None:
        if e.new_day and self.tickets:
            self._reset()
        self.plan = DayPlan.from_schedule(e)

    def _on_opened(self, e: r.CounterOpened, seq: int) -> None:
        c = self.counter(e.counter)
        c.status = OPEN
        c.services = e.services
        c.free_since = self.now

    def _on_paused(self, e: r.CounterPaused, seq: int) -> None:
        self.counter(e.counter).status = PAUSED

    def _on_resumed(self, e: r.CounterResumed, seq: int) -> None:
        c = self.counter(e.counter)
        c.status = OPEN
        c.free_since = self.now

    def _on_closed(self, e: r.CounterClosed, seq: int) -> None:
        self.counter(e.counter).status = CLOSED

    def _on_issued(self, e: r.TicketIssued, seq: int) -> None:
        old = self.tickets.get(e.ticket)
        if old is not None:  # the same ticket twice (a repeated record): keep the first
            return
        t = self.tickets[e.ticket] = Ticket(e.ticket, e.service, e.t, e.ts, seq)
        self.issued[e.service] = self.issued.get(e.service, 0) + 1
        self.issued_total += 1
        queue = self.queues.get(e.service)
        if queue is None:
            self.queues[e.service] = [(seq, t.id)]
        elif queue[-1][0] < seq:
            queue.append((seq, t.id))
        else:
            bisect.insort(queue, (seq, t.id))

    def _on_held(self, e: r.Held, seq: int) -> None:
        t = self._ticket(e.ticket)
        self._leave(t)
        t.status = HELD

    def _on_returned(self, e: r.Returned, seq: int) -> None:
        t = self._ticket(e.ticket)
        if t.status != WAITING:
            self._enqueue(t)

    def _on_called(self, e: r.Called, seq: int) -> None:
        t = self._ticket(e.ticket)
        self._leave(t)
        now = self.now
        t.status = CALLED
        t.counter = e.counter
        t.called_at = now
        t.recalls = 0
        if t.first_called is None and t.order >= 0:
            t.first_called = now
            self.last_wait[t.service] = now - t.issued
        c = self.counter(e.counter)
        if c.current is not None and c.current != t.id:
            other = self.tickets.get(c.current)
            if other is not None and other.counter == c.id:
                other.counter = None
        c.current = t.id
        c.busy_since = now
        c.recalled = False
        if c.status == CLOSED:  # a log that starts mid-day: it is evidently open
            c.status = OPEN

    def _on_recalled(self, e: r.Recalled, seq: int) -> None:
        self._ticket(e.ticket).recalls += 1
        c = self.counters.get(e.counter)
        if c is not None and c.current == e.ticket:
            c.recalled = True

    def _on_no_show(self, e: r.NoShow, seq: int) -> None:
        t = self._ticket(e.ticket)
        self._leave(t)
        if e.requeued:
            t.requeued = True
            t.order = seq  # the back of its queue
            self._enqueue(t)
        else:
            t.status = NO_SHOW

    def _on_transferred(self, e: r.Transferred, seq: int) -> None:
        t = self._ticket(e.ticket, e.from_service)
        held = t.status == HELD
        self._leave(t)
        t.service = e.to_service
        if not held and t.status in (WAITING, CALLED):
            self._enqueue(t)

    def _on_served(self, e: r.Served, seq: int) -> None:
        t = self._ticket(e.ticket)
        self._leave(t)
        t.status = SERVED

    def _ignore(self, e: r.Event, seq: int) -> None:
        pass


_HANDLERS: dict[type, Callable[[Floor, Any, int], None]] = {
    r.Schedule: Floor._on_schedule,
    r.CounterOpened: Floor._on_opened,
    r.CounterPaused: Floor._on_paused,
    r.CounterResumed: Floor._on_resumed,
    r.CounterClosed: Floor._on_closed,
    r.TicketIssued: Floor._on_issued,
    r.Held: Floor._on_held,
    r.Returned: Floor._on_returned,
    r.Called: Floor._on_called,
    r.Recalled: Floor._on_recalled,
    r.NoShow: Floor._on_no_show,
    r.Transferred: Floor._on_transferred,
    r.Served: Floor._on_served,
    r.ModeOverridden: Floor._ignore,
    r.ModeOverrideCleared: Floor._ignore,
    r.ClockStepped: Floor._ignore,
}

__all__ = [
    "CALLED",
    "CLOSED",
    "HELD",
    "NO_SHOW",
    "OPEN",
    "PAUSED",
    "SERVED",
    "UNTIL_EMPTY",
    "WAITING",
    "DayPlan",
    "Floor",
]
