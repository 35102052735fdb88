"""`counterfloor central`: its worker processes, started, stopped and restarted.

Owns the processes only. With one worker to run, it runs in this process; with more, each is a
process of its own (multiprocessing, spawn: nothing of this process's threads or connections is
copied), given its partition index, and this process supervises them: a worker that dies is
started again after a back-off (1 s doubling to 60 s; reset once it has run a minute), and
SIGTERM or SIGINT stops them all (SIGTERM to each, SIGKILL to one still running after
STOP_WAIT_S) before this process exits. That is the whole of it: partitions are configuration
(`--workers N`, and `--run-workers` for the indexes this host runs), not negotiated — on a bigger
deployment systemd (or any process manager) runs this on each host, and the broker cluster and
the PostgreSQL service do the rest (docs/operations.md, "Central").
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from central.metrics import CentralCollector, CentralMetrics
from central.office_state import OfficeState
from central.worker import CentralWorker, WorkerConfig
from gateway.bus import Backoff
from gateway.heap import tune_malloc
from gateway.metrics import DEFAULT_ADDRESS, MetricsServer, serve_metrics
from gateway.sd_notify import Notifier

STOP_WAIT_S = 10.0  # a worker's clean stop (its store closed, its DISCONNECT sent) takes far less
STABLE_S = 60.0  # a worker that ran this long restarts its back-off from the first delay
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebOptions:
    """The residents' web pages (central/web, docs/web.md), served by each worker for its offices:
    worker i on `port` + i (0: any free port). `forecaster`: a central.web.Forecaster for the
    public page (None: the stand-in); it is pickled into each worker process when there are
    several. `office_configs`: config files whose office, service and counter names pages use."""

    port: int
    address: str = DEFAULT_ADDRESS
    office_configs: tuple[str, ...] = ()
    forecaster: Any = None
    users: str | None = None  # the facilities staff's users file (central/web/auth.py): the dashboard too
    clock: Any = None  # the pages' "now" (aware datetime; None: the real one): the demo's simulated day
    push_key: str | None = None  # the VAPID private key file (made if absent): Web Push offered (docs/alerts.md)
    push_contact: str | None = None  # the VAPID "sub": a mailto: or https: contact for the push services

    def for_worker(self, index: int) -> WebOptions:
        return replace(self, port=self.port + index if self.port else 0)


class TurnFlag(threading.Event):
    """The stop flag CentralWorker.run checks once per turn: that check is the turn's heartbeat,
    so `beat` (systemd's watchdog ping, the metrics' figures) runs in the loop's own thread and
    stops when a turn hangs."""

    def __init__(self, beat: Callable[[], None]) -> None:
        super().__init__()
        self._beat = beat

    def is_set(self) -> bool:
        self._beat()
        return super().is_set()


def run_worker(
    config: WorkerConfig,
    notifier: Notifier | None = None,
    metrics_port: int | None = None,
    metrics_address: str = DEFAULT_ADDRESS,
    web: WebOptions | None = None,
) -> int:
    """One worker in this process until SIGTERM or SIGINT (exit 0). StoreError if its store
    cannot be opened; OSError if `metrics_port` cannot be served. `notifier`: systemd's, when
    this worker is the service's main process. `web`: serve the residents' pages too."""
    tune_malloc()  # before its threads start: it runs for months (gateway.heap)
    notify = notifier or Notifier()
    metrics = CentralMetrics() if notify.enabled or metrics_port is not None else None
    pages = WebPages(web, config.store_url) if web is not None else None
    desk = pages.desk if pages is not None else None
    worker = CentralWorker(config, on_round=pages.show if pages is not None else None, desk=desk)

    def beat() -> None:
        if metrics is not None:
            metrics.tick(worker)
        notify.alive(lambda: metrics.latest.status_line() if metrics and metrics.latest else "running")

    stop = TurnFlag(beat)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        worker.wake()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server: MetricsServer | None = None
    try:
        if metrics is not None and metrics_port is not None:
            try:
                server = serve_metrics(CentralCollector(metrics), metrics_port, metrics_address)
            except OSError as exc:
                _log.error(
                    "central %s: cannot serve metrics on %s:%d: %s", worker.name, metrics_address, metrics_port, exc
                )
                return 1
            _log.info("central %s: metrics on http://%s:%d/metrics", worker.name, metrics_address, server.port)
        if pages is not None:
            try:
                pages.start()
            except OSError as exc:
                _log.error("central %s: %s", worker.name, exc)
                return 1
            _log.info("central %s: web pages on %s/", worker.name, pages.url)
        worker.start()
        notify.ready(f"worker {worker.partition}: {len(worker.offices)} offices rebuilt; connecting to the broker")
        worker.run(stop)
    finally:
        notify.stopping(f"worker {worker.partition}: stopping")
        worker.close()
        if server is not None:
            server.close()
        if pages is not None:
            pages.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _log.info("central %s: stopped", worker.name)
    return 0


@contextmanager
def worker_thread(
    worker: CentralWorker, name: str = "central worker", timeout: float = 30.0
) -> Iterator[CentralWorker]:
    """`worker` started and turning in a thread of its own (its store is opened in that thread,
    which alone may use it: tests, the demo), stopped and closed on the way out; an error of its
    start (StoreError) is raised here."""
    stop, ready = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            worker.start()
        except BaseException as exc:  # raised again in the caller's thread
            failed.append(exc)
            ready.set()
            return
        ready.set()
        try:
            worker.run(stop)
        finally:
            worker.close()

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    ready.wait(timeout)
    if failed:
        raise failed[0]
    try:
        yield worker
    finally:
        stop.set()
        worker.wake()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"{name} did not stop within {timeout:.0f} s")


class WebPages:
    """A worker's web server and the hub its estimate rounds feed (imported only when used)."""

    def __init__(self, options: WebOptions, store_url: str) -> None:
        from central.web import ViewHub, WebServer, create_app
        from central.web.auth import Staff
        from central.web.commands import CommandDesk
        from central.web.learned_forecast import LearnedForecaster
        from central.web.names import Names
        from central.web.view import office_view
        from office.config import load_config

        self.hub = ViewHub()
        self._view = office_view
        names = Names.from_configs(options.office_configs)
        forecaster = options.forecaster
        if forecaster is None and options.office_configs:
            # The offices' calendars are known: forecasts learned from this store's past days.
            configs = [load_config(path) for path in options.office_configs]
            forecaster = LearnedForecaster(store_url, {c.id: c for c in configs})
        self._learned = forecaster if isinstance(forecaster, LearnedForecaster) else None
        staff = Staff.from_file(options.users) if options.users is not None else None
        # The dashboard's commands, handed to the worker's thread (and their acks back).
        self.desk = CommandDesk() if staff is not None else None
        clock = {"clock": options.clock} if options.clock is not None else {}
        self.alerts = Alerts(self.hub, store_url, names, options)
        app = create_app(self.hub, forecaster, names, staff=staff, desk=self.desk, alerts=self.alerts.web, **clock)
        self.server = WebServer(app, options.address, options.port)

    def show(self, state: OfficeState) -> None:
        self.hub.publish(self._view(state))

    def start(self) -> None:
        self.alerts.start()
        self.server.start()
        if self._learned is not None:
            self._learned.refresh()  # the first learning, in its own thread, while pages already serve

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.server.close()
        self.alerts.close()


