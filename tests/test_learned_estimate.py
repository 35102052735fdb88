"""The learned wait estimate behind the office model's seam (office/waittime/estimator.py) and on
the gateway (gateway/estimates.py): learned from the journal's own past days off the loop, kept
current with the journal's events, central's estimate taking over while current, the capacity
estimate until there is a predictor."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from counterfloor.simulate import DaySimulation, record_day
from gateway import estimates
from gateway.journal import TicketJournal, new_token
from office.config import OfficeConfig
from office.estimate import UNREACHABLE_MINUTES, CapacityEstimator
from office.model import IssueTicket, Reprint, TicketReady
from office.waittime import split_days, train
from office.waittime.estimator import CENTRAL_FRESH_S, CentralEstimate, LearnedEstimator
from office.waittime.predictors import Best
from office.waittime.records import from_events
from tests.conftest import EXAMPLES, tokyo
from tests.floor_support import HeldClock, held_gateway

PAST = [date(2027, 6, 14), date(2027, 6, 15), date(2027, 6, 16)]  # Monday to Wednesday
TODAY = date(2027, 6, 17)


@pytest.fixture(scope="module")
def learned(oizumi: OfficeConfig) -> Best:
    """Best, learned from three simulated past days of Oizumi."""
    records = []
    for day in PAST:
        records += from_events(record_day(oizumi, day, seed=7).events, oizumi.id)
    predictor = train("best", split_days(records))
    assert isinstance(predictor, Best)
    return predictor


def test_a_simulated_day_can_run_the_learned_estimate_on_its_board(oizumi: OfficeConfig, learned: Best) -> None:
    """record_day(learned=…): every ticket's estimate comes from the learned predictor, reading the
    day's own events as a gateway reads its journal (the demo's history of an office that runs it),
    and the residents, walking away on other figures, make another day."""
    asked: list[int] = []

    class Counting:
        def predict(self, floor: Any, tickets: Any) -> Any:
            asked.append(len(tickets))
            return learned.predict(floor, tickets)

    plain = record_day(oizumi, TODAY, seed=7)
    board = record_day(oizumi, TODAY, seed=7, learned=Counting())  # type: ignore[arg-type]
    issued = sum(e.TYPE == "ticket_issued" for e in board.events)
    assert issued and len(asked) >= issued, "every ticket's estimate is the learned predictor's"
    assert [e.seq for e in board.events] == list(range(1, len(board.events) + 1))
    assert [e.TYPE for e in plain.events] != [e.TYPE for e in board.events]


def _journal_until(path: Path, config: OfficeConfig, text: str, days: list[date], until: datetime) -> TicketJournal:
    """A journal with whole simulated days, then the last day played up to `until`."""
    journal = TicketJournal.create(path, config, text, clock=lambda: until)
    for day in days:
        sim = DaySimulation(config, day, seed=7, office=journal.office, execute=journal.execute, make_token=new_token)
        sim.run_until(until) if day == until.date() else sim.run()
    return journal


def test_without_a_predictor_the_capacity_estimate_answers(oizumi: OfficeConfig, tmp_path: Path) -> None:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    at = tokyo(2027, 6, 17, 10, 30)
    journal = _journal_until(tmp_path / "j.db", oizumi, text, [TODAY], at)
    try:
        learned = estimates.install(journal)
        state = journal.office.state
        want = CapacityEstimator(oizumi).estimate(state, "move", len(state.queues.get("move", ())), at)
        assert learned.estimate(state, "move", len(state.queues.get("move", ())), at) == want
        assert learned.answers == {"learned": 0, "central": 0, "fallback": 1}
    finally:
        journal.close()


def test_a_learned_estimate_follows_the_journal_and_prints_on_the_ticket(
    oizumi: OfficeConfig, learned: Best, tmp_path: Path
) -> None:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    at = tokyo(2027, 6, 17, 10, 30)
    journal = _journal_until(tmp_path / "j.db", oizumi, text, [TODAY], at)
    try:
        estimator = estimates.install(journal, learned)
        state = journal.office.state
        assert estimator.seq < state.last_seq  # the floor reads the day when first asked
        first = estimator.estimate(state, "move", 0, at)
        assert estimator.seq == state.last_seq and estimator.floor.day == "2027-06-17"
        # The same floor replayed from the day's records gives the same prediction.
        fresh = LearnedEstimator(oizumi, journal.events_after, learned)
        assert fresh.estimate(state, "move", 0, at) == first
        assert first.p10_s <= first.mean_s <= first.p90_s and first.mean_s < UNREACHABLE_MINUTES * 60
        # A ticket taken now gets that estimate on its paper, as minutes p10–p90.
        decision = journal.execute(IssueTicket("move", new_token()), at)
        (ready,) = [e for e in decision.effects if isinstance(e, TicketReady)]
        assert ready.wait == first
        assert estimator.answers["learned"] >= 2 and estimator.answers["fallback"] == 0
        # Read once: the floor never applies an event twice.
        seen = estimator.seq
        estimator.estimate(journal.office.state, "move", 1, at)
        assert estimator.seq == journal.office.state.last_seq == seen + 1
        # Its reprint ten minutes on shows what is left from then, no more than at issue.
        later = at + timedelta(minutes=10)
        reprint = journal.execute(Reprint(ready.ticket), later)
        (again,) = [e for e in reprint.effects if isinstance(e, TicketReady)]
        assert again.wait.mean_s <= ready.wait.mean_s
    finally:
        journal.close()


def test_central_answers_while_current_and_fresh(oizumi: OfficeConfig, learned: Best, tmp_path: Path) -> None:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    at = tokyo(2027, 6, 17, 10, 30)
    journal = _journal_until(tmp_path / "j.db", oizumi, text, [TODAY], at)
    clock = HeldClock()
    try:
        estimator = LearnedEstimator(oizumi, journal.events_after, learned, clock=clock.now)
        journal.office.estimator = estimator
        state = journal.office.state
        own = estimator.estimate(state, "move", 0, at)
        estimator.take_central("move", CentralEstimate(state.last_seq, 600.0, 300.0, 900.0, clock.now()))
        central = estimator.estimate(state, "move", 0, at)
        assert (central.mean_s, central.p10_s, central.p90_s) == (600.0, 300.0, 900.0)
        # An older seq never replaces a newer one.
        estimator.take_central("move", CentralEstimate(state.last_seq - 1, 60.0, 30.0, 90.0, clock.now()))
        assert estimator.estimate(state, "move", 0, at) == central
        # Too old: the gateway's own answers again.
        clock.t += CENTRAL_FRESH_S + 1
        assert estimator.estimate(state, "move", 0, at) == own
        # Not current: an event central has not seen yet.
        estimator.take_central("move", CentralEstimate(state.last_seq, 600.0, 300.0, 900.0, clock.now()))
        journal.execute(IssueTicket("move", new_token()), at)
        assert estimator.estimate(journal.office.state, "move", 1, at).mean_s != 600.0
    finally:
        journal.close()


def test_no_counter_left_today_is_unreachable(oizumi: OfficeConfig, learned: Best, tmp_path: Path) -> None:
    """After the day's last shift, with every counter closed, the learned estimate says "not
    today" (the cut-off's figure), not a guess from the plain arithmetic."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    journal = _journal_until(tmp_path / "j.db", oizumi, text, [TODAY], tokyo(2027, 6, 17, 23, 0))
    try:
        estimator = estimates.install(journal, learned)
        state = journal.office.state
        assert all(c.status.value == "closed" for c in state.counters.values())
        wait = estimator.estimate(state, "move", 0, tokyo(2027, 6, 17, 19, 30))
        assert wait.low_minutes >= UNREACHABLE_MINUTES and estimator.answers["learned"] == 1
    finally:
        journal.close()


