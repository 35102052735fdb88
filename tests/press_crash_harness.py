"""The press crash run: the real gateway SIGKILLed over and over while staff and residents press,
and a press is still acted on once (docs/protocol.md, "Sequence numbers, retries and duplicates").

The parent holds what outlives a gateway: a pty hub (hal.bus_hub) and on it the real board
firmware under MicroPython (hal.firmware_sim.FirmwareBoard: a dispenser at 1, a counter pad at 5,
each with its flash directory, so its boot number), a thread pressing their buttons and keys
(through the Unix port's stdin pins) the whole time, and the journal file. The gateway is a
process of its own (tests/press_crash_worker.py: gateway.service.Gateway with a real journal and
its bus on the hub's pty), started again after every kill against the same journal and the same,
still running, boards. Each life ends in one of three seeded ways:

- `hook`: the worker SIGKILLs itself right after the commit of the 1st … 4th press of the
  dispenser or of the pad, before the exchange that acknowledges it ($CRASH_KILL_AFTER_PRESS,
  $CRASH_KILL_DEVICE): the window closed here, hit every time. The board offers that press
  again to the next gateway, which must acknowledge it and do nothing more (its `already stored`
  log line is looked for).
- `line`: the parent kills it on reading a seeded line of its output: a `stored` line (printed
  right after a commit, so the kill lands just after one: before its ack or after it), or any
  log line (a device coming online, …).
- `startup`: killed before it says `ready`: while it opens and recovers the journal, or opens the
  bus and the control socket.

After every kill the journal is checked; at the end a last gateway drains the boards, one more
press of each is stored, and it is checked again:

- every press stored has a request id `dev:<bus>:<addr>:<boot>:<n>`, and for each board and boot
  the ids, in the order stored, are n = 1, 2, 3 … with no gap and no repeat: nothing a board was
  told was stored is lost, and no press was stored under a second name;
- every ticket and every call made by a press has its id: as many tickets as dispenser presses
  stored, as many calls as pad presses stored, so 0 double tickets and 0 double calls (every press
  here stores something: four services of 9,999 numbers each and a typical service of under a
  second, so that no ticket is refused, not even for the service counter 1 calls last, whose queue
  only grows; and a queue of waiting tickets made before the run, so that every call finds someone);
- every press a `hook` kill left unacknowledged was met again and acknowledged without acting.

A failed check raises AssertionError naming the kill, the seed and what is wrong.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.journal import JournalReader, TicketJournal
from hal.bus_hub import BusHub
from hal.firmware_sim import FirmwareBoard, find_micropython
from office.config import load_config
from office.model import IssueTicket, OpenCounter

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2027, 3, 15, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # the worker's wall clock starts here
DISPENSER, PAD = 1, 5
SERVICES = ("s0", "s1", "s2", "s3")  # the dispenser's buttons 0-3, all called at counter 1
WAITING_AT_START = 40  # tickets issued before the run, so that a call always finds someone
LIFE_DEADLINE_S = 30.0  # a life that reaches none of its kill points by then is killed (and counted)
DRAIN_QUIET_S = 1.5  # the last gateway has drained the boards once no press was stored for this long
_MET_AGAIN = re.compile(r"device (\d+): press ev (\d+) of boot (\d+) already stored; acknowledged again")

CONFIG = """\
# The press crash run's office (tests/press_crash_harness.py): four services that neither run
# out nor refuse a ticket (cut-off) however long their queue, and one counter calling them all.
[office]
id = "crash"
name = {{ ja = "試験事務所", en = "Crash run office" }}
timezone = "Asia/Tokyo"
public_base_url = "https://queue.example.jp/crash"

[hours]
weekday = {{ from = "08:30", to = "17:00" }}

[rules]
no_show = "drop"
{services}
[[counters]]
id = "1"
name = {{ ja = "1番窓口", en = "Counter 1" }}
services = {service_ids}
shifts = [{{ periods = ["office"], from = "08:30", to = "17:00" }}]

[gateway]
port = "{port}"
cycle_ms = 20
reply_timeout_ms = 150          # the boards are processes on a loaded host, not UARTs

[[devices]]
kind = "dispenser"
addr = {dispenser}
services = {service_ids}

