"""The waiting-room board: golden images per mode and orientation, legibility measured on every
render, long names and three-digit counters that still fit, partial updates, the snapshot builder."""

from __future__ import annotations

import heapq
import json
import os
import random
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops

from office.config import OfficeConfig, Text, parse_config
from office.model import (
    CallNext,
    Command,
    FinishService,
    Hold,
    IssueTicket,
    MarkNoShow,
    Office,
    OfficeError,
    OpenCounter,
    Return,
    Transfer,
)
from office.state import OfficeState, TicketStatus
from signage.board import LANDSCAPE, PORTRAIT, BoardRenderer, Render, layout_for, render_board, theme_for
from signage.catalog import both
from signage.legibility import contrast, legibility_problems
from signage.paint import _tokens, width_of, wrap
from signage.snapshot import ServiceStatus, build_snapshot
from tests.conftest import EXAMPLES, TOKYO, tokyo
from tests.signage_support import board_snapshot, busy, snapshot

GOLDEN = Path(__file__).parent / "golden" / "board"
MODES = ("office", "evening", "saturday", "closed")
ORIENTATIONS = {"landscape": LANDSCAPE, "portrait": PORTRAIT}
SCALE = 4  # goldens are stored at a quarter of the size, in grey: small files, and layout is what they guard


def _texts(render: Render) -> list[str]:
    return [b.text for b in render.boxes]


def _measured_on_the_image(render: Render) -> list[str]:
    """The recorded colours are the ones on the screen: inside each box, the background colour
    and the text colour are both present (a glyph's core pixels are exactly the text colour)."""
    problems = []
    img = render.image
    for b in render.boxes:
        colours = Counter(img.crop(b.bbox).get_flattened_data())
        if b.fg not in colours or b.bg not in colours:
            problems.append(f"{b.text!r} at {b.bbox}: drawn colours {colours.most_common(2)} are not {b.fg} on {b.bg}")
    return problems


def _check(render: Render, size: tuple[int, int]) -> None:
    assert render.image.size == size
    assert render.problems() == []
    assert _measured_on_the_image(render) == []


# -- goldens ------------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("mode", MODES)
def test_board_matches_its_golden_image(nerima: OfficeConfig, mode: str, orientation: str) -> None:
    size = ORIENTATIONS[orientation]
    snap = board_snapshot(nerima, mode, TOKYO)
    assert snap.mode.mode == mode
    render = render_board(snap, size)
    _check(render, size)
    small = render.image.reduce(SCALE).convert("L")
    path = GOLDEN / f"{mode}-{orientation}.png"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        small.save(path, optimize=True)
    golden = Image.open(path).convert("L")
    assert golden.size == small.size
    diff = ImageChops.difference(small, golden)
    histogram = diff.histogram()
    total = small.width * small.height
    mean = sum(i * n for i, n in enumerate(histogram)) / total
    far = sum(histogram[48:]) / total
    # Tolerance for FreeType/Pillow versions rasterising edges a little differently.
    assert mean < 2.5 and far < 0.01, f"{path.name}: mean difference {mean:.2f}, {far:.2%} of pixels far off"


# -- legibility and meaning ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT])
def test_closed_with_residents_still_waiting_keeps_calling_and_stays_legible(nerima: OfficeConfig, size) -> None:
    snap = busy(nerima, tokyo(2027, 3, 15, 19, 5))
    assert snap.mode.mode == "closed"
    render = render_board(snap, size)
    _check(render, size)
    texts = _texts(render)
    assert "C-099" in texts
    assert both("board_still_calling")[0] in texts
    assert any(t.startswith("次の受付") for t in texts)


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT])
def test_called_numbers_are_a_ninth_of_the_screen_high_on_the_pixels(nerima: OfficeConfig, size) -> None:
    render = render_board(board_snapshot(nerima, "office", TOKYO), size)
    numbers = [b for b in render.boxes if b.role == "number"]
    assert [b.text for b in numbers] == ["C-099", "C-098", "E-025"][: len(numbers)] and len(numbers) >= 2
    for b in numbers:
        ink = ImageChops.difference(
            render.image.crop(b.bbox), Image.new("RGB", (b.bbox[2] - b.bbox[0], b.bbox[3] - b.bbox[1]), b.bg)
        )
        _, top, _, bottom = ink.getbbox() or (0, 0, 0, 0)
        assert bottom - top >= size[1] / 9, b


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT])
def test_earlier_calls_are_listed_with_their_counters(nerima: OfficeConfig, size) -> None:
    snap = board_snapshot(nerima, "office", TOKYO)
    texts = _texts(render_board(snap, size))
    shown = layout_for(snap, size).calls_shown
    earlier = [*snap.calling[shown:], *snap.recent]
    listed = [c for c in earlier if c.ticket in texts]
    assert len(listed) >= 2 and listed == earlier[: len(listed)]  # newest first
    assert all(c.counter_name.ja in texts and c.counter_name.en in texts for c in listed)


