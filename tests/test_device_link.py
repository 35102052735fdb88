"""One device link as a pure state machine: events in, effects out, times in fake seconds.
Frames are checked as golden bytes (docs/protocol.md test vectors) through firmware.protocol."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.device_link import (
    REFUSAL_MESSAGE,
    CommandDone,
    CommandFailed,
    CommandRejected,
    CommandSlot,
    DeviceLink,
    DeviceSpec,
    Execute,
    ExecuteFailed,
    Identified,
    LinkEffect,
    LinkState,
    NoReply,
    OfficeOutcome,
    PollSlot,
    PortLost,
    PressId,
    Replied,
    SetLamps,
    StateChanged,
    TodaysCalls,
    Transmit,
    display_number,
    fit_recent,
    key_command,
)
from hal.codec import P
from office.model import CallNext, IssueRefused, IssueTicket, PauseCounter, ShowCall, Transfer
from signage.catalog import both

SERVICES = ("move", "seal", "certificate")


def hello(
    addr: int, seq: int, kind: int, caps: int = 0xFF, cause: int = P.RESET_POWER_ON, boot: int = 7, lap: int = 0
) -> Any:
    return P.Hello(addr, seq, P.PROTOCOL_VERSION, kind, (1, 0, 3), caps, cause, boot, lap)


def sent(effects: list[LinkEffect]) -> Any:
    frames = [e.frame for e in effects if isinstance(e, Transmit)]
    assert len(frames) == 1, effects
    return frames[0]


def online(kind: int = P.KIND_CALL_DISPLAY, addr: int = 16, caps: int = 0xFF, **spec: Any) -> DeviceLink:
    if kind == P.KIND_COUNTER_PAD:
        spec.setdefault("counter", "3")
    link = DeviceLink(DeviceSpec(addr, kind, spec.pop("services", SERVICES), **spec), lambda: "tok")
    frame = sent(link.handle(PollSlot(), 0.0))
    assert frame.NAME == "IDENTIFY"
    link.handle(Replied(hello(addr, frame.seq, kind, caps)), 0.0)
    while link.wants(0.0):  # deliver whatever state is queued
        f = sent(link.handle(CommandSlot(), 0.0))
        link.handle(Replied(P.Ack(addr, f.seq)), 0.0)
    assert link.state is LinkState.ONLINE
    return link


def changes(effects: list[LinkEffect]) -> list[tuple[str, str]]:
    return [(e.old.value, e.new.value) for e in effects if isinstance(e, StateChanged)]


def test_identify_then_hello_makes_the_link_identified_then_online() -> None:
    link = DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, SERVICES), lambda: "tok")
    assert link.state is LinkState.CONNECTING
    link.handle(SetLamps(frozenset({"move", "certificate"})), 0.0)  # known before the device is
    frame = sent(link.handle(PollSlot(), 0.0))
    assert frame == P.Identify(1, 0)
    effects = link.handle(Replied(hello(1, 0, P.KIND_DISPENSER, caps=0x61)), 0.0)
    assert changes(effects) == [("connecting", "identified")]
    assert Identified(1, P.KIND_DISPENSER, (1, 0, 3), 0x61, P.RESET_POWER_ON) in effects
    lamps = sent(link.handle(CommandSlot(), 0.0))
    assert lamps.to_bytes() == P.Lamps(1, 1, 0b101).to_bytes()
    effects = link.handle(Replied(P.Ack(1, 1)), 0.0)
    assert changes(effects) == [("identified", "online")]


def test_golden_poll_carries_the_last_accepted_event() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5)
    link.seq = 40
    link.tracker.ack = 7
    frame = sent(link.handle(PollSlot(), 0.0))
    assert frame.to_bytes() == bytes.fromhex("0007050129 07c32c00".replace(" ", ""))  # vector poll-ack


def test_golden_call_frame_from_a_show_call() -> None:
    link = online(P.KIND_CALL_DISPLAY, addr=16)
    link.seq = 7
    link.handle(OfficeOutcome(ShowCall("B023", "3", recall=False)), 0.0)
    frame = sent(link.handle(CommandSlot(), 0.0))
    assert frame.to_bytes() == bytes.fromhex("000e1030080104423032330133068800")  # vector call-new
    assert not link.wants(0.0, bulk=True)  # the RECENT list is state for a resync, not sent now


def test_a_recall_is_sent_as_recall_and_not_added_to_the_list() -> None:
    link = online()
    link.handle(OfficeOutcome(ShowCall("A-105", "12", recall=True)), 0.0)
    frame = sent(link.handle(CommandSlot(), 0.0))
    assert (frame.flags, frame.ticket, frame.counter) == (P.CALL_RECALL, "A-105", "12")
    assert link.recent == []


def test_each_event_number_is_acted_on_once_and_acknowledged_in_the_next_poll() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5)
    poll = sent(link.handle(PollSlot(), 0.0))
    first = link.handle(Replied(P.Key(5, poll.seq, 3, P.KEY_CALL_NEXT)), 0.0)
    assert [e for e in first if isinstance(e, Execute)] == [Execute(5, CallNext("3"), PressId(7, 0, 3))]
    poll = sent(link.handle(PollSlot(), 0.1))
    assert poll.ack == 3
    # The ack was lost: the device sends event 3 again; it is not acted on again.
    again = link.handle(Replied(P.Key(5, poll.seq, 3, P.KEY_CALL_NEXT)), 0.1)
    assert not [e for e in again if isinstance(e, Execute)]


def test_an_accepted_event_is_acknowledged_at_once_unless_its_command_could_not_be_stored() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5)
    poll = sent(link.handle(PollSlot(), 0.0))
    link.handle(Replied(P.Key(5, poll.seq, 3, P.KEY_CALL_NEXT)), 0.0)
    assert link.wants(0.0)  # not a cycle later: the next exchange on the bus
    ack = sent(link.handle(CommandSlot(), 0.0))
    assert (ack.NAME, ack.ack) == ("POLL", 3)
    link.handle(Replied(P.Ack(5, ack.seq)), 0.0)
    assert not link.wants(0.0)
    # The journal could not store the next one: not acknowledged, and offered again next
    # cycle (an immediate poll would fetch it straight back, over and over, while a disk is full).
    poll = sent(link.handle(PollSlot(), 0.1))
    link.handle(Replied(P.Key(5, poll.seq, 4, P.KEY_CALL_NEXT)), 0.1)
    link.handle(ExecuteFailed("OperationalError: disk I/O error"), 0.1)
    assert not link.wants(0.1)
    assert sent(link.handle(PollSlot(), 0.2)).ack == 3


def pad_identified(boot: int, lap: int) -> DeviceLink:
    """A counter pad's link (addr 5) identified by a HELLO with this boot number and lap."""
    link = DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, SERVICES, counter="3"), lambda: "tok")
    link.handle(Replied(hello(5, sent(link.handle(PollSlot(), 0.0)).seq, P.KIND_COUNTER_PAD, boot=boot, lap=lap)), 0.0)
    return link


