"""Maintenance of the bus devices, asked for from afar (MQTT: `restart_device`, `firmware_update`)
or on the gateway (the control socket: `counterfloor firmware provision|push|status`): RESTART,
device keys (FW_KEY) and authenticated firmware updates with their health check.

Owns the jobs under way, each named by a token (the MQTT command's id, or one the control socket
made), and their answers. It never blocks the floor: a job only queues frames on its device's
link (RESTART, FW_KEY) or hands a FirmwareUpdate to its bus (BusMaster.start_update), and `step`
looks at how they are doing at each turn of the gateway's loop; the device's ACK or failure
comes back through `link_effect`. It must not touch a port, the journal or the office model.

Device ids are MQTT's (docs/mqtt.md): `<bus>-<addr>`, the bus its port's index in the gateway's
order. Keys live in gateway.firmware_update.DeviceKeys (a file of their own, mode 0600).

A firmware job's states, in its progress answers: `sending` (with `progress` 0..1), `committing`,
`restarting` (committed: the device restarts into the new slot, on trial), then final: `installed`
(its HELLO says the new version, and it has answered polls for `healthy_after` s since: as long as
the device's own health check needs) or an error: `failed` (the transfer; the device keeps its
slot), `rolled_back` (a HELLO with another version: the new slot did not prove healthy and the
device went back by itself), `no_hello` (no HELLO with the new version within `hello_within` s).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from gateway.bus import BusMaster
from gateway.device_link import CommandDone, CommandFailed, DeviceLink, Identified, LinkState
from gateway.firmware_update import (
    BundleError,
    DeviceKeys,
    FirmwareUpdate,
    KeyStoreError,
    UpdateState,
    key_frame,
    read_bundle,
)
from hal.codec import P

_log = logging.getLogger(__name__)

MAX_BUNDLE = 1 << 20  # bytes: far above a slot (~60 KB of .mpy), far below what would hurt the gateway
RESTART_ANSWER_S = 10.0  # a RESTART or FW_KEY with no ACK nor failure by then is answered no_ack
PROGRESS_EVERY_S = 2.0  # a firmware job's progress answer at most this often (and at each state)
HEALTHY_AFTER_S = 10.0  # answering polls this long with the new version: installed
HELLO_WITHIN_S = 3 * 120.0 + 60.0  # the device's TRIAL_BOOTS x HEALTH_MS, and a minute


class BusView(Protocol):
    """What a job needs of one of the gateway's buses (gateway.service.Bus)."""

    @property
    def url(self) -> str: ...

    @property
    def master(self) -> BusMaster: ...


@dataclass
class Job:
    token: str
    kind: str  # restart, provision, firmware
    device: str
    bus: BusView
    link: DeviceLink
    deadline: float
    key: bytes | None = None  # provision: the key sent, stored once the device ACKs it
    update: FirmwareUpdate | None = None
    version: tuple[int, int, int] | None = None
    state: str = "queued"
    reported: tuple[str, float] = ("", -1.0)  # the last progress answer: (state, progress)
    reported_at: float = 0.0
    done_at: float | None = None  # firmware: when the commit was done
    hello: Identified | None = None  # firmware: the identity the link had at the commit
    healthy_since: float | None = None
    answer: dict[str, Any] | None = None  # the final answer, once there is one
    told: bool = False  # the final answer was handed out by step()
    started: float = 0.0


def bundle_path(url: str) -> Path:
    """The file a firmware_update's `bundle_url` names: an absolute path on the gateway or a
    `file://` URL. Anything else (http://, a relative path) is refused: the gateway fetches
    nothing over the network (what it installs is what an operator put on it)."""
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"bundle_url {url!r}: a file:// URL names a file on the gateway (no host)")
        path = Path(unquote(parsed.path))
    elif "://" in url:
        raise ValueError(f"bundle_url {url!r}: only a path on the gateway or a file:// URL (no network fetch)")
    else:
        path = Path(url)
    if not path.is_absolute():
        raise ValueError(f"bundle_url {url!r}: the path must be absolute")
    return path


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError(f"version {text!r} is not MAJOR.MINOR.PATCH, each 0-255")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _error(code: str, error: str, **more: Any) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error, **more}


