"""The boards' Japanese font: tools/make_font.py builds it from examples/nerima.toml, the real
MicroPython Unix port loads it with firmware/font16.py and draws every configured Japanese message
and name (tests/micropython/check_font.py), and the bits come back here to be compared with
Pillow drawing the same string with the same Noto font at 16 px (FreeType's monochrome rasteriser,
character by character at the board's pen positions): pixel-equal, so no glyph is a box and none
is misplaced; the PNGs are written to the test's tmp_path. The reader is
instrumented: only 6-byte index probes and one glyph's bytes are ever read."""

from __future__ import annotations

import math
import string
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image, ImageDraw

from gateway.mode_words import dispenser_lines
from office import calendar
from office.config import Text, load_config
from signage.catalog import catalog
from tests.test_firmware import run_script
from tools import make_font

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
CONFIG = ROOT / "examples" / "nerima.toml"


def japanese_strings() -> list[str]:
    """What a board of the office may show in Japanese: every configured string that is not ASCII,
    each catalogue message filled with sample values, the calendar's closure reasons and a
    closed dispenser's lines."""
    config = load_config(CONFIG)
    out = [s for s in make_font._strings(config.raw) if not s.isascii()]
    for template in catalog("ja").values():
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        out.append(template.format(**dict.fromkeys(fields, "12")))
    out += [t.ja for t in vars(calendar).values() if isinstance(t, Text)]
    out += [f"{name}（祝日）" for name in calendar.HOLIDAY_EN]
    at = datetime(2027, 3, 22, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # the configured closure
    out += [line for line in dispenser_lines(calendar.mode_at(config, at), at) if not line.isascii()]
    return list(dict.fromkeys(out))


def pillow_line(text: str, width: int) -> Image.Image:
    """Pillow drawing `text` one character at a time at the board's pen positions (each advance
    rounded to a pixel), every glyph on the baseline: what the board must show, bit for bit. Not
    Pillow's whole-string drawing: that keeps fractional advances (an ASCII comma is not a whole
    pixel wide) and places some kana one row lower than the same glyph alone, so a bitmap font
    with fixed cells cannot match it pixel for pixel."""
    font = make_font.load_font()
    image = Image.new("1", (width, make_font.HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    x = 0
    for ch in text:
        draw.text((x, make_font.BASELINE), ch, font=font, fill=1, anchor="ls")
        x += max(1, min(make_font.MAX_WIDTH, round(font.getlength(ch))))
    return image


def save_png(image: Image.Image, path: Path, scale: int = 4) -> None:
    """A board's picture as a PNG a person can read (each pixel a scale × scale square)."""
    image.convert("L").resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST).save(path)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str], bytes]:
    tmp = tmp_path_factory.mktemp("font")
    font = make_font.build(make_font.board_texts(CONFIG))
    (tmp / "font16.bin").write_bytes(font)
    strings = japanese_strings()
    (tmp / "strings.txt").write_text("".join(s + "\n" for s in strings), encoding="utf-8")
    return strings, run_script("check_font.py", FIRMWARE, tmp, flash=tmp), font


def test_the_font_is_deterministic_and_holds_every_configured_character() -> None:
    texts = make_font.board_texts(CONFIG)
    font = make_font.build(texts)
    assert font == make_font.build(texts)
    magic, version, height, count = make_font.HEADER.unpack_from(font)
    assert (magic, version, height) == (b"CF16", 1, 16)
    index = [int.from_bytes(font[8 + 6 * i : 11 + 6 * i], "little") for i in range(count)]
    assert index == sorted(set(index))
    wanted = {ord(c) for s in japanese_strings() for c in s}
    assert wanted <= set(index), "".join(chr(c) for c in sorted(wanted - set(index)))
    assert len(font) < 16_000, "only the office's glyphs"


def test_every_configured_japanese_string_draws_as_pillow_draws_it(
    drawn: tuple[list[str], list[str], bytes], tmp_path: Path
) -> None:
    strings, lines, _ = drawn
    images = [line.split(" ") for line in lines if line.startswith("img ")]
    assert len(images) == len(strings)
    for n, (text, (_, w, missing, _, data)) in enumerate(zip(strings, images, strict=True)):
        assert missing == "0", f"{text!r}: {missing} glyphs drawn as boxes"
        board = Image.frombytes("1", (int(w), 16), bytes.fromhex(data))
        assert board.getbbox() is not None, f"{text!r}: blank"
        save_png(board, tmp_path / f"line{n:02d}.png")
        want = pillow_line(text, int(w))
        if board.tobytes() != want.tobytes():
            save_png(want, tmp_path / f"line{n:02d}-pillow.png")
            pytest.fail(f"{text!r}: the board's pixels differ from Pillow's (PNGs in {tmp_path})")


def test_the_reader_reads_index_probes_and_one_glyph_per_character(
    drawn: tuple[list[str], list[str], bytes],
) -> None:
    strings, lines, font = drawn
    count = make_font.HEADER.unpack_from(font)[3]
    probes_max = math.ceil(math.log2(count + 1))
    for text, line in zip(strings, (x for x in lines if x.startswith("img ")), strict=True):
        sizes = [int(x) for x in line.split(" ")[3].split(",")]
        assert max(sizes) <= 33, "never more than one glyph's bytes at once"
        # per character: ≤ log2 index probes of 6 bytes, then the width byte and the 16 rows
        chars = 0
        probes = 0
        for size in sizes:
            if size == 6:
                probes += 1
            elif size == 1:
                assert probes <= probes_max
                probes = 0
                chars += 1
            else:
                assert size in (16, 32)
        assert chars == len(text)
        assert sum(sizes) <= len(text) * (6 * probes_max + 33)


def test_render_draws_the_japanese_line_with_the_font_and_english_in_8x8(
    drawn: tuple[list[str], list[str], bytes], tmp_path: Path
) -> None:
    strings, lines, _ = drawn
    data = next(line.split(" ")[1] for line in lines if line.startswith("panel "))
    panel = Image.frombytes("1", (128, 64), bytes.fromhex(data))
    save_png(panel, tmp_path / "panel.png")
    assert panel.crop((0, 0, 128, 16)).tobytes() == pillow_line(strings[0], 128).tobytes()
    english = panel.crop((0, 16, 128, 26))
    box = english.getbbox()
    assert box is not None and box[2] <= 9 * 8, "'Counter 5' in 8×8 cells"


def test_heap_of_the_font(drawn: tuple[list[str], list[str], bytes]) -> None:
    _, lines, _ = drawn
    figures = dict(kv.split("=") for line in lines if line.startswith(("heap_font", "free_")) for kv in line.split())
    # the module, the open file and two 33-byte views: a few KB, never the file (~11 KB)
    assert int(figures["heap_font_load"]) < 4096
    assert int(figures["heap_font_draw"]) - int(figures["heap_font_load"]) < 512
