"""One alert for one resident's ticket, as every channel (the page, Web Push, e-mail) says it.

Owns the alert's value and the channel interface. The alert engine (central/alerts/engine.py)
decides when a ticket's alert is due and makes a `Notice`; a channel turns it into its own
message (a push payload, a mail) and hands it to its `Outbox`. A Notice holds no personal data:
the ticket's token hash, its number and the office's words. Where it goes (an address, a push
subscription) is the channel's, kept beside the token hash only while the ticket lasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

NoticeKind = Literal["near", "called", "no_show"]
KINDS: tuple[NoticeKind, ...] = ("near", "called", "no_show")


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind  # near: the turn is near; called: go to the counter; no_show: missed, what now
    office: str  # the office id
    token_hash: str  # the ticket's page token's SHA-256 hex (central never holds the token)
    ticket: str  # the number as printed, "A-012"
    lang: Literal["ja", "en"]  # the resident's language, as the page was read in
    office_name: str  # in `lang`
    service_name: str  # in `lang`
    counter_name: str | None = None  # called: where to go, in `lang` ("窓口5", "Counter 5")
    ahead: int | None = None  # near: people before the ticket now
    minutes: int | None = None  # near: whole minutes to the earliest expected call (None: unknown)
    rejoin: str | None = None  # no_show: the office's rule, in `lang` ("see the floor manager…")


class Channel(Protocol):
    """A way to reach a resident. `deliver` is called from the channel's own outbox thread (never
    the event path) with the notice and where it goes; it raises `Retry` for a failure worth
    trying again (a relay down, a push service's 5xx or 429), `Gone` when the target no longer
    exists (a push subscription's 404/410): the subscription is then dropped, and `Failed` when
    this notice will never go (given up, the target kept)."""

    name: str

    def deliver(self, notice: Notice, target: str) -> None: ...


class Retry(Exception):
    """A delivery that failed for now; `after_s`: when the other side asked to be tried again."""

    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


class Gone(Exception):
    """The target no longer exists: never try it again."""


class Failed(Exception):
    """This notice cannot be delivered (the other side refused it for good: a relay's policy, a
    push service's 400): given up, the target kept."""
