# ruff: noqa: E402, UP031 -- MicroPython scripts: imports follow the sys.path setup; %-format
"""Firmware bundle transfer on the device under MicroPython (fw_update.py through a dispenser):
FW_* without FW_BEGIN, chunks in order, a retried chunk not written twice, a chunk at the wrong
offset, FW_BEGIN of the same bundle resuming, FW_END checks, FW_COMMIT and the boot into the new
slot (slots.py), a wrong SHA-256 and a malformed bundle (running slot kept, inactive one emptied),
a bundle too large, and the bundle never held in RAM; the device key (FW_KEY: set once, changed
only with a proof under the old key), the bundle's HMAC tag (none or a wrong one refused before
anything is activated), the new slot on trial (slots.py counts its boots), and RESTART.
    micropython -X heapsize=192K check_fw_update.py FIRMWARE_DIR TMP_DIR"""

import gc
import hashlib
import os

from fwcheck import Gateway, check, equal, finish, setup

tmp = setup()
import board
import protocol as p
import slots
from board_sim import FakeClock, MemoryUART
from dispenser import Dispenser
from fw_update import hmac_sha256

KEY = bytes(range(32))


def bundle(files):
    out = bytearray()
    for name, data in files:
        out.append(len(name))
        out += name.encode()
        out += len(data).to_bytes(4, "big")
        out += data
    return bytes(out)


def sha(data):
    return hashlib.sha256(data).digest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def make(root, active):
    clock = FakeClock(1000)
    pins = [board.FakePin("b", 1)], [board.FakePin("l")]
    dev = Dispenser(4, MemoryUART(), pins[0], pins[1], clock.now(), p.RESET_POWER_ON)
    dev.fw_root = root
    dev.fw_active = active
    gw = Gateway(p, dev, clock)
    gw.send(p.Identify)
    return dev, gw


def send_all(gw, data, start=0, step=p.MAX_CHUNK):
    r = None
    for off in range(start, len(data), step):
        r = gw.send(p.FwChunk, off, data[off : off + step])[0]
        if r.NAME != "FW_STATUS":
            return r
    return r


def mac(data, key=KEY):
    return hmac_sha256(key, data)


def status(r, state, offset, msg):
    check(r is not None and r.NAME == "FW_STATUS" and (r.state, r.offset) == (state, offset), "%s: %r" % (msg, r))


root = tmp + "/flash"
os.mkdir(root)
os.mkdir(root + "/a")
with open(root + "/a/probe.py", "w") as f:
    f.write("WHICH = 'a'\n")
with open(root + "/slot", "w") as f:
    f.write("a")

probe = b"WHICH = 'new'\n" + b"# " + b"x" * 300 + b"\n"
data = bundle([("probe.py", probe), ("empty.txt", b""), ("helper.py", b"N = 7\n" * 40)])
digest = sha(data)
dev, gw = make(root, "a")

# No transfer under way.
r = gw.send(p.FwChunk, 0, data[:10])[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_NO_TRANSFER, "chunk before FW_BEGIN: %r" % r)
r = gw.send(p.FwCommit)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_NO_TRANSFER, "commit before FW_BEGIN: %r" % r)
r = gw.poll()
check(r.NAME == "ACK", "polls still answered")

# No key on the device yet: no bundle at all, even with a tag.
r = gw.send(p.FwBegin, len(data), digest, (1, 2, 3), mac(data))[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_AUTH, "no key: %r" % r)
# The key at install: FW_KEY with a proof of 32 zero bytes while there is none.
equal(gw.send(p.FwKey, KEY, bytes(32))[0].NAME, "ACK", "key provisioned")
equal(read(root + "/fw_key"), KEY, "key on flash")
other = bytes([7] * 32)
r = gw.send(p.FwKey, other, bytes(32))[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_AUTH, "a key is not replaced without a proof: %r" % r)
r = gw.send(p.FwKey, other, hmac_sha256(other, other))[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_AUTH, "nor with a proof under another key: %r" % r)
equal(gw.send(p.FwKey, other, mac(other))[0].NAME, "ACK", "re-keyed with a proof under the old key")
equal(gw.send(p.FwKey, KEY, mac(KEY, other))[0].NAME, "ACK", "and back")
equal(read(root + "/fw_key"), KEY, "the key kept")
r = gw.send(p.FwBegin, len(data), digest, (1, 2, 3), b"")[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_AUTH, "a bundle without a tag: %r" % r)

