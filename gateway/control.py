"""The floor manager's control protocol: office commands as JSON lines over a Unix socket.

Owns the request format (one JSON object per line, `{"cmd": "issue", "service": "move"}`), the
reply format (`{"ok": true, "output": …}` or `{"ok": false, "error": …, "kind": …}`), turning a
request into an office command, and the text a command's decision or the queue is shown as, so
that `counterfloor office …` prints the same whether the running gateway or the journal itself
carried the command out. No I/O here except `ask`, the client side of one request.

Commands (fields besides "cmd"; every command takes an optional "at", ISO 8601, a naive time
being the office's local time, within two minutes of the gateway's clock on its business day —
and an optional "id", a client's name for the request: a retry with the same id, its reply lost,
is answered with the first reply and `"repeated": true`, and not carried out again):
    issue {service}; call|recall|no-show|served|pause|resume|close {counter};
    open {counter, services?: [ids]}; transfer {ticket | counter, to}; hold|return {ticket};
    show {json?: bool}; ping; status {json?: bool} (gateway only: the devices' state, e.g. printers);
    reprint {ticket, printer?} (gateway only: it drives the printers; the same token and QR code);
    set-mode {date, closed?: bool, mode?, hours?: {from, to}, reason?: {ja, en}} (a remote override
    of that date's plan, journaled); clear-mode {date};
    reconfigure {config, source?} (gateway only: the new config's TOML text, applied at once where
    it can be; `source` names it in error messages); dispenser-message {device?, lines?} (gateway
    only: one dispenser's message, by its id `<bus>-<addr>`, or every dispenser's; no lines clears);
    clock (gateway only: whether its clock is trusted, gateway.clock_sync); confirm-time {time, by?}
    (gateway only: staff confirm its clock, `time` the one they read, HH:MM or YYYY-MM-DD HH:MM,
    within two minutes of it; `by` who, for the audit record). While the clock is not trusted the
    gateway refuses every command that would store an event (code "clock_not_trusted").
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from gateway.journal import new_token
from office import events as ev
from office import model as m
from office.calendar import ModeOverride, at_problem, moment_problem
from office.config import Hours, OfficeConfig, Text
from office.mqtt import REQUEST_ID
from office.state import OfficeState, TicketStatus

MAX_LINE = 64 * 1024  # a request longer than this is refused, not buffered forever
KIND_REFUSED = "refused"  # the office refused it (exit 1)
KIND_USAGE = "usage"  # the request itself is wrong (exit 2)


class BadRequest(ValueError):
    """A request that names no known command or lacks a field; nothing was done."""


def str_field(req: Mapping[str, Any], name: str) -> str:
    """The request's `name`, a non-empty string; BadRequest naming it otherwise."""
    value = req.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{req.get('cmd')}: {name!r} is missing or not a non-empty string")
    return value


def _counter(make: Callable[[str], m.Command]) -> Callable[[Mapping[str, Any]], m.Command]:
    return lambda r: make(str_field(r, "counter"))


def _open(r: Mapping[str, Any]) -> m.Command:
    services = r.get("services")
    if services is not None and (
        not isinstance(services, list) or not services or not all(isinstance(s, str) and s for s in services)
    ):
        raise BadRequest("open: 'services' must be a non-empty list of service ids")
    return m.OpenCounter(str_field(r, "counter"), tuple(services) if services else None)


def _transfer(r: Mapping[str, Any]) -> m.Command:
    ticket, counter = r.get("ticket"), r.get("counter")
    if (ticket is None) == (counter is None):
        raise BadRequest("transfer: give either 'ticket' or 'counter'")
    return m.Transfer(
        str_field(r, "to"),
        ticket=str_field(r, "ticket") if ticket is not None else None,
        counter=str_field(r, "counter") if counter is not None else None,
    )


def _date(r: Mapping[str, Any]) -> date:
    text = str_field(r, "date")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{r.get('cmd')}: 'date' is not a date YYYY-MM-DD: {text!r}") from None


def _set_mode(r: Mapping[str, Any]) -> m.Command:
    """A remote override of one date: {"date", "closed": true, "reason"?} or {"date", "mode",
    "hours"?: {"from", "to"}, "reason"?}; reason is {"ja", "en"}."""
    closed = r.get("closed", False)
    if not isinstance(closed, bool):
        raise BadRequest("set-mode: 'closed' must be true or false")
    reason, hours = r.get("reason"), r.get("hours")
    try:
        if reason is not None:
            if (
                not isinstance(reason, dict)
                or set(reason) != {"ja", "en"}
                or not all(isinstance(v, str) and v for v in reason.values())
            ):
                raise ValueError('\'reason\' must be {"ja": …, "en": …}')
            reason = Text(reason["ja"], reason["en"])
        if hours is not None:
            if not isinstance(hours, dict) or set(hours) != {"from", "to"}:
                raise ValueError('\'hours\' must be {"from": "HH:MM", "to": "HH:MM"}')
            hours = Hours(time.fromisoformat(str(hours["from"])), time.fromisoformat(str(hours["to"])))
        mode = r.get("mode")
        if mode is not None and not isinstance(mode, str):
            raise ValueError("'mode' must be a mode name")
        return m.OverrideMode(ModeOverride(_date(r), closed, mode, hours, reason))
    except ValueError as exc:
        raise BadRequest(f"set-mode: {exc}") from None


