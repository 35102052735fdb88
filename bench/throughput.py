"""Journal events/s against raw SQLite inserts of the same rows, same settings.

The journal runs the rush day's commands through `TicketJournal.execute` (decide, encode, one
transaction per command, apply, snapshots as shipped). The baseline inserts the very rows the
journal stored, grouped as the journal grouped them, one `BEGIN IMMEDIATE; executemany; COMMIT`
per command, into the same schema, WAL, the same `synchronous`.

The two go through the day side by side, in blocks of `BLOCK` commands, each side timed on its
own and the order alternating block by block and round by round: a machine shared with other work
then slows both alike. (Whole-day passes one after the other did not: on a busy machine their
per-round ratios at synchronous=FULL ranged from 0.4 to 2.6.) The ratio is the median of the
per-round ratios.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
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
_INSERT = "INSERT INTO events VALUES (?, ?, ?, ?, ?)"
GOALS = {"FULL": 0.8, "OFF": 0.5}
# Commands per block: long against the clock's resolution and the switch between the two sides
# (at synchronous=OFF a block takes milliseconds), short against the swings of a shared machine.
BLOCK = 200

Rows = list[tuple[object, ...]]


@dataclass
class Pass:
    seconds: float
    events: int
    commands: int
    cpu_seconds: float = 0.0  # process CPU time: what other work on the machine does not add to

    @property
    def per_second(self) -> float:
        return self.events / self.seconds

    @property
    def us_per_command(self) -> float:
        return self.seconds / self.commands * 1e6


def journal_pass(
    path: Path, steps: list[Step], synchronous: str, snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
) -> tuple[Pass, list[int]]:
    """The whole day through a fresh journal; also how many events each command stored."""
    journal = build_journal(path, [], synchronous=synchronous, snapshot_every=snapshot_every)
    sizes: list[int] = []
    started = time.perf_counter()
    for step in steps:
        sizes.append(len(journal.execute(step.command, step.at).events))
    seconds = time.perf_counter() - started
    journal.close()
    return Pass(seconds, sum(sizes), len(steps)), sizes


def stored_rows(path: Path, sizes: list[int]) -> list[Rows]:
    """The rows the journal stored, as each command stored them (empty: it stored nothing)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq, day, ts, type, body FROM events ORDER BY seq").fetchall()
    conn.close()
    groups, i = [], 0
    for n in sizes:
        groups.append(rows[i : i + n])
        i += n
    assert i == len(rows)
    return groups


