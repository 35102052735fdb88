"""Salvage: the readable events of a damaged journal, read without writing a byte beside it.

Owns reading a journal that SQLite can no longer read whole (a damaged page, a cut-off file, a
broken header). The events come from the file's table pages, decoded here (the SQLite file
format: b-tree leaf pages, varints, records, overflow chains, the WAL's committed frames laid
over the main file), found by scanning every page, so that a damaged interior page, header or
schema hides nothing; SQLite, where it can still read the file, says which office it is and which
seqs were stored (the table's ends, the day index's), so that what is missing is known.

A page gives its rows only if nothing on it shows damage: every cell pointer and cell header
sound, every seq next to another (seqs are consecutive), every row an events row whose day and
time texts are the journal's own writing of one date and whose JSON body `event_from_record`
accepts; events are kept only in time order with their neighbours. A page that shows damage
gives nothing: its other rows may hold damage that cannot be seen, since SQLite keeps no
checksums (a digit changed into another digit, a letter into a letter, reads as well as the
original). Bytes missing at the end of a cut-off file are not damage: the rows before the cut
are read. Nothing is guessed: a row that is not read is reported missing.

Never writes to the journal, its -wal or -shm: the files are opened only for reading, and SQLite
reads them with `immutable=1` or from a private copy in a temporary directory ($TMPDIR). Also
owns `open_reader`, the export's ordinary read done the same way when no writer has the journal
open, so that a journal found damaged on the way is left exactly as it was found.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import mmap
import os
import shutil
import sqlite3
import struct
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import orjson

from gateway.journal import JournalCorrupt, JournalError, JournalReader, NotAJournal, is_sqlite_file
from office import events as ev

_SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)  # the low bit says the checksums' byte order: 1 = big-endian
_TABLE_LEAF = 13
_PAGE_SIZES = tuple(512 << i for i in range(8))  # 512 … 65536
_GUESS_BYTES = 4 << 20  # how much of a file with an unreadable header is sampled to guess its page size


class Salvaged(NamedTuple):
    day: str  # the business day the event was stored under
    event: ev.Event


# -- reading without writing ------------------------------------------------------------------
def writer_alive(path: Path) -> bool:
    """Whether a TicketJournal has `path` open for writing now (it holds `<journal>.lock`).

    Probed with a shared lock taken and dropped at once: a writer opening in that instant of
    microseconds would be refused as if a second writer held the journal."""
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY)
    except FileNotFoundError:
        return False  # never opened for writing here
    except OSError:
        return True  # cannot tell: read as beside a writer (a private read could be torn)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: the writer holds it
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class _PrivateSource:
    """An SQLite URI that reads `path` as it stands and cannot change it or its -wal/-shm.

    Without a -wal (or with an empty one) the journal itself, opened immutable: SQLite then
    neither locks nor creates anything. With one, a private copy of both files (SQLite must
    replay the WAL, and its -shm is written while it does), made when first asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.main = path  # the file whose pages are read
        self.wal: Path | None = None

    def uri(self) -> str:
        wal = Path(f"{self.path}-wal")
        try:
            has_wal = wal.stat().st_size > 0
        except OSError:
            has_wal = False
        if not has_wal:
            return f"file:{quote(str(self.path))}?mode=ro&immutable=1"
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="counterfloor-")
            copy = Path(self._tmp.name) / "journal.db"
            try:
                shutil.copyfile(self.path, copy)
                shutil.copyfile(wal, f"{copy}-wal")
            except OSError as exc:
                raise JournalError(
                    f"cannot copy {self.path} and its -wal to {self._tmp.name} to read them: "
                    f"{exc.strerror or exc} (set TMPDIR to a directory with room)"
                ) from None
            self.main, self.wal = copy, Path(f"{copy}-wal")
        return f"file:{quote(str(self.main))}?mode=ro"

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


@contextlib.contextmanager
def open_reader(path: str | Path) -> Iterator[JournalReader]:
    """A JournalReader of `path` for a one-off read (the export). With a writer running, the
    shared read every reader does; without one, a read that writes nothing beside the journal
    (an ordinary read-only open creates its -wal and -shm, or rewrites the -shm), so that a
    journal found damaged on the way is still exactly as it was."""
    p = Path(path)
    if not p.is_file() or writer_alive(p):
        with JournalReader(p) as reader:
            yield reader
        return
    source = _PrivateSource(p)
    try:
        with JournalReader(p, uri=source.uri()) as reader:
            yield reader
    finally:
        source.close()


