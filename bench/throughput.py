"""Journal events/s against raw SQLite inserts of the same rows, same settings.

The journal runs the rush day's commands through `TicketJournal.execute` (decide, encode, one
transaction per command, apply, snapshots as shipped). The baseline inserts the very rows the
journal stored, grouped as the journal grouped them, one `BEGIN IMMEDIATE; executemany; COMMIT`
per command, into the same schema, WAL, the same `synchronous`. Rounds alternate which goes
first; the ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Result, build_journal, median, nerima, remove_journal, timed
from bench.rushday import Step
from gateway.journal import DEFAULT_SNAPSHOT_EVERY
from office.model import Office

# The journal's events table and index (gateway/journal.py, schema v2).
_SCHEMA = """
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    day  TEXT NOT NULL,
    ts   TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_by_day ON events (day, seq);
"""
GOALS = {"FULL": 0.8, "OFF": 0.5}


@dataclass
class Pass:
    seconds: float
    events: int
    commands: int

    @property
    def per_second(self) -> float:
        return self.events / self.seconds

    @property
    def us_per_command(self) -> float:
        return self.seconds / self.commands * 1e6


def journal_pass(
    path: Path, steps: list[Step], synchronous: str, snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
) -> tuple[Pass, list[int]]:
    journal = build_journal(path, [], synchronous=synchronous, snapshot_every=snapshot_every)
    sizes: list[int] = []
    started = time.perf_counter()
    for step in steps:
        sizes.append(len(journal.execute(step.command, step.at).events))
    seconds = time.perf_counter() - started
    journal.close()
    return Pass(seconds, sum(sizes), len(steps)), sizes


def stored_groups(path: Path, sizes: list[int]) -> list[list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq, day, ts, type, body FROM events ORDER BY seq").fetchall()
    conn.close()
    groups, i = [], 0
    for n in sizes:
        if n:
            groups.append(rows[i : i + n])
            i += n
    assert i == len(rows)
    return groups


def raw_pass(path: Path, groups: list[list[tuple[object, ...]]], synchronous: str) -> Pass:
    remove_journal(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(_SCHEMA)
    insert = "INSERT INTO events VALUES (?, ?, ?, ?, ?)"
    started = time.perf_counter()
    for rows in groups:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return Pass(seconds, sum(len(g) for g in groups), len(groups))


def model_only(steps: list[Step]) -> float:
    """decide + apply in memory, no journal: the office model's share of the cost."""
    office = Office(nerima()[0])
    return timed(lambda: [office.execute(s.command, s.at) for s in steps])


def run(workdir: Path, steps: list[Step], rounds: int, log: list[str]) -> list[Result]:
    results = []
    jpath, rpath = workdir / "throughput.journal", workdir / "throughput-raw.db"
    # A warm-up pass stores the rows the baseline will insert (and warms caches for both).
    _, sizes = journal_pass(jpath, steps, "OFF")
    groups = stored_groups(jpath, sizes)
    events = sum(sizes)
    for sync in ("FULL", "OFF"):
        ratios, ours, raws = [], [], []
        for r in range(rounds):
            if r % 2 == 0:
                mine = journal_pass(jpath, steps, sync)[0]
                raw = raw_pass(rpath, groups, sync)
            else:
                raw = raw_pass(rpath, groups, sync)
                mine = journal_pass(jpath, steps, sync)[0]
            assert mine.events == raw.events == events
            ratios.append(mine.per_second / raw.per_second)
            ours.append(mine.per_second)
            raws.append(raw.per_second)
        ratio = median(ratios)
        log.append(
            f"synchronous={sync}: journal {median(ours):,.0f} events/s, raw {median(raws):,.0f} events/s; "
            f"per-round ratios {', '.join(f'{x:.2f}' for x in ratios)}"
        )
        results.append(
            Result(
                f"Journal events/s, synchronous={sync}",
                f"{median(ours):,.0f} events/s",
                f"{median(raws):,.0f} events/s (raw SQLite)",
                f"{ratio:.2f}",
                f"≥ {GOALS[sync]}",
                ratio >= GOALS[sync],
            )
        )
    # Where the time goes at synchronous=OFF: the office model, the journal without snapshots,
    # the snapshots, SQLite itself.
    model = median([model_only(steps) for _ in range(rounds)])
    nosnap = median([journal_pass(jpath, steps, "OFF", snapshot_every=10**9)[0].seconds for _ in range(rounds)])
    shipped = median([journal_pass(jpath, steps, "OFF")[0].seconds for _ in range(rounds)])
    raw_s = median([raw_pass(rpath, groups, "OFF").seconds for _ in range(rounds)])
    n = len(steps)
    log.append(
        f"per command at synchronous=OFF ({n:,} commands, {events:,} events): raw SQLite {raw_s / n * 1e6:.1f} µs; "
        f"office model decide+apply {model / n * 1e6:.1f} µs; journal without snapshots {nosnap / n * 1e6:.1f} µs, "
        f"so the journal's own work (records, JSON, bookkeeping) is {(nosnap - raw_s - model) / n * 1e6:.1f} µs; "
        f"snapshots add {(shipped - nosnap) / n * 1e6:.1f} µs"
    )
    results.append(
        Result(
            "  the same without snapshots (snapshot_every=10⁹), synchronous=OFF",
            f"{events / nosnap:,.0f} events/s",
            f"{events / raw_s:,.0f} events/s (raw SQLite)",
            f"{raw_s / nosnap:.2f}",
            "—",
            None,
        )
    )
    results.append(
        Result(
            "  the office model alone (decide+apply in memory, no storage)",
            f"{events / model:,.0f} events/s",
            f"{events / raw_s:,.0f} events/s (raw SQLite)",
            f"{raw_s / model:.2f}",
            "—",
            None,
        )
    )
    remove_journal(jpath)
    remove_journal(rpath)
    return results
