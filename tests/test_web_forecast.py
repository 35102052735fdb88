"""The public page's forecast learned from central's own store (central/web/learned_forecast.py):
simulated past days of Nerima stored as a gateway publishes them, learned in the forecaster's own
thread, then each service's hours and its chart — one chart per service with ids of its own —
and the stand-in's "no forecast yet" before anything is learned."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime
from pathlib import Path

from central.store import open_store
from central.web.learned_forecast import LearnedForecaster
from counterfloor.demo_floor import open_days_before
from counterfloor.simulate import record_day
from office import events as ev
from office.config import load_config
from tests.conftest import EXAMPLES, TOKYO

DAY = date(2027, 3, 8)  # a Monday, forecast from the days before it
NOW = datetime(2027, 3, 8, 9, 30, tzinfo=TOKYO)


def stored_history(tmp_path: Path, days: int) -> str:
    """`days` open days before DAY, simulated and stored with seqs that run on across days."""
    config = load_config(EXAMPLES / "nerima.toml")
    url = str(tmp_path / "central.db")
    seq = 0
    with open_store(url) as store:
        for day in open_days_before(config, DAY, days):
            records = []
            for event in record_day(config, day, seed=day.toordinal()).events:
                seq += 1
                records.append({**ev.public_record(event, config.id), "seq": seq, "session": 1})
            store.append(config.id, records)
    return url


def test_learned_forecasts_by_hour_and_one_chart_per_service(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "nerima.toml")
    forecaster = LearnedForecaster(stored_history(tmp_path, 10), {config.id: config}, now=lambda c: NOW)
    # Before learning: the stand-in's chart ("no forecast yet").
    assert "forecast-chart" in forecaster.chart_svg(config.id, "certificate", [DAY], "ja")
    forecaster.learn()
    hours = forecaster.hourly(config.id, "certificate", DAY)
    assert [h.hour for h in hours] == sorted(h.hour for h in hours) and hours[0].hour >= 8 and len(hours) >= 8
    assert all(h.wait_s >= 0 for h in hours) and any(h.wait_s > 0 for h in hours)
    assert forecaster._days[config.id, "certificate", DAY]  # computed once, kept for the next page
    charts = {
        s: forecaster.chart_svg(config.id, s, [DAY, date(2027, 3, 9), date(2027, 3, 10)], "ja")
        for s in ("certificate", "move")
    }
    ids = []
    for service, svg in charts.items():
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg") and root.get("role") == "img"
        ids += [e.get("id") for e in root.iter() if e.get("id")]
        assert root.get("aria-labelledby") == f"fc-title-{service} fc-desc-{service}"
    assert len(ids) == len(set(ids)) == 4, "each chart's title and description ids are its own"
    # An office or service it knows nothing of: the stand-in's chart, no hours, nothing raised.
    assert forecaster.hourly("elsewhere", "certificate", DAY) == []
    assert "forecast-chart" in forecaster.chart_svg("elsewhere", "certificate", [DAY], "en")


def test_a_new_day_is_learned_again_in_the_background(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "nerima.toml")
    clock = [NOW]
    forecaster = LearnedForecaster(stored_history(tmp_path, 3), {config.id: config}, now=lambda c: clock[0])
    forecaster.refresh()
    assert forecaster._learning is not None
    forecaster._learning.join(timeout=60)
    assert forecaster._histories[config.id][0] == NOW.date()
    clock[0] = datetime(2027, 3, 9, 8, 0, tzinfo=TOKYO)
    forecaster.hourly(config.id, "certificate", clock[0].date())  # a page asks: the day has changed
    forecaster._learning.join(timeout=60)
    assert forecaster._histories[config.id][0] == clock[0].date()


def test_a_long_heading_and_closed_days_fit_their_boxes() -> None:
    """A service's long name made the chart's heading run past its right edge, and two closed days
    side by side wrote their bilingual "Closed" over each other: both are sized to their room."""
    from office.congestion import HourForecast as Row
    from signage.forecast_chart import WIDTH, chart_svg

    today = [Row(h, 10.0, 600.0, 300.0, 900.0) for h in range(9, 17)]
    saturday, sunday = date(2027, 6, 19), date(2027, 6, 20)
    long_name = ("転入・転出・転居の届出", "Moving in, out or within the ward")
    for lang in ("ja", "en"):
        svg = chart_svg(today, None, lang, week=[(saturday, []), (sunday, [])], service=long_name)
        root = ET.fromstring(svg)
        texts = {t.get("class"): t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class")}
        heading = texts["heading"]
        size = float(heading.get("font-size", "16"))
        ems = sum(1.0 if ord(c) > 0x2E7F else 0.55 for c in heading.text or "")
        assert size < 16 and 56 + ems * size <= WIDTH  # shrunk to fit
        closed = [t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "closed"]
        assert len(closed) == 2
        for label in closed:
            assert label.text == ("Closed" if lang == "en" else "閉庁")  # one language in a small box
            assert float(label.get("font-size", "0")) <= 10
