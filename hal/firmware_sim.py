"""The `micropython` backend of `sim://` (hal.protocol_sim): the real board firmware, one
MicroPython Unix-port process per device, on pty lines joined by a hub (hal.bus_hub).

    sim://bus?dispenser=1&call_display=16&backend=micropython

Each device runs `micropython -X heapsize=192K firmware/main.py --serial PTY --kind KIND --addr N`
with its own flash directory (`$COUNTERFLOOR_FLASH`, in a temporary directory removed on close)
and `$COUNTERFLOOR_HIL` set, so its buttons and keys can be pressed with `down NAME` / `up NAME`
lines on its stdin (`FirmwareBoard.send`; docs/firmware.md). Opening waits until every board
printed `ready` (or fails naming the board and what it printed); closing stops every process.

Timing: `receive` is the DeviceBackend seam, so it keeps the sim:// promise that a read right
after a write sees the whole reply. It writes the request on the hub and, when the request is
addressed to a device on this bus, waits (for real) until the reply frame has arrived, at most
`reply_wait` seconds. A board in another process answers in milliseconds, later than the
protocol's 2.5 ms reply time-out, but the gateway never sees that: the reply is already waiting
when it first reads, and gateway.bus does not refuse a reply that is read before the exchange
timed out. So the gateway needs no longer `reply_timeout_ms` on a sim:// bus. A reply that comes
after `reply_wait` is dropped (as the python backend's lost replies never arrive later).

Finding the binary (`find_micropython`): `$COUNTERFLOOR_MICROPYTHON` if set (set but empty: none),
else `micropython` next to sys.executable (the venv's, from `uv sync`), else on PATH.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hal.bus_hub import BusHub, DeviceLine
from hal.codec import P

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
ENV_BINARY = "COUNTERFLOOR_MICROPYTHON"
HEAPSIZE = "192K"
BOOT_TIMEOUT_S = 15.0
REPLY_WAIT_S = 0.25  # real seconds a board may take to answer a request addressed to it
STOP_TIMEOUT_S = 5.0
RESET_EXIT = 75  # firmware/board.py's _RESET_EXIT: the Unix port's "restart me"
_OUTPUT_LINES = 200  # what each board printed last, kept for waits and error messages


def find_micropython() -> Path | None:
    """The MicroPython Unix-port binary to run boards with, or None (see the module docstring)."""
    env = os.environ.get(ENV_BINARY)
    if env is not None:
        return Path(env) if env and _executable(Path(env)) else None
    beside = Path(sys.executable).parent / "micropython"
    if _executable(beside):
        return beside
    found = shutil.which("micropython")
    return Path(found) if found else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _load_prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()  # loaded here, not in the forked child (no imports between fork and exec)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the board gets SIGTERM when the thread that started it ends (a killed gateway leaves
    no boards behind; close() is the orderly way)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_board(
    binary: Path, kind: str, addr: int, serial: str, flash: Path, *, die_with_parent: bool = True
) -> subprocess.Popen[str]:
    """Start one board's firmware (`firmware/main.py`) in MicroPython on a serial path, with its
    flash in `flash` and the stdin press hook on; text lines on stdin and stdout."""
    flash.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, COUNTERFLOOR_FLASH=str(flash), COUNTERFLOOR_HIL="1")
    argv = [str(binary), "-X", f"heapsize={HEAPSIZE}", str(FIRMWARE / "main.py")]
    argv += ["--serial", serial, "--kind", kind, "--addr", str(addr)]
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=flash,
        bufsize=1,
        preexec_fn=_die_with_parent if die_with_parent and _PRCTL is not None else None,
    )


class FirmwareBoard:
    """One board firmware process on its hub line; a reader thread keeps what it prints."""

    def __init__(self, binary: Path, kind: str, addr: int, line: DeviceLine, flash: Path) -> None:
        self.kind = kind
        self.addr = addr
        self.line = line
        self.flash = flash
        self.binary = binary
        self.restarts = 0  # times it reset (board.reset: exit 75) and was started again
        self.output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self.printed = 0  # lines printed so far (output keeps the last few)
        self._changed = threading.Condition()
        self._launch()

    def _launch(self) -> None:
        self.proc = start_board(self.binary, self.kind, self.addr, self.line.path, self.flash)
        self._reader = threading.Thread(target=self._read, name=f"board-{self.kind}-{self.addr}", daemon=True)
        self._reader.start()

    def power_cycle_if_reset(self) -> bool:
        """A board that reset itself (RESTART, FW_COMMIT: board.reset ends the Unix port's
        process with status 75) is started again on its flash, as a Pico reboots: True if so."""
        if self.proc.poll() != RESET_EXIT:
            return False
        self._reader.join(timeout=STOP_TIMEOUT_S)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.restarts += 1
        self._launch()
        return True

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.output.append(line.rstrip("\n"))
                self.printed += 1
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_line(self, prefix: str, timeout: float, since: int = 0) -> str | None:
        """The first line starting with `prefix` among those printed after the first `since`
        (and still kept), waiting at most `timeout` real seconds; None if none came."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                kept_from = self.printed - len(self.output)
                for i, line in enumerate(self.output):
                    if kept_from + i >= since and line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._changed.wait(left)

    def send(self, command: str) -> None:
        """A line on the board's stdin: `down NAME` / `up NAME` (docs/firmware.md)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._reader.join(timeout=STOP_TIMEOUT_S)


class FirmwareBus:
    """The DeviceBackend of `backend=micropython` (see the module docstring). `boards` by address."""

    def __init__(self, devices: list[tuple[str, int]], binary: Path, reply_wait: float = REPLY_WAIT_S) -> None:
        self.reply_wait = reply_wait
        self.boards: dict[int, FirmwareBoard] = {}
        self.late = 0  # replies not complete within reply_wait
        self._requests = P.Decoder()
        self._replies = P.Decoder()
        self._fd = -1
        self._closed = False
        self.tmp = Path(tempfile.mkdtemp(prefix="counterfloor-sim-"))
        self.hub = BusHub()
        try:
            self._start(devices, binary)
        except BaseException:
            self.close()
            raise

    def _start(self, devices: list[tuple[str, int]], binary: Path) -> None:
        for kind, addr in devices:
            if addr in self.boards:
                raise ValueError(f"two devices at address {addr}")
            line = self.hub.add(f"{kind}-{addr}")
            self.boards[addr] = FirmwareBoard(binary, kind, addr, line, self.tmp / f"{kind}-{addr}")
        self.hub.start()
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        for board in self.boards.values():
            if board.wait_line("ready ", max(0.0, deadline - time.monotonic())) is None:
                said = " | ".join(board.output) or "nothing"
                raise OSError(f"{board.kind} at {board.addr} did not start under {binary}: {said}")
        for board in self.boards.values():
            board.line.flush()  # nothing from before it listened
        self._fd = os.open(self.hub.gateway_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def receive(self, data: bytes) -> bytes:
        if self._closed:
            raise OSError("the simulated bus is closed")
        self._drain()  # a reply that came too late is lost, not read as the next one's
        for board in self.boards.values():
            board.power_cycle_if_reset()  # it answers again once booted: meanwhile, like a Pico rebooting
        expected = sum(1 for f in self._requests.feed(data) if not f.is_reply and f.addr in self.boards)
        os.write(self._fd, data)
        if not expected:
            return b""
        reply = bytearray()
        got = 0
        deadline = time.monotonic() + self.reply_wait
        while got < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                self.late += 1
                self._replies.reset()
                break
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = self._read()
            reply += chunk
            got += sum(1 for _ in self._replies.feed(chunk))
        return bytes(reply)

    def _read(self) -> bytes:
        try:
            return os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return b""

    def _drain(self) -> None:
        while self._read():
            pass
        self._replies.reset()

    def close(self) -> None:
        """Stop every board, the hub, and remove the flash directories (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for board in self.boards.values():
            board.stop()
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self.hub.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pids(self) -> list[int]:
        return [b.proc.pid for b in self.boards.values()]
