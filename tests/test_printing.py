"""Printing at the gateway (gateway.printing): the printer state machine on its own, then the whole
gateway on a fake clock with the oizumi example's simulated devices and a simulated printer.

Press → commit → print; paper out stops issuing with "ask staff"; a failed print marks the ticket
unprinted (kept across a restart) and is offered for reprint with the same QR code; a retried
event prints once. Every wait is a number of gateway steps on the fake clock; nothing sleeps."""

from __future__ import annotations

import io
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from counterfloor import cli
from gateway import printing as pr
from gateway.device_link import LinkState
from gateway.journal import JournalReader
from gateway.service import Gateway
from hal import escpos
from hal.codec import P
from hal.printer import PrinterPortError
from hal.printer_sim import SimPrinter, SimPrinterPort
from hal.printer_status import FULL_REQUEST, PrinterStatus, status_bytes
from office import events as ev
from office.config import OfficeConfig, PrinterProfile, parse_config
from office.model import (
    CallNext,
    FinishService,
    IssueTicket,
    Office,
    OfficeError,
    OpenCounter,
    RecordPrintFailure,
    RecordReprint,
    Reprint,
    TicketReady,
)
from signage.catalog import both
from signage.qr_matrix import qr_matrix
from signage.ticket import TicketError
from tests.conftest import EXAMPLES, tokyo
from tests.floor_support import FakeClock

MONDAY_10 = tokyo(2027, 3, 15, 10, 0)
ASK_STAFF = (both("tickets_unavailable")[0], both("ask_staff")[0], both("tickets_unavailable")[1], both("ask_staff")[1])
REPRINT = (
    both("print_failed")[0],
    both("print_reprint_press")[0],
    both("print_failed")[1],
    both("print_reprint_press")[1],
)
SEAL = 1  # the dispenser's second button
INVERT = bytes(255 - b for b in range(256))


def test_what_dispensers_show_fits_one_show_text_frame() -> None:
    for lines in (ASK_STAFF, REPRINT):
        assert pr.panel_lines(*lines) == lines
        P.ShowText(1, 0, list(lines)).to_bytes()  # raises if it does not fit
    assert pr.panel_lines("あ" * 40, "b" * 60, "c" * 60) == ("あ" * 20, "b" * 60)


# -- the printer machine alone -------------------------------------------------------------------
OK = status_bytes(PrinterStatus())
PAPER_OUT = status_bytes(PrinterStatus(online=False, paper_out=True))


def job(ticket: str = "B-001", data: bytes = b"x" * 1000, addr: int | None = 1) -> pr.PrintJob:
    return pr.PrintJob(ticket, "seal", data, addr)


def test_the_machine_asks_first_then_prints_in_chunks_and_confirms() -> None:
    m = pr.PrinterMachine("p", chunk=400)
    assert m.state is pr.PrinterState.UNKNOWN
    assert m.submit(job(), 0.0) == []
    assert m.next_action(0.0) == pr.AskStatus()  # never heard from: ask before sending
    assert m.next_action(0.0) is None  # waiting for the answer
    assert m.received(OK, 0.01) == [pr.StatusChanged("p", None, PrinterStatus())]
    writes = []
    while isinstance(action := m.next_action(0.02), pr.WriteBytes):
        writes.append(len(action.data))
        m.wrote(len(action.data), 0.02)
    assert writes == [400, 400, 200] and action == pr.AskStatus()  # every byte taken: confirm
    assert m.received(OK, 0.03) == [pr.JobDone("p", job())]
    assert m.state is pr.PrinterState.READY and m.printed == 1


def test_a_fresh_ready_status_starts_a_job_at_once_and_a_stale_one_is_asked_again() -> None:
    m = pr.PrinterMachine("p", poll_s=2.0)
    m.next_action(0.0)
    m.received(OK, 0.0)
    m.submit(job(), 1.0)
    assert isinstance(m.next_action(1.0), pr.WriteBytes)  # the press-to-paper path: no round trip
    m2 = pr.PrinterMachine("p", poll_s=2.0)
    m2.next_action(0.0)
    m2.received(OK, 0.0)
    m2.submit(job(), 2.5)
    assert m2.next_action(2.5) == pr.AskStatus()


def test_a_printer_that_cannot_print_gets_no_job_and_fails_the_queue() -> None:
    m = pr.PrinterMachine("p")
    m.submit(job("B-001"), 0.0)
    m.submit(job("B-002"), 0.0)
    m.next_action(0.0)
    notices = m.received(PAPER_OUT, 0.0)
    assert [(n.job.ticket, n.reason) for n in notices if isinstance(n, pr.JobFailed)] == [
        ("B-001", "paper_out"),
        ("B-002", "paper_out"),
    ]
    assert m.state is pr.PrinterState.STOPPED
    assert m.submit(job("B-003"), 1.0) == [pr.JobFailed("p", job("B-003"), "paper_out")]
    assert m.next_action(1.0) is None  # nothing to send; polled again later
    assert m.next_action(10.0) == pr.AskStatus()


