"""ESC/POS primitives: golden bytes for every command, the raster band splitter round-trips
through the decoder, and the decoder rejects what it does not know with the offset."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal import escpos


def test_golden_command_bytes() -> None:
    assert escpos.init() == b"\x1b\x40"
    assert escpos.motion_units() == b"\x1d\x50\x00\xcb"
    assert escpos.align("center") == b"\x1b\x61\x01"
    assert escpos.bold(True) == b"\x1b\x45\x01"
    assert escpos.char_size(8, 8) == b"\x1d\x21\x77"
    assert escpos.char_size(2, 1) == b"\x1d\x21\x10"
    assert escpos.kanji_on() == b"\x1c\x43\x01\x1c\x26"
    assert escpos.kanji_off() == b"\x1c\x2e"
    assert escpos.feed_lines(4) == b"\x1b\x64\x04"
    assert escpos.feed_dots(300) == b"\x1b\x4a\xff\x1b\x4a\x2d"
    assert escpos.partial_cut() == b"\x1d\x56\x01"
    assert escpos.raster_band(b"\x80\x01" * 3, 2) == b"\x1d\x76\x30\x00\x02\x00\x03\x00" + b"\x80\x01" * 3


def test_golden_native_qr_is_epsons_function_sequence() -> None:
    # GS ( k: fn 165 model 2, fn 167 module 6, fn 169 level M, fn 180 store "AB", fn 181 print.
    assert escpos.qr_native(b"AB", 6, "M") == (
        b"\x1d(k\x04\x001A2\x00"
        + b"\x1d(k\x03\x001C\x06"
        + b"\x1d(k\x03\x001E1"
        + b"\x1d(k\x05\x001P0AB"
        + b"\x1d(k\x03\x001Q0"
    )


def test_shift_jis_text_and_what_cannot_be_printed() -> None:
    assert escpos.sjis("整理券 A-1") == "整理券 A-1".encode("cp932")
    assert escpos.sjis("〜") == b"\x81\x60"  # WAVE DASH: JIS mapping where cp932 has none
    with pytest.raises(escpos.EscPosError, match="U\\+20BB7"):
        escpos.sjis("𠮷")
    with pytest.raises(escpos.EscPosError, match="control character"):
        escpos.sjis("a\nb")
    assert not escpos.can_encode_sjis("🙂") and escpos.can_encode_sjis("髙橋")


def test_decoder_follows_shift_jis_trail_bytes_in_kanji_mode() -> None:
    # ソ and 表 end in 0x5C; 予 is 0x97 0x5C. None of their trail bytes may start a command.
    job = escpos.init() + escpos.kanji_on() + escpos.text_line("ソ表予 A") + escpos.kanji_off()
    cmds = escpos.decode(job)
    assert [c.name for c in cmds] == ["init", "kanji_code", "kanji_on", "text", "newline", "kanji_off"]
    assert cmds[3].text == "ソ表予 A"


def test_decoder_names_the_offset_of_an_unknown_command() -> None:
    with pytest.raises(escpos.EscPosDecodeError, match="offset 2: unknown command ESC 0x7a"):
        escpos.decode(b"\x1b@\x1bz")
    with pytest.raises(escpos.EscPosDecodeError, match="raster data cut short"):
        escpos.decode(escpos.raster_band(bytes(8), 2)[:-1])


@given(st.binary(max_size=200))
def test_garbage_never_raises_anything_but_a_decode_error(data: bytes) -> None:
    with contextlib.suppress(escpos.EscPosDecodeError):
        escpos.decode(data)


def _bitmaps() -> st.SearchStrategy[tuple[int, bytes]]:
    """Bitmaps with blank runs of every length, first row inked (a leading blank run is a feed
    before the image, which the reassembly leaves out)."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[int, bytes]:
        width = draw(st.integers(1, 6))
        runs = draw(st.lists(st.tuples(st.booleans(), st.integers(1, 90)), min_size=1, max_size=8))
        rows = [bytes([0x80]) + bytes(width - 1)]
        for inked, n in runs:
            for _ in range(n):
                row = draw(st.binary(min_size=width, max_size=width))
                rows.append(row[:-1] + bytes([row[-1] | 1]) if inked else bytes(width))
        return width, b"".join(rows)

    return build()


