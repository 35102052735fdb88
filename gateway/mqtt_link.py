"""The gateway on the MQTT broker (docs/mqtt.md): its floor published, its commands taken.

Owns one office's connection to the broker: the session (a number in the journal, one more at
each connection attempt, in the birth and the retained last will), the queue events published
from the journal in `seq` order with a "published up to" mark kept in the journal, the retained
snapshot, mode and device states, and the commands on `…/cmd` with their acks. It must not
decide anything about the floor: floor commands go through `Gateway.handle`, the control
socket's path, and everything it publishes is read from the journal and the gateway's links.

Local-first. The floor never waits for the broker: paho's network loop runs in its own thread
(`loop_start()`), and each connection attempt's blocking part (DNS, TCP, TLS, CONNECT) in a short
thread of its own, so a broker that is down, slow or unreachable costs the gateway's loop
nothing. Those threads only put what happened (connected, lost, acknowledged, a message) on a
queue; everything that touches the journal or the floor runs in `step()`, on the gateway's
thread. When to try connecting again is decided there too, on the gateway's injectable clock,
with doubling back-off and jitter (gateway.bus.Backoff).

The live stream and the catch-up after an outage are one code path: each step publishes the
stored events after the last one handed to the client, read from the journal, at most WINDOW
unacknowledged at a time; the mark advances as the broker acknowledges them (PUBACK) and is
written to the journal in batches, so a crash republishes at most a batch (consumers dedupe by
`seq`). After a reconnect, publishing resumes from the mark.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho

from gateway import control
from gateway.bus import Backoff
from gateway.device_link import LinkState
from gateway.journal import JournalError, TicketJournal
from gateway.mqtt_client import KEEPALIVE_S, BrokerLogin, make_client
from office import events as ev
from office import model as m
from office import mqtt as schema
from office.calendar import ModeOverride, mode_at, override_record
from office.waittime.estimator import CentralEstimate

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import date, datetime

    from gateway.service import Gateway

SESSION_KEY = "mqtt_session"  # journal meta: the last session number used (one more per attempt)
MARK_KEY = "mqtt_published_seq"  # journal meta: every event up to this seq was acknowledged by the broker
WINDOW = 100  # events handed to the client and not yet acknowledged: bounds memory and a burst
MARK_EVERY_EVENTS = 200  # the mark is written when it moved this many events...
MARK_EVERY_S = 5.0  # ...or this long after it last was (and on a loss and a clean stop)
SNAPSHOT_EVERY_S = 5.0  # the retained snapshot at most this often while the queue changes (~20 KB on a rush day)
MODE_CHECK_S = 15.0  # the mode is recomputed this often, and at its next change
DEVICE_CHECK_S = 1.0  # devices are looked at this often (a change goes out then)...
DEVICE_REFRESH_S = 60.0  # ...and all republished this often, with their last-seen time
CONNECT_TIMEOUT_S = 15.0  # an attempt with no CONNACK by then is given up
STABLE_S = 30.0  # a connection up this long restarts the back-off from its first delay
COMMANDS_PER_STEP = 20  # a flood of commands never holds the floor's loop for long
CLOSE_WAIT_S = 2.0  # a clean stop waits this long at most for the death's PUBACK and the close
REMEMBERED_IDS = 1000  # answers kept for retried ids of commands the journal keeps no id for
CLIENT_QUEUE_MAX = 2000  # messages paho may hold unsent; beyond it publishing waits for the next step
_ID_IN_HEAD = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9._:-]{1,64})"')
# The floor's commands: carried out by Gateway.handle, as from the control socket (its names).
FLOOR_COMMANDS = {
    "open": "open",
    "pause": "pause",
    "resume": "resume",
    "close": "close",
    "reprint": "reprint",
    "set_mode": "set-mode",
    "clear_mode": "clear-mode",
    "dispenser_message": "dispenser-message",
}
READ_ONLY_COMMANDS = frozenset({"replay", "rebirth"})
NOT_YET: frozenset[str] = frozenset()
# Carried out by the gateway's maintenance jobs (gateway.maintenance): answered when the device
# has acted (RESTART's ACK; a firmware update's progress, then its result), never in the call.
DEVICE_JOBS = frozenset({"restart_device", "firmware_update"})
_LATER: dict[str, Any] = {"ok": True, "pending": True}  # carry_out's "answered later", by identity
# A device's fields that change without its state changing (counters, the time since its HELLO):
# they go out with the minute's refresh, not each time they move.
_REFRESHED_ONLY = frozenset(
    {"printed", "since_hello_s", "failures", "retries", "timeouts", "crc_drops", "bad_frames", "resyncs", "restarts"}
)
_log = logging.getLogger(__name__)


def software() -> str:
    try:
        return f"counterfloor {metadata.version('counterfloor')}"
    except metadata.PackageNotFoundError:
        return "counterfloor"


# -- what the client's threads tell the gateway's thread --------------------------------------------
@dataclass(frozen=True, slots=True)
class _Connected:
    gen: int


@dataclass(frozen=True, slots=True)
class _Failed:
    gen: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Lost:
    gen: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Acked:
    gen: int
    mid: int


@dataclass(frozen=True, slots=True)
class _Message:
    gen: int
    topic: str
    payload: bytes
    retained: bool


_Note = _Connected | _Failed | _Lost | _Acked | _Message


@dataclass
class _Connection:
    """One attempt, and if it gets through, one connection: its own client (its will names its
    session) and the events handed to it not yet acknowledged."""

    gen: int
    session: int
    client: paho.Client
    started: float
    connected_at: float | None = None
    inflight: dict[int, int] = field(default_factory=dict)  # mid -> seq
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: bool = False  # given up: the attempt's thread must not start the network loop
    looping: bool = False  # paho's network thread was started


def command_id(data: bytes) -> str | None:
    """The id of a command payload that could not be parsed, for its error ack: from the JSON
    when it decodes, else (too large, not JSON) from its first 4 KiB; None when there is none."""
    if len(data) <= schema.MAX_PAYLOAD:
        try:
            rid = schema.decode(data).get("id")
        except schema.PayloadError:
            rid = None
        if isinstance(rid, str) and schema.REQUEST_ID.fullmatch(rid):
            return rid
    m = _ID_IN_HEAD.search(data[:4096])
    return m.group(1).decode() if m else None


class MqttLink:
    """The gateway's side of the broker (see the module docstring). `start()` once the gateway's
    journal and links exist, `step()` in every turn of its loop, `close()` when it stops."""

    def __init__(
        self,
        gateway: Gateway,
        login: BrokerLogin,
        *,
        backoff: Backoff | None = None,
        client_factory: Callable[..., paho.Client] = make_client,
    ) -> None:
        self.gw = gateway
        self.login = login
        self.backoff = backoff or Backoff(first=0.5, limit=30.0, jitter=0.5)
        self._factory = client_factory
        self._inbox: queue.SimpleQueue[_Note] = queue.SimpleQueue()
        self._conn: _Connection | None = None
        self._gen = 0
        self._next_attempt = 0.0
        journal = self._journal
        self.office = journal.office.config.id
        self.client_id = f"counterfloor-gw-{self.office}"
        self._topics = {
            kind: schema.topic(self.office, kind)
            for kind in (schema.GATEWAY, schema.EVENTS, schema.SNAPSHOT, schema.MODE, schema.CMD, schema.ACK)
        }
        self._estimates = f"{schema.ROOT}/{self.office}/{schema.ESTIMATES}/"
        self.session = _int_meta(journal.get_meta(SESSION_KEY), SESSION_KEY)
        # Every event up to `mark` was acknowledged; `_sent`: the last one handed to the client.
        self.mark = min(_int_meta(journal.get_meta(MARK_KEY), MARK_KEY), journal.office.state.last_seq)
        self._mark_stored = self.mark
        self._mark_written_at = 0.0
        self._sent = self.mark
        self._snapshot_due = False
        self._snapshot_seq = -1
        self._snapshot_at = 0.0
        self._mode: dict[str, Any] | None = None
        self._mode_check_at = 0.0
        self._overrides: dict[date, ModeOverride] = {}  # the journal's overrides the mode was worked out with
        self._devices: dict[str, dict[str, Any]] = {}
        self._device_check_at = 0.0
        self._device_refresh_at = 0.0
        self._last_seen: dict[str, str] = {}
        self._unnamed: set[str] = set()  # devices whose id cannot name a topic (logged once)
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._later: dict[str, schema.RemoteCommand] = {}  # device jobs under way, by job token
        # Figures (tests, bench): connection attempts, connections, events and bytes published.
        self.attempts = 0
        self.connections = 0
        self.events_published = 0
        self.bytes_published = 0
        self.last_error: str | None = None
        self._failing: str | None = None
        self._failing_logged = 0.0

    @property
    def _journal(self) -> TicketJournal:
        journal = self.gw.journal
        assert journal is not None, "the MQTT link runs only while the gateway holds its journal"
        return journal

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected_at is not None

    @property
    def next_attempt(self) -> float | None:
        """When the next connection attempt starts (the gateway's clock); None while one is under way."""
        return None if self._conn is not None else self._next_attempt

    def start(self) -> None:
        """Connect at the first step."""
        self._next_attempt = self.gw.clock.now()

    def config_changed(self) -> None:
        """The office's config was replaced: the mode (hours, calendar) and the snapshot (names)
        go out again at the next step."""
        self._mode_check_at = 0.0
        self._snapshot_due = True

    # -- the gateway's turn ----------------------------------------------------------------------
    def step(self) -> None:
        """What happened on the connection, then what is due: a connection attempt, events,
        snapshot, mode, devices, the mark. Never raises: the floor goes on whatever the broker does."""
        try:
            now = self.gw.clock.now()
            self._drain(now)
            conn = self._conn
            if conn is None:
                if now >= self._next_attempt:
                    self._attempt(now)
            elif conn.connected_at is None and now >= conn.started + CONNECT_TIMEOUT_S:
                self._give_up(conn, now, f"no CONNACK within {CONNECT_TIMEOUT_S:g} s")
            self._watch_devices(now)
            if self.connected:
                self._publish_due(now)
            self._write_mark(now)
        except Exception as exc:  # e.g. a journal row that cannot be read: logged, once a minute at most
            problem, at = f"{type(exc).__name__}: {exc}", time.monotonic()
            if problem != self._failing or at >= self._failing_logged + 60.0:
                _log.exception("MQTT link: a step failed; the floor carries on")
                self._failing, self._failing_logged = problem, at

    def _drain(self, now: float) -> None:
        commands = 0
        while commands < COMMANDS_PER_STEP:
            try:
                note = self._inbox.get_nowait()
            except queue.Empty:
                return
            commands += isinstance(note, _Message)
            self._take(note, now)

    def _take(self, note: _Note, now: float) -> None:
        """One note from paho's thread, in the gateway's thread."""
        conn = self._conn
        if isinstance(note, _Message):
            self._message(note)
        elif conn is None or note.gen != conn.gen:
            return  # about an attempt given up already
        elif isinstance(note, _Acked):
            self._acked(conn, note.mid)
        elif isinstance(note, _Connected):
            self._connected(conn, now)
        elif isinstance(note, _Failed):
            self._give_up(conn, now, note.reason)
        elif isinstance(note, _Lost):
            self._lost(conn, now, note.reason)

    def flush(self, timeout: float) -> bool:
        """Step until the broker has acknowledged every journaled event and the snapshot is
        current (True), or `timeout` real seconds pass (False). Between steps it waits on paho's
        notes, not on a timer: for the demo's end of day, where events come faster than a floor's."""
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            state = self._journal.office.state
            if self.connected and self.mark >= state.last_seq:
                if self._snapshot_seq >= state.last_seq:
                    self._write_mark(self.gw.clock.now(), force=True)
                    return True
                self._snapshot_due = True  # the day's last picture now, not SNAPSHOT_EVERY_S later
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                # A connection attempt or its back-off produces no note: wake for the next attempt.
                note = self._inbox.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            self._take(note, self.gw.clock.now())

    # -- connecting --------------------------------------------------------------------------------
    def _attempt(self, now: float) -> None:
        """A new session (stored first: its death is the will of this attempt), then the connect
        in a thread of its own."""
        session = self.session + 1
        try:
            self._journal.set_meta(SESSION_KEY, str(session))
        except (JournalError, sqlite3.Error, OSError) as exc:
            self._schedule(now, f"the session number could not be stored: {exc}")
            return
        self.session = session
        self._gen += 1
        gen = self._gen
        will = (self._topics[schema.GATEWAY], schema.death(self.office, session))
        client = self._factory(self.login, self.client_id, will)
        client.max_inflight_messages_set(2 * WINDOW)
        client.max_queued_messages_set(CLIENT_QUEUE_MAX)
        conn = _Connection(gen, session, client, now)
        self._wire(conn)
        self._conn = conn
        self.attempts += 1
        _log.info("MQTT: connecting to %s as %s (session %d)", self.login.address, self.client_id, session)
        threading.Thread(target=self._connect, args=(conn,), name=f"mqtt-connect-{gen}", daemon=True).start()

    def _wire(self, conn: _Connection) -> None:
        """paho's callbacks, in its thread: each only tells the gateway's thread what happened."""
        inbox, gen = self._inbox, conn.gen

        def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            inbox.put(_Failed(gen, f"refused: {reason}") if reason.is_failure else _Connected(gen))

        def on_disconnect(client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            # The loop ends here instead of paho reconnecting on its own: the next attempt is the
            # gateway's, with a new session and so a new will.
            client.loop_stop()
            inbox.put(_Lost(gen, str(reason)))

        def on_publish(client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
            inbox.put(_Acked(gen, mid))

        def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
            inbox.put(_Message(gen, message.topic, bytes(message.payload), bool(message.retain)))

        conn.client.on_connect = on_connect
        conn.client.on_disconnect = on_disconnect
        conn.client.on_publish = on_publish
        conn.client.on_message = on_message

    def _connect(self, conn: _Connection) -> None:
        """In the attempt's own thread: the blocking connect, then paho's network loop."""
        address = self.login.address
        try:
            conn.client.connect(address.host, address.port, keepalive=KEEPALIVE_S)
        except Exception as exc:  # refused, unreachable, TLS, a name that does not resolve
            self._inbox.put(_Failed(conn.gen, f"{type(exc).__name__}: {exc}"))
            return
        with conn.lock:
            if conn.cancelled:
                with contextlib.suppress(Exception):
                    conn.client.disconnect()
                return
            conn.client.loop_start()
            conn.looping = True

    def _connected(self, conn: _Connection, now: float) -> None:
        conn.connected_at = now
        self.connections += 1
        self.last_error = None
        _log.info(
            "MQTT: connected to %s (session %d); publishing from seq %d",
            self.login.address,
            conn.session,
            self.mark + 1,
        )
        client = conn.client
        client.subscribe(self._topics[schema.CMD], qos=1)
        client.subscribe(self._estimates + "+", qos=1)  # central's per service: the model's when current
        self._sent = self.mark  # what the broker did not acknowledge goes again, in order
        self._announce(now)
        # After the birth: a late will of an older session, retained over it, is answered (below).
        client.subscribe(self._topics[schema.GATEWAY], qos=1)

    def _give_up(self, conn: _Connection, now: float, reason: str) -> None:
        self._close_client(conn)
        self._conn = None
        self._schedule(now, reason)

    def _lost(self, conn: _Connection, now: float, reason: str) -> None:
        was_up = conn.connected_at is not None
        if conn.connected_at is not None and now - conn.connected_at >= STABLE_S:
            self.backoff.reset()  # a connection that held: the next loss starts from the first delay
        self._conn = None
        self._close_client(conn)
        self._write_mark(now, force=True)
        self._schedule(now, f"connection lost: {reason}" if was_up else reason)

    def _schedule(self, now: float, reason: str) -> None:
        delay = self.backoff.next_delay()
        self._next_attempt = now + delay
        self.last_error = reason
        _log.warning("MQTT: %s; trying again in %.1f s (the floor carries on)", reason, delay)

    def _close_client(self, conn: _Connection) -> None:
        """Stop a connection without waiting for it (its thread ends by itself)."""
        with conn.lock:
            conn.cancelled = True
            looping = conn.looping
        if looping:
            with contextlib.suppress(Exception):
                conn.client.disconnect()  # on_disconnect stops paho's thread

    # -- publishing --------------------------------------------------------------------------------
    def _publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> paho.MQTTMessageInfo | None:
        conn = self._conn
        if conn is None or conn.connected_at is None:
            return None
        data = schema.encode(payload)
        info = conn.client.publish(topic, data, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return None
        self.bytes_published += len(topic) + len(data)
        return info

    def _announce(self, now: float) -> None:
        """Birth, mode and devices now, the snapshot as soon as the events before it are out: the
        whole retained picture (at a connection, and for a `rebirth`)."""
        state = self._journal.office.state
        birth = schema.birth(self.office, self.session, state.last_seq, self._ts(), software())
        self._publish(self._topics[schema.GATEWAY], birth, retain=True)
        self._publish_mode(now, force=True)
        self._publish_devices(now, refresh=True)
        self._snapshot_due = True
        self._publish_due(now)

    def _publish_due(self, now: float) -> None:
        self._publish_events()
        self._publish_snapshot(now)
        if now >= self._mode_check_at or self._journal.office.state.overrides != self._overrides:
            self._publish_mode(now)  # due, or an override was set or cleared (from here or the socket)
        if now >= self._device_refresh_at:
            self._publish_devices(now, refresh=True)

    def _publish_events(self) -> None:
        """The stored events after the last one handed to the client, in seq order, WINDOW at most
        in flight: the live stream, the catch-up after an outage and a replay alike."""
        conn = self._conn
        assert conn is not None
        journal = self._journal
        last = journal.office.state.last_seq
        topic = self._topics[schema.EVENTS]
        while self._sent < last and len(conn.inflight) < WINDOW:
            events = journal.events_after(self._sent, WINDOW - len(conn.inflight))
            if not events:
                return  # nothing stored after it although the state says so: try again next step
            for event in events:
                record = schema.event_message(ev.public_record(event, self.office), conn.session)
                info = self._publish(topic, record)
                if info is None:
                    return  # the client's queue is full or the connection is going: next step
                conn.inflight[info.mid] = event.seq
                self._sent = event.seq
                self.events_published += 1

    def _acked(self, conn: _Connection, mid: int) -> None:
        if conn.inflight.pop(mid, None) is None:
            return  # not an event (a retained message, an ack)
        acked = min(conn.inflight.values()) - 1 if conn.inflight else self._sent
        self.mark = max(self.mark, acked)

    def _write_mark(self, now: float, force: bool = False) -> None:
        """The mark, in batches: after a crash at most MARK_EVERY_EVENTS or MARK_EVERY_S of
        events are published again."""
        if self.mark == self._mark_stored:
            return
        if (
            not force
            and self.mark - self._mark_stored < MARK_EVERY_EVENTS
            and now < self._mark_written_at + MARK_EVERY_S
        ):
            return
        try:
            self._journal.set_meta(MARK_KEY, str(self.mark))
        except (JournalError, sqlite3.Error, OSError) as exc:
            _log.warning("MQTT: the published-up-to mark could not be stored (will retry): %s", exc)
            self._mark_written_at = now
            return
        self._mark_stored = self.mark
        self._mark_written_at = now

    def _publish_snapshot(self, now: float) -> None:
        """The retained queue, never ahead of the events handed out before it, at most every
        SNAPSHOT_EVERY_S while the queue changes (at once when due: a connection, a rebirth)."""
        journal = self._journal
        state = journal.office.state
        if self._sent < state.last_seq:
            return
        if not self._snapshot_due and (
            state.last_seq == self._snapshot_seq or now < self._snapshot_at + SNAPSHOT_EVERY_S
        ):
            return
        queue_state = control.queue_json(state, journal.office.config)
        message = schema.snapshot_message(self.office, self.session, state.last_seq, self._ts(), queue_state)
        if self._publish(self._topics[schema.SNAPSHOT], message, retain=True) is not None:
            self._snapshot_due = False
            self._snapshot_seq = state.last_seq
            self._snapshot_at = now

    def _publish_mode(self, now: float, force: bool = False) -> None:
        """The calendar's mode, when it changed (looked at every MODE_CHECK_S and at its change)."""
        wall = self.gw.wall()
        office = self._journal.office
        self._overrides = dict(office.state.overrides)
        override = self._overrides.get(wall.astimezone(office.config.tz).date())
        mode = mode_at(office.config, wall, override)
        delay = MODE_CHECK_S
        if mode.next_change is not None:
            delay = min(delay, max((mode.next_change - wall).total_seconds(), 0.01))
        self._mode_check_at = now + delay
        view = {
            "mode": mode.mode,
            "services": list(mode.services),
            "since": _iso(mode.since),
            "next_change": _iso(mode.next_change),
            "next_mode": mode.next_mode,
            "next_opening": _iso(mode.next_opening),
            "reason": {"ja": mode.reason.ja, "en": mode.reason.en} if mode.reason is not None else None,
            "override": override_record(override) if override is not None else None,
            "overrides": sorted(o.day.isoformat() for o in self._overrides.values()),
        }
        if not force and view == self._mode:
            return
        message = schema.mode_message(self.office, self.session, view, self._ts())
        if self._publish(self._topics[schema.MODE], message, retain=True) is not None:
            self._mode = view

    def _watch_devices(self, now: float) -> None:
        """Every DEVICE_CHECK_S, connected or not: when each device was last seen answering, and
        (connected) a device whose state changed goes out."""
        if now < self._device_check_at:
            return
        self._device_check_at = now + DEVICE_CHECK_S
        stamp = self._ts()
        for device, link, _ in self.gw.bus_devices():
            if link.state in (LinkState.ONLINE, LinkState.IDENTIFIED) and link.missed == 0:
                self._last_seen[device] = stamp
        if self.connected:
            self._publish_devices(now, refresh=False)

    def _publish_devices(self, now: float, refresh: bool) -> None:
        if refresh:
            self._device_refresh_at = now + DEVICE_REFRESH_S
        stamp = self._ts()
        for device, view in self.device_views().items():
            # The count of tickets printed changes with each one, the link's counters with each
            # error: they go out with the minute's refresh (and with any other change).
            key = {k: v for k, v in view.items() if k not in _REFRESHED_ONLY}
            if not refresh and self._devices.get(device) == key:
                continue
            try:
                topic = schema.topic(self.office, schema.DEVICES, device)
            except ValueError:
                if device not in self._unnamed:
                    self._unnamed.add(device)
                    _log.warning("MQTT: device %r cannot name a topic; its state is not published", device)
                continue
            state = {**view, "last_seen": self._last_seen.get(device)}
            message = schema.device_message(self.office, self.session, device, state, stamp)
            if self._publish(topic, message, retain=True) is not None:
                self._devices[device] = key

    def device_views(self) -> dict[str, dict[str, Any]]:
        """What the gateway knows of each device, by topic id (docs/mqtt.md; Gateway.device_state),
        without the time last seen (which changes all the time and goes out with the minute's refresh)."""
        known = self.gw.device_state()
        views: dict[str, dict[str, Any]] = {}
        for device, view in known["devices"].items():
            views[device] = dict(view)
            if (job := self.gw.jobs.view(device)) is not None:  # RESTART / firmware job: its state, progress
                views[device]["maintenance"] = job
        if self.gw.gpio is not None:
            for c in self.gw.gpio.counters:
                views[f"gpio-{c.counter}"] = {"kind": "gpio_counter", "state": "online", "counter": c.counter}
        for pid, printer in known.get("printers", {}).items():
            status = printer.get("status")
            responding = bool(status and status.get("responding"))
            views[f"printer-{pid}"] = {
                "kind": "printer",
                "state": "online" if responding else "offline",
                "printer": printer["state"],  # ready, printing, stopped (paper out, cover open…), unknown
                **{k: v for k, v in printer.items() if k != "state"},
            }
        return views

    # -- commands ----------------------------------------------------------------------------------
    def _message(self, note: _Message) -> None:
        if note.topic == self._topics[schema.GATEWAY]:
            self._gateway_message(note.payload)
        elif note.topic.startswith(self._estimates):
            self._central_estimate(note.topic[len(self._estimates) :], note.payload)
        elif note.topic == self._topics[schema.CMD]:
            if note.retained:
                # Commands are never retained; one left on the broker must not run at each connection.
                _log.warning(
                    "MQTT: a retained command on %s ignored (clear it: publish an empty retained payload)", note.topic
                )
                return
            self._command(note.payload)

    def _gateway_message(self, data: bytes) -> None:
        """A death of an older session, retained over this session's birth (an old connection's
        will the broker fired late): the birth again, so a late subscriber sees the truth."""
        if not data:
            return
        try:
            payload = schema.decode(data)
        except schema.PayloadError:
            return
        session = payload.get("session")
        if payload.get("state") == "offline" and isinstance(session, int) and session < self.session and self.connected:
            _log.info("MQTT: a late death of session %d over session %d's birth: born again", session, self.session)
            state = self._journal.office.state
            birth = schema.birth(self.office, self.session, state.last_seq, self._ts(), software())
            self._publish(self._topics[schema.GATEWAY], birth, retain=True)

    def _central_estimate(self, service: str, data: bytes) -> None:
        """Central's estimate for a service, for the gateway's model while it is current
        (office.waittime.estimator); an empty payload (cleared) forgets it."""
        estimator = self.gw.estimator
        if estimator is None:
            return
        if not data:
            estimator.central.pop(service, None)
            return
        try:
            got = schema.parse_estimate(self.office, service, data)
        except schema.PayloadError as exc:
            _log.warning("MQTT: central's estimate on %s%s dropped: %s", self._estimates, service, exc)
            return
        estimator.take_central(service, CentralEstimate(got.seq, got.mean_s, got.p10_s, got.p90_s, time.monotonic()))

    def _command(self, data: bytes) -> None:
        try:
            cmd = schema.parse_command(self.office, data)
        except schema.PayloadError as exc:
            rid = command_id(data)
            if rid is None:
                _log.warning("MQTT: a command without a usable id dropped: %s", exc)
                return
            self._ack(rid, {"ok": False, "code": "bad_command", "error": str(exc)})
            return
        # The audit record. Over MQTT 3.1.1 the broker does not say which account sent a message.
        _log.info(
            "MQTT command %s id=%s from %s: %s",
            cmd.name,
            cmd.request,
            cmd.sender or "an unknown sender (not told over MQTT 3.1.1)",
            cmd.fields,
        )
        answer = self.carry_out(cmd)
        if answer is _LATER:  # a device job: acked (and audited) by job_answers when it has an answer
            return
        self._audit(cmd, answer)
        self._ack(cmd.request, answer)

    def _audit(self, cmd: schema.RemoteCommand, answer: dict[str, Any]) -> None:
        """A `remote_command` event for each command that may change something, carried out or
        not (a retry answered with the first result is audited once; replay and rebirth, which
        only republish, are logged only)."""
        if answer.get("repeated") or cmd.name in READ_ONLY_COMMANDS:
            return
        error = None if answer.get("ok") else str(answer.get("error") or answer.get("code") or "refused")
        audit = m.RecordRemoteCommand(cmd.request, cmd.name, cmd.sender, bool(answer.get("ok")), error)
        try:
            self._journal.execute(audit)
        except (JournalError, OSError, sqlite3.Error) as exc:
            _log.error("MQTT command %s id=%s could not be audited in the journal: %s", cmd.name, cmd.request, exc)

    def carry_out(self, cmd: schema.RemoteCommand) -> dict[str, Any]:
        """A parsed command -> its answer ({"ok": …, …}). Never raises."""
        if cmd.name in FLOOR_COMMANDS and cmd.name != "reprint":
            # The journal keeps the id with the command's events: a retry is answered, not redone.
            request = {"cmd": FLOOR_COMMANDS[cmd.name], **cmd.fields}
            return self.gw.handle(request, request_key=f"mqtt:{cmd.request}")
        if cmd.name == "push_config":  # the control socket's reconfigure; its id kept as the floor's are
            return self.gw.reconfigure(
                str(cmd.fields["config"]),
                via="mqtt",
                sender=cmd.sender,
                request=f"mqtt:{cmd.request}",
                source=f"push_config {cmd.request}",
            )
        if (first := self._answers.get(cmd.request)) is not None:
            return {**first, "repeated": True}
        if cmd.name == "reprint":
            answer = self.gw.handle({"cmd": "reprint", **cmd.fields})
        elif cmd.name == "replay":
            answer = self._replay(int(cmd.fields["from_seq"]))
        elif cmd.name == "rebirth":
            self._announce(self.gw.clock.now())
            answer = {"ok": True, "session": self.session}
        elif cmd.name in DEVICE_JOBS:
            return self._device_job(cmd)
        elif cmd.name in NOT_YET:
            return {"ok": False, "code": "not_implemented", "error": f"{cmd.name}: not implemented yet"}
        else:  # a command of the schema this gateway does not know
            return {"ok": False, "code": "unknown_command", "error": f"{cmd.name}: not carried out by this gateway"}
        if answer.get("ok"):
            # A reprint stores nothing of its own: its id is remembered here (for this run only).
            self._remember(cmd.request, answer)
        return answer

    def _remember(self, request: str, answer: dict[str, Any]) -> None:
        """The answer a retry of `request` gets during this run (commands the journal keeps no id for)."""
        self._answers[request] = answer
        while len(self._answers) > REMEMBERED_IDS:
            self._answers.popitem(last=False)

    def _device_job(self, cmd: schema.RemoteCommand) -> dict[str, Any]:
        """restart_device, firmware_update: a job of the gateway's (gateway.maintenance), whose
        answers come from job_answers; an answer now only when it cannot start (or is a retry)."""
        token, now, jobs, f = f"mqtt:{cmd.request}", self.gw.clock.now(), self.gw.jobs, cmd.fields
        if cmd.name == "restart_device":
            answer = jobs.restart(token, f["device"], now)
        else:  # bundle_url: a path on the gateway or a file:// URL, never fetched over the network
            answer = jobs.firmware(token, f["device"], f["bundle_url"], f["sha256"], now)
        if answer is None:
            self._later[token] = cmd
            return _LATER
        return answer

    def job_answers(self, answers: list[tuple[str, dict[str, Any]]]) -> None:
        """The maintenance jobs' answers of this turn (Gateway.step): each of ours is acked, a
        progress one (`"pending": true`) as it comes, the final one also audited."""
        for token, answer in answers:
            cmd = self._later.get(token)
            if cmd is None:
                continue  # a control socket's job
            if not answer.get("pending"):
                del self._later[token]
                self._audit(cmd, answer)
                # A retry gets this answer however long after (the job table forgets in 10 min).
                self._remember(cmd.request, answer)
            self._ack(cmd.request, answer)

    def _replay(self, from_seq: int) -> dict[str, Any]:
        """Republish the stored events from `from_seq` on, in order (the events stream's own
        code: it restarts from there). What retention pruned: an error, and a rebirth."""
        last = self._journal.office.state.last_seq
        if from_seq < 1:
            return {"ok": False, "code": "bad_command", "error": f"replay: from_seq must be 1 or more (got {from_seq})"}
        if from_seq > last:
            return {"ok": True, "from_seq": from_seq, "to_seq": last, "note": "nothing stored after the last seq"}
        first = self._journal.events_after(from_seq - 1, 1)
        if not first or first[0].seq != from_seq:
            oldest = first[0].seq if first else None
            self._announce(self.gw.clock.now())
            return {
                "ok": False,
                "code": "pruned",
                "oldest_seq": oldest,
                "error": f"pruned: events before {oldest} are no longer kept (retention); a rebirth was sent",
            }
        self._sent = min(self._sent, from_seq - 1)
        if self.connected:
            self._publish_events()
        return {"ok": True, "from_seq": from_seq, "to_seq": last}

    def _ack(self, request: str, answer: dict[str, Any]) -> None:
        fields = {k: v for k, v in answer.items() if k != "ok"}
        self._publish(self._topics[schema.ACK], schema.ack(self.office, request, bool(answer.get("ok")), **fields))

    # -- stopping ----------------------------------------------------------------------------------
    def close(self) -> None:
        """A clean stop: the death of this session (retained; its PUBACK awaited), the connection
        closed, the mark stored. Waits CLOSE_WAIT_S at most for each: a stuck broker cannot hold
        the gateway's exit (paho's thread is a daemon)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.connected_at is not None:
            death = schema.death(self.office, conn.session)
            try:
                info = conn.client.publish(self._topics[schema.GATEWAY], schema.encode(death), qos=1, retain=True)
                info.wait_for_publish(CLOSE_WAIT_S)
            except (RuntimeError, ValueError) as exc:  # the connection went meanwhile: its will says it
                _log.info("MQTT: the death could not be published (%s); the last will stands for it", exc)
        with conn.lock:
            conn.cancelled = True
            looping = conn.looping
        if looping:
            with contextlib.suppress(Exception):
                conn.client.disconnect()
            self._wait_lost(conn)
        with contextlib.suppress(Exception):
            self._write_mark(self.gw.clock.now(), force=True)
        _log.info("MQTT: disconnected (session %d ends; published up to seq %d)", conn.session, self.mark)

    def _wait_lost(self, conn: _Connection) -> None:
        """Until paho's thread says the connection is closed (CLOSE_WAIT_S at most), taking the
        acknowledgements that come before it into the mark."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                note = self._inbox.get(timeout=left)
            except queue.Empty:
                return
            if note.gen != conn.gen:
                continue
            if isinstance(note, _Acked):
                self._acked(conn, note.mid)
            elif isinstance(note, _Lost):
                return

    # -- helpers ----------------------------------------------------------------------------------
    def _ts(self) -> str:
        return ev.format_ts(self.gw.wall().astimezone(self._journal.office.config.tz))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _int_meta(value: str | None, key: str) -> int:
    if value is None:
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        _log.warning("journal meta %s is not a number (%r): counting from 0", key, value)
        return 0
