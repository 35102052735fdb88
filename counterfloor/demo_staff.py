"""The demo's residents and clerks at the floor's real interfaces, never at its journal.

Owns `FloorStaff.execute(command, now)`, which counterfloor.simulate calls for everything its
people do. A resident's ticket and a clerk's command are requests on the gateway's control socket
(as a kiosk and a clerk's terminal send them: gateway.control); "call next" at a counter with a
pad is a press of that pad's key on its board — the real firmware under MicroPython
(hal.firmware_sim) — which the gateway brings in when it polls the bus. The gateway alone writes
its journal; what the simulation learns is the socket's reply, or for a press the call the
gateway then shows.

The demo turns the gateway's loop itself, in the simulation's thread (the two never interleave, so
reading the gateway's floor here is safe, and its journal's connection stays in one thread): a
request is answered in the next turn (its buses' idle wait is spent at the socket); a press takes
turns until the pad's next poll brings it in. A pad that has not heard the gateway for a while (the
demo drew a picture or turned another office's gateway meanwhile), or not yet that its counter is
open, ignores its keys, as a real pad does: the clerk presses again.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.control import new_request_id
from gateway.control_server import READ_DEADLINE_S
from gateway.service import Gateway
from hal.codec import P
from office import events as ev
from office import model as m
from office.estimate import WaitRange
from office.state import TicketStatus

REPLY_TIMEOUT_S = 10.0  # real seconds: a request's reply, or a press's call
RELEASE_S = 0.08  # a finger off the key before it presses again (the board's debounce: 30 ms)
DEBOUNCE_S = 0.06  # the boards' 30 ms debounce, with room: a key held this long is an event if taken
MIN_CYCLE_S = 0.05
PRESS_TRIES = 5
IDLE_S = READ_DEADLINE_S / 2  # a connection this long without a request is about to be closed
SILENT_S = 0.3  # a loop not turned for this long: its pads stop taking keys at 500 ms of silence


class _Closed(Exception):
    """The gateway closed the connection before its reply."""


class StaffError(RuntimeError):
    """The floor did not answer as a floor must: the message says which request or press."""


@dataclass
class _Pad:
    board: Any  # hal.firmware_sim.FirmwareBoard
    link: Any  # gateway.device_link.DeviceLink: its answered polls
    mark: int | None = None  # the board's printed lines when its key was let go: its echo comes after
    let_go_at: float = 0.0  # when (monotonic)


@dataclass
class FloorStaff:
    """The people of one simulated floor, working through `gateway` (running in its thread)."""

    gateway: Gateway
    pads: dict[str, _Pad] = field(default_factory=dict)  # counter id -> its pad's board
    presses: int = 0  # calls made at a pad
    pressed_again: int = 0  # presses a pad did not take (it had not heard the gateway lately)
    requests: int = 0  # requests sent on the control socket
    on_ticket: Callable[[m.TicketReady], None] = lambda _: None  # each ticket issued, as the kiosk prints it
    _sock: socket.socket | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    _turned_at: float = 0.0  # when the gateway's loop last turned (monotonic)
    _answered_at: float = 0.0  # when the socket last answered (monotonic)

    def __post_init__(self) -> None:
        links = {link.spec.counter: link for _, link, _ in self.gateway.bus_devices() if link.spec.counter}
        self.pads = {counter: _Pad(board, links[counter]) for counter, board in pad_boards(self.gateway).items()}

    def step(self) -> None:
        """A turn of the gateway's loop."""
        self.gateway.step()
        self._turned_at = time.monotonic()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()

    # -- the simulation's seam --------------------------------------------------------------------
    def execute(self, command: m.Command, now: datetime) -> m.Decision:
        if isinstance(command, m.StartDay):
            # Nobody opens a day by hand: the gateway opens it with the day's first command.
            return m.Decision([], [])
        # The clerk sees on the pad whether anyone waits for the counter; a call is a press.
        if isinstance(command, m.CallNext) and command.counter in self.pads and self._someone_to_call(command, now):
            return self._press_call(command.counter)
        return self._request(request_for(command), now)

    def _someone_to_call(self, command: m.CallNext, now: datetime) -> bool:
        return any(isinstance(e, m.ShowCall) for e in self._office().decide(command, now).effects)

    # -- the control socket -----------------------------------------------------------------------
    def _request(self, req: dict[str, Any], now: datetime) -> m.Decision:
        # An id makes a resend after a lost connection exactly-once: the gateway answers a
        # request it already carried out with its first reply.
        req["at"], req["id"] = now.isoformat(timespec="milliseconds"), new_request_id()
        line = json.dumps(req).encode() + b"\n"
        try:
            reply = self._exchange(line, req)
        except (OSError, _Closed):
            self.close()  # the gateway hung up (it closes a connection idle for a while): again
            reply = self._exchange(line, req)
        self.requests += 1
        if not reply.get("ok"):
            raise StaffError(f"the gateway refused {req['cmd']} at {now:%H:%M:%S}: {reply.get('error')}")
        effects = [effect_from(e) for e in reply.get("effects", [])]
        for effect in effects:
            if isinstance(effect, m.TicketReady):
                self.on_ticket(effect)
        tokens = {e.ticket: e.token for e in effects if isinstance(e, m.TicketReady)}
        return m.Decision([event_from(r, tokens) for r in reply.get("events", [])], effects)

    def _exchange(self, line: bytes, req: dict[str, Any]) -> dict[str, Any]:
        if self._sock is not None and (time.monotonic() - self._answered_at > IDLE_S or self._hung_up(self._sock)):
            self.close()  # closed, or about to be, by the gateway as idle: a fresh connection instead
        sock = self._connected()
        sock.sendall(line)
        reply = self._reply(sock, req)
        self._answered_at = time.monotonic()
        return reply

    @staticmethod
    def _hung_up(sock: socket.socket) -> bool:
        """Whether the gateway has spoken unasked (its word on closing an idle connection) or closed."""
        try:
            sock.recv(1, socket.MSG_PEEK)  # a line, or b"" for closed: either way, not ours
            return True
        except BlockingIOError:
            return False  # nothing waiting: the connection is as it was
        except OSError:
            return True

    def _connected(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(self.gateway.socket_file))
            sock.setblocking(False)
            self._sock = sock
        return self._sock

    def _reply(self, sock: socket.socket, req: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while b"\n" not in self._buffer:
            if time.monotonic() > deadline:
                raise StaffError(f"no reply from the gateway's control socket to {req['cmd']}")
            self.step()
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise _Closed
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return dict(json.loads(line))

    # -- the pads ---------------------------------------------------------------------------------
    def _press_call(self, counter: str) -> m.Decision:
        pad = self.pads[counter]
        pin = f"key{P.KEY_CALL_NEXT}"
        cycle = (self.gateway.started or self.gateway.config).gateway.cycle_ms / 1000
        live = self._office().state.counters.get(counter)
        before = live.current if live is not None else None
        if time.monotonic() - self._turned_at > SILENT_S:
            # The demo drew its pictures or turned another office's loop meanwhile: the pads
            # have not heard the gateway and take no key until it polls them again.
            heard = time.monotonic() + 2 * max(cycle, MIN_CYCLE_S)
            self._turn_until(lambda: time.monotonic() >= heard, counter)
        for _ in range(PRESS_TRIES):
            if self._press_once(pad, pin, counter, before):
                break
            self.pressed_again += 1
        else:
            said = " | ".join(list(pad.board.output)[-4:])
            raise StaffError(f"counter {counter}'s call next: {PRESS_TRIES} presses, no call (its board said: {said})")
        called = self._called(counter, before)
        assert called is not None
        self.presses += 1
        return m.Decision([], [m.ShowCall(called, counter, recall=False)])

    def _press_once(self, pad: _Pad, pin: str, counter: str, before: str | None) -> bool:
        """Press call next and let go: True once the call came in, False if the pad did not take
        the key. A pad that has not heard the gateway lately, or not yet that its counter is open,
        takes no key, and then the clerk presses again — only once that is sure: a key the board
        took comes in with its next poll after the debounce, so two polls answered after that
        without the call mean it was not taken (a second press of a taken key would call the next
        resident too)."""
        self._let_go(pad, pin, counter)
        pad.board.send(f"down {pin}")
        down = time.monotonic()

        def came() -> bool:
            return self._called(counter, before) is not None

        self._turn_until(lambda: came() or time.monotonic() - down >= DEBOUNCE_S, counter)
        polled = pad.link.polls_answered
        self._turn_until(lambda: came() or pad.link.polls_answered >= polled + 2, counter)
        pad.mark, pad.let_go_at = pad.board.printed, time.monotonic()
        pad.board.send(f"up {pin}")
        return came()

    def _let_go(self, pad: _Pad, pin: str, counter: str) -> None:
        """The last press's release: the board must have it, for longer than its debounce."""
        mark = pad.mark
        if mark is None:
            return
        self._turn_until(lambda: pad.board.wait_line(f"pin {pin} up", 0, since=mark) is not None, counter)
        self._turn_until(lambda: time.monotonic() - pad.let_go_at >= RELEASE_S, counter)
        pad.mark = None

    def _turn_until(self, done: Callable[[], bool], counter: str) -> None:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while not done():
            if time.monotonic() > deadline:
                raise StaffError(f"counter {counter}'s pad: waited {REPLY_TIMEOUT_S:.0f} s")
            self.step()

    def _called(self, counter: str, before: str | None) -> str | None:
        """The ticket the gateway has called to `counter` in place of `before`, once it has."""
        state = self._office().state
        live = state.counters.get(counter)
        ticket = live.current if live is not None else None
        if ticket is None or ticket == before or ticket not in state.tickets:
            return None
        return ticket if state.tickets[ticket].status is TicketStatus.CALLED else None

    def _office(self) -> m.Office:
        journal = self.gateway.journal
        assert journal is not None
        return journal.office


def pad_boards(gateway: Gateway) -> dict[str, Any]:
    """Each counter's pad board on the gateway's buses that the MicroPython backend runs."""
    config = gateway.started or gateway.config
    boards: dict[str, Any] = {}
    for bus in gateway.buses:
        found = getattr(getattr(bus.port, "firmware", None), "boards", {})
        for spec in config.devices:
            if spec.kind == "counter_pad" and spec.counter and spec.port == bus.url and spec.addr in found:
                boards[spec.counter] = found[spec.addr]
    return boards


def request_for(command: m.Command) -> dict[str, Any]:
    """The control request (gateway.control) a kiosk or a clerk's terminal sends for `command`."""
    match command:
        case m.IssueTicket(service=service):
            return {"cmd": "issue", "service": service}  # the gateway makes the page's token
        case m.CallNext(counter=c):
            return {"cmd": "call", "counter": c}
        case m.FinishService(counter=c):
            return {"cmd": "served", "counter": c}
        case m.Recall(counter=c):
            return {"cmd": "recall", "counter": c}
        case m.MarkNoShow(counter=c):
            return {"cmd": "no-show", "counter": c}
        case m.PauseCounter(counter=c):
            return {"cmd": "pause", "counter": c}
        case m.ResumeCounter(counter=c):
            return {"cmd": "resume", "counter": c}
        case m.CloseCounter(counter=c):
            return {"cmd": "close", "counter": c}
        case m.OpenCounter(counter=c, services=services):
            return {"cmd": "open", "counter": c, **({"services": list(services)} if services else {})}
        case m.Transfer(to_service=to, ticket=ticket, counter=counter):
            return {"cmd": "transfer", "to": to, **({"ticket": ticket} if ticket else {"counter": counter})}
    raise StaffError(f"the demo's staff have no request for {type(command).__name__}")


def effect_from(record: dict[str, Any]) -> m.Effect:
    """A reply's effect record (gateway.control.effect_record) as the model's effect."""
    kind = record["type"]
    if kind == "ticket":
        w = record["wait"]
        return m.TicketReady(
            record["ticket"],
            record["service"],
            record["number"],
            record["position"],
            record["ahead"],
            WaitRange(w["mean_s"], w["p10_s"], w["p90_s"]),
            datetime.fromisoformat(record["issued_at"]),
            token=record["page"].rsplit("/", 1)[-1],
        )
    if kind == "call":
        return m.ShowCall(record["ticket"], record["counter"], record["recall"])
    if kind == "nobody_waiting":
        return m.NobodyWaiting(record["counter"], tuple(record["services"]))
    return m.IssueRefused(record["service"], record["reason"], record["message"])


def event_from(record: dict[str, Any], tokens: dict[str, str]) -> ev.Event:
    """A reply's event record as the model's event (a ticket's token, private, from its effect)."""
    body = {k: v for k, v in record.items() if k not in ("v", "seq", "ts", "office", "type")}
    if record["type"] == ev.TicketIssued.TYPE:
        body["token"] = tokens.get(record["ticket"], "")
    return ev.event_from_record(record["seq"], record["ts"], record["type"], body)
