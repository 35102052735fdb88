"""No business day on a clock nobody trusts (issue 16, operations; gateway/clock_sync.py): the
decision pure, the kernel's answer read for real, and a real gateway on a journal whose sync seam
says "not synchronised": it stores nothing until `counterfloor office confirm-time` over the real
control socket, a counter pad's call key on a simulated bus, or the clock becoming synchronised.

The gateways run in this thread on held clocks; a wall-clock bound only stops a test that would
otherwise hang."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway import clock_sync, service
from gateway.clock_sync import (
    MAXERROR_LIMIT_US,
    SIMULATED,
    STA_UNSYNC,
    ClockGate,
    KernelClock,
    Sync,
    behind_problem,
    read_boot_id,
    read_kernel_clock,
    stated_problem,
    system_sync,
)
from gateway.device_link import LinkState
from gateway.journal import JournalError, JournalReader
from gateway.mode_words import clock_wait_lines, pad_clock
from hal.codec import P
from office import events as ev
from office import model as m
from office.config import ConfigError, load_config, parse_config
from tests.conftest import EXAMPLES, run_cli, tokyo
from tests.floor_support import HeldClock, answered_while_turning, floor_without_devices, running_gateway

SAFETY_S = 20.0  # only a bound on a wait that takes a few steps when the code is right
TZ = ZoneInfo("Asia/Tokyo")
UNSYNCED = Sync(False, "not synchronised (test)")
SYNCED = Sync(True, "synchronised (test)")


# -- the decision, pure ------------------------------------------------------------------------------
def test_the_kernel_counts_as_synchronised_by_its_max_error_not_the_unsync_bit() -> None:
    # chronyd without rtcsync keeps STA_UNSYNC on a disciplined clock (adjtimex then says TIME_ERROR).
    chrony = KernelClock(state=clock_sync.TIME_ERROR, status=STA_UNSYNC, maxerror_us=40_000, esterror_us=100)
    assert chrony.synchronised and "STA_UNSYNC" in chrony.describe()
    booted = KernelClock(state=clock_sync.TIME_ERROR, status=STA_UNSYNC, maxerror_us=MAXERROR_LIMIT_US, esterror_us=0)
    assert not booted.synchronised  # from boot until a first NTP update, and ~9 h after the last one
    assert KernelClock(0, 0, MAXERROR_LIMIT_US - 1, 0).synchronised


def test_timesyncd_flag_or_the_kernel_says_synchronised(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    unsynced = KernelClock(clock_sync.TIME_ERROR, STA_UNSYNC, MAXERROR_LIMIT_US, MAXERROR_LIMIT_US)
    no = system_sync(lambda: unsynced, flag)
    assert not no.synchronised and "max error 16 s" in no.how and str(flag) in no.how
    assert not system_sync(lambda: None, flag).synchronised  # no kernel view, no flag: not known
    flag.touch()  # systemd-timesyncd's first sync since boot
    yes = system_sync(lambda: unsynced, flag)
    assert yes.synchronised and "systemd-timesyncd" in yes.how
    assert system_sync(lambda: KernelClock(0, 0, 20_000, 100), tmp_path / "absent").synchronised


def test_this_machines_kernel_answers_adjtimex() -> None:
    """The real call (a read: modes 0, no privilege): what must hold on any Linux."""
    k = read_kernel_clock()
    assert k is not None
    assert all(isinstance(v, int) for v in (k.state, k.status, k.maxerror_us, k.esterror_us))
    assert 0 <= k.state <= clock_sync.TIME_ERROR  # TIME_OK … TIME_ERROR
    assert 0 <= k.maxerror_us <= MAXERROR_LIMIT_US  # the kernel clamps it at NTP_PHASE_LIMIT
    assert k.synchronised == (k.maxerror_us < MAXERROR_LIMIT_US)
    # The kernel's own rule: a maxerror at its limit always comes with STA_UNSYNC, and TIME_ERROR.
    if not k.synchronised:
        assert k.status & STA_UNSYNC and k.state == clock_sync.TIME_ERROR
    assert isinstance(system_sync().synchronised, bool)
    boot = read_boot_id()
    assert boot is not None and len(boot) == 36 and boot == read_boot_id()


def test_the_gate_waits_until_synchronised_and_asks_at_most_every_second() -> None:
    answers = [UNSYNCED]
    gate = ClockGate("ntp", lambda: answers[-1], "boot-1")
    wall = tokyo(2027, 3, 15, 8, 20)
    assert gate.waiting and gate.check(100.0, wall, None, TZ) is None
    assert gate.waiting and gate.reason == UNSYNCED.how
    answers.append(SYNCED)
    assert gate.check(100.5, wall, None, TZ) is None and gate.waiting  # not asked again yet
    trust = gate.check(101.0, wall, None, TZ)
    assert trust is not None and trust.by == "ntp" and not gate.waiting
    answers.append(UNSYNCED)  # NTP lost later: a day being served never stops
    assert gate.check(200.0, wall, None, TZ) is None and not gate.waiting
    simulated = ClockGate("ntp", lambda: SIMULATED, None)
    assert (t := simulated.check(0.0, wall, None, TZ)) is not None and t.by == "simulated"


def test_an_rtc_is_trusted_at_once_unless_it_reads_before_the_journal() -> None:
    wall, last = tokyo(2027, 3, 15, 8, 20), tokyo(2027, 3, 14, 18, 55)
    rtc = ClockGate("rtc", lambda: UNSYNCED, None)
    assert (t := rtc.check(0.0, wall, last, TZ)) is not None and t.by == "rtc"
    flat = ClockGate("rtc", lambda: UNSYNCED, None)
    assert flat.check(0.0, datetime(2000, 1, 1, tzinfo=TZ), last, TZ) is None  # a DS3231 without its cell
    assert flat.waiting and "RTC" in flat.reason and "before the journal's last event" in flat.reason
    with pytest.raises(ValueError, match="clock mode"):
        ClockGate("gps", lambda: SYNCED, None)


def test_trust_is_kept_for_the_boot_it_was_gained_in() -> None:
    gate = ClockGate("ntp", lambda: UNSYNCED, "boot-1")
    stored = gate.stored(clock_sync.Trust("staff", "confirmed at counter pad 0-5"))
    assert stored is not None and json.loads(stored)["boot"] == "boot-1"
    again = ClockGate("ntp", lambda: UNSYNCED, "boot-1")
    again.restore(stored)
    assert again.trust is not None and again.trust.by == "staff" and "earlier in this boot" in again.trust.detail
    rebooted = ClockGate("ntp", lambda: UNSYNCED, "boot-2")
    rebooted.restore(stored)
    assert rebooted.waiting  # fake-hwclock's time after a reboot: suspect again
    for garbage in ("", "{", "[]", '{"boot": "boot-1"}'):
        g = ClockGate("ntp", lambda: UNSYNCED, "boot-1")
        g.restore(garbage)
        assert g.waiting
    assert gate.stored(clock_sync.Trust("rtc", "x")) is None and gate.stored(clock_sync.Trust("simulated", "x")) is None
    assert ClockGate("ntp", lambda: UNSYNCED, None).stored(clock_sync.Trust("ntp", "x")) is None


def test_staff_state_the_time_they_read_within_two_minutes() -> None:
    wall = tokyo(2027, 3, 15, 8, 20, 30)
    assert stated_problem("08:20", wall, TZ) is None and stated_problem("8:21", wall, TZ) is None
    assert stated_problem("2027-03-15 08:21", wall, TZ) is None
    assert "not 08:25" in (stated_problem("08:25", wall, TZ) or "")
    assert "2027-03-15 08:20, not 2027-03-14 08:20" in (stated_problem("2027-03-14 08:20", wall, TZ) or "")
    assert stated_problem("23:59", tokyo(2027, 3, 15, 0, 0, 30), TZ) is None  # across midnight: a minute
    with pytest.raises(ValueError):
        stated_problem("twenty past eight", wall, TZ)
    last = tokyo(2027, 3, 15, 10, 0)
    assert behind_problem(last - timedelta(minutes=1), last, TZ) is None  # an NTP step back: seconds
    assert "before the journal's last event" in (behind_problem(last - timedelta(hours=1), last, TZ) or "")


def test_the_panels_words_fit_one_frame_on_every_day_and_the_pad_shows_the_time() -> None:
    day = date(2027, 1, 1)
    while day.year == 2027:
        for hour, minute in ((0, 0), (8, 20), (23, 59)):
            lines = clock_wait_lines(datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ))
            P.ShowText(1, 0, list(lines))  # raises beyond the 123 bytes of a frame
        day += timedelta(days=1)
    local = tokyo(2027, 3, 15, 8, 20)
    assert clock_wait_lines(local)[:2] == ("時計確認待ち 3月15日(月) 8:20", "Clock check: Mon 15 Mar 8:20")
    assert pad_clock(local) == "0820" and pad_clock(tokyo(2027, 3, 15, 23, 5)) == "2305"


def test_the_config_option() -> None:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    assert parse_config(text).gateway.clock == "ntp"
    rtc = text.replace("[gateway]\n", '[gateway]\nclock = "rtc"\n', 1)
    assert parse_config(rtc).gateway.clock == "rtc"
    with pytest.raises(ConfigError, match=r"gateway\.clock: must be one of \['ntp', 'rtc'\]"):
        parse_config(text.replace("[gateway]\n", '[gateway]\nclock = "gps"\n', 1))


# -- a real gateway whose seam says "not synchronised" -----------------------------------------------
def exported(journal: Path) -> list[dict[str, Any]]:
    """The journal's events as `office export` writes them (docs/events.md)."""
    with JournalReader(journal) as reader:
        return [ev.public_record(e, reader.office_id) for e in reader.events()]


