"""The residents' pages in a real browser: Playwright driving Debian's Chromium (never
`playwright install`). A ticket page updates by itself when its ticket is called, the public page
has its forecast chart, a bad token is refused with a 404, and no page fetches anything from
anywhere but central; the facilities dashboard is behind its login, and a command sent from it
makes the round trip through a real Mosquitto to a real gateway and back, its ack shown live and
its audit event in the gateway's journal. Screenshots are checked for structure and that they
are not blank — no pixel goldens. Without Chromium a test skips, saying how to install it (fails
under CI)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from central.web import ViewHub
from central.web.auth import Staff
from central.web.commands import CommandDesk
from central.web.names import Names
from central.worker import WorkerConfig
from gateway.mqtt_client import broker_login
from office import events as ev
from office.config import BrokerSettings
from tests.conftest import EXAMPLES
from tests.floor_support import floor_without_devices, held_gateway
from tests.mqtt_support import plain_mosquitto, require_tool
from tests.web_support import (
    OFFICE,
    STAFF_PASSWORD,
    STAFF_USER,
    TOKENS,
    central_thread,
    office_floor,
    served,
    staff_file,
)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 640}


def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, for a module's tests (the fixture's body)."""
    path = require_tool("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def not_blank(png: bytes, path: Path) -> None:
    """The screenshot, kept beside the test's files, has real content: many colours, contrast."""
    path.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size[0] >= 300
    assert max(ImageStat.Stat(image).stddev) > 20, "the screenshot is (nearly) one colour"
    assert len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16


def outside_requests(page: Any, base: str) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if not r.url.startswith(base) else None)
    return seen


