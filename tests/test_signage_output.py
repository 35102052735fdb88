"""Where frames go: the framebuffer in RGB565 and XRGB8888 (a regular file and a fake sysfs), partial
writes of the call area, PNG files; LED matrix frames and RS-485 text lines from the same snapshot;
`counterfloor signage render`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from counterfloor.cli import main
from office.config import OfficeConfig, parse_config
from signage.board import LANDSCAPE, BoardRenderer
from signage.led import MAX_TEXT_BYTES, render_led, text_lines
from signage.legibility import inside
from signage.output import Framebuffer, FramebufferError, read_geometry, to_rgb565, to_xrgb8888, write_png
from tests.conftest import EXAMPLES, TOKYO, tokyo
from tests.signage_support import board_snapshot, snapshot


def _sysfs(tmp_path: Path, width: int, height: int, bpp: int, stride: int) -> tuple[Path, Path]:
    sysfs = tmp_path / "fb0"
    sysfs.mkdir()
    (sysfs / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "stride").write_text(f"{stride}\n")
    device = tmp_path / "dev-fb0"
    device.write_bytes(b"\xaa" * stride * height)  # what was on the screen before
    return device, sysfs


# -- pixel formats ---------------------------------------------------------------------------------
def test_rgb565_packs_little_endian_five_six_five() -> None:
    img = Image.new("RGB", (5, 1))
    for x, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0x84, 0x82, 0x08)]):
        img.putpixel((x, 0), colour)
    words = [int.from_bytes(to_rgb565(img)[i : i + 2], "little") for i in range(0, 10, 2)]
    assert words == [0xF800, 0x07E0, 0x001F, 0xFFFF, (0x84 >> 3) << 11 | (0x82 >> 2) << 5 | 0x08 >> 3]


@given(st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=1, max_size=64))
def test_rgb565_matches_the_bit_formula_for_any_colour(colours: list[tuple[int, int, int]]) -> None:
    img = Image.new("RGB", (len(colours), 1))
    img.putdata(colours)
    data = to_rgb565(img)
    expected = b"".join(((r >> 3) << 11 | (g >> 2) << 5 | b >> 3).to_bytes(2, "little") for r, g, b in colours)
    assert data == expected


def test_xrgb8888_is_blue_green_red_then_padding() -> None:
    img = Image.new("RGB", (1, 1), (0x11, 0x22, 0x33))
    assert to_xrgb8888(img)[:3] == bytes([0x33, 0x22, 0x11])


# -- the framebuffer -------------------------------------------------------------------------------
@pytest.mark.parametrize(("bpp", "pad"), [(16, 0), (16, 12), (32, 0), (32, 16)])
def test_a_frame_lands_row_by_row_at_the_stride(tmp_path: Path, bpp: int, pad: int) -> None:
    width, height = 40, 30
    stride = width * bpp // 8 + pad
    device, sysfs = _sysfs(tmp_path, width, height, bpp, stride)
    img = Image.new("RGB", (width, height), (0, 0, 255))
    img.putpixel((7, 5), (255, 0, 0))
    with Framebuffer(device, sysfs) as fb:
        assert fb.geometry.stride == stride
        fb.write(img)
    data = device.read_bytes()
    size = bpp // 8
    at = 5 * stride + 7 * size
    if bpp == 16:
        assert data[at : at + 2] == (0xF800).to_bytes(2, "little")
        assert data[:2] == (0x001F).to_bytes(2, "little")
    else:
        assert data[at : at + 3] == bytes([0, 0, 255])
        assert data[:3] == bytes([255, 0, 0])
    if pad:  # the padding at the end of each row is not the image's
        assert data[width * size : stride] == b"\xaa" * pad


@pytest.mark.parametrize("bpp", [16, 32])
def test_write_rect_touches_only_that_rectangle(tmp_path: Path, bpp: int) -> None:
    width, height = 64, 48
    stride = width * bpp // 8 + 8
    device, sysfs = _sysfs(tmp_path, width, height, bpp, stride)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    rect = (10, 20, 30, 25)
    with Framebuffer(device, sysfs) as fb:
        fb.write_rect(img, rect)
    data = device.read_bytes()
    size = bpp // 8
    for y in range(height):
        row = data[y * stride : (y + 1) * stride]
        for x in range(width):
            px = row[x * size : (x + 1) * size]
            written = rect[0] <= x < rect[2] and rect[1] <= y < rect[3]
            assert (px != b"\xaa" * size) == written, (x, y)


def test_a_board_update_writes_only_the_call_area(nerima: OfficeConfig, tmp_path: Path) -> None:
    width, height = LANDSCAPE
    device, sysfs = _sysfs(tmp_path, width, height, 16, width * 2)
    before = board_snapshot(nerima, "office", TOKYO)
    renderer = BoardRenderer(LANDSCAPE)
    with Framebuffer(device, sysfs) as fb:
        fb.write(renderer.render(before).image)
        full = device.read_bytes()
        call = replace(before.calling[0], ticket="C-100", number=100, at=before.at + timedelta(seconds=30))
        after = replace(before, calling=(call, *before.calling[:2]), recent=(before.calling[2], *before.recent[:3]))
        result = renderer.update(after)
        for rect in result.dirty:
            fb.write_rect(result.image, rect)
    data = device.read_bytes()
    assert data == to_rgb565(result.image)  # the screen shows the new board
    changed_rows = {i // (width * 2) for i in range(0, len(data), 2) if data[i : i + 2] != full[i : i + 2]}
    calls = result.dirty
    assert changed_rows and all(any(r[1] <= y < r[3] for r in calls) for y in changed_rows)
    assert all(r[2] <= 880 for r in calls)  # the left column only: services, banner, QR untouched


def test_framebuffer_geometry_errors_name_the_problem(tmp_path: Path) -> None:
    device, sysfs = _sysfs(tmp_path, 10, 10, 24, 30)
    with pytest.raises(FramebufferError, match="24 bits per pixel"):
        read_geometry(sysfs)
    (sysfs / "bits_per_pixel").write_text("16")
    (sysfs / "stride").write_text("8")
    with pytest.raises(FramebufferError, match="stride 8 is too small"):
        read_geometry(sysfs)
    with pytest.raises(FramebufferError, match="virtual_size"):
        read_geometry(tmp_path / "missing")
    (sysfs / "stride").write_text("20")
    with Framebuffer(device, sysfs) as fb, pytest.raises(FramebufferError, match="does not match the 10x10"):
        fb.write(Image.new("RGB", (20, 10)))
    with pytest.raises(FramebufferError, match="cannot be opened"):
        Framebuffer(tmp_path / "no-such-device", sysfs)


def test_png_is_written_whole(tmp_path: Path) -> None:
    img = Image.new("RGB", (30, 20), (1, 2, 3))
    path = tmp_path / "board.png"
    write_png(img, path)
    assert Image.open(path).getpixel((5, 5)) == (1, 2, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["board.png"]


# -- LED matrices and RS-485 call displays -----------------------------------------------------------
SIGNS = """
[[signs]]
id = "hall"
kind = "board"
size = "1080x1920"
output = "/dev/fb0"

