"""Which near-duplicate candidates are confirmed, and on what evidence.

The perceptual hashes only propose pairs (``_dedupe.phash_edges``); each proposed pair is
then checked on its pixels (``_pixels``): the stored signatures first, then, where both
image files can be read, the pixels decoded from them at 128, then at 256 pixels a side. A pair whose rows have no
signature (fetched before signatures existed) is checked on signatures made from its
files; only where neither exists (an old table without its files) does the hash match
alone decide, as it did before, and the summary counts those pairs.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gbifxdl._locate import ImageLocator
from gbifxdl.curate import _pixels
from gbifxdl.curate._columns import Source
from gbifxdl.curate._images import pixels_of

Progress = Callable[[str, int, int], None]
_ROWS_AT_ONCE = 2048  # images decoded and held at once (128 x 128 x 3 bytes each)
_SIGNATURE_BATCH = 32_768  # rows a batch when reading signatures (a kilobyte each)
# measured by bench/dedupe.py (64,000 images of 16,000 photos, three quarters of them in look-alike
# collections): pairs of different photos, and how many of them curation linked (none: the 45 pairs of
# camera-trap frames and pinned insects that the first two stages linked, the third rejects)
MEASURED_PAIRS = 2_047_872_000
MEASURED_FALSE = 0


@dataclass
class Evidence:
    """How the candidate pairs of one curation were decided."""

    candidates: int = 0  # pairs the hashes proposed
    rejected_by_signature: int = 0
    rejected_by_pixels: int = 0
    rejected_by_detail: int = 0  # passed the pixel stage, failed the third (the 256-pixel files, finer aligned)
    confirmed_by_pixels: int = 0  # on the image files (the second stage, and the third where the files allow)
    confirmed_by_signature: int = 0  # on the signatures alone: a file unreadable, or under 128 pixels a side
    confirmed_by_hashes: int = 0  # no signature and no file: the hashes alone, as before signatures existed

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def rejected_pairs(pairs: Mapping[str, int]) -> int:
    """Return how many candidate pairs a curation's :class:`Evidence` (as a dict, from its summary)
    rejected, at any stage (a summary written before a stage existed lacks its count)."""
    return sum(pairs.get(f"rejected_by_{stage}", 0) for stage in ("signature", "pixels", "detail"))


def expected_false_matches(images: int) -> float:
    """Return the expected number of false near-duplicate matches among ``images`` images: the rate per
    pair of different photos measured by bench/dedupe.py (with none seen, one in the pairs measured: an
    upper estimate) times the pairs. The set measured is mostly look-alike collections: for other
    photos it overestimates."""
    rate = max(MEASURED_FALSE, 1) / MEASURED_PAIRS
    return rate * images * (images - 1) / 2


class SignatureFile:
    """Signatures (k, 32, 32) uint8 in a ``.npy`` file, read a few thousand rows at a time.

    Millions of candidate rows have a gigabyte of signatures: on disk (the page cache keeps what
    fits) they never sit in curation's memory whole. Indexing (``sigs[rows]``, as numpy) maps the
    file, copies the rows and unmaps it again, so the mapped pages never accumulate in the process;
    forked processes read it the same way.
    """

    def __init__(self, path: Path, count: int) -> None:
        self.path, self.count = path, count
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                           shape=(count, _pixels.SIGNATURE_SIDE, _pixels.SIGNATURE_SIDE))
        self.offset = header.offset
        del header  # the file, all zeros (sparse), with its header

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        mapped = np.load(self.path, mmap_mode="r")
        try:
            return np.array(mapped[index])
        finally:
            del mapped

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` (m, 32, 32) uint8 at rows ``start``... (plain file writes: nothing stays mapped)."""
        with open(self.path, "r+b") as f:
            f.seek(self.offset + start * _pixels.SIGNATURE_SIDE ** 2)
            f.write(np.ascontiguousarray(rows, dtype=np.uint8).tobytes())


_ON_DISK_FROM = 131_072  # candidate rows from which their signatures go to a file (128 MB in memory below)


