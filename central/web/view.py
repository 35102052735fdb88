"""What the web pages show of one office: an immutable snapshot built from central's OfficeState.

Owns the translation from the worker's live state (mutated by the worker's thread only) into
frozen values the web's thread may read at any time: per service the people waiting and the wait
of a ticket taken now, today's reception periods, and per page token hash one ticket's number,
place, estimate and call. Built by the worker right after an estimate round (central/worker.py),
from the figures that round computed: the predictor is never asked again for a page.

Only token hashes are held: a page's token is hashed by the request handler and never kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from central.office_state import OfficeState
from office.waittime.floor import CALLED, CLOSED, HELD, NO_SHOW, OPEN, PAUSED, SERVED, WAITING
from office.waittime.records import UNTIL_EMPTY

# A ticket's status as its page says it.
STATUS = {WAITING: "waiting", CALLED: "called", HELD: "held", SERVED: "done", NO_SHOW: "no_show"}
COUNTER_STATUS = {OPEN: "open", PAUSED: "paused", CLOSED: "closed"}
# A device message's error counters (docs/mqtt.md, devices), as the dashboard lists them.
DEVICE_ERRORS = ("failures", "timeouts", "crc_drops", "bad_frames", "restarts")


@dataclass(frozen=True, slots=True)
class Period:
    mode: str  # office, evening, saturday
    start: str  # "HH:MM"
    end: str  # "HH:MM", or "" for an open end
    services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceView:
    service: str
    waiting: int
    low_s: float  # 10th–90th percentile of the wait of a ticket taken at `OfficeView.at`
    high_s: float


@dataclass(frozen=True, slots=True)
class TicketView:
    ticket: str  # "A-001"
    service: str
    status: str  # waiting, called, held, done, no_show (see STATUS)
    ahead: int | None  # tickets before it in its queue, while waiting
    call_from: datetime | None  # the window its first call is expected in, while waiting
    call_to: datetime | None
    counter: str | None  # where it is called, while called
    requeued: bool = False  # a missed call put back at the end of the queue (rules.no_show = "requeue_once")


@dataclass(frozen=True, slots=True)
class CounterView:
    counter: str
    status: str  # open, paused, closed (COUNTER_STATUS)
    serving: str | None  # the ticket at it
    services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device as its retained `devices/<device>` message says (docs/mqtt.md)."""

    device: str
    kind: str
    state: str  # online, offline, stale
    firmware: str | None = None
    printer: str | None = None  # a printer's status: responding, paper_near_end, paper_out, …
    errors: tuple[tuple[str, int], ...] = ()  # the non-zero error counters (DEVICE_ERRORS)
    last_seen: str | None = None


def device_view(message: Mapping[str, Any]) -> DeviceView:
    """A device message (office.mqtt's devices payload) as the dashboard shows it; a field of
    the wrong type is shown as missing."""

    def string(key: str) -> str | None:
        value = message.get(key)
        return value if isinstance(value, str) else None

    errors = tuple(
        (k, v) for k in DEVICE_ERRORS if isinstance(v := message.get(k), int) and not isinstance(v, bool) and v > 0
    )
    return DeviceView(
        device=string("device") or "?",
        kind=string("kind") or "?",
        state=string("state") or "stale",
        firmware=string("firmware"),
        printer=string("status") if message.get("kind") == "printer" else None,
        errors=errors,
        last_seen=string("last_seen"),
    )


@dataclass(frozen=True, slots=True)
class OfficeView:
    office: str
    version: int  # grows with each view of this office (the hub numbers them)
    day: str | None  # the business day of the floor (None: no events yet)
    at: datetime | None  # the time of the last event applied
    seq: int
    services: tuple[ServiceView, ...]
    periods: tuple[Period, ...]
    tickets: Mapping[str, TicketView] = field(default_factory=dict)  # by token hash
    # For the facilities dashboard:
    gateway: str = "unknown"  # online, offline (its birth or death as last seen), unknown
    missing: tuple[tuple[int, int], ...] = ()  # seqs central is missing (asked for): figures lag
    counters: tuple[CounterView, ...] = ()
    devices: tuple[DeviceView, ...] = ()  # each device's retained state (stale while the gateway is not online)

    def callers(self, service: str) -> int:
        """The open counters calling `service` now: a ticket with fewer ahead than these is in the
        next round of calls (its alert is due: central/alerts/engine.py, and the page's script)."""
        return sum(1 for c in self.counters if c.status == "open" and service in c.services)

    def mode_at(self, now: datetime) -> str | None:
        """The reception period open at `now` (in the office's time zone), "closed" outside them
        today, None when the floor is not on `now`'s date (central has no plan for it)."""
        if self.at is None or self.day != now.astimezone(self.at.tzinfo).date().isoformat():
            return None
        local = now.astimezone(self.at.tzinfo)
        t = local.hour * 3600 + local.minute * 60 + local.second
        for p in self.periods:
            end = _seconds(p.end) if p.end else UNTIL_EMPTY
            if _seconds(p.start) <= t < end:
                return p.mode
        return "closed"


def _seconds(hhmm: str) -> float:
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def _hhmm(seconds: float) -> str:
    if seconds == UNTIL_EMPTY:
        return ""
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def office_view(state: OfficeState, version: int = 0) -> OfficeView:
    """The snapshot of `state` as its last estimate round left it (call in the worker's thread)."""
    floor = state.floor
    at = datetime.fromisoformat(state.last_ts) if state.last_ts else None
    estimates = {e.token_hash: e for e in state.last_tickets}
    tickets: dict[str, TicketView] = {}
    for tid, digest in state.tokens.items():
        t = floor.tickets.get(tid)
        if t is None:
            continue
        status = STATUS.get(t.status, "done")
        e = estimates.get(digest) if status == "waiting" else None
        issued = datetime.fromisoformat(e.issued_ts) if e is not None and e.issued_ts else None
        tickets[digest] = TicketView(
            ticket=tid,
            service=t.service,
            status=status,
            ahead=floor.ahead(t) if status == "waiting" else None,
            call_from=issued + timedelta(seconds=e.p10) if issued is not None and e is not None else None,
            call_to=issued + timedelta(seconds=e.p90) if issued is not None and e is not None else None,
            counter=t.counter if status == "called" else None,
            requeued=t.requeued,
        )
    return OfficeView(
        office=state.office,
        version=version,
        day=floor.day,
        at=at,
        seq=state.applied,
        services=tuple(ServiceView(s.service, s.waiting, s.p10, s.p90) for s in state.last_services),
        periods=tuple(Period(p.mode, _hhmm(p.start), _hhmm(p.end), p.services) for p in state.periods),
        tickets=tickets,
        gateway={True: "online", False: "offline", None: "unknown"}[state.online],
        missing=tuple((a, b) for a, b in state.missing),
        counters=tuple(
            CounterView(c.id, COUNTER_STATUS.get(c.status, "closed"), c.current, tuple(c.services))
            for _, c in sorted(floor.counters.items(), key=lambda kv: _counter_order(kv[0]))
        ),
        # What a device last said is only as fresh as its gateway: stale while that is not online.
        devices=tuple(
            device if state.online else replace(device, state="stale")
            for device in (device_view(state.devices[d]) for d in sorted(state.devices))
        ),
    )


def _counter_order(counter: str) -> tuple[int, str]:
    return (int(counter), "") if counter.isdigit() else (1 << 30, counter)
