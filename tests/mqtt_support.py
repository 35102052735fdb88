"""MQTT brokers for tests: a real Mosquitto (Debian's binary) run by the test itself, plain or with
the project's deploy/mosquitto config (TLS, accounts, ACL), the embedded amqtt broker, and a paho
test client that waits on events with deadlines, never by sleeping.

Mosquitto runs as a child process of the test on a free loopback port (there is no systemd here),
is ready when a client's CONNECT is answered, and is stopped by its PID; `restart()` keeps its port
and its persistence directory. Without the binary a test skips, saying why, except under CI
(`CI=true`), where it fails: a green CI means the broker tests ran.

The fixtures `mosquitto` (plain, per test), `secure_mosquitto` (deploy config, per module) and
`embedded_broker` are a pytest plugin: `pytest_plugins = ["tests.mqtt_support"]` in
tests/conftest.py makes them everyone's. (Importing fixture names into a test module trips ruff's
F811, and naming this module in a test module's own `pytest_plugins` after importing from it
warns that its asserts cannot be rewritten.) `plain_mosquitto(dir)` and `secure_mosquitto_in(dir,
offices)` are the same brokers as context managers, for a fixture of another scope.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from counterfloor.embedded_broker import EmbeddedBroker
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy" / "mosquitto"
HOST = "127.0.0.1"
DEADLINE_S = 10.0  # every wait here is bounded by this many real seconds
MQTTv311 = mqtt.MQTTv311
MQTTv5 = mqtt.MQTTv5
# Mosquitto's answer, on MQTT 5, to a QoS 1 PUBLISH that the ACL forbids.
NOT_AUTHORIZED = 0x87


def require_tool(name: str, package: str) -> str:
    """The path of `name`, or skip the test saying how to install it (fail under CI)."""
    found = shutil.which(name)
    if found is None:
        # /usr/sbin is not on every user's PATH, and mosquitto lives there.
        found = next((p for d in ("/usr/sbin", "/usr/bin") if os.access(p := f"{d}/{name}", os.X_OK)), None)
    if found is not None:
        return found
    why = f"{name} is not installed (apt-get install {package}; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: under CI a test that needs it fails rather than skips", pytrace=False)
    pytest.skip(why)


def sample_queue(office: str, seq: int, waiting: int) -> dict[str, Any]:
    """A queue as a gateway's snapshot carries it (gateway.control.queue_json's shape): A-001 at
    counter 1, `waiting` move tickets after it."""
    waiting_ids = [f"A-{n:03d}" for n in range(2, 2 + waiting)]
    return {
        "office": office,
        "day": "2027-03-15",
        "last_seq": seq,
        "services": {"move": waiting_ids, "certificate": []},
        "held": [],
        "unprinted": {},
        "counters": {"1": {"status": "open", "serving": "A-001", "services": ["move"]}},
        "tickets": {"A-001": "called", **{tid: "waiting" for tid in waiting_ids}},
    }


def free_port(host: str = HOST) -> int:
    """A port free on `host` now (the kernel's choice); the caller binds it soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BrokerError(RuntimeError):
    """Mosquitto did not start or stop as asked; the message has the end of its log."""


class ConnectRefused(ConnectionError):
    """The broker refused a CONNECT, or closed the connection before answering it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the test client --------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Account:
    """A broker account and what a client needs to log in with it over TLS."""

    username: str
    password: str
    ca: Path
    cert: Path | None  # None: TLS without a client certificate (which the deploy config refuses)
    key: Path | None
    secret_file: Path  # `username:password`, mode 0600: what a config's [broker] password_file names


class TestClient:
    """A connected paho client (threaded loop) whose callbacks feed queues the test waits on.

    publish() returns the broker's PUBACK reason code (on MQTT 3.1.1 always success: Mosquitto
    drops a forbidden publish silently there); subscribe() returns the SUBACK's codes. Messages
    arrive in `messages`; `until_marker()` collects everything that came before a marker."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, client: mqtt.Client, name: str, resubscribe: bool) -> None:
        self.client = client
        self.name = name
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.answered = threading.Event()  # the first CONNACK, or the connection closed before it
        self.connack: ReasonCode | None = None
        self.connections = 0
        self._results: dict[int, Any] = {}
        self._results_changed = threading.Condition()
        self._subscriptions: dict[str, int] = {}
        self._resubscribe = resubscribe
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe

    # paho's loop thread calls these
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Properties | None) -> None:
        self.connack = reason
        self.answered.set()
        if reason.is_failure:
            self.disconnected.set()
            return
        with self._results_changed:
            self.connections += 1
            self._results_changed.notify_all()
        self.disconnected.clear()
        self.connected.set()
        # After a reconnect without a stored session, subscriptions are gone: make them again.
        if self._resubscribe and self.connections > 1 and not flags.session_present:
            for topic_filter, qos in self._subscriptions.items():
                client.subscribe(topic_filter, qos)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: ReasonCode, _p: Properties | None) -> None:
        self.connected.clear()
        self.disconnected.set()
        self.answered.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties) -> None:
        with self._results_changed:
            self._results[mid] = reason
            self._results_changed.notify_all()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, mid: int, reasons: list[ReasonCode], _p: Properties | None
    ) -> None:
        with self._results_changed:
            self._results[mid] = reasons
            self._results_changed.notify_all()

    def _result(self, mid: int, what: str, timeout: float) -> Any:
        with self._results_changed:
            if not self._results_changed.wait_for(lambda: mid in self._results, timeout):
                raise TimeoutError(f"{self.name}: no {what} within {timeout} s")
            return self._results.pop(mid)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False, timeout: float = DEADLINE_S
    ) -> ReasonCode | None:
        """Publish and, for QoS 1/2, wait for the broker's acknowledgement; return its reason code."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"{self.name}: publish to {topic}: {mqtt.error_string(info.rc)}")
        if qos == 0:
            return None
        reason: ReasonCode = self._result(info.mid, f"PUBACK for {topic}", timeout)
        return reason

    def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = DEADLINE_S) -> list[ReasonCode]:
        """Subscribe and wait for the SUBACK; return its reason codes (a granted QoS or a failure)."""
        self._subscriptions[topic_filter] = qos
        rc, mid = self.client.subscribe(topic_filter, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionError(f"{self.name}: subscribe to {topic_filter}: {mqtt.error_string(rc)}")
        reasons: list[ReasonCode] = self._result(mid, f"SUBACK for {topic_filter}", timeout)
        return reasons

    def wait_connections(self, count: int, timeout: float = DEADLINE_S) -> None:
        """Wait until this client has connected `count` times in all (reconnects after a broker
        restart included: paho's first retry comes after its 1 s back-off)."""
        with self._results_changed:
            if not self._results_changed.wait_for(lambda: self.connections >= count, timeout):
                raise TimeoutError(f"{self.name}: {self.connections} connection(s), not {count}, within {timeout} s")

    def next_message(self, timeout: float = DEADLINE_S) -> Received:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no message within {timeout} s") from None

    def expect(self, match: Callable[[Received], bool] | str, timeout: float = DEADLINE_S) -> Received:
        """The first message that matches (a topic, or a predicate), skipping others, within `timeout`."""
        matches = (lambda m: m.topic == match) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        while True:
            message = self.next_message(max(0.0, deadline - time.monotonic()))
            if matches(message):
                return message

    def until_marker(self, topic: str, payload: bytes, timeout: float = DEADLINE_S) -> list[Received]:
        """Every message received before the marker (`topic`, `payload`), which must arrive in time.

        The broker forwards one publisher's messages in order, so anything published before the
        marker that was going to be delivered has been by then: no sleep needed to see a denial."""
        before: list[Received] = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.next_message(max(0.0, deadline - time.monotonic()))
            if message.topic == topic and message.payload == payload:
                return before
            before.append(message)

    def drop(self) -> None:
        """Cut the connection without DISCONNECT, as a crash or a pulled cable would: the broker
        then publishes this client's last will."""
        self.client._reconnect_on_failure = False  # paho has no public setter; the loop must not reconnect
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # an ssl.SSLSocket is one too
            with contextlib.suppress(OSError):  # already closed by the other side
                sock.shutdown(socket.SHUT_RDWR)  # wakes the loop thread's select at once
        self.client.loop_stop()
        self.disconnected.wait(DEADLINE_S)

    def close(self) -> None:
        """DISCONNECT cleanly (no last will) and stop the loop thread."""
        self.client._reconnect_on_failure = False  # as in drop(): stop means stop
        if self.connected.is_set():
            self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int,
    *,
    host: str = HOST,
    name: str | None = None,
    account: Account | None = None,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
    tls: bool | None = None,
    protocol: MQTTProtocolVersion = MQTTv311,
    clean: bool = True,
    will: tuple[str, bytes, int, bool] | None = None,
    reconnect: bool = False,
    timeout: float = DEADLINE_S,
) -> TestClient:
    """A paho 2.x client connected to host:port, its loop running, or ConnectRefused.

    `account` logs in with TLS, its client certificate and its user name and password; `username`
    and `password` override them (a wrong password), `anonymous` sends neither (TLS and the
    certificate stay), `tls=False` drops TLS (to a TLS listener: the broker must refuse). `will`
    is (topic, payload, qos, retain). `reconnect` lets paho reconnect after the broker restarts
    (subscriptions are made again if the session was not kept)."""
    name = name or f"test-{uuid.uuid4().hex[:12]}"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=name,
        protocol=protocol,
        clean_session=None if protocol == MQTTv5 else clean,
        reconnect_on_failure=reconnect,
    )
    tap = TestClient(client, name, resubscribe=reconnect)
    if tls or (tls is None and account is not None):
        if account is None:
            raise ValueError("TLS needs an account (its CA and client certificate)")
        client.tls_set(
            ca_certs=str(account.ca),
            certfile=str(account.cert) if account.cert else None,
            keyfile=str(account.key) if account.key else None,
        )
    user = username if username is not None else account.username if account else None
    secret = password if password is not None else account.password if account else None
    if user is not None and not anonymous:
        client.username_pw_set(user, secret)
    if will is not None:
        client.will_set(will[0], will[1], qos=will[2], retain=will[3])
    try:
        if protocol == MQTTv5:
            client.connect(host, port, keepalive=30, clean_start=clean)
        else:
            client.connect(host, port, keepalive=30)
    except OSError as exc:  # refused TCP, a failed TLS handshake (a client certificate not taken)
        raise ConnectRefused(f"{name}: {exc}") from exc
    client.loop_start()
    tap.answered.wait(timeout)
    if not tap.connected.is_set():
        client._reconnect_on_failure = False
        client.disconnect()
        client.loop_stop()
        if tap.connack is not None and tap.connack.is_failure:
            raise ConnectRefused(f"{name}: CONNACK {tap.connack}")
        if tap.disconnected.is_set():
            raise ConnectRefused(f"{name}: connection closed before CONNACK")
        raise ConnectRefused(f"{name}: no CONNACK within {timeout} s")
    return tap


