"""The counter pad: six keys (call next, done, recall, no-show, transfer, pause), each debounced
so that bounce or a held key gives exactly one KEY event per press; a 4-character display of the
number being served (DISPLAY_NUMBER) and a status lamp (STATUS_LAMP: off/green/amber/red, steady
or blinking; two LEDs, amber = both). While the gateway is silent or has put the pad out of
service the keys make no events and the display shows "----".
Owns the pad's behaviour only: pins come from board.py, the bus logic from device.py. The display's
text and the lamp are the pad's own attributes, not objects of their own: a board's heap is small
(docs/firmware.md, "Memory"); the text goes to the display's part (wiring.py, drv_tm1637) from
_check, after the reply."""

import time

from micropython import const

import protocol as p
from button import Button
from device import BusDevice

KEYS = (p.KEY_CALL_NEXT, p.KEY_DONE, p.KEY_RECALL, p.KEY_NO_SHOW, p.KEY_TRANSFER, p.KEY_PAUSE)
_BLINK_MS = const(500)  # half period of a blinking lamp
OFFLINE_TEXT = "----"


class CounterPad(BusDevice):
    KIND = p.KIND_COUNTER_PAD
    CAPS = p.CAP_NUMBER | p.CAP_STATUS_LAMP
    HANDLERS = {p.DisplayNumber.TYPE: "_display_number", p.StatusLamp.TYPE: "_status_lamp"}
    # Defaults as class attributes: an instance holds them only once they change.
    number = "    "  # the gateway's DISPLAY_NUMBER
    shown = "    "  # what the 4-character display shows
    colour = p.LAMP_OFF  # the status lamp: colour, blinking, since when (ticks_ms)
    blink = False
    _since = 0
    refused = 0  # key presses that made no event
    _lit = None  # what the display's driver was last given

    def __init__(
        self,
        addr,
        uart,
        key_pins,
        red_pin,
        green_pin,
        now,
        reset_cause=p.RESET_UNKNOWN,
        debounce_ms=30,
        transfer_to=0,
        screen=None,
    ):
        BusDevice.__init__(self, addr, uart, now, reset_cause)
        self.screen = screen  # the 4-character display's driver (drv_tm1637), or None
        if len(key_pins) != len(KEYS):
            raise ValueError("a counter pad has %d keys, got %d pins" % (len(KEYS), len(key_pins)))
        self.keys = [Button(pin, debounce_ms) for pin in key_pins]
        self.red = red_pin
        self.green = green_pin
        self.transfer_to = transfer_to  # the service a transfer goes to (set in config)
        self._refresh(now)

    def _display_number(self, frame, now):
        self.number = frame.text
        self._refresh(now)
        return self._ack(frame)

    def _status_lamp(self, frame, now):
        self.colour = frame.colour
        self.blink = bool(frame.blink)
        self._since = now
        self._lamp(now)
        return self._ack(frame)

    def _lamp(self, now):
        on = not self.blink or (time.ticks_diff(now, self._since) // _BLINK_MS) % 2 == 0
        c = self.colour if on else p.LAMP_OFF
        self.red.value(1 if c in (p.LAMP_RED, p.LAMP_AMBER) else 0)
        self.green.value(1 if c in (p.LAMP_GREEN, p.LAMP_AMBER) else 0)

    def _check(self, now):
        BusDevice._check(self, now)
        for i, key in enumerate(self.keys):
            if key._check(now):
                self.key(KEYS[i], now)
        self._lamp(now)
        # Sent here, after the reply went out (feed writes it first), and only when it changed.
        if self.screen is not None and self._lit != self.shown:
            self._lit = self.shown
            self.screen.show(self.shown)

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
        self.shown = self.number if self.accepting else OFFLINE_TEXT

    def deinit(self):
        for k in self.keys:
            k.deinit()
        self.red.value(0)
        self.green.value(0)
        self.shown = "    "
        if self.screen is not None:
            self.screen.deinit()
        BusDevice.deinit(self)
