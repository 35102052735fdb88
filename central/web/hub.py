"""The hand-over between central's worker thread and the web's event loop.

Owns the latest OfficeView of each office and the live-page subscriptions. The worker publishes a
new view after each estimate round (from its own thread, never waiting on the web); pages read
the latest view and never touch the worker's state, so a slow office or a slow page delays only
itself.

A subscription is a bounded queue of view versions in the subscriber's event loop. Every message
a page gets is a whole snapshot, so nothing is lost by skipping versions: when a client does not
keep up and its queue is full, the queue is emptied and a single "reload the snapshot" marker is
left, and the stream sends the latest view. Memory per client stays bounded however slow it is.

A ticket page subscribes to its ticket (its token hash) and is told only of the views in which
that ticket changed: a call moves one service's queue, and the office's other pages sleep on
(docs/benchmarks.md, "Web under load": 1,000 pages woken at every change cost more than the round).
Each event loop is handed a view's subscribers in one call, not one wake-up per subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import replace

from central.web.view import OfficeView

QUEUE_SIZE = 8  # versions a client may be behind before it is told to reload the snapshot
RELOAD = -1  # the marker left in a full queue


class Subscription:
    """Versions of one office's view (or of every office's: `office` None), in one event loop;
    with `ticket` (a token hash), only the versions in which that ticket is not as before."""

    def __init__(
        self, hub: ViewHub, office: str | None, loop: asyncio.AbstractEventLoop, ticket: str | None = None
    ) -> None:
        self.hub = hub
        self.office = office
        self.loop = loop
        self.ticket = ticket
        self.queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue(QUEUE_SIZE)
        self.reloads = 0  # times the queue overflowed (tests)

    def _offer(self, office: str, version: int) -> None:
        """In the subscriber's loop."""
        try:
            self.queue.put_nowait((office, version))
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.reloads += 1
            self.queue.put_nowait((office if self.office is not None else "", RELOAD))

    async def next(self) -> tuple[str, int]:
        """(office, version) of the next change; version RELOAD: send every watched view again
        (office "" for a subscription to all offices)."""
        return await self.queue.get()

    def close(self) -> None:
        self.hub._unsubscribe(self)

    def concerned(self, old: OfficeView | None, new: OfficeView) -> bool:
        """Whether the change from `old` to `new` (of this subscription's office) is news to it."""
        if self.ticket is None or old is None or old.day != new.day:
            return True
        return old.tickets.get(self.ticket) != new.tickets.get(self.ticket)


def _offer_all(subs: list[Subscription], office: str, version: int) -> None:
    """In the subscribers' loop."""
    for s in subs:
        s._offer(office, version)


class ViewHub:
    """Latest views by office, and who wants to know when one changes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[str, OfficeView] = {}
        self._subs: set[Subscription] = set()
        self._version = 0
        self._listeners: list[Callable[[str], None]] = []

    def listen(self, listener: Callable[[str], None]) -> None:
        """`listener(office)` after each view published, in the publishing (worker's) thread: it
        must only note the change and return (the alerts service: central/alerts/service.py)."""
        with self._lock:
            self._listeners.append(listener)

    # -- the worker's side ----------------------------------------------------------------------
    def publish(self, view: OfficeView) -> None:
        with self._lock:
            self._version += 1
            view = replace(view, version=self._version)
            old = self._views.get(view.office)
            self._views[view.office] = view
            subs = [s for s in self._subs if s.office in (None, view.office)]
            listeners = list(self._listeners)
        for listener in listeners:
            listener(view.office)
        # One hand-over per event loop, not per subscriber: each call_soon_threadsafe wakes the
        # loop (a write to its self-pipe), and an office's change may concern hundreds of pages.
        by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
        for s in subs:
            if s.concerned(old, view):
                by_loop.setdefault(s.loop, []).append(s)
        for loop, group in by_loop.items():
            # A loop that has stopped takes nothing; its subscriptions go when their streams end.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_offer_all, group, view.office, view.version)

    # -- the web's side -------------------------------------------------------------------------
    def view(self, office: str) -> OfficeView | None:
        with self._lock:
            return self._views.get(office)

    def views(self) -> list[OfficeView]:
        with self._lock:
            return [self._views[o] for o in sorted(self._views)]

    def subscribe(self, office: str | None, ticket: str | None = None) -> Subscription:
        """Call from a coroutine: the subscription belongs to the running loop. `ticket`: a token
        hash of `office`'s tickets; only the views in which it changed are offered."""
        sub = Subscription(self, office, asyncio.get_running_loop(), ticket)
        with self._lock:
            self._subs.add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)