def press_ids(link: DeviceLink, evs: list[int], now: float = 0.0) -> list[PressId | None]:
    """The PressIds of the Execute effects of events `evs`, each acknowledged before the next."""
    out: list[PressId | None] = []
    for ev in evs:
        poll = sent(link.handle(PollSlot(), now))
        out += [
            e.press for e in link.handle(Replied(P.Key(5, poll.seq, ev, P.KEY_DONE)), now) if isinstance(e, Execute)
        ]
    return out


def test_a_press_is_named_by_its_boot_its_lap_and_its_ev_so_that_255_presses_later_it_is_not_the_same() -> None:
    # The HELLO's lap is that of the first event after it; the lap goes up when ev goes round.
    link = pad_identified(boot=0xC0FFEE, lap=2)
    assert press_ids(link, [254, 255, 1, 2]) == [
        PressId(0xC0FFEE, 2, 254),
        PressId(0xC0FFEE, 2, 255),
        PressId(0xC0FFEE, 3, 1),
        PressId(0xC0FFEE, 3, 2),
    ]
    assert PressId(0xC0FFEE, 3, 1).request("/dev/ttyUSB0", 5) == f"dev:/dev/ttyUSB0:5:{0xC0FFEE}:766"
    assert PressId(9, 255, 255).request("sim://bus", 16) == "dev:sim://bus:16:9:65280"  # the largest n
    # Lap 255 goes round to 0, as the device's (mod 256) does.
    assert press_ids(pad_identified(boot=9, lap=255), [255, 1]) == [PressId(9, 255, 255), PressId(9, 0, 1)]


