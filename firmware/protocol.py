"""The counterfloor bus protocol, version 3: every frame between the gateway and the devices.

Owns the byte layout of each message (docs/protocol.md is its spec, with test vectors), the COBS
framing and CRC-16, the streaming Decoder, and the small pure helpers for sequence numbers and
retries: the device's here (DuplicateFilter, EventQueue), the gateway's in protocol_gateway.py
(EventTracker, next_seq, next_ev, retry_delay_ms, and the rest of what only the gateway and tests
use), reached as this module's attributes all the same but never loaded by a board. Touches no
hardware, no clock, no I/O and imports nothing of ours: the devices import it as `protocol` under
MicroPython, the gateway as `firmware.protocol` under CPython.

Written in the subset both interpreters run: no dataclasses, typing, f-strings or keyword
arguments to int.to_bytes; bytes, bytearray and memoryview only.

Table-driven, to keep a board's heap small (docs/firmware.md, "Memory"): the public constants
and the message types are two text tables below, read on first use (module __getattr__), so a
board holds only what it uses. A message type (Poll, Call …) is a Message object made from one
line of the table: type code, NAME, field names with their layout (a code and a range). One
generic constructor checks the fields, one encoder and one parser walk the layout (3 bytes a
field: code, lo, hi). Frames are treated as immutable: build a new one rather than changing a
field. Field codes, as `name:CODElo-hi=default` in the table:
    B  u8, lo..hi                    H  u16, lo..0xFFFF           I  u32, lo..0xFFFFFFFF
    V  version: 3 bytes, a tuple     X  exactly lo bytes          R  the rest: lo..hi bytes
    T  text: length byte + lo..hi bytes of UTF-8                  A  lo printable ASCII characters
    L  up to lo lines of text, each 0..hi bytes (count byte first)
    P  up to lo (ticket, counter) pairs of text (count byte first)
"""

try:
    from micropython import const

    _HOST = False
except ImportError:  # CPython (the gateway)

    def const(x):  # type: ignore[misc]
        return x

    _HOST = True


# Used inside this module: compiled into the code under MicroPython, not module attributes.
_HEADER_LEN = const(3)  # address, type, sequence number
_CRC_LEN = const(2)
_MIN_FRAME = const(5)
_MAX_FRAME = const(128)
_MAX_PAYLOAD = const(123)  # MAX_FRAME - header - CRC
_MAX_ENCODED = const(129)  # COBS adds one byte per started 254-byte block
_ADDR_MIN = const(1)
_ADDR_MAX = const(16)
_MAX_TICKET = const(8)  # bytes of UTF-8
_MAX_COUNTER = const(16)
_KEY_TRANSFER = const(5)

