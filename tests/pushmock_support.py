"""Push services for the server half of the Web Push tests (tests/test_alert_webpush.py), all on
127.0.0.1: a real mock push service, and a stub that answers what a test tells it to.

`push_mock(dir)` runs the npm package web-push-testing (pinned in tests/pushmock/package.json and
its lock; `npm ci --prefix tests/pushmock` installs it) as a child of the test, through
tests/pushmock/serve.js: the package's own server and model, in the foreground (the package's
`start` command detaches it and keeps its PID in a .node-persist directory in the working
directory), listening on 127.0.0.1 only, on a port the kernel picks and serve.js prints. The mock
makes subscriptions (its own P-256 key and auth secret, bound to an applicationServerKey), checks
each push's VAPID JWT against that key (ES256, with jsonwebtoken) and the `k=` key in the
Authorization header, decrypts the aes128gcm body and keeps the plaintext for /get-notifications;
an expired subscription answers 410. Every other refusal is a 400 (a real push service says 401 or
403 for a bad JWT). It is ready when it answers POST /status (polled with a deadline), and is
stopped by its PID; it exits by itself if the test process goes away (its stdin closes).

Without node, or without the package installed, a test skips saying why, except under CI
(`CI=true`), where it fails (the project's rule: tests/conftest.py, tests/mqtt_support.py).

`answering_service()` is a push service in a thread of the test (http.server) that answers each
path's status and headers as the test set them, and records the requests: for the statuses the
mock never gives (429, 5xx with Retry-After, 401, 403, 413).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.mqtt_support import _stop_process, require_tool

PUSHMOCK = ROOT / "tests" / "pushmock"
SERVE_JS = PUSHMOCK / "serve.js"
PACKAGE = PUSHMOCK / "node_modules" / "web-push-testing"
HOST = "127.0.0.1"
DEADLINE_S = 10.0  # every wait here is bounded by this many real seconds
# No proxy, whatever the environment says: every request here is to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PushMockError(RuntimeError):
    """The mock push service did not start, or answered its API unexpectedly; the message has the
    end of its log."""


def require_push_mock() -> str:
    """node's path, with web-push-testing installed at the locked version; else skip saying how
    to install them (fail under CI)."""
    node = require_tool("node", "nodejs npm")
    locked = json.loads((PUSHMOCK / "package-lock.json").read_text())["packages"]["node_modules/web-push-testing"]
    try:
        installed = json.loads((PACKAGE / "package.json").read_text())["version"]
    except FileNotFoundError:
        installed = None
    if installed != locked["version"]:
        have = "is not installed" if installed is None else f"is {installed}, not the locked {locked['version']}"
        why = f"the mock push service web-push-testing {have} (npm ci --prefix tests/pushmock; .ci/run runs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: under CI a test that needs it fails rather than skips", pytrace=False)
        pytest.skip(why)
    return node


def post_json(url: str, body: Any = None, timeout: float = DEADLINE_S) -> tuple[int, Any]:
    """POST `body` as JSON (none when None); (status, the answer's JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


@dataclass(frozen=True)
class MockSubscription:
    subscription: dict[str, Any]  # as the browser's PushSubscription.toJSON() gives it
    client_hash: str  # the mock's name for it


@dataclass
class PushMock:
    port: int
    pid: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        """What the mock wrote (it prints why it refused a push)."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log()[-2000:]

    def _call(self, path: str, body: Any = None) -> Any:
        status, answer = post_json(self.base + path, body)
        if status != 200:
            raise PushMockError(f"POST {path}: {status} {answer!r}\n{self.log_tail()}")
        return answer

    def subscribe(self, application_server_key: str) -> MockSubscription:
        """A subscription bound to a VAPID public key, as the page's pushManager.subscribe makes."""
        data = self._call("/subscribe", {"applicationServerKey": application_server_key})["data"]
        client_hash = data.pop("clientHash")
        return MockSubscription(
            {"endpoint": data["endpoint"], "expirationTime": None, "keys": data["keys"]}, client_hash
        )

    def notifications(self, client_hash: str) -> list[str]:
        """The decrypted payloads the subscription received, in order."""
        return list(self._call("/get-notifications", {"clientHash": client_hash})["data"]["messages"])

    def expire(self, client_hash: str) -> None:
        """From now on, a push to the subscription is answered 410 Gone."""
        self._call(f"/expire-subscription/{client_hash}")


def _read_port(proc: subprocess.Popen[bytes], deadline: float, log_path: Path) -> int:
    assert proc.stdout is not None
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise PushMockError(f"the mock push service named no port within {DEADLINE_S} s")
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                proc.wait(DEADLINE_S)
                tail = log_path.read_text(errors="replace")[-2000:]
                raise PushMockError(f"the mock push service exited ({proc.returncode}) before listening:\n{tail}")
            line += chunk
    return int(json.loads(line)["port"])


def _wait_ready(proc: subprocess.Popen[bytes], port: int, deadline: float, log_path: Path) -> None:
    """Until POST /status answers 200: polled, bounded by the deadline."""
    while True:
        try:
            if post_json(f"http://{HOST}:{port}/status", timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise PushMockError(f"the mock push service on port {port} did not answer /status:\n{tail}")
        time.sleep(0.01)  # the next attempt, bounded by the deadline


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, SIGKILL if it lingers; then its pipes closed."""
    _stop_process(proc)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


@contextmanager
def push_mock(workdir: Path) -> Iterator[PushMock]:
    """web-push-testing running on 127.0.0.1 (its log in `workdir`), stopped after."""
    node = require_push_mock()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "pushmock.log"
    deadline = time.monotonic() + DEADLINE_S
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [node, str(SERVE_JS)],
            cwd=PUSHMOCK,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        port = _read_port(proc, deadline, log_path)
        _wait_ready(proc, port, deadline, log_path)
        yield PushMock(port, proc.pid, log_path)
    finally:
        _stop(proc)


# --- a push service that answers as told --------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class AnsweringService:
    """`answer(path, status, headers)` sets what a POST to `path` is answered (201 when unset);
    `received` lists the requests."""

    port: int
    answers: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoint(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def answer(self, path: str, status: int, headers: dict[str, str] | None = None) -> str:
        with self.lock:
            self.answers[path] = (status, dict(headers or {}))
        return self.endpoint(path)


@contextmanager
def answering_service() -> Iterator[AnsweringService]:
    service: AnsweringService | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert service is not None
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with service.lock:
                service.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, headers = service.answers.get(self.path, (201, {}))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    service = AnsweringService(int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="answering-push-service", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLINE_S)
