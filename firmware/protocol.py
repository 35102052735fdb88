"""The counterfloor bus protocol, version 1: every frame between the gateway and the devices.

Owns the byte layout of each message (docs/protocol.md is its spec, with test vectors), the COBS
framing and CRC-16, the streaming Decoder, and the small pure helpers both ends need for sequence
numbers and retries (DuplicateFilter, EventQueue, EventTracker, retry_delay_ms). Touches no
hardware, no clock, no I/O and imports nothing: the devices import it as `protocol` under
MicroPython, the gateway as `firmware.protocol` under CPython.

Written in the subset both interpreters run: no dataclasses, typing, f-strings or keyword
arguments to int.to_bytes; bytes, bytearray and memoryview only. Frames are small classes that
are treated as immutable: build a new one rather than changing a field.
"""

PROTOCOL_VERSION = 1

# Sizes. A raw frame is header + payload + CRC, before COBS. On the wire it is
# 0x00, COBS(raw frame), 0x00.
HEADER_LEN = 3  # address, type, sequence number
CRC_LEN = 2
MIN_FRAME = HEADER_LEN + CRC_LEN
MAX_FRAME = 128
MAX_PAYLOAD = MAX_FRAME - HEADER_LEN - CRC_LEN  # 123
MAX_ENCODED = MAX_FRAME + 1 + MAX_FRAME // 254  # COBS adds one byte per started 254-byte block
MAX_WIRE = MAX_ENCODED + 2  # with both delimiters

ADDR_MIN = 1
ADDR_MAX = 16

# Timing (docs/protocol.md, "Timing"). The gateway alone uses these; they are here so both
# sides and the latency arithmetic read the same numbers.
BAUD = 115200
BITS_PER_BYTE = 10  # start + 8 data + stop
TURNAROUND_US = 1000  # a device starts its reply within this after a request's last byte
REPLY_TIMEOUT_US = 2500  # no complete reply this long after the request's last byte: missed
MAX_RETRIES = 3  # a command is sent at most 1 + MAX_RETRIES times
BACKOFF_MS = 10  # before retry n the gateway waits BACKOFF_MS * 2 ** (n - 1)
OFFLINE_AFTER_MISSED_POLLS = 2

# Device kinds (HELLO).
KIND_DISPENSER = 1
KIND_COUNTER_PAD = 2
KIND_CALL_DISPLAY = 3
KINDS = (KIND_DISPENSER, KIND_COUNTER_PAD, KIND_CALL_DISPLAY)

# Capability bits (HELLO); unknown bits are carried, and ignored by receivers.
CAP_TEXT = 0x0001  # shows SHOW_TEXT
CAP_CHIME = 0x0002  # has a speaker for CHIME and calls
CAP_RECENT = 0x0004  # shows the RECENT list
CAP_NUMBER = 0x0008  # 4-character DISPLAY_NUMBER
CAP_STATUS_LAMP = 0x0010
CAP_LAMPS = 0x0020  # service-button lamps
CAP_FW_UPDATE = 0x0040  # accepts FW_BEGIN / FW_CHUNK / FW_END / FW_COMMIT

# Reset causes (HELLO).
RESET_UNKNOWN = 0
RESET_POWER_ON = 1
RESET_PIN = 2
RESET_WATCHDOG = 3
RESET_SOFT = 4
RESET_FW_UPDATE = 5
RESET_CAUSE_MAX = 5

# Counter pad keys (KEY).
KEY_CALL_NEXT = 1
KEY_DONE = 2
KEY_RECALL = 3
KEY_NO_SHOW = 4
KEY_TRANSFER = 5  # arg: the target service index
KEY_PAUSE = 6
KEY_MAX = 6

# NAK reasons.
NAK_UNSUPPORTED = 1  # this device kind does not handle that message type
NAK_OUT_OF_RANGE = 2  # a value this device cannot use (service index, text too wide); info: which field
NAK_BUSY = 3  # cannot act now: retry after back-off
NAK_FW_SEQUENCE = 4  # firmware message out of order; info: the offset the device expects next
NAK_FW_VERIFY = 5  # FW_END: size or SHA-256 does not match FW_BEGIN
NAK_FW_TOO_LARGE = 6  # FW_BEGIN: the image does not fit; info: the largest size that does
NAK_REASON_MAX = 6

