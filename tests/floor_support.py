"""Shared by the bus and device-link tests: a fake clock and a small floor of simulated devices."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.bus import BusMaster, SyncDriver
from gateway.device_link import DeviceLink, DeviceSpec, LinkEffect, PrintTicket
from hal.codec import P
from hal.serial_link import open_link
from office.config import OfficeConfig, parse_config
from office.model import Command, Decision, Office, OpenCounter
from tests.conftest import EXAMPLES

if TYPE_CHECKING:
    from gateway.service import Gateway

T = TypeVar("T")


def answered_while_turning(ask: Callable[[], T], turn: Callable[[], None], what: object, safety_s: float) -> T:
    """`ask()` (a blocking client of the control socket) in a thread, this thread turning the
    gateway's loop until it has its answer; the client's exception raised here."""
    result: list[T | BaseException] = []

    def client() -> None:
        try:
            result.append(ask())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + safety_s
    while thread.is_alive():
        assert time.monotonic() < deadline, f"no answer to {what}"
        turn()
    thread.join()
    answer = result[0]
    if isinstance(answer, BaseException):
        raise answer
    return answer


class FakeClock:
    """Monotonic seconds that move only when told: wait_until jumps."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, t)


class HeldClock:
    """Monotonic seconds that move only when a test sets `t`: wait_until does not jump, so a
    gateway's steps cost no time and a deadline passes only when the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        pass


def floor_without_devices(directory: Path, gateway_lines: str = "") -> tuple[OfficeConfig, str]:
    """The oizumi example without devices or printers, with `gateway_lines` in its [gateway]
    table: a gateway whose loop only the control socket (or the broker) keeps busy."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8").split("\n[gateway]")[0]
    text += f"\n[gateway]\n{gateway_lines}\n"
    return parse_config(text, source=str(directory / "office.toml")), text


def held_gateway(
    tmp_path: Path, config: OfficeConfig, text: str, at: datetime | None = None, name: str = "j", **extra: Any
) -> tuple[Gateway, HeldClock]:
    """A gateway (not started) on a held clock, its wall clock `at` (default Monday 10:00 in
    Tokyo: the office open, "move" offered) plus the held clock's count; its journal and socket
    `<name>.db`, `<name>.sock` in `tmp_path`."""
    from gateway.service import Gateway
    from tests.conftest import tokyo

    clock = HeldClock()
    opening = (at or tokyo(2027, 3, 15, 10, 0)) - timedelta(seconds=clock.t)
    gw = Gateway(
        config,
        text,
        tmp_path / f"{name}.db",
        tmp_path / f"{name}.sock",
        io.StringIO(),
        clock=clock,
        wall=lambda: opening + timedelta(seconds=clock.t),
        **extra,
    )
    return gw, clock


def running_gateway(tmp_path: Path, config: OfficeConfig, text: str, **extra: Any) -> Gateway:
    """A gateway (not started) on the real monotonic clock, its wall clock Monday 10:00 in Tokyo
    plus the time since: for simulated devices that answer in real time."""
    from gateway.service import Gateway
    from tests.conftest import tokyo

    opening, origin = tokyo(2027, 3, 15, 10, 0), time.monotonic()
    return Gateway(
        config,
        text,
        tmp_path / "j.db",
        tmp_path / "j.sock",
        io.StringIO(),
        wall=lambda: opening + timedelta(seconds=time.monotonic() - origin),
        **extra,
    )


class Tokens:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"token-{self.n:04d}"


@dataclass
class Floor:
    """One dispenser (addr 1), a counter pad for counter 1 (addr 5), a call display (addr 16)."""

    office: Office
    wall0: datetime
    url: str
    min_cycle: float = 0.05
    clock: FakeClock = field(default_factory=FakeClock)
    commands: list[Command] = field(default_factory=list)
    effects: list[LinkEffect] = field(default_factory=list)
    sent: list[Any] = field(default_factory=list)  # every request frame, in order

    def __post_init__(self) -> None:
        cfg = self.office.config
        services = tuple(s.id for s in cfg.services)
        self.links = [
            DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, services), Tokens()),
            DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, services, counter="1"), Tokens()),
            DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), Tokens(), counter_label=self.label),
        ]
        self.bus = BusMaster(self.links, self.execute, min_cycle=self.min_cycle)
        self.port = open_link(self.url)
        recorder = self

        class Spy:
            def write(self, data: bytes) -> int | None:
                recorder.sent.extend(P.Decoder().feed(data))
                return int(recorder.port.write(data))

            def read(self, size: int = 1) -> bytes:
                return bytes(recorder.port.read(size))

            @property
            def in_waiting(self) -> int:
                return int(recorder.port.in_waiting)

        self.driver = SyncDriver(self.bus, Spy(), self.clock)
        self.dispenser = self.port.bus.devices[1]
        self.pad = self.port.bus.devices[5]
        self.display = self.port.bus.devices[16]

    def label(self, counter: str) -> str:
        return self.office.config.counter(counter).name.ja

    def wall(self) -> datetime:
        return self.wall0 + timedelta(seconds=self.clock.now())

    def execute(self, command: Command) -> Decision:
        self.commands.append(command)
        return self.office.execute(command, self.wall())

    def cycles(self, n: int) -> None:
        self.effects += self.driver.run_cycles(n)

    def until(self, seconds: float) -> None:
        self.effects += self.driver.run_until(self.clock.now() + seconds)

    def printed(self) -> list[str]:
        return [e.ticket.ticket for e in self.effects if isinstance(e, PrintTicket)]

    def state(self, addr: int) -> str:
        return self.bus.by_addr[addr].state.value


def make_floor(cfg: OfficeConfig, wall0: datetime, url: str | None = None, **kw: Any) -> Floor:
    office = Office(cfg)
    office.execute(OpenCounter("1"), wall0)
    return Floor(office, wall0, url or "sim://bus?dispenser=1&counter_pad=5&call_display=16&backend=python", **kw)