COMMANDS: dict[str, Callable[[Mapping[str, Any]], m.Command]] = {
    "issue": lambda r: m.IssueTicket(str_field(r, "service"), new_token()),
    "call": _counter(m.CallNext),
    "recall": _counter(m.Recall),
    "no-show": _counter(m.MarkNoShow),
    "served": _counter(m.FinishService),
    "pause": _counter(m.PauseCounter),
    "resume": _counter(m.ResumeCounter),
    "close": _counter(m.CloseCounter),
    "open": _open,
    "transfer": _transfer,
    "hold": lambda r: m.Hold(str_field(r, "ticket")),
    "return": lambda r: m.Return(str_field(r, "ticket")),
    "set-mode": _set_mode,
    "clear-mode": lambda r: m.ClearModeOverride(_date(r)),
}


def parse_line(line: bytes) -> dict[str, Any]:
    """One request line as its JSON object; BadRequest for anything else (not UTF-8, not JSON,
    not an object, nested too deep to parse: `[[[…` 60,000 deep raised RecursionError)."""
    try:
        req = json.loads(line)
    except (ValueError, RecursionError):
        req = None
    if not isinstance(req, dict):
        raise BadRequest("not a JSON object on one line")
    return req


def build_command(req: Mapping[str, Any]) -> m.Command:
    """The office command a request asks for; BadRequest naming what is wrong."""
    build = COMMANDS.get(str(req.get("cmd")))
    if build is None:
        known = [*COMMANDS, "reprint", "show", "status", "ping", "clock", "confirm-time"]
        raise BadRequest(f"unknown command {req.get('cmd')!r}; commands are {known}")
    return build(req)


def reprint_request(req: Mapping[str, Any]) -> tuple[str, str | None]:
    """(ticket, printer or None) of a reprint request; BadRequest naming what is wrong."""
    printer = req.get("printer")
    if printer is not None and (not isinstance(printer, str) or not printer):
        raise BadRequest("reprint: 'printer' must be a printer id")
    return str_field(req, "ticket"), printer


def reconfigure_request(req: Mapping[str, Any]) -> tuple[str, str | None]:
    """(config text, source or None) of a reconfigure request; BadRequest naming what is wrong."""
    text = str_field(req, "config")
    source = req.get("source")
    if source is not None and (not isinstance(source, str) or not source):
        raise BadRequest("reconfigure: 'source' must name the config (a file name)")
    return text, source


def dispenser_message_request(
    req: Mapping[str, Any], max_lines: int, max_bytes: int
) -> tuple[str | None, tuple[str, ...]]:
    """(device or None, lines) of a dispenser-message request: at most `max_lines` lines of at
    most `max_bytes` bytes of UTF-8 each (what SHOW_TEXT carries), printable (no line breaks or
    control characters); none, or an empty list, clears. BadRequest naming what is wrong."""
    cmd = req.get("cmd")
    device = req.get("device")
    if device is not None and (not isinstance(device, str) or not device):
        raise BadRequest(f"{cmd}: 'device' must be a device id like '0-1'")
    lines = req.get("lines")
    if lines is None:
        return device, ()
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise BadRequest(f"{cmd}: 'lines' must be a list of strings")
    if len(lines) > max_lines:
        raise BadRequest(f"{cmd}: at most {max_lines} lines (Japanese, then English), got {len(lines)}")
    for i, line in enumerate(lines):
        if len(line.encode()) > max_bytes:
            raise BadRequest(
                f"{cmd}: line {i + 1} is {len(line.encode())} bytes of UTF-8, over the {max_bytes} a panel line holds"
            )
        if not line.isprintable():
            raise BadRequest(f"{cmd}: line {i + 1} holds a line break or control character")
    return device, tuple(lines)


