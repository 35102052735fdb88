"""Press to paper: from a dispenser's BUTTON_PRESS reply arriving at the gateway to the first byte
of its ticket leaving for the printer, fsync included (goal ≤ 50 ms).

The real gateway (gateway.service.Gateway on the real monotonic clock) runs the oizumi example's
devices (sim://, pure Python) with its journal in the benchmark's directory (synchronous=FULL),
and a simulated printer that notes the time of each job's first byte. The clock starts when the
bus master is handed the bytes of the press; in between are the journal's commit (fsync), the
model, the link, drawing and encoding the ticket's first piece (gateway.ticket_bytes.
ticket_chunks: the whole kanji job; for raster ESC @, GS P and the bands of the top of the
picture, the rest drawn while the printer prints) and the first write, which carries picture rows
on the raster profile, not just ESC @. The process's CPU time over the same stretch is reported
beside the wall clock (the machine is shared). Baseline, in the same run and directory: one raw
journal commit of an issued ticket (the fsync the path cannot avoid). Run once per printer
profile kind: kanji (58 mm, the example's) and raster (80 mm, the default: drawn with Pillow).

Call latency while a network printer hangs (`hang_latency`): the same gateway on a simulated clock
(the code runs for real, the bus's waits are skipped, as bench/devices.py's call latency), its
raster printer at socket://127.0.0.1 on a real listener that answered status, then stopped reading
(tests/printer_net_support.py) just before a ticket was pressed; counter 1's pad calls next again
and again, timed from its KEY reply handed to the bus master to the CALL written to the bus. Baseline
in the same run: the same floor, same calls, with no printer attached.
"""

from __future__ import annotations

import io
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Result, remove_journal
from gateway.journal import TicketJournal, new_token
from gateway.service import Gateway
from gateway.ticket_bytes import ticket_bytes, ticket_chunks
from hal.codec import P
from hal.printer_sim import SimPrinter, SimPrinterPort
from hal.printer_status import FULL_REQUEST
from office.config import parse_config
from office.estimate import WaitRange
from office.model import CallNext, IssueTicket, OpenCounter, TicketReady
from signage.ticket import ticket_content
from tests.floor_support import FakeClock
from tests.printer_net_support import TcpPrinter, network_gateway, with_printer_at

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 0.050
CALL_GOAL_S = 0.005  # the devices' call latency goal (bench/devices.py), printer hanging or not
CALL_GAP_S = 0.1  # the floor's time between two calls in the hang benchmark
MONDAY_10 = datetime.fromisoformat("2027-03-15T10:00:00+09:00")
SEAL = 1
_KANJI = 'profile = "kanji"\nwidth_mm = 58\ncutter = true\nnative_qr = true'
_RASTER = 'profile = "raster"\nwidth_mm = 80\ncutter = true'


class StampedPrinterPort(SimPrinterPort):
    """Notes perf_counter() and process_time() at the first job byte after `arm()`, and what
    that first write carried."""

    armed = False
    stamp: float | None = None
    cpu_stamp = 0.0
    first_write = b""

    def arm(self) -> None:
        self.armed, self.stamp = True, None

    def write(self, data: bytes) -> int:
        if self.armed and data != FULL_REQUEST:
            self.stamp, self.cpu_stamp, self.armed = time.perf_counter(), time.process_time(), False
            self.first_write = bytes(data)
        return super().write(data)


def _config(profile: str) -> tuple[Any, str]:
    text = (ROOT / "examples" / "oizumi.toml").read_text(encoding="utf-8")
    url = "sim://bus?dispenser=1&counter_pad=5,6,7,8&call_display=16"
    text = text.replace(url, url + "&backend=python")
    if profile == "raster":
        if _KANJI not in text:
            raise RuntimeError("examples/oizumi.toml's [[printers]] changed: update bench/printing.py")
        text = text.replace(_KANJI, _RASTER)
    return parse_config(text, source="oizumi.toml"), text


