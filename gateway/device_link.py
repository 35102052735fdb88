"""One device on the bus, as the gateway sees it: a small state machine per device link.

Owns the link's session with one device: its request seq, the events accepted from it
(firmware.protocol.EventTracker), the commands waiting for it with their retries and back-off,
what it should be showing (sent again in full whenever it is seen afresh), and whether it is
there at all. Pure: `handle(event, now) -> effects`, times in seconds on an injected monotonic
clock, no I/O. It must not touch the bus (gateway.bus decides who talks when) or the journal (it
asks for office commands with `Execute` effects and is told the outcome with `OfficeOutcome`).

States (see docs/protocol.md, "Sessions, hello and offline"):

    CONNECTING  --HELLO to IDENTIFY-->            IDENTIFIED (its whole state is queued)
    IDENTIFIED  --state delivered-->              ONLINE
    ONLINE      --a poll unanswered, or a command failed after its retries--> DEGRADED
    DEGRADED    --a valid reply-->                ONLINE (IDENTIFIED first if state must be resent)
    any         --two consecutive polls unanswered--> OFFLINE (queued commands dropped)
    any         --PortLost (the bus's serial port is gone)--> OFFLINE at once (the same)
    OFFLINE     --a valid reply-->                IDENTIFIED (state resent) or CONNECTING (never identified)
    any         --HELLO to a POLL (it restarted)--> CONNECTING (IDENTIFY goes out at once)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum

from hal.codec import KIND_NAMES, Frame, P
from office.model import (
    CallNext,
    Command,
    FinishService,
    IssueRefused,
    IssueTicket,
    MarkNoShow,
    NobodyWaiting,
    PauseCounter,
    Recall,
    Reprint,
    ShowCall,
    TicketReady,
    Transfer,
)
from office.model import Effect as OfficeEffect
from signage.catalog import both

# The catalogue message for a refused ticket, per IssueRefused.reason (each line <= 60 bytes).
REFUSAL_MESSAGE: dict[str, str] = {
    "closed_today": "refused_closed_today",
    "not_offered_now": "refused_not_offered_now",
    "cut_off": "reception_closed",
    "range_exhausted": "refused_range_exhausted",
}


class LinkState(Enum):
    CONNECTING = "connecting"
    IDENTIFIED = "identified"
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A device as configured: where it is and what it is for.

    `services`: service ids by button/transfer index (LAMPS bit i, BUTTON_PRESS service i).
    `counter`: the counter a pad belongs to. `counter_label`: what a call display shows for it."""

    addr: int
    kind: int
    services: tuple[str, ...] = ()
    counter: str | None = None

    def __post_init__(self) -> None:
        if not P.ADDR_MIN <= self.addr <= P.ADDR_MAX:
            raise ValueError(f"device address {self.addr} is outside {P.ADDR_MIN}-{P.ADDR_MAX}")
        if self.kind not in KIND_NAMES:
            raise ValueError(f"device kind {self.kind} is not one of {sorted(KIND_NAMES)}")
        if len(self.services) > P.MAX_SERVICES:
            raise ValueError(f"at most {P.MAX_SERVICES} services per device, got {len(self.services)}")
        if self.kind == P.KIND_COUNTER_PAD and not self.counter:
            raise ValueError(f"counter pad at address {self.addr} needs its counter")

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A command for the device, without addr and seq (the link adds them when it goes out).

    `build(addr, seq)` makes the frame; it is called once, at the first attempt, so a lazily
    built frame (RECENT) carries what is current then, and a retry is the same bytes. `slot`
    names the piece of device state it sets (a newer one replaces a queued older one), or None
    for one-off commands (CALL, CHIME). `bulk` commands take the cycle's one bulk exchange."""

    name: str
    build: Callable[[int, int], Frame]
    bulk: bool = False
    slot: str | None = None
    token: str | None = None  # someone waits for it (a RESTART over MQTT): its ACK is told as CommandDone


# -- events ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PollSlot:
    """The scheduler offers this link its poll in the current cycle."""


@dataclass(frozen=True, slots=True)
class CommandSlot:
    """The scheduler offers this link an exchange for a queued command (bulk or urgent)."""

    bulk: bool = False


