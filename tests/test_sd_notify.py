"""systemd's notify protocol (gateway.sd_notify): the datagrams themselves, then the real
`counterfloor gateway run` and `counterfloor central` sending READY and WATCHDOG to a real datagram
socket, and a loop held up that stops its pings (the ping comes from the loop, not a thread)."""

from __future__ import annotations

import configparser
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.service import TurnFlag
from central.worker import CentralWorker, WorkerConfig
from gateway.sd_notify import Notifier, socket_address
from gateway.service import Gateway
from office.config import parse_config
from tests.conftest import EXAMPLES, ROOT

DEADLINE_S = 20.0
CLI = [sys.executable, "-m", "counterfloor.cli"]


class NullOutbox:
    """A central worker's publications, accepted and dropped."""

    def publish(self, topic: str, payload: bytes, retain: bool) -> bool:
        return True


class Receiver:
    """systemd's side: a datagram socket bound at a path or an abstract name."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bound = socket_address(address)
        assert bound is not None
        self.sock.bind(bound)
        self.address = address
        self.got: list[str] = []

    def next(self, timeout: float = DEADLINE_S) -> str | None:
        self.sock.settimeout(timeout)
        try:
            message = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.got.append(message)
        return message

    def until(self, field: str, timeout: float = DEADLINE_S) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is not None and field in message.split("\n"):
                return message
        raise AssertionError(f"no {field} within {timeout} s; got {self.got}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(str(tmp_path / "notify"))
    yield r
    r.close()


# -- the datagrams --------------------------------------------------------------------------------
def test_addresses_paths_and_abstract_names() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@cf-notify") == "\0cf-notify"
    assert socket_address("@") is None
    assert socket_address("vsock:2:1234") is None


def test_from_env_reads_the_watchdog_and_removes_the_variables(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42", "PATH": "/bin"}
    n = Notifier.from_env(env, pid=42)
    assert n.enabled and n.watchdog_s == 30.0
    assert env == {"PATH": "/bin"}  # children (central's workers, the sign renderer) notify nothing
    other = Notifier.from_env({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=42)
    assert other.enabled and other.watchdog_s is None  # the watchdog is another process's
    assert not Notifier.from_env({}).enabled


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier.from_env({})
    n.ready("x")
    n.alive(lambda: "y")
    n.stopping()
    assert not n.send("READY=1") and n.pings == 0


def test_pings_at_half_the_interval_and_status_only_when_changed(receiver: Receiver) -> None:
    now = [100.0]
    n = Notifier(socket_address(receiver.address), watchdog_s=10.0, clock=lambda: now[0])
    n.ready("starting")
    assert receiver.next() == "READY=1\nSTATUS=starting"
    n.alive(lambda: "serving")
    assert receiver.next() == "WATCHDOG=1\nSTATUS=serving"
    now[0] += 4.9
    n.alive(lambda: "serving")
    assert receiver.next(0.05) is None  # not yet half the interval
    now[0] += 0.2
    n.alive(lambda: "serving")
    assert receiver.next() == "WATCHDOG=1"  # the same status is not sent again
    n.stopping("bye")
    assert receiver.next() == "STOPPING=1\nSTATUS=bye"
    assert n.pings == 2


def test_a_send_error_is_logged_once_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"), watchdog_s=0.001)
    with caplog.at_level(logging.WARNING, logger="gateway.sd_notify"):
        n.ready("x")
        for _ in range(5):
            time.sleep(0.002)
            n.alive()
    assert n.pings == 5
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


# -- the real services ----------------------------------------------------------------------------
@pytest.fixture
def office_config(tmp_path: Path) -> Path:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    path = tmp_path / "oizumi.toml"
    # clock = "rtc": the real wall clock is trusted whether or not this machine's is synchronised
    # (else the floor waits for it to be confirmed: tests/test_clock_sync.py).
    gateway = '[gateway]\njournal = "journal.db"\nclock = "rtc"\n'
    path.write_text(text.replace("[gateway]\n", gateway, 1), encoding="utf-8")
    return path


def _env(address: str, watchdog_us: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERFLOOR_")}
    return {**env, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(watchdog_us), "PYTHONUNBUFFERED": "1"}


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_gateway_run_notifies_ready_then_pings_then_stopping(office_config: Path, tmp_path: Path) -> None:
    receiver = Receiver(f"@counterfloor-test-{os.getpid()}-{time.monotonic_ns()}")  # the abstract namespace
    proc = subprocess.Popen(
        [*CLI, "gateway", "run", "--config", str(office_config)],
        cwd=ROOT,
        env=_env(receiver.address, 400_000),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = receiver.until("READY=1")
        assert "STATUS=serving oizumi: " in ready
        first = receiver.until("WATCHDOG=1")
        assert receiver.got.index(first) > receiver.got.index(ready)
        t0 = time.monotonic()
        receiver.until("WATCHDOG=1")
        receiver.until("WATCHDOG=1")
        assert time.monotonic() - t0 < 2.0  # every ~0.2 s: half of WATCHDOG_USEC
        online = receiver.until("STATUS=serving oizumi: 6/6 devices online, 0 waiting, seq 0", timeout=10)
        assert online
        assert _stop(proc) == 0
        stopping = receiver.until("STOPPING=1")
        assert "STATUS=stopping oizumi" in stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        receiver.close()


@pytest.mark.slow
def test_central_notifies_ready_then_pings(receiver: Receiver, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on: the worker's loop turns regardless
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*CLI, "central", "--broker", f"mqtt://127.0.0.1:{port}", "--store", str(tmp_path / "central.db")],
        cwd=ROOT,
        env=_env(receiver.address, 2_000_000),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = receiver.until("READY=1")
        assert "STATUS=worker 0/1: 0 offices rebuilt" in ready
        receiver.until("WATCHDOG=1")
        receiver.until("WATCHDOG=1")
        assert "broker NOT connected" in "".join(receiver.got)
        assert _stop(proc) == 0
        receiver.until("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- a loop that hangs stops pinging ----------------------------------------------------------------
def _quiet(receiver: Receiver, seconds: float) -> list[str]:
    """The WATCHDOG pings that arrive within `seconds`."""
    deadline = time.monotonic() + seconds
    pings = []
    while (left := deadline - time.monotonic()) > 0:
        message = receiver.next(left)
        if message is not None and "WATCHDOG=1" in message.split("\n"):
            pings.append(message)
    return pings


def test_a_gateway_loop_held_up_stops_its_pings(office_config: Path, tmp_path: Path, receiver: Receiver) -> None:
    text = office_config.read_text(encoding="utf-8")
    gw = Gateway(
        parse_config(text, source=str(office_config)), text, tmp_path / "j.db", tmp_path / "j.sock", io.StringIO()
    )
    gw.notifier = Notifier(socket_address(receiver.address), watchdog_s=0.1)
    held, holding = threading.Event(), threading.Event()
    step = gw.step

    def step_or_hang() -> None:  # the test hook: a turn that hangs (a stuck port, a stuck write)
        if held.is_set():
            holding.set()
            while held.is_set():
                time.sleep(0.01)
        step()

    gw.step = step_or_hang  # type: ignore[method-assign]
    gw.start()
    runner = threading.Thread(target=gw.run, args=(30.0,))
    try:
        gw.notifier.ready("test")
        runner.start()
        receiver.until("WATCHDOG=1", timeout=5)
        held.set()
        assert holding.wait(5)
        while _quiet(receiver, 0.06):
            pass
        assert _quiet(receiver, 0.5) == []  # 10 intervals: no ping while the loop hangs
        held.clear()
        receiver.until("WATCHDOG=1", timeout=5)
    finally:
        held.clear()
        gw.stopping = True
        runner.join(10)
        gw.close()


def test_central_worker_beat_comes_from_its_loop(tmp_path: Path) -> None:
    worker = CentralWorker(WorkerConfig(f"sqlite:///{tmp_path / 'c.db'}", train=False), outbox=NullOutbox())
    worker.start()
    beats = [0]
    held = threading.Event()
    holding = threading.Event()
    turn = worker.turn

    def turn_or_hang(now: float) -> None:
        if held.is_set():
            holding.set()
            while held.is_set():
                time.sleep(0.01)
        turn(now)

    def beat() -> None:
        beats[0] += 1

    worker.turn = turn_or_hang  # type: ignore[method-assign]
    stop = TurnFlag(beat)
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    try:
        while beats[0] < 3:
            worker.wake()
            time.sleep(0.005)
        held.set()
        assert holding.wait(5)
        before = beats[0]
        for _ in range(20):
            worker.wake()
            time.sleep(0.01)
        assert beats[0] == before  # the loop hangs in a turn: no beat
        held.clear()
        while beats[0] == before:
            worker.wake()
            time.sleep(0.005)
    finally:
        held.clear()
        stop.set()
        worker.wake()
        runner.join(10)
        worker.close()


@pytest.mark.parametrize("unit", ["counterfloor-gateway.service", "counterfloor-central.service"])
def test_the_units_wait_for_ready_and_watch_the_loop(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(ROOT / "deploy" / unit)
    service = parser["Service"]
    assert (service["Type"], service["NotifyAccess"], service["Restart"]) == ("notify", "main", "always")
    assert 10 <= int(service["WatchdogSec"]) <= 120
    assert "StartLimitIntervalSec" in parser["Unit"]
