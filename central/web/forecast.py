"""The seam between the public congestion page and the congestion forecast.

The page asks a `Forecaster` two things per office and service: the forecast of each hour of a
day (to name the quietest hours in words), and a chart of the coming days as SVG markup. The real
forecaster (learned from each office's history) is another module's; until it is plugged in,
`StandInForecaster` answers "no forecast yet" with an empty chart, so the page's structure is
complete and tested. Plug the real one into `create_app(forecaster=...)` (central/web/app.py) and
`central.service.run_worker`'s `web` argument, both of which take any object of this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Protocol

from central.web.i18n import Lang, text


@dataclass(frozen=True, slots=True)
class HourForecast:
    hour: int  # 0–23, local time of the office
    waiting: float  # people expected to be waiting in that hour
    wait_s: float  # the expected wait of a ticket taken in that hour


class Forecaster(Protocol):
    """What the public page calls. Both are called from the web's event loop for each page
    served: they must be quick (precomputed, or cached per day) and must not raise for an office
    or service they know nothing of (return [] and a chart that says so)."""

    def hourly(self, office: str, service: str, day: date) -> Sequence[HourForecast]:
        """The forecast of each reception hour of `day`, in hour order; [] when none."""
        ...

    def chart_svg(self, office: str, service: str, days: Sequence[date], lang: Lang) -> str:
        """An `<svg …>…</svg>` element charting `days` by hour (first: today). It is inserted in
        the page as is: every text in it must be escaped, and it must fetch nothing (no external
        href, font or image). Give it `role="img"` and an `aria-label`."""
        ...


class StandInForecaster:
    """No forecast: an empty chart frame saying so (until the learned forecaster is plugged in)."""

    WIDTH, HEIGHT = 480, 120

    def hourly(self, office: str, service: str, day: date) -> Sequence[HourForecast]:
        return []

    def chart_svg(self, office: str, service: str, days: Sequence[date], lang: Lang) -> str:
        label = escape(text("forecast_none", lang))
        w, h = self.WIDTH, self.HEIGHT
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="forecast-chart" role="img" '
            f'viewBox="0 0 {w} {h}" aria-label="{label}">'
            f'<rect x="0.5" y="0.5" width="{w - 1}" height="{h - 1}" fill="#f4f6f8" stroke="#8a96a3"/>'
            f'<text x="{w // 2}" y="{h // 2}" text-anchor="middle" dominant-baseline="middle" '
            f'font-size="16" fill="#44505c">{label}</text></svg>'
        )
