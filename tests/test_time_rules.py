"""A wrong time never costs the office its day: a command's "at" is held to the gateway's clock,
the retention purge counts from the wall clock and refuses a leap, and a jump of the wall clock
is recorded and handled by rule (issue: "a command's time can destroy the day")."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from gateway import control
from gateway.clock_watch import STEP_TOLERANCE_S, ClockWatch
from gateway.journal import PURGE_STEP_MAX_DAYS, JournalError, JournalReader, TicketJournal, new_token
from office import events as ev
from office.calendar import AT_TOLERANCE, at_problem
from office.config import OfficeConfig, parse_config
from office.model import CallNext, IssueTicket, OpenCounter
from tests.conftest import EXAMPLES, tokyo
from tests.conftest import run_cli as cli
from tests.floor_support import FakeClock
from tests.test_gateway_modes import Wall, _gateway

NERIMA_TEXT = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
MONDAY_10 = tokyo(2027, 3, 15, 10, 0)


def with_retention(days: int) -> tuple[OfficeConfig, str]:
    text = NERIMA_TEXT.replace("retention_days = 400", f"retention_days = {days}")
    return parse_config(text, source="nerima.toml"), text


def a_day(journal: TicketJournal, wall: Wall, day: datetime, tickets: int = 3) -> None:
    """A few tickets on `day` (from 09:00), the wall clock with them."""
    for i in range(tickets):
        wall.at = day.replace(hour=9, minute=i)
        journal.execute(IssueTicket("certificate", new_token()), wall.at)


def exported(path: Path) -> list[dict[str, object]]:
    with JournalReader(path) as r:
        return [ev.public_record(e, r.office_id) for e in r.events()]


# -- the rule for "at" ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("at", "problem"),
    [
        (MONDAY_10, None),
        (MONDAY_10 + AT_TOLERANCE, None),
        (MONDAY_10 - AT_TOLERANCE, None),
        (MONDAY_10 + AT_TOLERANCE + timedelta(seconds=1), "ahead of the gateway's clock"),
        (MONDAY_10 - AT_TOLERANCE - timedelta(seconds=1), "behind the gateway's clock"),
        (tokyo(2030, 1, 7, 10, 0), "not today"),
        (tokyo(2027, 3, 14, 10, 0), "not today"),
    ],
)
def test_an_at_must_be_near_the_clock_on_its_business_day(at: datetime, problem: str | None) -> None:
    found = at_problem(at, MONDAY_10, MONDAY_10.tzinfo)  # type: ignore[arg-type]
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_an_at_within_the_tolerance_but_across_midnight_is_refused(nerima: OfficeConfig) -> None:
    wall = tokyo(2027, 3, 15, 23, 59, 30)
    assert "not today" in str(at_problem(wall + timedelta(seconds=45), wall, nerima.tz))


def test_the_reproduction_a_future_at_cannot_open_a_fake_day_on_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: `{"cmd":"issue","service":"move","at":"2030-01-07T10:00"}` opened 2030-01-07,
    the retention purge deleted the real day, and every later command was stamped 2030."""
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")
    clock, wall = FakeClock(), Wall(MONDAY_10)
    gw = _gateway(tmp_path, wall, clock)
    try:
        for i in range(5):
            assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
            wall.at += timedelta(seconds=30 + i)
        before = exported(gw.journal_file)
        for at in ("2030-01-07T10:00", "2027-03-14T10:00", "2027-03-15T10:30", "2027-03-15T09:00+09:00"):
            reply = gw.handle({"cmd": "issue", "service": "move", "at": at})
            assert (reply["ok"], reply["kind"]) == (False, control.KIND_USAGE), reply
            assert "gateway's clock" in reply["error"]
        assert exported(gw.journal_file) == before
        reply = gw.handle({"cmd": "issue", "service": "move"})  # and the next command is today's, now
        assert reply["ok"] and reply["events"][0]["ts"].startswith("2027-03-15T10:0")
        near = gw.handle({"cmd": "issue", "service": "move", "at": (wall.at + timedelta(seconds=90)).isoformat()})
        assert near["ok"]  # within the tolerance
    finally:
        gw.close()


def test_the_reproduction_on_the_journal_directly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "j.db"
    assert cli(capsys, "office", "init", "--config", str(EXAMPLES / "oizumi.toml"), "--journal", str(path))[0] == 0
    code, _, err = cli(
        capsys, "office", "issue", "--journal", str(path), "--service", "move", "--at", "2030-01-07T10:00"
    )
    assert code == 2 and "not today" in err and "--offline" not in err
    assert exported(path) == []
    # Built offline on purpose (tests, training), any moment is taken.
    argv = ("office", "issue", "--journal", str(path), "--service", "move", "--offline", "--at", "2030-01-07T10:00")
    assert cli(capsys, *argv)[0] == 0
    assert [r["type"] for r in exported(path)] == ["schedule", "ticket_issued"]


