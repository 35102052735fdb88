"""Soak: a simulated month through the whole system, at full speed (issue 16, Operations).

    uv run python -m bench.soak --days 30            # June 2027, both example offices (~11 min)
    uv run python -m bench.run --only soak           # the same, in the benchmarks' report

The demo's system, opened once (counterfloor.demo_floor.demo_system, boards simulated in Python:
every command goes through the gateways' control sockets): the embedded MQTT broker (or
`--broker URL`), each example office's real gateway on its journal, central's worker thread with
its SQLite store and web pages. Then day after day, each office open that day plays a new
`DaySimulation` on the SAME gateway (its journal goes on from day to day), its wall clock the
day's simulated moment, as fast as the gateways answer; an office closed that day idles on the
system's clock. Each gateway learns its wait estimate from its own journal's past days, as a
gateway in service does (the demo switches that off: its journal is new). After each day:

- the broker has every event and central's store holds them (waited for, as the demo does);
- the invariants, office by office: the day opens with its schedule; ticket numbers restart at
  each service's first number and run on without a gap or a repeat; every ticket issued that day
  is served, a final no-show or left at close, exactly once, as the simulation counted them and as
  the gateway's floor ends the day; no event names a ticket the day did not issue; the journal's
  seq runs on from the day before with no gap; central's store holds exactly the journal's events,
  seq for seq, record for record (the public event log's), and nothing beyond them;
- the error counters, which must stay at zero: every device link's (gateway.device_state()),
  the printers' failures, the MQTT link's failed connection attempts, reconnects and last error,
  central's problems (worker.problems), and every log record at WARNING or above;
- the process's resident memory (VmRSS, after a garbage collection) and its Python objects.

The memory goal: RSS at the end of the last day at most 5 % above RSS at the end of day 3 (warm:
the imports, caches, SQLite's page caches and the first learned estimates are in by then). Only
this process is measured: the broker, central and the gateways all run in it (the gateways'
learning and central's training run in short-lived processes of their own), and it tunes glibc's
malloc at the start as the gateway and each central worker do (gateway.heap).
tests/test_soak_smoke.py runs the same code for two days in CI, for the invariants and the
counters; the memory goal is this benchmark's. `python -m bench.soak` exits 1 when an invariant
broke or a counter is not zero (the memory goal is reported).
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from bench.common import ROOT_DIR, Result
from central.store import EventStore, open_store
from counterfloor.demo_floor import DemoClock, DemoOffice, DemoSystem, OfficeSource, demo_system, wait_for_central
from counterfloor.demo_staff import FloorStaff
from counterfloor.simulate import DaySimulation, Execute
from gateway.control_server import READ_DEADLINE_S
from gateway.estimates import Learning
from gateway.heap import tune_malloc
from gateway.journal import JournalReader, new_token
from gateway.metrics import LINK_ERRORS
from office import events as ev
from office.calendar import plan_for
from office.config import OfficeConfig, parse_config, read_config_text
from office.model import Command, Decision
from office.state import TicketStatus

EXAMPLES = ROOT_DIR / "examples"
CONFIGS = (EXAMPLES / "nerima.toml", EXAMPLES / "oizumi.toml")
START = date(2027, 6, 1)  # a Tuesday; June has no public holiday: the offices' ordinary month
STEP = timedelta(minutes=5)  # simulated time between two turns of the gateways' loops (the demo's at max speed)
IDLE_TURNS = 25  # a day every office is closed: turns of the gateways' loops at its noon
WARM_DAY = 3  # memory growth is measured from the end of this day
GOAL_GROWTH = 0.05
TRACE_FRAMES = 8  # tracemalloc's frames per allocation with --diff
SNAPSHOT_FILTERS = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)
FLUSH_TIMEOUT_S = 60.0  # the machine is shared: generous, a timeout is reported as a violation
CENTRAL_TIMEOUT_S = 60.0
TICKET_EVENTS = (
    ev.Held,
    ev.Returned,
    ev.Called,
    ev.Recalled,
    ev.NoShow,
    ev.Transferred,
    ev.Served,
    ev.PrintFailed,
    ev.Reprinted,
    ev.TokenReplaced,
)


@dataclass(frozen=True, slots=True)
class OfficeDay:
    office: str
    is_open: bool
    tickets: int
    events: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class DayRecord:
    day: date
    offices: tuple[OfficeDay, ...]
    seconds: float  # the day played, the broker flushed, central caught up (not the checks)
    rss_mb: float
    anon_mb: float  # of it, anonymous memory (heap, stacks): what a leak grows
    objects: int  # objects the garbage collector tracks
    traced_mb: float | None  # tracemalloc's current, when traced
    threads: int
    fds: int  # open file descriptors
    violations: tuple[str, ...]
    errors: int  # the error counters' total so far

    @property
    def tickets(self) -> int:
        return sum(o.tickets for o in self.offices)

    @property
    def events(self) -> int:
        return sum(o.events for o in self.offices)

    @property
    def open_offices(self) -> str:
        return ", ".join(o.office for o in self.offices if o.is_open) or "closed"


@dataclass
class SoakReport:
    days: list[DayRecord] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # counter -> value, zeros included
    warnings: list[str] = field(default_factory=list)  # the first log records at WARNING or above
    files_mb: float = 0.0  # journals and central's store at the end
    learned: dict[str, int] = field(default_factory=dict)  # office -> learning runs finished
    seconds: float = 0.0
    snapshots: dict[int, tracemalloc.Snapshot] = field(default_factory=dict)  # day (1: the first) -> its end

    @property
    def violations(self) -> list[str]:
        return [v for d in self.days for v in d.violations]

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def growth(self) -> float | None:
        """RSS growth from the end of WARM_DAY to the end of the run (None: too short a run)."""
        if len(self.days) <= WARM_DAY:
            return None
        warm = self.days[WARM_DAY - 1].rss_mb
        return (self.days[-1].rss_mb - warm) / warm


# -- what the process holds --------------------------------------------------------------------------
def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS), or a part of it (RssAnon: the heap and stacks)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _LogTally(logging.Handler):
    """Every log record at WARNING or above, from any part of the system: counted, the first kept."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 10:
            self.first.append(f"{record.levelname} {record.name}: {record.getMessage()[:300]}")


