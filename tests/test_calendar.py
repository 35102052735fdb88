"""The office calendar: open days, periods and the services each period offers."""

from __future__ import annotations

import datetime as dt
from datetime import date, time

import jpholiday
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from office.calendar import DayPlan, Period, counter_shifts, holiday_name, local_time, plan_for
from office.config import OfficeConfig, load_config, parse_config

from .conftest import EXAMPLES, tokyo

MON = date(2027, 3, 15)  # an ordinary Monday in the moving season
SAT = date(2027, 3, 20)
SUN = date(2027, 3, 21)  # also the vernal equinox day
TEMP_SATURDAYS = [date(2027, 3, 27), date(2027, 4, 3), date(2027, 4, 10)]


def test_dates_used_here_are_the_weekdays_we_think() -> None:
    assert MON.weekday() == 0 and SAT.weekday() == 5 and SUN.weekday() == 6
    assert all(d.weekday() == 5 for d in TEMP_SATURDAYS)


def test_nerima_weekday_has_office_and_evening_periods(nerima: OfficeConfig) -> None:
    plan = plan_for(nerima, MON)
    assert plan.is_open and plan.reason is None
    assert [(p.mode, p.start, p.end) for p in plan.periods] == [
        ("office", time(8, 30), time(17)),
        ("evening", time(17), time(19)),
    ]
    assert plan.periods[0].services == ("move", "seal", "certificate", "insurance", "payment", "guidance")
    assert plan.periods[1].services == ("move", "certificate", "payment")
    assert (plan.opens, plan.closes) == (time(8, 30), time(19))


def test_nerima_opens_every_saturday_with_saturday_services(nerima: OfficeConfig) -> None:
    for week in range(8):
        day = SAT + dt.timedelta(weeks=week)
        plan = plan_for(nerima, day)
        if jpholiday.is_holiday(day):
            assert not plan.is_open
            continue
        assert [(p.mode, p.start, p.end) for p in plan.periods] == [("saturday", time(9), time(17))], day
        assert plan.periods[0].services == ("move", "seal", "certificate", "insurance")


def test_oizumi_is_shut_on_ordinary_saturdays(oizumi: OfficeConfig) -> None:
    plan = plan_for(oizumi, SAT)
    assert not plan.is_open and plan.opens is None and plan.closes is None
    assert plan.reason is not None and plan.reason.en == "Closed on Saturdays"


@pytest.mark.parametrize("day", TEMP_SATURDAYS)
def test_oizumi_opens_on_its_temporary_rush_saturdays(oizumi: OfficeConfig, day: date) -> None:
    plan = plan_for(oizumi, day)
    assert [(p.mode, p.start, p.end) for p in plan.periods] == [("saturday", time(9), time(17))]
    assert plan.periods[0].services == ("move", "seal", "certificate")  # payment is weekdays only
    assert plan.reason is not None and "moving season" in plan.reason.en
    # the counters with Saturday shifts are planned; counter 4 has none
    assert counter_shifts(oizumi, plan, "1") == [(time(9), time(17))]
    assert counter_shifts(oizumi, plan, "4") == []


@pytest.mark.parametrize("office", ["nerima", "oizumi"])
def test_sundays_are_closed(office: str, request: pytest.FixtureRequest) -> None:
    config = request.getfixturevalue(office)
    for week in range(10):
        assert not plan_for(config, date(2027, 4, 4) + dt.timedelta(weeks=week)).is_open


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2027, 4, 29), "昭和の日"),
        (date(2027, 5, 3), "憲法記念日"),
        (date(2027, 5, 4), "みどりの日"),
        (date(2027, 5, 5), "こどもの日"),
        (date(2027, 9, 20), "敬老の日"),
        (date(2027, 1, 11), "成人の日"),
    ],
)
def test_weekday_public_holidays_are_closed(nerima: OfficeConfig, day: date, name: str) -> None:
    assert day.weekday() < 5
    plan = plan_for(nerima, day)
    assert not plan.is_open
    assert plan.reason is not None and name in plan.reason.ja and "Public holiday" in plan.reason.en
    assert holiday_name(nerima, day) == name


