"""A resident's ticket: what it says (`TicketContent`, built from the office model's `TicketReady`)
and how it looks on paper (`render_ticket`, a 1-bit Pillow image as wide as the printer's head;
`ticket_strips`, the same picture top to bottom in strips, for a printer that starts on the top
while the rest is drawn). What is the same on every ticket (fonts, glyphs, measured and fitted
names, the office's and the services' strips) is kept between tickets.

Owns the ticket's words and layout. Pure: no I/O, no clock, no randomness (the token comes in
the `TicketReady`). It never touches a printer or ESC/POS bytes: gateway/ticket_bytes.py turns
this into a print job. The words come from the message catalogues so both printer profiles, and
an installation's own catalogue, say the same thing.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

from PIL import Image, ImageChops, ImageDraw, ImageFont

from office.calendar import plan_for
from office.config import OfficeConfig, Text
from office.estimate import UNREACHABLE_MINUTES
from office.model import TicketReady
from signage.catalog import both, text
from signage.fonts import Weight, font_path
from signage.qr_matrix import qr_matrix

Wait = tuple[int, int] | Literal["unreachable"]

TOKEN_MIN_BITS = 128
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")  # URL-safe base64: 6 bits a character

QR_ERROR = "m"  # 15 % of the code may be smudged or torn and it still reads
QR_MODULE_MM = 0.75  # thermal print keeps the edges sharp and phones read it from a hand's length
QR_MODULE_DOTS = 6  # QR_MODULE_MM on a 203 dpi head (5 dots, 0.71 mm, on a 180 dpi TM-T88)
QR_MIN_MODULE_DOTS = 3  # the floor for a long URL: smaller is a TicketError, never an unreadable code
DEFAULT_DPI = 203
QR_QUIET_MODULES = 4  # the standard's quiet zone, white paper around the code


class TicketError(ValueError):
    """A ticket that cannot be made as asked (a short token, a URL too long for the paper)."""


@dataclass(frozen=True, slots=True)
class TicketContent:
    """Everything printed on one ticket. `wait` is (low, high) minutes or "unreachable";
    `hours_left` today's remaining reception hours for the service, already in words."""

    office_name: Text
    ticket: str
    service_name: Text
    issued_at: datetime
    ahead: int
    wait: Wait
    hours_left: Text
    url: str
    reprint: bool = False  # a copy of a ticket issued earlier: says so, same number and code


@dataclass(frozen=True, slots=True)
class TicketText:
    """The ticket's lines in both languages, in print order: the one source of wording for the
    raster picture and for the kanji profile's native text."""

    office: Text
    number: str
    service: Text
    issued: Text
    ahead: Text
    wait: Text
    hours: Text
    scan: Text

    @property
    def details(self) -> tuple[Text, ...]:
        """The small print beside (or above) the QR code."""
        return (self.issued, self.ahead, self.wait, self.hours, self.scan)


def check_token(token: str) -> None:
    """A resident's page token must be URL-safe base64 with at least 128 random bits: the URL is
    the only thing standing between a stranger and another person's ticket."""
    # The messages never repeat the token: it is the resident's key to their page.
    if not _TOKEN_RE.fullmatch(token):
        raise TicketError("ticket token must be URL-safe base64 (A-Z a-z 0-9 - _ only)")
    if len(token) * 6 < TOKEN_MIN_BITS:
        raise TicketError(
            f"ticket token must carry ≥{TOKEN_MIN_BITS} bits (≥22 base64 characters), got {len(token)} characters"
        )


def ticket_url(config: OfficeConfig, token: str) -> str:
    check_token(token)
    return f"{config.public_base_url}/t/{token}"


def ticket_content(config: OfficeConfig, ready: TicketReady) -> TicketContent:
    """The ticket the model has just issued (and stored), in the office's local time."""
    service = config.service(ready.service)
    local = ready.issued_at.astimezone(config.tz)
    wait: Wait
    if ready.wait.low_minutes >= UNREACHABLE_MINUTES:
        wait = "unreachable"
    else:
        wait = (ready.wait.low_minutes, ready.wait.high_minutes)
    return TicketContent(
        office_name=config.name,
        ticket=ready.ticket,
        service_name=service.name,
        issued_at=local,
        ahead=ready.ahead,
        wait=wait,
        hours_left=hours_left(config, ready.service, local, ready.closes),
        url=ticket_url(config, ready.token),
        reprint=ready.reprint,
    )


