"""Central on a real Mosquitto (issue 14, "Service"): a real gateway's events stored gapless and
estimates published, per service and per ticket; a called ticket's retained estimate cleared; a
gap asked for with a `replay` and filled; a restart that rebuilds from the store and publishes
the same estimates; a malformed office that stops no other; two worker processes of
`counterfloor central`, each office on exactly one, stopped cleanly by SIGTERM.

Central runs in a thread of the test's process (tests/central_support.worker_thread) or as the
real command; Mosquitto and the gateways' clients are real. Every wait is on a message or a
condition, with a deadline: no sleeps."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from central.estimates import service_estimates, ticket_estimates
from central.partition import worker_of
from central.store import open_store
from central.worker import CentralWorker, WorkerConfig
from gateway import service
from gateway.mqtt_client import broker_login
from office import events as ev
from office import mqtt
from office.config import BrokerSettings
from tests.central_support import day_records, example, oizumi_day, worker_thread
from tests.conftest import tokyo
from tests.floor_support import HeldClock, floor_without_devices, held_gateway
from tests.mqtt_support import Account, MosquittoBroker, TestClient, connect, plain_mosquitto, secure_mosquitto_in
from tests.pg_support import PostgresCluster, postgres_fixture  # noqa: F401  (registers the `postgres` fixture)

pytestmark = pytest.mark.slow
SAFETY_S = 30.0  # a bound on waits that take a few turns when the code is right
OFFICE = "oizumi"
TS = "2027-03-15T09:00:00.000+09:00"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with plain_mosquitto(tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "central.db")
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


def central_config(store: str, port: int, **kw: Any) -> WorkerConfig:
    login = broker_login(BrokerSettings(), url=f"mqtt://127.0.0.1:{port}")
    return WorkerConfig(store, login=login, **kw)


def until(
    what: str, cond: Callable[[], bool], central: CentralWorker, step: Callable[[], object] | None = None
) -> None:
    """Until `cond` holds after one of central's turns; `step` (a gateway's) runs between waits."""
    deadline = time.monotonic() + SAFETY_S
    while not central.until(cond, 0.05):
        assert time.monotonic() < deadline, f"not within {SAFETY_S} s: {what}"
        if step is not None:
            step()


def applied(central: CentralWorker, office: str = OFFICE) -> int:
    state = central.offices.get(office)
    return 0 if state is None else state.applied


@dataclass
class Retained:
    """What a subscriber holds of retained topics (an empty payload clears one)."""

    client: TestClient
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    cleared: list[str] = field(default_factory=list)

    def take(self) -> None:
        while True:
            try:
                m = self.client.messages.get_nowait()
            except queue.Empty:
                return
            if m.payload:
                self.held[m.topic] = mqtt.decode(m.payload)
            else:
                self.held.pop(m.topic, None)
                self.cleared.append(m.topic)

    def of(self, kind: str, office: str = OFFICE) -> dict[str, dict[str, Any]]:
        prefix = f"{mqtt.ROOT}/{office}/{kind}/"
        return {t[len(prefix) :]: p for t, p in self.held.items() if t.startswith(prefix)}


def subscriber(port: int, *filters: str) -> Retained:
    client = connect(port)
    for f in filters:
        client.subscribe(f)
    return Retained(client)


def late_picture(port: int, topic_filter: str) -> dict[str, bytes]:
    """Everything retained under `topic_filter`, as a subscriber that joins now gets it: the SUBACK
    of a second subscription marks the end of the retained burst (docs/mqtt.md, `--once`)."""
    client = connect(port)
    try:
        client.subscribe(topic_filter)
        client.subscribe(f"{mqtt.ROOT}/{OFFICE}/test-sync")
        out: dict[str, bytes] = {}
        while True:
            try:
                m = client.messages.get_nowait()
            except queue.Empty:
                return out
            out[m.topic] = m.payload
    finally:
        client.close()


# -- a real gateway ----------------------------------------------------------------------------------
@dataclass
class Gateway:
    gw: service.Gateway
    clock: HeldClock

    @property
    def last_seq(self) -> int:
        assert self.gw.journal is not None
        return self.gw.journal.office.state.last_seq

    def do(self, cmd: str, **fields: Any) -> dict[str, Any]:
        reply = self.gw.handle({"cmd": cmd, **fields})
        assert reply["ok"], reply
        self.clock.t += 7.0
        return reply

    def records(self) -> list[dict[str, Any]]:
        assert self.gw.journal is not None
        return [ev.public_record(e, OFFICE) for e in self.gw.journal.events_after(0, 100_000)]

    def published(self) -> bool:
        link = self.gw.mqtt
        return link is not None and link.connected and link.mark == self.last_seq


@pytest.fixture
def gateway(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Gateway]:
    config, text = floor_without_devices(tmp_path, "cycle_ms = 2")
    gw, clock = held_gateway(tmp_path, config, text, broker_url=f"mqtt://127.0.0.1:{broker.port}")  # Monday 10:00
    gw.start()
    try:
        yield Gateway(gw, clock)
    finally:
        gw.close()


def test_a_gateways_events_are_stored_gapless_and_estimates_published(
    broker: MosquittoBroker, gateway: Gateway, store_url: str
) -> None:
    watch = subscriber(broker.port, f"{mqtt.ROOT}/{OFFICE}/estimates/+", f"{mqtt.ROOT}/{OFFICE}/tickets/+")
    with worker_thread(central_config(store_url, broker.port)) as central:
        until("central subscribed", lambda: central.synced, central)
        gateway.do("open", counter="1")
        gateway.do("open", counter="3")
        for service_id in ("move", "move", "seal", "certificate", "move", "payment", "move"):
            gateway.do("issue", service=service_id)
        gateway.do("call", counter="1")
        last = gateway.last_seq
        until("every event applied", lambda: applied(central) == last, central, gateway.gw.step)

        records = gateway.records()
        with open_store(store_url) as store:
            assert (store.contiguous_seq(OFFICE), store.last_seq(OFFICE)) == (last, last)
            assert [{k: v for k, v in s.items() if k != "session"} for s in store.read(OFFICE)] == records

        # Per service: every service of today's plan, current to the last seq.
        def estimated() -> bool:
            watch.take()
            found = watch.of("estimates")
            return set(found) == {"move", "seal", "certificate", "payment"} and all(
                p["seq"] == last for p in found.values()
            )

        until("the service estimates", estimated, central)
        estimates = watch.of("estimates")
        assert estimates["move"]["waiting"] == 3  # four issued, one called
        # The gateway takes them: current to its last event, they are what its next ticket prints.
        estimator = gateway.gw.estimator
        assert estimator is not None

        def at_gateway() -> bool:
            held = estimator.central.get("move")
            return held is not None and held.seq == last

        until("the gateway holds central's estimate", at_gateway, central, gateway.gw.step)
        for p in estimates.values():
            assert 0 <= p["p10_s"] <= p["mean_s"] <= p["p90_s"]

        # Per ticket: every waiting one, by its token hash.
        issued = {r["ticket"]: r["token_hash"] for r in records if r["type"] == "ticket_issued"}
        called = {r["ticket"] for r in records if r["type"] == "called"}
        waiting = {h for t, h in issued.items() if t not in called}

        def tickets_out() -> bool:
            watch.take()
            return set(watch.of("tickets")) == waiting

        until("the ticket estimates", tickets_out, central)
        move = sorted((p for p in watch.of("tickets").values() if p["service"] == "move"), key=lambda p: p["ahead"])
        assert [p["ahead"] for p in move] == [0, 1, 2]
        assert all(p["seq"] == last and p["p10_s"] <= p["mean_s"] <= p["p90_s"] for p in move)

        # The next call: that ticket's estimate is cleared, and a late subscriber gets nothing for it.
        gateway.do("call", counter="1")
        now_called = next(r for r in reversed(gateway.records()) if r["type"] == "called")["ticket"]
        gone = mqtt.topic(OFFICE, mqtt.TICKETS, issued[now_called])

        def cleared() -> bool:
            watch.take()
            return gone in watch.cleared

        until("the called ticket's estimate cleared", cleared, central, gateway.gw.step)
        picture = late_picture(broker.port, f"{mqtt.ROOT}/{OFFICE}/tickets/+")
        assert gone not in picture
        assert set(picture) == {mqtt.topic(OFFICE, mqtt.TICKETS, h) for h in waiting - {issued[now_called]}}
        assert all(picture.values())
    watch.client.close()


# -- a scripted gateway --------------------------------------------------------------------------------
class FakeGateway:
    """Publishes an office's records as its gateway would (in the order told, births retained),
    and answers `replay` commands from its records, as gateway.mqtt_link does."""

    def __init__(self, port: int, office: str, records: list[dict[str, Any]], account: Account | None = None) -> None:
        self.office = office
        self.records = {r["seq"]: r for r in records}
        self.have = 0  # the journal's last seq: what a replay goes up to
        self.client = connect(port, account=account)
        self.client.subscribe(mqtt.topic(office, mqtt.CMD))
        self.commands: list[dict[str, Any]] = []

    def birth(self, seq: int) -> None:
        """The retained birth, naming `seq` as the last stored (which replays then go up to)."""
        self.have = max(self.have, seq)
        payload = mqtt.birth(self.office, 1, seq, TS, "counterfloor test")
        self.client.publish(mqtt.topic(self.office, mqtt.GATEWAY), mqtt.encode(payload), retain=True)

    def publish(self, seqs: range | list[int]) -> None:
        for seq in seqs:
            self.have = max(self.have, seq)
            self.client.publish(mqtt.topic(self.office, mqtt.EVENTS), mqtt.encode(self.records[seq]))

    def raw(self, payload: bytes) -> None:
        self.client.publish(mqtt.topic(self.office, mqtt.EVENTS), payload)

    def answer(self) -> None:
        """The commands that came: each acked, and a replay's events published again."""
        while True:
            try:
                m = self.client.messages.get_nowait()
            except queue.Empty:
                return
            cmd = mqtt.parse_command(self.office, m.payload)
            self.commands.append({"cmd": cmd.name, "id": cmd.request, **cmd.fields})
            if cmd.name == "replay":
                first = int(cmd.fields["from_seq"])
                ack = mqtt.ack(self.office, cmd.request, True, from_seq=first, to_seq=self.have)
                self.client.publish(mqtt.topic(self.office, mqtt.ACK), mqtt.encode(ack))
                self.publish(range(first, self.have + 1))

    def close(self) -> None:
        self.client.close()


