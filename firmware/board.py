"""The one board module: every pin, the bus UART, the clock, the watchdog, the reset cause and the
flash directory of a counterfloor board. Device code reaches hardware only through here.

Reference board: Raspberry Pi Pico (RP2040), RS-485 transceiver with auto-direction on UART0
(GP0 TX, GP1 RX). On the MicroPython Unix port (tests, hardware-in-the-loop runs) the same calls
return stand-ins: FakePin (the test drives inputs and reads outputs), a byte-stream "UART" that is
either in memory (MemoryUART) or a pty/serial path opened with builtin open(path, 'r+b')
(PathUART: the Unix port's os has no open/read/write), and a clock the test can drive
(FakeClock) so that timing is deterministic. Owns no queue logic and no protocol.
"""

import sys
import time

PICO = sys.platform == "rp2"

# Pin numbers on the Pico, per device kind. Buttons and keys are active low with pull-ups.
PICO_PINS = {  # type: dict
    "uart_id": 0,
    "uart_tx": 0,
    "uart_rx": 1,
    "dispenser": {
        # Service buttons 0..5 and their lamps.
        "buttons": (2, 3, 4, 5, 6, 7),
        "lamps": (8, 9, 10, 11, 12, 13),
    },
    "counter_pad": {
        # call next, done, recall, no-show, transfer, pause
        "keys": (2, 3, 4, 5, 6, 7),
        "lamp_red": 14,
        "lamp_green": 15,
    },
    "call_display": {
        "chime": 16,  # PWM to the amplifier
    },
}

BAUD = 115200


# --- Clock: ticks in ms, wrap-safe arithmetic via time.ticks_diff / ticks_add


class FakeClock:
    """A tick source the test drives: now() returns what set()/advance() made it, wrapping like
    time.ticks_ms (use ticks_add), so wrap-around can be tested."""

    def __init__(self, start=0):
        self.t = time.ticks_add(start, 0)

    def now(self):
        return self.t

    def advance(self, ms):
        self.t = time.ticks_add(self.t, ms)
        return self.t

    def deinit(self):
        pass


def real_clock():
    return time.ticks_ms


# --- Pins


class FakePin:
    """A stand-in for machine.Pin: value() reads or sets the level. A test drives an input with
    drive(level) and reads an output's level and its history of changes."""

    def __init__(self, name, value=0):
        self.name = name
        self._v = value
        self.changes = 0

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v:
            self.changes += 1
        self._v = v
        return None

    def drive(self, v):
        self._v = 1 if v else 0

    def deinit(self):
        pass


class StdinPin(FakePin):
    """Unix port, hardware-in-the-loop runs only ($COUNTERFLOOR_HIL set): an input pin a
    test drives from another process with lines on stdin, "down NAME" (pressed, level 0) or
    "up NAME"; each is answered with "pin NAME down|up" on stdout once applied."""

    pins = {}  # type: dict
    _poll = None

    def __init__(self, name, value=1):
        FakePin.__init__(self, name, value)
        StdinPin.pins[name] = self

    def value(self, v=None):
        if v is None:
            StdinPin.read_commands()
        return FakePin.value(self, v)

    @classmethod
    def read_commands(cls):
        if cls._poll is None:
            import select

            cls._poll = select.poll()
            cls._poll.register(sys.stdin, select.POLLIN)
        while cls._poll and cls._poll.poll(0):
            line = sys.stdin.readline()
            if not line:  # end of input: nothing more will come
                cls._poll = False  # type: ignore[assignment]  # False: stdin closed, never poll again
                return
            words = line.split()
            if len(words) == 2 and words[0] in ("down", "up") and words[1] in cls.pins:
                cls.pins[words[1]].drive(0 if words[0] == "down" else 1)
                print("pin %s %s" % (words[1], words[0]))


def input_pin(number, name):
    """A button or key input, idle high (pull-up), pressed = 0."""
    if PICO:
        import machine

        return machine.Pin(number, machine.Pin.IN, machine.Pin.PULL_UP)
    import os

    if os.getenv("COUNTERFLOOR_HIL"):
        return StdinPin(name, 1)
    return FakePin(name, 1)


def output_pin(number, name):
    if PICO:
        import machine

        return machine.Pin(number, machine.Pin.OUT, value=0)
    return FakePin(name, 0)


# --- The bus UART: read() returns the bytes waiting (or None) without blocking; write(b).


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


