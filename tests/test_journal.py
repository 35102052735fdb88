"""The ticket journal: durable before applied, one writer, foreign files refused and untouched,
old schemas migrated, recovery from snapshots equal to a full replay, retention, bad input."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.journal import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalReader,
    JournalTooNew,
    NotAJournal,
    TicketJournal,
    config_sha256,
    new_token,
)
from office import events as ev
from office.config import OfficeConfig, parse_config
from office.model import (
    CallNext,
    FinishService,
    Hold,
    IssueRefused,
    IssueTicket,
    Office,
    OfficeError,
    OpenCounter,
    Recall,
    StartDay,
    Transfer,
)
from office.state import OfficeState
from tests.conftest import EXAMPLES, ROOT, tokyo
from tests.crash_worker import next_moment, pick
from tests.journal_support import comparable, fingerprint, replay_last_day, row_counts

NERIMA_TEXT = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")


class WallAt:
    """A settable wall clock for a journal: retention counts from the wall clock's today."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def execute(self, journal: TicketJournal, command: Any, now: datetime) -> Any:
        self.now = now
        return journal.execute(command, now)


def make(path: Path, config: OfficeConfig, text: str = NERIMA_TEXT, **kw: Any) -> TicketJournal:
    return TicketJournal.create(path, config, text, **kw)


def session(journal: TicketJournal, rng: random.Random, n: int, now: datetime) -> datetime:
    """n seeded random operations (some refused) from `now` on; returns the clock."""
    config = journal.office.config
    services = [s.id for s in config.services]
    counters = [c.id for c in config.counters]
    for _ in range(n):
        now = next_moment(rng, now)
        with contextlib.suppress(OfficeError):
            journal.execute(pick(rng, journal.office.state, services, counters), now)
    return now


