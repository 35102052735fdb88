"""Call latency while Prometheus scrapes the gateway's /metrics every 100 ms (gateway.metrics).

The real gateway (gateway.service.Gateway) on the oizumi example's simulated devices, on a
simulated clock as bench/printing.py's hang benchmark (the code runs for real, the bus's waits are
skipped); counter 1's pad calls next again and again, timed from its KEY reply handed to the bus
master to the CALL written to the bus. Between two calls the loop turns for CALL_GAP_S of real time,
so scrapes land on calls. Three kinds of run in one process, interleaved round by round (the
machine is shared: its load drifts): metrics off (the baseline); metrics on (the loop publishing
its figures once a second) with nobody scraping; and on with a scraper thread fetching
http://127.0.0.1:<port>/metrics every SCRAPE_EVERY_S from a process of its own, as Prometheus
(the server renders the figures once per publication and serves the bytes made in between:
gateway.metrics.CachedMetricsApp).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Result, remove_journal
from bench.printing import stamp_calls
from gateway.journal import new_token
from gateway.metrics import GatewayCollector, GatewayMetrics, gateway_figures, serve_metrics
from gateway.service import Gateway
from hal.codec import P
from office.model import IssueTicket
from tests.floor_support import FakeClock
from tests.printer_net_support import network_gateway, with_printer_at

ROOT = Path(__file__).resolve().parent.parent
SCRAPE_EVERY_S = 0.1
CALL_GAP_S = 0.025  # real seconds the loop turns between two calls
GOAL_RATIO = 1.5  # scraping may cost the p99 call at most half again
MONDAY_10 = datetime.fromisoformat("2027-03-15T10:00:00+09:00")


# The scraper runs in a process of its own, as Prometheus does: only the server's side shares the
# gateway's interpreter. It asks as Prometheus asks (OpenMetrics preferred, gzip).
SCRAPER = """
import json, sys, threading, time, urllib.request
url, every = sys.argv[1], float(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
request = urllib.request.Request(url, headers={
    "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
})
times, failures, size = [], 0, 0
while not stop.wait(every):
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            size = len(reply.read())
    except OSError:
        failures += 1
        continue
    times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "failures": failures, "bytes": size}))
"""


class Scraper:
    """Fetches /metrics every SCRAPE_EVERY_S from another process, as Prometheus would (harder)."""

    def __init__(self, url: str) -> None:
        self.times: list[float] = []
        self.failures = 0
        self.bytes = 0
        self._proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, url, str(SCRAPE_EVERY_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def close(self) -> None:
        """Stop it (its stdin closed) and take its figures."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        out, _ = proc.communicate("", timeout=30)
        got = json.loads(out)
        self.times, self.failures, self.bytes = got["times"], got["failures"], got["bytes"]


def _floor() -> str:
    text = (ROOT / "examples" / "oizumi.toml").read_text(encoding="utf-8")
    url = "sim://bus?dispenser=1&counter_pad=5,6,7,8&call_display=16"
    return with_printer_at(text.replace(url, url + "&backend=python"), None)


def calls(workdir: Path, n: int, mode: str) -> tuple[list[float], dict[str, Any]]:
    """KEY in → CALL out seconds for `n` calls, with metrics "off", "on" or "scraped"."""
    journal = workdir / f"metrics-{mode}.db"
    remove_journal(journal)
    clock = FakeClock()
    gw = network_gateway(_floor(), journal, clock, MONDAY_10)
    server = scraper = None
    extra: dict[str, Any] = {}
    try:
        if mode != "off":
            gw.metrics = GatewayMetrics()
        if mode == "scraped" and gw.metrics is not None:
            server = serve_metrics(GatewayCollector(gw.metrics), 0)
            scraper = Scraper(f"http://127.0.0.1:{server.port}/metrics")
        out = _time_calls(gw, n)
        if scraper is not None and server is not None:
            scraper.close()
            extra = {"scrapes": len(scraper.times), "failures": scraper.failures, "bytes": scraper.bytes}
            extra["scrape_p50"] = _pct(scraper.times, 0.5) if scraper.times else 0.0
            extra["renders"] = server.app.renders
        if gw.metrics is not None:
            t = time.perf_counter()
            for _ in range(20):
                gateway_figures(gw, {}, 0)
            extra["figures_s"] = (time.perf_counter() - t) / 20
        return out, extra
    finally:
        if scraper is not None:
            scraper.close()
        if server is not None:
            server.close()
        gw.close()
        remove_journal(journal)


