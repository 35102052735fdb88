"""Central (central/worker.py, docs/operations.md "Central"): events per second per worker, two
workers against one, and end to end through a real Mosquitto.

Workload: recorded logs from `counterfloor sim`'s library (counterfloor.simulate.record_day):
Nerima's Monday of the moving rush, one seeded day per office (≈4,000 events each), under office
ids chosen so that half fall to each of two workers (crc32 % 2), published records as a gateway
sends them on `…/events`. Every office's predictor is the calibrated `best`, trained from five
simulated past days (each office its own copy: a predictor caches per floor). Every store is
made, and every office known to it (a folder store's office files created), before a clock starts.

- **Per worker, the broker out of the loop**: one worker process (central.worker.CentralWorker
  with the real store, a counting outbox instead of the broker) takes every office's messages as
  paho's thread would hand them — 2,000 at a time between turns, the offices interleaved — and
  works them off: decode, store (one transaction per office per turn, durable), apply in seq
  order, estimates at most every second per office and at the end. Baseline, in the same run and
  process: the store alone appending the same records in the same batches (the part no worker
  can skip), so the ratio says what the rest costs.
- **2 workers against 1**: the same offices split by the partition over two worker processes
  started together, each handed every office's messages and dropping the others' (as each is
  subscribed to all), against one process taking all; wall time from the common start to the
  last worker done. SQLite in one file (its single writer lock is shared), SQLite in a folder of
  a file per office (central/store_sqlite.py, `SqliteFolderStore`: each worker writes only its
  own offices' files) and PostgreSQL (a cluster this benchmark starts; rows locked per office).
  Rounds alternate the two; the median of the rounds' ratios.
- **End to end through Mosquitto**: a publisher process sends every office's events (QoS 1, its
  offices interleaved, 1,000 in flight) through a Mosquitto started here; from its start to the
  last event applied by a central worker in this process (on its broker link, SQLite store).
  Baseline, same run and broker: a bare paho subscriber taking the same messages from the same
  publisher. The ratio is central's rate against the rate the broker can deliver at all.

Also logged: one estimate round of one office at its busiest (the most tickets waiting), which
bounds how many offices a worker can keep estimated once a second; and the live shape, where
each turn holds about one event per office, so each event is a store transaction of its own.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing as mp
import os
import statistics
import threading
import time
import zlib
from collections.abc import Callable
from datetime import date
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import Result, median
from central.office_state import OfficeState
from central.store import open_store
from central.worker import CentralWorker, WorkerConfig
from office import events as ev
from office import mqtt
from office.config import load_config
from office.waittime import Predictor, read_record, split_days, train

GOAL_EVENTS_S = 20_000  # per worker (issue 14)
GOAL_SCALE = 1.7  # 2 workers against 1 on this 2-core machine
MONDAY = date(2027, 3, 29)  # the end-of-March moving rush
CHUNK = 2000  # messages handed over between two turns (paho's thread runs meanwhile)
DEADLINE_S = 300.0
HOST = "127.0.0.1"

Messages = list[tuple[str, bytes]]


def office_ids(count: int) -> list[str]:
    """`count` office ids, half owned by each of two workers (crc32 % 2)."""
    found: dict[int, list[str]] = {0: [], 1: []}
    n = 0
    while min(len(v) for v in found.values()) < count // 2 + count % 2:
        name = f"ward-{n:03d}"
        found[zlib.crc32(name.encode()) % 2].append(name)
        n += 1
    return [name for pair in zip(found[0], found[1], strict=False) for name in pair][:count]


def office_day(office: str, seed: int) -> list[dict[str, Any]]:
    from counterfloor.simulate import record_day

    config = load_config(Path(__file__).resolve().parent.parent / "examples" / "nerima.toml")
    day = record_day(config, MONDAY, seed=seed, rush=True)
    return [{**ev.public_record(e, office), "session": 1} for e in day.events]


def messages_for(offices: list[str]) -> tuple[Messages, dict[str, list[dict[str, Any]]]]:
    """Every office's day, interleaved one event of each office at a time, as published."""
    days = {o: office_day(o, seed=1 + int(o.split("-")[1])) for o in offices}
    out: Messages = []
    longest = max(len(d) for d in days.values())
    for i in range(longest):
        for office, records in days.items():
            if i < len(records):
                out.append((mqtt.topic(office, mqtt.EVENTS), mqtt.encode(records[i])))
    return out, days


