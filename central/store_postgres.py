"""The event store in PostgreSQL through psycopg 3: for a national deployment on a managed
PostgreSQL (central/store.py has the interface and the logic; this module the connection, its
schema and its transactions).

One transaction per batch with `synchronous_commit = on` set for the session, whatever the
server's default, so a batch is on the server's disk (WAL flushed) when `append` returns. Appends
to one office are serialised by locking its row in `offices`; different offices go in parallel.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from central.store import SCHEMA_VERSION, Row, SqlEventStore, Statements, StoreError, StoreURLError, redact

CONNECT_TIMEOUT_S = 10
# Held while the tables are created or checked, so that workers starting together do not race
# on CREATE TABLE IF NOT EXISTS (which is not safe against a concurrent creator).
_SCHEMA_LOCK = 0x43464553  # "CFES", as the SQLite store's application id

_SCHEMA = [
    "CREATE TABLE store_meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE offices (
        office         text PRIMARY KEY,
        last_seq       bigint NOT NULL DEFAULT 0,
        contiguous_seq bigint NOT NULL DEFAULT 0,
        stored         bigint NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE events (
        office text NOT NULL,
        seq    bigint NOT NULL,
        day    text NOT NULL,
        body   text NOT NULL,
        PRIMARY KEY (office, seq)
    )""",
    "CREATE INDEX events_by_day ON events (office, day, seq)",
    """CREATE TABLE office_meta (
        office text NOT NULL,
        key    text NOT NULL,
        value  text NOT NULL,
        PRIMARY KEY (office, key)
    )""",
]
# v2's table (central/store.py's put_alert): a v1 database gets it when first opened by v2.
_ALERTS = """CREATE TABLE alerts (
        office     text NOT NULL,
        token_hash text NOT NULL,
        day        text NOT NULL,
        record     text NOT NULL,
        PRIMARY KEY (office, token_hash)
    )"""
_SCHEMA.append(_ALERTS)
_TABLES = ("store_meta", "offices", "events", "office_meta", "alerts")


class PostgresEventStore(SqlEventStore):
    sql = Statements.build("%s", " FOR UPDATE")

    def __init__(self, url: str) -> None:
        self.url = redact(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreURLError(f"store URL {self.url!r}: {str(exc).strip()}") from None
        # libpq would take a bad port as a failed connection after its timeout; say it now.
        for port in str(params.get("port", "5432")).split(","):  # a list: one per host
            if not (port.isdigit() and 0 < int(port) < 65536):
                raise StoreURLError(f"store URL {self.url!r}: the port must be 1-65535 (got {port!r})")
        try:
            # autocommit: reads are single statements; writes take an explicit transaction.
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"event store {self.url}: cannot connect ({reason})") from None
        try:
            self.conn.execute("SET synchronous_commit = on")
            self._set_up()
        except BaseException:
            self.conn.close()
            raise

    def _set_up(self) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            present = [t for t in _TABLES if self._rows("SELECT to_regclass(%s)", (t,))[0][0] is not None]
            if not present:
                for statement in _SCHEMA:
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO store_meta VALUES ('schema', %s)", (str(SCHEMA_VERSION),))
                return
            if "store_meta" not in present:
                tables = ", ".join(present)
                raise StoreError(f"event store {self.url}: not a central event store (it has tables {tables})")
            found = self._rows("SELECT value FROM store_meta WHERE key = 'schema'", ())
            version = found[0][0] if found else "none"
            if version == "1" and present == list(_TABLES[:-1]):  # v1 → v2: the alerts table, nothing else
                self.conn.execute(_ALERTS)
                self.conn.execute("UPDATE store_meta SET value = %s WHERE key = 'schema'", (str(SCHEMA_VERSION),))
                version, present = str(SCHEMA_VERSION), list(_TABLES)
            if version != str(SCHEMA_VERSION) or len(present) != len(_TABLES):
                raise StoreError(f"event store {self.url}: schema v{version}, this code reads v{SCHEMA_VERSION}")

    def _transaction(self) -> AbstractContextManager[Any]:
        return self.conn.transaction()

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.execute(sql, params)

    def _run_many(self, sql: str, rows: list[Row] | list[tuple[str, str, str]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(sql, rows)  # pipelined by psycopg: one round trip, not one per row

    def _insert_events(self, rows: list[Row]) -> None:
        # COPY: 2.4× the rows/s of a pipelined executemany here (batches of 100 and 1,000). Safe
        # because the rows are checked against the stored ones under the office's row lock: a
        # duplicate key, which would fail the whole COPY, cannot reach it.
        with self.conn.cursor() as cursor, cursor.copy("COPY events (office, seq, day, body) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        self.conn.close()
