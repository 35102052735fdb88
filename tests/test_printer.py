"""hal's printer side: DLE EOT status bytes (golden and property), the simulated printer, the
transport on sim://printer, a pty pair and a one-way device, and `counterfloor printer test`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from counterfloor import cli
from counterfloor.ticket_cli import sample_ticket
from gateway.ticket_bytes import ticket_bytes
from hal.printer import PrinterPortError, RawDevicePort, open_printer, query_status, send_all, write_some
from hal.printer_sim import PtyPrinter, SimPrinter, SimPrinterPort, parse_printer_url
from hal.printer_status import (
    FULL_REQUEST,
    NO_RESPONSE,
    PrinterStatus,
    StatusFormatError,
    parse_status,
    status_bytes,
    status_request,
)
from office.config import PrinterProfile, load_config
from tests.conftest import EXAMPLES

# -- status bytes ----------------------------------------------------------------------------------
GOLDEN = [
    # (n=1, n=2, n=3, n=4) as an Epson TM printer answers them, and what they mean.
    (b"\x16\x12\x12\x12", PrinterStatus()),  # ready (0x16: drawer pin high, as on many printers)
    (b"\x12\x12\x12\x1e", PrinterStatus(paper_near_end=True)),
    (b"\x1a\x32\x12\x7e", PrinterStatus(online=False, paper_out=True, paper_near_end=True)),
    (b"\x1a\x16\x12\x12", PrinterStatus(online=False, cover_open=True)),
    (b"\x1a\x52\x1a\x12", PrinterStatus(online=False, error=True)),  # autocutter error
    (b"\x1a\x12\x12\x12", PrinterStatus(online=False)),  # offline for another reason (feed button)
]


def test_status_request_bytes() -> None:
    assert status_request(1) == b"\x10\x04\x01"
    assert FULL_REQUEST == b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"
    with pytest.raises(ValueError, match="n must be one of"):
        status_request(5)


@pytest.mark.parametrize(("answer", "status"), GOLDEN)
def test_golden_status_bytes(answer: bytes, status: PrinterStatus) -> None:
    assert parse_status(answer) == status


def test_what_each_status_means_for_printing() -> None:
    problems = [parse_status(answer).problem for answer, _ in GOLDEN]
    assert problems == [None, None, "paper_out", "cover_open", "error", "offline"]
    assert NO_RESPONSE.problem == "no_response" and not NO_RESPONSE.can_print
    assert parse_status(b"\x12\x12\x12\x1e").describe() == "ok, paper near end"


def test_not_a_status_answer_is_a_clear_error() -> None:
    with pytest.raises(StatusFormatError, match=r"DLE EOT 3: 0x00 is not a status byte"):
        parse_status(b"\x12\x12\x00\x12")
    with pytest.raises(StatusFormatError, match="expected 4 status bytes, got 3"):
        parse_status(b"\x12\x12\x12")


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_the_simulators_bytes_say_what_it_is(cover: bool, near: bool, out: bool, error: bool) -> None:
    status = PrinterStatus(
        online=not (cover or out or error), cover_open=cover, paper_near_end=near, paper_out=out, error=error
    )
    back = parse_status(status_bytes(status))
    assert (back.cover_open, back.paper_out, back.error, back.can_print) == (cover, out, error, status.can_print)
    assert back.paper_near_end == (near or out)


@given(st.binary(max_size=8))
def test_garbage_gives_a_status_or_a_format_error(data: bytes) -> None:
    with contextlib.suppress(StatusFormatError):
        parse_status(data)


# -- the simulated printer ---------------------------------------------------------------------------
def test_sim_answers_status_requests_anywhere_and_records_the_rest() -> None:
    p = SimPrinter(paper_near_end=True)
    assert p.feed(b"AB\x10") == b""  # a DLE at the end: maybe a request, wait for the rest
    assert p.feed(b"\x04\x04CD") == status_bytes(p.status)[3:4]
    assert bytes(p.printed) == b"ABCD"
    assert p.feed(FULL_REQUEST) == status_bytes(p.status)
    assert p.status_requests == 5


def test_sim_holds_data_while_out_of_paper_and_prints_it_when_restored() -> None:
    p = SimPrinter(paper_out=True)
    assert parse_status(p.feed(FULL_REQUEST)).problem == "paper_out"
    p.feed(b"ticket")
    assert p.printed == b"" and p.held == b"ticket"
    p.restore()
    assert p.printed == b"ticket" and parse_status(p.feed(FULL_REQUEST)).can_print


def test_an_unplugged_sim_answers_nothing_and_loses_what_it_is_sent() -> None:
    p = SimPrinter(unplugged=True)
    assert p.feed(FULL_REQUEST + b"ticket") == b""
    assert p.printed == b"" and p.held == b""


def test_sim_url_options_and_errors() -> None:
    printer, accept = parse_printer_url("sim://printer?paper=near_end&cover=open&accept=64")
    assert (printer.paper_near_end, printer.cover_open, accept) == (True, True, 64)
    with pytest.raises(ValueError, match="paper must be ok, near_end or out"):
        parse_printer_url("sim://printer?paper=wet")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['colour'\]"):
        parse_printer_url("sim://printer?colour=red")
    with pytest.raises(ValueError, match="accept must be a positive number"):
        parse_printer_url("sim://printer?accept=0")


# -- the transport -------------------------------------------------------------------------------------
def test_sim_port_takes_bounded_writes_and_answers_status() -> None:
    port = open_printer("sim://printer?paper=near_end&accept=100")
    assert isinstance(port, SimPrinterPort)
    assert write_some(port, b"x" * 250) == 100  # a small buffer: the caller keeps the rest
    assert query_status(port) == PrinterStatus(paper_near_end=True)
    send_all(port, b"y" * 1000, chunk=64)
    assert bytes(port.printer.printed) == b"x" * 100 + b"y" * 1000


def test_an_unplugged_sim_port_gives_no_response() -> None:
    port = open_printer("sim://printer?unplugged=1")
    assert query_status(port, timeout=0.01) is NO_RESPONSE


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/dev/no-such-printer", "cannot open printer port '/dev/no-such-printer': no such device"),
        ("bogus://printer", "cannot open printer port 'bogus://printer'"),
        ("sim://printer?paper=wet", "paper must be ok, near_end or out"),
    ],
)
def test_a_bad_port_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(PrinterPortError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_printer(url)


def test_a_one_way_device_is_written_and_gives_no_response() -> None:
    port = open_printer("/dev/null")  # a character device that is not a tty, like /dev/usb/lp0
    try:
        assert isinstance(port, RawDevicePort)
        send_all(port, b"z" * 2000)
        assert query_status(port, timeout=0.05) is NO_RESPONSE
    finally:
        port.close()


@pytest.fixture
def pty_printer() -> Iterator[PtyPrinter]:
    """A SimPrinter on a pty master, served by a thread that waits on select (never sleeps)."""
    sim = PtyPrinter()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            sim.serve(timeout=0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sim
    stop.set()
    thread.join(timeout=5)
    sim.close()


def test_the_simulated_printer_over_a_pty_pair(pty_printer: PtyPrinter) -> None:
    port = open_printer(pty_printer.path)
    try:
        assert query_status(port, timeout=5.0) == PrinterStatus()
        job = bytes(range(256)) * 20  # every byte value, DLE EOT n among them
        clean = job.replace(b"\x10\x04", b"\x10\x05")  # a job without requests in it
        send_all(port, clean)
        pty_printer.printer.paper_out = True
        assert query_status(port, timeout=5.0).problem == "paper_out"
        # Every byte sent before the request has reached the printer by its answer, byte for byte
        # (printed, or held from the moment the paper ran out).
        assert bytes(pty_printer.printer.printed + pty_printer.printer.held) == clean
    finally:
        port.close()


# -- `counterfloor printer test` -------------------------------------------------------------------
def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_printer_test_on_the_simulated_printer(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["printer", "test", "--config", str(EXAMPLES / "oizumi.toml")], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "sim://printer: printer status: ok"
    assert "sent a test ticket:" in out and "kanji 58 mm" in out


def test_printer_test_refuses_a_printer_out_of_paper(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        ["printer", "test", "--config", str(EXAMPLES / "oizumi.toml"), "--port", "sim://printer?paper=out"], capsys
    )
    assert code == 1
    assert out == "sim://printer?paper=out: printer status: paper_out, paper near end\n"
    assert err == (
        "counterfloor: error: sim://printer?paper=out: the printer cannot print (paper_out, paper near end); "
        "nothing was sent\n"
    )


def test_printer_test_names_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        ["printer", "test", "--config", str(EXAMPLES / "oizumi.toml"), "--port", "/dev/no-such-printer"], capsys
    )
    assert (code, out) == (1, "")
    assert err == "counterfloor: error: cannot open printer port '/dev/no-such-printer': no such device\n"


def test_printer_test_names_an_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["printer", "test", "--config", str(EXAMPLES / "oizumi.toml"), "--printer", "x"], capsys)
    assert code == 2
    assert "--printer: unknown printer 'x'" in err


def test_printer_test_over_a_pty_sends_the_ticket_bytes(
    pty_printer: PtyPrinter, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = EXAMPLES / "oizumi.toml"
    code, out, err = run_cli(
        ["printer", "test", "--config", str(config_file), "--port", pty_printer.path, "--printer", "raster"], capsys
    )
    assert (code, err) == (0, ""), err
    assert out.splitlines()[-1] == f"{pty_printer.path}: printer status after: ok"
    config = load_config(config_file)
    printed = bytes(pty_printer.printer.printed)
    # The test ticket is the sample ticket of the first service; only the minute in it may differ
    # from one made now, so compare the size and the end (feed and cut) of the job.
    sample = ticket_bytes(
        sample_ticket(config, config.services[0].id, datetime.now(config.tz), None, "printer-test"),
        PrinterProfile(id="raster", profile="raster"),
    )
    assert abs(len(printed) - len(sample)) < len(sample) // 10
    assert printed[-8:] == sample[-8:]


def test_printer_test_never_prints_into_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A mistyped --port naming a file (a config, a journal) once had the test ticket written over it.
    victim = tmp_path / "office.toml"
    victim.write_bytes((EXAMPLES / "oizumi.toml").read_bytes())
    code, out, err = run_cli(
        ["printer", "test", "--config", str(EXAMPLES / "oizumi.toml"), "--port", str(victim)], capsys
    )
    assert (code, out) == (1, "")
    assert (
        err
        == f"counterfloor: error: cannot open printer port '{victim}': a regular file, not a device; left untouched\n"
    )
    assert victim.read_bytes() == (EXAMPLES / "oizumi.toml").read_bytes()


def test_printer_test_an_empty_service_is_not_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["printer", "test", "--config", str(EXAMPLES / "oizumi.toml"), "--port", "sim://printer", "--service", ""]
    code, out, err = run_cli(argv, capsys)
    assert (code, out) == (2, "") and "--service: unknown service ''" in err
