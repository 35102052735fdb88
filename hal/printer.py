"""The ESC/POS printer transport: a ticket printer opened by URL, written without blocking.

Owns the port to one printer: opening it (`open_printer`: a serial port or a USB printer's
character device such as /dev/ttyUSB0, /dev/usb/lp0 or a pty path, a network printer's raw TCP
port `socket://host:9100` (NetworkPrinterPort: our own, never pyserial's, whose writes can spin
forever), pyserial URLs as in hal.serial_link, and `sim://printer?...` for hal.printer_sim),
non-blocking writes that report how much the printer took, sending the real-time status request
and reading its answer. The gateway
drives it a chunk at a time from its loop (gateway.printing); `query_status` and `send_all` are
the blocking conveniences for one-off use (`counterfloor printer test`), each with a timeout.
It must not know what a ticket says (gateway.ticket_bytes) or decide what a status means for
the office (gateway.printing).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import re
import select
import socket
import stat
import struct
import termios
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import serial

from hal.printer_sim import SimPrinterPort, parse_printer_url
from hal.printer_status import FULL_REQUEST, NO_RESPONSE, STATUS_KINDS, PrinterStatus, StatusFormatError, parse_status
from hal.serial_link import open_link, url_problem

PRINTER_BAUD = 115200  # a serial printer's usual fast setting; USB and pty ignore it
CHUNK = 512  # bytes per write: small enough for a printer's receive buffer, large enough to be quick
STATUS_TIMEOUT_S = 0.5  # a printer answers DLE EOT within milliseconds even when offline
WRITE_TIMEOUT_S = 10.0  # a printer that takes nothing for this long is treated as gone
# Network printers (socket://host:port):
NET_CONNECT_TIMEOUT_S = 3.0  # name lookup and connect together; a printer on the office LAN answers in ms
# Bytes waiting and none acknowledged by the printer for this long: the connection is dropped. Shorter
# than gateway.printing.WRITE_STALL_S, so a stalled job fails with this port's reason and the next
# open is a fresh connection.
NET_STALL_S = 8.0
NET_BUFFER = 4 * CHUNK  # taken by the port itself (also while connecting), ahead of the kernel's
NET_SNDBUF = 8192  # the kernel's send buffer (Linux doubles it): a job runs ~20 KB ahead of the printer
NET_RX_MAX = 4096  # a printer sends 4-byte status answers: more than this unread is noise (oldest dropped)
URL_CHECK_LOOKUP_S = 1.0  # printer_url_problem's wait for a name lookup (it runs in the loop on a pushed config)


class PrinterPortError(OSError):
    """The printer's port cannot be opened or used; the message names the port."""


class PrinterPort(Protocol):
    """What gateway.printing needs of a printer port (pyserial's surface, non-blocking)."""

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