# --- Mosquitto ----------------------------------------------------------------------------------


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID (Mosquitto saves persistence on it), SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(DEADLINE_S)


class MosquittoBroker:
    """One Mosquitto process with its config file and directory; start/stop/restart by PID.

    `probe` is how readiness is checked: a client that connects (and is closed at once)."""

    def __init__(self, workdir: Path, config: str, port: int, probe: Callable[[int], TestClient]) -> None:
        self.binary = require_tool("mosquitto", "mosquitto")
        self.workdir = workdir
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text(config)
        self.log_path = workdir / "mosquitto.log"
        self.port = port
        self.host = HOST
        self._probe = probe
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []  # how long each start took until a client connected
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BrokerError("mosquitto is not running")
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        if self.running:
            raise BrokerError("mosquitto is already running")
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        # A test that dies without stopping it must not leave a broker behind.
        self._finalizer = weakref.finalize(self, _stop_process, self.proc)
        try:
            self._wait_ready(began + DEADLINE_S)
        except BaseException:
            self.stop()
            raise
        self.start_seconds.append(time.monotonic() - began)

    def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        # First the listening socket (polled: Mosquitto says nothing when it listens)...
        while True:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=DEADLINE_S).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerError(f"mosquitto not listening within {DEADLINE_S} s:\n{self.log()[-3000:]}") from None
                time.sleep(0.005)  # the next connect attempt, bounded by the deadline
        # ...then a whole MQTT CONNECT/CONNACK: the broker is ready when it answers a client.
        try:
            self._probe(self.port).close()
        except ConnectRefused as exc:
            raise BrokerError(f"mosquitto listens but refused the probe client: {exc}\n{self.log()[-3000:]}") from exc

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop by PID: SIGTERM (a clean stop: persistence saved) or SIGKILL (a crash)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(DEADLINE_S)
                raise BrokerError(f"mosquitto did not stop on {sig.name} within {DEADLINE_S} s") from None
        if self._finalizer is not None:
            self._finalizer.detach()

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash, with only its last autosave on disk."""
        self.stop(signal.SIGKILL)

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop (SIGTERM, or SIGKILL for a crash) and start again on the same port and persistence."""
        self.stop(sig)
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its password file and ACL again (what `systemctl reload` does)."""
        os.kill(self.pid, signal.SIGHUP)

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def plain_config(port: int, data_dir: Path, extra: Sequence[str] = ()) -> str:
    """A loopback Mosquitto without accounts: what most integration tests need."""
    lines = [
        f"listener {port} {HOST}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir}/",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        *_as_root(),
        *extra,
    ]
    return "\n".join(lines) + "\n"


def _as_root() -> list[str]:
    # Started as root, Mosquitto drops to user "mosquitto", which cannot write a root-owned temp dir.
    return ["user root"] if os.geteuid() == 0 else []


@contextmanager
def plain_mosquitto(workdir: Path, extra: Sequence[str] = ()) -> Iterator[MosquittoBroker]:
    """Mosquitto without TLS or accounts on a free loopback port, in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    port = free_port()
    broker = MosquittoBroker(workdir, plain_config(port, workdir / "data", extra), port, lambda p: connect(p))
    with broker:
        yield broker


