"""Draws a display.TextPanel into a 1-bit framebuf.FrameBuffer. ASCII lines use MicroPython's
built-in 8x8 font (10 rows a line); a line with other characters uses the office's 16 px font
(font16.py, 16 rows a line) when the board has its file, FONT_FILE in the flash directory
(tools/make_font.py builds it at install time), else its non-ASCII characters are drawn as boxes.
A line wider than the panel goes on in the next row (an ASCII row breaks at a space where it has
one), so a resident reads the whole message. Imported by TextPanel.render() on first use, so a
board that never draws holds none of it; a board without a font file never imports font16.
Lines are walked as UTF-8 bytes, never character by character (that would intern each character
as a name, docs/firmware.md "Memory")."""

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
    """The panel's framebuffer, redrawn; None where the port has no framebuf. Records the rows the
    first line took in panel.top."""
    try:
        import framebuf
    except ImportError:
        return None
    if panel._fb is None:
        panel._buf = bytearray(panel.width * panel.height // 8)
        panel._fb = framebuf.FrameBuffer(panel._buf, panel.width, panel.height, framebuf.MONO_HLSB)
    fb = panel._fb
    fb.fill(0)
    if not panel.visible:
        return fb
    w = panel.width
    y = 0
    k = 0
    for line in panel.lines:
        b = line.encode()
        # more UTF-8 bytes than characters: not ASCII (without walking the characters)
        f = font() if len(b) != len(line) else False
        top = y
        i = 0
        while True:
            if f:
                i = f.text(fb, b, 0, y, i, w)  # type: ignore[union-attr]
                y += 16
            else:
                i = _row8(fb, b, i, y, w)
                y += 10
            if i >= len(b) or y >= panel.height:
                break
        if k < panel.dark:  # a blink's dark phase: the line's rows kept, blank
            fb.fill_rect(0, top, w, y - top, 0)
        if k == 0:
            panel.top = y
        k += 1
    return fb


def _row8(fb, b, i, y, w):
    """One row of `b` (UTF-8) from byte i in the 8x8 font: as many characters as `w` holds, back
    to the last space if that cuts a word; a character it lacks as a box. Returns the byte the
    next row starts at."""
    n = len(b)
    j = i
    k = w // 8
    while j < n and k:  # the row's end: k characters on (a character is its lead byte)
        j += 1
        while j < n and b[j] & 0xC0 == 0x80:
            j += 1
        k -= 1
    if j < n and b[j] != 0x20:
        s = b.rfind(b" ", i, j)
        if s > i:
            j = s
    x = 0
    a = i  # the ASCII run not yet drawn
    while i < j:
        if b[i] < 0x80:
            i += 1
            continue
        if i > a:
            fb.text(b[a:i].decode(), x, y, 1)
            x += 8 * (i - a)
        fb.rect(x, y, 7, 7, 1)
        x += 8
        i += 1
        while i < j and b[i] & 0xC0 == 0x80:
            i += 1
        a = i
    if i > a:
        fb.text(b[a:i].decode(), x, y, 1)
    return j + 1 if j < n and b[j] == 0x20 else j
