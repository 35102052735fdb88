"""The process the crash test kills: it hammers a real journal and acknowledges what is stored.

Run as `python -m tests.crash_worker JOURNAL SEED`. Its first line, `opening`, comes before it
opens the journal (creating it the first time). Then, forever, it picks a seeded random
operation, executes it through `TicketJournal.execute` and, once `execute` has returned (the
events are committed), prints one flushed ack line: a JSON object with the command's `ts` and
its events as `[seq, type, ticket, counter]`. Refused commands store and print nothing. The
clock is simulated: it starts on a weekday morning in Asia/Tokyo, continues from the journal's
last event after a restart, and moves on to the next morning after the evening closes. Only the
parent ends this process (SIGKILL).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.journal import TicketJournal, new_token
from office import events as ev
from office.config import load_config
from office.model import (
    CallNext,
    CloseCounter,
    Command,
    FinishService,
    Hold,
    IssueTicket,
    MarkNoShow,
    OfficeError,
    OpenCounter,
    PauseCounter,
    Recall,
    ResumeCounter,
    Return,
    StartDay,
    Transfer,
)
from office.state import OfficeState, TicketStatus

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "nerima.toml"
TOKYO = ZoneInfo("Asia/Tokyo")
START = datetime(2027, 3, 15, 8, 30, tzinfo=TOKYO)  # a Monday morning
SNAPSHOT_EVERY = 40  # small, so that kills land in snapshots and recovery starts from them


def next_moment(rng: random.Random, now: datetime) -> datetime:
    """A little later; after the evening, the next morning (closed days are just refused)."""
    later = now + timedelta(milliseconds=rng.randint(500, 180_000))
    local = later.astimezone(TOKYO)
    if local.hour >= 19:
        morning = (local + timedelta(days=1)).replace(hour=8, minute=30, second=0, microsecond=0)
        later = morning + timedelta(milliseconds=rng.randint(0, 600_000))
    return later


def pick(rng: random.Random, state: OfficeState, services: list[str], counters: list[str]) -> Command:
    """A plausible operation most of the time, now and then one that must be refused."""
    tickets = list(state.tickets.values())
    open_counters = [c.id for c in state.counters.values() if c.status.value == "open"] or counters
    counter = rng.choice(open_counters if rng.random() < 0.85 else counters)
    roll = rng.random()
    if roll < 0.34:
        return IssueTicket(rng.choice(services), new_token())
    if roll < 0.52:
        return CallNext(counter)
    if roll < 0.60:
        return FinishService(counter)
    if roll < 0.65:
        return Recall(counter)
    if roll < 0.69:
        return MarkNoShow(counter)
    if roll < 0.73:
        if tickets and rng.random() < 0.5:
            return Transfer(rng.choice(services), ticket=rng.choice(tickets).id)
        return Transfer(rng.choice(services), counter=counter)
    if roll < 0.76 and tickets:
        return Hold(rng.choice(tickets).id)
    if roll < 0.79:
        held = [t.id for t in tickets if t.status is TicketStatus.HELD]
        return Return(rng.choice(held) if held else "Z-999")
    if roll < 0.87:
        return OpenCounter(rng.choice(counters))
    if roll < 0.90:
        return PauseCounter(counter)
    if roll < 0.93:
        return ResumeCounter(counter)
    if roll < 0.96:
        return CloseCounter(counter)
    if roll < 0.97:
        return StartDay()
    # Bad input: unknown ticket or counter. The model refuses; nothing may be stored.
    bad: list[Command] = [Hold("Z-999"), CallNext("99"), Transfer("move", ticket="Q-000")]
    return rng.choice(bad)


def ack_line(events: list[ev.Event]) -> str:
    record = {
        "ts": ev.format_ts(events[0].ts),
        "events": [[e.seq, e.TYPE, getattr(e, "ticket", None), getattr(e, "counter", None)] for e in events],
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


def main(argv: list[str]) -> int:
    path, seed = Path(argv[0]), int(argv[1])
    config = load_config(CONFIG)
    rng = random.Random(seed)
    out = sys.stdout
    out.write("opening\n")  # lets the parent kill it during create, open or recovery
    out.flush()
    if path.exists():
        journal = TicketJournal.open(path, snapshot_every=SNAPSHOT_EVERY)
    else:
        journal = TicketJournal.create(path, config, CONFIG.read_text(), snapshot_every=SNAPSHOT_EVERY)
    services = [s.id for s in config.services]
    counters = [c.id for c in config.counters]
    now = journal.office.state.last_ts or START
    # A deliberate bug, for the test that shows the harness catches one: acknowledge first.
    ack_first = os.environ.get("CRASH_WORKER_FAULT") == "ack_before_commit"
    while True:
        now = next_moment(rng, now)
        command = pick(rng, journal.office.state, services, counters)
        try:
            if ack_first:
                early = journal.office.decide(command, now).events
                if early:
                    out.write(ack_line(early))
                    out.flush()
                    # Die in the window between ack and commit now and then (seeded), as a
                    # power cut would: so the harness's catch does not hang on kill timing.
                    if rng.random() < 0.2:
                        os.kill(os.getpid(), signal.SIGKILL)
            decision = journal.execute(command, now)
        except OfficeError:
            continue
        if decision.events and not ack_first:
            out.write(ack_line(decision.events))
            out.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