# --- Mosquitto with the project's config --------------------------------------------------------


def render_deploy_config(template: str, overrides: dict[str, str], extra: Sequence[str] = ()) -> str:
    """deploy/mosquitto/mosquitto.conf with the directives named in `overrides` given new values.

    Every overridden directive must be in the file exactly once: a config that lost one (its
    password file, its TLS key) fails here rather than run the tests less securely than deployed."""
    seen: dict[str, int] = dict.fromkeys(overrides, 0)
    out: list[str] = []
    for line in template.splitlines():
        directive = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
        if directive in overrides:
            seen[directive] += 1
            line = f"{directive} {overrides[directive]}"
        out.append(line)
    wrong = {d: n for d, n in seen.items() if n != 1}
    if wrong:
        raise ValueError(f"deploy/mosquitto/mosquitto.conf: directives not there exactly once: {wrong}")
    return "\n".join([*out, *extra]) + "\n"


@dataclass
class SecureMosquitto:
    """Mosquitto run with deploy/mosquitto's config, certificates, accounts and ACL."""

    broker: MosquittoBroker
    offices: tuple[str, ...]
    accounts: dict[str, Account] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def url(self) -> str:
        return f"mqtts://{HOST}:{self.broker.port}"

    def account(self, name: str) -> Account:
        return self.accounts[name]

    def gateway(self, office: str) -> Account:
        return self.accounts[f"gw-{office}"]

    def connect(self, account: str, **kwargs: Any) -> TestClient:
        """A client logged in as `account` (central, watch, gw-<office>); kwargs as connect()'s."""
        return connect(self.broker.port, account=self.accounts[account], **kwargs)

    def broker_table(self, account: str) -> dict[str, str]:
        """A config's [broker] table for this broker and account (docs/config.md)."""
        a = self.accounts[account]
        return {
            "url": self.url,
            "ca": str(a.ca),
            "cert": str(a.cert),
            "key": str(a.key),
            "username": a.username,
            "password_file": str(a.secret_file),
        }

    def set_password(self, account: str, password: str) -> Account:
        """Change an account's password in the password file (as an operator rotates one); the
        broker takes it at reload()."""
        self.accounts[account] = _add_account(self.broker.workdir, account, password)
        return self.accounts[account]

    def add_office(self, office: str) -> Account:
        """A new office as an operator adds one: its gateway's certificate, password and ACL
        block (make-acl.sh with every office); the broker takes them at reload()."""
        workdir = self.broker.workdir
        name = f"gw-{office}"
        _run_script("make-test-ca.sh", str(workdir / "certs"), "localhost", name)
        self.offices = (*self.offices, office)
        _run_script("make-acl.sh", str(workdir / "acl"), *self.offices)
        self.accounts[name] = _add_account(workdir, name, secrets.token_urlsafe(18))
        return self.accounts[name]

    def reload(self) -> None:
        self.broker.reload()