def test_a_press_whose_command_was_not_stored_keeps_its_name_when_offered_again() -> None:
    link = pad_identified(boot=9, lap=0)
    assert press_ids(link, [255]) == [PressId(9, 0, 255)]
    poll = sent(link.handle(PollSlot(), 0.1))
    (execute,) = [e for e in link.handle(Replied(P.Key(5, poll.seq, 1, P.KEY_DONE)), 0.1) if isinstance(e, Execute)]
    assert execute.press == PressId(9, 1, 1)
    link.handle(ExecuteFailed("OperationalError: disk I/O error"), 0.1)
    assert press_ids(link, [1], 0.2) == [PressId(9, 1, 1)]  # not lap 2: the first try was undone


def test_a_new_hello_names_the_presses_after_it_by_its_boot_and_lap() -> None:
    link = pad_identified(boot=9, lap=0)
    assert press_ids(link, [1, 2]) == [PressId(9, 0, 1), PressId(9, 0, 2)]
    # The device restarted: HELLO to a POLL, then IDENTIFY, answered with its new boot number.
    poll = sent(link.handle(PollSlot(), 0.1))
    link.handle(Replied(hello(5, poll.seq, P.KIND_COUNTER_PAD, cause=P.RESET_WATCHDOG, boot=10)), 0.1)
    identify = sent(link.handle(CommandSlot(), 0.1))
    assert identify.NAME == "IDENTIFY"
    link.handle(Replied(hello(5, identify.seq, P.KIND_COUNTER_PAD, boot=10)), 0.1)
    assert press_ids(link, [1], 0.2) == [PressId(10, 0, 1)]  # ev 1 again, but of boot 10


def test_a_device_without_a_boot_number_has_presses_without_a_name() -> None:
    # boot 0: a version-1 board (whose 8-byte HELLO the gateway reads as boot 0): told apart in
    # memory only, as before version 2.
    link = pad_identified(boot=0, lap=0)
    assert press_ids(link, [1, 2]) == [None, None]


def test_a_button_press_issues_a_ticket_with_a_fresh_token() -> None:
    tokens = iter(["t1", "t2"])
    link = DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, SERVICES), lambda: next(tokens))
    link.handle(Replied(hello(1, sent(link.handle(PollSlot(), 0.0)).seq, P.KIND_DISPENSER)), 0.0)
    poll = sent(link.handle(PollSlot(), 0.0))
    effects = link.handle(Replied(P.ButtonPress(1, poll.seq, 1, 2)), 0.0)
    assert [e for e in effects if isinstance(e, Execute)] == [
        Execute(1, IssueTicket("certificate", "t1"), PressId(7, 0, 1))
    ]
    poll = sent(link.handle(PollSlot(), 0.0))
    effects = link.handle(Replied(P.ButtonPress(1, poll.seq, 2, 15)), 0.0)  # no service at button 15
    assert [e.name for e in effects if isinstance(e, CommandFailed)] == ["BUTTON_PRESS"]


@pytest.mark.parametrize("reason", sorted(REFUSAL_MESSAGE))
def test_a_refusal_is_shown_in_japanese_and_english(reason: str) -> None:
    link = online(P.KIND_DISPENSER, addr=1)
    link.handle(OfficeOutcome(IssueRefused("move", reason, "...")), 0.0)
    assert not link.wants(0.0)  # SHOW_TEXT is bulk: the cycle's bulk slot
    frame = sent(link.handle(CommandSlot(bulk=True), 0.0))
    assert frame.NAME == "SHOW_TEXT" and list(frame.lines) == list(both(REFUSAL_MESSAGE[reason]))
    assert frame.lines[0] != frame.lines[1]


