"""Call displays from a `BoardSnapshot`: monochrome frames for LED matrices the Pi drives directly,
and the text lines for call displays on the RS-485 bus.

Owns what a small display says about the newest call ("C-099 ▶ 8", then the counter's name in
both languages when the matrix is tall enough, or the mode when nobody is called) and fitting it
to the matrix's pixels. Both outputs are made from the same snapshot and the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from signage.catalog import text
from signage.fonts import Weight, font
from signage.legibility import Rect, TextBox
from signage.snapshot import BoardSnapshot

MAX_TEXT_BYTES = 60  # a SHOW_TEXT line on the bus (docs/protocol.md)
ARROW = "▶"
_ON, _OFF = (255, 255, 255), (0, 0, 0)  # recorded colours of lit and dark pixels


@dataclass(frozen=True, slots=True)
class LedRender:
    image: Image.Image  # mode "1", the matrix's size
    boxes: list[TextBox]


def call_words(snap: BoardSnapshot) -> tuple[str, str, str]:
    """(headline, Japanese line, English line): the newest call, or the mode when nobody is called."""
    call = snap.newest
    if call is None:
        if snap.mode.mode == "closed":
            return text("board_mode_closed", "ja"), text("board_mode_closed", "ja"), text("board_mode_closed", "en")
        return text("led_idle", "ja"), text("led_idle", "ja"), text("led_idle", "en")
    headline = f"{call.ticket} {ARROW} {call.counter}"
    ja = f"{call.ticket} {text('led_to_counter', 'ja', counter=call.counter_name.ja)}"
    en = f"{call.ticket} {text('led_to_counter', 'en', counter=call.counter_name.en)}"
    return headline, ja, en


def _clip_utf8(line: str, max_bytes: int) -> str:
    while len(line.encode()) > max_bytes:
        line = line[:-1]
    return line


def text_lines(snap: BoardSnapshot) -> tuple[str, str]:
    """The two lines (Japanese, English) for an RS-485 call display's SHOW_TEXT, each at most
    MAX_TEXT_BYTES of UTF-8, cut at a character boundary."""
    _, ja, en = call_words(snap)
    return _clip_utf8(ja, MAX_TEXT_BYTES), _clip_utf8(en, MAX_TEXT_BYTES)


def _fit(draw: ImageDraw.ImageDraw, words: str, area: Rect, weight: Weight) -> tuple[int, bool]:
    """The largest font size at which `words` fits `area`; (smallest, True) when none does."""
    w, h = area[2] - area[0], area[3] - area[1]
    for px in range(min(h * 2, 96), 7, -1):
        left, top, right, bottom = draw.textbbox((0, 0), words, font=font(px, weight), anchor="ls")
        if right - left <= w and bottom - top <= h:
            return px, False
    return 8, True


def _draw_fitted(draw: ImageDraw.ImageDraw, words: str, area: Rect, weight: Weight, boxes: list[TextBox]) -> None:
    px, clipped = _fit(draw, words, area, weight)
    f = font(px, weight)
    left, top, right, bottom = draw.textbbox((0, 0), words, font=f, anchor="ls")
    x = area[0] - left + (area[2] - area[0] - (right - left)) // 2
    y = area[1] - top + (area[3] - area[1] - (bottom - top)) // 2
    draw.text((x, y), words, font=f, fill=1, anchor="ls")
    x0, y0, x1, y1 = (int(v) for v in draw.textbbox((x, y), words, font=f, anchor="ls"))
    boxes.append(TextBox(words, px, (x0, y0, x1, y1), _ON, _OFF, area, "led", clipped, weight))


def render_led(snap: BoardSnapshot, size: tuple[int, int]) -> LedRender:
    """A monochrome frame of `size` pixels: the headline across the top (the whole frame when the
    matrix is under 48 pixels high), the Japanese and English words beneath when there is room."""
    width, height = size
    if width < 8 or height < 8:
        raise ValueError(f"an LED matrix of {width}x{height} is too small to show a call")
    image = Image.new("1", size, 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # lit or dark pixels: no grey edges on a one-bit matrix
    boxes: list[TextBox] = []
    headline, ja, en = call_words(snap)
    if height < 48:
        _draw_fitted(draw, headline, (1, 1, width - 1, height - 1), "bold", boxes)
    else:
        split = height * 3 // 5
        _draw_fitted(draw, headline, (1, 1, width - 1, split - 1), "bold", boxes)
        rest = height - split
        if snap.newest is not None:
            name = snap.newest.counter_name
            words_ja = text("led_to_counter", "ja", counter=name.ja)
            words_en = text("led_to_counter", "en", counter=name.en)
        else:
            words_ja, words_en = ja, en
        _draw_fitted(draw, words_ja, (1, split, width - 1, split + rest // 2), "regular", boxes)
        _draw_fitted(draw, words_en, (1, split + rest // 2, width - 1, height - 1), "regular", boxes)
    return LedRender(image, boxes)
