"""What a long-running gateway or central keeps must not grow with the events it has read, day
after day. The soak's month (bench/soak.py, docs/benchmarks.md "Soak") found:

- the predictor's reader keeping the parsed moment of every distinct `ts` it had ever read (up to
  65,536 of them, ~250 bytes each), in the gateways' estimators, central's floor and central's
  daily learning alike;
- central's training in a thread of the worker's process, which left the worker's heap as large
  as the largest training's (the history read and replayed), growing with the history;
- the predictor's call durations and its tables of expected arrivals by minute as lists of float
  objects (32 bytes a value; a month's predictor held ~3 MB of them, in each gateway and in
  central, replaced every day);
- glibc's malloc arenas, one per thread, each keeping free memory the others never reuse, and its
  mmap threshold rising as large blocks were freed, so that later ones settled in the heap;
- each journal connection's page cache at SQLite's default 2 MB, filling with days nothing reads
  again as the file grows;
- smaller ones: the event log's formatted minutes (4,096 before the cache started afresh), the
  office model's plan of every day it ever worked one out for, and a simulated call display
  keeping every call it showed.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import threading
import tracemalloc
from array import array
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from central.learning import Trainer
from central.store import open_store
from counterfloor.demo_floor import open_days_before
from counterfloor.simulate import record_day
from gateway.heap import ARENAS, MMAP_THRESHOLD, tune_malloc
from gateway.journal import CACHE_KIB, JournalReader, TicketJournal
from hal.codec import P
from hal.simdevice import CALLS_KEPT, SimDevice
from office import congestion
from office import events as ev
from office.calendar import plan_for
from office.model import PLANS_KEPT, Office
from office.waittime import records as r
from office.waittime import split_days, train
from office.waittime.forecast import _time_of
from office.waittime.params import Durations, expected_by
from office.waittime.predictors import Best
from office.waittime.records import from_events
from office.waittime.replay import replay
from tests.central_support import day_records, example
from tests.conftest import EXAMPLES

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


# -- central's training ----------------------------------------------------------------------------
def _store_with_days(tmp_path: Path, office: str, before: date, days: int) -> str:
    """A central store holding `days` simulated open days of `office` before `before`; its URL."""
    config = example(office)
    url = str(tmp_path / "central.sqlite")
    seq = 0
    with open_store(url) as store:
        for day in open_days_before(config, before, days):
            records = day_records(config, day, first_seq=seq + 1)
            seq += len(records)
            store.append(config.id, records)
    return url


def _training_processes() -> list[str]:
    return [p.name for p in multiprocessing.active_children() if p.name == "central-training"]


def test_training_leaves_nothing_of_the_history_in_the_workers_process(tmp_path: Path) -> None:
    """The history read and replayed goes through the training process only: in the worker's
    process the training's peak is the predictor it gets back (in a thread of the worker, 6 days
    of a busy office took 3 MB more at the peak, and 60 days ten times that, growing the heap)."""
    before = date(2027, 3, 15)
    url = _store_with_days(tmp_path, "oizumi", before, 6)
    gc.collect()
    tracemalloc.start()
    trainer = Trainer(url, 60, lambda: None)
    try:
        trainer.start()
        trainer.request("oizumi", before.isoformat())
        trained = trainer.done.get(timeout=120)
        assert isinstance(trained.predictor, Best) and trained.days == 6
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
        # Once nothing waits, the training process has ended (its memory back to the system)
        # before the result is handed over; the next job starts another.
        assert trainer.processes == 1 and not trainer.training and not _training_processes()
        trainer.request("oizumi", before.isoformat())
        assert isinstance(trainer.done.get(timeout=120).predictor, Best)
        assert trainer.processes == 2 and not trainer.training and not _training_processes()
    finally:
        tracemalloc.stop()
        trainer.stop()
    assert peak - kept < 1024 * 1024, f"training took {(peak - kept) / 2**20:.1f} MB beyond the predictor here"


def test_training_jobs_run_one_process_and_a_failure_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = str(tmp_path / "not-a-store.sqlite")
    Path(url).write_text("not a database")
    trainer = Trainer(url, 60, lambda: None)
    with caplog.at_level(logging.ERROR, logger="central.learning"):
        trainer.request("oizumi", "2027-03-15")
        trainer.request("nerima", "2027-03-15")
        trainer.start()
        try:
            results = [trainer.done.get(timeout=120) for _ in range(2)]
        finally:
            trainer.stop()
    assert {(t.office, t.predictor) for t in results} == {("oizumi", None), ("nerima", None)}
    failed = [rec.getMessage() for rec in caplog.records if "training for 2027-03-15 failed" in rec.getMessage()]
    assert len(failed) == 2 and all("StoreError" in m for m in failed), failed  # the process's traceback
    assert trainer.processes == 1 and not _training_processes()  # both jobs in one process, ended


def test_stopping_the_trainer_ends_the_training_under_way(tmp_path: Path) -> None:
    before = date(2027, 3, 15)
    url = _store_with_days(tmp_path, "oizumi", before, 4)
    trainer = Trainer(url, 60, lambda: None)
    started = threading.Event()
    child_for_job = trainer._child_for_job

    def starting() -> Any:
        child = child_for_job()
        started.set()
        return child

    trainer._child_for_job = starting  # type: ignore[method-assign]
    trainer.request("oizumi", before.isoformat())
    trainer.start()
    assert started.wait(60)
    trainer.stop(timeout=30)
    assert not trainer._thread.is_alive() and not trainer.training and not _training_processes()


# -- the predictor's call durations --------------------------------------------------------------------
def test_call_durations_take_two_doubles_a_sample() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(5.5, 0.6) for _ in range(50_000)]  # 60 days of a busy office
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        durations = Durations.of(samples)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 17 * len(samples), f"{kept / len(samples):.0f} bytes a sample"  # lists of floats: 64
    # And the questions are answered as before: the mean time left past `elapsed`, scaled.
    xs = sorted(samples)
    for elapsed, scale in ((0.0, 1.0), (200.0, 1.0), (300.0, 1.3), (900.0, 0.8), (xs[-1] * 2, 1.0)):
        e = elapsed / scale
        rest = [x for x in xs if x > e]
        expected = scale * (sum(rest) / len(rest) - e) if rest else None
        got = durations.mean_left(elapsed, scale)
        assert (got is None) == (expected is None) and (got is None or got == pytest.approx(expected, rel=1e-9))
    assert Durations().mean_left(10.0, 1.0) is None and not Durations().sorted


def test_a_predictors_minute_tables_are_doubles_and_it_predicts_as_before() -> None:
    """The expected arrivals by minute, per service and kind of day: 1,441 values each, a list of
    float objects took 46 kB (a predictor learned from a month: ~1 MB of them, in each gateway and
    in central, replaced every day)."""
    config = example("nerima")
    days = [
        from_events(record_day(config, d, seed=3).events, config.id)
        for d in open_days_before(config, date(2027, 7, 1), 4)
    ]
    predictor = train("best", split_days([e for day in days[:3] for e in day]))
    assert isinstance(predictor, Best)
    params = predictor.params
    tables = [t for by_kind in params.flows.values() for pair in by_kind.values() for t in pair]
    tables += [t for m in params.services.values() for t in (m.arrivals, m.jumps)]
    assert len(tables) > 20 and all(isinstance(t, array) and t.typecode == "d" for t in tables)
    # What the tables answer, as the lists did: the expected count by a moment, and the moment of a count.
    flow = params.flow("office", "certificate")[0]
    as_list = list(flow)
    for t in (0.0, 8.5 * 3600, 10 * 3600 + 17.0, 16 * 3600, 30 * 3600):
        assert expected_by(flow, t) == expected_by(as_list, t)
    for y in (0.5, 10.0, as_list[-1] / 2, as_list[-1] + 1):
        assert _time_of(flow, y) == _time_of(as_list, y)
    assert sum(1 for _ in replay(days[3], predictor)) > 100


# -- simulated devices ------------------------------------------------------------------------------------
def test_a_simulated_display_keeps_its_latest_calls_only() -> None:
    display = SimDevice(P.KIND_CALL_DISPLAY, 16)
    shown = 3 * CALLS_KEPT
    for n in range(shown):
        display.receive(P.Call(16, n % 250 + 1, P.CALL_NEW, f"A-{n % 1000:03d}", str(n % 9 + 1)).to_bytes())
    assert display.requests == shown  # every one acted on
    assert len(display.calls) == CALLS_KEPT  # the latest, oldest first
    assert display.calls[-1] == (P.CALL_NEW, f"A-{(shown - 1) % 1000:03d}", str((shown - 1) % 9 + 1))
    assert display.calls[0] == (P.CALL_NEW, f"A-{(shown - CALLS_KEPT) % 1000:03d}", str((shown - CALLS_KEPT) % 9 + 1))


# -- the office model ---------------------------------------------------------------------------------------
def test_an_office_keeps_a_few_day_plans_not_one_a_day() -> None:
    config = example("nerima")
    office = Office(config)
    first = date(2027, 6, 1)
    for n in range(3 * 365):  # three years of a gateway, a plan a day
        day = first + timedelta(days=n)
        assert office.plan(day) == plan_for(config, day)
    assert len(office._plans) <= PLANS_KEPT


# -- the C heap -----------------------------------------------------------------------------------------------
_THREADS_ALLOCATE = """
import ctypes, sys, threading
from gateway.heap import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc()
both = threading.Barrier(9)
def work():
    kept = [bytearray(4096) for _ in range(16)]  # through malloc (beyond Python's small objects)
    both.wait()
    both.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
