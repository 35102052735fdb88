"""Hand-made board snapshots for the signage tests: the real config's names, the real calendar's
mode, and queue figures written out here so that the golden images do not move when the
simulator or the estimator changes."""

from __future__ import annotations

from datetime import datetime, timedelta

from office.calendar import mode_at, plan_for
from office.config import OfficeConfig
from signage.snapshot import BoardSnapshot, CallEntry, HoursLine, ServiceLine, ServiceStatus

# The moments of the golden boards (Nerima): a Monday morning and evening, a Saturday, a Sunday.
MOMENTS = {
    "office": (2027, 3, 15, 10, 30),
    "evening": (2027, 3, 15, 17, 40),
    "saturday": (2027, 3, 13, 11, 0),
    "closed": (2027, 3, 14, 11, 0),
}


def call(config: OfficeConfig, ticket: str, counter: str, at: datetime) -> CallEntry:
    prefix, number = ticket.split("-")
    return CallEntry(ticket, prefix, int(number), counter, config.counter(counter).name, at)


def snapshot(
    config: OfficeConfig,
    at: datetime,
    calling: list[tuple[str, str]] = (),  # type: ignore[assignment]
    recent: list[tuple[str, str]] = (),  # type: ignore[assignment]
    waiting: dict[str, int] | None = None,
    ended: frozenset[str] = frozenset(),
) -> BoardSnapshot:
    """A snapshot at `at`: `calling` newest first (one minute apart), `recent` before them."""
    mode = mode_at(config, at)
    waiting = waiting or {}
    lines = []
    for s in config.services:
        # Nobody waits for a service not offered now, unless its reception ended with people left.
        n = waiting.get(s.id, 0) if s.id in mode.services or s.id in ended or not mode.services else 0
        if s.id not in mode.services:
            lines.append(ServiceLine(s.id, s.prefix, s.name, n, ServiceStatus.NOT_NOW, None, None))
        elif s.id in ended:
            lines.append(ServiceLine(s.id, s.prefix, s.name, n, ServiceStatus.ENDED, None, None))
        else:
            low = min(600, round(n * s.typical_minutes / 3))  # a wait past closing would be ENDED
            lines.append(
                ServiceLine(s.id, s.prefix, s.name, n, ServiceStatus.OPEN, low, min(999, round(low * 1.7) + 2))
            )
    calls = [call(config, t, c, at - timedelta(minutes=i)) for i, (t, c) in enumerate([*calling, *recent])]
    plan = plan_for(config, at.date())
    return BoardSnapshot(
        office_name=config.name,
        at=at,
        mode=mode,
        calling=tuple(calls[: len(calling)]),
        recent=tuple(calls[len(calling) :]),
        services=tuple(lines),
        hours=tuple(HoursLine(p.mode, p.start, p.end) for p in plan.periods),
        day_reason=plan.reason,
        url=config.public_base_url,
    )


def busy(config: OfficeConfig, at: datetime) -> BoardSnapshot:
    """A busy floor: three numbers called, four earlier calls, people waiting for every service."""
    return snapshot(
        config,
        at,
        calling=[("C-099", "8"), ("C-098", "9"), ("E-025", "10")],
        recent=[("F-012", "11"), ("C-097", "7"), ("C-096", "6"), ("B-014", "4")],
        waiting={"move": 15, "seal": 2, "certificate": 21, "insurance": 10, "payment": 9, "guidance": 5},
        ended=frozenset({"insurance"}) if at.hour >= 17 else frozenset(),
    )


def board_snapshot(config: OfficeConfig, mode: str, tz: object) -> BoardSnapshot:
    at = datetime(*MOMENTS[mode], tzinfo=tz)  # type: ignore[arg-type, misc]
    if mode == "closed":
        return snapshot(config, at)  # a Sunday: nobody here
    return busy(config, at)