# The public constants, as `name=value` words (docs/protocol.md states each one). A name becomes
# a module attribute the first time it is read (module __getattr__ below), so a board holds only
# the names it uses; the gateway reads them the same way.
#   sizes: a raw frame is header + payload + CRC, before COBS; on the wire 0x00, COBS(raw), 0x00.
#   timing (docs/protocol.md, "Timing": BAUD, TURNAROUND_US, REPLY_TIMEOUT_US, MAX_RETRIES …) is
#     protocol_gateway's, reached here all the same: the gateway alone uses it, and on a board
#     each byte of this table is heap (version 3 took its ~100 bytes for RESTART and the tag).
#   CAP_*: capability bits in HELLO; unknown bits are carried, and ignored by receivers.
#   NAK_*: UNSUPPORTED: this kind does not handle that type; OUT_OF_RANGE: a value this device
#     cannot use; BUSY: retry after back-off; FW_SEQUENCE: FW_CHUNK / FW_END not at the offset
#     expected (info: that offset); FW_VERIFY: size or SHA-256 wrong, or the bundle malformed (the
#     transfer is aborted); FW_TOO_LARGE: (info: the largest size that fits); FW_NO_TRANSFER: no
#     transfer under way, or FW_COMMIT before it was verified; FW_AUTH: the bundle's HMAC tag is
#     missing or wrong, or FW_KEY's proof is (the transfer is aborted; nothing is activated).
#   CALL flags: exactly one of NEW and RECALL. KEY_TRANSFER's arg is the target service index.
#   MAX_SERVICES: LAMPS is a 16-bit mask; BUTTON_PRESS and KEY_TRANSFER carry an index 0..15.
_CONSTANTS = """
PROTOCOL_VERSION=3 HEADER_LEN=3 CRC_LEN=2 MIN_FRAME=5 MAX_FRAME=128 MAX_PAYLOAD=123 MAX_ENCODED=129
MAX_WIRE=131 ADDR_MIN=1 ADDR_MAX=16
KIND_DISPENSER=1 KIND_COUNTER_PAD=2 KIND_CALL_DISPLAY=3
CAP_TEXT=0x01 CAP_CHIME=0x02 CAP_RECENT=0x04 CAP_NUMBER=0x08 CAP_STATUS_LAMP=0x10 CAP_LAMPS=0x20
CAP_FW_UPDATE=0x40
RESET_UNKNOWN=0 RESET_POWER_ON=1 RESET_PIN=2 RESET_WATCHDOG=3 RESET_SOFT=4 RESET_FW_UPDATE=5 RESET_CAUSE_MAX=5
KEY_CALL_NEXT=1 KEY_DONE=2 KEY_RECALL=3 KEY_NO_SHOW=4 KEY_TRANSFER=5 KEY_PAUSE=6 KEY_MAX=6
NAK_UNSUPPORTED=1 NAK_OUT_OF_RANGE=2 NAK_BUSY=3 NAK_FW_SEQUENCE=4 NAK_FW_VERIFY=5 NAK_FW_TOO_LARGE=6
NAK_FW_NO_TRANSFER=7 NAK_FW_AUTH=8 NAK_REASON_MAX=8
FW_IDLE=0 FW_RECEIVING=1 FW_VERIFIED=2
CALL_NEW=1 CALL_RECALL=2
LAMP_OFF=0 LAMP_GREEN=1 LAMP_AMBER=2 LAMP_RED=3
TONE_CALL=0 TONE_RECALL=1 TONE_ATTENTION=2
MAX_SERVICES=16 MAX_TICKET=8 MAX_COUNTER=16 MAX_LINES=4 MAX_LINE=60 MAX_RECENT=8 MAX_CHUNK=112 SHA256_LEN=32
"""


class ProtocolError(ValueError):
    """A frame or a field that the protocol does not allow; the message names what is wrong."""


# The error messages, one a line with its % fields, found by line number (the _E_* constants,
# compiled away) or, for the Decoder's counters, by the counter's name at the start of the line.
# One string rather than thirty: each string constant is an object of its own on a board's heap.
_E_INT = const(0)
_E_STR = const(1)
_E_UTF8 = const(2)
_E_TEXTLEN = const(3)
_E_CONTROL = const(4)
_E_LIST = const(5)
_E_MOST = const(6)
_E_BYTES = const(7)
_E_BYTESLEN = const(8)
_E_VERSION = const(9)
_E_ASCII = const(10)
_E_ENTRY = const(11)
_E_EXPECTED = const(12)
_E_VALUES = const(13)
_E_MISSING = const(14)
_E_NOFIELD = const(15)
_E_PAYLOAD = const(16)
_E_RAW = const(17)
_E_NOFRAME = const(18)
_E_ENCODED = const(19)
_E_COBS = const(20)
_E_PRINTABLE = const(21)
_E_SHORT = const(22)
_E_EXTRA = const(23)
_E_BADTEXT = const(24)
_SAYS = """
%s must be an integer %d..%d, got %r
%s must be a str, got %r
%s is not encodable as UTF-8
%s must be %d..%d bytes of UTF-8, got %d
%s contains a control character
%s must be a list of %s, got %r
at most %d %s, got %d
%s must be %d bytes, got %r
%s must be %d..%d bytes, got %r
%s must be (major, minor, patch), got %r
%s must be %d ASCII characters, got %r
an entry must be (ticket, counter), got %r
expected %s, got %s
%s has %d fields, got %d values
%s: %s is missing
%s has no field %s
%s payload is %d bytes, at most %d fit
%s (%d bytes: %s)
no frame: empty or only delimiters
frame too long: %d encoded bytes, at most %d
not a single valid COBS frame: %s
%s must be %d printable ASCII characters
payload too short
%d unexpected payload bytes
%s is not %d..%d bytes of printable UTF-8
too_short frame too short
too_long frame too long
bad_crc bad CRC
unknown_type unknown message type
"""


