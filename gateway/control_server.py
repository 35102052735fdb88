"""The gateway's control socket: the Unix stream socket over which `counterfloor office …` reaches
the running gateway, one JSON request per line (the protocol itself is gateway.control's).

Owns the socket side only: where the socket file may be made (`socket_problem`), its mode and
group (`[gateway] socket_mode`, `socket_group`), accepting connections, reading request lines and
writing replies, and the limits that keep a misbehaving client from locking staff out or stalling
the floor: a read deadline per request line, control.MAX_LINE, a cap on open connections (a
connection over it gets one refusal line), every pending connection accepted each turn, and
non-blocking writes through a per-connection buffer with a deadline. It decides nothing about a
request: each complete line goes to the `handle` it was given (Gateway.handle).

It is served from the gateway's one thread between bus exchanges (gateway.service), so nothing
here may block: `serve` waits only in its selector, at most its `timeout`. Deadlines are read
from the injected monotonic clock, so tests move them without sleeping.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import selectors
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import control
from gateway.bus import Clock, MonotonicClock
from office.config import ConfigError, OfficeConfig

# A client has this long from connecting (or from its last reply) to finish a request line: the
# CLI sends its whole line at once, so only a stuck or hostile client ever takes longer.
READ_DEADLINE_S = 5.0
# A reply has this long to leave once it is ready; replies are a few KB, so only a client that
# does not read its replies is dropped by it.
WRITE_DEADLINE_S = 5.0
# Far above a floor's staff terminals, far below the 1024 descriptors a systemd service gets by
# default; the 200 half-open connections of tests/test_control_socket.py fit beneath it.
MAX_CONNECTIONS = 256
# Connections waiting for the next turn (up to a cycle away); the kernel caps it at somaxconn.
LISTEN_BACKLOG = 512
DEFAULT_SOCKET_MODE = 0o660
_RECV_CHUNK = 65536
# sockaddr_un's sun_path holds 108 bytes with the terminating NUL (Linux).
_SUN_PATH_MAX = 107

_log = logging.getLogger(__name__)


class ControlSocketError(Exception):
    """The control socket cannot be made; the message names the path and the problem."""


def socket_problem(path: Path) -> str | None:
    """Why the control socket cannot be made at `path`, or None. Checked before the journal is
    opened (or created), so a mistyped --socket leaves nothing behind."""
    if not path.parent.is_dir():
        return f"cannot listen on {path}: no such directory {path.parent}"
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        return f"cannot listen on {path}: a socket's path may be at most {_SUN_PATH_MAX} bytes"
    if (path.exists() or path.is_symlink()) and not stat.S_ISSOCK(path.lstat().st_mode):
        return f"{path} exists and is not a socket; refusing to replace it"
    return None


def socket_group(config: OfficeConfig) -> int:
    """The group id the control socket is given: gateway.socket_group, else this process's own
    group. Looked up here, on the machine that runs the gateway, not when the config is parsed:
    a journal's stored config is parsed wherever the journal is read (a backup on a laptop)."""
    name = config.gateway.socket_group
    if name is None:
        return os.getegid()
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(config.source, "gateway.socket_group", f"no group {name!r} on this machine") from None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _line(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, ensure_ascii=False).encode() + b"\n"


@dataclass(eq=False)
class _Connection:
    """One client: what it sent that is not answered yet, what is not yet sent to it, and until
    when it may take to finish its line (`read_by`) or to take its reply (`write_by`)."""

    sock: socket.socket
    read_by: float
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    write_by: float | None = None
    closing: bool = False  # nothing more is read; closed once `out` is sent
    closed: bool = False