def test_the_newest_call_is_marked_by_words_and_a_frame_not_only_colour(nerima: OfficeConfig) -> None:
    snap = board_snapshot(nerima, "office", TOKYO)
    render = render_board(snap, LANDSCAPE)
    lay = layout_for(snap, LANDSCAPE)
    newest = next(b for b in render.boxes if b.text == "C-099")
    label = next(b for b in render.boxes if b.text == "▶ {} {}".format(*both("board_new")))
    assert label.area[1] <= newest.bbox[1] <= label.area[3] + lay.newest_h  # in the newest call's row
    assert "NOW" in label.text
    # Without colour: in grey, the newest row is still framed (a dark line around it).
    grey = render.image.convert("L")
    x0, y0, x1, _ = lay.rect("calls")
    row_top = newest.bbox[1] - 40
    frame_rows = [
        y for y in range(y0, row_top + 40) if all(grey.getpixel((x, y)) < 60 for x in range(x0 + 20, x1 - 20, 7))
    ]
    assert frame_rows, "no dark frame line above the newest call"


def test_modes_differ_in_words_and_icon_shape_not_only_colour(nerima: OfficeConfig) -> None:
    titles, icons = {}, {}
    for mode in MODES:
        snap = board_snapshot(nerima, mode, TOKYO)
        render = render_board(snap, LANDSCAPE)
        titles[mode] = both(f"board_mode_{mode}")
        assert titles[mode][0] in _texts(render) and titles[mode][1] in _texts(render)
        banner = theme_for(mode).banner_bg
        icon = render.image.crop((28, 27, 124, 123))
        # The icon's shape, whatever its colours: pixels that are not the banner's colour.
        icons[mode] = (
            ImageChops.difference(icon, Image.new("RGB", icon.size, banner))
            .convert("L")
            .point(lambda v: 255 if v > 40 else 0)
        )
    assert len({t for t, _ in titles.values()}) == 4
    for a in MODES:
        for b in MODES:
            if a < b:
                differ = ImageChops.difference(icons[a], icons[b]).histogram()[255]
                assert differ > 500, f"{a} and {b} icons have nearly the same shape"


def test_themes_reach_seven_to_one_everywhere() -> None:
    for theme in (theme_for(m) for m in MODES):
        assert contrast(theme.banner_fg, theme.banner_bg) >= 7
        assert contrast(theme.fg, theme.bg) >= 7
        assert contrast(theme.off_fg, theme.off_bg) >= 7
        assert contrast(theme.hi_fg, theme.hi_bg) >= 7


def test_saturday_says_what_cannot_be_done_today(nerima: OfficeConfig) -> None:
    snap = board_snapshot(nerima, "saturday", TOKYO)
    render = render_board(snap, LANDSCAPE)
    not_offered = [s for s in snap.services if s.status is ServiceStatus.NOT_NOW]
    assert {s.id for s in not_offered} == {"payment", "guidance"}
    ja, en = both("board_not_now_saturday")
    assert _texts(render).count(ja) == 2 and _texts(render).count(en) == 2


def test_closed_board_points_to_the_next_opening_and_other_ways_to_certificates(nerima: OfficeConfig) -> None:
    snap = board_snapshot(nerima, "closed", TOKYO)
    render = render_board(snap, PORTRAIT)
    texts = " ".join(_texts(render))
    assert "次の受付：3月15日（月） 8:30から" in texts and "Next opening: Mon 15 Mar, from 8:30" in texts
    assert "コンビニ交付" in texts and "Convenience stores" in texts and "自動交付機" in texts
    assert "日曜日は閉庁" in texts