def hours_left(config: OfficeConfig, service_id: str, local: datetime, closes: time | None = None) -> Text:
    """'Reception until 19:00 (2 h 30 min left)' for the service at `local`, or 'closed'.
    `closes`: the end of reception by the plan the office runs (a remote override's), if known."""
    if closes is None:
        closes = plan_for(config, local.date()).service_closes(service_id, local.time())
    if closes is None:
        return Text(*both("reception_closed"))
    minutes = max(0, closes.hour * 60 + closes.minute - (local.hour * 60 + local.minute))
    h, m = divmod(minutes, 60)
    left = Text(*both("ticket_duration_hm", h=h, m=m)) if h else Text(*both("ticket_duration_m", m=m))
    until = f"{closes:%H:%M}"
    return Text(
        text("ticket_hours_left", "ja", until=until, left=left.ja),
        text("ticket_hours_left", "en", until=until, left=left.en),
    )


def ticket_text(content: TicketContent) -> TicketText:
    at = content.issued_at
    weekday = {lang: text("ticket_weekdays", lang).split(",")[at.weekday()] for lang in ("ja", "en")}
    issued = Text(
        *(
            text(
                "ticket_issued",
                lang,
                year=at.year,
                month=at.month,
                day=at.day,
                weekday=weekday[lang],
                time=f"{at:%H:%M}",
            )
            for lang in ("ja", "en")
        )
    )
    if content.reprint:
        mark_ja, mark_en = both("ticket_reprint")
        issued = Text(issued.ja + mark_ja, issued.en + mark_en)  # the marks carry their own spacing
    if content.wait == "unreachable":
        wait = Text(*both("ticket_wait_unreachable"))
    else:
        low, high = content.wait
        wait = Text(*both("ticket_wait", low=low, high=high))
    return TicketText(
        office=content.office_name,
        number=content.ticket,
        service=content.service_name,
        issued=issued,
        ahead=Text(*both("ticket_ahead", count=content.ahead)),
        wait=wait,
        hours=content.hours_left,
        scan=Text(*both("ticket_scan")),
    )


# -- layout -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Line:
    """One line of text placed on the ticket: its box (`x`, `top`, `width`, `height`), which
    holds all its ink, and its baseline `baseline` dots below `top`."""

    text: str
    x: int
    top: int
    size: int
    weight: Weight
    width: int
    height: int
    baseline: int


@dataclass(frozen=True, slots=True)
class Layout:
    width: int
    height: int
    lines: tuple[Line, ...]
    qr_x: int
    qr_y: int
    qr_module: int
    qr: tuple[bytes, ...]  # the code's modules (signage.qr_matrix), quiet zone not included

    @property
    def qr_side(self) -> int:
        """Dots across the code with its quiet zone."""
        return (len(self.qr) + 2 * QR_QUIET_MODULES) * self.qr_module


MARGIN = 6  # dots at each side: ink at the very edge of a head's range prints faint
# Kinsoku: closing punctuation never starts a line, an opening bracket never ends one.
_NO_LINE_START = set("、。，．）」』】ー・:;,.!?〜～")
_NO_LINE_END = set("（「『【")
_TOKEN_SPLIT = re.compile(r"[\x21-\x7e]+ ?| |.")  # a Latin word (with its space) or one character


def _line_height(size: int) -> int:
    return round(size * 1.2)


@functools.cache
def _face(size: int, weight: Weight) -> ImageFont.FreeTypeFont:
    """The ticket font without complex-script shaping: Japanese and Latin need none, and the
    basic engine measures and draws a glyph several times faster than raqm."""
    return ImageFont.truetype(str(font_path(weight)), size, layout_engine=ImageFont.Layout.BASIC)


# Bounded caches: a day's tickets use a few hundred characters at a handful of sizes.
@functools.lru_cache(maxsize=16384)
def _char_advance(ch: str, size: int, weight: Weight) -> float:
    return _face(size, weight).getlength(ch)


