"""When a subscribed ticket's alerts are due (pure: a ticket's view, its watch and the time in,
notices out).

Owns the rules of docs/alerts.md. A resident picks "N people ahead" or "about M minutes before";
the rule is evaluated again at every view of the office and every tick of the clock, from the
ticket's current place and central's current estimate — never once at opt-in — and each alert
goes once per wait: a ticket whose estimate moves back past the threshold is not alerted twice.
"About M minutes before" fires when the earliest expected call (the estimate's p10) is at most M
minutes away plus a margin (`margin_s`: a fifth of M, at least 2 minutes) — for the push's way to
the phone, the time between two evaluations, and the estimate's error on a wait already under
way, which is wider than at issue. And whatever the estimate says, it fires once the ticket is in
the next round of calls (fewer people ahead than counters calling its service): then the next
counter to come free calls it, and counters come free early (a resident who does not come frees
one in a minute). Measured on simulated days (bench/alerts_timeliness.py, docs/alerts.md).

A missed call requeued once (rules.no_show = "requeue_once") starts a new wait: the resident is
told, and "near" and "called" may come again. A ticket served, transferred out, finally a no-show,
or gone from the day's view ends its watch (the caller deletes its subscription).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from central.alerts.notice import NoticeKind
from office.config import AlertSettings

By = Literal["ahead", "minutes"]


@dataclass(frozen=True, slots=True)
class Choice:
    """What the resident picked: alert at `value` people ahead, or `value` minutes before."""

    by: By
    value: int

    @classmethod
    def default(cls, settings: AlertSettings) -> Choice:
        return cls("ahead", settings.ahead)


def choice_problem(by: object, value: object, settings: AlertSettings) -> str | None:
    """None for a choice the office allows; else what is wrong, for the page's error."""
    if by not in ("ahead", "minutes"):
        return f'"by" must be "ahead" or "minutes" (got {by!r})'
    low, high = settings.ahead_range if by == "ahead" else settings.minutes_range
    if type(value) is not int or not low <= value <= high:
        return f'"value" must be a whole number {low}-{high} for "{by}" (got {value!r})'
    return None


@dataclass(frozen=True, slots=True)
class TicketNow:
    """What the engine needs of a ticket's view (central/web/view.py's TicketView)."""

    status: str  # waiting, called, held, done, no_show
    ahead: int | None = None
    call_from: datetime | None = None  # the estimate's p10 of its first call
    counter: str | None = None
    requeued: bool = False  # a no-show put back in the queue (its second wait)
    callers: int | None = None  # the open counters calling its service (None: not known)


@dataclass(frozen=True, slots=True)
class Watch:
    """One subscribed ticket's alert state: what was picked and which alerts went, per wait
    ("near:0", "called:0", "no_show:0", then ":1" in a requeued ticket's second wait)."""

    choice: Choice
    sent: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Step:
    watch: Watch  # as it is after the notices are sent
    notices: tuple[NoticeKind, ...]  # due now, in order
    ended: bool  # the ticket is done: delete its subscription


def step(watch: Watch, ticket: TicketNow | None, now: datetime) -> Step:
    """What is due for `ticket` (None: gone from the day's view) at `now`."""
    if ticket is None or ticket.status == "done":
        return Step(watch, (), True)
    wait = 1 if ticket.requeued else 0
    due: list[tuple[NoticeKind, str]] = []  # (kind, the key it is sent once under)
    if ticket.requeued and ticket.status != "no_show":
        due.append(("no_show", "no_show:0"))  # the first wait's missed call: told once, at the requeue
    if ticket.status == "no_show":
        due.append(("no_show", f"no_show:{wait}"))
    elif ticket.status == "called":
        due.append(("called", f"called:{wait}"))
    elif ticket.status == "waiting" and near(watch.choice, ticket, now):
        due.append(("near", f"near:{wait}"))
    notices: list[NoticeKind] = []
    sent = set(watch.sent)
    if ticket.requeued and ticket.status == "no_show":
        sent.add("no_show:0")  # missed twice before a view showed the first: one notice, the last
    for kind, key in due:
        if key not in sent:
            sent.add(key)
            notices.append(kind)
    # A call comes without "near" first: "near" is not sent after it (nor for a called ticket at all).
    if ticket.status == "called":
        sent.add(f"near:{wait}")
    ended = ticket.status == "no_show"
    return Step(replace(watch, sent=frozenset(sent)) if sent != watch.sent else watch, tuple(notices), ended)


def near(choice: Choice, ticket: TicketNow, now: datetime) -> bool:
    if choice.by == "ahead":
        return ticket.ahead is not None and ticket.ahead <= choice.value
    if ticket.ahead == 0 or (ticket.ahead is not None and ticket.callers and ticket.ahead < ticket.callers):
        # In the next round of calls (next in line, or fewer ahead than counters calling it): the
        # next counter to come free calls it, which may be any moment whatever the estimate says
        # — a resident who does not come frees a counter in a minute.
        return True
    if ticket.call_from is None:
        return False  # no estimate: the call itself still alerts
    return (ticket.call_from - now).total_seconds() <= choice.value * 60 + margin_s(choice.value)


def margin_s(minutes: int) -> float:
    """How much earlier than M minutes before the earliest expected call "near" fires."""
    return max(120.0, minutes * 12.0)