@contextmanager
def _log_tally() -> Iterator[_LogTally]:
    tally = _LogTally()
    root = logging.getLogger()
    root.addHandler(tally)
    try:
        yield tally
    finally:
        root.removeHandler(tally)


# -- the counters -------------------------------------------------------------------------------------
def error_counters(system: DemoSystem, logs: _LogTally) -> dict[str, int]:
    """Every error counter of the system, by name; all must be zero."""
    counters: dict[str, int] = {}
    for office in system.offices:
        oid, gw = office.config.id, office.gateway
        state = gw.device_state()
        for kind in LINK_ERRORS:
            counters[f"{oid}: device links: {kind}"] = sum(int(d[kind]) for d in state["devices"].values())
        counters[f"{oid}: printers: failed"] = sum(int(p["failed"]) for p in state["printers"].values())
        counters[f"{oid}: pads: pressed again"] = office.staff.pressed_again
        mqtt = gw.mqtt
        if mqtt is None:
            counters[f"{oid}: MQTT link: missing"] = 1
            continue
        counters[f"{oid}: MQTT link: not connected"] = int(not mqtt.connected)
        counters[f"{oid}: MQTT link: failed attempts"] = mqtt.attempts - mqtt.connections
        counters[f"{oid}: MQTT link: reconnects"] = max(0, mqtt.connections - 1)
        counters[f"{oid}: MQTT link: last error"] = int(mqtt.last_error is not None)
    counters["central: problems"] = system.central.worker.problems.count
    counters["log records at WARNING or above"] = logs.count
    return counters


# -- the day's invariants -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayFacts:
    """What the day's checks read for one office, gathered once the broker and central caught up."""

    config: OfficeConfig
    day: date
    events: list[ev.Event]  # the journal's events of the day (its business day)
    seq_before: int  # the journal's last seq before the day
    last_seq: int  # the gateway's last seq now
    floor_day: date | None  # the gateway's floor now: its business day, each ticket's status
    floor: dict[str, TicketStatus]
    counted: tuple[int, int, int, int] | None  # the simulation's issued, served, no-show, left; None: closed
    central: list[dict[str, Any]]  # central's stored records after seq_before
    central_seqs: tuple[int, int]  # central's last and contiguous seq of the office
    session: int  # the gateway's MQTT session now