class DeviceJobs:
    """The maintenance jobs of one gateway (see the module docstring). `buses()` lists the
    gateway's buses in their id order; `keys` is the key file."""

    def __init__(self, buses: Callable[[], Sequence[BusView]], keys: DeviceKeys) -> None:
        self._buses = buses
        self.keys = keys
        self.jobs: dict[str, Job] = {}

    # -- finding devices ---------------------------------------------------------------------------
    def find(self, device: str) -> tuple[BusView, DeviceLink] | None:
        bus_index, _, addr = device.partition("-")
        if not (bus_index.isdigit() and addr.isdigit()):
            return None
        buses = self._buses()
        if int(bus_index) >= len(buses):
            return None
        bus = buses[int(bus_index)]
        link = bus.master.by_addr.get(int(addr))
        return (bus, link) if link is not None else None

    def _start(self, token: str, kind: str, device: str, now: float) -> Job | dict[str, Any]:
        if (old := self.jobs.get(token)) is not None:
            return old.answer or {"ok": True, "state": old.state, "pending": True, "repeated": True}
        found = self.find(device)
        if found is None:
            return _error("unknown_device", f"no device {device!r} (ids are <bus>-<addr>, docs/mqtt.md)")
        bus, link = found
        if any(j.answer is None and j.link is link for j in self.jobs.values()):
            return _error("busy", f"device {device}: another maintenance job is under way")
        if link.state is LinkState.OFFLINE or link.identity is None:
            return _error("offline", f"device {device} is {link.state.value}: not answering now")
        return Job(token, kind, device, bus, link, now + RESTART_ANSWER_S, started=now)

    # -- RESTART and FW_KEY --------------------------------------------------------------------------
    def restart(self, token: str, device: str, now: float) -> dict[str, Any] | None:
        """Queue RESTART; None: answered later (step), once the device ACKed (or did not)."""
        job = self._start(token, "restart", device, now)
        if isinstance(job, dict):
            return job
        why = job.link.maintenance("RESTART", lambda a, s: P.Restart(a, s), token)
        if why is not None:
            return _error("offline" if "protocol" not in why else "unsupported", f"device {device}: {why}")
        self.jobs[token] = job
        return None

    def provision(self, token: str, device: str, now: float) -> dict[str, Any] | None:
        """A new random key for the device, sent with FW_KEY (its proof made with the key kept
        here, if any) and stored in the key file once the device ACKed it."""
        job = self._start(token, "provision", device, now)
        if isinstance(job, dict):
            return job
        try:
            old = self.keys.get(job.bus.url, job.link.addr)
        except KeyStoreError as exc:
            return _error("keys", str(exc))
        job.key = DeviceKeys.new_key()
        new = job.key
        why = job.link.maintenance("FW_KEY", lambda a, s: key_frame(a, s, new, old), token)
        if why is not None:
            return _error("offline" if "protocol" not in why else "unsupported", f"device {device}: {why}")
        self.jobs[token] = job
        return None

    # -- firmware --------------------------------------------------------------------------------
    def firmware(
        self, token: str, device: str, bundle_url: str, sha256: str | None, now: float, version: str | None = None
    ) -> dict[str, Any] | None:
        """Start an authenticated transfer of the bundle at `bundle_url` (bundle_path) whose
        SHA-256 must be `sha256` (hex; None: not checked, the CLI's own file). The version is
        `version`, else the bundle's `version` file. None: under way (progress from step)."""
        job = self._start(token, "firmware", device, now)
        if isinstance(job, dict):
            return job
        try:
            path = bundle_path(bundle_url)
            if path.stat().st_size > MAX_BUNDLE:
                return _error("bad_bundle", f"{path}: larger than {MAX_BUNDLE} bytes")
            bundle = path.read_bytes()
        except ValueError as exc:
            return _error("bad_command", str(exc))
        except OSError as exc:
            return _error("bad_bundle", f"{bundle_url}: cannot be read: {exc.strerror or exc}")
        if sha256 is not None and hashlib.sha256(bundle).hexdigest() != sha256.lower():
            return _error("sha256_mismatch", f"{path}: its SHA-256 is not {sha256}")
        try:
            files = read_bundle(bundle)
            text = version if version is not None else files.get("version", b"").decode("ascii", "replace")
            if not text:
                return _error("bad_bundle", f"{path}: no `version` file in the bundle, and no version given")
            job.version = parse_version(text)
        except (BundleError, ValueError) as exc:
            return _error("bad_bundle", f"{path}: {exc}")
        link = job.link
        assert link.identity is not None
        key = None
        if link.identity.proto >= 3:
            try:
                key = self.keys.get(job.bus.url, link.addr)
            except KeyStoreError as exc:
                return _error("keys", str(exc))
            if key is None:
                return _error("no_key", f"device {device}: no key provisioned (counterfloor firmware provision)")
        try:
            job.update = FirmwareUpdate(link.addr, bundle, job.version, now, key=key)
        except (BundleError, ValueError) as exc:
            return _error("bad_bundle", str(exc))
        job.bus.master.start_update(job.update)
        job.state = "sending"
        self.jobs[token] = job
        _log.info("device %s: firmware %s transfer started (%d bytes)", device, text, len(bundle))
        return None

    # -- what came back ----------------------------------------------------------------------------
    def link_effect(self, effect: CommandDone | CommandFailed) -> None:
        job = self.jobs.get(effect.token or "")
        if job is None or job.answer is not None:
            return
        if isinstance(effect, CommandDone):
            if job.kind == "provision" and job.key is not None:
                try:
                    self.keys.put(job.bus.url, job.link.addr, job.key)
                except (KeyStoreError, OSError) as exc:
                    job.answer = _error("keys", f"the device took the key but it could not be kept here: {exc}")
                    return
                job.answer = {"ok": True, "state": "provisioned"}
            else:
                job.answer = {"ok": True, "state": "restarting"}
        else:
            job.answer = _error("no_ack", f"device {job.device}: {effect.name} {effect.reason}")

    def step(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """Answers due now, as (token, answer): progress (ok, `"pending": true`) and final ones.
        A final answer is given once; its job is then forgotten after a while."""
        out: list[tuple[str, dict[str, Any]]] = []
        for token, job in list(self.jobs.items()):
            if job.answer is None:
                if job.kind == "firmware":
                    progress = self._firmware(job, now)
                    if progress is not None:
                        out.append((token, progress))
                elif job.link.state is LinkState.OFFLINE:
                    job.answer = _error("offline", f"device {job.device} went offline before its ACK")
                elif now >= job.deadline:
                    job.answer = _error("no_ack", f"device {job.device}: no ACK within {RESTART_ANSWER_S:g} s")
            if job.answer is not None and not job.told:
                job.told = True
                job.deadline = now + 600.0  # kept a while for a retried id and `status`, then forgotten
                out.append((token, job.answer))
            elif job.told and now >= job.deadline:
                del self.jobs[token]
        return out

    def _firmware(self, job: Job, now: float) -> dict[str, Any] | None:
        update = job.update
        assert update is not None and job.version is not None
        link = job.link
        version = ".".join(map(str, job.version))
        if update.state is UpdateState.FAILED:
            job.answer = _error("failed", f"device {job.device}: firmware {version}: {update.error}")
            return None
        if update.state is UpdateState.DONE:
            if job.done_at is None:
                job.done_at, job.hello, job.state = now, link.identity, "restarting"
            identity = link.identity
            if identity is not None and identity is not job.hello:  # a HELLO since the commit
                if tuple(identity.version) != job.version:
                    have = ".".join(map(str, identity.version))
                    job.answer = _error(
                        "rolled_back",
                        f"device {job.device} runs {have}, not {version}: the new slot did not prove healthy",
                        version=have,
                    )
                    return None
                job.state = "verifying"
                if link.state is LinkState.ONLINE and link.missed == 0:
                    job.healthy_since = job.healthy_since if job.healthy_since is not None else now
                    if now - job.healthy_since >= HEALTHY_AFTER_S:
                        job.answer = {"ok": True, "state": "installed", "version": version}
                        return None
                else:
                    job.healthy_since = None
            elif now - job.done_at > HELLO_WITHIN_S:
                job.answer = _error("no_hello", f"device {job.device}: no HELLO with {version} in {HELLO_WITHIN_S:g} s")
                return None
        else:
            job.state = "committing" if update.state is UpdateState.COMMITTING else "sending"
        mark = (job.state, round(update.progress, 2))
        if mark[0] != job.reported[0] or (mark != job.reported and now - job.reported_at >= PROGRESS_EVERY_S):
            job.reported, job.reported_at = mark, now
            return {"ok": True, "pending": True, "state": job.state, "progress": mark[1], "version": version}
        return None

    def view(self, device: str) -> dict[str, Any] | None:
        """The latest maintenance job of `device`, for its published state (None: none kept)."""
        jobs = [j for j in self.jobs.values() if j.device == device]
        if not jobs:
            return None
        job = max(jobs, key=lambda j: j.started)
        view: dict[str, Any] = {"job": job.kind, "id": job.token, "state": job.state}
        if job.update is not None:
            view["progress"] = round(job.update.progress, 2)
            view["version"] = ".".join(map(str, job.version or ()))
        if job.answer is not None:
            view["state"] = job.answer.get("state") or job.answer.get("code")
            view["ok"] = bool(job.answer.get("ok"))
        return view

    def status(self, token: str) -> dict[str, Any]:
        """The control socket's `firmware-status`: the job's final answer, or where it is."""
        job = self.jobs.get(token)
        if job is None:
            return _error("unknown_job", f"no maintenance job {token!r} (finished jobs are kept 10 minutes)")
        if job.answer is not None:
            return job.answer
        out: dict[str, Any] = {"ok": True, "pending": True, "state": job.state}
        if job.update is not None:
            out["progress"] = round(job.update.progress, 2)
        return out