def _signatures(src: Source, rows: np.ndarray, folder: Path | None = None
                ) -> tuple[np.ndarray | SignatureFile, np.ndarray]:
    """Return the stored signatures of the sorted ``rows`` as (k, 32, 32) uint8, and which rows have one:
    an array, or from ``_ON_DISK_FROM`` rows a :class:`SignatureFile` in ``folder``.

    Read a batch at a time, each batch's wanted signatures copied straight into the result.
    """
    side = _pixels.SIGNATURE_SIDE
    size = side * side
    on_disk = folder is not None and len(rows) >= _ON_DISK_FROM
    out: np.ndarray | SignatureFile
    out = SignatureFile(folder / f"near-signatures-{os.getpid()}.npy", len(rows)) if on_disk and folder \
        else np.zeros((len(rows), side, side), dtype=np.uint8)
    has = np.zeros(len(rows), dtype=bool)
    if not src.has("signature") or not len(rows):
        return out, has
    start = 0
    for part in src.batches(["signature"], _SIGNATURE_BATCH):
        lo, hi = np.searchsorted(rows, [start, start + part.num_rows])
        if hi > lo:
            column = part.column(0).combine_chunks().take(pa.array(rows[lo:hi] - start))
            lengths = pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
            valid = pc.is_valid(column).to_numpy(zero_copy_only=False) & (lengths == size)
            if valid.any():
                fixed = column.filter(pa.array(valid)).cast(pa.binary(size))
                data = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)[fixed.offset * size:]
                found = np.zeros((hi - lo, side, side), dtype=np.uint8) if isinstance(out, SignatureFile) \
                    else out[lo:hi]
                found.reshape(hi - lo, size)[valid] = data[: int(valid.sum()) * size].reshape(-1, size)
                if isinstance(out, SignatureFile):
                    out.write(int(lo), found)
                has[lo:hi] = valid
        start += part.num_rows
    return out, has


class _Files:
    """The rows' image files, decoded on demand (a bounded number held at once)."""

    def __init__(self, root: Path, src: Source, rows: np.ndarray) -> None:
        self.locator = ImageLocator(root)  # the bytes, decoded here at either stage's side
        self.paths = src.take("path", rows).to_pylist() if src.has("path") else [None] * len(rows)
        self.shards = src.take("shard", rows).to_pylist() if src.has("shard") else [None] * len(rows)
        self.keys = src.take("key", rows).to_pylist() if src.has("key") else [None] * len(rows)
        self.held: dict[tuple[int, int], tuple[np.ndarray, int] | None] = {}

    def _read(self, position: int, side: int) -> tuple[np.ndarray, int] | None:
        if (position, side) not in self.held:
            if len(self.held) >= _ROWS_AT_ONCE:
                self.held.clear()
            data = self.locator.data(self.paths[position], self.shards[position], self.keys[position])
            self.held[(position, side)] = None if data is None else pixels_of(data, side)
        return self.held[(position, side)]

    def get(self, position: int) -> tuple[np.ndarray, int] | None:
        """Return the 128-pixel YCbCr of ``rows[position]`` and its shorter side (None: unreadable)."""
        return self._read(position, _pixels.PIXEL_SIDE)

    def detail(self, position: int) -> tuple[np.ndarray, int] | None:
        """Return the same at ``_pixels.DETAIL_SIDE`` (the third stage's)."""
        return self._read(position, _pixels.DETAIL_SIDE)


_PARALLEL_FROM = 65_536  # candidate pairs from which the signature stage runs on every core
_CHUNK = 16_384
_SHARED: dict[str, np.ndarray] = {}  # the signatures and pairs forked processes read (set before the fork)


def _packed(cuts: np.ndarray) -> np.ndarray:
    """Return alignment cuts (multiples of the coarse step) as int8 steps: a quarter of their memory."""
    return np.rint(cuts / _pixels.COARSE_STEP).astype(np.int8)


def _unpacked(steps: np.ndarray) -> np.ndarray:
    """Return the cuts of ``_packed`` steps, the very float32 values the signature stage gave."""
    return (steps.astype(np.float64) * _pixels.COARSE_STEP).astype(np.float32)