class RawDevicePort:
    """A printer character device that is not a tty (the USB printer class, /dev/usb/lp0):
    plain non-blocking reads and writes, no line settings."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def write(self, data: bytes, /) -> int:
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0

    def read(self, size: int = 1, /) -> bytes:
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return b""

    @property
    def in_waiting(self) -> int:
        # A printer device cannot say how much is waiting: 64 if anything is (a status byte is 1).
        readable, _, _ = select.select([self.fd], [], [], 0)
        return 64 if readable else 0

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_printer(url: str) -> Any:
    """Open the printer at `url`: reads and writes never wait (write returns what was taken).

    PrinterPortError naming the URL when it cannot be opened (no such device, not a printer URL).
    A network printer's connection is made behind later calls (NetworkPrinterPort)."""
    if _scheme(url) == "socket":
        return NetworkPrinterPort.from_url(url)
    if url.startswith("sim://"):
        try:
            return SimPrinterPort.from_url(url)
        except ValueError as exc:
            raise PrinterPortError(str(exc)) from None
    if is_device_path(url):
        if not os.path.exists(url):
            raise PrinterPortError(f"cannot open printer port {url!r}: no such device")
        try:
            fd = os.open(url, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise PrinterPortError(f"cannot open printer port {url!r}: {exc.strerror}") from None
        try:
            tty = os.isatty(fd)
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        if regular:  # a mistyped path: printing into a file (a config, a journal) would destroy it
            raise PrinterPortError(f"cannot open printer port {url!r}: a regular file, not a device; left untouched")
        if not tty:
            try:
                return RawDevicePort(url)
            except OSError as exc:
                raise PrinterPortError(f"cannot open printer port {url!r}: {exc.strerror}") from None
    try:
        # write_timeout=0: pyserial writes what the device takes now and returns the count.
        return open_link(url, timeout=0, write_timeout=0, baudrate=PRINTER_BAUD)
    except (ValueError, OSError) as exc:  # serial.SerialException is an OSError
        raise PrinterPortError(f"cannot open printer port {url!r}: {exc}") from None


def printer_url_problem(url: str) -> str | None:
    """Why open_printer can never open `url`, or None; opens nothing (hal.serial_link.url_problem
    says what None promises). Decided the way open_printer picks its transport. A network
    printer's host name is looked up (waiting at most URL_CHECK_LOOKUP_S): one the DNS says does
    not exist is a problem; a slow or failing lookup is not (the network may be down now)."""
    if _scheme(url) == "socket":
        try:
            host, port = parse_network_url(url)
        except ValueError as exc:
            return str(exc)
        return _lookup_problem(host, port)
    if url.startswith("sim://"):
        try:
            parse_printer_url(url)
        except ValueError as exc:
            return str(exc)
        return None
    if is_device_path(url):
        return None
    return url_problem(url)


def write_some(port: Any, data: bytes) -> int:
    """Write what the printer takes now; the count (0 when its buffer is full).
    PrinterPortError when the port is gone (unplugged)."""
    fd = getattr(port, "fd", None)
    try:
        if isinstance(port, serial.Serial) and isinstance(fd, int):
            # pyserial's own non-blocking write spins on a full buffer (EAGAIN): write the fd.
            try:
                return os.write(fd, data)
            except BlockingIOError:
                return 0
        n = port.write(data)
    except serial.SerialTimeoutException:
        return 0
    except PrinterPortError:
        raise  # the port's own words (a network printer's stall or lost connection)
    except (OSError, serial.SerialException) as exc:
        raise PrinterPortError(f"writing to the printer failed: {exc}") from None
    return len(data) if n is None else int(n)


def read_available(port: Any) -> bytes:
    """What the printer has sent, without waiting. PrinterPortError when the port is gone."""
    try:
        n = port.in_waiting
        return bytes(port.read(n)) if n else b""
    except PrinterPortError:
        raise
    except (OSError, serial.SerialException) as exc:
        raise PrinterPortError(f"reading from the printer failed: {exc}") from None


def _wait_readable(port: Any, timeout: float) -> None:
    fileno = getattr(port, "fileno", None)
    fd = fileno() if fileno is not None else None
    if fd is not None and timeout > 0:
        # A network port still connecting or holding bytes wakes when it can send them too.
        sending = [fd] if getattr(port, "waiting_to_send", False) else []
        select.select([fd], sending, [], timeout)


def _wait_writable(port: Any, timeout: float) -> None:
    fileno = getattr(port, "fileno", None)
    fd = fileno() if fileno is not None else None
    if fd is not None and timeout > 0:
        select.select([], [fd], [], timeout)


def query_status(port: Any, timeout: float = STATUS_TIMEOUT_S, answers_before: int = 0) -> PrinterStatus:
    """Ask for all four status bytes and wait up to `timeout` for them; NO_RESPONSE if they do
    not come (printer off or unplugged). `answers_before`: the answers still due to requests
    inside data sent earlier (count_status_requests of a job); they come first and are skipped."""
    if write_some(port, FULL_REQUEST) != len(FULL_REQUEST):
        return NO_RESPONSE
    return answer_of(read_answers(port, answers_before + len(STATUS_KINDS), timeout))


def read_answers(port: Any, expected: int, timeout: float) -> bytes:
    """Up to `expected` bytes, waiting at most `timeout` seconds."""
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < expected:
        got += read_available(port)
        left = deadline - time.monotonic()
        if len(got) >= expected or left <= 0:
            break
        _wait_readable(port, left)
    return got


def answer_of(got: bytes) -> PrinterStatus:
    """The status in the last four bytes received; NO_RESPONSE if fewer came or they are not a
    status answer (a printer that skipped some requests inside a job still answers the last)."""
    if len(got) < len(STATUS_KINDS):
        return NO_RESPONSE
    try:
        return parse_status(got[-len(STATUS_KINDS) :])
    except StatusFormatError:
        return NO_RESPONSE


def send_all(port: Any, data: bytes, timeout: float = WRITE_TIMEOUT_S, chunk: int = CHUNK) -> None:
    """Write `data` in chunks of at most `chunk` bytes; PrinterPortError when the printer takes
    nothing for `timeout` seconds."""
    pos = 0
    stalled_since = time.monotonic()
    while pos < len(data):
        n = write_some(port, data[pos : pos + chunk])
        if n:
            pos += n
            stalled_since = time.monotonic()
            continue
        if time.monotonic() - stalled_since >= timeout:
            raise PrinterPortError(f"the printer took nothing for {timeout:g} s ({pos} of {len(data)} bytes sent)")
        _wait_writable(port, min(0.05, timeout))
    flush = getattr(port, "flush", None)
    if flush is not None and not isinstance(port, SimPrinterPort):
        try:
            flush()
        except (OSError, serial.SerialException) as exc:
            raise PrinterPortError(f"writing to the printer failed: {exc}") from None


def is_device_path(url: str) -> bool:
    """A plain path (a serial or USB printer device, a pty), not a URL."""
    return "://" not in url and os.path.isabs(url)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


# -- network printers: socket://host:port ----------------------------------------------------------
_EXPECTED = "expected socket://<host>:<port>, e.g. socket://192.168.1.50:9100"
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
AddrInfo = tuple[Any, ...]  # one of getaddrinfo's answers: family, kind, protocol, name, address


def parse_network_url(url: str) -> tuple[str, int]:
    """(host, port) of `socket://host:port`; ValueError naming what is wrong. Opens nothing."""
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"{url!r}: nothing may follow the port ({_EXPECTED})")
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{url!r}: no host ({_EXPECTED})")
    if port is None:
        raise ValueError(f"{url!r}: no port ({_EXPECTED}; raw printing is usually port 9100)")
    if not 1 <= port <= 65535:
        raise ValueError(f"{url!r}: the port must be a number 1-65535 ({_EXPECTED})")
    if not _host_name_ok(host):
        raise ValueError(f"{url!r}: {host!r} is neither a host name nor an IP address")
    return host, port


