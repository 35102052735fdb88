"""The SIGKILL crash runs at bench scale, the crash tests' harnesses with many more kills: the
journal's writer (tests/crash_harness.py), and the whole gateway while the real board firmware
keeps pressing (tests/press_crash_harness.py: a press is acted on once across a restart)."""

from __future__ import annotations

from pathlib import Path

from bench.common import Result
from hal.firmware_sim import find_micropython
from tests.crash_harness import run_crash_loop
from tests.press_crash_harness import run_press_crash


def run(workdir: Path, kills: int, seed: int, log: list[str]) -> list[Result]:
    crash_dir = workdir / "crash"
    crash_dir.mkdir(exist_ok=True)
    report = run_crash_loop(crash_dir, kills, seed)  # raises AssertionError on any violation
    per_kill = sorted(report.worker_seconds)[len(report.worker_seconds) // 2]
    log.append(
        f"crash run: {report.kills} kills in {report.seconds:.1f} s (median {per_kill * 1000:.0f} ms per worker "
        f"life, mostly interpreter start); {report.acked_commands:,} commands acknowledged with "
        f"{report.acked_events:,} events, {report.stored_events:,} events stored over {report.days} business days; "
        f"{report.unacked_tails} kills fell between a commit and its ack (the one command then stored but not "
        f"acknowledged), {report.startup_kills} during create/open/recovery; "
        f"{report.snapshot_recoveries} reopenings started from a snapshot of the day"
    )
    return [
        Result(
            f"SIGKILL crash run ({report.kills} kills, seed {seed})",
            f"0 violations; {report.acked_commands:,} acked commands, all stored",
            f"{report.stored_events:,} events checked",
            "—",
            "no acked op lost, seq gapless, reopen == replay",
            True,
        ),
        *press_run(workdir, kills, seed, log),
    ]


def press_run(workdir: Path, kills: int, seed: int, log: list[str]) -> list[Result]:
    """The gateway process SIGKILLed `kills` times with a dispenser and a counter pad (real
    firmware under MicroPython) pressing throughout: 0 double tickets or calls, nothing lost."""
    if find_micropython() is None:
        log.append("press crash run: not run, micropython missing (uv sync)")
        return []
    press_dir = workdir / "press-crash"
    press_dir.mkdir(exist_ok=True)
    report = run_press_crash(press_dir, kills, seed)  # raises AssertionError on any violation
    per_life = sorted(report.worker_seconds)[len(report.worker_seconds) // 2]
    stored = sum(report.stored.values())
    log.append(
        f"press crash run: {report.kills} kills of the gateway process in {report.seconds:.1f} s (median "
        f"{per_life * 1000:.0f} ms per life, mostly interpreter start): {report.hook_kills} right after a press's "
        f"commit and before its ack (the worker's own hook), {report.line_kills} on a line of its output, "
        f"{report.startup_kills} while it started; {report.presses:,} presses made, {stored:,} stored "
        f"({report.tickets:,} tickets, {report.calls:,} calls; the others refused by the boards while the "
        f"gateway was away); {report.met_again} presses met again after a restart, found stored and "
        f"acknowledged without acting; double tickets or calls: {report.doubles}"
    )
    return [
        Result(
            f"SIGKILL press crash run ({report.kills} kills, seed {seed})",
            f"{report.doubles} double tickets/calls; {stored:,} presses stored, none lost",
            f"{report.met_again} presses met again after a kill",
            "—",
            "each press acted on once, nothing acknowledged lost",
            report.doubles == 0,
        )
    ]
