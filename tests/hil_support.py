"""Hardware-in-the-loop harness: the gateway (BusMaster, SyncDriver, a real TicketJournal) and the
three board firmwares, each in the real MicroPython Unix port, joined by a pty hub (hal.bus_hub).

Time: the gateway runs on a simulated clock (`JumpClock`, seconds since the start, added to a fixed
wall moment for the journal), so bus cycles are what the tests count. The boards run on their own
real tick clocks. `HubPort` waits (for real) a bounded time for a reply's bytes, once per exchange,
before the driver's clock jumps to the reply deadline: a board in another process answers within
milliseconds, but not within the protocol's 2.5 ms on a loaded host.

Boards are driven through the Unix-port test hook in firmware/board.py ($COUNTERFLOOR_HIL: pin
commands on stdin, pin echoes and chimes on stdout), and the call display's content is read from
its flash file (display_state.json), as it would be after a power cut.
"""

from __future__ import annotations

import json
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.bus import BusMaster, PressStore, SyncDriver
from gateway.device_link import DeviceLink, DeviceSpec, LinkEffect, LinkState, PrintTicket
from gateway.journal import TicketJournal
from hal.bus_hub import BusHub, DeviceLine
from hal.codec import P
from hal.firmware_sim import start_board
from hal.serial_link import open_link
from office import events as ev
from office.config import OfficeConfig
from office.model import Command, Decision, OpenCounter

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
REPLY_GRACE_S = 0.12  # real seconds a reply may take to start arriving (once per exchange)
BOOT_TIMEOUT_S = 10.0
BOARDS = (("dispenser", 1), ("counter_pad", 5), ("call_display", 16))


