"""The event record form: every event spells out its own body, and it must match its fields."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import pytest

from office import events as ev


@pytest.mark.parametrize("cls", list(ev.EVENT_TYPES.values()), ids=list(ev.EVENT_TYPES))
def test_body_has_exactly_the_event_fields(cls: type[ev.Event]) -> None:
    names = [f.name for f in fields(cls)][2:]  # after seq and ts
    event = cls(seq=7, ts=datetime(2027, 3, 15, tzinfo=UTC), **{n: f"value of {n}" for n in names})
    assert event.body() == {n: f"value of {n}" for n in names}
    # and it rebuilds from its record
    again = ev.event_from_record(7, ev.format_ts(event.ts), cls.TYPE, event.body())
    assert again == event


def test_public_record_leaves_the_token_out() -> None:
    e = ev.TicketIssued(
        seq=3,
        ts=datetime(2027, 3, 15, 0, 5, tzinfo=UTC),
        ticket="A-001",
        service="move",
        number=1,
        token_hash="ab" * 32,
        token="secret-token",
    )
    record = ev.public_record(e, "nerima")
    assert "token" not in record and record["token_hash"] == "ab" * 32
    assert record["v"] == 1 and record["office"] == "nerima" and record["ts"] == "2027-03-15T00:05:00.000+00:00"
