"""Benchmark images: JPEGs of real-world sizes (0.2 to 12 megapixels), made once and cached.

Megapixels are log-uniform over [0.2, 12] (mean about 2.9), JPEG quality 85, with
photo-like content and sensor noise, so the mean file is a few hundred kB.
"""

from __future__ import annotations

import os
import sys

# bench/ holds scripts named like standard modules (select.py): never import from it by name
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from gbifxdl.testing._images import base_pixels  # noqa: E402


def _size(i: int) -> tuple[int, int]:
    rng = np.random.default_rng([i, 99])
    mp = math.exp(rng.uniform(math.log(0.2), math.log(12.0))) * 1e6
    ratio = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0]))
    w = int(math.sqrt(mp * ratio))
    h = int(mp / w)
    return (w, h) if rng.random() < 0.7 else (h, w)


def _make(args: tuple[int, str]) -> int:
    i, folder = args
    path = Path(folder) / f"{i:06d}.jpg"
    if path.exists():
        return path.stat().st_size
    w, h = _size(i)
    small = base_pixels(i, max(8, w // 4), max(8, h // 4))
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
    rng = np.random.default_rng([i, 5])
    tile = rng.integers(-6, 7, size=(97, 101, 1), dtype=np.int16)
    noise = np.tile(tile, (-(-h // 97), -(-w // 101), 1))[:h, :w]
    pixels = np.clip(img + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=85)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return len(buf.getvalue())


def make_images(folder: Path, n: int) -> list[Path]:
    """Return the paths of ``n`` benchmark JPEGs in ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    with Pool(os.cpu_count() or 1) as pool:
        sizes = pool.map(_make, [(i, str(folder)) for i in range(n)], chunksize=8)
    (folder / "summary.json").write_text(json.dumps({"n": n, "mean_bytes": sum(sizes) / n}))
    return [folder / f"{i:06d}.jpg" for i in range(n)]


if __name__ == "__main__":
    import sys

    paths = make_images(Path(sys.argv[1]), int(sys.argv[2]))
    print(len(paths), json.loads((Path(sys.argv[1]) / "summary.json").read_text()))
