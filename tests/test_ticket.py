"""Tickets: their content from the model, the picture (golden, QR read back by zxing-cpp, long
names kept inside the paper), the bytes of both printer profiles decoded back command by
command, printer config errors, and the `counterfloor ticket` command's determinism."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import segno
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops

from counterfloor.ticket_cli import sample_ticket, seeded_token
from gateway.journal import new_token
from gateway.ticket_bytes import _cells, ticket_bytes, ticket_chunks
from hal import escpos
from office.config import ConfigError, OfficeConfig, PrinterProfile, Text, parse_config
from office.estimate import UNREACHABLE_MINUTES, WaitRange
from office.model import IssueTicket, Office, TicketReady
from signage.qr_matrix import qr_matrix
from signage.ticket import (
    MARGIN,
    TicketContent,
    TicketError,
    _width,
    check_token,
    layout,
    render_ticket,
    ticket_content,
    ticket_strips,
    ticket_text,
    wrap,
    wrap_measured,
)
from tests.conftest import EXAMPLES, tokyo
from tests.conftest import run_cli as _cli

GOLDEN = Path(__file__).with_name("golden")
TOKEN = "Qk9PSy1vZi10b2tlbnMtZm9yLXRoZS10ZXN0cw"  # 38 characters: 228 bits
WIDTHS = (384, 576)
LONG_JA = (
    "住民基本台帳カードおよびマイナンバーカードの暗証番号再設定・"
    "電子証明書の更新・署名用電子証明書の失効申請に関する手続き"
)
LONG_EN = (
    "Resetting the PIN of a resident record card or My Number Card, renewing or revoking electronic "
    "certificates (Supercalifragilisticexpialidocious-extraordinarily-long-hyphenated-word) and more"
)


def ready(config: OfficeConfig, service: str = "certificate", number: int = 23, **kw: object) -> TicketReady:
    s = config.service(service)
    fields: dict[str, object] = {
        "ticket": s.ticket_id(number),
        "service": service,
        "number": number,
        "position": 13,
        "ahead": 12,
        "wait": WaitRange.of_minutes(15, 25),
        "issued_at": tokyo(2027, 3, 23, 10, 15),
        "token": TOKEN,
    }
    fields.update(kw)
    return TicketReady(**fields)  # type: ignore[arg-type]


@pytest.fixture
def content(nerima: OfficeConfig) -> TicketContent:
    return ticket_content(nerima, ready(nerima))


def picture(bitmap: escpos.Bitmap) -> Image.Image:
    """A reassembled raster as a mode "1" image (white paper), as zxing and the goldens want."""
    inverted = bitmap.rows.translate(bytes(255 - b for b in range(256)))
    return Image.frombytes("1", (bitmap.width_bytes * 8, bitmap.height), inverted)


def read_qr(img: Image.Image) -> list[str]:
    # QR codes only: zxing's 1D readers once found a "barcode" in a ticket's printed digits.
    return [r.text for r in zxingcpp.read_barcodes(img.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)]


# -- content ------------------------------------------------------------------------------------
def test_content_from_a_ticket_the_model_issued(nerima: OfficeConfig) -> None:
    office = Office(nerima)
    token = new_token()
    (effect,) = office.execute(IssueTicket("seal", token), tokyo(2027, 3, 23, 16, 40)).effects
    assert isinstance(effect, TicketReady)
    c = ticket_content(nerima, effect)
    assert (c.ticket, c.service_name, c.office_name, c.ahead) == ("B-001", nerima.service("seal").name, nerima.name, 0)
    assert c.url == f"https://queue.example.jp/nerima/t/{token}"
    assert c.issued_at == tokyo(2027, 3, 23, 16, 40) and c.issued_at.utcoffset() is not None
    assert c.wait == (effect.wait.low_minutes, effect.wait.high_minutes)
    # Seal registration is not offered in the evening: reception ends at 17:00, not 19:00.
    assert c.hours_left == Text("本日の受付 17:00まで（あと20分）", "Reception until 17:00 (20 min left)")


def test_the_words_of_a_ticket(content: TicketContent) -> None:
    words = ticket_text(content)
    assert words.number == "C-023"
    assert words.issued == Text("2027年3月23日（火）10:15 発券", "Issued Tue 2027/3/23 10:15")
    assert words.ahead == Text("お待ちの方 12人", "12 people ahead of you")
    assert words.wait == Text("待ち時間の目安 約15〜25分", "Estimated wait 15-25 min")
    assert words.hours == Text("本日の受付 19:00まで（あと8時間45分）", "Reception until 19:00 (8 h 45 min left)")


def test_an_unreachable_wait_says_so(nerima: OfficeConfig) -> None:
    big = WaitRange.of_minutes(UNREACHABLE_MINUTES, UNREACHABLE_MINUTES)
    c = ticket_content(nerima, ready(nerima, wait=big))
    assert c.wait == "unreachable"
    assert ticket_text(c).wait == Text("本日中のご案内は難しい見込みです", "You may not be called today")


def test_tokens_carry_at_least_128_random_bits(nerima: OfficeConfig) -> None:
    for token in (new_token(), seeded_token("1")):
        check_token(token)
        assert len(token) * 6 >= 128
    assert new_token() != new_token()
    with pytest.raises(TicketError, match="128 bits"):
        ticket_content(nerima, ready(nerima, token="A" * 21))  # 126 bits
    with pytest.raises(TicketError, match="URL-safe"):
        ticket_content(nerima, ready(nerima, token="a/b" * 10))
    with pytest.raises(TicketError, match="URL-safe"):
        ticket_content(nerima, ready(nerima, token="A" * 40 + "\n"))  # "$" alone would let it through


# -- the picture --------------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_picture_is_the_head_width_and_its_qr_reads_back(content: TicketContent, width: int) -> None:
    img = render_ticket(content, width)
    assert img.mode == "1" and img.width == width
    assert read_qr(img) == [content.url]


@pytest.mark.parametrize("width", WIDTHS)
def test_picture_matches_the_golden_image(content: TicketContent, width: int) -> None:
    img = render_ticket(content, width)
    path = GOLDEN / f"ticket_{width}.png"
    if os.environ.get("COUNTERFLOOR_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        img.save(path, optimize=True)
    golden = Image.open(path).convert("1")
    assert img.size == golden.size
    # Tolerance: another FreeType or font build moves a few edge pixels, never the layout.
    diff = ImageChops.logical_xor(img.convert("1"), golden)
    changed = diff.convert("L").histogram()[255]
    assert changed <= 0.005 * img.width * img.height, f"{changed} pixels differ from {path.name}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "name",
    [
        "real-longest",
        "made-up",
    ],
)
def test_a_long_service_name_wraps_inside_the_paper(nerima: OfficeConfig, width: int, name: str) -> None:
    if name == "real-longest":
        service = max(nerima.services, key=lambda s: len(s.name.ja) + len(s.name.en))
        c = ticket_content(nerima, ready(nerima, service=service.id, number=1))
        long_name = service.name
    else:
        long_name = Text(LONG_JA, LONG_EN)
        c = replace(ticket_content(nerima, ready(nerima)), service_name=long_name)
    lay = layout(c, width)
    for line in lay.lines:
        assert line.x >= MARGIN // 2 and line.x + line.width <= width - MARGIN // 2, line
    # Every character is printed: the wrapped lines put back together are the name.
    for text in (long_name.ja, long_name.en):
        printed = [ln for ln in lay.lines if ln.text and ln.text in text]
        assert "".join(ln.text for ln in printed).replace(" ", "") == text.replace(" ", "")
    # Nothing drawn over anything else: line boxes and the code are stacked or side by side.
    boxes = [(ln.x, ln.top, ln.x + ln.width, ln.top + ln.height) for ln in lay.lines]
    qr_side = lay.qr_side
    boxes.append((lay.qr_x, lay.qr_y, lay.qr_x + qr_side, lay.qr_y + qr_side))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert read_qr(render_ticket(c, width)) == [c.url]


# -- the bytes: raster profile --------------------------------------------------------------------
@pytest.mark.parametrize("width_mm", [58, 80])
def test_raster_job_decodes_to_the_picture(content: TicketContent, width_mm: int) -> None:
    profile = PrinterProfile("p", "raster", width_mm)
    cmds = escpos.decode(ticket_bytes(content, profile))
    assert escpos.names(cmds) == ["init", "motion_units", "raster…", "feed_lines", "cut"]
    assert cmds[1].args == (0, 203)  # one ESC J step = one dot row
    assert cmds[-2].args == (4,) and cmds[-1].args == (1,)  # feed past the cutter, partial cut
    bands = [c for c in cmds if c.name == "raster"]
    assert {c.args[0] for c in bands} == {profile.width_dots // 8}
    assert all(1 <= c.args[1] <= escpos.BAND_ROWS for c in bands)
    (bitmap,) = list(escpos.raster_rows(cmds))
    printed = picture(bitmap)
    assert printed.width == profile.width_dots
    drawn = render_ticket(content, profile.width_dots)
    assert printed.size == drawn.size
    assert ImageChops.logical_xor(printed, drawn).getbbox() is None
    assert read_qr(printed) == [content.url]


def stacked(strips: list[Image.Image], width: int) -> Image.Image:
    """The strips one under another, cropped at the bottom as render_ticket crops."""
    img = Image.new("1", (width, sum(s.height for s in strips)), 1)
    y = 0
    for strip in strips:
        assert strip.mode == "1" and strip.width == width
        img.paste(strip, (0, y))
        y += strip.height
    box = ImageChops.invert(img.convert("L")).getbbox()
    assert box is not None and box[1] == 0  # the blank top is cropped away already
    return img.crop((0, 0, width, box[3]))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("variant", ["plain", "long_name", "reprint_unreachable"])
def test_the_strips_stacked_are_the_picture_drawn_whole(nerima: OfficeConfig, width: int, variant: str) -> None:
    c = ticket_content(nerima, ready(nerima))
    if variant == "long_name":
        c = replace(c, service_name=Text(LONG_JA, LONG_EN))
    elif variant == "reprint_unreachable":
        c = replace(c, reprint=True, wait="unreachable", ticket="Q-999")
    for _ in range(2):  # the second time from the kept office and service strips
        strips = list(ticket_strips(c, width))
        assert len(strips) >= 4  # office, number, service, then the code and details
        assert ImageChops.logical_xor(stacked(strips, width), render_ticket(c, width)).getbbox() is None


@settings(max_examples=15)
@given(
    st.text(st.sampled_from("証明書の発行・住民票（写し）ABC gjpqy-QÅ"), min_size=1, max_size=40),
    st.text(st.sampled_from("Certificate issuing gjpqy-Q"), min_size=1, max_size=60),
    st.sampled_from(WIDTHS),
)
def test_any_service_name_streams_the_same_picture(ja: str, en: str, width: int) -> None:
    nerima = parse_config((EXAMPLES / "nerima.toml").read_text(encoding="utf-8"))
    c = replace(ticket_content(nerima, ready(nerima)), service_name=Text(ja, en))
    assert (
        ImageChops.logical_xor(stacked(list(ticket_strips(c, width)), width), render_ticket(c, width)).getbbox() is None
    )


@pytest.mark.parametrize("profile", [PrinterProfile("r", "raster", 58), PrinterProfile("r", "raster", 80)])
def test_a_raster_job_comes_in_pieces_of_whole_commands_top_first(
    content: TicketContent, profile: PrinterProfile
) -> None:
    pieces = list(ticket_chunks(content, profile))
    assert b"".join(pieces) == ticket_bytes(content, profile)
    assert len(pieces) >= 4 and all(pieces)
    for piece in pieces:
        cmds = escpos.decode(piece)  # raises if a piece began or ended inside a command
        assert {c.args[0] for c in cmds if c.name == "raster"} <= {profile.width_dots // 8}
    first = escpos.decode(pieces[0])
    assert [c.name for c in first[:3]] == ["init", "motion_units", "raster"]
    assert escpos.names(escpos.decode(pieces[-1]))[-2:] == ["feed_lines", "cut"]


def test_the_top_of_a_raster_job_comes_before_its_qr_code_is_made(
    content: TicketContent, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []

    def spy(data: str, error: str) -> tuple[bytes, ...]:
        made.append(data)
        return qr_matrix(data, error)

    monkeypatch.setattr("signage.ticket.qr_matrix", spy)
    pieces = ticket_chunks(content, PrinterProfile("r", "raster", 80))
    first = next(pieces)
    assert made == [] and escpos.names(escpos.decode(first))[:3] == ["init", "motion_units", "raster…"]
    rest = b"".join(pieces)
    assert made == [content.url] and first + rest == ticket_bytes(content, PrinterProfile("r", "raster", 80))


def test_a_kanji_job_is_one_piece(content: TicketContent) -> None:
    profile = PrinterProfile("k", "kanji", 58, native_qr=True)
    assert list(ticket_chunks(content, profile)) == [ticket_bytes(content, profile)]


# -- the QR code's modules ----------------------------------------------------------------------------
@settings(max_examples=120)
@given(
    st.text(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), min_size=22, max_size=300
    ),
    st.sampled_from("LMQH"),
)
def test_the_qr_code_is_the_one_segno_makes_mask_and_all(token: str, error: str) -> None:
    """The mask is chosen by the standard's penalty score, as segno's own search chooses it
    (versions 2-14 here, so with and without version information)."""
    url = f"https://queue.example.jp/nerima/t/{token}"
    expected = segno.make(url, error=error, micro=False, boost_error=False)
    assert qr_matrix(url, error) == tuple(bytes(row) for row in expected.matrix)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_qr_code_reads_back_for_many_tokens_on_both_widths(nerima: OfficeConfig, width: int) -> None:
    for i in range(12):  # seeded tokens: a failure names a token that fails again
        c = ticket_content(nerima, ready(nerima, token=seeded_token(f"{width}-{i}"), number=i + 1))
        assert read_qr(render_ticket(c, width)) == [c.url]


def test_no_cutter_no_cut(content: TicketContent) -> None:
    cmds = escpos.decode(ticket_bytes(content, PrinterProfile("p", cutter=False)))
    assert "cut" not in escpos.names(cmds) and cmds[-1].name == "feed_lines"


# -- the bytes: kanji profile ---------------------------------------------------------------------
def _texts(cmds: list[escpos.Command]) -> list[str]:
    return [c.text for c in cmds if c.name == "text"]


@pytest.mark.parametrize(("width_mm", "magnify"), [(58, 6), (80, 8)])
def test_kanji_job_is_native_text_magnified_number_and_native_qr(
    content: TicketContent, width_mm: int, magnify: int
) -> None:
    profile = PrinterProfile("k", "kanji", width_mm, native_qr=True)
    job = ticket_bytes(content, profile)
    cmds = escpos.decode(job)
    names = escpos.names(cmds)
    opening = ["init", "motion_units", "code_page", "kanji_code", "kanji_on", "align"]
    assert names[:6] == opening and names[-3:] == ["kanji_off", "feed_lines", "cut"]
    assert "raster…" not in names
    assert (cmds[1].args, cmds[2].args, cmds[3].args) == ((0, 203), (1,), (1,))  # 1/203 in, katakana, Shift_JIS
    texts = _texts(cmds)
    words = ticket_text(content)
    assert texts[:3] == [words.office.ja, words.office.en, "C-023"]
    number = next(i for i, c in enumerate(cmds) if c.name == "text" and c.text == "C-023")
    assert cmds[number - 1].name == "char_size" and cmds[number - 1].args == (magnify, magnify)
    assert cmds[number + 2].name == "char_size" and cmds[number + 2].args == (1, 1)
    # Wrapping drops the space at a break; cp932 reads WAVE DASH's code back as FULLWIDTH TILDE.
    joined = "".join(texts).replace(" ", "").replace("～", "〜")
    for item in (words.service, *words.details):
        assert item.ja.replace(" ", "") in joined and item.en.replace(" ", "") in joined
    # No line is wider than the head in the printer's fixed pitch (24-dot Kanji, 12-dot ANK).
    assert all(_cells(t) <= profile.width_dots for t in texts if t != "C-023")
    qr = {c.name: c for c in cmds if c.name.startswith("qr_")}
    assert list(qr) == ["qr_model", "qr_size", "qr_error", "qr_store", "qr_print"]
    assert (qr["qr_model"].args, qr["qr_size"].args, qr["qr_error"].args) == ((0x32,), (6,), (0x31,))
    assert qr["qr_store"].args == (0x30,) and qr["qr_store"].data == content.url.encode()


@pytest.mark.parametrize("width_mm", [58, 80])
def test_kanji_without_native_qr_sends_only_the_code_as_raster(content: TicketContent, width_mm: int) -> None:
    profile = PrinterProfile("k", "kanji", width_mm, native_qr=False)
    cmds = escpos.decode(ticket_bytes(content, profile))
    assert not any(c.name.startswith("qr_") for c in cmds)
    (bitmap,) = list(escpos.raster_rows(cmds))
    assert bitmap.width_bytes * 8 == profile.width_dots
    assert read_qr(picture(bitmap)) == [content.url]


def test_kanji_draws_a_line_outside_shift_jis_as_raster(content: TicketContent) -> None:
    c = replace(content, service_name=Text("𠮷野家前出張所の届出", "Yoshinoya branch"))
    cmds = escpos.decode(ticket_bytes(c, PrinterProfile("k", "kanji", 80, native_qr=True)))
    assert all("野家前" not in t for t in _texts(cmds))
    (bitmap,) = list(escpos.raster_rows(cmds))
    assert bitmap.width_bytes == 72 and bitmap.height > 20
    assert "Yoshinoya branch" in _texts(cmds)


# -- config -------------------------------------------------------------------------------------
def _with_printer(extra: str, devices: str = "") -> OfficeConfig:
    base = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8").split("[[printers]]")[0]
    return parse_config(base + devices + "\n[[printers]]\n" + extra, source="p.toml")


def test_printer_defaults_and_the_single_printer_is_every_dispensers() -> None:
    config = _with_printer('id = "desk"\nport = "/dev/usb/lp0"\n')
    assert config.printers == (PrinterProfile("desk", "raster", 80, True, False, "/dev/usb/lp0"),)
    assert config.printers[0].width_dots == 576
    assert [d.printer for d in config.devices if d.kind == "dispenser"] == ["desk"]
    kanji = _with_printer('id = "k"\nprofile = "kanji"\nwidth_mm = 58\nport = "sim://printer"\n')
    assert (kanji.printers[0].native_qr, kanji.printers[0].width_dots) == (True, 384)


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        (
            'id = "a"\nprofile = "escpos"\nport = "x"\n',
            "printers[0].profile",
            "unknown printer profile 'escpos'; profiles are ['raster', 'kanji']",
        ),
        ('id = "a"\nwidth_mm = 76\nport = "x"\n', "printers[0].width_mm", "[58, 80]"),
        ('id = "a"\nnative_qr = true\nport = "x"\n', "printers[0].native_qr", "only a kanji printer"),
        ('id = "a"\ncutter = "yes"\nport = "x"\n', "printers[0].cutter", "true or false"),
        ('id = "a"\n', "printers[0].port", "missing"),
        ('id = "a"\nport = "x"\nspeed = 9600\n', "printers[0].speed", "unknown setting"),
        ('id = "a"\nport = "x"\n[[printers]]\nid = "a"\nport = "y"\n', "printers[1].id", "duplicate printer id"),
    ],
)
def test_bad_printer_config_names_key_and_problem(extra: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _with_printer(extra)
    assert info.value.key == key and message in info.value.problem
    assert str(info.value).startswith(f"p.toml: {key}: ")


def test_a_dispenser_names_a_configured_printer_and_only_a_dispenser_may() -> None:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    base = text.split("[[printers]]")[0]
    two = '[[printers]]\nid = "a"\nport = "x"\n[[printers]]\nid = "b"\nport = "y"\n'
    bad = base.replace('services = ["move", "seal", "certificate", "payment"]', 'printer = "c"\nservices = ["move"]')
    with pytest.raises(ConfigError, match=r"devices\[0\].printer: unknown printer 'c'; printers are \['a', 'b'\]"):
        parse_config(bad + two)
    good = parse_config(bad.replace('printer = "c"', 'printer = "b"') + two)
    assert good.devices[0].printer == "b"
    pad = base.replace('counter = "1"', 'counter = "1"\nprinter = "a"')
    with pytest.raises(ConfigError, match=r"devices\[1\].printer: only a dispenser prints tickets"):
        parse_config(pad + two)
    assert parse_config(base + two).devices[0].printer is None  # two printers: no guessing


# -- the command ----------------------------------------------------------------------------------


def test_ticket_command_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(EXAMPLES / "nerima.toml")
    base = ["ticket", "--config", config, "--service", "certificate", "--at", "2027-03-23T10:15", "--number", "23"]
    outputs = []
    for i, seed in enumerate(["7", "7", "8"]):
        out = tmp_path / f"t{i}.escpos"
        png = tmp_path / f"t{i}.png"
        code, stdout, err = _cli(capsys, *base, "--seed", seed, "--out", str(out), "--png", str(png))
        assert code == 0, err
        assert stdout.startswith(f"wrote {out} (") and "C-023, raster 80 mm" in stdout
        outputs.append((out.read_bytes(), png.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] != outputs[2][0]  # another seed, another token, another code
    cmds = escpos.decode(outputs[0][0])
    (bitmap,) = list(escpos.raster_rows(cmds))
    assert read_qr(picture(bitmap)) == [f"https://queue.example.jp/nerima/t/{seeded_token('7')}"]
    assert Image.open(tmp_path / "t0.png").size == (576, bitmap.height)


def test_ticket_command_kanji_by_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k.escpos"
    argv = ["ticket", "--config", str(EXAMPLES / "nerima.toml"), "--service", "seal", "--printer", "kanji"]
    code, _, err = _cli(capsys, *argv, "--width-mm", "58", "--at", "2027-03-23T10:15+09:00", "--out", str(out))
    assert code == 0, err
    expected = sample_ticket(
        parse_config((EXAMPLES / "nerima.toml").read_text(encoding="utf-8")),
        "seal",
        tokyo(2027, 3, 23, 10, 15),
        None,
        "0",
    )
    assert out.read_bytes() == ticket_bytes(expected, PrinterProfile("kanji", "kanji", 58, native_qr=True))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "nope"], "--service: unknown service 'nope'; services are ['move', 'seal'"),
        (["--service", "seal", "--at", "tomorrow"], "--at: not an ISO 8601 time"),
        (["--service", "seal", "--printer", "epson"], "--printer: unknown printer 'epson'; printers are ['entrance']"),
        (["--service", "seal", "--number", "1000"], "--number: seal numbers run 1-999 (got 1000)"),
        (["--service", "seal", "--width-mm", "76"], "--width-mm: must be one of [58, 80]"),
        (["--service", "seal", "--png", "/nonexistent/dir/t.png"], "--png: no such directory: /nonexistent/dir"),
        # '²' is a digit (str.isdigit) that int() cannot read: once a ValueError traceback.
        (["--service", "seal", "--number", "²"], "--number: not a whole number: '²'"),
        (["--service", "seal", "--width-mm", "²"], "--width-mm: must be one of [58, 80] (got '²')"),
        (["--service", "seal", "--at", "0001-01-01T00:00+14:00"], "--at: the year must be 2-9998"),
    ],
)
def test_ticket_command_bad_arguments_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "t.escpos"
    code, stdout, err = _cli(capsys, "ticket", "--config", str(EXAMPLES / "nerima.toml"), *args, "--out", str(out))
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("counterfloor: error: ") and message in err, err
    assert not out.exists()  # both files are checked before either is written


def test_a_profile_built_in_code_is_checked_like_a_configured_one() -> None:
    with pytest.raises(ValueError, match="unknown printer profile 'escpos'"):
        PrinterProfile("p", "escpos")
    with pytest.raises(ValueError, match=r"\[58, 80\]"):
        PrinterProfile("p", width_mm=76)
    assert PrinterProfile("p").native_qr is False  # raster draws the code itself
    assert PrinterProfile("p", "kanji").native_qr is True


def test_a_reprint_says_so_and_keeps_number_and_code(nerima: OfficeConfig) -> None:
    first = ticket_content(nerima, ready(nerima))
    again = ticket_content(nerima, ready(nerima, reprint=True))
    assert (again.ticket, again.url) == (first.ticket, first.url)
    assert ticket_text(again).issued == Text(
        "2027年3月23日（火）10:15 発券（再発行）", "Issued Tue 2027/3/23 10:15 (reprint)"
    )
    assert ticket_text(first).issued.en == "Issued Tue 2027/3/23 10:15"


@given(
    # Pieces, not characters: a long Latin word must be broken too.
    st.lists(
        st.sampled_from([*"あいう漢字（）、。・ーabcXYZ019-() ,.", "Supercalifragilistic"]), min_size=1, max_size=40
    ).map("".join),
    st.sampled_from([60, 150, 364]),
)
def test_wrapping_never_overflows_and_never_drops_a_character(s: str, width: int) -> None:
    lines = wrap(s, 20, "regular", width)
    assert all(_width(line, 20, "regular") <= width for line in lines), lines
    assert "".join(lines).replace(" ", "") == s.replace(" ", "")


@pytest.mark.parametrize("width_mm", [58, 80])
def test_kanji_wraps_a_very_long_name_in_the_printers_pitch(content: TicketContent, width_mm: int) -> None:
    c = replace(content, service_name=Text(LONG_JA, LONG_EN))
    profile = PrinterProfile("k", "kanji", width_mm)
    texts = _texts(escpos.decode(ticket_bytes(c, profile)))
    assert all(_cells(t) < profile.width_dots for t in texts if t != c.ticket)
    joined = "".join(texts).replace(" ", "")
    assert LONG_JA in joined and LONG_EN.replace(" ", "") in joined


def test_wrapping_keeps_brackets_and_punctuation_with_their_words() -> None:
    assert wrap_measured("あいう（えお）、か", len, 4) == ["あいう", "（え", "お）、か"]
    assert wrap_measured("Seal registration", len, 8) == ["Seal", "registra", "tion"]


@settings(max_examples=25)
@given(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=50),
    st.text(st.characters(codec="ascii"), min_size=1, max_size=80),
    st.sampled_from([PrinterProfile("r", "raster", 58), PrinterProfile("k", "kanji", 80, native_qr=False)]),
)
def test_any_service_name_gives_a_job_that_decodes(ja: str, en: str, profile: PrinterProfile) -> None:
    c = replace(
        ticket_content(parse_config((EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")), ready_oizumi()),
        service_name=Text(ja, en),
    )
    cmds = escpos.decode(ticket_bytes(c, profile))
    assert {c.args[0] for c in cmds if c.name == "raster"} == {profile.width_dots // 8}
    assert cmds[0].name == "init" and cmds[-1].name == "cut"


def ready_oizumi() -> TicketReady:
    return TicketReady("C-001", "certificate", 1, 1, 0, WaitRange.of_minutes(0, 5), tokyo(2027, 3, 23, 10, 15), TOKEN)


def test_ticket_command_never_writes_over_a_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "j.db"
    assert _cli(capsys, "office", "init", "--config", str(EXAMPLES / "nerima.toml"), "--journal", str(journal))[0] == 0
    before = journal.read_bytes()
    argv = ["ticket", "--config", str(EXAMPLES / "nerima.toml"), "--service", "seal"]
    for extra in (["--out", str(journal)], ["--out", str(tmp_path / "t.bin"), "--png", str(journal)]):
        code, out, err = _cli(capsys, *argv, *extra)
        assert (code, out) == (2, "") and err.count("\n") == 1
        assert f"{journal} is an SQLite database (a journal?); refusing to overwrite it" in err
    assert journal.read_bytes() == before and not (tmp_path / "t.bin").exists()
