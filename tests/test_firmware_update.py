"""Firmware bundle transfer: the bundle format, the gateway's FirmwareUpdate state machine against
scripted replies (on a fake clock), BusMaster carrying it in bulk slots between polls, and the
whole transfer against the real firmware (firmware/main.py from an A/B flash layout under the
MicroPython Unix port, over a pty): a corrupted chunk, a resume after a pulled cable, a wrong
SHA-256 that keeps the running slot, and the board booting the new slot after FW_COMMIT."""

from __future__ import annotations

import hashlib
import itertools
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import firmware.protocol as p
from gateway.bus import BusMaster
from gateway.device_link import DeviceLink, DeviceSpec
from gateway.firmware_update import BundleError, FirmwareUpdate, UpdateState, make_bundle, read_bundle
from office.model import Decision
from tools.pio_micropython import modules_for

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BIN = Path(sys.executable).parent
LOADER = ("main.py", "boot.py", "slots.py", "board.py", "board_sim.py")
APP = tuple(modules_for("dispenser"))  # what the build puts in a dispenser's slot
ADDR = 5
KEY = bytes(range(100, 132))  # the device key provisioned at install (FW_KEY): in its flash's fw_key


def is_a(frame: p.Frame | None, message: object) -> bool:
    """`frame` is of message type `message` (p.Poll, p.FwChunk …)."""
    return frame is not None and frame.TYPE == message.TYPE  # type: ignore[attr-defined]


# --- The bundle format


def test_bundle_round_trips_and_is_reproducible() -> None:
    files = {"b.mpy": b"\x00" * 300, "a.py": b"X = 1\n", "empty.txt": b""}
    bundle = make_bundle(files)
    assert read_bundle(bundle) == files
    assert bundle == make_bundle(dict(reversed(list(files.items()))))
    assert bundle[:10] == b"\x04a.py\x00\x00\x00\x06X"


@pytest.mark.parametrize("name", ["", "../boot.py", "a/b.py", ".hidden", "x" * 33, "名前.py"])
def test_bundle_refuses_a_file_name_the_device_would_refuse(name: str) -> None:
    with pytest.raises(BundleError, match="file name"):
        make_bundle({name: b"x"})


def test_read_bundle_names_where_it_is_malformed() -> None:
    bundle = make_bundle({"a.py": b"12345"})
    with pytest.raises(BundleError, match=r"a.py: 5 bytes at offset 9 run past the end"):
        read_bundle(bundle[:-1])


# --- The state machine against scripted replies


def status(update: FirmwareUpdate, frame: p.Frame, state: int, offset: int, now: float = 0.0) -> None:
    update.on_reply(p.FwStatus(ADDR, frame.seq, state, offset), now)


def test_frames_go_begin_chunks_end_commit_and_resume_where_the_device_says() -> None:
    bundle = bytes(range(256)) * 2  # 512 bytes: 5 chunks of 112 (the last 64)
    up = FirmwareUpdate(ADDR, bundle, (1, 4, 0), 0.0)
    f = up.next_frame(0.0)
    assert is_a(f, p.FwBegin) and (f.size, f.sha256, f.version) == (512, hashlib.sha256(bundle).digest(), (1, 4, 0))
    status(up, f, p.FW_RECEIVING, 224)  # the device has 224 bytes already: resume there
    offsets = []
    while up.state is UpdateState.SENDING:
        f = up.next_frame(0.0)
        assert is_a(f, p.FwChunk) and f.data == bundle[f.offset : f.offset + len(f.data)]
        offsets.append(f.offset)
        status(up, f, p.FW_RECEIVING, f.offset + len(f.data))
    assert offsets == [224, 336, 448]
    f = up.next_frame(0.0)
    assert is_a(f, p.FwEnd)
    status(up, f, p.FW_VERIFIED, 512)
    f = up.next_frame(0.0)
    assert is_a(f, p.FwCommit)
    up.on_reply(p.Ack(ADDR, f.seq), 0.0)
    assert up.state is UpdateState.DONE and up.next_frame(0.0) is None and up.progress == 1.0


