"""The oracle: the error floor of wait-time prediction on simulated days (issue 14).

Owns the Monte-Carlo estimate, for a ticket at its issue on a simulated day, of its mean wait
given only what the office could observe by then — the day's events so far — and the simulator's
true distributions of everything else: the day's service times by service and hour (drift
included), residents' patience and answers, the arrivals still to come, the staff's pace and
shifts. Each draw plays the rest of the day again with the simulator's own code
(`DaySimulation.resume`) and fresh randomness, until the ticket is called; whatever the office
could not see is re-drawn from its prior given what it saw:

- each waiting resident's patience, given that they did not walk away from the board when they
  took their ticket and given every call they did or did not answer (so whether they have
  silently gone home is re-drawn, not read from the simulation);
- a call in progress: whether the resident answered, their walk, and the time left of the
  service, given how long the counter has been at it without a `served`;
- a counter with nobody in front of it: whether it is about to call (its staff's reaction after
  the last resident, or a wake-up by a ticket just issued) or idle, consistent with the log (a
  counter that would have called a waiting ticket by now must still be about to);
- the day's crowd level (its lognormal factor), from its prior and the tickets issued so far
  against what the day's shape, the board and the residents' patience make of each level.

The rule for idle counters follows the simulator's pace but is not an exact posterior (it decides
between "about to call" and "idle" one reaction time at a time); its effect is tens of seconds.
For the benchmark (bench/accuracy.py), never for the gateway: it needs the simulator's truth.
"""

from __future__ import annotations

import bisect
import copy
import math
import random
import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

# The simulator's numbers are read from its modules when used (sim.WALK_SECONDS…): one
# definition of each, which a test may pin.
from counterfloor import arrivals as profiles
from counterfloor import simulate as sim
from counterfloor.arrivals import (
    Arrival,
    DayDemand,
    ServiceTimes,
    day_demand,
    demand_for,
    draw_resident,
    patience_below,
)
from counterfloor.simulate import (
    DaySimulation,
    NextStep,
    ResumedCounter,
    ResumedTicket,
    SimulationError,
    board_wait_seconds,
)
from office import events as ev
from office.calendar import plan_for
from office.config import OfficeConfig, Service
from office.estimate import WaitEstimator
from office.model import IssueTicket, Office, TicketReady
from office.state import CounterStatus, OfficeState

CHUNK_SECONDS = 1800  # the future is drawn half an hour at a time: most draws stop long before the day ends
TRIES = 20_000  # rejection draws before a hidden state is taken as it comes (never reached in practice)
# The day's level: its prior is lognormal; the posterior is worked out on this grid of its normal.
_GRID = tuple(g / 20.0 for g in range(-100, 101))


@dataclass(frozen=True, slots=True)
class OracleWait:
    """The oracle's answer for one ticket at its issue, in seconds."""

    mean: float  # over the draws in which the ticket is called
    se: float  # the Monte-Carlo standard error of `mean`
    p10: float  # of the draws' waits
    p90: float
    draws: int  # draws in which it was called
    uncalled: int  # draws in which the day ended first


@dataclass(slots=True)
class _Seen:
    """What the office saw of one ticket."""

    service: str  # as issued
    issued: int
    board: int  # the board's wait when it was taken: its resident's patience was at least this
    # Calls and recalls: [time, chance a resident who is there answers, answered (None: not yet known)].
    attempts: list[list[float | bool | None]] = field(default_factory=list)
    calls: int = 0
    first_called: int | None = None
    transferred: bool = False


