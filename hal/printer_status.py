"""ESC/POS real-time status (`DLE EOT n`): the request bytes and a pure model of the answers.

Owns the meaning of the four status bytes an ESC/POS printer sends back at once, even while it is
offline or busy (Epson's ESC/POS reference, "DLE EOT n", followed by Japanese printers too):

    n=1 printer status       bit 3: offline
    n=2 offline cause        bit 2: cover open; bit 5: printing stopped by paper end; bit 6: error
    n=3 error cause          bit 3: autocutter error; bit 5: unrecoverable; bit 6: auto-recoverable
    n=4 roll paper sensor    bits 2+3: paper near end; bits 5+6: paper not present

Every status byte has bits 0 and 7 clear and bits 1 and 4 set (0b0xx1xx10), which is how a reply
is told from noise. No I/O here: hal.printer sends the requests and reads the bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DLE = 0x10
EOT = 0x04
STATUS_KINDS = (1, 2, 3, 4)  # printer, offline cause, error cause, roll paper sensor
_FIXED_MASK = 0x93  # bits 0, 1, 4, 7
_FIXED_BITS = 0x12  # bits 1 and 4 set, 0 and 7 clear


def status_request(n: int) -> bytes:
    """`DLE EOT n`: ask for status byte `n` (1..4)."""
    if n not in STATUS_KINDS:
        raise ValueError(f"DLE EOT n: n must be one of {STATUS_KINDS}, got {n!r}")
    return bytes((DLE, EOT, n))


# All four in one write: the printer answers them in order, one byte each.
FULL_REQUEST = b"".join(status_request(n) for n in STATUS_KINDS)


_REQUEST_RE = re.compile(rb"\x10\x04[\x01-\x04]")


def count_status_requests(data: bytes) -> int:
    """How many `DLE EOT n` a printer finds in `data`. It answers each one wherever it is, even
    inside a raster image's bytes, so a job's own answers come back before the status asked
    after it: the host expects this many bytes first."""
    return len(_REQUEST_RE.findall(data))


def is_status_byte(b: int) -> bool:
    """Has the fixed bits every DLE EOT answer has."""
    return (b & _FIXED_MASK) == _FIXED_BITS


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the printer says about itself. `responding` False: no status came back in time (off,
    unplugged, cable out): nothing else is known then, and it cannot print."""

    responding: bool = True
    online: bool = True
    cover_open: bool = False
    paper_near_end: bool = False
    paper_out: bool = False
    error: bool = False

    @property
    def can_print(self) -> bool:
        return self.responding and self.online and not (self.cover_open or self.paper_out or self.error)

    @property
    def problem(self) -> str | None:
        """Why it cannot print (a short machine-readable reason), or None when it can."""
        if not self.responding:
            return "no_response"
        if self.paper_out:
            return "paper_out"
        if self.cover_open:
            return "cover_open"
        if self.error:
            return "error"
        if not self.online:
            return "offline"
        return None

    def describe(self) -> str:
        """One line for logs and `office show`: "ok", "ok, paper near end", "paper_out", ..."""
        problem = self.problem
        if problem is None:
            return "ok, paper near end" if self.paper_near_end else "ok"
        return problem + (", paper near end" if self.paper_near_end and self.responding else "")

    def as_json(self) -> dict[str, bool | str | None]:
        return {
            "responding": self.responding,
            "online": self.online,
            "cover_open": self.cover_open,
            "paper_near_end": self.paper_near_end,
            "paper_out": self.paper_out,
            "error": self.error,
            "problem": self.problem,
        }


NO_RESPONSE = PrinterStatus(responding=False, online=False)


class StatusFormatError(ValueError):
    """Bytes that are not the answer to a status request."""


def parse_status(replies: bytes) -> PrinterStatus:
    """The status from the answers to `FULL_REQUEST` (four bytes, n=1..4 in order).
    StatusFormatError naming the byte when one is not a status byte or the count is wrong."""
    if len(replies) != len(STATUS_KINDS):
        raise StatusFormatError(f"expected {len(STATUS_KINDS)} status bytes, got {len(replies)}: {replies.hex(' ')}")
    for n, b in zip(STATUS_KINDS, replies, strict=True):
        if not is_status_byte(b):
            raise StatusFormatError(f"DLE EOT {n}: {b:#04x} is not a status byte (fixed bits 0b0xx1xx10)")
    printer, offline, error, paper = replies
    return PrinterStatus(
        responding=True,
        online=not printer & 0x08,
        cover_open=bool(offline & 0x04),
        paper_out=bool(offline & 0x20) or (paper & 0x60) == 0x60,
        error=bool(offline & 0x40) or bool(error & 0x68),
        paper_near_end=(paper & 0x0C) == 0x0C,
    )


def status_bytes(status: PrinterStatus) -> bytes:
    """The four bytes a printer in `status` answers to FULL_REQUEST (the simulator's side)."""
    offline = not status.online or status.cover_open or status.paper_out or status.error
    printer = _FIXED_BITS | (0x08 if offline else 0)
    cause = _FIXED_BITS | (0x04 if status.cover_open else 0) | (0x20 if status.paper_out else 0)
    cause |= 0x40 if status.error else 0
    error = _FIXED_BITS | (0x20 if status.error else 0)
    paper = _FIXED_BITS | (0x0C if status.paper_near_end or status.paper_out else 0) | (0x60 if status.paper_out else 0)
    return bytes((printer, cause, error, paper))