def test_substitute_holiday_is_closed(oizumi: OfficeConfig) -> None:
    # 2027-03-21 (vernal equinox) is a Sunday, so Monday 22nd is a substitute holiday.
    plan = plan_for(oizumi, date(2027, 3, 22))
    assert not plan.is_open and plan.reason is not None and "振替休日" in plan.reason.ja


def test_dated_exception_wins_over_the_holiday(nerima: OfficeConfig) -> None:
    plan = plan_for(nerima, date(2027, 3, 22))
    assert not plan.is_open
    assert plan.reason is not None and plan.reason.en == "Closed for a system update"


@pytest.mark.parametrize(
    ("day", "is_open"),
    [
        (date(2027, 12, 28), True),
        (date(2027, 12, 29), False),
        (date(2027, 12, 30), False),
        (date(2027, 12, 31), False),
        (date(2028, 1, 3), False),
        (date(2028, 1, 4), True),
        (date(2026, 12, 29), False),  # a Tuesday
        (date(2027, 1, 4), True),
    ],
)
def test_year_end_closure(nerima: OfficeConfig, day: date, is_open: bool) -> None:
    plan = plan_for(nerima, day)
    assert plan.is_open is is_open
    if not is_open and day.weekday() < 5 and not jpholiday.is_holiday(day):
        assert plan.reason is not None and plan.reason.en == "Year-end and New Year closure"


def _with_rules(config_name: str, rules: str) -> OfficeConfig:
    text = (EXAMPLES / config_name).read_text(encoding="utf-8")
    start = text.index("[rules]")
    end = text.index("\n\n", start)
    return parse_config(text[:start] + "[rules]\n" + rules + text[end:])


def test_year_end_and_holidays_can_be_switched_off() -> None:
    config = _with_rules("nerima.toml", 'year_end_closure = false\npublic_holidays = "none"')
    assert plan_for(config, date(2027, 12, 29)).is_open  # a Wednesday
    assert plan_for(config, date(2027, 4, 29)).is_open  # Shōwa Day, a Thursday
    assert holiday_name(config, date(2027, 4, 29)) is None
    assert not plan_for(config, date(2027, 4, 25)).is_open  # still shut on Sundays


def test_open_exception_on_a_sunday_uses_its_own_hours(nerima: OfficeConfig) -> None:
    text = (
        (EXAMPLES / "nerima.toml")
        .read_text(encoding="utf-8")
        .replace(
            "exceptions = [",
            'exceptions = [\n  { date = 2027-03-28, mode = "office", hours = { from = "10:00", to = "15:00" } },',
        )
    )
    config = parse_config(text)
    plan = plan_for(config, date(2027, 3, 28))
    assert [(p.mode, p.start, p.end) for p in plan.periods] == [("office", time(10), time(15))]
    assert "guidance" in plan.periods[0].services and plan.reason is None


@pytest.mark.parametrize(
    ("service", "at", "closes"),
    [
        ("move", time(8, 30), time(19)),  # office and evening run on
        ("move", time(16, 59), time(19)),
        ("move", time(17), time(19)),
        ("move", time(18, 59), time(19)),
        ("move", time(19), None),
        ("move", time(8, 29), None),
        ("seal", time(16, 59), time(17)),  # office only
        ("seal", time(17), None),
        ("payment", time(12), time(19)),
        ("guidance", time(17, 30), None),
        ("certificate", time(18), time(19)),
        ("nope", time(10), None),
    ],
)
def test_service_closes_at_the_end_of_its_run_of_periods(
    nerima: OfficeConfig, service: str, at: time, closes: time | None
) -> None:
    assert plan_for(nerima, MON).service_closes(service, at) == closes


