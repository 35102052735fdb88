"""The running gateway drives its [[signs]] (gateway.signs, gateway.sign_worker): a snapshot when what
they show changed, rendered and written in the renderer process; framebuffer boards get only the
changed rectangles, PNG files are rewritten whole; a sign that falls behind skips to the newest
snapshot; a failing output (or renderer) is logged once per problem, retried, and never stops the
gateway serving the floor. The worker's threads are also tested in this process, with fake targets."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from counterfloor.cli import main
from gateway import service, sign_worker, signs
from gateway.sign_worker import BoardToPng, SignSpec, SignStatus, SignWorker
from gateway.signs import SignDriver, sign_driver
from office.config import parse_config
from office.model import Office
from signage.board import LANDSCAPE, layout_for, render_board
from signage.led import render_led
from signage.legibility import Rect
from signage.snapshot import BoardSnapshot, build_snapshot

from .conftest import EXAMPLES, tokyo
from .floor_support import FakeClock

WAIT_S = 60.0  # drain's time-out: a failure, never a synchronisation by time


class Wall:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def oizumi_text(extra: str = "") -> str:
    """Oizumi without its devices (only the control socket), plus `extra` config."""
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    return text[: text.index("# The gateway (docs/config.md")] + extra


def fake_fb(tmp_path: Path, name: str, size: tuple[int, int], bpp: int = 32, pad: int = 16) -> tuple[Path, Path]:
    """A framebuffer device (a regular file) and its sysfs directory under tmp_path/sysfs/<name>."""
    width, height = size
    stride = width * bpp // 8 + pad
    sysfs = tmp_path / "sysfs" / name
    sysfs.mkdir(parents=True)
    (sysfs / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "stride").write_text(f"{stride}\n")
    device = tmp_path / name
    device.write_bytes(b"\xaa" * stride * height)
    return device, sysfs


def read_fb(device: Path, size: tuple[int, int], pad: int = 16) -> Image.Image:
    """What an XRGB8888 framebuffer with `pad` bytes after each row shows."""
    stride = size[0] * 4 + pad
    return Image.frombytes("RGB", size, device.read_bytes(), "raw", "BGRX", stride)


def changed_box(a: Image.Image, b: Image.Image) -> Rect | None:
    return ImageChops.difference(a, b).getbbox()


def inside(box: Rect, rect: Rect) -> bool:
    return rect[0] <= box[0] and rect[1] <= box[1] and box[2] <= rect[2] and box[3] <= rect[3]


def board_fb(tmp_path: Path, name: str = "fb0", size: tuple[int, int] = LANDSCAPE) -> SignSpec:
    device, sysfs = fake_fb(tmp_path, name, size)
    return SignSpec(name, "board", LANDSCAPE, device, sysfs)


def driver_for(*specs: SignSpec, restart_s: float = signs.RESTART_S) -> SignDriver:
    return SignDriver(parse_config(oizumi_text()), list(specs), restart_s=restart_s)


def current(gw: service.Gateway) -> BoardSnapshot:
    """The snapshot of the gateway's floor now, built here."""
    assert gw.journal is not None
    office = gw.journal.office
    return build_snapshot(office.config, office.state, office.estimator, gw.wall())


def make_gateway(tmp_path: Path, wall: Wall, extra: str = "", driver: SignDriver | None = None) -> service.Gateway:
    text = oizumi_text(extra)
    config = parse_config(text, source=str(tmp_path / "oizumi.toml"))
    gw = service.Gateway(
        config, text, tmp_path / "j.db", tmp_path / "j.sock", sys.stdout, clock=FakeClock(), wall=wall, signs=driver
    )
    gw.start()
    return gw


def turn(gw: service.Gateway) -> None:
    """One loop turn, then wait for the signs to have shown what it handed them."""
    gw.step()
    assert gw.signs is not None and gw.signs.drain(WAIT_S)


