"""A simulated ESC/POS ticket printer, for tests, benchmarks and `sim://printer` ports.

Owns the simulated printer's behaviour only: it records the bytes it would print, answers the
real-time status request `DLE EOT n` (hal.printer_status) anywhere in the stream, as a real
printer does, and can be told to run out of paper, go near-end, open its cover, fail, or be
unplugged (then it answers nothing and what is written to it is lost). While it cannot print, what
it receives is held and printed when the fault clears, as real printers hold their buffer.

It answers as a printer model would (docs/printing.md, "Printed means printed"): `completion`
"process-id" answers Epson's `GS ( H` fn 48 and `GS r 1`, "status" only `GS r 1`, "none" neither;
with an `identity` it answers `GS I`. Those commands are found by following the command stream
(a raster picture's bytes are data, never a command), and answered when the printer gets to them:
one held while it cannot print is answered when it can again. Fakes for what goes wrong:
`ignore_completion` (claims a model, never answers its completion request) and `tail_fault` (runs
out of paper, or has its cover opened, at the job's cut: after taking the last byte, before
finishing; the rest of that ticket comes out when it is restored).

    sim://printer                                  a printer with paper, cover closed
    sim://printer?paper=near_end|out&cover=open&unplugged=1&accept=256
    sim://printer?completion=process-id|status|none&ignore_completion=1&tail_fault=paper_out|cover_open
    sim://printer?maker=EPSON&name=TM-T88V&firmware=30.01&serial=X1   answers GS I

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

from hal.printer_status import (
    DLE,
    EOT,
    IDENTITY_TEXTS,
    STATUS_KINDS,
    PrinterStatus,
    identity_text_response,
    paper_sensor_byte,
    process_id_response,
    status_bytes,
)

ESC, GS, FS = 0x1B, 0x1D, 0x1C
COMPLETIONS = ("process-id", "status", "none")  # as office.printer_models (hal cannot import it)
TAIL_FAULTS = ("paper_out", "cover_open")
_MAX_QUERY = 64  # a GS ( H longer than this is not one we answer: passed on as data


@dataclass(frozen=True, slots=True)
class SimIdentity:
    """What a simulated printer answers to GS I: 1 model ID, 2 type ID (bit 1: autocutter), 3 ROM
    version; 65 firmware, 66 maker, 67 model name, 68 serial ("" = not answered)."""

    maker: str
    name: str
    firmware: str = "1.00 sim"
    serial: str = ""
    model_id: int = 0x20
    type_id: int = 0x02
    rom_version: int = 0x01

    @classmethod
    def from_title(cls, title: str, firmware: str = "1.00 sim", serial: str = "") -> SimIdentity:
        """As a model's maker-written title reads ("Epson TM-T88V": maker EPSON, name TM-T88V)."""
        maker, _, name = title.partition(" ")
        return cls(maker.upper(), name or maker, firmware, serial)

    def answer(self, n: int) -> bytes:
        singles = {1: self.model_id, 2: self.type_id, 3: self.rom_version}
        if n in singles:
            return bytes((singles[n],))
        text = {65: self.firmware, 66: self.maker, 67: self.name, 68: self.serial}.get(n, "")
        return identity_text_response(text) if n in IDENTITY_TEXTS and text else b""


def _command_size(cmd: bytes | bytearray) -> tuple[int, int] | None:
    """(header bytes, data bytes after it) of the command `cmd` starts (ESC, GS or FS), or None
    while more bytes are needed to tell. The data (a raster band, a QR code's text) is passed on
    unread, so bytes in it are never taken for a command."""
    if len(cmd) < 2:
        return None
    lead, op = cmd[0], cmd[1]
    if lead != GS:  # ESC @, ESC 2, FS &, FS . take nothing; the others ESC/FS we send one byte
        return (2, 0) if (lead, op) in ((ESC, 0x40), (ESC, 0x32), (FS, 0x26), (FS, 0x2E)) else (3, 0)
    if op == 0x76:  # GS v 0 m xL xH yL yH, then the rows
        return None if len(cmd) < 8 else (8, (cmd[4] | cmd[5] << 8) * (cmd[6] | cmd[7] << 8))
    if op == 0x28:  # GS ( fn pL pH, then the parameters; a GS ( H is read whole, to answer it
        if len(cmd) < 5:
            return None
        size = cmd[3] | cmd[4] << 8
        return (5 + size, 0) if cmd[2] == 0x48 and size <= _MAX_QUERY else (5, size)
    if op == 0x56:  # GS V m [n]
        return None if len(cmd) < 3 else (4 if cmd[2] in (65, 66) else 3, 0)
    return (4, 0) if op == 0x50 else (3, 0)  # GS P x y; GS ! n, GS r n, GS I n, ...


