"""Build and deploy steps for the MicroPython boards, used by platformio.ini (as an extra script)
and runnable on its own, so the build is tested without PlatformIO or its registry:

    python tools/pio_micropython.py build KIND OUT_DIR [--mpy-cross PATH] [--office OFFICE.toml]
    python tools/pio_micropython.py deploy KIND OUT_DIR [--port PORT] [--mpremote PATH]

build: compiles the application modules with mpy-cross into OUT_DIR/a/ (slot a) and lays out the
loader beside them: boot.py and main.py stay source (MicroPython runs only those names at boot),
slots and board are compiled, config.json is the kind's example config, `slot` names slot a;
with --office, the office's 16 px font (tools/make_font.py) is font16.bin at the root.
deploy: copies OUT_DIR to the board with `mpremote cp` (the loader at the root, the slot in :a/).
Under PlatformIO the environment's custom_device_kind, custom_config, custom_office,
custom_mpy_cross and custom_mpremote options choose the same, as targets `pio run -e dispenser_pico -t mpy` and
`-t deploy` (and `-t upload`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
KINDS = ("dispenser", "counter_pad", "call_display")
LOADER_SOURCE = ("boot.py", "main.py")  # run by name at boot: stay .py
LOADER_COMPILED = ("slots.py", "board.py", "board_pico.py")
APP_MODULES = (
    "protocol.py",
    "device.py",
    "button.py",
    "display.py",
    "render.py",
    "config.py",
    "wiring.py",
    "fw_update.py",
)
# Each kind's display drivers (wiring.py chooses among them by config.json) and, where a panel can
# show Japanese, the font reader.
KIND_MODULES = {
    "dispenser": ("drv_ssd1306.py", "font16.py"),
    "counter_pad": ("drv_seg7.py", "drv_tm1637.py"),
    "call_display": ("drv_seg7.py", "drv_max7219.py", "drv_ssd1306.py", "font16.py"),
}
FONT_FILE = "font16.bin"  # firmware/render.py FONT_FILE, at the flash's root


def _tool(name: str) -> str:
    """`name` from this interpreter's bin/ (the uv venv) if it is there, else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def modules_for(kind: str) -> list[str]:
    if kind not in KINDS:
        raise SystemExit(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return [*APP_MODULES, *KIND_MODULES[kind], f"{kind}.py"]


def build(
    kind: str, out: Path, mpy_cross: str = "mpy-cross", config: Path | None = None, office: Path | None = None
) -> list[Path]:
    """Lays out the board's flash in `out`; returns the files written. With `office` (its TOML
    config), the office's 16 px font is built for it (tools/make_font.py) and laid beside the
    config, so the board's panel shows its Japanese."""
    modules = modules_for(kind)
    if out.exists():
        shutil.rmtree(out)
    (out / "a").mkdir(parents=True)
    written = []

    def compile_to(src: Path, dst: Path) -> None:
        # -s: the module's name as its source name, a string the board interns anyway (a path
        # would be one more interned string per module on its heap; docs/firmware.md, "Memory").
        argv = [mpy_cross, "-s", src.stem, "-o", str(dst), str(src)]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"mpy-cross {src.name}: {result.stderr.strip()}")
        written.append(dst)

    for name in LOADER_SOURCE:
        shutil.copy(FIRMWARE / name, out / name)
        written.append(out / name)
    for name in LOADER_COMPILED:
        compile_to(FIRMWARE / name, out / name.replace(".py", ".mpy"))
    for name in modules:
        compile_to(FIRMWARE / name, out / "a" / name.replace(".py", ".mpy"))
    shutil.copy(config or ROOT / "tools" / "configs" / f"{kind}.json", out / "config.json")
    (out / "slot").write_text("a")
    written += [out / "config.json", out / "slot"]
    if office is not None and kind != "counter_pad":  # the pad's 7 segments show no Japanese
        font = out / FONT_FILE
        argv = [sys.executable, str(ROOT / "tools" / "make_font.py"), "--config", str(office), "--out", str(font)]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"make_font.py {office}: {(result.stderr or result.stdout).strip()}")
        written.append(font)
    return written


def deploy_commands(out: Path, port: str = "auto", mpremote: str = "mpremote") -> list[list[str]]:
    """The mpremote command lines that copy a built `out` to the board, then reset it."""
    cmd = [mpremote, "connect", port]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    steps = [[*cmd, "mkdir", ":a"]]  # fails harmlessly when it exists
    steps += [[*cmd, "cp", str(f), ":" + f.relative_to(out).as_posix()] for f in files]
    steps.append([*cmd, "reset"])
    return steps


def deploy(out: Path, port: str = "auto", mpremote: str = "mpremote") -> None:
    for i, argv in enumerate(deploy_commands(out, port, mpremote)):
        result = subprocess.run(argv, check=False)
        if result.returncode != 0 and i > 0:
            raise SystemExit(f"failed: {' '.join(argv)}")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[0] not in ("build", "deploy"):
        raise SystemExit(__doc__)
    action, kind, out = argv[0], argv[1], Path(argv[2])
    opts = dict(zip(argv[3::2], argv[4::2], strict=False))
    if action == "build":
        office = opts.get("--office")
        build(kind, out, opts.get("--mpy-cross", _tool("mpy-cross")), None, Path(office) if office else None)
    else:
        modules_for(kind)
        deploy(out, opts.get("--port", "auto"), opts.get("--mpremote", _tool("mpremote")))


def _platformio() -> None:
    """Registers the targets when PlatformIO runs this file as an extra script (SCons)."""
    env = globals()["DefaultEnvironment"]()
    kind = env.GetProjectOption("custom_device_kind")
    out = Path(env.subst("$BUILD_DIR")) / "flash"
    mpy_cross = env.GetProjectOption("custom_mpy_cross", "mpy-cross")
    mpremote = env.GetProjectOption("custom_mpremote", "mpremote")
    config = ROOT / env.GetProjectOption("custom_config")
    office_option = env.GetProjectOption("custom_office", "")
    office = ROOT / office_option if office_option else None
    port = env.subst("$UPLOAD_PORT") or "auto"

    def do_build(*_args: object, **_kw: object) -> None:
        build(kind, out, mpy_cross, config, office)

    def do_deploy(*_args: object, **_kw: object) -> None:
        build(kind, out, mpy_cross, config, office)
        deploy(out, port, mpremote)

    env.AddCustomTarget("mpy", None, do_build, title="mpy-cross", description="compile the firmware")
    env.AddCustomTarget("deploy", None, do_deploy, title="mpremote cp", description="copy it to the board")
    env.Replace(UPLOADCMD=do_deploy)


if __name__ == "__main__":
    main(sys.argv[1:])
elif "DefaultEnvironment" in globals():
    _platformio()