def test_a_lost_reply_is_retried_with_the_same_bytes_after_10_20_40_ms_then_fails() -> None:
    link = online()
    link.handle(OfficeOutcome(ShowCall("B023", "3", recall=False)), 0.0)
    first = sent(link.handle(CommandSlot(), 0.0)).to_bytes()
    now = 0.0
    for delay in (0.010, 0.020, 0.040):
        assert link.handle(NoReply(), now) == []
        assert link.busy and link.handle(PollSlot(), now) == []  # no poll while backing off
        assert not link.wants(now + delay - 0.0005)
        now += delay
        assert link.wants(now)
        assert sent(link.handle(CommandSlot(), now)).to_bytes() == first
    effects = link.handle(NoReply(), now)
    assert [e.name for e in effects if isinstance(e, CommandFailed)] == ["CALL"]
    assert changes(effects) == [("online", "degraded")]
    assert not link.busy and link.failures == 1 and link.retries == 3


def test_nak_busy_is_retried_and_other_naks_are_final() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5)
    link.handle(OfficeOutcome(ShowCall("B-023", "3", recall=False)), 0.0)
    f = sent(link.handle(CommandSlot(), 0.0))
    assert f.NAME == "DISPLAY_NUMBER" and f.text == "B023"
    assert link.handle(Replied(P.Nak(5, f.seq, P.NAK_BUSY)), 0.0) == []
    assert link.busy
    g = sent(link.handle(CommandSlot(), 0.01))
    assert g.seq == f.seq
    link.handle(Replied(P.Ack(5, g.seq)), 0.01)
    h = sent(link.handle(CommandSlot(), 0.01))
    assert h.NAME == "STATUS_LAMP"
    effects = link.handle(Replied(P.Nak(5, h.seq, P.NAK_OUT_OF_RANGE)), 0.01)
    assert [e.reason for e in effects if isinstance(e, CommandFailed)] == ["NAK reason 2"]
    assert not link.busy


def test_two_missed_polls_make_it_offline_and_commands_wait_for_its_return() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5)
    sent(link.handle(PollSlot(), 0.0))
    assert changes(link.handle(NoReply(), 0.0)) == [("online", "degraded")]
    sent(link.handle(PollSlot(), 0.1))
    assert changes(link.handle(NoReply(), 0.1)) == [("degraded", "offline")]
    link.handle(OfficeOutcome(ShowCall("B-023", "3", recall=False)), 0.2)
    assert not link.wants(0.2)  # not sent while offline
    poll = sent(link.handle(PollSlot(), 0.2))  # still polled every cycle
    assert poll.NAME == "POLL"
    effects = link.handle(Replied(P.Ack(5, poll.seq)), 0.2)
    assert changes(effects) == [("offline", "identified")]
    names = []
    while link.wants(0.2):
        f = sent(link.handle(CommandSlot(), 0.2))
        names.append((f.NAME, f.fields()))
        effects = link.handle(Replied(P.Ack(5, f.seq)), 0.2)
    assert names == [("DISPLAY_NUMBER", {"text": "B023"}), ("STATUS_LAMP", {"colour": P.LAMP_GREEN, "blink": 0})]
    assert changes(effects) == [("identified", "online")]


def test_hello_to_a_poll_means_a_restart_identify_goes_out_at_once() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5)
    link.tracker.ack = 9
    link.handle(OfficeOutcome(ShowCall("B-023", "3", recall=False)), 0.0)  # queued, then the device resets
    poll = sent(link.handle(PollSlot(), 0.0))
    effects = link.handle(Replied(hello(5, poll.seq, P.KIND_COUNTER_PAD, cause=P.RESET_WATCHDOG)), 0.0)
    assert changes(effects) == [("online", "connecting")]
    assert link.tracker.ack == 0
    assert link.wants(0.0)
    ident = sent(link.handle(CommandSlot(), 0.0))
    assert ident.NAME == "IDENTIFY"
    link.handle(Replied(hello(5, ident.seq, P.KIND_COUNTER_PAD, cause=P.RESET_WATCHDOG)), 0.0)
    assert link.state is LinkState.IDENTIFIED
    assert sent(link.handle(CommandSlot(), 0.0)).NAME == "DISPLAY_NUMBER"  # its whole state again


