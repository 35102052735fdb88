"""A damaged journal can still be read (issue 12): salvage and `office export` on damaged copies.

Real journals are built by TicketJournal from seeded commands, then damaged in copies: cut short
(by one byte, and by half), an events page zeroed, the events table's root page zeroed, bytes
flipped inside stored bodies and anywhere in a page, the database header flipped, with and
without a WAL. What the salvage finds is checked against what the intact file held where the
damage did not reach. Which rows lived on which page is found by this file's own walk of the
intact file's b-tree, from the events table's root page down, not by the code under test (which
scans pages without walking the tree).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.journal import JournalCorrupt, JournalError, NotAJournal, TicketJournal
from gateway.salvage import Salvage, Tally, writer_alive
from office import events as ev
from office.config import load_config
from office.model import OfficeError
from tests.conftest import EXAMPLES, run_cli
from tests.crash_worker import START, next_moment, pick

NERIMA = EXAMPLES / "nerima.toml"
Row = tuple[str, str, str, str]  # day, ts, type, body as stored


# -- journals to damage --------------------------------------------------------------------------
class _Clock:
    """The journal's wall clock follows the simulated commands (retention counts from it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def build(path: Path, events: int, seed: int = 1, keep_open: bool = False) -> TicketJournal | None:
    config = load_config(NERIMA)
    clock = _Clock(START)
    rng = random.Random(seed)
    services = [s.id for s in config.services]
    counters = [c.id for c in config.counters]
    journal = TicketJournal.create(
        path, config, NERIMA.read_text(encoding="utf-8"), synchronous="OFF", snapshot_every=1000, clock=clock
    )
    run(journal, clock, rng, services, counters, events)
    if keep_open:
        return journal
    journal.close()
    return None


def run(
    journal: TicketJournal, clock: _Clock, rng: random.Random, services: list[str], counters: list[str], upto: int
) -> None:
    while journal.office.state.last_seq < upto:
        clock.now = next_moment(rng, clock.now)
        with contextlib.suppress(OfficeError):
            journal.execute(pick(rng, journal.office.state, services, counters), clock.now)


