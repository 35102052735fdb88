"""The gateway's side of the protocol: sequence numbers and retries (EventTracker, next_seq,
next_ev, retry_delay_ms), the tables KINDS, TYPES, BY_NAME and FRAME_CLASSES, and what completes
protocol's classes for the gateway and tests: crc16 in C (CPython), Frame.from_bytes,
Frame.from_raw, Message.from_bytes, frame ==, repr(), fields() and is_reply, Decoder.dropped and
counters(). Reached through protocol (protocol.EventTracker …, which imports this module on first
use; on CPython protocol imports it at once), so that a board, which never uses any of it, does
not hold it on its heap (docs/firmware.md, "Memory"). Not deployed to the boards. Written in the
subset both interpreters run."""

import sys as _sys

# The protocol module that imported this one (firmware.protocol on the gateway, protocol on a
# board or in a check script), for its ProtocolError, constants and helpers.
_p = _sys.modules.get("firmware.protocol") or _sys.modules["protocol"]

# protocol's _E_* message numbers (compiled away there under MicroPython).
_E_EXPECTED = 12
_E_RAW = 17
_E_NOFRAME = 18
_E_ENCODED = 19
_E_COBS = 20

KINDS = (1, 2, 3)

# Timing (docs/protocol.md, "Timing"), reached as protocol.BAUD and so on; the gateway alone uses
# it, so a board does not hold it. A command is sent at most 1 + MAX_RETRIES times, retry n after
# BACKOFF_MS * 2 ** (n - 1); a device starts its reply within TURNAROUND_US and a reply not
# complete REPLY_TIMEOUT_US after the request's last byte is missed; a device that answers
# OFFLINE_AFTER_MISSED_POLLS polls in a row with nothing is offline.
BAUD = 115200
BITS_PER_BYTE = 10
TURNAROUND_US = 1000
REPLY_TIMEOUT_US = 2500
MAX_RETRIES = 3
BACKOFF_MS = 10
OFFLINE_AFTER_MISSED_POLLS = 2


def next_ev(ev):
    """A device's next event number: 1..255, wrapping past 0 (0 means "none" in POLL.ack); the
    same as EventQueue.push counts."""
    return ev % 255 + 1


def next_seq(seq):
    """The gateway's next request seq to one device: 0..255, wrapping."""
    return (seq + 1) & 0xFF


