"""The spoken call-out: which recorded segments announce a call, the chime, and one WAV of it all.

Pure: a call (ticket, counter) and a segment loader in, WAV bytes out; no files, no playback
(gateway.audio plays and writes them). Segments are small WAV files an installation may replace with
a human voice, one per word or phrase, named `<lang>/<name>.wav` (docs/callout.md lists them):

    ja: "B の 23 番の方、5 番窓口へお越しください" = letter_b, no, n20, n3, ban_no_kata, (pause), n5, ban_madoguchi
    en: "Number B23, please go to counter 5"     = number, letter_b, n20, n3, (pause), please_go_to_counter, n5

The output is always mono 16-bit PCM at `RATE`; segments in another rate, width or channel count
are converted here. The chime never depends on a segment: a language whose segments are missing
or unreadable is left out (a wrong or half number is worse than none), and with none left the
call-out is the chime alone. `Callout.problems` says what was left out, for the log.
"""

from __future__ import annotations

import io
import math
import re
import struct
import wave
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

RATE = 16000  # Hz: plenty for speech, and keeps the shipped segments small
SAMPLE_WIDTH = 2  # bytes: 16-bit signed PCM
LANGUAGES = ("ja", "en")
PAUSE_SHORT_MS = 150  # between the ticket and the counter
PAUSE_LONG_MS = 400  # after the chime and between the languages
MAX_SEGMENT_S = 10.0  # a longer "segment" is a wrong file, not a word
PAUSE_PREFIX = "pause:"
CHIME = "chime"

_TICKET_RE = re.compile(r"([A-Z])-?(\d{1,4})")


class SegmentError(ValueError):
    """A segment that cannot be used: missing, not a WAV, or in a format we do not read."""


# -- which segments say what ----------------------------------------------------------------
def _pause(ms: int) -> str:
    return f"{PAUSE_PREFIX}{ms}"


def number_ja(n: int) -> list[str]:
    """Japanese numerals as segments: 23 → n20 n3; 300 → n300 (さんびゃく, a segment of its own
    because of the sound change); 8000 → n8000. Above 9999, digit by digit."""
    if n < 0:
        raise ValueError(f"no reading for a negative number: {n}")
    if n == 0:
        return ["n0"]
    if n > 9999:
        return [f"n{d}" for d in str(n)]
    out = []
    for unit in (1000, 100, 10, 1):
        digit = n // unit % 10
        if digit:
            out.append(f"n{digit * unit}")
    return out


def number_en(n: int) -> list[str]:
    """English numerals as segments: 23 → n20 n3; 105 → n1 hundred n5; 2019 → n2 thousand n19.
    Above 9999, digit by digit."""
    if n < 0:
        raise ValueError(f"no reading for a negative number: {n}")
    if n > 9999:
        return [f"n{d}" for d in str(n)]
    if n == 0:
        return ["n0"]
    out: list[str] = []
    thousands, rest = divmod(n, 1000)
    hundreds, rest = divmod(rest, 100)
    if thousands:
        out += [f"n{thousands}", "thousand"]
    if hundreds:
        out += [f"n{hundreds}", "hundred"]
    if rest >= 20:
        out.append(f"n{rest // 10 * 10}")
        if rest % 10:
            out.append(f"n{rest % 10}")
    elif rest:
        out.append(f"n{rest}")
    return out


def _spoken_id(text: str, numerals: Callable[[int], list[str]]) -> list[str]:
    """A counter id: a number if it is one ('12' → twelve), else letter by letter ('b2' → b, two)."""
    if text.isdigit() and text.isascii():
        return numerals(int(text))
    out: list[str] = []
    for ch in text.lower():
        if "a" <= ch <= "z":
            out.append(f"letter_{ch}")
        elif ch.isdigit() and ch.isascii():
            out.append(f"n{ch}")
        # '-' and '_' are not read
    return out


