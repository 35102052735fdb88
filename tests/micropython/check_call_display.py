# ruff: noqa: E402, UP031 -- MicroPython scripts: imports follow the sys.path setup; %-format
"""The call display under MicroPython: CALL drawn as "B023 → 5" and blinking after a NEW call,
chimes played after the reply (never twice for a retried CALL), RECENT, CHIME, SHOW_TEXT, CLEAR;
content kept through gateway silence and a re-IDENTIFY, and restored from flash after a reboot.
    micropython -X heapsize=192K check_call_display.py FIRMWARE_DIR TMP_DIR"""

from fwcheck import Gateway, check, equal, finish, heap_used, setup

tmp = setup()
before = heap_used()
import protocol as p

print("heap_protocol=%d" % (heap_used() - before))
import board
from board_sim import FakeClock, MemoryUART
from call_display import BLINK_FOR_MS, CallDisplay

state = tmp + "/display_state.json"
clock = FakeClock(5000)
chime = board.FakeChime()
uart = MemoryUART()
dev = CallDisplay(9, uart, chime, clock.now(), p.RESET_POWER_ON, state)
print("heap_device=%d" % (heap_used() - before))
gw = Gateway(p, dev, clock)
r = gw.poll()
check(r.NAME == "HELLO" and r.caps == p.CAP_TEXT | p.CAP_CHIME | p.CAP_RECENT | p.CAP_FW_UPDATE, "hello %r" % r)
gw.send(p.Identify)
equal(dev.panel.lines, [], "blank at first")

# A NEW call: shown, chimed once after the reply, blinking for BLINK_FOR_MS.
r, b1 = gw.send(p.Call, p.CALL_NEW, "B023", "5")
equal(r.NAME, "ACK", "call ack")
equal(chime.played, [], "chime waits until after the reply")
gw.step(1)
equal(chime.played, [(p.TONE_CALL, 1)], "call chime")
equal((dev.panel.lines, dev.panel.dark), (["B023 → 5"], 0), "call shown")
gw.step(500)
equal((dev.panel.lines, dev.panel.dark), (["B023 → 5"], 1), "blink dark phase: the call line blank")
gw.step(500)
equal((dev.panel.lines, dev.panel.dark), (["B023 → 5"], 0), "blink lit phase")
r, b2 = gw.send(p.Call, p.CALL_NEW, "B023", "5", seq=gw.seq)
gw.step(1)
check(b1 == b2 and chime.played == [(p.TONE_CALL, 1)], "a retried CALL is not chimed again")
gw.step(BLINK_FOR_MS, 100)
check(dev._blink_since is None, "blinking ends")
equal((dev.panel.lines, dev.panel.dark), (["B023 → 5"], 0), "steady after the blink")
saw_dark = False
for _ in range(20):
    gw.step(100)
    saw_dark = saw_dark or dev.panel.dark
check(not saw_dark, "no blink after BLINK_FOR_MS")

# RECENT resyncs: its first entry becomes the current call, quietly (no chime, no blink), and
# is listed once; an empty RECENT empties the list and keeps the call.
n = len(chime.played)
gw.send(p.Recent, [("C007", "2"), ("B023", "5")])
gw.step(1)
equal(len(chime.played), n, "RECENT does not chime")
check(dev._blink_since is None, "RECENT does not blink")
equal(dev.panel.lines, ["C007 → 2", "B023 → 5"], "RECENT's first entry is the current call, listed once")
gw.send(p.Recent, [])
equal(dev.panel.lines, ["C007 → 2"], "an empty RECENT keeps the call")

# RECALL: recall chime, no blink. RECENT, CHIME, SHOW_TEXT.
gw.send(p.Call, p.CALL_RECALL, "A101", "12番窓口")
gw.step(1)
equal(chime.played[-1], (p.TONE_RECALL, 1), "recall chime")
check(dev._blink_since is None, "recall does not blink")
gw.send(p.Recent, [("A101", "12番窓口"), ("B022", "3"), ("A100", "12番窓口")])  # the recall first
gw.send(p.Chime, p.TONE_ATTENTION, 3)
gw.send(p.ShowText, ["お呼び出し中", "Now calling"])
gw.step(1)
equal(chime.played[-1], (p.TONE_ATTENTION, 3), "chime")
shown = ["A101 → 12番窓口", "B022 → 3", "A100 → 12番窓口", "お呼び出し中", "Now calling"]
equal(dev.panel.lines, shown, "call, recent and message")
fb = dev.panel.render()
check(fb is None or any(dev.panel._buf), "rendered into a framebuffer")

# The gateway goes silent, then restarts (IDENTIFY): nothing shown changes.
gw.step(5000, 100)
check(dev.offline, "offline after silence")
equal(dev.panel.lines, shown, "content kept while the gateway is silent")
equal(gw.send(p.Identify)[0].NAME, "HELLO", "re-identify")
check(not dev.offline, "online again")
equal(dev.panel.lines, shown, "content kept across a gateway restart")


def reboot():
    """The call display as a board builds it at boot: made, then its saved content restored."""
    import wiring

    made = CallDisplay(9, MemoryUART(), board.FakeChime(), clock.now(), p.RESET_POWER_ON, state)
    return wiring.restore(made, clock.now())


# The display reboots: its content comes back from flash (wiring.restore, at boot).
dev.deinit()
dev = reboot()
gw = Gateway(p, dev, clock)
equal(dev.panel.lines, shown, "content restored after a reboot")
equal(gw.poll().NAME, "HELLO", "a rebooted display says HELLO")

# CLEAR blanks the call and the list (the message stays), and that is saved too.
gw.send(p.Identify)
equal(gw.send(p.Clear)[0].NAME, "ACK", "clear ack")
equal(dev.panel.lines, ["お呼び出し中", "Now calling"], "cleared")
gw.send(p.ShowText, [])
equal(dev.panel.lines, [], "blank")
dev.deinit()
dev = reboot()
equal(dev.panel.lines, [], "a cleared display stays clear after a reboot")
dev.deinit()

# A damaged state file is ignored, not trusted.
for bad in ('{"call": ["B023\\n", "5"]}', "not json", '{"recent": [["B023"]]}'):
    with open(state, "w") as f:
        f.write(bad)
    dev = reboot()
    equal(dev.panel.lines, [], "bad saved content ignored: " + bad)
    dev.deinit()

# Commands for other kinds are refused.
dev = CallDisplay(9, MemoryUART(), board.FakeChime(), clock.now(), p.RESET_POWER_ON, None)
gw = Gateway(p, dev, clock)
r = gw.send(p.DisplayNumber, "B023")[0]
check(r.NAME == "NAK" and r.reason == p.NAK_UNSUPPORTED, "display number unsupported %r" % r)
dev.deinit()
print("call display checked")
finish()
