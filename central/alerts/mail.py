"""The e-mail channel: a resident's alert as a short plain-text mail, sent through the office's
SMTP relay ([alerts.mail], office.config.MailRelay; docs/alerts.md).

Owns the mail's words (ja/en: a mail is its own medium, not a web page), the address check and
mask the opt-in form and the staff screens use, and one delivery: connect, STARTTLS or implicit
TLS as configured, log in, send, map the relay's answer onto `Retry` / `Gone` / `MailRejected`.
When and how often a delivery is tried is the outbox's (central.alerts.outbox).

One SMTP connection per delivery: a ticket has a few alerts at most, and a connection that lives
only as long as one message cannot go stale, and picks up a rotated password file at once.

The address is personal data: it never appears in a log line or an exception's message (the
relay's reply is scrubbed of it; the office and the ticket number name a delivery), and
`MailTarget`'s repr masks it. The page link holds the ticket's token: it is never logged either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import smtplib
import socket
import ssl
import stat
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime, make_msgid
from pathlib import Path

from central.alerts.notice import Failed, Gone, Notice, Retry
from office.config import DEFAULT_REJOIN, MailRelay

TIMEOUT_S = 10.0  # connecting, and each reply of the relay
MAX_ADDRESS = 254  # RFC 5321's path limit, less the angle brackets
MAX_PAGE = 2048
_log = logging.getLogger(__name__)

# An address as residents type it and relays take it, ASCII only (no SMTPUTF8: not every relay
# has it). The local part allows any dot-atom character and dots anywhere: the carriers' old
# addresses ("taro..hanako.@docomo.ne.jp") break RFC 5322's dot-atom yet are delivered every day.
# The domain: letters, digits and hyphens in dot-separated labels, a TLD of two or more.
_ADDRESS_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9]"
)
_PAGE_RE = re.compile(r"https?://[!-~]+")  # printable ASCII: no space, no control, no line break
_ENHANCED_RE = re.compile(rb"\s*[245]\.(\d{1,3})\.\d{1,3}\b")  # RFC 3463: class.subject.detail


def valid_address(text: object) -> str | None:
    """The address as the opt-in form's field gives it, checked and normalised, or None.

    Full-width characters typed with a Japanese IME ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ") are folded to
    ASCII (NFKC), surrounding spaces dropped and the domain lower-cased (the local part is the
    mailbox's own and kept as typed). Refused: any line break or other control character, even
    at the end (header injection), more than 254 characters, anything beyond ASCII, anything but
    one local@domain."""
    if not isinstance(text, str) or any(unicodedata.category(c) == "Cc" for c in text):
        return None  # a line break (or any control character) anywhere: refused, not trimmed
    folded = unicodedata.normalize("NFKC", text).strip(" ")  # U+3000, the IME's blank, folds to " "
    if len(folded) > MAX_ADDRESS or not folded.isascii() or not _ADDRESS_RE.fullmatch(folded):
        return None
    local, _, domain = folded.rpartition("@")
    return f"{local}@{domain.lower()}"


def mask(address: str) -> str:
    """The address as staff screens (and log lines) show it: "ta***@example.jp"."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:2]}***@{domain}"


@dataclass(frozen=True, slots=True, repr=False)
class MailTarget:
    """Where one ticket's mail goes: the channel's `target` string, kept beside the ticket's
    token_hash only while the ticket lasts. `to` is normalised (valid_address); `page` is the
    ticket page's URL (it holds the token)."""

    to: str
    page: str

    def __post_init__(self) -> None:
        to = valid_address(self.to)
        if to is None:
            raise ValueError("mail target: 'to' is not a usable e-mail address")
        if not isinstance(self.page, str) or len(self.page) > MAX_PAGE or not _PAGE_RE.fullmatch(self.page):
            raise ValueError("mail target: 'page' is not an http(s) URL of printable ASCII")
        object.__setattr__(self, "to", to)

    def __repr__(self) -> str:
        return f"MailTarget(to={mask(self.to)!r}, page=<hidden>)"

    def encode(self) -> str:
        return json.dumps({"to": self.to, "page": self.page}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> MailTarget:
        """The target back; ValueError naming what is wrong (never quoting the address)."""
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            raise ValueError("mail target: not JSON") from None
        if not isinstance(value, dict):
            raise ValueError("mail target: not a JSON object")
        for key in ("to", "page"):
            if not isinstance(value.get(key), str):
                raise ValueError(f"mail target: no {key!r} string")
        if set(value) != {"to", "page"}:
            raise ValueError(f"mail target: unknown keys {sorted(set(value) - {'to', 'page'})}")
        return cls(value["to"], value["page"])


# The mail's words. `subject_*`: the Subject per kind; the rest are the body's lines.
_WORDS: dict[str, dict[str, str]] = {
    "ja": {
        "subject_near": "まもなく順番です（受付番号 {ticket}）",
        "subject_called": "{counter}へお越しください（受付番号 {ticket}）",
        "subject_no_show": "お呼びしましたがお見えになりませんでした（受付番号 {ticket}）",
        "office": "{office}　{service}",
        "ticket": "受付番号 {ticket}",
        "near": "まもなく順番です。待合スペースへお戻りください。",
        "ahead": "あなたの前に {ahead}人 お待ちです。",
        "ahead_one": "あなたの前に 1人 お待ちです。",
        "next": "次にお呼びします。",
        "minutes": "お呼びするまで約{minutes}分の見込みです。",
        "minutes_one": "お呼びするまで約1分の見込みです。",
        "soon": "まもなくお呼びする見込みです。",
        "called": "ただいまお呼びしています。{counter}へお越しください。",
        "no_show": "受付番号 {ticket} をお呼びしましたが、お見えになりませんでした。",
        "page": "番号券のページ（最新の状況）：\n{page}",
        "hint": "English: this mail is about your ticket {ticket}; the page above is also in English.",
        "footer": "このメールは送信専用です。番号券のページでメールでのお知らせをお選びいただいたためお送りしました。",
        "counter": "窓口",
    },
    "en": {
        "subject_near": "Your turn is near (ticket {ticket})",
        "subject_called": "Please go to {counter} now (ticket {ticket})",
        "subject_no_show": "You missed your call (ticket {ticket})",
        "office": "{office}, {service}",
        "ticket": "Ticket {ticket}",
        "near": "Your turn is near. Please come back to the waiting area.",
        "ahead": "{ahead} people are ahead of you.",
        "ahead_one": "1 person is ahead of you.",
        "next": "You are next.",
        "minutes": "About {minutes} minutes until you are called (an estimate).",
        "minutes_one": "About 1 minute until you are called (an estimate).",
        "soon": "You should be called any moment now.",
        "called": "Your number is being called now. Please go to {counter}.",
        "no_show": "Ticket {ticket} was called, but you were not at the counter.",
        "page": "Your ticket page (the latest status):\n{page}",
        "hint": "日本語：受付番号 {ticket} のお知らせです。上のページは日本語でもご覧いただけます。",
        "footer": "This address takes no replies. You get this mail because you chose mail alerts on your ticket page.",
        "counter": "the counter",
    },
}


def subject(notice: Notice) -> str:
    """The Subject line of `notice`'s mail, in its language (never the address)."""
    words = _WORDS[notice.lang]
    return words[f"subject_{notice.kind}"].format(ticket=notice.ticket, counter=notice.counter_name or words["counter"])


def body(notice: Notice, page: str) -> str:
    """The plain-text body of `notice`'s mail, in its language, with a one-line hint in the other."""
    words = _WORDS[notice.lang]
    counter = notice.counter_name or words["counter"]
    office = words["office"].format(office=notice.office_name, service=notice.service_name)
    lines = [office if notice.service_name else notice.office_name, words["ticket"].format(ticket=notice.ticket), ""]
    if notice.kind == "near":
        lines.append(words["near"])
        if notice.ahead is not None:
            key = "next" if notice.ahead <= 0 else "ahead_one" if notice.ahead == 1 else "ahead"
            lines.append(words[key].format(ahead=notice.ahead))
        if notice.minutes is not None:
            key = "soon" if notice.minutes <= 0 else "minutes_one" if notice.minutes == 1 else "minutes"
            lines.append(words[key].format(minutes=notice.minutes))
    elif notice.kind == "called":
        lines.append(words["called"].format(counter=counter))
    else:
        lines.append(words["no_show"].format(ticket=notice.ticket))
        lines.append(notice.rejoin or getattr(DEFAULT_REJOIN, notice.lang))
    lines += ["", words["page"].format(page=page), "", words["hint"].format(ticket=notice.ticket), "", "-- "]
    lines.append(words["footer"])
    return "\n".join(lines) + "\n"


def compose(notice: Notice, target: MailTarget, relay: MailRelay, *, now: datetime | None = None) -> EmailMessage:
    """The mail for `notice`: From the relay's sender (shown as the office), To the resident,
    a Subject and a UTF-8 plain-text body in the notice's language. Every header is ASCII on the
    wire (RFC 2047 encoded words for Japanese); the body is base64 when it is not ASCII, so no
    relay needs 8BITMIME."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(display_name=notice.office_name, addr_spec=relay.sender)
    # A plain string: the carriers' old addresses ("a..b.@docomo.ne.jp") are no valid Address.
    msg["To"] = target.to
    msg["Subject"] = subject(notice)
    msg["Date"] = format_datetime(now if now is not None else localtime())
    msg["Message-ID"] = make_msgid("alert", domain=relay.sender.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, no vacation notices
    msg["X-Auto-Response-Suppress"] = "All"  # the same, for Exchange
    text = body(notice, target.page)
    msg.set_content(text, charset="utf-8", cte=None if text.isascii() else "base64")
    msg["Content-Language"] = notice.lang  # after set_content, which clears the Content-* headers
    return msg


class MailRejected(Failed):
    """The relay refused this message for good (a 5xx that does not blame the address): the
    notice is given up, the subscription kept. The outbox counts it as given up."""


class MailChannel:
    """The mail `Channel`: `deliver(notice, target)` sends one mail through `relay`.

    `password_dir`: the folder `relay.password_file` is relative to (the config file's). The file
    is read at each connection (a rotated password is used at once); its first line is the
    password; like the broker's secret it is refused when others may read it. `ssl_context`:
    the CAs the relay's certificate is checked against (the system's by default; tests give
    their own). Nothing here is sent in the clear when `security` asks for TLS."""

    name = "mail"

    def __init__(
        self,
        relay: MailRelay,
        password_dir: Path,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT_S,
        local_hostname: str | None = None,
    ) -> None:
        if relay.security not in ("starttls", "tls", "none"):
            raise ValueError(f'alerts.mail.security: must be "starttls", "tls" or "none" (got {relay.security!r})')
        self.relay = relay
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.local_hostname = local_hostname or socket.getfqdn()  # once, not at every connection
        self.password_path: Path | None = None
        if relay.password_file is not None:
            path = Path(os.path.expanduser(relay.password_file))
            self.password_path = path if path.is_absolute() else password_dir / path

    def deliver(self, notice: Notice, target: str) -> None:
        where = f"office {notice.office} ticket {notice.ticket}"
        try:
            mail_target = MailTarget.decode(target)
        except ValueError as exc:
            _log.error("mail: %s: %s; the subscription is dropped", where, exc)
            raise Gone(str(exc)) from None
        message = compose(notice, mail_target, self.relay)
        password: str | None = None
        try:
            if self.relay.username is not None:
                password = self._password()
            self._send(message, mail_target.to, password)
        except Retry as exc:
            failure: Exception = exc
        except (smtplib.SMTPException, OSError, UnicodeError) as exc:
            failure = self._failure(exc, mail_target.to, password)
        else:
            _log.info("mail: %s: %s alert sent", where, notice.kind)
            return
        _log.info("mail: %s: %s alert not sent: %s", where, notice.kind, failure)
        raise failure from None  # from None: smtplib's exception may name the address

    def _password(self) -> str:
        path = self.password_path
        if path is None:
            raise Retry("alerts.mail: a username without password_file")
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise Retry(f"mail relay password file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise Retry(f"mail relay password file {path}: not UTF-8 text") from None
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            raise Retry(f"mail relay password file {path} may be read by others (mode {mode & 0o777:o}); chmod 600 it")
        line = text.splitlines()[0] if text else ""
        if not line:
            raise Retry(f"mail relay password file {path} is empty")
        return line

    def _send(self, message: EmailMessage, to: str, password: str | None) -> None:
        relay = self.relay
        smtp: smtplib.SMTP
        if relay.security == "tls":
            smtp = smtplib.SMTP_SSL(
                relay.host,
                relay.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self.ssl_context,
            )
        else:
            smtp = smtplib.SMTP(relay.host, relay.port, local_hostname=self.local_hostname, timeout=self.timeout)
        try:
            if relay.security == "starttls":
                smtp.starttls(context=self.ssl_context)  # SMTPNotSupportedError if not offered: never plain
            if relay.username is not None and password is not None:
                smtp.login(relay.username, password)
            refused = smtp.send_message(message, from_addr=relay.sender, to_addrs=[to])
        finally:
            # Not `with smtp`: its QUIT raises on an odd answer, and a mail the relay has taken
            # must not be retried (sent twice) for how the relay says goodbye.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()
        if refused:  # one recipient: smtplib raises when it is refused; this is a guard
            raise smtplib.SMTPRecipientsRefused(refused)

    def _failure(self, exc: BaseException, to: str, password: str | None) -> Exception:
        """What a failed delivery means: Retry (the relay or the login, fixable, bounded by the
        outbox's deadline), Gone (the relay says the address will not work) or MailRejected (the
        relay refused this message for good). The reason never holds the address or password."""
        relay = f"relay {self.relay.host}:{self.relay.port}"

        def reply(code: int, text: bytes | str) -> str:
            raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            return f"{code} {_scrub(raw, to, password)}".strip()

        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = next(iter(exc.recipients.values()), (0, b""))
            answer = f"{relay} refused the recipient {mask(to)}: {reply(code, text)}"
            if 500 <= code < 600:
                return MailRejected(answer) if _blames_relay(text) else Gone(answer)
            return Retry(answer)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return Retry(
                f"{relay} refused the login of {self.relay.username!r}: {reply(exc.smtp_code, exc.smtp_error)}"
            )
        if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
            stage = "the sender" if isinstance(exc, smtplib.SMTPSenderRefused) else "the message"
            answer = f"{relay} refused {stage}: {reply(exc.smtp_code, exc.smtp_error)}"
            return MailRejected(answer) if 500 <= exc.smtp_code < 600 else Retry(answer)
        if isinstance(exc, smtplib.SMTPNotSupportedError):  # no STARTTLS, no AUTH: never sent without
            return Retry(f"{relay}: {exc}")
        if isinstance(exc, smtplib.SMTPResponseException):  # greeting, EHLO, STARTTLS, AUTH …
            return Retry(f"{relay}: {reply(exc.smtp_code, exc.smtp_error)}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return Retry(f"{relay}: its certificate was not verified: {exc.verify_message}")
        if isinstance(exc, UnicodeError):
            return Retry(f"{relay}: the login cannot be sent (smtplib sends only ASCII user names and passwords)")
        return Retry(f"{relay}: {_scrub(str(exc) or type(exc).__name__, to, password)}")


def _blames_relay(text: bytes | str) -> bool:
    """A 5xx refusal of the recipient whose enhanced status code (RFC 3463) says the fault is not
    the address: X.3 mail system, X.5 protocol, X.6 content, X.7 security or policy ("relaying
    denied", "authentication required"). Without a code, the refusal is the address's."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    found = _ENHANCED_RE.match(raw)
    return found is not None and found.group(1) in (b"3", b"5", b"6", b"7")


def _scrub(text: str, address: str, password: str | None) -> str:
    """A relay's reply without the address (masked) or the password."""
    text = re.sub(re.escape(address), mask(address), text, flags=re.IGNORECASE)
    local = address.rpartition("@")[0]
    if len(local) >= 3:  # "User unknown: taro": the mailbox alone names the resident too
        text = re.sub(re.escape(local), local[:2] + "***", text, flags=re.IGNORECASE)
    if password:
        text = text.replace(password, "***")
    return text
