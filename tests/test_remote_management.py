"""Remote management (issue 13): a new office config checked, stored with the old one kept and
applied at once (TicketJournal.change_config, Gateway.reconfigure, `push_config`, `counterfloor
office reconfigure`); a message on the dispensers, below their other words (`dispenser_message`);
each device's state with its link's error counters (Gateway.device_state, `…/devices/<device>`).

The journal and the links run on fake clocks; the MQTT tests on a real Mosquitto, stepping the
gateway until a condition holds within a real-time bound: no sleeps."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from counterfloor.cli import main
from gateway import service
from gateway.bus import BusMaster
from gateway.config_change import change_problem, changed_parts, restart_needed
from gateway.device_link import (
    CommandSlot,
    DeviceLink,
    DeviceSpec,
    OfficeOutcome,
    PollSlot,
    Replied,
    SetLamps,
    SetMessage,
    SetPrinter,
)
from gateway.journal import CONFIG_SET_OVER, JournalReader, TicketJournal, config_sha256, new_token
from gateway.mode_words import RECEPTION_OVER
from hal.codec import P
from hal.printer_sim import SimPrinter
from office import events as ev
from office import mqtt as schema
from office.config import parse_config
from office.estimate import WaitRange
from office.model import (
    CallNext,
    IssueRefused,
    IssueTicket,
    Office,
    OpenCounter,
    SetDispenserMessage,
    StartDay,
    TicketReady,
)
from office.state import ALL_DISPENSERS, OfficeState
from signage.catalog import both
from tests.conftest import EXAMPLES, run_cli, tokyo
from tests.floor_support import HeldClock, floor_without_devices, held_gateway, running_gateway
from tests.journal_support import comparable
from tests.mqtt_support import MosquittoBroker, plain_mosquitto
from tests.test_device_link import hello, online, sent
from tests.test_mqtt_gateway import Floor, View, answer, cmd, send, start_floor, subscribe
from tests.test_printing import ASK_STAFF, start_gateway

OIZUMI_TEXT = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
MONDAY_10 = tokyo(2027, 3, 15, 10, 0)
SAFETY_S = 20.0
# Changes the model applies at once: a service's typical time (the estimator), the evening's end
# (today's plan: a new schedule follows).
LIVE_CHANGE = (("typical_minutes = 20", "typical_minutes = 25"), ('to = "19:00" }\n', 'to = "20:00" }\n'))


def changed(text: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


class Wall:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def a_morning(journal: TicketJournal, wall: Wall) -> None:
    """Tickets of three services, two counters open, two calls: a floor in full swing."""
    for sid in ("move", "move", "seal", "certificate", "move"):
        journal.execute(IssueTicket(sid, new_token()), wall.at)
        wall.at += timedelta(minutes=1)
    journal.execute(OpenCounter("1"), wall.at)
    journal.execute(OpenCounter("3"), wall.at)
    journal.execute(CallNext("1"), wall.at)
    journal.execute(CallNext("3"), wall.at)


# -- the journal: a new config in force at once, the old one kept -------------------------------
def test_a_new_config_is_in_force_at_once_and_every_ticket_and_number_stays(tmp_path: Path) -> None:
    path, wall = tmp_path / "j.db", Wall(MONDAY_10)
    config = parse_config(OIZUMI_TEXT)
    with TicketJournal.create(path, config, OIZUMI_TEXT, clock=wall) as j:
        a_morning(j, wall)
        before = comparable(j.office.state)
        estimator = j.office.estimator
        old_move = j.office.estimator.estimate(j.office.state, "move", 2, wall.at)
        text = changed(OIZUMI_TEXT, *LIVE_CHANGE)
        d = j.change_config(parse_config(text), text, via="socket", restart_needed=("devices",))
        assert [e.TYPE for e in d.events] == ["config_changed", "schedule"]
        change, schedule = d.events
        assert isinstance(change, ev.ConfigChanged) and isinstance(schedule, ev.Schedule)
        assert (change.sha256, change.previous_sha256) == (config_sha256(text), config_sha256(OIZUMI_TEXT))
        assert (change.via, change.sender, change.restart_needed) == ("socket", None, ["devices"])
        assert schedule.closes == "20:00" and not schedule.new_day
        state = j.office.state
        # Every ticket, number, counter and call as it was; only the two new events and the plan.
        assert comparable(state)[4:] == before[4:] and state.last_seq == before[1] + 2
        assert j.office.config.service("move").typical_minutes == 25
        assert j.office.estimator is not estimator  # rebuilt under the new config
        assert j.office.estimator.estimate(state, "move", 2, wall.at).high_minutes > old_move.high_minutes
        # The next ticket goes on from the numbers of the day.
        issued = j.execute(IssueTicket("move", new_token()), wall.at).events[0]
        assert isinstance(issued, ev.TicketIssued) and issued.ticket == "A-004"
        # The old config is kept, with the seq it was in force up to.
        ((_, seq, sha, old_text),) = j.config_history()
        assert (seq, sha, old_text) == (before[1], config_sha256(OIZUMI_TEXT), OIZUMI_TEXT)
        assert j.get_meta("config") == text and j.get_meta(CONFIG_SET_OVER) == config_sha256(OIZUMI_TEXT)
        live = comparable(j.office.state)
        assert j.change_config(parse_config(text), text, via="socket").events == []  # the same again: nothing
    with TicketJournal.open(path, clock=wall) as j:  # recovered under the stored (new) config
        assert comparable(j.office.state) == live and j.office.config.service("move").typical_minutes == 25


def test_a_restart_with_the_file_a_config_was_pushed_over_keeps_it_and_a_changed_file_wins(tmp_path: Path) -> None:
    path, wall = tmp_path / "j.db", Wall(MONDAY_10)
    file_config = parse_config(OIZUMI_TEXT, source=str(tmp_path / "office.toml"))
    pushed = changed(OIZUMI_TEXT, LIVE_CHANGE[0])
    with TicketJournal.create(path, file_config, OIZUMI_TEXT, clock=wall) as j:
        j.execute(IssueTicket("move", new_token()), wall.at)
        j.change_config(parse_config(pushed), pushed, via="mqtt")
        last = j.office.state.last_seq
    with TicketJournal.open(path, (file_config, OIZUMI_TEXT), clock=wall) as j:  # the gateway's restart
        assert j.config_kept and j.office.config.service("move").typical_minutes == 25
        assert j.office.config.source == file_config.source  # its relative paths are the file's
        assert j.office.state.last_seq == last and j.get_meta("config") == pushed
    edited = changed(OIZUMI_TEXT, ("typical_minutes = 8", "typical_minutes = 9"))
    with TicketJournal.open(path, (parse_config(edited), edited), clock=wall) as j:  # the file was edited
        assert not j.config_kept and j.office.config.service("seal").typical_minutes == 9
        assert j.office.config.service("move").typical_minutes == 20
        events = j.events_after(last, 10)
        assert [e.TYPE for e in events] == ["config_changed"] and events[0].via == "file"  # type: ignore[attr-defined]
        assert j.get_meta(CONFIG_SET_OVER) is None
        assert [sha for _, _, sha, _ in j.config_history()] == [config_sha256(OIZUMI_TEXT), config_sha256(pushed)]


def test_a_failed_store_leaves_the_model_and_the_journal_as_they_were(tmp_path: Path) -> None:
    path, wall = tmp_path / "j.db", Wall(MONDAY_10)
    with TicketJournal.create(path, parse_config(OIZUMI_TEXT), OIZUMI_TEXT, clock=wall) as j:
        a_morning(j, wall)
        office, before = j.office, comparable(j.office.state)
        text = changed(OIZUMI_TEXT, *LIVE_CHANGE)
        j.conn.execute("DROP TABLE config_history")  # the history row cannot be written
        with pytest.raises(sqlite3.OperationalError):
            j.change_config(parse_config(text), text, via="socket")
        assert j.office is office and comparable(j.office.state) == before
        assert j.get_meta("config") == OIZUMI_TEXT and j.events_after(before[1], 5) == []


# -- the model: the dispensers' messages ---------------------------------------------------------
def test_dispenser_messages_for_all_and_one_are_kept_across_days_and_snapshots(tmp_path: Path) -> None:
    path, wall = tmp_path / "j.db", Wall(MONDAY_10)
    with TicketJournal.create(path, parse_config(OIZUMI_TEXT), OIZUMI_TEXT, clock=wall) as j:
        every = ("本日は混雑しています", "Busy today")
        own = ("証明書は2番へ", "Certificates: counter 2")
        j.execute(SetDispenserMessage(None, every), wall.at)
        j.execute(SetDispenserMessage("0-1", own), wall.at)
        assert j.office.state.dispenser_messages == {ALL_DISPENSERS: every, "0-1": own}
        assert j.execute(SetDispenserMessage("0-1", own), wall.at).events[0].TYPE == "dispenser_message"  # asked again
        j.execute(SetDispenserMessage("0-1", ()), wall.at)  # its own cleared: the one for all again
        assert j.office.state.dispenser_messages == {ALL_DISPENSERS: every}
        j.execute(SetDispenserMessage("0-2", own), wall.at)
        j.snapshot()
        restored = OfficeState.from_snapshot(json.loads(json.dumps(j.office.state.to_snapshot())))
        assert restored.dispenser_messages == j.office.state.dispenser_messages
        wall.at += timedelta(days=1)
        d = j.execute(StartDay(), wall.at)  # a new day carries them in its schedule
        assert d.events[0].messages == {"*": list(every), "0-2": list(own)}  # type: ignore[attr-defined]
        j.execute(SetDispenserMessage(None, ()), wall.at)  # for all, no lines: every one cleared
        assert j.office.state.dispenser_messages == {}
    with JournalReader(path) as r:  # the replay of the new day alone knows what it started with
        assert [e.TYPE for e in r.events()].count("dispenser_message") == 6


# -- the dispenser link: the message is the lowest of the panel's words --------------------------
def _panel(link: DeviceLink, now: float) -> list[str] | None:
    """What the device is sent next (SHOW_TEXT's lines), delivered; None if nothing."""
    if not link.wants(now, bulk=True):
        return None
    frame = sent(link.handle(CommandSlot(bulk=True), now))
    assert frame.NAME == "SHOW_TEXT"
    link.handle(Replied(P.Ack(1, frame.seq)), now)
    return list(frame.lines)


def test_the_message_shows_below_the_closed_words_the_printer_and_a_refusal() -> None:
    link = online(P.KIND_DISPENSER, addr=1)
    message = ("本日は混雑しています", "Busy today")
    closed = (RECEPTION_OVER.ja, RECEPTION_OVER.en)
    link.handle(SetMessage(message), 0.0)
    assert _panel(link, 0.0) == list(message)
    link.handle(SetLamps(frozenset(), closed), 1.0)  # closed: the closed words over it
    while link.wants(1.0):
        link.handle(Replied(P.Ack(1, sent(link.handle(CommandSlot(), 1.0)).seq)), 1.0)
    assert _panel(link, 1.0) == list(closed)
    link.handle(SetMessage(("新しいお知らせ", "New notice")), 2.0)  # changed while hidden: stays hidden
    assert _panel(link, 2.0) is None and link.text == closed
    message = ("新しいお知らせ", "New notice")
    link.handle(SetLamps(frozenset({"move"}), ()), 3.0)  # open: the closed words go, the message is back
    assert _panel(link, 3.0) == list(message)
    link.handle(SetPrinter(ASK_STAFF, stopped=True), 4.0)  # the printer stops: its panel over it
    assert _panel(link, 4.0) == list(ASK_STAFF)
    link.handle(SetPrinter(), 5.0)  # printing again: the message
    assert _panel(link, 5.0) == list(message)
    link.handle(OfficeOutcome(IssueRefused("move", "cut_off", "...")), 6.0)  # a refusal says why...
    assert _panel(link, 6.0) == list(both("reception_closed"))

    ready = TicketReady("A-001", "move", 1, 1, 0, WaitRange.of_minutes(0, 5), MONDAY_10, "tok")
    link.handle(OfficeOutcome(ready), 7.0)  # ...until the next ticket: the message again
    assert _panel(link, 7.0) == list(message)
    link.handle(SetMessage(()), 8.0)  # cleared
    assert _panel(link, 8.0) == [] and link.text == ()


def test_a_dispenser_seen_again_is_sent_its_message() -> None:
    link = online(P.KIND_DISPENSER, addr=1)
    link.handle(SetMessage(("お知らせ", "Notice")), 0.0)
    _panel(link, 0.0)
    frame = sent(link.handle(PollSlot(), 1.0))
    link.handle(Replied(hello(1, frame.seq, P.KIND_DISPENSER)), 1.0)  # it restarted: HELLO to a POLL
    identify = sent(link.handle(CommandSlot(), 1.0))
    link.handle(Replied(hello(1, identify.seq, P.KIND_DISPENSER, cause=P.RESET_WATCHDOG)), 1.0)
    while link.wants(1.0):
        link.handle(Replied(P.Ack(1, sent(link.handle(CommandSlot(), 1.0)).seq)), 1.0)
    assert _panel(link, 1.0) == ["お知らせ", "Notice"]
    assert (link.restarts, link.resyncs) == (1, 1)
    assert link.hello is not None and link.hello.reset_cause == P.RESET_WATCHDOG and link.hello_at == 1.0


# -- the link's error counters, where they happen ------------------------------------------------
def test_a_corrupt_reply_and_a_silence_move_the_counters_of_the_device_in_flight() -> None:
    link = DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, ("move",)), new_token)
    other = DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, ("move",), counter="1"), new_token)
    bus = BusMaster([link, other], lambda c: pytest.fail("no office command here"))
    wire = bus.next_request(0.0)
    assert wire is not None and P.Decoder().feed(wire)[0].NAME == "IDENTIFY"
    reply = bytearray(hello(1, 0, P.KIND_DISPENSER).to_bytes())
    reply[-3] ^= 0x01  # a bit flipped in the CRC: the frame is dropped, the decoder resyncs
    assert bus.receive(bytes(reply), 0.001) == []
    assert (link.crc_drops, link.bad_frames, bus.crc_drops) == (1, 0, 1)
    assert bus.receive(b"\x07\x01\x02\x00", 0.002) == []  # garbage that decodes to no frame
    assert link.bad_frames == 1 and bus.bad_frames == 1
    bus.tick(1.0)  # no valid reply by the deadline: a time-out, the link's
    assert (link.timeouts, other.timeouts, other.crc_drops) == (1, 0, 0)


