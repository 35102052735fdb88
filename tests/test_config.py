"""Config parsing: the example offices load as documented, and every bad file gets a ConfigError
that names the source, the key and the problem -- never another exception."""

from __future__ import annotations

import datetime as dt
import tomllib
from datetime import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from office.config import ConfigError, Hours, Rules, Text, load_config, parse_config

from .conftest import EXAMPLES
from .toml_writer import toml_text

MINIMAL = """
[office]
id = "test"
name = { ja = "テスト区民事務所", en = "Test Ward Office" }
timezone = "Asia/Tokyo"
public_base_url = "https://queue.example.jp/test/"

[hours]
weekday = { from = "08:30", to = "17:00" }

[[services]]
id = "move"
prefix = "A"
name = { ja = "届出", en = "Moving" }

[[services]]
id = "cert"
prefix = "C"
name = { ja = "証明書", en = "Certificates" }
numbers = [0, 50]
typical_minutes = 4.5

[[counters]]
id = 1
name = { ja = "1番窓口", en = "Counter 1" }
services = ["move", "cert"]
"""


def test_minimal_config_takes_documented_defaults() -> None:
    config = parse_config(MINIMAL, source="minimal.toml")
    assert config.id == "test"
    assert config.source == "minimal.toml"
    assert config.public_base_url == "https://queue.example.jp/test"  # trailing slash dropped
    assert config.weekday == Hours(time(8, 30), time(17, 0))
    assert config.evening is None and config.saturday is None
    assert config.rules == Rules(recall_limit=2, no_show="requeue_once", retention_days=400)
    move = config.service("move")
    assert (move.first_number, move.last_number, move.periods, move.typical_minutes) == (1, 999, ("office",), 10.0)
    cert = config.service("cert")
    assert (cert.first_number, cert.last_number, cert.typical_minutes) == (0, 50, 4.5)
    counter = config.counter("1")  # a numeric id is read as text
    assert counter.services == ("move", "cert") and counter.shifts == ()
    with pytest.raises(KeyError):
        config.service("nope")
    with pytest.raises(KeyError):
        config.counter("2")


@pytest.mark.parametrize(
    ("last", "number", "expected"),
    [(999, 23, "B-023"), (999, 1, "B-001"), (999, 999, "B-999"), (5, 3, "B-3"), (50, 0, "B-00"), (1200, 7, "B-0007")],
)
def test_ticket_id_is_zero_padded_to_the_range_width(last: int, number: int, expected: str) -> None:
    text = MINIMAL.replace("numbers = [0, 50]", f"numbers = [0, {last}]").replace('prefix = "C"', 'prefix = "B"')
    assert parse_config(text).service("cert").ticket_id(number) == expected


def test_nerima_example(nerima: Any) -> None:
    assert nerima.id == "nerima"
    assert nerima.tz.key == "Asia/Tokyo"
    assert nerima.name == Text("練馬区民事務所", "Nerima Ward Office")
    assert [s.id for s in nerima.services] == ["move", "seal", "certificate", "insurance", "payment", "guidance"]
    assert [s.prefix for s in nerima.services] == list("ABCDEF")
    assert [c.id for c in nerima.counters] == [str(i) for i in range(1, 13)]
    assert nerima.saturday == Hours(time(9), time(17))
    assert nerima.evening == Hours(time(17), time(19))
    assert nerima.rules.no_show == "requeue_once" and nerima.rules.recall_limit == 2
    assert nerima.counter("4").services == ("seal", "move")
    # counter 12 stays on in the evening until the queue is empty
    assert nerima.counter("12").shifts[-1].end is None
    assert nerima.service("seal").periods == ("office", "saturday")
    assert nerima.exceptions[0].closed and nerima.exceptions[0].dates == (dt.date(2027, 3, 22),)


def test_oizumi_example(oizumi: Any) -> None:
    assert oizumi.saturday is None
    assert oizumi.rules.no_show == "drop"
    (rush,) = oizumi.exceptions
    assert rush.dates == (dt.date(2027, 3, 27), dt.date(2027, 4, 3), dt.date(2027, 4, 10))
    assert not rush.closed and rush.mode == "saturday" and rush.hours == Hours(time(9), time(17))
    assert oizumi.hours_for("saturday") is None and oizumi.hours_for("office") == oizumi.weekday


