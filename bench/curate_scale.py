"""Curation, dataset card and report at 1M and 10M rows: wall time and peak memory.

    python -u bench/curate_scale.py                          # 1M and 10M rows, baseline at 200k
    python -u bench/curate_scale.py --rows 1000000 --baseline-rows 1000000
    python -u bench/curate_scale.py --rows 10000000 --baseline-rows 0 --cache /tmp/scale  # table kept for next time

The table: a synthetic ``metadata.parquet`` with the columns and types ``gbifxdl fetch``
writes after ``select`` (the selection's ``OUTPUT_SCHEMA`` then fetch's ``RESULT_SCHEMA``),
100,000 classes of Zipf-like sizes (the largest tens of thousands of images, most a
few dozen), occurrences of 1 to 3 images, ~1 % failed fetches, ~1.5 % exact duplicates
(same sha256, pixel_hash, phash and chroma_hash as another row: mostly the neighbouring
row, i.e. the same occurrence or class, a third of them a random row of another class) and
~1.5 % near duplicates (phash within 1-10 bits and chroma_hash within 2-20 bits of another row
as bench/dedupe.py measures copies, other bytes, and a signature that differs by noise).

Hashes crowd as real photos' do: 5 % of the rows belong to look-alike collections
(herbarium sheets, pinned insects, camera sites; 100 rows on average, Zipf-sized, the
largest a few thousand rows; a larger table holds more of them, not larger ones), whose members' hashes lie 6-14 bits (phash) and 10-24 bits (chroma_hash) from their
collection's: two members are a median 20 bits of phash apart, as bench/dedupe.py measures
for sheets and insects of one collection, and often within curation's candidate thresholds;
their signatures share the collection's layout and differ in one part (another specimen). The other rows' perceptual hashes are
uniformly random 63-bit values, chroma hashes random 128-bit (null for ~5 %: grey images),
signatures smooth random 32x32 images. It is written in batches of 250,000 rows with
``pyarrow.parquet.ParquetWriter`` (generation is bounded in memory too).

No image file is written (10M files would measure the disk, not curation): the layout
is "folders" with each ok row naming ``images/<class>/<url_hash>.jpg``, and curation
runs with ``CurateSettings(check_files=False)``, which trusts the table's ``outcome``
instead of opening each file (and, as there is no images/ folder, moves nothing). What is
measured is everything else: reading the table, exact and near duplicates, splits, and
writing metadata.parquet and removed.parquet; then the card (README.md, ATTRIBUTION.csv,
croissant.json, the per-split tables) and the report (no thumbnail can be read: each
shows "unreadable"). File checking is per file and linear (bench/curate.py measures it
on real JPEGs).

Each step runs in a fresh Python process; its peak RSS is that process's
``VmHWM`` (from /proc: ru_maxrss would carry over the bench's own peak across fork and exec). The baseline is the code before the change
(commit ``BASELINE_REF``, extracted with ``git archive`` into a temporary folder), run on the same table at
``--baseline-rows`` (the pre-change code holds Python lists of every row; at 10M it
needs far more than the 2 GiB target), with its file checks replaced by "no problem" (what
``check_files=False`` does, which it lacks). Targets at 10M rows: < 2 GiB peak, < 10 minutes
for curate + card + report on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_CLASSES = 100_000
BATCH = 250_000
TARGET_MIB, TARGET_S = 2048, 600
RECALL_ROWS = 1_000_000  # recall per pair does not depend on the table size: measured once, at 1M
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _schema() -> pa.Schema:
    sys.path.insert(0, str(ROOT / "src"))
    from gbifxdl.fetch.journal import RESULT_SCHEMA
    from gbifxdl.select.assemble import OUTPUT_SCHEMA

    prov = {"download_key": "0000001-260101000000000", "doi": "10.15468/dl.bench1",
            "created": "2026-01-01T00:00:00.000+00:00", "query": '{"type":"equals","key":"TAXON_KEY","value":"1"}',
            "select_settings": {"max_per_class": 100000}, "fetch_settings": {"resize": 512, "layout": "folders"}}
    return pa.schema(list(OUTPUT_SCHEMA) + list(RESULT_SCHEMA),
                     metadata={b"gbifxdl.provenance": json.dumps(prov).encode()})


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """Return a string array from an (m, w) uint8 array of ASCII characters."""
    m, w = chars.shape
    offsets = pa.py_buffer((np.arange(m + 1, dtype=np.int32) * w).tobytes())
    return pa.Array.from_buffers(pa.string(), m, [None, offsets, pa.py_buffer(np.ascontiguousarray(chars).tobytes())])


def _hex(raw: np.ndarray) -> pa.Array:
    """Return lowercase hex strings of the rows of an (m, k) uint8 array."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2], out[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    return _fixed_strings(out)


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


