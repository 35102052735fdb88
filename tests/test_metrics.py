"""Prometheus /metrics: the real endpoint of a running `counterfloor gateway run` (the oizumi
example's simulated devices) scraped as tickets are issued, and central's worker figures."""

from __future__ import annotations

import gzip
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from central.metrics import CentralCollector, CentralMetrics
from central.worker import CentralWorker, WorkerConfig
from counterfloor.cli import build_parser
from gateway.metrics import RENDER_EVERY_S, Figures, GatewayCollector, GatewayMetrics, serve_metrics
from tests.test_gateway_run import CLI, DEADLINE_S, GatewayProcess, office, start
from tests.test_sd_notify import NullOutbox


def scrape(url: str) -> dict[str, float]:
    """`name{labels}` -> value, as Prometheus would read the page."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def until(url: str, what: str, test: object) -> dict[str, float]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        page = scrape(url)
        if callable(test) and test(page):
            return page
        assert time.monotonic() < deadline, f"{what} not seen in {sorted(page)[:40]}"
        time.sleep(0.1)  # figures are published once a second: poll the page as Prometheus would


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    from tests.conftest import EXAMPLES

    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    config = tmp_path / "oizumi.toml"
    config.write_text(text.replace("[gateway]\n", '[gateway]\njournal = "journal.db"\n', 1), encoding="utf-8")
    gw = start(config, "--run-for", "120", "--clock-from", "2027-03-15T09:00", "--metrics-port", "0")
    try:
        ready = gw.wait_line("ready ")
        url = re.search(r"metrics=(\S+)", ready)
        assert url is not None, ready
        yield gw, url.group(1)
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait(timeout=DEADLINE_S)


@pytest.mark.slow
def test_the_gateways_metrics_follow_the_floor(gateway: tuple[GatewayProcess, str]) -> None:
    gw, url = gateway
    assert url.startswith("http://127.0.0.1:")  # this machine only, unless told otherwise
    q = 'counterfloor_queue_length{office="oizumi",service="move"}'
    pad = 'counterfloor_device_state{device="0-5",kind="counter_pad",office="oizumi",state="online"}'
    page = until(url, "every device online", lambda p: p.get(pad) == 1.0)
    assert page[q] == 0.0
    assert sum(v for k, v in page.items() if k.startswith("counterfloor_device_state") and 'state="online"' in k) == 6
    assert page['counterfloor_wait_estimate_seconds{figure="mean",office="oizumi",service="move"}'] >= 0
    assert "process_resident_memory_bytes" in page
    for _ in range(3):
        assert office(gw, "issue", "--service", "move", "--at", "2027-03-15T09:00").returncode == 0
    page = until(url, "3 waiting", lambda p: p.get(q) == 3.0)
    assert page['counterfloor_last_seq{office="oizumi"}'] >= 3
    assert page['counterfloor_longest_wait_seconds{office="oizumi",service="move"}'] >= 0
    mean = 'counterfloor_wait_estimate_seconds{figure="mean",office="oizumi",service="move"}'
    assert page[mean] > 0  # three ahead of the next one: a wait
    assert office(gw, "open", "--counter", "1").returncode == 0
    assert office(gw, "call", "--counter", "1").returncode == 0
    until(url, "2 waiting after a call", lambda p: p.get(q) == 2.0)
    assert gw.stop() == 0
    with pytest.raises(OSError):
        scrape(url)  # the server went with the gateway


def test_figures_render_and_a_status_line() -> None:
    figures = Figures(
        "oizumi",
        12,
        {"move": 3},
        {"move": 420.0},
        {"move": (600.0, 300.0, 900.0)},
        {"0-1": ("dispenser", "online"), "0-16": ("call_display", "offline")},
        {"0-16": {"timeouts": 7}},
        {"entrance": ("stopped", 40, 1)},
        False,
        2,
        5,
        11,
        1000,
    )
    metrics = GatewayMetrics()
    metrics.latest = figures
    registry = CollectorRegistry()
    registry.register(GatewayCollector(metrics))
    text = generate_latest(registry).decode()
    assert 'counterfloor_queue_length{office="oizumi",service="move"} 3.0' in text
    assert 'counterfloor_device_state{device="0-16",kind="call_display",office="oizumi",state="offline"} 1.0' in text
    assert 'counterfloor_device_link_errors_total{device="0-16",error="timeouts",office="oizumi"} 7.0' in text
    assert 'counterfloor_broker_connected{office="oizumi"} 0.0' in text
    assert 'counterfloor_events_published_total{office="oizumi"} 11.0' in text
    assert figures.status_line() == (
        "serving oizumi: 1/2 devices online, 3 waiting, seq 12; broker NOT connected; printer(s) stopped: entrance"
    )


def _figures(waiting: int) -> Figures:
    return Figures("oizumi", 12, {"move": waiting}, {"move": 0.0}, {}, {}, {}, {}, None)


def test_a_scrape_between_two_publications_is_served_the_bytes_already_made() -> None:
    """The HTTP thread renders once per published figures (and once a second for the process's
    own figures): a Prometheus scraping often costs the loop no more than one scraping rarely."""
    metrics = GatewayMetrics()
    metrics.latest = _figures(3)
    server = serve_metrics(GatewayCollector(metrics), 0)
    url = f"http://127.0.0.1:{server.port}/metrics"
    now = [100.0]
    server.app.clock = lambda: now[0]
    try:
        first = scrape(url)
        assert first['counterfloor_queue_length{office="oizumi",service="move"}'] == 3.0
        assert "process_cpu_seconds_total" in first
        assert scrape(url) == first and server.app.renders == 1
        metrics.latest = _figures(4)  # the loop published: the next scrape shows it
        assert scrape(url)['counterfloor_queue_length{office="oizumi",service="move"}'] == 4.0
        assert server.app.renders == 2
        now[0] += RENDER_EVERY_S  # the figures did not change, but the process's may have
        scrape(url)
        assert server.app.renders == 3
        # Another variant of the request (gzipped, as Prometheus asks) is made and kept apart.
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        for _ in range(2):
            with urllib.request.urlopen(request, timeout=5) as reply:
                assert reply.headers["Content-Encoding"] == "gzip"
                text = gzip.decompress(reply.read()).decode()
            assert 'counterfloor_queue_length{office="oizumi",service="move"} 4.0' in text
        assert server.app.renders == 4
    finally:
        server.close()


def test_central_worker_figures(tmp_path: Path) -> None:
    worker = CentralWorker(WorkerConfig(f"sqlite:///{tmp_path / 'c.db'}", train=False), outbox=NullOutbox())
    worker.start()
    try:
        metrics = CentralMetrics()
        worker.deliver("counterfloor/oizumi/events", b"not json")
        worker.turn(time.monotonic())
        metrics.tick(worker)
        assert metrics.latest is not None
        registry = CollectorRegistry()
        registry.register(CentralCollector(metrics))
        text = generate_latest(registry).decode()
        assert 'counterfloor_central_store_up{worker="0/1"} 1.0' in text
        assert 'counterfloor_central_problems_total{worker="0/1"} 1.0' in text
        assert 'counterfloor_central_events_stored_total{office="oizumi",worker="0/1"} 0.0' in text
        assert metrics.latest.status_line().startswith("worker 0/1: 1 offices, 0 messages waiting; store up")
    finally:
        worker.close()


@pytest.mark.parametrize("argv", [["gateway", "run", "--config", "x.toml"], ["central", "--broker", "mqtt://h"]])
def test_metrics_are_off_unless_asked_for(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.metrics_port is None and args.metrics_address == "127.0.0.1"


def test_a_bad_metrics_port_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [*CLI, "gateway", "run", "--config", "x.toml", "--metrics-port", "99999"],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert r.returncode == 2
    assert "--metrics-port: not a TCP port (0-65535): '99999'" in r.stderr
