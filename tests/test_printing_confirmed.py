"""Printed means printed (docs/printing.md): a job ends with the request its printer's model
answers only after printing what came before it (GS ( H process ID, or GS r 1), and the ticket
counts printed only on that answer; a fault while its tail prints, or no answer, puts it on the
reprint path. The printer machine alone, the simulated printers that answer as a model would,
the whole gateway on a fake clock, and `counterfloor printer probe`. Nothing sleeps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from counterfloor import cli
from gateway import printing as pr
from hal import escpos
from hal.printer_sim import PtyPrinter, SimIdentity, SimPrinter, SimPrinterPort, parse_printer_url
from hal.printer_status import (
    NO_RESPONSE,
    PAPER_SENSOR_REQUEST,
    PROCESS_ID_ALPHABET,
    PrinterStatus,
    find_process_ids,
    identity_request,
    is_status_byte,
    process_id,
    process_id_request,
    process_id_response,
    split_answers,
    status_bytes,
)
from office import printer_models
from office.config import PrinterProfile
from tests.test_printing import ASK_STAFF, REPRINT, SEAL, Rig, settle, start_gateway

OK = status_bytes(PrinterStatus())
PAPER_OUT = status_bytes(PrinterStatus(online=False, paper_out=True))
COVER_OPEN = status_bytes(PrinterStatus(online=False, cover_open=True))
FIRST = process_id(1)  # the first job's ID of a machine made with first_id=0


# -- the ESC/POS pieces ----------------------------------------------------------------------------
def test_the_process_id_request_and_response_are_epsons() -> None:
    assert process_id_request(b"AB12") == bytes.fromhex("1d 28 48 06 00 30 30") + b"AB12"
    assert process_id_response(b"AB12") == b"\x37\x22AB12\x00"
    with pytest.raises(ValueError, match=r"four bytes of 32\.\.126"):
        process_id_request(b"\x10\x04\x01\x02")
    assert PAPER_SENSOR_REQUEST == b"\x1dr\x01" and identity_request(67) == b"\x1dIC"


def test_no_byte_of_a_completion_answer_is_ever_taken_for_a_status_answer() -> None:
    ids = {process_id(n) for n in range(0, 200_000, 997)}
    assert len(ids) == len(range(0, 200_000, 997)) and all(set(i) <= set(PROCESS_ID_ALPHABET) for i in ids)
    for pid in ids:
        assert not any(is_status_byte(b) for b in process_id_response(pid))
    assert not any(is_status_byte(b) for b in range(0x10))  # GS r 1 answers: bits 4 and 7 clear


@given(st.lists(st.sampled_from([OK, PAPER_OUT]), max_size=4), st.integers(0, 7), st.integers(0, 10_000))
def test_answers_interleaved_anyhow_are_told_apart(statuses: list[bytes], at: int, n: int) -> None:
    response = process_id_response(process_id(n))
    mixed = response[:at] + b"".join(statuses) + response[at:]
    answers, other = split_answers(mixed)
    assert answers == b"".join(statuses) and other == response
    assert find_process_ids(other) == ([process_id(n)], b"")
    if at < len(response):  # its start: kept for the rest to join
        assert find_process_ids(other[:at]) == ([], other[:at])


# -- the machine alone -------------------------------------------------------------------------------
def job(ticket: str = "B-001", data: bytes = b"x" * 1000) -> pr.PrintJob:
    return pr.PrintJob(ticket, "seal", data, 1)


def machine(completion: str, **kw: Any) -> pr.PrinterMachine:
    m = pr.PrinterMachine("p", chunk=400, completion=completion, first_id=0, **kw)
    m.next_action(0.0)
    m.received(OK, 0.0)
    return m


def send(m: pr.PrinterMachine, now: float = 0.1) -> bytes:
    """Write what the machine asks until it asks for a status (returned bytes: all it sent)."""
    sent = bytearray()
    while isinstance(action := m.next_action(now), pr.WriteBytes | pr.DrawPiece):
        if isinstance(action, pr.DrawPiece):
            m.draw(now)
        else:
            sent += action.data
            m.wrote(len(action.data), now)
    assert action == pr.AskStatus()  # the first poll, as the last byte is taken
    return bytes(sent)


def test_a_process_id_job_is_done_only_when_its_id_comes_back() -> None:
    m = machine("process-id")
    m.submit(job(), 0.1)
    assert send(m) == b"x" * 1000 + process_id_request(FIRST)
    assert m.received(OK, 0.2) == [] and m.state is pr.PrinterState.PRINTING  # fine, still printing
    assert m.next_action(0.3) is None and m.next_wakeup(0.3) == pytest.approx(0.2 + pr.CONFIRM_POLL_S)
    assert m.next_action(0.7) == pr.AskStatus()  # polled while the tail prints
    assert m.received(OK, 0.7) == []
    assert m.received(process_id_response(b"zzzz"), 0.8) == []  # not ours
    assert m.received(process_id_response(FIRST), 0.9) == [pr.JobDone("p", job())]
    assert (m.printed, m.failed, m.state) == (1, 0, pr.PrinterState.READY)


def test_its_answer_split_and_mixed_with_status_answers_still_ends_it_once() -> None:
    m = machine("process-id")
    inner = b"img\x10\x04\x01img"  # a raster picture's bytes that spell DLE EOT 1: answered too
    m.submit(job(data=inner), 0.1)
    send(m)
    answer = process_id_response(FIRST)
    assert m.received(OK[:1] + answer[:3] + OK[:2], 0.2) == []
    notices = m.received(answer[3:] + OK[2:], 0.2)
    assert notices == [pr.JobDone("p", job(data=inner))] and m.status == PrinterStatus()
    assert m.received(answer, 0.3) == [] and m.printed == 1  # the same answer again: counted once


@pytest.mark.parametrize(("answer", "reason"), [(PAPER_OUT, "paper_out"), (COVER_OPEN, "cover_open")])
def test_a_fault_while_the_tail_prints_fails_it_and_its_late_answer_changes_nothing(answer: bytes, reason: str) -> None:
    m = machine("process-id")
    m.submit(job(), 0.1)
    send(m)
    assert m.received(OK, 0.2) == []
    m.next_action(0.7)
    notices = m.received(answer, 0.7)
    assert pr.JobFailed("p", job(), reason) in notices and m.state is pr.PrinterState.STOPPED
    # Staff load paper: the printer finishes that ticket and answers its ID, long after.
    assert m.received(process_id_response(FIRST), 30.0) == [] and (m.printed, m.failed) == (0, 1)


def test_no_answer_within_the_time_out_fails_it_as_not_confirmed() -> None:
    m = machine("process-id", confirm_timeout_s=10.0)
    m.submit(job(), 0.1)
    send(m)
    m.received(OK, 0.1)
    now = 0.1
    while now < 10.0:  # polled all along, always fine, never answered
        assert m.tick(now) == []
        if m.next_action(now) == pr.AskStatus():
            m.received(OK, now)
        now += 0.25
    assert m.tick(10.1) == [pr.JobFailed("p", job(), pr.NOT_CONFIRMED)]
    assert m.state is pr.PrinterState.READY and m.job is None  # the printer itself is fine


def test_a_printer_that_stops_answering_while_the_tail_prints_is_no_response() -> None:
    m = machine("process-id")
    m.submit(job(), 0.1)
    send(m)
    assert m.tick(0.1 + m.status_timeout_s) == [
        pr.StatusChanged("p", PrinterStatus(), NO_RESPONSE),
        pr.JobFailed("p", job(), "no_response"),
    ]


def test_a_status_model_ends_with_gs_r_and_skips_the_answers_failed_jobs_still_owe() -> None:
    m = machine("status")
    m.submit(job("B-001"), 0.1)
    assert send(m).endswith(PAPER_SENSOR_REQUEST)
    assert m.received(OK, 0.2) == []
    assert m.received(b"\x00", 0.3) == [pr.JobDone("p", job("B-001"))]
    m.submit(job("B-002"), 0.4)
    send(m, 0.4)
    assert pr.JobFailed("p", job("B-002"), "cover_open") in m.received(COVER_OPEN, 0.5)
    assert m.next_action(3.0) == pr.AskStatus() and m.received(OK, 3.0) != []  # closed again
    m.submit(job("B-003"), 3.1)
    send(m, 3.1)
    m.received(OK, 3.1)
    # B-002's request was held in the printer and is answered first: it is not B-003's.
    assert m.received(b"\x00", 3.2) == [] and m.job is not None
    assert m.received(b"\x03", 3.3) == [pr.JobDone("p", job("B-003"))]  # near end: printed
    assert (m.printed, m.failed) == (2, 1)


def test_a_none_model_keeps_the_status_rule_and_sends_no_request() -> None:
    m = machine("none")
    m.submit(job(), 0.1)
    assert send(m) == b"x" * 1000
    assert m.received(OK, 0.2) == [pr.JobDone("p", job())]


def test_a_ticket_whose_drawing_fails_sends_no_completion_request() -> None:
    m = machine("process-id")
    broken = pr.PrintJob("B-001", "seal", iter_fail(b"a" * 500), 1)
    m.submit(broken, 0.1)
    assert send(m) == b"a" * 500  # whole commands drawn before, then nothing: no request
    assert m.received(OK, 0.2) == [] and (m.printed, m.failed) == (0, 1)


def iter_fail(first: bytes) -> Iterator[bytes]:
    yield first
    raise ValueError("boom")


# -- the simulated printers ------------------------------------------------------------------------
def band(rows: bytes, width: int = 4) -> bytes:
    return escpos.raster_band(rows, width)


def test_the_fakes_answer_as_their_model_would() -> None:
    ask = process_id_request(b"A1B2") + PAPER_SENSOR_REQUEST + identity_request(67) + identity_request(1)
    epson = SimPrinter(completion="process-id", identity=SimIdentity("EPSON", "TM-T88V"))
    assert epson.feed(b"\x1b@ticket" + ask) == b"\x37\x22A1B2\x00" + b"\x00" + b"\x5fTM-T88V\x00" + b"\x20"
    assert SimPrinter(completion="status").feed(ask) == b"\x00"
    assert (
        SimPrinter().feed(ask) == b"" and SimPrinter(completion="process-id", ignore_completion=True).feed(ask) == b""
    )
    assert epson.printed == b"\x1b@ticket"  # requests are not printed


def test_the_fakes_follow_the_commands_so_a_picture_never_asks_anything() -> None:
    p = SimPrinter(completion="process-id", identity=SimIdentity("EPSON", "TM-T88V"))
    rows = PAPER_SENSOR_REQUEST + identity_request(66) + b"\x1d(H\x06\x0000AAAA" + b"\x00" * 3  # 5 rows
    job = b"\x1b@" + band(rows) + b"\x1dVB\x00"
    answers = b"".join(p.feed(job[i : i + 3]) for i in range(0, len(job), 3))  # split anyhow
    assert answers == b"" and p.printed == job


def test_a_tail_fault_holds_the_answer_and_half_the_ticket_until_restored() -> None:
    p = SimPrinter(completion="process-id", tail_fault="paper_out")
    job = b"\x1b@" + b"t" * 100 + b"\x1dVB\x00" + process_id_request(b"AAAA")
    assert p.feed(job) == b""
    assert p.status.problem == "paper_out" and p.tail_fault is None
    whole = b"\x1b@" + b"t" * 100 + b"\x1dVB\x00"
    assert p.printed == whole[: len(whole) // 2] and p.held == process_id_request(b"AAAA")  # half, no cut
    p.restore()
    assert p.printed == b"\x1b@" + b"t" * 100 + b"\x1dVB\x00" and p.take_outbox() == b"\x37\x22AAAA\x00"
    port = SimPrinterPort(SimPrinter(completion="status", tail_fault="cover_open"))
    port.write(b"\x1b@x\x1dV\x01" + PAPER_SENSOR_REQUEST)
    assert port.in_waiting == 0 and port.printer.cover_open
    port.printer.restore()
    assert port.read(8) == b"\x00"  # the late answer reaches whoever reads the port


def test_sim_urls_name_the_models_behaviour() -> None:
    printer, _ = parse_printer_url(
        "sim://printer?completion=process-id&tail_fault=paper_out&maker=EPSON&name=TM-T88V&firmware=30.01"
    )
    assert (printer.completion, printer.tail_fault) == ("process-id", "paper_out")
    assert printer.identity == SimIdentity("EPSON", "TM-T88V", "30.01")
    assert parse_printer_url("sim://printer?completion=status&ignore_completion=1")[0].ignore_completion
    for url, message in (
        ("sim://printer?completion=maybe", "completion must be one of process-id, status, none"),
        ("sim://printer?tail_fault=fire", "tail_fault must be one of paper_out, cover_open"),
        ("sim://printer?maker=EPSON", "a GS I identity needs name="),
    ):
        with pytest.raises(ValueError, match=message):
            parse_printer_url(url)


# -- any mix of faults, on the machine and a fake printer ---------------------------------------------
OPS = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, 3)),
    st.tuples(st.sampled_from(["paper_out", "cover_open", "unplugged"]), st.booleans()),
    st.tuples(st.just("tail_fault"), st.sampled_from(["paper_out", "cover_open"])),
    st.tuples(st.just("restore"), st.just(0)),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.1, 0.6, 2.5, 11.0])),
    st.tuples(st.just("step"), st.integers(1, 4)),
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["process-id", "status"]), st.lists(OPS, max_size=40), st.integers(1, 700))
def test_a_ticket_counts_printed_only_when_all_of_it_came_out(
    completion: str, ops: list[tuple[str, Any]], accept: int
) -> None:
    """Any mix of jobs, faults (also while a ticket's tail prints), repairs and time: every job
    ends once, and a job counts done only if all of it (its first and last bytes, and its cut) is
    on paper at that moment, unless bytes of it went into a pulled cable: no printer can answer
    for bytes it never got. A job never reaches paper twice."""
    printer = SimPrinter(completion=completion)
    lossy: set[str] = set()  # jobs with bytes written into a pulled cable: lost on the way

    class Port(SimPrinterPort):
        def write(self, data: bytes) -> int:
            if self.printer.unplugged and line.machine.job is not None:
                lossy.add(line.machine.job.ticket)
            return super().write(data)

    line = pr.PrinterLine(PrinterProfile("p"), lambda url: Port(printer, accept, url))
    line.machine = pr.PrinterMachine("p", completion=completion)
    t = [0.0]
    ended: dict[str, list[str]] = {}
    submitted: list[str] = []

    def note(notices: list[pr.Notice]) -> None:
        for n in notices:
            if isinstance(n, pr.JobDone) and n.job.ticket not in lossy:
                ticket = n.job.ticket
                whole = f"<{ticket}" + "." * 200 + f"{ticket}>"
                assert whole.encode() + b"\x1dV\x01" in printer.printed, ticket
            if isinstance(n, pr.JobDone | pr.JobFailed):
                ended.setdefault(n.job.ticket, []).append(type(n).__name__)

    for op, arg in ops:
        if op == "submit":
            ticket = f"T-{len(submitted):03d}"
            # A DLE EOT inside, as a raster picture may hold one: answered by the printer.
            data = b"\x1b@" + f"<{ticket}".encode() + b"\x10\x04\x02" * arg + b"." * 200 + f"{ticket}>".encode()
            note(line.machine.submit(pr.PrintJob(ticket, "seal", data + b"\x1dV\x01", 1), t[0]))
            submitted.append(ticket)
        elif op == "wait":
            t[0] += arg
        elif op == "step":
            for _ in range(arg):
                note(line.step(t[0]))
        elif op == "restore":
            printer.restore()
        elif op == "tail_fault":
            printer.tail_fault = arg
        else:
            setattr(printer, op, arg)
    printer.tail_fault = None
    settle(line, printer, t, note)
    m = line.machine
    everything = bytes(printer.printed + printer.held)
    for ticket in submitted:
        assert everything.count(f"<{ticket}".encode()) <= 1
        assert ended.get(ticket, []) in (["JobDone"], ["JobFailed"]), (ticket, ended.get(ticket))
    assert m.printed + m.failed == len(submitted)


# -- the gateway -----------------------------------------------------------------------------------------
PROCESS_ID_MODEL = replace(
    printer_models.MODELS["epson-tm-t88v"], name="test-process-id", title="Epson TM-T88Z", completion="process-id"
)


@pytest.fixture(autouse=True)
def process_id_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model answering GS ( H: the table marks GS ( H unconfirmed for every model it has."""
    monkeypatch.setitem(printer_models.MODELS, PROCESS_ID_MODEL.name, PROCESS_ID_MODEL)


def model_gateway(tmp_path: Path, model: str, printer: SimPrinter) -> Rig:
    """The oizumi example with its printer a raster 80 mm printer of `model`, on a fake clock."""
    return start_gateway(tmp_path, printer, raster=True, model=model)


def fake_of(model: str, **kw: Any) -> SimPrinter:
    """A fake printer that answers as `model` would."""
    m = printer_models.MODELS[model]
    identity = SimIdentity.from_title(m.title) if m.identifies else None
    return SimPrinter(completion=m.completion, identity=identity, **kw)


def cuts(printer: SimPrinter) -> int:
    """The cuts on paper (GS V 66 0 or GS V 1, as the model's cutter); half a ticket does not decode."""
    return sum(bytes(printer.printed).count(cut) for cut in (b"\x1dVB\x00", b"\x1dV\x01"))


@pytest.mark.parametrize("model", ["test-process-id", "epson-tm-t88v"])
def test_a_ticket_is_printed_when_its_printer_says_it_finished_it(tmp_path: Path, model: str) -> None:
    rig = model_gateway(tmp_path, model, fake_of(model))
    try:
        assert rig.line.machine.completion == printer_models.MODELS[model].completion
        assert rig.dispenser.press(SEAL)
        rig.until("printed", lambda: rig.line.machine.printed == 1)
        assert rig.printer.completion_requests == 1 and cuts(rig.printer) == 1
        assert rig.gw.journal is not None and rig.gw.journal.office.state.unprinted == {}
        assert "print_failed" not in [e.TYPE for e in rig.events()]
    finally:
        rig.gw.close()


@pytest.mark.parametrize(("model", "fault"), [("test-process-id", "paper_out"), ("epson-tm-t88v", "cover_open")])
def test_a_fault_while_the_tail_prints_puts_the_ticket_on_the_reprint_path(
    tmp_path: Path, model: str, fault: str
) -> None:
    rig = model_gateway(tmp_path, model, fake_of(model, tail_fault=fault))
    try:
        assert rig.dispenser.press(SEAL)
        rig.until("failed", lambda: rig.line.machine.failed == 1)
        assert rig.gw.journal is not None
        state = rig.gw.journal.office.state
        assert state.unprinted == {"B-001": fault} and cuts(rig.printer) == 0  # half a ticket, no cut
        rig.until("ask staff", lambda: rig.dispenser.text == ASK_STAFF)
        rig.printer.restore()  # the rest of that ticket comes out, and its late answer
        rig.until("offers the reprint", lambda: rig.dispenser.text == REPRINT and rig.dispenser.lamps == 0b1111)
        rig.run_for(1.0)
        assert cuts(rig.printer) == 1 and rig.line.machine.printed == 0  # the late answer counts nothing
        assert rig.dispenser.press(SEAL)  # the same button: the same ticket again
        rig.until("reprinted", lambda: rig.line.machine.printed == 1)
        assert cuts(rig.printer) == 2 and list(state.tickets) == ["B-001"] and state.unprinted == {}
        kinds = [e.TYPE for e in rig.events()]
        assert kinds.count("print_failed") == 1 and kinds.count("reprinted") == 1
        assert kinds.index("print_failed") < kinds.index("reprinted")
        assert (rig.line.machine.printed, rig.line.machine.failed) == (1, 1)
    finally:
        rig.gw.close()


def test_a_printer_that_never_answers_its_models_request_fails_each_ticket_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = model_gateway(tmp_path, "test-process-id", fake_of("test-process-id", ignore_completion=True))
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.printing"):
            assert rig.dispenser.press(SEAL)
            rig.run_for(pr.CONFIRM_TIMEOUT_S - 1.0)
            assert rig.line.machine.failed == 0 and rig.line.machine.state is pr.PrinterState.PRINTING
            rig.until("failed", lambda: rig.line.machine.failed == 1)
        assert rig.gw.journal is not None and rig.gw.journal.office.state.unprinted == {"B-001": "not_confirmed"}
        assert any("counterfloor printer probe sim://printer" in msg for msg in caplog.messages)
        assert rig.line.machine.state is pr.PrinterState.READY and rig.dispenser.lamps == 0b1111
        rig.until("offers the reprint", lambda: rig.dispenser.text == REPRINT)
        assert cuts(rig.printer) == 1  # it did print: the office just cannot know
    finally:
        rig.gw.close()


def test_a_model_without_a_completion_request_keeps_the_status_rule(tmp_path: Path) -> None:
    rig = model_gateway(tmp_path, "citizen-ppu-700", fake_of("citizen-ppu-700"))
    try:
        assert rig.line.machine.completion == "none"
        assert rig.dispenser.press(SEAL)
        rig.until("printed", lambda: rig.line.machine.printed == 1)
        assert rig.printer.completion_requests == 0 and cuts(rig.printer) == 1
    finally:
        rig.gw.close()


# -- `counterfloor printer probe` ----------------------------------------------------------------------------
def probe(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["printer", "probe", url, "--timeout", "0.05", *extra])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_probe_names_a_printer_that_answers_gs_i_and_its_model(capsys: pytest.CaptureFixture[str]) -> None:
    url = "sim://printer?completion=status&maker=EPSON&name=TM-T88V&firmware=30.01&serial=X1"
    code, out, err = probe(url, capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{url}:",
        "  firmware  30.01",
        "  maker     EPSON",
        "  model     TM-T88V",
        "  serial    X1",
        "  IDs       model ID 0x20, type ID 0x02 (autocutter), ROM version 0x01",
        '  config    model = "epson-tm-t88v"  (Epson TM-T88V, completion status)',
        "  status    ok",
    ]


def test_probe_says_when_no_model_matches_or_gs_i_is_not_answered(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = probe("sim://printer?maker=ACME&name=POS-80", capsys)
    assert code == 0 and "no model in office/printer_models.py matches 'ACME POS-80'" in out
    code, out, _ = probe("sim://printer?paper=near_end", capsys)
    assert code == 0 and out.splitlines()[1:] == [
        "  GS I      not answered (no answer): its model cannot be told from here",
        "  status    ok, paper near end",
    ]
    stopped = SimPrinter(paper_out=True, identity=SimIdentity("EPSON", "TM-T88V"))
    monkeypatch.setattr("counterfloor.printer_probe.open_printer", lambda url: SimPrinterPort(stopped, url=url))
    code, out, _ = probe("sim://printer", capsys)
    # Never asked: it would answer once fixed, to whoever has the port then (the gateway).
    assert code == 0 and "not answered (it cannot print now)" in out and stopped.held == b""


def test_probe_of_a_printer_that_does_not_answer_fails_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = probe("sim://printer?unplugged=1", capsys)
    assert (code, out) == (1, "")
    assert err == (
        "counterfloor: error: no answer from sim://printer?unplugged=1 within 0.05 s: is it on, and is this its port?\n"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/dev/no-such-printer", "cannot open printer port '/dev/no-such-printer': no such device"),
        ("sim://printer?paper=wet", "paper must be ok, near_end or out"),
    ],
)
def test_probe_of_a_bad_port_is_the_usual_error(url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = probe(url, capsys)
    assert (code, out) == (1, "") and err.startswith("counterfloor: error: ") and message in err


def test_probe_over_a_pty(capsys: pytest.CaptureFixture[str]) -> None:
    """A real serial path: the fake on a pty master, served by a thread that waits on select."""
    sim = PtyPrinter(SimPrinter(completion="status", identity=SimIdentity.from_title("Citizen PPU-700II")))
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [sim.serve(0.05) for _ in iter(stop.is_set, True)], daemon=True)
    thread.start()
    try:
        code, out, err = probe(sim.path, capsys, "--timeout", "5")
    finally:
        stop.set()
        thread.join(timeout=5)
        sim.close()
    assert (code, err) == (0, ""), err
    assert '  config    model = "citizen-ppu-700"  (Citizen PPU-700 / PPU-700II (printer presenter unit)' in out
    assert sim.printer.status_requests == 4 and sim.printer.printed == b""  # questions print nothing
