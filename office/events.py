"""The events that change an office's counter floor, and their record form.

Every change to the floor is one of these; the state is their replay. Events are values: never
change one after it is made (they are not frozen only because a frozen dataclass takes twice as
long to build, and every command builds some; for the same reason they may be built from
positional arguments, in field order: seq, ts, then the event's own fields). The record form (a
dict of JSON values) is what the journal stores and, minus private fields, what `docs/events.md`
promises to other tools. Field names here are that contract: change them only with the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, ClassVar

EVENT_LOG_VERSION = 1
# Fields kept in the journal only: the resident's page token must never leave the gateway.
PRIVATE_FIELDS = frozenset({"token"})


@dataclass(slots=True)
class Event:
    TYPE: ClassVar[str] = ""
    seq: int
    ts: datetime

    def body(self) -> dict[str, Any]:
        """The event's own fields (everything but seq, ts and type), as JSON values. Each event
        spells its own out: this is on the journal's write path for every event."""
        return {f.name: getattr(self, f.name) for f in fields(self)[2:]}


@dataclass(slots=True)
class Schedule(Event):
    """The plan for the rest of a business day; the first event of every business day.
    `overrides`: the remote mode overrides still ahead when a day starts (records as
    ModeOverridden's body), so that a replay of the day alone knows them; absent when none."""

    TYPE: ClassVar[str] = "schedule"
    date: str
    new_day: bool
    counters: list[dict[str, Any]]
    closes: str | None
    periods: list[dict[str, Any]]
    overrides: list[dict[str, Any]] | None = None
    # The dispenser messages in force when a day starts ({device or "*": lines}), as `overrides`:
    # a replay of the day alone knows them; absent when none.
    messages: dict[str, list[str]] | None = None

    def body(self) -> dict[str, Any]:
        body = {
            "date": self.date,
            "new_day": self.new_day,
            "counters": self.counters,
            "closes": self.closes,
            "periods": self.periods,
        }
        if self.overrides is not None:  # the model writes None rather than an empty list
            body["overrides"] = self.overrides
        if self.messages is not None:
            body["messages"] = self.messages
        return body


@dataclass(slots=True)
class CounterOpened(Event):
    TYPE: ClassVar[str] = "counter_opened"
    counter: str
    services: list[str]

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter, "services": self.services}


@dataclass(slots=True)
class CounterPaused(Event):
    TYPE: ClassVar[str] = "counter_paused"
    counter: str

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter}


@dataclass(slots=True)
class CounterResumed(Event):
    TYPE: ClassVar[str] = "counter_resumed"
    counter: str

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter}


@dataclass(slots=True)
class CounterClosed(Event):
    TYPE: ClassVar[str] = "counter_closed"
    counter: str

    def body(self) -> dict[str, Any]:
        return {"counter": self.counter}


@dataclass(slots=True)
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


@dataclass(slots=True)
class Held(Event):
    TYPE: ClassVar[str] = "held"
    ticket: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket}


@dataclass(slots=True)
class Returned(Event):
    TYPE: ClassVar[str] = "returned"
    ticket: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket}


@dataclass(slots=True)
class Called(Event):
    TYPE: ClassVar[str] = "called"
    ticket: str
    counter: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter}


@dataclass(slots=True)
class Recalled(Event):
    TYPE: ClassVar[str] = "recalled"
    ticket: str
    counter: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter}


@dataclass(slots=True)
class NoShow(Event):
    TYPE: ClassVar[str] = "no_show"
    ticket: str
    counter: str
    requeued: bool

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter, "requeued": self.requeued}


@dataclass(slots=True)
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


@dataclass(slots=True)
class PrintFailed(Event):
    """A ticket's print did not come out whole: the ticket stays valid and is marked unprinted
    until it is reprinted. `printer`: the printer id; `reason`: why (e.g. paper_out)."""

    TYPE: ClassVar[str] = "print_failed"
    ticket: str
    printer: str
    reason: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "printer": self.printer, "reason": self.reason}


@dataclass(slots=True)
class Reprinted(Event):
    """A ticket was printed again, with the same token (a failed print's, or a lost paper's)."""

    TYPE: ClassVar[str] = "reprinted"
    ticket: str
    printer: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "printer": self.printer}


@dataclass(slots=True)
class TokenReplaced(Event):
    """A ticket whose token this gateway does not hold (its journal restored from central's copy,
    which keeps only hashes) printed again with a new token: its page follows the new hash."""

    TYPE: ClassVar[str] = "token_replaced"
    ticket: str
    token_hash: str
    token: str  # private: see PRIVATE_FIELDS

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "token_hash": self.token_hash, "token": self.token}


@dataclass(slots=True)
class ModeOverridden(Event):
    """A remote override of one date's plan (office.calendar.ModeOverride): closed with a
    reason, or open in one mode with `hours` ["HH:MM", "HH:MM"] (None: the mode's configured
    hours). Replaces an earlier override of that date. For today, a `schedule` follows."""

    TYPE: ClassVar[str] = "mode_overridden"
    date: str
    closed: bool
    mode: str | None
    hours: list[str] | None
    reason: dict[str, str] | None

    def body(self) -> dict[str, Any]:
        return {"date": self.date, "closed": self.closed, "mode": self.mode, "hours": self.hours, "reason": self.reason}


@dataclass(slots=True)
class ModeOverrideCleared(Event):
    """The override of `date` is gone: its plan is the calendar's again (today: a `schedule` follows)."""

    TYPE: ClassVar[str] = "mode_override_cleared"
    date: str

    def body(self) -> dict[str, Any]:
        return {"date": self.date}


