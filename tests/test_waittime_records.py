"""The wait-time predictor's reader of public event-log records, and its replay of a day: unknown
types and fields are ignored, `token_hash` may be missing, the private token is never needed,
and a record of a known type missing what prediction needs is an error naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from office import events as ev
from office.model import CallNext, IssueTicket, MarkNoShow, Office, OpenCounter, StartDay, Transfer
from office.waittime import records as r
from office.waittime.floor import CALLED, NO_SHOW, OPEN, WAITING, Floor
from office.waittime.records import UNTIL_EMPTY, RecordError, read_record
from tests.conftest import tokyo

TS = "2027-03-15T09:02:41.125+09:00"


def record(type_: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "seq": 1, "ts": TS, "office": "oizumi", "type": type_, **fields}


def test_a_ticket_without_token_hash_and_with_unknown_fields_is_read() -> None:
    e = read_record(record("ticket_issued", ticket="A-001", service="move", number=1, colour="blue"))
    assert isinstance(e, r.TicketIssued)
    assert (e.ticket, e.service, e.token_hash) == ("A-001", "move", None)
    assert (e.day, e.t) == ("2027-03-15", 9 * 3600 + 2 * 60 + 41.125)


def test_unknown_types_and_types_prediction_does_not_use_are_skipped() -> None:
    assert read_record(record("teleported", ticket="A-001")) is None
    assert read_record(record("print_failed", ticket="A-001", printer="p", reason="paper_out")) is None
    assert read_record(record("remote_command", id="x", cmd="y", sender=None, ok=True, error=None)) is None


def test_a_known_record_missing_what_prediction_needs_names_the_field() -> None:
    with pytest.raises(RecordError, match="'counter'"):
        read_record(record("called", ticket="A-001"))
    with pytest.raises(RecordError, match="'ts'"):
        read_record({"v": 1, "type": "served", "ticket": "A-001", "counter": "1", "ts": "yesterday"})
    with pytest.raises(RecordError, match="version 2"):
        read_record({**record("served", ticket="A-001", counter="1"), "v": 2})
    with pytest.raises(RecordError, match="services"):
        read_record(record("counter_opened", counter="1", services="move"))


def test_a_schedule_gives_each_counter_its_priorities_and_shifts() -> None:
    e = read_record(
        record(
            "schedule",
            date="2027-03-15",
            new_day=True,
            counters=[
                {"counter": "12", "services": ["move", "certificate"], "shifts": [["10:00", "12:00"], ["17:00", None]]}
            ],
            closes="19:00",
            periods=[{"mode": "office", "from": "08:30", "to": "17:00", "services": ["move", "certificate"]}],
            messages={"*": ["hello"]},
        )
    )
    assert isinstance(e, r.Schedule)
    (c,) = e.counters
    assert c.services == ("move", "certificate")
    assert c.shifts == ((36000.0, 43200.0), (61200.0, UNTIL_EMPTY))
    assert e.closes == 19 * 3600.0 and e.periods[0].end == 17 * 3600.0


def _events(office: Office, commands: list[tuple[Any, int]]) -> list[ev.Event]:
    out: list[ev.Event] = []
    for command, minute in commands:
        out += office.execute(command, tokyo(2027, 3, 15, 9, minute)).events
    return out


def test_the_exported_log_of_a_morning_replays_to_the_model_s_own_queues(oizumi: Any) -> None:
    office = Office(oizumi)
    events = _events(
        office,
        [
            (StartDay(), 0),
            (OpenCounter("1"), 1),
            (IssueTicket("move", "t1"), 2),
            (IssueTicket("move", "t2"), 3),
            (IssueTicket("seal", "t3"), 4),
            (CallNext("1"), 5),
            (MarkNoShow("1"), 6),
            (CallNext("1"), 7),
            (Transfer("seal", counter="1"), 8),
        ],
    )
    floor = Floor()
    for e in events:
        # Through JSON, as exported (no token): the reader needs nothing private.
        public = json.loads(json.dumps(ev.public_record(e, oizumi.id)))
        assert "token" not in public
        typed = read_record(public)
        assert typed is not None
        floor.apply(typed)
    state = office.state
    assert {s: [tid for _, tid in q] for s, q in floor.queues.items()} == {
        s: [tid for _, tid in q] for s, q in state.queues.items()
    }
    assert floor.tickets["A-001"].status == NO_SHOW  # oizumi drops no-shows
    assert floor.tickets["A-002"].status == WAITING and floor.tickets["A-002"].service == "seal"
    assert floor.tickets["A-002"].issue_service == "move"
    assert floor.counters["1"].status == OPEN and floor.counters["1"].current is None
    assert floor.last_wait["move"] == 4 * 60.0  # the last first call: A-002, issued 09:03, called 09:07


def test_events_about_tickets_and_counters_never_seen_are_absorbed() -> None:
    """A log that starts mid-day: calls and services of tickets issued before it do not raise."""
    floor = Floor()
    for rec in (
        record("served", ticket="C-100", counter="3"),
        record("called", ticket="C-101", counter="3"),
        record("no_show", ticket="C-101", counter="3", requeued=True),
        record("transferred", ticket="C-102", to_service="payment", from_service="certificate", counter=None),
        record("recalled", ticket="C-103", counter="9"),
        record("returned", ticket="C-104"),
    ):
        e = read_record(rec)
        assert e is not None
        floor.apply(e)
    assert floor.counters["3"].status == OPEN  # it called: it is open
    assert floor.tickets["C-101"].status == WAITING  # requeued at the back of its queue


def test_a_new_day_starts_afresh() -> None:
    floor = Floor()
    for rec in (
        record("ticket_issued", ticket="A-001", service="move", number=1),
        {**record("ticket_issued", ticket="A-001", service="move", number=1), "ts": "2027-03-16T09:00:00.000+09:00"},
    ):
        e = read_record(rec)
        assert e is not None
        floor.apply(e)
    assert floor.day == "2027-03-16" and list(floor.tickets) == ["A-001"] and floor.issued_total == 1
    assert floor.tickets["A-001"].status != CALLED


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_TYPES = st.sampled_from([*ev.EVENT_TYPES, "unknown"])


@given(
    type_=_TYPES,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "ticket",
                "counter",
                "service",
                "services",
                "requeued",
                "shifts",
                "counters",
                "periods",
                "step_s",
                "date",
                "ts",
                "seq",
                "v",
            ]
        ),
        _JSON,
        max_size=6,
    ),
)
def test_garbage_is_read_or_refused_never_anything_else(type_: str, fields: dict[str, Any]) -> None:
    try:
        e = read_record({"v": 1, "ts": TS, **fields, "type": type_})
    except RecordError:
        return
    if e is not None:
        Floor().apply(e)  # and whatever it read replays
