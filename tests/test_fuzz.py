"""Bounded fuzzing of every parser that takes input from outside: the bus frame decoder, the
office config, the control socket's requests and the stored event records. Each property says
which exceptions may escape (only the documented one) and what must hold of what is accepted.

Where tests elsewhere already hold a property, this file goes where they are thin:
- frames: tests/test_codec.py feeds garbage and whole valid frames; garbage almost never passes
  the CRC, so the payload parser behind it is reached here with checksummed frames of any
  content (mutated real payloads, and random ones), which must decode canonically or be counted;
  and bench/fuzz_decoder.py (atheris, coverage-guided) runs for a bounded number of inputs.
- config: tests/test_config.py mutates the examples with ASCII values of ordinary sizes; here the
  values are adversarial (other scripts' digits, long digit runs, NaN, huge integers, control
  characters) and the text itself is cut and spliced line by line.
- control requests and event records: nothing fuzzed them before.

Sized for CI (HYPOTHESIS_PROFILE=ci, derandomised: the same examples every run) at about half a
minute on two shared cores; `--hypothesis-seed` or the dev profile explores further.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import importlib.util
import json
import math
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import firmware.protocol
from gateway import control
from gateway.journal import JournalCorrupt, _decode_rows
from office import events as ev
from office import model as m
from office.calendar import AT_TOLERANCE
from office.config import (
    BOARD_SIZES,
    LED_MAX,
    TYPICAL_MINUTES_MAX,
    ConfigError,
    OfficeConfig,
    load_config,
    parse_config,
)
from tests.conftest import EXAMPLES, ROOT
from tests.test_codec import frames
from tests.toml_writer import toml_text, toml_value

# -- the frame decoder -----------------------------------------------------------------------------
p: Any = firmware.protocol  # the codec is untyped (MicroPython subset); see hal/codec.py
_COUNTERS = ("frames", "bad_cobs", "bad_crc", "too_long", "too_short", "unknown_type", "malformed")
_HELLO_V1_RAW = 13  # header 3 + the 8 payload bytes of a version-1 HELLO + CRC 2


@st.composite
def checksummed(draw: st.DrawFn) -> bytes:
    """A raw frame (header + payload + CRC) whose CRC is right whatever its content: a real
    frame's bytes after a few edits, or a known type with a random payload."""
    if draw(st.booleans()):
        frame: Any = draw(frames())
        body = bytearray(frame.to_raw()[:-2])
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(body)))
            edit = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "count"]))
            if edit == "flip" and i < len(body):
                body[i] ^= 1 << draw(st.integers(0, 7))
            elif edit == "insert":
                body[i:i] = draw(st.binary(min_size=1, max_size=4))
            elif edit == "delete" and i < len(body):
                del body[i]
            elif edit == "truncate":
                del body[max(i, 3) :]
            elif edit == "count" and i < len(body):  # a length or count byte one off, or wild
                body[i] = draw(st.sampled_from([(body[i] + 1) % 256, (body[i] - 1) % 256, 0, 255]))
    else:
        code = draw(st.one_of(st.sampled_from(sorted(p.TYPES)), st.integers(0, 255)))
        header = bytes((draw(st.integers(0, 255)), code, draw(st.integers(0, 255))))
        body = bytearray(header + draw(st.binary(max_size=p.MAX_FRAME - 5)))
    body = body[: p.MAX_FRAME - 2]
    crc: int = p.crc16(bytes(body))
    return bytes(body) + crc.to_bytes(2, "big")