def test_load_config_names_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path) and info.value.key == "(file)"
    assert str(path) in str(info.value)


def test_load_config_reports_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "sjis.toml"
    path.write_bytes(MINIMAL.replace("テスト", "練馬").encode("shift_jis"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "(file)" and "cannot be read" in info.value.problem


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_config(path).source == str(path)


def _replace(old: str, new: str) -> Any:
    def edit(text: str) -> str:
        assert old in text, f"test setup: {old!r} is not in the config"
        return text.replace(old, new, 1)

    return edit


def _append(extra: str) -> Any:
    return lambda text: text + "\n" + extra + "\n"


def _prepend(extra: str) -> Any:
    return lambda text: extra + "\n" + text


# fmt: off
BAD_CONFIGS = [
    # (what is wrong, edit of MINIMAL, key the message must name, words of the problem)
    ("malformed TOML", _append("[office"), "(syntax)", "not valid TOML"),
    ("missing [office]", _replace("[office]", "[offices]"), "office", "missing table"),
    ("office as array", _replace("[office]", "[[office]]"), "office", "must be a table"),
    ("missing office.id", _replace('id = "test"\n', ""), "office.id", "must be an id"),
    ("bad office.id", _replace('id = "test"', 'id = "Test Office"'), "office.id", "must be an id"),
    ("office.id bool", _replace('id = "test"', "id = true"), "office.id", "must be an id"),
    # office.id names MQTT topics and files: a string of a-z 0-9 -, never a number read as one.
    ("office.id integer", _replace('id = "test"', "id = 5"), "office.id", "as a string in quotes (got an integer: 5)"),
    ("office.id underscore", _replace('id = "test"', 'id = "test_office"'), "office.id", "must be an id"),
    ("office.id leading hyphen", _replace('id = "test"', 'id = "-test"'), "office.id", "must be an id"),
    ("office.id too long", _replace('id = "test"', f'id = "{"a" * 33}"'), "office.id", "1-32"),
    ("office.id empty", _replace('id = "test"', 'id = ""'), "office.id", "must be an id"),
    ("office.id uppercase", _replace('id = "test"', 'id = "Test"'), "office.id", "lowercase"),
    ("office.id table", _replace('id = "test"', "id = { x = 1 }"), "office.id", "got a table"),
    ("missing ja", _replace('ja = "テスト区民事務所", ', ""), "office.name.ja", "missing"),
    ("name not a table", _replace('name = { ja = "テスト区民事務所", en = "Test Ward Office" }', 'name = "x"'),
     "office.name", "must be a table"),
    ("empty en", _replace('en = "Test Ward Office"', 'en = "  "'), "office.name.en", "non-empty string"),
    ("unknown timezone", _replace('"Asia/Tokyo"', '"Asia/Nerima"'), "office.timezone", "unknown time zone"),
    ("timezone directory", _replace('"Asia/Tokyo"', '"Asia"'), "office.timezone", "unknown time zone"),
    ("absolute timezone", _replace('"Asia/Tokyo"', '"/etc/localtime"'), "office.timezone", "unknown time zone"),
    ("timezone number", _replace('"Asia/Tokyo"', "9"), "office.timezone", "non-empty string"),
    ("bad url", _replace('"https://queue.example.jp/test/"', '"queue.example.jp"'), "office.public_base_url",
     "http(s) URL"),
    # "$" in a pattern matches before a final newline: each of these is matched whole.
    ("office.id with newline", _replace('id = "test"', 'id = "test\\n"'), "office.id", "must be an id"),
    ("url with space", _replace('"https://queue.example.jp/test/"', '"https://queue.example.jp/my queue/"'),
     "office.public_base_url", "without spaces"),
    ("time with newline", _replace('from = "08:30"', 'from = "08:30\\n"'), "hours.weekday.from", "HH:MM"),
    # \d matched other scripts' digits, which fromisoformat then refused with a plain ValueError.
    ("time with Arabic-Indic digit", _replace('from = "08:30"', 'from = "0\u0668:30"'), "hours.weekday.from",
     "HH:MM"),
    ("time with fullwidth digits", _replace('from = "08:30"', 'from = "０８:３０"'), "hours.weekday.from", "HH:MM"),
    ("prefix with newline", _replace('prefix = "C"', 'prefix = "C\\n"'), "services[1].prefix", "capital letter"),
    ("missing hours", _replace("[hours]", "[hour]"), "hours", "missing table"),
    ("hours not a table", _replace('weekday = { from = "08:30", to = "17:00" }', 'weekday = "08:30-17:00"'),
     "hours.weekday", "must be a table"),
    ("bad time", _replace('from = "08:30"', 'from = "8:30"'), "hours.weekday.from", "HH:MM"),
    ("hour 24", _replace('to = "17:00"', 'to = "24:00"'), "hours.weekday.to", "HH:MM"),
    ("TOML time", _replace('to = "17:00"', "to = 17:00:00"), "hours.weekday.to", "HH:MM"),
    ("closes before opens", _replace('to = "17:00"', 'to = "08:00"'), "hours.weekday", "before it opens"),
    ("evening overlaps", _replace("[hours]", '[hours]\nevening = { from = "16:00", to = "19:00" }'),
     "hours.evening", "after weekday hours end"),
    ("unknown rules key", _append("[rules]\nrecal_limit = 3"), "rules.recal_limit", "unknown setting"),
    ("rules not a table", _prepend('rules = "strict"'), "rules", "must be a table"),
    ("bad no_show", _append('[rules]\nno_show = "requeue"'), "rules.no_show", "must be one of"),
    ("negative recall_limit", _append("[rules]\nrecall_limit = -1"), "rules.recall_limit", "≥ 0"),
    ("recall_limit bool", _append("[rules]\nrecall_limit = true"), "rules.recall_limit", "≥ 0"),
    ("year_end_closure string", _append('[rules]\nyear_end_closure = "yes"'), "rules.year_end_closure",
     "true or false"),
    ("public_holidays", _append('[rules]\npublic_holidays = "us"'), "rules.public_holidays", "'jp' or 'none'"),
    ("retention_days zero", _append("[rules]\nretention_days = 0"), "rules.retention_days", "≥ 1"),
    ("no services", lambda text: text.replace("[[services]]", "[[service]]"), "services", "at least one"),
    ("duplicate service id", _replace('id = "cert"', 'id = "move"'), "services[1].id", "duplicate service id"),
    ("duplicate prefix", _replace('prefix = "C"', 'prefix = "A"'), "services[1].prefix", "used by another"),
    ("lowercase prefix", _replace('prefix = "C"', 'prefix = "c"'), "services[1].prefix", "capital letter"),
    ("two-letter prefix", _replace('prefix = "C"', 'prefix = "CC"'), "services[1].prefix", "capital letter"),
    ("numbers reversed", _replace("numbers = [0, 50]", "numbers = [50, 1]"), "services[1].numbers", "first < last"),
    ("numbers too big", _replace("numbers = [0, 50]", "numbers = [1, 10000]"), "services[1].numbers", "≤ 9999"),
    ("numbers floats", _replace("numbers = [0, 50]", "numbers = [1.0, 50]"), "services[1].numbers", "[first, last]"),
    ("numbers one", _replace("numbers = [0, 50]", "numbers = [50]"), "services[1].numbers", "[first, last]"),
    ("typical zero", _replace("typical_minutes = 4.5", "typical_minutes = 0"), "services[1].typical_minutes",
     "above 0, at most 240 (got 0)"),
    ("typical negative", _replace("typical_minutes = 4.5", "typical_minutes = -0.5"), "services[1].typical_minutes",
     "above 0"),
    ("typical over 240", _replace("typical_minutes = 4.5", "typical_minutes = 240.5"), "services[1].typical_minutes",
     "at most 240"),
    ("typical nan", _replace("typical_minutes = 4.5", "typical_minutes = nan"), "services[1].typical_minutes",
     "(got nan)"),
    ("typical inf", _replace("typical_minutes = 4.5", "typical_minutes = inf"), "services[1].typical_minutes",
     "(got inf)"),
    ("typical bool", _replace("typical_minutes = 4.5", "typical_minutes = true"), "services[1].typical_minutes",
     "a number of minutes"),
    ("typical string", _replace("typical_minutes = 4.5", 'typical_minutes = "4"'), "services[1].typical_minutes",
     "a number of minutes like 12 or 4.5 (got '4')"),
    ("unknown mode", _replace("typical_minutes = 4.5", 'periods = ["night"]'), "services[1].periods", "unknown mode"),
    ("periods string", _replace("typical_minutes = 4.5", 'periods = "office"'), "services[1].periods",
     "non-empty list"),
    ("mode without hours", _replace("typical_minutes = 4.5", 'periods = ["office", "evening"]'),
     "services[1].periods", "hours.evening is not set"),
    ("service name missing", _replace('name = { ja = "証明書", en = "Certificates" }\n', ""), "services[1].name",
     "missing"),
    ("no counters", _replace("[[counters]]", "[[counter]]"), "counters", "at least one"),
    ("unknown service in counter", _replace('services = ["move", "cert"]', 'services = ["move", "seal"]'),
     "counters[0].services", "unknown service 'seal'"),
    ("non-string service in counter", _replace('services = ["move", "cert"]', 'services = [["move"], "cert"]'),
     "counters[0].services", "unknown service"),
    ("service listed twice", _replace('services = ["move", "cert"]', 'services = ["move", "move"]'),
     "counters[0].services", "twice"),
    ("empty counter services", _replace('services = ["move", "cert"]', "services = []"), "counters[0].services",
     "priority order"),
    ("duplicate counter id", _append('[[counters]]\nid = "1"\nname = { ja = "x", en = "x" }\nservices = ["move"]'),
     "counters[1].id", "duplicate counter id"),
    ("shift ends before start",
     _replace('services = ["move", "cert"]', 'services = ["move"]\nshifts = [{ from = "12:00", to = "11:00" }]'),
     "counters[0].shifts[0]", "ends before it starts"),
    ("shift bad time", _replace('services = ["move", "cert"]', 'services = ["move"]\nshifts = [{ from = "noon" }]'),
     "counters[0].shifts[0].from", "HH:MM"),
    ("shift unknown mode",
     _replace('services = ["move", "cert"]', 'services = ["move"]\nshifts = [{ from = "09:00", periods = ["x"] }]'),
     "counters[0].shifts[0].periods", "unknown mode"),
    ("exception without date", _append("[calendar]\nexceptions = [{ closed = true }]"), "calendar.exceptions[0]",
     "needs date"),
    ("exception date as string", _append('[calendar]\nexceptions = [{ date = "2027-03-22", closed = true }]'),
     "calendar.exceptions[0].dates", "TOML dates"),
    ("exception date-time", _append("[calendar]\nexceptions = [{ dates = [2027-03-22T09:00:00], closed = true }]"),
     "calendar.exceptions[0].dates", "TOML dates"),
    ("exception date twice",
     _append("[calendar]\nexceptions = [{ date = 2027-03-22, closed = true }, { date = 2027-03-22, closed = true }]"),
     "calendar.exceptions[1].dates", "more than one exception"),
    ("exception open without mode", _append("[calendar]\nexceptions = [{ date = 2027-03-27 }]"),
     "calendar.exceptions[0].mode", "closed = true"),
    ("exception without hours", _append('[calendar]\nexceptions = [{ date = 2027-03-27, mode = "saturday" }]'),
     "calendar.exceptions[0].hours", "must be a table"),
    ("exception closed string", _append('[calendar]\nexceptions = [{ date = 2027-03-27, closed = "yes" }]'),
     "calendar.exceptions[0].closed", "true or false"),
    ("exceptions not a list", _append('[calendar]\nexceptions = { date = 2027-03-27 }'), "calendar.exceptions",
     "array of tables"),
    # A size's digits were \d+: fullwidth digits were read, 4,301 of them raised a plain ValueError.
    ("sign size fullwidth", _append('[[signs]]\nid = "s"\nkind = "led"\nsize = "１２８x３２"'), "signs[0].size",
     "LED matrix"),
    ("sign size huge", _append(f'[[signs]]\nid = "s"\nkind = "led"\nsize = "{"9" * 5000}x32"'), "signs[0].size",
     "LED matrix"),
    ("alerts ahead out of range", _append("[alerts]\nahead = 12"), "alerts.ahead", "ahead_range [1, 10]"),
    ("alerts range reversed", _append("[alerts]\nminutes_range = [30, 5]"), "alerts.minutes_range", "[least, most]"),
    ("alerts minutes a float", _append("[alerts]\nminutes = 7.5"), "alerts.minutes", "whole number"),
    ("alerts push a string", _append('[alerts]\npush = "yes"'), "alerts.push", "true or false"),
    ("alerts rejoin one language", _append('[alerts]\nrejoin = { ja = "係へ" }'), "alerts.rejoin.en", "missing"),
    ("alerts unknown key", _append("[alerts]\nsms = true"), "alerts.sms", ""),
    ("mail password inline", _append('[alerts.mail]\nhost = "r"\nfrom = "a@b.jp"\npassword = "x"'),
     "alerts.mail.password", "password_file"),
    ("mail from not an address", _append('[alerts.mail]\nhost = "r"\nfrom = "kumin"'), "alerts.mail.from",
     "e-mail address"),
    ("mail security unknown", _append('[alerts.mail]\nhost = "r"\nfrom = "a@b.jp"\nsecurity = "ssl"'),
     "alerts.mail.security", "starttls"),
    ("mail port zero", _append('[alerts.mail]\nhost = "r"\nfrom = "a@b.jp"\nport = 0'), "alerts.mail.port",
     "1-65535"),
    ("mail user without password file", _append('[alerts.mail]\nhost = "r"\nfrom = "a@b.jp"\nusername = "u"'),
     "alerts.mail.password_file", "both"),
]
# fmt: on


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [pytest.param(edit, key, problem, id=name) for name, edit, key, problem in BAD_CONFIGS],
)
def test_bad_config_names_source_key_and_problem(edit: Any, key: str, problem: str) -> None:
    text = edit(MINIMAL)
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="office.toml")
    err = info.value
    assert err.source == "office.toml"
    assert err.key == key, str(err)
    assert problem in err.problem, str(err)
    assert str(err).startswith(f"office.toml: {key}: ")


