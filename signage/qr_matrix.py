"""A QR code's modules for a ticket, the same symbol segno makes, in a third of the time.

Owns the choice of the data mask. segno encodes the data (segments, Reed-Solomon, placement) and
would then try all eight masks with a pure-Python penalty scorer that costs about two thirds of a
ticket's QR time. Here segno encodes once with mask 0; the unmasked symbol is recovered from it
and the eight candidates are scored with byte-string operations over the whole symbol at once
(rows and columns joined into big integers: XOR to mask, shifts and ANDs to find runs and blocks), by the rules of
ISO/IEC 18004:2015 7.8.3 exactly as segno applies them, so the mask chosen, and every module, is
what `segno.make` gives (tests/test_ticket.py checks this against segno itself). Pure; no
drawing (signage.ticket scales the modules into the picture).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import segno
from segno import consts, encoder

_SEP = 0x10  # between joined rows: neither a module value nor a sum of two (0-3)
_N3 = bytes((1, 0, 1, 1, 1, 0, 1))  # the finder-like 1:1:3:1:1


def qr_matrix(data: str, error: str) -> tuple[bytes, ...]:
    """The rows of the QR code (model 2, no micro, error level `error`, no error boost) that
    segno makes for `data`, without the quiet zone: one byte a module, 1 = dark."""
    code = segno.make(data, error=error, micro=False, boost_error=False, mask=0)
    width = len(code.matrix)
    reserved, patterns = _geometry(width)
    # Mask 0 off again and the format / version areas cleared: the symbol as the masks are scored.
    flat = int.from_bytes(_join(bytes(row) for row in code.matrix), "big") ^ patterns[0][0]
    unmasked = (flat & ~reserved).to_bytes(width * (width + 1), "big")
    rows = [unmasked[i * (width + 1) : i * (width + 1) + width] for i in range(width)]
    cols = int.from_bytes(_join(bytes(col) for col in zip(*rows, strict=True)), "big")
    flat = int.from_bytes(unmasked, "big")
    best, best_score = 0, -1
    for mask, (by_rows, by_cols) in enumerate(patterns):
        score = _penalty(flat ^ by_rows, cols ^ by_cols, width)
        if best_score < 0 or score < best_score:  # the first of equal scores, as segno
            best, best_score = mask, score
    chosen = (flat ^ patterns[best][0]).to_bytes(width * (width + 1), "big")
    matrix = tuple(bytearray(chosen[i * (width + 1) : i * (width + 1) + width]) for i in range(width))
    version = int(code.version)
    encoder.add_format_info(matrix, version, consts.ERROR_MAPPING[error.upper()], best)  # type: ignore[no-untyped-call]
    encoder.add_version_info(matrix, version)  # type: ignore[no-untyped-call]
    return tuple(bytes(row) for row in matrix)


def _join(rows: Iterable[bytes], sep: int = _SEP) -> bytes:
    """The rows one after another, each followed by `sep`."""
    end = bytes((sep,))
    return b"".join(row + end for row in rows)


@functools.cache
def _geometry(width: int) -> tuple[int, tuple[tuple[int, int], ...]]:
    """For a symbol `width` modules wide, as joined rows (one byte a module): the format and
    version areas, and each mask's XOR over the data region, by rows and by columns."""
    function = encoder.make_matrix(width, width)  # type: ignore[no-untyped-call]
    encoder.add_finder_patterns(function, width, width)  # type: ignore[no-untyped-call]
    encoder.add_alignment_patterns(function, width, width)  # type: ignore[no-untyped-call]
    function[-8][8] = 0x1  # the dark module is not data
    reserved_map = encoder.make_matrix(width, width)  # type: ignore[no-untyped-call]
    bare = encoder.make_matrix(width, width, reserve_regions=False)  # type: ignore[no-untyped-call]

    def flat(cell: Callable[[int, int], bool]) -> int:
        rows = [bytes(0xFF if cell(i, j) else 0 for j in range(width)) for i in range(width)]
        return int.from_bytes(_join(rows, 0), "big")

    reserved = flat(lambda i, j: bool(reserved_map[i][j] == 0 and bare[i][j] == 0x2))
    patterns = []
    masks: list[Callable[[int, int], bool]] = encoder.get_data_mask_functions(False)  # type: ignore[no-untyped-call]
    for mask in masks:

        def data(i: int, j: int, mask: Callable[[int, int], bool] = mask) -> bool:
            return bool(function[i][j] > 0x1 and mask(i, j))

        def transposed(i: int, j: int, data: Callable[[int, int], bool] = data) -> bool:
            return data(j, i)

        by_rows, by_cols = flat(data), flat(transposed)
        patterns.append((by_rows & _ones(width), by_cols & _ones(width)))
    return reserved, tuple(patterns)


@functools.cache
def _ones(width: int) -> int:
    """0x01 in every module byte of a joined symbol (0 in the separators)."""
    return int.from_bytes(_join([bytes((1,)) * width] * width, 0), "big")


def _penalty(rows: int, cols: int, width: int) -> int:
    """The penalty score N1 + N2 + N3 + N4 of one masked symbol, given as joined rows and
    joined columns (ISO/IEC 18004:2015 Table 11, with segno's reading of N3). A module is a
    byte, so shifting by 8 bits moves to the next module, by 8 × (width + 1) to the next row; the
    separators are neither dark nor light, so no run or block crosses a row's end."""
    ones = _ones(width)
    dark, light = rows & ones, ~rows & ones
    n1 = 0
    for same in (dark, light, cols & ones, ~cols & ones):
        five = same & same >> 8 & same >> 16 & same >> 24 & same >> 32  # the last of five alike
        # A run of n ≥ 5 scores n - 2: it has n - 4 fives, and its first five scores 2 more.
        n1 += five.bit_count() + 2 * (five & ~(five >> 8)).bit_count()
    line = 8 * (width + 1)
    n2 = 0
    for same in (dark, light):
        pair = same & same >> line  # alike with the module above
        n2 += 3 * (pair & pair >> 8).bit_count()  # and with the pair to the left: a 2×2 block
    size = width * (width + 1)
    n3 = _n3(rows.to_bytes(size, "big"), width) + _n3(cols.to_bytes(size, "big"), width)
    n4 = 10 * int(abs(float(dark.bit_count()) / (width**2) * 100 - 50) / 5)
    return n1 + n2 + n3 + n4


def _n3(joined: bytes, width: int) -> int:
    """segno's N3 over each joined line: a 1:1:3:1:1 at a line's end, or with four light modules
    (or the line's end) on one side, scores 40; the search resumes past it, or 4 on."""
    count = 0
    line = width + 1
    pos = joined.find(_N3)
    while pos != -1:
        start = pos - pos % line
        seq = joined[start : start + width]
        idx = pos - start
        offset = idx + 7
        if idx in (0, width - 7) or not any(seq[max(idx - 4, 0) : idx]) or not any(seq[offset : offset + 4]):
            count += 40
        else:
            offset = idx + 4
        pos = joined.find(_N3, start + offset)
    return count