def test_the_gateway_learns_from_its_journal_off_the_loop(oizumi: OfficeConfig, tmp_path: Path) -> None:
    """Three past days in the journal: the gateway learns at start in its own thread, and the
    next ticket's estimate is the learned one; with none, the capacity estimate answers."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8").split("\n[gateway]")[0] + "\n[gateway]\n"
    from office.config import parse_config

    config = parse_config(text, source=str(tmp_path / "office.toml"))
    opening = tokyo(2027, 6, 17, 9, 0)
    journal = _journal_until(tmp_path / "j.db", config, text, PAST, opening)
    journal.close()
    gw, _ = held_gateway(tmp_path, config, text, opening)
    gw.start()
    try:
        assert gw.learning is not None and gw.estimator is not None
        assert gw.learning.wait(60)
        gw.step()  # the learned predictor is taken in the loop's thread
        # The journal's business day is still Wednesday's: learned from the days before it.
        assert gw.learning.runs == 1 and gw.learning.last_days == 2
        first = gw.estimator.predictor
        assert isinstance(first, Best)
        assert gw.handle({"cmd": "open", "counter": "1"})["ok"]  # Thursday's first event
        answer = gw.handle({"cmd": "issue", "service": "move"})
        assert answer["ok"], answer
        assert gw.estimator.answers["learned"] >= 1
        # A new business day: learned again, Wednesday included.
        gw.step()
        assert gw.learning.wait(60)
        gw.step()
        assert gw.learning.runs == 2 and gw.learning.last_days == 3
        assert isinstance(gw.estimator.predictor, Best) and gw.estimator.predictor is not first
        # A config pushed over it: the learned estimate stays under the rebuilt model.
        assert gw.reconfigure(text.replace("Oizumi", "Oizumi "), via="test")["ok"]
        assert gw.journal is not None and gw.journal.office.estimator is gw.estimator
        assert gw.estimator.predictor is not None
    finally:
        gw.close()


@pytest.mark.slow
def test_central_estimates_reach_the_gateway_over_mosquitto(tmp_path: Path) -> None:
    """central's retained estimate for a service, current to the office's last event, answers
    the next ticket on the floor; a malformed one is dropped and changes nothing."""
    from office import mqtt as schema
    from tests.floor_support import floor_without_devices, held_gateway
    from tests.mqtt_support import connect, plain_mosquitto

    config, text = floor_without_devices(tmp_path)
    with plain_mosquitto(tmp_path / "mosquitto") as broker:
        gw, _ = held_gateway(tmp_path, config, text, broker_url=f"mqtt://127.0.0.1:{broker.port}")
        central = connect(broker.port)
        gw.start()
        try:
            assert gw.handle({"cmd": "open", "counter": "1"})["ok"]
            assert gw.journal is not None and gw.estimator is not None
            seq = gw.journal.office.state.last_seq
            topic = schema.topic("oizumi", schema.ESTIMATES, "move")
            central.publish(topic, b"{not json", qos=1, retain=False)
            message = schema.estimate_message("oizumi", "move", seq, 0, 1500.0, 900.0, 2400.0, "2027-03-15T10:00")
            central.publish(topic, schema.encode(message), qos=1, retain=True)
            deadline = time.monotonic() + 20
            while "move" not in gw.estimator.central:
                assert time.monotonic() < deadline, "central's estimate never reached the gateway"
                gw.step()
            answer = gw.handle({"cmd": "issue", "service": "move"})
            assert answer["ok"] and gw.estimator.answers["central"] == 1, answer
            assert "15–40 min" in answer["output"], answer  # 900 s – 2400 s, printed in minutes
        finally:
            gw.close()
            central.publish(schema.topic("oizumi", schema.ESTIMATES, "move"), b"", qos=1, retain=True)
            central.close()


def test_a_journal_with_too_few_past_days_starts_no_learning_process(tmp_path: Path) -> None:
    delivered: list[object] = []
    learning = estimates.Learning(tmp_path / "j.db", "oizumi", delivered.append, lambda day, n: ["2027-06-16"])
    learning.step(TODAY)
    assert learning.learned_for == TODAY and learning.wait(0) and learning.runs == 0 and not delivered
    learning.step(TODAY)  # the same day: nothing again
    assert learning.runs == 0