def test_silence_is_no_response_after_the_timeout() -> None:
    m = pr.PrinterMachine("p", status_timeout_s=0.5)
    m.next_action(0.0)
    assert m.tick(0.49) == []
    assert m.tick(0.5) == [pr.StatusChanged("p", None, pr.NO_RESPONSE)]
    assert m.state is pr.PrinterState.STOPPED


def test_the_answers_to_requests_inside_a_job_come_first_and_are_skipped() -> None:
    m = pr.PrinterMachine("p")
    m.next_action(0.0)
    m.received(OK, 0.0)
    inner = b"img\x10\x04\x01img\x10\x04\x04"  # raster bytes that happen to spell DLE EOT 1 and 4
    m.submit(job(data=inner), 0.1)
    action = m.next_action(0.1)
    assert isinstance(action, pr.WriteBytes)
    m.wrote(len(action.data), 0.1)
    assert m.next_action(0.1) == pr.AskStatus()
    # The printer answers its two inner requests with "ok" bytes, then ours with "paper out".
    assert m.received(OK[:1] + OK[3:4] + PAPER_OUT[:2], 0.2) == []
    notices = m.received(PAPER_OUT[2:], 0.2)
    assert pr.JobFailed("p", job(data=inner), "paper_out") in notices


def test_a_stalled_write_fails_the_job_once() -> None:
    m = pr.PrinterMachine("p", stall_s=10.0)
    m.next_action(0.0)
    m.received(OK, 0.0)
    m.submit(job(), 1.0)
    m.next_action(1.0)
    m.wrote(0, 1.0)  # its buffer is full
    assert m.tick(10.9) == []
    assert m.tick(11.0) == [pr.JobFailed("p", job(), "write_timeout")]
    assert m.tick(12.0) == [] and m.job is None  # never sent again by itself


def test_the_same_ticket_is_not_queued_twice() -> None:
    m = pr.PrinterMachine("p")
    m.submit(job(), 0.0)
    m.submit(job(), 0.0)
    assert len(m.queue) == 1


def pieces(*parts: bytes | Exception, drawn: list[int] | None = None) -> Iterator[bytes]:
    """A job drawn piece by piece; an exception where its drawing fails. `drawn` counts the pieces made."""
    for part in parts:
        if isinstance(part, Exception):
            raise part
        if drawn is not None:
            drawn.append(len(part))
        yield part


def ready_machine(chunk: int = 400) -> pr.PrinterMachine:
    m = pr.PrinterMachine("p", chunk=chunk)
    m.next_action(0.0)
    m.received(OK, 0.0)
    return m


def run_job(m: pr.PrinterMachine, now: float = 0.1) -> tuple[list[str], bytes, list[pr.Notice]]:
    """Do what the machine asks until it asks for a status; what it did, the bytes, the notices."""
    did: list[str] = []
    sent = bytearray()
    notices: list[pr.Notice] = []
    while (action := m.next_action(now)) is not None and not isinstance(action, pr.AskStatus):
        if isinstance(action, pr.DrawPiece):
            did.append("draw")
            notices += m.draw(now)
        else:
            did.append(f"write {len(action.data)}")
            sent += action.data
            m.wrote(len(action.data), now)
    did.append("ask" if action is not None else "none")
    return did, bytes(sent), notices


def test_a_streamed_job_is_drawn_a_piece_at_a_time_as_the_printer_takes_it() -> None:
    m = ready_machine(chunk=400)
    drawn: list[int] = []
    streamed = pr.PrintJob("B-001", "seal", pieces(b"a" * 900, b"b" * 100, b"c" * 500, drawn=drawn), 1)
    m.submit(streamed, 0.1)
    did, sent, notices = run_job(m)
    # A piece is drawn only when less than a write is left; no status is asked mid-job.
    assert did == ["draw", "write 400", "write 400", "draw", "draw", "write 400", "draw", "write 300", "ask"]
    assert sent == b"a" * 900 + b"b" * 100 + b"c" * 500 and drawn == [900, 100, 500] and notices == []
    assert m.received(OK, 0.2) == [pr.JobDone("p", streamed)] and m.printed == 1


def test_a_ticket_whose_drawing_fails_part_way_fails_once_after_sending_the_whole_commands_drawn() -> None:
    m = ready_machine(chunk=400)
    broken = pr.PrintJob("B-001", "seal", pieces(b"a" * 1000, ValueError("a QR code of 200 modules does not fit")), 1)
    m.submit(broken, 0.1)
    did, sent, notices = run_job(m)
    assert notices == [pr.JobFailed("p", broken, "render: a QR code of 200 modules does not fit")]
    # The 1000 bytes drawn (a band the printer is inside of) still go out, then nothing more.
    assert did == ["draw", "write 400", "write 400", "draw", "write 200", "ask"] and sent == b"a" * 1000
    assert m.received(OK, 0.2) == [] and (m.printed, m.failed) == (0, 1)  # it ended once: failed
    assert m.state is pr.PrinterState.READY
    m.submit(job("B-002"), 0.3)
    assert run_job(m, 0.3)[1] == b"x" * 1000  # the next ticket prints as usual


