"""`counterfloor demo` as the whole system: both example offices as gateways with their boards under
MicroPython, the embedded broker, central with its pages; staff at the pads and control sockets."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from central.store import open_store
from counterfloor import demo
from gateway.journal import JournalReader
from hal.firmware_sim import find_micropython
from office import events as ev

pytestmark = pytest.mark.slow
DAY = "2027-06-15"  # an ordinary Tuesday: both offices open


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def whole_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if find_micropython() is None:
        pytest.fail("MicroPython is missing: `uv sync` installs it (the demo's boards run on it)")
    tmp = tmp_path_factory.mktemp("demo")
    journals, out = tmp / "journals", tmp / "out"
    journals.mkdir()
    args = _args("--date", DAY, "--speed", "max", "--no-live", "--journal", str(journals), "--out", str(out),
                 "--http-port", "0")  # fmt: skip
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert demo.run(args) == 0
    return tmp, text.getvalue()


def _journal(path: Path) -> list[ev.Event]:
    with JournalReader(path) as reader:
        return list(reader.events())


def test_it_prints_where_to_look_and_the_login(whole_day: tuple[Path, str]) -> None:
    _, out = whole_day
    dashboard = re.search(r"^dashboard: (http://127\.0\.0\.1:(\d+))/dashboard \(login: demo / (\S+)\)$", out, re.M)
    assert dashboard is not None, out
    base = dashboard.group(1)
    ticket = re.search(r"^ticket: (\S+)$", out, re.M)
    assert ticket is not None and ticket.group(1).startswith(f"{base}/nerima/t/")
    assert re.search(rf"^residents: {re.escape(base)}/ ", out, re.M)
    assert "devices: the real board firmware under MicroPython" in out


def test_both_offices_ran_through_their_gateways_and_central_holds_every_event(whole_day: tuple[Path, str]) -> None:
    tmp, out = whole_day
    store = open_store(str(tmp / "journals" / "central.sqlite"))
    try:
        for office in ("nerima", "oizumi"):
            events = _journal(tmp / "journals" / f"{office}.sqlite")
            issued = sum(isinstance(e, ev.TicketIssued) for e in events)
            assert issued > 100
            assert f"MQTT: {office}: {len(events)} of {len(events)} events published" in out
            # Central's copy, by way of the broker, is the journal's, event for event.
            held = list(store.read(office))
            assert [r["seq"] for r in held] == list(range(1, len(events) + 1))
            assert [r["type"] for r in held] == [e.TYPE for e in events]
            assert f"{office} {len(events)} of {len(events)}" in out
    finally:
        store.close()


def test_calls_came_from_the_pads_and_the_rest_through_the_control_socket(whole_day: tuple[Path, str]) -> None:
    tmp, out = whole_day
    for office in ("nerima", "oizumi"):
        staff = re.search(
            rf"^staff: {office}: (\d+) calls at the pads.*, (\d+) requests on the control socket$", out, re.M
        )
        assert staff is not None, out
        presses, requests = int(staff.group(1)), int(staff.group(2))
        assert presses > 50 and requests > 100
        path = tmp / "journals" / f"{office}.sqlite"
        events = {e.seq: e for e in _journal(path)}
        conn = sqlite3.connect(path)
        try:
            # A pad's press is stored with the press's id (its board's boot and event number).
            pressed = [seq for (seq,) in conn.execute("SELECT seq FROM requests WHERE id NOT LIKE 'ctl:%'")]
            asked = conn.execute("SELECT count(*) FROM requests WHERE id LIKE 'ctl:%'").fetchone()[0]
        finally:
            conn.close()
        # Every request carries an id (a resend after a lost connection is carried out once); the
        # journal keeps those that changed the floor.
        assert 0 < asked <= requests
        calls = [seq for seq in pressed if isinstance(events.get(seq), ev.Called)]
        assert len(calls) == presses
        # Every counter has a pad: every call came from one; recalls, services and the rest came
        # through the control socket (stored without a request id).
        assert sum(isinstance(e, ev.Called) for e in events.values()) == presses
        assert any(isinstance(e, ev.Recalled) for e in events.values())
        assert not any(isinstance(e, ev.ClockStepped) for e in events.values())


def test_the_signs_and_tickets_are_pictures_under_out(whole_day: tuple[Path, str]) -> None:
    tmp, out = whole_day
    assert f"frames and tickets: {tmp / 'out'}/" in out
    for office in ("nerima", "oizumi"):
        folder = tmp / "out" / office
        boards = sorted(folder.glob("board-*.png"))
        tickets = sorted(folder.glob("ticket-*.png"))
        assert len(boards) >= 20 and (folder / "board-end.png") in boards
        assert tickets  # each service's first ticket
        for path in (boards[len(boards) // 2], tickets[0]):
            with Image.open(path) as img:
                extrema = img.convert("L").getextrema()
            assert extrema[0] != extrema[1], f"{path} is blank"


def test_one_wait_everywhere_the_summary_agrees_with_the_journal(whole_day: tuple[Path, str]) -> None:
    tmp, out = whole_day
    summary = re.search(r"^Summary — Nerima.*?^ All .*?$", out, re.M | re.S)
    assert summary is not None
    max_wait = int(re.findall(r"(\d+) min", summary.group(0).splitlines()[-1])[-1])  # mean, then max
    events = _journal(tmp / "journals" / "nerima.sqlite")
    issued = {e.ticket: e.ts for e in events if isinstance(e, ev.TicketIssued)}
    first = {}
    for e in events:
        if isinstance(e, ev.Called):
            first.setdefault(e.ticket, e.ts)
    longest = max((first[t] - ts).total_seconds() / 60 for t, ts in issued.items() if t in first)
    assert max_wait >= round(longest)
