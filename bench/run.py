"""Run every benchmark and print the results table (Markdown) with the details behind it.

    uv run python -m bench.run                 # the full run: whole rush day, 3 rounds, 500 kills
    uv run python -m bench.run --quick         # while developing: part of the day, 1 round, 20 kills
    uv run python -m bench.run --only recovery --only memory
    uv run python -m bench.run --only latency --only codec --only heap --only light --only fuzz   # the devices
    uv run python -m bench.run --only tickets    # ticket render + encode time, bytes per ticket
    uv run python -m bench.run --kills 1000 --dir /var/tmp/cf-bench
    uv run python -m bench.run --only printing                               # press → first print byte
    uv run python -m bench.run --only signage                                # board render, call update
    uv run python -m bench.run --only signs                                  # the gateway's signs: loop cost
    uv run python -m bench.run --only mqtt          # bytes per event, publish latency, 100 offices (~3.5 min)
    uv run python -m bench.run --only store         # central's event store: SQLite and PostgreSQL appends
    uv run python -m bench.run --only central       # central: events/s per worker, 2 workers vs 1, end to end
    uv run python -m bench.run --only accuracy --plots docs/waittime   # wait-time predictors vs the oracle (~7 min)
    uv run python -m bench.run --only forecast      # the public page's forecast vs same hour last week (~1.5 min)
    uv run python -m bench.run --only seam          # the learned wait estimate's cost per ticket (write path)
    uv run python -m bench.run --only metrics       # call latency while /metrics is scraped every 100 ms
    uv run python -m bench.run --only web           # 1,000 live ticket pages: a call → the page (~1.5 min)
    uv run python -m bench.run --only alerts        # 1,000 subscribed tickets: a call → push, mail (~2 min)
    uv run python -m bench.run --only timeliness    # residents stepping away: alerted M minutes ahead? (~6 min)
    uv run python -m bench.run --only soak          # a simulated month through the whole system (~11 min;
                                                    #   not in the default run: --days N, --quick 4 days)

`uv run python bench/run.py …` works the same. Timing goals are reported here, never asserted in
tests. Each ratio is against a baseline measured in the same run. Files go to a temporary
directory under --dir (default: the system temp dir), which must exist and be on the disk being
measured: synchronous=FULL timings are fsync timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

# bench/signage_bench.py, not signage.py: run as `python bench/run.py`, bench/ comes first on
# sys.path and a bench/signage.py would shadow the signage package every benchmark draws with.
from bench import (
    accuracy,
    alerts_latency,
    alerts_timeliness,
    central_bench,
    crash,
    devices,
    forecast_bench,
    memory,
    metrics_bench,
    mqtt_bench,
    printing,
    recovery,
    seam_bench,
    signage_bench,
    signs,
    soak,
    store_bench,
    throughput,
    tickets,
    web_load,
)
from bench.common import Result, rush_steps

BENCHES = (
    *("throughput", "recovery", "memory", "crash", "latency", "codec", "heap", "light", "fuzz", "tickets", "printing"),
    "signage",
    "signs",
    "mqtt",
    "store",
    "central",
    "accuracy",
    "forecast",
    "seam",
    "metrics",
    "web",
    "alerts",
    "timeliness",
)
DEVICE_BENCHES = ("latency", "codec", "heap", "light", "fuzz")  # bench/devices.py
EXTRA_BENCHES = ("soak",)  # only when asked for with --only: too long for the default run


def machine(workdir: Path) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = subprocess.run(["df", "-T", str(workdir)], capture_output=True, text=True, check=False).stdout.splitlines()
    fs_line = " ".join(fs[1].split()[:2]) if len(fs) > 1 else "unknown"
    return [
        f"date: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {os.cpu_count()} cores ({cpu}), shared with other work; {platform.platform()}",
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"files in {workdir} (filesystem: {fs_line})",
    ]


def table(results: list[Result]) -> list[str]:
    lines = [
        "| Benchmark | Measured | Baseline (same run) | Ratio | Goal | Met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.name} | {r.measured} | {r.baseline} | {r.ratio} | {r.goal} | {met} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run while developing")
    parser.add_argument("--only", action="append", choices=BENCHES + EXTRA_BENCHES, help="run only these (repeatable)")
    parser.add_argument("--kills", type=int, default=None, help="SIGKILLs in the crash run (default 500)")
    parser.add_argument("--seed", type=int, default=20270329, help="seed of the crash run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per throughput figure (default 3)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per recovery figure (default 15)")
    parser.add_argument("--calls", type=int, default=None, help="calls timed in the latency run (default 1900)")
    parser.add_argument("--fuzz-runs", type=int, default=None, help="inputs for the decoder fuzzer (default 200000)")
    parser.add_argument("--days", type=int, default=None, help="soak: calendar days simulated (default 30)")
    parser.add_argument("--dir", type=Path, default=None, help="where the benchmark's files go")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    parser.add_argument("--plots", type=Path, default=None, help="accuracy: write its tables and plots here")
    args = parser.parse_args(argv)
    # Checked now, not after minutes of benchmarks. --dir is not created: it says which disk is
    # measured, and a mistyped one made on the spot would time the wrong disk without a word.
    for flag, folder in (("--dir", args.dir), ("--out", args.out.parent if args.out else None)):
        if folder is not None and not folder.is_dir():
            print(f"{parser.prog}: error: {flag}: no such directory: {folder}", file=sys.stderr)
            return 2
    only = args.only or list(BENCHES)
    kills = args.kills if args.kills is not None else (20 if args.quick else 500)
    rounds = args.rounds or (1 if args.quick else 3)
    repeats = args.repeats or (5 if args.quick else 15)
    # Counter 1 serves move and seal, 999 numbers each a day: 1,900 calls fit in one day.
    calls = args.calls or (200 if args.quick else 1900)
    fuzz_runs = args.fuzz_runs or (20_000 if args.quick else 200_000)

    started = time.perf_counter()
    steps = list(rush_steps())
    throughput_steps = steps[:3000] if args.quick else steps
    results: list[Result] = []
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="counterfloor-bench-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        header = machine(workdir)
        print("\n".join(header), flush=True)
        log.append(f"rush day: {len(steps):,} commands (throughput uses {len(throughput_steps):,})")
        if "throughput" in only:
            results += throughput.run(workdir, throughput_steps, rounds, log)
            print("throughput done", flush=True)
        if "recovery" in only:
            results += recovery.run(workdir, steps, repeats, log)
            print("recovery done", flush=True)
        if "memory" in only:
            results += memory.run(workdir, steps, log)
            print("memory done", flush=True)
        if "crash" in only:
            results += crash.run(workdir, kills, args.seed, log)
            print("crash run done", flush=True)
        wanted = tuple(b for b in DEVICE_BENCHES if b in only)
        if wanted:
            results += devices.run(workdir, calls, 40 if args.quick else 200, fuzz_runs, log, wanted)
            print("devices done", flush=True)
        if "tickets" in only:
            results += tickets.run(30 if args.quick else 150, log)
            print("tickets done", flush=True)
        if "printing" in only:
            results += printing.run(workdir, 40 if args.quick else 200, log)
            print("printing done", flush=True)
        if "signage" in only:
            results += signage_bench.run(workdir, log, 20 if args.quick else 4)
            print("signage done", flush=True)
        if "signs" in only:
            results += signs.run(workdir, log, 40 if args.quick else 10)
            print("signs done", flush=True)
        if "mqtt" in only:
            # A real Mosquitto, started and stopped by the benchmark; --quick: part of the day, 3 s of rush hour.
            results += mqtt_bench.run(workdir, steps[:3000] if args.quick else steps, log, quick=args.quick)
            print("mqtt done", flush=True)
        if "store" in only:
            # Central's event store; PostgreSQL in a cluster it starts in the run's folder.
            results += store_bench.run(workdir, log, quick=args.quick)
            print("store done", flush=True)
        if "central" in only:
            # Central's workers; PostgreSQL and Mosquitto started in the run's folder, as above.
            results += central_bench.run(workdir, log, quick=args.quick)
            print("central done", flush=True)
        if "accuracy" in only:
            # Wait-time predictors against the oracle on simulated days, and a rush day's replay time.
            results += accuracy.run(log, quick=args.quick, out=args.plots)
            print("accuracy done", flush=True)
        if "forecast" in only:
            # The public page's congestion forecast against "same hour last week", on simulated weeks.
            results += forecast_bench.run(log, quick=args.quick)
            print("forecast done", flush=True)
        if "seam" in only:
            # The learned estimator on the journal's write path, beside CapacityEstimator.
            results += seam_bench.run(log, quick=args.quick)
            print("seam done", flush=True)
        if "metrics" in only:
            # The gateway's /metrics scraped every 100 ms: its loop's call latency, in three runs.
            results += metrics_bench.run(workdir, 100 if args.quick else 1000, log)
            print("metrics done", flush=True)
        if "web" in only:
            # 1,000 residents' live ticket pages on one central (Mosquitto and central started here).
            results += web_load.run(workdir, log, quick=args.quick)
            print("web done", flush=True)
        if "alerts" in only:
            # Residents' alerts with 1,000 subscribed tickets: a call → push, mail, page (Mosquitto,
            # central, a push service and an SMTP server started here).
            results += alerts_latency.run(workdir, log, quick=args.quick)
            print("alerts done", flush=True)
        if "timeliness" in only:
            # Simulated days whose residents step away with alerts on (counterfloor/away.py).
            results += alerts_timeliness.run(quick=args.quick)
            print("timeliness done", flush=True)
        if "soak" in only:
            # A simulated month through broker, gateways and central (bench/soak.py); --quick: 4 days.
            results += soak.run(workdir, args.days or (4 if args.quick else 30), log)
            print("soak done", flush=True)
    command = "uv run python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [
        *header,
        f"command: {command.strip()}  (took {time.perf_counter() - started:.0f} s)",
        "",
        *table(results),
        "",
        *(f"- {line}" for line in log),
    ]
    print("\n".join(report))
    if args.out:
        args.out.write_text("\n".join(report) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