def test_the_reprint_of_a_ticket_whose_drawing_failed_is_queued_while_the_drawn_part_goes_out() -> None:
    m = ready_machine(chunk=400)
    m.submit(pr.PrintJob("B-001", "seal", pieces(b"a" * 500, ValueError("boom")), 1), 0.1)
    assert m.next_action(0.1) == pr.DrawPiece() and m.draw(0.1) == []
    m.wrote(400, 0.1)
    assert m.next_action(0.1) == pr.DrawPiece() and len(m.draw(0.1)) == 1  # failed: offered for reprint
    reprint = pr.PrintJob("B-001", "seal", b"r" * 100, 1, reprint=True)
    assert m.submit(reprint, 0.1) == [] and list(m.queue) == [reprint]  # not taken for the failed one
    assert m.next_action(0.1) == pr.WriteBytes(b"a" * 100)  # the drawn band's end first


def test_a_ticket_that_cannot_be_drawn_at_all_sends_nothing() -> None:
    m = ready_machine()
    broken = pr.PrintJob("B-001", "seal", pieces(ValueError("no font")), 1)
    m.submit(broken, 0.1)
    did, sent, notices = run_job(m)
    assert notices == [pr.JobFailed("p", broken, "render: no font")] and sent == b"" and m.job is None
    assert did == ["draw", "none"]  # a fresh status: nothing to do until the next job or poll


def test_a_status_request_split_between_two_pieces_is_counted_once() -> None:
    m = ready_machine()
    m.submit(pr.PrintJob("B-001", "seal", pieces(b"img\x10", b"\x04\x01img\x10\x04", b"\x03"), 1), 0.1)
    assert run_job(m)[0][-1] == "ask"
    # Two answers to the image's own requests come first, then the answer to ours.
    assert m.received(OK[:1] + OK[2:3] + PAPER_OUT[:2], 0.2) == []
    notices = m.received(PAPER_OUT[2:], 0.2)
    assert [type(n).__name__ for n in notices] == ["StatusChanged", "JobFailed"]
    assert isinstance(notices[1], pr.JobFailed) and notices[1].reason == "paper_out"


OPS = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, 5)),
    st.tuples(st.sampled_from(["paper_out", "cover_open", "unplugged", "near_end"]), st.booleans()),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.1, 0.6, 2.5, 11.0])),
    st.tuples(st.just("step"), st.integers(1, 4)),
)


@given(st.lists(OPS, max_size=40), st.integers(1, 700))
def test_every_job_is_sent_at_most_once_and_ends_once(ops: list[tuple[str, Any]], accept: int) -> None:
    """Any mix of jobs, faults and time on a simulated printer that takes `accept` bytes a write:
    no job's bytes reach the printer twice, a job refused at once reaches it not at all, and
    once the printer is fixed every job has ended exactly once (done or failed)."""
    printer = SimPrinter()
    t = [0.0]
    line = pr.PrinterLine(
        PrinterProfile("p"),
        lambda url: SimPrinterPort(printer, accept, url),
    )
    ended: dict[str, list[str]] = {}
    refused: set[str] = set()
    submitted: list[str] = []

    def note(notices: list[pr.Notice]) -> None:
        for n in notices:
            if isinstance(n, pr.JobDone | pr.JobFailed):
                ended.setdefault(n.job.ticket, []).append(type(n).__name__)

    for op, arg in ops:
        if op == "submit":
            ticket = f"T-{len(submitted):03d}"
            # Job bytes with a DLE EOT inside, as a raster picture may hold: answered by the printer.
            data = f"<{ticket}>".encode() + b"\x00\x10\x04\x02" * arg + b"." * 300
            if len(submitted) % 2:  # streamed, in pieces that split the requests too
                data = pieces(*(data[i : i + 7] for i in range(0, len(data), 7)))  # type: ignore[assignment]
            notices = line.machine.submit(pr.PrintJob(ticket, "seal", data, 1), t[0])
            if notices:
                refused.add(ticket)
            submitted.append(ticket)
            note(notices)
        elif op == "wait":
            t[0] += arg
        elif op == "step":
            for _ in range(arg):
                note(line.step(t[0]))
        elif op == "near_end":
            printer.paper_near_end = arg
        else:
            setattr(printer, op, arg)
    settle(line, printer, t, note)
    everything = bytes(printer.printed + printer.held)
    for ticket in submitted:
        assert everything.count(f"<{ticket}>".encode()) <= 1
        assert ended.get(ticket, []) in (["JobDone"], ["JobFailed"]), (ticket, ended.get(ticket))
        if ticket in refused:
            assert f"<{ticket}>".encode() not in everything


