"""The alerts service (central/alerts/service.py) on a real central worker and its SQLite store:
subscriptions stored, rules evaluated as the floor moves and as the clock runs, notices handed to
the channels' outboxes, subscriptions deleted when the ticket ends, swept with the day, kept across
a restart. The channel is a recording one (the real ones: test_alert_mail.py, test_alert_webpush.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from central.alerts.engine import Choice
from central.alerts.notice import Gone, Notice
from central.alerts.outbox import Outbox
from central.alerts.service import AlertService
from central.store import open_store
from central.web.app import token_hash
from tests.web_support import DAY, OFFICE, SCHEDULE, START, TOKENS, OfficeDriver, names, office_floor

WAIT_S = 10.0


class Recorder:
    """A channel that keeps what it is given; `gone` targets answer Gone."""

    name = "push"

    def __init__(self) -> None:
        self.got: list[tuple[Notice, str]] = []
        self.gone: set[str] = set()
        self.cond = threading.Condition()

    def deliver(self, notice: Notice, target: str) -> None:
        if target in self.gone:
            raise Gone("expired")
        with self.cond:
            self.got.append((notice, target))
            self.cond.notify_all()

    def kinds(self) -> list[str]:
        with self.cond:
            return [n.kind for n, _ in self.got]

    def wait_for(self, count: int) -> list[tuple[Notice, str]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= count, WAIT_S), f"{count} deliveries: got {self.got}"
            return list(self.got)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@contextmanager
def alerts(
    tmp_path: Path, floor: OfficeDriver, recorder: Recorder, clock: Callable[[], datetime], tick_s: float = 3600.0
) -> Iterator[tuple[AlertService, Outbox]]:
    box: dict[str, AlertService] = {}
    outbox = Outbox(recorder, on_gone=lambda n, t: box["service"].gone(n, "push", t))
    service = AlertService(
        floor.hub,
        str(tmp_path / "central.db"),
        names(),
        lambda office, channel: outbox if channel == "push" else None,
        clock=clock,
        tick_s=tick_s,
    )
    box["service"] = service
    service.start()
    try:
        yield service, outbox
    finally:
        service.close()
        outbox.close()


def stored(tmp_path: Path) -> list[tuple[str, str, dict[str, object]]]:
    with open_store(str(tmp_path / "central.db")) as store:
        return store.alerts(OFFICE)


def test_near_then_called_then_served_deletes_the_subscription(tmp_path: Path) -> None:
    rec = Recorder()
    with office_floor(tmp_path) as floor, alerts(tmp_path, floor, rec, lambda: START) as (service, outbox):
        first, second = floor.issue(TOKENS[1]), floor.issue(TOKENS[2])
        mine = floor.issue(TOKENS[0])
        digest = token_hash(TOKENS[0])
        sub = service.subscribe(OFFICE, digest, DAY, "ja", Choice("ahead", 1), {"push": "sub-1"}).result(WAIT_S)
        assert sub.targets == {"push": "sub-1"} and rec.kinds() == []  # two ahead: not yet
        assert [(d, r["by"], r["value"]) for d, _, r in stored(tmp_path)] == [(digest, "ahead", 1)]
        floor.event("called", ticket=first, counter="5")
        near = rec.wait_for(1)[0]
        assert (near[0].kind, near[0].ticket, near[0].ahead, near[1]) == ("near", mine, 1, "sub-1")
        assert near[0].service_name == "転入・転出届" or near[0].service_name  # the office's words
        assert "near:0" in stored(tmp_path)[0][2]["sent"]  # stored as sent
        floor.event("served", ticket=first, counter="5")
        floor.event("called", ticket=second, counter="5")
        floor.event("served", ticket=second, counter="5")
        floor.event("called", ticket=mine, counter="5")
        called = rec.wait_for(2)[1][0]
        assert (called.kind, called.counter_name) == ("called", "5番窓口")
        floor.event("served", ticket=mine, counter="5")
        floor.event("ticket_issued", ticket="A-009", service="move", number=9, token_hash=token_hash("x" * 20))
        # The served ticket's subscription is deleted, from memory and from the store.
        assert service.settle().result(WAIT_S) is None  # every view before it evaluated
        assert outbox.wait_idle(WAIT_S)
        assert service.subscription(OFFICE, digest) is None and stored(tmp_path) == []
        assert rec.kinds() == ["near", "called"]


def test_a_ticket_already_near_is_told_at_once_and_only_once(tmp_path: Path) -> None:
    rec = Recorder()
    with office_floor(tmp_path) as floor, alerts(tmp_path, floor, rec, lambda: START) as (service, outbox):
        floor.issue(TOKENS[0])
        digest = token_hash(TOKENS[0])
        service.subscribe(OFFICE, digest, DAY, "en", Choice("ahead", 3), {"push": "p"}).result(WAIT_S)
        assert rec.wait_for(1)[0][0].kind == "near"
        # Choosing again (another threshold, the same channel) does not repeat it.
        service.subscribe(OFFICE, digest, DAY, "en", Choice("ahead", 2), {}).result(WAIT_S)
        floor.issue(TOKENS[1])
        assert service.settle().result(WAIT_S) is None
        assert outbox.wait_idle(WAIT_S) and rec.kinds() == ["near"]


def test_minutes_before_comes_due_with_the_clock_without_any_event(tmp_path: Path) -> None:
    rec = Recorder()
    clock = Clock(START)
    with office_floor(tmp_path) as floor:
        tickets = [floor.issue(t) for t in TOKENS]
        view = floor.hub.view(OFFICE)
        assert view is not None
        call_from = view.tickets[token_hash(TOKENS[2])].call_from
        assert call_from is not None
        clock.at = call_from - timedelta(minutes=30)
        with alerts(tmp_path, floor, rec, clock, tick_s=0.05) as (service, _):
            service.subscribe(OFFICE, token_hash(TOKENS[2]), DAY, "ja", Choice("minutes", 10), {"push": "p"}).result(
                WAIT_S
            )
            assert rec.kinds() == [] and tickets
            clock.at = call_from - timedelta(minutes=9)  # the floor has not moved: only the clock
            notice = rec.wait_for(1)[0][0]
            assert (notice.kind, notice.minutes) == ("near", 9)


def test_a_restarted_service_sends_nothing_twice(tmp_path: Path) -> None:
    rec = Recorder()
    digest = token_hash(TOKENS[0])
    with office_floor(tmp_path) as floor:
        first = floor.issue(TOKENS[1])
        mine = floor.issue(TOKENS[0])
        with alerts(tmp_path, floor, rec, lambda: START) as (service, _):
            service.subscribe(OFFICE, digest, DAY, "ja", Choice("ahead", 1), {"push": "p"}).result(WAIT_S)
            assert rec.wait_for(1)[0][0].kind == "near"
        with alerts(tmp_path, floor, rec, lambda: START) as (service, outbox):
            assert service.settle().result(WAIT_S) is None
            floor.event("called", ticket=first, counter="5")  # a new view: near is evaluated again
            floor.event("served", ticket=first, counter="5")
            floor.event("called", ticket=mine, counter="6")
            assert [n.kind for n, _ in rec.wait_for(2)] == ["near", "called"]
            assert outbox.wait_idle(WAIT_S) and rec.kinds() == ["near", "called"]


def test_a_target_the_channel_says_is_gone_is_dropped(tmp_path: Path) -> None:
    rec = Recorder()
    rec.gone.add("expired-sub")
    with office_floor(tmp_path) as floor, alerts(tmp_path, floor, rec, lambda: START) as (service, outbox):
        floor.issue(TOKENS[0])
        digest = token_hash(TOKENS[0])
        service.subscribe(OFFICE, digest, DAY, "ja", Choice("ahead", 3), {"push": "expired-sub"}).result(WAIT_S)
        assert outbox.wait_idle(WAIT_S) and outbox.counts.gone == 1
        assert service.settle().result(WAIT_S) is None  # the drop is queued before this
        assert stored(tmp_path)[0][2]["targets"] == {}
        sub = service.subscription(OFFICE, digest)
        assert sub is not None and sub.targets == {}


def test_the_next_business_day_sweeps_the_last_ones_subscriptions(tmp_path: Path) -> None:
    rec = Recorder()
    with office_floor(tmp_path) as floor, alerts(tmp_path, floor, rec, lambda: START) as (service, _):
        floor.issue(TOKENS[0])
        floor.issue(TOKENS[1])
        for token in TOKENS[:2]:
            service.subscribe(OFFICE, token_hash(token), DAY, "ja", Choice("ahead", 1), {}).result(WAIT_S)
        assert len(stored(tmp_path)) == 2
        floor.at = floor.at.replace(day=16)
        floor.event("schedule", **{**SCHEDULE, "date": "2027-03-16"})
        assert service.settle().result(WAIT_S) is None
        assert stored(tmp_path) == [] and service.subscriptions() == 0
        assert service.counts.swept + service.counts.ended == 2


def test_a_requeued_no_show_is_told_and_a_final_one_gets_the_offices_rule(tmp_path: Path) -> None:
    rec = Recorder()
    with office_floor(tmp_path) as floor, alerts(tmp_path, floor, rec, lambda: START) as (service, outbox):
        mine = floor.issue(TOKENS[0])
        digest = token_hash(TOKENS[0])
        service.subscribe(OFFICE, digest, DAY, "en", Choice("ahead", 1), {"push": "p"}).result(WAIT_S)
        floor.event("called", ticket=mine, counter="5")
        assert rec.wait_for(2)[1][0].kind == "called"
        floor.event("no_show", ticket=mine, counter="5", requeued=True)
        got = rec.wait_for(4)
        # Back in the queue with nobody ahead: its second wait is near at once.
        assert [n.kind for n, _ in got] == ["near", "called", "no_show", "near"]
        assert got[2][0].rejoin is not None and "end of the queue" in got[2][0].rejoin
        floor.event("called", ticket=mine, counter="5")
        # Seen before the no-show (the service evaluates the latest view: a call and a no-show in one
        # view would be the no-show alone, as after minutes of recalls they never are).
        assert rec.wait_for(5)[4][0].kind == "called"
        floor.event("no_show", ticket=mine, counter="5", requeued=False)
        last = rec.wait_for(6)[-1][0]
        assert last.kind == "no_show" and last.rejoin is not None and "floor manager" in last.rejoin
        assert service.settle().result(WAIT_S) is None
        assert outbox.wait_idle(WAIT_S) and stored(tmp_path) == []


def test_a_bad_subscription_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    rec = Recorder()
    with office_floor(tmp_path) as floor, alerts(tmp_path, floor, rec, lambda: START) as (service, _):
        with pytest.raises(ValueError, match="token hash"):
            service.subscribe(OFFICE, "not-a-hash", DAY, "ja", Choice("ahead", 1), {}).result(WAIT_S)
        assert stored(tmp_path) == [] and service.subscriptions() == 0
