"""The baselines of the wait-time predictor, each on a tiny hand-built day whose answer is known
by hand: the industry standard (naive), the office's CapacityEstimator fed from the log,
head-of-line and last-to-enter-service delays, and Erlang C."""

from __future__ import annotations

import math
from typing import Any

import pytest

from office.waittime.floor import Floor
from office.waittime.params import MINUTES, WAIT_BUCKETS, Params, neutral_service
from office.waittime.predictors import Capacity, ErlangC, HeadOfLine, LastToEnterService, Naive, erlang_c
from office.waittime.records import Event, read_record

DAY = "2027-03-15"


class Log:
    """A hand-built day of public event-log records (no token hashes: they are not needed)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def at(self, clock: str, type_: str, **fields: Any) -> Log:
        ts = f"{DAY}T{clock if clock.count(':') == 2 else clock + ':00'}.000+09:00"
        self.records.append({"v": 1, "seq": len(self.records) + 1, "ts": ts, "office": "t", "type": type_, **fields})
        return self

    def schedule(self, clock: str, counters: dict[str, tuple[list[str], list[list[str | None]]]]) -> Log:
        services = sorted({s for svc, _ in counters.values() for s in svc})
        return self.at(
            clock,
            "schedule",
            date=DAY,
            new_day=True,
            counters=[{"counter": c, "services": svc, "shifts": shifts} for c, (svc, shifts) in counters.items()],
            closes="19:00",
            periods=[{"mode": "office", "from": "08:30", "to": "19:00", "services": services}],
        )

    def issue(self, clock: str, ticket: str, service: str) -> Log:
        return self.at(clock, "ticket_issued", ticket=ticket, service=service, number=int(ticket.split("-")[1]))

    def events(self) -> list[Event]:
        return [e for rec in self.records if (e := read_record(rec)) is not None]

    def floor(self) -> Floor:
        floor = Floor()
        for e in self.events():
            floor.apply(e)
        return floor


def params_with(means: dict[str, float], *, wake: float = 0.0, arrivals_per_minute: float = 0.0) -> Params:
    """Figures as if learned: each service's calls take exactly its mean, nobody fails to come,
    no turnaround; tickets arrive at a steady rate from 08:30 (0: none expected)."""
    params = Params(turnaround_all=0.0, wake=wake, start_lag=0.0)
    start = 8 * 60 + 30
    cumulative = [max(0, m - start) * arrivals_per_minute for m in range(MINUTES + 1)]
    for sid, mean in means.items():
        m = neutral_service()
        m.occupation, m.occupation_by_hour = mean, [mean] * 24
        m.occupation_cv2 = m.no_show_cv2 = 0.0
        m.p_no_show = [0.0] * WAIT_BUCKETS
        m.p_no_show_requeued = [0.0] * WAIT_BUCKETS
        m.arrivals = list(cumulative)
        params.services[sid] = m
    return params


ALL_DAY = [["08:30", "17:00"]]


def two_counters_three_waiting() -> Log:
    """Counters 1 and 2 call only `a`; both serving since 09:00; A-003…A-005 wait; A-006 is
    issued at 09:10, with three people before it."""
    log = Log().schedule("08:20", {"1": (["a"], ALL_DAY), "2": (["a"], ALL_DAY)})
    log.at("08:30", "counter_opened", counter="1", services=["a"]).at(
        "08:30", "counter_opened", counter="2", services=["a"]
    )
    log.issue("08:55", "A-001", "a").issue("08:58", "A-002", "a")
    log.at("09:00", "called", ticket="A-001", counter="1").at("09:02", "called", ticket="A-002", counter="2")
    log.issue("09:00:30", "A-003", "a").issue("09:01", "A-004", "a").issue("09:05", "A-005", "a")
    return log.issue("09:10", "A-006", "a")


def test_naive_is_people_ahead_times_mean_service_over_open_counters() -> None:
    floor = two_counters_three_waiting().floor()
    (p,) = Naive(params_with({"a": 300.0})).predict(floor, [floor.tickets["A-006"]])
    assert p.mean == pytest.approx(3 * 300 / 2)
    assert (p.p10, p.p90) == pytest.approx((0.75 * 450, 1.3 * 450))


def test_head_of_line_is_the_wait_so_far_of_the_first_in_the_queue() -> None:
    floor = two_counters_three_waiting().floor()
    (p,) = HeadOfLine().predict(floor, [floor.tickets["A-006"]])
    assert p.mean == pytest.approx(9 * 60 + 30)  # A-003, issued 09:00:30


def test_last_to_enter_service_is_the_wait_of_the_last_ticket_called() -> None:
    floor = two_counters_three_waiting().floor()
    (p,) = LastToEnterService().predict(floor, [floor.tickets["A-006"]])
    assert p.mean == pytest.approx(4 * 60)  # issued 08:58, called 09:02


def test_capacity_is_the_office_s_own_estimator_on_the_logged_plan() -> None:
    """(ahead + ½) × 5 minutes of work at 2 counters: 8.75 min; the office prints 0.75–1.3×,
    in whole minutes."""
    floor = two_counters_three_waiting().floor()
    (p,) = Capacity(params_with({"a": 300.0})).predict(floor, [floor.tickets["A-006"]])
    assert p.mean == pytest.approx(8.75 * 60)
    assert (p.p10, p.p90) == pytest.approx((6 * 60, 12 * 60))


def test_capacity_follows_a_schedule_that_replaces_the_plan() -> None:
    """A later schedule with counter 2 gone for the day: the same work at one counter."""
    log = two_counters_three_waiting()
    log.at(
        "09:10:30",
        "schedule",
        date=DAY,
        new_day=False,
        counters=[{"counter": "1", "services": ["a"], "shifts": ALL_DAY}],
        closes="19:00",
        periods=[],
    )
    floor = log.floor()
    floor.counters["2"].status = 0  # and it closed
    (p,) = Capacity(params_with({"a": 300.0})).predict(floor, [floor.tickets["A-006"]])
    assert p.mean == pytest.approx(30 + 17.5 * 60)  # issued half a minute before the new plan


def test_erlang_c_is_the_textbook_figure() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


def test_erlang_c_wait_with_the_learned_rates() -> None:
    """One counter, a ticket every 10 minutes, 5 minutes each: M/M/1 at ρ = ½ waits
    ρ/(μ − λ) = 300 s on average, and P(W > x) = ρ·e^(−(μ−λ)x)."""
    log = Log().schedule("08:20", {"1": (["a"], ALL_DAY)}).at("08:30", "counter_opened", counter="1", services=["a"])
    for i, clock in enumerate(("08:40", "08:50", "09:00", "09:10"), 1):
        log.issue(clock, f"A-{i:03d}", "a")
    floor = log.floor()
    (p,) = ErlangC(params_with({"a": 300.0}, arrivals_per_minute=0.1)).predict(floor, [floor.tickets["A-004"]])
    assert p.mean == pytest.approx(300.0, rel=1e-6)
    assert p.p10 == 0.0
    assert p.p90 == pytest.approx(600 * math.log(5), rel=1e-6)


def test_a_ticket_already_waiting_is_predicted_from_its_issue() -> None:
    floor = two_counters_three_waiting().floor()
    t = floor.tickets["A-003"]  # waited 9.5 minutes, none ahead
    (p,) = Naive(params_with({"a": 300.0})).predict(floor, [t])
    assert p.mean == pytest.approx(9.5 * 60)
