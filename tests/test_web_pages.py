"""The residents' web pages served by central (central/web, docs/web.md), over HTTP without a
browser: what the ticket page says and when it is refused, the live streams, the public page,
what is logged, and the hand-over between the worker's thread and the web's loop."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from central.learning import fallback
from central.office_state import OfficeState
from central.service import WebOptions, WebPages
from central.web.app import HEADERS, sse, token_hash
from central.web.hub import QUEUE_SIZE, RELOAD, ViewHub
from central.web.i18n import LANGS, _messages
from central.web.server import TokenFilter, redact
from central.web.view import OfficeView, office_view
from tests.conftest import EXAMPLES, run_cli
from tests.web_support import OFFICE, SCHEDULE, TOKENS, get, office_floor, served


def read_event(resp: http.client.HTTPResponse) -> tuple[str, str]:
    """The next Server-Sent Event (keep-alive comments skipped): (event, data)."""
    event, data = "", []
    while True:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if not line:
            if event or data:
                return event, "\n".join(data)
            continue
        name, _, value = line.partition(": ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


@contextmanager
def stream(url: str, path: str) -> Iterator[http.client.HTTPResponse]:
    """An open event stream of `path`; closed at the end."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        yield conn.getresponse()
    finally:
        conn.close()


def test_ticket_page_says_number_place_and_wait_and_nothing_of_others(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        mine = floor.issue(TOKENS[1])
        with served(floor.hub) as server:
            status, headers, body = get(f"{server.url}/{OFFICE}/t/{TOKENS[1]}")
            assert status == 200
            assert mine in body and "A-001" not in body  # nothing of the resident ahead
            assert "あなたの前に 1人" in body and "待ち時間の目安 約" in body
            assert "転入・転出・転居の届出" in body  # the service's name from the office's config
            assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
            assert "default-src 'self'" in headers["content-security-policy"]
            _, _, english = get(f"{server.url}/{OFFICE}/t/{TOKENS[1]}?lang=en")
            assert "1 people ahead of you" in english and 'href="/nerima/t/' in english
            assert 'lang="en"' in english
            assert "http://" not in body.replace(server.url, "") and "https://" not in body  # nothing fetched elsewhere


@pytest.mark.parametrize(
    "path",
    [
        f"/{OFFICE}/t/{TOKENS[2]}",  # well formed, never issued
        f"/{OFFICE}/t/short",  # not a token
        f"/{OFFICE}/t/{'x' * 300}",
        f"/oizumi/t/{TOKENS[0]}",  # an office central does not know
        f"/{OFFICE}/t/{token_hash(TOKENS[0])}",  # the hash is not the token
        f"/{OFFICE}/t/{TOKENS[2]}/events",
        "/Bad_Office/",
    ],
)
def test_unknown_or_malformed_tokens_get_a_plain_404(tmp_path: Path, path: str) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        with served(floor.hub) as server:
            status, headers, body = get(server.url + path)
    assert status == 404
    assert headers["content-type"].startswith("text/plain") and "not found" in body
    assert TOKENS[0] not in body


def test_a_ticket_of_yesterday_is_gone(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        with served(floor.hub) as server:
            assert get(f"{server.url}/{OFFICE}/t/{TOKENS[0]}")[0] == 200
            floor.at = floor.at.replace(day=16)
            floor.event("schedule", **{**SCHEDULE, "date": "2027-03-16"})
            assert get(f"{server.url}/{OFFICE}/t/{TOKENS[0]}")[0] == 404


def test_the_ticket_stream_brings_the_call(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor, served(floor.hub) as server:
        mine = floor.issue(TOKENS[0])
        with stream(server.url, f"/{OFFICE}/t/{TOKENS[0]}/events?lang=ja") as resp:
            assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
            event, data = read_event(resp)
            assert event == "ticket" and 'data-status="waiting"' in data
            floor.event("called", ticket=mine, counter="5")
            event, data = read_event(resp)
            assert event == "ticket" and 'data-status="called"' in data
            assert "5番窓口へお越しください" in data
            floor.event("served", ticket=mine, counter="5")
            event, data = read_event(resp)
            assert 'data-status="done"' in data
        # A client that goes away takes its subscription with it (the next change finds it gone).
        deadline = time.monotonic() + 5
        while floor.hub.subscribers and time.monotonic() < deadline:
            time.sleep(0.02)
        assert floor.hub.subscribers == 0


def test_the_public_page_shows_waits_hours_mode_and_a_forecast_chart(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        floor.issue(TOKENS[1])
        with served(floor.hub) as server:
            for path in ("/", f"/{OFFICE}/"):
                status, _, body = get(server.url + path)
                assert status == 200
                assert "練馬区民事務所" in body and "平日窓口 受付中" in body
                assert "08:30–17:00" in body and "17:00–19:00" in body
                assert '<tr data-service="move">' in body and "2人" in body
                assert body.count('role="img"') == 3  # a forecast chart per service
                assert TOKENS[0] not in body and token_hash(TOKENS[0]) not in body
            with stream(server.url, f"/{OFFICE}/events") as resp:
                event, data = read_event(resp)
                assert event == "office" and 'id="office-nerima"' in data
                floor.issue(TOKENS[2])
                event, data = read_event(resp)
                assert "3人" in data


def test_the_mode_follows_the_clock(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        view = floor.hub.view(OFFICE)
        assert view is not None and view.at is not None
        at = view.at
        assert view.mode_at(at.replace(hour=8)) == "closed"
        assert view.mode_at(at.replace(hour=17, minute=30)) == "evening"
        assert view.mode_at(at.replace(day=16)) is None  # no plan known for another day


def test_no_token_reaches_a_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        with served(floor.hub) as server:
            get(f"{server.url}/{OFFICE}/t/{TOKENS[0]}")
            get(f"{server.url}/{OFFICE}/t/{TOKENS[2]}")
            with stream(server.url, f"/{OFFICE}/t/{TOKENS[0]}/events") as resp:
                read_event(resp)
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert TOKENS[0] not in logged and TOKENS[2] not in logged
    # Even an access log turned on by hand gets the filter's blanked path.
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"', ("1.2.3.4", "GET", f"/x/t/{TOKENS[0]}"), None
    )
    TokenFilter().filter(record)
    assert TOKENS[0] not in record.getMessage() and "/x/t/…" in record.getMessage()
    assert redact(f"/nerima/t/{TOKENS[0]}/events?lang=en") == "/nerima/t/…/events?lang=en"


def test_a_slow_client_is_told_to_reload_rather_than_queued_without_end() -> None:
    hub = ViewHub()

    async def scenario() -> tuple[list[tuple[str, int]], int]:
        sub = hub.subscribe(OFFICE)
        for _ in range(QUEUE_SIZE * 3):
            hub.publish(OfficeView(OFFICE, 0, None, None, 0, (), ()))
        await asyncio.sleep(0)  # the offers run in this loop
        got = []
        while not sub.queue.empty():
            got.append(await sub.next())
        sub.close()
        return got, sub.reloads

    got, reloads = asyncio.run(scenario())
    assert len(got) <= QUEUE_SIZE and (OFFICE, RELOAD) in got and reloads >= 1
    assert hub.subscribers == 0


def test_office_state_follows_a_replaced_token_and_keeps_todays_periods() -> None:
    state = OfficeState(OFFICE, fallback())
    head = {"v": 1, "office": OFFICE}
    state.take([{**head, "seq": 1, "ts": "2027-03-15T09:00:00.000+09:00", **SCHEDULE}], 0.0, lambda a, b: [])
    issued = {"type": "ticket_issued", "ticket": "A-001", "service": "move", "number": 1, "token_hash": "a" * 64}
    state.take([{**head, "seq": 2, "ts": "2027-03-15T09:01:00.000+09:00", **issued}], 0.0, lambda a, b: [])
    replaced = {"type": "token_replaced", "ticket": "A-001", "token_hash": "b" * 64}
    state.take([{**head, "seq": 3, "ts": "2027-03-15T09:02:00.000+09:00", **replaced}], 0.0, lambda a, b: [])
    assert state.tokens == {"A-001": "b" * 64}
    assert [p.mode for p in state.periods] == ["office", "evening"]


def test_catalogues_agree_and_events_are_well_formed() -> None:
    keys = {lang: set(_messages(lang)) for lang in LANGS}
    assert keys["ja"] == keys["en"]
    assert sse("ticket", "<p>\n</p>") == "event: ticket\ndata: <p>\ndata: </p>\n\n"
    assert "no-store" in HEADERS["Cache-Control"]


def test_central_serves_the_pages_only_when_asked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["central", "--broker", "mqtt://127.0.0.1:1", "--store", str(tmp_path / "c.db")]
    code, _, err = run_cli(capsys, *base, "--office-config", str(EXAMPLES / "nerima.toml"))
    assert code == 2 and "--office-config" in err and "--http-port" in err
    code, _, err = run_cli(capsys, *base, "--http-port", "0", "--office-config", str(tmp_path / "none.toml"))
    assert code == 2 and err.startswith("counterfloor central: --office-config:")
    code, _, err = run_cli(capsys, *base, "--http-port", "70000")
    assert code == 2 and "not a TCP port" in err


def test_a_workers_pages_show_its_estimate_rounds(tmp_path: Path) -> None:
    pages = WebPages(WebOptions(0, office_configs=(str(EXAMPLES / "nerima.toml"),)), str(tmp_path / "store.db"))
    pages.start()
    try:
        with office_floor(tmp_path) as floor:
            floor.worker.on_round = pages.show
            floor.issue(TOKENS[0])
            status, _, body = get(f"{pages.url}/{OFFICE}/t/{TOKENS[0]}")
            assert status == 200 and "A-001" in body
            status, _, body = get(f"{pages.url}/")
            assert status == 200 and "<svg" in body  # the learned forecaster's page (no history yet: its stand-in)
    finally:
        pages.close()
    assert WebOptions(8080).for_worker(2).port == 8082 and WebOptions(0).for_worker(2).port == 0


def test_after_closing_the_pages_say_so_rather_than_a_days_wait(tmp_path: Path) -> None:
    """Past closing a ticket taken now would not be called today (the estimate's "a day",
    office/estimate.py): the public page says reception is over, a ticket still waiting says its
    turn may not come, and neither shows 1440 minutes."""
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        floor.at = floor.at.replace(hour=19, minute=30)
        floor.event("counter_closed", counter="5")
        evening = floor.at + timedelta(minutes=1)
        with served(floor.hub, clock=lambda: evening) as server:
            status, _, body = get(f"{server.url}/{OFFICE}/?lang=ja")
            assert status == 200 and "受付時間外です" in body
            assert "1440" not in body
            status, _, body = get(f"{server.url}/{OFFICE}/t/{TOKENS[0]}?lang=en")
            assert status == 200 and "may not come before closing" in body
            assert "1440" not in body


def test_a_call_reaches_the_page_before_the_next_estimate_round(tmp_path: Path) -> None:
    """Estimates wait for a burst of events to end (central/office_state.py); a call does not: the
    worker hands the pages a view as soon as it has taken the `called` event."""
    shown: list[str] = []
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        floor.worker.on_round = lambda state: shown.append(office_view(state).tickets[token_hash(TOKENS[0])].status)
        floor.seq += 1
        record = {"v": 1, "seq": floor.seq, "ts": (floor.at + timedelta(seconds=5)).isoformat(timespec="milliseconds"),
                  "office": OFFICE, "type": "called", "ticket": "A-001", "counter": "5", "session": 1}  # fmt: skip
        floor.worker.deliver(f"counterfloor/{OFFICE}/events", json.dumps(record).encode())
        floor.worker.turn(floor.worker.clock())  # one turn: no estimate round is due yet
        assert shown == ["called"]


def test_a_missed_call_says_so_requeued_then_with_the_offices_rule(tmp_path: Path) -> None:
    """rules.no_show = "requeue_once": the first missed call puts the ticket back (its page says
    so and shows its new place); the second ends it with what to do (the office's [alerts] rejoin,
    the default here)."""
    with office_floor(tmp_path) as floor, served(floor.hub) as server:
        mine = floor.issue(TOKENS[0])
        floor.event("called", ticket=mine, counter="5")
        floor.event("no_show", ticket=mine, counter="5", requeued=True)
        status, _, html = get(f"{server.url}/{OFFICE}/t/{TOKENS[0]}?lang=en")
        assert status == 200 and 'data-status="waiting"' in html
        assert "put back at the end of the queue" in html
        floor.event("called", ticket=mine, counter="5")
        floor.event("no_show", ticket=mine, counter="5", requeued=False)
        status, _, html = get(f"{server.url}/{OFFICE}/t/{TOKENS[0]}?lang=en")
        assert 'data-status="no_show"' in html and "did not come to the counter" in html
        assert "floor manager within 30 minutes" in html
        _, _, html = get(f"{server.url}/{OFFICE}/t/{TOKENS[0]}?lang=ja")
        assert "30分以内にフロア案内係へ" in html
