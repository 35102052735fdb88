"""Facilities staff's accounts, sessions and login limits for the dashboard (docs/web.md,
"Facilities dashboard").

Owns:

- **The users file** (`counterfloor central --users FILE`): JSON, `{"v":1,"users":{name:
  {"kdf":"scrypt","n","r","p","salt","hash"}}}`, written by `counterfloor central user …` only
  (atomically, mode 600). Passwords are hashed with scrypt (memory-hard), a random salt per
  user; the parameters are kept per user so that they can be raised later without a reset.
  The file is read again whenever it changes: a user added, a password set or a user removed
  counts at the next request, and a session whose user's hash changed has ended.
- **Sessions**: a random token in an HttpOnly, SameSite=Strict cookie; the server keeps only its
  SHA-256, with the user, a CSRF token, and two limits (8 h from login, 30 min idle).
- **Login limits** per user name and per client address: 5 failures lock the key for 1 min, each
  further lock twice as long (at most 1 h); quiet keys are forgotten.

Nothing here logs a password, a session token or a CSRF token.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from office.mqtt import SENDER

# N=2**15, r=8: 32 MiB and ~0.1 s per hash — a guess costs an attacker the same memory.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # scrypt takes any length; a bound keeps a request's cost bounded
# A file's parameters are refused outside these, so a damaged file cannot make a login hang.
N_RANGE, R_RANGE, P_RANGE = (2**14, 2**20), (1, 32), (1, 16)
USER = SENDER  # a user name is what a command carries as its actor (`by`, docs/mqtt.md)

SESSION_S = 8 * 3600.0  # a session ends this long after its login…
IDLE_S = 30 * 60.0  # …or after this long without a request
MAX_SESSIONS = 1000  # beyond, the least recently used goes (memory stays bounded)

FAILURES = 5  # failed logins of one key before it is locked
LOCK_S, MAX_LOCK_S = 60.0, 3600.0  # the first lock, doubling per further lock up to the cap
FORGET_FAILURES_S = 15 * 60.0  # failures this old no longer count towards a lock…
FORGET_LOCKS_S = 24 * 3600.0  # …and a key quiet this long starts again from the first lock
MAX_KEYS = 10_000

Clock = Callable[[], float]
_log = logging.getLogger(__name__)


class UsersError(Exception):
    """The users file cannot be read or written; the message names the file."""


# -- passwords -------------------------------------------------------------------------------------
def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # hashlib caps memory at 32 MiB by default; scrypt needs 128·n·r bytes and a little more.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=KEY_BYTES
    )


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> dict[str, Any]:
    salt = secrets.token_bytes(SALT_BYTES)
    return {"kdf": "scrypt", "n": n, "r": r, "p": p, "salt": salt.hex(), "hash": _scrypt(password, salt, n, r, p).hex()}


def _check_record(name: str, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict) or record.get("kdf") != "scrypt":
        raise ValueError(f"user {name!r}: not a scrypt record")
    for key, (low, high) in (("n", N_RANGE), ("r", R_RANGE), ("p", P_RANGE)):
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"user {name!r}: {key} must be {low}-{high}")
    if record["n"] & (record["n"] - 1):
        raise ValueError(f"user {name!r}: n must be a power of 2")
    try:
        if len(bytes.fromhex(record["salt"])) < SALT_BYTES or len(bytes.fromhex(record["hash"])) != KEY_BYTES:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"user {name!r}: salt and hash must be hex ({SALT_BYTES}+ and {KEY_BYTES} bytes)") from None
    return record


def verify_password(password: str, record: Mapping[str, Any]) -> bool:
    """Whether `password` is the one `record` was made from (a constant-time comparison)."""
    if len(password) > MAX_PASSWORD:
        return False
    key = _scrypt(password, bytes.fromhex(record["salt"]), record["n"], record["r"], record["p"])
    return hmac.compare_digest(key, bytes.fromhex(record["hash"]))


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password may have at most {MAX_PASSWORD} characters"
    return None


# -- the users file --------------------------------------------------------------------------------
def read_users(path: Path) -> dict[str, dict[str, Any]]:
    """The file's users; UsersError naming the file and the problem. A missing file is an error:
    central is told to use it, so it must be there (`counterfloor central user add` makes it)."""
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise UsersError(f"{path}: others may read it (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsersError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsersError(f"{path}: not a users file (JSON): {exc}") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("users"), dict):
        raise UsersError(f'{path}: not a users file: expected {{"v": 1, "users": {{…}}}}')
    users: dict[str, dict[str, Any]] = {}
    for name, record in data["users"].items():
        if not USER.fullmatch(name):
            raise UsersError(f"{path}: user name {name!r} is not 1-64 of A-Za-z0-9._@:-")
        try:
            users[name] = _check_record(name, record)
        except ValueError as exc:
            raise UsersError(f"{path}: {exc}") from None
    return users


def write_users(path: Path, users: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the file atomically (a reader sees the old file or the new one), mode 600."""
    text = json.dumps({"v": 1, "users": {k: users[k] for k in sorted(users)}}, indent=1) + "\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsersError(f"{path}: {exc.strerror or exc}") from None


