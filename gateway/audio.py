"""Call-out playback: assemble a call's WAV (signage.callout), write it, and play it, off the loop.

Owns the worker thread, the WAV files it writes and the player process. `CalloutPlayer.submit`
only puts the call on a bounded queue and returns at once, so the gateway loop (which has
already routed the call to the displays) never waits for audio. The worker assembles the WAV,
writes it to `out_dir/callout-NN.wav` (a ring of `KEEP` files, so a long-running gateway never
fills its disk), and runs the player command with the path appended, one call after another.
A failing player or segment is logged; the chime is always in the WAV (signage.callout).
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from signage.callout import LANGUAGES, Callout, assemble, chime_pcm

DEFAULT_VOICE_DIR = Path(__file__).resolve().parent.parent / "signage" / "voice"
KEEP = 20  # WAV files kept in out_dir
QUEUE_MAX = 16  # a longer backlog is stale: nobody is still waiting to hear the 17th-last call
PLAY_TIMEOUT_S = 30.0
_log = logging.getLogger(__name__)

Runner = Callable[[list[str]], None]
"""Runs a player command to completion; raises on failure (subprocess.run with check)."""


def run_player(argv: list[str]) -> None:
    subprocess.run(argv, check=True, timeout=PLAY_TIMEOUT_S, stdin=subprocess.DEVNULL, capture_output=True)


def player_argv(player: str) -> list[str] | None:
    """'aplay -q -D plughw:1' → its argv; 'none' (or empty) → None: only write the WAV files."""
    argv = shlex.split(player)
    return None if not argv or argv == ["none"] else argv


@dataclass(frozen=True, slots=True)
class Played:
    """What the worker did with one call (for the log and the tests)."""

    ticket: str
    counter: str
    path: Path
    callout: Callout
    played: bool
    error: str | None


class CalloutPlayer:
    """See the module docstring. `on_done` is called in the worker thread after each call."""

    def __init__(
        self,
        out_dir: Path,
        voice_dir: Path = DEFAULT_VOICE_DIR,
        languages: Sequence[str] = LANGUAGES,
        player: str = "none",
        runner: Runner = run_player,
        on_done: Callable[[Played], None] | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.voice_dir = voice_dir
        self.languages = tuple(languages)
        self.argv = player_argv(player)
        self.runner = runner
        self.on_done = on_done
        self.dropped = 0
        self._slot = 0
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(QUEUE_MAX)
        self._thread: threading.Thread | None = None

    # -- the loop's side: never blocks ------------------------------------------------------------
    def submit(self, ticket: str, counter: str) -> bool:
        """Queue a call-out; False (and logged) if the backlog is full and it was dropped."""
        if self._thread is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._work, name="callout", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((ticket, counter))
        except queue.Full:
            self.dropped += 1
            _log.warning(
                "call-out of %s at counter %s dropped: %d call-outs already waiting", ticket, counter, QUEUE_MAX
            )
            return False
        return True

    def drain(self) -> None:
        """Wait until every submitted call-out is done (tests, and close)."""
        self._queue.join()

    def close(self) -> None:
        """Finish the queued call-outs and stop the worker (idempotent)."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=PLAY_TIMEOUT_S * 2)
        self._thread = None

    # -- the worker -------------------------------------------------------------------------------
    def _load(self, name: str) -> bytes:
        return (self.voice_dir / f"{name}.wav").read_bytes()

    def render(self, ticket: str, counter: str, path: Path | None = None) -> tuple[Path, Callout]:
        """Assemble and write one call-out to `path` (default: the next file of the ring).
        Synchronous: the worker's step, and the CLI's."""
        chime_file = self.voice_dir / "chime.wav"
        chime = chime_file.read_bytes() if chime_file.is_file() else None
        callout = assemble(ticket, counter, self._load, self.languages, chime)
        for problem in callout.problems:
            _log.warning("call-out of %s at counter %s: %s", ticket, counter, problem)
        if path is None:
            path = self.out_dir / f"callout-{self._slot:02d}.wav"
            self._slot = (self._slot + 1) % KEEP
        # A hidden name of this process beside the file: never another file of the directory.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(callout.wav)
            tmp.replace(path)  # a player never reads a half-written file
        except BaseException:  # a full disk: leave no .tmp behind
            tmp.unlink(missing_ok=True)
            raise
        return path, callout

    def _work(self) -> None:
        chime_pcm()  # built once (~0.1 s of pure Python), here rather than at the first call
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._one(*item)
            finally:
                self._queue.task_done()

    def _one(self, ticket: str, counter: str) -> None:
        try:
            path, callout = self.render(ticket, counter)
        except Exception:  # the worker must survive anything, e.g. a full disk
            _log.exception("call-out of %s at counter %s could not be written", ticket, counter)
            return
        played, error = False, None
        if self.argv is not None:
            try:
                self.runner([*self.argv, str(path)])
                played = True
            except Exception as exc:  # a missing player, a busy device, a time-out
                error = f"{type(exc).__name__}: {exc}"
                _log.warning("call-out of %s: player %s failed: %s", ticket, self.argv[0], error)
        if self.on_done is not None:
            self.on_done(Played(ticket, counter, path, callout, played, error))