@dataclass(frozen=True, slots=True)
class _Glyph:
    left: int
    top: int
    mask: Image.Image | None  # None for a blank (a space)


@functools.lru_cache(maxsize=8192)
def _glyph(ch: str, size: int, weight: Weight) -> _Glyph:
    """One character drawn once and kept: a ticket reuses digits and kana, and pasting a small
    1-bit mask is far cheaper than laying out the line again."""
    face = _face(size, weight)
    left, top, right, bottom = (int(v) for v in face.getbbox(ch, anchor="ls"))
    if right <= left or bottom <= top:
        return _Glyph(left, top, None)
    mask = Image.new("1", (right - left, bottom - top), 0)
    draw = ImageDraw.Draw(mask)
    draw.fontmode = "1"  # no anti-aliasing: a thermal head has no grey
    draw.text((-left, -top), ch, font=face, fill=1, anchor="ls")
    return _Glyph(left, top, mask)


def _advance(s: str, size: int, weight: Weight) -> float:
    return sum(_char_advance(ch, size, weight) for ch in s)


@functools.lru_cache(maxsize=16384)
def _width(s: str, size: int, weight: Weight) -> int:
    """Width in dots of `s` as `_draw_text` draws it (the sum of the advances, rounded up).
    Kept: wrapping measures the same office and service names on every ticket."""
    return math.ceil(_advance(s, size, weight))


def _draw_text(img: Image.Image, x: int, baseline: int, s: str, size: int, weight: Weight) -> None:
    pen = float(x)
    for ch in s:
        g = _glyph(ch, size, weight)
        if g.mask is not None:
            img.paste(0, (round(pen) + g.left, baseline + g.top), g.mask)
        pen += _char_advance(ch, size, weight)


@functools.lru_cache(maxsize=4096)
def _ink_rows(s: str, size: int, weight: Weight) -> tuple[int, int]:
    """The rows holding `s`'s ink, from its baseline: [top, bottom), (0, 0) for none."""
    glyphs = [g for g in (_glyph(ch, size, weight) for ch in s) if g.mask is not None]
    if not glyphs:
        return 0, 0
    return min(g.top for g in glyphs), max(g.top + g.mask.height for g in glyphs if g.mask is not None)


def wrap(s: str, size: int, weight: Weight, width: int) -> list[str]:
    """`s` in lines of at most `width` dots in the ticket font (see `wrap_measured`)."""
    return wrap_measured(s, lambda part: _width(part, size, weight), width)


def wrap_measured(s: str, measure: Callable[[str], int], width: int) -> list[str]:
    """Greedy wrapping to `width` as `measure` counts it: Latin at spaces, Japanese between any
    two characters except before closing punctuation; a word longer than the width is broken
    anywhere. Shared with the kanji profile, which measures in the printer's fixed pitch."""
    tokens: list[str] = []
    for tok in _TOKEN_SPLIT.findall(s):
        if tokens and (tok[0] in _NO_LINE_START or tokens[-1][-1] in _NO_LINE_END):
            tokens[-1] += tok
        else:
            tokens.append(tok)
    lines: list[str] = []
    current = ""
    for tok in tokens:
        if measure((current + tok).rstrip()) <= width:
            current += tok
            continue
        if current.strip():
            lines.append(current.rstrip())
        current = tok.lstrip() if lines else tok
        while measure(current.rstrip()) > width and len(current) > 1:
            # a single token wider than the line: cut it at the last character that fits
            cut = len(current) - 1
            while cut > 1 and measure(current[:cut]) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current.strip():
        lines.append(current.rstrip())
    return lines or [""]


def fit(s: str, weight: Weight, width: int, largest: int, smallest: int, max_lines: int) -> tuple[int, list[str]]:
    """The largest size from `largest` down to `smallest` at which `s` wraps into at most
    `max_lines` lines of `width`; at `smallest` it takes as many lines as it needs."""
    size, lines = _fit(s, weight, width, largest, smallest, max_lines)
    return size, list(lines)


