"""The MQTT schema: every topic and payload an office's gateway, central and the tools exchange
(docs/mqtt.md). One module, imported by the gateway, central and the tools, so that a topic or a
field is spelled in one place.

Pure: builds topics and payload dicts, parses and checks what arrives; no client, no I/O. The
wire is MQTT 3.1.1 (the embedded broker speaks nothing newer), so consistency is carried in the
payloads, Sparkplug-B style: every gateway connection has a session number (kept in the journal,
one more at each connection); its birth and its last will carry it, so a late death of an old
session is told apart from the current one; every queue event carries its gapless journal `seq`,
and the retained snapshot the `seq` it is current to, so a subscriber knows what it missed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

ROOT = "counterfloor"
SCHEMA = 1  # "v" of every payload; a reader ignores fields it does not know
# A payload larger than this is refused unread (a command, a pushed config): the largest real
# one is a config of a few tens of KB; a queue snapshot of a rush day is well below it too.
MAX_PAYLOAD = 256 * 1024
OFFICE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# Device ids in topics: `<bus>-<addr>` for a device on a bus (bus = its index in the config's
# order of ports), `gpio-<counter>` for a GPIO counter, `printer-<id>` for a ticket printer.
DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOKEN_HASH = re.compile(r"[0-9a-f]{64}")
SERVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SENDER = re.compile(r"[A-Za-z0-9._@:-]{1,64}")

# What each topic of an office is for: (name, retained, publisher).
GATEWAY = "gateway"  # retained birth / death (last will) of the gateway's session
EVENTS = "events"  # QoS 1: one event-log v1 record each, in seq order
SNAPSHOT = "snapshot"  # retained: the queue as of a seq
MODE = "mode"  # retained: the calendar's mode now, and today's override if any
DEVICES = "devices"  # devices/<device>, retained: one device's state
CMD = "cmd"  # commands to the gateway (central only); never retained
ACK = "ack"  # the gateway's answer to each command
ESTIMATES = "estimates"  # estimates/<service>, retained (central only)
TICKETS = "tickets"  # tickets/<token_hash>, retained (central only); cleared when the ticket ends
RESTORE = "restore"  # a replacement gateway asks central for today's copy; never retained
RESTORED = "restored"  # restored/<request id>: central's answer, in parts; never retained
TOPIC_KINDS = (GATEWAY, EVENTS, SNAPSHOT, MODE, DEVICES, CMD, ACK, ESTIMATES, TICKETS, RESTORE, RESTORED)
_KEYED = {DEVICES: DEVICE_ID, ESTIMATES: SERVICE_ID, TICKETS: TOKEN_HASH, RESTORED: REQUEST_ID}


class PayloadError(ValueError):
    """A topic or payload that does not follow the schema; the message names what is wrong."""


# -- the broker's address -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BrokerAddress:
    tls: bool
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


_BROKER_URL = re.compile(r"(mqtts?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?/?")


def broker_url_problem(url: str) -> str | None:
    """Why `url` is not a broker address mqtt://host[:port] or mqtts://host[:port], or None."""
    m = _BROKER_URL.fullmatch(url)
    if m is None:
        return f"not a broker URL like mqtt://host:1883 or mqtts://host:8883 (got {url!r})"
    if m.group(3) is not None and not 0 < int(m.group(3)) < 65536:
        return f"the port must be 1-65535 (got {m.group(3)})"
    return None


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://host[:port] (1883 by default) or mqtts://host[:port] (TLS, 8883); ValueError naming
    what is wrong."""
    if problem := broker_url_problem(url):
        raise ValueError(problem)
    m = _BROKER_URL.fullmatch(url)
    assert m is not None
    tls = m.group(1) == "mqtts"
    host = m.group(2).strip("[]")
    return BrokerAddress(tls, host, int(m.group(3)) if m.group(3) else (8883 if tls else 1883))


# -- topics ---------------------------------------------------------------------------------------
def topic(office: str, kind: str, key: str | None = None) -> str:
    """`counterfloor/<office>/<kind>[/<key>]`; ValueError for an id a topic cannot carry."""
    if not OFFICE_ID.fullmatch(office):
        raise ValueError(f"office id {office!r} cannot name an MQTT topic ([a-z0-9-], 1-32)")
    if kind not in TOPIC_KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    pattern = _KEYED.get(kind)
    if (pattern is None) != (key is None):
        raise ValueError(f"topic kind {kind!r} {'takes no key' if pattern is None else 'needs a key'}")
    if key is None:
        return f"{ROOT}/{office}/{kind}"
    assert pattern is not None
    if not pattern.fullmatch(key):
        raise ValueError(f"{key!r} cannot be the key of a {kind} topic")
    return f"{ROOT}/{office}/{kind}/{key}"


def office_filter(office: str | None = None) -> str:
    """The subscription to everything of one office, or of every office."""
    return f"{ROOT}/{office}/#" if office else f"{ROOT}/#"


@dataclass(frozen=True, slots=True)
class Topic:
    office: str
    kind: str
    key: str | None = None


def parse_topic(name: str) -> Topic | None:
    """The office, kind and key of a topic of this schema; None for any other topic."""
    parts = name.split("/")
    if len(parts) not in (3, 4) or parts[0] != ROOT or not OFFICE_ID.fullmatch(parts[1]):
        return None
    kind = parts[2]
    pattern = _KEYED.get(kind)
    if kind not in TOPIC_KINDS or (pattern is None) != (len(parts) == 3):
        return None
    if pattern is not None and not pattern.fullmatch(parts[3]):
        return None
    return Topic(parts[1], kind, parts[3] if len(parts) == 4 else None)


# -- payloads -------------------------------------------------------------------------------------
def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: what every topic carries (an empty payload clears a retained one)."""
    return orjson.dumps(payload)


