"""The gateway on MQTT (gateway/mqtt_link.py, docs/mqtt.md): bytes, latency, and 100 offices.

Every figure is measured against a real Mosquitto (Debian's binary) that this benchmark starts on
a free loopback port and stops by its PID (tests/mqtt_support.py's `plain_mosquitto`: one
implementation for the tests and the benchmark), plain TCP without TLS or accounts.

- **Bytes per queue event**: the Nerima rush day (bench/rushday.py) stored in a journal, then
  published by the real gateway (gateway.service.Gateway and its MqttLink, the catch-up path,
  which is the live stream's code) to Mosquitto. Each event's size is worked out from the MQTT
  3.1.1 packet format (PUBLISH: fixed header and remaining length, topic with its length, packet
  id, payload) for its `office.mqtt` payload on `…/events`; `schedule` events are reported apart.
  Cross-check: every byte paho wrote on the gateway's socket is kept (its one write path,
  `_sock_send`, wrapped), split into MQTT packets, and the PUBLISH packets on `…/events` are
  compared with the computed ones, byte count and payload. Baseline: the same event as a line of
  the event log (docs/events.md, `counterfloor office export`), so the ratio is MQTT's overhead.
  Reported beside it: the retained `…/snapshot` over the same day, sized at each moment the
  gateway would send one (not a queue event, not in the goal).
- **Publish latency**: the real gateway (journal at synchronous=FULL, MqttLink, Mosquitto, the
  example's 50 ms cycle, no devices) takes `issue` and `call` over its control socket from a second
  process, as `counterfloor office` sends them; timed from the moment the command's events are
  stored (`TicketJournal.execute` returned: committed and applied) to the arrival of its last event
  at a subscriber in that second process (CLOCK_MONOTONIC on both sides), split into the rest of the
  gateway's turn, paho's thread, and broker plus subscriber. Baseline, interleaved command by
  command: a bare paho client in the second process publishing a payload of the same size on a
  topic of the same length, to the same subscriber through the same broker.
- **100 offices, a rush hour**: the busiest 60 minutes of the rush day's events, each office
  starting its replay at its own point in that hour, published at their real times (the real
  rush-hour rate) as `office.mqtt` event payloads by 100 gateway-like paho clients
  (gateway.mqtt_client.make_client, the will, the birth, QoS 1, the link's in-flight window),
  in a few processes with one paho network thread per office, as a gateway has; one subscriber
  (central) takes every office's events. Measured: the publishers' CPU (every thread) per office
  per hour of office time, the broker's message rate and its own CPU (/proc/<pid>/stat).
  Baseline, in the same run: one bare paho client per process publishing the very same messages
  (pre-encoded) as fast as it can, to the same subscriber: Mosquitto's own rate on this machine,
  what those messages cost the broker and the publishers at that speed. Rounds before and after
  the hour; their median.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import io
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import Result, nerima, remove_journal
from bench.rushday import NERIMA, RUSH_DAY, Step
from gateway import control
from gateway.journal import TicketJournal
from gateway.mqtt_client import BrokerLogin, make_client
from gateway.mqtt_link import CLIENT_QUEUE_MAX, WINDOW, MqttLink
from gateway.service import Gateway
from office import events as ev
from office import mqtt as schema
from office.config import OfficeConfig, parse_config
from office.model import Office

HOST = "127.0.0.1"
GOAL_BYTES = 300  # mean bytes on the wire per queue event (issue 13), schedule apart
SESSION = 1  # a fresh journal's first connection: the session every payload here carries
HOUR_S = 3600.0
OFFICES = 100
BARE_INFLIGHT = 1000  # the bare publishers' window: as fast as the broker acknowledges
DEADLINE_S = 60.0  # every wait on the broker or a worker is bounded by this (beyond the window)
TOPIC_PREFIX = f"{schema.ROOT}/"


@dataclass(frozen=True)
class Sizes:
    """How a run is sized: the whole thing (a few minutes) or `--quick` (a few seconds)."""

    commands: int  # timed commands in the latency run (a warm-up before them)
    warmup: int
    window_s: float  # real seconds of the 100 offices' rush hour
    idle_s: float  # real seconds of the 100 offices connected and publishing nothing
    processes: int  # publisher processes for the 100 offices
    rounds_before: int  # bare-paho rounds before the offices' window, and after it
    rounds_after: int

    @staticmethod
    def of(quick: bool) -> Sizes:
        if quick:
            return Sizes(commands=20, warmup=4, window_s=3.0, idle_s=1.0, processes=2, rounds_before=0, rounds_after=1)
        return Sizes(commands=400, warmup=20, window_s=120.0, idle_s=15.0, processes=4, rounds_before=2, rounds_after=3)


def run(workdir: Path, steps: Sequence[Step], log: list[str], quick: bool = False) -> list[Result]:
    # tests.mqtt_support starts Mosquitto for the tests; imported here, not at the top, so the
    # publisher processes (which import this module) do not load pytest and amqtt for nothing.
    import pytest

    from tests.mqtt_support import plain_mosquitto

    sizes = Sizes.of(quick)
    with contextlib.ExitStack() as stack:
        try:
            # A subscriber slower than the bare publishers must not lose messages: the deployed
            # limit (deploy/mosquitto/mosquitto.conf) holds a whole run's messages for it.
            broker = stack.enter_context(plain_mosquitto(workdir / "mosquitto", extra=["max_queued_messages 10000"]))
        except pytest.skip.Exception as exc:  # no mosquitto binary: one line, not a test outcome
            raise RuntimeError(f"bench mqtt: {exc}") from None
        # The gateways' control sockets in a short directory of their own: a socket's path has at
        # most 107 bytes, which a --dir deep in a tree (a test's tmp_path) may exceed on its own.
        sockets = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cf-mqtt-")))
        log.append(f"mqtt: Mosquitto {_mosquitto_version(broker.binary)} on {HOST}:{broker.port}, plain TCP, no TLS")
        results, events = wire_bytes(workdir, sockets, broker.port, steps, log)
        results += publish_latency(workdir, sockets, broker.port, sizes, log)
        results += hundred_offices(broker.port, broker.pid, events, sizes, log)
    return results


def _mosquitto_version(binary: str) -> str:
    import subprocess

    out = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else ""
    return first.removeprefix("mosquitto version ").strip() or "(version unknown)"


# -- the MQTT 3.1.1 packet format -------------------------------------------------------------------
def _remaining_length_bytes(n: int) -> int:
    """Bytes of the fixed header's Remaining Length (MQTT 3.1.1 §2.2.3: 7 bits a byte, 1-4 bytes)."""
    return 1 if n < 128 else 2 if n < 16_384 else 3 if n < 2_097_152 else 4


