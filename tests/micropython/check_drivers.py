# ruff: noqa: E402, UP031 -- MicroPython script: imports follow the sys.path setup; %-format
"""The display drivers under MicroPython, each on a recording fake bus, driven by the real devices'
content (a CALL and its blink, a recall, CLEAR, out of service, the closed words). Prints what each
bus carried, one scenario at a time, for tests/test_firmware_drivers.py to decode with its own
reading of the datasheets:
    SCENE name          a scenario starts
    spi HEX             MAX7219: one chip-select window (CS low, the bytes, CS high)
    i2c ADDR HEX        SSD1306: one writeto
    ref HEX             SSD1306: the frame render.py drew for the same panel (MONO_HLSB)
    pins EVENTS         TM1637: the CLK/DIO levels in order (c0 c1 d0 d1; r = DIO read)
    heap_NAME=N         the heap a driver holds once imported and set up, after gc
    time_NAME_us=N bytes=N   one show() on this port, and the bytes it put on the bus
    micropython -X heapsize=192K check_drivers.py FIRMWARE_DIR"""

import binascii

from fwcheck import Gateway, check, equal, finish, heap_used, setup

setup()
import board
import protocol as p
from board_sim import FakeClock


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

# --- MAX7219, from the call display's own content (what the wiring will do).
from call_display import CallDisplay

clock = FakeClock(1000)
dev = CallDisplay(9, board.MemoryUART(), board.FakeChime(), clock.now(), p.RESET_POWER_ON)
gw = Gateway(p, dev, clock)
gw.send(p.Identify)


def to_digits(now):
    """The call display's state onto the digits: its call line blank = a blink's dark phase."""
    if dev.call is None:
        m.blank()
        m.light(True)
        return
    if dev.lines(now)[0]:
        m.show(dev.call[0], dev.call[1])
        m.light(True)
    else:
        m.light(False)


scene("max_init")
cs = Cs()
m = Max7219(Spi(cs), cs, 1, 5)
gw.send(p.Call, p.CALL_NEW, "A-023", "5番窓口")
for name, ms in (("max_call", 0), ("max_call_dark", 600), ("max_call_lit", 500), ("max_call_steady", 6000)):
    gw.step(ms, 100)
    scene(name)
    to_digits(clock.now())
gw.send(p.Call, p.CALL_RECALL, "B105", "12")
gw.step(600, 100)  # a recall does not blink: still lit
scene("max_recall")
to_digits(clock.now())
gw.send(p.Clear)
scene("max_blank")
to_digits(clock.now())
scene("max_out_of_service")
m.text("----")
scene("max_closed")
m.text("CLOSEd")
scene("max_chain_init")
cs = Cs()
m2 = Max7219(Spi(cs), cs, 2, 8)
scene("max_chain_call")
m2.show("C-100", "12")
scene("max_dim")
m2.intensity(3)

# --- SSD1306: the call display's panel (its top left), the dispenser's panel.
from dispenser import UNAVAILABLE
from display import TextPanel


def oled_scene(name, panel):
    scene(name)
    oled.show(panel)
    ref = TextPanel(panel.width, panel.height)  # drawn apart, by the same render.py
    ref.show(panel.lines)
    ref.visible = panel.visible
    buf = memoryview(ref._buf) if ref.render() else b""
    print("ref %d %d " % (panel.width, panel.height), end="")
    for i in range(0, len(buf), 256):  # in pieces: a 8 KB hex string at once may not fit
        print(hexs(buf[i : i + 256]), end="")
    print()
    ref.deinit()


scene("oled_init")
oled = Ssd1306(I2c())
gw.send(p.Call, p.CALL_NEW, "A-023", "5")
oled_scene("oled_call", dev.panel)
gw.step(600, 100)
oled_scene("oled_call_dark", dev.panel)
gw.send(p.Clear)
gw.step(100)
oled_scene("oled_blank", dev.panel)
panel = TextPanel()
panel.show(UNAVAILABLE)
oled_scene("oled_out_of_service", panel)
panel.show(("ただいま閉庁中", "Closed now"))
oled_scene("oled_closed", panel)
panel.show(("A-023", "Window 5"))
oled_scene("oled_dispenser", panel)
scene("oled_off")
oled.power(False)

# --- TM1637: the counter pad's number, its offline "----", brightness, a missing chip.
from counter_pad import CounterPad

pins = [board.FakePin("k", 1) for _ in range(6)]
pad = CounterPad(2, board.MemoryUART(), pins, board.FakePin("r"), board.FakePin("g"), clock.now())
pgw = Gateway(p, pad, clock)
pgw.send(p.Identify)


def tm_scene(name, text):
    scene(name)
    LinePin.log = []
    tm.show(text)
    print("pins " + " ".join(LinePin.log))


pgw.send(p.DisplayNumber, "B023")
tm_scene("tm_number", pad.shown)
pgw.step(2500, 50)  # the gateway goes silent: the pad shows "----"
check(pad.offline, "pad offline")
tm_scene("tm_out_of_service", pad.shown)
tm_scene("tm_blank", "")
tm_scene("tm_closed", "CLSd")
scene("tm_dim")
LinePin.log = []
tm.brightness(2)
print("pins " + " ".join(LinePin.log))
LinePin.ack = False
tm_scene("tm_missing", "1")
equal(tm.nacks, 7, "a missing chip: none of the 7 bytes acknowledged")

# Frame-to-light on this port: one call onto the digits, one panel onto the OLED (the fakes
# print nothing here), and the bytes each puts on its bus.
import time


class Count:
    n = 0

    def write(self, b):
        self.n += len(b)

    def writeto(self, addr, b):
        self.n += len(b)


bus = Count()
m = Max7219(bus, board.FakePin(None), 1, 5)
bus.n = 0
t = time.ticks_us()
m.show("A-023", "5")
print("time_max7219_show_us=%d bytes=%d" % (time.ticks_diff(time.ticks_us(), t), bus.n))
bus = Count()
oled = Ssd1306(bus)
panel = TextPanel()
panel.show(("A-023", "Window 5"))
oled.show(panel)
bus.n = 0
t = time.ticks_us()
oled.show(panel)
print("time_ssd1306_show_us=%d bytes=%d" % (time.ticks_diff(time.ticks_us(), t), bus.n))
print("drivers checked")
finish()
