"""Turn downloaded bytes into the written image and its measurements (in the image processes).

The fast route, for baseline and most JPEGs: libjpeg-turbo decodes at a reduced scale in
the DCT (simplejpeg ``min_width``/``min_height``) to the smallest size not below the
target, then a box (area) resample reaches the exact target and libjpeg-turbo encodes.
Everything else (CMYK JPEGs, PNG, GIF, WebP, TIFF, ...) takes the general Pillow route,
with ``draft`` for JPEGs. EXIF orientation is applied after resizing (it is cheaper on
the small image) and every mode ends as RGB (alpha over white).

Widths and heights are as displayed (after EXIF orientation). The two pixel hashes:

- ``pixel_hash``: for a kept original, and only when asked (``pixel_hash=True``: it
  needs a full-resolution decode, several times the cost of the rest), sha256 of its
  decoded RGB pixels, as displayed (rows top to bottom, 3 bytes per pixel, no padding):
  two files with different bytes may hold the same pixels. Null otherwise; for a
  re-encoded image the encoder is deterministic, so its ``sha256`` stands for its pixels
  (and its size before processing, kept in a comment: see :func:`with_origin`).
- ``phash``: 64-bit DCT perceptual hash (see :func:`phash`) of the written file's pixels
  (of a DCT-scaled decode for a JPEG, kept or re-encoded), compared by Hamming distance; and
  ``chroma_hash``, the 128-bit colour hash that confirms it (see :func:`phashes`), and
  ``signature``, the 32x32 greyscale grid both come from, against which curation checks
  a hash match (see ``gbifxdl.fetch.hashing``).

A kept original is validated by decoding it whole: a JPEG in the DCT at reduced scale
(every byte of its entropy-coded data is read; libjpeg-turbo's warnings of corrupt or
missing data are errors), other formats fully.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import numpy as np
import simplejpeg
from PIL import Image

from gbifxdl._io import write_file
from gbifxdl.fetch.image_types import ImageFault, Processed, ProcessOptions
from gbifxdl.fetch.hashing import (  # noqa: F401  (phash: re-exported)
    ORIENTATION_TRANSPOSE, apply_orientation, fingerprints, jpeg_small, phash, phashes)

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


def _header_segments(jpeg: bytes) -> Iterator[tuple[int, int, int]]:
    """Yield a JPEG's header segments before its pixels (marker, start offset, end offset), in the first
    64 KiB: what the EXIF orientation and the comment :func:`with_origin` writes are read from."""
    pos = 2
    end = min(len(jpeg), 1 << 16)
    while pos + 4 <= end and jpeg[pos] == 0xFF:
        marker = jpeg[pos + 1]
        if marker in (0xDA, 0xD9):  # start of scan (or end of image): nothing of the header after it
            return
        stop = pos + 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        yield marker, pos, stop
        pos = stop


def _orientation(data: bytes) -> int:
    """Return the EXIF orientation of a JPEG (1 when absent), reading only its APP1 header."""
    for marker, start, stop in _header_segments(data):
        if marker == 0xE1 and data[start + 4:start + 10] == b"Exif\x00\x00":
            return _tiff_orientation(data[start + 10:stop])
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
        # the DCT-scaled decode reads (and, strict, validates) every byte of the entropy-coded
        # data like a full one, but makes a few thousand pixels, not millions: the hashes' input
        small = jpeg_small(data, orientation)
        pixel_hash = None
        if options.pixel_hash:
            pixel_hash = _pixel_hash(apply_orientation(simplejpeg.decode_jpeg(data, colorspace="RGB"), orientation))
        shown = _oriented(width, height, orientation)
        return data, _measure(data, "jpg", shown, shown, pixel_hash, fingerprints(small))
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
    elif not options.reencode and not options.pixel_hash and fmt == "JPEG":
        img.draft(img.mode, (64, 64))  # a kept CMYK JPEG: every byte decoded, few pixels made
    img.seek(0)
    img.load()
    rgb = _to_rgb(img)
    if options.reencode and rgb.size != (tw, th):
        rgb = rgb.resize((tw, th), Image.BOX, reducing_gap=2.0)
    shown = _transpose(rgb, orientation)
    original = _oriented(width, height, orientation)
    if options.reencode:
        return _encode(shown, options, original)
    pixel_hash = _pixel_hash(np.asarray(shown)) if options.pixel_hash else None
    return data, _measure(data, _EXTENSIONS.get(fmt, fmt.lower()), original, original, pixel_hash, fingerprints(shown))


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


def _transpose(img: Image.Image, orientation: int) -> Image.Image:
    """Return ``img`` as displayed under EXIF ``orientation``."""
    method = ORIENTATION_TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


def _oriented(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _encode(img: Image.Image, options: ProcessOptions, original: tuple[int, int]) -> tuple[bytes, Processed]:
    """Return the JPEG of ``img`` (RGB, as displayed) and its measurements.

    The JPEG carries ``original`` (the size before processing) in a comment. ``pixel_hash``
    stays null: the encoder is deterministic, so the sha256 of the written bytes already
    tells identical pixels apart from different ones, and hashing the pixels again cost a
    twentieth of the whole work. The pHash, colour hash and signature are of the written
    JPEG, decoded at reduced scale as a kept JPEG is: a function of the file alone.
    """
    out = with_origin(simplejpeg.encode_jpeg(np.asarray(img), quality=options.jpeg_quality, colorspace="RGB",
                                             colorsubsampling="420"), original)
    # the fingerprints of the written file, as a kept JPEG's: a re-encoded file found without
    # its journal line (issue 20, item 8) is measured again exactly (fetch.adopt)
    return out, _measure(out, "jpg", original, img.size, None, fingerprints(jpeg_small(out, 1)))


# the JPEG comment of a re-encoded image: its size before processing, which the file alone
# no longer tells (read back by fetch.adopt when a killed run's file is taken up)
ORIGIN_PREFIX = b"gbifxdl orig="


def with_origin(jpeg: bytes, original: tuple[int, int]) -> bytes:
    """Return ``jpeg`` with a comment (COM) segment ``gbifxdl orig=WxH`` after its JFIF header."""
    payload = ORIGIN_PREFIX + f"{original[0]}x{original[1]}".encode()
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":  # APP0 (JFIF) must come first: the comment goes after it
        pos = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:pos] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[pos:]


def _origin_segment(jpeg: bytes) -> tuple[int, int] | None:
    """Return where the comment :func:`with_origin` wrote sits in ``jpeg`` (start and end offsets), or None."""
    for marker, start, stop in _header_segments(jpeg):
        if marker == 0xFE and jpeg[start + 4:start + 4 + len(ORIGIN_PREFIX)] == ORIGIN_PREFIX:
            return start, stop
    return None


def origin_of(jpeg: bytes) -> tuple[int, int] | None:
    """Return the size before processing that :func:`with_origin` wrote into ``jpeg``, or None."""
    segment = _origin_segment(jpeg)
    if segment is None:
        return None
    width, _, height = jpeg[segment[0] + 4 + len(ORIGIN_PREFIX):segment[1]].decode("ascii", "replace").partition("x")
    return (int(width), int(height)) if width.isdigit() and height.isdigit() else None


def without_origin(jpeg: bytes) -> bytes:
    """Return ``jpeg`` without the comment :func:`with_origin` wrote (the same object when it has none): the
    bytes an older gbifxdl wrote, whose sha256 a manifest made then recorded."""
    segment = _origin_segment(jpeg)
    return jpeg if segment is None else jpeg[:segment[0]] + jpeg[segment[1]:]


def _pixel_hash(pixels: np.ndarray) -> str:
    """Return the sha256 of RGB pixels (rows top to bottom, 3 bytes per pixel, no padding)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(pixels)).cast("B")).hexdigest()


def _measure(out: bytes, ext: str, original: tuple[int, int], final: tuple[int, int], pixel_hash: str | None,
             perceptual: tuple[int, int | None, bytes]) -> Processed:
    return Processed(ext=ext, orig_width=original[0], orig_height=original[1], width=final[0], height=final[1],
                     bytes=len(out), sha256=hashlib.sha256(out).hexdigest(), pixel_hash=pixel_hash,
                     phash=perceptual[0], chroma_hash=perceptual[1], signature=perceptual[2].hex())
