"""The call display: shows the current call as text drawn by the board's own font ("B023 → 5"),
blinking for a while after a NEW call, the recent-calls list (RECENT), message lines (SHOW_TEXT),
plays chimes (CHIME, and one per CALL) and blanks call and list on CLEAR.
Its content is kept across a gateway restart until the gateway says otherwise: silence (offline)
and a new IDENTIFY change nothing shown, and every change is saved to a JSON file on flash so that
a reboot of the display restores it (wiring.restore, at boot: code a running board need not
hold). Chimes are started and the display's part lit after the reply is sent (from _check), so
neither ever delays the bus.
Owns the call display's behaviour only: outputs come from board.py, the bus logic from device.py."""

import time

from micropython import const

import protocol as p
from device import BusDevice
from display import TextPanel

BLINK_FOR_MS = 6000  # a NEW call blinks this long
OUT_OF_SERVICE = "----"  # shown while the gateway has put the display out of service
_BLINK_MS = const(500)  # half period


class CallDisplay(BusDevice):
    KIND = p.KIND_CALL_DISPLAY
    CAPS = p.CAP_TEXT | p.CAP_CHIME | p.CAP_RECENT
    HANDLERS = {
        p.Call.TYPE: "_call",
        p.Recent.TYPE: "_recent",
        p.Chime.TYPE: "_chime",
        p.Clear.TYPE: "_clear",
        p.ShowText.TYPE: "_show_text",
    }

    # Defaults as class attributes: an instance holds only what differs (a board's heap is small).
    call = None  # (ticket, counter)
    saves = 0
    _blink_since = None
    _lit = 0  # the panel's draws the screen shows
    _lines = None  # the lines it shows (a panel)

    def __init__(
        self, addr, uart, chime, now, reset_cause=p.RESET_UNKNOWN, state_path=None, screen=None, digits=False
    ):
        BusDevice.__init__(self, addr, uart, now, reset_cause)
        self.chime = chime
        self.state_path = state_path
        # The display's part (wiring.py): 7-segment digits (drv_max7219), or a panel (drv_ssd1306)
        # whose text model is the glass's size, so that it is drawn in the driver's own frame.
        self.screen = screen
        self.digits = digits
        self.panel = TextPanel() if screen is not None and not digits else TextPanel(256, 128)
        self.recent = []  # [(ticket, counter)], newest first
        self.message = []
        self._chimes = []  # (tone, repeat) waiting to be played after the reply
        self._draw(now)

    # --- Requests

    def _call(self, frame, now):
        self.call = (frame.ticket, frame.counter)
        if frame.flags & p.CALL_NEW:
            # docs/protocol.md: a NEW call goes on top of the recent list (the gateway sends
            # RECENT only to resync a display, never after each call).
            self.recent = [self.call] + self.recent[: p.MAX_RECENT - 1]
            self._blink_since = now
            self._chimes.append((p.TONE_CALL, 1))
        else:
            self._chimes.append((p.TONE_RECALL, 1))
        self._draw(now, True)
        return self._ack(frame)

    def _recent(self, frame, now):
        # docs/protocol.md: RECENT resyncs the display and its first entry is the current call,
        # shown quietly (no chime, no blink); an empty list leaves the call as it is.
        self.recent = [tuple(e) for e in frame.entries]
        if self.recent and self.recent[0] != self.call:
            self.call = self.recent[0]
            self._blink_since = None
        self._draw(now, True)
        return self._ack(frame)

    def _chime(self, frame, now):
        self._chimes.append((frame.tone, frame.repeat))
        return self._ack(frame)

    def _clear(self, frame, now):
        self.call = None
        self.recent = []
        self._blink_since = None
        self._draw(now, True)
        return self._ack(frame)

    def _show_text(self, frame, now):
        self.message = list(frame.lines)
        self._draw(now, True)
        return self._ack(frame)

    # --- Drawing, chimes, persistence

    def _check(self, now):
        BusDevice._check(self, now)
        while self._chimes:
            tone, repeat = self._chimes.pop(0)
            self.chime.play(tone, repeat)
        self.chime._check(now)
        if self._blink_since is not None:
            if time.ticks_diff(now, self._blink_since) >= BLINK_FOR_MS:
                self._blink_since = None
            self._draw(now)
        # Lit here, after the reply went out (feed writes it first).
        if self.screen is not None and self._lit != self.panel.draws:
            self._lit = self.panel.draws
            self._light()

    def _light(self):
        """The panel's text on the display's part. Digits: the call (dark in a blink's dark phase),
        else "----" out of service, else a message's last line if it fits (its English words),
        else blank. A panel: redrawn, and when only the blink changed only the pages of the call
        line's rows are sent (two for one row of 16: 263 bytes instead of 1,032, 6 ms of I2C
        instead of 23 at 400 kHz)."""
        s = self.screen
        panel = self.panel
        lines = panel.lines
        if not self.digits:
            # the same lines, drawn in the same rows: top is the call line's, from the last draw
            s.show(panel, (panel.top + 7) // 8 if lines == self._lines else 8)
            self._lines = lines
            return
        if self.out_of_service:
            s.text(OUT_OF_SERVICE)
        elif self.call is not None:
            if not panel.dark:
                s.show(self.call[0], self.call[1])
            s.light(not panel.dark)
            return
        elif self.message and len(self.message[-1].encode()) <= 8 * s.chips:
            s.text(self.message[-1])
        else:
            s.blank()
        s.light(True)

    def _refresh(self, now):
        self._draw(now)  # out of service or back (offline changes nothing shown)

    def lines(self, now):
        """The text shown: the call line, the recent list (without the current call at its head),
        then the message lines; out of service only "----"."""
        if self.out_of_service:
            return [OUT_OF_SERVICE]
        out = []
        if self.call is not None:
            out.append(self.call[0] + " → " + self.call[1])
        recent = self.recent
        if recent and recent[0] == self.call:
            recent = recent[1:]  # the current call heads the list: drawn once, as the call
        for ticket, counter in recent:
            out.append(ticket + " → " + counter)
        return out + self.message

    def dark(self, now):
        """1 in a NEW call's blink's dark phase (its call line blank, the rows kept), else 0.
        _check ends a blink (_blink_since None) once BLINK_FOR_MS is over."""
        b = self._blink_since
        if b is None or self.call is None or self.out_of_service:
            return 0
        return (time.ticks_diff(now, b) // _BLINK_MS) % 2

    def _draw(self, now, save=False):
        lines = self.lines(now)
        dark = self.dark(now)
        if lines != self.panel.lines or dark != self.panel.dark:
            self.panel.show(lines, dark)
        if save:  # the content changed: kept on flash
            self._save()

    def _save(self):
        """The content to state_path, as JSON: {"call": [ticket, counter] or null, "recent":
        [[ticket, counter], ...], "message": [line, ...]} (wiring.restore reads it at boot)."""
        if not self.state_path:
            return
        state = {"call": list(self.call) if self.call else None, "recent": [list(e) for e in self.recent]}
        state["message"] = self.message
        import json
        import os

        # Replaced atomically: written aside, then renamed.
        tmp = self.state_path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(state, f)
            os.rename(tmp, self.state_path)
            self.saves += 1
        except OSError as e:  # a full or failing flash must not stop the display
            print("call display: cannot save:", repr(e))

    def deinit(self):
        self.chime.deinit()
        self.panel.deinit()
        if self.screen is not None:
            self.screen.deinit()
        BusDevice.deinit(self)
