"""A simulated ESC/POS ticket printer, for tests, benchmarks and `sim://printer` ports.

Owns the simulated printer's behaviour only: it records the bytes it would print, answers the
real-time status request `DLE EOT n` (hal.printer_status) anywhere in the stream, as a real
printer does, and can be told to run out of paper, go near-end, open its cover, fail, or be
unplugged (then it answers nothing and what is written to it is lost). While it cannot print, what
it receives is held and printed when the fault clears, as real printers hold their buffer.

    sim://printer                                  a printer with paper, cover closed
    sim://printer?paper=near_end|out&cover=open&unplugged=1&accept=256

`accept`: at most this many bytes taken per write (a slow printer's small buffer), so the caller's
chunking and partial writes are exercised. `PtyPrinter` serves a SimPrinter on a pty master, for
tests of a real serial path.
"""

from __future__ import annotations

import contextlib
import os
import select
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from hal.printer_status import DLE, EOT, STATUS_KINDS, PrinterStatus, status_bytes


@dataclass
class SimPrinter:
    """The printer: `feed(data)` takes bytes from the host and returns its answers."""

    paper_near_end: bool = False
    paper_out: bool = False
    cover_open: bool = False
    error: bool = False
    unplugged: bool = False
    printed: bytearray = field(default_factory=bytearray)  # what came out on paper
    held: bytearray = field(default_factory=bytearray)  # received while it could not print
    status_requests: int = 0
    _tail: bytes = b""  # the start of a DLE EOT split across writes

    @property
    def status(self) -> PrinterStatus:
        return PrinterStatus(
            responding=not self.unplugged,
            online=not (self.paper_out or self.cover_open or self.error),
            cover_open=self.cover_open,
            paper_near_end=self.paper_near_end,
            paper_out=self.paper_out,
            error=self.error,
        )

    @property
    def can_print(self) -> bool:
        return self.status.can_print

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host; returns the status bytes it answers (none when unplugged)."""
        if self.unplugged:
            self._tail = b""
            return b""
        data = self._tail + data
        self._tail = b""
        answers = bytearray()
        job = bytearray()
        i = 0
        while i < len(data):
            b = data[i]
            if b == DLE and i + 2 >= len(data) and data[i + 1 : i + 2] in (b"", bytes((EOT,))):
                self._tail = bytes(data[i:])  # maybe a request split across writes: decide later
                break
            if b == DLE and data[i + 1] == EOT and data[i + 2] in STATUS_KINDS:
                n = data[i + 2]
                answers.append(status_bytes(self.status)[n - 1])
                self.status_requests += 1
                i += 3
                continue
            job.append(b)
            i += 1
        (self.printed if self.can_print else self.held).extend(job)
        return bytes(answers)

    def restore(self) -> None:
        """Staff fixed it (paper in, cover closed, error cleared, plugged in): held data prints."""
        self.paper_out = self.cover_open = self.error = self.unplugged = False
        self.paper_near_end = False
        self.printed.extend(self.held)
        self.held.clear()


def parse_printer_url(url: str) -> tuple[SimPrinter, int | None]:
    """(printer, accept) from `sim://printer?...`; ValueError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme != "sim" or parts.netloc != "printer" or parts.path not in ("", "/"):
        raise ValueError(f"not a simulated printer URL (sim://printer?...): {url!r}")
    try:
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=bool(parts.query)).items()}
    except ValueError as exc:
        raise ValueError(f"{url!r}: bad query string ({exc})") from None
    known = {"paper", "cover", "unplugged", "error", "accept"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ValueError(f"{url!r}: unknown option(s) {unknown}; options are {sorted(known)}")
    printer = SimPrinter()
    paper = query.get("paper", "ok")
    if paper not in ("ok", "near_end", "out"):
        raise ValueError(f"{url!r}: paper must be ok, near_end or out (got {paper!r})")
    printer.paper_near_end = paper == "near_end"
    printer.paper_out = paper == "out"
    cover = query.get("cover", "closed")
    if cover not in ("open", "closed"):
        raise ValueError(f"{url!r}: cover must be open or closed (got {cover!r})")
    printer.cover_open = cover == "open"
    for flag in ("unplugged", "error"):
        value = query.get(flag, "0")
        if value not in ("0", "1"):
            raise ValueError(f"{url!r}: {flag} must be 0 or 1 (got {value!r})")
        setattr(printer, flag, value == "1")
    accept: int | None = None
    if "accept" in query:
        try:
            accept = int(query["accept"])
        except ValueError:
            accept = 0
        if accept < 1:
            raise ValueError(f"{url!r}: accept must be a positive number of bytes (got {query['accept']!r})")
    return printer, accept


class SimPrinterPort:
    """A SimPrinter behind the port surface hal.printer uses (write/read/in_waiting/close).
    Answers are ready to read as soon as the write that asked for them returns."""

    def __init__(self, printer: SimPrinter, accept: int | None = None, url: str = "sim://printer") -> None:
        self.printer = printer
        self.accept = accept
        self.url = url
        self.written = 0
        self._rx = bytearray()
        self.is_open = True

    @classmethod
    def from_url(cls, url: str) -> SimPrinterPort:
        printer, accept = parse_printer_url(url)
        return cls(printer, accept, url)

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise OSError(f"{self.url}: port is closed")
        take = bytes(data) if self.accept is None else bytes(data[: self.accept])
        self.written += len(take)
        self._rx += self.printer.feed(take)
        return len(take)

    def read(self, size: int = 1) -> bytes:
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def fileno(self) -> int | None:
        return None  # nothing to select on: answers are ready at once

    def close(self) -> None:
        self.is_open = False


class PtyPrinter:
    """A SimPrinter on the master side of a pty: the host opens `path` as a serial port.
    `serve(timeout)` answers what has arrived; it waits for data with select, never sleeps."""

    def __init__(self, printer: SimPrinter | None = None) -> None:
        self.printer = printer or SimPrinter()
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        os.set_blocking(self.master, False)

    def serve(self, timeout: float = 0.0) -> int:
        """Read what the host sent (waiting up to `timeout` for the first byte), answer it;
        returns the bytes received."""
        got = 0
        wait = timeout
        while True:
            readable, _, _ = select.select([self.master], [], [], wait)
            if not readable:
                return got
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                return got
            except OSError:  # the host closed its side
                return got
            if not data:
                return got
            got += len(data)
            answers = self.printer.feed(data)
            if answers:
                os.write(self.master, answers)
            wait = 0.0

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