# CALL flags: exactly one of NEW and RECALL; the other bits are reserved and zero.
CALL_NEW = 0x01
CALL_RECALL = 0x02

# STATUS_LAMP colours.
LAMP_OFF = 0
LAMP_GREEN = 1
LAMP_AMBER = 2
LAMP_RED = 3

# CHIME tones.
TONE_CALL = 0
TONE_RECALL = 1
TONE_ATTENTION = 2

MAX_SERVICES = 16  # LAMPS is a 16-bit mask; BUTTON_PRESS and KEY_TRANSFER carry an index 0..15
MAX_TICKET = 8  # bytes of UTF-8
MAX_COUNTER = 16
MAX_LINES = 4
MAX_LINE = 60
MAX_RECENT = 8
MAX_CHUNK = 112
SHA256_LEN = 32


class ProtocolError(ValueError):
    """A frame or a field that the protocol does not allow; the message names what is wrong."""


# --- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0; "123456789" -> 0x29B1


def _crc_table():
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of `data` (bytes-like); pass a previous result as `crc` to continue."""
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFF00) ^ table[((crc >> 8) ^ b) & 0xFF]
    return crc


# --- COBS (Cheshire & Baker): removes every 0x00 so that 0x00 can delimit frames


def cobs_encode(data):
    """COBS of `data`: no 0x00 in the result; one byte longer per started 254 bytes."""
    out = bytearray(1)
    code_at = 0
    code = 1
    n = len(data)
    i = 0
    for b in data:
        i += 1
        if b:
            out.append(b)
            code += 1
        if not b or code == 0xFF:
            out[code_at] = code
            code = 1
            # A full block that ends the input needs no further code byte.
            if not b or i < n:
                code_at = len(out)
                out.append(0)
            else:
                code_at = -1
    if code_at >= 0:
        out[code_at] = code
    return bytes(out)


def cobs_decode(data):
    """The bytes that COBS-encoded to `data`, or None if `data` is not a valid COBS encoding."""
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            return None
        i += 1
        while i < end:
            if data[i] == 0:
                return None
            out.append(data[i])
            i += 1
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --- Field checks shared by constructors (building a frame) and parsers (reading one)


def _int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or value > hi:
        raise ProtocolError("%s must be an integer %d..%d, got %r" % (name, lo, hi, value))
    return value


def _utf8_ok(b):
    """Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF) without control
    characters U+0000..U+001F and U+007F. MicroPython's own decoder is laxer, so check here."""
    n = len(b)
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            if c < 0x20 or c == 0x7F:
                return False
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            k, lo, hi = 2, 0xA0, 0xBF
        elif c == 0xED:
            k, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= c <= 0xEF:
            k, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            k, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            k, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            k, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + k >= n or not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += k + 1
    return True


def _text(name, value, lo, hi):
    """The UTF-8 bytes of `value`, checked: a str of lo..hi bytes, printable, valid."""
    if not isinstance(value, str):
        raise ProtocolError("%s must be a str, got %r" % (name, value))
    try:
        b = value.encode("utf-8")
    except UnicodeError:
        raise ProtocolError("%s is not encodable as UTF-8" % name)
    if len(b) < lo or len(b) > hi:
        raise ProtocolError("%s must be %d..%d bytes of UTF-8, got %d" % (name, lo, hi, len(b)))
    if not _utf8_ok(b):
        raise ProtocolError("%s contains a control character" % name)
    return b


def _lp(b):
    """Length-prefixed bytes: one length byte, then the bytes."""
    return bytes((len(b),)) + b


