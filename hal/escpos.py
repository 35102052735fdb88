"""ESC/POS encoding primitives and a decoder that reads a job back into commands.

Owns bytes only: every encoder returns `bytes`, nothing here opens a port, draws a ticket or knows
what a ticket says (gateway/ticket_bytes.py composes jobs; hal/printer.py sends them). Raster
images arrive as packed 1-bit rows (MSB = leftmost dot, 1 = black), which is what Pillow's mode
"1" `tobytes()` gives after inversion, so hal needs no imaging library.

The decoder is the tests' and tools' view of a job: `decode(job)` parses every command (raising
`EscPosDecodeError` naming the offset of anything it does not know) and `raster_rows()` puts the
`GS v 0` bands and the dot feeds between them back together into one bitmap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

ESC, GS, FS, DLE, LF = 0x1B, 0x1D, 0x1C, 0x10, 0x0A

BAND_ROWS = 32  # a GS v 0 band: 32 rows of 576 dots = 2.3 KB, under the smallest receive buffers seen (4 KB)
MAX_FEED = 255  # ESC J / ESC d take one byte

ALIGN = {"left": 0, "center": 1, "right": 2}
QR_ERROR_LEVELS = {"L": 48, "M": 49, "Q": 50, "H": 51}


class EscPosError(ValueError):
    """An argument an ESC/POS command cannot carry (a size, a level, text outside Shift_JIS)."""


class EscPosDecodeError(ValueError):
    """A byte stream that is not a job these encoders could have written; names the offset."""


# -- encoders -----------------------------------------------------------------------------------
def init() -> bytes:
    """ESC @: clear the buffer and every mode to the power-on defaults."""
    return b"\x1b@"


def motion_units(x: int = 0, y: int = 203) -> bytes:
    """GS P x y: motion units 1/x and 1/y inch (0 = the model's default). y = the head's dpi
    (203, or 180 on a TM-T88) makes one ESC J step one dot row, so a dot feed replaces exactly
    one raster row; any other y makes every gap too short or too long."""
    _byte("motion unit", x)
    _byte("motion unit", y)
    return bytes((GS, 0x50, x, y))


def align(where: str) -> bytes:
    """ESC a n: justification of the following lines (text, native QR)."""
    if where not in ALIGN:
        raise EscPosError(f"alignment must be one of {list(ALIGN)}, not {where!r}")
    return bytes((ESC, 0x61, ALIGN[where]))


def bold(on: bool) -> bytes:
    """ESC E n: emphasised (bold) text."""
    return bytes((ESC, 0x45, 1 if on else 0))


def char_size(width: int = 1, height: int = 1) -> bytes:
    """GS ! n: character magnification, 1-8 times in each direction."""
    if not (1 <= width <= 8 and 1 <= height <= 8):
        raise EscPosError(f"character magnification must be 1-8 (got {width}×{height})")
    return bytes((GS, 0x21, (width - 1) << 4 | (height - 1)))


KATAKANA_PAGE = 1  # ESC t 1: the code page whose 0xA1-0xDF are half-width kana (ｱ, ｰ)


def code_page(n: int = KATAKANA_PAGE) -> bytes:
    """ESC t n: the one-byte character table. Kanji mode prints 0xA1-0xDF from it, so without
    page 1 a half-width kana comes out as whatever the printer's default page holds there."""
    _byte("code page", n)
    return bytes((ESC, 0x74, n))


def kanji_on() -> bytes:
    """FS C 1 (Shift_JIS code system, on Japanese models), then FS & (Kanji mode on)."""
    return b"\x1cC\x01\x1c&"


def kanji_off() -> bytes:
    """FS .: Kanji mode off."""
    return b"\x1c."


# cp932 lead bytes outside JIS X 0208: NEC special characters (row 13: ①, ㈱), NEC-selected IBM
# extensions (0xED-0xEE: 髙, 﨑), user-defined (0xF0-0xF9) and IBM extensions (0xFA-0xFC).
_EXTENSION_LEADS = frozenset((0x87, 0xED, 0xEE, *range(0xF0, 0xFD)))


def sjis_extension(ch: str) -> bool:
    """Whether `ch` has a Shift_JIS code only as a cp932 vendor extension, not in JIS X 0208: a
    printer's Kanji font holds it only where its maker says so."""
    try:
        code = ch.encode("cp932")
    except UnicodeEncodeError:
        return False
    return len(code) == 2 and code[0] in _EXTENSION_LEADS


def can_encode_sjis(text: str) -> bool:
    try:
        sjis(text)
    except EscPosError:
        return False
    return True


def sjis(text: str) -> bytes:
    """Text in Shift_JIS for Kanji mode: Windows-31J (cp932) per character, with the JIS mapping
    of shift_jis for the few characters cp932 maps elsewhere (〜 WAVE DASH, ‖, −)."""
    out = bytearray()
    for ch in text:
        if ch == "\n" or (ord(ch) < 0x20 and ch != " "):
            raise EscPosError(f"control character {ch!r} in printed text; send line feeds with newline()")
        try:
            out += ch.encode("cp932")
        except UnicodeEncodeError:
            try:
                out += ch.encode("shift_jis")
            except UnicodeEncodeError:
                raise EscPosError(f"{ch!r} (U+{ord(ch):04X}) has no Shift_JIS code") from None
    return bytes(out)


def text_line(text: str) -> bytes:
    """One line of Kanji-mode text and its line feed."""
    return sjis(text) + b"\n"


def newline() -> bytes:
    return b"\n"


def feed_lines(n: int) -> bytes:
    """ESC d n: print and feed n lines."""
    _byte("line feed", n)
    return bytes((ESC, 0x64, n))


def feed_dots(n: int) -> bytes:
    """ESC J n (repeated past 255): print and feed n motion units, one dot row after motion_units()."""
    if n < 0:
        raise EscPosError(f"a feed cannot be negative (got {n})")
    out = bytearray()
    while n > 0:
        step = min(n, MAX_FEED)
        out += bytes((ESC, 0x4A, step))
        n -= step
    return bytes(out)


def partial_cut() -> bytes:
    """GS V 1: partial cut (function A), the one cutters of every maker accept."""
    return bytes((GS, 0x56, 0x01))


def feed_cut(n: int = 0) -> bytes:
    """GS V 66 n: feed the paper to the cutter (plus n motion units) and partial cut: the
    printer knows its head-to-cutter distance, so nothing is guessed."""
    _byte("feed before the cut", n)
    return bytes((GS, 0x56, 66, n))


def raster_band(rows: bytes, width_bytes: int) -> bytes:
    """GS v 0 (normal density) for packed 1-bit rows, `width_bytes` bytes each."""
    if width_bytes < 1 or width_bytes > 0xFFFF:
        raise EscPosError(f"raster width must be 1-65535 bytes (got {width_bytes})")
    if len(rows) % width_bytes:
        raise EscPosError(f"raster data of {len(rows)} bytes is not whole rows of {width_bytes}")
    height = len(rows) // width_bytes
    if not 1 <= height <= 2303:
        raise EscPosError(f"a raster band must be 1-2303 rows (got {height})")
    return bytes((GS, 0x76, 0x30, 0, width_bytes & 0xFF, width_bytes >> 8, height & 0xFF, height >> 8)) + rows


def raster(rows: bytes, width_bytes: int, band_rows: int = BAND_ROWS, min_gap: int = 4) -> bytes:
    """A whole bitmap as GS v 0 bands of at most `band_rows` rows, small enough for a printer's
    receive buffer; a run of at least `min_gap` blank rows goes as a dot feed (3 bytes) instead of
    rows of zeros. Blank rows at the bottom are dropped: the caller feeds before cutting."""
    stream = RasterStream(width_bytes, band_rows, min_gap)
    return stream.push(rows) + stream.end()


class RasterStream:
    """`raster` for a bitmap that arrives a few rows at a time (a ticket drawn strip by strip):
    `push` returns the bands and feeds already certain, `end` the rest. Whatever the rows are
    split into, the pieces joined are exactly `raster` of the whole.

    The bands of a stretch of ink are cut every `band_rows` rows from its first row; a blank run
    is only known to be a feed (`min_gap` rows or more) or part of a band (shorter, with ink after
    it) once it is long enough or ink follows, so up to one band's rows and the blank run after
    them wait here."""

    def __init__(self, width_bytes: int, band_rows: int = BAND_ROWS, min_gap: int = 4) -> None:
        if not 1 <= width_bytes <= 0xFFFF:
            raise EscPosError(f"raster width must be 1-65535 bytes (got {width_bytes})")
        if not 1 <= band_rows <= 2303 or min_gap < 1:
            raise EscPosError(f"a band must be 1-2303 rows and a feed at least 1 (got {band_rows}, {min_gap})")
        self.width_bytes = width_bytes
        self.band_rows = band_rows
        self.min_gap = min_gap
        self._blank = bytes(width_bytes)
        self._band = bytearray()  # rows of the current band, fewer than band_rows
        self._gap = 0  # blank rows after the last inked one, not yet sent either way

    def push(self, rows: bytes) -> bytes:
        w = self.width_bytes
        if len(rows) % w:
            raise EscPosError(f"raster data of {len(rows)} bytes is not whole rows of {w}")
        out = bytearray()
        blank = self._blank
        for i in range(0, len(rows), w):
            row = rows[i : i + w]
            if row == blank:
                self._gap += 1
                if self._gap == self.min_gap and self._band:
                    out += self._flush()  # a feed follows: the band ends at the last ink
                continue
            if self._gap:
                if self._gap >= self.min_gap:
                    out += feed_dots(self._gap)
                else:
                    for _ in range(self._gap):
                        self._add(blank, out)
                self._gap = 0
            self._add(row, out)
        return bytes(out)

    def end(self) -> bytes:
        """The last band; blank rows at the bottom are dropped."""
        self._gap = 0
        return self._flush()

    def _add(self, row: bytes, out: bytearray) -> None:
        self._band += row
        if len(self._band) == self.band_rows * self.width_bytes:
            out += self._flush()

    def _flush(self) -> bytes:
        if not self._band:
            return b""
        band = raster_band(bytes(self._band), self.width_bytes)
        self._band.clear()
        return band


def qr_native(data: bytes, module_dots: int = 6, error: str = "M") -> bytes:
    """GS ( k, model 2: select the model (fn 165), module size (167), error level (169), store
    the data (180), print it (181)."""
    if not 1 <= module_dots <= 16:
        raise EscPosError(f"QR module size must be 1-16 dots (got {module_dots})")
    if error not in QR_ERROR_LEVELS:
        raise EscPosError(f"QR error level must be one of {list(QR_ERROR_LEVELS)} (got {error!r})")
    if not 1 <= len(data) <= 7089:
        raise EscPosError(f"QR data must be 1-7089 bytes (got {len(data)})")
    return (
        _gs_k(0x41, bytes((0x32, 0x00)))  # fn 165: model 2
        + _gs_k(0x43, bytes((module_dots,)))  # fn 167: module size
        + _gs_k(0x45, bytes((QR_ERROR_LEVELS[error],)))  # fn 169: error correction
        + _gs_k(0x50, b"\x30" + data)  # fn 180: store
        + _gs_k(0x51, b"\x30")  # fn 181: print
    )


def _gs_k(fn: int, params: bytes) -> bytes:
    size = len(params) + 2  # cn and fn count
    return bytes((GS, 0x28, 0x6B, size & 0xFF, size >> 8, 0x31, fn)) + params


def _byte(what: str, n: int) -> None:
    if not 0 <= n <= 255:
        raise EscPosError(f"{what} must be 0-255 (got {n})")


# -- decoder ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Command:
    """One decoded command. `name` is the encoder's name; `args` its numeric parameters; `data`
    its payload (raster rows, QR data, text in Shift_JIS)."""

    name: str
    args: tuple[int, ...] = ()
    data: bytes = b""
    offset: int = 0

    @property
    def text(self) -> str:
        """A text command's characters (cp932, the JIS mapping where cp932 has none)."""
        return _unsjis(self.data)


_QR_FUNCTIONS = {0x41: "qr_model", 0x43: "qr_size", 0x45: "qr_error", 0x50: "qr_store", 0x51: "qr_print"}


def decode(job: bytes) -> list[Command]:
    """Every command of `job` in order; text runs (up to a line feed) become one `text` command.
    Shift_JIS lead bytes are followed in Kanji mode so a trail byte is never read as a command."""
    out: list[Command] = []
    i, n = 0, len(job)
    kanji = False

    def need(count: int, what: str) -> bytes:
        if i + count > n:
            raise EscPosDecodeError(f"offset {i}: {what} cut short ({n - i} of {count} bytes)")
        return job[i : i + count]

    while i < n:
        b = job[i]
        start = i
        if b == ESC:
            op = need(2, "ESC command")[1]
            if op == 0x40:
                out.append(Command("init", (), b"", start))
                i += 2
            elif op in (0x61, 0x45, 0x64, 0x4A, 0x74):
                arg = need(3, "ESC command")[2]
                name = {0x61: "align", 0x45: "bold", 0x64: "feed_lines", 0x4A: "feed_dots", 0x74: "code_page"}[op]
                out.append(Command(name, (arg,), b"", start))
                i += 3
            else:
                raise EscPosDecodeError(f"offset {start}: unknown command ESC 0x{op:02x}")
        elif b == GS:
            op = need(2, "GS command")[1]
            if op == 0x21:
                arg = need(3, "GS !")[2]
                out.append(Command("char_size", ((arg >> 4) + 1, (arg & 0x0F) + 1), b"", start))
                i += 3
            elif op == 0x50:
                x, y = need(4, "GS P")[2:4]
                out.append(Command("motion_units", (x, y), b"", start))
                i += 4
            elif op == 0x56:
                m = need(3, "GS V")[2]
                if m in (0, 1, 48, 49):
                    out.append(Command("cut", (m,), b"", start))
                    i += 3
                elif m in (65, 66):
                    out.append(Command("cut", (m, need(4, "GS V")[3]), b"", start))
                    i += 4
                else:
                    raise EscPosDecodeError(f"offset {start}: GS V with unknown mode {m}")
            elif op == 0x76:
                head = need(8, "GS v 0 header")
                if head[2] not in (0, 0x30) or head[3] not in (0, 0x30):
                    raise EscPosDecodeError(f"offset {start}: GS v with unknown function/mode {head[2]}/{head[3]}")
                w = head[4] | head[5] << 8
                h = head[6] | head[7] << 8
                if w == 0 or h == 0:
                    raise EscPosDecodeError(f"offset {start}: empty raster band {w}×{h}")
                i += 8
                data = need(w * h, "raster data")
                out.append(Command("raster", (w, h), data, start))
                i += w * h
            elif op == 0x28:
                head = need(5, "GS ( header")
                if head[2] != 0x6B:
                    raise EscPosDecodeError(f"offset {start}: unknown command GS ( 0x{head[2]:02x}")
                size = head[3] | head[4] << 8
                i += 5
                body = need(size, "GS ( k parameters")
                if size < 2 or body[0] != 0x31 or body[1] not in _QR_FUNCTIONS:
                    raise EscPosDecodeError(f"offset {start}: GS ( k is not a QR code function")
                out.append(Command(_QR_FUNCTIONS[body[1]], tuple(body[2:3]), bytes(body[3:]), start))
                i += size
            else:
                raise EscPosDecodeError(f"offset {start}: unknown command GS 0x{op:02x}")
        elif b == FS:
            op = need(2, "FS command")[1]
            if op == 0x26:
                kanji = True
                out.append(Command("kanji_on", (), b"", start))
                i += 2
            elif op == 0x2E:
                kanji = False
                out.append(Command("kanji_off", (), b"", start))
                i += 2
            elif op == 0x43:
                out.append(Command("kanji_code", (need(3, "FS C")[2],), b"", start))
                i += 3
            else:
                raise EscPosDecodeError(f"offset {start}: unknown command FS 0x{op:02x}")
        elif b == DLE:
            fn, arg = need(3, "DLE command")[1:3]
            if fn != 0x04:
                raise EscPosDecodeError(f"offset {start}: unknown command DLE 0x{fn:02x}")
            out.append(Command("status_request", (arg,), b"", start))
            i += 3
        elif b == LF:
            out.append(Command("newline", (), b"", start))
            i += 1
        elif b < 0x20:
            raise EscPosDecodeError(f"offset {start}: unexpected control byte 0x{b:02x}")
        else:
            while i < n and job[i] >= 0x20:
                if kanji and (0x81 <= job[i] <= 0x9F or 0xE0 <= job[i] <= 0xFC):
                    need(2, "Shift_JIS character")
                    i += 2
                else:
                    i += 1
            data = job[start:i]
            try:
                _unsjis(data)
            except UnicodeDecodeError as exc:
                raise EscPosDecodeError(f"offset {start}: text is not Shift_JIS ({exc.reason})") from None
            out.append(Command("text", (), data, start))
    return out


def _unsjis(data: bytes) -> str:
    try:
        return data.decode("cp932")
    except UnicodeDecodeError:
        return data.decode("shift_jis")


@dataclass(frozen=True, slots=True)
class Bitmap:
    """Rows of packed dots reassembled from a job: `width_bytes` × `height`, 1 = black."""

    width_bytes: int
    height: int
    rows: bytes


def raster_rows(commands: Iterable[Command]) -> Iterator[Bitmap]:
    """Each run of raster bands, with the dot feeds between them as blank rows, as one bitmap. A
    run ends at any other command (or a change of width)."""
    width = 0
    rows = bytearray()
    pending_gap = 0
    for c in commands:
        if c.name == "raster":
            w, _h = c.args
            if rows and w != width:
                yield Bitmap(width, len(rows) // width, bytes(rows))
                rows = bytearray()
            width = w
            if rows:
                rows += bytes(pending_gap * width)
            pending_gap = 0
            rows += c.data
        elif c.name == "feed_dots" and rows:
            pending_gap += c.args[0]
        elif rows:
            yield Bitmap(width, len(rows) // width, bytes(rows))
            rows = bytearray()
            pending_gap = 0
    if rows:
        yield Bitmap(width, len(rows) // width, bytes(rows))


def names(commands: Sequence[Command]) -> list[str]:
    """The command names in order, with runs of raster bands and dot feeds folded into one
    'raster…' entry: what a test compares against the expected sequence."""
    out: list[str] = []
    for c in commands:
        name = "raster…" if c.name in ("raster", "feed_dots") else c.name
        if not (name == "raster…" and out and out[-1] == "raster…"):
            out.append(name)
    return out
