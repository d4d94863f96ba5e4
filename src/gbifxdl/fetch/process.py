"""Turn downloaded bytes into the written image and its measurements (in worker processes).

The fast route, for baseline and most JPEGs: libjpeg-turbo decodes at a reduced scale in
the DCT (simplejpeg ``min_width``/``min_height``) to the smallest size not below the
target, then a box (area) resample reaches the exact target and libjpeg-turbo encodes.
Everything else (CMYK JPEGs, PNG, GIF, WebP, TIFF, ...) takes the general Pillow route,
with ``draft`` for JPEGs. EXIF orientation is applied after resizing (it is cheaper on
the small image) and every mode ends as RGB (alpha over white).

Widths and heights are as displayed (after EXIF orientation). The two pixel hashes:

- ``pixel_hash``: for a kept original only, sha256 of its decoded RGB pixels, as
  displayed (rows top to bottom, 3 bytes per pixel, no padding): two files with
  different bytes may hold the same pixels. Null for a re-encoded image: the encoder is
  deterministic, so its ``sha256`` already stands for its pixels.
- ``phash``: 64-bit DCT perceptual hash (see :func:`phash`) of the final pixels (of a
  DCT-scaled greyscale decode for a kept JPEG), compared by Hamming distance.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import simplejpeg
from PIL import Image

from gbifxdl._io import write_file
from gbifxdl.fetch.image_types import ImageFault, Processed, ProcessOptions

# we check pixel counts ourselves, before decoding, with our own limit
Image.MAX_IMAGE_PIXELS = None

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "TIFF": "tif",
               "BMP": "bmp", "MPO": "jpg"}


def process_to_file(data: bytes, path: str, options: ProcessOptions) -> Processed:
    """Return the measurements of the image made from the downloaded ``data``, written to
    ``path`` (a temporary name: the bytes to keep, the original or a re-encoding).

    Raises :class:`ImageFault` (``not_image``, ``corrupt``, ``decompression_bomb``).
    """
    out, processed = process_bytes(data, options)
    write_file(path, [out])
    return processed


def process_bytes(data: bytes, options: ProcessOptions) -> tuple[bytes, Processed]:
    """Return (bytes to write, measurements) for one downloaded image."""
    kind = _image_kind(data)
    try:
        if kind == "JPEG":
            result = _jpeg_route(data, options)
            if result is not None:
                return result
        return _pillow_route(data, options)
    except ImageFault:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, Image.DecompressionBombError) as exc:
        raise ImageFault("corrupt", f"cannot decode the image: {exc}") from None


def _image_kind(data: bytes) -> str:
    kind = sniff(data)
    if kind is None:
        what = "an HTML page" if data.lstrip()[:1] == b"<" else f"bytes starting {data[:8]!r}"
        raise ImageFault("not_image", f"not an image: {what}")
    return kind


def sniff(data: bytes) -> str | None:
    """Return the image format named by the first bytes (Pillow's name), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    return None


def target_size(width: int, height: int, resize: int | None, mode: str) -> tuple[int, int]:
    """Return the size after resizing (never larger than the original)."""
    if resize is None:
        return width, height
    side = max(width, height) if mode == "longest" else min(width, height)
    if side <= resize:
        return width, height
    scale = resize / side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_pixels(width: int, height: int, options: ProcessOptions) -> None:
    if width * height > options.max_pixels:
        raise ImageFault("decompression_bomb",
                         f"{width}x{height} pixels is over the limit of {options.max_pixels} (max_pixels)")


def _orientation(data: bytes) -> int:
    """Return the EXIF orientation of a JPEG (1 when absent), reading only its APP1 header."""
    pos = 2
    end = min(len(data), 1 << 16)
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            return _tiff_orientation(data[pos + 10:pos + 2 + length])
        if marker in (0xDA, 0xD9):  # start of scan: no EXIF before the pixels
            break
        pos += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)  # type: ignore[arg-type]
    if ifd + 2 > len(tiff):
        return 1
    count = int.from_bytes(tiff[ifd:ifd + 2], order)  # type: ignore[arg-type]
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            break
        if int.from_bytes(tiff[entry:entry + 2], order) == 0x0112:  # type: ignore[arg-type]
            value = int.from_bytes(tiff[entry + 8:entry + 10], order)  # type: ignore[arg-type]
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_route(data: bytes, options: ProcessOptions) -> tuple[bytes, Processed] | None:
    height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    _check_pixels(width, height, options)
    if colorspace not in ("YCbCr", "Gray", "RGB"):
        return None  # CMYK / YCCK: Pillow handles the colour conversion
    orientation = _orientation(data)
    tw, th = target_size(width, height, options.resize, options.resize_mode)
    if not options.reencode:
        pixels = _apply_orientation(simplejpeg.decode_jpeg(data, colorspace="RGB"), orientation)
        return data, _measure(data, "jpg", _oriented(width, height, orientation), pixels.shape[1::-1],
                              _pixel_hash(pixels), phash(jpeg_grey(data, orientation)))
    # fast chroma upsampling: the box resample and the 4:2:0 encode that follow average
    # chroma again, so the fancy filter would buy nothing visible
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=tw, min_height=th, fastupsample=True)
    img = Image.fromarray(pixels)
    if img.size != (tw, th):
        img = img.resize((tw, th), Image.BOX)
    return _encode(_transpose(img, orientation), options, _oriented(width, height, orientation))