def stored_rows(path: Path) -> dict[int, Row]:
    """Every stored row, read by SQLite from the intact file (and its WAL)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT seq, day, ts, type, body FROM events")
        return {seq: (day, ts, type_, body) for seq, day, ts, type_, body in rows}


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("intact") / "office.db"
    build(path, 3000)
    assert not Path(f"{path}-wal").exists()  # closed: everything is in the main file
    return path


@pytest.fixture(scope="module")
def originals(intact: Path) -> dict[int, Row]:
    rows = stored_rows(intact)
    assert sorted(rows) == list(range(1, 3001)) and len({r[0] for r in rows.values()}) >= 3  # several days
    return rows


def damaged(intact: Path, tmp_path: Path, change: Callable[[bytearray], bytes | bytearray]) -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "office.db"
    path.write_bytes(bytes(change(bytearray(intact.read_bytes()))))
    return path


# -- the test's own reading of the file format ------------------------------------------------------
def varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = data[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise AssertionError("unreachable")


def page_size(data: bytes) -> int:
    size = int.from_bytes(data[16:18], "big")
    return 65536 if size == 1 else size


def events_root(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as conn:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0])


def events_leaves(
    data: bytes, root: int, page: Callable[[int], bytes] | None = None
) -> dict[int, list[tuple[int, int, int]]]:
    """pgno → [(rowid, start, end)] of each cell of each leaf of the events table, offsets in
    the page, found by walking the table's b-tree from its root (interior pages 0x05: a child
    pointer per cell and a right-most pointer; leaves 0x0D: payload size, rowid, payload)."""
    size = page_size(data)
    read = page or (lambda n: data[(n - 1) * size : n * size])
    leaves: dict[int, list[tuple[int, int, int]]] = {}

    def walk(pgno: int) -> None:
        p = read(pgno)
        h = 100 if pgno == 1 else 0
        count = int.from_bytes(p[h + 3 : h + 5], "big")
        if p[h] == 5:
            for i in range(count):
                at = int.from_bytes(p[h + 12 + 2 * i : h + 14 + 2 * i], "big")
                walk(int.from_bytes(p[at : at + 4], "big"))
            walk(int.from_bytes(p[h + 8 : h + 12], "big"))
            return
        assert p[h] == 13
        cells = []
        for i in range(count):
            at = int.from_bytes(p[h + 8 + 2 * i : h + 10 + 2 * i], "big")
            payload, q = varint(p, at)
            rowid, q = varint(p, q)
            assert payload <= size - 35  # an event row never overflows its page
            cells.append((rowid, at, q + payload))
        leaves[pgno] = cells

    walk(root)
    return leaves


def body_span(page: bytes, cell: tuple[int, int, int]) -> tuple[int, int]:
    """Where the body text of an events cell lies in its page (the record's fifth column)."""
    _, at, end = cell
    _, q = varint(page, at)
    _, q = varint(page, q)
    header, r = varint(page, q)
    sizes = []
    while r < q + header:
        kind, r = varint(page, r)
        sizes.append(0 if kind == 0 else (kind - 13) // 2)
    start = q + header + sum(sizes[:4])
    assert start + sizes[4] == end
    return start, end


# -- what was salvaged ---------------------------------------------------------------------------------
def salvage(path: Path) -> tuple[dict[int, Row], str]:
    """The salvaged events as the rows that would store them, and the report of exporting all."""
    with Salvage.open(path) as rescue:
        found: dict[int, Row] = {}
        tally = Tally()
        for day, event in rescue.events():
            assert event.seq not in found
            found[event.seq] = (day, ev.format_ts(event.ts), event.TYPE, orjson.dumps(event.body()).decode())
            tally.add(event.seq)
        assert list(found) == sorted(found)
        return found, rescue.report(None, None, tally)


def check(found: dict[int, Row], originals: dict[int, Row], expected: set[int]) -> None:
    """Nothing invented: every salvaged event is the stored one, and all that was readable came back."""
    assert {seq: row for seq, row in found.items() if originals.get(seq) != row} == {}
    assert set(found) == expected, (sorted(expected - set(found))[:20], sorted(set(found) - expected)[:20])


def files(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def export(capsys: pytest.CaptureFixture[str], path: Path, *more: str) -> tuple[int, list[str], str]:
    """`office export` of `path`: exit code, the lines written, stderr; the journal's directory
    (the file, any -wal, -shm) must be exactly as before."""
    before = files(path.parent)
    code, out, err = run_cli(capsys, "office", "export", "--journal", str(path), *more)
    assert files(path.parent) == before
    assert "Traceback" not in err and err.count("\n") <= 1
    return code, out.splitlines(), err


def public_lines(rows: dict[int, Row], seqs: Iterator[int] | list[int]) -> list[str]:
    import json

    lines = []
    for seq in seqs:
        _, ts, type_, body = rows[seq]
        event = ev.event_from_record(seq, ts, type_, orjson.loads(body))
        lines.append(json.dumps(ev.public_record(event, "nerima"), ensure_ascii=False, separators=(",", ":")))
    return lines


# -- intact: unchanged ----------------------------------------------------------------------------------
def test_an_intact_journal_exports_as_before_and_nothing_is_written_beside_it(
    intact: Path, originals: dict[int, Row], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "office.db"
    shutil.copyfile(intact, path)
    code, lines, err = export(capsys, path)
    assert (code, err) == (0, "")
    assert lines == public_lines(originals, sorted(originals))
    assert sorted(os.listdir(tmp_path)) == ["office.db"]  # no -wal, -shm created by the read


# -- damage in the main file --------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["file-end", "last-events-page"])
def test_cut_short_by_one_byte(
    intact: Path, originals: dict[int, Row], tmp_path: Path, capsys: Any, where: str
) -> None:
    """One byte off the end of the file, and the file cut one byte before the end of its last
    page of events (its first rows are stored at the page's end: cell content grows downwards)."""
    data = intact.read_bytes()
    size = page_size(data)
    leaves = events_leaves(data, events_root(intact))
    cut = len(data) - 1 if where == "file-end" else max(leaves) * size - 1
    path = damaged(intact, tmp_path, lambda d: d[:cut])
    lost = {rowid for pgno, cells in leaves.items() for rowid, _, end in cells if (pgno - 1) * size + end > cut}
    assert where == "file-end" or lost
    found, report = salvage(path)
    check(found, originals, set(originals) - lost)
    assert report.endswith(f"cut short ({cut:,} of {len(data):,} bytes): later events may be lost too")
    code, lines, err = export(capsys, path)
    assert lines == public_lines(originals, sorted(found))
    # Without rows lost the export may not meet the damage at all; a cut page of the day index
    # (its last byte read as 0: a seq read twice, the next skipped) is met, and salvaged.
    assert (code, err) == (1, f"counterfloor: error: {report}\n") if lost or code else (code, err) == (0, "")


def test_cut_in_half(intact: Path, originals: dict[int, Row], tmp_path: Path) -> None:
    data = intact.read_bytes()
    cut = len(data) // 2 + 1234  # inside a page
    path = damaged(intact, tmp_path, lambda d: d[:cut])
    size, kept = page_size(data), set()
    for pgno, cells in events_leaves(data, events_root(intact)).items():
        kept |= {rowid for rowid, _, end in cells if (pgno - 1) * size + end <= cut}
    assert 0 < len(kept) < len(originals)
    found, report = salvage(path)
    check(found, originals, kept)
    assert "cut short" in report


def test_a_zeroed_events_page(intact: Path, originals: dict[int, Row], tmp_path: Path, capsys: Any) -> None:
    data = intact.read_bytes()
    size = page_size(data)
    leaves = events_leaves(data, events_root(intact))
    pgno = sorted(leaves)[len(leaves) // 2]
    lost = {rowid for rowid, _, _ in leaves[pgno]}
    path = damaged(intact, tmp_path, lambda d: d[: (pgno - 1) * size] + bytes(size) + d[pgno * size :])
    found, report = salvage(path)
    check(found, originals, set(originals) - lost)
    lo, hi = min(lost), max(lost)
    assert hi - lo + 1 == len(lost)
    assert report == (
        f"salvaged {3000 - len(lost):,} of seqs 1–3,000 from {path}: {len(lost)} missing "
        f"(seqs {lo:,}–{hi:,}); the journal is damaged"
    )
    code, lines, err = export(capsys, path, "--out", str(tmp_path.parent / f"{tmp_path.name}.jsonl"))
    assert (code, lines) == (1, [f"{3000 - len(lost)} events written to {tmp_path.parent / f'{tmp_path.name}.jsonl'}"])
    assert err == f"counterfloor: error: {report}\n"
    written = (tmp_path.parent / f"{tmp_path.name}.jsonl").read_text(encoding="utf-8").splitlines()
    assert written == public_lines(originals, sorted(found))


def test_the_events_root_page_zeroed_is_read_from_the_leaves(
    intact: Path, originals: dict[int, Row], tmp_path: Path
) -> None:
    """SQLite reaches no row of the table; every leaf is still whole, and read by hand."""
    data = intact.read_bytes()
    size, root = page_size(data), events_root(intact)
    assert data[(root - 1) * size] == 5  # an interior page: the table spans many leaves
    path = damaged(intact, tmp_path, lambda d: d[: (root - 1) * size] + bytes(size) + d[root * size :])
    found, report = salvage(path)
    check(found, originals, set(originals))
    assert report.endswith("none missing; the journal is damaged")


def test_flipped_bytes_in_stored_bodies_lose_their_pages(
    intact: Path, originals: dict[int, Row], tmp_path: Path
) -> None:
    """A byte of a stored body flipped (it is no UTF-8 then) shows its page damaged: none of the
    page's rows are trusted, the other pages' all come back."""
    data = bytearray(intact.read_bytes())
    size = page_size(bytes(data))
    leaves = events_leaves(bytes(data), events_root(intact))
    rng = random.Random(7)
    pages = rng.sample(sorted(leaves), 4)
    for pgno in pages:
        base = (pgno - 1) * size
        for cell in rng.sample(leaves[pgno], 2):
            start, end = body_span(bytes(data[base : base + size]), cell)
            data[base + rng.randrange(start, end)] ^= 0xFF
    lost = {rowid for pgno in pages for rowid, _, _ in leaves[pgno]}
    path = tmp_path / "office.db"
    path.write_bytes(bytes(data))
    found, report = salvage(path)
    check(found, originals, set(originals) - lost)
    assert f"{len(lost)} missing" in report


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_flipped_in_events_pages_invent_nothing(
    intact: Path, originals: dict[int, Row], tmp_path: Path, seed: int
) -> None:
    """Flips anywhere in a few pages (page headers, cell pointers, rowids, record headers, texts),
    each of the high bit and maybe others: every row of the other pages comes back, and a hit
    page's rows come back as stored or not at all. (A flip that keeps a text valid, a digit into
    a digit, cannot be seen: SQLite keeps no checksums.)"""
    data = bytearray(intact.read_bytes())
    size = page_size(bytes(data))
    leaves = events_leaves(bytes(data), events_root(intact))
    rng = random.Random(seed)
    pages = rng.sample(sorted(leaves), 3)
    for pgno in pages:
        for _ in range(rng.randint(1, 12)):
            data[(pgno - 1) * size + rng.randrange(size)] ^= rng.randint(0x80, 0xFF)
    path = tmp_path / "office.db"
    path.write_bytes(bytes(data))
    found, _ = salvage(path)
    on_hit_pages = {rowid for pgno in pages for rowid, _, _ in leaves[pgno]}
    check(found, originals, (set(originals) - on_hit_pages) | (set(found) & on_hit_pages))


def test_a_flipped_header_is_read_from_the_pages(
    intact: Path, originals: dict[int, Row], tmp_path: Path, capsys: Any
) -> None:
    """The first 100 bytes say nothing any more (not even that this is SQLite): the page size is
    found from the pages themselves, the office from the meta table's page."""
    path = damaged(intact, tmp_path, lambda d: bytes(b ^ 0xFF for b in d[:100]) + d[100:])
    found, _ = salvage(path)
    check(found, originals, set(originals))
    code, lines, err = export(capsys, path, "--date", originals[1500][0])
    day = originals[1500][0]
    seqs = sorted(s for s, row in originals.items() if row[0] == day)
    assert code == 1 and lines == public_lines(originals, seqs)
    assert err == (
        f"counterfloor: error: salvaged {len(seqs):,} of seqs {seqs[0]:,}–{seqs[-1]:,} of {day} from {path}: "
        "none missing; the journal is damaged\n"
    )


def test_an_export_of_days_counts_only_what_may_be_of_those_days(
    intact: Path, originals: dict[int, Row], tmp_path: Path, capsys: Any
) -> None:
    """A zeroed page of one day: an export of that day has all of it missing; one of another day
    does not even meet it (the day index leads the read past it)."""
    data = intact.read_bytes()
    size = page_size(data)
    leaves = events_leaves(data, events_root(intact))
    days = sorted({row[0] for row in originals.values()})
    pgno = next(
        p for p in sorted(leaves) if {originals[r][0] for r, _, _ in leaves[p]} == {days[1]} and p != min(leaves)
    )
    lost = sorted(rowid for rowid, _, _ in leaves[pgno])
    path = damaged(intact, tmp_path, lambda d: d[: (pgno - 1) * size] + bytes(size) + d[pgno * size :])
    code, lines, err = export(capsys, path, "--date", days[1])
    seqs = sorted(s for s, row in originals.items() if row[0] == days[1] and s not in lost)
    assert code == 1 and lines == public_lines(originals, seqs)
    assert f"{len(lost)} missing (seqs {lost[0]:,}–{lost[-1]:,})" in err
    code, lines, err = export(capsys, path, "--date", days[-1])
    assert (code, err) == (0, "")
    assert lines == public_lines(originals, sorted(s for s, row in originals.items() if row[0] == days[-1]))


# -- with a WAL: the events not yet in the main file ---------------------------------------------------
@pytest.fixture(scope="module")
def with_wal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Row]]:
    """A journal copied while its writer had it open: 2,000 events in the main file, the 400
    after them only in the -wal (with the -shm beside it), as after a power cut."""
    directory = tmp_path_factory.mktemp("wal")
    path = directory / "office.db"
    journal = build(path, 2000, seed=3, keep_open=True)
    assert journal is not None
    journal.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    config = journal.office.config
    clock = journal.clock
    assert isinstance(clock, _Clock)
    run(journal, clock, random.Random(4), [s.id for s in config.services], [c.id for c in config.counters], 2400)
    copy = tmp_path_factory.mktemp("wal-copy") / "office.db"
    for suffix in ("", "-wal", "-shm"):
        shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
    journal.close()
    rows = stored_rows(path)
    assert Path(f"{copy}-wal").stat().st_size > 0 and len(rows) >= 2400
    return copy, rows


def wal_damaged(with_wal: tuple[Path, dict[int, Row]], tmp_path: Path, change: Callable[[bytearray], bytes]) -> Path:
    source, _ = with_wal
    path = tmp_path / "office.db"
    path.write_bytes(change(bytearray(source.read_bytes())))
    for suffix in ("-wal", "-shm"):
        shutil.copyfile(f"{source}{suffix}", f"{path}{suffix}")
    return path


def wal_pages(path: Path) -> dict[int, bytes]:
    """The page images in the -wal (the newest of each), as a test reads them: no transaction
    was cut off and the WAL was not reused, so every frame counts."""
    wal = Path(f"{path}-wal").read_bytes()
    size = int.from_bytes(wal[8:12], "big")
    pages = {}
    for at in range(32, len(wal) - size - 23, size + 24):
        pages[int.from_bytes(wal[at : at + 4], "big")] = wal[at + 24 : at + 24 + size]
    return pages


def test_a_leftover_wal_is_read_and_left_untouched(
    with_wal: tuple[Path, dict[int, Row]], tmp_path: Path, capsys: Any
) -> None:
    path = wal_damaged(with_wal, tmp_path, bytes)
    rows = with_wal[1]
    code, lines, err = export(capsys, path)  # intact: the ordinary read, of a private copy
    assert (code, err) == (0, "") and lines == public_lines(rows, sorted(rows))


def test_an_export_beside_a_running_writer_reads_what_it_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the writer's lock held, the export is the ordinary shared read: it sees the events
    committed to the -wal a moment ago (a private copy could be torn by the writer)."""
    path = tmp_path / "office.db"
    journal = build(path, 300, seed=5, keep_open=True)
    assert journal is not None
    try:
        assert writer_alive(path) and Path(f"{path}-wal").stat().st_size > 0
        rows = stored_rows(path)
        code, out, err = run_cli(capsys, "office", "export", "--journal", str(path))
        assert (code, err) == (0, "") and out.splitlines() == public_lines(rows, sorted(rows))
    finally:
        journal.close()
    assert not writer_alive(path)


def test_a_flipped_header_with_a_wal(with_wal: tuple[Path, dict[int, Row]], tmp_path: Path, capsys: Any) -> None:
    """SQLite cannot open the file at all; the pages of the main file and the WAL's committed
    frames over them hold every event."""
    path = wal_damaged(with_wal, tmp_path, lambda d: bytes(b ^ 0xFF for b in d[:100]) + d[100:])
    rows = with_wal[1]
    found, _ = salvage(path)
    check(found, rows, set(rows))
    code, lines, err = export(capsys, path)
    assert code == 1 and len(lines) == len(rows) and "none missing" in err


@pytest.mark.parametrize("in_wal", [True, False], ids=["page-also-in-wal", "page-only-in-main"])
def test_a_zeroed_page_of_the_main_file_with_a_wal(
    with_wal: tuple[Path, dict[int, Row]], tmp_path: Path, in_wal: bool, capsys: Any
) -> None:
    source, rows = with_wal
    data = source.read_bytes()
    size = page_size(data)
    newer = wal_pages(source)
    leaves = events_leaves(data, events_root_of(source), lambda n: newer.get(n) or data[(n - 1) * size : n * size])
    pgno = next(p for p in sorted(leaves) if (p in newer) == in_wal and p <= len(data) // size)
    lost = set() if in_wal else {rowid for rowid, _, _ in leaves[pgno]}
    path = wal_damaged(with_wal, tmp_path, lambda d: bytes(d[: (pgno - 1) * size] + bytes(size) + d[pgno * size :]))
    found, _ = salvage(path)
    check(found, rows, set(rows) - lost)
    code, lines, _ = export(capsys, path)
    assert code == (1 if lost else 0) and len(lines) == len(rows) - len(lost)


def events_root_of(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0])


# -- no command prints a traceback -----------------------------------------------------------------------
DAMAGE: dict[str, Callable[[bytearray, int, int], bytes]] = {
    "cut-1": lambda d, size, root: bytes(d[:-1]),
    "cut-half": lambda d, size, root: bytes(d[: len(d) // 2]),
    "root-zeroed": lambda d, size, root: bytes(d[: (root - 1) * size] + bytes(size) + d[root * size :]),
    "header": lambda d, size, root: bytes(b ^ 0xFF for b in d[:100]) + bytes(d[100:]),
    "garbage": lambda d, size, root: bytes(d[:size]) + b"\xa5" * (len(d) - size),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize(
    "command",
    [
        ["office", "show"],
        ["office", "show", "--json"],
        ["office", "export"],
        ["office", "issue", "--service", "move"],
        ["office", "call", "--counter", "1"],
        ["office", "reconfigure", "--config", str(NERIMA)],
        ["gateway", "run", "--config", str(NERIMA), "--run-for", "0.2"],
    ],
    ids=lambda c: "-".join(c[:2]) if isinstance(c, list) else c,
)
def test_no_command_prints_a_traceback_for_a_damaged_journal(
    intact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, command: list[str]
) -> None:
    data = bytearray(intact.read_bytes())
    path = tmp_path / "office.db"
    path.write_bytes(DAMAGE[damage](data, page_size(bytes(data)), events_root(intact)))
    code, _, err = run_cli(capsys, *command, "--journal", str(path))
    assert "Traceback" not in err and "sqlite3." not in err, err
    if code:  # refused: one line, naming the file (unless the office refused the command itself)
        assert code == 1 and err.count("\n") == 1 and err.startswith("counterfloor: error: "), err
        assert str(path) in err or err.startswith("counterfloor: error: refused ("), err


def test_damage_met_only_while_storing_a_command_is_one_line(
    intact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The journal opens (its events read), but the free-page list a new page comes from is
    garbage: the command that needs a page fails in one line, and stores nothing."""
    # Free pages to damage: a table filled and dropped (the journal's own churn leaves none now
    # that the day's first write deletes earlier days' snapshots and reuses their pages).
    churned = tmp_path / "churned.db"
    churned.write_bytes(intact.read_bytes())
    conn = sqlite3.connect(churned)
    conn.execute("CREATE TABLE churn (x BLOB)")
    conn.executemany("INSERT INTO churn VALUES (?)", [(b"\0" * 3000,) for _ in range(20)])
    conn.execute("DROP TABLE churn")
    conn.commit()
    conn.close()
    assert not Path(f"{churned}-wal").exists()  # closed: checkpointed into the main file
    data = bytearray(churned.read_bytes())
    size, trunk = page_size(bytes(data)), int.from_bytes(data[32:36], "big")
    assert trunk  # the dropped table left free pages
    data[(trunk - 1) * size : (trunk - 1) * size + 8] = b"\xff" * 8
    path = tmp_path / "office.db"
    path.write_bytes(bytes(data))
    for second in range(60):
        at = f"2027-03-29T10:00:{second:02d}"
        code, _, err = run_cli(
            capsys, "office", "issue", "--service", "move", "--journal", str(path), "--offline", "--at", at
        )
        if code:
            break
    assert err == f"counterfloor: error: {path}: database disk image is malformed\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"office = nerima\nthis is not a journal\n" * 200, "not an SQLite database"),
        (b"", "not an SQLite database"),
        (bytes(random.Random(5).randrange(256) for _ in range(64 * 1024)), "not an SQLite database"),
    ],
    ids=["text", "empty", "random-bytes"],
)
def test_a_file_that_never_was_a_journal_is_not_salvaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "office.db"
    path.write_bytes(content)
    code, lines, err = export(capsys, path)
    assert (code, lines) == (1, []) and message in err


def test_another_applications_database_is_not_salvaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "photos.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT, d TEXT)")
        conn.execute("""INSERT INTO t VALUES (1, '2027-03-15', 'x', 'schedule', '{}')""")
        conn.commit()
    code, lines, err = export(capsys, path)
    assert (code, lines) == (1, []) and "another application" in err
    with pytest.raises(NotAJournal):
        Salvage.open(path, NotAJournal("refused"))


