"""The demo: the seeded office-day simulation (run pure, without pacing) and its terminal shell."""

from __future__ import annotations

import argparse
import itertools
import re
import tempfile
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from counterfloor import demo
from counterfloor.floor_view import DaySummary
from counterfloor.simulate import DaySimulation, SimulationError, simulate_day
from gateway.journal import JournalReader, TicketJournal, new_token
from office import events as ev
from office.calendar import counter_shifts, plan_for
from office.config import OfficeConfig, parse_config
from office.model import Command, Decision, Office
from office.state import CounterStatus, OfficeState, TicketStatus

from .conftest import EXAMPLES

ORDINARY = date(2027, 6, 15)  # a Tuesday with no holiday
RUSH = date(2027, 3, 16)  # a Tuesday in the moving season
OIZUMI_RUSH_SATURDAY = date(2027, 4, 3)  # a temporary Saturday opening in oizumi.toml


class Recorded:
    """A pure simulation whose every stored event is kept, to check it against the summary."""

    def __init__(self, config: OfficeConfig, day: date, *, seed: int = 1, rush: bool = False) -> None:
        self.office = Office(config)
        self.events: list[ev.Event] = []
        self.sim = DaySimulation(config, day, seed=seed, rush=rush, office=self.office, execute=self._execute)

    def _execute(self, command: Command, now: datetime) -> Decision:
        decision = self.office.execute(command, now)
        self.events.extend(decision.events)
        return decision

    def run(self) -> DaySummary:
        return self.sim.run()


@pytest.fixture(scope="module")
def nerima_day(nerima: OfficeConfig) -> tuple[Recorded, DaySummary]:
    rec = Recorded(nerima, ORDINARY)
    return rec, rec.run()


@pytest.fixture(scope="module")
def nerima_rush(nerima: OfficeConfig) -> tuple[Recorded, DaySummary]:
    rec = Recorded(nerima, RUSH, rush=True)
    return rec, rec.run()


def _days(request: pytest.FixtureRequest) -> list[tuple[Recorded, DaySummary]]:
    return [request.getfixturevalue("nerima_day"), request.getfixturevalue("nerima_rush")]


# -- determinism ----------------------------------------------------------------------------------
def test_same_seed_same_day_and_another_seed_another(
    nerima: OfficeConfig, nerima_day: tuple[Recorded, DaySummary]
) -> None:
    _, first = nerima_day
    assert simulate_day(nerima, ORDINARY, seed=1) == first
    other = simulate_day(nerima, ORDINARY, seed=2)
    assert other != first
    assert (other.issued, other.served, other.mean_wait_minutes) != (
        first.issued,
        first.served,
        first.mean_wait_minutes,
    )


def test_a_journal_run_gives_the_pure_run_and_replays_to_its_state(oizumi: OfficeConfig, tmp_path: Path) -> None:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    with TicketJournal.create(tmp_path / "j.sqlite", oizumi, text) as journal:
        sim = DaySimulation(
            oizumi, ORDINARY, seed=5, office=journal.office, execute=journal.execute, make_token=new_token
        )
        summary = sim.run()
        live = journal.office.state
        with JournalReader(tmp_path / "j.sqlite") as reader:
            replayed = OfficeState()
            for event in reader.events():
                replayed.apply(event)
    # Real tokens and a real file change nothing about the day.
    assert summary == simulate_day(oizumi, ORDINARY, seed=5)
    assert replayed.last_seq == live.last_seq
    assert {t.id: t.status for t in replayed.tickets.values()} == {t.id: t.status for t in live.tickets.values()}
    assert sum(t.status is TicketStatus.SERVED for t in replayed.tickets.values()) == summary.served


