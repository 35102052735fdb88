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
from counterfloor.simulate import record_day
from office.config import OfficeConfig
from office.waittime import calibrate, forecast, replay, split_days, train
from office.waittime import records as r
from office.waittime.learn import Learner
from office.waittime.params import Durations
from office.waittime.predictors import Best
from office.waittime.records import read_record
from office.waittime.replay import calibration_days
from office.waittime.score import score, true_waits
from tests.test_waittime_baselines import ALL_DAY, Log, params_with

MINUTE = 60.0


def _wait(log: Log, ticket: str, params: Any = None, spread: float = 0.0) -> float:
    """The predicted wait; by default the path's own moment (spread 0: not averaged over the
    places around it), which these hand-built days work out by hand."""
    floor = log.floor()
    best = Best(params or params_with({"a": 300.0, "b": 300.0}))
    best.forecaster.spread = spread
    (p,) = best.predict(floor, [floor.tickets[ticket]])
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


def test_a_call_at_a_lunch_break_is_averaged_over_the_places_around_it() -> None:
    """On the path A-006 is called at 13:00, after the lunch break, one call after A-005 at 11:58:
    a day a little faster calls it before the break. Its forecast is averaged over the places
    around its own, so it lies between the two; where nothing changes (no break) the average of
    evenly spaced calls is the path's own moment, even past the last ticket (mirrored)."""
    lunch = _before_lunch([["08:30", "12:00"], ["13:00", "17:00"]])
    path = _wait(lunch, "A-006")
    averaged = _wait(lunch, "A-006", spread=forecast.SPREAD)
    assert path == pytest.approx(84 * MINUTE)  # issued 11:36, called 13:00
    assert 22 * MINUTE < averaged < path - 10 * MINUTE  # before the break it would be 11:58
    through = _before_lunch(ALL_DAY)
    for ticket in ("A-006", "A-007"):
        assert _wait(through, ticket, spread=forecast.SPREAD) == pytest.approx(_wait(through, ticket))


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
    lines = [event_log_line(e, config.id) for e in record_day(config, day, seed=seed, rush=rush).events]
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


# -- drift, the time of day, the kind of day ------------------------------------------------------
def _day_of_calls(day: str, minutes: float, saturday: bool = False) -> list[r.Event]:
    """One counter serving ten `a` tickets one after another, each call `minutes` long."""
    log = Log().schedule("08:20", {"1": (["a"], ALL_DAY)}).at("08:30", "counter_opened", counter="1", services=["a"])
    for i in range(1, 11):
        log.issue("08:40", f"A-{i:03d}", "a")
    t = 9 * 60.0
    for i in range(1, 11):
        clock = f"{int(t // 60):02d}:{int(t % 60):02d}:{round(t * 60) % 60:02d}"
        log.at(clock, "called", ticket=f"A-{i:03d}", counter="1")
        t += minutes
        clock = f"{int(t // 60):02d}:{int(t % 60):02d}:{round(t * 60) % 60:02d}"
        log.at(clock, "served", ticket=f"A-{i:03d}", counter="1")
    records = json.loads(json.dumps(log.records).replace("2027-03-15", day))
    if saturday:
        records[0]["periods"][0]["mode"] = "saturday"
    return [e for rec in records if (e := read_record(rec)) is not None]


def test_recent_days_weigh_more_in_the_service_times() -> None:
    """Service times drift: after ten days of 5-minute calls and ten of 10-minute ones, the
    learned figure is nearer 10 minutes than the plain mean of 7.5."""
    days = [_day_of_calls(f"2027-03-{d:02d}", 5.0) for d in range(1, 11)]
    days += [_day_of_calls(f"2027-04-{d:02d}", 10.0) for d in range(1, 11)]
    learner = Learner()
    for events in days:
        learner.day(events)
    occupation = learner.params().services["a"].occupation
    assert occupation > 9.0 * MINUTE  # the plain mean: 7.5 minutes; the latest days' level: 10


def _day_of_no_shows(day: str, absent_at: int) -> list[r.Event]:
    """Ten `a` tickets called at 10h and ten at 14h, each after a wait of 20 minutes; of each ten,
    `absent_at` (10h) or 10 − `absent_at` (14h) are no-shows (20 s at the counter; a service 55 s)."""
    log = Log().schedule("08:20", {"1": (["a"], ALL_DAY)}).at("08:30", "counter_opened", counter="1", services=["a"])
    for block, hour in enumerate((10, 14)):
        for i in range(10):
            n = 10 * block + i + 1
            issued, called = 3600 * hour - 1200 + 60 * i, 3600 * hour + 60 * i
            log.issue(_clock(issued), f"A-{n:03d}", "a")
            log.at(_clock(called), "called", ticket=f"A-{n:03d}", counter="1")
            absent = i < (absent_at if hour == 10 else 10 - absent_at)
            log.at(
                _clock(called + (20 if absent else 55)),
                "no_show" if absent else "served",
                ticket=f"A-{n:03d}",
                counter="1",
            )
    log.records.sort(key=lambda rec: rec["ts"])
    records = json.loads(json.dumps(log.records).replace("2027-03-15", day))
    return [e for rec in records if (e := read_record(rec)) is not None]


