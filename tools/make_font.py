"""Build the boards' 16 px bitmap font for one office (run at install time, beside the config).

    uv run python tools/make_font.py --config examples/nerima.toml --out font16.bin

The file holds only the glyphs this office's boards can be asked to show: every string in the
config (office, service and counter names, calendar reasons), the resident message catalogues
(signage/messages), the mode words (gateway/mode_words.py, office/calendar.py, public holiday
names), the firmware's own words (firmware/*.py), printable ASCII and anything given with --extra.
Glyphs are drawn by Pillow from Noto Sans CJK JP (signage.fonts) at 16 px with FreeType's
monochrome rasteriser (hinted, 1 bit per pixel: thresholding an anti-aliased glyph loses the thin
strokes of kanji at this size).

Format (little-endian; firmware/font16.py reads it by seeking, docs/firmware.md):
    header  8 bytes   b"CF16", version (1), height (16), glyph count N (u16)
    index   N × 6     code point (u24), offset of its glyph from the file start (u24), sorted
    glyphs            width w (u8, 1..16), then 16 rows of (w + 7) // 8 bytes, MSB = leftmost
The same input gives the same bytes (sorted, no timestamps).
"""

from __future__ import annotations

import argparse
import ast
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from gateway import mode_words  # noqa: E402
from office import calendar  # noqa: E402
from office.config import Text, load_config  # noqa: E402
from signage.catalog import LANGS, catalog  # noqa: E402
from signage.fonts import font_path  # noqa: E402

MAGIC = b"CF16"
VERSION = 1
HEIGHT = 16
BASELINE = 14  # Noto CJK ideographs span 14 px above the baseline and 2 below at 16 px
MAX_WIDTH = 16  # the firmware's glyph buffer: 16 rows × 2 bytes
HEADER = struct.Struct("<4sBBH")
ENTRY = 6


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed TOML value (the config's names, reasons, anything configured)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def firmware_texts() -> list[str]:
    """The words the boards' own code shows (the call display's " → ", a dispenser's "ただいま
    発券できません"): every string constant in firmware/*.py that is not ASCII, docstrings left out."""
    out = []
    for path in sorted((ROOT / "firmware").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        out += [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and not node.value.isascii()
        ]
    return out


def board_texts(config_path: Path) -> list[str]:
    """The strings a board of this office may show, Japanese and English."""
    config = load_config(config_path)
    texts = list(_strings(config.raw)) + firmware_texts()
    for lang in LANGS:
        texts += catalog(lang).values()  # templates: their {placeholders} are ASCII, included anyway
    # What mode_words and office.calendar build around the catalogue: weekday names, the 時/分/月/日
    # of times and dates, the fixed closure reasons and public holiday names.
    texts += [mode_words._WEEKDAYS_JA, "時分月日()（祝日） 振替休日"]
    texts += [t.ja for t in vars(calendar).values() if isinstance(t, Text)]
    texts += list(calendar.HOLIDAY_EN)
    return texts


def code_points(texts: Iterable[str]) -> list[int]:
    """Printable ASCII and every printable character of `texts`, sorted."""
    points = set(range(0x20, 0x7F))
    for text in texts:
        points.update(ord(c) for c in text if c.isprintable())
    return sorted(points)


def render_glyph(font: ImageFont.FreeTypeFont, ch: str) -> tuple[int, bytes]:
    """(width, rows): the glyph in a HEIGHT-row cell as wide as its advance, 1 bit per pixel."""
    width = max(1, min(MAX_WIDTH, round(font.getlength(ch))))
    image = Image.new("1", (width, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # FreeType mono: no anti-aliasing to threshold
    draw.text((0, BASELINE), ch, font=font, fill=1, anchor="ls")
    # Pillow packs mode "1" rows MSB first, each padded to a byte: the file's row layout.
    return width, image.tobytes()


def load_font(size: int = HEIGHT) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path("regular")), size, layout_engine=ImageFont.Layout.BASIC)


def build(texts: Iterable[str]) -> bytes:
    font = load_font()
    points = code_points(texts)
    glyphs = [render_glyph(font, chr(cp)) for cp in points]
    offset = HEADER.size + ENTRY * len(points)
    index = bytearray()
    body = bytearray()
    for cp, (width, rows) in zip(points, glyphs, strict=True):
        index += cp.to_bytes(3, "little") + (offset + len(body)).to_bytes(3, "little")
        body += bytes([width]) + rows
    if offset + len(body) >= 1 << 24:
        raise ValueError("font too large for 24-bit offsets")
    return HEADER.pack(MAGIC, VERSION, HEIGHT, len(points)) + bytes(index) + bytes(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the boards' 16 px font for an office's config.")
    parser.add_argument("--config", required=True, type=Path, help="the office's TOML config")
    parser.add_argument("--out", required=True, type=Path, help="the font file to write (font16.bin)")
    parser.add_argument("--extra", action="append", default=[], help="more text whose glyphs to include")
    args = parser.parse_args(argv)
    try:
        data = build([*board_texts(args.config), *args.extra])
    except (OSError, ValueError) as e:  # ConfigError is a ValueError
        print(f"make_font: {e}", file=sys.stderr)
        return 2
    args.out.write_bytes(data)
    count = HEADER.unpack_from(data)[3]
    print(f"{args.out}: {count} glyphs, {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
