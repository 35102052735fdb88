"""The message catalogues: every key in both languages, placeholders filled, clear errors."""

from __future__ import annotations

import string

import pytest

from signage.catalog import LANGS, CatalogError, both, catalog, text


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_key_exists_in_every_language_with_the_same_placeholders() -> None:
    ja, en = catalog("ja"), catalog("en")
    assert set(ja) == set(en), set(ja) ^ set(en)
    for key in ja:
        assert ja[key].strip() and en[key].strip(), key
        assert _placeholders(ja[key]) == _placeholders(en[key]), key


def test_japanese_first_english_second() -> None:
    assert both("reception_closed") == ("本日の受付は終了しました", "Reception closed for today")


@pytest.mark.parametrize("lang", LANGS)
def test_unknown_key_names_the_key_and_file(lang: str) -> None:
    with pytest.raises(CatalogError, match=r"no message 'no_such_key'") as info:
        text("no_such_key", lang)  # type: ignore[arg-type]
    assert f"{lang}.toml" in str(info.value)
