"""The congestion forecast as a server-drawn SVG chart for the residents' public page (issue 16).

Owns turning forecasts (office/congestion.py's HourForecast rows) into one self-contained SVG
string: bars of the expected wait by opening hour for today, the band as a whisker, the hour now
marked in words as well as colour, and optionally a small multiple per day of the week. Labels
are bilingual (Japanese first by default, English beside); the SVG carries <title> and <desc>
so a screen reader reads the quietest hour. No JavaScript, no fonts or files fetched: the page
inlines the string. Pure: it never reads live state or the clock — the caller passes `now`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from xml.sax.saxutils import escape

from office.congestion import HourForecast

WIDTH = 640
DAY_H = 260  # today's chart
WEEK_H = 120  # each small multiple
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 56, 16, 48, 40
WEEKDAYS_JA = "月火水木金土日"
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Colours with enough contrast on white; the hour now is also outlined and labelled in words.
BAR, BAR_NOW, INK, GRID = "#4a7bb7", "#d95f02", "#222222", "#cccccc"


def _both(ja: str, en: str, lang: str) -> str:
    """A bilingual label: the asked language first, the other beside it."""
    return f"{en} / {ja}" if lang == "en" else f"{ja} / {en}"


def _fit(text: str, width: float, largest: float, smallest: float = 9.0) -> float:
    """A font size at which `text` fits `width` (a wide CJK character about 1 em, others about
    0.55 em): no measuring font here, so a reckoning that errs wide."""
    ems = sum(1.0 if ord(c) > 0x2E7F else 0.55 for c in text)
    return max(smallest, min(largest, width / ems)) if ems else largest


def _minutes(seconds: float | None) -> float:
    return (seconds or 0.0) / 60.0


def _scale_top(rows: Sequence[HourForecast]) -> float:
    """The y axis top in minutes: a round number above the highest bar or band."""
    top = max([_minutes(r.wait_high_s or r.wait_s) for r in rows] + [10.0])
    step = 10 if top <= 60 else 30
    return float(step * (int(top // step) + 1))


def _quietest(rows: Sequence[HourForecast]) -> HourForecast | None:
    known = [r for r in rows if r.wait_s is not None]
    return min(known, key=lambda r: (r.wait_s, r.hour)) if known else None


def describe(rows: Sequence[HourForecast], lang: str) -> str:
    """The chart in words (its <desc>): every hour's expected wait, and the quietest hour."""
    if not rows:
        return _both("本日は受付していません。", "Not open today.", lang)
    hours = "; ".join(
        f"{r.hour}:00 {round(_minutes(r.wait_s))} min" if r.wait_s is not None else f"{r.hour}:00 —" for r in rows
    )
    quiet = _quietest(rows)
    tip = (
        _both(
            f"空いている時間: {quiet.hour}時台（約{round(_minutes(quiet.wait_s))}分）",
            f"Quietest: {quiet.hour}:00",
            lang,
        )
        if quiet is not None
        else ""
    )
    return f"{tip}. {hours}" if tip else hours


def _day_chart(
    rows: Sequence[HourForecast], x0: float, y0: float, w: float, h: float, now_hour: int | None, small: bool, lang: str
) -> list[str]:
    """One day's bars inside the box (x0, y0, w, h); numbers on the bars unless small."""
    left, bottom, top = (8, 16, 18) if small else (PLOT_LEFT, PLOT_BOTTOM, PLOT_TOP)
    plot_w, plot_h = w - left - (4 if small else PLOT_RIGHT), h - top - bottom
    base_y = y0 + top + plot_h
    out = [f'<line x1="{x0 + left}" y1="{base_y}" x2="{x0 + left + plot_w}" y2="{base_y}" stroke="{INK}"/>']
    if not rows:
        # A day's small chart has room for one language's word: the page's.
        label = ("Closed" if lang == "en" else "閉庁") if small else _both("閉庁", "Closed", lang)
        size = _fit(label, w - 8, 10 if small else 16)
        out.append(
            f'<text class="closed" x="{x0 + w / 2}" y="{y0 + top + plot_h / 2}" text-anchor="middle" '
            f'font-size="{size:.1f}">{label}</text>'
        )
        return out
    y_max = _scale_top(rows)
    if not small:
        out += _grid(x0 + left, base_y, plot_w, plot_h, y_max)
    slot = plot_w / len(rows)
    for i, r in enumerate(rows):
        out += _bar(r, x0 + left + i * slot, slot, base_y, plot_h / y_max, r.hour == now_hour, small, lang)
    return out