@settings(max_examples=1000)
@given(st.lists(checksummed(), min_size=1, max_size=6), st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_checksummed_frames_of_any_content_decode_canonically_or_are_counted(
    raws: list[bytes], sizes: list[int]
) -> None:
    expected: list[p.Frame] = []
    for raw in raws:
        try:
            frame = p.Frame.from_raw(raw)
        except p.ProtocolError:
            continue  # the only exception allowed: anything else fails the test here
        # Canonical: a frame is accepted only in the one encoding it gives itself, but for a
        # version-1 HELLO (no boot, no lap), read as boot 0, lap 0 (docs/protocol.md, "Versions").
        if frame.NAME == "HELLO" and len(raw) == _HELLO_V1_RAW:
            assert frame.to_raw()[:-2] == raw[:-2] + bytes(5), (frame, raw.hex())
        else:
            assert frame.to_raw() == raw, (frame, raw.hex())
        assert p.Frame.from_bytes(frame.to_bytes()) == frame
        expected.append(frame)
    stream = b"".join(b"\x00" + p.cobs_encode(raw) + b"\x00" for raw in raws)
    d = p.Decoder()
    got: list[p.Frame] = []
    i = k = 0
    while i < len(stream):
        got += d.feed(stream[i : i + sizes[k % len(sizes)]])  # never raises
        i, k = i + sizes[k % len(sizes)], k + 1
    # A bad frame costs itself only: every good one around it is decoded, in order.
    assert got == expected
    counts = d.counters()
    assert sum(counts[c] for c in _COUNTERS) == len(raws)  # each frame counted once
    assert counts["frames"] == len(expected) and counts["bad_cobs"] == counts["bad_crc"] == 0


def test_the_atheris_decoder_fuzzer_finds_nothing_in_20000_inputs(tmp_path: Path) -> None:
    """bench/fuzz_decoder.py (libFuzzer, coverage-guided) for a bounded run, seeded with the
    golden vectors as bench/devices.py seeds it; a crash, an assertion or a hang fails."""
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (uv sync installs the dev group)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    vectors = json.loads((ROOT / "tests" / "protocol_vectors.json").read_text(encoding="utf-8"))
    wires = [bytes.fromhex(v["wire"]) for group in ("frames", "bad") for v in vectors[group] if v.get("wire")]
    for i, wire in enumerate(wires):  # first byte: the harness's chunk size; then two frames
        (corpus / f"vector-{i:03d}").write_bytes(bytes((i % 48,)) + wire + wires[(i + 1) % len(wires)])
    runs = 20_000
    cmd = [sys.executable, str(ROOT / "bench" / "fuzz_decoder.py"), f"-runs={runs}", "-timeout=5"]
    cmd += ["-max_len=600", "-seed=20270315", f"-artifact_prefix={tmp_path}/", str(corpus)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    tail = "\n".join(r.stderr.splitlines()[-40:])
    done = re.search(r"Done (\d+) runs", r.stderr)
    assert r.returncode == 0 and done is not None and int(done.group(1)) >= runs, tail
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*")), tail


# -- the office config -----------------------------------------------------------------------------
_ADVERSARIAL_TEXT = st.one_of(
    st.text(max_size=20),  # any script, controls included
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=6),  # ٣, ３, ໓: \d matches them
    st.integers(4290, 4400).map(lambda n: "9" * n),  # past int()'s 4,300-digit limit
    st.sampled_from(["08:3０", "0٨:30", "１９２０x１０８０", "128x32\n", " move", "move ", "-x", "a_b", "A", ""]),
    st.sampled_from(["sim://printer?paper=wet", "xyz://", "loop://?logging=loud", "/dev/null", "sim://bus"]),
    st.tuples(st.integers(0, 99999), st.integers(0, 99999)).map(lambda wh: f"{wh[0]}x{wh[1]}"),
    st.tuples(st.integers(0, 29), st.integers(0, 69)).map(lambda hm: f"{hm[0]:02d}:{hm[1]:02d}"),
)
_ADVERSARIAL_SCALARS = st.one_of(
    _ADVERSARIAL_TEXT,
    st.booleans(),
    st.integers(),  # unbounded: TOML has no limit tomllib enforces
    st.sampled_from([0, -1, 1, 16, 17, 27, 28, 240, 241, 2**63, -(2**63), 10**30]),
    st.floats(),  # NaN, ±inf, -0.0, subnormals
    st.dates(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.times(),
)
_ADVERSARIAL_VALUES = st.recursive(
    _ADVERSARIAL_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=5,
)
_EXAMPLE_TEXT = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
# Nerima and a table of every kind it leaves out, so that every part of the parser is reached.
_EXTRA = """
[callout]
enabled = true
languages = ["ja", "en"]
player = "aplay -q -D plughw:1"
out_dir = "callout"

[[signs]]
id = "hall"
kind = "board"
size = "1080x1920"
output = "hall.png"

[[signs]]
id = "counter-6"
kind = "led"
size = "128x32"

[[devices]]
kind = "gpio_counter"
counter = "12"
keys = { call_next = 17, done = 27, recall = 22, no_show = 5, pause = 6 }
lamps = { green = 23, amber = 24, red = 25 }
buzzer = 26
"""
_EXAMPLE = tomllib.loads(_EXAMPLE_TEXT + _EXTRA)
_EXAMPLE["calendar"]["exceptions"].append(
    {"dates": [dt.date(2027, 3, 27)], "mode": "saturday", "hours": {"from": "09:00", "to": "17:00"}}
)
_EXAMPLE["gateway"] |= {"journal": "nerima.db", "socket": "nerima.sock", "reply_timeout_ms": 2.5, "pin_factory": "mock"}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for k, v in items:
        out += _paths(v, (*prefix, k))
    return out


# By table first: nerima's twelve counters and sixteen devices would drown the rest.
_PATHS_BY_TABLE = {table: _paths(_EXAMPLE[table], (table,)) or [(table,)] for table in _EXAMPLE}


def _value_at(path: tuple[Any, ...]) -> Any:
    value: Any = _EXAMPLE
    for step in path:
        value = value[step]
    return value


# Half the edits go to a single value (a time, a size, a port), where most of the checks are.
_LEAVES_BY_TABLE = {
    table: [q for q in paths if not isinstance(_value_at(q), dict | list)] or paths
    for table, paths in _PATHS_BY_TABLE.items()
}


def _parses_or_config_error(text: str) -> OfficeConfig | None:
    """parse_config's result, None for a ConfigError; any other exception fails the test."""
    try:
        config = parse_config(text, source="fuzz.toml")
    except ConfigError as err:
        assert type(err) is ConfigError  # not a ValueError passing for one
        assert err.source == "fuzz.toml" and err.key and err.problem
        assert len(str(err).splitlines()) == 1, str(err)  # the CLI prints it as one line
        return None
    # What was accepted keeps the documented rules (docs/config.md).
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", config.id)
    for s in config.services:
        assert 0 < s.typical_minutes <= TYPICAL_MINUTES_MAX and math.isfinite(s.typical_minutes)
        assert 0 <= s.first_number < s.last_number <= 9999
    for sign in config.signs:
        size = (sign.width, sign.height)
        led_ok = 8 <= sign.width <= LED_MAX[0] and 8 <= sign.height <= LED_MAX[1]
        assert size in BOARD_SIZES if sign.kind == "board" else led_ok
    assert all(d.port for d in config.devices if d.on_bus) and all(pr.port for pr in config.printers)
    return config


def test_the_fuzz_toml_writer_round_trips_and_the_fuzzed_base_is_valid() -> None:
    plain = parse_config(_EXAMPLE_TEXT, source="fuzz.toml")
    assert _parses_or_config_error(toml_text(tomllib.loads(_EXAMPLE_TEXT))) == plain
    config = _parses_or_config_error(toml_text(_EXAMPLE))  # mutations start from a config that works
    assert config is not None and len(config.signs) == 2 and config.callout.enabled


# The zero of other scripts' decimal digits: fullwidth, Arabic-Indic, Devanagari, Thai, bold maths.
_DIGIT_ZEROS = [0xFF10, 0x0660, 0x0966, 0x0E50, 0x1D7CE]


@st.composite
def _mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` a little wrong, the way a hand-edited file is: a digit from another script, a
    run repeated, a number off by one or far out, an element dropped or doubled."""
    if isinstance(value, str):
        chars = list(value)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(chars)))
            edit = draw(st.sampled_from(["digit", "repeat", "char", "insert", "delete"]))
            digits = [j for j, c in enumerate(chars) if c in "0123456789"]
            if edit == "digit" and digits:  # the same digit in another script: ８ typed by an IME
                j = draw(st.sampled_from(digits))
                chars[j] = chr(draw(st.sampled_from(_DIGIT_ZEROS)) + int(chars[j]))
            elif edit == "char" and i < len(chars):
                chars[i] = draw(st.characters())
            elif edit == "insert":
                chars[i:i] = draw(st.text(max_size=3))
            elif edit == "delete" and i < len(chars):
                del chars[i]
            elif edit == "repeat" and i < len(chars):  # up to past int()'s 4,300-digit limit
                chars[i:i] = chars[i] * draw(st.sampled_from([4300, 1]))
        return "".join(chars)
    if isinstance(value, bool):
        return draw(st.sampled_from([not value, int(value), str(value).lower()]))
    if isinstance(value, int | float):
        return draw(
            st.sampled_from([value + 1, value - 1, -value, value * 1000, float(value), str(value), 2**64 + value])
            | st.sampled_from([math.nan, math.inf, -0.0, 0])
        )
    if isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        return draw(st.sampled_from([value[:i] + value[i + 1 :], [*value, value[i]], [], value[i]]))
    if isinstance(value, dict):
        return {**value, draw(st.text(max_size=8)): draw(_ADVERSARIAL_SCALARS)}
    return draw(_ADVERSARIAL_VALUES)


@settings(max_examples=2000)
@given(data=st.data())
def test_adversarial_values_in_the_example_parse_or_raise_config_error(data: st.DataObject) -> None:
    base = copy.deepcopy(_EXAMPLE)
    for _ in range(data.draw(st.integers(1, 2), label="mutations")):  # not more: the first error hides the rest
        table = data.draw(st.sampled_from(sorted(_PATHS_BY_TABLE)), label="table")
        path = data.draw(
            st.sampled_from(_LEAVES_BY_TABLE[table]) | st.sampled_from(_PATHS_BY_TABLE[table]), label="path"
        )
        parent: Any = base
        try:
            for step in path[:-1]:
                parent = parent[step]
            how = data.draw(st.sampled_from(["mutate", "replace", "mutate", "delete"]), label="how")
            if how == "delete":
                del parent[path[-1]]
            elif how == "replace":
                parent[path[-1]] = data.draw(_ADVERSARIAL_VALUES, label="value")
            else:
                parent[path[-1]] = data.draw(_mutated(parent[path[-1]]), label="mutated")
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    _parses_or_config_error(toml_text(base))


_LINES = _EXAMPLE_TEXT.splitlines()
_LITERALS = ["nan", "inf", "-0", "1e400", "0x10", "1_000", '"٣"', "9" * 30, "2027-02-30", "[]", "{}", '"""', "'", "="]


@settings(max_examples=300)
@given(data=st.data())
def test_the_example_text_cut_and_spliced_parses_or_raises_config_error(data: st.DataObject) -> None:
    lines = list(_LINES)
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        edit = data.draw(st.sampled_from(["delete", "duplicate", "move", "value", "splice", "text"]), label="edit")
        if edit == "delete":
            del lines[i]
        elif edit == "duplicate":
            lines.insert(i, lines[i])
        elif edit == "move":
            lines.insert(data.draw(st.integers(0, len(lines)), label="to"), lines.pop(i))
        elif edit == "value" and "=" in lines[i]:
            literal = data.draw(st.sampled_from(_LITERALS) | _ADVERSARIAL_SCALARS.map(toml_value), label="literal")
            lines[i] = lines[i].split("=", 1)[0] + "= " + literal
        elif edit == "splice":
            at = data.draw(st.integers(0, len(lines[i])), label="at")
            lines[i] = lines[i][:at] + data.draw(st.text(max_size=6), label="splice") + lines[i][at:]
        else:
            lines.insert(i, data.draw(st.text(max_size=40), label="text"))
        if not lines:
            break
    _parses_or_config_error("\n".join(lines) + "\n")


# -- the control socket's requests -----------------------------------------------------------------
_CONFIG = load_config(EXAMPLES / "nerima.toml")
_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_FIELDS = ["cmd", "service", "counter", "ticket", "to", "services", "printer", "at", "json", "id"]
_MOMENTS = st.datetimes(timezones=st.none() | st.timezones()).map(lambda t: t.isoformat())
_REQUEST_VALUES = st.one_of(
    _JSON,
    st.sampled_from([*control.COMMANDS, "reprint", "show", "ping", "status", "move", "1", "A-001", ""]),
    st.lists(st.sampled_from(["move", "seal", "", "x"]), max_size=3),
    _MOMENTS,
    _MOMENTS.map(lambda s: s[: len(s) // 2]),  # cut short
    st.sampled_from(["0001-01-01T00:00+00:00", "9999-12-31T23:59:59-23:59", "2027-03-15", "20270315T0930", "T"]),
)
_REQUESTS = st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=6), _REQUEST_VALUES, max_size=5)


_SOCKET_LINES = st.one_of(
    st.binary(max_size=200),
    _REQUESTS.map(lambda r: json.dumps(r).encode()),
    _REQUESTS.map(lambda r: json.dumps(r).encode()).flatmap(
        lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda i: b[:i])  # cut short
    ),
    st.integers(1, 200_000).map(lambda n: b"[" * n),  # nested deeper than the parser recurses
    st.integers(1, 200_000).map(lambda n: b'{"a":' * n),
)


@settings(max_examples=400)
@given(_SOCKET_LINES)
def test_any_line_on_the_socket_is_a_request_object_or_bad_request(line: bytes) -> None:
    """The control socket's line parser: one JSON object, or BadRequest naming the problem —
    never another exception (a deeply nested line once raised RecursionError on the loop)."""
    try:
        req = control.parse_line(line)
    except control.BadRequest as exc:
        assert str(exc) == "not a JSON object on one line"
        return
    assert isinstance(req, dict) and req == json.loads(line)


@settings(max_examples=500)
@given(_REQUESTS)
def test_any_request_is_bad_request_or_a_command_built_from_its_own_fields(req: dict[str, Any]) -> None:
    # Round-tripped through JSON as the socket reads it: only what a line can hold.
    req = json.loads(json.dumps(req))
    try:
        command = control.build_command(req)
    except control.BadRequest:
        pass
    else:
        assert req["cmd"] in control.COMMANDS and type(command).__module__ == m.__name__
        sent = {v for v in req.values() if isinstance(v, str)}
        for f in dataclasses.fields(command):
            value = getattr(command, f.name)
            if f.name == "token":
                continue  # made by the gateway, not the request
            if isinstance(value, tuple):
                assert value and all(isinstance(s, str) and s for s in value) and list(value) == req["services"]
            elif value is not None:
                assert isinstance(value, str) and value and value in sent, (f.name, value)
    try:
        ticket, printer = control.reprint_request(req)
    except control.BadRequest:
        pass
    else:
        assert ticket == req["ticket"] and isinstance(ticket, str) and ticket
        assert printer is None or (printer == req["printer"] and isinstance(printer, str) and printer)
    try:
        key = control.request_key(req)
    except control.BadRequest:
        pass
    else:
        assert key == (None if req.get("id") is None else f"ctl:{req['id']}")


_WALL = dt.datetime(2027, 3, 15, 10, 0, tzinfo=_CONFIG.tz)  # the gateway's clock on a live floor
_NEAR_WALL = st.builds(
    lambda seconds, zone: (_WALL + dt.timedelta(seconds=seconds)).astimezone(zone).isoformat(),
    st.integers(-400, 400) | st.integers(-(10**6), 10**6),
    st.sampled_from([dt.UTC, _CONFIG.tz, dt.timezone(dt.timedelta(hours=-11))]),
)
_ATS = st.one_of(_REQUEST_VALUES, _NEAR_WALL, _NEAR_WALL.map(lambda s: s[:19]))  # [:19]: naive, local time


@settings(max_examples=400)
@given(_ATS, st.sampled_from([None, _WALL]))
def test_any_at_is_bad_request_or_a_moment_the_floor_can_use(at: Any, wall: dt.datetime | None) -> None:
    req = json.loads(json.dumps({"cmd": "issue", "at": at}))
    try:
        moment = control.request_time(req, _CONFIG, wall)
    except control.BadRequest:
        return
    if moment is None:
        assert req["at"] is None
        return
    # Aware, and usable: the journal turns it into the office's day and UTC.
    assert moment.tzinfo is not None
    local = moment.astimezone(_CONFIG.tz)
    moment.astimezone(dt.UTC)
    if wall is not None:  # a live floor: within the tolerance, on the gateway's business day
        assert abs(moment - wall) <= AT_TOLERANCE and local.date() == wall.date()


# -- stored event records ------------------------------------------------------------------------
_TEXT = st.text(max_size=16)
_JSON_INT = st.integers(-(2**63), 2**63 - 1)  # what orjson writes (the journal's encoder)
# JSON holds no NaN or infinity (orjson writes null for them), nor integers past 64 bits.
_JSON_OBJECTS = st.dictionaries(
    _TEXT, st.none() | st.booleans() | _JSON_INT | st.floats(allow_nan=False, allow_infinity=False) | _TEXT
)


def _field_values(hint: Any) -> st.SearchStrategy[Any]:
    """Values of an event field's annotated type, as its record holds them (JSON)."""
    if hint is str:
        return _TEXT
    if hint is bool:
        return st.booleans()
    if hint is int:
        return _JSON_INT
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return st.lists(_field_values(args[0]), max_size=3)
    if origin is dict or hint is Any:
        return _JSON_OBJECTS
    if type(None) in args:  # X | None
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | _field_values(inner)
    raise AssertionError(f"no strategy for {hint!r}: add one")


@st.composite
def events(draw: st.DrawFn) -> ev.Event:
    cls = draw(st.sampled_from(list(ev.EVENT_TYPES.values())))
    hints = typing.get_type_hints(cls)
    own = {f.name: draw(_field_values(hints[f.name])) for f in dataclasses.fields(cls)[2:]}
    zone = draw(st.none() | st.integers(-1439, 1439).map(lambda mins: dt.timezone(dt.timedelta(minutes=mins))))
    ts = draw(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1)))
    return cls(
        seq=draw(st.integers(1, 2**62)), ts=ts.replace(microsecond=ts.microsecond // 1000 * 1000, tzinfo=zone), **own
    )


@settings(max_examples=300)
@given(events())
def test_every_event_type_round_trips_through_its_stored_record(event: ev.Event) -> None:
    """As the journal stores it (format_ts, orjson body) and reads it back (_decode_rows)."""
    row = (event.seq, ev.format_ts(event.ts), event.TYPE, orjson.dumps(event.body()).decode())
    (again,) = _decode_rows(iter([row]))
    assert again == event and again.body() == event.body()


_TYPES = st.sampled_from(sorted(ev.EVENT_TYPES)) | _TEXT


@st.composite
def record_bodies(draw: st.DrawFn) -> Any:
    """A record's body: a real event's with a few keys dropped, added or retyped, or any JSON."""
    if draw(st.booleans()):
        return draw(_JSON)
    body = dict(draw(events()).body())
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(body)) | _TEXT) if body else draw(_TEXT)
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(_JSON)
    return body


@settings(max_examples=400)
@given(st.integers(0, 2**62), _TEXT | _MOMENTS, _TYPES, record_bodies())
def test_any_record_is_an_event_or_event_format_error(seq: int, ts: str, type_: str, body: Any) -> None:
    try:
        event = ev.event_from_record(seq, ts, type_, body)
    except ev.EventFormatError as err:
        assert str(err).startswith(f"event {seq}")
    else:
        assert (event.TYPE, event.seq, event.body()) == (type_, seq, body)


@settings(max_examples=300)
@given(st.integers(1, 2**62), _MOMENTS, _TYPES, st.one_of(_TEXT, record_bodies().map(json.dumps)))
def test_any_stored_row_is_an_event_or_journal_corrupt(seq: int, ts: str, type_: str, body: str) -> None:
    """The journal's reader of a row (its body any text: a torn or hand-edited line)."""
    try:
        (event,) = _decode_rows(iter([(seq, ts, type_, body)]))
    except JournalCorrupt as err:
        assert f"event {seq}" in str(err)
    else:
        assert (event.TYPE, event.seq) == (type_, seq)
