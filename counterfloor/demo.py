"""`counterfloor demo`: a simulated office day played at speed in the terminal.

Owns the shell around `counterfloor.simulate`: reading the arguments, the journal file, pacing
simulated time against the wall clock, the live view (or plain progress lines) and the summary.
Every floor change goes through a real `TicketJournal` (SQLite, fsynced), as on a gateway.
The simulation itself stays pure: nothing here decides what residents or staff do.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time as _time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from counterfloor.demo_floor import DemoFloor, FloorError, History, demo_floor, learn_history
from counterfloor.floor_view import DaySummary, FloorView
from counterfloor.simulate import DaySimulation, SimulationError
from gateway.journal import new_token
from office.calendar import plan_for
from office.config import ConfigError, OfficeConfig, parse_config, read_config_text
from office.mqtt import parse_broker_url

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "nerima.toml"
# Simulated seconds per real second: a Nerima weekday (08:20 to about 19:30) in about 35 s.
DEFAULT_SPEED = 1200.0
PLAIN_EVERY = timedelta(minutes=30)
FRAME_SECONDS = 0.1  # real time between live-view frames when paced
MAX_SPEED_STEP = timedelta(minutes=5)  # simulated time per step at --speed max
MAX_SPEED_FRAME_SECONDS = 0.05  # do not redraw more often than this at --speed max
EXIT_BAD_ARGS = 2
EXIT_INTERRUPTED = 130


class DemoError(Exception):
    """An argument or file the demo cannot use; the message is the one line the user sees."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    config: OfficeConfig
    config_text: str
    config_path: Path
    day: date
    speed: float | None  # None: as fast as possible
    rush: bool
    seed: int
    live: bool
    journal: Path | None
    broker: str | None  # None: the embedded broker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options; values are checked by `run`, so a bad one is a single clear line."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=str(DEFAULT_CONFIG),
        help="office config (default: the Nerima example)",
    )
    parser.add_argument(
        "--speed",
        metavar="N",
        default=str(int(DEFAULT_SPEED)),
        help=f"simulated seconds per real second, or 'max' (default {int(DEFAULT_SPEED)}: a day in about 35 s)",
    )
    parser.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        default=None,
        help="the day to simulate (default: the next weekday the office is open)",
    )
    parser.add_argument(
        "--rush",
        action="store_true",
        help="the March–April moving season: many more notifications, long waits",
    )
    parser.add_argument("--seed", metavar="N", default="1", help="random seed; the same seed replays the same day")
    parser.add_argument(
        "--no-live",
        dest="live",
        action="store_false",
        help="plain progress lines every 30 simulated minutes instead of the live view",
    )
    parser.add_argument(
        "--journal",
        metavar="PATH",
        default=None,
        help="keep the journal (SQLite) at PATH; it must not exist (default: a temporary file)",
    )
    parser.add_argument(
        "--broker",
        metavar="URL",
        default=None,
        help="publish to this MQTT broker (mqtt://host:port or mqtts://host:port; default: an embedded "
        "broker on a free loopback port, printed at the start)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the day is over, 2 for bad arguments, 130 when interrupted."""
    try:
        opts = parse_options(args)
    except DemoError as exc:
        print(f"counterfloor demo: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    console = Console()
    try:
        with _floor(opts) as floor:
            journal = floor.journal
            try:
                sim = DaySimulation(
                    opts.config,
                    opts.day,
                    seed=opts.seed,
                    rush=opts.rush,
                    office=journal.office,
                    execute=journal.execute,
                    make_token=new_token,
                )
            except SimulationError as exc:
                raise DemoError(str(exc)) from None
            floor.wall.read = lambda: sim.now_moment
            interrupted = False
            try:
                history = learn_history(floor, opts.config, opts.day, opts.seed, opts.rush)
                if opts.live and console.is_terminal:
                    _play_live(sim, opts, console, floor, history)
                else:
                    _play_plain(sim, opts, sys.stdout, floor, history)
            except KeyboardInterrupt:
                interrupted = True
            summary = sim.summary()
            events = journal.office.state.last_seq
            line = broker_line(floor, events, floor.flush())  # before the gateway closes its link
    except DemoError as exc:
        print(f"counterfloor demo: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    if interrupted:
        console.print(f"[bold]Interrupted[/] at {sim.now_moment:%H:%M} (simulated); the day so far:")
    print_summary(summary, console, journal_events=events, kept=opts.journal)
    console.print(line, highlight=False, soft_wrap=True)
    return EXIT_INTERRUPTED if interrupted else 0


def broker_line(floor: DemoFloor, events: int, flushed: bool) -> str:
    """What reached the broker: every event, or how many did not (they stay in the journal)."""
    where = f"{floor.broker_url} ({'embedded, now stopped' if floor.embedded else '--broker'})"
    line = f"MQTT: {floor.published} of {events} events published to {where}"
    if flushed:
        return line
    return f"{line}; the rest stay in the journal (the broker: {floor.problem or 'did not take them in time'})"


# -- arguments ----------------------------------------------------------------------------------
def parse_options(args: argparse.Namespace, today: date | None = None) -> DemoOptions:
    path = Path(getattr(args, "config", None) or DEFAULT_CONFIG)
    if not path.exists():
        raise DemoError(f"--config: no such file: {path}")
    try:
        text = read_config_text(path)  # names a directory, a journal, a non-UTF-8 file
        config = parse_config(text, source=str(path))
    except ConfigError as exc:
        raise DemoError(f"--config: {exc}") from None

    speed = parse_speed(getattr(args, "speed", DEFAULT_SPEED))
    seed = _parse_seed(getattr(args, "seed", 1))
    raw_day = getattr(args, "date", None)
    if raw_day is None:
        local_today = today or datetime.now(config.tz).date()
        day = next_open_weekday(config, local_today)
    else:
        day = _parse_date(raw_day)
        plan = plan_for(config, day)
        if not plan.is_open:
            why = plan.reason.en if plan.reason else "closed"
            try:
                after = day + timedelta(days=1)
                hint = f"; the next open day is {next_open_day(config, after).isoformat()}"
            except (DemoError, OverflowError):  # no day after it (9999-12-31) or none open
                hint = ""
            raise DemoError(f"--date {day.isoformat()}: {config.name.en} is closed that day ({why}){hint}")
    journal = getattr(args, "journal", None)
    return DemoOptions(
        config=config,
        config_text=text,
        config_path=path,
        day=day,
        speed=speed,
        rush=bool(getattr(args, "rush", False)),
        seed=seed,
        live=bool(getattr(args, "live", True)),
        journal=Path(journal) if journal else None,
        broker=_parse_broker(getattr(args, "broker", None)),
    )


def _parse_broker(value: object) -> str | None:
    if value is None:
        return None
    try:
        parse_broker_url(str(value))
    except ValueError as exc:
        raise DemoError(f"--broker: {exc}") from None
    return str(value)


def parse_speed(value: object) -> float | None:
    """Simulated seconds per real second; None for 'max'."""
    if isinstance(value, str) and value.strip().lower() == "max":
        return None
    try:
        speed = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DemoError(f"--speed must be a number > 0 or 'max' (got {value!r})") from None
    if math.isnan(speed) or speed <= 0:
        raise DemoError(f"--speed must be a number > 0 or 'max' (got {value!r})")
    return None if math.isinf(speed) else speed


def _parse_seed(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value))
    except ValueError:
        raise DemoError(f"--seed must be a whole number (got {value!r})") from None


def _parse_date(value: object) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise DemoError(f"--date must be a date YYYY-MM-DD (got {value!r})") from None


def next_open_day(config: OfficeConfig, start: date, weekdays_only: bool = False) -> date:
    # Never past the last date Python has: a --date near 9999-12-31 is a clear error, not an overflow.
    for i in range(min(400, (date.max - start).days + 1)):
        day = start + timedelta(days=i)
        if weekdays_only and day.weekday() >= 5:
            continue
        if plan_for(config, day).is_open:
            return day
    raise DemoError(f"{config.name.en} is not open on any day of the year from {start.isoformat()}")


def next_open_weekday(config: OfficeConfig, today: date) -> date:
    """Today if it is a weekday the office opens, else the next such day."""
    return next_open_day(config, today, weekdays_only=True)


@contextmanager
def _floor(opts: DemoOptions) -> Iterator[DemoFloor]:
    """The demo's gateway and broker; its journal at --journal (kept) or in a temporary
    directory removed afterwards, with the gateway's socket."""
    with tempfile.TemporaryDirectory(prefix="cf-demo-") as tmp:
        path = opts.journal or Path(tmp) / "journal.sqlite"
        start = datetime.combine(opts.day, time(0), tzinfo=opts.config.tz)
        try:
            with demo_floor(opts.config, opts.config_text, path, Path(tmp), start, opts.broker) as floor:
                yield floor
        except FloorError as exc:
            raise DemoError(str(exc)) from None


# -- pacing -------------------------------------------------------------------------------------
def play(
    sim: DaySimulation,
    speed: float | None,
    *,
    on_frame: Callable[[], None] = lambda: None,
    stops: Sequence[datetime] = (),
    on_stop: Callable[[datetime], None] = lambda _: None,
    clock: Callable[[], float] = _time.monotonic,
    sleep: Callable[[float], None] = _time.sleep,
) -> None:
    """Advance `sim` to its end: `speed` simulated seconds per real second (None: flat out).

    The simulation halts exactly at each of `stops` (sorted) for `on_stop`; `on_frame` is called
    after every step, at most every FRAME_SECONDS of real time when paced.
    """
    pending = sorted(s for s in stops if s > sim.now_moment)
    real_start = clock()
    sim_start = sim.now_moment
    last_frame = -math.inf
    while not sim.done:
        if speed is None:
            target = sim.now_moment + MAX_SPEED_STEP
        else:
            target = sim_start + timedelta(seconds=(clock() - real_start) * speed)
        while pending and pending[0] <= target and not sim.done:
            sim.run_until(pending[0])
            stop = pending.pop(0)
            if not sim.done:  # a day that ended before the stop has nothing to show there
                on_stop(stop)
        sim.run_until(target)
        now = clock()
        if speed is not None or now - last_frame >= MAX_SPEED_FRAME_SECONDS or sim.done:
            on_frame()
            last_frame = now
        if speed is not None and not sim.done:
            sleep(FRAME_SECONDS)


def _play_plain(sim: DaySimulation, opts: DemoOptions, out: TextIO, floor: DemoFloor, history: History) -> None:
    pace = "as fast as possible" if opts.speed is None else f"×{opts.speed:g}"
    print(
        f"Simulating {opts.config.name.en} on {opts.day:%a %Y-%m-%d} "
        f"({'moving-season rush' if opts.rush else 'ordinary day'}, seed {opts.seed}) {pace}",
        file=out,
        flush=True,
    )
    print(watch_line(floor), file=out, flush=True)
    print(history_line(history), file=out, flush=True)
    first = sim.start_moment.replace(minute=0, second=0, microsecond=0) + PLAIN_EVERY
    stops = [first + i * PLAIN_EVERY for i in range(48)]

    def line(_: datetime) -> None:
        print(progress_line(sim.view()), file=out, flush=True)

    play(sim, opts.speed, on_frame=floor.tick, stops=stops, on_stop=line)
    print(progress_line(sim.view()), file=out, flush=True)


def history_line(history: History) -> str:
    """What the day's wait estimate learned from (the demo's journal has no past of its own)."""
    if not history.days:
        return "Wait estimate: no past days to learn from; the capacity estimate answers"
    return (
        f"Wait estimate: learned from the {history.days} simulated open days before this one "
        f"({history.seconds:.1f} s), as a gateway learns from its journal"
    )


def watch_line(floor: DemoFloor) -> str:
    """Where the day is published, and how facilities staff would look at it."""
    kind = "embedded broker" if floor.embedded else "broker"
    url = floor.broker_url
    return f"MQTT: publishing to {url} ({kind}); watch: counterfloor office watch --broker {url}"


def progress_line(view: FloorView) -> str:
    mean = f"{view.mean_wait_minutes:5.1f} min" if view.mean_wait_minutes is not None else "    – min"
    return (
        f"{view.now:%H:%M}  issued {view.issued:5d}  waiting {view.waiting:4d}  "
        f"served {view.served:5d}  mean wait {mean}  ({view.period})"
    )


def _play_live(sim: DaySimulation, opts: DemoOptions, console: Console, floor: DemoFloor, history: History) -> None:
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.percentage:>3.0f}%"),
        console=console,
        auto_refresh=False,
        expand=True,
    )
    task = bar.add_task("", total=1000)

    def frame() -> RenderableType:
        view = sim.view()
        bar.update(task, completed=view.progress * 1000, description=f"{view.now:%H:%M} {view.period}")
        return render_view(view, opts, bar)

    def tick() -> None:
        floor.tick()
        live.update(frame(), refresh=True)

    console.print(watch_line(floor), highlight=False, soft_wrap=True)
    console.print(history_line(history), highlight=False, soft_wrap=True)
    with Live(frame(), console=console, auto_refresh=False, transient=False) as live:
        play(sim, opts.speed, on_frame=tick)


