"""A new office configuration for a running floor: what changed, what the gateway can apply at
once, what waits for its restart, and what it must refuse (docs/operations.md, "Changing the
configuration").

Pure: two parsed configs and the floor's state in, words out. It must not store anything (the
journal's `change_config` does) nor touch a device (gateway.service applies what it can).
"""

from __future__ import annotations

from datetime import date

from office.config import OfficeConfig
from office.state import CounterStatus, OfficeState, TicketStatus

# The config's parts (OfficeConfig fields; "office" is the [office] table's own keys, "hours" its
# hours). Applied at once: the office model is rebuilt under them (services, counters, hours,
# calendar, rules), and the signs, the dispensers' lamps and words and the tickets follow the new
# config (their texts: names, the office's, the public URL).
LIVE = ("office", "services", "counters", "hours", "exceptions", "rules")
# What the process set up when it started: its journal and socket, buses and devices, printers,
# the broker connection, the screens' outputs and the call-out player. These take effect when the
# gateway restarts (with the same config file, a pushed config stands: the journal keeps it).
RESTART = ("gateway", "devices", "printers", "broker", "signs", "callout")
# Where the gateway's own files are: a pushed config may not move them (they are found from the
# config file and the command line before the journal is open).
FIXED_GATEWAY_KEYS = ("journal", "socket")
_ACTIVE = (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.HELD)


def changed_parts(old: OfficeConfig, new: OfficeConfig) -> list[str]:
    """The parts of the config that differ, in the order of LIVE then RESTART."""
    parts: list[str] = []
    office = ("id", "name", "timezone", "public_base_url")
    if any(getattr(old, k) != getattr(new, k) for k in office):
        parts.append("office")
    if old.services != new.services:
        parts.append("services")
    if old.counters != new.counters:
        parts.append("counters")
    if (old.weekday, old.evening, old.saturday) != (new.weekday, new.evening, new.saturday):
        parts.append("hours")
    if old.exceptions != new.exceptions:
        parts.append("exceptions")
    if old.rules != new.rules:
        parts.append("rules")
    return parts + restart_needed(old, new)


def restart_needed(old: OfficeConfig, new: OfficeConfig) -> list[str]:
    """The parts of RESTART that differ: they take effect when the gateway restarts."""
    return [part for part in RESTART if getattr(old, part) != getattr(new, part)]


def change_problem(old: OfficeConfig, new: OfficeConfig, state: OfficeState, today: date | None = None) -> str | None:
    """Why `new` cannot replace `old` on this floor now, or None. Another office's config; a
    move of the gateway's journal or socket; and what would strand the day held in `state`: a
    service removed while it has tickets waiting, called or held, a counter removed while it is
    open or paused. (Tickets and numbers stay as they are; a prefix that another service's
    tickets of the day carry is fine: the model skips a number whose ticket id exists.) With
    `today`, a state of an earlier day strands nothing: the next event starts a new one."""
    if new.id != old.id:
        return f"the config is for office {new.id!r}, this gateway's is {old.id!r}"
    for key in FIXED_GATEWAY_KEYS:
        if getattr(old.gateway, key) != getattr(new.gateway, key):
            return (
                f"gateway.{key} cannot change this way (it says where the gateway's files are): "
                "edit the config file and restart the gateway"
            )
    if today is not None and state.day != today:
        return None
    services = {s.id: s for s in new.services}
    for sid in sorted({t.service for t in state.tickets.values() if t.status in _ACTIVE} - set(services)):
        count = sum(1 for t in state.tickets.values() if t.service == sid and t.status in _ACTIVE)
        return f"service {sid!r} is removed but has {count} ticket(s) waiting, called or held today"
    counters = {c.id for c in new.counters}
    for cid, c in sorted(state.counters.items()):
        if c.status is not CounterStatus.CLOSED and cid not in counters:
            return f"counter {cid!r} is removed but is {c.status.value}: close it first"
    return None
