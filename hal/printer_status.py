"""ESC/POS real-time status (`DLE EOT n`): the request bytes and a pure model of the answers.

Owns the meaning of the four status bytes an ESC/POS printer sends back at once, even while it is
offline or busy (Epson's ESC/POS reference, "DLE EOT n", followed by Japanese printers too):

    n=1 printer status       bit 3: offline
    n=2 offline cause        bit 2: cover open; bit 5: printing stopped by paper end; bit 6: error
    n=3 error cause          bit 3: autocutter error; bit 5: unrecoverable; bit 6: auto-recoverable
    n=4 roll paper sensor    bits 2+3: paper near end; bits 5+6: paper not present

Every status byte has bits 0 and 7 clear and bits 1 and 4 set (0b0xx1xx10), which is how a reply
is told from noise. Also the requests a printer answers only once it has processed what came
before them, which is how a job is known printed (docs/printing.md, "Printed means printed"):
Epson's process ID response (`GS ( H`, fn 48) and the paper sensor status (`GS r 1`); and `GS I`,
what a printer says it is. No I/O here: hal.printer sends the requests and reads the bytes.
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


def split_answers(data: bytes) -> tuple[bytes, bytes]:
    """(the DLE EOT answers in `data`, every other byte). Nothing a printer sends back to the
    requests below is a status byte (see PROCESS_ID_ALPHABET, PAPER_SENSOR_REQUEST), so the two
    can be told apart byte by byte, in whatever order they arrive."""
    answers = bytes(b for b in data if is_status_byte(b))
    if len(answers) == len(data):
        return answers, b""
    return answers, bytes(b for b in data if not is_status_byte(b))


# -- "printed means printed": requests a printer answers only once what came before is done ----
GS = 0x1D
# Epson's process ID response: header 37h, identifier 22h, d1..d4, NUL (GS ( H, fn 48).
PROCESS_ID_HEADER = b"\x37\x22"
PROCESS_ID_RESPONSE_LEN = 7
# The ID's characters: odd printable bytes (Epson allows 32..126). Bit 0 set, so no byte of the
# response (37h, 22h, the ID, 00h) is ever taken for a DLE EOT answer (0b0xx1xx10).
PROCESS_ID_ALPHABET = bytes(range(0x21, 0x7F, 2))
PROCESS_IDS = len(PROCESS_ID_ALPHABET) ** 4
# GS r 1: the paper sensor status, answered when the printer gets to it in its buffer. Its answer
# has bits 4 and 7 clear: never a status byte either.
PAPER_SENSOR_REQUEST = bytes((GS, 0x72, 0x01))
_SENSOR_FIXED_MASK = 0x90
_SENSOR_PAPER_END = 0x0C  # bits 2+3: roll paper end sensor: paper not present
_SENSOR_NEAR_END = 0x03  # bits 0+1: roll paper near-end sensor


def process_id(n: int) -> bytes:
    """The four-character process ID number `n` (modulo PROCESS_IDS) stands for."""
    n %= PROCESS_IDS
    base = len(PROCESS_ID_ALPHABET)
    return bytes(PROCESS_ID_ALPHABET[n // base**k % base] for k in range(4))


def process_id_request(pid: bytes) -> bytes:
    """`GS ( H 06 00 30 30 d1 d2 d3 d4`: answer with `pid` once everything before it is processed
    (printing data: printed). ValueError for an ID that is not four bytes of 32..126."""
    if len(pid) != 4 or not all(32 <= b <= 126 for b in pid):
        raise ValueError(f"a process ID is four bytes of 32..126, got {pid!r}")
    return bytes((GS, 0x28, 0x48, 0x06, 0x00, 0x30, 0x30)) + pid


def process_id_response(pid: bytes) -> bytes:
    """What the printer sends back for `process_id_request(pid)` (the simulator's side)."""
    return PROCESS_ID_HEADER + pid + b"\x00"


def find_process_ids(data: bytes) -> tuple[list[bytes], bytes]:
    """The IDs of the whole process ID responses in `data` (bytes that are not status answers),
    and the end of `data` that may be the start of one still coming."""
    ids: list[bytes] = []
    i = 0
    while (j := data.find(PROCESS_ID_HEADER, i)) >= 0:
        frame = data[j : j + PROCESS_ID_RESPONSE_LEN]
        if len(frame) < PROCESS_ID_RESPONSE_LEN:
            return ids, frame
        if frame[-1] == 0:
            ids.append(frame[2:6])
            i = j + PROCESS_ID_RESPONSE_LEN
        else:
            i = j + 1
    return ids, data[-1:] if data.endswith(PROCESS_ID_HEADER[:1]) else b""


def is_paper_sensor_byte(b: int) -> bool:
    """Has the fixed bits of a GS r 1 answer (4 and 7 clear)."""
    return not b & _SENSOR_FIXED_MASK


def sensor_paper_out(b: int) -> bool:
    """A GS r 1 answer says the roll is out."""
    return (b & _SENSOR_PAPER_END) == _SENSOR_PAPER_END


def paper_sensor_byte(status: PrinterStatus) -> int:
    """The GS r 1 answer of a printer in `status` (the simulator's side)."""
    return (_SENSOR_PAPER_END if status.paper_out else 0) | (_SENSOR_NEAR_END if status.paper_near_end else 0)


# -- GS I: what a printer says it is -------------------------------------------------------------
IDENTITY_BYTES = {1: "model ID", 2: "type ID", 3: "ROM version"}  # one byte each
IDENTITY_TEXTS = {65: "firmware", 66: "maker", 67: "model", 68: "serial"}  # 5Fh, text, NUL
IDENTITY_TEXT_HEADER = 0x5F


def identity_request(n: int) -> bytes:
    """`GS I n`: transmit printer ID `n` (IDENTITY_BYTES, IDENTITY_TEXTS)."""
    if n not in IDENTITY_BYTES and n not in IDENTITY_TEXTS:
        raise ValueError(f"GS I n: n must be one of {sorted(IDENTITY_BYTES) + sorted(IDENTITY_TEXTS)}, got {n!r}")
    return bytes((GS, 0x49, n))


def identity_text_response(text: str) -> bytes:
    """The answer to GS I 65..68 (the simulator's side)."""
    return bytes((IDENTITY_TEXT_HEADER,)) + text.encode("ascii", "replace") + b"\x00"


def parse_identity_text(data: bytes) -> str | None:
    """The text of a whole GS I 65..68 answer, or None when `data` is not one (yet)."""
    start = data.find(bytes((IDENTITY_TEXT_HEADER,)))
    end = data.find(b"\x00", start + 1)
    if start < 0 or end < 0:
        return None
    return data[start + 1 : end].decode("ascii", "replace").strip()
