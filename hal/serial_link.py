"""Serial links opened by URL: a real port (/dev/ttyAMA0, /dev/ttyUSB0), a pty path, `loop://`,
or `sim://` simulated devices (hal.protocol_sim). The URL is configuration; nothing downstream
knows which one it got. Framing lives in firmware.protocol; this module only opens the port.
"""

from __future__ import annotations

from typing import Any

import serial

from hal.codec import P

if "hal" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("hal")  # makes sim:// resolve to hal.protocol_sim


def open_link(url: str, *, timeout: float | None = 0.0, **kwargs: Any) -> serial.SerialBase:
    """Open the serial link at `url` at the bus's line settings (115200 8N1).

    `timeout`: seconds a read may wait (0: never wait, None: forever). A bad URL or a port that
    cannot be opened raises ValueError / serial.SerialException naming it."""
    kwargs.setdefault("baudrate", P.BAUD)
    return serial.serial_for_url(
        url,
        timeout=timeout,
        bytesize=serial.EIGHTBITS,
        parity=serial.PARITY_NONE,
        stopbits=serial.STOPBITS_ONE,
        **kwargs,
    )
