"""The congestion forecast behind the residents' public page (issue 16, docs/congestion.md).

Owns learning, from one office's past days of public event records, how many tickets each service
issues per clock hour and how long they wait (issue → first call, read exactly as the wait-time
predictor reads records: `office.waittime.records`, `replay.actual_waits`), and forecasting a
date's opening hours from that. Pure: records in, figures out; no I/O, no clock (the caller says
which day). It must not touch the live wait estimate (office/waittime) — it only reads records
with its reader.

The interface the web app calls:

    days = day_stats(records)           # past days' records (typed) → one DayStats per business day
    days = stats_from_records(dicts)    # … or straight from exported JSON records
    history = History(days)             # one office's past days (only days before the forecast count)
    forecast_day(history, config, service_id, day) -> list[HourForecast]   # [] on a closed day
    same_hour_last_week(history, config, service_id, day) -> list[HourForecast]   # the baseline

A forecast, in words: the day's expected tickets of a service = its recent daily level (the last
4 weeks, shrunk toward the last 12), × its weekday's factor, × the season (how much busier last
year's same dates were than last year's weeks before them — the March–April rush), × a factor for
the day after a closure (a backlog, if history shows one); spread over the hours like past days
of the same kind (weekday or Saturday). The wait at an hour is the weighted median of that hour's
typical wait on past days of the same kind that were about as busy (the office's tickets that
day, relative to a usual day of its kind), recent days weighing more, and days of the same
weekday as a group of their own, shrunk toward all like days when there are few; the band is
their weighted 10th–90th percentile.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from office.calendar import plan_for
from office.config import OfficeConfig
from office.waittime import records as r
from office.waittime.replay import actual_waits, iter_days

WEEKDAY, SATURDAY = "weekday", "saturday"
RECENT_DAYS = 28  # the recent level: the last four weeks of history
LONG_DAYS = 84  # … shrunk toward the last twelve
SHRINK = 5.0  # pseudo-days of the longer history in the recent level (and of 1.0 in factors)
YEAR = 364  # 52 weeks: last year's same date falls on the same weekday
ANALOG_DAYS = 2  # last year's days within ±2 days of the same date tell the season
SEASON_NEAR, SEASON_WIDE = 3, 56  # a day's season: like days within ±3 days against ±8 weeks
USUAL_Q = 0.33
SEASON_SIGMA = 0.06  # how alike two days' seasons (log of the index) must be to count together
LOAD_SIGMA = 0.2  # … and their loads (log of the day's tickets relative to the kind's median day)
HALF_LIFE_DAYS = 182.0  # an older day's wait counts half (service times drift over a season)
BAND = (0.1, 0.9)
BACKLOG_LOOKBACK = 10  # how far back a closure before a day is looked for


@dataclass(frozen=True, slots=True)
class DayStats:
    """One business day of one office, by (service, clock hour): tickets issued, and the median
    wait of the hour's tickets that were called. `open_hours`: the hours each service was offered
    by the day's schedule (so an hour without a ticket is a quiet hour, not a missing one)."""

    day: date
    kind: str  # WEEKDAY or SATURDAY (a day whose plan has a `saturday` period)
    open_hours: frozenset[tuple[str, int]]
    arrivals: Mapping[tuple[str, int], int]
    waits: Mapping[tuple[str, int], float]

    def total(self, service: str | None = None) -> int:
        return sum(n for (s, _), n in self.arrivals.items() if service is None or s == service)


@dataclass(frozen=True, slots=True)
class HourForecast:
    """One opening hour [hour:00, hour+1:00) of a service. Waits in seconds; None when history
    has no wait for that hour (no like day issued a ticket then)."""

    hour: int
    arrivals: float
    wait_s: float | None
    wait_low_s: float | None
    wait_high_s: float | None


# -- reading past days --------------------------------------------------------------------------
def day_stats(records: Iterable[r.Event]) -> list[DayStats]:
    """One DayStats per business day of the records (one office's, in log order), read a day at
    a time: years of history cost one day's events at once, and a DayStats each."""
    return [_one_day(events) for events in iter_days(records)]


