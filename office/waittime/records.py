"""The wait-time predictor's own reader of public event-log v1 records (docs/events.md).

Owns turning one exported record (a dict of JSON values) into a small typed event carrying what
prediction needs, and nothing else. It is tolerant where the format promises room to grow:
unknown event types and unknown fields are ignored, `token_hash` may be absent, and the private
token is never needed (`office.events.event_from_record` needs it, so it is not used here). A
record of a known type that lacks a field prediction needs is an error naming it. Pure: records
in, events out; callers read the files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from office import events as ev

LOG_VERSION = 1
UNTIL_EMPTY = float("inf")  # the end of a shift planned "until the queue is empty" (null)


class RecordError(ValueError):
    """A record that cannot be read; the message names the field."""


@dataclass(slots=True)
class Record:
    """What every event has. `t` is seconds since local midnight of `day` on the wall clock the
    record was written with (ts's own offset), the one time axis of a business day here."""

    seq: int | None
    ts: str
    day: str  # YYYY-MM-DD, the local date of ts
    t: float
    office: str


@dataclass(slots=True)
class CounterPlan:
    """One counter in a `schedule`: its services in priority order and its shifts, as
    [start, end) seconds of the day (end UNTIL_EMPTY for an open end)."""

    counter: str
    services: tuple[str, ...]
    shifts: tuple[tuple[float, float], ...]


@dataclass(slots=True)
class Period:
    mode: str
    start: float
    end: float
    services: tuple[str, ...]


@dataclass(slots=True)
class Schedule(Record):
    date: str
    new_day: bool
    counters: tuple[CounterPlan, ...]
    closes: float | None
    periods: tuple[Period, ...]


@dataclass(slots=True)
class CounterOpened(Record):
    counter: str
    services: tuple[str, ...]


@dataclass(slots=True)
class CounterPaused(Record):
    counter: str


@dataclass(slots=True)
class CounterResumed(Record):
    counter: str


@dataclass(slots=True)
class CounterClosed(Record):
    counter: str


@dataclass(slots=True)
class TicketIssued(Record):
    ticket: str
    service: str
    token_hash: str | None


@dataclass(slots=True)
class Held(Record):
    ticket: str


@dataclass(slots=True)
class Returned(Record):
    ticket: str


@dataclass(slots=True)
class Called(Record):
    ticket: str
    counter: str


@dataclass(slots=True)
class Recalled(Record):
    ticket: str
    counter: str


@dataclass(slots=True)
class NoShow(Record):
    ticket: str
    counter: str
    requeued: bool


@dataclass(slots=True)
class Transferred(Record):
    ticket: str
    to_service: str
    from_service: str | None
    counter: str | None


@dataclass(slots=True)
class Served(Record):
    ticket: str
    counter: str


@dataclass(slots=True)
class ModeOverridden(Record):
    """Informative: for today a `schedule` with the new plan follows."""

    date: str
    closed: bool


@dataclass(slots=True)
class ModeOverrideCleared(Record):
    date: str


@dataclass(slots=True)
class ClockStepped(Record):
    """The wall clock jumped by `step_s` seconds: a wait measured across it includes the step."""

    step_s: float


Event = (
    Schedule
    | CounterOpened
    | CounterPaused
    | CounterResumed
    | CounterClosed
    | TicketIssued
    | Held
    | Returned
    | Called
    | Recalled
    | NoShow
    | Transferred
    | Served
    | ModeOverridden
    | ModeOverrideCleared
    | ClockStepped
)


# -- fields ------------------------------------------------------------------------------------
def _field(rec: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = rec.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise RecordError(f"{rec.get('type')} record: {key!r} must be {what}, not {value!r}")
    return value


def _text(rec: Mapping[str, Any], key: str) -> str:
    return str(_field(rec, key, str, "a string"))


def _opt_text(rec: Mapping[str, Any], key: str) -> str | None:
    value = rec.get(key)
    return value if isinstance(value, str) else None


def _texts(rec: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = _field(rec, key, list, "a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise RecordError(f"{rec.get('type')} record: {key!r} must be a list of strings")
    return tuple(value)


def clock_seconds(hhmm: str) -> float:
    """'HH:MM' as seconds of the day."""
    hours, sep, minutes = hhmm.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit():
        raise ValueError(f"not a time HH:MM: {hhmm!r}")
    return int(hours) * 3600.0 + int(minutes) * 60.0


def _schedule(head: Record, rec: Mapping[str, Any]) -> Schedule:
    counters = []
    for item in _field(rec, "counters", list, "a list"):
        if not isinstance(item, dict):
            raise RecordError("schedule record: a counter must be an object")
        try:
            shifts = tuple(
                (clock_seconds(a), clock_seconds(b) if b is not None else UNTIL_EMPTY)
                for a, b in item.get("shifts", ())
            )
        except (TypeError, ValueError) as exc:
            raise RecordError(f"schedule record: counter {item.get('counter')!r}: bad shifts ({exc})") from None
        counters.append(CounterPlan(_text(item, "counter"), _texts(item, "services"), shifts))
    periods = []
    for item in rec.get("periods") or ():
        if not isinstance(item, dict):
            raise RecordError("schedule record: a period must be an object")
        try:
            start, end = clock_seconds(item["from"]), clock_seconds(item["to"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"schedule record: bad period ({exc})") from None
        periods.append(Period(str(item.get("mode", "")), start, end, _texts(item, "services")))
    closes = rec.get("closes")
    try:
        closes_s = clock_seconds(closes) if isinstance(closes, str) else None
    except ValueError as exc:
        raise RecordError(f"schedule record: closes: {exc}") from None
    date = _opt_text(rec, "date") or head.day
    return Schedule(*_head(head), date, rec.get("new_day") is not False, tuple(counters), closes_s, tuple(periods))


def _head(head: Record) -> tuple[int | None, str, str, float, str]:
    return head.seq, head.ts, head.day, head.t, head.office


_Reader = Callable[[Record, Mapping[str, Any]], Event]

_READERS: dict[str, _Reader] = {
    "schedule": _schedule,
    "counter_opened": lambda h, r: CounterOpened(*_head(h), _text(r, "counter"), _texts(r, "services")),
    "counter_paused": lambda h, r: CounterPaused(*_head(h), _text(r, "counter")),
    "counter_resumed": lambda h, r: CounterResumed(*_head(h), _text(r, "counter")),
    "counter_closed": lambda h, r: CounterClosed(*_head(h), _text(r, "counter")),
    "ticket_issued": lambda h, r: TicketIssued(
        *_head(h), _text(r, "ticket"), _text(r, "service"), _opt_text(r, "token_hash")
    ),
    "held": lambda h, r: Held(*_head(h), _text(r, "ticket")),
    "returned": lambda h, r: Returned(*_head(h), _text(r, "ticket")),
    "called": lambda h, r: Called(*_head(h), _text(r, "ticket"), _text(r, "counter")),
    "recalled": lambda h, r: Recalled(*_head(h), _text(r, "ticket"), _text(r, "counter")),
    "no_show": lambda h, r: NoShow(*_head(h), _text(r, "ticket"), _text(r, "counter"), r.get("requeued") is True),
    "transferred": lambda h, r: Transferred(
        *_head(h), _text(r, "ticket"), _text(r, "to_service"), _opt_text(r, "from_service"), _opt_text(r, "counter")
    ),
    "served": lambda h, r: Served(*_head(h), _text(r, "ticket"), _text(r, "counter")),
    "mode_overridden": lambda h, r: ModeOverridden(*_head(h), _text(r, "date"), r.get("closed") is True),
    "mode_override_cleared": lambda h, r: ModeOverrideCleared(*_head(h), _text(r, "date")),
    "clock_stepped": lambda h, r: ClockStepped(*_head(h), float(_field(r, "step_s", (int, float), "a number"))),
}

# The moment a ts names, by its text: many events share one (a call and the service it ends), and
# they come one after another, so the last few hundred moments are all that is worth keeping. Each
# costs ~250 bytes (its ts, its date, the tuple): a cache of 65,536 grew by one per event for a
# month, to ~16 MB, in a gateway and in central (bench/soak.py; docs/benchmarks.md, "Soak").
_MOMENTS_MAX = 1024


@functools.lru_cache(maxsize=_MOMENTS_MAX)
def moment(ts: str) -> tuple[str, float]:
    """(local date, seconds since that local midnight) of an ISO 8601 time with an offset."""
    at = datetime.fromisoformat(ts)
    return at.date().isoformat(), at.hour * 3600.0 + at.minute * 60.0 + at.second + at.microsecond / 1e6


def read_record(rec: Mapping[str, Any]) -> Event | None:
    """The typed event of one public record, or None for a type prediction does not use (or does
    not know). Raises RecordError naming what is wrong with a record it does use."""
    if not isinstance(rec, Mapping):
        raise RecordError("a record must be a JSON object")
    reader = _READERS.get(rec.get("type"))  # type: ignore[arg-type]
    if reader is None:
        return None
    version = rec.get("v", LOG_VERSION)
    if version != LOG_VERSION:
        raise RecordError(f"event log version {version!r} is not {LOG_VERSION}")
    ts = rec.get("ts")
    if not isinstance(ts, str):
        raise RecordError(f"{rec.get('type')} record: 'ts' must be an ISO 8601 time, not {ts!r}")
    try:
        day, t = moment(ts)
    except ValueError:
        raise RecordError(f"{rec.get('type')} record: 'ts' is not an ISO 8601 time: {ts!r}") from None
    seq = rec.get("seq")
    office = rec.get("office")
    head = Record(
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        ts,
        day,
        t,
        office if isinstance(office, str) else "",
    )
    return reader(head, rec)


def from_events(events: Iterable[ev.Event], office: str) -> list[Event]:
    """A journal's (or a simulation's) events as the predictor reads their public records: the
    ones prediction uses, an unreadable one skipped (it costs the predictor that record only)."""
    out: list[Event] = []
    for event in events:
        try:
            record = read_record(ev.public_record(event, office))
        except RecordError:
            continue
        if record is not None:
            out.append(record)
    return out
