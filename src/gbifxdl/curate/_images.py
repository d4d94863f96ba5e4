"""The images behind rows, decoded small: the pixel stage of near-duplicate confirmation, and thumbnails.

A row's image is its file (``path``, folders layout) or its sample in a tar shard (``shard``
and ``key``, WebDataset), or the same in the set-aside folder when an earlier curation
removed it. It is decoded at reduced scale (JPEG DCT scaling through Pillow's ``draft``),
turned as displayed (EXIF orientation), and box-resampled to ``side`` x ``side`` YCbCr:
the aspect ratio is dropped, as in the signatures, so a crop is only a stretch and a shift.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gbifxdl._locate import ImageLocator


def pixels_of(data: bytes, side: int) -> tuple[np.ndarray, int] | None:
    """Return the image in ``data`` as (side, side, 3) uint8 YCbCr and its shorter side in pixels (an
    image smaller than ``side`` holds less detail than the array), or None when it cannot be decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            shorter = min(img.size)
            img.draft("RGB", (side * 2, side * 2))  # JPEG: decoded in the DCT at 1/2 to 1/8 scale
            img = ImageOps.exif_transpose(img)
            img = img.convert("RGB").resize((side, side), Image.BOX, reducing_gap=3.0)
            return np.asarray(img.convert("YCbCr"), dtype=np.uint8), shorter
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def thumbnail_jpeg(data: bytes, size: int, quality: int) -> bytes | None:
    """Return the image in ``data`` as a JPEG at most ``size`` pixels a side, upright (its EXIF
    orientation applied), or None when it cannot be decoded (the report's and the review's thumbnails)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decoded in the DCT at a reduced scale
            small = ImageOps.exif_transpose(img).convert("RGB")
            small.thumbnail((size, size))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality)
    return out.getvalue()


class ImageReader:
    """Reads the images of rows of one dataset folder as small pixel arrays (found by :class:`ImageLocator`:
    in the dataset or set aside; each shard indexed once)."""

    def __init__(self, root: Path, side: int) -> None:
        self.locator = ImageLocator(root)
        self.side = side

    def data(self, path: str | None, shard: str | None, key: str | None) -> bytes | None:
        """Return the bytes of a row's image (in the dataset or set aside), or None when it cannot be found."""
        return self.locator.data(path, shard, key)

    def read(self, path: str | None, shard: str | None, key: str | None) -> tuple[np.ndarray, int] | None:
        """Return a row's image as (side, side, 3) YCbCr and its shorter side, or None when it cannot be
        found or decoded."""
        data = self.data(path, shard, key)
        return None if data is None else pixels_of(data, self.side)
