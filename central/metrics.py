"""Prometheus `/metrics` for one central worker (`counterfloor central --metrics-port`).

Owns the worker's figures only, published as gateway.metrics publishes the gateway's: the worker's
loop builds an immutable `WorkerFigures` after a turn (at most once every PUBLISH_EVERY_S) and
stores it in one attribute; prometheus_client's HTTP thread renders the last one stored, so a
scrape never reads the worker's dicts while its loop changes them, and never blocks a turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from central.worker import CentralWorker

PUBLISH_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class OfficeFigures:
    seq: int  # every seq up to it stored and applied
    applied: int  # events applied since the worker started
    published: int  # estimate publications (clears included)
    computed: int  # estimate rounds
    replays: int  # replay requests made
    waiting: int  # messages waiting for the worker
    online: bool | None  # the gateway's birth (True) or death (False) as last seen


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    worker: str  # "0/1"
    offices: dict[str, OfficeFigures] = field(default_factory=dict)
    store_up: bool = False
    store_failures: int = 0
    broker: bool = False
    broker_connections: int = 0
    problems: int = 0  # messages dropped as malformed or refused, logged by office
    turns: int = 0
    longest_turn_gap_s: float = 0.0  # since the last publication: how late the loop came round

    def status_line(self) -> str:
        waiting = sum(o.waiting for o in self.offices.values())
        store = "store up" if self.store_up else "store DOWN (reopening)"
        broker = "broker connected" if self.broker else "broker NOT connected"
        return f"worker {self.worker}: {len(self.offices)} offices, {waiting} messages waiting; {store}; {broker}"


class CentralMetrics:
    """The loop's side: `tick(worker)` after each turn (from the worker's own thread)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.latest: WorkerFigures | None = None  # replaced whole: the HTTP thread's only input
        self.turns = 0
        self.store_failures = 0
        self.broker_connections = 0
        self._store_was_up = True
        self._broker_was_up = False
        self._last_turn: float | None = None
        self._gap = 0.0
        self._next = 0.0

    def tick(self, worker: CentralWorker) -> None:
        now = self.clock()
        self.turns += 1
        if self._last_turn is not None:
            self._gap = max(self._gap, now - self._last_turn)
        self._last_turn = now
        # A failed store is closed (None) and reopened after at least 0.5 s, so a turn sees it down.
        store_up = worker.store is not None
        self.store_failures += self._store_was_up and not store_up
        self._store_was_up = store_up
        broker = worker.link is not None and worker.link.connected
        self.broker_connections += broker and not self._broker_was_up
        self._broker_was_up = broker
        if now < self._next:
            return
        self._next = now + PUBLISH_EVERY_S
        queues = worker._queues  # read in the worker's thread; paho's only appends under the lock
        offices = {
            o: OfficeFigures(
                s.applied,
                s.figures.applied,
                s.figures.published,
                s.figures.computed,
                s.figures.replays,
                len(queues.get(o, ())),
                s.online,
            )
            for o, s in worker.offices.items()
        }
        self.latest = WorkerFigures(
            str(worker.partition),
            offices,
            store_up,
            self.store_failures,
            broker,
            self.broker_connections,
            worker.problems.count,
            self.turns,
            self._gap,
        )
        self._gap = 0.0


class CentralCollector(Collector):
    def __init__(self, metrics: CentralMetrics) -> None:
        self.metrics = metrics

    def published(self) -> object:
        """The figures a scrape would render now (a new object whenever they change)."""
        return self.metrics.latest

    def collect(self) -> Iterator[Metric]:
        f = self.metrics.latest
        if f is None:
            return
        w = f.worker
        per_office = (
            ("counterfloor_central_office_seq", "Every seq up to it is stored and applied", "seq", GaugeMetricFamily),
            (
                "counterfloor_central_events_stored",
                "Events stored and applied, per office, since the worker started",
                "applied",
                CounterMetricFamily,
            ),
            (
                "counterfloor_central_estimates_published",
                "Estimate publications (clears included), per office",
                "published",
                CounterMetricFamily,
            ),
            ("counterfloor_central_replays_asked", "Replay requests made, per office", "replays", CounterMetricFamily),
            (
                "counterfloor_central_messages_waiting",
                "Messages waiting for the worker, per office (its lag, in messages)",
                "waiting",
                GaugeMetricFamily,
            ),
        )
        for name, doc, attr, kind in per_office:
            family = kind(name, doc, labels=["worker", "office"])
            for office, figures in f.offices.items():
                family.add_metric([w, office], float(getattr(figures, attr)))
            yield family
        online = GaugeMetricFamily(
            "counterfloor_central_gateway_online", "1 if the office's gateway's birth was seen last", labels=["office"]
        )
        for office, figures in f.offices.items():
            if figures.online is not None:
                online.add_metric([office], float(figures.online))
        yield online
        for name, doc, value, kind in (
            ("counterfloor_central_store_up", "1 while the event store is open", float(f.store_up), GaugeMetricFamily),
            (
                "counterfloor_central_store_failures",
                "Times the event store failed and was reopened",
                f.store_failures,
                CounterMetricFamily,
            ),
            ("counterfloor_central_broker_connected", "1 while connected", float(f.broker), GaugeMetricFamily),
            (
                "counterfloor_central_broker_connections",
                "Connections made to the broker",
                f.broker_connections,
                CounterMetricFamily,
            ),
            (
                "counterfloor_central_problems",
                "Messages dropped: malformed, refused by the store, or conflicting",
                f.problems,
                CounterMetricFamily,
            ),
            ("counterfloor_central_turns", "Turns of the worker's loop", f.turns, CounterMetricFamily),
            (
                "counterfloor_central_turn_gap_seconds",
                "The longest time between two turns over the last second (the loop's lag)",
                f.longest_turn_gap_s,
                GaugeMetricFamily,
            ),
        ):
            family = kind(name, doc, labels=["worker"])
            family.add_metric([w], float(value))
            yield family
