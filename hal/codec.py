"""A typed doorway to the bus codec in firmware/protocol.py.

The codec is written in the subset MicroPython runs, so it carries no annotations; mypy --strict
would flag every call into it. Everything on the host reaches it through `P` (the module, typed
as Any) and `Frame` (any decoded frame), so the untyped surface stays in one place.
"""

from __future__ import annotations

import importlib
from typing import Any

P: Any = importlib.import_module("firmware.protocol")

# A decoded frame (firmware.protocol.Frame, made by calling a message type such as P.Call: its
# fields are plain attributes; TYPE and NAME say which type it is, never isinstance).
Frame = Any

BYTE_TIME_S: float = P.BITS_PER_BYTE / P.BAUD
REPLY_TIMEOUT_S: float = P.REPLY_TIMEOUT_US / 1_000_000
TURNAROUND_S: float = P.TURNAROUND_US / 1_000_000

KIND_NAMES: dict[int, str] = {
    P.KIND_DISPENSER: "dispenser",
    P.KIND_COUNTER_PAD: "counter_pad",
    P.KIND_CALL_DISPLAY: "call_display",
}
KIND_BY_NAME: dict[str, int] = {name: kind for kind, name in KIND_NAMES.items()}


def wire_time(n_bytes: int) -> float:
    """Seconds that `n_bytes` take on the bus at 115200 baud, 10 bits a byte."""
    return n_bytes * BYTE_TIME_S


def new_decoder() -> Any:
    return P.Decoder()
