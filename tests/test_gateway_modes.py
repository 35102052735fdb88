"""Every device follows the calendar: the dispenser's lamps and words at mode changes, and the
gateway's call-outs (announced after the displays got the call, never on the loop's thread)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway import service
from gateway.announce import CallAnnouncer, callout_player
from gateway.audio import DEFAULT_VOICE_DIR, CalloutPlayer, Played
from gateway.device_link import REFUSAL_MESSAGE, CommandSlot, OfficeOutcome, Replied, SetLamps, SetPrinter
from gateway.mode_words import RECEPTION_OVER, dispenser_lines
from hal.codec import P
from office.calendar import mode_at
from office.config import CalloutSettings, OfficeConfig, load_config, parse_config
from office.model import IssueRefused
from signage.catalog import both

from .conftest import EXAMPLES, tokyo
from .floor_support import FakeClock
from .test_device_link import online, sent


# -- the dispenser's words ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("at", "lines"),
    [
        ((2027, 3, 15, 10), ()),
        ((2027, 3, 15, 17, 30), ()),
        (
            (2027, 3, 15, 19, 0),
            ("本日の受付は終了しました", "Reception closed for today", "明日8時30分から受付", "Opens tomorrow at 8:30"),
        ),
        (
            (2027, 3, 16, 7, 0),
            ("受付時間外", "Outside opening hours", "本日8時30分から受付", "Opens today at 8:30"),
        ),
        (
            (2027, 3, 19, 20, 0),  # Friday night: Saturday closed, Sunday, then the substitute holiday
            (
                "本日の受付は終了しました",
                "Reception closed for today",
                "次の受付 3月23日(火) 8:30",
                "Opens Tue 23 Mar at 8:30",
            ),
        ),
        (
            (2027, 3, 22, 12, 0),
            (
                "春分の日 振替休日（祝日）",
                "Public holiday: Vernal Equinox Day (substitute holiday)",
                "明日8時30分から受付",
                "Opens tomorrow at 8:30",
            ),
        ),
        (
            (2027, 3, 26, 19, 0),  # before a rush Saturday
            ("本日の受付は終了しました", "Reception closed for today", "明日9時00分から受付", "Opens tomorrow at 9:00"),
        ),
    ],
)
def test_dispenser_lines(oizumi: OfficeConfig, at: tuple[int, ...], lines: tuple[str, ...]) -> None:
    moment = tokyo(*at)
    got = dispenser_lines(mode_at(oizumi, moment), moment)
    assert got == lines
    assert dispenser_lines(mode_at(oizumi, moment), moment.astimezone(UTC)) == lines  # the gateway's wall is UTC
    assert len(got) <= 4 and all(len(line.encode()) <= 60 for line in got)  # SHOW_TEXT's limits


def test_dispenser_lines_fit_even_a_long_reason(nerima: OfficeConfig) -> None:
    text = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    long = parse_config(
        text.replace("システム更新のため臨時閉庁", "システム更新と電気設備の法定点検および庁舎の清掃のため臨時閉庁")
    )
    moment = tokyo(2027, 3, 22, 10)
    lines = dispenser_lines(mode_at(long, moment), moment)
    assert lines[0].startswith("システム更新と") and len(lines[0].encode()) <= 60


# -- the dispenser link ---------------------------------------------------------------------------------
def _shown(link: object, now: float = 0.0) -> list[str]:
    frame = sent(link.handle(CommandSlot(bulk=True), now))  # type: ignore[attr-defined]
    assert frame.NAME == "SHOW_TEXT"
    link.handle(Replied(P.Ack(1, frame.seq)), now)  # type: ignore[attr-defined]
    return list(frame.lines)


def test_closed_words_are_shown_refreshed_over_a_refusal_and_cleared_at_opening() -> None:
    link = online(P.KIND_DISPENSER, addr=1)
    closed = RECEPTION_OVER.ja, RECEPTION_OVER.en
    link.handle(SetLamps(frozenset(), closed), 0.0)
    lamps = sent(link.handle(CommandSlot(), 0.0))
    assert lamps.NAME == "LAMPS" and lamps.mask == 0
    link.handle(Replied(P.Ack(1, lamps.seq)), 0.0)
    assert _shown(link) == list(closed)
    link.handle(SetLamps(frozenset(), closed), 60.0)  # the same words: nothing sent again
    assert link.handle(CommandSlot(bulk=True), 60.0) == [] and not link.wants(60.0)
    # a press on a dark button is refused; the next refresh says why it is closed again
    link.handle(OfficeOutcome(IssueRefused("move", "not_offered_now", "...")), 61.0)
    assert _shown(link, 61.0) == list(both(REFUSAL_MESSAGE["not_offered_now"]))
    link.handle(SetLamps(frozenset(), closed), 120.0)
    assert _shown(link, 120.0) == list(closed)
    # opening: the words go, the lamps come on
    link.handle(SetLamps(frozenset({"move", "seal"}), ()), 180.0)
    assert sent(link.handle(CommandSlot(), 180.0)).mask == 0b011
    link.handle(Replied(P.Ack(1, link.seq)), 180.0)
    assert _shown(link, 180.0) == [] and link.text == ()


def test_opening_leaves_a_printers_words_alone() -> None:
    link = online(P.KIND_DISPENSER, addr=1)
    link.handle(SetLamps(frozenset(), ("closed", "closed")), 0.0)
    link.handle(SetPrinter(("用紙切れ", "Out of paper"), stopped=True), 1.0)
    link.handle(SetLamps(frozenset({"move"}), ()), 2.0)
    assert link.text == ("用紙切れ", "Out of paper")


def test_lamps_without_lines_leave_the_words_alone() -> None:
    link = online(P.KIND_DISPENSER, addr=1)
    link.handle(OfficeOutcome(IssueRefused("move", "cut_off", "...")), 0.0)
    link.handle(SetLamps(frozenset({"move"})), 1.0)
    assert link.text == both(REFUSAL_MESSAGE["cut_off"]) == ("本日の受付は終了しました", "Reception closed for today")


# -- the gateway: lamps follow the calendar at its changes ------------------------------------------------
class Wall:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _gateway(tmp_path: Path, wall: Wall, clock: FakeClock, config_text: str | None = None) -> service.Gateway:
    text = config_text or (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    config = parse_config(text, source=str(tmp_path / "oizumi.toml"))
    gw = service.Gateway(config, text, tmp_path / "j.db", tmp_path / "j.sock", sys.stdout, clock=clock, wall=wall)
    gw.start()
    return gw


def _steps_until(gw: service.Gateway, clock: FakeClock, wall: Wall, cond: Callable[[], object], seconds: float) -> None:
    """Turn the gateway's loop until `cond()` holds, at most `seconds` of its clock."""
    stop = clock.t + seconds
    while not cond():
        assert clock.t < stop
        before = clock.t
        gw.step()
        wall.at += timedelta(seconds=clock.t - before)  # the wall clock keeps pace with the loop's


