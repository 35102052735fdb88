"""Device maintenance (gateway.maintenance): RESTART end to end on simulated devices behind a
sim:// link on a fake clock, device keys (FW_KEY) and an authenticated firmware update with its
health check on the real firmware (MicroPython), the key file, and bundle_url."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.bus import BusMaster, SyncDriver
from gateway.device_link import CommandDone, DeviceLink, DeviceSpec, LinkState
from gateway.firmware_update import DeviceKeys, KeyStoreError, bundle_tag, key_frame, make_bundle
from gateway.journal import JournalReader
from gateway.maintenance import DeviceJobs, bundle_path
from hal import firmware_sim
from hal.codec import P
from hal.serial_link import open_link
from office.config import OfficeConfig
from tests.conftest import tokyo
from tests.floor_support import make_floor

MONDAY_10 = tokyo(2027, 3, 15, 10, 0)


@dataclass
class BusView:
    url: str
    master: BusMaster


def test_restart_device_is_answered_when_the_device_acked_and_it_comes_back(
    nerima: OfficeConfig, tmp_path: Path
) -> None:
    floor = make_floor(nerima, MONDAY_10)
    floor.cycles(3)
    jobs = DeviceJobs(lambda: [BusView("sim://bus", floor.bus)], DeviceKeys(tmp_path / "keys.json"))
    display, link = floor.display, floor.bus.by_addr[16]
    boot = display.boot
    assert jobs.restart("mqtt:r1", "0-16", floor.clock.now()) is None  # answered later
    assert jobs.step(floor.clock.now()) == []  # nothing yet: the floor loop never waits for it
    floor.cycles(1)
    for effect in floor.effects:
        if isinstance(effect, CommandDone):
            jobs.link_effect(effect)
    assert jobs.step(floor.clock.now()) == [("mqtt:r1", {"ok": True, "state": "restarting"})]
    assert jobs.step(floor.clock.now()) == []  # told once
    assert display.restarts == 1 and display.reset_cause == P.RESET_SOFT and display.boot == boot + 1
    floor.cycles(3)
    assert link.state is LinkState.ONLINE and link.identity is not None
    assert link.identity.reset_cause == P.RESET_SOFT and link.boot == boot + 1
    assert jobs.restart("mqtt:r1", "0-16", floor.clock.now())["state"] == "restarting"  # a retried id: the answer


def test_restart_device_errors_unknown_device_offline_and_no_ack(nerima: OfficeConfig, tmp_path: Path) -> None:
    floor = make_floor(nerima, MONDAY_10)
    floor.cycles(3)
    jobs = DeviceJobs(lambda: [BusView("sim://bus", floor.bus)], DeviceKeys(tmp_path / "keys.json"))
    now = floor.clock.now()
    for device in ("0-9", "1-16", "x", "0-"):
        answer = jobs.restart(f"u{device}", device, now)
        assert answer is not None and answer["code"] == "unknown_device", answer
    # Offline: the display stops answering.
    floor.port.bus.devices.pop(16)
    floor.cycles(3)
    answer = jobs.restart("off", "0-16", floor.clock.now())
    assert answer is not None and answer["code"] == "offline"
    # Queued, then the device goes silent before its ACK: offline (or no ACK), never a hang.
    floor2 = make_floor(nerima, MONDAY_10)
    floor2.cycles(3)
    jobs2 = DeviceJobs(lambda: [BusView("sim://bus", floor2.bus)], DeviceKeys(tmp_path / "k2.json"))
    assert jobs2.restart("silent", "0-5", floor2.clock.now()) is None
    floor2.port.bus.devices.pop(5)
    floor2.cycles(6)
    (token, answer), *_ = jobs2.step(floor2.clock.now())
    assert token == "silent" and not answer["ok"] and answer["code"] in ("offline", "no_ack")


def test_the_key_file_is_0600_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    keys = DeviceKeys(tmp_path / "gw.keys.json")
    assert keys.get("/dev/ttyUSB0", 5) is None
    key = DeviceKeys.new_key()
    keys.put("/dev/ttyUSB0", 5, key)
    assert os.stat(keys.path).st_mode & 0o777 == 0o600
    assert keys.get("/dev/ttyUSB0", 5) == key and keys.get("/dev/ttyUSB1", 5) is None
    os.chmod(keys.path, 0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        keys.get("/dev/ttyUSB0", 5)


def test_bundle_url_is_a_path_on_the_gateway_or_a_file_url_never_the_network() -> None:
    assert bundle_path("/srv/fw/1.2.0.bundle") == Path("/srv/fw/1.2.0.bundle")
    assert bundle_path("file:///srv/fw/a%20b.bundle") == Path("/srv/fw/a b.bundle")
    for bad in ("https://example.com/fw.bundle", "file://host/fw", "fw.bundle", "ftp://x/y"):
        with pytest.raises(ValueError, match="bundle_url"):
            bundle_path(bad)


def test_key_frame_proves_the_new_key_under_the_old_one() -> None:
    old, new = bytes(32), bytes(range(32))
    first = key_frame(5, 1, new, None)
    assert first.proof == bytes(32)
    again = key_frame(5, 2, bytes([9] * 32), new)
    assert again.proof == bundle_tag(new, bytes([9] * 32))  # HMAC(old key, new key)
    with pytest.raises(ValueError):
        key_frame(5, 3, b"short", old)


# -- on the real firmware --------------------------------------------------------------------------
needs_micropython = pytest.mark.skipif(
    firmware_sim.find_micropython() is None, reason="MicroPython Unix port not installed (uv sync)"
)
APP = ("protocol.py", "device.py", "display.py", "render.py", "config.py", "fw_update.py", "call_display.py")


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, t: float) -> None:
        time.sleep(max(0.0, min(t - time.monotonic(), 0.05)))


@needs_micropython
def test_provision_then_an_authenticated_update_is_installed_and_proved_healthy(tmp_path: Path) -> None:
    """The call display on the real firmware: a key provisioned over the bus (FW_KEY, stored in
    the 0600 key file once ACKed), then a bundle pushed with its tag, committed, restarted into
    the new slot on trial, which the device proves healthy: the job ends `installed`."""
    port = open_link("sim://bus?call_display=16&backend=micropython", timeout=0)
    try:
        link = DeviceLink(DeviceSpec(16, P.KIND_CALL_DISPLAY), lambda: "t")
        bus = BusMaster([link], lambda c: None, min_cycle=0.02)  # type: ignore[arg-type,return-value]
        clock = RealClock()
        driver = SyncDriver(bus, port, clock)
        jobs = DeviceJobs(lambda: [BusView("sim://bus", bus)], DeviceKeys(tmp_path / "keys.json"))
        answers: list[tuple[str, dict[str, object]]] = []

        def run_until(what: str, cond: object, limit: float = 60.0) -> None:
            end = time.monotonic() + limit
            while not cond():  # type: ignore[operator]
                assert time.monotonic() < end, f"{what}: {answers[-3:]}"
                for effect in driver.step():
                    if isinstance(effect, CommandDone) or type(effect).__name__ == "CommandFailed":
                        jobs.link_effect(effect)  # type: ignore[arg-type]
                answers.extend(jobs.step(clock.now()))

        run_until("online", lambda: link.state is LinkState.ONLINE)
        assert jobs.provision("cli:key", "0-16", clock.now()) is None
        run_until("provisioned", lambda: any(t == "cli:key" for t, _ in answers))
        assert answers[-1] == ("cli:key", {"ok": True, "state": "provisioned"})
        key = jobs.keys.get("sim://bus", 16)
        flash = port.firmware.boards[16].flash
        assert key is not None and (flash / "fw_key").read_bytes() == key

        files = {name: (Path("firmware") / name).read_bytes() for name in APP}
        files["version"] = b"1.5.0"
        bundle = make_bundle(files)
        path = tmp_path / "fw.bundle"
        path.write_bytes(bundle)
        sha = hashlib.sha256(bundle).hexdigest()
        assert jobs.firmware("mqtt:fw", "0-16", f"file://{path}", sha, clock.now()) is None
        run_until("installed", lambda: any(t == "mqtt:fw" and "pending" not in a for t, a in answers), 120.0)
        final = [a for t, a in answers if t == "mqtt:fw"]
        assert final[-1] == {"ok": True, "state": "installed", "version": "1.5.0"}, final
        states = [a["state"] for a in final if a.get("pending")]
        assert states[0] == "sending" and "restarting" in states and "verifying" in states
        assert (flash / "slot").read_text() == "b"  # proved healthy: off trial
        assert link.identity is not None and link.identity.version == (1, 5, 0)
        assert link.identity.reset_cause == P.RESET_FW_UPDATE
    finally:
        port.close()


def test_counterfloor_firmware_restart_and_provision_through_the_running_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI on the gateway's machine: `counterfloor firmware restart|provision --device 0-16`
    ask the running gateway over its control socket and wait for the job's result; the key file
    is beside the journal, mode 0600."""
    import io
    import threading

    from counterfloor import cli
    from gateway import service
    from tests.floor_support import floor_without_devices

    lines = 'port = "sim://bus?call_display=16&backend=python"\ncycle_ms = 5\n\n'
    lines += '[[devices]]\nkind = "call_display"\naddr = 16\n'
    config, text = floor_without_devices(tmp_path, lines)
    journal, sock = tmp_path / "j.db", tmp_path / "j.sock"
    gw = service.Gateway(config, text, journal, sock, io.StringIO())
    gw.start()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            gw.step()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        link = gw.buses[0].master.by_addr[16]
        end = time.monotonic() + 10
        while link.state is not LinkState.ONLINE:
            assert time.monotonic() < end
            time.sleep(0.01)
        base = ["--journal", str(journal), "--socket", str(sock), "--device", "0-16"]
        capsys.readouterr()
        assert cli.main(["firmware", "restart", *base]) == 0
        assert capsys.readouterr().out.endswith("0-16: restarting\n")
        assert cli.main(["firmware", "provision", *base]) == 0
        assert capsys.readouterr().out.endswith("0-16: provisioned\n")
        keys = Path(str(journal) + ".keys.json")
        assert os.stat(keys).st_mode & 0o777 == 0o600
        assert DeviceKeys(keys).get(gw.buses[0].url, 16) is not None
        with pytest.raises(SystemExit):
            cli.main(["firmware", "restart", *base[:-1], "0-9"])
        assert "no device '0-9'" in capsys.readouterr().err
    finally:
        stop.set()
        thread.join()
        gw.close()


