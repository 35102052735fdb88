"""Drawing text that fits: wrapping Japanese and English to a width, shrinking to a floor size, and
recording every text item drawn as a `TextBox` for the legibility checks.

Owns `Painter` (a Pillow draw plus the boxes it drew) and the line-breaking rules. Knows nothing
about boards or snapshots.
"""

from __future__ import annotations

import functools

from PIL import Image, ImageChops, ImageDraw

from signage.fonts import Weight, font
from signage.legibility import RGB, Rect, TextBox

# Characters a Japanese line must not start with, nor end with (simple kinsoku shori).
_NO_START = set("、。，．・：；）」』】〕ー〜ぁぃぅぇぉっゃゅょァィゥェォッャュョ!),.:;?")
_NO_END = set("（「『【〔(")
ELLIPSIS = "…"


def line_height(px: int) -> int:
    return round(px * 1.15)


@functools.lru_cache(maxsize=4096)
def width_of(text: str, px: int, weight: Weight = "regular") -> float:
    return float(font(px, weight).getlength(text))


def _is_cjk(ch: str) -> bool:
    return ord(ch) >= 0x2E80


def _tokens(text: str) -> list[str]:
    """Units a line may break between: words with their trailing space for Latin script, single
    characters for Japanese, punctuation kept with its neighbour (kinsoku)."""
    tokens: list[str] = []
    word = ""

    def attach(ch: str) -> None:
        while not tokens[-1].strip() and len(tokens) > 1:  # "A )": spaces cannot carry it alone
            space = tokens.pop()
            tokens[-1] += space
        tokens[-1] += ch

    for ch in text:
        if _is_cjk(ch):
            if word:
                tokens.append(word)
                word = ""
            if tokens and (ch in _NO_START or (tokens[-1] and tokens[-1][-1] in _NO_END)):
                attach(ch)
            else:
                tokens.append(ch)
        elif ch == " ":
            word += ch
            tokens.append(word)
            word = ""
        elif not word and tokens and ch in _NO_START:
            attach(ch)
        else:
            word += ch
    if word:
        tokens.append(word)
    return tokens


def wrap(text: str, px: int, width: float, weight: Weight = "regular") -> list[str]:
    """`text` broken into lines no wider than `width` at `px` (a single over-long token stays whole)."""
    f = font(px, weight)
    lines: list[str] = []
    current = ""
    for token in _tokens(text):
        candidate = current + token
        if current and f.getlength(candidate.rstrip()) > width:
            lines.append(current.rstrip())
            current = token.lstrip()
        else:
            current = candidate
    if current.strip() or not lines:
        lines.append(current.rstrip())
    return lines


