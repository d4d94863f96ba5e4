"""The images behind rows, as small colour pixel arrays: the pixel stage of near-duplicate confirmation.

A row's image is its file (``path``, folders layout) or its sample in a tar shard (``shard``
and ``key``, WebDataset), or the same in the set-aside folder when an earlier curation
removed it. It is decoded at reduced scale (JPEG DCT scaling through Pillow's ``draft``),
turned as displayed (EXIF orientation), and box-resampled to ``side`` x ``side`` YCbCr:
the aspect ratio is dropped, as in the signatures, so a crop is only a stretch and a shift.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gbifxdl.curate._files import IMAGE_EXTS, key_ext
from gbifxdl.curate._setaside import SET_ASIDE


def pixels_of(data: bytes, side: int) -> tuple[np.ndarray, int] | None:
    """Return the image in ``data`` as (side, side, 3) uint8 YCbCr and its shorter side in pixels (an
    image smaller than ``side`` holds less detail than the array), or None when it cannot be decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            shorter = min(img.size)
            img.draft("RGB", (side * 2, side * 2))  # JPEG: decoded in the DCT at 1/2 to 1/8 scale
            img = ImageOps.exif_transpose(img)
            img = img.convert("RGB").resize((side, side), Image.BOX, reducing_gap=3.0)
            return np.asarray(img.convert("YCbCr"), dtype=np.uint8), shorter
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


class ImageReader:
    """Reads the images of rows of one dataset folder (shard indexes are built once per shard)."""

    def __init__(self, root: Path, side: int) -> None:
        self.root = root.resolve()
        self.side = side
        self._shards: dict[Path, dict[str, tarfile.TarInfo] | None] = {}

    def _file(self, rel: str) -> bytes | None:
        for base in (self.root, self.root / SET_ASIDE):
            path = (base / rel).resolve()
            if path.is_relative_to(self.root) and path.is_file():
                try:
                    return path.read_bytes()
                except OSError:
                    return None
        return None

    def _index(self, path: Path) -> dict[str, tarfile.TarInfo] | None:
        if path not in self._shards:
            index: dict[str, tarfile.TarInfo] | None = {}
            try:
                with tarfile.open(path, "r:") as tar:
                    for info in tar:
                        key, ext = key_ext(info.name)
                        if info.isfile() and ext in IMAGE_EXTS:
                            index[key] = info
            except (OSError, tarfile.TarError, EOFError):
                index = None
            self._shards[path] = index
        return self._shards[path]

    def _sample(self, shard: str, key: str) -> bytes | None:
        for base in (self.root, self.root / SET_ASIDE):
            path = (base / shard).resolve()
            if not path.is_relative_to(self.root) or not path.is_file():
                continue
            index = self._index(path)
            info = index.get(key) if index else None
            if info is None:
                continue
            try:
                with open(path, "rb") as fh:
                    fh.seek(info.offset_data)
                    return fh.read(info.size)
            except OSError:
                return None
        return None

    def data(self, path: str | None, shard: str | None, key: str | None) -> bytes | None:
        """Return the bytes of a row's image (in the dataset or set aside), or None when it cannot be found."""
        return self._sample(shard, key) if shard and key else self._file(path) if path else None

    def read(self, path: str | None, shard: str | None, key: str | None) -> tuple[np.ndarray, int] | None:
        """Return a row's image as (side, side, 3) YCbCr and its shorter side, or None when it cannot be
        found or decoded."""
        data = self.data(path, shard, key)
        return None if data is None else pixels_of(data, self.side)
