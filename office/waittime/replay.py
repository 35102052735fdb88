"""Replaying days: a prediction for every ticket at its issue, and training the predictors.

Owns the order of things in a replay — each event is applied to the floor, and right after a
`ticket_issued` the predictor is asked about that ticket, so a prediction only ever sees the
events before it — and the training of a predictor from past days: `learn` the figures, then, for
`best`, replay past days with the raw forecast to calibrate it (`office.waittime.calibrate`),
each day forecast with figures learned from the days before it only, so the calibration sees
errors as they are on a day the figures have not seen, drift included. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from office.waittime import calibrate
from office.waittime import records as r
from office.waittime.floor import Floor
from office.waittime.learn import Learner
from office.waittime.predictors import Best, Prediction, Predictor, baseline

CALIBRATION_DAYS = 12  # the latest days of history the calibration replays
KIND_DAYS = 4  # … and at least this many of each kind of day (Saturdays are few among them)
CALIBRATION_TICKETS = 600  # at most this many forecasts per day (every k-th ticket beyond)
# The range is fitted to hold 84 % of past days' waits so that it holds about 80 % on a new day:
# a new day's forecasts miss by more than past days' do (its figures, crowd and drift are new);
# fitted to 80 %, ranges held 75–81 % of new days' waits on simulated days of both offices.
LOW_Q, HIGH_Q = 0.09, 0.91
MIN_PRIOR_DAYS = 2  # a past day is forecast for the calibration from at least this many days before it


@dataclass(frozen=True, slots=True)
class Issued:
    """One row of a replay: a ticket as issued, and its prediction at that moment."""

    ticket: str
    service: str
    issued_ts: str
    prediction: Prediction


def split_days(events: Iterable[r.Event]) -> list[list[r.Event]]:
    """The events grouped by business day (a new day: a new date, or a `schedule` of a new day)."""
    return list(iter_days(events))


def iter_days(events: Iterable[r.Event]) -> Iterator[list[r.Event]]:
    """`split_days` one day at a time: a reader of months of history holds one day's events."""
    current: list[r.Event] = []
    day: str | None = None
    for e in events:
        if current and (e.day != day or (isinstance(e, r.Schedule) and e.new_day and _has_tickets(current))):
            yield current
            current = []
        if not current:
            day = e.day
        current.append(e)
    if current:
        yield current


def _has_tickets(events: list[r.Event]) -> bool:
    return any(isinstance(e, r.TicketIssued) for e in events)


def replay(events: Iterable[r.Event], predictor: Predictor) -> Iterator[Issued]:
    """Every ticket's prediction at its issue, in log order (a repeated issue record is skipped)."""
    floor = Floor()
    for e in events:
        floor.apply(e)
        if isinstance(e, r.TicketIssued):
            t = floor.tickets[e.ticket]
            if t.issued_ts == e.ts:
                yield Issued(e.ticket, e.service, e.ts, predictor.predict(floor, [t])[0])


def actual_waits(events: Iterable[r.Event]) -> dict[tuple[str, str], float]:
    """(day, ticket) → seconds from issue to first call, for every ticket that was called."""
    floor = Floor()
    out: dict[tuple[str, str], float] = {}
    for e in events:
        floor.apply(e)
        if isinstance(e, r.Called):
            t = floor.tickets[e.ticket]
            if t.first_called == e.t and t.order >= 0 and floor.day is not None:
                out.setdefault((floor.day, t.id), e.t - t.issued)
    return out


def _raw_pairs(days: Sequence[list[r.Event]], best: Best) -> list[calibrate.Miss]:
    """The raw forecast at issue and the actual wait of the called tickets of these days."""
    pairs: list[calibrate.Miss] = []
    for events in days:
        issued = sum(1 for e in events if isinstance(e, r.TicketIssued))
        every = max(1, -(-issued // CALIBRATION_TICKETS))
        floor = Floor()
        raw: dict[str, float] = {}
        n = 0
        for e in events:
            floor.apply(e)
            if isinstance(e, r.TicketIssued):
                n += 1
                t = floor.tickets[e.ticket]
                if n % every == 0 and t.issued_ts == e.ts:
                    raw[t.id] = best.raw(floor, [t])[0]
        kind = _kind(floor)
        for tid, left in raw.items():
            t = floor.tickets[tid]
            if t.first_called is not None and left != float("inf"):
                miss = calibrate.Miss(kind, t.issue_service, int(t.issued // 3600), left, t.first_called - t.issued)
                pairs.append(miss)
    return pairs


def _kind(floor: Floor) -> str:
    return floor.plan.kind if floor.plan is not None else ""


def _day_kind(events: list[r.Event]) -> str:
    """The kind of day (DayPlan.kind) of a day's events: its first `schedule`'s."""
    schedule = next((e for e in events if isinstance(e, r.Schedule)), None)
    if schedule is None:
        return ""
    floor = Floor()
    floor.apply(schedule)
    return _kind(floor)


def calibration_days(days: Sequence[list[r.Event]]) -> set[int]:
    """Which past days (indexes, in date order) the calibration replays: the latest
    CALIBRATION_DAYS, and the latest KIND_DAYS of each kind of day, so that a kind of day seen
    once a week (Saturdays) still has its own sample of misses."""
    chosen = set(range(max(0, len(days) - CALIBRATION_DAYS), len(days)))
    seen: dict[str, int] = {}
    for i in range(len(days) - 1, -1, -1):
        kind = _day_kind(days[i])
        if seen.get(kind, 0) < KIND_DAYS:
            seen[kind] = seen.get(kind, 0) + 1
            chosen.add(i)
    return chosen


def train(name: str, history: Sequence[list[r.Event]]) -> Predictor:
    """The predictor `name` (office.waittime.predictors.PREDICTORS), learned from these past days
    (each a list of one business day's events, taken in date order)."""
    days = sorted(history, key=lambda events: events[0].day if events else "")
    learner = Learner()
    pairs: list[calibrate.Miss] = []
    chosen = calibration_days(days) if name == "best" else set()
    for i, events in enumerate(days):
        if i in chosen and i >= MIN_PRIOR_DAYS:  # forecast as it would have been, from the days before
            pairs += _raw_pairs([events], Best(learner.params()))
        learner.day(events)
    params = learner.params()
    if name != "best":
        return baseline(name, params)
    if not pairs:  # too few days to forecast one from the others: calibrated on themselves
        pairs = _raw_pairs(days[-CALIBRATION_DAYS:], Best(params))
    return Best(params, calibrate.fit(pairs, LOW_Q, HIGH_Q))