# -- whatever the damage, nothing is invented ---------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[int, Row]]:
    path = tmp_path_factory.mktemp("small") / "office.db"
    build(path, 1200, seed=9)
    return path.read_bytes(), stored_rows(path)


# Damage the file format can reveal: bytes flipped in their high bit (an ASCII text is no UTF-8
# then), runs of zeros, a cut. A byte turned into another valid one inside a text cannot be seen.
damage_steps = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0x80, 0xFF)),
        st.tuples(st.just("zero"), st.floats(0, 1), st.integers(1, 4096)),
        st.tuples(st.just("cut"), st.floats(0.05, 1), st.just(0)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=damage_steps)
def test_any_damage_salvages_only_stored_events(
    small: tuple[bytes, dict[int, Row]], tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, float, int]]
) -> None:
    data = bytearray(small[0])
    for kind, where, amount in steps:
        at = int(where * (len(data) - 1))
        if kind == "flip":
            data[at] ^= amount
        elif kind == "zero":
            data[at : at + amount] = bytes(len(data[at : at + amount]))
        else:
            del data[at:]
    path = tmp_path_factory.mktemp("any") / "office.db"
    path.write_bytes(bytes(data))
    try:
        found, report = salvage(path)
    except JournalError as exc:  # nothing left that says it is a journal: refused, one line
        assert isinstance(exc, (JournalCorrupt, NotAJournal)) and "\n" not in str(exc)
        return
    assert {seq: row for seq, row in found.items() if small[1].get(seq) != row} == {}
    assert "\n" not in report


