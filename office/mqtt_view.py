"""What a subscriber holds of the offices on the broker: messages in, state out (docs/mqtt.md).

`BrokerView` takes each MQTT message a subscriber receives (topic, payload) and the subscriber's
own connection changes, and keeps per office the gateway's availability (birth and death with
their session numbers), the event stream's `seq` bookkeeping (the last seq held without a gap,
what is missing, duplicates), the latest retained snapshot with its seq and the events since,
the mode, the devices' states and central's estimates. Every value it holds is either current or
marked stale, Sparkplug-B style: an office whose gateway is offline, whose retained values have
not been confirmed since the subscriber (re)connected, or whose event stream has a gap is stale,
and says why. `counterfloor office watch` draws it; central reuses the bookkeeping.

Pure: no client, no clock, no I/O. Nothing that arrives may crash it: an unknown topic, a
malformed payload (office.mqtt.decode raises PayloadError, or a field of the wrong type) and a
payload naming another office than its topic are counted and ignored.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from office import mqtt

LAST_EVENTS = 10  # events after the snapshot kept for showing; the bookkeeping keeps only seqs

# What is ignored, by reason (BrokerView.ignored's keys).
UNKNOWN_TOPIC = "unknown_topic"  # not a topic of the schema
MALFORMED = "malformed"  # PayloadError, or a required field missing or of the wrong type
WRONG_OFFICE = "wrong_office"  # the payload's office is not its topic's
NOT_WATCHED = "not_watched"  # an office other than the one watched (a broker that over-delivers)
IGNORED_REASONS = (UNKNOWN_TOPIC, MALFORMED, WRONG_OFFICE, NOT_WATCHED)

DEVICE_STATES = ("online", "offline", "stale")


def _int(value: Any, least: int = 0) -> int | None:
    """`value` if it is a whole number ≥ least (JSON true is not a number here), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ranges(after: int, pending: list[int], high: int) -> list[tuple[int, int]]:
    """The seqs in after+1..high that are not in `pending` (sorted), as inclusive ranges."""
    out: list[tuple[int, int]] = []
    start = after + 1
    for seq in pending:
        if seq > start:
            out.append((start, seq - 1))
        start = seq + 1
    if start <= high:
        out.append((start, high))
    return out


@dataclass(slots=True)
class SeqTracker:
    """The seq bookkeeping of one office's event stream.

    `last`: every seq up to it is held (an event received, or covered by a snapshot). It starts
    at the first snapshot's seq, or just before the first event's when events come first (what
    came before the subscriber started listening is not a gap). `pending`: seqs received beyond a
    gap, sorted. `high`: the highest seq known to exist (events, snapshots, and the gateway's
    birth, which names the last seq it has stored). Missing: last+1..high less `pending`."""

    last: int | None = None
    pending: list[int] = field(default_factory=list)
    high: int | None = None
    duplicates: int = 0

    def _raise_high(self, seq: int) -> None:
        self.high = seq if self.high is None else max(self.high, seq)

    def _advance(self) -> None:
        assert self.last is not None
        # Drop what a snapshot covered, then take in what now follows without a gap.
        cut = bisect.bisect_right(self.pending, self.last)
        del self.pending[:cut]
        while self.pending and self.pending[0] == self.last + 1:
            self.last = self.pending.pop(0)

    def event(self, seq: int) -> bool:
        """An event's seq; False for a duplicate (or one from before the stream began)."""
        if self.last is None:
            self.last = seq - 1
        if seq <= self.last:
            self.duplicates += 1
            return False
        at = bisect.bisect_left(self.pending, seq)
        if at < len(self.pending) and self.pending[at] == seq:
            self.duplicates += 1
            return False
        self.pending.insert(at, seq)
        self._raise_high(seq)
        self._advance()
        return True

    def snapshot(self, seq: int) -> None:
        """A snapshot current to `seq` holds everything up to it."""
        self.last = seq if self.last is None else max(self.last, seq)
        self._raise_high(seq)
        self._advance()

    def announced(self, seq: int) -> None:
        """The gateway says events up to `seq` exist (its birth)."""
        self._raise_high(seq)

    @property
    def missing(self) -> list[tuple[int, int]]:
        if self.last is None or self.high is None:
            return []
        return _ranges(self.last, self.pending, self.high)


@dataclass(slots=True)
class Held:
    """A retained value and the subscriber's connection it arrived on (current only if the latest)."""

    payload: dict[str, Any]
    generation: int