# -- drawing ------------------------------------------------------------------------------------
_ACTIVITY_STYLE = {
    "serving": "green",
    "calling": "bold yellow",
    "idle": "cyan",
    "ready": "cyan",
    "lunch": "blue",
    "overtime": "magenta",
    "off": "dim",
}


def _minutes(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} min"


def render_view(view: FloorView, opts: DemoOptions, bar: RenderableType) -> RenderableType:
    cfg = opts.config
    pace = "max speed" if opts.speed is None else f"×{opts.speed:g}"
    title = Text.assemble(
        (f"{cfg.name.ja}  {cfg.name.en}", "bold"),
        f"  ·  {view.now:%a %Y-%m-%d}  ·  ",
        (f"{view.now:%H:%M}", "bold"),
        f"  ·  {'RUSH  ·  ' if opts.rush else ''}seed {opts.seed}  ·  {pace}",
    )
    totals = Text(
        f"issued {view.issued}   refused {view.refused}   waiting {view.waiting}   served {view.served}"
        f"   mean wait {_minutes(view.mean_wait_minutes)}"
    )

    services = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, collapse_padding=True)
    services.add_column("Service", no_wrap=True, overflow="ellipsis", max_width=36)
    for name in ("Waiting", "Longest wait", "Mean wait", "Issued", "Served"):
        services.add_column(name, justify="right", no_wrap=True)
    for s in view.services:
        longest = s.longest_wait_minutes
        style = "bold red" if longest is not None and longest >= 60 else ""
        services.add_row(
            f"{s.prefix}  {s.name}",
            str(s.waiting),
            Text(_minutes(longest), style=style),
            _minutes(s.mean_wait_minutes),
            str(s.issued),
            str(s.served),
        )

    counters = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in ("Counter", "Status", "Ticket", "Served"):
        counters.add_column(name, no_wrap=True, justify="right" if name == "Served" else "left")
    for c in view.counters:
        counters.add_row(
            c.id,
            Text(c.activity, style=_ACTIVITY_STYLE.get(c.activity, "")),
            c.ticket or "",
            str(c.served),
        )

    calls = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in ("Time", "Ticket", "Counter", ""):
        calls.add_column(name, no_wrap=True)
    for call in view.recent_calls:
        calls.add_row(f"{call.at:%H:%M}", call.ticket, call.counter, "recall" if call.recall else "")

    lower = Table.grid(padding=(0, 4))
    lower.add_row(counters, Group(Text("Recent calls", style="bold"), calls))
    return Group(title, bar, totals, services, lower)