def request_time(req: Mapping[str, Any], config: OfficeConfig, wall: datetime | None) -> datetime | None:
    """The request's "at" as an aware moment (naive: the office's local time), None for now.
    On a live floor (`wall`, the gateway's clock) "at" must be within calendar.AT_TOLERANCE of
    it, on its business day; `wall` None is an offline journal (tests, training): any moment."""
    at = req.get("at")
    if at is None:
        return None
    try:
        moment = datetime.fromisoformat(str(at))
    except ValueError:
        raise BadRequest(f"'at' is not an ISO 8601 time like 2027-03-15T09:30+09:00: {at!r}") from None
    if problem := moment_problem(moment):
        raise BadRequest(f"'at': {problem}: {at!r}")
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=config.tz)
    if wall is not None and (problem := at_problem(moment, wall, config.tz)):
        raise BadRequest(f"'at': {problem}")
    return moment


def request_key(req: Mapping[str, Any]) -> str | None:
    """The journal's key for the request's optional "id" (a client's retry of a request whose
    reply it lost carries the same id and gets the first result), or None without one."""
    rid = req.get("id")
    if rid is None:
        return None
    if not isinstance(rid, str) or not REQUEST_ID.fullmatch(rid):
        raise BadRequest(f"'id' must be 1-64 letters, digits and ._:- (got {rid!r})")
    return f"ctl:{rid}"


def new_request_id() -> str:
    return secrets.token_hex(12)


def done_reply(decision: m.Decision, config: OfficeConfig) -> dict[str, Any]:
    """The reply to a command carried out: what the floor manager reads, and its events."""
    return {
        "ok": True,
        "output": describe(decision, config),
        "refused": refusal(decision),
        "effects": [effect_record(e, config) for e in decision.effects],
        "events": [ev.public_record(e, config.id) for e in decision.events],
    }


def effect_record(effect: m.Effect, config: OfficeConfig) -> dict[str, Any]:
    """What a command made happen, for a program at the other end (a kiosk, the demo's staff):
    the ticket to print with its page, the call to show, or why nothing came of it."""
    if isinstance(effect, m.TicketReady):
        return {
            "type": "ticket",
            "ticket": effect.ticket,
            "service": effect.service,
            "number": effect.number,
            "position": effect.position,
            "ahead": effect.ahead,
            "wait": {
                "low_minutes": effect.wait.low_minutes,
                "high_minutes": effect.wait.high_minutes,
                "mean_s": effect.wait.mean_s,
                "p10_s": effect.wait.p10_s,
                "p90_s": effect.wait.p90_s,
            },
            "issued_at": effect.issued_at.isoformat(),
            "page": f"{config.public_base_url}/t/{effect.token}",
        }
    if isinstance(effect, m.ShowCall):
        return {"type": "call", "ticket": effect.ticket, "counter": effect.counter, "recall": effect.recall}
    if isinstance(effect, m.NobodyWaiting):
        return {"type": "nobody_waiting", "counter": effect.counter, "services": list(effect.services)}
    return {"type": "refused", "service": effect.service, "reason": effect.reason, "message": effect.message}


# -- what the floor manager sees ------------------------------------------------------------------
def _hm(t: datetime | None, config: OfficeConfig) -> str:
    return t.astimezone(config.tz).strftime("%H:%M") if t else "--:--"


def describe(decision: m.Decision, config: OfficeConfig) -> str:
    """A command's outcome as the lines `counterfloor office` prints."""
    lines: list[str] = []
    for effect in decision.effects:
        if isinstance(effect, m.TicketReady):
            service = config.service(effect.service)
            wait = effect.wait
            lines.append(
                f"{effect.ticket}  {service.name.ja} / {service.name.en}\n"
                f"  position {effect.position} ({effect.ahead} ahead), estimated wait "
                f"{wait.low_minutes}–{wait.high_minutes} min, issued {_hm(effect.issued_at, config)}\n"
                f"  status page: {config.public_base_url}/t/{effect.token}\n"
            )
        elif isinstance(effect, m.ShowCall):
            verb = "recalled" if effect.recall else "called"
            lines.append(f"{effect.ticket} {verb} to counter {effect.counter}\n")
        elif isinstance(effect, m.NobodyWaiting):
            lines.append(f"counter {effect.counter}: nobody waiting for {', '.join(effect.services)}\n")
    for event in decision.events:
        if isinstance(event, ev.Served):
            lines.append(f"{event.ticket} served at counter {event.counter}\n")
        elif isinstance(event, ev.NoShow):
            fate = "back in the queue (last place)" if event.requeued else "dropped"
            lines.append(f"{event.ticket} marked no-show at counter {event.counter}: {fate}\n")
        elif isinstance(event, ev.Transferred):
            lines.append(f"{event.ticket} transferred {event.from_service} → {event.to_service}, keeping its place\n")
        elif isinstance(event, ev.Held):
            lines.append(f"{event.ticket} on hold\n")
        elif isinstance(event, ev.Returned):
            lines.append(f"{event.ticket} back in the queue at its original place\n")
        elif isinstance(event, ev.CounterOpened):
            lines.append(f"counter {event.counter} open, calling {' > '.join(event.services)}\n")
        elif isinstance(event, ev.CounterPaused | ev.CounterResumed | ev.CounterClosed):
            lines.append(f"counter {event.counter} {event.TYPE.removeprefix('counter_')}\n")
        elif isinstance(event, ev.ModeOverridden):
            why = f" ({event.reason['en']})" if event.reason else ""
            plan = "closed" if event.closed else f"{event.mode} {'–'.join(event.hours or ['configured hours'])}"
            lines.append(f"{event.date}: {plan}{why} (overrides the calendar)\n")
        elif isinstance(event, ev.ModeOverrideCleared):
            lines.append(f"{event.date}: the calendar's plan again\n")
        elif isinstance(event, ev.DispenserMessage):
            where = f"dispenser {event.device}" if event.device else "every dispenser"
            lines.append(f"message on {where}: {' / '.join(event.lines) if event.lines else '(cleared)'}\n")
    return "".join(lines)


