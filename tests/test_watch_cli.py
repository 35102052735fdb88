"""`counterfloor office watch` against a real Mosquitto (tests/mqtt_support.py): a test client
publishes as a gateway would (office.mqtt's builders), the watcher prints what it holds.

Nothing waits by sleeping: `--once` ends when the broker has sent its retained messages (or at
its deadline), a live watcher's lines are read with a deadline, and a publish returns when the
broker has acknowledged it (Mosquitto stores a retained message before its PUBACK)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from counterfloor.embedded_broker import EmbeddedBroker
from office import mqtt
from tests.conftest import EXAMPLES, ROOT, run_cli
from tests.mqtt_support import (
    DEADLINE_S,
    MosquittoBroker,
    SecureMosquitto,
    TestClient,
    connect,
    embedded_broker,
    free_port,
    mosquitto,
    sample_queue,
    secure_mosquitto,
)

__all__ = ["embedded_broker", "mosquitto", "secure_mosquitto"]  # fixtures, imported for pytest

TS = "2027-03-15T09:00:00.000+09:00"


def url(broker: MosquittoBroker) -> str:
    return f"mqtt://{broker.host}:{broker.port}"


def record(office: str, seq: int, kind: str = "ticket_issued", **fields: Any) -> dict[str, Any]:
    return {"v": 1, "seq": seq, "ts": TS, "office": office, "type": kind, **fields}


def publish(client: TestClient, office: str, kind: str, payload: dict[str, Any], key: str | None = None) -> None:
    retain = kind not in (mqtt.EVENTS, mqtt.CMD, mqtt.ACK)
    client.publish(mqtt.topic(office, kind, key), mqtt.encode(payload), retain=retain)


def publish_picture(client: TestClient, office: str, session: int, seq: int, waiting: int = 2) -> None:
    """What a gateway publishes when it connects: birth, snapshot, mode, a device."""
    publish(client, office, mqtt.GATEWAY, mqtt.birth(office, session, seq, TS, "counterfloor 0.1.0"))
    publish(
        client,
        office,
        mqtt.SNAPSHOT,
        mqtt.snapshot_message(office, session, seq, TS, sample_queue(office, seq, waiting)),
    )
    mode = {"mode": "office", "services": ["move"], "next_change": "2027-03-15T17:00:00+09:00", "next_mode": "evening"}
    publish(client, office, mqtt.MODE, mqtt.mode_message(office, session, mode, TS))
    device = {"kind": "dispenser", "state": "online", "firmware": "1.4.0"}
    publish(client, office, mqtt.DEVICES, mqtt.device_message(office, session, "0-1", device, TS), "0-1")


def watch_once(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code, out, err = run_cli(capsys, "office", "watch", "--once", "--json", *argv)
    return code, [json.loads(line) for line in out.splitlines()], err


def offices(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["office"]: line for line in lines if line["kind"] == "office"}


# -- the retained picture ---------------------------------------------------------------------------
def test_a_late_watcher_gets_the_full_retained_picture_at_once(
    mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, central = connect(mosquitto.port), connect(mosquitto.port)
    publish_picture(gateway, "oizumi", session=3, seq=12)
    publish_picture(gateway, "nerima", session=1, seq=40, waiting=5)
    publish(
        central, "oizumi", mqtt.ESTIMATES, mqtt.estimate_message("oizumi", "move", 12, 2, 900, 300, 1500, TS), "move"
    )
    gateway.publish("counterfloor/oizumi/nonsense", b"{}", retain=True)

    code, lines, err = watch_once(capsys, "--broker", url(mosquitto))
    assert (code, err) == (0, "")
    watcher = lines[0]
    assert watcher["kind"] == "watcher" and watcher["connected"] and watcher["state"] == "connected"
    assert watcher["offices"] == ["nerima", "oizumi"] and watcher["ignored"]["unknown_topic"] == 1
    seen = offices(lines)
    assert list(seen) == ["nerima", "oizumi"]
    oizumi = seen["oizumi"]
    assert oizumi["available"] and not oizumi["stale"]
    assert oizumi["gateway"]["session"] == 3 and oizumi["seq"]["last"] == 12
    assert oizumi["snapshot"]["current"] and oizumi["snapshot"]["services"] == {"move": 2, "certificate": 0}
    assert oizumi["snapshot"]["tickets"] == {"called": 1, "waiting": 2}
    assert oizumi["mode"]["mode"] == "office" and oizumi["devices"]["0-1"]["state"] == "online"
    assert oizumi["estimates"]["move"]["mean_s"] == 900 and not oizumi["estimates"]["move"]["stale"]
    assert seen["nerima"]["snapshot"]["services"]["move"] == 5

    # One office only.
    code, lines, _ = watch_once(capsys, "--broker", url(mosquitto), "--office", "nerima")
    assert code == 0 and list(offices(lines)) == ["nerima"] and lines[0]["filter"] == "counterfloor/nerima/#"
    gateway.close()
    central.close()


def test_the_plain_view_draws_the_picture(mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]) -> None:
    gateway = connect(mosquitto.port)
    publish_picture(gateway, "oizumi", session=2, seq=7)
    code, out, _ = run_cli(capsys, "office", "watch", "--once", "--broker", url(mosquitto))
    assert code == 0
    assert "oizumi" in out and "online" in out and "session 2" in out and "queue as of seq 7" in out
    assert "mode office, evening from 17:00" in out and "dispenser" in out
    # Every office: one row each.
    publish_picture(gateway, "nerima", session=1, seq=30, waiting=4)
    publish(gateway, "nerima", mqtt.GATEWAY, mqtt.death("nerima", 1))
    code, out, _ = run_cli(capsys, "office", "watch", "--once", "--broker", url(mosquitto))
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] in (["oizumi"], ["nerima"])}
    assert "online s2" in rows["oizumi"] and "2 (move 2)" in rows["oizumi"] and "1 open / 1" in rows["oizumi"]
    assert "OFFLINE s1" in rows["nerima"] and "[stale]" in rows["nerima"] and "0/1 (0-1)" in rows["nerima"]
    gateway.close()


def test_a_gap_between_the_snapshot_and_the_birth_is_reported(
    mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    # The gateway has stored up to 9, but its retained snapshot is as of 6: 7-9 went out live.
    gateway = connect(mosquitto.port)
    publish_picture(gateway, "oizumi", session=4, seq=6)
    publish(gateway, "oizumi", mqtt.GATEWAY, mqtt.birth("oizumi", 4, 9, TS, "counterfloor 0.1.0"))
    code, lines, _ = watch_once(capsys, "--broker", url(mosquitto))
    oizumi = offices(lines)["oizumi"]
    assert code == 0 and oizumi["stale"] and oizumi["available"]
    assert oizumi["seq"]["missing"] == [[7, 9]] and "missing events 7-9" in oizumi["why_stale"]
    gateway.close()


def test_an_offline_gateway_is_shown_offline_and_stale(
    mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    will = (mqtt.topic("oizumi", mqtt.GATEWAY), mqtt.encode(mqtt.death("oizumi", 5)), 1, True)
    gateway = connect(mosquitto.port, will=will)
    publish_picture(gateway, "oizumi", session=5, seq=3)
    gateway.drop()  # its last will goes out: the retained death
    code, lines, _ = watch_once(capsys, "--broker", url(mosquitto))
    oizumi = offices(lines)["oizumi"]
    assert code == 0 and not oizumi["available"] and oizumi["gateway"]["state"] == "offline"
    assert oizumi["devices"]["0-1"]["state"] == "stale" and oizumi["mode"]["stale"]


def test_once_without_the_picture_says_what_did_not_arrive(
    mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = connect(mosquitto.port)
    publish(gateway, "oizumi", mqtt.GATEWAY, mqtt.birth("oizumi", 1, 0, TS, "counterfloor 0.1.0"))
    # --wait is the deadline for a snapshot that never comes, not a wait for synchronisation.
    code, lines, err = watch_once(capsys, "--broker", url(mosquitto), "--office", "oizumi", "--wait", "0.3")
    assert code == 1 and offices(lines)["oizumi"]["why_stale"] == ["no snapshot received"]
    assert err.count("\n") == 1 and "no retained picture of oizumi (no snapshot) within 0.3 s" in err
    code, lines, err = watch_once(capsys, "--broker", url(mosquitto), "--office", "nerima", "--wait", "0.3")
    assert code == 1 and "nerima (no birth or snapshot)" in err
    gateway.close()


# -- the live view ----------------------------------------------------------------------------------
class Watcher:
    """`counterfloor office watch --json` in a child process, its lines read with a deadline."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "counterfloor.cli", "office", "watch", "--json", *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def until(self, match: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE_S) -> dict[str, Any]:
        """The first line that matches, skipping others; the watcher's stderr if it ended first."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no matching line within {timeout} s") from None
            if line is None:
                assert self.proc.stderr is not None
                raise AssertionError(f"the watcher ended: {self.proc.wait()} {self.proc.stderr.read()}")
            if match(line):
                return line

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = self.proc.wait(DEADLINE_S)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE_S)


@pytest.fixture
def watcher_factory() -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(*argv: str) -> Watcher:
        started.append(Watcher(*argv))
        return started[-1]

    yield start
    for w in started:
        w.kill()


def _office(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda line: line["kind"] == "office" and line["office"] == name


def test_a_live_gap_is_reported_and_a_replay_clears_it(
    mosquitto: MosquittoBroker, watcher_factory: Callable[..., Watcher]
) -> None:
    gateway = connect(mosquitto.port)
    publish_picture(gateway, "oizumi", session=1, seq=5)
    watcher = watcher_factory("--broker", url(mosquitto), "--office", "oizumi")
    # Subscribed (the watcher line says connected only after the SUBACK), with the retained picture in.
    watcher.until(lambda line: line["kind"] == "watcher" and line["connected"])
    watcher.until(lambda line: _office("oizumi")(line) and line["available"] and not line["stale"])

    publish(gateway, "oizumi", mqtt.EVENTS, mqtt.event_message(record("oizumi", 6, ticket="A-004"), 1))
    line = watcher.until(lambda line: _office("oizumi")(line) and line["seq"]["last"] == 6)
    assert line["events"]["last"][-1]["ticket"] == "A-004" and not line["stale"]

    publish(gateway, "oizumi", mqtt.EVENTS, mqtt.event_message(record("oizumi", 8, "called", ticket="A-002"), 1))
    line = watcher.until(lambda line: _office("oizumi")(line) and line["seq"]["high"] == 8)
    assert line["stale"] and line["seq"]["missing"] == [[7, 7]] and "missing events 7" in line["why_stale"]

    # The replay from 7 (the gateway republishes from its journal): 8 comes again, deduplicated.
    for seq in (7, 8):
        publish(gateway, "oizumi", mqtt.EVENTS, mqtt.event_message(record("oizumi", seq, "called"), 1))
    line = watcher.until(lambda line: _office("oizumi")(line) and line["seq"]["last"] == 8)
    assert not line["stale"] and line["seq"]["missing"] == []
    line = watcher.until(lambda line: _office("oizumi")(line) and line["seq"]["duplicates"] == 1)
    assert line["seq"]["last"] == 8 and not line["stale"]
    assert line["events"]["since_snapshot"] == 3

    assert watcher.interrupt() == (0, "")  # Ctrl-C ends it cleanly
    gateway.close()


def test_a_lost_broker_is_shown_and_the_watcher_reconnects(
    mosquitto: MosquittoBroker, watcher_factory: Callable[..., Watcher]
) -> None:
    gateway = connect(mosquitto.port)
    publish_picture(gateway, "oizumi", session=1, seq=5)
    gateway.close()
    watcher = watcher_factory("--broker", url(mosquitto))
    watcher.until(lambda line: _office("oizumi")(line) and line["available"])

    mosquitto.stop()
    lost = watcher.until(lambda line: line["kind"] == "watcher" and not line["connected"])
    assert lost["state"] == "lost" and lost["problem"]
    line = watcher.until(_office("oizumi"))
    assert not line["available"] and line["why_stale"] == ["the watcher is not connected to the broker"]
    retry = watcher.until(lambda line: line["kind"] == "watcher" and line["retry_in_s"] is not None)
    assert 0 < retry["retry_in_s"] <= 30

    mosquitto.start()  # same port; its persistence kept the retained picture
    watcher.until(lambda line: line["kind"] == "watcher" and line["connected"])
    line = watcher.until(lambda line: _office("oizumi")(line) and line["available"])
    assert not line["stale"] and line["seq"]["last"] == 5
    assert watcher.interrupt()[0] == 0


# -- connecting -------------------------------------------------------------------------------------
def test_the_watch_account_of_the_secure_broker_watches_through_a_configs_broker_table(
    secure_mosquitto: SecureMosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = secure_mosquitto.connect("gw-oizumi")
    publish_picture(gateway, "oizumi", session=1, seq=2)
    table = secure_mosquitto.broker_table("watch")
    config = tmp_path / "oizumi.toml"
    config.write_text(
        (EXAMPLES / "oizumi.toml").read_text()
        + "\n[broker]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
    )
    # The config names the broker, its TLS files and the account; its office is the one watched.
    code, lines, err = watch_once(capsys, "--config", str(config))
    assert (code, err) == (0, "")
    assert lines[0]["broker"].startswith("mqtts://") and lines[0]["filter"] == "counterfloor/oizumi/#"
    assert offices(lines)["oizumi"]["available"]

    # A wrong password in --broker-auth (which overrides the config's file) is refused by the broker.
    wrong = tmp_path / "wrong"
    wrong.write_text("watch:not-the-password\n")
    wrong.chmod(0o600)
    code, _, err = watch_once(capsys, "--config", str(config), "--broker-auth", str(wrong))
    assert code == 1 and err.count("\n") == 1 and "refused" in err
    # Live, too: a refused login is not retried (no back-off would cure it).
    code, out, err = run_cli(capsys, "office", "watch", "--json", "--config", str(config), "--broker-auth", str(wrong))
    assert code == 1 and "refused the connection: Not authorized" in err
    assert json.loads(out.splitlines()[-1])["state"] == "lost"
    gateway.close()


def test_the_embedded_broker_gives_a_late_watcher_the_picture_too(
    embedded_broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    # The demo's amqtt broker: the sync subscription marks the end of its retained burst as well.
    gateway = connect(embedded_broker.port)
    publish_picture(gateway, "oizumi", session=1, seq=3)
    code, lines, _ = watch_once(capsys, "--broker", embedded_broker.url)
    assert code == 0 and offices(lines)["oizumi"]["available"] and offices(lines)["oizumi"]["seq"]["last"] == 3
    gateway.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--broker", "http://example.org"], "not a broker URL"),
        (["--broker", "mqtt://127.0.0.1:0"], "the port must be 1-65535"),
        ([], "no broker"),
        (["--broker", "mqtt://127.0.0.1:1883", "--broker-auth", "/nonexistent/secret"], "/nonexistent/secret"),
        (["--broker", "mqtt://127.0.0.1:1883", "--office", "Oizumi!"], "not an office id"),
        (["--broker", "mqtt://127.0.0.1:1883", "--wait", "nan"], "--wait"),
    ],
)
def test_a_bad_url_or_auth_file_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "office", "watch", "--once", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_a_secret_file_others_may_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret"
    secret.write_text("watch:password\n")
    os.chmod(secret, 0o644)
    code, _, err = run_cli(capsys, "office", "watch", "--broker", "mqtt://127.0.0.1:1883", "--broker-auth", str(secret))
    assert code == 2 and "chmod 600" in err


def test_an_unreachable_broker_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "office", "watch", "--once", "--broker", f"mqtt://127.0.0.1:{free_port()}")
    assert code == 1 and out == "" and err.count("\n") == 1 and "cannot reach mqtt://127.0.0.1:" in err
