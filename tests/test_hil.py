"""Hardware in the loop: the gateway (BusMaster + SyncDriver + a TicketJournal on SQLite, the
nerima config, Monday 2027-03-15 10:00 Tokyo on a simulated clock) and the three real board
firmwares in MicroPython processes, on pty pairs joined by a hub (hal.bus_hub). Faults are put on
the hub's lines; recovery is counted in bus cycles (tests/hil_support.py explains the clocks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.bus import offered_services
from gateway.device_link import LinkState, StateChanged
from hal.codec import P
from office.config import OfficeConfig
from tests.conftest import EXAMPLES, tokyo
from tests.hil_support import MICROPYTHON, Board, Floor

MONDAY_10 = tokyo(2027, 3, 15, 10, 0)
COUNTER_LABEL = "1番窓口"
RELEASE_S = 0.08  # a finger's release, longer than the boards' 30 ms debounce

pytestmark = pytest.mark.skipif(not MICROPYTHON.exists(), reason="MicroPython Unix port not installed (uv sync)")


@pytest.fixture
def floor(nerima: OfficeConfig, tmp_path: Path) -> Iterator[Floor]:
    f = Floor(nerima, (EXAMPLES / "nerima.toml").read_text(encoding="utf-8"), MONDAY_10, tmp_path)
    try:
        f.start_boards()
        f.bus.set_offered(offered_services(nerima, f.wall()), f.clock.now())
        f.until(f.all_online, "every board online")
        yield f
    finally:
        f.close()


def press(floor: Floor, board: Board, pin: str, done: object, what: str) -> int:
    """Hold `pin` down until `done()` holds (running the bus), then release it; cycles taken."""
    board.send(f"down {pin}")
    cycles = floor.until(done, what)  # type: ignore[arg-type]
    board.send(f"up {pin}")
    floor.wait_line(board, f"pin {pin} up", run_bus=True)
    released = time.monotonic() + RELEASE_S
    floor.until(lambda: time.monotonic() >= released, "release")
    return cycles


def issue(floor: Floor, button: int) -> str:
    before = len(floor.issued())
    press(floor, floor.boards["dispenser"], f"button{button}", lambda: len(floor.issued()) > before, "ticket")
    return floor.issued()[-1]


def call_next(floor: Floor) -> str:
    before = len(floor.called())
    press(floor, floor.boards["counter_pad"], f"key{P.KEY_CALL_NEXT}", lambda: len(floor.called()) > before, "call")
    return floor.called()[-1]


def display_shows(floor: Floor, ticket: str) -> bool:
    shown = floor.boards["call_display"].shown()
    return shown is not None and shown["call"] == [ticket, COUNTER_LABEL]


def calls_chimed(floor: Floor) -> int:
    return sum(line == f"chime {P.TONE_CALL} 1" for line in floor.boards["call_display"].chimes())


def test_a_press_issues_a_ticket_and_call_next_shows_it_on_the_display(floor: Floor) -> None:
    ticket = issue(floor, 1)  # seal
    assert ticket == "B-001"
    floor.cycles(1)
    assert floor.printed() == ["B-001"]
    assert floor.journal.office.state.tickets["B-001"].service == "seal"

    assert call_next(floor) == "B-001"
    floor.until(lambda: display_shows(floor, "B-001"), "the display shows the call")
    display = floor.boards["call_display"]
    floor.until(lambda: display.shown()["recent"] != [], "the recent list")  # type: ignore[index]
    assert floor.boards["call_display"].shown() == {
        "call": ["B-001", COUNTER_LABEL],
        "recent": [["B-001", COUNTER_LABEL]],
        "message": [],
    }
    assert calls_chimed(floor) == 1
    assert floor.issued() == ["B-001"] and floor.called() == ["B-001"]
    assert floor.bus.timeouts == 0


def test_a_pulled_cable_and_replugging_is_back_online_within_two_cycles(floor: Floor) -> None:
    for kind in ("dispenser", "counter_pad", "call_display"):
        line = floor.boards[kind].line.line
        line.pulled = True
        floor.until(lambda k=kind: floor.state(k) is LinkState.OFFLINE, f"{kind} offline")  # type: ignore[misc]
        line.pulled = False
        cycles = floor.until(lambda k=kind: floor.state(k) is LinkState.ONLINE, f"{kind} online")  # type: ignore[misc]
        print(f"pulled cable, {kind}: online again after {cycles} cycle(s)")
        assert cycles <= 2
    # The dispenser's lamps and the rest of its state were sent again: a press still works.
    assert issue(floor, 0) == "A-001"
    assert floor.issued() == ["A-001"]


@pytest.mark.parametrize("outage", ["quick", "until_offline"])
def test_a_display_rebooted_mid_call_shows_the_call_at_most_once_and_is_back_within_two_cycles(
    floor: Floor, outage: str
) -> None:
    """The display's process is killed when half of a CALL has reached it, and started again on
    the same pty and flash: at once ("quick": the CALL's retries are still going), or after the
    gateway has counted it offline (the CALL has failed). Either way the resync's RECENT brings
    back the list and the current call, quietly: the call is announced at most once."""
    ticket = issue(floor, 0)
    display = floor.boards["call_display"]
    decoder = P.Decoder()
    cut: list[bytes] = []

    def half_a_call(data: bytes) -> bytes:
        if cut:
            return data
        for frame in decoder.feed(data):
            if frame.TYPE == P.Call.TYPE and frame.addr == display.addr:
                wire = bytes(frame.to_bytes())
                cut.append(wire)
                display.line.line.pulled = True  # the board is dying: nothing more reaches it
                return data[: max(0, len(data) - len(wire) + len(wire) // 2)]
        return data

    display.line.intercept = half_a_call
    before = calls_chimed(floor)
    pad = floor.boards["counter_pad"]
    pad.send(f"down key{P.KEY_CALL_NEXT}")
    floor.until(lambda: bool(cut), "the CALL goes out")
    display.kill()  # mid-message
    if outage == "until_offline":
        floor.until(lambda: floor.state("call_display") is LinkState.OFFLINE, "display offline")
    display.start()
    floor.wait_line(display, "ready ", run_bus=True)
    display.line.flush()
    display.line.line.pulled = False  # the fault ends: the board listens again
    mark = len(floor.effects)

    def seen_afresh_and_online() -> bool:
        changes = [(e.old, e.new) for e in floor.effects[mark:] if isinstance(e, StateChanged) and e.addr == 16]
        return (LinkState.IDENTIFIED, LinkState.ONLINE) in changes

    cycles = floor.until(seen_afresh_and_online, "display identified again and online")
    print(f"display rebooted mid-CALL ({outage}): identified and online after {cycles} cycle(s)")
    assert cycles <= 2
    pad.send(f"up key{P.KEY_CALL_NEXT}")
    floor.cycles(3)
    assert floor.called() == [ticket]  # one call in the journal
    shown = display.shown()
    assert shown is not None and shown["recent"] == [[ticket, COUNTER_LABEL]]
    assert shown["call"] == [ticket, COUNTER_LABEL]  # the current call is restored (by the RECENT)
    assert calls_chimed(floor) - before <= 1  # shown (and chimed) at most once
    assert floor.all_online()
    print(f"  display shows call={shown['call']}, chimes for it: {calls_chimed(floor) - before}")


def test_a_rebooted_board_says_its_next_boot_number_and_its_presses_from_ev_1_are_new(floor: Floor) -> None:
    """The boot number is kept on the board's flash (slots.boot_number): after a restart of its
    process it is one more, so its events, numbered from 1 again, are not taken for the presses
    the journal holds from the boot before."""
    link = floor.bus.by_addr[1]
    boot = link.boot
    assert boot != 0
    first = issue(floor, 0)
    floor.reboot("dispenser")
    floor.until(lambda: link.boot == boot + 1 and link.state is LinkState.ONLINE, "the dispenser's new boot")
    second = issue(floor, 0)
    assert floor.issued() == [first, second] and first != second
    assert floor.bus.presses_again == 0
    assert int((floor.boards["dispenser"].flash / "boot_number").read_text(encoding="ascii")) == boot + 1


@pytest.mark.parametrize("seed", [1, 2])
def test_a_noisy_bus_loses_nothing_and_doubles_nothing(floor: Floor, seed: int) -> None:
    """1 byte in 1,000 corrupted and 1 in 2,000 dropped on every line, both directions, while
    tickets are issued and called; then every board is online within two cycles of the noise
    ending."""
    for i, board in enumerate(floor.boards.values()):
        board.line.line.rng.seed(seed * 100 + i)
        board.line.line.corrupt, board.line.line.drop = 0.001, 0.0005
    tickets = [issue(floor, i % 2) for i in range(4)]  # move, seal: what counter 1 serves
    called = [call_next(floor) for _ in range(3)]
    floor.cycles(150)
    lines = [b.line.line for b in floor.boards.values()]
    for line in lines:
        line.corrupt = line.drop = 0.0
    start = floor.bus.cycles
    floor.until(floor.all_online, "every board online")
    print(
        f"noise seed {seed}: corrupted {sum(x.corrupted for x in lines)}, dropped "
        f"{sum(x.dropped for x in lines)}, timeouts {floor.bus.timeouts}, cycles {floor.bus.cycles}; "
        f"online {floor.bus.cycles - start} cycle(s) after"
    )
    assert floor.bus.cycles - start <= 2
    assert sum(x.corrupted for x in lines) > 0  # the faults did bite
    floor.cycles(3)
    assert floor.issued() == tickets and len(set(tickets)) == 4
    assert sorted(floor.printed()) == sorted(tickets)
    assert floor.called() == called and len(set(called)) == 3 and set(called) <= set(tickets)  # one call each
    assert display_shows(floor, called[-1])
    assert calls_chimed(floor) <= 3
