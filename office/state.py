"""The state of one office's counter floor for the current business day: the replay of its events.

`apply` is deterministic and needs no config, so replaying a journal always gives the same
state. Only the current business day is held; earlier days live in the journal's history.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from office import events as ev
from office.calendar import ModeOverride, override_from_record, override_record

SNAPSHOT_FORMAT = 2
ALL_DISPENSERS = "*"  # the key of the message for every dispenser in `dispenser_messages`


class TicketStatus(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    HELD = "held"
    SERVED = "served"
    NO_SHOW = "no_show"


class CounterStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PAUSED = "paused"


@dataclass(slots=True)
class Ticket:
    id: str
    service: str
    number: int
    issued_seq: int
    issued_at: datetime
    token_hash: str
    token: str
    status: TicketStatus = TicketStatus.WAITING
    # Position key within its service queue: the issue seq, kept across transfer and hold, so a
    # ticket keeps its place by original issue time; a requeued no-show gets the no_show seq.
    order: int = 0
    counter: str | None = None
    called_at: datetime | None = None
    recalls: int = 0
    requeued: bool = False


@dataclass(slots=True)
class CounterState:
    id: str
    status: CounterStatus = CounterStatus.CLOSED
    services: tuple[str, ...] = ()
    current: str | None = None


@dataclass(slots=True)
class OfficeState:
    day: date | None = None
    last_seq: int = 0
    last_ts: datetime | None = None
    schedule: ev.Schedule | None = None
    tickets: dict[str, Ticket] = field(default_factory=dict)
    counters: dict[str, CounterState] = field(default_factory=dict)
    # Per service, the waiting tickets as sorted (order, ticket id) pairs: FCFS by order.
    queues: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    last_number: dict[str, int] = field(default_factory=dict)
    # Tickets whose last print failed, with why: valid, but the resident holds no paper.
    unprinted: dict[str, str] = field(default_factory=dict)
    # Today's called tickets in the order of their latest call (a ticket called again moves to
    # the end), so call times never decrease along it: the boards find the newest calls from its
    # end instead of scanning every ticket of the day (signage.snapshot). Compared as a set.
    calls: dict[str, None] = field(default_factory=dict)
    # Remote mode overrides of today and the days ahead (office.calendar.ModeOverride), by date:
    # they outlive the day they were set on, carried by each new day's schedule event.
    overrides: dict[date, ModeOverride] = field(default_factory=dict)
    # The dispensers' messages (dispenser_message events) by device id, ALL_DISPENSERS for every
    # dispenser: kept until cleared, carried from day to day by each new day's schedule.
    dispenser_messages: dict[str, tuple[str, ...]] = field(default_factory=dict)

    # -- queries -----------------------------------------------------------------------------
    def waiting(self, service: str) -> list[str]:
        return [tid for _, tid in self.queues.get(service, [])]

    def ahead_of(self, ticket: Ticket) -> int:
        queue = self.queues.get(ticket.service, [])
        return bisect.bisect_left(queue, (ticket.order, ticket.id))

    def calls_at_counters(self) -> Iterator[Ticket]:
        """Today's called tickets still at the counter that called them (attended or served
        there; a no-show, or one transferred, held or back in its queue, is at none), newest
        call first: read from the end of `calls`, so a caller that needs a few stops early."""
        tickets = self.tickets
        for tid in reversed(self.calls):
            t = tickets[tid]
            if t.counter is not None:
                yield t

    def counter(self, counter_id: str) -> CounterState:
        c = self.counters.get(counter_id)
        if c is None:
            c = self.counters[counter_id] = CounterState(counter_id)
        return c

    # -- replay ------------------------------------------------------------------------------
    def apply(self, event: ev.Event) -> None:
        seq = event.seq
        if seq != self.last_seq + 1:
            raise ValueError(f"event {seq} out of order: expected {self.last_seq + 1}")
        _HANDLERS[type(event)](self, event)
        self.last_seq = seq
        self.last_ts = event.ts

    def _enqueue(self, t: Ticket) -> None:
        t.status = TicketStatus.WAITING
        t.counter = None
        bisect.insort(self.queues.setdefault(t.service, []), (t.order, t.id))

    def _dequeue(self, t: Ticket) -> None:
        queue = self.queues[t.service]
        i = bisect.bisect_left(queue, (t.order, t.id))
        del queue[i]
        if not queue:
            # Only services with someone waiting have a queue, as in a state rebuilt from a
            # snapshot: the live state and its snapshot must compare equal.
            del self.queues[t.service]

    def _leave(self, t: Ticket) -> None:
        """Take a ticket out of wherever it is now (queue or counter)."""
        if t.status is TicketStatus.WAITING:
            self._dequeue(t)
        elif t.status is TicketStatus.CALLED and t.counter is not None:
            c = self.counters[t.counter]
            if c.current == t.id:
                c.current = None
        t.counter = None

    def _on_schedule(self, e: ev.Schedule) -> None:
        if e.new_day:
            self.day = date.fromisoformat(e.date)
            self.tickets.clear()
            self.queues.clear()
            self.last_number.clear()
            self.unprinted.clear()
            self.counters.clear()
            self.calls.clear()
            # The day's schedule carries the overrides still ahead: a replay of this day alone
            # (the journal's recovery) knows them.
            self.overrides = {o.day: o for o in map(override_from_record, e.overrides or ())}
            self.dispenser_messages = {k: tuple(v) for k, v in (e.messages or {}).items()}
        self.schedule = e

    def _on_mode_overridden(self, e: ev.ModeOverridden) -> None:
        o = override_from_record(e.body())
        self.overrides[o.day] = o

    def _on_mode_override_cleared(self, e: ev.ModeOverrideCleared) -> None:
        self.overrides.pop(date.fromisoformat(e.date), None)

    def _on_dispenser_message(self, e: ev.DispenserMessage) -> None:
        self.dispenser_messages = with_dispenser_message(self.dispenser_messages, e.device, tuple(e.lines))

    def _on_opened(self, e: ev.CounterOpened) -> None:
        c = self.counter(e.counter)
        c.status = CounterStatus.OPEN
        c.services = tuple(e.services)

    def _on_paused(self, e: ev.CounterPaused) -> None:
        self.counter(e.counter).status = CounterStatus.PAUSED

    def _on_resumed(self, e: ev.CounterResumed) -> None:
        self.counter(e.counter).status = CounterStatus.OPEN

    def _on_closed(self, e: ev.CounterClosed) -> None:
        self.counter(e.counter).status = CounterStatus.CLOSED

    def _on_issued(self, e: ev.TicketIssued) -> None:
        # Positional (in field order: id, service, number, issued_seq, issued_at, token_hash,
        # token, status, order): half the cost of keywords, once per ticket on the write path.
        t = Ticket(e.ticket, e.service, e.number, e.seq, e.ts, e.token_hash, e.token, TicketStatus.WAITING, e.seq)
        self.tickets[t.id] = t
        self.last_number[e.service] = e.number
        # _enqueue's queue part: a new ticket is already waiting, at no counter, and last in its
        # queue: its order is its seq, later than every other ticket's.
        queue = self.queues.get(e.service)
        if queue is None:
            self.queues[e.service] = [(t.order, t.id)]
        else:
            queue.append((t.order, t.id))

    def _on_held(self, e: ev.Held) -> None:
        t = self.tickets[e.ticket]
        self._leave(t)
        t.status = TicketStatus.HELD

    def _on_returned(self, e: ev.Returned) -> None:
        self._enqueue(self.tickets[e.ticket])

    def _on_called(self, e: ev.Called) -> None:
        t = self.tickets[e.ticket]
        if t.status is TicketStatus.WAITING:
            self._dequeue(t)  # the usual case, all of _leave that applies to it
        else:
            self._leave(t)
        t.status = TicketStatus.CALLED
        t.counter = e.counter
        t.called_at = e.ts
        t.recalls = 0
        calls = self.calls
        calls.pop(t.id, None)
        calls[t.id] = None
        c = self.counters.get(e.counter)
        if c is None:
            c = self.counter(e.counter)
        c.current = t.id

    def _on_recalled(self, e: ev.Recalled) -> None:
        self.tickets[e.ticket].recalls += 1

    def _on_no_show(self, e: ev.NoShow) -> None:
        t = self.tickets[e.ticket]
        self._leave(t)
        if e.requeued:
            t.requeued = True
            t.order = e.seq  # back of the queue: the others were here first
            self._enqueue(t)
        else:
            t.status = TicketStatus.NO_SHOW

    def _on_transferred(self, e: ev.Transferred) -> None:
        t = self.tickets[e.ticket]
        held = t.status is TicketStatus.HELD
        self._leave(t)
        t.service = e.to_service
        if held:
            # A held resident is away: the ticket moves to the new service but stays held
            # until it is returned, and then takes its original place there.
            return
        self._enqueue(t)

    def _on_print_failed(self, e: ev.PrintFailed) -> None:
        self.unprinted[e.ticket] = e.reason

    def _on_token_replaced(self, e: ev.TokenReplaced) -> None:
        t = self.tickets[e.ticket]
        t.token, t.token_hash = e.token, e.token_hash

    def _on_reprinted(self, e: ev.Reprinted) -> None:
        self.unprinted.pop(e.ticket, None)

    def _on_served(self, e: ev.Served) -> None:
        t = self.tickets[e.ticket]
        self._leave(t)
        t.status = TicketStatus.SERVED
        t.counter = e.counter

    # -- snapshots ---------------------------------------------------------------------------
    def to_snapshot(self) -> dict[str, Any]:
        """The state as JSON values. Ticket times are integer milliseconds since the epoch (the
        events' own precision) in the zone of `tz`: cheap to write, exact to read back. A
        snapshot writes every ticket of the day, so its row is kept lean: statuses go in as they
        are (a StrEnum is a str; JSON writes its value)."""
        epoch, ms = _EPOCH, _MS
        return {
            "format": SNAPSHOT_FORMAT,
            "tz": _zone_record(self.last_ts),
            "day": self.day.isoformat() if self.day else None,
            "last_seq": self.last_seq,
            "last_ts": ev.format_ts(self.last_ts) if self.last_ts else None,
            "schedule": _schedule_record(self.schedule),
            "last_number": dict(self.last_number),
            "unprinted": dict(self.unprinted),
            "overrides": [override_record(o) for o in self.overrides.values()],
            "messages": {k: list(v) for k, v in self.dispenser_messages.items()},
            "counters": [[c.id, c.status.value, list(c.services), c.current] for c in self.counters.values()],
            "tickets": [
                [
                    t.id,
                    t.service,
                    t.number,
                    t.issued_seq,
                    (t.issued_at - epoch) // ms,  # integer milliseconds since the epoch
                    t.token,
                    t.status,
                    t.order,
                    t.counter,
                    (t.called_at - epoch) // ms if t.called_at else None,
                    t.recalls,
                    t.requeued,
                    # A restored ticket's hash (its token is not here to derive it from).
                    *(() if t.token else (t.token_hash,)),
                ]
                for t in self.tickets.values()
            ],
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> OfficeState:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format {data.get('format')!r} is not {SNAPSHOT_FORMAT}")
        s = cls(
            day=date.fromisoformat(data["day"]) if data["day"] else None,
            last_seq=data["last_seq"],
            last_ts=datetime.fromisoformat(data["last_ts"]) if data["last_ts"] else None,
            last_number=dict(data["last_number"]),
            unprinted=dict(data.get("unprinted", {})),  # absent from snapshots before printing
            # Absent from snapshots before overrides were journaled: there were none then.
            overrides={o.day: o for o in map(override_from_record, data.get("overrides", ()))},
            # Absent from snapshots before dispenser messages: there were none then.
            dispenser_messages={k: tuple(v) for k, v in data.get("messages", {}).items()},
        )
        if data["schedule"] is not None:
            sched = dict(data["schedule"])  # the caller's data is left as it was
            s.schedule = ev.Schedule(seq=sched.pop("seq"), ts=datetime.fromisoformat(sched.pop("ts")), **sched)
        for cid, status, services, current in data["counters"]:
            s.counters[cid] = CounterState(cid, CounterStatus(status), tuple(services), current)
        tz = _zone_from_record(data["tz"])
        at = datetime.fromtimestamp
        for row in data["tickets"]:
            t = Ticket(
                id=row[0],
                service=row[1],
                number=row[2],
                issued_seq=row[3],
                issued_at=at(row[4] / 1000, tz),
                token_hash=row[12] if len(row) > 12 else hashlib.sha256(row[5].encode("utf-8")).hexdigest(),
                token=row[5],
                status=TicketStatus(row[6]),
                order=row[7],
                counter=row[8],
                called_at=at(row[9] / 1000, tz) if row[9] is not None else None,
                recalls=row[10],
                requeued=row[11],
            )
            s.tickets[t.id] = t
            if t.status is TicketStatus.WAITING:
                s.queues.setdefault(t.service, []).append((t.order, t.id))
        for queue in s.queues.values():
            queue.sort()
        called = sorted((t.called_at, t.issued_seq, t.id) for t in s.tickets.values() if t.called_at is not None)
        s.calls = dict.fromkeys(tid for _, _, tid in called)
        return s


def with_dispenser_message(
    messages: dict[str, tuple[str, ...]], device: str | None, lines: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """The dispenser messages after a dispenser_message event (a new dict): for every dispenser
    (`device` None) it replaces them all (no lines: all cleared); for one, it sets or clears that
    dispenser's own, which shows instead of the one for every dispenser."""
    if device is None:
        return {ALL_DISPENSERS: lines} if lines else {}
    out = dict(messages)
    if lines:
        out[device] = lines
    else:
        out.pop(device, None)
    return out


def dispenser_message(messages: dict[str, tuple[str, ...]], device: str) -> tuple[str, ...]:
    """The message dispenser `device` shows: its own, else the one for every dispenser, else ()."""
    return messages.get(device) or messages.get(ALL_DISPENSERS, ())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _zone_record(t: datetime | None) -> str | int | None:
    """The zone restored ticket times are shown in: an IANA key, or a fixed offset in seconds
    (a state replayed from the journal has the offset its event times were written with)."""
    if t is None or t.tzinfo is None:
        return None
    key = getattr(t.tzinfo, "key", None)
    if isinstance(key, str):
        return key
    offset = t.utcoffset()
    return int(offset.total_seconds()) if offset is not None else None


def _zone_from_record(value: str | int | None) -> tzinfo:
    if isinstance(value, str):
        return ZoneInfo(value)
    if isinstance(value, int):
        return timezone(timedelta(seconds=value))
    return UTC


def _schedule_record(e: ev.Schedule | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"seq": e.seq, "ts": ev.format_ts(e.ts), **e.body()}


_HANDLERS: dict[type[ev.Event], Any] = {
    ev.Schedule: OfficeState._on_schedule,
    ev.CounterOpened: OfficeState._on_opened,
    ev.CounterPaused: OfficeState._on_paused,
    ev.CounterResumed: OfficeState._on_resumed,
    ev.CounterClosed: OfficeState._on_closed,
    ev.TicketIssued: OfficeState._on_issued,
    ev.Held: OfficeState._on_held,
    ev.Returned: OfficeState._on_returned,
    ev.Called: OfficeState._on_called,
    ev.Recalled: OfficeState._on_recalled,
    ev.NoShow: OfficeState._on_no_show,
    ev.Transferred: OfficeState._on_transferred,
    ev.Served: OfficeState._on_served,
    ev.PrintFailed: OfficeState._on_print_failed,
    ev.Reprinted: OfficeState._on_reprinted,
    ev.TokenReplaced: OfficeState._on_token_replaced,
    ev.ModeOverridden: OfficeState._on_mode_overridden,
    ev.ModeOverrideCleared: OfficeState._on_mode_override_cleared,
    ev.ClockStepped: lambda state, event: None,  # a record for people: the floor is unchanged
    ev.RemoteCommand: lambda state, event: None,  # an audit record: what it did has its own events
    ev.ConfigChanged: lambda state, event: None,  # the model was rebuilt under it; a schedule follows if needed
    ev.DispenserMessage: OfficeState._on_dispenser_message,
}