def publish_size(topic: str, payload: int, qos: int = 1) -> int:
    """Bytes of a PUBLISH (§3.3): the fixed header (1 byte and the remaining length), the topic
    (a 2-byte length and its UTF-8), the packet id (2 bytes at QoS 1 and 2), the payload."""
    remaining = 2 + len(topic.encode("utf-8")) + (2 if qos else 0) + payload
    return 1 + _remaining_length_bytes(remaining) + remaining


PUBACK_SIZE = 4  # §3.4: what the broker sends back for each QoS 1 PUBLISH
PACKET_NAMES = {1: "CONNECT", 3: "PUBLISH", 4: "PUBACK", 8: "SUBSCRIBE", 12: "PINGREQ", 14: "DISCONNECT"}


@dataclass(frozen=True)
class Packet:
    kind: int  # the control packet type (3: PUBLISH)
    size: int  # the whole packet, fixed header included
    topic: str | None  # a PUBLISH's
    payload: bytes  # a PUBLISH's


def split_packets(stream: bytes) -> Iterator[Packet]:
    """The MQTT packets of a byte stream a client wrote, in order (§2.2: a type nibble and the
    remaining length; a PUBLISH's topic and payload taken out, its packet id skipped at QoS > 0)."""
    pos = 0
    while pos < len(stream):
        first = stream[pos]
        remaining, shift, i = 0, 0, pos + 1
        while True:
            byte = stream[i]
            remaining |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if byte < 0x80:
                break
        end = i + remaining
        if end > len(stream):
            raise ValueError(f"a packet cut short at byte {pos} of {len(stream)}")
        kind = first >> 4
        topic, payload = None, b""
        if kind == 3:
            length = int.from_bytes(stream[i : i + 2], "big")
            topic = stream[i + 2 : i + 2 + length].decode("utf-8")
            start = i + 2 + length + (2 if (first >> 1) & 0x03 else 0)
            payload = bytes(stream[start:end])
        yield Packet(kind, end - pos, topic, payload)
        pos = end


class ClientTap:
    """The gateway's paho client, watched: every byte it writes is kept (paho-mqtt 2.x sends every
    packet through the one method `_sock_send`, wrapped here on the instance), and the moment each
    event is handed to it (`publish` on `events_topic`) is noted. The client is the gateway's own
    (gateway.mqtt_client.make_client) and does what it did; MqttLink takes it by `client_factory`."""

    def __init__(self, events_topic: str) -> None:
        self.events_topic = events_topic
        self.sent = bytearray()
        self.writes: list[tuple[int, float]] = []  # (bytes sent so far, perf_counter) after each write
        self.handed: list[tuple[float, bytes]] = []  # (perf_counter, payload) per event publish()

    def client_factory(self, login: BrokerLogin, client_id: str, will: Any = None) -> paho.Client:
        client = make_client(login, client_id, will)
        send, publish = client._sock_send, client.publish

        def counted(buf: bytes | bytearray) -> int:
            n = send(buf)
            self.sent += buf[:n]
            self.writes.append((len(self.sent), time.perf_counter()))
            return n

        def stamped(topic: str, payload: Any = None, qos: int = 0, retain: bool = False, properties: Any = None) -> Any:
            if topic == self.events_topic:
                self.handed.append((time.perf_counter(), payload))
            return publish(topic, payload, qos, retain, properties)

        client._sock_send = counted  # type: ignore[method-assign]
        client.publish = stamped  # type: ignore[method-assign]
        return client

    def handed_at(self) -> dict[int, float]:
        """When each event (by seq) was first handed to paho."""
        first: dict[int, float] = {}
        for at, payload in self.handed:
            first.setdefault(orjson.loads(payload)["seq"], at)
        return first

    def written_at(self) -> dict[int, float]:
        """When each event's PUBLISH (by seq) was first written whole on the socket."""
        ends = [end for end, _ in self.writes]
        first: dict[int, float] = {}
        end = 0
        for packet in split_packets(bytes(self.sent)):
            end += packet.size
            if packet.kind == 3 and packet.topic == self.events_topic:
                write = bisect.bisect_left(ends, end)  # the write that carried its last byte
                first.setdefault(orjson.loads(packet.payload)["seq"], self.writes[write][1])
        return first


# -- the gateway, without devices ---------------------------------------------------------------------
def office_config(cycle_ms: int) -> tuple[OfficeConfig, str]:
    """Nerima without its devices and printers: the gateway's loop kept busy by its control
    socket and the broker only (what its devices cost is bench/devices.py's)."""
    _, text = nerima()
    text = text.split("\n[gateway]")[0] + f"\n[gateway]\ncycle_ms = {cycle_ms}\n"
    return parse_config(text, source=str(NERIMA)), text


def _local(hour: int, minute: int = 0) -> datetime:
    config, _ = nerima()
    return datetime(RUSH_DAY.year, RUSH_DAY.month, RUSH_DAY.day, hour, minute, tzinfo=config.tz)