@dataclass
class Floor:
    gw: service.Gateway
    clock: HeldClock
    sync: list[Sync]  # the seam's answer: the last one
    offset: list[timedelta]  # a step of the wall clock, as NTP or `date -s` makes one
    tmp: Path

    @property
    def socket(self) -> Path:
        return self.tmp / "j.sock"

    def events(self) -> list[dict[str, Any]]:
        return exported(self.tmp / "j.db")

    def cli(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        """`counterfloor office …` in a thread (its client blocks), this thread stepping the gateway."""
        argv = ("office", *argv, "--journal", str(self.tmp / "j.db"), "--socket", str(self.socket))
        return answered_while_turning(lambda: run_cli(capsys, *argv), self.gw.step, argv, SAFETY_S)

    def turn(self, seconds: float = 1.0) -> None:
        """Time passes (the gate asks the seam again once a second), and one turn of the loop."""
        self.clock.t += seconds
        self.gw.step()


def make_floor(
    tmp_path: Path, at: datetime, gateway_lines: str = "", boot: str = "boot-1", sync: Sync = UNSYNCED
) -> Floor:
    config, text = floor_without_devices(tmp_path, gateway_lines)
    clock, answers, offset = HeldClock(), [sync], [timedelta(0)]
    opening = at - timedelta(seconds=clock.t)
    gw = service.Gateway(
        config,
        text,
        tmp_path / "j.db",
        tmp_path / "j.sock",
        io.StringIO(),
        clock=clock,
        wall=lambda: opening + offset[0] + timedelta(seconds=clock.t),
        clock_sync=lambda: answers[-1],
        boot_id=boot,
    )
    return Floor(gw, clock, answers, offset, tmp_path)


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[Floor]:
    f = make_floor(tmp_path, tokyo(2027, 3, 15, 10, 0))  # Monday 10:00: the office would be open
    f.gw.start()
    try:
        yield f
    finally:
        f.gw.close()


def test_no_day_opens_on_an_unsynchronised_clock_until_confirm_time(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    gw, journal = floor.gw, floor.gw.journal
    assert journal is not None and gw.clock_gate is not None and gw.clock_gate.waiting
    refused = gw.handle({"cmd": "issue", "service": "move"})
    assert refused["ok"] is False and refused["code"] == "clock_not_trusted"
    assert "confirm-time --time 10:00" in refused["error"]
    for _ in range(5):
        floor.turn(60.0)  # 10:05
    assert journal.office.state.day is None and journal.office.state.last_seq == 0  # nothing stored
    assert gw.status_line().startswith("waiting for the clock (not synchronised (test))")

    code, out, _ = floor.cli(capsys, "show")
    assert code == 0 and out.startswith("clock NOT TRUSTED: no business day opens until it is")
    assert "the gateway's clock says Mon 2027-03-15 10:05" in out
    code, out, _ = floor.cli(capsys, "show", "--json")
    assert json.loads(out)["clock"]["trusted"] is False
    code, out, _ = floor.cli(capsys, "confirm-time")  # without --time: what it says, exit 1
    assert code == 1 and "confirm-time --time 10:05" in out
    code, _, err = floor.cli(capsys, "issue", "--service", "move")
    assert code == 1 and "the gateway's clock is not trusted" in err

    code, _, err = floor.cli(capsys, "confirm-time", "--time", "10:30")  # a watch that disagrees
    assert code == 1 and "the gateway's clock says 2027-03-15 10:05, not 10:30" in err
    assert gw.clock_gate.waiting and journal.office.state.last_seq == 0
    code, out, _ = floor.cli(capsys, "confirm-time", "--time", "10:05")
    assert code == 0 and out.startswith("clock confirmed: Mon 2027-03-15 10:05:") and "business day 2027-03-15" in out
    assert not gw.clock_gate.waiting and gw.status_line().startswith("serving oizumi")

    code, out, _ = floor.cli(capsys, "issue", "--service", "move")
    assert code == 0 and out.startswith("A-001")
    types = [(e["type"], e.get("cmd")) for e in floor.events()]
    assert types == [("schedule", None), ("remote_command", "confirm_time"), ("ticket_issued", None)]
    audit = floor.events()[1]
    assert audit["ok"] is True and audit["id"].startswith("ctl:") and audit["ts"].startswith("2027-03-15T10:05")
    code, out, _ = floor.cli(capsys, "confirm-time", "--time", "10:05")
    assert code == 0 and "trusted already" in out and len(floor.events()) == 3


def test_every_writer_is_refused_while_the_clock_waits(floor: Floor) -> None:
    """The control socket's commands, a pushed config, a printer's or GPIO counter's command, and
    the MQTT link's audit record (stamped by the journal's own clock): none stores an event."""
    gw, journal = floor.gw, floor.gw.journal
    assert journal is not None
    for req in (
        {"cmd": "open", "counter": "1"},
        {"cmd": "set-mode", "date": "2027-03-16", "closed": True},
        {"cmd": "dispenser-message", "lines": ["x"]},
        {"cmd": "reprint", "ticket": "A-001"},
    ):
        reply = gw.handle(req)
        assert reply["ok"] is False and reply["code"] == "clock_not_trusted", reply
    assert gw.reconfigure(gw.config_text.replace("大泉", "大泉 "), via="socket")["code"] == "clock_not_trusted"
    with pytest.raises(m.OfficeError, match="not trusted"):
        gw._execute(m.OpenCounter("1"))
    with pytest.raises(JournalError, match="not trusted"):
        journal.execute(m.RecordRemoteCommand("mqtt:x", "set_mode", None, False, "refused"))
    assert gw.handle({"cmd": "ping"})["ok"] and gw.handle({"cmd": "status"})["clock"]["trusted"] is False
    assert journal.office.state.last_seq == 0 and floor.events() == []


def test_the_day_opens_once_the_clock_is_synchronised_and_the_step_is_recorded_then(floor: Floor) -> None:
    gw, journal = floor.gw, floor.gw.journal
    assert journal is not None and gw.clock_gate is not None
    floor.turn()  # the clock watch's first reading
    floor.offset[0] = timedelta(hours=-15)  # the clock steps back to last night: noticed, not stored
    floor.turn()
    floor.offset[0] = timedelta(0)  # and forward again, as NTP corrects it
    floor.turn()
    assert gw.clock_gate.waiting and journal.office.state.last_seq == 0
    floor.sync.append(SYNCED)
    floor.turn()
    assert not gw.clock_gate.waiting
    assert [e["type"] for e in floor.events()] == ["schedule", "clock_stepped", "clock_stepped"]
    assert journal.office.state.day == date(2027, 3, 15)
    assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
    floor.sync.append(UNSYNCED)  # NTP goes away during the day: the day goes on
    floor.turn()
    assert gw.handle({"cmd": "issue", "service": "move"})["output"].startswith("A-002")


def test_trust_lasts_the_boot_across_restarts_and_a_reboot_waits_again(tmp_path: Path) -> None:
    first = make_floor(tmp_path, tokyo(2027, 3, 15, 10, 0))
    first.gw.start()
    try:
        assert first.gw.clock_gate is not None and first.gw.clock_gate.waiting
        reply = first.gw.handle({"cmd": "confirm-time", "time": "10:00", "by": "tanaka"})
        assert reply["ok"] and reply["confirmed"]
        assert first.gw.handle({"cmd": "issue", "service": "move"})["ok"]
        assert first.events()[1]["sender"] == "tanaka"
    finally:
        first.gw.close()
    restarted = make_floor(tmp_path, tokyo(2027, 3, 15, 11, 0))  # the same boot: a crash, an upgrade
    restarted.gw.start()
    try:
        assert restarted.gw.clock_gate is not None and not restarted.gw.clock_gate.waiting
        assert restarted.gw.handle({"cmd": "issue", "service": "move"})["output"].startswith("A-002")
    finally:
        restarted.gw.close()
    rebooted = make_floor(tmp_path, tokyo(2027, 3, 15, 11, 30), boot="boot-2")
    rebooted.gw.start()
    try:
        gate = rebooted.gw.clock_gate
        assert gate is not None and gate.waiting  # fake-hwclock's time: nothing stored on it
        assert rebooted.gw.handle({"cmd": "issue", "service": "move"})["code"] == "clock_not_trusted"
        assert rebooted.gw.handle({"cmd": "confirm-time", "time": "11:30"})["ok"]
        # Nothing issued was lost: the day goes on where it was.
        assert rebooted.gw.handle({"cmd": "issue", "service": "move"})["output"].startswith("A-003")
    finally:
        rebooted.gw.close()


def test_a_clock_behind_the_journal_is_not_confirmed_and_an_rtc_behind_it_waits(tmp_path: Path) -> None:
    served = make_floor(tmp_path, tokyo(2027, 3, 15, 10, 0), sync=SYNCED)
    served.gw.start()
    try:
        assert served.gw.handle({"cmd": "issue", "service": "move"})["ok"]
    finally:
        served.gw.close()
    behind = make_floor(tmp_path, tokyo(2027, 3, 15, 9, 0), boot="boot-2")  # rebooted an hour behind
    behind.gw.start()
    try:
        reply = behind.gw.handle({"cmd": "confirm-time", "time": "09:00"})
        assert reply["ok"] is False and reply["code"] == "clock_wrong"
        assert "before the journal's last event (2027-03-15 10:00)" in reply["error"]
        assert behind.gw.clock_gate is not None and behind.gw.clock_gate.waiting
    finally:
        behind.gw.close()
    flat_rtc = make_floor(tmp_path, datetime(2000, 1, 1, tzinfo=TZ), 'clock = "rtc"', boot="boot-3")
    flat_rtc.gw.start()
    try:
        assert flat_rtc.gw.clock_gate is not None and flat_rtc.gw.clock_gate.waiting
        assert "RTC" in flat_rtc.gw.clock_gate.reason
    finally:
        flat_rtc.gw.close()


def test_an_rtc_opens_the_day_without_any_network(tmp_path: Path) -> None:
    f = make_floor(tmp_path, tokyo(2027, 3, 15, 10, 0), 'clock = "rtc"')
    f.gw.start()
    try:
        assert f.gw.clock_gate is not None and not f.gw.clock_gate.waiting
        assert f.gw.handle({"cmd": "issue", "service": "move"})["output"].startswith("A-001")
    finally:
        f.gw.close()


def test_a_simulated_wall_clock_counts_as_synchronised_and_the_real_one_is_checked(tmp_path: Path) -> None:
    config, text = floor_without_devices(tmp_path)
    simulated = service.Gateway(
        config, text, tmp_path / "s.db", tmp_path / "s.sock", io.StringIO(), wall=lambda: tokyo(2027, 3, 15, 10, 0)
    )
    simulated.start()
    try:
        assert simulated.clock_gate is not None and simulated.clock_gate.trust is not None
        assert simulated.clock_gate.trust.by == "simulated"
    finally:
        simulated.close()
    real = service.Gateway(config, text, tmp_path / "r.db", tmp_path / "r.sock", io.StringIO())
    real.start()
    try:
        gate = real.clock_gate
        assert gate is not None
        # This machine's own answer: the gateway waits exactly when the system says unsynchronised.
        assert gate.waiting == (not system_sync().synchronised)
    finally:
        real.close()


# -- a counter pad's call key, through a simulated bus -----------------------------------------------
def test_the_pads_show_the_time_and_a_call_key_confirms_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")  # the pure-Python devices: their state is read here
    config = load_config(EXAMPLES / "oizumi.toml")
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    # The devices answer in real time: the wall clock Monday 10:00 plus the time since.
    gw = running_gateway(tmp_path, config, text, clock_sync=lambda: UNSYNCED, boot_id="boot-1")
    gw.start()
    try:
        bus = gw.buses[0]
        devices = bus.port.bus.devices

        def until(what: str, cond: Callable[[], bool]) -> None:
            deadline = time.monotonic() + SAFETY_S
            while not cond():
                assert time.monotonic() < deadline, what
                gw.step()

        until("online", lambda: all(link.state is LinkState.ONLINE for link in bus.master.links))
        until("the time on the pads", lambda: devices[5].number == "1000" and devices[8].number == "1000")
        assert devices[5].status_lamp == (P.LAMP_AMBER, 1)
        until("the dispenser's words", lambda: devices[1].text[:1] == ("時計確認待ち 3月15日(月) 10:00",))
        assert devices[1].lamps == 0 and devices[1].press(0) == 0  # dark: a resident's press does nothing
        assert devices[6].key(P.KEY_DONE)  # not the call key: refused, its lamp red
        until("refused", lambda: devices[6].status_lamp == (P.LAMP_RED, 1))
        assert gw.journal is not None and gw.journal.office.state.last_seq == 0
        assert gw.clock_gate is not None and gw.clock_gate.waiting

        assert devices[5].key(P.KEY_CALL_NEXT)
        until("confirmed", lambda: gw.clock_gate is not None and not gw.clock_gate.waiting)
        until("lit", lambda: devices[1].lamps == 0b1111)  # Monday 10:00: every service offered
        until("pads blank", lambda: all(devices[a].number == "    " for a in (5, 6, 7, 8)))
        assert devices[5].status_lamp == (P.LAMP_OFF, 0)
        events = exported(tmp_path / "j.db")
        assert [e["type"] for e in events] == ["schedule", "remote_command"]
        assert events[1]["cmd"] == "confirm_time" and events[1]["sender"] == "counter pad 0-5 (counter 1)"
        assert events[1]["id"].startswith("dev:sim://bus?") and not gw.journal.office.state.counters  # no call
        assert devices[1].press(0)  # now a ticket
        until("issued", lambda: gw.journal is not None and "A-001" in gw.journal.office.state.tickets)
    finally:
        gw.close()
