"""The device side of a firmware bundle transfer (docs/protocol.md, "Firmware transfer"):
FW_BEGIN / FW_CHUNK / FW_END / FW_COMMIT / FW_ABORT, streamed into the inactive A/B slot.

Imported by device.py on the first FW_* request, so a board that is never updated does not hold
it on its heap. Never keeps the bundle in RAM: each chunk is hashed (SHA-256) and written into the
file it belongs to in the inactive slot's directory as it arrives. A bundle is a sequence of
entries, each `name_len u8` (1..32), `name` (ASCII letters, digits, `_`, `-`, `.`; no `/`),
`size u32` big-endian, then `size` bytes. FW_END checks size, SHA-256 and that the last entry is
complete; anything wrong aborts the transfer and empties the inactive slot, so the running slot
is kept. FW_COMMIT writes `version` into the slot, names it in the `slot` file (slots.py boots it
next; its fallback is the slot running now), leaves the `fw_committed` marker (boot reports
RESET_FW_UPDATE) and asks the device to reset once its ACK is sent.

Authenticated: FW_BEGIN carries an HMAC-SHA256 tag of the bundle under the device's key (the
flash file `fw_key`, 32 bytes, stored by FW_KEY at install); the tag is computed as the chunks
arrive (Hmac: two streaming sha256 objects, since MicroPython has no hmac module and its sha256
no copy()) and checked at FW_END, so a bundle with a wrong tag is refused (NAK FW_AUTH, the slot
emptied) before FW_COMMIT could activate it. A device without a key takes no bundle at all.

On trial: FW_COMMIT writes the `slot` marker as "SLOT 0": the slot is on trial, its boots counted
by slots.py, which falls back to the other slot after its TRIAL_BOOTS. A boot on trial makes its
Receiver at once (boot(), from slots.start) to watch the device: healthy = it said HELLO to
IDENTIFY (with the new version) and then answered HEALTH_POLLS requests, within HEALTH_MS of the
boot; then the marker names the slot alone and it is kept. Not healthy in time: the device
restarts (and slots.py counts one more boot).

Also RESTART (ACK, then reset through board.reset; an empty `fw_committed` marker makes the next
boot report RESET_SOFT) and FW_KEY: the whole 0x40..0x4F group comes here.

Written for MicroPython (hashlib, os, builtin open)."""

import os
import time

import protocol as p

MAX_NAME = 32
MARGIN = 4096  # flash left free after the largest bundle FW_BEGIN accepts
DEFAULT_CAPACITY = 1 << 20  # when the filesystem cannot say how much is free
KEY_LEN = 32
HEALTH_POLLS = 3  # requests answered after the HELLO to IDENTIFY: the new slot works on the bus
# The Unix port may shorten it (tests); the Pico has no getenv and keeps two minutes.
HEALTH_MS = int(getattr(os, "getenv", lambda k: None)("COUNTERFLOOR_HEALTH_MS") or 120000)


class BundleError(ValueError):
    pass


def receiver(device):
    """The Receiver of `device` (a device.BusDevice), made on first use in the slots under
    device.fw_root (None: board.flash_dir())."""
    if device.fw is None:
        root = device.fw_root
        if root is None:
            import board

            root = board.flash_dir()
        device.fw = Receiver(device.addr, root, device.fw_active, device)
    return device.fw


def handle(device, frame):
    """The reply of `device` to a request of the 0x40..0x4F group (FW_*, RESTART, FW_KEY)."""
    fw = receiver(device)
    if frame.TYPE == 0x45:  # RESTART
        # Not identified since this boot: a retry whose first ACK was lost met the board after
        # its restart. Done already; restarting again would only lose another boot.
        if device.identified:
            try:
                _write_text(_join(fw.root, "fw_committed"), "")  # empty: a restart, not an update
            except OSError:
                pass  # the next boot then reports the hardware's cause: still a restart
            fw.reset_due = True
        return p.Ack(device.addr, frame.seq)
    return fw.handle(frame)


def boot(device):
    """A boot on trial (slots.start): watch `device` for health from now on (see the docstring).
    Named `boot`, a name a board interns anyway: slots.py's names stay on its heap for good."""
    fw = receiver(device)
    fw._on_trial = True
    fw._until = time.ticks_add(time.ticks_ms(), HEALTH_MS)
    print("fw: on trial: healthy after IDENTIFY and %d requests within %d ms" % (HEALTH_POLLS, HEALTH_MS))
    return fw


class Hmac:
    """HMAC-SHA256 (RFC 2104), streaming: update() as the bytes come, digest() once. Built on two
    sha256 objects, the inner one fed the key xor ipad then the message, the outer one the key
    xor opad then the inner digest: MicroPython has no hmac module and no sha256.copy()."""

    def __init__(self, key):
        import hashlib

        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        pad = bytearray(64)
        pad[: len(key)] = key
        for i in range(64):
            pad[i] ^= 0x36
        self._inner = hashlib.sha256(pad)
        for i in range(64):
            pad[i] ^= 0x36 ^ 0x5C
        self._outer = hashlib.sha256(pad)

    def update(self, data):
        self._inner.update(data)

    def digest(self):
        self._outer.update(self._inner.digest())
        return self._outer.digest()


