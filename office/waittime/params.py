"""What the predictor has learned about an office, in the form its hot loop reads.

Owns the learned figures and the cheap questions asked of them on every simulated call: the
expected counter time of a call (a mixture of a service, by service × hour, and a no-show, whose
chance grows with how long the ticket has waited), how much longer a call in progress will take
given how long it has lasted, the expected arrivals by minute of the day, and the counters'
turnaround. `office.waittime.learn` fills it from past days; with no history every figure is a
neutral default, so the predictor still runs (wide and uncalibrated).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

HOURS = 24
WAIT_BUCKET_S = 900.0  # the no-show chance is learned per 15 minutes waited
WAIT_BUCKETS = 24  # the last one: 5 h 45 min and more
MINUTES = 24 * 60

DEFAULT_SERVICE_S = 300.0
DEFAULT_NO_SHOW_S = 90.0
DEFAULT_P_NO_SHOW = 0.05
DEFAULT_CV2 = 0.25
DEFAULT_TURNAROUND_S = 20.0
DEFAULT_WAKE_S = 15.0
DEFAULT_START_LAG_S = 30.0


def wait_bucket(wait: float) -> int:
    b = int(wait / WAIT_BUCKET_S)
    return b if b < WAIT_BUCKETS else WAIT_BUCKETS - 1


@dataclass(slots=True)
class Durations:
    """An empirical distribution of call durations, kept sorted with suffix sums, so that the
    mean time left of a call that has lasted `e` is one bisection.

    Every call of the history is a sample (a busy office's 60 days: some 50,000), so both are
    arrays of doubles, 8 bytes a sample, not lists of float objects at 32: a predictor holds them
    for the office and for each service, in each gateway and in central, and it grows with the
    history until the history's window is full (the soak's month: about 70 kB a day each, as lists)."""

    sorted: array[float] = field(default_factory=lambda: array("d"))
    suffix: array[float] = field(default_factory=lambda: array("d"))  # suffix[i] = sum(sorted[i:])

    @classmethod
    def of(cls, samples: list[float]) -> Durations:
        xs = array("d", sorted(samples))
        suffix = array("d", bytes(8 * (len(xs) + 1)))
        total = 0.0
        for i in range(len(xs) - 1, -1, -1):
            total += xs[i]
            suffix[i] = total
        return cls(xs, suffix)

    def mean_left(self, elapsed: float, scale: float) -> float | None:
        """E[D − elapsed | D > elapsed] for D = scale × a sample; None past every sample."""
        xs = self.sorted
        e = elapsed / scale
        i = bisect.bisect_right(xs, e)
        n = len(xs) - i
        if n <= 0:
            return None
        return scale * (self.suffix[i] / n - e)


@dataclass(slots=True)
class ServiceModel:
    """One service's learned figures (seconds)."""

    occupation_by_hour: list[float]  # mean counter time of an answered call, by hour of the call
    occupation: float  # its mean over the day
    occupation_cv2: float  # its squared coefficient of variation
    no_show_occupation: float  # counter time a no-show costs (calls and recalls until given up)
    no_show_cv2: float
    p_no_show: list[float]  # chance a first call finds nobody, by wait bucket
    p_no_show_requeued: list[float]  # the same for a requeued ticket's call
    calls: Durations  # every call's counter time, any outcome: the time left of a call in progress
    recalled_calls: Durations  # calls that were recalled at least once
    # Expected tickets issued by each minute of the day (cumulative, MINUTES+1): learned, an array
    # of doubles (a list of 1,441 float objects took 46 kB, for each service and kind of day).
    arrivals: Sequence[float]
    jumps: Sequence[float]  # expected tickets entering ahead of the queue (transfers in, returns), cumulative
    # The chance a first call finds nobody, × this by the hour of the call: who gives up is not the
    # same all day (the morning's residents leave sooner than the wait alone says).
    no_show_by_hour: list[float] = field(default_factory=lambda: [1.0] * HOURS)

    def call(self, hour: int, wait: float, requeued: bool) -> tuple[float, float]:
        """Mean and variance of the counter time of a call made at `hour` to a ticket that has
        waited `wait` seconds."""
        b = int(wait / WAIT_BUCKET_S)
        if b >= WAIT_BUCKETS:
            b = WAIT_BUCKETS - 1
        h = hour if 0 <= hour < HOURS else HOURS - 1
        p = self.p_no_show_requeued[b] if requeued else min(1.0, self.p_no_show[b] * self.no_show_by_hour[h])
        m = self.occupation_by_hour[h]
        n = self.no_show_occupation
        mean = p * n + (1.0 - p) * m
        second = p * n * n * (1.0 + self.no_show_cv2) + (1.0 - p) * m * m * (1.0 + self.occupation_cv2)
        return mean, max(0.0, second - mean * mean)

    def time_left(self, elapsed: float, recalled: bool, hour: int) -> float:
        """Mean counter time still to come of a call in progress for `elapsed` seconds."""
        scale = self.occupation_by_hour[hour if 0 <= hour < HOURS else HOURS - 1] / self.occupation
        dist = self.recalled_calls if recalled and self.recalled_calls.sorted else self.calls
        left = dist.mean_left(elapsed, scale) if dist.sorted else None
        if left is None:  # longer than any call seen: nearly done, or far from typical
            mean = self.no_show_occupation if recalled else self.occupation_by_hour[min(max(hour, 0), HOURS - 1)]
            left = max(0.0, mean - elapsed) if elapsed < mean else 0.1 * mean
        return left


