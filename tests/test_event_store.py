"""Central's event store (central/store.py): one suite, run against both backends — SQLite in a
temporary file and PostgreSQL in a cluster of its own (tests/pg_support.py), a new database for
each test."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from central import store_sqlite
from central.store import (
    PAGE_ROWS,
    BadInput,
    ConflictingRecord,
    SeqRange,
    SqlEventStore,
    StoreError,
    StoreURLError,
    open_store,
)
from central.store_sqlite import SqliteFolderStore, office_file
from tests.pg_support import PostgresCluster, postgres_fixture  # noqa: F401  (registers the `postgres` fixture)

OFFICE = "oizumi"
DAY = "2027-03-15"


def record(seq: int, office: str = OFFICE, ts: str | None = None, **fields: Any) -> dict[str, Any]:
    """An event-log v1 record as published (docs/events.md, docs/mqtt.md): a ticket issued."""
    minute, second = divmod(seq, 60)
    body: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "ts": ts or f"{DAY}T09:{minute % 60:02d}:{second:02d}.125+09:00",
        "office": office,
        "type": "ticket_issued",
        "ticket": f"A-{seq:03d}",
        "service": "move",
        "number": seq,
        "token_hash": f"{seq:064x}",
        "session": 1,
    }
    body.update(fields)
    return body


def records(first: int, last: int, office: str = OFFICE, **fields: Any) -> list[dict[str, Any]]:
    return [record(seq, office, **fields) for seq in range(first, last + 1)]


def seqs(found: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for r in found]


@pytest.fixture(params=["sqlite", "sqlite-folder", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/central.db"
    if request.param == "sqlite-folder":  # a file per office
        return f"sqlite://{tmp_path}/central/"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[SqlEventStore]:
    with open_store(store_url) as opened:
        assert isinstance(opened, SqliteFolderStore) == store_url.endswith("/")
        yield opened


# -- appending and reading ------------------------------------------------------------------------
def test_append_then_read_in_seq_order(store: SqlEventStore) -> None:
    given = records(1, 10)
    result = store.append(OFFICE, [given[i] for i in (3, 0, 2, 1, 4)])  # a batch out of order
    assert (result.stored, result.duplicates, result.last_seq, result.contiguous_seq) == (5, 0, 5, 5)
    assert result.complete
    store.append(OFFICE, given[5:])
    assert list(store.read(OFFICE)) == given
    assert seqs(store.read(OFFICE, from_seq=4, to_seq=7)) == [4, 5, 6, 7]
    assert seqs(store.read(OFFICE, from_seq=9)) == [9, 10]
    assert list(store.read(OFFICE, from_seq=11)) == []
    assert list(store.read("nerima")) == []
    assert (store.last_seq(OFFICE), store.contiguous_seq(OFFICE), store.missing(OFFICE)) == (10, 10, [])


def test_duplicates_are_skipped(store: SqlEventStore) -> None:
    store.append(OFFICE, records(1, 5))
    again = store.append(OFFICE, records(1, 5))
    assert (again.stored, again.duplicates, again.last_seq) == (0, 5, 5)
    # A replay in a later session repeats the event with another `session`; keys may come in
    # another order: still the same event. The first delivery is what stays stored.
    replayed = [{k: v for k, v in reversed(list(record(seq, session=7).items()))} for seq in range(3, 8)]
    result = store.append(OFFICE, replayed)
    assert (result.stored, result.duplicates, result.last_seq) == (2, 3, 7)
    stored = list(store.read(OFFICE))
    assert [r["session"] for r in stored] == [1, 1, 1, 1, 1, 7, 7]
    assert stored[:5] == records(1, 5)
    # Repeated inside one batch: stored once.
    twice = store.append(OFFICE, [record(8), record(8), record(9)])
    assert (twice.stored, twice.duplicates) == (2, 1)
    assert seqs(store.read(OFFICE)) == list(range(1, 10))


def test_conflicting_duplicate_refuses_the_whole_batch(store: SqlEventStore) -> None:
    store.append(OFFICE, records(1, 5), meta={"session": 1})
    batch = [*records(6, 8), record(3, service="certificate", number=99), record(9)]
    with pytest.raises(ConflictingRecord) as caught:
        store.append(OFFICE, batch, meta={"session": 2})
    assert (caught.value.office, caught.value.seq, caught.value.fields) == (OFFICE, 3, ["number", "service"])
    assert "'oizumi' seq 3" in str(caught.value) and "nothing of the batch was stored" in str(caught.value)
    assert seqs(store.read(OFFICE)) == [1, 2, 3, 4, 5]
    assert list(store.read(OFFICE, 3, 3)) == [record(3)]
    assert (store.last_seq(OFFICE), store.contiguous_seq(OFFICE)) == (5, 5)
    assert store.get_meta(OFFICE, "session") == 1
    # 1 and 1.0 are different JSON, so a different record.
    with pytest.raises(ConflictingRecord, match="seq 2"):
        store.append(OFFICE, [record(2, number=2.0)])
    # Two versions of one seq inside one batch: refused before anything is stored.
    with pytest.raises(ConflictingRecord, match="seq 6"):
        store.append(OFFICE, [record(6), record(6, ticket="B-006")])
    assert store.last_seq(OFFICE) == 5
    # The store is usable after a refusal.
    assert store.append(OFFICE, records(6, 6)).stored == 1


def test_gaps_are_reported_and_filled(store: SqlEventStore) -> None:
    store.append(OFFICE, [*records(1, 3), *records(7, 8), record(10)])
    assert (store.last_seq(OFFICE), store.contiguous_seq(OFFICE)) == (10, 3)
    assert store.missing(OFFICE) == [SeqRange(4, 6), SeqRange(9, 9)]
    assert seqs(store.read(OFFICE)) == [1, 2, 3, 7, 8, 10]
    partly = store.append(OFFICE, records(5, 6))  # not at contiguous + 1: nothing advances
    assert (partly.contiguous_seq, partly.complete) == (3, False)
    assert store.missing(OFFICE) == [SeqRange(4, 4), SeqRange(9, 9)]
    filled = store.append(OFFICE, records(4, 4))  # joins 1-3 with 5-8 already stored
    assert (filled.contiguous_seq, filled.last_seq) == (8, 10)
    assert store.missing(OFFICE) == [SeqRange(9, 9)]
    done = store.append(OFFICE, records(9, 9))
    assert (done.contiguous_seq, done.complete) == (10, True)
    assert store.missing(OFFICE) == []
    assert seqs(store.read(OFFICE)) == list(range(1, 11))


def test_a_store_that_starts_past_seq_one_misses_the_beginning(store: SqlEventStore) -> None:
    result = store.append("nerima", records(5, 6, office="nerima"))
    assert (result.last_seq, result.contiguous_seq) == (6, 0)
    assert store.missing("nerima") == [SeqRange(1, 4)]
    store.append("nerima", records(1, 4, office="nerima"))
    assert (store.contiguous_seq("nerima"), store.missing("nerima")) == (6, [])


def test_read_day_is_the_local_date_of_ts(store: SqlEventStore) -> None:
    day1 = [record(1, ts="2027-03-15T08:30:00.000+09:00"), record(2, ts="2027-03-15T23:59:59.999+09:00")]
    # 00:30 in Tokyo is still the 15th in UTC: the business day is the office's local date.
    day2 = [record(3, ts="2027-03-16T00:30:00.000+09:00"), record(4, ts="2027-03-16T08:30:00.000+09:00")]
    store.append(OFFICE, [day2[1], day1[0]])  # a gap: the day comes from each record alone
    store.append(OFFICE, [day1[1], day2[0]])
    store.append("nerima", [record(1, office="nerima", ts="2027-03-15T10:00:00.000+09:00")])
    assert list(store.read_day(OFFICE, "2027-03-15")) == day1
    assert list(store.read_day(OFFICE, date(2027, 3, 16))) == day2
    assert list(store.read_day(OFFICE, "2027-03-17")) == []
    assert seqs(store.read_day("nerima", "2027-03-15")) == [1]


def test_many_offices(store: SqlEventStore) -> None:
    names = [f"ward-{n:02d}" for n in range(40)] + ["a", "z9"]
    for round_ in range(3):  # interleaved, as the broker delivers them
        for i, name in enumerate(names):
            first = round_ * 10 + 1
            store.append(name, records(first, first + 9 - (i % 3 if round_ == 2 else 0), office=name))
    assert store.offices() == sorted(names)
    for i, name in enumerate(names):
        expected = list(range(1, 31 - i % 3))
        assert seqs(store.read(name)) == expected
        assert {r["office"] for r in store.read(name)} == {name}
        assert store.last_seq(name) == expected[-1]


def test_reopen_keeps_everything(store_url: str) -> None:
    with open_store(store_url) as first:
        first.append(OFFICE, [*records(1, 4), *records(8, 9)], meta={"session": 3, "seen": {"seq": 9}})
        first.append("nerima", records(1, 2, office="nerima"))
        first.set_meta("nerima", "session", 12)
    # A new file handle / a new connection: only what was committed can be there.
    with open_store(store_url) as again:
        assert again.offices() == ["nerima", OFFICE]
        assert list(again.read(OFFICE)) == [*records(1, 4), *records(8, 9)]
        assert (again.last_seq(OFFICE), again.contiguous_seq(OFFICE)) == (9, 4)
        assert again.missing(OFFICE) == [SeqRange(5, 7)]
        assert again.meta(OFFICE) == {"seen": {"seq": 9}, "session": 3}
        assert again.get_meta("nerima", "session") == 12
        assert again.get_meta("nerima", "absent", "default") == "default"
        result = again.append(OFFICE, records(5, 7))
        assert (result.stored, result.contiguous_seq) == (3, 9)


def test_unknown_fields_are_kept_verbatim(store: SqlEventStore) -> None:
    odd = record(
        1,
        v=1,
        type="not_yet_invented",
        extra={"nested": [1, 2.5, None, True, {"deep": "値"}], "empty": {}, "list": []},
        note="改行\nと\ttab",
        big=2**62,
        small=-0.000125,
    )
    del odd["token_hash"]  # optional fields may be absent
    store.append(OFFICE, [odd])
    (back,) = store.read(OFFICE)
    assert back == odd
    assert list(back.items()) == list(odd.items())  # the same fields in the same order
    assert type(back["big"]) is int and type(back["extra"]["nested"][1]) is float


def test_a_large_batch_is_read_back_page_by_page(store: SqlEventStore) -> None:
    count = 5 * PAGE_ROWS + 7
    result = store.append(OFFICE, records(1, count))
    assert (result.stored, result.contiguous_seq) == (count, count)
    reading = store.read(OFFICE)
    assert iter(reading) is reading  # an iterator, not a list: records come page by page
    assert seqs(reading) == list(range(1, count + 1))
    assert seqs(store.read_day(OFFICE, DAY))[-3:] == [count - 2, count - 1, count]
    assert seqs(store.read(OFFICE, PAGE_ROWS, PAGE_ROWS + 1)) == [PAGE_ROWS, PAGE_ROWS + 1]


def test_metadata(store: SqlEventStore) -> None:
    assert store.meta(OFFICE) == {} and store.get_meta(OFFICE, "session") is None
    store.set_meta(OFFICE, "session", 4)
    store.set_meta(OFFICE, "session", 5)
    store.append(OFFICE, [], meta={"birth": {"seq": 0, "software": "1.0"}})
    assert store.meta(OFFICE) == {"birth": {"seq": 0, "software": "1.0"}, "session": 5}
    assert store.offices() == [OFFICE]  # an office with metadata only is known
    assert store.last_seq(OFFICE) == 0


def test_writers_racing_on_one_office(store_url: str) -> None:
    """Two writers (own connections) send the same events at once, as two deliveries would:
    every seq is stored once, and every other copy is counted a duplicate, none refused."""
    batches = [records(first, first + 49) for first in range(1, 1001, 50)]
    results: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with open_store(store_url) as mine:
                for batch in batches:
                    results[n].append(mine.append(OFFICE, batch).stored)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert [a + b for a, b in zip(*results, strict=True)] == [50] * len(batches)
    with open_store(store_url) as check:
        assert seqs(check.read(OFFICE)) == list(range(1, 1001))
        assert (check.last_seq(OFFICE), check.contiguous_seq(OFFICE)) == (1000, 1000)


def test_durability_settings(store: SqlEventStore) -> None:
    if isinstance(store, SqliteFolderStore):  # each office's file is set up as the one file is
        store.append(OFFICE, records(1, 1))
        conn = sqlite3.connect(office_file(store.folder, OFFICE))
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent: the file's own
        conn.close()
        conn = store._file(OFFICE, create=False).conn  # type: ignore[union-attr]
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, on the connection that writes
    elif store.url.startswith("sqlite"):
        conn = store.conn  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    else:
        assert store.conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"  # type: ignore[attr-defined]


# -- bad input ------------------------------------------------------------------------------------
def _without(key: str) -> dict[str, Any]:
    bad = record(3)
    del bad[key]
    return bad


def _with(key: str, value: Any) -> dict[str, Any]:
    return {**record(3), key: value}


BAD_RECORDS = [
    (_without("seq"), "record 3 of 4: no 'seq'"),
    (_with("seq", "3"), "'seq' must be an integer"),
    (_with("seq", True), "'seq' must be an integer"),
    (_with("seq", 0), "'seq' must be an integer from 1"),
    (_with("seq", 2**63), "'seq' must be an integer from 1"),
    (_without("office"), "seq 3: no 'office', not 'oizumi'"),
    (record(3, office="nerima"), "seq 3: 'office' is 'nerima', not 'oizumi'"),
    (_without("ts"), "'ts' must be an ISO 8601 time (got None)"),
    (record(3, ts="yesterday"), "'ts' must be an ISO 8601 time (got 'yesterday')"),
    (record(3, extra={"tags": {"a", "b"}}), "field extra.tags cannot be stored as JSON: a set is not"),
    (record(3, extra=[1, float("nan")]), "field extra[1] cannot be stored as JSON: nan is not a JSON number"),
    (record(3, extra={1: "x"}), "field extra cannot be stored as JSON: key 1 is not a string"),
    (record(3, extra=(1, 2)), "field extra cannot be stored as JSON: a tuple is not a JSON value"),
    (record(3, extra=2**70), "cannot be stored as JSON"),
    (["seq", 3], "record 3 of 4: a list, not a record"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_RECORDS, ids=[m[:40] for _, m in BAD_RECORDS])
def test_bad_record_stores_nothing(store: SqlEventStore, bad: Any, message: str) -> None:
    store.append(OFFICE, records(1, 2))
    with pytest.raises(BadInput) as caught:
        store.append(OFFICE, [record(4), record(5), bad, record(6)], meta={"session": 9})
    assert message in str(caught.value)
    assert "nothing of the batch was stored" in str(caught.value)
    assert seqs(store.read(OFFICE)) == [1, 2]
    assert store.last_seq(OFFICE) == 2 and store.get_meta(OFFICE, "session") is None


def test_bad_calls(store: SqlEventStore) -> None:
    with pytest.raises(BadInput, match="office id"):
        store.append("Oizumi", [record(1, office="Oizumi")])
    with pytest.raises(BadInput, match="a list of records, not a dict"):
        store.append(OFFICE, record(1))
    with pytest.raises(BadInput, match="metadata session cannot be stored as JSON"):
        store.set_meta(OFFICE, "session", {1, 2})
    with pytest.raises(BadInput, match="metadata key"):
        store.append(OFFICE, [], meta={"": 1})
    with pytest.raises(BadInput, match="business day"):
        store.read_day(OFFICE, "15/03/2027")
    with pytest.raises(BadInput, match="from_seq must be an integer"):
        store.read(OFFICE, "1")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="office id"):
        store.read("../etc")
    assert store.offices() == []


# -- opening --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty store URL"),
        ("mysql://u@h/db", "unknown scheme 'mysql'"),
        ("sqlite://host/central.db", "sqlite takes no host"),
        ("sqlite:///", "names no file"),
        ("sqlite:central.db", "lacks '//'"),
        ("sqlite:///tmp/x.db?mode=ro", "no '?' or '#'"),
        ("postgresql://u@h:99999/db", "the port must be 1-65535 (got '99999')"),
        ("postgresql://u@[bad/db", "IPv6"),
        ("postgresql://u:secret@h:x/db", "postgresql://u:***@h:x/db"),
    ],
)
def test_bad_url(url: str, message: str) -> None:
    with pytest.raises(StoreURLError) as caught:
        open_store(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_store_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        open_store(tmp_path / "no-such-folder" / "central.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db: cannot use it"):
        open_store(garbage)
    assert garbage.read_bytes() == b"not a database at all" * 100
    other = tmp_path / "journal.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body TEXT)")
    with pytest.raises(StoreError, match=r"not a central event store .*tables events"):
        open_store(f"sqlite://{other}")
    # A closed port: a clear error, not a hang.
    with pytest.raises(StoreError, match=r"event store postgresql://nobody@127.0.0.1:1/x: cannot connect"):
        open_store("postgresql://nobody@127.0.0.1:1/x")


def test_a_postgres_database_of_something_else_is_refused(postgres: PostgresCluster) -> None:
    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id serial PRIMARY KEY)")
    with pytest.raises(StoreError, match=r"not a central event store .*tables events"):
        open_store(url)
    with psycopg.connect(url, autocommit=True) as conn:  # and it was left as it was
        assert conn.execute("SELECT to_regclass('offices')").fetchone() == (None,)


# -- a SQLite file per office ----------------------------------------------------------------------
def folder_store(tmp_path: Path, name: str = "central") -> SqliteFolderStore:
    opened = open_store(f"{tmp_path}/{name}/")
    assert isinstance(opened, SqliteFolderStore)
    return opened


def file_offices(path: Path) -> tuple[set[str], set[str]]:
    """The offices named in one SQLite file's events and in its metadata, read past the store."""
    with sqlite3.connect(path) as conn:
        events = {o for (o,) in conn.execute("SELECT DISTINCT office FROM events")}
        meta = {o for (o,) in conn.execute("SELECT DISTINCT office FROM office_meta")}
    conn.close()
    return events, meta


