"""The one board module: every pin, the bus UART, the clock, the watchdog, the reset cause and the
flash directory of a counterfloor board. Device code reaches hardware only through here.

Reference board: Raspberry Pi Pico (RP2040), RS-485 transceiver with auto-direction on UART0
(GP0 TX, GP1 RX). This module answers the calls on the MicroPython Unix port (tests,
hardware-in-the-loop runs) with stand-ins: FakePin (the test drives inputs and reads outputs),
MemoryUART (an in-memory byte stream) or a pty/serial path (board_sim.PathUART), FakeChime,
FakeWatchdog. board_sim.py, never loaded by a board on an in-memory bus, has the rest of the
Unix port's simulation: FakeClock (a clock the test drives, so timing is deterministic), PathUART
and StdinPin (pins driven over stdin). On the Pico the functions are replaced, at the end, by
board_pico.py's (machine.Pin, UART, PWM, WDT, reset cause), so the Unix port never loads
machine code. Owns no queue logic and no protocol.

    pins(kind)                the Pico's pin numbers for a device kind
    input_pin(number, name)   a button or key, idle high (pull-up), pressed = 0
    output_pin(number, name)  a lamp, initially off
    bus_uart(path=None)       the RS-485 bus: read() returns the bytes waiting (or None), write(b)
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


def pins(kind):
    """The Pico's pin numbers (GP) for a device kind; buttons and keys are active low with
    pull-ups. dispenser: (service buttons 0..5, their lamps); counter_pad: (keys call next, done,
    recall, no-show, transfer, pause; red lamp; green lamp). UART0 (GP0 TX, GP1 RX) and the call
    display's chime (GP16) are board_pico.py's."""
    if kind == "dispenser":
        return (2, 3, 4, 5, 6, 7), (8, 9, 10, 11, 12, 13)
    return (2, 3, 4, 5, 6, 7), 14, 15


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


class MemoryUART:
    """In-memory byte stream: the test inject()s what the gateway sends and take()s what the
    device wrote."""

    def __init__(self):
        self._rx = bytearray()
        self._tx = bytearray()

    def inject(self, data):
        self._rx += data

    def read(self, n=-1):
        if not self._rx:
            return None
        if n < 0 or n >= len(self._rx):
            data = bytes(self._rx)
            self._rx = bytearray()
        else:
            data = bytes(self._rx[:n])
            self._rx = self._rx[n:]
        return data

    def write(self, data):
        self._tx += data
        return len(data)

    def take(self):
        data = bytes(self._tx)
        self._tx = bytearray()
        return data

    def deinit(self):
        self._rx = bytearray()
        self._tx = bytearray()


def bus_uart(path=None):
    """A PathUART on a pty or serial path when given one, else an in-memory stand-in."""
    if path:
        from board_sim import PathUART

        return PathUART(path)
    return MemoryUART()


class FakeChime:
    """Records the tones asked for: (tone, repeat) pairs. (board_sim.ReportingChime, with
    $COUNTERFLOOR_HIL set, also prints them for a hardware-in-the-loop run.)"""

    def __init__(self):
        self.played = []

    def play(self, tone, repeat):
        self.played.append((tone, repeat))

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
        flash_dir,
        input_pin,
        output_pin,
        reset,
        reset_cause,
        watchdog,
    )
