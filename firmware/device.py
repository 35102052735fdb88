"""What every board on the bus shares: answering requests addressed to it (HELLO to every POLL
until IDENTIFY, then the oldest waiting event or ACK), duplicate suppression of retried requests,
the event queue, NAK UNSUPPORTED for types its kind does not handle, firmware transfer (FW_*, in
fw_update.py, imported on first use), OUT_OF_SERVICE, and noticing
that the gateway has gone silent (no request for two poll cycles: offline, shown as out of
service until polled again). Also the loop that connects a device to its UART. (The
debounced Button is button.py's: the call display has no keys.)

The logic is synchronous and clock-free: feed(data, now) / handle(frame, now) / _check(now) take
the time in ticks_ms from the caller, so tests drive it deterministically. Hardware comes in as
objects (pins, UART) made by board.py; nothing here touches machine.
"""

import time

from micropython import const

import protocol as p

# Silence limits: offline after two poll cycles without a request to this device. The cycle is
# measured between POLLs; until measured (and as a ceiling) it is 1 s, so offline comes after at
# most 2 s, as docs/protocol.md asks. The floor keeps a fast bus from flapping on one late poll.
_DEFAULT_CYCLE_MS = const(1000)
_MIN_CYCLE_MS = const(250)
_MAX_CYCLE_MS = const(1000)
_MISSED_CYCLES = const(2)


class BusDevice:
    """A device on the bus. Subclasses set KIND and CAPS and HANDLERS (request type -> method
    name; each method takes (frame, now) and returns the reply frame), and may override
    _refresh(now) (redraw what shows the service state: called when it changes) and _check(now)
    (calling this class's)."""

    KIND = 0
    CAPS = 0
    HANDLERS = {}  # type: dict
    VERSION = (1, 0, 0)
    # State that starts the same on every device, as class attributes: an instance holds it only
    # once it changes (a board's heap is small).
    identified = False
    out_of_service = False  # the gateway said so (OUT_OF_SERVICE on=1)
    offline = False  # the gateway went silent
    last_poll = None
    cycle_ms = _DEFAULT_CYCLE_MS
    requests = 0
    # Firmware transfer. Class attributes: an instance holds them only once they are set.
    fw = None  # fw_update.Receiver, from the first FW_* request
    fw_root = None  # where the A/B slots are (None: board.flash_dir())
    fw_active = None  # the slot running now (slots.active; None: no slots in use)
    restart = None  # called once a committed update's ACK is out (main.py: board.reset)
    restart_due = False
    boot = 0  # this boot's number, kept on flash (slots.boot_number), sent in HELLO; 0: none

    def __init__(self, addr, uart, now, reset_cause=p.RESET_UNKNOWN, capacity=8):
        if not isinstance(addr, int) or not p.ADDR_MIN <= addr <= p.ADDR_MAX:
            raise ValueError("addr must be %d..%d, got %r" % (p.ADDR_MIN, p.ADDR_MAX, addr))
        self.addr = addr
        self.uart = uart
        self.reset_cause = reset_cause
        self.decoder = p.Decoder()
        self.dup = p.DuplicateFilter()
        self.events = p.EventQueue(addr, capacity)
        self.last_request = now

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
        if frame.TYPE >= 0x80 or frame.addr != self.addr:  # a reply (another device's), or not ours
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
        if t == 0x03:  # OUT_OF_SERVICE (a code: its type is made only when one arrives)
            self.out_of_service = bool(frame.on)
            self._refresh(now)
            return p.Ack(self.addr, frame.seq)
        if 0x40 <= t <= 0x46:  # FW_*, RESTART, FW_KEY: fw_update.py (codes: types made only when used)
            import fw_update  # on the first one: a board never updated does not hold it

            return fw_update.handle(self, frame)
        name = self.HANDLERS.get(t)
        if name is None:
            return p.Nak(self.addr, frame.seq, p.NAK_UNSUPPORTED)
        return getattr(self, name)(frame, now)

    def _hello(self, seq):
        caps = self.CAPS | p.CAP_FW_UPDATE
        # lap: the round of event numbers of the event the next POLL brings (the waiting ones are
        # the last numbered), so that boot, lap and ev name each event once for the gateway's
        # journal. Worked out here, not by an EventQueue method: a method costs every board heap.
        q = self.events
        lap = (q._n - len(q)) // 255 & 0xFF
        return p.Hello(
            self.addr, seq, p.PROTOCOL_VERSION, self.KIND, self.VERSION, caps, self.reset_cause, self.boot, lap
        )

    def _ack(self, frame):
        return p.Ack(self.addr, frame.seq)

    # --- Offline detection

    def _heard(self, frame, now):
        if frame.TYPE == p.Poll.TYPE:
            if self.last_poll is not None:
                cycle = time.ticks_diff(now, self.last_poll)
                self.cycle_ms = min(_MAX_CYCLE_MS, max(_MIN_CYCLE_MS, cycle))
            self.last_poll = now
        self.last_request = now
        if self.offline:
            self.offline = False
            self._refresh(now)

    def _check(self, now):
        """Called often from the loop (and by tests): notices a silent gateway, and restarts
        into a committed update (after its ACK went out: feed() writes replies first)."""
        if self.fw is not None and self.fw.reset_due:
            self.fw.reset_due = False
            self.restart_due = True
            if self.restart is not None:
                self.restart()
        if not self.offline and time.ticks_diff(now, self.last_request) > _MISSED_CYCLES * self.cycle_ms:
            self.offline = True
            self.last_poll = None  # the next cycle is measured afresh
            self._refresh(now)

    @property
    def accepting(self):
        """Input becomes an event only while the gateway is there and has not said stop."""
        return not (self.offline or self.out_of_service)

    def _refresh(self, now):
        """Redraw whatever shows the service state; subclasses override."""

    def deinit(self):
        if self.fw is not None:
            self.fw.abort()
        self.decoder.reset()
        self.dup.reset()


# --- The loop shared by the boards


def serve(device, clock, watchdog=None, idle_ms=1, run_ms=None):
    """Read the UART, feed the device, run its checks, feed the watchdog; forever, or for run_ms
    (hardware-in-the-loop tests). Never lets one bad request stop the loop. A plain loop, not
    asyncio: a board has one task, and asyncio's modules and objects were ~4 KB of its heap."""
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
        if not data:
            time.sleep_ms(idle_ms)


def run(device, clock, watchdog=None, run_ms=None):
    """main.py's loop: serve(), forever or for run_ms; then the device and its UART are
    released."""
    try:
        serve(device, clock, watchdog, run_ms=run_ms)
    finally:
        device.deinit()
        device.uart.deinit()