def test_a_device_of_another_kind_is_reported_and_not_taken_online() -> None:
    link = DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, counter="3"), lambda: "tok")
    frame = sent(link.handle(PollSlot(), 0.0))
    effects = link.handle(Replied(hello(5, frame.seq, P.KIND_DISPENSER)), 0.0)
    assert next(e for e in effects if isinstance(e, CommandFailed)).reason.startswith("a dispenser answered")
    assert link.state is LinkState.CONNECTING
    assert sent(link.handle(PollSlot(), 0.1)).NAME == "IDENTIFY"


def test_types_beyond_the_devices_caps_are_not_sent() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5, caps=P.CAP_NUMBER)  # no status lamp
    link.handle(OfficeOutcome(ShowCall("B-023", "3", recall=False)), 0.0)
    assert sent(link.handle(CommandSlot(), 0.0)).NAME == "DISPLAY_NUMBER"
    link.handle(Replied(P.Ack(5, link.seq)), 0.0)
    assert not link.wants(0.0)


def test_an_office_refusal_lights_the_pad_red() -> None:
    link = online(P.KIND_COUNTER_PAD, addr=5)
    effects = link.handle(CommandRejected("counter_paused", "counter 3 is paused"), 0.0)
    assert [e.reason for e in effects if isinstance(e, CommandFailed)] == ["counter_paused: counter 3 is paused"]
    f = sent(link.handle(CommandSlot(), 0.0))
    assert (f.NAME, f.colour, f.blink) == ("STATUS_LAMP", P.LAMP_RED, 1)


def test_lamps_are_sent_only_when_they_change() -> None:
    link = online(P.KIND_DISPENSER, addr=1)
    link.handle(SetLamps(frozenset({"seal"})), 0.0)
    assert sent(link.handle(CommandSlot(), 0.0)).mask == 0b010
    link.handle(Replied(P.Ack(1, link.seq)), 0.0)
    link.handle(SetLamps(frozenset({"seal", "unknown"})), 1.0)
    assert not link.wants(1.0)


def test_a_long_counter_label_is_clipped_to_fit_a_call() -> None:
    link = DeviceLink(
        DeviceSpec(16, P.KIND_CALL_DISPLAY), lambda: "tok", counter_label=lambda c: "証明書交付窓口その" + c
    )
    link.handle(Replied(hello(16, sent(link.handle(PollSlot(), 0.0)).seq, P.KIND_CALL_DISPLAY)), 0.0)
    link.handle(OfficeOutcome(ShowCall("A-001", "12", recall=False)), 0.0)
    frame = sent(link.handle(CommandSlot(), 0.0))
    assert frame.counter == "証明書交付" and len(frame.counter.encode()) <= 16


def test_keys_map_to_office_commands() -> None:
    assert key_command(P.KEY_CALL_NEXT, 0, "3", SERVICES) == CallNext("3")
    assert key_command(P.KEY_TRANSFER, 2, "3", SERVICES) == Transfer(to_service="certificate", counter="3")
    assert key_command(P.KEY_TRANSFER, 7, "3", SERVICES) is None
    assert key_command(P.KEY_PAUSE, 0, "3", SERVICES) == PauseCounter("3")


