"""Central's durable event store: every office's event-log v1 records (docs/events.md) as the
gateways publish them on `…/events` (docs/mqtt.md), kept per office by their gapless `seq`.

One interface (`EventStore`), two backends: SQLite, the embedded default (central/store_sqlite.py:
one file for every office, or a folder with a file per office), and PostgreSQL through psycopg 3
(central/store_postgres.py); `open_store(url)` picks one, and `copy_store` copies one into another. This
module owns what both must agree on: the checks a record passes before anything is stored, what a
duplicate and a gap are, and the SQL logic the two share (`SqlEventStore`). It knows nothing of
MQTT clients or of the wait-time model: central hands records in and gets them back unchanged.

- `append` is one transaction per batch, committed durably before it returns. It is idempotent
  by (office, seq): a broker may deliver twice and a replay repeats events, so a record already
  stored with the same content is skipped; one with different content refuses the whole batch.
- Records may arrive past a gap (a replay fills it later): they are stored, and `missing`,
  `last_seq` and `contiguous_seq` say what is still to be asked for.
- A record's business day is the local date of its `ts` (see `business_day`).
"""

from __future__ import annotations

import math
import os
import re
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson

from office.mqtt import OFFICE_ID

# Fields the same event carries differently at each delivery: `session` is the gateway's
# connection it was published in (docs/mqtt.md), so a replay in a later session repeats the
# event with another one. They do not make a duplicate a conflict; the first delivery's is kept.
TRANSPORT_FIELDS = frozenset({"session"})
PAGE_ROWS = 1000  # rows per query when reading: memory stays bounded however long the log
SCHEMA_VERSION = 2  # 2: the alerts table (residents' alert subscriptions, docs/alerts.md)
MAX_SEQ = 2**63 - 1  # what both backends' 64-bit integer column holds


class StoreError(Exception):
    """The store cannot do what was asked; the message names the problem. Nothing was stored."""


class BadInput(StoreError, ValueError):
    """A record, office id, day or metadata value the store refuses."""


class ConflictingRecord(StoreError):
    """A seq already stored (or repeated in the batch) with different content."""

    def __init__(self, office: str, seq: int, fields: list[str]) -> None:
        self.office, self.seq, self.fields = office, seq, fields
        super().__init__(
            f"office {office!r} seq {seq}: a different record is already stored under this seq "
            f"(differs in {', '.join(fields)}); nothing of the batch was stored"
        )


class StoreURLError(StoreError, ValueError):
    """A store URL that names no store this module can open."""