def decode(data: bytes) -> dict[str, Any]:
    """A payload as its JSON object; PayloadError naming what is wrong (too large, not JSON, not
    an object, a schema newer than this reader's)."""
    if len(data) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(data)} bytes is over the {MAX_PAYLOAD} byte limit")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PayloadError("payload is not a JSON object")
    v = value.get("v", SCHEMA)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise PayloadError(f"'v' must be a schema number ≥ 1 (got {v!r})")
    if v > SCHEMA:
        raise PayloadError(f"payload schema v{v} is newer than this reader's v{SCHEMA}")
    return value


def birth(office: str, session: int, seq: int, ts: str, software: str) -> dict[str, Any]:
    """The gateway's retained `online`: its session, and the last seq it has stored (a subscriber
    whose last seq is lower asks for a replay)."""
    return {
        "v": SCHEMA,
        "office": office,
        "state": "online",
        "session": session,
        "seq": seq,
        "ts": ts,
        "software": software,
    }


def death(office: str, session: int) -> dict[str, Any]:
    """The last will (and a clean stop's last word): `offline` for that session only."""
    return {"v": SCHEMA, "office": office, "state": "offline", "session": session}


def event_message(record: Mapping[str, Any], session: int) -> dict[str, Any]:
    """One event-log v1 record (docs/events.md, with its gapless seq) as published."""
    return {**record, "session": session}


def snapshot_queue(queue: Mapping[str, Any]) -> dict[str, Any]:
    """The queue as a snapshot carries it: gateway.control.queue_json with its map of every
    ticket of the day replaced by how many tickets are in each status (`ticket_counts`). The map
    made a rush day's snapshot ~31 KB, republished every few seconds: ~70× the day's events on
    the wire (docs/benchmarks.md, MQTT). Who needs each ticket follows `events`."""
    out = {k: v for k, v in queue.items() if k != "tickets"}
    counts: dict[str, int] = {}
    for status in (queue.get("tickets") or {}).values():
        counts[str(status)] = counts.get(str(status), 0) + 1
    out["ticket_counts"] = dict(sorted(counts.items()))
    return out