def retry_delay_ms(attempt):
    """How long the gateway waits before retry `attempt` (1..MAX_RETRIES) of a command."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt <= _p.MAX_RETRIES:
        raise _p.ProtocolError("attempt must be an integer 1..%d, got %r" % (_p.MAX_RETRIES, attempt))
    return _p.BACKOFF_MS << (attempt - 1)


class EventTracker:
    """Gateway side, one per device: accepts each event number once, and holds the number that
    the next POLL acknowledges. reset() when the device says HELLO (it numbers afresh)."""

    def __init__(self):
        self.ack = 0

    def reset(self):
        self.ack = 0

    def accept(self, ev):
        """True if event number `ev` is new (act on it), False if it is a repeat."""
        if ev == self.ack:
            return False
        self.ack = ev
        return True


# --- The tables: every message type of protocol's table, made now


def _all_messages():
    return [_p._message(int(line[:2], 16)) for line in _p._MESSAGES.split("\n") if line]


FRAME_CLASSES = tuple(_all_messages())
TYPES = dict([(m.TYPE, m) for m in FRAME_CLASSES])
BY_NAME = dict([(m.NAME, m) for m in FRAME_CLASSES])


# --- What completes protocol's Frame, Message and Decoder


_HELLO_V1_RAW = 13  # header 3 + payload 8 (no boot, no lap) + CRC 2
_parse_current = _p._parse_raw


def _parse_raw(raw):
    """protocol's parser, which also reads a version-1 HELLO (8 payload bytes, before `boot`
    and `lap`) as boot 0 and lap 0, "none": a gateway must still identify, and update over the
    bus, the boards it meets running older firmware; their presses are kept apart in memory
    only, as before (docs/protocol.md, "Versions"). Installed as protocol's _parse_raw, which
    the Decoder and from_raw call."""
    if raw[1] == 0x82 and len(raw) == _HELLO_V1_RAW:
        body = bytes(raw[:-2]) + bytes(5)
        raw = body + _p.crc16(body).to_bytes(2, "big")
    return _parse_current(raw)


def _from_raw(raw):
    """The frame in `raw` (header + payload + CRC); ProtocolError naming what is wrong."""
    err = _p._raw_error(raw)
    if err:
        _p._fail(_E_RAW, _p._say(err), len(raw), bytes(raw).hex())
    return _p._parse_raw(raw)


def _from_bytes(data):
    """The one frame in `data` as it was on the wire (the delimiters are optional)."""
    data = bytes(data)
    start = 0
    end = len(data)
    while start < end and data[start] == 0:
        start += 1
    while end > start and data[end - 1] == 0:
        end -= 1
    if start == end:
        _p._fail(_E_NOFRAME)
    if end - start > _p.MAX_ENCODED:
        _p._fail(_E_ENCODED, end - start, _p.MAX_ENCODED)
    raw = _p.cobs_decode(data[start:end])
    if raw is None:
        _p._fail(_E_COBS, data.hex())
    return _from_raw(raw)


def _message_from_bytes(self, data):
    """Frame.from_bytes, and it must be this type."""
    frame = _from_bytes(data)
    if frame.TYPE != self.TYPE:
        _p._fail(_E_EXPECTED, self.NAME, frame.NAME)
    return frame


def _fields(self):
    """The payload fields as a dict, in FIELDS order."""
    d = {}  # type: dict
    for name in self.FIELDS:
        d[name] = getattr(self, name)
    return d


def _eq(self, other):
    if not isinstance(other, _p.Frame) or self._m is not other._m:
        return False
    for name in ("addr", "seq") + self.FIELDS:
        if getattr(self, name) != getattr(other, name):
            return False
    return True


def _repr(self):
    parts = ["addr=%d" % self.addr, "seq=%d" % self.seq]
    for name in self.FIELDS:
        parts.append("%s=%r" % (name, getattr(self, name)))
    return "%s(%s)" % (self.NAME, ", ".join(parts))


def _is_reply(self):
    """True for device -> gateway messages (type 0x80 and up)."""
    return self.TYPE >= 0x80


def _dropped(self):
    """How many candidate frames were dropped, for any reason."""
    return self.bad_cobs + self.bad_crc + self.too_long + self.too_short + self.unknown_type + self.malformed


def _counters(self):
    d = {"frames": self.frames}
    for k in ("bad_cobs", "bad_crc", "too_long", "too_short", "unknown_type", "malformed"):
        d[k] = getattr(self, k)
    return d


try:  # CPython has protocol's CRC in C; MicroPython's binascii does not
    from binascii import crc_hqx as _crc_hqx  # type: ignore[attr-defined]

    def _crc16_c(data, crc=0xFFFF):
        """CRC-16/CCITT-FALSE of `data` (bytes-like); pass a previous result as `crc` to continue."""
        return _crc_hqx(data, crc)

    setattr(_p, "crc16", _crc16_c)  # the module attribute protocol itself calls
except ImportError:
    pass

setattr(_p, "_parse_raw", _parse_raw)  # the module attribute protocol's Decoder calls
_p.Frame.from_raw = staticmethod(_from_raw)
_p.Frame.from_bytes = staticmethod(_from_bytes)
_p.Frame.fields = _fields
_p.Frame.is_reply = property(_is_reply)
_p.Frame.__eq__ = _eq
_p.Frame.__repr__ = _repr
if _p._HOST:
    _p.Frame.__hash__ = None  # as CPython does for a class that defines __eq__
_p.Message.from_bytes = _message_from_bytes
_p.Decoder.dropped = property(_dropped)
_p.Decoder.counters = _counters
