"""The real broker, securely: Mosquitto run with deploy/mosquitto's config, certificates, accounts
and ACL (tests/mqtt_support.py renders it on a free loopback port).

Denials are seen two ways, never by sleeping: an MQTT 5 client gets PUBACK "not authorized" for a
QoS 1 publish the ACL forbids (on 3.1.1 Mosquitto acknowledges it and drops it silently), and a
subscriber that receives a marker published after the forbidden message has, by then, received
everything the broker was going to forward before it (the broker forwards in order, and answers a
QoS 1 publish only after queueing it to subscribers)."""

from __future__ import annotations

import dataclasses
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from office.config import OfficeConfig
from tests.mqtt_support import (
    DEPLOY,
    NOT_AUTHORIZED,
    ConnectRefused,
    MQTTv5,
    MQTTv311,
    Received,
    SecureMosquitto,
    TestClient,
    connect,
    require_tool,
    secure_mosquitto_in,
)

OFFICE, OTHER = "oizumi", "nerima"  # the fixture's two offices
TOKEN_HASH = "ab" * 32


def own_topics(office: str) -> list[str]:
    """Every topic a gateway publishes (docs/mqtt.md)."""
    base = f"counterfloor/{office}"
    return [f"{base}/{kind}" for kind in ("gateway", "events", "snapshot", "mode", "devices/0-1", "ack", "restore")]


def central_topics(office: str) -> list[str]:
    """Every topic only central publishes."""
    base = f"counterfloor/{office}"
    return [f"{base}/{kind}" for kind in ("cmd", "estimates/move", f"tickets/{TOKEN_HASH}", "restored/r1")]


def unique(label: str) -> bytes:
    return f"{label}-{uuid.uuid4().hex}".encode()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    """One broker for the module, offices oizumi and nerima: tests use their own client ids and
    unique payloads, so what earlier tests left (retained messages) does not confuse them."""
    with secure_mosquitto_in(tmp_path_factory.mktemp("broker-acl"), offices=(OFFICE, OTHER)) as broker:
        yield broker


@pytest.fixture
def watcher(broker: SecureMosquitto) -> Iterator[TestClient]:
    """The read-only watch account, subscribed to every office (retained messages included)."""
    client = broker.connect("watch")
    assert not client.subscribe("counterfloor/#")[0].is_failure
    yield client
    client.close()


def _closed(*clients: TestClient) -> None:
    for client in clients:
        client.close()


# --- the deploy files -----------------------------------------------------------------------------


