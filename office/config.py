"""The office configuration: what one counter floor offers, when, and at which counters.

Owns parsing and validating the TOML file into frozen dataclasses. Pure: callers read the file
(or pass text); every error names the file, the key and what is wrong.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from office.mqtt import broker_url_problem
from office.printer_models import (
    GENERIC_58,
    GENERIC_80,
    PrinterModel,
    escpos_model,
    head_problem,
    model_named,
    with_head,
)

MODES_OPEN = ("office", "evening", "saturday")
NO_SHOW_POLICIES = ("drop", "requeue_once")
DEVICE_KINDS = ("dispenser", "counter_pad", "call_display", "gpio_counter")
BUS_DEVICE_KINDS = ("dispenser", "counter_pad", "call_display")  # the kinds with a bus address and port
# A gpio_counter's keys, lamps and pin factories: copies of hal.gpio's KEY_NAMES, lamp colours and
# PIN_FACTORIES (office must not import hal; tests/test_gpio_gateway.py checks they stay equal).
GPIO_KEY_NAMES = ("call_next", "done", "recall", "no_show", "pause")
GPIO_LAMP_COLOURS = ("green", "amber", "red")
GPIO_PIN_FACTORIES = ("mock", "lgpio", "rpigpio", "pigpio", "native")
GPIO_PIN_MAX = 27  # BCM 0-27: the Pi's 40-pin header
DEVICE_ADDR_MIN, DEVICE_ADDR_MAX = 1, 16  # the bus protocol's addresses (docs/protocol.md)
DEVICE_MAX_SERVICES = 16  # LAMPS is a 16-bit mask: a button or transfer index is 0..15
PRINTER_PROFILES = ("raster", "kanji")  # raster first: the default, it works on any ESC/POS printer
PRINTER_WIDTHS = {58: 384, 80: 576}  # paper width in mm → printable dots at 203 dpi
SIGN_KINDS = ("board", "led")  # a waiting-room screen, an LED matrix call display (docs/signage.md)
BOARD_SIZES = ((1920, 1080), (1080, 1920))
LED_MAX = (512, 256)  # the largest LED matrix a Pi drives directly, in pixels
# Matched whole (fullmatch): "$" would also accept a trailing newline.
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# office.id names MQTT topics and files: no "_" (kept for other ids), and no leading "-", which
# a shell or a command line would read as an option.
_OFFICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# [0-9], not \d: \d also matches other scripts' digits (٣, ３), which int() and fromisoformat
# then read or refuse with a ValueError that is not a ConfigError.
_TIME_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
TYPICAL_MINUTES_MAX = 240
# gateway.clock: "ntp" (a business day opens once NTP synchronised the clock, or staff confirmed
# it) or "rtc" (a battery RTC keeps the clock: trusted from boot). gateway.clock_sync decides.
CLOCK_SOURCES = ("ntp", "rtc")
# gateway.socket_mode: permission bits as octal digits ("0660", "660"); no setuid/setgid/sticky.
_SOCKET_MODE_RE = re.compile(r"0?[0-7]{3}")
# gateway.socket_group: a group name of POSIX-portable characters, at most 32 (a final "$" as groupadd allows).
_BROKER_USER_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# An address as a relay takes it: one @, no spaces or angle brackets, a dot in the domain.
_MAIL_ADDRESS_RE = re.compile(r"[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]+\.[^@\s<>,;\".]{2,}")
_GROUP_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names file, key and problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        # A key is the file's own text (an unknown key's name): escaped so that the error stays
        # one line, whatever the file holds (a quoted key "\r" once split it in two).
        key = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in key)
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


@dataclass(frozen=True, slots=True)
class Text:
    """A bilingual label: Japanese first, English beneath."""

    ja: str
    en: str


@dataclass(frozen=True, slots=True)
class Hours:
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Shift:
    """A planned staffing window of a counter; end None means 'until the queue is empty'."""

    periods: tuple[str, ...]
    start: time
    end: time | None


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    prefix: str
    name: Text
    first_number: int
    last_number: int
    periods: tuple[str, ...]
    typical_minutes: float

    @property
    def number_width(self) -> int:
        return len(str(self.last_number))

    def ticket_id(self, number: int) -> str:
        return f"{self.prefix}-{number:0{self.number_width}d}"


@dataclass(frozen=True, slots=True)
class Counter:
    id: str
    name: Text
    services: tuple[str, ...]
    shifts: tuple[Shift, ...]


@dataclass(frozen=True, slots=True)
class CalendarException:
    """A dated change to the usual week: a closure, or an opening on a day that is usually shut."""

    dates: tuple[date, ...]
    closed: bool
    mode: str | None
    hours: Hours | None
    reason: Text | None


@dataclass(frozen=True, slots=True)
class Rules:
    recall_limit: int = 2
    no_show: str = "requeue_once"
    retention_days: int = 400
    year_end_closure: bool = True
    public_holidays: str = "jp"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How the gateway runs this office ([gateway]); paths are as written in the file.

    `journal`: relative to the config file's directory. `socket`: relative to the journal's
    directory (default `<journal>.sock`). `port`: the shared bus's serial URL. `cycle_ms`: the
    shortest bus cycle (a poll of every device). `reply_timeout_ms`: None for the protocol's.
    `socket_mode`, `socket_group`: the control socket's permission bits and group name (None: the
    gateway process's own group); the group is looked up by the gateway when it starts, not here
    (a journal's stored config is parsed on machines that may not have that group). `clock`:
    what makes the wall clock trustworthy enough to open a business day on (gateway.clock_sync):
    "ntp" its synchronisation (or staff's confirmation), "rtc" a battery RTC board."""

    journal: str | None = None
    socket: str | None = None
    port: str | None = None
    cycle_ms: int = 50
    reply_timeout_ms: float | None = None
    pin_factory: str = "lgpio"  # gpiozero's pin factory for gpio_counter devices (hal.gpio.PIN_FACTORIES)
    socket_mode: int = 0o660  # whoever may open the socket may command the floor: owner and group
    socket_group: str | None = None
    clock: str = "ntp"


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """The MQTT broker the gateway publishes to ([broker]; docs/mqtt.md). No secret lives here:
    a config's text is stored in the journal and pushed over MQTT, so the password is only the
    path of a file that holds it. `url`: mqtt://host[:port] or mqtts://host[:port] (None: the
    gateway does not publish); `ca`, `cert`, `key`: PEM paths for TLS (a client certificate is
    optional); paths as written in the file."""

    url: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    username: str | None = None
    password_file: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    """A device on a bus ([[devices]]). `services`: a dispenser's buttons (or a pad's transfer
    keys) in order; `counter`: the counter a pad belongs to; `port`: its serial URL (the
    [gateway] port unless it has its own line).

    A `gpio_counter` is wired to the Pi's GPIO, not on a bus: its addr is 0 and its port "" (see
    `on_bus`); `keys` (key name -> BCM pin), `lamps` (colour -> BCM pin) and `buzzer` are its pins."""

    kind: str
    addr: int
    port: str
    services: tuple[str, ...] = ()
    counter: str | None = None
    printer: str | None = None  # a dispenser's ticket printer ([[printers]] id)
    keys: tuple[tuple[str, int], ...] = ()
    lamps: tuple[tuple[str, int], ...] = ()
    buzzer: int | None = None

    @property
    def on_bus(self) -> bool:
        return self.kind in BUS_DEVICE_KINDS


