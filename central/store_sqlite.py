"""The event store in SQLite: central's embedded default (central/store.py has the interface and
the logic; this module the files, their schema and their transactions). Two layouts:

- one file for every office (`SqliteEventStore`, `--store central.db`);
- a folder with a file per office, `<folder>/<office>.sqlite` (`SqliteFolderStore`, `--store
  central/`): each file is a one-office store of the same schema. Workers own disjoint offices
  (central/partition.py), so two workers never wait for one write lock and each one's fsyncs are
  its own; a change of worker count moves nothing, as an office's file serves whichever worker
  owns it now.

WAL with `synchronous=FULL`: a batch is fsynced when `append` returns, and readers never wait
for the writer. Several processes may write one file: each batch takes the file's write lock
(`BEGIN IMMEDIATE`), waiting up to `BUSY_TIMEOUT_MS` for it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from central.store import (
    MAX_SEQ,
    PAGE_ROWS,
    SCHEMA_VERSION,
    Appended,
    MetaRow,
    Query,
    Row,
    SeqRange,
    SqlEventStore,
    Statements,
    StoreError,
    check_day,
    check_office,
    check_seq,
    pages,
    prepare_batch,
    prepare_meta,
)
from office.mqtt import OFFICE_ID

OFFICE_CACHE_KIB = 512  # an office file's page cache
# PRAGMA application_id of a central event store ("CFES"), so that a gateway's journal or any
# other SQLite file given by mistake is refused rather than written into.
APPLICATION_ID = 0x43464553
BUSY_TIMEOUT_MS = 10_000

# v2's table (central/store.py's put_alert): a v1 file gets it when first opened by v2.
_ALERTS = """CREATE TABLE alerts (
    office     TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    day        TEXT NOT NULL,
    record     TEXT NOT NULL,
    PRIMARY KEY (office, token_hash)
);"""

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
{_ALERTS}
"""


class SqliteEventStore(SqlEventStore):
    sql = Statements.build("?", "")  # BEGIN IMMEDIATE already holds the whole file's write lock

    def __init__(self, path: str | Path, url: str | None = None, office: str | None = None) -> None:
        """`office`: the file is that office's in a folder store, and may hold no other's."""
        self.path = Path(path)
        self.url = url or str(path)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreError(f"event store {self.path}: cannot open ({exc}; does its folder exist?)") from None
        try:
            self._set_up_waiting()
            if office is not None:
                self._only(office)
        except sqlite3.DatabaseError as exc:  # not a database, read-only, locked too long
            self.conn.close()
            raise StoreError(f"event store {self.path}: cannot use it ({exc})") from None
        except BaseException:
            self.conn.close()
            raise

    def _only(self, office: str) -> None:
        # Many such connections stay open in a folder store: a smaller page cache each (the
        # default is 2 MB); appends touch only the right edge of two b-trees.
        self.conn.execute(f"PRAGMA cache_size = -{OFFICE_CACHE_KIB}")
        other = self.conn.execute(
            "SELECT office FROM offices WHERE office != ? UNION SELECT office FROM office_meta WHERE office != ? "
            "LIMIT 1",
            (office, office),
        ).fetchone()
        if other is not None:  # a file copied or renamed by hand: its events would be read as another office's
            raise StoreError(
                f"event store {self.path}: holds office {other[0]!r}, but this file is {office!r}'s "
                "(a file per office; was it renamed or copied by hand?)"
            )

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
        # A deleted alert subscription (an address, a push endpoint) is overwritten, not left in
        # a free page; its old page images leave the -wal at the day's sweep (drop_alerts_before).
        conn.execute("PRAGMA secure_delete=ON")
        with self._transaction():
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if app_id == 0 and not tables:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                return
            if app_id == APPLICATION_ID and version == 1:  # v1 → v2: the alerts table, nothing else
                conn.execute(_ALERTS)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                version = SCHEMA_VERSION
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

    def _run_many(self, sql: str, rows: list[Row] | list[MetaRow]) -> None:
        self.conn.executemany(sql, rows)

    def drop_alerts_before(self, office: str, day: str) -> int:
        """As the interface says; then the -wal is checkpointed and truncated, so that no copy of
        a deleted subscription stays in it (another connection reading at that moment keeps the
        -wal: the next sweep truncates it)."""
        dropped = super().drop_alerts_before(office, day)
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return dropped

    def close(self) -> None:
        self.conn.close()