# -- the gateway draws a framebuffer board and a PNG board ---------------------------------------------
def test_an_issue_and_a_call_reach_the_framebuffer_and_the_png(tmp_path: Path) -> None:
    fb = board_fb(tmp_path)
    png = tmp_path / "board.png"
    driver = driver_for(fb, SignSpec("preview", "board", LANDSCAPE, png, None))
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), driver=driver)
    try:
        turn(gw)
        assert driver.renderer_pid() not in (None, os.getpid())  # drawn in another process
        screen0 = read_fb(fb.path, LANDSCAPE)
        assert screen0.tobytes() == render_board(current(gw)).image.tobytes()  # the whole screen, first
        assert Image.open(png).convert("RGB").tobytes() == screen0.tobytes()

        assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]
        turn(gw)
        after_issue = current(gw)
        assert driver.last_snapshot == after_issue
        assert [s.waiting for s in after_issue.services if s.id == "seal"] == [1]
        screen1 = read_fb(fb.path, LANDSCAPE)
        lay = layout_for(after_issue, LANDSCAPE)
        box = changed_box(screen0, screen1)
        assert box is not None and inside(box, lay.rect("service:seal"))  # that row, nothing else
        assert screen1.tobytes() == render_board(after_issue).image.tobytes()
        assert Image.open(png).convert("RGB").tobytes() == screen1.tobytes()

        for req in ({"cmd": "open", "counter": "2"}, {"cmd": "call", "counter": "2"}):
            assert gw.handle(req)["ok"]
        turn(gw)
        called = current(gw)
        assert called.newest is not None and called.newest.ticket == "B-001"
        screen2 = read_fb(fb.path, LANDSCAPE)
        calls = lay.rect("calls")
        assert changed_box(screen1.crop(calls), screen2.crop(calls)) is not None  # the number is up
        for name in ("banner", "clock", "info"):  # untouched by a call
            r = lay.rect(name)
            assert changed_box(screen1.crop(r), screen2.crop(r)) is None, name
        assert screen2.tobytes() == render_board(called).image.tobytes()
        assert Image.open(png).convert("RGB").tobytes() == screen2.tobytes()

        turn(gw)  # nothing changed, same minute: no snapshot
        assert driver.snapshots == 3 and driver.sent == 3
        assert {k: (v.shown, v.failure) for k, v in driver.status.items()} == {"fb0": (3, None), "preview": (3, None)}
    finally:
        gw.close()
    assert driver.renderer_pid() is None


def test_signs_from_the_config_png_board_and_led_frames(tmp_path: Path) -> None:
    """[[signs]] in the config: PNG paths relative to the journal's directory; an LED matrix as a
    one-bit PNG and on a framebuffer of its size; a sign without output is not drawn."""
    device, _ = fake_fb(tmp_path, "fb1", (64, 16), bpp=16, pad=0)
    extra = f"""
[[signs]]
id = "hall"
kind = "board"
size = "1080x1920"
output = "signs/hall.png"

[[signs]]
id = "desk"
kind = "led"
size = "128x32"
output = "signs/desk.png"

[[signs]]
id = "door"
kind = "led"
size = "64x16"
output = "{device}"

[[signs]]
id = "spare"
kind = "led"
size = "64x16"
"""
    (tmp_path / "signs").mkdir()
    config = parse_config(oizumi_text(extra))
    driver = sign_driver(config, tmp_path / "j.db", sysfs_root=tmp_path / "sysfs")
    assert driver is not None
    assert driver.specs == [
        SignSpec("hall", "board", (1080, 1920), tmp_path / "signs" / "hall.png", None),
        SignSpec("desk", "led", (128, 32), tmp_path / "signs" / "desk.png", None),
        SignSpec("door", "led", (64, 16), device, tmp_path / "sysfs" / "fb1"),
    ]
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), extra, driver)
    try:
        for req in (
            {"cmd": "issue", "service": "seal"},
            {"cmd": "open", "counter": "2"},
            {"cmd": "call", "counter": "2"},
        ):
            assert gw.handle(req)["ok"]
        turn(gw)
        snap = current(gw)
        led = Image.open(tmp_path / "signs" / "desk.png")
        assert led.mode == "1" and led.size == (128, 32)
        assert led.tobytes() == render_led(snap, (128, 32)).image.tobytes()
        assert led.getbbox() is not None  # "B-001 ▶ 2" is lit
        board = Image.open(tmp_path / "signs" / "hall.png")
        assert board.size == (1080, 1920)
        assert board.convert("RGB").tobytes() == render_board(snap, (1080, 1920)).image.tobytes()
        door = render_led(snap, (64, 16)).image.convert("L").tobytes()
        words = [int.from_bytes(device.read_bytes()[i : i + 2], "little") for i in range(0, 64 * 16 * 2, 2)]
        assert [0xFFFF if p else 0 for p in door] == words
    finally:
        gw.close()


def test_the_gateway_builds_its_driver_from_the_config(tmp_path: Path) -> None:
    extra = '\n[[signs]]\nid = "hall"\nkind = "board"\noutput = "hall.png"\n'
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), extra)
    try:
        assert gw.signs is not None and [s.path for s in gw.signs.specs] == [tmp_path / "hall.png"]
        turn(gw)
        assert Image.open(tmp_path / "hall.png").size == LANDSCAPE
    finally:
        gw.close()
    assert gw.signs is None


