"""Display models: what a board shows, as text, apart from how it is drawn. The bus carries text
and the board draws it with its own font; on the Unix port the text model is what tests read, and
render() draws it into a framebuf.FrameBuffer when the port has one (MicroPython's built-in 8x8
font is ASCII only: other characters are drawn as a box until a CJK bitmap font is added)."""


class TextPanel:
    """Lines of text on a small panel (dispenser messages, call display)."""

    def __init__(self, width=128, height=64):
        self.width = width
        self.height = height
        self.lines = []
        self.visible = True  # False in the dark phase of a blink
        self.draws = 0
        self._fb = None
        self._buf = None

    def show(self, lines):
        self.lines = list(lines)
        self.draws += 1

    def text(self):
        """The panel as one string, lines joined by newlines ("" while blinked off)."""
        return "\n".join(self.lines) if self.visible else ""

    def render(self):
        """Draw the lines into a 1-bit framebuffer (None without framebuf); returns it."""
        try:
            import framebuf
        except ImportError:
            return None
        if self._fb is None:
            self._buf = bytearray(self.width * self.height // 8)
            self._fb = framebuf.FrameBuffer(self._buf, self.width, self.height, framebuf.MONO_HLSB)
        fb = self._fb
        fb.fill(0)
        if self.visible:
            y = 0
            for line in self.lines:
                x = 0
                for ch in line:
                    if ord(ch) < 0x80:
                        fb.text(ch, x, y, 1)
                    else:
                        fb.rect(x, y, 7, 7, 1)
                    x += 8
                y += 10
        return fb

    def deinit(self):
        self.lines = []
        self._fb = None
        self._buf = None


class SegmentDisplay:
    """The counter pad's 4-character display."""

    def __init__(self, width=4):
        self.width = width
        self.chars = " " * width

    def show(self, text):
        self.chars = (text + " " * self.width)[: self.width]

    def deinit(self):
        self.chars = " " * self.width