class _Reader:
    """Reads a payload field by field; raises ProtocolError when it runs short."""

    def __init__(self, data, start, end):
        self.data = data
        self.i = start
        self.end = end

    def take(self, k):
        if self.i + k > self.end:
            raise ProtocolError("payload too short")
        v = bytes(self.data[self.i : self.i + k])
        self.i += k
        return v

    def u8(self):
        if self.i >= self.end:
            raise ProtocolError("payload too short")
        self.i += 1
        return self.data[self.i - 1]

    def u16(self):
        return int.from_bytes(self.take(2), "big")

    def u32(self):
        return int.from_bytes(self.take(4), "big")

    def text(self, name, lo, hi):
        b = self.take(self.u8())
        if len(b) < lo or len(b) > hi or not _utf8_ok(b):
            raise ProtocolError("%s is not %d..%d bytes of printable UTF-8" % (name, lo, hi))
        return b.decode("utf-8")

    def done(self):
        if self.i != self.end:
            raise ProtocolError("%d unexpected payload bytes" % (self.end - self.i))


# --- Frames


class Frame:
    """One message. Subclasses set TYPE, NAME and FIELDS (payload order; also the constructor's
    arguments after addr and seq) and override payload() and _parse(); constructors check every
    field so that a frame that exists can always be encoded."""

    TYPE = -1
    NAME = "FRAME"
    FIELDS = ()  # type: tuple[str, ...]

    def __init__(self, addr, seq):
        self.addr = _int("addr", addr, ADDR_MIN, ADDR_MAX)
        self.seq = _int("seq", seq, 0, 255)

    def payload(self):
        return b""

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq)

    def _check_size(self):
        n = len(self.payload())
        if n > MAX_PAYLOAD:
            raise ProtocolError("%s payload is %d bytes, at most %d fit" % (self.NAME, n, MAX_PAYLOAD))

    @property
    def is_reply(self):
        """True for device -> gateway messages (type 0x80 and up)."""
        return self.TYPE >= 0x80

    def fields(self):
        """The payload fields as a dict, in FIELDS order."""
        d = {}  # type: dict
        for name in self.FIELDS:
            d[name] = getattr(self, name)
        return d

    def to_raw(self):
        """Header + payload + CRC, before COBS."""
        body = bytes((self.addr, self.TYPE, self.seq)) + self.payload()
        return body + crc16(body).to_bytes(2, "big")

    def to_bytes(self):
        """The frame as sent on the wire: 0x00, COBS(raw frame), 0x00."""
        return b"\x00" + cobs_encode(self.to_raw()) + b"\x00"

    @classmethod
    def from_raw(cls, raw):
        """The frame in `raw` (header + payload + CRC); ProtocolError naming what is wrong."""
        err = _raw_error(raw)
        if err:
            raise ProtocolError(_ERROR_TEXT[err] + " (%d bytes: %s)" % (len(raw), bytes(raw).hex()))
        frame = _parse_raw(raw)
        if not isinstance(frame, cls):
            raise ProtocolError("expected %s, got %s" % (cls.NAME, frame.NAME))
        return frame

    @classmethod
    def from_bytes(cls, data):
        """The one frame in `data` as it was on the wire (the delimiters are optional)."""
        data = bytes(data)
        start = 0
        end = len(data)
        while start < end and data[start] == 0:
            start += 1
        while end > start and data[end - 1] == 0:
            end -= 1
        if start == end:
            raise ProtocolError("no frame: empty or only delimiters")
        if end - start > MAX_ENCODED:
            raise ProtocolError("frame too long: %d encoded bytes, at most %d" % (end - start, MAX_ENCODED))
        raw = cobs_decode(data[start:end])
        if raw is None:
            raise ProtocolError("not a single valid COBS frame: %s" % data.hex())
        return cls.from_raw(raw)

    def __eq__(self, other):
        return (
            type(self) is type(other)
            and self.addr == other.addr
            and self.seq == other.seq
            and self._values() == other._values()
        )

    def __ne__(self, other):
        return not self.__eq__(other)

    def _values(self):
        return tuple([getattr(self, name) for name in self.FIELDS])

    def __repr__(self):
        parts = ["addr=%d" % self.addr, "seq=%d" % self.seq]
        for name in self.FIELDS:
            parts.append("%s=%r" % (name, getattr(self, name)))
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


# Requests: gateway -> device, types 0x01..0x7F.


