"""The `sim://` URL scheme for pyserial: a serial port with simulated devices behind it.

    sim://dispenser?addr=1
    sim://counter_pad?addr=5
    sim://call_display?addr=16
    sim://bus?dispenser=1&counter_pad=5,6&call_display=16        several devices on one line
    ...&seed=7&corrupt=0.001&drop=0.0005                           seeded faults on the wire
    ...&backend=auto|python|micropython                            the device implementation

pyserial finds this module because hal.serial_link adds "hal" to
serial.protocol_handler_packages. Replies are produced synchronously while `write` runs, so a
read right after a write sees the whole reply (or nothing: a lost reply never arrives later).
Backends (`BACKENDS`, each behind the DeviceBackend interface):

- `python`: hal.simdevice, pure-Python devices; the port's `bus` is their SimBus.
- `micropython`: the real firmware, one MicroPython Unix-port process per device
  (hal.firmware_sim); the port's `firmware` is their FirmwareBus (boards, HIL stdin hook).
- `auto` (the default): `micropython` when hal.firmware_sim.find_micropython() finds the
  binary, else `python`.

A backend with a `close()` is closed with the port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import serial
from serial import SerialBase

from hal import firmware_sim
from hal.codec import KIND_BY_NAME
from hal.simdevice import DeviceBackend, FaultyBackend, FaultyLine, SimBus, SimDevice

if TYPE_CHECKING:
    from typing_extensions import Buffer

# backend name -> factory(devices) -> the backend. Devices are (kind name, address) pairs.
BACKENDS: dict[str, Callable[[list[tuple[str, int]]], tuple[DeviceBackend, SimBus | None]]] = {}


def _python_backend(devices: list[tuple[str, int]]) -> tuple[DeviceBackend, SimBus | None]:
    bus = SimBus([SimDevice.named(kind, addr) for kind, addr in devices])
    return bus, bus


def _micropython_backend(devices: list[tuple[str, int]]) -> tuple[DeviceBackend, SimBus | None]:
    binary = firmware_sim.find_micropython()
    if binary is None:
        raise serial.SerialException(
            f"backend=micropython: no MicroPython Unix port found (${firmware_sim.ENV_BINARY}, "
            "next to the Python interpreter, or on PATH)"
        )
    return firmware_sim.FirmwareBus(devices, binary), None


BACKENDS["python"] = _python_backend
BACKENDS["micropython"] = _micropython_backend
AUTO = "auto"


def resolve_backend(name: str) -> str:
    """`auto` -> `micropython` if its binary is found, else `python`; other names unchanged."""
    if name != AUTO:
        return name
    return "micropython" if firmware_sim.find_micropython() is not None else "python"


def parse_sim_url(url: str) -> tuple[list[tuple[str, int]], str, dict[str, float]]:
    """(devices, backend name, fault options) from a sim:// URL; ValueError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme != "sim":
        raise ValueError(f"not a sim:// URL: {url!r}")
    target = parts.netloc
    try:
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=bool(parts.query)).items()}
    except ValueError as e:
        raise ValueError(f"{url!r}: bad query string ({e})") from None
    devices: list[tuple[str, int]] = []
    if target == "bus":
        for kind in KIND_BY_NAME:
            for a in query.pop(kind, "").split(","):
                if a:
                    devices.append((kind, _addr(url, a)))
        if not devices:
            raise ValueError(f"{url!r}: a sim://bus needs devices, e.g. ?dispenser=1&call_display=16")
    elif target in KIND_BY_NAME:
        if "addr" not in query:
            raise ValueError(f"{url!r}: addr is missing, e.g. sim://{target}?addr=1")
        devices.append((target, _addr(url, query.pop("addr"))))
    else:
        raise ValueError(f"{url!r}: unknown device {target!r} (one of {', '.join(KIND_BY_NAME)} or bus)")
    backend = query.pop("backend", AUTO)
    if backend != AUTO and backend not in BACKENDS:
        raise ValueError(f"{url!r}: unknown backend {backend!r} (backends: {', '.join([AUTO, *BACKENDS])})")
    faults: dict[str, float] = {}
    for key in ("seed", "corrupt", "drop"):
        if key in query:
            try:
                faults[key] = float(query.pop(key))
            except ValueError:
                raise ValueError(f"{url!r}: {key} must be a number") from None
    if query:
        raise ValueError(f"{url!r}: unknown option(s) {', '.join(sorted(query))}")
    return devices, backend, faults


def _addr(url: str, text: str) -> int:
    try:
        addr = int(text)
    except ValueError:
        raise ValueError(f"{url!r}: address {text!r} is not a number") from None
    if not 1 <= addr <= 16:
        raise ValueError(f"{url!r}: address {addr} is outside 1-16")
    return addr


class Serial(SerialBase):
    """A pyserial port whose far end is simulated devices (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rx = bytearray()
        self.backend: DeviceBackend | None = None
        self.bus: SimBus | None = None  # the simulated devices, when the backend exposes them
        self.firmware: firmware_sim.FirmwareBus | None = None  # the firmware processes (micropython)
        self.backend_name = ""  # the backend chosen (`auto` resolved)
        self._device_backend: DeviceBackend | None = None  # the backend before any FaultyBackend
        self.line: FaultyLine | None = None
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:
            raise serial.SerialException("port already open")
        devices, backend, faults = parse_sim_url(str(self.portstr))
        self.backend_name = resolve_backend(backend)
        self.backend, self.bus = BACKENDS[self.backend_name](devices)
        self._device_backend = self.backend
        if isinstance(self.backend, firmware_sim.FirmwareBus):
            self.firmware = self.backend
        if faults:
            self.line = FaultyLine(int(faults.get("seed", 0)), faults.get("corrupt", 0.0), faults.get("drop", 0.0))
            self.backend = FaultyBackend(self.backend, self.line)
        self._rx.clear()
        self.is_open = True

    def close(self) -> None:
        self.is_open = False
        self.backend = None
        inner, self._device_backend = self._device_backend, None
        close = getattr(inner, "close", None)
        if callable(close):
            close()  # e.g. stops the firmware processes

    def _reconfigure_port(self) -> None:
        pass  # baud rate and framing mean nothing to a simulation

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise serial.PortNotOpenError()
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data: Buffer, /) -> int:
        if not self.is_open or self.backend is None:
            raise serial.PortNotOpenError()
        data = bytes(data)
        self._rx += self.backend.receive(data)
        return len(data)

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def reset_output_buffer(self) -> None:
        pass

    @property
    def out_waiting(self) -> int:
        return 0
