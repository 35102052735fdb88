"""The learned wait estimate on the gateway (office/waittime/estimator.py) and its learning.

Owns putting a `LearnedEstimator` under the office model the journal holds (at start and after a
config change), and learning its predictor from the journal's own past days in a process of its
own, with its own read-only connection, so the floor's loop never waits for it: at start and
when a new business day begins. Until the first predictor is learned (a new journal, or too
little history), the capacity estimate answers. Central's per-service estimates reach it from
the broker link (gateway.mqtt_link).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from gateway.journal import JournalError, JournalReader, TicketJournal
from office.waittime import Predictor, split_days, train
from office.waittime.estimator import LearnedEstimator
from office.waittime.records import Event as RecordEvent
from office.waittime.records import from_events

_log = logging.getLogger(__name__)

HISTORY_DAYS = 60  # calendar days of the journal's past the predictor learns from
MIN_DAYS = 2  # fewer past business days than this: the capacity estimate goes on answering


def install(journal: TicketJournal, predictor: Predictor | None = None) -> LearnedEstimator:
    """A learned estimator under the journal's office model, reading today's events from it."""
    office = journal.office
    day = office.state.day
    start = journal.seq_before_day(day) if day is not None else office.state.last_seq
    estimator = LearnedEstimator(office.config, journal.events_after, predictor, start_seq=start)
    office.estimator = estimator
    return estimator


def history(path: Path, before: date, office: str, days: int = HISTORY_DAYS) -> list[list[RecordEvent]]:
    """The journal's business days in the `days` before `before`, as the predictor reads them."""
    with JournalReader(path) as reader:
        events = reader.events(first_day=before - timedelta(days=days), last_day=before - timedelta(days=1))
        return split_days(from_events(events, office))


def learn(path: Path, day: date, office: str) -> tuple[Predictor | None, int]:
    """In the learning process: the predictor from the journal's days before `day` (None with
    fewer than MIN_DAYS of them), and how many days it had."""
    days = history(path, day, office)
    if len(days) < MIN_DAYS:
        return None, len(days)
    return train("best", days), len(days)


class Learning:
    """Learns a predictor from the journal at `path` in a process of its own (learning is pure
    Python: in a thread it would hold the interpreter's lock against the bus loop for seconds,
    at the business day's start, when the floor opens); `step(day)` in the loop starts a run
    when `day` is new and hands a finished one to `deliver`."""

    def __init__(
        self,
        path: Path,
        office: str,
        deliver: Callable[[Predictor], None],
        past_days: Callable[[date, int], list[str]] | None = None,
    ) -> None:
        self.path = path
        self.office = office
        self.deliver = deliver
        # How many days the journal has before a day (TicketJournal.days_before): a journal with
        # fewer than MIN_DAYS starts no process (a new office; every test's journal).
        self.past_days = past_days
        self.learned_for: date | None = None  # the business day the last run was for
        self._run: tuple[ProcessPoolExecutor, Future[tuple[Predictor | None, int]], float] | None = None
        self.runs = 0  # figures (tests): runs finished, the last one's days and seconds
        self.last_days = 0
        self.last_seconds = 0.0

    def step(self, day: date | None) -> None:
        if self._run is not None and self._run[1].done():
            self._finish()
        if day is None or day == self.learned_for or self._run is not None:
            return
        self.learned_for = day
        if self.past_days is not None and len(self.past_days(day, MIN_DAYS)) < MIN_DAYS:
            return
        # spawn, not fork: the gateway has threads (paho's, the signs') a fork would copy mid-step.
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._run = (pool, pool.submit(learn, self.path, day, self.office), time.monotonic())

    def wait(self, timeout: float) -> bool:
        """Until the run under way is over (tests); True if none is running or it finished."""
        if self._run is None:
            return True
        try:
            self._run[1].result(timeout)
        except TimeoutError:
            return False
        except Exception:
            pass  # reported by step
        return True

    def close(self) -> None:
        if self._run is not None:
            self._run[0].shutdown(wait=False, cancel_futures=True)
            self._run = None

    def _finish(self) -> None:
        assert self._run is not None
        pool, future, started = self._run
        self._run = None
        pool.shutdown(wait=False)
        try:
            predictor, days = future.result()
        except (JournalError, OSError, ValueError) as exc:
            _log.warning("wait estimate: learning from the journal failed (%s); the last estimate stands", exc)
            return
        except Exception:  # a bug in learning (or a killed process) must not take the gateway down with it
            _log.exception("wait estimate: learning failed; the last estimate stands")
            return
        self.runs += 1
        self.last_days, self.last_seconds = days, time.monotonic() - started
        if predictor is None:
            _log.info("wait estimate: %d past day(s) in the journal; the capacity estimate answers", days)
            return
        _log.info("wait estimate: learned from %d past days in %.1f s", days, self.last_seconds)
        self.deliver(predictor)