class Poll(Frame):
    """Asks for the device's oldest unacknowledged event. `ack`: the number of the last event the
    gateway has accepted from this device (0: none since its HELLO)."""

    TYPE = 0x01
    NAME = "POLL"
    FIELDS = ("ack",)

    def __init__(self, addr, seq, ack=0):
        Frame.__init__(self, addr, seq)
        self.ack = _int("ack", ack, 0, 255)

    def payload(self):
        return bytes((self.ack,))

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u8())


class Identify(Frame):
    """Asks for HELLO; starts a fresh session (the device forgets its last request)."""

    TYPE = 0x02
    NAME = "IDENTIFY"


class OutOfService(Frame):
    """on=1: stop taking input and show the out-of-service state; on=0: back in service."""

    TYPE = 0x03
    NAME = "OUT_OF_SERVICE"
    FIELDS = ("on",)

    def __init__(self, addr, seq, on):
        Frame.__init__(self, addr, seq)
        self.on = _int("on", on, 0, 1)

    def payload(self):
        return bytes((self.on,))

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u8())


class ShowText(Frame):
    """Replaces the message lines (0..4, e.g. Japanese then English); no lines clears them."""

    TYPE = 0x04
    NAME = "SHOW_TEXT"
    FIELDS = ("lines",)

    def __init__(self, addr, seq, lines):
        Frame.__init__(self, addr, seq)
        if isinstance(lines, str) or not isinstance(lines, (list, tuple)):
            raise ProtocolError("lines must be a list of str, got %r" % (lines,))
        if len(lines) > MAX_LINES:
            raise ProtocolError("at most %d lines, got %d" % (MAX_LINES, len(lines)))
        for line in lines:
            _text("line", line, 0, MAX_LINE)
        self.lines = tuple(lines)
        self._check_size()

    def payload(self):
        out = bytes((len(self.lines),))
        for line in self.lines:
            out += _lp(line.encode("utf-8"))
        return out

    @classmethod
    def _parse(cls, addr, seq, r):
        n = r.u8()
        if n > MAX_LINES:
            raise ProtocolError("at most %d lines, got %d" % (MAX_LINES, n))
        return cls(addr, seq, [r.text("line", 0, MAX_LINE) for _ in range(n)])


class Lamps(Frame):
    """Dispenser: bit i lit = service i offered (its button works)."""

    TYPE = 0x10
    NAME = "LAMPS"
    FIELDS = ("mask",)

    def __init__(self, addr, seq, mask):
        Frame.__init__(self, addr, seq)
        self.mask = _int("mask", mask, 0, 0xFFFF)

    def payload(self):
        return self.mask.to_bytes(2, "big")

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u16())


class DisplayNumber(Frame):
    """Counter pad: the 4-character display, e.g. "B023"; "    " blanks it."""

    TYPE = 0x20
    NAME = "DISPLAY_NUMBER"
    FIELDS = ("text",)

    def __init__(self, addr, seq, text):
        Frame.__init__(self, addr, seq)
        b = _text("text", text, 4, 4)
        for c in b:
            if c > 0x7E:
                raise ProtocolError("text must be 4 ASCII characters, got %r" % (text,))
        self.text = text

    def payload(self):
        return self.text.encode("utf-8")

    @classmethod
    def _parse(cls, addr, seq, r):
        b = r.take(4)
        if not _utf8_ok(b):
            raise ProtocolError("text must be 4 printable ASCII characters")
        return cls(addr, seq, b.decode("utf-8"))


class StatusLamp(Frame):
    """Counter pad: the status lamp's colour (LAMP_*) and blink (0 steady, 1 blinking)."""

    TYPE = 0x21
    NAME = "STATUS_LAMP"
    FIELDS = ("colour", "blink")

    def __init__(self, addr, seq, colour, blink=0):
        Frame.__init__(self, addr, seq)
        self.colour = _int("colour", colour, LAMP_OFF, LAMP_RED)
        self.blink = _int("blink", blink, 0, 1)

    def payload(self):
        return bytes((self.colour, self.blink))

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u8(), r.u8())