def test_evening_and_cut_off_services_say_so_in_words(nerima: OfficeConfig) -> None:
    render = render_board(board_snapshot(nerima, "evening", TOKYO), LANDSCAPE)
    texts = _texts(render)
    assert both("board_not_now_evening")[0] in texts  # guidance: 5 waiting but not offered → still shown
    assert both("board_ended")[0] in texts  # insurance: reception ended
    assert "10人待ち" in texts


LONG = """
[[counters]]
id = "123"
name = { ja = "123番窓口", en = "Counter 123" }
services = ["certificate"]
"""


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT])
def test_longest_names_and_three_digit_counters_fit(size: tuple[int, int]) -> None:
    text = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    config = parse_config(text.replace("[gateway]", LONG + "\n[gateway]", 1))
    longest = max(config.services, key=lambda s: len(s.name.ja))
    assert len(longest.name.ja) >= 29  # the certificate counter's full name
    snap = snapshot(
        config,
        tokyo(2027, 3, 15, 10, 30),
        calling=[("C-999", "123"), ("A-999", "123"), ("C-998", "123")],
        recent=[("B-999", "123"), ("D-999", "123"), ("E-999", "123"), ("F-999", "123")],
        waiting={s.id: 999 for s in config.services},
    )
    render = render_board(snap, size)
    _check(render, size)
    texts = _texts(render)
    assert "123番窓口" in texts and "Counter 123" in texts and "999人待ち" in texts


def test_a_name_too_long_for_any_row_is_shortened_and_reported() -> None:
    text = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    config = parse_config(text.replace('name = { ja = "印鑑登録"', 'name = { ja = "' + "印鑑登録" * 40 + '"', 1))
    render = render_board(snapshot(config, tokyo(2027, 3, 15, 10, 30)), LANDSCAPE)
    problems = legibility_problems(render.boxes, LANDSCAPE)
    assert any("shortened" in p for p in problems)


MANY = "".join(
    f"""
[[services]]
id = "x{i}"
prefix = "{chr(ord("G") + i)}"
name = {{ ja = "追加の手続きその{i}について", en = "Additional procedure number {i}" }}
"""
    for i in range(10)
)


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT])
def test_more_services_than_rows_still_draw_a_board_and_report_the_rest(size: tuple[int, int]) -> None:
    text = (EXAMPLES / "nerima.toml").read_text(encoding="utf-8")
    config = parse_config(text.replace("[[counters]]", MANY + "\n[[counters]]", 1))
    snap = snapshot(config, tokyo(2027, 3, 15, 10, 30), calling=[("A-001", "1")])
    render = render_board(snap, size)
    lay = layout_for(snap, size)
    assert lay.hidden and set(lay.hidden) < {s.id for s in config.services}
    assert any("is not shown" in p for p in render.problems())
    assert "A-001" in _texts(render)  # the calls are there whatever the services
    rects = list(lay.regions.values())
    assert sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in rects) == size[0] * size[1]


# -- partial updates -------------------------------------------------------------------------------
def test_a_call_redraws_only_the_call_area_and_matches_a_full_render(nerima: OfficeConfig) -> None:
    before = board_snapshot(nerima, "office", TOKYO)
    renderer = BoardRenderer(LANDSCAPE)
    renderer.render(before)
    old_image = renderer.image.copy()
    new_call = replace(before.calling[0], ticket="C-100", number=100, at=before.at + timedelta(seconds=20))
    after = replace(before, calling=(new_call, *before.calling[:2]), recent=(before.calling[2], *before.recent[:3]))
    result = renderer.update(after)
    lay = layout_for(after, LANDSCAPE)
    assert sorted(result.dirty) == sorted([lay.rect("calls"), lay.rect("recent")])
    # Nothing outside the redrawn rectangles changed …
    changed = ImageChops.difference(old_image, result.image)
    for x0, y0, x1, y1 in result.dirty:
        changed.paste((0, 0, 0), (x0, y0, x1, y1))
    assert changed.getbbox() is None
    # … and the result is exactly the board drawn from scratch.
    assert ImageChops.difference(result.image, render_board(after, LANDSCAPE).image).getbbox() is None
    _check(result, LANDSCAPE)