[[devices]]
kind = "counter_pad"
addr = {pad}
counter = "1"
"""
SERVICE = """
[[services]]
id = "{id}"
prefix = "{prefix}"
name = {{ ja = "窓口{prefix}", en = "Service {prefix}" }}
numbers = [1, 9999]
periods = ["office"]
typical_minutes = 0.01
"""


@dataclass
class PressCrashReport:
    kills: int = 0
    hook_kills: int = 0  # the worker's own SIGKILL right after a press's commit, before its ack
    line_kills: int = 0  # on a line of its output (a `stored` line: just after a commit)
    startup_kills: int = 0  # before `ready`
    overdue_kills: int = 0  # lives that reached none of their kill points within LIFE_DEADLINE_S
    presses: int = 0  # button and key presses made (the boards refuse those while the gateway is away)
    stored: dict[int, int] = field(default_factory=dict)  # addr -> presses stored (request ids)
    tickets: int = 0  # tickets issued by dispenser presses
    calls: int = 0  # calls made by pad presses
    doubles: int = 0  # a press's second ticket or call: must be 0
    met_again: int = 0  # presses found stored when offered again, acknowledged without acting
    boots: dict[int, int] = field(default_factory=dict)  # addr -> its boot number
    seconds: float = 0.0
    worker_seconds: list[float] = field(default_factory=list)


class Presser(threading.Thread):
    """Staff and residents: a dispenser button (one of four services) or the pad's call-next key,
    held for 60 ms (the boards debounce 30 ms) every 40-120 ms, seeded, until stopped."""

    def __init__(self, boards: dict[int, FirmwareBoard], seed: int) -> None:
        super().__init__(name="presser", daemon=True)
        self.boards = boards
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.presses = 0

    def run(self) -> None:
        while not self.stopped.wait(self.rng.uniform(0.04, 0.12)):
            # A few more tickets than calls, so that the queue never runs dry.
            if self.rng.random() < 0.55:
                self.press(self.boards[DISPENSER], f"button{self.rng.randrange(len(SERVICES))}")
            else:
                self.press(self.boards[PAD], "key1")  # P.KEY_CALL_NEXT

    def press(self, board: FirmwareBoard, pin: str) -> None:
        board.send(f"down {pin}")
        time.sleep(0.06)  # a finger on the key: longer than the debounce
        board.send(f"up {pin}")
        self.presses += 1


class Worker:
    """One life of the gateway process; its output lines go to `lines` (None at its end)."""

    def __init__(self, config: Path, journal: Path, env: dict[str, str], errfile: Path) -> None:
        self.started = time.perf_counter()
        self.err = open(errfile, "ab")  # noqa: SIM115 -- closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.press_crash_worker", str(config), str(journal)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
            env={**os.environ, **env},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.ended = False  # its output is over
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut short by the kill was never said
                self.lines.put(line[:-1])
        self.lines.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The next line, or None at the end of its output or at `deadline` (perf_counter)."""
        if self.ended:
            return None
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.perf_counter()))
        except queue.Empty:
            return None
        if line is None:
            self.ended = True
        else:
            self.output.append(line)
        return line

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)

    def wait(self) -> list[str]:
        """Its whole output once it has ended."""
        self.proc.wait(timeout=30)
        while self.next_line(time.perf_counter() + 30) is not None:
            pass
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.err.close()
        return self.output


def write_config(path: Path, port: str) -> None:
    services = "".join(SERVICE.format(id=s, prefix="ABCD"[i]) for i, s in enumerate(SERVICES))
    ids = "[" + ", ".join(f'"{s}"' for s in SERVICES) + "]"
    path.write_text(
        CONFIG.format(services=services, service_ids=ids, port=port, dispenser=DISPENSER, pad=PAD), encoding="utf-8"
    )


