"""The congestion forecast's accuracy benchmark (issue 16): the forecast of the public page
(office/congestion.py) against "same hour last week", on held-out simulated weeks.

    uv run python -m bench.run --only forecast        # both offices, every scenario (~1–2 min)
    uv run python -m bench.forecast_bench --quick     # a smoke run: Oizumi's rush onset only
    uv run python -m bench.forecast_bench --seed-offset 1000   # the same on other simulated histories

Owns the simulated history, the scenarios and the scores. History: the simulator (profiles v1,
the board run by `CapacityEstimator`, a fixed seed per office) over last year's February–June
and this year's December–June, every day from 15 March to 15 April simulated as a moving-season
day (`rush=True`; the simulator knows no dates, so the season is the benchmark's). Oizumi opens
its temporary rush Saturdays last year too (the example config lists this year's only). Each
test week is forecast from the days before its Monday (a week ahead, as the page shows the week),
and the baseline too looks only before that Monday. Scored per (day, service, opening hour):
absolute error of the typical wait (the median issue → first call of the hour's called tickets;
hours where nobody was called are skipped) and of the tickets issued; the band's coverage.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from datetime import time as clock
from functools import cache

from bench.common import ROOT_DIR, Result
from counterfloor.simulate import open_days, record_day
from office.calendar import plan_for
from office.config import CalendarException, Hours, OfficeConfig, Text, load_config
from office.congestion import (
    DayStats,
    History,
    HourForecast,
    after_closure,
    day_stats,
    forecast_day,
    same_hour_last_week,
)
from office.waittime.records import from_events

RUSH = ((3, 15), (4, 15))  # the moving season, inclusive, every year
GOAL = 0.8  # forecast MAE at most this share of the baseline's where history can know better
Forecaster = Callable[[History, OfficeConfig, str, date], list[HourForecast]]


@dataclass(frozen=True)
class Office:
    key: str
    config: str
    seeds: tuple[int, ...]  # each seed a separate simulated history: more test days, less chance
    extra_saturdays: tuple[date, ...] = ()  # last year's temporary Saturdays (the config has this year's)


OFFICES = {
    "nerima": Office("nerima", "examples/nerima.toml", (1601, 1611, 1621)),
    "oizumi": Office(
        "oizumi", "examples/oizumi.toml", (1602, 1612, 1622), (date(2026, 3, 28), date(2026, 4, 4), date(2026, 4, 11))
    ),
}
HISTORY = ((date(2026, 2, 2), date(2026, 6, 30)), (date(2026, 12, 1), date(2027, 6, 19)))
QUICK_HISTORY = ((date(2026, 2, 2), date(2026, 4, 30)), (date(2027, 2, 1), date(2027, 3, 27)))


def _week(monday: date) -> list[date]:
    return [monday + timedelta(days=i) for i in range(6)]


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    days: Callable[[OfficeConfig], list[date]]  # the test days (open ones are kept)
    goal: bool  # where history by hour can know better than last week


def _after_holidays(config: OfficeConfig) -> list[date]:
    """Days after a closure, or whose same day last week was closed (the baseline steps back)."""
    weeks = [d for m in (date(2027, 1, 4), date(2027, 1, 11), date(2027, 5, 3), date(2027, 5, 10)) for d in _week(m)]
    return [d for d in weeks if after_closure(config, d) or not plan_for(config, d - timedelta(days=7)).is_open]


SCENARIOS = (
    Scenario("onset", "rush onset (week of 15 March)", lambda c: _week(date(2027, 3, 15)), True),
    Scenario("end", "rush end (week of 19 April)", lambda c: _week(date(2027, 4, 19)), True),
    Scenario("holidays", "days after a holiday (New Year, January, Golden Week)", _after_holidays, True),
    Scenario(
        "saturdays",
        "temporary rush Saturdays (Oizumi)",
        lambda c: [date(2027, 3, 27), date(2027, 4, 3), date(2027, 4, 10)] if c.saturday is None else [],
        True,
    ),
    Scenario(
        "ordinary",
        "ordinary weeks (May–June)",
        lambda c: [d for m in (date(2027, 5, 24), date(2027, 6, 7), date(2027, 6, 14)) for d in _week(m)],
        False,
    ),
)
QUICK_SCENARIOS = ("onset", "saturdays")


def in_rush(day: date) -> bool:
    return RUSH[0] <= (day.month, day.day) <= RUSH[1]


def office_config(key: str) -> OfficeConfig:
    """The office's config, with last year's extra Saturdays."""
    office = OFFICES[key]
    return _with_saturdays(load_config(ROOT_DIR / office.config), office.extra_saturdays)


@cache
def simulated(key: str, seed: int, quick: bool) -> tuple[DayStats, ...]:
    """The office's simulated days (history and test days) with one seed."""
    config = office_config(key)
    days: list[DayStats] = []
    for first, last in QUICK_HISTORY if quick else HISTORY:
        for d in open_days(config, first, (last - first).days + 1):
            if d > last:
                break
            recorded = record_day(config, d, seed=seed, rush=in_rush(d))
            days += day_stats(from_events(recorded.events, config.id))
    return tuple(days)


