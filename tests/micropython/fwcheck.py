# ruff: noqa: UP031, RUF005 -- MicroPython scripts: imports follow the sys.path setup; %-format
"""Shared by the firmware check scripts (run under the MicroPython Unix port by
tests/test_firmware.py): argv handling, check()/fail(), heap figures, and a scripted gateway that
talks to a device through its in-memory UART with a clock the script drives."""

import gc
import sys

failures = []


def setup():
    """argv: FIRMWARE_DIR (sources or .mpy files) [TMP_DIR]. Returns TMP_DIR or None."""
    sys.path.insert(0, sys.argv[1])
    return sys.argv[2] if len(sys.argv) > 2 else None


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def equal(got, want, msg):
    return check(got == want, "%s: got %r, want %r" % (msg, got, want))


def heap_used():
    gc.collect()
    return gc.mem_alloc()


def finish():
    gc.collect()
    print("heap_total=%d" % gc.mem_alloc())
    if failures:
        print("%d FAILED" % len(failures))
        sys.exit(1)
    print("PASS")


class Gateway:
    """Sends requests to `dev` over its MemoryUART and decodes the reply, like the gateway."""

    def __init__(self, p, dev, clock):
        self.p = p
        self.dev = dev
        self.clock = clock
        self.seq = 0
        self.tracker = p.EventTracker()
        self.received = []  # events accepted by collect()

    def send(self, cls, *args, seq=None):
        """Builds request cls(addr, seq, *args) with the next seq (or the one given: a retry),
        delivers it and returns (reply frame or None, reply bytes)."""
        if seq is None:
            self.seq = (self.seq + 1) & 0xFF
            seq = self.seq
        frame = cls(self.dev.addr, seq, *args)
        return self.raw(frame.to_bytes())

    def raw(self, data):
        uart = self.dev.uart
        uart.inject(data)
        self.dev.feed(uart.read(), self.clock.now())
        out = uart.take()
        if not out:
            return None, out
        return self.p.Frame.from_bytes(out), out

    def poll(self, ack=0):
        return self.send(self.p.Poll, ack)[0]

    def collect(self):
        """Polls until ACK, accepting each new event like the gateway; returns the events'
        fields as tuples, e.g. ("KEY", 1, 0)."""
        out = []
        while True:
            r = self.poll(self.tracker.ack)
            if r.NAME not in ("KEY", "BUTTON_PRESS"):
                return out
            if self.tracker.accept(r.ev):
                out.append((r.NAME,) + tuple(r.fields()[k] for k in r.FIELDS[1:]))

    def step(self, ms, every=1):
        """Advance the clock by `ms`, running the device's _check every `every` ms."""
        done = 0
        while done < ms:
            n = min(every, ms - done)
            self.clock.advance(n)
            done += n
            self.dev._check(self.clock.now())
