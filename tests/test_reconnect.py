"""A bus whose serial port goes away and comes back, calls routed across buses, and a device that
floods its bus: the gateway keeps serving everything else meanwhile. Times are fake seconds on
an injected clock (tests.floor_support.FakeClock); the one pty test uses real pty pairs, with a
blocking read standing in for waiting on the peer's reply, never a sleep."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import tty
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import serial

from gateway import service
from gateway.bus import Backoff, BusConnection, BusMaster, CallRouter, SyncDriver, step_buses
from gateway.device_link import DeviceLink, DeviceSpec, LinkEffect, LinkState, StateChanged
from hal.codec import P
from hal.serial_link import open_link
from hal.simdevice import SimBus, SimDevice
from office.config import OfficeConfig, load_config
from office.model import Decision, Office, OpenCounter
from tests.conftest import EXAMPLES, ROOT, tokyo
from tests.floor_support import FakeClock, Tokens

MONDAY_10 = tokyo(2027, 3, 15, 10, 0)
BUS_A = "sim://bus?dispenser=1&counter_pad=5&call_display=16&backend=python"
BUS_B = "sim://bus?counter_pad=6&call_display=16&backend=python"


# -- an adapter that can be unplugged ---------------------------------------------------------------
class Adapter:
    """A USB-RS485 adapter with simulated devices behind it. Unplugged, opening it fails and a port
    opened before fails on every read and write, as pyserial's do (SerialException, an OSError);
    the devices stay powered and keep what they show. `attempts`: when it was asked to open."""

    def __init__(self, url: str, clock: FakeClock) -> None:
        self.url = url
        self.clock = clock
        self.sim: Any = open_link(url)
        self.plugged = True
        self.generation = 0
        self.attempts: list[float] = []
        self.fail_after_open = False  # opens, then fails at once (a flapping adapter)

    @property
    def devices(self) -> dict[int, SimDevice]:
        devices: dict[int, SimDevice] = self.sim.bus.devices
        return devices

    def unplug(self) -> None:
        self.plugged = False
        self.generation += 1
        self.sim.reset_input_buffer()  # what was on the wire is gone with it

    def plug(self) -> None:
        self.plugged = True

    def open(self, url: str) -> PluggedPort:
        assert url == self.url
        self.attempts.append(self.clock.now())
        if not self.plugged:
            raise serial.SerialException(f"[Errno 2] could not open port {url}: No such file or directory")
        return PluggedPort(self, self.generation)


class PluggedPort:
    def __init__(self, adapter: Adapter, generation: int) -> None:
        self.adapter = adapter
        self.generation = generation
        self.closed = False

    def _alive(self) -> None:
        if self.adapter.generation != self.generation or self.adapter.fail_after_open:
            raise serial.SerialException("write failed: [Errno 5] Input/output error")

    def write(self, data: bytes, /) -> int | None:
        self._alive()
        return int(self.adapter.sim.write(data))

    def read(self, size: int = 1, /) -> bytes:
        self._alive()
        return bytes(self.adapter.sim.read(size))

    @property
    def in_waiting(self) -> int:
        self._alive()
        return int(self.adapter.sim.in_waiting)

    def reset_input_buffer(self) -> None:
        self.adapter.sim.reset_input_buffer()

    def close(self) -> None:
        self.closed = True


# -- one bus on its own ---------------------------------------------------------------------------
def one_bus(cfg: OfficeConfig, clock: FakeClock) -> BusMaster:
    office = Office(cfg)
    office.execute(OpenCounter("1"), MONDAY_10)
    services = tuple(s.id for s in cfg.services)
    links = [
        DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, services), Tokens()),
        DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, services, counter="1"), Tokens()),
        DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), Tokens()),
    ]
    return BusMaster(links, lambda c: office.execute(c, MONDAY_10 + timedelta(seconds=clock.now())), min_cycle=0.05)


def all_in(bus: BusMaster, state: LinkState) -> bool:
    return all(link.state is state for link in bus.links)


def step_until_lost(conn: BusConnection) -> list[LinkEffect]:
    """Step until the port's loss is noticed: at the next write (a step may only wait for its cycle)."""
    effects: list[LinkEffect] = []
    for _ in range(5):
        effects += conn.step()
        if not conn.is_open:
            return effects
    raise AssertionError("the lost port was not noticed")


