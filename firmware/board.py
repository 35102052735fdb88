"""The one board module: every pin, the bus UART, the clock, the watchdog, the reset cause and the
flash directory of a counterfloor board. Device code reaches hardware only through here.

Reference board: Raspberry Pi Pico (RP2040), RS-485 transceiver with auto-direction on UART0
(GP0 TX, GP1 RX). This module answers the calls on the MicroPython Unix port (tests,
hardware-in-the-loop runs) with stand-ins: FakePin (the test drives inputs and reads outputs),
NullBus (a display's SPI or I2C), FakeChime, FakeWatchdog. board_sim.py, loaded only when asked
for one of its parts, has the rest of the Unix port's simulation: MemoryUART (an in-memory bus)
and PathUART (a pty or serial path), FakeClock (a clock the test drives, so timing is
deterministic), StdinPin (pins driven over stdin). On the Pico the functions are replaced, at the
end, by board_pico.py's (machine.Pin, UART, SPI, I2C, PWM, WDT, reset cause), so the Unix port
never loads machine code. Owns no queue logic and no protocol.

    input_pin(number, name)   a button or key, idle high (pull-up), pressed = 0
    output_pin(number, name)  a lamp, initially off
    bus_uart(path=None)       the RS-485 bus: read() returns the bytes waiting (or None), write(b)
    display_bus(part, pins, hz)  the display driver's SPI, I2C or two lines (wiring.py)
    chime()                   the call display's speaker: play(tone, repeat), _check(now)
    watchdog(timeout_ms)      started at boot; feed() it (it cannot be stopped on the Pico)
    reset_cause()             the hardware reset cause as a protocol RESET_* value
    reset()                   restart the board (after a committed firmware update)
    flash_dir()               where config.json, the slot marker and saved display content live
"""

import os
import sys
import time

from micropython import const

PICO = sys.platform == "rp2"

# protocol.RESET_* values (not imported here: the board module depends on nothing of ours).
# Private constants, compiled into the code: every module-level name is an interned string on a
# board's heap (docs/firmware.md, "Memory"). board_pico.py has its own.
_RESET_POWER_ON = const(1)
_RESET_EXIT = const(75)  # the Unix port's exit status for reset(): whoever runs the board restarts it


def real_clock():
    """Ticks in ms; compare them only with time.ticks_diff / ticks_add (they wrap)."""
    return time.ticks_ms


def path_join(a, b):
    if not a:
        return "/" + b if PICO else b
    return a + "/" + b


class FakePin:
    """A stand-in for machine.Pin: value() reads or sets the level; a test drives an input with
    drive(level). As small as it can be: a Pico's machine.Pin objects are not on its heap, so
    this one keeps no name (board_sim.StdinPin, driven by name, does)."""

    _v = 0  # the level, as a class attribute until it differs

    def __init__(self, name, value=0):
        if value:
            self._v = 1

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        return None

    def drive(self, v):
        self._v = 1 if v else 0

    def deinit(self):
        pass


def input_pin(number, name):
    """A button or key, idle high, pressed = 0; with $COUNTERFLOOR_HIL set, driven over stdin."""
    if os.getenv("COUNTERFLOOR_HIL"):
        from board_sim import StdinPin

        return StdinPin(name, 1)
    return FakePin(name, 1)


def output_pin(number, name):
    return FakePin(name, 0)


def bus_uart(path=None):
    """A PathUART on a pty or serial path when given one, else an in-memory stand-in (both
    board_sim.py's: the Unix port's only)."""
    if path:
        from board_sim import PathUART

        return PathUART(path)
    from board_sim import MemoryUART

    return MemoryUART()


class NullBus:
    """The Unix port's display bus: an SPI write() or I2C writeto() with no panel on it, counting
    the bytes (tests/micropython/check_drivers.py records and decodes what a driver sends)."""

    sent = 0

    def write(self, data):
        self.sent += len(data)

    def writeto(self, addr, data):
        self.sent += len(data)


def display_bus(part, pins, hz):
    """The bus a display driver (wiring.py) writes to: SPI for a max7219, I2C for an ssd1306, the
    two lines (CLK, DIO) of a tm1637."""
    if part == "tm1637":
        return FakePin(None, 1), FakePin(None, 1)
    return NullBus()


class FakeChime:
    """Records the last 16 tones asked for: (tone, repeat) pairs. (board_sim.ReportingChime, with
    $COUNTERFLOOR_HIL set, also prints them for a hardware-in-the-loop run.)"""

    def __init__(self):
        self.played = []

    def play(self, tone, repeat):
        self.played.append((tone, repeat))
        if len(self.played) > 16:  # the recent ones: a simulated day of calls must not fill the heap
            self.played.pop(0)

    def _check(self, now):
        pass

    def deinit(self):
        self.played = []


def chime():
    if os.getenv("COUNTERFLOOR_HIL"):
        from board_sim import ReportingChime

        return ReportingChime()
    return FakeChime()


class FakeWatchdog:
    """Remembers its timeout; on the Unix port nothing resets the process."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms

    def feed(self):
        pass

    def deinit(self):
        pass


def watchdog(timeout_ms):
    return FakeWatchdog(timeout_ms)


def reset_cause():
    """$COUNTERFLOOR_RESET_CAUSE, else power-on (the FW_COMMIT case is decided by slots.boot)."""
    v = os.getenv("COUNTERFLOOR_RESET_CAUSE")
    return int(v) if v else _RESET_POWER_ON


def reset():
    """The process ends with status 75; whoever runs the board starts it again."""
    print("reset")
    raise SystemExit(_RESET_EXIT)


def flash_dir():
    return os.getenv("COUNTERFLOOR_FLASH") or "."


# The Pico's own calls, last.
if PICO:
    from board_pico import (
        bus_uart,
        chime,
        display_bus,
        flash_dir,
        input_pin,
        output_pin,
        reset,
        reset_cause,
        watchdog,
    )
