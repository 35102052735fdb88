"""The ticket journal: the office model made crash-safe in one SQLite file.

Owns the file. Every command's events are committed (WAL, synchronous=FULL: fsynced) before the
model applies them and before their effects are released, so a ticket is stored before it is
printed and a call before it is shown. State is the replay of the journal, from the newest
snapshot. One writer per file (an exclusive lock beside it); readers may look at any time.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import sqlite3
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from office import events as ev
from office.config import OfficeConfig, parse_config
from office.model import Command, Decision, Office
from office.state import OfficeState

SCHEMA_VERSION = 2
APPLICATION_ID = 0x43464A31  # "CFJ1": marks the file as a counterfloor journal
_SQLITE_MAGIC = b"SQLite format 3\x00"
SYNC_MODES = ("FULL", "NORMAL", "OFF")


class JournalError(Exception):
    """A journal that cannot be used as asked; the file is left as it was."""


class NotAJournal(JournalError):
    pass


class JournalLocked(JournalError):
    pass


class JournalTooNew(JournalError):
    pass


class JournalCorrupt(JournalError):
    pass


def new_token() -> str:
    """A resident's page token: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def utc_now() -> datetime:
    return datetime.now().astimezone()


# -- file identity, checked from the header before SQLite touches the file ------------------------
@dataclass(frozen=True, slots=True)
class _Header:
    application_id: int
    user_version: int


def _read_header(path: Path) -> _Header:
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except IsADirectoryError:
        raise NotAJournal(f"{path} is a directory, not a journal") from None
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise NotAJournal(f"{path} is not a counterfloor journal (not an SQLite database); left untouched")
    user_version, application_id = struct.unpack(">I4xI", head[60:72])
    if application_id != APPLICATION_ID:
        raise NotAJournal(
            f"{path} is an SQLite database of another application (application_id {application_id:#x}); left untouched"
        )
    return _Header(application_id, user_version)


def _check_version(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise JournalTooNew(
            f"{path} has journal schema version {version}, newer than this counterfloor's "
            f"{SCHEMA_VERSION}; upgrade counterfloor (the file is left untouched)"
        )
    if version < 1:
        raise NotAJournal(f"{path} has no journal schema; left untouched")


_SCHEMA_V2 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    day  TEXT NOT NULL,
    ts   TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_by_day ON events (day, seq);
CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, format INTEGER NOT NULL, state TEXT NOT NULL);
"""


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """v1 stored events without their business day and had no snapshots."""
    conn.execute("ALTER TABLE events ADD COLUMN day TEXT NOT NULL DEFAULT ''")
    day = ""
    updates: list[tuple[str, int]] = []
    for seq, type_, body in conn.execute("SELECT seq, type, body FROM events ORDER BY seq"):
        if type_ == "schedule":
            day = json.loads(body)["date"]
        updates.append((day, seq))
    conn.executemany("UPDATE events SET day = ? WHERE seq = ?", updates)
    conn.execute("CREATE INDEX events_by_day ON events (day, seq)")
    conn.execute("CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, format INTEGER NOT NULL, state TEXT NOT NULL)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}


def _connect(path: Path, synchronous: str, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _decode_rows(rows: Iterator[tuple[int, str, str, str]]) -> Iterator[ev.Event]:
    for seq, ts, type_, body in rows:
        try:
            fields = json.loads(body)
        except json.JSONDecodeError as exc:
            raise JournalCorrupt(f"event {seq}: body is not JSON ({exc})") from None
        try:
            yield ev.event_from_record(seq, ts, type_, fields)
        except ev.EventFormatError as exc:
            raise JournalCorrupt(str(exc)) from None


class _Lock:
    """An exclusive lock on `<journal>.lock`, held for the writer's lifetime."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise JournalLocked(
                f"{path} is in use (the lock is held by pid {holder}); only one writer may open a journal"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


