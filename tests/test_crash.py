"""SIGKILL the journal's writer at random moments; nothing acknowledged may be lost.

The worker (tests/crash_worker.py) hammers a real journal file; the harness
(tests/crash_harness.py) kills it after a seeded number of ack lines and checks the journal
after every kill. CRASH_KILLS sets the number of kills (default 50; `bench/run.py` runs 500).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.crash_harness import run_crash_loop

KILLS = int(os.environ.get("CRASH_KILLS", "50"))


@pytest.mark.slow
def test_sigkill_never_loses_an_acknowledged_operation(tmp_path: Path) -> None:
    report = run_crash_loop(tmp_path, KILLS, seed=20270315)
    assert report.kills == KILLS
    # The run did real work: many acknowledged commands over several business days, and the
    # reopenings exercised recovery from snapshots.
    assert report.acked_commands >= 10 * KILLS
    assert report.stored_events >= report.acked_events
    assert report.stored_events - report.acked_events <= 4 * report.unacked_tails
    assert report.days >= 2
    assert report.snapshot_recoveries >= KILLS // 2


@pytest.mark.slow
def test_the_harness_catches_an_ack_before_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that acknowledges before it stores must be caught: the checks can fail."""
    monkeypatch.setenv("CRASH_WORKER_FAULT", "ack_before_commit")
    with pytest.raises(AssertionError, match="is lost"):
        run_crash_loop(tmp_path, 40, seed=7, max_acks=30)
