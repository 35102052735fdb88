"""Residents' page tokens are kept for their business day only (issue 19): the first write of a
new day removes the earlier days' from the journal's events, snapshots and stored request
results, and from the bytes of the file and its WAL; everything that reads old events still does,
and a crash or a failure in the middle of it leaves all of it done or none."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import gateway.journal as journal_module
from gateway import control
from gateway.journal import SCRUBBED_BEFORE, JournalReader, TicketJournal, new_token
from office import events as ev
from office.config import OfficeConfig
from office.model import (
    CallNext,
    FinishService,
    IssueTicket,
    Office,
    OpenCounter,
    RecordPrintFailure,
    RecordReprint,
    Reprint,
    StartDay,
    TicketReady,
)
from office.state import OfficeState
from tests.conftest import EXAMPLES, ROOT, tokyo
from tests.journal_support import comparable, replay_last_day

NERIMA = "nerima"
DAY1, DAY2, DAY3 = date(2027, 3, 15), date(2027, 3, 16), date(2027, 3, 17)  # Monday to Wednesday


class WallAt:
    """A settable wall clock for a journal (retention counts from the wall clock's today)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Floor:
    """A journal driven as the gateway drives it: presses and control commands with request ids
    (a control command's stored result is its reply, which names the ticket's page)."""

    path: Path
    config: OfficeConfig
    wall: WallAt
    journal: TicketJournal
    tokens: dict[date, dict[str, str]] = field(default_factory=dict)  # day -> ticket -> token
    socket_requests: dict[str, tuple[date, str]] = field(default_factory=dict)  # request id -> day, ticket
    requests: int = 0

    def run(self, command: Any, at: datetime, via: str | None = None) -> Any:
        self.wall.now = at
        if via is None:
            return self.journal.execute(command, at)
        self.requests += 1
        request = f"{via}:{self.requests}"
        if via == "socket":  # gateway.service's control path: the reply, as JSON

            def result(d: Any) -> str:
                return json.dumps(control.done_reply(d, self.config))
        else:  # a device press: "ticket_issued A-001"

            def result(d: Any) -> str:
                return ", ".join(f"{e.TYPE} {getattr(e, 'ticket', '')}".strip() for e in d.events)

        decision = self.journal.execute(command, at, request=request, result=result)
        if via == "socket":
            ticket = next(e.ticket for e in decision.events if isinstance(e, ev.TicketIssued))
            self.socket_requests[request] = (at.date(), ticket)
        return decision

    def issue(self, service: str, at: datetime, via: str | None = None) -> str:
        token = new_token()
        decision = self.run(IssueTicket(service, token), at, via)
        ticket = next(e for e in decision.events if isinstance(e, ev.TicketIssued))
        assert ticket.token == token
        self.tokens.setdefault(at.date(), {})[ticket.ticket] = token
        return ticket.ticket

    def day(self, day: date, tickets: int) -> None:
        """A day: a counter opened, tickets issued by presses, by the control socket and by
        neither, some called and served; one whose print failed is reprinted with its token."""
        self.run(OpenCounter("1"), _at(day, 9, 0))
        for i in range(tickets):
            at = _at(day, 9, 1) + timedelta(minutes=2 * i)
            self.issue(("move", "seal", "certificate")[i % 3], at, via=(None, "press", "socket")[i % 3])
            if i % 4 == 3:
                self.run(CallNext("1"), at + timedelta(seconds=30))
                self.run(FinishService("1"), at + timedelta(seconds=50))
        last = list(self.tokens[day])[-1]
        at = _at(day, 9, 1) + timedelta(minutes=2 * tickets)
        self.run(RecordPrintFailure(last, "p1", "paper_out"), at)
        decision = self.run(Reprint(last, new_token()), at + timedelta(seconds=5))
        (ready,) = [e for e in decision.effects if isinstance(e, TicketReady)]
        assert ready.token == self.tokens[day][last] and ready.reprint  # today's token: the same QR code
        assert decision.events == []  # nothing stored: no new token
        self.run(RecordReprint(last, "p1"), at + timedelta(seconds=10))


def _at(day: date, hour: int, minute: int) -> datetime:
    return tokyo(day.year, day.month, day.day, hour, minute)


@contextlib.contextmanager
def floor(tmp_path: Path, config: OfficeConfig, text: str, **kw: Any) -> Iterator[Floor]:
    path = tmp_path / "office.db"
    wall = WallAt(_at(DAY1, 8, 30))
    j = TicketJournal.create(path, config, text, clock=wall, **kw)
    f = Floor(path, config, wall, j)
    try:
        yield f
    finally:
        f.journal.close()


@pytest.fixture
def nerima_text() -> str:
    return (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")


def reopen(f: Floor) -> TicketJournal:
    f.journal.close()
    f.journal = TicketJournal.open(f.path, clock=f.wall)
    return f.journal


# -- reading what is stored, as rows and as bytes ---------------------------------------------------
def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, args).fetchall()


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: what 'left as it was' means."""
    return {
        name: rows(path, f"SELECT * FROM {name} ORDER BY 1")
        for name in ("events", "snapshots", "requests", "meta", "config_history")
    }


def stored_text(path: Path) -> str:
    """Every stored text in which a token could be: events' bodies, snapshots, request results, meta."""
    parts = [body for (body,) in rows(path, "SELECT body FROM events")]
    parts += [state for (state,) in rows(path, "SELECT state FROM snapshots")]
    parts += [result for (result,) in rows(path, "SELECT result FROM requests")]
    parts += [f"{k}={v}" for k, v in rows(path, "SELECT key, value FROM meta")]
    return "\n".join(parts)


def file_bytes(path: Path) -> bytes:
    """The journal's files as they are on disk: the database, its WAL and its shared memory."""
    return b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal", "-shm") if Path(f"{path}{s}").exists())


def public(path: Path, day: date) -> list[dict[str, Any]]:
    with JournalReader(path) as r:
        return [ev.public_record(e, NERIMA) for e in r.events(day, day)]


def issued(path: Path, day: date) -> dict[str, dict[str, Any]]:
    """The day's ticket_issued bodies, by ticket."""
    found = rows(path, "SELECT body FROM events WHERE day = ? AND type = 'ticket_issued'", day.isoformat())
    return {b["ticket"]: b for b in (json.loads(body) for (body,) in found)}


def present(tokens: dict[str, str], where: str | bytes) -> list[str]:
    if isinstance(where, bytes):
        return [t for t in tokens.values() if t.encode() in where]
    return [t for t in tokens.values() if t in where]


# -- the day's tokens go when the next day starts --------------------------------------------------
def test_a_new_day_removes_the_earlier_days_tokens_from_rows_and_bytes(
    tmp_path: Path, nerima: OfficeConfig, nerima_text: str
) -> None:
    with floor(tmp_path, nerima, nerima_text, snapshot_every=10) as f:
        f.day(DAY1, 24)
        day1 = f.tokens[DAY1]
        # Before: the tokens are in the rows and the bytes (so that the checks below can fail).
        assert len(day1) == 24
        assert present(day1, stored_text(f.path)) == list(day1.values())
        assert present(day1, file_bytes(f.path)) == list(day1.values())
        assert rows(f.path, "SELECT count(*) FROM snapshots") == [(1,)]
        assert present(day1, rows(f.path, "SELECT state FROM snapshots")[0][0])
        socket_day1 = [r for r, (d, _) in f.socket_requests.items() if d == DAY1]
        results_before = {r: f.journal.recorded(r) for r in socket_day1}
        assert all(f"/t/{day1[f.socket_requests[r][1]]}" in str(results_before[r]) for r in socket_day1)
        records_before = public(f.path, DAY1)
        bodies_before = issued(f.path, DAY1)
        (snapshot1,) = rows(f.path, "SELECT seq FROM snapshots")

        decision = f.run(StartDay(), _at(DAY2, 8, 30))
        assert [e.TYPE for e in decision.events] == ["schedule"]
        # No snapshot of day 1 is left (recovery reads today's only).
        first2 = decision.events[0].seq
        assert snapshot1 not in rows(f.path, "SELECT seq FROM snapshots")
        assert all(seq >= first2 for (seq,) in rows(f.path, "SELECT seq FROM snapshots"))
        f.day(DAY2, 6)
        day2 = f.tokens[DAY2]

        # Day 1's tokens are gone from every table and from the files' bytes; day 2's are kept.
        assert present(day1, stored_text(f.path)) == []
        assert present(day1, file_bytes(f.path)) == []
        assert present(day2, stored_text(f.path)) == list(day2.values())
        assert present(day2, file_bytes(f.path)) == list(day2.values())
        assert f.journal.get_meta(SCRUBBED_BEFORE) == DAY2.isoformat()
        # A scrubbed event holds "" in place of its token, and everything else as it was.
        bodies_after = issued(f.path, DAY1)
        assert bodies_after == {t: {**b, "token": ""} for t, b in bodies_before.items()}
        for ticket, body in bodies_after.items():
            assert body["token_hash"] == hashlib.sha256(day1[ticket].encode()).hexdigest()
        assert public(f.path, DAY1) == records_before
        # A retried day-1 request still gets its reply, without the page's token.
        for r in socket_day1:
            after = f.journal.recorded(r)
            assert after == str(results_before[r]).replace(day1[f.socket_requests[r][1]], "")
            assert json.loads(str(after))["effects"][0]["page"].endswith("/t/")
        # Today's tickets reprint with their own token.
        ticket2 = next(t.id for t in f.journal.office.state.tickets.values() if t.status == "waiting")
        (ready,) = f.run(Reprint(ticket2), _at(DAY2, 12, 0)).effects
        assert isinstance(ready, TicketReady) and ready.token == day2[ticket2]


def test_a_replaced_token_of_a_restored_day_goes_too(tmp_path: Path, nerima: OfficeConfig, nerima_text: str) -> None:
    """A journal restored from central's copy (tokens never in it): a reprint stores a new token
    (`token_replaced`), which is private like any other and goes when the next day starts."""
    office = Office(nerima, OfficeState())
    events = office.execute(IssueTicket("move", "not-kept"), _at(DAY1, 9, 0)).events
    restored = [
        ev.event_from_record(
            e.seq, ev.format_ts(e.ts), e.TYPE, {**e.body(), "token": ""} if "token" in e.body() else e.body()
        )
        for e in events
    ]
    path = tmp_path / "office.db"
    wall = WallAt(_at(DAY1, 9, 30))
    with TicketJournal.create(path, nerima, nerima_text, clock=wall, restored=(DAY1, restored, {})) as j:
        new = new_token()
        decision = j.execute(Reprint("A-001", new), _at(DAY1, 9, 30))
        assert [e.TYPE for e in decision.events] == ["token_replaced"]
        assert present({"A-001": new}, file_bytes(path))
        wall.now = _at(DAY2, 8, 30)
        j.execute(StartDay(), wall.now)
        (body,) = [json.loads(b) for (b,) in rows(path, "SELECT body FROM events WHERE type = 'token_replaced'")]
        assert body == {"ticket": "A-001", "token_hash": hashlib.sha256(new.encode()).hexdigest(), "token": ""}
        assert present({"A-001": new}, file_bytes(path)) == []


# -- everything that reads old events still does ---------------------------------------------------
def test_a_journal_reopened_after_the_scrub_recovers_and_goes_on(
    tmp_path: Path, nerima: OfficeConfig, nerima_text: str
) -> None:
    with floor(tmp_path, nerima, nerima_text, snapshot_every=10) as f:
        f.day(DAY1, 12)
        f.run(StartDay(), _at(DAY2, 8, 30))
        f.day(DAY2, 9)
        live = comparable(f.journal.office.state)
        count, last = rows(f.path, "SELECT count(*), max(seq) FROM events")[0]
        everything = public(f.path, DAY1) + public(f.path, DAY2)

        j = reopen(f)
        # A restart recovers today only (from today's snapshot or today's first event): the same state.
        assert comparable(j.office.state) == live
        assert comparable(replay_last_day(f.path)) == live
        assert j.office.state.day == DAY2 and j.office.state.last_seq == last
        assert rows(f.path, "SELECT count(*), max(seq) FROM events")[0] == (count, last)  # nothing lost
        # Old days still read, whole: the export's, the learner's and the MQTT link's reads.
        with JournalReader(f.path) as r:
            assert [ev.public_record(e, NERIMA) for e in r.events()] == everything
            assert [e.seq for e in r.events_after(0, limit=count + 10)] == list(range(1, last + 1))
            old = [e for e in r.events(DAY1, DAY1) if isinstance(e, ev.TicketIssued)]
            assert len(old) == 12 and {e.token for e in old} == {""}
        assert [e.seq for e in j.events_after(0, limit=count + 10)] == list(range(1, last + 1))
        # Numbering and seq go on; today's tokens still serve a reprint.
        numbers = [t.number for t in j.office.state.tickets.values() if t.service == "move"]
        ticket = f.issue("move", _at(DAY2, 14, 0))
        assert j.office.state.last_seq == last + 1
        assert j.office.state.tickets[ticket].number == max(numbers) + 1
        (ready,) = f.run(Reprint(ticket), _at(DAY2, 14, 1)).effects
        assert isinstance(ready, TicketReady) and ready.token == f.tokens[DAY2][ticket]


# -- all or none ----------------------------------------------------------------------------------------
class Crash(BaseException):
    """The process dying mid-transaction, as far as the journal's code can tell."""


def _fail_after_requests(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[int]:
    """Make the scrub raise `error` at its very end: events and snapshots already changed."""
    real = journal_module._scrub_requests
    calls: list[int] = []

    def failing(conn: sqlite3.Connection, tokens: dict[str, set[str]]) -> int:
        calls.append(real(conn, tokens))
        raise error

    monkeypatch.setattr(journal_module, "_scrub_requests", failing)
    return calls


def test_a_failing_scrub_is_undone_whole_the_day_starts_and_the_next_open_finishes_it(
    tmp_path: Path, nerima: OfficeConfig, nerima_text: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    with floor(tmp_path, nerima, nerima_text, snapshot_every=10) as f:
        f.day(DAY1, 12)
        before = tables(f.path)
        calls = _fail_after_requests(monkeypatch, RuntimeError("disk trouble"))
        with caplog.at_level(logging.WARNING, logger="gateway.journal"):
            f.issue("move", _at(DAY2, 9, 0), via="press")
        assert calls == [4]  # it got as far as the request results (of day 1's socket issues)
        assert "removing the tokens of the days before 2027-03-16 failed" in caplog.text
        # The day's first command is stored; of the scrub, nothing is.
        day2 = rows(f.path, "SELECT type FROM events WHERE day = ? ORDER BY seq", DAY2.isoformat())
        assert day2 == [("schedule",), ("ticket_issued",)]
        after = tables(f.path)
        day1_last = before["events"][-1][0]
        assert [r for r in after["events"] if r[0] <= day1_last] == before["events"]
        assert after["snapshots"] == before["snapshots"]
        assert [r for r in after["requests"] if r[1] == DAY1.isoformat()] == before["requests"]
        assert dict(after["meta"])[SCRUBBED_BEFORE] == DAY1.isoformat()  # where the day-1 pass left it
        assert present(f.tokens[DAY1], stored_text(f.path)) == list(f.tokens[DAY1].values())

        monkeypatch.undo()
        reopen(f)  # opening finishes it
        assert present(f.tokens[DAY1], stored_text(f.path)) == []
        assert present(f.tokens[DAY1], file_bytes(f.path)) == []
        assert present(f.tokens[DAY2], stored_text(f.path)) == list(f.tokens[DAY2].values())
        assert f.journal.get_meta(SCRUBBED_BEFORE) == DAY2.isoformat()


def test_a_crash_in_the_scrub_stores_nothing_and_the_next_day_scrubs(
    tmp_path: Path, nerima: OfficeConfig, nerima_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with floor(tmp_path, nerima, nerima_text, snapshot_every=10) as f:
        f.day(DAY1, 12)
        live = copy.deepcopy(comparable(f.journal.office.state))  # the new day clears the live dicts
        before = tables(f.path)
        calls = _fail_after_requests(monkeypatch, Crash())
        with pytest.raises(Crash):
            f.run(StartDay(), _at(DAY2, 8, 30))
        assert calls == [4]
        assert tables(f.path) == before  # nothing of the new day, nothing of the scrub
        assert comparable(f.journal.office.state) == live

        monkeypatch.undo()
        j = reopen(f)
        assert comparable(j.office.state) == live
        assert present(f.tokens[DAY1], stored_text(f.path)) == list(f.tokens[DAY1].values())  # still today's
        f.run(StartDay(), _at(DAY2, 8, 31))
        assert present(f.tokens[DAY1], stored_text(f.path)) == []
        assert present(f.tokens[DAY1], file_bytes(f.path)) == []


DIE_IN_THE_SCRUB = """
import os, sys
from datetime import datetime
from zoneinfo import ZoneInfo
import gateway.journal as gj
from office.model import StartDay
real = gj._scrub_requests
def die(conn, tokens):
    real(conn, tokens)
    os._exit(7)  # killed with the transaction open: no rollback, no close
gj._scrub_requests = die
j = gj.TicketJournal.open(sys.argv[1])
j.execute(StartDay(), datetime(2027, 3, 16, 8, 30, tzinfo=ZoneInfo("Asia/Tokyo")))
sys.exit(0)
"""


def test_a_process_killed_in_the_scrub_leaves_the_journal_as_before(
    tmp_path: Path, nerima: OfficeConfig, nerima_text: str
) -> None:
    with floor(tmp_path, nerima, nerima_text, snapshot_every=10) as f:
        f.day(DAY1, 12)
        live = comparable(f.journal.office.state)
    before = tables(f.path)
    died = subprocess.run(
        [sys.executable, "-c", DIE_IN_THE_SCRUB, str(f.path)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert died.returncode == 7, died.stderr
    assert tables(f.path) == before
    with TicketJournal.open(f.path, clock=f.wall) as j:
        assert comparable(j.office.state) == live
        f.wall.now = _at(DAY2, 8, 31)
        j.execute(StartDay(), f.wall.now)
    assert present(f.tokens[DAY1], stored_text(f.path)) == []
    assert present(f.tokens[DAY1], file_bytes(f.path)) == []


# -- once per day, and cheap ---------------------------------------------------------------------------
def _record_scrubs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The (since, before) of every pass over the events."""
    real = journal_module._scrub_events
    seen: list[tuple[str, str]] = []

    def recording(conn: sqlite3.Connection, since: str, before: str, keep: set[str]) -> Any:
        seen.append((since, before))
        return real(conn, since, before, keep)

    monkeypatch.setattr(journal_module, "_scrub_events", recording)
    return seen


def test_each_day_is_scrubbed_once_and_only_the_days_since_the_mark_are_read(
    tmp_path: Path, nerima: OfficeConfig, nerima_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with floor(tmp_path, nerima, nerima_text) as f:
        seen = _record_scrubs(monkeypatch)
        f.day(DAY1, 6)
        assert seen == [("", DAY1.isoformat())]  # the first day: nothing before it, the mark set
        f.run(StartDay(), _at(DAY2, 8, 30))
        f.day(DAY2, 6)
        assert seen[1:] == [(DAY1.isoformat(), DAY2.isoformat())]
        # The same day again, a reopening: nothing is read.
        assert f.run(StartDay(), _at(DAY2, 12, 0)).events == []
        reopen(f)
        f.issue("seal", _at(DAY2, 12, 1))
        assert seen[2:] == []
        # The next day reads day 2 only, not the days scrubbed before.
        f.run(StartDay(), _at(DAY3, 8, 30))
        assert seen[2:] == [(DAY2.isoformat(), DAY3.isoformat())]
        assert present(f.tokens[DAY2], stored_text(f.path)) == []
        assert f.journal.get_meta(SCRUBBED_BEFORE) == DAY3.isoformat()

        # Scrubbing again what is scrubbed (the mark lost) changes nothing.
        before = tables(f.path)
        f.journal.conn.execute("DELETE FROM meta WHERE key = ?", (SCRUBBED_BEFORE,))
        with f.journal._transaction():
            again = journal_module._scrub_private(f.journal.conn, DAY3.isoformat())
        assert again is not None and (again.events, again.snapshots, again.requests) == (0, 0, 0)
        assert tables(f.path) == before


def test_the_mark_is_the_journals_own(tmp_path: Path, nerima: OfficeConfig, nerima_text: str) -> None:
    with floor(tmp_path, nerima, nerima_text) as f, pytest.raises(journal_module.JournalError):
        f.journal.set_meta(SCRUBBED_BEFORE, "2099-01-01")


# -- a journal of the version that kept tokens ------------------------------------------------------------
def test_an_older_journal_is_scrubbed_once_at_opening_in_steps(
    tmp_path: Path, nerima: OfficeConfig, nerima_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal written before tokens were scrubbed (no mark, every day's tokens): opening
    scrubs every day but the newest, SCRUB_DAYS_PER_TRANSACTION days per transaction."""
    real_connect = journal_module._connect

    def connect_as_before(path: Path, synchronous: str, read_only: bool = False) -> sqlite3.Connection:
        conn = real_connect(path, synchronous, read_only)
        conn.execute("PRAGMA secure_delete=OFF")  # SQLite's default: what is freed is left as it was
        return conn

    with monkeypatch.context() as old_version:
        old_version.setattr(TicketJournal, "_scrub_for_new_day", lambda self, day: None)
        old_version.setattr(TicketJournal, "_scrub_backlog", lambda self: None)
        old_version.setattr(journal_module, "_connect", connect_as_before)
        with floor(tmp_path, nerima, nerima_text, snapshot_every=10) as f:
            for day in (DAY1, DAY2, DAY3):
                f.day(day, 6)
            live = comparable(f.journal.office.state)
    every = {t: v for d in (DAY1, DAY2, DAY3) for t, v in f.tokens[d].items()}
    assert SCRUBBED_BEFORE not in dict(rows(f.path, "SELECT key, value FROM meta"))
    assert present(every, stored_text(f.path)) == list(every.values())

    monkeypatch.setattr(journal_module, "SCRUB_DAYS_PER_TRANSACTION", 1)
    seen = _record_scrubs(monkeypatch)
    with TicketJournal.open(f.path, clock=f.wall) as j:
        assert comparable(j.office.state) == live
        assert seen == [("", DAY2.isoformat()), (DAY2.isoformat(), DAY3.isoformat())]
        assert j.get_meta(SCRUBBED_BEFORE) == DAY3.isoformat()
    text = stored_text(f.path)
    for day in (DAY1, DAY2):
        assert present(f.tokens[day], text) == []
    assert present(f.tokens[DAY3], text) == list(f.tokens[DAY3].values())  # the newest day: still today's
    # The rows are clean. What the old version freed without zeroing it may linger in the unused
    # space of a few pages; a VACUUM once (docs/operations.md) clears it.
    with contextlib.closing(sqlite3.connect(f.path)) as conn:
        conn.execute("VACUUM")
    raw = file_bytes(f.path)
    assert present(f.tokens[DAY1], raw) == present(f.tokens[DAY2], raw) == []
    assert present(f.tokens[DAY3], raw) == list(f.tokens[DAY3].values())


def test_the_writer_zeroes_what_it_frees(tmp_path: Path, nerima: OfficeConfig, nerima_text: str) -> None:
    with floor(tmp_path, nerima, nerima_text) as f:
        assert f.journal.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
