"""The waiting-room board: a `BoardSnapshot` in, a 1920×1080 or 1080×1920 image out.

Owns the layout (which rectangle each part of the board gets, per orientation), the mode themes
and the drawing of each region. Every text item drawn is recorded as a `TextBox` so that tests
can measure size, contrast and fit on every render. `BoardRenderer` keeps the last image and
redraws only the regions whose data changed (a call redraws the call area, not the board).
Words come from the message catalogues; nothing here reads live state.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time

import segno
from PIL import Image

from office.config import Text
from signage.catalog import LANGS, Lang, both, text
from signage.fonts import font
from signage.legibility import BODY_PX_AT_1080, NUMBER_FRACTION, RGB, Rect, TextBox, legibility_problems
from signage.paint import Painter, block_height, fit_lines, ink_bottom, line_height, width_of
from signage.snapshot import BoardSnapshot, CallEntry, ServiceLine, ServiceStatus

LANDSCAPE = (1920, 1080)
PORTRAIT = (1080, 1920)
SIZES = (LANDSCAPE, PORTRAIT)


# -- themes -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Theme:
    """Colours of one mode. The banner's colour is one of three cues: its words and its icon
    shape tell the modes apart for residents who cannot tell the colours apart."""

    mode: str
    icon: str  # ring | moon | calendar | cross
    banner_bg: RGB
    banner_fg: RGB
    bg: RGB
    fg: RGB
    rule: RGB
    off_bg: RGB  # rows of services not offered now
    off_fg: RGB
    hi_bg: RGB  # the newest call
    hi_fg: RGB
    frame: RGB


_LIGHT = {
    "bg": (255, 255, 255),
    "fg": (17, 17, 17),
    "rule": (150, 150, 150),
    "off_bg": (226, 226, 226),
    "off_fg": (30, 30, 30),
    "hi_bg": (255, 214, 0),
    "hi_fg": (0, 0, 0),
    "frame": (0, 0, 0),
}
_DARK = {
    "bg": (12, 16, 36),
    "fg": (255, 255, 255),
    "rule": (96, 104, 150),
    "off_bg": (40, 44, 70),
    "off_fg": (235, 235, 235),
    "hi_bg": (255, 214, 0),
    "hi_fg": (0, 0, 0),
    "frame": (255, 255, 255),
}
THEMES: dict[str, Theme] = {
    "office": Theme("office", "ring", (0, 94, 60), (255, 255, 255), **_LIGHT),
    "saturday": Theme("saturday", "calendar", (0, 72, 160), (255, 255, 255), **_LIGHT),
    "evening": Theme("evening", "moon", (52, 30, 120), (255, 255, 255), **_DARK),
    "closed": Theme("closed", "cross", (170, 0, 0), (255, 255, 255), **_LIGHT),
}
_MOON = (255, 214, 0)


def theme_for(mode: str) -> Theme:
    return THEMES.get(mode, THEMES["closed"])


# -- layout -------------------------------------------------------------------------------------
PAD = 20
BADGE_W = 60  # the service's ticket letter
WAITING_W = 200  # "999 waiting" at 36 px
WAIT_W = 220  # "100–172 min"
ROW_PAD = 4
FIG_PX = 36  # the figures of a service row (Japanese line, bold)


@dataclass(frozen=True, slots=True)
class Layout:
    size: tuple[int, int]
    portrait: bool
    regions: dict[str, Rect]  # region name → rectangle; service rows are "service:<id>"
    calls_shown: int
    newest_h: int  # the newest call's row is taller: it carries the "now calling" label
    number_px: int
    body_px: int
    hidden: tuple[str, ...] = ()  # services with no room left for their row: reported, not drawn

    def rect(self, name: str) -> Rect:
        return self.regions[name]


def number_px_for(height: int) -> int:
    """The smallest font size whose digits and capitals are at least 1/9 of `height` high."""
    need = math.ceil(height * NUMBER_FRACTION)
    px = need
    while True:
        _, top, _, bottom = font(px, "bold").getbbox("B0123456789", anchor="ls")
        if bottom - top >= need + 1:  # a pixel spare: rounding in the rasteriser
            return px
        px += 2


def _row_height(s: ServiceLine, width: int, body: int) -> int:
    ja = block_height(s.name.ja, width, body, body, 3, "bold")
    en = block_height(s.name.en, width, body, body, 3)
    name = ja - ink_bottom(body) + line_height(body) + en
    figures = line_height(FIG_PX) + ink_bottom(body)
    return max(name, figures) + 2 * ROW_PAD


VARIANTS = ("open", "closed", "closed_idle")


@functools.cache
def plan_layout(size: tuple[int, int], variant: str, services: tuple[ServiceLine, ...]) -> Layout:
    """Where everything goes on a board of `size` (only the service names and count matter).

    `variant`: "open"; "closed" while the last residents are still called (calls on the left,
    the closed notice instead of the services); "closed_idle" with nobody left: the notice and
    the QR code fill the board."""
    if size not in SIZES:
        raise ValueError(
            f"board size must be one of {', '.join(f'{w}x{h}' for w, h in SIZES)} (got {size[0]}x{size[1]})"
        )
    if variant not in VARIANTS:
        raise ValueError(f"layout variant must be one of {VARIANTS} (got {variant!r})")
    width, height = size
    portrait = height > width
    body = round(BODY_PX_AT_1080 * min(width, height) / 1080)
    r: dict[str, Rect] = {}
    banner_h = 130 if portrait else 150
    if variant == "closed_idle":
        split = 1400 if portrait else 1280
        r["banner"] = (0, 0, 570, banner_h) if portrait else (0, 0, 1420, banner_h)
        r["clock"] = (570, 0, width, banner_h) if portrait else (1420, 0, width, banner_h)
        r["closed"] = (0, banner_h, width, split) if portrait else (0, banner_h, split, height)
        r["info"] = (0, split, width, height) if portrait else (split, banner_h, width, height)
        return Layout(size, portrait, r, 0, 0, number_px_for(height), body)
    if portrait:
        r["banner"] = (0, 0, 570, banner_h)
        r["clock"] = (570, 0, width, banner_h)
        calls_shown, newest_h = 2, 330
        r["calls"] = (0, banner_h, width, 810)
        r["recent"] = (0, 810, width, 960)
        area = (0, 960, width, 1768)
        r["info"] = (0, 1768, width, height)
    else:
        r["banner"] = (0, 0, 1420, banner_h)
        r["clock"] = (1420, 0, width, banner_h)
        calls_shown, newest_h = 3, 220
        r["calls"] = (0, banner_h, 880, 760)
        r["recent"] = (0, 760, 540, height)
        r["info"] = (540, 760, 880, height)
        area = (880, banner_h, width, height)
    sx0, sy0, sx1, sy1 = area
    if variant == "closed":
        r["closed"] = area
        return Layout(size, portrait, r, calls_shown, newest_h, number_px_for(height), body)
    name_col = _columns((sx0, 0, sx1, 0))["name"]
    heights = [_row_height(s, name_col[2] - name_col[0], body) for s in services]
    head_h = line_height(body) + ink_bottom(body) + 2 * ROW_PAD + 4
    if sy1 - sy0 - sum(heights) >= head_h:  # a title over the services when there is room for it
        r["services"] = (sx0, sy0, sx1, sy0 + head_h)
        sy0 += head_h
    spare = max(0, sy1 - sy0 - sum(heights)) // max(1, len(heights))
    y = sy0
    hidden: list[str] = []
    for i, (s, h) in enumerate(zip(services, heights, strict=True)):
        # Clamped to the area: a row that does not fit is cut (its text reported as leaving its
        # area by the legibility checks) and a row with no room at all is left out (reported as
        # hidden), never drawn over the next region. The last row drawn takes what rounding left
        # over, so that the regions tile the screen.
        if y >= sy1:
            hidden.append(s.id)
            continue
        last = i == len(services) - 1 or y + h + spare >= sy1
        r[f"service:{s.id}"] = (sx0, y, sx1, sy1 if last else y + h + spare)
        y += h + spare
    return Layout(size, portrait, r, calls_shown, newest_h, number_px_for(height), body, tuple(hidden))


def _columns(row: Rect) -> dict[str, Rect]:
    """The columns of a service row: letter, name, people waiting, estimated wait."""
    x0, y0, x1, y1 = row
    wait = (x1 - PAD - WAIT_W, y0, x1 - PAD, y1)
    waiting = (wait[0] - 12 - WAITING_W, y0, wait[0] - 12, y1)
    badge = (x0 + PAD, y0, x0 + PAD + BADGE_W, y1)
    name = (badge[2] + 14, y0, waiting[0] - 14, y1)
    return {"badge": badge, "name": name, "waiting": waiting, "wait": wait, "status": (waiting[0], y0, wait[2], y1)}


# -- words ---------------------------------------------------------------------------------------
def _list(key: str, lang: Lang, index: int) -> str:
    return text(key, lang).split(",")[index]


def date_text(moment: datetime, lang: Lang) -> str:
    return text(
        "board_date",
        lang,
        month=_list("board_months", lang, moment.month - 1),
        day=moment.day,
        weekday=_list("board_weekdays", lang, moment.weekday()),
    )


def clock_text(t: time) -> str:
    return f"{t.hour}:{t.minute:02d}"


def hours_text(snap: BoardSnapshot) -> tuple[str, str]:
    """Today's hours, e.g. "本日の受付 8:30〜17:00、夜間 17:00〜19:00"; later periods are labelled."""
    if not snap.hours:
        return both("board_hours_closed")
    out = []
    for lang in ("ja", "en"):
        dash, sep = ("〜", "、") if lang == "ja" else ("–", ", ")
        parts = []
        for i, h in enumerate(snap.hours):
            span = f"{clock_text(h.start)}{dash}{clock_text(h.end)}"
            parts.append(span if i == 0 else f"{text(f'board_period_{h.mode}', lang)} {span}")
        out.append(text("board_hours", lang, periods=sep.join(parts)))
    return out[0], out[1]


