"""The e-mail channel against a real SMTP server (aiosmtpd) the tests start on 127.0.0.1: the mail
as a resident's client reads it, the relay's answers mapped onto retries and dropped
subscriptions through a real Outbox, the login, STARTTLS and implicit TLS with a test CA.

Every wait is on an event with a deadline (the Controller's start/stop, `Outbox.wait_idle`, the
recording handler's condition), never a sleep. No log record of central's may hold the address,
the page link (it holds the ticket's token) or the relay password.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from central.alerts import outbox as outbox_module
from central.alerts.mail import (
    MailChannel,
    MailRejected,
    MailTarget,
    compose,
    mask,
    valid_address,
)
from central.alerts.notice import Gone, Notice, NoticeKind, Retry
from central.alerts.outbox import Outbox
from office.config import MailRelay

HOST = "127.0.0.1"
DEADLINE_S = 10.0
ADDRESS = "taro.yamada@example.jp"
TOKEN = "Zq3vT8mKx1pL0aB7cD9eF2gH4iJ6kL8n"  # a page token's shape: 32 URL-safe characters
PAGE = f"https://queue.example.jp/nerima/t/{TOKEN}"
SENDER = "noreply@city.example.jp"
PASSWORD = "relay-pass-7f3a"
TARGET = MailTarget(ADDRESS, PAGE).encode()
SECRETS = (ADDRESS, "taro.yamada", TOKEN, PASSWORD)


# --- the pieces: notices, a recording SMTP server, a spy channel --------------------------------


def notice(kind: NoticeKind = "near", lang: str = "ja", **values: Any) -> Notice:
    words = {
        "ja": {"office_name": "練馬区民事務所", "service_name": "住民票の写し", "counter_name": "窓口5"},
        "en": {
            "office_name": "Nerima Ward Office",
            "service_name": "Residence certificates",
            "counter_name": "Counter 5",
        },
    }[lang]
    fields: dict[str, Any] = {"office_name": words["office_name"], "service_name": words["service_name"]}
    if kind == "near":
        fields |= {"ahead": 3, "minutes": 12}
    elif kind == "called":
        fields["counter_name"] = words["counter_name"]
    else:
        fields["rejoin"] = {
            "ja": "30分以内に2階の案内係へお申し出ください。",
            "en": "See the 2F guide desk within 30 min.",
        }[lang]
    fields |= values
    return Notice(kind=kind, office="nerima", token_hash="ab" * 32, ticket="A-012", lang=lang, **fields)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Recorder:
    """An aiosmtpd handler keeping what it accepts. `rcpt_replies` / `data_replies`: answers given
    instead of accepting, one per attempt until used up. `hold`: DATA for this recipient waits
    (off the server's loop) until the event is set; `holding` is set meanwhile."""

    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    hold: tuple[str, threading.Event] | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)
    rcpt_attempts: int = 0
    data_attempts: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.rcpt_attempts += 1
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0).format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        if self.hold is not None and self.hold[0] in envelope.rcpt_tos:
            self.holding.set()
            released = await asyncio.get_running_loop().run_in_executor(None, self.hold[1].wait, DEADLINE_S)
            assert released, "the test never released the held delivery"
        with self.cond:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            self.cond.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.received) >= count, DEADLINE_S)


class LocalRelay(Controller):  # type: ignore[misc]
    """aiosmtpd on 127.0.0.1; port 0 picks a free port (read back once the server listens)."""

    def __init__(self, handler: Any, port: int = 0, **kwargs: Any) -> None:
        super().__init__(
            handler, hostname=HOST, port=port, server_hostname="relay.test", ready_timeout=DEADLINE_S, **kwargs
        )

    def _trigger_server(self) -> None:
        if self.port == 0:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def relay_server() -> Iterator[Callable[..., LocalRelay]]:
    started: list[LocalRelay] = []

    def start(handler: Any, **kwargs: Any) -> LocalRelay:
        controller = LocalRelay(handler, **kwargs)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def relay_at(port: int, security: str = "none", **values: Any) -> MailRelay:
    return MailRelay(host=HOST, sender=SENDER, port=port, security=security, **values)