def raw_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    remove_journal(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(_SCHEMA)
    return conn


def side_by_side(
    jpath: Path,
    rpath: Path,
    steps: list[Step],
    groups: list[Rows],
    synchronous: str,
    round_no: int,
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
) -> tuple[Pass, Pass]:
    """One round: a fresh journal and a fresh raw database go through the day block by block."""
    journal = build_journal(jpath, [], synchronous=synchronous, snapshot_every=snapshot_every)
    conn = raw_connection(rpath, synchronous)
    execute = journal.execute
    wall, cpu = time.perf_counter, time.process_time
    ours = [0.0, 0.0]
    theirs = [0.0, 0.0]
    events = raw_events = transactions = 0
    for b, start in enumerate(range(0, len(steps), BLOCK)):
        block = steps[start : start + BLOCK]
        block_rows = [rows for rows in groups[start : start + BLOCK] if rows]
        for side in (0, 1) if (b + round_no) % 2 == 0 else (1, 0):
            if side == 0:
                w, c = wall(), cpu()
                for step in block:
                    events += len(execute(step.command, step.at).events)
                ours[0] += wall() - w
                ours[1] += cpu() - c
            else:
                w, c = wall(), cpu()
                for rows in block_rows:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(_INSERT, rows)
                    conn.execute("COMMIT")
                theirs[0] += wall() - w
                theirs[1] += cpu() - c
                raw_events += sum(len(rows) for rows in block_rows)
                transactions += len(block_rows)
    journal.close()
    conn.close()
    assert events == raw_events, (events, raw_events)
    return Pass(ours[0], events, len(steps), ours[1]), Pass(theirs[0], raw_events, transactions, theirs[1])


def model_only(steps: list[Step]) -> float:
    """The model's live path (`Office.perform`: decide and apply) in memory, no journal: the
    office model's share of the cost."""
    office = Office(nerima()[0])

    def day() -> None:
        for s in steps:
            office.perform(s.command, s.at)  # decisions dropped, as the journal's caller does

    return timed(day)


def model_beside_inserts(rpath: Path, steps: list[Step], groups: list[Rows], synchronous: str | None) -> float:
    """The office model's live path (decide and apply), timed on its own, with each command's rows inserted raw
    (one transaction, at `synchronous`) between commands, or nothing between them (None): what
    SQLite's work, and an fsync, do to the cost of the Python work that runs between them."""
    office = Office(nerima()[0])
    conn = raw_connection(rpath, synchronous) if synchronous else None
    clock = time.perf_counter
    spent = 0.0
    for step, rows in zip(steps, groups, strict=True):
        started = clock()
        office.perform(step.command, step.at)
        spent += clock() - started
        if conn is not None and rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
    if conn is not None:
        conn.close()
    return spent


def ladder(workdir: Path, steps: list[Step], groups: list[Rows], synchronous: str) -> dict[str, float]:
    """Where the journal's time goes, each layer as a ratio to raw inserts: four sides, each with its
    own file, take every command in turn (the order rotating command by command), so all four
    see the machine alike at a fine grain. The sides: raw inserts (the baseline); the same rows
    inserted on a journal's connection (SQLite alone: ~1.0); the office model's live path and then
    those rows (what the model costs); the journal's `execute` (the model, the records and the
    bookkeeping). Returns raw seconds / each side's seconds."""
    files = [workdir / f"ladder-{name}.db" for name in ("raw", "sqlite", "model", "journal")]
    raw_conn = raw_connection(files[0], synchronous)
    sql_only, with_model, journal = (build_journal(f, [], synchronous=synchronous) for f in files[1:])

    def insert(conn: sqlite3.Connection, rows: Rows) -> None:
        if rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")

    perform, execute = with_model.office.perform, journal.execute
    sides: list[tuple[str, Callable[[Step, Rows], object]]] = [
        ("raw", lambda step, rows: insert(raw_conn, rows)),
        ("sqlite", lambda step, rows: insert(sql_only.conn, rows)),
        ("model", lambda step, rows: (perform(step.command, step.at), insert(with_model.conn, rows))),
        ("journal", lambda step, rows: execute(step.command, step.at)),
    ]
    spent = dict.fromkeys((name for name, _ in sides), 0.0)
    clock, k = time.perf_counter, len(sides)
    for i, (step, rows) in enumerate(zip(steps, groups, strict=True)):
        for j in range(k):
            name, side = sides[(i + j) % k]
            started = clock()
            side(step, rows)
            spent[name] += clock() - started
    for j in (sql_only, with_model, journal):
        j.close()
    raw_conn.close()
    for f in files:
        remove_journal(f)
    return {name: spent["raw"] / seconds for name, seconds in spent.items() if name != "raw"}


def run(workdir: Path, steps: list[Step], rounds: int, log: list[str]) -> list[Result]:
    results = []
    jpath, rpath = workdir / "throughput.journal", workdir / "throughput-raw.db"
    # A warm-up pass stores the rows the baseline will insert (and warms caches for both).
    _, sizes = journal_pass(jpath, steps, "OFF")
    groups = stored_rows(jpath, sizes)
    events = sum(sizes)
    n = len(steps)
    ratio_at: dict[str, float] = {}
    for sync in ("FULL", "OFF"):
        ratios, cpu_ratios, ours, raws = [], [], [], []
        for r in range(rounds):
            mine, raw = side_by_side(jpath, rpath, steps, groups, sync, r)
            assert mine.events == raw.events == events
            ratios.append(raw.seconds / mine.seconds)
            cpu_ratios.append(raw.cpu_seconds / mine.cpu_seconds)
            ours.append(mine.per_second)
            raws.append(raw.per_second)
        ratio = ratio_at[sync] = median(ratios)
        # The ratio depends on the disk: the journal's own cost is a fixed time per event, the
        # baseline's time is mostly the commit's (an fsync at FULL). Both printed, in µs.
        raw_us, own_us = 1e6 / median(raws), 1e6 / median(ours) - 1e6 / median(raws)
        log.append(
            f"synchronous={sync}: journal {median(ours):,.0f} events/s, raw {median(raws):,.0f} events/s; "
            f"per-round ratios {', '.join(f'{x:.2f}' for x in ratios)}; "
            f"the same in process CPU time {', '.join(f'{x:.2f}' for x in cpu_ratios)}; "
            f"per event: raw {raw_us:.1f} µs, the journal {own_us:.1f} µs more"
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
    # Where the time goes at synchronous=OFF: SQLite itself, the office model, the journal's own
    # work, the snapshots. Passes measured apart differ with the machine's load, so the journal's
    # figures are derived from ratios to a baseline measured beside them.
    model = median([model_only(steps) for _ in range(rounds)])
    nosnap_pairs = [side_by_side(jpath, rpath, steps, groups, "OFF", r, snapshot_every=10**9) for r in range(rounds)]
    raw_s = median([raw.seconds for _, raw in nosnap_pairs])
    nosnap_ratio = median([raw.seconds / m.seconds for m, raw in nosnap_pairs])
    nosnap, shipped = raw_s / nosnap_ratio, raw_s / ratio_at["OFF"]
    log.append(
        f"per command at synchronous=OFF ({n:,} commands, {events:,} events): raw SQLite {raw_s / n * 1e6:.1f} µs; "
        f"the journal {shipped / n * 1e6:.1f} µs at the ratio above, {nosnap / n * 1e6:.1f} µs without snapshots "
        f"(so snapshots add {(shipped - nosnap) / n * 1e6:.1f} µs); of the rest, the office model's decide+apply "
        f"takes {model / n * 1e6:.1f} µs on its own, which leaves {(nosnap - raw_s - model) / n * 1e6:.1f} µs for "
        "the journal's own work (records, JSON, bookkeeping) and for the Python work and SQLite's slowing "
        "each other down when they alternate (next line)"
    )
    beside = {
        label: median([model_beside_inserts(rpath, steps, groups, sync) for _ in range(rounds)]) / n * 1e6
        for label, sync in (
            ("alone", None),
            ("between raw inserts at synchronous=OFF", "OFF"),
            ("between raw inserts at synchronous=FULL", "FULL"),
        )
    }
    log.append(
        "the office model's decide+apply per command, timed by itself: "
        + "; ".join(f"{us:.1f} µs {label}" for label, us in beside.items())
    )
    results.append(
        Result(
            "  the same without snapshots (snapshot_every=10⁹), synchronous=OFF",
            f"{events / nosnap:,.0f} events/s",
            f"{events / raw_s:,.0f} events/s (raw SQLite)",
            f"{nosnap_ratio:.2f}",
            "—",
            None,
        )
    )
    results.append(
        Result(
            "  the office model alone (decide+apply, Office.perform, in memory, no storage)",
            f"{events / model:,.0f} events/s",
            f"{events / raw_s:,.0f} events/s (raw SQLite)",
            f"{raw_s / model:.2f}",
            "—",
            None,
        )
    )
    ladders = [ladder(workdir, steps, groups, "FULL") for _ in range(rounds)]
    rungs = {name: median([lad[name] for lad in ladders]) for name in ladders[0]}
    log.append(
        "synchronous=FULL, layer by layer (bench.throughput.ladder: four sides taking every command in turn), "
        f"as ratios to raw inserts, median of {rounds}: the same rows on a journal's connection "
        f"{rungs['sqlite']:.2f}; the office model's live path and then those rows {rungs['model']:.2f}; "
        f"the journal's execute {rungs['journal']:.2f} (per round: "
        + "; ".join(f"{lad['sqlite']:.2f}/{lad['model']:.2f}/{lad['journal']:.2f}" for lad in ladders)
        + ")"
    )
    remove_journal(jpath)
    remove_journal(rpath)
    return results
