"""Tickets: render + encode time per ticket and bytes per ticket, for each printer profile.

- time: `ticket_bytes(content, profile)` (signage lays out and draws the ticket, segno encodes the
  QR code and signage.qr_matrix picks its mask, hal encodes ESC/POS) per ticket: the whole job,
  though the gateway sends a raster job's first piece (`ticket_chunks`) before the rest is drawn;
  that first piece's time is in the details. Median and 95th percentile over tickets of every
  Nerima service with fresh numbers and tokens, after one warm-up pass over the same tickets
  (fonts loaded, each character drawn once per size; the cold pass is in the details). The goal
  (≤ 30 ms) is on the wall-clock median; the process's CPU time is reported beside it, because
  on this shared machine the wall clock also counts time spent waiting for a core. Baseline,
  interleaved in the same run: a bare Pillow draw of the same words at the same sizes with
  `ImageDraw.text` on a blank image of the same width (no fitting, no wrapping, no QR, no
  encoding: the layout it draws from is made before its clock starts), the least any renderer of
  this ticket must do.
- bytes: the largest job over the same tickets. Raster baseline: the same picture sent as one
  uncompressed raster (every row, blank ones too, 8-byte header); goal ≤ 40 KB on 80 mm. Kanji
  baseline: the raster profile's job for the same ticket and width; goal ≤ 2 KB.
- per model (office/printer_models.py): the largest raster job, and the kanji job where the model
  has a Kanji font, over the same tickets, and their wire time on each link the model is usually
  on (its `transport`: USB full speed, RS-232C at 115,200 baud 8N1, 100 Mbit/s Ethernet), against
  the generic printer of the same paper width (what every printer got before models).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw

from bench.common import Result, nerima
from counterfloor.ticket_cli import sample_ticket
from gateway.ticket_bytes import ticket_bytes, ticket_chunks
from office.config import PrinterProfile
from office.printer_models import GENERIC_58, GENERIC_80, MODELS
from signage.fonts import font
from signage.ticket import Layout, TicketContent, layout, render_ticket

TIME_GOAL_S = 0.030
RASTER_GOAL = 40 * 1024
KANJI_GOAL = 2 * 1024
PROFILES = (
    PrinterProfile("raster-80", "raster", 80),
    PrinterProfile("raster-58", "raster", 58),
    PrinterProfile("kanji-80", "kanji", 80, native_qr=True),
    PrinterProfile("kanji-58", "kanji", 58, native_qr=True),
    PrinterProfile("kanji-80-raster-qr", "kanji", 80, native_qr=False),
)


def tickets(count: int) -> list[TicketContent]:
    config, _ = nerima()
    at = datetime(2027, 3, 29, 10, 15, tzinfo=ZoneInfo("Asia/Tokyo"))
    out = []
    for i in range(count):
        service = config.services[i % len(config.services)]
        out.append(sample_ticket(config, service.id, at, service.first_number + i * 7 % 900, f"bench-{i}"))
    return out


def bare_draw(lay: Layout, width: int) -> Image.Image:
    """The baseline: every line of the ticket drawn once with Pillow's own text call."""
    img = Image.new("1", (width, lay.height), 1)
    draw = ImageDraw.Draw(img)
    for line in lay.lines:
        draw.text((line.x, line.top), line.text, font=font(line.size, line.weight), fill=0)
    return img


