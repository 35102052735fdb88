# ruff: noqa: E402, UP031, RUF005 -- runs under MicroPython: imports follow the sys.path setup; %-format; no * in displays
"""A running board's heap, under the MicroPython Unix port (bench/devices.py):

    cd BOARD_DIR && COUNTERFLOOR_FLASH=. micropython -X heapsize=192K PATH/bench/mp_heap.py . KIND

BOARD_DIR holds the firmware as it is deployed (modules as .mpy, main.py as source) and is the
board's flash; run from it, a module's path (its __file__, an interned string) is as short as
on a Pico. (Another directory works in place of `.`; a long path adds its length to each module.)

Runs the board's own main.py (imported from BOARD_DIR, from source as on the Pico) with `--kind
KIND --addr 5 --run-ms 1000` (and BOARD_DIR's config.json, if any, for the rest: its display part):
slots.start() boots it, main.py drops the loader, and device.run() serves the bus. The bus is this
script's: board.bus_uart is replaced, before the board boots, by a UART that plays the gateway — it
hands the board POLL, IDENTIFY, POLL and a command of the kind one at a time, each once the one
before is answered (expecting HELLO, HELLO, ACK, ACK), so that what the device builds on first use
exists — to a dispenser also its own Japanese words (SHOW_TEXT), to a call display a RECENT as full
as one frame carries (7 calls to 10-byte counter names: what a busy day leaves listed) — and, once
the board's loop has run on for 20 turns, measures the heap from inside it. Prints `key=value`
lines: heap_codec (protocol imported), heap_device (the running board, after gc.collect(), less
heap_probe: this UART's own objects, which a board does not have), heap_probe, and the qstr count.
Bytes above the empty interpreter. Kept small and free of test strings, and its names are ones the
firmware interns anyway, on purpose: every name in a script is interned when it is compiled, and
interned names are heap that grows in steps (qstr pools that double, docs/firmware.md "Memory"), so
a test script's own names would be counted against the device.
"""

import gc
import sys

gc.collect()
start = gc.mem_alloc()
sys.path.insert(0, sys.argv[1])
kind = sys.argv[2]


def used():
    gc.collect()
    return gc.mem_alloc() - start


import protocol as p

print("heap_codec=%d" % used())
import board

if kind == "dispenser":  # and words in Japanese on its panel (the board's own)
    import dispenser

    frame = [p.Lamps(5, 4, 1), p.ShowText(5, 5, list(dispenser.BUSY))]
elif kind == "counter_pad":
    frame = [p.DisplayNumber(5, 4, "    ")]
else:  # and its largest state: a full list of recent calls (119 payload bytes)
    frame = [p.Call(5, 4, p.CALL_NEW, "1", "1")]
    frame.append(p.Recent(5, 5, [("C-%03d" % (100 + i), "%d番窓口" % (i + 1)) for i in range(7)]))


class Gateway:
    """The board's bus UART, playing the gateway (see above)."""

    def __init__(self, requests):
        self.requests = [r.to_bytes() for r in requests]
        self.decoder = p.Decoder()
        self.lines = ""  # the replies' names
        self.waiting = False
        self.turns = 0

    def read(self, n=-1):
        if self.waiting:
            return None
        if self.requests:
            self.waiting = True
            return self.requests.pop(0)
        self.turns += 1
        if self.turns == 20:  # the board's loop has run on: measured from inside it
            out[1] = used()
        return None

    def write(self, data):
        for f in self.decoder.feed(data):
            self.lines += f.NAME + " "
        self.waiting = False
        return len(data)

    def deinit(self):
        pass


gw = Gateway([p.Poll(5, 1, 0), p.Identify(5, 2), p.Poll(5, 3, 0)] + frame)
board.bus_uart = lambda path=None: gw
frame = "HELLO HELLO " + "ACK " * (len(frame) + 1)  # the replies expected
out = [0, 0]  # this script's objects (its bus), the heap measured inside the board's loop
sys.argv[1:] = ["--kind", kind, "--addr", "5", "--run-ms", "1000"]
import main  # the board, running until --run-ms is over

if gw.lines != frame or not out[1]:
    raise SystemExit("unexpected replies (not HELLO, HELLO, then ACKs): " + gw.lines)
# What of the measured heap was this script's: its bus object, its class and the strings it
# keeps, freed now to see their size (the message types it made, the board needs anyway).
out[0] = used()
main.dev.uart = gw = board.bus_uart = Gateway = frame = None
out[0] -= used()
print("heap_device=%d" % (out[1] - out[0]))
print("heap_probe=%d" % out[0])
try:
    import micropython

    micropython.qstr_info()
except (ImportError, AttributeError):
    pass
