"""sim:// with `backend=micropython`: the real board firmware, one MicroPython process per
device, behind the pyserial port that open_link returns (hal.firmware_sim), driven by the real
gateway (BusMaster + SyncDriver on the real monotonic clock, the protocol's own 2.5 ms reply
time-out, a TicketJournal on SQLite); and `backend=auto` choosing it, or python without it.

Every wait is a deadline-bounded wait on a condition (DEADLINE_S real seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import serial

from gateway import service
from gateway.bus import BusMaster, MonotonicClock, SyncDriver, offered_services
from gateway.device_link import (
    CommandDone,
    CommandFailed,
    DeviceLink,
    DeviceSpec,
    LinkEffect,
    LinkState,
    PrintTicket,
)
from gateway.journal import TicketJournal
from hal import firmware_sim
from hal.codec import P
from hal.serial_link import open_link
from office.config import OfficeConfig, load_config
from office.model import OpenCounter
from tests.conftest import EXAMPLES, ROOT, tokyo

MONDAY_10 = tokyo(2027, 3, 15, 10, 0)
DEADLINE_S = 20.0
URL = "sim://bus?dispenser=1&counter_pad=5&call_display=16&backend=micropython"
MICROPYTHON = firmware_sim.find_micropython()

needs_micropython = pytest.mark.skipif(MICROPYTHON is None, reason="MicroPython Unix port not installed (uv sync)")


def alive(pid: int) -> bool:
    """Whether a process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(condition: Callable[[], bool], what: str, step: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S} s"
        if step is not None:
            step()
        else:
            time.sleep(0.01)  # polling a condition, bounded by the deadline


class Gateway:
    """The gateway's bus end in this process: the port from open_link(URL), BusMaster,
    SyncDriver on the real clock, a TicketJournal for the nerima config."""

    def __init__(self, cfg: OfficeConfig, text: str, tmp: Path) -> None:
        self.cfg = cfg
        self.start = time.monotonic()
        self.journal = TicketJournal.create(tmp / "journal.sqlite", cfg, text, clock=self.wall)
        self.journal.execute(OpenCounter("1"), self.wall())
        services = tuple(s.id for s in cfg.services)
        self.links = [
            DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, services), self.token),
            DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, services, counter="1"), self.token),
            DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), self.token),
        ]
        self.tokens = 0
        self.effects: list[LinkEffect] = []
        port: Any = open_link(URL, timeout=0)
        self.port = port
        self.clock = MonotonicClock()
        self.bus = BusMaster(self.links, lambda c: self.journal.execute(c, self.wall()), min_cycle=0.02)
        self.driver = SyncDriver(self.bus, port, self.clock)
        self.bus.set_offered(offered_services(cfg, self.wall()), self.clock.now())

    def token(self) -> str:
        self.tokens += 1
        return f"mp-{self.tokens:04d}"

    def wall(self) -> datetime:
        return MONDAY_10 + timedelta(seconds=time.monotonic() - self.start)

    def step(self) -> None:
        self.effects += self.driver.step()

    def until(self, condition: Callable[[], bool], what: str) -> None:
        wait_for(condition, what, self.step)

    def issued(self) -> list[str]:
        return list(self.journal.office.state.tickets)

    def close(self) -> None:
        self.port.close()
        self.journal.close()


