"""The bus master: who talks on the RS-485 bus, and when.

Owns the bus schedule: one request at a time (the reply, or its time-out, ends the exchange);
a cycle polls every device once in address order, then gives at most one bulk exchange
(SHOW_TEXT, RECENT) to one device, taking turns; urgent commands (CALL, DISPLAY_NUMBER, LAMPS,
retries whose back-off is over) go out before the next poll. It also routes office effects to the
links that show them. It must not know what a device does with a frame (gateway.device_link) nor
touch a port: `BusMaster` is pure (bytes in, bytes out, an injected clock in seconds), and
`SyncDriver` puts it on a pyserial port.

Timing assumptions (docs/protocol.md, "Timing"): a request's reply is complete within
`reply_timeout` (2.5 ms) after the request's last byte, counted from `now` at sending plus the
request's wire time at 115200 baud; nothing else is on the bus meanwhile. A device that misses a
poll is polled again in the next cycle, never retried within one; a command in back-off keeps
its device out of the cycle (no poll, no other command) so its retry stays a retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    Replied,
    SetLamps,
    Transmit,
)
from hal.codec import REPLY_TIMEOUT_S, TURNAROUND_S, Frame, P, wire_time
from office.calendar import plan_for
from office.config import OfficeConfig
from office.model import Command, Decision, IssueRefused, NobodyWaiting, OfficeError, ShowCall, TicketReady


def offered_services(config: OfficeConfig, wall: datetime) -> frozenset[str]:
    """The services offered at `wall` (an aware moment): what dispenser lamps show."""
    local = wall.astimezone(config.tz)
    period = plan_for(config, local.date()).period_at(local.time())
    return frozenset(period.services) if period else frozenset()


@dataclass(slots=True)
class _InFlight:
    link: DeviceLink
    frame: Frame
    wire: bytes
    sent_at: float
    deadline: float


class BusMaster:
    """The poll scheduler and router for one bus (see the module docstring).

    `execute` runs an office command durably (TicketJournal.execute bound to a wall clock) and
    returns its Decision; an OfficeError it raises goes back to the device that asked."""

    def __init__(
        self,
        links: Iterable[DeviceLink],
        execute: Callable[[Command], Decision],
        *,
        reply_timeout: float = REPLY_TIMEOUT_S,
        min_cycle: float = 0.0,
    ) -> None:
        self.links = sorted(links, key=lambda link: link.addr)
        self.by_addr = {link.addr: link for link in self.links}
        # Urgent commands: call displays first (a CALL is what residents wait for), then by address.
        self._urgent_order = sorted(self.links, key=lambda link: (link.spec.kind != P.KIND_CALL_DISPLAY, link.addr))
        if len(self.by_addr) != len(self.links):
            raise ValueError("two device links with the same address")
        self._execute = execute
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

    # -- replies ---------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> list[LinkEffect]:
        """Bytes from the bus. A valid reply to the request in flight completes the exchange."""
        effects: list[LinkEffect] = []
        for frame in self._decoder.feed(data):
            ex = self._inflight
            if ex is None or not frame.is_reply or frame.addr != ex.link.addr or frame.seq != ex.frame.seq:
                self.stray += 1
                continue
            self._inflight = None
            effects += self._dispatch(ex.link, ex.link.handle(Replied(frame), now), now)
        return effects

    def tick(self, now: float) -> list[LinkEffect]:
        """Time passes: an exchange whose reply is overdue ends as NoReply."""
        ex = self._inflight
        if ex is None or now < ex.deadline:
            return []
        self._inflight = None
        self.timeouts += 1
        self._decoder.reset()  # a half-received reply belongs to nobody now
        return self._dispatch(ex.link, ex.link.handle(NoReply(), now), now)

    # -- routing -----------------------------------------------------------------------------------
    def _dispatch(self, origin: DeviceLink, effects: list[LinkEffect], now: float) -> list[LinkEffect]:
        out: list[LinkEffect] = []
        for effect in effects:
            out.append(effect)
            if isinstance(effect, Execute):
                out += self._run(origin, effect.command, now)
        return out

    def _run(self, origin: DeviceLink, command: Command, now: float) -> list[LinkEffect]:
        try:
            decision = self._execute(command)
        except OfficeError as e:
            return origin.handle(CommandRejected(e.code, str(e)), now)
        except Exception as e:  # the journal could not store it: the bus must keep running
            return origin.handle(ExecuteFailed(f"{type(e).__name__}: {e}"), now)
        out: list[LinkEffect] = []
        for effect in decision.effects:
            if isinstance(effect, TicketReady | IssueRefused):
                out += origin.handle(OfficeOutcome(effect), now)
            elif isinstance(effect, ShowCall | NobodyWaiting):
                # Displays first: the CALL is what residents wait for (docs/protocol.md latency).
                for kind in (P.KIND_CALL_DISPLAY, P.KIND_COUNTER_PAD):
                    for link in self.links:
                        if link.spec.kind == kind:
                            out += link.handle(OfficeOutcome(effect), now)
        return out

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
    bounds how long a read waits; the clock decides what time it is (a fake one in tests)."""

    def __init__(self, bus: BusMaster, port: Port, clock: Clock) -> None:
        self.bus = bus
        self.port = port
        self.clock = clock

    def step(self) -> list[LinkEffect]:
        now = self.clock.now()
        request = self.bus.next_request(now)
        if request is None:
            self.clock.wait_until(self.bus.next_wakeup(now))
            return []
        self.port.write(request)
        effects: list[LinkEffect] = []
        received = 0
        while self.bus.in_flight:
            chunk = self.port.read(max(1, self.port.in_waiting))
            if chunk:
                received += len(chunk)
                effects += self.bus.receive(chunk, self.clock.now())
                continue
            deadline = self.bus.deadline
            if deadline is not None and self.clock.now() < deadline:
                if self.port.in_waiting == 0:
                    self.clock.wait_until(deadline)
                continue
            effects += self.bus.tick(self.clock.now())
        # The exchange took the wire time of both frames and two turnarounds.
        self.clock.wait_until(now + wire_time(len(request) + received) + 2 * TURNAROUND_S)
        return effects

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
