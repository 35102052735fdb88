"""The congestion forecast (office/congestion.py), its chart (signage/forecast_chart.py) and its
benchmark's smoke run, on synthetic histories whose right answer is known by construction."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from bench import forecast_bench
from office.calendar import plan_for
from office.config import OfficeConfig, load_config
from office.congestion import (
    DayStats,
    History,
    HourForecast,
    after_closure,
    forecast_day,
    opening_hours,
    same_hour_last_week,
    stats_from_records,
)
from signage.forecast_chart import chart_svg
from tests.conftest import ROOT

SVG = "{http://www.w3.org/2000/svg}"
ORDINARY_ARRIVALS, ORDINARY_WAIT = 10, 300.0


@pytest.fixture(scope="module")
def nerima() -> OfficeConfig:
    return load_config(ROOT / "examples" / "nerima.toml")


def _rush(day: date) -> bool:
    return (3, 15) <= (day.month, day.day) <= (4, 15)


def _ordinary(day: date) -> tuple[float, float]:
    return 1.0, 1.0


def synthetic(
    config: OfficeConfig,
    spans: list[tuple[date, date]],
    busier: Callable[[date], tuple[float, float]] = _ordinary,
    keep: Callable[[date], bool] = lambda day: True,
) -> list[DayStats]:
    """Every open day `keep` keeps: 10 tickets an hour per service waiting 5 min; in the rush
    (15 March–15 April) twice the tickets, waiting four times as long; `busier(day)`: that day's
    (tickets, wait) multipliers on top."""
    out = []
    for first, last in spans:
        day = first
        while day <= last:
            if plan_for(config, day).is_open and keep(day):
                more, longer = busier(day)
                arrivals, waits, open_hours = {}, {}, set()
                kind = ""
                for svc in config.services:
                    kind_, hours = opening_hours(config, svc.id, day)
                    kind = kind_ or kind
                    for h in hours:
                        open_hours.add((svc.id, h))
                        arrivals[(svc.id, h)] = round(ORDINARY_ARRIVALS * (2 if _rush(day) else 1) * more)
                        waits[(svc.id, h)] = ORDINARY_WAIT * (4 if _rush(day) else 1) * longer
                out.append(DayStats(day, kind, frozenset(open_hours), arrivals, waits))
            day += timedelta(days=1)
    return out


@pytest.fixture(scope="module")
def history(nerima: OfficeConfig) -> History:
    # Last year's season and this year's days up to the Friday before the rush starts.
    return History(synthetic(nerima, [(date(2026, 1, 5), date(2026, 6, 30)), (date(2026, 12, 1), date(2027, 3, 12))]))


def test_the_forecast_follows_the_rush_the_baseline_does_not(nerima: OfficeConfig, history: History) -> None:
    day = date(2027, 3, 16)  # a Tuesday in the first rush week
    forecast = forecast_day(history, nerima, "certificate", day)
    baseline = same_hour_last_week(history, nerima, "certificate", day)
    assert [f.hour for f in forecast] == list(range(8, 19)) == [b.hour for b in baseline]
    for f, b in zip(forecast, baseline, strict=True):
        assert f.arrivals == pytest.approx(2 * ORDINARY_ARRIVALS, rel=0.05)
        assert f.wait_s == pytest.approx(4 * ORDINARY_WAIT)
        assert b.arrivals == ORDINARY_ARRIVALS and b.wait_s == ORDINARY_WAIT


def test_an_ordinary_day_is_forecast_as_ordinary(nerima: OfficeConfig, history: History) -> None:
    forecast = forecast_day(history, nerima, "move", date(2027, 3, 10))
    assert forecast and all(f.arrivals == pytest.approx(ORDINARY_ARRIVALS, rel=0.05) for f in forecast)
    assert all(f.wait_s == ORDINARY_WAIT and f.wait_low_s == f.wait_high_s == ORDINARY_WAIT for f in forecast)


def test_a_saturday_follows_saturday_hours(nerima: OfficeConfig, history: History) -> None:
    forecast = forecast_day(history, nerima, "certificate", date(2027, 3, 6))
    assert [f.hour for f in forecast] == list(range(9, 17))
    assert forecast_day(history, nerima, "payment", date(2027, 3, 6)) == []  # payments: no Saturday period


def test_a_closed_day_has_no_forecast(nerima: OfficeConfig, history: History) -> None:
    for day in (date(2027, 3, 14), date(2027, 3, 22), date(2027, 1, 1)):  # Sunday, closure, New Year
        assert forecast_day(history, nerima, "certificate", day) == []
        assert same_hour_last_week(history, nerima, "certificate", day) == []


def test_without_history_hours_are_known_but_nothing_else(nerima: OfficeConfig) -> None:
    forecast = forecast_day(History([]), nerima, "certificate", date(2027, 3, 16))
    assert len(forecast) == 11 and all(f.arrivals == 0 and f.wait_s is None for f in forecast)


def test_days_after_a_closure(nerima: OfficeConfig) -> None:
    assert after_closure(nerima, date(2027, 1, 4))  # after the year-end closure
    assert after_closure(nerima, date(2027, 1, 12))  # after Coming of Age Day
    assert not after_closure(nerima, date(2027, 1, 18))  # a Monday after an ordinary weekend


# -- the weekday's own waits ------------------------------------------------------------------
def _busy_mondays(day: date) -> tuple[float, float]:
    """Mondays bring 20 % more tickets (12 an hour) and wait twice as long: waits grow faster
    than load, so the load alone hardly tells a Monday from the other days."""
    return (1.2, 2.0) if day.weekday() == 0 else (1.0, 1.0)


WINTER = [(date(2026, 12, 1), date(2027, 3, 12))]  # no rush, no last year: only the weekday differs


def test_a_weekday_that_waits_longer_is_forecast_so(nerima: OfficeConfig) -> None:
    history = History(synthetic(nerima, WINTER, _busy_mondays))
    monday = forecast_day(history, nerima, "certificate", date(2027, 3, 15))
    assert monday and all(f.wait_s == 2 * ORDINARY_WAIT for f in monday)
    # The other weekdays keep their own waits (the Mondays weigh little for a Tuesday).
    tuesday = forecast_day(history, nerima, "certificate", date(2027, 3, 16))
    assert tuesday and all(f.wait_s == ORDINARY_WAIT for f in tuesday)


def test_a_weekday_seen_rarely_is_shrunk_toward_all_weekdays(nerima: OfficeConfig) -> None:
    # Only two Mondays in history (both busy): too few to stand for every Monday. The typical
    # wait stays that of all weekdays, but the band reaches up to those two Mondays' waits.
    two_mondays = {date(2027, 2, 22), date(2027, 3, 1)}
    days = synthetic(nerima, WINTER, _busy_mondays, keep=lambda d: d.weekday() != 0 or d in two_mondays)
    monday = forecast_day(History(days), nerima, "certificate", date(2027, 3, 15))
    assert monday and all(f.wait_s == ORDINARY_WAIT for f in monday)
    assert all(f.wait_low_s == ORDINARY_WAIT and f.wait_high_s == 2 * ORDINARY_WAIT for f in monday)


def _rec(kind: str, ts: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "seq": 0, "ts": f"2027-03-16T{ts}:00.000+09:00", "office": "nerima", "type": kind, **fields}


def test_records_are_read_tolerantly() -> None:
    records = [
        _rec(
            "schedule",
            "08:00",
            date="2027-03-16",
            new_day=True,
            counters=[],
            closes="19:00",
            periods=[{"mode": "office", "from": "08:30", "to": "17:00", "services": ["certificate"]}],
        ),
        _rec("counter_opened", "08:30", counter="3", services=["certificate"]),
        _rec("ticket_issued", "09:10", ticket="C001", service="certificate", future_field={"x": 1}),
        _rec("ticket_issued", "09:20", ticket="C002", service="certificate"),
        _rec("something_new", "09:25", anything=True),
        _rec("called", "09:30", ticket="C001", counter="3", colour="blue"),
        _rec("called", "09:50", ticket="C002", counter="3"),
        {"type": "called", "ts": "not a time"},  # unreadable: costs only itself
        _rec("ticket_issued", "10:05", ticket="C003", service="certificate"),  # never called
    ]
    (day,) = stats_from_records(records)
    assert day.day == date(2027, 3, 16) and day.kind == "weekday"
    assert day.arrivals == {("certificate", 9): 2, ("certificate", 10): 1}
    assert day.waits == {("certificate", 9): 1500.0}  # the median of 20 and 30 min
    assert ("certificate", 16) in day.open_hours and ("certificate", 17) not in day.open_hours


# -- the chart ----------------------------------------------------------------------------------
def _rows(hours: range) -> list[HourForecast]:
    return [HourForecast(h, 10.0, 60.0 * (h - 5), 60.0 * (h - 6), 60.0 * (h - 4)) for h in hours]


def _text(element: ET.Element, tag: str) -> str:
    """The text of `element`'s first child `tag` (the test fails if there is none)."""
    found = element.find(f"{SVG}{tag}")
    assert found is not None, tag
    return found.text or ""