def test_gateway_run_draws_the_configured_board_and_leaves_it_on_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`counterfloor gateway run` with a [[signs]] PNG: drawn at the first turn; on stop the
    renderer finishes the last snapshot before it exits."""
    extra = '\n[[signs]]\nid = "hall"\nkind = "board"\noutput = "hall.png"\n'
    config = tmp_path / "oizumi.toml"
    config.write_text(oizumi_text(extra), encoding="utf-8")
    journal = tmp_path / "j.db"
    assert main(["gateway", "run", "--config", str(config), "--journal", str(journal), "--run-for", "0.2"]) == 0
    assert capsys.readouterr().out.startswith("ready office=oizumi")
    board = Image.open(tmp_path / "hall.png")
    assert board.size == LANDSCAPE and board.getbbox() is not None


def test_the_examples_commented_signs_work_when_uncommented(tmp_path: Path) -> None:
    text = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    start = text.index("# [[signs]]")
    block = text[start : text.index("\n\n", start)]
    uncommented = "\n".join(line.removeprefix("# ").removeprefix("#") for line in block.splitlines())
    config = parse_config(text.replace(block, uncommented))
    driver = sign_driver(config, tmp_path / "nerima.db")
    assert driver is not None
    assert [(s.id, s.kind, s.path, s.sysfs) for s in driver.specs] == [
        ("hall", "board", tmp_path / "nerima-board.png", None),
        ("counter-6", "led", tmp_path / "nerima-led-6.png", None),
    ]


def test_no_signs_with_an_output_no_driver(tmp_path: Path) -> None:
    assert sign_driver(parse_config(oizumi_text()), tmp_path / "j.db") is None
    unplugged = parse_config(oizumi_text('\n[[signs]]\nid = "x"\nkind = "led"\nsize = "32x16"\n'))
    assert sign_driver(unplugged, tmp_path / "j.db") is None


# -- when the loop builds a snapshot ------------------------------------------------------------------
def test_a_snapshot_on_a_change_at_the_minute_and_at_the_mode_change(tmp_path: Path) -> None:
    driver = driver_for()  # no signs: only the decisions (and no renderer process)
    wall = Wall(tokyo(2027, 3, 15, 16, 58, 30))
    gw = make_gateway(tmp_path, wall, driver=driver)
    seen: list[BoardSnapshot] = []

    def step() -> None:
        gw.step()
        if driver.last_snapshot is not None and (not seen or seen[-1] is not driver.last_snapshot):
            seen.append(driver.last_snapshot)

    try:
        step()
        assert seen[-1].mode.mode == "office"
        # Time passes on both clocks (a wall clock that moved alone would be a step, recorded).
        wall.at += timedelta(seconds=20)  # 16:58:50: nothing changed
        gw.clock.wait_until(gw.clock.now() + 20)  # type: ignore[attr-defined]
        step()
        assert len(seen) == 1
        wall.at += timedelta(seconds=10)  # 16:59:00: the clock
        gw.clock.wait_until(gw.clock.now() + 10)  # type: ignore[attr-defined]
        step()
        assert len(seen) == 2 and seen[-1].at.minute == 59
        assert gw.handle({"cmd": "issue", "service": "move"})["ok"]  # an issue: at once
        step()
        assert len(seen) == 3 and seen[-1].services[0].waiting == 1
        wall.at = tokyo(2027, 3, 15, 17)  # the evening begins
        step()
        assert seen[-1].mode.mode == "evening"
        wall.at = tokyo(2027, 3, 15, 16, 0)  # the wall clock set back an hour: drawn again
        step()
        assert len(seen) == 5 and seen[-1].at.hour == 16
        assert driver.renderer_pid() is None and driver.sent == 0
    finally:
        gw.close()


def test_a_snapshot_that_cannot_be_built_is_logged_once_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> BoardSnapshot:
        raise KeyError("no-such-service")

    monkeypatch.setattr(signs, "build_snapshot", broken)
    driver = driver_for()
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), driver=driver)
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.signs"):
            for _ in range(3):
                assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]
                gw.step()
        assert [r.getMessage() for r in caplog.records] == [
            "signs: cannot build a snapshot: KeyError: 'no-such-service'"
        ]
        assert driver.snapshots == 0
        monkeypatch.undo()
        assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]
        gw.step()
        assert driver.last_snapshot is not None and driver.last_snapshot.services[1].waiting == 4
    finally:
        gw.close()


def test_the_next_change_comes_before_the_minute_when_sooner() -> None:
    at = tokyo(2027, 3, 15, 16, 59, 30)
    assert signs._next_due(at, tokyo(2027, 3, 15, 16, 59, 45)) == tokyo(2027, 3, 15, 16, 59, 45)
    assert signs._next_due(at, tokyo(2027, 3, 15, 17, 30)) == tokyo(2027, 3, 15, 17)
    assert signs._next_due(at, None) == tokyo(2027, 3, 15, 17)


# -- coalescing and never waiting ---------------------------------------------------------------------------
def test_a_stopped_renderer_never_holds_the_loop_which_sends_only_the_newest(tmp_path: Path) -> None:
    fb = board_fb(tmp_path)
    driver = driver_for(fb)
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), driver=driver)
    try:
        turn(gw)
        pid = driver.renderer_pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the renderer takes nothing now
        try:
            assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]
            gw.step()  # this snapshot goes into the pipe; the renderer does not take it
            for _ in range(5):
                assert gw.handle({"cmd": "issue", "service": "move"})["ok"]  # the floor is served
                gw.step()
            assert driver.snapshots == 7 and driver.sent == 2 and driver.coalesced == 4
        finally:
            os.kill(pid, signal.SIGCONT)
        assert driver.drain(WAIT_S)
        assert driver.sent == 3  # the one in the pipe, then only the newest
        assert read_fb(fb.path, LANDSCAPE).tobytes() == render_board(current(gw)).image.tobytes()
    finally:
        gw.close()


class Recorder:
    """A sign target that records what it was asked to show."""

    def __init__(self) -> None:
        self.seen: list[BoardSnapshot] = []

    def show(self, snap: BoardSnapshot) -> list[str]:
        self.seen.append(snap)
        return []

    def close(self) -> None:
        pass


class Blocking(Recorder):
    """Holds the first snapshot until released, so that newer ones pile up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def show(self, snap: BoardSnapshot) -> list[str]:
        self.started.set()
        assert self.release.wait(WAIT_S)
        return super().show(snap)


