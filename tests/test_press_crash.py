"""SIGKILL the real gateway while presses keep coming from the real board firmware: each press is
acted on once, and none a board was told is stored is lost (docs/protocol.md, "Sequence numbers,
retries and duplicates").

The harness (tests/press_crash_harness.py) keeps a dispenser and a counter pad running under
MicroPython on a pty hub, presses their keys the whole time, and kills the gateway process
(tests/press_crash_worker.py) again and again: right after a press's commit and before its ack
(the worker's own hook), on a line of its output, or while it starts; it checks the journal after
every kill. PRESS_CRASH_KILLS sets the number of kills (default 60; `bench/run.py` runs 500).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hal.firmware_sim import find_micropython
from tests.press_crash_harness import run_press_crash

KILLS = int(os.environ.get("PRESS_CRASH_KILLS", "60"))

needs_micropython = pytest.mark.skipif(
    find_micropython() is None, reason="MicroPython Unix port not installed (uv sync)"
)


@pytest.mark.slow
@needs_micropython
def test_sigkill_between_storing_a_press_and_its_ack_never_makes_a_second_ticket(tmp_path: Path) -> None:
    report = run_press_crash(tmp_path, KILLS, seed=20270315)
    assert report.kills == KILLS and report.doubles == 0
    # Every way of dying happened, the window was hit by the hook each time it was asked to, and
    # the presses met again after those kills were acknowledged without a second ticket or call.
    assert report.hook_kills >= KILLS // 4 and report.line_kills >= KILLS // 4 and report.startup_kills >= 1
    assert report.overdue_kills == 0
    assert report.met_again >= report.hook_kills
    # Both boards' presses were stored, many of them: the run did real work.
    assert report.stored[1] >= KILLS and report.stored[5] >= KILLS // 2
    assert report.tickets == report.stored[1] and report.calls == report.stored[5]


@pytest.mark.slow
@needs_micropython
def test_the_harness_catches_a_press_acted_on_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway that acts again on a press it finds stored must be caught: the checks can fail."""
    monkeypatch.setenv("CRASH_WORKER_FAULT", "execute_again")
    with pytest.raises(AssertionError, match=r"a double (ticket|call)"):
        run_press_crash(tmp_path, 12, seed=5)
