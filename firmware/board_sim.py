"""Simulation that only the Unix port has: the tick source tests drive (FakeClock), the bus in
memory (MemoryUART: tests inject and take bytes) and, for a board run as a process, the bus on a
pty or serial path (PathUART), input pins a hardware-in-the-loop test drives through stdin
(StdinPin) and a chime that reports what it plays (ReportingChime). board.py imports this module
only when one of them is asked for, so a board that has its bus otherwise does not hold it. Never
loaded on the Pico, whose UART and pins are machine objects (docs/firmware.md, "Memory")."""

import sys
import time

from board import FakeChime, FakePin


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


class StdinPin(FakePin):
    """Unix port, hardware-in-the-loop runs only ($COUNTERFLOOR_HIL set): an input pin a
    test drives from another process with lines on stdin, "down NAME" (pressed, level 0) or
    "up NAME"; each is answered with "pin NAME down|up" on stdout once applied."""

    pins = {}  # type: dict
    _poll = None

    def __init__(self, name, value=1):
        FakePin.__init__(self, name, value)
        self.name = name
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


class ReportingChime(FakeChime):
    """Unix port, hardware-in-the-loop runs only ($COUNTERFLOOR_HIL set): a FakeChime that also
    prints "chime TONE REPEAT" (the run counts them from another process)."""

    def play(self, tone, repeat):
        FakeChime.play(self, tone, repeat)
        print("chime %d %d" % (tone, repeat))


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
