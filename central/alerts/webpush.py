"""Web Push: a resident's alert as a notification on their phone, sent through their browser's push
service with VAPID (RFC 8292) and an aes128gcm-encrypted payload (RFC 8291).

Owns the office's VAPID key pair (`VapidKeys`), what a subscription must look like before it is
stored beside a ticket's token hash (`subscription_problem`, `PushTarget`), the payload the page's
service worker shows (`push_payload`) and the channel that posts it (`PushChannel`), run by the
push channel's `Outbox`. A push service's answer maps to done, `Retry` or `Gone`
(docs/alerts.md, "Web Push"). A subscription's endpoint identifies one browser: it is never
written to a log line at INFO or above, nor into an exception's message; the office and the
ticket are.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import ipaddress
import json
import logging
import os
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid, VapidException  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush  # type: ignore[import-untyped]

# From requests' submodules: the dev group's MicroPython stubs put a `requests/__init__.pyi` in
# site-packages that hides the real package's names from mypy.
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout as RequestsTimeout
from requests.sessions import Session

from central.alerts.notice import Failed, Gone, Notice, NoticeKind, Retry
from central.store_sqlite import fsync_dir

_log = logging.getLogger(__name__)

# --- VAPID keys -------------------------------------------------------------------------------


class VapidKeyError(Exception):
    """The VAPID key file cannot be used (or made); the message names the file."""


class VapidKeys:
    """The office's VAPID key pair (P-256): the private key signs each push's JWT, the public key
    is the `applicationServerKey` every subscription was made with. A push service refuses a
    push signed by another key (usually 403), so a subscription lives exactly as long as the key
    it was made with: rotating the key file ends every live ticket's subscription."""

    __slots__ = ("_private", "path")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, path: Path | None = None) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"a VAPID key is on P-256, not {private_key.curve.name}")
        self._private = private_key
        self.path = path

    @classmethod
    def generate(cls) -> VapidKeys:
        """A new key pair held in memory only."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> VapidKeys:
        """The key in `path` (PEM, PKCS#8 or OpenSSL's "EC PRIVATE KEY"), made there first when
        the file is absent: mode 0600, written to a temporary file beside it, fsynced and linked
        into place (so a reader never sees half a key, and two processes starting at once agree
        on one key). A file that is there but not a P-256 private key is refused with
        `VapidKeyError`, and never replaced: the subscriptions of live tickets depend on it."""
        path = Path(path)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            return cls._create(path)
        except OSError as exc:
            raise VapidKeyError(f"{path}: cannot read the VAPID key: {exc.strerror}") from None
        return cls._from_pem(path, pem)

    @classmethod
    def _from_pem(cls, path: Path, pem: bytes) -> VapidKeys:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, binascii.Error):
            key = None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise VapidKeyError(
                f"{path}: not a VAPID private key (an unencrypted PEM P-256 EC private key). It is "
                "left as it is, since every live push subscription depends on it: restore it, or "
                "remove it to make a new one (which ends every subscription made with the old one)"
            )
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            _log.warning("%s: the VAPID private key is readable by others (mode %04o); 0600 is expected", path, mode)
        return cls(key, path)

    @classmethod
    def _create(cls, path: Path) -> VapidKeys:
        keys = cls.generate()
        pem = keys._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        directory = path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)  # mode 0600
        except OSError as exc:
            raise VapidKeyError(f"{path}: cannot create the VAPID key: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # a rename that never replaces a key another process just made
            except FileExistsError:
                return cls._from_pem(path, path.read_bytes())
            except OSError:  # a file system without hard links
                if path.exists():
                    return cls._from_pem(path, path.read_bytes())
                os.replace(tmp, path)
            fsync_dir(directory)
        except OSError as exc:
            raise VapidKeyError(f"{path}: cannot create the VAPID key: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _log.info("%s: made a new VAPID key pair", path)
        return cls(keys._private, path)

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return self._private

    @property
    def application_server_key(self) -> str:
        """The public key, uncompressed (65 bytes), base64url without padding: what the page
        passes to `pushManager.subscribe({applicationServerKey})`."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _b64url(raw)

    def vapid(self) -> Any:
        """The key as py-vapid signs with it (RFC 8292: `Authorization: vapid t=…, k=…`)."""
        return Vapid(private_key=self._private)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VapidKeys):
            return NotImplemented
        return self._private.private_numbers() == other._private.private_numbers()

    def __hash__(self) -> int:
        return hash(self.application_server_key)

    def __repr__(self) -> str:  # never the private key
        return f"VapidKeys(application_server_key={self.application_server_key!r}, path={self.path!r})"


# --- subscriptions ----------------------------------------------------------------------------

