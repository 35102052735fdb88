"""Chained MAX7219 7-segment digits on SPI: the call display's counter-number board ("A-023" and
counter "5"; the arrow and 番窓口 are printed on the faceplate). The SPI bus and the chip-select
pin are passed in (board.py makes them; a test passes a recording fake), so this module touches
no hardware of its own. Owns the chip's registers only; what to show is the call display's.

Datasheet: 16-bit words, register address in the high byte, MSB first; CS rising latches. In a
chain each chip passes on what it held, so one write to every chip is 2 x chips bytes, the far
chip's word first. Digit registers in no-decode mode: bit 7 = DP, bits 6..0 = segments a..g."""

from drv_seg7 import segments
from micropython import const

_DECODE_MODE = const(0x09)
_INTENSITY = const(0x0A)
_SCAN_LIMIT = const(0x0B)
_SHUTDOWN = const(0x0C)
_DISPLAY_TEST = const(0x0F)


class Max7219:
    """`chips` chained chips, 8 digits each; digit 0 is the leftmost of the first chip (the one
    wired to the Pico). The ticket takes the first `ticket_digits`, the counter the rest."""

    lit = True  # False while shut down (a blink's dark phase): the digits are kept

    def __init__(self, spi, cs, chips=1, ticket_digits=5, intensity=8):
        self.spi = spi
        self.cs = cs
        self.chips = chips
        self.ticket_digits = ticket_digits
        self._buf = bytearray(2 * chips)  # one word per chip, reused for every write
        cs.value(1)
        # Display test off first: a chip can power up in test mode, all segments lit.
        self._all(_DISPLAY_TEST, 0)
        self._all(_DECODE_MODE, 0)  # no Code B: letters need raw segments
        self._all(_SCAN_LIMIT, 7)
        self.intensity(intensity)
        self.blank()
        self._all(_SHUTDOWN, 1)  # normal operation, last, so nothing stale shows before

    def _write(self, words):
        """`words`: one (register, value) per chip, the first chip's first."""
        b = self._buf
        n = self.chips
        for i in range(n):
            reg, val = words[i]
            j = 2 * (n - 1 - i)  # the far chip's word is shifted in first
            b[j] = reg
            b[j + 1] = val
        self.cs.value(0)
        self.spi.write(b)
        self.cs.value(1)

    def _all(self, reg, val):
        self._write([(reg, val)] * self.chips)

    def intensity(self, level):
        """Brightness 0..15 (duty 1/32 .. 31/32)."""
        self._all(_INTENSITY, max(0, min(15, level)))

    def text(self, s):
        """`s` across all digits, right-aligned."""
        self._digits(segments(s, 8 * self.chips))

    def show(self, ticket, counter):
        """A call: the ticket right-aligned in its digits, the counter's in the rest (a counter
        named "5番窓口" shows 5)."""
        n = self.ticket_digits
        self._digits(segments(ticket, n) + segments(counter, 8 * self.chips - n))

    def blank(self):
        self._digits(bytearray(8 * self.chips))

    def light(self, on):
        """Shut down or wake all chips (a blink): one word per chip, the digits kept."""
        on = bool(on)
        if on != self.lit:
            self.lit = on
            self._all(_SHUTDOWN, 1 if on else 0)

    def _digits(self, segs):
        n = self.chips
        for d in range(8):
            words = []
            for c in range(n):
                s = segs[8 * c + d]
                # a..g from bit 0 up (drv_seg7) to the chip's a = bit 6 .. g = bit 0, DP bit 7
                v = s & 0x80
                for k in range(7):
                    if s >> k & 1:
                        v |= 0x40 >> k
                words.append((d + 1, v))
            self._write(words)

    def deinit(self):
        self._all(_SHUTDOWN, 0)
