"""What a long-running gateway or central keeps must not grow with the events it has read: the
soak's month (bench/soak.py, docs/benchmarks.md "Soak") found the predictor's reader keeping the
parsed moment of every distinct `ts` it had ever read (up to 65,536 of them, ~250 bytes each),
in the gateways' estimators, central's floor and central's daily learning alike.
"""

from __future__ import annotations

import gc
import tracemalloc
from datetime import datetime, timedelta, timezone

from office.waittime import records as r

JST = timezone(timedelta(hours=9))


def _records(n: int) -> list[dict[str, object]]:
    """`n` public `ticket_issued` records, each at a moment of its own (a month of a busy office)."""
    start = datetime(2027, 6, 1, 8, 30, tzinfo=JST)
    return [
        {
            "v": r.LOG_VERSION,
            "seq": i + 1,
            "type": "ticket_issued",
            "ts": (start + timedelta(seconds=37 * i, milliseconds=i % 1000)).isoformat(timespec="milliseconds"),
            "office": "nerima",
            "ticket": f"A-{i % 999 + 1:03d}",
            "service": "move",
            "number": i % 999 + 1,
        }
        for i in range(n)
    ]


def test_reading_records_keeps_nothing_per_record() -> None:
    records = _records(20_000)
    first = r.read_record(records[0])
    assert first is not None and first.t == 8 * 3600 + 30 * 60  # read, and the moment is right
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for rec in records:
            r.read_record(rec)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # The records themselves are the caller's; what reading them left behind must not grow with
    # them (20,000 distinct moments kept: ~5 MB).
    assert kept < 512 * 1024, f"reading 20,000 records kept {kept / 2**20:.1f} MB"


def test_a_moment_read_again_is_the_same() -> None:
    ts = "2027-06-01T09:15:30.250+09:00"
    assert r.moment(ts) == ("2027-06-01", 9 * 3600 + 15 * 60 + 30.25)
    assert r.moment(ts) == r.moment(str(ts))