@functools.lru_cache(maxsize=1024)
def _fit(
    s: str, weight: Weight, width: int, largest: int, smallest: int, max_lines: int
) -> tuple[int, tuple[str, ...]]:
    # Kept: the office's and the services' names are fitted the same way on every ticket.
    size = largest
    while True:
        lines = wrap(s, size, weight, width)
        if len(lines) <= max_lines or size <= smallest:
            return size, tuple(lines)
        size = max(smallest, size - 2)


class _Placer:
    """Lines placed one under another from the top of the ticket."""

    def __init__(self, y: int = 0) -> None:
        self.lines: list[Line] = []
        self.y = y

    def block(
        self, s: str, weight: Weight, largest: int, smallest: int, max_lines: int, x0: int, w: int, center: bool
    ) -> None:
        size, wrapped = _fit(s, weight, w, largest, smallest, max_lines)
        for part in wrapped:
            pw = _width(part, size, weight)
            x = x0 + (w - pw) // 2 if center else x0
            # Kanji reach 0.88 em above the baseline, Latin descenders 0.25 em below it.
            self.lines.append(Line(part, x, self.y, size, weight, pw, _line_height(size), round(size * 0.95)))
            self.y += _line_height(size)


@functools.lru_cache(maxsize=256)
def _office_lines(office: Text, width_dots: int) -> tuple[tuple[Line, ...], int]:
    """The office's name at the top: the same on every ticket of a printer."""
    scale = width_dots / 576
    inner = width_dots - 2 * MARGIN
    place = _Placer()
    place.block(office.ja, "bold", round(28 * scale), 16, 1, MARGIN, inner, True)
    place.block(office.en, "regular", round(20 * scale), 14, 1, MARGIN, inner, True)
    return tuple(place.lines), place.y