# -- a file per office ----------------------------------------------------------------------------
SUFFIX = ".sqlite"
MARKER = "counterfloor-central-store"  # names a folder as a store's; refused otherwise (see _claim)
LAYOUT = "layout 1: one SQLite file per office, <office>.sqlite"
# Office files kept open per store object: those it appended to, and those it only read (a
# trainer's or a forecaster's store reads each office once a day). Each open file holds three
# descriptors (the file, its -wal, its -shm), and paho's select() fails on a descriptor past
# 1023: a process's stores together must stay well under that. Beyond MAX_WRITING offices per
# worker, an append may reopen its office's file (a few hundred µs and a checkpoint).
MAX_WRITING = 200
MAX_READING = 8
# Not offices' files, and no sign of another use of the folder: left alone when it is claimed.
_IGNORED = ("lost+found",)


def office_file(folder: str | Path, office: str) -> Path:
    """`<folder>/<office>.sqlite`. check_office's alphabet (a-z, 0-9, '-') has no '/' or '.', so
    the name cannot leave the folder, nor be a `-wal` or `-shm` file of another."""
    return Path(folder) / f"{check_office(office)}{SUFFIX}"


def fsync_dir(folder: Path) -> None:
    """A new file's name is durable once its folder is fsynced (SQLite syncs its files' data)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SqliteFolderStore:
    """The event store as a folder of one-office SQLite files (the module docstring). Implements
    central.store.EventStore; like every store, an object belongs to the thread that uses it. An
    office's file is created by its first append; reads of an office without one find nothing."""

    sql = SqliteEventStore.sql

    def __init__(self, folder: str | Path, url: str | None = None) -> None:
        self.folder = Path(folder)
        self.url = url or str(folder)
        self._writing: OrderedDict[str, SqliteEventStore] = OrderedDict()
        self._reading: OrderedDict[str, SqliteEventStore] = OrderedDict()
        self._claim()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def __enter__(self) -> SqliteFolderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for files in (self._writing, self._reading):
            while files:
                files.popitem()[1].close()

    # -- the folder -------------------------------------------------------------------------------
    def _claim(self) -> None:
        """Create the folder (its parent must exist) or check that it is a store's: one holding
        other files and no marker is refused, so that a mistyped path, or the folder of a one-file
        store (whose events would be silently left behind), is not taken for an empty store."""
        folder = self.folder
        where = f"event store folder {folder}"
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise StoreError(
                    f"{where}: a file, not a folder (a one-file store is named without a trailing '/')"
                ) from None
        except FileNotFoundError:
            raise StoreError(f"{where}: cannot create it: its parent folder does not exist") from None
        except OSError as exc:
            raise StoreError(f"{where}: cannot create it ({exc.strerror})") from None
        marker = folder / MARKER
        try:
            text: str | None = marker.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except OSError as exc:
            raise StoreError(f"{where}: cannot read {MARKER} ({exc.strerror})") from None
        if text is not None:
            if LAYOUT not in text:
                first = text.strip().splitlines()[-1:] or ["nothing"]
                raise StoreError(f"{where}: {MARKER} says {first[0]!r}; this code reads {LAYOUT!r}")
            return
        try:
            others = sorted(n for n in os.listdir(folder) if not n.startswith(".") and n not in _IGNORED)
        except OSError as exc:
            raise StoreError(f"{where}: cannot list it ({exc.strerror})") from None
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            hint = ""
            if any(n.endswith((".db", ".sqlite3")) for n in others):
                hint = (
                    "; a one-file store is opened by its file's path, or copied into a folder store with "
                    "`python -m central.store_copy FILE FOLDER/`"
                )
            raise StoreError(
                f"{where}: not a central store folder (it holds {shown} and no {MARKER} file); give a new "
                f"or empty folder{hint}"
            )
        self._write_marker(marker)

    def _write_marker(self, marker: Path) -> None:
        # Written aside and renamed: a worker starting at the same moment sees all of it or none.
        # Dot-named, so that a second claimant does not take it for a stranger's file.
        aside = marker.with_name(f".{MARKER}.{os.getpid()}.{threading.get_ident()}")
        try:
            with open(aside, "w", encoding="utf-8") as out:
                out.write(f"counterfloor central event store (central/store_sqlite.py)\n{LAYOUT}\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(aside, marker)
            fsync_dir(self.folder)
        except OSError as exc:
            raise StoreError(f"event store folder {self.folder}: cannot write {MARKER} ({exc.strerror})") from None

    # -- an office's file -------------------------------------------------------------------------
    def _file(self, office: str, create: bool) -> SqliteEventStore | None:
        """The office's open file (opened if need be; created only if `create`), or None."""
        store = self._writing.get(office)
        if store is not None:
            self._writing.move_to_end(office)
            return store
        store = self._reading.pop(office, None)
        if store is None:
            path = office_file(self.folder, office)
            new = not path.exists()
            if new and not create:
                return None
            store = SqliteEventStore(path, f"{self.url.rstrip('/')}/{path.name}", office=office)
            if new:
                try:
                    fsync_dir(self.folder)
                except OSError as exc:
                    store.close()
                    raise StoreError(f"event store folder {self.folder}: cannot sync it ({exc.strerror})") from None
        files, limit = (self._writing, MAX_WRITING) if create else (self._reading, MAX_READING)
        files[office] = store
        while len(files) > limit:
            files.popitem(last=False)[1].close()
        return store

    def _rows_of(self, office: str) -> Query:
        """Queries on the office's file, found again for each page: a slow reader's file may be
        closed (and reopened) between two of its pages."""

        def rows(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            store = self._file(office, create=False)
            return [] if store is None else store._rows(sql, params)

        return rows

    # -- the interface ----------------------------------------------------------------------------
    def append(
        self, office: str, records: Iterable[Mapping[str, Any]], meta: Mapping[str, Any] | None = None
    ) -> Appended:
        rows, repeated = prepare_batch(office, records)  # checked once, before a file is made for it
        meta_rows = prepare_meta(office, meta)
        store = self._file(office, create=bool(rows or meta_rows))
        if store is None:  # nothing to store, for an office with nothing stored
            return Appended(office, 0, repeated, 0, 0)
        return store.append_prepared(office, rows, repeated, meta_rows)

    def set_meta(self, office: str, key: str, value: Any) -> None:
        self.append(office, [], {key: value})

    def read(self, office: str, from_seq: int = 1, to_seq: int | None = None) -> Iterator[dict[str, Any]]:
        check_office(office)  # now, not at the first next()
        after = check_seq("from_seq", from_seq) - 1
        end = MAX_SEQ if to_seq is None else check_seq("to_seq", to_seq)
        return pages(self._rows_of(office), self.sql.page, lambda after: (office, after, end, PAGE_ROWS), after)

    def read_day(self, office: str, day: date | str) -> Iterator[dict[str, Any]]:
        check_office(office)
        text = check_day(day)
        return pages(self._rows_of(office), self.sql.day_page, lambda after: (office, text, after, PAGE_ROWS), 0)

    def last_seq(self, office: str) -> int:
        store = self._file(office, create=False)
        return 0 if store is None else store.last_seq(office)

    def contiguous_seq(self, office: str) -> int:
        store = self._file(office, create=False)
        return 0 if store is None else store.contiguous_seq(office)

    def missing(self, office: str) -> list[SeqRange]:
        store = self._file(office, create=False)
        return [] if store is None else store.missing(office)

    def get_meta(self, office: str, key: str, default: Any = None) -> Any:
        store = self._file(office, create=False)
        return default if store is None else store.get_meta(office, key, default)

    def meta(self, office: str) -> dict[str, Any]:
        store = self._file(office, create=False)
        return {} if store is None else store.meta(office)

    def put_alert(self, office: str, token_hash: str, day: str, record: Mapping[str, Any]) -> None:
        store = self._file(check_office(office), create=True)
        assert store is not None  # created
        store.put_alert(office, token_hash, day, record)

    def alerts(self, office: str) -> list[tuple[str, str, dict[str, Any]]]:
        store = self._file(check_office(office), create=False)
        return [] if store is None else store.alerts(office)

    def drop_alert(self, office: str, token_hash: str) -> None:
        store = self._file(check_office(office), create=False)
        if store is not None:
            store.drop_alert(office, token_hash)

    def drop_alerts_before(self, office: str, day: str) -> int:
        store = self._file(check_office(office), create=False)
        return 0 if store is None else store.drop_alerts_before(office, day)

    def offices(self) -> list[str]:
        """Every office with a file: the folder's listing (no file is opened)."""
        try:
            names = os.listdir(self.folder)
        except OSError as exc:
            raise StoreError(f"event store folder {self.folder}: cannot list it ({exc.strerror})") from None
        found = (name.removesuffix(SUFFIX) for name in names if name.endswith(SUFFIX))
        return sorted(office for office in found if OFFICE_ID.fullmatch(office))