def snapshot_message(office: str, session: int, seq: int, ts: str, queue: Mapping[str, Any]) -> dict[str, Any]:
    """The queue as of `seq` (gateway.control.queue_json, as `snapshot_queue` trims it), retained."""
    return {"v": SCHEMA, "office": office, "session": session, "seq": seq, "ts": ts, "queue": snapshot_queue(queue)}


def mode_message(office: str, session: int, mode: Mapping[str, Any], ts: str) -> dict[str, Any]:
    """The calendar's mode now, retained: `mode`, `services`, `since`, `next_change`,
    `next_mode`, `next_opening`, `reason` ({"ja","en"} or null), as office.calendar.ModeNow."""
    return {"v": SCHEMA, "office": office, "session": session, **mode, "ts": ts}


def device_message(office: str, session: int, device: str, state: Mapping[str, Any], ts: str) -> dict[str, Any]:
    """One device's state, retained: at least `kind` and `state` (online, offline or stale)."""
    return {"v": SCHEMA, "office": office, "session": session, "device": device, **state, "ts": ts}


def ack(office: str, request: str | None, ok: bool, **fields: Any) -> dict[str, Any]:
    """The gateway's answer to a command: `ok` and its result, or `error` naming the problem."""
    return {"v": SCHEMA, "office": office, "id": request, "ok": ok, **fields}


def estimate_message(
    office: str, service: str, seq: int, waiting: int, mean_s: float, p10_s: float, p90_s: float, ts: str
) -> dict[str, Any]:
    """Central's retained estimate for one service, current to the office's `seq`."""
    return {
        "v": SCHEMA,
        "office": office,
        "service": service,
        "seq": seq,
        "waiting": waiting,
        "mean_s": mean_s,
        "p10_s": p10_s,
        "p90_s": p90_s,
        "ts": ts,
    }


@dataclass(frozen=True, slots=True)
class ServiceEstimate:
    """An `estimates/<service>` payload as a reader holds it."""

    office: str
    service: str
    seq: int
    waiting: int
    mean_s: float
    p10_s: float
    p90_s: float


def parse_estimate(office: str, service: str, data: bytes) -> ServiceEstimate:
    """Central's retained estimate for `service` of `office` (the topic's), checked: PayloadError
    naming what is wrong (another office or service, a missing or negative figure, p10 > p90)."""
    payload = decode(data)
    if payload.get("office") != office or payload.get("service") != service:
        raise PayloadError(f"estimate for {payload.get('office')!r}/{payload.get('service')!r} on {office}/{service}")
    seq, waiting = payload.get("seq"), payload.get("waiting")
    if not (isinstance(seq, int) and isinstance(waiting, int)) or _is(seq, bool) or _is(waiting, bool):
        raise PayloadError("estimate: 'seq' and 'waiting' must be whole numbers ≥ 0")
    if seq < 0 or waiting < 0:
        raise PayloadError("estimate: 'seq' and 'waiting' must be whole numbers ≥ 0")
    figures = [payload.get(k) for k in ("mean_s", "p10_s", "p90_s")]
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x < 1e9 for x in figures):
        raise PayloadError("estimate: 'mean_s', 'p10_s' and 'p90_s' must be seconds ≥ 0")
    mean_s, p10_s, p90_s = (float(x) for x in figures)  # type: ignore[arg-type]
    if not p10_s <= p90_s:
        raise PayloadError("estimate: 'p10_s' is above 'p90_s'")
    return ServiceEstimate(office, service, seq, waiting, mean_s, p10_s, p90_s)