# -- the gateway on a simulated floor: the message on a real dispenser's panel -----------------
def test_the_message_on_a_simulated_dispenser_below_the_printer_and_the_closed_words(tmp_path: Path) -> None:
    rig = start_gateway(tmp_path, SimPrinter())
    message = ["本日は混雑しています", "Busy today"]
    try:
        reply = rig.gw.handle({"cmd": "dispenser-message", "device": "0-1", "lines": message})
        assert reply["ok"] and reply["events"][-1]["type"] == "dispenser_message", reply
        rig.until("shown", lambda: list(rig.dispenser.text) == message)
        rig.printer.paper_out = True
        rig.until("the printer's panel over it", lambda: rig.dispenser.text == ASK_STAFF)
        rig.printer.restore()
        rig.until("the message back", lambda: list(rig.dispenser.text) == message)
        closing = {"cmd": "set-mode", "date": "2027-03-15", "closed": True, "reason": {"ja": "停電", "en": "Power cut"}}
        assert rig.gw.handle(closing)["ok"]
        rig.until("the closed words over it", lambda: rig.dispenser.text[:2] == ("停電", "Power cut"))
        assert rig.gw.handle({"cmd": "clear-mode", "date": "2027-03-15"})["ok"]
        rig.until("the message back again", lambda: list(rig.dispenser.text) == message)
        for bad, why in [
            ({"device": "0-5"}, "is a counter_pad, not a dispenser"),
            ({"device": "9-1"}, "no device '9-1'; dispensers are ['0-1']"),
            ({"lines": ["a", "b", "c", "d", "e"]}, "at most 4 lines"),
            ({"lines": ["あ" * 21]}, "63 bytes of UTF-8, over the 60"),
            ({"lines": ["two\nlines"]}, "line break"),
        ]:
            refused = rig.gw.handle({"cmd": "dispenser-message", "lines": message, **bad})
            assert not refused["ok"] and why in refused["error"] and refused["kind"] == "usage", refused
    finally:
        rig.gw.close()
    again = start_gateway(tmp_path, SimPrinter())  # restarted: its devices start blank
    try:
        again.until("shown again after the restart", lambda: list(again.dispenser.text) == message)
        state = again.gw.device_state()["devices"]["0-1"]
        assert state["kind"] == "dispenser" and state["firmware"] and state["reset_cause"] is not None
        assert state["since_hello_s"] is not None and state["hello_at"].startswith("2027-03-15T10:00")
    finally:
        again.gw.close()


