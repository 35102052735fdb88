"""The web under load (issue 16): 1,000 residents' ticket pages open with live updates on one
central worker, and the time from a `called` event to the page showing it (goal: p99 ≤ 1 s).

Everything on the real path, in processes of their own on this machine:

- **the broker**: Mosquitto (tests/mqtt_support.py's `plain_mosquitto`), else the embedded amqtt
  broker (counterfloor/embedded_broker.py) when Mosquitto is not installed;
- **central**: `counterfloor central --broker … --store … --http-port … --office-config
  examples/nerima.toml`, one worker, as deployed: its loop in one thread, uvicorn serving the pages
  in another, the two sharing only the hub of frozen views (central/web/hub.py);
- **this process**: the office's gateway — event-log records published as gateway/mqtt_link.py
  sends them (QoS 1, `counterfloor/nerima/events`, in seq order) — and the residents: N live
  ticket pages as N Server-Sent Events clients on one asyncio loop, each on its own ticket's
  stream `/nerima/t/<token>/events`, which is what the page's script (central/web/static/live.js)
  listens to. Plain asyncio streams, no HTTP library: 1,000 clients cost this shared machine less.

The day: today's schedule, four counters open (one per service), then ≥ 1,000 tickets issued over
four services (A-/B-/C-/D-…), every one with its page token, so that ≥ 1,000 tickets wait for the
whole measured part (central's estimate round covers every one of them at each change). Then
counters call them in issue order: `served` for the counter's last ticket, then `called` for the
next, as a gateway's call-next publishes them.

Measured, per called ticket: from just before its `called` record is handed to the gateway's MQTT
client to the moment its resident's client has read an `event: ticket` whose fragment says
`data-status="called"` (time.perf_counter, one clock in one process). That path is: broker →
central's store and floor → its estimate round (after QUIET_S of quiet, central/office_state.py)
→ the office's view built and handed to the hub → the stream renders the ticket's fragment →
uvicorn writes it → the client reads it.

- **Baseline (same run, same broker and central, the same tickets waiting)**: one page — the
  stream of the next ticket to be called opened, the call, the stream closed — calls one at a
  time. The ratio is what N open pages add.
- **N pages**: the streams of the next N tickets opened and held (every one gets each change of
  its ticket: its place in the queue, its estimate, its call), then calls at each of the rates
  (calls per second, paced on a fixed schedule); p50/p90/p99/max per rate. A ward office calls a
  few per minute; below ~5 calls/s every call is an estimate round of its own with the server
  idle between them, so 1 call/s stands for a real office, and the faster rates push harder.
  Above ~10 calls/s the calls come closer than QUIET_S and central batches them into one round
  at most every MAX_DELAY_S (1 s) by design, so a call can wait up to 1 s for its round there.
- **Connections held**: streams still open at the end, of N; every called ticket's page got its
  call. **Central's RSS** (VmRSS; VmHWM the peak) before any page and with N open; **CPU** of
  central's process per rate, as cores busy and per call.
- **Chromium** (optional, `--browsers K`, when /usr/bin/chromium and Playwright are there): K real
  ticket pages opened while the N streams stay open, each called; the time from publishing the
  call to the page's DOM showing `#ticket[data-status="called"]` with its counter's words.

    uv run python -m bench.web_load                      # 1,000 pages, rates 1, 5, 20 calls/s (~2.5 min)
    uv run python -m bench.web_load --clients 200 --rates 2,10 --calls 20,50
    uv run python -m bench.run --only web                # the same, in the results table
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import Result
from bench.rushday import NERIMA, ROOT
from central.web.app import token_hash
from office import mqtt

HOST = "127.0.0.1"
OFFICE = "nerima"
TZ = ZoneInfo("Asia/Tokyo")
GOAL_S = 1.0  # p99 from a `called` event to the page showing it (issue 16)
SERVICES = {"move": "A", "seal": "B", "certificate": "C", "insurance": "D"}  # service → ticket prefix
# Counters per service, each serving one service and taking its turn to call: far more than an
# office has, so that at 20 calls/s a resident stays called for 10 s before the counter's next call
# ends it (`served`). With a few, a ticket would be called and done within one estimate round and
# its page would go from waiting to done, never showing the call (central publishes views per round).
COUNTERS_PER_SERVICE = 50
OPEN_CONCURRENCY = 100  # streams being opened at once (a connection storm is not what is measured)
DEADLINE_S = 60.0  # every wait here is bounded
CALLED = b'data-status="called"'
CALL_WORDS = "番窓口へお越しください"  # "Please go to Counter N" (ja), what the called page says


@dataclass(frozen=True)
class Plan:
    clients: int = 1000
    rates: tuple[float, ...] = (1.0, 5.0, 20.0)  # calls per second, one measured phase each
    calls: tuple[int, ...] = (40, 100, 200)  # calls per phase
    baseline_calls: int = 30
    browsers: int = 5  # real Chromium pages at the end (0: none)

    def __post_init__(self) -> None:
        if len(self.rates) != len(self.calls):
            raise ValueError("one number of calls per rate")
        if sum(self.calls) + self.browsers > self.clients:
            raise ValueError("the calls (and browser pages) must be of tickets whose pages are open")

    @property
    def tickets(self) -> int:
        """Issued: the baseline's, then the pages', then as many again as are called, so that at
        least `clients` wait until the last call."""
        return self.baseline_calls + self.clients + sum(self.calls) + self.browsers


@dataclass
class Ticket:
    ticket: str  # "A-001"
    service: str
    token: str


# --- the residents' side: SSE clients ---------------------------------------------------------------


@dataclass
class Page:
    """One resident's ticket page as a live stream client: the fragments it read, and when the
    one saying its ticket is called arrived."""

    ticket: Ticket
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # the first fragment is in
    called: asyncio.Event = field(default_factory=asyncio.Event)
    called_at: float | None = None
    events: int = 0  # `event: ticket` fragments read
    open: bool = False
    error: str | None = None


async def http_status(port: int, path: str) -> int:
    """The status of a GET (the connection closed after it); 0 when nothing answers."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return 0
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
        line = await reader.readline()
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except (OSError, ValueError, IndexError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def follow(page: Page, port: int, opening: asyncio.Semaphore) -> None:
    """Open the ticket's event stream and read it until the server closes it or the task is
    cancelled. HTTP/1.1, chunked (uvicorn's streaming responses); each SSE message a block
    ending in a blank line."""
    path = f"/{OFFICE}/t/{page.ticket.token}/events?lang=ja"
    async with opening:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            page.error = f"connect: {exc!r}"
            ended(page)
            return
    try:
        if not head.startswith(b"HTTP/1.1 200"):
            page.error = head.split(b"\r\n", 1)[0].decode(errors="replace")
            return
        chunked = b"transfer-encoding: chunked" in head.lower()
        page.open = True
        buf = b""
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";", 1)[0], 16)
                if size == 0:
                    break
                buf += (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                seen(page, block)
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        page.error = f"read: {exc!r}"
    finally:
        page.open = False
        writer.close()
        ended(page)


def ended(page: Page) -> None:
    """Whoever waits on this page stops waiting: its stream is over."""
    if page.error is None and not page.called.is_set():
        page.error = "the stream ended"
    page.ready.set()
    page.called.set()


def seen(page: Page, block: bytes) -> None:
    if block.startswith(b"event: ticket\n"):
        page.events += 1
        page.ready.set()
        if page.called_at is None and CALLED in block:
            page.called_at = time.perf_counter()
            page.called.set()
    elif block.startswith(b"event: gone"):
        page.error = "gone"


# --- the gateway's side ------------------------------------------------------------------------------


class Gateway:
    """The office's gateway as central sees it on the broker: event-log records, one per message,
    QoS 1, in seq order (gateway/mqtt_link.py), published from this process."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"web-load-gateway-{secrets.token_hex(3)}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()
        self.topic = mqtt.topic(OFFICE, mqtt.EVENTS)
        self.seq = 0
        self.serving: dict[str, str] = {}  # counter → the ticket it called last
        self.turns = dict.fromkeys(SERVICES, 0)  # calls so far per service: whose counter's turn
        self.published = 0

    def record(self, type_: str, seq: int | None = None, **fields: Any) -> None:
        if seq is None:
            self.seq += 1
            seq = self.seq
        ts = datetime.now(TZ).isoformat(timespec="milliseconds")
        record = {"v": 1, "seq": seq, "ts": ts, "office": OFFICE, "type": type_, **fields}
        info = self.client.publish(self.topic, mqtt.encode(mqtt.event_message(record, 1)), qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish refused: {paho.error_string(info.rc)}")
        self.published += 1

    def open_day(self) -> None:
        """The counters open (after `announce`'s schedule)."""
        for counter, service in all_counters():
            self.record("counter_opened", counter=counter, services=[service])

    def announce(self) -> None:
        """Today's schedule, as seq 1: published again until central has it."""
        today = datetime.now(TZ).date().isoformat()
        counters = [
            {"counter": counter, "services": [service], "shifts": [["00:00", "23:59"]]}
            for counter, service in all_counters()
        ]
        periods = [{"mode": "office", "from": "00:00", "to": "23:59", "services": list(SERVICES)}]
        self.record("schedule", seq=1, date=today, new_day=True, counters=counters, closes="23:59", periods=periods)
        self.seq = max(self.seq, 1)

    def issue(self, count: int) -> list[Ticket]:
        tickets = []
        numbers = dict.fromkeys(SERVICES, 0)
        services = list(SERVICES)
        for i in range(count):
            service = services[i % len(services)]
            numbers[service] += 1
            n = numbers[service]
            ticket = Ticket(f"{SERVICES[service]}-{n:03d}", service, secrets.token_urlsafe(24))
            self.record(
                "ticket_issued", ticket=ticket.ticket, service=service, number=n, token_hash=token_hash(ticket.token)
            )
            tickets.append(ticket)
        return tickets

    def call(self, ticket: Ticket) -> float:
        """Its counter ends its last ticket and calls this one; when the `called` was handed over."""
        turn = self.turns[ticket.service]
        self.turns[ticket.service] += 1
        counter = counter_of(ticket.service, turn % COUNTERS_PER_SERVICE)
        last = self.serving.get(counter)
        if last is not None:
            self.record("served", ticket=last, counter=counter)
        self.serving[counter] = ticket.ticket
        at = time.perf_counter()
        self.record("called", ticket=ticket.ticket, counter=counter)
        return at

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def counter_of(service: str, index: int) -> str:
    """The id of the service's `index`-th counter: 1, 5, 9, … serve the first service, 2, 6, … the second."""
    return str(1 + list(SERVICES).index(service) + len(SERVICES) * index)


def all_counters() -> list[tuple[str, str]]:
    """(counter, service) of every counter."""
    return [(counter_of(s, i), s) for i in range(COUNTERS_PER_SERVICE) for s in SERVICES]


# --- central, and what its process uses --------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _clock_ticks()


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            got[key] = int(value.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit(wanted: int) -> int:
    """RLIMIT_NOFILE's soft limit raised towards `wanted` (up to the hard limit); central, started
    from here, inherits it. The limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@contextmanager
def central(
    workdir: Path, broker_url: str, http_port: int, *, office_config: Path = NERIMA, extra: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """`counterfloor central` with its web pages, in a process of its own; SIGTERM at the end.
    `office_config`: the office's config file; `extra`: more arguments (bench/alerts_latency.py)."""
    log = (workdir / "central.log").open("wb")
    command = [
        *(sys.executable, "-m", "counterfloor.cli", "central", "--broker", broker_url),
        *("--store", str(workdir / "central.db"), "--http-port", str(http_port), "--http-address", HOST),
        *("--office-config", str(office_config)),
        *extra,
    ]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    except BaseException:
        tail = (workdir / "central.log").read_text(errors="replace").splitlines()[-20:]
        print("web load: the end of central's log:", *tail, sep="\n  ", file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@contextmanager
def broker(workdir: Path, log: list[str]) -> Iterator[int]:
    """Mosquitto on a free port (else the embedded broker); its port."""
    import pytest

    from counterfloor.embedded_broker import EmbeddedBroker
    from tests.mqtt_support import plain_mosquitto

    with contextlib.ExitStack() as stack:
        try:
            # Central republishes ~every waiting ticket's estimate at each call: room for them.
            mosq = stack.enter_context(plain_mosquitto(workdir / "mosquitto", extra=["max_queued_messages 100000"]))
            log.append(f"web load: broker Mosquitto on {HOST}:{mosq.port} (plain TCP)")
            port = mosq.port
        except pytest.skip.Exception as exc:
            embedded = EmbeddedBroker(HOST, 0)
            port = embedded.start()
            stack.callback(embedded.stop)
            log.append(f"web load: broker the embedded amqtt one on {HOST}:{port} ({exc})")
        yield port


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    rate: float | None  # calls per second (None: one at a time, each after the last was seen; 0: back to back)
    calls: int
    latencies: list[float]  # of the calls whose page said so
    seconds: float  # wall time from the first call to the last call seen
    cpu_s: float  # central's CPU meanwhile
    fragments: int  # `ticket` fragments read by all the pages meanwhile
    late_s: float = 0.0  # the most a call went out after its scheduled time (this loop busy)


@dataclass
class Outcome:
    """What a run measured: `results` turns it into rows, the smoke test checks it."""

    plan: Plan
    phases: list[Phase] = field(default_factory=list)
    issued: int = 0
    issue_s: float = 0.0  # from the first ticket published to the last one's page served
    opened_s: float = 0.0  # from the first stream opened to the last one's first fragment
    held: int = 0  # streams still open at the end
    errors: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # tickets called whose page never said so
    rss_before: tuple[float, float] = (0.0, 0.0)  # central's (VmRSS, VmHWM), MB: every ticket issued, no page
    rss_open: tuple[float, float] = (0.0, 0.0)  # with the pages open
    rss_end: tuple[float, float] = (0.0, 0.0)
    fds_open: int = 0  # central's open file descriptors with the pages open
    fd_limit: int = 0
    browser: list[float] = field(default_factory=list)
    browser_note: str = ""
    client_cpu_s: float = 0.0  # this process (the pages, the gateway)
    seconds: float = 0.0


def q(values: Sequence[float], p: float) -> float:
    """The p-th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = DEADLINE_S) -> None:
    """Ask another process (central) until `check` holds; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"web load: {what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def settled(events: Sequence[asyncio.Event], what: str) -> None:
    """Every event set (a page's `follow` sets its events when its stream ends too)."""
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), DEADLINE_S)
    except TimeoutError:
        raise TimeoutError(f"web load: {what}: not within {DEADLINE_S:.0f} s") from None


async def stop(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def central_ready(
    proc: subprocess.Popen[bytes], workdir: Path, http_port: int, gateway: Gateway, what: str = ""
) -> None:
    """Central's web server up, then its first view of the office served. Central takes events once
    subscribed: the schedule (seq 1) is announced again each second until the view is served (a
    repeat of a stored seq is a duplicate to central). `what`: the run's name in a timeout."""

    async def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"central exited with {proc.returncode}; see {workdir / 'central.log'}")
        return await http_status(http_port, "/healthz") == 200

    await until(f"{what}central's web server", serving)
    announced = -math.inf

    async def known() -> bool:
        nonlocal announced
        if time.monotonic() - announced >= 1.0:
            gateway.announce()
            announced = time.monotonic()
        return await http_status(http_port, f"/{OFFICE}/") == 200

    await until(f"{what}central's first view of the office", known)


async def on_schedule(t0: float, i: int, rate: float) -> float:
    """Wait for the moment of call `i` of a phase paced at `rate` calls a second from `t0` (0: back
    to back, no wait); how late it came."""
    if rate <= 0:
        return 0.0
    due = t0 + i / rate
    if (wait := due - time.perf_counter()) > 0:
        await asyncio.sleep(wait)
    return time.perf_counter() - due


async def load(plan: Plan, workdir: Path, broker_port: int, out: Outcome) -> None:
    """The run (see the module docstring), its figures into `out`."""
    http_port = free_port()
    gateway = Gateway(broker_port)
    tasks: list[asyncio.Task[None]] = []
    try:
        with central(workdir, f"mqtt://{HOST}:{broker_port}", http_port) as proc:
            await central_ready(proc, workdir, http_port, gateway)
            started = time.perf_counter()
            gateway.open_day()
            tickets = gateway.issue(plan.tickets)
            last = tickets[-1].token

            async def issued() -> bool:
                return await http_status(http_port, f"/{OFFICE}/t/{last}") == 200

            await until("every ticket in central's view", issued)
            out.issued, out.issue_s = len(tickets), time.perf_counter() - started
            out.rss_before = memory_mb(proc.pid)
            opening = asyncio.Semaphore(OPEN_CONCURRENCY)

            # The baseline: one page at a time, each call after the last was seen.
            latencies: list[float] = []
            cpu0, t0, fragments = cpu_seconds(proc.pid), time.perf_counter(), 0
            for ticket in tickets[: plan.baseline_calls]:
                page = Page(ticket)
                task = asyncio.create_task(follow(page, http_port, opening))
                await settled([page.ready], f"the page of {ticket.ticket}")
                at = gateway.call(ticket)
                await settled([page.called], f"the call of {ticket.ticket}")
                if page.called_at is None:
                    raise RuntimeError(f"web load: {ticket.ticket}'s page ended without its call: {page.error}")
                latencies.append(page.called_at - at)
                fragments += page.events
                await stop([task])
            cursor = plan.baseline_calls
            seconds, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
            out.phases.append(Phase("1 page", None, plan.baseline_calls, latencies, seconds, cpu, fragments))

            # N pages, opened and held.
            pages = [Page(t) for t in tickets[cursor : cursor + plan.clients]]
            t0 = time.perf_counter()
            tasks = [asyncio.create_task(follow(p, http_port, opening)) for p in pages]
            await settled([p.ready for p in pages], f"{plan.clients} pages open")
            failed = [p for p in pages if p.error is not None or not p.open]
            if failed:
                raise RuntimeError(f"web load: {len(failed)} page(s) not open: {failed[0].error}")
            out.opened_s = time.perf_counter() - t0
            out.rss_open, out.fds_open = memory_mb(proc.pid), open_fds(proc.pid)

            by_ticket = {p.ticket.ticket: p for p in pages}
            for n, (rate, count) in enumerate(zip(plan.rates, plan.calls, strict=True)):
                called = tickets[cursor : cursor + count]
                cursor += count
                fragments0 = sum(p.events for p in pages)
                cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
                sent: dict[str, float] = {}
                late = 0.0
                for i, ticket in enumerate(called):
                    late = max(late, await on_schedule(t0, i, rate))
                    sent[ticket.ticket] = gateway.call(ticket)
                await settled([by_ticket[t.ticket].called for t in called], f"{count} calls at {rate:g}/s")
                seconds, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
                got = [by_ticket[t.ticket] for t in called]
                out.missed += [p.ticket.ticket for p in got if p.called_at is None]
                lat = [p.called_at - sent[p.ticket.ticket] for p in got if p.called_at is not None]
                fragments = sum(p.events for p in pages) - fragments0
                name = f"{plan.clients:,} pages, {rate:g} calls/s"
                out.phases.append(Phase(name, rate, count, lat, seconds, cpu, fragments, late))
                if n + 1 < len(plan.rates) or plan.browsers:
                    await asyncio.sleep(1.0)  # the server idles between rates: each starts from quiet

            if plan.browsers:
                await browsers(tickets[cursor : cursor + plan.browsers], gateway, http_port, out)
            out.held = sum(p.open for p in pages)
            out.rss_end = memory_mb(proc.pid)
            out.errors = [f"{p.ticket.ticket}: {p.error}" for p in pages if p.error is not None]
            await stop(tasks)
    finally:
        await stop(tasks)
        gateway.close()


# Before the page's own script: its EventSource counts the fragments it receives (the first says
# the stream is live; the page's script swaps them in as before).
COUNT_FRAGMENTS = """
window.fragments = 0;
const Native = window.EventSource;
window.EventSource = function (url, options) {
  const source = new Native(url, options);
  source.addEventListener("ticket", function () { window.fragments += 1; });
  return source;
};
"""
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


async def browsers(tickets: Sequence[Ticket], gateway: Gateway, port: int, out: Outcome) -> None:
    """Real Chromium ticket pages, while the streams stay open: each opened, its script's stream
    seen to be live (its first fragment received), then called; the time from the call to its DOM
    saying so."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        out.browser_note = "no Chromium (apt-get install chromium)"
        return
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        out.browser_note = "Playwright is not installed"
        return
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
        try:
            context = await browser.new_context(viewport={"width": 360, "height": 640})
            for ticket in tickets:
                page = await context.new_page()
                await page.add_init_script(COUNT_FRAGMENTS)
                await page.goto(f"http://{HOST}:{port}/{OFFICE}/t/{ticket.token}")
                await page.wait_for_selector('#ticket[data-status="waiting"]')
                await page.wait_for_function("window.fragments >= 1", timeout=DEADLINE_S * 1000)
                at = gateway.call(ticket)
                await page.wait_for_selector('#ticket[data-status="called"]', timeout=DEADLINE_S * 1000)
                out.browser.append(time.perf_counter() - at)
                words = await page.inner_text("#ticket .call")
                if CALL_WORDS not in words:
                    raise RuntimeError(f"web load: {ticket.ticket}'s page says {words!r}, not its call")
                await page.close()
        finally:
            await browser.close()


def measure(plan: Plan, workdir: Path, log: list[str]) -> Outcome:
    out = Outcome(plan)
    out.fd_limit = raise_fd_limit(plan.clients * 2 + 1024)
    if out.fd_limit < plan.clients + 256:
        raise RuntimeError(f"web load: RLIMIT_NOFILE {out.fd_limit} is too low for {plan.clients} pages")
    used0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with broker(workdir, log) as port:
        asyncio.run(load(plan, workdir, port, out))
    used = resource.getrusage(resource.RUSAGE_SELF)
    out.client_cpu_s = used.ru_utime + used.ru_stime - used0.ru_utime - used0.ru_stime
    out.seconds = time.perf_counter() - started
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def spread(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return f"p50 {ms(q(values, 50))}, p90 {ms(q(values, 90))}, p99 {ms(q(values, 99))}, max {ms(max(values))}"


def results(out: Outcome, log: list[str]) -> list[Result]:
    plan = out.plan
    base, *loaded = out.phases
    base_p99, base_cpu = q(base.latencies, 99), base.cpu_s / base.calls
    rows = []
    for ph in loaded:
        if not ph.latencies:
            rows.append(Result(f"Called → page, {ph.name}", "no call seen", "—", "—", "p99 ≤ 1 s", False))
            continue
        p99 = q(ph.latencies, 99)
        rows.append(
            Result(
                f"Called → page p99, {ph.name} ({ph.calls} calls)",
                f"{ms(p99)} (p50 {ms(q(ph.latencies, 50))}, p90 {ms(q(ph.latencies, 90))}, "
                f"max {ms(max(ph.latencies))})",
                f"{ms(base_p99)} (1 page, calls one at a time; p50 {ms(q(base.latencies, 50))})",
                f"{p99 / base_p99:.1f}×",
                f"p99 ≤ {GOAL_S:g} s",
                p99 <= GOAL_S and len(ph.latencies) == ph.calls,
            )
        )
    calls = sum(ph.calls for ph in loaded)
    seen = sum(len(ph.latencies) for ph in loaded)
    rows.append(
        Result(
            f"Live ticket pages held ({plan.clients:,} streams)",
            f"{out.held:,} open to the end; {seen}/{calls} calls seen by their page",
            "—",
            "—",
            "every page held, every call seen",
            out.held == plan.clients and seen == calls and not out.errors,
        )
    )
    before, opened = out.rss_before[0], out.rss_open[0]
    rows.append(
        Result(
            f"Central's RSS with {plan.clients:,} pages open ({out.issued:,} tickets)",
            f"{opened:.1f} MB (at the end {out.rss_end[0]:.1f}, peak {out.rss_end[1]:.1f})",
            f"{before:.1f} MB with no page open",
            f"+{(opened - before) * 1024 / plan.clients:.0f} KB per page",
            "—",
            None,
        )
    )
    for ph in loaded:
        rows.append(
            Result(
                f"Central's CPU, {ph.name}",
                f"{ph.cpu_s / ph.seconds:.2f} cores; {ph.cpu_s / ph.calls * 1000:.0f} ms per call",
                f"{base_cpu * 1000:.0f} ms per call (1 page)",
                f"{ph.cpu_s / ph.calls / base_cpu:.1f}×",
                "—",
                None,
            )
        )
    if out.browser:
        sse = q(loaded[0].latencies, 50) if loaded and loaded[0].latencies else base.latencies[0]
        rows.append(
            Result(
                f"Called → Chromium page shows it ({len(out.browser)} pages, {plan.clients:,} streams open)",
                f"max {ms(max(out.browser))} (median {ms(statistics.median(out.browser))})",
                f"{ms(sse)} (the streams' p50, {loaded[0].name if loaded else '1 page'})",
                f"{statistics.median(out.browser) / sse:.1f}×",
                f"≤ {GOAL_S:g} s",
                max(out.browser) <= GOAL_S,
            )
        )
    log.append(
        f"web load: {out.issued:,} tickets issued over {len(SERVICES)} services and in central's view in "
        f"{out.issue_s:.1f} s; {plan.clients:,} pages opened in {out.opened_s:.1f} s ({OPEN_CONCURRENCY} at a "
        f"time); central then held {out.fds_open:,} file descriptors (RLIMIT_NOFILE {out.fd_limit:,}); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end; the run took {out.seconds:.0f} s"
    )
    for ph in out.phases:
        rate = "one at a time" if ph.rate is None else ("back to back" if ph.rate == 0 else f"{ph.rate:g}/s asked")
        log.append(
            f"web load: {ph.name}: {ph.calls} calls ({rate}, {ph.calls / ph.seconds:.1f}/s done"
            f"{f', a call at most {ms(ph.late_s)} late' if ph.late_s > 0.01 else ''}): {spread(ph.latencies)}; "
            f"{ph.fragments / ph.calls:,.0f} ticket fragments read per call; central's CPU {ph.cpu_s:.1f} s in "
            f"{ph.seconds:.1f} s"
        )
    log.append(
        f"web load: this process (the pages' clients and the gateway) used {out.client_cpu_s:.1f} s of CPU; "
        "the latencies include its loop's time to read the fragments of every page"
    )
    if out.browser:
        log.append(f"web load: Chromium: {', '.join(ms(b) for b in out.browser)} from the call to the DOM saying so")
    elif plan.browsers:
        log.append(f"web load: Chromium pages not measured: {out.browser_note}")
    if out.missed or out.errors:
        log.append(f"web load: calls not seen: {out.missed[:10]}; page errors: {out.errors[:5]}")
    return rows


FULL = Plan()
QUICK = Plan(clients=200, rates=(2.0, 10.0), calls=(10, 40), baseline_calls=10, browsers=0)


def run(workdir: Path, log: list[str], quick: bool = False, plan: Plan | None = None) -> list[Result]:
    out = measure(plan or (QUICK if quick else FULL), workdir, log)
    return results(out, log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_load", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 pages, 2 and 10 calls/s")
    parser.add_argument("--clients", type=int, default=None, help=f"pages held open (default {FULL.clients})")
    parser.add_argument("--rates", default=None, help="calls per second, one phase each (default 1,5,20)")
    parser.add_argument("--calls", default=None, help="calls per phase (default 40,100,200)")
    parser.add_argument("--baseline-calls", type=int, default=None, help="one-page calls (default 30)")
    parser.add_argument("--browsers", type=int, default=None, help="Chromium pages at the end (default 5; 0: none)")
    parser.add_argument("--dir", type=Path, default=None, help="where the run's files go")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    plan = Plan(
        clients=args.clients if args.clients is not None else base.clients,
        rates=tuple(float(r) for r in args.rates.split(",")) if args.rates else base.rates,
        calls=tuple(int(c) for c in args.calls.split(",")) if args.calls else base.calls,
        baseline_calls=args.baseline_calls if args.baseline_calls is not None else base.baseline_calls,
        browsers=args.browsers if args.browsers is not None else base.browsers,
    )
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="counterfloor-web-load-", dir=args.dir) as tmp:
        rows = run(Path(tmp), log, plan=plan)
    from bench.run import table

    print("\n".join([*table(rows), "", *(f"- {line}" for line in log)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
