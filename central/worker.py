"""One central worker: the offices of its partition, from the broker to the store to estimates.

Owns the I/O around central.office_state: the event store (one connection, this thread's),
the broker link (central.broker_link), the trainer thread (central.learning), and the loop that
turns messages into stored events, applied events, replay commands and published estimates.

The loop, one turn at a time, in the worker's own thread:

1. Connection notes and trained predictors are taken in.
2. Each office with messages waiting gets up to BATCH of them: payloads decoded (a malformed one
   is logged, naming its topic and problem, and dropped), its events appended to the store in one
   transaction (idempotent by seq; a record the store refuses, or one conflicting with what is
   stored, is logged and dropped alone), then applied in seq order by its OfficeState. Messages
   wait per office (paho's thread puts them there), at most QUEUE_LIMIT each: an office that
   floods loses its excess events — it gets them back by replay, as after any gap — and never
   delays the others by more than one batch per turn.
3. Replays are asked for where events are missing.
4. Offices whose estimates are due are recomputed and published, COMPUTE_BUDGET_S per turn; the
   service estimates of offices that had none for a minute go out again.

A store that fails (a PostgreSQL restart, a disk error) is closed and opened again with back-off;
what arrived meanwhile is dropped — the gateways keep every event in their journals, and each
office is asked for a replay from its next seq once the store is back. Nothing here raises out of
a turn because of one office.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from central import broker_link
from central.broker_link import BrokerLink
from central.learning import DEFAULT_HISTORY_DAYS, Trainer, fallback
from central.office_state import OfficeState
from central.partition import Partition
from central.store import BadInput, ConflictingRecord, EventStore, business_day, open_store, prepare_batch
from gateway.bus import Backoff
from gateway.mqtt_client import BrokerLogin
from office import mqtt
from office.mqtt_view import BrokerView

BATCH = 1000  # messages of one office handled per turn
QUEUE_LIMIT = 20_000  # messages waiting per office; beyond, they are dropped (and replayed later)
COMPUTE_BUDGET_S = 0.2  # estimate rounds per turn stop after this long; the others come next turn
IDLE_S = 1.0  # the longest wait between turns when nothing happens (replay retries, the store)
PROBLEM_EVERY_S = 10.0  # one office's problems are logged at most this often, with a count
PRUNED_KEY = "central_pruned_before"  # store meta: seqs below it are gone from the gateway

_log = logging.getLogger(__name__)
SHOWN_AT_ONCE = frozenset({"called", "recalled"})  # events the pages show before the next estimate round


class Outbox(Protocol):
    """Where publications go: the broker link, or a counter in the benchmark."""

    def publish(self, topic: str, payload: bytes, retain: bool) -> bool: ...


class CommandDesk(Protocol):
    """The facilities dashboard's commands (central/web/commands.py): thread-safe; the web's
    thread fills it, this worker sends what waits, and hands acks and audit records back."""

    def attach(self, wake: Callable[[], None]) -> None: ...
    def outgoing(self) -> list[tuple[str, str, bytes]]: ...
    def sent(self, request: str, ok: bool) -> None: ...
    def answer(self, office: str, answer: Mapping[str, Any]) -> bool: ...
    def events(self, office: str, records: Iterable[Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    store_url: str
    index: int = 0
    workers: int = 1
    login: BrokerLogin | None = None  # None: no broker (the benchmark delivers messages itself)
    history_days: int = DEFAULT_HISTORY_DAYS
    train: bool = True  # False: offices keep the untrained baseline (the benchmark)


@dataclass(slots=True)
class _Message:
    where: mqtt.Topic
    topic: str
    payload: bytes
    retained: bool


class _Problems:
    """One office's problems in the log: the first at once, then at most one line every
    PROBLEM_EVERY_S saying how many were not logged (a misbehaving office cannot flood the log)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}
        self.count = 0

    def __call__(self, office: str, message: str, now: float) -> None:
        self.count += 1
        at, quiet = self._last.get(office, (-math.inf, 0))
        if now - at < PROBLEM_EVERY_S:
            self._last[office] = (at, quiet + 1)
            return
        more = f" ({quiet} more problem(s) of office {office} not logged)" if quiet else ""
        _log.warning("%s%s", message, more)
        self._last[office] = (now, 0)