@functools.lru_cache(maxsize=4096)
def fit_lines(
    text: str, width: float, px: int, min_px: int, max_lines: int, weight: Weight = "regular"
) -> tuple[tuple[str, ...], int, bool]:
    """The largest size from `px` down to `min_px` at which `text` wraps into `max_lines` lines of
    `width`; at `min_px` still too long, the last line is cut with an ellipsis (clipped=True)."""
    size = px
    while True:
        lines = wrap(text, size, width, weight)
        if len(lines) <= max_lines and all(width_of(line, size, weight) <= width for line in lines):
            return tuple(lines), size, False
        if size <= min_px:
            break
        size = max(min_px, size - max(1, size // 12))
    lines = lines[:max_lines]
    last = lines[-1]
    while last and width_of(last + ELLIPSIS, size, weight) > width:
        last = last[:-1]
    lines[-1] = last + ELLIPSIS
    return tuple(lines), size, True


@functools.lru_cache(maxsize=384)  # a board draws about 80 texts; big numbers are ~200 kB each
def text_mask(text: str, px: int, weight: Weight, anchor: str) -> tuple[Image.Image, int, int]:
    """`text` rasterised once as an alpha mask, with the offset of its ink from the anchor point.
    Board texts repeat from frame to frame (names, labels, numbers): FreeType renders each once."""
    f = font(px, weight)
    left, top, right, bottom = (int(v) for v in f.getbbox(text, anchor=anchor))
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=f, fill=255, anchor=anchor)
    return mask, left, top


@functools.lru_cache(maxsize=1024)
def _pair_kern(a: str, b: str, px: int, weight: Weight) -> float:
    return width_of(a + b, px, weight) - width_of(a, px, weight) - width_of(b, px, weight)


@functools.lru_cache(maxsize=64)
def glyph_run_mask(text: str, px: int, weight: Weight) -> tuple[Image.Image, int, int]:
    """Like `text_mask` (anchor "ls"), but built from each character's cached mask placed at its
    advance plus the pair's kerning. For the called numbers: a call brings a number never drawn
    before, and rasterising five glyphs at 160–290 px costs milliseconds that composing saves."""
    placed: list[tuple[Image.Image, int, int]] = []
    pen = 0.0
    for i, ch in enumerate(text):
        if i:
            pen += width_of(text[i - 1], px, weight) + _pair_kern(text[i - 1], ch, px, weight)
        mask, left, top = text_mask(ch, px, weight, "ls")
        placed.append((mask, round(pen) + left, top))
    x0 = min(x for _, x, _ in placed)
    y0 = min(y for _, _, y in placed)
    x1 = max(x + m.width for m, x, _ in placed)
    y1 = max(y + m.height for m, _, y in placed)
    run = Image.new("L", (x1 - x0, y1 - y0), 0)
    for mask, x, y in placed:
        box = (x - x0, y - y0, x - x0 + mask.width, y - y0 + mask.height)
        run.paste(ImageChops.lighter(run.crop(box), mask), box)  # neighbours' edges may overlap
    return run, x0, y0


@functools.lru_cache(maxsize=256)  # ~80 texts a board; a called number's tile is ~160 kB
def text_tile(
    text: str, px: int, weight: Weight, anchor: str, glyph_run: bool, fg: RGB, bg: RGB
) -> tuple[Image.Image, int, int]:
    """The text already blended onto its background: drawing it is a copy, not a blend per pixel."""
    mask, left, top = glyph_run_mask(text, px, weight) if glyph_run else text_mask(text, px, weight, anchor)
    tile = Image.new("RGB", mask.size, bg)
    tile.paste(fg, (0, 0, *mask.size), mask)
    return tile, left, top


class Painter:
    """Draws onto one image and keeps the `TextBox` of every text item it drew."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.boxes: list[TextBox] = []

    def fill(self, rect: Rect, colour: RGB) -> None:
        x0, y0, x1, y1 = rect
        self.draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour)

    def frame(self, rect: Rect, colour: RGB, width: int) -> None:
        x0, y0, x1, y1 = rect
        self.draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=width)

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        px: int,
        *,
        fg: RGB,
        bg: RGB,
        area: Rect,
        weight: Weight = "regular",
        anchor: str = "la",
        role: str = "body",
        clipped: bool = False,
    ) -> Rect:
        """Draw `text` with its `anchor` at `xy` on the solid background `bg` (the caller filled
        it: the text's box is copied whole, background included); returns (and records) its ink box."""
        tile, left, top = text_tile(text, px, weight, anchor, role == "number" and anchor == "ls", fg, bg)
        x, y = round(xy[0]) + left, round(xy[1]) + top
        self.image.paste(tile, (x, y))
        bbox = (x, y, x + tile.width, y + tile.height)
        self.boxes.append(TextBox(text, px, bbox, fg, bg, area, role, clipped, weight))
        return bbox

    def block(
        self,
        area: Rect,
        text: str,
        px: int,
        *,
        fg: RGB,
        bg: RGB,
        min_px: int,
        max_lines: int = 1,
        weight: Weight = "regular",
        y: int | None = None,
        align: str = "left",
    ) -> int:
        """`text` fitted into `area` (wrapped, shrunk to `min_px` at worst), from the top or from
        `y`; returns the y below the last line."""
        x0, y0, x1, _ = area
        # Two pixels in from each side: a glyph's ink may start a pixel before its origin.
        lines, size, clipped = fit_lines(text, x1 - x0 - 4, px, min_px, max_lines, weight)
        top = y0 if y is None else y
        step = line_height(size)
        for line in lines:
            if align == "right":
                self.text(
                    (x1 - 2, top), line, size, fg=fg, bg=bg, area=area, weight=weight, anchor="ra", clipped=clipped
                )
            elif align == "center":
                cx = (x0 + x1) / 2
                self.text((cx, top), line, size, fg=fg, bg=bg, area=area, weight=weight, anchor="ma", clipped=clipped)
            else:
                self.text((x0 + 2, top), line, size, fg=fg, bg=bg, area=area, weight=weight, clipped=clipped)
            top += step
        return top


def block_height(text: str, width: float, px: int, min_px: int, max_lines: int, weight: Weight = "regular") -> int:
    """The height `Painter.block` will take for `text` in `width`."""
    lines, size, _ = fit_lines(text, width - 4, px, min_px, max_lines, weight)
    return (len(lines) - 1) * line_height(size) + ink_bottom(size)


def ink_bottom(px: int) -> int:
    """How far below a line's top (anchor "la") its ink may reach: Noto CJK's descender."""
    return round(px * 1.42)
