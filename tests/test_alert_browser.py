"""The ticket page's alerts in a real browser: Playwright driving Debian's Chromium (never
`playwright install`), over a real central worker, its SQLite store, the alerts service and the
web app (as tests/test_alert_web.py builds them).

One tap arms the page's own alert; it then follows the live ticket by central's rules (near once
per wait, then called, naming the counter), with the title flashing and a banner. Web Push: the
page registers its service worker and tries to subscribe — headless Chromium has no push service
to reach (Playwright's contexts are incognito-like: Chromium refuses push there outright), so the
page says push is not available and its own alerts go on; a push is then delivered to the
registered service worker over the DevTools protocol (`ServiceWorker.deliverPushMessage`), and the
notification it shows is read back. The page's side of a subscription that did succeed is
checked with the browser's `PushManager.subscribe` stood in for (the push service's part only).
E-mail needs the consent. No page fetches anything from another origin. Without Chromium a test
skips (fails under CI)."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central.alerts.engine import Choice
from central.alerts.notice import Notice
from central.alerts.service import AlertService
from central.alerts.webpush import VapidKeys, push_payload
from central.web.alerts_api import AlertsWeb
from central.web.app import token_hash
from tests.test_web_browser import PHONE, chromium, not_blank, outside_requests
from tests.web_support import OFFICE, START, TOKENS, OfficeDriver, get, names, office_floor, served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


WAIT_MS = 10_000  # a bound on what takes a few turns of the worker, the stream and the page
ADDRESS = "yamada.hanako@example.jp"
FLASH_JA = "★ まもなく順番です"
NOW = START + timedelta(minutes=5)  # the pages' clock in served(); the browser's is set to it


def near_ja(words: str) -> re.Pattern[str]:
    """A "near" banner: `words`, then the minutes to the earliest expected call (the estimate's,
    which a later round may change while the test reads it: checked exactly in English)."""
    return re.compile(f"^{re.escape(words)} / 約[1-9][0-9]*分$")


def title_is(page: Any, title: str) -> None:
    page.wait_for_function("t => document.title === t", arg=title, timeout=WAIT_MS)


def until(what: str, cond: Any, page: Any) -> None:
    """Polls `cond` (with a turn of the page's event loop between tries) until it holds."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not cond():
        assert time.monotonic() < deadline, f"not within {WAIT_MS} ms: {what}"
        page.evaluate("new Promise(r => requestAnimationFrame(() => r()))")


@dataclass
class Office:
    floor: OfficeDriver
    service: AlertService
    url: str
    push_key: str


@contextmanager
def alert_office(tmp_path: Path) -> Iterator[Office]:
    """Three move tickets (A-001 … A-003, for TOKENS[0] … [2]); Web Push (a real VAPID key) and
    e-mail offered; the alerts service's outboxes drop what it sends (the browser half only)."""
    with office_floor(tmp_path) as floor:
        for token in TOKENS:
            floor.issue(token)
        service = AlertService(floor.hub, str(tmp_path / "central.db"), names(), lambda o, c: None, clock=lambda: START)
        service.start()
        try:
            key = VapidKeys.generate().application_server_key
            web = AlertsWeb(service, push_key=key, mail_offices=frozenset({OFFICE}))
            with served(floor.hub, alerts=web) as server:
                yield Office(floor, service, server.url, key)
        finally:
            service.close()


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def open_page(browser: Any, office: Office, token: str, lang: str = "ja") -> tuple[Any, Any, list[str]]:
    """A new context (its own sessionStorage) with the ticket page open and its script running.
    (Nothing waits for the live stream: its first event is the ticket as it is then, so a change
    made before it opens still reaches the page.)"""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.clock.set_fixed_time(NOW)  # the pages' clock (tests/web_support.py: served)
    outside = outside_requests(page, office.url)
    query = "?lang=en" if lang == "en" else ""
    assert page.goto(f"{office.url}/{OFFICE}/t/{token}{query}").status == 200
    expect()(page.locator("#alerts")).to_be_visible()  # the script has run (it shows its controls)
    return context, page, outside


def kinds(page: Any) -> list[str]:
    return page.evaluate("window.__alerts.map(a => a.kind)")  # type: ignore[no-any-return]


def ahead(page: Any, n: int) -> None:
    """The live fragment says `n` ahead (the page has evaluated it: the MutationObserver runs
    before any script of the test's)."""
    page.locator(f'#ticket[data-ahead="{n}"]').wait_for(timeout=WAIT_MS)


def test_one_tap_arms_the_alerts_and_each_goes_once(browser: Any, tmp_path: Path) -> None:
    with alert_office(tmp_path) as office:
        context, page, outside = open_page(browser, office, TOKENS[2])  # two ahead
        try:
            see = expect()
            panel = page.locator("#alerts")
            see(panel).to_be_visible()
            # The office's default and range (examples/nerima.toml: [alerts] defaults, 1-10 / 5-30).
            number = page.locator("#alert-ahead")
            assert (number.input_value(), number.get_attribute("min"), number.get_attribute("max")) == ("3", "1", "10")
            assert page.locator("#alert-minutes").input_value() == "10"
            assert page.locator("#alert-by-ahead").is_checked()
            assert page.evaluate("document.querySelector('#alerts script').type") == "application/json"
            # The controls fit a small phone and are big enough to touch.
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            arm = page.get_by_role("button", name="順番が近づいたら知らせる")
            assert arm.bounding_box()["height"] >= 48 and number.bounding_box()["height"] >= 48
            shot = page.screenshot(full_page=True)
            not_blank(shot, tmp_path / "alerts-ja.png")
            Path("/tmp/alert-page-ja.png").write_bytes(shot)

            number.fill("1")
            arm.click()
            see(panel).to_have_attribute("data-armed", "1")
            see(page.locator("#alert-state")).to_have_text("お知らせ：オン　この画面を開いたままにしてください")
            see(panel).to_have_attribute("data-wake-lock", "on")  # headless Chromium grants the screen lock
            assert kinds(page) == []  # two ahead: not yet
            assert page.title() == "受付番号 A-003"

            # A-002 held: one ahead, near.
            office.floor.event("held", ticket="A-002")
            banner = page.locator("#alert-banner")
            see(banner).to_be_visible(timeout=WAIT_MS)
            see(banner.locator("#alert-banner-text")).to_have_text(near_ja("まもなく順番です：あと1人"))
            assert kinds(page) == ["near"]
            assert page.evaluate("document.documentElement.dataset.alerting") == "near"
            # The title flashes: the alert's words, then the page's own again, and again.
            title_is(page, FLASH_JA)
            title_is(page, "受付番号 A-003")
            title_is(page, FLASH_JA)
            alert = page.evaluate("window.__alerts[0]")
            # The beeps played (the arming tap unlocked the sound) and the phone was asked to vibrate.
            assert (alert["sound"], alert["vibrate"]) == ("running", True)

            # Back past the threshold (A-002 returned: two ahead) and forward again: no second "near".
            office.floor.event("returned", ticket="A-002")
            ahead(page, 2)
            office.floor.event("called", ticket="A-001", counter="5")
            ahead(page, 1)
            assert kinds(page) == ["near"]
            # Touched: the flashing stops; the banner stays until its button.
            page.locator("#alert-ok").click()
            see(banner).to_be_hidden()
            assert page.title() == "受付番号 A-003"
            assert page.evaluate("document.documentElement.dataset.alerting") is None

            # Called: its own alert, naming the counter.
            office.floor.event("served", ticket="A-001", counter="5")
            office.floor.event("called", ticket="A-003", counter="5")
            see(banner).to_be_visible(timeout=WAIT_MS)
            see(banner.locator("#alert-banner-text")).to_have_text("呼ばれました：5番窓口へお越しください")
            see(banner).to_have_class("alert-banner alert-called")
            assert kinds(page) == ["near", "called"]
            title_is(page, "★ 順番です")
            not_blank(page.screenshot(full_page=True), tmp_path / "alerts-called-ja.png")

            # A reload keeps this tab's state: armed, and nothing alerted twice.
            page.reload()
            expect()(page.locator("#alerts")).to_be_visible()  # the script has run (it shows its controls)
            see(panel).to_have_attribute("data-armed", "1")
            assert kinds(page) == [] and page.locator("#alert-banner").is_hidden()
            assert page.locator("#alert-ahead").input_value() == "1"

            # Served: the alerts are over, the controls go.
            office.floor.event("served", ticket="A-003", counter="5")
            see(panel).to_be_hidden(timeout=WAIT_MS)
            assert outside == []
        finally:
            context.close()


def test_a_missed_call_requeued_starts_a_second_wait(browser: Any, tmp_path: Path) -> None:
    """As central's rules: called, missed and put back at the end of the queue (told once), then
    a second wait with its own "near" and "called"; a final no-show is told and ends the alerts."""
    with alert_office(tmp_path) as office:
        context, page, outside = open_page(browser, office, TOKENS[0])  # next
        try:
            see = expect()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # Script errors and refusals (a Content-Security-Policy violation is one); a failed load
            # is told by its response, below: only the browser's own favicon.ico may be missing.
            page.on(
                "console", lambda m: errors.append(m.text) if m.type == "error" and "to load" not in m.text else None
            )
            page.on("response", lambda r: errors.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
            text = page.locator("#alert-banner-text")
            page.locator("#alert-ahead").fill("1")
            page.get_by_role("button", name="順番が近づいたら知らせる").click()
            see(text).to_have_text(near_ja("まもなく順番です：次に呼ばれます"))
            office.floor.event("called", ticket="A-001", counter="5")
            see(text).to_have_text("呼ばれました：5番窓口へお越しください", timeout=WAIT_MS)
            office.floor.event("no_show", ticket="A-001", counter="5", requeued=True)
            see(text).to_have_text("お呼び出しに応答がなかったため、列の最後に戻りました", timeout=WAIT_MS)
            ahead(page, 2)
            assert kinds(page) == ["near", "called", "no_show"]
            see(page.locator("#alert-banner")).to_have_class("alert-banner alert-no_show")
            office.floor.event("called", ticket="A-002", counter="5")
            ahead(page, 1)
            see(text).to_have_text(near_ja("まもなく順番です：あと1人"))
            office.floor.event("called", ticket="A-001", counter="6")
            see(text).to_have_text("呼ばれました：6番窓口へお越しください", timeout=WAIT_MS)
            assert kinds(page) == ["near", "called", "no_show", "near", "called"]
            office.floor.event("no_show", ticket="A-001", counter="6", requeued=False)
            see(page.locator("#alerts")).to_be_hidden(timeout=WAIT_MS)
            see(text).to_have_text("呼ばれましたが、窓口にお越しになりませんでした")
            assert kinds(page) == ["near", "called", "no_show", "near", "called", "no_show"]
            assert errors == [] and outside == []
        finally:
            context.close()


def test_about_m_minutes_before_follows_the_clock_in_english(browser: Any, tmp_path: Path) -> None:
    """ "About 10 minutes before" fires from the estimate's earliest call and the clock alone (the
    page's 5 s tick, no new event); the words are English on the English page."""
    with alert_office(tmp_path) as office:
        context, page, outside = open_page(browser, office, TOKENS[2], lang="en")
        try:
            see = expect()

            def call_from() -> datetime:
                return datetime.fromisoformat(page.locator("#ticket").get_attribute("data-call-from") or "")

            start = call_from()
            page.clock.set_fixed_time(start - timedelta(minutes=20))  # 20 minutes before the earliest call
            page.locator("#alert-by-minutes").check()
            assert page.locator("#alert-minutes").input_value() == "10"
            not_blank(page.screenshot(full_page=True), tmp_path / "alerts-en.png")
            page.get_by_role("button", name="Alert me when my turn is near").click()
            see(page.locator("#alerts")).to_have_attribute("data-armed", "1")
            assert kinds(page) == []
            # 11½ minutes before (10 and central's margin, max(2 min, a fifth of M): 12): due at the
            # page's next tick, with no event at all.
            page.clock.set_fixed_time(start - timedelta(minutes=11, seconds=30))
            see(page.locator("#alert-banner")).to_be_visible(timeout=WAIT_MS)
            see(page.locator("#alert-banner-text")).to_have_text("Your turn is near: 2 people ahead / about 12 min")
            assert kinds(page) == ["near"]
            title_is(page, "★ Your turn is near")

            # The estimate moves back past the threshold, then forward again: not alerted twice.
            page.clock.set_fixed_time(start - timedelta(hours=1))
            office.floor.event("held", ticket="A-001")
            ahead(page, 1)  # evaluated: far from the call
            later = call_from() - timedelta(minutes=5)
            page.clock.set_fixed_time(later)
            office.floor.event("returned", ticket="A-001")
            ahead(page, 2)  # evaluated: due again by the rule, but sent already
            assert call_from() - later <= timedelta(minutes=10)
            assert kinds(page) == ["near"]

            office.floor.event("called", ticket="A-003", counter="5")
            see(page.locator("#alert-banner-text")).to_have_text(
                "You are called: please go to Counter 5", timeout=WAIT_MS
            )
            assert kinds(page) == ["near", "called"]
            assert outside == []
        finally:
            context.close()


def test_push_is_offered_said_unavailable_here_and_the_service_worker_shows_a_push(
    browser: Any, tmp_path: Path
) -> None:
    with alert_office(tmp_path) as office:
        context = browser.new_context(viewport=PHONE)
        try:
            see = expect()
            context.grant_permissions(["notifications"], origin=office.url)
            page = context.new_page()
            page.clock.set_fixed_time(NOW)
            outside = outside_requests(page, office.url)
            cdp = context.new_cdp_session(page)
            registrations: dict[str, str] = {}
            cdp.on(
                "ServiceWorker.workerRegistrationUpdated",
                lambda e: registrations.update(
                    {r["scopeURL"]: r["registrationId"] for r in e["registrations"] if not r["isDeleted"]}
                ),
            )
            cdp.send("ServiceWorker.enable")
            page_url = f"{office.url}/{OFFICE}/t/{TOKENS[2]}"  # two ahead
            assert page.goto(page_url).status == 200
            expect()(page.locator("#alerts")).to_be_visible()  # the script has run (it shows its controls)
            page.locator("#alert-ahead").fill("1")
            page.get_by_role("button", name="順番が近づいたら知らせる").click()

            push = page.get_by_role("button", name="この端末にも通知する（プッシュ通知）")
            see(push).to_be_visible()
            push.click()
            status = page.locator("#alert-push-status")
            see(status).to_have_attribute("data-state", "unavailable", timeout=20_000)
            see(status).to_have_text(
                "このブラウザではプッシュ通知を使えません。この画面を開いたままにしてください（画面でのお知らせは使えます）"
            )
            # Why, for whoever looks (not shown): Chromium refuses push in an incognito-like context.
            assert "AbortError" in (status.get_attribute("data-error") or "")
            assert page.evaluate("fetch(location.pathname + '/alerts').then(r => r.json())")["chosen"] is None

            # The page's own alert goes on: A-001 called, one ahead: near.
            office.floor.event("called", ticket="A-001", counter="5")
            see(page.locator("#alert-banner")).to_be_visible(timeout=WAIT_MS)
            see(page.locator("#alert-banner-text")).to_have_text(near_ja("まもなく順番です：あと1人"))
            assert kinds(page) == ["near"]

            # The service worker is registered for this page alone, served beside the pages.
            scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
            assert scope == page_url
            status_code, headers, body = get(f"{office.url}/{OFFICE}/t/sw.js")
            assert status_code == 200 and headers["content-type"].startswith("application/javascript")
            assert headers["cache-control"] == "no-store" and "showNotification" in body
            assert "default-src 'self'" in headers["content-security-policy"]
            until("the registration's CDP event", lambda: scope in registrations, page)
            registration = registrations[scope]

            # A push, as central's push channel makes it, delivered to the worker over CDP.
            page.evaluate(
                "window.__pushes = []; navigator.serviceWorker.addEventListener('message', e => __pushes.push(e.data))"
            )
            notice = Notice(
                kind="called",
                office=OFFICE,
                token_hash=token_hash(TOKENS[2]),
                ticket="A-003",
                lang="ja",
                office_name="練馬区民事務所",
                service_name="転入・転出・転居の届出",
                counter_name="5番窓口",
            )
            payload = push_payload(notice)
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {"origin": office.url, "registrationId": registration, "data": json.dumps(payload)},
            )
            page.wait_for_function("() => window.__pushes.length > 0", timeout=WAIT_MS)
            assert page.evaluate("window.__pushes") == [{"type": "push", "kind": "called", "tag": payload["tag"]}]
            shown = page.evaluate(
                "navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.map(n =>"
                " ({title: n.title, body: n.body, tag: n.tag, lang: n.lang, url: n.data.url,"
                " renotify: n.renotify, requireInteraction: n.requireInteraction})))"
            )
            assert shown == [
                {
                    "title": payload["title"],
                    "body": payload["body"],
                    "tag": payload["tag"],
                    "lang": "ja",
                    "url": f"{page_url}?lang=ja",
                    "renotify": True,
                    "requireInteraction": True,
                }
            ]
            assert shown[0]["title"] == "順番になりました" and "5番窓口へお越しください" in shown[0]["body"]
            assert outside == []
        finally:
            context.close()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


STAND_IN_SUBSCRIBE = """
([endpoint, p256dh, auth]) => {
  PushManager.prototype.subscribe = function (options) {
    window.__subscribeKey = Array.from(new Uint8Array(options.applicationServerKey));
    return Promise.resolve({toJSON: () => ({endpoint, expirationTime: null, keys: {p256dh, auth}})});
  };
}
"""


def test_a_push_subscription_is_stored_and_shown(browser: Any, tmp_path: Path) -> None:
    """The page's half once the browser's push service answers: Chromium cannot reach one here,
    so `PushManager.subscribe` is stood in for with a subscription as a push service returns it;
    the page sends it with its choice, and central stores it and says so."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    endpoint = "https://push.example.net/send/abc123"
    with alert_office(tmp_path) as office:
        context = browser.new_context(viewport=PHONE)
        try:
            see = expect()
            context.grant_permissions(["notifications"], origin=office.url)
            context.add_init_script(
                script=f"({STAND_IN_SUBSCRIBE})({json.dumps([endpoint, b64(point), b64(os.urandom(16))])})"
            )
            page = context.new_page()
            outside = outside_requests(page, office.url)
            assert page.goto(f"{office.url}/{OFFICE}/t/{TOKENS[2]}?lang=en").status == 200
            page.get_by_role("button", name="Also notify this phone (push notification)").click()
            status = page.locator("#alert-push-status")
            see(status).to_have_attribute("data-state", "on", timeout=WAIT_MS)
            see(status).to_have_text("Notifications to this phone: on")
            # Subscribed with central's VAPID key, decoded from base64url.
            key = bytes(page.evaluate("window.__subscribeKey"))
            assert b64(key) == office.push_key
            chosen = page.locator("#alert-chosen")
            see(chosen).to_contain_text("Set: when 3 people are ahead")
            see(chosen).to_contain_text("Notifications to this phone: on")
            sub = office.service.subscription(OFFICE, token_hash(TOKENS[2]))
            assert sub is not None and "push" in sub.targets and sub.watch.choice == Choice("ahead", 3)
            # A change of the choice follows to central, the subscription kept.
            minutes = page.locator("#alert-minutes")
            minutes.fill("15")
            minutes.blur()
            see(chosen).to_contain_text("Set: about 15 minutes before my turn", timeout=WAIT_MS)
            sub = office.service.subscription(OFFICE, token_hash(TOKENS[2]))
            assert sub is not None and "push" in sub.targets and sub.watch.choice == Choice("minutes", 15)
            # Out of the office's range: held to it.
            minutes.fill("99")
            minutes.blur()
            see(chosen).to_contain_text("Set: about 30 minutes before my turn", timeout=WAIT_MS)
            assert minutes.input_value() == "30"
            assert outside == []
        finally:
            context.close()


def test_e_mail_needs_the_consent_and_stop_ends_everything(browser: Any, tmp_path: Path) -> None:
    with alert_office(tmp_path) as office:
        context, page, outside = open_page(browser, office, TOKENS[0])
        try:
            see = expect()
            form = page.locator("#alert-mail")
            see(form).to_be_visible()
            see(form.locator("#alert-mail-consent-text")).to_have_text(
                "保存するのは、入力したメールアドレスとこのページへのリンクだけです。"
                "この番号札の用件が終わるまで保存し、終わったら削除します。お知らせ以外には使いません。"
            )
            page.get_by_label("メールアドレス").fill(ADDRESS)
            page.get_by_role("button", name="メールを登録する").click()
            error = page.locator("#alert-error")
            see(error).to_be_visible(timeout=WAIT_MS)
            see(error.locator(".alert-error-words")).to_have_text("同意の欄にチェックを入れてください")
            see(error.locator(".alert-error-detail")).to_have_text('mail: the consent must be given ("consent": true)')
            assert office.service.subscription(OFFICE, token_hash(TOKENS[0])) is None

            page.get_by_label("上の内容に同意します").check()
            page.get_by_role("button", name="メールを登録する").click()
            see(page.locator("#alert-mail-status")).to_have_text("メール：ya***@example.jp", timeout=WAIT_MS)
            see(error).to_be_hidden()
            see(page.locator("#alert-chosen")).to_contain_text("メール：ya***@example.jp")
            assert ADDRESS not in page.content()  # shown masked; the field was cleared by no one, but
            # the page's text never repeats it
            sub = office.service.subscription(OFFICE, token_hash(TOKENS[0]))
            assert sub is not None and "mail" in sub.targets

            stop = page.get_by_role("button", name="お知らせをやめる")
            stop.click()
            see(page.locator("#alert-chosen")).to_be_hidden(timeout=WAIT_MS)
            see(page.locator("#alert-state")).to_have_text("お知らせを止めました")
            assert office.service.subscription(OFFICE, token_hash(TOKENS[0])) is None
            assert outside == []
        finally:
            context.close()


def test_the_page_works_without_the_alerts_service_and_without_javascript(browser: Any, tmp_path: Path) -> None:
    """No alerts service (central without --alerts): the page's own alert only, no channel
    offered. Without JavaScript the controls are not shown at all: the ticket page as before."""
    with office_floor(tmp_path) as floor:
        mine = floor.issue(TOKENS[0])
        with served(floor.hub) as server:
            context = browser.new_context(viewport=PHONE)
            try:
                see = expect()
                page = context.new_page()
                page.clock.set_fixed_time(NOW)
                assert page.goto(f"{server.url}/{OFFICE}/t/{TOKENS[0]}").status == 200
                expect()(page.locator("#alerts")).to_be_visible()  # the script has run (it shows its controls)
                see(page.locator("#alerts")).to_be_visible()
                page.get_by_role("button", name="順番が近づいたら知らせる").click()
                see(page.locator("#alert-banner")).to_be_visible(timeout=WAIT_MS)
                see(page.locator("#alert-banner-text")).to_have_text(near_ja("まもなく順番です：次に呼ばれます"))
                assert page.locator("#alert-push").is_hidden() and page.locator("#alert-mail").is_hidden()
                floor.event("called", ticket=mine, counter="5")
                see(page.locator("#alert-banner-text")).to_have_text(
                    "呼ばれました：5番窓口へお越しください", timeout=WAIT_MS
                )
            finally:
                context.close()
            context = browser.new_context(viewport=PHONE, java_script_enabled=False)
            try:
                page = context.new_page()
                assert page.goto(f"{server.url}/{OFFICE}/t/{TOKENS[0]}").status == 200
                assert page.locator("#ticket .call").inner_text() == "5番窓口へお越しください"
                assert page.locator("#alerts").is_hidden()
            finally:
                context.close()