def refusal(decision: m.Decision) -> dict[str, str] | None:
    """The first IssueRefused of a decision as {"reason", "message"}, or None."""
    for effect in decision.effects:
        if isinstance(effect, m.IssueRefused):
            return {"reason": effect.reason, "message": effect.message}
    return None


def queue_table(state: OfficeState, config: OfficeConfig) -> str:
    """The queue as a readable table for the floor manager."""
    lines = [
        f"{config.name.ja} / {config.name.en} ({config.id})",
        f"business day {state.day or '—'}, last event #{state.last_seq} at {_hm(state.last_ts, config)}",
        "",
        f"{'service':<32} {'waiting':>7}  next",
    ]
    for s in config.services:
        waiting = state.waiting(s.id)
        shown = " ".join(waiting[:6]) + (" …" if len(waiting) > 6 else "")
        lines.append(f"{s.prefix} {s.id:<30} {len(waiting):>7}  {shown}")
    held = [t.id for t in state.tickets.values() if t.status is TicketStatus.HELD]
    if held:
        lines.append(f"on hold: {' '.join(held)}")
    if state.unprinted:
        shown_unprinted = " ".join(f"{tid} ({why})" for tid, why in state.unprinted.items())
        lines.append(f"unprinted (reprint with `office reprint --ticket …`): {shown_unprinted}")
    lines += ["", f"{'counter':<8} {'status':<7} {'serving':<8} {'since':<6} calls"]
    for c in config.counters:
        live = state.counters.get(c.id)
        status = live.status.value if live else "closed"
        current = live.current if live and live.current else ""
        since = _hm(state.tickets[current].called_at, config) if current else ""
        services = live.services if live and live.services else c.services
        lines.append(f"{c.id:<8} {status:<7} {current:<8} {since:<6} {' > '.join(services)}")
    counts: dict[str, int] = {}
    for t in state.tickets.values():
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tickets yet"
    lines += ["", f"today: {len(state.tickets)} tickets ({summary})"]
    return "\n".join(lines) + "\n"


def queue_json(state: OfficeState, config: OfficeConfig) -> dict[str, Any]:
    return {
        "office": config.id,
        "day": state.day.isoformat() if state.day else None,
        "last_seq": state.last_seq,
        "services": {s.id: state.waiting(s.id) for s in config.services},
        "held": [t.id for t in state.tickets.values() if t.status is TicketStatus.HELD],
        "unprinted": dict(state.unprinted),
        "counters": {
            cid: {"status": c.status.value, "serving": c.current, "services": list(c.services)}
            for cid, c in state.counters.items()
        },
        "tickets": {t.id: t.status.value for t in state.tickets.values()},
    }


def show_output(state: OfficeState, config: OfficeConfig, as_json: bool) -> str:
    if as_json:
        return json.dumps(queue_json(state, config), ensure_ascii=False, indent=2) + "\n"
    return queue_table(state, config)


# -- the client ---------------------------------------------------------------------------------------
class GatewayAbsent(Exception):
    """No gateway listens on the socket (no file, or nobody accepting): use the journal directly."""


def ask(path: Path, request: Mapping[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the gateway at `path` and return its reply.

    GatewayAbsent when nobody listens; OSError for a gateway that stops answering midway."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise GatewayAbsent(str(exc)) from None
        # A gateway that refused the connection (too many open) said why before closing: read it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"the gateway at {path} closed the connection without answering")
            data += chunk
    finally:
        sock.close()
    # The reply is the first line: a client slow to read (a loaded machine) may find the server's
    # "no complete request within 5 s" for the idle connection right behind it in the same read.
    reply = json.loads(data[: data.index(b"\n")])
    if not isinstance(reply, dict):
        raise ConnectionError(f"the gateway at {path} sent a reply that is not an object")
    return reply
