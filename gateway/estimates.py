"""The learned wait estimate on the gateway (office/waittime/estimator.py) and its learning.

Owns putting a `LearnedEstimator` under the office model the journal holds (at start and after a
config change), and learning its predictor from the journal's own past days in a thread of its
own, with its own read-only connection, so the floor's loop never waits for it: at start and
when a new business day begins. Until the first predictor is learned (a new journal, or too
little history), the capacity estimate answers. Central's per-service estimates reach it from
the broker link (gateway.mqtt_link).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from gateway.journal import JournalError, JournalReader, TicketJournal
from office import events as ev
from office.waittime import Predictor, read_record, split_days, train
from office.waittime.estimator import LearnedEstimator
from office.waittime.records import Event as RecordEvent
from office.waittime.records import RecordError

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
    records: list[RecordEvent] = []
    with JournalReader(path) as reader:
        for event in reader.events(first_day=before - timedelta(days=days), last_day=before - timedelta(days=1)):
            try:
                record = read_record(ev.public_record(event, office))
            except RecordError:
                continue  # one unreadable record costs the predictor that record, nothing more
            if record is not None:
                records.append(record)
    return split_days(records)


class Learning:
    """Learns a predictor from the journal at `path` off the loop; `step(day)` in the loop starts
    a run when `day` is new and hands a finished one to `deliver`."""

    def __init__(self, path: Path, office: str, deliver: Callable[[Predictor], None]) -> None:
        self.path = path
        self.office = office
        self.deliver = deliver
        self.learned_for: date | None = None  # the business day the last run was for
        self._thread: threading.Thread | None = None
        self._result: Predictor | None = None
        self._lock = threading.Lock()
        self.runs = 0  # figures (tests): runs finished, the last one's days and seconds
        self.last_days = 0
        self.last_seconds = 0.0

    def step(self, day: date | None) -> None:
        with self._lock:
            result, self._result = self._result, None
        if result is not None:
            self.deliver(result)
        if day is None or day == self.learned_for or (self._thread is not None and self._thread.is_alive()):
            return
        self.learned_for = day
        self._thread = threading.Thread(target=self._learn, args=(day,), name="wait-learning", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Until the run under way is over (tests, the demo); True if none is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _learn(self, day: date) -> None:
        started = time.monotonic()
        try:
            days = history(self.path, day, self.office)
            if len(days) < MIN_DAYS:
                _log.info("wait estimate: %d past day(s) in the journal; the capacity estimate answers", len(days))
                return
            predictor = train("best", days)
        except (JournalError, OSError, ValueError) as exc:
            _log.warning("wait estimate: learning from the journal failed (%s); the last estimate stands", exc)
            return
        except Exception:  # a bug in learning must not take the gateway down with it
            _log.exception("wait estimate: learning failed; the last estimate stands")
            return
        self.last_days, self.last_seconds = len(days), time.monotonic() - started
        _log.info("wait estimate: learned from %d past days in %.1f s", self.last_days, self.last_seconds)
        with self._lock:
            self._result = predictor
            self.runs += 1
