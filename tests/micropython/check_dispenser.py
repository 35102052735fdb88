# ruff: noqa: E402, UP031 -- MicroPython scripts: imports follow the sys.path setup; %-format
"""The dispenser under MicroPython: HELLO until IDENTIFY, LAMPS, SHOW_TEXT, presses as
BUTTON_PRESS events collected by POLL, duplicate suppression, offline after two silent poll
cycles (tickets unavailable, presses refused), OUT_OF_SERVICE, a full event queue.
    micropython -X heapsize=192K check_dispenser.py FIRMWARE_DIR"""

from fwcheck import Gateway, check, equal, finish, heap_used, setup

setup()
before = heap_used()
import protocol as p

print("heap_protocol=%d" % (heap_used() - before))
import board
from board_sim import FakeClock, MemoryUART
from dispenser import BUSY, BUSY_MS, UNAVAILABLE, Dispenser

clock = FakeClock(1000)
buttons = [board.FakePin("button%d" % i, 1) for i in range(4)]
lamps = [board.FakePin("lamp%d" % i) for i in range(4)]
uart = MemoryUART()
dev = Dispenser(3, uart, buttons, lamps, clock.now(), p.RESET_WATCHDOG)
print("heap_device=%d" % (heap_used() - before))
gw = Gateway(p, dev, clock)


def press(i, hold=100):
    buttons[i].drive(0)
    gw.step(hold)
    buttons[i].drive(1)
    gw.step(100)


# HELLO to every POLL until IDENTIFY; then ACK.
for _ in range(2):
    r = gw.poll()
    check(r.NAME == "HELLO" and r.kind == p.KIND_DISPENSER and r.reset_cause == p.RESET_WATCHDOG, "hello %r" % r)
    equal(r.caps, p.CAP_TEXT | p.CAP_LAMPS | p.CAP_FW_UPDATE, "caps")
r = gw.send(p.Identify)[0]
equal(r.NAME, "HELLO", "identify answered")
equal(gw.poll().NAME, "ACK", "poll after identify")

# LAMPS lights the offered services' buttons; a service without a button is out of range.
equal(gw.send(p.Lamps, 0b0101)[0].NAME, "ACK", "lamps ack")
equal([lamp.value() for lamp in lamps], [1, 0, 1, 0], "lamps lit")
r = gw.send(p.Lamps, 0b10001)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_OUT_OF_RANGE, "lamps out of range: %r" % r)
equal([lamp.value() for lamp in lamps], [1, 0, 1, 0], "lamps unchanged by a refused LAMPS")

# SHOW_TEXT
closed = ["本日の受付は終了しました", "Reception closed for today"]
equal(gw.send(p.ShowText, closed)[0].NAME, "ACK", "show text")
equal(dev.panel.lines, closed, "message shown")
ask = ["係員にお声がけください", "Please ask a staff member"]
gw.send(p.ShowText, ask)
equal(dev.panel.lines, ask, "message replaced")

# A press of a live button is an event, resent until acknowledged.
press(0)
equal(len(dev.events), 1, "one event per press")
r = gw.poll(0)
check(r.NAME == "BUTTON_PRESS" and r.ev == 1 and r.service == 0, "press reported %r" % r)
r = gw.poll(0)
check(r.NAME == "BUTTON_PRESS" and r.ev == 1, "resent until acknowledged")
equal(gw.poll(1).NAME, "ACK", "acknowledged")
# An unlit button is not live.
press(1)
equal(len(dev.events), 0, "unlit button makes no event")
press(2)
r = gw.poll(1)
check(r.NAME == "BUTTON_PRESS" and r.ev == 2 and r.service == 2, "second press %r" % r)
gw.poll(2)

# A retried request gets the same reply and is not acted on again.
r1, b1 = gw.send(p.ShowText, closed)
dev.panel.show(["marker"])
r2, b2 = gw.send(p.ShowText, closed, seq=gw.seq)
check(b1 == b2 and dev.dup.repeats == 1, "retry replayed")
equal(dev.panel.lines, ["marker"], "retry not acted on")
gw.send(p.ShowText, ask)

# Other devices' frames, garbage and replies are ignored; a frame after garbage is answered.
r, out = gw.raw(p.Poll(4, 1, 0).to_bytes())
equal(out, b"", "frame for another address")
r, out = gw.raw(b"\x13\x37garbage" + p.Poll(3, 99, 0).to_bytes())
equal(r.NAME, "ACK", "frame after garbage")
r = gw.send(p.DisplayNumber, "B023")[0]
check(r.NAME == "NAK" and r.reason == p.NAK_UNSUPPORTED, "display number unsupported %r" % r)

# Offline: polls every 300 ms make the cycle 300 ms; silent for two cycles -> out of service.
for _ in range(3):
    gw.step(300)
    gw.poll(2)
equal(dev.cycle_ms, 300, "poll cycle measured")
gw.step(590, 10)
check(not dev.offline, "still online within two cycles")
gw.step(20, 10)
check(dev.offline, "offline after two silent cycles")
equal(dev.panel.lines, list(UNAVAILABLE), "tickets unavailable shown")
equal([lamp.value() for lamp in lamps], [0, 0, 0, 0], "lamps off while offline")
press(0)
equal(len(dev.events), 0, "no event while offline")
r = gw.poll(2)
check(r.NAME == "ACK" and not dev.offline, "online again on the next poll")
equal(dev.panel.lines, ask, "message back")
equal([lamp.value() for lamp in lamps], [1, 0, 1, 0], "lamps back")

# OUT_OF_SERVICE from the gateway.
gw.send(p.OutOfService, 1)
press(0)
equal(len(dev.events), 0, "no event while out of service")
equal(dev.panel.lines, list(UNAVAILABLE), "out of service shown")
gw.send(p.OutOfService, 0)
equal(dev.panel.lines, ask, "back in service")

# A full queue refuses the press and says so for a while.
for _ in range(9):
    gw.poll(2)  # same ack: nothing is acknowledged, the queue fills
    press(2)
equal(len(dev.events), 8, "queue holds 8")
equal(dev.panel.lines, list(BUSY), "queue full shown")
gw.step(BUSY_MS, 50)
gw.poll(2)
equal(dev.panel.lines, ask, "queue-full notice ends")
equal(dev.refused >= 4, True, "refused presses counted")

dev.deinit()
equal([lamp.value() for lamp in lamps], [0, 0, 0, 0], "deinit turns lamps off")
print("dispenser checked")
finish()
