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
  Shift_JIS or a cp932 vendor extension its font lacks, the QR code when the profile or the model
  has no native QR).
- both follow the printer's model (office/printer_models.py): raster width, GS P motion units,
  Kanji columns, QR module size, and how the job ends (GS V 66, GS V 1 or no cut).
"""

from __future__ import annotations

from collections.abc import Iterator

from PIL import Image

from hal import escpos
from office.config import PrinterProfile
from office.printer_models import PrinterModel
from signage.qr_matrix import qr_matrix
from signage.ticket import (
    QR_ERROR,
    QR_QUIET_MODULES,
    TicketContent,
    TicketText,
    qr_image,
    qr_module_dots,
    text_image,
    ticket_strips,
    ticket_text,
    wrap_measured,
)

FEED_BEFORE_CUT = 4  # lines (1/6 inch each on any head): the last line must clear a cutter we cannot ask
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
    cannot be, and between pieces when its QR code cannot (a URL too long for the paper).
    Everything that depends on the head follows the printer's model (docs/printing.md)."""
    model = profile.printer_model
    start = escpos.init() + escpos.motion_units(0, model.dpi)
    end = job_end(model, profile.cutter)
    if profile.profile == "kanji":
        yield start + _kanji(content, model, profile.native_qr and model.native_qr) + end
        return
    stream = escpos.RasterStream((model.dots + 7) // 8)
    for strip in ticket_strips(content, model.dots, model.dpi):  # `start` goes with the first band
        rows, _ = raster_of(strip)
        piece = stream.push(rows)
        if piece:
            yield start + piece
            start = b""
    yield start + stream.end() + end


def job_end(model: PrinterModel, cutter: bool) -> bytes:
    """The end of a job: GS V 66 lets a printer that knows its cutter feed to it; otherwise the
    4-line feed past the head (and GS V 1 if it cuts)."""
    cut = model.cutter if cutter else "none"
    if cut == "feed-cut":
        return escpos.feed_cut(0)
    return escpos.feed_lines(FEED_BEFORE_CUT) + (escpos.partial_cut() if cut == "cut" else b"")


def _cells(s: str, magnify: int = 1) -> int:
    """Width in dots of `s` in Kanji mode: one byte characters are ANK cells, two byte Kanji."""
    return sum((ANK_DOTS if len(escpos.sjis(ch)) == 1 else KANJI_DOTS) for ch in s) * magnify


def text_dots(model: PrinterModel) -> int:
    """The widest line of native text: the model's font A columns, and one dot short of the
    head, since a line that fills it exactly is printed by the printer itself and our line feed
    would then add an empty line."""
    return min(model.columns * ANK_DOTS, model.dots - 1)


def native_text(s: str, model: PrinterModel) -> bool:
    """Whether the model's own Kanji font prints `s`: Shift_JIS, and any cp932 vendor extension
    (①, ㈱, 髙) only where the model's font holds it."""
    if not escpos.can_encode_sjis(s):
        return False
    return all(ch in model.kanji_extra or not escpos.sjis_extension(ch) for ch in s)


def _kanji_text(s: str, model: PrinterModel, *, size: int = 22, weight: str = "regular") -> bytes:
    """Lines of native text wrapped to the model's columns; a piece its font cannot print goes
    as a picture (signage draws it) rather than as a garbled or blank character."""
    if not native_text(s, model):
        image = text_image(s, model.dots, size, "bold" if weight == "bold" else "regular")
        rows, width_bytes = raster_of(image)
        return escpos.raster(rows, width_bytes) + escpos.newline()
    return b"".join(escpos.text_line(line) for line in wrap_measured(s, _cells, text_dots(model)))


def _kanji(content: TicketContent, model: PrinterModel, native_qr: bool) -> bytes:
    words: TicketText = ticket_text(content)
    width = text_dots(model)
    out = bytearray(escpos.code_page() + escpos.kanji_on() + escpos.align("center"))
    out += escpos.bold(True) + _kanji_text(words.office.ja, model, size=24, weight="bold") + escpos.bold(False)
    out += _kanji_text(words.office.en, model)
    # The number: ANK characters at the largest magnification that fits the columns (8× on 80 mm).
    magnify = max(1, min(NUMBER_MAX_MAGNIFY, width // _cells(words.number)))
    out += escpos.char_size(magnify, magnify) + escpos.text_line(words.number) + escpos.char_size(1, 1)
    out += escpos.bold(True) + _kanji_text(words.service.ja, model, size=28, weight="bold") + escpos.bold(False)
    out += _kanji_text(words.service.en, model)
    out += escpos.feed_lines(1) + escpos.align("left")
    for item in words.details:
        out += _kanji_text(item.ja, model) + _kanji_text(item.en, model)
    out += escpos.align("center")
    if native_qr:
        modules = len(qr_matrix(content.url, QR_ERROR)) + 2 * QR_QUIET_MODULES
        module = qr_module_dots(modules, model.dots, model.dpi)  # the printer draws the same symbol
        out += escpos.qr_native(content.url.encode("ascii"), module, QR_ERROR.upper())
    else:
        rows, width_bytes = raster_of(qr_image(content.url, model.dots, model.dpi))
        out += escpos.raster(rows, width_bytes)
    return bytes(out + escpos.kanji_off())
