"""The bus master: who talks on the RS-485 bus, and when.

Owns the bus schedule: one request at a time (the reply, or its time-out, ends the exchange);
a cycle polls every device once in address order, then gives at most one bulk exchange
(SHOW_TEXT, RECENT) to one device, taking turns; urgent commands (CALL, DISPLAY_NUMBER, LAMPS,
the POLL acknowledging an event just stored, retries whose back-off is over) go out before the
next poll. It also routes office effects to the
links that show them — a call to every display and pad of the office, whatever bus it is on
(`CallRouter`). It must not know what a device does with a frame (gateway.device_link) nor touch a
port: `BusMaster` is pure (bytes in, bytes out, an injected clock in seconds), `SyncDriver` puts it
on a pyserial port, `BusConnection` keeps that port open, reopening a lost one with doubling
back-off (`Backoff`, pure) on the injected clock, and `step_buses` runs several buses' exchanges
side by side (each bus is its own wire).

Timing assumptions (docs/protocol.md, "Timing"): a request's reply is complete within
`reply_timeout` (2.5 ms) after the request's last byte, counted from `now` at sending plus the
request's wire time at 115200 baud; nothing else is on the bus meanwhile. A device that misses a
poll is polled again in the next cycle, never retried within one; a command in back-off keeps
its device out of the cycle (no poll, no other command) so its retry stays a retry.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gateway.device_link import (
    CommandRejected,
    CommandSlot,
    DeviceLink,
    Execute,
    ExecuteFailed,
    LinkEffect,
    LinkEvent,
    NoReply,
    OfficeOutcome,
    PollSlot,
    PortLost,
    PressId,
    Replied,
    SetLamps,
    Transmit,
)
from gateway.firmware_update import FirmwareUpdate
from gateway.journal import RequestDone
from hal.codec import REPLY_TIMEOUT_S, TURNAROUND_S, Frame, P, wire_time
from office.calendar import ModeOverride, plan_for
from office.config import OfficeConfig
from office.model import Command, Decision, IssueRefused, NobodyWaiting, OfficeError, ShowCall, TicketReady
from office.model import Effect as OfficeEffect

_log = logging.getLogger(__name__)


def offered_services(config: OfficeConfig, wall: datetime, override: ModeOverride | None = None) -> frozenset[str]:
    """The services offered at `wall` (an aware moment): what dispenser lamps show."""
    local = wall.astimezone(config.tz)
    period = plan_for(config, local.date(), override).period_at(local.time())
    return frozenset(period.services) if period else frozenset()


class CallRouter:
    """Where a call goes: every call display and counter pad of the office, whatever bus it is on.

    One router is shared by all of an office's buses and by every other source of calls (the
    control socket, a GPIO counter), so a call made anywhere reaches each display exactly once:
    each link queues one CALL with its own seq, and a display that is offline (its bus down, say)
    still records it as its current call, resent without a chime when it is seen again."""

    def __init__(self, links: Iterable[DeviceLink] = ()) -> None:
        self.links: list[DeviceLink] = []
        self.add(links)

    def add(self, links: Iterable[DeviceLink]) -> None:
        seen = {id(link) for link in self.links}
        for link in links:
            if id(link) not in seen:  # a link listed twice must not show a call twice
                seen.add(id(link))
                self.links.append(link)
        # Displays first: the CALL is what residents wait for (docs/protocol.md latency).
        self.links.sort(key=lambda link: link.spec.kind != P.KIND_CALL_DISPLAY)

    def show(self, effect: OfficeEffect, now: float) -> list[LinkEffect]:
        """Route one office effect: calls (ShowCall, NobodyWaiting) to every display and pad."""
        if not isinstance(effect, ShowCall | NobodyWaiting):
            return []
        out: list[LinkEffect] = []
        for link in self.links:
            if link.spec.kind in (P.KIND_CALL_DISPLAY, P.KIND_COUNTER_PAD):
                out += link.handle(OfficeOutcome(effect), now)
        return out


@dataclass(frozen=True, slots=True)
class PressStore:
    """How a bus stores its devices' presses once each (docs/protocol.md, "Sequence numbers,
    retries and duplicates"): `execute(command, request)` runs a press's command with its request
    id stored in the same transaction (TicketJournal.execute), and raises RequestDone if the id
    was stored already: by a gateway that stopped between storing the press and acknowledging it.
    `bus` names the bus in the ids, the same across restarts (its port URL)."""

    bus: str
    execute: Callable[[Command, str], Decision]


@dataclass(slots=True)
class _InFlight:
    link: DeviceLink
    frame: Frame
    wire: bytes
    sent_at: float
    deadline: float
    update: FirmwareUpdate | None = None  # a firmware transfer's exchange, not the link's


class BusMaster:
    """The poll scheduler and router for one bus (see the module docstring).

    `execute` runs an office command durably (TicketJournal.execute bound to a wall clock) and
    returns its Decision; an OfficeError it raises goes back to the device that asked. `router`
    shows the calls it brings about: the office's shared one, else one of this bus's links.
    `presses`, when given, runs instead the commands of device events that have a PressId (a
    device with a boot number), so that a press stored before a restart is not acted on again;
    without it (tests, tools) such a press is told apart in memory only."""

    def __init__(
        self,
        links: Iterable[DeviceLink],
        execute: Callable[[Command], Decision],
        *,
        reply_timeout: float = REPLY_TIMEOUT_S,
        min_cycle: float = 0.0,
        router: CallRouter | None = None,
        presses: PressStore | None = None,
    ) -> None:
        self.links = sorted(links, key=lambda link: link.addr)
        self.router = router if router is not None else CallRouter(self.links)
        self.by_addr = {link.addr: link for link in self.links}
        # Urgent commands: call displays first (a CALL is what residents wait for), then by address.
        self._urgent_order = sorted(self.links, key=lambda link: (link.spec.kind != P.KIND_CALL_DISPLAY, link.addr))
        if len(self.by_addr) != len(self.links):
            raise ValueError("two device links with the same address")
        self._execute = execute
        self.presses = presses
        self.presses_again = 0  # presses met again that were stored already (acknowledged, not acted on)
        self.reply_timeout = reply_timeout
        self.min_cycle = min_cycle
        self._decoder: Any = P.Decoder()
        self._inflight: _InFlight | None = None
        self._pos = len(self.links)  # the cycle's next poll; == len: polls of this cycle done
        self._bulk_done = True
        self._bulk_turn = 0
        self._cycle_start: float | None = None
        self.cycles = 0  # cycles started
        self.exchanges = 0
        self.timeouts = 0
        self.stray = 0  # valid frames that answered nothing in flight
        # Received frames dropped undecoded (the decoder resyncs at the next delimiter): a bad
        # CRC, or other damage. Each is also counted on the link whose exchange was under way
        # (only that device may talk then), so a device's state shows its own line's trouble.
        self.crc_drops = 0
        self.bad_frames = 0
        self.updates: dict[int, FirmwareUpdate] = {}  # addr -> transfer under way (start_update)

    # -- scheduling --------------------------------------------------------------------------------
    @property
    def in_flight(self) -> bool:
        return self._inflight is not None

    @property
    def deadline(self) -> float | None:
        return self._inflight.deadline if self._inflight else None

    def next_request(self, now: float) -> bytes | None:
        """The wire bytes of the next request to send now, or None if the bus should stay quiet
        (an exchange is under way, or the next cycle is not due: see next_wakeup)."""
        if self._inflight is not None:
            return None
        for link in self._urgent_order:  # urgent first
            if link.wants(now):
                sent = self._offer(link, CommandSlot(bulk=False), now)
                if sent is not None:
                    return sent
        for _ in range(2):  # at most: finish this cycle, then start the next
            while self._pos < len(self.links):
                link = self.links[self._pos]
                self._pos += 1
                sent = self._offer(link, PollSlot(), now)
                if sent is not None:
                    return sent
            if not self._bulk_done:
                self._bulk_done = True
                n = len(self.links)
                for i in range(n):
                    link = self.links[(self._bulk_turn + i) % n]
                    if link.wants(now, bulk=True):
                        self._bulk_turn = (self._bulk_turn + i + 1) % n
                        sent = self._offer(link, CommandSlot(bulk=True), now)
                        if sent is not None:
                            return sent
                sent = self._offer_update(now)  # a bulk slot no link wanted carries a firmware chunk
                if sent is not None:
                    return sent
            if self._cycle_start is not None and now < self._cycle_start + self.min_cycle:
                return None
            self._cycle_start = now
            self._pos = 0
            self._bulk_done = False
            self.cycles += 1
        return None

    def cycle_done(self, now: float) -> bool:
        """Every device of the cycle under way polled and its bulk exchange (if any) given."""
        return self._pos >= len(self.links) and (
            self._bulk_done or not any(link.wants(now, bulk=True) for link in self.links)
        )

    def next_wakeup(self, now: float) -> float:
        """When next_request may next have something to send."""
        if self._inflight is not None:
            return self._inflight.deadline
        times = [t for t in (link.retry_at() for link in self.links) if t is not None]
        if self._cycle_start is not None:
            times.append(self._cycle_start + self.min_cycle)
        return max(now, min(times)) if times else now

    def _offer(self, link: DeviceLink, event: LinkEvent, now: float) -> bytes | None:
        for effect in link.handle(event, now):
            if isinstance(effect, Transmit):
                wire = bytes(effect.frame.to_bytes())
                deadline = now + wire_time(len(wire)) + self.reply_timeout
                self._inflight = _InFlight(link, effect.frame, wire, now, deadline)
                self.exchanges += 1
                return wire
        return None

    def start_update(self, update: FirmwareUpdate) -> None:
        """Transfer a firmware bundle to one device of this bus, one exchange in a bulk slot that
        no link's bulk command wanted (so a cycle still has at most one bulk exchange). It stays
        in `updates` when finished, for its state and error, until replaced."""
        if update.addr not in self.by_addr:
            raise ValueError(f"no device at address {update.addr} on this bus")
        self.updates[update.addr] = update

    def _offer_update(self, now: float) -> bytes | None:
        for addr, update in sorted(self.updates.items()):
            frame = update.next_frame(now)
            if frame is not None:
                wire = bytes(frame.to_bytes())
                deadline = now + wire_time(len(wire)) + self.reply_timeout
                self._inflight = _InFlight(self.by_addr[addr], frame, wire, now, deadline, update)
                self.exchanges += 1
                return wire
        return None

    # -- replies ---------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> list[LinkEffect]:
        """Bytes from the bus. A valid reply to the request in flight completes the exchange."""
        effects: list[LinkEffect] = []
        decoder = self._decoder
        crc, dropped = decoder.bad_crc, decoder.dropped
        frames = decoder.feed(data)
        if decoder.dropped != dropped:
            self._damaged(decoder.bad_crc - crc, decoder.dropped - dropped - (decoder.bad_crc - crc))
        for frame in frames:
            ex = self._inflight
            if ex is None or not frame.is_reply or frame.addr != ex.link.addr or frame.seq != ex.frame.seq:
                self.stray += 1
                continue
            self._inflight = None
            if ex.update is not None:
                ex.update.on_reply(frame, now)
                continue
            effects += self._dispatch(ex.link, ex.link.handle(Replied(frame), now), now)
        return effects

    def _damaged(self, crc: int, other: int) -> None:
        self.crc_drops += crc
        self.bad_frames += other
        if self._inflight is not None:
            link = self._inflight.link
            link.crc_drops += crc
            link.bad_frames += other

    def tick(self, now: float) -> list[LinkEffect]:
        """Time passes: an exchange whose reply is overdue ends as NoReply."""
        ex = self._inflight
        if ex is None or now < ex.deadline:
            return []
        self._inflight = None
        self.timeouts += 1
        self._decoder.reset()  # a half-received reply belongs to nobody now
        if ex.update is not None:
            ex.update.on_no_reply(now)
            return []
        return self._dispatch(ex.link, ex.link.handle(NoReply(), now), now)

    # -- routing -----------------------------------------------------------------------------------
    def _dispatch(self, origin: DeviceLink, effects: list[LinkEffect], now: float) -> list[LinkEffect]:
        out: list[LinkEffect] = []
        for effect in effects:
            out.append(effect)
            if isinstance(effect, Execute):
                out += self._run(origin, effect.command, now, effect.press)
        return out

    def _run(self, origin: DeviceLink, command: Command, now: float, press: PressId | None = None) -> list[LinkEffect]:
        try:
            if press is None or self.presses is None:
                decision = self._execute(command)
            else:
                try:
                    decision = self.presses.execute(command, press.request(self.presses.bus, origin.addr))
                except RequestDone:
                    # Stored by a gateway that stopped before its ack reached the device: the link
                    # acks it now (it was accepted), and nothing else happens — no second ticket,
                    # no second call.
                    self.presses_again += 1
                    _log.info(
                        "device %d: press ev %d of boot %d already stored; acknowledged again",
                        origin.addr,
                        press.ev,
                        press.boot,
                    )
                    return []
        except OfficeError as e:
            return origin.handle(CommandRejected(e.code, str(e)), now)
        except Exception as e:  # the journal could not store it: the bus must keep running
            return origin.handle(ExecuteFailed(f"{type(e).__name__}: {e}"), now)
        out: list[LinkEffect] = []
        for effect in decision.effects:
            if isinstance(effect, TicketReady | IssueRefused):
                out += origin.handle(OfficeOutcome(effect), now)
            else:
                out += self.router.show(effect, now)
        return out

    def port_lost(self, why: str, now: float) -> list[LinkEffect]:
        """The port is gone: the exchange under way ends unanswered, every device is offline at
        once, and the next cycle starts afresh when the port is back (BusConnection)."""
        ex, self._inflight = self._inflight, None
        if ex is not None and ex.update is not None:
            ex.update.on_no_reply(now)  # the transfer sends that frame again later, as after any silence
        self._decoder.reset()
        self._pos = len(self.links)
        self._bulk_done = True
        self._cycle_start = None
        effects: list[LinkEffect] = []
        for link in self.links:
            effects += link.handle(PortLost(why), now)
        return effects

    def set_offered(self, services: frozenset[str], now: float) -> None:
        """The services offered now (office.calendar): every dispenser lights those buttons."""
        for link in self.links:
            link.handle(SetLamps(services), now)


class Clock(Protocol):
    """Monotonic seconds. `wait_until` returns once now() >= t (a fake clock just jumps)."""

    def now(self) -> float: ...

    def wait_until(self, t: float) -> None: ...


class MonotonicClock:
    """The real clock: time.monotonic(), and a sleep until `t`."""

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class Port(Protocol):
    """The pyserial port surface the driver uses."""

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...


class SyncDriver:
    """Runs a BusMaster on a pyserial port, one exchange per step(). A port's read timeout
    bounds how long a read waits; the clock decides what time it is (a fake one in tests).

    An exchange reads at most what the wire can carry before its deadline (plus FLOOD_SLACK):
    a device babbling without pause (a broken transceiver, a board stuck sending) would otherwise
    keep the read loop going forever and starve the other buses and the control socket. Past
    that, the exchange ends unanswered at its deadline (`floods` counts them)."""

    FLOOD_SLACK = 64  # bytes: a reply read a little late, and a late one from the exchange before

    def __init__(self, bus: BusMaster, port: Port, clock: Clock) -> None:
        self.bus = bus
        self.port = port
        self.clock = clock
        self.floods = 0
        self._request = b""  # the exchange under way (or the last one)
        self._sent_at = 0.0
        self._received = 0
        self._window = 0  # bytes the wire carries from sending to the reply's deadline

    def step(self) -> list[LinkEffect]:
        """One exchange (its request, its reply or time-out, its time on the wire), or a wait until
        the bus has something to send."""
        now = self.clock.now()
        if not self.begin(now):
            self.clock.wait_until(self.bus.next_wakeup(now))
            return []
        effects = self.pump()
        while self.bus.in_flight:
            self.clock.wait_until(self.reply_wait())
            effects += self.pump()
        self.clock.wait_until(self.settle_at)
        return effects

    # The pieces of step(), for running several buses' exchanges at the same time (step_buses).
    def begin(self, now: float) -> bool:
        """Put the next request on the wire if one is due at `now`; False if the bus stays quiet."""
        request = self.bus.next_request(now)
        if request is None:
            return False
        self.port.write(request)
        self._request, self._sent_at, self._received = request, now, 0
        self._window = int(((self.bus.deadline or now) - now) / wire_time(1))
        return True

    @property
    def flooded(self) -> bool:
        return self._received > self._window + self.FLOOD_SLACK

    def pump(self) -> list[LinkEffect]:
        """Read what has arrived for the exchange under way, and end it if its reply is overdue.
        Never waits: while the exchange is still in flight, wait until reply_wait() and pump again."""
        effects: list[LinkEffect] = []
        while self.bus.in_flight and not self.flooded:
            chunk = self.port.read(max(1, self.port.in_waiting))
            if not chunk:
                break
            self._received += len(chunk)
            effects += self.bus.receive(chunk, self.clock.now())
        deadline = self.bus.deadline
        if deadline is not None and self.clock.now() >= deadline:
            if self.flooded:
                self.floods += 1  # more than the wire carries before the deadline: ended there
            effects += self.bus.tick(self.clock.now())
        return effects

    def reply_wait(self) -> float:
        """While an exchange is in flight: when to pump next (now if bytes are waiting)."""
        deadline = self.bus.deadline
        if deadline is None:
            return self.clock.now()
        if self.flooded or self.port.in_waiting == 0:
            return deadline
        return self.clock.now()

    @property
    def settle_at(self) -> float:
        """When the last exchange is over on the wire: both frames and two turnarounds."""
        received = min(self._received, self._window)
        return self._sent_at + wire_time(len(self._request) + received) + 2 * TURNAROUND_S

    def run_until(self, t: float) -> list[LinkEffect]:
        effects: list[LinkEffect] = []
        while self.clock.now() < t:
            effects += self.step()
        return effects

    def run_cycles(self, n: int) -> list[LinkEffect]:
        """Run until `n` cycles have ended, the one under way (if any) counting as the first."""
        effects: list[LinkEffect] = []
        bus = self.bus
        target = bus.cycles + n - (0 if bus.cycles == 0 or bus.cycle_done(self.clock.now()) else 1)
        while not (bus.cycles >= target and bus.cycle_done(self.clock.now())):
            effects += self.step()
        return effects


@dataclass
class Backoff:
    """The delays between attempts to reopen a lost port: `first`, doubling with each failure, at
    most `limit`. `jitter` (0 to 1) takes up to that fraction off each delay, drawn from `rng`
    (seeded, so a run is repeatable); 0, the default, makes the delays exact. Pure: no clock."""

    first: float = 0.25
    limit: float = 8.0
    jitter: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    failures: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.limit:
            raise ValueError(f"back-off: need 0 < first <= limit (got first={self.first}, limit={self.limit})")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"back-off: jitter is a fraction from 0 to 1 (got {self.jitter})")

    def next_delay(self) -> float:
        """Count one more failure; the delay before the next attempt."""
        delay = min(self.limit, self.first * 2.0 ** min(self.failures, 32))
        self.failures += 1
        if self.jitter:
            delay *= 1.0 - self.jitter * self.rng.random()
        return delay

    def reset(self) -> None:
        """The port works again: the next loss starts from `first`."""
        self.failures = 0


class OpenPort(Port, Protocol):
    """A port BusConnection opened and will close."""

    def close(self) -> None: ...


class BusConnection:
    """One bus's serial port, kept open: a SyncDriver runs the BusMaster on it while it is open.

    When the port fails (an OSError such as serial.SerialException from a read or a write: a
    USB-RS485 adapter unplugged, a pty closed), the exchange under way ends, every device on the
    bus goes offline at once (BusMaster.port_lost), the port is closed, and it is reopened at
    `Backoff` times on the injected clock. step() never sleeps while the port is closed, so the
    gateway's other buses, its control socket and its journal carry on. Back-off restarts from
    `first` only after a step on the reopened port went through: a port that opens and fails at
    once keeps doubling. A ValueError from `opener` (a URL that can never work) is raised: that
    is a configuration error, not a missing device."""

    def __init__(
        self,
        bus: BusMaster,
        url: str,
        clock: Clock,
        opener: Callable[[str], OpenPort],
        backoff: Backoff | None = None,
    ) -> None:
        self.bus = bus
        self.url = url
        self.clock = clock
        self.opener = opener
        self.backoff = backoff if backoff is not None else Backoff()
        self.port: OpenPort | None = None
        self.driver: SyncDriver | None = None
        self.retry_at = clock.now()  # while closed: when the next attempt is due
        self.down_since: float | None = clock.now()  # None while open
        self.opens = 0
        self.losses = 0
        self.failed_opens = 0
        self._failed_since_open = 0
        self._last_error = ""
        self._proven = False  # a step on the open port went through
        self._pending: list[LinkEffect] = []  # effects of a loss in begin(), handed out by pump()

    @property
    def is_open(self) -> bool:
        return self.port is not None

    def connect(self) -> bool:
        """Try to open the port now; False (logged, next attempt scheduled) if it cannot be."""
        now = self.clock.now()
        try:
            port = self.opener(self.url)
        except OSError as exc:
            self._failed(_why(exc), now)
            return False
        if self.down_since is not None and (self.opens or self._failed_since_open):
            _log.warning(
                "bus %s: port open again after %.2f s (%d failed attempt(s)); polling its devices",
                self.url,
                now - self.down_since,
                self._failed_since_open,
            )
        else:
            _log.info("bus %s: port open", self.url)
        self.port = port
        self.driver = SyncDriver(self.bus, port, self.clock)
        self.opens += 1
        self.down_since = None
        self._failed_since_open = 0
        self._last_error = ""
        self._proven = False
        return True

    def step(self) -> list[LinkEffect]:
        """One exchange on the open port; while it is closed, a reopen attempt when one is due."""
        if self.port is None and (self.clock.now() < self.retry_at or not self.connect()):
            return []
        assert self.driver is not None
        try:
            effects = self.driver.step()
        except OSError as exc:  # serial.SerialException is one
            return self._lost(_why(exc))
        if not self._proven:
            self._proven = True
            self.backoff.reset()
        return effects

    # The pieces of step(), for step_buses: a port failing in any of them is a loss, as in step().
    def begin(self, now: float) -> bool:
        """Send this bus's next request at `now` if its port is open (or reopens now) and one is due."""
        if self.port is None and (now < self.retry_at or not self.connect()):
            return False
        assert self.driver is not None
        try:
            return self.driver.begin(now)
        except OSError as exc:
            self._pending += self._lost(_why(exc))
            return False

    @property
    def in_flight(self) -> bool:
        return self.driver is not None and self.bus.in_flight

    def take_pending(self) -> list[LinkEffect]:
        """The effects of a loss in begin() (its devices going offline), once."""
        effects, self._pending = self._pending, []
        return effects

    def pump(self) -> list[LinkEffect]:
        """Read what has arrived for the exchange under way (SyncDriver.pump); never waits."""
        effects = self.take_pending()
        if self.driver is None:
            return effects
        try:
            effects += self.driver.pump()
        except OSError as exc:
            return effects + self._lost(_why(exc))
        if not self._proven and not self.bus.in_flight:
            self._proven = True
            self.backoff.reset()
        return effects

    def wakeup(self, now: float) -> float:
        """When this bus next has something to do: a reply to read, a request due, a reopen attempt."""
        if self.driver is None:
            return self.retry_at
        if self.bus.in_flight:
            return self.driver.reply_wait()
        return self.bus.next_wakeup(now)

    def close(self) -> None:
        port, self.port, self.driver = self.port, None, None
        if port is not None:
            with contextlib.suppress(Exception):  # it may be gone already; closing must not fail
                port.close()

    def _lost(self, why: str) -> list[LinkEffect]:
        now = self.clock.now()
        self.close()
        self.losses += 1
        self.down_since = now
        effects = self.bus.port_lost(f"{self.url}: {why}", now)  # each device's log line names the port
        delay = self.backoff.next_delay()
        self.retry_at = now + delay
        _log.warning(
            "bus %s: port lost (%s); its %d device(s) are offline; reopening in %.2f s",
            self.url,
            why,
            len(self.bus.links),
            delay,
        )
        self._last_error = why
        return effects

    def _failed(self, why: str, now: float) -> None:
        self.failed_opens += 1
        self._failed_since_open += 1
        delay = self.backoff.next_delay()
        self.retry_at = now + delay
        # A new reason is news; the same one again every few seconds while unplugged is not.
        level = logging.WARNING if why != self._last_error else logging.DEBUG
        _log.log(level, "bus %s: cannot open port (%s); next attempt in %.2f s", self.url, why, delay)
        self._last_error = why