class CentralWorker:
    """One worker (see the module docstring): `start()`, then `run(stop)` in this thread, or
    `turn()` driven by a caller (the benchmark, tests); `close()` at the end."""

    def __init__(
        self,
        config: WorkerConfig,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_round: Callable[[OfficeState], None] | None = None,
        desk: CommandDesk | None = None,
    ) -> None:
        self.config = config
        # Called in this thread after each estimate round of an office (the web pages' views).
        self.on_round = on_round
        self.partition = Partition(config.index, config.workers)
        self.clock = clock
        self.offices: dict[str, OfficeState] = {}
        self.store: EventStore | None = None
        self._store_backoff = Backoff(first=0.5, limit=30.0)
        self._store_retry_at = 0.0
        self._lock = threading.Lock()  # the message queues, shared with paho's thread
        self._queues: dict[str, deque[_Message]] = {}
        self._ready: deque[str] = deque()  # offices with messages waiting, in turn order
        self._dropped: dict[str, int] = {}  # messages dropped over QUEUE_LIMIT, not yet logged
        self._notes: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self.turned = threading.Condition()  # held during each turn, notified after it (tests)
        self._dirty: set[str] = set()  # offices whose estimates may be due
        self._gappy: set[str] = set()  # offices missing events (or asked to probe for them)
        self.problems = _Problems()
        self.view = BrokerView()  # births and deaths, with its session rules
        self.others = 0  # messages of other workers' offices, dropped
        self._refresh_at = 0.0
        self.synced = outbox is not None  # the retained burst is in (no broker: nothing to wait for)
        self._cmd_prefix = f"central-{config.index}-{secrets.token_hex(4)}-"
        self._cmd_count = 0
        self.trainer: Trainer | None = None
        self.link: BrokerLink | None = None
        if outbox is None:
            if config.login is None:
                raise ValueError("a worker needs a broker login or an outbox")
            client_id = f"counterfloor-central-{config.index}-of-{config.workers}"
            self.link = BrokerLink(config.login, client_id, self.deliver, self._notes, self.wake)
            outbox = self.link
        self.outbox = outbox
        self.desk = desk  # the dashboard's commands, sent in this thread's turns
        if desk is not None:
            desk.attach(self.wake)

    @property
    def name(self) -> str:
        return f"worker {self.partition}"

    def wake(self) -> None:
        self._wake.set()

    # -- starting and stopping -----------------------------------------------------------------
    def start(self) -> None:
        """Open the store, rebuild every office of this partition from it, start training and
        connect. StoreError if the store cannot be opened."""
        self.store = open_store(self.config.store_url)
        now = self.clock()
        for office in self.store.offices():
            if self.partition.owns(office):
                self._restore(office, now)
        _log.info("central %s: %d office(s) rebuilt from %s", self.name, len(self.offices), self.store.url)
        if self.config.train:
            self.trainer = Trainer(self.config.store_url, self.config.history_days, self.wake)
            self.trainer.start()
            for state in self.offices.values():
                self._train(state)
        if self.link is not None:
            self.link.start()

    def close(self) -> None:
        if self.trainer is not None:
            self.trainer.stop()
        if self.link is not None:
            self.link.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    def run(self, stop: threading.Event) -> None:
        """Turns until `stop` is set (then call wake())."""
        while not stop.is_set():
            now = self.clock()
            with self.turned:
                self.turn(now)
                self.turned.notify_all()
            if self._wake.wait(self._idle(self.clock())):
                self._wake.clear()

    def until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (another thread) until `condition` holds after a turn; False at the timeout."""
        with self.turned:
            return self.turned.wait_for(condition, timeout)

    def _idle(self, now: float) -> float:
        if self._ready or (self.trainer is not None and not self.trainer.done.empty()):
            return 0.0
        due = [at for o in self._dirty if (at := self.offices[o].due_at()) is not None]
        wait = min([IDLE_S, *(at - now for at in due)])
        return max(0.0, wait)

    # -- messages, from paho's thread (or the benchmark) -----------------------------------------
    def deliver(self, topic: str, payload: bytes, retained: bool = False) -> None:
        # Another worker's office is dropped on the topic's second level alone, before parsing it:
        # every worker gets every office's messages, so this is half of each worker's deliveries.
        if not self.partition.owns(topic.split("/", 2)[1] if topic.count("/") >= 2 else ""):
            self.others += 1
            return
        where = mqtt.parse_topic(topic)
        if where is None:
            return  # not subscribed to anything else; a broker that over-delivers is ignored
        office = where.office
        with self._lock:
            waiting = self._queues.get(office)
            if waiting is None:
                waiting = self._queues[office] = deque()
            if len(waiting) >= QUEUE_LIMIT:
                self._dropped[office] = self._dropped.get(office, 0) + 1
                return
            if not waiting:
                self._ready.append(office)
            waiting.append(_Message(where, topic, payload, retained))
        if not self._wake.is_set():  # set() takes a lock and notifies: not once per message
            self._wake.set()

    # -- a turn ----------------------------------------------------------------------------------
    def turn(self, now: float) -> None:
        self._take_notes(now)
        self._take_trained(now)
        self._log_dropped(now)
        self._send_commands()
        for _ in range(len(self._ready)):
            with self._lock:
                office = self._ready.popleft()
                waiting = self._queues[office]
                batch = [waiting.popleft() for _ in range(min(BATCH, len(waiting)))]
                if waiting:
                    self._ready.append(office)
            self._handle(office, batch, now)
        self._ask_replays(now)
        self._publish_due(now)
        if self.synced and now >= self._refresh_at:  # a look once a second is plenty for 60 s
            self._refresh_at = now + 1.0
            for state in self.offices.values():
                state.refresh(now, self._send)

    def _take_notes(self, now: float) -> None:
        while True:
            try:
                kind, detail = self._notes.get_nowait()
            except queue.Empty:
                return
            if kind == broker_link.CONNECTED:
                _log.info("central %s: connected to the broker", self.name)
                self.view.connected()
                self.synced = False
                for state in self.offices.values():
                    state.forget_published(now)
                    self._dirty.add(state.office)
            elif kind == broker_link.SYNCED:
                self.synced = True
            elif kind == broker_link.LOST:
                _log.warning("central %s: connection to the broker lost (%s); paho reconnects", self.name, detail)
                self.view.disconnected()
                self.synced = False
            elif kind == broker_link.REFUSED:
                _log.error("central %s: no connection to the broker: %s", self.name, detail)

    def _take_trained(self, now: float) -> None:
        if self.trainer is None:
            return
        while True:
            try:
                done = self.trainer.done.get_nowait()
            except queue.Empty:
                return
            state = self.offices.get(done.office)
            if state is None or done.predictor is None:
                continue
            state.set_predictor(done.predictor, done.day, now)
            self._dirty.add(done.office)
            _log.info(
                "central %s: office %s: %s learned from %d past day(s) for %s in %.1f s",
                self.name,
                done.office,
                done.predictor.name,
                done.days,
                done.day,
                done.seconds,
            )

    def _log_dropped(self, now: float) -> None:
        if not self._dropped:
            return
        with self._lock:
            dropped, self._dropped = self._dropped, {}
        for office, count in dropped.items():
            self.problems(
                office,
                f"office {office}: {count} message(s) dropped: more than {QUEUE_LIMIT} waiting "
                "(flooding?); its events come back by replay",
                now,
            )

    def _state(self, office: str, now: float) -> OfficeState:
        state = self.offices.get(office)
        return state if state is not None else self._restore(office, now)

    def _restore(self, office: str, now: float) -> OfficeState:
        """The office as the store holds it (nothing, for an office new to central)."""
        store = self.store
        if store is None:  # the store is away: start empty; the office is asked for a replay later
            state = self.offices[office] = OfficeState(office, fallback())
            self._gappy.add(office)
            return state
        contiguous, last = store.contiguous_seq(office), store.last_seq(office)
        pruned = store.get_meta(office, PRUNED_KEY, 0)
        start = max(contiguous, pruned - 1 if isinstance(pruned, int) else 0)
        held: list[int] = []
        if last > start:
            gaps = [g for g in store.missing(office) if g.last > start]
            seq = start + 1
            for gap in gaps:
                held.extend(range(seq, max(seq, gap.first)))
                seq = max(seq, gap.last + 1)
            held.extend(range(seq, last + 1))
        today: Iterable[Mapping[str, Any]] = ()
        newest = next(iter(store.read(office, start, start)), None) if start else None
        if newest is not None and isinstance(newest.get("ts"), str):
            today = store.read_day(office, business_day(datetime.fromisoformat(newest["ts"])))
            if self.desk is not None:  # the day's audit list survives a restart of central
                today = list(today)
                self.desk.events(office, today)
        state = OfficeState.restore(office, fallback(), start, held, today, now)
        self.offices[office] = state
        self._dirty.add(office)
        if state.missing:
            self._gappy.add(office)
        missing = sum(b - a + 1 for a, b in state.missing)
        _log.info(
            "central %s: office %s: seqs up to %d stored (%d past a gap, %d missing), day %s",
            self.name,
            office,
            start,
            len(held),
            missing,
            state.floor.day,
        )
        return state

    def _train(self, state: OfficeState) -> None:
        day = state.floor.day
        if self.trainer is not None and day is not None and day != state.trained_for:
            self.trainer.request(state.office, day)

    # -- one office's messages -------------------------------------------------------------------
    def _handle(self, office: str, batch: list[_Message], now: float) -> None:
        state = self._state(office, now)
        records: list[dict[str, Any]] = []
        for m in batch:
            kind = m.where.kind
            if kind == mqtt.EVENTS:
                try:
                    records.append(mqtt.decode(m.payload))
                except mqtt.PayloadError as exc:
                    self.problems(office, f"{m.topic}: {exc}; dropped", now)
            elif kind == mqtt.GATEWAY:
                self._gateway(state, m, now)
                self._show(state, now)  # the dashboard shows a birth or death at once, not at the next round
            elif kind == mqtt.ACK:
                self._ack(state, m, now)
            elif kind == mqtt.TICKETS and m.payload:
                state.retained_ticket(m.topic, now)
            elif kind == mqtt.RESTORE:
                self._answer_restore(state, m, now)
            elif kind == mqtt.DEVICES:
                self._device(state, m, now)
                self._show(state, now)
        if records:
            accepted = self._append(office, records, now)
            if accepted:
                self._take(state, accepted, now)
                if any(r.get("type") in SHOWN_AT_ONCE for r in accepted):
                    # A call reaches its resident's page now; the estimates follow in their round
                    # (up to MAX_DELAY_S later while events keep coming).
                    self._show(state, now)
                if self.desk is not None:  # the audit records among them, for the dashboard
                    self.desk.events(office, accepted)
        if state.new_day:
            state.new_day = False
            self._train(state)
        self._note(state)

    def _take(self, state: OfficeState, records: list[dict[str, Any]], now: float) -> None:
        store = self.store
        assert store is not None
        try:
            state.take(records, now, lambda first, last: store.read(state.office, first, last))
        except Exception as exc:  # the store failed while the floor caught up: it resumes later
            self._store_failed(exc, now)

    def _note(self, state: OfficeState) -> None:
        if state.dirty_since is not None:
            self._dirty.add(state.office)
        if state.missing or state.probe or state.applied < (state.seqs.last or 0):
            self._gappy.add(state.office)

    def _gateway(self, state: OfficeState, m: _Message, now: float) -> None:
        """A birth or death, through the view's session rules (a late will of an older session,
        a late birth after its own death, are ignored)."""
        before = self.view.offices.get(state.office)
        late = before.old_session_messages if before is not None else 0
        if self.view.receive(m.topic, m.payload) is None:
            self.problems(state.office, f"{self.view.last_problem}; dropped", now)
            return
        view = self.view.offices.get(state.office)
        if view is None or view.gateway is None or view.old_session_messages > late:
            return
        seq = view.gateway.payload.get("seq") if view.online else None
        state.gateway(view.online, seq if isinstance(seq, int) and not isinstance(seq, bool) else None, m.retained, now)

    def _device(self, state: OfficeState, m: _Message, now: float) -> None:
        """A device's retained state (docs/mqtt.md, devices/<device>), kept for the dashboard; an
        empty payload clears it (a device taken out of the config)."""
        device = m.where.key
        if device is None:
            return
        if not m.payload:
            state.devices.pop(device, None)
            return
        try:
            payload = mqtt.decode(m.payload)
        except mqtt.PayloadError as exc:
            self.problems(state.office, f"{m.topic}: {exc}; dropped", now)
            return
        state.devices[device] = {**payload, "device": device}

    def _answer_restore(self, state: OfficeState, m: _Message, now: float) -> None:
        """A replacement gateway asks for the office's latest business day (`counterfloor gateway
        restore`): its records as stored, in parts on `restored/<id>`, with the last gateway
        session seen — or why not: central misses some of them, or has none."""
        office = state.office
        try:
            request = mqtt.parse_restore_request(office, m.payload)
        except mqtt.PayloadError as exc:
            self.problems(office, f"{m.topic}: {exc}; dropped", now)
            return
        records: list[dict[str, Any]] = []
        sessions: list[Any] = []
        error: str | None = None
        store = self.store
        day = state.floor.day
        if store is None:
            error = "central's store is not available now; try again"
        elif state.missing or state.applied < (state.seqs.last or 0):
            gaps = ", ".join(f"{a}–{b}" for a, b in state.missing) or f"after {state.applied}"
            error = f"central misses seqs {gaps} of {office} (asked the gateway for them); a restore would lose them"
        elif day is None:
            error = f"central has no events of {office}"
        else:
            try:
                rows = list(store.read_day(office, day))
            except Exception as exc:
                self._store_failed(exc, now)
                error, rows = "central's store failed while reading; try again", []
            # As exported (docs/events.md): the transport's session is not part of an event.
            records = [{k: v for k, v in r.items() if k != "session"} for r in rows]
            sessions = [r.get("session") for r in rows]
        view = self.view.offices.get(office)
        seen = view.gateway.payload.get("session") if view is not None and view.gateway is not None else None
        session = max([x for x in (seen, *sessions) if isinstance(x, int) and not isinstance(x, bool)], default=0)
        topic = mqtt.topic(office, mqtt.RESTORED, request)
        parts = mqtt.restore_parts(office, request, session, records, error)
        _log.info(
            "central %s: office %s: restore %s answered: %s",
            self.name,
            office,
            request,
            error or f"day {day}, {len(records)} events in {len(parts)} part(s), session {session}",
        )
        for part in parts:
            self.outbox.publish(topic, mqtt.encode(part), False)

    def _ack(self, state: OfficeState, m: _Message, now: float) -> None:
        try:
            answer = mqtt.decode(m.payload)
        except mqtt.PayloadError as exc:
            self.problems(state.office, f"{m.topic}: {exc}; dropped", now)
            return
        if self.desk is not None and self.desk.answer(state.office, answer):
            return  # a dashboard command's: shown there
        request = answer.get("id")
        if not isinstance(request, str) or not request.startswith(self._cmd_prefix):
            return  # another sender's command (or an earlier run's)
        if answer.get("ok"):
            first, last = answer.get("from_seq"), answer.get("to_seq")
            _log.info("central %s: office %s replays seqs %s-%s", self.name, state.office, first, last)
            return
        oldest = answer.get("oldest_seq")
        if answer.get("code") == "pruned" and isinstance(oldest, int) and self.store is not None:
            store = self.store
            try:
                store.set_meta(state.office, PRUNED_KEY, oldest)
                state.pruned(oldest, now, lambda first, last: store.read(state.office, first, last))
            except Exception as exc:
                self._store_failed(exc, now)
            return
        self.problems(state.office, f"{m.topic}: replay refused: {answer.get('error') or answer.get('code')}", now)

    # -- the store -------------------------------------------------------------------------------
    def _append(self, office: str, records: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Store the records; those now stored (new, or already with the same content). A record
        the store refuses is logged and dropped alone, the rest stored."""
        store = self._store_ready(now)
        topic = mqtt.topic(office, mqtt.EVENTS)
        if store is None:
            self.problems(office, f"{topic}: {len(records)} event(s) dropped: the store is unavailable", now)
            return []
        pending = records
        conflicted: set[int] = set()
        while pending:
            try:
                store.append(office, pending)
                return pending
            except ConflictingRecord as exc:
                self.problems(office, f"{topic}: seq {exc.seq} dropped: {exc}", now)
                if exc.seq in conflicted:  # it conflicts with the stored record: none of the batch's is taken
                    pending = [r for r in pending if r.get("seq") != exc.seq]
                else:  # perhaps two versions in this batch: the first that came is tried alone
                    conflicted.add(exc.seq)
                    first = next(i for i, r in enumerate(pending) if r.get("seq") == exc.seq)
                    pending = [r for i, r in enumerate(pending) if i <= first or r.get("seq") != exc.seq]
            except BadInput:
                good = []
                for record in pending:
                    try:
                        prepare_batch(office, [record])
                        good.append(record)
                    except (BadInput, ConflictingRecord) as exc:
                        self.problems(office, f"{topic}: a record dropped: {str(exc).split('; nothing')[0]}", now)
                if len(good) == len(pending):  # refused as a batch only: should not happen; take none
                    self.problems(office, f"{topic}: {len(good)} event(s) refused by the store; dropped", now)
                    return []
                pending = good
            except Exception as exc:
                self._store_failed(exc, now)
                return []
        return []

    def _store_ready(self, now: float) -> EventStore | None:
        if self.store is None and now >= self._store_retry_at:
            try:
                self.store = open_store(self.config.store_url)
            except Exception as exc:
                self._store_retry_at = now + self._store_backoff.next_delay()
                _log.error("central %s: the store is still unavailable: %s", self.name, exc)
                return None
            self._store_backoff.reset()
            _log.info("central %s: the store is back; asking every office for what it missed", self.name)
            for state in self.offices.values():
                state.probe, state.replay_at = True, None
                self._gappy.add(state.office)
        return self.store

    def _store_failed(self, exc: Exception, now: float) -> None:
        _log.error("central %s: the store failed (%s: %s); reopening it", self.name, type(exc).__name__, exc)
        if self.store is not None:
            with contextlib.suppress(Exception):  # it is being given up anyway
                self.store.close()
            self.store = None
        self._store_retry_at = now + self._store_backoff.next_delay()

    # -- replays and estimates -------------------------------------------------------------------
    def _ask_replays(self, now: float) -> None:
        for office in list(self._gappy):
            state = self.offices[office]
            if state.applied < (state.seqs.last or 0) and self.store is not None:
                self._take(state, [], now)  # a catch-up the store interrupted
            if not (state.missing or state.probe):
                self._gappy.discard(office)
                self._note(state)
                continue
            from_seq = state.replay_due(now)
            if from_seq is None:
                continue
            self._cmd_count += 1
            request = f"{self._cmd_prefix}{self._cmd_count}"
            command = mqtt.command_message(office, request, "replay", by="central", from_seq=from_seq)
            if self.outbox.publish(mqtt.topic(office, mqtt.CMD), mqtt.encode(command), False):
                _log.info("central %s: office %s: replay asked from seq %d (%s)", self.name, office, from_seq, request)
            else:
                state.replay_at = None  # not connected: asked again when it is
                state.probe = True

    def _send_commands(self) -> None:
        """The dashboard's commands, as central's own: QoS 1, never retained (docs/mqtt.md, cmd).
        One the client refuses (no connection) is not sent again: the page says so."""
        if self.desk is None:
            return
        for office, request, payload in self.desk.outgoing():
            ok = self.outbox.publish(mqtt.topic(office, mqtt.CMD), payload, False)
            self.desk.sent(request, ok)
            _log.info(
                "central %s: office %s: dashboard command %s %s",
                self.name,
                office,
                request,
                "sent" if ok else "not sent: no broker connection",
            )

    def _publish_due(self, now: float) -> None:
        if not self.synced:
            return  # the broker's retained ticket estimates are not all in yet
        ends = time.perf_counter() + COMPUTE_BUDGET_S
        for office in list(self._dirty):
            state = self.offices[office]
            if state.dirty_since is None:
                self._dirty.discard(office)
                continue
            if not state.estimates_due(now):
                continue
            if time.perf_counter() > ends:
                return  # next turn
            try:
                state.publish_estimates(now, self._send)
            except Exception as exc:  # the predictor failed on this floor: logged, tried at the next change
                self.problems(office, f"office {office}: estimates failed: {exc!r}", now)
            else:
                self._show(state, now)
            if state.dirty_since is None:
                self._dirty.discard(office)

    def _show(self, state: OfficeState, now: float) -> None:
        if self.on_round is None:
            return
        try:
            self.on_round(state)
        except Exception as exc:  # the pages lag; the office's stream goes on
            self.problems(state.office, f"office {state.office}: web view failed: {exc!r}", now)

    def _send(self, topic: str, payload: bytes) -> bool:
        return self.outbox.publish(topic, payload, True)

    # -- for the benchmark and tests -------------------------------------------------------------
    def drain(self) -> None:
        """Turns until no message waits, then every estimate that is pending goes out at once
        rather than after its quiet time (the benchmark's end of a replay)."""
        while True:
            now = self.clock()
            self.turn(now)
            if not self._ready:
                break
        for office in list(self._dirty):
            state = self.offices[office]
            if state.dirty_since is not None and not state.missing:
                state.publish_estimates(now, self._send)
                self._show(state, now)
            self._dirty.discard(office)
