"""SSD1306 128x64 OLED on I2C: the dispenser's message panel and the call display's alternative
panel. What is drawn comes from display.TextPanel through render.py (the one drawing path); this
module sends the chip its setup and whole frames. The I2C bus is passed in (board.py makes it; a
test passes a recording fake), so this module touches no hardware of its own.

Datasheet: every I2C write starts with a control byte, 0x00 = commands follow, 0x40 = display
data follows. In horizontal addressing each data byte is 8 pixels of one column, top pixel in bit
0 (framebuf's MONO_VLSB), page 0 (rows 0..7) left to right, then page 1 and so on."""

import framebuf
from micropython import const

_W = const(128)
_H = const(64)

# Setup, one command write: display off; horizontal addressing; start line 0; segment remap and
# COM scan reversed (column 0 and row 0 at the top left as the module is mounted); 64 rows
# multiplexed; no offset; COM pins alternative; clock; pre-charge; VCOMH; contrast; show RAM;
# not inverted; charge pump on (the usual modules have no external VCC); display on.
_INIT = b"\x00\xae\x20\x00\x40\xa1\xa8\x3f\xc8\xd3\x00\xda\x12\xd5\x80\xd9\xf1\xdb\x30\x81\xcf\xa4\xa6\x8d\x14\xaf"


class Ssd1306:
    def __init__(self, i2c, addr=0x3C):
        self.i2c = i2c
        self.addr = addr
        # The data control byte, then the frame: one write per frame, no copy.
        self._buf = bytearray(1 + _W * _H // 8)
        self._buf[0] = 0x40
        self.fb = framebuf.FrameBuffer(memoryview(self._buf)[1:], _W, _H, framebuf.MONO_VLSB)
        i2c.writeto(addr, _INIT)
        self.flush()

    def flush(self, pages=8):
        """Sends the frame's top `pages` pages (8 rows each): the column/page window, then the
        data control byte and the pages in one write, straight from the buffer."""
        self.i2c.writeto(self.addr, bytes((0, 0x21, 0, _W - 1, 0x22, 0, pages - 1)))
        self.i2c.writeto(self.addr, memoryview(self._buf)[: 1 + _W * pages])

    def show(self, panel, pages=8):
        """Draw `panel` (a TextPanel) with render.py and send the frame; a panel larger than the
        glass (the call display's 256x128 text model) shows its top-left 128x64. A panel of the
        glass's size is drawn in place, in this driver's buffer (framebuf draws the same in any
        format). `pages` < 8 sends only the top of the frame, where the caller knows the rest is
        unchanged (a call line's blink)."""
        if panel._fb is None and panel.width == _W and panel.height == _H:
            # render.py then draws straight into the chip's frame: no second 1 KB buffer
            panel._fb = self.fb
        fb = panel.render()
        if fb is not self.fb:  # render.py's own MONO_HLSB frame; the chip's RAM is MONO_VLSB
            self.fb.fill(0)
            self.fb.blit(fb, 0, 0)
        self.flush(pages)

    def power(self, on):
        self.i2c.writeto(self.addr, b"\x00\xaf" if on else b"\x00\xae")

    def contrast(self, level):
        self.i2c.writeto(self.addr, bytes((0, 0x81, max(0, min(255, level)))))

    def deinit(self):
        self.power(False)
