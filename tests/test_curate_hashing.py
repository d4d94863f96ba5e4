"""The perceptual hash fetch stores finds the same photo at another resolution, JPEG quality
or slightly cropped (the portal's copy of an iNaturalist original), and curation removes
such copies; hashes of datasets fetched before stay usable and are never mixed up."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFilter

from _dataset_factory import Row, write_dataset
from gbifxdl.curate import CurateSettings, curate
from gbifxdl.curate._dedupe import CONFIRM_THRESHOLD, phash_edges, popcount64
from gbifxdl.fetch import hashing
from gbifxdl.fetch.image_types import ProcessOptions
from gbifxdl.fetch.process import process_bytes
from gbifxdl.fetch.settings import FetchSettings
from gbifxdl.fetch.journal import FetchState

FETCH = ProcessOptions(resize=512, reencode=True)
THRESHOLD = CurateSettings().phash_threshold


def _photo(seed: int) -> Image.Image:
    """Return a natural-looking scene: 1/f noise background, a textured subject, thin sharp lines."""
    rng = np.random.default_rng(seed)
    w, h = 800, int(rng.choice([600, 800, 533]))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    f = np.maximum(np.sqrt(fx * fx + fy * fy), 1 / max(w, h))
    layers = []
    for _ in range(3):
        field = np.fft.irfft2((rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f, s=(h, w))
        layers.append((field - field.min()) / np.ptp(field) * 255)
    img = Image.fromarray(np.stack(layers, -1).astype(np.uint8)).filter(ImageFilter.GaussianBlur(3))
    draw = ImageDraw.Draw(img)
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
    draw.ellipse((cx - w / 6, cy - h / 6, cx + w / 6, cy + h / 6), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    for _ in range(150):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        draw.line((x, y, x + rng.normal(0, 20), y - rng.uniform(10, 80)), fill=int(rng.integers(0, 256)), width=2)
    return img


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _copies(img: Image.Image) -> list[bytes]:
    """Return the original and a portal's copies: other resolution, other quality, 3 % cropped."""
    w, h = img.size
    return [
        _jpeg(img, 92),
        _jpeg(img.resize((w * 5 // 8, h * 5 // 8), Image.LANCZOS), 85),
        _jpeg(img.resize((w * 7 // 8, h * 7 // 8), Image.BICUBIC), 45),
        _jpeg(img.crop((w * 3 // 100, 0, w, h - h * 3 // 100)).resize((w * 3 // 4, h * 3 // 4), Image.LANCZOS), 80),
    ]


def _fetched(data: bytes) -> tuple[bytes, int]:
    out, processed = process_bytes(data, FETCH)
    return out, processed.phash


PHOTOS = [_copies(_photo(seed)) for seed in range(8)]
HASHES = np.array([[_fetched(d)[1] for d in group] for group in PHOTOS], dtype=np.uint64)


def test_copies_are_within_the_default_threshold_and_other_photos_are_not() -> None:
    within = popcount64((HASHES[:, 1:] ^ HASHES[:, :1]).ravel())
    assert within.max() <= THRESHOLD
    firsts = HASHES[:, 0]
    between = [int(popcount64(np.array([a ^ b], dtype=np.uint64))[0]) for i, a in enumerate(firsts)
               for b in firsts[i + 1:]]
    assert min(between) > THRESHOLD


def test_the_stored_hash_carries_its_version_bit() -> None:
    assert all(not hashing.is_legacy(int(h)) for h in HASHES.ravel())
    kept, _ = process_bytes(PHOTOS[0][0], ProcessOptions())  # the kept-original route
    assert not hashing.is_legacy(process_bytes(kept, ProcessOptions())[1].phash)
    assert hashing.is_legacy(hashing.legacy_phash(_photo(0)))


def test_a_legacy_hash_is_never_linked_to_a_new_one() -> None:
    new = hashing.phash(_photo(1))
    values = np.array([new, new ^ hashing.PHASH_VERSION_BIT, new ^ 1], dtype=np.uint64)
    a, b = phash_edges(values, np.arange(3), THRESHOLD)
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 2)]


def test_curation_keeps_one_copy_of_each_photo(tmp_path: Path) -> None:
    rows, hashes = [], []
    for p, group in enumerate(PHOTOS):
        for k, data in enumerate(group):
            written, phash = _fetched(data)
            rows.append(Row(100 * p + k, 1 + p % 2, written))
            hashes.append(phash)
    root = write_dataset(tmp_path / "ds", rows, orphans=False)
    # the hashes fetch stores (the test factory computes its own)
    table = pq.read_table(root / "metadata.parquet")
    table = table.set_column(table.schema.get_field_index("phash"), "phash", pa.array(hashes, pa.uint64()))
    pq.write_table(table, root / "metadata.parquet")

    # three copies of every photo: 75 % of the images are near duplicates, an unusual share, held back
    held = curate(root, card=False)
    assert held.kept == 4 * len(PHOTOS) and held.removed_total == {}
    assert held.near_duplicates["held_back"] == 3 * len(PHOTOS) and "HELD BACK" in held.warnings[0]
    assert len(held.near_duplicates["examples"]) == 12

    summary = curate(root, CurateSettings(max_near_duplicate_share=1.0), card=False)  # the user accepts

    assert summary.kept == len(PHOTOS)
    assert summary.removed_total == {"near_duplicate": 3 * len(PHOTOS)}


# --- the confirming colour hash (chroma_hash) ----------------------------------------------------

def _wide(data: bytes) -> int:
    return process_bytes(data, FETCH)[1].chroma_hash


WIDE = [[_wide(d) for d in group] for group in PHOTOS[:4]]


def _bits_apart(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def test_fetch_stores_a_confirming_hash_that_copies_share_and_other_photos_do_not() -> None:
    assert all(0 < h < 2**128 for group in WIDE for h in group)
    assert max(_bits_apart(g[0], h) for g in WIDE for h in g[1:]) <= CONFIRM_THRESHOLD
    firsts = [g[0] for g in WIDE]
    assert min(_bits_apart(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1:]) > CONFIRM_THRESHOLD
    # the kept-original route stores it too, and phashes() is exactly the two hashes
    kept = process_bytes(PHOTOS[0][0], ProcessOptions())[1]
    small = hashing.jpeg_small(PHOTOS[0][0], 1)
    assert (kept.phash, kept.chroma_hash) == hashing.phashes(small) == (hashing.phash(small), hashing.chroma_hash(small))
    # grey pixels have no colour hash (curation then relies on phash alone)
    assert hashing.chroma_hash(np.asarray(_photo(0).convert("L").convert("RGB"))) is None
    assert process_bytes(_jpeg(_photo(0).convert("L"), 90), FETCH)[1].chroma_hash is None


def _colliding_dataset(root: Path, with_wide: bool) -> Path:
    """Four photos x four copies, one class; photo 1 stored with photo 0's 64-bit hash, photo 3 with photo 2's."""
    rows, short, wide = [], [], []
    for p, group in enumerate(PHOTOS[:4]):
        for k, data in enumerate(group):
            written, processed = process_bytes(data, FETCH)
            rows.append(Row(100 * p + k, 1, written))
            short.append(int(HASHES[p - p % 2, 0]) if p % 2 else processed.phash)  # a chance collision
            wide.append(processed.chroma_hash.to_bytes(16, "big") if with_wide else None)
    write_dataset(root, rows, orphans=False)
    table = pq.read_table(root / "metadata.parquet")
    table = table.set_column(table.schema.get_field_index("phash"), "phash", pa.array(short, pa.uint64()))
    pq.write_table(table.append_column("chroma_hash", pa.array(wide, pa.binary(16))), root / "metadata.parquet")
    return root


ALL_COPIES = CurateSettings(max_near_duplicate_share=1.0)  # these datasets are three quarters copies, on purpose


def test_distinct_photos_colliding_on_the_64_bit_hash_are_kept_when_the_colour_hash_disagrees(tmp_path: Path) -> None:
    summary = curate(_colliding_dataset(tmp_path / "ds", with_wide=True), ALL_COPIES, card=False)
    # every photo keeps one image; its three copies still go
    assert summary.kept == 4
    assert summary.removed_total == {"near_duplicate": 12}


def test_rows_without_the_colour_hash_are_confirmed_on_their_files(tmp_path: Path) -> None:
    # a dataset fetched before chroma_hash and signature (null there): the pixels of its files reject the collision
    root = _colliding_dataset(tmp_path / "ds", with_wide=False)
    summary = curate(root, ALL_COPIES, card=False)
    assert summary.kept == 4
    assert summary.removed_total == {"near_duplicate": 12}
    pairs = summary.near_duplicates["pairs"]
    assert pairs["rejected_by_signature"] + pairs["rejected_by_pixels"] > 0 and pairs["confirmed_by_hashes"] == 0


def test_rows_without_signatures_nor_files_fall_back_to_the_64_bit_hash(tmp_path: Path) -> None:
    # ... and where its files cannot be read either, the hashes alone decide, as before: the collision merges
    root = _colliding_dataset(tmp_path / "ds", with_wide=False)
    summary = curate(root, dataclasses.replace(ALL_COPIES, check_files=False), card=False)
    assert summary.kept == 2
    assert summary.removed_total == {"near_duplicate": 14}
    assert summary.near_duplicates["pairs"]["confirmed_by_hashes"] == summary.near_duplicates["pairs"]["candidates"]


def test_resume_state_round_trips_the_colour_hash_and_reads_old_units_as_null(tmp_path: Path) -> None:
    state = FetchState(tmp_path, FetchSettings())
    wide = WIDE[0][1]
    state.write_unit(0, [{"outcome": "ok", "phash": 1 << 63, "chroma_hash": wide}, {"outcome": "http_error"}])
    table = state.read_unit(0)
    assert table.schema.field("chroma_hash").type == pa.binary(16)
    assert table.column("chroma_hash").to_pylist() == [wide.to_bytes(16, "big"), None]
    assert [r["chroma_hash"] for r in state.ok_rows(0)] == [wide]  # back to the int journal lines hold (JSON)
    json.dumps(state.ok_rows(0))
    # a unit finished before the column existed reads with nulls there
    pq.write_table(table.drop_columns(["chroma_hash"]), state.unit_path(1))
    assert state.read_unit(1).column("chroma_hash").to_pylist() == [None, None]
    assert state.ok_rows(1)[0]["chroma_hash"] is None