def settle(line: pr.PrinterLine, printer: SimPrinter, t: list[float], note: Callable[[list[pr.Notice]], None]) -> None:
    """Staff fix the printer; run (time `t[0]` on) until every job has ended."""
    printer.restore()
    m = line.machine
    for _ in range(20_000):  # a printer taking one byte a write needs a step per byte
        t[0] += 0.5
        note(line.step(t[0]))
        if m.job is None and not m.queue and m.status is not None and m.status.can_print:
            break


# -- the gateway ---------------------------------------------------------------------------------
@dataclass
class Rig:
    gw: Gateway
    clock: FakeClock
    printer: SimPrinter
    journal: Path

    @property
    def dispenser(self) -> Any:
        return self.gw.buses[0].port.bus.devices[1]

    @property
    def link(self) -> Any:
        return self.gw.buses[0].master.by_addr[1]

    @property
    def line(self) -> pr.PrinterLine:
        assert self.gw.printing is not None
        return self.gw.printing.lines["entrance"]

    def until(self, what: str, cond: Callable[[], bool], steps: int = 5000) -> None:
        for _ in range(steps):
            if cond():
                return
            self.gw.step()
        raise AssertionError(f"not {what} after {steps} gateway steps")

    def run_for(self, seconds: float) -> None:
        end = self.clock.now() + seconds
        self.until(f"{seconds} s on", lambda: self.clock.now() >= end)

    def idle(self) -> bool:
        m = self.line.machine
        return m.job is None and not m.queue and m._awaiting is None

    def token(self, ticket: str) -> str:
        assert self.gw.journal is not None
        return self.gw.journal.office.state.tickets[ticket].token

    def url(self, ticket: str) -> bytes:
        return f"https://queue.example.jp/oizumi/t/{self.token(ticket)}".encode()

    def events(self) -> list[ev.Event]:
        with JournalReader(self.journal) as reader:
            return list(reader.events())


KANJI_PRINTER = 'profile = "kanji"\nwidth_mm = 58\ncutter = true\nnative_qr = true'
RASTER_PRINTER = 'profile = "raster"\nwidth_mm = 80\ncutter = true'


