"""`counterfloor signage render`: the waiting-room board for one moment of a simulated day.

Owns the shell: parse the size and moment, run the seeded day simulation up to that moment (the
same simulator as the demo, so the same config, moment and seed always give the same board),
take a snapshot and write the PNG. A closed day renders with an empty floor.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

from counterfloor.outputs import output_problem
from counterfloor.simulate import DaySimulation
from office.calendar import moment_problem, plan_for
from office.config import OfficeConfig, load_config
from office.model import Office
from signage.board import SIZES, render_board
from signage.output import write_png
from signage.snapshot import BoardSnapshot, build_snapshot


class SignageArgError(ValueError):
    """A bad argument; the message is the one line the user sees."""


def parse_size(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value)
    size = (int(m.group(1)), int(m.group(2))) if m else None
    if size not in SIZES:
        choices = " or ".join(f"{w}x{h}" for w, h in SIZES)
        raise SignageArgError(f"--size must be {choices} (got {value!r})")
    assert size is not None
    return size


def parse_moment(value: str, config: OfficeConfig) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise SignageArgError(f"--at must be an ISO 8601 time like 2027-03-15T10:30+09:00 (got {value!r})") from None
    if problem := moment_problem(at):
        raise SignageArgError(f"--at: {problem} (got {value!r})")
    return at.replace(tzinfo=config.tz) if at.tzinfo is None else at.astimezone(config.tz)


def simulated_snapshot(config: OfficeConfig, at: datetime, seed: int) -> BoardSnapshot:
    """The floor at `at` of the seeded simulated day (an empty floor on a closed day)."""
    day = at.date()
    if plan_for(config, day).is_open:
        sim = DaySimulation(config, day, seed=seed)
        sim.run_until(at)
        office = sim.office
    else:
        office = Office(config)
    return build_snapshot(config, office.state, office.estimator, at)


def render(args: argparse.Namespace) -> str:
    """Run `signage render`; returns the line to print. Raises SignageArgError for bad input."""
    size = parse_size(args.size)
    try:
        seed = int(args.seed)
    except ValueError:
        raise SignageArgError(f"--seed must be a whole number (got {args.seed!r})") from None
    out = Path(args.out)
    problem = output_problem(out)
    if problem:
        raise SignageArgError(f"--out: {problem}")
    config = load_config(args.config)
    at = parse_moment(args.at, config)
    snap = simulated_snapshot(config, at, seed)
    board = render_board(snap, size)
    try:
        write_png(board.image, out)
    except OSError as exc:  # a full disk, a read-only directory
        raise SignageArgError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    waiting = sum(s.waiting for s in snap.services)
    return f"{out}: {size[0]}x{size[1]} board, {snap.mode.mode} mode, {len(snap.calling)} calling, {waiting} waiting\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="the office config")
    p.add_argument("--at", required=True, help="the moment (ISO 8601; without an offset, the office's local time)")
    p.add_argument("--size", default="1920x1080", help="1920x1080 (landscape, default) or 1080x1920 (portrait)")
    p.add_argument("--seed", default="1", help="seed of the simulated day (default 1)")
    p.add_argument("--out", type=Path, required=True, help="the PNG file to write")
