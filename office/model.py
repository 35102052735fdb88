"""The office model: commands in, events and effects out.

`Office.decide(command, now)` checks a command against the state and returns the events that
would record it plus the effects to release once they are stored; it changes nothing, and
`Office.apply` then applies the events (replay does only this). `Office.perform` does both in one
pass: the gateway's journal uses it, stores the events, and releases the effects once they are
committed (if they cannot be stored, it recovers the state from its file). Pure: an injected
clock, no I/O, no threads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from office import events as ev
from office.calendar import DayPlan, ModeOverride, counter_shifts, override_record, plan_for
from office.config import OfficeConfig, Service
from office.estimate import CapacityEstimator, WaitEstimator, WaitRange
from office.state import CounterState, CounterStatus, OfficeState, Ticket, TicketStatus

PLANS_KEPT = 16  # day plans an Office keeps worked out (today's, with and without an override, and a few more)


class OfficeError(Exception):
    """A command that cannot be carried out; nothing is recorded. `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# -- commands -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartDay:
    """Record today's schedule if the business day has changed (idempotent)."""


@dataclass(frozen=True, slots=True)
class IssueTicket:
    service: str
    token: str  # random, made by the shell: the model has no randomness


@dataclass(frozen=True, slots=True)
class CallNext:
    counter: str


@dataclass(frozen=True, slots=True)
class Recall:
    counter: str


@dataclass(frozen=True, slots=True)
class MarkNoShow:
    counter: str


@dataclass(frozen=True, slots=True)
class FinishService:
    counter: str


@dataclass(frozen=True, slots=True)
class Transfer:
    to_service: str
    ticket: str | None = None
    counter: str | None = None  # the ticket at this counter


@dataclass(frozen=True, slots=True)
class Hold:
    ticket: str


@dataclass(frozen=True, slots=True)
class Return:
    ticket: str


@dataclass(frozen=True, slots=True)
class OpenCounter:
    counter: str
    services: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PauseCounter:
    counter: str


@dataclass(frozen=True, slots=True)
class ResumeCounter:
    counter: str


@dataclass(frozen=True, slots=True)
class CloseCounter:
    counter: str


@dataclass(frozen=True, slots=True)
class RecordPrintFailure:
    """The gateway could not print `ticket` on `printer`: mark it unprinted."""

    ticket: str
    printer: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reprint:
    """Print a ticket of today again (same token, current position); stores nothing itself:
    RecordReprint follows once the printer took it, RecordPrintFailure if it did not. A ticket
    whose token this gateway does not hold (a journal restored from central) gets `new_token`
    instead, stored first (`token_replaced`), so its QR code leads to a page again."""

    ticket: str
    new_token: str = ""  # made by the shell, used only for a ticket without its token


@dataclass(frozen=True, slots=True)
class RecordReprint:
    ticket: str
    printer: str


@dataclass(frozen=True, slots=True)
class OverrideMode:
    """Replace one date's plan (today or a day ahead) by a remote override."""

    override: ModeOverride


@dataclass(frozen=True, slots=True)
class ClearModeOverride:
    """Give a date its calendar's plan back."""

    day: date


@dataclass(frozen=True, slots=True)
class RecordRemoteCommand:
    """Audit a command that came over MQTT (after carrying it out, or refusing it)."""

    request: str
    name: str
    sender: str | None
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RecordConfigChange:
    """The office's config was replaced by the one this Office holds (the journal rebuilt the
    model under it): record it, and today's plan if it changed. `restart_needed`: the config's
    parts that take effect only when the gateway restarts (gateway.config_change)."""

    sha256: str
    previous_sha256: str
    via: str
    sender: str | None = None
    restart_needed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetDispenserMessage:
    """Set (or, with no lines, clear) the message of one dispenser (`device`, its id) or of all
    (None). The lines are the gateway's to check against what a dispenser can show."""

    device: str | None
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordClockStep:
    """The gateway's wall clock jumped by `step_s` seconds; it showed `expected` just before."""

    expected: datetime
    step_s: float


Command = (
    StartDay
    | IssueTicket
    | CallNext
    | Recall
    | MarkNoShow
    | FinishService
    | Transfer
    | Hold
    | Return
    | OpenCounter
    | PauseCounter
    | ResumeCounter
    | CloseCounter
    | RecordPrintFailure
    | Reprint
    | RecordReprint
    | RecordClockStep
    | RecordRemoteCommand
    | OverrideMode
    | ClearModeOverride
    | RecordConfigChange
    | SetDispenserMessage
)


# -- effects (values like events: built on every command, so not frozen; never change one) ----
@dataclass(slots=True)
class TicketReady:
    """Print this ticket (it is stored already)."""

    ticket: str
    service: str
    number: int
    position: int
    ahead: int
    wait: WaitRange
    issued_at: datetime
    token: str
    reprint: bool = False  # a copy of a ticket issued earlier (Reprint)
    # When reception for its service ends that day by the plan in force (a remote override
    # included), for the ticket's "reception until" line; None: not known here.
    closes: time | None = None


@dataclass(slots=True)
class IssueRefused:
    """The dispenser must say why no ticket came out. `reason` is one of
    closed_today, not_offered_now, cut_off, range_exhausted."""

    service: str
    reason: str
    message: str


@dataclass(slots=True)
class ShowCall:
    """Show and announce a call (a recall repeats it)."""

    ticket: str
    counter: str
    recall: bool


@dataclass(slots=True)
class NobodyWaiting:
    counter: str
    services: tuple[str, ...]


Effect = TicketReady | IssueRefused | ShowCall | NobodyWaiting


@dataclass(slots=True)
class Decision:
    """A command's events (to store, then apply) and effects (to release once stored)."""

    events: list[ev.Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Office:
    """One office's model: its config, its state, and the rules that turn commands into events."""

    def __init__(
        self,
        config: OfficeConfig,
        state: OfficeState | None = None,
        estimator: WaitEstimator | None = None,
    ) -> None:
        self.config = config
        self.state = state or OfficeState()
        self.estimator: WaitEstimator = estimator or CapacityEstimator(config)
        self._plans: dict[tuple[date, ModeOverride | None], DayPlan] = {}
        # Lookups on every command: keep them O(1).
        self.tz = config.tz
        self.services: dict[str, Service] = {s.id: s for s in config.services}
        # Service.ticket_id as one bound str.format per service: once per ticket issued.
        self.ticket_ids: dict[str, Callable[[int], str]] = {
            s.id: f"{s.prefix.replace('{', '{{').replace('}', '}}')}-{{:0{s.number_width}d}}".format
            for s in config.services
        }
        self.counter_ids = frozenset(c.id for c in config.counters)

    def apply(self, event: ev.Event) -> None:
        self.state.apply(event)

    def apply_all(self, events: list[ev.Event]) -> None:
        apply = self.state.apply
        for e in events:
            apply(e)

    def execute(self, command: Command, now: datetime) -> Decision:
        """decide + apply, for callers without a journal (tests, simulations)."""
        decision = self.decide(command, now)
        self.apply_all(decision.events)
        return decision

    def perform(self, command: Command, now: datetime) -> Decision:
        """decide + apply in one pass: the journal's live path. The state holds the events when
        this returns (an OfficeError changes nothing); the caller stores them, and if it cannot,
        it must replace the state by the stored one. Gives what `execute` gives: the commonest
        commands change the state as they decide instead of dispatching over their events again
        (tests/test_model.py checks the two agree); the rest, and a new business day, decide and
        apply."""
        state = self.state
        today = state.day
        if today is not None:
            live = _LIVE.get(type(command))
            if live is not None:
                ts = self._stamp(now)
                if ts.date() <= today:
                    return live(self, state, ts, command)
        decision = self.decide(command, now)
        self.apply_all(decision.events)
        return decision

    def _stamp(self, now: datetime) -> datetime:
        """The time a command's events get: `now` to the millisecond (events are stored so,
        events.format_ts), never before the last event (a wall clock that jumps back never
        reorders events), in the office's zone."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        us = now.microsecond
        if us % 1000:
            now = now.replace(microsecond=us - us % 1000)
        last = self.state.last_ts
        ts = now if last is None or now >= last else last
        return ts if ts.tzinfo is self.tz else ts.astimezone(self.tz)

    # -- deciding -------------------------------------------------------------------------------
    def decide(self, command: Command, now: datetime) -> Decision:
        # Events are stored with millisecond times: record them so, or the live state would
        # differ from the state recovered from the journal.
        ts = self._stamp(now)
        state = self.state
        today = state.day
        day = ts.date()
        if today is not None and day <= today:
            return _HANDLERS[type(command)](self, state, ts, command)
        # A new business day: decide against the fresh day, and record its schedule first
        # unless the command changes nothing (a refusal stores nothing).
        schedule = self._schedule(state.last_seq + 1, ts, day, new_day=True)
        fresh = OfficeState(last_seq=state.last_seq, last_ts=state.last_ts)
        fresh.apply(schedule)
        decision = _HANDLERS[type(command)](self, fresh, ts, command)
        if decision.events or isinstance(command, StartDay):
            decision.events.insert(0, schedule)
        return decision

    def plan(self, day: date) -> DayPlan:
        """The day's plan, with its remote override if the state holds one."""
        override = self.state.overrides.get(day)
        plan = self._plans.get((day, override))
        if plan is None:
            if len(self._plans) >= PLANS_KEPT:  # a gateway runs for years: a plan a day would pile up
                self._plans.clear()
            plan = self._plans[(day, override)] = plan_for(self.config, day, override)
        return plan

    def _schedule(self, seq: int, ts: datetime, day: date, new_day: bool, plan: DayPlan | None = None) -> ev.Schedule:
        """The schedule event of `day` (of `plan` if given, else the day's plan with the state's
        override); a new day's carries the overrides still ahead."""
        plan = plan or self.plan(day)
        counters = []
        for c in self.config.counters:
            shifts = counter_shifts(self.config, plan, c.id)
            if shifts:
                counters.append(
                    {
                        "counter": c.id,
                        "services": list(c.services),
                        "shifts": [[f"{a:%H:%M}", f"{b:%H:%M}" if b else None] for a, b in shifts],
                    }
                )
        return ev.Schedule(
            seq=seq,
            ts=ts,
            date=day.isoformat(),
            new_day=new_day,
            counters=counters,
            closes=f"{plan.closes:%H:%M}" if plan.closes else None,
            periods=[
                {
                    "mode": p.mode,
                    "from": f"{p.start:%H:%M}",
                    "to": f"{p.end:%H:%M}",
                    "services": list(p.services),
                }
                for p in plan.periods
            ],
            overrides=[override_record(o) for d, o in sorted(self.state.overrides.items()) if d >= day] or None
            if new_day
            else None,
            messages={k: list(v) for k, v in sorted(self.state.dispenser_messages.items())} or None
            if new_day
            else None,
        )


# -- deciding, one handler per command ---------------------------------------------------------
# Each handler checks its command against `state` and returns the events (numbered from
# `state.last_seq + 1`, stamped `ts`) and the effects. They run for every command on the journal's
# write path, so they build their events directly, one Decision each, and nothing else; the
# commonest events are built from positional arguments (seq, ts, fields in order), which takes
# half the time of keywords.
def _no_counter(office: Office, counter_id: str) -> OfficeError:
    known = ", ".join(c.id for c in office.config.counters)
    return OfficeError("unknown_counter", f"unknown counter {counter_id!r} (counters: {known})")


def _no_service(office: Office, service_id: str) -> OfficeError:
    known = ", ".join(s.id for s in office.config.services)
    return OfficeError("unknown_service", f"unknown service {service_id!r} (services: {known})")


def _open_counter(office: Office, state: OfficeState, counter_id: str, action: str) -> CounterState:
    if counter_id not in office.counter_ids:
        raise _no_counter(office, counter_id)
    c = state.counters.get(counter_id)
    if c is None or c.status is CounterStatus.CLOSED:
        raise OfficeError("counter_closed", f"counter {counter_id} is closed; open it before you {action}")
    return c


def _current(office: Office, state: OfficeState, counter_id: str, action: str) -> Ticket:
    if counter_id not in office.counter_ids:
        raise _no_counter(office, counter_id)
    c = state.counters.get(counter_id)
    if c is None or c.current is None:
        raise OfficeError("no_current_ticket", f"counter {counter_id} is serving nobody, nothing to {action}")
    return state.tickets[c.current]


def _ticket(state: OfficeState, ticket_id: str) -> Ticket:
    t = state.tickets.get(ticket_id)
    if t is None:
        raise OfficeError("unknown_ticket", f"no ticket {ticket_id!r} today")
    return t


def _finish_current(state: OfficeState, ts: datetime, counter_id: str) -> list[ev.Event]:
    """The Served event that ends the counter's current service, if it has one."""
    c = state.counters.get(counter_id)
    if c is not None and c.current is not None:
        return [ev.Served(state.last_seq + 1, ts, c.current, counter_id)]
    return []


def _refused(service: str, reason: str, message: str) -> Decision:
    return Decision([], [IssueRefused(service, reason, message)])


def _start_day(office: Office, state: OfficeState, ts: datetime, cmd: StartDay) -> Decision:
    return Decision([], [])


def _issue_ticket(office: Office, state: OfficeState, ts: datetime, cmd: IssueTicket) -> Decision:
    service = office.services.get(cmd.service)
    if service is None:
        raise _no_service(office, cmd.service)
    local = ts  # already in the office's zone, and on the state's business day
    plan = office.plan(local.date())
    if not plan.is_open:
        reason = plan.reason.en if plan.reason else "closed"
        return _refused(cmd.service, "closed_today", f"the office is closed today ({reason})")
    closes = plan.service_closes(cmd.service, local.time())
    if closes is None:
        return _refused(cmd.service, "not_offered_now", f"{service.name.en} is not offered at {local:%H:%M}")
    ahead = len(state.queues.get(cmd.service, ()))
    wait = office.estimator.estimate(state, cmd.service, ahead, local)
    # Cut off when even the 10th percentile of the wait runs past the service's closing time.
    if wait.p10_s > (closes.hour * 3600 + closes.minute * 60) - (local.hour * 3600 + local.minute * 60 + local.second):
        return _refused(
            cmd.service,
            "cut_off",
            f"reception for {service.name.en} has ended for today: {ahead} waiting could not all be "
            f"called before {closes:%H:%M}",
        )
    number = state.last_number.get(cmd.service, service.first_number - 1) + 1
    # After a config change during the day (a prefix given to another service), a number may
    # already be taken: skip it, never issue a duplicate ticket id.
    ticket_id = office.ticket_ids[cmd.service]
    tid = ticket_id(number)
    while number <= service.last_number and tid in state.tickets:
        number += 1
        tid = ticket_id(number)
    if number > service.last_number:
        return _refused(
            cmd.service,
            "range_exhausted",
            f"range exhausted: {service.ticket_id(service.last_number)} was the last number for "
            f"{service.name.en} today",
        )
    token = cmd.token
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()  # token_hash(token), without the call
    issued = ev.TicketIssued(state.last_seq + 1, ts, tid, cmd.service, number, digest, token)
    return Decision([issued], [TicketReady(tid, cmd.service, number, ahead + 1, ahead, wait, ts, token, False, closes)])


def _call_next(office: Office, state: OfficeState, ts: datetime, cmd: CallNext) -> Decision:
    counter = cmd.counter
    c = _open_counter(office, state, counter, "call")
    if c.status is CounterStatus.PAUSED:
        raise OfficeError("counter_paused", f"counter {counter} is paused; resume it to call")
    events = _finish_current(state, ts, counter)
    queues = state.queues
    for service in c.services:
        queue = queues.get(service)
        if queue:
            tid = queue[0][1]
            events.append(ev.Called(state.last_seq + 1 + len(events), ts, tid, counter))
            return Decision(events, [ShowCall(tid, counter, False)])
    return Decision(events, [NobodyWaiting(counter, c.services)])


def _recall(office: Office, state: OfficeState, ts: datetime, cmd: Recall) -> Decision:
    t = _current(office, state, cmd.counter, "recall")
    limit = office.config.rules.recall_limit
    if t.recalls >= limit:
        raise OfficeError(
            "recall_limit",
            f"{t.id} was recalled {t.recalls} times already (limit {limit}); mark it no-show",
        )
    recalled = ev.Recalled(state.last_seq + 1, ts, t.id, cmd.counter)
    return Decision([recalled], [ShowCall(t.id, cmd.counter, True)])


def _mark_no_show(office: Office, state: OfficeState, ts: datetime, cmd: MarkNoShow) -> Decision:
    t = _current(office, state, cmd.counter, "mark no-show")
    requeue = office.config.rules.no_show == "requeue_once" and not t.requeued
    return Decision([ev.NoShow(seq=state.last_seq + 1, ts=ts, ticket=t.id, counter=cmd.counter, requeued=requeue)], [])


def _finish_service(office: Office, state: OfficeState, ts: datetime, cmd: FinishService) -> Decision:
    t = _current(office, state, cmd.counter, "finish")
    return Decision([ev.Served(state.last_seq + 1, ts, t.id, cmd.counter)], [])


def _transfer(office: Office, state: OfficeState, ts: datetime, cmd: Transfer) -> Decision:
    if (cmd.ticket is None) == (cmd.counter is None):
        raise OfficeError("bad_command", "transfer needs either a ticket or a counter")
    if cmd.counter is not None:
        t = _current(office, state, cmd.counter, "transfer")
    else:
        t = _ticket(state, cmd.ticket or "")
    if cmd.to_service not in office.services:
        raise _no_service(office, cmd.to_service)
    if t.status in (TicketStatus.SERVED, TicketStatus.NO_SHOW):
        raise OfficeError("ticket_done", f"{t.id} is already {t.status.value}; it cannot be transferred")
    if t.service == cmd.to_service:
        raise OfficeError("same_service", f"{t.id} is already in {cmd.to_service}")
    transferred = ev.Transferred(
        seq=state.last_seq + 1,
        ts=ts,
        ticket=t.id,
        to_service=cmd.to_service,
        from_service=t.service,
        counter=t.counter if t.status is TicketStatus.CALLED else None,
    )
    return Decision([transferred], [])


def _hold(office: Office, state: OfficeState, ts: datetime, cmd: Hold) -> Decision:
    t = _ticket(state, cmd.ticket)
    if t.status not in (TicketStatus.WAITING, TicketStatus.CALLED):
        raise OfficeError(
            "cannot_hold",
            f"{t.id} is {t.status.value}; only waiting or called tickets can be held",
        )
    return Decision([ev.Held(seq=state.last_seq + 1, ts=ts, ticket=t.id)], [])


def _return(office: Office, state: OfficeState, ts: datetime, cmd: Return) -> Decision:
    t = _ticket(state, cmd.ticket)
    if t.status is not TicketStatus.HELD:
        raise OfficeError("not_held", f"{t.id} is {t.status.value}, not held")
    return Decision([ev.Returned(seq=state.last_seq + 1, ts=ts, ticket=t.id)], [])


def _open(office: Office, state: OfficeState, ts: datetime, cmd: OpenCounter) -> Decision:
    if cmd.counter not in office.counter_ids:
        raise _no_counter(office, cmd.counter)
    c = state.counters.get(cmd.counter)
    if c is not None and c.status is not CounterStatus.CLOSED:
        raise OfficeError("counter_open", f"counter {cmd.counter} is already {c.status.value}")
    services = cmd.services or office.config.counter(cmd.counter).services
    for s in services:
        if s not in office.services:
            raise _no_service(office, s)
    if len(set(services)) != len(services):
        raise OfficeError("bad_command", "a counter's services must not repeat")
    return Decision([ev.CounterOpened(seq=state.last_seq + 1, ts=ts, counter=cmd.counter, services=list(services))], [])


def _pause(office: Office, state: OfficeState, ts: datetime, cmd: PauseCounter) -> Decision:
    c = _open_counter(office, state, cmd.counter, "pause")
    if c.status is CounterStatus.PAUSED:
        raise OfficeError("counter_paused", f"counter {cmd.counter} is already paused")
    events = _finish_current(state, ts, cmd.counter)
    events.append(ev.CounterPaused(seq=state.last_seq + 1 + len(events), ts=ts, counter=cmd.counter))
    return Decision(events, [])


def _resume(office: Office, state: OfficeState, ts: datetime, cmd: ResumeCounter) -> Decision:
    c = _open_counter(office, state, cmd.counter, "resume")
    if c.status is not CounterStatus.PAUSED:
        raise OfficeError("counter_open", f"counter {cmd.counter} is not paused")
    return Decision([ev.CounterResumed(seq=state.last_seq + 1, ts=ts, counter=cmd.counter)], [])


def _close(office: Office, state: OfficeState, ts: datetime, cmd: CloseCounter) -> Decision:
    _open_counter(office, state, cmd.counter, "close")
    events = _finish_current(state, ts, cmd.counter)
    events.append(ev.CounterClosed(seq=state.last_seq + 1 + len(events), ts=ts, counter=cmd.counter))
    return Decision(events, [])


def _record_print_failure(office: Office, state: OfficeState, ts: datetime, cmd: RecordPrintFailure) -> Decision:
    t = _ticket(state, cmd.ticket)
    failed = ev.PrintFailed(seq=state.last_seq + 1, ts=ts, ticket=t.id, printer=cmd.printer, reason=cmd.reason)
    return Decision([failed], [])


def _reprint(office: Office, state: OfficeState, ts: datetime, cmd: Reprint) -> Decision:
    """The ticket again, as it stands now: its own number and token, its current place."""
    t = _ticket(state, cmd.ticket)
    if t.status in (TicketStatus.SERVED, TicketStatus.NO_SHOW):
        raise OfficeError("ticket_done", f"{t.id} is already {t.status.value}; its paper is no longer needed")
    ahead = state.ahead_of(t) if t.status is TicketStatus.WAITING else 0
    wait = office.estimator.estimate(state, t.service, ahead, ts, t.id if t.status is TicketStatus.WAITING else None)
    issued = t.issued_at.astimezone(office.tz)
    closes = office.plan(issued.date()).service_closes(t.service, issued.time())
    events: list[ev.Event] = []
    token = t.token
    if not token:  # restored without its token: a new one, stored before its QR code is printed
        if not cmd.new_token:
            raise OfficeError("no_token", f"{t.id} was restored without its token; a reprint needs a new one")
        token = cmd.new_token
        events.append(ev.TokenReplaced(state.last_seq + 1, ts, t.id, token_hash(token), token))
    ready = TicketReady(t.id, t.service, t.number, ahead + 1, ahead, wait, t.issued_at, token, True, closes)
    return Decision(events, [ready])


def _record_reprint(office: Office, state: OfficeState, ts: datetime, cmd: RecordReprint) -> Decision:
    t = _ticket(state, cmd.ticket)
    return Decision([ev.Reprinted(seq=state.last_seq + 1, ts=ts, ticket=t.id, printer=cmd.printer)], [])


def _override_mode(office: Office, state: OfficeState, ts: datetime, cmd: OverrideMode) -> Decision:
    o = cmd.override
    today = state.day or ts.date()
    if o.day < today:
        raise OfficeError("past_date", f"{o.day} is past; only today ({today}) or a day ahead can be overridden")
    try:
        plan = plan_for(office.config, o.day, o)  # its hours resolve (a mode without hours given or configured)
    except ValueError as exc:
        raise OfficeError("bad_override", str(exc)) from None
    record = override_record(o)
    events: list[ev.Event] = [ev.ModeOverridden(state.last_seq + 1, ts, **record)]
    if o.day == today:  # today's plan changes now: the schedule for the rest of the day follows
        events.append(office._schedule(state.last_seq + 2, ts, o.day, new_day=False, plan=plan))
    return Decision(events, [])


def _clear_mode_override(office: Office, state: OfficeState, ts: datetime, cmd: ClearModeOverride) -> Decision:
    if cmd.day not in state.overrides:
        raise OfficeError("no_override", f"{cmd.day} has no override")
    events: list[ev.Event] = [ev.ModeOverrideCleared(state.last_seq + 1, ts, cmd.day.isoformat())]
    if cmd.day == (state.day or ts.date()):
        plain = plan_for(office.config, cmd.day)
        events.append(office._schedule(state.last_seq + 2, ts, cmd.day, new_day=False, plan=plain))
    return Decision(events, [])


def _record_remote_command(office: Office, state: OfficeState, ts: datetime, cmd: RecordRemoteCommand) -> Decision:
    error = cmd.error[:500] if cmd.error else None  # an audit line, not a dump of the payload
    audit = ev.RemoteCommand(state.last_seq + 1, ts, cmd.request, cmd.name, cmd.sender, cmd.ok, error)
    return Decision([audit], [])


def _record_config_change(office: Office, state: OfficeState, ts: datetime, cmd: RecordConfigChange) -> Decision:
    changed = ev.ConfigChanged(
        state.last_seq + 1, ts, cmd.sha256, cmd.previous_sha256, cmd.via, cmd.sender, list(cmd.restart_needed)
    )
    events: list[ev.Event] = [changed]
    old = state.schedule
    if state.day is not None and old is not None and ts.date() == state.day:
        # Today's plan under the new config (hours, counters' shifts, services' periods): the
        # rest of the day's schedule, as after an override, when it differs from the one in force.
        plan = office._schedule(state.last_seq + 2, ts, state.day, new_day=False)
        if (plan.counters, plan.closes, plan.periods) != (old.counters, old.closes, old.periods):
            events.append(plan)
    return Decision(events, [])


def _set_dispenser_message(office: Office, state: OfficeState, ts: datetime, cmd: SetDispenserMessage) -> Decision:
    # Stored even when the panels are so already: the record of what was asked, and a retried
    # request id then finds it (answered, not redone).
    return Decision([ev.DispenserMessage(state.last_seq + 1, ts, cmd.device, list(cmd.lines))], [])


def _record_clock_step(office: Office, state: OfficeState, ts: datetime, cmd: RecordClockStep) -> Decision:
    stepped = ev.ClockStepped(
        seq=state.last_seq + 1, ts=ts, expected=ev.format_ts(cmd.expected), step_s=round(cmd.step_s, 3)
    )
    return Decision([stepped], [])


_Handler = Callable[[Office, OfficeState, datetime, Any], Decision]
_HANDLERS: dict[type, _Handler] = {
    StartDay: _start_day,
    IssueTicket: _issue_ticket,
    CallNext: _call_next,
    Recall: _recall,
    MarkNoShow: _mark_no_show,
    FinishService: _finish_service,
    Transfer: _transfer,
    Hold: _hold,
    Return: _return,
    OpenCounter: _open,
    PauseCounter: _pause,
    ResumeCounter: _resume,
    CloseCounter: _close,
    RecordPrintFailure: _record_print_failure,
    Reprint: _reprint,
    RecordReprint: _record_reprint,
    RecordClockStep: _record_clock_step,
    RecordRemoteCommand: _record_remote_command,
    OverrideMode: _override_mode,
    ClearModeOverride: _clear_mode_override,
    RecordConfigChange: _record_config_change,
    SetDispenserMessage: _set_dispenser_message,
}


# -- deciding and applying in one pass: the journal's live path (Office.perform) ---------------
# Each of these gives the Decision its decide handler gives and leaves the state as applying its
# events would (tests/test_model.py checks both against decide + apply), without a second
# dispatch over the events; each checks everything before it changes anything. They mirror the
# state's event handlers (office/state.py): a change there must be made here too.
def _issue_ticket_live(office: Office, state: OfficeState, ts: datetime, cmd: IssueTicket) -> Decision:
    decision = _issue_ticket(office, state, ts, cmd)
    if decision.events:
        e: ev.TicketIssued = decision.events[0]  # type: ignore[assignment]
        state._on_issued(e)
        state.last_seq = e.seq
        state.last_ts = ts
    return decision


def _call_next_live(office: Office, state: OfficeState, ts: datetime, cmd: CallNext) -> Decision:
    counter = cmd.counter
    c = _open_counter(office, state, counter, "call")
    if c.status is CounterStatus.PAUSED:
        raise OfficeError("counter_paused", f"counter {counter} is paused; resume it to call")
    seq = state.last_seq
    tickets = state.tickets
    events: list[ev.Event] = []
    current = c.current
    if current is not None:
        # Served: as state._on_served.
        seq += 1
        events.append(ev.Served(seq, ts, current, counter))
        t = tickets[current]
        state._leave(t)
        t.status = TicketStatus.SERVED
        t.counter = counter
        state.last_seq, state.last_ts = seq, ts
    queues = state.queues
    for service in c.services:
        queue = queues.get(service)
        if queue:
            # Called: as state._on_called for a waiting ticket, which is the head of its queue.
            tid = queue[0][1]
            seq += 1
            events.append(ev.Called(seq, ts, tid, counter))
            del queue[0]
            if not queue:
                del queues[service]
            t = tickets[tid]
            t.status = TicketStatus.CALLED
            t.counter = counter
            t.called_at = ts
            t.recalls = 0
            calls = state.calls
            calls.pop(tid, None)
            calls[tid] = None
            c.current = tid
            state.last_seq, state.last_ts = seq, ts
            return Decision(events, [ShowCall(tid, counter, False)])
    return Decision(events, [NobodyWaiting(counter, c.services)])


def _recall_live(office: Office, state: OfficeState, ts: datetime, cmd: Recall) -> Decision:
    decision = _recall(office, state, ts, cmd)
    e = decision.events[0]
    state.tickets[e.ticket].recalls += 1  # type: ignore[attr-defined]
    state.last_seq, state.last_ts = e.seq, ts
    return decision


def _finish_service_live(office: Office, state: OfficeState, ts: datetime, cmd: FinishService) -> Decision:
    t = _current(office, state, cmd.counter, "finish")
    seq = state.last_seq + 1
    decision = Decision([ev.Served(seq, ts, t.id, cmd.counter)], [])
    state._leave(t)
    t.status = TicketStatus.SERVED
    t.counter = cmd.counter
    state.last_seq, state.last_ts = seq, ts
    return decision


_LIVE: dict[type, _Handler] = {
    IssueTicket: _issue_ticket_live,
    CallNext: _call_next_live,
    Recall: _recall_live,
    FinishService: _finish_service_live,
}
