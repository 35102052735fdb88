"""The SIGKILL crash run at bench scale: the crash test's harness with many more kills."""

from __future__ import annotations

from pathlib import Path

from bench.common import Result
from tests.crash_harness import run_crash_loop


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
        )
    ]