class ControlServer:
    """A Unix stream socket of JSON-line requests, served without blocking (`serve`)."""

    def __init__(
        self,
        path: Path,
        handle: Callable[[dict[str, Any]], dict[str, Any]],
        clock: Clock | None = None,
        mode: int = DEFAULT_SOCKET_MODE,
        group: int | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.path = path
        self.handle = handle
        self.clock: Clock = clock or MonotonicClock()
        self.max_connections = max_connections
        self.connections: dict[socket.socket, _Connection] = {}
        self._refusing = False  # over the limit now: logged once, not once per refused connection
        self._accept_failing = False  # out of descriptors: logged once, not every turn
        problem = socket_problem(path)
        if problem is not None:
            raise ControlSocketError(problem)
        if path.exists() or path.is_symlink():
            path.unlink()  # our journal's writer lock is held, so a socket left here is a dead gateway's
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._bind(mode, os.getegid() if group is None else group)
        except BaseException:
            self.sock.close()
            raise
        self.sock.listen(LISTEN_BACKLOG)
        self.sock.setblocking(False)
        self.selector = selectors.DefaultSelector()  # epoll: no FD_SETSIZE ceiling, unlike select()
        self.selector.register(self.sock, selectors.EVENT_READ, None)

    def _bind(self, mode: int, gid: int) -> None:
        # Bound under a umask that leaves only the owner in, so nobody can connect in the moment
        # before the group and mode are set. The umask is process-wide: put back at once.
        old = os.umask(0o177)
        try:
            self.sock.bind(str(self.path))
        except OSError as exc:
            raise ControlSocketError(f"cannot listen on {self.path}: {exc}") from None
        finally:
            os.umask(old)
        try:
            try:
                os.chown(self.path, -1, gid)  # first: the mode opens the socket to the right group only
            except OSError as exc:
                raise ControlSocketError(
                    f"cannot give the control socket {self.path} to group {_group_name(gid)} "
                    f"(gateway.socket_group): {exc.strerror}; the gateway's user must be a member of it"
                ) from None
            try:
                os.chmod(self.path, mode)
            except OSError as exc:
                raise ControlSocketError(f"cannot set the mode of {self.path} to {mode:04o}: {exc.strerror}") from None
        except ControlSocketError:
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise

    # -- serving -------------------------------------------------------------------------------
    def serve(self, timeout: float = 0.0) -> int:
        """Accept every pending connection, answer every complete request line, send what the
        clients will take, and drop the clients past a deadline. Waits at most `timeout` for
        something to do; returns the requests answered."""
        answered = 0
        for key, events in self.selector.select(timeout):
            conn: _Connection | None = key.data
            if conn is None:
                self._accept_all()
                continue
            if conn.closed:
                continue  # dropped earlier in this turn
            if events & selectors.EVENT_WRITE:
                self._flush(conn)
                if not conn.closed and not conn.out:
                    answered += self._process(conn)  # lines that waited for this reply to leave
            if events & selectors.EVENT_READ and not conn.closed:
                answered += self._read(conn)
        self._expire(self.clock.now())
        return answered

    def _accept_all(self) -> None:
        # All of them, not one per turn: a burst of connections must not fill the backlog and
        # make the next staff command's connect fail with EAGAIN. Bounded, so that a flood
        # cannot keep one turn accepting forever.
        now = self.clock.now()
        for _ in range(LISTEN_BACKLOG):
            try:
                sock, _ = self.sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:  # gone before it was accepted
                continue
            except OSError as exc:  # out of descriptors (EMFILE, ENFILE): the next turn tries again
                if not self._accept_failing:
                    self._accept_failing = True
                    _log.warning("control socket: cannot accept connections: %s", exc)
                return
            self._accept_failing = False
            sock.setblocking(False)
            if len(self.connections) >= self.max_connections:
                self._refuse(sock)
                continue
            if self._refusing:
                self._refusing = False
                _log.info("control socket: accepting connections again")
            conn = _Connection(sock, read_by=now + READ_DEADLINE_S)
            self.connections[sock] = conn
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _refuse(self, sock: socket.socket) -> None:
        """A clear answer instead of a hang: one line (a fresh socket's buffer takes it), closed."""
        if not self._refusing:
            self._refusing = True
            _log.warning("control socket: %d connections open; refusing more", len(self.connections))
        error = f"too many control connections ({len(self.connections)} open); try again"
        with contextlib.suppress(OSError):
            sock.send(_line({"ok": False, "kind": control.KIND_REFUSED, "error": error}))
        sock.close()

    def _read(self, conn: _Connection) -> int:
        try:
            chunk = conn.sock.recv(_RECV_CHUNK)
        except BlockingIOError:
            return 0
        except OSError:
            self._drop(conn)
            return 0
        if not chunk:
            # The client shut its side: answer the lines it sent, then close (`nc -U` and socat
            # half-close after their request and still read the reply).
            conn.closing = True
        conn.inbuf += chunk
        return self._process(conn)

    def _process(self, conn: _Connection) -> int:
        """Answer the complete lines received, one at a time while the replies leave at once; a
        reply that does not stops the reading until it has gone (a client that sends without
        reading gets no more than one reply buffered here)."""
        answered = 0
        while not conn.out and not conn.closed:
            end = conn.inbuf.find(b"\n")
            if end < 0 or end > control.MAX_LINE:
                break
            line = bytes(conn.inbuf[:end])
            del conn.inbuf[: end + 1]
            conn.out += _line(self._answer(line))
            answered += 1
            conn.read_by = self.clock.now() + READ_DEADLINE_S  # the next line gets its own few seconds
            self._flush(conn)
        if conn.closed:
            return answered
        end = conn.inbuf.find(b"\n")
        if end > control.MAX_LINE or (end < 0 and len(conn.inbuf) > control.MAX_LINE):
            error = f"request line too long (over {control.MAX_LINE} bytes)"
            self._close_with(conn, {"ok": False, "kind": control.KIND_USAGE, "error": error})
        elif conn.closing and not conn.out and end < 0:
            self._drop(conn)
        return answered

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            req = control.parse_line(line)
        except control.BadRequest as exc:
            return {"ok": False, "kind": control.KIND_USAGE, "error": str(exc)}
        return self.handle(req)

    def _flush(self, conn: _Connection) -> None:
        """Send what the client's socket takes now, never waiting for more room."""
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except BlockingIOError:
                sent = 0
            except OSError:  # the client went away
                self._drop(conn)
                return
            del conn.out[:sent]
        if conn.out:
            if conn.write_by is None:
                conn.write_by = self.clock.now() + WRITE_DEADLINE_S
                self.selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        if conn.write_by is not None:  # it was waiting: read again, with a fresh read deadline
            conn.write_by = None
            conn.read_by = self.clock.now() + READ_DEADLINE_S
            self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.closing and b"\n" not in conn.inbuf:
            self._drop(conn)

    def _close_with(self, conn: _Connection, reply: dict[str, Any]) -> None:
        """Say why, then close once that has gone (or its write deadline has passed)."""
        conn.inbuf.clear()
        conn.closing = True
        conn.out += _line(reply)
        self._flush(conn)

    def _expire(self, now: float) -> None:
        silent = stuck = 0
        for conn in list(self.connections.values()):
            if conn.out:
                if conn.write_by is not None and now >= conn.write_by:
                    stuck += 1
                    self._drop(conn)
            elif now >= conn.read_by:
                silent += 1
                error = (
                    f"no complete request within {READ_DEADLINE_S:g} s: "
                    "send one JSON object on one line, ended by a newline"
                )
                self._close_with(conn, {"ok": False, "kind": control.KIND_USAGE, "error": error})
        if silent:
            _log.info("control socket: closed %d connection(s) that sent no complete request in time", silent)
        if stuck:
            _log.info("control socket: dropped %d connection(s) that did not take their replies", stuck)

    def _drop(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.connections.pop(conn.sock, None)
        self.selector.unregister(conn.sock)
        conn.sock.close()

    def close(self) -> None:
        for conn in list(self.connections.values()):
            self._drop(conn)
        self.selector.close()
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