def snapshots(n: int) -> list[BoardSnapshot]:
    """`n` snapshots of Oizumi, a minute apart."""
    config = parse_config(oizumi_text())
    office = Office(config)
    return [build_snapshot(config, office.state, office.estimator, tokyo(2027, 3, 15, 10, i)) for i in range(n)]


def test_a_sign_behind_skips_to_the_newest_snapshot_and_others_are_not_held_up() -> None:
    slow, quick = Blocking(), Recorder()
    reports: list[SignStatus] = []
    slow_worker = SignWorker("slow", slow, reports.append)
    quick_worker = SignWorker("quick", quick)
    snaps = snapshots(4)
    try:
        slow_worker.submit(snaps[0])
        quick_worker.submit(snaps[0])
        assert slow.started.wait(WAIT_S)  # the slow sign is busy with the first snapshot
        for snap in snaps[1:]:
            slow_worker.submit(snap)  # returns at once
            quick_worker.submit(snap)
            assert quick_worker.drain(WAIT_S)
        assert quick.seen == snaps  # the quick sign showed every one meanwhile
        assert slow.seen == []
        slow.release.set()
        assert slow_worker.drain(WAIT_S)
        assert slow.seen == [snaps[0], snaps[3]]  # the first, then only the newest
        assert (slow_worker.submitted, slow_worker.shown, slow_worker.coalesced) == (4, 2, 2)
        assert [r.shown for r in reports] == [1, 2]
    finally:
        slow.release.set()
        slow_worker.close()
        quick_worker.close()
    assert not any(t.name.startswith("sign-") for t in threading.enumerate())


# -- failing outputs ----------------------------------------------------------------------------------------
def test_a_missing_framebuffer_is_logged_once_retried_and_found_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fb = board_fb(tmp_path)
    fb.path.unlink()  # the screen is not there (yet)
    driver = driver_for(fb)
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), driver=driver)
    try:
        with caplog.at_level(logging.INFO, logger="gateway.signs"):
            for _ in range(3):  # three snapshots, one problem: one warning
                assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]
                turn(gw)
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert warnings == [
                f"sign fb0: cannot be shown: FramebufferError: {fb.path}: cannot be opened for writing: "
                "No such file or directory (retrying)"
            ]
            assert driver.status["fb0"].failures >= 3 and driver.status["fb0"].shown == 0  # (+ timed retries)
            assert gw.handle({"cmd": "show"})["ok"]  # the gateway keeps serving

            fb.path.write_bytes(b"\xaa" * (LANDSCAPE[0] * 4 + 16) * LANDSCAPE[1])  # plugged in
            assert gw.handle({"cmd": "issue", "service": "move"})["ok"]
            turn(gw)
            assert driver.status["fb0"].failure is None and driver.status["fb0"].shown == 1
            assert caplog.records[-1].getMessage().startswith("sign fb0: shown again (after FramebufferError")
        assert read_fb(fb.path, LANDSCAPE).tobytes() == render_board(current(gw)).image.tobytes()  # all of it
    finally:
        gw.close()