def _number_line(number: str, width_dots: int, y: int) -> Line:
    """The number: as large as the paper allows, capped so it does not eat the ticket."""
    inner = width_dots - 2 * MARGIN
    size = round(150 * width_dots / 576)
    while size > 40 and _width(number, size, "bold") > inner:
        size -= 4
    # A number has no kanji, only capitals and digits (0.76 em high, Q's tail 0.2 em below): a
    # tighter box than a line of text, which saves paper and raster bytes.
    number_width = _width(number, size, "bold")
    return Line(number, (width_dots - number_width) // 2, y, size, "bold", number_width, size, round(size * 0.78))


@functools.lru_cache(maxsize=256)
def _service_lines(service: Text, width_dots: int, y: int) -> tuple[tuple[Line, ...], int]:
    """A service's name under the number: the same on every ticket of that service and number size."""
    scale = width_dots / 576
    inner = width_dots - 2 * MARGIN
    place = _Placer(y)
    place.block(service.ja, "bold", round(34 * scale), 20, 2, MARGIN, inner, True)
    place.block(service.en, "regular", round(24 * scale), 16, 2, MARGIN, inner, True)
    return tuple(place.lines), place.y


@dataclass(frozen=True, slots=True)
class _Head:
    """The top of a ticket, which needs no QR code: office, number, service; `ends` where each
    of the three ends (the strips the picture is drawn in first)."""

    lines: tuple[Line, ...]
    ends: tuple[int, int, int]


def _head(words: TicketText, width_dots: int) -> _Head:
    office, y_office = _office_lines(words.office, width_dots)
    number = _number_line(words.number, width_dots, y_office)
    service, y_service = _service_lines(words.service, width_dots, y_office + number.height)
    return _Head((*office, number, *service), (y_office, number.top + number.height, y_service))


def _tail(words: TicketText, url: str, width_dots: int, head: _Head, dpi: int) -> Layout:
    """The rest under the head: the QR code and the details beside it (80 mm) or above it (58 mm)."""
    inner = width_dots - 2 * MARGIN
    qr = qr_matrix(url, QR_ERROR)
    modules = len(qr) + 2 * QR_QUIET_MODULES
    module = qr_module_dots(modules, width_dots, dpi)
    qr_size = modules * module
    beside = width_dots - qr_size - MARGIN >= 280
    place = _Placer(head.ends[2] + 10)
    top = place.y
    if beside:
        x0, w = qr_size + MARGIN // 2, width_dots - qr_size - MARGIN - MARGIN // 2
        place.y += module * QR_QUIET_MODULES // 2  # level the text with the code, not its quiet zone
    else:
        x0, w = MARGIN, inner
    for item in words.details:
        place.block(item.ja, "regular", 22, 15, 1, x0, w, False)
        place.block(item.en, "regular", 18, 13, 1, x0, w, False)
        place.y += 3
    if beside:
        qr_x, qr_y = 0, top
        height = max(place.y, top + qr_size)
    else:
        qr_x, qr_y = (width_dots - qr_size) // 2, place.y
        height = place.y + qr_size
    return Layout(width_dots, height, (*head.lines, *place.lines), qr_x, qr_y, module, qr)


def layout(content: TicketContent, width_dots: int, dpi: int = DEFAULT_DPI) -> Layout:
    """Where everything goes on a ticket `width_dots` wide on a `dpi` head. The QR code sits to
    the left of the details where the paper is wide enough (80 mm), under them otherwise (58 mm)."""
    words = ticket_text(content)
    return _tail(words, content.url, width_dots, _head(words, width_dots), dpi)


def render_ticket(content: TicketContent, width_dots: int, dpi: int = DEFAULT_DPI) -> Image.Image:
    """The whole ticket as a mode "1" image `width_dots` wide (white paper, black ink), cropped to
    its ink at top and bottom: the printer feeds the margins. Drawn in one piece: the reference
    that `ticket_strips` must match row for row (the CLI's picture, the tests' goldens)."""
    lay = layout(content, width_dots, dpi)
    img = Image.new("1", (width_dots, lay.height), 1)
    for line in lay.lines:
        # Baseline anchor: Japanese and Latin lines of one size share a baseline grid.
        _draw_text(img, line.x, line.top + line.baseline, line.text, line.size, line.weight)
    img.paste(_qr_pil(lay.qr, lay.qr_module), (lay.qr_x, lay.qr_y))
    return _crop_rows(img)


TAIL_STRIP_ROWS = 128  # four bands: drawing the rest keeps ahead of a printer's 100-250 mm/s


def ticket_strips(content: TicketContent, width_dots: int, dpi: int = DEFAULT_DPI) -> Iterator[Image.Image]:
    """`render_ticket`'s picture top to bottom in strips as wide as the paper, each drawn just
    before it is yielded, so the printer can start on the top while the rest is drawn: the
    office's name first (drawn once per printer and kept), the number, the service's name (kept
    per service), then the QR code and details in strips of TAIL_STRIP_ROWS. Stacked, the strips
    are `render_ticket`'s rows (blank rows may follow at the bottom, which a raster drops).

    A strip is drawn from every line whose ink reaches into it, in `render_ticket`'s order, so a
    glyph crossing a strip's edge is drawn in both. The head is drawn before the QR code is made
    (the slow part), which relies on nothing below the head reaching above it: each line's box
    holds its ink; tests/test_ticket.py checks the strips against `render_ticket`."""
    words = ticket_text(content)
    head = _head(words, width_dots)
    n_office = len(_office_lines(words.office, width_dots)[0])
    blocks = (head.lines[:n_office], head.lines[n_office : n_office + 1], head.lines[n_office + 1 :])
    crop = _TopCrop()
    y0 = 0
    for own, y1 in zip(blocks, head.ends, strict=True):
        reach = tuple(line for line in head.lines if _reaches(line, y0, y1))
        if reach == own and own is not blocks[1]:
            strip = _kept_strip(own, y0, y1, width_dots)  # office or service: the same every ticket
        else:
            strip = _strip(reach, None, y0, y1, width_dots)
        yield from crop(strip)
        y0 = y1
    lay = _tail(words, content.url, width_dots, head, dpi)
    qr = (_qr_pil(lay.qr, lay.qr_module), lay.qr_x, lay.qr_y)
    for top in range(y0, lay.height, TAIL_STRIP_ROWS):
        end = min(lay.height, top + TAIL_STRIP_ROWS)
        reach = tuple(line for line in lay.lines if _reaches(line, top, end))
        yield from crop(_strip(reach, qr, top, end, width_dots))


def _reaches(line: Line, y0: int, y1: int) -> bool:
    top, bottom = _ink_rows(line.text, line.size, line.weight)
    base = line.top + line.baseline
    return top < bottom and base + top < y1 and base + bottom > y0


def _strip(
    lines: tuple[Line, ...], qr: tuple[Image.Image, int, int] | None, y0: int, y1: int, width_dots: int
) -> Image.Image:
    """Rows [y0, y1) of the ticket drawn from `lines` and the code (image, x, y)."""
    img = Image.new("1", (width_dots, y1 - y0), 1)
    for line in lines:
        _draw_text(img, line.x, line.top + line.baseline - y0, line.text, line.size, line.weight)
    if qr is not None:
        code, x, y = qr
        if y < y1 and y + code.height > y0:
            img.paste(code, (x, y - y0))
    return img


@functools.lru_cache(maxsize=64)
def _kept_strip(lines: tuple[Line, ...], y0: int, y1: int, width_dots: int) -> Image.Image:
    """A strip that is the same on every ticket it is on; never changed once made."""
    return _strip(lines, None, y0, y1, width_dots)


class _TopCrop:
    """Drops the blank rows above the first ink, across strips, as `render_ticket` crops them."""

    def __init__(self) -> None:
        self.inked = False

    def __call__(self, strip: Image.Image) -> Iterator[Image.Image]:
        if self.inked:
            yield strip
            return
        box = ImageChops.invert(strip.convert("L")).getbbox()
        if box is not None:
            self.inked = True
            yield strip.crop((0, box[1], strip.width, strip.height)) if box[1] else strip


_MODULE_GREY = bytes([255, 0]) + bytes(254)  # a module (0 light, 1 dark) as a grey level


def _qr_pil(qr: tuple[bytes, ...], module: int) -> Image.Image:
    """The code with its quiet zone, `module` dots a module, black on white."""
    quiet = b"\xff" * QR_QUIET_MODULES
    side = len(qr) + 2 * QR_QUIET_MODULES
    blank = [b"\xff" * side] * QR_QUIET_MODULES
    rows = [*blank, *(quiet + row.translate(_MODULE_GREY) + quiet for row in qr), *blank]
    small = Image.frombytes("L", (side, side), b"".join(rows))
    return small.resize((side * module, side * module), Image.Resampling.NEAREST).convert("1")


def _crop_rows(img: Image.Image) -> Image.Image:
    """Drop all-white rows at the top and bottom (blank paper is a feed, not raster data)."""
    box = ImageChops.invert(img.convert("L")).getbbox()
    if box is None:
        return img
    return img.crop((0, box[1], img.width, box[3]))


def qr_module_dots(modules: int, width_dots: int, dpi: int = DEFAULT_DPI) -> int:
    """The module size in dots for a code of `modules` (quiet zone included) on `width_dots` of
    a `dpi` head: QR_MODULE_MM printed, smaller only as far as the paper needs."""
    module = min(round(QR_MODULE_MM * dpi / 25.4), width_dots // modules)
    if module < QR_MIN_MODULE_DOTS:
        raise TicketError(f"a QR code of {modules} modules does not fit {width_dots} dots")
    return module


def qr_image(url: str, width_dots: int, dpi: int = DEFAULT_DPI) -> Image.Image:
    """The QR code alone, centred on a strip `width_dots` wide: the kanji profile's raster QR
    for printers without native QR."""
    qr = qr_matrix(url, QR_ERROR)
    module = qr_module_dots(len(qr) + 2 * QR_QUIET_MODULES, width_dots, dpi)
    code = _qr_pil(qr, module)
    img = Image.new("1", (width_dots, code.height), 1)
    img.paste(code, ((width_dots - code.width) // 2, 0))
    return img


def text_image(s: str, width_dots: int, size: int, weight: Weight = "regular") -> Image.Image:
    """One piece of text drawn centred and wrapped to `width_dots`: the kanji profile's raster for
    a line with a character the printer's Shift_JIS font does not have."""
    lines = wrap(s, size, weight, width_dots - 2 * MARGIN)
    img = Image.new("1", (width_dots, _line_height(size) * len(lines)), 1)
    for i, part in enumerate(lines):
        x = (width_dots - _width(part, size, weight)) // 2
        _draw_text(img, x, i * _line_height(size) + round(size * 0.95), part, size, weight)
    return _crop_rows(img)
