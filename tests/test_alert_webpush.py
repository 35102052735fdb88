"""Web Push, the server half (central/alerts/webpush.py): the VAPID key file, the subscriptions a
ticket may store, the payload the service worker shows, and the channel posting it, checked
against a real mock push service (web-push-testing, run by tests/pushmock_support.py) that
checks the VAPID JWT and decrypts the aes128gcm payload, and against a stub that answers the
statuses the mock never gives. Every request goes to 127.0.0.1.

Not exercised here (no push service is reachable): a browser's push service (FCM, Mozilla's,
Apple's) and its leg to the browser. The browser half (the page's service worker, subscribing in
Chromium) is tested apart."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPusher  # type: ignore[import-untyped]

from central.alerts.notice import KINDS, Failed, Gone, Notice, NoticeKind, Retry
from central.alerts.outbox import Outbox
from central.alerts.webpush import (
    PAYLOAD_LIMIT,
    PushChannel,
    PushRefused,
    PushTarget,
    VapidKeyError,
    VapidKeys,
    encode_payload,
    push_payload,
    retry_after_s,
    subscription_problem,
)
from tests.mqtt_support import free_port
from tests.pushmock_support import DEADLINE_S, AnsweringService, PushMock, answering_service, push_mock

SUBJECT = "mailto:alerts@city.nerima.example"
TOKEN_HASH = hashlib.sha256(b"Q0ZHc2k0b1pXb2RzYmVhX3Rva2Vu").hexdigest()
TAG = TOKEN_HASH[:16]
WORDS = {
    "ja": {
        "office_name": "練馬区役所",
        "service_name": "住民異動",
        "counter_name": "窓口5",
        "rejoin": "30分以内にフロア案内係へお申し出ください。",
    },
    "en": {
        "office_name": "Nerima City Office",
        "service_name": "Moving in/out",
        "counter_name": "Counter 5",
        "rejoin": "Please see the floor manager within 30 minutes.",
    },
}
# What the service worker is given for each notice below, word for word.
EXPECTED: dict[tuple[str, str], dict[str, Any]] = {
    ("near", "ja"): {
        "kind": "near",
        "title": "まもなく順番です",
        "body": "A-012: あと3人（約10分）\n練馬区役所・住民異動",
        "tag": f"{TAG}-near",
        "lang": "ja",
        "ticket": "A-012",
        "renotify": False,
    },
    ("near", "en"): {
        "kind": "near",
        "title": "Your turn is near",
        "body": "A-012: 3 ahead of you (about 10 min)\nNerima City Office · Moving in/out",
        "tag": f"{TAG}-near",
        "lang": "en",
        "ticket": "A-012",
        "renotify": False,
    },
    ("called", "ja"): {
        "kind": "called",
        "title": "順番になりました",
        "body": "A-012番: 窓口5へお越しください\n練馬区役所・住民異動",
        "tag": f"{TAG}-called",
        "lang": "ja",
        "ticket": "A-012",
        "counter": "窓口5",
        "renotify": True,
    },
    ("called", "en"): {
        "kind": "called",
        "title": "It's your turn",
        "body": "A-012: please go to Counter 5\nNerima City Office · Moving in/out",
        "tag": f"{TAG}-called",
        "lang": "en",
        "ticket": "A-012",
        "counter": "Counter 5",
        "renotify": True,
    },
    ("no_show", "ja"): {
        "kind": "no_show",
        "title": "順番を過ぎました",
        "body": "A-012番をお呼びしましたが、いらっしゃいませんでした。30分以内にフロア案内係へお申し出ください。"
        "\n練馬区役所・住民異動",
        "tag": f"{TAG}-no_show",
        "lang": "ja",
        "ticket": "A-012",
        "renotify": False,
    },
    ("no_show", "en"): {
        "kind": "no_show",
        "title": "You missed your turn",
        "body": "A-012 was called, but you were not there. Please see the floor manager within 30 minutes."
        "\nNerima City Office · Moving in/out",
        "tag": f"{TAG}-no_show",
        "lang": "en",
        "ticket": "A-012",
        "renotify": False,
    },
}
CASES = [(kind, lang) for kind in KINDS for lang in ("ja", "en")]


def make_notice(kind: NoticeKind, lang: str = "ja", **fields: Any) -> Notice:
    words = WORDS[lang]
    base: dict[str, Any] = {
        "kind": kind,
        "office": "nerima",
        "token_hash": TOKEN_HASH,
        "ticket": "A-012",
        "lang": lang,
        "office_name": words["office_name"],
        "service_name": words["service_name"],
    }
    if kind == "near":
        base |= {"ahead": 3, "minutes": 10}
    elif kind == "called":
        base["counter_name"] = words["counter_name"]
    else:
        base["rejoin"] = words["rejoin"]
    return Notice(**(base | fields))


def browser_keys() -> dict[str, str]:
    """keys as a browser's subscription holds them: its P-256 public key and a 16-byte secret."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"p256dh": b64url(raw), "auth": b64url(os.urandom(16))}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def target_for(endpoint: str) -> str:
    return PushTarget.from_subscription({"endpoint": endpoint, "expirationTime": None, "keys": browser_keys()}).target


