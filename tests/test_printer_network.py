"""Network printers (socket://host:port, hal.printer.NetworkPrinterPort) against real TCP peers on
localhost: the URL checks; then the whole gateway on a fake clock, the printer a SimPrinter behind
a real listening socket served between gateway steps (no threads, nothing sleeps).

A printer that stops reading must never freeze the loop (pyserial's socket:// spun forever on a
full send buffer): calls go on at the counters, the job fails once after the stall time-out
(print_failed, offered for reprint), and a fresh connection is made when the printer is back. Also
a printer that closes its connection, a host that refuses, and a name lookup that hangs."""

from __future__ import annotations

import re
import select
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from gateway import printing as pr
from gateway.device_link import LinkState
from gateway.journal import JournalReader
from gateway.service import Gateway
from hal import printer as hp
from hal.codec import P
from hal.printer import (
    NetworkPrinterPort,
    PrinterPortError,
    open_printer,
    printer_url_problem,
    query_status,
    send_all,
)
from office import events as ev
from tests.floor_support import FakeClock
from tests.printer_net_support import TcpPrinter, free_port, network_gateway, with_printer_at
from tests.test_printing import ASK_STAFF, MONDAY_10, REPRINT, SEAL, oizumi_config


# -- the URL -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("socket://127.0.0.1:9100", None),
        ("SOCKET://[::1]:9100", None),
        ("socket://localhost:9100", None),
        ("socket://192.168.1.50", "no port"),
        ("socket://192.168.1.50:0", "must be a number 1-65535"),
        ("socket://192.168.1.50:99999", "must be a number 1-65535"),
        ("socket://192.168.1.50:lp", "must be a number 1-65535"),
        ("socket://:9100", "no host"),
        ("socket://192.168.1.50:9100?logging=debug", "nothing may follow the port"),
        ("socket://192.168.1.50:9100/queue", "nothing may follow the port"),
        ("socket://print er:9100", "neither a host name nor an IP address"),
        ("socket://-printer:9100", "neither a host name nor an IP address"),
    ],
)
def test_a_network_printer_url_is_checked_without_connecting(url: str, problem: str | None) -> None:
    answer = printer_url_problem(url)
    assert answer is None if problem is None else problem in (answer or ""), answer
    if problem is not None:
        with pytest.raises(PrinterPortError, match="cannot open printer port"):
            open_printer(url)


def fake_lookup(monkeypatch: pytest.MonkeyPatch, error: int | None = None, hold: threading.Event | None = None) -> None:
    """Name lookups answer `error` (a gaierror code), or wait for `hold`; IP literals as ever."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("flags", 0) & socket.AI_NUMERICHOST:
            return real(host, port, *args, **kwargs)
        if hold is not None:
            hold.wait()
        if error is not None:
            raise socket.gaierror(error, "Name or service not known")
        return real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_host_the_dns_does_not_know_is_a_url_problem_a_slow_dns_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_lookup(monkeypatch, socket.EAI_NONAME)
    assert printer_url_problem("socket://printr-entrance:9100") == (
        "unknown host 'printr-entrance' (Name or service not known)"
    )
    fake_lookup(monkeypatch, socket.EAI_AGAIN)  # the DNS is down now: it may answer later
    assert printer_url_problem("socket://printer-entrance:9100") is None


def test_a_hung_name_lookup_never_blocks_and_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    hold = threading.Event()
    fake_lookup(monkeypatch, hold=hold)
    monkeypatch.setattr(hp, "URL_CHECK_LOOKUP_S", 0.01)
    clock = FakeClock()
    try:
        assert printer_url_problem("socket://printer-slow:9100") is None  # waited 0.01 s, then gave up
        port = NetworkPrinterPort.from_url("socket://printer-slow:9100", clock=clock.now)
        assert port.write(b"\x10\x04\x01") == 3 and port.in_waiting == 0  # taken while looking up
        clock.t += hp.NET_CONNECT_TIMEOUT_S
        with pytest.raises(PrinterPortError, match=r"printer-slow:9100: no connection within 3 s \(looking up"):
            _ = port.in_waiting
    finally:
        hold.set()


def test_a_refused_connection_is_an_error_naming_the_printer() -> None:
    url = f"socket://127.0.0.1:{free_port()}"
    with pytest.raises(PrinterPortError, match=f"printer {url}: cannot connect: Connection refused"):
        port = open_printer(url)  # loopback refuses at once; elsewhere it is known a moment later
        wait_connected(port)


def test_status_and_a_whole_job_through_the_blocking_conveniences(peer: TcpPrinter) -> None:
    """`counterfloor printer test`'s path: query_status and send_all on a network port."""
    stop = threading.Event()
    server = threading.Thread(target=peer.serve_until, args=(stop,))
    server.start()
    try:
        port = open_printer(peer.url)
        assert query_status(port).can_print
        job = b"\x1b@" + bytes(range(256)).replace(b"\x10", b"") * 200 + b"\x1dV\x01"
        send_all(port, job)
        assert query_status(port).can_print  # answered after the whole job: it was all read
        assert bytes(peer.printer.printed) == job
        port.close()
    finally:
        stop.set()
        server.join()