class DayOracle:
    """One simulated day seen event by event (`observe`); `wait_at_issue` for a ticket about to
    be issued (its `ticket_issued` not yet observed). `seed` and `rush` are the day's simulation
    arguments (the true distributions); `estimator` the board the simulated office ran."""

    def __init__(
        self,
        config: OfficeConfig,
        day: date,
        *,
        seed: int,
        rush: bool = False,
        estimator: WaitEstimator | None = None,
    ) -> None:
        self.config = config
        self.day = day
        self.seed = seed
        self.rush = rush
        plan = plan_for(config, day)
        if not plan.is_open or plan.opens is None:
            raise SimulationError(f"{config.name.en} is closed on {day.isoformat()}")
        self.office = Office(config, estimator=estimator)  # the floor as observed
        self.midnight = datetime.combine(day, time(0), tzinfo=config.tz)
        self.demand: DayDemand = day_demand(config, plan, rush, 1.0)
        self.service_times = ServiceTimes(config, day, seed)
        self._services: dict[str, Service] = {s.id: s for s in config.services}
        self._tickets: dict[str, _Seen] = {}
        self._free_since: dict[str, int] = {}
        # Per service, the queue's length after each change: was it empty at some past moment?
        self._queue_log: dict[str, tuple[list[int], list[int]]] = {s.id: ([], []) for s in config.services}
        self._recent: list[tuple[int, str]] = []  # tickets just issued or transferred: each wakes an idle counter
        # The day's level: tickets issued so far against those expected at level 1 (thinned by
        # refusals and by residents walking away from the board), minute by minute.
        self._issued = 0
        self._minute = 0
        self._expected = 0.0  # expected tickets at level 1 in the minutes before the current one
        self._current = 0.0  # and in the current minute

    # -- observing ----------------------------------------------------------------------------
    def seconds(self, ts: datetime) -> int:
        return round((ts - self.midnight).total_seconds())

    def observe(self, e: ev.Event) -> None:
        t = self.seconds(e.ts)
        self._advance(t)
        seen = self._tickets.get(getattr(e, "ticket", ""))
        if isinstance(e, ev.TicketIssued):
            self._issued += 1
            self._tickets[e.ticket] = _Seen(e.service, t, board_wait_seconds(self.office, e.service, e.ts))
            self._recent.append((t, e.service))
        elif isinstance(e, ev.Called) and seen is not None:
            seen.calls += 1
            if seen.first_called is None:
                seen.first_called = t
            p = 1.0 - sim.P_MISS_FIRST_CALL if seen.calls == 1 else sim.P_ANSWER_REQUEUED_CALL
            seen.attempts.append([t, p, None])
        elif isinstance(e, ev.Recalled) and seen is not None:
            seen.attempts[-1][2] = False
            seen.attempts.append([t, sim.P_ANSWER_RECALL, None])
        elif isinstance(e, ev.NoShow) and seen is not None:
            seen.attempts[-1][2] = False
            self._free_since[e.counter] = t
        elif isinstance(e, ev.Served) and seen is not None:
            seen.attempts[-1][2] = True
            self._free_since[e.counter] = t
        elif isinstance(e, ev.Transferred) and seen is not None:
            if e.counter is not None:
                seen.attempts[-1][2] = True
                seen.transferred = True
                self._free_since[e.counter] = t
            self._recent.append((t, e.to_service))
        elif isinstance(e, ev.CounterOpened | ev.CounterResumed):
            self._free_since[e.counter] = t
        self.office.apply(e)
        queues = self.office.state.queues
        for sid, (times, lengths) in self._queue_log.items():
            n = len(queues.get(sid, ()))
            if not lengths or lengths[-1] != n:
                times.append(t)
                lengths.append(n)
        if self._recent and self._recent[0][0] < t - sim.WAKE_SECONDS[1]:
            self._recent = [r for r in self._recent if r[0] >= t - sim.WAKE_SECONDS[1]]

    def _advance(self, t: int) -> None:
        """Count the expected tickets of every minute that has begun by `t`, each with the floor
        as it was when the minute began."""
        minutes = self.demand.minutes
        while self._minute < len(minutes) and minutes[self._minute] <= t:
            self._expected += self._current
            self._current = self._minute_rate(self._minute)
            self._minute += 1

    def _minute_rate(self, i: int) -> float:
        """Expected tickets in minute `i` at level 1: arrivals not refused by the dispenser and
        not walking away from the board."""
        d = self.demand
        now = self.midnight + timedelta(seconds=d.minutes[i])
        crowd = d.crowd * 60 / profiles.CROWD_SECONDS if d.minutes[i] < d.opens + profiles.CROWD_SECONDS else 0.0
        total_weight = sum(d.weights)
        rate = 0.0
        for j, svc in enumerate(d.services):
            r = d.rates[j][i] + crowd * d.weights[j] / total_weight
            if r <= 0.0:
                continue
            decision = self.office.decide(IssueTicket(svc.id, "oracle"), now)
            if not any(isinstance(x, TicketReady) for x in decision.effects):
                continue  # refused: not offered now, or cut off
            rate += r * (1.0 - patience_below(d.demands[j], board_wait_seconds(self.office, svc.id, now)))
        return rate

    def _level_weights(self, t: int, issued: int) -> list[float]:
        """The cumulative posterior of the day's level over `_GRID`, given `issued` tickets by `t`."""
        expected = self._expected
        if self._minute:
            start = self.demand.minutes[self._minute - 1]
            expected += self._current * min(1.0, max(0.0, (t - start + 1) / 60.0))
        sigma = profiles.DAY_DEMAND_SIGMA
        logs = []
        for g in _GRID:
            level = math.exp(sigma * g - sigma * sigma / 2)
            logs.append(-g * g / 2 + issued * math.log(level) - level * expected)
        top = max(logs)
        cumulative, acc = [], 0.0
        for x in logs:
            acc += math.exp(x - top)
            cumulative.append(acc)
        return [c / acc for c in cumulative]

    def level_mean(self, t: int) -> float:
        """The posterior mean of the day's level at `t` (for checks)."""
        cum = self._level_weights(t, self._issued)
        sigma = profiles.DAY_DEMAND_SIGMA
        prev, mean = 0.0, 0.0
        for g, c in zip(_GRID, cum, strict=True):
            mean += (c - prev) * math.exp(sigma * g - sigma * sigma / 2)
            prev = c
        return mean

    def _queues_empty(self, services: Iterable[str], at: int) -> bool:
        for sid in services:
            times, lengths = self._queue_log[sid]
            i = bisect.bisect_right(times, at) - 1
            if i >= 0 and lengths[i]:
                return False
        return True

    # -- the oracle ---------------------------------------------------------------------------
    def wait_at_issue(self, issue: ev.TicketIssued, draws: int, rng: random.Random) -> OracleWait:
        """The mean wait of the ticket `issue` is about to issue (call before observing it)."""
        t = self.seconds(issue.ts)
        self._advance(t)
        levels = self._level_weights(t, self._issued + 1)  # its own issue is seen too
        state = self.office.state
        live = [tid for q in state.queues.values() for _, tid in q]
        live += [c.current for c in state.counters.values() if c.current is not None]
        live_set = set(live)
        calls = [tid for tid in state.calls if tid in live_set]
        board = board_wait_seconds(self.office, issue.service, issue.ts)
        bounds: dict[str, float] = {}
        waits: list[float] = []
        uncalled = 0
        for _ in range(draws):
            called = self._play(issue, t, board, live, calls, levels, bounds, rng)
            if called is None:
                uncalled += 1
            else:
                waits.append(float(called - t))
        if not waits:
            return OracleWait(math.inf, math.inf, math.inf, math.inf, 0, uncalled)
        mean = statistics.fmean(waits)
        se = statistics.stdev(waits) / math.sqrt(len(waits)) if len(waits) > 1 else math.inf
        cut = statistics.quantiles(waits, n=10, method="inclusive") if len(waits) > 1 else [waits[0]] * 9
        return OracleWait(mean, se, cut[0], cut[-1], len(waits), uncalled)

    def _play(
        self,
        issue: ev.TicketIssued,
        t: int,
        board: int,
        live: list[str],
        calls: list[str],
        levels: list[float],
        bounds: dict[str, float],
        rng: random.Random,
    ) -> int | None:
        """One draw: the rest of the day from `t`, until the ticket is first called."""
        sigma = profiles.DAY_DEMAND_SIGMA
        g = _GRID[min(len(_GRID) - 1, bisect.bisect_left(levels, rng.random()))]
        level = math.exp(sigma * g - sigma * sigma / 2)
        state = self.office.state
        counters, at_counters = self._counters(t, bounds, rng)
        tickets = at_counters
        at = {r.ticket for r in at_counters}
        for tid in live:
            if tid not in at:
                resident, used = self._resident(self._tickets[tid], rng)
                tickets.append(self._resumed(tid, resident, used))
        arrival = draw_resident(
            rng, t, self._services[issue.service], demand_for(self._services[issue.service]), patience_at_least=board
        )
        office = Office(self.config, _floor_copy(state, live, calls), estimator=self.office.estimator)
        horizon = t + CHUNK_SECONDS
        rest = DaySimulation.resume(
            self.config,
            self.day,
            office=office,
            now=t,
            tickets=tickets,
            counters=counters,
            arrivals=[arrival, *self.demand.residents_between(rng, t, horizon, level)],
            staff=random.Random(rng.getrandbits(64)),
            seed=self.seed,
            rush=self.rush,
        )
        while True:
            called = rest.run_until_called(issue.ticket, horizon)
            if called is not None or rest.done:
                break
            rest.add_arrivals(self.demand.residents_between(rng, horizon, horizon + CHUNK_SECONDS, level))
            horizon += CHUNK_SECONDS
        if issue.ticket not in office.state.tickets:
            raise RuntimeError(f"the oracle's day did not issue {issue.ticket} at {issue.ts}")
        return called

    def _resumed(self, tid: str, resident: Arrival, used: int) -> ResumedTicket:
        seen = self._tickets[tid]
        return ResumedTicket(
            tid, seen.service, seen.issued, resident, seen.first_called, seen.calls, used, seen.transferred
        )

    def _resident(self, seen: _Seen, rng: random.Random) -> tuple[Arrival, int]:
        """A waiting ticket's resident re-drawn given what was seen: they stayed at the board, and
        answered each call as they did. With their answers used so far."""
        service = self._services[seen.service]
        demand = demand_for(service)
        a = draw_resident(rng, seen.issued, service, demand, patience_at_least=seen.board)
        for _ in range(TRIES):
            used = _as_seen(a, seen.issued, seen.attempts)
            if used is not None:
                return a, used
            a = draw_resident(rng, seen.issued, service, demand, patience_at_least=seen.board)
        return a, len(seen.attempts)

    def _counters(
        self, t: int, bounds: dict[str, float], rng: random.Random
    ) -> tuple[list[ResumedCounter], list[ResumedTicket]]:
        """Every counter as it may be now, and the tickets in front of them with their residents."""
        state = self.office.state
        out: list[ResumedCounter] = []
        tickets: list[ResumedTicket] = []
        idle: dict[str, int] = {}
        pending: dict[str, int] = {}
        for cfg in self.config.counters:
            c = state.counters.get(cfg.id)
            if c is None or c.status is CounterStatus.CLOSED:
                out.append(ResumedCounter(cfg.id, "off"))
            elif c.status is CounterStatus.PAUSED:
                out.append(ResumedCounter(cfg.id, "lunch"))
            elif c.current is not None:
                resident, used, activity, step = self._visit(c.current, t, bounds, rng)
                tickets.append(self._resumed(c.current, resident, used))
                out.append(ResumedCounter(cfg.id, activity, c.current, 0, step))
            else:
                # After its last resident (or opening) the counter called after a reaction time:
                # if that is past, it found nobody (else the log would show the call) and idles.
                free = self._free_since.get(cfg.id, t)
                since = free + sim.STAFF_REACTION_SECONDS[1]
                for _ in range(100):
                    call = free + rng.randint(*sim.STAFF_REACTION_SECONDS)
                    if call >= t:
                        pending[cfg.id] = call
                        break
                    if self._queues_empty(c.services, call):
                        since = call
                        break
                if cfg.id not in pending:
                    idle[cfg.id] = since
        # Tickets issued (or transferred) in the last seconds each woke the idle counter whose
        # screen shows them first (DaySimulation._wake): is it still about to call?
        for when, service in self._recent:
            if when >= t:
                continue
            ready = [cid for cid, since in idle.items() if since <= when and service in state.counters[cid].services]
            if not ready:
                continue
            cid = min(ready, key=lambda k: (state.counters[k].services[0] != service, idle[k]))
            call = when + rng.randint(*sim.WAKE_SECONDS)
            if call < t and self._queues_empty(state.counters[cid].services, call):
                idle[cid] = call  # it called and found nobody: idle again
                continue
            if call < t:  # it would have called a waiting ticket: its call is still to come
                call = when + rng.randint(max(sim.WAKE_SECONDS[0], t - when), max(sim.WAKE_SECONDS[1], t - when))
            pending[cid] = call
            del idle[cid]
        for cid, since in idle.items():
            out.append(ResumedCounter(cid, "idle", None, since))
        for cid, call in pending.items():
            out.append(ResumedCounter(cid, "waking", None, 0, (call, "call")))
        return out, tickets

    def _visit(
        self, tid: str, t: int, bounds: dict[str, float], rng: random.Random
    ) -> tuple[Arrival, int, str, tuple[int, NextStep]]:
        """A call in progress re-drawn (DaySimulation._call, _await_resident, _at_counter) given
        that nothing has come of it by `t`: (resident, answers used, activity, next step)."""
        seen = self._tickets[tid]
        service = self._services[seen.service]
        demand = demand_for(service)
        now_service = self.office.state.tickets[tid].service
        when_f, p_f, _ = seen.attempts[-1]
        assert isinstance(when_f, float | int) and isinstance(p_f, float)
        when, p = int(when_f), p_f
        past = seen.attempts[:-1]
        since = t - when
        # Accept a drawn service with the chance it lasts past `t`, over the largest such chance
        # (then its draw is cut there): exact rejection. Other outcomes are certain or impossible.
        top = bounds.get(tid)
        if top is None:
            longest = sim.RECALL_AFTER_SECONDS[1], sim.WALK_SECONDS[1] + profiles.TRANSFER_AFTER_SECONDS[1]
            if since <= max(longest):
                top = 1.0
            else:
                top = max(
                    _above(self.service_times.z_at_least(now_service, when + w, t - when - w))
                    for w in range(sim.WALK_SECONDS[0], sim.WALK_SECONDS[1] + 1)
                )
            bounds[tid] = top
        for _ in range(TRIES):
            a = draw_resident(rng, seen.issued, service, demand, patience_at_least=seen.board)
            used = _as_seen(a, seen.issued, past)
            if used is None:
                continue
            answered = False
            if when - seen.issued <= a.patience_seconds:
                answered = a.answers[used % len(a.answers)] < p
                used += 1
            if not answered:
                back = when + rng.randint(*sim.RECALL_AFTER_SECONDS)
                if back >= t:
                    return a, used, "calling", (back, "no_answer")
                continue
            start = when + rng.randint(*sim.WALK_SECONDS)
            if start >= t:
                return a, used, "calling", (start, "at_counter")
            if a.wrong_service and not seen.transferred:
                if start + a.transfer_after >= t:
                    return a, used, "serving", (start + a.transfer_after, "transfer")
                continue
            z0 = self.service_times.z_at_least(now_service, start, t - start)
            if rng.random() * top > _above(z0):
                continue
            z = _normal_above(z0, rng)
            a = replace(a, second_service_z=z) if seen.transferred else replace(a, service_z=z)
            end = start + self.service_times.draw(now_service, start, z)
            return a, used, "serving", (max(end, t), "service_end")
        # Never reached in practice: the service goes on a little longer.
        a = draw_resident(rng, seen.issued, service, demand, patience_at_least=seen.board)
        return a, len(seen.attempts), "serving", (t + sim.WALK_SECONDS[0], "service_end")


