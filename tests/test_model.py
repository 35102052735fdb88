"""The office model, one operation at a time: commands in, events and effects out.

Each test drives a real `Office` with an explicit clock and checks the events it records, the
effects it releases and the state they leave. A refused or failed command records nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from office import events as ev
from office.config import OfficeConfig, parse_config
from office.estimate import UNREACHABLE_MINUTES, CapacityEstimator, WaitRange
from office.model import (
    CallNext,
    CloseCounter,
    Command,
    Decision,
    FinishService,
    Hold,
    IssueRefused,
    IssueTicket,
    MarkNoShow,
    NobodyWaiting,
    Office,
    OfficeError,
    OpenCounter,
    PauseCounter,
    Recall,
    RecordPrintFailure,
    RecordReprint,
    ResumeCounter,
    Return,
    ShowCall,
    StartDay,
    TicketReady,
    Transfer,
)
from office.state import CounterStatus, OfficeState, TicketStatus

from .conftest import tokyo

SMALL = """
[office]
id = "small"
name = { ja = "小さな事務所", en = "Small Office" }
timezone = "Asia/Tokyo"
public_base_url = "https://queue.example.jp/small"

[hours]
weekday = { from = "08:30", to = "17:00" }
evening = { from = "17:00", to = "19:00" }

[rules]
recall_limit = 1
no_show = "requeue_once"

[[services]]
id = "a"
prefix = "A"
name = { ja = "届出", en = "Notifications" }
periods = ["office", "evening"]
typical_minutes = 5

[[services]]
id = "b"
prefix = "B"
name = { ja = "印鑑", en = "Seals" }
typical_minutes = 10

[[services]]
id = "x"
prefix = "X"
name = { ja = "臨時", en = "Extra" }
numbers = [1, 5]
typical_minutes = 1

[[counters]]
id = "1"
name = { ja = "1番", en = "Counter 1" }
services = ["a", "b"]
shifts = [{ from = "08:30", to = "17:00" }, { periods = ["evening"], from = "17:00", to = "19:00" }]

[[counters]]
id = "2"
name = { ja = "2番", en = "Counter 2" }
services = ["b", "a"]
shifts = [{ from = "08:30", to = "17:00" }, { periods = ["evening"], from = "17:00", to = "19:00" }]

