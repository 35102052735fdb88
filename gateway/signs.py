"""The gateway's signs ([[signs]]): when to draw them, and handing them to the renderer process.

Owns the loop's side. `SignDriver.tick`, once per loop turn, decides whether what a sign shows may
have changed — the office state moved (`OfficeState.last_seq`: an issue, a call, anything the
journal applied), the minute turned (the clock, and waits that shrink with time), or the
calendar's `next_change` passed — and if so builds one immutable `BoardSnapshot`
(signage.snapshot, cheap) and sends it to the renderer process (gateway.sign_worker), which draws
and writes every sign. Rendering runs in that separate, lower-priority process, not a thread: it
is Python and Pillow work that would otherwise hold the interpreter's lock for milliseconds at a
time and delay the loop's serial exchanges (whose replies are due within 2.5 ms).

The loop never waits for the renderer: one snapshot is in flight at a time (the renderer says
"taken" as soon as it reads it), and a newer snapshot replaces one not yet sent (coalescing; the
renderer coalesces again per sign). The renderer's statuses are read without blocking and logged
here, once per distinct problem; a renderer that dies is restarted after `RESTART_S` with the
newest snapshot. It must not decide anything about the queue (office.model) nor route calls to
the RS-485 displays (gateway.bus.CallRouter).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.sign_worker import JOIN_S, SignSpec, SignStatus, encode_message, split_messages
from office.config import OfficeConfig, Sign
from office.model import Office
from office.state import OfficeState
from signage.output import SYSFS_FB
from signage.snapshot import BoardSnapshot, build_snapshot

CLOCK_S = 60  # the board's clock shows minutes: a new snapshot at least at every minute's turn
RESTART_S = 10.0  # a renderer process that died is started again this long after
REAP_S = 0.5  # the loop waits at most this long for a dead renderer's exit status
_ROOT = Path(__file__).resolve().parent.parent
_log = logging.getLogger(__name__)


def is_png(output: str) -> bool:
    return output.lower().endswith(".png")


def sign_spec(sign: Sign, base: Path, sysfs_root: Path = SYSFS_FB) -> SignSpec:
    """A configured sign with an output: a `.png` path is a file (relative to `base`, the journal's
    directory), anything else a framebuffer device whose geometry is read from
    `sysfs_root/<device's name>` (a symlink such as /dev/fb-hall is followed to its name)."""
    assert sign.output is not None
    path = base / sign.output  # an absolute output stays as it is
    sysfs = None if is_png(sign.output) else sysfs_root / path.resolve().name
    return SignSpec(sign.id, sign.kind, (sign.width, sign.height), path, sysfs)


def sign_driver(config: OfficeConfig, journal_file: Path, sysfs_root: Path = SYSFS_FB) -> SignDriver | None:
    """A driver for the config's signs that have an `output`; None when there are none."""
    specs = [sign_spec(s, journal_file.parent, sysfs_root) for s in config.signs if s.output is not None]
    return SignDriver(config, specs) if specs else None


def _next_due(wall: datetime, next_change: datetime | None) -> datetime:
    """The next turn of the minute, or the calendar's next change if sooner."""
    due = wall.replace(second=0, microsecond=0) + timedelta(seconds=CLOCK_S)
    if next_change is not None and wall < next_change < due:
        return next_change
    return due


