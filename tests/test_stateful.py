"""Hypothesis drives the real `Office` beside a small reference model of the counter floor.

The reference is written from the rules as the ward states them (plain lists per service, a dict
of counters), not from the model's code. Every step predicts the events, effects or error of one
command, runs it on the real office with a clock moving through a weekday morning (sometimes
jumping back, sometimes on to the next business day), and compares. Invariants after every step
check the real state on its own terms and that replaying its stored records rebuilds it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from office import events as ev
from office.config import OfficeConfig, load_config, parse_config
from office.model import (
    CallNext,
    CloseCounter,
    Command,
    FinishService,
    Hold,
    IssueRefused,
    IssueTicket,
    MarkNoShow,
    NobodyWaiting,
    Office,
    OfficeError,
    OpenCounter,
    PauseCounter,
    Recall,
    ResumeCounter,
    Return,
    ShowCall,
    StartDay,
    TicketReady,
    Transfer,
)
from office.state import OfficeState, TicketStatus

from .conftest import EXAMPLES, TOKYO

SMALL = """
[office]
id = "small"
name = { ja = "小さな事務所", en = "Small Office" }
timezone = "Asia/Tokyo"
public_base_url = "https://queue.example.jp/small"

[hours]
weekday = { from = "08:30", to = "17:00" }

[rules]
recall_limit = 1
no_show = "requeue_once"

[[services]]
id = "a"
prefix = "A"
name = { ja = "届出", en = "Notifications" }
typical_minutes = 2

[[services]]
id = "b"
prefix = "B"
name = { ja = "印鑑", en = "Seals" }
typical_minutes = 2

[[services]]
id = "x"
prefix = "X"
name = { ja = "臨時", en = "Extra" }
numbers = [1, 4]
typical_minutes = 1

[[counters]]
id = "1"
name = { ja = "1番", en = "Counter 1" }
services = ["a", "b"]
shifts = [{ from = "08:30", to = "17:00" }]

[[counters]]
id = "2"
name = { ja = "2番", en = "Counter 2" }
services = ["b", "a", "x"]
shifts = [{ from = "08:30", to = "17:00" }]

[[counters]]
id = "3"
name = { ja = "3番", en = "Counter 3" }
services = ["x"]
shifts = [{ from = "08:30", to = "17:00" }]
"""

# Weekdays of the moving season on which every example office is open (the 22nd is a
# substitute holiday). Every service of the example configs is offered 08:30-17:00 on them; the
# clock below never leaves 06:00-11:00, so evening and Saturday hours never come into play.
OPEN_DAYS = [date(2027, 3, d) for d in (15, 16, 17, 18, 19, 23, 24, 25, 26, 29, 30, 31)]
OPENS, CLOSES = time(8, 30), time(17, 0)
EARLIEST = time(6, 0)
# Services, counters and tickets are drawn as indices into lists known only while running: plain
# integers are cheaper to draw than st.data() and shrink towards the first item.
IDX = st.integers(0, 999)
# No more than this many wait in one line: even Nerima's guidance (one counter, 6 minutes each)
# is then well within a morning's time to closing, so the cut-off (tested in test_model) never
# refuses a ticket here.
MAX_LINE = 25
FOLLOW_UP = st.sampled_from(["recall", "no_show", "served"])


@dataclass
class RefTicket:
    service: str
    number: int
    stamp: int  # place in line: the issue order, renewed only by a requeueing no-show
    status: str = "waiting"
    counter: str | None = None
    recalls: int = 0
    requeued: bool = False


@dataclass
class RefCounter:
    status: str = "closed"
    services: tuple[str, ...] = ()
    current: str | None = None


@dataclass
class RefFloor:
    """The floor as a person with a notebook would keep it for one business day."""

    day: date | None = None
    tickets: dict[str, RefTicket] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict)  # waiting ticket ids, first in front
    counters: dict[str, RefCounter] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    stamps: itertools.count[int] = field(default_factory=itertools.count)

    def line(self, service: str) -> list[str]:
        return self.lines.setdefault(service, [])

    def counter(self, counter_id: str) -> RefCounter:
        """A counter as it stands; one never opened today is closed (and not written down)."""
        return self.counters.get(counter_id) or RefCounter()

    def queue_up(self, tid: str) -> None:
        """Put a ticket back in its service's line at the place its stamp gives it."""
        t = self.tickets[tid]
        t.status, t.counter = "waiting", None
        line = self.line(t.service)
        place = next((i for i, other in enumerate(line) if self.tickets[other].stamp > t.stamp), len(line))
        line.insert(place, tid)

    def step_out(self, tid: str) -> None:
        """Take a ticket out of the line or off the counter it is at."""
        t = self.tickets[tid]
        if t.status == "waiting":
            self.line(t.service).remove(tid)
        elif t.status == "called" and t.counter is not None:
            self.counters[t.counter].current = None
        t.counter = None


