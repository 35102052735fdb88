"""A remote mode override is journaled: the calendar applies it to that date, it survives a
restart and the days before it, and it reaches the dispensers and boards (issue 13, "Switch mode
/ override today's schedule")."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from gateway.journal import JournalReader, TicketJournal, new_token
from hal.codec import P
from office import events as ev
from office.calendar import ModeOverride
from office.config import Hours, OfficeConfig, Text
from office.model import ClearModeOverride, IssueRefused, IssueTicket, OfficeError, OverrideMode, TicketReady
from tests.conftest import EXAMPLES, tokyo
from tests.floor_support import FakeClock
from tests.journal_support import comparable, replay_last_day
from tests.test_gateway_modes import Wall, _gateway

NERIMA_TEXT = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
FLOOD = Text("臨時休業（浸水）", "Closed today (flooding)")


def issue(j: TicketJournal, at: object) -> TicketReady | IssueRefused:
    decision = j.execute(IssueTicket("certificate", new_token()), at)  # type: ignore[arg-type]
    effect = decision.effects[0]
    assert isinstance(effect, TicketReady | IssueRefused)
    return effect


def test_a_day_ahead_closed_on_monday_is_closed_on_wednesday_across_a_restart(
    tmp_path: Path, nerima: OfficeConfig
) -> None:
    path = tmp_path / "j"
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(path, nerima, NERIMA_TEXT, clock=wall) as j:
        assert isinstance(issue(j, wall.at), TicketReady)
        j.execute(OverrideMode(ModeOverride(date(2027, 3, 17), closed=True, reason=FLOOD)), wall.at)
        wall.at = tokyo(2027, 3, 16, 9, 0)
        assert isinstance(issue(j, wall.at), TicketReady)  # Tuesday as usual
        tuesday = comparable(j.office.state)
    # A restart on Tuesday replays Tuesday only: its schedule carried Wednesday's override.
    assert comparable(replay_last_day(path)) == tuesday
    with TicketJournal.open(path, clock=wall) as j:
        assert comparable(j.office.state) == tuesday
        wall.at = tokyo(2027, 3, 17, 10, 0)
        refused = issue(j, wall.at)
        assert isinstance(refused, IssueRefused) and refused.reason == "closed_today"
        assert "flooding" in refused.message
    with JournalReader(path) as r:
        schedules = [e for e in r.events() if isinstance(e, ev.Schedule)]
    assert [s.date for s in schedules] == ["2027-03-15", "2027-03-16"]  # a refusal stores nothing
    assert schedules[1].overrides and schedules[1].overrides[0]["date"] == "2027-03-17"


def test_today_overridden_to_an_evening_changes_the_plan_now_and_can_be_cleared(
    tmp_path: Path, nerima: OfficeConfig
) -> None:
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(tmp_path / "j", nerima, NERIMA_TEXT, clock=wall) as j:
        issue(j, wall.at)
        closes_before = j.office.state.schedule.closes  # type: ignore[union-attr]
        override = ModeOverride(date(2027, 3, 15), closed=False, mode="office", hours=Hours(time(8, 30), time(12, 0)))
        decision = j.execute(OverrideMode(override), wall.at)
        assert [e.TYPE for e in decision.events] == ["mode_overridden", "schedule"]
        schedule = decision.events[1]
        assert isinstance(schedule, ev.Schedule) and not schedule.new_day and schedule.closes == "12:00"
        assert closes_before != "12:00"
        wall.at = tokyo(2027, 3, 15, 12, 30)  # reception is over by the override
        refused = issue(j, wall.at)
        assert isinstance(refused, IssueRefused) and refused.reason == "not_offered_now"
        cleared = j.execute(ClearModeOverride(date(2027, 3, 15)), wall.at)
        assert [e.TYPE for e in cleared.events] == ["mode_override_cleared", "schedule"]
        assert isinstance(issue(j, wall.at), TicketReady)  # the calendar's hours again
        assert j.office.state.overrides == {}


def test_an_override_that_cannot_be_is_refused_and_stores_nothing(tmp_path: Path, nerima: OfficeConfig) -> None:
    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(tmp_path / "j", nerima, NERIMA_TEXT, clock=wall) as j:
        issue(j, wall.at)
        seq = j.office.state.last_seq
        with pytest.raises(OfficeError, match="past"):
            j.execute(OverrideMode(ModeOverride(date(2027, 3, 14), closed=True)), wall.at)
        with pytest.raises(OfficeError, match="no override"):
            j.execute(ClearModeOverride(date(2027, 3, 16)), wall.at)
        assert j.office.state.last_seq == seq


def test_the_estimate_follows_todays_override(tmp_path: Path, nerima: OfficeConfig) -> None:
    """A weekday run as a Saturday has the Saturday's counters: the estimate changes with the
    override, and back when it is cleared (the estimator's tables are not kept stale)."""
    wall = Wall(tokyo(2027, 3, 15, 9, 30))
    with TicketJournal.create(tmp_path / "j", nerima, NERIMA_TEXT, clock=wall) as j:
        issue(j, wall.at)
        estimator, state = j.office.estimator, j.office.state
        before = estimator.wait_minutes("certificate", 20, wall.at, state)
        saturday = ModeOverride(date(2027, 3, 15), closed=False, mode="saturday")
        j.execute(OverrideMode(saturday), wall.at)
        during = estimator.wait_minutes("certificate", 20, wall.at, state)
        j.execute(ClearModeOverride(date(2027, 3, 15)), wall.at)
        assert during != before
        assert estimator.wait_minutes("certificate", 20, wall.at, state) == before


def test_the_gateway_takes_an_override_and_its_dispensers_follow_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")
    clock, wall = FakeClock(), Wall(tokyo(2027, 3, 15, 10, 0))
    gw = _gateway(tmp_path, wall, clock)
    try:
        gw.step()
        links = [link for bus in gw.buses for link in bus.master.links]
        reply = gw.handle(
            {"cmd": "set-mode", "date": "2027-03-15", "closed": True, "reason": {"ja": FLOOD.ja, "en": FLOOD.en}}
        )
        assert reply["ok"], reply
        assert "closed (Closed today (flooding))" in reply["output"]
        assert [e["type"] for e in reply["events"]][-2:] == ["mode_overridden", "schedule"]
        # Within the same turn, not at the next minute's refresh: the dispensers offer nothing.
        dispensers = [link for link in links if link.spec.kind == P.KIND_DISPENSER]
        assert dispensers and all(link._offered == frozenset() for link in dispensers)
        bad = gw.handle({"cmd": "set-mode", "date": "2027-03-15", "mode": "sunday"})
        assert not bad["ok"] and "set-mode" in bad["error"]
        assert gw.handle({"cmd": "clear-mode", "date": "2027-03-15"})["ok"]
        assert all(link._offered for link in dispensers)
    finally:
        gw.close()


def test_the_ticket_says_when_reception_ends_by_the_override(tmp_path: Path, nerima: OfficeConfig) -> None:
    from signage.ticket import ticket_content

    wall = Wall(tokyo(2027, 3, 15, 9, 0))
    with TicketJournal.create(tmp_path / "j", nerima, NERIMA_TEXT, clock=wall) as j:
        usual = issue(j, wall.at)
        assert isinstance(usual, TicketReady) and usual.closes is not None and usual.closes > time(12, 0)
        noon = ModeOverride(date(2027, 3, 15), closed=False, mode="office", hours=Hours(time(8, 30), time(12, 0)))
        j.execute(OverrideMode(noon), wall.at)
        ready = issue(j, wall.at)
        assert isinstance(ready, TicketReady) and ready.closes == time(12, 0)
        assert "12:00" in ticket_content(nerima, ready).hours_left.en


def test_the_cli_sets_and_clears_an_override_on_the_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    j = ["--journal", str(tmp_path / "j.db")]
    assert run_cli(capsys, "office", "init", "--config", str(EXAMPLES / "nerima.toml"), *j)[0] == 0
    at = ["--offline", "--at", "2027-03-15T09:00"]
    code, out, err = run_cli(
        capsys,
        "office",
        "set-mode",
        *j,
        *at,
        "--date",
        "2027-03-16",
        "--closed",
        "--reason-ja",
        "臨時休業",
        "--reason-en",
        "Closed today",
    )
    assert (code, out, err) == (0, "2027-03-16: closed (Closed today) (overrides the calendar)\n", "")
    code, _, err = run_cli(
        capsys, "office", "set-mode", *j, *at, "--date", "2027-03-16", "--mode", "office", "--from", "09:00"
    )
    assert code == 2 and "both --from and --to" in err
    code, out, _ = run_cli(capsys, "office", "clear-mode", *j, *at, "--date", "2027-03-16")
    assert (code, out) == (0, "2027-03-16: the calendar's plan again\n")
    code, _, err = run_cli(capsys, "office", "clear-mode", *j, *at, "--date", "2027-03-16")
    assert code == 1 and "has no override" in err