def _time_calls(gw: Gateway, n: int) -> list[float]:
    devices = gw.buses[0].port.bus.devices
    dispenser, pad, display = devices[1], devices[5], devices[16]
    out = stamp_calls(gw)

    def turn() -> None:  # one turn of Gateway.run: the step, then the figures (and systemd)
        gw.step()
        gw.report()

    for _ in range(100_000):
        if dispenser.lamps == 0b1111:
            break
        turn()
    gw.handle({"cmd": "open", "counter": "1"})
    assert gw.journal is not None
    for i in range(n):
        gw.journal.execute(IssueTicket(("move", "seal")[i % 2], new_token()), gw.wall())
        pad.key(P.KEY_CALL_NEXT)
        for _ in range(100_000):
            if len(out) > i:
                break
            turn()
        else:
            raise RuntimeError("the CALL never went out")
        end = time.perf_counter() + CALL_GAP_S
        while time.perf_counter() < end:
            turn()
    if len(display.calls) < n:
        raise RuntimeError(f"the display got {len(display.calls)} CALLs for {n} calls")
    return out


def run(workdir: Path, n: int, log: list[str], rounds: int = 4) -> list[Result]:
    """The three runs interleaved, `rounds` times n / rounds calls each, so that a busy shared
    machine slows them alike."""
    got: dict[str, list[float]] = {"off": [], "on": [], "scraped": []}
    on_extra: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for _ in range(rounds):
        for mode, times in got.items():
            out, figures = calls(workdir, max(1, n // rounds), mode)
            times += out
            if mode == "on":
                on_extra = figures
            elif mode == "scraped":
                summed = ("scrapes", "failures", "renders")
                extra = {k: extra.get(k, 0) + v if k in summed else v for k, v in figures.items()}
    off, on, scraped = got["off"], got["on"], got["scraped"]
    o50, o99 = _pct(off, 0.5), _pct(off, 0.99)
    n50, n99 = _pct(on, 0.5), _pct(on, 0.99)
    s50, s99 = _pct(scraped, 0.5), _pct(scraped, 0.99)
    log.append(
        f"call latency with /metrics, {n} calls {CALL_GAP_S * 1000:.0f} ms apart: metrics off p50 {o50 * 1000:.2f} ms, "
        f"p99 {o99 * 1000:.2f} ms; on, not scraped p50 {n50 * 1000:.2f} ms, p99 {n99 * 1000:.2f} ms; scraped every "
        f"{SCRAPE_EVERY_S * 1000:.0f} ms p50 {s50 * 1000:.2f} ms, p99 {s99 * 1000:.2f} ms, "
        f"max {max(scraped) * 1000:.2f} ms ({extra.get('scrapes', 0)} scrapes of {extra.get('bytes', 0)} bytes, "
        f"{extra.get('failures', 0)} failed, {extra.get('renders', 0)} rendered, "
        f"p50 {extra.get('scrape_p50', 0.0) * 1000:.1f} ms each); the loop's figures cost "
        f"{on_extra.get('figures_s', 0.0) * 1e6:.0f} µs once a second"
    )
    return [
        Result(
            f"Call latency p99 while /metrics is scraped every {SCRAPE_EVERY_S * 1000:.0f} ms, {n} calls",
            f"{s99 * 1000:.2f} ms (p50 {s50 * 1000:.2f} ms)",
            f"{o99 * 1000:.2f} ms (p50 {o50 * 1000:.2f} ms), metrics off",
            f"{s99 / o99:.2f}×",
            f"≤ {GOAL_RATIO}×",
            s99 <= GOAL_RATIO * o99,
        )
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