class Call(Frame):
    """Call display: show `ticket` called to `counter`. flags: CALL_NEW (a first call: chime,
    top of the list) or CALL_RECALL (called again)."""

    TYPE = 0x30
    NAME = "CALL"
    FIELDS = ("flags", "ticket", "counter")

    def __init__(self, addr, seq, flags, ticket, counter):
        Frame.__init__(self, addr, seq)
        if flags not in (CALL_NEW, CALL_RECALL) or isinstance(flags, bool):
            raise ProtocolError("flags must be CALL_NEW (1) or CALL_RECALL (2), got %r" % (flags,))
        self.flags = flags
        _text("ticket", ticket, 1, MAX_TICKET)
        _text("counter", counter, 1, MAX_COUNTER)
        self.ticket = ticket
        self.counter = counter

    def payload(self):
        return bytes((self.flags,)) + _lp(self.ticket.encode("utf-8")) + _lp(self.counter.encode("utf-8"))

    @classmethod
    def _parse(cls, addr, seq, r):
        flags = r.u8()
        ticket = r.text("ticket", 1, MAX_TICKET)
        return cls(addr, seq, flags, ticket, r.text("counter", 1, MAX_COUNTER))


class Recent(Frame):
    """Call display: the recent calls, newest first, as (ticket, counter) pairs; 0..8 of them.
    Sent to resync a display: the first entry is its current call, shown without a chime."""

    TYPE = 0x31
    NAME = "RECENT"
    FIELDS = ("entries",)

    def __init__(self, addr, seq, entries):
        Frame.__init__(self, addr, seq)
        if not isinstance(entries, (list, tuple)):
            raise ProtocolError("entries must be a list of (ticket, counter), got %r" % (entries,))
        if len(entries) > MAX_RECENT:
            raise ProtocolError("at most %d entries, got %d" % (MAX_RECENT, len(entries)))
        out = []
        for entry in entries:
            if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                raise ProtocolError("an entry must be (ticket, counter), got %r" % (entry,))
            _text("ticket", entry[0], 1, MAX_TICKET)
            _text("counter", entry[1], 1, MAX_COUNTER)
            out.append((entry[0], entry[1]))
        self.entries = tuple(out)
        self._check_size()

    def payload(self):
        out = bytes((len(self.entries),))
        for ticket, counter in self.entries:
            out += _lp(ticket.encode("utf-8")) + _lp(counter.encode("utf-8"))
        return out

    @classmethod
    def _parse(cls, addr, seq, r):
        n = r.u8()
        if n > MAX_RECENT:
            raise ProtocolError("at most %d entries, got %d" % (MAX_RECENT, n))
        entries = []
        for _ in range(n):
            ticket = r.text("ticket", 1, MAX_TICKET)
            entries.append((ticket, r.text("counter", 1, MAX_COUNTER)))
        return cls(addr, seq, entries)


class Chime(Frame):
    """Call display: play `tone` (TONE_*) `repeat` times (1..3)."""

    TYPE = 0x32
    NAME = "CHIME"
    FIELDS = ("tone", "repeat")

    def __init__(self, addr, seq, tone, repeat=1):
        Frame.__init__(self, addr, seq)
        self.tone = _int("tone", tone, TONE_CALL, TONE_ATTENTION)
        self.repeat = _int("repeat", repeat, 1, 3)

    def payload(self):
        return bytes((self.tone, self.repeat))

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u8(), r.u8())


class Clear(Frame):
    """Call display: blank the current call and the recent list."""

    TYPE = 0x33
    NAME = "CLEAR"


class FwBegin(Frame):
    """Starts (or restarts) a firmware bundle transfer of `size` bytes whose SHA-256 is `sha256`;
    `version` is the bundle's (major, minor, patch)."""

    TYPE = 0x40
    NAME = "FW_BEGIN"
    FIELDS = ("size", "sha256", "version")

    def __init__(self, addr, seq, size, sha256, version):
        Frame.__init__(self, addr, seq)
        self.size = _int("size", size, 1, 0xFFFFFFFF)
        if not isinstance(sha256, (bytes, bytearray)) or len(sha256) != SHA256_LEN:
            raise ProtocolError("sha256 must be %d bytes, got %r" % (SHA256_LEN, sha256))
        self.sha256 = bytes(sha256)
        self.version = _version(version)

    def payload(self):
        return self.size.to_bytes(4, "big") + self.sha256 + bytes(self.version)

    @classmethod
    def _parse(cls, addr, seq, r):
        size = r.u32()
        sha = r.take(SHA256_LEN)
        return cls(addr, seq, size, sha, tuple(r.take(3)))


