"""The demo publishes its office's day to an MQTT broker: the embedded one by default, or --broker."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from counterfloor import demo
from gateway.journal import JournalReader
from gateway.mqtt_link import MARK_KEY
from office import events as ev
from office import mqtt as schema
from tests.conftest import EXAMPLES
from tests.mqtt_support import connect, plain_mosquitto

pytestmark = pytest.mark.slow
DAY = "2027-06-15"  # an ordinary Tuesday


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(list(argv))


def _journal(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The journal's events as published records, and its published-up-to mark."""
    with JournalReader(path) as reader:
        records = [ev.public_record(e, "oizumi") for e in reader.events()]
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (MARK_KEY,)).fetchone()
    finally:
        conn.close()
    return records, None if row is None else str(row[0])


def test_the_demo_publishes_every_event_to_the_embedded_broker(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = _args("--config", str(EXAMPLES / "oizumi.toml"), "--date", DAY, "--speed", "max", "--no-live",
                 "--journal", str(tmp_path), "--http-port", "0", "--out", str(tmp_path / "out"))  # fmt: skip
    assert demo.run(args) == 0
    journal = tmp_path / "oizumi.sqlite"
    out = capsys.readouterr().out
    records, mark = _journal(journal)
    # The mark moves only on the broker's acknowledgements: every event reached it.
    assert mark == str(len(records)) and len(records) > 500
    assert "MQTT: publishing to mqtt://127.0.0.1:" in out and "(embedded broker)" in out
    assert f"MQTT: oizumi: {len(records)} of {len(records)} events published to mqtt://127.0.0.1:" in out
    # The demo's office learned its wait estimate from the simulated days before this one.
    assert "oizumi: Oizumi Ward Office — wait estimate learned from the 20 simulated open days before this one" in out
    assert re.search(r"^ All .* \d+%\s*$", out, flags=re.M), out


def test_a_subscriber_of_the_given_broker_sees_the_whole_day_in_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with plain_mosquitto(tmp_path / "mosquitto") as broker:
        watcher = connect(broker.port)
        watcher.subscribe("counterfloor/oizumi/#")
        journal = tmp_path / "oizumi.sqlite"
        url = f"mqtt://127.0.0.1:{broker.port}"
        args = _args("--config", str(EXAMPLES / "oizumi.toml"), "--date", DAY, "--speed", "max", "--no-live",
                     "--journal", str(tmp_path), "--broker", url, "--http-port", "0",
                     "--out", str(tmp_path / "out"))  # fmt: skip
        assert demo.run(args) == 0
        # The gateway's death is its last word, after the day's events and snapshot: the broker
        # forwards one publisher's messages in order, so everything before it has arrived.
        gateway = schema.topic("oizumi", schema.GATEWAY)
        received = []
        while True:
            message = watcher.next_message()
            if message.topic == gateway and json.loads(message.payload)["state"] == "offline":
                break
            received.append(message)
        watcher.close()
    records, _ = _journal(journal)
    events = [json.loads(m.payload) for m in received if m.topic == schema.topic("oizumi", schema.EVENTS)]
    assert [e["seq"] for e in events] == list(range(1, len(records) + 1))
    assert [{k: v for k, v in e.items() if k != "session"} for e in events] == records
    snapshots = [json.loads(m.payload) for m in received if m.topic == schema.topic("oizumi", schema.SNAPSHOT)]
    assert snapshots[-1]["seq"] == len(records)  # the day's last picture, current to its last event
    modes = [json.loads(m.payload) for m in received if m.topic == schema.topic("oizumi", schema.MODE)]
    assert modes  # the simulated day's mode, worked out on the simulated clock
    assert (
        f"MQTT: oizumi: {len(records)} of {len(records)} events published to {url} (--broker)"
        in capsys.readouterr().out
    )
