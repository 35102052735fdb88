"""The gateway on a real Mosquitto (issue 13, gateway/mqtt_link.py): every event in order and no
gap, through a broker outage while the floor keeps working; the retained picture (birth,
snapshot, mode, devices) for a late subscriber; sessions, the last will and the clean death;
replay and rebirth; commands with acks, a retried id carried out once, fuzzed payloads.

The gateway runs in the test's thread on a held monotonic clock (the back-off and every
interval move only when a test moves it); Mosquitto and the test's own clients are real. Every
wait steps the gateway until a condition holds, bounded by a real-time deadline: no sleeps."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import control, service
from gateway.device_link import LinkState
from gateway.journal import JournalReader, TicketJournal
from gateway.mqtt_link import MARK_KEY, SESSION_KEY, SNAPSHOT_EVERY_S, WINDOW, MqttLink, command_id
from hal.codec import P
from office import events as ev
from office import model as m
from office import mqtt as schema
from office.config import parse_config
from tests.conftest import EXAMPLES, ROOT, tokyo
from tests.floor_support import HeldClock, floor_without_devices, held_gateway, running_gateway
from tests.mqtt_support import MosquittoBroker, TestClient, connect, plain_mosquitto, secure_mosquitto_in

pytestmark = pytest.mark.slow
SAFETY_S = 20.0  # a bound on waits that take a few steps when the code is right
OFFICE = "oizumi"
TOPIC = {kind: schema.topic(OFFICE, kind) for kind in ("gateway", "events", "snapshot", "mode", "cmd", "ack")}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with plain_mosquitto(tmp_path / "mosquitto") as b:
        yield b


# -- what a subscriber holds ---------------------------------------------------------------------------
@dataclass
class View:
    """Everything one subscriber of the office received, as a consumer keeps it: events by seq
    (deduplicated, the order of first arrival kept), the retained topics' latest, the acks."""

    client: TestClient
    arrivals: list[int] = field(default_factory=list)  # every event's seq as it came, repeats too
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    latest: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # by topic
    births: list[dict[str, Any]] = field(default_factory=list)
    deaths: list[dict[str, Any]] = field(default_factory=list)
    acks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    raw: list[bytes] = field(default_factory=list)

    def take(self, wait: float = 0.0) -> None:
        """What has arrived; with `wait`, first waits up to that long for one message."""
        while True:
            try:
                msg = self.client.messages.get(timeout=wait) if wait > 0 else self.client.messages.get_nowait()
            except queue.Empty:
                return
            wait = 0.0
            if msg.topic == TOPIC["cmd"]:
                continue  # the test's own commands
            self.raw.append(msg.payload)
            payload = json.loads(msg.payload) if msg.payload else None
            if msg.topic == TOPIC["events"]:
                assert payload is not None
                self.arrivals.append(payload["seq"])
                self.events.setdefault(payload["seq"], payload)
            elif msg.topic == TOPIC["ack"]:
                assert payload is not None
                self.acks.setdefault(payload["id"], []).append(payload)
            else:
                self.latest[msg.topic] = payload
                if msg.topic == TOPIC["gateway"] and payload is not None:
                    (self.births if payload["state"] == "online" else self.deaths).append(payload)

    @property
    def seqs(self) -> list[int]:
        return sorted(self.events)

    def snapshot(self) -> dict[str, Any] | None:
        return self.latest.get(TOPIC["snapshot"])


def subscribe(port: int) -> View:
    client = connect(port)
    client.subscribe(schema.office_filter(OFFICE), qos=1)
    return View(client)


@dataclass
class Floor:
    gw: service.Gateway
    clock: HeldClock
    views: list[View] = field(default_factory=list)

    @property
    def link(self) -> MqttLink:
        assert self.gw.mqtt is not None
        return self.gw.mqtt

    @property
    def journal(self) -> TicketJournal:
        assert self.gw.journal is not None
        return self.gw.journal

    @property
    def last_seq(self) -> int:
        return self.journal.office.state.last_seq

    def until(self, what: str, cond: Callable[[], bool]) -> None:
        deadline = time.monotonic() + SAFETY_S
        while True:
            for view in self.views:
                view.take()
            if cond():
                return
            assert time.monotonic() < deadline, f"not within {SAFETY_S} s: {what}"
            self.gw.step()

    def do(self, cmd: str, **fields: Any) -> dict[str, Any]:
        reply = self.gw.handle({"cmd": cmd, **fields})
        assert reply["ok"], reply
        return reply

    def busy_minute(self, tickets: int) -> None:
        """Tickets issued and called across the open counters, as on a busy floor."""
        for i in range(tickets):
            self.do("issue", service=("move", "seal", "certificate")[i % 3])
            if i % 2:
                self.do("call", counter="1")
            self.clock.t += 1.0

    def public_records(self) -> dict[int, dict[str, Any]]:
        return {e.seq: ev.public_record(e, OFFICE) for e in self.journal.events_after(0, 100_000)}

    def seen_all(self, view: View) -> bool:
        return view.seqs == list(range(1, self.last_seq + 1))