@dataclass(frozen=True, slots=True)
class Sign:
    """A screen the gateway draws ([[signs]]): a waiting-room `board` (1920x1080 or 1080x1920) or
    an `led` matrix call display (monochrome, its pixel size). `output`: where frames go — a
    framebuffer device such as /dev/fb0, or a .png file; None: not drawn by this gateway."""

    id: str
    kind: str
    width: int
    height: int
    output: str | None = None


@dataclass(frozen=True, slots=True)
class PrinterProfile:
    """A ticket printer ([[printers]]). `profile`: "raster" (the whole ticket as an image, any
    ESC/POS printer) or "kanji" (native Kanji text and QR); `native_qr`: a kanji printer draws the
    QR code itself (default), always False on raster, which draws everything; `port`: its serial
    URL, interpreted by hal's printer transport."""

    id: str
    profile: str = "raster"
    width_mm: int = 80
    cutter: bool = True
    native_qr: bool = True
    port: str = "sim://printer"
    model: str = ""  # office/printer_models.py's name; "" = the generic printer of width_mm
    dots: int | None = None  # the head's dots across, for a printer the table lacks (else the model's)
    dpi: int | None = None  # its resolution, likewise

    def __post_init__(self) -> None:
        if self.profile not in PRINTER_PROFILES:
            raise ValueError(f"unknown printer profile {self.profile!r}; profiles are {list(PRINTER_PROFILES)}")
        if self.width_mm not in PRINTER_WIDTHS:
            raise ValueError(f"paper width must be one of {list(PRINTER_WIDTHS)} mm (got {self.width_mm!r})")
        if self.profile != "kanji":
            object.__setattr__(self, "native_qr", False)  # frozen: normalised once, here
        if problem := printer_problem(self.model, self.width_mm, self.profile, self.dots, self.dpi):
            raise ValueError(problem[1])

    @property
    def printer_model(self) -> PrinterModel:
        """The model whose head, font and commands this printer's jobs follow, with the `dots`
        and `dpi` overrides applied."""
        known = model_named(self.model) if self.model else GENERIC_80 if self.width_mm == 80 else GENERIC_58
        return with_head(known, self.dots, self.dpi)

    @property
    def width_dots(self) -> int:
        return self.printer_model.dots


def printer_problem(
    model: str, width_mm: int, profile: str, dots: int | None = None, dpi: int | None = None
) -> tuple[str, str] | None:
    """(the `[[printers]]` key at fault, why) when a printer's model, paper, head and profile
    disagree, else None. Raises ValueError for a model that is unknown or not ESC/POS."""
    known = escpos_model(model) if model else GENERIC_80 if width_mm == 80 else GENERIC_58
    if known.paper_mm != width_mm:
        return "width_mm", f"{known.title} takes {known.paper_mm} mm paper, not {width_mm} mm"
    head = with_head(known, dots, dpi)
    if (dots, dpi) != (None, None) and (problem := head_problem(width_mm, head.dots, head.dpi)):
        return ("dpi" if problem.startswith("dpi") else "dots"), problem
    if profile == "kanji" and not head.kanji:
        return "profile", f'{head.title} has no Kanji font here: use profile = "raster"'
    return None


@dataclass(frozen=True, slots=True)
class CalloutSettings:
    """The spoken call-out ([callout], docs/callout.md). `voice_dir`: the segment WAVs, relative
    to the config file's directory (None: the default voice shipped in signage/voice);
    `player`: a command the WAV path is appended to (e.g. "aplay -q -D plughw:1"), or "none" to
    only write WAV files into `out_dir` (relative to the journal's directory; None: <journal>.callout)."""

    enabled: bool = False
    voice_dir: str | None = None
    languages: tuple[str, ...] = ("ja", "en")
    player: str = "none"
    out_dir: str | None = None


@dataclass(frozen=True, slots=True)
class MailRelay:
    """The SMTP relay central sends the residents' alert e-mails through ([alerts.mail],
    docs/alerts.md). `security`: "starttls" (submission, port 587), "tls" (implicit TLS, 465) or
    "none" (a relay that takes plain SMTP on the office's own network). `password_file`: relative
    to the config file's directory; no password lives in the config (it is journaled and sent
    over MQTT)."""

    host: str
    sender: str  # the From address
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password_file: str | None = None