def logged_at_info(caplog: pytest.LogCaptureFixture) -> str:
    """Every record at INFO or above, with its exception's traceback."""
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    return "\n".join(handler.format(r) for r in caplog.records if r.levelno >= logging.INFO)


def assert_endpoint_hidden(endpoint: str, caplog: pytest.LogCaptureFixture, *errors: BaseException) -> None:
    """The endpoint's path (the browser's identity) is in no log line at INFO or above and in no
    exception's message (the outbox logs those)."""
    path = urlsplit(endpoint).path.rsplit("/", 1)[-1]
    assert len(path) >= 8
    assert path not in logged_at_info(caplog)
    for error in errors:
        assert path not in str(error)


# --- the payload ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_payload_words_each_kind_in_each_language(kind: NoticeKind, lang: str) -> None:
    notice = make_notice(kind, lang)
    assert push_payload(notice) == EXPECTED[(kind, lang)]
    assert json.loads(encode_payload(notice)) == EXPECTED[(kind, lang)]


@pytest.mark.parametrize(
    ("ahead", "minutes", "ja", "en"),
    [
        (0, 2, "A-012: 次の番です（約2分）", "A-012: you are next (about 2 min)"),
        (1, None, "A-012: あと1人", "A-012: 1 ahead of you"),
        (5, 0, "A-012: あと5人（約1分）", "A-012: 5 ahead of you (about 1 min)"),
        (None, None, "A-012: まもなくお呼びします", "A-012: you will be called soon"),
    ],
)
def test_near_says_next_unknown_and_no_minutes_plainly(
    ahead: int | None, minutes: int | None, ja: str, en: str
) -> None:
    for lang, line in (("ja", ja), ("en", en)):
        body = push_payload(make_notice("near", lang, ahead=ahead, minutes=minutes))["body"]
        assert body.split("\n")[0] == line


def test_called_without_a_counter_name_sends_to_the_counter() -> None:
    payload = push_payload(make_notice("called", "en", counter_name=None))
    assert payload["body"].startswith("A-012: please go to the counter\n")
    assert "counter" not in payload and payload["renotify"] is True


def long_notice(kind: NoticeKind, lang: str) -> Notice:
    """Every office-supplied text far too long, in the characters that cost most bytes."""
    return make_notice(
        kind,
        lang,
        office_name="練馬区役所" * 400,
        service_name="😀" * 2000,
        counter_name='窓口"\\' * 300,
        rejoin=("お申し出ください。\n\t\x00" * 300),
        ticket="A-" + "9" * 100,
    )


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_payload_stays_well_under_four_kilobytes_for_long_names(kind: NoticeKind, lang: str) -> None:
    data = encode_payload(long_notice(kind, lang))
    assert len(data) <= PAYLOAD_LIMIT
    assert len(data) + 103 < 4096  # aes128gcm's header, tag and delimiter: the push services' limit
    payload = json.loads(data)
    assert "…" in payload["body"] and "\x00" not in payload["body"] and "\t" not in payload["body"]
    assert payload["body"].count("\n") == 1  # the line the notice makes, and the office's


