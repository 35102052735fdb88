"""`counterfloor ticket`: one sample ticket's exact print job (and a picture of it), offline.

A thin shell over signage.ticket and gateway.ticket_bytes: the same inputs (config, service,
printer, moment, number, seed) always give byte-identical output, so a job can be diffed, kept as a
fixture or sent to a printer by hand. The seed makes the page token; a sample token is therefore
NOT secret and must never be used for a real resident. Bad arguments are one line on stderr and
exit 2 (the CLI's CliError with EXIT_USAGE). docs/printing.md describes the output.
"""

from __future__ import annotations

import argparse
import base64
import io
import random
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from counterfloor.outputs import output_problem
from gateway.ticket_bytes import ticket_bytes
from office.calendar import local_time, moment_problem
from office.config import PRINTER_PROFILES, PRINTER_WIDTHS, OfficeConfig, PrinterProfile, load_config
from office.estimate import CapacityEstimator
from office.model import TicketReady
from office.printer_models import escpos_model
from office.state import OfficeState
from signage.ticket import TicketContent, render_ticket, ticket_content

TOKEN_BITS = 192  # as the gateway's tokens (gateway.journal.new_token)


class TicketUsageError(ValueError):
    """A bad --service/--printer/--at/--number/--seed; the message says which and why."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Parsed by hand so that a bad value is one clear line, not argparse's usage block.
    p.add_argument("--config", type=Path, required=True, help="the office config")
    p.add_argument("--service", required=True, metavar="ID", help="the service the ticket is for")
    p.add_argument(
        "--printer",
        metavar="PROFILE",
        help="a [[printers]] id, or a profile kind (raster, kanji) on 80 mm paper "
        "(default: the config's first printer, else raster)",
    )
    p.add_argument(
        "--width-mm", metavar="MM", help=f"override the printer's paper width ({'/'.join(map(str, PRINTER_WIDTHS))})"
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="the printer's model (office/printer_models.py, e.g. epson-tm-t88v): its head, font and cutter",
    )
    p.add_argument("--at", metavar="ISO_TIME", help="the moment of issue (default: now; no offset = the office's time)")
    p.add_argument("--number", metavar="N", help="the ticket number (default: the service's first)")
    p.add_argument("--seed", default="0", metavar="S", help="makes the (sample, not secret) page token (default 0)")
    p.add_argument("--out", type=Path, required=True, help="where to write the ESC/POS bytes")
    p.add_argument("--png", type=Path, help="also write a picture of the ticket (the raster rendering)")


def resolve_printer(
    config: OfficeConfig, name: str | None, width_mm: str | None = None, model: str | None = None
) -> PrinterProfile:
    """--printer: a configured printer by id, else a profile kind with its defaults; --model and
    --width-mm then replace its model (and the paper with it) and its width."""
    if name is None:
        profile = config.printers[0] if config.printers else PrinterProfile(id="raster")
    else:
        ids = [p.id for p in config.printers]
        if name in ids:
            profile = config.printer(name)
        elif name in PRINTER_PROFILES:
            profile = PrinterProfile(id=name, profile=name, native_qr=name == "kanji")
        else:
            raise TicketUsageError(
                f"--printer: unknown printer {name!r}; printers are {ids}, profile kinds are {list(PRINTER_PROFILES)}"
            )
    changes: dict[str, Any] = {}
    if model is not None:
        try:
            known = escpos_model(model)
        except ValueError as exc:
            raise TicketUsageError(f"--model: {exc}") from None
        changes.update(model=known.name, width_mm=known.paper_mm, dots=None, dpi=None)
    if width_mm is not None:
        if not width_mm.isdecimal() or int(width_mm) not in PRINTER_WIDTHS:
            raise TicketUsageError(f"--width-mm: must be one of {list(PRINTER_WIDTHS)} (got {width_mm!r})")
        changes["width_mm"] = int(width_mm)
        if model is None and int(width_mm) != profile.width_mm:
            changes.update(model="", dots=None, dpi=None)  # another paper: the generic printer of it
    try:
        return replace(profile, **changes)
    except ValueError as exc:
        option = "--model" if model is not None else "--width-mm"
        raise TicketUsageError(f"{option}: {exc}") from None


def seeded_token(seed: str) -> str:
    """A 192-bit URL-safe token drawn from `seed`: reproducible, hence for samples only."""
    bits = random.Random(f"counterfloor-ticket-{seed}").getrandbits(TOKEN_BITS)
    return base64.urlsafe_b64encode(bits.to_bytes(TOKEN_BITS // 8, "big")).decode("ascii")


def sample_ticket(config: OfficeConfig, service_id: str, at: datetime, number: int | None, seed: str) -> TicketContent:
    """The ticket `number` of `service_id` issued at `at` as if everyone before it still waits,
    with the office's first wait estimate for that queue."""
    try:
        service = config.service(service_id)
    except KeyError:
        raise TicketUsageError(
            f"--service: unknown service {service_id!r}; services are {[s.id for s in config.services]}"
        ) from None
    n = service.first_number if number is None else number
    if not service.first_number <= n <= service.last_number:
        raise TicketUsageError(
            f"--number: {service.id} numbers run {service.first_number}-{service.last_number} (got {n})"
        )
    local = local_time(config, at)
    ahead = n - service.first_number
    wait = CapacityEstimator(config).estimate(OfficeState(), service.id, ahead, local)
    ready = TicketReady(service.ticket_id(n), service.id, n, ahead + 1, ahead, wait, local, seeded_token(seed))
    return ticket_content(config, ready)


def parse_moment(config: OfficeConfig, text: str | None) -> datetime:
    if text is None:
        return datetime.now(config.tz)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise TicketUsageError(f"--at: not an ISO 8601 time like 2027-03-15T09:30+09:00: {text!r}") from None
    if problem := moment_problem(at):
        raise TicketUsageError(f"--at: {problem}: {text!r}")
    return at if at.tzinfo is not None else at.replace(tzinfo=config.tz)


def _write(option: str, path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise TicketUsageError(f"{option}: cannot write {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace, out: TextIO) -> int:
    # Both files checked before either is written: a bad --png leaves no lone --out behind.
    for option, path in (("--out", args.out), ("--png", args.png)):
        problem = None if path is None else output_problem(path)
        if problem:
            raise TicketUsageError(f"{option}: {problem}")
    config = load_config(args.config)
    profile = resolve_printer(config, args.printer, args.width_mm, args.model)
    at = parse_moment(config, args.at)
    number: int | None = None
    if args.number is not None:
        # isdecimal, not isdigit: '²' is a digit that int() cannot read.
        if not str(args.number).isdecimal():
            raise TicketUsageError(f"--number: not a whole number: {args.number!r}")
        number = int(args.number)
    content = sample_ticket(config, args.service, at, number, str(args.seed))
    job = ticket_bytes(content, profile)
    _write("--out", args.out, job)
    head = f", {profile.model}" if profile.model else ""
    wrote = f"wrote {args.out} ({len(job)} bytes, {content.ticket}, {profile.profile} {profile.width_mm} mm{head})"
    if args.png is not None:
        # PNG is deterministic in Pillow for the same pixels; the picture is the raster rendering
        # even for the kanji profile, whose glyphs come from the printer's own font.
        picture = io.BytesIO()
        head_model = profile.printer_model
        render_ticket(content, head_model.dots, head_model.dpi).save(picture, format="PNG", optimize=True)
        _write("--png", args.png, picture.getvalue())
        wrote += f" and {args.png}"
    out.write(wrote + "\n")
    return 0
