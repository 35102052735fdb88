"""The parent side of the crash test: start the worker, SIGKILL it, check the journal, repeat.

The kill moment is chosen by a seeded RNG as a number of ack lines to read first (0 kills the
worker while it creates, opens or recovers the journal: it says `opening` first); the worker keeps running while the
parent reads, so the kill lands anywhere in its loop: inside a commit, a snapshot, between a
commit and its ack. No sleeps: the ack lines are the synchronisation. After each kill, every
line the worker managed to write is read to the end of the pipe, and the journal is checked:

- seq is gapless from 1, and no stored row up to the last check changed;
- every acknowledged event is stored as acknowledged (type, ticket, counter): no ticket and no
  call that was acknowledged is lost;
- what is stored beyond the last acknowledged event is at most the one command that was being
  written (its events share one timestamp, later than anything acknowledged);
- no ticket id repeats within a business day;
- reopening with TicketJournal (snapshot + tail) gives the state of a full replay of the day,
  and that state holds every acknowledged ticket of the day.

A failed check raises AssertionError naming the kill, the seed and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gateway.journal import JournalReader, TicketJournal
from tests.journal_support import comparable, replay_last_day, rows_digest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CrashReport:
    kills: int = 0
    acked_commands: int = 0
    acked_events: int = 0
    stored_events: int = 0
    unacked_tails: int = 0  # kills that came after a commit but before its ack was written
    startup_kills: int = 0  # kills before the first ack of a run (start, recovery, create)
    snapshot_recoveries: int = 0  # reopenings that started from a snapshot of the day
    days: int = 0
    seconds: float = 0.0
    worker_seconds: list[float] = field(default_factory=list)


@dataclass
class _Known:
    """What the parent knows for sure: everything stored at the last check."""

    max_seq: int = 0
    last_ts: datetime | None = None
    digest: str = hashlib.sha256().hexdigest()  # of no rows
    acked: dict[int, tuple[str, str | None, str | None]] = field(default_factory=dict)
    issued_by_day: dict[str, set[str]] = field(default_factory=dict)


def run_crash_loop(workdir: Path, kills: int, seed: int, max_acks: int = 80) -> CrashReport:
    rng = random.Random(seed)
    path = workdir / "crash.journal"
    report = CrashReport()
    known = _Known()
    started = time.perf_counter()
    for k in range(kills):
        # The first kill lands while the journal is being created; later ones now and then
        # while it is opened and recovered.
        wanted = 0 if k == 0 or rng.random() < 0.1 else rng.randint(1, max_acks)
        where = f"kill {k} (seed {seed}, after {wanted} acks)"
        t0 = time.perf_counter()
        lines = _run_and_kill(path, seed * 1_000_003 + k, wanted, workdir / f"worker-{k % 4}.err", where)
        report.worker_seconds.append(time.perf_counter() - t0)
        acks = [json.loads(line) for line in lines]
        report.kills += 1
        report.acked_commands += len(acks)
        report.acked_events += sum(len(a["events"]) for a in acks)
        if not acks:
            report.startup_kills += 1
        tail = _check(path, acks, known, where, report)
        if tail:
            report.unacked_tails += 1
    report.seconds = time.perf_counter() - started
    report.stored_events = known.max_seq
    report.days = len(known.issued_by_day)
    return report


def _run_and_kill(path: Path, seed: int, wanted: int, errfile: Path, where: str) -> list[str]:
    with open(errfile, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_worker", str(path), str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        assert proc.stdout is not None
        lines: list[bytes] = []
        try:
            proc.stdout.readline()  # "opening": with wanted == 0 the kill lands in open/recovery
            while len(lines) < wanted:
                line = proc.stdout.readline()
                if not line:
                    break  # the worker died by itself: reported below
                lines.append(line)
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()  # everything it wrote before it died
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"{where}: worker exited by itself ({proc.returncode}): {errfile.read_text()[-3000:]}")
    text = b"".join(lines) + rest
    complete = text.split(b"\n")[:-1]  # a line without its newline was never acknowledged
    return [line.decode() for line in complete]


def _check(path: Path, acks: list[dict[str, Any]], known: _Known, where: str, report: CrashReport) -> int:
    """Check the journal after one kill; returns how many stored events were not acknowledged."""
    if not path.exists():
        assert not acks and known.max_seq == 0, f"{where}: acknowledged events but no journal"
        # A create killed midway leaves its half-made files (database and rollback journal); the
        # next create removes those of dead processes, so at most one create's files are here.
        leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]
        creators = {name.split(".creating")[0] for name in leftovers}
        assert len(creators) <= 1 and all(".creating" in n for n in leftovers), f"{where}: unexpected files {leftovers}"
        return 0
    with JournalReader(path) as reader:
        conn = reader.conn
        count, lo, hi = conn.execute("SELECT count(*), min(seq), max(seq) FROM events").fetchone()
        hi = hi or 0
        assert count == hi and (lo or 1) == 1, f"{where}: seq not gapless: {count} rows, {lo}..{hi}"
        assert hi >= known.max_seq, f"{where}: committed events lost: max seq {hi} < {known.max_seq}"
        assert rows_digest(conn, known.max_seq) == known.digest, f"{where}: stored events changed"
        # Decode only from the day of the last known event on: the rest was checked before.
        since = conn.execute("SELECT day FROM events WHERE seq = ?", (known.max_seq,)).fetchone()
        first_day = date.fromisoformat(since[0]) if since else None
        new = {e.seq: e for e in reader.events(first_day) if e.seq > known.max_seq}

        # Every acknowledged event is stored as acknowledged, continuing from what was stored.
        expected = known.max_seq + 1
        last_acked_ts = known.last_ts
        for ack in acks:
            for seq, type_, ticket, counter in ack["events"]:
                assert seq == expected, f"{where}: acknowledged seq {seq}, expected {expected}"
                expected += 1
                e = new.get(seq)
                assert e is not None, f"{where}: acknowledged event {seq} ({type_} {ticket}) is lost"
                got = (e.TYPE, getattr(e, "ticket", None), getattr(e, "counter", None))
                assert got == (type_, ticket, counter), f"{where}: event {seq} is {got}, acknowledged {ack}"
                known.acked[seq] = got
            last_acked_ts = datetime.fromisoformat(ack["ts"])

        # Beyond the acknowledged: at most the one command that was being written.
        tail = [new[s] for s in sorted(new) if s >= expected]
        if tail:
            stamps = {e.ts for e in tail}
            assert len(stamps) == 1, f"{where}: {len(tail)} unacknowledged events from {len(stamps)} commands"
            assert last_acked_ts is None or tail[0].ts > last_acked_ts, f"{where}: unacknowledged tail out of order"
            assert len(tail) <= 4, f"{where}: {len(tail)} unacknowledged events for one command"

        # No ticket id twice within a day (checked over the whole journal, in SQL).
        dupes = conn.execute(
            "SELECT day, json_extract(body, '$.ticket'), count(*) FROM events WHERE type = 'ticket_issued' "
            "GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        assert not dupes, f"{where}: ticket ids repeated within a day: {dupes[:5]}"
        for e in new.values():
            if e.TYPE == "ticket_issued":
                day = e.ts.date().isoformat()
                known.issued_by_day.setdefault(day, set()).add(getattr(e, "ticket", ""))

        last_day = reader.days()[-1] if hi else None
        first_of_day = conn.execute("SELECT min(seq) FROM events WHERE day = ?", (last_day,)).fetchone()[0]
        snap = conn.execute("SELECT max(seq) FROM snapshots").fetchone()[0]
        known.max_seq = hi
        known.digest = rows_digest(conn, hi)
        if hi:
            known.last_ts = max(e.ts for e in new.values()) if new else known.last_ts

    # Reopening (snapshot + tail) gives the state of a full replay of the day.
    replayed = replay_last_day(path)
    with TicketJournal.open(path) as journal:
        recovered = journal.office.state
        assert comparable(recovered) == comparable(replayed), f"{where}: recovered state differs from a full replay"
        assert recovered.last_seq == hi
        for seq, (type_, ticket, _counter) in known.acked.items():
            if type_ == "ticket_issued" and first_of_day is not None and seq >= first_of_day:
                assert ticket in recovered.tickets, f"{where}: acknowledged ticket {ticket} missing from the state"
    if snap is not None and first_of_day is not None and snap >= first_of_day - 1:
        report.snapshot_recoveries += 1
    return len(tail)


def main() -> None:
    """`python -m tests.crash_harness KILLS [SEED]`: a crash run outside pytest."""
    import tempfile

    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as tmp:
        report = run_crash_loop(Path(tmp), kills, seed)
    print(report)


if __name__ == "__main__":
    main()