# --- subscriptions ----------------------------------------------------------------------------


def subscription(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH",
        "expirationTime": None,
        "keys": browser_keys(),
    }
    for name, value in changes.items():
        if name.startswith("keys_"):
            if value is ...:
                del data["keys"][name[5:]]
            else:
                data["keys"][name[5:]] = value
        elif value is ...:
            del data[name]
        else:
            data[name] = value
    return data


@pytest.mark.parametrize(
    "data",
    [
        subscription(),
        subscription(expirationTime=1893456000000),
        subscription(endpoint="https://web.push.apple.com/QGuQyavXutnMotpVh7mRxw:8080"),
        subscription(endpoint="https://updates.push.services.mozilla.com/wpush/v2/gAAAAABl"),
        subscription(endpoint="http://127.0.0.1:8090/notify/abc"),
        subscription(endpoint="http://localhost:8090/notify/abc"),
        subscription(endpoint="http://127.5.6.7/notify/abc"),
        subscription(expirationTime=...),
    ],
)
def test_subscription_as_browsers_give_it_is_accepted(data: dict[str, Any]) -> None:
    assert subscription_problem(data) is None
    assert PushTarget.from_subscription(data).endpoint == data["endpoint"]


def padded(value: str) -> str:
    return value + "=" * (-len(value) % 4)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("not an object", "object"),
        ([], "object"),
        (subscription(endpoint=...), "endpoint"),
        (subscription(endpoint=42), "endpoint"),
        (subscription(endpoint=""), "endpoint"),
        (subscription(endpoint="http://push.example.com/x"), "endpoint: must be an https"),
        (subscription(endpoint="http://10.0.0.5/x"), "endpoint: must be an https"),
        (subscription(endpoint="ftp://push.example.com/x"), "endpoint: must be an https"),
        (subscription(endpoint="https:///x"), "endpoint: has no host"),
        (subscription(endpoint="https://u:p@push.example.com/x"), "endpoint: must not carry"),
        (subscription(endpoint="https://push.example.com/x#y"), "endpoint: must not have a fragment"),
        (subscription(endpoint="https://push.example.com/a b"), "endpoint: has spaces"),
        (subscription(endpoint="https://push.example.com:99999/x"), "endpoint: not a URL"),
        (subscription(endpoint="http://[::1]:8090/x"), "endpoint: an IPv6"),
        (subscription(endpoint="https://push.example.com/" + "x" * 2100), "endpoint: longer"),
        (subscription(expirationTime="tomorrow"), "expirationTime"),
        (subscription(expirationTime=True), "expirationTime"),
        (subscription(keys=...), "keys"),
        (subscription(keys=["p256dh", "auth"]), "keys"),
        (subscription(options={"userVisibleOnly": True}), "options"),
        (subscription(keys_p256dh=...), "keys.p256dh: missing"),
        (subscription(keys_p256dh=12), "keys.p256dh: missing"),
        (subscription(keys_p256dh="BOr+/not/base64url"), "keys.p256dh: not base64url"),
        (subscription(keys_p256dh=b64url(b"\x04" + b"\x01" * 32)), "keys.p256dh: 33 bytes, not 65"),
        (subscription(keys_p256dh=b64url(b"\x04" + b"\x01" * 64)), "keys.p256dh: not an uncompressed P-256"),
        (subscription(keys_auth=...), "keys.auth: missing"),
        (subscription(keys_auth=b64url(os.urandom(32))), "keys.auth: 32 bytes, not 16"),
        (subscription(keys_auth=""), "keys.auth: not base64url"),
        (subscription(keys_extra="x"), "keys.extra"),
    ],
)
def test_subscription_problem_names_the_field(data: Any, field: str) -> None:
    problem = subscription_problem(data)
    assert problem is not None and field in problem
    with pytest.raises(ValueError, match="^" + re.escape(problem)):
        PushTarget.from_subscription(data)


