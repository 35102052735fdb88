"""The bus master end to end: gateway links and scheduler against simulated devices behind a
sim:// serial link, on a fake clock (every time here is simulated seconds, never wall time)."""

from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.bus import BusMaster, PressStore, SyncDriver, offered_services
from gateway.device_link import CommandFailed, DeviceLink, DeviceSpec, LinkState, StateChanged
from gateway.journal import JournalReader, TicketJournal
from hal.codec import P
from hal.serial_link import open_link
from hal.simdevice import FaultyBackend, FaultyLine
from office import events as ev
from office.config import OfficeConfig
from office.model import Command, Decision, OpenCounter
from tests.conftest import EXAMPLES, tokyo
from tests.floor_support import FakeClock, Floor, Tokens, make_floor

MONDAY_10 = tokyo(2027, 3, 15, 10, 0)


def offered(cfg: OfficeConfig, floor: Floor) -> frozenset[str]:
    return offered_services(cfg, floor.wall())


def started(cfg: OfficeConfig, **kw: object) -> Floor:
    floor = make_floor(cfg, MONDAY_10, **kw)  # type: ignore[arg-type]
    floor.bus.set_offered(offered(cfg, floor), floor.clock.now())
    floor.cycles(3)
    return floor


def test_every_link_starts_with_identify_and_is_online_within_the_first_cycles(nerima: OfficeConfig) -> None:
    floor = make_floor(nerima, MONDAY_10)
    floor.bus.set_offered(offered(nerima, floor), 0.0)
    floor.cycles(1)
    first = [(f.NAME, f.addr, f.seq) for f in floor.sent[:4]]
    # IDENTIFY in address order; the dispenser's state (LAMPS) goes out right after its HELLO.
    assert first == [("IDENTIFY", 1, 0), ("LAMPS", 1, 1), ("IDENTIFY", 5, 0), ("IDENTIFY", 16, 0)]
    assert floor.sent[0].to_bytes() == P.Identify(1, 0).to_bytes()
    floor.cycles(1)
    assert [floor.state(a) for a in (1, 5, 16)] == ["online"] * 3
    # The dispenser's lamps: every service offered on a weekday at 10:00 (bits in config order).
    assert floor.dispenser.lamps == 0b111111
    assert floor.bus.timeouts == 0


def test_lamps_follow_the_services_offered_now(nerima: OfficeConfig) -> None:
    floor = started(nerima)
    floor.clock.t = 8 * 3600  # 18:00: evening hours
    floor.bus.set_offered(offered(nerima, floor), floor.clock.now())
    floor.cycles(1)
    ids = [s.id for s in nerima.services]
    expected = sum(1 << ids.index(s) for s in ("move", "certificate", "payment"))
    assert floor.dispenser.lamps == expected


def test_a_press_issues_one_ticket_and_a_print_job(nerima: OfficeConfig) -> None:
    floor = started(nerima)
    assert floor.dispenser.press(1) == 1  # seal
    floor.cycles(2)
    assert floor.printed() == ["B-001"]
    assert floor.office.state.tickets["B-001"].service == "seal"
    assert floor.dispenser.waiting_events == 0


def test_a_refused_ticket_is_explained_on_the_dispenser_in_both_languages(nerima: OfficeConfig) -> None:
    floor = started(nerima)
    floor.clock.t = 11 * 3600  # 21:00: closed, but lamps still as at 10:00 for this test
    floor.dispenser.press(0)
    floor.cycles(2)
    assert floor.printed() == []
    assert floor.dispenser.text == ("この時間は受付していません", "Not offered at this time")


def test_call_next_is_shown_on_the_display_before_the_next_poll(nerima: OfficeConfig) -> None:
    floor = started(nerima)
    floor.dispenser.press(0)
    floor.cycles(1)
    floor.pad.key(P.KEY_CALL_NEXT)
    n = len(floor.sent)
    floor.cycles(1)
    assert floor.display.calls == [(P.CALL_NEW, "A-001", "1番窓口")]
    assert floor.pad.number == "A001"
    assert floor.pad.status_lamp == (P.LAMP_GREEN, 0)
    after = [(f.NAME, f.addr) for f in floor.sent[n:]]
    call = after.index(("CALL", 16))
    # Right after the poll that brought the KEY, before any other poll; then the KEY's ack.
    assert after[call - 1 : call + 4] == [
        ("POLL", 5),
        ("CALL", 16),
        ("POLL", 5),
        ("DISPLAY_NUMBER", 5),
        ("STATUS_LAMP", 5),
    ]


