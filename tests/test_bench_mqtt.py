"""The MQTT benchmark (bench/mqtt_bench.py) does not rot: its `--quick` run, through
`bench.run --only mqtt` against a real Mosquitto it starts itself, produces every figure.

Only that the figures exist is checked, and that the bytes it counts on the gateway's socket are
the bytes it computes (a property of the measurement, not a timing); timing goals are reported
by the benchmark, never asserted here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.run import main
from tests.mqtt_support import require_tool

pytestmark = pytest.mark.slow

FIGURES = (
    "MQTT bytes per queue event, rush day",
    "  schedule events",
    "  cross-check: the gateway's PUBLISH packets on its socket",
    "Publish latency p50",
    "Publish latency p99",
    "100 offices' rush hour: publishers' CPU per office per hour",
    "100 offices' rush hour: broker's message rate",
    "100 offices' rush hour: broker's CPU",
)
NUMBER = re.compile(r"\d")


def test_the_quick_mqtt_benchmark_produces_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_tool("mosquitto", "mosquitto")
    out = tmp_path / "report.md"
    assert main(["--quick", "--only", "mqtt", "--dir", str(tmp_path), "--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    rows = {}
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("| Benchmark"):
            cells = [c for c in line.split(" | ")]
            rows[cells[0].removeprefix("| ")] = cells
    for figure in FIGURES:
        found = [cells for name, cells in rows.items() if name.startswith(figure)]
        assert found, f"no {figure!r} row in:\n{report}"
        measured, baseline = found[0][1], found[0][2]
        assert NUMBER.search(measured) and NUMBER.search(baseline), found[0]
    cross_check = next(cells for name, cells in rows.items() if name.startswith(FIGURES[2]))
    assert cross_check[-1].rstrip(" |") == "yes", cross_check
    for detail in ("mqtt bytes by event type", "mqtt latency:", "mqtt offices:", "mqtt bare paho:"):
        assert detail in report, detail
    assert not list(tmp_path.glob("counterfloor-bench-*")), "the benchmark's files outlive it"
