"""The counters wired to the Pi's GPIO ([[devices]] of kind gpio_counter), in the gateway's loop.

Owns turning their debounced key presses (hal.gpio.DirectCounter) into office commands
(gateway.device_link.key_command), run through the gateway's own command path (`execute`: the
journal) with the calls they bring about shown on every display and pad (the shared CallRouter),
exactly as a counter pad's keys on the bus. Also owns their lamp and buzzer:

- lamp: green while the counter is open, amber while paused, off while closed;
- buzzer and red lamp: on for REFUSED_BEEP_S when a key does nothing: nobody is waiting, the
  office refuses it (counter closed or paused) or the journal cannot store it; silent otherwise
  (the call displays chime).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.bus import CallRouter
from gateway.device_link import key_command
from hal.codec import P
from hal.gpio import DirectCounter, pin_factory
from office import model as m
from office.config import OfficeConfig
from office.state import CounterStatus, OfficeState

REFUSED_BEEP_S = 0.3
_log = logging.getLogger(__name__)
_LAMP = {CounterStatus.OPEN: P.LAMP_GREEN, CounterStatus.PAUSED: P.LAMP_AMBER, CounterStatus.CLOSED: P.LAMP_OFF}


@dataclass
class GpioCounter:
    counter: str
    device: DirectCounter
    lamp: int | None = None  # the LAMP_* shown, None before the first poll
    beep_until: float | None = None  # the buzzer is on until then


class GpioCounters:
    """Every gpio_counter of the config, on the configured pin factory (or `factory`, for tests)."""

    def __init__(
        self,
        config: OfficeConfig,
        execute: Callable[[m.Command], m.Decision],
        router: CallRouter,
        factory: Any = None,
    ) -> None:
        self._execute = execute
        self._router = router
        self.counters: list[GpioCounter] = []
        self.factory: Any = None  # the gpiozero pin factory in use; None without gpio counters
        devices = [d for d in config.devices if d.kind == "gpio_counter"]
        if not devices:
            return
        self.factory = factory = factory if factory is not None else pin_factory(config.gateway.pin_factory)
        try:
            for d in devices:
                assert d.counter is not None
                self.counters.append(
                    GpioCounter(d.counter, DirectCounter(factory, dict(d.keys), dict(d.lamps), d.buzzer))
                )
        except BaseException:
            self.close()
            raise

    def poll(self, now: float, state: OfficeState) -> None:
        """One turn: each counter's new key presses run as commands, then lamps and buzzers."""
        for c in self.counters:
            for key in c.device.check(now):
                self._press(c, key, now)
            if c.beep_until is not None and now >= c.beep_until:
                c.device.beep(False)
                c.beep_until = None
            status = state.counters[c.counter].status if c.counter in state.counters else CounterStatus.CLOSED
            lamp = P.LAMP_RED if c.beep_until is not None else _LAMP[status]
            if lamp != c.lamp:
                c.device.status_lamp(lamp)
                c.lamp = lamp

    def _press(self, c: GpioCounter, key: int, now: float) -> None:
        command = key_command(key, 0, c.counter, ())
        if command is None:
            return
        try:
            decision = self._execute(command)
        except m.OfficeError as exc:
            _log.info("gpio counter %s: %s refused: %s", c.counter, type(command).__name__, exc)
            self._beep(c, now)
            return
        except Exception as exc:  # the journal could not store it: the floor keeps running
            _log.warning(
                "gpio counter %s: %s failed: %s: %s", c.counter, type(command).__name__, type(exc).__name__, exc
            )
            self._beep(c, now)
            return
        for effect in decision.effects:
            self._router.show(effect, now)
            if isinstance(effect, m.NobodyWaiting) and effect.counter == c.counter:
                self._beep(c, now)  # nothing to call: the pad shows "----", this counter has only a buzzer

    @staticmethod
    def _beep(c: GpioCounter, now: float) -> None:
        c.device.beep(True)
        c.beep_until = now + REFUSED_BEEP_S

    def close(self) -> None:
        for c in self.counters:
            c.device.deinit()
        self.counters.clear()
