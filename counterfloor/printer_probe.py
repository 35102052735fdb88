"""`counterfloor printer probe PORT`: ask a printer what it is (`GS I`) and how it is (`DLE EOT`),
and say which `model` of office/printer_models.py it matches (docs/printing.md, "Printed means
printed").

A thin shell over hal.printer (the port, DLE EOT) and hal.printer_status (the GS I requests and
answers). It asks one thing at a time and waits a short time-out for each answer; a printer that
answers neither is reported plainly and the command fails. It never sends GS I to a printer that
says it cannot print: such a printer answers only when it is fixed, to whoever has the port then.
The match is a suggestion: GS I is what the printer *says* it is (clones have been seen giving an
Epson name), so check the label too.
"""

from __future__ import annotations

import argparse
import re
import select
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from hal.printer import PrinterPortError, open_printer, query_status, read_available, write_some
from hal.printer_status import (
    IDENTITY_BYTES,
    IDENTITY_TEXTS,
    PrinterStatus,
    identity_request,
    parse_identity_text,
)
from office.printer_models import MODELS, PrinterModel

PROBE_TIMEOUT_S = 0.5  # per question: a printer answers GS I and DLE EOT within milliseconds
_TYPE_BITS = {0x01: "multi-byte characters", 0x02: "autocutter"}  # GS I 2


class ProbeFailed(Exception):
    """The port cannot be opened, or nothing answered; the message says which."""


@dataclass
class Identity:
    """The GS I answers: one byte each for n = 1, 2, 3; text for n = 65..68."""

    ids: dict[int, int] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)

    @property
    def maker(self) -> str:
        return self.texts.get(66, "")

    @property
    def name(self) -> str:
        return self.texts.get(67, "")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "port",
        metavar="PORT",
        help="the printer's port: /dev/usb/lp0, /dev/ttyUSB0, a pty path, a pyserial URL or sim://printer",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=PROBE_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for each answer (default {PROBE_TIMEOUT_S:g})",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    url, timeout = args.port, args.timeout
    try:
        port = open_printer(url)
    except PrinterPortError as exc:
        raise ProbeFailed(str(exc)) from None
    try:
        status = query_status(port, timeout)
        identity = ask_identity(port, timeout) if status.can_print or not status.responding else None
    except PrinterPortError as exc:
        raise ProbeFailed(f"{url}: {exc}") from None
    finally:
        port.close()
    if not status.responding and identity is None:
        raise ProbeFailed(f"no answer from {url} within {timeout:g} s: is it on, and is this its port?")
    out.write(report(url, status, identity))
    return 0


def ask_identity(port: Any, timeout: float) -> Identity | None:
    """Ask GS I 1, 2, 3, 65..68 in turn; None when the first is not answered (the printer does
    not identify itself: the rest are not asked)."""
    identity = Identity()
    for n in IDENTITY_BYTES:
        got = _ask(port, n, timeout, lambda b: len(b) >= 1)
        if not got:
            if n == 1:
                return None
            continue
        identity.ids[n] = got[0]
    for n in IDENTITY_TEXTS:
        text = parse_identity_text(_ask(port, n, timeout, lambda b: parse_identity_text(b) is not None))
        if text:
            identity.texts[n] = text
    return identity


def _ask(port: Any, n: int, timeout: float, whole: Any) -> bytes:
    """Send GS I n and read until `whole(bytes)` or the time-out."""
    read_available(port)  # nothing stale is taken for the answer
    write_some(port, identity_request(n))
    got = b""
    deadline = time.monotonic() + timeout
    while not whole(got):
        got += read_available(port)
        left = deadline - time.monotonic()
        if whole(got) or left <= 0:
            break
        fileno = getattr(port, "fileno", None)
        fd = fileno() if fileno is not None else None
        if fd is not None:
            select.select([fd], [], [], left)
        else:
            time.sleep(min(left, 0.01))  # a port with nothing to wait on (sim://): look again soon
    return got


def _norm(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def title_names(title: str) -> tuple[str, list[str]]:
    """(maker, model names) of a model's title, as GS I would give them: "Citizen PPU-700 /
    PPU-700II (printer presenter unit)" is ("Citizen", ["PPU-700", "PPU-700II"])."""
    alternatives = [a.strip() for a in re.sub(r"\(.*?\)", "", title).split("/")]
    maker, _, first = alternatives[0].partition(" ")
    return maker, [first, *alternatives[1:]]


def matching_models(maker: str, name: str) -> list[PrinterModel]:
    """The models one of whose names (title_names) is the name GS I 67 gave and, when GS I 66
    gave a maker, whose maker is in it: letters and digits compared, any case ("TM-T88V" by
    "EPSON" is "Epson TM-T88V", not "Epson TM-T88VI")."""
    key = _norm(name)
    if not key:
        return []
    found = []
    for model in MODELS.values():
        brand, names = title_names(model.title)
        if key in {_norm(n) for n in names} and (not maker or (_norm(brand) and _norm(brand) in _norm(maker))):
            found.append(model)
    return found


def report(url: str, status: PrinterStatus, identity: Identity | None) -> str:
    lines = [f"{url}:"]
    if identity is None and status.responding:
        why = "it cannot print now" if not status.can_print else "no answer"
        lines.append(f"  GS I      not answered ({why}): its model cannot be told from here")
    elif identity is not None:
        lines += [f"  {IDENTITY_TEXTS[n]:<9} {text}" for n, text in sorted(identity.texts.items())]
        lines.append("  IDs       " + _ids(identity))
        lines.append("  config    " + _suggestion(identity))
    shown = status.describe() if status.responding else "no answer to DLE EOT (a one-way port?)"
    lines.append(f"  status    {shown}")
    return "\n".join(lines) + "\n"


def _ids(identity: Identity) -> str:
    parts = [f"{IDENTITY_BYTES[n]} 0x{b:02x}" for n, b in sorted(identity.ids.items())]
    type_id = identity.ids.get(2)
    if type_id is not None:
        has = [what for bit, what in _TYPE_BITS.items() if type_id & bit]
        parts[list(sorted(identity.ids)).index(2)] += f" ({', '.join(has) or 'no autocutter'})"
    return ", ".join(parts)


def _suggestion(identity: Identity) -> str:
    found = matching_models(identity.maker, identity.name)
    if found:
        return "; ".join(f'model = "{m.name}"  ({m.title}, completion {m.completion})' for m in found)
    said = f"{identity.maker} {identity.name}".strip() or "nothing"
    return (
        f"no model in office/printer_models.py matches {said!r}: leave `model` out "
        '(the generic printer of its width_mm, completion "none")'
    )
