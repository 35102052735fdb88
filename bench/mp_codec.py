# ruff: noqa: UP031 -- runs under MicroPython too: %-format, no typing
"""Frame codec throughput, run by bench/devices.py under CPython and under the MicroPython Unix
port alike (the codec is written in the subset both run, so is this):

    python bench/mp_codec.py FIRMWARE_DIR ROUNDS
    micropython -X heapsize=192K bench/mp_codec.py FIRMWARE_DIR ROUNDS

Times, per interpreter, encoding (Frame.to_bytes: header, CRC-16, COBS, delimiters) and decoding
(Decoder.feed of each frame's wire bytes: COBS, CRC check, field parsing and checks) of a mix of
the frames a bus cycle carries, against a baseline in the same run: COBS alone (cobs_encode /
cobs_decode) of the same raw frames. Prints `key=value` lines: frames per second and the mix.
"""

import sys

sys.path.insert(0, sys.argv[1])
import protocol as p

try:
    from time import ticks_diff, ticks_us  # MicroPython

    def now_us():
        return ticks_us()

    def since_us(t0):
        return ticks_diff(ticks_us(), t0)

    IMPL = "micropython"
except ImportError:
    from time import perf_counter_ns

    def now_us():
        return perf_counter_ns() // 1000

    def since_us(t0):
        return perf_counter_ns() // 1000 - t0

    IMPL = "cpython"

ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 200

FRAMES = [
    p.Poll(16, 8, 3),
    p.Ack(16, 8),
    p.Key(5, 9, 4, p.KEY_CALL_NEXT, 0),
    p.Call(16, 10, p.CALL_NEW, "B023", "12番窓口"),
    p.Call(16, 11, p.CALL_NEW, "ABCD1234", "0123456789abcdef"),  # the longest CALL
    p.Recent(16, 12, [("B023", "3"), ("A104", "1"), ("C007", "5")]),
    p.DisplayNumber(5, 13, "B023"),
    p.StatusLamp(5, 14, p.LAMP_GREEN, 0),
    p.Hello(16, 15, 2, p.KIND_CALL_DISPLAY, (1, 0, 3), 7, p.RESET_POWER_ON, 305419896, 0),
    p.ShowText(1, 16, ["本日の受付は終了しました", "Reception closed for today"]),
]
RAWS = [f.to_raw() for f in FRAMES]
WIRES = [f.to_bytes() for f in FRAMES]
CODED = [w[1:-1] for w in WIRES]
N = len(FRAMES) * ROUNDS


def encode():
    for _ in range(ROUNDS):
        for f in FRAMES:
            f.to_bytes()


def decode():
    dec = p.Decoder()
    n = 0
    for _ in range(ROUNDS):
        for w in WIRES:
            n += len(dec.feed(w))
    return n


def cobs_encode():
    enc = p.cobs_encode
    for _ in range(ROUNDS):
        for raw in RAWS:
            b"\x00" + enc(raw) + b"\x00"


def cobs_decode():
    dec = p.cobs_decode
    for _ in range(ROUNDS):
        for c in CODED:
            dec(c)


def rate(fn, repeats=5):
    """Frames per second: the best of `repeats` timed runs (the least disturbed)."""
    best = None
    for _ in range(repeats):
        t0 = now_us()
        fn()
        us = since_us(t0)
        if best is None or us < best:
            best = us
    return N * 1000000 // max(1, best)


if decode() != N:
    raise SystemExit("decoder lost frames")
# Interleaved so that a busy machine slows codec and baseline alike.
print("impl=%s" % IMPL)
print("frames=%d mix=%d wire_bytes=%d" % (N, len(FRAMES), sum(len(w) for w in WIRES)))
print("cobs_encode_fps=%d" % rate(cobs_encode))
print("encode_fps=%d" % rate(encode))
print("cobs_decode_fps=%d" % rate(cobs_decode))
print("decode_fps=%d" % rate(decode))