def check_office_day(f: DayFacts) -> list[str]:
    """What is wrong with the office's day (empty: nothing)."""
    where = f"{f.day} {f.config.id}"
    problems: list[str] = []
    last = f.last_seq

    # The journal's seq: on from the day before, no gap, up to what the gateway holds.
    seqs = [e.seq for e in f.events]
    if seqs != list(range(f.seq_before + 1, last + 1)):
        problems.append(f"{where}: the journal's seqs are not {f.seq_before + 1}..{last} without a gap: {_span(seqs)}")

    # Central: exactly the journal's events, as the event log writes them, and nothing beyond;
    # each stored with the gateway session that published it (docs/mqtt.md, "events").
    expected = [ev.public_record(e, f.config.id) for e in f.events]
    stored = [{k: v for k, v in r.items() if k != "session"} for r in f.central]
    if stored != expected:
        problems.append(f"{where}: central's store differs from the journal: {_first_difference(stored, expected)}")
    sessions = {r.get("session") for r in f.central}
    if not all(isinstance(s, int) and 1 <= s <= f.session for s in sessions):
        problems.append(f"{where}: central's records carry sessions {sorted(map(str, sessions))}; the gateway's is "
                        f"{f.session}")  # fmt: skip
    if f.central_seqs != (last, last):
        problems.append(f"{where}: central's store: last seq {f.central_seqs[0]}, contiguous to "
                        f"{f.central_seqs[1]}; the journal's last is {last}")  # fmt: skip

    issued: dict[str, ev.TicketIssued] = {}
    ends: dict[str, list[str]] = {}  # ticket -> its ends: served, no_show (final)
    for e in f.events:
        if isinstance(e, ev.TicketIssued):
            if e.ticket in issued:
                problems.append(f"{where}: ticket {e.ticket} issued twice (seq {issued[e.ticket].seq} and {e.seq})")
            issued[e.ticket] = e
        elif isinstance(e, TICKET_EVENTS) and e.ticket not in issued:
            problems.append(f"{where}: seq {e.seq} ({e.TYPE}) names ticket {e.ticket}, not issued that day")
        if isinstance(e, ev.Served) or (isinstance(e, ev.NoShow) and not e.requeued):
            ends.setdefault(e.ticket, []).append(e.TYPE)

    if f.counted is None:
        if issued:
            problems.append(f"{where}: closed that day, yet {len(issued)} ticket(s) issued")
        return problems

    first = f.events[0] if f.events else None
    if not isinstance(first, ev.Schedule) or not first.new_day or first.date != f.day.isoformat():
        seen = f"{first.TYPE} at {first.ts:%Y-%m-%d %H:%M}" if first is not None else "no event"
        problems.append(f"{where}: the day does not open with its new-day schedule (first: {seen})")

    # Numbers restart at each service's first number and run on: no gap, no repeat.
    for service in f.config.services:
        numbers = [e.number for e in issued.values() if e.service == service.id]
        wanted = list(range(service.first_number, service.first_number + len(numbers)))
        if numbers != wanted:
            problems.append(f"{where}: {service.id}'s numbers are not {_span(wanted)}: {_span(numbers)}")

    # Every ticket accounted for, once: served, a final no-show, or left at close; as the
    # simulation counted them, and as the gateway's floor ends the day, ticket by ticket.
    twice = sorted(t for t, e in ends.items() if len(e) > 1)
    if twice:
        problems.append(f"{where}: tickets ended more than once: {', '.join(twice[:5])}")
    outcome = {t: ends[t][0] if t in ends else "left" for t in issued}
    tally = Counter(outcome.values())
    counted = (len(issued), tally[ev.Served.TYPE], tally[ev.NoShow.TYPE], tally["left"])
    if counted != f.counted:
        problems.append(f"{where}: issued/served/no-show/left: journal {counted}, simulation {f.counted}")
    on_floor = {t: _END.get(s, "left") for t, s in f.floor.items()}
    if f.floor_day != f.day or on_floor != outcome:
        wrong = sorted(t for t in outcome.keys() | on_floor.keys() if outcome.get(t) != on_floor.get(t))
        problems.append(f"{where}: the gateway's floor (day {f.floor_day}) disagrees with the journal on "
                        f"{len(wrong)} ticket(s): {', '.join(wrong[:5])}")  # fmt: skip
    return problems