# -- accounting -----------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["nerima_day", "nerima_rush"])
def test_every_ticket_is_accounted_for(which: str, request: pytest.FixtureRequest) -> None:
    rec, summary = request.getfixturevalue(which)
    state = rec.office.state
    statuses = Counter(t.status for t in state.tickets.values())
    # The day is over: nobody is still at a counter or on hold, every counter is closed.
    assert set(statuses) <= {TicketStatus.SERVED, TicketStatus.NO_SHOW, TicketStatus.WAITING}
    assert all(c.status is CounterStatus.CLOSED for c in state.counters.values())
    assert summary.issued == len(state.tickets) == sum(isinstance(e, ev.TicketIssued) for e in rec.events)
    assert summary.served == statuses[TicketStatus.SERVED]
    assert summary.no_show == statuses[TicketStatus.NO_SHOW]
    assert summary.left_at_close == statuses[TicketStatus.WAITING]
    assert summary.issued == summary.served + summary.no_show + summary.left_at_close
    for row in summary.services:
        assert row.issued == row.served + row.no_show + row.left_at_close
    assert sum(r.issued for r in summary.services) == summary.issued
    assert summary.residents == summary.issued + summary.refused_total + summary.walked_away
    assert summary.residents == len(rec.sim.arrivals)
    assert summary.gave_up <= summary.no_show
    assert summary.served == sum(n for _, n in summary.served_by_counter)


@pytest.mark.parametrize("which", ["nerima_day", "nerima_rush"])
def test_waits_are_non_negative_and_first_come_first_served(which: str, request: pytest.FixtureRequest) -> None:
    rec, summary = request.getfixturevalue(which)
    issued: dict[str, ev.TicketIssued] = {}
    first_call: dict[str, ev.Called] = {}
    for e in rec.events:
        if isinstance(e, ev.TicketIssued):
            issued[e.ticket] = e
        elif isinstance(e, ev.Called):
            first_call.setdefault(e.ticket, e)
    by_service: dict[str, list[ev.TicketIssued]] = {}
    for e in issued.values():
        by_service.setdefault(e.service, []).append(e)
    for row in summary.services:
        tickets = sorted(by_service.get(row.id, []), key=lambda e: e.seq)
        called = [first_call[e.ticket] for e in tickets if e.ticket in first_call]
        # Within the service they were issued for, tickets are first called in issue order, and
        # no ticket is still uncalled while a later one of its service was called.
        assert [c.seq for c in called] == sorted(c.seq for c in called)
        assert all(e.ticket in first_call for e in tickets[: len(called)])
        waits = [(first_call[e.ticket].ts - e.ts).total_seconds() / 60 for e in tickets if e.ticket in first_call]
        assert all(w >= 0 for w in waits)
        if waits:
            assert row.mean_wait_minutes == pytest.approx(sum(waits) / len(waits))
        longest = _longest_waits(rec.events, summary.ended_at)
        assert row.max_wait_minutes == pytest.approx(max((longest[e.ticket] for e in tickets), default=None))


def _longest_waits(events: list[ev.Event], end: datetime) -> dict[str, float]:
    """Each ticket's longest wait in minutes, as docs/events.md defines a wait: from its issue (or a
    no-show that put it back in the queue) to its next call; one still running at `end` ends there."""
    since: dict[str, datetime] = {}
    longest: dict[str, float] = {}

    def ended(ticket: str, at: datetime) -> None:
        if ticket in since:
            longest[ticket] = max(longest[ticket], (at - since.pop(ticket)).total_seconds() / 60)

    for e in events:
        if isinstance(e, ev.TicketIssued):
            since[e.ticket], longest[e.ticket] = e.ts, 0.0
        elif isinstance(e, ev.Called):
            ended(e.ticket, e.ts)
        elif isinstance(e, ev.NoShow) and e.requeued:
            since[e.ticket] = e.ts
    for ticket in list(since):
        ended(ticket, end)
    return longest