def stored(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def with_retention(days: int) -> tuple[OfficeConfig, str]:
    text = NERIMA_TEXT.replace("retention_days = 400", f"retention_days = {days}")
    assert text != NERIMA_TEXT
    return parse_config(text), text


# -- durability ---------------------------------------------------------------------------------
def test_wal_and_full_sync_by_default(tmp_path: Path, nerima: OfficeConfig) -> None:
    with make(tmp_path / "j", nerima) as j:
        assert j.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert j.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert j.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert j.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_events_are_committed_before_their_effects_are_released(tmp_path: Path, nerima: OfficeConfig) -> None:
    """When `execute` hands back the effects (and so before any is released), another
    connection already sees the command's events: they are committed, not merely written. The
    model applies them as it decides; the commit is the last statement of the command."""
    path = tmp_path / "j"
    seen: list[list[int]] = []
    with make(path, nerima) as j:
        real = j.conn
        j.conn = _RecordingConn(real)  # type: ignore[assignment]
        for command, minute in ((IssueTicket("move", new_token()), 40), (OpenCounter("1"), 41), (CallNext("1"), 42)):
            decision = j.execute(command, tokyo(2027, 3, 15, 8, minute))
            rows = stored(path, "SELECT seq FROM events WHERE seq >= ?", decision.events[0].seq)
            seen.append([seq for (seq,) in rows])
            assert [seq for (seq,) in rows] == [e.seq for e in decision.events]
            assert j.conn.statements[-1] == "COMMIT"  # type: ignore[attr-defined]
    assert seen == [[1, 2], [3], [4]]
    assert decision.effects and decision.effects[0].ticket == "A-001"  # type: ignore[union-attr]


class _RecordingConn:
    """Forwards to a real connection, remembering the statements."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real, self.statements = real, list[str]()

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return self.real.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return self.real.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _FailingConn:
    """Forwards to a real connection, failing the statements it is told to fail."""

    def __init__(self, real: sqlite3.Connection, fail_on: str, error: BaseException, after: bool = False) -> None:
        self.real, self.fail_on, self.error, self.after = real, fail_on, error, after

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith(self.fail_on):
            if self.after:
                self.real.execute(sql, *args)
            raise self.error
        return self.real.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        if sql.startswith(self.fail_on):
            raise self.error
        return self.real.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_failed_write_applies_nothing_and_the_next_one_follows_on(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 40))
        before = copy.deepcopy(comparable(j.office.state))  # the model changes the state in place
        real = j.conn
        j.conn = _FailingConn(real, "INSERT INTO events", sqlite3.OperationalError("disk I/O error"))  # type: ignore[assignment]
        with pytest.raises(sqlite3.OperationalError):
            j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 41))
        assert comparable(j.office.state) == before
        assert not real.in_transaction
        j.conn = real
        d = j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 42))
        assert [e.seq for e in d.events] == [3]
        assert d.effects[0].ticket == "A-002"  # type: ignore[union-attr]
    assert [s for (s,) in stored(path, "SELECT seq FROM events ORDER BY seq")] == [1, 2, 3]


def test_a_failed_write_whose_recovery_fails_too_recovers_before_the_next_command(
    tmp_path: Path, nerima: OfficeConfig
) -> None:
    """The model applied the events before the write failed; if reading the file back fails as
    well, no command is decided on that state: the next one recovers first."""
    path = tmp_path / "j"
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 40))
        before = copy.deepcopy(comparable(j.office.state))
        real = j.conn
        j.conn = _FailingConn(real, "INSERT INTO events", sqlite3.OperationalError("disk I/O error"))  # type: ignore[assignment]
        j.conn.execute = _failing_also_on_select(j.conn)  # type: ignore[method-assign]
        with pytest.raises(sqlite3.OperationalError):
            j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 41))
        assert "A-002" in j.office.state.tickets  # applied in memory, not stored
        j.conn = real
        d = j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 42))
        assert d.effects[0].ticket == "A-002"  # type: ignore[union-attr]
        assert comparable(j.office.state)[:2] == (before[0], 3)
        live = comparable(j.office.state)
    assert comparable(replay_last_day(path)) == live


def _failing_also_on_select(conn: _FailingConn) -> Any:
    forward = conn.execute

    def execute(sql: str, *args: Any) -> Any:
        if sql.startswith("SELECT"):
            raise sqlite3.OperationalError("disk I/O error")
        return forward(sql, *args)

    return execute


def test_an_interrupt_after_the_commit_keeps_state_and_file_equal(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 40))
        real = j.conn
        j.conn = _FailingConn(real, "COMMIT", KeyboardInterrupt(), after=True)  # type: ignore[assignment]
        with pytest.raises(KeyboardInterrupt):
            j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 41))
        j.conn = real
        assert j.office.state.last_seq == 3  # stored, so applied
        assert "A-002" in j.office.state.tickets
        d = j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 42))
        assert d.effects[0].ticket == "A-003"  # type: ignore[union-attr]
        live = comparable(j.office.state)
    assert comparable(replay_last_day(path)) == live


def test_a_failed_snapshot_does_not_fail_the_stored_command(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima, snapshot_every=3) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 40))
        real = j.conn
        j.conn = _FailingConn(real, "INSERT OR REPLACE INTO snapshots", sqlite3.OperationalError("disk full"))  # type: ignore[assignment]
        d = j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 41))  # the 3rd event
        assert d.effects[0].ticket == "A-002"  # type: ignore[union-attr]
        assert stored(path, "SELECT count(*) FROM snapshots") == [(0,)]
        j.conn = real
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 42))  # retried
        assert stored(path, "SELECT seq FROM snapshots") == [(4,)]


def test_live_state_equals_the_stored_one_to_the_microsecond(tmp_path: Path, nerima: OfficeConfig) -> None:
    """The journal keeps milliseconds; a live state holding microseconds would differ from
    every recovered one."""
    path = tmp_path / "j"
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 8, 40, 0) + timedelta(microseconds=123_456))
        live = comparable(j.office.state)
        assert j.office.state.last_ts is not None and j.office.state.last_ts.microsecond == 123_000
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == live


# -- recovery: snapshot == full replay == live ---------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recovery_equals_full_replay_equals_live_state(tmp_path: Path, nerima: OfficeConfig, seed: int) -> None:
    path = tmp_path / "j"
    rng = random.Random(seed)
    now = tokyo(2027, 3, 15, 13, 0)  # the rounds run into the next days
    j = make(path, nerima, snapshot_every=20)
    checks = 0
    for _round in range(12):
        now = session(j, rng, rng.randint(5, 60), now)
        live = comparable(j.office.state)
        j.close()
        j = TicketJournal.open(path, snapshot_every=20)
        assert comparable(j.office.state) == live
        assert comparable(replay_last_day(path)) == live
        checks += 1
    days = stored(path, "SELECT count(DISTINCT day) FROM events")[0][0]
    snapshots = stored(path, "SELECT seq FROM snapshots")
    j.close()
    assert checks == 12 and days >= 2 and len(snapshots) == 1


def test_recovery_starts_from_the_snapshot(tmp_path: Path, nerima: OfficeConfig) -> None:
    """Damage an event the snapshot already covers: opening does not even read it (while a
    full replay would fail), so recovery really starts from the snapshot."""
    path = tmp_path / "j"
    with make(path, nerima) as j:
        now = session(j, random.Random(5), 40, tokyo(2027, 3, 15, 9, 0))
        j.snapshot()
        session(j, random.Random(6), 10, now)
        live = comparable(j.office.state)
        snap_seq = j.conn.execute("SELECT seq FROM snapshots").fetchone()[0]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET body = 'not json' WHERE seq = ?", (snap_seq - 1,))
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == live
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM snapshots")
    with pytest.raises(JournalCorrupt, match=f"event {snap_seq - 1}"):
        TicketJournal.open(path)


@pytest.mark.parametrize(
    "damage",
    [
        "'not json at all'",
        "'[]'",
        "'{\"format\": 0}'",
        "json_set(state, '$.format', 999)",
        "json_set(state, '$.last_seq', 3)",
        "json_remove(state, '$.tickets')",
        "substr(state, 1, length(state) / 2)",
    ],
    ids=["garbage", "list", "old-format", "future-format", "wrong-seq", "missing-field", "truncated"],
)
def test_a_bad_snapshot_is_ignored_for_a_replay(tmp_path: Path, nerima: OfficeConfig, damage: str) -> None:
    path = tmp_path / "j"
    with make(path, nerima, snapshot_every=15) as j:
        session(j, random.Random(11), 60, tokyo(2027, 3, 15, 9, 0))
        live = comparable(j.office.state)
    assert stored(path, "SELECT count(*) FROM snapshots") == [(1,)]
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE snapshots SET state = {damage}")
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == live


def test_a_snapshot_of_an_older_day_is_not_used_across_pruned_days(tmp_path: Path) -> None:
    """Regression: a snapshot taken on a day since pruned was replayed from, over the gap."""
    config, text = with_retention(1)
    path = tmp_path / "j"
    wall = WallAt(tokyo(2027, 3, 15, 9, 0))
    with make(path, config, text, snapshot_every=10_000, clock=wall) as j:
        for hour in range(9, 12):
            wall.execute(j, IssueTicket("certificate", new_token()), tokyo(2027, 3, 15, hour, 0))
        j.snapshot()  # on Monday, at seq 4
        wall.execute(j, IssueTicket("certificate", new_token()), tokyo(2027, 3, 15, 13, 0))  # seq 5, pruned later
        wall.execute(j, IssueTicket("certificate", new_token()), tokyo(2027, 3, 16, 9, 0))
        wall.execute(j, IssueTicket("certificate", new_token()), tokyo(2027, 3, 17, 9, 0))  # prunes Monday
        live = comparable(j.office.state)
    assert stored(path, "SELECT DISTINCT day FROM events ORDER BY day") == [("2027-03-16",), ("2027-03-17",)]
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == live


def test_an_unreplayable_journal_is_refused_as_corrupt(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima, snapshot_every=10_000) as j:
        session(j, random.Random(3), 30, tokyo(2027, 3, 15, 9, 0))
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events WHERE seq = 5")  # a gap
    rows = stored(path, "SELECT * FROM events ORDER BY seq")
    with pytest.raises(JournalCorrupt, match="out of order"):
        TicketJournal.open(path)
    assert stored(path, "SELECT * FROM events ORDER BY seq") == rows


def test_the_cli_pattern_of_one_command_per_open_still_takes_snapshots(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    make(path, nerima, snapshot_every=10).close()
    now = tokyo(2027, 3, 15, 9, 0)
    for i in range(12):
        with TicketJournal.open(path, snapshot_every=10) as j:
            j.execute(IssueTicket("certificate", new_token()), now + timedelta(minutes=i))
    assert stored(path, "SELECT seq FROM snapshots") == [(10,)]


# -- retention -------------------------------------------------------------------------------------
def test_days_beyond_retention_are_deleted_on_a_new_business_day(tmp_path: Path) -> None:
    config, text = with_retention(2)
    path = tmp_path / "j"
    wall = WallAt(tokyo(2027, 3, 15, 9, 0))
    with make(path, config, text, clock=wall) as j:
        for day in (15, 16, 17):
            wall.execute(j, IssueTicket("seal", new_token()), tokyo(2027, 3, day, 9, 0))
            wall.execute(j, IssueTicket("seal", new_token()), tokyo(2027, 3, day, 10, 0))
        with j.reader() as r:
            assert r.days() == ["2027-03-15", "2027-03-16", "2027-03-17"]
        wall.execute(j, IssueTicket("seal", new_token()), tokyo(2027, 3, 18, 9, 0))  # cutoff: 03-16
        with j.reader() as r:
            assert r.days() == ["2027-03-16", "2027-03-17", "2027-03-18"]
            assert [e.seq for e in r.events(date(2027, 3, 16), date(2027, 3, 16))] == [4, 5, 6]
        wall.execute(j, IssueTicket("seal", new_token()), tokyo(2027, 3, 18, 11, 0))  # same day: nothing goes
        with j.reader() as r:
            assert r.days()[0] == "2027-03-16"
        live = comparable(j.office.state)
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == live


# -- one writer --------------------------------------------------------------------------------------
HOLD_JOURNAL = """
import sys
from gateway.journal import TicketJournal
journal = TicketJournal.open(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
journal.close()
"""

TRY_JOURNAL = """
import sys
from gateway.journal import JournalLocked, TicketJournal
try:
    TicketJournal.open(sys.argv[1])
except JournalLocked as exc:
    print(f"locked: {exc}")
    sys.exit(3)
print("opened")
"""


def test_a_second_writer_in_the_same_process_is_refused(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        with pytest.raises(JournalLocked, match=r"in use .*only one writer"):
            TicketJournal.open(path)
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 9, 0))  # the first still works
    TicketJournal.open(path).close()  # and once it is closed, another may open


def test_a_second_writer_process_is_refused(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    make(path, nerima).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_JOURNAL, str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(JournalLocked, match=rf"held by pid {holder.pid}\)"):
            TicketJournal.open(path)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # This process holds it now; a second process is refused, naming this one.
    with TicketJournal.open(path):
        result = subprocess.run(
            [sys.executable, "-c", TRY_JOURNAL, str(path)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 3, result.stdout + result.stderr
        assert f"held by pid {os.getpid()}" in result.stdout
    result = subprocess.run(
        [sys.executable, "-c", TRY_JOURNAL, str(path)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "opened")


def test_a_reader_sees_committed_events_beside_the_writer(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 9, 0))
        with JournalReader(path) as r:
            assert [e.TYPE for e in r.events()] == ["schedule", "ticket_issued"]
            j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 9, 1))
            assert [e.seq for e in r.events()] == [1, 2, 3]
            assert r.office_id == "nerima"
            assert dataclasses.replace(r.config(), source=nerima.source) == nerima
            assert r.days() == ["2027-03-15"]
            assert set(r.meta) >= {"office", "config", "created"}


# -- foreign and newer files: refused, left untouched ------------------------------------------------
def _text_file(path: Path) -> None:
    path.write_text("office = nerima\nthis is not a journal\n" * 10)


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _other_sqlite_app(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO photos VALUES (1, 'cat.jpg')")
    conn.close()


def _other_app_id(path: Path) -> None:
    _other_sqlite_app(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA application_id = 1234567")
    conn.close()


def _our_id_no_schema(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.close()


def _sqlite_header_only(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 40)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (_text_file, NotAJournal, "not an SQLite database"),
        (_empty_file, NotAJournal, "not an SQLite database"),
        (_sqlite_header_only, NotAJournal, "not an SQLite database"),
        (_other_sqlite_app, NotAJournal, "another application"),
        (_other_app_id, NotAJournal, "another application"),
        (_our_id_no_schema, NotAJournal, "no journal schema"),
    ],
    ids=["text", "empty", "short-sqlite", "other-app", "other-app-id", "no-schema"],
)
def test_a_file_that_is_not_a_journal_is_refused_and_untouched(
    tmp_path: Path, nerima: OfficeConfig, build: Any, error: type[Exception], message: str
) -> None:
    path = tmp_path / "office.db"
    build(path)
    before = fingerprint(path)
    with pytest.raises(error, match=message):
        TicketJournal.open(path)
    with pytest.raises(error, match=message):
        JournalReader(path)
    with pytest.raises(JournalError, match="exists already"):
        make(path, nerima)
    assert fingerprint(path) == before  # bytes, mtime, and no -wal/-shm/.lock beside it


def test_a_journal_of_a_newer_schema_is_refused_and_untouched(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 9, 0))
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = fingerprint(path)
    with pytest.raises(JournalTooNew, match=rf"version {SCHEMA_VERSION + 1}, newer .* upgrade counterfloor"):
        TicketJournal.open(path)
    with pytest.raises(JournalTooNew):
        JournalReader(path)
    assert fingerprint(path) == before


def test_a_damaged_journal_is_refused_as_corrupt_and_untouched(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        session(j, random.Random(2), 60, tokyo(2027, 3, 15, 9, 0))
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)  # every page after the first: garbage
    path.write_bytes(bytes(data))
    before = fingerprint(path)
    with pytest.raises(JournalCorrupt, match="damaged"):
        TicketJournal.open(path)
    with pytest.raises(JournalCorrupt, match="damaged"):
        JournalReader(path)
    assert fingerprint(path).content == before.content


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAJournal, match="directory"):
        TicketJournal.open(tmp_path)


def test_a_missing_journal_is_not_created_by_open(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        TicketJournal.open(tmp_path / "nope")
    with pytest.raises(JournalError, match="no journal"):
        JournalReader(tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []


def test_create_leaves_no_temporary_files(tmp_path: Path, nerima: OfficeConfig) -> None:
    make(tmp_path / "j", nerima).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j", "j.lock"]


DIE_WHILE_CREATING = """
import os, sys
import gateway.journal as journal
from office.config import load_config
journal.utc_now = lambda: os._exit(9)  # dies inside create, after the schema, before the commit
journal.TicketJournal.create(sys.argv[1], load_config(sys.argv[2]), open(sys.argv[2]).read())
"""


def test_a_crash_while_creating_leaves_no_half_made_journal(tmp_path: Path, nerima: OfficeConfig) -> None:
    """A half-made file at the journal's path would be refused by every later open and create."""
    path = tmp_path / "j"
    config = EXAMPLES / "nerima.toml"
    result = subprocess.run([sys.executable, "-c", DIE_WHILE_CREATING, str(path), str(config)], cwd=ROOT, check=False)
    assert result.returncode == 9
    assert not path.exists()
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 15, 9, 0))