def _say(key):
    if isinstance(key, int):
        return _SAYS.split("\n")[key + 1]
    i = _SAYS.find("\n" + key + " ") + len(key) + 2
    return _SAYS[i : _SAYS.find("\n", i)]


def _fail(key, *args):
    """Raises ProtocolError with message `key` (an _E_* line number or a counter's name) of _SAYS,
    its % fields filled from `args`."""
    raise ProtocolError(_say(key) % args)


# --- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0; "123456789" -> 0x29B1


def _crc_table():
    # A nibble table (16 entries, 32 bytes): a byte table would be 512 bytes of a board's heap,
    # for a CRC about 1.5 times as fast.
    from array import array

    table = array("H", bytes(32))
    for i in range(16):
        c = i << 12
        for _ in range(4):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table[i] = c & 0xFFFF
    return table


_CRC_TABLE = _crc_table()
_crc_table = None  # type: ignore[assignment]  # run once: a board need not keep its code


def _crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of `data` (bytes-like); pass a previous result as `crc` to continue."""
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 4) & 0xFFFF) ^ table[((crc >> 12) ^ (b >> 4)) & 0x0F]
        crc = ((crc << 4) & 0xFFFF) ^ table[((crc >> 12) ^ b) & 0x0F]
    return crc


# The nibble-table code on a board; on the gateway protocol_gateway makes it CPython's
# binascii.crc_hqx, this very CRC in C.
crc16 = _crc16


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


# --- Field checks shared by the constructor (building a frame) and the parser (reading one)


def _int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or value > hi:
        _fail(_E_INT, name, lo, hi, value)
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
        # (continuation bytes after the lead, range of the first of them)
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
    """`value` checked: a str of lo..hi bytes of UTF-8, printable, valid."""
    if not isinstance(value, str):
        _fail(_E_STR, name, value)
    try:
        b = value.encode("utf-8")
    except UnicodeError:
        _fail(_E_UTF8, name)
    if len(b) < lo or len(b) > hi:
        _fail(_E_TEXTLEN, name, lo, hi, len(b))
    if not _utf8_ok(b):
        _fail(_E_CONTROL, name)
    return value


def _list(name, value, most, of):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(_E_LIST, name, of, value)
    if len(value) > most:
        _fail(_E_MOST, most, name, len(value))
    return value


def _field(name, code, lo, hi, v):
    """`v` checked against one field of the layout; the value the frame keeps."""
    if code == 0x42:  # B
        return _int(name, v, lo, hi)
    if code == 0x48:  # H
        return _int(name, v, lo, 0xFFFF)
    if code == 0x49:  # I
        return _int(name, v, lo, 0xFFFFFFFF)
    if code == 0x54:  # T
        return _text(name, v, lo, hi)
    if code == 0x58 or code == 0x52:  # X, R
        if not isinstance(v, (bytes, bytearray)) or not lo <= len(v) <= (lo if code == 0x58 else hi):
            if code == 0x58:
                _fail(_E_BYTES, name, lo, v)
            _fail(_E_BYTESLEN, name, lo, hi, v)
        return bytes(v)
    if code == 0x56:  # V
        if not isinstance(v, (list, tuple)) or len(v) != 3:
            _fail(_E_VERSION, name, v)
        for part in v:
            _int(name + " part", part, 0, 255)
        return tuple(v)
    if code == 0x41:  # A
        _text(name, v, lo, lo)
        for c in v.encode("utf-8"):  # bytes: a str's characters would each be interned
            if c > 0x7E:
                _fail(_E_ASCII, name, lo, v)
        return v
    if code == 0x4C:  # L
        for line in _list(name, v, lo, "str"):
            _text("line", line, 0, hi)
        return tuple(v)
    # P
    out = []
    for e in _list(name, v, lo, "(ticket, counter)"):
        if not isinstance(e, (list, tuple)) or len(e) != 2:
            _fail(_E_ENTRY, e)
        out.append((_text("ticket", e[0], 1, _MAX_TICKET), _text("counter", e[1], 1, _MAX_COUNTER)))
    return tuple(out)


def _put_text(out, s):
    b = s.encode("utf-8")
    out.append(len(b))
    out.extend(b)


# --- Frames


class Message:
    """One message type of the table (Poll, Call …): calling it builds a frame of that type, e.g.
    Call(addr, seq, flags, ticket, counter); the fields after addr and seq go in FIELDS order,
    positional or by name, and trailing ones may have DEFAULTS. Made by _message() from the table.
    from_bytes(data) (the frame, which must be of this type) is protocol_gateway's.
    Message types are objects, not classes: a class per type costs a board more heap (a type
    object and a dict each: ~600 bytes for CALL on the 64-bit Unix port, ~380 as an object)."""

    # As class attributes, kept by a type only when it has them (a board's heap is small).
    FIELDS = ()  # payload fields, in order
    LAYOUT = b""  # 3 bytes a field: code, lo, hi (module docstring)
    DEFAULTS = ()  # for the last len(DEFAULTS) fields

    def __init__(self, code, fields, layout, defaults):
        self.TYPE = code
        if fields:
            self.FIELDS = fields
            self.LAYOUT = layout
        if defaults:
            self.DEFAULTS = defaults

    @property
    def NAME(self):
        """The type's name in the table, e.g. SHOW_TEXT: read from the table when asked (errors,
        the gateway), not a string each type keeps."""
        return _spec("%02X" % self.TYPE, 0)[1]

    def __call__(self, addr, seq, *args, **kw):
        return Frame(self, addr, seq, args, kw)

class Frame:
    """One message: `addr`, `seq`, the payload fields as attributes, and its type's TYPE, NAME,
    FIELDS (read from its Message). Built by calling a Message, which checks every field, so that
    a frame that exists can always be encoded; treated as immutable. What only the gateway and
    tests use — Frame.from_bytes(data), Frame.from_raw(raw), ==, repr(), fields(), is_reply — is in
    protocol_gateway.py, which adds it to this class when it is imported (at once on CPython,
    on first use of a gateway name under MicroPython): a board never holds it."""

    def __init__(self, message, addr, seq, args=(), kw=None):
        self._m = message
        self.TYPE = message.TYPE  # read on every request: kept here, not looked up
        self.addr = _int("addr", addr, _ADDR_MIN, _ADDR_MAX)
        self.seq = _int("seq", seq, 0, 255)
        names = message.FIELDS
        n = len(names)
        if len(args) > n:
            _fail(_E_VALUES, message.NAME, n, len(args))
        layout = message.LAYOUT
        defaults = message.DEFAULTS
        first_default = n - len(defaults)
        for i in range(n):
            name = names[i]
            if i < len(args):
                v = args[i]
            elif kw and name in kw:
                v = kw.pop(name)
            elif i >= first_default:
                v = defaults[i - first_default]
            else:
                _fail(_E_MISSING, message.NAME, name)
            setattr(self, name, _field(name, layout[3 * i], layout[3 * i + 1], layout[3 * i + 2], v))
        if kw:
            _fail(_E_NOFIELD, message.NAME, ", ".join(kw))
        if self.TYPE == 0xA0 and self.key != _KEY_TRANSFER:  # KEY: an arg for TRANSFER only
            _int("arg", self.arg, 0, 0)
        # Lists (L, P): the whole must fit one frame. (A range byte equal to 76 or 80 only makes
        # this check run where it is not needed; MicroPython has no step slices to skip them.)
        if 0x4C in layout or 0x50 in layout:
            size = len(self.payload())
            if size > _MAX_PAYLOAD:
                _fail(_E_PAYLOAD, message.NAME, size, _MAX_PAYLOAD)

    def __getattr__(self, name):
        # Only for what the instance lacks: NAME, FIELDS, LAYOUT, DEFAULTS of its message.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._m, name)

    def payload(self):
        out = bytearray()
        layout = self._m.LAYOUT
        names = self._m.FIELDS
        for i in range(len(names)):
            code = layout[3 * i]
            v = getattr(self, names[i])
            if code == 0x42:
                out.append(v)
            elif code == 0x48:
                out.extend(v.to_bytes(2, "big"))
            elif code == 0x49:
                out.extend(v.to_bytes(4, "big"))
            elif code == 0x54:
                _put_text(out, v)
            elif code == 0x4C:
                out.append(len(v))
                for line in v:
                    _put_text(out, line)
            elif code == 0x50:
                out.append(len(v))
                for ticket, counter in v:
                    _put_text(out, ticket)
                    _put_text(out, counter)
            elif code == 0x41:
                out.extend(v.encode("utf-8"))
            else:  # V, X, R
                out.extend(bytes(v))
        return bytes(out)

    def to_raw(self):
        """Header + payload + CRC, before COBS."""
        body = bytes((self.addr, self.TYPE, self.seq)) + self.payload()
        return body + crc16(body).to_bytes(2, "big")

    def to_bytes(self):
        """The frame as sent on the wire: 0x00, COBS(raw frame), 0x00."""
        return b"\x00" + cobs_encode(self.to_raw()) + b"\x00"

# The message table (docs/protocol.md, "Messages"): type code (hex), NAME (its Python name is the
# same in CamelCase: OUT_OF_SERVICE is OutOfService), then the
# payload fields in order as name:layout, e.g. `ack:B0-255=0` (u8 0..255, default 0). Requests
# are 0x01..0x7F (gateway -> device), replies 0x80..0xFF (a reply echoes its request's seq).
# A type's Message is made the first time it is used (by name, or by a frame of that type
# arriving), so a board holds only the message types it handles.
#   POLL: the oldest unacknowledged event, please; ack = the last event the gateway accepted.
#   IDENTIFY: HELLO, please; starts a fresh session. SHOW_TEXT: 0..4 lines; none clears them.
#   LAMPS: dispenser, bit i lit = service i offered. DISPLAY_NUMBER: counter pad; "    " blanks.
#   CALL: show ticket called to counter; flags CALL_NEW (chime, top of the list) or CALL_RECALL.
#   RECENT: newest first; the first entry is the current call. KEY: arg 0 unless KEY_TRANSFER.
#   FW_*: the firmware transfer (docs/protocol.md, "Firmware transfer"); FW_STATUS answers it
#   with the transfer's state (FW_IDLE / FW_RECEIVING / FW_VERIFIED) and the next offset expected.
#   FW_BEGIN's tag: HMAC-SHA256 of the bundle under the device's key (32 bytes; empty only for a
#   version-2 board, which has no key). RESTART: ACK, then reset. FW_KEY: store a new device key;
#   proof = HMAC-SHA256(current key, new key), or 32 zero bytes while the device has none.
#   0x40..0x4F are handled by fw_update.py, imported on the first one (device.py checks a range).
_MESSAGES = """
01 POLL ack:B0-255=0
02 IDENTIFY
03 OUT_OF_SERVICE on:B0-1
04 SHOW_TEXT lines:L4-60
10 LAMPS mask:H0
20 DISPLAY_NUMBER text:A4
21 STATUS_LAMP colour:B0-3 blink:B0-1=0
30 CALL flags:B1-2 ticket:T1-8 counter:T1-16
31 RECENT entries:P8
32 CHIME tone:B0-2 repeat:B1-3=1
33 CLEAR
40 FW_BEGIN size:I1 sha256:X32 version:V tag:R0-32
41 FW_CHUNK offset:I0 data:R1-112
42 FW_END
43 FW_COMMIT
44 FW_ABORT
45 RESTART
46 FW_KEY key:X32 proof:X32
80 ACK
81 NAK reason:B1-8 info:I0=0
82 HELLO proto:B1-255 kind:B1-3 version:V caps:H0 reset_cause:B0-5 boot:I0 lap:B0-255
83 FW_STATUS state:B0-2 offset:I0
90 BUTTON_PRESS ev:B1-255 service:B0-15
A0 KEY ev:B1-255 key:B1-6 arg:B0-15=0
"""

_TYPES = {}  # type: dict  # type code -> Message, as made


def _spec(key, column):
    """The words of the message table's line whose `column` (0 code, 1 NAME) is `key`. Found
    with find(), not by splitting the table: a list of every line is garbage a stale pointer
    could keep (the GC scans the stack conservatively), ~2 KB of a board's heap."""
    if column == 0:
        i = _MESSAGES.find("\n" + key + " ")
    else:  # a NAME is followed by its fields or ends the line
        i = _MESSAGES.find(" " + key + " ")
        if i < 0:
            i = _MESSAGES.find(" " + key + "\n")
    if i < 0:
        return None
    start = _MESSAGES.rfind("\n", 0, i + 1) + 1
    return _MESSAGES[start : _MESSAGES.find("\n", i + 1)].split()


