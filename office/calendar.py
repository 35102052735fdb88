"""The office calendar: which mode the floor is in on a date or at a moment, and which services it offers.

Pure: a config and a date (or an aware moment) in, a plan out. Public holidays come from
`jpholiday`, which works offline. `plan_for` gives a day's open periods; `mode_at` gives the mode
at a moment (office, evening, saturday or closed), why it is closed, and when it next changes.
A `ModeOverride` (a remote command for one date) replaces that date's plan. No I/O, no clock:
callers pass the moment. docs/calendar.md describes the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

import jpholiday

from office.config import MODES_OPEN, Hours, OfficeConfig, Text

_YEAR_END = Text(ja="年末年始休業", en="Year-end and New Year closure")
_SUNDAY = Text(ja="日曜日は閉庁", en="Closed on Sundays")
_SATURDAY = Text(ja="土曜日は閉庁", en="Closed on Saturdays")
_CLOSED_TODAY = Text(ja="臨時閉庁", en="Closed today")
OUTSIDE_HOURS = Text(ja="受付時間外", en="Outside opening hours")
MODE_CLOSED = "closed"
# How far mode_at looks for the next opening (or back for the last closing) before giving up:
# longer than any closure the calendar knows (year-end is 6 days), short enough to stay cheap.
SEARCH_DAYS = 400


@dataclass(frozen=True, slots=True)
class Period:
    mode: str
    start: time
    end: time
    services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DayPlan:
    """One business day: its open periods in order (empty when closed) and why it differs."""

    day: date
    periods: tuple[Period, ...]
    reason: Text | None

    @property
    def is_open(self) -> bool:
        return bool(self.periods)

    @property
    def opens(self) -> time | None:
        return self.periods[0].start if self.periods else None

    @property
    def closes(self) -> time | None:
        return self.periods[-1].end if self.periods else None

    def period_at(self, t: time) -> Period | None:
        for p in self.periods:
            if p.start <= t < p.end:
                return p
        return None

    def service_closes(self, service_id: str, t: time) -> time | None:
        """When reception for a service offered at `t` ends: the end of the run of adjacent
        periods offering it, so a service offered in office and evening hours runs to 19:00."""
        end: time | None = None
        for p in self.periods:
            if end is None:
                if p.start <= t < p.end and service_id in p.services:
                    end = p.end
            elif p.start == end and service_id in p.services:
                end = p.end
        return end


def _period(config: OfficeConfig, mode: str, hours: Hours) -> Period:
    services = tuple(s.id for s in config.services if mode in s.periods)
    return Period(mode, hours.start, hours.end, services)


# English names of Japan's public holidays, for residents who do not read Japanese.
HOLIDAY_EN = {
    "元日": "New Year's Day",
    "成人の日": "Coming of Age Day",
    "建国記念の日": "National Foundation Day",
    "天皇誕生日": "The Emperor's Birthday",
    "春分の日": "Vernal Equinox Day",
    "昭和の日": "Showa Day",
    "憲法記念日": "Constitution Memorial Day",
    "みどりの日": "Greenery Day",
    "こどもの日": "Children's Day",
    "海の日": "Marine Day",
    "山の日": "Mountain Day",
    "敬老の日": "Respect for the Aged Day",
    "秋分の日": "Autumnal Equinox Day",
    "スポーツの日": "Sports Day",
    "文化の日": "Culture Day",
    "勤労感謝の日": "Labour Thanksgiving Day",
    "国民の休日": "Citizens' Holiday",
}


def holiday_name_en(name_ja: str) -> str:
    """'春分の日 振替休日' → 'Vernal Equinox Day (substitute holiday)'; unknown names pass through."""
    base, _, rest = name_ja.partition(" ")
    english = HOLIDAY_EN.get(base, base)
    return f"{english} (substitute holiday)" if rest == "振替休日" else english


def holiday_name(config: OfficeConfig, day: date) -> str | None:
    if config.rules.public_holidays != "jp":
        return None
    name = jpholiday.is_holiday_name(day)
    return str(name) if name else None


@dataclass(frozen=True, slots=True)
class ModeOverride:
    """A remote command for one date (the MQTT command wires to it): close the office with a
    reason, or open it in one mode with the given hours (default: that mode's configured hours).
    It replaces the whole plan of `day` and nothing else: on any other date it is ignored."""

    day: date
    closed: bool
    mode: str | None = None
    hours: Hours | None = None
    reason: Text | None = None

    def __post_init__(self) -> None:
        if isinstance(self.day, datetime) or not isinstance(self.day, date):
            raise ValueError(f"override day must be a date (got {self.day!r})")
        if self.closed:
            if self.mode is not None or self.hours is not None:
                raise ValueError("a closing override takes no mode or hours")
            return
        if self.mode not in MODES_OPEN:
            raise ValueError(f"override mode must be one of {list(MODES_OPEN)} (got {self.mode!r}) or closed")
        if self.hours is not None and self.hours.end <= self.hours.start:
            raise ValueError(
                f"override hours close ({self.hours.end:%H:%M}) before they open ({self.hours.start:%H:%M})"
            )

    def resolved_hours(self, config: OfficeConfig) -> Hours:
        """The hours it opens for: its own, or the configured hours of its mode."""
        assert self.mode is not None
        hours = self.hours or config.hours_for(self.mode)
        if hours is None:
            raise ValueError(f"override opens in {self.mode!r} but gives no hours and hours.{self.mode} is not set")
        return hours


def override_record(o: ModeOverride) -> dict[str, Any]:
    """An override as the journal stores it (the body of a `mode_overridden` event)."""
    return {
        "date": o.day.isoformat(),
        "closed": o.closed,
        "mode": o.mode,
        "hours": [f"{o.hours.start:%H:%M}", f"{o.hours.end:%H:%M}"] if o.hours else None,
        "reason": {"ja": o.reason.ja, "en": o.reason.en} if o.reason else None,
    }


def override_from_record(record: dict[str, Any]) -> ModeOverride:
    """The override a stored record describes; ValueError for one that cannot be."""
    hours = record.get("hours")
    reason = record.get("reason")
    return ModeOverride(
        day=date.fromisoformat(record["date"]),
        closed=bool(record["closed"]),
        mode=record.get("mode"),
        hours=Hours(time.fromisoformat(hours[0]), time.fromisoformat(hours[1])) if hours else None,
        reason=Text(reason["ja"], reason["en"]) if reason else None,
    )


def plan_for(config: OfficeConfig, day: date, override: ModeOverride | None = None) -> DayPlan:
    """The plan of `day`: an override for that date wins, then dated exceptions, year-end,
    public holidays, Sundays, Saturdays (open only where hours.saturday is set), weekdays."""
    if override is not None and override.day == day:
        if override.closed:
            return DayPlan(day, (), override.reason or _CLOSED_TODAY)
        assert override.mode is not None
        return DayPlan(day, (_period(config, override.mode, override.resolved_hours(config)),), override.reason)
    for exc in config.exceptions:
        if day in exc.dates:
            if exc.closed or exc.mode is None or exc.hours is None:
                return DayPlan(day, (), exc.reason or _CLOSED_TODAY)
            return DayPlan(day, (_period(config, exc.mode, exc.hours),), exc.reason)
    if config.rules.year_end_closure and ((day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)):
        return DayPlan(day, (), _YEAR_END)
    holiday = holiday_name(config, day)
    if holiday:
        return DayPlan(day, (), Text(f"{holiday}（祝日）", f"Public holiday: {holiday_name_en(holiday)}"))
    weekday = day.weekday()
    if weekday == 6:
        return DayPlan(day, (), _SUNDAY)
    if weekday == 5:
        if config.saturday is None:
            return DayPlan(day, (), _SATURDAY)
        return DayPlan(day, (_period(config, "saturday", config.saturday),), None)
    periods = [_period(config, "office", config.weekday)]
    if config.evening is not None:
        periods.append(_period(config, "evening", config.evening))
    return DayPlan(day, tuple(periods), None)


# Moments a command accepts: a day's margin from the ends of Python's calendar (0001, 9999), so
# that any time-zone conversion and the day before or after stay representable.
MOMENT_YEARS = (2, 9998)


def moment_problem(moment: datetime) -> str | None:
    """Why a command cannot take `moment` (0001 or 9999 cannot be converted to an office's time),
    or None: one rule and one wording for every command that takes a time."""
    if MOMENT_YEARS[0] <= moment.year <= MOMENT_YEARS[1]:
        return None
    return f"the year must be {MOMENT_YEARS[0]}-{MOMENT_YEARS[1]}"


# How far a command's explicit time ("at") may be from the gateway's clock on a live floor: a
# client's clock a little off, a request that waited in a queue. Anything further would stamp
# events with a time the floor did not live (a day years ahead once opened a fake business day
# and purged the real one), so it is refused; offline journals (tests, training) may say so.
AT_TOLERANCE = timedelta(minutes=2)


def at_problem(at: datetime, wall: datetime, tz: tzinfo) -> str | None:
    """Why a command on a live floor may not take the explicit time `at` (aware) when the
    gateway's clock says `wall`, or None: it must be within AT_TOLERANCE of `wall`, on the same
    business day. The same rule for the future and the past."""
    local, today = at.astimezone(tz), wall.astimezone(tz)
    if local.date() != today.date():
        return (
            f"{local:%Y-%m-%d %H:%M} is not today ({today:%Y-%m-%d} by the gateway's clock): a command "
            "cannot open or reach another business day"
        )
    off = (at - wall).total_seconds()
    if abs(off) > AT_TOLERANCE.total_seconds():
        side = "ahead of" if off > 0 else "behind"
        return (
            f"{local:%H:%M:%S} is {abs(off) / 60:.0f} min {side} the gateway's clock ({today:%H:%M:%S}); "
            f"at most {AT_TOLERANCE.total_seconds() / 60:.0f} min either way"
        )
    return None


def local_time(config: OfficeConfig, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("moments must be timezone-aware")
    return moment.astimezone(config.tz)


def counter_shifts(config: OfficeConfig, plan: DayPlan, counter_id: str) -> list[tuple[time, time | None]]:
    """The counter's planned shifts on that day: those whose periods the day has."""
    modes = {p.mode for p in plan.periods}
    counter = config.counter(counter_id)
    return [(s.start, s.end) for s in counter.shifts if modes.intersection(s.periods)]


@dataclass(frozen=True, slots=True)
class ModeNow:
    """The mode at one moment. All datetimes are aware, in the office time zone.

    `since`: when this mode began (None if not within SEARCH_DAYS). `next_change`/`next_mode`:
    the next moment the mode changes and what it becomes (None if nothing changes within
    SEARCH_DAYS). A closed run across midnight is one mode, although its `reason` may change at
    midnight (outside hours → Sunday): devices re-evaluate at least every minute anyway.
    `reason`: why it is closed (holiday name, year-end, Sunday, outside hours…) or, when open,
    why the day differs from the usual week (a rush Saturday); None for an ordinary open period.
    `next_opening`: the start of the next open period (None while open)."""

    mode: str
    services: tuple[str, ...]
    since: datetime | None
    next_change: datetime | None
    next_mode: str | None
    reason: Text | None
    next_opening: datetime | None

    @property
    def is_open(self) -> bool:
        return self.mode != MODE_CLOSED


def _at(config: OfficeConfig, day: date, t: time) -> datetime:
    return datetime.combine(day, t, tzinfo=config.tz)


def _segments(config: OfficeConfig, day: date, override: ModeOverride | None) -> list[tuple[datetime, datetime, str]]:
    """The open periods of `day` as aware (start, end, mode), in order."""
    return [
        (_at(config, day, p.start), _at(config, day, p.end), p.mode) for p in plan_for(config, day, override).periods
    ]


def mode_at(config: OfficeConfig, when: datetime, override: ModeOverride | None = None) -> ModeNow:
    """The mode at the aware moment `when` (see ModeNow). Periods are half-open: at 17:00 the
    evening has begun, at 19:00 the office is closed."""
    now = local_time(config, when)
    today = now.date()
    plan = plan_for(config, today, override)
    period = plan.period_at(now.time())

    if period is not None:
        start, end = _at(config, today, period.start), _at(config, today, period.end)
        nxt = plan.period_at(period.end)  # an adjacent period (office → evening) starts at our end
        return ModeNow(
            mode=period.mode,
            services=period.services,
            since=start,
            next_change=end,
            next_mode=nxt.mode if nxt is not None else MODE_CLOSED,
            reason=plan.reason,
            next_opening=None,
        )

    # Closed: since the end of the last open period, until the start of the next one.
    reason = plan.reason if not plan.is_open else OUTSIDE_HOURS
    since: datetime | None = None
    # Never before the first or after the last date Python has (a moment near 0001 or 9999).
    for back in range(min(SEARCH_DAYS, (today - date.min).days) + 1):
        day = today - timedelta(days=back)
        ends = [end for _, end, _ in _segments(config, day, override) if end <= now]
        if ends:
            since = max(ends)
            break
    opening: tuple[datetime, str] | None = None
    for ahead in range(min(SEARCH_DAYS, (date.max - today).days) + 1):
        day = today + timedelta(days=ahead)
        starts = [(start, mode) for start, _, mode in _segments(config, day, override) if start > now]
        if starts:
            opening = min(starts)
            break
    return ModeNow(
        mode=MODE_CLOSED,
        services=(),
        since=since,
        next_change=opening[0] if opening else None,
        next_mode=opening[1] if opening else None,
        reason=reason,
        next_opening=opening[0] if opening else None,
    )