status(gw.send(p.FwBegin, len(data), digest, (1, 2, 3), mac(data))[0], p.FW_RECEIVING, 0, "begin")
status(send_all(gw, data[:224]), p.FW_RECEIVING, 224, "two chunks")
equal(dev.fw.chunks, 2, "chunks written")
# A chunk sent again with a new seq (its reply was lost, then the link was reset): not rewritten.
status(gw.send(p.FwChunk, 112, data[112:224])[0], p.FW_RECEIVING, 224, "repeat of a stored chunk")
equal(dev.fw.chunks, 2, "a repeated chunk is not written twice")
# The same frame again (same seq): the duplicate filter replays the reply.
r1, b1 = gw.send(p.FwChunk, 224, data[224:336])
r2, b2 = gw.send(p.FwChunk, 224, data[224:336], seq=gw.seq)
check(b1 == b2 and dev.fw.chunks == 3, "a retried chunk is replayed, not rewritten")
r = gw.send(p.FwChunk, 448, data[448:560])[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_SEQUENCE and r.info == 336, "gap: %r" % r)
r = gw.send(p.FwEnd)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_SEQUENCE and r.info == 336, "end before the last chunk: %r" % r)
# FW_BEGIN of the same bundle (after a cable pull): resume, do not start over.
status(gw.send(p.FwBegin, len(data), digest, (1, 2, 3), mac(data))[0], p.FW_RECEIVING, 336, "resume")
# The rest, with the bundle held by this script only: the device keeps no copy.
gc.collect()
before = gc.mem_alloc()
status(send_all(gw, data, 336), p.FW_RECEIVING, len(data), "all chunks")
gc.collect()
grew = gc.mem_alloc() - before
print("heap_transfer=%d" % grew)
check(grew < 2048, "the device holds no copy of the bundle (heap grew %d bytes)" % grew)
status(gw.send(p.FwEnd)[0], p.FW_VERIFIED, len(data), "verified")
status(gw.send(p.FwEnd)[0], p.FW_VERIFIED, len(data), "FW_END again is harmless")
equal(read(root + "/a/probe.py"), b"WHICH = 'a'\n", "the running slot is untouched")
equal(read(root + "/slot"), b"a", "not committed yet")
equal(gw.send(p.FwCommit)[0].NAME, "ACK", "commit")
check(not dev.restart_due, "no restart before the reply is out")
dev._check(gw.clock.now())
check(dev.restart_due, "restart after the commit ACK")
equal(read(root + "/b/probe.py"), probe, "probe.py written")
equal(read(root + "/b/empty.txt"), b"", "an empty file")
equal(read(root + "/b/helper.py"), b"N = 7\n" * 40, "helper.py written")
equal(read(root + "/b/version"), b"1.2.3", "version")
equal(read(root + "/slot"), b"b 0", "slot b boots next, on trial")

# The boot after the restart: reset cause FW_UPDATE, the new slot, its version.
slots.reset_cause = None
equal(slots.boot(4000, root), p.RESET_FW_UPDATE, "reset cause after the update")
check(not exists(root + "/fw_committed"), "marker removed")
m = slots.load("probe", root)
equal((m.WHICH, slots.active, slots.version), ("new", "b", (1, 2, 3)), "booted the new slot")
equal(read(root + "/slot"), b"b 1", "a boot on trial, counted")

# Running b on trial: healthy once it said HELLO to IDENTIFY and answered HEALTH_POLLS more.
dev, gw = make(root, "b")
import fw_update

dev.fw_active = "b"
fw_update.boot(dev)
base = dev.requests
check(not dev.fw.reset_due, "on trial, not yet healthy: no restart")
check(dev.fw._on_trial, "still on trial after IDENTIFY")
for _ in range(fw_update.HEALTH_POLLS):
    gw.poll()
check(not dev.fw.reset_due and not dev.fw._on_trial, "healthy after its polls")
equal(read(root + "/slot"), b"b", "trial over: the slot is kept")
slots.load("probe", root)
equal((read(root + "/slot"), slots.active), (b"b", "b"), "the next boot is not on trial")

