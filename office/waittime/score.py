"""Scoring predictions against what happened.

Owns the definitions: the true wait of a ticket is from its `ticket_issued` to its first
`called` (a ticket never called is left out; a requeued no-show's second wait is not predicted);
error = predicted − true, so a positive bias over-estimates. Reported per group (all, by service
at issue, by hour of issue): MSE (s²), bias and MAE (s), the share of predictions more than 10
minutes too low (the resident came back too late), and the share of true waits inside p10–p90.
Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from office.waittime import records as r
from office.waittime.replay import Issued, actual_waits

TOO_LOW_S = 600.0


@dataclass(slots=True)
class Scores:
    n: int = 0
    mse: float = 0.0
    bias: float = 0.0
    mae: float = 0.0
    too_low: float = 0.0  # share of predictions more than 10 minutes below the true wait
    coverage: float = 0.0  # share of true waits within p10–p90
    mean_wait: float = 0.0  # of the true waits scored


@dataclass(slots=True)
class Report:
    all: Scores = field(default_factory=Scores)
    by_service: dict[str, Scores] = field(default_factory=dict)
    by_hour: dict[int, Scores] = field(default_factory=dict)


class _Acc:
    __slots__ = ("abs", "cover", "err", "low", "n", "sq", "wait")

    def __init__(self) -> None:
        self.n = 0
        self.sq = self.err = self.abs = self.wait = 0.0
        self.low = self.cover = 0

    def add(self, predicted: float, p10: float, p90: float, actual: float) -> None:
        e = predicted - actual
        self.n += 1
        self.sq += e * e
        self.err += e
        self.abs += abs(e)
        self.wait += actual
        self.low += actual - predicted > TOO_LOW_S
        self.cover += p10 <= actual <= p90

    def scores(self) -> Scores:
        n = self.n or 1
        return Scores(self.n, self.sq / n, self.err / n, self.abs / n, self.low / n, self.cover / n, self.wait / n)


def true_waits(events: Iterable[r.Event]) -> dict[tuple[str, str], float]:
    """(day, ticket) → seconds from issue to first call."""
    return actual_waits(events)


def score(rows: Iterable[Issued], waits: Mapping[tuple[str, str], float]) -> Report:
    """The scores of these predictions (rows) against true waits (`true_waits` of the trace)."""
    total = _Acc()
    by_service: dict[str, _Acc] = {}
    by_hour: dict[int, _Acc] = {}
    for row in rows:
        day, t = r.moment(row.issued_ts)
        actual = waits.get((day, row.ticket))
        if actual is None:
            continue
        p = row.prediction
        for acc in (
            total,
            by_service.setdefault(row.service, _Acc()),
            by_hour.setdefault(int(t // 3600), _Acc()),
        ):
            acc.add(p.mean, p.p10, p.p90, actual)
    return Report(
        total.scores(),
        {k: v.scores() for k, v in sorted(by_service.items())},
        {k: v.scores() for k, v in sorted(by_hour.items())},
    )
