"""The ticket dispenser: one button per service with a lamp showing whether the service is
offered now (LAMPS), presses reported as BUTTON_PRESS events, and a text panel for short
bilingual messages (SHOW_TEXT). While the gateway is silent or has put it out of service it shows
"ただいま発券できません / Tickets unavailable" and takes no presses (no event is queued); a
press while the event queue is full is refused and shown too. The panel is drawn on its part
(wiring.py, drv_ssd1306) from _check, after the reply.
Owns the dispenser's behaviour only: pins come from board.py, the bus logic from device.py."""

import time

import protocol as p
from button import Button
from device import BusDevice
from display import TextPanel

UNAVAILABLE = ("ただいま発券できません", "Tickets unavailable")
BUSY = ("しばらくお待ちください", "Please wait a moment")
BUSY_MS = 3000  # how long the "queue full" notice stays


class Dispenser(BusDevice):
    KIND = p.KIND_DISPENSER
    CAPS = p.CAP_TEXT | p.CAP_LAMPS
    HANDLERS = {p.Lamps.TYPE: "_lamps", p.ShowText.TYPE: "_show_text"}

    def __init__(
        self, addr, uart, button_pins, lamp_pins, now, reset_cause=p.RESET_UNKNOWN, debounce_ms=30, screen=None
    ):
        BusDevice.__init__(self, addr, uart, now, reset_cause)
        self.screen = screen  # the panel's driver (drv_ssd1306), or None
        if len(button_pins) != len(lamp_pins) or not 1 <= len(button_pins) <= p.MAX_SERVICES:
            raise ValueError("a dispenser needs 1..16 buttons and as many lamps")
        self.buttons = [Button(pin, debounce_ms) for pin in button_pins]
        self.lamps = lamp_pins
        self.message = []  # the gateway's lines (SHOW_TEXT)
        self.panel = TextPanel()
        self._refresh(now)

    # State that starts the same, as class attributes: an instance holds it once it changes.
    mask = 0  # services offered, per the last LAMPS
    refused = 0  # presses that made no event
    _busy_until = None
    _lit = 0  # the panel's draws the screen shows

    def _lamps(self, frame, now):
        if frame.mask >> len(self.buttons):
            return p.Nak(self.addr, frame.seq, p.NAK_OUT_OF_RANGE)
        self.mask = frame.mask
        self._refresh(now)
        return self._ack(frame)

    def _show_text(self, frame, now):
        self.message = list(frame.lines)
        self._refresh(now)
        return self._ack(frame)

    def _check(self, now):
        BusDevice._check(self, now)
        for i, button in enumerate(self.buttons):
            if button._check(now):
                self.press(i, now)
        if self._busy_until is not None and time.ticks_diff(now, self._busy_until) >= 0:
            self._busy_until = None
            self._refresh(now)
        # Drawn here, after the reply went out (feed writes it first): a frame is 23 ms of I2C.
        if self.screen is not None and self._lit != self.panel.draws:
            self._lit = self.panel.draws
            self.screen.show(self.panel)

    def press(self, service, now):
        """A debounced press of service `service`'s button: an event if it is live now."""
        if not self.accepting or not self.mask & (1 << service):
            self.refused += 1
            return 0
        ev = self.events.push(p.ButtonPress, service)
        if not ev:
            self.refused += 1
            self._busy_until = time.ticks_add(now, BUSY_MS)
            self._refresh(now)
        return ev

    def _refresh(self, now):
        live = self.accepting
        for i, lamp in enumerate(self.lamps):
            lamp.value(1 if live and self.mask & (1 << i) else 0)
        if not live:
            self.panel.show(UNAVAILABLE)
        elif self._busy_until is not None:
            self.panel.show(BUSY)
        else:
            self.panel.show(self.message)

    def deinit(self):
        for b in self.buttons:
            b.deinit()
        for lamp in self.lamps:
            lamp.value(0)
        self.panel.deinit()
        if self.screen is not None:
            self.screen.deinit()
        BusDevice.deinit(self)