@dataclass(slots=True)
class RemoteCommand(Event):
    """The audit record of a command that came over MQTT (docs/mqtt.md): its `id`, its `cmd`,
    who sent it (`sender`: the broker account, or null where the transport does not say),
    whether it was carried out (`ok`) and, if not, why (`error`). What it did is recorded by its
    own events (stored before this one); a retried id is recorded once."""

    TYPE: ClassVar[str] = "remote_command"
    id: str
    cmd: str
    sender: str | None
    ok: bool
    error: str | None

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "cmd": self.cmd, "sender": self.sender, "ok": self.ok, "error": self.error}


@dataclass(slots=True)
class ConfigChanged(Event):
    """The office's configuration was replaced (docs/operations.md, "Changing the configuration"):
    `sha256` of the new config's TOML text, `previous_sha256` of the one it replaced (kept in the
    journal), `via` where it came from (`mqtt`, `socket`, `offline`, `file`), `sender` the account
    that sent it where the transport says (null otherwise), and `restart_needed`: the parts that
    take effect only when the gateway restarts. Changes nothing on the floor by itself; a
    `schedule` follows when today's plan changed."""

    TYPE: ClassVar[str] = "config_changed"
    sha256: str
    previous_sha256: str
    via: str
    sender: str | None
    restart_needed: list[str]

    def body(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "previous_sha256": self.previous_sha256,
            "via": self.via,
            "sender": self.sender,
            "restart_needed": self.restart_needed,
        }


@dataclass(slots=True)
class DispenserMessage(Event):
    """A message for the dispensers' panels (`device`: one dispenser's id as in docs/mqtt.md, or
    null: every dispenser), `lines` the panel's lines ([]: cleared). Shown below the closed
    words, the printer's words and a refusal's; kept until cleared, across days."""

    TYPE: ClassVar[str] = "dispenser_message"
    device: str | None
    lines: list[str]

    def body(self) -> dict[str, Any]:
        return {"device": self.device, "lines": self.lines}


@dataclass(slots=True)
class ClockStepped(Event):
    """The gateway's wall clock jumped against its monotonic clock (NTP correcting a Pi that
    booted with a wrong time, a clock set by hand): it showed `expected` a moment ago by the
    monotonic clock's count, and `step_s` seconds more than that now (negative: it went back).
    Changes nothing on the floor; `ts` is when it was noticed, by the clock as it now is (held at
    the last event's time when it went back: events never go back in time)."""

    TYPE: ClassVar[str] = "clock_stepped"
    expected: str
    step_s: float

    def body(self) -> dict[str, Any]:
        return {"expected": self.expected, "step_s": self.step_s}


@dataclass(slots=True)
class Served(Event):
    TYPE: ClassVar[str] = "served"
    ticket: str
    counter: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "counter": self.counter}


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
        PrintFailed,
        Reprinted,
        TokenReplaced,
        ClockStepped,
        ModeOverridden,
        ModeOverrideCleared,
        RemoteCommand,
        ConfigChanged,
        DispenserMessage,
    )
}


class EventFormatError(ValueError):
    pass


# format_ts runs for every command on the journal's write path, and `isoformat` costs several
# times what an insert of the row does. All but the seconds and milliseconds of the text are the
# same for every event within a minute, so that part is formatted once per minute and offset;
# the minute of the latest call is kept apart, with its bounds, so the usual call (a moment in
# the same minute as the one before, in the same zone) needs no offset or key: comparing two
# datetimes of one tzinfo compares their wall clocks.
_TS_PARTS: dict[tuple[int, int, int, timedelta | None], tuple[str, str]] = {}
# Minutes remembered before the cache starts afresh. Moments are formatted as they happen (a past
# minute comes again with a replay's events, read once each): a day and more of an office's
# minutes keep every hit, at ~300 bytes a minute. (4,096 took 1.2 MB at their fullest, filled
# over a week of open days and emptied: what the soak's month saw grow and fall again.)
_TS_PARTS_MAX = 1024
_SECONDS = tuple(f"{s:02d}." for s in range(60))
_MILLIS = tuple(f"{ms:03d}" for ms in range(1000))
_NEVER = datetime(1, 1, 1)
# The latest minute: [start, end] on the wall clock of its tzinfo, and its text's two parts.
_minute: tuple[datetime, datetime, str, str] = (_NEVER, _NEVER, "", "")


def format_ts(ts: datetime) -> str:
    """ISO 8601 with milliseconds and the offset: `ts.isoformat(timespec="milliseconds")`."""
    global _minute
    start, end, head, tail = _minute
    # Not for the second of two folds: the wall clocks compared are the same, the offset is not.
    if ts.tzinfo is start.tzinfo and start <= ts <= end and not ts.fold:
        return f"{head}{_SECONDS[ts.second]}{_MILLIS[ts.microsecond // 1000]}{tail}"  # one string built, not three
    key = (ts.toordinal(), ts.hour, ts.minute, ts.utcoffset())
    parts = _TS_PARTS.get(key)
    if parts is None:
        text = ts.isoformat(timespec="milliseconds")  # "YYYY-MM-DDTHH:MM:SS.mmm" + offset
        if len(_TS_PARTS) >= _TS_PARTS_MAX:
            _TS_PARTS.clear()
        parts = _TS_PARTS[key] = (text[:17], text[23:])
    if ts.tzinfo is not None and not ts.fold:
        first = ts.replace(second=0, microsecond=0)
        last = first.replace(second=59, microsecond=999999)
        # Only a minute with one offset throughout (an offset may change within one, in old
        # history), and a first fold: its wall clock alone then says which offset applies.
        if first.utcoffset() == last.utcoffset() == key[3]:
            _minute = (first, last, *parts)
    return f"{parts[0]}{_SECONDS[ts.second]}{_MILLIS[ts.microsecond // 1000]}{parts[1]}"


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
