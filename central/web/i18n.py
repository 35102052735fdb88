"""The web pages' words in Japanese and English (messages/ja.toml, messages/en.toml).

Owns the lookup and the choice of language. Japanese is the default; `?lang=en` (kept on every
link, so the path never changes) switches. A key missing from a catalogue is an error naming the
key and the file, found by the tests rather than shown to a resident as blank.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Literal

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")
MESSAGES = Path(__file__).with_name("messages")


@functools.cache
def _messages(lang: Lang) -> dict[str, str]:
    with open(MESSAGES / f"{lang}.toml", "rb") as f:
        return {k: str(v) for k, v in tomllib.load(f).items()}


def text(key: str, lang: Lang, /, **values: object) -> str:
    try:
        template = _messages(lang)[key]
    except KeyError:
        raise KeyError(f"{MESSAGES / (lang + '.toml')}: no message {key!r}") from None
    return template.format(**values)


def pick(value: str | None) -> Lang:
    """The language a request asks for (anything else: Japanese)."""
    return "en" if value == "en" else "ja"