class Refused(Exception):
    """The reference expects the command to fail with this code."""

    def __init__(self, code: str) -> None:
        self.code = code


def describe(e: ev.Event) -> tuple[Any, ...]:
    """An event without seq, ts and token, for comparing with the prediction."""
    match e:
        case ev.Schedule():
            return ("schedule", e.date, e.new_day)
        case ev.TicketIssued():
            return ("ticket_issued", e.ticket, e.service, e.number)
        case ev.CounterOpened():
            return ("counter_opened", e.counter, tuple(e.services))
        case ev.CounterPaused() | ev.CounterResumed() | ev.CounterClosed():
            return (e.TYPE, e.counter)
        case ev.Called() | ev.Recalled() | ev.Served():
            return (e.TYPE, e.ticket, e.counter)
        case ev.NoShow():
            return ("no_show", e.ticket, e.counter, e.requeued)
        case ev.Transferred():
            return ("transferred", e.ticket, e.to_service, e.from_service, e.counter)
        case ev.Held() | ev.Returned():
            return (e.TYPE, e.ticket)
    raise AssertionError(f"unexpected event {e!r}")


class OfficeMachine(RuleBasedStateMachine):
    CONFIG: OfficeConfig

    def __init__(self) -> None:
        super().__init__()
        self.config = self.CONFIG
        self.office = Office(self.config)
        self.services = [s.id for s in self.config.services]
        self.counter_ids = [c.id for c in self.config.counters]
        self.ranges = {s.id: (s.prefix, s.first_number, s.last_number) for s in self.config.services}
        self.day_index = 0
        self.wall = datetime.combine(OPEN_DAYS[0], OPENS, TOKYO)
        self.ref = RefFloor()
        self.events: list[ev.Event] = []
        self.last_ts: datetime | None = None
        self.issued_today: set[str] = set()
        self.tokens = itertools.count(1)
        # every stored record, replayed as the journal would on recovery, one by one
        self.replayed = OfficeState()

    # -- choosing what to act on ---------------------------------------------------------------------
    # Indices into the config's lists and the reference's tickets. Three times in four they pick
    # among the likely targets (an open counter, a counter serving someone, a waiting or held
    # ticket), so that most commands do something; otherwise anything, to exercise the refusals.
    @staticmethod
    def pick(i: int, everything: list[str], likely: list[str]) -> str:
        if likely and i % 4 != 3:
            return likely[(i // 4) % len(likely)]
        return everything[i % len(everything)]

    def service(self, i: int) -> str:
        return self.services[i % len(self.services)]

    def counter(self, i: int, want: str = "open") -> str:
        counters = self.ref.counters
        likely = [cid for cid, c in counters.items() if c.status == "open" and (want == "open" or c.current)]
        return self.pick(i, self.counter_ids, likely)

    def ticket(self, i: int, want: str) -> str:
        tickets = self.ref.tickets
        likely = [tid for tid, t in tickets.items() if t.status == want]
        return self.pick(i, [*tickets, "Z-999"], likely)

    # -- the clock -----------------------------------------------------------------------------
    def now(self) -> datetime:
        """When the next event is recorded: the wall clock to the millisecond, never before
        the last recorded event."""
        wall = self.wall.replace(microsecond=self.wall.microsecond // 1000 * 1000)
        return wall if self.last_ts is None or wall >= self.last_ts else self.last_ts

    @initialize(counters=st.lists(IDX, min_size=1, max_size=4))
    def open_the_floor(self, counters: list[int]) -> None:
        for i in counters:
            self.open_counter(i, None)

    @rule(seconds=st.integers(1, 90), micro=st.integers(0, 999_999), arrivals=st.lists(IDX, max_size=2))
    def tick(self, seconds: int, micro: int, arrivals: list[int]) -> None:
        """Time passes, and residents may come in and take a ticket."""
        self.wall = (self.wall + timedelta(seconds=seconds)).replace(microsecond=micro)
        for i in arrivals:
            self.issue_one(self.service(i))

    @rule(seconds=st.one_of(st.integers(1, 600), st.integers(1, 2 * 3600)))
    def clock_jumps_back(self, seconds: int) -> None:
        floor = datetime.combine(self.wall.date(), EARLIEST, TOKYO)
        self.wall = max(self.wall - timedelta(seconds=seconds), floor)

    @precondition(lambda self: self.day_index + 1 < len(OPEN_DAYS))
    @rule(
        go=st.integers(0, 2),
        start=st.booleans(),
        minutes=st.integers(-10, 30),
        counters=st.lists(IDX, max_size=3),
    )
    def next_business_day(self, go: int, start: bool, minutes: int, counters: list[int]) -> None:
        if go:  # only now and then: a new day clears the floor
            return
        self.day_index += 1
        self.wall = datetime.combine(OPEN_DAYS[self.day_index], OPENS, TOKYO) + timedelta(minutes=minutes)
        if start:  # the gateway starts the day; otherwise the first recorded command does
            self.run(StartDay(), lambda floor: ([], []))
        for i in counters:
            self.open_counter(i, None)

    # -- running one command beside the reference ---------------------------------------------------
    def run(self, command: Command, predict: Any) -> None:
        ts = self.now()
        day = ts.date()
        same_day = self.ref.day == day
        floor = self.ref if same_day else RefFloor(day=day)
        try:
            expected_events, expected_effects = predict(floor)
            expected_error = None
        except Refused as refused:
            expected_error = refused.code
        if expected_error is None and not same_day and (expected_events or isinstance(command, StartDay)):
            expected_events.insert(0, ("schedule", day.isoformat(), True))

        seq = self.office.state.last_seq
        try:
            decision = self.office.perform(command, self.wall)  # the journal's live path
        except OfficeError as err:
            assert expected_error == err.code, f"{command}: expected {expected_error!r}, got {err.code!r}: {err}"
            assert self.office.state.last_seq == seq
            return
        assert expected_error is None, f"{command}: expected {expected_error!r}, got {decision}"
        assert [describe(e) for e in decision.events] == expected_events, command
        assert decision.effects == expected_effects, command
        for e in decision.events:
            assert e.seq == len(self.events) + 1, "seq must be gapless"
            assert e.ts == ts, f"{e.ts} recorded at {ts}"
            assert not self.events or self.events[-1].ts <= e.ts
            self.events.append(e)
            body = json.loads(json.dumps(e.body()))
            self.replayed.apply(ev.event_from_record(e.seq, ev.format_ts(e.ts), e.TYPE, body))
            if isinstance(e, ev.Schedule):
                self.issued_today = set()
            if isinstance(e, ev.TicketIssued):
                assert e.ticket not in self.issued_today, f"{e.ticket} issued twice today"
                self.issued_today.add(e.ticket)
        if decision.events:
            self.last_ts = ts
            self.ref = floor

    # -- commands ------------------------------------------------------------------------------
    @rule(picks=st.lists(IDX, min_size=1, max_size=4))
    def issue(self, picks: list[int]) -> None:
        """Residents take tickets, a few at a time: queues must grow for calls to matter."""
        for i in picks:
            self.issue_one(self.service(i))

    def issue_one(self, service: str) -> None:
        if len(self.ref.lines.get(service, [])) >= MAX_LINE:
            return  # keep the morning's lines short enough that reception is never cut off
        token = f"token-{next(self.tokens)}"
        ts = self.now()

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            if ts.date() not in OPEN_DAYS:
                return [], [IssueRefused(service, "closed_today", _any)]
            if not OPENS <= ts.time() < CLOSES:
                return [], [IssueRefused(service, "not_offered_now", _any)]
            prefix, first, last = self.ranges[service]
            number = floor.numbers.get(service, first - 1) + 1
            if number > last:
                return [], [IssueRefused(service, "range_exhausted", _any)]
            tid = f"{prefix}-{number:0{len(str(last))}d}"
            ahead = len(floor.line(service))
            floor.numbers[service] = number
            floor.tickets[tid] = RefTicket(service, number, next(floor.stamps))
            floor.line(service).append(tid)
            ready = TicketReady(tid, service, number, ahead + 1, ahead, _any, ts, token, False, _any)
            return [("ticket_issued", tid, service, number)], [ready]

        self.run(IssueTicket(service, token), predict)

    @rule(picks=st.lists(st.tuples(IDX, st.lists(FOLLOW_UP, max_size=3)), min_size=1, max_size=3))
    def call_next(self, picks: list[tuple[int, list[str]]]) -> None:
        """Staff call the next resident at a few counters in turn, and may go on to recall them,
        give up on them or finish with them (the same commands as the rules below)."""
        for i, then in picks:
            counter = self.counter(i)
            self.call_one(counter)
            for action in then:
                getattr(self, f"{action}_at")(counter)

    def call_one(self, counter: str) -> None:

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            c = floor.counter(counter)
            if c.status == "closed":
                raise Refused("counter_closed")
            if c.status == "paused":
                raise Refused("counter_paused")
            events: list[Any] = []
            if c.current is not None:
                events.append(("served", c.current, counter))
                done = floor.tickets[c.current]
                done.status, done.counter, c.current = "served", counter, None
            for service in c.services:
                line = floor.line(service)
                if line:
                    tid = line.pop(0)
                    t = floor.tickets[tid]
                    t.status, t.counter, t.recalls = "called", counter, 0
                    c.current = tid
                    return [*events, ("called", tid, counter)], [ShowCall(tid, counter, recall=False)]
            return events, [NobodyWaiting(counter, c.services)]

        self.run(CallNext(counter), predict)

    def _current(self, floor: RefFloor, counter: str) -> RefTicket:
        c = floor.counters.get(counter)
        if c is None or c.current is None:
            raise Refused("no_current_ticket")
        return floor.tickets[c.current]

    @rule(i=IDX)
    def recall(self, i: int) -> None:
        self.recall_at(self.counter(i, want="serving"))

    def recall_at(self, counter: str) -> None:

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            t = self._current(floor, counter)
            tid = floor.counters[counter].current
            if t.recalls >= self.config.rules.recall_limit:
                raise Refused("recall_limit")
            t.recalls += 1
            return [("recalled", tid, counter)], [ShowCall(str(tid), counter, recall=True)]

        self.run(Recall(counter), predict)

    @rule(i=IDX)
    def no_show(self, i: int) -> None:
        self.no_show_at(self.counter(i, want="serving"))

    def no_show_at(self, counter: str) -> None:

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            t = self._current(floor, counter)
            tid = str(floor.counters[counter].current)
            requeue = self.config.rules.no_show == "requeue_once" and not t.requeued
            floor.step_out(tid)
            if requeue:
                t.requeued = True
                t.stamp = next(floor.stamps)  # to the back of the line
                floor.queue_up(tid)
            else:
                t.status = "no_show"
            return [("no_show", tid, counter, requeue)], []

        self.run(MarkNoShow(counter), predict)

    @rule(i=IDX)
    def served(self, i: int) -> None:
        self.served_at(self.counter(i, want="serving"))

    def served_at(self, counter: str) -> None:

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            t = self._current(floor, counter)
            tid = str(floor.counters[counter].current)
            floor.step_out(tid)
            t.status, t.counter = "served", counter
            return [("served", tid, counter)], []

        self.run(FinishService(counter), predict)

    @rule(i=IDX, j=IDX, by_counter=st.booleans())
    def transfer(self, i: int, j: int, by_counter: bool) -> None:
        to = self.service(i)
        if by_counter:
            command = Transfer(to, counter=self.counter(j, want="serving"))
        else:
            command = Transfer(to, ticket=self.ticket(j, want=("waiting", "held")[j % 2]))

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            if command.counter is not None:
                self._current(floor, command.counter)
                tid = str(floor.counters[command.counter].current)
            else:
                tid = str(command.ticket)
                if tid not in floor.tickets:
                    raise Refused("unknown_ticket")
            t = floor.tickets[tid]
            if t.status in ("served", "no_show"):
                raise Refused("ticket_done")
            if t.service == to:
                raise Refused("same_service")
            event = ("transferred", tid, to, t.service, t.counter if t.status == "called" else None)
            held = t.status == "held"
            floor.step_out(tid)
            t.service = to
            if not held:  # a held resident is still away: the ticket stays held
                floor.queue_up(tid)
            return [event], []

        self.run(command, predict)

    @rule(j=IDX)
    def hold(self, j: int) -> None:
        tid = self.ticket(j, want=("waiting", "called")[j % 2])

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            t = floor.tickets.get(tid)
            if t is None:
                raise Refused("unknown_ticket")
            if t.status not in ("waiting", "called"):
                raise Refused("cannot_hold")
            floor.step_out(tid)
            t.status = "held"
            return [("held", tid)], []

        self.run(Hold(tid), predict)

    @rule(j=IDX)
    def give_back(self, j: int) -> None:
        tid = self.ticket(j, want="held")

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            t = floor.tickets.get(tid)
            if t is None:
                raise Refused("unknown_ticket")
            if t.status != "held":
                raise Refused("not_held")
            floor.queue_up(tid)
            return [("returned", tid)], []

        self.run(Return(tid), predict)

    @rule(i=IDX, own=st.none() | st.lists(IDX, min_size=1, max_size=3))
    def open_counter(self, i: int, own: list[int] | None) -> None:
        closed = [cid for cid in self.counter_ids if self.ref.counter(cid).status == "closed"]
        counter = self.pick(i, self.counter_ids, closed)
        # a counter opened with its own list of services, in its own priority order
        services = tuple(dict.fromkeys(self.service(k) for k in own)) if own else None

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            c = floor.counters.setdefault(counter, RefCounter())
            if c.status != "closed":
                raise Refused("counter_open")
            c.status = "open"
            c.services = services or self.config.counter(counter).services
            return [("counter_opened", counter, c.services)], []

        self.run(OpenCounter(counter, services), predict)

    def _finish_first(self, floor: RefFloor, counter: str) -> list[Any]:
        c = floor.counters[counter]
        if c.current is None:
            return []
        done = floor.tickets[c.current]
        event = ("served", c.current, counter)
        done.status, done.counter, c.current = "served", counter, None
        return [event]

    @rule(i=IDX, toggle=st.booleans())
    def pause_or_resume(self, i: int, toggle: bool) -> None:
        """Pause an open counter or resume a paused one (or, with toggle off, try the other)."""
        counter = self.counter(i)
        paused = self.ref.counter(counter).status == "paused"
        if paused == toggle:
            self.resume(counter)
        else:
            self.pause(counter)

    def pause(self, counter: str) -> None:

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            c = floor.counter(counter)
            if c.status == "closed":
                raise Refused("counter_closed")
            if c.status == "paused":
                raise Refused("counter_paused")
            events = self._finish_first(floor, counter)
            c.status = "paused"
            return [*events, ("counter_paused", counter)], []

        self.run(PauseCounter(counter), predict)

    def resume(self, counter: str) -> None:

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            c = floor.counter(counter)
            if c.status == "closed":
                raise Refused("counter_closed")
            if c.status != "paused":
                raise Refused("counter_open")
            c.status = "open"
            return [("counter_resumed", counter)], []

        self.run(ResumeCounter(counter), predict)

    @rule(i=IDX)
    def close(self, i: int) -> None:
        counter = self.counter(i)

        def predict(floor: RefFloor) -> tuple[list[Any], list[Any]]:
            c = floor.counter(counter)
            if c.status == "closed":
                raise Refused("counter_closed")
            events = self._finish_first(floor, counter)
            c.status = "closed"
            return [*events, ("counter_closed", counter)], []

        self.run(CloseCounter(counter), predict)

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def matches_the_reference(self) -> None:
        state = self.office.state
        ref = self.ref
        assert state.day == ref.day
        assert {tid: (t.service, t.status.value, t.counter) for tid, t in state.tickets.items()} == {
            tid: (t.service, t.status, t.counter) for tid, t in ref.tickets.items()
        }
        assert {tid: (t.number, t.recalls, t.requeued) for tid, t in state.tickets.items()} == {
            tid: (t.number, t.recalls, t.requeued) for tid, t in ref.tickets.items()
        }
        # FCFS within every service: the real lines are the reference's lines
        for service in self.services:
            assert state.waiting(service) == ref.lines.get(service, []), service
        assert {cid: (c.status.value, c.services, c.current) for cid, c in state.counters.items()} == {
            cid: (c.status, c.services, c.current) for cid, c in ref.counters.items()
        }
        assert state.last_number == ref.numbers

    @invariant()
    def every_ticket_is_accounted_for(self) -> None:
        state = self.office.state
        in_lines = [tid for queue in state.queues.values() for _, tid in queue]
        assert len(in_lines) == len(set(in_lines)), "a ticket waits twice"
        for service, queue in state.queues.items():
            assert queue, f"empty queue kept for {service}"
            assert queue == sorted(queue)
            for _, tid in queue:
                assert state.tickets[tid].service == service
        for tid, t in state.tickets.items():
            assert t.id == tid
            assert (tid in in_lines) is (t.status is TicketStatus.WAITING), tid
            if t.status is TicketStatus.CALLED:
                assert t.counter is not None and state.counters[t.counter].current == tid
        for cid, c in state.counters.items():
            if c.current is not None:
                t = state.tickets[c.current]
                assert t.status is TicketStatus.CALLED and t.counter == cid
        assert len(state.tickets) == len(self.issued_today) or not self.events
        # The call order the boards read from its end: every ticket ever called today, once, in
        # the order of its latest call.
        assert set(state.calls) == {tid for tid, t in state.tickets.items() if t.called_at is not None}
        times = [state.tickets[tid].called_at for tid in state.calls]
        assert times == sorted(times)

    @invariant()
    def records_replay_to_the_live_state(self) -> None:
        assert self.office.state.last_seq == len(self.events)
        assert self.replayed == self.office.state

    @invariant()
    def snapshot_round_trips(self) -> None:
        state = self.office.state
        restored = OfficeState.from_snapshot(json.loads(json.dumps(state.to_snapshot())))
        assert restored.tickets == state.tickets
        assert restored.counters == state.counters
        assert restored.queues == state.queues
        assert restored.last_number == state.last_number
        assert restored.last_seq == state.last_seq
        assert restored == state


class _Anything:
    """Matches any value: for the wait estimate and the human-readable message."""

    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "<any>"


_any: Any = _Anything()


class SmallOffice(OfficeMachine):
    CONFIG = parse_config(SMALL, source="small.toml")


class NerimaOffice(OfficeMachine):
    CONFIG = load_config(EXAMPLES / "nerima.toml")


class OizumiOffice(OfficeMachine):
    """Oizumi drops no-shows at once."""

    CONFIG = load_config(EXAMPLES / "oizumi.toml")


class SmallOfficeFromSnapshots(SmallOffice):
    """The same floor, but the office is rebuilt from a snapshot now and then, as after a restart."""

    @rule()
    def restart_from_snapshot(self) -> None:
        data = json.loads(json.dumps(self.office.state.to_snapshot()))
        self.office = Office(self.config, OfficeState.from_snapshot(data))


TestSmallOffice = SmallOffice.TestCase
TestSmallOffice.settings = settings(max_examples=75, stateful_step_count=50, deadline=None)
TestNerimaOffice = NerimaOffice.TestCase
TestNerimaOffice.settings = settings(max_examples=60, stateful_step_count=50, deadline=None)
TestOizumiOffice = OizumiOffice.TestCase
TestOizumiOffice.settings = settings(max_examples=40, stateful_step_count=50, deadline=None)
TestSmallOfficeFromSnapshots = SmallOfficeFromSnapshots.TestCase
TestSmallOfficeFromSnapshots.settings = settings(max_examples=25, stateful_step_count=50, deadline=None)