DEFAULT_REJOIN = Text(
    ja="30分以内にフロア案内係へお申し出ください。",
    en="Please see the floor manager within 30 minutes.",
)


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The residents' alerts ([alerts], docs/alerts.md): what a resident may choose on the ticket
    page, the defaults it starts at, what a no-show is told to do, and the channels offered
    besides the page itself (Web Push; e-mail only with a relay)."""

    ahead: int = 3  # "N people ahead": the default N
    ahead_range: tuple[int, int] = (1, 10)
    minutes: int = 10  # "about M minutes before": the default M
    minutes_range: tuple[int, int] = (5, 30)
    rejoin: Text = DEFAULT_REJOIN  # the office's rule for a no-show
    push: bool = True
    mail: MailRelay | None = None  # None: e-mail is not offered


@dataclass(frozen=True, slots=True)
class OfficeConfig:
    id: str
    name: Text
    timezone: str
    public_base_url: str
    weekday: Hours
    evening: Hours | None
    saturday: Hours | None
    exceptions: tuple[CalendarException, ...]
    rules: Rules
    services: tuple[Service, ...]
    counters: tuple[Counter, ...]
    source: str = "<config>"
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    devices: tuple[Device, ...] = ()
    printers: tuple[PrinterProfile, ...] = ()
    signs: tuple[Sign, ...] = ()
    callout: CalloutSettings = field(default_factory=CalloutSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def service(self, service_id: str) -> Service:
        for s in self.services:
            if s.id == service_id:
                return s
        raise KeyError(service_id)

    def counter(self, counter_id: str) -> Counter:
        for c in self.counters:
            if c.id == counter_id:
                return c
        raise KeyError(counter_id)

    def printer(self, printer_id: str) -> PrinterProfile:
        for p in self.printers:
            if p.id == printer_id:
                return p
        raise KeyError(printer_id)

    def hours_for(self, mode: str) -> Hours | None:
        return {"office": self.weekday, "evening": self.evening, "saturday": self.saturday}[mode]


_SQLITE_MAGIC = b"SQLite format 3\x00"
_TOML_KINDS = {"int": "an integer", "float": "a float", "bool": "a boolean", "list": "an array", "dict": "a table"}


def _key_path(prefix: str, key: str) -> str:
    """`prefix.key` as an error names it; a key that is not a bare TOML key is quoted, as TOML
    writes it (ConfigError escapes what is not printable)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        key = json.dumps(key, ensure_ascii=False)
    return f"{prefix}.{key}" if prefix else key