def _walking_wall(start: datetime) -> Callable[[], datetime]:
    """A wall clock that starts at `start` and runs with the monotonic clock."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


def _log_line(record: dict[str, Any]) -> bytes:
    # As `counterfloor office export` writes it (counterfloor/cli.py, cmd_export).
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# -- 1. bytes on the wire per queue event -----------------------------------------------------------
def wire_bytes(
    workdir: Path, sockets: Path, port: int, steps: Sequence[Step], log: list[str]
) -> tuple[list[Result], list[ev.Event]]:
    config, text = office_config(cycle_ms=2)  # the loop's pace does not matter here: it is not timed
    office = config.id
    path = workdir / "mqtt-rushday.db"
    remove_journal(path)
    journal = TicketJournal.create(path, config, text, synchronous="OFF")  # storing it is not measured
    try:
        for step in steps:
            journal.execute(step.command, step.at)
        events = journal.events_after(0, len(steps) * 4 + 10)
    finally:
        journal.close()
    topic = schema.topic(office, schema.EVENTS)
    payloads = [schema.encode(schema.event_message(ev.public_record(e, office), SESSION)) for e in events]
    lines = [_log_line(ev.public_record(e, office)) for e in events]

    # The real gateway publishes the stored day (the catch-up after an outage: the live path's code).
    tap = ClientTap(topic)
    gw = Gateway(config, text, path, sockets / "rushday.sock", io.StringIO(), wall=_walking_wall(_local(19, 30)))
    gw.start()
    started = time.perf_counter()
    try:
        # What Gateway.start does with --broker, with the client watched (ClientTap).
        link = MqttLink(gw, BrokerLogin(schema.BrokerAddress(False, HOST, port)), client_factory=tap.client_factory)
        gw.mqtt = link
        link.start()
        deadline = time.monotonic() + DEADLINE_S + len(events) / 500
        while link.mark < events[-1].seq:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench mqtt: the gateway published up to seq {link.mark} of {events[-1].seq}")
            gw.step()
        published_s = time.perf_counter() - started
        session = link.session
    finally:
        gw.close()

    by_type: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for e, payload, line in zip(events, payloads, lines, strict=True):
        by_type[e.TYPE].append((publish_size(topic, len(payload)), len(line)))
    queue_events = [s for t, sizes in by_type.items() if t != "schedule" for s in sizes]
    schedules = by_type.get("schedule", [])
    mean_mqtt = statistics.fmean(m for m, _ in queue_events)
    mean_line = statistics.fmean(n for _, n in queue_events)

    # The cross-check: what went out on the gateway's socket, packet by packet.
    packets = list(split_packets(bytes(tap.sent)))
    on_events = [p for p in packets if p.kind == 3 and p.topic == topic]
    computed = sum(publish_size(topic, len(p)) for p in payloads)
    socket_bytes = sum(p.size for p in on_events)
    same_payloads = session == SESSION and [p.payload for p in on_events] == payloads
    kinds: Counter[str] = Counter()
    other_bytes: Counter[str] = Counter()
    for p in packets:
        name = PACKET_NAMES.get(p.kind, str(p.kind))
        if p.kind == 3:
            name += " " + (p.topic or "").removeprefix(f"{TOPIC_PREFIX}{office}/")
        kinds[name] += 1
        if not (p.kind == 3 and p.topic == topic):
            other_bytes[name] += p.size

    queue_payloads = [len(p) for e, p in zip(events, payloads, strict=True) if e.TYPE != "schedule"]
    mean_payload = statistics.fmean(queue_payloads)
    header = statistics.fmean(1 + _remaining_length_bytes(2 + len(topic) + 2 + p) for p in queue_payloads)
    n = len(queue_events)
    results = [
        Result(
            f"MQTT bytes per queue event, rush day ({n:,} events, schedule apart)",
            f"{mean_mqtt:.1f} B (PUBLISH packet)",
            f"{mean_line:.1f} B (event log line)",
            f"{mean_mqtt / mean_line:.2f}",
            f"≤ {GOAL_BYTES} B (mean)",
            mean_mqtt <= GOAL_BYTES,
        ),
    ]
    if schedules:
        mean_sched = statistics.fmean(m for m, _ in schedules)
        mean_sched_line = statistics.fmean(n for _, n in schedules)
        results.append(
            Result(
                f"  schedule events ({len(schedules)})",
                f"{mean_sched:,.0f} B (PUBLISH packet)",
                f"{mean_sched_line:,.0f} B (event log line)",
                f"{mean_sched / mean_sched_line:.2f}",
                "—",
                None,
            )
        )
    results.append(
        Result(
            f"  cross-check: the gateway's PUBLISH packets on its socket ({len(on_events):,} events)",
            f"{socket_bytes:,} B" + ("" if same_payloads else " (payloads differ)"),
            f"{computed:,} B (computed)",
            f"{socket_bytes / computed:.4f}",
            "equal bytes and payloads",
            socket_bytes == computed and len(on_events) == len(payloads) and same_payloads,
        )
    )

    # Details: by type, what a mean packet is made of, and the rest of the connection.
    rows = sorted(by_type.items(), key=lambda kv: -len(kv[1]))
    log.append(
        "mqtt bytes by event type (count: mean PUBLISH / mean log line): "
        + "; ".join(
            f"{t} {len(s):,}: {statistics.fmean(m for m, _ in s):,.1f} / {statistics.fmean(x for _, x in s):,.1f} B"
            for t, s in rows
        )
    )
    log.append(
        f"mqtt bytes: a queue event's PUBLISH is {header:.2f} B of fixed header, {2 + len(topic)} B of topic "
        f"({topic}), 2 B of packet id and a {mean_payload:.1f} B payload on average (the log line's record "
        f'plus ,"session":{SESSION}, without its newline); the broker answers each with a {PUBACK_SIZE} B PUBACK; '
        "TCP/IP headers not counted. All events with schedule: "
        f"{statistics.fmean(m for s in by_type.values() for m, _ in s):.1f} B mean, "
        f"{sum(m for s in by_type.values() for m, _ in s) / 1e6:.2f} MB for the day"
    )
    log.append(
        f"mqtt cross-check: {len(tap.sent):,} B written on the gateway's socket in {len(packets):,} packets "
        f"({', '.join(f'{k} {v:,}' for k, v in kinds.most_common())}); the {len(on_events):,} on …/events: "
        f"{socket_bytes:,} B against {computed:,} B computed, "
        f"payloads {'identical' if same_payloads else 'DIFFERENT'}; "
        f"the rest: {', '.join(f'{k} {v:,} B' for k, v in other_bytes.most_common())}; "
        f"the gateway published the day's events in {published_s:.2f} s ({len(events) / published_s:,.0f} events/s, "
        "a catch-up from an empty broker)"
    )
    log.append(snapshot_bytes(config, events, sum(m for s in by_type.values() for m, _ in s)))
    return results, events


def snapshot_bytes(config: OfficeConfig, events: Sequence[ev.Event], event_bytes: int) -> str:
    """What the retained `…/snapshot` adds over the same day: the gateway publishes it when the
    queue changed, at most every SNAPSHOT_EVERY_S (gateway/mqtt_link.py), so the day's events are
    replayed on the office model and the snapshot sized at each moment the gateway would send one."""
    from gateway.mqtt_link import SNAPSHOT_EVERY_S

    office = Office(config)
    topic = schema.topic(config.id, schema.SNAPSHOT)
    sizes: list[int] = []
    last_at: float | None = None
    pending: float | None = None  # the time of the first change not in a snapshot yet

    def snapshot(at: float) -> None:
        nonlocal last_at, pending
        state = office.state
        ts = ev.format_ts(datetime.fromtimestamp(at, config.tz))
        message = schema.snapshot_message(config.id, SESSION, state.last_seq, ts, control.queue_json(state, config))
        sizes.append(publish_size(topic, len(schema.encode(message))))
        last_at, pending = at, None

    for e in events:
        t = e.ts.timestamp()
        # A change waiting for the interval to pass goes out then, before this event.
        if pending is not None and last_at is not None and t >= last_at + SNAPSHOT_EVERY_S:
            snapshot(max(last_at + SNAPSHOT_EVERY_S, pending))
        office.apply(e)
        if pending is None:
            pending = t
        if last_at is None or t >= last_at + SNAPSHOT_EVERY_S:
            snapshot(t)
    if pending is not None:
        snapshot(pending)
    total = sum(sizes)
    return (
        f"mqtt retained snapshots over the same events (at most every {SNAPSHOT_EVERY_S:g} s while the queue "
        f"changes, as the gateway sends them): {len(sizes):,} snapshots, mean "
        f"{statistics.fmean(sizes) / 1000:.1f} KB, largest {max(sizes) / 1000:.1f} KB, {total / 1e6:.1f} MB in all — "
        f"{total / event_bytes:.0f}× the events' {event_bytes / 1e6:.2f} MB "
        "(not queue events: reported, not in the goal)"
    )


# -- 2. publish latency -----------------------------------------------------------------------------
class Arrivals:
    """A subscriber (paho's thread) noting when each event (by seq) and each baseline message (by
    its number) arrives, for a driver thread that waits on them. Stamped with time.monotonic():
    CLOCK_MONOTONIC, one clock for every process of the machine (the gateway stamps in another)."""

    def __init__(self, events_topic: str, baseline_topic: str) -> None:
        self.events_topic, self.baseline_topic = events_topic, baseline_topic
        self.events: dict[int, tuple[float, int]] = {}  # seq -> (arrival, payload bytes)
        self.baseline: dict[int, float] = {}
        self.changed = threading.Condition()

    def on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        at = time.monotonic()  # first: the rest is this subscriber's own work
        if msg.topic == self.events_topic:
            seq = orjson.loads(msg.payload)["seq"]
            with self.changed:
                self.events[seq] = (at, len(msg.payload))
                self.changed.notify_all()
        elif msg.topic == self.baseline_topic:
            number = int(msg.payload[5 : msg.payload.index(b",")])
            with self.changed:
                self.baseline[number] = at
                self.changed.notify_all()

    def wait(self, what: str, done: Callable[[], bool]) -> None:
        with self.changed:
            if not self.changed.wait_for(done, DEADLINE_S):
                raise RuntimeError(f"bench mqtt: no {what} within {DEADLINE_S:g} s")


def bare_client(port: int, client_id: str, inflight: int = BARE_INFLIGHT) -> paho.Client:
    """A bare paho client (MQTT 3.1.1, clean session), connected, its network thread running."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=True)
    client.max_inflight_messages_set(inflight)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: connected.set()
    client.connect(HOST, port, keepalive=60)
    client.loop_start()
    if not connected.wait(DEADLINE_S):
        client.loop_stop()
        raise RuntimeError(f"bench mqtt: {client_id} got no CONNACK within {DEADLINE_S:g} s")
    return client


