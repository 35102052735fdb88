"""The ESC/POS printer transport: a ticket printer opened by URL, written without blocking.

Owns the port to one printer: opening it (`open_printer`: a serial port or a USB printer's
character device such as /dev/ttyUSB0, /dev/usb/lp0 or a pty path, pyserial URLs as in
hal.serial_link, and `sim://printer?...` for hal.printer_sim), non-blocking writes that report how
much the printer took, sending the real-time status request and reading its answer. The gateway
drives it a chunk at a time from its loop (gateway.printing); `query_status` and `send_all` are
the blocking conveniences for one-off use (`counterfloor printer test`), each with a timeout.
It must not know what a ticket says (gateway.ticket_bytes) or decide what a status means for
the office (gateway.printing).
"""

from __future__ import annotations

import os
import select
import stat
import time
from typing import Any, Protocol

import serial

from hal.printer_sim import SimPrinterPort, parse_printer_url
from hal.printer_status import FULL_REQUEST, NO_RESPONSE, STATUS_KINDS, PrinterStatus, StatusFormatError, parse_status
from hal.serial_link import open_link, url_problem

PRINTER_BAUD = 115200  # a serial printer's usual fast setting; USB and pty ignore it
CHUNK = 512  # bytes per write: small enough for a printer's receive buffer, large enough to be quick
STATUS_TIMEOUT_S = 0.5  # a printer answers DLE EOT within milliseconds even when offline
WRITE_TIMEOUT_S = 10.0  # a printer that takes nothing for this long is treated as gone


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

    PrinterPortError naming the URL when it cannot be opened (no such device, not a printer URL)."""
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
    says what None promises). Decided the way open_printer picks its transport."""
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
    except (OSError, serial.SerialException) as exc:
        raise PrinterPortError(f"writing to the printer failed: {exc}") from None
    return len(data) if n is None else int(n)


def read_available(port: Any) -> bytes:
    """What the printer has sent, without waiting. PrinterPortError when the port is gone."""
    try:
        n = port.in_waiting
        return bytes(port.read(n)) if n else b""
    except (OSError, serial.SerialException) as exc:
        raise PrinterPortError(f"reading from the printer failed: {exc}") from None


def _wait_readable(port: Any, timeout: float) -> None:
    fileno = getattr(port, "fileno", None)
    fd = fileno() if fileno is not None else None
    if fd is not None and timeout > 0:
        select.select([fd], [], [], timeout)


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
