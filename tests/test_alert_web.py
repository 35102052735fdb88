"""The ticket page's alert settings over HTTP (central/web/alerts_api.py), served by uvicorn over a
real central worker, its SQLite store and the alerts service: what is offered, what is refused
(and then nothing stored), what is kept and how it is shown."""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central.alerts.mail import MailTarget
from central.alerts.service import AlertService
from central.store import open_store
from central.web.alerts_api import AlertsWeb
from central.web.app import token_hash
from tests.web_support import OFFICE, START, TOKENS, OfficeDriver, names, office_floor, served

ADDRESS = "yamada.hanako@example.jp"
PUSH_KEY = "BExampleApplicationServerKey"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def push_subscription() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {
        "endpoint": "https://push.example.net/send/abc123",
        "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))},
    }


def call(url: str, method: str = "GET", body: object = None, content_type: str = "application/json") -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


@contextmanager
def alert_pages(tmp_path: Path) -> Iterator[tuple[OfficeDriver, AlertService, str]]:
    with office_floor(tmp_path) as floor:
        service = AlertService(floor.hub, str(tmp_path / "central.db"), names(), lambda o, c: None, clock=lambda: START)
        service.start()
        try:
            web = AlertsWeb(service, push_key=PUSH_KEY, mail_offices=frozenset({OFFICE}))
            with served(floor.hub, alerts=web) as server:
                yield floor, service, server.url
        finally:
            service.close()


def stored(tmp_path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    with open_store(str(tmp_path / "central.db")) as store:
        return store.alerts(OFFICE)


def test_the_page_is_told_what_the_office_offers_and_what_it_chose(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    with alert_pages(tmp_path) as (floor, _, url):
        floor.issue(TOKENS[0])
        api = f"{url}/{OFFICE}/t/{TOKENS[0]}/alerts"
        status, offer = call(api)
        assert status == 200 and offer["chosen"] is None
        assert offer["ahead"] == {"default": 3, "min": 1, "max": 10}
        assert offer["minutes"] == {"default": 10, "min": 5, "max": 30}
        assert offer["push"] == {"offered": True, "key": PUSH_KEY} and offer["mail"] == {"offered": True}
        body = {"by": "minutes", "value": 15, "lang": "en", "push": push_subscription()}
        body["mail"] = {"address": ADDRESS, "consent": True}
        status, got = call(api, "POST", body)
        assert status == 200, got
        # Next in line: "near" went at once.
        want = {"by": "minutes", "value": 15, "push": True, "mail": "ya***@example.jp", "sent": ["near"]}
        assert got["chosen"] == want
        assert call(api)[1]["chosen"] == got["chosen"]
        [(digest, day, record)] = stored(tmp_path)
        assert digest == token_hash(TOKENS[0]) and day == "2027-03-15" and record["lang"] == "en"
        # Kept only here, beside the hash: the address and the page's link for the mail.
        mail = MailTarget.decode(record["targets"]["mail"])
        assert mail.to == ADDRESS and mail.page == f"https://queue.example.jp/nerima/t/{TOKENS[0]}"
        # Dropping one channel keeps the other; DELETE ends them all.
        status, got = call(api, "POST", {"by": "ahead", "value": 2, "mail": None})
        assert status == 200 and got["chosen"]["mail"] is None and got["chosen"]["push"] is True
        assert call(api, "DELETE")[0] == 204
        assert stored(tmp_path) == [] and call(api)[1]["chosen"] is None
    assert not [r for r in caplog.records if ADDRESS in r.getMessage() or TOKENS[0] in r.getMessage()]


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"by=ahead&value=3", "application/x-www-form-urlencoded", "application/json"),
        (b"{not json", "application/json", "not JSON"),
        ([1, 2], "application/json", "JSON object"),
        ({"by": "ahead", "value": 0}, "application/json", "1-10"),
        ({"by": "minutes", "value": 60}, "application/json", "5-30"),
        ({"by": "soon", "value": 3}, "application/json", '"ahead" or "minutes"'),
        ({"by": "ahead", "value": 3, "push": {"endpoint": "http://evil.example/x"}}, "application/json", "push:"),
        ({"by": "ahead", "value": 3, "mail": {"address": ADDRESS}}, "application/json", "consent"),
        ({"by": "ahead", "value": 3, "mail": {"address": "no-at-sign", "consent": True}}, "application/json", "e-mail"),
        (
            {"by": "ahead", "value": 3, "mail": {"address": "a@b.jp\r\nBcc: x@y.jp", "consent": True}},
            "application/json",
            "e-mail",
        ),
        (b"x" * 9000, "application/json", "8192 bytes"),
    ],
)
def test_a_bad_request_is_refused_naming_the_problem_and_nothing_is_stored(
    tmp_path: Path, body: Any, content_type: str, words: str
) -> None:
    with alert_pages(tmp_path) as (floor, _, url):
        floor.issue(TOKENS[0])
        status, got = call(f"{url}/{OFFICE}/t/{TOKENS[0]}/alerts", "POST", body, content_type)
        assert status == 400 and words in got["error"], got
        assert stored(tmp_path) == []