def _subscribe(client: paho.Client, topic_filter: str) -> None:
    granted = threading.Event()
    client.on_subscribe = lambda c, u, mid, reasons, p: granted.set()
    client.subscribe(topic_filter, qos=1)
    if not granted.wait(DEADLINE_S):
        raise RuntimeError(f"bench mqtt: no SUBACK for {topic_filter} within {DEADLINE_S:g} s")


def baseline_payload(number: int, size: int) -> bytes:
    head = b'{"b":%d,"pad":"' % number
    return head + b"x" * max(size - len(head) - 2, 0) + b'"}'


@dataclass(frozen=True)
class LatencyPlan:
    port: int
    sock: Path  # the gateway's control socket
    events_topic: str
    baseline_topic: str
    warmup: int
    commands: int


def _staff_and_central(pipe: Connection, plan: LatencyPlan) -> None:
    """The other side of the latency run, in a process of its own as on a real floor: the staff's
    commands over the gateway's control socket (what `counterfloor office` sends), central's
    subscriber, and the bare publisher of the baseline. Sends ("done", (timed, baseline, sizes)):
    per timed command its last event's seq and arrival; per baseline message publish → arrival."""
    clients: list[paho.Client] = []
    try:
        arrivals = Arrivals(plan.events_topic, plan.baseline_topic)
        subscriber = bare_client(plan.port, "cf-bench-latency-sub")
        clients.append(subscriber)
        subscriber.on_message = arrivals.on_message
        _subscribe(subscriber, plan.events_topic)
        _subscribe(subscriber, plan.baseline_topic)
        publisher = bare_client(plan.port, "cf-bench-latency-pub")
        clients.append(publisher)
        sizes: list[int] = []
        timed: list[tuple[int, float]] = []
        baseline: list[float] = []

        def command(req: dict[str, Any]) -> tuple[int, float]:
            reply = control.ask(plan.sock, req)
            if not reply.get("ok") or not reply.get("events"):
                raise RuntimeError(f"{req} refused: {reply}")
            seq = reply["events"][-1]["seq"]
            arrivals.wait(f"event {seq}", lambda: seq in arrivals.events)
            arrived, size = arrivals.events[seq]
            sizes.append(size)
            return seq, arrived

        def bare(number: int, size: int) -> float:
            payload = baseline_payload(number, size)
            at = time.monotonic()
            publisher.publish(plan.baseline_topic, payload, qos=1)
            arrivals.wait(f"baseline message {number}", lambda: number in arrivals.baseline)
            return arrivals.baseline[number] - at

        command({"cmd": "open", "counter": "1"})
        size = {"issue": sizes[-1], "call": sizes[-1]}  # the last event's size, by command
        for i in range(plan.warmup + plan.commands):
            req = {"cmd": "issue", "service": "move"} if i % 2 == 0 else {"cmd": "call", "counter": "1"}
            # Interleaved, the order alternating: a busy machine slows both alike.
            if i % 4 < 2:
                took = command(req)
                size[req["cmd"]] = sizes[-1]
                base = bare(i, size[req["cmd"]])
            else:
                base = bare(i, size[req["cmd"]])
                took = command(req)
                size[req["cmd"]] = sizes[-1]
            if i >= plan.warmup:
                timed.append(took)
                baseline.append(base)
        pipe.send(("done", (timed, baseline, sizes)))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()