def parse_ticket(ticket: str) -> tuple[str, int]:
    """'B-023' → ('B', 23). The format Service.ticket_id writes; anything else is a ValueError."""
    m = _TICKET_RE.fullmatch(ticket)
    if not m:
        raise ValueError(f"not a ticket number like 'B-023': {ticket!r}")
    return m.group(1), int(m.group(2))


def announcement(ticket: str, counter: str, lang: str) -> list[str]:
    """The segments of one language's announcement, as `<lang>/<name>` (pauses as 'pause:MS')."""
    letter, number = parse_ticket(ticket)
    if not counter:
        raise ValueError("a call needs a counter")
    letter_seg = f"letter_{letter.lower()}"
    if lang == "ja":
        names = [
            letter_seg,
            "no",
            *number_ja(number),
            "ban_no_kata",
            _pause(PAUSE_SHORT_MS),
            *_spoken_id(counter, number_ja),
            "ban_madoguchi",
        ]
    elif lang == "en":
        names = [
            "number",
            letter_seg,
            *number_en(number),
            _pause(PAUSE_SHORT_MS),
            "please_go_to_counter",
            *_spoken_id(counter, number_en),
        ]
    else:
        raise ValueError(f"no announcement in language {lang!r}; languages are {list(LANGUAGES)}")
    return [n if n.startswith(PAUSE_PREFIX) else f"{lang}/{n}" for n in names]


def callout_plan(ticket: str, counter: str, languages: Sequence[str] = LANGUAGES) -> list[str]:
    """The whole call-out: the chime, then each language's announcement, pauses between."""
    plan = [CHIME]
    for lang in languages:
        plan += [_pause(PAUSE_LONG_MS), *announcement(ticket, counter, lang)]
    return plan


def segment_names() -> dict[str, list[str]]:
    """Every segment file a full set needs, per language (docs/callout.md; tools/make_voice.py)."""
    letters = [f"letter_{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    ja = [f"n{d * u}" for u in (1, 10, 100, 1000) for d in range(1, 10)]
    en = [f"n{n}" for n in range(1, 20)] + [f"n{t}" for t in range(20, 100, 10)]
    return {
        "ja": ["n0", *ja, *letters, "no", "ban_no_kata", "ban_madoguchi"],
        "en": ["n0", *en, "hundred", "thousand", *letters, "number", "please_go_to_counter"],
    }


# -- sound ------------------------------------------------------------------------------------
@cache
def chime_pcm(rate: int = RATE) -> bytes:
    """A two-tone chime (E5 then C5, the familiar 'pin-pon'), bell-like: each tone a fundamental
    with a quieter octave, a fast attack and an exponential decay. 16-bit mono PCM, ~1.1 s."""
    samples = array("h")
    for freq, seconds in ((659.25, 0.45), (523.25, 0.65)):
        n = int(rate * seconds)
        attack = int(rate * 0.005)
        for i in range(n):
            t = i / rate
            envelope = min(1.0, i / attack) * math.exp(-3.2 * t / seconds)
            value = math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t)
            samples.append(int(0.5 * 32767 / 1.3 * envelope * value))
    return samples.tobytes() if _little_endian() else _swap(samples)