def test_unknown_tickets_finished_tickets_and_unoffered_channels(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        service = AlertService(floor.hub, str(tmp_path / "central.db"), names(), lambda o, c: None, clock=lambda: START)
        service.start()
        try:
            with served(floor.hub, alerts=AlertsWeb(service)) as server:  # no push key, no relay
                mine = floor.issue(TOKENS[0])
                api = f"{server.url}/{OFFICE}/t/{TOKENS[0]}/alerts"
                assert call(f"{server.url}/{OFFICE}/t/{TOKENS[1]}/alerts")[0] == 404
                offer = call(api)[1]
                assert offer["push"]["offered"] is False and offer["mail"]["offered"] is False
                status, got = call(api, "POST", {"by": "ahead", "value": 3, "push": push_subscription()})
                assert status == 400 and "not offered" in got["error"]
                status, got = call(
                    api, "POST", {"by": "ahead", "value": 3, "mail": {"address": ADDRESS, "consent": True}}
                )
                assert status == 400 and "not offered" in got["error"]
                assert call(api, "POST", {"by": "ahead", "value": 3})[0] == 200  # the choice alone
                floor.event("called", ticket=mine, counter="5")
                floor.event("served", ticket=mine, counter="5")
                status, got = call(api, "POST", {"by": "ahead", "value": 3})
                assert status == 409 and "finished" in got["error"]
        finally:
            service.close()


def test_staff_see_the_subscriptions_with_addresses_masked(tmp_path: Path) -> None:
    from central.web.auth import Staff
    from tests.test_web_dashboard import Browser
    from tests.web_support import STAFF_PASSWORD, STAFF_USER, staff_file

    with office_floor(tmp_path) as floor:
        service = AlertService(floor.hub, str(tmp_path / "central.db"), names(), lambda o, c: None, clock=lambda: START)
        service.start()
        try:
            web = AlertsWeb(service, push_key=PUSH_KEY, mail_offices=frozenset({OFFICE}))
            staff = Staff.from_file(staff_file(tmp_path))
            with served(floor.hub, alerts=web, staff=staff) as server:
                floor.issue(TOKENS[0])
                mine = floor.issue(TOKENS[1])
                body = {"by": "minutes", "value": 15, "push": push_subscription()}
                body["mail"] = {"address": ADDRESS, "consent": True}
                assert call(f"{server.url}/{OFFICE}/t/{TOKENS[1]}/alerts", "POST", body)[0] == 200
                b = Browser(server.url)
                assert b.login(STAFF_USER, STAFF_PASSWORD)[0] == 303
                status, _, html = b.request("GET", "/dashboard?lang=en")
                assert status == 200 and 'data-alerts="1"' in html
                row = html[html.index('data-alerts="1"') :]
                assert mine in row and "about 15 min before" in row and "ya***@example.jp" in row
                assert ADDRESS not in html and "push.example.net" not in html
        finally:
            service.close()