def publish_latency(workdir: Path, sockets: Path, port: int, sizes: Sizes, log: list[str]) -> list[Result]:
    config, text = office_config(cycle_ms=50)  # the example's cycle: a gateway's real pace
    office = config.id
    path = workdir / "mqtt-latency.db"
    remove_journal(path)
    sock = sockets / "latency.sock"
    events_topic = schema.topic(office, schema.EVENTS)
    # A topic of the same length as the office's, so the baseline's packets are the same size.
    plan = LatencyPlan(
        port, sock, events_topic, schema.topic("b" * len(office), schema.EVENTS), sizes.warmup, sizes.commands
    )
    tap = ClientTap(events_topic)
    stored: dict[int, float] = {}  # the last seq of each command -> when TicketJournal.execute returned
    gw = Gateway(config, text, path, sock, io.StringIO(), wall=_walking_wall(_local(10)))
    gw.start()
    try:
        # What Gateway.start does with --broker, with the client watched (ClientTap).
        link = gw.mqtt = MqttLink(
            gw, BrokerLogin(schema.BrokerAddress(False, HOST, port)), client_factory=tap.client_factory
        )
        link.start()
        journal = gw.journal
        assert journal is not None
        execute = journal.execute

        def stamped(*args: Any, **kwargs: Any) -> Any:
            decision = execute(*args, **kwargs)
            stored[journal.office.state.last_seq] = time.monotonic()  # stored: committed and applied
            return decision

        journal.execute = stamped  # type: ignore[method-assign]
        deadline = time.monotonic() + DEADLINE_S
        while not link.connected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench mqtt: the gateway did not connect: {link.last_error}")
            gw.step()
        ctx = mp.get_context("spawn")  # spawn: this process runs paho's thread, which a fork would copy
        parent, child = ctx.Pipe()
        other = ctx.Process(target=_staff_and_central, args=(child, plan), name="bench-mqtt-staff")
        other.start()
        try:
            deadline = time.monotonic() + DEADLINE_S + sizes.commands
            while not parent.poll():  # the gateway's loop, as `counterfloor gateway run` turns it
                if time.monotonic() > deadline or (not other.is_alive() and not parent.poll()):
                    raise RuntimeError(f"bench mqtt: the latency run did not finish ({other.name} {other.exitcode})")
                gw.step()
            timed, baseline, sizes_seen = _answer(other, parent, "done", DEADLINE_S)
            other.join(DEADLINE_S)
        finally:
            if other.is_alive():
                other.terminate()  # by its own handle: only what this benchmark started
                other.join(DEADLINE_S)
    finally:
        gw.close()

    handed, written = tap.handed_at(), tap.written_at()
    measured = [arrived - stored[seq] for seq, arrived in timed]
    turn = [handed[seq] - stored[seq] for seq, _ in timed]  # the rest of the gateway's turn, MqttLink.step
    paho_thread = [written[seq] - handed[seq] for seq, _ in timed]  # until paho's thread writes it
    wire = [arrived - written[seq] for seq, arrived in timed]  # the broker, the subscriber
    n = len(measured)
    results = []
    for name, p in (("p50", 50), ("p99", 99)):
        m, b = _q(measured, p), _q(baseline, p)
        results.append(
            Result(
                f"Publish latency {name}, {n} commands (stored in the journal → event at a subscriber)",
                f"{m * 1000:.2f} ms",
                f"{b * 1000:.2f} ms (bare paho publish → receive, same payload size)",
                f"{m / b:.1f}×",
                "—",
                None,
            )
        )

    def ms(values: list[float]) -> str:
        return f"p50 {_q(values, 50) * 1000:.2f} ms, p99 {_q(values, 99) * 1000:.2f} ms"

    log.append(
        f"mqtt latency: {n} commands (issue move / call counter 1, alternating; {sizes.warmup} warm-up ones not "
        f"counted) from another process over the control socket of a gateway with Nerima's config without "
        f"devices (50 ms cycle, journal synchronous=FULL), to a subscriber in that other process; stored → "
        f"arrival {ms(measured)}, max {max(measured) * 1000:.2f} ms, of which stored → handed to paho (the rest "
        f"of the gateway's turn: its reply, then MqttLink.step reads the events from the journal and encodes "
        f"them) {ms(turn)}; handed → written on the socket by paho's thread {ms(paho_thread)}; written → "
        f"arrival (the broker, the subscriber) {ms(wire)}; bare paho publish → arrival {ms(baseline)}, max "
        f"{max(baseline) * 1000:.2f} ms; payloads {min(sizes_seen)}–{max(sizes_seen)} B"
    )
    return results


