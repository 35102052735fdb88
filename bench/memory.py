"""Resident memory with the rush day loaded.

A fresh interpreter (`python -m bench.memory --child JOURNAL [--trace]`) imports the gateway,
notes its RSS, opens the rush-day journal (recovery: snapshot + tail) and keeps it open, as the
gateway does, then reports RSS (VmRSS) and its peak (VmHWM). A second child runs under
tracemalloc and reports the Python memory held by the office model (its state, config and
caches) once the journal's connection is closed and the garbage is collected.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT_DIR, Result, build_journal, remove_journal
from bench.rushday import Step

GOAL_MB = 40.0


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise KeyError(field)


def child(path: str, trace: bool) -> dict[str, float]:
    import tracemalloc

    from gateway.journal import TicketJournal

    gc.collect()
    before = _status("VmRSS")
    if trace:
        tracemalloc.start()
    journal = TicketJournal.open(path)
    tickets = len(journal.office.state.tickets)
    gc.collect()
    out = {"rss_imports_mb": before, "rss_loaded_mb": _status("VmRSS"), "hwm_mb": _status("VmHWM"), "tickets": tickets}
    if trace:
        office = journal.office
        journal.close()
        del journal
        gc.collect()
        out["traced_model_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
        out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        del office
    return out


def _run_child(path: Path, trace: bool) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.memory", "--child", str(path)] + (["--trace"] if trace else [])
    result = subprocess.run(argv, cwd=ROOT_DIR, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def run(workdir: Path, steps: list[Step], log: list[str]) -> list[Result]:
    path = workdir / "memory.journal"
    build_journal(path, steps, synchronous="OFF").close()
    plain = _run_child(path, trace=False)
    traced = _run_child(path, trace=True)
    remove_journal(path)
    log.append(
        f"fresh process: RSS {plain['rss_imports_mb']:.1f} MB after imports, {plain['rss_loaded_mb']:.1f} MB with "
        f"the day loaded ({plain['tickets']:,} tickets), peak {plain['hwm_mb']:.1f} MB; tracemalloc: model "
        f"{traced['traced_model_mb']:.1f} MB held, {traced['traced_peak_mb']:.1f} MB peak while recovering"
    )
    return [
        Result(
            f"Resident memory, rush day loaded ({plain['tickets']:,} tickets)",
            f"{plain['rss_loaded_mb']:.1f} MB RSS (peak {plain['hwm_mb']:.1f})",
            f"{plain['rss_imports_mb']:.1f} MB after imports",
            f"+{plain['rss_loaded_mb'] - plain['rss_imports_mb']:.1f} MB",
            f"≤ {GOAL_MB:.0f} MB",
            plain["rss_loaded_mb"] <= GOAL_MB,
        ),
        Result(
            "  the office model's Python objects (tracemalloc)",
            f"{traced['traced_model_mb']:.1f} MB",
            "—",
            "—",
            "—",
            None,
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], "--trace" in sys.argv[3:])))
