"""An MQTT broker inside this process, for the demo and for a run without Mosquitto.

It owns an amqtt broker on a loopback address, run on its own asyncio loop in a background
thread, so that synchronous code (paho clients, the demo's simulation) can use it without an
event loop of its own. It must never listen beyond loopback: amqtt's default listener binds
0.0.0.0:1883, and this broker has no accounts or ACL (anyone who can reach it can do anything),
so the address is checked and always passed. amqtt speaks MQTT 3.1.1 only: what the embedded
default must do has to work over 3.1.1 (an MQTT 5 CONNECT is refused). A real floor uses
Mosquitto with the project's config (deploy/mosquitto/, docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
from types import TracebackType
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not start (port taken, bad address) or stop in time."""


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt's configuration: one TCP listener on host:port, anonymous clients, nothing else.

    The plugin set is given in full because amqtt's defaults add a packet logger and $SYS
    publishing every 20 s, which the demo does not want on its bus."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """amqtt on `host` (a loopback address) and `port` (0: a free one, chosen by the kernel).

    `start()` returns once the broker accepts connections, and then `port` is the real one;
    `stop()` closes every client connection and the listener. `start()` again after `stop()`
    listens on the same port, so clients reconnect to the same URL; retained messages live in
    memory only, so a restarted broker begins empty."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"embedded broker host {host!r}: must be a loopback address (e.g. 127.0.0.1)")
        if not 0 <= port <= 65535:
            raise ValueError(f"embedded broker port {port}: must be 0 (any free port) to 65535")
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._ready.is_set()

    def start(self) -> int:
        """Start the broker thread and wait until it listens; return the port."""
        if self._thread is not None:
            raise EmbeddedBrokerError("embedded broker already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="embedded-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise EmbeddedBrokerError(f"embedded broker did not start within {START_TIMEOUT_S:.0f} s")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
            raise EmbeddedBrokerError(f"embedded broker on {self.host}:{self.port}: {self._error}") from self._error
        log.info("embedded MQTT broker listening on %s", self.url)
        return self.port

    def stop(self) -> None:
        """Stop the broker and wait for its thread; a broker never started or already stopped is left."""
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop_requested is not None and not loop.is_closed():
            # The loop may close between the check and the call, when the broker thread ends by itself.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_requested.set)
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            raise EmbeddedBrokerError(f"embedded broker did not stop within {STOP_TIMEOUT_S:.0f} s")
        self._thread = None
        self._loop = None
        self._stop_requested = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:
            if self._ready.is_set():
                log.error("embedded MQTT broker stopped on an error: %s", exc)
            else:  # start() re-raises it in the caller's thread
                self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        broker = Broker(broker_config(self.host, self.port))
        await broker.start()
        try:
            # With port 0 the kernel chose the port: read it back from the listening socket.
            server = broker._servers["default"].instance
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stop_requested.wait()
        finally:
            await broker.shutdown()