@pytest.mark.parametrize("which", ["nerima_day", "nerima_rush"])
def test_the_live_longest_wait_never_exceeds_the_summarys_max_wait(which: str, request: pytest.FixtureRequest) -> None:
    """One definition of a wait: what the live view showed as a service's longest wait, at any
    moment, is never more than the summary's max wait of that service."""
    rec, summary = request.getfixturevalue(which)
    config, day = rec.sim.config, rec.sim.day
    replay = DaySimulation(config, day, seed=rec.sim.seed, rush=rec.sim.rush)
    peak: dict[str, float] = {}
    while not replay.done:
        replay.run_until(replay.now_moment + timedelta(minutes=5))
        for s in replay.view().services:
            if s.longest_wait_minutes is not None:
                peak[s.id] = max(peak.get(s.id, 0.0), s.longest_wait_minutes)
    assert peak and summary.max_wait_minutes is not None
    assert max(peak.values()) <= summary.max_wait_minutes + 1e-9
    maxima = {row.id: row.max_wait_minutes for row in summary.services}
    for service, shown in peak.items():
        assert maxima[service] is not None and shown <= maxima[service] + 1e-9


def test_the_rush_is_busier_and_waits_longer(
    nerima_day: tuple[Recorded, DaySummary], nerima_rush: tuple[Recorded, DaySummary], oizumi: OfficeConfig
) -> None:
    _, normal = nerima_day
    _, rush = nerima_rush
    assert rush.residents > 1.8 * normal.residents
    assert rush.issued > 1.2 * normal.issued
    assert rush.mean_wait_minutes is not None and normal.mean_wait_minutes is not None
    assert rush.mean_wait_minutes > 60 > normal.mean_wait_minutes
    small = simulate_day(oizumi, ORDINARY)
    small_rush = simulate_day(oizumi, ORDINARY, rush=True)
    assert small_rush.residents > 1.8 * small.residents
    assert small.issued < normal.issued / 2


def test_volumes_are_those_of_a_ward_office(
    nerima_day: tuple[Recorded, DaySummary], nerima_rush: tuple[Recorded, DaySummary]
) -> None:
    _, normal = nerima_day
    _, rush = nerima_rush
    assert 500 <= normal.issued <= 900
    assert 1500 <= rush.residents <= 3000


def test_arrivals_dip_at_lunch(nerima: OfficeConfig) -> None:
    for seed in (1, 2, 3):
        sim = DaySimulation(nerima, ORDINARY, seed=seed)
        per_hour = Counter(a.at // 3600 for a in sim.arrivals)
        assert per_hour[12] < 0.8 * min(per_hour[10], per_hour[14]), per_hour
        # The evening window is quieter than the day, but not empty.
        assert 0 < per_hour[18] < per_hour[14]


def test_opening_crowd_takes_tickets_in_the_first_minutes(nerima: OfficeConfig) -> None:
    sim = DaySimulation(nerima, ORDINARY, seed=1)
    opens = 8 * 3600 + 30 * 60
    assert min(a.at for a in sim.arrivals) >= opens
    first_5 = sum(opens <= a.at < opens + 300 for a in sim.arrivals)
    later_5 = sum(opens + 3600 <= a.at < opens + 3900 for a in sim.arrivals)
    assert first_5 > 2 * later_5


# -- the floor during the day -----------------------------------------------------------------------
def test_counters_keep_their_shifts_and_idle_ones_have_nobody_waiting(nerima: OfficeConfig) -> None:
    sim = DaySimulation(nerima, RUSH, seed=3, rush=True)
    plan = plan_for(nerima, RUSH)
    shifts = {c.id: counter_shifts(nerima, plan, c.id) for c in nerima.counters}
    closes = plan.closes
    assert closes is not None
    moment = sim.start_moment
    lunches: set[str] = set()
    while not sim.done:
        moment += timedelta(minutes=7)
        sim.run_until(moment)
        view = sim.view()
        t = view.now.time()
        queues = {s.id: s.waiting for s in view.services}
        for c in view.counters:
            # An open-ended shift lasts while reception is open, then until its queues are empty.
            on_shift = any(a <= t < (b or closes) for a, b in shifts[c.id])
            later = any(a > t for a, _ in shifts[c.id])
            if on_shift:
                assert c.status == "open", (t, c)
            if c.activity == "idle":
                assert not any(queues[s] for s in sim.office.state.counters[c.id].services), (t, c)
            if c.activity == "lunch":
                assert c.status == "paused" and not on_shift and later, (t, c)
                lunches.add(c.id)
    # Every counter with a break between two shifts takes it.
    assert lunches == {cid for cid, s in shifts.items() if len(s) >= 2 and s[0][1] != s[1][0]}


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), offset=st.integers(0, 364), rush=st.booleans())
def test_any_seed_and_open_day_ends_with_everyone_accounted_for(
    oizumi: OfficeConfig, seed: int, offset: int, rush: bool
) -> None:
    day = demo.next_open_day(oizumi, date(2027, 1, 1) + timedelta(days=offset))
    summary = simulate_day(oizumi, day, seed=seed, rush=rush)
    assert summary.issued == summary.served + summary.no_show + summary.left_at_close
    assert summary.left_at_close == 0  # someone stays on while a queue has tickets in it
    assert summary.ended_at.date() == day
    assert summary.max_wait_minutes is None or summary.max_wait_minutes >= 0