def press_to_paper(workdir: Path, profile: str, presses: int) -> tuple[list[float], list[float], int]:
    """Seconds from press bytes in to first print byte out, one per press; the process's CPU
    seconds over the same stretch; how many first writes carried raster rows (GS v 0)."""
    config, text = _config(profile)
    journal = workdir / f"print-{profile}.db"
    remove_journal(journal)
    started = time.monotonic()

    def wall() -> datetime:
        return MONDAY_10 + timedelta(seconds=time.monotonic() - started)

    port = StampedPrinterPort(SimPrinter())
    sock = workdir / f"print-{profile}.sock"
    gw = Gateway(config, text, journal, sock, io.StringIO(), wall=wall, printer_opener=lambda url: port)
    gw.start()
    try:
        master = gw.buses[0].master
        receive = master.receive
        arrived: list[tuple[float, float]] = []

        def stamped_receive(data: bytes, now: float) -> Any:
            t, c = time.perf_counter(), time.process_time()
            if any(f.TYPE == P.ButtonPress.TYPE for f in P.Decoder().feed(data)):
                arrived.append((t, c))
                port.arm()
            return receive(data, now)

        master.receive = stamped_receive  # type: ignore[method-assign]
        dispenser = gw.buses[0].port.bus.devices[1]
        deadline = time.monotonic() + 30
        while dispenser.lamps == 0 and time.monotonic() < deadline:
            gw.step()
        assert gw.printing is not None
        line = gw.printing.lines["entrance"]
        gw.handle({"cmd": "open", "counter": "2"})
        out: list[float] = []
        cpu: list[float] = []
        with_rows = 0
        for _ in range(presses):
            done = line.machine.printed
            if not dispenser.press(SEAL):
                raise RuntimeError("the simulated dispenser refused the press")
            while line.machine.printed == done and time.monotonic() < deadline + 600:
                gw.step()
            if port.stamp is None or not arrived:
                raise RuntimeError("no print byte after a press")
            out.append(port.stamp - arrived[-1][0])
            cpu.append(port.cpu_stamp - arrived[-1][1])
            with_rows += b"\x1dv0" in port.first_write
            gw.handle({"cmd": "call", "counter": "2"})  # serve it: the queue stays short, no cut-off
        return out, cpu, with_rows
    finally:
        gw.close()
        remove_journal(journal)


def commit_baseline(workdir: Path, n: int) -> float:
    """Median seconds of one journal commit of an issued ticket (synchronous=FULL)."""
    config, text = _config("kanji")
    path = workdir / "print-baseline.db"
    remove_journal(path)
    times: list[float] = []
    with TicketJournal.create(path, config, text) as journal:
        journal.execute(OpenCounter("2"), MONDAY_10)
        for i in range(n):
            at = MONDAY_10 + timedelta(seconds=i)
            started = time.perf_counter()
            decision = journal.execute(IssueTicket("seal", new_token()), at)
            times.append(time.perf_counter() - started)
            if not decision.events:
                raise RuntimeError(f"baseline ticket refused: {decision.effects}")
            journal.execute(CallNext("2"), at)  # served as in the measured run: no cut-off
    remove_journal(path)
    return statistics.median(times)


def render_encode(profile: str, n: int) -> tuple[float, float]:
    """Median seconds of ticket_content + the first piece of ticket_chunks (the part of the path
    that is the ticket's drawing, not the gateway's), and of ticket_content + the whole job."""
    config, _ = _config(profile)
    printer = config.printers[0]
    first: list[float] = []
    whole: list[float] = []
    for i in range(n):
        ready = TicketReady(f"B-{i + 1:03d}", "seal", i + 1, 1, 0, WaitRange.of_minutes(1, 4), MONDAY_10, new_token())
        started = time.perf_counter()
        next(ticket_chunks(ticket_content(config, ready), printer))
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        ticket_bytes(ticket_content(config, ready), printer)
        whole.append(time.perf_counter() - started)
    return statistics.median(first), statistics.median(whole)


def run(workdir: Path, presses: int, log: list[str]) -> list[Result]:
    results: list[Result] = []
    for profile, paper in (("kanji", "58 mm"), ("raster", "80 mm")):
        base = commit_baseline(workdir, presses)
        wall, cpu, with_rows = press_to_paper(workdir, profile, presses)
        lat = sorted(wall)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        cpu_p50 = statistics.median(cpu)
        first, whole = render_encode(profile, min(presses, 30))
        log.append(
            f"press → first print byte, {profile} {paper}, {presses} presses: p50 {p50 * 1000:.1f} ms "
            f"(CPU {cpu_p50 * 1000:.1f} ms), p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms; "
            f"{with_rows} of {presses} first writes carried raster rows; baseline journal commit (fsync) "
            f"{base * 1000:.2f} ms median in {workdir}; of the path, drawing and encoding the ticket's first "
            f"piece (ticket_content + next(ticket_chunks)) takes {first * 1000:.1f} ms median, the whole "
            f"ticket {whole * 1000:.1f} ms (the rest is drawn while the printer prints)"
        )
        for label, value in (("p50", p50), ("p99", p99)):
            results.append(
                Result(
                    f"Press → first print byte {label}, {profile} {paper}, {presses} presses (fsync included)",
                    f"{value * 1000:.1f} ms" + (f" (CPU {cpu_p50 * 1000:.1f} ms)" if label == "p50" else ""),
                    f"{base * 1000:.2f} ms (one journal commit, fsync)",
                    f"{value / base:.1f}×",
                    "≤ 50 ms",
                    value <= GOAL_S,
                )
            )
    results += hang_latency(workdir, presses, log)
    return results