def _clock(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


def test_the_chance_of_a_no_show_depends_on_the_hour_of_the_call() -> None:
    """Calls after the same wait found nobody 8 times in 10 at 10h and 2 in 10 at 14h: the no-show
    chance, learned by wait, is scaled up at 10h and down at 14h."""
    learner = Learner()
    for d in range(1, 11):
        learner.day(_day_of_no_shows(f"2027-03-{d:02d}", 8))
    model = learner.params().services["a"]
    morning, afternoon = model.call(10, 1200.0, False), model.call(14, 1200.0, False)
    assert model.no_show_by_hour[10] > 1.3 > 0.7 > model.no_show_by_hour[14]
    assert morning[0] < afternoon[0]  # a no-show takes the counter less long than a service


def _miss(kind: str, hour: int, raw: float, actual: float) -> calibrate.Miss:
    return calibrate.Miss(kind, "a", hour, raw, actual)


def test_the_calibration_learns_the_bias_left_by_the_hour_of_issue() -> None:
    """Forecasts made at 10h came 30 % short, those at 14h 30 % long: the same raw forecast is
    published longer at 10h than at 14h, and each stays inside its own range."""
    misses = [_miss("office", 10, 1800.0, 1800.0 * 1.3 + dx) for dx in (-60.0, 0.0, 60.0) for _ in range(100)]
    misses += [_miss("office", 14, 1800.0, 1800.0 * 0.7 + dx) for dx in (-60.0, 0.0, 60.0) for _ in range(100)]
    cal = calibrate.fit(misses, 0.1, 0.9)
    morning, afternoon = cal.apply(1800.0, "a", "office", 10), cal.apply(1800.0, "a", "office", 14)
    assert morning[0] > 1.2 * 1800.0 > 0.8 * 1800.0 > afternoon[0]
    assert cal.apply(1800.0, "a", "office", None)[0] == pytest.approx(1800.0, rel=0.05)  # the bands' own: no bias


def test_a_saturday_has_its_own_hours() -> None:
    """On weekdays the 10h forecasts came short, on Saturdays long: each kind of day is corrected
    its own way, and a kind never seen gets no hour correction."""
    misses = [_miss("office", 10, 1800.0, 1800.0 * 1.3) for _ in range(300)]
    misses += [_miss("saturday", 10, 1800.0, 1800.0 * 0.8) for _ in range(300)]
    misses += [_miss("office", 14, 1800.0, 1800.0 * 0.8) for _ in range(300)]
    misses += [_miss("saturday", 14, 1800.0, 1800.0 * 1.3) for _ in range(300)]
    cal = calibrate.fit(misses, 0.1, 0.9)
    weekday, saturday = cal.apply(1800.0, "a", "office", 10)[0], cal.apply(1800.0, "a", "saturday", 10)[0]
    assert weekday > 1.15 * 1800.0
    assert saturday < 0.9 * 1800.0
    assert cal.apply(1800.0, "a", "holiday", 10)[0] == pytest.approx(1800.0 * 1.05, rel=0.02)  # the bands' bias


def test_a_saturday_has_its_own_range() -> None:
    """Weekday forecasts missed by ±10 %, Saturday ones by ±40 %: a Saturday's range is wider."""
    spread = (-0.1, -0.05, 0.0, 0.05, 0.1)
    misses = [_miss("office", 10, 1800.0, 1800.0 * (1 + dx)) for dx in spread for _ in range(200)]
    misses += [_miss("saturday", 10, 1800.0, 1800.0 * (1 + 4 * dx)) for dx in spread for _ in range(60)]
    cal = calibrate.fit(misses, 0.1, 0.9)
    _, low, high = cal.apply(1800.0, "a", "office", 10)
    _, sat_low, sat_high = cal.apply(1800.0, "a", "saturday", 10)
    assert high - low < 0.3 * 1800.0 < 0.6 * 1800.0 < sat_high - sat_low


def test_the_calibration_replays_enough_saturdays() -> None:
    """Among 24 past days with a Saturday every sixth, the latest 12 hold two Saturdays; the
    calibration replays the latest four."""
    days = [_day_of_calls(f"2027-03-{d:02d}", 5.0, saturday=d % 6 == 0) for d in range(1, 25)]
    chosen = calibration_days(days)
    saturdays = [i for i in chosen if i % 6 == 5]
    assert set(range(12, 24)) <= chosen
    assert sorted(saturdays) == [5, 11, 17, 23]