def _p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def run(count: int, log: list[str]) -> list[Result]:
    contents = tickets(count)
    results: list[Result] = []
    for profile in PROFILES:
        # Warm-up: fonts loaded and each character drawn once per size, as after a gateway's first
        # tickets of the day; how long the cold pass takes is in the details.
        started = time.perf_counter()
        for content in contents:
            ticket_bytes(content, profile)
            bare_draw(layout(content, profile.width_dots), profile.width_dots)
        cold = (time.perf_counter() - started) / count
        load = os.getloadavg()[0]  # the machine is shared: say how busy it was
        log.append(
            f"tickets: {profile.id}: warm-up pass (cold caches) {1000 * cold:.1f} ms a ticket incl. baseline; "
            f"load average {load:.1f} on {os.cpu_count()} cores"
        )
        measured: list[float] = []  # wall clock
        cpu: list[float] = []  # this process's CPU time: what the work costs when the machine is shared
        baseline: list[float] = []
        baseline_cpu: list[float] = []
        sizes: list[int] = []
        for content in contents:
            lay = layout(content, profile.width_dots)
            c0, t0 = time.process_time(), time.perf_counter()
            job = ticket_bytes(content, profile)
            c1, t1 = time.process_time(), time.perf_counter()
            bare_draw(lay, profile.width_dots)
            c2, t2 = time.process_time(), time.perf_counter()
            measured.append(t1 - t0)
            cpu.append(c1 - c0)
            baseline.append(t2 - t1)
            baseline_cpu.append(c2 - c1)
            sizes.append(len(job))
        first: list[float] = []
        for content in contents:
            t0 = time.perf_counter()
            next(ticket_chunks(content, profile))
            first.append(time.perf_counter() - t0)
        log.append(
            f"tickets: {profile.id}: first piece of the job (what the gateway sends before drawing the rest) "
            f"{1000 * statistics.median(first):.1f} ms median, p95 {1000 * _p95(first):.1f} ms"
        )
        med, base = statistics.median(measured), statistics.median(baseline)
        med_cpu, base_cpu = statistics.median(cpu), statistics.median(baseline_cpu)
        results.append(
            Result(
                f"Ticket render + encode, {profile.id} ({count} tickets)",
                f"{1000 * med:.1f} ms wall (p95 {1000 * _p95(measured):.1f}); {1000 * med_cpu:.1f} ms CPU",
                f"{1000 * base:.1f} ms wall; {1000 * base_cpu:.1f} ms CPU (bare Pillow draw of the same words)",
                f"{med / base:.2f}× wall, {med_cpu / base_cpu:.2f}× CPU",
                "≤ 30 ms (median)",
                med <= TIME_GOAL_S,
            )
        )
        biggest = contents[max(range(count), key=sizes.__getitem__)]
        if profile.profile == "raster":
            img = render_ticket(biggest, profile.width_dots)
            uncompressed = 8 + img.height * profile.width_dots // 8
            results.append(
                Result(
                    f"Bytes per ticket, {profile.id}",
                    f"{max(sizes):,} B (median {statistics.median(sizes):,.0f})",
                    f"{uncompressed:,} B (one uncompressed raster, {img.height} rows)",
                    f"{max(sizes) / uncompressed:.2f}",
                    "≤ 40 KB" if profile.width_mm == 80 else "—",
                    max(sizes) <= RASTER_GOAL if profile.width_mm == 80 else None,
                )
            )
        else:
            raster_job = len(ticket_bytes(biggest, PrinterProfile("r", "raster", profile.width_mm)))
            goal = profile.native_qr
            results.append(
                Result(
                    f"Bytes per ticket, {profile.id}",
                    f"{max(sizes):,} B (median {statistics.median(sizes):,.0f})",
                    f"{raster_job:,} B (raster profile, same ticket)",
                    f"{max(sizes) / raster_job:.3f}",
                    "≤ 2 KB" if goal else "—",
                    max(sizes) <= KANJI_GOAL if goal else None,
                )
            )
    return results + per_model(contents[:20], log)


# Bytes a second each link carries in practice: USB 1.1 full speed bulk (~1 MB/s), a serial line
# at 115,200 baud with 10 bits a byte, 100 Mbit/s Ethernet (the printer, not the wire, is then the
# limit; the figure shows how little the wire adds).
LINK_BYTES_PER_S = {"usb": 1_000_000, "serial": 11_520, "network": 12_500_000}


def per_model(contents: list[TicketContent], log: list[str]) -> list[Result]:
    """Bytes and wire time of a ticket on each ESC/POS model, against the generic printer."""
    results: list[Result] = []
    base: dict[tuple[int, str], int] = {}
    for generic in (GENERIC_80, GENERIC_58):
        for kind in ("raster", "kanji"):
            profile = PrinterProfile(f"base-{kind}", kind, generic.paper_mm, model=generic.name)
            base[generic.paper_mm, kind] = max(len(ticket_bytes(c, profile)) for c in contents)
    details = []
    for model in MODELS.values():
        if not model.escpos or model in (GENERIC_80, GENERIC_58):
            continue
        links = model.transport.split("/")
        for kind in ("raster", "kanji") if model.kanji else ("raster",):
            profile = PrinterProfile(f"{model.name}-{kind}", kind, model.paper_mm, model=model.name)
            size = max(len(ticket_bytes(c, profile)) for c in contents)
            wire = ", ".join(f"{1000 * size / LINK_BYTES_PER_S[link]:,.0f} ms on {link}" for link in links)
            ref = base[model.paper_mm, kind]
            results.append(
                Result(
                    f"Bytes per ticket, {model.title}, {kind}",
                    f"{size:,} B; {wire}",
                    f"{ref:,} B (generic {model.paper_mm} mm, 203 dpi)",
                    f"{size / ref:.2f}",
                    "—",
                    None,
                )
            )
            details.append(f"{model.name} {kind} {size:,} B ({model.dots} dots, {model.dpi} dpi)")
    log.append(
        f"tickets per model ({len(contents)} tickets, the largest job; wire time on the model's usual links at "
        "USB ~1 MB/s, RS-232C 115,200 baud 8N1, Ethernet 100 Mbit/s): " + "; ".join(details)
    )
    return results


if __name__ == "__main__":
    lines: list[str] = []
    for r in run(60, lines):
        print(r)
    print("\n".join(lines))
