"""`counterfloor callout`: write (and optionally play) the call-out of one call, to try a voice.

A thin shell over gateway.audio.CalloutPlayer.render with the config's [callout] settings (enabled or
not: this is how an installation checks its recordings before switching the call-out on).
Problems with segments are printed, one line each; docs/callout.md describes the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from counterfloor.outputs import output_problem
from gateway.audio import DEFAULT_VOICE_DIR, CalloutPlayer, run_player
from office.config import load_config
from signage.callout import parse_ticket


class CalloutUsageError(ValueError):
    """A bad --ticket or --counter; the message says which."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="the office config ([callout] is read)")
    p.add_argument("--ticket", required=True, help="the ticket number, e.g. B-023")
    p.add_argument("--counter", required=True, help="a counter id of the config, e.g. 5")
    p.add_argument("--out", type=Path, required=True, help="the WAV file to write")
    p.add_argument("--play", action="store_true", help="also play it with callout.player")


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        parse_ticket(args.ticket)
    except ValueError as exc:
        raise CalloutUsageError(f"--ticket: {exc}") from None
    if not args.counter.strip():
        raise CalloutUsageError("--counter: must not be empty")
    problem = output_problem(args.out)
    if problem:
        raise CalloutUsageError(f"--out: {problem}")
    config = load_config(args.config)
    # Only the config's counters are ever called: any other id (a typo, '5\n6', 5000 digits) would
    # give a call-out no resident ever hears.
    counters = [c.id for c in config.counters]
    if args.counter not in counters:
        raise CalloutUsageError(f"--counter: unknown counter {args.counter!r} (counters: {', '.join(counters)})")
    settings = config.callout
    voice = Path(config.source).parent / settings.voice_dir if settings.voice_dir else DEFAULT_VOICE_DIR
    player = CalloutPlayer(args.out.parent, voice_dir=voice, languages=settings.languages, player=settings.player)
    try:
        _, callout = player.render(args.ticket, args.counter, args.out)
    except OSError as exc:  # a full disk, a read-only directory
        raise CalloutUsageError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
    for problem in callout.problems:
        out.write(f"problem: {problem}\n")
    seconds = (len(callout.wav) - 44) / 2 / 16000
    out.write(f"wrote {args.out} ({seconds:.1f} s): {' '.join(callout.segments)}\n")
    if args.play and player.argv is not None:
        run_player([*player.argv, str(args.out)])
    return 0