def trained_predictor() -> Predictor:
    """`best`, learned from five simulated past weekdays of Nerima."""
    from counterfloor.simulate import open_days, record_day

    config = load_config(Path(__file__).resolve().parent.parent / "examples" / "nerima.toml")
    events = []
    for day in open_days(config, date(2027, 3, 1), 5):
        for e in record_day(config, day, seed=7).events:
            event = read_record(ev.public_record(e, "x"))
            if event is not None:
                events.append(event)
    return train("best", split_days(events))


class Counting:
    """The broker, out of the loop: publications counted."""

    def __init__(self) -> None:
        self.count = 0

    def publish(self, topic: str, payload: bytes, retain: bool) -> bool:
        self.count += 1
        return True


def new_worker(store_url: str, index: int, workers: int, offices: list[str], predictor: Predictor) -> CentralWorker:
    worker = CentralWorker(WorkerConfig(store_url, index, workers, train=False), outbox=Counting())
    worker.start()
    assert worker.store is not None
    for office in offices:
        if worker.partition.owns(office):
            worker.offices[office] = OfficeState(office, copy.deepcopy(predictor))
            # Each office known to the store before the clock starts, as in service after its first
            # day: a folder store's office file is made here (~3 ms each), as one file is at start().
            worker.store.set_meta(office, "bench", True)
    return worker


def feed(worker: CentralWorker, messages: Messages, chunk: int = CHUNK) -> None:
    for start in range(0, len(messages), chunk):
        for topic, payload in messages[start : start + chunk]:
            worker.deliver(topic, payload)
        worker.turn(worker.clock())
    worker.drain()


# -- one worker process ------------------------------------------------------------------------
def _worker_process(conn: Connection, store_url: str, index: int, workers: int, offices: list[str]) -> None:
    """Build the stream, say ready, wait for go, work it off; send (start, end, events applied).
    Every worker is handed every office's messages, as each is subscribed to them all, and drops
    the ones of offices it does not own (central/broker_link.py)."""
    try:
        messages, _ = messages_for(offices)
        worker = new_worker(store_url, index, workers, offices, trained_predictor())
        mine = sum(1 for topic, _ in messages if worker.partition.owns(topic.split("/")[1]))
        conn.send(("ready", mine))
        conn.recv()
        began, cpu = time.monotonic(), time.process_time()
        feed(worker, messages)
        ended, cpu = time.monotonic(), time.process_time() - cpu
        applied = sum(s.applied for s in worker.offices.values())
        worker.close()
        conn.send(("done", began, ended, applied, cpu))
    except BaseException as exc:  # the parent reports it
        conn.send(("failed", repr(exc)))
        raise


def run_workers(
    store_url: str, workers: int, offices: list[str], server_cpu: Callable[[], float] | None = None
) -> tuple[float, int, float, float]:
    """`workers` processes on their partitions, started together: (wall seconds, events, the
    workers' CPU seconds, the database server's CPU seconds meanwhile (0 without `server_cpu`))."""
    ctx = mp.get_context("spawn")
    procs = []
    for index in range(workers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_process, args=(child, store_url, index, workers, offices))
        proc.start()
        procs.append((proc, parent))
    expected = 0
    for _, conn in procs:
        expected += _recv(conn)[1]
    server = server_cpu() if server_cpu else 0.0
    for _, conn in procs:
        conn.send("go")
    spans, applied, cpu = [], 0, 0.0
    for proc, conn in procs:
        _, began, ended, events, used = _recv(conn)
        spans.append((began, ended))
        applied += events
        cpu += used
        proc.join(DEADLINE_S)
    server = server_cpu() - server if server_cpu else 0.0
    assert applied == expected, f"{applied} of {expected} events applied"
    return max(e for _, e in spans) - min(b for b, _ in spans), applied, cpu, server