def test_a_lost_exchange_is_retried_as_the_same_frame_after_back_off_then_resumed_with_fw_begin() -> None:
    up = FirmwareUpdate(ADDR, b"x" * 300, (1, 0, 1), 0.0, stall_wait=2.0)
    status(up, up.next_frame(0.0), p.FW_RECEIVING, 0)
    first = up.next_frame(0.0)
    now = 0.0
    for attempt in range(1, p.MAX_RETRIES + 1):
        up.on_no_reply(now)
        assert up.next_frame(now) is None  # backing off
        now = up.retry_at() or now
        assert now == pytest.approx(sum(p.retry_delay_ms(n) for n in range(1, attempt + 1)) / 1000)
        again = up.next_frame(now)
        assert again is first  # a retry is the same frame: same seq, same bytes
    up.on_no_reply(now)  # silent after every retry: a pulled cable
    assert up.next_frame(now + 1.9) is None
    f = up.next_frame(now + 2.0)
    assert is_a(f, p.FwBegin) and up.resumes == 1
    status(up, f, p.FW_RECEIVING, 112, now + 2.0)
    f = up.next_frame(now + 2.0)
    assert is_a(f, p.FwChunk) and f.offset == 112


def test_nak_sequence_moves_to_the_offset_the_device_expects_and_busy_repeats_the_frame() -> None:
    up = FirmwareUpdate(ADDR, b"y" * 400, (1, 0, 1), 0.0)
    status(up, up.next_frame(0.0), p.FW_RECEIVING, 0)
    f = up.next_frame(0.0)
    up.on_reply(p.Nak(ADDR, f.seq, p.NAK_BUSY), 0.0)
    assert up.next_frame(0.0) is None and up.next_frame(0.01) is f
    up.on_reply(p.Nak(ADDR, f.seq, p.NAK_FW_SEQUENCE, 336), 0.01)
    f = up.next_frame(0.01)
    assert is_a(f, p.FwChunk) and (f.offset, len(f.data)) == (336, 64)


@pytest.mark.parametrize(
    ("reason", "info", "error"),
    [
        (p.NAK_FW_TOO_LARGE, 1000, "the bundle of 2000 bytes does not fit: the device takes at most 1000"),
        (p.NAK_UNSUPPORTED, 0, "the device does not accept firmware transfers"),
    ],
)
def test_a_final_nak_fails_the_update_naming_why(reason: int, info: int, error: str) -> None:
    up = FirmwareUpdate(ADDR, b"z" * 2000, (2, 0, 0), 0.0)
    up.on_reply(p.Nak(ADDR, up.next_frame(0.0).seq, reason, info), 0.0)
    assert (up.state, up.error) == (UpdateState.FAILED, error)
    assert up.next_frame(1.0) is None


def test_a_refused_bundle_is_sent_again_once_then_fails() -> None:
    up = FirmwareUpdate(ADDR, b"w" * 50, (2, 0, 0), 0.0, max_restarts=1)
    for _ in range(2):
        status(up, up.next_frame(0.0), p.FW_RECEIVING, 0)
        status(up, up.next_frame(0.0), p.FW_RECEIVING, 50)
        up.on_reply(p.Nak(ADDR, up.next_frame(0.0).seq, p.NAK_FW_VERIFY), 0.0)
    assert up.state is UpdateState.FAILED and up.restarts == 1
    assert up.error == "the device refused the bundle (size or SHA-256) 2 times"


def test_no_progress_for_too_long_gives_up_on_the_injected_clock() -> None:
    up = FirmwareUpdate(ADDR, b"v" * 50, (2, 0, 0), 100.0, give_up_after=30.0, stall_wait=5.0)
    now = 100.0
    while up.state is not UpdateState.FAILED:
        f = up.next_frame(now)
        if f is not None:
            up.on_no_reply(now)
        now += 0.5
    assert now <= 131.0 and up.error is not None and "no progress for 30 s" in up.error


