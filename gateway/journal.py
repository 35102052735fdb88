"""The ticket journal: the office model made crash-safe in one SQLite file.

Owns the file. Every command's events are committed (WAL, synchronous=FULL: fsynced) before the
model applies them and before their effects are released, so a ticket is stored before it is
printed and a call before it is shown. State is the replay of the journal, from the newest
snapshot. One writer per file (an exclusive lock beside it); readers may look at any time.
Residents' page tokens (the events' private fields) are kept for their business day only: the
first write of a new day removes the earlier days' (_scrub_private).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from office import events as ev
from office.config import OfficeConfig, parse_config
from office.model import Command, Decision, Office, RecordConfigChange
from office.state import SNAPSHOT_FORMAT, OfficeState

SCHEMA_VERSION = 4
APPLICATION_ID = 0x43464A31  # "CFJ1": marks the file as a counterfloor journal
_SQLITE_MAGIC = b"SQLite format 3\x00"
SYNC_MODES = ("FULL", "NORMAL", "OFF")
# Events between snapshots: a rush day's replay of this many stays well inside the recovery goal
# (docs/benchmarks.md: about 0.9× the time to read and parse the day's rows, against 2×), while a
# snapshot of a full day costs tens of milliseconds; 4000 paid twice as many for half the replay.
DEFAULT_SNAPSHOT_EVERY = 8000
# The retention cutoff moves with the calendar, a day or a holiday's few days at a time; a move
# larger than this at once is a clock leap, not a closure (the longest, New Year's, is about 9).
PURGE_STEP_MAX_DAYS = 14
# Columns named: a journal migrated from v1 has its day column last.
_INSERT_EVENT = "INSERT INTO events (seq, day, ts, type, body) VALUES (?, ?, ?, ?, ?)"
# "config_set_over": the SHA-256 of the config (the file's) that a pushed or reconfigured config
# was set over; while the gateway is started with that same file, the journal's config stands.
CONFIG_SET_OVER = "config_set_over"
# "private_scrubbed_before": the business day before which the journal holds no private field
# (office.events.PRIVATE_FIELDS: residents' page tokens) any more (see _scrub_private).
SCRUBBED_BEFORE = "private_scrubbed_before"
_OWN_META = frozenset({"office", "config", "created", "retention_cutoff", CONFIG_SET_OVER, SCRUBBED_BEFORE})
# A journal's backlog of unscrubbed days (one made by a version that kept tokens for the whole
# retention period) is scrubbed at opening this many days per transaction, so that the WAL, which
# holds every page a transaction rewrites, stays a fraction of the file.
SCRUB_DAYS_PER_TRANSACTION = 31
CONFIG_HISTORY_KEPT = 20  # replaced configs kept (a config is a few KB to a few tens of KB)
# Each connection's page cache (SQLite's default is 2 MB). The gateway reads back the business day
# under way (its estimator's catch-up, retried requests, snapshots) and appends at the end of the
# file: a busy office's day is ~0.4 MB of pages, so 1 MB holds it and the day before. A bigger
# cache fills with days nothing reads again, as the file grows: the soak's month saw the smaller
# office's cache still filling to 2 MB on its eleventh day.
CACHE_KIB = 1024
_log = logging.getLogger(__name__)


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


class RequestDone(JournalError):
    """The request id was stored already, with the command it asked for: it is not carried out
    again. `result` is what the first time stored (a retried request gets the first answer)."""

    def __init__(self, request: str, result: str) -> None:
        self.request = request
        self.result = result
        super().__init__(f"request {request!r} was carried out already")


def new_token() -> str:
    """A resident's page token: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def utc_now() -> datetime:
    return datetime.now().astimezone()


# -- the record form of events, on the hot path of every command -----------------------------------
def _encode_json(value: Any) -> str:
    """Compact UTF-8 JSON, as `json.dumps(..., ensure_ascii=False, separators=(",", ":"))`
    writes it, at a fraction of the cost: the journal encodes every event on the write path."""
    return orjson.dumps(value).decode()


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


