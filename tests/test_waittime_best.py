"""The `best` wait-time predictor: the counters played forward (an idle counter calls at once, a
lunch break and service priorities lengthen waits, a call in progress has its time left), one
pass for every waiting ticket, and, on simulated days, calibrated ranges and a clear margin over
the industry standard and the office's CapacityEstimator."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from counterfloor.cli import event_log_line
from counterfloor.simulate import DaySimulation
from office.config import OfficeConfig
from office.model import Command, Decision, Office
from office.waittime import records as r
from office.waittime import replay, split_days, train
from office.waittime.params import Durations
from office.waittime.predictors import Best
from office.waittime.records import read_record
from office.waittime.score import score, true_waits
from tests.test_waittime_baselines import ALL_DAY, Log, params_with

MINUTE = 60.0


def _wait(log: Log, ticket: str, params: Any = None) -> float:
    floor = log.floor()
    (p,) = Best(params or params_with({"a": 300.0, "b": 300.0})).predict(floor, [floor.tickets[ticket]])
    assert p.p10 <= p.mean <= p.p90
    return p.mean


def test_an_idle_open_counter_calls_at_once() -> None:
    log = Log().schedule("08:20", {"1": (["a"], ALL_DAY)}).at("08:30", "counter_opened", counter="1", services=["a"])
    log.issue("09:00", "A-001", "a")
    assert _wait(log, "A-001", params_with({"a": 300.0}, wake=15.0)) == pytest.approx(15.0)


def _before_lunch(shifts: list[list[str | None]]) -> Log:
    """One counter, 5-minute calls, serving since 11:38; A-002…A-006 wait; A-007 at 11:40."""
    log = Log().schedule("08:20", {"1": (["a"], shifts)}).at("08:30", "counter_opened", counter="1", services=["a"])
    for i in range(1, 7):
        log.issue(f"11:{30 + i}", f"A-{i:03d}", "a")
    log.at("11:38", "called", ticket="A-001", counter="1")
    return log.issue("11:40", "A-007", "a")


def test_a_lunch_break_in_the_plan_lengthens_the_wait() -> None:
    # A-001 ends at 11:43; calls at 11:43, 11:48, 11:53, 11:58, then 12:03 and 12:08 — unless the
    # counter stops at 12:00 and comes back at 13:00.
    through = _wait(_before_lunch(ALL_DAY), "A-007")
    lunch = _wait(_before_lunch([["08:30", "12:00"], ["13:00", "17:00"]]), "A-007")
    assert through == pytest.approx(28 * MINUTE)  # 12:08
    assert lunch == pytest.approx(85 * MINUTE)  # 13:00 for A-006, 13:05 for A-007


def test_the_end_of_the_day_stops_a_counter_unless_it_is_needed() -> None:
    """Past its last shift a counter stops; tickets nobody else would call keep it on."""
    log = _before_lunch([["08:30", "11:50"]])
    assert _wait(log, "A-007") == pytest.approx(28 * MINUTE)  # it stays: nobody else calls `a`
    log = Log().schedule("08:20", {"1": (["a"], [["08:30", "11:50"]]), "2": (["a"], [["11:50", "17:00"]])})
    log.records += _before_lunch(ALL_DAY).records[1:]
    # Counter 1 calls at 11:43 and 11:48 and stops; counter 2 from 11:50: 11:50, 11:55, 12:00, 12:05.
    assert _wait(log, "A-007") == pytest.approx(25 * MINUTE)


def _sharing(a_waiting: int) -> Log:
    """Counter 1 calls `a` before `b` and frees in a minute; counter 2 calls only `b`, busy for
    15 more minutes. B-001 waits."""
    log = Log().schedule("08:20", {"1": (["a", "b"], ALL_DAY), "2": (["b"], ALL_DAY)})
    log.at("08:30", "counter_opened", counter="1", services=["a", "b"])
    log.at("08:30", "counter_opened", counter="2", services=["b"])
    log.issue("08:55", "A-001", "a").issue("08:56", "B-009", "b")
    log.at("09:00", "called", ticket="A-001", counter="1").at("09:00", "called", ticket="B-009", counter="2")
    for i in range(a_waiting):
        log.issue("09:03", f"A-{i + 2:03d}", "a")
    return log.issue("09:04", "B-001", "b")


def test_a_counter_serving_several_services_calls_them_by_priority() -> None:
    params = params_with({"a": 300.0, "b": 1200.0})
    assert _wait(_sharing(0), "B-001", params) == pytest.approx(1 * MINUTE)  # counter 1 at 09:05
    assert _wait(_sharing(2), "B-001", params) == pytest.approx(11 * MINUTE)  # after two `a`: 09:15
    assert _wait(_sharing(4), "B-001", params) == pytest.approx(16 * MINUTE)  # counter 2 frees first: 09:20


def test_a_ticket_of_a_higher_priority_taken_later_is_still_called_first() -> None:
    params = params_with({"a": 300.0, "b": 1200.0})
    log = _sharing(0)
    floor = log.floor()
    best = Best(params)
    (before,) = best.predict(floor, [floor.tickets["B-001"]])
    log.issue("09:04:10", "A-100", "a")
    floor = log.floor()
    (after,) = best.predict(floor, [floor.tickets["B-001"]])
    assert after.mean == pytest.approx(before.mean + 5 * MINUTE)


def test_a_call_in_progress_has_its_time_left_given_how_long_it_has_lasted() -> None:
    params = params_with({"a": 300.0})
    params.services["a"].calls = Durations.of([240.0, 300.0, 360.0] * 10)

    def wait(called: str) -> float:
        log = (
            Log().schedule("08:20", {"1": (["a"], ALL_DAY)}).at("08:30", "counter_opened", counter="1", services=["a"])
        )
        log.issue("08:50", "A-001", "a").at(called, "called", ticket="A-001", counter="1")
        return _wait(log.issue("09:00", "A-002", "a"), "A-002", params)

    assert wait("08:59:50") == pytest.approx(290.0)  # 10 s in: (230 + 290 + 350) / 3 left
    assert wait("08:54:10") == pytest.approx(10.0)  # 350 s in: only the longest calls are left


def test_one_pass_gives_every_waiting_ticket_what_it_gives_each_alone() -> None:
    floor = _sharing(4).floor()
    best = Best(params_with({"a": 300.0, "b": 1200.0}))
    waiting = floor.waiting()
    assert len(waiting) == 5
    assert best.predict(floor, waiting) == [best.predict(floor, [t])[0] for t in waiting]


def test_a_ticket_not_yet_taken_is_predicted_as_if_issued() -> None:
    log = _sharing(2)
    floor = log.floor()
    best = Best(params_with({"a": 300.0, "b": 1200.0}))
    with floor.hypothetical("b") as t:
        (new,) = best.predict(floor, [t])
    assert "\x00new" not in floor.tickets and len(floor.queues["b"]) == 1  # as it was
    log.issue("09:04", "B-002", "b")
    floor = log.floor()
    assert best.predict(floor, [floor.tickets["B-002"]])[0] == new


# -- simulated days ------------------------------------------------------------------------------
def simulated_day(config: OfficeConfig, day: date, seed: int, rush: bool = False) -> list[r.Event]:
    """A day of the demo's simulator, exported as `office export` writes it, read back."""
    office = Office(config)
    lines: list[str] = []

    def execute(command: Command, now: Any) -> Decision:
        decision = office.execute(command, now)
        lines.extend(event_log_line(e, config.id) for e in decision.events)
        return decision

    DaySimulation(config, day, seed=seed, rush=rush, office=office, execute=execute).run()
    return [e for line in lines if (e := read_record(json.loads(line))) is not None]


