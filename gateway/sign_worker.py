"""The signs' renderer process: each sign's renderer and output, and one thread per sign.

Owns drawing snapshots and writing them out: a board on a framebuffer (the whole screen first and
after any failure, then only the rectangles `BoardRenderer.update` redrew), a board as a PNG file,
an LED matrix frame as a one-bit PNG or on a framebuffer of its size. `SignWorker` gives each sign
a thread and a one-snapshot mailbox, so a sign that falls behind skips to the newest snapshot and
a slow sign (a PNG encode) never holds up another (a framebuffer).

It runs in a child process of the gateway (`python -m gateway.sign_worker`, started by
gateway.signs), at a lower priority, so that rendering — pure Python and Pillow, holding the
interpreter's lock for milliseconds at a time — never delays the gateway's loop. Messages on stdin
and stdout are length-prefixed pickles between the gateway and its own child (`read_message`,
`write_message`). It knows nothing of the office model or the config: specs and snapshots in,
statuses out; the gateway logs what they say.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from signage.board import BoardRenderer
from signage.led import render_led
from signage.output import Framebuffer, write_png
from signage.snapshot import BoardSnapshot

RETRY_S = 10.0  # a failed output is tried again this long after (or at the next snapshot, if sooner)
JOIN_S = 3.0  # stopping waits this long for the signs to show the last snapshot, and again for a write
NICE = 10  # the renderer yields the CPU to the gateway's loop (a Pi Zero has one core)
_HEADER = struct.Struct("<I")


# -- messages --------------------------------------------------------------------------------------------
def encode_message(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def write_message(stream: BinaryIO, message: object) -> None:
    stream.write(encode_message(message))
    stream.flush()


def read_message(stream: BinaryIO) -> Any:
    """The next message; None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def split_messages(buf: bytearray) -> list[Any]:
    """Take every complete message off the front of `buf` (the gateway's non-blocking reads)."""
    out = []
    while len(buf) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buf)
        if len(buf) < _HEADER.size + size:
            break
        out.append(pickle.loads(bytes(buf[_HEADER.size : _HEADER.size + size])))
        del buf[: _HEADER.size + size]
    return out


@dataclass(frozen=True, slots=True)
class SignSpec:
    """One sign to draw: `kind` board | led, its pixel size, `path` a `.png` file or a framebuffer
    device, `sysfs` the device's sysfs directory (None for a PNG file)."""

    id: str
    kind: str
    size: tuple[int, int]
    path: Path
    sysfs: Path | None


@dataclass(frozen=True, slots=True)
class SignStatus:
    """A sign's counts after an attempt, and its problems: `failure` (the output's, None when it
    worked) and `legibility` (the render's: text too small, cut, services left off)."""

    id: str
    submitted: int
    shown: int
    coalesced: int
    failures: int
    failure: str | None
    legibility: tuple[str, ...]


# -- the outputs -----------------------------------------------------------------------------------------
class SignTarget(Protocol):
    """One sign's renderer and output. `show` renders `snap` and writes it, raising on failure (the
    next call must then write everything again); it returns the render's legibility problems."""

    def show(self, snap: BoardSnapshot) -> list[str]: ...

    def close(self) -> None: ...


class BoardOnFramebuffer:
    """A waiting-room board on a framebuffer. The device is opened at the first frame and reopened
    after a failure, so a screen plugged in later is found."""

    def __init__(self, size: tuple[int, int], device: Path, sysfs: Path) -> None:
        self.renderer = BoardRenderer(size)
        self.device, self.sysfs = device, sysfs
        self._fb: Framebuffer | None = None
        self._full = True  # the screen does not hold the renderer's image: write it all

    def show(self, snap: BoardSnapshot) -> list[str]:
        result = self.renderer.update(snap)
        try:
            if self._fb is None:
                self._fb = Framebuffer(self.device, self.sysfs)
                self._full = True
            if self._full:
                self._fb.write(result.image)
            else:
                for rect in result.dirty:
                    self._fb.write_rect(result.image, rect)
        except Exception:
            self.close()
            raise
        self._full = False
        return result.problems()

    def close(self) -> None:
        if self._fb is not None:
            self._fb.close()
            self._fb = None
        self._full = True


class BoardToPng:
    """A waiting-room board as a PNG file, rewritten (atomically) when any region changed."""

    def __init__(self, size: tuple[int, int], path: Path) -> None:
        self.renderer = BoardRenderer(size)
        self.path = path
        self._stale = True  # the file does not hold the renderer's image

    def show(self, snap: BoardSnapshot) -> list[str]:
        result = self.renderer.update(snap)
        if result.dirty or self._stale:
            self._stale = True
            write_png(result.image, self.path)
            self._stale = False
        return result.problems()

    def close(self) -> None:
        pass


class LedFrame:
    """An LED matrix call display: a one-bit frame of the matrix's size, written only when it
    differs from the last one written. To a `.png` file (a 1-bit PNG, for a matrix driver that
    watches the file) or to a framebuffer device of exactly the matrix's size (lit pixels white)."""

    def __init__(self, size: tuple[int, int], path: Path, sysfs: Path | None) -> None:
        self.size, self.path, self.sysfs = size, path, sysfs  # sysfs None: a PNG file
        self._fb: Framebuffer | None = None
        self._written: bytes | None = None

    def show(self, snap: BoardSnapshot) -> list[str]:
        frame = render_led(snap, self.size)
        w, h = self.size
        problems = [f"{b.text!r} does not fit the {w}x{h} matrix" for b in frame.boxes if b.clipped]
        data = frame.image.tobytes()
        if data == self._written:
            return problems
        self._written = None
        try:
            if self.sysfs is None:
                write_png(frame.image, self.path)
            else:
                if self._fb is None:
                    self._fb = Framebuffer(self.path, self.sysfs)
                self._fb.write(frame.image.convert("RGB"))
        except Exception:
            self.close()
            raise
        self._written = data
        return problems

    def close(self) -> None:
        if self._fb is not None:
            self._fb.close()
            self._fb = None
        self._written = None