def ticket_estimate_message(
    office: str,
    token_hash: str,
    ticket: str,
    service: str,
    seq: int,
    ahead: int,
    issued_ts: str,
    mean_s: float,
    p10_s: float,
    p90_s: float,
    ts: str,
) -> dict[str, Any]:
    """Central's retained estimate for one waiting ticket (topic `tickets/<token_hash>`), current
    to the office's `seq`: `ahead` tickets before it in its queue, the wait from `issued_ts` to
    its first call (mean, p10, p90 seconds). Cleared (an empty retained payload) once it no
    longer waits."""
    return {
        "v": SCHEMA,
        "office": office,
        "token_hash": token_hash,
        "ticket": ticket,
        "service": service,
        "seq": seq,
        "ahead": ahead,
        "issued_ts": issued_ts,
        "mean_s": mean_s,
        "p10_s": p10_s,
        "p90_s": p90_s,
        "ts": ts,
    }


# -- commands -------------------------------------------------------------------------------------
# Each command: its name -> (required fields, optional fields) with their JSON types. The gateway
# acts on them through Gateway.handle (the control socket's path) where the floor's commands are
# concerned; the rest are the gateway's own (replay, rebirth, devices, config, firmware).
_STR, _INT, _OBJ, _LIST = str, int, dict, list
COMMANDS: dict[str, tuple[dict[str, type], dict[str, type]]] = {
    "open": ({"counter": _STR}, {"services": _LIST}),
    "pause": ({"counter": _STR}, {}),
    "resume": ({"counter": _STR}, {}),
    "close": ({"counter": _STR}, {}),
    "reprint": ({"ticket": _STR}, {"printer": _STR}),
    # office.calendar.ModeOverride: a mode with optional hours {"from", "to"}, or closed with a reason.
    "set_mode": ({"date": _STR}, {"mode": _STR, "closed": bool, "reason": _OBJ, "hours": _OBJ}),
    "clear_mode": ({"date": _STR}, {}),
    "dispenser_message": ({}, {"device": _STR, "lines": _LIST}),
    "replay": ({"from_seq": _INT}, {}),
    "rebirth": ({}, {}),
    "restart_device": ({"device": _STR}, {}),
    "push_config": ({"config": _STR}, {}),
    "firmware_update": ({"device": _STR, "bundle_url": _STR, "sha256": _STR}, {}),
}


def command_message(office: str, request: str, name: str, by: str | None = None, **fields: Any) -> dict[str, Any]:
    """A command as central sends it on `…/cmd` (never retained): `parse_command` takes it."""
    payload: dict[str, Any] = {"v": SCHEMA, "id": request, "office": office, "cmd": name, **fields}
    if by is not None:
        payload["by"] = by
    return payload


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    office: str
    name: str
    request: str  # the sender's id: its ack carries it, and a retry with it is done once
    fields: dict[str, Any]
    # Who sent it: the payload's "by" (the person or service central acts for), as central's
    # account — the only one the broker's ACL lets publish commands — vouches for it. MQTT 3.1.1
    # does not tell a subscriber which account published; None when the payload names nobody.
    sender: str | None = None


def parse_command(office: str, data: bytes, sender: str | None = None) -> RemoteCommand:
    """A command payload for `office`; PayloadError naming what is wrong (the gateway answers it
    with an error ack when the payload has a usable id, and drops it otherwise)."""
    payload = decode(data)
    request = payload.get("id")
    if not isinstance(request, str) or not REQUEST_ID.fullmatch(request):
        raise PayloadError(f"'id' must be 1-64 letters, digits and ._:- (got {request!r})")
    target = payload.get("office")
    if target != office:
        raise PayloadError(f"command for office {target!r} sent to {office!r}")
    name = payload.get("cmd")
    spec = COMMANDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise PayloadError(f"unknown command {name!r}; commands are {sorted(COMMANDS)}")
    required, optional = spec
    fields: dict[str, Any] = {}
    for key, kind in (*((k, t) for k, t in required.items()), *((k, t) for k, t in optional.items())):
        if key not in payload:
            if key in required:
                raise PayloadError(f"{name}: {key!r} is missing")
            continue
        value = payload[key]
        if not _is(value, kind):
            raise PayloadError(f"{name}: {key!r} must be {_TYPE_NAMES[kind]} (got {type(value).__name__})")
        fields[key] = value
    by = payload.get("by", sender)
    if by is not None and (not isinstance(by, str) or not SENDER.fullmatch(by)):
        raise PayloadError(f"'by' must be 1-64 letters, digits and ._@:- (got {by!r})")
    unknown = set(payload) - set(required) - set(optional) - {"v", "id", "office", "cmd", "by"}
    if unknown:
        raise PayloadError(f"{name}: unknown field(s) {sorted(unknown)}")
    return RemoteCommand(office, str(name), request, fields, by)


