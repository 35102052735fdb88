"""Timeliness of the residents' alerts (issue 19): on simulated days whose residents step away
with "about M minutes before" on and come back when alerted (counterfloor/away.py), the share
alerted at least M minutes before their first call (goal ≥ 90 %) and the share called before
their alert came (goal ≤ 2 %), with the office's default M (10 minutes) — against the same two
figures for an alert at "N people ahead" from the industry-standard estimate (people ahead × mean
service ÷ open counters: the `naive` predictor), evaluated on the same days at the same moments.

Each scenario's days are simulated as the demo makes them (counterfloor/demo_floor.py
`learn_history`: 20 past days of the same kind, learned from twice), then each day runs with the
learned estimate on the board and on the tickets, its residents stepping away when their ticket
says a wait of at least 2 × M, and back 2–8 minutes after their alert. The alert is central's rule
(central/alerts/engine.py `near`) on central's per-ticket estimate (central/estimates.py), checked
at every call and every 30 s of simulated time (central: every view and every 5 s).

    uv run python -m bench.run --only timeliness
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bench.common import Result
from counterfloor.away import SteppingAway
from counterfloor.demo_floor import learn_history
from counterfloor.simulate import DaySimulation, open_days
from office import events as ev
from office.config import OfficeConfig, load_config
from office.model import Command, Decision, Office
from office.waittime import read_record, split_days, train
from office.waittime.estimator import LearnedEstimator

ROOT = Path(__file__).resolve().parent.parent
FIRST_DAY = {False: date(2027, 6, 7), True: date(2027, 3, 29)}  # a June Monday; the moving season's last week
NOTICE_GOAL, LATE_GOAL = 0.90, 0.02


@dataclass(frozen=True, slots=True)
class Scenario:
    office: str
    rush: bool
    days: int

    @property
    def name(self) -> str:
        return f"{self.office} {'rush' if self.rush else 'weekdays'}"


def scenarios(quick: bool) -> list[Scenario]:
    n = 2 if quick else 5
    return [
        Scenario("nerima", False, n),
        Scenario("nerima", True, n),
        Scenario("oizumi", False, n),
        Scenario("oizumi", True, n),
    ]


def run_day(config: OfficeConfig, day: date, seed: int, rush: bool, minutes: int) -> dict[str, Any]:
    _, best, log = learn_history(config, day, seed, rush)
    if best is None:
        raise RuntimeError(f"{config.id} {day}: no past day to learn from")
    naive = train("naive", split_days([read_record(r) for r in log]))
    events: list[ev.Event] = []
    estimator = LearnedEstimator(config, lambda after, limit: events[after : after + limit], best)
    office = Office(config, estimator=estimator)
    # The alerts' own view of the floor: central's (a floor of its own, kept from the same events).
    watcher = LearnedEstimator(config, lambda after, limit: events[after : after + limit], best)
    away = SteppingAway(watcher, best, naive, minutes, f"{seed}-{day}")

    def execute(command: Command, now: datetime) -> Decision:
        decision = office.execute(command, now)
        events.extend(decision.events)
        return decision

    DaySimulation(config, day, seed=seed, rush=rush, office=office, execute=execute, away=away).run()
    return away.figures()


def run(quick: bool = False, seed: int = 1) -> list[Result]:
    results: list[Result] = []
    for sc in scenarios(quick):
        config = load_config(ROOT / "examples" / f"{sc.office}.toml")
        minutes = config.alerts.minutes
        days = open_days(config, FIRST_DAY[sc.rush], sc.days)
        started = time.monotonic()
        figures = [run_day(config, d, seed, sc.rush, minutes) for d in days]
        took = time.monotonic() - started
        called = sum(int(f["called"]) for f in figures)

        def share(key: str, days: Sequence[dict[str, Any]] = figures, n: int = called) -> float:
            return sum(float(f[key]) * int(f["called"]) for f in days) / n if n else 0.0

        def median_min(key: str, days: Sequence[dict[str, Any]] = figures) -> float:
            values = sorted(v for f in days for v in f[key])
            return values[len(values) // 2] / 60 if values else float("nan")

        notice, late = share("notice"), share("late")
        base_notice, base_late = share("baseline_notice"), share("baseline_late")
        missed = sum(int(f["missed_first_call"]) for f in figures)
        met = notice >= NOTICE_GOAL and late <= LATE_GOAL
        results.append(
            Result(
                f"alerts: timeliness, {sc.name} ({len(days)} days, M = {minutes} min; {called} residents "
                f"stepped away and were called, {missed} missed their first call; {took:.0f} s)",
                f"{100 * notice:.1f} % ≥ {minutes} min notice, {100 * late:.1f} % called first "
                f"(median notice {median_min('notice_s'):.1f} min)",
                f"N ahead from the industry standard: {100 * base_notice:.1f} %, {100 * base_late:.1f} % "
                f"(median {median_min('baseline_notice_s'):.1f} min)",
                f"{notice - base_notice:+.1%} notice",
                "≥ 90 % notice, ≤ 2 % called first",
                met,
            )
        )
    return results


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