_END = {TicketStatus.SERVED: ev.Served.TYPE, TicketStatus.NO_SHOW: ev.NoShow.TYPE}


def _span(values: Sequence[int]) -> str:
    if not values:
        return "none"
    if len(values) <= 6:
        return ", ".join(map(str, values))
    return f"{values[0]}, {values[1]}, … {values[-1]} ({len(values)})"


def _first_difference(got: Sequence[dict[str, Any]], wanted: Sequence[dict[str, Any]]) -> str:
    for a, b in zip(got, wanted, strict=False):
        if a != b:
            return f"seq {b.get('seq')}: stored {a}, journal {b}"
    return f"{len(got)} record(s) stored, {len(wanted)} in the journal"


# -- the run ----------------------------------------------------------------------------------------------
def load_sources(paths: Sequence[Path] = CONFIGS) -> list[OfficeSource]:
    sources = []
    for path in paths:
        text = read_config_text(path)
        sources.append(OfficeSource(parse_config(text, source=str(path)), text, path))
    return sources


def soak(
    sources: Sequence[OfficeSource],
    start: date,
    days: int,
    workdir: Path,
    *,
    seed: int = 1,
    rush: bool = False,
    broker: str | None = None,
    learning: bool = True,
    trace: bool = False,
    snapshot_days: Collection[int] = (),
    on_day: Callable[[DayRecord], None] = lambda _: None,
    on_facts: Callable[[DayFacts], None] = lambda _: None,
) -> SoakReport:
    """`days` calendar days from `start` through one system (see the module docstring); `on_day`
    has each day's record as it ends, `on_facts` what each office's day was checked on. With
    `snapshot_days` (1 is the first day), tracemalloc starts with TRACE_FRAMES frames at the start
    of the first of them (tracing slows every allocation ten times: the days before run at full
    speed) and takes a snapshot at the end of each, into `report.snapshots`. What is replaced day
    after day (a learned model, the day's floor) is then in every snapshot, allocated that day,
    so a diff between two of them shows what accumulates. With
    `learning`, the gateways start processes by `spawn`, which imports the main module again: a
    script that calls this needs the `if __name__ == "__main__":` guard."""
    report = SoakReport()
    started = time.perf_counter()
    tune_malloc()  # as the gateway's and central's processes do, before their threads start
    clock = DemoClock(datetime.combine(start, clock_time(0), tzinfo=sources[0].config.tz))
    if trace and not snapshot_days:
        tracemalloc.start()
    try:
        with (
            _log_tally() as logs,
            demo_system(sources, start, workdir, None, clock, broker, 0, backend="python") as system,
        ):
            if learning:
                for office in system.offices:
                    _learn_from_journal(office)
            seqs = {o.config.id: o.events for o in system.offices}
            for i in range(days):
                day = start + timedelta(days=i)
                if snapshot_days and i + 1 >= min(snapshot_days) and not tracemalloc.is_tracing():
                    tracemalloc.start(TRACE_FRAMES)
                record = _play_day(system, day, seqs, seed, rush, logs, on_facts)
                report.days.append(record)
                if i + 1 in snapshot_days:
                    report.snapshots[i + 1] = tracemalloc.take_snapshot().filter_traces(SNAPSHOT_FILTERS)
                on_day(record)
            report.errors = error_counters(system, logs)
            report.warnings = list(logs.first)
            report.learned = {
                o.config.id: o.gateway.learning.runs if o.gateway.learning is not None else 0 for o in system.offices
            }
            report.files_mb = sum(f.stat().st_size for f in workdir.glob("*.sqlite*")) / 2**20
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    report.seconds = time.perf_counter() - started
    return report