def test_a_folder_store_keeps_each_office_in_a_file_of_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "central"
    with folder_store(tmp_path) as store:
        assert store.offices() == [] and sorted(p.name for p in folder.iterdir()) == ["counterfloor-central-store"]
        store.append(OFFICE, records(1, 30), meta={"session": 2})
        store.append("nerima", records(1, 20, office="nerima"))
        store.set_meta("z9-x", "session", 1)  # metadata alone makes an office known, as in one file
        # Reading an office that has nothing creates nothing.
        assert (list(store.read("absent")), store.last_seq("absent"), store.meta("absent")) == ([], 0, {})
        assert store.append("absent", []).last_seq == 0
        assert store.offices() == ["nerima", OFFICE, "z9-x"]
    files = sorted(p.name for p in folder.glob("*.sqlite"))
    assert files == ["nerima.sqlite", "oizumi.sqlite", "z9-x.sqlite"]
    # Each file holds its office alone: the events of one are never in another's file.
    assert file_offices(folder / "oizumi.sqlite") == ({OFFICE}, {OFFICE})
    assert file_offices(folder / "nerima.sqlite") == ({"nerima"}, set())
    assert file_offices(folder / "z9-x.sqlite") == (set(), {"z9-x"})
    with sqlite3.connect(folder / "nerima.sqlite") as conn:
        assert [s for (s,) in conn.execute("SELECT seq FROM events ORDER BY seq")] == list(range(1, 21))
    conn.close()