def test_back_off_doubles_up_to_its_limit_and_restarts_after_a_reset() -> None:
    b = Backoff(first=0.25, limit=2.0)
    assert [b.next_delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    b.reset()
    assert b.next_delay() == 0.25


def test_back_off_jitter_is_bounded_and_repeatable_for_a_seed() -> None:
    import random

    def delays(seed: int) -> list[float]:
        b = Backoff(first=1.0, limit=8.0, jitter=0.5, rng=random.Random(seed))
        return [b.next_delay() for _ in range(6)]

    exact = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert delays(3) == delays(3) and delays(3) != delays(4)
    assert all(e * 0.5 <= d <= e for d, e in zip(delays(3), exact, strict=True))
    assert delays(3) != exact


@pytest.mark.parametrize(
    ("kw", "error"),
    [({"first": 0.0}, "first"), ({"first": 2.0, "limit": 1.0}, "limit"), ({"jitter": 1.5}, "jitter")],
)
def test_a_bad_back_off_is_refused_naming_the_problem(kw: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Backoff(**kw)


def test_a_lost_port_takes_its_devices_offline_at_once_and_is_reopened_with_doubling_back_off(
    nerima: OfficeConfig,
) -> None:
    clock = FakeClock()
    adapter = Adapter(BUS_A, clock)
    bus = one_bus(nerima, clock)
    conn = BusConnection(bus, BUS_A, clock, adapter.open, Backoff(first=0.25, limit=2.0))
    assert conn.connect()
    while not all_in(bus, LinkState.ONLINE):
        conn.step()
    adapter.unplug()
    effects = step_until_lost(conn)
    t0 = clock.now()
    assert not conn.is_open and not bus.in_flight and conn.losses == 1
    changes = [e for e in effects if isinstance(e, StateChanged)]
    assert {(e.addr, e.new) for e in changes} == {(a, LinkState.OFFLINE) for a in (1, 5, 16)}
    assert all(e.why.startswith("port lost: ") and "Input/output error" in e.why for e in changes)
    # Before its back-off is over, a step neither tries the port nor takes any time.
    assert conn.step() == [] and clock.now() == t0 and adapter.attempts == [0.0]
    requests = sum(d.requests for d in adapter.devices.values())
    for _ in range(5):
        clock.wait_until(conn.retry_at)
        assert conn.step() == []
    assert [round(t - t0, 9) for t in adapter.attempts[1:]] == [0.25, 0.75, 1.75, 3.75, 5.75]
    assert conn.failed_opens == 5 and sum(d.requests for d in adapter.devices.values()) == requests
    adapter.plug()
    clock.wait_until(conn.retry_at)
    start = bus.cycles
    conn.step()
    assert conn.is_open and conn.opens == 2 and conn.backoff.failures == 0
    while not all_in(bus, LinkState.ONLINE):
        conn.step()
    assert bus.cycles - start <= 2  # back within two poll cycles of the port reopening


def test_a_port_that_fails_as_soon_as_it_opens_keeps_doubling_its_back_off(nerima: OfficeConfig) -> None:
    clock = FakeClock()
    adapter = Adapter(BUS_A, clock)
    bus = one_bus(nerima, clock)
    conn = BusConnection(bus, BUS_A, clock, adapter.open, Backoff(first=0.25, limit=2.0))
    conn.connect()
    while not all_in(bus, LinkState.ONLINE):
        conn.step()
    adapter.fail_after_open = True
    step_until_lost(conn)
    t0 = clock.now()
    for _ in range(3):
        clock.wait_until(conn.retry_at)
        step_until_lost(conn)
    assert [round(t - t0, 9) for t in adapter.attempts[1:]] == [0.25, 0.75, 1.75]
    assert conn.opens == 4 and conn.losses == 4 and not conn.is_open


def test_a_babbling_device_ends_each_exchange_at_its_deadline(nerima: OfficeConfig) -> None:
    clock = FakeClock()
    bus = one_bus(nerima, clock)
    port = Babbler(open_link(BUS_A))
    driver = SyncDriver(bus, port, clock)
    while not all_in(bus, LinkState.ONLINE):
        driver.step()
    port.on = True
    timeouts = bus.timeouts
    for _ in range(5):  # the first step may only wait for the next cycle
        t0 = clock.now()
        driver.step()
        if driver.floods:
            break
    assert driver.floods == 1 and bus.timeouts == timeouts + 1
    assert port.reads == 1  # one chunk is already past what the wire carries before the deadline
    # On the bus's clock it took about its reply window (a few ms), not the endless flood's length.
    assert clock.now() - t0 < 0.01
    driver.run_cycles(2)
    assert all_in(bus, LinkState.OFFLINE)  # nothing can be heard over it
    port.on = False
    driver.run_cycles(2)
    assert all_in(bus, LinkState.ONLINE)


class Babbler:
    """A port with a device behind it that, once `on`, sends garbage without pause. A read loop that
    never stops reading fails the test after `cap` reads instead of hanging it."""

    def __init__(self, port: Any, cap: int = 10_000) -> None:
        self.port = port
        self.on = False
        self.reads = 0
        self.cap = cap

    def write(self, data: bytes, /) -> int | None:
        return int(self.port.write(data))

    def read(self, size: int = 1, /) -> bytes:
        if not self.on:
            return bytes(self.port.read(size))
        self.reads += 1
        assert self.reads < self.cap, "the gateway kept reading a flood"
        self.port.reset_input_buffer()  # the device's replies drown in the noise
        return bytes(itertools.islice(itertools.cycle(b"\x55\xaa\x13"), 512))

    @property
    def in_waiting(self) -> int:
        return 512 if self.on else int(self.port.in_waiting)

    def close(self) -> None:
        self.port.close()


def full_bus(clock: FakeClock) -> BusConnection:
    """16 counter pads, polled back to back (no minimum cycle)."""
    addrs = range(1, 17)
    url = "sim://bus?counter_pad=" + ",".join(map(str, addrs)) + "&backend=python"
    links = [DeviceLink(DeviceSpec(a, P.KIND_COUNTER_PAD, (), counter=str(a)), Tokens()) for a in addrs]
    conn = BusConnection(BusMaster(links, lambda c: Decision()), url, clock, lambda u: open_link(u))
    assert conn.connect()
    return conn


def cycle_time(n_buses: int, rounds: int = 600) -> tuple[float, list[int]]:
    """Fake seconds per cycle of the first bus, with `n_buses` full buses stepped together."""
    clock = FakeClock()
    buses = [full_bus(clock) for _ in range(n_buses)]
    for _ in range(100):
        step_buses(buses, clock, max_wait=0.05)
    assert all(all_in(c.bus, LinkState.ONLINE) for c in buses)
    c0, t0 = buses[0].bus.cycles, clock.now()
    for _ in range(rounds):
        step_buses(buses, clock, max_wait=0.05)
    return (clock.now() - t0) / (buses[0].bus.cycles - c0), [c.bus.exchanges for c in buses]


def test_buses_stepped_together_run_side_by_side_not_one_behind_the_other() -> None:
    alone, _ = cycle_time(1)
    beside, exchanges = cycle_time(2)
    # Each bus is its own wire: a second full bus does not slow the first one's cycle (before
    # step_buses the gateway stepped them in turn, and each cycle took twice as long).
    assert beside == pytest.approx(alone, rel=1e-9)
    assert exchanges[0] == exchanges[1]


# -- the gateway with two buses ---------------------------------------------------------------------
def two_bus_text(port_b: str = BUS_B) -> str:
    head = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8").split("\n[gateway]\n")[0]
    devices = [
        ("dispenser", 1, 'services = ["move", "seal", "certificate", "payment"]', BUS_A),
        ("counter_pad", 5, 'counter = "1"', BUS_A),
        ("call_display", 16, "", BUS_A),
        ("counter_pad", 6, 'counter = "2"', port_b),
        ("call_display", 16, "", port_b),
    ]
    text = head + "\n[gateway]\ncycle_ms = 50\n"
    for kind, addr, extra, port in devices:
        text += f'\n[[devices]]\nkind = "{kind}"\naddr = {addr}\n{extra}\nport = "{port}"\n'
    return text


class TwoBuses:
    """A gateway in this process on the fake clock: bus A behind an Adapter, bus B a sim:// port."""

    def __init__(self, tmp_path: Path, text: str | None = None, wrap_a: Callable[[Any], Any] | None = None) -> None:
        self.clock = FakeClock()
        self.text = text or two_bus_text()
        path = tmp_path / "two-buses.toml"
        path.write_text(self.text, encoding="utf-8")
        self.config = load_config(path)
        self.adapter = Adapter(BUS_A, self.clock)
        self.wrap_a = wrap_a

        def opener(url: str) -> Any:
            if url != BUS_A:
                return service.open_bus_port(url)
            port = self.adapter.open(url)
            return self.wrap_a(port) if self.wrap_a else port

        def wall() -> datetime:
            return MONDAY_10 + timedelta(seconds=self.clock.now())

        self.gw = service.Gateway(
            self.config,
            self.text,
            tmp_path / "j.db",
            tmp_path / "j.sock",
            io.StringIO(),
            clock=self.clock,
            wall=wall,
            opener=opener,
        )

    def bus(self, url: str) -> service.Bus:
        return next(b for b in self.gw.buses if b.url == url)

    @property
    def a(self) -> service.Bus:
        return self.bus(BUS_A)

    @property
    def b(self) -> service.Bus:
        return self.bus(BUS_B)

    def until(self, what: str, cond: Callable[[], bool], steps: int = 5000) -> None:
        for _ in range(steps):
            if cond():
                return
            self.gw.step()
        raise AssertionError(f"not {what} after {steps} gateway steps (t={self.clock.now():.3f} s)")

    def online(self, bus: service.Bus) -> bool:
        return all_in(bus.master, LinkState.ONLINE)


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[TwoBuses]:
    f = TwoBuses(tmp_path)
    yield f
    f.gw.close()


def ask(f: TwoBuses, client: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
    """One request over the real control socket, the gateway stepping until the reply is there."""
    client.sendall(json.dumps(request).encode() + b"\n")
    data = b""
    for _ in range(1000):
        f.gw.step()
        if select.select([client], [], [], 0)[0]:
            data += client.recv(65536)
            if data.endswith(b"\n"):
                reply: dict[str, Any] = json.loads(data)
                return reply
    raise AssertionError(f"no reply to {request} over the control socket")


def test_an_unplugged_adapter_leaves_the_other_bus_the_control_socket_and_the_journal_working(
    floor: TwoBuses, caplog: pytest.LogCaptureFixture
) -> None:
    f, gw = floor, floor.gw
    gw.start()
    f.until("online", lambda: f.online(f.a) and f.online(f.b))
    display_a, b_devices = f.adapter.devices[16], f.b.port.bus.devices
    assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
    assert gw.handle({"cmd": "open", "counter": "2"})["ok"]

    f.adapter.unplug()
    caplog.set_level(logging.INFO, logger="gateway.bus")
    f.until("A lost", lambda: f.a.port is None, steps=3)
    lost_at = f.a.connection.down_since
    assert lost_at is not None and all_in(f.a.master, LinkState.OFFLINE)
    assert f"bus {BUS_A}: port lost (write failed: [Errno 5] Input/output error)" in caplog.text

    # Meanwhile: the socket answers, a pad on bus B calls, display B shows it, the journal has it.
    cycles_b = f.b.master.cycles
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(gw.socket_file))
        assert ask(f, client, {"cmd": "ping"})["ok"]
        b_devices[6].key(P.KEY_CALL_NEXT)
        f.until("called on bus B", lambda: b_devices[16].call is not None)
        assert b_devices[16].calls == [(P.CALL_NEW, "A-001", "2番窓口")]
        state = ask(f, client, {"cmd": "show", "json": True})["state"]
        assert state["tickets"] == {"A-001": "called"}
    f.until("4 s of outage", lambda: f.clock.now() >= lost_at + 4.0)
    assert f.b.master.cycles - cycles_b >= 40 and f.online(f.b)
    assert all_in(f.a.master, LinkState.OFFLINE) and display_a.call is None

    # Plugged back: reopened at its next back-off time, online within two poll cycles, and the
    # call made meanwhile is on display A without a CALL (no chime).
    f.adapter.plug()
    opens = f.a.connection.opens
    start = f.a.master.cycles
    while f.a.connection.opens == opens:
        start = f.a.master.cycles
        gw.step()
    f.until("A online", lambda: f.online(f.a))
    assert f.a.master.cycles - start <= 2
    assert display_a.call == ("A-001", "2番窓口") and display_a.calls == [] and display_a.chimes == 0
    assert f"bus {BUS_A}: port open again after" in caplog.text
    # The attempts followed the doubling back-off on the injected clock (each at the first
    # gateway step after it was due: a step of bus B takes at most its 50 ms cycle).
    attempts = [lost_at, *f.adapter.attempts[1:]]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for gap, due in zip(gaps, [0.25, 0.5, 1.0, 2.0, 4.0], strict=False):
        assert due - 1e-9 <= gap <= due + 0.06, gaps


def test_a_call_reaches_every_display_on_every_bus_once_and_a_restarted_display_gets_it_back_quietly(
    floor: TwoBuses,
) -> None:
    f, gw = floor, floor.gw
    gw.start()
    f.until("online", lambda: f.online(f.a) and f.online(f.b))
    display_a, display_b = f.adapter.devices[16], f.b.port.bus.devices[16]
    for req in ({"cmd": "issue", "service": "move"},) * 2 + ({"cmd": "open", "counter": "1"},):
        assert gw.handle(req)["ok"], req
    f.adapter.devices[5].key(P.KEY_CALL_NEXT)  # a pad on bus A
    f.until("shown on both buses", lambda: display_a.call is not None and display_b.call is not None)
    assert gw.handle({"cmd": "open", "counter": "2"})["ok"]
    assert gw.handle({"cmd": "call", "counter": "2"})["ok"]  # the control socket
    f.until("the second call on both", lambda: display_a.call == display_b.call == ("A-002", "2番窓口"))
    t = f.clock.now()
    f.until("a second more", lambda: f.clock.now() >= t + 1.0)
    expected = [(P.CALL_NEW, "A-001", "1番窓口"), (P.CALL_NEW, "A-002", "2番窓口")]
    assert display_a.calls == expected and display_b.calls == expected  # each once, on each bus
    assert f.adapter.devices[5].number == "A001" and f.b.port.bus.devices[6].number == "A002"

    display_b.reboot()
    f.until("restored", lambda: display_b.call is not None)
    assert display_b.call == ("A-002", "2番窓口")
    assert display_b.recent == (("A-002", "2番窓口"), ("A-001", "1番窓口"))
    assert display_b.calls == [] and display_b.chimes == 0  # restored, not announced again
    assert display_a.calls == expected


def test_a_router_shows_a_link_listed_twice_once(nerima: OfficeConfig) -> None:
    clock = FakeClock()
    bus = one_bus(nerima, clock)
    router = CallRouter(bus.links)
    router.add(bus.links)
    assert len(router.links) == 3 and router.links[0].spec.kind == P.KIND_CALL_DISPLAY


def test_a_port_missing_at_startup_is_logged_and_retried_while_the_rest_runs(
    floor: TwoBuses, caplog: pytest.LogCaptureFixture
) -> None:
    f, gw = floor, floor.gw
    f.adapter.unplug()
    caplog.set_level(logging.INFO, logger="gateway.bus")
    gw.start()
    assert f"bus {BUS_A}: cannot open port ([Errno 2] could not open port {BUS_A}" in caplog.text
    f.until("B online", lambda: f.online(f.b))
    assert f.a.port is None and all(link.state is LinkState.CONNECTING for link in f.a.master.links)
    f.adapter.plug()
    f.until("A online", lambda: f.online(f.a))
    assert len(f.adapter.attempts) >= 2 and f.a.connection.opens == 1


def test_with_every_port_missing_the_gateway_waits_for_the_next_attempt_and_still_answers(tmp_path: Path) -> None:
    f = TwoBuses(tmp_path, text=two_bus_text(port_b=str(tmp_path / "ttyUSB-not-plugged")))
    f.adapter.unplug()
    gw = f.gw
    gw.start()
    try:
        assert all(bus.port is None for bus in gw.buses)
        times = [f.clock.now()]
        for _ in range(40):
            gw.step()
            times.append(f.clock.now())
        steps = [b - a for a, b in itertools.pairwise(times)]
        # Never a busy loop, never a long sleep: each step waits for the next attempt, at most a cycle.
        assert all(0 < s <= 0.05 + 1e-9 for s in steps), steps
        due = [t for t in (0.0, 0.25, 0.75, 1.75, 3.75) if t <= f.clock.now()]
        assert len(due) >= 3 and [round(t, 9) for t in f.adapter.attempts] == due  # each exactly on time
        assert gw.handle({"cmd": "ping"})["ok"]
        f.adapter.plug()
        f.until("A online", lambda: f.online(f.a))
        assert f.bus(str(tmp_path / "ttyUSB-not-plugged")).port is None
    finally:
        gw.close()


def test_a_babbling_device_does_not_starve_the_other_bus_or_the_socket(tmp_path: Path) -> None:
    babblers: list[Babbler] = []

    def babbling(port: Any) -> Babbler:
        babblers.append(Babbler(port))
        return babblers[-1]

    f = TwoBuses(tmp_path, wrap_a=babbling)
    gw = f.gw
    gw.start()
    try:
        f.until("online", lambda: f.online(f.a) and f.online(f.b))
        babblers[-1].on = True
        cycles_b = f.b.master.cycles
        f.until("A offline", lambda: all_in(f.a.master, LinkState.OFFLINE))
        t = f.clock.now()
        f.until("a second of flood", lambda: f.clock.now() >= t + 1.0)
        assert f.b.master.cycles - cycles_b >= 10 and f.online(f.b)
        assert gw.handle({"cmd": "ping"})["ok"]
        assert f.a.connection.driver is not None and f.a.connection.driver.floods > 0
        babblers[-1].on = False
        f.until("A online again", lambda: f.online(f.a))
    finally:
        gw.close()


@pytest.mark.parametrize(
    ("port", "error"),
    [
        ("xyz://nowhere", "protocol 'xyz' not known"),
        ("sim://bus?counter_pad=6&call_display=16&colour=red", "unknown option(s) colour"),
        ("loop://?bogus=1", "not a valid serial URL"),
    ],
)
def test_a_port_url_that_can_never_work_is_a_configuration_error(tmp_path: Path, port: str, error: str) -> None:
    f = TwoBuses(tmp_path, text=two_bus_text(port_b=port))
    with pytest.raises(service.GatewayError) as info:
        f.gw.start()
    assert f"bad bus port URL {port!r}" in str(info.value) and error in str(info.value)
    assert f.gw.buses == [] and not f.gw.socket_file.exists()


@pytest.mark.slow
def test_the_gateway_process_starts_without_its_adapter_and_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "ttyUSB-not-plugged"
    config = tmp_path / "office.toml"
    config.write_text(two_bus_text(port_b=str(missing)), encoding="utf-8")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "counterfloor.cli",
            "gateway",
            "run",
            "--config",
            str(config),
            "--run-for",
            "0.5",
            "--journal",
            str(tmp_path / "j.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("COUNTERFLOOR_")}},
        input="",
    )
    assert r.returncode == 0, r.stderr
    assert "ready office=oizumi" in r.stdout and "buses=2" in r.stdout
    assert f"bus {missing}: cannot open port" in r.stderr and "next attempt in 0.25 s" in r.stderr


# -- real ptys -----------------------------------------------------------------------------------
class PtyPeer:
    """Simulated devices on the far end of a real pty pair, reached through a stable path (a
    symlink, as udev's /dev/serial/by-id/… is): a thread answers whatever the gateway writes."""

    def __init__(self, devices: SimBus, path: Path) -> None:
        self.devices = devices
        self.path = path
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        path.symlink_to(os.ttyname(self.slave))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                reply = self.devices.receive(os.read(self.master, 4096))
                if reply:
                    os.write(self.master, reply)
            except OSError:
                return

    def close(self) -> None:
        """The adapter goes: both ends of the pty close and its path disappears."""
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.path.unlink()


def test_a_closed_pty_is_noticed_and_reopened_when_its_path_comes_back(nerima: OfficeConfig, tmp_path: Path) -> None:
    clock = FakeClock()
    bus = one_bus(nerima, clock)
    devices = SimBus([SimDevice.named(k, a) for k, a in (("dispenser", 1), ("counter_pad", 5), ("call_display", 16))])
    path = tmp_path / "ttyBUS"

    def opener(url: str) -> Any:
        return open_link(url, timeout=5.0)  # a read waits for the peer's reply (bounded), not the fake clock

    conn = BusConnection(bus, str(path), clock, opener, Backoff(first=0.25, limit=2.0))
    peer = PtyPeer(devices, path)
    try:
        assert conn.connect()
        for _ in range(200):
            if all_in(bus, LinkState.ONLINE):
                break
            conn.step()
        assert all_in(bus, LinkState.ONLINE)
    finally:
        peer.close()
    effects: list[LinkEffect] = []
    for _ in range(5):  # what was already written may still go out; the loss is seen at once after
        effects += conn.step()
        if not conn.is_open:
            break
    assert not conn.is_open and all_in(bus, LinkState.OFFLINE)
    assert any(isinstance(e, StateChanged) and "port lost" in e.why for e in effects)
    clock.wait_until(conn.retry_at)
    assert conn.step() == [] and conn.failed_opens == 1  # its path is gone too

    peer = PtyPeer(devices, path)
    try:
        clock.wait_until(conn.retry_at)
        start = bus.cycles
        for _ in range(200):
            conn.step()
            if all_in(bus, LinkState.ONLINE):
                break
        assert conn.opens == 2 and all_in(bus, LinkState.ONLINE)
        assert bus.cycles - start <= 2
    finally:
        conn.close()
        peer.close()
