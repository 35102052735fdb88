"""Noticing that the wall clock jumped: the monotonic clock never does, so a change of the
difference between the two is a step of the wall clock (NTP correcting a Pi that booted with a
wrong time, a clock set by hand), never the floor's own doing.

Pure: the caller reads both clocks and says what to do with a step (the gateway records it in
the journal as a `clock_stepped` event and logs it). The office model then keeps the rules: a
step forward is followed (a new business day opens only if the date really changed), a step
back is held (events never go back in time, so the day stays today).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Steps smaller than this are not reported: NTP slews small errors gradually, and a loop turn
# that stalls moves both clocks alike. A step of a Pi's clock at boot is seconds to hours.
STEP_TOLERANCE_S = 2.0


@dataclass(frozen=True, slots=True)
class ClockStep:
    expected: datetime  # what the wall clock would show had it not jumped
    now: datetime  # what it shows

    @property
    def step_s(self) -> float:
        return (self.now - self.expected).total_seconds()


class ClockWatch:
    """Compares each reading of the wall clock with the one before, advanced by the monotonic
    clock's count since; a difference beyond the tolerance is a step. Re-anchored at every
    reading, so the slow slew of a clock being disciplined never adds up to a false step."""

    def __init__(self, tolerance_s: float = STEP_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._anchor: tuple[datetime, float] | None = None

    def check(self, wall: datetime, mono: float) -> ClockStep | None:
        anchor, self._anchor = self._anchor, (wall, mono)
        if anchor is None:
            return None
        expected = anchor[0] + timedelta(seconds=mono - anchor[1])
        if abs((wall - expected).total_seconds()) <= self.tolerance_s:
            return None
        return ClockStep(expected, wall)
