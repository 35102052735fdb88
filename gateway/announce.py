"""The gateway's call-outs: which calls to announce, and when to hand them to the audio worker.

Owns the short list of calls decided but not yet announced. A call is announced one loop turn
after it was decided, so its CALL frames (queued by the router when it was decided) have had a
bus exchange to reach the displays first; the announcement itself is assembled and played by
gateway.audio's worker thread, so nothing here waits for audio. It must not route calls
(gateway.bus.CallRouter) nor assemble sound (signage.callout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.audio import DEFAULT_VOICE_DIR, CalloutPlayer
from office import model as m
from office.config import OfficeConfig


def callout_player(config: OfficeConfig, journal_file: Path) -> CalloutPlayer | None:
    """The [callout] section's player, or None when the call-out is off. Paths as in docs/callout.md:
    voice_dir relative to the config file, out_dir relative to the journal (default <journal>.callout)."""
    settings = config.callout
    if not settings.enabled:
        return None
    voice = Path(config.source).parent / settings.voice_dir if settings.voice_dir else DEFAULT_VOICE_DIR
    out = (
        journal_file.parent / settings.out_dir
        if settings.out_dir
        else journal_file.with_name(journal_file.name + ".callout")
    )
    return CalloutPlayer(out, voice_dir=voice, languages=settings.languages, player=settings.player)


@dataclass
class CallAnnouncer:
    """`note` the decisions of a loop turn; `flush` at the end of the next turn hands their calls
    (new calls and recalls, in order) to the player."""

    player: CalloutPlayer
    _waiting: list[tuple[str, str]] = field(default_factory=list)  # decided in the previous turn
    _noted: list[tuple[str, str]] = field(default_factory=list)  # decided in this turn

    def note(self, decision: m.Decision) -> None:
        for effect in decision.effects:
            if isinstance(effect, m.ShowCall):
                self._noted.append((effect.ticket, effect.counter))

    def flush(self) -> None:
        """End of a loop turn: announce last turn's calls; this turn's wait for the next."""
        for ticket, counter in self._waiting:
            self.player.submit(ticket, counter)
        self._waiting, self._noted = self._noted, []

    def close(self) -> None:
        """Stop: calls not yet handed over are not announced (the floor is closing), the one
        playing finishes."""
        self._waiting, self._noted = [], []
        self.player.close()
