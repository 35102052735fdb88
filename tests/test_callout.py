"""The spoken call-out: segment sequences, the chime, assembly into one WAV, the fallbacks, the
shipped voice files, and the playback worker (with a fake player)."""

from __future__ import annotations

import io
import logging
import math
import subprocess
import sys
import threading
import wave
from array import array
from pathlib import Path

import pytest

from gateway.audio import DEFAULT_VOICE_DIR, KEEP, QUEUE_MAX, CalloutPlayer, Played, player_argv
from signage.callout import (
    CHIME,
    RATE,
    SegmentError,
    announcement,
    assemble,
    callout_plan,
    chime_pcm,
    decode_wav,
    encode_wav,
    number_en,
    number_ja,
    parse_ticket,
    segment_names,
    silence_pcm,
)
from tests.conftest import ROOT
from tests.conftest import run_cli as _cli


def _wav_info(data: bytes) -> tuple[int, int, int, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()


def _pcm(data: bytes) -> bytes:
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.readframes(w.getnframes())


def _load_shipped(name: str) -> bytes:
    return (DEFAULT_VOICE_DIR / f"{name}.wav").read_bytes()


# -- which segments ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ticket", "counter", "ja", "en"),
    [
        (
            "B-023",
            "5",
            "letter_b no n20 n3 ban_no_kata | n5 ban_madoguchi",
            "number letter_b n20 n3 | please_go_to_counter n5",
        ),
        (
            "A-001",
            "12",
            "letter_a no n1 ban_no_kata | n10 n2 ban_madoguchi",
            "number letter_a n1 | please_go_to_counter n12",
        ),
        (
            "C-105",
            "123",  # a three-digit counter
            "letter_c no n100 n5 ban_no_kata | n100 n20 n3 ban_madoguchi",
            "number letter_c n1 hundred n5 | please_go_to_counter n1 hundred n20 n3",
        ),
        (
            "D-380",
            "600",  # the sound changes of さんびゃく and ろっぴゃく are segments of their own
            "letter_d no n300 n80 ban_no_kata | n600 ban_madoguchi",
            "number letter_d n3 hundred n80 | please_go_to_counter n6 hundred",
        ),
        (
            "Z-8019",
            "7",
            "letter_z no n8000 n10 n9 ban_no_kata | n7 ban_madoguchi",
            "number letter_z n8 thousand n19 | please_go_to_counter n7",
        ),
        (
            "E-000",
            "b2",
            "letter_e no n0 ban_no_kata | letter_b n2 ban_madoguchi",
            "number letter_e n0 | please_go_to_counter letter_b n2",
        ),
        (
            "F-40",
            "10",
            "letter_f no n40 ban_no_kata | n10 ban_madoguchi",
            "number letter_f n40 | please_go_to_counter n10",
        ),
    ],
)
def test_announcement_segments(ticket: str, counter: str, ja: str, en: str) -> None:
    def expand(lang: str, spec: str) -> list[str]:
        return ["pause:150" if w == "|" else f"{lang}/{w}" for w in spec.split()]

    assert announcement(ticket, counter, "ja") == expand("ja", ja)
    assert announcement(ticket, counter, "en") == expand("en", en)
    assert callout_plan(ticket, counter) == [CHIME, "pause:400", *expand("ja", ja), "pause:400", *expand("en", en)]
    assert callout_plan(ticket, counter, ["en"]) == [CHIME, "pause:400", *expand("en", en)]


@pytest.mark.parametrize(
    ("n", "ja", "en"),
    [
        (0, ["n0"], ["n0"]),
        (7, ["n7"], ["n7"]),
        (11, ["n10", "n1"], ["n11"]),
        (19, ["n10", "n9"], ["n19"]),
        (20, ["n20"], ["n20"]),
        (99, ["n90", "n9"], ["n90", "n9"]),
        (100, ["n100"], ["n1", "hundred"]),
        (999, ["n900", "n90", "n9"], ["n9", "hundred", "n90", "n9"]),
        (1000, ["n1000"], ["n1", "thousand"]),
        (3003, ["n3000", "n3"], ["n3", "thousand", "n3"]),
        (9999, ["n9000", "n900", "n90", "n9"], ["n9", "thousand", "n9", "hundred", "n90", "n9"]),
        (12345, ["n1", "n2", "n3", "n4", "n5"], ["n1", "n2", "n3", "n4", "n5"]),  # digit by digit
    ],
)
def test_numbers(n: int, ja: list[str], en: list[str]) -> None:
    assert number_ja(n) == ja
    assert number_en(n) == en