def is_sqlite_file(path: Path) -> bool:
    """Whether `path` is a readable file that starts like an SQLite database (a journal, most likely)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _check_version(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise JournalTooNew(
            f"{path} has journal schema version {version}, newer than this counterfloor's "
            f"{SCHEMA_VERSION}; upgrade counterfloor (the file is left untouched)"
        )
    if version < 1:
        raise NotAJournal(f"{path} has no journal schema; left untouched")


# Request ids of commands carried out (a control request's id, a device's press): a retry of one
# gets the first result instead of a second ticket. Stored with the command's events, in their
# transaction; kept for the current and the previous business day.
_REQUESTS_TABLE = (
    "CREATE TABLE requests (id TEXT PRIMARY KEY, day TEXT NOT NULL, seq INTEGER NOT NULL, result TEXT NOT NULL)"
)


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


# The configs a journal's office had before its current one (meta "config"), newest last: each
# with when it was replaced, the seq of the last event stored under it, and its SHA-256, so a
# config_changed event's previous_sha256 finds its text. The newest CONFIG_HISTORY_KEPT are kept.
_CONFIG_HISTORY_TABLE = (
    "CREATE TABLE config_history (id INTEGER PRIMARY KEY, replaced_at TEXT NOT NULL, seq INTEGER NOT NULL, "
    "sha256 TEXT NOT NULL, config TEXT NOT NULL)"
)


# A new journal's whole schema: the tables the migrations add included, each spelled once.
_SCHEMA = f"""
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
{_REQUESTS_TABLE};
{_CONFIG_HISTORY_TABLE};
"""


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """v2 kept no request ids."""
    conn.execute(_REQUESTS_TABLE)


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """v3 kept no replaced configs (a changed config overwrote the stored one)."""
    conn.execute(_CONFIG_HISTORY_TABLE)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}


def config_sha256(text: str) -> str:
    """The SHA-256 hex of a config's TOML text (UTF-8): what config_changed events name."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _keep_replaced_config(conn: sqlite3.Connection, old_text: str, seq: int, at: str) -> None:
    """Keep `old_text` in config_history (inside the caller's transaction), the oldest beyond
    CONFIG_HISTORY_KEPT dropped."""
    conn.execute(
        "INSERT INTO config_history (replaced_at, seq, sha256, config) VALUES (?, ?, ?, ?)",
        (at, seq, config_sha256(old_text), old_text),
    )
    conn.execute(
        "DELETE FROM config_history WHERE id NOT IN (SELECT id FROM config_history ORDER BY id DESC LIMIT ?)",
        (CONFIG_HISTORY_KEPT,),
    )