def _learn_from_journal(office: DemoOffice) -> None:
    """The gateway learns its estimate from its own journal's past days again, as in service
    (demo_system stops that: the demo's journal is new and its past is simulated apart)."""
    gw = office.gateway
    assert gw.journal is not None and gw.learning is None
    gw.learning = Learning(gw.journal_file, office.config.id, gw._learned, gw.journal.days_before)


def _play_day(
    system: DemoSystem,
    day: date,
    seqs: dict[str, int],
    seed: int,
    rush: bool,
    logs: _LogTally,
    on_facts: Callable[[DayFacts], None],
) -> DayRecord:
    t0 = time.perf_counter()
    sims: dict[str, DaySimulation] = {}
    for office in system.offices:
        journal = office.gateway.journal
        assert journal is not None
        if not plan_for(office.config, day).is_open:
            office.gateway.wall = system.clock  # closed today: it idles on the system's clock
            continue
        sim = DaySimulation(
            office.config,
            day,
            seed=seed,
            rush=rush,
            office=journal.office,
            execute=_reconnecting(office.staff),
            make_token=new_token,
        )
        office.gateway.wall = _follow(sim)
        sims[office.config.id] = sim
    clock = system.clock
    if sims:
        now = min(s.start_moment for s in sims.values())
        clock.now = now
        while not all(s.done for s in sims.values()):
            now += STEP
            for sim in sims.values():
                if not sim.done:
                    sim.run_until(now)
            clock.now = max(s.now_moment for s in sims.values()) if all(s.done for s in sims.values()) else now
            system.tick()
    else:
        clock.now = datetime.combine(day, clock_time(12), tzinfo=clock.now.tzinfo)
        for _ in range(IDLE_TURNS):
            system.tick()

    violations: list[str] = []
    for office in system.offices:
        if not office.flush(FLUSH_TIMEOUT_S):
            violations.append(f"{day} {office.config.id}: the broker has {office.published} of {office.events} "
                              f"events after {FLUSH_TIMEOUT_S:g} s ({office.problem})")  # fmt: skip
    if not wait_for_central(system, CENTRAL_TIMEOUT_S):
        held = ", ".join(f"{o.config.id} {system.central.stored(o.config.id)} of {o.events}" for o in system.offices)
        violations.append(f"{day}: central holds {held} events after {CENTRAL_TIMEOUT_S:g} s")
    seconds = time.perf_counter() - t0

    offices: list[OfficeDay] = []
    store = open_store(system.central.store)
    try:
        for office in system.offices:
            facts = office_facts(office, day, seqs[office.config.id], sims.get(office.config.id), store)
            violations += check_office_day(facts)
            on_facts(facts)
            tickets = sum(isinstance(e, ev.TicketIssued) for e in facts.events)
            offices.append(
                OfficeDay(facts.config.id, facts.counted is not None, tickets, len(facts.events), facts.last_seq)
            )
            seqs[office.config.id] = facts.last_seq
    finally:
        store.close()
    del sims
    errors = sum(error_counters(system, logs).values())
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else None
    return DayRecord(
        day,
        tuple(offices),
        seconds,
        rss_mb(),
        rss_mb("RssAnon"),
        len(gc.get_objects()),
        traced,
        threading.active_count(),
        open_fds(),
        tuple(violations),
        errors,
    )


def office_facts(
    office: DemoOffice, day: date, seq_before: int, sim: DaySimulation | None, store: EventStore
) -> DayFacts:
    """The office's day as its journal (read beside the gateway), its floor, the simulation and
    central's store have it."""
    journal, mqtt = office.gateway.journal, office.gateway.mqtt
    assert journal is not None
    oid, state = office.config.id, journal.office.state
    with JournalReader(office.gateway.journal_file) as reader:
        events = list(reader.events(day, day))
    counted = None
    if sim is not None:
        s = sim.summary()
        counted = (s.issued, s.served, s.no_show, s.left_at_close)
    return DayFacts(
        office.config,
        day,
        events,
        seq_before,
        state.last_seq,
        state.day,
        {t: ticket.status for t, ticket in state.tickets.items()},
        counted,
        list(store.read(oid, seq_before + 1)),
        (store.last_seq(oid), store.contiguous_seq(oid)),
        mqtt.session if mqtt is not None else 0,
    )