def _run_script(script: str, *args: str) -> None:
    require_tool("openssl", "openssl")
    result = subprocess.run(["bash", str(DEPLOY / script), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"deploy/mosquitto/{script} {' '.join(args)}: exit {result.returncode}\n{result.stderr}")


def _add_account(workdir: Path, name: str, password: str) -> Account:
    """Set `name`'s password in workdir/passwd (mosquitto_passwd) and its secret file."""
    passwd = require_tool("mosquitto_passwd", "mosquitto")
    password_file = workdir / "passwd"
    create = [] if password_file.exists() else ["-c"]
    subprocess.run([passwd, *create, "-b", str(password_file), name, password], check=True)
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    secret = secrets_dir / name
    secret.write_text(f"{name}:{password}\n")
    secret.chmod(0o600)
    certs = workdir / "certs"
    return Account(name, password, certs / "ca.crt", certs / f"{name}.crt", certs / f"{name}.key", secret)


def make_accounts(workdir: Path, offices: Iterable[str]) -> dict[str, Account]:
    """Certificates (make-test-ca.sh), a password file (mosquitto_passwd) and an ACL (make-acl.sh)
    in `workdir` for central, watch and one gateway per office."""
    offices = tuple(offices)
    names = ["central", "watch", *(f"gw-{office}" for office in offices)]
    _run_script("make-test-ca.sh", str(workdir / "certs"), "localhost", *names)
    _run_script("make-acl.sh", str(workdir / "acl"), *offices)
    return {name: _add_account(workdir, name, secrets.token_urlsafe(18)) for name in names}


@contextmanager
def secure_mosquitto_in(
    workdir: Path, offices: Sequence[str] = ("oizumi", "nerima"), extra: Sequence[str] = ()
) -> Iterator[SecureMosquitto]:
    """deploy/mosquitto/mosquitto.conf on a free loopback port, its files made in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    accounts = make_accounts(workdir, offices)
    (workdir / "data").mkdir(exist_ok=True)
    port = free_port()
    certs = workdir / "certs"
    config = render_deploy_config(
        (DEPLOY / "mosquitto.conf").read_text(),
        {
            "pid_file": str(workdir / "mosquitto.pid"),
            "persistence_location": f"{workdir / 'data'}/",
            "log_dest": "stderr",
            "password_file": str(workdir / "passwd"),
            "acl_file": str(workdir / "acl"),
            "listener": f"{port} {HOST}",
            "cafile": str(certs / "ca.crt"),
            "certfile": str(certs / "server.crt"),
            "keyfile": str(certs / "server.key"),
        },
        [*_as_root(), *extra],
    )
    central = accounts["central"]
    broker = MosquittoBroker(workdir, config, port, lambda p: connect(p, account=central))
    with broker:
        yield SecureMosquitto(broker, tuple(offices), accounts)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A plain Mosquitto (no TLS, anonymous allowed) on a free loopback port, for one test."""
    with plain_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="module")
def secure_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    """Mosquitto with deploy/mosquitto's config (TLS, accounts central/watch/gw-oizumi/gw-nerima,
    the ACL), shared by a test module: tests use their own client ids and payloads."""
    with secure_mosquitto_in(tmp_path_factory.mktemp("secure-mosquitto")) as broker:
        yield broker


@pytest.fixture
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """The demo's in-process amqtt broker on 127.0.0.1 and a free port (MQTT 3.1.1 only)."""
    with EmbeddedBroker() as broker:
        yield broker
