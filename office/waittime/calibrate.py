"""How far the mean path's forecasts fall from the waits that followed, learned on past days.

Owns turning a raw forecast (the seconds until the first call on the expected path) into the
published mean and p10–p90. The forecast's systematic error and the spread of the waits around
it are measured by replaying past days, per service and band of forecast length (the path errs
differently near and far — near, the counters' phases; far, the day's drift — and for a service
that gets a counter only when others' queues are empty), each figure shrunk toward a wider one
when it rests on few tickets: a service's band toward the service's offset from all services, that
toward all services' band, that toward all bands. A residual is expressed on the scale
`forecast + SCALE_FLOOR_S`, so waits of every length share a table. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

SCALE_FLOOR_S = 120.0  # a forecast of 0 s still misses by a minute or two: residuals are relative to this much more
EDGES_S = (60.0, 180.0, 360.0, 600.0, 900.0, 1500.0, 2400.0, 3600.0, 5400.0, 7200.0)  # band upper bounds
BANDS = len(EDGES_S) + 1
K_BAND = 40.0  # tickets: a band's own figures weigh as much as this many of the wider ones
K_SERVICE = 40.0


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

    def apply(self, raw: float, service: str) -> tuple[float, float, float]:
        """(mean, p10, p90) seconds of a raw forecast of `raw` seconds for a ticket of `service`."""
        table = self.services.get(service, self.pooled)
        b = bisect.bisect_left(EDGES_S, raw)
        scale = raw + SCALE_FLOOR_S
        mean = max(0.0, raw + table.bias[b] * scale)
        low = max(0.0, mean + table.low[b] * scale)
        high = mean + table.high[b] * scale
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


def fit(pairs: Iterable[tuple[str, float, float]], low_q: float = 0.1, high_q: float = 0.9) -> Calibration:
    """From (service, raw forecast, actual wait) in seconds: the calibration that centres the
    mean and puts `low_q` of waits below p10 and `1 − high_q` above p90."""
    by_service: dict[str, list[list[float]]] = {}
    pooled: list[list[float]] = [[] for _ in range(BANDS)]
    n = 0
    for service, raw, actual in pairs:
        b = bisect.bisect_left(EDGES_S, raw)
        x = (actual - raw) / (raw + SCALE_FLOOR_S)
        pooled[b].append(x)
        by_service.setdefault(service, [[] for _ in range(BANDS)])[b].append(x)
        n += 1
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
    return Calibration(table, services, n)