class Alerts:
    """The residents' alerts of a worker's pages (docs/alerts.md): the service, its outboxes —
    Web Push when given a VAPID key, e-mail for each office whose config has a relay."""

    def __init__(self, hub: Any, store_url: str, names: Any, options: WebOptions) -> None:
        from central.alerts.mail import MailChannel
        from central.alerts.outbox import Outbox
        from central.alerts.service import AlertService
        from central.alerts.webpush import PushChannel, VapidKeys
        from central.web.alerts_api import AlertsWeb

        self.outboxes: dict[tuple[str, str], Outbox] = {}
        push: Outbox | None = None
        key: str | None = None
        if options.push_key is not None:
            keys = VapidKeys.load_or_create(options.push_key)
            key = keys.application_server_key
            push = Outbox(PushChannel(keys, options.push_contact or ""), on_gone=self._gone("push"))
        for office, settings in names.alerts.items():
            if settings.mail is not None:
                channel = MailChannel(settings.mail, names.config_dirs[office])
                self.outboxes[office, "mail"] = Outbox(channel, on_gone=self._gone("mail"))

        def outbox(office: str, channel: str) -> Outbox | None:
            return push if channel == "push" else self.outboxes.get((office, channel))

        self.push = push
        clock = {"clock": options.clock} if options.clock is not None else {}
        self.service = AlertService(hub, store_url, names, outbox, **clock)
        mail_offices = frozenset(office for office, _ in self.outboxes)
        self.web = AlertsWeb(self.service, push_key=key, mail_offices=mail_offices)

    def _gone(self, channel: str) -> Any:
        return lambda notice, target: self.service.gone(notice, channel, target)

    def start(self) -> None:
        self.service.start()

    def close(self) -> None:
        self.service.close()
        for outbox in [*self.outboxes.values(), *([self.push] if self.push is not None else [])]:
            outbox.close()