UNSTAFFED = """
[office]
id = "tiny"
name = { ja = "小さな窓口", en = "Tiny Office" }
timezone = "Asia/Tokyo"
public_base_url = "https://queue.example.jp/tiny"

[hours]
weekday = { from = "09:00", to = "12:00" }

[[services]]
id = "certificate"
prefix = "C"
name = { ja = "証明書", en = "Certificates" }
typical_minutes = 4

[[services]]
id = "tax"
prefix = "T"
name = { ja = "税", en = "Taxes" }
typical_minutes = 5

[[counters]]
id = "1"
name = { ja = "1番", en = "Counter 1" }
services = ["certificate"]
shifts = [{ from = "09:00", to = "12:00" }]
"""


def test_a_service_no_counter_calls_is_refused_at_the_dispenser() -> None:
    """No counter ever calls 'tax': the cut-off refuses its tickets instead of leaving residents
    waiting for a call that cannot come."""
    config = parse_config(UNSTAFFED)
    summary = simulate_day(config, ORDINARY, seed=4)
    tax = next(r for r in summary.services if r.id == "tax")
    assert tax.issued == 0
    assert dict(summary.refused).get("cut_off", 0) > 0
    assert summary.left_at_close == 0
    assert summary.issued == summary.served + summary.no_show + summary.left_at_close
    assert summary.ended_at.time() < time(13, 0)


def test_a_closed_day_cannot_be_simulated(nerima: OfficeConfig) -> None:
    with pytest.raises(SimulationError, match="closed"):
        DaySimulation(nerima, date(2027, 3, 22))


# -- the shell -------------------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(list(argv))


def _quiet(tmp_path: Path) -> tuple[str, ...]:
    """A free port for the pages and the pictures under tmp_path: tests never take 8080 or ./demo-out."""
    return ("--http-port", "0", "--out", str(tmp_path / "out"))


