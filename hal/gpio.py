"""A counter wired straight to the Pi's GPIO: keys (buttons), a status lamp (LEDs), a buzzer.

Devices come from gpiozero with the pin factory named in the configuration ("mock" in tests,
"lgpio" or "rpigpio" on a Pi), so nothing here touches hardware directly. Debouncing is ours, not
gpiozero's `bounce_time` (MockPin ignores it, and a polled check is testable): `Debouncer` is
pure, and `DirectCounter.check(now)` reads the pins and returns the keys pressed since the last
check, as firmware.protocol KEY_* codes, like a counter pad on the bus. No queue logic: turning
keys into office commands is the gateway's (gateway.device_link.key_command).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from hal.codec import P

# factory name -> (module, class) in gpiozero
PIN_FACTORIES: dict[str, tuple[str, str]] = {
    "mock": ("gpiozero.pins.mock", "MockFactory"),
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
}

KEY_NAMES: dict[str, int] = {
    "call_next": P.KEY_CALL_NEXT,
    "done": P.KEY_DONE,
    "recall": P.KEY_RECALL,
    "no_show": P.KEY_NO_SHOW,
    "pause": P.KEY_PAUSE,
}


def pin_factory(name: str) -> Any:
    """A gpiozero pin factory by its configuration name; ValueError naming the choices."""
    if name not in PIN_FACTORIES:
        raise ValueError(f"unknown GPIO pin factory {name!r} (one of {', '.join(PIN_FACTORIES)})")
    module, cls = PIN_FACTORIES[name]
    return getattr(importlib.import_module(module), cls)()


class Debouncer:
    """One input's stable level: a new level counts once it has held for `hold` seconds.

    update(level, now) -> the new stable level when it changes, else None. Call it often (every
    few ms); a glitch shorter than `hold` is never reported."""

    def __init__(self, hold: float = 0.02, level: bool = False) -> None:
        self.hold = hold
        self.stable = level
        self._candidate = level
        self._since = 0.0

    def update(self, level: bool, now: float) -> bool | None:
        if level != self._candidate:
            self._candidate = level
            self._since = now
        # 1 µs of slack: float seconds (0.22 - 0.2 < 0.02) must not stretch a hold by a check.
        if self._candidate != self.stable and now - self._since >= self.hold - 1e-6:
            self.stable = self._candidate
            return self.stable
        return None


class DirectCounter:
    """Keys, a three-colour status lamp and a buzzer on GPIO pins.

    `keys`: key name (KEY_NAMES) -> BCM pin, wired to ground (pull-up, pressed = low).
    `lamps`: "green"/"amber"/"red" -> BCM pin of that LED. `buzzer`: BCM pin or None."""

    def __init__(
        self,
        factory: Any,
        keys: Mapping[str, int],
        lamps: Mapping[str, int] | None = None,
        buzzer: int | None = None,
        hold: float = 0.02,
    ) -> None:
        from gpiozero import LED, Buzzer, DigitalInputDevice  # type: ignore[import-untyped]

        unknown = sorted(set(keys) - set(KEY_NAMES))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)} (keys: {', '.join(KEY_NAMES)})")
        lamps = lamps or {}
        bad = sorted(set(lamps) - {"green", "amber", "red"})
        if bad:
            raise ValueError(f"unknown lamp colour(s) {', '.join(bad)} (green, amber, red)")
        self._inputs: dict[int, Any] = {}
        self._debounce: dict[int, Debouncer] = {}
        for name, pin in keys.items():
            code = KEY_NAMES[name]
            self._inputs[code] = DigitalInputDevice(pin, pull_up=True, pin_factory=factory)
            self._debounce[code] = Debouncer(hold)
        self._lamps: dict[int, Any] = {}
        colours = {"green": P.LAMP_GREEN, "amber": P.LAMP_AMBER, "red": P.LAMP_RED}
        for colour, pin in lamps.items():
            self._lamps[colours[colour]] = LED(pin, pin_factory=factory)
        self._buzzer: Any = Buzzer(buzzer, pin_factory=factory) if buzzer is not None else None

    def check(self, now: float) -> list[int]:
        """Read every key; the KEY_* codes pressed (debounced press edges) since the last check."""
        pressed = []
        for code, device in self._inputs.items():
            if self._debounce[code].update(bool(device.value), now) is True:
                pressed.append(code)
        return pressed

    def status_lamp(self, colour: int) -> None:
        """Light the LED of `colour` (LAMP_*), the others off; LAMP_OFF turns all off."""
        for c, led in self._lamps.items():
            led.value = 1 if c == colour else 0

    def beep(self, on: bool) -> None:
        if self._buzzer is not None:
            self._buzzer.value = 1 if on else 0

    def deinit(self) -> None:
        for device in [*self._inputs.values(), *self._lamps.values()]:
            device.close()
        if self._buzzer is not None:
            self._buzzer.close()
