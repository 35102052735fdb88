# ruff: noqa: E402, UP031 -- MicroPython script: imports follow the sys.path setup; %-format
"""The display drivers under MicroPython, each on a recording fake bus and given its content by the
real device as a board does (the call display and the counter pad light their parts from their own
_check, after the reply): a CALL and its blink, a recall, CLEAR, out of service, the closed words.
Prints what each bus carried, one scenario at a time, for tests/test_firmware_drivers.py to decode
with its own reading of the datasheets:
    SCENE name          a scenario starts
    spi HEX             MAX7219: one chip-select window (CS low, the bytes, CS high)
    i2c ADDR HEX        SSD1306: one writeto
    line HEX            SSD1306: a line of the panel's text (UTF-8)
    ref W H HEX         SSD1306: the frame render.py draws for the same panel (MONO_HLSB)
    pins EVENTS         TM1637: the CLK/DIO levels in order (c0 c1 d0 d1; r = DIO read)
    heap_NAME=N         the heap a driver holds once imported and set up, after gc
With $COUNTERFLOOR_FLASH holding the office's font16.bin, Japanese lines are drawn with it.
    micropython -X heapsize=192K check_drivers.py FIRMWARE_DIR"""

import binascii

from fwcheck import Gateway, check, equal, finish, heap_used, setup

setup()
import board
import protocol as p
from board_sim import FakeClock, MemoryUART


def hexs(b):
    return binascii.hexlify(b).decode()


class Spi:
    """machine.SPI's write(), recorded per chip-select window."""

    def __init__(self, cs):
        self.cs = cs

    def write(self, b):
        check(self.cs.low, "SPI write with CS high")
        print("spi " + hexs(b))


class Cs:
    low = False

    def value(self, v=None):
        if v is not None:
            self.low = not v


class I2c:
    def writeto(self, addr, b):
        print("i2c %d %s" % (addr, hexs(b)))


class LinePin:
    """One of the TM1637's open-drain lines; DIO reads 0 (the chip's ACK) unless `ack` is False."""

    log = []  # noqa: RUF012 -- shared by CLK and DIO, in order
    ack = True

    def __init__(self, name):
        self.name = name

    def value(self, v=None):
        if v is None:
            LinePin.log.append("r")
            return 0 if LinePin.ack else 1
        LinePin.log.append(self.name + ("1" if v else "0"))


def scene(name):
    print("SCENE " + name)


# --- Heap each driver holds (module, its font, the object and its buffers), on fake buses.
before = heap_used()
from drv_max7219 import Max7219

cs = Cs()
m = Max7219(Spi(cs), cs, 1, 5)
print("heap_max7219=%d" % (heap_used() - before))
before = heap_used()
from drv_ssd1306 import Ssd1306

oled = Ssd1306(I2c())
print("heap_ssd1306=%d" % (heap_used() - before))
before = heap_used()
from drv_tm1637 import Tm1637

tm = Tm1637(LinePin("c"), LinePin("d"))
print("heap_tm1637=%d" % (heap_used() - before))

# --- MAX7219: the call display lights it itself (its _check, after each reply), as on a board.
from call_display import CallDisplay

clock = FakeClock(1000)


def settle():
    """The device's loop turn after a reply: where it lights its display."""
    dev._check(clock.now())


def identified(device):
    """`device` identified by a gateway, as after its boot; returns that gateway."""
    g = Gateway(p, device, clock)
    g.send(p.Identify)
    device._check(clock.now())
    return g


scene("max_init")
cs = Cs()
m = Max7219(Spi(cs), cs, 1, 5)
dev = CallDisplay(9, MemoryUART(), board.FakeChime(), clock.now(), p.RESET_POWER_ON, None, m, True)
gw = identified(dev)
scene("max_call")
gw.send(p.Call, p.CALL_NEW, "A-023", "5番窓口")
settle()
for name, ms in (("max_call_dark", 600), ("max_call_lit", 500), ("max_call_steady", 6000)):
    scene(name)
    gw.step(ms, 100)
scene("max_recall")
gw.send(p.Call, p.CALL_RECALL, "B105", "12")
gw.step(600, 100)  # a recall does not blink: still lit
scene("max_blank")
gw.send(p.Clear)
settle()
scene("max_out_of_service")
gw.send(p.OutOfService, 1)
settle()
scene("max_back_in_service")
gw.send(p.OutOfService, 0)
settle()
scene("max_closed")  # the gateway's words with no call up: the English line, if the digits hold it
gw.send(p.ShowText, ["本日の受付は終了しました", "Closed"])
settle()
scene("max_long_words")  # words the digits cannot hold: blank, not a cut word
gw.send(p.ShowText, ["本日は混雑しています", "Busy today"])
settle()
scene("max_chain_init")
cs = Cs()
m2 = Max7219(Spi(cs), cs, 2, 8)
scene("max_chain_call")
m2.show("C-100", "12")
scene("max_dim")
m2.intensity(3)

# --- SSD1306: the call display's panel (128x64 on this glass), the dispenser's panel; each device
# draws its own, and the frame render.py drew for it is printed beside ("ref").
from dispenser import Dispenser
from display import TextPanel