def _not_now(mode: str) -> tuple[str, str]:
    return both(
        f"board_not_now_{mode}" if mode in ("office", "evening", "saturday", "closed") else "board_not_now_office"
    )


# -- regions -------------------------------------------------------------------------------------
def _icon(p: Painter, kind: str, box: Rect, theme: Theme) -> None:
    x0, y0, x1, y1 = box
    d = p.draw
    w = x1 - x0
    if kind == "ring":
        d.ellipse((x0, y0, x1, y1), outline=theme.banner_fg, width=w // 7)
    elif kind == "moon":
        d.ellipse((x0, y0, x1, y1), fill=_MOON)
        cut = w * 0.38
        d.ellipse((x0 + cut, y0 - w * 0.12, x1 + cut, y1 - w * 0.12), fill=theme.banner_bg)
    elif kind == "calendar":
        top = y0 + w // 6
        d.rounded_rectangle((x0, top, x1, y1), radius=w // 10, fill=theme.banner_fg)
        d.rectangle((x0, top, x1, top + w // 5), fill=(200, 30, 30))
        for i in (1, 3):
            cx = x0 + i * w // 4
            d.rounded_rectangle(
                (cx - 5, y0, cx + 5, top + w // 8), radius=4, fill=theme.banner_fg, outline=theme.banner_bg
            )
        cell = w // 6
        for row in range(3):
            for col in range(4):
                cx = x0 + cell // 2 + col * (w - cell) // 3
                cy = top + w // 5 + cell // 2 + row * cell
                d.rectangle((cx - 5, cy - 5, cx + 5, cy + 5), fill=theme.banner_bg)
    else:  # cross
        d.ellipse((x0, y0, x1, y1), fill=theme.banner_fg)
        m = w * 0.27
        for a, b in (((x0 + m, y0 + m), (x1 - m, y1 - m)), ((x0 + m, y1 - m), (x1 - m, y0 + m))):
            d.line((a, b), fill=theme.banner_bg, width=w // 7)


def _arrow(p: Painter, x: float, cy: float, size: float, colour: RGB) -> None:
    h = size / 2
    p.draw.polygon(
        [(x, cy - h * 0.35), (x + size * 0.55, cy - h * 0.35), (x + size * 0.55, cy - h), (x + size, cy),
         (x + size * 0.55, cy + h), (x + size * 0.55, cy + h * 0.35), (x, cy + h * 0.35)],
        fill=colour,
    )  # fmt: skip


def draw_banner(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme) -> None:
    rect = lay.rect("banner")
    x0, y0, x1, y1 = rect
    bg, fg, body = theme.banner_bg, theme.banner_fg, lay.body_px
    p.fill(rect, bg)
    icon = 96
    _icon(p, theme.icon, (x0 + 28, y0 + (y1 - y0 - icon) // 2, x0 + 28 + icon, y0 + (y1 - y0 + icon) // 2), theme)
    title_area = (x0 + 146, y0 + 8, x0 + 640 if not lay.portrait else x1 - 8, y1 - 4)
    ja, en = both(f"board_mode_{snap.mode.mode}")
    big, small = (56, body) if lay.portrait else (60, 40)
    y = p.block(title_area, ja, big, fg=fg, bg=bg, min_px=body, weight="bold", y=y0 + 12)
    p.block(title_area, en, small, fg=fg, bg=bg, min_px=body, y=y - 2)
    if not lay.portrait:
        hours_area = (x0 + 660, y0 + 8, x1 - 8, y1 - 4)
        _hours(p, hours_area, snap, fg, bg, body, top=y0 + 20)


def _hours(p: Painter, area: Rect, snap: BoardSnapshot, fg: RGB, bg: RGB, body: int, top: int) -> int:
    ja, en = hours_text(snap)
    y = p.block(area, ja, body, fg=fg, bg=bg, min_px=body, max_lines=2, weight="bold", y=top)
    reason = snap.day_reason if snap.hours else None  # a rush Saturday, an exceptional opening
    if reason is not None:
        y = p.block(area, reason.ja, body, fg=fg, bg=bg, min_px=body, max_lines=1, weight="bold", y=y)
    y = p.block(area, en, body, fg=fg, bg=bg, min_px=body, max_lines=2, y=y)
    if reason is not None:
        y = p.block(area, reason.en, body, fg=fg, bg=bg, min_px=body, max_lines=1, y=y)
    return y


def draw_clock(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme) -> None:
    rect = lay.rect("clock")
    x0, y0, x1, y1 = rect
    bg, fg, body = theme.banner_bg, theme.banner_fg, lay.body_px
    p.fill(rect, bg)
    dates = [date_text(snap.at, lang) for lang in LANGS]
    date_w = round(max(width_of(d, body, "bold") for d in dates)) + 8
    dx = x1 - 24 - date_w
    area = (x0 + 8, y0 + 6, x1 - 16, y1 - 4)
    p.text((dx - 20, (y0 + y1) // 2 + 26), clock_text(snap.at.time()), 72, fg=fg, bg=bg, area=area, weight="bold",
           anchor="rs")  # fmt: skip
    y = p.block((dx, y0, x1 - 16, y1 - 4), dates[0], body, fg=fg, bg=bg, min_px=body, weight="bold", y=y0 + 24)
    p.block((dx, y0, x1 - 16, y1 - 4), dates[1], body, fg=fg, bg=bg, min_px=body, y=y)


def _header(p: Painter, area: Rect, key: str, fg: RGB, bg: RGB, body: int) -> int:
    """A section title on one line: Japanese, then English."""
    ja, en = both(key)
    x0, y0, x1, _ = area
    jb = p.text((x0 + 2, y0 + 4), ja, body, fg=fg, bg=bg, area=area, weight="bold")
    lines, px, clipped = fit_lines(en, x1 - jb[2] - 24, body, body, 1)
    p.text((jb[2] + 20, y0 + 4), lines[0], px, fg=fg, bg=bg, area=area, clipped=clipped)
    return y0 + 4 + ink_bottom(body)


def _call_row(p: Painter, lay: Layout, rect: Rect, call: CallEntry, newest: bool, theme: Theme) -> None:
    x0, y0, x1, y1 = rect
    bg, fg = (theme.hi_bg, theme.hi_fg) if newest else (theme.bg, theme.fg)
    p.fill(rect, bg)
    if newest:
        p.frame(rect, theme.frame, 8)
    else:
        p.fill((x0 + PAD, y1 - 2, x1 - PAD, y1), theme.rule)
    body, npx = lay.body_px, lay.number_px
    inner = (x0 + 12, y0 + 10, x1 - 12, y1 - 10)
    f = font(npx, "bold")
    _, top, _, bottom = f.getbbox(call.ticket, anchor="ls")
    badge_ja, badge_en = both("board_new")
    if lay.portrait:
        base = y0 + 14 - top
        nb = p.text((x0 + 28, base), call.ticket, npx, fg=fg, bg=bg, area=inner, weight="bold", anchor="ls",
                    role="number")  # fmt: skip
        line_base = y1 - 20
        ax = x0 + 28
        _arrow(p, ax, line_base - 0.38 * 56, 52, fg)
        cx = ax + 70
        cw = x1 - 28 - cx
        ja_lines, ja_px, ja_clip = fit_lines(call.counter_name.ja, cw * 0.55, 56, body, 1, "bold")
        jb = p.text((cx, line_base), ja_lines[0], ja_px, fg=fg, bg=bg, area=inner, weight="bold", anchor="ls",
                    clipped=ja_clip)  # fmt: skip
        en_lines, en_px, en_clip = fit_lines(call.counter_name.en, x1 - 28 - (jb[2] + 24), 44, body, 1)
        p.text((jb[2] + 24, line_base), en_lines[0], en_px, fg=fg, bg=bg, area=inner, anchor="ls", clipped=en_clip)
        if newest:
            bx0 = nb[2] + 24
            badge = (bx0, y0 + 24, x1 - 24, y0 + 24 + 2 * line_height(body) + 24)
            _badge(p, badge, badge_ja, badge_en, theme, body)
        return
    base = (y0 + y1) // 2 - (top + bottom) // 2
    nb = p.text((x0 + 24, base), call.ticket, npx, fg=fg, bg=bg, area=inner, weight="bold", anchor="ls", role="number")
    ax = nb[2] + 20
    _arrow(p, ax, (y0 + y1) / 2, 50, fg)
    cx0 = ax + 66
    block = (cx0, y0 + 10, x1 - 20, y1 - 10)
    ja_lines, ja_px, ja_clip = fit_lines(call.counter_name.ja, block[2] - cx0, 60, body, 1, "bold")
    en_lines, en_px, en_clip = fit_lines(call.counter_name.en, block[2] - cx0, 40, body, 1)
    badge_h = line_height(body) + 12 if newest else 0
    stack = badge_h + (6 if newest else 0) + line_height(ja_px) + ink_bottom(en_px)
    y = (y0 + y1) // 2 - stack // 2
    if newest:
        _badge(p, (cx0, y, block[2], y + badge_h), badge_ja, badge_en, theme, body, one_line=True)
        y += badge_h + 6
    p.text((cx0, y), ja_lines[0], ja_px, fg=fg, bg=bg, area=block, weight="bold", clipped=ja_clip)
    y += line_height(ja_px)
    p.text((cx0, y), en_lines[0], en_px, fg=fg, bg=bg, area=block, clipped=en_clip)


def _badge(p: Painter, rect: Rect, ja: str, en: str, theme: Theme, body: int, one_line: bool = False) -> None:
    """The "now calling" label on the newest call: words, not only a colour."""
    x0, y0, x1, y1 = rect
    bg, fg = theme.hi_fg, theme.hi_bg  # inverted: dark label on the highlighted row
    if one_line:
        label = f"▶ {ja} {en}"
        w = width_of(label, body, "bold")
        p.draw.rounded_rectangle((x0, y0, min(x1, x0 + w + 24), y1), radius=8, fill=bg)
        p.text((x0 + 12, y0 + 4), label, body, fg=fg, bg=bg, area=(x0, y0, x1, y1 + 8), weight="bold")
        return
    w = max(width_of(s, body, "bold") for s in (ja, en))
    p.draw.rounded_rectangle((x0, y0, min(x1, x0 + w + 28), y1), radius=10, fill=bg)
    area = (x0, y0, x1, y1 + 6)
    p.text((x0 + 14, y0 + 8), ja, body, fg=fg, bg=bg, area=area, weight="bold")
    p.text((x0 + 14, y0 + 8 + line_height(body)), en, body, fg=fg, bg=bg, area=area, weight="bold")


def draw_calls(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme) -> None:
    rect = lay.rect("calls")
    x0, y0, x1, y1 = rect
    p.fill(rect, theme.bg)
    body = lay.body_px
    y = _header(p, (x0 + 22, y0, x1 - 22, y1), "board_now_calling", theme.fg, theme.bg, body) + 2
    shown = snap.calling[: lay.calls_shown]
    if not shown:
        ja, en = both("board_no_calls")
        area = (x0 + 24, y, x1 - 24, y1)
        yy = p.block(area, ja, 44, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, weight="bold", y=y + 60)
        p.block(area, en, body, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, y=yy)
        return
    other_h = (y1 - y - lay.newest_h) // max(1, lay.calls_shown - 1)
    for i, call in enumerate(shown):
        h = lay.newest_h if i == 0 else other_h
        _call_row(p, lay, (x0 + 8, y, x1 - 8, y + h), call, i == 0, theme)
        y += h


def draw_recent(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme) -> None:
    rect = lay.rect("recent")
    x0, y0, x1, y1 = rect
    p.fill(rect, theme.bg)
    p.fill((x0, y0, x1, y0 + 3), theme.rule)
    body = lay.body_px
    _header(p, (x0 + 22, y0 + 4, x1 - 22, y1), "board_recent", theme.fg, theme.bg, body)
    top = y0 + 8 + line_height(body)
    entries = [*snap.calling[lay.calls_shown :], *snap.recent]
    cols = 2 if lay.portrait else 1
    cell_w = (x1 - x0 - 48) // cols
    cell_h = line_height(body) + ink_bottom(body) + 4
    rows = max(0, (y1 - top) // cell_h)
    for i, call in enumerate(entries[: cols * rows]):
        cx = x0 + 24 + (i % cols) * cell_w
        cy = top + (i // cols) * cell_h
        cell = (cx, cy, cx + cell_w - 16, cy + cell_h)
        tb = p.text((cx + 2, cy), call.ticket, 44, fg=theme.fg, bg=theme.bg, area=cell, weight="bold")
        nx = max(tb[2], cx + 130) + 14
        _arrow(p, nx, cy + 0.75 * 44, 28, theme.fg)
        nx += 40
        name_area = (nx, cy, cell[2], cell[3])
        ja_lines, ja_px, ja_clip = fit_lines(call.counter_name.ja, cell[2] - nx - 4, body, body, 1, "bold")
        p.text((nx + 2, cy + 4), ja_lines[0], ja_px, fg=theme.fg, bg=theme.bg, area=name_area, weight="bold",
               clipped=ja_clip)  # fmt: skip
        en_lines, en_px, en_clip = fit_lines(call.counter_name.en, cell[2] - nx - 4, body, body, 1)
        p.text((nx + 2, cy + 4 + line_height(body)), en_lines[0], en_px, fg=theme.fg, bg=theme.bg, area=name_area,
               clipped=en_clip)  # fmt: skip


def draw_services_head(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme) -> None:
    rect = lay.rect("services")
    x0, y0, x1, y1 = rect
    p.fill(rect, theme.bg)
    body = lay.body_px
    area = (x0 + PAD, y0, x1 - PAD, y1)
    ja, en = both("board_services")
    y = p.block(area, ja, body, fg=theme.fg, bg=theme.bg, min_px=body, weight="bold", y=y0 + ROW_PAD)
    p.block(area, en, body, fg=theme.fg, bg=theme.bg, min_px=body, y=y)
    p.fill((x0 + PAD, y1 - 3, x1 - PAD, y1), theme.fg)


def draw_service(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme, service_id: str) -> None:
    rect = lay.rect(f"service:{service_id}")
    line = next(s for s in snap.services if s.id == service_id)
    off = line.status is not ServiceStatus.OPEN
    bg, fg = (theme.off_bg, theme.off_fg) if off else (theme.bg, theme.fg)
    p.fill(rect, bg)
    x0, y0, x1, y1 = rect
    p.fill((x0 + PAD, y1 - 1, x1 - PAD, y1), theme.rule)
    body = lay.body_px
    cols = _columns((x0, y0 + ROW_PAD, x1, y1 - ROW_PAD))
    bx0, by0, bx1, _ = cols["badge"]
    p.draw.rounded_rectangle((bx0, by0 + 2, bx1, by0 + 2 + BADGE_W), radius=8, fill=fg)
    p.text(((bx0 + bx1) / 2, by0 + 2 + BADGE_W / 2), line.prefix, 44, fg=bg, bg=fg, area=(bx0, by0, bx1, y1),
           weight="bold", anchor="mm")  # fmt: skip
    name = cols["name"]
    y = p.block(name, line.name.ja, body, fg=fg, bg=bg, min_px=body, max_lines=3, weight="bold", y=name[1])
    p.block(name, line.name.en, body, fg=fg, bg=bg, min_px=body, max_lines=3, y=y)
    cells: list[tuple[Rect, str, str]] = []
    if line.status is ServiceStatus.OPEN or line.waiting:
        cells.append((cols["waiting"], *both("board_waiting", count=line.waiting)))
        if line.status is ServiceStatus.OPEN:
            cells.append((cols["wait"], *both("board_wait", low=line.wait_low, high=line.wait_high)))
        else:
            cells.append((cols["wait"], *both("board_ended")))
    else:
        cells.append((cols["status"], *_not_now(snap.mode.mode)))
    for area, ja, en in cells:
        y = p.block(area, ja, FIG_PX, fg=fg, bg=bg, min_px=body, weight="bold", y=area[1], align="right")
        p.block(area, en, body, fg=fg, bg=bg, min_px=body, y=y, align="right")


def draw_closed(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme) -> None:
    rect = lay.rect("closed")
    x0, y0, x1, y1 = rect
    p.fill(rect, theme.bg)
    body = lay.body_px
    idle = lay.calls_shown == 0  # the whole board is the notice: larger words
    area = (x0 + 32, y0 + 16, x1 - 32, y1 - 8)
    reason = snap.mode.reason or Text(*both("board_closed_reason"))
    big, mid = ((110, 72) if lay.portrait else (88, 60)) if idle else (60, 44)
    y = p.block(area, reason.ja, big, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, weight="bold", y=y0 + 24)
    y = p.block(area, reason.en, mid, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, y=y)
    opening = snap.mode.next_opening
    if opening is not None:
        y += 40 if idle else 16
        ja, en = (
            text("board_next_opening", lang, date=date_text(opening, lang), time=clock_text(opening.time()))
            for lang in LANGS
        )
        y = p.block(
            area, ja, mid if idle else 48, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, weight="bold", y=y
        )
        y = p.block(area, en, 48 if idle else body, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, y=y)
    if snap.calling or any(s.waiting for s in snap.services):
        y += 10
        ja, en = both("board_still_calling")
        y = p.block(area, ja, body, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, weight="bold", y=y)
        y = p.block(area, en, body, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, y=y)
    # Where to get a certificate now: a framed box, an icon per way.
    y += 56 if idle else 24
    box = (x0 + 24, y, x1 - 24, y1 - 12)
    inner = (box[0] + 24, box[1] + 14, box[2] - 24, box[3] - 8)
    title, item_ja, item_en, icon_w = (
        ((60, 52, 44, 84) if lay.portrait else (52, 44, 40, 72)) if idle else (40, body, body, 56)
    )
    ja, en = both("board_certificates")
    yy = p.block(inner, ja, title, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, weight="bold", y=inner[1])
    yy = p.block(inner, en, item_en, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, y=yy) + 14
    for key, icon in (("board_cert_machine", "machine"), ("board_cert_konbini", "store")):
        _small_icon(p, icon, (inner[0], yy + 6, inner[0] + icon_w, yy + 6 + icon_w), theme.fg, theme.bg)
        item = (inner[0] + icon_w + 20, inner[1], inner[2], inner[3])
        ja, en = both(key)
        yy = p.block(item, ja, item_ja, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, weight="bold", y=yy)
        yy = p.block(item, en, item_en, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, y=yy) + 14
    p.frame((box[0], box[1], box[2], min(box[3], yy + 8)), theme.fg, 4)


def _small_icon(p: Painter, kind: str, box: Rect, fg: RGB, bg: RGB) -> None:
    x0, y0, x1, y1 = box
    w = x1 - x0
    if kind == "machine":  # a kiosk: screen and slot
        p.draw.rounded_rectangle(box, radius=6, fill=fg)
        p.draw.rectangle((x0 + 8, y0 + 8, x1 - 8, y0 + w // 2), fill=bg)
        p.draw.rectangle((x0 + 14, y1 - 14, x1 - 14, y1 - 9), fill=bg)
    else:  # a shop: roof and door
        p.draw.polygon([(x0, y0 + w * 0.4), ((x0 + x1) / 2, y0), (x1, y0 + w * 0.4)], fill=fg)
        p.draw.rectangle((x0 + 6, y0 + w * 0.4, x1 - 6, y1), fill=fg)
        p.draw.rectangle((x0 + w * 0.38, y0 + w * 0.6, x1 - w * 0.38, y1), fill=bg)


@functools.cache
def qr_image(url: str, size: int) -> Image.Image:
    """The congestion page's QR code, black on white with its quiet zone, at most `size` pixels."""
    qr = segno.make(url, error="m")
    modules = int(qr.symbol_size(scale=1, border=4)[0])
    scale = max(1, size // modules)
    img = Image.new("1", (modules, modules), 1)
    px = img.load()
    assert px is not None
    for y, row in enumerate(qr.matrix_iter(scale=1, border=4)):
        for x, dark in enumerate(row):
            if dark:
                px[x, y] = 0
    return img.resize((modules * scale, modules * scale), Image.Resampling.NEAREST).convert("RGB")


def draw_info(p: Painter, lay: Layout, snap: BoardSnapshot, theme: Theme) -> None:
    """The QR code to the congestion page with its caption (and, upright, today's hours)."""
    rect = lay.rect("info")
    x0, y0, x1, y1 = rect
    p.fill(rect, theme.bg)
    p.fill((x0, y0, x1, y0 + 3), theme.rule)
    body = lay.body_px
    ja, en = both("board_qr")
    if lay.calls_shown == 0 and lay.portrait:  # the closed board, upright: words left, a large code right
        qr = qr_image(snap.url, y1 - y0 - 40)
        qx = x1 - 24 - qr.width
        p.image.paste(qr, (qx, y0 + (y1 - y0 - qr.height) // 2))
        area = (x0 + 24, y0 + 24, qx - 24, y1)
        y = _hours(p, area, snap, theme.fg, theme.bg, body, top=y0 + 40) + 40
        y = p.block(area, ja, 44, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, weight="bold", y=y)
        p.block(area, en, body, fg=theme.fg, bg=theme.bg, min_px=body, max_lines=2, y=y)
        _arrow(p, qx - 84, (y0 + y1) / 2 + 40, 60, theme.fg)
        return
    if lay.calls_shown == 0:  # the closed board, landscape: a large code under its caption
        area = (x0 + 24, y0 + 24, x1 - 24, y1)
        y = p.block(area, ja, 44, fg=theme.fg, bg=theme.bg, min_px=body, weight="bold", y=y0 + 40, align="center")
        y = p.block(area, en, body, fg=theme.fg, bg=theme.bg, min_px=body, y=y, align="center")
        y += ink_bottom(body) - line_height(body) + 16
        qr = qr_image(snap.url, min(x1 - x0 - 48, y1 - y - 24, 480))
        p.image.paste(qr, ((x0 + x1 - qr.width) // 2, y))
        return
    if lay.portrait:
        qr = qr_image(snap.url, y1 - y0 - 12)
        qx = x1 - 20 - qr.width
        p.image.paste(qr, (qx, y0 + (y1 - y0 - qr.height) // 2 + 2))
        area = (x0 + 22, y0 + 8, qx - 64, y1 - 2)
        y = _hours(p, area, snap, theme.fg, theme.bg, body, top=y0 + 10)
        _header(p, (area[0], y - 4, area[2], area[3]), "board_qr", theme.fg, theme.bg, body)
        _arrow(p, qx - 56, y + 22, 44, theme.fg)
        return
    area = (x0 + 4, y0 + 6, x1 - 4, y1)
    y = p.block(area, ja, body, fg=theme.fg, bg=theme.bg, min_px=body, weight="bold", y=y0 + 8, align="center")
    y = p.block(area, en, body, fg=theme.fg, bg=theme.bg, min_px=body, y=y, align="center")
    y += ink_bottom(body) - line_height(body) + 6  # below the caption's descenders
    qr = qr_image(snap.url, y1 - y - 8)
    p.image.paste(qr, ((x0 + x1 - qr.width) // 2, y))


# -- regions and their data --------------------------------------------------------------------
Drawer = Callable[[Painter, Layout, BoardSnapshot, Theme], None]


def _drawer(name: str) -> Drawer:
    if name.startswith("service:"):
        sid = name.split(":", 1)[1]
        return lambda p, lay, snap, theme: draw_service(p, lay, snap, theme, sid)
    return {
        "banner": draw_banner,
        "clock": draw_clock,
        "calls": draw_calls,
        "recent": draw_recent,
        "services": draw_services_head,
        "closed": draw_closed,
        "info": draw_info,
    }[name]


def region_data(name: str, lay: Layout, snap: BoardSnapshot) -> object:
    """What a region's pixels depend on: the region is redrawn when this changes."""
    mode = snap.mode.mode
    if name == "banner":
        return (mode, snap.hours, snap.day_reason) if not lay.portrait else mode
    if name == "clock":
        return (snap.at.date(), snap.at.hour, snap.at.minute)
    if name == "calls":
        return snap.calling[: lay.calls_shown]
    if name == "recent":
        return (snap.calling[lay.calls_shown :], snap.recent)
    if name == "services":
        return mode
    if name.startswith("service:"):
        sid = name.split(":", 1)[1]
        return (mode, next(s for s in snap.services if s.id == sid))
    if name == "closed":
        return (snap.mode, bool(snap.calling) or any(s.waiting for s in snap.services))
    if name == "info":
        return (snap.url, snap.hours, snap.day_reason) if lay.portrait else snap.url
    raise KeyError(name)


def variant_for(snap: BoardSnapshot) -> str:
    if snap.mode.mode != "closed":
        return "open"
    busy = bool(snap.calling) or any(s.waiting for s in snap.services)
    return "closed" if busy else "closed_idle"


def layout_for(snap: BoardSnapshot, size: tuple[int, int]) -> Layout:
    return plan_layout(size, variant_for(snap), _names_only(snap.services))


def _names_only(services: tuple[ServiceLine, ...]) -> tuple[ServiceLine, ...]:
    # The layout depends on names, not counts: a key without the changing figures keeps the cache small.
    return tuple(ServiceLine(s.id, s.prefix, s.name, 0, ServiceStatus.OPEN, None, None) for s in services)


@dataclass(frozen=True, slots=True)
class Render:
    image: Image.Image
    boxes: list[TextBox]
    dirty: list[Rect]  # the rectangles drawn by this render (the whole screen for a full one)
    hidden: tuple[str, ...] = ()  # services left off the board for want of room

    def problems(self) -> list[str]:
        """Every legibility problem of this board, and every service it could not show."""
        missing = [f"service {sid!r} is not shown: no room left for its row" for sid in self.hidden]
        return legibility_problems(self.boxes, self.image.size) + missing


class BoardRenderer:
    """Keeps one board image up to date: `render` draws it all, `update` only what changed.

    The image and its text boxes always describe the last snapshot given."""

    def __init__(self, size: tuple[int, int] = LANDSCAPE) -> None:
        if size not in SIZES:
            raise ValueError(f"board size must be one of {', '.join(f'{w}x{h}' for w, h in SIZES)}")
        self.size = size
        self.image = Image.new("RGB", size, (255, 255, 255))
        self.snapshot: BoardSnapshot | None = None
        self.layout: Layout | None = None
        self._boxes: dict[str, list[TextBox]] = {}

    @property
    def boxes(self) -> list[TextBox]:
        return [b for boxes in self._boxes.values() for b in boxes]

    def _draw(self, name: str, lay: Layout, snap: BoardSnapshot, theme: Theme) -> Rect:
        p = Painter(self.image)
        _drawer(name)(p, lay, snap, theme)
        self._boxes[name] = p.boxes
        return lay.rect(name)

    def render(self, snap: BoardSnapshot) -> Render:
        lay = layout_for(snap, self.size)
        theme = theme_for(snap.mode.mode)
        self._boxes = {}  # no clearing first: the regions tile the screen, each fills its own
        for name in lay.regions:
            self._draw(name, lay, snap, theme)
        self.snapshot, self.layout = snap, lay
        return Render(self.image, self.boxes, [(0, 0, *self.size)], lay.hidden)

    def update(self, snap: BoardSnapshot) -> Render:
        """Redraw the regions whose data differ from the last snapshot's; a change of mode or of
        the service list redraws everything."""
        old, lay = self.snapshot, self.layout
        new_lay = layout_for(snap, self.size)
        if old is None or lay is None or new_lay != lay or old.mode.mode != snap.mode.mode:
            return self.render(snap)
        theme = theme_for(snap.mode.mode)
        dirty = [
            self._draw(name, lay, snap, theme)
            for name in lay.regions
            if region_data(name, lay, old) != region_data(name, lay, snap)
        ]
        self.snapshot = snap
        return Render(self.image, self.boxes, dirty, lay.hidden)


def render_board(snap: BoardSnapshot, size: tuple[int, int] = LANDSCAPE) -> Render:
    """The board for `snap` at `size`, drawn from scratch."""
    return BoardRenderer(size).render(snap)
