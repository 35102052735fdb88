"""Shared by central's tests and benchmark: real offices' days as published records, an outbox
that keeps what a worker publishes, and a worker run in a thread of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from central import service
from central.worker import CentralWorker, WorkerConfig
from counterfloor.simulate import record_day
from office import events as ev
from office import mqtt
from office.config import OfficeConfig, load_config
from tests.conftest import EXAMPLES

MONDAY = date(2027, 3, 15)


@cache
def example(name: str) -> OfficeConfig:
    return load_config(EXAMPLES / f"{name}.toml")


def day_records(
    config: OfficeConfig, day: date = MONDAY, *, office: str | None = None, seed: int = 1, first_seq: int = 1
) -> list[dict[str, Any]]:
    """One simulated day of `config` as its gateway publishes it on `…/events` (session 1), seqs
    from `first_seq`, under the office id `office` (default: the config's)."""
    name = office or config.id
    out = []
    for n, event in enumerate(record_day(config, day, seed=seed).events):
        out.append({**ev.public_record(event, name), "seq": first_seq + n, "session": 1})
    return out


@cache
def oizumi_day() -> tuple[dict[str, Any], ...]:
    return tuple(day_records(example("oizumi")))


@dataclass
class KeptOutbox:
    """What a worker publishes, kept as the broker would retain it (and every command sent)."""

    retained: dict[str, bytes] = field(default_factory=dict)
    sent: list[tuple[str, bytes, bool]] = field(default_factory=list)
    refuse: bool = False

    def publish(self, topic: str, payload: bytes, retain: bool) -> bool:
        if self.refuse:
            return False
        self.sent.append((topic, payload, retain))
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        return True

    def commands(self) -> list[dict[str, Any]]:
        return [mqtt.decode(p) for t, p, _ in self.sent if t.endswith("/cmd")]


@contextmanager
def worker_thread(config: WorkerConfig) -> Iterator[CentralWorker]:
    """A worker on the broker of `config.login`, in a thread of its own (central.service's);
    stopped and closed at the end."""
    with service.worker_thread(CentralWorker(config), name=f"central-{config.index}") as worker:
        yield worker