[[signs]]
id = "small"
kind = "led"
size = "128x32"

[[signs]]
id = "large"
kind = "led"
size = "192x64"

[[counters]]
id = "123"
name = { ja = "123番窓口", en = "Counter 123" }
services = ["certificate"]
"""


@pytest.fixture(scope="module")
def signed() -> OfficeConfig:
    text = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    return parse_config(text.replace("[gateway]", SIGNS + "\n[gateway]", 1))


def test_signs_come_from_the_config(signed: OfficeConfig) -> None:
    assert [(s.id, s.kind, s.width, s.height, s.output) for s in signed.signs] == [
        ("hall", "board", 1080, 1920, "/dev/fb0"),
        ("small", "led", 128, 32, None),
        ("large", "led", 192, 64, None),
    ]


@pytest.mark.parametrize("bad", ['kind = "led"\nsize = "1024x32"', 'kind = "board"\nsize = "800x600"', 'kind = "tv"'])
def test_a_bad_sign_is_a_clear_config_error(bad: str) -> None:
    from office.config import ConfigError

    text = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"signs\[0\]\.(size|kind)"):
        parse_config(text + f'\n[[signs]]\nid = "x"\n{bad}\n')


def test_led_frames_show_the_newest_call_at_the_configured_size(signed: OfficeConfig) -> None:
    snap = snapshot(signed, tokyo(2027, 3, 15, 10, 30), calling=[("C-999", "123"), ("C-998", "6")])
    for sign in (s for s in signed.signs if s.kind == "led"):
        led = render_led(snap, (sign.width, sign.height))
        assert led.image.mode == "1" and led.image.size == (sign.width, sign.height)
        assert led.boxes[0].text == "C-999 ▶ 123"
        for b in led.boxes:
            assert not b.clipped and inside(b.bbox, b.area) and inside(b.area, (0, 0, sign.width, sign.height))
        lit = led.image.getbbox()
        assert lit is not None and lit[2] - lit[0] > sign.width // 2  # the call fills the matrix
    large = render_led(snap, (192, 64))
    assert [b.text for b in large.boxes[1:]] == ["123番窓口へ", "to Counter 123"]


def test_led_and_bus_text_say_the_same_call(signed: OfficeConfig) -> None:
    snap = snapshot(signed, tokyo(2027, 3, 15, 10, 30), calling=[("B-023", "5")])
    assert text_lines(snap) == ("B-023 5番窓口へ", "B-023 to Counter 5")
    assert render_led(snap, (128, 32)).boxes[0].text == "B-023 ▶ 5"
    long_name = replace(snap.calling[0], counter_name=replace(snap.calling[0].counter_name, en="x" * 100))
    lines = text_lines(replace(snap, calling=(long_name,)))
    assert all(len(line.encode()) <= MAX_TEXT_BYTES for line in lines)


def test_led_without_calls_shows_the_mode(signed: OfficeConfig) -> None:
    closed = snapshot(signed, tokyo(2027, 3, 14, 10, 0))
    assert render_led(closed, (128, 32)).boxes[0].text == "ただいま閉庁中"
    assert text_lines(closed) == ("ただいま閉庁中", "Closed now")
    idle = snapshot(signed, tokyo(2027, 3, 15, 10, 0))
    assert text_lines(idle) == ("お待ちください", "Please wait")


# -- the command line --------------------------------------------------------------------------------
def _render(tmp_path: Path, name: str, *extra: str) -> bytes:
    out = tmp_path / name
    config = str(EXAMPLES / "nerima.toml")
    code = main(["signage", "render", "--config", config, "--at", "2027-03-15T11:00", "--out", str(out), *extra])
    assert code == 0
    return out.read_bytes()


def test_cli_renders_the_same_board_for_the_same_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _render(tmp_path, "a.png", "--seed", "7")
    assert _render(tmp_path, "b.png", "--seed", "7") == first
    assert _render(tmp_path, "c.png", "--seed", "8") != first
    _render(tmp_path, "d.png", "--size", "1080x1920")
    assert Image.open(tmp_path / "d.png").size == (1080, 1920)
    assert "office mode" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "800x600"], "--size must be 1920x1080 or 1080x1920 (got '800x600')"),
        (["--seed", "x"], "--seed must be a whole number"),
        (["--at", "noon"], "--at must be an ISO 8601 time"),
        (["--out", "/no/such/dir/board.png"], "--out: no such directory: /no/such/dir"),
        # Once tracebacks: a directory (IsADirectoryError, or ValueError for "/" and "").
        (["--out", "/"], "--out: / is a directory, not a file"),
        (["--out", ""], "--out: . is a directory, not a file"),
        # The year 1 in +14:00 is the year 0 in Tokyo: once an OverflowError traceback.
        (["--at", "0001-01-01T00:00+14:00"], "--at: the year must be 2-9998"),
    ],
)
def test_cli_bad_arguments_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = ["signage", "render", "--config", str(EXAMPLES / "nerima.toml"), "--out", str(tmp_path / "x.png")]
    if "--at" not in args:
        argv += ["--at", "2027-03-15T11:00"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_never_writes_a_board_over_a_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "j.db"
    config = str(EXAMPLES / "nerima.toml")
    assert main(["office", "init", "--config", config, "--journal", str(journal)]) == 0
    before = journal.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(["signage", "render", "--config", config, "--at", "2027-03-15T11:00", "--out", str(journal)])
    assert exit_info.value.code == 2
    assert "is an SQLite database (a journal?); refusing to overwrite it" in capsys.readouterr().err
    assert journal.read_bytes() == before
