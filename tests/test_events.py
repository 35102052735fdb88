"""The event record form: every event spells out its own body, and it must match its fields."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from office import events as ev

# Zones with DST folds and gaps, historical offsets in seconds, fixed and negative offsets.
ZONES = [
    None,
    UTC,
    ZoneInfo("Asia/Tokyo"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Europe/London"),
    ZoneInfo("Australia/Lord_Howe"),
    timezone(timedelta(hours=-3, minutes=-30)),
    timezone(timedelta(hours=5, minutes=45, seconds=7)),
]


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


@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zone=st.sampled_from(ZONES),
    fold=st.integers(0, 1),
    seconds=st.lists(st.integers(0, 59_999), min_size=1, max_size=4),
)
def test_format_ts_is_isoformat_with_milliseconds(
    moment: datetime, zone: timezone | ZoneInfo | None, fold: int, seconds: list[int]
) -> None:
    """format_ts formats part of the text once per minute: every moment in that minute, in any
    zone and fold, must still come out exactly as isoformat writes it."""
    for ms in seconds:
        ts = moment.replace(second=ms // 1000, microsecond=ms % 1000 * 1000, tzinfo=zone, fold=fold)
        assert ev.format_ts(ts) == ts.isoformat(timespec="milliseconds")


def test_format_ts_tells_the_two_folds_of_a_minute_apart() -> None:
    first = datetime(2027, 11, 7, 1, 30, 5, 123456, tzinfo=ZoneInfo("America/New_York"))  # DST ends: 01:30 twice
    second = first.replace(fold=1, second=6)
    assert ev.format_ts(first) == "2027-11-07T01:30:05.123-04:00"
    assert ev.format_ts(second) == "2027-11-07T01:30:06.123-05:00"


def test_format_ts_in_a_minute_whose_offset_changes_within_it() -> None:
    """Amsterdam went from +01:19:32 to +01:20 in the first minute of 1937-07-01: the minute
    remembered from one moment must not give another moment of it the wrong offset."""
    zone = ZoneInfo("Europe/Amsterdam")
    minute = datetime(1937, 7, 1, 0, 0, tzinfo=zone)
    for second in (0, 59, 1, 30, 27, 28, 0):
        ts = minute.replace(second=second, microsecond=250_000)
        assert ev.format_ts(ts) == ts.isoformat(timespec="milliseconds")


def test_format_ts_after_a_moment_of_another_zone_in_the_same_minute() -> None:
    tokyo = datetime(2027, 3, 29, 10, 11, 12, 345000, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert ev.format_ts(tokyo) == "2027-03-29T10:11:12.345+09:00"
    for zone in (UTC, timezone(timedelta(hours=9)), None):
        same_wall = tokyo.replace(tzinfo=zone, second=13)
        assert ev.format_ts(same_wall) == same_wall.isoformat(timespec="milliseconds")
    assert ev.format_ts(tokyo.replace(second=14)) == "2027-03-29T10:11:14.345+09:00"
