"""The calendar over a real year (2027), `mode_at` at a moment, the remote override, and the
`counterfloor calendar` command's output."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from office.calendar import MODE_CLOSED, OUTSIDE_HOURS, ModeNow, ModeOverride, mode_at, plan_for
from office.config import Hours, OfficeConfig, Text, load_config
from tests.conftest import run_cli as _cli

from .conftest import EXAMPLES, TOKYO, tokyo

YEAR = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
# 2027's public holidays that fall on weekdays (Japan's Cabinet Office list), substitute included.
WEEKDAY_HOLIDAYS_2027 = [
    date(2027, 1, 1),
    date(2027, 1, 11),
    date(2027, 2, 11),
    date(2027, 2, 23),
    date(2027, 3, 22),  # substitute for the vernal equinox on Sunday 21st
    date(2027, 4, 29),
    date(2027, 5, 3),
    date(2027, 5, 4),
    date(2027, 5, 5),
    date(2027, 7, 19),
    date(2027, 8, 11),
    date(2027, 9, 20),
    date(2027, 9, 23),
    date(2027, 10, 11),
    date(2027, 11, 3),
    date(2027, 11, 23),
]
RUSH_SATURDAYS = [date(2027, 3, 27), date(2027, 4, 3), date(2027, 4, 10)]


def _day_kind(config: OfficeConfig, day: date) -> str:
    plan = plan_for(config, day)
    return "+".join(p.mode for p in plan.periods) or MODE_CLOSED


# -- a real year, day by day -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("office", "expected"),
    [
        # 261 weekdays - 16 weekday holidays - 29-31 Dec = 242; Nerima: 52 Saturdays but 2 Jan.
        ("nerima", {"office+evening": 242, "saturday": 51, MODE_CLOSED: 72}),
        ("oizumi", {"office+evening": 242, "saturday": 3, MODE_CLOSED: 120}),
    ],
)
def test_2027_day_counts(office: str, expected: dict[str, int], request: pytest.FixtureRequest) -> None:
    config = request.getfixturevalue(office)
    assert Counter(_day_kind(config, d) for d in YEAR) == expected


@pytest.mark.parametrize("day", WEEKDAY_HOLIDAYS_2027)
def test_2027_weekday_holidays_are_closed_with_their_name(oizumi: OfficeConfig, day: date) -> None:
    plan = plan_for(oizumi, day)
    assert day.weekday() < 5 and not plan.is_open and plan.reason is not None
    if day == date(2027, 1, 1):  # New Year's Day is inside the year-end closure, which is the reason given
        assert plan.reason.en == "Year-end and New Year closure"
    else:
        assert "祝日" in plan.reason.ja and plan.reason.en.startswith("Public holiday: ")


def test_2027_saturdays_configured_and_unconfigured(nerima: OfficeConfig, oizumi: OfficeConfig) -> None:
    saturdays = [d for d in YEAR if d.weekday() == 5]
    assert len(saturdays) == 52
    assert [d for d in saturdays if _day_kind(nerima, d) == MODE_CLOSED] == [date(2027, 1, 2)]  # year-end
    assert [d for d in saturdays if _day_kind(oizumi, d) == "saturday"] == RUSH_SATURDAYS
    assert all(d.month in (3, 4) for d in RUSH_SATURDAYS)


def test_2027_year_end_closure_and_the_days_around_it(nerima: OfficeConfig) -> None:
    days = {d: _day_kind(nerima, d) for d in YEAR if d.month == 12 and d.day >= 24}
    assert days == {
        date(2027, 12, 24): "office+evening",
        date(2027, 12, 25): "saturday",
        date(2027, 12, 26): MODE_CLOSED,
        date(2027, 12, 27): "office+evening",
        date(2027, 12, 28): "office+evening",
        date(2027, 12, 29): MODE_CLOSED,
        date(2027, 12, 30): MODE_CLOSED,
        date(2027, 12, 31): MODE_CLOSED,
    }
    assert plan_for(nerima, date(2027, 12, 30)).reason == Text("年末年始休業", "Year-end and New Year closure")


# -- mode_at: boundaries ---------------------------------------------------------------------------
MON = (2027, 3, 15)


@pytest.mark.parametrize(
    ("hms", "mode", "since", "next_change", "next_mode"),
    [
        ((8, 29, 59), MODE_CLOSED, tokyo(2027, 3, 13, 17, 0), tokyo(*MON, 8, 30), "office"),  # since Saturday
        ((8, 30, 0), "office", tokyo(*MON, 8, 30), tokyo(*MON, 17, 0), "evening"),
        ((16, 59, 59), "office", tokyo(*MON, 8, 30), tokyo(*MON, 17, 0), "evening"),
        ((17, 0, 0), "evening", tokyo(*MON, 17, 0), tokyo(*MON, 19, 0), MODE_CLOSED),
        ((18, 59, 59), "evening", tokyo(*MON, 17, 0), tokyo(*MON, 19, 0), MODE_CLOSED),
        ((19, 0, 0), MODE_CLOSED, tokyo(*MON, 19, 0), tokyo(2027, 3, 16, 8, 30), "office"),
        ((23, 59, 59), MODE_CLOSED, tokyo(*MON, 19, 0), tokyo(2027, 3, 16, 8, 30), "office"),
    ],
)
def test_mode_at_weekday_boundaries(
    nerima: OfficeConfig,
    hms: tuple[int, int, int],
    mode: str,
    since: datetime,
    next_change: datetime,
    next_mode: str,
) -> None:
    now = mode_at(nerima, tokyo(*MON, *hms))
    assert (now.mode, now.since, now.next_change, now.next_mode) == (mode, since, next_change, next_mode)
    assert now.is_open is (mode != MODE_CLOSED)
    assert now.next_opening == (None if now.is_open else next_change)


def test_mode_at_services_follow_the_mode(nerima: OfficeConfig) -> None:
    assert mode_at(nerima, tokyo(*MON, 16, 59, 59)).services == (
        "move",
        "seal",
        "certificate",
        "insurance",
        "payment",
        "guidance",
    )
    assert mode_at(nerima, tokyo(*MON, 17)).services == ("move", "certificate", "payment")
    assert mode_at(nerima, tokyo(2027, 3, 20, 12)).services == ("move", "seal", "certificate", "insurance")
    assert mode_at(nerima, tokyo(*MON, 19)).services == ()


def test_mode_at_reasons(nerima: OfficeConfig, oizumi: OfficeConfig) -> None:
    assert mode_at(nerima, tokyo(*MON, 10)).reason is None
    assert mode_at(nerima, tokyo(*MON, 7)).reason == OUTSIDE_HOURS
    assert mode_at(nerima, tokyo(*MON, 19, 30)).reason == OUTSIDE_HOURS
    sunday = mode_at(nerima, tokyo(2027, 3, 28, 12))
    assert sunday.reason is not None and sunday.reason.en == "Closed on Sundays"
    holiday = mode_at(oizumi, tokyo(2027, 5, 4, 10))
    assert holiday.reason is not None and holiday.reason.ja == "みどりの日（祝日）"
    assert holiday.reason.en == "Public holiday: Greenery Day"
    rush = mode_at(oizumi, tokyo(2027, 3, 27, 10))
    assert rush.mode == "saturday" and rush.reason is not None and "moving season" in rush.reason.en
    # outside the rush Saturday's hours the reason is the hours, not the rush
    assert mode_at(oizumi, tokyo(2027, 3, 27, 18)).reason == OUTSIDE_HOURS


def test_mode_at_accepts_any_zone_and_answers_in_the_office_zone(nerima: OfficeConfig) -> None:
    at_noon_utc = datetime(2027, 3, 15, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
    now = mode_at(nerima, at_noon_utc)
    assert now.mode == "office" and now.next_change == tokyo(*MON, 17)
    assert now.next_change is not None and now.next_change.utcoffset() == timedelta(hours=9)
    with pytest.raises(ValueError, match="timezone-aware"):
        mode_at(nerima, datetime(2027, 3, 15, 12))


@pytest.mark.parametrize(
    ("office", "at", "next_opening", "next_mode", "since"),
    [
        # Friday evening to Monday, and across the holiday Monday after the equinox Sunday
        ("nerima", tokyo(2027, 3, 19, 19, 30), tokyo(2027, 3, 20, 9), "saturday", tokyo(2027, 3, 19, 19)),
        ("oizumi", tokyo(2027, 3, 19, 19, 30), tokyo(2027, 3, 23, 8, 30), "office", tokyo(2027, 3, 19, 19)),
        ("oizumi", tokyo(2027, 3, 21, 0, 0), tokyo(2027, 3, 23, 8, 30), "office", tokyo(2027, 3, 19, 19)),
        # Saturday close at Nerima: Sunday, then the closure exception of Monday 22 March
        ("nerima", tokyo(2027, 3, 20, 17), tokyo(2027, 3, 23, 8, 30), "office", tokyo(2027, 3, 20, 17)),
        # a rush Saturday at Oizumi opens after a Friday
        ("oizumi", tokyo(2027, 3, 26, 23, 59, 59), tokyo(2027, 3, 27, 9), "saturday", tokyo(2027, 3, 26, 19)),
        # the year-end closure, across the new year
        ("nerima", tokyo(2027, 12, 28, 19), tokyo(2028, 1, 4, 8, 30), "office", tokyo(2027, 12, 28, 19)),
        ("nerima", tokyo(2028, 1, 1, 0), tokyo(2028, 1, 4, 8, 30), "office", tokyo(2027, 12, 28, 19)),
        # Golden Week: Thursday 29 April is Shōwa Day; Friday 30 opens; then 1-5 May are shut
        ("oizumi", tokyo(2027, 4, 28, 20), tokyo(2027, 4, 30, 8, 30), "office", tokyo(2027, 4, 28, 19)),
        ("oizumi", tokyo(2027, 4, 30, 19), tokyo(2027, 5, 6, 8, 30), "office", tokyo(2027, 4, 30, 19)),
    ],
)
def test_next_change_across_midnight_weekends_and_holidays(
    office: str,
    at: datetime,
    next_opening: datetime,
    next_mode: str,
    since: datetime,
    request: pytest.FixtureRequest,
) -> None:
    now = mode_at(request.getfixturevalue(office), at)
    assert now.mode == MODE_CLOSED
    assert (now.next_opening, now.next_change, now.next_mode, now.since) == (
        next_opening,
        next_opening,
        next_mode,
        since,
    )


def test_mode_now_is_frozen(nerima: OfficeConfig) -> None:
    now = mode_at(nerima, tokyo(*MON, 10))
    assert isinstance(now, ModeNow)
    with pytest.raises(AttributeError):
        now.mode = "closed"  # type: ignore[misc]


def test_a_calendar_shut_beyond_the_search_horizon_has_no_next_opening() -> None:
    from office.calendar import SEARCH_DAYS
    from office.config import parse_config

    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    first = date(2030, 1, 1)
    days = ", ".join((first + timedelta(days=i)).isoformat() for i in range(2 * SEARCH_DAYS + 40))
    shut = parse_config(text.replace("exceptions = [", f"exceptions = [\n  {{ dates = [{days}], closed = true }},"))
    middle = datetime.combine(first + timedelta(days=SEARCH_DAYS + 20), time(12), tzinfo=tokyo(2030, 1, 1).tzinfo)
    now = mode_at(shut, middle)  # more than SEARCH_DAYS inside the closure, both ways
    assert (now.mode, now.since, now.next_change, now.next_mode, now.next_opening) == (
        MODE_CLOSED,
        None,
        None,
        None,
        None,
    )
    assert now.reason == Text("臨時閉庁", "Closed today")
    # near its edges the closure has a since and a next opening
    assert mode_at(shut, tokyo(2030, 1, 5, 12)).since == tokyo(2029, 12, 28, 19)


# -- the remote override -------------------------------------------------------------------------
def test_override_closes_today_only(nerima: OfficeConfig) -> None:
    why = Text("設備点検のため閉庁", "Closed for an inspection")
    override = ModeOverride(date(*MON), closed=True, reason=why)
    now = mode_at(nerima, tokyo(*MON, 10), override)
    assert (now.mode, now.services, now.reason) == (MODE_CLOSED, (), why)
    assert now.next_opening == tokyo(2027, 3, 16, 8, 30)
    assert now.since == tokyo(2027, 3, 13, 17)  # Saturday's close: the override shut Monday all day
    # the override is for its date only: the next day, and the day before, follow the calendar
    assert mode_at(nerima, tokyo(2027, 3, 16, 10), override).mode == "office"
    assert mode_at(nerima, tokyo(2027, 3, 12, 10), override).mode == "office"
    assert not plan_for(nerima, date(*MON), override).is_open
    assert plan_for(nerima, date(2027, 3, 16), override).is_open


def test_override_closing_without_reason_says_closed_today(nerima: OfficeConfig) -> None:
    now = mode_at(nerima, tokyo(*MON, 10), ModeOverride(date(*MON), closed=True))
    assert now.reason == Text("臨時閉庁", "Closed today")


def test_override_opens_a_closed_day_in_a_mode_with_hours(oizumi: OfficeConfig) -> None:
    sat = date(2027, 3, 20)  # an ordinary Saturday: Oizumi is shut
    assert mode_at(oizumi, tokyo(2027, 3, 20, 10)).mode == MODE_CLOSED
    override = ModeOverride(sat, closed=False, mode="saturday", hours=Hours(time(10), time(14)))
    assert mode_at(oizumi, tokyo(2027, 3, 20, 9, 59, 59), override).next_change == tokyo(2027, 3, 20, 10)
    now = mode_at(oizumi, tokyo(2027, 3, 20, 10), override)
    assert (now.mode, now.services, now.since, now.next_change, now.next_mode) == (
        "saturday",
        ("move", "seal", "certificate"),
        tokyo(2027, 3, 20, 10),
        tokyo(2027, 3, 20, 14),
        MODE_CLOSED,
    )
    # and from Friday evening, the next opening is the override's
    assert mode_at(oizumi, tokyo(2027, 3, 19, 20), override).next_opening == tokyo(2027, 3, 20, 10)


def test_override_replaces_the_whole_day_and_defaults_to_the_modes_hours(nerima: OfficeConfig) -> None:
    evening_only = ModeOverride(date(*MON), closed=False, mode="evening")
    plan = plan_for(nerima, date(*MON), evening_only)
    assert [(p.mode, p.start, p.end) for p in plan.periods] == [("evening", time(17), time(19))]
    assert mode_at(nerima, tokyo(*MON, 10), evening_only).mode == MODE_CLOSED
    assert mode_at(nerima, tokyo(*MON, 10), evening_only).reason == OUTSIDE_HOURS


def test_override_wins_over_a_dated_exception(nerima: OfficeConfig) -> None:
    day = date(2027, 3, 22)  # closed by an exception (and a substitute holiday)
    override = ModeOverride(day, closed=False, mode="office", hours=Hours(time(9), time(12)))
    assert mode_at(nerima, tokyo(2027, 3, 22, 11), override).mode == "office"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"closed": True, "mode": "office"}, "takes no mode"),
        ({"closed": False}, "override mode must be one of"),
        ({"closed": False, "mode": "closed"}, "override mode must be one of"),
        ({"closed": False, "mode": "office", "hours": Hours(time(12), time(9))}, "close .12:00|close \\(09:00\\)"),
    ],
)
def test_bad_overrides_are_refused_with_a_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModeOverride(date(*MON), **kwargs)  # type: ignore[arg-type]


def test_override_needs_hours_where_the_mode_has_none(oizumi: OfficeConfig) -> None:
    override = ModeOverride(date(2027, 3, 20), closed=False, mode="saturday")
    with pytest.raises(ValueError, match=r"hours\.saturday is not set"):
        mode_at(oizumi, tokyo(2027, 3, 20, 10), override)


# -- the command line -----------------------------------------------------------------------------


def test_calendar_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(
        capsys, "calendar", "--config", str(EXAMPLES / "oizumi.toml"), "--from", "2027-03-19", "--days", "9", "--json"
    )
    assert code == 0 and err == ""
    days = json.loads(out)
    assert [d["date"] for d in days] == [f"2027-03-{n}" for n in range(19, 28)]
    for d in days:
        assert set(d) == {"date", "periods", "reason"}
        for p in d["periods"]:
            assert set(p) == {"mode", "from", "to", "services"}
    assert days[0] == {
        "date": "2027-03-19",
        "periods": [
            {"mode": "office", "from": "08:30", "to": "17:00", "services": ["move", "seal", "certificate", "payment"]},
            {"mode": "evening", "from": "17:00", "to": "19:00", "services": ["move", "certificate"]},
        ],
        "reason": None,
    }
    closed = {"mode": "closed", "from": "00:00", "to": "24:00", "services": []}
    assert days[1] == {"date": "2027-03-20", "periods": [closed], "reason": "土曜日は閉庁 / Closed on Saturdays"}
    assert days[3] == {
        "date": "2027-03-22",
        "periods": [closed],
        "reason": "春分の日 振替休日（祝日） / Public holiday: Vernal Equinox Day (substitute holiday)",
    }
    assert days[8]["periods"] == [
        {"mode": "saturday", "from": "09:00", "to": "17:00", "services": ["move", "seal", "certificate"]}
    ]
    assert days[8]["reason"] == "繁忙期の臨時土曜開庁 / Temporary Saturday opening for the moving season"


def test_calendar_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(
        capsys, "calendar", "--config", str(EXAMPLES / "nerima.toml"), "--from", "2027-12-27", "--days", "3"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["date", "day", "mode", "hours", "services", "/", "reason"]
    assert lines[1].split()[:4] == ["2027-12-27", "Mon", "office", "08:30-17:00"]
    assert lines[2].split()[:2] == ["evening", "17:00-19:00"]
    assert lines[-1].startswith("2027-12-29  Wed") and "Year-end and New Year closure" in lines[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--from", "2027-02-30"), "--from: not a date YYYY-MM-DD: '2027-02-30'"),
        (("--from", "2027-03-01", "--days", "x"), "--days: not a whole number: 'x'"),
        (("--from", "2027-03-01", "--days", "0"), "--days: must be between 1 and 3660 (got 0)"),
        # Once an OverflowError traceback: there is no day after 9999-12-31.
        (("--from", "9999-12-30", "--days", "7"), "--days: 7 days from 9999-12-30 run past 9999-12-31"),
    ],
)
def test_calendar_bad_arguments_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = _cli(capsys, "calendar", "--config", str(EXAMPLES / "nerima.toml"), *argv)
    assert code == 2 and out == ""
    assert err == f"counterfloor: error: {message}\n"


def test_calendar_missing_config_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    code, _, err = _cli(capsys, "calendar", "--config", "/nonexistent/office.toml", "--from", "2027-03-01")
    assert code == 2 and err.count("\n") == 1 and "no such file" in err


# -- a property over years of moments ----------------------------------------------------------------
_CONFIGS = {name: load_config(EXAMPLES / f"{name}.toml") for name in ("nerima", "oizumi")}


@pytest.mark.parametrize("office", ["nerima", "oizumi"])
@settings(max_examples=200)
@given(moment=st.datetimes(datetime(2026, 1, 1), datetime(2029, 12, 31), timezones=st.just(TOKYO)))
def test_mode_at_is_consistent_with_its_own_changes(office: str, moment: datetime) -> None:
    config = _CONFIGS[office]
    now = mode_at(config, moment)
    assert now.since is not None and now.next_change is not None and now.next_mode is not None
    assert now.since <= moment < now.next_change
    assert now.next_mode != now.mode
    tick = timedelta(microseconds=1)
    # the mode holds from `since` to just before `next_change`, and changes there to `next_mode`
    assert mode_at(config, now.since).mode == now.mode
    assert mode_at(config, now.next_change - tick).mode == now.mode
    assert mode_at(config, now.next_change).mode == now.next_mode
    assert mode_at(config, now.since - tick).mode != now.mode
    # services are those of the mode; a closed office says why and when it opens
    assert set(now.services) == {s.id for s in config.services if now.mode in s.periods}
    if now.mode == MODE_CLOSED:
        assert now.reason is not None and now.next_opening == now.next_change
    else:
        assert now.next_opening is None


def test_mode_at_the_ends_of_the_calendar_does_not_overflow() -> None:
    # The search for the last and next opening once stepped past date.min/date.max (OverflowError).
    config = _CONFIGS["nerima"]
    last = mode_at(config, datetime(9999, 12, 31, 23, 0, tzinfo=TOKYO))
    assert last.mode == MODE_CLOSED and last.next_opening is None
    first = mode_at(config, datetime(1, 1, 1, 12, 0, tzinfo=TOKYO))
    assert first.mode == MODE_CLOSED and first.since is None
