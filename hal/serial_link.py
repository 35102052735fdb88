"""Serial links opened by URL: a real port (/dev/ttyAMA0, /dev/ttyUSB0), a pty path, `loop://`,
or `sim://` simulated devices (hal.protocol_sim). The URL is configuration; nothing downstream
knows which one it got. Framing lives in firmware.protocol; this module only opens the port,
and says without opening anything whether a URL can ever work (`url_problem`).
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

import serial

from hal.codec import P
from hal.protocol_sim import parse_sim_url

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
    except OverflowError:  # sim://…&seed=inf: int() of an infinity
        raise ValueError(f"{url!r}: not a valid serial URL (a number out of range)") from None
    except serial.SerialException as exc:
        # pyserial's URL handlers (socket://, rfc2217://, spy://, ...) say "expected a string in the
        # form ..." for a URL they can never open: that is syntax, not a missing device.
        if str(exc).startswith("expected a string in the form"):
            raise ValueError(f"{url!r}: not a valid serial URL ({exc})") from None
        raise


# The options pyserial's own URL handlers accept (serial/urlhandler/protocol_*.py, 3.5), for the
# check below; a scheme not listed has its options checked only when it is opened.
_LOG_LEVELS = ("debug", "info", "warning", "error")
_OPTIONS = {
    "loop": {"logging"},
    "socket": {"logging"},
    "rfc2217": {"logging", "ign_set_control", "poll_modem", "timeout"},
    "spy": {"file", "color", "raw", "all"},
    "alt": {"class"},
}


def url_problem(url: str) -> str | None:
    """Why `url` can never be opened by open_link, or None; opens, creates and connects nothing,
    so a config can be checked before anything is touched. None promises only that trying can
    succeed: a device path may be missing now and plugged in later (open_link's second kind of
    failure), and a handler's finer syntax (hwgrep://, cp2110://) is checked when it opens."""
    if not url.strip():
        return "empty"
    if url != url.strip():
        return "spaces before or after it (a typo?)"
    if "://" not in url:
        return None  # a device path: whether it exists is for open time
    scheme = url.split("://", 1)[0].lower()  # as pyserial picks the handler
    if scheme == "sim":
        try:
            devices, _, faults = parse_sim_url(url)  # what hal.protocol_sim's port runs when it opens
        except ValueError as exc:
            return str(exc)
        # What opening checks beyond the parser: SimBus refuses a shared address, and int(seed)
        # a NaN or an infinity.
        addrs = [addr for _, addr in devices]
        if len(set(addrs)) != len(addrs):
            return f"{url!r}: two devices at address {next(a for a in addrs if addrs.count(a) > 1)}"
        if not math.isfinite(faults.get("seed", 0.0)):
            return f"{url!r}: seed must be a whole number"
        return None
    if not any(_handler_exists(package, scheme) for package in serial.protocol_handler_packages):
        return f"invalid URL, protocol {scheme!r} not known"
    parts = urlsplit(url)
    options = _OPTIONS.get(scheme)
    if options is not None:
        for option, values in parse_qs(parts.query, keep_blank_values=True).items():
            if option not in options:
                return f"not a valid serial URL (unknown option {option!r}; {scheme}:// takes {sorted(options)})"
            if option == "logging" and values[0] not in _LOG_LEVELS:
                return f"not a valid serial URL (logging must be one of {list(_LOG_LEVELS)})"
            if option == "timeout" and not _is_float(values[0]):
                return "not a valid serial URL (timeout must be a number of seconds)"
    if scheme in ("socket", "rfc2217"):
        try:
            port = parts.port  # ValueError for a port that is not a number 0-65535
        except ValueError:
            port = None
        if port is None:
            return f"not a valid serial URL (expected {scheme}://<host>:<port>, the port a number 0-65535)"
    if scheme == "spy" and "://" in parts.netloc + parts.path:  # pyserial's spy wraps a device path only
        return "spy:// takes a device path (spy:///dev/ttyUSB0), not another URL"
    return None


def _handler_exists(package: str, scheme: str) -> bool:
    """pyserial's lookup of a URL handler (serial_for_url), without importing the handler."""
    if not scheme.isidentifier():
        return False  # "a.b" or "../x" would reach other modules, or none
    try:
        return importlib.util.find_spec(f"{package}.protocol_{scheme}") is not None
    except ImportError:
        return False


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
