"""Central's event store (central/store.py): append throughput of both backends against a bare
`executemany` of the same rows into the same table, in the same run.

Workload: the Nerima rush day (bench/rushday.py) run through the office model, each event as
its public record with a `session` (what central takes from `…/events`), copied for a few
offices (`ward-00`, …); the offices' batches interleaved, as a broker delivers them. Batches of
100 and of 1,000 records.

- **Store**: `store.append(office, batch)`: every record checked, encoded, the office's row
  locked, duplicates and gaps looked for, the rows inserted, the office's figures updated; one
  transaction per batch, durable when it returns (SQLite: WAL, synchronous=FULL; PostgreSQL:
  synchronous_commit=on, fsync on).
- **Baseline**: the rows the store would insert (pre-encoded, unchecked) by a bare
  `executemany` in one transaction per batch, into the same table (a second store's own,
  empty, so the same schema, index and connection settings).

The two sides go through the batches block by block, each timed on its own, the order
alternating block by block and round by round, so a shared machine slows both alike; the ratio
is the median of the rounds' ratios. PostgreSQL is a cluster this benchmark starts in the run's
folder (tests/pg_support.py: initdb, pg_ctl, a free loopback port) and stops at the end.

Also logged: a replay (every record already stored: all duplicates) and reading an office's
records back, against a bare SELECT and orjson.loads of the same rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.common import Result, median, nerima, rush_steps
from central.store import Row, SqlEventStore, open_store, prepare_batch
from office import events as ev
from office.model import Office
from tests.pg_support import PostgresCluster, pg_bin_dir

BATCH_SIZES = (100, 1000)
GOAL_EVENTS_S = 20_000  # central's goal per worker, of which the store is one part
BLOCK_EVENTS = 5000  # events per block: long against the clock, short against a shared machine's swings

Batch = tuple[str, list[dict[str, Any]], list[Row]]  # office, records, the rows the store makes of them


def rush_day_records() -> list[dict[str, Any]]:
    """The rush day's events as published on `…/events` (docs/mqtt.md)."""
    config = nerima()[0]
    office = Office(config)
    out = []
    for step in rush_steps():
        for event in office.perform(step.command, step.at).events:
            out.append({**ev.public_record(event, config.id), "session": 1})
    return out


def batches(day: list[dict[str, Any]], offices: int, size: int) -> list[Batch]:
    """The day for each office, cut in batches of `size`, the offices' batches interleaved."""
    names = [f"ward-{n:02d}" for n in range(offices)]
    per_office = []
    for name in names:
        records = [{**r, "office": name} for r in day]
        per_office.append([records[i : i + size] for i in range(0, len(records), size)])
    out = []
    for k in range(len(per_office[0])):
        for name, cut in zip(names, per_office, strict=True):
            out.append((name, cut[k], prepare_batch(name, cut[k])[0]))
    return out