def print_summary(
    summary: DaySummary, console: Console, *, journal_events: int | None = None, kept: Path | None = None
) -> None:
    kind = "moving-season rush" if summary.rush else "ordinary day"
    console.print()
    console.print(
        f"[bold]Summary[/] — {summary.office_name}, {summary.day:%a %Y-%m-%d} ({kind}, seed {summary.seed})",
        highlight=False,
    )
    console.print(
        f"Reception {summary.opens:%H:%M}–{summary.closes:%H:%M}; last counter closed {summary.ended_at:%H:%M}",
        highlight=False,
    )
    refused = ", ".join(f"{reason} {n}" for reason, n in summary.refused)
    lines = [
        f"Residents {summary.residents}: {summary.issued} tickets issued, "
        f"{summary.walked_away} walked away on seeing the wait",
        f"Refused {summary.refused_total}" + (f": {refused}" if refused else ""),
        f"Served {summary.served}, no-show {summary.no_show} ({summary.gave_up} had given up), "
        f"left at close {summary.left_at_close}",
        f"Recalls {summary.recalls}, transfers {summary.transfers}",
    ]
    for line in lines:
        console.print(line, highlight=False)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("Service", no_wrap=True)
    for name in ("Issued", "Served", "No-show", "Left", "Mean wait", "Max wait", "In estimate"):
        table.add_column(name, justify="right", no_wrap=True)
    for s in summary.services:
        within = "–" if s.within_estimate is None else f"{100 * s.within_estimate:.0f}%"
        table.add_row(
            f"{s.prefix} {s.id}",
            str(s.issued),
            str(s.served),
            str(s.no_show),
            str(s.left_at_close),
            _minutes(s.mean_wait_minutes),
            _minutes(s.max_wait_minutes),
            within,
        )
    table.add_row(
        "All",
        str(summary.issued),
        str(summary.served),
        str(summary.no_show),
        str(summary.left_at_close),
        _minutes(summary.mean_wait_minutes),
        _minutes(summary.max_wait_minutes),
        "–" if summary.within_estimate is None else f"{100 * summary.within_estimate:.0f}%",
        style="bold",
    )
    console.print(table)
    console.print("In estimate: waits inside the range printed on the ticket.", style="dim")
    if journal_events is not None:
        where = f"kept at {kept}" if kept else "temporary, removed"
        console.print(f"Journal: {journal_events} events committed to SQLite ({where})", highlight=False)