def test_an_event_is_acknowledged_in_the_exchange_after_its_command_is_stored(nerima: OfficeConfig) -> None:
    # The ack used to wait for the next cycle's poll (50 ms and more): a gateway killed in that
    # window would meet the press again after its restart and issue a second ticket for it.
    floor = started(nerima)
    ev = floor.dispenser.press(1)
    n = len(floor.sent)
    floor.cycles(1)
    after = floor.sent[n:]
    brought = next(i for i, f in enumerate(after) if f.NAME == "POLL" and f.addr == 1)
    ack = after[brought + 1]  # the very next exchange on the bus
    assert (ack.NAME, ack.addr, ack.ack) == ("POLL", 1, ev)
    assert [type(c).__name__ for c in floor.commands] == ["IssueTicket"]
    assert floor.dispenser.waiting_events == 0 and floor.printed() == ["B-001"]


def test_nobody_waiting_and_an_office_error_show_on_the_pad(nerima: OfficeConfig) -> None:
    floor = started(nerima)
    floor.pad.key(P.KEY_CALL_NEXT)
    floor.cycles(2)
    assert floor.pad.number == "----"
    assert floor.pad.status_lamp == (P.LAMP_AMBER, 0)
    floor.pad.key(P.KEY_RECALL)  # nobody at the counter: the model refuses
    floor.cycles(2)
    assert floor.pad.status_lamp == (P.LAMP_RED, 1)
    assert any(isinstance(e, CommandFailed) and "no_current_ticket" in e.reason for e in floor.effects)


def test_a_pulled_cable_makes_every_device_offline_after_two_cycles_and_replugging_restores_them(
    nerima: OfficeConfig,
) -> None:
    floor = started(nerima, url="sim://bus?dispenser=1&counter_pad=5&call_display=16&seed=1&backend=python")
    line = floor.port.line
    assert line is not None
    line.pulled = True
    floor.cycles(1)
    assert [floor.state(a) for a in (1, 5, 16)] == ["degraded"] * 3
    floor.cycles(1)
    assert [floor.state(a) for a in (1, 5, 16)] == ["offline"] * 3
    floor.dispenser.lamps = 0  # what it shows was lost while out of service (say)
    line.pulled = False
    start = floor.bus.cycles
    while any(floor.state(a) != "online" for a in (1, 5, 16)):
        floor.driver.step()
    assert floor.bus.cycles - start <= 2
    assert floor.dispenser.lamps == 0b111111