# -- migration from v1 ---------------------------------------------------------------------------------
def _build_v1(path: Path, config: OfficeConfig, text: str) -> Office:
    """A v1 journal as _migrate_1_to_2 describes it: events(seq, ts, type, body) without their
    day, no snapshots table, user_version 1, application_id set. Returns the live model."""
    office = Office(config)
    rng = random.Random(21)
    services = [s.id for s in config.services]
    counters = [c.id for c in config.counters]
    now = tokyo(2027, 3, 15, 16, 0)
    rows = []
    for _ in range(400):
        now = next_moment(rng, now)
        try:
            decision = office.execute(pick(rng, office.state, services, counters), now)
        except OfficeError:
            continue
        for e in decision.events:
            body = json.dumps(e.body(), ensure_ascii=False, separators=(",", ":"))
            rows.append((e.seq, ev.format_ts(e.ts), e.TYPE, body))
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL)"
    )
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)", [("office", config.id), ("config", text), ("created", "2027-03-01")]
    )
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return office


def test_a_v1_journal_is_migrated_and_gives_the_same_state(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "v1.db"
    office = _build_v1(path, nerima, NERIMA_TEXT)
    schedules = stored(path, "SELECT seq, ts, type, body FROM events WHERE type = 'schedule'")
    assert len(schedules) >= 2  # the history spans several business days
    with pytest.raises(JournalError, match="open it once for writing to migrate"):
        JournalReader(path)
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == comparable(office.state)
        assert j.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # Every event got the business day of the schedule before it.
    day = ""
    for _seq, type_, body, stored_day in stored(path, "SELECT seq, type, body, day FROM events ORDER BY seq"):
        if type_ == "schedule":
            day = json.loads(body)["date"]
        assert stored_day == day
    with JournalReader(path) as r:
        assert r.days() == sorted({json.loads(s[3])["date"] for s in schedules})
    assert comparable(replay_last_day(path)) == comparable(office.state)
    with TicketJournal.open(path) as j:  # a second open finds the schema current and changes nothing
        assert comparable(j.office.state) == comparable(office.state)
        # Regression: events stored after a v1 migration (its day column is last) went into the
        # wrong columns, and the journal could not be opened again.
        now = office.state.last_ts + timedelta(minutes=1)
        j.execute(IssueTicket("move", new_token()), now)
        live = comparable(j.office.state)
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == live
    with JournalReader(path) as r:
        assert list(r.events())[-1].ts == now


# -- migration from v3 ---------------------------------------------------------------------------------
def test_a_v3_journal_gains_the_config_history_and_keeps_its_state(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "v3.db"
    with make(path, nerima) as j:
        session(j, random.Random(5), 80, tokyo(2027, 3, 15, 9, 0))
        live = comparable(j.office.state)
    with sqlite3.connect(path) as conn:  # as a v3 journal was: no config history
        conn.execute("DROP TABLE config_history")
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    with pytest.raises(JournalError, match="open it once for writing to migrate"):
        JournalReader(path)
    with TicketJournal.open(path) as j:
        assert j.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert comparable(j.office.state) == live and j.config_history() == []
        changed = NERIMA_TEXT.replace("recall_limit = 2", "recall_limit = 3")
        j.change_config(parse_config(changed), changed, via="offline")  # the new table takes the old one
        assert [old for _, _, _, old in j.config_history()] == [NERIMA_TEXT]
    with TicketJournal.open(path) as j:  # a second open finds the schema current
        assert j.office.config.rules.recall_limit == 3


# -- bad input changes nothing stored ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "code"),
    [
        (Hold("Z-999"), "unknown_ticket"),
        (Transfer("move", ticket="C-404"), "unknown_ticket"),
        (CallNext("99"), "unknown_counter"),
        (OpenCounter("13"), "unknown_counter"),
        (Recall("2"), "no_current_ticket"),
        (FinishService("99"), "unknown_counter"),
        (IssueTicket("passport", "tok"), "unknown_service"),
        (Transfer("move"), "bad_command"),
    ],
)
def test_bad_input_changes_nothing_stored(tmp_path: Path, nerima: OfficeConfig, command: Any, code: str) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        session(j, random.Random(8), 40, tokyo(2027, 3, 15, 9, 0))
        counts = row_counts(path)
        wal = Path(f"{path}-wal").read_bytes()
        main = path.read_bytes()
        state = comparable(j.office.state)
        with pytest.raises(OfficeError) as info:
            j.execute(command, tokyo(2027, 3, 15, 18, 0))
        assert info.value.code == code
        assert row_counts(path) == counts
        assert Path(f"{path}-wal").read_bytes() == wal
        assert path.read_bytes() == main
        assert comparable(j.office.state) == state


def test_a_refusal_stores_nothing(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 20, 10, 0))  # Saturday: open
        counts = row_counts(path)
        d = j.execute(IssueTicket("move", new_token()), tokyo(2027, 3, 21, 10, 0))  # Sunday: closed
        assert d.events == [] and isinstance(d.effects[0], IssueRefused)
        assert row_counts(path) == counts
        assert j.office.state.day == date(2027, 3, 20)  # a refusal does not even start the day
        d = j.execute(StartDay(), tokyo(2027, 3, 21, 10, 1))  # StartDay records the closed day
        assert [e.TYPE for e in d.events] == ["schedule"]