def channel(relay: MailRelay, tmp_path: Path, **kwargs: Any) -> MailChannel:
    return MailChannel(relay, tmp_path, local_hostname="central.test", **kwargs)


class Spy:
    """The channel as the outbox sees it, with each attempt's outcome kept (None: delivered)."""

    name = "mail"

    def __init__(self, inner: MailChannel) -> None:
        self.inner = inner
        self.outcomes: list[BaseException | None] = []
        self.failed = threading.Event()

    def deliver(self, notice: Notice, target: str) -> None:
        try:
            self.inner.deliver(notice, target)
        except BaseException as exc:
            self.outcomes.append(exc)
            self.failed.set()
            raise
        self.outcomes.append(None)


@pytest.fixture
def outboxes() -> Iterator[Callable[..., Outbox]]:
    made: list[Outbox] = []

    def make(channel: Any, **kwargs: Any) -> Outbox:
        box = Outbox(channel, **kwargs)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: no record of central's (with its traceback) names the address, the page link's
    token or the password. aiosmtpd's own records, the server side, may."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter("%(name)s %(message)s")
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        if record.name.startswith("central"):
            line = formatter.format(record)
            for secret in SECRETS:
                assert secret not in line, f"{secret!r} logged: {line}"


def central_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.get_records("call") if r.name.startswith("central"))


def parse(content: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def raw_header(content: bytes, name: str) -> bytes:
    """A header's raw value as it came over the wire, folded lines joined."""
    head = content.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.lower() == name.lower().encode():
            return value.strip()
    raise AssertionError(f"no {name} header")


# --- addresses and targets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("taro.yamada@example.jp", "taro.yamada@example.jp"),
        ("  Taro.Yamada@Example.JP ", "Taro.Yamada@example.jp"),
        (
            "\u3000taro@example.jp\u3000",
            "taro@example.jp",
        ),  # the IME's full-width blank  # the mailbox as typed, the domain folded
        ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", "taro@example.jp"),  # full-width, from a Japanese IME
        ("taro..hanako.@docomo.ne.jp", "taro..hanako.@docomo.ne.jp"),  # a carrier's old address
        ("a+alerts@mail.city.example.jp", "a+alerts@mail.city.example.jp"),
    ],
)
def test_valid_address_normalises(typed: str, kept: str) -> None:
    assert valid_address(typed) == kept


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "taro",
        "taro@",
        "@example.jp",
        "taro@example",
        "taro@@example.jp",
        "taro@exa mple.jp",
        "taro yamada@example.jp",
        "taro@example.jp\r\nBcc: everyone@example.jp",  # header injection
        "taro@example.jp\nBcc: everyone@example.jp",
        "taro@example.jp\r",
        "taro@example.jp\n",
        "\ttaro@example.jp",
        "ta\x00ro@example.jp",
        "<taro@example.jp>",
        "Taro <taro@example.jp>",
        "taro@example.jp, jiro@example.jp",
        "太郎@example.jp",  # beyond ASCII: no SMTPUTF8 assumed of the relay
        "taro@例え.jp",
        "t" * 65 + "@example.jp",
        "taro@" + "d" * 250 + ".jp",  # over 254 in all
        "taro@-example.jp",
        "taro@example.j",
    ],
)
def test_valid_address_refuses(typed: str) -> None:
    assert valid_address(typed) is None


def test_valid_address_refuses_what_is_not_text() -> None:
    assert valid_address(None) is None
    assert valid_address(b"taro@example.jp") is None


def test_mask_keeps_two_characters_and_the_domain() -> None:
    assert mask("taro.yamada@example.jp") == "ta***@example.jp"
    assert mask("t@example.jp") == "t***@example.jp"
    assert mask("taro..hanako.@docomo.ne.jp") == "ta***@docomo.ne.jp"
    assert mask("no-at-sign") == "***"