@pytest.mark.parametrize(("day", "extra"), [("2027-06-15", ()), ("2027-04-03", ("--rush",))])
def test_the_cli_plays_a_day_and_prints_a_summary(
    day: str, extra: tuple[str, ...], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = _args("--config", str(EXAMPLES / "oizumi.toml"), "--date", day, "--speed", "max", "--no-live",
                 "--journal", str(tmp_path), *_quiet(tmp_path), *extra)  # fmt: skip
    assert demo.run(args) == 0
    journal = tmp_path / "oizumi.sqlite"
    out = capsys.readouterr().out
    times = re.findall(r"^oizumi +(\d\d):(\d\d)  issued", out, flags=re.M)
    assert len(times) >= 16  # a line every 30 simulated minutes through the day
    stamps = [int(h) * 60 + int(m) for h, m in times]
    assert all(b - a == 30 for a, b in itertools.pairwise(stamps[:-1]))  # the last line: the day's end
    assert stamps[-1] >= stamps[-2]
    assert "Summary" in out and "Residents" in out
    issued = int(re.search(r"(\d+) tickets issued", out).group(1))  # type: ignore[union-attr]
    with JournalReader(journal) as reader:
        stored = list(reader.events())
    assert issued == sum(isinstance(e, ev.TicketIssued) for e in stored) > 0
    assert f"Journal: {len(stored)} events" in out
    for prefix in ("A move", "B seal", "C certificate"):
        assert prefix in out


def test_the_default_journal_is_removed_and_the_default_configs_found(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the example configs must be found from any directory
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # A Saturday: Nerima opens on Saturdays, Oizumi does not.
    assert demo.run(_args("--speed", "max", "--no-live", "--date", "2027-06-19", "--http-port", "0")) == 0
    out = capsys.readouterr().out
    assert "Nerima Ward Office, Sat 2027-06-19" in out
    assert "oizumi: Oizumi Ward Office — closed that day: its signage shows it" in out
    assert "Summary — Oizumi" not in out  # nobody came
    assert "temporary, removed" in out
    assert list(tmp_path.iterdir()) == [tmp_path / "demo-out"]  # the journals' folder is gone
    boards = sorted(p.name for p in (tmp_path / "demo-out" / "oizumi").iterdir())
    assert boards and all(name.startswith("board-") for name in boards)  # the closed office's signage


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--date", "2027-13-01"), "--date must be a date"),
        (("--date", "tomorrow"), "--date must be a date"),
        (("--speed", "0"), "--speed must be a number > 0"),
        (("--speed", "-3"), "--speed must be a number > 0"),
        (("--speed", "fast"), "--speed must be a number > 0"),
        (("--speed", "nan"), "--speed must be a number > 0"),
        (("--seed", "one"), "--seed must be a whole number"),
        (("--config", "/nonexistent/office.toml"), "--config: no such file"),
        (("--date", "2027-03-21"), "Nerima Ward Office and Oizumi Ward Office are closed that day"),  # a Sunday
        (
            ("--config", str(EXAMPLES / "nerima.toml"), "--date", "2027-03-22"),
            "Nerima Ward Office is closed that day (Closed for a system update); the next open day is 2027-03-23",
        ),
        # Once OverflowError tracebacks: the search for the next open day ran past 9999-12-31.
        (("--date", "9999-12-31"), "are closed that day (Year-end and New Year closure)"),
        (("--date", "9999-12-30"), "are closed that day (Year-end and New Year closure)"),
        (("--journal", "/nonexistent/dir"), "--journal: /nonexistent/dir: no such folder"),
        (("--journal", "/etc/hostname"), "--journal: /etc/hostname: is not a folder"),
        (("--out", "/etc/hostname"), "--out: /etc/hostname is not a folder"),
        (("--out", "/nonexistent/dir/out"), "--out: cannot create /nonexistent/dir/out: no such folder"),
        (("--http-port", "70000"), "--http-port must be a port number 0-65535"),
        (("--http-port", "web"), "--http-port must be a port number 0-65535"),
        (
            ("--config", str(EXAMPLES / "oizumi.toml"), "--config", str(EXAMPLES / "oizumi.toml")),
            "two configs are office 'oizumi'",
        ),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.run(_args(*argv, "--no-live")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err


def test_ctrl_c_stops_the_day_prints_it_so_far_and_cleans_up(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = DaySimulation.run_until

    def interrupted_at_noon(sim: DaySimulation, until: datetime) -> None:
        if sim.day != ORDINARY:  # the simulated days the day's wait estimate learns from
            return real(sim, until)
        real(sim, min(until, sim.moment(12 * 3600)))
        if sim.now >= 12 * 3600:
            raise KeyboardInterrupt

    monkeypatch.setattr(DaySimulation, "run_until", interrupted_at_noon)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    oizumi = str(EXAMPLES / "oizumi.toml")
    assert (
        demo.run(_args("--config", oizumi, "--date", "2027-06-15", "--speed", "max", "--no-live", *_quiet(tmp_path)))
        == 130
    )
    out = capsys.readouterr().out
    assert "Interrupted at 12:00" in out and "Summary" in out
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]  # the temporary journal is gone


@pytest.mark.parametrize("name", ["oizumi.sqlite", "central.sqlite"])
def test_an_existing_journal_is_left_alone(name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(b"not yours")
    args = _args("--config", str(EXAMPLES / "oizumi.toml"), "--journal", str(tmp_path), "--date", "2027-06-15",
                 "--speed", "max", "--no-live", *_quiet(tmp_path))  # fmt: skip
    assert demo.run(args) == 2
    assert path.read_bytes() == b"not yours"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"{path} already exists" in err[0]


def test_a_bad_config_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "office.toml"
    bad.write_text("[office]\nid = 'x'\n", encoding="utf-8")
    assert demo.run(_args("--config", str(bad), "--no-live")) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.splitlines()) == 1


def test_the_default_date_is_the_next_open_weekday(nerima: OfficeConfig, oizumi: OfficeConfig) -> None:
    # Saturday 2026-11-21: Nerima opens on Saturdays, but the default is a weekday; Monday the
    # 23rd is Labour Thanksgiving Day.
    assert demo.next_open_weekday(nerima, date(2026, 11, 21)) == date(2026, 11, 24)
    assert demo.next_open_weekday(oizumi, date(2026, 11, 24)) == date(2026, 11, 24)
    assert demo.next_open_weekday(nerima, date(2027, 12, 29)) == date(2028, 1, 4)  # year-end closure
    opts = demo.parse_options(_args(), today=date(2027, 3, 20))
    assert opts.day == date(2027, 3, 23)  # Sunday, then the closure for the system update


def test_speed_values(nerima: OfficeConfig) -> None:
    assert demo.parse_speed("max") is None
    assert demo.parse_speed("MAX") is None
    assert demo.parse_speed("inf") is None
    assert demo.parse_speed("600") == 600.0
    assert demo.parse_speed(0.5) == 0.5
    opts = demo.parse_options(_args())
    assert opts.speed == demo.DEFAULT_SPEED and opts.seed == 1 and opts.live and not opts.rush


# -- pacing, with a fake clock ---------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


def test_paced_play_keeps_simulated_time_to_real_time(oizumi: OfficeConfig) -> None:
    sim = DaySimulation(oizumi, ORDINARY, seed=1)
    clock = FakeClock()
    seen: list[tuple[float, datetime]] = []
    demo.play(sim, 1200.0, on_frame=lambda: seen.append((clock.now, sim.now_moment)), clock=clock, sleep=clock.sleep)
    assert sim.done
    start = sim.start_moment
    for real, simulated in seen[:-1]:  # the last frame stops at the day's end, short of the target
        assert (simulated - start).total_seconds() == pytest.approx(real * 1200, abs=1)
    day_seconds = (sim.now_moment - start).total_seconds()
    assert clock.sleeps == pytest.approx(day_seconds / 1200 / demo.FRAME_SECONDS, abs=2)


def test_play_halts_exactly_at_each_stop(oizumi: OfficeConfig) -> None:
    for speed in (None, 900.0):
        sim = DaySimulation(oizumi, ORDINARY, seed=2)
        clock = FakeClock()
        stops = [sim.start_moment + timedelta(minutes=m) for m in (40, 70, 100, 600)]
        halted: list[tuple[datetime, datetime, int]] = []

        def stopped(
            stop: datetime, sim: DaySimulation = sim, halted: list[tuple[datetime, datetime, int]] = halted
        ) -> None:
            halted.append((stop, sim.now_moment, sim.view().issued))

        demo.play(sim, speed, stops=stops, on_stop=stopped, clock=clock, sleep=clock.sleep)
        assert [h[0] for h in halted] == stops
        assert all(s == now for s, now, _ in halted)
        issued = [n for _, _, n in halted]
        assert issued == sorted(issued) and issued[-1] > issued[0]
        assert (clock.sleeps == 0) == (speed is None)


def test_a_journal_given_as_config_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    text = demo.DEFAULT_CONFIG.read_text("utf-8")
    TicketJournal.create(journal, parse_config(text), text).close()
    assert demo.run(_args("--config", str(journal), "--no-live")) == 2
    assert capsys.readouterr().err == (
        f"counterfloor demo: --config: {journal}: (file): is an SQLite database (a journal?), not a config file\n"
    )