def test_alerts_default_and_as_written() -> None:
    plain = parse_config(MINIMAL).alerts
    assert (plain.ahead, plain.ahead_range, plain.minutes, plain.minutes_range) == (3, (1, 10), 10, (5, 30))
    assert plain.push and plain.mail is None and plain.rejoin.en
    # A range alone keeps the default inside it.
    assert parse_config(MINIMAL + "\n[alerts]\nminutes_range = [15, 45]\n").alerts.minutes == 15
    written = parse_config(
        MINIMAL
        + '\n[alerts]\nahead = 5\nminutes = 20\nrejoin = { ja = "受付へ", en = "See reception" }\npush = false\n'
        + '[alerts.mail]\nhost = "relay.city.example.jp"\nfrom = "kumin@city.example.jp"\nsecurity = "tls"\n'
        + 'username = "cf"\npassword_file = "smtp-password"\n'
    ).alerts
    assert (written.ahead, written.minutes, written.rejoin.en, written.push) == (5, 20, "See reception", False)
    assert written.mail is not None
    assert (written.mail.host, written.mail.port, written.mail.security) == ("relay.city.example.jp", 465, "tls")
    assert (written.mail.username, written.mail.password_file) == ("cf", "smtp-password")


def test_office_id_is_a_to_z_digits_and_hyphens_up_to_32() -> None:
    for good in ("a", "nerima-2", "0" * 32, "9-a-"):
        assert parse_config(MINIMAL.replace('id = "test"', f'id = "{good}"')).id == good


