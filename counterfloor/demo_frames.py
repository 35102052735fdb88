"""The demo's pictures: what each office's signs showed and the tickets its residents took, as PNG
files under `--out` (signage/ draws them, as the gateway's signs and printers do).

    <out>/<office>/board-HHMM.png   the waiting-room board every 30 simulated minutes, and at the end
    <out>/<office>/ticket-<id>.png  each service's first ticket of the day, and the `ticket:` line's

An office closed that day has its boards too: they show it closed. Old pictures of an office are
replaced at the start, so a folder never mixes two runs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from counterfloor.demo_floor import DemoOffice
from office.model import TicketReady
from signage.board import render_board
from signage.output import write_png
from signage.snapshot import build_snapshot
from signage.ticket import render_ticket, ticket_content

BOARD_SIZE = (1920, 1080)
TICKET_DOTS = 576  # an 80 mm printer's line at 203 dpi


class Frames:
    def __init__(self, folder: Path, offices: Sequence[DemoOffice], day: date) -> None:
        self.folder = folder
        self.offices = list(offices)
        self.day = day
        self.written = 0
        self._services: set[tuple[str, str]] = set()  # (office, service) whose first ticket is drawn
        for office in self.offices:
            where = folder / office.config.id
            where.mkdir(parents=True, exist_ok=True)
            for old in [*where.glob("board-*.png"), *where.glob("ticket-*.png")]:
                old.unlink()

    def at(self, moment: datetime) -> None:
        """Every office's board at `moment`."""
        for office in self.offices:
            self._board(office, moment, f"board-{moment.astimezone(office.config.tz):%H%M}.png")

    def final(self, moment: datetime) -> None:
        for office in self.offices:
            self._board(office, moment, "board-end.png")

    def ticket(self, office: DemoOffice, ready: TicketReady, always: bool = False) -> None:
        """The ticket as printed, if it is its service's first of the day (or `always`)."""
        key = (office.config.id, ready.service)
        if key in self._services and not always:
            return
        self._services.add(key)
        picture = io.BytesIO()
        render_ticket(ticket_content(office.config, ready), TICKET_DOTS).save(picture, format="PNG", optimize=True)
        path = self.folder / office.config.id / f"ticket-{ready.ticket}.png"
        path.write_bytes(picture.getvalue())
        self.written += 1

    def _board(self, office: DemoOffice, moment: datetime, name: str) -> None:
        journal = office.gateway.journal
        assert journal is not None
        floor = journal.office
        snap = build_snapshot(office.config, floor.state, floor.estimator, moment.astimezone(office.config.tz))
        write_png(render_board(snap, BOARD_SIZE).image, self.folder / office.config.id / name)
        self.written += 1
