"""Regenerate the default call-out voice (signage/voice/<lang>/<name>.wav) with espeak-ng and sox.

    apt-get install -y espeak-ng sox
    uv run python tools/make_voice.py [--out signage/voice] [--check]

Every segment signage.callout needs is written as mono 16-bit PCM at 16 kHz, with the silence
at both ends trimmed (the assembler adds its own pauses). espeak-ng's `ja` voice reads kana only,
so the Japanese segments are written in kana here. `--check` only verifies that the texts below
cover exactly the segments signage.callout asks for (the tests run this without espeak-ng).
An installation replacing the voice records files with the same names (docs/callout.md).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signage.callout import RATE, decode_wav, segment_names  # noqa: E402

_JA_DIGITS = ["", "いち", "に", "さん", "よん", "ご", "ろく", "なな", "はち", "きゅう"]
_JA_TENS = [
    "",
    "じゅう",
    "にじゅう",
    "さんじゅう",
    "よんじゅう",
    "ごじゅう",
    "ろくじゅう",
    "ななじゅう",
    "はちじゅう",
    "きゅうじゅう",
]
_JA_HUNDREDS = [
    "",
    "ひゃく",
    "にひゃく",
    "さんびゃく",
    "よんひゃく",
    "ごひゃく",
    "ろっぴゃく",
    "ななひゃく",
    "はっぴゃく",
    "きゅうひゃく",
]
_JA_THOUSANDS = [
    "",
    "せん",
    "にせん",
    "さんぜん",
    "よんせん",
    "ごせん",
    "ろくせん",
    "ななせん",
    "はっせん",
    "きゅうせん",
]
_JA_LETTERS = [
    "エー",
    "ビー",
    "シー",
    "ディー",
    "イー",
    "エフ",
    "ジー",
    "エイチ",
    "アイ",
    "ジェー",
    "ケー",
    "エル",
    "エム",
    "エヌ",
    "オー",
    "ピー",
    "キュー",
    "アール",
    "エス",
    "ティー",
    "ユー",
    "ブイ",
    "ダブリュー",
    "エックス",
    "ワイ",
    "ゼット",
]
_EN_NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def texts() -> dict[str, dict[str, str]]:
    """What each segment says, per language."""
    ja: dict[str, str] = {
        "n0": "ぜろ",
        "no": "の",
        "ban_no_kata": "ばんの かた",
        "ban_madoguchi": "ばん まどぐちへ おこしください",
    }
    for d in range(1, 10):
        ja[f"n{d}"] = _JA_DIGITS[d]
        ja[f"n{d * 10}"] = _JA_TENS[d]
        ja[f"n{d * 100}"] = _JA_HUNDREDS[d]
        ja[f"n{d * 1000}"] = _JA_THOUSANDS[d]
    en: dict[str, str] = {f"n{n}": word for n, word in enumerate(_EN_NUMBERS)}
    for t in range(2, 10):
        en[f"n{t * 10}"] = _EN_TENS[t]
    en |= {
        "hundred": "hundred",
        "thousand": "thousand",
        "number": "Number",
        "please_go_to_counter": "please go to counter",
    }
    for i, kana in enumerate(_JA_LETTERS):
        letter = chr(ord("a") + i)
        ja[f"letter_{letter}"] = kana
        en[f"letter_{letter}"] = letter.upper()
    return {"ja": ja, "en": en}


def check() -> list[str]:
    """Mismatches between texts() and the segments signage.callout uses (empty when they agree)."""
    problems = []
    have = texts()
    for lang, names in segment_names().items():
        missing = set(names) - set(have[lang])
        extra = set(have[lang]) - set(names)
        problems += [f"{lang}/{n}: no text" for n in sorted(missing)]
        problems += [f"{lang}/{n}: not a segment" for n in sorted(extra)]
    return problems


def synthesise(lang: str, text: str, out: Path, work: Path) -> None:
    raw = work / "raw.wav"
    voice = {"ja": "ja", "en": "en-us"}[lang]
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    # to the assembler's format, and trim silence at both ends (reverse, trim the start, reverse back)
    trim = ["silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse"]
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out), *trim], check=True)
    decode_wav(out.read_bytes())  # the assembler must read what we wrote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "signage" / "voice")
    parser.add_argument("--check", action="store_true", help="only check the segment list")
    args = parser.parse_args(argv)
    problems = check()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if args.check:
        return 0
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"make_voice: {tool} is not installed (apt-get install -y espeak-ng sox)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        for lang, segments in texts().items():
            (args.out / lang).mkdir(parents=True, exist_ok=True)
            for name, text in sorted(segments.items()):
                synthesise(lang, text, args.out / lang / f"{name}.wav", Path(tmp))
    total = sum(p.stat().st_size for p in args.out.rglob("*.wav"))
    print(f"wrote {sum(len(s) for s in texts().values())} segments to {args.out} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
