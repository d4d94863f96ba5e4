"""Image processing: every input mode ends as a valid RGB JPEG of the right size, with hashes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageOps

from gbifxdl.fetch.process import ImageFault, ProcessOptions, process_bytes, target_size
from gbifxdl.testing._images import FORMATS, bomb_png, format_for, image_bytes, size_for

RESIZE = ProcessOptions(resize=128, reencode=True, jpeg_quality=90)


def _id_of(fmt: str) -> int:
    return next(i for i in range(100, 200) if format_for(i) == fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_becomes_an_rgb_jpeg_of_the_asked_size(fmt: str) -> None:
    image_id = _id_of(fmt)
    data, _ = image_bytes(image_id, 600)
    out, info = process_bytes(data, RESIZE)
    img = Image.open(io.BytesIO(out))
    img.load()
    assert img.format == "JPEG" and img.mode == "RGB"
    assert max(img.size) == 128 and img.size == (info.width, info.height)
    w, h = size_for(image_id, 600)
    if fmt == "jpeg-exif-rotated":
        w, h = h, w  # reported as displayed
    assert (info.orig_width, info.orig_height) == (w, h)
    assert info.bytes == len(out)


def test_exif_orientation_is_applied_to_the_pixels() -> None:
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate 90 degrees clockwise: the white half goes on top
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    out, info = process_bytes(buf.getvalue(), ProcessOptions(reencode=True))
    shown = simplejpeg.decode_jpeg(out)
    assert (info.width, info.height) == (40, 80)
    assert shown[:30].mean() > 200 and shown[50:].mean() < 50


def test_transparent_png_is_composited_over_white() -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)  # black, fully transparent
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    out, _ = process_bytes(buf.getvalue(), ProcessOptions(reencode=True))
    assert simplejpeg.decode_jpeg(out).mean() > 250


def test_resize_never_enlarges_and_shortest_mode_sizes_the_short_side() -> None:
    assert target_size(300, 200, 512, "longest") == (300, 200)
    assert target_size(3000, 2000, 512, "longest") == (512, 341)
    assert target_size(3000, 2000, 512, "shortest") == (768, 512)
    data, _ = image_bytes(_id_of("jpeg"), 300)
    _, info = process_bytes(data, ProcessOptions(resize=5000, reencode=True))
    assert (info.width, info.height) == (info.orig_width, info.orig_height)


@pytest.mark.parametrize("fmt", FORMATS)
def test_keeping_original_bytes_still_validates_and_measures(fmt: str) -> None:
    data, _ = image_bytes(_id_of(fmt), 300)
    out, info = process_bytes(data, ProcessOptions())
    assert out == data and info.ext == {"png": "png", "gif": "gif", "webp": "webp", "tif": "tif"}.get(
        fmt.split("-")[0].replace("tiff", "tif"), "jpg")
    w, h = size_for(_id_of(fmt), 300)
    if fmt == "jpeg-exif-rotated":
        w, h = h, w  # reported as displayed
    assert (info.width, info.height) == (info.orig_width, info.orig_height) == (w, h)
    assert len(info.sha256) == 64 and info.phash is not None
    assert info.pixel_hash is None  # a full-resolution decode only when asked
    _, hashed = process_bytes(data, ProcessOptions(pixel_hash=True))
    pixels = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    if fmt in ("jpeg", "jpeg-progressive", "jpeg-exif-rotated"):  # Pillow's decode is libjpeg-turbo's too
        assert hashed.pixel_hash == hashlib.sha256(pixels.tobytes()).hexdigest()
    assert len(hashed.pixel_hash) == 64 and hashed.phash == info.phash or fmt == "cmyk-jpeg"


def test_a_kept_jpeg_is_validated_whole_by_its_small_decode() -> None:
    data, _ = image_bytes(_id_of("jpeg"), 900)
    assert len(data) > 20_000
    # cut before the end, and garbage in the middle of the entropy-coded data: both refused,
    # although the scaled decode makes only a few thousand pixels
    for bad in (data[: len(data) * 3 // 4], data[: len(data) // 2] + bytes(range(256)) * 8 + data[len(data) // 2:]):
        with pytest.raises(ImageFault) as fault:
            process_bytes(bad, ProcessOptions())
        assert fault.value.kind == "corrupt"


def test_reencoded_images_with_the_same_pixels_get_the_same_sha256_and_no_pixel_hash() -> None:
    # the same pixels in two files that differ in bytes (a comment): a re-encoding writes
    # identical bytes, so sha256 finds them; different pixels give a different sha256
    pixels = np.asarray(Image.open(io.BytesIO(image_bytes(_id_of("jpeg"), 700)[0])).convert("RGB"))
    files = []
    for comment in (b"first", b"second"):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=92, comment=comment)
        files.append(buf.getvalue())
    assert files[0] != files[1]
    (a, info_a), (b, info_b) = (process_bytes(f, RESIZE) for f in files)
    assert a == b and info_a.sha256 == info_b.sha256 and info_a.pixel_hash is info_b.pixel_hash is None
    other = pixels.copy()
    other[0, 0] ^= 0xFF
    buf = io.BytesIO()
    Image.fromarray(other).save(buf, "JPEG", quality=92)
    assert process_bytes(buf.getvalue(), ProcessOptions(reencode=True))[1].sha256 != \
        process_bytes(files[0], ProcessOptions(reencode=True))[1].sha256


def test_phash_finds_near_duplicates_and_separates_different_photos() -> None:
    def ph(variant: str, image_id: int = 108) -> int:
        return process_bytes(image_bytes(image_id, 500, variant)[0], RESIZE)[1].phash

    def distance(a: int, b: int) -> int:
        return bin(a ^ b).count("1")

    base = ph("original")
    assert distance(base, ph("reencoded")) <= 6
    assert distance(base, ph("resized")) <= 6
    others = [ph("original", i) for i in range(110, 120)]
    assert min(distance(base, o) for o in others) > 10


@pytest.mark.parametrize(("data", "kind"), [
    (b"<!DOCTYPE html><html><body>404</body></html>", "not_image"),
    (b"GIF89a" + b"\x00" * 10, "corrupt"),
    (image_bytes(108, 300, "jpeg")[0][:300] + b"\x13" * 2000, "corrupt"),
    (image_bytes(108, 300, "jpeg")[0][:1500], "corrupt"),
])
def test_bad_bytes_are_permanent_faults(data: bytes, kind: str) -> None:
    with pytest.raises(ImageFault) as info:
        process_bytes(data, RESIZE)
    assert info.value.kind == kind and info.value.message


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageFault) as info:
        process_bytes(bomb_png(14_000), RESIZE)
    assert info.value.kind == "decompression_bomb" and "max_pixels" in info.value.message


def test_header_only_validation_measures_without_decoding_and_catches_cut_files() -> None:
    from gbifxdl.fetch.validate import inspect_bytes

    jpeg = image_bytes(_id_of("jpeg-exif-rotated"), 400)[0]
    info = inspect_bytes(jpeg, 10**8)
    w, h = size_for(_id_of("jpeg-exif-rotated"), 400)
    assert (info.width, info.height) == (h, w) and info.pixel_hash is None and info.phash is None
    assert inspect_bytes(image_bytes(_id_of("png-alpha"), 400)[0], 10**8).ext == "png"
    for data, kind in ((jpeg[: len(jpeg) // 2], "corrupt"), (b"<html></html>", "not_image"),
                       (bomb_png(14_000), "decompression_bomb")):
        with pytest.raises(ImageFault) as fault:
            inspect_bytes(data, 178_956_970)
        assert fault.value.kind == kind


def test_kept_body_in_chunks_is_written_whole_and_hashed_like_the_joined_bytes(tmp_path: Path) -> None:
    import hashlib

    from gbifxdl.fetch.validate import inspect_bytes, keep_to_file

    jpeg = image_bytes(_id_of("jpeg-exif-rotated"), 900)[0]
    whole = inspect_bytes(jpeg, 10**8)
    cuts = [0, 7, 300, len(jpeg) - 3, len(jpeg)]  # a tiny first chunk and a 3-byte last one
    chunks = [jpeg[a:b] for a, b in zip(cuts, cuts[1:])]
    target = tmp_path / "kept.jpg"
    info = keep_to_file(chunks, 10**8, str(target))
    assert target.read_bytes() == jpeg
    assert info == whole and info.sha256 == hashlib.sha256(jpeg).hexdigest() and info.bytes == len(jpeg)
    half = jpeg[: len(jpeg) // 2]
    with pytest.raises(ImageFault) as fault:
        keep_to_file([half[:100], half[100:]], 10**8, str(tmp_path / "cut.jpg"))
    assert fault.value.kind == "corrupt"


def test_reencoded_hashes_are_those_of_the_pixels_written_and_repeat_exactly() -> None:
    data, _ = image_bytes(_id_of("jpeg"), 800)
    out, info = process_bytes(data, RESIZE)
    again, info2 = process_bytes(data, RESIZE)
    assert out == again and info == info2
    written = simplejpeg.decode_jpeg(out, colorspace="RGB")
    assert written.shape[:2] == (info.height, info.width)
    from gbifxdl.fetch.process import phash

    # the pHash of the pixels encoded and of the file as decoded differ by JPEG loss only
    assert bin(phash(written) ^ info.phash).count("1") <= 4