def make_target(spec: SignSpec) -> SignTarget:
    if spec.kind == "board":
        if spec.sysfs is None:
            return BoardToPng(spec.size, spec.path)
        return BoardOnFramebuffer(spec.size, spec.path, spec.sysfs)
    return LedFrame(spec.size, spec.path, spec.sysfs)


# -- one worker per sign ---------------------------------------------------------------------------------
class SignWorker:
    """A sign's thread and its one-snapshot mailbox. `submit` never blocks (beyond a lock held for an
    assignment): a snapshot not yet taken is replaced by the newer one (`coalesced`). After each
    attempt `report(status)` is called in the worker's thread. A failed snapshot is tried again
    after `retry_s`, or a newer one sooner."""

    def __init__(
        self,
        sign_id: str,
        target: SignTarget,
        report: Callable[[SignStatus], None] | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self.sign_id = sign_id
        self.target = target
        self.report = report
        self.retry_s = retry_s
        self.submitted = self.shown = self.coalesced = self.failures = 0
        self.failure: str | None = None
        self._cond = threading.Condition()
        self._pending: BoardSnapshot | None = None
        self._failed: BoardSnapshot | None = None  # the snapshot to try again after a failure
        self._busy = False
        self._closing = False
        self._thread: threading.Thread | None = None

    def submit(self, snap: BoardSnapshot) -> None:
        with self._cond:
            if self._closing:
                return
            if self._pending is not None:
                self.coalesced += 1
            self._pending = snap
            self.submitted += 1
            self._cond.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"sign-{self.sign_id}", daemon=True)
            self._thread.start()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the newest snapshot submitted has been dealt with (shown or failed); False on
        time-out."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self) -> None:
        """Stop: a snapshot not yet taken is dropped, a write in progress finishes (idempotent)."""
        with self._cond:
            self._closing = True
            self._pending = None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_S)
            if self._thread.is_alive():
                return  # a write that hangs: leave the target to the process's end
            self._thread = None
        self.target.close()

    def status(self, legibility: tuple[str, ...] = ()) -> SignStatus:
        return SignStatus(
            self.sign_id, self.submitted, self.shown, self.coalesced, self.failures, self.failure, legibility
        )

    def _take(self) -> BoardSnapshot | None:
        """The next snapshot to show: the newest submitted, or the failed one when its retry is due;
        None when closing."""
        with self._cond:
            while self._pending is None and not self._closing:
                if self._failed is None:
                    self._cond.wait()
                elif not self._cond.wait(self.retry_s) and self._pending is None:
                    break  # time to try again
            if self._closing:
                return None
            snap = self._pending if self._pending is not None else self._failed
            self._pending = None
            self._busy = True
            return snap

    def _work(self) -> None:
        while (snap := self._take()) is not None:
            try:
                status = self._show(snap)
                if self.report is not None:
                    self.report(status)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _show(self, snap: BoardSnapshot) -> SignStatus:
        try:
            problems = self.target.show(snap)
        except Exception as exc:  # a missing device, a full disk, a screen of another size: tried again
            self.failures += 1
            self._failed = snap
            self.failure = f"{type(exc).__name__}: {exc}"
            return self.status()
        self.failure, self._failed = None, None
        self.shown += 1
        return self.status(tuple(problems))


# -- the child process -----------------------------------------------------------------------------------
def serve(specs: list[SignSpec], inp: BinaryIO, out: BinaryIO) -> None:
    """The renderer's main loop. In: ("show", snapshot) | ("drain", token) | ("stop",) (after the
    signs have shown what they were given, within `JOIN_S`). Out:
    ("taken",) as soon as a snapshot is read (the gateway sends the next only then), ("status",
    SignStatus) after each attempt, ("drained", token) once every sign has dealt with what it had."""
    lock = threading.Lock()

    def send(message: object) -> None:
        with lock:
            write_message(out, message)

    def report(status: SignStatus) -> None:
        send(("status", status))

    workers = [SignWorker(s.id, make_target(s), report) for s in specs]
    try:
        while (message := read_message(inp)) is not None:
            if message[0] == "show":
                send(("taken",))
                for worker in workers:
                    worker.submit(message[1])
            elif message[0] == "drain":
                for worker in workers:
                    worker.drain()
                send(("drained", message[1]))
            elif message[0] == "stop":  # the screens keep the newest state while the gateway is down
                deadline = time.monotonic() + JOIN_S
                for worker in workers:
                    worker.drain(max(0.0, deadline - time.monotonic()))
                break
    finally:
        for worker in workers:
            worker.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the gateway stops us
    with contextlib.suppress(OSError):
        os.nice(NICE)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the messages
    specs = read_message(inp)
    if specs is None:
        return
    with contextlib.suppress(BrokenPipeError):  # the gateway is gone
        serve(specs, inp, out)


if __name__ == "__main__":
    # Run as gateway.sign_worker, not __main__, so that what it pickles names the real module.
    from gateway import sign_worker

    sign_worker.main()
