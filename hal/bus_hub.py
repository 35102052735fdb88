"""A pty "RS-485 hub" for hardware-in-the-loop runs: one gateway port, many device ports.

RS-485 is multi-drop: every byte the gateway sends reaches every device, and what a device sends
reaches the gateway. On a host each MicroPython board process opens its own pty, so this hub
joins them: the gateway opens `gateway_path` (a pty, e.g. with hal.serial_link.open_link), each
device opens its `DeviceLine.path`, and a thread copies gateway bytes to every device and device
bytes to the gateway. Half duplex is the protocol's business (only the addressed device answers).

Each device hangs on its own `FaultyLine` (hal.simdevice: seeded corruption and loss, both
directions, `pulled` = cable out), and `intercept` may rewrite what the gateway sends to one device
(to cut a frame short when the device is killed mid-message). The hub keeps each device pty's far
end open itself, so a device process may die and be restarted on the same path; `flush()` drops
what piled up meanwhile, as a booting board loses what was on the wire.

Owns only the copying; no framing, no timing.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass

from hal.simdevice import FaultyLine

_CHUNK = 4096


def _pty_pair() -> tuple[int, int, str]:
    """(master fd, slave fd, slave path), both ends raw, the master non-blocking."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def _write_all(fd: int, data: bytes) -> int:
    """Write what the pty takes now; the rest is lost (nobody is listening, as on a real wire)."""
    sent = 0
    while sent < len(data):
        try:
            n = os.write(fd, data[sent:])
        except (BlockingIOError, OSError):
            break
        if n <= 0:
            break
        sent += n
    return sent


@dataclass
class DeviceLine:
    """One device's drop cable: its pty path and its faults."""

    name: str
    path: str
    line: FaultyLine
    master: int
    slave: int
    intercept: Callable[[bytes], bytes] | None = None
    to_device: int = 0  # bytes delivered each way, after faults
    from_device: int = 0

    def flush(self) -> None:
        """Drop whatever waits unread in the device's pty (a rebooted board starts clean)."""
        termios.tcflush(self.slave, termios.TCIFLUSH)


class BusHub:
    """See the module docstring. `add(name, seed)` before `start()`; `close()` at the end."""

    def __init__(self) -> None:
        self._gw_master, self._gw_slave, self.gateway_path = _pty_pair()
        self.devices: dict[str, DeviceLine] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.from_gateway = 0

    def add(self, name: str, seed: int = 0, corrupt: float = 0.0, drop: float = 0.0) -> DeviceLine:
        master, slave, path = _pty_pair()
        dev = DeviceLine(name, path, FaultyLine(seed, corrupt, drop), master, slave)
        with self._lock:
            self.devices[name] = dev
        return dev

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bus-hub", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                devices = list(self.devices.values())
            fds = [self._gw_master] + [d.master for d in devices]
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                return  # closed under us
            for fd in ready:
                try:
                    data = os.read(fd, _CHUNK)
                except (BlockingIOError, OSError):
                    continue
                if not data:
                    continue
                if fd == self._gw_master:
                    self.from_gateway += len(data)
                    for d in devices:
                        out = d.intercept(data) if d.intercept is not None else data
                        out = d.line.carry(out)
                        if out:
                            d.to_device += _write_all(d.master, out)
                else:
                    d = next(d for d in devices if d.master == fd)
                    out = d.line.carry(data)
                    d.from_device += len(out)
                    if out:
                        _write_all(self._gw_master, out)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in [self._gw_master, self._gw_slave] + [fd for d in self.devices.values() for fd in (d.master, d.slave)]:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> BusHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