[[counters]]
id = "3"
name = { ja = "3番", en = "Counter 3" }
services = ["x"]
shifts = [{ from = "08:30", to = "17:00" }, { periods = ["evening"], from = "17:00", to = "19:00" }]
"""


def at(hour: int, minute: int = 0, second: int = 0, day: int = 15, month: int = 3, year: int = 2027) -> datetime:
    """A moment in Tokyo; by default on Monday 2027-03-15."""
    return tokyo(year, month, day, hour, minute, second)


@pytest.fixture(scope="module")
def small() -> OfficeConfig:
    return parse_config(SMALL, source="small.toml")


class Floor:
    """An Office with a hand-moved clock, keeping every event it recorded."""

    def __init__(self, config: OfficeConfig, now: datetime | None = None, estimator: Any = None) -> None:
        self.office = Office(config, estimator=estimator)
        self.now = now or at(9)
        self.events: list[ev.Event] = []
        self._tokens = itertools.count(1)

    @property
    def state(self) -> OfficeState:
        return self.office.state

    def run(self, command: Command, now: datetime | None = None) -> Decision:
        decision = self.office.execute(command, now or self.now)
        self.events.extend(decision.events)
        return decision

    def tick(self, seconds: int = 30) -> None:
        self.now += timedelta(seconds=seconds)

    def issue(self, service: str, now: datetime | None = None) -> TicketReady:
        decision = self.run(IssueTicket(service, f"token-{next(self._tokens)}"), now)
        (effect,) = decision.effects
        assert isinstance(effect, TicketReady), effect
        return effect

    def refused(self, service: str, now: datetime | None = None) -> IssueRefused:
        before = snapshot(self.state)
        decision = self.run(IssueTicket(service, "token-refused"), now)
        (effect,) = decision.effects
        assert isinstance(effect, IssueRefused), effect
        assert decision.events == []
        assert snapshot(self.state) == before
        return effect

    def call(self, counter: str) -> str | None:
        decision = self.run(CallNext(counter))
        shown = [e for e in decision.effects if isinstance(e, ShowCall)]
        if shown:
            assert shown[0].counter == counter and not shown[0].recall
            return shown[0].ticket
        assert any(isinstance(e, NobodyWaiting) for e in decision.effects)
        return None

    def fails(self, command: Command, code: str) -> OfficeError:
        before = snapshot(self.state)
        seq = self.state.last_seq
        with pytest.raises(OfficeError) as info:
            self.run(command)
        assert info.value.code == code, info.value
        assert str(info.value)  # a message for the person at the counter
        assert self.state.last_seq == seq
        assert snapshot(self.state) == before
        return info.value

    def waiting(self, service: str) -> list[str]:
        return self.state.waiting(service)

    def status(self, ticket: str) -> TicketStatus:
        return self.state.tickets[ticket].status


def snapshot(state: OfficeState) -> str:
    return json.dumps(state.to_snapshot(), sort_keys=True)


def kinds(decision: Decision) -> list[str]:
    return [e.TYPE for e in decision.events]


@dataclass
class LinearEstimator:
    """A stand-in predictor: every person ahead costs `minutes`."""

    minutes: int

    def estimate(
        self, state: OfficeState, service: str, ahead: int, now: datetime, ticket: str | None = None
    ) -> WaitRange:
        return WaitRange.of_minutes(ahead * self.minutes, ahead * self.minutes + 5)


# -- issuing ------------------------------------------------------------------------------------
def test_first_ticket_of_the_day_records_the_schedule_then_the_ticket(nerima: OfficeConfig) -> None:
    floor = Floor(nerima, at(9, 0, 5))
    decision = floor.run(IssueTicket("move", "secret-token"))
    assert kinds(decision) == ["schedule", "ticket_issued"]
    schedule, issued = decision.events
    assert isinstance(schedule, ev.Schedule) and isinstance(issued, ev.TicketIssued)
    assert (schedule.seq, issued.seq) == (1, 2)
    assert schedule.date == "2027-03-15" and schedule.new_day and schedule.closes == "19:00"
    assert [p["mode"] for p in schedule.periods] == ["office", "evening"]
    assert [c["counter"] for c in schedule.counters] == [str(i) for i in range(1, 13)]
    assert (issued.ticket, issued.service, issued.number) == ("A-001", "move", 1)
    assert issued.token == "secret-token"
    assert issued.token_hash == hashlib.sha256(b"secret-token").hexdigest()
    assert issued.ts == at(9, 0, 5)
    (ready,) = decision.effects
    assert isinstance(ready, TicketReady)
    assert (ready.ticket, ready.service, ready.number, ready.position, ready.ahead) == ("A-001", "move", 1, 1, 0)
    assert ready.issued_at == at(9, 0, 5) and ready.token == "secret-token"
    assert 0 <= ready.wait.low_minutes <= ready.wait.high_minutes
    assert floor.state.day == at(9).date()
    assert floor.waiting("move") == ["A-001"]


def test_position_and_people_ahead_count_only_the_same_service(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    tickets = [floor.issue(s) for s in ["move", "move", "certificate", "move", "certificate"]]
    assert [(t.ticket, t.position, t.ahead) for t in tickets] == [
        ("A-001", 1, 0),
        ("A-002", 2, 1),
        ("C-001", 1, 0),
        ("A-003", 3, 2),
        ("C-002", 2, 1),
    ]
    # the longer the queue, the longer the estimated wait
    assert tickets[3].wait.low_minutes > tickets[1].wait.low_minutes > 0
    assert all(t.wait.low_minutes <= t.wait.high_minutes for t in tickets)
    assert floor.state.ahead_of(floor.state.tickets["A-003"]) == 2


def test_ticket_ids_are_zero_padded_and_unique(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    ids = [floor.issue("seal").ticket for _ in range(23)]
    assert ids[0] == "B-001" and ids[9] == "B-010" and ids[-1] == "B-023"
    assert len(set(ids)) == 23
    assert floor.state.last_number == {"seal": 23}


def test_exhausted_range_refuses_and_never_repeats_a_number(small: OfficeConfig) -> None:
    floor = Floor(small)
    assert [floor.issue("x").ticket for _ in range(5)] == ["X-1", "X-2", "X-3", "X-4", "X-5"]
    refusal = floor.refused("x")
    assert refusal.service == "x" and refusal.reason == "range_exhausted"
    assert "X-5" in refusal.message
    assert floor.refused("x").reason == "range_exhausted"  # and stays so
    # calling tickets does not free numbers
    floor.run(OpenCounter("3"))
    assert floor.call("3") == "X-1"
    assert floor.refused("x").reason == "range_exhausted"
    assert floor.issue("a").ticket == "A-001"  # other services are unaffected
    # the next business day starts again at the first number
    floor.now = at(9, day=16)
    assert floor.issue("x").ticket == "X-1"


def test_numbers_restart_each_business_day(small: OfficeConfig) -> None:
    floor = Floor(small)
    floor.issue("a")
    floor.issue("a")
    floor.run(OpenCounter("1"))
    assert floor.call("1") == "A-001"
    floor.now = at(8, 45, day=16)
    decision = floor.run(IssueTicket("a", "t"))
    assert kinds(decision) == ["schedule", "ticket_issued"]
    assert isinstance(decision.events[0], ev.Schedule) and decision.events[0].date == "2027-03-16"
    assert decision.events[1].ticket == "A-001"  # type: ignore[attr-defined]
    # yesterday's tickets and counters are gone with yesterday
    assert set(floor.state.tickets) == {"A-001"}
    assert floor.state.tickets["A-001"].issued_at.date() == at(9, day=16).date()
    assert floor.state.counters == {}
    assert floor.state.day == at(9, day=16).date()


def test_unknown_service_is_an_error(nerima: OfficeConfig) -> None:
    err = Floor(nerima).fails(IssueTicket("passport", "t"), "unknown_service")
    assert "passport" in str(err) and "move" in str(err)


# -- when tickets can be taken -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "why"),
    [
        (at(10, day=14), "Sundays"),
        (at(10, day=29, month=4), "Public holiday"),
        (at(10, day=22), "system update"),  # Nerima's dated closure (also a substitute holiday)
        (at(10, day=29, month=12), "Year-end"),
        (at(10, day=3, month=1, year=2028), "Year-end"),
    ],
)
def test_closed_days_refuse_with_closed_today(nerima: OfficeConfig, moment: datetime, why: str) -> None:
    floor = Floor(nerima, moment)
    refusal = floor.refused("certificate")
    assert refusal.reason == "closed_today"
    assert why in refusal.message
    assert floor.state.day is None and floor.state.last_seq == 0  # not even the schedule is stored


def test_a_refusal_on_a_new_day_leaves_yesterday_in_place(oizumi: OfficeConfig) -> None:
    floor = Floor(oizumi, at(16, day=19))  # Friday
    floor.issue("move")
    seq = floor.state.last_seq
    assert floor.refused("move", at(10, day=20)).reason == "closed_today"  # an ordinary Saturday
    assert floor.state.day == at(9, day=19).date() and floor.state.last_seq == seq
    assert floor.waiting("move") == ["A-001"]


def test_saturdays(nerima: OfficeConfig, oizumi: OfficeConfig) -> None:
    saturday = at(10, day=20)
    assert Floor(nerima, saturday).issue("seal").ticket == "B-001"
    assert Floor(nerima, saturday).refused("payment").reason == "not_offered_now"
    assert Floor(nerima, at(8, 45, day=20)).refused("move").reason == "not_offered_now"  # opens at 9:00
    assert Floor(oizumi, saturday).refused("move").reason == "closed_today"
    rush = Floor(oizumi, at(10, day=27))
    assert rush.issue("move").ticket == "A-001"
    assert rush.issue("certificate").ticket == "C-001"
    refusal = rush.refused("payment")
    assert refusal.reason == "not_offered_now" and "10:00" in refusal.message


@pytest.mark.parametrize(
    ("service", "moment", "outcome"),
    [
        ("seal", at(8, 29, 59), "not_offered_now"),
        ("seal", at(8, 30), "issued"),
        ("seal", at(16, 59, 59), "issued"),
        ("seal", at(17), "not_offered_now"),  # office hours only
        ("move", at(17), "issued"),  # runs into the evening
        ("payment", at(18, 30), "issued"),
        ("guidance", at(17, 30), "not_offered_now"),
        ("move", at(19), "not_offered_now"),
        ("certificate", at(23, 59), "not_offered_now"),
        ("certificate", at(0, 1), "not_offered_now"),
    ],
)
def test_services_are_offered_only_in_their_periods(
    nerima: OfficeConfig, service: str, moment: datetime, outcome: str
) -> None:
    floor = Floor(nerima, moment, estimator=LinearEstimator(0))  # no cut-off: periods alone decide
    if outcome == "issued":
        assert floor.issue(service).service == service
    else:
        assert floor.refused(service).reason == outcome


def test_cut_off_refuses_tickets_that_could_not_be_called_before_closing(nerima: OfficeConfig) -> None:
    floor = Floor(nerima, at(16, 30), estimator=LinearEstimator(10))
    # seal closes at 17:00, 30 minutes away: 0, 10, 20 and 30 minutes of waiting still fit
    assert [floor.issue("seal").ahead for _ in range(4)] == [0, 1, 2, 3]
    refusal = floor.refused("seal")
    assert refusal.reason == "cut_off" and "17:00" in refusal.message and "4 waiting" in refusal.message
    # moving runs to 19:00, so the same queue is fine there
    assert [floor.issue("move").ahead for _ in range(5)] == [0, 1, 2, 3, 4]
    # once someone is called, a place frees up
    floor.run(OpenCounter("4"))
    assert floor.call("4") == "B-001"
    assert floor.issue("seal").ticket == "B-005"


def test_an_open_counter_without_planned_shifts_takes_tickets(small: OfficeConfig) -> None:
    """Shifts are optional: an open counter counts as capacity until the office closes."""
    unplanned = parse_config(re.sub(r"(?m)^shifts = .*\n", "", SMALL))
    assert all(not c.shifts for c in unplanned.counters)
    floor = Floor(unplanned)  # the default estimator
    assert floor.refused("a").reason == "cut_off"  # nobody planned, nobody open: no call can come
    floor.run(OpenCounter("1"))
    assert floor.issue("a").ticket == "A-001"


def test_cut_off_in_the_evening_uses_the_evening_close(nerima: OfficeConfig) -> None:
    floor = Floor(nerima, at(18, 40), estimator=LinearEstimator(10))
    assert [floor.issue("certificate").ahead for _ in range(3)] == [0, 1, 2]
    refusal = floor.refused("certificate")
    assert refusal.reason == "cut_off" and "19:00" in refusal.message


def test_cut_off_with_the_default_estimator(nerima: OfficeConfig) -> None:
    """Guidance is called only at counter 11 (first priority, shift until 17:00) and offered only
    in office hours; at 16:40 the counter has 20 minutes left. A ticket with k ahead needs
    (k + ½) × 6 minutes of it, so tickets fit while that is at most 20."""
    floor = Floor(nerima, at(16, 40))
    issued = 0
    while True:
        decision = floor.run(IssueTicket("guidance", "t"))
        if not decision.events:
            break
        issued += 1
        assert issued < 50, "cut-off never came"
    (refusal,) = decision.effects
    assert isinstance(refusal, IssueRefused) and refusal.reason == "cut_off"
    assert issued == sum(1 for k in range(50) if (k + 0.5) * 6 <= 20)


def test_capacity_estimator_follows_the_planned_shifts(nerima: OfficeConfig) -> None:
    state = OfficeState()
    estimator = CapacityEstimator(nerima)
    # seal at 10:00: first at counter 4, second at 1, 2 and 9 -> 1 + 3 × 0.5 = 2.5 counters;
    # 5 ahead need 5.5 × 8 = 44 counter-minutes: 17.6 minutes, printed as -25 % .. +30 %
    assert estimator.wait_minutes("seal", 5, at(10)) == pytest.approx(17.6)
    wait = estimator.estimate(state, "seal", 5, at(10))
    assert (wait.low_minutes, wait.high_minutes) == (13, 23) and wait.mean_s == pytest.approx(17.6 * 60)
    # 11:55: 1 and 4 at lunch until 12:30, 2 leaves at 12:00, 9 at 12:15 (back 13:00 / 13:15):
    # 5 min at 1.0, 15 min at 0.5, nothing 12:15-12:30, then 1.5 until the remaining 31.5 are done
    assert estimator.wait_minutes("seal", 5, at(11, 55)) == pytest.approx(5 + 15 + 15 + 31.5 / 1.5)
    # Sunday: nobody planned, nobody open -> no call can come today
    sunday = estimator.estimate(state, "seal", 0, at(10, day=21))
    assert (sunday.low_minutes, sunday.high_minutes) == (UNREACHABLE_MINUTES, UNREACHABLE_MINUTES)


# -- calling -----------------------------------------------------------------------------------
def test_call_next_follows_the_counter_priority_then_fcfs(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    for service in ["move", "seal", "move", "seal"]:
        floor.issue(service)
        floor.tick()
    floor.run(OpenCounter("4"))  # seal, then move
    floor.run(OpenCounter("1"))  # move, then seal
    assert floor.call("4") == "B-001"
    assert floor.call("1") == "A-001"
    decision = floor.run(CallNext("4"))
    assert [(e.TYPE, e.ticket) for e in decision.events] == [("served", "B-001"), ("called", "B-002")]  # type: ignore[attr-defined]
    assert floor.call("4") == "A-002"  # no seal left: its second service
    assert floor.status("B-002") is TicketStatus.SERVED
    decision = floor.run(CallNext("4"))
    assert kinds(decision) == ["served"]
    assert decision.effects == [NobodyWaiting("4", ("seal", "move"))]
    assert floor.state.counters["4"].current is None
    assert floor.status("A-002") is TicketStatus.SERVED
    assert floor.state.counters["1"].current == "A-001"
    assert floor.status("A-001") is TicketStatus.CALLED


def test_called_ticket_and_counter_point_at_each_other(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("certificate")
    floor.tick(90)
    floor.run(OpenCounter("6"))
    floor.call("6")
    ticket = floor.state.tickets["C-001"]
    assert ticket.status is TicketStatus.CALLED and ticket.counter == "6" and ticket.called_at == floor.now
    assert floor.state.counters["6"].current == "C-001"
    assert floor.waiting("certificate") == []


def test_open_with_its_own_services(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("move")
    floor.issue("certificate")
    floor.run(OpenCounter("1", ("certificate",)))
    assert floor.state.counters["1"].services == ("certificate",)
    assert floor.call("1") == "C-001"
    assert floor.call("1") is None
    assert floor.waiting("move") == ["A-001"]


def test_finish_service(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("certificate")
    floor.run(OpenCounter("6"))
    floor.call("6")
    decision = floor.run(FinishService("6"))
    assert [(e.TYPE, e.ticket, e.counter) for e in decision.events] == [("served", "C-001", "6")]  # type: ignore[attr-defined]
    assert floor.status("C-001") is TicketStatus.SERVED
    assert floor.state.counters["6"].current is None
    floor.fails(FinishService("6"), "no_current_ticket")


# -- recall ------------------------------------------------------------------------------------
def test_recall_is_bounded_by_the_configured_limit(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("certificate")
    floor.run(OpenCounter("6"))
    floor.call("6")
    for n in (1, 2):
        decision = floor.run(Recall("6"))
        assert kinds(decision) == ["recalled"]
        assert decision.effects == [ShowCall("C-001", "6", recall=True)]
        assert floor.state.tickets["C-001"].recalls == n
    err = floor.fails(Recall("6"), "recall_limit")
    assert "C-001" in str(err) and "2" in str(err)


def test_recall_limit_comes_from_config(small: OfficeConfig) -> None:
    floor = Floor(small)
    floor.issue("a")
    floor.run(OpenCounter("1"))
    floor.call("1")
    floor.run(Recall("1"))
    floor.fails(Recall("1"), "recall_limit")
    # the count starts again when the ticket is called again
    floor.run(MarkNoShow("1"))
    assert floor.call("1") == "A-001"
    assert floor.state.tickets["A-001"].recalls == 0
    floor.run(Recall("1"))


def test_recall_without_a_current_ticket(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.fails(Recall("6"), "no_current_ticket")
    floor.run(OpenCounter("6"))
    floor.fails(Recall("6"), "no_current_ticket")


# -- no-show -----------------------------------------------------------------------------------
def test_no_show_returns_once_to_the_back_of_the_queue(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    for _ in range(3):
        floor.issue("move")
        floor.tick()
    floor.run(OpenCounter("1"))
    assert floor.call("1") == "A-001"
    floor.tick()
    decision = floor.run(MarkNoShow("1"))
    (no_show,) = decision.events
    assert isinstance(no_show, ev.NoShow) and no_show.requeued and no_show.counter == "1"
    assert decision.effects == []
    ticket = floor.state.tickets["A-001"]
    assert ticket.status is TicketStatus.WAITING and ticket.requeued and ticket.order == no_show.seq
    assert floor.state.counters["1"].current is None
    # behind those already waiting, ahead of those who come later
    assert floor.waiting("move") == ["A-002", "A-003", "A-001"]
    assert floor.issue("move").ticket == "A-004"
    assert floor.waiting("move") == ["A-002", "A-003", "A-001", "A-004"]
    assert [floor.call("1") for _ in range(3)] == ["A-002", "A-003", "A-001"]
    # the second time it is dropped
    decision = floor.run(MarkNoShow("1"))
    assert isinstance(decision.events[0], ev.NoShow) and not decision.events[0].requeued
    assert floor.status("A-001") is TicketStatus.NO_SHOW
    assert floor.waiting("move") == ["A-004"]
    assert floor.call("1") == "A-004"


def test_no_show_drop_policy(oizumi: OfficeConfig) -> None:
    floor = Floor(oizumi)
    floor.issue("move")
    floor.issue("move")
    floor.run(OpenCounter("1"))
    floor.call("1")
    decision = floor.run(MarkNoShow("1"))
    assert isinstance(decision.events[0], ev.NoShow) and not decision.events[0].requeued
    assert floor.status("A-001") is TicketStatus.NO_SHOW
    assert floor.waiting("move") == ["A-002"]
    floor.fails(MarkNoShow("1"), "no_current_ticket")


# -- transfer ----------------------------------------------------------------------------------
def test_transfer_keeps_the_id_and_the_place_by_issue_time(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("move")
    floor.tick()
    floor.issue("certificate")
    floor.issue("certificate")
    floor.issue("move")
    decision = floor.run(Transfer("certificate", ticket="A-001"))
    (moved,) = decision.events
    assert isinstance(moved, ev.Transferred)
    assert (moved.ticket, moved.from_service, moved.to_service, moved.counter) == (
        "A-001",
        "move",
        "certificate",
        None,
    )
    assert floor.waiting("certificate") == ["A-001", "C-001", "C-002"]
    assert floor.waiting("move") == ["A-002"]
    ticket = floor.state.tickets["A-001"]
    assert ticket.service == "certificate" and ticket.status is TicketStatus.WAITING and ticket.number == 1
    floor.run(OpenCounter("6"))
    assert floor.call("6") == "A-001"
    # numbering of either service is untouched
    assert floor.issue("certificate").ticket == "C-003"
    assert floor.issue("move").ticket == "A-003"


def test_transfer_from_a_counter(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("certificate")
    floor.tick()
    floor.issue("move")
    floor.run(OpenCounter("6"))
    floor.call("6")
    decision = floor.run(Transfer("move", counter="6"))
    (moved,) = decision.events
    assert isinstance(moved, ev.Transferred) and moved.counter == "6" and moved.ticket == "C-001"
    assert floor.state.counters["6"].current is None
    assert floor.status("C-001") is TicketStatus.WAITING
    assert floor.state.tickets["C-001"].counter is None
    assert floor.waiting("move") == ["C-001", "A-001"]  # issued first, so first in line
    floor.run(OpenCounter("1"))
    assert floor.call("1") == "C-001"


def test_transfer_errors(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("certificate")
    floor.issue("certificate")
    floor.run(OpenCounter("6"))
    floor.call("6")
    floor.run(FinishService("6"))
    floor.fails(Transfer("move"), "bad_command")
    floor.fails(Transfer("move", ticket="C-002", counter="6"), "bad_command")
    floor.fails(Transfer("move", ticket="C-999"), "unknown_ticket")
    floor.fails(Transfer("passport", ticket="C-002"), "unknown_service")
    floor.fails(Transfer("certificate", ticket="C-002"), "same_service")
    floor.fails(Transfer("move", ticket="C-001"), "ticket_done")
    floor.fails(Transfer("move", counter="6"), "no_current_ticket")
    floor.fails(Transfer("move", counter="13"), "unknown_counter")


def test_a_held_ticket_stays_held_when_transferred(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("move")
    floor.tick()
    floor.issue("certificate")
    floor.run(Hold("A-001"))
    floor.run(Transfer("certificate", ticket="A-001"))
    assert floor.status("A-001") is TicketStatus.HELD
    assert floor.state.tickets["A-001"].service == "certificate"
    floor.run(OpenCounter("6"))
    assert floor.call("6") == "C-001"  # the resident is still away
    floor.run(Return("A-001"))
    assert floor.waiting("certificate") == ["A-001"]
    assert floor.waiting("move") == []


# -- hold and return ---------------------------------------------------------------------------
def test_hold_and_return_keep_the_original_place(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    for _ in range(3):
        floor.issue("move")
        floor.tick()
    decision = floor.run(Hold("A-001"))
    assert [(e.TYPE, e.ticket) for e in decision.events] == [("held", "A-001")]  # type: ignore[attr-defined]
    assert floor.status("A-001") is TicketStatus.HELD
    assert floor.waiting("move") == ["A-002", "A-003"]
    floor.run(OpenCounter("1"))
    assert floor.call("1") == "A-002"
    floor.issue("move")
    floor.run(Return("A-001"))
    assert floor.waiting("move") == ["A-001", "A-003", "A-004"]
    assert floor.call("1") == "A-001"


def test_hold_a_called_ticket_frees_the_counter(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("move")
    floor.issue("move")
    floor.run(OpenCounter("1"))
    floor.call("1")
    floor.run(Hold("A-001"))
    assert floor.state.counters["1"].current is None
    assert floor.state.tickets["A-001"].counter is None
    decision = floor.run(CallNext("1"))
    assert kinds(decision) == ["called"]  # nothing to finish: the held ticket is not served
    floor.run(Return("A-001"))
    assert floor.waiting("move") == ["A-001"]


def test_hold_and_return_errors(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.issue("move")
    floor.issue("move")
    floor.fails(Return("A-001"), "not_held")
    floor.fails(Hold("A-009"), "unknown_ticket")
    floor.fails(Return("A-009"), "unknown_ticket")
    floor.run(Hold("A-002"))
    floor.fails(Hold("A-002"), "cannot_hold")
    floor.run(OpenCounter("1"))
    floor.call("1")
    floor.run(FinishService("1"))
    floor.fails(Hold("A-001"), "cannot_hold")


# -- counters ----------------------------------------------------------------------------------
def test_counter_lifecycle(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    for _ in range(3):
        floor.issue("certificate")
    floor.fails(CallNext("6"), "counter_closed")
    decision = floor.run(OpenCounter("6"))
    (opened,) = decision.events
    assert isinstance(opened, ev.CounterOpened) and opened.services == ["certificate"]
    assert floor.state.counters["6"].status is CounterStatus.OPEN
    floor.fails(OpenCounter("6"), "counter_open")
    floor.fails(ResumeCounter("6"), "counter_open")
    floor.call("6")
    # pausing first finishes the customer at the counter
    decision = floor.run(PauseCounter("6"))
    assert [(e.TYPE, getattr(e, "ticket", None)) for e in decision.events] == [
        ("served", "C-001"),
        ("counter_paused", None),
    ]
    assert floor.state.counters["6"].status is CounterStatus.PAUSED
    floor.fails(CallNext("6"), "counter_paused")
    floor.fails(PauseCounter("6"), "counter_paused")
    floor.fails(OpenCounter("6"), "counter_open")
    assert kinds(floor.run(ResumeCounter("6"))) == ["counter_resumed"]
    assert floor.call("6") == "C-002"
    # closing also finishes the customer
    decision = floor.run(CloseCounter("6"))
    assert kinds(decision) == ["served", "counter_closed"]
    assert floor.status("C-002") is TicketStatus.SERVED
    counter = floor.state.counters["6"]
    assert counter.status is CounterStatus.CLOSED and counter.current is None
    for command in (CloseCounter("6"), PauseCounter("6"), ResumeCounter("6")):
        floor.fails(command, "counter_closed")
    floor.fails(MarkNoShow("6"), "no_current_ticket")
    assert floor.waiting("certificate") == ["C-003"]


def test_a_paused_counter_can_be_closed(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    floor.run(OpenCounter("6"))
    floor.run(PauseCounter("6"))
    assert kinds(floor.run(CloseCounter("6"))) == ["counter_closed"]
    assert kinds(floor.run(OpenCounter("6", ("certificate", "seal")))) == ["counter_opened"]
    assert floor.state.counters["6"].services == ("certificate", "seal")


def test_counter_command_errors(nerima: OfficeConfig) -> None:
    floor = Floor(nerima)
    err = floor.fails(OpenCounter("13"), "unknown_counter")
    assert "13" in str(err)
    floor.fails(CallNext("13"), "unknown_counter")
    floor.fails(OpenCounter("1", ("move", "passport")), "unknown_service")
    floor.fails(OpenCounter("1", ("move", "move")), "bad_command")


# -- a refused or failed command changes nothing --------------------------------------------------
FAILING: list[tuple[Command, str]] = [
    (CallNext("2"), "counter_closed"),
    (CallNext("3"), "counter_paused"),
    (CallNext("99"), "unknown_counter"),
    (Recall("1"), "recall_limit"),
    (Recall("2"), "no_current_ticket"),
    (MarkNoShow("2"), "no_current_ticket"),
    (FinishService("3"), "no_current_ticket"),
    (Transfer("a", ticket="A-001"), "same_service"),
    (Transfer("a"), "bad_command"),
    (Transfer("zz", ticket="A-001"), "unknown_service"),
    (Hold("A-404"), "unknown_ticket"),
    (Hold("A-003"), "cannot_hold"),
    (Return("A-002"), "not_held"),
    (OpenCounter("1"), "counter_open"),
    (PauseCounter("3"), "counter_paused"),
    (ResumeCounter("1"), "counter_open"),
    (CloseCounter("2"), "counter_closed"),
    (IssueTicket("zz", "t"), "unknown_service"),
]


@pytest.mark.parametrize(("command", "code"), FAILING, ids=[f"{type(c).__name__}-{code}" for c, code in FAILING])
def test_failed_commands_record_nothing(small: OfficeConfig, command: Command, code: str) -> None:
    floor = Floor(small)
    for service in ["a", "a", "b", "a"]:
        floor.issue(service)
    floor.run(OpenCounter("1"))
    floor.run(OpenCounter("3"))
    floor.run(PauseCounter("3"))
    floor.call("1")
    floor.run(Recall("1"))
    floor.run(Hold("A-003"))
    floor.run(Return("A-003"))
    floor.run(Hold("A-003"))
    events = list(floor.events)
    floor.fails(command, code)
    assert floor.events == events
    # failing on the next business day does not even record that day's schedule
    if not isinstance(command, OpenCounter):  # (all counters are closed there: this one would open)
        before = snapshot(floor.state)
        with pytest.raises(OfficeError):
            floor.run(command, at(9, day=16))
        assert snapshot(floor.state) == before and floor.events == events


# -- time --------------------------------------------------------------------------------------
def test_a_clock_jumping_back_neither_reorders_nor_renumbers(small: OfficeConfig) -> None:
    floor = Floor(small, at(10))
    floor.issue("a")
    ready = floor.issue("a", at(9, 30))  # the wall clock went back half an hour
    assert ready.ticket == "A-002" and ready.issued_at == at(10)
    assert floor.events[-1].ts == at(10)
    floor.issue("a", at(10, 0, 1))
    # to the next day and back again: the business day does not go back
    floor.run(StartDay(), at(9, day=16))
    assert floor.state.day == at(9, day=16).date()
    ready = floor.issue("a", at(16, 0))  # Monday afternoon again
    assert ready.ticket == "A-001" and ready.issued_at == at(9, day=16)
    assert floor.issue("a", at(16, 0)).ticket == "A-002"
    assert floor.state.day == at(9, day=16).date()
    assert [e.seq for e in floor.events] == list(range(1, len(floor.events) + 1))
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(floor.events))


def test_the_business_day_is_the_office_date(small: OfficeConfig) -> None:
    floor = Floor(small)
    # 23:30 UTC on the 15th is 08:30 on the 16th in Tokyo
    decision = floor.run(IssueTicket("a", "t"), datetime(2027, 3, 15, 23, 30, tzinfo=UTC))
    schedule = decision.events[0]
    assert isinstance(schedule, ev.Schedule) and schedule.date == "2027-03-16"
    assert decision.events[1].ts == at(8, 30, day=16)
    assert decision.events[1].ts.utcoffset() == timedelta(hours=9)  # recorded in office time
    assert floor.state.day == at(9, day=16).date()


def test_naive_time_is_rejected(small: OfficeConfig) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Office(small).decide(StartDay(), datetime(2027, 3, 15, 9))


def test_event_times_are_recorded_to_the_millisecond(small: OfficeConfig) -> None:
    floor = Floor(small, at(9).replace(microsecond=123_456))
    decision = floor.run(IssueTicket("a", "t"))
    assert all(e.ts.microsecond == 123_000 for e in decision.events)
    assert floor.state.tickets["A-001"].issued_at == at(9).replace(microsecond=123_000)
    # the same millisecond again is not "earlier"
    floor.issue("a", at(9).replace(microsecond=123_999))
    assert floor.events[-1].ts == floor.events[-2].ts


def test_start_day_records_the_schedule_once(nerima: OfficeConfig) -> None:
    floor = Floor(nerima, at(8, day=20))  # a Saturday, before opening
    decision = floor.run(StartDay())
    (schedule,) = decision.events
    assert isinstance(schedule, ev.Schedule) and schedule.new_day and schedule.date == "2027-03-20"
    assert schedule.closes == "17:00"
    assert schedule.periods == [
        {"mode": "saturday", "from": "09:00", "to": "17:00", "services": ["move", "seal", "certificate", "insurance"]}
    ]
    assert [c["counter"] for c in schedule.counters] == ["1", "2", "4", "5", "6", "7"]
    assert schedule.counters[0] == {"counter": "1", "services": ["move", "seal"], "shifts": [["09:00", "17:00"]]}
    assert floor.run(StartDay()).events == []
    assert floor.state.schedule == schedule
    # a closed day still gets its (empty) schedule
    decision = floor.run(StartDay(), at(8, day=21))
    assert isinstance(decision.events[0], ev.Schedule) and decision.events[0].periods == []
    assert decision.events[0].closes is None and decision.events[0].counters == []


# -- config changes during the day ----------------------------------------------------------------
def test_a_prefix_given_to_another_service_mid_day_never_duplicates_an_id(small: OfficeConfig) -> None:
    floor = Floor(small)
    floor.issue("a")
    floor.issue("a")
    # the file is edited: "a" is now prefix Z and a new service "n" takes prefix A
    text = SMALL.replace('prefix = "A"', 'prefix = "Z"').replace(
        "[[counters]]", '[[services]]\nid = "n"\nprefix = "A"\nname = { ja = "新", en = "New" }\n\n[[counters]]', 1
    )
    office = Office(parse_config(text), floor.state, estimator=LinearEstimator(1))  # no counter calls "n"
    decision = office.execute(IssueTicket("n", "t"), at(9, 5))
    (ready,) = decision.effects
    assert isinstance(ready, TicketReady) and ready.ticket == "A-003"
    assert len(office.state.tickets) == 3
    assert office.state.tickets["A-001"].service == "a"


# -- records and snapshots ---------------------------------------------------------------------
def _busy_floor(config: OfficeConfig) -> Floor:
    """A morning with every kind of event and every ticket status."""
    floor = Floor(config, at(9).replace(microsecond=250_000))
    for service in ["a", "b", "a", "x", "a", "b", "a"]:
        floor.issue(service)
        floor.tick(7)
    floor.run(OpenCounter("1"))
    floor.run(OpenCounter("2", ("b",)))
    floor.run(OpenCounter("3"))
    floor.call("1")
    floor.run(Recall("1"))
    floor.run(MarkNoShow("1"))  # requeued
    floor.call("1")
    floor.call("2")  # B-001
    floor.run(Transfer("a", counter="2"))
    floor.run(FinishService("1"))
    floor.run(Hold("A-003"))
    floor.run(Hold("A-004"))
    floor.run(Return("A-004"))
    floor.run(RecordPrintFailure("A-003", "entrance", "paper_out"))  # stays unprinted
    floor.run(RecordPrintFailure("A-004", "entrance", "cover_open"))
    floor.run(RecordReprint("A-004", "entrance"))
    floor.call("3")
    floor.run(MarkNoShow("3"))
    floor.call("3")
    floor.run(MarkNoShow("3"))  # dropped now
    floor.run(PauseCounter("2"))
    floor.issue("b")
    floor.call("1")
    return floor


def test_busy_floor_covers_every_status(small: OfficeConfig) -> None:
    floor = _busy_floor(small)
    statuses = {t.status for t in floor.state.tickets.values()}
    assert statuses == set(TicketStatus)
    assert {c.status for c in floor.state.counters.values()} == {CounterStatus.OPEN, CounterStatus.PAUSED}
    # A clock step, a remote override, a config change and a dispenser message are not the
    # floor's doing (tests/test_time_rules.py, tests/test_mode_override.py, tests/test_remote_management.py).
    not_on_the_floor = {"clock_stepped", "mode_overridden", "mode_override_cleared", "remote_command"}
    not_on_the_floor |= {"config_changed", "dispenser_message", "token_replaced"}  # the last: restored journals only
    assert {e.TYPE for e in floor.events} == set(ev.EVENT_TYPES) - {
        "counter_resumed",
        "counter_closed",
    } - not_on_the_floor


def test_snapshot_round_trip(small: OfficeConfig) -> None:
    live = _busy_floor(small).state
    data = json.loads(json.dumps(live.to_snapshot()))
    kept = json.dumps(data)
    restored = OfficeState.from_snapshot(data)
    assert json.dumps(data) == kept  # the caller's data is not consumed
    assert restored.tickets == live.tickets
    assert restored.counters == live.counters
    assert restored.queues == live.queues
    assert restored.last_number == live.last_number
    assert restored.last_seq == live.last_seq
    assert restored == live
    assert OfficeState.from_snapshot(data) == live  # and can be read twice


def test_snapshot_keeps_a_token_that_is_not_ascii(small: OfficeConfig) -> None:
    floor = Floor(small)
    floor.run(IssueTicket("a", "整理券-1"))
    restored = OfficeState.from_snapshot(json.loads(json.dumps(floor.state.to_snapshot())))
    assert restored == floor.state
    assert restored.tickets["A-001"].token_hash == hashlib.sha256("整理券-1".encode()).hexdigest()


def test_snapshot_of_an_empty_state(small: OfficeConfig) -> None:
    assert OfficeState.from_snapshot(json.loads(json.dumps(OfficeState().to_snapshot()))) == OfficeState()


def test_snapshot_format_is_checked() -> None:
    data = OfficeState().to_snapshot()
    data["format"] = 99
    with pytest.raises(ValueError, match="format 99"):
        OfficeState.from_snapshot(data)


def test_a_restored_office_decides_like_the_live_one(small: OfficeConfig) -> None:
    floor = _busy_floor(small)
    restored = Office(small, OfficeState.from_snapshot(json.loads(json.dumps(floor.state.to_snapshot()))))
    for command in [CallNext("1"), Return("A-003"), IssueTicket("a", "t"), CloseCounter("1"), ResumeCounter("2")]:
        floor.tick()
        assert restored.execute(command, floor.now) == floor.run(command)
    assert restored.state == floor.state


def test_replaying_the_stored_records_rebuilds_the_live_state(small: OfficeConfig) -> None:
    floor = _busy_floor(small)
    floor.run(StartDay(), at(9, day=16))
    floor.issue("a")
    replayed = OfficeState()
    for e in floor.events:
        record = json.loads(json.dumps(e.body()))
        again = ev.event_from_record(e.seq, ev.format_ts(e.ts), e.TYPE, record)
        assert again == e
        replayed.apply(again)
    assert replayed == floor.state


def test_replay_refuses_a_gap(small: OfficeConfig) -> None:
    floor = _busy_floor(small)
    state = OfficeState()
    state.apply(floor.events[0])
    with pytest.raises(ValueError, match="out of order"):
        state.apply(floor.events[2])


def test_public_record_leaves_the_token_out(small: OfficeConfig) -> None:
    floor = Floor(small)
    floor.issue("a")
    issued = floor.events[-1]
    record = ev.public_record(issued, "small")
    assert record["type"] == "ticket_issued" and record["office"] == "small" and record["ticket"] == "A-001"
    assert "token" not in record and record["token_hash"] == issued.token_hash  # type: ignore[attr-defined]
    with pytest.raises(ev.EventFormatError, match="unknown type"):
        ev.event_from_record(1, record["ts"], "teleported", {})
