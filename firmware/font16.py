"""The office's 16 px bitmap font (tools/make_font.py builds it at install time; docs/firmware.md
has the format), read from flash glyph by glyph: an index probe is 6 bytes, a glyph at most 33,
into buffers made once. The file is never read whole into the heap. Imported by render.py only
when the board has a font file, so a board without one holds none of it.

Text is walked as UTF-8 bytes, never character by character (that would intern every
character as a name, docs/firmware.md Memory)."""

import framebuf
from micropython import const

_HEAD = const(8)  # b"CF16", version, height, count (u16)
_ENTRY = const(6)  # code point (u24), glyph offset (u24)
HEIGHT = const(16)


class Font16:
    def __init__(self, path):
        f = open(path, "rb")
        head = f.read(_HEAD)
        if len(head) != _HEAD or head[:4] != b"CF16" or head[5] != HEIGHT:
            f.close()
            raise ValueError("%s: not a 16 px CF16 font" % path)
        self._f = f
        self.count = head[6] | head[7] << 8
        # width byte + 16 rows of at most 2 bytes; views made once, reused for every glyph
        g = bytearray(1 + 2 * HEIGHT)
        self._g = g
        self._e = bytearray(_ENTRY)
        m = memoryview(g)
        self._w = m[:1]
        self._r1 = m[1 : 1 + HEIGHT]
        self._r2 = m[1:]
        self._fb1 = framebuf.FrameBuffer(self._r1, 8, HEIGHT, framebuf.MONO_HLSB)
        self._fb2 = framebuf.FrameBuffer(self._r2, 16, HEIGHT, framebuf.MONO_HLSB)

    def find(self, cp):
        """The offset of `cp`'s glyph, 0 if the font lacks it: a binary search of the index on
        flash, one 6-byte read per probe."""
        f = self._f
        e = self._e
        lo = 0
        hi = self.count
        while lo < hi:
            mid = (lo + hi) >> 1
            f.seek(_HEAD + mid * _ENTRY)
            f.readinto(e)
            c = e[0] | e[1] << 8 | e[2] << 16
            if c == cp:
                return e[3] | e[4] << 8 | e[5] << 16
            if c < cp:
                lo = mid + 1
            else:
                hi = mid
        return 0

    def glyph(self, cp):
        """(width, framebuf of the glyph) or (0, None) when the font lacks it; the framebuf is
        this object's, overwritten by the next glyph."""
        off = self.find(cp)
        if not off:
            return 0, None
        f = self._f
        f.seek(off)
        f.readinto(self._w)
        w = self._g[0]
        if w > 8:
            f.readinto(self._r2)
            return w, self._fb2
        f.readinto(self._r1)
        return w, self._fb1

    def text(self, fb, b, x, y, i=0, right=0):
        """Draws `b` (UTF-8 bytes) from byte i into `fb` with its top left at (x, y), stopping
        before a glyph that would pass x = `right` (0: no limit; the first glyph is always
        drawn); returns the byte it stopped at (len(b) when all is drawn), and leaves the pen's x
        in self.x. A character the font lacks draws a box, as the 8x8 path does."""
        n = len(b)
        x0 = x
        while i < n:
            cp = b[i]
            # UTF-8 by hand: the lead byte says how many continuation bytes follow
            if cp < 0x80:
                k = 1
            elif cp < 0xE0:
                cp = (cp & 0x1F) << 6 | b[i + 1] & 0x3F
                k = 2
            elif cp < 0xF0:
                cp = (cp & 0x0F) << 12 | (b[i + 1] & 0x3F) << 6 | b[i + 2] & 0x3F
                k = 3
            else:
                cp = (cp & 0x07) << 18 | (b[i + 1] & 0x3F) << 12 | (b[i + 2] & 0x3F) << 6 | b[i + 3] & 0x3F
                k = 4
            w, g = self.glyph(cp)
            if g is None:
                w = 8 if cp < 0x80 else HEIGHT
            if right and x + w > right and x > x0:
                break
            if g is None:
                fb.rect(x + 1, y + 1, w - 2, HEIGHT - 2, 1)
            else:
                # key 0: the glyph's unset pixels (and a narrow glyph's padding) leave fb as is
                fb.blit(g, x, y, 0)
            x += w
            i += k
        self.x = x
        return i

    def deinit(self):
        self._f.close()