class PathUART:
    """A serial device or pty path opened with builtin open(path, 'r+b'). read() never blocks:
    it polls the file and takes the bytes that are ready one at a time (a blocking read(n) on a
    pty would wait for all n)."""

    MAX_READ = 256

    def __init__(self, path):
        import select

        self.path = path
        self._f = open(path, "r+b")
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)

    def read(self, n=-1):
        limit = self.MAX_READ if n < 0 else n
        out = bytearray()
        while len(out) < limit and self._poll.poll(0):
            b = self._f.read(1)
            if not b:
                break
            out += b
        return bytes(out) if out else None

    def write(self, data):
        # FileIO is unbuffered (and flush() on a tty fails with EINVAL): one write is enough.
        return self._f.write(data)

    def deinit(self):
        if self._f is not None:
            self._poll.unregister(self._f)
            self._f.close()
            self._f = None


def bus_uart(path=None):
    """The RS-485 bus: machine.UART on the Pico; on the Unix port a PathUART when given a path,
    else an in-memory stand-in."""
    if PICO:
        import machine

        return machine.UART(
            PICO_PINS["uart_id"],
            BAUD,
            tx=machine.Pin(PICO_PINS["uart_tx"]),
            rx=machine.Pin(PICO_PINS["uart_rx"]),
            timeout=0,
            rxbuf=512,
        )
    if path:
        return PathUART(path)
    return MemoryUART()


# --- Chime output (PWM on the Pico, a recorder on Unix)


class FakeChime:
    """Records the tones asked for: (tone, repeat) pairs; with $COUNTERFLOOR_HIL set it also
    prints "chime TONE REPEAT" (hardware-in-the-loop runs count them from another process)."""

    def __init__(self):
        import os

        self.played = []
        self.report = bool(os.getenv("COUNTERFLOOR_HIL"))

    def play(self, tone, repeat):
        self.played.append((tone, repeat))
        if self.report:
            print("chime %d %d" % (tone, repeat))

    def _check(self, now):
        pass

    def deinit(self):
        self.played = []


class PwmChime:
    """Tones on a PWM pin, stepped by _check(now) so that a chime never blocks the bus loop."""

    FREQS = ((880, 660), (660, 880), (988, 988))  # call, recall, attention
    NOTE_MS = 150
    GAP_MS = 100

    def __init__(self, number):
        import machine

        self._pwm = machine.PWM(machine.Pin(number))
        self._pwm.duty_u16(0)
        self._notes = []
        self._until = None

    def play(self, tone, repeat):
        for _ in range(repeat):
            for f in self.FREQS[tone]:
                self._notes.append((f, self.NOTE_MS))
            self._notes.append((0, self.GAP_MS))

    def _check(self, now):
        if self._until is not None and time.ticks_diff(now, self._until) < 0:
            return
        if not self._notes:
            self._until = None
            self._pwm.duty_u16(0)
            return
        f, ms = self._notes.pop(0)
        if f:
            self._pwm.freq(f)
            self._pwm.duty_u16(16384)
        else:
            self._pwm.duty_u16(0)
        self._until = time.ticks_add(now, ms)

    def deinit(self):
        self._pwm.deinit()


def chime():
    if PICO:
        return PwmChime(PICO_PINS["call_display"]["chime"])
    return FakeChime()


# --- Watchdog, reset cause, flash


class FakeWatchdog:
    """Counts feeds; on the Unix port nothing resets the process."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self):
        self.feeds += 1

    def deinit(self):
        pass


def watchdog(timeout_ms):
    """machine.WDT on the Pico (it cannot be stopped once started); a stand-in elsewhere."""
    if PICO:
        import machine

        return machine.WDT(timeout=timeout_ms)
    return FakeWatchdog(timeout_ms)


# protocol.RESET_* values (not imported here: the board module depends on nothing of ours).
RESET_UNKNOWN = 0
RESET_POWER_ON = 1
RESET_PIN = 2
RESET_WATCHDOG = 3
RESET_SOFT = 4


def reset_cause():
    """The hardware reset cause as a protocol RESET_* value (the FW_COMMIT case is decided by
    boot.py from a marker file)."""
    if PICO:
        import machine

        c = machine.reset_cause()
        if c == machine.PWRON_RESET:
            return RESET_POWER_ON
        if c == machine.WDT_RESET:
            return RESET_WATCHDOG
        if c == getattr(machine, "HARD_RESET", -1):
            return RESET_PIN
        if c == getattr(machine, "SOFT_RESET", -1):
            return RESET_SOFT
        return RESET_UNKNOWN
    import os

    v = os.getenv("COUNTERFLOOR_RESET_CAUSE")
    return int(v) if v else RESET_POWER_ON


def flash_dir():
    """Where config.json, the slot marker and saved display content live."""
    if PICO:
        return ""
    import os

    return os.getenv("COUNTERFLOOR_FLASH") or "."


def path_join(a, b):
    if not a:
        return "/" + b if PICO else b
    return a + "/" + b