class FwChunk(Frame):
    """`data` (1..112 bytes) of the bundle at byte `offset`; chunks go in order, one at a time."""

    TYPE = 0x41
    NAME = "FW_CHUNK"
    FIELDS = ("offset", "data")

    def __init__(self, addr, seq, offset, data):
        Frame.__init__(self, addr, seq)
        self.offset = _int("offset", offset, 0, 0xFFFFFFFF)
        if not isinstance(data, (bytes, bytearray)) or not 1 <= len(data) <= MAX_CHUNK:
            raise ProtocolError("data must be 1..%d bytes, got %r" % (MAX_CHUNK, data))
        self.data = bytes(data)

    def payload(self):
        return self.offset.to_bytes(4, "big") + self.data

    @classmethod
    def _parse(cls, addr, seq, r):
        offset = r.u32()
        return cls(addr, seq, offset, r.take(r.end - r.i))


class FwEnd(Frame):
    """All chunks sent: the device checks size and SHA-256 (ACK, or NAK FW_VERIFY)."""

    TYPE = 0x42
    NAME = "FW_END"


class FwCommit(Frame):
    """Install the verified bundle: the device ACKs, then restarts into it."""

    TYPE = 0x43
    NAME = "FW_COMMIT"


# Replies: device -> gateway, types 0x80..0xFF. A reply echoes the seq of its request.


class Ack(Frame):
    """Done (a command), or nothing to report (a POLL)."""

    TYPE = 0x80
    NAME = "ACK"


class Nak(Frame):
    """Refused: `reason` (NAK_*) and `info` (meaning per reason, else 0)."""

    TYPE = 0x81
    NAME = "NAK"
    FIELDS = ("reason", "info")

    def __init__(self, addr, seq, reason, info=0):
        Frame.__init__(self, addr, seq)
        self.reason = _int("reason", reason, 1, NAK_REASON_MAX)
        self.info = _int("info", info, 0, 0xFFFFFFFF)

    def payload(self):
        return bytes((self.reason,)) + self.info.to_bytes(4, "big")

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u8(), r.u32())


class Hello(Frame):
    """Who the device is: the answer to IDENTIFY, and to every POLL after a reset until IDENTIFY."""

    TYPE = 0x82
    NAME = "HELLO"
    FIELDS = ("proto", "kind", "version", "caps", "reset_cause")

    def __init__(self, addr, seq, proto, kind, version, caps, reset_cause):
        Frame.__init__(self, addr, seq)
        self.proto = _int("proto", proto, 1, 255)
        if kind not in KINDS or isinstance(kind, bool):
            raise ProtocolError("kind must be one of %r, got %r" % (KINDS, kind))
        self.kind = kind
        self.version = _version(version)
        self.caps = _int("caps", caps, 0, 0xFFFF)
        self.reset_cause = _int("reset_cause", reset_cause, 0, RESET_CAUSE_MAX)

    def payload(self):
        return (
            bytes((self.proto, self.kind))
            + bytes(self.version)
            + self.caps.to_bytes(2, "big")
            + bytes((self.reset_cause,))
        )

    @classmethod
    def _parse(cls, addr, seq, r):
        proto = r.u8()
        kind = r.u8()
        version = tuple(r.take(3))
        return cls(addr, seq, proto, kind, version, r.u16(), r.u8())


class ButtonPress(Frame):
    """Dispenser event `ev` (1..255): the button of service index `service` was pressed."""

    TYPE = 0x90
    NAME = "BUTTON_PRESS"
    FIELDS = ("ev", "service")

    def __init__(self, addr, seq, ev, service):
        Frame.__init__(self, addr, seq)
        self.ev = _int("ev", ev, 1, 255)
        self.service = _int("service", service, 0, MAX_SERVICES - 1)

    def payload(self):
        return bytes((self.ev, self.service))

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u8(), r.u8())