@pytest.mark.parametrize(("written", "minutes"), [("7", 7.0), ("4.5", 4.5), ("0.25", 0.25), ("240", 240.0)])
def test_typical_minutes_may_be_fractional(written: str, minutes: float) -> None:
    config = parse_config(MINIMAL.replace("typical_minutes = 4.5", f"typical_minutes = {written}"))
    assert config.service("cert").typical_minutes == minutes


def test_an_exception_mode_counts_as_configured_hours() -> None:
    # Oizumi-style: no [hours].saturday, yet services run on the temporary Saturdays.
    rush = '{ date = 2027-03-27, mode = "saturday", hours = { from = "09:00", to = "12:00" } }'
    text = MINIMAL.replace("typical_minutes = 4.5", 'periods = ["office", "saturday"]')
    text += f"\n[calendar]\nexceptions = [{rush}]\n"
    config = parse_config(text)
    assert config.service("cert").periods == ("office", "saturday")
    assert config.exceptions[0].hours == Hours(time(9), time(12))


# -- garbage never raises anything but ConfigError -----------------------------------------------
_text = st.text(st.characters(codec="ascii", categories=["L", "N", "P", "Zs"]), max_size=12)
_scalars = st.one_of(
    st.none(),  # deletes the key
    st.booleans(),
    st.integers(-3, 10_001),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    _text,
    st.sampled_from(["move", "seal", "office", "evening", "saturday", "08:30", "19:00", "25:00", "A", "drop", "Asia"]),
    st.dates(dt.date(2026, 1, 1), dt.date(2028, 12, 31)),
    st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2028, 12, 31)),
    st.times(),
)
_values = st.recursive(
    _scalars.filter(lambda v: v is not None),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text.filter(bool), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


@pytest.mark.parametrize("example", ["nerima.toml", "oizumi.toml"])
@settings(max_examples=75)
@given(data=st.data())
def test_mutated_config_parses_or_raises_config_error(example: str, data: st.DataObject) -> None:
    base = tomllib.loads((EXAMPLES / example).read_text(encoding="utf-8"))
    assert parse_config(toml_text(base)).id == base["office"]["id"]  # the writer round-trips the example
    paths = _paths(base)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths), label="path")
        value = data.draw(st.one_of(_scalars, _values), label="value")
        parent: Any = base
        try:
            for step in path[:-1]:
                parent = parent[step]
            if value is None:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    text = toml_text(base)
    try:
        config = parse_config(text, source="fuzz.toml")
    except ConfigError as err:
        assert err.source == "fuzz.toml" and err.key and err.problem
        assert str(err).startswith(f"fuzz.toml: {err.key}: ")
    else:
        # whatever it accepted is internally consistent
        ids = {s.id for s in config.services}
        assert len(ids) == len(config.services)
        assert len({s.prefix for s in config.services}) == len(config.services)
        assert all(set(c.services) <= ids for c in config.counters)
        dates = [d for e in config.exceptions for d in e.dates]
        assert all(isinstance(d, dt.date) and not isinstance(d, dt.datetime) for d in dates)


