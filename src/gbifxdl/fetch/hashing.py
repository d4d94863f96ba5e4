"""Perceptual hashes of processed images (computed in the image workers).

``phash`` is a 64-bit DCT hash of an *area-averaged* 32x32 greyscale image: every pixel
counts, so the same photo at another resolution, JPEG quality or with a few percent
cropped gives nearly the same hash (bench/dedupe.py measures it). Its top bit (the DC
coefficient's, which carries no information after the median split) is always 1: it
marks this definition, so curation can tell it from the hashes of datasets fetched
before it (``legacy_phash``, whose top bit is always 0, which sampled the nearest pixel
of a 128x128 grid and was unstable across resolutions).

``phash256`` confirms it: from the same 32x32 grid, the 16x16 lowest DCT frequencies
split at their median (256 bits). A 64-bit hash within a few bits of another is a
candidate; curation removes it only if the 256-bit hashes agree too (``phashes``
computes both for the cost of one).
"""

from __future__ import annotations

import numpy as np
import simplejpeg
from PIL import Image

__all__ = ["PHASH_VERSION_BIT", "is_legacy", "jpeg_grey", "legacy_phash", "phash", "phash256", "phashes"]

PHASH_VERSION_BIT = 1 << 63  # set in every `phash`, clear in every `legacy_phash`
_SIDE = 32  # the greyscale grid the DCT runs on


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT8x32 = _dct_matrix(_SIDE)[:8]  # the 8 lowest frequencies of a 32-point DCT-II
_DCT16x32 = _dct_matrix(_SIDE)[:16]  # the 16 lowest: the confirming hash's


def _bits(grey32: np.ndarray) -> np.ndarray:
    """Return the 64 median-split bits of the 8x8 lowest DCT frequencies of a 32x32 grid."""
    block = (_DCT8x32 @ grey32 @ _DCT8x32.T).ravel()
    return block > np.sort(block[1:])[31]  # the median of the 63 non-DC values is the 32nd


def _grey(pixels: np.ndarray | Image.Image) -> Image.Image:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels))
    return img if img.mode == "L" else img.convert("L")


def _grid(pixels: np.ndarray | Image.Image) -> np.ndarray:
    """Return the 32x32 area-averaged greyscale grid both hashes are computed on."""
    grey = _grey(pixels)
    factor = min(grey.size) // (8 * _SIDE)
    if factor >= 2:
        grey = grey.reduce(factor)
    return np.asarray(grey.resize((_SIDE, _SIDE), Image.BOX), dtype=np.float64)


def _phash64(grid: np.ndarray) -> int:
    bits = _bits(grid)
    bits[0] = True
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _phash256(grid: np.ndarray) -> int:
    block = (_DCT16x32 @ grid @ _DCT16x32.T).ravel()
    bits = block > np.median(block[1:])  # the DC carries only brightness: left out of the median
    bits[0] = True
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash(pixels: np.ndarray | Image.Image) -> int:
    """Return the 64-bit perceptual hash of RGB or greyscale pixels (compare by Hamming distance).

    Greyscale (ITU-R 601 luma), a box (area) resample to 32x32 (the aspect ratio is
    dropped), a 2-D DCT-II, and of its top-left 8x8 block one bit per coefficient: above
    the median of the 63 non-DC ones. The DC bit is replaced by the version bit (1).
    Images of more than 512 px a side are first box-reduced by an integer factor to at
    least 256 px (as accurate, much cheaper); a smaller factor is not: its partial edge
    cells weigh as much as whole ones, and cost up to 8 bits between two resolutions.
    """
    return _phash64(_grid(pixels))


def phash256(pixels: np.ndarray | Image.Image) -> int:
    """Return the 256-bit confirming hash (an int below 2**256; compare by Hamming distance).

    The same 32x32 grid as ``phash``; of its DCT's top-left 16x16 block one bit per
    coefficient, above the median of the 255 non-DC ones (bit 255, the DC's, is always 1).
    Three quarters of its bits are frequencies ``phash`` does not see, so two different
    photos that meet by chance in ``phash`` rarely meet here too.
    """
    return _phash256(_grid(pixels))


def phashes(pixels: np.ndarray | Image.Image) -> tuple[int, int]:
    """Return (``phash``, ``phash256``) of the pixels: one grid, two small matrix products."""
    grid = _grid(pixels)
    return _phash64(grid), _phash256(grid)


def is_legacy(value: int) -> bool:
    """Tell whether a stored hash is a ``legacy_phash`` (datasets fetched before ``phash``)."""
    return not value & PHASH_VERSION_BIT


_GRID = 128  # legacy: pixels sampled per side before averaging (4x4 per cell)


def legacy_phash(pixels: np.ndarray | Image.Image) -> int:
    """Return the first definition of the hash (top bit 0), kept to compare against in the bench.

    A 128x128 grid of nearest pixels averaged 4x4 down to 32x32, greyscale, DCT, median
    split, DC bit 0. Nearest sampling makes it depend on the resolution: the same photo
    at two sizes differs by 6 to 12 bits.
    """
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels))
    grey = img.resize((_GRID, _GRID), Image.NEAREST).reduce(_GRID // _SIDE).convert("L")
    bits = _bits(np.asarray(grey, dtype=np.float64))
    bits[0] = False
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def jpeg_grey(data: bytes, orientation: int) -> np.ndarray:
    """Return a small (>= 64 px) greyscale decode of a JPEG, as displayed: the hash's input for a kept JPEG."""
    # decoded in the DCT at reduced scale (an area average of 8x8 blocks at most): the
    # 32x32 grid needs no more detail
    grey = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_width=64, min_height=64)
    grey = grey[:, :, 0] if grey.ndim == 3 else grey
    return _oriented(grey, orientation)


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _oriented(pixels: np.ndarray, orientation: int) -> np.ndarray:
    method = _TRANSPOSE.get(orientation)
    return pixels if method is None else np.asarray(Image.fromarray(pixels).transpose(method))
