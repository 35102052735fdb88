"""A replacement gateway's journal, made from central's copy of today (`counterfloor gateway restore`).

Owns turning the public event-log records central keeps (docs/events.md: no tokens, only their
hashes) back into the journal's events, checking that they are one office's one business day,
whole (its `schedule` first, seq without a gap) and that they replay, and writing the new
journal in one transaction with the MQTT link's marks: the session after the last one central
saw (so a late death of the broken Pi's session is ignored) and every event published (central
has them). Nothing is written unless all of it holds. Tickets keep their numbers and their
`token_hash` (their pages keep working); their tokens were never in central's copy, so a reprint
of one gets a new token (office.model's Reprint, `token_replaced`).
"""

from __future__ import annotations

import itertools
import json
import queue
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gateway.journal import JournalError, TicketJournal
from gateway.mqtt_client import BrokerLogin, make_client
from gateway.mqtt_link import MARK_KEY, SESSION_KEY
from office import events as ev
from office import mqtt as schema
from office.config import OfficeConfig
from office.state import OfficeState

RESTORED_KEY = "restored"  # journal meta: where today came from (JSON)
_ENVELOPE = frozenset({"v", "seq", "ts", "office", "type"})
_WITHOUT_TOKEN = frozenset({"ticket_issued", "token_replaced"})  # their private token: not in the copy


class RestoreError(Exception):
    """Central's copy cannot become this office's journal; the message names why."""


@dataclass(frozen=True, slots=True)
class Restored:
    day: date
    first_seq: int
    last_seq: int
    tickets: int
    waiting: int
    session: int


def events_from_records(office: str, records: Sequence[Mapping[str, Any]]) -> tuple[date, list[ev.Event]]:
    """The business day and its events; RestoreError naming the first thing that is wrong."""
    if not records:
        raise RestoreError(f"central has no events of {office} for today")
    events: list[ev.Event] = []
    for i, rec in enumerate(records):
        if rec.get("v") != ev.EVENT_LOG_VERSION:
            raise RestoreError(f"record {i + 1}: event log version {rec.get('v')!r} is not {ev.EVENT_LOG_VERSION}")
        if rec.get("office") != office:
            raise RestoreError(f"record {i + 1}: of office {rec.get('office')!r}, not {office!r}")
        seq, ts, kind = rec.get("seq"), rec.get("ts"), rec.get("type")
        if not isinstance(seq, int) or not isinstance(ts, str) or not isinstance(kind, str):
            raise RestoreError(f"record {i + 1}: 'seq', 'ts' and 'type' are needed")
        body = {k: v for k, v in rec.items() if k not in _ENVELOPE}
        if kind in _WITHOUT_TOKEN:
            body["token"] = ""
        try:
            events.append(ev.event_from_record(seq, ts, kind, body))
        except ev.EventFormatError as exc:
            raise RestoreError(f"record {i + 1}: {exc}") from None
    first = events[0]
    if not isinstance(first, ev.Schedule) or not first.new_day:
        raise RestoreError(f"the copy does not start with the day's schedule (seq {first.seq} is {first.TYPE})")
    for before, after in itertools.pairwise(events):
        if after.seq != before.seq + 1:
            missing = f"{before.seq + 1}–{after.seq - 1}"
            raise RestoreError(f"central's copy misses seq {missing}; it cannot be restored whole")
    return date.fromisoformat(first.date), events


def restore_journal(
    path: Path, config: OfficeConfig, config_text: str, records: Sequence[Mapping[str, Any]], session: int
) -> Restored:
    """A new journal at `path` (refused if one exists) holding today from `records`."""
    if path.exists() or path.is_symlink():
        raise RestoreError(f"{path} exists: a restore makes a new journal and never writes over one")
    day, events = events_from_records(config.id, records)
    state = OfficeState()
    try:
        for event in events:
            state.apply(event)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise RestoreError(f"the copy does not replay (seq {state.last_seq + 1}): {exc!r}") from None
    last = events[-1].seq
    meta = {
        SESSION_KEY: str(session),  # the next connection is session + 1: newer than any the old Pi had
        MARK_KEY: str(last),  # central has every one of them
        RESTORED_KEY: json.dumps({"from": "central", "day": day.isoformat(), "seqs": [events[0].seq, last]}),
    }
    try:
        TicketJournal.create(path, config, config_text, restored=(day, events, meta)).close()
    except JournalError as exc:
        raise RestoreError(str(exc)) from None
    waiting = sum(len(q) for q in state.queues.values())
    return Restored(day, events[0].seq, last, len(state.tickets), waiting, session)


def fetch_from_central(login: BrokerLogin, office: str, timeout: float) -> tuple[list[dict[str, Any]], int]:
    """Central's copy of the office's latest business day and the last gateway session it saw,
    asked for over the broker (docs/mqtt.md, `restore`): RestoreError when central does not
    answer in `timeout` seconds, answers an error, or the broker cannot be reached."""
    request = f"restore-{secrets.token_hex(6)}"
    answers: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
    # Not the gateway's client id: the broken Pi's session (if its connection lingers) stays its own.
    client = make_client(login, f"counterfloor-gw-{office}-restore")
    reply_topic = schema.topic(office, schema.RESTORED, request)

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        answers.put(("connected" if not reason.is_failure else "refused", str(reason).encode()))

    def on_subscribe(c: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        answers.put(("subscribed", b""))

    def on_message(c: Any, userdata: Any, message: Any) -> None:
        answers.put(("message", bytes(message.payload)))

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    deadline = time.monotonic() + timeout

    def next_answer(what: str) -> tuple[str, bytes]:
        try:
            return answers.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise RestoreError(f"no answer from the broker {login.address} within {timeout:g} s ({what})") from None

    try:
        client.connect(login.address.host, login.address.port, keepalive=30)
    except (OSError, ValueError) as exc:
        raise RestoreError(f"cannot reach the broker {login.address}: {exc}") from None
    client.loop_start()
    try:
        kind, detail = next_answer("connecting")
        if kind != "connected":
            raise RestoreError(f"the broker {login.address} refused the connection: {detail.decode()}")
        client.subscribe(reply_topic, qos=1)
        while next_answer("subscribing")[0] != "subscribed":
            pass
        ask = schema.encode(schema.restore_request(office, request))
        client.publish(schema.topic(office, schema.RESTORE), ask, qos=1)
        parts: dict[int, schema.RestorePart] = {}
        while True:
            kind, data = next_answer("central's copy: is `counterfloor central` running?")
            if kind != "message":
                continue
            try:
                part = schema.parse_restore_part(office, request, data)
            except schema.PayloadError as exc:
                raise RestoreError(f"central's answer cannot be read: {exc}") from None
            if part.error is not None:
                raise RestoreError(f"central: {part.error}")
            parts[part.part] = part
            if len(parts) == part.parts:
                break
    finally:
        client.disconnect()
        client.loop_stop()
    records = [r for i in sorted(parts) for r in parts[i].records]
    return records, max(p.session for p in parts.values())
