"""The public page's forecast learned from each office's past days in central's own store
(office/congestion.py's model, signage/forecast_chart.py's chart), behind central/web/forecast.py's
`Forecaster` seam.

Learning reads every stored event of an office (one day's at a time: office/congestion.py), which
can take seconds on months of history, so it runs in a thread of its own with its own store
connection (a connection belongs to the thread that opened it), once at start and again when the
office's day changes; pages only read what the last learning left, and show the stand-in's "no
forecast yet" until the first one is done. Forecasts of a day are computed once and kept (a page
asks for each service at every view)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime

from central.store import open_store
from central.web.forecast import HourForecast, StandInForecaster
from central.web.i18n import Lang
from office import congestion
from office.config import OfficeConfig
from signage.forecast_chart import chart_svg

_log = logging.getLogger(__name__)
_IDS = re.compile(r'id="(fc-[a-z]+)"')


class LearnedForecaster:
    """`configs`: the offices' configs by id (their calendars, hours and services); `store_url`:
    central's store. `now(config)`: the office's local time (tests pass a fixed one)."""

    def __init__(
        self,
        store_url: str,
        configs: Mapping[str, OfficeConfig],
        now: Callable[[OfficeConfig], datetime] = lambda c: datetime.now(c.tz),
    ) -> None:
        self.store_url = store_url
        self.configs = dict(configs)
        self.now = now
        self._histories: dict[str, tuple[date, congestion.History]] = {}  # office -> (learned on, history)
        self._days: dict[tuple[str, str, date], list[congestion.HourForecast]] = {}
        self._stand_in = StandInForecaster()
        self._lock = threading.Lock()  # the learning thread replaces a history while pages read
        self._learning: threading.Thread | None = None

    # --- learning, off the event loop

    def learn(self) -> None:
        """Every configured office's history, read now (in the caller's thread)."""
        store = open_store(self.store_url)
        try:
            for office, config in self.configs.items():
                day = self.now(config).date()
                try:
                    history = congestion.History(congestion.stats_from_records(store.read(office)))
                except Exception:  # one office's odd records must not keep the others' forecasts
                    _log.exception("forecast: learning office %s failed", office)
                    continue
                with self._lock:
                    self._histories[office] = (day, history)
                    self._days = {k: v for k, v in self._days.items() if k[0] != office}
        finally:
            store.close()

    def refresh(self) -> None:
        """A new day in some office: learn again in the background (once at a time)."""
        stale = any(
            (known := self._histories.get(office)) is None or known[0] != self.now(config).date()
            for office, config in self.configs.items()
        )
        if stale and (self._learning is None or not self._learning.is_alive()):
            self._learning = threading.Thread(target=self.learn, name="forecast learning", daemon=True)
            self._learning.start()

    # --- the seam

    def _day(self, office: str, service: str, day: date) -> list[congestion.HourForecast] | None:
        key = (office, service, day)
        with self._lock:
            known = self._histories.get(office)
            cached = self._days.get(key)
        if cached is not None:
            return cached
        config = self.configs.get(office)
        if known is None or config is None:
            return None
        rows = congestion.forecast_day(known[1], config, service, day)
        with self._lock:
            self._days[key] = rows
        return rows

    def hourly(self, office: str, service: str, day: date) -> Sequence[HourForecast]:
        self.refresh()
        rows = self._day(office, service, day) or []
        return [HourForecast(h.hour, h.arrivals, h.wait_s) for h in rows if h.wait_s is not None]

    def chart_svg(self, office: str, service: str, days: Sequence[date], lang: Lang) -> str:
        config = self.configs.get(office)
        today = self._day(office, service, days[0]) if days else None
        if config is None or today is None:
            return self._stand_in.chart_svg(office, service, days, lang)
        week = [(d, self._day(office, service, d) or []) for d in days[1:]]
        try:
            found = config.service(service)
            names: tuple[str, str] | None = (found.name.ja, found.name.en)
        except KeyError:  # a service the config does not have (a renamed one still in the store)
            names = None
        svg = chart_svg(today, self.now(config), lang, week=week, service=names)
        # One chart per service on a page: its title and description ids must be its own.
        return _IDS.sub(lambda m: f'id="{m.group(1)}-{service}"', svg).replace(
            'aria-labelledby="fc-title fc-desc"', f'aria-labelledby="fc-title-{service} fc-desc-{service}"'
        )