class SignDriver:
    """See the module docstring: `tick(office, wall)` once per loop turn, `close` at the end.

    `status[sign id]`: the renderer's last word on that sign. `last_snapshot`, `snapshots` (built),
    `sent` (to the renderer), `coalesced` (replaced before being sent), `last_build_s`/`max_build_s`
    (what building a snapshot cost the loop) are for the log, the benchmarks and the tests."""

    def __init__(self, config: OfficeConfig, specs: list[SignSpec], restart_s: float = RESTART_S) -> None:
        self.config = config
        self.specs = specs
        self.restart_s = restart_s
        self.status: dict[str, SignStatus] = {}
        self.last_snapshot: BoardSnapshot | None = None
        self.snapshots = self.sent = self.coalesced = self.restarts = 0
        self.last_build_s = self.max_build_s = 0.0
        self._state: OfficeState | None = None
        self._seq = -1
        self._due: datetime | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = bytearray()
        self._credit = True  # the renderer has taken the last snapshot sent
        self._pending: bytes | None = None  # the newest snapshot not yet sent, encoded
        self._drained: set[int] = set()
        self._tokens = itertools.count()
        self._restart_at = 0.0
        self._logged: dict[str, set[str]] = {}  # failures logged since the sign last worked
        self._legibility: dict[str, set[str]] = {}
        self._down: str | None = None  # why the renderer is not running (logged once)
        self._build_error: str | None = None  # why the last snapshot could not be built (logged once)

    # -- the loop's side ----------------------------------------------------------------------------
    def tick(self, office: Office, wall: datetime) -> BoardSnapshot | None:
        """Read the renderer's statuses; build and send a snapshot if what the signs show may have
        changed. The snapshot, or None when nothing did. Never waits for the renderer."""
        self._poll()
        state = office.state
        due = self._due
        unchanged = state is self._state and state.last_seq == self._seq
        # A wall clock set back by more than the period would otherwise hold the signs: redraw.
        if unchanged and due is not None and wall < due and due - wall <= timedelta(seconds=CLOCK_S):
            self._send()
            return None
        started = time.perf_counter()
        self._state, self._seq = state, state.last_seq
        try:
            # Today's remote mode override, if any, is the state's (journaled): boards follow it.
            override = state.overrides.get(wall.astimezone(self.config.tz).date()) if state.overrides else None
            snap = build_snapshot(self.config, state, office.estimator, wall, override=override)
        except Exception as exc:  # the floor must go on: the signs keep their last picture
            self._due = _next_due(wall, None)  # tried again at the next change or minute
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._build_error:
                _log.exception("signs: cannot build a snapshot: %s", problem)
            self._build_error = problem
            return None
        self._build_error = None
        self._due = _next_due(wall, snap.mode.next_change)
        if self._pending is not None:
            self.coalesced += 1
        self._pending = encode_message(("show", snap))
        self.last_snapshot = snap
        self.snapshots += 1
        self.last_build_s = time.perf_counter() - started
        self.max_build_s = max(self.max_build_s, self.last_build_s)
        self._send()
        return snap

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the renderer has dealt with the newest snapshot (shown, or failed) and its
        statuses are read; False on time-out or if it is not running. Tests and tools: the loop
        never calls it."""
        if not self.specs:
            return True
        deadline = time.monotonic() + timeout
        self._poll()
        if self._pending is not None:
            if not self._wait(lambda: self._credit, deadline):
                return False
            self._send()
        token = next(self._tokens)
        if self._proc is None or not self._write(encode_message(("drain", token))):
            return False
        return self._wait(lambda: token in self._drained, deadline)

    def close(self) -> None:
        """Stop the renderer: it shows the last snapshot sent (so the screens keep the newest
        state), then exits; killed if it takes longer than a few seconds (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(encode_message(("stop",)))
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=JOIN_S * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def renderer_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- the renderer process -----------------------------------------------------------------------
    def _start(self) -> bool:
        if self._proc is not None:
            return True
        if time.monotonic() < self._restart_at:
            return False
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.sign_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env=env,
            )
        except OSError as exc:
            self._lost(f"cannot start: {exc}")
            return False
        assert proc.stdin is not None and proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        self._proc, self._buf, self._credit = proc, bytearray(), True
        if not self._write(encode_message(self.specs)):
            return False
        if self._down is not None:
            _log.info("signs: renderer started again (pid %d)", proc.pid)
            self._down = None
            self.restarts += 1
        if self._pending is None and self.last_snapshot is not None:  # a new renderer draws from scratch
            self._pending = encode_message(("show", self.last_snapshot))
        return True

    def _lost(self, why: str) -> None:
        """The renderer died or could not start: log once, start again after `restart_s`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=REAP_S)  # killed: at once, unless stuck in a device write
        if why != self._down:
            _log.warning("signs: renderer %s; starting it again in %.0f s", why, self.restart_s)
        self._down = why
        self._restart_at = time.monotonic() + self.restart_s
        self._credit = True

    def _write(self, data: bytes) -> bool:
        """Write one message to the renderer. Only ever one snapshot in the pipe, far below its
        capacity, so this does not wait."""
        assert self._proc is not None and self._proc.stdin is not None
        try:
            view = memoryview(data)
            while view:
                view = view[self._proc.stdin.write(view) or 0 :]
        except OSError as exc:
            self._lost(f"stopped taking snapshots ({type(exc).__name__})")
            return False
        return True

    def _send(self) -> None:
        if not self.specs:
            self._pending = None  # nothing to draw (the benchmarks' bare snapshot)
        if self._pending is None or not self._credit or not self._start():
            return
        data, self._pending = self._pending, None
        self._credit = False
        if self._write(data):
            self.sent += 1  # (if not, the next renderer is sent the newest snapshot when it starts)

    def _poll(self) -> None:
        """Read whatever the renderer said, without waiting."""
        proc = self._proc
        if proc is None:
            if self.specs:
                self._start()
            return
        assert proc.stdout is not None
        while True:
            try:
                chunk = proc.stdout.read(65536)
            except BlockingIOError:
                break
            if chunk is None:
                break
            if not chunk:  # its end of the pipe closed: it has exited, or is about to
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=REAP_S)
                self._lost(f"exited (status {proc.returncode})")
                return
            self._buf += chunk
        try:
            messages = split_messages(self._buf)
        except Exception as exc:  # not the renderer we started: never let it stop the loop
            self._lost(f"sent an unreadable message ({type(exc).__name__}: {exc})")
            return
        for message in messages:
            self._message(message)

    def _wait(self, done: Callable[[], bool], deadline: float) -> bool:
        while not done():
            if self._proc is None or self._proc.stdout is None:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([self._proc.stdout], [], [], left)
            self._poll()
        return True

    # -- what the renderer says ------------------------------------------------------------------------
    def _message(self, message: Any) -> None:
        kind = message[0]
        if kind == "taken":
            self._credit = True
        elif kind == "drained":
            self._drained.add(message[1])
        elif kind == "status":
            self._status(message[1])

    def _status(self, status: SignStatus) -> None:
        sid = status.id
        was = self.status.get(sid)
        self.status[sid] = status
        logged = self._logged.setdefault(sid, set())
        if status.failure is not None:
            if status.failure not in logged:
                logged.add(status.failure)
                _log.warning("sign %s: cannot be shown: %s (retrying)", sid, status.failure)
            return
        if was is not None and was.failure is not None:
            _log.info("sign %s: shown again (after %s)", sid, was.failure)
        logged.clear()
        known = self._legibility.setdefault(sid, set())
        for problem in status.legibility:
            if problem not in known:
                _log.warning("sign %s: %s", sid, problem)
        self._legibility[sid] = set(status.legibility)