def test_display_numbers_and_recent_lists_fit_their_frames() -> None:
    assert display_number("B-023") == "B023" and display_number("A-1000") == "1000" and display_number("C1") == "  C1"
    entries = [(f"A-{i:03d}", "12番窓口") for i in range(8)]
    fitted = fit_recent(entries)
    assert 0 < len(fitted) < 8 and fitted == entries[: len(fitted)]
    P.Recent(16, 0, fitted)  # fits: the codec would raise otherwise


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"addr": 0, "kind": P.KIND_DISPENSER}, "address 0"),
        ({"addr": 1, "kind": 9}, "kind 9"),
        ({"addr": 5, "kind": P.KIND_COUNTER_PAD}, "needs its counter"),
        ({"addr": 1, "kind": P.KIND_DISPENSER, "services": tuple("abcdefghijklmnopq")}, "at most 16"),
    ],
)
def test_a_bad_device_spec_names_the_problem(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DeviceSpec(**kwargs)


_STEP = st.sampled_from(["poll", "cmd", "bulk", "ack", "nak_busy", "none", "hello", "call", "key", "lost"])


@given(st.lists(_STEP, max_size=60))
def test_any_sequence_of_events_keeps_one_request_in_flight_and_never_raises(steps: list[str]) -> None:
    link = DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), lambda: "tok")
    inflight: Any = None
    now = 0.0
    for step in steps:
        now += 0.005
        if step in ("poll", "cmd", "bulk"):
            event = PollSlot() if step == "poll" else CommandSlot(bulk=step == "bulk")
            effects = link.handle(event, now)
            frames = [e.frame for e in effects if isinstance(e, Transmit)]
            assert len(frames) <= 1
            if frames:
                assert inflight is None  # never two requests at once
                inflight = frames[0]
        elif step in ("ack", "nak_busy", "none", "hello", "key") and inflight is not None:
            reply = {
                "ack": P.Ack(16, inflight.seq),
                "nak_busy": P.Nak(16, inflight.seq, P.NAK_BUSY),
                "hello": hello(16, inflight.seq, P.KIND_CALL_DISPLAY),
                "key": P.Ack(16, inflight.seq),
            }.get(step)
            link.handle(Replied(reply) if reply is not None else NoReply(), now)
            inflight = None
        elif step == "call":
            link.handle(OfficeOutcome(ShowCall("A-001", "1", recall=False)), now)
        elif step == "lost":
            link.handle(PortLost("gone"), now)
            inflight = None  # its reply can never come
            assert link.state is LinkState.OFFLINE
        assert isinstance(link.state, LinkState)
        if link.state is LinkState.OFFLINE:
            assert not link.wants(now) and not link.wants(now, bulk=True)


def test_a_display_seen_again_after_being_offline_gets_its_current_call_back_quietly() -> None:
    """A CALL is one-off: it is not resent. The resync's RECENT carries the current call first,
    which the display shows without a chime (docs/protocol.md, RECENT)."""
    link = online()
    link.handle(OfficeOutcome(ShowCall("A-101", "1", recall=False)), 0.0)
    frame = sent(link.handle(CommandSlot(), 0.0))
    link.handle(Replied(P.Ack(16, frame.seq)), 0.0)
    for t in (0.1, 0.2):  # two polls unanswered: offline
        sent(link.handle(PollSlot(), t))
        link.handle(NoReply(), t)
    assert link.state is LinkState.OFFLINE
    link.handle(OfficeOutcome(ShowCall("B-002", "2", recall=False)), 0.3)  # called while it is away
    assert not link.wants(0.3)
    poll = sent(link.handle(PollSlot(), 0.4))
    link.handle(Replied(P.Ack(16, poll.seq)), 0.4)  # back, without a reboot
    assert link.state is LinkState.IDENTIFIED
    assert not link.wants(0.4)  # no CALL goes again: it would chime a second time
    frame = sent(link.handle(CommandSlot(bulk=True), 0.4))
    assert frame.NAME == "RECENT"
    assert [tuple(e) for e in frame.entries] == [("B-002", "2"), ("A-101", "1")]  # current first, once
    link.handle(Replied(P.Ack(16, frame.seq)), 0.4)
    assert link.state is LinkState.ONLINE


def test_after_a_recall_the_resync_list_puts_the_recalled_ticket_first_and_once() -> None:
    link = online()
    for ticket, recall in (("A-101", False), ("B-002", False), ("A-101", True)):
        link.handle(OfficeOutcome(ShowCall(ticket, "1", recall=recall)), 0.0)
    assert link.recent == [("B-002", "1"), ("A-101", "1")]
    assert link.resync_recent() == [("A-101", "1"), ("B-002", "1")]
    poll = sent(link.handle(PollSlot(), 0.0))
    link.handle(Replied(hello(16, poll.seq, P.KIND_CALL_DISPLAY)), 0.0)  # a HELLO to a POLL: it rebooted
    sent(link.handle(CommandSlot(), 0.0))  # IDENTIFY at once
    link.handle(Replied(hello(16, link.seq, P.KIND_CALL_DISPLAY)), 0.0)
    frame = sent(link.handle(CommandSlot(bulk=True), 0.0))
    assert frame.to_bytes() == P.Recent(16, frame.seq, [("A-101", "1"), ("B-002", "1")]).to_bytes()


