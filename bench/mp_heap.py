# ruff: noqa: E402, UP031, RUF005 -- runs under MicroPython: imports follow the sys.path setup; %-format; no * in displays
"""A running board's heap, under the MicroPython Unix port (bench/devices.py):

    cd BOARD_DIR && COUNTERFLOOR_FLASH=. micropython -X heapsize=192K PATH/bench/mp_heap.py . KIND

BOARD_DIR holds the firmware as it is deployed (modules as .mpy, main.py as source) and is the
board's flash; run from it, a module's path (its __file__, an interned string) is as short as
on a Pico. (Another directory works in place of `.`; a long path adds its length to each module.)

Runs the board's own main.py (imported from BOARD_DIR, from source as on the Pico) with
`--kind KIND --addr 5 --run-ms 1000`: slots.start() boots it, main.py drops the loader, and
device.run() serves the in-memory bus under asyncio. Beside it runs one task of this script, the
gateway: it sends POLL, IDENTIFY, POLL and a command of the kind (expecting HELLO, HELLO, ACK,
ACK), so that what the device builds on first use exists — to a call display also a RECENT as
full as one frame carries (7 calls to 10-byte counter names: what a busy day leaves listed) —
then measures while the board's loop is running. Prints `key=value` lines: heap_codec (protocol
imported), heap_device (the running board, after gc.collect(), less heap_probe: the gateway
task's own objects, which a board does not have),
heap_probe, and the qstr count. Bytes above the empty interpreter. Kept small and free of test
strings, and its names are ones the firmware interns anyway, on purpose: every name in a script is
interned when it is compiled, and interned names are heap that grows in steps (qstr pools that
double, docs/firmware.md "Memory"), so a test script's own names would be counted against the
device.
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
import asyncio


async def exchange():
    """POLL, IDENTIFY, POLL and the kind's commands, each answered: True if the replies are HELLO,
    HELLO, then an ACK each."""
    uart = sys.modules["main"].dev.uart
    if kind == "dispenser":
        frame = [p.Lamps(5, 4, 1)]
    elif kind == "counter_pad":
        frame = [p.DisplayNumber(5, 4, "    ")]
    else:  # and its largest state: a full list of recent calls (119 payload bytes)
        frame = [p.Call(5, 4, p.CALL_NEW, "1", "1")]
        frame.append(p.Recent(5, 5, [("C-%03d" % (100 + i), "%d番窓口" % (i + 1)) for i in range(7)]))
    decoder = p.Decoder()
    lines = ""
    for request in [p.Poll(5, 1, 0), p.Identify(5, 2), p.Poll(5, 3, 0)] + frame:
        uart.inject(request.to_bytes())
        frames = []
        for _ in range(200):
            await asyncio.sleep_ms(1)  # the board's loop reads, answers and runs its checks
            frames = decoder.feed(uart.take())
            if frames:
                break
        lines += " ".join([f.NAME for f in frames]) + " "
    return lines == "HELLO HELLO " + "ACK " * (1 + len(frame))


async def gateway():
    out[1] = await exchange()
    # Measured after the board's loop has run on, from a frame the exchange never used: a stale
    # pointer to the exchange's garbage (the GC scans the stack conservatively) would count here.
    await asyncio.sleep_ms(20)
    out[2] = used()


out = [used(), False, 0]  # the gateway task's heap, replies as expected, the board's heap
asyncio.create_task(gateway())  # noqa: RUF006 -- the loop holds it until it ends
out[0] = used() - out[0]
sys.argv[1:] = ["--kind", kind, "--addr", "5", "--run-ms", "1000"]
import main  # noqa: F401 -- the board, running until --run-ms is over

if not out[1]:
    raise SystemExit("unexpected replies (not HELLO, HELLO, then ACKs)")
print("heap_device=%d" % (out[2] - out[0]))
print("heap_probe=%d" % out[0])
try:
    import micropython

    micropython.qstr_info()
except (ImportError, AttributeError):
    pass