def side_by_side(
    open_pair: Callable[[], tuple[SqlEventStore, SqlEventStore]], work: list[Batch], round_no: int
) -> tuple[float, float]:
    """One round on a fresh store and a fresh baseline: (store seconds, baseline seconds)."""
    store, bare = open_pair()
    per_block = max(1, BLOCK_EVENTS // len(work[0][1]))
    ours = theirs = 0.0
    clock = time.perf_counter
    try:
        for b, start in enumerate(range(0, len(work), per_block)):
            block = work[start : start + per_block]
            for side in (0, 1) if (b + round_no) % 2 == 0 else (1, 0):
                began = clock()
                if side == 0:
                    for office, records, _ in block:
                        store.append(office, records)
                    ours += clock() - began
                else:
                    for _, _, rows in block:
                        # The bare insert, through the baseline store's own connection.
                        with bare._transaction():
                            bare._run_many(bare.sql.insert, rows)
                    theirs += clock() - began
        events = sum(len(records) for _, records, _ in work)
        assert sum(store.last_seq(office) for office in store.offices()) == events
    finally:
        store.close()
        bare.close()
    return ours, theirs


def replay_and_read(url: str, work: list[Batch]) -> tuple[float, float, float, int]:
    """In a store holding `work`: (seconds to append it all again, seconds to read the first
    office back through the store, seconds for a bare SELECT + orjson.loads of it, its records)."""
    clock = time.perf_counter
    with open_store(url) as store:
        began = clock()
        for office, records, _ in work:
            assert store.append(office, records).stored == 0
        replay = clock() - began
        office = work[0][0]
        began = clock()
        count = sum(1 for _ in store.read(office))
        read = clock() - began
        began = clock()
        rows = store._rows(store.sql.page, (office, 0, 2**63 - 1, 10**9))
        bare_count = len([orjson.loads(body) for _, body in rows])
        bare = clock() - began
        assert count == bare_count
    return replay, read, bare, count


def measure(
    backend: str,
    urls: Callable[[], tuple[str, str]],
    day: list[dict[str, Any]],
    offices: int,
    rounds: int,
    log: list[str],
) -> list[Result]:
    results = []
    for size in BATCH_SIZES:
        work = batches(day, offices, size)
        events = sum(len(records) for _, records, _ in work)
        ratios, ours, theirs = [], [], []
        last_url = ""
        for r in range(rounds):
            store_url, bare_url = urls()
            last_url = store_url
            mine, bare = side_by_side(lambda s=store_url, b=bare_url: (open_store(s), open_store(b)), work, r)
            ratios.append(bare / mine)
            ours.append(events / mine)
            theirs.append(events / bare)
        replay, read, bare_read, count = replay_and_read(last_url, work)
        rate, base = median(ours), median(theirs)
        ratio = median(ratios)
        extra = 1e6 / rate - 1e6 / base  # µs per event
        log.append(
            f"event store, {backend}, batches of {size} ({events:,} events, {offices} offices, {len(work):,} "
            f"transactions): store {rate:,.0f} events/s, bare executemany {base:,.0f} events/s; per-round ratios "
            f"{', '.join(f'{x:.2f}' for x in ratios)}; per event: bare {1e6 / base:.1f} µs, the store "
            f"{abs(extra):.1f} µs {'more' if extra >= 0 else 'less'}; a replay of them all (duplicates) "
            f"{events / replay:,.0f} "
            f"events/s; reading one office back ({count:,} records) {count / read:,.0f} records/s "
            f"against {count / bare_read:,.0f} for a bare SELECT + orjson.loads ({bare_read / read:.2f})"
        )
        results.append(
            Result(
                f"Event store append, {backend}, batches of {size}",
                f"{rate:,.0f} events/s",
                f"{base:,.0f} events/s (bare executemany, same table)",
                f"{ratio:.2f}",
                f"≥ {GOAL_EVENTS_S:,} events/s (a worker's whole goal)",
                rate >= GOAL_EVENTS_S,
            )
        )
    return results


def run(workdir: Path, log: list[str], quick: bool = False) -> list[Result]:
    day = rush_day_records()
    offices, rounds = (1, 1) if quick else (4, 3)
    log.append(f"event store workload: the rush day's {len(day):,} events per office, {offices} offices")
    results: list[Result] = []
    counter = iter(range(10**6))

    def sqlite_urls() -> tuple[str, str]:
        n = next(counter)
        return f"sqlite://{workdir}/store-{n}.db", f"sqlite://{workdir}/bare-{n}.db"

    results += measure("SQLite", sqlite_urls, day, offices, rounds, log)
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        log.append("event store, PostgreSQL: not measured, PostgreSQL is not installed (apt-get install postgresql)")
        return results
    if os.geteuid() == 0:
        workdir.chmod(0o711)  # the cluster runs as `nobody`, and its folder is in here
    with PostgresCluster(bin_dir, base=workdir) as cluster:
        log.append(f"PostgreSQL cluster started in {cluster.start_seconds:.1f} s (defaults: fsync on)")
        results += measure(
            "PostgreSQL",
            lambda: (cluster.new_database("store"), cluster.new_database("bare")),
            day,
            offices,
            rounds,
            log,
        )
    return results