def _upper_name(name):
    """OutOfService -> OUT_OF_SERVICE: a message's NAME from its Python name. Walks the bytes:
    MicroPython interns every one-character str taken from a str (indexing, iterating), and a
    board's interned names are heap it never gets back."""
    out = bytearray()
    for c in name.encode("utf-8"):
        if 0x41 <= c <= 0x5A and out:
            out.append(0x5F)
        out.append(c - 0x20 if 0x61 <= c <= 0x7A else c)
    return bytes(out).decode("utf-8")


def _message(code):
    """The Message of type `code`, made from the table on first use; None for an unknown type."""
    m = _TYPES.get(code)
    if m is None:
        words = _spec("%02X" % code, 0)
        if words is None:
            return None
        names = []
        layout = bytearray()
        defaults = []
        for field in words[2:]:
            name, _, spec = field.partition(":")
            spec, _, default = spec.partition("=")
            lo, _, hi = spec[1:].partition("-")
            # Every field name becomes an interned attribute name of the frames anyway; interned
            # now (getattr), the same name taken again is that interned string, not a heap copy.
            getattr(Message, name, None)
            names.append(field.partition(":")[0])
            layout.append(spec.encode("utf-8")[0])  # not spec[0]: see _upper_name
            layout.append(int(lo) if lo else 0)
            layout.append(int(hi) if hi else 0)
            if default:
                defaults.append(int(default))
        m = Message(code, tuple(names), bytes(layout), tuple(defaults))
        _TYPES[code] = m
    return m


