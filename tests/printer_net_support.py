"""A network ticket printer for tests and benchmarks: a SimPrinter (hal.printer_sim) behind a real
listening TCP socket on 127.0.0.1, served in the caller's own loop (`serve()` between gateway
steps: no threads, nothing sleeps), or from a thread (`serve_until`). It can hang (accept and
never read, with a printer's small receive buffer), close its connection, or be absent."""

from __future__ import annotations

import contextlib
import io
import select
import socket
import threading
from datetime import datetime, timedelta
from pathlib import Path

from gateway.service import Gateway
from hal.printer import NetworkPrinterPort
from hal.printer_sim import SimPrinter
from office.config import parse_config
from tests.floor_support import FakeClock

PEER_RCVBUF = 4096  # a printer's small receive buffer: a stalled job fills it at once


def free_port() -> int:
    """A loopback port nothing listens on (bound and let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpPrinter:
    """A SimPrinter behind a real listening socket on 127.0.0.1, served by `serve()` (called
    between gateway steps): accepts a new connection (dropping the old, as a printer that
    rebooted), reads what came and answers. `reading = False`: a printer that hangs (accepts,
    never reads; its small receive buffer fills)."""

    def __init__(self, port: int | None = None) -> None:
        self.printer = SimPrinter()
        self.reading = True
        self.conn: socket.socket | None = None
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEER_RCVBUF)  # its connections' too
        self.listener.bind(("127.0.0.1", port or 0))
        self.listener.listen(4)
        self.listener.setblocking(False)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"socket://127.0.0.1:{self.port}"
        self.connections = 0

    def serve(self) -> None:
        with contextlib.suppress(BlockingIOError):
            conn, _ = self.listener.accept()
            conn.setblocking(False)
            self.drop()
            self.conn, self.connections = conn, self.connections + 1
        if self.conn is None or not self.reading:
            return
        try:
            while data := self.conn.recv(65536):
                if answers := self.printer.feed(data):
                    self.conn.sendall(answers)
        except BlockingIOError:
            pass
        except ConnectionError:  # the gateway reset it (a stalled connection)
            self.drop()

    def serve_until(self, stop: threading.Event) -> None:
        """serve() whenever something comes (in a thread, for the blocking conveniences)."""
        while not stop.is_set():
            select.select([self.listener] + ([self.conn] if self.conn is not None else []), [], [], 0.05)
            self.serve()

    def drop(self) -> None:
        """Close its connection (a printer that closes it, or reboots)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.listener.close()


def with_printer_at(text: str, url: str | None) -> str:
    """A config `text` with one sim://printer: that printer at `url`, or no printer (None)."""
    if url is None:
        return text.split("[[printers]]")[0]
    return text.replace('port = "sim://printer"', f'port = "{url}"')


def network_gateway(text: str, journal: Path, clock: FakeClock, start: datetime) -> Gateway:
    """The gateway of config `text` on the fake `clock` (its wall clock `start` + the clock), its
    network printers' ports on the same clock, started."""

    def wall() -> datetime:
        return start + timedelta(seconds=clock.now())

    gw = Gateway(
        parse_config(text, source="oizumi.toml"),
        text,
        journal,
        journal.with_suffix(".sock"),
        io.StringIO(),
        clock=clock,
        wall=wall,
        printer_opener=lambda url: NetworkPrinterPort.from_url(url, clock=clock.now),
    )
    gw.start()
    return gw
