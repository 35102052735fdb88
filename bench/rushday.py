"""A realistic rush day of commands for one office, for the journal benchmarks.

Owns nothing but the simulation: a seeded discrete-event run of residents and counter staff
against the in-memory office model (no journal, no I/O), recorded as the list of timed commands
that stored something. Replaying that list through a `TicketJournal` gives the same events,
because the model is deterministic and the tokens are part of the commands.

The default is Nerima on the Monday of the end-of-March moving rush: 3,000 tickets from 08:30
to 19:00, counters opening on their shifts, pausing for lunch and closing, residents who do not
hear their number (recalls, no-shows and requeues), tickets held while a form is filled in, and
transfers between services.
"""

from __future__ import annotations

import base64
import functools
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from office.calendar import counter_shifts, plan_for
from office.config import OfficeConfig, load_config
from office.model import (
    CallNext,
    CloseCounter,
    Command,
    FinishService,
    Hold,
    IssueTicket,
    MarkNoShow,
    NobodyWaiting,
    Office,
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

ROOT = Path(__file__).resolve().parent.parent
NERIMA = ROOT / "examples" / "nerima.toml"
RUSH_DAY = date(2027, 3, 29)  # a Monday at the end of March: the moving season

# Share of arrivals per service (and the services a counter may send a ticket on to).
SERVICE_MIX = {"certificate": 0.32, "move": 0.24, "seal": 0.14, "payment": 0.12, "insurance": 0.1, "guidance": 0.08}
TRANSFERS = {
    "move": ("insurance", "seal"),
    "seal": ("certificate",),
    "certificate": ("payment",),
    "insurance": ("payment",),
    "payment": ("certificate",),
    "guidance": ("move", "certificate", "insurance"),
}
# Arrival intensity over the day (local hours, relative rate): a queue at the door at opening,
# a late-morning peak, a dip at lunch, a second peak before 17:00, a thin evening.
ARRIVAL_PROFILE = [
    (8.5, 9.0, 3.0),
    (9.0, 12.0, 1.6),
    (12.0, 13.0, 0.8),
    (13.0, 16.5, 1.4),
    (16.5, 17.0, 1.2),
    (17.0, 18.75, 0.35),
]
SERVICE_SPEED = 0.1  # real service time as a share of the config's typical minutes (a rush day)


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime
    command: Command


@dataclass
class _Desk:
    """One counter as the simulation sees it."""

    id: str
    shifts: list[tuple[float, float | None]]
    state: str = "closed"  # closed, idle, calling, serving, paused
    ticket: str | None = None
    absences: int = 0  # how often the current resident did not answer
    busy_token: int = 0  # invalidates timers of an earlier activity
    closing_at_empty: bool = False
    next_poll: float = 0.0


@dataclass
class _Sim:
    config: OfficeConfig
    day: date
    rng: random.Random
    office: Office
    steps: list[Step] = field(default_factory=list)
    heap: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    issued: int = 0
    refused: int = 0
    requeued: set[str] = field(default_factory=set)

    def at(self, seconds: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self.heap, (seconds, next(self.counter), action))

    def moment(self, seconds: float) -> datetime:
        ms = round(seconds * 1000)
        start = datetime.combine(self.day, time(0), tzinfo=self.config.tz)
        return start + timedelta(milliseconds=ms)

    def run(self, seconds: float, command: Command) -> list[object]:
        now = self.moment(seconds)
        decision = self.office.execute(command, now)
        if decision.events:
            self.steps.append(Step(now, command))
        return list(decision.effects)


def _hours(t: time | None) -> float | None:
    return None if t is None else t.hour * 3600 + t.minute * 60


def _arrivals(rng: random.Random, n: int) -> list[float]:
    weights = [(b - a) * r for a, b, r in ARRIVAL_PROFILE]
    times = []
    for _ in range(n):
        a, b, _r = rng.choices(ARRIVAL_PROFILE, weights)[0]
        times.append(rng.uniform(a, b) * 3600)
    return sorted(times)


def _swap(action: Callable[[_Desk, float], None], desk: _Desk, t: float) -> None:
    action(desk, t)


def _token(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(24)).decode("ascii")


def rush_day(
    config: OfficeConfig | None = None,
    *,
    day: date = RUSH_DAY,
    tickets: int = 3000,
    seed: int = 20270329,
    stats: dict[str, int] | None = None,
) -> list[Step]:
    """The commands of one busy day, in time order; each of them stores at least one event.
    `stats`, if given, receives the counts of issued and refused tickets."""
    config = config or load_config(NERIMA)
    rng = random.Random(seed)
    sim = _Sim(config, day, rng, Office(config))
    plan = plan_for(config, day)
    if not plan.is_open:
        raise ValueError(f"{config.id} is closed on {day}")
    sim.run(_hours(plan.opens) or 0.0, StartDay())

    desks = {
        c.id: _Desk(c.id, [(_hours(a) or 0.0, _hours(b)) for a, b in counter_shifts(config, plan, c.id)])
        for c in config.counters
    }

    # -- residents ---------------------------------------------------------------------------
    def arrive(t: float) -> None:
        if sim.issued >= tickets:
            return
        local = sim.moment(t).time()
        period = next((p for p in plan.periods if p.start <= local < p.end), None)
        if period is None:
            return
        mix = {s: w for s, w in SERVICE_MIX.items() if s in period.services}
        service = rng.choices(list(mix), list(mix.values()))[0]
        effects = sim.run(t, IssueTicket(service, _token(rng)))
        if any(isinstance(e, TicketReady) for e in effects):
            sim.issued += 1
        else:
            sim.refused += 1

    for t in _arrivals(rng, round(tickets * 1.08)):
        sim.at(t, arrive)

    # -- counter staff -----------------------------------------------------------------------
    def shift_end(desk: _Desk, t: float) -> float | None:
        for start, end in desk.shifts:
            if start <= t and (end is None or t < end):
                return end
        return None

    def on_shift(desk: _Desk, t: float) -> bool:
        return any(start <= t and (end is None or t < end) for start, end in desk.shifts)

    def later(desk: _Desk, delay: float, action: Callable[[_Desk, float], None]) -> None:
        token = desk.busy_token

        def fire(t: float) -> None:
            if desk.busy_token == token:
                action(desk, t)

        sim.at(sim_now[0] + delay, fire)

    sim_now = [0.0]

    def step_in(desk: _Desk, t: float) -> None:
        """A shift starts: open (or resume after lunch) and start calling."""
        if desk.state in ("calling", "serving"):
            desk.closing_at_empty = False  # a long service ran into the next shift: carry on
            return
        if desk.state == "closed":
            sim.run(t, OpenCounter(desk.id))
        elif desk.state == "paused":
            sim.run(t, ResumeCounter(desk.id))
        else:
            return
        desk.state = "idle"
        desk.busy_token += 1
        call(desk, t)

    def step_out(desk: _Desk, t: float) -> None:
        """A shift ends: once the current resident is done, pause for lunch or close."""
        if on_shift(desk, t) or desk.state in ("closed", "paused"):
            return
        if desk.state in ("calling", "serving"):
            desk.closing_at_empty = True
            return
        leave(desk, t)

    def leave(desk: _Desk, t: float) -> None:
        more_today = any(start > t for start, _ in desk.shifts)
        desk.busy_token += 1
        sim.run(t, PauseCounter(desk.id) if more_today else CloseCounter(desk.id))
        desk.state = "paused" if more_today else "closed"
        desk.ticket = None
        desk.closing_at_empty = False

    def call(desk: _Desk, t: float) -> None:
        if desk.state not in ("idle", "serving"):
            return
        if desk.closing_at_empty or not on_shift(desk, t):
            leave(desk, t)  # pausing or closing serves the current resident first
            return
        end = shift_end(desk, t)
        effects = sim.run(t, CallNext(desk.id))
        desk.busy_token += 1
        shown = next((e for e in effects if isinstance(e, ShowCall)), None)
        if shown is None:
            assert any(isinstance(e, NobodyWaiting) for e in effects)
            desk.state, desk.ticket = "idle", None
            if end is None and t >= (_hours(plan.closes) or 0.0):
                leave(desk, t)  # an open-ended evening shift: close once the queue is empty
                return
            later(desk, rng.uniform(10, 30), call)
            return
        desk.state, desk.ticket, desk.absences = "calling", shown.ticket, 0
        answer(desk, t)

    def answer(desk: _Desk, t: float) -> None:
        """The called resident comes to the counter, or does not (yet)."""
        present = rng.random() < (0.6, 0.5, 0.5)[desk.absences]
        if present:
            later(desk, rng.uniform(5, 15), serve)
        elif desk.absences < config.rules.recall_limit:
            later(desk, rng.uniform(15, 30), recall)
        else:
            later(desk, rng.uniform(15, 30), no_show)

    def recall(desk: _Desk, t: float) -> None:
        sim.run(t, Recall(desk.id))
        desk.absences += 1
        answer(desk, t)

    def no_show(desk: _Desk, t: float) -> None:
        sim.run(t, MarkNoShow(desk.id))
        desk.state, desk.ticket = "idle", None
        later(desk, rng.uniform(2, 8), call)

    def serve(desk: _Desk, t: float) -> None:
        assert desk.ticket is not None
        desk.state = "serving"
        ticket = sim.office.state.tickets[desk.ticket]
        typical = config.service(ticket.service).typical_minutes * 60 * SERVICE_SPEED
        duration = rng.lognormvariate(0, 0.5) * typical
        fate = rng.random()
        if fate < 0.1:
            later(desk, duration * rng.uniform(0.2, 0.6), transfer)
        elif fate < 0.15:
            later(desk, duration * rng.uniform(0.1, 0.3), hold)
        else:
            later(desk, duration, finish)

    def finish(desk: _Desk, t: float) -> None:
        # Half the staff press "finished" and then "next"; the others press "next" at once.
        if rng.random() < 0.5:
            sim.run(t, FinishService(desk.id))
            desk.state, desk.ticket = "idle", None
            later(desk, rng.uniform(2, 8), call)
        else:
            call(desk, t)

    def transfer(desk: _Desk, t: float) -> None:
        assert desk.ticket is not None
        service = sim.office.state.tickets[desk.ticket].service
        sim.run(t, Transfer(rng.choice(TRANSFERS[service]), counter=desk.id))
        desk.state, desk.ticket = "idle", None
        later(desk, rng.uniform(2, 8), call)

    def hold(desk: _Desk, t: float) -> None:
        ticket = desk.ticket
        assert ticket is not None
        sim.run(t, Hold(ticket))
        desk.state, desk.ticket = "idle", None

        def come_back(t2: float) -> None:
            sim.run(t2, Return(ticket))

        sim.at(t + rng.uniform(8, 25) * 60, come_back)
        later(desk, rng.uniform(2, 8), call)

    for desk in desks.values():
        for start, end in desk.shifts:
            sim.at(start + rng.uniform(0, 90), functools.partial(_swap, step_in, desk))
            if end is not None:
                sim.at(end, functools.partial(_swap, step_out, desk))

    while sim.heap:
        t, _, action = heapq.heappop(sim.heap)
        sim_now[0] = t
        action(t)
    if sim.issued != tickets:
        raise RuntimeError(f"only {sim.issued} of {tickets} tickets could be issued ({sim.refused} refused)")
    if stats is not None:
        stats.update(issued=sim.issued, refused=sim.refused)
    return sim.steps


def main() -> None:
    import time as _time
    from collections import Counter as Tally

    started = _time.perf_counter()
    stats: dict[str, int] = {}
    steps = rush_day(stats=stats)
    elapsed = _time.perf_counter() - started
    office = Office(load_config(NERIMA))
    events = 0
    kinds: Tally[str] = Tally()
    for step in steps:
        decision = office.execute(step.command, step.at)
        events += len(decision.events)
        kinds.update(e.TYPE for e in decision.events)
    print(f"{len(steps)} commands, {events} events, generated in {elapsed:.2f} s")
    print(f"first {steps[0].at:%H:%M:%S}, last {steps[-1].at:%H:%M:%S}; {stats['refused']} arrivals refused")
    for kind, n in sorted(kinds.items()):
        print(f"  {kind:16} {n}")
    left = [t for t in office.state.tickets.values() if t.status.value in ("waiting", "called", "held")]
    print(f"tickets left unserved at the end: {len(left)}")


if __name__ == "__main__":
    main()
