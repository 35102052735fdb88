"""How far the mean path's forecasts fall from the waits that followed, learned on past days.

Owns turning a raw forecast (the seconds until the first call on the expected path) into the
published mean and p10–p90. The forecast's systematic error and the spread of the waits around
it are measured by replaying past days, per service and band of forecast length (the path errs
differently near and far — near, the counters' phases; far, the day's drift — and for a service
that gets a counter only when others' queues are empty), each figure shrunk toward a wider one
when it rests on few tickets: a service's band toward the service's offset from all services, that
toward all services' band, that toward all bands. A residual is expressed on the scale
`forecast + SCALE_FLOOR_S`, so waits of every length share a table. What is left of the bias by
hour of issue is then measured per kind of day (a weekday's lunch rotation is not a Saturday's),
and so is the range around the mean. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

SCALE_FLOOR_S = 120.0  # a forecast of 0 s still misses by a minute or two: residuals are relative to this much more
EDGES_S = (60.0, 180.0, 360.0, 600.0, 900.0, 1500.0, 2400.0, 3600.0, 5400.0, 7200.0)  # band upper bounds
BANDS = len(EDGES_S) + 1
K_BAND = 40.0  # tickets: a band's own figures weigh as much as this many of the wider ones
K_SERVICE = 40.0
K_HOUR = 100.0  # tickets: an hour of issue's own bias weighs as much as this many of none
HOURS = 24


class Miss(NamedTuple):
    """A past forecast and what followed: the kind of day, the ticket's service and hour of issue,
    the raw forecast and the actual wait (seconds)."""

    kind: str
    service: str
    hour: int
    raw: float
    actual: float


@dataclass(slots=True)
class Table:
    """Per band of raw forecast: the mean residual (bias), and the 10th and 90th percentiles of
    the residual around it, as shares of `raw + SCALE_FLOOR_S`."""

    bias: list[float] = field(default_factory=lambda: [0.0] * BANDS)
    low: list[float] = field(default_factory=lambda: [-0.5] * BANDS)
    high: list[float] = field(default_factory=lambda: [0.6] * BANDS)


@dataclass(slots=True)
class Calibration:
    pooled: Table = field(default_factory=Table)
    services: dict[str, Table] = field(default_factory=dict)
    samples: int = 0
    # Per kind of day (DayPlan.kind), per service ("": all services), the bias left by hour of
    # issue once the band's is taken off.
    hourly: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # Per kind of day, per service ("": all services), the range around the published mean (its
    # bias unused): a kind of day seen once a week misses otherwise than the weekdays that make
    # most of the sample (Saturdays wider: their ranges from all days held 70 % of their waits).
    ranges: dict[str, dict[str, Table]] = field(default_factory=dict)

    def apply(
        self, raw: float, service: str, kind: str | None = None, hour: int | None = None
    ) -> tuple[float, float, float]:
        """(mean, p10, p90) seconds of a raw forecast of `raw` seconds for a ticket of `service`
        forecast at `hour` on a day of `kind`."""
        table = self.services.get(service, self.pooled)
        b = bisect.bisect_left(EDGES_S, raw)
        scale = raw + SCALE_FLOOR_S
        bias = table.bias[b]
        by_service = self.hourly.get(kind) if kind is not None else None
        if by_service is not None and hour is not None and 0 <= hour < HOURS:
            hourly = by_service.get(service) or by_service.get("")
            if hourly is not None:
                bias += hourly[hour]
        mean = max(0.0, raw + bias * scale)
        by_kind = self.ranges.get(kind) if kind is not None else None
        spread = table
        if by_kind is not None:
            spread = by_kind.get(service) or by_kind.get("") or table
        low = max(0.0, mean + spread.low[b] * scale)
        high = mean + spread.high[b] * scale
        return mean, min(low, mean), max(high, mean)


def _quantile(xs: list[float], q: float) -> float:
    """The q-quantile of sorted xs (linear between order statistics)."""
    if not xs:
        return 0.0
    pos = q * (len(xs) - 1)
    i = int(pos)
    if i + 1 >= len(xs):
        return xs[-1]
    return xs[i] + (xs[i + 1] - xs[i]) * (pos - i)


def _table(bands: list[list[float]], prior: Table, k: float, offset: float, low_q: float, high_q: float) -> Table:
    """Each band's figures, shrunk toward `prior`'s (its bias moved by `offset`)."""
    out = Table()
    for b, xs in enumerate(bands):
        w = len(xs) / (len(xs) + k)
        base = prior.bias[b] + offset
        out.bias[b] = w * (sum(xs) / len(xs)) + (1 - w) * base if xs else base
        centred = sorted(x - out.bias[b] for x in xs)
        out.low[b] = w * _quantile(centred, low_q) + (1 - w) * prior.low[b] if xs else prior.low[b]
        out.high[b] = w * _quantile(centred, high_q) + (1 - w) * prior.high[b] if xs else prior.high[b]
    return out


def fit(misses: Iterable[Miss], low_q: float = 0.1, high_q: float = 0.9) -> Calibration:
    """The calibration that centres the mean and puts `low_q` of waits below p10 and `1 − high_q`
    above p90."""
    by_service: dict[str, list[list[float]]] = {}
    pooled: list[list[float]] = [[] for _ in range(BANDS)]
    rows: list[tuple[Miss, int, float]] = []
    for m in misses:
        b = bisect.bisect_left(EDGES_S, m.raw)
        x = (m.actual - m.raw) / (m.raw + SCALE_FLOOR_S)
        pooled[b].append(x)
        by_service.setdefault(m.service, [[] for _ in range(BANDS)])[b].append(x)
        rows.append((m, b, x))
    n = len(rows)
    if not n:
        return Calibration()
    everything = sorted(x for band in pooled for x in band)
    mean = sum(everything) / n
    centred = [x - mean for x in everything]
    flat = Table([mean] * BANDS, [_quantile(centred, low_q)] * BANDS, [_quantile(centred, high_q)] * BANDS)
    table = _table(pooled, flat, K_BAND, 0.0, low_q, high_q)
    services = {}
    for service, bands in by_service.items():
        # The service's own offset from all services, band for band, shrunk toward none.
        diffs = [x - table.bias[b] for b, xs in enumerate(bands) for x in xs]
        offset = sum(diffs) / (len(diffs) + K_SERVICE)
        services[service] = _table(bands, table, K_SERVICE, offset, low_q, high_q)
    kinds: dict[str, list[tuple[Miss, int, float]]] = {}
    for row in rows:
        kinds.setdefault(row[0].kind, []).append(row)
    hourly = {kind: _hourly(mine, services, table) for kind, mine in kinds.items()}
    ranges = {kind: _ranges(mine, services, table, low_q, high_q) for kind, mine in kinds.items()}
    return Calibration(table, services, n, hourly, ranges)


def _hourly(rows: list[tuple[Miss, int, float]], services: dict[str, Table], pooled: Table) -> dict[str, list[float]]:
    """The bias left by hour of issue on one kind of day, per service and for all, each hour
    shrunk toward the wider figure (a service's toward all services', that toward none): the path
    errs by the time of day (lunch rotation, the evening, residents' patience), not only by the
    forecast's length, and differently on days of another shape (a Saturday has no lunch rota)."""
    sums: dict[str, list[list[float]]] = {"": [[0.0, 0.0] for _ in range(HOURS)]}
    for m, b, x in rows:
        h = min(max(m.hour, 0), HOURS - 1)
        left = x - services.get(m.service, pooled).bias[b]
        for key in ("", m.service):
            cell = sums.setdefault(key, [[0.0, 0.0] for _ in range(HOURS)])[h]
            cell[0] += 1.0
            cell[1] += left
    everyone = [s / (c + K_HOUR) for c, s in sums[""]]
    out = {"": everyone}
    for service, cells in sums.items():
        if service:
            out[service] = [(s + K_HOUR * p) / (c + K_HOUR) for (c, s), p in zip(cells, everyone, strict=True)]
    return out


def _ranges(
    rows: list[tuple[Miss, int, float]],
    services: dict[str, Table],
    pooled: Table,
    low_q: float,
    high_q: float,
) -> dict[str, Table]:
    """One kind of day's range, band by band: the percentiles of the residuals around the mean
    the band's bias would have published, for all services shrunk toward all kinds' (K_BAND), a
    service's toward the kind's (K_SERVICE: a kind of day seen once a week has few tickets of a
    service in a band, and Saturdays miss otherwise than weekdays in every service)."""
    everyone: list[list[float]] = [[] for _ in range(BANDS)]
    mine: dict[str, list[list[float]]] = {}
    for m, b, x in rows:
        left = x - services.get(m.service, pooled).bias[b]
        everyone[b].append(left)
        mine.setdefault(m.service, [[] for _ in range(BANDS)])[b].append(left)
    kind = _spread(everyone, pooled, K_BAND, low_q, high_q)
    out = {"": kind}
    for service, bands in mine.items():
        out[service] = _spread(bands, kind, K_SERVICE, low_q, high_q)
    return out


def _spread(bands: list[list[float]], prior: Table, k: float, low_q: float, high_q: float) -> Table:
    """Each band's percentiles of residuals already centred, shrunk toward `prior`'s."""
    out = Table(list(prior.bias), list(prior.low), list(prior.high))
    for b, xs in enumerate(bands):
        if xs:
            w = len(xs) / (len(xs) + k)
            xs = sorted(xs)
            out.low[b] = w * _quantile(xs, low_q) + (1 - w) * prior.low[b]
            out.high[b] = w * _quantile(xs, high_q) + (1 - w) * prior.high[b]
    return out
