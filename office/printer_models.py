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

from dataclasses import dataclass, field, replace

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

# Where a figure was not found in a maker's document, the entry takes the conservative choice
# (raster QR, GS V 1, completion "status" or "none", no extension characters) and its `source`
# says what is unconfirmed; docs/printing.md's table marks the same figures.
_APG = "Epson ESC/POS Application Programming Guide Ver. 10.01 (GS ( H, GS I, GS V, GS r)"
_T88 = "512 dots at 180 dpi on 80 mm paper, 42 columns of 12-dot font A"

# Templates the entries below are made from (`replace`): a TM-T88 head, a 203 dpi 80 mm head.
_EPSON_T88 = replace(
    GENERIC_80,
    dots=512,
    dpi=180,
    columns=42,
    cutter="feed-cut",
    completion="status",
    identifies=True,
    transport="usb/serial/network",
)
_HEAD_203_80 = replace(GENERIC_80, cutter="feed-cut", completion="status", identifies=True)
_KIOSK_UNCONFIRMED = replace(GENERIC_80, native_qr=False, cutter="cut", completion="none", transport="usb/serial")
_STAR_LINE_ONLY = replace(GENERIC_80, kanji=False, native_qr=False, transport="usb/network", escpos=False)

TABLE: tuple[PrinterModel, ...] = (
    GENERIC_80,
    GENERIC_58,
    replace(
        _EPSON_T88,
        name="epson-tm-t88iv",
        title="Epson TM-T88IV",
        native_qr=False,  # 2D codes came with later firmware only: the raster QR is safe
        source=f"Epson TM-T88IV Technical Reference Guide M00024303 Rev. D ({_T88}); {_APG}; native QR not confirmed",
    ),
    replace(
        _EPSON_T88,
        name="epson-tm-t88v",
        title="Epson TM-T88V",
        source="Epson TM-T88V Specification (STANDARD) Rev. B and Technical Reference Guide "
        f"M00024304 Rev. E ({_T88}, QR Code); {_APG}; GS ( H not confirmed for this model",
    ),
    replace(
        _EPSON_T88,
        name="epson-tm-t88vi",
        title="Epson TM-T88VI",
        source=f"Epson TM-T88VI Technical Reference Guide ({_T88}, TM-T88V compatible); {_APG}; "
        "GS ( H not confirmed for this model",
    ),
    replace(
        _EPSON_T88,
        name="epson-tm-t88vii",
        title="Epson TM-T88VII",
        source=f"Epson TM-T88VII Technical Reference Guide ({_T88}: the TM-T88 line keeps its 180 dpi "
        "head; not re-checked in the stored copies); GS ( H not confirmed for this model",
    ),
    replace(
        _HEAD_203_80,
        name="epson-tm-t20iii",
        title="Epson TM-T20III",
        transport="usb/serial/network",
        source="Epson TM-T20III Technical Reference Guide (576 dots at 203 dpi, 48 columns); "
        f"{_APG}; Kanji on the Japanese model only",
    ),
    replace(
        _HEAD_203_80,
        name="epson-tm-m30iii",
        title="Epson TM-m30III",
        transport="usb/network",
        source="Epson TM-m30III Technical Reference Guide (576 dots at 203 dpi, 48 columns; its TM-T88 "
        "compatible mode scales 512-dot data, which we never send); Kanji on the Japanese model",
    ),
    replace(
        _HEAD_203_80,
        name="epson-eu-m30",
        title="Epson EU-m30 (kiosk module)",
        transport="usb/serial",
        source="Epson EU-m30 Technical Reference Guide (the TM-m30 mechanism, 203 dpi); not found in "
        "the stored copies: figures taken as the TM-m30III's, check with dots/dpi",
    ),
    replace(
        _KIOSK_UNCONFIRMED,
        name="citizen-ppu-700",
        title="Citizen PPU-700 / PPU-700II (printer presenter unit)",
        identifies=True,
        source="Citizen PPU-700/700II Command Reference Rev. 1.11 (ESC/POS, ANK and two-byte Kanji, "
        "GS v 0 normal mode 203 dpi, GS I); dots on 80 mm paper, GS ( k, GS ( H and GS V 66 not "
        "confirmed: 576 dots, raster QR, GS V 1",
    ),
    replace(
        _KIOSK_UNCONFIRMED,
        name="primex-np-k205",
        title="Nippon Primex NP-K205 (kiosk unit)",
        source="no specification of the NP-K205 found in the stored copies: every figure is the "
        "generic 80 mm head's (check dots/dpi against the unit's manual)",
    ),
    replace(
        GENERIC_80,
        name="star-mc-print3",
        title="Star mC-Print3 (ESC/POS emulation)",
        kanji=False,  # Kanji under the ESC/POS emulation not confirmed: the raster profile only
        native_qr=False,
        transport="usb/network",
        source="Star mC-Print3 specifications (576 dots at 203 dpi; StarPRNT, Star Line and ESC/POS "
        "emulations); Kanji, QR and status under ESC/POS not confirmed",
    ),
    replace(
        _STAR_LINE_ONLY,
        name="star-tsp100iv",
        title="Star TSP100IV",
        source="Star TSP100IV specifications: StarPRNT and Star Line mode; no ESC/POS emulation found",
    ),
    replace(
        _STAR_LINE_ONLY,
        name="star-tsp100iii",
        title="Star TSP100III (futurePRNT)",
        source="Star Graphic Mode Command Specifications Rev. 2.32: raster-only Star Graphic mode",
    ),
)

MODELS: dict[str, PrinterModel] = {m.name: m for m in TABLE}


def model_named(name: str) -> PrinterModel:
    """The model `name` (case-insensitive), or ValueError listing the known ones."""
    model = MODELS.get(name.lower())
    if model is None:
        raise ValueError(f"unknown printer model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return model


def escpos_model(name: str) -> PrinterModel:
    """`model_named`, refusing a model that does not speak ESC/POS (Star Line / StarPRNT only)."""
    model = model_named(name)
    if not model.escpos:
        raise ValueError(f"{model.title} has no ESC/POS emulation (only Star's own modes): not supported")
    return model


def with_head(model: PrinterModel, dots: int | None, dpi: int | None) -> PrinterModel:
    """`model` with a head the table does not know: `dots` across, `dpi`; the columns follow
    (12-dot font A cells)."""
    if dots is None and dpi is None:
        return model
    new_dots = model.dots if dots is None else dots
    return replace(model, dots=new_dots, dpi=model.dpi if dpi is None else dpi, columns=new_dots // 12)


def head_problem(paper_mm: int, dots: int, dpi: int) -> str | None:
    """Why a head of `dots` at `dpi` cannot be on `paper_mm` paper, or None."""
    if not 100 <= dpi <= 255:
        return f"dpi must be 100-255 (GS P carries it in one byte), got {dpi}"
    if not 128 <= dots <= 1024 or dots % 8:
        return f"dots must be a multiple of 8 from 128 to 1024, got {dots}"
    if dots * 25.4 / dpi > paper_mm:
        return f"{dots} dots at {dpi} dpi is {dots * 25.4 / dpi:.1f} mm, wider than {paper_mm} mm paper"
    return None
