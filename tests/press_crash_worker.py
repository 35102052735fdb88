"""The gateway process the press crash run kills (tests/press_crash_harness.py): the real
gateway (gateway.service.Gateway: its journal, its bus on a pty port, its control socket) against
board firmware that keeps running in the parent's hub while this process dies and starts again.

Run as `python -m tests.press_crash_worker CONFIG JOURNAL`. It prints `ready` once it serves, then
the gateway's log lines (INFO and up, on stdout) and, right after each device press's command is
committed, `stored <request id>`. The wall clock is a Monday 10:00 in Tokyo plus the seconds since
$CRASH_EPOCH (the parent's start), so it runs on across restarts and the office is open. Its bus
port (the hub's pty) is opened with a read time-out as long as the reply time-out, so that a read
returns as soon as a board's reply arrives: the gateway otherwise sleeps out the whole reply
time-out (right on a UART, where 2.5 ms is all a reply takes; the boards here are processes).

$CRASH_KILL_AFTER_PRESS=N: the process SIGKILLs itself right after the commit of its Nth press
(of the device at address $CRASH_KILL_DEVICE, if set), before the exchange that acknowledges it:
the window this run is about, hit every time.
$CRASH_WORKER_FAULT=execute_again: a deliberate bug, for the test that shows the harness catches
one: a press found stored already is acted on again (as a gateway without journalled presses did).
Only the parent ends this process (SIGKILL, or SIGTERM at the end of the run).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.bus import OpenPort
from gateway.journal import RequestDone
from gateway.service import Gateway, socket_path
from hal.serial_link import open_link
from office.config import load_config
from office.model import Command, Decision

START = datetime(2027, 3, 15, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # a Monday morning


class CrashGateway(Gateway):
    """The gateway, with the kill hook and the `stored` lines around its _execute."""

    kill_after = 0
    kill_device: int | None = None  # count only this device's presses
    fault = ""
    presses = 0

    def _execute(self, command: Command, request: str | None = None) -> Decision:
        try:
            decision = super()._execute(command, request)
        except RequestDone:
            if self.fault != "execute_again":
                raise
            decision = super()._execute(command)  # the bug: a stored press acted on again
        if request is not None:
            print(f"stored {request}", flush=True)
            self.presses += self.kill_device in (None, int(request.rsplit(":", 3)[1]))
            if self.presses == self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # committed, not yet acknowledged
        return decision


def main(argv: list[str]) -> int:
    config_file, journal = Path(argv[0]), Path(argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(config_file)
    epoch = float(os.environ["CRASH_EPOCH"])
    gw = CrashGateway(
        config,
        config_file.read_text(encoding="utf-8"),
        journal,
        socket_path(journal, config.gateway.socket),
        sys.stdout,
    )
    gw.wall = lambda: START + timedelta(seconds=time.time() - epoch)
    reply_s = (config.gateway.reply_timeout_ms or 2.5) / 1000

    def opener(url: str) -> OpenPort:
        port: Any = open_link(url, timeout=reply_s)
        return port  # type: ignore[no-any-return]

    gw.opener = opener
    gw.kill_after = int(os.environ.get("CRASH_KILL_AFTER_PRESS", "0"))
    if os.environ.get("CRASH_KILL_DEVICE"):
        gw.kill_device = int(os.environ["CRASH_KILL_DEVICE"])
    gw.fault = os.environ.get("CRASH_WORKER_FAULT", "")
    signal.signal(signal.SIGTERM, gw.stop)
    try:
        gw.start()
        print("ready", flush=True)
        gw.run()
    finally:
        gw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