def _reconnecting(staff: FloorStaff) -> Execute:
    """`staff.execute` on a fresh control-socket connection after a lull. FloorStaff keeps one
    connection for good, but the gateway closes a connection that sends no request for
    READ_DEADLINE_S of real time (gateway.control_server), and the staff's next request then
    fails (BrokenPipeError, or the gateway's closing line read as its reply): between two days
    here (the checks, a closed day) and in the demo at a slow --speed. Until FloorStaff reconnects
    by itself, a lull longer than half the deadline starts a new connection."""
    last = -math.inf

    def execute(command: Command, now: datetime) -> Decision:
        nonlocal last
        if time.monotonic() - last > READ_DEADLINE_S / 2:
            staff.close()
        try:
            return staff.execute(command, now)
        finally:
            last = time.monotonic()

    return execute


def _follow(sim: DaySimulation) -> Callable[[], datetime]:
    """An office's wall clock: its own simulated day's moment (as the demo's OfficeDays)."""
    return lambda: sim.now_moment


# -- the report ---------------------------------------------------------------------------------------------
def day_header(trace: bool = False) -> list[str]:
    traced = " traced MB |" if trace else ""
    return [
        f"| day | open | tickets | events | RSS MB | anon MB | objects |{traced} threads | fds | seconds | errors "
        "| invariants |",
        f"|---|---|---:|---:|---:|---:|---:|{'---:|' if trace else ''}---:|---:|---:|---:|---|",
    ]


def day_line(d: DayRecord, trace: bool = False) -> str:
    """The day's row; with `trace` (day_header's), a traced MB column even on a day not traced."""
    traced = f" {d.traced_mb:.1f} |" if d.traced_mb is not None else (" — |" if trace else "")
    held = "hold" if not d.violations else f"**{len(d.violations)} broken**"
    return (
        f"| {d.day:%a %m-%d} | {d.open_offices} | {d.tickets:,} | {d.events:,} | {d.rss_mb:.1f} | {d.anon_mb:.1f} "
        f"| {d.objects:,} |{traced} {d.threads} | {d.fds} | {d.seconds:.0f} | {d.errors} | {held} |"
    )


def results(report: SoakReport) -> list[Result]:
    """The verdict lines: memory growth, the invariants, the error counters."""
    days = report.days
    open_days = sum(any(o.is_open for o in d.offices) for d in days)
    tickets, events = sum(d.tickets for d in days), sum(d.events for d in days)
    name = f"Soak: resident memory over {len(days)} days ({tickets:,} tickets, {events:,} events)"
    goal = f"growth ≤ {GOAL_GROWTH:.0%} from the end of day {WARM_DAY}"
    growth = report.growth
    if growth is None:
        end = f"{days[-1].rss_mb:.1f} MB RSS" if days else "—"
        memory = Result(name, end, f"— (a run longer than {WARM_DAY} days)", "—", goal, None)
    else:
        warm, last = days[WARM_DAY - 1], days[-1]
        memory = Result(
            name,
            f"{last.rss_mb:.1f} MB RSS at the end ({last.objects:,} objects)",
            f"{warm.rss_mb:.1f} MB at the end of day {WARM_DAY} ({warm.objects:,} objects)",
            f"{growth:+.1%}",
            goal,
            growth <= GOAL_GROWTH,
        )
    violations = report.violations
    nonzero = {k: v for k, v in report.errors.items() if v}
    return [
        memory,
        Result(
            f"Soak: every day's invariants ({open_days} open days of {len(days)})",
            "all hold" if not violations else f"{len(violations)} broken",
            "—",
            "—",
            "numbers restart, every ticket accounted for, seq gapless end to end, central == journal",
            not violations,
        ),
        Result(
            f"Soak: error counters ({len(report.errors)})",
            "all zero" if not nonzero else ", ".join(f"{k} {v}" for k, v in nonzero.items()),
            "—",
            "—",
            "all zero",
            not nonzero,
        ),
    ]