def test_a_device_rebooting_mid_message_is_back_online_within_two_cycles_and_nothing_is_doubled(
    nerima: OfficeConfig,
) -> None:
    floor = started(nerima)
    floor.dispenser.press(0)
    floor.cycles(1)

    # The call display reboots when half of the CALL has arrived.
    display = floor.display
    real_receive = display.receive
    rebooted = []

    def receive(data: bytes) -> bytes:
        frames = P.Decoder().feed(data)
        if frames and frames[0].TYPE == P.Call.TYPE and not rebooted:
            rebooted.append(True)
            real_receive(data[: len(data) // 2])
            display.reboot()
            return b""
        return real_receive(data)

    display.receive = receive  # type: ignore[method-assign]
    floor.pad.key(P.KEY_CALL_NEXT)
    floor.cycles(1)
    assert rebooted
    floor.cycles(2)  # counted on the bus's cycles, on the fake clock
    assert floor.state(16) == "online"
    changes = [(e.old.value, e.new.value) for e in floor.effects if isinstance(e, StateChanged) and e.addr == 16]
    assert changes[-3:] == [("online", "connecting"), ("connecting", "identified"), ("identified", "online")]
    # The CALL's retry reached the rebooted display once; its list is restored either way.
    assert display.calls.count((P.CALL_NEW, "A-001", "1番窓口")) <= 1
    assert display.recent == (("A-001", "1番窓口"),)
    assert display.call == ("A-001", "1番窓口")  # the current call too, restored by the RECENT
    assert floor.state(1) == "online" and floor.state(5) == "online"


def test_a_retried_call_is_shown_once(nerima: OfficeConfig) -> None:
    floor = started(nerima)
    floor.dispenser.press(0)
    floor.cycles(1)
    display = floor.display
    real_receive = display.receive
    lost = []

    def receive(data: bytes) -> bytes:
        reply = real_receive(data)
        frames = P.Decoder().feed(data)
        if frames and frames[0].TYPE == P.Call.TYPE and len(lost) < 2:
            lost.append(reply)  # the ACK is lost twice
            return b""
        return reply

    display.receive = receive  # type: ignore[method-assign]
    floor.pad.key(P.KEY_CALL_NEXT)
    floor.cycles(2)
    calls = [f for f in floor.sent if f.NAME == "CALL"]
    assert len(calls) == 3 and len({bytes(c.to_bytes()) for c in calls}) == 1  # the same bytes
    assert display.calls == [(P.CALL_NEW, "A-001", "1番窓口")]
    assert display._dup.repeats == 2
    assert floor.state(16) == "online"


def test_back_off_polls_the_other_devices_and_keeps_the_busy_one_quiet(nerima: OfficeConfig) -> None:
    floor = started(nerima, min_cycle=0.0)
    floor.dispenser.press(0)
    floor.cycles(1)
    display = floor.display
    real_receive = display.receive
    display.receive = lambda data: b""  # type: ignore[method-assign]
    floor.pad.key(P.KEY_CALL_NEXT)
    n = len(floor.sent)
    t0 = floor.clock.now()
    floor.until(0.2)
    display.receive = real_receive  # type: ignore[method-assign]
    sent = floor.sent[n:]
    calls = [i for i, f in enumerate(sent) if f.NAME == "CALL"]
    assert len(calls) == 1 + P.MAX_RETRIES
    # Between the attempts: other devices polled, nothing at all to the display.
    for a, b in itertools.pairwise(calls):
        between = sent[a + 1 : b]
        assert between and all(f.addr != 16 for f in between)
    assert any(isinstance(e, CommandFailed) and e.name == "CALL" for e in floor.effects)
    assert floor.clock.now() - t0 >= 0.07  # 10 + 20 + 40 ms of back-off at least


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_noisy_line_loses_nothing_and_doubles_nothing(nerima: OfficeConfig, seed: int) -> None:
    """Seeded faults: 1 byte in 1000 corrupted and 1 in 2000 dropped, both directions."""
    url = f"sim://bus?dispenser=1&counter_pad=5&call_display=16&seed={seed}&corrupt=0.001&drop=0.0005&backend=python"
    floor = started(nerima, url=url, min_cycle=0.02)
    presses = 0
    keys = 0
    for i in range(300):
        if floor.dispenser.press(i % 6):
            presses += 1
        if i % 2 and floor.pad.key(P.KEY_CALL_NEXT):
            keys += 1
        floor.cycles(1)
    floor.port.line.corrupt = floor.port.line.drop = 0.0
    floor.cycles(12)  # one event a poll: up to 8 queued events drain
    assert floor.port.line.corrupted > 0 and floor.bus.timeouts > 0  # the faults did bite
    # Every accepted press made exactly one ticket; every key exactly one command.
    assert floor.dispenser.waiting_events == 0 and floor.pad.waiting_events == 0
    assert len(floor.printed()) == presses == len(floor.office.state.tickets)
    assert len(set(floor.printed())) == presses
    assert sum(type(c).__name__ == "CallNext" for c in floor.commands) == keys
    # Every call is on the display at most once, and the display ends showing the newest ones.
    called = [c.id for c in floor.office.state.tickets.values() if c.called_at is not None]
    shown = [t for _, t, _ in floor.display.calls]
    assert len(shown) == len(set(shown))
    assert set(shown) <= set(called)
    assert floor.display.recent[0][0] == max(called, key=lambda t: floor.office.state.tickets[t].called_at)
    assert all(floor.bus.by_addr[a].state is LinkState.ONLINE for a in (1, 5, 16))


def test_a_faulty_line_is_deterministic_for_a_seed() -> None:
    a = FaultyLine(7, corrupt=0.01, drop=0.01)
    b = FaultyLine(7, corrupt=0.01, drop=0.01)
    data = bytes(range(256)) * 8
    assert a.carry(data) == b.carry(data)
    assert a.carry(data) != data

    class Echo:
        def receive(self, data: bytes) -> bytes:
            return data

    line = FaultyLine(1)
    line.pulled = True
    assert FaultyBackend(Echo(), line).receive(b"abc") == b""


def test_a_press_that_cannot_be_stored_is_not_acknowledged_and_comes_again(nerima: OfficeConfig) -> None:
    floor = started(nerima)
    failing = [True]
    real = floor.office.execute

    def flaky(command: object, now: object) -> object:
        if failing:
            failing.pop()
            raise OSError("disk full")
        return real(command, now)  # type: ignore[arg-type]

    floor.office.execute = flaky  # type: ignore[method-assign,assignment]
    floor.dispenser.press(2)
    floor.cycles(3)
    assert any(isinstance(e, CommandFailed) and "disk full" in e.reason for e in floor.effects)
    assert floor.printed() == ["C-001"]  # the event came again and was stored once
    assert floor.dispenser.waiting_events == 0


def test_offered_services_come_from_the_calendar(nerima: OfficeConfig) -> None:
    assert offered_services(nerima, tokyo(2027, 3, 15, 18, 0)) == {"move", "certificate", "payment"}
    assert offered_services(nerima, tokyo(2027, 3, 14, 10, 0)) == frozenset()  # a Sunday


def test_a_display_offline_while_calls_are_made_shows_the_newest_call_again_without_a_chime(
    nerima: OfficeConfig,
) -> None:
    floor = started(nerima)
    for button in (0, 0):
        floor.dispenser.press(button)
        floor.cycles(1)
    floor.pad.key(P.KEY_CALL_NEXT)
    floor.cycles(2)
    display = floor.display
    assert display.call == ("A-001", "1番窓口") and len(display.calls) == 1
    real_receive = display.receive
    display.receive = lambda data: b""  # type: ignore[method-assign]  # the cable is pulled
    floor.cycles(3)
    assert floor.state(16) == "offline"
    floor.pad.key(P.KEY_CALL_NEXT)  # called while the display is away: its CALL is never sent
    floor.cycles(2)
    display.receive = real_receive  # type: ignore[method-assign]
    floor.cycles(3)
    assert floor.state(16) == "online"
    assert display.call == ("A-002", "1番窓口")
    assert display.recent == (("A-002", "1番窓口"), ("A-001", "1番窓口"))
    assert len(display.calls) == 1 and display.chimes == 0  # restored, not announced


# --- A press is acted on once, even across a gateway restart (docs/protocol.md, "Events")


class Killed(BaseException):
    """The gateway dies here, as under SIGKILL: nothing after it runs. (Not an Exception, which
    the bus takes for a store that failed.)"""


class JournalledGateway:
    """A gateway's bus end as gateway.service wires it: a TicketJournal on a file, the presses
    journalled by request id (PressStore). `kill_after_store` dies right after the next press's
    command is committed, before its ack; `restart()` builds it all afresh on the same journal
    file and the same port (the devices behind it keep what they hold), as a new process would."""

    URL = "sim://bus?dispenser=1&counter_pad=5&call_display=16&backend=python"

    def __init__(self, cfg: OfficeConfig, path: Path) -> None:
        self.cfg = cfg
        self.path = path
        self.clock = FakeClock()
        port: Any = open_link(self.URL)  # hal.protocol_sim's port: its simulated devices are `bus`
        self.port = port
        self.devices = port.bus.devices
        self.kill_after_store = False
        self.journal = TicketJournal.create(path, cfg, (EXAMPLES / "nerima.toml").read_text("utf-8"), clock=self.wall)
        self.journal.execute(OpenCounter("1"), self.wall())
        self._start()

    def wall(self) -> datetime:
        return MONDAY_10 + timedelta(seconds=self.clock.now())

    def _start(self) -> None:
        services = tuple(s.id for s in self.cfg.services)
        self.links = [
            DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, services), Tokens()),
            DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, services, counter="1"), Tokens()),
            DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), Tokens()),
        ]
        self.bus = BusMaster(self.links, self.execute, min_cycle=0.05, presses=PressStore(self.URL, self.execute))
        self.driver = SyncDriver(self.bus, self.port, self.clock)
        self.bus.set_offered(offered_services(self.cfg, self.wall()), self.clock.now())

    def execute(self, command: Command, request: str | None = None) -> Decision:
        decision = self.journal.execute(command, self.wall(), request=request)
        if request is not None and self.kill_after_store:
            self.kill_after_store = False
            raise Killed(request)
        return decision

    def restart(self) -> None:
        self.journal.close()
        self.journal = TicketJournal.open(self.path, clock=self.wall)
        self._start()

    def cycles(self, n: int) -> None:
        self.driver.run_cycles(n)

    def stored(self, kind: type[ev.Event]) -> list[str]:
        with JournalReader(self.path) as reader:
            return [getattr(e, "ticket", "") for e in reader.events() if isinstance(e, kind)]