@dataclass(slots=True)
class OfficeView:
    """Everything the subscriber holds of one office."""

    office: str
    gateway: Held | None = None  # the latest accepted birth or death
    session: int | None = None
    ended: bool = False  # a death of `session` has been seen: a late birth of it is ignored
    old_session_messages: int = 0  # births and deaths of older sessions, ignored
    seqs: SeqTracker = field(default_factory=SeqTracker)
    snapshot: Held | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # the last events after the snapshot
    since_snapshot: list[int] = field(default_factory=list)  # seqs of the events received after it
    mode: Held | None = None
    devices: dict[str, Held] = field(default_factory=dict)
    estimates: dict[str, Held] = field(default_factory=dict)
    tickets: dict[str, int] = field(default_factory=dict)  # token_hash -> generation

    @property
    def online(self) -> bool:
        return self.gateway is not None and self.gateway.payload.get("state") == "online"


class BrokerView:
    """The offices as a subscriber sees them. `office`: only that one is kept (others are counted
    as not watched). Call `connected()` when the subscription is in place (the broker then sends
    every retained message again), `disconnected()` when the connection is lost, and `receive()`
    for each message."""

    def __init__(self, office: str | None = None) -> None:
        self.watched = office
        self.offices: dict[str, OfficeView] = {}
        self.connected_now = False
        # One more at each (re)connection: a retained value received on an earlier connection is
        # not confirmed until the broker sends it again (it may have been cleared meanwhile).
        self.generation = 0
        self.ignored: dict[str, int] = dict.fromkeys(IGNORED_REASONS, 0)
        self.last_problem: str | None = None
        self.messages = 0

    # -- the subscriber's connection ------------------------------------------------------------
    def connected(self) -> None:
        self.connected_now = True
        self.generation += 1

    def disconnected(self) -> None:
        self.connected_now = False

    # -- messages -------------------------------------------------------------------------------
    def receive(self, topic: str, payload: bytes) -> str | None:
        """Take one message; the office whose view it changed (perhaps), or None when ignored."""
        self.messages += 1
        where = mqtt.parse_topic(topic)
        if where is None:
            return self._ignore(UNKNOWN_TOPIC, f"{topic}: not a counterfloor topic")
        if self.watched is not None and where.office != self.watched:
            return self._ignore(NOT_WATCHED, f"{topic}: not the office watched")
        if where.kind in (mqtt.CMD, mqtt.ACK):
            return None  # central's and the gateway's conversation: nothing the view shows
        if not payload:  # an empty retained payload clears the topic
            return self._clear(where)
        try:
            data = mqtt.decode(payload)
        except mqtt.PayloadError as exc:
            return self._ignore(MALFORMED, f"{topic}: {exc}")
        if (found := _check(where, data)) is not None:
            reason, problem = found
            return self._ignore(reason, f"{topic}: {problem}")
        view = self._office(where.office)
        gen = self.generation
        if where.kind == mqtt.GATEWAY:
            self._gateway(view, data)
        elif where.kind == mqtt.EVENTS:
            self._event(view, data)
        elif where.kind == mqtt.SNAPSHOT:
            self._snapshot(view, data)
        elif where.kind == mqtt.MODE:
            view.mode = Held(data, gen)
        elif where.kind == mqtt.DEVICES:
            assert where.key is not None
            view.devices[where.key] = Held(data, gen)
        elif where.kind == mqtt.ESTIMATES:
            assert where.key is not None
            view.estimates[where.key] = Held(data, gen)
        elif where.kind == mqtt.TICKETS:
            assert where.key is not None
            view.tickets[where.key] = gen
        return where.office

    def _ignore(self, reason: str, problem: str) -> str | None:
        """Count what is ignored, and keep the last problem for showing; None (nothing changed)."""
        self.ignored[reason] += 1
        self.last_problem = problem
        return None

    def _office(self, office: str) -> OfficeView:
        view = self.offices.get(office)
        if view is None:
            view = self.offices[office] = OfficeView(office)
        return view

    def _clear(self, where: mqtt.Topic) -> str | None:
        view = self.offices.get(where.office)
        if view is None:
            return None
        if where.kind == mqtt.GATEWAY:
            view.gateway = None
        elif where.kind == mqtt.SNAPSHOT:
            view.snapshot = None
        elif where.kind == mqtt.MODE:
            view.mode = None
        elif where.kind == mqtt.DEVICES:
            view.devices.pop(str(where.key), None)
        elif where.kind == mqtt.ESTIMATES:
            view.estimates.pop(str(where.key), None)
        elif where.kind == mqtt.TICKETS:
            view.tickets.pop(str(where.key), None)
        else:  # an empty event: nothing to clear
            return self._ignore(MALFORMED, f"{where.office}/{where.kind}: empty payload")
        return where.office

    def _gateway(self, view: OfficeView, data: dict[str, Any]) -> None:
        session = data["session"]
        current = view.session
        if data["state"] == "online":
            # A birth of an older session, or of the current one after its death, is late.
            if current is not None and (session < current or (session == current and view.ended)):
                view.old_session_messages += 1
                return
            view.ended = False
            seq = _int(data.get("seq"))
            if seq is not None:
                view.seqs.announced(seq)
        else:
            # A death of an older session than the latest birth is that session's late will.
            if current is not None and session < current:
                view.old_session_messages += 1
                return
            view.ended = True
        view.session = session
        view.gateway = Held(data, self.generation)

    def _event(self, view: OfficeView, data: dict[str, Any]) -> None:
        seq: int = data["seq"]
        if not view.seqs.event(seq):
            return
        if view.snapshot is not None and seq <= view.snapshot.payload["seq"]:
            return  # new to the stream, but the snapshot already holds it
        bisect.insort(view.since_snapshot, seq)
        at = bisect.bisect([int(e["seq"]) for e in view.events], seq)
        view.events.insert(at, data)
        del view.events[:-LAST_EVENTS]

    def _snapshot(self, view: OfficeView, data: dict[str, Any]) -> None:
        seq: int = data["seq"]
        held = view.snapshot
        if held is not None and seq < held.payload["seq"]:
            return  # an older picture than the one held
        view.snapshot = Held(data, self.generation)
        if held is not None and seq == held.payload["seq"]:
            return  # the same picture again (retained, redelivered; or a rebirth's, nothing new)
        view.seqs.snapshot(seq)
        view.events = [e for e in view.events if e["seq"] > seq]
        del view.since_snapshot[: bisect.bisect_right(view.since_snapshot, seq)]

    # -- what is held, and how fresh ------------------------------------------------------------
    def _current(self, held: Held | None) -> bool:
        return held is not None and self.connected_now and held.generation == self.generation

    def available(self, office: str) -> bool:
        """The subscriber is connected AND the gateway's retained `online` is confirmed on this
        connection."""
        view = self.offices.get(office)
        return view is not None and view.online and self._current(view.gateway)

    def stale_reasons(self, office: str) -> list[str]:
        """Why what is held of `office` is not current; empty when it is."""
        view = self.offices.get(office)
        if not self.connected_now:
            return ["the watcher is not connected to the broker"]
        if view is None:
            return ["nothing received"]
        reasons: list[str] = []
        if view.gateway is None:
            reasons.append("no gateway birth received")
        elif not view.online:
            reasons.append(f"gateway offline (session {view.session})")
        elif not self._current(view.gateway):
            reasons.append("gateway birth not confirmed since the watcher reconnected")
        if view.snapshot is None:
            reasons.append("no snapshot received")
        missing = view.seqs.missing
        if missing:
            reasons.append("missing events " + ", ".join(_span(a, b) for a, b in missing))
        return reasons

    def office_json(self, office: str) -> dict[str, Any]:
        """One office's picture as JSON (the `office` line of `office watch --json`, docs/mqtt.md)."""
        view = self.offices.get(office) or OfficeView(office)  # an office not seen: all empty
        reasons = self.stale_reasons(office)
        available = self.available(office)
        gateway: dict[str, Any] | None = None
        if view.gateway is not None:
            g = view.gateway.payload
            gateway = {
                "state": g["state"],
                "session": g["session"],
                "seq": _int(g.get("seq")),
                "ts": g.get("ts"),
                "software": g.get("software"),
                "confirmed": self._current(view.gateway),
            }
        seqs = view.seqs
        snapshot: dict[str, Any] | None = None
        if view.snapshot is not None:
            snapshot = _queue_json(view.snapshot.payload)
            # Current: nothing after it, and nothing that makes the office stale.
            snapshot["current"] = not reasons and seqs.last == view.snapshot.payload["seq"] and not seqs.pending
        return {
            "v": mqtt.SCHEMA,
            "kind": "office",
            "office": office,
            "available": available,
            "stale": bool(reasons),
            "why_stale": reasons,
            "gateway": gateway,
            "seq": {
                "last": seqs.last,
                "high": seqs.high,
                "missing": [list(r) for r in seqs.missing],
                "duplicates": seqs.duplicates,
                "old_session_messages": view.old_session_messages,
            },
            "snapshot": snapshot,
            "events": {"since_snapshot": len(view.since_snapshot), "last": list(view.events)},
            "mode": self._retained_json(view, view.mode),
            "devices": {d: self._device_json(view, h) for d, h in sorted(view.devices.items())},
            "estimates": {s: self._retained_json(view, h) for s, h in sorted(view.estimates.items())},
            "ticket_estimates": len(view.tickets),
        }

    def _fresh(self, view: OfficeView, held: Held) -> bool:
        # A value the gateway (or central, for the office) published is current only while the
        # office is available and the value was confirmed on this connection.
        return self.available(view.office) and held.generation == self.generation

    def _retained_json(self, view: OfficeView, held: Held | None) -> dict[str, Any] | None:
        if held is None:
            return None
        fields = {k: v for k, v in held.payload.items() if k not in ("v", "office")}
        return {**fields, "stale": not self._fresh(view, held)}

    def _device_json(self, view: OfficeView, held: Held) -> dict[str, Any]:
        out = self._retained_json(view, held)
        assert out is not None
        reported = held.payload.get("state")
        out["reported"] = reported if reported in DEVICE_STATES else None
        # What the watcher can vouch for: the reported state while fresh, else stale.
        out["state"] = "stale" if out["stale"] else out["reported"] or "stale"
        return out

    def watcher_json(self) -> dict[str, Any]:
        """The subscriber's own side: connected, and what was ignored."""
        return {
            "v": mqtt.SCHEMA,
            "kind": "watcher",
            "connected": self.connected_now,
            "offices": sorted(self.offices),
            "messages": self.messages,
            "ignored": dict(self.ignored),
            "last_problem": self.last_problem,
        }

    def has_picture(self, office: str) -> bool:
        """The office's birth (or death) and snapshot have arrived on this connection: a late
        joiner's retained picture is in."""
        view = self.offices.get(office)
        return view is not None and self._current(view.gateway) and self._current(view.snapshot)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _queue_json(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's queue as shown: per-ticket statuses are summed by status (a busy day has
    hundreds), the rest as the gateway sent it."""
    queue = snapshot["queue"]
    counts, tickets = queue.get("ticket_counts"), queue.get("tickets")
    by_status: dict[str, int] = {}
    if isinstance(counts, dict):  # what office.mqtt.snapshot_queue sends
        by_status = {str(k): v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
    elif isinstance(tickets, dict):  # a full map of tickets: counted here
        for status in tickets.values():
            by_status[str(status)] = by_status.get(str(status), 0) + 1
    return {
        "seq": snapshot["seq"],
        "session": _int(snapshot.get("session")),
        "ts": snapshot.get("ts"),
        "day": queue.get("day"),
        # The gateway sends each service's waiting tickets (gateway.control.queue_json): shown as
        # how many wait.
        "services": {
            str(k): len(v) if isinstance(v, list) else v
            for k, v in (queue.get("services") if isinstance(queue.get("services"), dict) else {}).items()
        },
        "counters": queue.get("counters") if isinstance(queue.get("counters"), dict) else {},
        "held": queue.get("held") if isinstance(queue.get("held"), list) else [],
        "unprinted": queue.get("unprinted") if isinstance(queue.get("unprinted"), dict) else {},
        "tickets": dict(sorted(by_status.items())),
    }


def _check(where: mqtt.Topic, data: dict[str, Any]) -> tuple[str, str] | None:
    """Why a decoded payload is ignored for its topic, (reason, problem), or None: fine."""
    office = data.get("office")
    if office is not None and office != where.office:
        return WRONG_OFFICE, f"office {office!r} in the payload of an {where.office!r} topic"
    problem = _field_problem(where, data)
    return None if problem is None else (MALFORMED, problem)


def _field_problem(where: mqtt.Topic, data: dict[str, Any]) -> str | None:
    # `office` is required where docs/mqtt.md spells the payload with it; mode and device
    # payloads are taken without (their topic names the office).
    if "office" not in data and where.kind in (mqtt.GATEWAY, mqtt.EVENTS, mqtt.SNAPSHOT, mqtt.ESTIMATES):
        return "'office' is missing"
    if where.kind == mqtt.GATEWAY:
        if data.get("state") not in ("online", "offline"):
            return f"'state' must be online or offline (got {data.get('state')!r})"
        if _int(data.get("session")) is None:
            return f"'session' must be a whole number ≥ 0 (got {data.get('session')!r})"
        if data["state"] == "online" and "seq" in data and _int(data["seq"]) is None:
            return f"'seq' must be a whole number ≥ 0 (got {data['seq']!r})"
    elif where.kind == mqtt.EVENTS:
        if _int(data.get("seq"), 1) is None:
            return f"'seq' must be a whole number ≥ 1 (got {data.get('seq')!r})"
        if not isinstance(data.get("type"), str):
            return f"'type' must be a string (got {data.get('type')!r})"
    elif where.kind == mqtt.SNAPSHOT:
        if _int(data.get("seq")) is None:
            return f"'seq' must be a whole number ≥ 0 (got {data.get('seq')!r})"
        if not isinstance(data.get("queue"), dict):
            return "'queue' must be an object"
    elif where.kind == mqtt.ESTIMATES:
        if data.get("service") != where.key:
            return f"'service' {data.get('service')!r} is not the topic's {where.key!r}"
        if _int(data.get("waiting")) is None:
            return f"'waiting' must be a whole number ≥ 0 (got {data.get('waiting')!r})"
        for key in ("mean_s", "p10_s", "p90_s"):
            if not _number(data.get(key)):
                return f"{key!r} must be a number (got {data.get(key)!r})"
    return None