def test_two_offices_never_wait_for_one_write_lock(tmp_path: Path) -> None:
    """The point of the layout: a writer holding one office's file does not hold another's
    (with one file, the second append would wait BUSY_TIMEOUT_MS and fail)."""
    with folder_store(tmp_path) as store:
        store.append(OFFICE, records(1, 2))
        other = sqlite3.connect(office_file(store.folder, OFFICE), isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # another worker, mid-transaction on oizumi
            assert store.append("nerima", records(1, 5, office="nerima")).stored == 5
            third = sqlite3.connect(office_file(store.folder, OFFICE), isolation_level=None, timeout=0)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                third.execute("BEGIN IMMEDIATE")  # oizumi's lock is really held
            third.close()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.append(OFFICE, records(3, 3)).contiguous_seq == 3


def test_a_folder_store_keeps_what_append_returned_without_a_clean_close(tmp_path: Path) -> None:
    """Durability: a process that dies right after its appends (no close, no checkpoint) has
    left every event and metadata value in the offices' files."""
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from central.store import open_store
from tests.test_event_store import records
store = open_store({f"{tmp_path}/central/"!r})
for first in range(1, 200, 10):
    store.append("oizumi", records(first, first + 9))
    store.append("nerima", records(first, first + 9, office="nerima"))
store.set_meta("oizumi", "session", 4)
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with folder_store(tmp_path) as again:
        assert again.offices() == ["nerima", OFFICE]
        assert list(again.read(OFFICE)) == records(1, 200)
        assert list(again.read("nerima")) == records(1, 200, office="nerima")
        assert (again.contiguous_seq(OFFICE), again.get_meta(OFFICE, "session")) == (200, 4)


def test_an_office_file_holding_another_office_is_refused(tmp_path: Path) -> None:
    with folder_store(tmp_path) as store:
        store.append(OFFICE, records(1, 3))
    folder = tmp_path / "central"
    shutil.copy(folder / "oizumi.sqlite", folder / "nerima.sqlite")  # renamed by hand
    with folder_store(tmp_path) as store:
        assert store.last_seq(OFFICE) == 3
        with pytest.raises(StoreError, match=r"nerima\.sqlite: holds office 'oizumi', but this file is 'nerima'"):
            store.last_seq("nerima")


def test_open_office_files_are_bounded_and_a_slow_reader_still_reads_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_sqlite, "MAX_WRITING", 3)
    monkeypatch.setattr(store_sqlite, "MAX_READING", 2)
    names = [f"ward-{n}" for n in range(8)]
    with folder_store(tmp_path) as store:
        for name in names:
            store.append(name, records(1, 5, office=name))
        assert len(store._writing) == 3 and not store._reading  # the three last written stay open
        store.append(OFFICE, records(1, 2 * PAGE_ROWS + 5))
        for name in names:  # closed files open again
            assert seqs(store.read(name)) == [1, 2, 3, 4, 5]
        assert len(store._writing) == 3 and len(store._reading) == 2
    with folder_store(tmp_path) as reader:
        reading = reader.read(OFFICE)
        assert next(reading)["seq"] == 1  # the first page is read
        for name in names:  # ...then more offices than stay open: oizumi's file is closed
            reader.last_seq(name)
        assert OFFICE not in reader._reading
        assert seqs(reading) == list(range(2, 2 * PAGE_ROWS + 6))  # reopened for the next pages


