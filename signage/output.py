"""Where rendered frames go: PNG files, and a Linux framebuffer such as `/dev/fb0`.

Owns pixel-format conversion (RGB565, XRGB8888) and rectangle writes, so that a call redraws and
writes only the rows and columns of the call area. The framebuffer's geometry is read from sysfs
(`virtual_size`, `bits_per_pixel`, `stride`); tests point it at a regular file and a fake sysfs
directory. PNG encoding is slow (tens of milliseconds at 1080p): it is never on the call path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from signage.legibility import Rect

SYSFS_FB = Path("/sys/class/graphics")


class FramebufferError(RuntimeError):
    """A framebuffer that cannot be used; the message names the device and the problem."""


def write_png(image: Image.Image, path: Path) -> None:
    """Write `image` as PNG to `path` through a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".partial")
    try:
        image.save(tmp, format="PNG", optimize=False, compress_level=3)
        os.replace(tmp, path)
    except BaseException:  # leave no .partial behind
        tmp.unlink(missing_ok=True)
        raise


# RGB565 in two passes per byte: a lookup table per channel moves each channel's bits to where they
# go in that byte, then a matrix conversion adds the channels (the bits never overlap, so the sum is
# the bitwise or, and exact). Low byte GGGBBBBB, high byte RRRRRGGG.
_LOW = [0] * 256 + [((v >> 2) & 0x07) << 5 for v in range(256)] + [v >> 3 for v in range(256)]
_HIGH = [v & 0xF8 for v in range(256)] + [v >> 5 for v in range(256)] + [0] * 256


def to_rgb565(image: Image.Image) -> bytes:
    """Little-endian RGB565 pixels of an RGB image, row by row."""
    rgb = image.convert("RGB")
    low = rgb.point(_LOW).convert("L", matrix=(0.0, 1.0, 1.0, 0.0))
    high = rgb.point(_HIGH).convert("L", matrix=(1.0, 1.0, 0.0, 0.0))
    return Image.merge("LA", (low, high)).tobytes()


def to_xrgb8888(image: Image.Image) -> bytes:
    """Little-endian XRGB8888 pixels (bytes B, G, R, X) of an RGB image, row by row."""
    return image.convert("RGB").tobytes("raw", "BGRX")


@dataclass(frozen=True, slots=True)
class FbGeometry:
    width: int
    height: int
    bits_per_pixel: int
    stride: int  # bytes per row, at least width × bytes per pixel

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8


def read_geometry(sysfs: Path) -> FbGeometry:
    """The geometry of the framebuffer whose sysfs directory is `sysfs` (e.g. /sys/class/graphics/fb0)."""

    def read(name: str) -> str:
        try:
            return (sysfs / name).read_text().strip()
        except OSError as exc:
            raise FramebufferError(f"{sysfs / name}: cannot be read: {exc.strerror or exc}") from None

    try:
        width, height = (int(v) for v in read("virtual_size").split(","))
        bpp = int(read("bits_per_pixel"))
        stride = int(read("stride"))
    except ValueError:
        raise FramebufferError(f"{sysfs}: virtual_size, bits_per_pixel or stride is not a number") from None
    if bpp not in (16, 32):
        raise FramebufferError(f"{sysfs}: {bpp} bits per pixel; only RGB565 (16) and XRGB8888 (32) are supported")
    if width <= 0 or height <= 0 or stride < width * bpp // 8:
        raise FramebufferError(f"{sysfs}: stride {stride} is too small for {width} pixels of {bpp} bits")
    return FbGeometry(width, height, bpp, stride)


class Framebuffer:
    """A framebuffer device (or any file of its size) and its geometry.

    `write(image)` writes a whole frame; `write_rect(image, rect)` only the rectangle `rect` of it,
    row by row at the stride, which is what a call costs. The image must have the framebuffer's
    size: a board of another size is a configuration error, not something to scale silently."""

    def __init__(self, device: Path, sysfs: Path | None = None) -> None:
        self.device = device
        self.geometry = read_geometry(sysfs or SYSFS_FB / device.name)
        try:
            self._fd = os.open(device, os.O_RDWR)
        except OSError as exc:
            raise FramebufferError(f"{device}: cannot be opened for writing: {exc.strerror or exc}") from None
        self._convert = to_rgb565 if self.geometry.bits_per_pixel == 16 else to_xrgb8888

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Framebuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, image: Image.Image) -> None:
        g = self.geometry
        if image.size != (g.width, g.height):
            raise FramebufferError(
                f"{self.device}: a {image.width}x{image.height} image does not match the {g.width}x{g.height} screen"
            )

    def write(self, image: Image.Image) -> None:
        self.write_rect(image, (0, 0, *image.size))

    def write_rect(self, image: Image.Image, rect: Rect) -> None:
        self._check(image)
        g = self.geometry
        x0, y0 = max(0, rect[0]), max(0, rect[1])
        x1, y1 = min(g.width, rect[2]), min(g.height, rect[3])
        if x0 >= x1 or y0 >= y1:
            return
        data = self._convert(image.crop((x0, y0, x1, y1)))
        row = (x1 - x0) * g.bytes_per_pixel
        if x0 == 0 and x1 == g.width and g.stride == row:
            os.pwrite(self._fd, data, y0 * g.stride)  # whole rows: one write
            return
        for i in range(y1 - y0):
            os.pwrite(self._fd, data[i * row : (i + 1) * row], (y0 + i) * g.stride + x0 * g.bytes_per_pixel)
