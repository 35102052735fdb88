"""Training each office's predictor from its past days in central's store, off the message path.

Owns which history a predictor learns from (the office's stored business days in the
`history_days` calendar days before the day it will predict) and the choice of predictor: the
calibrated `best` (office.waittime.train) once the office has MIN_HISTORY_DAYS days, else the
`capacity` baseline (the estimate the office's own gateway prints today), learned from what
there is. `fallback()` is that baseline with nothing learned: what an office starts with.

`Trainer` is a thread of the worker's process with its own store connection (a store object
belongs to one thread). Training an office takes up to a few seconds of CPU (reading its days,
learning, the calibration's replays); in the thread it never holds the worker's loop: CPython
switches threads every few milliseconds, so messages are still taken and stored meanwhile, only
more slowly. Jobs are taken one office at a time, each office's latest request only, and each
result goes back through a queue the worker drains in its own thread, where the predictor is
swapped in.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from central.store import EventStore, open_store
from office.waittime import Predictor, RecordError, read_record, train
from office.waittime import records as r

MIN_HISTORY_DAYS = 3  # fewer stored days than this: the baseline, not `best`
FALLBACK = "capacity"
DEFAULT_HISTORY_DAYS = 60

_log = logging.getLogger(__name__)


def fallback() -> Predictor:
    """The baseline with nothing learned (instant): an office's predictor until it is trained."""
    return train(FALLBACK, [])


def history(store: EventStore, office: str, before: str, days: int) -> list[list[r.Event]]:
    """The office's stored business days among the `days` calendar days before `before`
    (YYYY-MM-DD), oldest first, each as the predictor's events. Records the predictor's reader
    refuses are left out (they were logged when they arrived)."""
    end = date.fromisoformat(before)
    out: list[list[r.Event]] = []
    for back in range(days, 0, -1):
        events: list[r.Event] = []
        for record in store.read_day(office, end - timedelta(days=back)):
            try:
                event = read_record(record)
            except RecordError:
                continue
            if event is not None:
                events.append(event)
        if events:
            out.append(events)
    return out


def learn(store: EventStore, office: str, before: str, days: int) -> tuple[Predictor, int]:
    """The office's predictor for the day `before`, and how many past days it learned from."""
    past = history(store, office, before, days)
    name = "best" if len(past) >= MIN_HISTORY_DAYS else FALLBACK
    return train(name, past), len(past)


@dataclass(frozen=True, slots=True)
class Trained:
    office: str
    day: str  # the business day it predicts (its history ends the day before)
    predictor: Predictor | None  # None: training failed (logged); the office keeps what it has
    days: int
    seconds: float


class Trainer:
    """The worker's training thread (see the module docstring). `request(office, day)` from the
    worker's thread; results in `done`, with `wake()` called after each."""

    def __init__(self, store_url: str, history_days: int, wake: Callable[[], None]) -> None:
        self.store_url = store_url
        self.history_days = history_days
        self.done: queue.SimpleQueue[Trained] = queue.SimpleQueue()
        self._wake = wake
        self._jobs: dict[str, str] = {}  # office -> day, the latest request per office
        self._lock = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="central-trainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, office: str, day: str) -> None:
        with self._lock:
            self._jobs[office] = day
            self._lock.notify()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._jobs)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the office under way (a daemon thread: a long one does not hold the exit)."""
        with self._lock:
            self._stopping = True
            self._jobs.clear()
            self._lock.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next(self) -> tuple[str, str] | None:
        with self._lock:
            while not self._jobs and not self._stopping:
                self._lock.wait()
            if self._stopping:
                return None
            office = next(iter(self._jobs))
            return office, self._jobs.pop(office)

    def _run(self) -> None:
        store: EventStore | None = None
        try:
            while (job := self._next()) is not None:
                office, day = job
                began = time.perf_counter()
                try:
                    if store is None:
                        store = open_store(self.store_url)
                    predictor, days = learn(store, office, day, self.history_days)
                except Exception:  # a store that went away, or a predictor that failed on odd data
                    _log.exception("office %s: training for %s failed; it keeps its predictor", office, day)
                    if store is not None:
                        store.close()
                        store = None
                    result = Trained(office, day, None, 0, time.perf_counter() - began)
                else:
                    result = Trained(office, day, predictor, days, time.perf_counter() - began)
                self.done.put(result)
                self._wake()
        finally:
            if store is not None:
                store.close()
