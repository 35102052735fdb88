"""The gateway's side of a firmware bundle transfer to one device (docs/protocol.md, "Firmware
transfer"): a pure state machine from a bundle to the frames FW_BEGIN, FW_CHUNK …, FW_END and
FW_COMMIT, which reads the device's replies (FW_STATUS, ACK, NAK) and time-outs on an injected
clock (seconds). It retries a lost exchange with the protocol's back-off, resumes after a silence
(a pulled cable, a busy bus) by asking again with FW_BEGIN — the device answers with the offset
it expects — and follows NAK FW_SEQUENCE to that offset. It owns no port and no schedule:
gateway.bus sends its frames between polls (BusMaster.start_update) and hands it what came back.

Also the bundle format the device unpacks (firmware/fw_update.py): entries of `name_len u8`,
`name`, `size u32` big-endian, then the bytes — make_bundle / read_bundle; the bundle's tag, an
HMAC-SHA256 under the device's key (bundle_tag), which a version-3 device checks before it
activates anything; FW_KEY's frame (key_frame); and the gateway's store of device keys (DeviceKeys:
a JSON file of its own, mode 0600, never the office config, which is journaled and published).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from hal.codec import Frame, P

MAX_NAME = 32
_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*\Z")


class BundleError(ValueError):
    """A bundle, or the files for one, that the device would refuse."""


def make_bundle(files: Mapping[str, bytes]) -> bytes:
    """The bundle of `files` (name -> contents), in name order so the bytes are reproducible."""
    if not files:
        raise BundleError("a bundle needs at least one file")
    out = bytearray()
    for name in sorted(files):
        if not 1 <= len(name) <= MAX_NAME or not _NAME.match(name):
            raise BundleError(f"file name {name!r} is not 1..{MAX_NAME} of A-Z a-z 0-9 _ - . (no '/')")
        data = bytes(files[name])
        out += bytes([len(name)]) + name.encode("ascii") + len(data).to_bytes(4, "big") + data
    return bytes(out)


def read_bundle(bundle: bytes) -> dict[str, bytes]:
    """The files in `bundle`; BundleError naming the offset where it is malformed."""
    files: dict[str, bytes] = {}
    i = 0
    while i < len(bundle):
        n = bundle[i]
        head = bundle[i + 1 : i + 1 + n + 4]
        if n == 0 or n > MAX_NAME or len(head) != n + 4:
            raise BundleError(f"bad entry header at offset {i}")
        name = head[:n].decode("ascii", "replace")
        if not _NAME.match(name):
            raise BundleError(f"bad file name {name!r} at offset {i}")
        size = int.from_bytes(head[n:], "big")
        start = i + 1 + n + 4
        if start + size > len(bundle):
            raise BundleError(f"{name}: {size} bytes at offset {start} run past the end")
        files[name] = bundle[start : start + size]
        i = start + size
    return files


def bundle_from_dir(directory: Path) -> bytes:
    """The bundle of every file in `directory` (one application slot: .mpy / .py modules)."""
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
    return make_bundle(files)


KEY_LEN = 32


def bundle_tag(key: bytes, bundle: bytes) -> bytes:
    """FW_BEGIN's tag: HMAC-SHA256 of the whole bundle under the device's key."""
    return hmac.new(key, bundle, hashlib.sha256).digest()


def key_frame(addr: int, seq: int, new_key: bytes, old_key: bytes | None) -> Frame:
    """FW_KEY storing `new_key` on the device: its proof is HMAC(old key, new key), or 32 zero
    bytes for a device that has no key yet (its install)."""
    if len(new_key) != KEY_LEN:
        raise ValueError(f"a device key is {KEY_LEN} bytes, got {len(new_key)}")
    proof = hmac.new(old_key, new_key, hashlib.sha256).digest() if old_key else bytes(KEY_LEN)
    return P.FwKey(addr, seq, new_key, proof)


class KeyStoreError(ValueError):
    """The key file cannot be used (unreadable, not ours, readable by others)."""


class DeviceKeys:
    """The gateway's device keys: `{"<bus url>#<addr>": "<64 hex>"}` in a JSON file of its own,
    mode 0600 (written aside, then renamed). Kept out of the config: the config text is stored in
    the journal and pushed over MQTT, so no secret may live in it (docs/operations.md)."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = os.fspath(path)

    @staticmethod
    def name(bus: str, addr: int) -> str:
        return f"{bus}#{addr}"

    def _load(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        if st.st_mode & 0o077:
            raise KeyStoreError(f"{self.path}: readable by others (mode {st.st_mode & 0o777:o}): chmod 600 it")
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{self.path}: cannot be read as a key file: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise KeyStoreError(f"{self.path}: not a key file (an object of hex keys)")
        return data

    def get(self, bus: str, addr: int) -> bytes | None:
        value = self._load().get(self.name(bus, addr))
        return bytes.fromhex(value) if value else None

    def put(self, bus: str, addr: int, key: bytes) -> None:
        data = self._load()
        data[self.name(bus, addr)] = key.hex()
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @staticmethod
    def new_key() -> bytes:
        return secrets.token_bytes(KEY_LEN)


class UpdateState(enum.Enum):
    BEGIN = "begin"  # FW_BEGIN: start, or learn where the device is (resume)
    SENDING = "sending"  # FW_CHUNK from `offset`
    ENDING = "ending"  # FW_END: the device checks size and SHA-256
    VERIFIED = "verified"  # checked; waiting for commit() (commit=False)
    COMMITTING = "committing"  # FW_COMMIT
    DONE = "done"  # committed: the device restarts into the new slot
    FAILED = "failed"  # see `error`


class FirmwareUpdate:
    """One bundle to one device. Drive it with next_frame(now) (None: nothing to send yet, see
    retry_at) and, for each frame sent, exactly one of on_reply(frame, now) or on_no_reply(now).

    `max_retries` lost exchanges in a row are retried after retry_delay_ms back-off; after that the
    transfer waits `stall_wait` s and asks again with FW_BEGIN (resume). With no progress for
    `give_up_after` s, or after `max_restarts` restarts from 0 (the device lost or refused the
    transfer), it fails. commit=False stops at VERIFIED until commit() is called. `key`: the
    device's key, for the bundle's tag (None: no tag, for a version-2 board, which has no key; a
    version-3 device refuses a bundle without one)."""

    def __init__(
        self,
        addr: int,
        bundle: bytes,
        version: tuple[int, int, int],
        now: float,
        *,
        chunk_size: int = P.MAX_CHUNK,
        max_retries: int = P.MAX_RETRIES,
        stall_wait: float = 1.0,
        give_up_after: float = 120.0,
        max_restarts: int = 2,
        commit: bool = True,
        key: bytes | None = None,
    ) -> None:
        if not bundle:
            raise BundleError("empty bundle")
        if not 1 <= chunk_size <= P.MAX_CHUNK:
            raise ValueError(f"chunk_size must be 1..{P.MAX_CHUNK}, got {chunk_size}")
        self.tag = bundle_tag(key, bundle) if key else b""
        P.FwBegin(addr, 0, len(bundle), hashlib.sha256(bundle).digest(), version, self.tag)  # checks addr, version
        self.addr = addr
        self.bundle = bytes(bundle)
        self.version = tuple(version)
        self.sha256 = hashlib.sha256(self.bundle).digest()
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.stall_wait = stall_wait
        self.give_up_after = give_up_after
        self.max_restarts = max_restarts
        self.auto_commit = commit
        self.state = UpdateState.BEGIN
        self.offset = 0  # the next byte the device expects
        self.error: str | None = None
        self.restarts = 0
        self.resumes = 0  # FW_BEGIN sent again after a silence
        self.retries = 0
        self.committed_unconfirmed = False
        self._seq = 0
        self._pending: Frame | None = None  # sent, no answer yet; resent as is on a retry
        self._attempts = 0
        self._retry_at: float | None = None
        self._progress_at = now

    # -- what to send --------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.state in (UpdateState.DONE, UpdateState.FAILED)

    @property
    def progress(self) -> float:
        return self.offset / len(self.bundle)

    def retry_at(self) -> float | None:
        """When next_frame will have something again, if it is waiting."""
        return None if self.finished or self.state is UpdateState.VERIFIED else self._retry_at

    def next_frame(self, now: float) -> Frame | None:
        if self.finished or self.state is UpdateState.VERIFIED:
            return None
        if now - self._progress_at > self.give_up_after:
            self._fail(f"no progress for {self.give_up_after:g} s (at byte {self.offset} of {len(self.bundle)})")
            return None
        if self._retry_at is not None and now < self._retry_at:
            return None
        self._retry_at = None
        if self._pending is None:
            self._seq = P.next_seq(self._seq)
            self._pending = self._request(self._seq)
        return self._pending

    def _request(self, seq: int) -> Frame:
        match self.state:
            case UpdateState.BEGIN:
                return P.FwBegin(self.addr, seq, len(self.bundle), self.sha256, self.version, self.tag)
            case UpdateState.SENDING:
                data = self.bundle[self.offset : self.offset + self.chunk_size]
                return P.FwChunk(self.addr, seq, self.offset, data)
            case UpdateState.ENDING:
                return P.FwEnd(self.addr, seq)
            case _:
                return P.FwCommit(self.addr, seq)

    def commit(self) -> None:
        """Install a VERIFIED bundle (commit=False): FW_COMMIT goes out next."""
        if self.state is not UpdateState.VERIFIED:
            raise RuntimeError(f"commit() needs a verified bundle, the transfer is {self.state.value}")
        self._go(UpdateState.COMMITTING)

    # -- what came back ----------------------------------------------------------------------------
    def on_no_reply(self, now: float) -> None:
        """The frame from next_frame got no valid reply in time."""
        if self._pending is None or self.finished:
            return
        self._attempts += 1
        if self._attempts <= self.max_retries:
            self.retries += 1
            self._retry_at = now + P.retry_delay_ms(self._attempts) / 1000
            return
        # Silent for a while (a pulled cable?): later, ask where the device is with FW_BEGIN.
        self._attempts = 0
        self._pending = None
        self._retry_at = now + self.stall_wait
        if self.state in (UpdateState.SENDING, UpdateState.ENDING):
            self.resumes += 1
            self.state = UpdateState.BEGIN

    def on_reply(self, frame: Frame, now: float) -> None:
        sent = self._pending
        if sent is None or self.finished or not frame.is_reply or frame.seq != sent.seq or frame.addr != self.addr:
            return  # not the answer to what is in flight
        if frame.TYPE == P.Nak.TYPE and frame.reason == P.NAK_BUSY:
            self.on_no_reply(now)  # the same frame again after back-off
            return
        self._pending = None
        self._attempts = 0
        if frame.TYPE == P.FwStatus.TYPE:
            self._status(frame, now)
        elif frame.TYPE == P.Ack.TYPE and self.state is UpdateState.COMMITTING:
            self._go(UpdateState.DONE, now)
        elif frame.TYPE == P.Nak.TYPE:
            self._nak(frame, now)
        else:
            self._fail(f"unexpected {frame.NAME} in answer to {sent.NAME}")

    def _status(self, frame: Frame, now: float) -> None:
        size = len(self.bundle)
        if frame.offset > size:
            self._fail(f"the device expects byte {frame.offset} of a {size}-byte bundle")
        elif frame.state == P.FW_VERIFIED and frame.offset == size and self.state is not UpdateState.COMMITTING:
            self.offset = size
            self._go(UpdateState.COMMITTING if self.auto_commit else UpdateState.VERIFIED, now)
        elif frame.state == P.FW_RECEIVING and self.state in (UpdateState.BEGIN, UpdateState.SENDING):
            if frame.offset != self.offset:
                self._progress_at = now
            self.offset = frame.offset
            self._go(UpdateState.ENDING if self.offset == size else UpdateState.SENDING, now)
        else:
            self._fail(f"FW_STATUS state={frame.state} offset={frame.offset} while {self.state.value}")

    def _nak(self, frame: Frame, now: float) -> None:
        reason, info = frame.reason, frame.info
        if reason == P.NAK_FW_SEQUENCE and info <= len(self.bundle):
            self.offset = info
            self._go(UpdateState.ENDING if info == len(self.bundle) else UpdateState.SENDING, now)
        elif reason == P.NAK_FW_NO_TRANSFER and self.state is UpdateState.COMMITTING:
            # Our commit was done and its ACK lost, the device restarted: its HELLO tells the version.
            self.committed_unconfirmed = True
            self._go(UpdateState.DONE, now)
        elif reason in (P.NAK_FW_NO_TRANSFER, P.NAK_FW_VERIFY):
            what = "lost the transfer" if reason == P.NAK_FW_NO_TRANSFER else "refused the bundle (size or SHA-256)"
            if self.restarts >= self.max_restarts:
                self._fail(f"the device {what} {self.restarts + 1} times")
                return
            self.restarts += 1
            self.offset = 0
            self._go(UpdateState.BEGIN, now)
        elif reason == P.NAK_FW_AUTH:
            # Never retried: another try with the same key would be refused the same way.
            self._fail("the device refused the bundle's tag (no key provisioned, or not the key kept here)")
        elif reason == P.NAK_FW_TOO_LARGE:
            self._fail(f"the bundle of {len(self.bundle)} bytes does not fit: the device takes at most {info}")
        elif reason == P.NAK_UNSUPPORTED:
            self._fail("the device does not accept firmware transfers")
        else:
            self._fail(f"NAK reason {reason} info {info}")

    def _go(self, state: UpdateState, now: float | None = None) -> None:
        self.state = state
        self._pending = None
        self._retry_at = None
        if now is not None:
            self._progress_at = now

    def _fail(self, why: str) -> None:
        self.state = UpdateState.FAILED
        self.error = why
        self._pending = None
