"""The oracle behind the accuracy benchmark (counterfloor/oracle.py, bench/accuracy.py): a smoke
run. On a floor where nothing is left to chance its mean is the wait worked out by hand; on a
simulated day its Monte-Carlo error is finite and shrinks with more draws; and it answers from
the log before the ticket only. The full run is `python -m bench.run --only accuracy`."""

from __future__ import annotations

import math
from datetime import date, datetime, time

import pytest

from counterfloor import arrivals, simulate
from counterfloor.arrivals import Demand, ServiceTimeProfile
from counterfloor.oracle import oracle_waits
from counterfloor.simulate import record_day
from office import events as ev
from office.config import OfficeConfig, parse_config
from office.model import CallNext, Command, IssueTicket, Office, OpenCounter, StartDay

DAY = date(2027, 6, 15)  # a Tuesday with no holiday

ONE_COUNTER = """
[office]
id = "one"
name = { ja = "一窓口", en = "One counter" }
timezone = "Asia/Tokyo"
public_base_url = "https://queue.example.jp/one"

[hours]
weekday = { from = "08:30", to = "17:00" }

[[services]]
id = "x"
prefix = "X"
name = { ja = "手続", en = "Business" }
typical_minutes = 5

[[counters]]
id = "1"
name = { ja = "1番窓口", en = "Counter 1" }
services = ["x"]
shifts = [{ periods = ["office"], from = "08:30", to = "17:00" }]
"""


def _log(config: OfficeConfig, steps: list[tuple[str, Command]]) -> list[ev.Event]:
    office = Office(config)
    events: list[ev.Event] = []
    for clock, command in steps:
        at = datetime.combine(DAY, time.fromisoformat(clock), tzinfo=config.tz)
        events += office.execute(command, at).events
    return events


def test_on_a_floor_without_chance_the_mean_is_the_wait_worked_out_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """One counter; every service exactly 5 minutes; a 30 s walk to the counter and 20 s before
    the next call; everyone answers and nobody leaves; nobody else comes."""
    monkeypatch.setattr(arrivals, "RESIDENTS_PER_COUNTER_HOUR", 0.0)
    monkeypatch.setattr(arrivals, "UNKNOWN_SHORT_SERVICE_TIME", ServiceTimeProfile(sigma=0.0, hours={}))
    monkeypatch.setattr(arrivals, "UNKNOWN_SHORT_DEMAND", Demand(share=0.1, rush=1.0, patience_minutes=10_000))
    monkeypatch.setattr(arrivals, "DRIFT_TERMS", ())
    monkeypatch.setattr(arrivals, "NEW_STAFF_SLOWDOWN", 0.0)
    monkeypatch.setattr(arrivals, "P_WRONG_SERVICE", 0.0)
    monkeypatch.setattr(simulate, "WALK_SECONDS", (30, 30))
    monkeypatch.setattr(simulate, "STAFF_REACTION_SECONDS", (20, 20))
    monkeypatch.setattr(simulate, "WAKE_SECONDS", (10, 10))
    monkeypatch.setattr(simulate, "P_MISS_FIRST_CALL", 0.0)
    config = parse_config(ONE_COUNTER)
    events = _log(
        config,
        [
            ("08:20", StartDay()),
            ("08:30", OpenCounter("1")),
            ("08:50", IssueTicket("x", "t1")),
            ("08:51", IssueTicket("x", "t2")),
            ("08:52", IssueTicket("x", "t3")),
            ("09:00", CallNext("1")),
            ("09:01", IssueTicket("x", "t4")),
        ],
    )
    assert [e.ticket for e in events if isinstance(e, ev.Called)] == ["X-001"]
    # X-001 at the counter 09:00:30–09:05:30; X-002 called 09:05:50, served 09:06:20–09:11:20;
    # X-003 called 09:11:40, served 09:12:10–09:17:10; X-004 called at 09:17:30.
    (answer,) = oracle_waits(config, DAY, events, {"X-004"}, seed=1, draws=6).values()
    assert answer.mean == 16 * 60 + 30
    assert (answer.se, answer.p10, answer.p90, answer.draws, answer.uncalled) == (0.0, 990.0, 990.0, 6, 0)


@pytest.fixture(scope="module")
def oizumi_day(oizumi: OfficeConfig) -> list[ev.Event]:
    return list(record_day(oizumi, DAY, seed=4).events)


def _middle_tickets(events: list[ev.Event], n: int) -> list[str]:
    issued = [e.ticket for e in events if isinstance(e, ev.TicketIssued)]
    return issued[len(issued) // 3 :: len(issued) // (2 * n)][:n]


def test_its_monte_carlo_error_is_finite_and_shrinks_with_more_draws(
    oizumi: OfficeConfig, oizumi_day: list[ev.Event]
) -> None:
    tickets = _middle_tickets(oizumi_day, 3)
    few = oracle_waits(oizumi, DAY, oizumi_day, tickets, seed=4, draws=6)
    many = oracle_waits(oizumi, DAY, oizumi_day, tickets, seed=4, draws=24)
    assert set(few) == set(many) == set(tickets)
    for answer in (*few.values(), *many.values()):
        assert math.isfinite(answer.mean) and math.isfinite(answer.se) and answer.se >= 0
        assert answer.p10 <= answer.mean <= answer.p90 or answer.p10 == answer.p90
    # Four times the draws: about half the error (the draws' spread is the same).
    assert sum(a.se**2 for a in many.values()) < 0.6 * sum(a.se**2 for a in few.values())


def test_it_answers_from_the_log_before_the_ticket_only(oizumi: OfficeConfig, oizumi_day: list[ev.Event]) -> None:
    """What happened after the issue (who had silently left, how long services really took) is
    not known to it: cut the log right after the issue and the answer is the same."""
    (ticket,) = _middle_tickets(oizumi_day, 1)
    cut = next(i for i, e in enumerate(oizumi_day) if isinstance(e, ev.TicketIssued) and e.ticket == ticket)
    whole = oracle_waits(oizumi, DAY, oizumi_day, {ticket}, seed=4, draws=8)
    before = oracle_waits(oizumi, DAY, oizumi_day[: cut + 1], {ticket}, seed=4, draws=8)
    assert whole == before
