"""Who comes to an office on a given day, and when: the simulated residents' arrivals.

Owns the demand model (each service's share of a day, its factor in the March–April moving
season, residents' patience), the day's arrival shape (opening crowd, morning peak, lunch dip,
evening window) and the draws that decide how each resident will behave; `counterfloor.simulate`
plays the day out. Pure: a seeded `random.Random` in, a list of arrivals out.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from datetime import time

from office.calendar import DayPlan, counter_shifts
from office.config import OfficeConfig, Service

# -- demand: who comes, and when ---------------------------------------------------------------
# Residents per staffed counter-hour on an ordinary Tuesday. Staffing is what a config tells us
# about an office's size, so Nerima (about 96 counter-hours) gets roughly 700 residents and
# Oizumi (about 34) roughly 250; a Saturday with half the counters gets half the crowd.
RESIDENTS_PER_COUNTER_HOUR = 7.3
WEEKDAY_FACTOR = (1.15, 1.0, 0.95, 0.95, 1.05, 1.0, 1.0)  # Monday busiest, Friday before a weekend
OPENING_CROWD = 0.03  # of the day's residents queue at the door and take a ticket at opening
OPENING_CROWD_RUSH = 0.05
OFF_HOURS_FACTOR = 0.08  # residents who come for a service at an hour it is not offered


@dataclass(frozen=True, slots=True)
class Demand:
    """How residents use one service: share of an ordinary day, factor in the moving season
    (March–April), and the median minutes they will wait before giving up and leaving."""

    share: float
    rush: float
    patience_minutes: float


# Notifications are what the moving season multiplies; certificates follow moves (move-out and
# new-employer paperwork); payments do not move with the season.
KNOWN_DEMAND: dict[str, Demand] = {
    "move": Demand(share=0.13, rush=3.5, patience_minutes=180),
    "seal": Demand(share=0.06, rush=2.0, patience_minutes=120),
    "insurance": Demand(share=0.06, rush=2.2, patience_minutes=120),
    "certificate": Demand(share=0.52, rush=2.5, patience_minutes=90),
    "payment": Demand(share=0.13, rush=1.0, patience_minutes=60),
    "guidance": Demand(share=0.08, rush=1.5, patience_minutes=60),
}
LONG_SERVICE_MINUTES = 15.0  # an unknown service this long is taken to be a notification


def demand_for(service: Service) -> Demand:
    known = KNOWN_DEMAND.get(service.id)
    if known is not None:
        return known
    if service.typical_minutes >= LONG_SERVICE_MINUTES:
        return Demand(share=0.1, rush=3.0, patience_minutes=180)
    return Demand(share=0.1, rush=1.8, patience_minutes=90)


# Relative arrival rate through the day (local clock, piecewise linear): the morning peak,
# the lunch dip, a steadier afternoon, and the after-work evening window.
ARRIVAL_SHAPE: tuple[tuple[time, float], ...] = (
    (time(8, 0), 1.5),
    (time(8, 45), 1.45),
    (time(9, 30), 1.5),
    (time(10, 30), 1.65),
    (time(11, 30), 1.35),
    (time(12, 0), 0.8),
    (time(12, 50), 0.75),
    (time(13, 20), 1.25),
    (time(14, 30), 1.35),
    (time(15, 30), 1.15),
    (time(16, 30), 0.85),
    (time(17, 0), 0.45),
    (time(17, 45), 0.55),
    (time(18, 30), 0.35),
    (time(19, 0), 0.2),
    (time(23, 59), 0.2),
)

# Service times: lognormal around the configured typical minutes (its mean), never under 1 min.
SERVICE_TIME_SIGMA = 0.3
P_WRONG_SERVICE = 0.02  # took the wrong kind of ticket: the counter transfers it
TRANSFER_AFTER_SECONDS = (40, 150)
PATIENCE_SIGMA = 0.5


@dataclass(frozen=True, slots=True)
class Arrival:
    """One resident: when they reach the dispenser, what they want, and how they will behave."""

    at: int  # seconds after local midnight
    service: str
    service_seconds: int
    patience_seconds: int
    # Uniform draws for the calls they may get: first call, recalls, a requeued call…
    answers: tuple[float, ...]
    wrong_service: bool
    transfer_pick: float
    transfer_after: int
    second_service_z: float


def seconds_of_day(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # normal approximation; per-minute means are far below this
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _shape(seconds: int) -> float:
    t = seconds / 3600.0
    points = [(seconds_of_day(k) / 3600.0, v) for k, v in ARRIVAL_SHAPE]
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return points[-1][1]


def staffed_counter_hours(config: OfficeConfig, plan: DayPlan) -> float:
    """Counter-hours planned for the day; an open-ended shift counts until reception closes."""
    closes = seconds_of_day(plan.closes) if plan.closes else 0
    total = 0
    for c in config.counters:
        for start, end in counter_shifts(config, plan, c.id):
            total += max(0, (seconds_of_day(end) if end else closes) - seconds_of_day(start))
    return total / 3600.0


def expected_residents(config: OfficeConfig, plan: DayPlan, rush: bool) -> float:
    """How many residents the day should bring, before chance."""
    base = RESIDENTS_PER_COUNTER_HOUR * staffed_counter_hours(config, plan) * WEEKDAY_FACTOR[plan.day.weekday()]
    demands = [demand_for(s) for s in config.services]
    shares = sum(d.share for d in demands)
    factor = sum(d.share * (d.rush if rush else 1.0) for d in demands) / shares
    return base * factor


def generate_arrivals(config: OfficeConfig, plan: DayPlan, rng: random.Random, rush: bool) -> list[Arrival]:
    """The day's residents, in order of arrival: Poisson per minute around the day's shape."""
    if not plan.is_open or plan.opens is None or plan.closes is None:
        return []
    opens, closes = seconds_of_day(plan.opens), seconds_of_day(plan.closes)
    services = config.services
    demands = [demand_for(s) for s in services]
    weights = [d.share * (d.rush if rush else 1.0) for d in demands]
    total_weight = sum(weights)

    def offered(sid: str, s: int) -> bool:
        p = plan.period_at(time(s // 3600, s % 3600 // 60))
        return p is not None and sid in p.services

    # Per service, the rate at each minute: its share of the day's shape, full while it is
    # offered; a few residents still come outside those hours and are turned away.
    minutes = list(range(opens, closes, 60))
    shape = [_shape(m) for m in minutes]
    norm = sum(shape) or 1.0
    total = expected_residents(config, plan, rush)
    crowd = OPENING_CROWD_RUSH if rush else OPENING_CROWD
    spread = total * (1.0 - crowd)
    per_service: list[list[float]] = []
    for svc, w in zip(services, weights, strict=True):
        per_service.append(
            [
                spread * (w / total_weight) * v / norm * (1.0 if offered(svc.id, m) else OFF_HOURS_FACTOR)
                for m, v in zip(minutes, shape, strict=True)
            ]
        )

    times: list[tuple[int, int]] = []  # (second, service index)
    # The opening crowd: residents who queued at the door take tickets in the first minutes.
    for _ in range(_poisson(rng, total * crowd)):
        idx = rng.choices(range(len(services)), weights=weights)[0]
        times.append((opens + int(rng.uniform(0, 180)), idx))
    for i, m in enumerate(minutes):
        rates = [col[i] for col in per_service]
        for _ in range(_poisson(rng, sum(rates))):
            idx = rng.choices(range(len(services)), weights=rates)[0]
            times.append((m + rng.randrange(60), idx))
    times.sort()

    out: list[Arrival] = []
    for at, idx in times:
        svc, dem = services[idx], demands[idx]
        out.append(
            Arrival(
                at=at,
                service=svc.id,
                service_seconds=service_seconds(svc.typical_minutes, rng.gauss(0.0, 1.0)),
                patience_seconds=int(60 * dem.patience_minutes * math.exp(PATIENCE_SIGMA * rng.gauss(0.0, 1.0))),
                answers=tuple(rng.random() for _ in range(6)),
                wrong_service=rng.random() < P_WRONG_SERVICE,
                transfer_pick=rng.random(),
                transfer_after=rng.randint(*TRANSFER_AFTER_SECONDS),
                second_service_z=rng.gauss(0.0, 1.0),
            )
        )
    return out


def service_seconds(typical_minutes: float, z: float) -> int:
    mu = math.log(typical_minutes) - SERVICE_TIME_SIGMA**2 / 2  # so the mean is the typical time
    return max(60, round(60 * math.exp(mu + SERVICE_TIME_SIGMA * z)))
