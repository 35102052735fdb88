"""The simulated office days behind `counterfloor sim` and the wait-time benchmark: hour-of-day
service times and their drift across days, residents who walk away on the board's estimate, the
Saturday shape, day-to-day variation, and the frozen profiles (docs/simulation.md). The demo's
day itself (volumes, lunch dip, shifts) is checked in tests/test_demo.py."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from counterfloor.arrivals import ServiceTimes, drift_factor, generate_arrivals
from counterfloor.cli import event_log_line
from counterfloor.simulate import (
    PROFILES_VERSION,
    WALK_SECONDS,
    DaySimulation,
    RecordedDay,
    open_days,
    profiles_fingerprint,
    record_day,
    simulate_day,
)
from office import events as ev
from office.calendar import plan_for
from office.config import OfficeConfig
from office.estimate import CapacityEstimator, WaitRange
from office.model import Office
from office.state import OfficeState

from .conftest import ROOT

ORDINARY = date(2027, 6, 15)  # a Tuesday with no holiday
WALK_MEAN = sum(WALK_SECONDS) / 2  # a call's walk to the counter is inside served.ts − called.ts


def _records(day: RecordedDay, office: str) -> list[dict[str, Any]]:
    """The day as the event-log lines `counterfloor sim` writes, read back."""
    return [json.loads(event_log_line(e, office)) for e in day.events]


def _service_times(records: Iterable[dict[str, Any]], service: str) -> list[tuple[datetime, float]]:
    """(call time, served.ts − that call's ts) of the tickets of `service` never transferred."""
    issued_as: dict[str, str] = {}
    transferred: set[str] = set()
    last_call: dict[str, datetime] = {}
    out: list[tuple[datetime, float]] = []
    for r in records:
        if r["type"] == "ticket_issued":
            issued_as[r["ticket"]] = r["service"]
        elif r["type"] == "transferred":
            transferred.add(r["ticket"])
        elif r["type"] in ("called", "recalled"):
            last_call[r["ticket"]] = datetime.fromisoformat(r["ts"])
        elif r["type"] == "served" and issued_as[r["ticket"]] == service and r["ticket"] not in transferred:
            called = last_call[r["ticket"]]
            out.append((called, (datetime.fromisoformat(r["ts"]) - called).total_seconds()))
    return out


# -- service times: hour of day and drift --------------------------------------------------------
def test_certificates_take_longer_in_the_afternoon_in_the_data(nerima: OfficeConfig) -> None:
    """The hour profile shows in the event logs: certificates served from 14:00 take longer than
    those from 09:00, by the profile's ratio (plus the walk to the counter both include)."""
    days = open_days(nerima, date(2027, 6, 14), 5)
    by_hour: dict[int, list[float]] = {9: [], 14: []}
    expected: dict[int, list[float]] = {9: [], 14: []}
    for day in days:
        times = ServiceTimes(nerima, day, seed=1)
        for called, seconds in _service_times(_records(record_day(nerima, day, seed=1), "nerima"), "certificate"):
            if called.hour in by_hour:
                by_hour[called.hour].append(seconds)
                expected[called.hour].append(times.mean_seconds("certificate", called.hour * 3600) + WALK_MEAN)
    assert min(len(v) for v in by_hour.values()) > 150, {h: len(v) for h, v in by_hour.items()}
    measured = statistics.fmean(by_hour[14]) / statistics.fmean(by_hour[9])
    profile = statistics.fmean(expected[14]) / statistics.fmean(expected[9])
    assert profile > 1.15  # what the profile says, walk included
    assert measured == pytest.approx(profile, rel=0.08)


def test_service_times_drift_slowly_across_days(nerima: OfficeConfig) -> None:
    """Each service's mean moves from day to day: smoothly (a few % a day at most), by tens of %
    over a season, differently per seed and service; 1 April's new staff are slower."""
    year = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
    factors = [drift_factor(1, "nerima", "certificate", d) for d in year]
    steps = [abs(b / a - 1) for a, b in itertools.pairwise(factors)]
    assert max(steps[:89] + steps[90:]) < 0.03  # 31 March → 1 April is the staff rotation
    assert max(factors) / min(factors) > 1.2
    assert drift_factor(2, "nerima", "certificate", ORDINARY) != drift_factor(1, "nerima", "certificate", ORDINARY)
    assert drift_factor(1, "nerima", "move", ORDINARY) != drift_factor(1, "nerima", "certificate", ORDINARY)
    rotation = drift_factor(1, "nerima", "move", date(2027, 4, 1)) / drift_factor(
        1, "nerima", "move", date(2027, 3, 31)
    )
    assert rotation > 1.08


def test_the_drift_shows_in_the_data(nerima: OfficeConfig) -> None:
    """Days whose drift makes certificates slow have slower certificates in the event logs than
    days whose drift makes them fast, by about the drift's ratio."""
    candidates = open_days(nerima, date(2027, 6, 1), 60)
    by_drift = sorted((drift_factor(1, "nerima", "certificate", d), d) for d in candidates)
    fast, slow = by_drift[:3], by_drift[-3:]
    assert slow[0][0] / fast[-1][0] > 1.15

    def mean_seconds(days: list[tuple[float, date]]) -> float:
        return statistics.fmean(
            s
            for _, d in days
            for _, s in _service_times(_records(record_day(nerima, d, seed=1), "nerima"), "certificate")
        )

    measured = mean_seconds(slow) / mean_seconds(fast)
    drift = statistics.fmean(f for f, _ in slow) / statistics.fmean(f for f, _ in fast)
    assert measured > 1.1
    assert measured == pytest.approx(drift, rel=0.1)


def test_a_service_time_draw_has_the_profiles_mean(nerima: OfficeConfig) -> None:
    times = ServiceTimes(nerima, ORDINARY, seed=1)
    rng = random.Random(5)
    for service, hour in (("certificate", 9), ("move", 17), ("payment", 11)):
        at = hour * 3600 + 600
        draws = [times.draw(service, at, rng.gauss(0.0, 1.0)) for _ in range(20_000)]
        assert statistics.fmean(draws) == pytest.approx(times.mean_seconds(service, at), rel=0.02)
        logs = [math.log(v) for v in draws]
        assert statistics.stdev(logs) == pytest.approx(times.sigma(service), rel=0.05)


# -- residents who walk away on the board's estimate ------------------------------------------------
class _Board:
    """An estimator that always shows the same range."""

    def __init__(self, low: int, high: int) -> None:
        self.range = WaitRange.of_minutes(low, high)

    def estimate(
        self, state: OfficeState, service: str, ahead: int, now: datetime, ticket: str | None = None
    ) -> WaitRange:
        return self.range


def test_residents_walk_away_on_the_boards_estimate(nerima: OfficeConfig) -> None:
    """The same residents, two boards: one showing no wait keeps everyone, one showing five hours
    (0–600 min: never a cut-off) sends home those who find a queue (with nobody waiting for their
    service, nobody reads the board)."""
    calm = record_day(nerima, ORDINARY, estimator=_Board(0, 0))
    grim = record_day(nerima, ORDINARY, estimator=_Board(0, 600))
    assert calm.summary.residents == grim.summary.residents  # the same arrivals
    assert calm.summary.walked_away == 0
    assert grim.summary.walked_away > 0.15 * grim.summary.residents
    issued = [sum(e.TYPE == "ticket_issued" for e in d.events) for d in (calm, grim)]
    assert issued[0] > issued[1] + 0.15 * grim.summary.residents


class _Seconds(_Board):
    def __init__(self, p10_s: float, p90_s: float) -> None:
        self.range = WaitRange((p10_s + p90_s) / 2, p10_s, p90_s)


def test_a_wait_is_in_estimate_against_the_range_before_its_minutes_were_rounded(nerima: OfficeConfig) -> None:
    """A ticket that printed "0 min" (p90 20 s) called after 12 s was called as it said: the
    summary counts waits inside p10–p90 in seconds, and beside it the waits that, rounded to whole
    minutes as the ticket's ends are, fall in the printed range. Neither is the wait in seconds
    against the rounded ends (which counts that 12 s as a miss)."""
    day = record_day(nerima, ORDINARY, estimator=_Seconds(0, 20))
    issued = {e.ticket: e.ts for e in day.events if isinstance(e, ev.TicketIssued)}
    waits: dict[str, float] = {}
    for e in day.events:
        if isinstance(e, ev.Called) and e.ticket not in waits:
            waits[e.ticket] = (e.ts - issued[e.ticket]).total_seconds()
    short = [w for w in waits.values() if 0 < w <= 20]
    assert short  # clerks take seconds to call even at an open counter
    assert day.summary.within_estimate == pytest.approx(sum(w <= 20 for w in waits.values()) / len(waits))
    assert day.summary.within_printed_minutes == pytest.approx(sum(w <= 30 for w in waits.values()) / len(waits))
    strict = sum(w == 0 for w in waits.values()) / len(waits)  # 0 <= w/60 <= 0
    assert day.summary.within_estimate > strict


def test_the_default_board_is_the_capacity_estimator(nerima: OfficeConfig) -> None:
    sim = DaySimulation(nerima, ORDINARY)
    assert type(sim.office.estimator) is CapacityEstimator
    assert record_day(nerima, ORDINARY, estimator=CapacityEstimator(nerima)) == record_day(nerima, ORDINARY)
    board = _Board(0, 0)
    assert DaySimulation(nerima, ORDINARY, estimator=board).office.estimator is board
    with pytest.raises(ValueError, match="estimator"):
        DaySimulation(nerima, ORDINARY, office=Office(nerima), estimator=board)


# -- days -------------------------------------------------------------------------------------------
def test_saturdays_have_their_own_shape(nerima: OfficeConfig) -> None:
    """No lunch-break crowd on a Saturday: 12:00–13:00 is nearly as busy as the late morning,
    where a weekday halves."""
    saturday, tuesday = date(2027, 6, 19), ORDINARY
    ratios = {}
    for day in (saturday, tuesday):
        per_hour: Counter[int] = Counter()
        for seed in (1, 2, 3):
            per_hour.update(a.at // 3600 for a in DaySimulation(nerima, day, seed=seed).arrivals)
        ratios[day] = per_hour[12] / per_hour[10]
    assert ratios[saturday] > 0.65
    assert ratios[tuesday] < 0.6


def test_days_vary_more_than_chance(nerima: OfficeConfig) -> None:
    """Tuesdays of the same plan bring crowds that vary more than Poisson chance alone would."""
    tuesdays = [d for d in (date(2027, 6, 1) + timedelta(weeks=i) for i in range(20)) if plan_for(nerima, d).is_open]
    counts = [
        len(generate_arrivals(nerima, plan_for(nerima, d), random.Random(f"1-{d.isoformat()}"), False))
        for d in tuesdays
    ]
    assert len(counts) >= 15
    assert statistics.variance(counts) > 2.5 * statistics.fmean(counts)


def test_open_days_skip_closed_ones(nerima: OfficeConfig, oizumi: OfficeConfig) -> None:
    # Sunday 21 March, then the system-update closure on Monday 22.
    assert open_days(nerima, date(2027, 3, 19), 3) == [date(2027, 3, 19), date(2027, 3, 20), date(2027, 3, 23)]
    # Oizumi: no Saturdays but the temporary ones of the moving season.
    assert open_days(oizumi, date(2027, 3, 26), 2) == [date(2027, 3, 26), date(2027, 3, 27)]
    assert open_days(oizumi, date(2027, 6, 18), 2) == [date(2027, 6, 18), date(2027, 6, 21)]


def test_a_day_does_not_depend_on_the_days_simulated_before_it(oizumi: OfficeConfig) -> None:
    first = record_day(oizumi, ORDINARY, seed=7)
    record_day(oizumi, ORDINARY - timedelta(days=1), seed=7)
    assert record_day(oizumi, ORDINARY, seed=7) == first
    assert simulate_day(oizumi, ORDINARY, seed=7) == first.summary


def test_tokens_differ_from_day_to_day(oizumi: OfficeConfig) -> None:
    hashes = [
        {r["token_hash"] for r in _records(record_day(oizumi, d, seed=1), "oizumi") if r["type"] == "ticket_issued"}
        for d in (ORDINARY, ORDINARY + timedelta(days=1))
    ]
    assert hashes[0] and hashes[1] and not hashes[0] & hashes[1]


# -- the frozen profiles --------------------------------------------------------------------------
def test_the_profiles_are_frozen_and_documented() -> None:
    """Any change to a profile number changes the fingerprint: it needs a new PROFILES_VERSION,
    and docs/simulation.md must say both (predictors are never tuned by changing the profiles)."""
    doc = (ROOT / "docs" / "simulation.md").read_text(encoding="utf-8")
    assert PROFILES_VERSION == "v1"
    assert f"profiles {PROFILES_VERSION}" in doc
    documented = re.search(r"`([0-9a-f]{64})`", doc)
    assert documented is not None, "docs/simulation.md gives no fingerprint"
    assert (
        profiles_fingerprint()
        == documented.group(1)
        == ("b1671c39ce67e4129bd7088596be819d5cff9096a444d860b9fcf03eb9fdc3b0")
    ), "a profile number changed: give the profiles a new version and document it in docs/simulation.md"