@pytest.mark.parametrize(
    ("setup", "url", "message"),
    [
        (
            None,
            "{tmp}/no/such/",
            "event store folder {tmp}/no/such: cannot create it: its parent folder does not exist",
        ),
        ("file", "{tmp}/thing/", "event store folder {tmp}/thing: a file, not a folder"),
        (
            "stranger",
            "{tmp}/thing/",
            "not a central store folder (it holds notes.txt and no counterfloor-central-store",
        ),
        ("one-file", "{tmp}/thing/", "it holds central.db and no counterfloor-central-store file"),
        ("one-file", "sqlite://{tmp}/thing", "python -m central.store_copy FILE FOLDER/"),  # an existing folder
        ("marker", "{tmp}/thing/", "counterfloor-central-store says 'layout 9: something else'"),
    ],
)
def test_a_bad_store_folder_is_a_clear_error(tmp_path: Path, setup: str | None, url: str, message: str) -> None:
    thing = tmp_path / "thing"
    if setup == "file":
        thing.write_text("x")
    elif setup is not None:
        thing.mkdir()
        name, text = {
            "stranger": ("notes.txt", "x"),
            "one-file": ("central.db", ""),
            "marker": ("counterfloor-central-store", "layout 9: something else\n"),
        }[setup]
        (thing / name).write_text(text)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(StoreError) as caught:
        open_store(url.format(tmp=tmp_path))
    assert message.format(tmp=tmp_path) in str(caught.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing was created or written


def test_a_one_file_store_still_works_and_copies_into_a_folder(tmp_path: Path) -> None:
    """The one-file layout stays as it was (existing stores open and keep every event), and its
    events move to a folder store by `python -m central.store_copy` without loss: gaps, metadata,
    first deliveries' sessions and all; a second run stores nothing."""
    one = tmp_path / "central.db"
    with open_store(f"sqlite://{one}") as old:
        assert not isinstance(old, SqliteFolderStore)
        old.append(OFFICE, [*records(1, 2 * PAGE_ROWS), *records(2 * PAGE_ROWS + 5, 2 * PAGE_ROWS + 9)])
        old.append(OFFICE, records(3, 4, session=9))  # duplicates: the first session stays
        old.append("nerima", records(1, 3, office="nerima"), meta={"session": 7, "central_pruned_before": 2})
        old.set_meta("z9-x", "birth", {"seq": 0})
        expected = {o: (list(old.read(o)), old.meta(o), old.missing(o)) for o in old.offices()}
    with open_store(one) as reopened:  # a plain path too
        assert reopened.offices() == ["nerima", OFFICE, "z9-x"] and list(reopened.read(OFFICE)) == expected[OFFICE][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["central.db"]  # opening it made no folder
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "central.store_copy", str(one), f"{tmp_path}/central/"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True, timeout=60)
    assert f"oizumi: {2 * PAGE_ROWS + 5} record(s) read, {2 * PAGE_ROWS + 5} newly stored" in done.stdout
    assert "3 office(s) copied" in done.stdout
    with folder_store(tmp_path) as new:
        assert {o: (list(new.read(o)), new.meta(o), new.missing(o)) for o in new.offices()} == expected
        assert new.missing(OFFICE) == [SeqRange(2 * PAGE_ROWS + 1, 2 * PAGE_ROWS + 4)]
    again = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True, timeout=60)
    assert [line.split(";")[0].split(", ")[1] for line in again.stdout.splitlines()[:-1]] == ["0 newly stored"] * 3
    # A different record under a seq the target holds stops the copy, naming it.
    with folder_store(tmp_path, "other") as other:
        other.append(OFFICE, [record(2, number=99)])
    bad = subprocess.run([*command[:-1], f"{tmp_path}/other/"], cwd=root, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "store_copy: office 'oizumi' seq 2: a different record" in bad.stderr


# -- residents' alert subscriptions (central/alerts) ----------------------------------------------
H1, H2, H3 = ("a" * 64, "b" * 64, "c" * 64)


def test_alert_subscriptions_are_kept_replaced_and_dropped_per_office(store_url: str) -> None:
    with open_store(store_url) as first:
        first.append(OFFICE, records(1, 2))
        first.put_alert(OFFICE, H1, DAY, {"choice": {"by": "ahead", "value": 3}, "sent": []})
        first.put_alert(OFFICE, H2, DAY, {"sent": []})
        first.put_alert(OFFICE, H1, DAY, {"choice": {"by": "minutes", "value": 10}, "sent": ["near:0"]})
        first.put_alert("nerima", H3, "2027-03-14", {"sent": []})
    with open_store(store_url) as again:  # durable: a new connection sees them
        assert again.alerts(OFFICE) == [
            (H1, DAY, {"choice": {"by": "minutes", "value": 10}, "sent": ["near:0"]}),
            (H2, DAY, {"sent": []}),
        ]
        again.drop_alert(OFFICE, H2)
        again.drop_alert(OFFICE, H2)  # twice: nothing to drop, no error
        assert [h for h, _, _ in again.alerts(OFFICE)] == [H1]
        # The end-of-day sweep: the days before today's, per office.
        assert again.drop_alerts_before("nerima", DAY) == 1
        assert again.drop_alerts_before(OFFICE, DAY) == 0
        assert again.alerts("nerima") == [] and len(again.alerts(OFFICE)) == 1
        assert again.drop_alerts_before(OFFICE, "9999-12-31") == 1
        assert again.alerts(OFFICE) == [] and again.alerts("unknown") == []
        assert list(again.read(OFFICE)) == records(1, 2)  # the events are not touched


@pytest.mark.parametrize(
    ("office", "digest", "day", "message"),
    [
        ("Bad Office", H1, DAY, "office"),
        (OFFICE, "A" * 64, DAY, "token hash"),
        (OFFICE, "a" * 63, DAY, "token hash"),
        (OFFICE, H1, "15/03/2027", "day"),
    ],
)
def test_a_bad_alert_subscription_stores_nothing(
    store: SqlEventStore, office: str, digest: str, day: str, message: str
) -> None:
    store.put_alert(OFFICE, H2, DAY, {"sent": []})
    with pytest.raises(BadInput, match=message):
        store.put_alert(office, digest, day, {"sent": []})
    assert store.alerts(OFFICE) == [(H2, DAY, {"sent": []})]


def test_a_v1_sqlite_store_gains_the_alerts_table_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    with open_store(str(path)) as made:
        made.append(OFFICE, records(1, 3))
    with sqlite3.connect(path) as conn:  # as version 1 left it: no alerts table
        conn.execute("DROP TABLE alerts")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    with open_store(str(path)) as upgraded:
        assert list(upgraded.read(OFFICE)) == records(1, 3)
        upgraded.put_alert(OFFICE, H1, DAY, {"sent": []})
        assert len(upgraded.alerts(OFFICE)) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()


def test_a_v1_postgres_store_gains_the_alerts_table_and_keeps_its_events(postgres: PostgresCluster) -> None:
    url = postgres.new_database()
    with open_store(url) as made:
        made.append(OFFICE, records(1, 3))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE alerts")
        conn.execute("UPDATE store_meta SET value = '1' WHERE key = 'schema'")
    with open_store(url) as upgraded:
        assert list(upgraded.read(OFFICE)) == records(1, 3)
        upgraded.put_alert(OFFICE, H1, DAY, {"sent": []})
        assert len(upgraded.alerts(OFFICE)) == 1
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM store_meta WHERE key = 'schema'").fetchone() == ("2",)
