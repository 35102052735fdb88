"""systemd's notify protocol (sd_notify(3)) for `counterfloor gateway run` and `counterfloor central`.

Owns the datagrams to $NOTIFY_SOCKET only: READY=1 once serving, WATCHDOG=1 from the service's
main loop, STATUS=… lines for `systemctl status`, STOPPING=1 on the way out. A plain AF_UNIX
datagram socket (a path, or `@name` in the abstract namespace), no dependency. Without
$NOTIFY_SOCKET (not under a Type=notify unit, tests, a terminal) every call does nothing; a send
that fails is logged once and never raises: a broken notify socket must not stop the floor.

The watchdog ping is sent by `alive()`, which the service's loop calls each turn: a thread would
keep pinging for a loop that hangs, and systemd could never restart it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

# Ping at half the watchdog interval (sd_watchdog_enabled(3) advises so): one late turn is no restart.
WATCHDOG_SHARE = 0.5
STATUS_EVERY_S = 5.0  # without a watchdog, STATUS is refreshed this often (if it changed)
ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

_log = logging.getLogger(__name__)


def socket_address(value: str) -> str | None:
    """$NOTIFY_SOCKET as socket.connect takes it: a path, or `@name` -> the abstract `\\0name`;
    None for anything else (systemd's vsock: addresses are not used on these machines)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


class Notifier:
    """Messages to systemd's notify socket (see the module docstring). `address`: None = off;
    `watchdog_s`: the unit's WatchdogSec (None: no watchdog)."""

    def __init__(
        self,
        address: str | None = None,
        watchdog_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.watchdog_s = watchdog_s
        self.clock = clock
        self.pings = 0
        self._sock: socket.socket | None = None
        self._next_ping = 0.0
        self._next_status = 0.0
        self._status: str | None = None
        self._failed: str | None = None  # the last send error logged: logged again only when it changes

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str] | None = None, pid: int | None = None) -> Notifier:
        """From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, which are then removed from
        `environ` (default os.environ) so that child processes (central's workers, the sign
        renderer) do not notify on this one's behalf."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        usec, for_pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        for name in ENV:
            env.pop(name, None)
        if not raw:
            return cls()
        address = socket_address(raw)
        if address is None:
            _log.warning("NOTIFY_SOCKET=%r is not a path or @abstract name: systemd is not notified", raw)
            return cls()
        watchdog_s: float | None = None
        if usec:
            mine = str(os.getpid() if pid is None else pid)
            if usec.isdigit() and int(usec) > 0 and (not for_pid or for_pid == mine):
                watchdog_s = int(usec) / 1e6
            elif not usec.isdigit() or int(usec) <= 0:
                _log.warning("WATCHDOG_USEC=%r is not a positive number of microseconds: no watchdog pings", usec)
        return cls(address, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of `fields` (`KEY=value` lines); False if it could not be sent."""
        if self.address is None or not fields:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)  # a full receive queue drops a message, never stalls the loop
                self._sock = sock
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            why = f"{type(exc).__name__}: {exc}"
            if why != self._failed:
                _log.warning("cannot notify systemd at %r: %s", self.address, why)
                self._failed = why
            return False
        self._failed = None
        return True

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}")
        self._next_ping = 0.0  # the loop's first turn pings: the interval counts from now on
        self._next_status = self.clock() + STATUS_EVERY_S

    def status(self, text: str) -> None:
        """STATUS=`text`, if it differs from the last one sent."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def stopping(self, status: str = "stopping") -> None:
        self._status = status
        self.send("STOPPING=1", f"STATUS={status}")

    def alive(self, status: Callable[[], str] | None = None) -> None:
        """From the main loop, each turn: WATCHDOG=1 when half the interval has passed (with the
        STATUS from `status()` if it changed), or just the STATUS every STATUS_EVERY_S. Costs a
        clock read on most turns."""
        if self.address is None:
            return
        now = self.clock()
        ping = self.watchdog_s is not None and now >= self._next_ping
        if not ping and now < self._next_status:
            return
        fields = ["WATCHDOG=1"] if ping else []
        text = status() if status is not None else None
        if text is not None and text != self._status:
            self._status = text
            fields.append(f"STATUS={text}")
        if ping:
            assert self.watchdog_s is not None
            self.pings += 1
            self._next_ping = now + self.watchdog_s * WATCHDOG_SHARE
        self._next_status = now + STATUS_EVERY_S
        if fields:
            self.send(*fields)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