# -- [gateway] and [[devices]] ------------------------------------------------------------------------
_BUS = "sim://bus?dispenser=1&counter_pad=5&call_display=16"


def _with_devices(devices: str, gateway: str = f'port = "{_BUS}"') -> str:
    return (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8").split("\n[gateway]")[0] + (
        f"\n[gateway]\n{gateway}\n{devices}"
    )


def test_gateway_and_devices_of_the_example(oizumi: Any) -> None:
    from office.config import Device, GatewaySettings

    assert oizumi.gateway == GatewaySettings(port="sim://bus?dispenser=1&counter_pad=5,6,7,8&call_display=16")
    assert oizumi.devices[0] == Device(
        "dispenser", 1, oizumi.gateway.port, ("move", "seal", "certificate", "payment"), printer="entrance"
    )
    pad = oizumi.devices[1]
    assert (pad.kind, pad.addr, pad.counter, pad.services) == ("counter_pad", 5, "1", tuple(oizumi_ids(oizumi)))
    assert oizumi.devices[-1] == Device("call_display", 16, oizumi.gateway.port)


def oizumi_ids(config: Any) -> list[str]:
    return [s.id for s in config.services]


def test_gateway_settings_and_a_device_on_its_own_port() -> None:
    config = parse_config(
        _with_devices(
            '[[devices]]\nkind = "call_display"\naddr = 1\nport = "/dev/ttyUSB1"\n'
            '[[devices]]\nkind = "dispenser"\naddr = 1\nservices = ["seal"]\n',
            gateway=f'journal = "j.db"\nsocket = "/run/cf.sock"\nport = "{_BUS}"\ncycle_ms = 0\nreply_timeout_ms = 5',
        )
    )
    assert (config.gateway.journal, config.gateway.socket, config.gateway.cycle_ms) == ("j.db", "/run/cf.sock", 0)
    assert config.gateway.reply_timeout_ms == 5.0
    assert [(d.port, d.addr) for d in config.devices] == [("/dev/ttyUSB1", 1), (_BUS, 1)]