CROWD_SHARE, COLLECTION_MEAN = 0.05, 100  # rows in look-alike collections, and their mean size


def _smooth(rng: np.random.Generator, m: int) -> np.ndarray:
    """Return ``m`` smooth 32x32 uint8 images (an 8x8 random grid, enlarged, with grain): signatures."""
    grid = rng.integers(0, 256, (m, 8, 8), dtype=np.uint8)
    big = grid.repeat(4, axis=1).repeat(4, axis=2).astype(np.int16)
    return np.clip(big + rng.integers(-3, 4, big.shape, dtype=np.int16), 0, 255).astype(np.uint8)


def _flips(rng: np.random.Generator, m: int, width: int, count: np.ndarray) -> np.ndarray:
    """Return ``m`` uint64 masks with ``count[k]`` distinct bits set among the low ``width``."""
    out = np.zeros(m, dtype=np.uint64)
    for j, b in enumerate(np.argsort(rng.random((m, width)), axis=1)[:, :int(count.max(initial=0))].T):
        out |= np.where(j < count, np.uint64(1) << b.astype(np.uint64), np.uint64(0))
    return out


class Generator:
    """Writes the synthetic table batch by batch (see the module docstring)."""

    def __init__(self, rows: int, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        # a larger table holds more collections, not larger ones
        n_collections = max(1, int(rows * CROWD_SHARE / COLLECTION_MEAN))
        weights = 1.0 / (np.arange(N_CLASSES) + 20.0) ** 1.05
        self.cdf = np.cumsum(weights / weights.sum())
        self.next_gbif = 1_000_000_000
        self.planted: list[np.ndarray] = []  # (source row, near copy row, phash distance)
        self.done = 0
        dict_ = lambda fmt, k: pa.array([fmt.format(i) for i in range(k)], pa.string())  # noqa: E731
        self.hosts, self.datasets = dict_("img{}.example.org", 200), dict_("50c9509d-22c7-4a22-a47d-{:012d}", 2000)
        self.people, self.countries = dict_("Person {}", 50_000), dict_("C{}", 100)
        self.dates = dict_("20{:02d}-06-01", 25)
        self.licenses = pa.array(["http://creativecommons.org/licenses/by/4.0/",
                                  "http://creativecommons.org/licenses/by-nc/4.0/",
                                  "http://creativecommons.org/publicdomain/zero/1.0/", "CC_BY_SA_4_0"], pa.string())
        self.species = pa.array([f"Genus{c // 10} species{c}" for c in range(N_CLASSES)], pa.string())
        # the look-alike collections: a centre (phash, chroma words, signature layout) each, Zipf-sized
        sizes = 1.0 / (np.arange(n_collections) % 1000 + 5.0)  # Zipf-like within each thousand collections
        self.crowd_cdf = np.cumsum(sizes) / sizes.sum()
        self.crowd_phash = self.rng.integers(0, 2**63, n_collections, dtype=np.uint64)
        self.crowd_chroma = self.rng.integers(0, 256, (n_collections, 16), dtype=np.uint8)
        self.crowd_layout = _smooth(self.rng, n_collections)

    def batch(self, m: int, schema: pa.Schema) -> pa.Table:
        rng = self.rng
        occ_sizes = rng.choice([1, 1, 1, 2, 3], size=m)
        occ_sizes = occ_sizes[: np.searchsorted(np.cumsum(occ_sizes), m) + 1]
        occ_sizes[-1] -= occ_sizes.sum() - m
        occ_sizes = occ_sizes[occ_sizes > 0]
        occ_class = np.minimum(np.searchsorted(self.cdf, rng.random(len(occ_sizes))), N_CLASSES - 1)
        cls = np.repeat(occ_class, occ_sizes)
        gbif = np.repeat(self.next_gbif + np.arange(len(occ_sizes), dtype=np.int64), occ_sizes)
        self.next_gbif += len(occ_sizes)
        nth = np.arange(m) - np.repeat(np.cumsum(occ_sizes) - occ_sizes, occ_sizes)
        pick = lambda arr, k=None: arr.take(pa.array(rng.integers(0, len(arr), m) if k is None else k))  # noqa: E731

        ok = rng.random(m) >= 0.01
        sha = rng.integers(0, 256, (m, 32), dtype=np.uint8)
        pix = rng.integers(0, 256, (m, 32), dtype=np.uint8)
        phash = rng.integers(0, 2**63, m, dtype=np.uint64)
        chroma = rng.integers(0, 256, (m, 16), dtype=np.uint8)
        grey = rng.random(m) < 0.05
        width = rng.integers(200, 4000, m).astype(np.int32)
        height = (width * rng.uniform(0.5, 1.5, m)).astype(np.int32)
        nbytes = rng.integers(20_000, 400_000, m)
        # exact copies (~1.5 %) and near copies (~1.5 %) of an earlier row of the batch
        kind = rng.random(m)
        exact, near = (kind < 0.015) & (np.arange(m) > 0), (kind >= 0.015) & (kind < 0.03) & (np.arange(m) > 0)
        src = np.where(rng.random(m) < 0.67, np.arange(m) - 1, (rng.random(m) * np.arange(m)).astype(np.int64))
        src = np.maximum(src, 0)
        near &= ~near[src]  # a copy of a row that is itself changed here would not be at the planted distance
        sig = _smooth(rng, m)  # signatures: smooth images
        # look-alike collections: members near their collection's hashes, its layout with one part their own
        crowd = (kind >= 0.03) & (kind < 0.03 + CROWD_SHARE)
        members = np.flatnonzero(crowd)
        which = np.minimum(np.searchsorted(self.crowd_cdf, rng.random(len(members))), len(self.crowd_cdf) - 1)
        phash[members] = self.crowd_phash[which] ^ _flips(rng, len(members), 63, rng.integers(6, 15, len(members)))
        chroma_words = self.crowd_chroma[which].copy()
        for j, bit in enumerate(np.argsort(rng.random((len(members), 128)), axis=1)[:, :24].T):
            hit = j < rng.integers(10, 25, len(members))
            chroma_words[hit, bit[hit] // 8] ^= (np.uint8(1) << (bit[hit] % 8).astype(np.uint8))
        chroma[members] = chroma_words
        own = self.crowd_layout[which]
        part = rng.integers(0, 4, (len(members), 2)) * 8  # one 8 x 8 part, as smooth as the rest: another specimen
        patches = _smooth(rng, len(members))[:, :8, :8]
        for k, (y, x) in enumerate(part.tolist()):
            own[k, y:y + 8, x:x + 8] = patches[k]
        sig[members] = own
        grey[members] = False
        for arr in (sha, pix, chroma):
            arr[exact] = arr[src[exact]]
        sig[exact] = sig[src[exact]]
        for arr in (phash, width, height, nbytes, grey):
            arr[exact] = arr[src[exact]]
        # phash distances of copies as bench/dedupe.py measures them (73 % within 4 bits, 97.5 % within 10)
        dist = rng.choice(np.arange(1, 11), size=m, p=[.2, .2, .18, .15, .07, .05, .05, .04, .03, .03])
        flips = np.zeros(m, dtype=np.uint64)
        for j, b in enumerate(np.argsort(rng.random((m, 63)), axis=1)[:, :10].T):  # 10 distinct bits a row
            flips |= np.where(j < dist, np.uint64(1) << b.astype(np.uint64), np.uint64(0))
        phash[near] = phash[src[near]] ^ flips[near]
        chroma[near] = chroma[src[near]]
        # and chroma_hash about twice as far of its 128 bits (bench/dedupe.py: 99 % of copies within 22)
        d_colour = np.minimum(2 * dist + rng.integers(0, 3, m), 20)
        bits = np.argsort(rng.random((m, 128)), axis=1)[:, :20]
        for j in range(20):
            hit = near & (j < d_colour)
            chroma[hit, bits[hit, j] // 8] ^= (np.uint8(1) << (bits[hit, j] % 8).astype(np.uint8))
        # an exact copy's signature is equal, a near copy's within noise of its source's
        noise = rng.integers(-2, 3, (int(near.sum()), 32, 32))
        sig[near] = np.clip(sig[src[near]].astype(np.int16) + noise, 0, 255).astype(np.uint8)
        self.planted.append(np.stack([self.done + src[near], self.done + np.flatnonzero(near), dist[near]], axis=1))
        self.done += m
        grey[near] = grey[src[near]]

        url_hash = _hex(rng.integers(0, 256, (m, 20), dtype=np.uint8))
        host = pick(self.hosts, rng.integers(0, 200, m))
        identifier = _join("https://", host, "/photos/", pc.cast(pa.array(gbif), pa.string()), "/",
                           pc.cast(pa.array(nth), pa.string()), ".jpg")
        species_key = pa.array(1_000_000 + cls, pa.int64())
        label = pc.cast(species_key, pa.string())
        outcome = pc.if_else(pa.array(ok), "ok", pick(pa.array(["http_404", "timeout", "not_an_image"])))
        okm = pa.array(ok)
        null_str = pa.nulls(m, pa.string())
        sp = self.species.take(pa.array(cls))
        cols = {
            "gbifID": pa.array(gbif), "basisOfRecord": pa.array(["HUMAN_OBSERVATION"] * 1, pa.string()).take(
                pa.array(np.zeros(m, dtype=np.int64))),
            "recordedBy": pick(self.people), "countryCode": pick(self.countries), "eventDate": pick(self.dates),
            "lifeStage": null_str, "sex": null_str, "scientificName": sp, "taxonRank": pc.if_else(okm, "SPECIES", "SPECIES"),
            "datasetKey": pick(self.datasets), "decimalLatitude": pa.array(rng.uniform(-60, 70, m)),
            "decimalLongitude": pa.array(rng.uniform(-180, 180, m)), "kingdom": pc.if_else(okm, "Animalia", "Animalia"),
            "phylum": pc.if_else(okm, "Arthropoda", "Arthropoda"), "class": pc.if_else(okm, "Insecta", "Insecta"),
            "order": _join("Order", pc.cast(pa.array(cls // 5000), pa.string())),
            "family": _join("Family", pc.cast(pa.array(cls // 500), pa.string())),
            "genus": _join("Genus", pc.cast(pa.array(cls // 10), pa.string())), "species": sp,
            "kingdomKey": pa.array(np.ones(m, dtype=np.int64)), "phylumKey": pa.array(np.full(m, 54)),
            "classKey": pa.array(np.full(m, 216)), "orderKey": pa.array(cls // 5000 + 10),
            "familyKey": pa.array(cls // 500 + 100), "genusKey": pa.array(cls // 10 + 10_000),
            "speciesKey": species_key, "taxonKey": species_key, "acceptedTaxonKey": species_key,
            "type": pc.if_else(okm, "StillImage", "StillImage"), "format": pc.if_else(okm, "image/jpeg", "image/jpeg"),
            "identifier": identifier, "references": _join("https://www.inaturalist.org/observations/",
                                                          pc.cast(pa.array(gbif), pa.string())),
            "created": pick(self.dates), "creator": pick(self.people), "publisher": pc.if_else(okm, "iNaturalist", "x"),
            "license": pick(self.licenses, rng.choice(4, m, p=[0.5, 0.3, 0.15, 0.05])),
            "rightsHolder": pick(self.people), "url_hash": url_hash,
            "outcome": outcome, "error": pc.if_else(okm, null_str, _join(outcome, " from ", host)),
            "attempts": pa.array(np.ones(m, dtype=np.int32)),
            "http_status": pa.array(np.where(ok, 200, 404).astype(np.int32)), "host": host,
            "path": pc.if_else(okm, _join("images/", label, "/", url_hash, ".jpg"), null_str),
            "shard": null_str, "key": null_str,
            "orig_width": pa.array(width, mask=~ok), "orig_height": pa.array(height, mask=~ok),
            "width": pa.array(np.minimum(width, 512), mask=~ok), "height": pa.array(np.minimum(height, 512), mask=~ok),
            "bytes": pa.array(nbytes, mask=~ok), "sha256": pc.if_else(okm, _hex(sha), null_str),
            "pixel_hash": pc.if_else(okm, _hex(pix), null_str), "phash": pa.array(phash, mask=~ok),
            "fetched_url": pc.if_else(okm, identifier, null_str),
            "chroma_hash": pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), m, [
                pa.array(~grey & ok).buffers()[1], pa.py_buffer(chroma.tobytes())]),
            "signature": pa.Array.from_buffers(pa.binary(), m, [
                pa.array(ok).buffers()[1], pa.py_buffer((np.arange(m + 1, dtype=np.int32) * 1024).tobytes()),
                pa.py_buffer(sig.tobytes())]),
        }
        arrays = [pc.cast(cols[f.name], f.type) if cols[f.name].type != f.type else cols[f.name] for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)


def generate(root: Path, rows: int) -> np.ndarray:
    """Write ``root/metadata.parquet`` with ``rows`` synthetic rows; return the planted near copies
    (source row, copy row, phash distance)."""
    root.mkdir(parents=True, exist_ok=True)
    schema, gen = _schema(), Generator(rows)
    with pq.ParquetWriter(root / "metadata.parquet", schema) as writer:
        for start in range(0, rows, BATCH):
            writer.write_table(gen.batch(min(BATCH, rows - start), schema))
    return np.concatenate(gen.planted)


def near_recall(root: Path, planted: np.ndarray) -> str:
    """Return, by phash distance, the share of planted near copies that curation's candidate search links."""
    sys.path.insert(0, str(ROOT / "src"))
    from gbifxdl.curate import CurateSettings
    from gbifxdl.curate._dedupe import phash_edges

    table = pq.read_table(root / "metadata.parquet", columns=["phash", "chroma_hash", "outcome"])
    ok = pc.fill_null(pc.equal(table["outcome"], "ok"), False).to_numpy()
    values = pc.fill_null(table["phash"], 0).to_numpy()
    wide = table["chroma_hash"].combine_chunks()
    confirm = np.frombuffer(wide.buffers()[1], dtype=">u8")[: 2 * len(wide)].reshape(-1, 2).astype(np.uint64)
    started = time.perf_counter()
    defaults = CurateSettings()
    a, b = phash_edges(values, np.flatnonzero(ok), defaults.phash_threshold, confirm=confirm,
                       has_confirm=pc.is_valid(wide).to_numpy(zero_copy_only=False),
                       confirm_threshold=defaults.chroma_threshold)
    took = time.perf_counter() - started
    found = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    live = planted[ok[planted[:, 0]] & ok[planted[:, 1]] & (values[planted[:, 0]] != values[planted[:, 1]])]
    hit = np.array([(min(s, c), max(s, c)) in found for s, c, _ in live.tolist()])
    parts = [f"{lo}-{hi} bits {hit[(live[:, 2] >= lo) & (live[:, 2] <= hi)].mean():.1%}"
             for lo, hi in ((1, 4), (5, 6), (7, 8), (9, 10))]
    return (f"near-duplicate candidate search on {len(values):,} rows: {took:.0f} s, {len(a):,} candidate pairs; "
            f"planted copies proposed: "
            f"{hit.mean():.1%} of {len(live):,} (" + ", ".join(parts) + ")")


_STEPS = {
    "curate": "from gbifxdl.curate import curate, CurateSettings\n"
              "kw = {'check_files': False} if 'check_files' in CurateSettings.__dataclass_fields__ else {}\n"
              "if not kw:  # the baseline has no such setting: its file checks find no problem instead\n"
              "    import gbifxdl.curate._files as files\n"
              "    files.check_files = files.check_samples = lambda *args, **kwargs: {}\n"
              "s = curate(DIR, CurateSettings(**kw), card=False)\n"
              "extra = {'kept': s.kept, 'removed': s.removed_total, 'classes': s.classes}",
    "card": "from gbifxdl.card import write_card\nwrite_card(DIR)\nextra = {}",
    "report": "from gbifxdl.report import write_report\nwrite_report(DIR)\nextra = {}",
}
_WRAP = """
import json, resource, sys, time
DIR = sys.argv[1]
started = time.perf_counter()
{body}
extra['seconds'] = time.perf_counter() - started
extra['peak_mib'] = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024
print('RESULT ' + json.dumps(extra))
"""


def run_step(step: str, root: Path, src: Path, timeout: float) -> dict:
    """Return the figures of one step run in a fresh process (wall seconds, peak MiB, ...)."""
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _WRAP.format(body=_STEPS[step]), str(root)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    wall = time.perf_counter() - started
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1][:100], "wall": wall}
    return dict(json.loads(line[7:]), wall=wall)


def measure(rows: int, src: Path, label: str, tmp: Path, timeout: float, cache: Path | None = None
            ) -> dict[str, dict]:
    root = tmp / f"{label}-{rows}"
    started = time.perf_counter()
    kept, kept_planted = (cache / f"table-{rows}.parquet", cache / f"planted-{rows}.npy") if cache else (None, None)
    if kept is not None and kept.exists() and kept_planted is not None and kept_planted.exists():
        root.mkdir(parents=True, exist_ok=True)  # the same table as last time (curation rewrites its copy)
        shutil.copyfile(kept, root / "metadata.parquet")
        planted = np.load(kept_planted)
        made = "copied from " + str(kept)
    else:
        planted = generate(root, rows)
        made = "generated"
        if kept is not None and kept_planted is not None:
            cache.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / "metadata.parquet", kept)
            np.save(kept_planted, planted)
    print(f"[{label} {rows:,} rows] table {made} in {time.perf_counter() - started:.0f} s "
          f"({(root / 'metadata.parquet').stat().st_size / 2**20:,.0f} MiB)", flush=True)
    if label == "new" and rows <= RECALL_ROWS:
        print(near_recall(root, planted), flush=True)
    out = {}
    for step in _STEPS:
        out[step] = run_step(step, root, src, timeout)
        # the load says how far a figure is from a quiet machine's (other work on the same cores)
        print(f"[{label} {rows:,} rows] {step}: {out[step]} (load average after: "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
        if "error" in out[step]:
            break
    shutil.rmtree(root, ignore_errors=True)
    return out


def _cell(figures: dict | None, key: str) -> str:
    if not figures:
        return "-"
    if "error" in figures:
        return "failed"
    return f"{figures[key]:,.0f}" if key == "peak_mib" else f"{figures[key]:,.1f}"


# the last commit whose curation, card and report held Python lists of every row
BASELINE_REF = "ec7c4e7"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--baseline-rows", type=int, default=200_000, help="0: no baseline")
    parser.add_argument("--baseline-ref", default=BASELINE_REF,
                        help="the git commit of the code before the change (default: the last one with row lists)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep each generated table here and reuse it next time (10M rows: ~13 GB, minutes to make)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gbifxdl-scale-"))
    results: dict[tuple[str, int], dict[str, dict]] = {}
    try:
        if args.baseline_rows:
            base_src = tmp / "baseline"
            base_src.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_ref, "src/gbifxdl"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive, check=True)
            # the baseline is not worth more than 4x the target at its size: beyond, it swaps the machine
            results[("before", args.baseline_rows)] = measure(args.baseline_rows, base_src / "src", "before", tmp,
                                                                     args.timeout, args.cache)
        for rows in args.rows:
            results[("this tree", rows)] = measure(rows, ROOT / "src", "new", tmp, args.timeout, args.cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cols = list(results)
    print()
    print(f"{'':<22}" + "".join(f"{f'{code} {rows / 1e6:g}M':>22}" for code, rows in cols))
    for step in (*_STEPS, "total"):
        for key, unit in (("wall", "s"), ("peak_mib", "MiB")):
            cells = []
            for c in cols:
                figs = results[c]
                if step == "total":
                    ok = all(s in figs and "error" not in figs[s] for s in _STEPS)
                    value = (sum(figs[s]["wall"] for s in _STEPS) if key == "wall"
                             else max(figs[s]["peak_mib"] for s in _STEPS)) if ok else None
                    cells.append("failed" if value is None else f"{value:,.1f}" if key == "wall" else f"{value:,.0f}")
                else:
                    cells.append(_cell(figs.get(step), key))
            print(f"{step + ' ' + unit:<22}" + "".join(f"{c:>22}" for c in cells))
    print(f"targets at 10M rows: total < {TARGET_S} s wall, every step < {TARGET_MIB} MiB peak")
    news = [c for c in cols if c[0] == "this tree"]
    if len(news) >= 2:
        (_, a), (_, b) = news[0], news[-1]
        fa, fb = results[news[0]], results[news[-1]]
        if all(s in f and "error" not in f[s] for f in (fa, fb) for s in _STEPS):
            ta, tb = sum(fa[s]["wall"] for s in _STEPS), sum(fb[s]["wall"] for s in _STEPS)
            print(f"growth {a / 1e6:g}M -> {b / 1e6:g}M rows (x{b / a:g}): time x{tb / ta:.1f}, peak memory "
                  f"x{max(fb[s]['peak_mib'] for s in _STEPS) / max(fa[s]['peak_mib'] for s in _STEPS):.1f}")


if __name__ == "__main__":
    main()
