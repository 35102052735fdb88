"""Signage: the waiting-room board's full render and the partial update on a call.

- workload: a seeded simulated Nerima weekday (`counterfloor.simulate`, seed 1), a board snapshot
  every 4 simulated minutes from 09:00 to 18:56 (queue figures, calls and the mode change from
  snapshot to snapshot, so new numbers reach the renderer as they would on a real day).
- full: `BoardRenderer.render(snapshot)` at 1920×1080 for each snapshot in day order, in one
  process after one warm-up render (fonts loaded). Median and 95th percentile; goal: median
  ≤ 40 ms. Baseline, interleaved: a bare Pillow draw of the same texts at the same sizes and
  weights (`ImageDraw.text` on a blank 1920×1080 image: no layout, no fitting, no shapes, no QR).
- call: after rendering a snapshot, `BoardRenderer.update` with a new call (a fresh number at the
  top, the others moved down, the oldest to the earlier calls): the regions it redraws, timed;
  then those rectangles written to a framebuffer file in RGB565 (timed apart). Goal: median
  update ≤ 10 ms. Baseline: a bare Pillow draw of the texts of the redrawn regions.
- PNG encoding of the full board is reported too: it is never on the call path.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import replace
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path

from PIL import Image, ImageDraw

from bench.common import Result, nerima
from counterfloor.simulate import DaySimulation
from signage.board import LANDSCAPE, BoardRenderer
from signage.fonts import font
from signage.legibility import TextBox
from signage.output import Framebuffer
from signage.snapshot import BoardSnapshot, build_snapshot

FULL_GOAL_S = 0.040
CALL_GOAL_S = 0.010
DAY = (2027, 3, 15)


def day_snapshots(step_minutes: int = 4) -> list[BoardSnapshot]:
    config = nerima()[0]
    day = datetime(*DAY).date()
    sim = DaySimulation(config, day, seed=1)
    at = datetime.combine(day, clock(9, 0), tzinfo=config.tz)
    end = datetime.combine(day, clock(19, 0), tzinfo=config.tz)
    snaps = []
    while at < end:
        sim.run_until(at)
        snaps.append(build_snapshot(config, sim.office.state, sim.office.estimator, at))
        at += timedelta(minutes=step_minutes)
    return snaps


def with_new_call(snap: BoardSnapshot, n: int) -> BoardSnapshot:
    """`snap` with one more call: a number never shown before, at the newest call's counter."""
    if not snap.calling:
        return snap
    top = snap.calling[0]
    number = 500 + n  # beyond the day's numbers: its text has never been drawn
    call = replace(top, ticket=f"{top.prefix}-{number:03d}", number=number, at=snap.at + timedelta(seconds=20))
    return replace(snap, calling=(call, *snap.calling[:2]), recent=(*snap.calling[2:], *snap.recent)[:4])


def bare_pillow(boxes: list[TextBox], image: Image.Image) -> float:
    """Seconds to draw the same texts with ImageDraw.text, at their own positions."""
    draw = ImageDraw.Draw(image)
    started = time.perf_counter()
    for b in boxes:
        draw.text((b.bbox[0], b.bbox[1]), b.text, font=font(b.px, "bold" if b.weight == "bold" else "regular"))
    return time.perf_counter() - started


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run(workdir: Path, log: list[str], step_minutes: int = 4) -> list[Result]:
    snaps = day_snapshots(step_minutes)
    renderer = BoardRenderer(LANDSCAPE)
    cold_started = time.perf_counter()
    renderer.render(snaps[0])
    cold = time.perf_counter() - cold_started
    blank = Image.new("RGB", LANDSCAPE, (255, 255, 255))

    full, full_base = [], []
    for snap in snaps:
        started = time.perf_counter()
        result = renderer.render(snap)
        full.append(time.perf_counter() - started)
        full_base.append(bare_pillow(result.boxes, blank))

    fb_path = workdir / "fb0"
    sysfs = workdir / "fb0-sysfs"
    sysfs.mkdir(exist_ok=True)
    (sysfs / "virtual_size").write_text(f"{LANDSCAPE[0]},{LANDSCAPE[1]}")
    (sysfs / "bits_per_pixel").write_text("16")
    (sysfs / "stride").write_text(str(LANDSCAPE[0] * 2))
    fb_path.write_bytes(bytes(LANDSCAPE[0] * LANDSCAPE[1] * 2))
    update, update_base, write, areas = [], [], [], []
    with Framebuffer(fb_path, sysfs) as fb:
        for n, snap in enumerate(s for s in snaps if s.calling):
            renderer.render(snap)
            after = with_new_call(snap, n)
            started = time.perf_counter()
            result = renderer.update(after)
            update.append(time.perf_counter() - started)
            lay = renderer.layout
            assert lay is not None
            redrawn = [b for b in result.boxes if any(_within(b.bbox, r) for r in result.dirty)]
            update_base.append(bare_pillow(redrawn, blank))
            started = time.perf_counter()
            for rect in result.dirty:
                fb.write_rect(result.image, rect)
            write.append(time.perf_counter() - started)
            areas.append(sum((r[2] - r[0]) * (r[3] - r[1]) for r in result.dirty))

    png = []
    for snap in snaps[:10]:
        image = renderer.render(snap).image
        started = time.perf_counter()
        image.save(io.BytesIO(), format="PNG", compress_level=3)
        png.append(time.perf_counter() - started)

    full_med, base_med = statistics.median(full), statistics.median(full_base)
    upd_med, upd_base_med = statistics.median(update), statistics.median(update_base)
    p95 = statistics.quantiles(full, n=20)[-1]
    log.append(
        f"signage: {len(snaps)} snapshots of {DAY[0]}-{DAY[1]:02d}-{DAY[2]:02d} (seed 1, every {step_minutes} min); "
        f"first render in the process (fonts loading, nothing cached) {_ms(cold)}; full render median "
        f"{_ms(full_med)}, p95 {_ms(p95)}, max {_ms(max(full))}; "
        f"bare Pillow p95 {_ms(statistics.quantiles(full_base, n=20)[-1])}"
    )
    log.append(
        f"signage call: {len(update)} updates, median {_ms(upd_med)}, max {_ms(max(update))}; redrawn area "
        f"{statistics.median(areas) / (LANDSCAPE[0] * LANDSCAPE[1]):.0%} of the screen; RGB565 framebuffer write "
        f"of it median {_ms(statistics.median(write))}; PNG encoding of a full board median "
        f"{_ms(statistics.median(png))} (never on the call path)"
    )
    return [
        Result(
            "Board render, 1920×1080 full",
            _ms(full_med),
            f"{_ms(base_med)} (bare Pillow, same texts)",
            f"{full_med / base_med:.2f}×",
            "median ≤ 40 ms",
            full_med <= FULL_GOAL_S,
        ),
        Result(
            "Board partial update on a call (calls + earlier calls)",
            _ms(upd_med),
            f"{_ms(upd_base_med)} (bare Pillow, same texts)",
            f"{upd_med / upd_base_med:.2f}×",
            "median ≤ 10 ms",
            upd_med <= CALL_GOAL_S,
        ),
        Result(
            "  its framebuffer write (RGB565, dirty rectangles only)",
            _ms(statistics.median(write)),
            "—",
            "—",
            "—",
            None,
        ),
    ]


def _within(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]