def _grid(x: float, base_y: float, plot_w: float, plot_h: float, y_max: float) -> list[str]:
    out = []
    step = y_max / 4
    for k in range(1, 5):
        y = base_y - plot_h * k / 4
        out.append(f'<line x1="{x}" y1="{y:.1f}" x2="{x + plot_w}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{x - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12">{round(step * k)}</text>')
    return out


def _bar(
    r: HourForecast, x: float, slot: float, base_y: float, per_min: float, now: bool, small: bool, lang: str
) -> list[str]:
    height = _minutes(r.wait_s) * per_min
    bar_w = slot * 0.7
    bx = x + (slot - bar_w) / 2
    cx = x + slot / 2
    fill = BAR_NOW if now else BAR
    stroke = f' stroke="{INK}" stroke-width="2"' if now else ""
    wait = "—" if r.wait_s is None else f"{round(_minutes(r.wait_s))}"
    tip = escape(f"{r.hour}:00 {wait} min, {r.arrivals:.0f} tickets")
    out = [
        f'<rect class="bar{" now" if now else ""}" x="{bx:.1f}" y="{base_y - height:.1f}" width="{bar_w:.1f}" '
        f'height="{height:.1f}" fill="{fill}"{stroke}><title>{tip}</title></rect>'
    ]
    if r.wait_low_s is not None and r.wait_high_s is not None and not small:
        lo, hi = base_y - _minutes(r.wait_low_s) * per_min, base_y - _minutes(r.wait_high_s) * per_min
        out.append(f'<line class="band" x1="{cx:.1f}" y1="{lo:.1f}" x2="{cx:.1f}" y2="{hi:.1f}" stroke="{INK}"/>')
    size = 9 if small else 12
    out.append(
        f'<text class="hour" x="{cx:.1f}" y="{base_y + size + 2}" text-anchor="middle" '
        f'font-size="{size}">{r.hour}</text>'
    )
    if not small:
        out.append(
            f'<text class="value" x="{cx:.1f}" y="{base_y - height - 4:.1f}" text-anchor="middle" '
            f'font-size="11">{wait}</text>'
        )
    if now:
        label = _both("いま", "now", lang)
        out.append(
            f'<text class="now-label" x="{cx:.1f}" y="{base_y + 2 * size + 6}" text-anchor="middle" '
            f'font-size="{size}" font-weight="bold">▲ {label}</text>'
        )
    return out


def chart_svg(
    today: Sequence[HourForecast],
    now: datetime | None = None,
    lang: str = "ja",
    *,
    week: Sequence[tuple[date, Sequence[HourForecast]]] = (),
    service: tuple[str, str] | None = None,
) -> str:
    """Today's expected wait by opening hour (and, if `week` is given, a small chart per day),
    as one SVG document. `now`: the office's local time, to mark its hour (None: unmarked).
    `lang` "ja" (Japanese first) or "en" (English first); `service`: its (ja, en) name."""
    height = DAY_H + (WEEK_H + 8 if week else 0)
    heading = _both("待ち時間の予測（分）", "Expected wait (min)", lang)
    if service is not None:
        heading = f"{_both(service[0], service[1], lang)} — {heading}"
    desc = describe(today, lang)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'role="img" aria-labelledby="fc-title fc-desc" font-family="sans-serif">',
        f'<title id="fc-title">{escape(heading)}</title>',
        f'<desc id="fc-desc">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text class="heading" x="{PLOT_LEFT}" y="24" font-size="{_fit(heading, WIDTH - PLOT_LEFT - 8, 16):.1f}" '
        f'fill="{INK}">{escape(heading)}</text>',
        f'<text class="axis" x="{PLOT_LEFT}" y="{DAY_H - 4}" font-size="11" fill="{INK}">'
        f"{escape(_both('時台（縦棒の線は予測の幅）', 'hour (the line on a bar: likely range)', lang))}</text>",
    ]
    now_hour = now.hour if now is not None else None
    parts += _day_chart(today, 0, 0, WIDTH, DAY_H - 8, now_hour, False, lang)
    if week:
        cell = WIDTH / len(week)
        for i, (day, rows) in enumerate(week):
            x0, y0 = i * cell, DAY_H + 8
            label = _both(f"{day.month}/{day.day}（{WEEKDAYS_JA[day.weekday()]}）", WEEKDAYS_EN[day.weekday()], lang)
            parts.append(f'<g class="day" data-date="{day.isoformat()}">')
            parts.append(f'<text class="day-label" x="{x0 + 8}" y="{y0 + 12}" font-size="10">{escape(label)}</text>')
            marked = now_hour if now is not None and day == now.date() else None
            parts += _day_chart(rows, x0, y0, cell, WEEK_H, marked, True, lang)
            parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)