def silence_pcm(ms: int, rate: int = RATE) -> bytes:
    return bytes(SAMPLE_WIDTH * (rate * ms // 1000))


def _little_endian() -> bool:
    return struct.pack("=h", 1) == b"\x01\x00"


def _swap(samples: array[int]) -> bytes:
    copy = array("h", samples)
    copy.byteswap()
    return copy.tobytes()


def decode_wav(data: bytes, rate: int = RATE) -> bytes:
    """A WAV file's audio as mono 16-bit little-endian PCM at `rate`: 8- or 16-bit, any number of
    channels (averaged) and any rate (linear interpolation). Anything else is a SegmentError."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, src_rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError, struct.error) as exc:
        raise SegmentError(f"not a readable PCM WAV file: {exc}") from None
    if width not in (1, 2):
        raise SegmentError(f"{8 * width}-bit samples; use 8- or 16-bit PCM")
    if not 4000 <= src_rate <= 192000:
        raise SegmentError(f"sample rate {src_rate} Hz is out of range")
    if frames == 0 or len(raw) < frames * channels * width:
        raise SegmentError("no audio, or the file is cut short")
    if frames / src_rate > MAX_SEGMENT_S:
        raise SegmentError(f"{frames / src_rate:.1f} s long; a segment is a word or phrase (≤ {MAX_SEGMENT_S:.0f} s)")
    if width == 2 and channels == 1 and src_rate == rate:
        return raw  # the shipped set's own format: no work on the hot path
    if width == 1:  # 8-bit WAV is unsigned
        values = array("h", ((b - 128) << 8 for b in raw))
    else:
        values = array("h")
        values.frombytes(raw[: frames * channels * 2])
        if not _little_endian():
            values.byteswap()
    if channels > 1:
        values = array("h", (sum(values[i : i + channels]) // channels for i in range(0, len(values), channels)))
    if src_rate != rate:
        values = _resample(values, src_rate, rate)
    return values.tobytes() if _little_endian() else _swap(values)


def _resample(values: array[int], src: int, dst: int) -> array[int]:
    n_out = max(1, len(values) * dst // src)
    last = len(values) - 1
    out = array("h")
    for j in range(n_out):
        pos = j * src / dst
        i = int(pos)
        frac = pos - i
        a = values[min(i, last)]
        b = values[min(i + 1, last)]
        out.append(int(a + (b - a) * frac))
    return out


def encode_wav(pcm: bytes, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


# -- assembly ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Callout:
    """An assembled call-out: the WAV bytes, the plan actually used, and what was left out."""

    wav: bytes
    segments: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def speech(self) -> bool:
        return any(s not in (CHIME,) and not s.startswith(PAUSE_PREFIX) for s in self.segments)


SegmentLoader = Callable[[str], bytes]
"""Returns a segment's WAV bytes by name ('ja/n20'); raises (OSError, KeyError…) if it has none."""


def assemble(
    ticket: str,
    counter: str,
    load: SegmentLoader,
    languages: Sequence[str] = LANGUAGES,
    chime: bytes | None = None,
) -> Callout:
    """The call-out as one WAV. `chime`: an installation's chime WAV (else the built-in one; an
    unreadable one falls back to the built-in). Never raises for a bad segment or ticket."""
    problems: list[str] = []
    chime_audio = chime_pcm()
    if chime is not None:
        try:
            chime_audio = decode_wav(chime)
        except SegmentError as exc:
            problems.append(f"chime: {exc}; the built-in chime is used")
    parts = [chime_audio]
    used = [CHIME]
    for lang in languages:
        try:
            plan = announcement(ticket, counter, lang)
        except ValueError as exc:
            problems.append(f"{lang}: {exc}")
            continue
        try:
            pcm = [_segment_pcm(name, load) for name in plan]
        except SegmentError as exc:
            problems.append(f"{lang}: {exc}; announcement left out")
            continue
        parts += [silence_pcm(PAUSE_LONG_MS), *pcm]
        used += [_pause(PAUSE_LONG_MS), *plan]
    return Callout(encode_wav(b"".join(parts)), tuple(used), tuple(problems))


def _segment_pcm(name: str, load: SegmentLoader) -> bytes:
    if name.startswith(PAUSE_PREFIX):
        return silence_pcm(int(name.removeprefix(PAUSE_PREFIX)))
    try:
        data = load(name)
    except (OSError, KeyError) as exc:
        raise SegmentError(f"segment {name}.wav is missing ({type(exc).__name__})") from None
    try:
        return decode_wav(data)
    except SegmentError as exc:
        raise SegmentError(f"segment {name}.wav: {exc}") from None