def test_the_chart_is_valid_svg_with_a_bar_per_opening_hour() -> None:
    svg = chart_svg(
        _rows(range(8, 19)), now=datetime(2027, 3, 16, 10, 20), lang="ja", service=("証明書", "Certificates")
    )
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert "待ち時間" in _text(root, "title")
    desc = _text(root, "desc")
    assert "Quietest: 8:00" in desc and desc.index("空いている") < desc.index("Quietest")  # Japanese first
    bars = [e for e in root.iter(f"{SVG}rect") if "bar" in (e.get("class") or "").split()]
    assert len(bars) == 11
    assert _text(next(e for e in bars if "now" in (e.get("class") or "")), "title").startswith("10:00")
    texts = {e.get("class"): e.text for e in root.iter(f"{SVG}text")}
    assert texts["now-label"] == "▲ いま / now"  # the hour now is said in words, not only colour
    hours = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "hour"]
    assert hours == [str(h) for h in range(8, 19)]


def test_the_week_is_small_multiples_and_a_closed_day_says_so() -> None:
    monday = date(2027, 3, 15)
    week = [(monday + timedelta(days=i), _rows(range(8, 19)) if i < 5 else []) for i in range(7)]
    svg = chart_svg(_rows(range(8, 19)), now=datetime(2027, 3, 15, 9, 0), lang="en", week=week)
    root = ET.fromstring(svg)
    days = [g for g in root.iter(f"{SVG}g") if g.get("class") == "day"]
    assert len(days) == 7
    assert len([e for e in days[0].iter(f"{SVG}rect") if "bar" in (e.get("class") or "")]) == 11
    closed = [e.text for e in days[6].iter(f"{SVG}text") if e.get("class") == "closed"]
    assert closed == ["Closed"]  # a small day's box: the page's language only (English asked)
    assert [e.text for e in days[0].iter(f"{SVG}text") if e.get("class") == "day-label"] == ["Mon / 3/15（月）"]


def test_a_closed_day_chart() -> None:
    root = ET.fromstring(chart_svg([], lang="ja"))
    assert not [e for e in root.iter(f"{SVG}rect") if "bar" in (e.get("class") or "")]
    assert "本日は受付していません" in _text(root, "desc")


# -- the benchmark ------------------------------------------------------------------------------
def test_the_benchmark_smoke_run() -> None:
    log: list[str] = []
    results = forecast_bench.run(log, quick=True)
    assert [r.name.split(": ")[1] for r in results] == [
        "oizumi, rush onset (week of 15 March)",
        "oizumi, temporary rush Saturdays (Oizumi)",
    ]
    assert all(float(r.ratio) > 0 for r in results)
    assert any(line.startswith("| oizumi | rush onset") for line in log)
