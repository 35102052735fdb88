"""The soak benchmark's smoke in CI (bench/soak.py; the month and its memory goal are the benchmark's):
the same code through the whole system — embedded broker, both example offices' gateways, central
— for Saturday to Monday: Nerima alone on Saturday while Oizumi idles closed, Sunday closed for
both, Monday both open (Nerima's numbers restart, its journal goes on from Saturday). Every day's
invariants hold and every error counter is zero.

The checker itself is tested too: each invariant, broken on purpose in Monday's real facts, is
reported — so a green smoke cannot come from a check that sees nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date

import pytest

from bench.soak import DayFacts, SoakReport, check_office_day, load_sources, soak
from office import events as ev
from office.state import TicketStatus

pytestmark = pytest.mark.slow
SATURDAY = date(2027, 6, 5)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SoakReport, list[DayFacts]]:
    facts: list[DayFacts] = []
    report = soak(load_sources(), SATURDAY, 3, tmp_path_factory.mktemp("soak"), on_facts=facts.append)
    return report, facts


def test_each_day_played_through_the_system_and_checked(run: tuple[SoakReport, list[DayFacts]]) -> None:
    report, facts = run
    assert [(d.day.isoformat(), d.open_offices) for d in report.days] == [
        ("2027-06-05", "nerima"),
        ("2027-06-06", "closed"),
        ("2027-06-07", "nerima, oizumi"),
    ]
    tickets = {(f.day.isoformat(), f.config.id): len(_issued(f)) for f in facts}
    assert tickets[("2027-06-05", "oizumi")] == tickets[("2027-06-06", "nerima")] == 0
    assert tickets[("2027-06-05", "nerima")] > 100
    assert tickets[("2027-06-07", "nerima")] > 300 and tickets[("2027-06-07", "oizumi")] > 100
    # Nerima's journal went on from Saturday to Monday; central has both days, seq for seq.
    monday = _facts(facts, "2027-06-07", "nerima")
    saturday = _facts(facts, "2027-06-05", "nerima")
    assert monday.seq_before == saturday.last_seq > 0
    assert monday.central_seqs == (monday.last_seq, monday.last_seq)


def test_every_days_invariants_hold(run: tuple[SoakReport, list[DayFacts]]) -> None:
    report, _ = run
    assert report.violations == []


def test_every_error_counter_is_zero(run: tuple[SoakReport, list[DayFacts]]) -> None:
    report, _ = run
    for office in ("nerima", "oizumi"):
        for name in ("device links: timeouts", "MQTT link: reconnects", "MQTT link: not connected"):
            assert f"{office}: {name}" in report.errors  # the counters are read, not absent
    assert "central: problems" in report.errors
    assert {k: v for k, v in report.errors.items() if v} == {}
    assert report.warnings == []
    assert all(d.errors == 0 for d in report.days)


# -- the checker sees each invariant broken ---------------------------------------------------------------
def _facts(facts: list[DayFacts], day: str, office: str) -> DayFacts:
    return next(f for f in facts if f.day.isoformat() == day and f.config.id == office)


def _issued(f: DayFacts) -> list[ev.TicketIssued]:
    return [e for e in f.events if isinstance(e, ev.TicketIssued)]


def _renumbered(f: DayFacts) -> DayFacts:
    """The service of the day's first ticket numbered on from Saturday instead of restarting."""
    first = _issued(f)[0]
    events = [
        dataclasses.replace(e, number=e.number + 50) if isinstance(e, ev.TicketIssued) and e.service == first.service
        else e
        for e in f.events
    ]  # fmt: skip
    return dataclasses.replace(f, events=events)


def _without_event(kind: type[ev.Event]) -> Callable[[DayFacts], DayFacts]:
    def mutate(f: DayFacts) -> DayFacts:
        i = next(i for i, e in enumerate(f.events) if isinstance(e, kind))
        return dataclasses.replace(f, events=f.events[:i] + f.events[i + 1 :])

    return mutate


