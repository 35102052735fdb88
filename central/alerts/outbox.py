"""A channel's deliveries, off the event path: submitted without waiting, sent by the outbox's own
threads, retried with backoff until a deadline.

Owns when a delivery is tried. `submit` never blocks and never raises for a full outbox (it counts
the drop): the engine that submits runs beside the worker's event path. A few threads take due
deliveries from one heap, so a delivery waiting on a slow relay, or one waiting for its retry,
never holds back the others. A retry is tried again after 1, 2, 4 … s (at most MAX_BACKOFF_S, or
when the other side asked), and given up once its notice is older than its deadline: a "your
turn is near" an hour late helps nobody.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from central.alerts.notice import Channel, Failed, Gone, Notice, Retry

THREADS = 4  # deliveries in flight at once, per channel
LIMIT = 10_000  # deliveries held at once, per channel (1,000 subscribed tickets × a few alerts)
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
DEADLINE_S = {"near": 600.0, "called": 300.0, "no_show": 1800.0}  # after this, a retry is dropped
_log = logging.getLogger(__name__)


@dataclass(order=True, slots=True)
class _Job:
    due: float
    order: int
    notice: Notice = field(compare=False)
    target: str = field(compare=False)
    submitted: float = field(compare=False)
    attempts: int = field(default=0, compare=False)


@dataclass(slots=True)
class OutboxCounts:
    submitted: int = 0
    delivered: int = 0
    retried: int = 0
    given_up: int = 0  # past the deadline, or an unexpected error
    gone: int = 0
    dropped: int = 0  # submitted to a full outbox


class Outbox:
    """`submit(notice, target)` from any thread; `close()` stops the threads (deliveries not yet
    made are dropped: a notice is about now). `on_delivered(notice, target, seconds)` and
    `on_gone(notice, target)` are called from the outbox's threads."""

    def __init__(
        self,
        channel: Channel,
        *,
        threads: int = THREADS,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
        on_delivered: Callable[[Notice, str, float], None] | None = None,
        on_gone: Callable[[Notice, str], None] | None = None,
    ) -> None:
        self.channel = channel
        self.limit = limit
        self.clock = clock
        self.on_delivered = on_delivered
        self.on_gone = on_gone
        self.counts = OutboxCounts()
        self._heap: list[_Job] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"outbox-{channel.name}-{i}", daemon=True) for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def submit(self, notice: Notice, target: str) -> bool:
        """Queue a delivery; False (and counted) when the outbox is full or closed."""
        now = self.clock()
        with self._cond:
            if self._closed or len(self._heap) >= self.limit:
                self.counts.dropped += 1
                return False
            self.counts.submitted += 1
            heapq.heappush(self._heap, _Job(now, next(self._order), notice, target, now))
            self._cond.notify()
        return True

    def pending(self) -> int:
        """Deliveries queued or in flight."""
        with self._cond:
            return len(self._heap) + self._busy

    def wait_idle(self, timeout: float) -> bool:
        """Until nothing is queued or in flight (tests, a clean stop); False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)

    def _take(self) -> _Job | None:
        with self._cond:
            while not self._closed:
                if self._heap:
                    wait = self._heap[0].due - self.clock()
                    if wait <= 0:
                        self._busy += 1
                        return heapq.heappop(self._heap)
                    self._cond.wait(min(wait, 1.0))
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (job := self._take()) is not None:
            try:
                self._attempt(job)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _attempt(self, job: _Job) -> None:
        job.attempts += 1
        try:
            self.channel.deliver(job.notice, job.target)
        except Retry as exc:
            self._retry(job, exc)
            return
        except Gone:
            with self._cond:
                self.counts.gone += 1
            if self.on_gone is not None:
                self.on_gone(job.notice, job.target)
            return
        except Failed as exc:
            _log.warning(
                "%s: a %s alert of %s given up: %s", self.channel.name, job.notice.kind, job.notice.ticket, exc
            )
            with self._cond:
                self.counts.given_up += 1
            return
        except Exception:  # a channel's bug must not stop its outbox: logged, counted, given up
            _log.exception("%s: delivering a %s alert failed", self.channel.name, job.notice.kind)
            with self._cond:
                self.counts.given_up += 1
            return
        with self._cond:
            self.counts.delivered += 1
        if self.on_delivered is not None:
            self.on_delivered(job.notice, job.target, self.clock() - job.submitted)

    def _retry(self, job: _Job, exc: Retry) -> None:
        backoff = min(FIRST_BACKOFF_S * 2 ** (job.attempts - 1), MAX_BACKOFF_S)
        due = self.clock() + (exc.after_s if exc.after_s is not None else backoff)
        with self._cond:
            if due - job.submitted > DEADLINE_S[job.notice.kind] or self._closed:
                self.counts.given_up += 1
                _log.warning(
                    "%s: a %s alert given up after %d attempts: %s",
                    self.channel.name,
                    job.notice.kind,
                    job.attempts,
                    exc,
                )
                return
            self.counts.retried += 1
            job.due = due
            heapq.heappush(self._heap, job)
            self._cond.notify()