def hmac_sha256(key, data):
    h = Hmac(key)
    h.update(data)
    return h.digest()


def same(a, b):
    """a == b for MACs, in a time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def read_key(root):
    """The device key on flash, or None when none was stored (or it is not KEY_LEN bytes)."""
    try:
        with open(_join(root, "fw_key"), "rb") as f:
            key = f.read()
    except OSError:
        return None
    return key if len(key) == KEY_LEN else None


def _join(a, b):
    return a + "/" + b if a else b


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


def _name_ok(name):
    if not 1 <= len(name) <= MAX_NAME or name[0] == ".":
        return False
    for c in name:
        if c not in _NAME_CHARS:
            return False
    return True


class Receiver:
    """One device's transfer state. handle(frame) returns the reply frame; after an ACKed
    FW_COMMIT (or RESTART) `reset_due` is True and the device resets; on a boot on trial,
    reading `reset_due` (device._check does, every turn of the loop) also watches its health."""

    _on_trial = False  # a boot on trial (boot()), until healthy or out of time
    _until = 0  # ticks by which it must be healthy
    _base = None  # device.requests when it was first seen identified, on trial

    def __init__(self, addr, root, active, device=None):
        self.addr = addr
        self._device = device  # the BusDevice, whose health a boot on trial watches
        self.root = root
        self.active = active
        self.slot = "a" if active == "b" else "b"  # the inactive slot (b when slots are not in use)
        self.dir = _join(root, self.slot)
        self.state = p.FW_IDLE
        self.size = 0
        self.sha = b""
        self.version = (0, 0, 0)
        self.offset = 0
        self._reset = False
        self._hash = None
        self._mac = None
        self.tag = b""
        self._hdr = bytearray()
        self._file = None
        self._left = 0
        self.chunks = 0  # chunks written (a retried chunk is not written again)

    @property
    def reset_due(self):
        if self._on_trial:
            self._watch()
        return self._reset

    @reset_due.setter
    def reset_due(self, value):
        self._reset = value

    def _watch(self):
        d = self._device
        if d.identified:  # HELLO to IDENTIFY sent, with this slot's version
            if self._base is None:
                self._base = d.requests
            elif d.requests - self._base >= HEALTH_POLLS:
                self._on_trial = False
                if self.active:
                    _write_text(_join(self.root, "slot"), self.active)  # the slot alone: not on trial
                print("fw: healthy: slot %s kept" % self.active)
                return
        if time.ticks_diff(time.ticks_ms(), self._until) > 0:
            self._on_trial = False
            self._reset = True
            print("fw: not healthy within %d ms: restarting" % HEALTH_MS)

    # --- Requests

    def handle(self, frame):
        t = frame.TYPE
        if t == p.FwBegin.TYPE:
            return self._begin(frame)
        if t == 0x46:  # FW_KEY
            return self._key(frame)
        if t == p.FwAbort.TYPE:
            self.abort()
            return p.Ack(self.addr, frame.seq)
        if self.state == p.FW_IDLE:
            return self._nak(frame, p.NAK_FW_NO_TRANSFER, 0)
        if t == p.FwChunk.TYPE:
            return self._chunk(frame)
        if t == p.FwEnd.TYPE:
            return self._end(frame)
        return self._commit(frame)  # FW_COMMIT

    def _status(self, frame):
        return p.FwStatus(self.addr, frame.seq, self.state, self.offset)

    def _nak(self, frame, reason, info):
        return p.Nak(self.addr, frame.seq, reason, info)

    def _begin(self, frame):
        bundle = (frame.size, frame.sha256, frame.version, frame.tag)
        if self.state != p.FW_IDLE and bundle == (self.size, self.sha, self.version, self.tag):
            return self._status(frame)  # the same bundle again: resume where it stopped
        self.abort()
        key = read_key(self.root)
        if key is None or len(frame.tag) != KEY_LEN:  # no key stored, or a bundle without a tag
            return self._nak(frame, p.NAK_FW_AUTH, 0)
        room = self.capacity()
        if frame.size > room:
            return self._nak(frame, p.NAK_FW_TOO_LARGE, room)
        import hashlib

        self._clear_slot()
        self.size, self.sha, self.version, self.tag = frame.size, frame.sha256, frame.version, frame.tag
        self._hash = hashlib.sha256()
        self._mac = Hmac(key)
        self.state = p.FW_RECEIVING
        return self._status(frame)

    def _chunk(self, frame):
        off, data = frame.offset, frame.data
        if self.state == p.FW_RECEIVING and off == self.offset and off + len(data) <= self.size:
            try:
                self._write(data)
            except (ValueError, OSError) as e:  # BundleError, a name not UTF-8, a flash error
                print("fw: bundle refused at %d: %r" % (off, e))
                self.abort()
                return self._nak(frame, p.NAK_FW_VERIFY, off)
            self._hash.update(data)  # type: ignore[union-attr]
            self._mac.update(data)  # type: ignore[union-attr]
            self.offset += len(data)
            self.chunks += 1
            return self._status(frame)
        if off + len(data) <= self.offset:
            return self._status(frame)  # stored already (its reply was lost): not written twice
        return self._nak(frame, p.NAK_FW_SEQUENCE, self.offset)

    def _end(self, frame):
        if self.state == p.FW_VERIFIED:
            return self._status(frame)
        if self.offset != self.size:
            return self._nak(frame, p.NAK_FW_SEQUENCE, self.offset)
        ok = self._hash.digest() == self.sha and self._file is None and not self._hdr  # type: ignore[union-attr]
        if not ok:
            self.abort()
            return self._nak(frame, p.NAK_FW_VERIFY, 0)
        if not same(self._mac.digest(), self.tag):  # type: ignore[union-attr]
            # Not from the holder of this device's key: emptied before anything could activate it.
            print("fw: bundle refused: wrong tag")
            self.abort()
            return self._nak(frame, p.NAK_FW_AUTH, 0)
        self._hash = None
        self._mac = None
        self.state = p.FW_VERIFIED
        return self._status(frame)

    def _commit(self, frame):
        if self.state != p.FW_VERIFIED:
            return self._nak(frame, p.NAK_FW_NO_TRANSFER, 0)
        _write_text(_join(self.dir, "version"), "%d.%d.%d" % self.version)
        _write_text(_join(self.root, "slot"), self.slot + " 0")  # from here on the new slot boots, on trial
        _write_text(_join(self.root, "fw_committed"), self.slot)
        self.state = p.FW_IDLE
        self._reset = True
        return p.Ack(self.addr, frame.seq)

    def _key(self, frame):
        """FW_KEY: the new key is stored if its proof is HMAC(current key, new key), or 32 zero
        bytes while there is no key: set once at install, changed only by who holds it."""
        old = read_key(self.root)
        if not same(frame.proof, hmac_sha256(old, frame.key) if old else bytes(KEY_LEN)):
            return self._nak(frame, p.NAK_FW_AUTH, 0)
        path = _join(self.root, "fw_key")
        with open(path + ".tmp", "wb") as f:
            f.write(frame.key)
        os.rename(path + ".tmp", path)  # a power cut leaves the old key or the new one
        return p.Ack(self.addr, frame.seq)

    def abort(self):
        """Drop the transfer under way (if any) and empty the inactive slot."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.state != p.FW_IDLE:
            self._clear_slot()
        self.state = p.FW_IDLE
        self.offset = 0
        self._hash = None
        self._mac = None
        self._hdr = bytearray()
        self._left = 0

    # --- The bundle, streamed into files

    def _write(self, data):
        i = 0
        n = len(data)
        while i < n:
            if self._file is None:
                h = self._hdr
                h.append(data[i])
                i += 1
                if h[0] == 0 or h[0] > MAX_NAME:
                    raise BundleError("bad name length %d" % h[0])
                if len(h) == 1 + h[0] + 4:
                    name = bytes(h[1 : 1 + h[0]]).decode()
                    if not _name_ok(name):
                        raise BundleError("bad file name %r" % name)
                    self._left = int.from_bytes(bytes(h[1 + h[0] :]), "big")
                    self._hdr = bytearray()
                    self._file = open(_join(self.dir, name), "wb")
                    if self._left == 0:
                        self._close()
            else:
                k = min(n - i, self._left)
                self._file.write(data[i : i + k])
                i += k
                self._left -= k
                if self._left == 0:
                    self._close()

    def _close(self):
        self._file.close()  # type: ignore[union-attr]
        self._file = None

    def _clear_slot(self):
        try:
            names = os.listdir(self.dir)
        except OSError:
            os.mkdir(self.dir)
            return
        for name in names:
            os.remove(_join(self.dir, name))

    def capacity(self):
        """The largest bundle that fits: free flash plus what the inactive slot holds now."""
        try:
            st = os.statvfs(self.root or "/")
            room = st[1] * st[4]  # fragment size * blocks free to us
        except (OSError, AttributeError):
            return DEFAULT_CAPACITY
        try:
            for name in os.listdir(self.dir):
                room += os.stat(_join(self.dir, name))[6]
        except OSError:
            pass
        return max(0, min(0xFFFFFFFF, room) - MARGIN)


def _write_text(path, text):
    with open(path, "w") as f:
        f.write(text)
