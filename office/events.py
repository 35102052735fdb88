"""The events that change an office's counter floor, and their record form.

Every change to the floor is one of these; the state is their replay. Events are values: never
change one after it is made (they are not frozen only because a frozen dataclass takes twice as
long to build, and every command builds some). The record form (a dict of
JSON values) is what the journal stores and, minus private fields, what `docs/events.md`
promises to other tools. Field names here are that contract: change them only with the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

EVENT_LOG_VERSION = 1
# Fields kept in the journal only: the resident's page token must never leave the gateway.
PRIVATE_FIELDS = frozenset({"token"})


@dataclass(slots=True, kw_only=True)
class Event:
    TYPE: ClassVar[str] = ""
    seq: int
    ts: datetime

    def body(self) -> dict[str, Any]:
        """The event's own fields (everything but seq, ts and type), as JSON values. Each event
        spells its own out: this is on the journal's write path for every event."""
        return {f.name: getattr(self, f.name) for f in fields(self)[2:]}


@dataclass(slots=True, kw_only=True)
class Schedule(Event):
    """The plan for the rest of a business day; the first event of every business day."""

    TYPE: ClassVar[str] = "schedule"
    date: str
    new_day: bool
    counters: list[dict[str, Any]]
    closes: str | None
    periods: list[dict[str, Any]]

    def body(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "new_day": self.new_day,
            "counters": self.counters,
            "closes": self.closes,
            "periods": self.periods,
        }


@dataclass(slots=True, kw_only=True)
class CounterOpened(Event):
    TYPE: ClassVar[str] = "counter_opened"
    counter: str
    services: list[str]

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter, "services": self.services}


@dataclass(slots=True, kw_only=True)
class CounterPaused(Event):
    TYPE: ClassVar[str] = "counter_paused"
    counter: str

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter}


@dataclass(slots=True, kw_only=True)
class CounterResumed(Event):
    TYPE: ClassVar[str] = "counter_resumed"
    counter: str

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter}


@dataclass(slots=True, kw_only=True)
class CounterClosed(Event):
    TYPE: ClassVar[str] = "counter_closed"
    counter: str

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter}


@dataclass(slots=True, kw_only=True)
class TicketIssued(Event):
    TYPE: ClassVar[str] = "ticket_issued"
    ticket: str
    service: str
    number: int
    token_hash: str
    token: str  # private: see PRIVATE_FIELDS

    def body(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "service": self.service,
            "number": self.number,
            "token_hash": self.token_hash,
            "token": self.token,
        }


@dataclass(slots=True, kw_only=True)
class Held(Event):
    TYPE: ClassVar[str] = "held"
    ticket: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket}


@dataclass(slots=True, kw_only=True)
class Returned(Event):
    TYPE: ClassVar[str] = "returned"
    ticket: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket}


@dataclass(slots=True, kw_only=True)
class Called(Event):
    TYPE: ClassVar[str] = "called"
    ticket: str
    counter: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter}


@dataclass(slots=True, kw_only=True)
class Recalled(Event):
    TYPE: ClassVar[str] = "recalled"
    ticket: str
    counter: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter}


@dataclass(slots=True, kw_only=True)
class NoShow(Event):
    TYPE: ClassVar[str] = "no_show"
    ticket: str
    counter: str
    requeued: bool

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter, "requeued": self.requeued}


@dataclass(slots=True, kw_only=True)
class Transferred(Event):
    TYPE: ClassVar[str] = "transferred"
    ticket: str
    to_service: str
    from_service: str
    counter: str | None

    def body(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "to_service": self.to_service,
            "from_service": self.from_service,
            "counter": self.counter,
        }


@dataclass(slots=True, kw_only=True)
class Served(Event):
    TYPE: ClassVar[str] = "served"
    ticket: str
    counter: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        Schedule,
        CounterOpened,
        CounterPaused,
        CounterResumed,
        CounterClosed,
        TicketIssued,
        Held,
        Returned,
        Called,
        Recalled,
        NoShow,
        Transferred,
        Served,
    )
}


class EventFormatError(ValueError):
    pass


def format_ts(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds")


def event_from_record(seq: int, ts: str, type_: str, body: dict[str, Any]) -> Event:
    """Rebuild an event from its stored parts; raises EventFormatError naming what is wrong."""
    cls = EVENT_TYPES.get(type_)
    if cls is None:
        raise EventFormatError(f"event {seq}: unknown type {type_!r}")
    try:
        return cls(seq=seq, ts=datetime.fromisoformat(ts), **body)
    except (TypeError, ValueError) as exc:
        raise EventFormatError(f"event {seq} ({type_}): {exc}") from None


def public_record(event: Event, office: str) -> dict[str, Any]:
    """The event as one line of the exported event log (docs/events.md)."""
    record: dict[str, Any] = {
        "v": EVENT_LOG_VERSION,
        "seq": event.seq,
        "ts": format_ts(event.ts),
        "office": office,
        "type": event.TYPE,
    }
    for key, value in event.body().items():
        if key not in PRIVATE_FIELDS:
            record[key] = value
    return record

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter, "record": self.record}