def test_target_round_trips_normalised_and_its_repr_hides_the_address() -> None:
    target = MailTarget("ｔａｒｏ＠ＥＸＡＭＰＬＥ．ｊｐ", PAGE)
    assert target.to == "taro@example.jp"
    assert MailTarget.decode(target.encode()) == target
    assert "taro@" not in repr(target) and TOKEN not in repr(target)
    assert "ta***@example.jp" in repr(target)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ('["taro.yamada@example.jp"]', "not a JSON object"),
        ('{"page": "https://queue.example.jp/t/x"}', "no 'to'"),
        ('{"to": "taro.yamada@example.jp"}', "no 'page'"),
        ('{"to": "taro.yamada@example.jp", "page": "x", "extra": 1}', "unknown keys"),
        ('{"to": "taro.yamada@example", "page": "https://queue.example.jp/t/x"}', "'to' is not"),
        ('{"to": "taro.yamada@example.jp\\r\\nBcc: x@example.jp", "page": "https://q.example.jp/t/x"}', "'to' is not"),
        ('{"to": "taro.yamada@example.jp", "page": "javascript:alert(1)"}', "'page'"),
        ('{"to": "taro.yamada@example.jp", "page": "https://q.example.jp/t/x\\r\\nBcc: y"}', "'page'"),
    ],
)
def test_a_malformed_target_is_named_without_the_address(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        MailTarget.decode(text)
    assert "taro" not in str(caught.value)


# --- the mail, end to end ------------------------------------------------------------------------

SUBJECTS = {
    ("near", "ja"): "まもなく順番です（受付番号 A-012）",
    ("called", "ja"): "窓口5へお越しください（受付番号 A-012）",
    ("no_show", "ja"): "お呼びしましたがお見えになりませんでした（受付番号 A-012）",
    ("near", "en"): "Your turn is near (ticket A-012)",
    ("called", "en"): "Please go to Counter 5 now (ticket A-012)",
    ("no_show", "en"): "You missed your call (ticket A-012)",
}
# What each kind's body must say besides the number and the link.
SAYS = {
    ("near", "ja"): ["あなたの前に 3人 お待ちです", "約12分"],
    ("called", "ja"): ["窓口5へお越しください"],
    ("no_show", "ja"): ["お見えになりませんでした", "30分以内に2階の案内係へお申し出ください。"],
    ("near", "en"): ["3 people are ahead of you", "About 12 minutes"],
    ("called", "en"): ["Please go to Counter 5"],
    ("no_show", "en"): ["you were not at the counter", "See the 2F guide desk within 30 min."],
}


@pytest.mark.parametrize(("kind", "lang"), list(SUBJECTS), ids=[f"{k}-{lang}" for k, lang in SUBJECTS])
def test_each_kind_arrives_readable(
    kind: NoticeKind, lang: str, tmp_path: Path, relay_server: Callable[..., LocalRelay]
) -> None:
    recorder = Recorder()
    server = relay_server(recorder)
    channel(relay_at(server.port), tmp_path).deliver(notice(kind, lang), TARGET)

    assert recorder.wait_for(1)
    [got] = recorder.received
    assert (got.mail_from, got.rcpt_tos) == (SENDER, [ADDRESS])
    head = got.content.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "a header went out unencoded"
    raw_subject = raw_header(got.content, "Subject")
    message = parse(got.content)

    assert message["Subject"] == SUBJECTS[kind, lang]
    if lang == "ja":
        assert raw_subject.startswith(b"=?utf-8?"), raw_subject  # RFC 2047 encoded words
        assert raw_header(got.content, "From").startswith(b"=?utf-8?")
    assert message["From"].addresses[0].display_name == notice(kind, lang).office_name
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["To"] == ADDRESS
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == lang
    assert message["Message-ID"].endswith("@city.example.jp>")
    assert message["Date"].datetime.tzinfo is not None
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    text = message.get_content()
    assert "A-012" in text
    assert PAGE in text.splitlines()  # the link alone on its line: clients make it clickable
    for words in SAYS[kind, lang]:
        assert words in text
    assert ("窓口5" in text or "Counter 5" in text) == (kind == "called")
    assert ADDRESS not in message["Subject"] and "taro" not in message["Subject"]


def test_near_says_next_and_soon_and_leaves_out_what_is_unknown() -> None:
    relay = relay_at(25)
    target = MailTarget(ADDRESS, PAGE)
    text = compose(notice("near", "en", ahead=0, minutes=0), target, relay).get_content()
    assert "You are next." in text and "any moment now" in text
    text = compose(notice("near", "en", ahead=1, minutes=1), target, relay).get_content()
    assert "1 person is ahead of you." in text and "About 1 minute until" in text
    text = compose(notice("near", "ja", ahead=None, minutes=None), target, relay).get_content()
    assert "人 お待ちです" not in text and "分の見込み" not in text and "まもなく順番です" in text


def test_compose_without_counter_name_or_rejoin_falls_back() -> None:
    target = MailTarget(ADDRESS, PAGE)
    called = compose(notice("called", "ja", counter_name=None), target, relay_at(25))
    assert called["Subject"] == "窓口へお越しください（受付番号 A-012）"
    missed = compose(notice("no_show", "en", rejoin=None), target, relay_at(25))
    assert "Please see the floor manager within 30 minutes." in missed.get_content()


def test_compose_dates_the_mail_and_never_puts_the_address_in_the_subject() -> None:
    when = dt.datetime(2027, 3, 15, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    for kind in ("near", "called", "no_show"):
        for lang in ("ja", "en"):
            # A mailbox that looks like a ticket number: still not in the Subject.
            message = compose(notice(kind, lang), MailTarget("a-012@example.jp", PAGE), relay_at(25), now=when)
            assert "example.jp" not in message["Subject"]
            assert "a-012@" not in message["Subject"].lower()
            assert message["Date"] == "Mon, 15 Mar 2027 09:30:00 +0900"


# --- through an Outbox: retries, Gone, a slow relay -------------------------------------------


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after 0.05, 0.1, 0.2 … s instead of 1, 2, 4 …: the same rule, sooner."""
    monkeypatch.setattr(outbox_module, "FIRST_BACKOFF_S", 0.05)


@pytest.mark.usefixtures("quick_backoff")
def test_a_relay_down_at_first_gets_the_mail_after_retries(
    tmp_path: Path, relay_server: Callable[..., LocalRelay], outboxes: Callable[..., Outbox]
) -> None:
    port = free_port()  # nothing listens here yet
    spy = Spy(channel(relay_at(port), tmp_path))
    box = outboxes(spy)
    assert box.submit(notice("called"), TARGET)
    assert spy.failed.wait(DEADLINE_S)
    assert isinstance(spy.outcomes[0], Retry)
    assert f"{HOST}:{port}" in str(spy.outcomes[0])

    recorder = Recorder()
    relay_server(recorder, port=port)
    assert box.wait_idle(DEADLINE_S)
    assert recorder.wait_for(1)
    assert parse(recorder.received[0].content)["Subject"] == SUBJECTS["called", "ja"]
    assert spy.outcomes[-1] is None
    assert (box.counts.delivered, box.counts.given_up, box.counts.gone) == (1, 0, 0)
    assert box.counts.retried >= 1


@pytest.mark.usefixtures("quick_backoff")
@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_a_451_is_retried_and_delivered(
    stage: str, tmp_path: Path, relay_server: Callable[..., LocalRelay], outboxes: Callable[..., Outbox]
) -> None:
    later = "451 4.3.0 Try again later <{address}>" if stage == "RCPT" else "451 4.3.0 Try again later"
    recorder = Recorder(**{f"{stage.lower()}_replies": [later]})
    server = relay_server(recorder)
    spy = Spy(channel(relay_at(server.port), tmp_path))
    box = outboxes(spy)
    box.submit(notice("near"), TARGET)
    assert box.wait_idle(DEADLINE_S)

    assert len(spy.outcomes) == 2
    first = spy.outcomes[0]
    assert isinstance(first, Retry) and "451" in str(first)
    assert ADDRESS not in str(first)
    assert spy.outcomes[1] is None
    assert recorder.wait_for(1)
    assert (box.counts.delivered, box.counts.retried) == (1, 1)


def test_a_refused_address_is_gone_at_once(
    tmp_path: Path,
    relay_server: Callable[..., LocalRelay],
    outboxes: Callable[..., Outbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(rcpt_replies=["550 5.1.1 <{address}>: Recipient address rejected: User unknown"] * 5)
    server = relay_server(recorder)
    gone: list[tuple[Notice, str]] = []
    spy = Spy(channel(relay_at(server.port), tmp_path))
    box = outboxes(spy, on_gone=lambda n, t: gone.append((n, t)))
    box.submit(notice("near"), TARGET)
    assert box.wait_idle(DEADLINE_S)

    assert gone == [(notice("near"), TARGET)]
    assert len(spy.outcomes) == 1 and isinstance(spy.outcomes[0], Gone)
    assert "550 5.1.1" in str(spy.outcomes[0])
    assert ADDRESS not in str(spy.outcomes[0]) and "ta***@example.jp" in str(spy.outcomes[0])
    assert (box.counts.gone, box.counts.retried, box.counts.delivered) == (1, 0, 0)
    assert recorder.rcpt_attempts == 1 and recorder.received == []
    log = central_log(caplog)
    assert "office nerima ticket A-012" in log and "ta***@example.jp" in log


def test_a_policy_refusal_is_not_the_address_fault(
    tmp_path: Path, relay_server: Callable[..., LocalRelay], outboxes: Callable[..., Outbox]
) -> None:
    """554 5.7.1 "relaying denied" blames the relay's setup: the notice is given up, once, and
    the subscription is kept (every resident's would go otherwise)."""
    recorder = Recorder(rcpt_replies=["554 5.7.1 <{address}>: Relay access denied"] * 5)
    server = relay_server(recorder)
    gone: list[tuple[Notice, str]] = []
    spy = Spy(channel(relay_at(server.port), tmp_path))
    box = outboxes(spy, on_gone=lambda n, t: gone.append((n, t)))
    box.submit(notice("near"), TARGET)
    assert box.wait_idle(DEADLINE_S)

    assert gone == []
    assert len(spy.outcomes) == 1 and isinstance(spy.outcomes[0], MailRejected)
    assert (box.counts.given_up, box.counts.retried, box.counts.gone) == (1, 0, 0)


@pytest.mark.parametrize(
    ("rcpt", "data", "outcome"),
    [
        ([], ["554 5.6.0 Message content rejected"], MailRejected),
        ([], ["452 4.3.1 Insufficient system storage"], Retry),
        (["550 No such user here"], [], Gone),  # no enhanced code: the address's fault
        (["450 4.2.1 Mailbox busy"], [], Retry),
        (["553 5.3.0 Relay is misconfigured"], [], MailRejected),
    ],
)
def test_the_relay_answers_map_onto_outcomes(
    rcpt: list[str], data: list[str], outcome: type[Exception], tmp_path: Path, relay_server: Callable[..., LocalRelay]
) -> None:
    server = relay_server(Recorder(rcpt_replies=rcpt, data_replies=data))
    with pytest.raises(outcome):
        channel(relay_at(server.port), tmp_path).deliver(notice("called"), TARGET)


class OddGoodbye(Recorder):
    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return "421 4.3.0 Bye, busy"


def test_an_odd_answer_to_quit_after_the_mail_is_taken_is_no_failure(
    tmp_path: Path, relay_server: Callable[..., LocalRelay]
) -> None:
    """A retry here would send the mail twice."""
    recorder = OddGoodbye()
    server = relay_server(recorder)
    channel(relay_at(server.port), tmp_path).deliver(notice("called"), TARGET)
    assert recorder.wait_for(1)


def test_a_malformed_target_is_gone_without_a_connection(tmp_path: Path) -> None:
    with pytest.raises(Gone, match="'to'"):
        # Port 9: were it tried, this would be a Retry, not Gone.
        channel(relay_at(9), tmp_path).deliver(notice(), '{"to": "taro.yamada", "page": "https://q.example.jp/t/x"}')


@pytest.mark.parametrize("security", ["none", "tls"])
def test_nothing_listening_is_a_retry(security: str, tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(Retry, match=f"{HOST}:{port}"):
        channel(relay_at(port, security), tmp_path).deliver(notice(), TARGET)


def test_a_slow_delivery_does_not_hold_back_another(
    tmp_path: Path, relay_server: Callable[..., LocalRelay], outboxes: Callable[..., Outbox]
) -> None:
    slow = "slow.resident@example.jp"
    release = threading.Event()
    recorder = Recorder(hold=(slow, release))
    server = relay_server(recorder)
    box = outboxes(channel(relay_at(server.port), tmp_path))
    try:
        box.submit(notice("near"), MailTarget(slow, PAGE).encode())
        assert recorder.holding.wait(DEADLINE_S)  # the first is in the relay's DATA, held
        box.submit(notice("called"), TARGET)
        assert recorder.wait_for(1)  # the second arrives …
        assert not release.is_set()  # … while the first is still held
        assert [r.rcpt_tos for r in recorder.received] == [[ADDRESS]]
    finally:
        release.set()
    assert box.wait_idle(DEADLINE_S)
    assert [r.rcpt_tos for r in recorder.received] == [[ADDRESS], [slow]]
    assert box.counts.delivered == 2


# --- the login ------------------------------------------------------------------------------------


def write_secret(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)


@pytest.fixture
def login_relay(relay_server: Callable[..., LocalRelay]) -> tuple[LocalRelay, Recorder]:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> AuthResult:
        ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (b"alerts", PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    recorder = Recorder()
    server = relay_server(recorder, authenticator=authenticate, auth_required=True, auth_require_tls=False)
    return server, recorder


# aiosmtpd warns, at each connection, of AUTH without TLS: the login tests' relay does it on purpose.
auth_without_tls = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@auth_without_tls
def test_the_login_reads_the_password_file_relative_to_the_config(
    tmp_path: Path, login_relay: tuple[LocalRelay, Recorder]
) -> None:
    server, recorder = login_relay
    (tmp_path / "secrets").mkdir()
    write_secret(tmp_path / "secrets" / "mail.pass", PASSWORD + "\n")
    relay = relay_at(server.port, username="alerts", password_file="secrets/mail.pass")
    channel(relay, tmp_path).deliver(notice("called"), TARGET)
    assert recorder.wait_for(1)


@auth_without_tls
def test_a_wrong_password_is_a_retry_that_does_not_show_it_and_a_rotated_one_is_used(
    tmp_path: Path, login_relay: tuple[LocalRelay, Recorder]
) -> None:
    server, recorder = login_relay
    wrong = "old-pass-0c1d"
    write_secret(tmp_path / "mail.pass", wrong)
    mail = channel(relay_at(server.port, username="alerts", password_file="mail.pass"), tmp_path)
    with pytest.raises(Retry, match="refused the login of 'alerts': 535") as caught:
        mail.deliver(notice("called"), TARGET)
    assert wrong not in str(caught.value) and PASSWORD not in str(caught.value)
    assert recorder.received == []

    write_secret(tmp_path / "mail.pass", PASSWORD)  # rotated: the next connection reads it
    mail.deliver(notice("called"), TARGET)
    assert recorder.wait_for(1)


@auth_without_tls
def test_no_login_is_refused_by_a_relay_that_requires_one(
    tmp_path: Path, login_relay: tuple[LocalRelay, Recorder]
) -> None:
    """The control for the login tests: without username the relay says 530 5.7.0 at MAIL."""
    server, recorder = login_relay
    with pytest.raises(MailRejected, match="530"):
        channel(relay_at(server.port), tmp_path).deliver(notice("called"), TARGET)
    assert recorder.received == []


@auth_without_tls
@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda p: None, "No such file"),
        (lambda p: write_secret(p, ""), "is empty"),
        (lambda p: write_secret(p, PASSWORD, 0o644), "may be read by others"),
    ],
    ids=["missing", "empty", "world-readable"],
)
def test_an_unusable_password_file_is_a_retry_naming_it(
    setup: Callable[[Path], None], problem: str, tmp_path: Path, login_relay: tuple[LocalRelay, Recorder]
) -> None:
    server, recorder = login_relay
    setup(tmp_path / "mail.pass")
    mail = channel(relay_at(server.port, username="alerts", password_file="mail.pass"), tmp_path)
    with pytest.raises(Retry) as caught:
        mail.deliver(notice("called"), TARGET)
    assert str(tmp_path / "mail.pass") in str(caught.value) and problem in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert recorder.received == []


# --- TLS: STARTTLS and implicit, against a test CA ---------------------------------------------


@dataclass(frozen=True)
class RelayCA:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def relay_ca(tmp_path_factory: pytest.TempPathFactory) -> RelayCA:
    """A CA and a server certificate for 127.0.0.1 it signed, made with `cryptography`."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "counterfloor test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = RelayCA(folder / "ca.pem", folder / "relay.pem", folder / "relay.key")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_starttls_is_used_and_the_certificate_verified(
    tmp_path: Path, relay_ca: RelayCA, relay_server: Callable[..., LocalRelay]
) -> None:
    recorder = Recorder()
    server = relay_server(recorder, tls_context=relay_ca.server_context(), require_starttls=True)
    relay = relay_at(server.port, "starttls")
    channel(relay, tmp_path, ssl_context=relay_ca.client_context()).deliver(notice("called"), TARGET)
    assert recorder.wait_for(1)

    # The system's CAs do not know the test CA: not verified, not sent.
    with pytest.raises(Retry, match="certificate was not verified"):
        channel(relay, tmp_path).deliver(notice("called"), TARGET)
    assert len(recorder.received) == 1


def test_a_relay_without_starttls_is_never_sent_to_in_the_clear(
    tmp_path: Path, relay_ca: RelayCA, relay_server: Callable[..., LocalRelay]
) -> None:
    recorder = Recorder()
    server = relay_server(recorder)  # no tls_context: STARTTLS not offered
    mail = channel(relay_at(server.port, "starttls"), tmp_path, ssl_context=relay_ca.client_context())
    with pytest.raises(Retry, match="STARTTLS"):
        mail.deliver(notice("called"), TARGET)
    assert recorder.data_attempts == 0 and recorder.rcpt_attempts == 0


def test_implicit_tls_is_verified(tmp_path: Path, relay_ca: RelayCA, relay_server: Callable[..., LocalRelay]) -> None:
    recorder = Recorder()
    server = relay_server(recorder, ssl_context=relay_ca.server_context())
    relay = relay_at(server.port, "tls")
    channel(relay, tmp_path, ssl_context=relay_ca.client_context()).deliver(notice("no_show"), TARGET)
    assert recorder.wait_for(1)
    assert parse(recorder.received[0].content)["Subject"] == SUBJECTS["no_show", "ja"]
    with pytest.raises(Retry, match="certificate was not verified"):
        channel(relay, tmp_path).deliver(notice("no_show"), TARGET)