class JournalReader:
    """Read-only access to a journal, safe beside a running writer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise JournalError(f"no journal at {self.path}")
        _check_version(self.path, _read_header(self.path).user_version)
        self.conn = _connect(self.path, "FULL", read_only=True)
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        _check_version(self.path, version)
        if version != SCHEMA_VERSION:
            raise JournalError(f"{self.path} has schema version {version}; open it once for writing to migrate it")
        self.meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    @property
    def office_id(self) -> str:
        return str(self.meta["office"])

    def config(self) -> OfficeConfig:
        return parse_config(self.meta["config"], source=f"{self.path} (stored config)")

    def days(self) -> list[str]:
        return [d for (d,) in self.conn.execute("SELECT DISTINCT day FROM events ORDER BY day")]

    def events(self, first_day: date | None = None, last_day: date | None = None) -> Iterator[ev.Event]:
        lo = first_day.isoformat() if first_day else ""
        hi = last_day.isoformat() if last_day else "9999-12-31"
        rows = self.conn.execute(
            "SELECT seq, ts, type, body FROM events WHERE day BETWEEN ? AND ? ORDER BY seq",
            (lo, hi),
        )
        yield from _decode_rows(rows)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TicketJournal:
    """The single writer of one office's journal, holding the office model it makes durable."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock: _Lock,
        office: Office,
        *,
        snapshot_every: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.path = path
        self.conn = conn
        self._lock = lock
        self.office = office
        self.snapshot_every = snapshot_every
        self.clock = clock
        self._since_snapshot = 0

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        config: OfficeConfig,
        config_text: str,
        *,
        synchronous: str = "FULL",
        snapshot_every: int = 1000,
        clock: Callable[[], datetime] = utc_now,
    ) -> TicketJournal:
        p = Path(path)
        if p.exists():
            raise JournalError(f"{p} exists already; open it instead of creating it")
        lock = _Lock(p)
        try:
            # Rollback-journal mode while creating, so the header (application id, version)
            # is in the main file at once; then WAL for normal operation.
            conn = sqlite3.connect(p, isolation_level=None)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute("BEGIN")
            for statement in _SCHEMA_V2.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("office", config.id),
                    ("config", config_text),
                    ("created", utc_now().isoformat()),
                ],
            )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
            conn.close()
        except BaseException:
            lock.release()
            raise
        lock.release()
        return cls.open(p, synchronous=synchronous, snapshot_every=snapshot_every, clock=clock)

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: tuple[OfficeConfig, str] | None = None,
        *,
        synchronous: str = "FULL",
        snapshot_every: int = 1000,
        clock: Callable[[], datetime] = utc_now,
    ) -> TicketJournal:
        """Open for writing; `config` (parsed, text) replaces the stored config if given."""
        p = Path(path)
        if synchronous not in SYNC_MODES:
            raise ValueError(f"synchronous must be one of {SYNC_MODES}")
        if not p.exists():
            raise JournalError(f"no journal at {p}; create one with `counterfloor office init`")
        _check_version(p, _read_header(p).user_version)
        lock = _Lock(p)
        try:
            conn = _connect(p, synchronous)
            try:
                cls._migrate(p, conn)
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if config is not None:
                    parsed, text = config
                    if parsed.id != meta["office"]:
                        raise JournalError(
                            f"{p} belongs to office {meta['office']!r}, but the config is for {parsed.id!r}"
                        )
                    if text != meta["config"]:
                        conn.execute("UPDATE meta SET value = ? WHERE key = 'config'", (text,))
                else:
                    parsed = parse_config(meta["config"], source=f"{p} (stored config)")
                office = Office(parsed, cls._recover(conn))
            except BaseException:
                conn.close()
                raise
        except BaseException:
            lock.release()
            raise
        return cls(p, conn, lock, office, snapshot_every=snapshot_every, clock=clock)

    @staticmethod
    def _migrate(path: Path, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        _check_version(path, version)
        while version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version={version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _recover(conn: sqlite3.Connection) -> OfficeState:
        """The state: the newest usable snapshot plus the events after it, or else the replay
        of the newest business day (the state holds only the current day)."""
        state: OfficeState | None = None
        row = conn.execute("SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            try:
                state = OfficeState.from_snapshot(json.loads(row[1]))
            except (ValueError, KeyError, TypeError, IndexError):
                state = None  # an older snapshot format: replay instead
        if state is None:
            last = conn.execute("SELECT day FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            if last is None:
                return OfficeState()
            first = conn.execute("SELECT min(seq) FROM events WHERE day = ?", (last[0],)).fetchone()[0]
            state = OfficeState(last_seq=first - 1)
        rows = conn.execute("SELECT seq, ts, type, body FROM events WHERE seq > ? ORDER BY seq", (state.last_seq,))
        try:
            for event in _decode_rows(rows):
                state.apply(event)
        except ValueError as exc:
            raise JournalCorrupt(f"journal cannot be replayed: {exc}") from None
        return state

    # -- writing -----------------------------------------------------------------------------
    def execute(self, command: Command, now: datetime | None = None) -> Decision:
        """Decide, store durably, then apply. Effects in the result may be released."""
        decision = self.office.decide(command, now or self.clock())
        events = decision.events
        if not events:
            return decision
        state = self.office.state
        first = events[0]
        new_day = isinstance(first, ev.Schedule) and first.new_day
        day = first.date if isinstance(first, ev.Schedule) and new_day else (state.day or first.ts.date()).isoformat()
        rows = [
            (
                e.seq,
                day,
                ev.format_ts(e.ts),
                e.TYPE,
                json.dumps(e.body(), ensure_ascii=False, separators=(",", ":")),
            )
            for e in events
        ]
        with self._transaction():
            self.conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
        self.office.apply_all(events)
        self._since_snapshot += len(events)
        if new_day:
            self._prune(date.fromisoformat(day))
        if self._since_snapshot >= self.snapshot_every:
            self.snapshot()
        return decision

    def snapshot(self) -> None:
        state = self.office.state
        data = json.dumps(state.to_snapshot(), ensure_ascii=False, separators=(",", ":"))
        with self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (state.last_seq, 1, data))
            self.conn.execute("DELETE FROM snapshots WHERE seq < ?", (state.last_seq,))
        self._since_snapshot = 0

    def _prune(self, today: date) -> None:
        """Delete days older than the retention period (tickets hold no personal data)."""
        cutoff = today - timedelta(days=self.office.config.rules.retention_days)
        with self._transaction():
            self.conn.execute("DELETE FROM events WHERE day < ?", (cutoff.isoformat(),))

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def reader(self) -> JournalReader:
        return JournalReader(self.path)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self._lock.release()

    def __enter__(self) -> TicketJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *rest: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
