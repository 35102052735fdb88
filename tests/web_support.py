"""Shared by the web pages' tests: one office's floor driven through a real central worker (its
SQLite store, the real estimate rounds) into a ViewHub, and the app served by uvicorn on a free
loopback port, with a fixed clock; a central worker on a real broker in a thread of its own,
feeding a hub and taking the dashboard's commands."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from central.service import worker_thread
from central.web import ViewHub, WebServer, create_app
from central.web.app import token_hash
from central.web.commands import CommandDesk
from central.web.names import Names
from central.web.view import office_view
from central.worker import CentralWorker, WorkerConfig
from tests.central_support import KeptOutbox
from tests.conftest import EXAMPLES, TOKYO

OFFICE = "nerima"
DAY = "2027-03-15"
START = datetime(2027, 3, 15, 9, 0, tzinfo=TOKYO)
SCHEDULE = {
    "type": "schedule",
    "date": DAY,
    "new_day": True,
    "counters": [
        {"counter": "5", "services": ["move", "seal"], "shifts": [["08:30", "17:00"]]},
        {"counter": "6", "services": ["certificate"], "shifts": [["08:30", "17:00"], ["17:00", "19:00"]]},
    ],
    "closes": "19:00",
    "periods": [
        {"mode": "office", "from": "08:30", "to": "17:00", "services": ["move", "seal", "certificate"]},
        {"mode": "evening", "from": "17:00", "to": "19:00", "services": ["certificate"]},
    ],
}
# Page tokens as the gateway makes them (secrets.token_urlsafe(24)).
TOKENS = ["Q0ZHc2k0b1pXb2RzYmVhX3Rva2Vu", "d2FpdGluZy1yZXNpZGVudC1vbmU", "dGhpcmQtdG9rZW4tZm9yLWEtdGVzdA"]


@dataclass
class OfficeDriver:
    """Publishes one office's events to a worker as its gateway would, one at a time."""

    worker: CentralWorker
    hub: ViewHub
    seq: int = 0
    at: datetime = START
    numbers: dict[str, int] = field(default_factory=dict)

    def event(self, type_: str, **fields: Any) -> None:
        self.seq += 1
        self.at += timedelta(seconds=20)
        ts = self.at.isoformat(timespec="milliseconds")
        record = {"v": 1, "seq": self.seq, "ts": ts, "office": OFFICE, "type": type_, **fields, "session": 1}
        self.worker.deliver(f"counterfloor/{OFFICE}/events", json.dumps(record).encode())
        self.worker.drain()

    def issue(self, token: str, service: str = "move", prefix: str = "A") -> str:
        number = self.numbers[prefix] = self.numbers.get(prefix, 0) + 1
        ticket = f"{prefix}-{number:03d}"
        self.event("ticket_issued", ticket=ticket, service=service, number=number, token_hash=token_hash(token))
        return ticket


@contextmanager
def office_floor(tmp_path: Path, desk: CommandDesk | None = None) -> Iterator[OfficeDriver]:
    """A worker (no broker, no training) feeding a hub, with the office open and counters 5 and
    6 calling; `desk`: the dashboard's commands, which it sends to its KeptOutbox."""
    hub = ViewHub()
    config = WorkerConfig(str(tmp_path / "central.db"), train=False)
    worker = CentralWorker(config, KeptOutbox(), on_round=lambda state: hub.publish(office_view(state)), desk=desk)
    worker.start()
    try:
        driver = OfficeDriver(worker, hub)
        driver.event("schedule", **SCHEDULE)
        driver.event("counter_opened", counter="5", services=["move", "seal"])
        driver.event("counter_opened", counter="6", services=["certificate"])
        yield driver
    finally:
        worker.close()


def names() -> Names:
    return Names.from_configs([EXAMPLES / "nerima.toml"])


@contextmanager
def served(hub: ViewHub, **kwargs: Any) -> Iterator[WebServer]:
    """The app on a free loopback port; the pages' clock is fixed at 09:05 unless given."""
    kwargs.setdefault("clock", lambda: START + timedelta(minutes=5))
    kwargs.setdefault("names", names())
    server = WebServer(create_app(hub, **kwargs)).start()
    try:
        yield server
    finally:
        server.close()


def get(url: str) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


STAFF_USER, STAFF_PASSWORD = "kanri.tanaka", "correct-horse-battery-staple"


def staff_file(tmp_path: Path, users: dict[str, str] | None = None) -> Path:
    """A users file (mode 600) with `users` (name: password; default the one staff user),
    hashed with scrypt's smallest accepted cost so that the tests stay quick."""
    from central.web.auth import N_RANGE, hash_password, write_users

    path = tmp_path / "users.json"
    given = users if users is not None else {STAFF_USER: STAFF_PASSWORD}
    write_users(path, {name: hash_password(pw, n=N_RANGE[0]) for name, pw in given.items()})
    return path


@contextmanager
def central_thread(config: WorkerConfig, hub: ViewHub, desk: CommandDesk) -> Iterator[CentralWorker]:
    """A worker on the broker of `config.login` in a thread of its own (as `counterfloor central
    --http-port` runs it), its views into `hub` and the dashboard's commands from `desk`;
    stopped and closed at the end."""
    worker = CentralWorker(config, on_round=lambda state: hub.publish(office_view(state)), desk=desk)
    with worker_thread(worker, name="central-web-test") as running:
        yield running
