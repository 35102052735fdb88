"""The text panel model (dispenser messages, call display): what a board shows, as text, apart
from how it is drawn (the counter pad's 4-character display is in counter_pad.py). The bus carries text
and the board draws it with its own font; on the Unix port the text model is what tests read, and
render() draws it into a framebuf.FrameBuffer when the port has one (render.py) (MicroPython's built-in 8x8
font is ASCII only: a line with other characters is drawn with font16.py's 16 px glyphs when the
board has a font16.bin made by tools/make_font.py, else as boxes)."""


class TextPanel:
    """Lines of text on a small panel (dispenser messages, call display)."""

    # Defaults as class attributes: an instance holds only what differs (a board's heap is small).
    width = 128
    height = 64
    visible = True  # False: nothing drawn
    dark = 0  # the first `dark` lines are drawn blank, their rows kept (a blink's dark phase)
    top = 0  # the rows the first line took when last drawn (render.py): what a blink changes
    draws = 0
    _fb = None
    _buf = None

    def __init__(self, width=128, height=64):
        if (width, height) != (128, 64):
            self.width = width
            self.height = height
        self.lines = []

    def show(self, lines, dark=0):
        self.lines = list(lines)
        self.dark = dark
        self.draws += 1

    def render(self):
        """Draw the lines into a 1-bit framebuffer (None without framebuf); returns it. The
        drawing code is in render.py, imported on first use."""
        from render import draw

        return draw(self)

    def deinit(self):
        self.lines = []
        self._fb = None
        self._buf = None
