"""Resident-facing words in Japanese and English, read from the message catalogues in messages/.

Owns the lookup only. Catalogue files are TOML, one per language, flat `key = "text"` pairs with
`{name}` placeholders; an installation may replace them. A key missing from a catalogue is a clear
error naming the key and the file, found by the tests rather than shown to a resident as blank.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Literal

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")
CATALOG_DIR = Path(__file__).with_name("messages")


class CatalogError(KeyError):
    """A message key or placeholder the catalogue does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


@functools.cache
def catalog(lang: Lang, directory: Path = CATALOG_DIR) -> dict[str, str]:
    path = directory / f"{lang}.toml"
    with open(path, "rb") as f:
        data = tomllib.load(f)
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise CatalogError(f"{path}: {', '.join(sorted(bad))} must be strings")
    return data


def text(key: str, lang: Lang, /, **values: object) -> str:
    """The message `key` in `lang`, with `{name}` placeholders filled from `values`."""
    messages = catalog(lang)
    try:
        template = messages[key]
    except KeyError:
        raise CatalogError(f"{CATALOG_DIR / (lang + '.toml')}: no message {key!r}") from None
    try:
        return template.format(**values)
    except KeyError as e:
        raise CatalogError(f"message {key!r} ({lang}) needs a value for {e.args[0]!r}") from None


def both(key: str, /, **values: object) -> tuple[str, str]:
    """(Japanese, English) for `key`: residents see Japanese first, English beneath."""
    return text(key, "ja", **values), text(key, "en", **values)