@dataclass
class SimPrinter:
    """The printer: `feed(data)` takes bytes from the host and returns its answers; answers that
    come later by themselves (a held job finished when it is restored) wait in `outbox`."""

    paper_near_end: bool = False
    paper_out: bool = False
    cover_open: bool = False
    error: bool = False
    unplugged: bool = False
    completion: str = "none"  # which completion request it answers (office.printer_models)
    identity: SimIdentity | None = None  # answers GS I
    ignore_completion: bool = False  # claims `completion`, never answers it
    tail_fault: str | None = None  # "paper_out"/"cover_open" at the next cut, then disarmed
    printed: bytearray = field(default_factory=bytearray)  # what came out on paper
    held: bytearray = field(default_factory=bytearray)  # received while it could not print
    outbox: bytearray = field(default_factory=bytearray)  # answers not asked for by a write
    status_requests: int = 0
    completion_requests: int = 0  # GS ( H and GS r it got to (answered or not)
    _tail: bytes = b""  # the start of a DLE EOT split across writes
    _cmd: bytearray = field(default_factory=bytearray)  # the command being received
    _skip: int = 0  # bytes of a command's data still to pass on
    _job_start: int = 0  # len(printed) at the last ESC @
    _unfinished: bytes = b""  # cut short by a tail fault: comes out when restored

    def __post_init__(self) -> None:
        if self.completion not in COMPLETIONS:
            raise ValueError(f"completion must be one of {COMPLETIONS}, got {self.completion!r}")
        if self.tail_fault not in (None, *TAIL_FAULTS):
            raise ValueError(f"tail_fault must be one of {TAIL_FAULTS}, got {self.tail_fault!r}")

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
        """Bytes from the host; returns what it answers (none when unplugged): DLE EOT at once,
        wherever it is; the other requests when the printer gets to them."""
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
        if self.can_print and (self.held or self._unfinished):
            answers += self._release()  # fixed by hand (not restore()): it goes on with what it held
        if self.can_print:
            done, rest = self._process(bytes(job))
            answers += done
            self.held += rest
        else:
            self.held += job
        return bytes(answers)

    def restore(self) -> None:
        """Staff fixed it (paper in, cover closed, error cleared, plugged in): held data prints,
        and what it answers on the way goes to `outbox`."""
        self.paper_out = self.cover_open = self.error = self.unplugged = False
        self.paper_near_end = False
        self.outbox += self._release()

    def take_outbox(self) -> bytes:
        out = bytes(self.outbox)
        self.outbox.clear()
        return out

    # -- the command processor -----------------------------------------------------------------
    def _release(self) -> bytes:
        """Finish the ticket a tail fault cut short, then process what was held."""
        self.printed += self._unfinished
        self._unfinished = b""
        held = bytes(self.held)
        self.held.clear()
        answers, rest = self._process(held)
        self.held += rest
        return answers

    def _process(self, data: bytes) -> tuple[bytes, bytes]:
        """Print `data` (real-time requests taken out already), command by command; (what it
        answers, what it did not get to because a tail fault stopped it)."""
        answers = bytearray()
        i = 0
        while i < len(data):
            if self._skip:
                n = min(self._skip, len(data) - i)
                self.printed += data[i : i + n]
                self._skip -= n
                i += n
                continue
            b = data[i]
            i += 1
            if not self._cmd and b not in (ESC, GS, FS):
                self.printed.append(b)
                continue
            self._cmd.append(b)
            size = _command_size(self._cmd)
            if size is None or len(self._cmd) < size[0]:
                continue
            cmd = bytes(self._cmd)
            self._cmd.clear()
            answer = self._answer(cmd)
            if answer is not None:
                answers += answer
                continue
            if cmd == bytes((ESC, 0x40)):
                self._job_start = len(self.printed)
            self.printed += cmd
            self._skip = size[1]
            if cmd[:2] == bytes((GS, 0x56)) and self.tail_fault is not None:
                self._fault_at_tail(self.tail_fault)
                return bytes(answers), data[i:]
        return bytes(answers), b""

    def _answer(self, cmd: bytes) -> bytes | None:
        """What it sends back for a request (b"": one it ignores), None for anything else."""
        if cmd[:3] == bytes((GS, 0x28, 0x48)) and cmd[5:7] == b"00" and len(cmd) == 11:  # GS ( H fn 48
            self.completion_requests += 1
            answers = self.completion == "process-id" and not self.ignore_completion
            return process_id_response(cmd[7:11]) if answers else b""
        if cmd[:2] == bytes((GS, 0x72)):  # GS r n
            self.completion_requests += 1
            answers = self.completion != "none" and not self.ignore_completion and cmd[2] in (1, 49)
            return bytes((paper_sensor_byte(self.status),)) if answers else b""
        if cmd[:2] == bytes((GS, 0x49)):  # GS I n
            return self.identity.answer(cmd[2]) if self.identity is not None else b""
        return None

    def _fault_at_tail(self, fault: str) -> None:
        """The paper runs out (or the cover opens) while the job's tail is printing: half of what
        this job printed has not come out yet, nor has the cut."""
        cut = self._job_start + (len(self.printed) - self._job_start) // 2
        self._unfinished = bytes(self.printed[cut:])
        del self.printed[cut:]
        setattr(self, fault, True)
        self.tail_fault = None


