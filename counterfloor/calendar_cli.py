"""`counterfloor calendar`: the office's days as the calendar plans them, as a table or JSON.

A thin shell over office.calendar.plan_for; docs/calendar.md describes the output. Bad
arguments are one line on stderr and exit 2 (the CLI's CliError with EXIT_USAGE).
"""

from __future__ import annotations

import argparse
import json
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, TextIO

from office.calendar import MODE_CLOSED, DayPlan, plan_for
from office.config import Text, load_config

MAX_DAYS = 3660  # ten years: enough for any planning question, small enough to print


class CalendarUsageError(ValueError):
    """A bad --from/--days; the message says which and why."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="the office config")
    # Parsed by hand so that a bad value is one clear line, not argparse's usage block.
    p.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="the first day")
    p.add_argument("--days", default="7", metavar="N", help=f"how many days (1-{MAX_DAYS}, default 7)")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per day")


def parse_range(start: str, days: str) -> tuple[date, int]:
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise CalendarUsageError(f"--from: not a date YYYY-MM-DD: {start!r}") from None
    try:
        n = int(days)
    except ValueError:
        raise CalendarUsageError(f"--days: not a whole number: {days!r}") from None
    if not 1 <= n <= MAX_DAYS:
        raise CalendarUsageError(f"--days: must be between 1 and {MAX_DAYS} (got {n})")
    if (date.max - first).days < n - 1:  # the calendar has no day after 9999-12-31
        raise CalendarUsageError(f"--days: {n} days from {first.isoformat()} run past {date.max.isoformat()}")
    return first, n


def _hhmm(t: time) -> str:
    return f"{t:%H:%M}"


def reason_text(reason: Text | None) -> str | None:
    """Both languages in one string, Japanese first: '年末年始休業 / Year-end and New Year closure'."""
    return None if reason is None else f"{reason.ja} / {reason.en}"


def day_json(plan: DayPlan) -> dict[str, Any]:
    """One day as docs/calendar.md shows it: only open periods, or one closed period of the day."""
    if plan.is_open:
        periods = [
            {"mode": p.mode, "from": _hhmm(p.start), "to": _hhmm(p.end), "services": list(p.services)}
            for p in plan.periods
        ]
    else:
        periods = [{"mode": MODE_CLOSED, "from": "00:00", "to": "24:00", "services": []}]
    return {"date": plan.day.isoformat(), "periods": periods, "reason": reason_text(plan.reason)}


def table(plans: list[DayPlan]) -> str:
    lines = [f"{'date':<10}  {'day':<3}  {'mode':<8}  {'hours':<11}  services / reason"]
    for plan in plans:
        head = f"{plan.day.isoformat():<10}  {plan.day:%a}"
        rows = [
            f"{p.mode:<8}  {_hhmm(p.start)}-{_hhmm(p.end)}  {', '.join(p.services) or '(none)'}" for p in plan.periods
        ] or [f"{MODE_CLOSED:<8}  {'-':<11}  {reason_text(plan.reason) or ''}"]
        if plan.is_open and plan.reason is not None:
            rows.append(f"{'':<8}  {'':<11}  ({reason_text(plan.reason)})")
        for i, row in enumerate(rows):
            lines.append(f"{head if i == 0 else '':<15}  {row}".rstrip())
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: TextIO) -> int:
    first, n = parse_range(args.start, args.days)
    config = load_config(args.config)
    plans = [plan_for(config, first + timedelta(days=i)) for i in range(n)]
    if args.json:
        out.write(json.dumps([day_json(p) for p in plans], ensure_ascii=False, indent=1) + "\n")
    else:
        out.write(table(plans))
    return 0
