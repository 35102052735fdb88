"""Legibility figures of a rendered board: the text boxes a layout drew, and the checks on them.

Owns `TextBox` (what was drawn where, at which size, in which colours), WCAG contrast, and
`legibility_problems`, which tests run on every render. Pure: no drawing here.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)

MIN_CONTRAST = 7.0  # WCAG 2 AAA for body text
BODY_PX_AT_1080 = 36  # body text at least 36 px on a 1080-pixel-wide (or -high) screen
NUMBER_FRACTION = 1 / 9  # called numbers at least 1/9 of the screen height (ink height)


@dataclass(frozen=True, slots=True)
class TextBox:
    """One text item as drawn: `bbox` is its ink box, `area` the rectangle it had to stay in.
    `role` is "number" for a called number, "body" for everything else. `clipped` is set when
    the text did not fit even at the smallest size and was shortened with an ellipsis. `weight`:
    the font's, so that a benchmark can draw the same texts with bare Pillow."""

    text: str
    px: int
    bbox: Rect
    fg: RGB
    bg: RGB
    area: Rect
    role: str = "body"
    clipped: bool = False
    weight: str = "regular"


def _channel(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def luminance(rgb: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""
    r, g, b = (_channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    la, lb = luminance(a), luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def inside(inner: Rect, outer: Rect) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def legibility_problems(boxes: list[TextBox], size: tuple[int, int]) -> list[str]:
    """Every way `boxes` on a screen of `size` break the rules; empty when all is well."""
    width, height = size
    min_body = BODY_PX_AT_1080 * min(width, height) / 1080
    min_number = height * NUMBER_FRACTION
    screen = (0, 0, width, height)
    problems: list[str] = []
    for b in boxes:
        label = f"{b.text!r} at {b.bbox}"
        if b.role == "number":
            ink = b.bbox[3] - b.bbox[1]
            if ink < min_number:
                problems.append(f"{label}: called number {ink} px high, under 1/9 of {height}")
        elif b.px < min_body:
            problems.append(f"{label}: {b.px} px text, under {min_body:.0f} px")
        ratio = contrast(b.fg, b.bg)
        if ratio < MIN_CONTRAST:
            problems.append(f"{label}: contrast {ratio:.2f}:1, under {MIN_CONTRAST}:1")
        if not inside(b.bbox, b.area) or not inside(b.area, screen):
            problems.append(f"{label}: leaves its area {b.area}")
        if b.clipped:
            problems.append(f"{label}: did not fit and was shortened")
    return problems
