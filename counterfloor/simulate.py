"""A seeded simulation of one office day, driven through the real office model.

Owns the day as it plays out: the residents who arrive (`counterfloor.arrivals` draws who comes,
when, and how each will behave) taking tickets, answering calls or not, giving up; and the staff
opening and pausing counters on their shifts, calling, recalling, marking no-shows,
transferring. Every floor change is a command sent through `execute(command, now)`: the `Office`
itself for a pure run, or a `TicketJournal` for the demo, so the demo takes the crash-safe path.
Pure: simulated time only, no I/O, no sleeping, no wall clock; the same config, date and seed
give the same day, whatever other days are simulated with it. What it shows is
`counterfloor.floor_view`; pacing and drawing belong to `counterfloor.demo`, the event-log files
of `counterfloor sim` to `counterfloor.sim_cli`. `DaySimulation.resume` starts a day part-way,
from a floor and hidden state given by the caller: the oracle's (`counterfloor.oracle`) replays.

Residents read the board's estimate (the office model's `WaitEstimator`) before taking a ticket,
so the simulated days depend on the estimator the office runs. The behaviour numbers here and
in `counterfloor.arrivals` are the frozen profiles of docs/simulation.md (`PROFILES_VERSION`).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Literal

from counterfloor import arrivals as profiles
from counterfloor.arrivals import Arrival, ServiceTimes, demand_for, generate_arrivals, seconds_of_day
from counterfloor.floor_view import CallView, CounterView, DaySummary, FloorView, ServiceSummary, ServiceView
from office import events as ev
from office.calendar import counter_shifts, plan_for
from office.config import OfficeConfig
from office.estimate import WaitEstimator, WaitRange
from office.model import (
    CallNext,
    CloseCounter,
    Command,
    Decision,
    FinishService,
    IssueRefused,
    IssueTicket,
    MarkNoShow,
    NobodyWaiting,
    Office,
    OpenCounter,
    PauseCounter,
    Recall,
    ResumeCounter,
    ShowCall,
    StartDay,
    TicketReady,
    Transfer,
)
from office.state import CounterStatus, TicketStatus
from office.waittime.estimator import LearnedEstimator
from office.waittime.predictors import Predictor

if TYPE_CHECKING:
    from counterfloor.away import SteppingAway

Execute = Callable[[Command, datetime], Decision]

# The version of the frozen profiles: every number here and in counterfloor.arrivals that shapes
# a simulated day (docs/simulation.md). Printed by `counterfloor sim`; a new number, a new version.
PROFILES_VERSION = "v1"

# Residents' behaviour on the floor (their arrivals: counterfloor.arrivals).
WALK_SECONDS = (20, 60)  # from the seat to the counter after a call
STAFF_REACTION_SECONDS = (10, 40)  # tidying up before pressing "call" again
WAKE_SECONDS = (5, 20)  # an idle counter noticing a new ticket on its screen
RECALL_AFTER_SECONDS = (25, 45)  # waiting for a called resident before recalling
P_MISS_FIRST_CALL = 0.03  # stepped out, or did not hear
P_ANSWER_RECALL = 0.55
P_ANSWER_REQUEUED_CALL = 0.85
STOP_AFTER_CLOSE = timedelta(hours=4)  # the building shuts: whoever still waits is sent home


# -- the simulation ---------------------------------------------------------------------------
class SimulationError(RuntimeError):
    """The day cannot be simulated (e.g. the office is closed on that date)."""


class _Kind(Enum):
    ARRIVE = 0
    SHIFT_START = 1
    SHIFT_END = 2
    RECEPTION_CHECK = 3
    CALL = 4
    AT_COUNTER = 5
    SERVICE_END = 6
    NO_ANSWER = 7
    TRANSFER = 8
    ALERT_CHECK = 9  # the residents who stepped away (counterfloor/away.py): is anyone's alert due?


@dataclass(slots=True)
class _Block:
    """A run of adjacent shifts: the counter works from start to end (None: until nobody is left)."""

    start: int
    end: int | None


@dataclass(slots=True)
class _Counter:
    id: str
    blocks: list[_Block]
    activity: str = "off"  # off, lunch, idle, waking (about to call), calling, serving
    ticket: str | None = None
    idle_since: int = 0
    served: int = 0
    visit: int = 0  # bumps with every call, so stale scheduled events are ignored
    overtime: bool = False


@dataclass(slots=True)
class _TicketLog:
    ticket: str
    service: str
    resident: int
    issued_at: int
    estimate: WaitRange
    first_called_at: int | None = None
    # The wait of docs/events.md: from the issue (or a requeuing no-show) to the next call.
    waiting_since: int | None = None  # when the running wait began; None: called
    longest_wait: int = 0  # seconds: the longest of its waits that ended
    calls: int = 0  # calls answered or not, recalls excluded
    answer_draw: int = 0  # next index into Arrival.answers
    transferred: bool = False  # sent on to another service
    wrong_handled: bool = False  # the wrong-ticket mix-up has been dealt with


def _seeded_token(rng: random.Random) -> Callable[[], str]:
    def make() -> str:
        return base64.urlsafe_b64encode(rng.getrandbits(192).to_bytes(24, "big")).decode("ascii")

    return make


def _merge_blocks(shifts: list[tuple[time, time | None]]) -> list[_Block]:
    blocks: list[_Block] = []
    for start, end in sorted(shifts, key=lambda s: s[0]):
        s, e = seconds_of_day(start), (seconds_of_day(end) if end is not None else None)
        if blocks and blocks[-1].end is not None and s <= blocks[-1].end:
            last = blocks[-1]
            last.end = None if e is None else max(last.end or 0, e)
        else:
            blocks.append(_Block(s, e))
    return blocks


@dataclass(slots=True)
class _Tally:
    residents: int = 0
    walked_away: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    recalls: int = 0
    transfers: int = 0
    calls: list[CallView] = field(default_factory=list)


# -- a day resumed from an observed floor (counterfloor.oracle) -------------------------------------
# An oracle plays the rest of a day again and again from what the office had seen at some moment,
# whatever it could not see (residents' patience, the time left at a counter, a counter about to
# call) re-drawn each time by the oracle. The day's own code plays it: these only say where it starts.
NextStep = Literal["call", "at_counter", "service_end", "no_answer", "transfer"]
_NEXT_KIND: dict[str, _Kind] = {
    "call": _Kind.CALL,
    "at_counter": _Kind.AT_COUNTER,
    "service_end": _Kind.SERVICE_END,
    "no_answer": _Kind.NO_ANSWER,
    "transfer": _Kind.TRANSFER,
}
_UNKNOWN_ESTIMATE = WaitRange(0.0, 0.0, 0.0)  # what the ticket printed: not needed to play on


@dataclass(frozen=True, slots=True)
class ResumedTicket:
    """A ticket on the floor (waiting, or at a counter) when a day resumes, with its resident."""

    ticket: str
    service: str  # as issued
    issued_at: int  # seconds after local midnight
    resident: Arrival
    first_called_at: int | None = None
    calls: int = 0  # calls so far, recalls excluded
    answer_draw: int = 0  # the resident's answers used so far (`_answers`)
    transferred: bool = False


@dataclass(frozen=True, slots=True)
class ResumedCounter:
    """A counter when a day resumes: its activity (as `_Counter`'s), the ticket in front of it,
    since when it has been idle, and what it does next and when (None: waits for a shift or a
    ticket)."""

    id: str
    activity: str
    ticket: str | None = None
    idle_since: int = 0
    next: tuple[int, NextStep] | None = None


def board_wait_seconds(office: Office, service: str, now: datetime) -> int:
    """The wait a resident about to take a ticket of `service` reads on the board, in seconds:
    the middle of its range in whole minutes, or 0 when nobody waits (they take a ticket without
    looking). Beyond their patience, they walk away (`DaySimulation._balks`)."""
    ahead = len(office.state.queues.get(service, ()))
    if not ahead:
        return 0
    est = office.estimator.estimate(office.state, service, ahead, now)
    return (est.low_minutes + est.high_minutes) * 30


class DaySimulation:
    """One office day, step by step. Drive it with `run_until(moment)` or `run()`.

    `office` is read for the floor's state; `execute` (default: `office.execute`) carries every
    command, so a `TicketJournal` can stand in: `DaySimulation(cfg, day, office=j.office,
    execute=j.execute)`. `make_token` makes residents' page tokens (default: from the seed).
    """

    def __init__(
        self,
        config: OfficeConfig,
        day: date,
        *,
        seed: int = 1,
        rush: bool = False,
        office: Office | None = None,
        execute: Execute | None = None,
        make_token: Callable[[], str] | None = None,
        estimator: WaitEstimator | None = None,
        arrivals: Sequence[Arrival] | None = None,
        away: SteppingAway | None = None,
    ) -> None:
        if office is not None and estimator is not None:
            raise ValueError("give the estimator to the Office passed as `office`")
        self.config = config
        self.day = day
        self.seed = seed
        self.rush = rush
        self.away = away  # residents who step away with alerts on (None: nobody does)
        self.plan = plan_for(config, day)
        if not self.plan.is_open or self.plan.opens is None or self.plan.closes is None:
            why = self.plan.reason.en if self.plan.reason else "closed"
            raise SimulationError(f"{config.name.en} is closed on {day.isoformat()} ({why})")
        self.office = office if office is not None else Office(config, estimator=estimator)
        self._execute: Execute = execute if execute is not None else self.office.execute
        # Residents draw from their own stream (seeded by seed and date, so two Tuesdays differ
        # and a day is the same alone or in a run of days); staff and tokens from theirs, so a
        # different token source (the demo's real tokens) changes nothing else. `arrivals`:
        # residents drawn elsewhere (a resumed day's, `resume`).
        self.arrivals = (
            list(arrivals)
            if arrivals is not None
            else generate_arrivals(config, self.plan, random.Random(f"{seed}-{day.isoformat()}"), rush)
        )
        self.service_times = ServiceTimes(config, day, seed)
        self._staff = random.Random(f"counterfloor-staff-{seed}-{day.isoformat()}")
        # By date too: the same token (and token_hash) on two days would be one resident's page.
        self._make_token = make_token or _seeded_token(random.Random(f"counterfloor-tokens-{seed}-{day.isoformat()}"))
        self._midnight = datetime.combine(day, time(0), tzinfo=config.tz)

        self.opens = seconds_of_day(self.plan.opens)
        self.closes = seconds_of_day(self.plan.closes)
        self._counters = {
            c.id: _Counter(c.id, _merge_blocks(counter_shifts(config, self.plan, c.id))) for c in config.counters
        }
        first_shift = min((b.start for c in self._counters.values() for b in c.blocks), default=self.opens)
        self.start = min(self.opens, first_shift) - 600
        last_fixed = max(
            (b.end for c in self._counters.values() for b in c.blocks if b.end is not None), default=self.closes
        )
        self.planned_end = max(self.closes, last_fixed)
        # Never past midnight: the model would start the next business day.
        self.stop_at = min(self.closes + int(STOP_AFTER_CLOSE.total_seconds()), 86400 - 1)
        self.now = self.start
        self.done = False
        self.ended_at: int | None = None
        self._heap: list[tuple[int, int, _Kind, int, str]] = []
        self._seq = 0
        self._tickets: dict[str, _TicketLog] = {}
        self._tally = _Tally()
        self._started = False
        self._reception_ends = sorted(
            {
                seconds_of_day(end)
                for p in self.plan.periods
                for sid in p.services
                if (end := self.plan.service_closes(sid, p.start)) is not None
            }
        )

    # -- driving --------------------------------------------------------------------------------
    def moment(self, seconds: int) -> datetime:
        return self._midnight + timedelta(seconds=seconds)

    @property
    def start_moment(self) -> datetime:
        return self.moment(self.start)

    @property
    def planned_end_moment(self) -> datetime:
        return self.moment(self.planned_end)

    @property
    def now_moment(self) -> datetime:
        return self.moment(self.now)

    def run(self) -> DaySummary:
        while not self.done:
            self.run_until(self.moment(self.stop_at))
        return self.summary()

    def run_until(self, until: datetime) -> None:
        """Carry out everything that happens up to `until` (a simulated moment)."""
        self._run(min(self.stop_at, math.floor((until - self._midnight).total_seconds())))

    def _run(self, limit: int, called: str | None = None) -> None:
        """Everything up to `limit` (seconds after midnight), or until the ticket `called` has
        been called for the first time."""
        if not self._started:
            self._begin()
        while self._heap and self._heap[0][0] <= limit:
            t, _, kind, num, key = heapq.heappop(self._heap)
            self.now = t
            self._handle(kind, num, key)
            if called is not None and (log := self._tickets.get(called)) and log.first_called_at is not None:
                return  # the day goes on: only the caller stops here
        if self.done:
            return
        if not self._heap:
            self._finish()  # nothing more will happen: the day ended with its last event
        else:
            self.now = max(self.now, limit)
            if self.now >= self.stop_at:
                self._finish()

    # -- resuming --------------------------------------------------------------------------------
    @classmethod
    def resume(
        cls,
        config: OfficeConfig,
        day: date,
        *,
        office: Office,
        now: int,
        tickets: Sequence[ResumedTicket],
        counters: Sequence[ResumedCounter],
        arrivals: Sequence[Arrival] = (),
        staff: random.Random,
        seed: int = 1,
        rush: bool = False,
    ) -> DaySimulation:
        """The day from `now` (seconds after local midnight) on: `office` holds the floor as
        observed (its events so far), `tickets` and `counters` what is on it, `arrivals` the
        residents still to come (after `now`, in order; more with `add_arrivals`), `staff` the
        staff's fresh randomness. Shifts, reception ends and the true service times are the day's
        (config, `seed`)."""
        residents = [t.resident for t in tickets]
        sim = cls(config, day, seed=seed, rush=rush, office=office, arrivals=residents)
        sim._staff = staff
        sim._started = True
        sim.now = now
        for i, t in enumerate(tickets):
            sim._tickets[t.ticket] = _TicketLog(
                t.ticket,
                t.service,
                i,
                t.issued_at,
                _UNKNOWN_ESTIMATE,
                first_called_at=t.first_called_at,
                waiting_since=t.issued_at if t.first_called_at is None else None,
                calls=t.calls,
                answer_draw=t.answer_draw,
                transferred=t.transferred,
                wrong_handled=t.transferred,
            )
        sim.add_arrivals(arrivals)
        for c in sim._counters.values():
            for b in c.blocks:
                if b.start >= now:
                    sim._at(b.start, _Kind.SHIFT_START, 0, c.id)
                if b.end is not None and b.end >= now:
                    sim._at(b.end, _Kind.SHIFT_END, 0, c.id)
        for t_end in sim._reception_ends:
            if t_end >= now:
                sim._at(t_end, _Kind.RECEPTION_CHECK)
        for rc in counters:
            c = sim._counters[rc.id]
            c.activity, c.ticket, c.idle_since = rc.activity, rc.ticket, rc.idle_since
            if rc.next is not None:
                c.visit += 1
                sim._at(rc.next[0], _NEXT_KIND[rc.next[1]], c.visit, c.id)
        return sim

    def add_arrivals(self, arrivals: Sequence[Arrival]) -> None:
        """More residents to come (after now): a resumed day draws its future a piece at a time."""
        for a in arrivals:
            self.arrivals.append(a)
            self._at(a.at, _Kind.ARRIVE, len(self.arrivals) - 1)

    def run_until_called(self, ticket: str, until: int) -> int | None:
        """Play on until `ticket` is first called (that moment, seconds after local midnight) or
        until `until` (None; also when the day ends first)."""
        self._run(min(self.stop_at, until), ticket)
        log = self._tickets.get(ticket)
        return log.first_called_at if log is not None else None

    # -- scheduling -----------------------------------------------------------------------------
    def _at(self, t: int, kind: _Kind, num: int = 0, key: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, num, key))

    def _do(self, command: Command) -> Decision:
        return self._execute(command, self.moment(self.now))

    def _begin(self) -> None:
        self._started = True
        self.now = self.start
        self._do(StartDay())
        for i, a in enumerate(self.arrivals):
            self._at(a.at, _Kind.ARRIVE, i)
        for c in self._counters.values():
            for b in c.blocks:
                self._at(b.start, _Kind.SHIFT_START, 0, c.id)
                if b.end is not None:
                    self._at(b.end, _Kind.SHIFT_END, 0, c.id)
        for t in self._reception_ends:
            self._at(t, _Kind.RECEPTION_CHECK)
        if self.away is not None:
            self._at(self.opens, _Kind.ALERT_CHECK)

    def _handle(self, kind: _Kind, num: int, key: str) -> None:
        if kind is _Kind.ARRIVE:
            self._arrive(num)
        elif kind is _Kind.SHIFT_START:
            self._shift_start(self._counters[key])
        elif kind is _Kind.ALERT_CHECK:
            self._check_alerts()
            assert self.away is not None
            if self.now + self.away.check_every_s < self.stop_at:
                self._at(self.now + self.away.check_every_s, _Kind.ALERT_CHECK)
        elif kind is _Kind.SHIFT_END or kind is _Kind.RECEPTION_CHECK:
            for c in self._counters.values() if kind is _Kind.RECEPTION_CHECK else [self._counters[key]]:
                if c.activity == "idle" and not self._keeps_working(c):
                    self._leave(c)
        else:
            c = self._counters[key]
            if num != c.visit:
                return  # scheduled for an earlier visit: overtaken by events
            if kind is _Kind.CALL:
                self._call(c)
            elif kind is _Kind.AT_COUNTER:
                self._at_counter(c)
            elif kind is _Kind.SERVICE_END:
                self._service_end(c)
            elif kind is _Kind.NO_ANSWER:
                self._no_answer(c)
            elif kind is _Kind.TRANSFER:
                self._transfer(c)

    # -- residents ------------------------------------------------------------------------------
    def _arrive(self, index: int) -> None:
        a = self.arrivals[index]
        self._tally.residents += 1
        if self._balks(a):
            self._tally.walked_away += 1
            return
        decision = self._do(IssueTicket(a.service, self._make_token()))
        for eff in decision.effects:
            if isinstance(eff, IssueRefused):
                self._tally.refused[eff.reason] = self._tally.refused.get(eff.reason, 0) + 1
            elif isinstance(eff, TicketReady):
                self._tickets[eff.ticket] = _TicketLog(
                    eff.ticket, a.service, index, self.now, eff.wait, waiting_since=self.now
                )
                if self.away is not None:
                    self.away.issued(eff.ticket, a.service, eff.wait.mean_s, self.now)
                self._wake(a.service)

    def _balks(self, a: Arrival) -> bool:
        """The resident reads the waiting-room board first: a wait (the middle of its range)
        beyond their patience and they come back another day. The board is the office model's
        own estimator, right or wrong: a board that says too little keeps residents who will give
        up later, one that says too much sends home residents who would have been served."""
        return board_wait_seconds(self.office, a.service, self.moment(self.now)) > a.patience_seconds

    def _check_alerts(self) -> None:
        if self.away is not None:
            self.away.check(self.office.state, self.now, self.moment(self.now))

    def _answers(self, log: _TicketLog, p_answer: float) -> bool:
        if self.away is not None and not self.away.present(log.ticket, self.now):
            return False  # stepped away and not back yet: the call goes unanswered
        a = self.arrivals[log.resident]
        if self.now - log.issued_at > a.patience_seconds:
            return False  # gave up and went home; the ticket still waits in the queue
        draw = a.answers[log.answer_draw % len(a.answers)]
        log.answer_draw += 1
        return draw < p_answer

    def gave_up(self, ticket: str) -> bool:
        """Whether the resident holding this ticket had gone home before it was last called."""
        log = self._tickets[ticket]
        t = self.office.state.tickets[ticket]
        called = t.called_at
        if called is None:
            return False
        waited = (called - self._midnight).total_seconds() - log.issued_at
        return waited > self.arrivals[log.resident].patience_seconds

    # -- staff ----------------------------------------------------------------------------------
    def _block_at(self, c: _Counter, t: int) -> _Block | None:
        for b in c.blocks:
            if b.start <= t and (b.end is None or t < b.end):
                return b
        return None

    def _later_block(self, c: _Counter, t: int) -> bool:
        return any(b.start > t for b in c.blocks)

    def _reception_open(self, service: str) -> bool:
        t = self.now
        local = time(t // 3600, t % 3600 // 60, t % 60) if t < 86400 else None
        if local is None:
            return False
        return self.plan.service_closes(service, local) is not None or any(
            service in p.services and seconds_of_day(p.start) > t for p in self.plan.periods
        )

    def _services(self, c: _Counter) -> tuple[str, ...]:
        live = self.office.state.counters.get(c.id)
        if live is not None and live.status is not CounterStatus.CLOSED:
            return live.services
        return self.config.counter(c.id).services

    def _keeps_working(self, c: _Counter) -> bool:
        """Should this counter go on calling now (as opposed to pausing or closing)?"""
        t = self.now
        if t >= self.stop_at:
            return False
        block = self._block_at(c, t)
        queues = self.office.state.queues
        if block is not None:
            if block.end is not None:
                return True
            # Open-ended: until reception has closed for its services and nobody is left.
            return any(self._reception_open(s) or queues.get(s) for s in self._services(c))
        if self._later_block(c, t):
            return False  # lunch: colleagues cover, the counter pauses
        # Off shift for the day: stay on while colleagues could not call a queue of ours before
        # reception closes (after that, whoever is on calls until nobody holding a ticket is left).
        c.overtime = any(self._colleagues_short(c, s) for s in self._services(c))
        return c.overtime

    def _colleagues_short(self, c: _Counter, service: str) -> bool:
        waiting = len(self.office.state.queues.get(service, ()))
        if not waiting:
            return False
        t = self.now
        horizon = self._reception_end(service)
        work = waiting * self.config.service(service).typical_minutes * 60
        capacity = 0.0
        for other in self._counters.values():
            services = self._services(other)
            if other is c or other.overtime or service not in services:
                continue
            weight = 1.0 if services[0] == service else 0.5
            for b in other.blocks:
                end = horizon if b.end is None else min(b.end, horizon)
                capacity += weight * max(0, end - max(b.start, t))
        return work > capacity

    def _reception_end(self, service: str) -> int:
        ends = [seconds_of_day(p.end) for p in self.plan.periods if service in p.services]
        return max(ends, default=self.closes)

    def _leave(self, c: _Counter) -> None:
        status = self._status(c)
        if status is CounterStatus.CLOSED:
            c.activity = "off"
            return
        if self._later_block(c, self.now) and self.now < self.stop_at:
            if status is CounterStatus.OPEN:
                self._do(PauseCounter(c.id))
            c.activity = "lunch"
        else:
            self._do(CloseCounter(c.id))
            c.activity = "off"
        c.ticket = None
        c.overtime = False

    def _status(self, c: _Counter) -> CounterStatus:
        live = self.office.state.counters.get(c.id)
        return live.status if live is not None else CounterStatus.CLOSED

    def _shift_start(self, c: _Counter) -> None:
        status = self._status(c)
        if status is CounterStatus.CLOSED:
            self._do(OpenCounter(c.id))
        elif status is CounterStatus.PAUSED:
            self._do(ResumeCounter(c.id))
        if c.activity in ("off", "lunch", "idle"):
            self._schedule_call(c, STAFF_REACTION_SECONDS)

    def _schedule_call(self, c: _Counter, delay: tuple[int, int]) -> None:
        c.visit += 1
        c.activity = "waking"
        c.ticket = None
        self._at(self.now + self._staff.randint(*delay), _Kind.CALL, c.visit, c.id)

    def _wake(self, service: str) -> None:
        idle = [
            c
            for c in self._counters.values()
            if c.activity == "idle" and service in self._services(c) and self._keeps_working(c)
        ]
        if idle:
            # Whose screen shows it first: a counter for which it is the main service, then the
            # one idle longest.
            best = min(idle, key=lambda c: (self._services(c)[0] != service, c.idle_since))
            self._schedule_call(best, WAKE_SECONDS)

    def _free(self, c: _Counter) -> None:
        """The counter has nobody in front of it: call again soon, or stop."""
        c.ticket = None
        if self._keeps_working(c):
            self._schedule_call(c, STAFF_REACTION_SECONDS)
        else:
            self._leave(c)

    def _call(self, c: _Counter) -> None:
        if not self._keeps_working(c):
            self._leave(c)
            return
        decision = self._do(CallNext(c.id))
        for eff in decision.effects:
            if isinstance(eff, ShowCall):
                self._record_call(eff)
                log = self._tickets[eff.ticket]
                if log.first_called_at is None:
                    log.first_called_at = self.now
                if log.waiting_since is not None:
                    log.longest_wait = max(log.longest_wait, self.now - log.waiting_since)
                    log.waiting_since = None
                log.calls += 1
                c.activity, c.ticket = "calling", eff.ticket
                self._check_alerts()  # the queue moved: as central evaluates at every view
                p_answer = 1.0 - P_MISS_FIRST_CALL if log.calls == 1 else P_ANSWER_REQUEUED_CALL
                self._await_resident(c, log, p_answer)
            elif isinstance(eff, NobodyWaiting):
                c.activity, c.idle_since = "idle", self.now
                if not self._keeps_working(c):
                    self._leave(c)

    def _await_resident(self, c: _Counter, log: _TicketLog, p_answer: float) -> None:
        if self._answers(log, p_answer):
            self._at(self.now + self._staff.randint(*WALK_SECONDS), _Kind.AT_COUNTER, c.visit, c.id)
        else:
            self._at(self.now + self._staff.randint(*RECALL_AFTER_SECONDS), _Kind.NO_ANSWER, c.visit, c.id)

    def _record_call(self, eff: ShowCall) -> None:
        self._tally.calls.append(CallView(self.moment(self.now), eff.ticket, eff.counter, eff.recall))
        if len(self._tally.calls) > 50:
            del self._tally.calls[:25]

    def _no_answer(self, c: _Counter) -> None:
        assert c.ticket is not None
        log = self._tickets[c.ticket]
        t = self.office.state.tickets[c.ticket]
        if t.recalls < self.config.rules.recall_limit:
            for eff in self._do(Recall(c.id)).effects:
                if isinstance(eff, ShowCall):
                    self._record_call(eff)
            self._tally.recalls += 1
            self._await_resident(c, log, P_ANSWER_RECALL)
            return
        for event in self._do(MarkNoShow(c.id)).events:
            if isinstance(event, ev.NoShow) and event.requeued:
                log.waiting_since = self.now  # back in the queue: a new wait begins
        self._free(c)

    def _at_counter(self, c: _Counter) -> None:
        assert c.ticket is not None
        log = self._tickets[c.ticket]
        a = self.arrivals[log.resident]
        c.activity = "serving"
        if a.wrong_service and not log.wrong_handled and self._transfer_target(log) is not None:
            self._at(self.now + a.transfer_after, _Kind.TRANSFER, c.visit, c.id)
            return
        # The time of the service the ticket is for now, at this hour of this day.
        service = self.office.state.tickets[c.ticket].service
        z = a.second_service_z if log.transferred else a.service_z
        self._at(self.now + self.service_times.draw(service, self.now, z), _Kind.SERVICE_END, c.visit, c.id)

    def _transfer_target(self, log: _TicketLog) -> str | None:
        current = self.office.state.tickets[log.ticket].service
        options = [s for s in self.config.services if s.id != current and self._reception_open(s.id)]
        options = [s for s in options if any(self._block_at(o, self.now) for o in self._serving(s.id))]
        if not options:
            return None
        weights = [demand_for(s).share for s in options]
        pick = self.arrivals[log.resident].transfer_pick * sum(weights)
        for s, w in zip(options, weights, strict=True):
            pick -= w
            if pick < 0:
                return s.id
        return options[-1].id

    def _serving(self, service: str) -> list[_Counter]:
        return [c for c in self._counters.values() if service in self._services(c)]

    def _transfer(self, c: _Counter) -> None:
        assert c.ticket is not None
        log = self._tickets[c.ticket]
        target = self._transfer_target(log)
        log.wrong_handled = True
        if target is None:  # nobody could take it any more: serve it here after all
            seconds = self.service_times.draw(log.service, self.now, self.arrivals[log.resident].service_z)
            self._at(self.now + seconds, _Kind.SERVICE_END, c.visit, c.id)
            return
        self._do(Transfer(to_service=target, counter=c.id))
        log.transferred = True
        self._tally.transfers += 1
        self._free(c)
        self._wake(target)

    def _service_end(self, c: _Counter) -> None:
        self._do(FinishService(c.id))
        c.served += 1
        self._free(c)

    def _finish(self) -> None:
        """The building shuts: close whatever is still open (their residents are sent home)."""
        for c in self._counters.values():
            if self._status(c) is not CounterStatus.CLOSED:
                self._do(CloseCounter(c.id))
            c.activity, c.ticket, c.overtime = "off", None, False
        self._heap.clear()
        self.done = True
        self.ended_at = self.now

    # -- reading ----------------------------------------------------------------------------------
    def _longest_wait_minutes(self, log: _TicketLog, now: int) -> float:
        """The longest of the ticket's waits (docs/events.md), a running one counted up to `now`:
        the one figure behind the live view's longest wait and the summary's max wait."""
        running = now - log.waiting_since if log.waiting_since is not None else 0
        return max(log.longest_wait, running) / 60.0

    def _wait_minutes(self, log: _TicketLog) -> float | None:
        if log.first_called_at is None:
            return None
        return (log.first_called_at - log.issued_at) / 60.0

    def view(self, recent: int = 8) -> FloorView:
        state = self.office.state
        now = self.now
        t_local = time(now // 3600, now % 3600 // 60) if 0 <= now < 86400 else None
        period = self.plan.period_at(t_local) if t_local is not None else None
        services: list[ServiceView] = []
        all_waits: list[float] = []
        for s in self.config.services:
            logs = [log for log in self._tickets.values() if log.service == s.id]
            waits = [w for log in logs if (w := self._wait_minutes(log)) is not None]
            all_waits += waits
            waiting = state.waiting(s.id)
            running = [
                (now - since) / 60.0 for tid in waiting if (since := self._tickets[tid].waiting_since) is not None
            ]
            served = sum(1 for log in logs if state.tickets[log.ticket].status is TicketStatus.SERVED)
            services.append(
                ServiceView(
                    id=s.id,
                    prefix=s.prefix,
                    name=s.name.en,
                    waiting=len(waiting),
                    longest_wait_minutes=max(running, default=None),
                    issued=len(logs),
                    served=served,
                    mean_wait_minutes=sum(waits) / len(waits) if waits else None,
                )
            )
        counters: list[CounterView] = []
        for c in self._counters.values():
            live = state.counters.get(c.id)
            status = live.status.value if live is not None else "closed"
            ticket = live.current if live is not None else None
            activity = "overtime" if c.overtime and c.activity != "off" else c.activity
            if activity == "waking":  # between two residents: about to press "call"
                activity = "ready" if ticket is None else "serving"
            counters.append(
                CounterView(
                    id=c.id,
                    name=self.config.counter(c.id).name.en,
                    status=status,
                    activity=activity,
                    ticket=ticket,
                    service=state.tickets[ticket].service if ticket else None,
                    served=c.served,
                )
            )
        if self.done:
            label = "day over"
        elif period is not None:
            label = period.mode
        elif now < self.opens:
            label = "before opening"
        else:
            label = "reception closed"
        return FloorView(
            now=self.moment(now),
            start=self.start_moment,
            planned_end=self.planned_end_moment,
            period=label,
            issued=len(self._tickets),
            refused=sum(self._tally.refused.values()),
            waiting=sum(v.waiting for v in services),
            served=sum(v.served for v in services),
            mean_wait_minutes=sum(all_waits) / len(all_waits) if all_waits else None,
            services=tuple(services),
            counters=tuple(counters),
            recent_calls=tuple(reversed(self._tally.calls[-recent:])),
            done=self.done,
        )

    def summary(self) -> DaySummary:
        state = self.office.state
        rows: list[ServiceSummary] = []
        all_waits: list[float] = []
        all_within = all_within_minutes = 0
        totals = {"served": 0, "no_show": 0, "left": 0, "gave_up": 0}
        end = self.ended_at if self.ended_at is not None else self.now  # a wait still running ends here
        for s in self.config.services:
            logs = [log for log in self._tickets.values() if log.service == s.id]
            counts = {"served": 0, "no_show": 0, "left": 0}
            waits: list[float] = []
            within = 0
            for log in logs:
                status = state.tickets[log.ticket].status
                if status is TicketStatus.SERVED:
                    counts["served"] += 1
                elif status is TicketStatus.NO_SHOW:
                    counts["no_show"] += 1
                    totals["gave_up"] += self.gave_up(log.ticket)
                else:
                    counts["left"] += 1
                w = self._wait_minutes(log)
                if w is not None:
                    waits.append(w)
                    within += log.estimate.holds(w * 60)
                    all_within_minutes += log.estimate.holds_at_minutes(w * 60)
            for k in counts:
                totals[k] += counts[k]
            all_waits += waits
            all_within += within
            rows.append(
                ServiceSummary(
                    id=s.id,
                    prefix=s.prefix,
                    name=s.name.en,
                    issued=len(logs),
                    served=counts["served"],
                    no_show=counts["no_show"],
                    left_at_close=counts["left"],
                    transferred_out=sum(1 for log in logs if log.transferred),
                    mean_wait_minutes=sum(waits) / len(waits) if waits else None,
                    max_wait_minutes=max((self._longest_wait_minutes(log, end) for log in logs), default=None),
                    within_estimate=within / len(waits) if waits else None,
                )
            )
        return DaySummary(
            office=self.config.id,
            office_name=self.config.name.en,
            day=self.day,
            rush=self.rush,
            seed=self.seed,
            opens=time(self.opens // 3600, self.opens % 3600 // 60),
            closes=time(self.closes // 3600, self.closes % 3600 // 60),
            ended_at=self.moment(self.ended_at if self.ended_at is not None else self.now),
            residents=self._tally.residents,
            walked_away=self._tally.walked_away,
            issued=len(self._tickets),
            refused=tuple(sorted(self._tally.refused.items())),
            served=totals["served"],
            no_show=totals["no_show"],
            gave_up=totals["gave_up"],
            left_at_close=totals["left"],
            recalls=self._tally.recalls,
            transfers=self._tally.transfers,
            mean_wait_minutes=sum(all_waits) / len(all_waits) if all_waits else None,
            max_wait_minutes=max((r.max_wait_minutes for r in rows if r.max_wait_minutes is not None), default=None),
            services=tuple(rows),
            served_by_counter=tuple((c.id, c.served) for c in self._counters.values()),
            within_estimate=all_within / len(all_waits) if all_waits else None,
            within_printed_minutes=all_within_minutes / len(all_waits) if all_waits else None,
        )


def simulate_day(
    config: OfficeConfig, day: date, *, seed: int = 1, rush: bool = False, estimator: WaitEstimator | None = None
) -> DaySummary:
    """A whole day against an in-memory office (no journal): for tests and quick figures."""
    return DaySimulation(config, day, seed=seed, rush=rush, estimator=estimator).run()


@dataclass(frozen=True, slots=True)
class RecordedDay:
    """A simulated day's events, as the office's journal would store them (seq from 1)."""

    day: date
    events: tuple[ev.Event, ...]
    summary: DaySummary


def record_day(
    config: OfficeConfig,
    day: date,
    *,
    seed: int = 1,
    rush: bool = False,
    estimator: WaitEstimator | None = None,
    learned: Predictor | None = None,
) -> RecordedDay:
    """A whole day against a fresh in-memory office running `estimator` (default: the model's
    `CapacityEstimator`), with every event it stored. `learned`: the board and tickets show that
    predictor's estimates instead (a LearnedEstimator reading the day's own events, as a gateway's
    reads its journal), as in an office that has run it."""
    events: list[ev.Event] = []
    if learned is not None and estimator is None:
        # seqs run from 1 with no gap: the events after seq n start at index n
        estimator = LearnedEstimator(config, lambda after, limit: events[after : after + limit], learned)
    office = Office(config, estimator=estimator)

    def execute(command: Command, now: datetime) -> Decision:
        decision = office.execute(command, now)
        events.extend(decision.events)
        return decision

    summary = DaySimulation(config, day, seed=seed, rush=rush, office=office, execute=execute).run()
    return RecordedDay(day, tuple(events), summary)


def open_days(config: OfficeConfig, start: date, count: int) -> list[date]:
    """The first `count` days from `start` on which the office opens, by its calendar."""
    days: list[date] = []
    day, closed_run = start, 0
    while len(days) < count:
        if plan_for(config, day).is_open:
            days.append(day)
            closed_run = 0
        else:
            closed_run += 1
            if closed_run > 366:
                raise SimulationError(f"{config.name.en} is not open on any day of the year from {day.isoformat()}")
        if day == date.max:
            raise SimulationError(f"only {len(days)} open days from {start.isoformat()} before the end of the calendar")
        day += timedelta(days=1)
    return days


def profiles_fingerprint() -> str:
    """SHA-256 of every frozen profile number, so a test notices one changed without a new
    PROFILES_VERSION (docs/simulation.md)."""
    numbers = (
        profiles.RESIDENTS_PER_COUNTER_HOUR,
        profiles.WEEKDAY_FACTOR,
        profiles.OPENING_CROWD,
        profiles.OPENING_CROWD_RUSH,
        profiles.OFF_HOURS_FACTOR,
        profiles.DAY_DEMAND_SIGMA,
        sorted(profiles.KNOWN_DEMAND.items()),
        profiles.LONG_SERVICE_MINUTES,
        profiles.UNKNOWN_LONG_DEMAND,
        profiles.UNKNOWN_SHORT_DEMAND,
        profiles.ARRIVAL_SHAPE,
        profiles.SATURDAY_SHAPE,
        profiles.P_WRONG_SERVICE,
        profiles.TRANSFER_AFTER_SECONDS,
        profiles.PATIENCE_SIGMA,
        sorted((k, v.sigma, sorted(v.hours.items())) for k, v in profiles.KNOWN_SERVICE_TIMES.items()),
        profiles.UNKNOWN_LONG_SERVICE_TIME,
        profiles.UNKNOWN_SHORT_SERVICE_TIME,
        profiles.MIN_SERVICE_SECONDS,
        profiles.DRIFT_TERMS,
        profiles.NEW_STAFF_SLOWDOWN,
        profiles.NEW_STAFF_FADE_DAYS,
        WALK_SECONDS,
        STAFF_REACTION_SECONDS,
        WAKE_SECONDS,
        RECALL_AFTER_SECONDS,
        P_MISS_FIRST_CALL,
        P_ANSWER_RECALL,
        P_ANSWER_REQUEUED_CALL,
        STOP_AFTER_CLOSE,
    )
    return hashlib.sha256(repr(numbers).encode()).hexdigest()