# -- a printer on a real socket ----------------------------------------------------------------------
def wait_connected(port: NetworkPrinterPort) -> None:
    """Until the connect is decided (select on its socket: synchronisation, not a sleep)."""
    while not port.connected:
        fd = port.fileno()
        if fd is not None:
            select.select([], [fd], [], 1.0)
        _ = port.in_waiting


@dataclass
class NetRig:
    gw: Gateway
    clock: FakeClock
    peer: TcpPrinter | None
    journal: Path

    @property
    def dispenser(self) -> Any:
        return self.gw.buses[0].port.bus.devices[1]

    @property
    def line(self) -> pr.PrinterLine:
        assert self.gw.printing is not None
        return self.gw.printing.lines["entrance"]

    def step(self) -> float:
        """One gateway step with the printer served first; its wall-clock seconds."""
        if self.peer is not None:
            self.peer.serve()
        started = time.perf_counter()
        self.gw.step()
        return time.perf_counter() - started

    def until(self, what: str, cond: Callable[[], bool], steps: int = 5000) -> list[float]:
        """Steps until `cond`; each step's wall-clock seconds."""
        times: list[float] = []
        for _ in range(steps):
            if cond():
                return times
            times.append(self.step())
        raise AssertionError(f"not {what} after {steps} gateway steps")

    def call_next(self) -> list[float]:
        """Counter 1's pad calls the next ticket: the wall-clock seconds of each gateway step
        until the call display shows it."""
        display = self.gw.buses[0].port.bus.devices[16]
        before = len(display.calls)
        assert self.gw.buses[0].port.bus.devices[5].key(P.KEY_CALL_NEXT)
        return self.until("called", lambda: len(display.calls) > before)

    def failures(self) -> list[ev.Event]:
        with JournalReader(self.journal) as reader:
            return [e for e in reader.events() if e.TYPE == "print_failed"]


def start(tmp_path: Path, peer: TcpPrinter | None, url: str | None = None, printer: bool = True) -> NetRig:
    """The oizumi example's gateway with its printer (raster 80 mm: a ~37 KB job, more than the
    buffers between hold) at `url` (default the peer's), or with no printer at all."""
    _, text = oizumi_config(raster=True)
    clock = FakeClock()
    journal = tmp_path / "j.db"
    gw = network_gateway(
        with_printer_at(text, (url or (peer and peer.url)) if printer else None), journal, clock, MONDAY_10
    )
    rig = NetRig(gw, clock, peer, journal)
    link = gw.buses[0].master.by_addr[1]
    rig.until("online", lambda: link.state is LinkState.ONLINE)
    gw.handle({"cmd": "open", "counter": "1"})
    return rig


@pytest.fixture
def peer() -> Iterator[TcpPrinter]:
    p = TcpPrinter()
    yield p
    p.close()


