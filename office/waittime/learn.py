"""Learning an office's figures from its past days' event logs.

Owns replaying history and turning it into `Params`: the counter time of calls by service and
hour (answered, and no-shows), the chance a call finds nobody by how long the ticket waited, the
time left of a call in progress (empirical distributions), the counters' turnaround between
calls, an idle counter's reaction to a new ticket, the lag of a counter's first call after it
opens, and the expected arrivals by minute (per kind of day). Thin data are shrunk toward a wider
mean (a pseudo-count of that mean's samples): a service × hour toward the service, a service
toward all services, so one slow morning does not make an hour's figure; the no-show chance is
made non-decreasing in the wait, then scaled by the hour of the call. Service times drift across
days, so recent days' calls weigh more (a half-life in open days), and their level is read from
the latest days' calls alone. Pure: events in, figures out.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from office.waittime import records as r
from office.waittime.floor import OPEN, WAITING, Floor
from office.waittime.params import (
    DEFAULT_CV2,
    DEFAULT_NO_SHOW_S,
    DEFAULT_P_NO_SHOW,
    DEFAULT_SERVICE_S,
    DEFAULT_START_LAG_S,
    DEFAULT_TURNAROUND_S,
    DEFAULT_WAKE_S,
    HOURS,
    MINUTES,
    WAIT_BUCKETS,
    Durations,
    Params,
    ServiceModel,
    wait_bucket,
)

# Pseudo-counts: how many samples of the wider mean a narrower one starts with.
K_HOUR = 10.0  # service × hour → service
K_SERVICE = 5.0  # service → all services
K_P_SERVICE = 20.0  # a service's no-show chance → all services'
K_P_BUCKET = 10.0  # … by wait bucket → the service's curve
K_COUNTER = 10.0  # a counter's turnaround → all counters'
K_NO_SHOW_HOUR = 30.0  # no-shows: an hour's ratio of no-shows to the curve's starts with this many at 1
MIN_OWN_DURATIONS = 30  # fewer calls than this: the time left comes from all services' calls, rescaled
LONGEST_GAP_S = 600.0  # a longer gap between calls was a break, not a turnaround
# Service times drift from day to day (the season, new staff): at each new day the answered calls
# learned so far weigh this much less, so the figures follow the drift (a half-life in open days).
HALF_LIFE_DAYS = 10.0
DECAY = 0.5 ** (1.0 / HALF_LIFE_DAYS)
# The drift goes on while the figures learn it: a mean over days of half-life 10 lags it by about
# two weeks. The level of each service's times is therefore read from the latest days alone (the
# calls of a day or two are many), against the figures by hour (whose shape needs every day).
LEVEL_HALF_LIFE_DAYS = 2.0
LEVEL_DECAY = 0.5 ** (1.0 / LEVEL_HALF_LIFE_DAYS)
K_LEVEL = 30.0  # calls: the latest days' level weighs as much as this many calls at the figures' level


@dataclass(slots=True)
class _Sums:
    n: float = 0.0
    s: float = 0.0
    s2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1.0
        self.s += x
        self.s2 += x * x

    def scale(self, f: float) -> None:
        self.n *= f
        self.s *= f
        self.s2 *= f

    def mean(self, prior: float, k: float) -> float:
        return (self.s + k * prior) / (self.n + k)

    def cv2(self, prior: float, k: float) -> float:
        if self.n < 2 or self.s <= 0:
            return prior
        m = self.s / self.n
        var = max(0.0, self.s2 / self.n - m * m)
        return (var / (m * m) * self.n + k * prior) / (self.n + k)


@dataclass(slots=True)
class _ServiceSamples:
    answered: _Sums = field(default_factory=_Sums)
    by_hour: list[_Sums] = field(default_factory=lambda: [_Sums() for _ in range(HOURS)])
    recent: list[_Sums] = field(default_factory=lambda: [_Sums() for _ in range(HOURS)])  # by hour, LEVEL_DECAY
    no_show: _Sums = field(default_factory=_Sums)
    calls: list[float] = field(default_factory=list)
    recalled: list[float] = field(default_factory=list)
    first: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0] for _ in range(WAIT_BUCKETS)])
    requeued: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0] for _ in range(WAIT_BUCKETS)])
    # First calls by hour of the call: [calls by wait bucket…, no-shows].
    first_by_hour: list[list[float]] = field(default_factory=lambda: [[0.0] * (WAIT_BUCKETS + 1) for _ in range(HOURS)])


@dataclass(slots=True)
class _Flow:
    """Tickets issued, and tickets entering a queue ahead of it (transfers in, returns), by minute."""

    arrivals: list[float] = field(default_factory=lambda: [0.0] * MINUTES)
    jumps: list[float] = field(default_factory=lambda: [0.0] * MINUTES)


@dataclass(slots=True)
class _Free:
    """A counter with nobody in front of it: since when, whether work was waiting for it, and
    whether it had just opened (or resumed)."""

    since: float
    work: bool
    opened: bool


class Learner:
    """Feed it whole days of events (`day`), then `params()`."""

    def __init__(self) -> None:
        self._services: defaultdict[str, _ServiceSamples] = defaultdict(_ServiceSamples)
        self._turnaround: defaultdict[str, _Sums] = defaultdict(_Sums)
        self._wake = _Sums()
        self._start_lag = _Sums()
        self._days: dict[tuple[str, str], str] = {}  # (office, day) → kind of day
        self._flows: defaultdict[tuple[str, str], _Flow] = defaultdict(_Flow)  # (kind, service) →

    def day(self, events: Iterable[r.Event]) -> None:
        """Learn from one business day's events, in log order (several days work too)."""
        floor = Floor()
        free: dict[str, _Free] = {}
        for e in events:
            if e.day != floor.day:
                free = {}
                self._age()
            self._observe(floor, e, free)
            floor.apply(e)
            if floor.day is not None:
                self._days.setdefault((floor.office, floor.day), floor.plan.kind if floor.plan is not None else "")

    def _age(self) -> None:
        """A new day: the days learned so far weigh less in the service times."""
        for s in self._services.values():
            s.answered.scale(DECAY)
            for h in s.by_hour:
                h.scale(DECAY)
            for h in s.recent:
                h.scale(LEVEL_DECAY)

    def _work_for(self, floor: Floor, services: tuple[str, ...]) -> bool:
        queues = floor.queues
        return any(queues.get(s) for s in services)

    def _observe(self, floor: Floor, e: r.Event, free: dict[str, _Free]) -> None:
        """Before `e` is applied: the floor is as it was when `e` happened."""
        t = e.t
        minute = min(int(t // 60), MINUTES - 1)
        kind = floor.plan.kind if floor.plan is not None else ""
        if isinstance(e, r.TicketIssued):
            self._flows[kind, e.service].arrivals[minute] += 1.0
        elif isinstance(e, r.Called):
            self._on_call(floor, e, free)
        elif isinstance(e, (r.Served, r.NoShow, r.Transferred, r.Held)):
            self._on_end(floor, e, free)
            if isinstance(e, r.Transferred):
                ticket = floor.tickets.get(e.ticket)
                if ticket is not None and ticket.status != WAITING:  # from a counter: it enters the queue ahead
                    self._flows[kind, e.to_service].jumps[minute] += 1.0
        elif isinstance(e, r.Returned):
            ticket = floor.tickets.get(e.ticket)
            if ticket is not None:
                self._flows[kind, ticket.service].jumps[minute] += 1.0
        elif isinstance(e, r.CounterOpened):
            free[e.counter] = _Free(t, self._work_for(floor, e.services), True)
        elif isinstance(e, r.CounterResumed):
            c = floor.counters.get(e.counter)
            if c is not None:
                free[e.counter] = _Free(t, self._work_for(floor, c.services), True)
        elif isinstance(e, (r.CounterPaused, r.CounterClosed)):
            free.pop(e.counter, None)

    def _on_call(self, floor: Floor, e: r.Called, free: dict[str, _Free]) -> None:
        f = free.pop(e.counter, None)
        ticket = floor.tickets.get(e.ticket)
        if f is None or ticket is None:
            return
        gap = e.t - f.since
        if f.work or ticket.issued <= f.since:
            if 0.0 <= gap <= LONGEST_GAP_S:
                (self._start_lag if f.opened else self._turnaround[e.counter]).add(gap)
        else:  # nobody was waiting: the counter answered this ticket's arrival
            wake = e.t - ticket.issued
            if 0.0 <= wake <= LONGEST_GAP_S:
                self._wake.add(wake)

    def _on_end(self, floor: Floor, e: r.Served | r.NoShow | r.Transferred | r.Held, free: dict[str, _Free]) -> None:
        ticket = floor.tickets.get(e.ticket)
        if ticket is None or ticket.counter is None:
            return
        c = floor.counters.get(ticket.counter)
        if c is None or c.current != ticket.id or ticket.called_at is None or ticket.order < 0:
            return
        duration = e.t - c.busy_since
        s = self._services[ticket.service]
        no_show = isinstance(e, r.NoShow)
        if no_show:
            s.no_show.add(duration)
        else:
            s.answered.add(duration)
            s.by_hour[min(int(c.busy_since // 3600), HOURS - 1)].add(duration)
            s.recent[min(int(c.busy_since // 3600), HOURS - 1)].add(duration)
        s.calls.append(duration)
        if c.recalled:
            s.recalled.append(duration)
        bucket = wait_bucket(c.busy_since - ticket.issued)
        counts = (s.requeued if ticket.requeued else s.first)[bucket]
        counts[0] += 1.0
        counts[1] += no_show
        if not ticket.requeued:
            by_hour = s.first_by_hour[min(int(c.busy_since // 3600), HOURS - 1)]
            by_hour[bucket] += 1.0
            by_hour[WAIT_BUCKETS] += no_show
        if c.status == OPEN:
            work = self._work_for(floor, c.services)
            if isinstance(e, r.Transferred) and e.to_service in c.services:
                work = True  # the transferred ticket itself waits for this counter
            free[c.id] = _Free(e.t, work, False)

    # -- fitting -----------------------------------------------------------------------------
    def params(self) -> Params:
        days = max(1, len(self._days))
        samples = self._services
        pooled = _ServiceSamples()
        for s in samples.values():
            for name in ("answered", "no_show"):
                mine, all_ = getattr(s, name), getattr(pooled, name)
                all_.n, all_.s, all_.s2 = all_.n + mine.n, all_.s + mine.s, all_.s2 + mine.s2
            for h in range(HOURS):
                a, b = pooled.by_hour[h], s.by_hour[h]
                a.n, a.s, a.s2 = a.n + b.n, a.s + b.s, a.s2 + b.s2
                a, b = pooled.recent[h], s.recent[h]
                a.n, a.s, a.s2 = a.n + b.n, a.s + b.s, a.s2 + b.s2
            pooled.calls += s.calls
            pooled.recalled += s.recalled
            for mine_h, all_h in zip(s.first_by_hour, pooled.first_by_hour, strict=True):
                for i in range(WAIT_BUCKETS + 1):
                    all_h[i] += mine_h[i]
            for mine_b, all_b in ((s.first, pooled.first), (s.requeued, pooled.requeued)):
                for i in range(WAIT_BUCKETS):
                    all_b[i][0] += mine_b[i][0]
                    all_b[i][1] += mine_b[i][1]
        fallback = _fit_service(pooled, None)
        services = {sid: _fit_service(s, fallback) for sid, s in samples.items()}
        # Arrivals: per kind of day over the days of that kind, and per service over all days.
        kind_days: dict[str, int] = {}
        for kind in self._days.values():
            kind_days[kind] = kind_days.get(kind, 0) + 1
        flows: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]] = {}
        everything: dict[str, _Flow] = defaultdict(_Flow)
        for (kind, sid), flow in self._flows.items():
            n = kind_days.get(kind, 1)
            flows.setdefault(kind, {})[sid] = (_cumulative(flow.arrivals, n), _cumulative(flow.jumps, n))
            total = everything[sid]
            for i in range(MINUTES):
                total.arrivals[i] += flow.arrivals[i]
                total.jumps[i] += flow.jumps[i]
        for sid, flow in everything.items():
            model = services.get(sid)
            if model is not None:
                model.arrivals, model.jumps = _cumulative(flow.arrivals, days), _cumulative(flow.jumps, days)
        all_turn = _Sums()
        for x in self._turnaround.values():
            all_turn.n, all_turn.s = all_turn.n + x.n, all_turn.s + x.s
        turnaround_all = all_turn.mean(DEFAULT_TURNAROUND_S, 1.0)
        return Params(
            services=services,
            fallback=fallback,
            turnaround={cid: x.mean(turnaround_all, K_COUNTER) for cid, x in self._turnaround.items()},
            turnaround_all=turnaround_all,
            wake=self._wake.mean(DEFAULT_WAKE_S, 1.0),
            start_lag=self._start_lag.mean(DEFAULT_START_LAG_S, 1.0),
            days=len(self._days),
            flows=flows,
        )


def _curve(counts: list[list[float]], prior: list[float], k: float) -> list[float]:
    """The no-show chance by wait bucket: each bucket's rate shrunk toward the prior's, then made
    non-decreasing (pool adjacent violators, weighted by the tickets behind each rate): the longer
    a ticket waited, the likelier its resident has given up."""
    rates = [(ns + k * p) / (n + k) for (n, ns), p in zip(counts, prior, strict=True)]
    weights = [n + k for n, _ in counts]
    blocks: list[list[float]] = []  # [rate, weight, buckets]
    for rate, weight in zip(rates, weights, strict=True):
        blocks.append([rate, weight, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            r2, w2, c2 = blocks.pop()
            r1, w1, c1 = blocks[-1]
            blocks[-1] = [(r1 * w1 + r2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
    return [rate for rate, _, count in blocks for _ in range(int(count))]


def _fit_service(s: _ServiceSamples, wider: ServiceModel | None) -> ServiceModel:
    """A service's figures, shrunk toward `wider` (all services'; None: fitting those, shrunk
    toward the neutral defaults by one sample's worth)."""
    n_first = sum(n for n, _ in s.first)
    if wider is None:
        occupation = s.answered.mean(DEFAULT_SERVICE_S, 1.0)
        cv2 = s.answered.cv2(DEFAULT_CV2, 1.0)
        ns_mean = s.no_show.mean(DEFAULT_NO_SHOW_S, 1.0)
        ns_cv2 = s.no_show.cv2(DEFAULT_CV2, 1.0)
        p_all = (sum(ns for _, ns in s.first) + K_P_SERVICE * DEFAULT_P_NO_SHOW) / (n_first + K_P_SERVICE)
        p_first = _curve(s.first, [p_all] * WAIT_BUCKETS, K_P_BUCKET)
        n_rq = sum(n for n, _ in s.requeued)
        p_rq = (sum(ns for _, ns in s.requeued) + K_P_SERVICE * p_all) / (n_rq + K_P_SERVICE)
        p_requeued = _curve(s.requeued, [p_rq] * WAIT_BUCKETS, K_P_BUCKET)
    else:
        occupation = s.answered.mean(wider.occupation, K_SERVICE)
        cv2 = s.answered.cv2(wider.occupation_cv2, K_SERVICE)
        ns_mean = s.no_show.mean(wider.no_show_occupation, K_SERVICE)
        ns_cv2 = s.no_show.cv2(wider.no_show_cv2, K_SERVICE)
        # The prior curve: all services' shape, at this service's own level (how its no-shows
        # compare with what all services' curve expects at the waits its tickets had).
        expected = _weighted(wider.p_no_show, s.first) or DEFAULT_P_NO_SHOW
        own = (sum(ns for _, ns in s.first) + K_P_SERVICE * expected) / (n_first + K_P_SERVICE)
        p_first = _curve(s.first, [min(1.0, p * own / expected) for p in wider.p_no_show], K_P_BUCKET)
        p_requeued = _curve(s.requeued, wider.p_no_show_requeued, K_P_BUCKET)
    by_hour = [h.mean(occupation, K_HOUR) for h in s.by_hour]
    # The latest days' level against these figures, at the hours of their calls (shrunk toward 1).
    seen = sum(h.s for h in s.recent)
    expected = sum(h.n * m for h, m in zip(s.recent, by_hour, strict=True))
    level = (seen + K_LEVEL * occupation) / (expected + K_LEVEL * occupation)
    by_hour = [m * level for m in by_hour]
    occupation *= level
    if wider is not None and len(s.calls) < MIN_OWN_DURATIONS:
        scale = occupation / wider.occupation
        calls = Durations.of([x * scale for x in wider.calls.sorted])
        recalled = Durations.of([x * scale for x in wider.recalled_calls.sorted])
    else:
        calls, recalled = Durations.of(s.calls), Durations.of(s.recalled)
    # No-shows by hour of the call against what the curve expects of those calls' waits: on rush
    # days certificate calls at 8–12 h found nobody 1.3–1.5× as often as their waits say, 0.6–0.9×
    # after 13 h (the path was 7 % slow before lunch).
    no_show_by_hour = []
    for cells in s.first_by_hour:
        expected_ns = sum(n * p for n, p in zip(cells[:WAIT_BUCKETS], p_first, strict=True))
        no_show_by_hour.append((cells[WAIT_BUCKETS] + K_NO_SHOW_HOUR) / (expected_ns + K_NO_SHOW_HOUR))
    return ServiceModel(
        occupation_by_hour=by_hour,
        occupation=occupation,
        occupation_cv2=cv2,
        no_show_occupation=ns_mean,
        no_show_cv2=ns_cv2,
        p_no_show=p_first,
        p_no_show_requeued=p_requeued,
        calls=calls,
        recalled_calls=recalled,
        arrivals=[0.0] * (MINUTES + 1),
        jumps=[0.0] * (MINUTES + 1),
        no_show_by_hour=no_show_by_hour,
    )


def _weighted(curve: list[float], counts: list[list[float]]) -> float:
    """The curve's mean chance over the waits this service's calls had."""
    n = sum(c[0] for c in counts)
    if not n:
        return sum(curve) / len(curve)
    return sum(p * c[0] for p, c in zip(curve, counts, strict=True)) / n


def _cumulative(per_minute: list[float], days: int) -> array[float]:
    """The cumulative table of a day's counts per minute (averaged over `days`), as doubles."""
    out = array("d", bytes(8 * (MINUTES + 1)))
    total = 0.0
    for i, x in enumerate(per_minute):
        total += x / days
        out[i + 1] = total
    return out


def learn(days: Iterable[Iterable[r.Event]]) -> Params:
    """The figures of the office whose days these are."""
    learner = Learner()
    for events in days:
        learner.day(events)
    return learner.params()
