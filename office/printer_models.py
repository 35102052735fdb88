"""The ticket printers offices really have: what each model's head, font, cutter and status
commands are, from the makers' published specifications (docs/printing.md cites each). Everything
that depends on the head — raster width, motion units, feeds, kanji wrapping, the QR module size —
follows the model a `[[printers]]` entry names (`model`, docs/config.md). Pure data: office/config.py
validates `model` against it.

Fields:
    name        the config's `model` (lower case, e.g. "epson-tm-t88v")
    title       as the maker writes it ("Epson TM-T88V")
    paper_mm    roll width (80 or 58)
    dots        printable dots on one line
    dpi         head resolution, dots per inch (the same across and along the paper here)
    columns     characters per line in font A (ANK 12 dots wide at 203 dpi and 180 dpi alike)
    kanji       a JIS X 0208 Kanji font: the "kanji" profile can print text natively
    kanji_extra cp932 vendor-extension characters (NEC special and selected IBM: ①, ㈱, 髙, 﨑 …)
                its Kanji font holds; any other such character is drawn as a picture
    native_qr   draws QR codes itself (GS ( k)
    cutter      "feed-cut" (GS V 66 n: feeds to the cutter, then cuts), "cut" (GS V 1), "none"
    completion  how a job is confirmed printed: "process-id" (GS ( H: answered once everything
                before it is processed), "status" (GS r after the data), "none" (only DLE EOT)
    identifies  answers GS I (model, firmware, maker)
    transport   how it is usually connected ("usb", "serial", "network", combinations with "/")
    escpos      speaks ESC/POS (False: Star Line mode only — not supported, listed so the error
                says why)
    source      the specification it comes from
"""

from __future__ import annotations

from dataclasses import dataclass, field

CUTTERS = ("feed-cut", "cut", "none")
COMPLETIONS = ("process-id", "status", "none")


@dataclass(frozen=True, slots=True)
class PrinterModel:
    name: str
    title: str
    paper_mm: int
    dots: int
    dpi: int
    columns: int
    kanji: bool = True
    kanji_extra: frozenset[str] = field(default_factory=frozenset)
    native_qr: bool = True
    cutter: str = "feed-cut"
    completion: str = "none"
    identifies: bool = False
    transport: str = "usb"
    escpos: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if self.cutter not in CUTTERS:
            raise ValueError(f"{self.name}: cutter must be one of {CUTTERS}, got {self.cutter!r}")
        if self.completion not in COMPLETIONS:
            raise ValueError(f"{self.name}: completion must be one of {COMPLETIONS}, got {self.completion!r}")


# The generic printers: what the project assumed before models (203 dpi heads, 72 and 48 mm of
# print on 80 and 58 mm paper), and what an unnamed printer still gets.
GENERIC_80 = PrinterModel(
    name="generic-80",
    title="Generic 80 mm ESC/POS printer (203 dpi)",
    paper_mm=80,
    dots=576,
    dpi=203,
    columns=48,
    cutter="cut",
    source="the common 80 mm ESC/POS head: 72 mm of print at 203 dpi",
)
GENERIC_58 = PrinterModel(
    name="generic-58",
    title="Generic 58 mm ESC/POS printer (203 dpi)",
    paper_mm=58,
    dots=384,
    dpi=203,
    columns=32,
    cutter="cut",
    source="the common 58 mm ESC/POS head: 48 mm of print at 203 dpi",
)

MODELS: dict[str, PrinterModel] = {m.name: m for m in (GENERIC_80, GENERIC_58)}


def model_named(name: str) -> PrinterModel:
    """The model `name` (case-insensitive), or ValueError listing the known ones."""
    model = MODELS.get(name.lower())
    if model is None:
        raise ValueError(f"unknown printer model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return model