def run_press_crash(workdir: Path, kills: int, seed: int) -> PressCrashReport:
    binary = find_micropython()
    if binary is None:
        raise RuntimeError("the press crash run needs the MicroPython Unix port (uv sync)")
    rng = random.Random(seed)
    report = PressCrashReport()
    config_file, journal = workdir / "crash-office.toml", workdir / "crash.journal"
    errfile = workdir / "worker.err"
    hub = BusHub()
    boards: dict[int, FirmwareBoard] = {}
    presser: Presser | None = None
    last: Worker | None = None
    started = time.perf_counter()
    try:
        boards[DISPENSER] = FirmwareBoard(binary, "dispenser", DISPENSER, hub.add("dispenser"), workdir / "dispenser")
        boards[PAD] = FirmwareBoard(binary, "counter_pad", PAD, hub.add("counter_pad"), workdir / "counter_pad")
        hub.start()
        for board in boards.values():
            assert board.wait_line("ready ", 30) is not None, f"{board.kind} did not start: {list(board.output)}"
        write_config(config_file, hub.gateway_path)
        config = load_config(config_file)
        with TicketJournal.create(journal, config, config_file.read_text("utf-8"), clock=lambda: START) as j:
            j.execute(OpenCounter("1"))
            for i in range(WAITING_AT_START):
                j.execute(IssueTicket(SERVICES[i % len(SERVICES)], f"waiting-{i}"))
            base_seq = j.office.state.last_seq
        env = {"CRASH_EPOCH": repr(time.time())}
        presser = Presser(boards, seed)
        presser.start()
        check = _Checker(journal, hub.gateway_path, base_seq, seed)
        for k in range(kills):
            where = f"kill {k} (seed {seed})"
            _life(config_file, journal, env, errfile, rng, report, check, where)
            check.journal(where)
        # The last gateway: presses stop, it drains the boards, then one more press of each.
        last = Worker(config_file, journal, env, errfile)
        _wait_for(last, "ready", "the last gateway: ready")
        presser.stopped.set()
        presser.join()
        _quiet(last)
        presser.press(boards[DISPENSER], "button0")
        presser.press(boards[PAD], "key1")
        last_ids = _quiet(last)
        last.proc.send_signal(signal.SIGTERM)
        check.lines(last.wait(), "the last gateway")
        assert last.proc.returncode == 0, f"the last gateway exited with {last.proc.returncode}"
        check.journal("at the end")
        check.final(last_ids)
        report.presses = presser.presses
        for board in boards.values():
            said = [line for line in board.output if "error" in line.lower() or "Traceback" in line]
            assert not said and board.proc.poll() is None, f"{board.kind}: {said or board.proc.returncode}"
    finally:
        if last is not None and last.proc.poll() is None:
            last.kill()
            last.wait()
        if presser is not None:
            presser.stopped.set()
            if presser.is_alive():
                presser.join()  # not in the middle of a press when the boards stop
        for board in boards.values():
            board.stop()
        hub.close()
    report.seconds = time.perf_counter() - started
    report.stored = dict(check.stored)
    report.boots = dict(check.boots)
    report.tickets, report.calls, report.doubles = check.tickets, check.calls, check.doubles
    report.met_again = check.met_again
    return report


def _life(
    config: Path,
    journal: Path,
    env: dict[str, str],
    errfile: Path,
    rng: random.Random,
    report: PressCrashReport,
    check: _Checker,
    where: str,
) -> None:
    """One life of the gateway, ended by a seeded SIGKILL (see the module docstring)."""
    roll = rng.random()
    kind = "startup" if roll < 0.1 else "hook" if roll < 0.55 else "line"
    life_env = dict(env)
    if kind == "hook":
        life_env["CRASH_KILL_AFTER_PRESS"] = str(rng.randint(1, 4))
        life_env["CRASH_KILL_DEVICE"] = str(rng.choice((DISPENSER, PAD)))
    worker = Worker(config, journal, life_env, errfile)
    deadline = time.perf_counter() + LIFE_DEADLINE_S
    overdue = False
    if kind == "startup":
        # At a seeded moment of its start, or on its first line (the bus's port opened).
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.0, 0.4))  # the kill's moment, not a wait for anything
        else:
            worker.next_line(deadline)
        worker.kill()
    elif kind == "hook":
        while worker.next_line(deadline) is not None:  # it ends itself
            pass
        overdue = not worker.ended
        worker.kill()
    else:
        stored_wanted = rng.randint(1, 6) if rng.random() < 0.7 else 0
        lines_wanted = rng.randint(1, 8)
        stored = seen = 0
        while (line := worker.next_line(deadline)) is not None:
            seen += 1
            stored += line.startswith("stored ")
            if (stored_wanted and stored >= stored_wanted) or (not stored_wanted and seen >= lines_wanted):
                break
        else:
            overdue = True
        worker.kill()
    lines = worker.wait()
    report.worker_seconds.append(time.perf_counter() - worker.started)
    code = worker.proc.returncode
    assert code == -signal.SIGKILL, f"{where}: the gateway exited by itself ({code}): {errfile.read_text()[-3000:]}"
    report.kills += 1
    report.overdue_kills += overdue
    if kind == "startup":
        report.startup_kills += 1
    elif kind == "hook":
        report.hook_kills += 1
        ids = [line.split()[1] for line in lines if line.startswith("stored ")]
        if not overdue:  # it killed itself right after storing its last press: not acknowledged
            check.unacknowledged.add(ids[-1])
    else:
        report.line_kills += 1
    check.lines(lines, where)


def _wait_for(worker: Worker, wanted: str, what: str) -> None:
    deadline = time.perf_counter() + LIFE_DEADLINE_S
    while (line := worker.next_line(deadline)) != wanted:
        assert line is not None, f"{what}: not said: {worker.output[-20:]}"


def _quiet(worker: Worker) -> list[str]:
    """Reads its lines until no press has been stored for DRAIN_QUIET_S; the presses stored."""
    deadline = time.perf_counter() + LIFE_DEADLINE_S
    ids: list[str] = []
    while True:
        quiet_until = min(deadline, time.perf_counter() + DRAIN_QUIET_S)
        while (line := worker.next_line(quiet_until)) is not None and not line.startswith("stored "):
            pass
        if line is None:
            assert worker.proc.poll() is None, f"the last gateway ended: {worker.output[-20:]}"
            return ids
        ids.append(line.split()[1])
        assert time.perf_counter() < deadline, "the last gateway never stopped storing presses"