# -- 3. 100 offices publishing a rush hour -------------------------------------------------------------
def busiest_hour(events: Sequence[ev.Event]) -> tuple[float, list[tuple[float, dict[str, Any]]]]:
    """The 60 minutes of the day with the most events: (its start as a Unix time, its events as
    (seconds into the hour, public record without the office))."""
    times = [e.ts.timestamp() for e in events]
    best, first = 0, 0
    for i, t in enumerate(times):
        n = bisect.bisect_left(times, t + HOUR_S) - i
        if n > best:
            best, first = n, i
    start = times[first]
    hour = [(times[i] - start, ev.public_record(events[i], "")) for i in range(first, first + best)]
    return start, hour


def office_slices(
    hour: list[tuple[float, dict[str, Any]]], offices: int, window_s: float
) -> list[tuple[str, list[tuple[float, dict[str, Any]]]]]:
    """Each office's events in the window: office i replays the hour from its own point in it
    (i / offices of the way in, going round), at the hour's own times."""
    out = []
    for i in range(offices):
        phase = HOUR_S * i / offices
        shifted = (((offset - phase) % HOUR_S, record) for offset, record in hour)
        mine = sorted(((at, record) for at, record in shifted if at < window_s), key=lambda item: item[0])
        out.append((f"bench-{i:03d}", mine))
    return out


def _cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _message(office: str, record: dict[str, Any]) -> bytes:
    return schema.encode(schema.event_message({**record, "office": office}, SESSION))


def _office_worker(pipe: Connection, port: int, offices: list[tuple[str, list[tuple[float, dict[str, Any]]]]]) -> None:
    """A publisher process: its offices as gateway-like clients, and one bare client. Commands
    from the parent: ("hour", t0, window), ("idle", t0, seconds) and ("blast", t0), each answered with
    figures; ("stop",)."""
    try:
        login = BrokerLogin(schema.BrokerAddress(False, HOST, port))
        acked = [0]
        lock = threading.Lock()
        connected = threading.Semaphore(0)

        def on_publish(c: paho.Client, u: Any, mid: int, reason: Any, p: Any) -> None:
            with lock:
                acked[0] += 1

        clients: list[paho.Client] = []
        for office, _ in offices:
            will = (schema.topic(office, schema.GATEWAY), schema.death(office, SESSION))
            client = make_client(login, f"counterfloor-gw-{office}", will)
            client.max_inflight_messages_set(2 * WINDOW)  # as MqttLink sets them
            client.max_queued_messages_set(CLIENT_QUEUE_MAX)
            client.on_publish = on_publish
            client.on_connect = lambda c, u, f, reason, p: connected.release()
            client.connect(HOST, port, keepalive=15)
            client.loop_start()  # a network thread per office, as each gateway has
            clients.append(client)
        for _ in clients:
            if not connected.acquire(timeout=DEADLINE_S):
                raise RuntimeError("an office's client got no CONNACK")
        for (office, _), client in zip(offices, clients, strict=True):
            birth = schema.birth(office, SESSION, 0, ev.format_ts(datetime.now().astimezone()), "bench")
            client.publish(schema.topic(office, schema.GATEWAY), schema.encode(birth), qos=1, retain=True)
        bare = bare_client(port, f"cf-bench-bare-{os.getpid()}")
        bare.on_publish = on_publish
        # The bare client's messages: the very same ones, encoded beforehand, in time order.
        blast = sorted(
            (
                (at, schema.topic(office, schema.EVENTS), _message(office, record))
                for office, events in offices
                for at, record in events
            ),
            key=lambda item: item[0],
        )
        _wait_acked(acked, lock, len(offices))  # the births
        pipe.send(("ready", None))
        while True:
            order = pipe.recv()
            if order[0] == "stop":
                break
            with lock:
                acked[0] = 0
            if order[0] == "hour":
                pipe.send(("hour", _publish_hour(offices, clients, order[1], order[2], acked, lock)))
            elif order[0] == "idle":
                _sleep_until(order[1])
                cpu = time.process_time()
                _sleep_until(order[1] + order[2])
                pipe.send(("idle", time.process_time() - cpu))
            elif order[0] == "blast":
                _sleep_until(order[1])
                cpu = time.process_time()
                for _, topic, payload in blast:
                    bare.publish(topic, payload, qos=1)
                _wait_acked(acked, lock, len(blast))
                pipe.send(("blast", (time.process_time() - cpu, time.monotonic() - order[1], len(blast))))
        for client in [*clients, bare]:
            client.disconnect()
            client.loop_stop()
    except BaseException:
        pipe.send(("error", traceback.format_exc()))


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(left)


