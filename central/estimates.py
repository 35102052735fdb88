"""What central publishes for one office, worked out from its floor: per service, the wait of a
ticket issued now; per waiting ticket (that has a token hash), its own wait.

Owns asking the predictor (office.waittime) the right questions. A service's estimate is the
prediction for a stand-in ticket placed at the back of its queue for the length of one call (the
predictors answer about tickets on the floor); the stand-in is not counted as issued, so it
changes nothing the predictors learn today's load from, and it is gone before this returns.
Pure: a floor and a predictor in, figures out.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from office.waittime import Floor, Predictor
from office.waittime.floor import Ticket

# An id no record can carry (ticket ids are `<prefix>-<number>`), so it never meets a real one.
_STAND_IN = "\x00new"


@dataclass(frozen=True, slots=True)
class ServiceEstimate:
    service: str
    waiting: int
    mean: float  # seconds from issue (now) to the first call
    p10: float
    p90: float


@dataclass(frozen=True, slots=True)
class TicketEstimate:
    token_hash: str
    ticket: str
    service: str
    ahead: int
    issued_ts: str
    mean: float  # seconds from its issue to its first call
    p10: float
    p90: float


def services(floor: Floor) -> list[str]:
    """The services worth an estimate today: in today's plan, called by a counter, or with
    tickets issued or waiting."""
    found = set(floor.queues) | set(floor.issued)
    plan = floor.plan
    if plan is not None:
        for offered in plan.services.values():
            found.update(offered)
        found.update(plan.reception_end)
    for counter in floor.counters.values():
        found.update(counter.services)
    return sorted(found)


@contextmanager
def _stand_in(floor: Floor, service: str) -> Iterator[Ticket]:
    """A ticket of `service` issued now, at the back of its queue, for the length of the block."""
    ticket = Ticket(_STAND_IN, service, floor.now, "", sys.maxsize)
    queue = floor.queues.setdefault(service, [])
    queue.append((sys.maxsize, _STAND_IN))
    floor.tickets[_STAND_IN] = ticket
    try:
        yield ticket
    finally:
        del floor.tickets[_STAND_IN]
        queue.remove((sys.maxsize, _STAND_IN))
        if not queue:
            del floor.queues[service]


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def service_estimates(floor: Floor, predictor: Predictor) -> list[ServiceEstimate]:
    out = []
    for service in services(floor):
        with _stand_in(floor, service) as ticket:
            p = predictor.predict(floor, [ticket])[0]
        if _finite(p.mean, p.p10, p.p90):
            out.append(ServiceEstimate(service, len(floor.queues.get(service, ())), p.mean, p.p10, p.p90))
    return out


def ticket_estimates(floor: Floor, predictor: Predictor, tokens: Mapping[str, str]) -> list[TicketEstimate]:
    """Every waiting ticket with a token hash (`tokens`: ticket id → hash), in calling order per
    service; all asked in one call, which the forecast answers in one pass."""
    waiting = [t for t in floor.waiting() if t.id in tokens]
    if not waiting:
        return []
    out = []
    for t, p in zip(waiting, predictor.predict(floor, waiting), strict=True):
        if _finite(p.mean, p.p10, p.p90):
            out.append(TicketEstimate(tokens[t.id], t.id, t.service, floor.ahead(t), t.issued_ts, p.mean, p.p10, p.p90))
    return out
