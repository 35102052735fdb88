"""Draws a display.TextPanel into a 1-bit framebuf.FrameBuffer (MicroPython's built-in 8x8 font is
ASCII only: other characters are drawn as a box until a CJK bitmap font is added). Imported by
TextPanel.render() on first use, so a board that never draws holds none of it."""


def draw(panel):
    """The panel's framebuffer, redrawn; None where the port has no framebuf."""
    try:
        import framebuf
    except ImportError:
        return None
    if panel._fb is None:
        panel._buf = bytearray(panel.width * panel.height // 8)
        panel._fb = framebuf.FrameBuffer(panel._buf, panel.width, panel.height, framebuf.MONO_HLSB)
    fb = panel._fb
    fb.fill(0)
    if panel.visible:
        y = 0
        for line in panel.lines:
            x = 0
            for ch in line:
                if ord(ch) < 0x80:
                    fb.text(ch, x, y, 1)
                else:
                    fb.rect(x, y, 7, 7, 1)
                x += 8
            y += 10
    return fb