def _wait_acked(acked: list[int], lock: threading.Lock, count: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        with lock:
            if acked[0] >= count:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{acked[0]} of {count} messages acknowledged within {DEADLINE_S:g} s")
        time.sleep(0.001)  # polled: the PUBACKs come on 25 paho threads; bounded by the deadline


def _publish_hour(
    offices: list[tuple[str, list[tuple[float, dict[str, Any]]]]],
    clients: list[paho.Client],
    t0: float,
    window: float,
    acked: list[int],
    lock: threading.Lock,
) -> tuple[float, float, int, list[float]]:
    """Every office's events at their times from t0 (this thread sleeps between them, as a
    gateway's loop waits on its bus); each payload built when it is published, as the gateway
    builds it. The process's CPU (all threads) from t0 until the last PUBACK, that span, how many
    were published and how late each went."""
    due = [(at, i, k) for i, (_, events) in enumerate(offices) for k, (at, _) in enumerate(events)]
    heapq.heapify(due)
    topics = [schema.topic(office, schema.EVENTS) for office, _ in offices]
    late: list[float] = []
    _sleep_until(t0)
    cpu = time.process_time()
    while due:
        at, i, k = heapq.heappop(due)
        _sleep_until(t0 + at)
        late.append(time.monotonic() - t0 - at)
        office, events = offices[i]
        clients[i].publish(topics[i], _message(office, events[k][1]), qos=1)
    _sleep_until(t0 + window)  # the idle end of the window costs too (keepalives, the threads' wake-ups)
    _wait_acked(acked, lock, len(late))
    return time.process_time() - cpu, time.monotonic() - t0, len(late), late


class Counting:
    """The central subscriber: counts the events of every office and when the last came."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.changed = threading.Condition()

    def on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        at = time.monotonic()
        with self.changed:
            self.count += 1
            self.last = at
            self.changed.notify_all()

    def reset(self) -> None:
        with self.changed:
            self.count, self.last = 0, 0.0

    def wait_for(self, count: int, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.count >= count, timeout):
                raise RuntimeError(f"bench mqtt: the subscriber got {self.count} of {count} messages")


def hundred_offices(
    port: int, broker_pid: int, events: Sequence[ev.Event], sizes: Sizes, log: list[str]
) -> list[Result]:
    start, hour = busiest_hour(events)
    slices = office_slices(hour, OFFICES, sizes.window_s)
    total = sum(len(s) for _, s in slices)
    if total == 0:
        raise RuntimeError("bench mqtt: no events in the offices' window")
    central = Counting()
    subscriber = bare_client(port, "cf-bench-central")
    subscriber.on_message = central.on_message
    _subscribe(subscriber, f"{schema.ROOT}/+/{schema.EVENTS}")
    # spawn, not fork: this process runs paho threads (the subscriber's), which a fork would copy mid-lock.
    ctx = mp.get_context("spawn")
    workers: list[tuple[mp.process.BaseProcess, Connection]] = []
    # (seconds to the last arrival, broker CPU s, publishers' CPU s, this process's (the subscriber's) CPU s)
    blasts: list[tuple[float, float, float, float]] = []
    try:
        for w in range(sizes.processes):
            parent, child = ctx.Pipe()
            worker = ctx.Process(
                target=_office_worker, args=(child, port, slices[w :: sizes.processes]), name=f"bench-mqtt-{w}"
            )
            worker.start()
            workers.append((worker, parent))
        for proc, pipe in workers:
            _answer(proc, pipe, "ready", DEADLINE_S)

        def blast() -> None:
            central.reset()
            t0 = time.monotonic() + 0.2
            for _, pipe in workers:
                pipe.send(("blast", t0))
            _sleep_until(t0)
            broker0, own0 = _cpu_seconds(broker_pid), time.process_time()
            central.wait_for(total, DEADLINE_S)
            took = central.last - t0
            broker, own = _cpu_seconds(broker_pid) - broker0, time.process_time() - own0
            cpu = sum(_answer(proc, pipe, "blast", DEADLINE_S)[0] for proc, pipe in workers)
            blasts.append((took, broker, cpu, own))

        for _ in range(sizes.rounds_before):
            blast()
        # The offices connected and quiet: what 100 clients cost before they publish anything.
        t0 = time.monotonic() + 0.2
        for _, pipe in workers:
            pipe.send(("idle", t0, sizes.idle_s))
        _sleep_until(t0)
        broker0 = _cpu_seconds(broker_pid)
        idle_cpu = sum(_answer(proc, pipe, "idle", sizes.idle_s + DEADLINE_S) for proc, pipe in workers)
        idle_broker = _cpu_seconds(broker_pid) - broker0
        idle_span = time.monotonic() - t0
        central.reset()
        t0 = time.monotonic() + 0.5
        for _, pipe in workers:
            pipe.send(("hour", t0, sizes.window_s))
        _sleep_until(t0)
        broker0 = _cpu_seconds(broker_pid)
        central.wait_for(total, sizes.window_s + DEADLINE_S)
        answers = [_answer(proc, pipe, "hour", sizes.window_s + DEADLINE_S) for proc, pipe in workers]
        broker_cpu = _cpu_seconds(broker_pid) - broker0
        broker_span = time.monotonic() - t0
        for _ in range(sizes.rounds_after):
            blast()
        for _, pipe in workers:
            pipe.send(("stop",))
        for proc, _ in workers:
            proc.join(DEADLINE_S)
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.terminate()  # by its own handle: only what this benchmark started
                proc.join(DEADLINE_S)
        subscriber.disconnect()
        subscriber.loop_stop()

    cpu = sum(a[0] for a in answers)
    span = statistics.fmean(a[1] for a in answers)  # the window, and the last PUBACKs after it
    published = sum(a[2] for a in answers)
    late = sorted(x for a in answers for x in a[3])
    window = sizes.window_s
    per_office_hour = cpu / OFFICES * HOUR_S / span
    rate = total / window
    bare_took = statistics.median(b[0] for b in blasts)
    bare_rate = total / bare_took
    bare_broker_per_msg = statistics.median(b[1] / total for b in blasts)
    bare_cpu_per_msg = statistics.median(b[2] / total for b in blasts)
    per_office_msgs = total / OFFICES * HOUR_S / window  # one office's messages in an hour
    bare_office_hour = bare_cpu_per_msg * per_office_msgs
    broker_per_msg = broker_cpu / total
    results = [
        Result(
            f"{OFFICES} offices' rush hour: publishers' CPU per office per hour ({window:g} s of it)",
            f"{per_office_hour:.2f} s",
            f"{bare_office_hour:.3f} s (bare paho, the same messages as fast as possible)",
            f"{per_office_hour / bare_office_hour:.1f}×",
            "—",
            None,
        ),
        Result(
            f"{OFFICES} offices' rush hour: broker's message rate",
            f"{rate:,.1f} msg/s in, the same out",
            f"{bare_rate:,.0f} msg/s (Mosquitto's own rate, bare paho, the same {total:,} messages)",
            f"{rate / bare_rate:.4f}",
            "—",
            None,
        ),
        Result(
            f"{OFFICES} offices' rush hour: broker's CPU",
            f"{broker_cpu / broker_span * 100:.2f} % of a core ({broker_per_msg * 1e6:,.0f} µs per message)",
            f"{bare_broker_per_msg * 1e6:,.0f} µs per message (as fast as possible)",
            f"{broker_per_msg / bare_broker_per_msg:.1f}× per message" if bare_broker_per_msg else "—",
            "—",
            None,
        ),
    ]
    log.append(
        f"mqtt offices: the busiest hour of the rush day starts "
        f"{datetime.fromtimestamp(start, _local(0).tzinfo):%H:%M:%S} "
        f"({len(hour):,} events: {len(hour) / HOUR_S:.2f}/s per office); {OFFICES} offices in {sizes.processes} "
        f"processes, each from its own point in that hour, {window:g} s of real time: {published:,} events "
        f"published ({rate:,.1f}/s), {total:,} delivered to the central subscriber; publishing late by p50 "
        f"{_q(late, 50) * 1000:.1f} ms, p99 {_q(late, 99) * 1000:.1f} ms, max {late[-1] * 1000:.1f} ms; publishers' "
        f"CPU {cpu:.2f} s over {span:.1f} s ({cpu / span * 100:.1f} % of a core for {OFFICES} offices, "
        f"{cpu / published * 1e6:,.0f} µs per message, idle wake-ups and keepalives included); broker CPU "
        f"{broker_cpu:.2f} s; the same clients connected and quiet for {sizes.idle_s:g} s: publishers "
        f"{idle_cpu / OFFICES * HOUR_S / sizes.idle_s:.2f} s CPU per office per hour, broker "
        f"{idle_broker / idle_span * 100:.2f} % of a core; so each message cost the publishers "
        f"~{max(cpu - idle_cpu * span / sizes.idle_s, 0.0) / published * 1e6:,.0f} µs beyond the quiet clients' cost"
    )
    log.append(
        f"mqtt bare paho: {len(blasts)} round(s) ({sizes.rounds_before} before the hour, {sizes.rounds_after} after) "
        f"of the same {total:,} messages from {sizes.processes} clients ({BARE_INFLIGHT} in flight each) to the same "
        f"subscriber: "
        + "; ".join(
            f"{total / took:,.0f} msg/s, broker {broker / took * 100:.0f} % of a core, "
            f"publishers {pub / took * 100:.0f} %, subscriber {own / took * 100:.0f} %"
            for took, broker, pub, own in blasts
        )
        + _capacity(broker_per_msg, bare_broker_per_msg, len(hour) / HOUR_S)
    )
    return results


def _capacity(paced: float, batched: float, office_rate: float) -> str:
    """What one core of this machine would carry, at the broker's CPU per message measured paced
    (each message on its own wake-up) and as fast as possible (many per wake-up)."""
    if not paced or not batched:
        return ""
    return (
        f"; one core of the broker at its CPU per message paced passes ~{1 / paced:,.0f} msg/s "
        f"(~{1 / paced / office_rate:,.0f} offices' rush hours), as fast as possible ~{1 / batched:,.0f} msg/s "
        f"(~{1 / batched / office_rate:,.0f}): an extrapolation, not measured"
    )


def _q(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def _answer(proc: mp.process.BaseProcess, pipe: Connection, kind: str, timeout: float) -> Any:
    if not pipe.poll(timeout):
        raise RuntimeError(f"bench mqtt: {proc.name} did not answer {kind!r} within {timeout:g} s")
    try:
        got, value = pipe.recv()
    except EOFError:
        proc.join(DEADLINE_S)
        raise RuntimeError(f"bench mqtt: {proc.name} exited ({proc.exitcode}) without answering {kind!r}") from None
    if got == "error":
        raise RuntimeError(f"bench mqtt: {proc.name} failed:\n{value}")
    if got != kind:
        raise RuntimeError(f"bench mqtt: {proc.name} answered {got!r}, not {kind!r}")
    return value
