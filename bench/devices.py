"""The devices side: gateway call latency, frame codec throughput and firmware heap.

- latency: from a counter pad's KEY (call next) reply being received by the gateway to the call
  display's CALL being written to the port: BusMaster + SyncDriver + a real TicketJournal
  (synchronous=FULL, a file in the bench directory) + simulated devices behind the port, on a
  simulated bus clock (the code runs for real; only the wire's waits are skipped). Baseline: the
  wire time of those two frames at 115200 baud, which no gateway can beat.
- codec: frames/s encoded and decoded by firmware/protocol.py under CPython and under the real
  MicroPython Unix port (bench/mp_codec.py, timed with time.ticks_us there), each against COBS
  alone of the same raw frames in the same interpreter and run.
- heap: each board running under `micropython -X heapsize=192K`, built as tools/pio_micropython.py
  builds it, with its display part wired from config.json and the office's font on its flash: its
  own main.py booting it (loader dropped) and its loop serving the bus, after its first requests
  (bench/mp_heap.py): gc.mem_alloc() after gc.collect(), against the goal of 48 KB per device
  (issue 15; 40 KB before the display drivers); and, for the record, the device only constructed,
  as the firmware check scripts in tests/micropython build it (from source and from mpy-cross
  output).
- light: frame to light of a CALL on the call display under the Unix port (bench/mp_light.py):
  from the frame's bytes handed to the device to the last byte sent to its display part (MAX7219
  digits, or the SSD1306 panel with the office's font), against the same CALL on a call display
  without a display part (decode, handle, save, ACK) in the same run; the bytes on the display's
  bus and their wire time at the configured clock beside it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import ROOT_DIR, Result, nerima, remove_journal
from gateway.bus import BusMaster, SyncDriver
from gateway.device_link import DeviceLink, DeviceSpec
from gateway.journal import TicketJournal
from hal.codec import P, wire_time
from hal.simdevice import SimBus, SimDevice
from office.model import Command, Decision, IssueTicket, OpenCounter
from tools import pio_micropython

FIRMWARE = ROOT_DIR / "firmware"
MP_CHECKS = ROOT_DIR / "tests" / "micropython"
BIN = Path(sys.executable).parent
MICROPYTHON = BIN / "micropython"
MPY_CROSS = BIN / "mpy-cross"
LATENCY_GOAL_S = 0.005
# Per board, with its display driver loaded (issue 15: was 40 KB; a Pico leaves MicroPython
# over 150 KB, docs/firmware.md "Memory").
HEAP_GOAL = 48 * 1024
DEVICES = ("dispenser", "counter_pad", "call_display")
# (device, display part): each board's default part, and the call display's alternative panel.
BOARDS = (("dispenser", "ssd1306"), ("counter_pad", "tm1637"), ("call_display", "max7219"), ("call_display", "ssd1306"))
LIGHT_GOAL_S = 0.020  # frame to light of a CALL on the call display, on the Unix port (issue 15)
# The display buses' clocks as configured (firmware/wiring.py defaults): SPI 5 MHz, 8 clocks a
# byte; I2C 400 kHz, 9 clocks a byte (its ACK) and one address byte per write (two per frame).
WIRE_S = {"max7219": lambda n: n * 8 / 5_000_000, "ssd1306": lambda n: (n + 2) * 9 / 400_000}


# -- latency ---------------------------------------------------------------------------------------
class _TimedSimPort:
    """A port whose far end is a SimBus, answering each request at once. Stamps the moment a KEY
    reply is handed to the gateway and the moment the next CALL is written."""

    def __init__(self, bus: SimBus) -> None:
        self.bus = bus
        self.buf = b""
        self.key_at: float | None = None
        self.samples: list[float] = []
        self.key_wire = 0
        self.call_wire = 0

    def write(self, data: bytes, /) -> int | None:
        t = time.perf_counter()
        if self.key_at is not None:
            frames = P.Decoder().feed(data)
            if frames and frames[0].TYPE == P.Call.TYPE:
                self.samples.append(t - self.key_at)
                self.call_wire = len(data)
                self.key_at = None
        self.buf += self.bus.receive(data)
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        out, self.buf = self.buf[:size], self.buf[size:]
        if out:
            frames = P.Decoder().feed(out)
            if frames and frames[0].TYPE == P.Key.TYPE:
                self.key_wire = len(out)
                self.key_at = time.perf_counter()  # last: the gateway has the reply from here on
        return out

    @property
    def in_waiting(self) -> int:
        return len(self.buf)


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, t)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def call_latency(workdir: Path, calls: int, log: list[str]) -> list[Result]:
    config, text = nerima()
    path = workdir / "devices-latency.sqlite"
    remove_journal(path)
    wall0 = datetime(2027, 3, 15, 8, 30, tzinfo=config.tz)  # a Monday, as the office opens
    clock = _Clock()

    def wall() -> datetime:
        return wall0 + timedelta(seconds=clock.now())

    journal = TicketJournal.create(path, config, text, synchronous="FULL", clock=wall)
    journal.execute(OpenCounter("1"), wall0)
    services = tuple(s.id for s in config.services)
    label = config.counter("1").name.ja
    n_tokens = iter(range(1, 10**9))
    execute_s: list[float] = []

    def execute(command: Command) -> Decision:
        t = time.perf_counter()
        decision = journal.execute(command, wall())
        execute_s.append(time.perf_counter() - t)
        return decision

    links = [
        DeviceLink(DeviceSpec(1, P.KIND_DISPENSER, services), lambda: f"d-{next(n_tokens)}"),
        DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, services, counter="1"), lambda: f"p-{next(n_tokens)}"),
        DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), lambda: "", counter_label=lambda _c: label),
    ]
    sim = SimBus([SimDevice(P.KIND_DISPENSER, 1), SimDevice(P.KIND_COUNTER_PAD, 5), SimDevice(P.KIND_CALL_DISPLAY, 16)])
    port = _TimedSimPort(sim)
    bus = BusMaster(links, execute)
    driver = SyncDriver(bus, port, clock)
    driver.run_cycles(3)
    pad, display = sim.devices[5], sim.devices[16]
    key_execs: list[float] = []
    try:
        for i in range(calls):
            # A ticket for counter 1 (move, seal alternately), issued straight into the journal.
            journal.execute(IssueTicket(("move", "seal")[i % 2], f"t-{i}"), wall())
            pad.key(P.KEY_CALL_NEXT)
            before, done = len(port.samples), len(execute_s)
            while len(port.samples) == before:
                driver.step()
                if clock.now() > 3600:
                    raise RuntimeError("the CALL never went out")
            key_execs.append(execute_s[done])
            driver.run_cycles(1)  # the CALL's ACK, the pad's number and lamp
    finally:
        journal.close()
    if len(display.calls) != calls or display.call is None:
        raise RuntimeError(f"the display got {len(display.calls)} CALLs for {calls} calls")
    samples = port.samples
    wire = wire_time(port.key_wire + port.call_wire)
    p50, p99 = _pct(samples, 0.50), _pct(samples, 0.99)
    log.append(
        f"Call latency, {calls:,} calls (KEY call-next reply received → CALL written, gateway side): "
        f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {max(samples) * 1000:.2f} ms, "
        f"mean {statistics.mean(samples) * 1000:.2f} ms; of it the journal's CallNext (decide, "
        f"SQLite commit with fsync, apply): median {statistics.median(key_execs) * 1000:.2f} ms, "
        f"p99 {_pct(key_execs, 0.99) * 1000:.2f} ms. Wire time of the two frames "
        f"({port.key_wire} + {port.call_wire} bytes at {P.BAUD} baud): {wire * 1000:.2f} ms."
    )
    return [
        Result(
            f"Call latency p50, {calls:,} calls (gateway: KEY in → CALL out)",
            f"{p50 * 1000:.2f} ms",
            f"{wire * 1000:.2f} ms wire time (KEY + CALL)",
            f"{p50 / wire:.2f}×",
            "—",
            None,
        ),
        Result(
            f"Call latency p99, {calls:,} calls (gateway: KEY in → CALL out)",
            f"{p99 * 1000:.2f} ms",
            f"{wire * 1000:.2f} ms wire time (KEY + CALL)",
            f"{p99 / wire:.2f}×",
            "p99 ≤ 5 ms",
            p99 <= LATENCY_GOAL_S,
        ),
    ]


# -- codec throughput --------------------------------------------------------------------------------
def _figures(lines: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in lines.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out


def _run_codec(cmd: list[str], rounds: int) -> dict[str, str]:
    script = str(ROOT_DIR / "bench" / "mp_codec.py")
    result = subprocess.run(
        [*cmd, script, str(FIRMWARE), str(rounds)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} mp_codec.py failed: {result.stdout}{result.stderr}")
    return _figures(result.stdout)


def codec_throughput(rounds: int, log: list[str]) -> list[Result]:
    results: list[Result] = []
    runs = [("CPython", [sys.executable], rounds)]
    if MICROPYTHON.exists():
        runs.append(("MicroPython (Unix port)", [str(MICROPYTHON), "-X", "heapsize=192K"], max(10, rounds // 4)))
    else:
        log.append("Codec under MicroPython: not run, no micropython binary (uv sync)")
    for name, cmd, n in runs:
        f = _run_codec(cmd, n)
        for what in ("encode", "decode"):
            fps, base = int(f[f"{what}_fps"]), int(f[f"cobs_{what}_fps"])
            results.append(
                Result(
                    f"Codec {what}, {name}",
                    f"{fps:,} frames/s",
                    f"{base:,} frames/s (COBS {what} alone)",
                    f"{fps / base:.2f}",
                    "—",
                    None,
                )
            )
        log.append(
            f"Codec, {name}: {f['frames']} frames a run (a mix of {f['mix']}: POLL, ACK, KEY, 2 CALLs, "
            f"RECENT of 3, DISPLAY_NUMBER, STATUS_LAMP, HELLO, SHOW_TEXT of 2 lines; {f['wire_bytes']} "
            f"wire bytes), best of 5: encode {int(f['encode_fps']):,}/s, decode {int(f['decode_fps']):,}/s; "
            f"COBS alone {int(f['cobs_encode_fps']):,}/s and {int(f['cobs_decode_fps']):,}/s. For scale: the bus "
            f"carries at most {P.BAUD / P.BITS_PER_BYTE / (int(f['wire_bytes']) / int(f['mix'])):,.0f} frames/s "
            f"of this mix; a Pico's core is far slower than this host's (not measured here)."
        )
    return results


# -- firmware heap -----------------------------------------------------------------------------------
def _mpy_dir(workdir: Path) -> Path:
    """The firmware as tools/pio_micropython.py builds it: modules through mpy-cross (with the
    module's name as source name), boot.py and main.py as source, which the board compiles."""
    out = workdir / "mpy"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for src in sorted(FIRMWARE.glob("*.py")):
        if src.name in pio_micropython.LOADER_SOURCE:
            shutil.copy(src, out / src.name)
            continue
        subprocess.run(
            [str(MPY_CROSS), "-s", src.stem, "-o", str(out / f"{src.stem}.mpy"), str(src)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return out


def _font(workdir: Path) -> Path:
    """The example office's 16 px font (tools/make_font.py), as an install puts it on a board."""
    from tools import make_font

    path = workdir / "font16.bin"
    path.write_bytes(make_font.build(make_font.board_texts(ROOT_DIR / "examples" / "nerima.toml")))
    return path


def firmware_heap(workdir: Path, log: list[str]) -> list[Result]:
    if not MICROPYTHON.exists() or not MPY_CROSS.exists():
        log.append("Firmware heap: not run, micropython or mpy-cross missing (uv sync)")
        return []
    sources = {"source": FIRMWARE, "mpy": _mpy_dir(workdir)}
    font = _font(workdir)
    results: list[Result] = []
    details: list[str] = []
    constructed: list[str] = []
    for device in DEVICES:
        heap: dict[str, dict[str, int]] = {}
        for source, module_dir in sources.items():
            tmp = workdir / f"heap-{device}-{source}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            script = MP_CHECKS / f"check_{device}.py"
            run = subprocess.run(
                [str(MICROPYTHON), "-X", "heapsize=192K", str(script), str(module_dir), str(tmp)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            figures = {k: int(v) for k, v in re.findall(r"^(heap_\w+)=(\d+)$", run.stdout, re.M)}
            if run.returncode != 0 or "heap_device" not in figures:
                raise RuntimeError(f"check_{device}.py ({source}) failed: {run.stdout[-2000:]}{run.stderr}")
            heap[source] = figures
        constructed.append(
            f"{device} {heap['mpy']['heap_device'] / 1024:.1f} KB from .mpy "
            f"({heap['source']['heap_device'] / 1024:.1f} KB from source)"
        )
    for device, part in BOARDS:
        running = _running_heap(workdir, sources["mpy"], device, part, font)
        details.append(
            f"{device} with {part}: running {running['heap_device'] / 1024:.1f} KB "
            f"({running['heap_device_other'] / 1024:.1f} KB in the other heap layout; codec "
            f"{running['heap_codec'] / 1024:.1f} KB of it, {running['qstrs']} interned names; the script's bus, "
            f"{running['heap_probe']} bytes, not counted)"
        )
        results.append(
            Result(
                f"Firmware heap, {device} with {part} running (64-bit Unix port, .mpy)",
                f"{running['heap_device'] / 1024:.1f} KB",
                f"{HEAP_GOAL / 1024:.0f} KB goal, {(HEAP_GOAL - running['heap_device']) / 1024:.1f} KB to spare; "
                f"codec {running['heap_codec'] / 1024:.1f} KB of it",
                f"{running['heap_device'] / HEAP_GOAL:.2f}",
                f"≤ {HEAP_GOAL // 1024} KB per device",
                running["heap_device"] <= HEAP_GOAL,
            )
        )
    log.append(
        "Firmware heap (gc.mem_alloc() after gc.collect(), `micropython -X heapsize=192K`, the board "
        "built as tools/pio_micropython.py builds it, with its display part from config.json and the "
        "example office's font on its flash, started by its own main.py and serving the bus after its "
        "first requests, bench/mp_heap.py; the larger of two heap layouts): "
        + "; ".join(details)
        + ". Constructed only (codec and device, no boot or loop, tests/micropython/check_*.py): "
        + "; ".join(constructed)
        + ". This is the 64-bit Unix port: pointers and object slots are 8 bytes and GC blocks 32 "
        "bytes, 4 and 16 on the Pico (RP2040), so the Pico figure is expected to be lower — not "
        "measured here (docs/firmware.md, Memory)."
    )
    return results


def _running_heap(workdir: Path, module_dir: Path, device: str, part: str, font: Path) -> dict[str, int]:
    """bench/mp_heap.py: the heap of a running board (bytes) with `part` as its display, the
    codec's, the script's bus (not counted) and the number of interned names. Run in two heap
    layouts (with and without $HOME, which changes what the interpreter allocates at start): the
    GC scans the stack conservatively, so a stale pointer can keep a boot-time object in one
    layout and not in another. The larger figure is the board's (heap_device), the other is
    heap_device_other."""
    # The flash holds the modules, as on a Pico, and is the working directory: a module's path
    # (its __file__, an interned string) is as short as on the board.
    flash = workdir / f"heap-{device}-{part}-running"
    runs = []
    for home in ({}, {"HOME": str(workdir)}):
        shutil.rmtree(flash, ignore_errors=True)
        shutil.copytree(module_dir, flash)
        shutil.copy(font, flash / font.name)
        (flash / "config.json").write_text(json.dumps({"kind": device, "addr": 5, "display": part}))
        run = subprocess.run(
            [str(MICROPYTHON), "-X", "heapsize=192K", str(ROOT_DIR / "bench" / "mp_heap.py"), ".", device],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=flash,
            env={"COUNTERFLOOR_FLASH": ".", "PATH": "/usr/bin:/bin", **home},
        )
        figures = {k: int(v) for k, v in re.findall(r"^(heap_\w+)=(\d+)$", run.stdout, re.M)}
        qstrs = re.search(r"n_qstr=(\d+)", run.stdout)
        if run.returncode != 0 or "heap_device" not in figures or qstrs is None:
            raise RuntimeError(f"mp_heap.py {device} {part} failed: {run.stdout[-2000:]}{run.stderr}")
        runs.append({**figures, "qstrs": int(qstrs.group(1))})
    runs.sort(key=lambda r: r["heap_device"])
    return {**runs[-1], "heap_device_other": runs[0]["heap_device"]}


# -- frame to light --------------------------------------------------------------------------------
def frame_to_light(workdir: Path, rounds: int, log: list[str]) -> list[Result]:
    if not MICROPYTHON.exists() or not MPY_CROSS.exists():
        log.append("Frame to light: not run, micropython or mpy-cross missing (uv sync)")
        return []
    module_dir = _mpy_dir(workdir)
    font = _font(workdir)
    figures: dict[str, dict[str, int]] = {}
    for part in ("none", "max7219", "ssd1306"):
        flash = workdir / f"light-{part}"
        shutil.rmtree(flash, ignore_errors=True)
        flash.mkdir()
        shutil.copy(font, flash / font.name)
        run = subprocess.run(
            [
                str(MICROPYTHON),
                "-X",
                "heapsize=192K",
                str(ROOT_DIR / "bench" / "mp_light.py"),
                str(module_dir),
                part,
                str(rounds),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={"COUNTERFLOOR_FLASH": str(flash), "PATH": "/usr/bin:/bin"},
        )
        found = {k: int(v) for k, v in re.findall(r"^(\w+)=(\d+)$", run.stdout, re.M)}
        if run.returncode != 0 or "p99_us" not in found:
            raise RuntimeError(f"mp_light.py {part} failed: {run.stdout[-2000:]}{run.stderr}")
        figures[part] = found
    base = figures["none"]
    results = []
    details = [
        f"without a display part (decode, handle, save to flash, ACK): p50 {base['p50_us'] / 1000:.2f} ms, "
        f"p99 {base['p99_us'] / 1000:.2f} ms"
    ]
    for part in ("max7219", "ssd1306"):
        f = figures[part]
        wire = WIRE_S[part](f["bytes"])
        results.append(
            Result(
                f"Frame to light, call display CALL → {part} (Unix port, p99)",
                f"{f['p99_us'] / 1000:.2f} ms",
                f"{base['p99_us'] / 1000:.2f} ms without a display part; {f['bytes']} bytes, "
                f"{wire * 1000:.2f} ms on the wire",
                f"{f['p99_us'] / max(1, base['p99_us']):.2f}",
                f"≤ {LIGHT_GOAL_S * 1000:.0f} ms",
                f["p99_us"] / 1e6 <= LIGHT_GOAL_S,
            )
        )
        details.append(
            f"{part}: p50 {f['p50_us'] / 1000:.2f} ms, p99 {f['p99_us'] / 1000:.2f} ms, "
            f"max {f['max_us'] / 1000:.2f} ms "
            f"(the ACK written after {f['ack_p50_us'] / 1000:.2f} ms, p50), {f['bytes']} bytes to the part, "
            f"{wire * 1000:.2f} ms on the wire at the configured clock"
        )
    log.append(
        f"Frame to light on the call display ({rounds} CALLs, MicroPython Unix port, bench/mp_light.py; "
        "the office's font on its flash; the display's bus counts bytes, its wire time computed: SPI "
        "5 MHz, I2C 400 kHz with 9 clocks a byte): " + "; ".join(details) + "."
    )
    return results


# -- fuzzing -------------------------------------------------------------------------------------------
def fuzz_decoder(workdir: Path, runs: int, log: list[str]) -> list[Result]:
    """bench/fuzz_decoder.py (atheris) for `runs` inputs, seeded with the golden vectors."""
    if importlib.util.find_spec("atheris") is None:
        log.append("Decoder fuzzing: not run, atheris is not installed (uv sync: dev group)")
        return []
    corpus = workdir / "fuzz-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir()
    vectors = json.loads((ROOT_DIR / "tests" / "protocol_vectors.json").read_text(encoding="utf-8"))
    wires = [bytes.fromhex(v["wire"]) for group in ("frames", "bad") for v in vectors[group] if v.get("wire")]
    for i, wire in enumerate(wires):
        (corpus / f"vector-{i:03d}").write_bytes(bytes((i % 48,)) + wire + wires[(i + 1) % len(wires)])
    cmd = [sys.executable, str(ROOT_DIR / "bench" / "fuzz_decoder.py"), f"-runs={runs}", "-timeout=5"]
    cmd += ["-max_len=600", "-seed=20270315", "-print_final_stats=1", str(corpus)]
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    took = time.perf_counter() - started
    done = re.search(r"Done (\d+) runs", result.stderr)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", result.stderr)
    ok = result.returncode == 0 and done is not None and int(done.group(1)) >= runs
    if ok:
        outcome = f"no exception, no hang: {int(done.group(1)):,} inputs"  # type: ignore[union-attr]
    else:
        tail = "\n".join(result.stderr.splitlines()[-30:])
        outcome = f"**finding** (exit {result.returncode}); see the log"
        log.append(f"Decoder fuzzing output (last lines):\n```\n{tail}\n```")
    log.append(
        f"Decoder fuzzing: atheris {_atheris_version()} (libFuzzer) on firmware.protocol.Decoder.feed "
        f"(input split at a size its first byte picks) and Frame.from_bytes, every decoded frame "
        f"re-encoded and compared; {runs:,} inputs up to 600 bytes, -timeout=5 s per input, seed corpus "
        f"of {len(wires)} golden vectors; {took:.0f} s; coverage at the end: "
        f"{f'cov {cov[-1][0]} ft {cov[-1][1]}' if cov else 'n/a'}. {outcome}."
    )
    return [
        Result(
            f"Decoder fuzz (atheris), {runs:,} inputs",
            outcome,
            "—",
            "—",
            "no exception, no hang",
            ok,
        )
    ]


def _atheris_version() -> str:
    from importlib.metadata import version

    return version("atheris")


def run(
    workdir: Path, calls: int, codec_rounds: int, fuzz_runs: int, log: list[str], only: tuple[str, ...]
) -> list[Result]:
    results: list[Result] = []
    if "latency" in only:
        results += call_latency(workdir, calls, log)
    if "codec" in only:
        results += codec_throughput(codec_rounds, log)
    if "heap" in only:
        results += firmware_heap(workdir, log)
    if "light" in only:
        results += frame_to_light(workdir, 300, log)
    if "fuzz" in only:
        results += fuzz_decoder(workdir, fuzz_runs, log)
    return results