def notes(report: SoakReport) -> list[str]:
    """What else the run found: the disk, the learning, what broke, what was logged."""
    learned = ", ".join(f"{k} {v}" for k, v in report.learned.items())
    lines = [
        f"soak: {len(report.days)} days in {report.seconds:.0f} s; journals and central's store "
        f"{report.files_mb:.1f} MB on disk at the end; learning runs finished: {learned}"
    ]
    lines += [f"soak: invariant broken: {v}" for v in report.violations[:20]]
    lines += [f"soak: error counter {k} = {v}" for k, v in report.errors.items() if v]
    lines += [f"soak: logged: {w}" for w in report.warnings]
    return lines


def growth_sites(report: SoakReport, first: int, last: int, top: int = 15) -> list[str]:
    """The allocation sites whose memory grew most from the end of day `first` to the end of day
    `last` (tracemalloc's snapshot diff, grouped by traceback, innermost frame first)."""
    before, after = report.snapshots[first], report.snapshots[last]
    diffs = after.compare_to(before, "traceback")
    total = sum(d.size_diff for d in diffs)
    lines = [f"traced memory, day {first} to day {last}: {total / 2**20:+.2f} MB in all; the top {top} sites:"]
    for d in diffs[:top]:
        lines.append(f"  {d.size_diff / 2**10:+,.0f} KiB ({d.count_diff:+,} blocks; {d.size / 2**10:,.0f} KiB now)")
        lines += [f"      {frame.filename}:{frame.lineno}" for frame in reversed(d.traceback)]
    return lines


def run(workdir: Path, days: int, log: list[str], *, start: date = START, seed: int = 1) -> list[Result]:
    """For bench/run.py: the soak in a folder of `workdir`; its day table and notes into `log`."""
    folder = workdir / "soak"
    folder.mkdir()
    print("\n".join(day_header()), flush=True)
    report = soak(load_sources(), start, days, folder, seed=seed, on_day=lambda d: print(day_line(d), flush=True))
    log += [*day_header(), *(day_line(d) for d in report.days), *notes(report)]
    return results(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30, help="calendar days to simulate (default 30)")
    parser.add_argument("--start", type=date.fromisoformat, default=START, help=f"the first day (default {START})")
    parser.add_argument("--seed", type=int, default=1, help="the simulation's seed (default 1)")
    parser.add_argument("--rush", action="store_true", help="every day a moving-season day")
    parser.add_argument("--broker", default=None, help="an MQTT broker URL (default: the embedded broker)")
    parser.add_argument("--no-learning", dest="learning", action="store_false",
                        help="the gateways do not learn their estimate from their journals")  # fmt: skip
    parser.add_argument("--trace", action="store_true", help="also tracemalloc's figure (slower)")
    parser.add_argument("--diff", type=int, nargs=2, metavar=("FIRST", "LAST"), default=None,
                        help="tracemalloc snapshots at the end of days FIRST and LAST (1: the first day), and "
                             "the allocation sites that grew most between them (much slower)")  # fmt: skip
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the journals and store go (a temporary folder in it)"
    )
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.diff is not None and not 1 <= args.diff[0] < args.diff[1] <= args.days:
        parser.error("--diff FIRST LAST: 1 <= FIRST < LAST <= --days")
    trace = args.trace or args.diff is not None
    print(f"soak: {args.days} days from {args.start}, seed {args.seed}{', rush' if args.rush else ''}; "
          f"pid {os.getpid()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    for line in day_header(trace):
        print(line, flush=True)
    with tempfile.TemporaryDirectory(prefix="counterfloor-soak-", dir=args.dir) as tmp:
        report = soak(
            load_sources(),
            args.start,
            args.days,
            Path(tmp),
            seed=args.seed,
            rush=args.rush,
            broker=args.broker,
            learning=args.learning,
            trace=trace,
            snapshot_days=tuple(args.diff or ()),
            on_day=lambda d: print(day_line(d, trace), flush=True),
        )
    print("\n".join(notes(report)))
    if args.diff is not None:
        print("\n".join(growth_sites(report, *args.diff)), flush=True)
    for r in results(report):
        met = "—" if r.met is None else ("yes" if r.met else "NO")
        print(f"{r.name}: {r.measured} (baseline {r.baseline}; {r.ratio}); goal {r.goal}: {met}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0 if not report.violations and not report.error_total else 1


if __name__ == "__main__":
    sys.exit(main())