@needs_micropython
@pytest.mark.slow
def test_firmware_push_on_the_gateway_and_a_remote_update_over_mosquitto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The two ways a board gets new firmware, on the real firmware and a real broker: the floor
    manager's `counterfloor firmware push` through the control socket, then central's
    `firmware_update` command over MQTT, its progress and result as acks, the device's retained
    state carrying the new version, the command audited with its sender. A bundle whose digest
    is not the one named is refused and changes nothing."""
    import io
    import json
    import threading

    from counterfloor import cli
    from gateway import service
    from gateway.clock_sync import Sync
    from office import events as ev
    from office import mqtt as schema
    from tests.floor_support import floor_without_devices
    from tests.mqtt_support import plain_mosquitto
    from tests.test_mqtt_gateway import cmd, send, subscribe

    lines = 'port = "sim://bus?call_display=16&backend=micropython"\ncycle_ms = 20\n\n'
    lines += '[[devices]]\nkind = "call_display"\naddr = 16\n'
    config, text = floor_without_devices(tmp_path, lines)
    journal, sock = tmp_path / "j.db", tmp_path / "j.sock"

    def bundle(version: str) -> tuple[Path, str]:
        files = {name: (Path("firmware") / name).read_bytes() for name in APP}
        files["version"] = version.encode()
        data = make_bundle(files)
        path = tmp_path / f"fw-{version}.bundle"
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()

    with plain_mosquitto(tmp_path / "mosquitto") as broker:
        # Its audit records need a trusted clock (gateway.clock_sync), whatever this machine's is.
        synced = Sync(True, "test")
        gw = service.Gateway(
            config,
            text,
            journal,
            sock,
            io.StringIO(),
            broker_url=f"mqtt://127.0.0.1:{broker.port}",
            clock_sync=lambda: synced,
        )
        view = subscribe(broker.port)
        stop, started = threading.Event(), threading.Event()

        def loop() -> None:  # the journal's connection lives in the thread that opens it
            try:
                gw.start()
                started.set()
                while not stop.is_set():
                    gw.step()
            finally:
                gw.close()

        thread = threading.Thread(target=loop)
        thread.start()
        assert started.wait(30)

        def until(what: str, cond: object, limit: float = 120.0) -> None:
            end = time.monotonic() + limit
            while not cond():  # type: ignore[operator]
                assert time.monotonic() < end, f"not within {limit} s: {what}"
                view.take(wait=0.5)  # the next message, or half a second for the device's own pace

        try:
            link = gw.buses[0].master.by_addr[16]
            until("online and born", lambda: link.state is LinkState.ONLINE and bool(view.births))
            base = ["--journal", str(journal), "--socket", str(sock), "--device", "0-16"]
            assert cli.main(["firmware", "provision", *base]) == 0
            first, _ = bundle("1.5.0")
            capsys.readouterr()
            assert cli.main(["firmware", "push", *base, "--bundle", str(first)]) == 0
            out = capsys.readouterr().out
            assert out.endswith("0-16: installed\n") and "0-16: sending" in out, out
            assert link.identity is not None and link.identity.version == (1, 5, 0)

            second, sha = bundle("1.6.0")
            send(view.client, cmd("fw-bad", "firmware_update", device="0-16", bundle_url=f"file://{second}",
                                  sha256="0" * 64))  # fmt: skip
            until("the bad bundle's answer", lambda: "fw-bad" in view.acks)
            refused = view.acks["fw-bad"][-1]
            assert link.identity is not None and link.identity.version == (1, 5, 0)  # untouched
            assert not refused["ok"] and "SHA-256 is not 0000" in refused["error"], refused
            send(view.client, cmd("fw-2", "firmware_update", device="0-16", bundle_url=f"file://{second}",
                                  sha256=sha, by="facilities:tanaka"))  # fmt: skip
            until("installed", lambda: any(not a.get("pending") for a in view.acks.get("fw-2", [])))
            acks = view.acks["fw-2"]
            assert acks[-1]["ok"] and acks[-1]["state"] == "installed" and acks[-1]["version"] == "1.6.0", acks
            progress = [a["state"] for a in acks if a.get("pending")]
            assert progress[0] == "sending" and "verifying" in progress, progress
            device_topic = schema.topic("oizumi", "devices", "0-16")
            seen = view.latest

            def published() -> dict[str, Any]:
                return seen.get(device_topic) or {}

            until("the result published", lambda: (published().get("maintenance") or {}).get("state") == "installed")
            assert published()["firmware"] == "1.6.0"
            # The device's retained state carried the job along: its progress, then its result.
            shown = [j for r in view.raw if (j := json.loads(r).get("maintenance")) and j.get("id") == "mqtt:fw-2"]
            assert shown[0]["state"] == "sending" and shown[-1]["state"] == "installed", shown
        finally:
            stop.set()
            thread.join()
            view.client.close()
    with JournalReader(journal) as reader:
        audits = [e for e in reader.events() if isinstance(e, ev.RemoteCommand)]
    by_id = {a.id: a for a in audits}
    assert by_id["fw-2"].cmd == "firmware_update" and by_id["fw-2"].ok
    assert by_id["fw-2"].sender == "facilities:tanaka"
    assert not by_id["fw-bad"].ok and "SHA-256 is not" in (by_id["fw-bad"].error or "")