def _host_name_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _numeric(host: str, port: int) -> list[AddrInfo] | None:
    """The addresses of an IP literal (no lookup), None for a name."""
    try:
        return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST))
    except socket.gaierror:
        return None


class _Lookup:
    """A name lookup (getaddrinfo) in a daemon thread: the loop polls it and never waits on DNS,
    which may take many seconds to say nothing."""

    def __init__(self, host: str, port: int) -> None:
        self.done = threading.Event()
        self.addresses: list[AddrInfo] = []
        self.error: OSError | None = None
        threading.Thread(target=self._run, args=(host, port), name=f"lookup {host}", daemon=True).start()

    def _run(self, host: str, port: int) -> None:
        try:
            self.addresses = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            self.error = exc
        self.done.set()


_lookups: dict[tuple[str, int], _Lookup] = {}


def _lookup(host: str, port: int) -> _Lookup:
    """The lookup of host:port under way, else a new one: a hung DNS never piles up threads."""
    found = _lookups.get((host, port))
    if found is None or found.done.is_set():
        found = _lookups[(host, port)] = _Lookup(host, port)
    return found


_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def _lookup_problem(host: str, port: int) -> str | None:
    if _numeric(host, port) is not None:
        return None
    lookup = _lookup(host, port)
    if not lookup.done.wait(URL_CHECK_LOOKUP_S):
        return None
    error = lookup.error
    if isinstance(error, socket.gaierror) and error.errno in _NO_SUCH_NAME:
        return f"unknown host {host!r} ({error.strerror})"
    return None


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes in the kernel's send queue, not yet acknowledged by the printer (Linux SIOCOUTQ);
    0 where it cannot be asked (then a byte counts as taken when the kernel takes it)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return 0