def expected_by(table: Sequence[float], t: float) -> float:
    """A cumulative by-minute table's value at `t` seconds of the day (linear within a minute)."""
    if t <= 0.0:
        return 0.0
    m = t / 60.0
    i = int(m)
    if i >= MINUTES:
        return table[MINUTES]
    return table[i] + (table[i + 1] - table[i]) * (m - i)


_NO_FLOW = ([0.0] * (MINUTES + 1), [0.0] * (MINUTES + 1))


def neutral_service() -> ServiceModel:
    """Figures for a service nothing is known about."""
    return ServiceModel(
        occupation_by_hour=[DEFAULT_SERVICE_S] * HOURS,
        occupation=DEFAULT_SERVICE_S,
        occupation_cv2=DEFAULT_CV2,
        no_show_occupation=DEFAULT_NO_SHOW_S,
        no_show_cv2=DEFAULT_CV2,
        p_no_show=[DEFAULT_P_NO_SHOW] * WAIT_BUCKETS,
        p_no_show_requeued=[DEFAULT_P_NO_SHOW] * WAIT_BUCKETS,
        calls=Durations(),
        recalled_calls=Durations(),
        arrivals=[0.0] * (MINUTES + 1),
        jumps=[0.0] * (MINUTES + 1),
    )


@dataclass(slots=True)
class Params:
    """Everything learned about one office."""

    services: dict[str, ServiceModel] = field(default_factory=dict)
    fallback: ServiceModel = field(default_factory=neutral_service)  # pooled: an unseen service
    turnaround: dict[str, float] = field(default_factory=dict)  # counter → seconds between calls
    turnaround_all: float = DEFAULT_TURNAROUND_S
    wake: float = DEFAULT_WAKE_S  # an idle counter calling a new ticket
    start_lag: float = DEFAULT_START_LAG_S  # a counter's first call after it opens or resumes
    days: int = 0
    # Per kind of day (DayPlan.kind: weekday, Saturday…) and service, learned from days of that
    # kind only: the expected arrivals and re-entries by minute (cumulative), as in ServiceModel.
    flows: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]] = field(default_factory=dict)

    def flow(self, kind: str | None, sid: str) -> tuple[Sequence[float], Sequence[float]]:
        """The expected arrivals and re-entries of a service on a day of this kind (all days'
        when no day of the kind was seen)."""
        by_kind = self.flows.get(kind) if kind is not None else None
        if by_kind is not None:
            tables = by_kind.get(sid)
            if tables is not None:
                return tables
            return _NO_FLOW
        model = self.service(sid)
        return model.arrivals, model.jumps

    def service(self, sid: str) -> ServiceModel:
        model = self.services.get(sid)
        return model if model is not None else self.fallback

    def counter_turnaround(self, cid: str) -> float:
        return self.turnaround.get(cid, self.turnaround_all)
