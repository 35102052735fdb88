"""The alert rules (central/alerts/engine.py): when "near", "called" and "no_show" are due, once
per wait, from the ticket's current place and estimate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from central.alerts.engine import Choice, TicketNow, Watch, choice_problem, step
from office.config import AlertSettings

T0 = datetime(2027, 3, 29, 10, 0, tzinfo=timezone(timedelta(hours=9)))


def waiting(ahead: int, call_in_min: float | None = None, requeued: bool = False) -> TicketNow:
    call_from = T0 + timedelta(minutes=call_in_min) if call_in_min is not None else None
    return TicketNow("waiting", ahead=ahead, call_from=call_from, requeued=requeued)


def run(watch: Watch, tickets: list[TicketNow | None], now: datetime = T0) -> list[list[str]]:
    out = []
    for t in tickets:
        s = step(watch, t, now)
        watch = s.watch
        out.append(list(s.notices) + (["END"] if s.ended else []))
    return out


def test_n_ahead_fires_once_as_the_queue_moves_even_if_it_moves_back() -> None:
    w = Watch(Choice("ahead", 3))
    got = run(w, [waiting(6), waiting(4), waiting(3), waiting(2), waiting(4), waiting(3), waiting(1)])
    assert got == [[], [], ["near"], [], [], [], []]


def test_minutes_before_uses_the_earliest_expected_call_evaluated_again_each_time() -> None:
    w = Watch(Choice("minutes", 10))
    # M 10 and its 2 minutes' margin: the estimate moves 25, 13, then a counter opens (12), back
    # to 15 — sent once.
    got = run(w, [waiting(8, 25), waiting(7, 13), waiting(6, 12), waiting(6, 15), waiting(2, 3)])
    assert got == [[], [], ["near"], [], []]
    # A larger M, a larger margin (a fifth of it): 30 minutes fires at 36.
    assert run(Watch(Choice("minutes", 30)), [waiting(9, 37), waiting(9, 36)]) == [[], ["near"]]


def test_minutes_before_without_an_estimate_waits_for_next_in_line_or_the_call() -> None:
    w = Watch(Choice("minutes", 10))
    assert run(w, [waiting(3, None), waiting(1, None), waiting(0, None)]) == [[], [], ["near"]]
    assert run(w, [waiting(3, None), TicketNow("called", counter="5")]) == [[], ["called"]]


def test_in_the_next_round_of_calls_it_is_near_whatever_the_estimate() -> None:
    """Fewer ahead than counters calling the service: the next counter to come free calls it
    (a resident who does not come frees one in a minute), even if the estimate says 20 minutes."""
    w = Watch(Choice("minutes", 10))
    far = T0 + timedelta(minutes=20)
    assert run(w, [TicketNow("waiting", ahead=3, call_from=far, callers=3)]) == [[]]
    assert run(w, [TicketNow("waiting", ahead=2, call_from=far, callers=3)]) == [["near"]]
    assert run(w, [TicketNow("waiting", ahead=2, call_from=far, callers=None)]) == [[]]


def test_a_call_without_near_first_sends_only_the_call_and_never_near_after_it() -> None:
    w = Watch(Choice("ahead", 1))
    got = run(w, [waiting(5), TicketNow("called", counter="5"), TicketNow("held"), waiting(0)])
    assert got == [[], ["called"], [], []]


def test_a_recall_is_not_alerted_again_and_served_ends_the_watch() -> None:
    w = Watch(Choice("ahead", 3))
    called = TicketNow("called", counter="2")
    assert run(w, [waiting(2), called, called, TicketNow("done")]) == [["near"], ["called"], [], ["END"]]


def test_a_requeued_no_show_is_told_and_its_second_wait_alerts_again() -> None:
    w = Watch(Choice("ahead", 2))
    got = run(
        w,
        [
            waiting(1),
            TicketNow("called", counter="4"),
            waiting(9, requeued=True),
            waiting(8, requeued=True),
            waiting(2, requeued=True),
            TicketNow("called", counter="1", requeued=True),
            TicketNow("no_show", requeued=True),
        ],
    )
    assert got == [["near"], ["called"], ["no_show"], [], ["near"], ["called"], ["no_show", "END"]]


def test_a_final_no_show_seen_at_once_is_one_notice() -> None:
    w = Watch(Choice("ahead", 2))
    assert run(w, [waiting(5), TicketNow("no_show", requeued=True)]) == [[], ["no_show", "END"]]
    assert run(w, [TicketNow("no_show")]) == [["no_show", "END"]]


def test_gone_from_the_view_ends_the_watch_silently() -> None:
    assert run(Watch(Choice("ahead", 3)), [waiting(5), None]) == [[], ["END"]]


def test_the_state_survives_a_round_trip_through_its_own_values() -> None:
    """A restarted central reloads the watch: what was sent stays sent."""
    first = step(Watch(Choice("ahead", 3)), waiting(2), T0)
    reloaded = Watch(Choice(first.watch.choice.by, first.watch.choice.value), frozenset(sorted(first.watch.sent)))
    assert step(reloaded, waiting(1), T0).notices == ()


@pytest.mark.parametrize(
    ("by", "value", "problem"),
    [
        ("ahead", 3, None),
        ("minutes", 30, None),
        ("ahead", 0, "1-10"),
        ("minutes", 4, "5-30"),
        ("minutes", 10.0, "whole number"),
        ("ahead", True, "whole number"),
        ("soon", 3, '"ahead" or "minutes"'),
    ],
)
def test_a_choice_is_checked_against_the_offices_range(by: object, value: object, problem: str | None) -> None:
    got = choice_problem(by, value, AlertSettings())
    assert got is None if problem is None else got is not None and problem in got