@pytest.mark.parametrize(
    ("devices", "gateway", "key", "problem"),
    [
        ('[[devices]]\nkind = "printer"\naddr = 1', None, "devices[0].kind", "unknown kind 'printer'"),
        ('[[devices]]\nkind = "call_display"\naddr = 17', None, "devices[0].addr", "must be a bus address 1-16"),
        ('[[devices]]\nkind = "call_display"\naddr = true', None, "devices[0].addr", "must be a bus address"),
        (
            '[[devices]]\nkind = "call_display"\naddr = 3\n[[devices]]\nkind = "call_display"\naddr = 3',
            None,
            "devices[1].addr",
            "duplicate address 3",
        ),
        ('[[devices]]\nkind = "dispenser"\naddr = 1', None, "devices[0].services", "a dispenser needs the services"),
        (
            '[[devices]]\nkind = "dispenser"\naddr = 1\nservices = ["passport"]',
            None,
            "devices[0].services",
            "unknown service 'passport'",
        ),
        ('[[devices]]\nkind = "counter_pad"\naddr = 5', None, "devices[0].counter", "must be an id"),
        ('[[devices]]\nkind = "counter_pad"\naddr = 5\ncounter = 9', None, "devices[0].counter", "unknown counter '9'"),
        (
            '[[devices]]\nkind = "call_display"\naddr = 5\ncounter = "1"',
            None,
            "devices[0].counter",
            "only a counter_pad",
        ),
        ('[[devices]]\nkind = "call_display"\naddr = 5\nvolume = 3', None, "devices[0].volume", "unknown setting"),
        ('[[devices]]\nkind = "call_display"\naddr = 5', "", "devices[0].port", "no serial port"),
        ("", "cycle_ms = -1", "gateway.cycle_ms", "whole milliseconds"),
        ("", "reply_timeout_ms = 0", "gateway.reply_timeout_ms", "above 0"),
        ("", "journal = 3", "gateway.journal", "non-empty string"),
        ("", "baud = 9600", "gateway.baud", "unknown setting"),
        ('devices = "all"', None, "gateway.devices", "unknown setting"),  # TOML: a key after [gateway] is in it
    ],
)
def test_bad_gateway_or_device_names_key_and_problem(devices: str, gateway: str | None, key: str, problem: str) -> None:
    text = _with_devices(devices) if gateway is None else _with_devices(devices, gateway)
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="gw.toml")
    assert err.value.key == key and problem in err.value.problem, str(err.value)
    assert str(err.value).startswith(f"gw.toml: {key}: ")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            'saturday = { from = "09:00", to = "17:00" }',
            'saturdays = { from = "09:00", to = "17:00" }',
            "hours.saturdays",
        ),
        ('timezone = "Asia/Tokyo"', 'timezone = "Asia/Tokyo"\ntimezon = "UTC"', "office.timezon"),
        ("typical_minutes = 20", "typical_minute = 20", "services[0].typical_minute"),
        (
            '{ periods = ["office"], from = "08:30", to = "11:30" }',
            '{ periods = ["office"], from = "08:30", until = "11:30" }',
            "counters[0].shifts[0].until",
        ),
        (
            'name = { ja = "1番窓口", en = "Counter 1" }',
            'name = { ja = "1番窓口", english = "Counter 1" }',
            "counters[0].name.english",
        ),
        ("[rules]", "[rule]", "rule"),
    ],
)
def test_a_misspelt_key_is_an_error_not_ignored(old: str, new: str, key: str) -> None:
    text = (EXAMPLES / "nerima.toml").read_text()
    assert old in text
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace(old, new, 1), source="nerima.toml")
    assert err.value.key == key and "unknown setting" in str(err.value)


def test_load_config_names_a_journal_or_a_directory(tmp_path: Path) -> None:
    # Both were "cannot be read: 'utf-8' codec can't decode byte 0xf8 ..." / "[Errno 21] ...".
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 4)
    with pytest.raises(ConfigError) as info:
        load_config(journal)
    assert info.value.problem == "is an SQLite database (a journal?), not a config file"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problem == "is a directory, not a config file"
