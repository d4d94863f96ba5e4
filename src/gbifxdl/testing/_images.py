"""Deterministic synthetic photos (and selections of their URLs) for the image hosts and benchmarks.

An image is derived from an integer id only: a smooth colour gradient, a few filled
shapes and sensor-like noise, so that resizing, JPEG encoding and perceptual hashes
behave as on real photos. Near-identical variants are re-encoded or resized copies of
the same base image.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# id % 50 -> format; the rest are plain baseline JPEGs (most real GBIF media are JPEG)
_SPECIAL_FORMATS = {0: "png-alpha", 1: "cmyk-jpeg", 2: "gif", 3: "webp", 4: "tiff",
                    5: "jpeg-exif-rotated", 6: "jpeg-progressive", 7: "png-16bit"}

FORMATS = ("jpeg",) + tuple(_SPECIAL_FORMATS.values())


def photo_id(text: str) -> int:
    """Return the image id a URL path names: the number itself, or a stable number for any other text."""
    try:
        return int(text)
    except ValueError:
        return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big")


def format_for(image_id: int) -> str:
    """Return the format name an id is served in (see ``FORMATS``)."""
    return _SPECIAL_FORMATS.get(image_id % 50, "jpeg")


def size_for(image_id: int, max_side: int, min_side: int = 64, *, exact: bool = False) -> tuple[int, int]:
    """Return the (width, height) of an id's image: a photo-like aspect, longest side <= max_side
    (exactly ``max_side`` with ``exact``)."""
    rng = np.random.default_rng([image_id, 7])
    longest = int(min_side + (max_side - min_side) * rng.random() ** 0.7)
    if exact:
        longest = max_side
    ratio = float(rng.choice([4 / 3, 3 / 2, 1.0, 16 / 9]))
    shortest = max(8, int(round(longest / ratio)))
    return (longest, shortest) if rng.random() < 0.7 else (shortest, longest)


def base_pixels(image_id: int, width: int, height: int) -> np.ndarray:
    """Return the RGB uint8 pixels of an id's base image at the given size."""
    rng = np.random.default_rng([image_id, 1])
    # a low-resolution random field upsampled smoothly gives photo-like gradients
    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(coarse, "RGB").resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(rng.integers(0, width, size=2).tolist())
        y0, y1 = sorted(rng.integers(0, height, size=2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1 + 1, y1 + 1], fill=colour)
        else:
            draw.rectangle([x0, y0, x1 + 1, y1 + 1], fill=colour)
    arr = np.asarray(img, dtype=np.int16)
    # noise from a small tile keeps generation cheap for 12-megapixel images
    tile = rng.integers(-6, 7, size=(min(height, 97), min(width, 101), 1), dtype=np.int16)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    noise = np.tile(tile, reps)[:height, :width]
    return np.clip(arr + noise, 0, 255).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt: str, quality: int = 90) -> tuple[bytes, str]:
    img = Image.fromarray(pixels, "RGB")
    buf = io.BytesIO()
    if fmt == "png-alpha":
        alpha = Image.linear_gradient("L").resize(img.size)
        img.putalpha(alpha)
        img.save(buf, "PNG", compress_level=1)
        return buf.getvalue(), "image/png"
    if fmt == "png-16bit":
        grey = (np.asarray(img.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        Image.fromarray(grey).save(buf, "PNG", compress_level=1)
        return buf.getvalue(), "image/png"
    if fmt == "cmyk-jpeg":
        img.convert("CMYK").save(buf, "JPEG", quality=quality)
        return buf.getvalue(), "image/jpeg"
    if fmt == "gif":
        img.convert("P", palette=Image.ADAPTIVE, colors=64).save(buf, "GIF")
        return buf.getvalue(), "image/gif"
    if fmt == "webp":
        img.save(buf, "WEBP", quality=80, method=0)
        return buf.getvalue(), "image/webp"
    if fmt == "tiff":
        img.save(buf, "TIFF", compression="tiff_deflate")
        return buf.getvalue(), "image/tiff"
    if fmt == "jpeg-exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
        img.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
        return buf.getvalue(), "image/jpeg"
    if fmt == "jpeg-progressive":
        img.save(buf, "JPEG", quality=quality, progressive=True)
        return buf.getvalue(), "image/jpeg"
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue(), "image/jpeg"


@lru_cache(maxsize=512)
def image_bytes(image_id: int, max_side: int = 800, variant: str = "original") -> tuple[bytes, str]:
    """Return (bytes, content type) of an id's image.

    ``variant``: ``original``; ``reencoded`` (same pixels, JPEG quality 70);
    ``resized`` (the same photo at 60% size, JPEG); ``jpeg`` (forced plain JPEG);
    ``side-N``: a JPEG rendition of the original whose longest side is N (never
    enlarged, as image hosts do); ``exact``: a plain JPEG whose longest side is exactly
    ``max_side``, and ``exact-side-N`` its renditions.
    """
    if variant.startswith(("side-", "exact-side-")):
        return _rendition(image_id, max_side, int(variant.rsplit("-", 1)[1]), variant.startswith("exact"))
    if variant == "exact":
        width, height = size_for(image_id, max_side, exact=True)
        return _encode(base_pixels(image_id, width, height), "jpeg", quality=90)
    width, height = size_for(image_id, max_side)
    pixels = base_pixels(image_id, width, height)
    if variant == "original":
        return _encode(pixels, format_for(image_id))
    if variant == "reencoded":
        return _encode(pixels, "jpeg", quality=70)
    if variant == "resized":
        small = Image.fromarray(pixels).resize((max(8, width * 3 // 5), max(8, height * 3 // 5)), Image.LANCZOS)
        return _encode(np.asarray(small), "jpeg")
    if variant == "jpeg":
        return _encode(pixels, "jpeg")
    raise ValueError(f"unknown image variant {variant!r}")


def _rendition(image_id: int, max_side: int, side: int, exact: bool) -> tuple[bytes, str]:
    """Return the JPEG rendition, longest side ``side`` (never enlarged), of an id's image."""
    width, height = size_for(image_id, max_side, exact=exact)
    img = Image.fromarray(base_pixels(image_id, width, height))
    scale = min(1.0, side / max(width, height))
    if scale < 1.0:
        img = img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)
    return _encode(np.asarray(img), "jpeg", quality=90)


def bomb_png(side: int = 30_000) -> bytes:
    """Return a tiny PNG declaring ``side`` x ``side`` greyscale pixels (a decompression bomb).

    Built in milliseconds: the image is all zeros, so one deflate block of rows (made
    independent by a full flush) repeats, and the Adler-32 of zeros has a closed form.
    """
    rows_per_block = 64
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = raw.compress(b"\x00" * ((side + 1) * rows_per_block)) + raw.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(side, rows_per_block)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    end = tail.compress(b"\x00" * ((side + 1) * rest)) + tail.flush(zlib.Z_FINISH)
    total = (side + 1) * side
    adler = ((total % 65521) << 16) | 1
    body = b"\x78\xda" + block * blocks + end + adler.to_bytes(4, "big")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@lru_cache(maxsize=1)
def cached_bomb() -> bytes:
    """Return the decompression bomb the image hosts serve (196 megapixels)."""
    return bomb_png(14_000)


def write_selection(path: str | Path, urls: Sequence[str], species: Sequence[int | None] | None = None,
                    provenance: dict[str, object] | None = None) -> Path:
    """Return ``path`` after writing a minimal selection Parquet (identifier, url_hash, speciesKey).

    For tests and benchmarks of the fetch stage without the GBIF emulator.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    species = list(species) if species is not None else [i % 5 for i in range(len(urls))]
    table = pa.table({
        "gbifID": pa.array(range(1, len(urls) + 1), pa.int64()),
        "identifier": pa.array(list(urls), pa.string()),
        "url_hash": pa.array([hashlib.sha1(u.encode()).hexdigest() for u in urls], pa.string()),
        "speciesKey": pa.array(species, pa.int64()),
    })
    if provenance is not None:
        table = table.replace_schema_metadata({"gbifxdl.provenance": json.dumps(provenance)})
    pq.write_table(table, path)
    return Path(path)