class Users:
    """The users file as central reads it: again whenever it changed (its mtime, size or inode),
    the last good copy kept (and the problem logged once) while it cannot be read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._users = read_users(path)  # at start a bad file is an error, not a log line
        self._seen = self._stamp()
        self._problem: str | None = None

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            stamp = self._stamp()
            if stamp != self._seen:
                try:
                    self._users = read_users(self.path)
                    self._seen, self._problem = stamp, None
                except UsersError as exc:
                    if str(exc) != self._problem:
                        self._problem = str(exc)
                        _log.error("central web: %s; the last good copy stays in use", exc)
            return self._users.get(name)


# -- sessions --------------------------------------------------------------------------------------
@dataclass(slots=True)
class Session:
    user: str
    csrf: str  # carried by every form of the session, checked on every POST
    stamp: str  # the user's password hash at login: another hash (password set, user removed) ends it
    started: float
    seen: float


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()  # a memory dump holds no usable token


@dataclass
class Sessions:
    clock: Clock = time.monotonic
    lifetime_s: float = SESSION_S
    idle_s: float = IDLE_S
    limit: int = MAX_SESSIONS
    _by_key: dict[str, Session] = field(default_factory=dict)

    def create(self, user: str, stamp: str) -> tuple[str, Session]:
        """A new session: (the cookie's token, the session)."""
        now = self.clock()
        self._prune(now)
        while len(self._by_key) >= self.limit:
            del self._by_key[min(self._by_key, key=lambda k: self._by_key[k].seen)]
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), stamp, now, now)
        self._by_key[_key(token)] = session
        return token, session

    def get(self, token: str | None, touch: bool = True) -> Session | None:
        """The live session of a cookie's token (its idle time restarted unless `touch` is
        False: a live stream is no sign that someone is there), or None."""
        if not token or len(token) > 128:
            return None
        key = _key(token)
        session = self._by_key.get(key)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._by_key[key]
            return None
        if touch:
            session.seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_key.pop(_key(token), None)

    def __len__(self) -> int:
        return len(self._by_key)

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.started >= self.lifetime_s or now - s.seen >= self.idle_s

    def _prune(self, now: float) -> None:
        for key in [k for k, s in self._by_key.items() if self._expired(s, now)]:
            del self._by_key[key]


def csrf_ok(session: Session, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf.encode(), sent.encode("utf-8", "replace"))


# -- login limits ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Key:
    failures: int = 0
    locks: int = 0
    until: float = 0.0
    last: float = 0.0


@dataclass
class Limiter:
    """Failed logins per key (`user:<name>`, `addr:<address>`); a login is refused unheard while
    any of its keys is locked. Counted whether the user exists or not, so a lock says nothing of
    who has an account."""

    clock: Clock = time.monotonic
    _keys: dict[str, _Key] = field(default_factory=dict)

    def locked_for(self, keys: Iterable[str]) -> float:
        """Seconds until every key is unlocked (0: none is)."""
        now = self.clock()
        left = 0.0
        for key in keys:
            k = self._keys.get(key)
            if k is not None:
                left = max(left, k.until - now)
        return left

    def failed(self, keys: Iterable[str]) -> list[str]:
        """Count a failure against each key; the keys this locked."""
        now = self.clock()
        if len(self._keys) >= MAX_KEYS:
            self._prune(now)
        locked = []
        for key in keys:
            k = self._keys.setdefault(key, _Key())
            if now - k.last >= FORGET_LOCKS_S:
                k.locks = 0
            if now - k.last >= FORGET_FAILURES_S:
                k.failures = 0
            k.last = now
            k.failures += 1
            if k.failures >= FAILURES:
                k.failures = 0
                k.until = now + min(LOCK_S * 2**k.locks, MAX_LOCK_S)
                k.locks += 1
                locked.append(key)
        return locked

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in [key for key, k in self._keys.items() if now - k.last >= FORGET_LOCKS_S and k.until <= now]:
            del self._keys[key]
        while len(self._keys) >= MAX_KEYS:  # a flood of addresses: the oldest unlocked go first
            del self._keys[min(self._keys, key=lambda key: (self._keys[key].until > now, self._keys[key].last))]


def login_keys(user: str, address: str) -> tuple[str, str]:
    return f"user:{user.casefold()[:64]}", f"addr:{address}"


@dataclass
class Staff:
    """What the dashboard's login needs: the users, the sessions, the limits. `secure`: mark the
    cookie Secure even when a request arrives over http (a TLS proxy that does not say so)."""

    users: Users
    sessions: Sessions = field(default_factory=Sessions)
    limiter: Limiter = field(default_factory=Limiter)
    secure: bool = False
    _dummy: dict[str, Any] | None = None

    @classmethod
    def from_file(cls, path: str | Path, clock: Clock = time.monotonic) -> Staff:
        """UsersError when the file cannot be read."""
        return cls(Users(Path(path)), Sessions(clock), Limiter(clock))

    def check(self, user: str, password: str) -> str | None:
        """The user's password hash if `password` is theirs, else None. An unknown user costs the
        same scrypt as a known one, so the time taken does not tell them apart. Slow (~0.1 s):
        call from a worker thread."""
        record = self.users.get(user) if USER.fullmatch(user) else None
        if record is None:
            if self._dummy is None:
                self._dummy = hash_password(secrets.token_urlsafe(16))
            verify_password(password, self._dummy)
            return None
        return str(record["hash"]) if verify_password(password, record) else None

    def current(self, token: str | None, touch: bool = True) -> Session | None:
        """The session of a cookie, while its user still has the password they logged in with."""
        session = self.sessions.get(token, touch)
        if session is None:
            return None
        record = self.users.get(session.user)
        if record is None or not hmac.compare_digest(str(record["hash"]), session.stamp):
            self.sessions.end(token)
            return None
        return session