# A bundle with a good SHA-256 and a wrong tag: refused at FW_END, nothing activated.
dev, gw = make(root, "b")
bad = bundle([("probe.py", b"WHICH = 'forged'\n")])
status(gw.send(p.FwBegin, len(bad), sha(bad), (6, 6, 6), mac(bad, other))[0], p.FW_RECEIVING, 0, "begin (wrong tag)")
status(send_all(gw, bad), p.FW_RECEIVING, len(bad), "chunks (wrong tag)")
r = gw.send(p.FwEnd)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_AUTH, "wrong tag: %r" % r)
equal(os.listdir(root + "/a"), [], "the forged bundle is emptied from the inactive slot")
r = gw.send(p.FwCommit)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_NO_TRANSFER, "no commit after a wrong tag: %r" % r)
equal(read(root + "/slot"), b"b", "the running slot is kept (wrong tag)")

# A bundle with a wrong SHA-256 is refused and b keeps running.
bad = bundle([("probe.py", b"WHICH = 'bad'\n")])
status(gw.send(p.FwBegin, len(bad), sha(bad + b"!"), (1, 2, 4), mac(bad))[0], p.FW_RECEIVING, 0, "begin (wrong hash)")
status(send_all(gw, bad), p.FW_RECEIVING, len(bad), "chunks (wrong hash)")
r = gw.send(p.FwEnd)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_VERIFY, "wrong hash: %r" % r)
equal(os.listdir(root + "/a"), [], "the inactive slot is emptied")
equal(read(root + "/slot"), b"b", "the running slot is kept")
r = gw.send(p.FwCommit)[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_NO_TRANSFER, "no commit after a failed check: %r" % r)

# A malformed bundle (a file name with a slash) is refused at the chunk that shows it.
evil = bundle([("../boot.py", b"x")])
gw.send(p.FwBegin, len(evil), sha(evil), (1, 2, 5), mac(evil))
r = send_all(gw, evil)
check(r.NAME == "NAK" and r.reason == p.NAK_FW_VERIFY, "bad name: %r" % r)
check(not exists(root + "/boot.py"), "nothing written outside the slot")
r = gw.send(p.FwChunk, 0, evil[:5])[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_NO_TRANSFER, "the transfer was aborted: %r" % r)

# A name that is not UTF-8 is refused the same way, not a crash of the handler.
raw_name = bytes((4,)) + b"\xff\xfe.p" + (1).to_bytes(4, "big") + b"x"
gw.send(p.FwBegin, len(raw_name), sha(raw_name), (1, 2, 6), mac(raw_name))
r = send_all(gw, raw_name)
check(r.NAME == "NAK" and r.reason == p.NAK_FW_VERIFY, "name not UTF-8: %r" % r)

# FW_ABORT drops a transfer; too large a bundle is refused with the size that fits.
gw.send(p.FwBegin, len(data), digest, (1, 3, 0), mac(data))
send_all(gw, data[:112])
equal(gw.send(p.FwAbort)[0].NAME, "ACK", "abort")
equal(os.listdir(root + "/a"), [], "abort empties the inactive slot")
r = gw.send(p.FwBegin, 0xFFFFFFF0, digest, (1, 3, 0), mac(data))[0]
check(r.NAME == "NAK" and r.reason == p.NAK_FW_TOO_LARGE and 0 < r.info < 0xFFFFFFF0, "too large: %r" % r)
equal(read(root + "/slot"), b"b", "still running b")

# RESTART: ACK, then the restart once the reply is out; the next boot says RESET_SOFT.
dev, gw = make(root, "b")
equal(gw.send(p.Restart)[0].NAME, "ACK", "restart acknowledged")
check(not dev.restart_due, "no restart before the reply is out")
dev._check(gw.clock.now())
check(dev.restart_due, "restart after the ACK")
slots.reset_cause = None
equal(slots.boot(4000, root), p.RESET_SOFT, "reset cause after RESTART")
check(not exists(root + "/fw_committed"), "restart marker removed")
# Its retry (the ACK was lost) meets the board restarted, not yet identified: ACK, no restart.
dev = make(root, "b")[0]
dev.identified = False
gw = Gateway(p, dev, gw.clock)
equal(gw.send(p.Restart)[0].NAME, "ACK", "a retried restart acknowledged")
dev._check(gw.clock.now())
check(not dev.restart_due and not exists(root + "/fw_committed"), "and not restarted again")
print("fw update checked")
finish()