def test_a_ticket_page_updates_by_itself_when_called(browser: Any, tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        mine = floor.issue(TOKENS[1])
        with served(floor.hub) as server:
            page = browser.new_page(viewport=PHONE)
            outside = outside_requests(page, server.url)
            response = page.goto(f"{server.url}/{OFFICE}/t/{TOKENS[1]}")
            assert response.status == 200
            page.wait_for_function("document.querySelector('#main') !== null")
            assert page.locator(".number").inner_text() == mine
            assert "あなたの前に 1人" in page.locator("#ticket").inner_text()
            # Fits a small phone: nothing wider than its screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            not_blank(page.screenshot(full_page=True), tmp_path / "ticket-waiting.png")
            page.evaluate("window.notReloaded = true")
            page.wait_for_timeout(300)  # the stream is open (its first event is the page's state)

            floor.event("called", ticket="A-001", counter="5")
            page.locator("#ticket").get_by_text("まもなくお呼びします").wait_for(timeout=10_000)
            floor.event("called", ticket=mine, counter="5")
            page.locator('#ticket[data-status="called"]').wait_for(timeout=10_000)
            assert page.locator(".call").inner_text() == "5番窓口へお越しください"
            assert page.evaluate("window.notReloaded") is True  # updated in place, not reloaded
            not_blank(page.screenshot(full_page=True), tmp_path / "ticket-called.png")

            # The language switch keeps the page; English beside Japanese.
            page.get_by_role("link", name="English").click()
            page.wait_for_url(f"**/{OFFICE}/t/{TOKENS[1]}?lang=en")
            assert page.locator(".call").inner_text() == "Please go to Counter 5"
            assert page.locator("html").get_attribute("lang") == "en"
            assert outside == []
            page.close()


def test_a_bad_token_is_refused(browser: Any, tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        with served(floor.hub) as server:
            page = browser.new_page(viewport=PHONE)
            for token in (TOKENS[2], "not-a-token", TOKENS[0][:-1]):
                response = page.goto(f"{server.url}/{OFFICE}/t/{token}")
                assert response.status == 404
                assert "not found" in page.locator("body").inner_text()
                assert page.locator("#ticket").count() == 0
            page.close()


def test_the_public_page_has_waits_hours_and_a_forecast_chart(browser: Any, tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        with served(floor.hub) as server:
            page = browser.new_page(viewport={"width": 1024, "height": 900})
            outside = outside_requests(page, server.url)
            assert page.goto(f"{server.url}/").status == 200
            office = page.locator("#office-nerima")
            assert office.locator("h2").inner_text() == "練馬区民事務所"
            assert office.get_attribute("data-mode") == "office"
            assert "08:30–17:00" in office.locator(".hours").inner_text()
            move = office.locator('tr[data-service="move"]')
            assert move.locator(".waiting").inner_text() == "1人"
            charts = page.locator('figure.chart svg[role="img"]')
            assert charts.count() == 3 and charts.first.is_visible()
            assert charts.first.bounding_box()["height"] > 40
            not_blank(page.screenshot(full_page=True), tmp_path / "public.png")
            page.wait_for_timeout(300)
            floor.issue(TOKENS[1])  # the count follows without a reload
            page.locator('#office-nerima tr[data-service="move"] .waiting', has_text="2人").wait_for(timeout=10_000)
            page.get_by_role("link", name="English").click()
            page.wait_for_url("**/?lang=en")
            assert page.locator("#office-nerima h2").inner_text() == "Nerima Ward Office"
            assert outside == []
            page.close()


def test_the_dashboard_is_behind_a_login_and_logout_ends_it(browser: Any, tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue(TOKENS[0])
        staff = Staff.from_file(staff_file(tmp_path))
        with served(floor.hub, staff=staff) as server:
            page = browser.new_page(viewport={"width": 1024, "height": 900})
            outside = outside_requests(page, server.url)
            # Logged out: the dashboard sends to the login.
            page.goto(f"{server.url}/dashboard")
            page.wait_for_url("**/login?lang=ja")
            assert page.locator("#staff-nerima").count() == 0
            assert page.locator("h1").inner_text() == "施設管理 ログイン"

            page.get_by_label("ユーザー名").fill(STAFF_USER)
            page.get_by_label("パスワード").fill("not the password at all")
            page.get_by_role("button", name="ログイン").click()
            page.locator("#login-error").wait_for()
            assert page.locator("#login-error").inner_text() == "ユーザー名またはパスワードが違います"
            assert page.locator("#staff-nerima").count() == 0

            page.get_by_label("ユーザー名").fill(STAFF_USER)
            page.get_by_label("パスワード").fill(STAFF_PASSWORD)
            page.get_by_role("button", name="ログイン").click()
            page.wait_for_url("**/dashboard?lang=ja")
            office = page.locator("#staff-nerima")
            assert office.locator("h2").inner_text().startswith("練馬区民事務所")
            assert office.get_attribute("data-gateway") == "unknown"  # no birth in this test: a problem
            assert "ゲートウェイの状態が届いていません" in office.locator(".problems").inner_text()
            assert office.locator('tr[data-counter="5"] td').first.inner_text() == "受付中"
            assert page.locator("#user").inner_text() == STAFF_USER
            assert page.context.cookies()[0]["httpOnly"] is True
            not_blank(page.screenshot(full_page=True), tmp_path / "dashboard.png")

            # The filter and the language switch.
            page.get_by_label("問題のある事務所のみ").check()
            page.get_by_role("button", name="絞り込む").click()
            page.wait_for_url("**/dashboard?lang=ja&office=&problems=1")
            assert page.locator("#staff-nerima").count() == 1
            page.get_by_role("link", name="English").click()
            page.wait_for_url("**/dashboard?lang=en")
            assert page.locator("h1").inner_text() == "Facilities dashboard"

            page.get_by_role("button", name="Log out").click()
            page.wait_for_url("**/login?lang=en")
            page.goto(f"{server.url}/dashboard")
            page.wait_for_url("**/login?lang=ja")  # the session has ended
            assert len(staff.sessions) == 0
            assert outside == []
            page.close()


SAFETY_S = 30.0  # a bound on waits that take a few turns when the code is right


def test_a_command_round_trip_with_its_ack(browser: Any, tmp_path: Path) -> None:
    """Staff pause counter 3 of oizumi from the dashboard: central publishes the command with the
    signed-in user as `by`, a real gateway on a real Mosquitto carries it out and acks it, and the
    page shows "ok" without a reload; the gateway's journal has the audit event with that user as
    sender, and it comes back to the page's audit list. A refused command shows its error."""
    office = "oizumi"
    with plain_mosquitto(tmp_path / "mosquitto") as broker:
        url = f"mqtt://127.0.0.1:{broker.port}"
        config, text = floor_without_devices(tmp_path, "cycle_ms = 2")
        gw, _ = held_gateway(tmp_path, config, text, broker_url=url)  # Monday 10:00: open
        gw.start()
        hub, desk = ViewHub(), CommandDesk()
        store = str(tmp_path / "central.db")
        central_config = WorkerConfig(store, login=broker_login(BrokerSettings(), url=url), train=False)
        staff = Staff.from_file(staff_file(tmp_path))
        names = Names.from_configs([EXAMPLES / "oizumi.toml"])
        try:
            assert gw.handle({"cmd": "open", "counter": "3"})["ok"]

            def until(what: str, cond: Callable[[], bool]) -> None:
                """Steps the gateway (this thread's) until `cond` holds; central and the web run in theirs."""
                deadline = time.monotonic() + SAFETY_S
                while not cond():
                    assert time.monotonic() < deadline, f"not within {SAFETY_S} s: {what}"
                    gw.step()

            def counter_3() -> str | None:
                view = hub.view(office)
                return next((c.status for c in view.counters if c.counter == "3"), None) if view else None

            with central_thread(central_config, hub, desk), served(hub, staff=staff, desk=desk, names=names) as server:
                until("central has the office, counter 3 open", lambda: counter_3() == "open")
                page = browser.new_page(viewport={"width": 1024, "height": 900})
                outside = outside_requests(page, server.url)
                page.goto(f"{server.url}/dashboard")
                page.get_by_label("ユーザー名").fill(STAFF_USER)
                page.get_by_label("パスワード").fill(STAFF_PASSWORD)
                page.get_by_role("button", name="ログイン").click()
                page.wait_for_url("**/dashboard?lang=ja")
                section = page.locator(f"#staff-{office}")
                assert section.get_attribute("data-gateway") == "online"

                section.locator("summary").click()  # the remote commands
                form = section.locator('form[data-form="counter"]')
                form.locator('select[name="counter"]').select_option("3")
                form.get_by_role("button", name="一時休止").click()
                page.wait_for_url(f"**/dashboard?lang=ja#staff-{office}")
                page.evaluate("window.notReloaded = true")
                row = page.locator(f'#cmds-{office} tr[data-cmd="pause"]')
                assert row.count() == 1
                request = row.get_attribute("data-id")
                assert request is not None and request.startswith(desk.prefix)

                ok = page.locator(f'#cmds-{office} tr[data-cmd="pause"][data-state="ok"]')
                until("the ack shown", lambda: ok.count() == 1)
                assert ok.locator(".outcome").inner_text() == "成功"
                assert STAFF_USER in ok.inner_text() and "counter=3" in ok.inner_text()
                until("counter 3 paused, live", lambda: counter_3() == "paused")
                page.locator(f'#live-{office} tr[data-counter="3"][data-status="paused"]').wait_for(timeout=10_000)
                audited = page.locator(f'#audit-{office} tr[data-id="{request}"]')
                until("the audit record back from the gateway's journal", lambda: audited.count() == 1)
                assert audited.get_attribute("data-sender") == STAFF_USER and audited.get_attribute("data-ok") == "true"
                assert page.evaluate("window.notReloaded") is True  # all of it live, without a reload
                assert gw.journal is not None
                (audit,) = [e for e in gw.journal.events_after(0, 10**6) if isinstance(e, ev.RemoteCommand)]
                assert (audit.id, audit.cmd, audit.sender, audit.ok) == (request, "pause", STAFF_USER, True)

                # A command the gateway refuses: its error, in its words.
                section.locator("summary").click()  # closed again after the page's redirect
                reprint = section.locator('form[data-form="reprint"]')
                reprint.get_by_label("番号").fill("A-001")
                reprint.get_by_role("button", name="再発行").click()
                page.wait_for_url(f"**/dashboard?lang=ja#staff-{office}")
                refused = page.locator(f'#cmds-{office} tr[data-cmd="reprint"][data-state="error"]')
                until("the refusal shown", lambda: refused.count() == 1)
                assert "no printers are configured" in refused.locator(".detail").inner_text()
                not_blank(page.screenshot(full_page=True), tmp_path / "dashboard-command.png")

                # Bad input: the page names the problem, and nothing is handed to central's worker.
                section.locator("summary").click()
                reprint.get_by_label("番号").fill("A 1")
                reprint.get_by_role("button", name="再発行").click()
                error = page.locator("#cmd-error")
                error.wait_for(timeout=10_000)
                assert (
                    "番号「A 1」が正しくありません" in error.inner_text() and "何も送っていません" in error.inner_text()
                )
                assert [c.cmd for c in desk.commands(office)] == ["reprint", "pause"]
                assert outside == []
                page.close()
        finally:
            gw.close()
