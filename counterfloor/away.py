"""Residents who step away with alerts on, for the simulator (docs/alerts.md, "Timeliness").

Owns who steps away, when each is alerted and when they are back. A resident whose ticket says a
long wait (its mean at least LEAVE_FACTOR × the alert's M minutes) opts in to "about M minutes
before" and leaves the floor; the office's own rule (central/alerts/engine.py's `near`, on
central's per-ticket estimate: office.waittime's predictor over the floor, as central/estimates.py
computes it) alerts them, and they are back RETURN_MINUTES later. Called before they are back,
they do not answer (the office's recalls and no-show rule take over).

Beside it, an observer: the peers' alert at "N people ahead" (Service BC's TheQ, Qmatic, Berlin's
ZMS), with N worked out at opt-in from the industry-standard estimate (people ahead × mean service
÷ open counters, the `naive` predictor) as the places that take M minutes — when a resident would
have been alerted instead: the baseline of the benchmark. It changes nothing on the floor.

The simulation calls `issued` for each new ticket, `check` after each call and every CHECK_S of
simulated time, and `present` when a resident is called.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from central.alerts.engine import Choice, TicketNow, near
from central.estimates import ticket_estimates
from office.state import OfficeState
from office.waittime import Predictor
from office.waittime.estimator import LearnedEstimator
from office.waittime.floor import OPEN

LEAVE_FACTOR = 2.0  # a mean wait of at least 2 × M minutes: worth stepping out
RETURN_MINUTES = (2.0, 8.0)  # from the alert to back on the floor: a café, the car, another counter
CHECK_S = 30  # central evaluates at least every 5 s; the simulation every call and every 30 s


@dataclass(slots=True)
class Away:
    ticket: str
    service: str
    left_at: int  # seconds of the day
    back_after_s: float  # how long they take to come back once alerted
    alerted_at: int | None = None
    baseline_at: int | None = None  # when the industry-standard alert would have come
    baseline_ahead: int | None = None  # its "N people ahead", worked out at the first check
    first_called_at: int | None = None


class SteppingAway:
    """See the module docstring. `estimator`: the office's (its floor is kept current from the
    day's events); `best` and `naive`: the predictors for the alert and for the baseline."""

    def __init__(self, estimator: LearnedEstimator, best: Predictor, naive: Predictor, minutes: int, seed: str) -> None:
        self.estimator = estimator
        self.best = best
        self.naive = naive
        self.choice = Choice("minutes", minutes)
        self.leave_s = LEAVE_FACTOR * minutes * 60
        self.rng = random.Random(f"counterfloor-away-{seed}")
        self.away: dict[str, Away] = {}
        self.check_every_s = CHECK_S

    def issued(self, ticket: str, service: str, mean_wait_s: float, now: int) -> None:
        if mean_wait_s >= self.leave_s:
            back = self.rng.uniform(*RETURN_MINUTES) * 60
            self.away[ticket] = Away(ticket, service, now, back)

    def present(self, ticket: str, now: int) -> bool:
        """Whether the ticket's resident is on the floor at `now` (to answer a call)."""
        a = self.away.get(ticket)
        if a is None:
            return True
        if a.first_called_at is None:
            a.first_called_at = now
        # Not alerted in time, the call itself ("you are called") brings them back: for a recall.
        told = a.alerted_at if a.alerted_at is not None else a.first_called_at
        return now >= told + a.back_after_s

    def check(self, state: OfficeState, now: int, moment: datetime) -> None:
        pending = {a.ticket: a for a in self.away.values() if a.first_called_at is None}
        if not pending or not self.estimator.catch_up(state.last_seq):
            return
        floor = self.estimator.floor
        floor.now = max(floor.now, float(now))
        tokens = {t: t for t in pending}
        callers: dict[str, int] = {}
        for c in floor.counters.values():
            if c.status == OPEN:
                for service in c.services:
                    callers[service] = callers.get(service, 0) + 1
        for est in ticket_estimates(floor, self.best, tokens):
            a = pending[est.ticket]
            if a.alerted_at is None:
                # The rule in seconds of the day: the earliest expected call (p10) M minutes away.
                call = floor.tickets[est.ticket].issued + est.p10
                at = moment + timedelta(seconds=call - now)
                ticket = TicketNow("waiting", est.ahead, at, callers=callers.get(est.service, 0))
                if near(self.choice, ticket, moment):
                    a.alerted_at = now
        for est in ticket_estimates(floor, self.naive, tokens):
            a = pending[est.ticket]
            if a.baseline_ahead is None:
                # At opt-in, M minutes in people: ahead × mean service ÷ counters = the naive wait,
                # so one place in the queue is worth wait ÷ ahead (ZMS, TheQ: an SMS at position N).
                left = est.mean - (floor.now - floor.tickets[est.ticket].issued)
                per_place = left / est.ahead if est.ahead > 0 else float("inf")
                a.baseline_ahead = int(self.choice.value * 60 // per_place) if per_place > 0 else est.ahead
            if a.baseline_at is None and est.ahead <= a.baseline_ahead:
                a.baseline_at = now

    def figures(self) -> dict[str, Any]:
        """Over the residents who stepped away and were called: the share alerted at least M
        minutes before their first call, the share called before their alert (or never
        alerted), the same two for the baseline, and how many."""
        called = [a for a in self.away.values() if a.first_called_at is not None]
        m = self.choice.value * 60

        def shares(attr: str) -> tuple[float, float]:
            if not called:
                return 0.0, 0.0
            ahead = sum(
                1 for a in called if (at := getattr(a, attr)) is not None and (a.first_called_at or 0) - at >= m
            )
            late = sum(1 for a in called if (at := getattr(a, attr)) is None or at > (a.first_called_at or 0))
            return ahead / len(called), late / len(called)

        notice, late = shares("alerted_at")
        base_notice, base_late = shares("baseline_at")
        missed = sum(
            1
            for a in called
            if a.first_called_at is not None
            and (a.alerted_at is None or a.first_called_at < a.alerted_at + a.back_after_s)
        )
        notices = sorted((a.first_called_at or 0) - a.alerted_at for a in called if a.alerted_at is not None)
        base = sorted((a.first_called_at or 0) - a.baseline_at for a in called if a.baseline_at is not None)
        return {
            "notice_s": notices,  # each alerted resident's notice, for the median: how early it came
            "baseline_notice_s": base,
            "away": len(self.away),
            "called": len(called),
            "notice": notice,
            "late": late,
            "baseline_notice": base_notice,
            "baseline_late": base_late,
            "missed_first_call": missed,
        }
