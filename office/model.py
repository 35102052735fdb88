"""The office model: commands in, events and effects out.

`Office.decide(command, now)` checks a command against the state and returns the events that
would record it plus the effects to release once they are stored; it changes nothing. The shell
(the gateway's journal) stores the events, then calls `Office.apply` and releases the effects.
Pure: an injected clock, no I/O, no threads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from office import events as ev
from office.calendar import DayPlan, counter_shifts, plan_for
from office.config import OfficeConfig, Service
from office.estimate import CapacityEstimator, WaitEstimator, WaitRange
from office.state import CounterStatus, OfficeState, Ticket, TicketStatus


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
        self._plans: dict[date, DayPlan] = {}
        # Lookups on every command: keep them O(1).
        self.tz = config.tz
        self.services: dict[str, Service] = {s.id: s for s in config.services}
        self.counter_ids = frozenset(c.id for c in config.counters)

    def apply(self, event: ev.Event) -> None:
        self.state.apply(event)

    def apply_all(self, events: list[ev.Event]) -> None:
        for e in events:
            self.state.apply(e)

    def execute(self, command: Command, now: datetime) -> Decision:
        """decide + apply, for callers without a journal (tests, simulations)."""
        decision = self.decide(command, now)
        self.apply_all(decision.events)
        return decision

    # -- deciding -------------------------------------------------------------------------------
    def decide(self, command: Command, now: datetime) -> Decision:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        # Events are stored with millisecond times (events.format_ts): record them so, or the
        # live state would differ from the state recovered from the journal.
        sub_ms = now.microsecond % 1000
        if sub_ms:
            now = now.replace(microsecond=now.microsecond - sub_ms)
        # A wall clock that jumps back never reorders events or goes back a business day.
        last = self.state.last_ts
        ts = now if last is None or now >= last else last
        if ts.tzinfo is not self.tz:
            ts = ts.astimezone(self.tz)
        day = ts.date()
        if self.state.day is not None and day < self.state.day:
            day = self.state.day
        if self.state.day == day:
            return _Decider(self, self.state, ts).run(command)
        # A new business day: decide against the fresh day, and record its schedule first
        # unless the command changes nothing (a refusal stores nothing).
        schedule = self._schedule(self.state.last_seq + 1, ts, day, new_day=True)
        fresh = OfficeState(last_seq=self.state.last_seq, last_ts=self.state.last_ts)
        fresh.apply(schedule)
        decision = _Decider(self, fresh, ts).run(command)
        if decision.events or isinstance(command, StartDay):
            decision.events.insert(0, schedule)
        return decision

    def plan(self, day: date) -> DayPlan:
        plan = self._plans.get(day)
        if plan is None:
            plan = self._plans[day] = plan_for(self.config, day)
        return plan

    def _schedule(self, seq: int, ts: datetime, day: date, new_day: bool) -> ev.Schedule:
        plan = self.plan(day)
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
        )


class _Decider:
    """Decides one command against a state, accumulating events with their seq numbers."""

    __slots__ = ("_next_seq", "config", "decision", "office", "state", "ts")

    def __init__(self, office: Office, state: OfficeState, ts: datetime) -> None:
        self.office = office
        self.config = office.config
        self.state = state
        self.ts = ts
        self.decision = Decision()
        self._next_seq = state.last_seq + 1

    def run(self, command: Command) -> Decision:
        _DISPATCH[type(command)](self, command)
        return self.decision

    # -- helpers -----------------------------------------------------------------------------
    def emit(self, cls: type[ev.Event], **fields: Any) -> None:
        self.decision.events.append(cls(seq=self._next_seq, ts=self.ts, **fields))
        self._next_seq += 1

    def counter(self, counter_id: str) -> Any:
        if counter_id not in self.office.counter_ids:
            known = ", ".join(c.id for c in self.config.counters)
            raise OfficeError("unknown_counter", f"unknown counter {counter_id!r} (counters: {known})")
        return self.state.counters.get(counter_id)

    def open_counter(self, counter_id: str, action: str) -> Any:
        c = self.counter(counter_id)
        if c is None or c.status is CounterStatus.CLOSED:
            raise OfficeError("counter_closed", f"counter {counter_id} is closed; open it before you {action}")
        return c

    def current(self, counter_id: str, action: str) -> Ticket:
        c = self.counter(counter_id)
        if c is None or c.current is None:
            raise OfficeError("no_current_ticket", f"counter {counter_id} is serving nobody, nothing to {action}")
        return self.state.tickets[c.current]

    def ticket(self, ticket_id: str) -> Ticket:
        t = self.state.tickets.get(ticket_id)
        if t is None:
            raise OfficeError("unknown_ticket", f"no ticket {ticket_id!r} today")
        return t

    def service(self, service_id: str) -> Service:
        service = self.office.services.get(service_id)
        if service is None:
            known = ", ".join(s.id for s in self.config.services)
            raise OfficeError("unknown_service", f"unknown service {service_id!r} (services: {known})")
        return service

    def finish_current(self, counter_id: str) -> None:
        c = self.state.counters.get(counter_id)
        if c is not None and c.current is not None:
            self.emit(ev.Served, ticket=c.current, counter=counter_id)

    def refuse(self, service: str, reason: str, message: str) -> None:
        self.decision.effects.append(IssueRefused(service, reason, message))

    # -- commands ------------------------------------------------------------------------------
    def _StartDay(self, cmd: StartDay) -> None:
        pass

    def _IssueTicket(self, cmd: IssueTicket) -> None:
        service = self.service(cmd.service)
        local = self.ts  # already in the office's zone, and on the state's business day
        plan = self.office.plan(local.date())
        if not plan.is_open:
            reason = plan.reason.en if plan.reason else "closed"
            self.refuse(cmd.service, "closed_today", f"the office is closed today ({reason})")
            return
        closes = plan.service_closes(cmd.service, local.time())
        if closes is None:
            self.refuse(cmd.service, "not_offered_now", f"{service.name.en} is not offered at {local:%H:%M}")
            return
        ahead = len(self.state.queues.get(cmd.service, ()))
        wait = self.office.estimator.estimate(self.state, cmd.service, ahead, local)
        if wait.low_minutes > (closes.hour * 60 + closes.minute) - (local.hour * 60 + local.minute + local.second / 60):
            self.refuse(
                cmd.service,
                "cut_off",
                f"reception for {service.name.en} has ended for today: {ahead} waiting could not all be "
                f"called before {closes:%H:%M}",
            )
            return
        number = self.state.last_number.get(cmd.service, service.first_number - 1) + 1
        # After a config change during the day (a prefix given to another service), a number may
        # already be taken: skip it, never issue a duplicate ticket id.
        tid = service.ticket_id(number)
        while number <= service.last_number and tid in self.state.tickets:
            number += 1
            tid = service.ticket_id(number)
        if number > service.last_number:
            self.refuse(
                cmd.service,
                "range_exhausted",
                f"range exhausted: {service.ticket_id(service.last_number)} was the last number for "
                f"{service.name.en} today",
            )
            return
        self.emit(
            ev.TicketIssued,
            ticket=tid,
            service=cmd.service,
            number=number,
            token_hash=token_hash(cmd.token),
            token=cmd.token,
        )
        self.decision.effects.append(TicketReady(tid, cmd.service, number, ahead + 1, ahead, wait, self.ts, cmd.token))

    def _CallNext(self, cmd: CallNext) -> None:
        c = self.open_counter(cmd.counter, "call")
        if c.status is CounterStatus.PAUSED:
            raise OfficeError("counter_paused", f"counter {cmd.counter} is paused; resume it to call")
        self.finish_current(cmd.counter)
        for service in c.services:
            queue = self.state.queues.get(service)
            if queue:
                tid = queue[0][1]
                self.emit(ev.Called, ticket=tid, counter=cmd.counter)
                self.decision.effects.append(ShowCall(tid, cmd.counter, recall=False))
                return
        self.decision.effects.append(NobodyWaiting(cmd.counter, c.services))

    def _Recall(self, cmd: Recall) -> None:
        t = self.current(cmd.counter, "recall")
        limit = self.config.rules.recall_limit
        if t.recalls >= limit:
            raise OfficeError(
                "recall_limit",
                f"{t.id} was recalled {t.recalls} times already (limit {limit}); mark it no-show",
            )
        self.emit(ev.Recalled, ticket=t.id, counter=cmd.counter)
        self.decision.effects.append(ShowCall(t.id, cmd.counter, recall=True))

    def _MarkNoShow(self, cmd: MarkNoShow) -> None:
        t = self.current(cmd.counter, "mark no-show")
        requeue = self.config.rules.no_show == "requeue_once" and not t.requeued
        self.emit(ev.NoShow, ticket=t.id, counter=cmd.counter, requeued=requeue)

    def _FinishService(self, cmd: FinishService) -> None:
        t = self.current(cmd.counter, "finish")
        self.emit(ev.Served, ticket=t.id, counter=cmd.counter)

    def _Transfer(self, cmd: Transfer) -> None:
        if (cmd.ticket is None) == (cmd.counter is None):
            raise OfficeError("bad_command", "transfer needs either a ticket or a counter")
        t = self.current(cmd.counter, "transfer") if cmd.counter is not None else self.ticket(cmd.ticket or "")
        self.service(cmd.to_service)
        if t.status in (TicketStatus.SERVED, TicketStatus.NO_SHOW):
            raise OfficeError("ticket_done", f"{t.id} is already {t.status.value}; it cannot be transferred")
        if t.service == cmd.to_service:
            raise OfficeError("same_service", f"{t.id} is already in {cmd.to_service}")
        self.emit(
            ev.Transferred,
            ticket=t.id,
            to_service=cmd.to_service,
            from_service=t.service,
            counter=t.counter if t.status is TicketStatus.CALLED else None,
        )

    def _Hold(self, cmd: Hold) -> None:
        t = self.ticket(cmd.ticket)
        if t.status not in (TicketStatus.WAITING, TicketStatus.CALLED):
            raise OfficeError(
                "cannot_hold",
                f"{t.id} is {t.status.value}; only waiting or called tickets can be held",
            )
        self.emit(ev.Held, ticket=t.id)

    def _Return(self, cmd: Return) -> None:
        t = self.ticket(cmd.ticket)
        if t.status is not TicketStatus.HELD:
            raise OfficeError("not_held", f"{t.id} is {t.status.value}, not held")
        self.emit(ev.Returned, ticket=t.id)

    def _OpenCounter(self, cmd: OpenCounter) -> None:
        c = self.counter(cmd.counter)
        if c is not None and c.status is not CounterStatus.CLOSED:
            raise OfficeError("counter_open", f"counter {cmd.counter} is already {c.status.value}")
        services = cmd.services or self.config.counter(cmd.counter).services
        for s in services:
            self.service(s)
        if len(set(services)) != len(services):
            raise OfficeError("bad_command", "a counter's services must not repeat")
        self.emit(ev.CounterOpened, counter=cmd.counter, services=list(services))

    def _PauseCounter(self, cmd: PauseCounter) -> None:
        c = self.open_counter(cmd.counter, "pause")
        if c.status is CounterStatus.PAUSED:
            raise OfficeError("counter_paused", f"counter {cmd.counter} is already paused")
        self.finish_current(cmd.counter)
        self.emit(ev.CounterPaused, counter=cmd.counter)

    def _ResumeCounter(self, cmd: ResumeCounter) -> None:
        c = self.open_counter(cmd.counter, "resume")
        if c.status is not CounterStatus.PAUSED:
            raise OfficeError("counter_open", f"counter {cmd.counter} is not paused")
        self.emit(ev.CounterResumed, counter=cmd.counter)

    def _CloseCounter(self, cmd: CloseCounter) -> None:
        self.open_counter(cmd.counter, "close")
        self.finish_current(cmd.counter)
        self.emit(ev.CounterClosed, counter=cmd.counter)


# Each command type to its handler: `_Decider._<CommandName>`.
_DISPATCH: dict[type, Any] = {
    cls: getattr(_Decider, "_" + cls.__name__)
    for cls in (
        StartDay,
        IssueTicket,
        CallNext,
        Recall,
        MarkNoShow,
        FinishService,
        Transfer,
        Hold,
        Return,
        OpenCounter,
        PauseCounter,
        ResumeCounter,
        CloseCounter,
    )
}
