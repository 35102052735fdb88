"""Connecting to the MQTT broker: one place that turns a broker URL, the config's [broker] table
and a secret file into a configured paho-mqtt client (MQTT 3.1.1, TLS for mqtts://), for the
gateway, central and the tools alike.

Owns the client's settings only: what to publish and when is the caller's (gateway.mqtt_link,
central, `counterfloor office watch`). Secrets never come from the config's text or the command
line, only from a file given by path (`[broker] password_file`, `--broker-auth FILE`).
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from office.config import BrokerSettings
from office.mqtt import BrokerAddress, encode, parse_broker_url

KEEPALIVE_S = 15  # a dead gateway's last will goes out within 1.5× this


class BrokerConfigError(ValueError):
    """A broker setting that cannot work; the message names it. Nothing was connected."""


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """Where and how to connect: the address, TLS files, and the account."""

    address: BrokerAddress
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password: str | None = None


def read_secret_file(path: Path) -> tuple[str | None, str]:
    """A secret file: `password` alone, or `username:password`, on its first line. Refused when
    others may read it (as ssh refuses a private key that is): a secret must stay the account's."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BrokerConfigError(f"broker secret {path}: {exc.strerror or exc}") from None
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        mode = st.st_mode & 0o777
        raise BrokerConfigError(f"broker secret {path} may be read by others (mode {mode:o}); chmod 600 it")
    line = text.splitlines()[0] if text else ""
    if not line:
        raise BrokerConfigError(f"broker secret {path} is empty")
    user, sep, password = line.partition(":")
    return (user, password) if sep else (None, line)


def broker_login(
    settings: BrokerSettings,
    *,
    url: str | None = None,
    auth_file: Path | None = None,
    base: Path | None = None,
) -> BrokerLogin:
    """The login from the config's [broker] (paths relative to `base`, the config's directory),
    with `--broker URL` and `--broker-auth FILE` taking precedence."""
    given = url or settings.url
    if given is None:
        raise BrokerConfigError("no broker: give --broker mqtt://host:port or set [broker] url in the config")
    try:
        address = parse_broker_url(given)
    except ValueError as exc:
        raise BrokerConfigError(f"--broker: {exc}" if url else f"broker.url: {exc}") from None

    def path(value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() or base is None else base / p

    username, password = settings.username, None
    secret = auth_file or path(settings.password_file)
    if secret is not None:
        user_in_file, password = read_secret_file(secret)
        username = user_in_file or username
    for name, p in (("ca", path(settings.ca)), ("cert", path(settings.cert)), ("key", path(settings.key))):
        if p is not None and not p.is_file():
            raise BrokerConfigError(f"broker.{name}: no file {p}")
    if not address.tls and (settings.cert or settings.key):
        raise BrokerConfigError(f"broker: a client certificate needs mqtts://, not {address}")
    return BrokerLogin(address, path(settings.ca), path(settings.cert), path(settings.key), username, password)


def make_client(login: BrokerLogin, client_id: str, will: tuple[str, dict[str, object]] | None = None) -> paho.Client:
    """A paho client set up for `login` (not connected): MQTT 3.1.1, a persistent session off (a
    gateway republishes from its journal what the broker missed), TLS verified against `ca` (the
    system's CAs without one), the account, and the retained last will `will` (topic, payload)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=True)
    if login.address.tls:
        context = ssl.create_default_context(cafile=str(login.ca) if login.ca else None)
        if login.cert is not None:
            context.load_cert_chain(str(login.cert), str(login.key) if login.key else None)
        client.tls_set_context(context)
    if login.username is not None:
        client.username_pw_set(login.username, login.password)
    if will is not None:
        topic, payload = will
        client.will_set(topic, encode(payload), qos=1, retain=True)
    return client
