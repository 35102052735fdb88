"""`counterfloor demo`: the whole system on one machine, playing a simulated day at speed.

Owns the shell around `counterfloor.simulate` and `counterfloor.demo_floor`: reading the arguments,
pacing the offices' simulated days against the wall clock on one simulated clock, the live view (or
plain progress lines), the signage frames and tickets written under `--out`, the lines that say
where to look (`dashboard:`, `ticket:`) and the summaries. The simulation decides what residents and
staff do; they do it through each gateway's control socket and pads (counterfloor.demo_staff), and
the gateways publish to the broker that central listens to.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import tempfile
import time as _time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from counterfloor.demo_floor import (
    DEMO_USER,
    DemoClock,
    DemoOffice,
    DemoSystem,
    FloorError,
    History,
    OfficeSource,
    Past,
    demo_system,
    learn_history,
    wait_for_central,
)
from counterfloor.demo_frames import Frames
from counterfloor.floor_view import DaySummary, FloorView
from counterfloor.simulate import DaySimulation, SimulationError
from gateway.journal import new_token
from office.calendar import plan_for
from office.config import ConfigError, OfficeConfig, parse_config, read_config_text
from office.model import TicketReady
from office.mqtt import parse_broker_url

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_CONFIGS = (EXAMPLES / "nerima.toml", EXAMPLES / "oizumi.toml")
DEFAULT_CONFIG = DEFAULT_CONFIGS[0]
DEFAULT_OUT = Path("demo-out")
DEFAULT_HTTP_PORT = 8080
# Simulated seconds per real second: a Nerima weekday (08:20 to about 19:30) in about 35 s of pacing;
# the pads' presses make the busy hours run slower than that (docs/demo.md, "Speed").
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
    offices: tuple[OfficeSource, ...]
    day: date
    speed: float | None  # None: as fast as possible
    rush: bool
    seed: int
    live: bool
    journal: Path | None  # a folder for the journals and central's store (None: temporary)
    broker: str | None  # None: the embedded broker
    out: Path
    http_port: int
    stay: bool

    @property
    def config(self) -> OfficeConfig:
        """The first office's config (the one the day was chosen for)."""
        return self.offices[0].config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options; values are checked by `run`, so a bad one is a single clear line."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        action="append",
        default=None,
        help="an office config; repeat for several offices (default: both examples, Nerima and Oizumi)",
    )
    parser.add_argument(
        "--speed",
        metavar="N",
        default=str(int(DEFAULT_SPEED)),
        help=f"simulated seconds per real second, or 'max' (default {int(DEFAULT_SPEED)}; the busy hours run "
        "slower: every call is a press on a real pad's firmware)",
    )
    parser.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        default=None,
        help="the day to simulate (default: the next weekday the first office is open); an office closed "
        "that day shows its closed signage",
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
        metavar="DIR",
        default=None,
        help="keep the offices' journals (<office>.sqlite) and central's store (central.sqlite) in DIR, "
        "an existing folder (default: a temporary one)",
    )
    parser.add_argument(
        "--broker",
        metavar="URL",
        default=None,
        help="use this MQTT broker (mqtt://host:port or mqtts://host:port; default: an embedded "
        "broker on a free loopback port, printed at the start)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=str(DEFAULT_OUT),
        help=f"write signage frames and tickets as PNG files here (default ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--http-port",
        metavar="PORT",
        default=str(DEFAULT_HTTP_PORT),
        help=f"serve the dashboard and residents' pages on 127.0.0.1:PORT (default {DEFAULT_HTTP_PORT}; "
        "0: any free port)",
    )
    parser.add_argument(
        "--stay",
        action="store_true",
        help="after the day, keep everything running and serving until Ctrl-C",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the day is over, 2 for bad arguments, 130 when interrupted."""
    try:
        opts = parse_options(args)
    except DemoError as exc:
        print(f"counterfloor demo: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    console = Console()
    out = sys.stdout
    interrupted = False
    try:
        histories = {src.config.id: _past(src, opts) for src in opts.offices if _open(src.config, opts.day)}
        with _system(opts, histories) as system:
            frames = Frames(opts.out, system.offices, opts.day)
            days = OfficeDays(system, opts, frames)
            _say(console, out, opts, start_lines(system, opts, histories, frames))
            try:
                if opts.live and console.is_terminal:
                    _play_live(days, opts, console, system, frames)
                else:
                    _play_plain(days, opts, out, system, frames)
            except KeyboardInterrupt:
                interrupted = True
            frames.final(days.now_moment)
            if not interrupted:
                interrupted = _stay(system, opts, console, days) if opts.stay else False
            lines = end_lines(system, days)
            summaries = [
                (o.config.id, o.events, days.sims[o.config.id].summary())
                for o in system.offices
                if o.config.id in days.sims
            ]
            moment = max(sim.now_moment for sim in days.sims.values())  # where the day stopped
    except DemoError as exc:
        print(f"counterfloor demo: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except KeyboardInterrupt:  # while learning the past or starting up: everything is closed again
        console.print("[bold]Interrupted[/] before the day began.")
        return EXIT_INTERRUPTED
    if interrupted:
        console.print(f"[bold]Interrupted[/] at {moment:%H:%M} (simulated); the day so far:")
    for office_id, events, summary in summaries:
        kept = opts.journal / f"{office_id}.sqlite" if opts.journal else None
        print_summary(summary, console, journal_events=events, kept=kept)
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
    return EXIT_INTERRUPTED if interrupted else 0


def _say(console: Console, out: TextIO, opts: DemoOptions, lines: Sequence[str]) -> None:
    for line in lines:
        if opts.live and console.is_terminal:
            console.print(line, highlight=False, soft_wrap=True)
        else:
            print(line, file=out, flush=True)


def _open(config: OfficeConfig, day: date) -> bool:
    return plan_for(config, day).is_open


def _past(src: OfficeSource, opts: DemoOptions) -> Past:
    return learn_history(src.config, opts.day, opts.seed, opts.rush)


@contextmanager
def _system(opts: DemoOptions, histories: dict[str, Past]) -> Iterator[DemoSystem]:
    """The demo's broker, central and gateways; journals in --journal or in a temporary folder
    removed afterwards, with the gateways' sockets."""
    with tempfile.TemporaryDirectory(prefix="cf-demo-") as tmp:
        start = datetime.combine(opts.day, time(0), tzinfo=opts.config.tz)
        clock = DemoClock(start)
        records = {office: h[2] for office, h in histories.items()}
        try:
            with demo_system(
                opts.offices, opts.day, Path(tmp), opts.journal, clock, opts.broker, opts.http_port, records
            ) as system:
                for office in system.offices:
                    known = histories.get(office.config.id)
                    if known is not None and office.gateway.estimator is not None and known[1] is not None:
                        office.gateway.estimator.use(known[1])
                yield system
        except FloorError as exc:
            raise DemoError(str(exc)) from None


class Sim(Protocol):
    """What `play` drives: one office's day or several on one clock."""

    @property
    def now_moment(self) -> datetime: ...
    @property
    def start_moment(self) -> datetime: ...
    @property
    def done(self) -> bool: ...
    def run_until(self, until: datetime) -> None: ...


@dataclass
class OfficeDays:
    """The open offices' days on one simulated clock, each carried out through its gateway; the
    demo's clock (the closed offices' gateways, central's pages) follows it."""

    system: DemoSystem
    opts: DemoOptions
    frames: Frames
    sims: dict[str, DaySimulation] = field(default_factory=dict)
    _now: datetime | None = None
    ticket_page: str | None = None  # one live ticket's page, for the `ticket:` line
    say: Callable[[str], None] = lambda _: None  # prints a line above the live view, or plainly

    def __post_init__(self) -> None:
        for office in self.system.offices:
            if not office.is_open:
                continue
            journal = office.gateway.journal
            assert journal is not None
            try:
                sim = DaySimulation(
                    office.config,
                    self.opts.day,
                    seed=self.opts.seed,
                    rush=self.opts.rush,
                    office=journal.office,
                    execute=office.staff.execute,
                    make_token=new_token,
                )
            except SimulationError as exc:
                raise DemoError(str(exc)) from None
            office.gateway.wall = _follow(sim)
            office.staff.on_ticket = functools.partial(self._ticket, office)
            self.sims[office.config.id] = sim
        if not self.sims:
            raise DemoError("no office is open that day")
        self._now = self.start_moment
        self.system.clock.now = self._now

    def _ticket(self, office: DemoOffice, ready: TicketReady) -> None:
        first = self.ticket_page is None
        self.frames.ticket(office, ready, always=first)
        if first:
            self.ticket_page = f"{office.config.public_base_url}/t/{ready.token}"
            self.say(ticket_line(self.ticket_page))

    @property
    def start_moment(self) -> datetime:
        return min(s.start_moment for s in self.sims.values())

    @property
    def now_moment(self) -> datetime:
        assert self._now is not None
        return self._now

    @property
    def done(self) -> bool:
        return all(s.done for s in self.sims.values())

    def run_until(self, until: datetime) -> None:
        for sim in self.sims.values():
            if not sim.done:
                sim.run_until(until)
        ends = [s.now_moment for s in self.sims.values()]
        self._now = max(self.now_moment, min(until, max(ends)) if self.done else until)
        self.system.clock.now = self._now

    def views(self) -> list[tuple[DemoOffice, FloorView]]:
        return [(o, self.sims[o.config.id].view()) for o in self.system.offices if o.config.id in self.sims]


def _follow(sim: DaySimulation) -> Callable[[], datetime]:
    """An office's wall clock: its own simulated day's moment."""
    return lambda: sim.now_moment


# -- arguments ----------------------------------------------------------------------------------
def parse_options(args: argparse.Namespace, today: date | None = None) -> DemoOptions:
    paths = [Path(p) for p in (getattr(args, "config", None) or DEFAULT_CONFIGS)]
    offices: list[OfficeSource] = []
    for path in paths:
        if not path.exists():
            raise DemoError(f"--config: no such file: {path}")
        try:
            text = read_config_text(path)  # names a directory, a journal, a non-UTF-8 file
            config = parse_config(text, source=str(path))
        except ConfigError as exc:
            raise DemoError(f"--config: {exc}") from None
        if any(o.config.id == config.id for o in offices):
            raise DemoError(f"--config: two configs are office {config.id!r}; give each office once")
        offices.append(OfficeSource(config, text, path))
    first = offices[0].config

    speed = parse_speed(getattr(args, "speed", DEFAULT_SPEED))
    seed = _parse_seed(getattr(args, "seed", 1))
    raw_day = getattr(args, "date", None)
    if raw_day is None:
        local_today = today or datetime.now(first.tz).date()
        day = next_open_weekday(first, local_today)
    else:
        day = _parse_date(raw_day)
        if not any(plan_for(o.config, day).is_open for o in offices):
            plan = plan_for(first, day)
            why = plan.reason.en if plan.reason else "closed"
            try:
                after = day + timedelta(days=1)
                hint = f"; the next open day is {next_open_day(first, after).isoformat()}"
            except (DemoError, OverflowError):  # no day after it (9999-12-31) or none open
                hint = ""
            names = " and ".join(o.config.name.en for o in offices)
            verb = "is" if len(offices) == 1 else "are"
            raise DemoError(f"--date {day.isoformat()}: {names} {verb} closed that day ({why}){hint}")
    journal = getattr(args, "journal", None)
    if journal is not None and not Path(journal).is_dir():
        what = "is not a folder" if Path(journal).exists() else "no such folder"
        raise DemoError(f"--journal: {journal}: {what} (it keeps the offices' journals: give an existing folder)")
    return DemoOptions(
        offices=tuple(offices),
        day=day,
        speed=speed,
        rush=bool(getattr(args, "rush", False)),
        seed=seed,
        live=bool(getattr(args, "live", True)),
        journal=Path(journal) if journal else None,
        broker=_parse_broker(getattr(args, "broker", None)),
        out=_parse_out(getattr(args, "out", DEFAULT_OUT)),
        http_port=_parse_port(getattr(args, "http_port", DEFAULT_HTTP_PORT)),
        stay=bool(getattr(args, "stay", False)),
    )


def _parse_broker(value: object) -> str | None:
    if value is None:
        return None
    try:
        parse_broker_url(str(value))
    except ValueError as exc:
        raise DemoError(f"--broker: {exc}") from None
    return str(value)


def _parse_out(value: object) -> Path:
    out = Path(str(value))
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out: {out} is not a folder")
    if not out.exists() and not out.parent.is_dir():
        raise DemoError(f"--out: cannot create {out}: no such folder {out.parent}")
    return out


def _parse_port(value: object) -> int:
    try:
        port = int(str(value))
    except ValueError:
        raise DemoError(f"--http-port must be a port number 0-65535 (got {value!r})") from None
    if not 0 <= port <= 65535:
        raise DemoError(f"--http-port must be a port number 0-65535 (got {value!r})")
    return port


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


# -- pacing -------------------------------------------------------------------------------------
def play(
    sim: Sim,
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


def _stops(days: OfficeDays) -> list[datetime]:
    first = days.start_moment.replace(minute=0, second=0, microsecond=0) + PLAIN_EVERY
    return [first + i * PLAIN_EVERY for i in range(48)]


def _play_plain(days: OfficeDays, opts: DemoOptions, out: TextIO, system: DemoSystem, frames: Frames) -> None:
    days.say = lambda line: print(line, file=out, flush=True)

    def line(at: datetime) -> None:
        frames.at(at)
        for office, view in days.views():
            print(progress_line(view, office.config.id), file=out, flush=True)

    play(days, opts.speed, on_frame=system.tick, stops=_stops(days), on_stop=line, sleep=_turning(system))
    for office, view in days.views():
        print(progress_line(view, office.config.id), file=out, flush=True)


def _turning(system: DemoSystem) -> Callable[[float], None]:
    """The pause between two frames, spent turning the gateways' loops (their buses stay polled)."""

    def pause(seconds: float) -> None:
        until = _time.monotonic() + seconds
        while _time.monotonic() < until:
            system.tick()

    return pause


def start_lines(system: DemoSystem, opts: DemoOptions, histories: dict[str, Past], frames: Frames) -> list[str]:
    pace = "as fast as possible" if opts.speed is None else f"×{opts.speed:g}"
    kind = "moving-season rush" if opts.rush else "ordinary day"
    lines = [f"Simulating {opts.day:%a %Y-%m-%d} ({kind}, seed {opts.seed}) {pace}"]
    for office in system.offices:
        known = histories.get(office.config.id)
        what = history_line(known[0]) if known is not None else "closed that day: its signage shows it"
        lines.append(f"{office.config.id}: {office.config.name.en} — {what}")
    lines += [
        f"devices: {system.devices}; staff use the pads and the gateways' control sockets",
        watch_line(system),
        f"dashboard: {system.web_url}/dashboard (login: {DEMO_USER} / {system.password})",
        f"residents: {system.web_url}/ (waits and forecast)",
        f"frames and tickets: {frames.folder}/",
    ]
    return lines


def ticket_line(page: str) -> str:
    return f"ticket: {page}"


def history_line(history: History) -> str:
    """What the day's wait estimate learned from (the demo's journal has no past of its own)."""
    if not history.days:
        return "no past days to learn from; the capacity estimate answers"
    return (
        f"wait estimate learned from the {history.days} simulated open days before this one "
        f"({history.seconds:.1f} s), as a gateway learns from its journal"
    )


def watch_line(system: DemoSystem) -> str:
    """Where the day is published, and how facilities staff would look at it."""
    kind = "embedded broker" if system.embedded else "broker"
    url = system.broker_url
    return f"MQTT: publishing to {url} ({kind}); watch: counterfloor office watch --broker {url}"


def progress_line(view: FloorView, office: str = "") -> str:
    mean = f"{view.mean_wait_minutes:5.1f} min" if view.mean_wait_minutes is not None else "    – min"
    prefix = f"{office:<8} " if office else ""
    return (
        f"{prefix}{view.now:%H:%M}  issued {view.issued:5d}  waiting {view.waiting:4d}  "
        f"served {view.served:5d}  mean wait {mean}  ({view.period})"
    )


def end_lines(system: DemoSystem, days: OfficeDays) -> list[str]:
    """What reached the broker and central, office by office (before the gateways close)."""
    lines: list[str] = []
    flushed = {o.config.id: o.flush() for o in system.offices}
    central_ok = wait_for_central(system)
    where = f"{system.broker_url} ({'embedded, now stopped' if system.embedded else '--broker'})"
    for office in system.offices:
        events = office.events
        line = f"MQTT: {office.config.id}: {office.published} of {events} events published to {where}"
        if not flushed[office.config.id]:
            line += f"; the rest stay in the journal (the broker: {office.problem or 'did not take them in time'})"
        lines.append(line)
    for office in system.offices:
        staff = office.staff
        again = f" ({staff.pressed_again} pressed again)" if staff.pressed_again else ""
        lines.append(
            f"staff: {office.config.id}: {staff.presses} calls at the pads{again}, "
            f"{staff.requests} requests on the control socket"
        )
    held = ", ".join(f"{o.config.id} {system.central.stored(o.config.id)} of {o.events}" for o in system.offices)
    lines.append(f"central: holds {held} events{'' if central_ok else ' (still catching up when the demo ended)'}")
    return lines


def _stay(system: DemoSystem, opts: DemoOptions, console: Console, days: OfficeDays) -> bool:
    """Keep everything serving after the day until Ctrl-C; True when interrupted."""
    console.print(f"The day is over; still serving {system.web_url}/ and the broker. Ctrl-C to stop.", highlight=False)
    try:
        while True:
            system.tick()  # the gateways' loops; central and the web serve in their own threads
    except KeyboardInterrupt:
        return False


def _play_live(days: OfficeDays, opts: DemoOptions, console: Console, system: DemoSystem, frames: Frames) -> None:
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.percentage:>3.0f}%"),
        console=console,
        auto_refresh=False,
        expand=True,
    )
    task = bar.add_task("", total=1000)
    days.say = lambda line: console.print(line, highlight=False, soft_wrap=True)

    def frame() -> RenderableType:
        views = days.views()
        first = views[0][1]
        total = max((v.planned_end - first.start).total_seconds() for _, v in views) or 1.0
        done = 1.0 if days.done else min(1.0, (days.now_moment - first.start).total_seconds() / total)
        bar.update(task, completed=done * 1000, description=f"{days.now_moment:%H:%M}")
        parts: list[RenderableType] = [bar]
        for i, (office, view) in enumerate(views):
            parts.append(render_view(view, opts, office.config, full=i == 0))
        return Group(*parts)

    def tick() -> None:
        system.tick()
        live.update(frame(), refresh=True)

    with Live(frame(), console=console, auto_refresh=False, transient=False) as live:
        play(days, opts.speed, on_frame=tick, stops=_stops(days), on_stop=frames.at, sleep=_turning(system))


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


def render_view(view: FloorView, opts: DemoOptions, cfg: OfficeConfig, full: bool = True) -> RenderableType:
    """One office's floor: its services, and when `full` its counters and recent calls too."""
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

    if not full:
        return Group(title, totals, services)
    lower = Table.grid(padding=(0, 4))
    lower.add_row(counters, Group(Text("Recent calls", style="bold"), calls))
    return Group(title, totals, services, lower)


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
    note = "In estimate: waits inside the range the ticket printed (its p10–p90, printed in whole minutes)"
    if summary.within_printed_minutes is not None:
        note += f"; with the wait rounded to whole minutes too, {100 * summary.within_printed_minutes:.0f}%"
    console.print(note + ".", style="dim")
    if journal_events is not None:
        where = f"kept at {kept}" if kept else "temporary, removed"
        console.print(f"Journal: {journal_events} events committed to SQLite ({where})", highlight=False)