def oizumi_config(raster: bool = False, model: str = "") -> tuple[OfficeConfig, str]:
    """The oizumi example; `raster`: its printer a raster 80 mm one, of `model` if given."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    url = "sim://bus?dispenser=1&counter_pad=5,6,7,8&call_display=16"
    assert url in text
    text = text.replace(url, url + "&backend=python")  # this test reads the devices' state directly
    if raster:
        assert KANJI_PRINTER in text
        text = text.replace(KANJI_PRINTER, RASTER_PRINTER + (f'\nmodel = "{model}"' if model else ""))
    return parse_config(text, source="oizumi.toml"), text


def start_gateway(
    tmp_path: Path,
    printer: SimPrinter,
    port_cls: type[SimPrinterPort] = SimPrinterPort,
    raster: bool = False,
    model: str = "",
) -> Rig:
    config, text = oizumi_config(raster, model)
    clock = FakeClock()

    def wall() -> datetime:
        return MONDAY_10 + timedelta(seconds=clock.now())

    journal = tmp_path / "j.db"
    gw = Gateway(
        config,
        text,
        journal,
        tmp_path / "j.sock",
        io.StringIO(),
        clock=clock,
        wall=wall,
        printer_opener=lambda url: port_cls(printer, url=url),
    )
    gw.start()
    rig = Rig(gw, clock, printer, journal)
    rig.until("online", lambda: rig.link.state is LinkState.ONLINE and rig.dispenser.lamps == 0b1111)
    rig.until("printer ready", lambda: rig.line.machine.state is pr.PrinterState.READY)
    return rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = start_gateway(tmp_path, SimPrinter())
    yield r
    r.gw.close()


def test_a_press_is_committed_then_printed(tmp_path: Path) -> None:
    seen_on_disk: list[bool] = []

    class Witness(SimPrinterPort):
        """Checks, at the first byte of a job, that another reader sees the ticket on disk."""

        def write(self, data: bytes) -> int:
            if data != FULL_REQUEST and not seen_on_disk:
                with JournalReader(tmp_path / "j.db") as reader:
                    seen_on_disk.append("B-001" in reader.state().tickets)
            return super().write(data)

    rig = start_gateway(tmp_path, SimPrinter(), Witness)
    try:
        assert rig.dispenser.press(SEAL)
        rig.until("printed", lambda: rig.line.machine.printed == 1)
        assert seen_on_disk == [True]
        printed = bytes(rig.printer.printed)
        assert printed.startswith(b"\x1b@") and printed.endswith(b"\x1dV\x01")  # init ... partial cut
        assert printed.count(rig.url("B-001")) == 1  # the native QR code's data: the resident's page
        assert rig.gw.journal is not None and rig.gw.journal.office.state.unprinted == {}
        assert rig.dispenser.text == ()
    finally:
        rig.gw.close()


def test_paper_out_stops_issuing_with_ask_staff_until_the_paper_is_back(rig: Rig) -> None:
    rig.printer.paper_out = True
    rig.until("stopped", lambda: rig.dispenser.text == ASK_STAFF)
    assert rig.dispenser.lamps == 0  # dark buttons take no press
    assert rig.dispenser.press(SEAL) == 0
    shown = rig.gw.handle({"cmd": "status"})["output"]
    assert shown.splitlines()[1] == "entrance     stopped   paper_out, paper near end 1"
    assert rig.gw.device_state()["printers"]["entrance"]["status"]["problem"] == "paper_out"
    rig.printer.restore()
    rig.until("issuing again", lambda: rig.dispenser.lamps == 0b1111 and rig.dispenser.text == ())
    assert rig.dispenser.press(SEAL)
    rig.until("printed", lambda: rig.line.machine.printed == 1)
    assert rig.gw.journal is not None and list(rig.gw.journal.office.state.tickets) == ["B-001"]


def test_a_press_already_made_when_the_paper_ran_out_is_refused(rig: Rig) -> None:
    assert rig.dispenser.press(SEAL)  # in the dispenser's queue, not yet polled
    rig.printer.paper_out = True
    assert rig.gw.printing is not None
    rig.clock.t += pr.STATUS_POLL_S
    rig.gw.printing.step(rig.clock.now())  # the poll finds it out of paper before the bus polls the dispenser
    assert rig.link.printer_stopped
    rig.until("the press answered", lambda: rig.dispenser.waiting_events == 0)
    assert rig.gw.journal is not None and rig.gw.journal.office.state.tickets == {}
    assert rig.printer.held == b"" and rig.printer.printed == b""


class JobBytes(SimPrinterPort):
    """Keeps every job byte the printer took, as sent (the simulated printer drops the DLE EOT
    sequences a raster may hold from what it prints), and how many QR codes had been made when
    the first of them went out."""

    sent: ClassVar[bytearray] = bytearray()
    qr_made_at_first_byte: ClassVar[list[int]] = []
    qr_made: ClassVar[list[str]] = []

    def write(self, data: bytes) -> int:
        n = super().write(data)
        if data != FULL_REQUEST and n:
            if not JobBytes.sent:
                JobBytes.qr_made_at_first_byte.append(len(JobBytes.qr_made))
            JobBytes.sent += data[:n]
        return n


@pytest.fixture
def raster_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    JobBytes.sent, JobBytes.qr_made_at_first_byte, JobBytes.qr_made = bytearray(), [], []

    def counted(data: str, error: str) -> tuple[bytes, ...]:
        JobBytes.qr_made.append(data)
        return qr_matrix(data, error)

    monkeypatch.setattr("signage.ticket.qr_matrix", counted)
    r = start_gateway(tmp_path, SimPrinter(), JobBytes, raster=True)
    JobBytes.qr_made.clear()  # the warm-up ticket's
    yield r
    r.gw.close()


def test_a_raster_ticket_starts_printing_before_its_qr_code_is_drawn(raster_rig: Rig) -> None:
    rig = raster_rig
    assert rig.dispenser.press(SEAL)
    rig.until("printed", lambda: rig.line.machine.printed == 1)
    assert JobBytes.qr_made_at_first_byte == [0]  # the top of the ticket went out first
    url = rig.url("B-001").decode()
    assert JobBytes.qr_made == [url]  # drawn once, while printing
    cmds = escpos.decode(bytes(JobBytes.sent))  # one whole job, sent once
    assert escpos.names(cmds) == ["init", "motion_units", "raster…", "feed_lines", "cut"]
    (bitmap,) = list(escpos.raster_rows(cmds))
    picture = Image.frombytes("1", (bitmap.width_bytes * 8, bitmap.height), bitmap.rows.translate(INVERT))
    assert [r.text for r in zxingcpp.read_barcodes(picture.convert("L"))] == [url]


def test_a_raster_ticket_whose_drawing_fails_part_way_is_unprinted_and_reprinted_whole(
    raster_rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = raster_rig

    def too_long(data: str, error: str) -> tuple[bytes, ...]:
        raise TicketError("a QR code of 300 modules does not fit 576 dots")

    monkeypatch.setattr("signage.ticket.qr_matrix", too_long)
    assert rig.dispenser.press(SEAL)
    rig.until("failed", lambda: rig.line.machine.failed == 1)
    assert rig.gw.journal is not None
    state = rig.gw.journal.office.state
    assert state.unprinted == {"B-001": "render: a QR code of 300 modules does not fit 576 dots"}
    rig.until("offers the reprint", lambda: rig.dispenser.text == REPRINT)
    rig.until("idle", rig.idle)
    # What went out is the top of the ticket in whole commands: no half band, no cut.
    assert escpos.names(escpos.decode(bytes(JobBytes.sent))) == ["init", "motion_units", "raster…"]
    assert rig.line.machine.printed == 0 and rig.line.machine.failed == 1  # ended once
    monkeypatch.undo()  # the fault is gone: the reprint prints the whole ticket
    JobBytes.sent.clear()
    assert rig.dispenser.press(SEAL)
    rig.until("reprinted", lambda: rig.line.machine.printed == 1)
    assert escpos.names(escpos.decode(bytes(JobBytes.sent)))[-2:] == ["feed_lines", "cut"]
    assert state.unprinted == {} and list(state.tickets) == ["B-001"]


def fail_a_print(rig: Rig) -> None:
    """Paper runs out between two status polls: the job goes out, the confirmation says paper out."""
    rig.printer.paper_out = True
    assert rig.dispenser.press(SEAL)
    rig.until("failed", lambda: rig.line.machine.failed == 1)


def test_a_failed_print_is_marked_and_reprinted_at_the_dispenser_with_the_same_qr_code(rig: Rig) -> None:
    fail_a_print(rig)
    assert rig.gw.journal is not None
    state = rig.gw.journal.office.state
    assert state.unprinted == {"B-001": "paper_out"}
    assert "B-001" in state.tickets  # the ticket stays valid: it keeps its place
    rig.until("ask staff", lambda: rig.dispenser.text == ASK_STAFF)
    rig.printer.restore()  # staff load paper (the printer finishes what it held)
    rig.until("offers the reprint", lambda: rig.dispenser.text == REPRINT and rig.dispenser.lamps == 0b1111)
    assert rig.printer.printed.count(rig.url("B-001")) == 1
    assert rig.dispenser.press(SEAL)  # the same button again: the same ticket, not a new one
    rig.until("reprinted", lambda: rig.line.machine.printed == 1)
    assert rig.printer.printed.count(rig.url("B-001")) == 2
    assert list(state.tickets) == ["B-001"] and state.unprinted == {}
    assert [e.TYPE for e in rig.events()][-2:] == ["print_failed", "reprinted"]
    rig.until("offer over", lambda: rig.dispenser.text == ())


def test_the_reprint_offer_ends_and_another_button_issues_a_new_ticket(rig: Rig) -> None:
    fail_a_print(rig)
    rig.printer.restore()
    rig.until("offers the reprint", lambda: rig.dispenser.text == REPRINT)
    assert rig.dispenser.press(0)  # move: someone else's new ticket
    rig.until("printed", lambda: rig.line.machine.printed == 1)
    assert rig.gw.journal is not None
    assert sorted(rig.gw.journal.office.state.tickets) == ["A-001", "B-001"]
    assert rig.link.reprint is None and rig.gw.printing is not None and rig.gw.printing.offers == {}
    rig.until("offer gone", lambda: rig.dispenser.text == ())
    assert rig.gw.journal.office.state.unprinted == {"B-001": "paper_out"}  # staff still see it


def test_the_unprinted_mark_survives_a_restart_and_staff_reprint_the_same_code(tmp_path: Path) -> None:
    rig = start_gateway(tmp_path, SimPrinter())
    fail_a_print(rig)
    url = rig.url("B-001")
    rig.gw.close()
    printer = SimPrinter()  # a new roll, a new process
    again = start_gateway(tmp_path, printer)
    try:
        assert again.gw.journal is not None and again.gw.journal.office.state.unprinted == {"B-001": "paper_out"}
        assert (
            "unprinted (reprint with `office reprint --ticket …`): B-001 (paper_out)"
            in again.gw.handle({"cmd": "show"})["output"]
        )
        reply = again.gw.handle({"cmd": "reprint", "ticket": "B-001"})
        assert reply == {
            "ok": True,
            "output": "B-001 sent to printer entrance (the same QR code as issued)\n",
            "refused": None,
        }
        again.until("printed", lambda: again.line.machine.printed == 1)
        assert printer.printed.count(url) == 1
        assert again.gw.journal.office.state.unprinted == {}
    finally:
        again.gw.close()


def test_staff_reprint_on_a_stopped_printer_is_refused_and_recorded(rig: Rig) -> None:
    assert rig.dispenser.press(SEAL)
    rig.until("printed", lambda: rig.line.machine.printed == 1)
    rig.printer.cover_open = True
    rig.until("stopped", lambda: rig.line.machine.state is pr.PrinterState.STOPPED)
    reply = rig.gw.handle({"cmd": "reprint", "ticket": "B-001"})
    assert reply["ok"] is False and reply["code"] == "printer_stopped"
    assert reply["error"] == "printer entrance cannot print now (cover_open); B-001 stays unprinted"
    assert rig.gw.journal is not None and rig.gw.journal.office.state.unprinted == {"B-001": "cover_open"}
    assert rig.gw.handle({"cmd": "reprint", "ticket": "Z-999"})["code"] == "unknown_ticket"
    assert rig.gw.handle({"cmd": "reprint", "ticket": "B-001", "printer": "nope"})["kind"] == "usage"


def test_a_retried_event_prints_once(rig: Rig) -> None:
    events = rig.dispenser._events
    answer = events.answer
    lost: list[int] = []

    def ack_lost_once(poll: Any) -> Any:
        # The first poll acknowledging the press loses its ack on the way: the dispenser sends
        # the same event again, as after any lost frame.
        if poll.ack and not lost:
            lost.append(poll.ack)
            poll = P.Poll(poll.addr, poll.seq, 0)
        return answer(poll)

    events.answer = ack_lost_once
    assert rig.dispenser.press(SEAL)
    rig.until("sent twice and acknowledged", lambda: bool(lost) and rig.dispenser.waiting_events == 0)
    rig.until("idle", rig.idle)
    rig.run_for(1.0)
    assert rig.gw.journal is not None and list(rig.gw.journal.office.state.tickets) == ["B-001"]
    assert rig.printer.printed.count(b"\x1dV\x01") == 1 and rig.line.machine.printed == 1


def test_an_unplugged_printer_stops_issuing_and_recovers(rig: Rig) -> None:
    rig.printer.unplugged = True
    rig.until("no response", lambda: rig.dispenser.text == ASK_STAFF)
    assert rig.line.machine.status == pr.NO_RESPONSE
    rig.printer.unplugged = False
    rig.until("back", lambda: rig.dispenser.lamps == 0b1111 and rig.dispenser.text == ())


def test_paper_near_end_is_a_warning_only(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.printer.paper_near_end = True
    with caplog.at_level(logging.WARNING, logger="gateway.printing"):
        rig.until("seen", lambda: rig.line.machine.status == PrinterStatus(paper_near_end=True))
    assert "printer entrance: paper near end: change the roll soon" in caplog.messages
    assert rig.dispenser.lamps == 0b1111 and rig.dispenser.press(SEAL)
    rig.until("printed", lambda: rig.line.machine.printed == 1)
    state = rig.gw.handle({"cmd": "status", "json": True})["status"]["printers"]["entrance"]
    assert state["state"] == "ready" and state["status"]["paper_near_end"] is True


# -- the office model's side -------------------------------------------------------------------------
def test_reprint_is_the_same_token_at_its_current_place_and_stores_nothing() -> None:
    config, _ = oizumi_config()
    office = Office(config)
    first = office.execute(IssueTicket("seal", "t" * 32), MONDAY_10).effects[0]
    office.execute(IssueTicket("seal", "u" * 32), MONDAY_10)
    office.execute(RecordPrintFailure("B-002", "entrance", "paper_out"), MONDAY_10)
    assert office.state.unprinted == {"B-002": "paper_out"}
    decision = office.execute(Reprint("B-002"), MONDAY_10 + timedelta(minutes=1))
    assert decision.events == []
    (ready,) = decision.effects
    assert isinstance(ready, TicketReady) and isinstance(first, TicketReady)
    assert ready.reprint and not first.reprint
    assert (ready.ticket, ready.token, ready.ahead, ready.issued_at) == ("B-002", "u" * 32, 1, MONDAY_10)
    office.execute(RecordReprint("B-002", "entrance"), MONDAY_10)
    assert office.state.unprinted == {}
    office.execute(OpenCounter("2"), MONDAY_10)
    office.execute(CallNext("2"), MONDAY_10)
    office.execute(FinishService("2"), MONDAY_10)
    with pytest.raises(OfficeError, match="B-001 is already served"):
        office.execute(Reprint("B-001"), MONDAY_10)
    with pytest.raises(OfficeError, match="no ticket 'Z-001' today"):
        office.execute(RecordPrintFailure("Z-001", "entrance", "paper_out"), MONDAY_10)


def test_the_unprinted_marks_end_with_the_business_day() -> None:
    config, _ = oizumi_config()
    office = Office(config)
    office.execute(IssueTicket("seal", "t" * 32), MONDAY_10)
    office.execute(RecordPrintFailure("B-001", "entrance", "no_response"), MONDAY_10)
    tuesday = MONDAY_10 + timedelta(days=1)
    with pytest.raises(OfficeError, match="no ticket 'B-001' today"):  # its token expired with the day
        office.execute(Reprint("B-001"), tuesday)
    office.execute(IssueTicket("seal", "v" * 32), tuesday)
    assert office.state.unprinted == {}


# -- the CLI without a gateway --------------------------------------------------------------------
def test_reprint_and_printer_status_need_the_running_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "j.db"
    assert cli.main(["office", "init", "--config", str(EXAMPLES / "oizumi.toml"), "--journal", str(journal)]) == 0
    for argv, message in (
        (["office", "reprint", "--ticket", "B-001"], "reprint needs the running gateway (it drives the printers)"),
        (["printer", "status"], "printer status needs the running gateway (it polls the printers)"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main([*argv, "--journal", str(journal)])
        assert exit_.value.code == 1
        assert message in capsys.readouterr().err


def test_a_lost_printer_port_fails_the_job_and_is_opened_again(tmp_path: Path) -> None:
    gone: list[bool] = []

    class Unpluggable(SimPrinterPort):
        """A USB printer whose device node vanishes while `gone`."""

        def __init__(self, printer: SimPrinter, accept: int | None = None, url: str = "sim://printer") -> None:
            if gone:
                raise PrinterPortError(f"cannot open printer port {url!r}: no such device")
            super().__init__(printer, accept, url)

        def write(self, data: bytes) -> int:
            if gone:
                raise OSError(19, "No such device")
            return super().write(data)

    rig = start_gateway(tmp_path, SimPrinter(), Unpluggable)
    try:
        gone.append(True)
        assert rig.dispenser.press(SEAL)
        rig.until("failed", lambda: rig.line.machine.failed == 1)
        assert rig.gw.journal is not None
        reason = "port_error: writing to the printer failed: [Errno 19] No such device"
        assert rig.gw.journal.office.state.unprinted == {"B-001": reason}
        rig.until("ask staff", lambda: rig.dispenser.text == ASK_STAFF)
        rig.run_for(3 * pr.REOPEN_S)  # tried again, still gone: still stopped
        assert rig.line.port is None and rig.dispenser.lamps == 0
        gone.clear()
        rig.until("open again", lambda: rig.line.port is not None and rig.dispenser.lamps == 0b1111)
        rig.until("the reprint offered", lambda: rig.dispenser.text == REPRINT)  # still within its minute
    finally:
        rig.gw.close()


def test_a_port_that_stays_gone_is_tried_less_often_and_quickly_again_once_it_answers() -> None:
    """After REOPEN_S, each failure in a row doubles the wait up to REOPEN_MAX_S (a printer off for
    the night is not knocked on every 5 s); once the printer answers, the next loss is retried
    after REOPEN_S again."""
    printer = SimPrinter()
    gone = [True]
    tries: list[float] = []
    now = [0.0]

    def opener(url: str) -> SimPrinterPort:
        tries.append(now[0])
        if gone[0]:
            raise PrinterPortError(f"cannot open printer port {url!r}: no such device")
        return SimPrinterPort(printer, None, url)

    line = pr.PrinterLine(PrinterProfile("p"), opener)
    while now[0] < 100.0:
        line.step(now[0])
        now[0] += 0.5
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[:3] == [pr.REOPEN_S, 2 * pr.REOPEN_S, pr.REOPEN_MAX_S]
    assert set(gaps[3:]) == {pr.REOPEN_MAX_S} and len(tries) < 100.0 / pr.REOPEN_S
    gone[0] = False
    while line.port is None or line.machine.status is None:  # open again, and the printer answers
        line.step(now[0])
        now[0] += 0.5
    line.close()  # lost again (unplugged): tried after REOPEN_S, not the backed-off wait
    gone[0] = True
    line._port_error(PrinterPortError("lost"), now[0])
    assert line._reopen_at == now[0] + pr.REOPEN_S


def test_staff_reprint_and_printer_status_through_the_control_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`counterfloor office reprint` and `printer status` as staff type them, answered by the
    running gateway over its socket (the CLI in a thread, the gateway's loop in this one)."""
    rig = start_gateway(tmp_path, SimPrinter())
    try:
        fail_a_print(rig)
        rig.printer.restore()
        rig.until("ready again", lambda: rig.line.machine.state is pr.PrinterState.READY)
        codes: list[int] = []
        sock = rig.gw.socket_file

        def staff(*argv: str) -> str:
            thread = threading.Thread(
                target=lambda: codes.append(cli.main([*argv, "--journal", str(rig.journal), "--socket", str(sock)])),
                daemon=True,
            )
            thread.start()
            while thread.is_alive():
                rig.gw.step()
            return capsys.readouterr().out

        out = staff("office", "reprint", "--ticket", "B-001")
        assert out == "B-001 sent to printer entrance (the same QR code as issued)\n"
        rig.until("reprinted", lambda: rig.line.machine.printed == 1)
        assert rig.printer.printed.count(rig.url("B-001")) == 2  # the held one, and the reprint
        out = staff("printer", "status")
        assert out.splitlines() == [
            "printer      state     status                   dispensers",
            "entrance     ready     ok                       1",
        ]
        assert codes == [0, 0]
    finally:
        rig.gw.close()
