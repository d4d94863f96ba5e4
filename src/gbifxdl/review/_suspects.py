"""The grid's "likely wrong first" order: a score in [0, 1] and a reason for each image.

Signals, the strongest of which gives an image its score and its reason:

- ``ranked bad p=0.93``: the probability from the last "find more like these" ranking;
- ``outlier``: far from its class's other images (vectors of an embedder, or the built-in
  features once computed), more than 2.5 spreads from the class's mean distance;
- ``near duplicate``: a perceptual hash (``phash``) within 6 bits of another image's;
- ``small, N px``: the original picture is under 256 pixels (N) on its short side;
- ``MODEL: bad`` / ``MODEL: another species``: a classifier ``gbifxdl infer`` ran (a cleaner's
  probability of its bad label; a species classifier's score for a top label that is not the
  image's class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gbifxdl._locate import METADATA, REMOVED
from gbifxdl.fetch.hashing import popcount64
from gbifxdl.review._features import Features
from gbifxdl.review._index import Images

NEAR_BITS = 6
SMALL_SIDE = 256


def _sizes_and_hashes(root: Path, images: Images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the short side of each image's original (0: unknown), its phash and whether it has one."""
    side = np.zeros(len(images), np.int64)
    phash = np.zeros(len(images), np.uint64)
    has = np.zeros(len(images), bool)
    for name in (REMOVED, METADATA):  # the kept row wins over an old removed one
        path = root / name
        if not path.is_file():
            continue
        names = set(pq.read_schema(path).names)
        wanted = [c for c in ("url_hash", "orig_width", "orig_height", "width", "height", "phash") if c in names]
        if "url_hash" not in wanted:
            continue
        table = pq.read_table(path, columns=wanted)
        where = np.array([images.position.get(k, -1) for k in table["url_hash"].to_pylist()], np.int64)
        found = where >= 0

        def column(name: str) -> np.ndarray:
            if name not in table.column_names:
                return np.zeros(table.num_rows, np.int64)
            return table[name].cast(pa.int64()).fill_null(0).to_numpy()

        width = np.where(column("orig_width") > 0, column("orig_width"), column("width"))
        height = np.where(column("orig_height") > 0, column("orig_height"), column("height"))
        side[where[found]] = np.minimum(width, height)[found]
        if "phash" in table.column_names:
            hashes = table["phash"].cast(pa.uint64())
            valid = hashes.is_valid().to_numpy(zero_copy_only=False)
            values = hashes.fill_null(0).to_numpy()
            phash[where[found & valid]] = values[found & valid]
            has[where[found & valid]] = True
    return side, phash, has


def near_duplicates(phash: np.ndarray, has: np.ndarray, bits: int = NEAR_BITS, reach: int = 4) -> np.ndarray:
    """Return which images have another image's phash within ``bits`` bits.

    Two hashes that close agree on at least one of their four 16-bit quarters when ``bits`` < 4,
    and most often when more: for each quarter the hashes are sorted by it and each compared
    with the next ``reach`` ones that share it (vectorised; no pair loop).
    """
    found = np.zeros(len(phash), bool)
    idx = np.flatnonzero(has)
    if len(idx) < 2:
        return found
    values = phash[idx]
    for quarter in range(4):
        part = (values >> np.uint64(16 * quarter)) & np.uint64(0xFFFF)
        order = np.argsort(part, kind="stable")
        for step in range(1, reach + 1):
            a, b = order[:-step], order[step:]
            same = part[a] == part[b]
            close = same & (popcount64(values[a] ^ values[b]) <= bits)
            found[idx[a[close]]] = True
            found[idx[b[close]]] = True
    return found


def outliers(images: Images, features: Features) -> np.ndarray:
    """Return how far each image lies from its class's centre, in spreads above the class's mean distance (0: none)."""
    out = np.zeros(len(images), np.float32)
    if not len(features.keys):
        return out
    z = features.standardized()
    where = np.array([images.position[k] for k in features.keys], np.int64)
    labels = np.array(images.labels, dtype=object)[where]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 8:
            continue
        vectors = z[members]
        distance = np.linalg.norm(vectors - vectors.mean(axis=0), axis=1)
        spread = distance.std() or 1.0
        out[where[members]] = (distance - distance.mean()) / spread
    return out