def test_a_gap_is_asked_for_with_a_replay_and_filled(broker: MosquittoBroker, tmp_path: Path) -> None:
    store = str(tmp_path / "central.db")
    records = list(oizumi_day()[:40])
    with worker_thread(central_config(store, broker.port)) as central:
        until("central subscribed", lambda: central.synced, central)
        fake = FakeGateway(broker.port, OFFICE, records)
        fake.birth(0)
        fake.publish(range(1, 11))
        fake.have = 11  # seq 11 is in its journal, but lost on the way
        fake.publish(range(12, 31))
        state = central.offices
        until("a replay asked for", lambda: bool(fake.client.messages.qsize()), central)
        until("the gap filled", lambda: applied(central) == 30, central, fake.answer)
        assert [(c["cmd"], c["from_seq"]) for c in fake.commands] == [("replay", 11)]
        assert fake.commands[0]["id"].startswith("central-0-")
        with open_store(store) as opened:
            assert (opened.contiguous_seq(OFFICE), opened.last_seq(OFFICE)) == (30, 30)
        assert state[OFFICE].figures.applied == 30  # the replay's repeats were not applied again
        fake.close()


def test_a_restarted_central_rebuilds_from_its_store_and_publishes_the_same_estimates(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    store = str(tmp_path / "central.db")
    records = list(oizumi_day()[:300])
    fake = FakeGateway(broker.port, OFFICE, records)
    fake.birth(300)  # retained: central finds it when it subscribes, and asks for everything
    watch = subscriber(broker.port, f"{mqtt.ROOT}/{OFFICE}/estimates/+", f"{mqtt.ROOT}/{OFFICE}/tickets/+")
    with worker_thread(central_config(store, broker.port)) as central:
        until(
            "every event",
            lambda: applied(central) == 300,
            central,
            fake.answer,
        )
        until("estimates out", lambda: central.offices[OFFICE].dirty_since is None, central)
        state = central.offices[OFFICE]

        def seen_by_watcher() -> bool:  # everything central published has come through the broker
            watch.take()
            return set(watch.held) == set(state.estimates) | set(state.tickets)

        until("the estimates at a subscriber", seen_by_watcher, central)
    # What the office's floor gives, computed afresh: what the next central must publish.
    expected_services = {
        s.service: (s.waiting, round(s.mean), round(s.p10), round(s.p90))
        for s in service_estimates(state.floor, state.predictor)
    }
    expected_tickets = {
        t.token_hash: (t.ahead, round(t.mean), round(t.p10), round(t.p90))
        for t in ticket_estimates(state.floor, state.predictor, state.tokens)
    }
    assert expected_tickets  # people are waiting at seq 300
    first_run = dict(watch.held)
    watch.held.clear()

    with worker_thread(central_config(store, broker.port)) as again:
        assert again.offices[OFFICE].applied == 300  # from the store, before any message

        def republished() -> bool:
            watch.take()
            return set(watch.of("estimates")) == set(expected_services) and set(watch.of("tickets")) == set(
                expected_tickets
            )

        until("estimates published again", republished, again)
        until("its round done", lambda: again.offices[OFFICE].dirty_since is None, again)
        watch.take()
    got_services = {s: (p["waiting"], p["mean_s"], p["p10_s"], p["p90_s"]) for s, p in watch.of("estimates").items()}
    got_tickets = {h: (p["ahead"], p["mean_s"], p["p10_s"], p["p90_s"]) for h, p in watch.of("tickets").items()}
    assert got_services == expected_services
    assert got_tickets == expected_tickets
    assert set(first_run) == set(watch.held)  # the same topics as the first run left retained
    assert all(p["seq"] == 300 for p in watch.held.values())
    fake.close()
    watch.client.close()


def test_a_malformed_office_stops_no_other(
    broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = str(tmp_path / "central.db")
    good = FakeGateway(broker.port, OFFICE, list(oizumi_day()[:50]))
    bad = FakeGateway(broker.port, "ward-bad", day_records(example("oizumi"), office="ward-bad")[:50])
    watch = subscriber(broker.port, f"{mqtt.ROOT}/{OFFICE}/estimates/+")
    with (
        caplog.at_level(logging.WARNING, logger="central"),
        worker_thread(central_config(store, broker.port)) as central,
    ):
        until("central subscribed", lambda: central.synced, central)
        bad.raw(b"\x00\x01 garbage")
        bad.raw(mqtt.encode({"v": 1, "seq": "one", "office": "ward-bad"}))
        bad.raw(mqtt.encode({"v": 99, "seq": 1}))
        bad.client.publish(mqtt.topic("ward-bad", mqtt.GATEWAY), b"{not json", retain=False)
        good.publish(range(1, 51))
        bad.publish(range(1, 21))
        until(
            "the good office's events",
            lambda: applied(central) == 50,
            central,
        )
        until("the bad office's good events", lambda: applied(central, "ward-bad") == 20, central)

        def estimated() -> bool:
            watch.take()
            return bool(watch.of("estimates")) and all(p["seq"] == 50 for p in watch.of("estimates").values())

        until("the good office's estimates", estimated, central)
    text = caplog.text
    assert "counterfloor/ward-bad/events: payload is not JSON" in text
    for office in (good, bad):
        office.close()
    watch.client.close()


def test_the_deployed_acl_lets_central_do_its_work(tmp_path: Path) -> None:
    """deploy/mosquitto (TLS, accounts, make-acl.sh's ACL): central reads the gateway's events and
    births, its replay command reaches the gateway, and its estimates reach a watcher."""
    with secure_mosquitto_in(tmp_path / "secure", offices=(OFFICE,)) as broker:
        account = broker.account("central")
        settings = BrokerSettings(ca=str(account.ca), cert=str(account.cert), key=str(account.key))
        login = broker_login(settings, url=broker.url, auth_file=account.secret_file)
        watch = Retained(broker.connect("watch"))
        for f in ("estimates/+", "tickets/+"):
            watch.client.subscribe(f"{mqtt.ROOT}/{OFFICE}/{f}")
        fake = FakeGateway(broker.port, OFFICE, list(oizumi_day()[:40]), account=broker.gateway(OFFICE))
        with worker_thread(WorkerConfig(str(tmp_path / "central.db"), login=login)) as central:
            until("central subscribed", lambda: central.synced, central)
            fake.birth(0)
            fake.publish(range(1, 20))
            fake.have = 20  # seq 20 lost on the way
            fake.publish(range(21, 41))
            until("the gap filled by a replay", lambda: applied(central) == 40, central, fake.answer)
            assert [c["cmd"] for c in fake.commands] == ["replay"]

            def estimated() -> bool:
                watch.take()
                return bool(watch.of("estimates")) and bool(watch.of("tickets"))

            until("the estimates at the watcher", estimated, central)
        fake.close()
        watch.client.close()


# -- the command ---------------------------------------------------------------------------------------------
def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output lines as they come (a reader thread), to wait on with a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_line(lines: queue.Queue[str], text: str, seen: list[str]) -> None:
    deadline = time.monotonic() + SAFETY_S
    while not any(text in line for line in seen):
        seen.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))