def parse_printer_url(url: str) -> tuple[SimPrinter, int | None]:
    """(printer, accept) from `sim://printer?...`; ValueError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme != "sim" or parts.netloc != "printer" or parts.path not in ("", "/"):
        raise ValueError(f"not a simulated printer URL (sim://printer?...): {url!r}")
    try:
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=bool(parts.query)).items()}
    except ValueError as exc:
        raise ValueError(f"{url!r}: bad query string ({exc})") from None
    known = {"paper", "cover", "unplugged", "error", "accept", "completion", "ignore_completion", "tail_fault"}
    known |= set(_IDENTITY_OPTIONS)
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
    _model_options(url, query, printer)
    for flag in ("unplugged", "error", "ignore_completion"):
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


_IDENTITY_OPTIONS = ("maker", "name", "firmware", "serial")


def _model_options(url: str, query: dict[str, str], printer: SimPrinter) -> None:
    """completion, tail_fault and the GS I identity (given by `name`) from a sim URL's query."""
    printer.completion = query.get("completion", "none")
    if printer.completion not in COMPLETIONS:
        raise ValueError(f"{url!r}: completion must be one of {', '.join(COMPLETIONS)} (got {printer.completion!r})")
    fault = query.get("tail_fault")
    if fault is not None and fault not in TAIL_FAULTS:
        raise ValueError(f"{url!r}: tail_fault must be one of {', '.join(TAIL_FAULTS)} (got {fault!r})")
    printer.tail_fault = fault
    given = {k: query[k] for k in _IDENTITY_OPTIONS if k in query}
    if given and not given.get("name"):
        raise ValueError(f"{url!r}: a GS I identity needs name= (the model name it answers)")
    if given:
        printer.identity = SimIdentity(
            given.get("maker", ""), given["name"], given.get("firmware", "1.00 sim"), given.get("serial", "")
        )


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
        self._rx += self.printer.take_outbox()
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    @property
    def in_waiting(self) -> int:
        self._rx += self.printer.take_outbox()
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
        late = self.printer.take_outbox()  # answers of a job it finished when restored
        if late:
            os.write(self.master, late)
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
