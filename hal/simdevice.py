"""Simulated bus devices in pure Python: a dispenser, a counter pad and a call display that
speak the bus protocol through firmware.protocol, for tests and `sim://` links.

What a device does is what docs/protocol.md says a device does: one reply per request addressed
to it, HELLO to every POLL until IDENTIFY, duplicate suppression, numbered events kept until
acknowledged. It records what it shows (`calls`, `number`, `lamps` ...) so tests can assert on
what a resident would see. The seam for the real MicroPython firmware is `DeviceBackend`: anything
with `receive(bytes) -> bytes` can stand behind a `sim://` URL (see hal.protocol_sim).

Also here: `FaultyLine`, seeded fault injection for the wire (corrupted and dropped bytes, a
pulled cable).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from hal.codec import KIND_BY_NAME, Frame, P

DEFAULT_CAPS = {
    P.KIND_DISPENSER: P.CAP_TEXT | P.CAP_LAMPS | P.CAP_FW_UPDATE,
    P.KIND_COUNTER_PAD: P.CAP_NUMBER | P.CAP_STATUS_LAMP | P.CAP_FW_UPDATE,
    P.KIND_CALL_DISPLAY: P.CAP_TEXT | P.CAP_CHIME | P.CAP_RECENT | P.CAP_FW_UPDATE,
}
CALLS_KEPT = 1000  # SimDevice.calls: the latest this many, far more than any test's floor makes
# Request types each kind acts on (the others get NAK UNSUPPORTED).
_HANDLES = {
    P.KIND_DISPENSER: {P.ShowText.TYPE, P.Lamps.TYPE},
    P.KIND_COUNTER_PAD: {P.DisplayNumber.TYPE, P.StatusLamp.TYPE},
    P.KIND_CALL_DISPLAY: {P.ShowText.TYPE, P.Call.TYPE, P.Recent.TYPE, P.Chime.TYPE, P.Clear.TYPE},
}


class DeviceBackend(Protocol):
    """What stands behind a simulated serial link: bytes from the gateway in, the device's reply
    bytes out (empty if it says nothing). A MicroPython-firmware backend implements the same."""

    def receive(self, data: bytes) -> bytes: ...


@dataclass
class SimDevice:
    """One simulated device at `addr`. `buttons`: how many service buttons a dispenser has."""

    kind: int
    addr: int
    version: tuple[int, int, int] = (1, 0, 0)
    caps: int | None = None
    buttons: int = 16
    reset_cause: int = P.RESET_POWER_ON
    # Its boot number (HELLO's `boot`), as a board keeps it on flash: one more at every reboot().
    # None: drawn at random, as a board's first boot does (a new simulated bus, say after the
    # gateway reopened its port, must not repeat the numbers of the one before). 0: none, as a
    # version-1 board.
    boot: int | None = None
    # What it shows, for tests. `calls`: the latest CALLS_KEPT CALL frames it acted on (a display
    # behind a simulated floor that runs for weeks, as the soak's, shows tens of thousands).
    calls: list[tuple[int, str, str]] = field(default_factory=list)  # (flags, ticket, counter), oldest first
    number: str = "    "
    status_lamp: tuple[int, int] = (0, 0)
    lamps: int = 0
    text: tuple[str, ...] = ()
    recent: tuple[tuple[str, str], ...] = ()
    call: tuple[str, str] | None = None  # the current call (ticket, counter)
    chimes: int = 0
    out_of_service: bool = False
    requests: int = 0  # requests addressed to it and acted on (not duplicates)
    restarts: int = 0  # RESTARTs acted on (each one a reboot once its ACK is out)
    device_key: bytes | None = None  # its key (FW_KEY), kept on "flash": a reboot keeps it

    def __post_init__(self) -> None:
        if self.caps is None:
            self.caps = DEFAULT_CAPS[self.kind]
        if self.boot is None:
            self.boot = int.from_bytes(os.urandom(4), "big") or 1
        self._boot(self.reset_cause)

    @classmethod
    def named(cls, kind: str, addr: int, **kw: Any) -> SimDevice:
        if kind not in KIND_BY_NAME:
            raise ValueError(f"unknown device kind {kind!r} (kinds: {', '.join(KIND_BY_NAME)})")
        return cls(KIND_BY_NAME[kind], addr, **kw)

    def _boot(self, cause: int) -> None:
        self.reset_cause = cause
        self._decoder = P.Decoder()
        self._dup = P.DuplicateFilter()
        self._events = P.EventQueue(self.addr)
        self._identified = False
        self._restart_due = False
        self.calls.clear()
        self.number = "    "
        self.status_lamp = (0, 0)
        self.lamps = 0
        self.text = ()
        self.recent = ()
        self.call = None

    def reboot(self, cause: int = P.RESET_WATCHDOG) -> None:
        """A reset: RAM is gone (queued events, a half-received frame, what it showed); the boot
        number kept on flash goes up by one."""
        if self.boot:
            self.boot = (self.boot + 1) & 0xFFFFFFFF or 1
        self._boot(cause)

    # -- input ---------------------------------------------------------------------------------
    def press(self, service: int) -> int:
        """A resident presses a dispenser button: the event number, 0 if refused."""
        if self.kind != P.KIND_DISPENSER or not 0 <= service < self.buttons:
            raise ValueError(f"no button for service {service} on this device")
        if self.out_of_service or not self.lamps & (1 << service):
            return 0  # an unlit button does nothing
        return int(self._events.push(P.ButtonPress, service))

    def key(self, key: int, arg: int = 0) -> int:
        """Staff press a counter-pad key: the event number, 0 if refused."""
        if self.kind != P.KIND_COUNTER_PAD:
            raise ValueError("keys are on counter pads")
        if self.out_of_service:
            return 0
        return int(self._events.push(P.Key, key, arg))

    @property
    def waiting_events(self) -> int:
        return len(self._events)

    # -- the wire ------------------------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        out = b""
        for frame in self._decoder.feed(data):
            if frame.addr == self.addr and not frame.is_reply:
                out += self._answer(frame)
                if self._restart_due:  # RESTART: its ACK is out, now the reset (as firmware/device.py)
                    self.restarts += 1
                    self.reboot(P.RESET_SOFT)
                    break  # what followed in the same read is lost with its RAM
        return out

    def _answer(self, req: Frame) -> bytes:
        again = self._dup.replay(req)
        if again is not None:
            return bytes(again)
        reply = self._act(req).to_bytes()
        self._dup.remember(req, reply)
        return bytes(reply)

    def _hello(self, seq: int) -> Frame:
        # The lap of the event the next POLL brings, as firmware/device.py counts it (the queue's
        # waiting events are the last ones numbered).
        lap = (self._events._n - len(self._events)) // 255 & 0xFF
        return P.Hello(
            self.addr, seq, P.PROTOCOL_VERSION, self.kind, self.version, self.caps, self.reset_cause, self.boot, lap
        )

    def _act(self, req: Frame) -> Frame:
        self.requests += 1
        t = req.TYPE
        if t == P.Identify.TYPE:
            self._identified = True
            return self._hello(req.seq)
        if t == P.Poll.TYPE:
            if not self._identified:
                return self._hello(req.seq)
            return self._events.answer(req)
        if t == P.OutOfService.TYPE:
            self.out_of_service = bool(req.on)
            return P.Ack(self.addr, req.seq)
        if t == P.FwKey.TYPE:  # as firmware/fw_update.py: set once, changed with a proof under the old key
            old = self.device_key
            proof = hmac.new(old, req.key, hashlib.sha256).digest() if old else bytes(32)
            if not hmac.compare_digest(proof, req.proof):
                return P.Nak(self.addr, req.seq, P.NAK_FW_AUTH)
            self.device_key = req.key
            return P.Ack(self.addr, req.seq)
        if t == P.Restart.TYPE:
            # Not identified since its boot: a retry meeting it restarted already (docs/protocol.md).
            self._restart_due = self._identified
            return P.Ack(self.addr, req.seq)
        if t not in _HANDLES[self.kind]:
            return P.Nak(self.addr, req.seq, P.NAK_UNSUPPORTED)
        if t == P.ShowText.TYPE:
            self.text = tuple(req.lines)
        elif t == P.Lamps.TYPE:
            if req.mask >> self.buttons:
                return P.Nak(self.addr, req.seq, P.NAK_OUT_OF_RANGE)
            self.lamps = req.mask
        elif t == P.DisplayNumber.TYPE:
            self.number = req.text
        elif t == P.StatusLamp.TYPE:
            self.status_lamp = (req.colour, req.blink)
        elif t == P.Call.TYPE:
            self.calls.append((req.flags, req.ticket, req.counter))
            if len(self.calls) > CALLS_KEPT:
                del self.calls[0]
            self.call = (req.ticket, req.counter)
            if req.flags == P.CALL_NEW:
                self.recent = ((req.ticket, req.counter), *self.recent)[: P.MAX_RECENT]
        elif t == P.Recent.TYPE:
            self.recent = tuple(req.entries)
            if self.recent:  # its first entry is the current call, restored without a chime
                self.call = self.recent[0]
        elif t == P.Chime.TYPE:
            self.chimes += 1
        elif t == P.Clear.TYPE:
            self.recent = ()
            self.call = None
        return P.Ack(self.addr, req.seq)


class SimBus:
    """Several simulated devices on one RS-485 line: each hears everything, the addressed one
    answers."""

    def __init__(self, devices: list[SimDevice] | None = None) -> None:
        self.devices: dict[int, SimDevice] = {}
        for d in devices or []:
            self.add(d)

    def add(self, device: SimDevice) -> SimDevice:
        if device.addr in self.devices:
            raise ValueError(f"two devices at address {device.addr}")
        self.devices[device.addr] = device
        return device

    def receive(self, data: bytes) -> bytes:
        return b"".join(d.receive(data) for d in self.devices.values())


class FaultyLine:
    """A wire with seeded faults, applied to each direction: each byte is corrupted (one bit
    flipped) with probability `corrupt` and lost with probability `drop`; `pulled` loses all."""

    def __init__(self, seed: int, corrupt: float = 0.0, drop: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.corrupt = corrupt
        self.drop = drop
        self.pulled = False
        self.corrupted = 0
        self.dropped = 0

    def carry(self, data: bytes) -> bytes:
        if self.pulled:
            self.dropped += len(data)
            return b""
        if not self.corrupt and not self.drop:
            return data
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r < self.drop:
                self.dropped += 1
                continue
            if r < self.drop + self.corrupt:
                self.corrupted += 1
                b ^= 1 << self.rng.randrange(8)
            out.append(b)
        return bytes(out)


class FaultyBackend:
    """A backend seen through a FaultyLine: requests and replies both cross it."""

    def __init__(self, backend: DeviceBackend, line: FaultyLine) -> None:
        self.backend = backend
        self.line = line

    def receive(self, data: bytes) -> bytes:
        heard = self.line.carry(data)
        reply = self.backend.receive(heard) if heard else b""
        return self.line.carry(reply)