# -- config handling -------------------------------------------------------------------------------------
def test_open_with_a_changed_config_updates_the_stored_one(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    make(path, nerima).close()
    changed = NERIMA_TEXT.replace("recall_limit = 2", "recall_limit = 3")
    with TicketJournal.open(path, (parse_config(changed), changed)) as j:
        assert j.office.config.rules.recall_limit == 3
        assert [(seq, old) for _, seq, _, old in j.config_history()] == [(0, NERIMA_TEXT)]  # the old one kept
    with JournalReader(path) as r:
        assert r.meta["config"] == changed
        assert r.config().rules.recall_limit == 3
        # Recorded: a config_changed from the file (a new business day's schedule before it).
        change = [e for e in r.events() if isinstance(e, ev.ConfigChanged)]
        assert [(e.via, e.previous_sha256) for e in change] == [("file", config_sha256(NERIMA_TEXT))]


def test_open_with_another_offices_config_is_refused(
    tmp_path: Path, nerima: OfficeConfig, oizumi: OfficeConfig
) -> None:
    path = tmp_path / "j"
    make(path, nerima).close()
    oizumi_text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    before = stored(path, "SELECT * FROM meta")
    with pytest.raises(JournalError, match="belongs to office 'nerima'"):
        TicketJournal.open(path, (oizumi, oizumi_text))
    assert stored(path, "SELECT * FROM meta") == before
    TicketJournal.open(path).close()  # the refused open released the lock


def test_seq_is_gapless_and_time_never_goes_back(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    with make(path, nerima) as j:
        now = session(j, random.Random(4), 150, tokyo(2027, 3, 15, 9, 0))
        j.execute(IssueTicket("certificate", new_token()), now - timedelta(hours=1))  # a clock that jumped back
    rows = stored(path, "SELECT seq, ts FROM events ORDER BY seq")
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    stamps = [datetime.fromisoformat(ts) for _, ts in rows]
    assert stamps == sorted(stamps)


def test_empty_journal_recovers_to_an_empty_state(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    make(path, nerima).close()
    with TicketJournal.open(path) as j:
        assert comparable(j.office.state) == comparable(OfficeState())
    with JournalReader(path) as r:
        assert r.days() == [] and list(r.events()) == []


# -- a stateful property: whatever happens, reopening gives the live state --------------------------------
class JournalMachine(RuleBasedStateMachine):
    """Operations, snapshots and reopenings in any order: after each reopening the recovered
    state is the live one, and a full replay of the day agrees."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="journal-machine-"))
        self.path = self.dir / "j"
        self.config = parse_config(NERIMA_TEXT)
        self.journal = make(self.path, self.config, snapshot_every=7)
        self.now = tokyo(2027, 3, 15, 16, 0)
        self.services = [s.id for s in self.config.services]
        self.counters = [c.id for c in self.config.counters]

    @rule(seed=st.integers(0, 2**32 - 1), ops=st.integers(1, 12))
    def operate(self, seed: int, ops: int) -> None:
        rng = random.Random(seed)
        for _ in range(ops):
            self.now = next_moment(rng, self.now)
            with contextlib.suppress(OfficeError):
                self.journal.execute(pick(rng, self.journal.office.state, self.services, self.counters), self.now)

    @rule()
    def snapshot(self) -> None:
        self.journal.snapshot()

    @rule(hours=st.integers(1, 30))
    def wait(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule()
    def reopen(self) -> None:
        live = comparable(self.journal.office.state)
        self.journal.close()
        self.journal = TicketJournal.open(self.path, snapshot_every=7)
        assert comparable(self.journal.office.state) == live

    @invariant()
    def replay_agrees(self) -> None:
        assert comparable(replay_last_day(self.path)) == comparable(self.journal.office.state)

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.dir)


TestJournalMachine = JournalMachine.TestCase
TestJournalMachine.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)


def test_every_stored_body_is_the_events_body_as_json(tmp_path: Path, nerima: OfficeConfig) -> None:
    path = tmp_path / "j"
    events: list[ev.Event] = []
    with make(path, nerima) as j:
        script = [OpenCounter("1"), IssueTicket("move", new_token()), IssueTicket("move", new_token())]
        script += [CallNext("1"), Recall("1"), CallNext("1"), Transfer("seal", counter="1")]
        script += [IssueTicket("move", new_token()), CallNext("1"), FinishService("1")]
        for minute, command in enumerate(script):
            events += j.execute(command, tokyo(2027, 3, 15, 9, minute)).events
    rows = stored(path, "SELECT seq, body FROM events ORDER BY seq")
    assert {type(e) for e in events} >= {ev.Called, ev.Recalled, ev.Served}
    assert rows == [(e.seq, orjson.dumps(e.body()).decode()) for e in events]


def test_create_removes_what_a_killed_create_left_behind(tmp_path: Path) -> None:
    """A create killed midway leaves `.<name>.<pid>.creating` files; the next create removes those
    of processes that are gone, and never a live creator's."""
    config_text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    config = parse_config(config_text)
    target = tmp_path / "office.db"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    abandoned = [tmp_path / f".office.db.{dead_pid}.creating", tmp_path / f".office.db.{dead_pid}.creating-journal"]
    live = tmp_path / f".office.db.{os.getppid()}.creating"
    for f in [*abandoned, live]:
        f.write_bytes(b"half made")
    TicketJournal.create(target, config, config_text).close()
    assert not any(f.exists() for f in abandoned)
    assert live.exists()


def test_create_in_a_missing_directory_is_a_journal_error(tmp_path: Path, nerima: OfficeConfig) -> None:
    # Was sqlite3.OperationalError "unable to open database file", which the CLI printed as a traceback.
    path = tmp_path / "missing" / "j.db"
    with pytest.raises(JournalError, match=r"cannot create .*: no such directory"):
        TicketJournal.create(path, nerima, (EXAMPLES / "nerima.toml").read_text(encoding="utf-8"))
    assert list(tmp_path.iterdir()) == []