# -- retention -----------------------------------------------------------------------------------------
def test_retention_counts_from_the_wall_clock_not_from_a_day_far_ahead(tmp_path: Path) -> None:
    config, text = with_retention(2)
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(tmp_path / "j", config, text, clock=wall) as j:
        for d in (15, 16, 17):
            a_day(j, wall, tokyo(2027, 3, d))
        wall.at = tokyo(2027, 3, 17, 12, 0)
        # A day years ahead stored (offline, or a bug) while the wall clock says the 17th.
        j.execute(IssueTicket("certificate", new_token()), tokyo(2030, 1, 7, 10, 0))
        with j.reader() as r:
            assert r.days() == ["2027-03-15", "2027-03-16", "2027-03-17", "2030-01-07"]


def test_retention_never_deletes_today_or_yesterday(tmp_path: Path) -> None:
    config, text = with_retention(1)
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(tmp_path / "j", config, text, clock=wall) as j:
        for d in (15, 16):
            a_day(j, wall, tokyo(2027, 3, d))
        # The wall clock is back on the 16th, but a command stamped the 17th opens a new day:
        # neither the 16th (the wall's today) nor the 15th (its yesterday) may go.
        wall.at = tokyo(2027, 3, 16, 23, 0)
        j.execute(IssueTicket("certificate", new_token()), tokyo(2027, 3, 17, 9, 0))
        with j.reader() as r:
            assert r.days() == ["2027-03-15", "2027-03-16", "2027-03-17"]