def test_a_png_that_cannot_be_written_is_logged_once_and_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    png = tmp_path / "out" / "board.png"  # its directory is missing, as on a disk not mounted
    driver = driver_for(SignSpec("hall", "board", LANDSCAPE, png, None))
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), driver=driver)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.signs"):
            for _ in range(2):
                assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]
                turn(gw)
        assert len(caplog.records) == 1 and "FileNotFoundError" in caplog.records[0].getMessage()
        (tmp_path / "out").mkdir()
        assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]
        turn(gw)
        assert driver.status["hall"].failure is None
        assert Image.open(png).convert("RGB").tobytes() == render_board(current(gw)).image.tobytes()
    finally:
        gw.close()


def test_a_full_disk_is_reported_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(image: Image.Image, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sign_worker, "write_png", full)
    reports: list[SignStatus] = []
    worker = SignWorker("hall", BoardToPng(LANDSCAPE, tmp_path / "b.png"), reports.append)
    try:
        worker.submit(snapshots(1)[0])
        assert worker.drain(WAIT_S)
    finally:
        worker.close()
    assert reports[-1].failure == f"OSError: [Errno 28] No space left on device: '{tmp_path / 'b.png'}'"
    assert not (tmp_path / "b.png").exists()


def test_a_worker_retries_a_failed_snapshot_by_itself() -> None:
    class Flaky(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.fail = 2

        def show(self, snap: BoardSnapshot) -> list[str]:
            if self.fail:
                self.fail -= 1
                raise OSError(errno.EIO, "Input/output error")
            return super().show(snap)

    flaky = Flaky()
    shown = threading.Event()
    reports: list[SignStatus] = []

    def report(status: SignStatus) -> None:
        reports.append(status)
        if status.failure is None:
            shown.set()

    worker = SignWorker("flaky", flaky, report, retry_s=0.0)
    try:
        worker.submit(snapshots(1)[0])  # one snapshot only
        assert shown.wait(WAIT_S)
    finally:
        worker.close()
    assert [r.failures for r in reports] == [1, 2, 2] and len(flaky.seen) == 1 and worker.submitted == 1


def test_a_board_of_the_wrong_size_for_the_screen_is_named(tmp_path: Path) -> None:
    fb = board_fb(tmp_path, size=(1280, 720))
    driver = driver_for(fb)
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), driver=driver)
    try:
        turn(gw)
        failure = driver.status["fb0"].failure
        assert failure is not None and "does not match the 1280x720 screen" in failure
        assert fb.path.read_bytes() == b"\xaa" * (1280 * 4 + 16) * 720
    finally:
        gw.close()


def test_a_renderer_that_dies_is_logged_and_started_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fb = board_fb(tmp_path)
    driver = driver_for(fb, restart_s=0.0)
    gw = make_gateway(tmp_path, Wall(tokyo(2027, 3, 15, 10, 0, 5)), driver=driver)
    try:
        turn(gw)
        pid = driver.renderer_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead (left for the driver to reap)
        fb.path.write_bytes(b"\xaa" * (LANDSCAPE[0] * 4 + 16) * LANDSCAPE[1])  # the screen was cleared
        with caplog.at_level(logging.INFO, logger="gateway.signs"):
            assert gw.handle({"cmd": "issue", "service": "seal"})["ok"]  # served meanwhile
            gw.step()  # sees the end, logs it
            gw.step()  # starts a new renderer with the newest snapshot
            assert driver.drain(WAIT_S)
        messages = [r.getMessage() for r in caplog.records]
        assert "signs: renderer exited (status -9); starting it again in 0 s" in messages
        assert any(m.startswith("signs: renderer started again") for m in messages)
        assert driver.renderer_pid() not in (None, pid) and driver.restarts == 1
        assert read_fb(fb.path, LANDSCAPE).tobytes() == render_board(current(gw)).image.tobytes()  # all of it
    finally:
        gw.close()
