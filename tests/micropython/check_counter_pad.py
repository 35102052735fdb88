# ruff: noqa: E402, UP031, RUF005 -- MicroPython scripts: imports follow the sys.path setup; %-format
"""The counter pad under MicroPython: scripted bouncy key samples (bounce on press and release,
held keys, glitches shorter than the debounce) give exactly one KEY per press, also across the
ticks wrap; DISPLAY_NUMBER; STATUS_LAMP colours and blinking; no keys while offline.
    micropython -X heapsize=192K check_counter_pad.py FIRMWARE_DIR"""

import time

from fwcheck import Gateway, check, equal, finish, heap_used, setup

setup()
before = heap_used()
import protocol as p

print("heap_protocol=%d" % (heap_used() - before))
import board
from board_sim import FakeClock, MemoryUART
from button import Button
from counter_pad import KEYS, OFFLINE_TEXT, CounterPad

# Start 500 ms before the ticks counter wraps, so every debounce below straddles the wrap.
clock = FakeClock(time.ticks_add(0, -500))
keys = [board.FakePin("key%d" % k, 1) for k in KEYS]
red = board.FakePin("red")
green = board.FakePin("green")
uart = MemoryUART()
dev = CounterPad(7, uart, keys, red, green, clock.now(), p.RESET_POWER_ON, debounce_ms=20, transfer_to=4)
print("heap_device=%d" % (heap_used() - before))
gw = Gateway(p, dev, clock)
gw.send(p.Identify)


def play(pin, samples):
    """samples: (ms, level) pairs: hold `level` on the pin for `ms`, checking every ms."""
    for ms, level in samples:
        pin.drive(level)
        gw.step(ms)


BOUNCY_PRESS = [(1, 0), (1, 1), (2, 0), (1, 1), (1, 0), (3, 1), (1, 0)]
BOUNCY_RELEASE = [(1, 1), (2, 0), (1, 1), (1, 0), (2, 1)]


# The pure Button first: a press with bounce, held for 2 s, released with bounce -> one press.
pin = board.FakePin("b", 1)
b = Button(pin, 20)
t = time.ticks_add(0, -30)
n = 0
script = BOUNCY_PRESS + [(2000, 0)] + BOUNCY_RELEASE + [(100, 1)]
for ms, level in script:
    pin.drive(level)
    for _ in range(ms):
        t = time.ticks_add(t, 1)
        n += b._check(t)
equal(n, 1, "button: one press through bounce, hold and wrap")
check(not b._stable, "button: released")
pin.drive(0)
for _ in range(19):  # a 19 ms glitch is shorter than the 20 ms debounce
    t = time.ticks_add(t, 1)
    n += b._check(t)
pin.drive(1)
for _ in range(50):
    t = time.ticks_add(t, 1)
    n += b._check(t)
equal(n, 1, "button: a glitch shorter than the debounce is no press")
b.deinit()

# Each key through the pad: bouncy press, long hold, bouncy release.
for i in range(len(KEYS)):
    play(keys[i], BOUNCY_PRESS + [(1500, 0)] + BOUNCY_RELEASE + [(50, 1)])
    gw.poll(gw.tracker.ack)  # keeps the pad online; the event waits to be collected
got = [e[1:] for e in gw.collect()]
equal(got, [(1, 0), (2, 0), (3, 0), (4, 0), (5, 4), (6, 0)], "one KEY per key press, transfer carries its target")
check(time.ticks_diff(clock.now(), time.ticks_add(0, -500)) > 500, "the clock crossed the wrap")

# Two quick presses of call-next are two calls; one held press with bounce is one.
play(keys[0], BOUNCY_PRESS + [(60, 0)] + BOUNCY_RELEASE + [(60, 1)] + BOUNCY_PRESS + [(60, 0), (60, 1)])
equal(gw.collect(), [("KEY", 1, 0), ("KEY", 1, 0)], "two separate presses, two events")

# DISPLAY_NUMBER and STATUS_LAMP
equal(gw.send(p.DisplayNumber, "B023")[0].NAME, "ACK", "display number")
equal(dev.shown, "B023", "number shown")
gw.send(p.StatusLamp, p.LAMP_GREEN, 0)
equal((red.value(), green.value()), (0, 1), "green steady")
gw.send(p.StatusLamp, p.LAMP_AMBER, 1)
equal((red.value(), green.value()), (1, 1), "amber on")
gw.step(500)
equal((red.value(), green.value()), (0, 0), "amber blink off phase")
gw.step(500)
equal((red.value(), green.value()), (1, 1), "amber blink on phase")
gw.send(p.StatusLamp, p.LAMP_RED, 0)
gw.step(1200, 100)
gw.poll(gw.tracker.ack)
equal((red.value(), green.value()), (1, 0), "red steady")
r = gw.send(p.Lamps, 1)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_UNSUPPORTED, "LAMPS unsupported on a pad")

# Offline: no events, "----" shown; the number returns with the next poll.
gw.step(2100, 50)
check(dev.offline, "offline after silence")
equal(dev.shown, OFFLINE_TEXT, "offline shown")
play(keys[0], BOUNCY_PRESS + [(100, 0), (100, 1)])
equal(len(dev.events), 0, "no KEY while offline")
gw.poll(gw.tracker.ack)
equal(dev.shown, "B023", "number back when polled")

# HELLO names this boot's events for the gateway's journal: the boot number (slots.start sets
# it at boot) and the lap, how often ev went round 1..255 before the event the next POLL brings.
equal(gw.send(p.Identify)[0].boot, 0, "no boot number: 0, none")
dev.boot = 0x12345678
while dev.events._n < 254:
    check(dev.key(p.KEY_DONE, clock.now()), "a key")
    gw.collect()
dev.key(p.KEY_DONE, clock.now())  # ev 255
dev.key(p.KEY_DONE, clock.now())  # ev 1: the numbers went round
r = gw.send(p.Identify)[0]
equal((r.boot, r.lap), (0x12345678, 0), "HELLO: the boot number, and the lap of ev 255, waiting")
gw.tracker.reset()
equal(gw.poll(255).ev, 1, "ev 255 acknowledged, ev 1 next")
equal(gw.send(p.Identify)[0].lap, 1, "HELLO: the lap of ev 1, waiting")
gw.collect()
equal(gw.send(p.Identify)[0].lap, 1, "HELLO: none waiting, the lap of the next one numbered (ev 2)")

dev.deinit()
equal((red.value(), green.value()), (0, 0), "deinit turns the lamp off")
print("counter pad checked")
finish()