class _Checker:
    """What the parent checks, after every kill and at the end (see the module docstring)."""

    def __init__(self, journal: Path, bus: str, base_seq: int, seed: int) -> None:
        self.path = journal
        self.prefix = f"dev:{bus}:"
        self.base_seq = base_seq
        self.seed = seed
        self.stored: dict[int, int] = defaultdict(int)
        self.boots: dict[int, int] = {}
        self.tickets = self.calls = self.doubles = 0
        self.met_again = 0
        self.unacknowledged: set[str] = set()  # hook kills' presses, until met again
        self.met: set[tuple[int, int, int]] = set()  # (addr, ev, boot) of presses met again

    def lines(self, lines: list[str], where: str) -> None:
        for line in lines:
            if m := _MET_AGAIN.search(line):
                self.met_again += 1
                self.met.add((int(m[1]), int(m[2]), int(m[3])))
            assert "Traceback" not in line, f"{where}: {line}"

    def journal(self, where: str) -> None:
        with JournalReader(self.path) as reader:
            conn = reader.conn
            requests = conn.execute("SELECT id, seq FROM requests ORDER BY seq").fetchall()
            types = dict(conn.execute("SELECT seq, type FROM events WHERE seq > ?", (self.base_seq,)).fetchall())
        order: dict[tuple[int, int], list[int]] = defaultdict(list)
        stored: dict[int, int] = defaultdict(int)
        for request, seq in requests:
            assert request.startswith(self.prefix), f"{where}: a request id of another bus: {request}"
            addr, boot, n = (int(x) for x in request[len(self.prefix) :].split(":"))
            order[(addr, boot)].append(n)
            stored[addr] += 1
            first = types.get(seq)
            expected = ("ticket_issued",) if addr == DISPENSER else ("called", "served")
            assert first in expected, f"{where}: {request} stored as {first} at seq {seq}"
        for (addr, boot), ns in order.items():
            assert ns == list(range(1, len(ns) + 1)), (
                f"{where}: device {addr}, boot {boot}: presses stored as n = {_runs(ns)}, not 1, 2, 3 … "
                f"(a gap is a press lost, or one whose command stored nothing, a refused ticket; a repeat "
                f"or a step back is a press stored twice) (seed {self.seed})"
            )
            self.boots[addr] = boot
        tickets = sum(1 for t in types.values() if t == "ticket_issued")
        calls = sum(1 for t in types.values() if t == "called")
        self.doubles = tickets - stored[DISPENSER] + calls - stored[PAD]
        assert tickets == stored[DISPENSER], (
            f"{where}: {tickets} tickets for {stored[DISPENSER]} dispenser presses stored: a double ticket "
            f"(seed {self.seed})"
        )
        assert calls == stored[PAD], f"{where}: {calls} calls for {stored[PAD]} pad presses stored: a double call"
        self.stored, self.tickets, self.calls = stored, tickets, calls

    def final(self, last: list[str]) -> None:
        """The boards' last presses, made once the last gateway had drained them, are stored, as
        their last events (so with the checks of journal(): every event they numbered is stored);
        every press a hook kill left unacknowledged was met again, and acknowledged."""
        for addr in (DISPENSER, PAD):
            ns = [int(r.rsplit(":", 1)[1]) for r in last if int(r.rsplit(":", 3)[1]) == addr]
            assert len(ns) == 1 and ns[0] == self.stored[addr], f"device {addr}: its last press: {last}"
        missed = []
        for request in sorted(self.unacknowledged):
            addr, boot, n = (int(x) for x in request[len(self.prefix) :].split(":"))
            if (addr, (n - 1) % 255 + 1, boot) not in self.met:
                missed.append(request)
        assert not missed, f"presses stored before a kill but never met again: {missed} (seed {self.seed})"
        assert set(self.stored) == {DISPENSER, PAD}, f"presses stored only from {sorted(self.stored)}"


def _runs(ns: list[int]) -> str:
    """1, 2, 3, 5, 5 -> '1-3, 5, 5': a list of press numbers, shortened for a message."""
    out: list[str] = []
    start = prev = None
    for n in [*ns, None]:
        if start is not None and n == prev + 1:  # type: ignore[operator]
            prev = n
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = n
    return ", ".join(out)


def main() -> None:
    """`python -m tests.press_crash_harness KILLS [SEED]`: a press crash run outside pytest."""
    import tempfile

    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as tmp:
        report = run_press_crash(Path(tmp), kills, seed)
    print(report)


if __name__ == "__main__":
    main()
