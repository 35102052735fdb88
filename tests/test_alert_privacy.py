"""Privacy of the residents' alerts (docs/alerts.md, "What is kept"): a whole simulated Nerima day
through a real central worker, its SQLite store, the web's /alerts API and the alerts service
with the real mail channel to a real SMTP server (aiosmtpd); a fifth of the residents give an
e-mail address and a push subscription. When the day is over, no address, push endpoint or page
token is left in central's store — not in its rows, not in the bytes of its files — nor in any
log record, and mails did go."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central.alerts.mail import MailChannel
from central.alerts.outbox import Outbox
from central.alerts.service import AlertService
from central.store import open_store
from central.web.alerts_api import AlertsWeb
from central.web.hub import ViewHub
from central.web.names import Names
from central.web.view import office_view
from central.worker import CentralWorker, WorkerConfig
from counterfloor.simulate import record_day
from office import events as ev
from office.config import MailRelay, OfficeConfig
from tests.central_support import KeptOutbox
from tests.conftest import EXAMPLES
from tests.test_alert_mail import LocalRelay
from tests.web_support import served

DAY = date(2027, 6, 8)
WAIT_S = 20.0


class Inbox:
    def __init__(self) -> None:
        self.rcpts: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.rcpts += envelope.rcpt_tos
        return "250 OK"


@contextmanager
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = LocalRelay(inbox)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2027, 6, 8, 8, 0).astimezone()

    def __call__(self) -> datetime:
        return self.at


def subscription(n: int) -> dict[str, Any]:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    endpoint = f"https://push.example.net/send/endpoint-{n:04d}"
    return {"endpoint": endpoint, "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))}}


def post(url: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def test_after_a_day_nothing_personal_is_left(tmp_path: Path, nerima: OfficeConfig, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    day = record_day(nerima, DAY)
    store_path = tmp_path / "central.db"
    secrets: list[str] = []
    with smtp() as (inbox, port):
        relay = MailRelay(host="127.0.0.1", sender="kumin@example.jp", port=port, security="none")
        names = Names.from_configs([EXAMPLES / "nerima.toml"])
        names.alerts["nerima"] = names.alert_settings("nerima").__class__(mail=relay)
        mail = Outbox(MailChannel(relay, tmp_path))
        hub, clock = ViewHub(), Clock()
        worker = CentralWorker(
            WorkerConfig(str(store_path), train=False), KeptOutbox(), on_round=lambda s: hub.publish(office_view(s))
        )
        worker.start()
        service = AlertService(
            hub, str(store_path), names, lambda o, c: mail if c == "mail" else None, clock=clock, tick_s=3600
        )
        service.start()
        web = AlertsWeb(service, push_key="BKey", mail_offices=frozenset({"nerima"}))
        try:
            with served(hub, alerts=web, names=names, clock=clock) as server:
                subscribed = 0
                for event in day.events:
                    clock.at = event.ts
                    record = ev.public_record(event, nerima.id)
                    worker.deliver(f"counterfloor/{nerima.id}/events", json.dumps({**record, "session": 1}).encode())
                    worker.drain()
                    if isinstance(event, ev.TicketIssued) and event.number % 5 == 0:
                        address = f"resident.{event.ticket.lower()}@example.jp"
                        push = subscription(event.number)
                        secrets += [address, event.token, push["endpoint"], push["keys"]["auth"]]
                        body = {"by": "ahead", "value": 3, "lang": "ja", "push": push}
                        body["mail"] = {"address": address, "consent": True}
                        assert post(f"{server.url}/nerima/t/{event.token}/alerts", body) == 200
                        subscribed += 1
                # The day is over: the evening's reception closed, nobody left waiting.
                clock.at = day.events[-1].ts + timedelta(hours=1)
                assert service.settle().result(WAIT_S) is None
                assert mail.wait_idle(WAIT_S)
                # Central runs on: its files as they are, the worker's and the service's
                # connections open (closing the last one would checkpoint the -wal away anyway).
                with open_store(str(store_path)) as store:
                    assert store.alerts("nerima") == []
                files = [p for p in tmp_path.iterdir() if p.name.startswith("central.db")]
                assert any(p.name.endswith("-wal") for p in files)
                raw = b"".join(p.read_bytes() for p in files)
                left = [s for s in secrets if s.encode() in raw]
                assert left == [], f"{len(left)} secrets still in {[p.name for p in files]}: {left[:3]}"
        finally:
            service.close()
            mail.close()
            worker.close()
        assert subscribed > 50 and service.counts.notices >= subscribed
        with inbox.lock:
            assert len(inbox.rcpts) >= subscribed  # the mails did go
    # Every log record of this process but the test relay's own (aiosmtpd's "mail.log"): central's.
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert ours
    logged = [r for r in ours if any(s in r.getMessage() for s in secrets)]
    assert not logged, [(r.name, r.getMessage()[:200]) for r in logged[:3]]


@pytest.fixture
def nerima() -> OfficeConfig:
    from office.config import load_config

    return load_config(EXAMPLES / "nerima.toml")
