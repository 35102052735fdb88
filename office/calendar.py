"""The office calendar: which mode the floor is in on a date, and which services it offers.

Pure: a config and a date (or an aware moment) in, a plan out. Public holidays come from
`jpholiday`, which works offline. Later work adds the remote override for today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

import jpholiday

from office.config import Hours, OfficeConfig, Text

_YEAR_END = Text(ja="年末年始休業", en="Year-end and New Year closure")
_SUNDAY = Text(ja="日曜日は閉庁", en="Closed on Sundays")
_SATURDAY = Text(ja="土曜日は閉庁", en="Closed on Saturdays")


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


def plan_for(config: OfficeConfig, day: date) -> DayPlan:
    for exc in config.exceptions:
        if day in exc.dates:
            if exc.closed or exc.mode is None or exc.hours is None:
                return DayPlan(day, (), exc.reason or Text("臨時閉庁", "Closed today"))
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


def local_time(config: OfficeConfig, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("moments must be timezone-aware")
    return moment.astimezone(config.tz)


def counter_shifts(config: OfficeConfig, plan: DayPlan, counter_id: str) -> list[tuple[time, time | None]]:
    """The counter's planned shifts on that day: those whose periods the day has."""
    modes = {p.mode for p in plan.periods}
    counter = config.counter(counter_id)
    return [(s.start, s.end) for s in counter.shifts if modes.intersection(s.periods)]
