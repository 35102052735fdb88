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

    `timeout`: seconds a read may wait (0: never wait, None: forever).

    Two kinds of failure, kept apart because the gateway treats them differently: a URL that can
    never work (unknown scheme, bad options) raises ValueError naming it — a configuration error;
    a port that cannot be opened now (adapter unplugged, no such device yet, pty gone) raises
    serial.SerialException (an OSError) — worth trying again later."""
    kwargs.setdefault("baudrate", P.BAUD)
    try:
        return serial.serial_for_url(
            url,
            timeout=timeout,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            **kwargs,
        )
    except KeyError:  # pyserial's loop:// fails so on a bad option (a format string bug of its own)
        raise ValueError(f"{url!r}: not a valid serial URL (bad options)") from None
    except serial.SerialException as exc:
        # pyserial's URL handlers (socket://, rfc2217://, spy://, ...) say "expected a string in the
        # form ..." for a URL they can never open: that is syntax, not a missing device.
        if str(exc).startswith("expected a string in the form"):
            raise ValueError(f"{url!r}: not a valid serial URL ({exc})") from None
        raise