class Key(Frame):
    """Counter pad event `ev` (1..255): `key` (KEY_*) pressed; `arg` is the target service index
    for KEY_TRANSFER and 0 for the others."""

    TYPE = 0xA0
    NAME = "KEY"
    FIELDS = ("ev", "key", "arg")

    def __init__(self, addr, seq, ev, key, arg=0):
        Frame.__init__(self, addr, seq)
        self.ev = _int("ev", ev, 1, 255)
        self.key = _int("key", key, 1, KEY_MAX)
        if key == KEY_TRANSFER:
            self.arg = _int("arg", arg, 0, MAX_SERVICES - 1)
        else:
            self.arg = _int("arg", arg, 0, 0)

    def payload(self):
        return bytes((self.ev, self.key, self.arg))

    @classmethod
    def _parse(cls, addr, seq, r):
        return cls(addr, seq, r.u8(), r.u8(), r.u8())


def _version(v):
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise ProtocolError("version must be (major, minor, patch), got %r" % (v,))
    for part in v:
        _int("version part", part, 0, 255)
    return tuple(v)


FRAME_CLASSES = (
    Poll,
    Identify,
    OutOfService,
    ShowText,
    Lamps,
    DisplayNumber,
    StatusLamp,
    Call,
    Recent,
    Chime,
    Clear,
    FwBegin,
    FwChunk,
    FwEnd,
    FwCommit,
    Ack,
    Nak,
    Hello,
    ButtonPress,
    Key,
)
TYPES = {}  # type code -> class
BY_NAME = {}  # NAME -> class
for _cls in FRAME_CLASSES:
    TYPES[_cls.TYPE] = _cls
    BY_NAME[_cls.NAME] = _cls


_ERROR_TEXT = {
    "too_short": "frame too short",
    "too_long": "frame too long",
    "bad_crc": "bad CRC",
    "unknown_type": "unknown message type",
}


def _raw_error(raw):
    """The Decoder counter that `raw` belongs to if its framing is wrong, else None."""
    n = len(raw)
    if n < MIN_FRAME:
        return "too_short"
    if n > MAX_FRAME:
        return "too_long"
    if crc16(memoryview(raw)[: n - 2]) != (raw[n - 2] << 8) | raw[n - 1]:
        return "bad_crc"
    if raw[1] not in TYPES:
        return "unknown_type"
    return None


def _parse_raw(raw):
    """The frame in a raw frame that passed _raw_error; ProtocolError if its content is wrong."""
    cls = TYPES[raw[1]]
    r = _Reader(raw, HEADER_LEN, len(raw) - CRC_LEN)
    frame = cls._parse(raw[0], raw[2], r)
    r.done()
    return frame


class Decoder:
    """Turns received bytes into frames. feed() takes any bytes-like chunk (one byte or many) and
    returns the complete valid frames in it, in order. Never raises on what it is fed: a bad
    candidate frame is dropped and counted, and decoding resumes at the next 0x00. The buffer is
    fixed (MAX_ENCODED bytes); a longer run without a delimiter is dropped as too long."""

    def __init__(self):
        self._buf = bytearray(MAX_ENCODED)
        self._n = 0
        self._skipping = False
        self.frames = 0  # valid frames returned
        self.bad_cobs = 0
        self.bad_crc = 0
        self.too_long = 0
        self.too_short = 0
        self.unknown_type = 0
        self.malformed = 0  # CRC good, but address or payload not allowed for the type

    def feed(self, data):
        out = []  # type: list
        buf = self._buf
        for b in data:
            if b == 0:
                if self._n and not self._skipping:
                    self._finish(out)
                self._n = 0
                self._skipping = False
            elif self._skipping:
                pass
            elif self._n < MAX_ENCODED:
                buf[self._n] = b
                self._n += 1
            else:
                self._skipping = True
                self.too_long += 1
        return out

    def _finish(self, out):
        raw = cobs_decode(memoryview(self._buf)[: self._n])
        if raw is None:
            self.bad_cobs += 1
            return
        err = _raw_error(raw)
        if err:
            setattr(self, err, getattr(self, err) + 1)
            return
        try:
            frame = _parse_raw(raw)
        except ValueError:
            self.malformed += 1
            return
        self.frames += 1
        out.append(frame)

    def reset(self):
        """Drop a partly received frame (the counters stay)."""
        self._n = 0
        self._skipping = False

    @property
    def dropped(self):
        """How many candidate frames were dropped, for any reason."""
        return self.bad_cobs + self.bad_crc + self.too_long + self.too_short + self.unknown_type + self.malformed

    def counters(self):
        return {
            "frames": self.frames,
            "bad_cobs": self.bad_cobs,
            "bad_crc": self.bad_crc,
            "too_long": self.too_long,
            "too_short": self.too_short,
            "unknown_type": self.unknown_type,
            "malformed": self.malformed,
        }