def _constant(name):
    """The value of constant `name` in the table, or None. Found with find(): see _spec."""
    key = name + "="
    i = _CONSTANTS.find(" " + key)
    if i < 0:
        i = _CONSTANTS.find("\n" + key)
    if i < 0:
        return None
    i += len(key) + 1
    end = _CONSTANTS.find(" ", i)
    line_end = _CONSTANTS.find("\n", i)
    if end < 0 or 0 <= line_end < end:
        end = line_end
    return int(_CONSTANTS[i:end], 0)


def __getattr__(name):
    """A constant, a message type (Poll, Call …), or one of the gateway's helpers and tables
    (EventTracker, next_seq, next_ev, retry_delay_ms, KINDS, TYPES, BY_NAME, FRAME_CLASSES, in
    protocol_gateway.py, imported here, which completes Frame, Message and Decoder with the
    gateway's methods; a board does not have it): found on first use, then kept as a module
    attribute."""
    value = _constant(name)  # type: object
    if value is None:
        words = _spec(_upper_name(name), 1) if "A" <= name[:1] <= "Z" and name[1:2].islower() else None
        if words is not None:
            value = _message(int(words[0], 16))
        else:
            try:
                import protocol_gateway as gw  # beside this module (a board, a check script)
            except ImportError:
                try:  # the gateway: firmware is a package there
                    gw = __import__("firmware.protocol_gateway", None, None, ("EventTracker",))
                except ImportError:
                    gw = None  # type: ignore[assignment]  # a board: no gateway side
            if gw is None or name.startswith("_") or not hasattr(gw, name):
                raise AttributeError("module 'protocol' has no attribute '%s'" % name)
            value = getattr(gw, name)
    globals()[name] = value
    return value


