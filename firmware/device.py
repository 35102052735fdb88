"""What every board on the bus shares: answering requests addressed to it (HELLO to every POLL
until IDENTIFY, then the oldest waiting event or ACK), duplicate suppression of retried requests,
the event queue, NAK UNSUPPORTED for types its kind does not handle, OUT_OF_SERVICE, and noticing
that the gateway has gone silent (no request for two poll cycles: offline, shown as out of
service until polled again). Also the debounced Button input and the asyncio loop that connects a
device to its UART.

The logic is synchronous and clock-free: feed(data, now) / handle(frame, now) / _check(now) take
the time in ticks_ms from the caller, so tests drive it deterministically. Hardware comes in as
objects (pins, UART) made by board.py; nothing here touches machine.
"""

import time

import protocol as p

# Silence limits: offline after two poll cycles without a request to this device. The cycle is
# measured between POLLs; until measured (and as a ceiling) it is 1 s, so offline comes after at
# most 2 s, as docs/protocol.md asks. The floor keeps a fast bus from flapping on one late poll.
DEFAULT_CYCLE_MS = 1000
MIN_CYCLE_MS = 250
MAX_CYCLE_MS = 1000
MISSED_CYCLES = 2


class Button:
    """One debounced push button or key on an active-low pin. _check(now) returns True once per
    press: when the pin has read pressed for debounce_ms without a change. Bounce resets the
    timer; a held key stays pressed and gives nothing more until it has been released (stable
    for debounce_ms) and pressed again. Wrap-safe: only time.ticks_diff compares ticks."""

    def __init__(self, pin, debounce_ms=30, active_low=True):
        self.pin = pin
        self.debounce_ms = debounce_ms
        self._active = 0 if active_low else 1
        self._raw = self._read()
        self._stable = self._raw
        self._since = None
        self.presses = 0

    def _read(self):
        return self.pin.value() == self._active

    @property
    def pressed(self):
        return self._stable

    def _check(self, now):
        raw = self._read()
        if raw != self._raw:
            self._raw = raw
            self._since = now
            return False
        if raw == self._stable or self._since is None:
            return False
        if time.ticks_diff(now, self._since) < self.debounce_ms:
            return False
        self._stable = raw
        self._since = None
        if raw:
            self.presses += 1
            return True
        return False

    def deinit(self):
        self.pin = None


class BusDevice:
    """A device on the bus. Subclasses set KIND and CAPS and HANDLERS (request type -> method
    name; each method takes (frame, now) and returns the reply frame), and may override
    _on_offline(now) / _on_online(now) / _check(now) (calling this class's)."""

    KIND = 0
    CAPS = 0
    HANDLERS = {}  # type: dict
    VERSION = (1, 0, 0)

    def __init__(self, addr, uart, now, reset_cause=p.RESET_UNKNOWN, capacity=8):
        if not isinstance(addr, int) or not p.ADDR_MIN <= addr <= p.ADDR_MAX:
            raise ValueError("addr must be %d..%d, got %r" % (p.ADDR_MIN, p.ADDR_MAX, addr))
        self.addr = addr
        self.uart = uart
        self.reset_cause = reset_cause
        self.decoder = p.Decoder()
        self.dup = p.DuplicateFilter()
        self.events = p.EventQueue(addr, capacity)
        self.identified = False
        self.out_of_service = False  # the gateway said so (OUT_OF_SERVICE on=1)
        self.offline = False  # the gateway went silent
        self.last_request = now
        self.last_poll = None
        self.cycle_ms = DEFAULT_CYCLE_MS
        self.requests = 0

    # --- The receive path

    def feed(self, data, now):
        """Bytes from the UART: decode them, handle each request addressed to this device and
        write its reply. Returns the number of replies written."""
        n = 0
        for frame in self.decoder.feed(data):
            reply = self.receive(frame, now)
            if reply is not None:
                self.uart.write(reply)
                n += 1
        return n

    def receive(self, frame, now):
        """The reply bytes to `frame`, or None when it is not a request to this device."""
        if frame.is_reply or frame.addr != self.addr:
            return None
        self.requests += 1
        self._heard(frame, now)
        reply = self.dup.replay(frame)
        if reply is not None:
            return reply
        reply = self.handle(frame, now).to_bytes()
        self.dup.remember(frame, reply)
        return reply

    def handle(self, frame, now):
        """Act on one new request (not a retry) and return the reply frame."""
        t = frame.TYPE
        if t == p.Poll.TYPE:
            if not self.identified:
                return self._hello(frame.seq)
            return self.events.answer(frame)
        if t == p.Identify.TYPE:
            self.identified = True
            return self._hello(frame.seq)
        if t == p.OutOfService.TYPE:
            self.out_of_service = bool(frame.on)
            self._refresh(now)
            return p.Ack(self.addr, frame.seq)
        name = self.HANDLERS.get(t)
        if name is None:
            return p.Nak(self.addr, frame.seq, p.NAK_UNSUPPORTED)
        return getattr(self, name)(frame, now)

    def _hello(self, seq):
        return p.Hello(self.addr, seq, p.PROTOCOL_VERSION, self.KIND, self.VERSION, self.CAPS, self.reset_cause)

    def _ack(self, frame):
        return p.Ack(self.addr, frame.seq)

    def _nak(self, frame, reason):
        return p.Nak(self.addr, frame.seq, reason)

    # --- Offline detection

    def _heard(self, frame, now):
        if frame.TYPE == p.Poll.TYPE:
            if self.last_poll is not None:
                cycle = time.ticks_diff(now, self.last_poll)
                self.cycle_ms = min(MAX_CYCLE_MS, max(MIN_CYCLE_MS, cycle))
            self.last_poll = now
        self.last_request = now
        if self.offline:
            self.offline = False
            self._on_online(now)

    def silence_limit_ms(self):
        return MISSED_CYCLES * self.cycle_ms

    def _check(self, now):
        """Called often from the loop (and by tests): notices a silent gateway."""
        if not self.offline and time.ticks_diff(now, self.last_request) > self.silence_limit_ms():
            self.offline = True
            self.last_poll = None  # the next cycle is measured afresh
            self._on_offline(now)

    @property
    def accepting(self):
        """Input becomes an event only while the gateway is there and has not said stop."""
        return not (self.offline or self.out_of_service)

    def _on_offline(self, now):
        self._refresh(now)

    def _on_online(self, now):
        self._refresh(now)

    def _refresh(self, now):
        """Redraw whatever shows the service state; subclasses override."""

    def deinit(self):
        self.decoder.reset()
        self.dup.reset()


# --- Flash: small JSON files, replaced atomically (write aside, then rename)


def save_json(path, obj):
    import json
    import os

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def load_json(path):
    """The object in `path`, or None if it is missing or not JSON (it is then ignored)."""
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# --- The asyncio loop shared by the boards


async def serve(device, clock, watchdog=None, idle_ms=1, run_ms=None):
    """Read the UART, feed the device, run its checks, feed the watchdog; forever, or for run_ms
    (hardware-in-the-loop tests). Never lets one bad request stop the loop."""
    import asyncio

    start = clock()
    uart = device.uart
    while True:
        now = clock()
        data = uart.read()
        if data:
            try:
                device.feed(data, now)
            except Exception as e:  # a handler bug must not take the board off the bus
                print("device error:", repr(e))
        device._check(now)
        if watchdog is not None:
            watchdog.feed()
        if run_ms is not None and time.ticks_diff(now, start) >= run_ms:
            return
        await asyncio.sleep_ms(0 if data else idle_ms)
