"""The hand-over between central's worker thread and the web's event loop.

Owns the latest OfficeView of each office and the live-page subscriptions. The worker publishes a
new view after each estimate round (from its own thread, never waiting on the web); pages read
the latest view and never touch the worker's state, so a slow office or a slow page delays only
itself.

A subscription is a bounded queue of view versions in the subscriber's event loop. Every message
a page gets is a whole snapshot, so nothing is lost by skipping versions: when a client does not
keep up and its queue is full, the queue is emptied and a single "reload the snapshot" marker is
left, and the stream sends the latest view. Memory per client stays bounded however slow it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import replace

from central.web.view import OfficeView

QUEUE_SIZE = 8  # versions a client may be behind before it is told to reload the snapshot
RELOAD = -1  # the marker left in a full queue


class Subscription:
    """Versions of one office's view (or of every office's: `office` None), in one event loop."""

    def __init__(self, hub: ViewHub, office: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.office = office
        self.loop = loop
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


class ViewHub:
    """Latest views by office, and who wants to know when one changes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[str, OfficeView] = {}
        self._subs: set[Subscription] = set()
        self._version = 0

    # -- the worker's side ----------------------------------------------------------------------
    def publish(self, view: OfficeView) -> None:
        with self._lock:
            self._version += 1
            view = replace(view, version=self._version)
            self._views[view.office] = view
            subs = [s for s in self._subs if s.office in (None, view.office)]
        for s in subs:
            # A loop that has stopped takes nothing; its subscription goes when its stream ends.
            with contextlib.suppress(RuntimeError):
                s.loop.call_soon_threadsafe(s._offer, view.office, view.version)

    # -- the web's side -------------------------------------------------------------------------
    def view(self, office: str) -> OfficeView | None:
        with self._lock:
            return self._views.get(office)

    def views(self) -> list[OfficeView]:
        with self._lock:
            return [self._views[o] for o in sorted(self._views)]

    def subscribe(self, office: str | None) -> Subscription:
        """Call from a coroutine: the subscription belongs to the running loop."""
        sub = Subscription(self, office, asyncio.get_running_loop())
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