def test_a_count_change_redraws_one_service_row(nerima: OfficeConfig) -> None:
    before = board_snapshot(nerima, "office", TOKYO)
    renderer = BoardRenderer(LANDSCAPE)
    renderer.render(before)
    seal = next(s for s in before.services if s.id == "seal")
    after = replace(before, services=tuple(replace(s, waiting=3) if s is seal else s for s in before.services))
    result = renderer.update(after)
    assert result.dirty == [layout_for(after, LANDSCAPE).rect("service:seal")]
    assert "3人待ち" in _texts(result)


def test_a_change_of_mode_redraws_everything(nerima: OfficeConfig) -> None:
    renderer = BoardRenderer(PORTRAIT)
    renderer.render(board_snapshot(nerima, "office", TOKYO))
    result = renderer.update(board_snapshot(nerima, "evening", TOKYO))
    assert result.dirty == [(0, 0, *PORTRAIT)]
    assert renderer.update(board_snapshot(nerima, "evening", TOKYO)).dirty == []


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT])
@pytest.mark.parametrize("mode", [*MODES, "closed-busy"])
def test_regions_tile_the_screen(nerima: OfficeConfig, mode: str, size: tuple[int, int]) -> None:
    """Every pixel belongs to exactly one region, so drawing the regions draws the whole board."""
    snap = busy(nerima, tokyo(2027, 3, 15, 19, 5)) if mode == "closed-busy" else board_snapshot(nerima, mode, TOKYO)
    rects = list(layout_for(snap, size).regions.values())
    assert sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in rects) == size[0] * size[1]
    for i, a in enumerate(rects):
        assert 0 <= a[0] < a[2] <= size[0] and 0 <= a[1] < a[3] <= size[1], a
        for b in rects[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_unsupported_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="1920x1080"):
        BoardRenderer((800, 600))


# -- the snapshot builder ----------------------------------------------------------------------------
def test_snapshot_copies_the_floor_and_never_follows_it_later(nerima: OfficeConfig) -> None:
    office = Office(nerima)
    t = tokyo(2027, 3, 15, 9, 0)
    for counter in ("6", "7"):
        office.execute(OpenCounter(counter), t)
    for i in range(5):
        office.execute(IssueTicket("certificate", f"tok{i}"), t + timedelta(seconds=i))
    office.execute(CallNext("6"), t + timedelta(minutes=1))
    office.execute(CallNext("7"), t + timedelta(minutes=2))
    at = t + timedelta(minutes=3)
    snap = build_snapshot(nerima, office.state, office.estimator, at)
    assert [c.ticket for c in snap.calling] == ["C-002", "C-001"]  # newest first
    assert [c.counter_name for c in snap.calling] == [Text("7番窓口", "Counter 7"), Text("6番窓口", "Counter 6")]
    cert = next(s for s in snap.services if s.id == "certificate")
    assert cert.waiting == 3 and cert.status is ServiceStatus.OPEN and cert.wait_low is not None
    assert snap.mode.mode == "office" and snap.hours[0].start.hour == 8
    assert snap.url == nerima.public_base_url
    frozen = repr(snap)
    office.execute(CallNext("6"), at)  # the floor moves on
    office.execute(IssueTicket("certificate", "late"), at)
    assert repr(snap) == frozen
    later = build_snapshot(nerima, office.state, office.estimator, at)
    assert [c.ticket for c in later.calling] == ["C-003", "C-002"] and [c.ticket for c in later.recent] == ["C-001"]


def test_snapshot_of_another_day_shows_an_empty_floor(nerima: OfficeConfig) -> None:
    office = Office(nerima)
    office.execute(IssueTicket("certificate", "x"), tokyo(2027, 3, 12, 10, 0))
    snap = build_snapshot(nerima, office.state, office.estimator, tokyo(2027, 3, 14, 10, 0))
    assert snap.calling == () and all(s.waiting == 0 for s in snap.services)
    assert snap.mode.mode == "closed" and snap.mode.next_opening == tokyo(2027, 3, 15, 8, 30)
    assert all(s.status is ServiceStatus.NOT_NOW for s in snap.services)