def test_commit_false_waits_for_commit() -> None:
    up = FirmwareUpdate(ADDR, b"u" * 10, (2, 0, 0), 0.0, commit=False)
    status(up, up.next_frame(0.0), p.FW_RECEIVING, 10)
    status(up, up.next_frame(0.0), p.FW_VERIFIED, 10)
    assert up.state is UpdateState.VERIFIED and up.next_frame(5.0) is None
    up.commit()
    assert is_a(up.next_frame(5.0), p.FwCommit)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(BundleError, match="empty bundle"):
        FirmwareUpdate(ADDR, b"", (1, 0, 0), 0.0)
    with pytest.raises(p.ProtocolError, match=r"addr must be an integer 1\.\.16, got 17"):
        FirmwareUpdate(17, b"x", (1, 0, 0), 0.0)
    with pytest.raises(ValueError, match=r"chunk_size must be 1\.\.112"):
        FirmwareUpdate(ADDR, b"x", (1, 0, 0), 0.0, chunk_size=113)


# --- BusMaster: the transfer rides in bulk slots, between polls


def test_bus_master_sends_one_firmware_exchange_per_cycle_between_polls() -> None:
    links = [DeviceLink(DeviceSpec(a, p.KIND_COUNTER_PAD, ("x",), counter="1"), lambda: "t") for a in (3, ADDR)]

    def execute(command: object) -> Decision:
        raise AssertionError(command)

    bus = BusMaster(links, execute)
    bundle = b"q" * 250
    up = FirmwareUpdate(ADDR, bundle, (1, 1, 0), 0.0)
    bus.start_update(up)
    with pytest.raises(ValueError, match="no device at address 9"):
        bus.start_update(FirmwareUpdate(9, bundle, (1, 1, 0), 0.0))
    received = 0
    sent: list[str] = []
    now = 0.0
    for _ in range(60):
        wire = bus.next_request(now)
        if wire is None:
            now += 0.01
            continue
        (frame,) = p.Decoder().feed(wire)
        sent.append(frame.NAME)
        if frame.NAME == "POLL" or frame.NAME == "IDENTIFY":
            bus.tick(now + 1.0)  # the pads stay silent: only the transfer answers
        elif frame.NAME == "FW_BEGIN":
            bus.receive(p.FwStatus(ADDR, frame.seq, p.FW_RECEIVING, 0).to_bytes(), now)
        elif frame.NAME == "FW_CHUNK":
            received += len(frame.data)
            bus.receive(p.FwStatus(ADDR, frame.seq, p.FW_RECEIVING, received).to_bytes(), now)
        elif frame.NAME == "FW_END":
            bus.receive(p.FwStatus(ADDR, frame.seq, p.FW_VERIFIED, received).to_bytes(), now)
        elif frame.NAME == "FW_COMMIT":
            bus.receive(p.Ack(ADDR, frame.seq).to_bytes(), now)
        now += 0.01
        if up.finished:
            break
    assert up.state is UpdateState.DONE and received == len(bundle)
    fw = [n for n in sent if n.startswith("FW_")]
    assert fw == ["FW_BEGIN", "FW_CHUNK", "FW_CHUNK", "FW_CHUNK", "FW_END", "FW_COMMIT"]
    # Every firmware exchange comes after a whole cycle: both devices asked since the last one.
    at = [-1] + [i for i, name in enumerate(sent) if name.startswith("FW_")]
    for a, b in itertools.pairwise(at):
        assert len(sent[a + 1 : b]) == 2 and not any(n.startswith("FW_") for n in sent[a + 1 : b]), sent


# --- The real firmware under MicroPython, over a pty


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} not found at {path}: run `uv sync` (dev dependencies)")
    return path


def flash_layout(root: Path) -> Path:
    """The board's flash as tools/pio_micropython.py lays it out, with sources: slot a active."""
    root.mkdir()
    (root / "a").mkdir()
    for name in LOADER:
        shutil.copy(FIRMWARE / name, root / name)
    for name in APP:
        shutil.copy(FIRMWARE / name, root / "a" / name)
    (root / "config.json").write_text(f'{{"kind": "dispenser", "addr": {ADDR}}}')
    (root / "slot").write_text("a")
    (root / "fw_key").write_bytes(KEY)
    return root