def test_a_lost_port_makes_the_link_offline_at_once_and_the_call_in_flight_comes_back_quietly() -> None:
    link = online()
    link.handle(OfficeOutcome(ShowCall("A-101", "1", recall=False)), 0.0)
    call = sent(link.handle(CommandSlot(), 0.0))
    assert call.NAME == "CALL"
    effects = link.handle(PortLost("[Errno 5] Input/output error"), 0.001)  # the adapter is pulled
    assert changes(effects) == [("online", "offline")]
    assert [e.why for e in effects if isinstance(e, StateChanged)] == ["port lost: [Errno 5] Input/output error"]
    assert not link.wants(0.1) and link.pending == 0  # the CALL is not retried into a dead port
    link.handle(OfficeOutcome(ShowCall("B-002", "2", recall=False)), 0.2)  # called meanwhile
    poll = sent(link.handle(PollSlot(), 1.0))  # the port is back
    assert poll.NAME == "POLL"
    link.handle(Replied(P.Ack(16, poll.seq)), 1.0)
    assert link.state is LinkState.IDENTIFIED and not link.wants(1.0)  # no CALL: it would chime again
    recent = sent(link.handle(CommandSlot(bulk=True), 1.0))
    assert [tuple(e) for e in recent.entries] == [("B-002", "2"), ("A-101", "1")]
    link.handle(Replied(P.Ack(16, recent.seq)), 1.0)
    assert link.state is LinkState.ONLINE


# -- a call display and the business day ------------------------------------------------------------
def _deliver(link: DeviceLink, now: float = 0.0) -> list[Any]:
    """Every frame the link wants to send now, each acknowledged."""
    frames = []
    for bulk in (False, True):
        while link.wants(now, bulk):
            f = sent(link.handle(CommandSlot(bulk), now))
            link.handle(Replied(P.Ack(link.addr, f.seq)), now)
            frames.append(f)
    return frames


def test_a_new_business_day_blanks_a_call_display_and_the_same_day_changes_nothing() -> None:
    link = DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY, ()), lambda: "tok", counter_label=lambda c: f"{c}番窓口")
    # The gateway starts on a day whose journal has calls: the display, once it answers, is
    # given those (it may still show another day's, kept on its flash), newest first.
    link.handle(TodaysCalls(date(2027, 3, 15), (("C-002", "7"), ("C-001", "6"))), 0.0)
    frame = sent(link.handle(PollSlot(), 0.0))
    link.handle(Replied(hello(16, frame.seq, P.KIND_CALL_DISPLAY)), 0.0)
    [recent] = _deliver(link)
    assert recent.NAME == "RECENT" and list(recent.entries) == [("C-002", "7番窓口"), ("C-001", "6番窓口")]
    assert link.current == ("C-002", "7番窓口")
    link.handle(OfficeOutcome(ShowCall("C-003", "6", False)), 1.0)
    assert [f.NAME for f in _deliver(link, 1.0)] == ["CALL"]
    # The same day again (every lamp refresh): nothing is sent, the calls stay.
    link.handle(TodaysCalls(date(2027, 3, 15)), 2.0)
    assert _deliver(link, 2.0) == [] and link.current == ("C-003", "6番窓口")
    # Midnight: a new day with no calls yet blanks it, and a resync later blanks it again.
    link.handle(TodaysCalls(date(2027, 3, 16)), 3.0)
    [clear] = _deliver(link, 3.0)
    assert clear.NAME == "CLEAR" and link.current is None and link.recent == []
    link.handle(PortLost("unplugged"), 4.0)
    poll = sent(link.handle(PollSlot(), 5.0))  # back: a HELLO answers the poll (it rebooted)
    link.handle(Replied(hello(16, poll.seq, P.KIND_CALL_DISPLAY, cause=P.RESET_WATCHDOG)), 5.0)
    identify = sent(link.handle(CommandSlot(), 5.0))
    assert identify.NAME == "IDENTIFY"
    link.handle(Replied(hello(16, identify.seq, P.KIND_CALL_DISPLAY, cause=P.RESET_WATCHDOG)), 5.0)
    assert [f.NAME for f in _deliver(link, 5.0)] == ["CLEAR"]
    # The day's first call puts the display's list back in the resync.
    link.handle(OfficeOutcome(ShowCall("A-001", "1", False)), 6.0)
    assert [f.NAME for f in _deliver(link, 6.0)] == ["CALL"]
    assert link.resync_recent() == [("A-001", "1番窓口")]


