"""`counterfloor gateway run` as a real process on the example config's simulated devices
(sim://), with `counterfloor office …` commands reaching it over its control socket. Every wait
is on a line of output or the process, with a deadline; nothing sleeps to synchronise."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway import service
from gateway.device_link import LinkState
from office.config import load_config
from tests.conftest import EXAMPLES, ROOT, tokyo

pytestmark = pytest.mark.slow
DEADLINE_S = 20.0
CLI = [sys.executable, "-m", "counterfloor.cli"]


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[str]
    journal: Path
    socket: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    def wait_line(self, prefix: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.output.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line {prefix!r} within {DEADLINE_S} s; got {self.output}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=DEADLINE_S)


def office(gw: GatewayProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "office", argv[0], "--journal", str(gw.journal), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        cwd=ROOT,
    )


def start(config: Path, *extra: str) -> GatewayProcess:
    proc = subprocess.Popen(
        [*CLI, "gateway", "run", "--config", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("COUNTERFLOOR_")},
    )
    journal = config.parent / "journal.db"
    gw = GatewayProcess(proc, journal, journal.with_name("journal.db.sock"))

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            gw.lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return gw


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The oizumi example (its sim:// bus and devices), its journal in tmp_path."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    text = text.replace("[gateway]\n", '[gateway]\njournal = "journal.db"\n', 1)
    path = tmp_path / "oizumi.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def gateway(config: Path) -> Iterator[GatewayProcess]:
    # Monday morning on the gateway's own clock: the commands' "at" must be within minutes of it.
    gw = start(config, "--run-for", "120", "--clock-from", "2027-03-15T09:00")
    try:
        ready = gw.wait_line("ready ")
        assert f"socket={gw.socket}" in ready and "devices=6" in ready
        yield gw
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait(timeout=DEADLINE_S)


def show_json(gw: GatewayProcess) -> dict[str, object]:
    r = office(gw, "show", "--json")
    assert r.returncode == 0, r.stderr
    data: dict[str, object] = json.loads(r.stdout)
    return data


def test_office_commands_go_through_the_running_gateway_which_stops_cleanly(gateway: GatewayProcess) -> None:
    gw = gateway
    r = office(gw, "issue", "--service", "move", "--at", "2027-03-15T09:00")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("A-001  転入・転出・転居の届出") and "position 1 (0 ahead)" in r.stdout
    r = office(gw, "open", "--counter", "1", "--at", "2027-03-15T09:01")
    assert (r.returncode, r.stdout) == (0, "counter 1 open, calling move > seal\n")
    r = office(gw, "call", "--counter", "1", "--at", "2027-03-15T09:02")
    assert (r.returncode, r.stdout) == (0, "A-001 called to counter 1\n")
    table = office(gw, "show")
    assert table.returncode == 0 and "1        open    A-001" in table.stdout
    state = show_json(gw)
    assert state["tickets"] == {"A-001": "called"}

    # The gateway holds the journal: without its socket, a direct open is refused as before.
    r = office(gw, "issue", "--service", "move", "--socket", str(gw.socket.with_name("nobody.sock")))
    assert r.returncode == 1 and "is in use" in r.stderr

    assert gw.stop() == 0
    gw.wait_line("stopped ")
    assert not gw.socket.exists()
    # The journal is reopenable, holds the events, and shows the same queue without the gateway.
    after = office(gw, "show")
    assert after.returncode == 0 and after.stdout == table.stdout
    export = subprocess.run(
        [*CLI, "office", "export", "--journal", str(gw.journal)], capture_output=True, text=True, check=True
    )
    types = [json.loads(line)["type"] for line in export.stdout.splitlines()]
    assert [t for t in types if t != "schedule"] == ["ticket_issued", "counter_opened", "called"]
    # Directly, the lock is free; offline, since this test's Monday is not the system clock's today.
    r = office(gw, "hold", "--ticket", "A-001", "--offline", "--at", "2027-03-15T09:03")
    assert (r.returncode, r.stdout) == (0, "A-001 on hold\n")


def test_a_bad_command_is_refused_clearly_and_changes_nothing(gateway: GatewayProcess) -> None:
    gw = gateway
    assert office(gw, "issue", "--service", "seal", "--at", "2027-03-15T09:00").returncode == 0
    before = show_json(gw)
    r = office(gw, "issue", "--service", "passport", "--at", "2027-03-15T09:01")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "counterfloor: error: unknown service 'passport' (services: move, seal, certificate, payment)\n"
    r = office(gw, "call", "--counter", "9", "--at", "2027-03-15T09:01")
    assert r.returncode == 1 and "9" in r.stderr
    # Raw requests: not JSON, an unknown command, a missing field.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE_S)
        s.connect(str(gw.socket))
        reader = s.makefile("r", encoding="utf-8")
        for raw, error in [
            (b"issue move\n", "not a JSON object"),
            (b'{"cmd": "explode"}\n', "unknown command 'explode'"),
            (b'{"cmd": "issue"}\n', "'service' is missing"),
            (b'{"cmd": "ping"}\n', None),
        ]:
            s.sendall(raw)
            reply = json.loads(reader.readline())
            if error is None:
                assert reply == {"ok": True, "office": "oizumi", "pid": gw.proc.pid}
            else:
                assert reply["ok"] is False and reply["kind"] == "usage" and error in reply["error"]
    assert show_json(gw) == before
    assert gw.stop() == 0


def test_run_for_ends_the_gateway_by_itself(config: Path) -> None:
    gw = start(config, "--run-for", "0.5")
    gw.wait_line("ready ")
    assert gw.proc.wait(timeout=DEADLINE_S) == 0
    gw.wait_line("stopped ")
    assert not gw.socket.exists() and gw.journal.exists()


def test_a_config_error_names_file_and_key(tmp_path: Path, config: Path) -> None:
    text = config.read_text(encoding="utf-8").replace('counter = "4"', 'counter = "44"')
    config.write_text(text, encoding="utf-8")
    r = subprocess.run([*CLI, "gateway", "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr == (
        f"counterfloor: error: {config}: devices[4].counter: unknown counter '44'; counters are ['1', '2', '3', '4']\n"
    )
    assert not (tmp_path / "journal.db").exists()


def test_in_process_a_button_press_prints_and_a_socket_call_reaches_the_display(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pure-Python simulated devices: this test reads their state directly (the real firmware
    # behind sim:// is covered by tests/test_sim_micropython.py).
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")
    """The same wiring in this process on a fixed wall clock (Monday 10:00 in Tokyo): the lamps
    come from the calendar, a press on the simulated dispenser becomes a print job, and a call
    made over the control socket is shown by the simulated call display."""
    config = load_config(EXAMPLES / "oizumi.toml")
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    start_mono = time.monotonic()

    def wall() -> datetime:
        return tokyo(2027, 3, 15, 10, 0) + timedelta(seconds=time.monotonic() - start_mono)

    gw = service.Gateway(config, text, tmp_path / "j.db", tmp_path / "j.sock", sys.stdout, wall=wall)
    gw.start()
    try:
        bus = gw.buses[0]
        devices = bus.port.bus.devices

        def until(what: str, cond: Callable[[], bool]) -> None:
            deadline = time.monotonic() + DEADLINE_S
            while not cond():
                assert time.monotonic() < deadline, what
                gw.step()

        until("online", lambda: all(link.state is LinkState.ONLINE for link in bus.master.links))
        until("lamps", lambda: devices[1].lamps == 0b1111)  # move, seal, certificate, payment
        assert devices[1].press(1)  # seal
        assert gw.printing is not None and gw.journal is not None
        line = gw.printing.lines["entrance"]  # the example's printer: sim://printer (gateway.printing)
        until("printed", lambda: line.machine.printed == 1)
        token = gw.journal.office.state.tickets["B-001"].token
        assert f"{config.public_base_url}/t/{token}".encode() in bytes(line.port.printer.printed)

        for req in ({"cmd": "open", "counter": "2"}, {"cmd": "call", "counter": "2"}):
            reply = gw.handle(req)
            assert reply["ok"], reply
        assert reply["output"] == "B-001 called to counter 2\n"
        until("shown", lambda: devices[16].call == ("B-001", "2番窓口"))
    finally:
        gw.close()
    assert not (tmp_path / "j.sock").exists()


@pytest.mark.parametrize("seconds", ["0", "-1", "nan"])
def test_run_for_must_be_positive(config: Path, seconds: str, capsys: pytest.CaptureFixture[str]) -> None:
    # nan passed the `<= 0` check: the gateway started, stopped at once and exited 0.
    from tests.conftest import run_cli

    code, out, err = run_cli(capsys, "gateway", "run", "--config", str(config), "--run-for", seconds)
    assert (code, out) == (2, "")
    assert err.startswith("counterfloor: error: --run-for must be a positive number of seconds")
    assert not (config.parent / "journal.db").exists()


def test_a_journal_in_a_missing_directory_is_one_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    target = config.parent / "nope" / "j.db"
    code, _, err = run_cli(
        capsys, "gateway", "run", "--config", str(config), "--journal", str(target), "--run-for", "1"
    )
    assert code == 1
    assert err == f"counterfloor: error: cannot create {target}: no such directory {target.parent}\n"


@pytest.mark.parametrize("where", ["missing-dir", "regular-file", "too-long"])
def test_a_bad_socket_is_one_line_and_creates_no_journal(
    config: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    # The journal used to be created first, and the socket refused after it.
    from tests.conftest import run_cli

    d = config.parent
    journal = d / "j.db"
    if where == "missing-dir":
        sock = d / "nope" / "j.sock"
        message = f"cannot listen on {sock}: no such directory {sock.parent}"
    elif where == "regular-file":
        sock = d / "notes.txt"
        sock.write_text("mine\n")
        message = f"{sock} exists and is not a socket; refusing to replace it"
    else:
        sock = d / ("s" * 120)
        message = f"cannot listen on {sock}: a socket's path may be at most 107 bytes"
    before = sorted(d.iterdir())
    code, out, err = run_cli(
        capsys,
        "gateway",
        "run",
        "--config",
        str(config),
        "--journal",
        str(journal),
        "--socket",
        str(sock),
        "--run-for",
        "1",
    )
    assert (code, out, err) == (1, "", f"counterfloor: error: {message}\n")
    assert sorted(d.iterdir()) == before  # no journal, no lock, the file untouched
    if where == "regular-file":
        assert sock.read_text() == "mine\n"


_BUS = "sim://bus?dispenser=1&counter_pad=5,6,7,8&call_display=16"


@pytest.mark.parametrize("journal_exists", [False, True], ids=["new-journal", "existing-journal"])
@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (_BUS, "xyz://nowhere", "gateway.port", "bad bus port URL 'xyz://nowhere': invalid URL, protocol 'xyz'"),
        (_BUS, _BUS + "&colour=red", "gateway.port", "unknown option(s) colour"),
        (_BUS, "loop://?bogus=1", "gateway.port", "not a valid serial URL (unknown option 'bogus'"),
        (_BUS, "socket://localhost", "gateway.port", "expected socket://<host>:<port>"),
        ("sim://printer", "sim://printer?paper=plenty", "printers[0].port", "paper must be ok, near_end or out"),
        ("sim://printer", "lpt://1", "printers[0].port", "bad printer port URL 'lpt://1': invalid URL, protocol"),
    ],
    ids=["unknown-scheme", "sim-option", "loop-option", "socket-no-port", "printer-sim-option", "printer-scheme"],
)
def test_a_port_that_can_never_work_stops_the_gateway_before_the_journal_is_touched(
    config: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, key: str, problem: str, journal_exists: bool
) -> None:
    # A bad URL used to be found only after the journal was created, or opened (which stores
    # the new config in it).
    from tests.conftest import run_cli

    d = config.parent
    journal = d / "journal.db"
    if journal_exists:
        code, _, err = run_cli(capsys, "office", "init", "--config", str(config), "--journal", str(journal))
        assert code == 0, err
    text = config.read_text(encoding="utf-8")
    assert text.count(f'port = "{old}"\n') == 1
    config.write_text(text.replace(f'port = "{old}"\n', f'port = "{new}"\n'), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in sorted(d.iterdir())}
    code, out, err = run_cli(capsys, "gateway", "run", "--config", str(config), "--run-for", "1")
    assert (code, out) == (1, "")
    assert err.startswith(f"counterfloor: error: {config}: {key}: ") and problem in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in sorted(d.iterdir())} == before  # nothing made, nothing changed
