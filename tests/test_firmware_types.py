"""The board firmware type-checks against the MicroPython RP2 stubs (firmware/mypy.ini), not CPython's
typeshed: calls to machine, time.ticks_*, asyncio, framebuf, gc, micropython ... are checked against
what the rp2 port has. A canary shows the stubs are really the ones in use."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
CONFIG = ROOT / "firmware" / "mypy.ini"
STUB_DISTRIBUTIONS = ("micropython-rp2-stubs", "micropython-stdlib-stubs")


@pytest.fixture(scope="module")
def stubs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory holding only the stub packages' files (their modules, `_mpy_shed`, `stdlib`), as
    symlinks into site-packages: usable as both mypy_path and custom_typeshed_dir."""
    out = tmp_path_factory.mktemp("mpy-stubs")
    tops: dict[str, Path] = {}
    for name in STUB_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        for f in dist.files or ():
            top = f.parts[0]
            if top.endswith(".dist-info") or not (f.name.endswith(".pyi") or f.name == "VERSIONS"):
                continue
            tops[top] = Path(str(dist.locate_file(top)))
    assert "machine.pyi" in tops and "stdlib" in tops, sorted(tops)
    for top, src in tops.items():
        (out / top).symlink_to(src)
    return out


def run_mypy(stubs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COUNTERFLOOR_MPY_STUBS": str(stubs)}
    argv = [str(BIN / "mypy"), "--config-file", str(CONFIG), "--cache-dir", str(stubs.parent / "mypy-cache"), *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_firmware_type_checks_against_micropython_stubs(stubs_dir: Path) -> None:
    result = run_mypy(stubs_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_the_micropython_stubs_are_the_ones_in_use(stubs_dir: Path, tmp_path: Path) -> None:
    # ticks_ms/ticks_diff exist only in MicroPython's time module (CPython's typeshed would reject
    # them); a wrong call to one is caught, as is a CPython-only function MicroPython lacks.
    canary = (
        "import time, machine\n"
        "t = time.ticks_diff(time.ticks_ms(), 0)\n"
        "machine.Pin(2, machine.Pin.IN, machine.Pin.PULL_UP)\n"
        "time.ticks_add(time.ticks_ms())\n"
        "time.perf_counter()\n"
    )
    script = tmp_path / "canary.py"
    script.write_text(canary)
    result = run_mypy(stubs_dir, str(script))
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout + result.stderr
    assert errors[0].startswith(f"{script}:4:") and "[call-arg]" in errors[0], errors
    assert errors[1].startswith(f"{script}:5:") and "perf_counter" in errors[1], errors