def step_buses(
    connections: Iterable[BusConnection],
    clock: Clock,
    max_wait: float,
    idle: Callable[[float], None] | None = None,
) -> list[LinkEffect]:
    """One turn of several buses, side by side: each bus is its own wire, so every bus with a
    request due sends it at once, the replies are read as they come, and the turn ends when the
    longest of these exchanges is over on its wire — the buses' exchanges overlap instead of
    queueing one behind the other. A bus with nothing due, or whose port is lost, costs nothing.
    With nothing due anywhere, it waits until the first bus has something (a cycle starts, a
    retry's back-off ends, a lost port's next attempt), at most `max_wait` so that the caller's
    other work (the control socket) is not kept waiting; `idle(t)`, when given, spends that wait
    until `t` (the gateway answers its control socket meanwhile). Returns every bus's effects."""
    buses = list(connections)
    now = clock.now()
    started = [c for c in buses if c.begin(now)]
    effects: list[LinkEffect] = []
    for c in buses:
        effects += c.take_pending()  # a port lost while sending: its devices' StateChanged
    waiting = started
    while waiting:
        for c in waiting:
            effects += c.pump()
        waiting = [c for c in waiting if c.in_flight]
        if waiting:
            clock.wait_until(min(c.wakeup(now) for c in waiting))
    settled = [c.driver.settle_at for c in started if c.driver is not None]
    if settled:
        clock.wait_until(max(settled))
    elif not started:
        (idle or clock.wait_until)(min([now + max_wait, *(c.wakeup(now) for c in buses)]))
    return effects


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
