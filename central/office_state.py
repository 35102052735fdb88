"""One office as a central worker holds it: the events applied in seq order to today's floor,
what is missing and when to ask for it, and what was published of its estimates.

Owns the rules that keep central's picture of an office exact:

- **Each event applied once, in seq order.** Records reach this class only after the store has
  taken them (central/worker.py); the seq bookkeeping is office.mqtt_view's `SeqTracker`
  (duplicates, what is held past a gap, what is missing), started at the store's contiguous seq.
  The floor is fed only as that contiguous run grows: from the records just received when they
  are the next ones, else read back from the store (a gap filled, a replay), never twice.
- **Gaps are asked for.** An event past the next expected seq, or a gateway birth naming a seq
  above it, leaves seqs missing: `replay_due` says when to send the gateway a `replay` from the
  first missing seq (docs/mqtt.md) — once, and again only if nothing has arrived for
  REPLAY_RETRY_S, so a replay under way is not asked for again at every event it brings.
- **Estimates in batches.** Each applied event marks the office changed; `estimates_due` says
  when to recompute: QUIET_S after the last change (a call's or an issue's burst of events has
  ended) or MAX_DELAY_S after the first one when events keep coming — never per event, and never
  while events are missing (the floor would be behind what the office knows).
- **Publications diffed.** A service's estimate goes out at each round in which its `seq` (or
  anything else) changed, and every REFRESH_S regardless; a ticket's only when it changed
  (`ahead` or its service, or a figure moved by STEP_S or more), and its topic is cleared once it
  no longer waits.

Pure: records, messages and the time in; publications and replay requests out. The store is
reached only through the `Reader` it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from central.estimates import ServiceEstimate, TicketEstimate, service_estimates, ticket_estimates
from office import mqtt
from office.mqtt_view import SeqTracker
from office.waittime import Floor, Predictor, RecordError, read_record
from office.waittime import records as r

QUIET_S = 0.1  # a burst of events (a call and the service it ends) has ended after this quiet
MAX_DELAY_S = 1.0  # while events keep coming, estimates are recomputed at most this often
REPLAY_RETRY_S = 10.0  # a replay that brought nothing for this long is asked for again
STEP_S = 30.0  # a ticket's estimate is republished when a figure moved this much (or a count changed)
# A service's estimates go out at every round (their `seq` follows the office's events: a gateway
# uses central's estimate only while its seq is the office's last, docs/mqtt.md) and again after
# this long without one, so that a quiet office's gateway still has them fresh (within 120 s).
REFRESH_S = 60.0

# The stored records from_seq…to_seq in seq order (central.store.EventStore.read).
Reader = Callable[[int, int], Iterable[Mapping[str, Any]]]
# Hands one retained publication to the broker: (topic, payload; b"" clears) -> accepted.
Send = Callable[[str, bytes], bool]

_log = logging.getLogger(__name__)
_FIGURES = ("mean_s", "p10_s", "p90_s")


@dataclass(slots=True)
class Figures:
    """Counts for logs, tests and the benchmark."""

    applied: int = 0  # events applied to the floor
    duplicates: int = 0  # records already held (a broker's redelivery, a replay's repeats)
    unreadable: int = 0  # stored, but not readable by the predictor's reader (logged)
    floor_errors: int = 0  # the floor refused an event (logged)
    store_short: int = 0  # the store lacked a seq it said it held (logged)
    computed: int = 0  # estimate rounds
    published: int = 0  # publications handed to the broker (clears included)
    replays: int = 0  # replay requests made


@dataclass
class OfficeState:
    """Central's picture of one office (see the module docstring)."""

    office: str
    predictor: Predictor
    applied: int = 0  # every seq up to it is stored and applied (or was before today)
    floor: Floor = field(default_factory=Floor)
    seqs: SeqTracker = field(default_factory=SeqTracker)
    tokens: dict[str, str] = field(default_factory=dict)  # today's ticket id -> token_hash
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # device id -> its retained state
    periods: tuple[r.Period, ...] = ()  # today's reception periods, from the latest `schedule`
    trained_for: str | None = None  # the business day the predictor's history ends before
    last_ts: str = ""  # ts of the last event applied
    # Retained topics as last published: payload dicts; None for a ticket topic found retained on
    # the broker whose content central does not know (published before a restart).
    estimates: dict[str, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    dirty_since: float | None = None
    last_change: float = 0.0
    refreshed_at: float = 0.0  # when the service estimates last went out
    online: bool | None = None  # the gateway's birth (True) or death (False) as last seen
    replay_at: float | None = None  # when a replay was last asked for
    progress_at: float = 0.0  # when `applied` last moved
    probe: bool = False  # a retained birth came: ask for what follows `applied`, missing or not
    new_day: bool = False  # the floor started a new business day (read and reset by the worker)
    figures: Figures = field(default_factory=Figures)
    # The last round's figures, kept for the web pages (central/web), which must not ask the
    # predictor again.
    last_services: list[ServiceEstimate] = field(default_factory=list)
    last_tickets: list[TicketEstimate] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.seqs.last is None:
            self.seqs.last = self.applied

    # -- building it ---------------------------------------------------------------------------
    @classmethod
    def restore(
        cls,
        office: str,
        predictor: Predictor,
        contiguous: int,
        held: Iterable[int] = (),
        today: Iterable[Mapping[str, Any]] = (),
        now: float = 0.0,
    ) -> OfficeState:
        """The office as the store holds it: every seq up to `contiguous` taken, the seqs in
        `held` stored past a gap, and `today` (the records of the last business day, in seq
        order) replayed into the floor. It starts changed, so its estimates go out again."""
        state = cls(office, predictor, applied=contiguous, seqs=SeqTracker(last=contiguous))
        for seq in held:
            state.seqs.event(seq)
        state.seqs.duplicates = 0
        for record in today:
            if isinstance(record.get("seq"), int) and record["seq"] <= contiguous:
                state._feed(record)
        state.new_day = False
        state._touch(now)
        return state

    # -- events ----------------------------------------------------------------------------------
    def take(self, records: Iterable[Mapping[str, Any]], now: float, read: Reader) -> int:
        """Records the store has just taken (each with a valid `seq`), in any order: the ones not
        held yet are noted, and the floor catches up as far as the seqs are contiguous. Returns
        how many events were applied."""
        fresh: dict[int, Mapping[str, Any]] = {}
        for record in records:
            seq = int(record["seq"])
            if self.seqs.event(seq):
                fresh[seq] = record
            else:
                self.figures.duplicates += 1
        return self._catch_up(fresh, now, read)

    def _catch_up(self, fresh: Mapping[int, Mapping[str, Any]], now: float, read: Reader) -> int:
        target = self.seqs.last or 0
        before = self.applied
        while self.applied < target:
            record = fresh.get(self.applied + 1)
            if record is not None:
                self._apply(record, now)
                continue
            # Held past a gap that is now filled (or a replay's): the store has them, in order.
            start = self.applied
            for record in read(self.applied + 1, target):
                if record.get("seq") != self.applied + 1:
                    break
                self._apply(record, now)
            if self.applied == start:
                self.figures.store_short += 1
                _log.error(
                    "office %s: the store lacks seq %d although it holds up to %d; asking for a replay",
                    self.office,
                    self.applied + 1,
                    target,
                )
                # The tracker believed them held: start it again from what is applied, so they are
                # missing (and asked for) again; a replay's repeats are duplicates to the store.
                self.seqs = SeqTracker(last=self.applied)
                self.seqs.announced(target)
                break
        if self.applied > before:
            self.progress_at = now
        return self.applied - before

    def _apply(self, record: Mapping[str, Any], now: float) -> None:
        self.applied = int(record["seq"])
        self.figures.applied += 1
        self._feed(record)
        self._touch(now)

    def _feed(self, record: Mapping[str, Any]) -> None:
        """One record into the floor (and the ticket's token hash, for its topic)."""
        ts = record.get("ts")
        if isinstance(ts, str):
            self.last_ts = ts
        if record.get("type") == "token_replaced":  # the predictor's reader skips it: the page follows it
            ticket, digest = record.get("ticket"), record.get("token_hash")
            if ticket in self.tokens and isinstance(digest, str) and mqtt.TOKEN_HASH.fullmatch(digest):
                self.tokens[str(ticket)] = digest
            return
        try:
            event = read_record(record)
        except RecordError as exc:
            self.figures.unreadable += 1
            _log.warning("office %s seq %s: not used for estimates: %s", self.office, record.get("seq"), exc)
            return
        if event is None:
            return  # a type prediction does not use
        day = self.floor.day
        try:
            self.floor.apply(event)
        except Exception as exc:  # the predictor's floor must not stop the office's stream
            self.figures.floor_errors += 1
            _log.error("office %s seq %s: the floor could not apply it: %r", self.office, record.get("seq"), exc)
            return
        if self.floor.day != day:
            self.tokens.clear()  # ticket ids restart each day
            self.periods = ()
            self.new_day = True
        if isinstance(event, r.Schedule):
            self.periods = event.periods
        if isinstance(event, r.TicketIssued) and event.token_hash and mqtt.TOKEN_HASH.fullmatch(event.token_hash):
            self.tokens[event.ticket] = event.token_hash

    def _touch(self, now: float) -> None:
        if self.dirty_since is None:
            self.dirty_since = now
        self.last_change = now

    # -- the gateway -------------------------------------------------------------------------------
    def gateway(self, online: bool, seq: int | None, retained: bool, now: float) -> None:
        """The gateway's birth (online, naming its last stored seq) or death. A retained birth is
        the first central sees on a connection: the gateway may have stored more since it was
        born, so the next seq is asked for anyway (a replay of nothing costs one ack)."""
        self.online = online
        if not online:
            return
        if seq is not None:
            self.seqs.announced(seq)
        if retained or self.missing:
            self.replay_at = None  # ask now (the gateway takes commands from its birth on)
            self.probe = retained

    def pruned(self, oldest: int, now: float, read: Reader) -> None:
        """The gateway no longer keeps the seqs before `oldest` (retention): they are given up,
        and what follows is taken as far as it is held."""
        if oldest - 1 <= self.applied:
            return
        _log.warning(
            "office %s: seqs %d-%d are no longer kept by the gateway (retention): given up",
            self.office,
            self.applied + 1,
            oldest - 1,
        )
        self.seqs.snapshot(oldest - 1)
        self.applied = oldest - 1
        self._catch_up({}, now, read)

    @property
    def missing(self) -> list[tuple[int, int]]:
        return self.seqs.missing

    def replay_due(self, now: float) -> int | None:
        """The seq to ask a replay from now, or None. Asked when seqs are missing (or a retained
        birth came), unless the gateway is known to be offline (a command to it would be lost:
        its next birth brings this back) or a replay asked for is still bringing events."""
        if self.online is False or not (self.missing or self.probe):
            return None
        waiting = self.replay_at is not None and now - self.replay_at < REPLAY_RETRY_S
        if waiting or (self.replay_at is not None and now - self.progress_at < REPLAY_RETRY_S):
            return None
        self.probe = False
        self.replay_at = now
        self.figures.replays += 1
        return self.applied + 1

    # -- estimates ---------------------------------------------------------------------------------
    def estimates_due(self, now: float) -> bool:
        if self.dirty_since is None or self.missing:
            return False
        return now - self.last_change >= QUIET_S or now - self.dirty_since >= MAX_DELAY_S

    def due_at(self) -> float | None:
        """When `estimates_due` turns true if nothing else happens (None: not pending)."""
        if self.dirty_since is None or self.missing:
            return None
        return min(self.last_change + QUIET_S, self.dirty_since + MAX_DELAY_S)

    def retained_ticket(self, topic: str, now: float) -> None:
        """A ticket estimate found retained on the broker (central's own, from before a restart or
        reconnect): unknown to this run, so the next round republishes or clears it."""
        if topic not in self.tickets:
            self.tickets[topic] = None
            self._touch(now)

    def forget_published(self, now: float) -> None:
        """After a reconnect nothing is known of what reached the broker: publish all again."""
        self.estimates.clear()
        for topic in self.tickets:
            self.tickets[topic] = None
        self._touch(now)

    def set_predictor(self, predictor: Predictor, day: str | None, now: float) -> None:
        self.predictor = predictor
        self.trained_for = day
        self._touch(now)

    def publish_estimates(self, now: float, send: Send) -> int:
        """Recompute and publish what changed; returns how many publications went out. A
        publication the broker's client refused is tried again in the next round."""
        self.dirty_since = None
        self.figures.computed += 1
        office, seq, ts = self.office, self.applied, self.last_ts
        failed = sent = 0
        self.last_services = service_estimates(self.floor, self.predictor)
        self.last_tickets = ticket_estimates(self.floor, self.predictor, self.tokens)
        for s in self.last_services:
            try:
                topic = mqtt.topic(office, mqtt.ESTIMATES, s.service)
            except ValueError:
                continue  # a service id a topic cannot carry (logged by nobody: the config forbids it)
            payload = mqtt.estimate_message(office, s.service, seq, s.waiting, *_whole(s.mean, s.p10, s.p90), ts)
            if _changed(self.estimates.get(topic), payload, ("waiting", "seq")):
                if send(topic, mqtt.encode(payload)):
                    self.estimates[topic] = payload
                    self.refreshed_at = now
                    sent += 1
                else:
                    failed += 1
        live = set()
        for t in self.last_tickets:
            topic = mqtt.topic(office, mqtt.TICKETS, t.token_hash)
            live.add(topic)
            payload = mqtt.ticket_estimate_message(
                office, t.token_hash, t.ticket, t.service, seq, t.ahead, t.issued_ts, *_whole(t.mean, t.p10, t.p90), ts
            )
            if _changed(self.tickets.get(topic), payload, ("ahead", "service", "ticket")):
                if send(topic, mqtt.encode(payload)):
                    self.tickets[topic] = payload
                    sent += 1
                else:
                    failed += 1
        for topic in [topic for topic in self.tickets if topic not in live]:
            if send(topic, b""):
                del self.tickets[topic]
                sent += 1
            else:
                failed += 1
        self.figures.published += sent
        if failed:
            self._touch(now)
        return sent

    def refresh(self, now: float, send: Send) -> int:
        """The service estimates as last published, again, when REFRESH_S has passed without
        them (not while events are missing: they would be behind); how many went out."""
        if not self.estimates or self.missing or now - self.refreshed_at < REFRESH_S:
            return 0
        self.refreshed_at = now
        sent = sum(1 for topic, payload in self.estimates.items() if send(topic, mqtt.encode(payload)))
        self.figures.published += sent
        return sent


def _whole(mean: float, p10: float, p90: float) -> tuple[int, int, int]:
    return round(mean), round(p10), round(p90)


def _changed(old: Mapping[str, Any] | None, new: Mapping[str, Any], exact: tuple[str, ...]) -> bool:
    if old is None:
        return True
    if any(old.get(k) != new.get(k) for k in exact):
        return True
    return any(abs(float(old.get(k, 0)) - float(new[k])) >= STEP_S for k in _FIGURES)