def start_floor(tmp_path: Path, port: int, journal: Path | None = None, broker_lines: str = "") -> Floor:
    config, text = floor_without_devices(tmp_path, f"cycle_ms = 2\n{broker_lines}")
    clock = HeldClock()
    opening = tokyo(2027, 3, 15, 10, 0) - timedelta(seconds=clock.t)  # Monday 10:00: open
    gw = service.Gateway(
        config,
        text,
        journal or tmp_path / "j.db",
        tmp_path / "j.sock",
        io.StringIO(),
        clock=clock,
        wall=lambda: opening + timedelta(seconds=clock.t),
        broker_url=None if broker_lines else f"mqtt://127.0.0.1:{port}",
    )
    gw.start()
    return Floor(gw, clock)


@pytest.fixture
def floor(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Floor]:
    f = start_floor(tmp_path, broker.port)
    try:
        yield f
    finally:
        f.gw.close()
        for view in f.views:
            view.client.close()


def cut(f: Floor) -> None:
    """The gateway's connection cut without a DISCONNECT, as by a pulled cable or a broker that
    drops it: paho's thread sees it closed; the broker publishes the last will."""
    conn = f.link._conn
    sock = conn.client.socket() if conn is not None else None
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)


def send(client: TestClient, payload: dict[str, Any] | bytes, retain: bool = False) -> None:
    data = payload if isinstance(payload, bytes) else schema.encode(payload)
    client.publish(TOPIC["cmd"], data, qos=1, retain=retain)


