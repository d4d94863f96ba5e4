"""Perceptual hashes of processed images (computed in the image processes).

``phash`` is a 64-bit DCT hash of an *area-averaged* 32x32 greyscale image: every pixel
counts, so the same photo at another resolution, JPEG quality or with a few percent
cropped gives nearly the same hash (bench/dedupe.py measures it). Its top bit (the DC
coefficient's, which carries no information after the median split) is always 1: it
marks this definition, so curation can tell it from the hashes of datasets fetched
before it (``legacy_phash``, whose top bit is always 0, which sampled the nearest pixel
of a 128x128 grid and was unstable across resolutions).

``chroma_hash`` confirms it with what ``phash`` never sees, colour: of the Cb and Cr planes
area-averaged to 32x32, the 8x8 lowest DCT frequencies split at their median, and the sign
of each plane's mean (128 bits). Two different photos that meet by chance in ``phash``
(the same layout of light and dark) rarely have the same layout of colour too; a copy
keeps both. Curation removes a ``phash`` match only if the chroma hashes agree as well
(bench/dedupe.py measures it). ``phashes`` computes both from the same pixels. Grey
images get no chroma hash (its bits would be noise): curation relies on ``phash`` for them.

``signature`` is what a hash match is checked against: the very 32x32 greyscale grid
``phash`` is computed from, rounded to bytes (1,024 per image; ``fingerprints`` gives all
three from the same pixels at no extra cost). Photos of one collection taken the same way
(herbarium sheets, pinned insects, camera-trap frames) often meet in both hashes; curation
confirms each candidate pair on these pixels (``gbifxdl.curate`` aligns the two and
compares them part by part), and on the image files where it can read them.
"""

from __future__ import annotations

import numpy as np
import simplejpeg
from PIL import Image

__all__ = ["CHROMA_MIN_SPREAD", "PHASH_VERSION_BIT", "SIGNATURE_SIDE", "chroma_hash", "fingerprints", "is_legacy",
           "jpeg_grey", "jpeg_small", "legacy_phash", "phash", "phashes", "signature"]

PHASH_VERSION_BIT = 1 << 63  # set in every `phash`, clear in every `legacy_phash`
_SIDE = 32  # the greyscale grid the DCT runs on
SIGNATURE_SIDE = _SIDE  # the signature is that grid, SIGNATURE_SIDE x SIGNATURE_SIDE bytes


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT8x32 = _dct_matrix(_SIDE)[:8]  # the 8 lowest frequencies of a 32-point DCT-II
# below this standard deviation (in 0..255 levels) of both chroma planes over the 32x32 grid
# an image is grey: its chroma bits would be JPEG noise, so it gets no chroma hash
CHROMA_MIN_SPREAD = 1.0
_TO_CHROMA = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])  # ITU-R 601 Cb, Cr


def _bits(grey32: np.ndarray) -> np.ndarray:
    """Return the 64 median-split bits of the 8x8 lowest DCT frequencies of a 32x32 grid."""
    block = (_DCT8x32 @ grey32 @ _DCT8x32.T).ravel()
    return block > np.sort(block[1:])[31]  # the median of the 63 non-DC values is the 32nd


def _image(pixels: np.ndarray | Image.Image) -> Image.Image:
    return pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels))


def _grey(pixels: np.ndarray | Image.Image) -> Image.Image:
    img = _image(pixels)
    return img if img.mode == "L" else img.convert("L")


def _grid(img: Image.Image) -> np.ndarray:
    """Return the 32x32 area average of one band (any size above 512 px first reduced, see ``phash``)."""
    factor = min(img.size) // (8 * _SIDE)
    if factor >= 2:
        img = img.reduce(factor)
    return np.asarray(img.resize((_SIDE, _SIDE), Image.BOX), dtype=np.float64)