def _with_saturdays(config: OfficeConfig, saturdays: tuple[date, ...]) -> OfficeConfig:
    if not saturdays:
        return config
    extra = CalendarException(
        dates=saturdays,
        closed=False,
        mode="saturday",
        hours=Hours(clock(9, 0), clock(17, 0)),
        reason=Text("繁忙期の臨時土曜開庁", "Temporary Saturday opening for the moving season"),
    )
    return replace(config, exceptions=(*config.exceptions, extra))


# -- scores -------------------------------------------------------------------------------------
@dataclass
class Score:
    waits: int = 0
    hours: int = 0
    wait_err: dict[str, float] = field(default_factory=lambda: {"forecast": 0.0, "baseline": 0.0})
    arrival_err: dict[str, float] = field(default_factory=lambda: {"forecast": 0.0, "baseline": 0.0})
    covered: int = 0

    def add(self, actual: DayStats, service: str, forecast: HourForecast, baseline: HourForecast) -> None:
        key = (service, forecast.hour)
        n = actual.arrivals.get(key, 0)
        self.hours += 1
        self.arrival_err["forecast"] += abs(forecast.arrivals - n)
        self.arrival_err["baseline"] += abs(baseline.arrivals - n)
        wait = actual.waits.get(key)
        if wait is None:
            return
        self.waits += 1
        self.wait_err["forecast"] += abs((forecast.wait_s or 0.0) - wait)
        self.wait_err["baseline"] += abs((baseline.wait_s or 0.0) - wait)
        low, high = forecast.wait_low_s or 0.0, forecast.wait_high_s or 0.0
        self.covered += low <= wait <= high

    def wait_mae_min(self, who: str) -> float:
        return self.wait_err[who] / self.waits / 60 if self.waits else float("nan")

    def arrival_mae(self, who: str) -> float:
        return self.arrival_err[who] / self.hours if self.hours else float("nan")


def score(config: OfficeConfig, days: Sequence[DayStats], tests: Sequence[date], out: Score) -> Score:
    """Every test day's open hours, forecast from the days before its week's Monday."""
    history = History(days)
    for d in tests:
        actual = history.get(d)
        if actual is None:  # closed, or not simulated
            continue
        past = history.before(d - timedelta(days=d.weekday()))
        for service in config.services:
            forecast = forecast_day(past, config, service.id, d)
            baseline = same_hour_last_week(past, config, service.id, d)
            for f, b in zip(forecast, baseline, strict=True):
                out.add(actual, service.id, f, b)
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def run(log: list[str], quick: bool = False, seed_offset: int = 0) -> list[Result]:
    """Every scenario of both offices (`quick`: the smoke run); `seed_offset` is added to every
    office's seeds, to check that a figure is not one history's luck."""
    results: list[Result] = []
    rows = [
        "| office | scenario | hours (with a wait) | wait MAE forecast / last week (min) | ratio | "
        "tickets/hour MAE forecast / last week | ratio | band 10–90 % holds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("oizumi",) if quick else tuple(OFFICES):
        started = time.perf_counter()
        config = office_config(key)
        seeds = tuple(s + seed_offset for s in (OFFICES[key].seeds[:1] if quick else OFFICES[key].seeds))
        histories = [simulated(key, seed, quick) for seed in seeds]
        built = time.perf_counter() - started
        for scenario in SCENARIOS:
            if quick and scenario.key not in QUICK_SCENARIOS:
                continue
            tests = scenario.days(config)
            if not tests:
                continue
            s = Score()
            for days in histories:
                score(config, days, tests, s)
            if not s.waits:
                continue
            wait_ratio = _ratio(s.wait_mae_min("forecast"), s.wait_mae_min("baseline"))
            arrival_ratio = _ratio(s.arrival_mae("forecast"), s.arrival_mae("baseline"))
            rows.append(
                f"| {key} | {scenario.name} | {s.hours} ({s.waits}) | "
                f"{s.wait_mae_min('forecast'):.1f} / {s.wait_mae_min('baseline'):.1f} | {wait_ratio:.2f} | "
                f"{s.arrival_mae('forecast'):.2f} / {s.arrival_mae('baseline'):.2f} | {arrival_ratio:.2f} | "
                f"{s.covered / s.waits:.0%} |"
            )
            results.append(
                Result(
                    name=f"forecast: {key}, {scenario.name}: hourly wait MAE",
                    measured=f"{s.wait_mae_min('forecast'):.1f} min",
                    baseline=f"{s.wait_mae_min('baseline'):.1f} min (same hour last week)",
                    ratio=f"{wait_ratio:.2f}",
                    goal=f"≤ {GOAL}" if scenario.goal else "reported",
                    met=wait_ratio <= GOAL if scenario.goal else None,
                )
            )
        n = sum(len(days) for days in histories)
        named = ", ".join(map(str, seeds))
        log.append(f"forecast: {key}: {n} simulated days (seeds {named}) in {built:.0f} s, history and test days")
    log.extend(rows)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.forecast_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: Oizumi, a few weeks")
    parser.add_argument("--seed-offset", type=int, default=0, help="added to every office's seeds (other histories)")
    args = parser.parse_args(argv)
    log: list[str] = []
    started = time.perf_counter()
    results = run(log, quick=args.quick, seed_offset=args.seed_offset)
    for res in results:
        print(f"{res.name}: {res.measured} vs {res.baseline}: ratio {res.ratio} (goal {res.goal})")
    print("\n".join(log))
    print(f"took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