@pytest.fixture
def gateway(nerima: OfficeConfig, tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(nerima, (EXAMPLES / "nerima.toml").read_text(encoding="utf-8"), tmp_path)
    try:
        yield gw
    finally:
        gw.close()


@needs_micropython
def test_the_firmware_boards_come_online_and_a_press_issues_a_ticket(gateway: Gateway) -> None:
    gw = gateway
    firmware = gw.port.firmware
    assert gw.port.backend_name == "micropython" and gw.port.bus is None
    assert sorted(firmware.boards) == [1, 5, 16]
    gw.until(lambda: all(link.state is LinkState.ONLINE for link in gw.links), "every board online")
    assert gw.bus.timeouts == 0  # the 2.5 ms reply time-out is never hit: replies wait at the port

    dispenser = firmware.boards[1]
    seen = dispenser.printed
    dispenser.send("down button1")  # seal
    gw.until(lambda: len(gw.issued()) == 1, "a ticket issued")
    dispenser.send("up button1")
    assert dispenser.wait_line("pin button1 up", DEADLINE_S, since=seen) is not None
    gw.until(lambda: any(isinstance(e, PrintTicket) for e in gw.effects), "a print job")
    assert gw.issued() == ["B-001"]
    assert gw.journal.office.state.tickets["B-001"].service == "seal"
    assert firmware.late == 0


@needs_micropython
def test_close_stops_every_board_process_and_removes_the_flash_dirs() -> None:
    port: Any = open_link(URL, timeout=0)
    firmware = port.firmware
    pids = firmware.pids()
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    assert firmware.tmp.is_dir()
    port.close()
    assert not any(alive(pid) for pid in pids)
    assert not firmware.tmp.exists()
    port.close()  # twice is fine


@needs_micropython
def test_a_killed_owner_leaves_no_boards_behind(tmp_path: Path) -> None:
    """Linux: the boards die with the process that opened the port, even without close()."""
    if sys.platform != "linux":
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    script = textwrap.dedent(
        f"""
        import sys
        from hal.serial_link import open_link
        port = open_link({URL!r})
        print(" ".join(map(str, port.firmware.pids())), flush=True)
        sys.stdin.read()
        """
    )
    env = dict(os.environ, TMPDIR=str(tmp_path))  # its flash dirs, which nobody removes after a kill
    owner = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
    finally:
        owner.kill()
        owner.wait(timeout=DEADLINE_S)
    wait_for(lambda: not any(alive(pid) for pid in pids), "the boards gone with their owner")
    (flash,) = tmp_path.iterdir()
    assert flash.name.startswith("counterfloor-sim-")


@needs_micropython
def test_the_gateway_service_runs_the_example_bus_on_the_firmware(tmp_path: Path) -> None:
    """gateway.service as `counterfloor gateway run` builds it, on the oizumi example's devices
    with backend=micropython and the default (protocol) reply time-out: a press prints."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    config_file = tmp_path / "oizumi.toml"
    url = load_config(EXAMPLES / "oizumi.toml").gateway.port
    assert url is not None and url.startswith("sim://")
    config_file.write_text(text.replace(url, url + "&backend=micropython"), encoding="utf-8")
    config = load_config(config_file)
    assert config.gateway.reply_timeout_ms is None
    start = time.monotonic()

    def wall() -> datetime:
        return MONDAY_10 + timedelta(seconds=time.monotonic() - start)

    gw = service.Gateway(config, text, tmp_path / "j.db", tmp_path / "j.sock", sys.stdout, wall=wall)
    gw.start()
    try:
        bus = gw.buses[0]
        boards = bus.port.firmware.boards
        pids = bus.port.firmware.pids()
        assert len(pids) == len(config.devices)
        gw_step: Callable[[], object] = gw.step
        wait_for(lambda: all(link.state is LinkState.ONLINE for link in bus.master.links), "online", gw_step)
        boards[1].send("down button1")  # seal
        assert gw.printing is not None and gw.journal is not None
        line = gw.printing.lines["entrance"]  # the example's printer: sim://printer (gateway.printing)
        wait_for(lambda: line.machine.printed == 1, "printed", gw_step)
        boards[1].send("up button1")
        token = gw.journal.office.state.tickets["B-001"].token
        assert f"{config.public_base_url}/t/{token}".encode() in bytes(line.port.printer.printed)
        assert bus.master.timeouts == 0
    finally:
        gw.close()
    assert not any(alive(pid) for pid in pids)


def test_auto_falls_back_to_the_python_devices_without_micropython(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firmware_sim, "find_micropython", lambda: None)
    port: Any = open_link("sim://bus?dispenser=1&call_display=16")  # backend=auto is the default
    assert port.backend_name == "python" and port.firmware is None
    assert sorted(port.bus.devices) == [1, 16]
    port.write(P.Identify(1, 0).to_bytes())
    (hello,) = P.Decoder().feed(port.read(100))
    assert (hello.NAME, hello.addr) == ("HELLO", 1)
    port.close()
    with pytest.raises(serial.SerialException, match="no MicroPython Unix port found"):
        open_link("sim://dispenser?addr=1&backend=micropython")


def test_the_binary_is_found_by_env_then_beside_python_then_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bin" / "micropython"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv(firmware_sim.ENV_BINARY, str(fake))
    assert firmware_sim.find_micropython() == fake
    monkeypatch.setenv(firmware_sim.ENV_BINARY, "")  # set but empty: none
    assert firmware_sim.find_micropython() is None
    monkeypatch.setenv(firmware_sim.ENV_BINARY, str(tmp_path / "missing"))
    assert firmware_sim.find_micropython() is None
    monkeypatch.delenv(firmware_sim.ENV_BINARY)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "python"))
    monkeypatch.setenv("PATH", str(fake.parent) + os.pathsep + os.environ.get("PATH", ""))
    assert firmware_sim.find_micropython() == fake
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert firmware_sim.find_micropython() is None


@needs_micropython
def test_restart_over_the_bus_resets_the_real_firmware_which_comes_back_with_a_software_reset(
    gateway: Gateway,
) -> None:
    """RESTART to the call display: it ACKs (CommandDone with the token), resets through
    board.reset (exit 75; the sim starts it again, as a Pico reboots) and says HELLO with reset
    cause 4 (software) and a new boot number; the other boards carry on."""
    gw = gateway
    display = gw.port.firmware.boards[16]
    link = gw.bus.by_addr[16]
    gw.until(lambda: all(link.state is LinkState.ONLINE for link in gw.links), "every board online")
    assert link.identity is not None and link.identity.proto == P.PROTOCOL_VERSION == 3
    boot = link.boot
    assert link.maintenance("RESTART", lambda a, s: P.Restart(a, s), "test:restart") is None
    gw.until(lambda: CommandDone(16, "RESTART", "test:restart") in gw.effects, "the RESTART acknowledged")
    gw.until(lambda: display.restarts == 1, "the board reset and started again")
    gw.until(
        lambda: (
            link.state is LinkState.ONLINE and link.identity is not None and link.identity.reset_cause == P.RESET_SOFT
        ),
        "the display back, identified, after a software reset",
    )
    assert link.boot == boot + 1
    assert display.wait_line("boot: reset_cause=4", DEADLINE_S) is not None
    assert not any(isinstance(e, CommandFailed) and e.name == "RESTART" for e in gw.effects)