def test_target_is_the_subscription_re_encoded_canonically() -> None:
    data = subscription(expirationTime=1893456000000)
    reordered = {"keys": {k: padded(v) for k, v in reversed(data["keys"].items())}, "endpoint": data["endpoint"]}
    target = PushTarget.from_subscription(data).target
    assert PushTarget.from_subscription(reordered).target == target
    assert json.loads(target) == {"endpoint": data["endpoint"], "keys": data["keys"]}
    assert target == json.dumps(json.loads(target), sort_keys=True, separators=(",", ":"))
    assert PushTarget.from_target(target).target == target
    assert data["endpoint"] not in repr(PushTarget.from_target(target))
    with pytest.raises(ValueError, match="not JSON"):
        PushTarget.from_target("{endpoint")


# --- VAPID keys -------------------------------------------------------------------------------


def test_vapid_key_is_created_0600_whatever_the_umask_and_reloaded_equal(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    old = os.umask(0)
    try:
        keys = VapidKeys.load_or_create(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vapid.pem"]  # no temporary file left
    again = VapidKeys.load_or_create(path)
    assert again == keys and again.application_server_key == keys.application_server_key
    assert again != VapidKeys.generate()
    raw = base64.urlsafe_b64decode(padded(keys.application_server_key))
    assert len(raw) == 65 and raw[0] == 4 and "=" not in keys.application_server_key
    assert "PRIVATE" not in repr(keys) and str(keys.private_key.private_numbers().private_value) not in repr(keys)


def test_vapid_key_made_with_openssl_is_loaded(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "vapid.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    assert VapidKeys.load_or_create(path) == VapidKeys(key)


def other_pem(kind: str) -> bytes:
    key: Any = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP384R1())
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key\n",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        pytest.param("rsa", id="an RSA key"),
        pytest.param("p384", id="a P-384 key"),
    ],
)
def test_malformed_vapid_key_file_is_refused_naming_it_and_left_untouched(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "vapid.pem"
    data = content if isinstance(content, bytes) else other_pem(content)
    path.write_bytes(data)
    path.chmod(0o600)
    before = path.stat()
    with pytest.raises(VapidKeyError, match=f"^{re.escape(str(path))}: not a VAPID private key"):
        VapidKeys.load_or_create(path)
    assert path.read_bytes() == data
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_ino == before.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vapid.pem"]


def test_vapid_key_made_by_another_process_meanwhile_is_kept_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes starting at once: the key the other one put in place first wins, untouched."""
    path = tmp_path / "vapid.pem"
    theirs = VapidKeys.generate()
    pem = theirs.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    link = os.link

    def other_process_first(src: str, dst: Path) -> None:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, pem)
        os.close(fd)
        link(src, dst)

    monkeypatch.setattr(os, "link", other_process_first)
    assert VapidKeys.load_or_create(path) == theirs
    assert path.read_bytes() == pem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vapid.pem"]


def test_vapid_key_in_a_missing_directory_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "vapid.pem"
    with pytest.raises(VapidKeyError, match=f"^{re.escape(str(path))}: cannot create"):
        VapidKeys.load_or_create(path)


def test_channel_refuses_a_subject_push_services_would_not_take() -> None:
    keys = VapidKeys.generate()
    PushChannel(keys, "https://city.nerima.example")
    for bad in ("alerts@city.nerima.example", "mailto:nobody", "http://city.nerima.example"):
        with pytest.raises(ValueError, match="VAPID subject"):
            PushChannel(keys, bad)


# --- against the mock push service ------------------------------------------------------------


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushMock]:
    with push_mock(tmp_path_factory.mktemp("pushmock")) as running:
        yield running


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> VapidKeys:
    """Made in a file and read back, as central does."""
    path = tmp_path_factory.mktemp("vapid") / "vapid.pem"
    VapidKeys.load_or_create(path)
    return VapidKeys.load_or_create(path)


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_mock_decrypts_exactly_the_payload_and_accepts_the_vapid_jwt(
    mock: PushMock, keys: VapidKeys, kind: NoticeKind, lang: str
) -> None:
    sub = mock.subscribe(keys.application_server_key)
    notice = make_notice(kind, lang)
    PushChannel(keys, SUBJECT).deliver(notice, PushTarget.from_subscription(sub.subscription).target)
    # The mock answered 201 only after checking the JWT against the subscription's key (see
    # test_mock_checks_the_jwt_signature) and decrypting the body with the subscription's secret.
    messages = mock.notifications(sub.client_hash)
    assert messages == [encode_payload(notice).decode()]
    assert json.loads(messages[0]) == push_payload(notice) == EXPECTED[(kind, lang)]


def test_long_names_reach_the_mock_intact(mock: PushMock, keys: VapidKeys) -> None:
    sub = mock.subscribe(keys.application_server_key)
    channel = PushChannel(keys, SUBJECT)
    for kind in KINDS:
        channel.deliver(long_notice(kind, "ja"), PushTarget.from_subscription(sub.subscription).target)
    assert [json.loads(m) for m in mock.notifications(sub.client_hash)] == [
        push_payload(long_notice(kind, "ja")) for kind in KINDS
    ]


def test_mock_checks_the_jwt_signature(mock: PushMock, keys: VapidKeys) -> None:
    """The mock's acceptance means something: the same push, its JWT signed by another key (the
    `k=` still ours), is refused; signed by ours, it is taken."""
    sub = mock.subscribe(keys.application_server_key)
    claims = {"sub": SUBJECT, "aud": mock.base, "exp": int(time.time()) + 3600}
    token = VapidKeys.generate().vapid().sign(claims)["Authorization"].split("t=")[1].split(",")[0]
    forged = f"vapid t={token},k={keys.application_server_key}"
    honest = keys.vapid().sign(claims)["Authorization"]

    def send(authorization: str) -> int:
        headers = {"Authorization": authorization, "Content-Type": "application/octet-stream"}
        return int(WebPusher(sub.subscription).send(b'{"kind":"near"}', headers, ttl=60).status_code)

    before = mock.log().count("JsonWebTokenError: invalid signature")
    assert send(forged) == 400
    assert mock.log().count("JsonWebTokenError: invalid signature") == before + 1  # refused for the signature
    assert mock.notifications(sub.client_hash) == []
    assert send(honest) == 201
    assert mock.notifications(sub.client_hash) == ['{"kind":"near"}']


def test_subscription_made_with_another_vapid_key_is_refused_not_retried(
    mock: PushMock, keys: VapidKeys, caplog: pytest.LogCaptureFixture
) -> None:
    """As after the key file was replaced: the push service refuses (the mock says 400, a real
    one 403). The outbox gives it up at once (Failed): not retried, the subscription not dropped,
    logged with the office and the ticket."""
    caplog.set_level(logging.INFO)
    sub = mock.subscribe(VapidKeys.generate().application_server_key)
    target = PushTarget.from_subscription(sub.subscription).target
    with pytest.raises(PushRefused) as refused:
        PushChannel(keys, SUBJECT).deliver(make_notice("near"), target)
    assert refused.value.status == 400 and isinstance(refused.value, Failed)
    gone: list[tuple[Notice, str]] = []
    outbox = Outbox(PushChannel(keys, SUBJECT), threads=2, on_gone=lambda n, t: gone.append((n, t)))
    try:
        assert outbox.submit(make_notice("near"), target)
        assert outbox.wait_idle(DEADLINE_S)
        counts = outbox.counts
        assert (counts.given_up, counts.retried, counts.gone, counts.delivered, gone) == (1, 0, 0, 0, [])
    finally:
        outbox.close()
    assert mock.notifications(sub.client_hash) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"push: office nerima ticket A-012: refused by {mock.base} with 400" in warnings[0]
    assert_endpoint_hidden(sub.subscription["endpoint"], caplog, refused.value)


def test_expired_subscription_is_gone_once_and_never_retried(
    mock: PushMock, keys: VapidKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sub = mock.subscribe(keys.application_server_key)
    target = PushTarget.from_subscription(sub.subscription).target
    mock.expire(sub.client_hash)
    gone: list[tuple[Notice, str]] = []
    outbox = Outbox(PushChannel(keys, SUBJECT), threads=2, on_gone=lambda n, t: gone.append((n, t)))
    try:
        notice = make_notice("called", "en")
        assert outbox.submit(notice, target)
        assert outbox.wait_idle(DEADLINE_S)
        assert gone == [(notice, target)]
        assert (outbox.counts.gone, outbox.counts.retried, outbox.counts.delivered, outbox.counts.given_up) == (
            1,
            0,
            0,
            0,
        )
    finally:
        outbox.close()
    assert mock.notifications(sub.client_hash) == []
    assert "office nerima ticket A-012: the push subscription is gone (410)" in logged_at_info(caplog)
    assert_endpoint_hidden(sub.subscription["endpoint"], caplog)
    with pytest.raises(Gone) as direct:
        PushChannel(keys, SUBJECT).deliver(notice, target)
    assert_endpoint_hidden(sub.subscription["endpoint"], caplog, direct.value)


def test_outbox_threads_deliver_every_alert_through_the_mock(mock: PushMock, keys: VapidKeys) -> None:
    subs = [mock.subscribe(keys.application_server_key) for _ in range(4)]
    delivered: list[str] = []
    outbox = Outbox(PushChannel(keys, SUBJECT), threads=3, on_delivered=lambda n, t, s: delivered.append(t))
    try:
        for sub in subs:
            for kind in KINDS:
                assert outbox.submit(make_notice(kind, "en"), PushTarget.from_subscription(sub.subscription).target)
        assert outbox.wait_idle(DEADLINE_S)
        assert outbox.counts.delivered == 12 and len(delivered) == 12
    finally:
        outbox.close()
    for sub in subs:
        got = sorted(json.loads(m)["kind"] for m in mock.notifications(sub.client_hash))
        assert got == sorted(KINDS)


# --- when nothing answers, and what each answer means -----------------------------------------


def test_no_push_service_listening_is_a_retry(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    endpoint = f"http://127.0.0.1:{free_port()}/notify/3810ec2d1061ceccbe533d4e"
    with pytest.raises(Retry) as retry:
        PushChannel(VapidKeys.generate(), SUBJECT).deliver(make_notice("near"), target_for(endpoint))
    assert "office nerima ticket A-012: cannot reach http://127.0.0.1:" in str(retry.value)
    assert retry.value.after_s is None
    assert_endpoint_hidden(endpoint, caplog, retry.value)


def test_a_push_service_that_does_not_answer_in_time_is_a_retry() -> None:
    with socket.socket() as listener:  # accepts connections (the kernel's backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}/notify/abcdefgh12345678"
        channel = PushChannel(VapidKeys.generate(), SUBJECT, timeout_s=0.3)
        began = time.monotonic()
        with pytest.raises(Retry, match=r"did not answer within 0\.3 s"):
            channel.deliver(make_notice("called"), target_for(endpoint))
        assert time.monotonic() - began < DEADLINE_S


@pytest.fixture
def service() -> Iterator[AnsweringService]:
    with answering_service() as running:
        yield running


def test_push_request_carries_ttl_urgency_encoding_and_a_valid_vapid_jwt(service: AnsweringService) -> None:
    keys = VapidKeys.generate()
    channel = PushChannel(keys, SUBJECT)
    sent: list[tuple[NoticeKind, str, str]] = [
        ("near", "600", "high"),
        ("called", "300", "high"),
        ("no_show", "1800", "normal"),
    ]
    for kind, ttl, urgency in sent:
        endpoint = service.answer(f"/push/{kind}", 201)
        channel.deliver(make_notice(kind), target_for(endpoint))
        request = service.received[-1]
        assert request.path == f"/push/{kind}"
        assert (request.headers["ttl"], request.headers["urgency"]) == (ttl, urgency)
        assert request.headers["content-encoding"] == "aes128gcm"
        assert len(request.body) == len(encode_payload(make_notice(kind))) + 103  # one aes128gcm record
        authorization = request.headers["authorization"]
        assert authorization.startswith("vapid t=") and authorization.endswith(f",k={keys.application_server_key}")
        assert Vapid.verify(authorization) is True
        claims = json.loads(base64.urlsafe_b64decode(padded(authorization.split("t=")[1].split(".")[1])))
        assert claims["sub"] == SUBJECT and claims["aud"] == f"http://127.0.0.1:{service.port}"
        assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert len(service.received) == 3


@pytest.mark.parametrize(
    ("status", "headers", "outcome"),
    [
        (201, {}, None),
        (202, {}, None),
        (404, {}, Gone),
        (410, {}, Gone),
        (429, {"Retry-After": "7"}, (Retry, 7.0)),
        (503, {"Retry-After": "when?"}, (Retry, None)),
        (500, {}, (Retry, None)),
        (502, {}, (Retry, None)),
        (408, {}, (Retry, None)),
        (400, {}, (PushRefused, "a malformed request")),
        (401, {}, (PushRefused, "a VAPID token the push service did not accept")),
        (
            403,
            {},
            (
                PushRefused,
                "the VAPID key is not the one the subscription was made with (was the key file replaced?)",
            ),
        ),
        (413, {}, (PushRefused, "the payload is too large")),
        (405, {}, (PushRefused, "a refusal")),
    ],
)
def test_each_push_service_answer_maps_to_done_retry_gone_or_refused(
    service: AnsweringService,
    caplog: pytest.LogCaptureFixture,
    status: int,
    headers: dict[str, str],
    outcome: Any,
) -> None:
    caplog.set_level(logging.INFO)
    endpoint = service.answer("/push/9f8e7d6c5b4a39281706", status, headers)
    channel = PushChannel(VapidKeys.generate(), SUBJECT)
    target = target_for(endpoint)
    if outcome is None:
        channel.deliver(make_notice("near"), target)
        assert logged_at_info(caplog) == ""
    elif outcome is Gone:
        with pytest.raises(Gone) as gone:
            channel.deliver(make_notice("near"), target)
        assert_endpoint_hidden(endpoint, caplog, gone.value)
    elif outcome[0] is Retry:
        with pytest.raises(Retry) as retry:
            channel.deliver(make_notice("near"), target)
        assert retry.value.after_s == outcome[1]
        assert f"answered {status}" in str(retry.value)
        assert_endpoint_hidden(endpoint, caplog, retry.value)
    else:
        with pytest.raises(PushRefused) as refused:
            channel.deliver(make_notice("near"), target)
        assert refused.value.status == status and isinstance(refused.value, Failed)
        assert str(refused.value) == (
            f"push: office nerima ticket A-012: refused by http://127.0.0.1:{service.port} with {status} ({outcome[1]})"
        )
        assert logged_at_info(caplog) == ""  # the outbox logs a Failed, once
        assert_endpoint_hidden(endpoint, caplog, refused.value)
    assert len(service.received) == 1  # one attempt: retrying is the outbox's


def test_an_unusable_stored_target_is_dropped_without_a_request(
    service: AnsweringService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    endpoint = service.answer("/push/stored0123456789", 201)
    stored = json.dumps({"endpoint": endpoint, "keys": {"p256dh": "AAAA", "auth": "BBBB"}})
    with pytest.raises(Gone, match=r"^push: office nerima ticket A-012: .*keys\.p256dh: 3 bytes, not 65"):
        PushChannel(VapidKeys.generate(), SUBJECT).deliver(make_notice("near"), stored)
    assert service.received == []
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert_endpoint_hidden(endpoint, caplog)


def test_retry_after_as_a_date_is_the_seconds_until_it(service: AnsweringService) -> None:
    endpoint = service.answer("/push/dated0123456789", 503, {"Retry-After": formatdate(time.time() + 120, usegmt=True)})
    with pytest.raises(Retry) as retry:
        PushChannel(VapidKeys.generate(), SUBJECT).deliver(make_notice("near"), target_for(endpoint))
    assert retry.value.after_s is not None and 100 < retry.value.after_s <= 121


def test_retry_after_values() -> None:
    now = 1_800_000_000.0
    assert retry_after_s(None) is None
    assert retry_after_s("0") == 0.0
    assert retry_after_s(" 30 ") == 30.0
    assert retry_after_s(formatdate(now + 90, usegmt=True), now=now) == 90.0
    assert retry_after_s(formatdate(now - 90, usegmt=True), now=now) == 0.0  # a date past: now
    assert retry_after_s("-5") is None and retry_after_s("soon") is None and retry_after_s("") is None
