"""What a dispenser's panel says about the office's mode: why it is closed and when it opens.

Pure: a ModeNow (office.calendar.mode_at) in, at most four SHOW_TEXT lines out (docs/protocol.md:
0-4 lines of at most 60 bytes of UTF-8), Japanese first. Open: no lines (the lamps say what is
offered). It must not decide the mode (office.calendar) nor talk to a device (gateway.device_link).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.device_link import clip_utf8
from office.calendar import OUTSIDE_HOURS, ModeNow
from office.config import Text
from signage.catalog import both, text

MAX_LINE_BYTES = 60
_WEEKDAYS_JA = "月火水木金土日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # not %a: that follows the locale
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
RECEPTION_OVER = Text(*both("reception_closed"))


def dispenser_lines(mode: ModeNow, now: datetime) -> tuple[str, ...]:
    """The panel's words at `now` (aware): () while open; closed, why and the next opening."""
    if mode.is_open:
        return ()
    known = mode.next_opening or mode.since  # in the office's zone; `now` may be in any (the gateway's is UTC)
    local = now.astimezone(known.tzinfo) if known is not None else now
    reason = mode.reason or OUTSIDE_HOURS
    if reason == OUTSIDE_HOURS and mode.since is not None and mode.since.date() == local.date():
        reason = RECEPTION_OVER  # it was open earlier today: the day's reception is over
    lines = [reason.ja, reason.en]
    opening = mode.next_opening
    if opening is not None:
        at = f"{opening.hour}:{opening.minute:02d}"
        at_ja = f"{opening.hour}時{opening.minute:02d}分"
        if opening.date() == local.date():
            lines += [text("opens_today", "ja", time=at_ja), text("opens_today", "en", time=at)]
        elif opening.date() == local.date() + timedelta(days=1):
            lines += [text("opens_tomorrow", "ja", time=at_ja), text("opens_tomorrow", "en", time=at)]
        else:
            day_ja = f"{opening.month}月{opening.day}日({_WEEKDAYS_JA[opening.weekday()]})"
            day_en = f"{_WEEKDAYS_EN[opening.weekday()]} {opening.day} {_MONTHS_EN[opening.month - 1]}"
            lines += [text("opens_on", "ja", day=day_ja, time=at), text("opens_on", "en", day=day_en, time=at)]
    return tuple(clip_utf8(line, MAX_LINE_BYTES) for line in lines)


# While the business day waits for a trusted clock (gateway.clock_sync): what the dispensers'
# panels say, with the date and time the gateway believes, and how staff confirm it. Words of
# their own (not the catalogue's): only these panels show them. Short: a SHOW_TEXT frame holds 123
# bytes in all (docs/protocol.md), so these four lines stay under it on every day of the year.
CLOCK_WAIT_JA = "時計確認待ち"
CLOCK_CONFIRM_JA = "正しければ呼出キー"
CLOCK_CONFIRM_EN = "Right? Press Call"


def clock_wait_lines(local: datetime) -> tuple[str, ...]:
    """The panel's words at `local` (the office's time) while the day waits for the clock."""
    at = f"{local.hour}:{local.minute:02d}"
    day_ja = f"{local.month}月{local.day}日({_WEEKDAYS_JA[local.weekday()]})"
    day_en = f"{_WEEKDAYS_EN[local.weekday()]} {local.day} {_MONTHS_EN[local.month - 1]}"
    return (f"{CLOCK_WAIT_JA} {day_ja} {at}", f"Clock check: {day_en} {at}", CLOCK_CONFIRM_JA, CLOCK_CONFIRM_EN)


def pad_clock(local: datetime) -> str:
    """A counter pad's 4 characters while the day waits for the clock: the time, "0820"."""
    return f"{local.hour:02d}{local.minute:02d}"