# -- call latency while a network printer hangs -------------------------------------------------
def calls_beside(workdir: Path, calls: int, hang: bool) -> tuple[list[float], int, list[str]]:
    """Seconds from a KEY (call next) reply in to its CALL out, one per call, on the oizumi floor
    with a hung network printer (`hang`) or none; how many calls came while the ticket's job was
    stuck (before it failed); the print failures' reasons."""
    peer = TcpPrinter()
    _, raster = _config("raster")
    journal = workdir / f"hang-{hang}.db"
    remove_journal(journal)
    clock = FakeClock()
    gw = network_gateway(with_printer_at(raster, peer.url if hang else None), journal, clock, MONDAY_10)
    try:
        return _time_calls(gw, peer, calls, clock)
    finally:
        gw.close()
        peer.close()
        remove_journal(journal)


def stamp_calls(gw: Gateway) -> list[float]:
    """The list that gets, for each call, the seconds from a KEY reply handed to the first bus's
    master to the CALL written to its port (the bus's receive and write wrapped to stamp them)."""
    bus = gw.buses[0]
    key_at: list[float] = []
    out: list[float] = []
    receive, write = bus.master.receive, bus.port.write

    def stamped_receive(data: bytes, now: float) -> Any:
        if any(f.TYPE == P.Key.TYPE for f in P.Decoder().feed(data)):
            key_at.append(time.perf_counter())
        return receive(data, now)

    def stamped_write(data: bytes) -> Any:
        if key_at and any(f.TYPE == P.Call.TYPE for f in P.Decoder().feed(data)):
            out.append(time.perf_counter() - key_at.pop())
        return write(data)

    bus.master.receive = stamped_receive  # type: ignore[method-assign]
    bus.port.write = stamped_write
    return out


def _time_calls(gw: Gateway, peer: TcpPrinter, calls: int, clock: FakeClock) -> tuple[list[float], int, list[str]]:
    """A call every CALL_GAP_S of the floor's time: 200 calls span the stuck job (NET_STALL_S),
    its failure and the reconnects after it (after REOPEN_S, backing off)."""
    devices = gw.buses[0].port.bus.devices
    dispenser, pad, display = devices[1], devices[5], devices[16]
    out = stamp_calls(gw)
    line = gw.printing.lines.get("entrance") if gw.printing else None

    def until(cond: Any) -> None:
        for _ in range(100_000):
            if cond():
                return
            peer.serve()
            gw.step()
        raise RuntimeError("the gateway never got there")

    until(lambda: dispenser.lamps == 0b1111)
    peer.reading = False  # it hangs: accepts, never reads again
    gw.handle({"cmd": "open", "counter": "1"})
    assert gw.journal is not None
    if not dispenser.press(SEAL):  # its raster job (~37 KB) sticks in the buffers on the way
        raise RuntimeError("the simulated dispenser refused the press")
    until(lambda: line is None or line.bytes_out > 0)
    stuck = 0
    for i in range(calls):
        gw.journal.execute(IssueTicket(("move", "seal")[i % 2], new_token()), gw.wall())
        pad.key(P.KEY_CALL_NEXT)
        until(lambda n=i: len(out) > n)
        stuck += line is not None and line.machine.failed == 0
        gap = clock.now() + CALL_GAP_S
        until(lambda end=gap: clock.now() >= end)
    if len(display.calls) < calls:
        raise RuntimeError(f"the display got {len(display.calls)} CALLs for {calls} calls")
    reasons = [r for _, r in sorted(gw.journal.office.state.unprinted.items())]
    return out, stuck, reasons


def hang_latency(workdir: Path, calls: int, log: list[str]) -> list[Result]:
    bare, _, _ = calls_beside(workdir, calls, hang=False)
    hung, stuck, reasons = calls_beside(workdir, calls, hang=True)
    b50, b99 = _pct(bare, 0.50), _pct(bare, 0.99)
    h50, h99 = _pct(hung, 0.50), _pct(hung, 0.99)
    log.append(
        f"call latency while a network printer hangs, {calls} calls: p50 {h50 * 1000:.2f} ms, p99 "
        f"{h99 * 1000:.2f} ms, max {max(hung) * 1000:.2f} ms ({stuck} of them while its ticket's job was "
        f"stuck, the rest after it failed: {'; '.join(reasons) or 'no failure'}); no printer: p50 "
        f"{b50 * 1000:.2f} ms, p99 {b99 * 1000:.2f} ms, max {max(bare) * 1000:.2f} ms"
    )
    return [
        Result(
            f"Call latency p99 while a network printer hangs, {calls} calls (KEY in → CALL out)",
            f"{h99 * 1000:.2f} ms (p50 {h50 * 1000:.2f} ms)",
            f"{b99 * 1000:.2f} ms (p50 {b50 * 1000:.2f} ms), no printer attached",
            f"{h99 / b99:.2f}×",
            "p99 ≤ 5 ms",
            h99 <= CALL_GOAL_S,
        )
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