@dataclass(frozen=True, slots=True)
class Replied:
    """A valid reply to the request in flight (addr and seq already matched by the bus)."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class NoReply:
    """No valid reply to the request in flight before its time-out (lost or damaged)."""


@dataclass(frozen=True, slots=True)
class OfficeOutcome:
    """An office effect this device must show (routed here by the bus)."""

    effect: OfficeEffect


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """An office command this device asked for was refused by the model (OfficeError)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ExecuteFailed:
    """The office command could not be stored (journal error): nothing was recorded, so the
    device's event must not be acknowledged; it comes again with the next poll."""

    reason: str


@dataclass(frozen=True, slots=True)
class SetLamps:
    """Dispenser: these services are offered now. `lines`: what the panel says about the mode
    (gateway.mode_words: why it is closed, when it opens; () when open), None to leave it."""

    services: frozenset[str]
    lines: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TodaysCalls:
    """The office's business day now and its calls so far: `calls` as (ticket, counter id), newest
    first; `at_counters` as (counter id, ticket) of each counter's latest call. A day other
    than the one the device was last told of replaces what it shows: a call display those
    calls (RECENT) or a blank (CLEAR) when there are none, a counter pad its counter's latest
    number or a blank, so the morning never shows yesterday's calls (a display keeps them on
    its flash while the gateway is down). The same day again changes nothing."""

    day: date
    calls: tuple[tuple[str, str], ...] = ()
    at_counters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PortLost:
    """The bus's serial port is gone (adapter unplugged, pty closed): nothing reaches the device
    until the bus reopens it, so it is offline now, not after two more unanswered polls."""

    why: str


@dataclass(frozen=True, slots=True)
class SetPrinter:
    """Dispenser: what its ticket printer allows now (gateway.printing decides). `lines`: what
    the panel shows. `stopped`: the printer cannot print: every lamp goes dark and a press is
    refused (no ticket). `reprint`: (service, ticket) of a ticket whose print failed: the next
    press of that service's button reprints it instead of issuing another. Default: normal."""

    lines: tuple[str, ...] = ()
    stopped: bool = False
    reprint: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SetMessage:
    """Dispenser: the message set for it remotely (a dispenser_message; () for none). Lowest in
    the panel's precedence: it shows whenever the closed words, the printer's words and a
    refusal's are not on the panel, and comes back when they go."""

    lines: tuple[str, ...] = ()


LinkEvent = (
    PollSlot
    | CommandSlot
    | Replied
    | NoReply
    | OfficeOutcome
    | CommandRejected
    | ExecuteFailed
    | SetLamps
    | TodaysCalls
    | PortLost
    | SetPrinter
    | SetMessage
)


# -- effects --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Transmit:
    """Put this request on the bus now and wait for its reply."""

    frame: Frame
    poll: bool  # a poll (or IDENTIFY): not retried, counts toward offline


@dataclass(frozen=True, slots=True)
class PressId:
    """Which event of which boot of its device a press (BUTTON_PRESS, KEY) is: the HELLO's boot
    number, the lap (how many times the event numbers went round 1..255, mod 256, counted from
    the HELLO's `lap`) and `ev`. Names the press once for 65,280 events of a boot, far more than
    a device makes while the journal keeps request ids (two business days)."""

    boot: int
    lap: int
    ev: int

    def request(self, bus: str, addr: int) -> str:
        """The press's request id in the journal: `dev:<bus>:<addr>:<boot>:<n>`, n = lap × 255 + ev.
        `bus` names the bus the same way across restarts (its port URL): addresses repeat across
        buses."""
        return f"dev:{bus}:{addr}:{self.boot}:{self.lap * 255 + self.ev}"


@dataclass(frozen=True, slots=True)
class Execute:
    """Run this office command (journal, then model); tell the outcome back to `addr`. `press`:
    the device event that asked for it, stored with it so that it is acted on once even across a
    gateway restart (None: the device has no boot number, a version-1 board)."""

    addr: int
    command: Command
    press: PressId | None = None


@dataclass(frozen=True, slots=True)
class PrintTicket:
    """A ticket to print on the printer beside the dispenser at `addr`."""

    addr: int
    ticket: TicketReady


@dataclass(frozen=True, slots=True)
class StateChanged:
    addr: int
    old: LinkState
    new: LinkState
    why: str


@dataclass(frozen=True, slots=True)
class Identified:
    addr: int
    kind: int
    version: tuple[int, int, int]
    caps: int
    reset_cause: int
    proto: int = P.PROTOCOL_VERSION  # HELLO's: which message types the device knows


@dataclass(frozen=True, slots=True)
class CommandDone:
    """A command sent with a `token` was acknowledged by the device."""

    addr: int
    name: str
    token: str


