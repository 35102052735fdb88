"""Recovery of a rush day against merely reading and parsing its rows.

Recovery is `TicketJournal.open` (lock, header check, connect, stored config, newest snapshot,
replay of the events after it) and `close`. It is measured on three files:

- the rush day as stored at its end (snapshots as shipped);
- the same day stopped just before its last snapshot: the longest replay the snapshot cadence
  allows on this day (the worst moment to crash);
- the end-of-day file without its snapshot: the fallback, a full replay of the day.

The baseline, measured interleaved in the same run, is `SELECT seq, ts, type, body` of the
day's rows plus `json.loads` of every body.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from bench.common import Result, build_journal, fmt_ms, median, remove_journal, timed
from bench.rushday import Step
from gateway.journal import TicketJournal

GOAL_SECONDS = 0.25
GOAL_RATIO = 2.0


def read_and_parse(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        day = conn.execute("SELECT day FROM events ORDER BY seq DESC LIMIT 1").fetchone()[0]
        rows = conn.execute("SELECT seq, ts, type, body FROM events WHERE day = ? ORDER BY seq", (day,))
        return len([json.loads(body) for _seq, _ts, _type, body in rows])
    finally:
        conn.close()


def recover(path: Path) -> int:
    with TicketJournal.open(path) as journal:
        return journal.office.state.last_seq


def snapshot_points(path: Path, steps: list[Step]) -> tuple[int, int]:
    """(index of the command after which the last snapshot was taken, its seq)."""
    journal = build_journal(path, [], synchronous="OFF")
    last_snap, index = None, 0
    for i, step in enumerate(steps):
        journal.execute(step.command, step.at)
        snap = journal.conn.execute("SELECT max(seq) FROM snapshots").fetchone()[0]
        if snap != last_snap:
            last_snap, index = snap, i
    journal.close()
    assert last_snap is not None
    return index, last_snap


def run(workdir: Path, steps: list[Step], repeats: int, log: list[str]) -> list[Result]:
    end = workdir / "recovery-end.journal"
    worst = workdir / "recovery-worst.journal"
    replay = workdir / "recovery-replay.journal"
    index, snap_seq = snapshot_points(end, steps)
    build_journal(worst, steps[:index], synchronous="OFF").close()
    build_journal(replay, steps, synchronous="OFF").close()
    with sqlite3.connect(replay) as conn:
        conn.execute("DELETE FROM snapshots")
    conn.close()
    files = {"end": end, "worst": worst, "replay": replay}

    facts = {}
    for name, path in files.items():
        with TicketJournal.open(path) as j:
            state = j.office.state
            snap = j.conn.execute("SELECT max(seq) FROM snapshots").fetchone()[0]
            facts[name] = (state.last_seq, len(state.tickets), snap)
    events = read_and_parse(end)
    times: dict[str, list[float]] = {name: [] for name in files}
    base: list[float] = []
    for _ in range(repeats):
        base.append(timed(lambda: read_and_parse(end)))
        for name, path in files.items():
            times[name].append(timed(lambda p=path: recover(p)))  # type: ignore[misc]
    baseline = median(base)
    results = []
    labels = {
        "end": "Recovery of the rush day, as stored at its end",
        "worst": "Recovery just before the day's last snapshot (longest replay)",
        "replay": "Recovery by full replay (no usable snapshot)",
    }
    for name in files:
        t = median(times[name])
        last_seq, tickets, snap = facts[name]
        replayed = last_seq - (snap or 0)
        log.append(
            f"{name}: {last_seq:,} events, {tickets:,} tickets, snapshot at {snap}, replayed {replayed:,} events; "
            f"median {fmt_ms(t)} over {repeats} (min {fmt_ms(min(times[name]))})"
        )
        goal = f"≤ {GOAL_SECONDS} s and ≤ {GOAL_RATIO}×" if name != "replay" else "—"
        met = (t <= GOAL_SECONDS and t / baseline <= GOAL_RATIO) if name != "replay" else None
        results.append(
            Result(
                f"{labels[name]} ({last_seq:,} events, {replayed:,} replayed)",
                fmt_ms(t),
                f"{fmt_ms(baseline)} (read+parse {events:,} rows)",
                f"{t / baseline:.2f}×",
                goal,
                met,
            )
        )
    log.append(f"baseline read+parse of the day's {events:,} rows: median {fmt_ms(baseline)} (min {fmt_ms(min(base))})")
    log.append(f"the day's last snapshot came after command {index:,} of {len(steps):,} (seq {snap_seq:,})")
    for path in files.values():
        remove_journal(path)
    return results
