"""The debounced Button input of the boards with keys (dispenser, counter pad): a module of its
own so that a board without keys (the call display) does not hold its code (docs/firmware.md,
"Memory"). Owns debouncing only: the pin comes from board.py."""

import time


class Button:
    """One debounced push button or key on an active-low pin. _check(now) returns True once per
    press: when the pin has read pressed for debounce_ms without a change. Bounce resets the
    timer; a held key stays pressed and gives nothing more until it has been released (stable
    for debounce_ms) and pressed again. Wrap-safe: only time.ticks_diff compares ticks."""

    # Defaults as class attributes: an instance holds only what differs (a board's heap is small).
    debounce_ms = 30
    _active = 0  # the level that reads as pressed
    _raw = False  # what the pin read last (pressed?)
    _stable = False  # the debounced state (True: pressed)
    _since = None
    presses = 0

    def __init__(self, pin, debounce_ms=30, active_low=True):
        self.pin = pin
        if debounce_ms != 30:
            self.debounce_ms = debounce_ms
        if not active_low:
            self._active = 1
        if pin.value() == self._active:  # held at start: pressed, and no press until released
            self._raw = self._stable = True

    def _check(self, now):
        raw = self.pin.value() == self._active
        if raw != self._raw:
            self._raw = raw
            self._since = now
            return False
        if raw == self._stable or self._since is None:
            return False
        if time.ticks_diff(now, self._since) < self.debounce_ms:
            return False
        self._stable = raw
        self._since = None
        if raw:
            self.presses += 1
            return True
        return False

    def deinit(self):
        self.pin = None