def ref(panel):
    """The panel's lines (UTF-8 hex) and the frame render.py draws for them."""
    for line in panel.lines:
        print("line " + hexs(line.encode()))
    print("dark %d" % panel.dark)
    buf = memoryview(panel._buf) if panel._fb is not None and panel._buf is not None else None
    if buf is None:  # drawn in the driver's own frame (MONO_VLSB): draw it apart, the same way
        r = TextPanel(panel.width, panel.height)
        r.show(panel.lines, panel.dark)
        r.visible = panel.visible
        r.render()
        buf = memoryview(r._buf)
    print("ref %d %d " % (panel.width, panel.height), end="")
    for i in range(0, len(buf), 256):  # in pieces: a 8 KB hex string at once may not fit
        print(hexs(buf[i : i + 256]), end="")
    print()


scene("oled_init")
oled = Ssd1306(I2c())
dev = CallDisplay(9, MemoryUART(), board.FakeChime(), clock.now(), p.RESET_POWER_ON, None, oled, False)
equal((dev.panel.width, dev.panel.height), (128, 64), "the call display's panel is the glass's size")
gw = identified(dev)
scene("oled_call")
gw.send(p.Call, p.CALL_NEW, "A-023", "5番窓口")
settle()
ref(dev.panel)
scene("oled_call_dark")
gw.step(600, 100)
ref(dev.panel)
scene("oled_call_lit")
gw.step(500, 100)
ref(dev.panel)
scene("oled_second_call")
gw.step(6000, 500)
gw.send(p.Call, p.CALL_NEW, "B-105", "12番窓口")
settle()
ref(dev.panel)
scene("oled_second_call_dark")  # the call line blank, the list under it where it was
gw.step(600, 100)
ref(dev.panel)
scene("oled_blank")
gw.send(p.Clear)
settle()
ref(dev.panel)
scene("oled_out_of_service")
gw.send(p.OutOfService, 1)
settle()
ref(dev.panel)
equal(dev.panel._fb, oled.fb, "drawn in the driver's own frame (no second 1 KB buffer)")

scene("oled_dispenser_init")
oled = Ssd1306(I2c())
pins = [board.FakePin("b", 1) for _ in range(4)], [board.FakePin("l") for _ in range(4)]
dev = Dispenser(4, MemoryUART(), pins[0], pins[1], clock.now(), p.RESET_POWER_ON, 30, oled)
gw = identified(dev)
scene("oled_dispenser_closed")
gw.send(p.ShowText, ["本日の受付は終了しました", "Closed for today"])
settle()
ref(dev.panel)
scene("oled_dispenser_unavailable")
gw.step(2500, 50)  # the gateway goes silent
check(dev.offline, "dispenser offline")
ref(dev.panel)
scene("oled_off")
oled.power(False)

# Every configured Japanese message (strings.txt beside the font, one a line, when the test puts
# it there) on the dispenser's panel, through render.py and the driver as any SHOW_TEXT is drawn.
try:
    with open(board.path_join(board.flash_dir(), "strings.txt")) as f:
        strings = f.read().split("\n")
except OSError:
    strings = []
scene("message_init")
oled = Ssd1306(I2c())
panel = TextPanel()
for k in range(len(strings)):
    if strings[k]:
        scene("message_%d" % k)
        panel.show([strings[k]])
        oled.show(panel)
        print("line " + hexs(strings[k].encode()))

# --- TM1637: the counter pad sends its number itself (its _check), offline "----", brightness,
# a missing chip.
from counter_pad import CounterPad

LinePin.log = []
tm = Tm1637(LinePin("c"), LinePin("d"))
keys = [board.FakePin("k", 1) for _ in range(6)]
pad = CounterPad(2, MemoryUART(), keys, board.FakePin("r"), board.FakePin("g"), clock.now(), 0, 30, 0, tm)
pgw = Gateway(p, pad, clock)
pgw.send(p.Identify)


def tm_scene(name):
    scene(name)
    LinePin.log = []
    pad._check(clock.now())
    print("pins " + " ".join(LinePin.log))


tm_scene("tm_first")  # its first turn: the blank it starts with
pgw.send(p.DisplayNumber, "B023")
tm_scene("tm_number")
tm_scene("tm_unchanged")  # nothing sent when nothing changed
pgw.step(2500, 50)  # the gateway goes silent: the pad shows "----"
check(pad.offline, "pad offline")
pgw.send(p.Poll, 0)  # back: its number again
tm_scene("tm_back")
pad.offline = True  # silent again, shown at the next turn
pad._refresh(clock.now())
tm_scene("tm_out_of_service")
pgw.send(p.DisplayNumber, "CLSd")
tm_scene("tm_closed")
scene("tm_dim")
LinePin.log = []
tm.brightness(2)
print("pins " + " ".join(LinePin.log))
LinePin.ack = False
scene("tm_missing")
LinePin.log = []
tm.show("1")
equal(tm.nacks, 7, "a missing chip: none of the 7 bytes acknowledged")
LinePin.ack = True

print("drivers checked")
finish()
