"""What the benchmarks share: the rush day, fresh journal files, timing, and result rows.

Every ratio is measured against a baseline run in the same process, on the same files'
filesystem, interleaved with the measured runs, so a busy shared machine slows both alike.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.rushday import NERIMA, ROOT, Step, rush_day
from gateway.journal import TicketJournal
from office.config import OfficeConfig, load_config

ROOT_DIR = ROOT


@dataclass(frozen=True)
class Result:
    """One line of the results table."""

    name: str
    measured: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: reported, no goal


@cache
def nerima() -> tuple[OfficeConfig, str]:
    return load_config(NERIMA), NERIMA.read_text(encoding="utf-8")


@cache
def rush_steps() -> tuple[Step, ...]:
    return tuple(rush_day(nerima()[0]))


def remove_journal(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def build_journal(path: Path, steps: tuple[Step, ...] | list[Step], **kw: object) -> TicketJournal:
    """A fresh journal holding `steps` (kept open; the caller closes it)."""
    remove_journal(path)
    config, text = nerima()
    journal = TicketJournal.create(path, config, text, **kw)  # type: ignore[arg-type]
    for step in steps:
        journal.execute(step.command, step.at)
    return journal


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
