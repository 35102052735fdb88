"""Prometheus `/metrics` for the gateway (`counterfloor gateway run --metrics-port`), and the HTTP
server central's metrics use too.

Owns the figures' publication only. The gateway's loop builds an immutable `Figures` at most once
every PUBLISH_EVERY_S (`GatewayMetrics.tick`, from the loop, between two turns) and stores it in
one attribute; the HTTP server's thread (a daemon) renders whatever `Figures` was stored last.
One reference assignment is atomic, so the loop never takes a lock and never waits for a scrape:
a scrape costs the loop only the GIL's share of the time the thread runs. That share is kept
small: the text is rendered once per `Figures` (and at least every RENDER_EVERY_S, for the
process's CPU and memory), and a scrape in between is served the bytes already made
(`CachedMetricsApp`), so however often Prometheus comes, the thread renders about once a second
(bench/metrics_bench.py). Figures are at most PUBLISH_EVERY_S old. It must not change anything on
the floor.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.service import Gateway

PUBLISH_EVERY_S = 1.0  # a scrape every 15 s (Prometheus's default) sees figures at most this old
RENDER_EVERY_S = 1.0  # a scrape's bytes are made again after this long even if the figures did not change
RENDERINGS_KEPT = 4  # request variants kept: text and OpenMetrics, each plain and gzipped
ESTIMATE_EVERY_S = 30.0  # the estimator is asked again after this long even if nothing happened
DEVICE_STATES = ("online", "stale", "offline")
LINK_ERRORS = ("failures", "retries", "timeouts", "crc_drops", "bad_frames", "resyncs", "restarts")
DEFAULT_ADDRESS = "127.0.0.1"  # a remote Prometheus needs --metrics-address: an explicit choice


@dataclass(frozen=True, slots=True)
class Figures:
    """What the gateway shows of itself at one moment (built in the loop's thread)."""

    office: str
    last_seq: int = 0
    waiting: dict[str, int] = field(default_factory=dict)  # service -> tickets waiting
    longest_wait_s: dict[str, float] = field(default_factory=dict)  # service -> oldest waiting ticket's wait
    estimate_s: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # service -> mean, p10, p90
    devices: dict[str, tuple[str, str]] = field(default_factory=dict)  # device -> (kind, state)
    link_errors: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> counter -> count
    printers: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # id -> (state, printed, failed)
    broker: bool | None = None  # connected; None: not publishing
    broker_connections: int = 0
    broker_attempts: int = 0
    events_published: int = 0
    turns: int = 0

    def status_line(self) -> str:
        """One line for `systemctl status` (STATUS=)."""
        online = sum(state == "online" for _, state in self.devices.values())
        waiting = sum(self.waiting.values())
        broker = "" if self.broker is None else ("; broker connected" if self.broker else "; broker NOT connected")
        stopped = [p for p, (state, _, _) in self.printers.items() if state == "stopped"]
        printers = f"; printer(s) stopped: {', '.join(stopped)}" if stopped else ""
        return (
            f"serving {self.office}: {online}/{len(self.devices)} devices online, {waiting} waiting, "
            f"seq {self.last_seq}{broker}{printers}"
        )


def gateway_figures(gw: Gateway, estimates: dict[str, tuple[float, float, float]], turns: int) -> Figures:
    """The figures of `gw` now (from the loop's thread: it reads the journal's state)."""
    journal = gw.journal
    if journal is None:
        return Figures(gw.config.id)
    state, config, wall = journal.office.state, journal.office.config, gw.wall()
    waiting: dict[str, int] = {}
    longest: dict[str, float] = {}
    for service in config.services:
        queue = state.queues.get(service.id, [])
        waiting[service.id] = len(queue)
        oldest = min((state.tickets[tid].issued_at for _, tid in queue), default=None)
        longest[service.id] = max(0.0, (wall - oldest).total_seconds()) if oldest is not None else 0.0
    status = gw.device_state()
    devices = {d: (v["kind"], v["state"]) for d, v in status["devices"].items()}
    errors = {d: {k: int(v[k]) for k in LINK_ERRORS} for d, v in status["devices"].items()}
    printers = {p: (v["state"], int(v["printed"]), int(v["failed"])) for p, v in status["printers"].items()}
    mqtt = gw.mqtt
    return Figures(
        config.id,
        state.last_seq,
        waiting,
        longest,
        estimates,
        devices,
        errors,
        printers,
        None if mqtt is None else mqtt.connected,
        0 if mqtt is None else mqtt.connections,
        0 if mqtt is None else mqtt.attempts,
        0 if mqtt is None else mqtt.events_published,
        turns,
    )


def current_estimates(gw: Gateway) -> dict[str, tuple[float, float, float]]:
    """Per service, the estimator's wait for a ticket issued now (what a dispenser would print)."""
    journal = gw.journal
    if journal is None:
        return {}
    office = journal.office
    state, wall = office.state, gw.wall()
    out: dict[str, tuple[float, float, float]] = {}
    for service in office.config.services:
        wait = office.estimator.estimate(state, service.id, len(state.queues.get(service.id, [])), wall)
        out[service.id] = (wait.mean_s, wait.p10_s, wait.p90_s)
    return out


class GatewayMetrics:
    """The loop's side: `tick(gw)` after each turn publishes new figures when due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.latest: Figures | None = None  # replaced whole, never changed: the thread's only input
        self.turns = 0
        self._next = 0.0
        self._estimates: dict[str, tuple[float, float, float]] = {}
        self._estimated_seq = -1
        self._estimate_at = 0.0

    def tick(self, gw: Gateway) -> None:
        self.turns += 1
        now = self.clock()
        if now < self._next:
            return
        self._next = now + PUBLISH_EVERY_S
        journal = gw.journal
        seq = journal.office.state.last_seq if journal is not None else -1
        # The learned estimator may take a millisecond a service: asked when the floor moved.
        if seq != self._estimated_seq or now >= self._estimate_at:
            self._estimates = current_estimates(gw)
            self._estimated_seq, self._estimate_at = seq, now + ESTIMATE_EVERY_S
        self.latest = gateway_figures(gw, self._estimates, self.turns)


class GatewayCollector(Collector):
    """Renders the last published Figures (in the HTTP server's thread)."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def published(self) -> object:
        """The figures a scrape would render now (a new object whenever they change)."""
        return self.metrics.latest

    def collect(self) -> Iterator[Metric]:
        f = self.metrics.latest  # one read: a consistent set of figures
        if f is None:
            return
        o = f.office
        yield _gauge(
            "counterfloor_queue_length",
            "Tickets waiting, per service",
            ["office", "service"],
            {(o, s): n for s, n in f.waiting.items()},
        )
        yield _gauge(
            "counterfloor_longest_wait_seconds",
            "How long the longest-waiting ticket of each service has waited so far",
            ["office", "service"],
            {(o, s): w for s, w in f.longest_wait_s.items()},
        )
        est = GaugeMetricFamily(
            "counterfloor_wait_estimate_seconds",
            "The estimator's wait for a ticket issued now (mean, p10, p90)",
            labels=["office", "service", "figure"],
        )
        for s, (mean, p10, p90) in f.estimate_s.items():
            for name, value in (("mean", mean), ("p10", p10), ("p90", p90)):
                est.add_metric([o, s, name], value)
        yield est
        yield _gauge("counterfloor_last_seq", "The journal's last event seq", ["office"], {(o,): f.last_seq})
        dev = GaugeMetricFamily(
            "counterfloor_device_state",
            "1 for the state each device is in",
            labels=["office", "device", "kind", "state"],
        )
        for d, (kind, state) in f.devices.items():
            for s in DEVICE_STATES:
                dev.add_metric([o, d, kind, s], float(state == s))
        yield dev
        errors = CounterMetricFamily(
            "counterfloor_device_link_errors",
            "A device link's errors since the gateway started, by kind",
            labels=["office", "device", "error"],
        )
        for d, counts in f.link_errors.items():
            for kind, n in counts.items():
                errors.add_metric([o, d, kind], n)
        yield errors
        up = GaugeMetricFamily(
            "counterfloor_printer_state", "1 for the state each printer is in", labels=["office", "printer", "state"]
        )
        printed = CounterMetricFamily("counterfloor_tickets_printed", "Tickets printed", labels=["office", "printer"])
        failed = CounterMetricFamily("counterfloor_print_failures", "Print jobs failed", labels=["office", "printer"])
        for p, (state, n_ok, n_failed) in f.printers.items():
            for s in ("unknown", "ready", "printing", "stopped"):
                up.add_metric([o, p, s], float(state == s))
            printed.add_metric([o, p], n_ok)
            failed.add_metric([o, p], n_failed)
        yield from (up, printed, failed)
        if f.broker is not None:
            yield _gauge(
                "counterfloor_broker_connected",
                "1 while connected to the MQTT broker",
                ["office"],
                {(o,): float(f.broker)},
            )
            yield _counter(
                "counterfloor_broker_connections",
                "Connections made to the broker (reconnects + 1)",
                ["office"],
                {(o,): f.broker_connections},
            )
            yield _counter(
                "counterfloor_broker_attempts",
                "Connection attempts to the broker",
                ["office"],
                {(o,): f.broker_attempts},
            )
            yield _counter(
                "counterfloor_events_published",
                "Journal events published to the broker",
                ["office"],
                {(o,): f.events_published},
            )
        yield _counter("counterfloor_loop_turns", "Turns of the gateway's loop", ["office"], {(o,): f.turns})


def _gauge(name: str, doc: str, labels: list[str], values: dict[tuple[str, ...], float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _counter(name: str, doc: str, labels: list[str], values: dict[tuple[str, ...], float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


class PublishedCollector(Collector, Protocol):
    """A collector that renders figures published whole (GatewayCollector, central's)."""

    def published(self) -> object: ...


@dataclass(slots=True)
class _Rendering:
    figures: object  # what it was made from (compared by identity)
    at: float
    status: str
    headers: list[tuple[str, str]]
    body: bytes


class CachedMetricsApp:
    """prometheus_client's WSGI app, each reply kept and served again while the collector's
    published figures are the same object and it is under RENDER_EVERY_S old. Kept per request
    variant (Accept, gzip, query), at most RENDERINGS_KEPT of them."""

    def __init__(
        self, collector: PublishedCollector, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.collector = collector
        self.clock = clock
        self.renders = 0  # replies made by prometheus_client (tests, figures)
        self._app = make_wsgi_app(registry)
        self._kept: dict[tuple[str, ...], _Rendering] = {}
        self._lock = threading.Lock()  # one rendering at a time: two scrapes at once make one

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self._app(environ, start_response)  # type: ignore[no-any-return]
        key = (
            environ.get("PATH_INFO", ""),
            environ.get("HTTP_ACCEPT", ""),
            environ.get("HTTP_ACCEPT_ENCODING", ""),
            environ.get("QUERY_STRING", ""),
        )
        with self._lock:
            figures, now = self.collector.published(), self.clock()
            kept = self._kept.get(key)
            if kept is None or kept.figures is not figures or now - kept.at >= RENDER_EVERY_S:
                kept = self._render(environ, figures, now)
                if key not in self._kept and len(self._kept) >= RENDERINGS_KEPT:
                    self._kept.clear()  # odd clients' variants do not pile up
                self._kept[key] = kept
        start_response(kept.status, list(kept.headers))
        return [kept.body]

    def _render(self, environ: dict[str, Any], figures: object, now: float) -> _Rendering:
        got: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            got["status"], got["headers"] = status, headers
            return lambda data: None

        body = b"".join(self._app(environ, keep))
        self.renders += 1
        return _Rendering(figures, now, got["status"], got["headers"], body)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Nothing per scrape in the service's log."""


@dataclass
class MetricsServer:
    """The metrics' HTTP server in its own daemon thread (a thread per request); `close()` stops it."""

    server: WSGIServer
    thread: threading.Thread
    app: CachedMetricsApp

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(collector: PublishedCollector, port: int, address: str = DEFAULT_ADDRESS) -> MetricsServer:
    """Serve `collector` (and the process's CPU and memory) on http://address:port/metrics; port 0:
    any free port (tests). OSError if the port cannot be bound."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    ProcessCollector(registry=registry)
    app = CachedMetricsApp(collector, registry)

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    server = make_server(address, port, app, Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return MetricsServer(server, thread, app)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0-65535): {text!r}")
    return port


def add_metrics_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--metrics-port and --metrics-address, the same for the gateway and central."""
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help=f"serve Prometheus metrics ({what}) on http://ADDRESS:PORT/metrics (default: none; "
        "docs/operations.md, 'Metrics')",
    )
    parser.add_argument(
        "--metrics-address",
        default=DEFAULT_ADDRESS,
        metavar="ADDRESS",
        help=f"the address /metrics listens on (default {DEFAULT_ADDRESS}: this machine only; "
        "0.0.0.0 or the LAN address for a Prometheus elsewhere)",
    )
