"""PostgreSQL for tests and benchmarks: a throwaway cluster of Debian's `postgresql` (initdb,
pg_ctl from /usr/lib/postgresql/<version>/bin) in a temporary folder, listening on a free
loopback port with its unix socket in that folder, stopped (`pg_ctl stop -m fast`) at the end.

initdb refuses to run as root, and the tests run as root here: then the folder is given to
`nobody` and every PostgreSQL program runs as that user (runuser, or setpriv where runuser is
missing); as any other user they run directly. Readiness is `pg_ctl start -w` (it polls the
server) and then a real connection, retried until a deadline: never a bare sleep.

Without PostgreSQL a test skips, saying how to install it, except under CI (`CI=true`), where it
fails, as tests/mqtt_support.py's `require_tool` does for Mosquitto. The session fixture
`postgres` is used by importing `postgres_fixture` into a test module (its name is `postgres`, so
the import does not shadow the test's argument). bench/store_bench.py starts its own cluster
with `PostgresCluster`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest

HOST = "127.0.0.1"
SUPERUSER = "counterfloor"
OWNER = "nobody"  # the cluster's owner when the tests run as root
DEADLINE_S = 30.0  # every wait here is bounded by this many real seconds
_TOOLS = ("initdb", "pg_ctl", "postgres")


class ClusterError(RuntimeError):
    """The cluster did not start or stop as asked; the message has the end of its log."""


def pg_bin_dir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: the newest /usr/lib/postgresql/<v>/bin (Debian
    keeps them off PATH), else one on PATH; None when PostgreSQL is not installed."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in versions:
        if all(os.access(folder / tool, os.X_OK) for tool in _TOOLS):
            return folder
    found = shutil.which("initdb")
    if found is not None:
        folder = Path(found).resolve().parent
        if all(os.access(folder / tool, os.X_OK) for tool in _TOOLS):
            return folder
    return None


def require_postgres() -> Path:
    """The PostgreSQL programs' folder, or skip the test saying how to install them (fail under CI)."""
    found = pg_bin_dir()
    if found is not None:
        return found
    why = "PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: under CI a test that needs it fails rather than skips", pytrace=False)
    pytest.skip(why)


def free_port(host: str = HOST) -> int:
    """A port free on `host` now (the kernel's choice); the server binds it soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser") or ("/usr/sbin/runuser" if os.access("/usr/sbin/runuser", os.X_OK) else None)
    if runuser is not None:
        return [runuser, "-u", OWNER, "--", *argv]
    owner = pwd.getpwnam(OWNER)
    setpriv = shutil.which("setpriv") or "setpriv"
    return [setpriv, f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups", *argv]


def _pg_ctl_stop(pg_ctl: str, data: Path, folder: Path) -> None:
    """Stop the server (fast: disconnect clients, clean shutdown) and remove its folder."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            _as_owner([pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w", "-t", str(int(DEADLINE_S))]),
            capture_output=True,
            timeout=DEADLINE_S + 5,
            check=False,
            cwd=folder,
        )
    shutil.rmtree(folder, ignore_errors=True)


class PostgresCluster:
    """One PostgreSQL cluster of its own: `start()`, `url()`, `new_database()`, `stop()`.

    `settings` go into postgresql.conf (e.g. {"fsync": "off"}); the defaults are PostgreSQL's,
    so commits are fsynced as on a real server."""

    def __init__(self, bin_dir: Path, base: Path | None = None, settings: Mapping[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="counterfloor-pg-", dir=base))
        self.data = self.folder / "data"
        self.sockets = self.folder / "sock"
        self.log_path = self.folder / "postgres.log"
        self.settings = dict(settings or {})
        self.port = 0
        self.start_seconds = 0.0
        self._finalizer: weakref.finalize[..., None] | None = None
        self._initialised = False

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _init(self) -> None:
        self.sockets.mkdir()
        if os.geteuid() == 0:
            # The owner must reach the folder: mkdtemp made it 0700 for root.
            owner = pwd.getpwnam(OWNER)
            for path in (self.folder, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        argv = [self._tool("initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust"]
        argv += ["-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"]
        done = subprocess.run(
            _as_owner(argv), capture_output=True, text=True, timeout=120, check=False, cwd=self.folder
        )
        if done.returncode != 0:
            raise ClusterError(f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        lines = [f"listen_addresses = '{HOST}'", f"unix_socket_directories = '{self.sockets}'"]
        lines += [f"{name} = '{value}'" for name, value in self.settings.items()]
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# counterfloor tests\n" + "\n".join(lines) + "\n")
        self._initialised = True

    def start(self) -> None:
        began = time.monotonic()
        if not self._initialised:
            self._init()
        self._finalizer = weakref.finalize(self, _pg_ctl_stop, self._tool("pg_ctl"), self.data, self.folder)
        # A port free a moment ago may be taken before the server binds it: try another.
        for _attempt in range(3):
            self.port = free_port()
            argv = [self._tool("pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log_path), "-w"]
            argv += ["-t", str(int(DEADLINE_S)), "-o", f"-p {self.port}"]
            done = subprocess.run(
                _as_owner(argv), capture_output=True, text=True, timeout=DEADLINE_S + 10, check=False, cwd=self.folder
            )
            if done.returncode == 0:
                break
            if "could not bind" not in self.log():
                raise ClusterError(f"pg_ctl start failed ({done.returncode}): {done.stderr}\n{self.log()[-3000:]}")
        else:
            raise ClusterError(f"PostgreSQL could not bind a free port in 3 tries:\n{self.log()[-3000:]}")
        self._wait_ready(began + DEADLINE_S)
        self.start_seconds = time.monotonic() - began

    def _wait_ready(self, deadline: float) -> None:
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=5).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"PostgreSQL not answering within {DEADLINE_S} s: {exc}\n{self.log()[-3000:]}"
                    ) from None
                time.sleep(0.01)  # the next attempt, bounded by the deadline

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """pg_ctl stop -m fast, then the folder is removed."""
        if self._finalizer is not None:
            self._finalizer()  # runs _pg_ctl_stop once, and never again at exit
            self._finalizer = None

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole test session; each test takes a `new_database()`."""
    with PostgresCluster(require_postgres()) as cluster:
        yield cluster