def test_a_press_stored_just_before_a_restart_is_acknowledged_and_not_acted_on_again(
    nerima: OfficeConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = JournalledGateway(nerima, tmp_path / "journal.sqlite")
    dispenser, pad = gw.devices[1], gw.devices[5]
    gw.cycles(3)
    boot = dispenser.boot
    assert gw.bus.by_addr[1].boot == boot != 0
    assert dispenser.press(1) == 1  # seal
    gw.kill_after_store = True
    with pytest.raises(Killed, match=re.escape(f"dev:{gw.URL}:1:{boot}:1")):
        gw.cycles(2)
    assert gw.stored(ev.TicketIssued) == ["B-001"] and dispenser.waiting_events == 1  # stored, not acknowledged

    gw.restart()
    with caplog.at_level(logging.INFO, logger="gateway.bus"):
        gw.cycles(3)
    assert f"device 1: press ev 1 of boot {boot} already stored; acknowledged again" in caplog.messages
    assert gw.stored(ev.TicketIssued) == ["B-001"]  # no second ticket
    assert dispenser.waiting_events == 0 and gw.bus.presses_again == 1

    # A counter pad's key the same way: one call, not two.
    assert pad.key(P.KEY_CALL_NEXT) == 1
    gw.kill_after_store = True
    with pytest.raises(Killed):
        gw.cycles(2)
    gw.restart()
    gw.cycles(3)
    assert gw.stored(ev.Called) == ["B-001"] and pad.waiting_events == 0 and gw.bus.presses_again == 1

    # Presses after it are new, and so is one 255 presses later with the same ev (its lap differs).
    for i in range(255):
        assert dispenser.press(i % 6)  # every service, so that no ticket range runs out
        gw.cycles(1)
    assert dispenser.press(5) == 2  # ev 2 again: the numbers went round since B-001's press
    gw.cycles(2)
    assert len(gw.stored(ev.TicketIssued)) == 257 and dispenser.waiting_events == 0
    assert gw.bus.presses_again == 1  # the pad's key, met again after the restart: none since
    # Killed again in the second lap: the restarted gateway learns the lap from the HELLO, so it
    # names the press met again as the one stored (n = 255 + 3), not as lap 0's ev 3.
    assert dispenser.press(5) == 3
    gw.kill_after_store = True
    with pytest.raises(Killed, match=re.escape(f"dev:{gw.URL}:1:{boot}:258")):
        gw.cycles(2)
    gw.restart()
    gw.cycles(3)
    assert len(gw.stored(ev.TicketIssued)) == 258 and dispenser.waiting_events == 0
    assert gw.bus.presses_again == 1


def test_a_restarted_device_numbers_its_presses_from_1_again_and_they_are_not_taken_for_stored_ones(
    nerima: OfficeConfig, tmp_path: Path
) -> None:
    gw = JournalledGateway(nerima, tmp_path / "journal.sqlite")
    dispenser = gw.devices[1]
    gw.cycles(3)
    first_boot = dispenser.boot
    assert dispenser.press(1) == 1
    gw.cycles(2)
    dispenser.reboot(P.RESET_POWER_ON)  # RAM gone, boot number one more (kept on flash)
    gw.cycles(3)
    assert dispenser.boot == first_boot + 1 and gw.bus.by_addr[1].boot == first_boot + 1
    assert dispenser.press(1) == 1  # ev 1 again, but of the next boot
    gw.cycles(2)
    assert gw.stored(ev.TicketIssued) == ["B-001", "B-002"] and gw.bus.presses_again == 0
    # The same after a gateway restart: the device and its ev 2 are met again, and are new.
    gw.restart()
    gw.cycles(3)
    assert dispenser.press(1) == 2
    gw.cycles(2)
    assert gw.stored(ev.TicketIssued) == ["B-001", "B-002", "B-003"]
