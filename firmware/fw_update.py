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

Written for MicroPython (hashlib, os, builtin open)."""

import os

import protocol as p

MAX_NAME = 32
MARGIN = 4096  # flash left free after the largest bundle FW_BEGIN accepts
DEFAULT_CAPACITY = 1 << 20  # when the filesystem cannot say how much is free


class BundleError(ValueError):
    pass


def handle(device, frame):
    """The reply of `device` (a device.BusDevice) to a FW_* request; its Receiver is made on the
    first one, in the slots under device.fw_root (None: board.flash_dir())."""
    if device.fw is None:
        root = device.fw_root
        if root is None:
            import board

            root = board.flash_dir()
        device.fw = Receiver(device.addr, root, device.fw_active)
    return device.fw.handle(frame)


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
    FW_COMMIT `reset_due` is True and the device resets."""

    def __init__(self, addr, root, active):
        self.addr = addr
        self.root = root
        self.slot = "a" if active == "b" else "b"  # the inactive slot (b when slots are not in use)
        self.dir = _join(root, self.slot)
        self.state = p.FW_IDLE
        self.size = 0
        self.sha = b""
        self.version = (0, 0, 0)
        self.offset = 0
        self.reset_due = False
        self._hash = None
        self._hdr = bytearray()
        self._file = None
        self._left = 0
        self.chunks = 0  # chunks written (a retried chunk is not written again)

    # --- Requests

    def handle(self, frame):
        t = frame.TYPE
        if t == p.FwBegin.TYPE:
            return self._begin(frame)
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
        if self.state != p.FW_IDLE and (frame.size, frame.sha256, frame.version) == (self.size, self.sha, self.version):
            return self._status(frame)  # the same bundle again: resume where it stopped
        self.abort()
        room = self.capacity()
        if frame.size > room:
            return self._nak(frame, p.NAK_FW_TOO_LARGE, room)
        import hashlib

        self._clear_slot()
        self.size, self.sha, self.version = frame.size, frame.sha256, frame.version
        self._hash = hashlib.sha256()
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
        self._hash = None
        self.state = p.FW_VERIFIED
        return self._status(frame)

    def _commit(self, frame):
        if self.state != p.FW_VERIFIED:
            return self._nak(frame, p.NAK_FW_NO_TRANSFER, 0)
        _write_text(_join(self.dir, "version"), "%d.%d.%d" % self.version)
        _write_text(_join(self.root, "slot"), self.slot)  # from here on the new slot boots
        _write_text(_join(self.root, "fw_committed"), self.slot)
        self.state = p.FW_IDLE
        self.reset_due = True
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
