"""Remote commands from the facilities dashboard, their acks, and each office's audit list
(docs/web.md, "Commands"; docs/mqtt.md, cmd and ack).

Owns the bookkeeping the web's thread and the worker's thread share, behind one lock, so that
neither touches the other's state:

- the web checks a form (`command_from_form`: a clear error naming the problem, nothing sent)
  and `submit`s it: it gets a fresh id and waits in the outbox;
- the worker, in its own turn, takes the waiting ones (`outgoing`), publishes each on
  `…/cmd` (QoS 1, never retained) and says whether its broker client took it (`sent`);
- the worker hands over every ack of ours (`answer`) and every batch of stored events
  (`events`): the `remote_command` records are the office's audit list;
- pages read frozen snapshots (`commands`, `audit`), and a live stream waits on `subscribe`.

Bounded: KEEP_COMMANDS per office (the oldest go), MAX_WAITING not yet taken by the worker
(more is refused), KEEP_AUDIT records of the newest business day per office.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from office import mqtt

ACK_WAIT_S = 10.0  # a command without any ack this long after it went out shows "no answer yet"
KEEP_COMMANDS = 20  # per office, newest kept
KEEP_AUDIT = 50  # audit records per office, of its newest business day
MAX_WAITING = 100  # commands submitted but not yet taken by the worker
MAX_LINES, MAX_LINE_BYTES = 4, 60  # a dispenser's panel (docs/mqtt.md, dispenser_message)
COUNTER_COMMANDS = ("open", "pause", "resume", "close")
MODES = ("office", "evening", "saturday", "closed")
TICKET = re.compile(r"[A-Za-z0-9]{1,8}-[0-9]{1,6}")
PRINTER = re.compile(r"[A-Za-z0-9._-]{1,32}")
BUS_DEVICE = re.compile(r"[0-9]{1,2}-[0-9]{1,3}")  # `<bus>-<addr>`: what restart and firmware take
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
TEXT_MAX = 200  # a reason's length


class FormError(Exception):
    """A form the dashboard refuses: `key` is the message's (central/web/messages), `values` its
    fields. Nothing is sent."""

    def __init__(self, key: str, **values: str) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True, slots=True)
class OfficeFacts:
    """What a form is checked against: the office as the worker's view has it."""

    counters: frozenset[str]
    devices: Mapping[str, str]  # device id -> kind
    day: str | None  # its business day (None: no events yet)


def _date(text: str, facts: OfficeFacts) -> str:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise FormError("cmd_error_date", date=text[:20]) from None
    if len(text) != 10:
        raise FormError("cmd_error_date", date=text[:20])
    if facts.day is not None and day.isoformat() < facts.day:
        raise FormError("cmd_error_past", date=text)
    return day.isoformat()


def _set_mode(form: Mapping[str, str], fields: dict[str, Any]) -> None:
    mode = form.get("mode", "")
    if mode not in MODES:
        raise FormError("cmd_error_mode", mode=mode[:20])
    ja, en = form.get("reason_ja", "").strip(), form.get("reason_en", "").strip()
    if bool(ja) != bool(en) or len(ja) > TEXT_MAX or len(en) > TEXT_MAX:
        raise FormError("cmd_error_reason")
    start, end = form.get("from", "").strip(), form.get("to", "").strip()
    if mode == "closed":
        fields["closed"] = True
        if start or end:
            raise FormError("cmd_error_closed_hours")
    else:
        fields["mode"] = mode
        if start or end:
            if not (HHMM.fullmatch(start) and HHMM.fullmatch(end)) or end <= start:
                raise FormError("cmd_error_hours", start=start[:8], end=end[:8])
            fields["hours"] = {"from": start, "to": end}
    if ja:
        fields["reason"] = {"ja": ja, "en": en}