def stats_from_records(raw: Iterable[Mapping[str, Any]]) -> list[DayStats]:
    """The same from exported JSON records: unknown types and fields are ignored, and an
    unreadable record costs only itself (as in `records.from_events`). `raw` is read once, in
    order, as it comes (central passes its store's pages)."""
    return day_stats(_readable(raw))


def _readable(raw: Iterable[Mapping[str, Any]]) -> Iterator[r.Event]:
    for rec in raw:
        try:
            event = r.read_record(rec)
        except r.RecordError:
            continue
        if event is not None:
            yield event


def _one_day(events: list[r.Event]) -> DayStats:
    issued: dict[str, tuple[str, int]] = {}
    for e in events:
        if isinstance(e, r.TicketIssued) and e.ticket not in issued:  # a repeated record counts once
            issued[e.ticket] = (e.service, int(e.t // 3600))
    by_hour: dict[tuple[str, int], list[float]] = {}
    for (_, ticket), wait in actual_waits(events).items():
        key = issued.get(ticket)  # a ticket issued before the log starts has no hour
        if key is not None:
            by_hour.setdefault(key, []).append(wait)
    arrivals = Counter(issued.values())
    schedules = [e for e in events if isinstance(e, r.Schedule)]
    day = date.fromisoformat(events[0].day)
    if schedules:
        periods = schedules[-1].periods  # the latest plan of the day (an override replaces it)
        open_hours = {(s, h) for p in periods for s in p.services for h in _hours(p.start, p.end)}
        kind = SATURDAY if any(p.mode == SATURDAY for p in periods) else WEEKDAY
    else:  # a log without its schedule: the hours that issued tickets, the kind by the date
        open_hours, kind = set(arrivals), SATURDAY if day.weekday() == 5 else WEEKDAY
    return DayStats(
        day=day,
        kind=kind,
        open_hours=frozenset(open_hours | set(arrivals)),
        arrivals=dict(arrivals),
        waits={k: statistics.median(v) for k, v in by_hour.items()},
    )


def _hours(start_s: float, end_s: float) -> range:
    """The clock hours a [start, end) span of seconds touches."""
    return range(int(start_s // 3600), math.ceil(end_s / 3600))


class History:
    """One office's past days, in date order, with each day's season index (below)."""

    def __init__(self, days: Iterable[DayStats]) -> None:
        self.days: tuple[DayStats, ...] = tuple(sorted(days, key=lambda s: s.day))
        self._by_day = {s.day: s for s in self.days}
        self._season: dict[date, float] = {}

    def get(self, day: date) -> DayStats | None:
        return self._by_day.get(day)

    def before(self, day: date) -> History:
        return History(s for s in self.days if s.day < day)

    def season(self, day: date) -> float | None:
        """How busy the office was around `day` (its tickets on like days within ±3 days) for the
        time of year: relative to a usual like day within ±8 weeks (the lower tercile, so that a
        month of rush in those 16 weeks still stands out). None when `day` is not in history."""
        if day in self._season:
            return self._season[day]
        s = self._by_day.get(day)
        if s is None:
            return None
        near = _window(self.days, day - timedelta(days=SEASON_NEAR), day + timedelta(days=SEASON_NEAR), s.kind)
        wide = _window(self.days, day - timedelta(days=SEASON_WIDE), day + timedelta(days=SEASON_WIDE), s.kind)
        usual = _quantile(sorted(o.total() for o in wide), USUAL_Q) or 1.0
        value = statistics.fmean([o.total() for o in near]) / usual
        self._season[day] = value
        return value


# -- the calendar side --------------------------------------------------------------------------
def opening_hours(config: OfficeConfig, service_id: str, day: date) -> tuple[str | None, list[int]]:
    """The day's kind (None when closed) and the clock hours the service is offered."""
    plan = plan_for(config, day)
    periods = [p for p in plan.periods if service_id in p.services]
    if not plan.is_open:
        return None, []
    kind = SATURDAY if any(p.mode == SATURDAY for p in plan.periods) else WEEKDAY
    hours = sorted({h for p in periods for h in _hours(_secs(p.start), _secs(p.end))})
    return kind, hours


def _secs(t: time) -> float:
    return t.hour * 3600.0 + t.minute * 60.0


def after_closure(config: OfficeConfig, day: date) -> bool:
    """Whether a weekday the office was closed on (a holiday, the New Year) lies between the last
    open day and `day`: residents who would have come then come now."""
    d = day - timedelta(days=1)
    for _ in range(BACKLOG_LOOKBACK):
        if plan_for(config, d).is_open:
            return False
        if d.weekday() < 5:
            return True
        d -= timedelta(days=1)
    return True


# -- levels -------------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _shrink(value: float, n: int, toward: float) -> float:
    return (n * value + SHRINK * toward) / (n + SHRINK)


def _quantile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _window(days: Sequence[DayStats], lo: date, hi: date, kind: str) -> list[DayStats]:
    return [s for s in days if lo <= s.day <= hi and s.kind == kind]


def _weekday_factors(days: Sequence[DayStats], service: str, end: date) -> dict[int, float]:
    """Each weekday's level relative to all weekdays of the last 12 weeks (Mondays are busier)."""
    long = _window(days, end - timedelta(days=LONG_DAYS - 1), end, WEEKDAY)
    overall = _mean([s.total(service) for s in long])
    if not overall:
        return {}
    out = {}
    for wd in range(5):
        those = [s.total(service) / overall for s in long if s.day.weekday() == wd]
        out[wd] = _shrink(statistics.fmean(those), len(those), 1.0) if those else 1.0
    return out


@dataclass(frozen=True, slots=True)
class _Level:
    """A service's expected tickets on a day, and the past days its hours are spread like."""

    total: float
    like_days: list[DayStats]


def _adjusted(days: Iterable[DayStats], service: str, factors: Mapping[int, float]) -> list[float]:
    return [s.total(service) / factors.get(s.day.weekday(), 1.0) for s in days]


def _kind_level(days: Sequence[DayStats], service: str, day: date, kind: str) -> tuple[float, list[DayStats]] | None:
    """Recent level × season for a kind of day, weekday factors taken out (and not yet put back);
    None when history has no day of that kind, recent or a year ago."""
    end = days[-1].day
    factors = _weekday_factors(days, service, end) if kind == WEEKDAY else {}
    span = timedelta(days=RECENT_DAYS - 1)
    recent = _window(days, end - span, end, kind)
    long = _window(days, end - timedelta(days=LONG_DAYS - 1), end, kind)
    year = timedelta(days=YEAR)
    last_year = _window(days, end - year - span, end - year, kind)
    analog = _window(days, day - year - timedelta(days=ANALOG_DAYS), day - year + timedelta(days=ANALOG_DAYS), kind)
    analog_mean = _mean(_adjusted(analog, service, factors))
    if recent:
        recent_mean = statistics.fmean(_adjusted(recent, service, factors))
        base = _shrink(recent_mean, len(recent), statistics.fmean(_adjusted(long, service, factors)))
        ly_mean = _mean(_adjusted(last_year, service, factors))
        season = analog_mean / ly_mean if analog_mean is not None and ly_mean else 1.0
        return base * season, recent + analog
    if analog_mean is not None and kind != WEEKDAY:
        # A kind seen only a year ago (Oizumi's rush Saturdays): last year's level, grown as
        # weekdays grew since.
        return analog_mean * _growth(days, service, end), analog
    return None


def _growth(days: Sequence[DayStats], service: str, end: date) -> float:
    span, year = timedelta(days=RECENT_DAYS - 1), timedelta(days=YEAR)
    now = _mean([s.total(service) for s in _window(days, end - span, end, WEEKDAY)])
    then = _mean([s.total(service) for s in _window(days, end - year - span, end - year, WEEKDAY)])
    return now / then if now is not None and then else 1.0


def _backlog_factor(days: Sequence[DayStats], config: OfficeConfig, service: str, kind: str) -> float:
    """Tickets on a day after a closure relative to like days within two weeks of it, shrunk
    toward 1 (the simulator has no backlog, so on its data this stays near 1)."""
    ratios = []
    for s in days:
        if s.kind != kind or not after_closure(config, s.day):
            continue
        near = [
            o.total(service)
            for o in _window(days, s.day - timedelta(days=14), s.day + timedelta(days=14), kind)
            if o.day != s.day and o.day.weekday() == s.day.weekday() and not after_closure(config, o.day)
        ]
        if near and statistics.fmean(near) > 0:
            ratios.append(s.total(service) / statistics.fmean(near))
    return _shrink(statistics.fmean(ratios), len(ratios), 1.0) if ratios else 1.0


def _level(history: History, config: OfficeConfig, service: str, day: date, kind: str) -> tuple[_Level, str] | None:
    """The service's level on `day` and the kind of day it was learned from (a kind history has
    never seen borrows weekdays' clock hours)."""
    past = [s for s in history.days if s.day < day]
    if not past:
        return None
    for used in (kind, WEEKDAY):
        found = _kind_level(past, service, day, used)
        if found is None:
            continue
        total, like = found
        if used == WEEKDAY and kind == WEEKDAY:
            total *= _weekday_factors(past, service, past[-1].day).get(day.weekday(), 1.0)
        if after_closure(config, day):
            total *= _backlog_factor(past, config, service, used)
        return _Level(total, like), used
    return None


def _shape(like: Sequence[DayStats], service: str) -> dict[int, float]:
    """The share of the service's day falling in each clock hour, over like days."""
    counts: Counter[int] = Counter()
    for s in like:
        for (svc, hour), n in s.arrivals.items():
            if svc == service:
                counts[hour] += n
    total = sum(counts.values())
    return {h: n / total for h, n in counts.items()} if total else {}


# -- waits --------------------------------------------------------------------------------------
def _weighted_quantile(pairs: Sequence[tuple[float, float]], q: float) -> float:
    ordered = sorted(pairs)
    total = sum(w for _, w in ordered)
    acc = 0.0
    for value, weight in ordered:
        acc += weight
        if acc >= q * total:
            return value
    return ordered[-1][0]


def _like_weights(history: History, days: Sequence[DayStats], load: float, day: date) -> list[tuple[DayStats, float]]:
    """Each past day's weight for the waits of `day`: alike in season (as busy for the time of
    year as `day`'s date was last year), alike in load (its tickets relative to the kind's median
    day, against `load`), and recent. Log-weights normalised: when no day is close, the nearest win."""
    usual = statistics.median([s.total() for s in days]) or 1.0
    season = _expected_season(history, days, day)
    logs = []
    for s in days:
        load_gap = math.log(max(s.total(), 1) / usual) - math.log(max(load, 1e-9))
        season_gap = math.log(history.season(s.day) or 1.0) - math.log(season)
        age = (day - s.day).days
        logs.append(
            -0.5 * (season_gap / SEASON_SIGMA) ** 2
            - 0.5 * (load_gap / LOAD_SIGMA) ** 2
            - math.log(2) * age / HALF_LIFE_DAYS
        )
    top = max(logs)
    return [(s, math.exp(lg - top)) for s, lg in zip(days, logs, strict=True)]


def _same_weekday(weights: Sequence[tuple[DayStats, float]], day: date) -> list[tuple[DayStats, float]]:
    """The like days' weights with `day`'s weekday as a group of its own: the waits of past days
    of that weekday weigh n / (n + SHRINK) of the whole, n their effective number of days (their
    weights' sum squared over the sum of squares), and all like days' the rest, each group's
    weights as `_like_weights` gave them. The weekday is known ahead, and history by weekday
    knows what it does to waits: a Monday brings 15 % more residents than a Tuesday, and waits
    grow faster than load, while a load likeness wide enough to average many days hardly tells
    a usual Monday from a busy Tuesday. With few days of the weekday (or none) it stays the
    pattern of all like days; a kind with a single weekday (Saturdays) is unchanged."""
    same = [w for s, w in weights if s.day.weekday() == day.weekday()]
    same_total, all_total = sum(same), sum(w for _, w in weights)
    if same_total <= 0.0 or len(same) == len(weights):  # none of the weekday (or all of them)
        return list(weights)
    n = same_total**2 / sum(w * w for w in same)
    share = n / (n + SHRINK)
    return [
        (s, (share * w / same_total if s.day.weekday() == day.weekday() else 0.0) + (1.0 - share) * w / all_total)
        for s, w in weights
    ]


def _expected_season(history: History, days: Sequence[DayStats], day: date) -> float:
    """`day`'s season as last year's same dates had it; without them, the latest days' (it
    persists); else ordinary (1)."""
    ago = day - timedelta(days=YEAR)
    analog = [s for s in days if abs((s.day - ago).days) <= ANALOG_DAYS]
    values = [v for v in (history.season(s.day) for s in analog or days[-3:]) if v is not None]
    return statistics.fmean(values) if values else 1.0


def _relative_load(history: History, config: OfficeConfig, day: date, kind: str) -> float:
    """The office's expected tickets on `day` relative to the median past day of its kind."""
    past = [s for s in history.days if s.day < day and s.kind == kind]
    expected = 0.0
    for svc in config.services:
        found = _level(history, config, svc.id, day, kind)
        if found is not None:
            expected += found[0].total
    usual = statistics.median([s.total() for s in past]) if past else 0
    return expected / usual if usual else 1.0


# -- the forecast -------------------------------------------------------------------------------
def forecast_day(history: History, config: OfficeConfig, service_id: str, day: date) -> list[HourForecast]:
    """The service's opening hours on `day`, each with expected tickets and the typical wait with
    its band, learned from history's days before `day`. [] when the office is closed or the
    service is not offered; arrivals 0 and no wait when history has nothing to go on."""
    kind, hours = opening_hours(config, service_id, day)
    if kind is None or not hours:
        return []
    found = _level(history, config, service_id, day, kind)
    if found is None:
        return [HourForecast(h, 0.0, None, None, None) for h in hours]
    level, used = found
    shape = _shape(level.like_days, service_id)
    past = [s for s in history.days if s.day < day and s.kind == used]
    weights = _same_weekday(_like_weights(history, past, _relative_load(history, config, day, used), day), day)
    out = []
    for h in hours:
        pairs = [(s.waits[(service_id, h)], w) for s, w in weights if (service_id, h) in s.waits]
        if pairs:
            mid, low, high = (_weighted_quantile(pairs, q) for q in (0.5, *BAND))
            out.append(HourForecast(h, level.total * shape.get(h, 0.0), mid, low, high))
        else:
            out.append(HourForecast(h, level.total * shape.get(h, 0.0), None, None, None))
    return out


SAME_DAY_WEEKS = 4  # the baseline looks back this many weeks for the same weekday open


def same_hour_last_week(history: History, config: OfficeConfig, service_id: str, day: date) -> list[HourForecast]:
    """The baseline: each hour as it was on the same weekday last week; if that hour was not
    open then, the same weekday up to four weeks back, else the latest past day of the same kind
    with the hour open, else any. An open hour without tickets then is a zero wait."""
    kind, hours = opening_hours(config, service_id, day)
    if kind is None:
        return []
    past = [s for s in history.days if s.day < day]
    out = []
    for h in hours:
        source = _baseline_day(history, past, service_id, h, day, kind)
        if source is None:
            out.append(HourForecast(h, 0.0, None, None, None))
            continue
        wait = source.waits.get((service_id, h), 0.0)
        out.append(HourForecast(h, float(source.arrivals.get((service_id, h), 0)), wait, wait, wait))
    return out


def _baseline_day(
    history: History, past: Sequence[DayStats], service: str, hour: int, day: date, kind: str
) -> DayStats | None:
    key = (service, hour)
    for weeks in range(1, SAME_DAY_WEEKS + 1):
        s = history.get(day - timedelta(days=7 * weeks))
        if s is not None and key in s.open_hours:
            return s
    for wanted in (kind, None):
        for s in reversed(past):
            if key in s.open_hours and wanted in (None, s.kind):
                return s
    return None