def test_the_shipped_acl_is_what_make_acl_writes_for_the_example_offices(
    tmp_path: Path, nerima: OfficeConfig, oizumi: OfficeConfig
) -> None:
    out = tmp_path / "acl"
    subprocess.run(["bash", str(DEPLOY / "make-acl.sh"), str(out), nerima.id, oizumi.id], check=True)
    assert out.read_text() == (DEPLOY / "acl").read_text()
    # No rule before the first `user` line: it would be an anonymous client's.
    rules = [line for line in out.read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "user central"


@pytest.mark.parametrize("ids", [["-bad"], ["Upper"], ["a/b"], ["a+"], ["x" * 33], ["ok", "ok"], [""]])
def test_make_acl_refuses_a_bad_or_repeated_office_id_and_leaves_the_acl_alone(tmp_path: Path, ids: list[str]) -> None:
    out = tmp_path / "acl"
    out.write_text("the old acl\n")
    result = subprocess.run(["bash", str(DEPLOY / "make-acl.sh"), str(out), *ids], capture_output=True, text=True)
    assert result.returncode == 2 and "office id" in result.stderr
    assert out.read_text() == "the old acl\n"
    assert list(tmp_path.iterdir()) == [out]  # no temp file left


def test_make_test_ca_signs_a_server_for_the_host_and_loopback_and_a_client_per_account(tmp_path: Path) -> None:
    openssl = require_tool("openssl", "openssl")
    script = str(DEPLOY / "make-test-ca.sh")
    subprocess.run(["bash", script, str(tmp_path), "broker.example.org", "central", "gw-oizumi"], check=True)
    ca_before = (tmp_path / "ca.crt").read_bytes()
    # Run again to add an account: the CA is kept, so the first certificates stay valid.
    subprocess.run(["bash", script, str(tmp_path), "broker.example.org", "watch"], check=True)
    assert (tmp_path / "ca.crt").read_bytes() == ca_before

    def x509(name: str, *args: str) -> str:
        return subprocess.run(
            [openssl, "x509", "-in", str(tmp_path / f"{name}.crt"), "-noout", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    san = x509("server", "-ext", "subjectAltName")
    for name in ("DNS:broker.example.org", "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"):
        assert name in san
    assert "TLS Web Server Authentication" in x509("server", "-ext", "extendedKeyUsage")
    for account in ("central", "gw-oizumi", "watch"):
        assert f"CN = {account}" in x509(account, "-subject")
        assert "TLS Web Client Authentication" in x509(account, "-ext", "extendedKeyUsage")
    certs = [str(tmp_path / f"{n}.crt") for n in ("server", "central", "gw-oizumi", "watch")]
    subprocess.run([openssl, "verify", "-CAfile", str(tmp_path / "ca.crt"), *certs], check=True, capture_output=True)
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0  # keys are their owner's only
    assert (tmp_path / "central.key").stat().st_mode & 0o077 == 0


# --- who may connect ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [MQTTv311, MQTTv5], ids=["mqtt311", "mqtt5"])
def test_an_anonymous_client_is_refused(broker: SecureMosquitto, protocol: MQTTProtocolVersion) -> None:
    # TLS with a good client certificate, but no user name: still nothing.
    with pytest.raises(ConnectRefused, match="Not authorized"):
        connect(broker.port, account=broker.account("watch"), anonymous=True, protocol=protocol)


@pytest.mark.parametrize("protocol", [MQTTv311, MQTTv5], ids=["mqtt311", "mqtt5"])
def test_a_wrong_password_or_an_unknown_user_is_refused(
    broker: SecureMosquitto,
    protocol: MQTTProtocolVersion,
) -> None:
    gateway = broker.gateway(OFFICE)
    with pytest.raises(ConnectRefused, match="Not authorized"):
        connect(broker.port, account=gateway, password=gateway.password + "x", protocol=protocol)
    with pytest.raises(ConnectRefused, match="Not authorized"):
        connect(broker.port, account=gateway, username="gw-nowhere", protocol=protocol)
    # Another account's password is a wrong password too.
    with pytest.raises(ConnectRefused, match="Not authorized"):
        connect(broker.port, account=gateway, password=broker.account("central").password)


def test_the_tls_listener_refuses_plain_tcp(broker: SecureMosquitto) -> None:
    # The right user name and password, sent in clear: the broker never answers the CONNECT.
    with pytest.raises(ConnectRefused, match="closed before CONNACK"):
        connect(broker.port, account=broker.account("central"), tls=False)


def test_a_client_certificate_from_the_ca_is_required(broker: SecureMosquitto, tmp_path: Path) -> None:
    central = broker.account("central")
    with pytest.raises(ConnectRefused):
        connect(broker.port, account=dataclasses.replace(central, cert=None, key=None))
    # A certificate of the same name from another CA is no better than none.
    script = str(DEPLOY / "make-test-ca.sh")
    subprocess.run(["bash", script, str(tmp_path), "localhost", "central"], check=True, capture_output=True)
    forged = dataclasses.replace(central, cert=tmp_path / "central.crt", key=tmp_path / "central.key")
    with pytest.raises(ConnectRefused):
        connect(broker.port, account=forged)
    connect(broker.port, account=central).close()  # and the real one still works


# --- what each account may publish and read ------------------------------------------------------


def test_a_gateway_publishes_every_topic_of_its_own_office(
    broker: SecureMosquitto,
    watcher: TestClient,
) -> None:
    gateway = broker.connect(f"gw-{OFFICE}", protocol=MQTTv5)
    try:
        for topic in own_topics(OFFICE):
            payload = unique("own")
            reason = gateway.publish(topic, payload, retain=not topic.endswith(("/events", "/ack", "/restore")))
            assert reason is not None and not reason.is_failure, f"{topic}: {reason}"
            got = watcher.expect(lambda m, p=payload: m.payload == p)  # type: ignore[misc]
            assert got.topic == topic
    finally:
        gateway.close()


def test_a_gateway_cannot_publish_for_another_office_nor_what_central_owns(
    broker: SecureMosquitto,
    watcher: TestClient,
) -> None:
    forbidden = [
        *own_topics(OTHER),
        *central_topics(OFFICE),
        *central_topics(OTHER),
        f"counterfloor/{OFFICE}",
        f"counterfloor/{OFFICE}/events/extra",
        f"counterfloor/{OFFICE}/devices/0-1/extra",
        "counterfloor/other-office/events",
        "elsewhere/topic",
    ]
    v5 = broker.connect(f"gw-{OFFICE}", protocol=MQTTv5)
    v311 = broker.connect(f"gw-{OFFICE}")
    try:
        for topic in forbidden:
            reason = v5.publish(topic, unique("denied-v5"))
            assert reason is not None and reason.value == NOT_AUTHORIZED, f"{topic}: {reason}"
        # On 3.1.1 a denial looks like success to the publisher; the watcher shows nothing got through.
        sent = {unique("denied-v311"): topic for topic in forbidden}
        for payload, topic in sent.items():
            assert not v311.publish(topic, payload, retain=True).is_failure  # type: ignore[union-attr]
        marker = unique("marker")
        v311.publish(f"counterfloor/{OFFICE}/events", marker)
        leaked = [m for m in watcher.until_marker(f"counterfloor/{OFFICE}/events", marker) if b"denied" in m.payload]
        assert leaked == []
    finally:
        _closed(v5, v311)


def test_the_watcher_reads_every_office_and_publishes_nothing(
    broker: SecureMosquitto,
    watcher: TestClient,
) -> None:
    watch = broker.connect("watch", protocol=MQTTv5)
    gateway = broker.connect(f"gw-{OTHER}")
    try:
        for topic in [*own_topics(OFFICE), *central_topics(OTHER), "elsewhere/topic"]:
            reason = watch.publish(topic, unique("denied-watch"))
            assert reason is not None and reason.value == NOT_AUTHORIZED, f"{topic}: {reason}"
        # Each denial was answered (PUBACK) before the marker was published: it would have been
        # forwarded ahead of the marker.
        marker = unique("marker")
        gateway.publish(f"counterfloor/{OTHER}/events", marker)
        before = watcher.until_marker(f"counterfloor/{OTHER}/events", marker)
        assert [m for m in before if b"denied-watch" in m.payload] == []
    finally:
        _closed(watch, gateway)


def test_central_publishes_commands_and_estimates_but_not_a_gateways_topics(
    broker: SecureMosquitto,
    watcher: TestClient,
) -> None:
    central = broker.connect("central", protocol=MQTTv5)
    gateway = broker.connect(f"gw-{OFFICE}")
    try:
        assert not gateway.subscribe(f"counterfloor/{OFFICE}/cmd")[0].is_failure
        command = unique("cmd")
        assert not central.publish(f"counterfloor/{OFFICE}/cmd", command).is_failure  # type: ignore[union-attr]
        assert gateway.expect(f"counterfloor/{OFFICE}/cmd").payload == command
        for topic in central_topics(OFFICE)[1:]:
            payload = unique("central")
            assert not central.publish(topic, payload, retain=True).is_failure  # type: ignore[union-attr]
            assert watcher.expect(lambda m, p=payload: m.payload == p).topic == topic  # type: ignore[misc]
        # Central cannot forge what a gateway says: its births, events, states.
        for topic in own_topics(OFFICE):
            reason = central.publish(topic, unique("forged"))
            assert reason is not None and reason.value == NOT_AUTHORIZED, f"{topic}: {reason}"
    finally:
        _closed(central, gateway)


def test_a_gateway_subscribed_to_another_office_receives_nothing_of_it(
    broker: SecureMosquitto,
) -> None:
    central = broker.connect("central")
    # Retained messages of the other office, there before the gateway subscribes.
    central.publish(f"counterfloor/{OTHER}/estimates/move", unique("other-retained"), retain=True)
    gateway = broker.connect(f"gw-{OFFICE}", protocol=MQTTv5)
    try:
        # Mosquitto grants a forbidden subscription, and then delivers nothing through it.
        for topic_filter in (f"counterfloor/{OTHER}/cmd", f"counterfloor/{OFFICE}/cmd", "counterfloor/#"):
            assert not gateway.subscribe(topic_filter)[0].is_failure
        central.publish(f"counterfloor/{OTHER}/cmd", unique("other-cmd"))
        central.publish(f"counterfloor/{OFFICE}/estimates/move", unique("own-estimate"), retain=True)
        marker = unique("marker")
        central.publish(f"counterfloor/{OFFICE}/cmd", marker)
        got = gateway.until_marker(f"counterfloor/{OFFICE}/cmd", marker)
        # Its own birth topic (a retained one from an earlier test may come) and central's
        # estimates for its own office it may read; nothing of the other office.
        own = (f"counterfloor/{OFFICE}/gateway", f"counterfloor/{OFFICE}/estimates/move")
        answers = f"counterfloor/{OFFICE}/restored/"  # central's answers to its own restore requests
        assert [m for m in got if m.topic not in own and not m.topic.startswith(answers)] == []
        assert any(m.topic == own[1] for m in got)
    finally:
        _closed(central, gateway)


def test_a_gateway_reads_its_own_birth_topic_to_repair_a_late_death(broker: SecureMosquitto) -> None:
    """gateway.mqtt_link republishes its birth when an old session's will lands over it: it must
    be able to read its own …/gateway topic (and nothing else of its office but cmd)."""
    gateway = broker.connect(f"gw-{OFFICE}")
    try:
        birth = unique("online")
        assert not gateway.publish(f"counterfloor/{OFFICE}/gateway", birth, retain=True).is_failure  # type: ignore[union-attr]
        assert not gateway.subscribe(f"counterfloor/{OFFICE}/gateway")[0].is_failure
        assert gateway.expect(f"counterfloor/{OFFICE}/gateway").payload == birth
    finally:
        _closed(gateway)


def test_a_gateways_last_will_goes_out_only_on_its_own_office(
    broker: SecureMosquitto,
    watcher: TestClient,
) -> None:
    def crash_with_will(topic: str) -> tuple[bytes, list[Received]]:
        """A gateway connection with a last will on `topic`, cut without DISCONNECT; then a new
        connection with the same client id, after whose CONNACK the broker has dealt with the
        will (sent it, or refused to), whichever of the two it saw first. Returns the will's
        payload and what the watcher got before a marker that the new connection publishes."""
        death, name = unique("offline"), f"gw-{OFFICE}-{uuid.uuid4().hex[:8]}"
        broker.connect(f"gw-{OFFICE}", name=name, will=(topic, death, 1, True)).drop()
        again = broker.connect(f"gw-{OFFICE}", name=name)
        marker = unique("marker")
        again.publish(f"counterfloor/{OFFICE}/events", marker)
        before = watcher.until_marker(f"counterfloor/{OFFICE}/events", marker)
        again.close()
        return death, before

    own = f"counterfloor/{OFFICE}/gateway"
    death, before = crash_with_will(own)
    assert [m.topic for m in before if m.payload == death] == [own]
    # A will on another office's topic is taken at CONNECT, but never published.
    death, before = crash_with_will(f"counterfloor/{OTHER}/gateway")
    assert [m for m in before if m.payload == death] == []


def test_adding_an_office_and_rotating_a_password_take_effect_at_reload(
    broker: SecureMosquitto,
    watcher: TestClient,
) -> None:
    old = broker.gateway(OTHER)
    connected_before = broker.connect(f"gw-{OTHER}")
    central = broker.connect("central")
    new_office = broker.add_office("hikarigaoka")
    new = broker.set_password(f"gw-{OTHER}", "rotated-" + uuid.uuid4().hex)
    with pytest.raises(ConnectRefused):  # not before the broker reloads
        connect(broker.port, account=new_office)
    broker.reload()
    try:
        # Mosquitto checks connected clients against the reloaded password file: the connection
        # made with the old password is closed (which also shows that the reload has happened).
        assert connected_before.disconnected.wait(10)
        with pytest.raises(ConnectRefused, match="Not authorized"):
            connect(broker.port, account=old)
        connect(broker.port, account=new).close()
        assert central.connected.is_set()  # the others stay connected
        added = connect(broker.port, account=new_office, protocol=MQTTv5)
        payload = unique("new-office")
        assert not added.publish("counterfloor/hikarigaoka/events", payload).is_failure  # type: ignore[union-attr]
        assert watcher.expect(lambda m: m.payload == payload).topic == "counterfloor/hikarigaoka/events"
        assert added.publish(f"counterfloor/{OFFICE}/events", b"x").value == NOT_AUTHORIZED  # type: ignore[union-attr]
        added.close()
    finally:
        _closed(connected_before, central)
