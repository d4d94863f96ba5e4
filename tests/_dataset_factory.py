"""Builds fetched dataset folders (as `gbifxdl fetch` writes them) for the curate tests.

Real JPEG files made with Pillow, a metadata.parquet following the fetch contract of
ARCHITECTURE.md (every selection column, outcome, hashes, provenance), in either the
folders or the WebDataset layout. ``standard_dataset`` lays out one folder holding
every case curation must handle, and says what a correct curation keeps.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

PROVENANCE = {
    "download_key": "0026011-250827131500795",
    "doi": "10.15468/dl.29wbtx",
    "citation": "GBIF.org (2 January 2023) GBIF Occurrence Download https://doi.org/10.15468/dl.29wbtx",
    "query": '{"type":"equals","key":"TAXON_KEY","value":"7017"}',
    "created": "2023-01-02T10:00:00.000+00:00",
    "archive": "0026011-250827131500795.zip",
    "select_settings": {"max_per_class": 2000, "media_type": "StillImage"},
    "fetch_settings": {"resize": 512, "layout": "folders"},
}

LICENSES = (
    "http://creativecommons.org/licenses/by/4.0/",
    "http://creativecommons.org/licenses/by-nc/4.0/",
    "http://creativecommons.org/publicdomain/zero/1.0/",
)

_STRING = pa.string()
_INT64 = pa.int64()
_INT32 = pa.int32()
SCHEMA = pa.schema(
    [("gbifID", _INT64)]
    + [(c, _STRING) for c in ("basisOfRecord", "recordedBy", "countryCode", "eventDate", "lifeStage", "sex",
                              "scientificName", "taxonRank", "datasetKey")]
    + [("decimalLatitude", pa.float64()), ("decimalLongitude", pa.float64())]
    + [(c, _STRING) for c in ("kingdom", "phylum", "class", "order", "family", "genus", "species")]
    + [(c, _INT64) for c in ("kingdomKey", "phylumKey", "classKey", "orderKey", "familyKey", "genusKey",
                             "speciesKey", "taxonKey", "acceptedTaxonKey")]
    + [(c, _STRING) for c in ("type", "format", "identifier", "references", "created", "creator", "publisher",
                              "license", "rightsHolder", "url_hash")]
    + [("outcome", _STRING), ("error", _STRING), ("attempts", _INT32), ("http_status", _INT32), ("host", _STRING),
       ("path", _STRING), ("shard", _STRING), ("key", _STRING)]
    + [(c, _INT32) for c in ("orig_width", "orig_height", "width", "height")]
    + [("bytes", _INT64), ("sha256", _STRING), ("pixel_hash", _STRING), ("phash", pa.uint64())]
)  # fmt: skip


def photo(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """Return a photo-like RGB image (smooth gradients and shapes) determined by ``seed``."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(coarse, "RGB").resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, x1 = sorted(rng.integers(0, size[0], 2).tolist())
        y0, y1 = sorted(rng.integers(0, size[1], 2).tolist())
        draw.ellipse([x0, y0, x1 + 2, y1 + 2], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img


def jpeg(img: Image.Image, quality: int = 90, comment: bytes | None = None) -> bytes:
    """Return JPEG bytes of ``img`` (an optional comment changes the bytes, not the pixels)."""
    out = io.BytesIO()
    kwargs = {"comment": comment} if comment else {}
    img.save(out, "JPEG", quality=quality, **kwargs)
    return out.getvalue()


def phash(img: Image.Image) -> int:
    """Return the 64-bit DCT perceptual hash of ``img`` (32x32 grey, 8x8 low frequencies > median)."""
    grey = np.asarray(img.convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
    k = np.arange(32)
    dct = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 64)
    low = (dct @ grey @ dct.T)[:8, :8]
    bits = (low > np.median(low)).flatten()
    return int(sum(1 << (63 - i) for i, b in enumerate(bits) if b))


@dataclass
class Row:
    """One image row of a fetched table, and whether/how its file is written."""

    gbif_id: int
    species_key: int | None
    data: bytes | None = None  # the written bytes; None for a failed fetch
    outcome: str = "ok"
    event_date: str | None = "2020-06-01"
    license: str = LICENSES[0]
    write_file: bool = True  # False: the table says ok but the file is gone
    file_bytes: bytes | None = None  # written instead of ``data`` (corrupt/truncated files)
    url: str = ""
    extra: dict = field(default_factory=dict)


def _hashes(data: bytes) -> dict:
    img = Image.open(io.BytesIO(data))
    img.load()
    rgb = img.convert("RGB")
    return {
        "width": rgb.width, "height": rgb.height, "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pixel_hash": hashlib.sha256(rgb.tobytes()).hexdigest(),
        "phash": phash(rgb),
    }  # fmt: skip


def write_dataset(root: Path, rows: list[Row], layout: str = "folders", shard_size: int = 8,
                  orphans: bool = True, provenance: dict | None = None) -> Path:
    """Write ``rows`` as a fetched dataset folder at ``root``; return ``root``.

    With ``orphans``, also leaves files no row refers to (a stray image, a stray folder,
    and in the WebDataset layout a stray sample and a stray shard).
    """
    root.mkdir(parents=True, exist_ok=True)
    records = []
    samples: list[tuple[str, bytes, dict]] = []
    for n, row in enumerate(rows):
        url = row.url or f"https://img{n % 3}.example.org/photos/{n}/original.jpg"
        url_hash = hashlib.sha1(url.encode()).hexdigest()
        label = str(row.species_key) if row.species_key is not None else "unlabeled"
        rec = {c: None for c in SCHEMA.names}
        rec.update({
            "gbifID": row.gbif_id, "basisOfRecord": "HUMAN_OBSERVATION", "recordedBy": f"Observer {n % 4}",
            "countryCode": "DK", "eventDate": row.event_date, "scientificName": f"Species {label}",
            "taxonRank": "SPECIES", "datasetKey": "50c9509d-22c7-4a22-a47d-8c48425ef4a7",
            "decimalLatitude": 56.0, "decimalLongitude": 10.0, "kingdom": "Animalia", "species": f"Species {label}",
            "speciesKey": row.species_key, "taxonKey": row.species_key, "type": "StillImage", "format": "image/jpeg",
            "identifier": url, "references": f"https://www.inaturalist.org/observations/{row.gbif_id}",
            "creator": f"Photographer {n % 5}", "publisher": "iNaturalist", "license": row.license,
            "rightsHolder": f"Holder {n % 5}", "url_hash": url_hash, "outcome": row.outcome, "attempts": 1,
            "host": url.split("/")[2],
        })  # fmt: skip
        rec.update(row.extra)
        if row.outcome != "ok" or row.data is None:
            rec["error"] = f"{row.outcome} from {rec['host']}"
            rec["http_status"] = 404 if row.outcome == "http_404" else None
            records.append(rec)
            continue
        info = _hashes(row.data)
        rec.update(info, http_status=200, orig_width=info["width"] * 2, orig_height=info["height"] * 2)
        rec["orig_width"], rec["orig_height"] = rec.pop("orig_width"), rec.pop("orig_height")
        written = row.file_bytes if row.file_bytes is not None else row.data
        if layout == "folders":
            rec["path"] = f"images/{label}/{url_hash}.jpg"
            if row.write_file:
                path = root / rec["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(written)
        else:
            rec["shard"] = f"shards/shard-{len(samples) // shard_size:06d}.tar"
            rec["key"] = url_hash
            samples.append((url_hash, written if row.write_file else b"", rec))
        records.append(rec)
    if layout != "folders":
        _write_shards(root, samples, shard_size, orphans)
    elif orphans:
        stray = photo(999_999)
        (root / "images" / "1001").mkdir(parents=True, exist_ok=True)
        (root / "images" / "1001" / "stray.jpg").write_bytes(jpeg(stray))
        (root / "images" / "8888").mkdir(parents=True, exist_ok=True)
        (root / "images" / "8888" / "lost.jpg").write_bytes(jpeg(stray))
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    meta = {b"gbifxdl.provenance": json.dumps(provenance or PROVENANCE).encode()}
    pq.write_table(table.replace_schema_metadata(meta), root / "metadata.parquet")
    return root


def _write_shards(root: Path, samples: list[tuple[str, bytes, dict]], shard_size: int, orphans: bool) -> None:
    (root / "shards").mkdir(parents=True, exist_ok=True)
    by_shard: dict[str, list[tuple[str, bytes, dict]]] = {}
    for key, data, rec in samples:
        by_shard.setdefault(rec["shard"], []).append((key, data, rec))
    for rel, items in by_shard.items():
        with tarfile.open(root / rel, "w") as tar:
            for key, data, rec in items:
                if not data:
                    continue  # the sample the table lists is not in the shard
                meta = json.dumps({"gbifID": rec["gbifID"], "url": rec["identifier"]}).encode()
                for name, payload in ((f"{key}.jpg", data), (f"{key}.json", meta)):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
            if orphans and rel.endswith("000000.tar"):
                info = tarfile.TarInfo("0" * 40 + ".jpg")
                payload = jpeg(photo(999_998))
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    if orphans:
        with tarfile.open(root / "shards" / "shard-999999.tar", "w") as tar:
            info = tarfile.TarInfo("f" * 40 + ".jpg")
            payload = jpeg(photo(999_997))
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


@dataclass
class Expected:
    """What a correct curation of ``standard_dataset`` keeps and removes, by url_hash."""

    root: Path
    kept: set[str]
    removed: dict[str, str]  # url_hash -> removed_reason
    rows: list[Row]


def url_hash_of(n: int, row: Row) -> str:
    """Return the url_hash ``write_dataset`` gives row number ``n``."""
    url = row.url or f"https://img{n % 3}.example.org/photos/{n}/original.jpg"
    return hashlib.sha1(url.encode()).hexdigest()


def standard_dataset(root: Path, layout: str = "folders") -> Expected:
    """Write the standard case folder and return what curation must keep and remove.

    Classes 1001 (18 images, some occurrences with two), 1002 (10), 1003 (3: test_ood)
    and an unlabeled pair; plus an exact copy within 1001, a same-pixels copy with other
    bytes, one photo labelled both 1001 and 1002, a resized re-encoded copy within 1002,
    failed fetches, a missing file, a garbage file, a truncated file, and stray files.
    """
    rows: list[Row] = []
    reasons: dict[int, str] = {}
    seed = iter(range(1, 10_000))

    def add(row: Row, reason: str | None = None) -> Row:
        if reason:
            reasons[len(rows)] = reason
        rows.append(row)
        return row

    gbif = 5000
    for i in range(18):  # class 1001; occurrences 5000..5011, six with two images
        add(Row(gbif + i // 3 * 2 + (i % 3 == 2), 1001, jpeg(photo(next(seed))), event_date=f"20{10 + i % 12:02d}-05-01"))
    for i in range(10):
        add(Row(6000 + i, 1002, jpeg(photo(next(seed))), event_date=f"20{10 + i:02d}-07-01", license=LICENSES[1]))
    for i in range(3):
        add(Row(7000 + i, 1003, jpeg(photo(next(seed))), license=LICENSES[2]))
    for i in range(2):
        add(Row(7100 + i, None, jpeg(photo(next(seed)))))
    # an exact copy (same bytes) within 1001, and a same-pixels copy with different bytes
    add(Row(5100, 1001, rows[0].data), "duplicate")
    base = photo(next(seed))
    add(Row(5101, 1001, jpeg(base, comment=b"re-exported")))
    add(Row(5102, 1001, jpeg(base)), "duplicate")
    # one photo labelled as two species: every copy goes by default
    cross = jpeg(photo(next(seed)))
    add(Row(5103, 1001, cross), "duplicate_across_classes")
    add(Row(6100, 1002, cross), "duplicate_across_classes")
    # a resized, re-encoded copy of a 1002 photo (the larger original stays)
    big = photo(next(seed), size=(128, 96))
    add(Row(6101, 1002, jpeg(big, quality=95)))
    add(Row(6102, 1002, jpeg(big.resize((80, 60), Image.LANCZOS), quality=70)), "near_duplicate")
    # failures, a missing file, a garbage file with the size the table says, a truncated file
    add(Row(5200, 1001, None, outcome="http_404"), "fetch_failed")
    add(Row(5201, 1002, None, outcome="timeout"), "fetch_failed")
    add(Row(5202, 1001, jpeg(photo(next(seed))), write_file=False), "file_missing")
    good = jpeg(photo(next(seed)))
    add(Row(5203, 1001, good, file_bytes=bytes(len(good))), "file_unreadable")
    good = jpeg(photo(next(seed)))
    add(Row(5204, 1002, good, file_bytes=good[: len(good) // 2]), "file_unreadable")
    write_dataset(root, rows, layout=layout)
    hashes = [url_hash_of(n, r) for n, r in enumerate(rows)]
    removed = {hashes[n]: reason for n, reason in reasons.items()}
    kept = {h for n, h in enumerate(hashes) if n not in reasons}
    return Expected(root=root, kept=kept, removed=removed, rows=rows)


def file_count(root: Path) -> int:
    """Return the number of files below ``root``."""
    return sum(len(files) for _, _, files in os.walk(root))


def snapshot(root: Path) -> dict[str, str]:
    """Return {relative path: sha256} of every file below ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
