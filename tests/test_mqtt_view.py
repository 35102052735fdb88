"""The subscriber's view of the offices on the broker (office/mqtt_view.py): pure, messages in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from office import mqtt
from office.mqtt_view import LAST_EVENTS, MALFORMED, NOT_WATCHED, UNKNOWN_TOPIC, WRONG_OFFICE, BrokerView
from tests.mqtt_support import sample_queue

OFFICE = "oizumi"
TS = "2027-03-15T09:00:00.000+09:00"


def t(kind: str, key: str | None = None, office: str = OFFICE) -> str:
    return mqtt.topic(office, kind, key)


def birth(session: int, seq: int, office: str = OFFICE) -> tuple[str, bytes]:
    return t(mqtt.GATEWAY, office=office), mqtt.encode(mqtt.birth(office, session, seq, TS, "counterfloor 0.1.0"))


def death(session: int) -> tuple[str, bytes]:
    return t(mqtt.GATEWAY), mqtt.encode(mqtt.death(OFFICE, session))


def event(seq: int, session: int = 1, kind: str = "ticket_issued", office: str = OFFICE) -> tuple[str, bytes]:
    record = {"v": 1, "seq": seq, "ts": TS, "office": office, "type": kind, "ticket": f"A-{seq:03d}"}
    return t(mqtt.EVENTS, office=office), mqtt.encode(mqtt.event_message(record, session))


def snapshot(seq: int, session: int = 1, waiting: int = 3) -> tuple[str, bytes]:
    queue = sample_queue(OFFICE, seq, waiting)
    return t(mqtt.SNAPSHOT), mqtt.encode(mqtt.snapshot_message(OFFICE, session, seq, TS, queue))


def device(name: str, state: str) -> tuple[str, bytes]:
    payload = mqtt.device_message(OFFICE, 1, name, {"kind": "dispenser", "state": state, "firmware": "1.4.0"}, TS)
    return t(mqtt.DEVICES, name), mqtt.encode(payload)


def estimate(service: str, waiting: int) -> tuple[str, bytes]:
    payload = mqtt.estimate_message(OFFICE, service, 5, waiting, 600.0, 300.0, 900.0, TS)
    return t(mqtt.ESTIMATES, service), mqtt.encode(payload)


def mode() -> tuple[str, bytes]:
    now = {"mode": "office", "services": ["move"], "next_change": "2027-03-15T17:00:00+09:00", "next_mode": "evening"}
    return t(mqtt.MODE), mqtt.encode(mqtt.mode_message(OFFICE, 1, now, TS))


def feed(view: BrokerView, *messages: tuple[str, bytes]) -> None:
    for name, payload in messages:
        view.receive(name, payload)


def watching(*messages: tuple[str, bytes], office: str | None = None) -> BrokerView:
    view = BrokerView(office)
    view.connected()
    feed(view, *messages)
    return view


# -- the retained picture ---------------------------------------------------------------------------
def test_a_late_joiner_holds_the_whole_retained_picture_at_once() -> None:
    view = watching(birth(3, 5), snapshot(5), mode(), device("0-1", "online"), estimate("move", 3))
    picture = view.office_json(OFFICE)
    assert picture["available"] and not picture["stale"] and picture["why_stale"] == []
    assert picture["gateway"]["state"] == "online" and picture["gateway"]["session"] == 3
    assert picture["seq"] == {"last": 5, "high": 5, "missing": [], "duplicates": 0, "old_session_messages": 0}
    assert picture["snapshot"]["current"] and picture["snapshot"]["services"] == {"move": 3, "certificate": 0}
    assert picture["snapshot"]["tickets"] == {"called": 1, "waiting": 3}  # the queue as queue_json sends it: counted
    assert picture["mode"]["mode"] == "office" and picture["mode"]["next_mode"] == "evening"
    assert not picture["mode"]["stale"]
    assert picture["devices"]["0-1"]["state"] == "online" and not picture["devices"]["0-1"]["stale"]
    assert picture["estimates"]["move"]["waiting"] == 3 and not picture["estimates"]["move"]["stale"]
    assert view.has_picture(OFFICE)


def test_the_events_after_the_snapshot_are_the_live_stream_since() -> None:
    view = watching(birth(1, 5), snapshot(5), *(event(n) for n in range(6, 6 + LAST_EVENTS + 2)))
    picture = view.office_json(OFFICE)
    assert picture["events"]["since_snapshot"] == LAST_EVENTS + 2
    assert [e["seq"] for e in picture["events"]["last"]] == list(range(8, 6 + LAST_EVENTS + 2))
    assert not picture["snapshot"]["current"]  # the queue is as of seq 5
    assert not picture["stale"]  # nothing missing: the stream since is whole
    feed(view, snapshot(9))
    picture = view.office_json(OFFICE)
    assert picture["events"]["since_snapshot"] == 6 + LAST_EVENTS + 2 - 10
    assert all(e["seq"] > 9 for e in picture["events"]["last"])


# -- seq: gaps and duplicates ---------------------------------------------------------------------
def test_a_gap_makes_the_office_stale_naming_what_is_missing_until_a_replay_fills_it() -> None:
    view = watching(birth(1, 5), snapshot(5), event(6), event(8), event(11))
    picture = view.office_json(OFFICE)
    assert picture["stale"] and picture["seq"]["missing"] == [[7, 7], [9, 10]]
    assert "missing events 7, 9-10" in picture["why_stale"]
    assert picture["seq"]["last"] == 6
    feed(view, event(7), event(8), event(9), event(10))  # the replay from 7 repeats 8
    picture = view.office_json(OFFICE)
    assert not picture["stale"] and picture["seq"]["missing"] == []
    assert picture["seq"]["last"] == 11 and picture["seq"]["duplicates"] == 1


def test_a_newer_snapshot_covers_a_gap() -> None:
    view = watching(birth(1, 5), snapshot(5), event(6), event(9))
    feed(view, snapshot(9))  # a rebirth's snapshot
    assert view.office_json(OFFICE)["seq"]["missing"] == []
    assert view.office_json(OFFICE)["seq"]["last"] == 9


def test_a_birth_naming_a_later_seq_than_the_snapshot_is_a_gap() -> None:
    # The late joiner has the snapshot as of 5, but the gateway has stored up to 8.
    picture = watching(snapshot(5), birth(2, 8)).office_json(OFFICE)
    assert picture["seq"]["missing"] == [[6, 8]] and picture["stale"]


def test_duplicates_are_counted_and_change_nothing() -> None:
    view = watching(birth(1, 5), snapshot(5), event(6), event(7))
    before = view.office_json(OFFICE)
    feed(view, event(6), snapshot(5), birth(1, 5), event(4))
    after = view.office_json(OFFICE)
    assert after["seq"]["duplicates"] == 2  # events 6 and 4; a retained snapshot or birth twice is no event
    assert {**after, "seq": None} == {**before, "seq": None}


def test_events_before_any_snapshot_start_the_stream_without_a_gap() -> None:
    picture = watching(birth(1, 40), event(41), event(42)).office_json(OFFICE)
    assert picture["seq"]["last"] == 42 and picture["seq"]["missing"] == []
    assert picture["why_stale"] == ["no snapshot received"]


# -- sessions: birth and death --------------------------------------------------------------------
def test_a_late_death_of_an_older_session_is_ignored() -> None:
    view = watching(birth(3, 5), snapshot(5), death(2))
    assert view.available(OFFICE) and view.office_json(OFFICE)["seq"]["old_session_messages"] == 1
    feed(view, death(3))
    assert not view.available(OFFICE)
    assert view.office_json(OFFICE)["why_stale"] == ["gateway offline (session 3)"]
    feed(view, birth(3, 5))  # the ended session's birth, redelivered late
    assert not view.available(OFFICE)
    feed(view, birth(4, 5))
    assert view.available(OFFICE)


def test_an_offline_gateway_makes_everything_of_its_office_stale() -> None:
    view = watching(birth(1, 5), snapshot(5), mode(), device("0-1", "online"), estimate("move", 2), death(1))
    picture = view.office_json(OFFICE)
    assert picture["stale"] and not picture["available"]
    assert picture["devices"]["0-1"] == {**picture["devices"]["0-1"], "state": "stale", "reported": "online"}
    assert picture["mode"]["stale"] and picture["estimates"]["move"]["stale"]
    assert not picture["snapshot"]["current"]


def test_the_watchers_lost_connection_makes_everything_stale_until_the_broker_sends_it_again() -> None:
    view = watching(birth(1, 5), snapshot(5), device("0-1", "online"), device("0-2", "offline"))
    view.disconnected()
    picture = view.office_json(OFFICE)
    assert picture["why_stale"] == ["the watcher is not connected to the broker"]
    assert not picture["available"] and all(d["state"] == "stale" for d in picture["devices"].values())
    assert not view.watcher_json()["connected"]
    view.connected()
    # Connected again, but nothing confirmed yet: the retained values may have been cleared meanwhile.
    assert view.office_json(OFFICE)["why_stale"] == ["gateway birth not confirmed since the watcher reconnected"]
    feed(view, birth(1, 5), snapshot(5), device("0-1", "online"))
    picture = view.office_json(OFFICE)
    assert picture["available"] and not picture["stale"]
    assert picture["devices"]["0-1"]["state"] == "online"
    assert picture["devices"]["0-2"]["state"] == "stale"  # not sent again: it may be gone


def test_a_device_reported_stale_or_offline_is_shown_so() -> None:
    picture = watching(birth(1, 0), snapshot(0), device("0-1", "offline"), device("gpio-3", "stale")).office_json(
        OFFICE
    )
    assert picture["devices"]["0-1"]["state"] == "offline" and picture["devices"]["gpio-3"]["state"] == "stale"


def test_an_empty_retained_payload_clears_the_value() -> None:
    view = watching(birth(1, 5), snapshot(5), device("0-1", "online"), estimate("move", 2))
    feed(view, (t(mqtt.DEVICES, "0-1"), b""), (t(mqtt.ESTIMATES, "move"), b""))
    picture = view.office_json(OFFICE)
    assert picture["devices"] == {} and picture["estimates"] == {}


def test_ticket_estimates_are_counted_until_cleared() -> None:
    key = "ab" * 32
    view = watching(birth(1, 5), (t(mqtt.TICKETS, key), mqtt.encode({"v": 1, "office": OFFICE, "wait_s": 60})))
    assert view.office_json(OFFICE)["ticket_estimates"] == 1
    feed(view, (t(mqtt.TICKETS, key), b""))
    assert view.office_json(OFFICE)["ticket_estimates"] == 0


# -- what is ignored ------------------------------------------------------------------------------
def test_unknown_topics_malformed_payloads_and_other_offices_are_counted_and_ignored() -> None:
    view = watching(birth(1, 5), snapshot(5))
    before = view.office_json(OFFICE)
    feed(
        view,
        ("counterfloor/oizumi/nonsense", b"{}"),
        ("elsewhere/topic", b"{}"),
        (t(mqtt.EVENTS), b"not json"),
        (t(mqtt.EVENTS), b"[1, 2]"),
        (t(mqtt.EVENTS), mqtt.encode({"v": 1, "office": OFFICE, "seq": "7", "type": "called"})),
        (t(mqtt.EVENTS), mqtt.encode({"v": 1, "office": OFFICE, "seq": True, "type": "called"})),
        (t(mqtt.EVENTS), mqtt.encode({"v": 2, "office": OFFICE, "seq": 6, "type": "called"})),
        (t(mqtt.GATEWAY), mqtt.encode({"v": 1, "office": OFFICE, "state": "maybe", "session": 1})),
        (t(mqtt.SNAPSHOT), mqtt.encode({"v": 1, "office": OFFICE, "seq": 9, "queue": []})),
        (t(mqtt.ESTIMATES, "move"), mqtt.encode({"v": 1, "office": OFFICE, "service": "seal", "waiting": 1})),
        (t(mqtt.EVENTS), b"\xff" * (mqtt.MAX_PAYLOAD + 1)),
        (t(mqtt.EVENTS), b""),
        (t(mqtt.EVENTS), event(6, office="nerima")[1]),
        (t(mqtt.CMD), mqtt.encode({"v": 1, "id": "x", "office": OFFICE, "cmd": "rebirth"})),
    )
    assert view.office_json(OFFICE) == before
    ignored = view.watcher_json()["ignored"]
    assert ignored == {UNKNOWN_TOPIC: 2, MALFORMED: 10, WRONG_OFFICE: 1, NOT_WATCHED: 0}
    assert "nerima" in str(view.watcher_json()["last_problem"])


def test_a_watcher_of_one_office_ignores_the_others() -> None:
    view = watching(birth(1, 5, office="nerima"), birth(1, 5), office=OFFICE)
    assert list(view.offices) == [OFFICE] and view.ignored[NOT_WATCHED] == 1


# -- properties -------------------------------------------------------------------------------------
_KINDS = st.sampled_from([*mqtt.TOPIC_KINDS, "x", ""])
_TOPICS = st.one_of(
    st.builds(
        lambda o, k, key: "/".join(p for p in ("counterfloor", o, k, key) if p is not None),
        st.sampled_from([OFFICE, "nerima", "Bad", ""]),
        _KINDS,
        st.one_of(st.none(), st.sampled_from(["0-1", "move", "ab" * 32, "#"])),
    ),
    st.text(max_size=40),
)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 2**63), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 2, 0, "1", True]),
        "office": st.sampled_from([OFFICE, "nerima", None, 3]),
        "seq": st.one_of(st.integers(-2, 30), st.sampled_from([True, "4", None, 2.5])),
        "session": st.one_of(st.integers(-1, 5), st.sampled_from([False, "1"])),
        "state": st.sampled_from(["online", "offline", "stale", 1]),
        "type": st.sampled_from(["called", 3]),
        "queue": _JSON,
        "service": st.sampled_from(["move", "seal"]),
        "waiting": st.one_of(st.integers(-1, 9), st.sampled_from([None, "2"])),
        "mean_s": _JSON,
        "p10_s": _JSON,
        "p90_s": _JSON,
    },
)
_PAYLOADS = st.one_of(st.binary(max_size=64), _FIELDS.map(mqtt.encode), _JSON.map(mqtt.encode))


@given(st.lists(st.one_of(st.tuples(_TOPICS, _PAYLOADS), st.sampled_from(["connect", "disconnect"])), max_size=60))
@settings(max_examples=300)
def test_whatever_arrives_the_view_never_raises(messages: list[tuple[str, bytes] | str]) -> None:
    view = BrokerView()
    for message in messages:
        if message == "connect":
            view.connected()
        elif message == "disconnect":
            view.disconnected()
        else:
            assert not isinstance(message, str)
            view.receive(*message)
        for office in view.offices:
            view.office_json(office)
        view.watcher_json()


@dataclass(frozen=True)
class Sent:
    kind: str  # event, snapshot, birth, death, garbage
    seq: int = 0
    session: int = 0

    def message(self) -> tuple[str, bytes]:
        if self.kind == "event":
            return event(self.seq, self.session)
        if self.kind == "snapshot":
            return snapshot(self.seq, self.session)
        if self.kind == "birth":
            return birth(self.session, self.seq)
        if self.kind == "death":
            return death(self.session)
        return (t(mqtt.EVENTS), b'{"v": 1, "office": "oizumi", "seq": "x"}')


@st.composite
def deliveries(draw: st.DrawFn) -> list[Sent]:
    """A gateway's messages over a few sessions (events 1..n in order, snapshots and births at
    their seqs, deaths), then as a subscriber gets them: some lost, some twice, some a little
    out of order, with garbage between."""
    sent: list[Sent] = []
    seq, session = draw(st.integers(0, 3)), draw(st.integers(0, 2))
    for _ in range(draw(st.integers(1, 4))):
        session += 1
        sent.append(Sent("birth", seq, session))
        if draw(st.booleans()):
            sent.append(Sent("snapshot", seq, session))
        for _ in range(draw(st.integers(0, 12))):
            seq += 1
            sent.append(Sent("event", seq, session))
            if draw(st.integers(0, 9)) == 0:
                sent.append(Sent("snapshot", seq, session))
        if draw(st.booleans()):
            sent.append(Sent("death", 0, session))
    out: list[Sent] = []
    for message in sent:
        fate = draw(st.sampled_from(["kept"] * 6 + ["lost", "twice", "garbage"]))
        if fate == "lost":
            continue
        out.append(message)
        if fate == "twice":
            out.append(message)
        if fate == "garbage":
            out.append(Sent("garbage"))
    # Out of order within a window of 3: swap some neighbours.
    for i in draw(st.lists(st.integers(0, max(0, len(out) - 3)), max_size=6)):
        if i + 2 < len(out):
            j = i + draw(st.integers(1, 2))
            out[i], out[j] = out[j], out[i]
    return out


def _model(delivered: list[Sent]) -> dict[str, Any]:
    """The bookkeeping as sets: held = everything up to `origin` (where the stream started) or a
    snapshot's seq, and each event received; the gateway's state is its latest (session, death
    after birth) message."""
    origin: int | None = None
    covered: set[int] = set()
    high: int | None = None
    duplicates = 0
    latest: tuple[int, int] | None = None
    for m in delivered:
        if m.kind == "event":
            origin = m.seq - 1 if origin is None else origin
            if m.seq <= origin or m.seq in covered:
                duplicates += 1
            covered.add(m.seq)
            high = max(high or 0, m.seq)
        elif m.kind == "snapshot":
            origin = m.seq if origin is None else origin
            covered |= set(range(1, m.seq + 1))
            high = max(high or 0, m.seq)
        elif m.kind in ("birth", "death"):
            key = (m.session, 1 if m.kind == "death" else 0)
            if latest is None or key >= latest:
                latest = key
                if m.kind == "birth":
                    high = max(high or 0, m.seq)
    last = origin
    if last is not None:
        while last + 1 in covered:
            last += 1
    missing = [] if last is None or high is None else [n for n in range(last + 1, high + 1) if n not in covered]
    return {
        "last": last,
        "high": high,
        "missing": missing,
        "duplicates": duplicates,
        "online": latest is not None and latest[1] == 0,
        "garbage": sum(m.kind == "garbage" for m in delivered),
    }


@given(deliveries())
@settings(max_examples=400)
def test_the_seq_and_session_bookkeeping_matches_a_simple_model(delivered: list[Sent]) -> None:
    view = watching(*(m.message() for m in delivered))
    model = _model(delivered)
    picture = view.office_json(OFFICE)
    seqs = picture["seq"]
    assert seqs["last"] == model["last"]
    assert seqs["high"] == model["high"]
    assert [n for a, b in seqs["missing"] for n in range(a, b + 1)] == model["missing"]
    assert seqs["duplicates"] == model["duplicates"]
    assert view.available(OFFICE) == model["online"]
    assert view.ignored[MALFORMED] == model["garbage"]
    # Whatever is not current says so.
    assert picture["stale"] == (not model["online"] or bool(model["missing"]) or picture["snapshot"] is None)