def test_lamps_change_at_17_00_not_a_minute_late(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")  # the pure-Python simulated devices
    clock, wall = FakeClock(), Wall(tokyo(2027, 3, 15, 16, 59, 58))
    gw = _gateway(tmp_path, wall, clock)
    try:
        dispenser = gw.buses[0].port.bus.devices[1]  # type: ignore[union-attr]

        def steps_until(cond: Callable[[], object], seconds: float) -> None:
            _steps_until(gw, clock, wall, cond, seconds)

        steps_until(lambda: dispenser.lamps == 0b1111, 1.5)  # office: move, seal, certificate, payment
        steps_until(lambda: dispenser.lamps == 0b0101, 5.0)  # evening at 17:00: move, certificate
        assert wall.at >= tokyo(2027, 3, 15, 17) and wall.at < tokyo(2027, 3, 15, 17, 0, 5)
        assert dispenser.text == ()
        wall.at = tokyo(2027, 3, 15, 18, 59, 59)
        gw._refresh_lamps()
        steps_until(lambda: dispenser.lamps == 0, 5.0)  # 19:00: closed, and it says why
        steps_until(lambda: dispenser.text and dispenser.text[0] == RECEPTION_OVER.ja, 2.0)
        assert dispenser.text[1] == RECEPTION_OVER.en and "8:30" in dispenser.text[3]
    finally:
        gw.close()


def test_displays_and_pads_get_the_days_calls_at_a_restart_and_go_blank_at_a_new_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway never blanked a call display: yesterday's last calls (kept on the display's
    # flash) greeted the morning until the day's first call.
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")  # the pure-Python simulated devices
    clock, wall = FakeClock(), Wall(tokyo(2027, 3, 15, 10))
    gw = _gateway(tmp_path, wall, clock)
    try:
        for req in (
            {"cmd": "issue", "service": "seal"},
            {"cmd": "issue", "service": "seal"},
            {"cmd": "open", "counter": "2"},
            {"cmd": "call", "counter": "2"},
            {"cmd": "call", "counter": "2"},
        ):
            assert gw.handle(req)["ok"]
    finally:
        gw.close()
    gw = _gateway(tmp_path, wall, clock)  # restarted the same day; its simulated display starts blank
    try:
        display = gw.buses[0].port.bus.devices[16]  # type: ignore[union-attr]
        pad = gw.buses[0].port.bus.devices[6]  # type: ignore[union-attr]  # counter 2's
        label = gw._label("2")
        _steps_until(gw, clock, wall, lambda: display.call is not None and pad.number != "    ", 2.0)
        assert display.call == ("B-002", label) and display.chimes == 0  # restored quietly
        assert [tuple(e) for e in display.recent] == [("B-002", label), ("B-001", label)]
        assert (pad.number, pad.status_lamp) == ("B002", (P.LAMP_GREEN, 0))
        wall.at = tokyo(2027, 3, 16, 0, 0, 30)  # past midnight: no calls yet today
        gw._refresh_lamps()
        _steps_until(gw, clock, wall, lambda: display.call is None and not display.recent, 2.0)
        _steps_until(gw, clock, wall, lambda: pad.number == "    " and pad.status_lamp == (P.LAMP_OFF, 0), 2.0)
        wall.at = tokyo(2027, 3, 16, 10)
        for req in (
            {"cmd": "issue", "service": "seal"},
            {"cmd": "open", "counter": "2"},
            {"cmd": "call", "counter": "2"},
        ):
            assert gw.handle(req)["ok"]
        _steps_until(gw, clock, wall, lambda: display.call is not None, 2.0)
        assert display.call == ("B-001", label) and [tuple(e) for e in display.recent] == [("B-001", label)]
    finally:
        gw.close()


# -- the gateway: call-outs -----------------------------------------------------------------------------
def test_callout_player_follows_the_config(tmp_path: Path) -> None:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    assert callout_player(parse_config(text), tmp_path / "j.db") is None  # off unless enabled
    on = parse_config(
        text + '\n[callout]\nenabled = true\nlanguages = ["en"]\nplayer = "aplay -q"\n', source=str(tmp_path / "o.toml")
    )
    player = callout_player(on, tmp_path / "j.db")
    assert player is not None
    assert (player.out_dir, player.voice_dir, player.languages, player.argv) == (
        tmp_path / "j.db.callout",
        DEFAULT_VOICE_DIR,
        ("en",),
        ["aplay", "-q"],
    )
    own = parse_config(
        text + '\n[callout]\nenabled = true\nvoice_dir = "voice"\nout_dir = "wav"\n', source=str(tmp_path / "o.toml")
    )
    player = callout_player(own, tmp_path / "data" / "j.db")
    assert player is not None and (player.voice_dir, player.out_dir) == (tmp_path / "voice", tmp_path / "data" / "wav")


def test_a_call_is_announced_one_loop_turn_later_off_the_loop(tmp_path: Path) -> None:
    clock, wall = FakeClock(), Wall(tokyo(2027, 3, 15, 10))
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    text = text[: text.index("# The gateway (docs/config.md")]  # no devices: only the control socket
    done: list[Played] = []
    ran: list[list[str]] = []
    player = CalloutPlayer(tmp_path / "wav", player="aplay", runner=ran.append, on_done=done.append)
    config = parse_config(text)
    gw = service.Gateway(
        config,
        text,
        tmp_path / "j.db",
        tmp_path / "j.sock",
        sys.stdout,
        clock=clock,
        wall=wall,
        announcer=CallAnnouncer(player),
    )
    gw.start()
    try:
        for req in (
            {"cmd": "issue", "service": "seal"},
            {"cmd": "open", "counter": "2"},
            {"cmd": "call", "counter": "2"},
        ):
            assert gw.handle(req)["ok"]
        gw.step()  # the turn the call was made in: not yet
        player.drain()
        assert done == []
        gw.step()  # the next turn hands it over
        player.drain()
        assert [(d.ticket, d.counter, d.played) for d in done] == [("B-001", "2", True)]
        assert ran == [["aplay", str(done[0].path)]]
        assert gw.handle({"cmd": "recall", "counter": "2"})["ok"]
        gw.step()
        gw.step()
        player.drain()
        assert [d.ticket for d in done] == ["B-001", "B-001"]  # a recall is announced again
    finally:
        gw.close()


def test_callout_config_errors_name_the_key() -> None:
    from office.config import ConfigError

    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    for extra, key in [
        ('enabled = "yes"', "callout.enabled"),
        ('languages = ["fr"]', "callout.languages"),
        ('languages = ["ja", "ja"]', "callout.languages"),
        ('player = "aplay \'unclosed"', "callout.player"),
        ("volume = 3", "callout.volume"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse_config(f"{text}\n[callout]\n{extra}\n")
        assert exc.value.key == key, extra
    assert load_config(EXAMPLES / "oizumi.toml").callout == CalloutSettings()  # no [callout]: off
    on = parse_config(f'{text}\n[callout]\nenabled = true\nplayer = "aplay -q -D plughw:1"\n').callout
    assert on == CalloutSettings(enabled=True, player="aplay -q -D plughw:1")