def test_a_new_business_day_blanks_a_counter_pad_unless_its_counter_called_that_day() -> None:
    pad = online(P.KIND_COUNTER_PAD, addr=5, counter="3")
    pad.handle(OfficeOutcome(ShowCall("B-023", "3", False)), 0.0)
    _deliver(pad)
    # A start on a day when counter 3 has called: its latest number, green, as after the call.
    day = TodaysCalls(date(2027, 3, 15), (("A-004", "1"), ("B-024", "3")), (("1", "A-004"), ("3", "B-024")))
    pad.handle(day, 1.0)
    assert [(f.NAME, getattr(f, "text", None)) for f in _deliver(pad, 1.0)] == [
        ("DISPLAY_NUMBER", "B024"),
        ("STATUS_LAMP", None),
    ]
    pad.handle(day, 2.0)  # the same day: nothing
    assert _deliver(pad, 2.0) == []
    pad.handle(TodaysCalls(date(2027, 3, 16), (("A-001", "1"),), (("1", "A-001"),)), 3.0)  # another counter's call
    number, lamp = _deliver(pad, 3.0)
    assert (number.text, lamp.colour, lamp.blink) == ("    ", P.LAMP_OFF, 0)


def test_todays_calls_leave_a_dispenser_alone() -> None:
    link = online(P.KIND_DISPENSER, addr=3)
    link.handle(TodaysCalls(date(2027, 3, 16)), 1.0)
    assert _deliver(link, 1.0) == [] and link.current is None


# -- RESTART and other maintenance requests (protocol version 3) -------------------------------------
def test_restart_goes_out_once_and_its_ack_is_told_with_the_token() -> None:
    link = online()
    assert link.maintenance("RESTART", lambda a, s: P.Restart(a, s), "mqtt:r1") is None
    frame = sent(link.handle(CommandSlot(), 1.0))
    assert frame.NAME == "RESTART" and frame.to_bytes() == P.Restart(16, frame.seq).to_bytes()
    effects = link.handle(Replied(P.Ack(16, frame.seq)), 1.0)
    assert CommandDone(16, "RESTART", "mqtt:r1") in effects
    assert not link.wants(1.0)  # sent once: not part of what the device shows


def test_a_restart_never_acked_fails_with_its_token_after_the_retries() -> None:
    link = online()
    link.maintenance("RESTART", lambda a, s: P.Restart(a, s), "mqtt:r2")
    now, effects = 1.0, []
    for _ in range(1 + P.MAX_RETRIES):
        while not link.wants(now):
            now += 0.01
        sent(link.handle(CommandSlot(), now))
        effects += link.handle(NoReply(), now)
    failed = [e for e in effects if isinstance(e, CommandFailed)]
    assert len(failed) == 1 and failed[0].token == "mqtt:r2" and failed[0].name == "RESTART"


def test_restart_is_refused_offline_before_identify_and_to_a_version_2_board() -> None:
    link = DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), lambda: "tok")
    assert link.maintenance("RESTART", lambda a, s: P.Restart(a, s), "t") == "not identified yet"
    frame = sent(link.handle(PollSlot(), 0.0))
    v2 = P.Hello(16, frame.seq, 2, P.KIND_CALL_DISPLAY, (1, 0, 3), 0xFF, P.RESET_POWER_ON, 7, 0)
    link.handle(Replied(v2), 0.0)
    assert link.identity is not None and link.identity.proto == 2
    why = link.maintenance("RESTART", lambda a, s: P.Restart(a, s), "t")
    assert why is not None and "protocol 2" in why
    for _ in range(P.OFFLINE_AFTER_MISSED_POLLS):
        while link.wants(0.0):
            f = sent(link.handle(CommandSlot(), 0.0))
            link.handle(Replied(P.Ack(16, f.seq)), 0.0)
        sent(link.handle(PollSlot(), 0.0))
        link.handle(NoReply(), 0.0)
    assert link.state is LinkState.OFFLINE
    assert link.maintenance("RESTART", lambda a, s: P.Restart(a, s), "t") == "offline"