# --- Sequence numbers and retries


def next_seq(seq):
    """The gateway's next request seq to one device: 0..255, wrapping."""
    return (seq + 1) & 0xFF


def next_ev(ev):
    """A device's next event number: 1..255, wrapping past 0 (0 means "none" in POLL.ack)."""
    return ev % 255 + 1


def retry_delay_ms(attempt):
    """How long the gateway waits before retry `attempt` (1..MAX_RETRIES) of a command."""
    _int("attempt", attempt, 1, MAX_RETRIES)
    return BACKOFF_MS << (attempt - 1)


class DuplicateFilter:
    """Device side: a request with the same seq and type as the previous one is the gateway
    retrying it (its reply was lost), so the device sends the reply it already sent and does not
    act again: a retried CALL is never shown twice. IDENTIFY is always acted on and starts afresh.

        reply = dup.replay(request)
        if reply is None:
            reply = handle(request).to_bytes()
            dup.remember(request, reply)
        send(reply)
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self._seq = -1
        self._type = -1
        self._reply = None
        self.repeats = 0

    def replay(self, request):
        """The reply bytes to send again if `request` is a retry, else None."""
        if request.TYPE == Identify.TYPE:
            self._seq = -1
            self._type = -1
            self._reply = None
            return None
        if request.seq == self._seq and request.TYPE == self._type and self._reply is not None:
            self.repeats += 1
            return self._reply
        return None

    def remember(self, request, reply):
        """Record `request` as handled, with the reply bytes that were sent for it."""
        self._seq = request.seq
        self._type = request.TYPE
        self._reply = bytes(reply)


class EventQueue:
    """Device side: events (BUTTON_PRESS, KEY) waiting to be collected by POLL, oldest first.
    Each gets a number 1..255; it is sent in answer to every POLL until a POLL acknowledges that
    number, so an event is delivered even when a reply is lost. Bounded: push() refuses (returns
    0) when `capacity` events are waiting."""

    def __init__(self, addr, capacity=8):
        self.addr = _int("addr", addr, ADDR_MIN, ADDR_MAX)
        self.capacity = capacity
        self._items = []
        self._ev = 0
        self.overflows = 0

    def __len__(self):
        return len(self._items)

    def push(self, cls, *args):
        """Queue event `cls` (ButtonPress or Key) with its fields after `ev`; returns its number,
        or 0 if the queue is full. Bad fields raise ProtocolError here, not at POLL time."""
        if len(self._items) >= self.capacity:
            self.overflows += 1
            return 0
        ev = next_ev(self._ev)
        cls(self.addr, 0, ev, *args)
        self._ev = ev
        self._items.append((ev, cls, args))
        return ev

    def answer(self, poll):
        """The reply to `poll`: drops the event it acknowledges, then returns the oldest event
        still waiting, or an ACK when there is none."""
        if self._items and self._items[0][0] == poll.ack:
            self._items.pop(0)
        if self._items:
            ev, cls, args = self._items[0]
            return cls(self.addr, poll.seq, ev, *args)
        return Ack(self.addr, poll.seq)


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
