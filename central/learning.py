"""Training each office's predictor from its past days in central's store, off the message path.

Owns which history a predictor learns from (the office's stored business days in the
`history_days` calendar days before the day it will predict) and the choice of predictor: the
calibrated `best` (office.waittime.train) once the office has MIN_HISTORY_DAYS days, else the
`capacity` baseline (the estimate the office's own gateway prints today), learned from what
there is. `fallback()` is that baseline with nothing learned: what an office starts with.

`Trainer` is a thread of the worker's process that hands each job to a training process of its
own (spawned, with its own store connection) and waits for its answer. Training an office reads
up to `history_days` of its events and replays them for the calibration: seconds of CPU and
megabytes of short-lived objects, growing with the history. In the worker's own process those
would leave its heap as large as the largest training's (CPython's allocator keeps an arena as
long as any object in it lives, and the worker's loop allocates its long-lived objects
meanwhile): the soak's month saw central's resident memory grow by about 1 MB a day from this
alone (bench/soak.py). In the training process that memory goes back to the system when it
ends: it is started for a batch of jobs (at start, and as each office's business day begins)
and stopped once no job waits. Nor does it hold the worker's loop: it runs on another core.
Jobs are taken one office at a time, each office's latest request only, and each result goes
back through a queue the worker drains in its own thread, where the predictor is swapped in.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from central.store import EventStore, open_store
from office.waittime import Predictor, RecordError, read_record, train
from office.waittime import records as r

MIN_HISTORY_DAYS = 3  # fewer stored days than this: the baseline, not `best`
FALLBACK = "capacity"
DEFAULT_HISTORY_DAYS = 60
STOP_WAIT_S = 5.0  # the training process's clean exit (its store closed) once told; else it is killed

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


class TrainingError(Exception):
    """The training process failed a job (its traceback in the message) or ended without an answer."""


def _serve(conn: Connection, store_url: str, history_days: int) -> None:
    """The training process: jobs (office, day) from `conn`, each answered with (predictor, days)
    or the failure's traceback as text; it ends when told (None) or when the worker's end of the
    pipe is gone (the worker died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops it (a Ctrl-C reaches the whole group)
    store: EventStore | None = None
    try:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            office, day = job
            try:
                if store is None:
                    store = open_store(store_url)
                answer: tuple[Predictor, int] | str = learn(store, office, day, history_days)
            except Exception:  # a store that went away, or a predictor that failed on odd data
                if store is not None:
                    store.close()
                    store = None
                answer = traceback.format_exc()
            conn.send(answer)
    finally:
        if store is not None:
            store.close()


@dataclass(slots=True)
class _Child:
    process: BaseProcess
    conn: Connection


class Trainer:
    """The worker's training thread and its training process (see the module docstring).
    `request(office, day)` from the worker's thread; results in `done`, with `wake()` called
    after each."""

    def __init__(self, store_url: str, history_days: int, wake: Callable[[], None]) -> None:
        self.store_url = store_url
        self.history_days = history_days
        self.done: queue.SimpleQueue[Trained] = queue.SimpleQueue()
        self._wake = wake
        self._jobs: dict[str, str] = {}  # office -> day, the latest request per office
        self._lock = threading.Condition()
        self._stopping = False
        self._child: _Child | None = None  # the training process, while jobs wait (under _lock)
        self.processes = 0  # training processes started (tests, figures)
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

    @property
    def training(self) -> bool:
        """Whether the training process is running (it runs while jobs wait)."""
        with self._lock:
            return self._child is not None

    def stop(self, timeout: float = 2.0) -> None:
        """Stop: the office under way is given up (its training process killed)."""
        with self._lock:
            self._stopping = True
            self._jobs.clear()
            child = self._child
            self._lock.notify()
        if child is not None:
            child.process.terminate()  # the thread waiting for its answer sees it end
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
        try:
            while (job := self._next()) is not None:
                office, day = job
                began = time.perf_counter()
                try:
                    predictor, days = self._learn(office, day)
                except TrainingError as exc:
                    if not self._stopping:
                        _log.error("office %s: training for %s failed; it keeps its predictor: %s", office, day, exc)
                    result = Trained(office, day, None, 0, time.perf_counter() - began)
                except Exception:  # the process could not start, or its answer could not be read
                    _log.exception("office %s: training for %s failed; it keeps its predictor", office, day)
                    self._end_child()
                    result = Trained(office, day, None, 0, time.perf_counter() - began)
                else:
                    result = Trained(office, day, predictor, days, time.perf_counter() - began)
                if not self.pending:
                    self._end_child()  # nothing waits: its memory goes back to the system
                self.done.put(result)
                self._wake()
        finally:
            self._end_child()

    def _learn(self, office: str, day: str) -> tuple[Predictor, int]:
        """`learn` in the training process (started if it is not running)."""
        child = self._child_for_job()
        if child is None:
            raise TrainingError("stopping")
        try:
            child.conn.send((office, day))
            # Its answer, or its end (killed, or stop() terminated it): whichever comes first.
            wait([child.conn, child.process.sentinel])
            answer = child.conn.recv() if child.conn.poll() else None
        except (EOFError, OSError):  # it ended before the job or its answer was through
            answer = None
        if answer is None:
            self._end_child()
            raise TrainingError(f"the training process ended (exit code {child.process.exitcode})")
        if isinstance(answer, str):
            raise TrainingError(answer.rstrip())
        predictor, days = answer
        return predictor, days

    def _child_for_job(self) -> _Child | None:
        """The training process (only this thread starts and ends it); None once stopping."""
        with self._lock:
            if self._stopping:
                return None
            if self._child is not None:
                return self._child
        # spawn, not fork: the worker has threads (paho's, the web's) a fork would copy mid-step.
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        process = ctx.Process(
            target=_serve, args=(theirs, self.store_url, self.history_days), name="central-training", daemon=True
        )
        process.start()
        theirs.close()
        child = _Child(process, ours)
        with self._lock:
            self._child = child
            self.processes += 1
            stopping = self._stopping
        if stopping:  # stop() came while it started: it saw no process to end
            process.terminate()
        return child

    def _end_child(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):  # (it may be gone already)
            child.conn.send(None)
        child.process.join(STOP_WAIT_S)
        if child.process.is_alive():
            child.process.kill()
            child.process.join()
        child.conn.close()