@dataclass(frozen=True, slots=True)
class CommandFailed:
    addr: int
    name: str
    reason: str
    token: str | None = None  # the failed command's, when someone waits for it


LinkEffect = Transmit | Execute | PrintTicket | StateChanged | Identified | CommandFailed | CommandDone


@dataclass(slots=True)
class _Exchange:
    frame: Frame
    outgoing: Outgoing | None  # None for a poll / IDENTIFY
    attempt: int = 1
    ready_at: float = 0.0


def display_number(ticket: str) -> str:
    """A ticket id for the pad's 4-character display: "B-023" -> "B023"."""
    t = ticket.replace("-", "")
    return t[-4:].rjust(4)


def clip_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, never inside a character."""
    while len(text.encode()) > max_bytes:
        text = text[:-1]
    return text


def fit_recent(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The newest entries whose RECENT payload fits in one frame (123 bytes)."""
    out: list[tuple[str, str]] = []
    size = 1
    for ticket, counter in entries[: P.MAX_RECENT]:
        size += 2 + len(ticket.encode()) + len(counter.encode())
        if size > P.MAX_PAYLOAD:
            break
        out.append((ticket, counter))
    return out


def key_command(key: int, arg: int, counter: str, services: tuple[str, ...]) -> Command | None:
    """The office command for a counter-pad (or GPIO counter) key, None if it maps to nothing."""
    if key == P.KEY_CALL_NEXT:
        return CallNext(counter)
    if key == P.KEY_DONE:
        return FinishService(counter)
    if key == P.KEY_RECALL:
        return Recall(counter)
    if key == P.KEY_NO_SHOW:
        return MarkNoShow(counter)
    if key == P.KEY_TRANSFER:
        return Transfer(to_service=services[arg], counter=counter) if arg < len(services) else None
    if key == P.KEY_PAUSE:
        return PauseCounter(counter)
    return None


