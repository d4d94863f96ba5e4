"""What "find more like these" learns from: one vector per image, keyed by url_hash.

An embedder's results from ``gbifxdl infer`` (``DIR/.gbifxdl/models/NAME/part-*.parquet``, its
``embedding`` column) when one ran; else a cheap built-in description computed from each image
once and cached in ``DIR/.gbifxdl/review/features-cheap-v1.npz``: a joint colour histogram
(4 bins a channel), an 8x8 grey thumbnail, and a few statistics (channel means and spreads,
saturation, edge strength, aspect ratio). It sees what makes most unusable GBIF images
unusable (labels and sheets, drawers, dark or blank frames, maps, drawings), not species.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from gbifxdl._io import atomic_path
from gbifxdl._locate import ImageLocator, read_source
from gbifxdl._marks import REVIEW
from gbifxdl.infer import read_results
from gbifxdl.review._index import Images

CHEAP_CACHE = REVIEW / "features-cheap-v1.npz"
# where `gbifxdl infer` leaves each model's results (ARCHITECTURE.md, "Model results"): NAME/part-NNNNNN.parquet
MODEL_RESULTS = Path(".gbifxdl") / "models"
CHEAP_NAME = "built-in colour and shape features"
_CHUNK = 512


@dataclass
class Features:
    """Vectors of some of a dataset's images: ``matrix[i]`` describes image ``keys[i]``."""

    source: str
    keys: list[str]
    matrix: np.ndarray  # float32, one row per key
    _z: np.ndarray | None = field(default=None, repr=False)

    def rows(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    def standardized(self) -> np.ndarray:
        """Return the vectors centred and scaled by every image's mean and spread (computed once).

        Scaled on the whole dataset, not on the few marked images: those often come from one
        class, whose narrow spreads would otherwise blow up what only tells classes apart.
        """
        if self._z is None:
            spread = self.matrix.std(axis=0)
            spread[spread == 0] = 1
            self._z = ((self.matrix - self.matrix.mean(axis=0)) / spread).astype(np.float32)
        return self._z


def embedders(root: Path) -> list[str]:
    """Return the names of the models of ``root`` whose results hold embeddings, sorted."""
    return models_with(root, "embedding")


def models_with(root: Path, column: str) -> list[str]:
    """Return the names of the models of ``root`` whose results have ``column``, sorted."""
    folder = Path(root) / MODEL_RESULTS
    if not folder.is_dir():
        return []
    found = []
    for model in sorted(p for p in folder.iterdir() if p.is_dir()):
        first = next(iter(sorted(model.glob("part-*.parquet"))), None)
        try:
            if first is not None and column in pq.read_schema(first).names:
                found.append(model.name)
        except (OSError, pa.ArrowException):
            continue  # a part being written or damaged: not a model to learn from
    return found


def model_features(root: Path, name: str, images: Images) -> Features:
    """Return the embeddings model ``name`` computed for the images (rows with an error left out)."""
    table = read_results(root, name).select(["url_hash", "embedding", "error"])
    table = table.filter(pc.and_(pc.is_null(table["error"]), pc.is_valid(table["embedding"])))
    keys = table["url_hash"].to_pylist()
    keep = [i for i, k in enumerate(keys) if k in images.position]
    table = table.take(pa.array(keep, pa.int64()))
    column = table["embedding"].combine_chunks()
    lengths = set(pc.list_value_length(column).unique().to_pylist()) if len(column) else {0}
    if len(lengths) != 1:
        raise ValueError(f"model {name!r}: embeddings of different lengths ({sorted(lengths)})")
    dim = lengths.pop()
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return Features(f"the embeddings of model {name}", table["url_hash"].to_pylist(), values.reshape(len(table), dim))


def cheap_vector(data: bytes) -> np.ndarray | None:
    """Return the built-in description of an image's bytes (None: not an image PIL can read)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            img.draft("RGB", (64, 64))
            rgb = img.convert("RGB").resize((32, 32), Image.BILINEAR)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0  # 32x32x3
    bins = np.minimum((pixels * 4).astype(np.int32), 3)
    joint = bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]
    histogram = np.bincount(joint.ravel(), minlength=64).astype(np.float32) / joint.size
    grey = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    thumb = grey.reshape(8, 4, 8, 4).mean(axis=(1, 3)).ravel()
    saturation = (pixels.max(axis=2) - pixels.min(axis=2)).mean()
    edges_x = np.abs(np.diff(grey, axis=1)).mean()
    edges_y = np.abs(np.diff(grey, axis=0)).mean()
    stats = np.concatenate([pixels.mean(axis=(0, 1)), pixels.std(axis=(0, 1)),
                            [saturation, edges_x, edges_y, np.log(max(width, 1) / max(height, 1))]])
    return np.concatenate([histogram, thumb, stats]).astype(np.float32)


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as cached:
            return dict(zip(cached["keys"].tolist(), cached["matrix"]))
    except (OSError, KeyError, ValueError):
        return {}


def cheap_features(root: Path, images: Images, locator: ImageLocator, *, threads: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Features:
    """Return the built-in description of every readable image, computing (in threads) and caching
    those not yet in the cache."""
    cache = root / CHEAP_CACHE
    known = _load_cache(cache)
    missing = [i for i, k in enumerate(images.keys) if k not in known]
    if missing:
        def describe(i: int) -> tuple[str, np.ndarray | None]:
            where = locator.source(images.paths[i], images.shards[i], images.members[i])
            if where is None:
                return images.keys[i], None
            try:
                return images.keys[i], cheap_vector(read_source(where))
            except OSError:
                return images.keys[i], None

        # the locator indexes shards as it goes: look every image up here, read and decode in threads
        with ThreadPoolExecutor(threads or min(4, os.cpu_count() or 1)) as pool:
            for start in range(0, len(missing), _CHUNK):
                for key, vector in pool.map(describe, missing[start:start + _CHUNK]):
                    if vector is not None:
                        known[key] = vector
                if progress:
                    progress(min(start + _CHUNK, len(missing)), len(missing))
        keys = sorted(known)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(keys), matrix=np.stack([known[k] for k in keys]) if keys
                     else np.zeros((0, 0), np.float32))
    keys = [k for k in images.keys if k in known]
    matrix = np.stack([known[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)
    return Features(CHEAP_NAME, keys, matrix.astype(np.float32))


def load_features(root: Path, images: Images, locator: ImageLocator, model: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Features:
    """Return the vectors "find more like these" uses: model ``model``'s embeddings, else the first
    embedder's (by name) when one ran, else the built-in ones (``progress(done, total)`` as they
    are computed)."""
    if model is None:
        found = embedders(root)
        model = found[0] if found else None
    if model is not None:
        return model_features(root, model, images)
    return cheap_features(root, images, locator, progress=progress)