def _pillow_route(data: bytes, options: ProcessOptions) -> tuple[bytes, Processed]:
    img = Image.open(io.BytesIO(data))
    width, height = img.size
    _check_pixels(width, height, options)
    fmt = img.format or "JPEG"
    orientation = int(img.getexif().get(0x0112, 1) or 1)
    tw, th = target_size(width, height, options.resize, options.resize_mode)
    if options.reencode and fmt == "JPEG" and (tw, th) != (width, height):
        img.draft("RGB", (tw, th))
    img.seek(0)
    img.load()
    rgb = _to_rgb(img)
    if options.reencode and rgb.size != (tw, th):
        rgb = rgb.resize((tw, th), Image.BOX, reducing_gap=2.0)
    shown = _transpose(rgb, orientation)
    original = _oriented(width, height, orientation)
    if options.reencode:
        return _encode(shown, options, original)
    pixels = np.asarray(shown)
    return data, _measure(data, _EXTENSIONS.get(fmt, fmt.lower()), original, shown.size, _pixel_hash(pixels),
                          phash(shown))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Return ``img`` as RGB: alpha composited over white, 16-bit scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.uint32)
        top = 65535 if img.mode.startswith("I;16") or arr.max() > 255 else 255
        return Image.fromarray((arr * 255 // top).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        arr = np.clip(np.asarray(img), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info or img.mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB") if img.mode != "RGB" else img


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _transpose(img: Image.Image, orientation: int) -> Image.Image:
    """Return ``img`` as displayed under EXIF ``orientation``."""
    method = _TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Return ``pixels`` as displayed (no copy when the orientation is the identity)."""
    if orientation not in _TRANSPOSE:
        return pixels
    return np.asarray(_transpose(Image.fromarray(pixels), orientation))


def _oriented(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _encode(img: Image.Image, options: ProcessOptions, original: tuple[int, int]) -> tuple[bytes, Processed]:
    """Return the JPEG of ``img`` (RGB, as displayed) and its measurements.

    ``pixel_hash`` stays null: the encoder is deterministic, so the sha256 of the written
    bytes already tells identical pixels apart from different ones, and hashing the
    pixels again cost a twentieth of the whole work. The pHash is of the pixels given
    to the encoder (it ignores the JPEG loss anyway).
    """
    out = simplejpeg.encode_jpeg(np.asarray(img), quality=options.jpeg_quality, colorspace="RGB",
                                 colorsubsampling="420")
    return out, _measure(out, "jpg", original, img.size, None, phash(img))


def jpeg_grey(data: bytes, orientation: int) -> np.ndarray:
    """Return a small (>= 64 px) greyscale decode of a JPEG, as displayed: the pHash input."""
    # decoded in the DCT at reduced scale: the 32x32 pHash grid needs no more detail
    grey = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_width=64, min_height=64)
    return _apply_orientation(grey[:, :, 0] if grey.ndim == 3 else grey, orientation)


def _pixel_hash(pixels: np.ndarray) -> str:
    """Return the sha256 of RGB pixels (rows top to bottom, 3 bytes per pixel, no padding)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(pixels)).cast("B")).hexdigest()


def _measure(out: bytes, ext: str, original: tuple[int, int], final: tuple[int, int], pixel_hash: str | None,
             perceptual: int) -> Processed:
    return Processed(ext=ext, orig_width=original[0], orig_height=original[1], width=final[0], height=final[1],
                     bytes=len(out), sha256=hashlib.sha256(out).hexdigest(), pixel_hash=pixel_hash,
                     phash=perceptual)


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT8x32 = _dct_matrix(32)[:8]  # the 8 lowest frequencies of a 32-point DCT-II
_GRID = 128                      # pixels sampled per side before averaging (4x4 per cell)


def phash(pixels: np.ndarray | Image.Image) -> int:
    """Return the 64-bit DCT perceptual hash of RGB or greyscale pixels (compare by Hamming distance).

    The image is sampled on a 128x128 grid (nearest pixel; the aspect ratio is dropped),
    averaged 4x4 down to 32x32 and made greyscale, then a 2-D DCT-II; of its top-left 8x8
    block each bit says whether the coefficient is above the median of the 63 non-DC
    ones (the DC bit is always 0). Sampling touches a 128x128 grid whatever the image's
    size: about a tenth of the cost of averaging every pixel, and as stable under
    re-encoding and resizing (measured on the bench images).
    """
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels))
    grey = img.resize((_GRID, _GRID), Image.NEAREST).reduce(_GRID // 32).convert("L")
    block = (_DCT8x32 @ np.asarray(grey, dtype=np.float64) @ _DCT8x32.T).ravel()
    bits = block > np.sort(block[1:])[31]  # the median of 63 values is the 32nd
    bits[0] = False
    return int.from_bytes(np.packbits(bits).tobytes(), "big")