MAX_ENDPOINT_CHARS: Final = 2048  # the push services' endpoints are a few hundred characters
_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_KEY_BYTES = {"p256dh": 65, "auth": 16}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    body = text.rstrip("=")
    if not body or not set(body) <= _B64URL_CHARS or len(text) - len(body) > 2 or len(body) % 4 == 1:
        return None
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint_problem(endpoint: Any) -> str | None:
    if not isinstance(endpoint, str) or not endpoint:
        return "endpoint: must be a URL (a string)"
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        return f"endpoint: longer than {MAX_ENDPOINT_CHARS} characters"
    if any(c.isspace() or not c.isprintable() for c in endpoint):
        return "endpoint: has spaces or control characters"
    try:
        url = urlsplit(endpoint)
        host = url.hostname or ""
        url.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "endpoint: not a URL"
    if url.username is not None or url.password is not None:
        return "endpoint: must not carry a user name or password"
    if url.fragment:
        return "endpoint: must not have a fragment"
    if not host:
        return "endpoint: has no host"
    if url.netloc.rpartition("@")[2].startswith("["):
        return "endpoint: an IPv6 address as the host is not supported (VAPID's aud cannot name it)"
    if url.scheme == "https":
        return None
    if url.scheme == "http" and _loopback(host):
        return None  # the tests' mock push service
    return "endpoint: must be an https URL"


def subscription_problem(data: Any) -> str | None:
    """What is wrong with a subscription, as the browser's `PushSubscription.toJSON()` gives it
    ({"endpoint", "expirationTime", "keys": {"p256dh", "auth"}}), naming the field; None when it
    can be stored. The endpoint is an https URL (http only to a loopback host: the tests' mock);
    keys.p256dh is the browser's P-256 public key (65 bytes, uncompressed) and keys.auth its
    16-byte secret, both base64url. Nothing else is accepted."""
    if not isinstance(data, dict):
        return "the subscription must be a JSON object"
    unknown = sorted(set(data) - {"endpoint", "expirationTime", "keys"}, key=str)
    if unknown:
        return f"{str(unknown[0])[:40]}: not a field of a push subscription"
    if (problem := _endpoint_problem(data.get("endpoint"))) is not None:
        return problem
    expiration = data.get("expirationTime")
    if expiration is not None and (isinstance(expiration, bool) or not isinstance(expiration, int | float)):
        return "expirationTime: must be null or a number"
    keys = data.get("keys")
    if not isinstance(keys, dict):
        return "keys: must be an object with p256dh and auth"
    unknown = sorted(set(keys) - set(_KEY_BYTES), key=str)
    if unknown:
        return f"keys.{str(unknown[0])[:40]}: not a key of a push subscription"
    for name, size in _KEY_BYTES.items():
        value = keys.get(name)
        if not isinstance(value, str):
            return f"keys.{name}: missing (base64url, {size} bytes)"
        raw = _b64url_decode(value)
        if raw is None:
            return f"keys.{name}: not base64url"
        if len(raw) != size:
            return f"keys.{name}: {len(raw)} bytes, not {size}"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url_decode(keys["p256dh"]) or b"")
    except ValueError:
        return "keys.p256dh: not an uncompressed P-256 public key"
    return None


