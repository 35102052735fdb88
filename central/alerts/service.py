"""The residents' alerts as a worker runs them: subscriptions kept, rules evaluated, notices handed
to the channels' outboxes — in a thread of its own, beside the worker and the web.

Owns the subscriptions of the worker's offices (docs/alerts.md). Nothing here is on the event
path: the worker's round publishes a view to the hub, the hub tells this thread which office
changed (one set insertion), and this thread evaluates that office's subscribed tickets against
the view (central/alerts/engine.py) and submits what is due to the outboxes, which deliver from
threads of their own. A tick every TICK_S evaluates every office again: "about M minutes before"
comes due with the clock, not only with events.

A subscription is stored before it is confirmed to the page (the event store's `put_alert`, in
this thread's own connection), and what was sent is stored before it is submitted: a central
that restarts sends nothing twice (at worst, one alert in flight at the crash is lost). A ticket
served, transferred out, finally a no-show or gone from the day's view has its subscription
deleted; at each tick, any of a day before the office's current one are swept too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from central.alerts.engine import Choice, TicketNow, Watch, step
from central.alerts.notice import Notice, NoticeKind
from central.alerts.outbox import Outbox
from central.store import EventStore, open_store
from central.web.hub import ViewHub
from central.web.i18n import Lang, text
from central.web.names import Names
from central.web.view import OfficeView, TicketView

TICK_S = 5.0  # "about M minutes before" is evaluated at least this often
CHANNELS = ("push", "mail")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One ticket's alerts: what was picked, where they go, what went."""

    office: str
    token_hash: str
    day: str  # the business day of its ticket
    lang: Lang
    watch: Watch
    targets: Mapping[str, str] = field(default_factory=dict)  # channel -> its target (see the channel)

    def record(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "by": self.watch.choice.by,
            "value": self.watch.choice.value,
            "sent": sorted(self.watch.sent),
            "targets": dict(self.targets),
        }

    @classmethod
    def from_record(cls, office: str, token_hash: str, day: str, record: Mapping[str, Any]) -> Subscription:
        lang: Lang = "en" if record.get("lang") == "en" else "ja"
        choice = Choice("minutes" if record.get("by") == "minutes" else "ahead", int(record.get("value", 3)))
        sent = frozenset(str(s) for s in record.get("sent", []))
        targets = {k: str(v) for k, v in dict(record.get("targets", {})).items() if k in CHANNELS}
        return cls(office, token_hash, day, lang, Watch(choice, sent), targets)


@dataclass(slots=True)
class Counts:
    subscribed: int = 0
    notices: int = 0  # notices made (each goes to every target of its subscription)
    submitted: int = 0
    ended: int = 0  # subscriptions deleted because their ticket ended
    swept: int = 0  # deleted by the day's sweep
    gone: int = 0  # targets dropped because the channel said they no longer exist


Outboxes = Callable[[str, str], "Outbox | None"]  # (office, channel) -> its outbox, None: not offered