WEEKDAYS = [date(2027, 2, d) for d in (15, 16, 17, 18, 19, 22, 24, 25)]  # no public holiday among them


@pytest.fixture(scope="module")
def oizumi_days(oizumi: OfficeConfig) -> list[list[r.Event]]:
    return [simulated_day(oizumi, day, seed) for seed, day in enumerate(WEEKDAYS, 1)]


def _scores(history: list[list[r.Event]], tests: list[list[r.Event]], name: str) -> Any:
    predictor = train(name, [d for events in history for d in split_days(events)])
    rows, waits = [], {}
    for events in tests:
        rows += list(replay(events, predictor))
        waits.update(true_waits(events))
    return score(rows, waits).all


def test_on_simulated_days_best_is_calibrated_and_beats_the_baselines(oizumi_days: list[list[r.Event]]) -> None:
    history, tests = oizumi_days[:6], oizumi_days[6:]
    best = _scores(history, tests, "best")
    naive = _scores(history, tests, "naive")
    capacity = _scores(history, tests, "capacity")
    assert best.n > 300
    assert 0.65 <= best.coverage <= 0.92
    assert best.mse < 0.5 * naive.mse
    assert best.mse < 0.75 * capacity.mse  # a small office: four counters, much left to chance
    assert abs(best.bias) < 5 * MINUTE


def test_on_a_simulated_rush_day_best_beats_the_baselines(nerima: OfficeConfig) -> None:
    days = [simulated_day(nerima, date(2027, 3, d), seed, rush=True) for seed, d in enumerate((8, 9, 10, 11, 12), 1)]
    best = _scores(days[:4], days[4:], "best")
    naive = _scores(days[:4], days[4:], "naive")
    capacity = _scores(days[:4], days[4:], "capacity")
    assert best.mse < 0.5 * naive.mse
    assert best.mse < 0.5 * capacity.mse
    assert 0.6 <= best.coverage <= 0.95