# -- over MQTT, on a real Mosquitto ---------------------------------------------------------------
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with plain_mosquitto(tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture
def floor(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Floor]:
    f = start_floor(tmp_path, broker.port)
    view = subscribe(broker.port)
    f.views.append(view)
    try:
        f.until("born (commands are taken from the birth on)", lambda: bool(view.births))
        yield f
    finally:
        f.gw.close()
        view.client.close()


def tickets_of(f: Floor) -> dict[str, tuple[str, int, str]]:
    return {t.id: (t.service, t.number, t.status.value) for t in f.journal.office.state.tickets.values()}


@pytest.mark.slow
def test_push_config_bad_refused_or_good_and_nothing_lost(tmp_path: Path, floor: Floor) -> None:
    view = floor.views[0]
    floor.do("open", counter="1")
    floor.busy_minute(6)
    text = floor.gw.config_text
    before, numbers = tickets_of(floor), dict(floor.journal.office.state.last_number)
    changes = lambda: [e for e in floor.journal.events_after(0, 10**6) if isinstance(e, ev.ConfigChanged)]  # noqa: E731

    # Not a valid config: the parser's message, naming the key; nothing changed (but the audit).
    bad = text.replace('prefix = "B"', 'prefix = "A"')
    send(view.client, cmd("p1", "push_config", config=bad))
    ack = answer(floor, view, "p1")
    assert (ack["ok"], ack["code"], ack["kind"]) == (False, "bad_config", "usage")
    assert ack["error"].startswith("push_config p1: services[1].prefix: ") and "used by another service" in ack["error"]
    send(view.client, cmd("p2", "push_config", config="[office\n"))
    assert "not valid TOML" in answer(floor, view, "p2")["error"]
    # Valid, but not for this floor: another office; an open counter removed; a port that cannot work.
    nerima = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    send(view.client, cmd("p3", "push_config", config=nerima))
    assert answer(floor, view, "p3")["error"] == "the config is for office 'nerima', this gateway's is 'oizumi'"
    without_1 = text[: text.index('[[counters]]\nid = "1"')] + text[text.index('[[counters]]\nid = "2"') :]
    send(view.client, cmd("p4", "push_config", config=without_1))
    assert answer(floor, view, "p4")["error"] == "counter '1' is removed but is open: close it first"
    bad_port = text + '\n[[printers]]\nid = "x"\nport = "nonsense://"\n'
    send(view.client, cmd("p5", "push_config", config=bad_port))
    assert "printers[0].port: bad printer port URL" in answer(floor, view, "p5")["error"]
    assert changes() == [] and tickets_of(floor) == before and floor.journal.get_meta("config") == text
    assert [e.ok for e in floor.journal.events_after(0, 10**6) if isinstance(e, ev.RemoteCommand)] == [False] * 5

    # A good one: in force at once, every ticket and number kept, the rest of the day re-planned.
    good = changed(text, *LIVE_CHANGE).replace("cycle_ms = 2", "cycle_ms = 3")
    send(view.client, cmd("p6", "push_config", config=good))
    ok = answer(floor, view, "p6")
    assert ok["ok"] and ok["sha256"] == config_sha256(good) and ok["previous_sha256"] == config_sha256(text)
    assert ok["changed"] == ["services", "hours", "gateway"] and ok["restart_needed"] == ["gateway"]
    assert [e["type"] for e in ok["events"]] == ["config_changed", "schedule"]
    assert "at the gateway's next restart: gateway" in ok["output"]
    assert tickets_of(floor) == before and floor.journal.office.state.last_number == numbers
    assert floor.gw.config.service("move").typical_minutes == 25 and floor.journal.get_meta("config") == good
    issued = floor.do("issue", service="move")["events"][0]
    assert issued["number"] == numbers["move"] + 1  # numbering goes on
    floor.until("the change on the broker", lambda: any(e["type"] == "config_changed" for e in view.events.values()))
    (published,) = [e for e in view.events.values() if e["type"] == "config_changed"]
    assert published["sha256"] == config_sha256(good) and published["via"] == "mqtt" and published["sender"] is None
    # A retry: the first answer, nothing stored again; the same text again: unchanged.
    seq = floor.last_seq
    send(view.client, cmd("p6", "push_config", config=good))
    assert answer(floor, view, "p6", 2) == {**ok, "repeated": True} and floor.last_seq == seq
    send(view.client, cmd("p7", "push_config", config=good))
    assert answer(floor, view, "p7")["unchanged"] is True and len(changes()) == 1
    history = floor.journal.config_history()
    assert [(sha, old) for _, _, sha, old in history] == [(config_sha256(text), text)]


def test_office_reconfigure_goes_through_the_running_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, text = floor_without_devices(tmp_path, "cycle_ms = 2")
    gw, _ = held_gateway(tmp_path, config, text)
    gw.start()
    try:
        assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
        edited = tmp_path / "edited.toml"
        edited.write_text(changed(text, *LIVE_CHANGE), encoding="utf-8")

        def cli(*argv: str) -> int:
            """The command in a thread (it waits on the socket) while this one steps the gateway."""
            done: list[int] = []

            def run() -> None:
                try:
                    done.append(main(list(argv)))
                except SystemExit as exc:  # how main ends on an error
                    done.append(int(exc.code or 0))

            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + SAFETY_S
            while thread.is_alive():
                assert time.monotonic() < deadline, argv
                gw.step()
            return done[0]

        j = ("--journal", str(tmp_path / "j.db"), "--socket", str(tmp_path / "j.sock"))
        assert cli("office", "reconfigure", "--config", str(edited), *j) == 0  # the journal is the gateway's
        out = capsys.readouterr().out
        assert out.startswith(f"config {config_sha256(edited.read_text())[:12]} in force") and "hours" in out
        assert gw.config.service("move").typical_minutes == 25
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace('prefix = "B"', 'prefix = "A"'), encoding="utf-8")
        assert cli("office", "reconfigure", "--config", str(bad), *j) == 2  # named by the CLI, not sent
        assert f"{bad}: services[1].prefix" in capsys.readouterr().err
    finally:
        gw.close()
    # No gateway: the journal directly, the same checks and records.
    again = tmp_path / "again.toml"
    again.write_text(changed(text, LIVE_CHANGE[0]), encoding="utf-8")
    code, out, _ = run_cli(capsys, "office", "reconfigure", "--config", str(again), "--journal", str(tmp_path / "j.db"))
    assert code == 0 and "now uses" in out
    with JournalReader(tmp_path / "j.db") as r:
        vias = [e.via for e in r.events() if isinstance(e, ev.ConfigChanged)]
        assert vias == ["socket", "offline"] and r.meta["config"] == again.read_text()