def test_service_closes_needs_adjacent_periods() -> None:
    plan = DayPlan(
        MON,
        (
            Period("office", time(8, 30), time(17), ("a", "b")),
            Period("evening", time(17, 30), time(19), ("a",)),
        ),
        None,
    )
    assert plan.service_closes("a", time(9)) == time(17)  # a gap ends the run
    assert plan.service_closes("a", time(17, 15)) is None
    assert plan.service_closes("a", time(17, 45)) == time(19)
    assert plan.period_at(time(17, 15)) is None
    assert plan.period_at(time(17, 30)) is plan.periods[1]
    assert plan.period_at(time(8, 30)) is plan.periods[0]
    assert plan.period_at(time(19)) is None


def test_counter_shifts_follow_the_day_modes(nerima: OfficeConfig) -> None:
    weekday = plan_for(nerima, MON)
    assert counter_shifts(nerima, weekday, "12") == [(time(10), time(12)), (time(13), time(17)), (time(17), None)]
    assert counter_shifts(nerima, weekday, "2") == [(time(8, 30), time(12)), (time(13), time(17))]
    saturday = plan_for(nerima, SAT)
    assert counter_shifts(nerima, saturday, "12") == []
    assert counter_shifts(nerima, saturday, "1") == [(time(9), time(17))]
    assert counter_shifts(nerima, plan_for(nerima, SUN), "1") == []


def test_local_time_is_in_the_office_zone(nerima: OfficeConfig) -> None:
    utc = dt.datetime(2027, 3, 14, 23, 30, tzinfo=dt.UTC)
    local = local_time(nerima, utc)
    assert local == utc and (local.date(), local.hour, local.minute) == (MON, 8, 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        local_time(nerima, dt.datetime(2027, 3, 15, 9))
    assert tokyo(2027, 3, 15, 9, 0).utcoffset() == dt.timedelta(hours=9)


# -- a property over years of dates ------------------------------------------------------------
_EXAMPLE_CONFIGS = {name: load_config(EXAMPLES / name) for name in ("nerima.toml", "oizumi.toml")}


def _expected_open(config: OfficeConfig, day: date) -> bool:
    """The rule as the ward's plan states it, written out independently of plan_for."""
    for exc in config.exceptions:
        if day in exc.dates:
            return not exc.closed
    if (day.month, day.day) >= (12, 29) or (day.month, day.day) <= (1, 3):
        return False
    if jpholiday.is_holiday(day) or day.weekday() == 6:
        return False
    if day.weekday() == 5:
        return config.saturday is not None
    return True


@pytest.mark.parametrize("office", ["nerima.toml", "oizumi.toml"])
@settings(max_examples=300)
@given(day=st.dates(date(2026, 1, 1), date(2030, 12, 31)))
def test_open_days_follow_the_rules(office: str, day: date) -> None:
    config = _EXAMPLE_CONFIGS[office]
    plan = plan_for(config, day)
    assert plan.day == day
    assert plan.is_open is _expected_open(config, day)
    assert plan.is_open or plan.reason is not None  # a closed day always says why
    for a, b in zip(plan.periods, plan.periods[1:], strict=False):
        assert a.end <= b.start
    for p in plan.periods:
        assert p.start < p.end
        assert set(p.services) == {s.id for s in config.services if p.mode in s.periods}


@pytest.mark.parametrize(
    ("day", "english"),
    [
        (date(2027, 3, 22), "Public holiday: Vernal Equinox Day (substitute holiday)"),
        (date(2026, 11, 23), "Public holiday: Labour Thanksgiving Day"),
        (date(2027, 5, 4), "Public holiday: Greenery Day"),
    ],
)
def test_holiday_reasons_are_in_english_too(oizumi: OfficeConfig, day: date, english: str) -> None:
    """Residents who do not read Japanese see the holiday's English name, not the Japanese one."""
    plan = plan_for(oizumi, day)
    assert plan.reason is not None and plan.reason.en == english
    assert all(ord(ch) < 128 for ch in plan.reason.en)