@given(_bitmaps())
def test_raster_bands_round_trip_with_blank_runs_as_feeds(bitmap: tuple[int, bytes]) -> None:
    width, rows = bitmap
    job = escpos.motion_units() + escpos.raster(rows, width, band_rows=24)
    cmds = escpos.decode(job)
    bands = [c for c in cmds if c.name == "raster"]
    assert all(c.args[0] == width and 1 <= c.args[1] <= 24 for c in bands)
    (image,) = list(escpos.raster_rows(cmds))
    trimmed = rows
    while trimmed.endswith(bytes(width)):
        trimmed = trimmed[:-width]
    assert (image.width_bytes, image.rows) == (width, trimmed)
    # No band carries a blank run long enough to be worth a feed.
    for band in bands:
        blank = 0
        for y in range(band.args[1]):
            blank = blank + 1 if band.data[y * width : (y + 1) * width] == bytes(width) else 0
            assert blank < 4


def _raster_as_first_written(rows: bytes, width: int, band_rows: int, min_gap: int = 4) -> bytes:
    """escpos.raster as it was before it could stream (one pass over the whole bitmap): the
    reference the streaming encoder must match byte for byte."""
    height = len(rows) // width
    inked = [rows[i * width : (i + 1) * width] != bytes(width) for i in range(height)]
    out = bytearray()
    y = 0
    while y < height:
        if not inked[y]:
            end = y
            while end < height and not inked[end]:
                end += 1
            if end == height:
                break
            if end - y >= min_gap:
                out += escpos.feed_dots(end - y)
                y = end
                continue
        end = y
        while end < height and end - y < band_rows:
            if not inked[end]:
                gap = end
                while gap < height and not inked[gap] and gap - end < min_gap:
                    gap += 1
                if gap == height or gap - end >= min_gap:
                    break
            end += 1
        out += escpos.raster_band(rows[y * width : end * width], width)
        y = end
    return bytes(out)


@given(_bitmaps(), st.integers(0, 9), st.lists(st.integers(0, 400), max_size=12), st.integers(1, 40))
def test_a_raster_streamed_in_any_pieces_is_the_one_shot_raster(
    bitmap: tuple[int, bytes], lead: int, cuts: list[int], band_rows: int
) -> None:
    width, rows = bitmap
    rows = bytes(lead * width) + rows  # a blank top too: short (part of a band) or long (a feed)
    height = len(rows) // width
    bounds = sorted({0, height, *(c % (height + 1) for c in cuts)})
    stream = escpos.RasterStream(width, band_rows)
    pieces = [stream.push(rows[a * width : b * width]) for a, b in itertools.pairwise(bounds)]
    pieces.append(stream.end())
    expected = _raster_as_first_written(rows, width, band_rows)
    assert b"".join(pieces) == expected == escpos.raster(rows, width, band_rows)
    for piece in pieces:  # every piece is whole commands
        assert (
            b"".join(
                escpos.raster_band(c.data, width) if c.name == "raster" else escpos.feed_dots(c.args[0])
                for c in escpos.decode(piece)
            )
            == piece
        )


def test_a_streamed_band_goes_out_as_soon_as_it_is_full_or_a_feed_begins() -> None:
    stream = escpos.RasterStream(1, band_rows=3)
    assert stream.push(b"\x01\x01") == b""  # two rows: the band may grow
    assert stream.push(b"\x01") == escpos.raster_band(b"\x01\x01\x01", 1)  # full
    assert stream.push(b"\x01\x00\x00\x00") == b""  # three blank rows: a gap or part of a band?
    assert stream.push(b"\x00") == escpos.raster_band(b"\x01", 1)  # four: a feed, the band ends
    assert stream.push(b"\x00\x01") == escpos.feed_dots(5)
    assert stream.push(b"\x00\x00") == b"" and stream.end() == escpos.raster_band(b"\x01", 1)  # white bottom dropped


def test_a_blank_run_costs_a_feed_not_rows() -> None:
    rows = b"\xff" * 72 + bytes(72 * 200) + b"\xff" * 72
    job = escpos.raster(rows, 72)
    assert len(job) == 2 * (8 + 72) + 3
    assert [c.name for c in escpos.decode(job)] == ["raster", "feed_dots", "raster"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: escpos.char_size(9, 1), "1-8"),
        (lambda: escpos.align("middle"), "alignment"),
        (lambda: escpos.qr_native(b"x", 20), "module size"),
        (lambda: escpos.qr_native(b"x", 6, "X"), "error level"),
        (lambda: escpos.raster(b"\x00" * 5, 2), "whole rows"),
        (lambda: escpos.feed_lines(256), "0-255"),
    ],
)
def test_bad_arguments_are_clear_errors(call: object, message: str) -> None:
    with pytest.raises(escpos.EscPosError, match=message):
        call()  # type: ignore[operator]