@pytest.mark.slow
def test_dispenser_message_and_device_counters_over_mqtt(
    tmp_path: Path, broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oizumi example's simulated bus, with a line that corrupts a byte in a hundred: the
    message on the dispenser's panel, and the devices' counters moving on the broker."""
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")  # the pure-Python simulated devices
    url = "sim://bus?dispenser=1&counter_pad=5,6,7,8&call_display=16"
    text = OIZUMI_TEXT.replace(url, url + "&backend=python&seed=3&corrupt=0.01")
    config = parse_config(text, source=str(tmp_path / "oizumi.toml"))
    gw = running_gateway(tmp_path, config, text, broker_url=f"mqtt://127.0.0.1:{broker.port}")
    view = subscribe(broker.port)
    gw.start()
    dispenser = gw.buses[0].port.bus.devices[1]  # type: ignore[union-attr]
    device_topic = schema.topic("oizumi", "devices", "0-1")

    def until(what: str, cond: Callable[[], bool]) -> None:
        deadline = time.monotonic() + SAFETY_S
        while True:
            view.take()
            if cond():
                return
            assert time.monotonic() < deadline, f"not within {SAFETY_S} s: {what}"
            gw.step()

    try:
        until("born", lambda: bool(view.births))
        message = ["本日は混雑しています", "Busy today"]
        send(view.client, cmd("m1", "dispenser_message", lines=message))
        assert answer_of(view, "m1", until)["ok"]
        until("on the panel", lambda: list(dispenser.text) == message)
        send(view.client, cmd("m2", "dispenser_message", device="0-5", lines=message))
        assert "not a dispenser" in answer_of(view, "m2", until)["error"]

        def damage(state: dict[str, Any]) -> int:
            return int(state.get("crc_drops", 0)) + int(state.get("bad_frames", 0))

        until("the line's damage counted", lambda: damage(gw.device_state()["devices"]["0-1"]) > 0)
        counted = damage(gw.device_state()["devices"]["0-1"])
        # The counters go out with the minute's refresh, or at once with a rebirth.
        send(view.client, cmd("b1", "rebirth"))
        assert answer_of(view, "b1", until)["ok"]
        until("the counters on the broker", lambda: damage(view.latest.get(device_topic) or {}) >= counted)
        seen = view.latest[device_topic]
        assert seen is not None and seen["kind"] == "dispenser" and seen["firmware"] and seen["hello_at"]
        assert {"timeouts", "resyncs", "restarts", "retries", "failures", "since_hello_s"} <= set(seen)
    finally:
        gw.close()
        view.client.close()


def answer_of(view: View, request: str, until: Callable[[str, Callable[[], bool]], None]) -> dict[str, Any]:
    until(f"ack {request}", lambda: bool(view.acks.get(request)))
    return view.acks[request][0]


# -- what a new config may change, and what waits for a restart ----------------------------------
def test_what_a_new_config_may_change_now_and_what_waits_for_a_restart(tmp_path: Path) -> None:
    old = parse_config(OIZUMI_TEXT)
    moved = parse_config(OIZUMI_TEXT.replace("[gateway]\n", '[gateway]\nsocket = "elsewhere.sock"\n'))
    assert "gateway.socket cannot change this way" in str(change_problem(old, moved, OfficeState()))
    no_seal = OIZUMI_TEXT.replace('"move", "seal"', '"move"').replace('["seal", "move", "certificate"]', '["move"]')
    start = no_seal.index('[[services]]\nid = "seal"')
    no_seal = no_seal[:start] + no_seal[no_seal.index('[[services]]\nid = "certificate"') :]
    no_seal = no_seal.replace('services = ["move", "seal"]', 'services = ["move"]')
    without_seal = parse_config(no_seal)
    office = Office(old)
    office.execute(IssueTicket("seal", "tok"), MONDAY_10)
    problem = change_problem(old, without_seal, office.state, MONDAY_10.date())
    assert problem == "service 'seal' is removed but has 1 ticket(s) waiting, called or held today"
    assert change_problem(old, without_seal, office.state, (MONDAY_10 + timedelta(days=1)).date()) is None
    assert changed_parts(old, without_seal)[:2] == ["services", "counters"] and "devices" in changed_parts(
        old, without_seal
    )
    assert restart_needed(old, without_seal) == ["devices"]  # the dispenser's buttons


def test_a_gateway_restarted_with_the_same_file_runs_the_pushed_config(tmp_path: Path) -> None:
    config, text = floor_without_devices(tmp_path, "cycle_ms = 2")

    def gateway() -> service.Gateway:
        clock = HeldClock()
        gw = service.Gateway(
            config, text, tmp_path / "j.db", tmp_path / "j.sock", io.StringIO(), clock=clock, wall=lambda: MONDAY_10
        )
        gw.start()
        return gw

    gw = gateway()
    try:
        pushed = text.replace("cycle_ms = 2", "cycle_ms = 3")
        reply = gw.handle({"cmd": "reconfigure", "config": pushed, "id": "r1"})
        assert reply["ok"] and reply["restart_needed"] == ["gateway"], reply
        assert gw.config.gateway.cycle_ms == 3 and gw.started is not None and gw.started.gateway.cycle_ms == 2
        assert gw.handle({"cmd": "reconfigure", "config": pushed, "id": "r1"})["repeated"] is True
    finally:
        gw.close()
    gw = gateway()  # systemd starts it again with the unchanged file
    try:
        assert gw.started is not None and gw.started.gateway.cycle_ms == 3 and gw.config.source == config.source
    finally:
        gw.close()
