"""One ticket's print job: `ticket_bytes(content, profile)` → the exact ESC/POS bytes to send, and
`ticket_chunks(content, profile)`, the same bytes in pieces made as they are needed.

Owns the composition of a job for each printer profile kind from signage's ticket (words and
pictures) and hal's ESC/POS primitives. Pure: no port, no clock; the printer transport
(hal/printer.py) sends what this returns. docs/printing.md describes both sequences.

- raster: the whole ticket drawn by signage, sent as GS v 0 bands; any ESC/POS printer prints it.
  `ticket_chunks` draws it strip by strip (signage.ticket.ticket_strips) and hands out the bands
  of each strip as soon as it is drawn, so the gateway's first bytes leave after the top of the
  ticket is drawn, not the whole of it, and the printer prints while the rest is drawn.
- kanji: the printer's own Kanji font (Shift_JIS) for text, GS ! magnification for the number,
  native QR (GS ( k); raster only for what the printer cannot draw itself (a character outside
  Shift_JIS, the QR code when the profile says `native_qr = false`).
"""

from __future__ import annotations

from collections.abc import Iterator

from PIL import Image

from hal import escpos
from office.config import PrinterProfile
from signage.ticket import (
    QR_ERROR,
    QR_MODULE_DOTS,
    TicketContent,
    TicketText,
    qr_image,
    text_image,
    ticket_strips,
    ticket_text,
    wrap_measured,
)

FEED_BEFORE_CUT = 4  # lines: the cutter sits above the head, the last line must clear it
KANJI_DOTS, ANK_DOTS = 24, 12  # the printer's 24×24 Kanji and 12×24 ANK (font A) cells
NUMBER_MAX_MAGNIFY = 8
_INVERT = bytes(255 - b for b in range(256))


def raster_of(image: Image.Image) -> tuple[bytes, int]:
    """Packed rows with 1 = black (ESC/POS) from a mode "1" image (where 1 = white)."""
    if image.mode != "1":
        image = image.convert("1")
    return image.tobytes().translate(_INVERT), (image.width + 7) // 8


def ticket_bytes(content: TicketContent, profile: PrinterProfile) -> bytes:
    """The whole job for one ticket on `profile`, ending with a partial cut if it has a cutter."""
    return b"".join(ticket_chunks(content, profile))


def ticket_chunks(content: TicketContent, profile: PrinterProfile) -> Iterator[bytes]:
    """`ticket_bytes` in pieces, each made when the one before has been taken: every piece is
    whole commands (a band is never split), none is empty. The kanji job is small and comes as
    one piece. A raster ticket that cannot be drawn raises before its first piece when its head
    cannot be, and between pieces when its QR code cannot (a URL too long for the paper)."""
    end = escpos.feed_lines(FEED_BEFORE_CUT) + (escpos.partial_cut() if profile.cutter else b"")
    if profile.profile == "kanji":
        yield escpos.init() + _kanji(content, profile) + end
        return
    stream = escpos.RasterStream((profile.width_dots + 7) // 8)
    start = escpos.init() + escpos.motion_units()  # sent with the first band, not before
    for strip in ticket_strips(content, profile.width_dots):
        rows, _ = raster_of(strip)
        piece = stream.push(rows)
        if piece:
            yield start + piece
            start = b""
    yield start + stream.end() + end


def _cells(s: str, magnify: int = 1) -> int:
    """Width in dots of `s` in Kanji mode: one byte characters are ANK cells, two byte Kanji."""
    return sum((ANK_DOTS if len(escpos.sjis(ch)) == 1 else KANJI_DOTS) for ch in s) * magnify


def _kanji_text(s: str, width: int, *, size: int = 22, weight: str = "regular") -> bytes:
    """Lines of native text wrapped to the paper; a piece the Shift_JIS font cannot print goes
    as a picture (signage draws it) rather than as a garbled or missing character."""
    if not escpos.can_encode_sjis(s):
        rows, width_bytes = raster_of(text_image(s, width, size, "bold" if weight == "bold" else "regular"))
        return escpos.motion_units() + escpos.raster(rows, width_bytes) + escpos.newline()
    # One dot short of the head: a line that fills it exactly is printed by the printer itself,
    # and our line feed would then add an empty line.
    return b"".join(escpos.text_line(line) for line in wrap_measured(s, _cells, width - 1))


def _kanji(content: TicketContent, profile: PrinterProfile) -> bytes:
    words: TicketText = ticket_text(content)
    width = profile.width_dots
    out = bytearray(escpos.kanji_on() + escpos.align("center"))
    out += escpos.bold(True) + _kanji_text(words.office.ja, width, size=24, weight="bold") + escpos.bold(False)
    out += _kanji_text(words.office.en, width)
    # The number: ANK characters at the largest magnification that fits the paper (8× on 80 mm).
    magnify = max(1, min(NUMBER_MAX_MAGNIFY, width // _cells(words.number)))
    out += escpos.char_size(magnify, magnify) + escpos.text_line(words.number) + escpos.char_size(1, 1)
    out += escpos.bold(True) + _kanji_text(words.service.ja, width, size=28, weight="bold") + escpos.bold(False)
    out += _kanji_text(words.service.en, width)
    out += escpos.feed_lines(1) + escpos.align("left")
    for item in words.details:
        out += _kanji_text(item.ja, width) + _kanji_text(item.en, width)
    out += escpos.align("center")
    if profile.native_qr:
        out += escpos.qr_native(content.url.encode("ascii"), QR_MODULE_DOTS, QR_ERROR.upper())
    else:
        rows, width_bytes = raster_of(qr_image(content.url, width))
        out += escpos.motion_units() + escpos.raster(rows, width_bytes)
    return bytes(out + escpos.kanji_off())