def _lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > MAX_LINES:
        raise FormError("cmd_error_lines_many", count=str(MAX_LINES))
    for line in lines:
        if len(line.encode("utf-8")) > MAX_LINE_BYTES or not line.isprintable():
            raise FormError("cmd_error_line", line=line[:30], size=str(MAX_LINE_BYTES))
    return lines


def _device(form: Mapping[str, str], facts: OfficeFacts, kind: str | None = None) -> str:
    device = form.get("device", "").strip()
    if device not in facts.devices or not BUS_DEVICE.fullmatch(device):
        raise FormError("cmd_error_device", device=device[:64])
    if kind is not None and facts.devices[device] != kind:
        raise FormError("cmd_error_not_dispenser", device=device)
    return device


def command_from_form(form: Mapping[str, str], facts: OfficeFacts) -> tuple[str, dict[str, Any]]:
    """(command, its fields) as docs/mqtt.md's cmd table has them, from a dashboard form; a
    FormError names what is wrong."""
    name = form.get("cmd", "")
    fields: dict[str, Any] = {}
    if name in COUNTER_COMMANDS:
        counter = form.get("counter", "").strip()
        if counter not in facts.counters:
            raise FormError("cmd_error_counter", counter=counter[:16])
        fields["counter"] = counter
    elif name in ("set_mode", "clear_mode"):
        fields["date"] = _date(form.get("date", "").strip(), facts)
        if name == "set_mode":
            _set_mode(form, fields)
    elif name == "reprint":
        ticket, printer = form.get("ticket", "").strip(), form.get("printer", "").strip()
        if not TICKET.fullmatch(ticket):
            raise FormError("cmd_error_ticket", ticket=ticket[:16])
        if printer and not PRINTER.fullmatch(printer):
            raise FormError("cmd_error_printer", printer=printer[:32])
        fields["ticket"] = ticket
        if printer:
            fields["printer"] = printer
    elif name == "dispenser_message":
        if form.get("device", "").strip():
            fields["device"] = _device(form, facts, "dispenser")
        fields["lines"] = _lines(form.get("lines", ""))
    elif name == "restart_device":
        fields["device"] = _device(form, facts)
    elif name == "firmware_update":
        fields["device"] = _device(form, facts)
        bundle, sha = form.get("bundle_url", "").strip(), form.get("sha256", "").strip()
        # The gateway fetches nothing over the network: a path on it, or a file:// URL.
        if not (bundle.startswith("/") or bundle.startswith("file:///")) or len(bundle) > 1024:
            raise FormError("cmd_error_bundle", bundle=bundle[:60])
        if not SHA256.fullmatch(sha):
            raise FormError("cmd_error_sha256")
        fields.update(bundle_url=bundle, sha256=sha.lower())
    else:
        raise FormError("cmd_error_command", cmd=name[:32])
    return name, fields


# -- what pages see ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CommandView:
    id: str
    office: str
    cmd: str
    fields: tuple[tuple[str, str], ...]  # as sent, for the page
    by: str
    at: datetime  # when it was submitted (wall clock)
    # queued (not yet taken by the worker), not_sent (central had no broker connection),
    # pending, late (no ack within ACK_WAIT_S), ok, error
    state: str
    gateway_offline: bool  # the office's gateway was not online when it was submitted
    detail: str | None = None  # the final ack's output or error
    progress: float | None = None  # a firmware update's, 0…1
    step: str | None = None  # a device job's state: sending, committing, restarting, …, installed
    acks: int = 0


@dataclass(frozen=True, slots=True)
class AuditView:
    seq: int
    ts: str
    id: str
    cmd: str
    sender: str | None
    ok: bool
    error: str | None
    fields: tuple[tuple[str, str], ...] = ()  # when it was the dashboard's own command


@dataclass(slots=True)
class _Command:
    id: str
    office: str
    cmd: str
    fields: dict[str, Any]
    by: str
    at: datetime
    gateway_offline: bool
    payload: bytes
    state: str = "queued"
    sent_at: float | None = None
    detail: str | None = None
    progress: float | None = None
    step: str | None = None
    acks: int = 0