class SeqRange(NamedTuple):
    """Seqs `first`…`last`, both included."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Appended:
    """What one `append` did, and where the office stands after it."""

    office: str
    stored: int  # records newly stored
    duplicates: int  # records skipped: already stored (or repeated in the batch) with the same content
    last_seq: int
    contiguous_seq: int

    @property
    def complete(self) -> bool:
        """No gap below the highest seq stored."""
        return self.contiguous_seq == self.last_seq


class EventStore(Protocol):
    """What central uses. One store object belongs to one thread; several processes may share a
    store (SQLite waits for the file's write lock — the one file's, or the office's in a folder
    store —, PostgreSQL locks the office's row)."""

    url: str  # as opened, password hidden

    def append(
        self, office: str, records: Iterable[Mapping[str, Any]], meta: Mapping[str, Any] | None = None
    ) -> Appended:
        """Store `records` of `office` (and set the `meta` keys) in one durable transaction.
        BadInput or ConflictingRecord: nothing of the call was stored."""
        ...

    def read(self, office: str, from_seq: int = 1, to_seq: int | None = None) -> Iterator[dict[str, Any]]:
        """The stored records from_seq…to_seq in seq order, page by page (gaps are skipped)."""
        ...

    def read_day(self, office: str, day: date | str) -> Iterator[dict[str, Any]]:
        """The stored records of one business day, in seq order, page by page."""
        ...

    def last_seq(self, office: str) -> int:
        """The highest seq stored (0: none)."""
        ...

    def contiguous_seq(self, office: str) -> int:
        """The highest seq with every seq from 1 up to it stored (0: seq 1 is not)."""
        ...

    def missing(self, office: str) -> list[SeqRange]:
        """The seq ranges below `last_seq` not stored, in order."""
        ...

    def offices(self) -> list[str]:
        """Every office with records or metadata stored, sorted."""
        ...

    def get_meta(self, office: str, key: str, default: Any = None) -> Any:
        """An office's metadata value (JSON), or `default`."""
        ...

    def set_meta(self, office: str, key: str, value: Any) -> None:
        """Set one metadata value, durably (`append`'s `meta` sets them with a batch)."""
        ...

    def meta(self, office: str) -> dict[str, Any]:
        """All of an office's metadata."""
        ...

    # Residents' alert subscriptions (central/alerts): a record per ticket, by its token hash, kept
    # only while the ticket lasts. Not events: never copied by copy_store, never replayed.
    def put_alert(self, office: str, token_hash: str, day: str, record: Mapping[str, Any]) -> None:
        """Store (or replace) the ticket's subscription, durably."""
        ...

    def alerts(self, office: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(token hash, business day, record) of every subscription of the office."""
        ...

    def drop_alert(self, office: str, token_hash: str) -> None: ...

    def drop_alerts_before(self, office: str, day: str) -> int:
        """Delete the office's subscriptions of business days before `day` ("9999-12-31": all);
        how many there were."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> EventStore: ...

    def __exit__(self, *exc: object) -> None: ...


# -- what a record must be ------------------------------------------------------------------------
def business_day(ts: datetime) -> str:
    """The business day of an event stamped `ts`: its local date. The office model starts a new
    business day exactly when the local date of an event's time passes the current day's
    (office/model.py, `Office.decide`), and `ts` never goes back, so this is the day the journal
    files the event under — found from the record alone, without its day's `schedule`, which a
    record arriving past a gap may not have."""
    return ts.date().isoformat()


def check_office(office: object) -> str:
    if not isinstance(office, str) or not OFFICE_ID.fullmatch(office):
        raise BadInput(f"office id must be 1-32 of [a-z0-9-] (got {office!r})")
    return office


def _json_problem(value: Any) -> tuple[str, str] | None:
    """(where, what) of the first part of `value` that JSON cannot carry as it is, or None.
    Stricter than the encoder, which would write NaN as null, a tuple as a list, an enum as its
    value: the record read back would not be the record given. Exact types, for speed."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return None
    if t is float:
        return None if math.isfinite(value) else ("", f"{value} is not a JSON number")
    if t is dict:
        for key, item in value.items():
            if type(key) is not str:
                return ("", f"key {key!r} is not a string")
            if (problem := _json_problem(item)) is not None:
                return (f".{key}{problem[0]}", problem[1])
        return None
    if t is list:
        for i, item in enumerate(value):
            if (problem := _json_problem(item)) is not None:
                return (f"[{i}]{problem[0]}", problem[1])
        return None
    return ("", f"a {t.__name__} is not a JSON value")


def _check_record(office: str, record: object) -> tuple[int, str, str]:
    """(seq, business day, JSON text) of a record; ValueError saying what is wrong."""
    if type(record) is not dict and not isinstance(record, Mapping):  # dict first: the usual, and quick
        raise ValueError(f"a {type(record).__name__}, not a record (a JSON object)")
    seq = record.get("seq")
    if seq is None:
        raise ValueError("no 'seq'")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"'seq' must be an integer from 1 to 2**63-1 (got {seq!r})")
    rec_office = record.get("office")
    if rec_office != office:
        what = "no 'office'" if rec_office is None else f"'office' is {rec_office!r}"
        raise ValueError(f"seq {seq}: {what}, not {office!r} as the append says")
    ts = record.get("ts")
    try:
        if not isinstance(ts, str):
            raise ValueError
        day = business_day(datetime.fromisoformat(ts))
    except ValueError:
        raise ValueError(f"seq {seq}: 'ts' must be an ISO 8601 time (got {ts!r})") from None
    for key, value in record.items():
        if type(key) is not str:
            raise ValueError(f"seq {seq}: key {key!r} is not a string")
        if (problem := _json_problem(value)) is not None:
            raise ValueError(f"seq {seq}: field {key}{problem[0]} cannot be stored as JSON: {problem[1]}")
    try:
        body = orjson.dumps(record if type(record) is dict else dict(record)).decode()
    except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits, a lone surrogate
        raise ValueError(f"seq {seq}: cannot be stored as JSON: {exc}") from None
    return seq, day, body


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The fields (transport fields aside) in which two records differ: by their JSON, so 1 and
    1.0, or true and 1, differ as they do on the wire."""
    absent = object()
    keys = sorted((a.keys() | b.keys()) - TRANSPORT_FIELDS)

    def text(value: Any) -> object:
        return absent if value is absent else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

    return [k for k in keys if text(a.get(k, absent)) != text(b.get(k, absent))]


Row = tuple[str, int, str, str]  # office, seq, business day, JSON text: a row of `events`


def prepare_batch(office: str, records: Iterable[Mapping[str, Any]]) -> tuple[list[Row], int]:
    """The rows to store, in seq order, and how many records repeated another of the batch with
    the same content. BadInput or ConflictingRecord before anything touches the store."""
    check_office(office)
    if isinstance(records, Mapping | str | bytes):
        raise BadInput(f"office {office!r}: append takes a list of records, not a {type(records).__name__}")
    batch = list(records)
    by_seq: dict[int, Row] = {}
    repeated = 0
    for i, record in enumerate(batch):
        try:
            seq, day, body = _check_record(office, record)
        except ValueError as exc:
            raise BadInput(
                f"office {office!r}, record {i + 1} of {len(batch)}: {exc}; nothing of the batch was stored"
            ) from None
        earlier = by_seq.get(seq)
        if earlier is None:
            by_seq[seq] = (office, seq, day, body)
        elif fields := _differences(orjson.loads(earlier[3]), record):
            raise ConflictingRecord(office, seq, fields)
        else:
            repeated += 1
    return sorted(by_seq.values(), key=lambda row: row[1]), repeated


MetaRow = tuple[str, str, str]  # office, key, JSON text: a row of `office_meta`


def prepare_meta(office: str, meta: Mapping[str, Any] | None) -> list[MetaRow]:
    """The metadata rows to set; BadInput before anything touches the store."""
    if meta is None:
        return []
    if not isinstance(meta, Mapping):
        raise BadInput(f"office {office!r}: metadata must be a mapping of keys to values (got {type(meta).__name__})")
    rows = []
    for key, value in meta.items():
        if not isinstance(key, str) or not key:
            raise BadInput(f"office {office!r}: a metadata key must be a non-empty string (got {key!r})")
        if (problem := _json_problem(value)) is not None:
            raise BadInput(f"office {office!r}: metadata {key}{problem[0]} cannot be stored as JSON: {problem[1]}")
        try:
            rows.append((office, key, orjson.dumps(value).decode()))
        except orjson.JSONEncodeError as exc:
            raise BadInput(f"office {office!r}: metadata {key} cannot be stored as JSON: {exc}") from None
    return rows


def check_day(day: object) -> str:
    if isinstance(day, datetime) or not isinstance(day, date | str):
        raise BadInput(f"a business day is a date or 'YYYY-MM-DD' (got {day!r})")
    if isinstance(day, date):
        return day.isoformat()
    try:
        return date.fromisoformat(day).isoformat()
    except ValueError:
        raise BadInput(f"a business day is 'YYYY-MM-DD' (got {day!r})") from None


_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")


def check_token_hash(value: object) -> str:
    if not isinstance(value, str) or not _TOKEN_HASH.fullmatch(value):
        raise BadInput(f"a token hash must be 64 lowercase hex digits (got {value!r:.80})")
    return value


def check_seq(name: str, value: object) -> int:
    if type(value) is not int:
        raise BadInput(f"{name} must be an integer (got {value!r})")
    return value


# -- the SQL both backends run --------------------------------------------------------------------
@dataclass(frozen=True)
class Statements:
    """The store's statements in one backend's placeholder style. Written once with `?` (the
    two dialects agree on everything here but the placeholder and row locking)."""

    add_office: str
    lock_office: str
    office_figures: str
    existing: str
    insert: str
    update_office: str
    run_end: str
    first_after: str
    gaps_after: str
    page: str
    day_page: str
    offices: str
    set_meta: str
    get_meta: str
    all_meta: str
    put_alert: str
    alerts: str
    drop_alert: str
    drop_alerts_before: str
    count_alerts_before: str

    @classmethod
    def build(cls, placeholder: str, row_lock: str) -> Statements:
        sql = {
            # The office's row is created on its first write and locked for the rest of the
            # transaction: appends to one office are serialised however many writers there are.
            "add_office": "INSERT INTO offices (office) VALUES (?) ON CONFLICT (office) DO NOTHING",
            "lock_office": f"SELECT last_seq, contiguous_seq, stored FROM offices WHERE office = ?{row_lock}",
            "office_figures": "SELECT last_seq, contiguous_seq FROM offices WHERE office = ?",
            "existing": "SELECT seq, body FROM events WHERE office = ? AND seq BETWEEN ? AND ?",
            "insert": "INSERT INTO events (office, seq, day, body) VALUES (?, ?, ?, ?)",
            "update_office": "UPDATE offices SET last_seq = ?, contiguous_seq = ?, stored = ? WHERE office = ?",
            # The end of the run of consecutive seqs starting at a stored one: the first seq
            # from there whose successor is not stored. Scans the run once, in index order.
            "run_end": (
                "SELECT e.seq FROM events e WHERE e.office = ? AND e.seq >= ? AND NOT EXISTS "
                "(SELECT 1 FROM events n WHERE n.office = e.office AND n.seq = e.seq + 1) "
                "ORDER BY e.seq LIMIT 1"
            ),
            "first_after": "SELECT min(seq) FROM events WHERE office = ? AND seq > ?",
            "gaps_after": (
                "SELECT seq + 1, nxt - 1 FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS nxt "
                "FROM events WHERE office = ? AND seq > ?) s WHERE nxt > seq + 1 ORDER BY seq"
            ),
            "page": "SELECT seq, body FROM events WHERE office = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            "day_page": "SELECT seq, body FROM events WHERE office = ? AND day = ? AND seq > ? ORDER BY seq LIMIT ?",
            "offices": "SELECT office FROM offices",
            "set_meta": (
                "INSERT INTO office_meta (office, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (office, key) DO UPDATE SET value = excluded.value"
            ),
            "get_meta": "SELECT value FROM office_meta WHERE office = ? AND key = ?",
            "all_meta": "SELECT key, value FROM office_meta WHERE office = ? ORDER BY key",
            "put_alert": (
                "INSERT INTO alerts (office, token_hash, day, record) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (office, token_hash) DO UPDATE SET day = excluded.day, record = excluded.record"
            ),
            "alerts": "SELECT token_hash, day, record FROM alerts WHERE office = ? ORDER BY token_hash",
            "drop_alert": "DELETE FROM alerts WHERE office = ? AND token_hash = ?",
            "drop_alerts_before": "DELETE FROM alerts WHERE office = ? AND day < ?",
            "count_alerts_before": "SELECT count(*) FROM alerts WHERE office = ? AND day < ?",
        }
        return cls(**{name: text.replace("?", placeholder) for name, text in sql.items()})


class SqlEventStore(ABC):
    """The logic both backends share; a backend gives its connection, transactions and SQL."""

    url: str
    sql: Statements

    # -- what a backend provides ------------------------------------------------------------------
    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """One transaction: committed (durably) on leaving, rolled back on an exception."""

    @abstractmethod
    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _run(self, sql: str, params: tuple[Any, ...]) -> None: ...

    @abstractmethod
    def _run_many(self, sql: str, rows: list[Row] | list[MetaRow]) -> None: ...

    def _insert_events(self, rows: list[Row]) -> None:
        """Insert rows known not to be stored (the office's row is locked)."""
        self._run_many(self.sql.insert, rows)

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> SqlEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # -- writing ----------------------------------------------------------------------------------
    def append(
        self, office: str, records: Iterable[Mapping[str, Any]], meta: Mapping[str, Any] | None = None
    ) -> Appended:
        rows, repeated = prepare_batch(office, records)
        return self.append_prepared(office, rows, repeated, prepare_meta(office, meta))

    def append_prepared(self, office: str, rows: list[Row], repeated: int, meta_rows: list[MetaRow]) -> Appended:
        """`append` of what `prepare_batch` and `prepare_meta` made of it (a store that routes
        offices to files checks a batch once, before choosing the file)."""
        if not rows and not meta_rows:
            last, contiguous = self._figures(office)
            return Appended(office, 0, repeated, last, contiguous)
        sql = self.sql
        with self._transaction():
            self._run(sql.add_office, (office,))
            (last, contiguous, stored), *_ = self._rows(sql.lock_office, (office,))
            new, duplicates = self._not_stored(office, rows, last) if rows else ([], 0)
            if new:
                self._insert_events(new)
                stored += len(new)
                last = max(last, new[-1][1])
                if stored == last:  # seqs are distinct and ≥ 1: count = highest means 1…highest
                    contiguous = last
                elif _has_seq(new, contiguous + 1):  # else the gap at contiguous + 1 is still open
                    contiguous = self._rows(sql.run_end, (office, contiguous + 1))[0][0]
                self._run(sql.update_office, (last, contiguous, stored, office))
            if meta_rows:
                self._run_many(sql.set_meta, meta_rows)
        return Appended(office, len(new), repeated + duplicates, last, contiguous)

    def _not_stored(self, office: str, rows: list[Row], last: int) -> tuple[list[Row], int]:
        """The rows whose seq is not stored yet, and how many were stored with the same content;
        ConflictingRecord (rolling the transaction back) for one stored with other content."""
        if rows[0][1] > last:  # the live stream: everything is past the highest seq stored
            return rows, 0
        stored = dict(self._rows(self.sql.existing, (office, rows[0][1], min(rows[-1][1], last))))
        if not stored:
            return rows, 0
        new: list[Row] = []
        for row in rows:
            body = stored.get(row[1])
            if body is None:
                new.append(row)
            elif body != row[3] and (fields := _differences(orjson.loads(body), orjson.loads(row[3]))):
                raise ConflictingRecord(office, row[1], fields)
        return new, len(rows) - len(new)

    def set_meta(self, office: str, key: str, value: Any) -> None:
        self.append(office, [], {key: value})

    # -- reading ----------------------------------------------------------------------------------
    def _figures(self, office: str) -> tuple[int, int]:
        found = self._rows(self.sql.office_figures, (check_office(office),))
        return (found[0][0], found[0][1]) if found else (0, 0)

    def last_seq(self, office: str) -> int:
        return self._figures(office)[0]

    def contiguous_seq(self, office: str) -> int:
        return self._figures(office)[1]

    def missing(self, office: str) -> list[SeqRange]:
        last, contiguous = self._figures(office)
        if contiguous == last:
            return []
        # Above the contiguous run comes a gap, then stored runs and gaps up to `last`.
        (first_after,) = self._rows(self.sql.first_after, (office, contiguous))[0]
        gaps = [SeqRange(contiguous + 1, first_after - 1)]
        gaps += (SeqRange(a, b) for a, b in self._rows(self.sql.gaps_after, (office, contiguous)))
        return gaps

    def read(self, office: str, from_seq: int = 1, to_seq: int | None = None) -> Iterator[dict[str, Any]]:
        # Checked now, not at the first next(): a generator would defer the error.
        check_office(office)
        after = check_seq("from_seq", from_seq) - 1
        end = MAX_SEQ if to_seq is None else check_seq("to_seq", to_seq)
        return pages(self._rows, self.sql.page, lambda after: (office, after, end, PAGE_ROWS), after)

    def read_day(self, office: str, day: date | str) -> Iterator[dict[str, Any]]:
        check_office(office)
        text = check_day(day)
        return pages(self._rows, self.sql.day_page, lambda after: (office, text, after, PAGE_ROWS), 0)

    def offices(self) -> list[str]:
        # Sorted here: a PostgreSQL collation may order '-' unlike SQLite's byte order.
        return sorted(office for (office,) in self._rows(self.sql.offices, ()))

    def get_meta(self, office: str, key: str, default: Any = None) -> Any:
        found = self._rows(self.sql.get_meta, (check_office(office), key))
        return orjson.loads(found[0][0]) if found else default

    def meta(self, office: str) -> dict[str, Any]:
        return {key: orjson.loads(value) for key, value in self._rows(self.sql.all_meta, (check_office(office),))}

    # -- alert subscriptions ------------------------------------------------------------------------
    def put_alert(self, office: str, token_hash: str, day: str, record: Mapping[str, Any]) -> None:
        params = (check_office(office), check_token_hash(token_hash), check_day(day), orjson.dumps(record).decode())
        with self._transaction():
            self._run(self.sql.put_alert, params)

    def alerts(self, office: str) -> list[tuple[str, str, dict[str, Any]]]:
        rows = self._rows(self.sql.alerts, (check_office(office),))
        return [(digest, day, orjson.loads(record)) for digest, day, record in rows]

    def drop_alert(self, office: str, token_hash: str) -> None:
        with self._transaction():
            self._run(self.sql.drop_alert, (check_office(office), check_token_hash(token_hash)))

    def drop_alerts_before(self, office: str, day: str) -> int:
        params = (check_office(office), check_day(day))
        with self._transaction():
            (before,) = self._rows(self.sql.count_alerts_before, params)[0]
            self._run(self.sql.drop_alerts_before, params)
        return int(before)


Query = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def pages(rows: Query, sql: str, params: Callable[[int], tuple[Any, ...]], after: int) -> Iterator[dict[str, Any]]:
    """Keyset paging: each page is its own short query for the seqs after the last one seen,
    so no cursor or transaction stays open between pages, and appends go on while a caller
    reads slowly (a gap filled behind the page being read is not seen by this read)."""
    while True:
        page = rows(sql, params(after))
        for _, body in page:
            yield orjson.loads(body)
        if len(page) < PAGE_ROWS:
            return
        after = page[-1][0]


def _has_seq(rows: list[Row], seq: int) -> bool:
    i = bisect_left(rows, seq, key=lambda row: row[1])
    return i < len(rows) and rows[i][1] == seq


# -- opening by URL -------------------------------------------------------------------------------
URL_FORMS = (
    "sqlite:///path/to/central.db or a file path (one SQLite file), sqlite:///path/to/folder/ or a folder path "
    "ending in / (a SQLite file per office), or postgresql://user@host:port/db"
)


def redact(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return url


def open_store(url: str | os.PathLike[str]) -> EventStore:
    """The store at `url`:

    - `sqlite:///abs/path/central.db` or a plain path: one SQLite file for every office (created
      if absent, in an existing folder);
    - `sqlite:///abs/path/folder/` or a plain path ending in `/`, or either naming an existing
      folder: a SQLite file per office in that folder (central/store_sqlite.py, `SqliteFolderStore`;
      the folder is created if absent, in an existing one);
    - `postgresql://user@host:port/db` (`postgres://` too; the tables are created if absent).

    StoreURLError for a URL of none of these forms, StoreError for a store that cannot be opened."""
    text = os.fspath(url)
    if not isinstance(text, str) or not text.strip():
        raise StoreURLError(f"empty store URL (use {URL_FORMS})")
    scheme, sep, _ = text.partition("://")
    scheme = scheme.lower()
    if not sep:
        if text.lower().startswith(("sqlite:", "postgresql:", "postgres:")):
            raise StoreURLError(f"store URL {redact(text)!r} lacks '//' after the scheme (use {URL_FORMS})")
        return _open_sqlite(text, text)
    if scheme == "sqlite":
        parts = urlsplit(text)
        if parts.netloc:
            raise StoreURLError(f"store URL {text!r}: sqlite takes no host, only a path (sqlite:///path/to/central.db)")
        if parts.query or parts.fragment:
            raise StoreURLError(f"store URL {text!r}: sqlite takes no '?' or '#' part")
        path = unquote(parts.path)
        if path in ("", "/"):
            raise StoreURLError(
                f"store URL {text!r} names no file or folder (sqlite:///path/to/central.db, or "
                "sqlite:///path/to/folder/ for a file per office)"
            )
        return _open_sqlite(path, text)
    if scheme in ("postgresql", "postgres"):
        from central.store_postgres import PostgresEventStore

        return PostgresEventStore(text)
    raise StoreURLError(f"store URL {redact(text)!r}: unknown scheme {scheme!r} (use {URL_FORMS})")


def _open_sqlite(path: str, url: str) -> EventStore:
    # A trailing '/' asks for a folder; an existing folder is one whatever its spelling (SQLite
    # would only fail on it).
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        from central.store_sqlite import SqliteFolderStore

        return SqliteFolderStore(path, url)
    from central.store_sqlite import SqliteEventStore

    return SqliteEventStore(path, url)


# -- copying between stores ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Copied:
    """One office copied: its records read from the source, newly stored in the target, and
    where the target stands (the same seqs as the source: `copy_store` checks)."""

    office: str
    read: int
    stored: int
    last_seq: int
    contiguous_seq: int


def copy_store(source: EventStore, target: EventStore, batch: int = PAGE_ROWS) -> list[Copied]:
    """Every office's records and metadata from `source` into `target` (any two stores: one SQLite
    file into a folder of them, SQLite into PostgreSQL). Idempotent, as `append` is: run again, it
    stores only what the source gained meanwhile; a record stored in the target with different
    content stops it (ConflictingRecord). StoreError if the target does not end up with the same
    seqs as the source for an office."""
    done = []
    for office in source.offices():
        read = stored = 0
        chunk: list[dict[str, Any]] = []
        for record in source.read(office):
            chunk.append(record)
            if len(chunk) >= batch:
                stored += target.append(office, chunk).stored
                read, chunk = read + len(chunk), []
        if chunk:
            stored += target.append(office, chunk).stored
            read += len(chunk)
        meta = source.meta(office)
        if meta:
            target.append(office, [], meta)
        figures = (source.last_seq(office), source.contiguous_seq(office), source.missing(office))
        copied = (target.last_seq(office), target.contiguous_seq(office), target.missing(office))
        if copied != figures:
            raise StoreError(
                f"office {office!r}: the copy holds seqs up to {copied[0]} (contiguous {copied[1]}, missing "
                f"{copied[2]}), the source up to {figures[0]} (contiguous {figures[1]}, missing {figures[2]}); "
                "was the target written meanwhile?"
            )
        done.append(Copied(office, read, stored, figures[0], figures[1]))
    return done