def _raw_error(raw):
    """The Decoder counter that `raw` belongs to if its framing is wrong, else None."""
    n = len(raw)
    if n < _MIN_FRAME:
        return "too_short"
    if n > _MAX_FRAME:
        return "too_long"
    if crc16(memoryview(raw)[: n - 2]) != (raw[n - 2] << 8) | raw[n - 1]:
        return "bad_crc"
    if _message(raw[1]) is None:
        return "unknown_type"
    return None


def _parse_raw(raw):
    """The frame in a raw frame that passed _raw_error; ProtocolError if its content is wrong."""
    m = _message(raw[1])
    layout = m.LAYOUT
    addr, seq = raw[0], raw[2]
    end = len(raw) - _CRC_LEN
    raw = raw[:end]  # a field that runs into the CRC is too short: IndexError below
    i = _HEADER_LEN
    vals = []
    try:
        for f in range(0, len(layout), 3):
            code = layout[f]
            if code == 0x42:
                v = raw[i]
                i += 1
            elif code == 0x48:
                v = (raw[i] << 8) | raw[i + 1]
                i += 2
            elif code == 0x49:
                v = int.from_bytes(raw[i : i + 4], "big")
                i += 4
            elif code == 0x56:
                v = (raw[i], raw[i + 1], raw[i + 2])
                i += 3
            elif code == 0x58 or code == 0x41:
                v = bytes(raw[i : i + layout[f + 1]])
                i += layout[f + 1]
                if code == 0x41:
                    if not _utf8_ok(v):
                        _fail(_E_PRINTABLE, m.FIELDS[f // 3], len(v))
                    v = v.decode("utf-8")
            elif code == 0x52:
                v = bytes(raw[i:end])
                i = end
            elif code == 0x54:
                v, i = _get_text(raw, i, m.FIELDS[f // 3], layout[f + 1], layout[f + 2])
            else:  # L, P: a count, then texts or pairs of texts
                n = raw[i]
                i += 1
                if n > layout[f + 1]:
                    _fail(_E_MOST, layout[f + 1], m.FIELDS[f // 3], n)
                v = []
                for _ in range(n):
                    if code == 0x4C:
                        s, i = _get_text(raw, i, "line", 0, layout[f + 2])
                        v.append(s)
                    else:
                        t, i = _get_text(raw, i, "ticket", 1, _MAX_TICKET)
                        c, i = _get_text(raw, i, "counter", 1, _MAX_COUNTER)
                        v.append((t, c))
            if i > end:
                raise IndexError
            vals.append(v)
    except IndexError:
        _fail(_E_SHORT)
    if i != end:
        _fail(_E_EXTRA, end - i)
    return m(addr, seq, *vals)


def _get_text(raw, i, name, lo, hi):
    k = raw[i]
    b = bytes(raw[i + 1 : i + 1 + k])
    if len(b) != k:
        raise IndexError
    if k < lo or k > hi or not _utf8_ok(b):
        _fail(_E_BADTEXT, name, lo, hi)
    return b.decode("utf-8"), i + 1 + k


class Decoder:
    """Turns received bytes into frames. feed() takes any bytes-like chunk (one byte or many) and
    returns the complete valid frames in it, in order. Never raises on what it is fed: a bad
    candidate frame is dropped and counted, and decoding resumes at the next 0x00. The buffer is
    fixed (MAX_ENCODED bytes); a longer run without a delimiter is dropped as too long. The
    `dropped` total and counters() are protocol_gateway's (see Frame)."""

    # The counters start as class attributes: an instance holds one only once it counts.
    frames = 0  # valid frames returned
    bad_cobs = 0
    bad_crc = 0
    too_long = 0
    too_short = 0
    unknown_type = 0
    malformed = 0  # CRC good, but address or payload not allowed for the type
    _n = 0  # bytes of the frame being received
    _skipping = False  # in a run too long for one frame, until the next 0x00

    def __init__(self):
        self._buf = bytearray(_MAX_ENCODED)

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
            elif self._n < _MAX_ENCODED:
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

# --- Sequence numbers and retries


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

    _seq = -1
    _type = -1
    _reply = None
    repeats = 0

    def reset(self):
        self._seq = -1
        self._type = -1
        self._reply = None
        self.repeats = 0

    def replay(self, request):
        """The reply bytes to send again if `request` is a retry, else None."""
        if request.TYPE == 0x02:  # IDENTIFY
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
    0) when `capacity` events are waiting. `_n` counts the events numbered, for HELLO's `lap`."""

    capacity = 8
    _n = 0  # events numbered since boot, never wrapping: HELLO's lap is counted from it
    overflows = 0

    def __init__(self, addr, capacity=8):
        self.addr = _int("addr", addr, _ADDR_MIN, _ADDR_MAX)
        if capacity != 8:
            self.capacity = capacity
        self._items = []  # type: list

    def __len__(self):
        return len(self._items)

    def push(self, cls, *args):
        """Queue event `cls` (ButtonPress or Key) with its fields after `ev`; returns its number,
        or 0 if the queue is full. Bad fields raise ProtocolError here, not at POLL time."""
        if len(self._items) >= self.capacity:
            self.overflows += 1
            return 0
        ev = self._n % 255 + 1  # 1..255, wrapping past 0 (0 means "none" in POLL.ack): next_ev
        cls(self.addr, 0, ev, *args)
        self._n += 1
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
        return _message(0x80)(self.addr, poll.seq)  # ACK


if _HOST:  # the gateway always has its side: Frame.from_bytes and the rest (see Frame)
    __getattr__("EventTracker")
