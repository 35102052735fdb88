# ruff: noqa: E402, UP031 -- MicroPython script: imports follow the sys.path setup; %-format
"""firmware/font16.py and render.py's use of it under MicroPython. TMP_DIR holds font16.bin (built by
tools/make_font.py) and strings.txt (one string a line); $COUNTERFLOOR_FLASH is TMP_DIR, so
render.py finds the font there. Prints, for tests/test_firmware_font.py:
    heap_font_load=N      heap held once font16 is imported and the font opened (after gc)
    heap_font_draw=N      ... and after drawing one line (after gc)
    free_before=N free_after=N   gc.mem_free() around loading and drawing a line (no gc between)
    img W MISSING READS HEX   one string drawn at (0, 0) into a W×16 MONO_HLSB framebuf, the
                          characters the font lacked, the sizes of every read from the file
    panel HEX             a 128×64 TextPanel (Japanese line, English line) drawn by render.py
    micropython -X heapsize=192K check_font.py FIRMWARE_DIR TMP_DIR"""

import binascii
import gc

from fwcheck import check, equal, finish, heap_used, setup

tmp = setup()
import framebuf


class CountingFile:
    """The font's file, every read's size recorded (the reader must never read more than index
    probes and one glyph)."""

    def __init__(self, f):
        self.f = f
        self.sizes = []

    def seek(self, n):
        return self.f.seek(n)

    def readinto(self, b):
        n = self.f.readinto(b)
        self.sizes.append(n)
        return n

    def read(self, n):
        b = self.f.read(n)
        self.sizes.append(len(b))
        return b

    def close(self):
        self.f.close()


path = tmp + "/font16.bin"
with open(tmp + "/strings.txt") as f:
    strings = [line.rstrip("\n") for line in f]

# --- heap: gc.mem_free() around opening the font and drawing a line, and the held figures
gc.collect()
free_before = gc.mem_free()
before = heap_used()
from font16 import Font16

font = Font16(path)
gc.collect()
print("heap_font_load=%d" % (heap_used() - before))
line_buf = bytearray(128 * 16 // 8)
line_fb = framebuf.FrameBuffer(line_buf, 128, 16, framebuf.MONO_HLSB)
gc.collect()
free_line = gc.mem_free()
font.text(line_fb, strings[0].encode(), 0, 0)
free_after = gc.mem_free()
print("free_before=%d free_after=%d draw_alloc=%d" % (free_before, free_after, free_line - free_after))
print("heap_font_draw=%d" % (heap_used() - before))
check(any(line_buf), "a line drawn")

# --- every string, into a framebuf as wide as the font makes it
font._f = CountingFile(font._f)
for s in strings:
    missing = 0
    width = 0
    # the width first, from the glyphs, as a board would lay a line out
    for k in range(len(s)):
        w, g = font.glyph(ord(s[k]))
        if g is None:
            missing += 1
            w = 16
        width += w
    w8 = (width + 7) // 8 * 8
    buf = bytearray(w8 * 16 // 8)
    fb = framebuf.FrameBuffer(buf, w8, 16, framebuf.MONO_HLSB)
    font._f.sizes = []
    end = font.text(fb, s.encode(), 0, 0)
    equal((end, font.x), (len(s.encode()), width), "bytes drawn and advance of %r" % s)
    sizes = font._f.sizes
    print("img %d %d %s %s" % (w8, missing, ",".join(str(x) for x in sizes), binascii.hexlify(buf).decode()))

# --- render.py: a Japanese line through font16, the English line through the 8x8 font
from display import TextPanel

panel = TextPanel()
panel.show([strings[0], "Counter 5"])
fb = panel.render()
check(fb is not None, "rendered")
print("panel %s" % binascii.hexlify(panel._buf).decode())
import render

check(render.font() is not False, "render.py found the font in the flash dir")
font.deinit()
finish()