def _connect(path: Path, synchronous: str, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        # What a delete or an update frees is zeroed, not left in the file: a scrubbed token is
        # gone from the pages, not merely unreferenced (_scrub_private).
        conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def _decode_rows(rows: Iterator[tuple[int, str, str, str]]) -> Iterator[ev.Event]:
    for seq, ts, type_, body in rows:
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise JournalCorrupt(f"event {seq}: body is not JSON ({exc})") from None
        try:
            yield ev.event_from_record(seq, ts, type_, fields)
        except ev.EventFormatError as exc:
            raise JournalCorrupt(str(exc)) from None


def _events_after(conn: sqlite3.Connection, seq: int, limit: int) -> list[ev.Event]:
    """The stored events with a seq above `seq`, in order, at most `limit`: the from-seq read of
    the writer and of readers alike (the MQTT link's live stream, its catch-up and a replay)."""
    rows = conn.execute("SELECT seq, ts, type, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return list(_decode_rows(rows))


# -- private fields: kept for their business day only ----------------------------------------------
# The event types with private fields, and which: a ticket's page token is a bearer credential to
# its resident's page, needed on its business day only (a reprint prints the same QR code; central's
# pages refuse a past day's ticket), so the journal keeps it no longer (_scrub_private).
_PRIVATE_BY_TYPE: dict[str, tuple[str, ...]] = {
    name: private
    for name, cls in ev.EVENT_TYPES.items()
    if (private := tuple(f.name for f in dataclasses.fields(cls) if f.name in ev.PRIVATE_FIELDS))
}
SCRUBBED = ""  # what a private field holds once scrubbed: as a ticket restored without its token


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """What one scrub changed: the business days before `before` hold no private field now."""

    before: str
    events: int = 0  # events whose private fields were emptied
    snapshots: int = 0  # snapshots of those days deleted
    requests: int = 0  # stored request results that named a token
    unreadable: int = 0  # events whose body is not JSON: left as they are (salvage's business)

    @property
    def changed(self) -> bool:
        return bool(self.events or self.snapshots or self.requests)


def _scrub_private(conn: sqlite3.Connection, before: str) -> Scrubbed | None:
    """Inside the caller's transaction: remove the private fields of every business day before
    `before` not scrubbed yet (meta SCRUBBED_BEFORE marks how far it went; None: nothing to do).

    - events: their private fields are set to SCRUBBED (""), every other byte of the body as it
      was — a TicketIssued or TokenReplaced with `token` "" reads back as one (its `token_hash`
      stays, so its public record is unchanged);
    - snapshots taken before that day's first event are deleted: the state holds only the newest
      business day, which its replay rebuilds, so recovery never reads one of them to any gain;
    - the stored results of those days' requests (a control command's reply names the ticket's
      page) lose the tokens of those days' tickets.

    The connection's secure_delete zeroes the bytes freed; the caller truncates the WAL after the
    commit (TicketJournal._wipe_wal), so the old page images go too."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCRUBBED_BEFORE,)).fetchone()
    since = str(row[0]) if row else ""
    if since >= before:
        return None
    request_days = {
        str(d) for (d,) in conn.execute("SELECT DISTINCT day FROM requests WHERE day >= ? AND day < ?", (since, before))
    }
    events, unreadable, tokens = _scrub_events(conn, since, before, request_days)
    first_kept = conn.execute("SELECT seq FROM events WHERE day >= ? ORDER BY day, seq LIMIT 1", (before,)).fetchone()
    snapshots = 0
    if first_kept is not None:
        snapshots = conn.execute("DELETE FROM snapshots WHERE seq < ?", (first_kept[0],)).rowcount
    requests = _scrub_requests(conn, tokens)
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (SCRUBBED_BEFORE, before))
    return Scrubbed(before, events, int(snapshots), requests, unreadable)


def _scrub_events(
    conn: sqlite3.Connection, since: str, before: str, keep_tokens_of: set[str]
) -> tuple[int, int, dict[str, set[str]]]:
    """Empty the private fields of the events of the days from `since` to before `before`, a day
    at a time (a backlog of days is never held in memory whole). Returns the events changed, the
    unreadable ones left, and the tokens removed of the days in `keep_tokens_of`."""
    kinds = tuple(_PRIVATE_BY_TYPE)
    select = f"SELECT seq, type, body FROM events WHERE day = ? AND type IN ({', '.join('?' * len(kinds))})"
    days = [
        str(d) for (d,) in conn.execute("SELECT DISTINCT day FROM events WHERE day >= ? AND day < ?", (since, before))
    ]
    changed = unreadable = 0
    removed: dict[str, set[str]] = {}
    for day in days:
        updates: list[tuple[str, int]] = []
        for seq, type_, body in conn.execute(select, (day, *kinds)).fetchall():
            try:
                record = orjson.loads(body)
            except orjson.JSONDecodeError:
                unreadable += 1
                continue
            if not isinstance(record, dict):
                unreadable += 1
                continue
            values = [record[name] for name in _PRIVATE_BY_TYPE[type_] if record.get(name, SCRUBBED) != SCRUBBED]
            if not values:
                continue
            for name in _PRIVATE_BY_TYPE[type_]:
                if name in record:
                    record[name] = SCRUBBED  # in its place: the body stays as the event's body() writes it
            updates.append((orjson.dumps(record).decode(), seq))
            if day in keep_tokens_of:
                removed.setdefault(day, set()).update(v for v in values if isinstance(v, str))
        conn.executemany("UPDATE events SET body = ? WHERE seq = ?", updates)
        changed += len(updates)
    return changed, unreadable, removed


def _scrub_requests(conn: sqlite3.Connection, tokens: dict[str, set[str]]) -> int:
    """Remove `tokens` (by day) from the stored results of those days' requests; the number changed."""
    changed = 0
    for day, day_tokens in tokens.items():
        if not day_tokens:
            continue
        find = _token_finder(day_tokens)
        updates: list[tuple[str, str]] = []
        for request, result in conn.execute("SELECT id, result FROM requests WHERE day = ?", (day,)).fetchall():
            text = str(result)
            found = find(text)
            if found:
                for token in found:
                    text = text.replace(token, SCRUBBED)
                updates.append((text, request))
        conn.executemany("UPDATE requests SET result = ? WHERE id = ?", updates)
        changed += len(updates)
    return changed


def _token_finder(tokens: set[str]) -> Callable[[str], set[str]]:
    """A function giving the members of `tokens` that occur in a text. A token occurs within a run
    of its own alphabet's characters, so only such runs at least as long as the shortest token
    are looked into (one regex scan, then a set lookup per window): far cheaper than searching
    every text for each of a day's thousands of tokens."""
    lengths = sorted({len(t) for t in tokens})
    alphabet = "".join(re.escape(c) for c in sorted(set().union(*tokens)))
    runs = re.compile(f"[{alphabet}]{{{lengths[0]},}}")

    def find(text: str) -> set[str]:
        found: set[str] = set()
        for match in runs.finditer(text):
            run = match.group()
            for n in lengths:
                for i in range(len(run) - n + 1):
                    if run[i : i + n] in tokens:
                        found.add(run[i : i + n])
        return found

    return find


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
    """Read-only access to a journal, safe beside a running writer.

    `uri`, if given, is what SQLite opens instead of `path` (gateway.salvage's read that writes
    nothing beside a journal no writer has open); messages still name `path`."""

    def __init__(self, path: str | Path, *, uri: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise JournalError(f"no journal at {self.path}")
        _check_version(self.path, _read_header(self.path).user_version)
        try:
            if uri is None:
                self.conn = _connect(self.path, "FULL", read_only=True)
            else:
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise _sqlite_error(self.path, exc) from None
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            _check_version(self.path, version)
            if version != SCHEMA_VERSION:
                raise JournalError(f"{self.path} has schema version {version}; open it once for writing to migrate it")
            self.meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise _sqlite_error(self.path, exc) from None
        except BaseException:
            self.conn.close()
            raise

    @property
    def office_id(self) -> str:
        return str(self.meta["office"])

    def config(self) -> OfficeConfig:
        return parse_config(self.meta["config"], source=f"{self.path} (stored config)")

    def state(self) -> OfficeState:
        """The current business day's state, recovered as the writer recovers it (newest usable
        snapshot plus the events after it), without taking the writer's lock."""
        with self._reading():
            return TicketJournal._recover(self.conn)[0]

    def days(self) -> list[str]:
        with self._reading():
            return [d for (d,) in self.conn.execute("SELECT DISTINCT day FROM events ORDER BY day")]

    def events(self, first_day: date | None = None, last_day: date | None = None) -> Iterator[ev.Event]:
        lo = first_day.isoformat() if first_day else ""
        hi = last_day.isoformat() if last_day else "9999-12-31"
        with self._reading():  # damage shows only when its page is reached, mid-way
            rows = self.conn.execute(
                "SELECT seq, ts, type, body FROM events WHERE day BETWEEN ? AND ? ORDER BY seq",
                (lo, hi),
            )
            yield from _decode_rows(rows)

    def events_after(self, seq: int, limit: int = 1000) -> list[ev.Event]:
        """The events after `seq`, in order, at most `limit` (retention may have pruned the first)."""
        with self._reading():
            return _events_after(self.conn, seq, limit)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """SQLite's errors and unreadable rows met while reading, as one line naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise _sqlite_error(self.path, exc) from None
        except JournalCorrupt as exc:
            raise JournalCorrupt(f"{self.path} is damaged: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TicketJournal:
    """The single writer of one office's journal, holding the office model it makes durable.

    A snapshot of the state is stored every `max(snapshot_every, tickets of the day)` events,
    counted across opens, so opening replays at most that many events after the snapshot."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock: _Lock,
        office: Office,
        *,
        snapshot_every: int,
        clock: Callable[[], datetime],
        since_snapshot: int = 0,
    ) -> None:
        self.path = path
        self.conn = conn
        self._lock = lock
        self.office = office
        self.snapshot_every = snapshot_every
        self.clock = clock
        # Events stored since the newest snapshot, counted across opens: a shell that opens the
        # journal for one command at a time (the CLI) still gets snapshots.
        self._since_snapshot = since_snapshot
        # The business day whose text the rows of the current day carry, and that text.
        self._day_of: date | None = None
        self._day_text = ""
        # The live state may hold events the file lacks (a write failed, and so did recovering
        # the state from the file): recover before the next command.
        self._stale = False
        # Opened with a config file over which a pushed config was stored: that one stands (open).
        self.config_kept = False

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        config: OfficeConfig,
        config_text: str,
        *,
        synchronous: str = "FULL",
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        clock: Callable[[], datetime] = utc_now,
        restored: tuple[date, Sequence[ev.Event], Mapping[str, str]] | None = None,
    ) -> TicketJournal:
        """A new journal at `path` (which must not exist). `restored`: (business day, its events,
        meta) to start from — a replacement gateway's today from central's copy
        (gateway.restore) — written in the same transaction that makes the file, so the journal
        either holds all of them or does not exist."""
        p = Path(path)
        if p.exists():
            raise JournalError(f"{p} exists already; open it instead of creating it")
        # Built complete under a temporary name, then linked into place (which fails if the name
        # is taken): a crash while creating never leaves a half-made file at the journal's path,
        # which every later open would refuse. Rollback-journal mode while building, so the
        # header (application id, version) is in the main file; open() switches to WAL.
        if not p.parent.is_dir():
            # Checked here so that a mistyped directory is one clear line, not SQLite's
            # "unable to open database file".
            raise JournalError(f"cannot create {p}: no such directory {p.parent}")
        tmp = p.with_name(f".{p.name}.{os.getpid()}.creating")
        _remove_abandoned_creates(p)
        try:
            _remove_database(tmp)
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("BEGIN")
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                for statement in _SCHEMA.split(";"):
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
                if restored is not None:
                    day, events, meta = restored
                    conn.executemany(
                        _INSERT_EVENT,
                        [(e.seq, day.isoformat(), ev.format_ts(e.ts), e.TYPE, _encode_json(e.body())) for e in events],
                    )
                    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(tmp, p)
            except FileExistsError:
                raise JournalError(f"{p} exists already; open it instead of creating it") from None
            _fsync_directory(p.parent)
        except (OSError, sqlite3.Error) as exc:  # e.g. a directory we may not write
            raise JournalError(f"cannot create {p}: {getattr(exc, 'strerror', None) or exc}") from None
        finally:
            _remove_database(tmp)
        return cls.open(p, synchronous=synchronous, snapshot_every=snapshot_every, clock=clock)

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: tuple[OfficeConfig, str] | None = None,
        *,
        synchronous: str = "FULL",
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        clock: Callable[[], datetime] = utc_now,
    ) -> TicketJournal:
        """Open for writing. `config` (parsed, text), if given, is the config file the caller runs
        with (the gateway's): the journal must be its office's, and a text that differs from the
        stored one replaces it (`change_config`, via "file": a config_changed event, the old one
        kept), unless the stored config was pushed or reconfigured over this very file since
        (meta CONFIG_SET_OVER): then the stored, newer config stands (`config_kept` says so)."""
        p = Path(path)
        if synchronous not in SYNC_MODES:
            raise ValueError(f"synchronous must be one of {SYNC_MODES}")
        if not p.exists():
            raise JournalError(f"no journal at {p}; create one with `counterfloor office init`")
        _check_version(p, _read_header(p).user_version)
        lock = _Lock(p)
        replacing: tuple[OfficeConfig, str] | None = None
        kept = False
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
                        stored_over = meta.get(CONFIG_SET_OVER)
                        if stored_over is not None and stored_over == config_sha256(text):
                            try:
                                # Its relative paths are the file's, as the file's would be.
                                parsed = parse_config(meta["config"], source=parsed.source)
                                kept = True
                            except ValueError as exc:  # a ConfigError: this version reads it otherwise
                                _log.warning("%s: the stored config is unusable (%s); the file's replaces it", p, exc)
                        if not kept:
                            replacing = (parsed, text)
                else:
                    parsed = parse_config(meta["config"], source=f"{p} (stored config)")
                state, replayed = cls._recover(conn)
                office = Office(parsed, state)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            lock.release()
            raise _sqlite_error(p, exc) from None
        except JournalCorrupt as exc:  # an unreadable or unreplayable row: name the file
            lock.release()
            raise JournalCorrupt(f"{p} is damaged: {exc}") from None
        except BaseException:
            lock.release()
            raise
        journal = cls(p, conn, lock, office, snapshot_every=snapshot_every, clock=clock, since_snapshot=replayed)
        journal.config_kept = kept
        if replacing is not None:
            try:
                journal.change_config(*replacing, via="file")
            except sqlite3.DatabaseError as exc:
                journal.close()
                raise _sqlite_error(p, exc) from None
            except BaseException:
                journal.close()
                raise
        try:
            journal._scrub_backlog()
        except BaseException:
            journal.close()
            raise
        return journal

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
    def _recover(conn: sqlite3.Connection) -> tuple[OfficeState, int]:
        """The state and how many events were replayed to reach it: the state holds only the
        newest business day, so it is the newest usable snapshot taken within that day plus the
        events after it, or else the replay of that day. A snapshot that cannot be read (an
        older format, damage) or that does not fit the events is ignored, never trusted."""
        last = conn.execute("SELECT seq, day FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None:
            return OfficeState(), 0
        last_seq, last_day = last
        first = conn.execute("SELECT min(seq) FROM events WHERE day = ?", (last_day,)).fetchone()[0]
        state = _usable_snapshot(conn, first - 1, last_seq) or OfficeState(last_seq=first - 1)
        start = state.last_seq
        rows = conn.execute("SELECT seq, ts, type, body FROM events WHERE seq > ? ORDER BY seq", (start,))
        try:
            for event in _decode_rows(rows):
                state.apply(event)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise JournalCorrupt(f"journal cannot be replayed: {exc!r}") from None
        return state, last_seq - start

    # -- writing -----------------------------------------------------------------------------
    def recorded(self, request: str) -> str | None:
        """The result stored with request id `request` (current and previous business day), or
        None if no command was stored under it."""
        row = self.conn.execute("SELECT result FROM requests WHERE id = ?", (request,)).fetchone()
        return None if row is None else str(row[0])

    def events_after(self, seq: int, limit: int = 1000) -> list[ev.Event]:
        """The stored events after `seq`, in order, at most `limit` (JournalReader.events_after)."""
        return _events_after(self.conn, seq, limit)

    def get_meta(self, key: str) -> str | None:
        """A value kept beside the events (e.g. the MQTT link's session and published-up-to mark)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def days_before(self, day: date, limit: int) -> list[str]:
        """Up to `limit` business days with events before `day`, latest first (an index seek
        each, however long the journal)."""
        found: list[str] = []
        before = day.isoformat()
        for _ in range(limit):
            row = self.conn.execute("SELECT MAX(day) FROM events WHERE day < ?", (before,)).fetchone()
            if row is None or row[0] is None:
                break
            before = str(row[0])
            found.append(before)
        return found

    def seq_before_day(self, day: date) -> int:
        """The seq just before `day`'s first event (the last one stored if it has none yet)."""
        row = self.conn.execute("SELECT MIN(seq) FROM events WHERE day = ?", (day.isoformat(),)).fetchone()
        return int(row[0]) - 1 if row and row[0] is not None else self.office.state.last_seq

    def set_meta(self, key: str, value: str) -> None:
        """Store `value` under `key`, durably, in a transaction of its own. Not for the keys the
        journal itself keeps (office, config, created, retention_cutoff)."""
        if key in _OWN_META:
            raise JournalError(f"meta key {key!r} is the journal's own")
        with self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def execute(
        self,
        command: Command,
        now: datetime | None = None,
        *,
        request: str | None = None,
        result: Callable[[Decision], str] | None = None,
        also: Callable[[Decision], None] | None = None,
    ) -> Decision:
        """Decide and apply, store durably, then return: effects in the result may be released.

        With a `request` id, a command that stores events stores the id with them (and
        `result(decision)`, what a retry of the id is answered), in the same transaction; an id
        stored already raises RequestDone with that result, and nothing is decided again. A
        command that stores nothing (refused) stores no id: a retry is decided afresh.

        The model applies the events as it decides (`Office.perform`); if they cannot be stored,
        the live state is thrown away and recovered from the file, as after a crash (a failed
        write is rare: a full disk, an I/O error), so it never holds an event the file lacks.
        Raises what `Office.decide` raises (nothing is stored), or the storage error (nothing is
        stored, unless the commit itself got through: then the recovered state has the events).
        `also(decision)` writes more in the same transaction (change_config's meta and history)."""
        if self._stale:
            self._reload()
        if request is not None and (done := self.recorded(request)) is not None:
            raise RequestDone(request, done)
        office = self.office
        decision = office.perform(command, now or self.clock())
        events = decision.events
        if not events:
            return decision
        # The hot path of every command: one timestamp text per command (its events share it),
        # the day's text remembered, one transaction (commit = fsync at synchronous=FULL).
        # The state holds the events already, so its day is theirs (a new day's schedule too).
        first = events[0]
        new_day = type(first) is ev.Schedule and first.new_day
        today = office.state.day
        if today is not self._day_of:
            assert today is not None  # events always follow a schedule, which sets the day
            self._day_of, self._day_text = today, today.isoformat()
        day = self._day_text
        stamp = first.ts
        stamp_text = ev.format_ts(stamp)
        if len(events) == 1:  # most commands: the row without a comprehension's frame
            rows = [(first.seq, day, stamp_text, first.TYPE, orjson.dumps(first.body()).decode())]
        else:
            rows = [
                (
                    e.seq,
                    day,
                    stamp_text if e.ts is stamp else ev.format_ts(e.ts),
                    e.TYPE,
                    orjson.dumps(e.body()).decode(),  # as _encode_json
                )
                for e in events
            ]
        conn = self.conn
        scrubbed = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT_EVENT, rows)
                if request is not None:
                    conn.execute(
                        "INSERT INTO requests VALUES (?, ?, ?, ?)",
                        (request, day, first.seq, result(decision) if result is not None else ""),
                    )
                if also is not None:
                    also(decision)
                if new_day:
                    self._prune(date.fromisoformat(day))
                    scrubbed = self._scrub_for_new_day(day)
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT can leave the transaction open; the next BEGIN would fail.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            self._stale = True
            with contextlib.suppress(sqlite3.Error, JournalError):
                self._reload()  # else the next command tries again before it decides
            raise
        if scrubbed is not None and scrubbed.changed:
            self._wipe_wal()
        self._since_snapshot += len(events)
        # A snapshot costs in proportion to the day's tickets, a replay in proportion to its
        # events: one every max(snapshot_every, tickets) events keeps both the amortised cost
        # per event and the replay at opening bounded, however busy the day.
        since = self._since_snapshot
        if since >= self.snapshot_every and since >= len(office.state.tickets):
            try:
                self.snapshot()
            except sqlite3.Error as exc:
                # The command is stored and applied; its effects must go out. Try again later.
                _log.warning("snapshot of %s failed, will retry: %s", self.path, exc)
        return decision

    def change_config(
        self,
        config: OfficeConfig,
        text: str,
        *,
        via: str,
        sender: str | None = None,
        restart_needed: tuple[str, ...] = (),
        now: datetime | None = None,
        request: str | None = None,
        result: Callable[[Decision], str] | None = None,
    ) -> Decision:
        """Make `config` (parsed from `text`) the office's config at once. The model is rebuilt
        from the journal under it (`Office(config, recovered state)`: the state recovered from
        the file, the estimator and the plans made afresh), so no event is lost and every
        ticket and number stays; a `config_changed` event (with today's `schedule` after it if
        the plan changed) is stored with the new text, the old one kept in config_history, all
        in one transaction. `via` "file" (the config file the gateway runs with) clears the
        CONFIG_SET_OVER mark; any other (a push, a reconfigure) sets it to the config replaced
        unless it is set already, so that a restart with the same file keeps this config.

        The same text as stored changes nothing (no events). Raises JournalError for another
        office's config, RequestDone for a request id stored already, or the storage error: then
        nothing is changed (the model is the one before)."""
        old = self.office
        if config.id != old.config.id:
            raise JournalError(f"{self.path} belongs to office {old.config.id!r}, but the config is for {config.id!r}")
        if self._stale:
            self._reload()
        if request is not None and (done := self.recorded(request)) is not None:
            raise RequestDone(request, done)
        old_text = self.get_meta("config") or ""
        if text == old_text:
            return Decision()
        record = RecordConfigChange(config_sha256(text), config_sha256(old_text), via, sender, restart_needed)
        set_over = None if via == "file" else (self.get_meta(CONFIG_SET_OVER) or config_sha256(old_text))

        def store(decision: Decision) -> None:
            first = decision.events[0]
            _keep_replaced_config(self.conn, old_text, first.seq - 1, ev.format_ts(first.ts))
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'config'", (text,))
            if set_over is None:
                self.conn.execute("DELETE FROM meta WHERE key = ?", (CONFIG_SET_OVER,))
            else:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (CONFIG_SET_OVER, set_over))

        state, replayed = self._recover(self.conn)
        self.office = Office(config, state)
        self._since_snapshot = replayed
        try:
            return self.execute(record, now, request=request, result=result, also=store)
        except BaseException:
            stored = None
            with contextlib.suppress(sqlite3.Error):
                stored = self.get_meta("config")
            if stored != text:  # not stored: the model is the old one, whose state is the file's
                self.office = old
                self._stale = False
            raise

    def config_history(self) -> list[tuple[str, int, str, str]]:
        """The configs replaced, oldest first: (replaced_at, the last seq under it, sha256, text)."""
        rows = self.conn.execute("SELECT replaced_at, seq, sha256, config FROM config_history ORDER BY id")
        return [(str(a), int(b), str(c), str(d)) for a, b, c, d in rows]

    def _reload(self) -> None:
        """After a failed write, make the live state the file's again (the state object is kept,
        its contents replaced): the events the model applied are in it only if the commit got
        through before the failure (an interrupt). Until this succeeds, no command is decided."""
        state, replayed = self._recover(self.conn)
        live = self.office.state
        for name in OfficeState.__slots__:
            setattr(live, name, getattr(state, name))
        self._since_snapshot = replayed
        self._stale = False

    def snapshot(self) -> None:
        state = self.office.state
        data = _encode_json(state.to_snapshot())
        with self._transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (state.last_seq, SNAPSHOT_FORMAT, data)
            )
            self.conn.execute("DELETE FROM snapshots WHERE seq < ?", (state.last_seq,))
        self._since_snapshot = 0

    def _prune(self, new_day: date) -> None:
        """Delete days older than the retention period (tickets hold no personal data), and the
        request ids of days before the previous one. Runs in the transaction that stores the new
        day's first events.

        The period counts from the wall clock's today (not from the new day, which an `at` or a
        wrong clock could put years ahead), never reaches today's or yesterday's events, and the
        cutoff moves at most PURGE_STEP_MAX_DAYS at once: a cutoff that would leap further (a
        clock leap) deletes nothing and is logged; `prune_before` is the deliberate way past it."""
        wall_today = self.clock().astimezone(self.office.config.tz).date()
        conn = self.conn
        conn.execute("DELETE FROM requests WHERE day < ?", ((new_day - timedelta(days=1)).isoformat(),))
        keep_from = min(wall_today, new_day) - timedelta(days=1)  # yesterday, by either clock
        cutoff = min(wall_today - timedelta(days=self.office.config.rules.retention_days), keep_from)
        stored = self.get_meta("retention_cutoff")
        previous = date.fromisoformat(stored) if stored else None
        if previous is not None and cutoff <= previous:
            return
        oldest_text = conn.execute("SELECT min(day) FROM events WHERE day < ?", (cutoff.isoformat(),)).fetchone()[0]
        if oldest_text:
            reference = previous or date.fromisoformat(oldest_text)
            if (cutoff - reference).days > PURGE_STEP_MAX_DAYS:
                doomed = conn.execute(
                    "SELECT count(DISTINCT day) FROM events WHERE day < ?", (cutoff.isoformat(),)
                ).fetchone()[0]
                _log.warning(
                    "%s: retention purge refused: its cutoff would move from %s to %s at once, deleting %d "
                    "stored day(s) — is the clock right (today is %s by it)? Nothing deleted; after checking, "
                    "`counterfloor office prune --before %s` deletes them",
                    self.path,
                    reference,
                    cutoff,
                    doomed,
                    wall_today,
                    cutoff,
                )
                return
            conn.execute("DELETE FROM events WHERE day < ?", (cutoff.isoformat(),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('retention_cutoff', ?)", (cutoff.isoformat(),))

    def _scrub_for_new_day(self, day: str) -> Scrubbed | None:
        """Scrub the private fields of the days before `day` (a new business day) in the
        transaction that stores its first events, under a savepoint: a scrub that fails (a bug,
        an I/O error) is undone whole and logged, and the day's first command is stored all the
        same; the next opening or new day does it (the meta mark did not move)."""
        conn = self.conn
        conn.execute("SAVEPOINT scrub")
        try:
            scrubbed = _scrub_private(conn, day)
        except Exception as exc:
            conn.execute("ROLLBACK TO scrub")
            conn.execute("RELEASE scrub")
            _log.warning(
                "%s: removing the tokens of the days before %s failed, tried again later: %r", self.path, day, exc
            )
            return None
        conn.execute("RELEASE scrub")
        self._log_scrub(scrubbed)
        return scrubbed

    def _scrub_backlog(self) -> None:
        """At opening: scrub the days before the newest one that are not yet (a journal written
        by a version that kept tokens, a scrub that failed or was cut short), in transactions of
        SCRUB_DAYS_PER_TRANSACTION days, each advancing the meta mark, the WAL truncated after
        each. Nothing to do costs one meta read. A failure is logged: the office must open."""
        day = self.office.state.day
        if day is None:
            return
        today = day.isoformat()
        try:
            while (mark := self.get_meta(SCRUBBED_BEFORE) or "") < today:
                row = self.conn.execute(
                    "SELECT DISTINCT day FROM events WHERE day >= ? AND day < ? ORDER BY day LIMIT 1 OFFSET ?",
                    (mark, today, max(1, SCRUB_DAYS_PER_TRANSACTION)),  # a day at least: it moves on
                ).fetchone()
                with self._transaction():
                    scrubbed = _scrub_private(self.conn, str(row[0]) if row else today)
                self._log_scrub(scrubbed)
                if scrubbed is not None and scrubbed.changed:
                    self._wipe_wal()
        except Exception as exc:
            _log.warning(
                "%s: removing the tokens of the days before %s failed, tried again later: %r", self.path, today, exc
            )

    def _log_scrub(self, scrubbed: Scrubbed | None) -> None:
        if scrubbed is not None and (scrubbed.changed or scrubbed.unreadable):
            _log.info(
                "%s: tokens removed from the days before %s: %d event(s), %d snapshot(s) deleted, %d request "
                "result(s); %d unreadable event(s) left",
                self.path,
                scrubbed.before,
                scrubbed.events,
                scrubbed.snapshots,
                scrubbed.requests,
                scrubbed.unreadable,
            )

    def _wipe_wal(self) -> None:
        """After a scrub's commit: every page into the file and the WAL truncated to nothing, so the
        page images that held the removed fields are gone from both. A reader that keeps it from
        completing (beyond busy_timeout) leaves them in the WAL until a later checkpoint: logged."""
        try:
            busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as exc:
            _log.warning("%s: the checkpoint after removing tokens failed: %s", self.path, exc)
            return
        if busy:
            _log.warning("%s: a reader kept the WAL from being truncated after removing tokens", self.path)

    def prune_before(self, cutoff: date) -> int:
        """Delete the stored days before `cutoff` (the floor manager's explicit purge, after a
        refused one); never today's or yesterday's by the wall clock. Returns the events deleted."""
        wall_today = self.clock().astimezone(self.office.config.tz).date()
        limit = wall_today - timedelta(days=1)
        if cutoff > limit:
            raise JournalError(f"prune: {cutoff} would delete yesterday's or today's events; the latest is {limit}")
        with self._transaction():
            deleted = self.conn.execute("DELETE FROM events WHERE day < ?", (cutoff.isoformat(),)).rowcount
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('retention_cutoff', ?)", (cutoff.isoformat(),))
        return int(deleted)

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


def _usable_snapshot(conn: sqlite3.Connection, lo: int, hi: int) -> OfficeState | None:
    """The newest snapshot taken after event `lo` and at most at `hi` that loads and says it
    is the state at its own seq; None if there is none."""
    rows = conn.execute("SELECT seq, state FROM snapshots WHERE seq BETWEEN ? AND ? ORDER BY seq DESC", (lo, hi))
    for seq, text in rows:
        try:
            state = OfficeState.from_snapshot(orjson.loads(text))
        except Exception:  # any damage or older format: replay instead
            continue
        if state.last_seq == seq:
            return state
    return None


def _sqlite_error(path: Path, exc: sqlite3.DatabaseError) -> JournalError:
    # Python's sqlite3 raises OperationalError for a text that is not UTF-8: damage, not use.
    if isinstance(exc, sqlite3.OperationalError) and not str(exc).startswith("Could not decode to UTF-8"):
        return JournalError(f"{path} cannot be used: {exc}")
    return JournalCorrupt(f"{path} is damaged and cannot be read as a journal: {exc}")


def _remove_abandoned_creates(journal: Path) -> None:
    """Remove the half-made files of creates whose process is gone (killed mid-create), so a
    crash loop never piles them up. A live creator's files are left alone."""
    prefix, suffix = f".{journal.name}.", ".creating"
    for entry in journal.parent.glob(f"{glob.escape(prefix)}*{suffix}*"):
        pid_text = entry.name[len(prefix) :].split(suffix, 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _remove_database(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *rest: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT can leave the transaction open; the next BEGIN would fail.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