def test_a_journal_that_cannot_be_read_is_named_not_the_output(
    intact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError reading the journal (here: its permissions) names the journal, not --out."""
    import gateway.salvage

    def unreadable(path: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(gateway.salvage, "open_reader", unreadable)
    out = tmp_path / "day.jsonl"
    code, _, err = run_cli(capsys, "office", "export", "--journal", str(intact), "--out", str(out))
    assert (code, err) == (1, f"counterfloor: error: {intact}: Permission denied\n")
    assert list(tmp_path.iterdir()) == []  # no .partial left


def test_a_journal_migrated_from_v1_keeps_its_day_column_last_and_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """v1 → v2 added the day column at the end of the stored rows (ALTER TABLE)."""
    from tests.test_journal import _build_v1

    path = tmp_path / "office.db"
    _build_v1(path, load_config(NERIMA), NERIMA.read_text(encoding="utf-8"))
    TicketJournal.open(path).close()  # migrates
    rows = stored_rows(path)
    damaged_path = damaged(path, tmp_path / "d", lambda d: bytes(b ^ 0xFF for b in d[:100]) + d[100:])
    found, report = salvage(damaged_path)
    check(found, rows, set(rows))
    assert report.endswith("none missing; the journal is damaged")


def test_damage_met_mid_way_restarts_the_out_file_and_continues_stdout(
    intact: Path, originals: dict[int, Row], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body made no UTF-8 in the middle of a page: the ordinary read has written the page's
    rows before it when it fails. --out is rewritten from the salvage alone (which trusts none
    of that page); stdout, which cannot be taken back, has them, and goes on after them."""
    data = bytearray(intact.read_bytes())
    size = page_size(bytes(data))
    leaves = events_leaves(bytes(data), events_root(intact))
    pgno = sorted(leaves)[len(leaves) // 2]
    cells = sorted(leaves[pgno])
    base = (pgno - 1) * size
    start, _ = body_span(bytes(data[base : base + size]), cells[len(cells) // 2])
    data[base + start] ^= 0xFF
    bad = cells[len(cells) // 2][0]
    on_page = {rowid for rowid, _, _ in cells}
    path = tmp_path / "j" / "office.db"
    path.parent.mkdir()
    path.write_bytes(bytes(data))
    found, report = salvage(path)
    assert set(found) == set(originals) - on_page
    out = tmp_path / "all.jsonl"
    code, lines, err = export(capsys, path, "--out", str(out))
    assert (code, lines, err) == (1, [f"{len(found)} events written to {out}"], f"counterfloor: error: {report}\n")
    assert out.read_text(encoding="utf-8").splitlines() == public_lines(originals, sorted(found))
    code, lines, err = export(capsys, path)
    before = [s for s in sorted(originals) if s < bad]  # read, in order, until the damage showed
    assert code == 1 and lines == public_lines(originals, before + [s for s in sorted(found) if s > bad])
    missing = sorted(on_page - set(before))
    assert f"{len(missing)} missing (seqs {missing[0]:,}–{missing[-1]:,})" in err