def read_config_text(path: str | Path) -> str:
    """The text of the config file at `path`; ConfigError naming the problem if it has none."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(p), "(file)", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(str(p), "(file)", "is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(str(p), "(file)", f"cannot be read: {exc.strerror or exc}") from None
    if data.startswith(_SQLITE_MAGIC):  # the commonest mix-up: --config given the journal
        raise ConfigError(str(p), "(file)", "is an SQLite database (a journal?), not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"cannot be read as UTF-8 text (byte {exc.start}); save it as UTF-8"
        raise ConfigError(str(p), "(file)", problem) from None


def load_config(path: str | Path) -> OfficeConfig:
    return parse_config(read_config_text(path), source=str(Path(path)))


def parse_config(text: str, source: str = "<config>") -> OfficeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", f"not valid TOML: {exc}") from None
    return _Parser(source).office(data)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    # -- primitives ------------------------------------------------------------------------
    def known(self, table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        """A key this version does not know is a typo or a setting that would be ignored."""
        for k in table:
            if k not in allowed:
                where = _key_path(prefix, k)
                raise self.fail(where, f"unknown setting; known: {sorted(allowed)}")

    def table(self, data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
        value = data.get(name)
        if not isinstance(value, dict):
            raise self.fail(key, "missing table" if value is None else "must be a table")
        return value

    def string(self, data: Mapping[str, Any], key: str, name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "missing" if value is None else "must be a non-empty string")
        return value

    def ident(self, data: Mapping[str, Any], key: str, name: str) -> str:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # counters are often numbered: id = 5
        if not isinstance(value, str) or not _ID_RE.fullmatch(value):
            raise self.fail(key, f"must be an id of 1-32 lowercase letters, digits, '-' or '_' (got {value!r})")
        return value

    def office_id(self, office: Mapping[str, Any]) -> str:
        """office.id: a string, never a number read as one (id = 1_0 would name topics and files
        "10", which nobody wrote); 1-32 of a-z 0-9 '-', not starting with '-'."""
        value = office.get("id")
        rule = "an id of 1-32 lowercase letters, digits or '-' (not first)"
        if value is None:
            raise self.fail("office.id", f"missing: must be {rule}")
        if not isinstance(value, str):
            kind = _TOML_KINDS.get(type(value).__name__, "a date or time")
            raise self.fail("office.id", f"must be {rule}, as a string in quotes (got {kind}: {value!r})")
        if not _OFFICE_ID_RE.fullmatch(value):
            raise self.fail("office.id", f"must be {rule} (got {value!r})")
        return value

    def text(self, data: Mapping[str, Any], key: str, name: str) -> Text:
        value = data.get(name)
        if not isinstance(value, dict):
            raise self.fail(key, "missing" if value is None else "must be a table { ja = …, en = … }")
        self.known(value, key, {"ja", "en"})
        return Text(ja=self.string(value, f"{key}.ja", "ja"), en=self.string(value, f"{key}.en", "en"))

    def clock(self, value: Any, key: str) -> time:
        if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
            raise self.fail(key, f"must be a time 'HH:MM' (got {value!r})")
        return time.fromisoformat(value)

    def hours(self, value: Any, key: str) -> Hours:
        if not isinstance(value, dict):
            raise self.fail(key, 'must be a table { from = "HH:MM", to = "HH:MM" }')
        self.known(value, key, {"from", "to"})
        start = self.clock(value.get("from"), f"{key}.from")
        end = self.clock(value.get("to"), f"{key}.to")
        if end <= start:
            raise self.fail(key, f"closes ({end:%H:%M}) before it opens ({start:%H:%M})")
        return Hours(start, end)

    def positive_int(self, data: Mapping[str, Any], key: str, name: str, default: int) -> int:
        value = data.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(key, f"must be a whole number ≥ 1 (got {value!r})")
        return value

    def modes(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty list of modes from {list(MODES_OPEN)}")
        for m in value:
            if m not in MODES_OPEN:
                raise self.fail(key, f"unknown mode {m!r}; modes are {list(MODES_OPEN)}")
        return tuple(value)

    # -- sections ------------------------------------------------------------------------
    def office(self, data: Mapping[str, Any]) -> OfficeConfig:
        office = self.table(data, "office", "office")
        self.known(office, "office", {"id", "name", "timezone", "public_base_url"})
        office_id = self.office_id(office)
        name = self.text(office, "office.name", "name")
        tz = self.string(office, "office.timezone", "timezone")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a key naming a directory of the tz database, such as "Asia"
            raise self.fail("office.timezone", f"unknown time zone {tz!r}") from None
        url = self.string(office, "office.public_base_url", "public_base_url")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise self.fail("office.public_base_url", f"must be an http(s) URL without spaces (got {url!r})")

        hours = self.table(data, "hours", "hours")
        self.known(hours, "hours", {"weekday", "evening", "saturday"})
        weekday = self.hours(hours.get("weekday"), "hours.weekday")
        evening = self.hours(hours["evening"], "hours.evening") if "evening" in hours else None
        if evening is not None and evening.start < weekday.end:
            raise self.fail("hours.evening", "must start when or after weekday hours end")
        saturday = self.hours(hours["saturday"], "hours.saturday") if "saturday" in hours else None
        rules = self.rules(data.get("rules", {}))
        exceptions = self.exceptions(data.get("calendar", {}))

        services = self.services(data.get("services"))
        counters = self.counters(data.get("counters"), {s.id for s in services})
        configured = {
            "office": True,
            "evening": evening is not None,
            "saturday": saturday is not None,
        }
        for i, s in enumerate(services):
            for m in s.periods:
                if not configured[m] and not any(e.mode == m for e in exceptions):
                    raise self.fail(f"services[{i}].periods", f"offered in {m!r} but hours.{m} is not set")
        gateway = self.gateway(data.get("gateway", {}))
        printers = self.printers(data.get("printers", []))
        signs = self.signs(data.get("signs", []))
        devices = self.devices(data.get("devices", []), gateway, services, counters, printers)
        callout = self.callout(data.get("callout", {}))
        broker = self.broker(data.get("broker", {}))
        alerts = self.alerts(data.get("alerts", {}))
        # Last: a missing required table is reported as missing, not its misspelling as unknown.
        self.known(
            data,
            "",
            {"office", "hours", "rules", "calendar", "services", "counters"}
            | {"gateway", "devices", "printers", "callout", "signs", "broker", "alerts"},
        )
        return OfficeConfig(
            id=office_id,
            name=name,
            timezone=tz,
            public_base_url=url.rstrip("/"),
            weekday=weekday,
            evening=evening,
            saturday=saturday,
            exceptions=exceptions,
            rules=rules,
            services=services,
            counters=counters,
            source=self.source,
            raw=data,
            gateway=gateway,
            devices=devices,
            printers=printers,
            callout=callout,
            signs=signs,
            broker=broker,
            alerts=alerts,
        )

    def alerts(self, value: Any) -> AlertSettings:
        if not isinstance(value, dict):
            raise self.fail("alerts", "must be a table")
        self.known(value, "alerts", {"ahead", "ahead_range", "minutes", "minutes_range", "rejoin", "push", "mail"})
        figures: dict[str, tuple[int, tuple[int, int]]] = {}
        defaults = AlertSettings()
        for name, limit in (("ahead", 50), ("minutes", 120)):
            span_key = f"{name}_range"
            default = getattr(defaults, name)
            span = value.get(span_key, list(getattr(defaults, span_key)))
            if (
                not isinstance(span, list)
                or len(span) != 2
                or not all(type(x) is int for x in span)
                or not 1 <= span[0] <= span[1] <= limit
            ):
                raise self.fail(f"alerts.{span_key}", f"must be [least, most], whole numbers 1-{limit} (got {span!r})")
            # Unset, the default is kept inside the office's range.
            chosen = value.get(name, min(max(default, span[0]), span[1]))
            if type(chosen) is not int or not span[0] <= chosen <= span[1]:
                raise self.fail(f"alerts.{name}", f"must be a whole number in {span_key} {span} (got {chosen!r})")
            figures[name] = chosen, (span[0], span[1])
        push = value.get("push", True)
        if not isinstance(push, bool):
            raise self.fail("alerts.push", "must be true or false")
        rejoin = self.text(value, "alerts.rejoin", "rejoin") if "rejoin" in value else DEFAULT_REJOIN
        mail = self.mail_relay(value["mail"]) if "mail" in value else None
        return AlertSettings(
            ahead=figures["ahead"][0],
            ahead_range=figures["ahead"][1],
            minutes=figures["minutes"][0],
            minutes_range=figures["minutes"][1],
            rejoin=rejoin,
            push=push,
            mail=mail,
        )

    def login_table(self, value: Any, key: str, allowed: set[str]) -> None:
        """A table that logs in somewhere: its password only by path (password_file)."""
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        if "password" in value:
            raise self.fail(
                f"{key}.password",
                "no secret may live in the config (it is stored in the journal and sent over MQTT): "
                "give password_file, the path of a file holding it",
            )
        self.known(value, key, allowed)

    def mail_relay(self, value: Any) -> MailRelay:
        self.login_table(value, "alerts.mail", {"host", "port", "security", "from", "username", "password_file"})
        host = self.string(value, "alerts.mail.host", "host")
        sender = self.string(value, "alerts.mail.from", "from")
        if not _MAIL_ADDRESS_RE.fullmatch(sender):
            raise self.fail("alerts.mail.from", f"must be an e-mail address (got {sender!r})")
        security = value.get("security", "starttls")
        if security not in ("starttls", "tls", "none"):
            raise self.fail("alerts.mail.security", f'must be "starttls", "tls" or "none" (got {security!r})')
        port = value.get("port", 465 if security == "tls" else 587)
        if type(port) is not int or not 1 <= port <= 65535:
            raise self.fail("alerts.mail.port", f"must be a TCP port 1-65535 (got {port!r})")
        text = {k: self.string(value, f"alerts.mail.{k}", k) for k in ("username", "password_file") if k in value}
        if ("username" in text) != ("password_file" in text):
            raise self.fail("alerts.mail.password_file", "a relay login needs both username and password_file")
        return MailRelay(
            host=host,
            sender=sender,
            port=port,
            security=security,
            username=text.get("username"),
            password_file=text.get("password_file"),
        )

    def broker(self, value: Any) -> BrokerSettings:
        self.login_table(value, "broker", {"url", "ca", "cert", "key", "username", "password_file"})
        text = {k: self.string(value, f"broker.{k}", k) for k in value}
        url = text.get("url")
        if url is not None and (problem := broker_url_problem(url)):
            raise self.fail("broker.url", problem)
        user = text.get("username")
        if user is not None and not _BROKER_USER_RE.fullmatch(user):
            raise self.fail("broker.username", f"must be 1-64 letters, digits and ._- (got {user!r})")
        if ("cert" in text) != ("key" in text):
            missing = "broker.cert" if "key" in text else "broker.key"
            raise self.fail(missing, "a client certificate needs both cert and key")
        return BrokerSettings(
            url=url,
            ca=text.get("ca"),
            cert=text.get("cert"),
            key=text.get("key"),
            username=user,
            password_file=text.get("password_file"),
        )

    def callout(self, value: Any) -> CalloutSettings:
        if not isinstance(value, dict):
            raise self.fail("callout", "must be a table")
        self.known(value, "callout", {"enabled", "voice_dir", "languages", "player", "out_dir"})
        enabled = value.get("enabled", False)
        if not isinstance(enabled, bool):
            raise self.fail("callout.enabled", "must be true or false")
        languages = value.get("languages", ["ja", "en"])
        if (
            not isinstance(languages, list)
            or not languages
            or any(lang not in ("ja", "en") for lang in languages)
            or len(set(languages)) != len(languages)
        ):
            raise self.fail("callout.languages", f'must list "ja" and/or "en", each once (got {languages!r})')
        paths = {k: self.string(value, f"callout.{k}", k) if k in value else None for k in ("voice_dir", "out_dir")}
        player = self.string(value, "callout.player", "player") if "player" in value else "none"
        try:
            shlex.split(player)
        except ValueError as exc:
            raise self.fail("callout.player", f"not a command line: {exc}") from None
        return CalloutSettings(enabled, paths["voice_dir"], tuple(languages), player.strip(), paths["out_dir"])

    def printers(self, value: Any) -> tuple[PrinterProfile, ...]:
        if not isinstance(value, list):
            raise self.fail("printers", "must be an array of tables [[printers]]")
        out: list[PrinterProfile] = []
        for i, item in enumerate(value):
            key = f"printers[{i}]"
            if not isinstance(item, dict):
                raise self.fail(key, "must be a table")
            self.known(item, key, {"id", "profile", "width_mm", "cutter", "native_qr", "port", "model", "dots", "dpi"})
            pid = self.ident(item, f"{key}.id", "id")
            if any(p.id == pid for p in out):
                raise self.fail(f"{key}.id", f"duplicate printer id {pid!r}")
            profile = item.get("profile", "raster")
            if profile not in PRINTER_PROFILES:
                raise self.fail(
                    f"{key}.profile", f"unknown printer profile {profile!r}; profiles are {list(PRINTER_PROFILES)}"
                )
            model = self.printer_model_name(item, key)
            # a named model knows its paper; width_mm may repeat it
            width = item.get("width_mm", model_named(model).paper_mm if model else 80)
            if not isinstance(width, int) or isinstance(width, bool) or width not in PRINTER_WIDTHS:
                raise self.fail(
                    f"{key}.width_mm", f"must be a paper width of {list(PRINTER_WIDTHS)} mm (got {width!r})"
                )
            head = {name: self.head_figure(item, key, name) for name in ("dots", "dpi")}
            if problem := printer_problem(model, width, profile, head["dots"], head["dpi"]):
                raise self.fail(f"{key}.{problem[0]}", problem[1])
            flags: dict[str, bool] = {}
            for flag in ("cutter", "native_qr"):
                v = item.get(flag, True)
                if not isinstance(v, bool):
                    raise self.fail(f"{key}.{flag}", "must be true or false")
                flags[flag] = v
            if profile != "kanji" and "native_qr" in item:
                raise self.fail(f"{key}.native_qr", "only a kanji printer draws QR codes natively; remove native_qr")
            out.append(
                PrinterProfile(
                    id=pid,
                    profile=profile,
                    width_mm=width,
                    cutter=flags["cutter"],
                    native_qr=profile == "kanji" and flags["native_qr"],
                    port=self.string(item, f"{key}.port", "port"),
                    model=model,
                    dots=head["dots"],
                    dpi=head["dpi"],
                )
            )
        return tuple(out)

    def printer_model_name(self, item: dict[str, Any], key: str) -> str:
        """`model`: a known ESC/POS model's name, or "" for the generic printer of the paper."""
        model = item.get("model", "")
        if not isinstance(model, str):
            raise self.fail(f"{key}.model", f"must be a model name (got {model!r})")
        if not model:
            return ""
        try:
            return escpos_model(model).name
        except ValueError as exc:
            raise self.fail(f"{key}.model", str(exc)) from None

    def head_figure(self, item: dict[str, Any], key: str, name: str) -> int | None:
        """`dots` or `dpi`: a whole number, checked against the paper with the other one later."""
        value = item.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise self.fail(f"{key}.{name}", f"must be a whole number (got {value!r})")
        return value

    def signs(self, value: Any) -> tuple[Sign, ...]:
        if not isinstance(value, list):
            raise self.fail("signs", "must be an array of tables [[signs]]")
        out: list[Sign] = []
        for i, item in enumerate(value):
            key = f"signs[{i}]"
            if not isinstance(item, dict):
                raise self.fail(key, "must be a table")
            self.known(item, key, {"id", "kind", "size", "output"})
            sid = self.ident(item, f"{key}.id", "id")
            if any(s.id == sid for s in out):
                raise self.fail(f"{key}.id", f"duplicate sign id {sid!r}")
            kind = item.get("kind")
            if kind not in SIGN_KINDS:
                raise self.fail(f"{key}.kind", f"unknown kind {kind!r}; kinds are {list(SIGN_KINDS)}")
            raw = item.get("size", "1920x1080" if kind == "board" else None)
            # ASCII digits, at most 5: int() refuses 4,301 digits with a plain ValueError.
            m = re.fullmatch(r"([0-9]{1,5})x([0-9]{1,5})", raw) if isinstance(raw, str) else None
            size = (int(m.group(1)), int(m.group(2))) if m else None
            if kind == "board" and size not in BOARD_SIZES:
                raise self.fail(f"{key}.size", f'a board is "1920x1080" or "1080x1920" (got {raw!r})')
            if kind == "led" and (size is None or not (8 <= size[0] <= LED_MAX[0] and 8 <= size[1] <= LED_MAX[1])):
                raise self.fail(
                    f"{key}.size", f'an LED matrix\'s pixels "WxH", at most {LED_MAX[0]}x{LED_MAX[1]} (got {raw!r})'
                )
            assert size is not None
            output = self.string(item, f"{key}.output", "output") if "output" in item else None
            out.append(Sign(id=sid, kind=kind, width=size[0], height=size[1], output=output))
        return tuple(out)

    def gateway(self, value: Any) -> GatewaySettings:
        if not isinstance(value, dict):
            raise self.fail("gateway", "must be a table")
        known = {"journal", "socket", "port", "cycle_ms", "reply_timeout_ms", "pin_factory"}
        known |= {"socket_mode", "socket_group", "clock"}
        for k in value:
            if k not in known:
                raise self.fail(f"gateway.{k}", f"unknown setting; known: {sorted(known)}")
        paths = {k: self.string(value, f"gateway.{k}", k) for k in ("journal", "socket", "port") if k in value}
        cycle = value.get("cycle_ms", 50)
        if not isinstance(cycle, int) or isinstance(cycle, bool) or not 0 <= cycle <= 10_000:
            raise self.fail("gateway.cycle_ms", f"must be whole milliseconds from 0 to 10000 (got {cycle!r})")
        reply = value.get("reply_timeout_ms")
        if reply is not None and (
            not isinstance(reply, int | float) or isinstance(reply, bool) or not 0 < reply <= 1000
        ):
            raise self.fail("gateway.reply_timeout_ms", f"must be milliseconds above 0, at most 1000 (got {reply!r})")
        factory = value.get("pin_factory", "lgpio")
        if factory not in GPIO_PIN_FACTORIES:
            choices = list(GPIO_PIN_FACTORIES)
            raise self.fail("gateway.pin_factory", f"unknown pin factory {factory!r}; one of {choices}")
        mode = value.get("socket_mode", "0660")
        if not isinstance(mode, str) or not _SOCKET_MODE_RE.fullmatch(mode):
            # A TOML number is refused too: 660 would be read as decimal, not the bits meant.
            raise self.fail("gateway.socket_mode", f'must be octal mode bits in quotes, like "0660" (got {mode!r})')
        group = value.get("socket_group")
        if group is not None and (not isinstance(group, str) or not _GROUP_RE.fullmatch(group)):
            raise self.fail("gateway.socket_group", f'must be a group name, like "counterfloor" (got {group!r})')
        clock = value.get("clock", "ntp")
        if clock not in CLOCK_SOURCES:
            raise self.fail("gateway.clock", f"must be one of {list(CLOCK_SOURCES)} (got {clock!r})")
        return GatewaySettings(
            journal=paths.get("journal"),
            socket=paths.get("socket"),
            port=paths.get("port"),
            cycle_ms=cycle,
            reply_timeout_ms=None if reply is None else float(reply),
            pin_factory=factory,
            socket_mode=int(mode, 8),
            socket_group=group,
            clock=clock,
        )

    def devices(
        self,
        value: Any,
        gateway: GatewaySettings,
        services: tuple[Service, ...],
        counters: tuple[Counter, ...],
        printers: tuple[PrinterProfile, ...] = (),
    ) -> tuple[Device, ...]:
        if not isinstance(value, list):
            raise self.fail("devices", "must be an array of tables [[devices]]")
        service_ids = [s.id for s in services]
        counter_ids = [c.id for c in counters]
        known = {"kind", "addr", "port", "services", "counter", "printer"}
        printer_ids = [p.id for p in printers]
        out: list[Device] = []
        seen: dict[tuple[str, int], int] = {}
        pins: dict[int, str] = {}  # BCM pin -> the key that uses it, across every gpio_counter
        for i, item in enumerate(value):
            key = f"devices[{i}]"
            if not isinstance(item, dict):
                raise self.fail(key, "must be a table")
            kind = item.get("kind")
            if kind == "gpio_counter":
                out.append(self.gpio_counter(item, key, counter_ids, pins))
                continue
            for k in item:
                if k not in known:
                    raise self.fail(_key_path(key, k), f"unknown setting; known: {sorted(known)}")
            if kind not in DEVICE_KINDS:
                raise self.fail(f"{key}.kind", f"unknown kind {kind!r}; kinds are {list(DEVICE_KINDS)}")
            addr = item.get("addr")
            if not isinstance(addr, int) or isinstance(addr, bool) or not DEVICE_ADDR_MIN <= addr <= DEVICE_ADDR_MAX:
                raise self.fail(
                    f"{key}.addr", f"must be a bus address {DEVICE_ADDR_MIN}-{DEVICE_ADDR_MAX} (got {addr!r})"
                )
            port = self.string(item, f"{key}.port", "port") if "port" in item else gateway.port
            if port is None:
                raise self.fail(f"{key}.port", "no serial port: set port here or gateway.port for the shared bus")
            if (port, addr) in seen:
                raise self.fail(
                    f"{key}.addr", f"duplicate address {addr} on {port!r} (devices[{seen[port, addr]}] has it)"
                )
            seen[port, addr] = i
            device_services: tuple[str, ...] = ()
            if "services" in item:
                if kind == "call_display":
                    raise self.fail(f"{key}.services", "a call_display has no buttons; remove services")
                raw = item["services"]
                if not isinstance(raw, list) or not raw:
                    raise self.fail(f"{key}.services", "must be a non-empty list of service ids")
                for s in raw:
                    if not isinstance(s, str) or s not in service_ids:
                        raise self.fail(f"{key}.services", f"unknown service {s!r}; services are {sorted(service_ids)}")
                if len(raw) > DEVICE_MAX_SERVICES:
                    raise self.fail(f"{key}.services", f"at most {DEVICE_MAX_SERVICES} services (got {len(raw)})")
                if len(set(raw)) != len(raw):
                    raise self.fail(f"{key}.services", "lists a service twice")
                device_services = tuple(raw)
            elif kind == "dispenser":
                raise self.fail(f"{key}.services", "a dispenser needs the services its buttons issue, in order")
            elif kind == "counter_pad":
                device_services = tuple(service_ids[:DEVICE_MAX_SERVICES])  # transfer targets
            counter: str | None = None
            if kind == "counter_pad":
                counter = self.ident(item, f"{key}.counter", "counter")
                if counter not in counter_ids:
                    raise self.fail(f"{key}.counter", f"unknown counter {counter!r}; counters are {counter_ids}")
            elif "counter" in item:
                raise self.fail(f"{key}.counter", f"only a counter_pad belongs to a counter, not a {kind}")
            printer: str | None = None
            if "printer" in item:
                if kind != "dispenser":
                    raise self.fail(f"{key}.printer", f"only a dispenser prints tickets, not a {kind}")
                printer = item["printer"]
                if not isinstance(printer, str) or printer not in printer_ids:
                    raise self.fail(f"{key}.printer", f"unknown printer {printer!r}; printers are {printer_ids}")
            elif kind == "dispenser" and len(printers) == 1:
                printer = printers[0].id  # the office's one printer
            out.append(
                Device(kind=kind, addr=addr, port=port, services=device_services, counter=counter, printer=printer)
            )
        return tuple(out)

    def gpio_counter(self, item: dict[str, Any], key: str, counter_ids: list[str], pins: dict[int, str]) -> Device:
        """A counter wired to the Pi's GPIO: no bus address or port, its pins instead."""
        known = {"kind", "counter", "keys", "lamps", "buzzer"}
        for k in item:
            if k not in known:
                raise self.fail(_key_path(key, k), f"unknown setting for a gpio_counter; known: {sorted(known)}")
        counter = self.ident(item, f"{key}.counter", "counter")
        if counter not in counter_ids:
            raise self.fail(f"{key}.counter", f"unknown counter {counter!r}; counters are {counter_ids}")

        def pin(value: Any, where: str) -> int:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= GPIO_PIN_MAX:
                raise self.fail(where, f"must be a BCM pin number 0-{GPIO_PIN_MAX} (got {value!r})")
            if value in pins:
                raise self.fail(where, f"pin {value} is already used by {pins[value]}")
            pins[value] = where
            return value

        def table(name: str, allowed: tuple[str, ...], required: bool) -> tuple[tuple[str, int], ...]:
            raw = item.get(name, {})
            if not isinstance(raw, dict) or (required and not raw):
                raise self.fail(f"{key}.{name}", f"must be a table of {' / '.join(allowed)} = BCM pin")
            for n in raw:
                if n not in allowed:
                    raise self.fail(_key_path(f"{key}.{name}", n), f"unknown {name[:-1]}; one of {list(allowed)}")
            return tuple((n, pin(raw[n], f"{key}.{name}.{n}")) for n in raw)

        keys = table("keys", GPIO_KEY_NAMES, required=True)
        lamps = table("lamps", GPIO_LAMP_COLOURS, required=False)
        buzzer = pin(item["buzzer"], f"{key}.buzzer") if "buzzer" in item else None
        return Device(kind="gpio_counter", addr=0, port="", counter=counter, keys=keys, lamps=lamps, buzzer=buzzer)

    def rules(self, value: Any) -> Rules:
        if not isinstance(value, dict):
            raise self.fail("rules", "must be a table")
        known = {"recall_limit", "no_show", "retention_days", "year_end_closure", "public_holidays"}
        for k in value:
            if k not in known:
                raise self.fail(_key_path("rules", k), f"unknown setting; known: {sorted(known)}")
        no_show = value.get("no_show", "requeue_once")
        if no_show not in NO_SHOW_POLICIES:
            raise self.fail("rules.no_show", f"must be one of {list(NO_SHOW_POLICIES)}")
        recall_limit = value.get("recall_limit", 2)
        if not isinstance(recall_limit, int) or isinstance(recall_limit, bool) or recall_limit < 0:
            raise self.fail("rules.recall_limit", f"must be a whole number ≥ 0 (got {recall_limit!r})")
        year_end = value.get("year_end_closure", True)
        if not isinstance(year_end, bool):
            raise self.fail("rules.year_end_closure", "must be true or false")
        holidays = value.get("public_holidays", "jp")
        if holidays not in ("jp", "none"):
            raise self.fail("rules.public_holidays", "must be 'jp' or 'none'")
        return Rules(
            recall_limit=recall_limit,
            no_show=no_show,
            retention_days=self.positive_int(value, "rules.retention_days", "retention_days", 400),
            year_end_closure=year_end,
            public_holidays=holidays,
        )

    def exceptions(self, value: Any) -> tuple[CalendarException, ...]:
        if not isinstance(value, dict):
            raise self.fail("calendar", "must be a table")
        self.known(value, "calendar", {"exceptions"})
        items = value.get("exceptions", [])
        if not isinstance(items, list):
            raise self.fail("calendar.exceptions", "must be an array of tables")
        out: list[CalendarException] = []
        seen: set[date] = set()
        for i, item in enumerate(items):
            key = f"calendar.exceptions[{i}]"
            if not isinstance(item, dict):
                raise self.fail(key, "must be a table")
            self.known(item, key, {"date", "dates", "closed", "mode", "hours", "reason"})
            raw_dates = item.get("dates", [item["date"]] if "date" in item else None)
            if not isinstance(raw_dates, list) or not raw_dates:
                raise self.fail(key, "needs date = YYYY-MM-DD or dates = [ … ]")
            dates: list[date] = []
            for d in raw_dates:
                # A TOML date-time is a datetime, a subclass of date that never equals a date:
                # accepted, the exception would silently never apply.
                if not isinstance(d, date) or isinstance(d, datetime):
                    raise self.fail(f"{key}.dates", f"must be TOML dates like 2027-03-27 (got {d!r})")
                if d in seen:
                    raise self.fail(f"{key}.dates", f"{d} is listed in more than one exception")
                seen.add(d)
                dates.append(d)
            closed = item.get("closed", False)
            if not isinstance(closed, bool):
                raise self.fail(f"{key}.closed", "must be true or false")
            reason = self.text(item, f"{key}.reason", "reason") if "reason" in item else None
            if closed:
                out.append(CalendarException(tuple(dates), True, None, None, reason))
                continue
            mode = item.get("mode")
            if mode not in MODES_OPEN:
                raise self.fail(f"{key}.mode", f"must be one of {list(MODES_OPEN)} or set closed = true")
            hrs = self.hours(item.get("hours"), f"{key}.hours")
            out.append(CalendarException(tuple(dates), False, mode, hrs, reason))
        return tuple(out)

    def services(self, value: Any) -> tuple[Service, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("services", "at least one [[services]] table is required")
        out: list[Service] = []
        ids: set[str] = set()
        prefixes: set[str] = set()
        for i, item in enumerate(value):
            key = f"services[{i}]"
            if not isinstance(item, dict):
                raise self.fail(key, "must be a table")
            self.known(item, key, {"id", "prefix", "name", "numbers", "periods", "typical_minutes"})
            sid = self.ident(item, f"{key}.id", "id")
            if sid in ids:
                raise self.fail(f"{key}.id", f"duplicate service id {sid!r}")
            ids.add(sid)
            prefix = item.get("prefix")
            if not isinstance(prefix, str) or not re.fullmatch(r"[A-Z]", prefix):
                raise self.fail(f"{key}.prefix", f"must be one capital letter A-Z (got {prefix!r})")
            if prefix in prefixes:
                raise self.fail(f"{key}.prefix", f"prefix {prefix!r} is used by another service")
            prefixes.add(prefix)
            numbers = item.get("numbers", [1, 999])
            if (
                not isinstance(numbers, list)
                or len(numbers) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)
                or not 0 <= numbers[0] < numbers[1] <= 9999
            ):
                raise self.fail(
                    f"{key}.numbers",
                    f"must be [first, last] with 0 ≤ first < last ≤ 9999 (got {numbers!r})",
                )
            # Fractional minutes are fine (4.5): the estimate only multiplies them. NaN and inf
            # would poison every estimate, and 0 or less would promise residents no wait at all.
            typical = item.get("typical_minutes", 10)
            where = f"{key}.typical_minutes"
            if not isinstance(typical, int | float) or isinstance(typical, bool):
                raise self.fail(where, f"must be a number of minutes like 12 or 4.5 (got {typical!r})")
            if not math.isfinite(typical) or not 0 < typical <= TYPICAL_MINUTES_MAX:
                raise self.fail(where, f"must be minutes above 0, at most {TYPICAL_MINUTES_MAX} (got {typical!r})")
            out.append(
                Service(
                    id=sid,
                    prefix=prefix,
                    name=self.text(item, f"{key}.name", "name"),
                    first_number=numbers[0],
                    last_number=numbers[1],
                    periods=self.modes(item.get("periods", ["office"]), f"{key}.periods"),
                    typical_minutes=float(typical),
                )
            )
        return tuple(out)

    def counters(self, value: Any, service_ids: set[str]) -> tuple[Counter, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("counters", "at least one [[counters]] table is required")
        out: list[Counter] = []
        ids: set[str] = set()
        for i, item in enumerate(value):
            key = f"counters[{i}]"
            if not isinstance(item, dict):
                raise self.fail(key, "must be a table")
            self.known(item, key, {"id", "name", "services", "shifts"})
            cid = self.ident(item, f"{key}.id", "id")
            if cid in ids:
                raise self.fail(f"{key}.id", f"duplicate counter id {cid!r}")
            ids.add(cid)
            services = item.get("services")
            if not isinstance(services, list) or not services:
                raise self.fail(f"{key}.services", "must list the services it calls, in priority order")
            for s in services:
                if not isinstance(s, str) or s not in service_ids:
                    raise self.fail(
                        f"{key}.services",
                        f"unknown service {s!r}; services are {sorted(service_ids)}",
                    )
            if len(set(services)) != len(services):
                raise self.fail(f"{key}.services", "lists a service twice")
            shifts_raw = item.get("shifts", [])
            if not isinstance(shifts_raw, list):
                raise self.fail(f"{key}.shifts", "must be an array of tables")
            shifts: list[Shift] = []
            for j, sh in enumerate(shifts_raw):
                skey = f"{key}.shifts[{j}]"
                if not isinstance(sh, dict):
                    raise self.fail(skey, "must be a table")
                self.known(sh, skey, {"periods", "from", "to"})
                start = self.clock(sh.get("from"), f"{skey}.from")
                end = self.clock(sh["to"], f"{skey}.to") if "to" in sh else None
                if end is not None and end <= start:
                    raise self.fail(skey, "ends before it starts")
                shifts.append(Shift(self.modes(sh.get("periods", ["office"]), f"{skey}.periods"), start, end))
            out.append(
                Counter(
                    id=cid,
                    name=self.text(item, f"{key}.name", "name"),
                    services=tuple(services),
                    shifts=tuple(shifts),
                )
            )
        return tuple(out)