class NetworkPrinterPort:
    """A network printer's raw TCP port (`socket://host:9100`): reads and writes never wait.

    The connection is made behind the calls (the name looked up in a thread, a non-blocking
    connect to each address in turn), within `connect_timeout_s`. Writes are taken into a
    buffer of `buffer` bytes (also while connecting, so a status request asked at once goes
    out as soon as it can) and handed to a small kernel send buffer, so a job runs only a few
    kilobytes ahead of the printer. Every call moves what it can and checks the connection:
    PrinterPortError naming the URL when it is refused, unreachable, not made in time, closed
    by the printer, or stalled (bytes waiting and none acknowledged by the printer for
    `stall_s`; close() then resets it, dropping what is unsent). It never reconnects itself:
    its owner opens a new one (gateway.printing.PrinterLine, after REOPEN_S, backing off to REOPEN_MAX_S)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        stall_s: float = NET_STALL_S,
        connect_timeout_s: float = NET_CONNECT_TIMEOUT_S,
        buffer: int = NET_BUFFER,
    ) -> None:
        self.url = url or f"socket://{host}:{port}"
        self.clock = clock
        self.stall_s = stall_s
        self.connect_timeout_s = connect_timeout_s
        self.buffer = buffer
        self.sock: socket.socket | None = None
        self.connected = False
        self._host = host
        self._deadline = clock() + connect_timeout_s
        self._addresses = _numeric(host, port)
        self._lookup = _lookup(host, port) if self._addresses is None else None
        self._out = bytearray()  # taken from the caller, not yet by the kernel
        self._rx = bytearray()
        self._sent = 0  # bytes the kernel took
        self._acked = 0  # bytes the printer acknowledged
        self._progress_at = clock()
        self._reset = False  # close() drops what is unsent (the printer stalled)
        self._advance()  # an address refused at once is an open error

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NetworkPrinterPort:
        """PrinterPortError for a URL that is not socket://host:port (parse_network_url)."""
        try:
            host, port = parse_network_url(url)
        except ValueError as exc:
            raise PrinterPortError(f"cannot open printer port {exc}") from None
        return cls(host, port, url=url, **options)

    # -- the port surface -------------------------------------------------------------------
    def write(self, data: bytes, /) -> int:
        """Take what fits in the buffer now (0 when it is full); send what the kernel takes."""
        self._advance()
        if not self._out and (self.sock is None or not self.connected or _unacknowledged(self.sock) == 0):
            self._progress_at = self.clock()  # nothing was waiting: a stall counts from now
        take = max(0, min(len(data), self.buffer - len(self._out)))
        self._out += data[:take]
        self._send()
        return take

    def read(self, size: int = 1, /) -> bytes:
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    @property
    def in_waiting(self) -> int:
        self._advance()
        return len(self._rx)

    @property
    def waiting_to_send(self) -> bool:
        """Connecting, or holding bytes the kernel has not taken yet."""
        return not self.connected or bool(self._out)

    def fileno(self) -> int | None:
        return self.sock.fileno() if self.sock is not None else None

    def flush(self) -> None:
        """Wait until the kernel has taken every byte (send_all's end; never in the loop)."""
        while self.waiting_to_send:
            self._advance()
            if self.sock is not None:
                select.select([], [self.sock], [], 0.05)
            else:
                time.sleep(0.01)  # the name lookup: no descriptor to wait on

    def close(self) -> None:
        if self.sock is None:
            return
        if self._reset:  # RST: the unsent rest of a stalled job must not reach the printer later
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.sock = None
        self.connected = False

    # -- inside ---------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Everything that can be done now: connect, send, receive, check for a stall."""
        if not self.connected:
            self._connect()
            if not self.connected:
                return
        self._send()
        self._receive()
        self._check_stall()

    def _connect(self) -> None:
        if self._addresses is None:
            assert self._lookup is not None
            if not self._lookup.done.is_set():
                self._check_deadline("looking up its name")
                return
            if self._lookup.error is not None:
                raise self._failure(f"cannot find host {self._host!r}: {self._lookup.error.strerror}")
            self._addresses = list(self._lookup.addresses)
        while True:
            if self.sock is None:
                if not self._addresses:
                    raise self._failure("no address to connect to")
                self._start_connect(self._addresses.pop(0))
            assert self.sock is not None
            if not select.select([], [self.sock], [], 0)[1]:
                self._check_deadline("connecting")
                return
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error == 0:
                self.connected = True
                self._progress_at = self.clock()
                return
            self.close()
            if not self._addresses:  # the last address: its error is the answer
                raise self._failure(f"cannot connect: {os.strerror(error)}")

    def _start_connect(self, address: AddrInfo) -> None:
        family, kind, proto, _, sockaddr = address
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, NET_SNDBUF)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a status request must not wait
        self.sock = sock
        error = sock.connect_ex(sockaddr)
        if error not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self.close()
            if not self._addresses:
                raise self._failure(f"cannot connect: {os.strerror(error)}")

    def _check_deadline(self, doing: str) -> None:
        if self.clock() >= self._deadline:
            raise self._failure(f"no connection within {self.connect_timeout_s:g} s ({doing})")

    def _send(self) -> None:
        if not self.connected or not self._out:
            return
        assert self.sock is not None
        try:
            n = self.sock.send(self._out, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        except OSError as exc:
            raise self._failure(f"connection lost: {exc.strerror or exc}") from None
        del self._out[:n]
        self._sent += n

    def _receive(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(NET_RX_MAX)
            except BlockingIOError:
                return
            except OSError as exc:
                raise self._failure(f"connection lost: {exc.strerror or exc}") from None
            if not data:
                raise self._failure("the printer closed the connection")
            self._rx += data
            del self._rx[:-NET_RX_MAX]

    def _check_stall(self) -> None:
        assert self.sock is not None
        unacked = _unacknowledged(self.sock)
        acked = self._sent - unacked
        now = self.clock()
        if acked > self._acked or not (self._out or unacked):
            self._acked = max(self._acked, acked)
            self._progress_at = now
        elif now - self._progress_at >= self.stall_s:
            self._reset = True  # (no byte count in the words: the log says a repeated reason once)
            raise self._failure(f"the printer took nothing for {self.stall_s:g} s")

    def _failure(self, what: str) -> PrinterPortError:
        return PrinterPortError(f"printer {self.url}: {what}")
