"""The event store in one SQLite file: central's embedded default (central/store.py has the
interface and the logic; this module the file, its schema and its transactions).

WAL with `synchronous=FULL`: a batch is fsynced when `append` returns, and readers never wait
for the writer. Several processes may write one file: each batch takes the file's write lock
(`BEGIN IMMEDIATE`), waiting up to `BUSY_TIMEOUT_MS` for it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from central.store import SCHEMA_VERSION, Row, SqlEventStore, Statements, StoreError

# PRAGMA application_id of a central event store ("CFES"), so that a gateway's journal or any
# other SQLite file given by mistake is refused rather than written into.
APPLICATION_ID = 0x43464553
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = f"""
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE offices (
    office         TEXT PRIMARY KEY,
    last_seq       INTEGER NOT NULL DEFAULT 0,
    contiguous_seq INTEGER NOT NULL DEFAULT 0,
    stored         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (
    office TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    day    TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (office, seq)
);
CREATE INDEX events_by_day ON events (office, day, seq);
CREATE TABLE office_meta (
    office TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (office, key)
);
"""


class SqliteEventStore(SqlEventStore):
    sql = Statements.build("?", "")  # BEGIN IMMEDIATE already holds the whole file's write lock

    def __init__(self, path: str | Path, url: str | None = None) -> None:
        self.path = Path(path)
        self.url = url or str(path)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreError(f"event store {self.path}: cannot open ({exc}; does its folder exist?)") from None
        try:
            self._set_up_waiting()
        except sqlite3.DatabaseError as exc:  # not a database, read-only, locked too long
            self.conn.close()
            raise StoreError(f"event store {self.path}: cannot use it ({exc})") from None
        except BaseException:
            self.conn.close()
            raise

    def _set_up_waiting(self) -> None:
        """`_set_up`, again while another connection holds the file: switching a new file to WAL
        (and WAL's recovery at a first open) answers "locked" at once, without SQLite's busy wait."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.01
        while True:
            try:
                self._set_up()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                time.sleep(delay)  # another writer is setting the file up: give it the lock
                delay = min(delay * 2, 0.2)

    def _set_up(self) -> None:
        conn = self.conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":  # e.g. ":memory:", or a file system without shared memory
            raise StoreError(f"event store {self.path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if app_id == 0 and not tables:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                return
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"event store {self.path}: not a central event store (a SQLite file with tables "
                f"{', '.join(sorted(tables)) or 'none'} and application id {app_id:#x})"
            )
        if version != SCHEMA_VERSION:
            raise StoreError(f"event store {self.path}: schema v{version}, this code reads v{SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")  # the fsync: synchronous=FULL
        except BaseException:
            # A failed COMMIT can leave the transaction open; the next BEGIN would fail.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.execute(sql, params)

    def _run_many(self, sql: str, rows: list[Row] | list[tuple[str, str, str]]) -> None:
        self.conn.executemany(sql, rows)

    def close(self) -> None:
        self.conn.close()