# a cleaner's labels for an unusable image (the original gbifxdl's cleaner: "clean" / "not_clean")
BAD_LABELS = frozenset({"bad", "not_clean", "unclean", "dirty", "unusable", "reject", "rejected", "junk", "other"})


def classifier_doubts(root: Path, images: Images) -> list[tuple[np.ndarray, str]]:
    """Return, for each classifier ``gbifxdl infer`` ran, how much it doubts each image and why.

    A cleaner (labels such as ``clean`` / ``not_clean``, ``good`` / ``bad``): its probability of
    the bad label. A species classifier (labels that include the dataset's class labels or
    species names): the score of its top label when that is not the image's class.
    """
    from gbifxdl.infer import read_results
    from gbifxdl.review._features import models_with

    out = []
    for name in models_with(root, "top_labels"):
        table = read_results(root, name).select(["url_hash", "top_labels", "top_scores"]).to_pylist()
        labels = {label for row in table for label in (row["top_labels"] or [])}
        classes = set(images.labels) | set(images.names.values())
        doubt = np.zeros(len(images), np.float32)
        bad = labels & BAD_LABELS
        if bad and not labels & classes:
            for row in table:
                i = images.position.get(row["url_hash"])
                if i is not None and row["top_labels"]:
                    doubt[i] = sum(s for lab, s in zip(row["top_labels"], row["top_scores"]) if lab in bad)
            out.append((doubt, f"{name}: bad"))
        elif labels & classes:
            for row in table:
                i = images.position.get(row["url_hash"])
                if i is None or not row["top_labels"]:
                    continue
                top = row["top_labels"][0]
                if top != images.labels[i] and top != images.names.get(images.labels[i]):
                    doubt[i] = row["top_scores"][0]
            out.append((doubt, f"{name}: another species"))
    return out


Signals = list[tuple[np.ndarray, str]]  # per signal: each image's suspicion (0: none), and the signal's name


def signals(root: Path, images: Images, features: Features | None = None) -> tuple[Signals, np.ndarray]:
    """Return what makes each image suspect, read from the tables and ``features`` (each image's short
    side too, which names the "small" reason): the part of :func:`likely_wrong` that no mark changes."""
    side, phash, has = _sizes_and_hashes(root, images)
    found: Signals = []
    small = (side > 0) & (side < SMALL_SIDE)
    found.append((np.where(small, 0.3 + 0.3 * (1 - side / SMALL_SIDE), 0.0), "small"))
    found.append((np.where(near_duplicates(phash, has), 0.55, 0.0), "near duplicate"))
    if features is not None:
        far = outliers(images, features)
        found.append((np.clip((far - 2.5) / 4, 0, 0.4) + np.where(far > 2.5, 0.4, 0.0), "outlier"))
    found.extend(classifier_doubts(root, images))
    return found, side


def combined(found: tuple[Signals, np.ndarray], images: Images, probability: dict[str, float] | None = None
             ) -> tuple[np.ndarray, list[str | None]]:
    """Return every image's suspicion score and its reason (None: nothing seen) from :func:`signals` and a
    ranking's ``probability`` of the target (key -> probability)."""
    parts, side = list(found[0]), found[1]
    if probability:
        ranked = np.zeros(len(images), np.float32)
        for key, p in probability.items():
            if key in images.position:
                ranked[images.position[key]] = p
        parts.append((ranked, "ranked"))
    stack = np.stack([s for s, _ in parts])
    best = stack.argmax(axis=0)
    score = stack.max(axis=0)
    reasons: list[str | None] = []
    for i, (b, s) in enumerate(zip(best.tolist(), score.tolist())):
        name = parts[b][1]
        if s <= 0:
            reasons.append(None)
        elif name == "small":
            reasons.append(f"small, {side[i]} px")
        elif name == "ranked":
            reasons.append(f"ranked p={s:.2f}")
        else:
            reasons.append(str(name))
    return score, reasons


def likely_wrong(root: Path, images: Images, features: Features | None = None,
                 probability: dict[str, float] | None = None) -> tuple[np.ndarray, list[str | None]]:
    """Return every image's suspicion score and the reason for it (None: nothing seen)."""
    return combined(signals(root, images, features), images, probability)