def cmd(request: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": request, "office": OFFICE, "cmd": name, **fields}


def answer(f: Floor, view: View, request: str, count: int = 1) -> dict[str, Any]:
    f.until(f"ack {request}", lambda: len(view.acks.get(request, [])) >= count)
    return view.acks[request][count - 1]


# -- the stream --------------------------------------------------------------------------------------
def test_a_subscriber_sees_every_event_in_order_and_the_retained_birth_and_snapshot(
    broker: MosquittoBroker, floor: Floor
) -> None:
    view = subscribe(broker.port)
    floor.views.append(view)
    floor.until("connected", lambda: floor.link.connected)
    floor.do("open", counter="1")
    floor.busy_minute(30)
    floor.until("every event", lambda: floor.seen_all(view))
    assert view.arrivals == list(range(1, floor.last_seq + 1))  # in order, each once
    records = floor.public_records()
    for seq, payload in view.events.items():
        assert payload == {**records[seq], "session": 1}
    assert not any(b'"token"' in raw for raw in view.raw)  # the resident's token never leaves
    birth = view.births[-1]
    assert (birth["state"], birth["session"], birth["office"]) == ("online", 1, OFFICE)
    # The snapshot follows the queue at most every SNAPSHOT_EVERY_S, with the seq it is current to.
    floor.clock.t += SNAPSHOT_EVERY_S
    floor.until("snapshot", lambda: (view.snapshot() or {}).get("seq") == floor.last_seq)
    snapshot = view.snapshot()
    assert snapshot is not None
    assert snapshot["queue"] == schema.snapshot_queue(
        control.queue_json(floor.journal.office.state, floor.journal.office.config)
    )
    # Acknowledged by the broker, the mark follows; it is stored in batches (and at the stop).
    floor.until("mark", lambda: floor.link.mark == floor.last_seq)
    last = floor.last_seq
    floor.gw.close()
    with TicketJournal.open(floor.gw.journal_file) as journal:
        assert (journal.get_meta(MARK_KEY), journal.get_meta(SESSION_KEY)) == (str(last), "1")


def test_the_broker_down_the_floor_keeps_working_and_the_subscriber_catches_up_with_no_gap(
    tmp_path: Path, broker: MosquittoBroker, floor: Floor
) -> None:
    view = subscribe(broker.port)
    floor.views.append(view)
    floor.until("connected", lambda: floor.link.connected)
    floor.do("open", counter="1")
    floor.do("open", counter="2")
    floor.busy_minute(10)
    floor.until("before the outage", lambda: floor.seen_all(view))

    broker.stop()  # a real stop: the connection drops
    floor.until("the loss noticed", lambda: not floor.link.connected and floor.link.next_attempt is not None)
    due = floor.link.next_attempt
    assert due is not None
    delays = [due - floor.clock.t]
    # The floor keeps issuing and calling; nothing waits on the broker.
    floor.busy_minute(40)
    floor.do("call", counter="2")
    # Attempts while it is down fail and the back-off doubles (on the held clock).
    for _ in range(2):
        attempts = floor.link.attempts
        floor.clock.t = max(floor.clock.t, due)

        def refused(a: int = attempts) -> bool:
            return floor.link.attempts == a + 1 and floor.link.next_attempt is not None

        floor.until("an attempt refused", refused)
        due = floor.link.next_attempt
        assert due is not None
        delays.append(due - floor.clock.t)
    backoff = floor.link.backoff
    for k, delay in enumerate(delays):  # doubling; the jitter takes up to half off
        assert backoff.first * 2**k * (1 - backoff.jitter) <= delay <= backoff.first * 2**k

    broker.start()  # the same port and persistence
    view.client.close()
    view.client = connect(broker.port)  # the subscriber comes back (its own session was not kept)
    view.client.subscribe(schema.office_filter(OFFICE), qos=1)
    before = floor.link.attempts
    outage_end = time.monotonic()
    for _ in range(2):
        due = floor.link.next_attempt
        assert due is not None
        floor.clock.t = max(floor.clock.t, due)
        attempts = floor.link.attempts

        def outcome(a: int = attempts) -> bool:
            return floor.link.connected or (floor.link.attempts == a + 1 and floor.link.next_attempt is not None)

        floor.until("the attempt's outcome", outcome)
        if floor.link.connected:
            break
    assert floor.link.connected and floor.link.attempts - before <= 2
    floor.until("caught up", lambda: floor.seen_all(view))
    floor.until("snapshot current", lambda: (view.snapshot() or {}).get("seq") == floor.last_seq)
    catch_up = time.monotonic() - outage_end
    assert catch_up < SAFETY_S
    state, config = floor.journal.office.state, floor.journal.office.config
    snapshot = view.snapshot()
    assert snapshot is not None and snapshot["queue"] == schema.snapshot_queue(control.queue_json(state, config))
    records = floor.public_records()
    assert {s: {k: v for k, v in p.items() if k != "session"} for s, p in view.events.items()} == records
    assert view.births[-1]["session"] == floor.link.session


def test_a_late_subscriber_gets_the_whole_retained_picture_at_once(
    tmp_path: Path, broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oizumi example's simulated bus and printer: devices on the broker with their state."""
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")  # the pure-Python simulated devices
    config_path = EXAMPLES / "oizumi.toml"
    text = config_path.read_text(encoding="utf-8")
    config = parse_config(text, source=str(config_path))
    gw = running_gateway(tmp_path, config, text, broker_url=f"mqtt://127.0.0.1:{broker.port}")
    gw.start()
    try:
        # Before the first connection: the snapshot published at the connection has it.
        assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
        links = [link for bus in gw.buses for link in bus.master.links]
        deadline = time.monotonic() + SAFETY_S
        while not (gw.mqtt and gw.mqtt.connected and all(link.state is LinkState.ONLINE for link in links)):
            assert time.monotonic() < deadline, "devices online and the broker connected"
            gw.step()
        expected = {"0-1", "0-5", "0-6", "0-7", "0-8", "0-16", "printer-entrance"}
        # Devices go out on change (looked at every second): then a late subscriber finds the
        # whole picture retained, before anything else arrives.
        last = gw.journal.office.state.last_seq if gw.journal else 0
        while True:
            assert time.monotonic() < deadline, "device states online and the snapshot current on the broker"
            gw.step()
            late = connect(broker.port)
            late.subscribe(schema.office_filter(OFFICE), qos=1)
            late.subscribe("test/marker", qos=1)
            late.publish("test/marker", b"end", qos=1)
            retained = {m.topic: json.loads(m.payload) for m in late.until_marker("test/marker", b"end")}
            late.close()
            devices = {t.rsplit("/", 1)[1]: p for t, p in retained.items() if "/devices/" in t}
            online = set(devices) == expected and all(d["state"] == "online" for d in devices.values())
            if online and retained.get(TOPIC["snapshot"], {}).get("seq") == last:
                break
        assert retained[TOPIC["gateway"]]["state"] == "online"
        assert retained[TOPIC["mode"]]["mode"] == "office" and "move" in retained[TOPIC["mode"]]["services"]
        assert retained[TOPIC["snapshot"]]["queue"]["services"]["move"] == ["A-001"]
        dispenser = devices["0-1"]
        assert dispenser["kind"] == "dispenser" and dispenser["firmware"] is not None
        assert dispenser["last_seen"] is not None and dispenser["addr"] == 1
        assert devices["printer-entrance"]["kind"] == "printer"
    finally:
        gw.close()


def test_the_window_bounds_what_is_in_flight(broker: MosquittoBroker, floor: Floor) -> None:
    floor.do("open", counter="1")
    floor.busy_minute(3 * WINDOW // 2)  # before the first connection: a backlog
    view = subscribe(broker.port)
    floor.views.append(view)
    peak = 0
    deadline = time.monotonic() + SAFETY_S
    while not floor.seen_all(view):
        assert time.monotonic() < deadline
        floor.gw.step()
        view.take()
        conn = floor.link._conn
        peak = max(peak, len(conn.inflight) if conn else 0)
    assert 0 < peak <= WINDOW
    assert view.arrivals == list(range(1, floor.last_seq + 1))


# -- sessions ---------------------------------------------------------------------------------------
def test_a_lost_connection_fires_the_will_the_next_session_is_born_and_a_clean_stop_says_offline(
    tmp_path: Path, broker: MosquittoBroker, floor: Floor
) -> None:
    view = subscribe(broker.port)
    floor.views.append(view)
    floor.until("born", lambda: len(view.births) == 1)
    cut(floor)  # the network goes: the broker fires the will
    floor.until("the will, the loss noticed", lambda: len(view.deaths) == 1 and floor.link.next_attempt is not None)
    assert view.deaths[0] == {"v": 1, "office": OFFICE, "state": "offline", "session": 1}
    due = floor.link.next_attempt
    assert due is not None
    floor.clock.t = due
    floor.until("born again", lambda: len(view.births) == 2)
    assert view.births[1]["session"] == 2
    # A late death of the old session retained over the birth (the broker's late will): born again.
    fake = connect(broker.port)
    fake.publish(TOPIC["gateway"], schema.encode(schema.death(OFFICE, 1)), qos=1, retain=True)
    fake.close()
    floor.until("born over the late death", lambda: len(view.births) == 3)
    floor.gw.close()
    floor.until("the clean death", lambda: len(view.deaths) == 3)
    assert view.deaths[-1]["session"] == 2
    late = connect(broker.port)
    late.subscribe(TOPIC["gateway"], qos=1)
    assert json.loads(late.expect(TOPIC["gateway"]).payload)["state"] == "offline"
    late.close()
    restarted = start_floor(tmp_path, broker.port)
    try:
        restarted.views.append(view)
        restarted.until("session 3", lambda: len(view.births) == 4)
        assert view.births[-1]["session"] == 3
    finally:
        restarted.gw.close()


def test_publishing_resumes_from_the_mark_after_a_restart(tmp_path: Path, broker: MosquittoBroker) -> None:
    f = start_floor(tmp_path, broker.port)
    view = subscribe(broker.port)
    f.views.append(view)
    f.do("open", counter="1")
    f.busy_minute(5)
    f.until("published", lambda: f.seen_all(view) and f.link.mark == f.last_seq)
    first = f.last_seq
    f.gw.close()
    f = start_floor(tmp_path, broker.port)
    try:
        f.views.append(view)
        f.busy_minute(5)
        f.until("the rest", lambda: f.seen_all(view))
        assert view.arrivals == list(range(1, f.last_seq + 1))  # nothing again: the mark was stored
        assert first < f.last_seq
    finally:
        f.gw.close()
        view.client.close()


def test_a_gateway_killed_while_publishing_loses_and_doubles_nothing_after_dedupe(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """`counterfloor gateway run --broker` as a real process, SIGKILLed and started again."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8").split("\n[gateway]")[0]
    config = tmp_path / "oizumi.toml"
    config.write_text(text + '\n[gateway]\njournal = "journal.db"\n', encoding="utf-8")
    journal = tmp_path / "journal.db"
    view = subscribe(broker.port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERFLOOR_")}
    cli = [sys.executable, "-m", "counterfloor.cli"]

    broker_args = ["--run-for", "120", "--broker", f"mqtt://127.0.0.1:{broker.port}"]

    def run() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*cli, "gateway", "run", "--config", str(config), "--clock-from", "2027-03-15T10:00", *broker_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("ready ") and f"broker=mqtt://127.0.0.1:{broker.port}" in ready, ready
        return proc

    def burst(n: int) -> None:
        sock = journal.with_name("journal.db.sock")
        for i in range(n):
            service = ("move", "seal", "certificate", "payment")[i % 4]  # none past its cut-off
            reply = control.ask(sock, {"cmd": "issue", "service": service, "id": control.new_request_id()})
            assert reply["ok"] and not reply["refused"], reply

    def until(what: str, cond: Callable[[], bool]) -> None:
        deadline = time.monotonic() + SAFETY_S
        view.take()
        while not cond():
            assert time.monotonic() < deadline, what
            view.take(wait=deadline - time.monotonic())

    proc = run()
    try:
        burst(40)
        proc.send_signal(signal.SIGKILL)  # mid-stream, most likely
        proc.wait(SAFETY_S)
        until("the will", lambda: bool(view.deaths))
        proc = run()
        burst(10)
        shown = control.ask(journal.with_name("journal.db.sock"), {"cmd": "show", "json": True})
        last = shown["state"]["last_seq"]
        assert last == 51  # 50 tickets and the day's schedule
        until("every event", lambda: view.seqs == list(range(1, last + 1)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(SAFETY_S)
        view.client.close()
    assert view.deaths[0]["session"] == 1 and view.births[-1]["session"] == 2
    with JournalReader(journal) as reader:
        assert reader.meta[SESSION_KEY] == "2" and reader.meta[MARK_KEY] == str(last)  # the clean stop stored it


# -- commands ---------------------------------------------------------------------------------------
def test_commands_are_answered_and_a_retried_id_is_carried_out_once(broker: MosquittoBroker, floor: Floor) -> None:
    view = subscribe(broker.port)
    floor.views.append(view)
    floor.until("born (commands are taken from the birth on)", lambda: bool(view.births))
    c = view.client
    send(c, cmd("o1", "open", counter="1"))
    first = answer(floor, view, "o1")
    assert first["ok"] and first["output"] == "counter 1 open, calling move > seal\n"
    seq = floor.last_seq
    send(c, cmd("o1", "open", counter="1"))  # the same id again: answered, not redone
    again = answer(floor, view, "o1", 2)
    assert again == {**first, "repeated": True} and floor.last_seq == seq
    send(c, {**cmd("p1", "pause", counter="1"), "by": "sato@facilities"})
    assert answer(floor, view, "p1")["ok"]
    send(c, cmd("p2", "pause", counter="1"))  # refused by the office: an error naming it
    refused = answer(floor, view, "p2")
    assert not refused["ok"] and refused["kind"] == "refused" and "paused" in refused["error"]
    # Each command that may change something is audited in the journal once, carried out or not,
    # with who sent it (unknown over MQTT 3.1.1); a malformed one is not (it changed nothing).
    assert (audits(floor, "o1"), audits(floor, "p1"), audits(floor, "p2")) == ([True], [True], [False])
    (refusal,) = [
        e for e in floor.gw.journal.events_after(0, 10**6) if isinstance(e, ev.RemoteCommand) and e.id == "p2"
    ]  # type: ignore[union-attr]
    assert refusal.cmd == "pause" and refusal.sender is None and "paused" in str(refusal.error)
    (paused,) = [e for e in floor.journal.events_after(0, 10**6) if isinstance(e, ev.RemoteCommand) and e.id == "p1"]
    assert paused.sender == "sato@facilities"  # the command's "by": who central acted for
    send(c, cmd("u1", "dance"))
    assert answer(floor, view, "u1")["error"].startswith("unknown command 'dance'")
    assert audits(floor, "u1") == []
    send(c, cmd("m1", "open"))
    assert answer(floor, view, "m1")["error"] == "open: 'counter' is missing"
    send(c, {**cmd("n1", "open", counter="1"), "office": "nerima"})
    assert answer(floor, view, "n1")["error"] == "command for office 'nerima' sent to 'oizumi'"
    send(c, b'{"v":1,"id":"big1","office":"oizumi","cmd":"open","counter":"' + b"x" * schema.MAX_PAYLOAD + b'"}')
    assert "over the 262144 byte limit" in answer(floor, view, "big1")["error"]
    send(c, cmd("x1", "restart_device", device="0-1"))
    assert answer(floor, view, "x1") == {
        "v": 1,
        "office": OFFICE,
        "id": "x1",
        "ok": False,
        "code": "unknown_device",
        "error": "no device '0-1' (ids are <bus>-<addr>, docs/mqtt.md)",
    }
    send(c, cmd("r1", "reprint", ticket="A-001"))
    assert "no printers" in answer(floor, view, "r1")["error"]
    # No usable id: dropped; the marker's answer shows it was read (in order) and not answered.
    acks = sum(len(a) for a in view.acks.values())
    send(c, b"not json")
    send(c, b'{"id": "", "cmd": "open"}')
    send(c, cmd("mark", "rebirth"))
    assert answer(floor, view, "mark")["ok"]
    assert sum(len(a) for a in view.acks.values()) == acks + 1
    # A retained command runs once, live, never again at a later connection.
    send(c, cmd("ret1", "close", counter="1"), retain=True)
    assert answer(floor, view, "ret1")["ok"]
    seq = floor.last_seq
    session = floor.link.session
    cut(floor)
    floor.until("lost", lambda: not floor.link.connected)
    floor.clock.t = floor.link.next_attempt or floor.clock.t  # the reconnect's back-off over
    floor.until("born again", lambda: view.births[-1]["session"] == session + 1)
    send(c, cmd("mark2", "rebirth"))
    answer(floor, view, "mark2")
    assert len(view.acks["ret1"]) == 1 and floor.last_seq == seq
    c.publish(TOPIC["cmd"], b"", qos=1, retain=True)  # cleared


def test_restart_device_is_acked_once_the_device_acked_and_it_comes_back_restarted(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """restart_device on the real broker: the gateway queues RESTART on the display's link and
    answers nothing until the device ACKed it (the floor's loop never waits); the ack then says
    `restarting`, the audit is stored once, and the device's retained state shows it back with
    reset cause 4 (software). An unknown device is an error ack (offline and no ACK: test_maintenance,
    on a clock that moves: this one is held, and a silent device's time-out would never come)."""
    lines = (
        'port = "sim://bus?call_display=16&backend=python"\ncycle_ms = 2\n\n'
        '[[devices]]\nkind = "call_display"\naddr = 16\n'
    )
    config, text = floor_without_devices(tmp_path, lines)
    gw, clock = held_gateway(tmp_path, config, text, broker_url=f"mqtt://127.0.0.1:{broker.port}")
    gw.start()
    f = Floor(gw, clock)
    view = subscribe(broker.port)
    f.views.append(view)
    try:
        link = gw.buses[0].master.by_addr[16]
        sim = gw.buses[0].connection.port.bus.devices[16]  # type: ignore[union-attr]
        f.until("born, and the display online", lambda: bool(view.births) and link.state.value == "online")
        boot = link.boot
        send(view.client, cmd("rs1", "restart_device", device="0-16"))
        ack = answer(f, view, "rs1")
        assert ack == {"v": 1, "office": OFFICE, "id": "rs1", "ok": True, "state": "restarting"}
        assert sim.restarts == 1
        assert audits(f, "rs1") == [True]
        device_topic = schema.topic(OFFICE, schema.DEVICES, "0-16")

        def back() -> bool:
            clock.t += 0.25  # device states go out when looked at, every DEVICE_CHECK_S of the gateway's clock
            state = view.latest.get(device_topic) or {}
            return state.get("reset_cause") == P.RESET_SOFT and state.get("state") == "online"

        f.until("the display back after a software reset", back)
        assert link.boot == boot + 1
        state = view.latest[device_topic]
        assert state is not None and state["maintenance"]["job"] == "restart"
        send(view.client, cmd("rs1", "restart_device", device="0-16"))  # a retried id: the answer again
        assert answer(f, view, "rs1", 2)["state"] == "restarting" and sim.restarts == 1
        send(view.client, cmd("rs2", "restart_device", device="0-3"))
        assert answer(f, view, "rs2")["code"] == "unknown_device"
    finally:
        gw.close()
        view.client.close()


def test_set_mode_and_clear_mode_go_through_the_journal_and_the_mode_follows(
    broker: MosquittoBroker, floor: Floor
) -> None:
    view = subscribe(broker.port)
    floor.views.append(view)
    floor.until("born", lambda: bool(view.births))
    floor.until("the mode", lambda: (view.latest.get(TOPIC["mode"]) or {}).get("mode") == "office")
    closing = cmd("s1", "set_mode", date="2027-03-15", closed=True, reason={"ja": "停電", "en": "Power cut"})
    send(view.client, closing)
    assert answer(floor, view, "s1")["ok"]
    floor.until("closed", lambda: (view.latest.get(TOPIC["mode"]) or {}).get("mode") == "closed")
    mode = view.latest[TOPIC["mode"]]
    assert mode is not None and mode["reason"] == {"ja": "停電", "en": "Power cut"}
    assert mode["override"]["closed"] is True and mode["overrides"] == ["2027-03-15"]
    seq = floor.last_seq
    send(view.client, closing)  # retried: answered, not stored again
    assert answer(floor, view, "s1", 2)["repeated"] and floor.last_seq == seq
    assert "closed_today" in str(floor.gw.handle({"cmd": "issue", "service": "move"})["refused"])
    send(view.client, cmd("c1", "clear_mode", date="2027-03-15"))
    assert answer(floor, view, "c1")["ok"]
    floor.until("open again", lambda: (view.latest.get(TOPIC["mode"]) or {}).get("mode") == "office")
    send(view.client, cmd("s2", "set_mode", date="2027-03-15", mode="lunch"))
    assert "mode" in answer(floor, view, "s2")["error"]


def test_replay_from_a_seq_rebirth_and_what_retention_pruned(tmp_path: Path, broker: MosquittoBroker) -> None:
    # A day stored two weeks earlier, then today's gateway.
    config, text = floor_without_devices(tmp_path, "cycle_ms = 2")
    with TicketJournal.create(tmp_path / "j.db", config, text) as journal:
        journal.execute(m.IssueTicket("move", "t" * 32), tokyo(2027, 3, 1, 10, 0))
        old_last = journal.office.state.last_seq
    f = start_floor(tmp_path, broker.port, journal=tmp_path / "j.db")
    view = subscribe(broker.port)
    f.views.append(view)
    try:
        f.do("open", counter="1")
        f.busy_minute(6)
        f.until("published", lambda: f.seen_all(view))
        c = view.client
        last = f.last_seq
        send(c, cmd("r1", "replay", from_seq=old_last + 3))
        assert answer(f, view, "r1") == {
            "v": 1,
            "office": OFFICE,
            "id": "r1",
            "ok": True,
            "from_seq": old_last + 3,
            "to_seq": last,
        }
        f.until("replayed", lambda: len(view.arrivals) == last + (last - old_last - 2))
        assert view.arrivals[last:] == list(range(old_last + 3, last + 1))
        births = len(view.births)
        send(c, cmd("b1", "rebirth"))
        assert answer(f, view, "b1")["ok"]
        f.until("reborn", lambda: len(view.births) == births + 1)
        assert view.births[-1]["seq"] == last
        # Retention prunes the old day: a replay from it is answered `pruned`, with a rebirth.
        assert f.journal.prune_before(date(2027, 3, 10)) == old_last
        send(c, cmd("r2", "replay", from_seq=1))
        pruned = answer(f, view, "r2")
        assert (pruned["ok"], pruned["code"], pruned["oldest_seq"]) == (False, "pruned", old_last + 1)
        assert pruned["error"].startswith("pruned")
        f.until("reborn again", lambda: len(view.births) == births + 2)
    finally:
        f.gw.close()
        view.client.close()


_ids = st.one_of(
    st.just("unique"),
    st.none(),
    st.sampled_from(["", "x" * 65, "bad id", "ü"]),
    st.integers(),
)
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=10**9),
    st.sampled_from(["1", "2", "3", "4", "9", "move", "A-001", ""]),
    st.text(max_size=8),
    st.lists(st.sampled_from(["move", "seal", "nope", ""]), max_size=3),
    st.dictionaries(st.sampled_from(["from", "to", "ja"]), st.text(max_size=4), max_size=2),
)
# Well-formed commands the floor may carry out or refuse (a counter already open, a ticket done).
_well_formed = st.one_of(
    st.builds(
        lambda name, counter: {"cmd": name, "counter": counter, "id": "unique"},
        st.sampled_from(["open", "pause", "resume", "close"]),
        st.sampled_from(["1", "2", "3", "4"]),
    ),
    st.builds(lambda seq: {"cmd": "replay", "from_seq": seq, "id": "unique"}, st.integers(0, 40)),
    st.just({"cmd": "rebirth", "id": "unique"}),
)
_payloads = st.one_of(
    _well_formed,
    st.fixed_dictionaries(
        {"cmd": st.one_of(st.sampled_from(sorted(schema.COMMANDS)), st.text(max_size=6))},
        optional={
            "v": st.sampled_from([1, 2, "1", 0]),
            "office": st.sampled_from([OFFICE, OFFICE, "nerima", 3]),
            "counter": _values,
            "services": _values,
            "ticket": _values,
            "from_seq": _values,
            "date": _values,
            "extra": _values,
        },
    ).flatmap(lambda d: _ids.map(lambda i: {**d, "id": i})),
    st.binary(max_size=40),
)


def payload_cmd(data: bytes) -> object:
    return json.loads(data).get("cmd")


def floor_changes(f: Floor) -> int:
    """How many events changed the floor (a command's audit record is not one)."""
    assert f.gw.journal is not None
    return sum(1 for e in f.gw.journal.events_after(0, 10**6) if not isinstance(e, ev.RemoteCommand))


def audits(f: Floor, rid: str) -> list[bool]:
    """The `ok` of each remote_command audit record of request `rid`, in order."""
    assert f.gw.journal is not None
    return [e.ok for e in f.gw.journal.events_after(0, 10**6) if isinstance(e, ev.RemoteCommand) and e.id == rid]


def test_fuzzed_commands_are_each_rejected_cleanly_or_carried_out_exactly_once(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    f = start_floor(tmp_path, broker.port)
    view = subscribe(broker.port)
    f.views.append(view)
    f.until("born (commands are taken from the birth on)", lambda: bool(view.births))
    f.do("issue", service="move")
    counter = iter(range(10**9))
    carried_out: list[str] = []

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_payloads)
    def check(payload: dict[str, Any] | bytes) -> None:
        n = next(counter)
        if isinstance(payload, dict):
            if payload.get("id") == "unique":
                payload = {**payload, "id": f"fuzz-{n}"}
            payload.setdefault("office", OFFICE)
            data = json.dumps(payload).encode()
        else:
            data = payload
        rid = command_id(data)
        answers = []
        seqs = [floor_changes(f)]
        for attempt in (1, 2):
            acks = sum(len(a) for a in view.acks.values())
            send(view.client, data)
            send(view.client, cmd(f"marker-{n}-{attempt}", "no_such_command"))
            answer(f, view, f"marker-{n}-{attempt}")
            seqs.append(floor_changes(f))
            if rid is None:
                assert sum(len(a) for a in view.acks.values()) == acks + 1  # dropped, nothing said
                continue
            answers.append(view.acks[rid][-1])
        assert seqs[2] == seqs[1]  # the retry changed nothing
        if rid is None:
            assert seqs[1] == seqs[0]
            return
        first, second = answers
        if first["ok"]:
            carried_out.append(rid)
            assert second == {**first, "repeated": True}
            # Audited once, the retry not again; replay and rebirth only republish: not audited.
            assert audits(f, rid) == ([] if payload_cmd(data) in ("replay", "rebirth") else [True])
        else:
            assert seqs[1] == seqs[0] and second == first and first["error"]

    try:
        check()
    finally:
        f.gw.close()
        view.client.close()
    assert carried_out  # the property held for commands that did something, not only refusals


# -- pieces and the command line --------------------------------------------------------------------------------
def test_command_id_is_read_from_a_payload_that_does_not_parse() -> None:
    assert command_id(b'{"id":"a1","cmd":3}') == "a1"
    assert command_id(b'{"id": "big", "x": "' + b"y" * (schema.MAX_PAYLOAD + 1) + b'"}') == "big"
    assert command_id(b'{"id": 3}') is None and command_id(b"\xff") is None and command_id(b"[]") is None


def test_a_bad_broker_setting_stops_the_gateway_before_a_journal_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import run_cli

    config = tmp_path / "oizumi.toml"
    config.write_text(floor_without_devices(tmp_path, "cycle_ms = 2")[1] + 'journal = "journal.db"\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "gateway", "run", "--config", str(config), "--broker", "http://x")
    assert code == 1 and "--broker: not a broker URL" in err
    secret = tmp_path / "secret"
    secret.write_text("gw-oizumi:pw\n")
    code, _, err = run_cli(capsys, "gateway", "run", "--config", str(config), "--broker-auth", str(secret))
    assert code == 1 and "--broker-auth needs a broker" in err
    secret.chmod(0o644)  # others may read it: refused, as ssh refuses such a key
    url = "mqtt://127.0.0.1:1"
    code, _, err = run_cli(
        capsys, "gateway", "run", "--config", str(config), "--broker", url, "--broker-auth", str(secret)
    )
    assert code == 1 and "may be read by others" in err and "chmod 600" in err
    assert not (tmp_path / "journal.db").exists()


def test_the_gateway_on_the_deployed_broker_config_tls_account_and_acl(tmp_path: Path) -> None:
    """deploy/mosquitto's config: TLS with a client certificate, the gateway's own account, the
    ACL. Its [broker] table as docs/config.md has it; central commands, a watcher reads."""
    with secure_mosquitto_in(tmp_path / "secure", offices=(OFFICE,)) as secure:
        table = secure.broker_table(f"gw-{OFFICE}")
        lines = "\n[broker]\n" + "".join(f'{k} = "{v}"\n' for k, v in table.items())
        f = start_floor(tmp_path, secure.port, broker_lines=lines)
        watcher = secure.connect("watch")
        watcher.subscribe(schema.office_filter(OFFICE), qos=1)
        view = View(watcher)
        f.views.append(view)
        central = secure.connect("central")
        try:
            f.until("born", lambda: bool(view.births))
            assert f.link.login.address.tls and f.link.login.username == f"gw-{OFFICE}"
            send(central, cmd("o1", "open", counter="1"))
            assert answer(f, view, "o1")["ok"]
            f.busy_minute(4)
            f.until("every event", lambda: f.seen_all(view))
        finally:
            f.gw.close()
            central.close()
            watcher.close()


def test_office_watch_shows_what_the_real_gateway_published(
    broker: MosquittoBroker, floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: the gateway's own snapshot (waiting tickets as lists of ids), read back by
    `counterfloor office watch --once --json` as counts per service."""
    from tests.conftest import run_cli

    view = subscribe(broker.port)
    floor.views.append(view)
    for _ in range(3):
        floor.do("issue", service="move")
    floor.do("issue", service="seal")
    floor.clock.t += SNAPSHOT_EVERY_S  # the next snapshot is due
    floor.until("a snapshot of every event", lambda: (view.snapshot() or {}).get("seq") == floor.last_seq)
    code, out, err = run_cli(
        capsys, "office", "watch", "--once", "--json", "--broker", f"mqtt://127.0.0.1:{broker.port}", "--office", OFFICE
    )
    assert code == 0, err
    (office,) = [json.loads(line) for line in out.splitlines() if json.loads(line)["kind"] == "office"]
    assert office["available"] and office["snapshot"]["seq"] == floor.last_seq
    assert office["snapshot"]["services"]["move"] == 3 and office["snapshot"]["services"]["seal"] == 1
