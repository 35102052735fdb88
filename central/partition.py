"""Which central worker owns which office: offices partitioned over N workers by a stable hash.

Owns one rule: office `o` belongs to worker `crc32(o) % N`. CRC-32 (zlib) and not Python's
`hash()`, which is salted per process (PYTHONHASHSEED): every worker process, on every host and
after every restart, must agree on the owner, or an office's events would be processed on two
workers at once, or on none. Pure.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field


def worker_of(office: str, workers: int) -> int:
    """The index (0…workers-1) of the worker that owns `office`."""
    if workers < 1:
        raise ValueError(f"workers must be 1 or more (got {workers})")
    return zlib.crc32(office.encode("utf-8")) % workers


@dataclass(slots=True)
class Partition:
    """One worker's share: `index` of `workers`. `owns` is asked for every message a worker
    receives (it subscribes to every office and drops the others'), so answers are cached."""

    index: int
    workers: int
    _known: dict[str, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.workers:
            raise ValueError(f"worker index must be 0…{self.workers - 1} (got {self.index})")

    def owns(self, office: str) -> bool:
        mine = self._known.get(office)
        if mine is None:
            if len(self._known) > 100_000:  # topics with made-up office ids must not grow it for ever
                self._known.clear()
            mine = self._known[office] = worker_of(office, self.workers) == self.index
        return mine

    def __str__(self) -> str:
        return f"{self.index}/{self.workers}"  # "0/2": worker 0 of 2
