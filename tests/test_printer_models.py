"""Tickets on the printers offices really have (office/printer_models.py): for every model in the
table, the job's bytes are read back by this test's own small ESC/POS reader (not hal.escpos's
decoder, so a mistake shared by encoder and decoder cannot hide) and checked against the model:
raster width, motion units, text columns, the cut, and the QR code read back with zxing-cpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from gateway.ticket_bytes import ticket_bytes
from office import printer_models
from office.config import ConfigError, OfficeConfig, PrinterProfile, Text, parse_config
from office.estimate import WaitRange
from office.model import TicketReady
from office.printer_models import MODELS, TABLE, PrinterModel, head_problem, with_head
from signage.qr_matrix import qr_matrix
from signage.ticket import TicketContent, render_ticket, ticket_content
from tests.conftest import EXAMPLES, tokyo
from tests.conftest import run_cli as _cli

TOKEN = "Qk9PSy1vZi10b2tlbnMtZm9yLXRoZS10ZXN0cw"
ESCPOS_MODELS = [m for m in TABLE if m.escpos]
KANJI_MODELS = [m for m in ESCPOS_MODELS if m.kanji]


# -- the test's own reading of the commands the jobs use ------------------------------------------
@dataclass
class Job:
    """What a printer would do with a job, as far as these tests look."""

    motion_y: list[int] = field(default_factory=list)  # GS P y values
    code_pages: list[int] = field(default_factory=list)  # ESC t n
    cuts: list[tuple[int, ...]] = field(default_factory=list)  # GS V m [n]
    line_feeds: list[int] = field(default_factory=list)  # ESC d n
    lines: list[tuple[bytes, int]] = field(default_factory=list)  # text bytes, GS ! width factor
    rasters: list[tuple[int, bytes]] = field(default_factory=list)  # (width bytes, rows) per run
    qr_module: int | None = None
    qr_data: bytes = b""
    kanji_on_at: int = -1  # index in `order` where FS & came
    order: list[str] = field(default_factory=list)


def read_job(job: bytes) -> Job:
    out = Job()
    i, kanji, magnify, text = 0, False, 1, bytearray()
    band_width, rows, gap = 0, bytearray(), 0

    def end_raster() -> None:
        nonlocal rows, gap
        if rows:
            out.rasters.append((band_width, bytes(rows)))
        rows, gap = bytearray(), 0

    while i < len(job):
        b = job[i]
        if b == 0x1B:  # ESC
            op = job[i + 1]
            if op == 0x40:
                i += 2
                continue
            arg = job[i + 2]
            if op == 0x4A:  # ESC J: dot feed, part of a raster run
                gap += arg
            else:
                end_raster()
                if op == 0x64:
                    out.line_feeds.append(arg)
                elif op == 0x74:
                    out.code_pages.append(arg)
                    out.order.append("ESC t")
                elif op not in (0x61, 0x45):  # align and bold change nothing measured here
                    raise AssertionError(f"offset {i}: ESC {op:#x} is not a command these jobs use")
            i += 3
        elif b == 0x1D:  # GS
            op = job[i + 1]
            if op == 0x76:  # GS v 0 m xL xH yL yH
                w, h = job[i + 4] | job[i + 5] << 8, job[i + 6] | job[i + 7] << 8
                if rows and w != band_width:
                    end_raster()
                band_width = w
                rows += bytes(gap * w) + job[i + 8 : i + 8 + w * h]
                gap = 0
                i += 8 + w * h
                continue
            end_raster()
            if op == 0x50:
                out.motion_y.append(job[i + 3])
                i += 4
            elif op == 0x21:
                magnify = (job[i + 2] >> 4) + 1
                i += 3
            elif op == 0x56:
                m = job[i + 2]
                out.cuts.append((m, job[i + 3]) if m in (65, 66) else (m,))
                i += 4 if m in (65, 66) else 3
            elif op == 0x28 and job[i + 2] == 0x6B:  # GS ( k pL pH cn fn ...
                size = job[i + 3] | job[i + 4] << 8
                fn, params = job[i + 6], job[i + 7 : i + 5 + size]
                if fn == 0x43:
                    out.qr_module = params[0]
                elif fn == 0x50:
                    out.qr_data = params[1:]
                i += 5 + size
            else:
                raise AssertionError(f"offset {i}: GS {op:#x} is not a command these jobs use")
        elif b == 0x1C:  # FS
            end_raster()
            op = job[i + 1]
            if op == 0x26:
                kanji = True
                out.order.append("FS &")
            elif op == 0x2E:
                kanji = False
            i += 3 if op == 0x43 else 2
        elif b == 0x0A:
            end_raster()
            out.lines.append((bytes(text), magnify))
            text = bytearray()
            i += 1
        else:
            end_raster()
            step = 2 if kanji and (0x81 <= b <= 0x9F or 0xE0 <= b <= 0xFC) else 1
            text += job[i : i + step]
            i += step
    end_raster()
    return out


def line_dots(code: bytes, magnify: int) -> int:
    """A line's width in the printer's cells: 12 dots a one-byte (ANK) character, 24 a Kanji."""
    dots, i = 0, 0
    while i < len(code):
        two = 0x81 <= code[i] <= 0x9F or 0xE0 <= code[i] <= 0xFC
        dots += 24 if two else 12
        i += 2 if two else 1
    return dots * magnify


def image_of(width_bytes: int, rows: bytes) -> Image.Image:
    inverted = rows.translate(bytes(255 - b for b in range(256)))
    return Image.frombytes("1", (width_bytes * 8, len(rows) // width_bytes), inverted)


def read_qr(img: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(img.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)]


def expected_cut(model: PrinterModel, job: Job) -> None:
    if model.cutter == "feed-cut":
        assert job.cuts == [(66, 0)] and job.line_feeds[-1:] != [4]
    elif model.cutter == "cut":
        assert job.cuts == [(1,)] and job.line_feeds[-1] == 4
    else:
        assert job.cuts == [] and job.line_feeds[-1] == 4


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def content(nerima: OfficeConfig) -> TicketContent:
    s = nerima.service("certificate")
    ready = TicketReady(
        s.ticket_id(23), "certificate", 23, 13, 12, WaitRange.of_minutes(15, 25), tokyo(2027, 3, 23, 10, 15), TOKEN
    )
    return ticket_content(nerima, ready)


def profile_for(model: PrinterModel, kind: str = "raster", **kw: object) -> PrinterProfile:
    return PrinterProfile("p", kind, model.paper_mm, model=model.name, **kw)  # type: ignore[arg-type]


# -- every model ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ESCPOS_MODELS, ids=lambda m: m.name)
def test_the_raster_job_follows_the_models_head(content: TicketContent, model: PrinterModel) -> None:
    job = read_job(ticket_bytes(content, profile_for(model)))
    assert job.motion_y == [model.dpi]  # one ESC J step is one dot row of this head
    ((width_bytes, rows),) = job.rasters
    assert width_bytes * 8 == model.dots
    picture = image_of(width_bytes, rows)
    drawn = render_ticket(content, model.dots, model.dpi)
    assert picture.size == drawn.size  # every feed was one dot row: gaps are the drawn millimetres
    assert read_qr(picture) == [content.url]
    expected_cut(model, job)


@pytest.mark.parametrize("model", KANJI_MODELS, ids=lambda m: m.name)
def test_the_kanji_job_follows_the_models_font(content: TicketContent, model: PrinterModel) -> None:
    job = read_job(ticket_bytes(content, profile_for(model, "kanji")))
    assert job.motion_y == [model.dpi]
    assert job.code_pages == [1] and job.order.index("ESC t") < job.order.index("FS &")  # half-width kana
    widths = [line_dots(code, magnify) for code, magnify in job.lines if code]
    assert widths and max(widths) <= model.columns * 12 and max(widths) < model.dots
    modules = len(qr_matrix(content.url, "m")) + 8
    if model.native_qr:
        assert job.qr_data == content.url.encode() and job.qr_module is not None
        assert job.qr_module * modules <= model.dots  # the code fits the head
        assert 0.5 <= job.qr_module * 25.4 / model.dpi <= 0.9  # and stays readable, not huge
    else:
        assert job.qr_module is None
        assert [read_qr(image_of(w, rows)) for w, rows in job.rasters] == [[content.url]]
        assert all(w * 8 == model.dots for w, _ in job.rasters)
    expected_cut(model, job)


@pytest.mark.parametrize("model", [MODELS["epson-tm-t88v"], MODELS["generic-80"]], ids=lambda m: m.name)
def test_the_qr_module_is_about_three_quarters_of_a_millimetre(content: TicketContent, model: PrinterModel) -> None:
    job = read_job(ticket_bytes(content, profile_for(model, "kanji")))
    assert job.qr_module == {180: 5, 203: 6}[model.dpi]


def test_the_t88_wraps_at_its_42_columns_not_47(content: TicketContent) -> None:
    long = replace(content, service_name=Text("あ" * 30, "x " * 40))
    t88 = read_job(ticket_bytes(long, profile_for(MODELS["epson-tm-t88v"], "kanji")))
    assert max(line_dots(code, 1) for code, m in t88.lines if m == 1) == 42 * 12
    generic = read_job(ticket_bytes(long, profile_for(MODELS["generic-80"], "kanji")))
    assert max(line_dots(code, 1) for code, m in generic.lines if m == 1) == 47 * 12


def test_no_cutter_in_the_config_means_no_cut_whatever_the_model(content: TicketContent) -> None:
    job = read_job(ticket_bytes(content, profile_for(MODELS["epson-tm-t88v"], cutter=False)))
    assert job.cuts == [] and job.line_feeds[-1] == 4


# -- extension characters -------------------------------------------------------------------------
def test_an_extension_character_is_a_picture_unless_the_models_font_has_it(
    content: TicketContent, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = replace(content, office_name=Text("髙﨑①㈱出張所", "Takasaki branch"))
    plain = read_job(ticket_bytes(name, profile_for(MODELS["epson-tm-t88v"], "kanji")))
    assert all("髙".encode("cp932") not in code for code, _ in plain.lines)
    assert len(plain.rasters) == 1 and plain.rasters[0][0] * 8 == 512  # drawn, not sent as codes
    fuller = replace(MODELS["epson-tm-t88v"], kanji_extra=frozenset("髙﨑①㈱"))
    monkeypatch.setitem(printer_models.MODELS, "epson-tm-t88v", fuller)
    native = read_job(ticket_bytes(name, profile_for(fuller, "kanji")))
    assert native.lines[0][0] == "髙﨑①㈱出張所".encode("cp932") and native.rasters == []


# -- the table and the config ---------------------------------------------------------------------
@pytest.mark.parametrize("model", TABLE, ids=lambda m: m.name)
def test_every_entry_is_a_head_that_fits_its_paper_and_cites_a_source(model: PrinterModel) -> None:
    assert head_problem(model.paper_mm, model.dots, model.dpi) is None
    assert model.columns * 12 <= model.dots and model.source
    assert MODELS[model.name] is model


def _config(printer: str) -> OfficeConfig:
    base = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8").split("[[printers]]")[0]
    return parse_config(base + '\n[[printers]]\nid = "p"\nport = "x"\n' + printer, source="p.toml")


def test_a_model_sets_the_paper_and_dots_and_dpi_override_the_head() -> None:
    t88 = _config('model = "Epson-TM-T88V"\n').printers[0]
    assert (t88.model, t88.width_mm, t88.width_dots, t88.printer_model.dpi) == ("epson-tm-t88v", 80, 512, 180)
    other = _config("width_mm = 80\ndots = 512\ndpi = 180\n").printers[0].printer_model
    assert (other.dots, other.dpi, other.columns, other.name) == (512, 180, 42, "generic-80")
    assert with_head(MODELS["generic-58"], None, None) is MODELS["generic-58"]


@pytest.mark.parametrize(
    ("printer", "key", "message"),
    [
        ('model = "tm-t88"\n', "model", "unknown printer model 'tm-t88'; known models: citizen-ppu-700"),
        ('model = "star-tsp100iv"\n', "model", "no ESC/POS emulation"),
        ("model = 88\n", "model", "must be a model name"),
        ('model = "epson-tm-t88v"\nwidth_mm = 58\n', "width_mm", "takes 80 mm paper, not 58 mm"),
        ("dots = 500\n", "dots", "multiple of 8"),
        ("dots = 640\n", "dots", "wider than 80 mm paper"),
        ('dots = "512"\n', "dots", "whole number"),
        ("dpi = 300\n", "dpi", "dpi must be 100-255"),
        ("dpi = true\n", "dpi", "whole number"),
        ('model = "star-mc-print3"\nprofile = "kanji"\n', "profile", "no Kanji font"),
    ],
)
def test_bad_model_or_head_names_key_and_problem(printer: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(printer)
    assert info.value.key == f"printers[0].{key}" and message in info.value.problem


# -- the command ----------------------------------------------------------------------------------
def test_ticket_model_writes_the_models_bytes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, nerima: OfficeConfig
) -> None:
    out = tmp_path / "t.escpos"
    argv = ["ticket", "--config", str(EXAMPLES / "nerima.toml"), "--service", "certificate"]
    code, stdout, err = _cli(
        capsys, *argv, "--printer", "kanji", "--model", "epson-tm-t88vi", "--at", "2027-03-23T10:15", "--out", str(out)
    )
    assert (code, err) == (0, "") and "kanji 80 mm, epson-tm-t88vi" in stdout
    from counterfloor.ticket_cli import parse_moment, sample_ticket

    sample = sample_ticket(nerima, "certificate", parse_moment(nerima, "2027-03-23T10:15"), None, "0")
    profile = PrinterProfile("kanji", "kanji", 80, native_qr=True, model="epson-tm-t88vi")
    assert out.read_bytes() == ticket_bytes(sample, profile)


def test_an_unknown_model_is_a_usage_error_listing_the_known_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "t.escpos"
    argv = ["ticket", "--config", str(EXAMPLES / "nerima.toml"), "--service", "certificate", "--out", str(out)]
    code, _, err = _cli(capsys, *argv, "--model", "tm-t88")
    assert code == 2 and "--model: unknown printer model 'tm-t88'; known models: " in err
    assert all(name in err for name in MODELS) and not out.exists()
    code, _, err = _cli(capsys, *argv, "--model", "epson-tm-t88v", "--width-mm", "58")
    assert code == 2 and "takes 80 mm paper" in err
