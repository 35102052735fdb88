"""The learned predictor behind the office model's `WaitEstimator` seam (office/estimate.py).

Owns keeping a waittime `Floor` current with the office's stored events and answering the
model's question — how long will a ticket of this service wait? — with the predictor's mean and
p10–p90, for a new ticket (the dispenser, the board, the reception cut-off) or a waiting one (a
reprint). Central's per-service estimate takes over while it is current: computed from every
event the office has stored and received recently. Until a predictor has been learned, or when
the floor cannot be brought up to date, the fallback (`CapacityEstimator`) answers: the model
must always get an estimate.

Pure: events come from `source(after_seq)` (the journal's `events_after`), the predictor from
whoever trained it (gateway.estimates, off the floor's loop), central's figures from the broker
link; the clock is the model's `now`.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from office import events as ev
from office.config import OfficeConfig
from office.estimate import UNREACHABLE, CapacityEstimator, WaitEstimator, WaitRange
from office.state import OfficeState
from office.waittime.floor import WAITING, Floor
from office.waittime.predictors import Best, Predictor
from office.waittime.records import RecordError, read_record

CENTRAL_FRESH_S = 120.0  # central's estimate is used this long after it came, if still current
CATCH_UP_LIMIT = 1000  # events read from the source per call while catching up

Source = Callable[[int, int], Iterable[ev.Event]]  # (after seq, at most) -> stored events in seq order


@dataclass(frozen=True, slots=True)
class CentralEstimate:
    """Central's retained estimate for a service (docs/mqtt.md, estimates/<service>)."""

    seq: int  # the office's seq it is current to
    mean_s: float
    p10_s: float
    p90_s: float
    received: float  # monotonic seconds when it came


class LearnedEstimator:
    """A `WaitEstimator` (see the module docstring). `start_seq`: the seq before the first event
    to read (the business day's first event's seq minus one: no need to read older days)."""

    def __init__(
        self,
        config: OfficeConfig,
        source: Source,
        predictor: Predictor | None = None,
        *,
        start_seq: int = 0,
        fallback: WaitEstimator | None = None,
        clock: Callable[[], float] = _time.monotonic,
    ) -> None:
        self.config = config
        self.office = config.id
        self.source = source
        self.predictor: Predictor | None = None
        self.use(predictor)
        self.fallback = fallback or CapacityEstimator(config)
        self.clock = clock
        self.floor = Floor()
        self.seq = start_seq  # the last event the floor has seen
        self.central: dict[str, CentralEstimate] = {}
        # Figures (tests, bench, the demo): which source answered.
        self.answers = {"learned": 0, "central": 0, "fallback": 0}

    def use(self, predictor: Predictor | None) -> None:
        """A newly learned predictor (None: the fallback answers)."""
        if isinstance(predictor, Best):
            predictor.unreached_is_inf = True  # "no call today" is the cut-off's, not a guess's
        self.predictor = predictor

    # -- keeping up ------------------------------------------------------------------------------
    def catch_up(self, last_seq: int) -> bool:
        """Read what the floor has not seen up to `last_seq`; False if the source has less."""
        while self.seq < last_seq:
            events = list(self.source(self.seq, CATCH_UP_LIMIT))
            if not events:
                return False
            for event in events:
                self.observe(event)
        return True

    def observe(self, event: ev.Event) -> None:
        if event.seq <= self.seq:
            return  # seen (a retried read): the floor never applies an event twice
        try:
            record = read_record(ev.public_record(event, self.office))
        except RecordError:
            record = None  # a record prediction cannot read moves the mark all the same
        if record is not None:
            self.floor.apply(record)
        self.seq = event.seq

    def take_central(self, service: str, estimate: CentralEstimate) -> None:
        """Central's estimate for `service` (a later one replaces it; an older seq never does)."""
        held = self.central.get(service)
        if held is None or estimate.seq >= held.seq:
            self.central[service] = estimate

    # -- the seam --------------------------------------------------------------------------------
    def estimate(
        self, state: OfficeState, service: str, ahead: int, now: datetime, ticket: str | None = None
    ) -> WaitRange:
        """The wait of a new ticket of `service` (or of the waiting `ticket`, counted from now)."""
        central = self.central.get(service)
        if (
            ticket is None
            and central is not None
            and central.seq == state.last_seq
            and self.clock() - central.received <= CENTRAL_FRESH_S
        ):
            self.answers["central"] += 1
            return WaitRange(central.mean_s, central.p10_s, central.p90_s)
        predictor = self.predictor
        local = now.astimezone(self.config.tz)
        if predictor is None or not self.catch_up(state.last_seq) or self.floor.day != local.date().isoformat():
            self.answers["fallback"] += 1
            return self.fallback.estimate(state, service, ahead, now)
        floor = self.floor
        at = local.hour * 3600.0 + local.minute * 60.0 + local.second + local.microsecond / 1e6
        floor.now = max(floor.now, at)  # the counters have been busy a little longer than the last event says
        waiting = floor.tickets.get(ticket) if ticket is not None else None
        if waiting is not None and waiting.status == WAITING:
            p = predictor.predict(floor, [waiting])[0]
            elapsed = max(0.0, floor.now - waiting.issued)  # a reprint shows the wait from now on
        else:
            elapsed = 0.0
            with floor.hypothetical(service) as new:
                p = predictor.predict(floor, [new])[0]
        self.answers["learned"] += 1
        if math.isinf(p.p10):
            return UNREACHABLE
        return WaitRange(max(0.0, p.mean - elapsed), max(0.0, p.p10 - elapsed), max(0.0, p.p90 - elapsed))