def _scores_of(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    sigs, ia, ib = _SHARED["sigs"], _SHARED["ia"], _SHARED["ib"]
    scores, cuts = _pixels.signature_scores(sigs, sigs, ia[span[0]:span[1]], ib[span[0]:span[1]])
    return scores, _packed(cuts)


def _signature_scores(sigs: np.ndarray | SignatureFile, ia: np.ndarray, ib: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``_pixels.signature_scores`` of the pairs (``ia``, ``ib``), on every core for many pairs
    (the cuts ``_packed``: tens of millions of pairs).

    The work is numpy on a few kilobytes a pair, and millions of pairs at tens of millions of rows:
    on Linux, forked processes share the signatures (copy-on-write) and take chunks of pairs. The pairs
    go in order of their second image, so that a chunk's second images are few (each is moved under
    every alignment once, however many pairs it is in).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if len(ia) < _PARALLEL_FROM or cores < 2 or sys.platform != "linux":
        scores, cuts = _pixels.signature_scores(sigs, sigs, ia, ib)
        return scores, _packed(cuts)
    order = np.argsort(ib, kind="stable")
    spans = [(start, min(start + _CHUNK, len(ia))) for start in range(0, len(ia), _CHUNK)]
    _SHARED.update(sigs=sigs, ia=ia[order], ib=ib[order])
    try:
        # the processes ignore Ctrl-C: the curation's own process stops them, and says so in one line
        with multiprocessing.get_context("fork").Pool(cores, initializer=signal.signal,
                                                      initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
            parts = pool.map(_scores_of, spans, chunksize=1)
    finally:
        _SHARED.clear()
    scores = np.empty(len(ia), dtype=np.float32)
    cuts = np.empty((len(ia), 4), dtype=np.int8)
    for (start, stop), (s, c) in zip(spans, parts):
        scores[order[start:stop]], cuts[order[start:stop]] = s, c
    return scores, cuts


Pixels = Callable[[int], "tuple[np.ndarray, int] | None"]  # position -> (128 x 128 YCbCr, shorter side) or None


def decide(ia: np.ndarray, ib: np.ndarray, sigs: np.ndarray | SignatureFile, has_sig: np.ndarray,
           pixels: Pixels | None, tolerance: float = 1.0, progress: Progress | None = None,
           detail: Pixels | None = None) -> tuple[np.ndarray, Evidence, np.ndarray]:
    """Return which candidate pairs (``ia[k]``, ``ib[k]``: positions in ``sigs``) are the same picture, how
    each was decided, and every pair's scores (signature stage, pixel stage; NaN where it did not run).

    ``sigs``/``has_sig``: each position's signature (k, 32, 32) and whether it has one; ``pixels``: a
    position's decoded image for the second stage (None: no files, the signatures decide); ``detail``: the
    same at ``_pixels.DETAIL_SIDE`` for the third (None: the second decides). A pair with a signature
    missing on either side is kept on its hash match alone. ``tolerance`` multiplies every stage's line.
    """
    evidence = Evidence(candidates=len(ia))
    both = has_sig[ia] & has_sig[ib]
    keep = ~both  # without signatures on both sides: the hashes alone decide
    evidence.confirmed_by_hashes = int(np.count_nonzero(~both))
    scores = np.full((len(ia), 3), np.nan, dtype=np.float32)
    on_sigs = np.flatnonzero(both)
    s1, cuts = _signature_scores(sigs, ia[on_sigs], ib[on_sigs])
    scores[on_sigs, 0] = s1
    passed = s1 <= _pixels.SIGNATURE_THRESHOLD * tolerance
    evidence.rejected_by_signature = int(np.count_nonzero(~passed))
    on_sigs, cuts = on_sigs[passed], _unpacked(cuts[passed])
    if pixels is None:
        keep[on_sigs] = True
        evidence.confirmed_by_signature = len(on_sigs)
        return keep, evidence, scores
    # pairs in order of their first position, so that the images held at once serve many pairs
    order = np.lexsort((ib[on_sigs], ia[on_sigs]))
    on_sigs, cuts = on_sigs[order], cuts[order]
    step = _ROWS_AT_ONCE // 4
    for start in range(0, len(on_sigs), step):
        if progress is not None:
            progress("comparing near duplicates", start, len(on_sigs))
        chunk, chunk_cuts = on_sigs[start:start + step], cuts[start:start + step]
        got = [(pixels(int(ia[k])), pixels(int(ib[k]))) for k in chunk.tolist()]
        # both images read, and both at least as large as the pixel stage: else the signatures decide
        readable = np.array([p is not None and q is not None and min(p[1], q[1]) >= _pixels.PIXEL_SIDE
                             for p, q in got], dtype=bool)
        keep[chunk[~readable]] = True
        evidence.confirmed_by_signature += int(np.count_nonzero(~readable))
        if readable.any():
            pairs = [g for g, ok in zip(got, readable) if ok]
            s2 = _pixels.pixel_scores(np.stack([p[0] for p, _ in pairs]), np.stack([q[0] for _, q in pairs]),
                                      chunk_cuts[readable])
            scores[chunk[readable], 1] = s2
            ok = s2 <= _pixels.PIXEL_THRESHOLD * tolerance
            evidence.rejected_by_pixels += int(np.count_nonzero(~ok))
            passed_pixels = chunk[readable][ok]
            if detail is not None and len(passed_pixels):
                passed_pixels = _third_stage(passed_pixels, chunk_cuts[readable][ok], ia, ib, detail, tolerance,
                                             scores, evidence)
            keep[passed_pixels] = True
            evidence.confirmed_by_pixels += len(passed_pixels)
    return keep, evidence, scores


def _third_stage(pairs: np.ndarray, cuts: np.ndarray, ia: np.ndarray, ib: np.ndarray, detail: Pixels,
                 tolerance: float, scores: np.ndarray, evidence: Evidence) -> np.ndarray:
    """Return which of ``pairs`` (that passed the pixel stage) the third stage keeps (its score in
    ``scores[:, 2]``); a pair with an image unreadable or under ``DETAIL_SIDE`` a side keeps the pixel
    stage's decision."""
    got = [(detail(int(ia[k])), detail(int(ib[k]))) for k in pairs.tolist()]
    able = np.array([p is not None and q is not None and min(p[1], q[1]) >= _pixels.DETAIL_SIDE
                     for p, q in got], dtype=bool)
    if not able.any():
        return pairs
    s3 = _pixels.detail_scores(np.stack([p[0] for (p, _), ok in zip(got, able) if ok]),
                               np.stack([q[0] for (_, q), ok in zip(got, able) if ok]), cuts[able])
    scores[pairs[able], 2] = s3
    fails = s3 > _pixels.DETAIL_THRESHOLD * tolerance
    evidence.rejected_by_detail += int(np.count_nonzero(fails))
    drop = np.zeros(len(pairs), dtype=bool)
    drop[np.flatnonzero(able)[fails]] = True
    return pairs[~drop]


def confirm(root: Path, src: Source, a: np.ndarray, b: np.ndarray, check_files: bool, tolerance: float = 1.0,
            progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, Evidence, np.ndarray]:
    """Return the candidate edges ``a[k]``-``b[k]`` (row numbers) that the pixels confirm, how each was
    decided, and the confirmed pairs' scores (see ``decide``).

    ``check_files``: read the image files for the second stage (False: signatures, or else hashes, decide).
    """
    if not len(a):
        return a, b, Evidence(), np.empty((0, 3))
    used = np.zeros(int(max(a.max(), b.max())) + 1, dtype=bool)  # the candidates' rows (no sort of 2 x pairs)
    used[a] = True
    used[b] = True
    rows = np.flatnonzero(used)
    position = np.cumsum(used, dtype=np.int32) - 1  # row -> its position among ``rows``
    del used
    ia, ib = position[a], position[b]  # int32: tens of millions of pairs
    del position
    folder = root / ".gbifxdl"
    for stale in folder.glob("near-signatures-*.npy"):  # left by a curation killed meanwhile
        stale.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    sigs, has_sig = _signatures(src, rows, folder)
    try:
        files = _Files(root, src, rows) if check_files else None
        if files is not None:  # rows fetched before signatures: one from the file, where it can be read
            for pos in np.flatnonzero(~has_sig).tolist():
                got = files.get(pos)
                if got is not None:
                    made = _pixels.signature_of_pixels(got[0])
                    if isinstance(sigs, SignatureFile):
                        sigs.write(pos, made[None])
                    else:
                        sigs[pos] = made
                    has_sig[pos] = True
        keep, evidence, scores = decide(ia, ib, sigs, has_sig, files.get if files is not None else None, tolerance,
                                        progress, files.detail if files is not None else None)
    finally:
        if isinstance(sigs, SignatureFile):
            sigs.path.unlink(missing_ok=True)
    return a[keep], b[keep], evidence, scores[keep]