# -- the SQLite file format, read by hand --------------------------------------------------------
class _Unreadable(Exception):
    """Bytes that are not what the format says is there."""


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """SQLite's varint at `pos` (1–9 bytes, big-endian, 7 bits a byte, all 8 in the ninth),
    as a signed 64-bit value, and the position after it."""
    value = 0
    for _ in range(8):
        if pos >= end:
            raise _Unreadable
        byte = buf[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos
    if pos >= end:
        raise _Unreadable
    value = (value << 8) | buf[pos]
    return (value - (1 << 64) if value >= 1 << 63 else value), pos + 1


def _wal_checksum(data: bytes, s0: int, s1: int, order: str) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    it = iter(words)
    for x0, x1 in zip(it, it, strict=True):
        s0 = (s0 + x0 + s1) & 0xFFFFFFFF
        s1 = (s1 + x1 + s0) & 0xFFFFFFFF
    return s0, s1


def _committed_wal_pages(wal: bytes) -> tuple[int | None, dict[int, bytes]]:
    """The WAL's page size and the newest committed image of each page in it: frames are taken
    while their salts match the header's and their running checksum holds, and kept only up to
    the last commit frame (frames after it belong to a transaction that never committed)."""
    if len(wal) < 32:
        return None, {}
    magic, _version, page_size, _ckpt, salt1, salt2, c1, c2 = struct.unpack(">8I", wal[:32])
    if magic not in _WAL_MAGIC or page_size not in _PAGE_SIZES:
        return None, {}
    order = ">" if magic & 1 else "<"
    s0, s1 = _wal_checksum(wal[:24], 0, 0, order)
    if (s0, s1) != (c1, c2):
        return None, {}
    pages: dict[int, bytes] = {}
    pending: dict[int, bytes] = {}
    pos = 32
    while pos + 24 + page_size <= len(wal):
        pgno, commit, f1, f2, fc1, fc2 = struct.unpack_from(">6I", wal, pos)
        if (f1, f2) != (salt1, salt2):
            break
        page = wal[pos + 24 : pos + 24 + page_size]
        s0, s1 = _wal_checksum(wal[pos : pos + 8], s0, s1, order)
        s0, s1 = _wal_checksum(page, s0, s1, order)
        if (s0, s1) != (fc1, fc2):
            break
        pending[pgno] = page
        if commit:
            pages.update(pending)
            pending.clear()
        pos += 24 + page_size
    return page_size, pages


def _plausible_btree_page(data: bytes | mmap.mmap, start: int, page_size: int) -> bool:
    """Whether a page of this size could begin at `start`: a b-tree page type and a header whose
    cell pointers all lie inside the page."""
    if start + 12 > len(data):
        return False
    kind = data[start]
    if kind not in (2, 5, 10, 13):
        return False
    cells = int.from_bytes(data[start + 3 : start + 5], "big")
    header = 8 if kind in (10, 13) else 12
    end = start + header + 2 * cells
    if cells == 0 or header + 2 * cells > page_size or end > len(data) or data[start + 7] > 60:
        return False
    return all(
        header + 2 * cells <= int.from_bytes(data[p : p + 2], "big") < page_size for p in range(start + header, end, 2)
    )


def _guess_page_size(data: bytes | mmap.mmap) -> int | None:
    """For a file whose header is unreadable: the page size at which the most pages (page 1
    aside) look like b-tree pages. A multiple of the true size finds half as many."""
    sample = min(len(data), _GUESS_BYTES)
    best, best_count = None, 0
    for size in _PAGE_SIZES:
        count = sum(_plausible_btree_page(data, start, size) for start in range(size, sample, size))
        if count > best_count:
            best, best_count = size, count
    return best


class _Image:
    """The journal's pages as SQLite would see them: the main file, with the WAL's committed
    frames laid over it. Opened for reading only (a read-only mapping)."""

    def __init__(self, main: Path, wal: Path | None) -> None:
        self._file = open(main, "rb")  # noqa: SIM115 — kept open for the mapping, closed in close()
        size = os.fstat(self._file.fileno()).st_size
        self._data: bytes | mmap.mmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        wal_size, self._overlay = _committed_wal_pages(wal.read_bytes() if wal is not None and wal.is_file() else b"")
        header = self._data[:100]
        self.header_ok = len(header) == 100 and header.startswith(_SQLITE_MAGIC)
        page_size: int | None = None
        reserved = 0
        if self.header_ok:
            raw = int.from_bytes(header[16:18], "big")
            page_size = 65536 if raw == 1 else raw
            reserved = header[20]
            if page_size not in _PAGE_SIZES:
                self.header_ok, page_size, reserved = False, None, 0
        # The header's page count (trusted when its version-valid-for matches the change
        # counter): a file shorter than that was cut off, and events past the cut are unknown.
        self.main_bytes = len(self._data)
        self.expected_bytes = 0
        if page_size is not None and header[92:96] == header[24:28]:
            self.expected_bytes = int.from_bytes(header[28:32], "big") * page_size
        if page_size is not None and wal_size not in (None, page_size):
            self._overlay = {}  # SQLite ignores a WAL of another page size
        if page_size is None:
            page_size = wal_size or _guess_page_size(self._data)
        # A file with no readable header, WAL or page that looks like a b-tree page has no
        # pages to read: not a journal (and not worth scanning, however large).
        self.page_size = page_size or 4096
        self.usable = self.page_size - reserved
        main_pages = -(-len(self._data) // self.page_size) if page_size else 0
        self.page_count = max(main_pages, max(self._overlay, default=0))

    def page(self, pgno: int) -> bytes:
        """Page `pgno` (from 1); shorter than a page, or empty, where the file is cut off."""
        image = self._overlay.get(pgno)
        if image is not None:
            return image
        start = (pgno - 1) * self.page_size
        return self._data[start : start + self.page_size]

    def freelist(self) -> set[int]:
        """The pages the header lists as free (they hold rows deleted or moved since, which are
        not events to bring back); none when the header is unreadable, or the list is not sound
        (a damaged list would hide pages in use: their rows would go missing)."""
        first = self.page(1)
        if not self.header_ok or len(first) < 40:
            return set()
        free: set[int] = set()
        trunk = int.from_bytes(first[32:36], "big")
        while trunk:
            page = self.page(trunk) if 1 < trunk <= self.page_count and trunk not in free else b""
            count = int.from_bytes(page[4:8], "big") if len(page) >= 8 else -1
            if not 0 <= count <= self.usable // 4 - 2 or 8 + 4 * count > len(page):
                return set()
            free.add(trunk)
            for pos in range(8, 8 + 4 * count, 4):
                leaf = int.from_bytes(page[pos : pos + 4], "big")
                if not 1 < leaf <= self.page_count:
                    return set()
                free.add(leaf)
            trunk = int.from_bytes(page[0:4], "big")
        return free

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        self._file.close()


class _Cell(NamedTuple):
    rowid: int
    pos: int  # where its payload starts in the page
    size: int  # its payload's size in bytes


def _leaf_cells(page: bytes, pgno: int, usable: int) -> tuple[list[_Cell], bool] | None:
    """A table b-tree leaf page's cells whose size and rowid can be read, and whether the page
    shows damage (a cell pointer or cell header that cannot be right); None if the page is not
    a table leaf. Bytes missing from a cut-off page are no damage: its cells there are not read."""
    start = 100 if pgno == 1 else 0
    if len(page) < start + 8 or page[start] != _TABLE_LEAF:
        return None
    count = int.from_bytes(page[start + 3 : start + 5], "big")
    pointers = start + 8
    end = pointers + 2 * count
    if end > usable:
        return [], True
    whole = len(page) >= usable
    cells = []
    damaged = False
    for p in range(pointers, min(end, len(page) - 1), 2):
        offset = int.from_bytes(page[p : p + 2], "big")
        if not end <= offset < usable:
            damaged = True
            continue
        try:
            size, pos = _varint(page, offset, len(page))
            rowid, pos = _varint(page, pos, len(page))
        except _Unreadable:  # runs past the bytes there are: cut off, or past the page: damage
            damaged = damaged or whole
            continue
        cells.append(_Cell(rowid, pos, size))
    return cells, damaged


def _payload(image: _Image, page: bytes, cell: _Cell) -> bytes | None:
    """A table leaf cell's payload, following its overflow chain; None if the file is cut off
    before its end. Raises _Unreadable for a payload that cannot be where the cell says."""
    usable, size = image.usable, cell.size
    if size < 0:
        raise _Unreadable
    most = usable - 35
    if size <= most:
        local = size
    else:
        least = (usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (usable - 4)
        if local > most:
            local = least
    end = cell.pos + local
    if end > usable:
        raise _Unreadable
    if end > len(page) or (local < size and end + 4 > len(page)):
        return None
    if local == size:
        return page[cell.pos : end]
    parts = [page[cell.pos : end]]
    have = local
    next_page = int.from_bytes(page[end : end + 4], "big")
    seen: set[int] = set()
    while have < size:
        if not 1 <= next_page <= image.page_count or next_page in seen:
            raise _Unreadable
        seen.add(next_page)
        overflow = image.page(next_page)
        take = min(size - have, usable - 4)
        if len(overflow) < 4 + take:
            return None
        parts.append(overflow[4 : 4 + take])
        have += take
        next_page = int.from_bytes(overflow[0:4], "big")
    return b"".join(parts)


def _serial_types(payload: bytes) -> tuple[list[int], int] | None:
    """A record's column serial types and where its values start."""
    try:
        header, pos = _varint(payload, 0, len(payload))
        if not 1 <= header <= len(payload):
            return None
        types = []
        while pos < header:
            kind, pos = _varint(payload, pos, header)
            types.append(kind)
    except _Unreadable:
        return None
    return (types, header) if pos == header else None


def _is_text(kind: int) -> bool:
    return kind >= 13 and kind % 2 == 1


def _texts(payload: bytes, types: list[int], at: int) -> list[str] | None:
    """The values of a record whose columns are NULLs and texts (strict UTF-8), NULLs as ""."""
    values = []
    for kind in types:
        if kind == 0:
            values.append("")
            continue
        if not _is_text(kind):
            return None
        n = (kind - 13) // 2
        if at + n > len(payload):
            return None
        try:
            values.append(payload[at : at + n].decode("utf-8"))
        except UnicodeDecodeError:
            return None
        at += n
    return values if at == len(payload) else None


def _is_event_shape(types: list[int]) -> bool:
    # events(seq INTEGER PRIMARY KEY, day, ts, type, body): the seq is the rowid, stored as NULL.
    return len(types) == 5 and types[0] == 0 and all(_is_text(t) for t in types[1:])


def _is_meta_shape(types: list[int]) -> bool:
    return len(types) == 2 and _is_text(types[0]) and _is_text(types[1])


# -- one row, checked --------------------------------------------------------------------------
class _Row(NamedTuple):
    seq: int
    day: str
    ts: str
    type: str
    body: str


def _event(row: _Row) -> ev.Event | None:
    """The event a row stores, if every part of it is what the journal writes; else None."""
    if row.seq < 1:
        return None
    try:
        if date.fromisoformat(row.day).isoformat() != row.day:
            return None
        fields = orjson.loads(row.body)
        if not isinstance(fields, dict):
            return None
        event = ev.event_from_record(row.seq, row.ts, row.type, fields)
    except ValueError:  # orjson.JSONDecodeError and EventFormatError are ValueErrors
        return None
    stamp = event.ts
    # The journal writes times with ev.format_ts in the office's zone, on the business day.
    if stamp.tzinfo is None or ev.format_ts(stamp) != row.ts or stamp.date().isoformat() != row.day:
        return None
    return event


def _confirmed(seqs: list[int]) -> set[int]:
    """The seqs that sit beside seq-1 or seq+1: seqs are consecutive, so a lone one among them
    is likely a damaged rowid, and a seq found twice is no seq at all."""
    seen: dict[int, int] = {}
    for s in seqs:
        seen[s] = seen.get(s, 0) + 1
    return {s for s, n in seen.items() if n == 1 and (s - 1 in seen or s + 1 in seen)}


# -- the page scan -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Leaf:
    lo: int
    hi: int
    pgno: int


class _PageScan:
    """Every table leaf page that holds events rows, by the range of seqs on it (those that sit
    beside one another: a lone damaged rowid stretches no range), and what the meta table's
    pages say of the office and the retention cutoff."""

    def __init__(self, image: _Image) -> None:
        free = image.freelist()
        leaves: list[_Leaf] = []
        offices: set[str] = set()
        cutoffs: set[str] = set()
        for pgno in range(1, image.page_count + 1):
            if pgno in free:
                continue
            page = image.page(pgno)
            found = _leaf_cells(page, pgno, image.usable)
            if not found or not found[0]:
                continue
            cells = found[0]
            kind = None
            for cell in cells:  # a page holds one table's rows: the first readable cell says which
                try:
                    payload = _payload(image, page, cell)
                except _Unreadable:
                    continue
                shape = _serial_types(payload) if payload is not None else None
                if payload is None or shape is None:
                    continue
                types, at = shape
                if _is_event_shape(types):
                    kind = "events"
                    break
                if not _is_meta_shape(types):
                    break
                values = _texts(payload, types, at)
                if values is not None and values[0] == "office":
                    offices.add(values[1])
                elif values is not None and values[0] == "retention_cutoff":
                    cutoffs.add(values[1])
            if kind == "events":
                rowids = [c.rowid for c in cells]
                good = _confirmed(rowids) if len(rowids) > 1 else set(rowids)
                if good:
                    leaves.append(_Leaf(min(good), max(good), pgno))
        leaves.sort(key=lambda leaf: leaf.lo)
        self.leaves = leaves
        self.office = offices.pop() if len(offices) == 1 else None
        valid = []
        for text in cutoffs:
            with contextlib.suppress(ValueError):
                valid.append(date.fromisoformat(text).isoformat())
        self.cutoff = max(valid, default=None)

    def clusters(self) -> Iterator[list[_Leaf]]:
        """The leaves in seq order, those whose ranges overlap together (copies of one page)."""
        group: list[_Leaf] = []
        hi = 0
        for leaf in self.leaves:
            if group and leaf.lo > hi:
                yield group
                group = []
            hi = max(hi, leaf.hi) if group else leaf.hi
            group.append(leaf)
        if group:
            yield group


# -- the salvage ----------------------------------------------------------------------------------
@dataclass
class Tally:
    """What an export wrote, in seq order: how many events, the first and the last seq."""

    count: int = 0
    first: int | None = None
    last: int = 0

    def add(self, seq: int) -> None:
        self.count += 1
        if self.first is None:
            self.first = seq
        self.last = seq


class _Gap(NamedTuple):
    lo: int
    hi: int
    day_before: str | None  # the day of the salvaged event just before it, if any
    day_after: str | None


class Salvage:
    """The readable events of one damaged journal, read in seq order by `events()` (once, as a
    stream: a journal of many days is never held in memory whole). `office` is its office id."""

    def __init__(self, path: Path, source: _PrivateSource, image: _Image, conn: sqlite3.Connection | None) -> None:
        self.path = path
        self._source = source
        self._image = image
        self._conn = conn
        self._scan = _PageScan(image)
        self._gaps: list[_Gap] = []
        self._done = False
        meta = self._sql_meta()
        self.office = meta.get("office") or self._scan.office
        self._cutoff = meta.get("retention_cutoff") or self._scan.cutoff
        # The seqs known stored, whose span a report accounts for: what SQLite can still say
        # (either end of the table and of the day index, the newest snapshot and request), the
        # ranges of pages found damaged, and the salvaged events.
        self._span: list[int] = []
        for sql in (
            "SELECT min(seq) FROM events",
            "SELECT max(seq) FROM events",
            "SELECT seq FROM events INDEXED BY events_by_day ORDER BY day, seq LIMIT 1",
            "SELECT seq FROM events INDEXED BY events_by_day ORDER BY day DESC, seq DESC LIMIT 1",
            "SELECT max(seq) FROM snapshots",
            "SELECT max(seq) FROM requests",
        ):
            self._span += self._sql_ints(sql)

    @classmethod
    def open(cls, path: str | Path, refused: JournalError | None = None) -> Salvage:
        """Salvage `path`, which `refused` was raised for (JournalReader's reason). A file whose
        header reads as another SQLite database's, or that holds no journal rows at all, is not
        a damaged journal: `refused` (or NotAJournal) is raised again."""
        p = Path(path)
        if not p.is_file():
            raise refused or JournalError(f"no journal at {p}")
        if isinstance(refused, NotAJournal) and is_sqlite_file(p):
            raise refused  # its header is readable and says it is not ours
        source = _PrivateSource(p)
        image = None
        conn = None
        try:
            uri = source.uri()
            image = _Image(source.main, source.wal)
            conn = _connect(uri)
            salvage = cls(p, source, image, conn)
            if salvage.office is None and not salvage._scan.leaves:
                raise refused or NotAJournal(f"{p} is not a counterfloor journal, nor what is left of one")
            if salvage.office is None:
                raise JournalCorrupt(f"{p} is damaged: its office id cannot be read, so its events cannot be exported")
        except BaseException:
            if conn is not None:
                conn.close()
            if image is not None:
                image.close()
            source.close()
            raise
        return salvage

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._image.close()
        self._source.close()

    def __enter__(self) -> Salvage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what SQLite can still say -------------------------------------------------------
    def _sql_meta(self) -> dict[str, str]:
        meta: dict[str, str] = {}
        if self._conn is None:
            return meta
        with contextlib.suppress(sqlite3.Error):
            rows = self._conn.execute("SELECT key, value FROM meta WHERE key IN ('office', 'retention_cutoff')")
            for key, value in rows:
                with contextlib.suppress(AttributeError, UnicodeDecodeError):
                    meta[key.decode()] = value.decode()
        return meta

    def _sql_ints(self, sql: str) -> list[int]:
        """The one positive integer `sql` reads, as a list: [] when it cannot be read."""
        if self._conn is None:
            return []
        try:
            row = self._conn.execute(sql).fetchone()
        except sqlite3.Error:
            return []
        return [row[0]] if row is not None and type(row[0]) is int and row[0] >= 1 else []

    # -- what the pages hold ---------------------------------------------------------------
    def _page_events(self, leaf: _Leaf) -> dict[int, tuple[_Row, ev.Event]] | None:
        """The events on one leaf page, or None if anything on it shows damage."""
        image = self._image
        page = image.page(leaf.pgno)
        found = _leaf_cells(page, leaf.pgno, image.usable)
        if found is None or found[1]:
            return None
        cells = found[0]
        rowids = [c.rowid for c in cells]
        if len(rowids) > 1 and len(_confirmed(rowids)) != len(rowids):
            return None
        read: list[tuple[_Row, ev.Event]] = []
        for cell in cells:
            try:
                payload = _payload(image, page, cell)
            except _Unreadable:
                return None
            if payload is None:
                continue  # past the end of a cut-off file
            shape = _serial_types(payload)
            if shape is None or not _is_event_shape(shape[0]):
                return None
            values = _texts(payload, *shape)
            if values is None:
                return None
            row = _Row(cell.rowid, *values[1:])
            event = _event(row)
            if event is None:  # a journal migrated from v1 has its day column last
                row = _Row(cell.rowid, values[4], *values[1:4])
                event = _event(row)
            if event is None:
                return None
            read.append((row, event))
        read.sort(key=lambda item: item[0].seq)
        if any(a[1].ts > b[1].ts for a, b in itertools.pairwise(read)):
            return None  # the journal's times never go back: a time that does is damage
        # A page not yet reused can still hold rows of days since pruned: not events to bring back.
        return {row.seq: (row, event) for row, event in read if self._cutoff is None or row.day >= self._cutoff}

    def _merged(self) -> Iterator[Salvaged]:
        """Every event of the pages that show no damage, in seq order. Two copies of a page (a
        page moved, its old place not yet reused) agree; a seq they give differently is dropped."""
        for cluster in self._scan.clusters():
            events: dict[int, tuple[_Row, ev.Event]] = {}
            conflicts: set[int] = set()
            for leaf in cluster:
                found = self._page_events(leaf)
                if found is None:
                    self._span += [leaf.lo, leaf.hi]  # stored once, now unreadable
                    continue
                for seq, item in found.items():
                    if seq in events and events[seq][0] != item[0]:
                        conflicts.add(seq)
                    events.setdefault(seq, item)
            for seq in sorted(events.keys() - conflicts):
                row, event = events[seq]
                yield Salvaged(row.day, event)

    def events(self) -> Iterator[Salvaged]:
        """The salvaged events in seq order, each in time order with its neighbours (a time that
        is not is damage the other checks let through: the journal's times never go back),
        noting the gaps between them for `report`."""
        if self._done:
            raise RuntimeError("a salvage is read once")
        self._done = True
        last: Salvaged | None = None
        for item in _in_time_order(self._merged()):
            seq = item.event.seq
            if last is None:
                self._span.append(seq)
                if seq > min(self._span):
                    self._gaps.append(_Gap(min(self._span), seq - 1, None, item.day))
            elif seq > last.event.seq + 1:
                self._gaps.append(_Gap(last.event.seq + 1, seq - 1, last.day, item.day))
            last = item
            yield item
        if last is None:
            if self._span:
                self._gaps.append(_Gap(min(self._span), max(self._span), None, None))
        elif max(self._span) > last.event.seq:
            self._gaps.append(_Gap(last.event.seq + 1, max(self._span), last.day, None))

    def report(self, first_day: date | None, last_day: date | None, written: Tally, after: int = 0) -> str:
        """One line: what an export of the days first_day…last_day wrote (`written`; the events
        up to seq `after` came from the ordinary read before it failed) and which seqs that may
        be of those days are missing. A missing seq's day is unknown, but it lies between the
        days of the events around it: days never go back either."""
        if not self._done:
            raise RuntimeError("report after reading the events")
        lo = first_day.isoformat() if first_day else ""
        hi = last_day.isoformat() if last_day else "9999-12-31"
        gaps = [
            _Gap(max(g.lo, after + 1), g.hi, g.day_before, g.day_after)
            for g in self._gaps
            if g.hi > after and (g.day_before or "") <= hi and (g.day_after or "9999-12-31") >= lo
        ]
        missing = sum(g.hi - g.lo + 1 for g in gaps)
        seqs = [s for s in (written.first, written.last) if s is not None and written.count]
        seqs += [x for g in gaps for x in (g.lo, g.hi)]
        days = _days_text(first_day, last_day)
        if not seqs:
            return f"no readable events{days} in {self.path}; the journal is damaged"
        head = f"salvaged {written.count:,} of seqs {min(seqs):,}–{max(seqs):,}{days} from {self.path}"
        tail = f"{missing:,} missing ({_ranges_text(gaps)})" if missing else "none missing"
        image = self._image
        if image.expected_bytes > image.main_bytes:
            return (
                f"{head}: {tail}; the journal is damaged and cut short ({image.main_bytes:,} of "
                f"{image.expected_bytes:,} bytes): later events may be lost too"
            )
        return f"{head}: {tail}; the journal is damaged"


def _connect(uri: str) -> sqlite3.Connection | None:
    """A connection for what SQLite can still say (texts as bytes: a damaged one must not fail
    the read), or None when it cannot read the file at all (its header or schema is damaged)."""
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.text_factory = bytes
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    return conn


def _in_time_order(items: Iterator[Salvaged]) -> Iterator[Salvaged]:
    """Drop the events whose time is out of order with their neighbours'. The odd one out is the
    event whose neighbours agree with each other; at the start, the next two decide."""
    ahead: deque[Salvaged] = deque()
    it = iter(items)
    kept: Salvaged | None = None

    def fill() -> None:
        while len(ahead) < 3:
            nxt = next(it, None)
            if nxt is None:
                return
            ahead.append(nxt)

    fill()
    while ahead:
        cur = ahead.popleft()
        fill()
        nxt = ahead[0].event.ts if ahead else None
        ts = cur.event.ts
        late = kept is not None and kept.event.ts > ts
        early = nxt is not None and ts > nxt
        drop = late
        if early and not late:
            if kept is not None:
                drop = nxt is not None and kept.event.ts <= nxt
            else:
                drop = len(ahead) < 2 or ahead[0].event.ts <= ahead[1].event.ts
        if not drop:
            kept = cur
            yield cur


def _days_text(first_day: date | None, last_day: date | None) -> str:
    if first_day and first_day == last_day:
        return f" of {first_day}"
    if first_day and last_day:
        return f" of {first_day} to {last_day}"
    if first_day:
        return f" from {first_day}"
    if last_day:
        return f" up to {last_day}"
    return ""


def _ranges_text(gaps: list[_Gap], shown: int = 5) -> str:
    parts = [f"{g.lo:,}" if g.lo == g.hi else f"{g.lo:,}–{g.hi:,}" for g in gaps[:shown]]
    more = f" and {len(gaps) - shown} more ranges" if len(gaps) > shown else ""
    single = len(gaps) == 1 and gaps[0].lo == gaps[0].hi
    return f"{'seq' if single else 'seqs'} {'; '.join(parts)}{more}"