def test_one_worker_in_the_commands_own_process_stops_cleanly_on_sigterm(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    binary = Path(sys.executable).parent / "counterfloor"
    store = tmp_path / "central.db"
    proc = subprocess.Popen(
        [str(binary), "central", "--broker", f"mqtt://127.0.0.1:{broker.port}", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    try:
        wait_line(lines_of(proc), "central worker 0/1: connected to the broker", seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SAFETY_S) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert store.exists()


# -- the command, two worker processes -------------------------------------------------------------------
def test_two_worker_processes_each_office_on_exactly_one(broker: MosquittoBroker, tmp_path: Path) -> None:
    offices = ["oizumi", "nerima", "ward-10", "ward-11", "ward-12", "ward-13"]
    assert {worker_of(o, 2) for o in offices} == {0, 1}
    config = example("oizumi")
    fakes = {o: FakeGateway(broker.port, o, day_records(config, office=o, seed=n)[:80]) for n, o in enumerate(offices)}
    for fake in fakes.values():
        fake.birth(80)  # retained: whichever worker owns it finds it and asks for a replay from 1
    store = tmp_path / "central.db"
    watch = subscriber(broker.port, f"{mqtt.ROOT}/+/estimates/+")
    binary = Path(sys.executable).parent / "counterfloor"
    proc = subprocess.Popen(
        [
            str(binary),
            "central",
            "--broker",
            f"mqtt://127.0.0.1:{broker.port}",
            "--store",
            str(store),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def estimated(office: str) -> bool:
        found = watch.of("estimates", office)
        return bool(found) and all(p["seq"] == 80 for p in found.values())

    try:
        deadline = time.monotonic() + SAFETY_S * 2
        while not all(estimated(o) for o in offices):  # estimates at seq 80: every event stored and applied
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, f"not every office estimated: {sorted(watch.held)}"
            for fake in fakes.values():
                fake.answer()
            with contextlib.suppress(TimeoutError):  # a bounded wait for the next estimate
                watch.client.messages.put(watch.client.next_message(0.05))
            watch.take()
        with open_store(store) as opened:
            assert all((opened.contiguous_seq(o), opened.last_seq(o)) == (80, 80) for o in offices)
        # Each office asked for by its own worker only (a command's id carries the worker's index).
        for office, fake in fakes.items():
            askers = {c["id"].split("-")[1] for c in fake.commands}
            assert askers == {str(worker_of(office, 2))}, (office, fake.commands)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=SAFETY_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for fake in fakes.values():
            fake.close()
        watch.client.close()
    assert proc.returncode == 0, output
    for office in offices:
        mine = worker_of(office, 2)
        lines = [line for line in output.splitlines() if f"office {office}:" in line and "central worker" in line]
        assert lines and all(f"central worker {mine}/2:" in line for line in lines), (office, lines)
    assert "central: worker 0/2 started" in output and "central: worker 1/2 started" in output
    assert output.count("stopped") >= 3  # both workers, then the supervisor


# -- a replacement Pi ----------------------------------------------------------------------------------------
def test_a_replacement_gateway_restores_today_from_central_and_carries_on(
    broker: MosquittoBroker, gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`counterfloor gateway restore` on a new Pi: central's copy of today becomes its journal —
    the same tickets, numbers and hashes — and the gateway started on it continues the numbering
    in a newer session. A second restore over the journal is refused; nothing is written over it."""
    from counterfloor import cli

    with worker_thread(central_config(str(tmp_path / "central.db"), broker.port)) as central:
        until("central subscribed", lambda: central.synced, central)
        gateway.do("open", counter="1")
        for service_id in ("move", "move", "seal", "move"):
            gateway.do("issue", service=service_id)
        gateway.do("call", counter="1")
        last = gateway.last_seq
        until("every event applied", lambda: applied(central) == last, central, gateway.gw.step)
        assert gateway.gw.mqtt is not None
        old_session = gateway.gw.mqtt.session
        assert gateway.gw.journal is not None
        before = {t.id: (t.number, t.token_hash, t.status) for t in gateway.gw.journal.office.state.tickets.values()}
        gateway.gw.close()  # the old Pi breaks

        config_file = tmp_path / "office.toml"
        config_file.write_text(floor_without_devices(tmp_path, "cycle_ms = 2")[1], encoding="utf-8")
        new = tmp_path / "new.db"
        args = ["gateway", "restore", "--config", str(config_file), "--journal", str(new)]
        args += ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--timeout", "20"]
        result: list[int] = []
        runner = threading.Thread(target=lambda: result.append(cli.main(args)))
        runner.start()
        until("central answered the restore", lambda: not runner.is_alive(), central)
        runner.join()
        assert result == [0], capsys.readouterr()
        out = capsys.readouterr().out
        assert f"seq 1–{last}" in out and "5 tickets" not in out and "4 tickets (3 waiting)" in out, out

        config, text = floor_without_devices(tmp_path, "cycle_ms = 2")
        at = tokyo(2027, 3, 15, 10, 30)
        gw, _ = held_gateway(tmp_path, config, text, at, "new", broker_url=f"mqtt://127.0.0.1:{broker.port}")
        gw.start()
        try:
            assert gw.journal is not None
            state = gw.journal.office.state
            assert {t.id: (t.number, t.token_hash, t.status) for t in state.tickets.values()} == before
            reply = gw.handle({"cmd": "issue", "service": "move"})
            assert reply["ok"] and reply["output"].startswith("A-004"), reply  # the numbering goes on
            until("the new session's events at central", lambda: applied(central) == last + 1, central, gw.step)
            assert gw.mqtt is not None and gw.mqtt.session > old_session
        finally:
            gw.close()
        with pytest.raises(SystemExit):
            cli.main(args)
        assert "exists" in capsys.readouterr().err