class AlertService:
    """`start()` opens the store in the service's thread and loads the offices' subscriptions;
    `subscribe`/`unsubscribe` (from any thread) return futures done once stored; `close()` stops
    the thread. `outboxes(office, channel)`: where that channel's notices of the office go."""

    def __init__(
        self,
        hub: ViewHub,
        store_url: str,
        names: Names,
        outboxes: Outboxes,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        tick_s: float = TICK_S,
        on_notice: Callable[[Notice], None] | None = None,
    ) -> None:
        self.hub = hub
        self.store_url = store_url
        self.names = names
        self.outboxes = outboxes
        self.clock = clock
        self.tick_s = tick_s
        self.on_notice = on_notice  # tests and benchmarks: every notice made, in this thread
        self.counts = Counts()
        self._subs: dict[str, dict[str, Subscription]] = {}  # office -> token hash -> subscription
        self._loaded: set[str] = set()
        self._swept: dict[str, str] = {}  # office -> the business day its sweep last ran for
        self._cond = threading.Condition()
        self._dirty: set[str] = set()
        self._requests: list[tuple[Callable[[EventStore], Any], Future[Any]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._ready: Future[None] = Future()

    # -- any thread ---------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        self.hub.listen(self._changed)
        self._thread.start()
        self._ready.result(timeout)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def subscription(self, office: str, token_hash: str) -> Subscription | None:
        with self._cond:
            return self._subs.get(office, {}).get(token_hash)

    def subscriptions_of(self, office: str) -> list[Subscription]:
        """The office's subscriptions now (a copy: for the staff's dashboard)."""
        with self._cond:
            return sorted(self._subs.get(office, {}).values(), key=lambda s: s.token_hash)

    def subscriptions(self) -> int:
        with self._cond:
            return sum(len(s) for s in self._subs.values())

    def subscribe(
        self,
        office: str,
        token_hash: str,
        day: str,
        lang: Lang,
        choice: Choice,
        targets: Mapping[str, str | None],
    ) -> Future[Subscription]:
        """Store the ticket's choice and targets (a target None: that channel dropped; absent:
        kept as it was); what was already sent stays sent. Evaluated at once: a ticket already
        near is told now."""

        def do(store: EventStore) -> Subscription:
            old = self._subs.get(office, {}).get(token_hash)
            kept = dict(old.targets) if old is not None else {}
            for channel, target in targets.items():
                if target is None:
                    kept.pop(channel, None)
                else:
                    kept[channel] = target
            sent = old.watch.sent if old is not None and old.day == day else frozenset()
            sub = Subscription(office, token_hash, day, lang, Watch(choice, sent), kept)
            store.put_alert(office, token_hash, day, sub.record())
            with self._cond:
                self._subs.setdefault(office, {})[token_hash] = sub
            self.counts.subscribed += old is None
            self._evaluate(store, office, only=token_hash)
            return self._subs.get(office, {}).get(token_hash, sub)

        return self._ask(do)

    def settle(self) -> Future[None]:
        """Done once every view published before the call has been evaluated, and every office
        once more at the clock's now, as a tick does (tests, benchmarks)."""

        def do(store: EventStore) -> None:
            for office in sorted(set(self._subs) | {v.office for v in self.hub.views()}):
                self._evaluate(store, office)

        return self._ask(do)

    def unsubscribe(self, office: str, token_hash: str) -> Future[None]:
        def do(store: EventStore) -> None:
            self._drop(store, office, token_hash)

        return self._ask(do)

    def _ask(self, do: Callable[[EventStore], Any]) -> Future[Any]:
        done: Future[Any] = Future()
        with self._cond:
            if self._stop:
                done.set_exception(RuntimeError("the alerts service has stopped"))
                return done
            self._requests.append((do, done))
            self._cond.notify()
        return done

    def _changed(self, office: str) -> None:
        """The hub's listener, in the worker's thread: one set insertion, never a wait on this thread."""
        with self._cond:
            self._dirty.add(office)
            self._cond.notify()

    def gone(self, notice: Notice, channel: str, target: str) -> None:
        """An outbox's on_gone: the target no longer exists; dropped from its subscription."""

        def do(store: EventStore) -> None:
            sub = self._subs.get(notice.office, {}).get(notice.token_hash)
            if sub is None or sub.targets.get(channel) != target:
                return
            self.counts.gone += 1
            targets = {k: v for k, v in sub.targets.items() if k != channel}
            self._put(store, replace(sub, targets=targets))

        self._ask(do)

    # -- the service's thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            store = open_store(self.store_url)
        except Exception as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            self._serve(store)
        finally:
            store.close()

    def _serve(self, store: EventStore) -> None:
        next_tick = 0.0
        while True:
            with self._cond:
                while not (self._stop or self._requests or self._dirty) and time.monotonic() < next_tick:
                    self._cond.wait(max(0.0, next_tick - time.monotonic()))
                if self._stop:
                    for _, done in self._requests:
                        done.set_exception(RuntimeError("the alerts service has stopped"))
                    return
                requests, self._requests = self._requests, []
                dirty, self._dirty = self._dirty, set()
            tick = time.monotonic() >= next_tick
            if tick:
                next_tick = time.monotonic() + self.tick_s
                dirty |= set(self._subs) | {v.office for v in self.hub.views()}
            # The floor's changes first, then the requests made after them: a request answered
            # has seen every view published before it was made (tests and a clean stop rely on it).
            for office in sorted(dirty):
                try:
                    self._evaluate(store, office)
                except Exception:  # one office's failure (its store file) must not stop the others
                    _log.exception("alerts: evaluating %s failed", office)
            for do, done in requests:
                try:
                    done.set_result(do(store))
                except Exception as exc:  # a bad request (the store refused it): the page is told
                    done.set_exception(exc)

    def _load(self, store: EventStore, office: str) -> None:
        if office in self._loaded:
            return
        self._loaded.add(office)
        found = {
            digest: Subscription.from_record(office, digest, day, rec) for digest, day, rec in store.alerts(office)
        }
        with self._cond:
            self._subs[office] = {**found, **self._subs.get(office, {})}

    def _evaluate(self, store: EventStore, office: str, only: str | None = None) -> None:
        self._load(store, office)
        view = self.hub.view(office)
        subs = self._subs.get(office, {})
        if view is None or view.day is None:
            return
        now = self.clock()
        if self._closed(view, now) and self._swept.get(office) != f"{view.day} closed":
            # The day is over (reception closed, nobody waiting or called): everything of it goes.
            tomorrow = (date.fromisoformat(view.day) + timedelta(days=1)).isoformat()
            self.counts.swept += store.drop_alerts_before(office, tomorrow)
            self._swept[office] = f"{view.day} closed"
            with self._cond:
                subs.clear()
            return
        if not subs and self._swept.get(office) in (view.day, f"{view.day} closed"):
            return
        # The day's sweep, once per office and business day: subscriptions of an earlier day than
        # the floor's (and, in SQLite, every trace of those deleted during that day).
        if self._swept.get(office) not in (view.day, f"{view.day} closed"):
            self.counts.swept += store.drop_alerts_before(office, view.day)
            self._swept[office] = view.day
            with self._cond:
                for d in [d for d, s in subs.items() if s.day < view.day]:
                    subs.pop(d, None)
        for digest, sub in list(subs.items()):
            if only is not None and digest != only:
                continue
            ticket = view.tickets.get(digest) if sub.day == view.day else None
            result = step(sub.watch, _now_of(ticket, view), now)
            if result.notices:
                # Stored as sent before it is handed over: nothing goes twice after a restart.
                self._put(store, replace(sub, watch=result.watch))
                for kind in result.notices:
                    assert ticket is not None  # a notice is only due for a ticket in the view
                    self._send(notice_of(kind, view, digest, ticket, sub.lang, self.names, now), sub)
            elif result.watch != sub.watch:
                self._put(store, replace(sub, watch=result.watch))
            if result.ended:
                self.counts.ended += 1
                self._drop(store, office, digest)

    @staticmethod
    def _closed(view: OfficeView, now: datetime) -> bool:
        """The office's day is over: past the start of its last reception period, closed now, and
        no ticket waiting, called or held."""
        if view.mode_at(now) != "closed" or not view.periods or view.at is None:
            return False
        local = now.astimezone(view.at.tzinfo)
        hour, minute = (int(x) for x in view.periods[-1].start.split(":"))
        if (local.hour, local.minute) < (hour, minute):
            return False  # before the day's last period: the morning, not the evening
        return not any(t.status in ("waiting", "called", "held") for t in view.tickets.values())

    def _send(self, notice: Notice, sub: Subscription) -> None:
        self.counts.notices += 1
        if self.on_notice is not None:
            self.on_notice(notice)
        for channel, target in sub.targets.items():
            outbox = self.outboxes(sub.office, channel)
            if outbox is not None and outbox.submit(notice, target):
                self.counts.submitted += 1

    def _put(self, store: EventStore, sub: Subscription) -> None:
        store.put_alert(sub.office, sub.token_hash, sub.day, sub.record())
        with self._cond:
            self._subs.setdefault(sub.office, {})[sub.token_hash] = sub

    def _drop(self, store: EventStore, office: str, token_hash: str) -> None:
        store.drop_alert(office, token_hash)
        with self._cond:
            self._subs.get(office, {}).pop(token_hash, None)


def _now_of(ticket: TicketView | None, view: OfficeView) -> TicketNow | None:
    if ticket is None:
        return None
    callers = view.callers(ticket.service)
    return TicketNow(ticket.status, ticket.ahead, ticket.call_from, ticket.counter, ticket.requeued, callers)


def notice_of(
    kind: NoticeKind, view: OfficeView, digest: str, ticket: TicketView, lang: Lang, names: Names, now: datetime
) -> Notice:
    """The notice of `kind` for `ticket`, in the office's words in `lang`."""
    office = view.office
    rejoin: str | None = None
    if kind == "no_show":
        # Finally missed: the office's rule. Missed once and requeued: back in the queue.
        final = ticket.status == "no_show"
        rejoin = getattr(names.alert_settings(office).rejoin, lang) if final else text("ticket_requeued", lang)
    minutes = None
    if kind == "near" and ticket.call_from is not None:
        minutes = max(0, round((ticket.call_from - now).total_seconds() / 60))
    return Notice(
        kind=kind,
        office=office,
        token_hash=digest,
        ticket=ticket.ticket,
        lang=lang,
        office_name=names.office(office, lang),
        service_name=names.service(office, ticket.service, lang),
        counter_name=names.counter(office, ticket.counter, lang) if ticket.counter is not None else None,
        ahead=ticket.ahead if kind == "near" else None,
        minutes=minutes,
        rejoin=rejoin,
    )