_TYPE_NAMES = {str: "a string", int: "a whole number", dict: "an object", list: "a list", bool: "true or false"}


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str) and bool(value)
    return isinstance(value, kind)


# -- restoring a gateway from central's copy (counterfloor gateway restore) ---------------------
RESTORE_PART_BYTES = MAX_PAYLOAD // 2  # records per part stay well under what a reader takes


def restore_request(office: str, request: str) -> dict[str, Any]:
    """A replacement gateway's request for the office's latest business day (topic `restore`)."""
    return {"v": SCHEMA, "office": office, "id": request}


def parse_restore_request(office: str, data: bytes) -> str:
    """The request id of a `restore` request for `office`; PayloadError naming what is wrong."""
    payload = decode(data)
    if payload.get("office") != office:
        raise PayloadError(f"restore request for office {payload.get('office')!r} sent to {office!r}")
    request = payload.get("id")
    if not isinstance(request, str) or not REQUEST_ID.fullmatch(request):
        raise PayloadError(f"'id' must be 1-64 letters, digits and ._:- (got {request!r})")
    return request


def restore_parts(
    office: str, request: str, session: int, records: Sequence[Mapping[str, Any]], error: str | None = None
) -> list[dict[str, Any]]:
    """Central's answer on `restored/<id>`: the day's records in parts under RESTORE_PART_BYTES,
    each naming its place (`part` of `parts`), central's last session of the office, and the
    error instead of records when it cannot answer."""
    chunks: list[list[Mapping[str, Any]]] = [[]]
    size = 0
    for record in records:
        n = len(encode(record)) + 1
        if chunks[-1] and size + n > RESTORE_PART_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(record)
        size += n
    base = {"v": SCHEMA, "office": office, "id": request, "session": session}
    if error is not None:
        return [{**base, "part": 1, "parts": 1, "error": error, "records": []}]
    return [{**base, "part": i + 1, "parts": len(chunks), "records": c} for i, c in enumerate(chunks)]


@dataclass(frozen=True, slots=True)
class RestorePart:
    part: int
    parts: int
    session: int
    records: list[dict[str, Any]]
    error: str | None


def parse_restore_part(office: str, request: str, data: bytes) -> RestorePart:
    """One part of central's answer to `request`; PayloadError naming what is wrong."""
    payload = decode(data)
    if payload.get("office") != office or payload.get("id") != request:
        raise PayloadError(f"a restore answer for {payload.get('office')!r}/{payload.get('id')!r}")
    part, parts, session = payload.get("part"), payload.get("parts"), payload.get("session")
    records, error = payload.get("records"), payload.get("error")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (part, parts, session)):
        raise PayloadError("restore answer: 'part', 'parts' and 'session' must be whole numbers")
    assert isinstance(part, int) and isinstance(parts, int) and isinstance(session, int)
    if not 1 <= part <= parts:
        raise PayloadError(f"restore answer: part {part} of {parts}")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise PayloadError("restore answer: 'records' must be a list of event records")
    if error is not None and not isinstance(error, str):
        raise PayloadError("restore answer: 'error' must be text")
    return RestorePart(part, parts, session, records, error)