def test_a_purge_that_leaps_is_refused_and_logged_then_normal_days_purge(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, text = with_retention(3)
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    path = tmp_path / "j"
    with TicketJournal.create(path, config, text, clock=wall) as j:
        for d in (15, 16, 17, 18, 19):
            a_day(j, wall, tokyo(2027, 3, d))
        with j.reader() as r:
            assert r.days()[0] == "2027-03-16"  # the ordinary purge: one day at a time
        before = exported(path)
        # The wall clock leaps years ahead (a bad RTC, NTP misconfigured): a new day opens, but
        # the purge would take every stored day at once.
        with caplog.at_level(logging.WARNING, logger="gateway.journal"):
            a_day(j, wall, tokyo(2030, 1, 7), tickets=1)
        assert "retention purge refused" in caplog.text and "is the clock right" in caplog.text
        assert exported(path)[: len(before)] == before
        # The next day the cutoff is still a leap from the last one: refused again, not eroded.
        a_day(j, wall, tokyo(2030, 1, 8), tickets=1)
        assert exported(path)[: len(before)] == before
        # The floor manager, having checked the clock, prunes on purpose; never yesterday.
        with pytest.raises(JournalError, match="yesterday's or today's"):
            j.prune_before(date(2030, 1, 8))
        assert j.prune_before(date(2030, 1, 7)) == len(before)
        with j.reader() as r:
            assert r.days() == ["2030-01-07", "2030-01-08"]


def test_a_holiday_closure_purges_as_usual(tmp_path: Path) -> None:
    """New Year: closed for days, then one purge removes the days the window passed."""
    config, text = with_retention(10)
    wall = Wall(tokyo(2027, 12, 1, 9, 0))
    with TicketJournal.create(tmp_path / "j", config, text, clock=wall) as j:
        for d in range(13, 29):
            a_day(j, wall, tokyo(2027, 12, d), tickets=1)
        a_day(j, wall, tokyo(2028, 1, 4), tickets=1)  # the window moves 7 days at once
        with j.reader() as r:
            assert r.days()[0] == "2027-12-25"
    assert PURGE_STEP_MAX_DAYS >= 9  # the longest closure a Japanese office has (New Year + weekends)


# -- the wall clock jumping under a running gateway ----------------------------------------------------
def test_the_clock_watch_reports_steps_not_drift() -> None:
    watch = ClockWatch()
    assert watch.check(MONDAY_10, 0.0) is None
    # A slewing clock: 0.5 s off over a minute of loop turns never adds up to a step.
    for i in range(1, 61):
        assert watch.check(MONDAY_10 + timedelta(seconds=i * 1.0083), float(i)) is None
    step = watch.check(MONDAY_10 + timedelta(hours=2), 61.0)
    assert step is not None and step.step_s == pytest.approx(7200 - 61 * 1.0083 + 0.5, abs=1.0)
    back = watch.check(MONDAY_10, 62.0)
    assert back is not None and back.step_s < -7000
    assert watch.check(MONDAY_10 + timedelta(seconds=STEP_TOLERANCE_S), 64.0) is None


def _types_since(path: Path, seq: int) -> list[dict[str, object]]:
    return [r for r in exported(path) if int(r["seq"]) > seq]  # type: ignore[call-overload]


def test_a_forward_step_mid_day_is_recorded_and_keeps_the_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")
    clock, wall = FakeClock(), Wall(tokyo(2027, 3, 15, 8, 40))
    gw = _gateway(tmp_path, wall, clock)
    try:
        gw.step()
        assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
        assert gw.journal is not None
        last = gw.journal.office.state.last_seq
        wall.at = tokyo(2027, 3, 15, 10, 5)  # NTP corrects a Pi that booted 85 minutes slow
        gw.step()
        (stepped,) = _types_since(gw.journal_file, last)
        assert stepped["type"] == "clock_stepped" and float(stepped["step_s"]) == pytest.approx(85 * 60, abs=1)  # type: ignore[arg-type]
        assert str(stepped["expected"]).startswith("2027-03-15T08:40")
        gw.step()  # recorded once, not at every turn
        assert gw.journal.office.state.last_seq == last + 1
        reply = gw.handle({"cmd": "issue", "service": "move"})
        assert [e["type"] for e in reply["events"]] == ["ticket_issued"]  # the same business day
        assert reply["events"][0]["ts"].startswith("2027-03-15T10:05")
    finally:
        gw.close()


def test_a_forward_step_across_midnight_opens_the_real_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Pi that booted with yesterday evening's time (fake-hwclock), corrected in the morning."""
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")
    clock, wall = FakeClock(), Wall(tokyo(2027, 3, 15, 17, 30))
    gw = _gateway(tmp_path, wall, clock)
    try:
        gw.step()
        assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
        wall.at = tokyo(2027, 3, 16, 8, 45)
        gw.step()
        assert gw.journal is not None and gw.journal.office.state.day == date(2027, 3, 16)
        types = [r["type"] for r in exported(gw.journal_file)]
        assert types[-2:] == ["schedule", "clock_stepped"]
    finally:
        gw.close()


def test_a_backward_step_is_recorded_and_held_as_today(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")
    clock, wall = FakeClock(), Wall(tokyo(2027, 3, 16, 9, 30))
    gw = _gateway(tmp_path, wall, clock)
    try:
        gw.step()
        first = gw.handle({"cmd": "issue", "service": "move"})
        assert first["ok"]
        wall.at = tokyo(2027, 3, 15, 16, 0)  # back to yesterday afternoon
        gw.step()
        reply = gw.handle({"cmd": "issue", "service": "move"})
        assert [e["type"] for e in reply["events"]] == ["ticket_issued"]
        assert reply["events"][0]["ts"] == first["events"][-1]["ts"]  # held at the last event's time
        assert gw.journal is not None and gw.journal.office.state.day == date(2027, 3, 16)
        stepped = [r for r in exported(gw.journal_file) if r["type"] == "clock_stepped"]
        assert len(stepped) == 1 and float(stepped[0]["step_s"]) < -17 * 3600  # type: ignore[arg-type]
    finally:
        gw.close()


# -- exactly once: request ids ---------------------------------------------------------------------------
def test_a_retried_request_id_gets_the_first_result_and_issues_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")
    clock, wall = FakeClock(), Wall(MONDAY_10)
    gw = _gateway(tmp_path, wall, clock)
    try:
        first = gw.handle({"cmd": "issue", "service": "move", "id": "r-1"})
        again = gw.handle({"cmd": "issue", "service": "move", "id": "r-1"})
        assert first["ok"] and again == {**first, "repeated": True}
        other = gw.handle({"cmd": "issue", "service": "move", "id": "r-2"})
        assert other["events"][-1]["ticket"] != first["events"][-1]["ticket"]
        assert [r["type"] for r in exported(gw.journal_file)].count("ticket_issued") == 2
        bad = gw.handle({"cmd": "issue", "service": "move", "id": "no spaces"})
        assert bad["kind"] == control.KIND_USAGE and "'id'" in bad["error"]
    finally:
        gw.close()
    # After a restart (the reply lost with the process), the id still answers the first result.
    gw = _gateway(tmp_path, wall, clock)
    try:
        assert gw.handle({"cmd": "issue", "service": "move", "id": "r-1"}) == {**first, "repeated": True}
    finally:
        gw.close()


def test_request_ids_are_kept_for_the_day_and_the_one_before(tmp_path: Path, nerima: OfficeConfig) -> None:
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(tmp_path / "j", nerima, NERIMA_TEXT, clock=wall) as j:
        j.execute(OpenCounter("1"), wall.at, request="ctl:a", result=lambda d: "first")
        with pytest.raises(Exception, match="carried out already") as caught:
            j.execute(CallNext("1"), wall.at, request="ctl:a")
        assert getattr(caught.value, "result", None) == "first"
        for d, rid in ((16, "ctl:b"), (17, "ctl:c")):
            wall.at = tokyo(2027, 3, d, 9, 0)
            j.execute(IssueTicket("certificate", new_token()), wall.at, request=rid)
        assert (j.recorded("ctl:a"), j.recorded("ctl:b"), j.recorded("ctl:c")) == (None, "", "")


def test_a_refused_command_stores_no_id_and_may_be_retried(tmp_path: Path, nerima: OfficeConfig) -> None:
    wall = Wall(tokyo(2027, 3, 21, 10, 0))  # a Sunday: closed
    with TicketJournal.create(tmp_path / "j", nerima, NERIMA_TEXT, clock=wall) as j:
        decision = j.execute(IssueTicket("certificate", new_token()), wall.at, request="ctl:x")
        assert decision.events == [] and j.recorded("ctl:x") is None


def test_the_cli_retries_a_lost_reply_with_the_same_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first attempt's reply is lost (the connection drops after the request was read); the
    second carries the same id."""
    from counterfloor import cli as cli_module

    seen: list[dict[str, object]] = []

    def flaky_ask(path: Path, request: dict[str, object], timeout: float = 30.0) -> dict[str, object]:
        seen.append(dict(request))
        if len(seen) == 1:
            raise ConnectionError("the gateway closed the connection without answering")
        return {"ok": True, "output": "A-001 …\n", "refused": None, "repeated": True}

    monkeypatch.setattr(control, "ask", flaky_ask)
    monkeypatch.setattr(cli_module, "_gateway_socket", lambda args: tmp_path / "s")
    args = cli_module.build_parser().parse_args(
        ["office", "issue", "--journal", str(tmp_path / "j"), "--service", "move"]
    )
    out: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            out.append(text)

    assert args.func(args, Out()) == 0
    assert len(seen) == 2 and seen[0] == seen[1] and isinstance(seen[0]["id"], str)
    assert out == ["A-001 …\n"]


def test_the_cli_finishes_a_request_on_the_journal_when_the_gateway_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gateway stored the request and died before answering; the CLI, finding no gateway on
    its retry, opens the journal with the same id and gets the first result, not a second ticket."""

    path = tmp_path / "j.db"
    wall = Wall(datetime.now().astimezone())
    cfg_text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    cfg = parse_config(cfg_text, source="oizumi.toml")
    # Whether or not the office is open at this moment: a counter opens at any time.
    with TicketJournal.create(path, cfg, cfg_text, clock=wall) as j:
        j.execute(
            OpenCounter("1"), wall.at, request="ctl:fixed", result=lambda d: json.dumps(control.done_reply(d, cfg))
        )
    calls = iter([ConnectionError("lost"), control.GatewayAbsent("gone")])

    def ask(path: Path, request: dict[str, object], timeout: float = 30.0) -> dict[str, object]:
        raise next(calls)

    monkeypatch.setattr(control, "ask", ask)
    monkeypatch.setattr(control, "new_request_id", lambda: "fixed")
    code, out, err = cli(capsys, "office", "open", "--journal", str(path), "--counter", "1")
    assert (code, out, err) == (0, "counter 1 open, calling move > seal\n", "")
    assert [r["type"] for r in exported(path)].count("counter_opened") == 1


def test_a_v2_journal_gains_the_request_ids_and_keeps_its_events(tmp_path: Path, nerima: OfficeConfig) -> None:
    import sqlite3

    path = tmp_path / "j"
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(path, nerima, NERIMA_TEXT, clock=wall) as j:
        a_day(j, wall, tokyo(2027, 3, 15))
    with sqlite3.connect(path) as conn:  # as a v2 journal was: no requests table (nor config history)
        conn.execute("DROP TABLE requests")
        conn.execute("DROP TABLE config_history")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    with pytest.raises(JournalError, match="open it once for writing to migrate"):
        JournalReader(path)
    with TicketJournal.open(path, clock=wall) as j:
        before = j.office.state.last_seq
        j.execute(IssueTicket("certificate", new_token()), wall.at, request="ctl:after-migration")
        assert j.recorded("ctl:after-migration") == ""
    assert [int(r["seq"]) for r in exported(path)] == list(range(1, before + 2))  # type: ignore[call-overload]
