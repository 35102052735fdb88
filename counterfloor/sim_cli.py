"""`counterfloor sim`: simulated office days written as event-log files, one per open day.

Owns the shell around `counterfloor.simulate`: reading the arguments, choosing the days (open
days by the office's calendar, from --start), and writing `<office>-<YYYY-MM-DD>.jsonl` files in
exactly the form `counterfloor office export` writes (`cli.event_log_line`). What happens on a
day is the demo's simulator (`simulate.record_day`), seeded by (seed, date), so a day written
alone is the same file as that day in a longer run. Residents read the board's estimate of the
office's `CapacityEstimator`: the data depend on it (docs/simulation.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from counterfloor.cli import event_log_line
from counterfloor.simulate import PROFILES_VERSION, RecordedDay, SimulationError, open_days, record_day
from office.config import ConfigError, OfficeConfig, parse_config, read_config_text
from office.estimate import CapacityEstimator, WaitEstimator

EXIT_BAD_ARGS = 2
EXIT_FAILED = 1
MAX_DAYS = 3660  # ten years of open days: a typo such as --days 2000000 is refused, not run for hours

MakeEstimator = Callable[[OfficeConfig], WaitEstimator]


class SimArgError(Exception):
    """An argument the command cannot use; the message is the one line the user sees."""


@dataclass(frozen=True, slots=True)
class SimOptions:
    config: OfficeConfig
    days: tuple[date, ...]  # the open days to simulate, in order
    seed: int
    rush: bool
    out: Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options; values are checked by `run`, so a bad one is a single clear line."""
    parser.add_argument("--config", metavar="PATH", help="the office config (e.g. examples/nerima.toml)")
    parser.add_argument("--days", metavar="N", help="how many open days to simulate (closed days are skipped)")
    parser.add_argument(
        "--rush",
        action="store_true",
        help="every day a March–April moving-season day: many more notifications, long waits",
    )
    parser.add_argument(
        "--seed", metavar="S", default="1", help="random seed (default 1); a day depends on it and its date"
    )
    parser.add_argument(
        "--start",
        metavar="YYYY-MM-DD",
        help="the first calendar day to consider (default: the next Monday)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="a new or empty directory for the <office>-<YYYY-MM-DD>.jsonl files (created if missing)",
    )


def run(args: argparse.Namespace, out: TextIO, make_estimator: MakeEstimator = CapacityEstimator) -> int:
    """Simulate and write the days; 0 when written, 2 for bad arguments, 1 if a file cannot be written."""
    try:
        opts = parse_options(args)
        check_out_dir(opts)
    except SimArgError as exc:
        print(f"counterfloor sim: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    try:
        opts.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"counterfloor sim: --out: cannot create {opts.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    tickets = events = 0
    estimator_name = ""
    for day in opts.days:
        estimator = make_estimator(opts.config)  # a fresh board each day: no day depends on the one before
        estimator_name = type(estimator).__name__
        recorded = record_day(opts.config, day, seed=opts.seed, rush=opts.rush, estimator=estimator)
        path = opts.out / day_file_name(opts.config, day)
        try:
            write_day(path, opts.config, recorded)
        except OSError as exc:  # a full disk: no half-written file is left behind
            print(f"counterfloor sim: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        s = recorded.summary
        tickets += s.issued
        events += len(recorded.events)
        out.write(
            f"{path}: {day:%a}, {s.issued} tickets ({s.walked_away} walked away, {s.no_show} no-shows), "
            f"{len(recorded.events)} events\n"
        )
    kind = "rush" if opts.rush else "ordinary"
    out.write(
        f"{len(opts.days)} {kind} days of {opts.config.id} ({opts.days[0]} to {opts.days[-1]}), seed {opts.seed}, "
        f"profiles {PROFILES_VERSION}, board estimates by {estimator_name}: "
        f"{tickets} tickets, {events} events in {opts.out}\n"
    )
    return 0


def day_file_name(config: OfficeConfig, day: date) -> str:
    return f"{config.id}-{day.isoformat()}.jsonl"


def write_day(path: Path, config: OfficeConfig, recorded: RecordedDay) -> None:
    """The day's event log, written beside and renamed into place when whole (as export does)."""
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(event_log_line(e, config.id) for e in recorded.events)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- arguments ----------------------------------------------------------------------------------
def parse_options(args: argparse.Namespace, today: date | None = None) -> SimOptions:
    raw_config = getattr(args, "config", None)
    if not raw_config:
        raise SimArgError("--config is required: the office's config file (e.g. examples/nerima.toml)")
    path = Path(raw_config)
    if not path.exists():
        raise SimArgError(f"--config: no such file: {path}")
    try:
        config = parse_config(read_config_text(path), source=str(path))
    except ConfigError as exc:
        raise SimArgError(f"--config: {exc}") from None

    count = _parse_days(getattr(args, "days", None))
    seed = _parse_seed(getattr(args, "seed", "1"))
    raw_start = getattr(args, "start", None)
    if raw_start is None:
        start = next_monday(today or datetime.now(config.tz).date())
    else:
        try:
            start = date.fromisoformat(str(raw_start))
        except ValueError:
            raise SimArgError(f"--start must be a date YYYY-MM-DD (got {raw_start!r})") from None
    try:
        days = open_days(config, start, count)
    except SimulationError as exc:
        raise SimArgError(f"--start {start.isoformat()}: {exc}") from None
    raw_out = getattr(args, "out", None)
    if not raw_out:
        raise SimArgError("--out is required: the directory for the day files")
    return SimOptions(
        config=config, days=tuple(days), seed=seed, rush=bool(getattr(args, "rush", False)), out=Path(raw_out)
    )


def check_out_dir(opts: SimOptions) -> None:
    """--out must be a new or empty directory: an earlier run's files are never overwritten."""
    out = opts.out
    if out.exists() and not out.is_dir():
        raise SimArgError(f"--out: {out} is a file, not a directory")
    if out.is_dir():
        try:
            present = sorted(os.listdir(out))
        except OSError as exc:
            raise SimArgError(f"--out: cannot read {out}: {exc.strerror or exc}") from None
        if present:
            names = {day_file_name(opts.config, d) for d in opts.days}
            clash = [n for n in present if n in names]
            what = f"it already holds {clash[0]}" if clash else f"it holds {present[0]}"
            more = f" and {len(present) - 1} more" if len(present) > 1 else ""
            raise SimArgError(
                f"--out: {out} is not empty ({what}{more}); refusing to overwrite files of the same name: "
                "give a new or empty directory"
            )


def _parse_days(value: object) -> int:
    if value is None:
        raise SimArgError("--days is required: how many open days to simulate")
    try:
        days = int(str(value))
    except ValueError:
        days = 0  # not a whole number: the same message as one out of range
    if not 1 <= days <= MAX_DAYS:
        raise SimArgError(f"--days must be a whole number from 1 to {MAX_DAYS} (got {value!r})")
    return days


def _parse_seed(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise SimArgError(f"--seed must be a whole number (got {value!r})") from None


def next_monday(today: date) -> date:
    """The Monday after `today` (a week on when today is a Monday)."""
    return today + timedelta(days=7 - today.weekday())
