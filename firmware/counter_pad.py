"""The counter pad: six keys (call next, done, recall, no-show, transfer, pause), each debounced
so that bounce or a held key gives exactly one KEY event per press; a 4-character display of the
number being served (DISPLAY_NUMBER) and a status lamp (STATUS_LAMP: off/green/amber/red, steady
or blinking; two LEDs, amber = both). While the gateway is silent or has put the pad out of
service the keys make no events and the display shows "----".
Owns the pad's behaviour only: pins come from board.py, the bus logic from device.py."""

import time

import protocol as p
from device import BusDevice, Button
from display import SegmentDisplay

KEYS = (p.KEY_CALL_NEXT, p.KEY_DONE, p.KEY_RECALL, p.KEY_NO_SHOW, p.KEY_TRANSFER, p.KEY_PAUSE)
BLINK_MS = 500  # half period of a blinking lamp
OFFLINE_TEXT = "----"


class StatusLamp:
    """A two-LED lamp: colour (LAMP_*) and blink, drawn by _check(now)."""

    def __init__(self, red_pin, green_pin):
        self.red = red_pin
        self.green = green_pin
        self.colour = p.LAMP_OFF
        self.blink = False
        self._since = 0

    def set(self, colour, blink, now):
        self.colour = colour
        self.blink = bool(blink)
        self._since = now
        self._check(now)

    def _check(self, now):
        on = not self.blink or (time.ticks_diff(now, self._since) // BLINK_MS) % 2 == 0
        c = self.colour if on else p.LAMP_OFF
        self.red.value(1 if c in (p.LAMP_RED, p.LAMP_AMBER) else 0)
        self.green.value(1 if c in (p.LAMP_GREEN, p.LAMP_AMBER) else 0)

    def deinit(self):
        self.red.value(0)
        self.green.value(0)


class CounterPad(BusDevice):
    KIND = p.KIND_COUNTER_PAD
    CAPS = p.CAP_NUMBER | p.CAP_STATUS_LAMP
    HANDLERS = {p.DisplayNumber.TYPE: "_display_number", p.StatusLamp.TYPE: "_status_lamp"}

    def __init__(
        self, addr, uart, key_pins, red_pin, green_pin, now, reset_cause=p.RESET_UNKNOWN, debounce_ms=30, transfer_to=0
    ):
        BusDevice.__init__(self, addr, uart, now, reset_cause)
        if len(key_pins) != len(KEYS):
            raise ValueError("a counter pad has %d keys, got %d pins" % (len(KEYS), len(key_pins)))
        self.keys = [Button(pin, debounce_ms) for pin in key_pins]
        self.lamp = StatusLamp(red_pin, green_pin)
        self.display = SegmentDisplay(4)
        self.number = "    "  # the gateway's DISPLAY_NUMBER
        self.transfer_to = transfer_to  # the service a transfer goes to (set in config)
        self.refused = 0
        self._refresh(now)

    def _display_number(self, frame, now):
        self.number = frame.text
        self._refresh(now)
        return self._ack(frame)

    def _status_lamp(self, frame, now):
        self.lamp.set(frame.colour, frame.blink, now)
        return self._ack(frame)

    def _check(self, now):
        BusDevice._check(self, now)
        for i, key in enumerate(self.keys):
            if key._check(now):
                self.key(KEYS[i], now)
        self.lamp._check(now)

    def key(self, key, now):
        """One debounced key press: an event, unless the pad is not taking input."""
        if not self.accepting:
            self.refused += 1
            return 0
        arg = self.transfer_to if key == p.KEY_TRANSFER else 0
        ev = self.events.push(p.Key, key, arg)
        if not ev:
            self.refused += 1
        return ev

    def _refresh(self, now):
        self.display.show(self.number if self.accepting else OFFLINE_TEXT)

    def deinit(self):
        for k in self.keys:
            k.deinit()
        self.lamp.deinit()
        self.display.deinit()
        BusDevice.deinit(self)


def make(config, uart, now, reset_cause):
    import board

    pins = board.PICO_PINS["counter_pad"]
    keys = [board.input_pin(n, "key%d" % KEYS[i]) for i, n in enumerate(pins["keys"])]
    return CounterPad(
        config["addr"],
        uart,
        keys,
        board.output_pin(pins["lamp_red"], "lamp_red"),
        board.output_pin(pins["lamp_green"], "lamp_green"),
        now,
        reset_cause,
        config.get("debounce_ms", 30),
        config.get("transfer_to", 0),
    )