def _as_seen(a: Arrival, issued: int, attempts: Sequence[list[float | bool | None]]) -> int | None:
    """The answers `a` uses if they answer `attempts` as seen (DaySimulation._answers); None if
    they would not."""
    used = 0
    for when, p, answered in attempts:
        assert isinstance(when, float | int) and isinstance(p, float)
        heard = False
        if when - issued <= a.patience_seconds:
            heard = a.answers[used % len(a.answers)] < p
            used += 1
        if heard != answered:
            return None
    return used


def _above(z: float) -> float:
    """P(Z ≥ z), accurate far into the tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _normal_above(z0: float, rng: random.Random) -> float:
    """A standard normal draw cut below at `z0`."""
    if z0 == -math.inf:
        return rng.gauss(0.0, 1.0)
    if z0 < 5.0:
        below = statistics.NormalDist().cdf(z0)
        return statistics.NormalDist().inv_cdf(min(1.0 - 1e-15, below + (1.0 - below) * rng.random()))
    return z0 + rng.expovariate(z0)  # the normal's far tail is nearly exponential


def _floor_copy(state: OfficeState, live: list[str], calls: list[str]) -> OfficeState:
    """The floor for one draw: what the day can still change (tickets waiting or at a counter,
    counters, queues, numbering), copied; the day's finished tickets left out."""
    return OfficeState(
        day=state.day,
        last_seq=state.last_seq,
        last_ts=state.last_ts,
        schedule=state.schedule,
        tickets={tid: copy.copy(state.tickets[tid]) for tid in live},
        counters={k: copy.copy(c) for k, c in state.counters.items()},
        queues={s: list(q) for s, q in state.queues.items()},
        last_number=dict(state.last_number),
        calls=dict.fromkeys(calls),
        overrides=dict(state.overrides),
        dispenser_messages=state.dispenser_messages,
    )


def oracle_waits(
    config: OfficeConfig,
    day: date,
    events: Iterable[ev.Event],
    tickets: Collection[str],
    *,
    seed: int,
    rush: bool = False,
    draws: int = 32,
    rng_seed: int = 1,
    estimator: WaitEstimator | None = None,
) -> dict[str, OracleWait]:
    """The oracle for these tickets of one simulated day (`events`: the day's log as recorded;
    `seed`, `rush`: as simulated). Each ticket has its own random stream (rng_seed, day, ticket),
    so an answer does not depend on which other tickets are asked about."""
    oracle = DayOracle(config, day, seed=seed, rush=rush, estimator=estimator)
    out: dict[str, OracleWait] = {}
    for e in events:
        if isinstance(e, ev.TicketIssued) and e.ticket in tickets and e.ticket not in out:
            rng = random.Random(f"oracle-{rng_seed}-{day.isoformat()}-{e.ticket}")
            out[e.ticket] = oracle.wait_at_issue(e, draws, rng)
        oracle.observe(e)
    return out