both.wait()
ctypes.CDLL(None).malloc_stats()  # glibc's: "Arena N:" and its figures for each arena, on stderr
both.wait()
for t in threads:
    t.join()
"""

_LARGE_BLOCKS = """
import ctypes, sys
from gateway.heap import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
yesterdays = bytearray(1 << 20)  # a large block, freed (yesterday's predictor's arrays)
del yesterdays
before = mallinfo2().hblks  # blocks mapped apart, given back when freed
todays = bytearray(400 * 1024)
print(mallinfo2().hblks - before)
"""


def _glibc(script: str, mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return subprocess.run(
        [sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, timeout=60, check=True
    )


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")


@glibc_only
def test_a_long_running_process_shares_two_malloc_arenas_among_its_threads() -> None:
    def arenas(mode: str) -> int:
        return sum(line.startswith("Arena ") for line in _glibc(_THREADS_ALLOCATE, mode).stderr.splitlines())

    assert arenas("default") > ARENAS  # glibc's default: an arena for each thread that allocates
    assert arenas("tuned") <= ARENAS


@glibc_only
def test_a_large_block_is_mapped_apart_even_after_a_larger_one_was_freed() -> None:
    assert MMAP_THRESHOLD < 400 * 1024
    assert _glibc(_LARGE_BLOCKS, "default").stdout.split() == ["0"]  # the threshold rose: from the heap
    assert _glibc(_LARGE_BLOCKS, "tuned").stdout.split() == ["1"]


def test_the_operators_malloc_settings_stand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert tune_malloc() == []


# -- the event log's moments -----------------------------------------------------------------------------------
def test_formatting_a_weeks_moments_keeps_a_few_hundred_kilobytes() -> None:
    """format_ts keeps each minute's text: six open days of an office's minutes (600 a day) must not
    all stay (4,096 minutes kept took 1.2 MB, from empty to full over a week, then empty again)."""
    start = datetime(2027, 6, 1, 8, 30, tzinfo=JST)
    moments = [start + timedelta(days=d, minutes=m, seconds=17, milliseconds=250) for d in range(6) for m in range(600)]
    ev._TS_PARTS.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        texts = [ev.format_ts(t) for t in moments]
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before - sum(sys.getsizeof(t) for t in texts) - sys.getsizeof(texts)
    finally:
        tracemalloc.stop()
    assert kept < 512 * 1024, f"formatting {len(moments):,} minutes' moments kept {kept / 2**20:.2f} MB"
    assert texts == [t.isoformat(timespec="milliseconds") for t in moments]


# -- the journal ----------------------------------------------------------------------------------------------
def test_a_journals_page_cache_is_a_day_or_two_not_sqlites_default(tmp_path: Path) -> None:
    config = example("nerima")
    path = tmp_path / "office.db"
    TicketJournal.create(path, config, (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")).close()
    journal = TicketJournal.open(path)
    try:
        assert journal.conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
        with JournalReader(path) as reader:
            assert reader.conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
    finally:
        journal.close()
    assert CACHE_KIB <= 1024  # SQLite's default is 2,000 KiB: filled with days nothing reads again


# -- central's congestion forecast -------------------------------------------------------------------
def _same_day_again(records: list[dict[str, Any]], days: int) -> Any:
    """`records` (one day's) played again on each of `days` days in a row, made as they are read,
    as central's store hands its pages over."""
    first = str(records[0]["ts"])[:10]
    seq = 0
    for i in range(days):
        day = (date.fromisoformat(first) + timedelta(days=i)).isoformat()
        for rec in records:
            seq += 1
            again = {**rec, "seq": seq, "ts": str(rec["ts"]).replace(first, day, 1)}
            if "date" in rec:
                again["date"] = day
            yield again


def _learning_peak(records: list[dict[str, Any]], days: int) -> tuple[int, int]:
    """(days learned, tracemalloc's peak) of learning the forecast's history from `days` days."""
    gc.collect()
    tracemalloc.start()
    try:
        stats = congestion.stats_from_records(_same_day_again(records, days))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return len(stats), peak


def test_learning_the_forecast_holds_one_days_events_at_a_time() -> None:
    """The public page's forecast learns from an office's whole history (a year and more, for the
    season): it must hold one day's events at a time, not months of them."""
    records = day_records(example("nerima"), date(2027, 6, 1), first_seq=1)
    few, few_peak = _learning_peak(records, 2)
    many, many_peak = _learning_peak(records, 24)
    assert (few, many) == (2, 24)  # each copy read as a day of its own
    # 24 days of typed events held at once would be ~12 times the two days' peak.
    assert many_peak < 1.5 * few_peak, (
        f"2 days: {few_peak / 2**20:.1f} MB at the peak, 24 days: {many_peak / 2**20:.1f} MB"
    )
