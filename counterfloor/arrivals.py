"""Who comes to an office on a given day, and when, and how long their business takes: the
simulated residents and the true service times.

Owns the demand model (each service's share of a day, its factor in the March–April moving
season, residents' patience), the day's arrival shape (opening crowd, morning peak, lunch dip,
evening window; Saturdays have their own), the draws that decide how each resident will behave,
and the service-time profile (each service's lognormal time, its hour-of-day multipliers and its
slow drift across days); `counterfloor.simulate` plays the day out. The oracle
(`counterfloor.oracle`) draws from the same process: the rest of a day from any moment
(`DayDemand.residents_between`), a resident given what was seen of them (`draw_resident`), a
service given how long it has lasted (`ServiceTimes.z_at_least`). Pure: seeds in, arrivals and
service times out.

These numbers are the frozen profiles of docs/simulation.md (`counterfloor.simulate.PROFILES_VERSION`):
benchmark data are generated with them, so a predictor must never be tuned by changing them.
Change one only with a new version (tests/test_simulate.py holds their fingerprint).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from datetime import date, time
from statistics import NormalDist

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
CROWD_SECONDS = 180  # the opening crowd takes its tickets within this many seconds of opening
OFF_HOURS_FACTOR = 0.08  # residents who come for a service at an hour it is not offered
# Days differ by more than Poisson chance (weather, a school holiday, a tax deadline): the
# day's expected crowd is multiplied by a lognormal factor of mean 1 and this sigma.
DAY_DEMAND_SIGMA = 0.10


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
UNKNOWN_LONG_DEMAND = Demand(share=0.1, rush=3.0, patience_minutes=180)
UNKNOWN_SHORT_DEMAND = Demand(share=0.1, rush=1.8, patience_minutes=90)


def demand_for(service: Service) -> Demand:
    known = KNOWN_DEMAND.get(service.id)
    if known is not None:
        return known
    return UNKNOWN_LONG_DEMAND if service.typical_minutes >= LONG_SERVICE_MINUTES else UNKNOWN_SHORT_DEMAND


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
# Saturdays: nobody comes on a lunch break from work, so the dip is shallow; the late morning is
# the peak and the afternoon tails off towards closing.
SATURDAY_SHAPE: tuple[tuple[time, float], ...] = (
    (time(8, 0), 1.3),
    (time(9, 0), 1.3),
    (time(10, 0), 1.6),
    (time(11, 30), 1.6),
    (time(12, 0), 1.3),
    (time(13, 0), 1.2),
    (time(14, 0), 1.4),
    (time(15, 30), 1.1),
    (time(16, 30), 0.7),
    (time(17, 0), 0.4),
    (time(23, 59), 0.4),
)

P_WRONG_SERVICE = 0.02  # took the wrong kind of ticket: the counter transfers it
TRANSFER_AFTER_SECONDS = (40, 150)
PATIENCE_SIGMA = 0.5


@dataclass(frozen=True, slots=True)
class Arrival:
    """One resident: when they reach the dispenser, what they want, and how they will behave."""

    at: int  # seconds after local midnight
    service: str
    service_z: float  # the standard normal draw behind their service time (ServiceTimes.draw)
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


def _shape(seconds: int, shape: tuple[tuple[time, float], ...] = ARRIVAL_SHAPE) -> float:
    t = seconds / 3600.0
    points = [(seconds_of_day(k) / 3600.0, v) for k, v in shape]
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
    # The day's level (its lognormal factor) is the first draw of the day's stream.
    level = math.exp(DAY_DEMAND_SIGMA * rng.gauss(0.0, 1.0) - DAY_DEMAND_SIGMA**2 / 2)
    return day_demand(config, plan, rush, level).residents(rng)


@dataclass(frozen=True, slots=True)
class DayDemand:
    """Who the day brings at a given level (the day's factor): each service's expected residents
    per minute from opening to closing (`rates`, one row per service of `services`) and the
    opening crowd (`crowd` residents expected in the first `CROWD_SECONDS`)."""

    services: tuple[Service, ...]
    demands: tuple[Demand, ...]
    weights: tuple[float, ...]  # each service's share of the crowd
    opens: int
    minutes: tuple[int, ...]  # the start of each minute of the day, seconds after midnight
    rates: tuple[tuple[float, ...], ...]
    crowd: float

    def residents(self, rng: random.Random) -> list[Arrival]:
        """The whole day's residents, in order of arrival."""
        times: list[tuple[int, int]] = []  # (second, service index)
        # The opening crowd: residents who queued at the door take tickets in the first minutes.
        for _ in range(_poisson(rng, self.crowd)):
            idx = rng.choices(range(len(self.services)), weights=self.weights)[0]
            times.append((self.opens + int(rng.uniform(0, CROWD_SECONDS)), idx))
        for i, m in enumerate(self.minutes):
            rates = [col[i] for col in self.rates]
            for _ in range(_poisson(rng, sum(rates))):
                idx = rng.choices(range(len(self.services)), weights=rates)[0]
                times.append((m + rng.randrange(60), idx))
        times.sort()
        return [draw_resident(rng, at, self.services[idx], self.demands[idx]) for at, idx in times]

    def residents_between(self, rng: random.Random, after: int, until: int, scale: float = 1.0) -> list[Arrival]:
        """The residents arriving in (after, until], in order, the rates multiplied by `scale`:
        the rest of a day seen at `after` (an oracle's fresh draw; the same process as
        `residents`, since Poisson arrivals in disjoint intervals are independent)."""
        times: list[tuple[int, int]] = []
        # The crowd's whole seconds are uniform over its window: the part still to come.
        lo, hi = max(after + 1, self.opens), min(until, self.opens + CROWD_SECONDS - 1)
        if lo <= hi:
            for _ in range(_poisson(rng, self.crowd * scale * (hi - lo + 1) / CROWD_SECONDS)):
                idx = rng.choices(range(len(self.services)), weights=self.weights)[0]
                times.append((rng.randint(lo, hi), idx))
        first = max(0, (after - self.opens) // 60)
        for i in range(first, len(self.minutes)):
            m = self.minutes[i]
            if m > until:
                break
            rates = [col[i] * scale for col in self.rates]
            for _ in range(_poisson(rng, sum(rates))):
                at = m + rng.randrange(60)
                idx = rng.choices(range(len(self.services)), weights=rates)[0]
                if after < at <= until:
                    times.append((at, idx))
        times.sort()
        return [draw_resident(rng, at, self.services[idx], self.demands[idx]) for at, idx in times]


def day_demand(config: OfficeConfig, plan: DayPlan, rush: bool, level: float = 1.0) -> DayDemand:
    """The day's expected residents at `level` (1.0: the day before its random factor)."""
    assert plan.opens is not None and plan.closes is not None
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
    day_shape = SATURDAY_SHAPE if any(p.mode == "saturday" for p in plan.periods) else ARRIVAL_SHAPE
    shape = [_shape(m, day_shape) for m in minutes]
    norm = sum(shape) or 1.0
    total = expected_residents(config, plan, rush) * level
    crowd = OPENING_CROWD_RUSH if rush else OPENING_CROWD
    spread = total * (1.0 - crowd)
    per_service: list[tuple[float, ...]] = []
    for svc, w in zip(services, weights, strict=True):
        per_service.append(
            tuple(
                spread * (w / total_weight) * v / norm * (1.0 if offered(svc.id, m) else OFF_HOURS_FACTOR)
                for m, v in zip(minutes, shape, strict=True)
            )
        )
    return DayDemand(
        tuple(services), tuple(demands), tuple(weights), opens, tuple(minutes), tuple(per_service), total * crowd
    )


_STANDARD = NormalDist()


def draw_resident(
    rng: random.Random, at: int, service: Service, demand: Demand, *, patience_at_least: int = 0
) -> Arrival:
    """One resident of `service` arriving at `at`, every behaviour drawn. `patience_at_least`:
    what is known of them, that they did not walk away from a board saying that many seconds
    (an oracle's re-draw): their patience is drawn from its prior cut there."""
    service_z = rng.gauss(0.0, 1.0)
    if patience_at_least > 0:
        below = _STANDARD.cdf(_patience_z(demand, patience_at_least))
        z_patience = _STANDARD.inv_cdf(min(1.0 - 1e-12, below + (1.0 - below) * rng.random()))
    else:
        z_patience = rng.gauss(0.0, 1.0)
    return Arrival(
        at=at,
        service=service.id,
        service_z=service_z,
        # max: the cut must hold after rounding (0 for a resident nothing is known of).
        patience_seconds=max(
            patience_at_least, int(60 * demand.patience_minutes * math.exp(PATIENCE_SIGMA * z_patience))
        ),
        answers=tuple(rng.random() for _ in range(6)),
        wrong_service=rng.random() < P_WRONG_SERVICE,
        transfer_pick=rng.random(),
        transfer_after=rng.randint(*TRANSFER_AFTER_SECONDS),
        second_service_z=rng.gauss(0.0, 1.0),
    )


def _patience_z(demand: Demand, seconds: float) -> float:
    """The standard normal draw at which a resident's patience is exactly `seconds`."""
    return math.log(seconds / (60 * demand.patience_minutes)) / PATIENCE_SIGMA


def patience_below(demand: Demand, seconds: float) -> float:
    """The chance that a resident's patience is under `seconds` (they walk away from a board
    saying that many)."""
    return _STANDARD.cdf(_patience_z(demand, seconds)) if seconds > 0 else 0.0


# -- service times: how long a resident's business takes at the counter -------------------------
@dataclass(frozen=True, slots=True)
class ServiceTimeProfile:
    """One service's true time: lognormal with `sigma` (of its log), whose mean is the configured
    typical minutes × the multiplier of the clock hour the service starts in (`hours`; an hour not
    listed: 1.0) × the day's drift (`drift_factor`)."""

    sigma: float
    hours: dict[int, float]


# Certificates: in the morning single copies for residents on their way to work; the afternoon
# brings tax and family-register certificates, several at a time, with more lookups; the evening
# is quick copies again.
_ROUTINE_HOURS = {
    8: 0.90,
    9: 0.90,
    10: 0.95,
    11: 1.0,
    12: 1.05,
    13: 1.10,
    14: 1.12,
    15: 1.08,
    16: 1.0,
    17: 0.90,
    18: 0.90,
}
# Notifications and insurance: later in the day come whole households with several members'
# papers; after work, residents who could not come earlier and have the most questions.
_CASEWORK_HOURS = {
    8: 0.95,
    9: 0.95,
    10: 1.0,
    11: 1.05,
    12: 1.0,
    13: 1.10,
    14: 1.12,
    15: 1.12,
    16: 1.08,
    17: 1.20,
    18: 1.20,
}
# Payments take the same time all day; guidance gets the harder questions in the afternoon.
_FLAT_HOURS: dict[int, float] = {}
_GUIDANCE_HOURS = {13: 1.10, 14: 1.10, 15: 1.10, 16: 1.05}

KNOWN_SERVICE_TIMES: dict[str, ServiceTimeProfile] = {
    "move": ServiceTimeProfile(sigma=0.45, hours=_CASEWORK_HOURS),
    "seal": ServiceTimeProfile(sigma=0.35, hours=_CASEWORK_HOURS),
    "insurance": ServiceTimeProfile(sigma=0.45, hours=_CASEWORK_HOURS),
    "certificate": ServiceTimeProfile(sigma=0.35, hours=_ROUTINE_HOURS),
    "payment": ServiceTimeProfile(sigma=0.25, hours=_FLAT_HOURS),
    "guidance": ServiceTimeProfile(sigma=0.50, hours=_GUIDANCE_HOURS),
}
UNKNOWN_LONG_SERVICE_TIME = ServiceTimeProfile(sigma=0.45, hours=_CASEWORK_HOURS)
UNKNOWN_SHORT_SERVICE_TIME = ServiceTimeProfile(sigma=0.35, hours=_ROUTINE_HOURS)
MIN_SERVICE_SECONDS = 60  # nobody is done in less than a minute

# The slow drift of each service's mean across days (a new form, a system change, a team that
# gets faster): the log multiplier is a sum of sines, (period in days, amplitude), whose phases
# are drawn per seed, office and service.
DRIFT_TERMS: tuple[tuple[float, float], ...] = ((29.0, 0.07), (97.0, 0.05))
# Japanese staff rotate on 1 April: the new staff make every service this much slower on that
# day, the slowdown fading with this time constant (days). The same for every seed.
NEW_STAFF_SLOWDOWN = 0.12
NEW_STAFF_FADE_DAYS = 30.0


def service_time_profile(service: Service) -> ServiceTimeProfile:
    known = KNOWN_SERVICE_TIMES.get(service.id)
    if known is not None:
        return known
    long = service.typical_minutes >= LONG_SERVICE_MINUTES
    return UNKNOWN_LONG_SERVICE_TIME if long else UNKNOWN_SHORT_SERVICE_TIME


def drift_factor(seed: int, office: str, service: str, day: date) -> float:
    """The multiplier of `service`'s mean time on `day`: smooth from one day to the next, a
    function of its arguments alone (so a day simulated alone gets what it gets in a longer run)."""
    phases = random.Random(f"counterfloor-drift-{seed}-{office}-{service}")
    d = day.toordinal()
    log = sum(a * math.sin(2 * math.pi * d / p + phases.uniform(0, 2 * math.pi)) for p, a in DRIFT_TERMS)
    april = date(day.year if day.month >= 4 else day.year - 1, 4, 1)
    return math.exp(log) * (1.0 + NEW_STAFF_SLOWDOWN * math.exp(-(day - april).days / NEW_STAFF_FADE_DAYS))


class ServiceTimes:
    """The true service-time distributions of one office on one day (what an oracle may know):
    lognormal, mean `mean_seconds(service, at)`, sigma `sigma(service)`, never under a minute."""

    def __init__(self, config: OfficeConfig, day: date, seed: int) -> None:
        self.day = day
        self._typical = {s.id: 60.0 * s.typical_minutes for s in config.services}
        self._profiles = {s.id: service_time_profile(s) for s in config.services}
        self._drift = {s.id: drift_factor(seed, config.id, s.id, day) for s in config.services}

    def sigma(self, service: str) -> float:
        return self._profiles[service].sigma

    def mean_seconds(self, service: str, at: int) -> float:
        """The mean time of `service` when it starts `at` seconds after local midnight."""
        hour = self._profiles[service].hours.get(at // 3600, 1.0)
        return self._typical[service] * hour * self._drift[service]

    def draw(self, service: str, at: int, z: float) -> int:
        """The seconds a resident whose draw is `z` (standard normal) takes, starting at `at`."""
        sigma = self._profiles[service].sigma
        mean = self.mean_seconds(service, at)
        return max(MIN_SERVICE_SECONDS, round(mean * math.exp(sigma * z - sigma * sigma / 2)))

    def z_at_least(self, service: str, at: int, seconds: float) -> float:
        """The smallest `z` whose draw starting `at` lasts at least `seconds` (-inf: every draw
        does): what a service seen to have lasted that long tells of its draw (an oracle)."""
        if seconds <= MIN_SERVICE_SECONDS:
            return -math.inf
        sigma = self._profiles[service].sigma
        mean = self.mean_seconds(service, at)
        if sigma <= 0:
            return -math.inf if round(mean) >= seconds else math.inf
        # round(x) >= seconds  <=>  x >= seconds - 0.5
        return (math.log((seconds - 0.5) / mean) + sigma * sigma / 2) / sigma