def _served_twice(f: DayFacts) -> DayFacts:
    served = next(e for e in f.events if isinstance(e, ev.Served))
    extra = dataclasses.replace(served, seq=f.last_seq + 1)
    return dataclasses.replace(f, events=[*f.events, extra], last_seq=f.last_seq + 1)


def _issued_twice(f: DayFacts) -> DayFacts:
    issued = _issued(f)[-1]
    extra = dataclasses.replace(issued, seq=f.last_seq + 1)
    return dataclasses.replace(f, events=[*f.events, extra], last_seq=f.last_seq + 1)


def _one_more_by_the_simulation(f: DayFacts) -> DayFacts:
    assert f.counted is not None
    issued, served, no_show, left = f.counted
    return dataclasses.replace(f, counted=(issued + 1, served, no_show, left + 1))


def _floor_disagrees(f: DayFacts) -> DayFacts:
    ticket = next(t for t, s in f.floor.items() if s is TicketStatus.SERVED)
    return dataclasses.replace(f, floor={**f.floor, ticket: TicketStatus.WAITING})


def _central_missing_last(f: DayFacts) -> DayFacts:
    return dataclasses.replace(f, central=f.central[:-1], central_seqs=(f.last_seq - 1, f.last_seq - 1))


def _central_gap(f: DayFacts) -> DayFacts:
    middle = len(f.central) // 2
    return dataclasses.replace(f, central=f.central[:middle] + f.central[middle + 1 :])


def _central_beyond(f: DayFacts) -> DayFacts:
    return dataclasses.replace(f, central_seqs=(f.last_seq + 1, f.last_seq + 1))


def _central_altered(f: DayFacts) -> DayFacts:
    i = next(i for i, r in enumerate(f.central) if r["type"] == ev.Called.TYPE)
    record = {**f.central[i], "counter": "nowhere"}
    return dataclasses.replace(f, central=[*f.central[:i], record, *f.central[i + 1 :]])


def _central_unknown_session(f: DayFacts) -> DayFacts:
    return dataclasses.replace(f, central=[{**r, "session": f.session + 1} for r in f.central])


def _tickets_on_a_closed_day(f: DayFacts) -> DayFacts:
    return dataclasses.replace(f, counted=None)


BREAKAGES: dict[str, tuple[Callable[[DayFacts], DayFacts], str]] = {
    "numbers do not restart": (_renumbered, "'s numbers are not"),
    "a seq missing from the journal": (_without_event(ev.Called), "seqs are not"),
    "a ticket's issue lost": (_without_event(ev.TicketIssued), "not issued that day"),
    "the day's schedule lost": (_without_event(ev.Schedule), "new-day schedule"),
    "a ticket issued twice": (_issued_twice, "issued twice"),
    "a ticket served twice": (_served_twice, "ended more than once"),
    "the simulation issued a ticket the journal lacks": (_one_more_by_the_simulation, "simulation"),
    "the gateway's floor disagrees": (_floor_disagrees, "the gateway's floor"),
    "central lacks the last event": (_central_missing_last, "central's store"),
    "central has a gap": (_central_gap, "central's store differs"),
    "central holds more than the journal": (_central_beyond, "central's store: last seq"),
    "central's record differs": (_central_altered, "central's store differs"),
    "central's records name a later session": (_central_unknown_session, "sessions"),
    "tickets on a closed day": (_tickets_on_a_closed_day, "closed that day"),
}


def test_the_checker_passes_the_real_day(run: tuple[SoakReport, list[DayFacts]]) -> None:
    _, facts = run
    assert all(check_office_day(f) == [] for f in facts)


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_the_checker_reports_each_invariant_broken(run: tuple[SoakReport, list[DayFacts]], breakage: str) -> None:
    _, facts = run
    monday = _facts(facts, "2027-06-07", "nerima")  # a day after another: seq and numbers go on or restart
    mutate, says = BREAKAGES[breakage]
    problems = check_office_day(mutate(monday))
    assert any(says in p for p in problems), problems