def _phash64(grid: np.ndarray) -> int:
    bits = _bits(grid)
    bits[0] = True
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _chroma(img: Image.Image) -> int | None:
    if img.mode not in ("RGB", "YCbCr"):
        return None  # greyscale pixels: no colour to hash
    # chroma is an affine function of RGB, so averaging RGB first gives the same 32x32 planes
    # (in floats, unrounded) for a third of the work of converting every pixel
    rgb = _grid(img if img.mode == "RGB" else img.convert("RGB")) @ _TO_CHROMA.T
    grids = [rgb[:, :, 0] + 128, rgb[:, :, 1] + 128]  # Cb, Cr
    if max(grid.std() for grid in grids) < CHROMA_MIN_SPREAD:
        return None  # grey in colour's clothing (a scan, a monochrome camera)
    bits = []
    for grid in grids:
        block = (_DCT8x32 @ grid @ _DCT8x32.T).ravel()
        ac = block[1:] > np.sort(block[1:])[31]
        bits.append(np.concatenate([[grid.mean() > 128], ac]))  # the mean's side of neutral, then 63 AC bits
    return int.from_bytes(np.packbits(np.concatenate(bits)).tobytes(), "big")


def phash(pixels: np.ndarray | Image.Image) -> int:
    """Return the 64-bit perceptual hash of RGB or greyscale pixels (compare by Hamming distance).

    Greyscale (ITU-R 601 luma), a box (area) resample to 32x32 (the aspect ratio is
    dropped), a 2-D DCT-II, and of its top-left 8x8 block one bit per coefficient: above
    the median of the 63 non-DC ones. The DC bit is replaced by the version bit (1).
    Images of more than 512 px a side are first box-reduced by an integer factor to at
    least 256 px (as accurate, much cheaper); a smaller factor is not: its partial edge
    cells weigh as much as whole ones, and cost up to 8 bits between two resolutions.
    """
    return _phash64(_grid(_grey(pixels)))


def chroma_hash(pixels: np.ndarray | Image.Image) -> int | None:
    """Return the 128-bit colour hash of RGB pixels (an int below 2**128), or None for grey ones.

    For the Cb, then the Cr plane (ITU-R 601), area-averaged to 32x32 like ``phash``: one
    bit for the plane's mean above neutral (128), then the 63 non-DC coefficients of its
    8x8 lowest DCT frequencies, each above their median. None when neither plane varies by
    ``CHROMA_MIN_SPREAD`` levels (its bits would be noise): curation then relies on ``phash``.
    """
    return _chroma(_image(pixels))


def phashes(pixels: np.ndarray | Image.Image) -> tuple[int, int | None]:
    """Return (``phash``, ``chroma_hash``) of the same pixels."""
    img = _image(pixels)
    return _phash64(_grid(_grey(img))), _chroma(img)


def _signature(grid: np.ndarray) -> bytes:
    return np.clip(np.rint(grid), 0, 255).astype(np.uint8).tobytes()


def signature(pixels: np.ndarray | Image.Image) -> bytes:
    """Return the pixel signature of RGB or greyscale pixels: 1,024 bytes, the 32x32 area-averaged
    greyscale grid of ``phash`` (rows top to bottom), each cell rounded to 0..255."""
    return _signature(_grid(_grey(pixels)))


def fingerprints(pixels: np.ndarray | Image.Image) -> tuple[int, int | None, bytes]:
    """Return (``phash``, ``chroma_hash``, ``signature``) of the same pixels (one greyscale grid for two)."""
    img = _image(pixels)
    grid = _grid(_grey(img))
    return _phash64(grid), _chroma(img), _signature(grid)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Return the number of set bits of each uint64 of ``x`` (uint8): the distance of two hashes is
    ``popcount64(a ^ b)``, summed over the words of a longer one."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # pragma: no cover - numpy < 2
    return table[np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(*x.shape, 8)].sum(
        axis=-1, dtype=np.uint8)  # pragma: no cover - numpy < 2


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
    return apply_orientation(grey, orientation)


def jpeg_small(data: bytes, orientation: int) -> np.ndarray:
    """Return a small (>= 64 px) RGB decode of a JPEG, as displayed: both hashes' input for a kept JPEG.

    Greyscale JPEGs give greyscale pixels (2-D).
    """
    # decoded in the DCT at reduced scale, like ``jpeg_grey``: the colour costs little there
    if simplejpeg.decode_jpeg_header(data)[2] == "Gray":
        return jpeg_grey(data, orientation)
    return apply_orientation(simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=64, min_height=64), orientation)


# EXIF orientation -> the transposition that shows the image as displayed
ORIENTATION_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                         6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                         8: Image.Transpose.ROTATE_90}


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Return ``pixels`` as displayed under EXIF ``orientation`` (no copy for the identity)."""
    method = ORIENTATION_TRANSPOSE.get(orientation)
    return pixels if method is None else np.asarray(Image.fromarray(pixels).transpose(method))
