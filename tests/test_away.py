"""Residents who step away with alerts on (counterfloor/away.py) in the simulator: who leaves, when
they are alerted, that a resident not back does not answer, and the figures the timeliness
benchmark (bench/alerts_timeliness.py) reports — on one simulated Nerima day."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bench.alerts_timeliness import run_day
from counterfloor.away import Away, SteppingAway
from office.config import OfficeConfig

DAY = date(2027, 6, 8)  # a Tuesday


def test_a_resident_away_answers_only_once_back() -> None:
    away = SteppingAway.__new__(SteppingAway)  # only `present` and its table: no estimator needed
    away.away = {"A-001": Away("A-001", "move", left_at=100, back_after_s=300)}
    away.away["A-001"].alerted_at = 1000
    assert not away.present("A-001", 1100)  # called 100 s after the alert: still on the way back
    assert away.away["A-001"].first_called_at == 1100
    assert away.present("A-001", 1300)  # a recall after they are back
    assert away.present("B-001", 0)  # never left
    # Not alerted before the call: the call itself brings them back.
    away.away["C-001"] = Away("C-001", "move", left_at=100, back_after_s=240)
    assert not away.present("C-001", 2000) and away.present("C-001", 2240)


@pytest.fixture(scope="module")
def figures(nerima: OfficeConfig) -> dict[str, Any]:
    return run_day(nerima, DAY, 1, False, 10)


def test_a_day_with_residents_stepping_away(figures: dict[str, Any]) -> None:
    """Long waits make residents leave; every one of them is called by the end of the day and
    each gets an alert or is counted as called first; the shares are shares of them."""
    away, called = int(figures["away"]), int(figures["called"])
    assert away > 20 and called == away
    for key in ("notice", "late", "baseline_notice", "baseline_late"):
        assert 0.0 <= float(figures[key]) <= 1.0
    # Alerted residents come back in 2–8 minutes: an alert with 10 minutes' notice (and the
    # margin) leaves them time, so few miss their first call — but some do (short notice).
    assert 0 <= int(figures["missed_first_call"]) < called * (1 - float(figures["notice"])) + 1
    assert len(figures["notice_s"]) == called and all(n >= 0 for n in figures["notice_s"])
