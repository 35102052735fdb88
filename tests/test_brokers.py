"""The brokers the MQTT tests and the demo stand on: the embedded amqtt broker
(counterfloor/embedded_broker.py) with paho 2.x over MQTT 3.1.1, and the Mosquitto that
tests/mqtt_support.py starts, stops by PID and restarts on the same port and persistence.

Every wait is on an event or a queue with a deadline, never a sleep."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from counterfloor.embedded_broker import EmbeddedBroker, EmbeddedBrokerError
from tests.mqtt_support import (
    ConnectRefused,
    MosquittoBroker,
    MQTTv5,
    connect,
    plain_mosquitto,
    require_tool,
)


@pytest.fixture
def embedded() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as broker:
        yield broker


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp* spells them) of TCP sockets listening on `port`."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


# --- the embedded broker ---------------------------------------------------------------------------


def test_paho_publishes_and_subscribes_through_the_embedded_broker(embedded: EmbeddedBroker) -> None:
    office = f"t{uuid.uuid4().hex[:8]}"
    gateway_topic, events = f"counterfloor/{office}/gateway", f"counterfloor/{office}/events"
    gateway = connect(embedded.port, name=f"gw-{office}", will=(gateway_topic, b"offline", 1, True))
    # The birth is retained: a subscriber that comes later gets it at once.
    gateway.publish(gateway_topic, b"online", qos=1, retain=True)
    watcher = connect(embedded.port)
    assert [r.value for r in watcher.subscribe(f"counterfloor/{office}/#", qos=1)] == [1]
    birth = watcher.expect(gateway_topic)
    assert (birth.payload, birth.retain) == (b"online", True)
    for n in range(3):
        gateway.publish(events, str(n).encode(), qos=1)
    got = [watcher.expect(events) for _ in range(3)]
    assert [(m.payload, m.qos, m.retain) for m in got] == [(b"0", 1, False), (b"1", 1, False), (b"2", 1, False)]
    # A gateway that vanishes without DISCONNECT: the broker publishes its last will.
    gateway.drop()
    death = watcher.expect(lambda m: m.topic == gateway_topic and m.payload == b"offline")
    assert death.qos == 1
    watcher.close()
    # ...retained, as the will asked: the next subscriber sees the gateway offline.
    late = connect(embedded.port)
    late.subscribe(gateway_topic)
    assert late.expect(gateway_topic).payload == b"offline"
    late.close()


def test_the_embedded_broker_listens_on_loopback_only(embedded: EmbeddedBroker) -> None:
    assert embedded.url == f"mqtt://127.0.0.1:{embedded.port}"
    assert listening_addresses(embedded.port) == {"0100007F"}  # 127.0.0.1, and nothing else


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "", "localhost", "example.org"])
def test_the_embedded_broker_refuses_any_address_but_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host=host)


def test_the_embedded_broker_speaks_mqtt_311_only(embedded: EmbeddedBroker) -> None:
    with pytest.raises(ConnectRefused, match="Unsupported protocol version"):
        connect(embedded.port, protocol=MQTTv5)
    connect(embedded.port).close()


def test_the_embedded_broker_stops_frees_its_port_and_starts_again_on_it() -> None:
    broker = EmbeddedBroker()
    port = broker.start()
    with pytest.raises(EmbeddedBrokerError, match="address already in use"):
        EmbeddedBroker(port=port).start()
    client = connect(port)
    client.publish("counterfloor/t/mode", b"retained", retain=True)
    broker.stop()
    assert client.disconnected.wait(10)
    client.close()
    assert listening_addresses(port) == set()
    assert broker.start() == port  # the same URL for the clients, and an empty broker
    try:
        check = connect(port)
        check.subscribe("counterfloor/#")
        check.publish("counterfloor/t/marker", b"marker")
        assert check.until_marker("counterfloor/t/marker", b"marker") == []
        check.close()
    finally:
        broker.stop()
    broker.stop()  # stopping twice is harmless


# --- Mosquitto started by the tests ----------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with plain_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


def test_mosquitto_runs_on_loopback_and_is_ready_when_it_answers_a_client(mosquitto: MosquittoBroker) -> None:
    assert mosquitto.running and len(mosquitto.start_seconds) == 1
    assert listening_addresses(mosquitto.port) == {"0100007F"}
    connect(mosquitto.port).close()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "crash"])
def test_mosquitto_restarts_on_its_port_and_a_reconnecting_client_carries_on(
    mosquitto: MosquittoBroker, how: signal.Signals
) -> None:
    port, pid = mosquitto.port, mosquitto.pid
    publisher = connect(port)
    publisher.publish("counterfloor/t/snapshot", b"before", retain=True)
    publisher.close()
    subscriber = connect(port, reconnect=True)
    subscriber.subscribe("counterfloor/t/#")
    assert subscriber.expect("counterfloor/t/snapshot").payload == b"before"

    mosquitto.restart(how)
    assert (mosquitto.port, mosquitto.running) == (port, True) and mosquitto.pid != pid
    if how == signal.SIGTERM:
        # A clean stop saved the retained message (a crash keeps only the last autosave's).
        check = connect(port)
        check.subscribe("counterfloor/t/snapshot")
        assert check.expect("counterfloor/t/snapshot").payload == b"before"
        check.close()
    subscriber.wait_connections(2)  # paho reconnected; the helper subscribed again
    # Retained, so it reaches the subscriber whether its new subscription is made before or after.
    publisher = connect(port)
    publisher.publish("counterfloor/t/snapshot", b"after", retain=True)
    assert subscriber.expect(lambda m: m.payload == b"after").topic == "counterfloor/t/snapshot"
    publisher.close()
    subscriber.close()


def test_a_missing_broker_binary_skips_on_a_laptop_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    missing = "counterfloor-no-such-broker"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_tool(missing, "mosquitto")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="fails rather than skips"):
        require_tool(missing, "mosquitto")
