"""`counterfloor printer test`: print a test ticket on a real printer, reporting its status first.

A thin shell over hal.printer (the port, DLE EOT status, chunked writes with a timeout) and the
ticket engineer's sample ticket (counterfloor.ticket_cli, gateway.ticket_bytes): the same bytes
the gateway would send for the config's first service. A printer that says it cannot print (paper
out, cover open) gets nothing; one that does not answer the status request (some USB printers are
one-way) is warned about and printed on anyway. docs/operations.md, "Printers", shows its use.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import TextIO

from counterfloor.ticket_cli import resolve_printer, sample_ticket
from gateway.ticket_bytes import ticket_bytes
from hal.printer import PrinterPortError, open_printer, query_status, send_all
from hal.printer_status import count_status_requests
from office.config import load_config

TEST_SEED = "printer-test"  # a sample token: the QR code leads nowhere real


class PrinterTestFailed(Exception):
    """The port cannot be used or the printer cannot print; the message says which."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="the office config")
    p.add_argument(
        "--port",
        metavar="URL",
        help="the printer's port: /dev/usb/lp0, /dev/ttyUSB0, a pty path, a pyserial URL or sim://printer "
        "(default: the printer's port in the config)",
    )
    p.add_argument(
        "--printer",
        metavar="PROFILE",
        help="a [[printers]] id or a profile kind (raster, kanji) (default: the config's first printer, else raster)",
    )
    p.add_argument("--service", metavar="ID", help="the service on the test ticket (default: the config's first)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    profile = resolve_printer(config, args.printer)
    # `is None`, not `or`: an empty --port or --service is a mistake, not a request for the default.
    url = profile.port if args.port is None else args.port
    service = config.services[0].id if args.service is None else args.service
    content = sample_ticket(config, service, datetime.now(config.tz), None, TEST_SEED)
    job = ticket_bytes(content, profile)
    try:
        port = open_printer(url)
    except PrinterPortError as exc:
        raise PrinterTestFailed(str(exc)) from None
    try:
        before = query_status(port)
        if not before.responding:
            out.write(f"{url}: no status answer (DLE EOT): a one-way printer, or off/unplugged; printing anyway\n")
        else:
            out.write(f"{url}: printer status: {before.describe()}\n")
            if not before.can_print:
                raise PrinterTestFailed(f"{url}: the printer cannot print ({before.describe()}); nothing was sent")
        send_all(port, job)
        out.write(f"sent a test ticket: {len(job)} bytes, {profile.profile} {profile.width_mm} mm, {content.ticket}\n")
        after = query_status(port, answers_before=count_status_requests(job))
        if after.responding:
            out.write(f"{url}: printer status after: {after.describe()}\n")
            if not after.can_print:
                raise PrinterTestFailed(f"{url}: the printer stopped while printing ({after.describe()})")
    except PrinterPortError as exc:
        raise PrinterTestFailed(f"{url}: {exc}") from None
    finally:
        port.close()
    return 0
