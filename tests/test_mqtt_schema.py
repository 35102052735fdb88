"""The MQTT schema (office/mqtt.py, docs/mqtt.md): topics round-trip, payloads are checked,
commands are parsed or refused by name, and the [broker] config keeps secrets out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from office import mqtt
from office.config import ConfigError, parse_config
from tests.conftest import EXAMPLES

OIZUMI_TEXT = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
HASH = "ab" * 32


# -- topics ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "key", "expected"),
    [
        (mqtt.GATEWAY, None, "counterfloor/oizumi/gateway"),
        (mqtt.EVENTS, None, "counterfloor/oizumi/events"),
        (mqtt.DEVICES, "0-16", "counterfloor/oizumi/devices/0-16"),
        (mqtt.ESTIMATES, "move", "counterfloor/oizumi/estimates/move"),
        (mqtt.TICKETS, HASH, f"counterfloor/oizumi/tickets/{HASH}"),
    ],
)
def test_topics_round_trip(kind: str, key: str | None, expected: str) -> None:
    assert mqtt.topic("oizumi", kind, key) == expected
    assert mqtt.parse_topic(expected) == mqtt.Topic("oizumi", kind, key)


@pytest.mark.parametrize(
    ("office", "kind", "key"),
    [
        ("Oizumi", mqtt.EVENTS, None),  # upper case
        ("a/b", mqtt.EVENTS, None),  # a level separator
        ("oizumi", "estimate", None),  # unknown kind
        ("oizumi", mqtt.EVENTS, "x"),  # takes no key
        ("oizumi", mqtt.DEVICES, None),  # needs one
        ("oizumi", mqtt.TICKETS, "not-a-hash"),
        ("oizumi", mqtt.DEVICES, "+"),  # a wildcard is no device
    ],
)
def test_a_topic_that_cannot_be_is_refused(office: str, kind: str, key: str | None) -> None:
    with pytest.raises(ValueError):
        mqtt.topic(office, kind, key)


@pytest.mark.parametrize(
    "name",
    ["other/oizumi/events", "counterfloor/oizumi", "counterfloor/oizumi/events/x", "counterfloor/#/events", ""],
)
def test_foreign_topics_parse_as_none(name: str) -> None:
    assert mqtt.parse_topic(name) is None


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_topic_name_parses_or_is_none_and_round_trips(name: str) -> None:
    t = mqtt.parse_topic(name)
    if t is not None:
        assert mqtt.topic(t.office, t.kind, t.key) == name


# -- payloads ------------------------------------------------------------------------------------
def test_payloads_are_json_objects_of_a_known_schema() -> None:
    birth = mqtt.birth("oizumi", 7, 120, "2027-03-15T09:00:00.000+09:00", "0.1.0")
    assert mqtt.decode(mqtt.encode(birth)) == birth
    with pytest.raises(mqtt.PayloadError, match="not JSON"):
        mqtt.decode(b"{")
    with pytest.raises(mqtt.PayloadError, match="not a JSON object"):
        mqtt.decode(b"[1]")
    with pytest.raises(mqtt.PayloadError, match="newer than this reader"):
        mqtt.decode(b'{"v": 2}')
    with pytest.raises(mqtt.PayloadError, match="byte limit"):
        mqtt.decode(b" " * (mqtt.MAX_PAYLOAD + 1))


def test_a_death_names_its_session_so_a_late_one_is_told_apart() -> None:
    assert mqtt.death("oizumi", 3) == {"v": 1, "office": "oizumi", "state": "offline", "session": 3}


# -- commands --------------------------------------------------------------------------------------
def cmd(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "office": "oizumi", "id": "r1", **fields}).encode()


def test_a_command_is_parsed_with_its_fields() -> None:
    parsed = mqtt.parse_command("oizumi", cmd(cmd="open", counter="1", services=["move"]), sender="central")
    assert parsed == mqtt.RemoteCommand("oizumi", "open", "r1", {"counter": "1", "services": ["move"]}, "central")
    assert mqtt.parse_command("oizumi", cmd(cmd="replay", from_seq=40)).fields == {"from_seq": 40}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (cmd(cmd="open"), "'counter' is missing"),
        (cmd(cmd="open", counter=1), "'counter' must be a string"),
        (cmd(cmd="open", counter=""), "'counter' must be a string"),
        (cmd(cmd="replay", from_seq=True), "'from_seq' must be a whole number"),
        (cmd(cmd="replay", from_seq=1.5), "'from_seq' must be a whole number"),
        (cmd(cmd="explode"), "unknown command 'explode'"),
        (cmd(cmd="open", counter="1", colour="red"), "unknown field"),
        (json.dumps({"v": 1, "office": "nerima", "id": "r1", "cmd": "rebirth"}).encode(), "for office 'nerima'"),
        (json.dumps({"v": 1, "office": "oizumi", "cmd": "rebirth"}).encode(), "'id'"),
        (json.dumps({"v": 1, "office": "oizumi", "id": "a b", "cmd": "rebirth"}).encode(), "'id'"),
    ],
)
def test_a_bad_command_is_refused_by_name(payload: bytes, problem: str) -> None:
    with pytest.raises(mqtt.PayloadError, match=problem.replace("(", r"\(")):
        mqtt.parse_command("oizumi", payload)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400)
@given(
    st.dictionaries(
        st.sampled_from(["v", "id", "office", "cmd", "counter", "from_seq", "services", "ticket", "x"]),
        _JSON | st.sampled_from([*mqtt.COMMANDS, "oizumi", "r-1", 1]),
        max_size=6,
    )
)
def test_any_command_payload_is_a_command_or_payload_error(payload: dict[str, Any]) -> None:
    try:
        parsed = mqtt.parse_command("oizumi", json.dumps(payload).encode())
    except mqtt.PayloadError:
        return
    required, optional = mqtt.COMMANDS[parsed.name]
    assert set(required) <= set(parsed.fields) <= set(required) | set(optional)
    assert all(payload[k] == v for k, v in parsed.fields.items())


# -- the broker's address and the [broker] table ---------------------------------------------------
def test_broker_urls() -> None:
    assert mqtt.parse_broker_url("mqtt://127.0.0.1:1884") == mqtt.BrokerAddress(False, "127.0.0.1", 1884)
    assert mqtt.parse_broker_url("mqtts://broker.example") == mqtt.BrokerAddress(True, "broker.example", 8883)
    assert str(mqtt.parse_broker_url("mqtt://[::1]")) == "mqtt://[::1]:1883"
    for bad in ("http://x", "mqtt://x:0", "mqtt://x:65536", "mqtt://", "mqtt://a b", "mqtt://x:1883\n"):
        with pytest.raises(ValueError):
            mqtt.parse_broker_url(bad)


def with_broker(table: str) -> str:
    return OIZUMI_TEXT + "\n[broker]\n" + table + "\n"


def test_the_broker_table_is_parsed() -> None:
    config = parse_config(
        with_broker('url = "mqtts://mq.example:8883"\nca = "ca.pem"\nusername = "oizumi"\npassword_file = "secret"')
    )
    assert (config.broker.url, config.broker.ca, config.broker.username) == (
        "mqtts://mq.example:8883",
        "ca.pem",
        "oizumi",
    )
    assert parse_config(OIZUMI_TEXT).broker.url is None  # no [broker]: the gateway does not publish


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ('password = "hunter2"', "broker.password", "no secret may live in the config"),
        ('url = "http://mq"', "broker.url", "not a broker URL"),
        ('url = "mqtt://mq:99999"', "broker.url", "port"),
        ('cert = "c.pem"', "broker.key", "needs both cert and key"),
        ('username = "a b"', "broker.username", "letters, digits"),
        ("colour = 1", "broker.colour", "unknown"),
    ],
)
def test_a_bad_broker_table_is_refused_by_name(table: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_broker(table))
    assert key in str(caught.value) and problem in str(caught.value)


def test_a_secret_file_must_be_the_accounts_own(tmp_path: Path) -> None:
    from gateway.mqtt_client import BrokerConfigError, read_secret_file

    secret = tmp_path / "secret"
    secret.write_text("oizumi:s3cret\n", encoding="utf-8")
    secret.chmod(0o600)
    assert read_secret_file(secret) == ("oizumi", "s3cret")
    secret.write_text("justapassword\n", encoding="utf-8")
    assert read_secret_file(secret) == (None, "justapassword")
    secret.chmod(0o644)
    with pytest.raises(BrokerConfigError, match="may be read by others"):
        read_secret_file(secret)


def test_a_command_names_who_it_is_from_for_the_audit() -> None:
    parsed = mqtt.parse_command("oizumi", cmd(cmd="close", counter="3", by="tanaka@facilities"))
    assert parsed.sender == "tanaka@facilities" and parsed.fields == {"counter": "3"}
    assert mqtt.parse_command("oizumi", cmd(cmd="close", counter="3")).sender is None
    with pytest.raises(mqtt.PayloadError, match="'by'"):
        mqtt.parse_command("oizumi", cmd(cmd="close", counter="3", by="a b"))