@dataclass(slots=True)
class _Audit:
    day: str = ""
    by_seq: dict[int, AuditView] = field(default_factory=dict)


def _shown(fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in fields.items():
        if isinstance(v, list):
            v = " / ".join(str(x) for x in v)
        elif isinstance(v, dict):
            v = " ".join(f"{a}={b}" for a, b in v.items())
        out.append((k, str(v)))
    return tuple(out)


def _result(answer: Mapping[str, Any]) -> str | None:
    """What an ack says in words: a floor command's output, a job's state, or the error."""
    if not answer.get("ok"):
        return str(answer.get("error") or answer.get("code") or "refused")
    output = answer.get("output")
    if isinstance(output, str) and output.strip():
        return output.strip()
    version = answer.get("version")
    state = answer.get("state")
    if isinstance(state, str):
        return f"{state} {version}" if isinstance(version, str) else state
    return None


class CommandDesk:
    """See the module docstring. `clock`: monotonic seconds (the ack timeout); `wall`: aware now."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.clock = clock
        self.wall = wall
        # Ids no other sender uses: central's replays are `central-<i>-…`, a restart gets a new one.
        self.prefix = f"web-{secrets.token_hex(4)}-"
        self._lock = threading.Lock()
        self._count = 0
        self._commands: dict[str, OrderedDict[str, _Command]] = {}
        self._waiting: list[_Command] = []
        self._audit: dict[str, _Audit] = {}
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._wake: Callable[[], None] = lambda: None

    # -- the web's side ----------------------------------------------------------------------------
    def submit(self, office: str, name: str, fields: Mapping[str, Any], by: str, gateway_offline: bool) -> str:
        """Queue a checked command for the worker; its id. FormError("cmd_error_busy") when too
        many are waiting (the worker is not taking them)."""
        with self._lock:
            if len(self._waiting) >= MAX_WAITING:
                raise FormError("cmd_error_busy")
            self._count += 1
            request = f"{self.prefix}{self._count}"
            payload = mqtt.encode(mqtt.command_message(office, request, name, by=by, **fields))
            cmd = _Command(request, office, name, dict(fields), by, self.wall(), gateway_offline, payload)
            kept = self._commands.setdefault(office, OrderedDict())
            kept[request] = cmd
            while len(kept) > KEEP_COMMANDS:
                kept.popitem(last=False)
            self._waiting.append(cmd)
        self._wake()
        self._changed()
        return request

    def commands(self, office: str) -> list[CommandView]:
        """The office's commands, newest first."""
        now = self.clock()
        with self._lock:
            kept = list(self._kept(office).values())
        return [self._view(c, now) for c in reversed(kept)]

    def audit(self, office: str) -> list[AuditView]:
        """The office's audit records of its newest business day, newest first."""
        with self._lock:
            kept = self._audit.get(office)
            return sorted(kept.by_seq.values(), key=lambda a: -a.seq) if kept is not None else []

    def next_deadline(self) -> float | None:
        """When the next pending command turns "no answer yet" (monotonic), or None."""
        with self._lock:
            times = [
                c.sent_at + ACK_WAIT_S
                for kept in self._commands.values()
                for c in kept.values()
                if c.state == "pending" and c.acks == 0 and c.sent_at is not None
            ]
        return min(times, default=None)

    def subscribe(self) -> asyncio.Event:
        """Call from a coroutine: an event of the running loop, set at each change."""
        event = asyncio.Event()
        with self._lock:
            self._subs.add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        with self._lock:
            self._subs = {s for s in self._subs if s[1] is not event}

    # -- the worker's side (central/worker.py) ------------------------------------------------------
    def attach(self, wake: Callable[[], None]) -> None:
        """The worker's wake-up: a submitted command goes out at its next turn, not after its idle wait."""
        self._wake = wake

    def outgoing(self) -> list[tuple[str, str, bytes]]:
        """(office, id, payload) of each command waiting, taken."""
        with self._lock:
            taken, self._waiting = self._waiting, []
        return [(c.office, c.id, c.payload) for c in taken]

    def sent(self, request: str, ok: bool) -> None:
        """The broker's client took the command (ok), or refused it: central is not connected."""
        with self._lock:
            cmd = self._find(request)
            if cmd is None:
                return
            cmd.state = "pending" if ok else "not_sent"
            cmd.sent_at = self.clock()
        self._changed()

    def answer(self, office: str, answer: Mapping[str, Any]) -> bool:
        """An ack from `office`: True when its id is one of ours (matched, or forgotten already)."""
        request = answer.get("id")
        if not isinstance(request, str) or not request.startswith(self.prefix):
            return False
        with self._lock:
            cmd = self._kept(office).get(request)
            if cmd is None:
                return True
            cmd.acks += 1
            if answer.get("pending"):  # a device job under way: its progress
                progress = answer.get("progress")
                cmd.progress = float(progress) if isinstance(progress, int | float) else cmd.progress
                cmd.step = str(answer.get("state")) if answer.get("state") is not None else cmd.step
            else:
                cmd.state = "ok" if answer.get("ok") else "error"
                cmd.detail = _result(answer)
                if isinstance(answer.get("state"), str):
                    cmd.step = answer["state"]
                    cmd.progress = 1.0 if cmd.state == "ok" and cmd.progress is not None else cmd.progress
        self._changed()
        return True

    def events(self, office: str, records: Iterable[Mapping[str, Any]]) -> None:
        """Stored events of `office` (any order, repeats allowed): its `remote_command` ones
        join its audit list; a newer business day starts the list afresh."""
        found = [r for r in records if r.get("type") == "remote_command"]
        if not found:
            return
        changed = False
        with self._lock:
            kept = self._audit.setdefault(office, _Audit())
            for r in found:
                seq, ts = r.get("seq"), r.get("ts")
                if not isinstance(seq, int) or not isinstance(ts, str) or seq in kept.by_seq:
                    continue
                day = ts[:10]  # the business day: the local date of its ts (central.store.business_day)
                if day < kept.day:
                    continue
                if day > kept.day:
                    kept.day, kept.by_seq = day, {}
                request = str(r.get("id"))
                mine = self._kept(office).get(request)
                sender = r.get("sender")
                error = r.get("error")
                kept.by_seq[seq] = AuditView(
                    seq,
                    ts,
                    request,
                    str(r.get("cmd")),
                    sender if isinstance(sender, str) else None,
                    bool(r.get("ok")),
                    error if isinstance(error, str) else None,
                    _shown(mine.fields) if mine is not None else (),
                )
                changed = True
            while len(kept.by_seq) > KEEP_AUDIT:
                del kept.by_seq[min(kept.by_seq)]
        if changed:
            self._changed()

    # -- inside ------------------------------------------------------------------------------------
    def _kept(self, office: str) -> Mapping[str, _Command]:
        return self._commands.get(office) or {}

    def _find(self, request: str) -> _Command | None:
        for kept in self._commands.values():
            if request in kept:
                return kept[request]
        return None

    def _view(self, c: _Command, now: float) -> CommandView:
        state = c.state
        if state == "pending" and c.acks == 0 and c.sent_at is not None and now - c.sent_at >= ACK_WAIT_S:
            state = "late"
        return CommandView(
            c.id,
            c.office,
            c.cmd,
            _shown(c.fields),
            c.by,
            c.at,
            state,
            c.gateway_offline,
            c.detail,
            c.progress,
            c.step,
            c.acks,
        )

    def _changed(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for loop, event in subs:
            # A loop that has stopped takes nothing; its stream unsubscribes as it ends.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