class DeviceLink:
    """The gateway's side of one device (see the module docstring for the states)."""

    def __init__(
        self,
        spec: DeviceSpec,
        new_token: Callable[[], str],
        counter_label: Callable[[str], str] = str,
    ) -> None:
        self.spec = spec
        self.addr = spec.addr
        self._new_token = new_token
        self._label = counter_label
        self.state = LinkState.CONNECTING
        self.tracker = P.EventTracker()
        self._prev_ack = 0  # the ack before the last accepted event, to undo it (ExecuteFailed)
        # What names its events for the journal (PressId): the boot number of the HELLO that
        # answered IDENTIFY (0: none, a version-1 board), that HELLO's lap for the first event
        # after it, and the (lap, ev) of the last event accepted since (None: none yet), with the
        # one before it to undo an ExecuteFailed as the ack is.
        self.boot = 0
        self._hello_lap = 0
        self._last_press: tuple[int, int] | None = None
        self._prev_press: tuple[int, int] | None = None
        self.seq = 0xFF  # the first request takes seq 0
        self.missed = 0
        self.identity: Identified | None = None
        self._need_identify = True
        self._identify_now = False  # a HELLO to a POLL: IDENTIFY right away, not next cycle
        # An event was accepted (its command stored): acknowledge it with a POLL right away, not
        # a cycle later. Until the device hears the ack it offers the event again, and a gateway
        # restarted meanwhile would act on it twice; this keeps that window to an exchange or two.
        self._ack_now = False
        self._resync = False  # state must be sent in full when next seen
        self._urgent: deque[Outgoing] = deque()
        self._bulk: deque[Outgoing] = deque()
        self._inflight: _Exchange | None = None
        self._retry: _Exchange | None = None
        # What the device should show, by slot, in the order to send it.
        self._desired: dict[str, Outgoing] = {}
        self.recent: list[tuple[str, str]] = []  # call display: newest first
        self.current: tuple[str, str] | None = None  # call display: the call it should show
        self.text: tuple[str, ...] = ()  # the message lines it should show
        # The link's error counters since the gateway started (docs/mqtt.md, devices): commands
        # that failed after their retries, retries, requests unanswered in time, its whole state
        # sent again (seen after being offline or failing, or after it restarted), HELLOs to a
        # POLL (it reset); the bus counts the replies it could not decode while this device's
        # exchange was under way: a bad CRC, or other damage (COBS, length, type, fields).
        self.polls_answered = 0  # a key the device took comes in with the next of them (the demo's clerks)
        self.failures = 0
        self.retries = 0
        self.timeouts = 0
        self.resyncs = 0
        self.restarts = 0
        self.crc_drops = 0
        self.bad_frames = 0
        self._state_sent = False
        # The last HELLO (any: to IDENTIFY or after a reset) and when it came (the link's clock).
        self.hello: Identified | None = None
        self.hello_at: float | None = None
        # Dispenser and its printer (SetPrinter): the services offered, whether presses are
        # refused, and the (service, ticket) the next press reprints.
        self._offered: frozenset[str] = frozenset()
        self.printer_stopped = False
        self.reprint: tuple[str, str] | None = None
        self._mode_text: tuple[str, ...] = ()  # the closed-office words last asked for (SetLamps)
        self._printer_text: tuple[str, ...] = ()  # the printer's words last asked for (SetPrinter)
        self.message: tuple[str, ...] = ()  # the remote message (SetMessage): shown when nothing above it is
        self._calls_day: date | None = None  # call display, counter pad: the business day it shows (TodaysCalls)

    # -- questions the scheduler asks ------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A command is waiting out its back-off: nothing else may go to this device meanwhile,
        or its retry would no longer be recognised as one by the device's duplicate filter."""
        return self._retry is not None

    def wants(self, now: float, bulk: bool = False) -> bool:
        """Has a command ready to go out now (for the urgent path, or the cycle's bulk slot)."""
        if self._inflight is not None or self.state is LinkState.OFFLINE:
            return False
        if self._retry is not None:
            return not bulk and now >= self._retry.ready_at
        if bulk:
            return bool(self._bulk) and not self._need_identify
        if self._need_identify:
            return self._identify_now
        return self._ack_now or bool(self._urgent)

    def retry_at(self) -> float | None:
        return self._retry.ready_at if self._retry is not None else None

    @property
    def pending(self) -> int:
        return len(self._urgent) + len(self._bulk) + (self._retry is not None)

    # -- the state machine ---------------------------------------------------------------------------
    def handle(self, event: LinkEvent, now: float) -> list[LinkEffect]:
        if isinstance(event, PollSlot):
            return self._poll_slot()
        if isinstance(event, CommandSlot):
            return self._command_slot(event.bulk, now)
        if isinstance(event, Replied):
            return self._replied(event.frame, now)
        if isinstance(event, NoReply):
            return self._no_reply(now)
        if isinstance(event, OfficeOutcome):
            return self._office_effect(event.effect)
        if isinstance(event, CommandRejected):
            return self._rejected(event)
        if isinstance(event, SetLamps):
            if event.lines is not None:
                self._set_mode_text(event.lines)
            return self._set_lamps(event.services)
        if isinstance(event, ExecuteFailed):
            self.tracker.ack = self._prev_ack
            self._last_press = self._prev_press
            self._ack_now = False  # not stored: offered again next cycle, not in a tight loop
            return [CommandFailed(self.addr, "execute", event.reason)]
        if isinstance(event, SetPrinter):
            return self._set_printer(event)
        if isinstance(event, TodaysCalls):
            self._todays_calls(event)
            return []
        if isinstance(event, SetMessage):
            self._set_message(event.lines)
            return []
        if isinstance(event, PortLost):
            self._inflight = None  # its reply can no longer come
            return self._offline(f"port lost: {event.why}")
        raise TypeError(f"not a link event: {event!r}")

    def _next_seq(self) -> int:
        self.seq = int(P.next_seq(self.seq))
        return self.seq

    def _go(self, new: LinkState, why: str) -> list[LinkEffect]:
        if new is self.state:
            return []
        old, self.state = self.state, new
        return [StateChanged(self.addr, old, new, why)]

    def _poll_slot(self) -> list[LinkEffect]:
        if self._inflight is not None or self._retry is not None:
            return []
        if self._need_identify:
            frame = P.Identify(self.addr, self._next_seq())
        else:
            frame = P.Poll(self.addr, self._next_seq(), self.tracker.ack)
            self._ack_now = False  # this poll carries the ack
        self._inflight = _Exchange(frame, None)
        return [Transmit(frame, poll=True)]

    def _command_slot(self, bulk: bool, now: float) -> list[LinkEffect]:
        if not self.wants(now, bulk):
            return []
        if self._retry is not None:
            ex, self._retry = self._retry, None
            self._inflight = ex
            self.retries += 1
            return [Transmit(ex.frame, poll=False)]
        if self._need_identify:  # right after a HELLO to a POLL
            self._identify_now = False
            frame = P.Identify(self.addr, self._next_seq())
            self._inflight = _Exchange(frame, None)
            return [Transmit(frame, poll=True)]
        if self._ack_now and not bulk:  # a POLL carrying the ack of the event just stored
            self._ack_now = False
            frame = P.Poll(self.addr, self._next_seq(), self.tracker.ack)
            self._inflight = _Exchange(frame, None)
            return [Transmit(frame, poll=True)]
        out = (self._bulk if bulk else self._urgent).popleft()
        frame = out.build(self.addr, self._next_seq())
        self._inflight = _Exchange(frame, out)
        return [Transmit(frame, poll=False)]

    # -- replies ---------------------------------------------------------------------------------
    def _replied(self, frame: Frame, now: float) -> list[LinkEffect]:
        ex, self._inflight = self._inflight, None
        if ex is None:
            return []
        effects: list[LinkEffect] = []
        if frame.TYPE == P.Hello.TYPE:
            return self._hello(frame, identify=ex.outgoing is None and ex.frame.TYPE == P.Identify.TYPE, now=now)
        self.missed = 0
        if ex.outgoing is None:  # a poll
            self.polls_answered += 1
            if self._need_identify:
                # IDENTIFY answered by something other than HELLO: ask again next cycle.
                return effects
            prev = self.tracker.ack
            if frame.TYPE in (P.ButtonPress.TYPE, P.Key.TYPE) and self.tracker.accept(frame.ev):
                self._prev_ack = prev
                self._ack_now = True
                effects += self._device_event(frame, self._press(frame.ev))
        else:
            if frame.TYPE == P.Nak.TYPE:
                if frame.reason == P.NAK_BUSY:
                    return effects + self._again(ex, now, "busy")
                effects += self._failed(ex, f"NAK reason {frame.reason}")
            elif frame.TYPE != P.Ack.TYPE:
                return effects + self._again(ex, now, f"unexpected {frame.NAME}")
            elif ex.outgoing.token is not None:
                effects.append(CommandDone(self.addr, ex.outgoing.name, ex.outgoing.token))
        return self._seen() + effects

    def _seen(self) -> list[LinkEffect]:
        """A valid reply: the device is there. Decide which state that makes it."""
        if self.state in (LinkState.OFFLINE, LinkState.DEGRADED) and self._resync:
            self._queue_state()
            return self._go(LinkState.IDENTIFIED, "seen again: sending its state")
        if self.state is LinkState.IDENTIFIED and not self._urgent and not self._bulk and self._retry is None:
            return self._go(LinkState.ONLINE, "state delivered")
        if self.state in (LinkState.OFFLINE, LinkState.DEGRADED):
            return self._go(LinkState.ONLINE, "answering again")
        return []

    def _hello(self, frame: Frame, identify: bool, now: float) -> list[LinkEffect]:
        self.missed = 0
        self.tracker.reset()
        self.hello = Identified(self.addr, frame.kind, tuple(frame.version), frame.caps, frame.reset_cause, frame.proto)
        self.hello_at = now
        if not identify:
            self.restarts += 1
            # It restarted (or never heard IDENTIFY): whatever it was told is gone.
            self._need_identify = True
            self._identify_now = True
            self._ack_now = False
            self._urgent.clear()
            self._bulk.clear()
            self._retry = None
            return self._go(LinkState.CONNECTING, f"HELLO after reset (cause {frame.reset_cause})")
        if frame.kind != self.spec.kind:
            self._need_identify = True
            return [
                CommandFailed(
                    self.addr, "IDENTIFY", f"a {KIND_NAMES[frame.kind]} answered, configured as a {self.spec.kind_name}"
                )
            ]
        self._need_identify = False
        # The events that follow are this boot's, the first of them in the HELLO's lap.
        self.boot, self._hello_lap, self._last_press = frame.boot, frame.lap, None
        self.identity = Identified(
            self.addr, frame.kind, tuple(frame.version), frame.caps, frame.reset_cause, frame.proto
        )
        self._queue_state()
        effects: list[LinkEffect] = [self.identity]
        return effects + self._go(LinkState.IDENTIFIED, "HELLO") + self._seen()

    def _no_reply(self, now: float) -> list[LinkEffect]:
        ex, self._inflight = self._inflight, None
        if ex is None:
            return []
        self.timeouts += 1
        if ex.outgoing is not None:
            return self._again(ex, now, "no reply")
        self.missed += 1
        if self.missed >= P.OFFLINE_AFTER_MISSED_POLLS:
            return self._offline(f"{self.missed} polls unanswered")
        if self.state in (LinkState.ONLINE, LinkState.IDENTIFIED):
            self._resync = self._resync or self.state is LinkState.IDENTIFIED
            return self._go(LinkState.DEGRADED, "a poll unanswered")
        return []

    def _offline(self, why: str) -> list[LinkEffect]:
        # Queued commands go; what it should show stays in _desired and is resent when it is seen.
        self._ack_now = False  # the next cycle's POLL carries the ack
        self._urgent.clear()
        self._bulk.clear()
        self._retry = None
        self._resync = True
        return self._go(LinkState.OFFLINE, why)

    def _again(self, ex: _Exchange, now: float, why: str) -> list[LinkEffect]:
        if ex.attempt > P.MAX_RETRIES:
            return self._failed(ex, f"{why} after {ex.attempt} attempts")
        ex.ready_at = now + P.retry_delay_ms(ex.attempt) / 1000
        ex.attempt += 1
        self._retry = ex
        return []

    def _failed(self, ex: _Exchange, why: str) -> list[LinkEffect]:
        self.failures += 1
        self._resync = True
        name = ex.outgoing.name if ex.outgoing else ex.frame.NAME
        effects: list[LinkEffect] = [CommandFailed(self.addr, name, why, ex.outgoing.token if ex.outgoing else None)]
        if self.state is LinkState.ONLINE or self.state is LinkState.IDENTIFIED:
            effects += self._go(LinkState.DEGRADED, f"{name} failed")
        return effects

    # -- device events -> office commands -----------------------------------------------------------
    def _press(self, ev: int) -> PressId | None:
        """The PressId of event `ev`, just accepted: events come in the order numbered, so the
        lap goes up when the number went round (255 -> 1). None without a boot number."""
        self._prev_press = last = self._last_press
        lap = self._hello_lap if last is None else (last[0] + (ev < last[1])) & 0xFF
        self._last_press = (lap, ev)
        return PressId(self.boot, lap, ev) if self.boot else None

    def _device_event(self, frame: Frame, press: PressId | None = None) -> list[LinkEffect]:
        spec = self.spec
        if frame.TYPE == P.ButtonPress.TYPE and spec.kind == P.KIND_DISPENSER:
            if frame.service >= len(spec.services):
                return [CommandFailed(self.addr, "BUTTON_PRESS", f"no service at button {frame.service}")]
            service = spec.services[frame.service]
            if self.printer_stopped:  # pressed before its lamps went dark: no ticket without paper
                return [CommandFailed(self.addr, "BUTTON_PRESS", "refused: its printer cannot print")]
            if self.reprint is not None and self.reprint[0] == service:
                ticket, self.reprint = self.reprint[1], None
                return [Execute(self.addr, Reprint(ticket, self._new_token()), press)]
            return [Execute(self.addr, IssueTicket(service, self._new_token()), press)]
        if frame.TYPE == P.Key.TYPE and spec.kind == P.KIND_COUNTER_PAD and spec.counter:
            command = key_command(frame.key, frame.arg, spec.counter, spec.services)
            if command is None:
                return [CommandFailed(self.addr, "KEY", f"key {frame.key} arg {frame.arg} means nothing here")]
            return [Execute(self.addr, command, press)]
        return [CommandFailed(self.addr, frame.NAME, f"not expected from a {spec.kind_name}")]

    # -- maintenance ------------------------------------------------------------------------------
    def maintenance(self, name: str, build: Callable[[int, int], Frame], token: str) -> str | None:
        """Queue a maintenance request of protocol version 3 (RESTART, FW_KEY) for someone who
        waits for it: its ACK comes back as CommandDone with `token`, a NAK or silence after the
        retries as CommandFailed with it. None if queued, else why it cannot go now (offline, not
        identified yet, firmware too old). Dropped, like any command, if the device goes offline."""
        if self.state is LinkState.OFFLINE or self._need_identify or self.identity is None:
            return "offline" if self.state is LinkState.OFFLINE else "not identified yet"
        if self.identity.proto < 3:
            return f"its firmware speaks protocol {self.identity.proto}; {name} needs 3"
        self._send(Outgoing(name, build, token=token))
        return None

    # -- office effects -> frames -----------------------------------------------------------------
    def _can(self, cap: int) -> bool:
        # Before HELLO we do not know the caps: queue the state, it is checked again on sending.
        return self.identity is None or bool(self.identity.caps & cap)

    def _send(self, out: Outgoing) -> None:
        if out.slot is not None:
            self._desired[out.slot] = out
        if self.state is LinkState.OFFLINE or self._need_identify:
            return  # not sent while offline; the desired state goes when it is next seen
        queue = self._bulk if out.bulk else self._urgent
        if out.slot is not None:
            for old in [o for o in queue if o.slot == out.slot]:
                queue.remove(old)
        queue.append(out)

    def _queue_state(self) -> None:
        if self._state_sent:
            self.resyncs += 1  # its whole state again: it restarted, or was offline or failing
        self._state_sent = True
        self._resync = False
        self._urgent.clear()
        self._bulk.clear()
        for slot, out in list(self._desired.items()):
            if not self._can(_SLOT_CAPS.get(slot, 0)):
                continue
            (self._bulk if out.bulk else self._urgent).append(out)

    def _office_effect(self, effect: OfficeEffect) -> list[LinkEffect]:
        kind = self.spec.kind
        if isinstance(effect, TicketReady) and kind == P.KIND_DISPENSER:
            if not effect.reprint:
                self.reprint = None  # someone took a new ticket: the reprint offer is over
            if not self.printer_stopped:
                self._printer_text = ()  # a reprint offer's words end with it (gateway.printing)
            resting = self._resting()
            if self.text != resting:
                self._show_text(resting)  # the words of an earlier refusal (or reprint offer) are over
            return [PrintTicket(self.addr, effect)]
        if isinstance(effect, IssueRefused) and kind == P.KIND_DISPENSER:
            self._show_text(both(REFUSAL_MESSAGE.get(effect.reason, "refused_other")))
        elif isinstance(effect, ShowCall):
            if kind == P.KIND_CALL_DISPLAY:
                self._show_call(effect)
            elif kind == P.KIND_COUNTER_PAD and effect.counter == self.spec.counter:
                self._show_number(display_number(effect.ticket), P.LAMP_GREEN, 0)
        elif isinstance(effect, NobodyWaiting) and kind == P.KIND_COUNTER_PAD and effect.counter == self.spec.counter:
            self._show_number("----", P.LAMP_AMBER, 0)
        return []

    def _rejected(self, event: CommandRejected) -> list[LinkEffect]:
        if self.spec.kind == P.KIND_COUNTER_PAD and self._can(P.CAP_STATUS_LAMP):
            self._send(Outgoing("STATUS_LAMP", lambda a, s: P.StatusLamp(a, s, P.LAMP_RED, 1), slot="status"))
        return [CommandFailed(self.addr, "office", f"{event.code}: {event.message}")]

    def _show_text(self, lines: tuple[str, ...]) -> None:
        self.text = lines
        if self._can(P.CAP_TEXT):
            self._send(Outgoing("SHOW_TEXT", lambda a, s: P.ShowText(a, s, list(lines)), bulk=True, slot="text"))

    def _show_number(self, text: str, colour: int, blink: int) -> None:
        if self._can(P.CAP_NUMBER):
            self._send(Outgoing("DISPLAY_NUMBER", lambda a, s: P.DisplayNumber(a, s, text), slot="number"))
        if self._can(P.CAP_STATUS_LAMP):
            self._send(Outgoing("STATUS_LAMP", lambda a, s: P.StatusLamp(a, s, colour, blink), slot="status"))

    def _counter_label(self, counter: str) -> str:
        """What a display shows for a counter: its name, cut to what a CALL carries."""
        return clip_utf8(self._label(counter), P.MAX_COUNTER) or counter[: P.MAX_COUNTER]

    def _show_call(self, call: ShowCall) -> None:
        label = self._counter_label(call.counter)
        flags = P.CALL_RECALL if call.recall else P.CALL_NEW
        self.current = (call.ticket, label)
        if not call.recall:
            self.recent = [self.current, *self.recent][: P.MAX_RECENT]
        self._send(Outgoing("CALL", lambda a, s: P.Call(a, s, flags, call.ticket, label)))
        if self._can(P.CAP_RECENT):
            # Part of the display's state for a resync only: CALL NEW puts itself on the list.
            # Resent, RECENT restores the current call too (its first entry, shown without a
            # chime: docs/protocol.md), so a display that rebooted or missed calls while
            # offline shows the call again, announced once at most and listed once.
            self._desired["recent"] = self._recent_outgoing()

    def _todays_calls(self, event: TodaysCalls) -> None:
        kind = self.spec.kind
        if kind not in (P.KIND_CALL_DISPLAY, P.KIND_COUNTER_PAD) or event.day == self._calls_day:
            return
        self._calls_day = event.day
        if kind == P.KIND_COUNTER_PAD:
            latest = next((ticket for counter, ticket in event.at_counters if counter == self.spec.counter), None)
            if latest is None:
                self._show_number("    ", P.LAMP_OFF, 0)
            else:  # as after the call: its number, green
                self._show_number(display_number(latest), P.LAMP_GREEN, 0)
            return
        self.recent = [(ticket, self._counter_label(counter)) for ticket, counter in event.calls[: P.MAX_RECENT]]
        self.current = self.recent[0] if self.recent else None
        # The "recent" slot: whatever the display lists, restored in full at a resync.
        if not self.recent:
            self._send(Outgoing("CLEAR", lambda a, s: P.Clear(a, s), slot="recent"))
        elif self._can(P.CAP_RECENT):
            self._send(self._recent_outgoing())

    def _recent_outgoing(self) -> Outgoing:
        """RECENT with the list as it is when it goes out (built lazily, at its first attempt)."""
        return Outgoing(
            "RECENT", lambda a, s: P.Recent(a, s, fit_recent(self.resync_recent())), bulk=True, slot="recent"
        )

    def resync_recent(self) -> list[tuple[str, str]]:
        """The RECENT list that resyncs a call display: the current call first (even a recall of
        an older ticket, which then is not repeated), then the other recent calls, newest first."""
        if self.current is None:
            return list(self.recent)
        return [self.current, *(e for e in self.recent if e != self.current)][: P.MAX_RECENT]

    def _set_mode_text(self, lines: tuple[str, ...]) -> None:
        """Closed: say why, again at every refresh (a refusal's words give way to it). Opened: the
        closed words are over, but words put there since (a printer's) stay."""
        if self.spec.kind != P.KIND_DISPENSER:
            return
        old, self._mode_text = self._mode_text, lines
        if lines and self.text != lines:
            self._show_text(lines)
        elif not lines and old and self.text == old:
            self._show_text(self._resting())

    def _resting(self) -> tuple[str, ...]:
        """What the panel shows when no refusal is on it: the closed words, else the printer's
        words, else the remote message (docs/mqtt.md, dispenser_message), else nothing."""
        return self._mode_text or self._printer_text or self.message

    def _set_message(self, lines: tuple[str, ...]) -> None:
        """A new remote message: shown now only where the old one was (nothing above it is on
        the panel); else it waits below the words shown, which give way to it when they go."""
        if self.spec.kind != P.KIND_DISPENSER:
            return
        old, self.message = self.message, lines
        if self.text == old and not self._mode_text and not self._printer_text and lines != old:
            self._show_text(lines)

    def _set_printer(self, event: SetPrinter) -> list[LinkEffect]:
        if self.spec.kind != P.KIND_DISPENSER:
            return []
        self.printer_stopped = event.stopped
        self.reprint = event.reprint
        self._printer_text = event.lines
        # Back to normal: the closed words, else the remote message, if any.
        lines = event.lines or self._mode_text or self.message
        if lines != self.text:
            self._show_text(lines)
        return self._set_lamps(self._offered)

    def _set_lamps(self, services: frozenset[str]) -> list[LinkEffect]:
        self._offered = services
        if self.spec.kind != P.KIND_DISPENSER or not self._can(P.CAP_LAMPS):
            return []
        mask = 0
        for i, service in enumerate(self.spec.services):
            if service in services and not self.printer_stopped:
                mask |= 1 << i
        current = self._desired.get("lamps")
        if current is not None and current.name == f"LAMPS {mask:#06x}":
            return []
        self._send(Outgoing(f"LAMPS {mask:#06x}", lambda a, s: P.Lamps(a, s, mask), slot="lamps"))
        return []


_SLOT_CAPS = {
    "text": P.CAP_TEXT,
    "lamps": P.CAP_LAMPS,
    "number": P.CAP_NUMBER,
    "status": P.CAP_STATUS_LAMP,
    "recent": P.CAP_RECENT,
}