def test_snapshot_needs_an_aware_moment(nerima: OfficeConfig) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_snapshot(nerima, OfficeState(), Office(nerima).estimator, tokyo(2027, 3, 15, 10, 0).replace(tzinfo=None))


# -- line breaking -----------------------------------------------------------------------------------
@given(
    st.text(alphabet="あいう証明書（）・、。ABC abc-123", min_size=1, max_size=60).filter(str.strip),
    st.integers(min_value=80, max_value=700),
)
def test_wrapping_keeps_every_character_and_the_width(words: str, width: int) -> None:
    lines = wrap(words, 36, width)
    assert "".join(lines).replace(" ", "") == words.replace(" ", "")
    for line in lines:
        # Over-long only when a single unbreakable token is wider than the line.
        assert width_of(line, 36) <= width or len(_tokens(line)) == 1, line
    for line in lines[1:]:
        assert line[:1] not in ("、", "。", "）", "・"), lines  # kinsoku: no line starts with these


def _calls_by_scanning(state: OfficeState, calling_limit: int, recent_limit: int) -> tuple[list[str], list[str]]:
    """The boards' calls as the builder once found them: every ticket of the day scanned."""
    called = [
        (t.called_at, t.issued_seq, t)
        for t in state.tickets.values()
        if t.called_at is not None and t.counter is not None
    ]
    attending = [c for c in called if c[2].status is TicketStatus.CALLED]
    calling = [c[2].id for c in heapq.nlargest(calling_limit, attending)]
    newest = heapq.nlargest(recent_limit + len(calling), called)
    return calling, [c[2].id for c in newest if c[2].id not in calling][:recent_limit]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_snapshot_calls_from_the_call_order_equal_a_scan_of_every_ticket(nerima: OfficeConfig, seed: int) -> None:
    # The builder reads the newest calls from the end of state.calls and the attended tickets
    # from the counters; the boards must show what scanning every ticket shows, after no-shows
    # (requeued, then dropped), transfers, holds and returns, calls in the same millisecond
    # (ties broken by issue order, not call order), and in a state restored from a snapshot
    # (whose call order is rebuilt from the tickets), with limits small enough to cut ties.
    rng = random.Random(seed)
    office = Office(nerima)
    at = tokyo(2027, 3, 15, 9, 0)
    counters = ("1", "6", "7", "11")  # notification, certificate, and shared counters
    for counter in counters:
        office.perform(OpenCounter(counter), at)
    held: list[str] = []
    kinds = ["issue"] * 4 + ["call"] * 3 + ["done", "no_show", "no_show", "transfer", "hold", "return"]
    recalled = checked = 0
    for i in range(1000):
        at += timedelta(seconds=rng.choice((0, 0, 1, 3)))
        action, counter = rng.choice(kinds), rng.choice(counters)
        service = rng.choice(("certificate", "notification"))
        current = office.state.counters[counter].current
        command: Command
        if action == "issue":
            command = IssueTicket(service, f"tok{i}")
        elif action == "call":
            command = CallNext(counter)
        elif action == "done":
            command = FinishService(counter)
        elif action == "no_show":
            command = MarkNoShow(counter)
        elif action == "transfer":
            command = Transfer(service, counter=counter)
        elif action == "hold" and current is not None:
            command = Hold(current)
            held.append(current)
        elif action == "return" and held:
            command = Return(held.pop(rng.randrange(len(held))))
        else:
            continue
        try:
            events = office.perform(command, at).events
        except OfficeError:
            continue
        recalled += sum(1 for e in events if e.TYPE == "called" and office.state.tickets[e.ticket].requeued)
        limits = rng.choice(((1, 1), (2, 3), (3, 1), (6, 8)))
        states = [office.state]
        if i % 10 == 0:
            states.append(OfficeState.from_snapshot(json.loads(json.dumps(office.state.to_snapshot()))))
        for state in states:
            snap = build_snapshot(nerima, state, office.estimator, at, calling_limit=limits[0], recent_limit=limits[1])
            assert ([c.ticket for c in snap.calling], [c.ticket for c in snap.recent]) == _calls_by_scanning(
                state, *limits
            ), (i, limits)
            checked += 1
    # What the day must have held for the comparison to mean something.
    assert recalled >= 5 and checked >= 300 and len(office.state.calls) >= 100