def new_slot(tmp: Path) -> dict[str, bytes]:
    """The application compiled by mpy-cross: the bundle's files."""
    out = tmp / "build"
    out.mkdir()
    for name in APP:
        dst = out / name.replace(".py", ".mpy")
        subprocess.run([str(tool("mpy-cross")), "-o", str(dst), str(FIRMWARE / name)], check=True, timeout=60)
    return {f.name: f.read_bytes() for f in sorted(out.iterdir())}


class Board:
    def __init__(self, root: Path, serial: str, **env_more: str) -> None:
        env = dict(os.environ, COUNTERFLOOR_FLASH=str(root), COUNTERFLOOR_RESET_CAUSE=str(p.RESET_POWER_ON))
        env.update(env_more)
        argv = [str(tool("micropython")), "-X", "heapsize=192K", str(root / "main.py"), "--serial", serial]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root
        )
        assert self.proc.stdout is not None
        self.ready = ""
        self.boot: list[str] = []  # what it printed before "ready"
        for _ in range(5):
            line = self.proc.stdout.readline()
            self.boot.append(line.strip())
            if line.startswith("ready "):
                self.ready = line.strip()
                return
        self.proc.kill()
        raise AssertionError(f"the board did not start: {self.proc.communicate()}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.communicate(timeout=10)[0]


class Link:
    """The gateway end of the pty: one request, its reply or None after `wait` real seconds."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.decoder = p.Decoder()
        self.seq = 100

    def exchange(self, wire: bytes, seq: int, wait: float = 2.0) -> p.Frame | None:
        os.write(self.master, wire)
        while True:
            ready, _, _ = select.select([self.master], [], [], wait)
            if not ready:
                return None
            for frame in self.decoder.feed(os.read(self.master, 512)):
                if frame.seq == seq:
                    return frame

    def request(self, cls: type[p.Frame], *args: object) -> p.Frame | None:
        self.seq = (self.seq + 1) & 0xFF
        return self.exchange(cls(ADDR, self.seq, *args).to_bytes(), self.seq)


def drive(
    up: FirmwareUpdate,
    link: Link,
    *,
    fault: Callable[[int, p.Frame], str] = lambda i, f: "",
) -> list[p.Frame]:
    """Runs `up` to its end on a fake clock; fault(i, frame) may say "drop" (the cable is out: the
    frame never arrives, the exchange times out) or "corrupt" (one byte flipped on the wire).
    Returns every frame sent, retries included."""
    now = 0.0
    sent: list[p.Frame] = []
    while not up.finished and len(sent) < 2000:
        frame = up.next_frame(now)
        if frame is None:
            now = max(now + 0.001, up.retry_at() or now)
            continue
        sent.append(frame)
        what = fault(len(sent), frame)
        now += 0.002
        if what == "drop":
            up.on_no_reply(now)
            continue
        wire = bytearray(frame.to_bytes())
        if what == "corrupt":
            wire[len(wire) // 2] ^= 0x5A
        reply = link.exchange(bytes(wire), frame.seq, wait=0.3 if what else 2.0)
        if reply is None:
            up.on_no_reply(now)
        else:
            up.on_reply(reply, now)
    return sent


def test_a_transfer_to_the_real_firmware_survives_corruption_and_a_pulled_cable_then_boots_the_new_slot(
    pty_pair: tuple[int, str], tmp_path: Path
) -> None:
    master, serial = pty_pair
    root = flash_layout(tmp_path / "flash")
    files = new_slot(tmp_path)
    bundle = make_bundle(files)
    board = Board(root, serial)
    assert board.ready == f"ready dispenser addr={ADDR} slot=a"
    link = Link(master)
    hello = link.request(p.Identify)
    assert is_a(hello, p.Hello) and hello.caps & p.CAP_FW_UPDATE and hello.version == (1, 0, 0)

    up = FirmwareUpdate(ADDR, bundle, (1, 1, 0), 0.0, key=KEY)
    n_chunks = -(-len(bundle) // p.MAX_CHUNK)
    corrupt_at = 6  # a chunk damaged on the wire: dropped by the device's CRC check, then retried
    pulled = range(40, 40 + 1 + p.MAX_RETRIES + 2)  # the cable is out for these frames

    def fault(i: int, frame: p.Frame) -> str:
        if i == corrupt_at:
            assert is_a(frame, p.FwChunk)
            return "corrupt"
        return "drop" if i in pulled else ""

    try:
        sent = drive(up, link, fault=fault)
        assert up.state is UpdateState.DONE, up.error
        assert up.resumes == 1 and up.restarts == 0
        chunks = [f for f in sent if is_a(f, p.FwChunk)]
        # The corrupted chunk was sent again; after the pull the transfer went on where it was.
        assert chunks[corrupt_at - 2].offset == chunks[corrupt_at - 1].offset
        begins = [i for i, f in enumerate(sent) if is_a(f, p.FwBegin)]
        assert len({sent[i].seq for i in begins}) == 2  # the first, and one resume (sent until heard)
        resumed_at = sent[begins[-1] + 1]
        assert is_a(resumed_at, p.FwChunk) and resumed_at.offset > 0
        assert len({f.offset for f in chunks}) == n_chunks
        assert len(chunks) <= n_chunks + 1 + len(pulled)
        board.proc.wait(timeout=10)
        out = board.stop()
        assert board.proc.returncode == 75 and "reset" in out, out  # the Unix port's restart
    finally:
        board.stop()
    assert (root / "slot").read_text() == "b 0"  # the new slot, on trial
    assert {f.name: f.read_bytes() for f in (root / "b").iterdir() if f.name != "version"} == files
    assert (root / "b" / "version").read_text() == "1.1.0"

    board = Board(root, serial)  # power comes back: the boot runs the new slot
    try:
        assert board.ready == f"ready dispenser addr={ADDR} slot=b"
        assert "boot: reset_cause=5" in board.boot
        assert "slots: slot b on trial, boot 1" in board.boot
        hello = link.request(p.Poll, 0)
        assert is_a(hello, p.Hello)
        assert (hello.version, hello.reset_cause) == ((1, 1, 0), p.RESET_FW_UPDATE)
        # Healthy: HELLO to IDENTIFY, then three polls answered: the slot is kept, off trial.
        assert is_a(link.request(p.Identify), p.Hello)
        for _ in range(3):
            assert is_a(link.request(p.Poll, 0), p.Ack)
        wait_for(lambda: (root / "slot").read_text() == "b")
    finally:
        out = board.stop()
    assert "device error" not in out, out
    assert "fw: healthy: slot b kept" in out, out


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until `cond()` (a board in another process acts a little after its reply), at most `timeout`."""
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_bundle_with_a_wrong_tag_is_refused_before_activation(pty_pair: tuple[int, str], tmp_path: Path) -> None:
    """A bundle whose SHA-256 is right but whose tag was made under another key (not the
    gateway that provisioned this device): NAK FW_AUTH at FW_END, the slot emptied, nothing
    committed; the running slot keeps running. Without a tag the device refuses at FW_BEGIN."""
    master, serial = pty_pair
    root = flash_layout(tmp_path / "flash")
    before = {f.name: f.read_bytes() for f in (root / "a").iterdir()}
    bundle = make_bundle({"dispenser.py": b"raise ImportError('forged: must never boot')\n"})
    board = Board(root, serial)
    try:
        link = Link(master)
        forged = FirmwareUpdate(ADDR, bundle, (6, 6, 6), 0.0, key=bytes(32))
        sent = drive(forged, link)
        assert forged.state is UpdateState.FAILED
        assert forged.error is not None and "refused the bundle's tag" in forged.error
        assert [f.NAME for f in sent][-2:] == ["FW_CHUNK", "FW_END"]  # refused at the check, not retried
        untagged = FirmwareUpdate(ADDR, bundle, (6, 6, 6), 0.0)
        assert [f.NAME for f in drive(untagged, link)] == ["FW_BEGIN"]
        assert untagged.state is UpdateState.FAILED
        nak = link.request(p.FwCommit)
        assert is_a(nak, p.Nak) and nak.reason == p.NAK_FW_NO_TRANSFER
        assert is_a(link.request(p.Poll, 0), p.Hello)  # still running, still answering
    finally:
        out = board.stop()
    assert "fw: bundle refused: wrong tag" in out, out
    assert (root / "slot").read_text() == "a"
    assert {f.name: f.read_bytes() for f in (root / "a").iterdir()} == before
    assert list((root / "b").iterdir()) == []


def test_a_slot_that_never_proves_healthy_is_rolled_back_after_three_boots(
    pty_pair: tuple[int, str], tmp_path: Path
) -> None:
    """Slot b committed (on trial) but never healthy: here no gateway ever identifies it, as if
    the new firmware could not talk on the bus. Each boot gives up after HEALTH_MS (300 ms here)
    and restarts (exit 75 on the Unix port); the fourth boot goes back to slot a by itself."""
    _, serial = pty_pair
    root = flash_layout(tmp_path / "flash")
    shutil.copytree(root / "a", root / "b")
    (root / "b" / "version").write_text("2.0.0")
    (root / "slot").write_text("b 0")  # as FW_COMMIT leaves it
    for boot in (1, 2, 3):
        board = Board(root, serial, COUNTERFLOOR_HEALTH_MS="300")
        assert board.ready == f"ready dispenser addr={ADDR} slot=b"
        assert f"slots: slot b on trial, boot {boot}" in board.boot
        assert board.proc.wait(timeout=10) == 75  # restarted itself: not healthy in time
        out = board.stop()
        assert "fw: not healthy within 300 ms: restarting" in out, out
        assert (root / "slot").read_text() == f"b {boot}"
    board = Board(root, serial, COUNTERFLOOR_HEALTH_MS="300")
    try:
        assert "slots: slot b not healthy in 3 boots: back to the other" in board.boot
        assert board.ready == f"ready dispenser addr={ADDR} slot=a"
        assert (root / "slot").read_text() == "a"
        assert board.proc.poll() is None  # not on trial: it stays up
    finally:
        board.stop()


def test_a_wrong_sha256_is_refused_and_the_running_slot_kept(pty_pair: tuple[int, str], tmp_path: Path) -> None:
    master, serial = pty_pair
    root = flash_layout(tmp_path / "flash")
    before = {f.name: f.read_bytes() for f in (root / "a").iterdir()}
    bundle = make_bundle({"dispenser.py": b"raise ImportError('must never boot')\n"})
    up = FirmwareUpdate(ADDR, bundle, (9, 9, 9), 0.0, max_restarts=0, key=KEY)
    up.sha256 = hashlib.sha256(bundle + b"tampered").digest()  # as if a byte changed on the way
    board = Board(root, serial)
    try:
        link = Link(master)
        drive(up, link)
        assert up.state is UpdateState.FAILED
        assert up.error == "the device refused the bundle (size or SHA-256) 1 times"
        assert is_a(link.request(p.Poll, 0), p.Hello)  # still running, still answering
        nak = link.request(p.FwCommit)
        assert is_a(nak, p.Nak) and nak.reason == p.NAK_FW_NO_TRANSFER
    finally:
        out = board.stop()
    assert "device error" not in out, out
    assert (root / "slot").read_text() == "a"
    assert {f.name: f.read_bytes() for f in (root / "a").iterdir()} == before
    assert list((root / "b").iterdir()) == []


def test_bundle_from_dir_takes_every_file_of_a_slot(tmp_path: Path) -> None:
    from gateway.firmware_update import bundle_from_dir

    (tmp_path / "protocol.mpy").write_bytes(b"M\x06\x00")
    (tmp_path / "device.mpy").write_bytes(b"M\x06\x01")
    (tmp_path / "sub").mkdir()  # a slot holds files only: a directory is not bundled
    assert read_bundle(bundle_from_dir(tmp_path)) == {"device.mpy": b"M\x06\x01", "protocol.mpy": b"M\x06\x00"}