def test_every_number_and_letter_has_a_segment_file_in_the_set() -> None:
    names = {lang: set(v) for lang, v in segment_names().items()}
    for n in range(10000):
        assert set(number_ja(n)) <= names["ja"], n
        assert set(number_en(n)) <= names["en"], n
    for c in range(ord("A"), ord("Z") + 1):
        for lang in ("ja", "en"):
            for seg in announcement(f"{chr(c)}-1", "x9", lang):
                if not seg.startswith("pause:"):
                    lang_, name = seg.split("/")
                    assert lang_ == lang and name in names[lang], seg


@pytest.mark.parametrize("bad", ["B23x", "b-023", "BB-1", "B-12345", "", "B-023\n"])
def test_bad_tickets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a ticket number"):
        parse_ticket(bad)


def test_parse_ticket_reads_service_ticket_ids() -> None:
    assert parse_ticket("B-023") == ("B", 23)
    assert parse_ticket("A1") == ("A", 1)


# -- the chime ----------------------------------------------------------------------------------------
def _power(samples: array[int], freq: float, rate: int) -> float:
    """Goertzel: the signal's power at `freq`."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def test_chime_is_two_tones_high_then_low() -> None:
    pcm = chime_pcm()
    samples = array("h")
    samples.frombytes(pcm)
    assert len(samples) == int(RATE * 0.45) + int(RATE * 0.65)  # 1.1 s
    first, second = samples[: int(RATE * 0.3)], samples[int(RATE * 0.45) : int(RATE * 0.75)]
    assert _power(first, 659.25, RATE) > 20 * _power(first, 523.25, RATE)
    assert _power(second, 523.25, RATE) > 20 * _power(second, 659.25, RATE)
    peak = max(abs(v) for v in samples)
    assert 10000 < peak < 32767  # loud enough, never clipped
    assert abs(samples[-1]) < peak / 20  # decays: no click at the end


# -- assembly -------------------------------------------------------------------------------------------
def test_assembled_wav_is_the_plan_in_order() -> None:
    out = assemble("B-023", "5", _load_shipped)
    assert out.problems == () and out.speech
    assert list(out.segments) == callout_plan("B-023", "5")
    assert _wav_info(out.wav)[:3] == (1, 2, RATE)
    expected = b"".join(
        chime_pcm() if s == CHIME else silence_pcm(int(s[6:])) if s.startswith("pause:") else _pcm(_load_shipped(s))
        for s in out.segments
    )
    assert _pcm(out.wav) == expected
    seconds = _wav_info(out.wav)[3] / RATE
    assert 5 < seconds < 15


def test_a_missing_segment_leaves_its_language_out_and_keeps_the_chime() -> None:
    def load(name: str) -> bytes:
        if name == "en/please_go_to_counter":
            raise FileNotFoundError(name)
        return _load_shipped(name)

    out = assemble("B-023", "5", load)
    assert list(out.segments) == callout_plan("B-023", "5", ["ja"])
    assert len(out.problems) == 1 and "en/please_go_to_counter.wav is missing" in out.problems[0]


def test_corrupt_segments_everywhere_give_the_chime_alone() -> None:
    def load(name: str) -> bytes:
        return b"RIFF\x00\x00garbage" if name.startswith("ja/") else b""

    out = assemble("B-023", "5", load)
    assert out.segments == (CHIME,) and not out.speech
    assert _pcm(out.wav) == chime_pcm()
    assert _wav_info(out.wav)[:3] == (1, 2, RATE)
    assert [p.split(":")[0] for p in out.problems] == ["ja", "en"]


def test_an_unreadable_ticket_gives_the_chime_alone() -> None:
    out = assemble("???", "5", _load_shipped)
    assert out.segments == (CHIME,) and "not a ticket number" in out.problems[0]


def test_an_installations_chime_replaces_the_built_in_one_and_a_bad_one_falls_back() -> None:
    own = encode_wav(silence_pcm(300))
    assert _pcm(assemble("B-1", "1", _load_shipped, ["ja"], chime=own).wav).startswith(silence_pcm(300))
    bad = assemble("B-1", "1", _load_shipped, ["ja"], chime=b"nope")
    assert _pcm(bad.wav).startswith(chime_pcm()) and "built-in chime" in bad.problems[0]


# -- WAV formats ----------------------------------------------------------------------------------------
def _wav(rate: int, channels: int, width: int, frames: bytes) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def test_other_formats_are_converted() -> None:
    # 8-bit unsigned stereo at 8 kHz: left at +64, right at 0 → mono +32 (×256), twice the frames
    frames = bytes([128 + 64, 128]) * 800
    pcm = decode_wav(_wav(8000, 2, 1, frames))
    values = array("h")
    values.frombytes(pcm)
    assert len(values) == 1600 and set(values) == {32 * 256}
    # 16-bit at 22.05 kHz → 16 kHz
    src = array("h", [1000] * 2205).tobytes()
    assert len(decode_wav(_wav(22050, 1, 2, src))) == 2 * 1600


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a readable PCM WAV"),
        (b"RIFF1234WAVEfmt ", "not a readable PCM WAV"),
        (_wav(16000, 1, 3, bytes(300)), "24-bit samples"),
        (_wav(16000, 1, 2, b""), "no audio"),
        (_wav(1000, 1, 2, bytes(100)), "out of range"),
        (_wav(8000, 1, 1, bytes(8000 * 11)), "a segment is a word or phrase"),
    ],
)
def test_unusable_wavs_are_named(data: bytes, message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        decode_wav(data)


# -- the shipped voice ------------------------------------------------------------------------------------
def test_the_shipped_voice_is_complete_small_and_in_the_assemblers_format() -> None:
    total = 0
    for lang, names in segment_names().items():
        files = {p.stem for p in (DEFAULT_VOICE_DIR / lang).glob("*.wav")}
        assert files == set(names), lang
        for name in names:
            data = (DEFAULT_VOICE_DIR / lang / f"{name}.wav").read_bytes()
            channels, width, rate, frames = _wav_info(data)
            assert (channels, width, rate) == (1, 2, RATE), name
            assert 0.1 < frames / rate < 3.0, name
            total += len(data)
    assert total < 3 * 1024 * 1024


def test_make_voice_texts_cover_exactly_the_segments() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_voice.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# -- the playback worker ------------------------------------------------------------------------------------
def test_player_argv() -> None:
    assert player_argv("aplay -q -D plughw:1") == ["aplay", "-q", "-D", "plughw:1"]
    assert player_argv("none") is None and player_argv("") is None


def test_worker_writes_and_plays_each_call_in_order(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    done: list[Played] = []
    player = CalloutPlayer(tmp_path / "out", player="aplay -q", runner=ran.append, on_done=done.append)
    for ticket, counter in [("B-023", "5"), ("A-001", "12"), ("C-105", "123")]:
        assert player.submit(ticket, counter)
    player.drain()
    player.close()
    assert [d.ticket for d in done] == ["B-023", "A-001", "C-105"] and all(d.played for d in done)
    assert ran == [["aplay", "-q", str(d.path)] for d in done]
    assert [d.path.name for d in done] == ["callout-00.wav", "callout-01.wav", "callout-02.wav"]
    for d in done:
        assert d.path.read_bytes() == d.callout.wav
        assert list(d.callout.segments) == callout_plan(d.ticket, d.counter)


def test_without_a_player_only_files_are_written_in_a_ring(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    player = CalloutPlayer(tmp_path, player="none", runner=ran.append, languages=["ja"])
    for i in range(KEEP + 3):
        player.submit(f"A-{i + 1:03d}", "1")
        player.drain()  # one at a time: each waits for the worker, so the queue never overflows
    player.close()
    assert ran == []
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == [f"callout-{i:02d}.wav" for i in range(KEEP)]
    # the newest overwrote slot 2
    assert _pcm((tmp_path / "callout-02.wav").read_bytes()) == _pcm(assemble("A-023", "1", _load_shipped, ["ja"]).wav)


def test_a_failing_player_is_logged_and_the_next_call_still_plays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[list[str]] = []

    def flaky(argv: list[str]) -> None:
        calls.append(argv)
        if len(calls) == 1:
            raise FileNotFoundError("aplay")

    done: list[Played] = []
    player = CalloutPlayer(tmp_path, player="aplay", runner=flaky, on_done=done.append)
    with caplog.at_level(logging.WARNING, logger="gateway.audio"):
        player.submit("B-1", "1")
        player.submit("B-2", "1")
        player.drain()
    player.close()
    assert [(d.played, d.error is not None) for d in done] == [(False, True), (True, False)]
    assert "player aplay failed" in caplog.text


def test_missing_voice_dir_gives_chime_only_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    done: list[Played] = []
    player = CalloutPlayer(tmp_path / "out", voice_dir=tmp_path / "nowhere", on_done=done.append)
    with caplog.at_level(logging.WARNING, logger="gateway.audio"):
        player.submit("B-023", "5")
        player.drain()
    player.close()
    assert done[0].callout.segments == (CHIME,)
    assert _pcm(done[0].path.read_bytes()) == chime_pcm()
    assert "ja/letter_b.wav is missing" in caplog.text


def test_submit_never_blocks_and_drops_beyond_the_backlog(tmp_path: Path) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(argv: list[str]) -> None:
        started.set()
        release.wait()

    player = CalloutPlayer(tmp_path, player="aplay", runner=slow, languages=["ja"])
    assert player.submit("A-1", "1")
    started.wait()  # the worker holds A-1 inside the player; the queue is empty again
    accepted = [player.submit(f"A-{i}", "1") for i in range(2, QUEUE_MAX + 4)]
    assert accepted == [True] * QUEUE_MAX + [False] * 2 and player.dropped == 2
    release.set()
    player.drain()
    player.close()


# -- the command line ------------------------------------------------------------------------------------


def test_cli_writes_one_callout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import EXAMPLES

    wav = tmp_path / "c.wav"
    # Someone's file whose name the WAV's temporary file once took (c.tmp), and so overwrote.
    theirs = tmp_path / "c.tmp"
    theirs.write_bytes(b"not ours")
    argv = ["callout", "--config", str(EXAMPLES / "nerima.toml"), "--ticket", "C-105", "--counter", "12"]
    code, out, _ = _cli(capsys, *argv, "--out", str(wav))
    assert code == 0
    assert out.startswith(f"wrote {wav} (") and out.rstrip().endswith("en/please_go_to_counter en/n12")
    assert wav.read_bytes() == assemble("C-105", "12", _load_shipped).wav
    assert sorted(tmp_path.iterdir()) == [theirs, wav]  # no stray ring or temporary files beside it
    assert theirs.read_bytes() == b"not ours"
    code, out, err = _cli(capsys, *argv[:4], "C105x", "--counter", "12", "--out", str(wav))
    assert (code, out) == (
        2,
        "",
    ) and err == "counterfloor: error: --ticket: not a ticket number like 'B-023': 'C105x'\n"


@pytest.mark.parametrize(
    ("counter", "out", "message"),
    [
        # An unknown counter, or one with a newline or thousands of digits, once made a call-out
        # (or a bare chime) and exit 0.
        ("99", "c.wav", "--counter: unknown counter '99' (counters: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)"),
        ("5\n6", "c.wav", "--counter: unknown counter '5\\n6' (counters: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)"),
        # These were tracebacks (FileNotFoundError, IsADirectoryError, ValueError).
        ("5", "no/such/dir/c.wav", "--out: no such directory: {tmp}/no/such/dir"),
        ("5", "", "--out: {tmp} is a directory, not a file"),
        # This one wrote the WAV over the journal.
        ("5", "j.db", "--out: {tmp}/j.db is an SQLite database (a journal?); refusing to overwrite it"),
    ],
)
def test_cli_bad_counter_or_out_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], counter: str, out: str, message: str
) -> None:
    from tests.conftest import EXAMPLES

    config = str(EXAMPLES / "nerima.toml")
    journal = tmp_path / "j.db"
    assert _cli(capsys, "office", "init", "--config", config, "--journal", str(journal))[0] == 0
    before = sorted(tmp_path.iterdir()), journal.read_bytes()
    target = str(tmp_path / out) if out else str(tmp_path)
    code, stdout, err = _cli(
        capsys, "callout", "--config", config, "--ticket", "B-023", "--counter", counter, "--out", target
    )
    assert (code, stdout) == (2, "")
    assert err == f"counterfloor: error: {message.format(tmp=tmp_path)}\n"
    assert (sorted(tmp_path.iterdir()), journal.read_bytes()) == before