@pytest.fixture
def frozen_loop_fails() -> Iterator[None]:
    """A loop that never returns (the bug this guards against) fails the test instead of hanging it."""

    def froze(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("the gateway loop froze")

    previous = signal.signal(signal.SIGALRM, froze)
    signal.setitimer(signal.ITIMER_REAL, 60)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def ready(rig: NetRig) -> None:
    rig.until("printer ready", lambda: rig.line.machine.state is pr.PrinterState.READY)
    rig.until("issuing", lambda: rig.dispenser.lamps == 0b1111 and rig.dispenser.text == ())


def test_a_ticket_prints_on_a_network_printer(tmp_path: Path, peer: TcpPrinter) -> None:
    rig = start(tmp_path, peer)
    try:
        ready(rig)
        assert rig.dispenser.press(SEAL)
        rig.until("printed", lambda: rig.line.machine.printed == 1)
        assert bytes(peer.printer.printed).endswith(b"\x1dV\x01")  # the whole job, to the cut
        assert peer.connections == 1 and rig.failures() == []
    finally:
        rig.gw.close()


def bare_loop(tmp_path: Path) -> tuple[list[float], list[float]]:
    """The same floor with no printer: each step's wall-clock seconds over 300 steps, and the
    steps of a call (key to display)."""
    (tmp_path / "bare").mkdir()
    rig = start(tmp_path / "bare", None, printer=False)
    try:
        steps = [rig.step() for _ in range(300)]
        assert rig.dispenser.press(SEAL)
        return steps, rig.call_next()
    finally:
        rig.gw.close()


def test_a_printer_that_stops_reading_never_freezes_the_floor(
    tmp_path: Path, peer: TcpPrinter, frozen_loop_fails: None
) -> None:
    """The loop's steps and a call while the printer hangs, against the same floor without a
    printer in the same run; the job fails once after the stall time-out, the dispenser offers
    the reprint when the printer is back, on a fresh connection."""
    bare_steps, bare_call = bare_loop(tmp_path)
    rig = start(tmp_path, peer)
    try:
        ready(rig)
        peer.reading = False  # it hangs: accepts, never reads again
        assert rig.dispenser.press(SEAL)
        hung = rig.until("sending", lambda: rig.line.bytes_out > 0)
        call = rig.call_next()  # staff call the next resident while the printer hangs
        assert rig.line.machine.job is not None and rig.line.machine.failed == 0  # it still hangs
        failed_from = rig.clock.now()
        hung += call + rig.until("failed", lambda: rig.line.machine.failed == 1)
        # Never more than the loop without a printer, five times over, plus 100 ms: two raster
        # strips drawn in one step (a few ms each) and a shared machine's hiccups.
        bound = 5 * max(bare_steps) + 0.1
        assert max(hung) < bound, (max(hung), statistics.median(hung), max(bare_steps))
        assert len(call) <= len(bare_call) + 2 and sum(call) < bound, (call, bare_call)
        assert rig.line.bytes_out < 37_000  # it did stop taking: most of the ticket never left
        assert rig.clock.now() - failed_from >= hp.NET_STALL_S  # the port's stall, not the machine's

        reason = f"port_error: printer {peer.url}: the printer took nothing for 8 s"
        assert [(e.ticket, getattr(e, "reason", None)) for e in rig.failures()] == [("B-001", reason)]
        assert rig.gw.journal is not None and rig.gw.journal.office.state.unprinted == {"B-001": reason}
        rig.until("ask staff", lambda: rig.dispenser.text == ASK_STAFF and rig.dispenser.lamps == 0)
        assert rig.line.port is None  # reset; opened again after REOPEN_S
        end = rig.clock.now() + 3 * pr.REOPEN_S
        rig.until("3 reopens on", lambda: rig.clock.now() >= end)  # a new connection, still hanging
        assert rig.dispenser.lamps == 0 and rig.line.machine.failed == 1 and peer.connections >= 2

        peer.reading = True
        peer.drop()  # it is switched off and on: the gateway's connection ends, a new one is made
        rig.until("offers the reprint", lambda: rig.dispenser.text == REPRINT and rig.dispenser.lamps == 0b1111)
        assert rig.dispenser.press(SEAL)
        rig.until("reprinted", lambda: rig.line.machine.printed == 1)
        assert peer.printer.printed.count(b"\x1dV\x01") == 1  # one whole ticket came out, cut once
        assert rig.line.machine.failed == 1 and len(rig.failures()) == 1  # counted once
        assert rig.gw.journal.office.state.unprinted == {}
    finally:
        rig.gw.close()


def test_a_printer_that_closes_its_connection_mid_job_fails_it_and_is_reconnected(
    tmp_path: Path, peer: TcpPrinter
) -> None:
    rig = start(tmp_path, peer)
    try:
        ready(rig)
        peer.reading = False
        assert rig.dispenser.press(SEAL)
        rig.until("sending", lambda: rig.line.bytes_out > 0)
        peer.drop()  # closed with the job's bytes unread: the gateway sees a reset, or the end
        rig.until("failed", lambda: rig.line.machine.failed == 1)
        (failure,) = rig.failures()
        assert getattr(failure, "reason", "").startswith(f"port_error: printer {peer.url}: "), failure
        rig.until("ask staff", lambda: rig.dispenser.text == ASK_STAFF)
        peer.reading = True
        rig.until("offers the reprint", lambda: rig.dispenser.text == REPRINT and rig.dispenser.lamps == 0b1111)
        assert peer.connections == 2
    finally:
        rig.gw.close()


def test_a_printer_that_closes_an_idle_connection_is_reconnected(tmp_path: Path, peer: TcpPrinter) -> None:
    rig = start(tmp_path, peer)
    try:
        ready(rig)
        peer.drop()
        rig.until("no response", lambda: rig.line.machine.status == pr.NO_RESPONSE)
        rig.until("ask staff", lambda: rig.dispenser.text == ASK_STAFF)  # until it is back: REOPEN_S
        ready(rig)
        assert peer.connections == 2 and rig.failures() == []
    finally:
        rig.gw.close()


def test_a_host_that_refuses_is_a_printer_not_answering_until_it_listens(tmp_path: Path) -> None:
    number = free_port()
    rig = start(tmp_path, None, url=f"socket://127.0.0.1:{number}")
    try:
        rig.until("ask staff", lambda: rig.dispenser.text == ASK_STAFF)
        assert rig.line.port is None and rig.line.machine.status == pr.NO_RESPONSE
        end = rig.clock.now() + 3 * pr.REOPEN_S
        rig.until("3 reopens on", lambda: rig.clock.now() >= end)
        assert rig.dispenser.lamps == 0
        rig.peer = TcpPrinter(number)  # the printer is switched on
        ready(rig)
        assert rig.dispenser.press(SEAL)
        rig.until("printed", lambda: rig.line.machine.printed == 1)
    finally:
        rig.gw.close()
        if rig.peer is not None:
            rig.peer.close()


# -- stable names for USB printers -------------------------------------------------------------------
RULES = Path(__file__).resolve().parent.parent / "deploy" / "99-counterfloor-printers.rules"
RULE_KEY = r"(?:[A-Z]+(?:\{[A-Za-z_]+\})?)"


def test_the_udev_rules_are_well_formed_and_documented() -> None:
    """Every rule is `KEY op "value"` pairs joined by commas (udev's syntax); usblp devices only;
    the example vendors are there; docs/operations.md installs the file under its own name."""
    pair = re.compile(rf'{RULE_KEY}\s*(==|!=|=|\+=)\s*"[^"]*"')
    lines = [line for line in RULES.read_text().splitlines() if line.strip() and not line.startswith("#")]
    examples = [line[1:] for line in RULES.read_text().splitlines() if line.startswith("#ATTRS")]
    for line in lines + examples:
        assert all(pair.fullmatch(part.strip()) for part in line.split(",")), line
    assert lines[0] == 'SUBSYSTEM!="usbmisc", GOTO="counterfloor_printers_end"'  # the usblp devices
    assert lines[1] == 'KERNEL!="lp[0-9]*", GOTO="counterfloor_printers_end"'
    assert lines[-1] == 'LABEL="counterfloor_printers_end"'
    vendors = {re.search(r'idVendor}=="(\w+)"', line).group(1) for line in examples}  # type: ignore[union-attr]
    assert vendors == {"04b8", "0519", "1d90", "2730"}
    assert all('SYMLINK+="counterfloor/printer-' in line for line in examples)
    operations = (RULES.parent.parent / "docs" / "operations.md").read_text()
    assert "install -m 0644 deploy/99-counterfloor-printers.rules /etc/udev/rules.d/" in operations