@dataclass(frozen=True, slots=True)
class PushTarget:
    """One ticket's push subscription: what the push channel's `target` string holds (`target`,
    canonical JSON: the same subscription always makes the same string). The repr leaves the
    endpoint and keys out."""

    endpoint: str = field(repr=False)
    p256dh: str = field(repr=False)  # base64url, no padding
    auth: str = field(repr=False)

    @classmethod
    def from_subscription(cls, data: Any) -> PushTarget:
        """From the page's `PushSubscription.toJSON()`; ValueError (naming the field) otherwise."""
        if (problem := subscription_problem(data)) is not None:
            raise ValueError(problem)
        keys = data["keys"]
        return cls(
            data["endpoint"],
            _b64url(_b64url_decode(keys["p256dh"]) or b""),
            _b64url(_b64url_decode(keys["auth"]) or b""),
        )

    @classmethod
    def from_target(cls, target: str) -> PushTarget:
        """From a channel's target string; ValueError when it is not a subscription."""
        try:
            data = json.loads(target)
        except ValueError:
            raise ValueError("the push target is not JSON") from None
        return cls.from_subscription(data)

    @property
    def target(self) -> str:
        return json.dumps(
            {"endpoint": self.endpoint, "keys": {"auth": self.auth, "p256dh": self.p256dh}},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
        )

    @property
    def origin(self) -> str:
        """The push service (scheme://host[:port]): it names the service, not the browser."""
        url = urlsplit(self.endpoint)
        return f"{url.scheme}://{url.netloc}"

    def subscription_info(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


# --- the payload ------------------------------------------------------------------------------

# The push services take at most 4096 bytes of encrypted body; aes128gcm adds 103 (its 86-byte
# header, the 16-byte tag, the padding delimiter). The payload is kept well under that: every
# office-supplied text is clipped (a character is at most 4 bytes in UTF-8, 2 when JSON escapes it).
PAYLOAD_LIMIT: Final = 3072
NAME_CHARS: Final = 60  # the office's and the service's names
COUNTER_CHARS: Final = 30
REJOIN_CHARS: Final = 200
TICKET_CHARS: Final = 16
TAG_HASH_CHARS: Final = 16  # the token hash's prefix in the tag: unique per ticket in practice

_WORDS: Final[dict[str, dict[str, str]]] = {
    "ja": {
        "near.title": "まもなく順番です",
        "near.ahead": "{ticket}: あと{ahead}人",
        "near.next": "{ticket}: 次の番です",
        "near.soon": "{ticket}: まもなくお呼びします",
        "near.minutes": "（約{minutes}分）",
        "called.title": "順番になりました",
        "called.body": "{ticket}番: {counter}へお越しください",
        "called.anywhere": "{ticket}番: 窓口へお越しください",
        "no_show.title": "順番を過ぎました",
        "no_show.body": "{ticket}番をお呼びしましたが、いらっしゃいませんでした。",
        "place": "{office}・{service}",
    },
    "en": {
        "near.title": "Your turn is near",
        "near.ahead": "{ticket}: {ahead} ahead of you",
        "near.next": "{ticket}: you are next",
        "near.soon": "{ticket}: you will be called soon",
        "near.minutes": " (about {minutes} min)",
        "called.title": "It's your turn",
        "called.body": "{ticket}: please go to {counter}",
        "called.anywhere": "{ticket}: please go to the counter",
        "no_show.title": "You missed your turn",
        "no_show.body": "{ticket} was called, but you were not there.",
        "place": "{office} · {service}",
    },
}


def _clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters: control characters and runs of spaces made one
    space, and "…" at the end when cut."""
    flat = " ".join("".join(" " if unicodedata.category(c)[0] == "C" else c for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def push_payload(notice: Notice) -> dict[str, Any]:
    """The JSON the service worker shows: {"kind", "title", "body", "tag", "lang", "ticket",
    "counter" (called, when known), "renotify"}, worded in `notice.lang`. `tag` is the ticket's
    token-hash prefix and the kind, so a repeated alert of a kind replaces the one shown instead
    of stacking; `renotify` (called only) makes the phone sound again even so."""
    words = _WORDS[notice.lang]
    ticket = _clip(notice.ticket, TICKET_CHARS)
    place = words["place"].format(
        office=_clip(notice.office_name, NAME_CHARS), service=_clip(notice.service_name, NAME_CHARS)
    )
    counter = _clip(notice.counter_name, COUNTER_CHARS) if notice.counter_name else None
    if notice.kind == "near":
        if notice.ahead is None:
            line = words["near.soon"].format(ticket=ticket)
        elif notice.ahead <= 0:
            line = words["near.next"].format(ticket=ticket)
        else:
            line = words["near.ahead"].format(ticket=ticket, ahead=notice.ahead)
        if notice.minutes is not None:
            line += words["near.minutes"].format(minutes=max(notice.minutes, 1))
        body = f"{line}\n{place}"
    elif notice.kind == "called":
        line = (
            words["called.body"].format(ticket=ticket, counter=counter)
            if counter
            else words["called.anywhere"].format(ticket=ticket)
        )
        body = f"{line}\n{place}"
    else:
        line = words["no_show.body"].format(ticket=ticket)
        rejoin = _clip(notice.rejoin, REJOIN_CHARS) if notice.rejoin else ""
        body = f"{line}{' ' if rejoin and notice.lang == 'en' else ''}{rejoin}\n{place}"
    payload: dict[str, Any] = {
        "kind": notice.kind,
        "title": words[f"{notice.kind}.title"],
        "body": body,
        "tag": f"{notice.token_hash[:TAG_HASH_CHARS]}-{notice.kind}",
        "lang": notice.lang,
        "ticket": ticket,
    }
    if notice.kind == "called" and counter:
        payload["counter"] = counter
    payload["renotify"] = notice.kind == "called"
    return payload


def encode_payload(notice: Notice) -> bytes:
    """push_payload(notice) as the bytes encrypted and sent (compact UTF-8 JSON)."""
    data = json.dumps(push_payload(notice), ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) > PAYLOAD_LIMIT:  # the clipping above makes this unreachable; a guard, not a path
        raise ValueError(f"a {notice.kind} push payload of {len(data)} bytes (at most {PAYLOAD_LIMIT})")
    return data


# --- the channel ------------------------------------------------------------------------------

TTL_S: Final[dict[NoticeKind, int]] = {"near": 600, "called": 300, "no_show": 1800}  # held while the phone is off
URGENCY: Final[dict[NoticeKind, str]] = {"near": "high", "called": "high", "no_show": "normal"}
TIMEOUT_S: Final = 10.0
_GONE = frozenset({404, 410})
_RETRY = frozenset({408, 429})  # and every 5xx


class PushRefused(Failed):
    """The push service refused the push for good (400, 401, 403, 413 or another 4xx): not
    retried (the same request would be refused again), and the subscription is kept (403 usually
    means the VAPID key is not the one the subscription was made with: a server fault to mend,
    not the resident's). The outbox logs it (WARNING) and counts it as given up; its message
    names the office, the ticket, the push service's origin, the status and what it usually
    means. `status`: the HTTP status (0: refused before any request)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


_REFUSED_MEANS = {
    400: "a malformed request",
    401: "a VAPID token the push service did not accept",
    403: "the VAPID key is not the one the subscription was made with (was the key file replaced?)",
    413: "the payload is too large",
}


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header's wait in seconds (delay-seconds or an HTTP date); None when absent
    or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class PushChannel:
    """The Web Push channel (`name = "push"`): `deliver(notice, target)` encrypts push_payload
    (aes128gcm) for the subscription in `target` (a `PushTarget.target`) and posts it with a
    VAPID JWT signed by `keys`, `sub` = `subject` (a "mailto:" or "https:" contact the push
    services may use to reach the office's operator). Called from the outbox's threads: each
    thread keeps its own HTTP session."""

    name = "push"

    def __init__(self, keys: VapidKeys, subject: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self.keys = keys
        self.subject = subject
        self.timeout_s = timeout_s
        self._vapid = keys.vapid()
        try:  # py-vapid checks `sub` as it signs: a bad subject is refused now, not at every push
            self._vapid.sign({"sub": subject, "aud": "https://push.invalid"})
        except VapidException:
            raise ValueError(f"the VAPID subject must be a mailto: address or an https URL, not {subject!r}") from None
        self._local = threading.local()

    def _session(self) -> Session:
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = Session()
        return session

    def deliver(self, notice: Notice, target: str) -> None:
        where = f"push: office {notice.office} ticket {notice.ticket}"
        try:
            push = PushTarget.from_target(target)
        except ValueError as exc:  # stored by something else than PushTarget: it will never work
            _log.error("%s: the stored push subscription is unusable (%s); it is dropped", where, exc)
            raise Gone(f"{where}: the stored push subscription is unusable ({exc})") from None
        try:
            webpush(
                push.subscription_info(),
                data=encode_payload(notice).decode(),
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self.subject},
                content_encoding="aes128gcm",
                timeout=self.timeout_s,
                ttl=TTL_S[notice.kind],
                # The body's type, as the Node web-push library sends it (pywebpush sends none; the
                # mock push service reads no body without it).
                headers={"Urgency": URGENCY[notice.kind], "Content-Type": "application/octet-stream"},
                requests_session=self._session(),
            )
        except VapidException as exc:  # the claims could not be signed
            raise PushRefused(f"{where}: cannot sign the VAPID claims ({exc})", 0) from None
        except WebPushException as exc:
            status = exc.status_code
            if not isinstance(status, int):  # pywebpush's own refusal, before any request
                raise PushRefused(f"{where}: {exc.message}", 0) from None
            self._answer(where, push, status, exc.retry_after)
        except RequestsTimeout:
            raise Retry(f"{where}: {push.origin} did not answer within {self.timeout_s:g} s") from None
        except RequestsConnectionError as exc:  # its text names the endpoint's path: not logged
            raise Retry(f"{where}: cannot reach {push.origin} ({type(exc).__name__})") from None
        else:
            _log.debug("%s: a %s alert accepted by %s", where, notice.kind, push.origin)

    @staticmethod
    def _answer(where: str, push: PushTarget, status: int, retry_after: str | None) -> None:
        if 200 <= status < 300:
            return
        if status in _GONE:
            _log.info("%s: the push subscription is gone (%d); it is dropped", where, status)
            raise Gone(f"{where}: the push subscription is gone ({status})")
        if status in _RETRY or status >= 500:
            raise Retry(f"{where}: {push.origin} answered {status}", retry_after_s(retry_after))
        means = _REFUSED_MEANS.get(status, "a refusal")
        raise PushRefused(f"{where}: refused by {push.origin} with {status} ({means})", status)
