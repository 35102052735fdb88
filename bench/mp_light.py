# ruff: noqa: E402, UP031 -- runs under MicroPython: imports follow the sys.path setup; %-format
"""Frame to light on the call display, under the MicroPython Unix port (bench/devices.py):

    COUNTERFLOOR_FLASH=DIR micropython -X heapsize=192K PATH/bench/mp_light.py MODULE_DIR PART ROUNDS

Builds the call display as a board does (wiring.make from a config with `display` PART: max7219,
ssd1306 or none), on an in-memory bus, its display part on the Unix port's NullBus (which counts
the bytes), the office's font in DIR when it is there. Then, ROUNDS times, a CALL NEW with a new
ticket and counter ("A-001" to "5番窓口") is timed from its bytes handed to the device to the
last byte its display part was sent: decoded, handled (content saved to flash), the ACK written,
then lit by the device's own _check, as the board's loop does. Prints key=value lines: p50_us,
p99_us, max_us, ack_p50_us (to the ACK alone), bytes (display bytes per call, the last round)."""

import sys
import time

sys.path.insert(0, sys.argv[1])
part = sys.argv[2]
rounds = int(sys.argv[3])

import call_display
import protocol as p
import wiring
from board_sim import MemoryUART

uart = MemoryUART()
dev = wiring.make("call_display", call_display, {"kind": "call_display", "addr": 5, "display": part}, uart, 0, 1)
bus = None
if dev.screen is not None:
    bus = dev.screen.spi if dev.digits else dev.screen.i2c
uart.inject(p.Identify(5, 1).to_bytes())
dev.feed(uart.read(), 0)
uart.take()
times = []
acks = []
sent = 0
now = 0
for i in range(rounds):
    frame = p.Call(5, (i + 2) & 0xFF, p.CALL_NEW, "A-%03d" % (i % 1000), "%d番窓口" % (i % 12 + 1)).to_bytes()
    now += 7000  # the last call's blink is over: a call lands on a steady display
    dev._check(now)
    before = bus.sent if bus is not None else 0
    t0 = time.ticks_us()
    dev.feed(frame, now)
    t1 = time.ticks_us()
    dev._check(now)
    t2 = time.ticks_us()
    if uart.take()[2:3] == b"":
        raise SystemExit("no ACK")
    acks.append(time.ticks_diff(t1, t0))
    times.append(time.ticks_diff(t2, t0))
    sent = (bus.sent if bus is not None else 0) - before
times.sort()
acks.sort()
print("p50_us=%d" % times[len(times) // 2])
print("p99_us=%d" % times[min(len(times) - 1, len(times) * 99 // 100)])
print("max_us=%d" % times[-1])
print("ack_p50_us=%d" % acks[len(acks) // 2])
print("bytes=%d" % sent)