class JumpClock:
    """Simulated monotonic seconds: wait_until jumps, nothing sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, t)


class HubPort:
    """The gateway's pty (a pyserial port opened with timeout 0) for SyncDriver: a read with
    nothing waiting waits, in real time, for the reply to start, at most REPLY_GRACE_S per
    exchange (a write starts one); after that it returns b"" and the driver times out."""

    def __init__(self, url: str) -> None:
        self.serial: Any = open_link(url, timeout=0)  # a pyserial port on a pty
        self._budget_end = 0.0
        self.sent: list[Any] = []
        self._decoder = P.Decoder()

    def write(self, data: bytes, /) -> int | None:
        self.sent.extend(self._decoder.feed(data))
        self._budget_end = time.monotonic() + REPLY_GRACE_S
        return int(self.serial.write(data))

    def read(self, size: int = 1, /) -> bytes:
        if not self.serial.in_waiting:
            left = self._budget_end - time.monotonic()
            if left > 0:
                select.select([self.serial.fileno()], [], [], left)
        return bytes(self.serial.read(size))

    @property
    def in_waiting(self) -> int:
        return int(self.serial.in_waiting)

    def close(self) -> None:
        self.serial.close()


class Board:
    """One board firmware in a MicroPython process on its hub line; its stdout lines are
    collected by a reader thread."""

    def __init__(self, kind: str, addr: int, line: DeviceLine, flash: Path) -> None:
        self.kind = kind
        self.addr = addr
        self.line = line
        self.flash = flash
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.boots = 0

    def start(self) -> None:
        # Restarted from other places than where it began (reboot tests): no parent-death tie.
        self.proc = start_board(MICROPYTHON, self.kind, self.addr, self.line.path, self.flash, die_with_parent=False)
        self.boots += 1
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    def drain(self) -> list[str]:
        """Lines printed since the last drain (also kept in `output`)."""
        new = []
        while True:
            try:
                new.append(self.lines.get_nowait())
            except queue.Empty:
                break
        self.output += new
        return new

    def send(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.drain()

    def chimes(self) -> list[str]:
        self.drain()
        return [line for line in self.output if line.startswith("chime ")]

    def shown(self) -> dict[str, Any] | None:
        """What the call display keeps on flash (it saves every change)."""
        path = self.flash / "display_state.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data


@dataclass
class Floor:
    """The gateway and the three boards on one hub (see the module docstring)."""

    config: OfficeConfig
    config_text: str
    wall0: datetime
    tmp: Path
    seed: int = 0
    min_cycle: float = 0.02
    clock: JumpClock = field(default_factory=JumpClock)
    effects: list[LinkEffect] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    def __post_init__(self) -> None:
        cfg = self.config
        self.journal_path = self.tmp / "journal.sqlite"
        self.journal = TicketJournal.create(self.journal_path, cfg, self.config_text, clock=self.wall)
        self.journal.execute(OpenCounter("1"), self.wall())
        services = tuple(s.id for s in cfg.services)
        n = {"token": 0}

        def token() -> str:
            n["token"] += 1
            return f"hil-{n['token']:04d}"

        self.links = [
            DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, services), token),
            DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, services, counter="1"), token),
            DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), token, counter_label=self.label),
        ]
        # Presses journalled by request id, as gateway.service does (the hub's pty is the bus).
        self.bus = BusMaster(
            self.links, self.execute, min_cycle=self.min_cycle, presses=PressStore("hub", self.execute)
        )
        self.hub = BusHub()
        self.boards: dict[str, Board] = {}
        for i, (kind, addr) in enumerate(BOARDS):
            line = self.hub.add(kind, seed=self.seed * 10 + i)
            self.boards[kind] = Board(kind, addr, line, self.tmp / kind)
        self.hub.start()
        self.port = HubPort(self.hub.gateway_path)
        self.driver = SyncDriver(self.bus, self.port, self.clock)

    # -- the gateway ---------------------------------------------------------------------------
    def label(self, counter: str) -> str:
        return self.config.counter(counter).name.ja

    def wall(self) -> datetime:
        return self.wall0 + timedelta(seconds=self.clock.now())

    def execute(self, command: Command, request: str | None = None) -> Decision:
        self.commands.append(command)
        return self.journal.execute(command, self.wall(), request=request)

    def step(self) -> None:
        self.effects += self.driver.step()

    def cycles(self, n: int) -> None:
        self.effects += self.driver.run_cycles(n)

    def until(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> int:
        """Run the bus until `condition()` holds; the bus cycles it took. Fails after `timeout`
        real seconds (a bound on a broken run, not a synchronisation)."""
        start = self.bus.cycles
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s ({self.bus.cycles - start} cycles)")
            self.step()
        return self.bus.cycles - start

    def state(self, kind: str) -> LinkState:
        return self.bus.by_addr[self.boards[kind].addr].state

    def all_online(self) -> bool:
        return all(link.state is LinkState.ONLINE for link in self.links)

    # -- the boards ----------------------------------------------------------------------------
    def start_boards(self) -> None:
        for board in self.boards.values():
            board.start()
        for board in self.boards.values():
            self.wait_line(board, "ready ")

    def wait_line(self, board: Board, prefix: str, *, run_bus: bool = False) -> str:
        """The next line `board` prints starting with `prefix` (running the bus meanwhile if
        asked, so the other boards stay polled)."""
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        seen = len(board.output)
        while time.monotonic() < deadline:
            board.drain()
            for line in board.output[seen:]:
                if line.startswith(prefix):
                    return line
            seen = len(board.output)
            if run_bus:
                self.step()
            else:
                try:
                    line = board.lines.get(timeout=0.05)
                except queue.Empty:
                    continue
                board.output.append(line)
                if line.startswith(prefix):
                    return line
        raise AssertionError(f"{board.kind}: no {prefix!r} line within {BOOT_TIMEOUT_S} s: {board.output}")

    def reboot(self, kind: str) -> None:
        """Kill the board's process and start it again on the same pty (its flash kept); the bus
        runs meanwhile. Its line is pulled from the kill until it is listening again."""
        board = self.boards[kind]
        board.line.line.pulled = True
        board.kill()
        board.start()
        self.wait_line(board, "ready ", run_bus=True)
        board.line.flush()
        board.line.line.pulled = False

    def close(self) -> None:
        for board in self.boards.values():
            board.kill()
        self.port.close()
        self.hub.close()
        self.journal.close()

    # -- what happened -------------------------------------------------------------------------
    def stored(self) -> list[ev.Event]:
        """Every event in the journal, read back from SQLite."""
        from gateway.journal import JournalReader

        with JournalReader(self.journal_path) as reader:
            return list(reader.events())

    def issued(self) -> list[str]:
        return [e.ticket for e in self.stored() if isinstance(e, ev.TicketIssued)]

    def called(self) -> list[str]:
        return [e.ticket for e in self.stored() if isinstance(e, ev.Called)]

    def printed(self) -> list[str]:
        return [e.ticket.ticket for e in self.effects if isinstance(e, PrintTicket)]