def _child(
    config: WorkerConfig, level: int, metrics_port: int | None, metrics_address: str, web: WebOptions | None
) -> None:
    """A worker process's entry (spawned)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    raise SystemExit(run_worker(config, None, metrics_port, metrics_address, web))


def run_central(
    config: WorkerConfig,
    indexes: Sequence[int],
    metrics_port: int | None = None,
    metrics_address: str = DEFAULT_ADDRESS,
    web: WebOptions | None = None,
) -> int:
    """Run the workers `indexes` of `config.workers` until SIGTERM or SIGINT; exit status 0.
    `metrics_port`: worker i serves /metrics on metrics_port + i (0: any free port); `web`: worker
    i serves the residents' pages of its offices on web.port + i. systemd is
    notified by this process (gateway.sd_notify): by the worker's loop when it runs one, else
    by the supervising loop, which sees a worker die but not hang."""
    notifier = Notifier.from_env()  # removed from the environment: spawned workers never notify
    if len(indexes) == 1:
        web_i = web.for_worker(indexes[0]) if web is not None else None
        return run_worker(replace(config, index=indexes[0]), notifier, metrics_port, metrics_address, web_i)
    level = logging.getLogger().getEffectiveLevel()
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    procs: dict[int, BaseProcess] = {}
    started: dict[int, float] = {}
    backoffs = {i: Backoff(first=1.0, limit=60.0) for i in indexes}
    due: dict[int, float] = dict.fromkeys(indexes, 0.0)
    ready = False
    try:
        while not stop.is_set():
            now = time.monotonic()
            for i in indexes:
                proc = procs.get(i)
                if proc is not None and not proc.is_alive():
                    proc.join()
                    if now - started[i] >= STABLE_S:
                        backoffs[i].reset()
                    delay = backoffs[i].next_delay()
                    _log.error(
                        "central: worker %d/%d exited with %s; started again in %.0f s",
                        *(i, config.workers, proc.exitcode, delay),
                    )
                    due[i] = now + delay
                    del procs[i]
                if i not in procs and now >= due[i]:
                    port = None if metrics_port is None else (metrics_port + i if metrics_port else 0)
                    proc = ctx.Process(
                        target=_child,
                        args=(
                            replace(config, index=i),
                            level,
                            port,
                            metrics_address,
                            web.for_worker(i) if web is not None else None,
                        ),
                        name=f"central-worker-{i}",
                        daemon=False,
                    )
                    proc.start()
                    procs[i], started[i] = proc, now
                    _log.info("central: worker %d/%d started (pid %s)", i, config.workers, proc.pid)
            if not ready:
                ready = True
                notifier.ready(f"{len(procs)} of {len(indexes)} workers started")
            notifier.alive(lambda: f"{len(procs)} of {len(indexes)} workers running")
            # Wakes when a worker exits; the timeout bounds how late a signal or a restart is seen.
            wait([p.sentinel for p in procs.values()], timeout=0.5)
    finally:
        notifier.stopping("stopping the workers")
        _stop_all(list(procs.values()))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _log.info("central: stopped")
    return 0


def _stop_all(procs: list[BaseProcess]) -> None:
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            _log.error("central: worker pid %s did not stop within %.0f s; killed", proc.pid, STOP_WAIT_S)
            proc.kill()
            proc.join()
