"""TM1637 4-digit 7-segment display, bit-banged on two pins (CLK, DIO): the counter pad's number
("B023", "----" while offline). The pins are passed in, open-drain with pull-ups as on the usual
modules: value(1) releases a line, value() reads it (the chip's ACK pulls DIO low). Owns the
chip's two-wire framing only; what to show is counter_pad.py's.

Datasheet: start = DIO falls while CLK is high; a byte goes LSB first, DIO changed while CLK is
low, read by the chip on CLK's rise; a ninth clock for the ACK; stop = DIO rises while CLK is high.
Commands: 0x40 write data with auto-increment, 0xC0 | address then the digits, 0x88 | brightness
(display on) or 0x80 (off). Segment bytes: bit 0 = a .. bit 6 = g, bit 7 = point or colon."""

import time

from drv_seg7 import segments
from micropython import const

_DATA_AUTO = const(0x40)
_ADDRESS = const(0xC0)
_DISPLAY_ON = const(0x88)
_DISPLAY_OFF = const(0x80)


class Tm1637:
    nacks = 0  # bytes the chip did not acknowledge (not fitted, a loose cable)
    level = 7

    def __init__(self, clk, dio, brightness=7, half_us=5):
        self.clk = clk
        self.dio = dio
        # Half a clock period: a MicroPython pin toggle on the RP2040 already takes a few us; 5
        # keeps the clock under the chip's 250 kHz with room for long wires to the pad's front.
        self.half_us = half_us
        clk.value(1)
        dio.value(1)
        self.level = max(0, min(7, brightness))

    def _start(self):
        self.dio.value(0)
        time.sleep_us(self.half_us)
        self.clk.value(0)

    def _stop(self):
        self.clk.value(0)
        self.dio.value(0)
        time.sleep_us(self.half_us)
        self.clk.value(1)
        time.sleep_us(self.half_us)
        self.dio.value(1)

    def _byte(self, b):
        clk = self.clk
        dio = self.dio
        us = self.half_us
        for _ in range(8):
            clk.value(0)
            dio.value(b & 1)
            time.sleep_us(us)
            clk.value(1)
            time.sleep_us(us)
            b >>= 1
        clk.value(0)
        dio.value(1)  # released: the chip pulls it low to acknowledge
        time.sleep_us(us)
        clk.value(1)
        if dio.value():
            self.nacks += 1
        time.sleep_us(us)
        clk.value(0)

    def _command(self, data):
        self._start()
        for b in data:
            self._byte(b)
        self._stop()

    def show(self, text):
        """Up to 4 characters, right-aligned; then the brightness, which also turns it on."""
        self._command((_DATA_AUTO,))
        self._command(bytes((_ADDRESS,)) + segments(text, 4))
        self._command((_DISPLAY_ON | self.level,))

    def brightness(self, level):
        """0..7 (pulse width 1/16 .. 14/16)."""
        self.level = max(0, min(7, level))
        self._command((_DISPLAY_ON | self.level,))

    def off(self):
        self._command((_DISPLAY_OFF,))

    def deinit(self):
        self.off()
