"""Helpers shared by the journal tests, the crash harness and the benchmarks."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gateway.journal import JournalReader
from office.state import OfficeState


def comparable(state: OfficeState) -> tuple[Any, ...]:
    """Everything a state holds, for equality (datetimes compare as instants)."""
    return (
        state.day,
        state.last_seq,
        state.last_ts,
        state.schedule,
        state.tickets,
        state.counters,
        state.queues,
        state.last_number,
        state.unprinted,
        set(state.calls),
        state.overrides,
        state.dispenser_messages,
    )


def replay_last_day(path: Path) -> OfficeState:
    """The state by full replay of the newest business day, read through JournalReader only."""
    with JournalReader(path) as reader:
        days = reader.days()
        if not days:
            return OfficeState()
        day = days[-1]
        first = reader.conn.execute("SELECT min(seq) FROM events WHERE day = ?", (day,)).fetchone()[0]
        state = OfficeState(last_seq=first - 1)
        for event in reader.events(date.fromisoformat(day), date.fromisoformat(day)):
            state.apply(event)
        return state


@dataclass(frozen=True)
class Fingerprint:
    """What 'left untouched' means for a file and its neighbours."""

    content: bytes
    mtime_ns: int
    neighbours: frozenset[str]


def fingerprint(path: Path) -> Fingerprint:
    st = os.stat(path)
    return Fingerprint(path.read_bytes(), st.st_mtime_ns, frozenset(os.listdir(path.parent)))


def row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("events", "snapshots", "meta")
        }


def rows_digest(conn: sqlite3.Connection, upto: int) -> str:
    """A digest of every stored event up to `upto`: a committed event may never change — but for
    its page token, which the journal empties once its business day is over (gateway/journal.py,
    the scrub of private fields): the digest reads every token as empty."""
    h = hashlib.sha256()
    for seq, day, ts, type_, body in conn.execute(
        "SELECT seq, day, ts, type, body FROM events WHERE seq <= ? ORDER BY seq", (upto,)
    ):
        record = json.loads(body)
        if "token" in record:
            record["token"] = ""
        h.update(repr((seq, day, ts, type_, json.dumps(record, sort_keys=True))).encode())
    return h.hexdigest()
