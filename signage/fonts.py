"""Which font files signage draws with: Noto Sans CJK JP from PyPI first, a system CJK font second.

Owns only the lookup and a cache of loaded faces; rendering lives in the modules that draw. A
missing font is a clear error naming what to install, never a silent fall back to a font that
draws Japanese as boxes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from PIL import ImageFont

Weight = Literal["regular", "bold"]

# Debian's fonts-noto-cjk and fonts-ipafont paths, tried when the PyPI packages are absent.
_SYSTEM_FALLBACKS: dict[Weight, tuple[str, ...]] = {
    "regular": (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    ),
    "bold": (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    ),
}


class FontMissing(RuntimeError):
    """No Japanese-capable font could be found."""


def _packaged(weight: Weight) -> Path | None:
    try:
        if weight == "bold":
            import noto_cjk_sans_jp_bold as package
        else:
            import noto_cjk_sans_jp_regular as package
    except ImportError:
        return None
    path = Path(package.FONT_PATH)
    return path if path.is_file() else None


@functools.cache
def font_path(weight: Weight = "regular") -> Path:
    """The font file for `weight`: the packaged Noto Sans CJK JP, else a system CJK font."""
    packaged = _packaged(weight)
    if packaged is not None:
        return packaged
    for candidate in _SYSTEM_FALLBACKS[weight]:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FontMissing(
        f"no Japanese font for weight {weight!r}: install the noto-cjk-sans-jp-{weight} package "
        "(a project dependency) or Debian's fonts-noto-cjk"
    )


@functools.cache
def font(size: int, weight: Weight = "regular") -> ImageFont.FreeTypeFont:
    """A loaded face at `size` pixels; cached because loading a CJK face takes tens of milliseconds."""
    if size <= 0:
        raise ValueError(f"font size must be positive, got {size}")
    return ImageFont.truetype(str(font_path(weight)), size)
