"""Draws a display.TextPanel into a 1-bit framebuf.FrameBuffer. ASCII lines use MicroPython's
built-in 8x8 font (10 rows a line); a line with other characters uses the office's 16 px font
(font16.py, 16 rows a line) when the board has its file, FONT_FILE in the flash directory
(tools/make_font.py builds it at install time), else its non-ASCII characters are drawn as boxes.
Imported by TextPanel.render() on first use, so a board that never draws holds none of it; a
board without a font file never imports font16."""

FONT_FILE = "font16.bin"
_font = None  # the Font16 once opened; False once looked for and not there


def font():
    """The board's Font16, or False when it has no font file."""
    global _font
    if _font is None:
        _font = False
        import board

        path = board.path_join(board.flash_dir(), FONT_FILE)
        try:
            open(path, "rb").close()
        except OSError:
            return False  # no font file: the 8x8 path, font16 not imported
        from font16 import Font16

        _font = Font16(path)  # type: ignore[assignment]
    return _font


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
            # more UTF-8 bytes than characters: not ASCII (without walking the characters)
            f = font() if len(line.encode()) != len(line) else False
            if f:
                f.text(fb, line, 0, y)  # type: ignore[union-attr]
                y += 16
                continue
            x = 0
            for ch in line:
                if ord(ch) < 0x80:
                    fb.text(ch, x, y, 1)
                else:
                    fb.rect(x, y, 7, 7, 1)
                x += 8
            y += 10
    return fb
