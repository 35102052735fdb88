"""A central worker's connection to the broker: its subscriptions, and publishing for it.

Owns one paho-mqtt client (gateway.mqtt_client.make_client: MQTT 3.1.1, TLS, the account),
its network thread and its reconnects (paho's own, 1 s doubling to 30 s: central has no last
will or session number to renew per attempt, unlike a gateway). At each connection it
subscribes to every office's `events`, `gateway` (births and deaths), `ack` (answers to its
replay commands), `devices/+` (each device's state, for the facilities dashboard) and, to learn
which ticket estimates are retained on the broker from before,
`tickets/+` — then to a filter that matches nothing: the broker sends a subscription's retained
messages before it handles the next SUBSCRIBE, so that SUBACK marks the end of the retained
burst (as `counterfloor office watch --once` does), and `tickets/+` is unsubscribed (central
does not need its own publications echoed). Snapshots are not subscribed: a birth names the last
seq, and a snapshot (~20 KB, every 5 s per busy office) would cost far more; a device's state is
a few hundred bytes, sent when it changes.

Every worker subscribes to every office and keeps its own (MQTT 3.1.1 cannot filter by a hash;
docs/operations.md, "Central"). paho's thread only hands messages to `on_message` and notes to
`notes`; everything else happens in the worker's thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from gateway.mqtt_client import KEEPALIVE_S, BrokerLogin, make_client
from office import mqtt

CLIENT_QUEUE_MAX = 20_000  # publications paho may hold unsent; beyond, publish says no (retried later)
RECONNECT_FIRST_S, RECONNECT_LIMIT_S = 1, 30  # paho takes whole seconds
SUBSCRIPTIONS = [(f"{mqtt.ROOT}/+/{kind}", 1) for kind in (mqtt.EVENTS, mqtt.GATEWAY, mqtt.ACK, mqtt.RESTORE)]
SUBSCRIPTIONS.append((f"{mqtt.ROOT}/+/{mqtt.DEVICES}/+", 1))  # each device's retained state (the dashboard)
TICKETS_FILTER = f"{mqtt.ROOT}/+/{mqtt.TICKETS}/+"
SYNC_FILTER = f"{mqtt.ROOT}/+/central-sync"  # matches no topic anyone publishes

# The notes paho's thread leaves for the worker (kind, detail).
CONNECTED, SYNCED, LOST, REFUSED = "connected", "synced", "lost", "refused"

_log = logging.getLogger(__name__)


class BrokerLink:
    """See the module docstring. `start()` connects in the background; `publish()` may be called
    from the worker's thread at any time (False while not connected, or paho's queue is full)."""

    def __init__(
        self,
        login: BrokerLogin,
        client_id: str,
        on_message: Callable[[str, bytes, bool], None],
        notes: queue.SimpleQueue[tuple[str, str]],
        wake: Callable[[], None],
    ) -> None:
        self.login = login
        self.client_id = client_id
        self.client = make_client(login, client_id)
        self.client.max_queued_messages_set(CLIENT_QUEUE_MAX)
        self.client.reconnect_delay_set(RECONNECT_FIRST_S, RECONNECT_LIMIT_S)
        self.connected = False
        self._on_message = on_message
        self._notes = notes
        self._wake = wake
        self._sync_mid: int | None = None
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_subscribe = self._subscribed
        self.client.on_message = self._message
        self.client.on_connect_fail = self._unreachable

    def _note(self, kind: str, detail: str = "") -> None:
        self._notes.put((kind, detail))
        self._wake()

    # paho's thread
    def _connected(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._note(REFUSED, f"refused: {reason}")
            return
        self.connected = True
        self._note(CONNECTED)
        client.subscribe([*SUBSCRIPTIONS, (TICKETS_FILTER, 1)])
        _, self._sync_mid = client.subscribe(SYNC_FILTER, 0)

    def _unreachable(self, _c: paho.Client, _u: Any) -> None:
        self._note(REFUSED, f"cannot reach {self.login.address}; paho tries again")

    def _subscribed(self, client: paho.Client, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        if mid == self._sync_mid:
            client.unsubscribe(TICKETS_FILTER)
            self._note(SYNCED)

    def _disconnected(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected = False
        self._note(LOST, str(reason))

    def _message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        self._on_message(message.topic, bytes(message.payload), bool(message.retain))

    # the worker's thread
    def start(self) -> None:
        address = self.login.address
        _log.info("MQTT: connecting to %s as %s", address, self.client_id)
        self.client.connect_async(address.host, address.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()  # connects, and reconnects after a loss, in paho's thread

    def publish(self, topic: str, payload: bytes, retain: bool) -> bool:
        if not self.connected:
            return False
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return info.rc == paho.MQTT_ERR_SUCCESS

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