def postgres_cpu(data: Path) -> Callable[[], float]:
    """The CPU seconds a PostgreSQL cluster has used so far: its postmaster, the children it has
    reaped (connections that ended) and those still running (/proc/<pid>/stat)."""
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")

    def fields(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    def used() -> float:
        f = fields(postmaster)
        total = sum(int(x) for x in f[11:15])  # utime, stime, cutime, cstime
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    child = fields(int(entry.name))
                    if int(child[1]) == postmaster:
                        total += int(child[11]) + int(child[12])
        return total / tick

    return used


def _recv(conn: Connection) -> tuple[Any, ...]:
    if not conn.poll(DEADLINE_S):
        raise RuntimeError(f"bench central: a worker process said nothing within {DEADLINE_S:.0f} s")
    message = conn.recv()
    if message[0] == "failed":
        raise RuntimeError(f"bench central: a worker process failed: {message[1]}")
    return tuple(message)


# -- the parts, in this process ------------------------------------------------------------------
def store_alone(store_url: str, days: dict[str, list[dict[str, Any]]], messages: Messages) -> float:
    """Seconds for the store alone to append the same records in the batches a worker makes
    (per office per CHUNK of messages)."""
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    position = dict.fromkeys(days, 0)
    for start in range(0, len(messages), CHUNK):
        counts: dict[str, int] = {}
        for topic, _ in messages[start : start + CHUNK]:
            office = topic.split("/")[1]
            counts[office] = counts.get(office, 0) + 1
        for office, n in counts.items():
            batches.append((office, days[office][position[office] : position[office] + n]))
            position[office] += n
    with open_store(store_url) as store:
        began = time.perf_counter()
        for office, records in batches:
            store.append(office, records)
        return time.perf_counter() - began


def busiest_round(days: dict[str, list[dict[str, Any]]], predictor: Predictor) -> tuple[float, int]:
    """One estimate round of the first office at its busiest: (median seconds, tickets waiting)."""
    office, records = next(iter(days.items()))
    scan = OfficeState(office, copy.deepcopy(predictor))
    most, at = -1, 0
    for i, record in enumerate(records):
        scan.take([record], 0.0, _nothing)
        if (waiting := len(scan.floor.waiting())) > most:
            most, at = waiting, i
    state = OfficeState(office, copy.deepcopy(predictor))
    state.take(records[: at + 1], 0.0, _nothing)
    times = []
    for _ in range(5):
        state.forget_published(0.0)  # every topic goes out again: the whole round
        began = time.perf_counter()
        state.publish_estimates(0.0, lambda topic, payload: True)
        times.append(time.perf_counter() - began)
    return statistics.median(times), most


def _nothing(first: int, last: int) -> list[dict[str, Any]]:
    return []  # in order: nothing is ever read back


# -- end to end ------------------------------------------------------------------------------------
def _publisher(conn: Connection, port: int, offices: list[str]) -> None:
    """Publish every office's events (QoS 1, 1,000 in flight) at go; send the seconds it took."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    try:
        messages, _ = messages_for(offices)
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=paho.MQTTv311)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        acked = threading.Semaphore(0)
        client.on_publish = lambda *_: acked.release()
        client.connect(HOST, port)
        client.loop_start()
        conn.send(("ready", len(messages)))
        while True:
            if conn.recv() == "stop":
                break
            began = time.monotonic()
            for topic, payload in messages:
                client.publish(topic, payload, qos=1)
            for _ in messages:
                acked.acquire(timeout=DEADLINE_S)
            conn.send(("done", began, time.monotonic()))
        client.disconnect()
        client.loop_stop()
    except BaseException as exc:
        conn.send(("failed", repr(exc)))
        raise


def _bare_round(port: int, publisher: Connection, total: int) -> float:
    """A bare paho subscriber takes the publisher's messages: seconds from its start to the last."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got, subscribed = threading.Semaphore(0), threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv311)
    client.on_message = lambda *_: got.release()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(HOST, port)
    client.loop_start()
    try:
        client.subscribe(f"{mqtt.ROOT}/+/{mqtt.EVENTS}", 1)
        subscribed.wait(DEADLINE_S)
        publisher.send("go")
        for _ in range(total):
            if not got.acquire(timeout=DEADLINE_S):
                raise RuntimeError("bench central: the bare subscriber stopped receiving")
        ended = time.monotonic()
        _, began, _ = _recv(publisher)
        return ended - began
    finally:
        client.disconnect()
        client.loop_stop()


def _central_round(
    config: WorkerConfig, offices: list[str], predictor: Predictor, publisher: Connection, total: int
) -> float:
    """A central worker (its broker link, its thread) takes them: seconds to the last applied."""
    worker = CentralWorker(config)
    stop, ready = threading.Event(), threading.Event()

    def serve() -> None:
        worker.start()  # the store is opened in the thread that uses it
        for office in offices:
            worker.offices[office] = OfficeState(office, copy.deepcopy(predictor))
        ready.set()
        try:
            worker.run(stop)
        finally:
            worker.close()

    thread = threading.Thread(target=serve, name="bench-central", daemon=True)
    thread.start()
    try:
        if not (ready.wait(DEADLINE_S) and worker.until(lambda: worker.synced, DEADLINE_S)):
            raise RuntimeError("bench central: the worker did not subscribe")
        publisher.send("go")
        if not worker.until(lambda: sum(worker.offices[o].applied for o in offices) == total, DEADLINE_S):
            raise RuntimeError("bench central: the worker did not apply every event")
        ended = time.monotonic()
        _, began, _ = _recv(publisher)
        return ended - began
    finally:
        stop.set()
        worker.wake()
        thread.join(DEADLINE_S)


def end_to_end(workdir: Path, offices: list[str], rounds: int, log: list[str]) -> list[Result]:
    import pytest

    from gateway.mqtt_client import broker_login
    from office.config import BrokerSettings
    from tests.mqtt_support import plain_mosquitto

    with contextlib.ExitStack() as stack:
        try:
            broker = stack.enter_context(plain_mosquitto(workdir / "mosquitto", extra=["max_queued_messages 0"]))
        except pytest.skip.Exception as exc:  # no mosquitto binary: one line, not a test outcome
            raise RuntimeError(f"bench central: {exc}") from None
        ctx = mp.get_context("spawn")  # spawn: this process runs paho threads, which a fork would copy
        parent, child = ctx.Pipe()
        publisher = ctx.Process(target=_publisher, args=(child, broker.port, offices), name="bench-central-pub")
        publisher.start()
        stack.callback(publisher.join, DEADLINE_S)
        stack.callback(parent.send, "stop")
        _, total = _recv(parent)
        predictor = trained_predictor()
        login = broker_login(BrokerSettings(), url=f"mqtt://{HOST}:{broker.port}")
        central_s, bare_s = [], []
        for r in range(rounds):
            for side in ("central", "bare") if r % 2 == 0 else ("bare", "central"):
                if side == "bare":
                    bare_s.append(_bare_round(broker.port, parent, total))
                else:
                    config = WorkerConfig(f"{workdir}/e2e-{r}.db", 0, 1, login, train=False)
                    central_s.append(_central_round(config, offices, predictor, parent, total))
    central, bare = median(central_s), median(bare_s)
    log.append(
        f"central end to end: {len(offices)} offices, {total:,} events through Mosquitto (QoS 1, one publisher "
        f"process, 1,000 in flight); central {total / central:,.0f} events/s "
        f"({', '.join(f'{total / s:,.0f}' for s in central_s)}), a bare paho subscriber "
        f"{total / bare:,.0f} events/s ({', '.join(f'{total / s:,.0f}' for s in bare_s)}); SQLite store"
    )
    return [
        Result(
            "Central end to end through Mosquitto (1 worker, SQLite)",
            f"{total / central:,.0f} events/s",
            f"{total / bare:,.0f} events/s (bare paho subscriber, same publisher and broker)",
            f"{bare / central:.2f}",
            "—",
            None,
        )
    ]


# -- the run -----------------------------------------------------------------------------------------
def run(workdir: Path, log: list[str], quick: bool = False) -> list[Result]:
    from tests.pg_support import PostgresCluster, pg_bin_dir

    count, rounds = (4, 1) if quick else (12, 3)
    offices = office_ids(count)
    messages, days = messages_for(offices)
    events = len(messages)
    predictor = trained_predictor()
    log.append(
        f"central workload: {count} offices × Nerima's rush Monday ({events:,} events, "
        f"{events / count:,.0f} per office), `best` trained on 5 past days"
    )
    results: list[Result] = []
    counter = iter(range(10**6))

    # Per worker, in this process: the worker, and the store alone on the same batches.
    ours, theirs, figures = [], [], {}
    for _ in range(rounds):
        n = next(counter)
        worker = new_worker(f"{workdir}/w-{n}.db", 0, 1, offices, predictor)
        began = time.perf_counter()
        feed(worker, messages)
        ours.append(time.perf_counter() - began)
        figures = {
            "computed": sum(s.figures.computed for s in worker.offices.values()),
            "published": sum(s.figures.published for s in worker.offices.values()),
        }
        assert sum(s.applied for s in worker.offices.values()) == events
        worker.close()
        theirs.append(store_alone(f"{workdir}/s-{n}.db", days, messages))
    rate, base = events / median(ours), events / median(theirs)
    seconds, waiting = busiest_round(days, predictor)
    log.append(
        f"central per worker (SQLite, broker out of the loop): {rate:,.0f} events/s "
        f"({', '.join(f'{events / s:,.0f}' for s in ours)}); the store alone on the same batches {base:,.0f} "
        f"events/s; {figures['computed']} estimate rounds, {figures['published']:,} publications in the last "
        f"round; one estimate round at an office's busiest ({waiting} waiting): {seconds * 1000:.1f} ms, so a "
        f"worker keeps ~{0.5 / seconds:,.0f} such offices estimated every second with half its time"
    )
    # The live shape: offices publish one event at a time, so a turn holds about one event per
    # office, and each office's append is a transaction (a commit, fsynced) of its own.
    trickle = messages[: 2000 if quick else 6000]

    def live_shape(backend: str, url: str) -> None:
        worker = new_worker(url, 0, 1, offices, predictor)
        began = time.perf_counter()
        feed(worker, trickle, chunk=len(offices))
        rate = len(trickle) / (time.perf_counter() - began)
        worker.close()
        log.append(
            f"central per worker, the live shape (one event per office per turn, a transaction each), {backend}: "
            f"{rate:,.0f} events/s over {len(trickle):,} events"
        )

    live_shape("SQLite", f"{workdir}/t-{next(counter)}.db")
    live_shape("SQLite, a file per office", f"{workdir}/t-{next(counter)}/")
    results.append(
        Result(
            "Central worker, events/s (SQLite, broker out of the loop)",
            f"{rate:,.0f} events/s",
            f"{base:,.0f} events/s (the store alone, same batches)",
            f"{rate / base:.2f}",
            f"≥ {GOAL_EVENTS_S:,} events/s",
            rate >= GOAL_EVENTS_S,
        )
    )

    def scale(backend: str, url: Callable[[], str], server_cpu: Callable[[], float] | None = None) -> None:
        one, two, ratios, cpu = [], [], [], {1: [0.0, 0.0], 2: [0.0, 0.0]}
        for r in range(rounds):
            for workers in (1, 2) if r % 2 == 0 else (2, 1):
                wall, applied, used, server = run_workers(url(), workers, offices, server_cpu)
                assert applied == events
                (one if workers == 1 else two).append(wall)
                cpu[workers][0] += used / wall / rounds
                cpu[workers][1] += server / wall / rounds
            ratios.append(one[-1] / two[-1])
        ratio = median(ratios)
        # CPU per event (workers and database server): equal for 1 and 2 workers means the work
        # itself parallelises, and the wall-clock ratio is what the machine's free cores allow.
        per_event = {n: (c[0] + c[1]) * (median(one) if n == 1 else median(two)) / events * 1e6 for n, c in cpu.items()}
        busy = ", ".join(
            f"{n} worker{'s' * (n > 1)} {c[0]:.2f}"
            + (f" + server {c[1]:.2f}" if server_cpu else "")
            + f" ({per_event[n]:.1f} µs CPU per event)"
            for n, c in cpu.items()
        )
        log.append(
            f"central 2 workers against 1, {backend}: 1 worker {events / median(one):,.0f} events/s, "
            f"2 workers {events / median(two):,.0f} events/s; per-round ratios {', '.join(f'{x:.2f}' for x in ratios)}"
            f"; cores busy: {busy}"
        )
        results.append(
            Result(
                f"Central, 2 worker processes against 1 ({backend})",
                f"{events / median(two):,.0f} events/s",
                f"{events / median(one):,.0f} events/s (1 worker process)",
                f"{ratio:.2f}×",
                f"≥ {GOAL_SCALE}×",
                ratio >= GOAL_SCALE,
            )
        )

    scale("SQLite, one file", lambda: f"{workdir}/scale-{next(counter)}.db")
    scale("SQLite, a file per office", lambda: f"{workdir}/scale-{next(counter)}/")
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        log.append("central, PostgreSQL: not measured, PostgreSQL is not installed (apt-get install postgresql)")
    else:
        if os.geteuid() == 0:
            workdir.chmod(0o711)  # the cluster runs as `nobody`, and its folder is in here
        with PostgresCluster(bin_dir, base=workdir) as cluster:
            scale("PostgreSQL", lambda: cluster.new_database("central"), postgres_cpu(cluster.data))
            live_shape("PostgreSQL", cluster.new_database("live"))
    results += end_to_end(workdir, offices, rounds, log)
    return results
