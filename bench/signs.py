"""The gateway's signs (gateway.signs): what driving them costs the gateway's loop.

- workload: the Nerima rush day (bench/rushday.py) replayed on the in-memory office model, one
  command per loop turn (no SQLite, no bus: every turn is a change, the signs' worst case).
- snapshot: `SignDriver.tick` after every `every`-th command of the day, which builds the
  `BoardSnapshot` on the loop (and encodes it for the renderer). Median and p95; baseline,
  interleaved: the same command's `Office.execute` (decide and apply, in memory), the loop's own
  least work per command. No goal was set (the issue says "cheap"): compare it with the 50 ms bus
  cycle; there is at most one snapshot per loop turn, however many changes the turn made.
- wake-up: each turn executes a command, ticks, then waits 2.5 ms in `select` on an idle socket
  (a bus reply's time-out) and measures how late it wakes, while two 1080p boards (an RGB565
  framebuffer file and a PNG file) are drawn from every snapshot: by the renderer process (what
  the gateway does), and for comparison by the same workers as threads in the loop's process
  (what it does not do: their Python and Pillow work holds the interpreter's lock). Baseline,
  interleaved: the same turns with no signs. p99 of the lateness, and the median turn's work.
"""

from __future__ import annotations

import contextlib
import select
import socket
import statistics
import time
from pathlib import Path

from bench.common import Result, nerima, rush_steps
from bench.rushday import Step
from gateway.sign_worker import SignSpec, SignWorker, make_target
from gateway.signs import SignDriver
from office.model import Office, OfficeError
from signage.board import LANDSCAPE

WAIT_S = 0.0025  # a bus reply's time-out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _execute(office: Office, step: Step) -> None:
    with contextlib.suppress(OfficeError):  # refused as on the day (the rush day's cut-off refusals)
        office.execute(step.command, step.at)


def _framebuffer(workdir: Path) -> tuple[Path, Path]:
    sysfs = workdir / "sysfs" / "fb0"
    sysfs.mkdir(parents=True, exist_ok=True)
    (sysfs / "virtual_size").write_text(f"{LANDSCAPE[0]},{LANDSCAPE[1]}")
    (sysfs / "bits_per_pixel").write_text("16")
    (sysfs / "stride").write_text(str(LANDSCAPE[0] * 2))
    device = workdir / "fb0"
    device.write_bytes(bytes(LANDSCAPE[0] * LANDSCAPE[1] * 2))
    return device, sysfs


Mode = str  # "none" | "process" | "threads"


def _turns(steps: list[Step], mode: Mode, workdir: Path) -> tuple[list[float], list[float]]:
    """(work per turn, lateness of the 2.5 ms wait per turn) over `steps`."""
    config = nerima()[0]
    office = Office(config)
    specs = _specs(workdir, mode)
    driver = SignDriver(config, specs if mode == "process" else [])
    workers = [SignWorker(s.id, make_target(s)) for s in specs] if mode == "threads" else []
    a, b = socket.socketpair()
    work, late = [], []
    try:
        for step in steps:
            started = time.perf_counter()
            _execute(office, step)
            snap = driver.tick(office, step.at)
            if snap is not None:
                for w in workers:
                    w.submit(snap)
            waited = time.perf_counter()
            select.select([a], [], [], WAIT_S)
            work.append(waited - started)
            late.append(time.perf_counter() - waited - WAIT_S)
        assert driver.drain(120.0) and all(w.drain(120.0) for w in workers)
    finally:
        driver.close()
        for w in workers:
            w.close()
        a.close()
        b.close()
    return work, late


def _specs(workdir: Path, mode: Mode) -> list[SignSpec]:
    if mode == "none":
        return []
    device, sysfs = _framebuffer(workdir)
    return [
        SignSpec("fb", "board", LANDSCAPE, device, sysfs),
        SignSpec("png", "board", LANDSCAPE, workdir / "board.png", None),
    ]


def run(workdir: Path, log: list[str], every: int = 10) -> list[Result]:
    config = nerima()[0]
    steps: list[Step] = list(rush_steps())

    office = Office(config)
    driver = SignDriver(config, [])  # no signs: only the snapshot
    build, base = [], []
    for i, step in enumerate(steps):
        if i % every:
            _execute(office, step)
            continue
        started = time.perf_counter()
        _execute(office, step)
        base.append(time.perf_counter() - started)
        started = time.perf_counter()
        driver.tick(office, step.at)
        build.append(time.perf_counter() - started)

    chunk = steps[2000 : 2000 + max(len(steps) // every, 200)]  # from mid-morning: a full floor
    runs: dict[str, list[tuple[list[float], list[float]]]] = {m: [] for m in ("none", "process", "threads")}
    for mode in ("none", "process", "none", "threads", "none"):
        runs[mode].append(_turns(chunk, mode, workdir))

    def merged(mode: str, i: int) -> list[float]:
        return [v for r in runs[mode] for v in r[i]]

    def p99(values: list[float]) -> float:
        return statistics.quantiles(values, n=100)[-1]

    b_med, s_med = statistics.median(build), statistics.median(base)
    late = {m: p99(merged(m, 1)) for m in runs}
    work = {m: statistics.median(merged(m, 0)) for m in runs}
    log.append(
        f"signs snapshot: {len(build)} snapshots over the rush day, build median {_ms(b_med)}, "
        f"p95 {_ms(statistics.quantiles(build, n=20)[-1])}, max {_ms(max(build))}; "
        f"Office.execute of the same commands median {_ms(s_med)}"
    )
    log.append(
        f"signs wake-up: {len(chunk)} turns per run, a snapshot every turn; lateness of a 2.5 ms wait, p99: "
        f"no signs {_ms(late['none'])}, renderer process {_ms(late['process'])}, worker threads in the "
        f"loop's process {_ms(late['threads'])}; median work per turn {_ms(work['none'])} / "
        f"{_ms(work['process'])} / {_ms(work['threads'])}"
    )
    return [
        Result(
            "Signs: snapshot built on the loop per change",
            _ms(b_med),
            f"{_ms(s_med)} (Office.execute, in memory)",
            f"{b_med / s_med:.1f}×",
            "—",
            None,
        ),
        Result(
            "Signs: loop wake-up lateness while two boards render (p99)",
            f"{_ms(late['process'])} (renderer process)",
            f"{_ms(late['none'])} (no signs)",
            f"{late['process'] / late['none']:.1f}× (threads: {late['threads'] / late['none']:.1f}×)",
            "—",
            None,
        ),
    ]
