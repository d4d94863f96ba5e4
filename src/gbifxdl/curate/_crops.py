"""Crops from a detector written as the dataset's images, reversibly, in both layouts.

After a curation has written ``metadata.parquet`` (its ``crop_box`` column: the pixels
``[x, y, w, h]`` of the original each kept image shows) and moved the files, each kept image
whose crop changed is rewritten in place: a file of the folders layout, or its member of a
WebDataset shard. The original is kept first, whole, in ``DIR/.gbifxdl/originals/<url_hash>.<ext>``,
so a later curation with another crop, or none, cuts again from the original or puts it back.

What sits in place is recorded in ``DIR/.gbifxdl/originals/crops.parquet`` (``url_hash``, ``ext``,
``box``). Before any image changes, its row is marked as changing (``box`` null) there, so a kill
at any moment leaves every changed image either as recorded or marked, and the next curation
cuts it again from its original. An image that cannot be cut stays as it is and is counted.
Curation's file checks skip the size and sha256 of the images recorded here (their header is
still checked): those describe the original.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from gbifxdl._io import atomic_path
from gbifxdl._locate import CROPS as STATE, IMAGE_EXTS, METADATA, Box, crops_in_place, key_ext, original_path
from gbifxdl.curate._setaside import _members
from gbifxdl.curate._shard_splits import _add

_SCHEMA = pa.schema([("url_hash", pa.string()), ("ext", pa.string()), ("box", pa.list_(pa.int32()))])
_SAFE = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass
class CropResult:
    """What making the images match ``crop_box`` did (or would do, in a dry run)."""

    cropped: int = 0  # images cut (anew, or to another box)
    restored: int = 0  # originals put back
    failed: int = 0  # images that could not be cut (left as they were)


def _write_state(root: Path, state: dict[str, tuple[str, Box | None]]) -> None:
    path = root / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    table = pa.table([pa.array(keys, pa.string()), pa.array([state[k][0] for k in keys], pa.string()),
                      pa.array([list(state[k][1]) if state[k][1] is not None else None for k in keys],
                               pa.list_(pa.int32()))], schema=_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def cut(data: bytes, box: Box, size: tuple[int, int] | None = None) -> bytes:
    """Return the image ``data`` cut to ``box`` (pixels of a ``size`` image; scaled when it decodes to another
    size), encoded in its own format (JPEG at quality 95)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        fmt = img.format or "JPEG"
        img = ImageOps.exif_transpose(img)
        x, y, w, h = box
        if size and all(size) and tuple(size) != img.size:
            sx, sy = img.size[0] / size[0], img.size[1] / size[1]
            x, y, w, h = round(x * sx), round(y * sy), max(1, round(w * sx)), max(1, round(h * sy))
        part = img.crop((x, y, x + w, y + h))
        if fmt == "JPEG" and part.mode not in ("RGB", "L"):
            part = part.convert("RGB")
        out = io.BytesIO()
        part.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        return out.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _kept(root: Path) -> Iterator[tuple[str, str | None, str | None, str | None, Box | None, tuple[int, int] | None]]:
    """Yield (url_hash, path, shard, key, crop box, (width, height)) of every kept row."""
    path = root / METADATA
    names = pq.read_schema(path).names
    wanted = [c for c in ("url_hash", "path", "shard", "key", "crop_box", "width", "height") if c in names]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=wanted):
        cols = {c: batch.column(c).to_pylist() for c in wanted}
        for i in range(batch.num_rows):
            get = lambda c: cols[c][i] if c in cols else None  # noqa: E731
            box = get("crop_box")
            w, h = get("width"), get("height")
            yield (get("url_hash"), get("path"), get("shard"), get("key"), tuple(box) if box else None,
                   (int(w), int(h)) if w and h else None)


def apply(root: Path, dry_run: bool = False) -> CropResult:
    """Return what making every kept image match its ``crop_box`` (cut from its original, or the original
    itself where none) did; see the module."""
    result = CropResult()
    state = crops_in_place(root)
    if not state and "crop_box" not in pq.read_schema(root / METADATA).names:
        return result  # nothing cut, nothing to cut
    todo = []
    for url_hash, rel, shard, key, box, size in _kept(root):
        if not url_hash or not _SAFE.match(url_hash):
            continue
        now = state.get(url_hash)
        if box is None and now is None:
            continue  # the original, in place
        if now is not None and now[1] == box:
            continue  # already cut so
        todo.append((url_hash, rel, shard, key, box, size))
    if not todo:
        return result
    if dry_run:
        result.cropped = sum(1 for t in todo if t[4] is not None)
        result.restored = len(todo) - result.cropped
        return result
    members: dict[str, dict[str, list[tarfile.TarInfo]]] = {}  # each shard's index, read once
    for url_hash, rel, shard, key, box, size in todo:  # marked as changing before any image changes
        ext = state[url_hash][0] if url_hash in state else _ext(root, rel, shard, key, members)
        if ext:
            state[url_hash] = (ext, None)
    _write_state(root, state)
    done: dict[str, Box | None] = {}
    files = [t for t in todo if not (t[2] and t[3])]
    for url_hash, rel, _, _, box, size in files:
        if not rel or url_hash not in state:
            result.failed += 1
            continue
        target = root / rel
        data = _original(root, url_hash, state[url_hash][0], lambda: target.read_bytes())
        new = _new_bytes(data, box, size, result)
        if new is None:
            continue
        _write_bytes(target, new)
        done[url_hash] = box
    by_shard: dict[str, list[tuple[str, str, Box | None, tuple[int, int] | None]]] = {}
    for url_hash, _, shard, key, box, size in todo:
        if shard and key:
            by_shard.setdefault(shard, []).append((url_hash, key, box, size))
    for shard, samples in sorted(by_shard.items()):
        _shard(root, shard, samples, state, done, result)
    restored = [u for u, box in done.items() if box is None]
    for url_hash, box in done.items():
        if box is None:
            result.restored += 1
        else:
            result.cropped += 1
            state[url_hash] = (state[url_hash][0], box)
    exts = {url_hash: state.pop(url_hash)[0] for url_hash in restored}
    _write_state(root, state)  # the originals put back are deleted only once the state no longer names them
    for url_hash, ext in exts.items():
        original_path(root, url_hash, ext).unlink(missing_ok=True)
    return result


def _ext(root: Path, rel: str | None, shard: str | None, key: str | None,
         members: dict[str, dict[str, list[tarfile.TarInfo]]]) -> str | None:
    """Return the extension of a row's image (its file's, or its shard member's), None when not found."""
    if shard and key:
        if shard not in members:
            members[shard] = _members(root / shard)
        for info in members[shard].get(key, []):
            ext = key_ext(info.name)[1]
            if ext in IMAGE_EXTS:
                return ext
        return None
    return Path(rel).suffix.lstrip(".").lower() or "jpg" if rel else None


def _original(root: Path, url_hash: str, ext: str, current: Callable[[], bytes]) -> bytes | None:
    """Return the original's bytes: kept aside already, or the image in place (kept aside now)."""
    kept = original_path(root, url_hash, ext)
    try:
        if kept.is_file():
            return kept.read_bytes()
        data = current()
    except OSError:
        return None
    if data is not None:
        _write_bytes(kept, data)
    return data


def _new_bytes(data: bytes | None, box: Box | None, size: tuple[int, int] | None, result: CropResult) -> bytes | None:
    if data is None:
        result.failed += 1
        return None
    if box is None:
        return data
    try:
        return cut(data, box, size)
    except (OSError, ValueError, SyntaxError):
        result.failed += 1
        return None


def _shard(root: Path, shard: str, samples: list[tuple[str, str, Box | None, tuple[int, int] | None]],
           state: dict[str, tuple[str, Box | None]], done: dict[str, Box | None], result: CropResult) -> None:
    """Rewrite one shard (atomically) with its samples' images cut, or put back."""
    path = root / shard
    by_key = {key: (url_hash, box, size) for url_hash, key, box, size in samples if url_hash in state}
    new: dict[str, bytes] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                key, ext = key_ext(info.name)
                if not info.isfile() or key not in by_key or ext not in IMAGE_EXTS or key in seen:
                    continue
                seen.add(key)
                url_hash, box, size = by_key[key]
                data = _original(root, url_hash, state[url_hash][0], lambda: tar.extractfile(info).read())  # type: ignore[union-attr]  # noqa: B023
                made = _new_bytes(data, box, size, result)
                if made is not None:
                    new[key] = made
    except (OSError, tarfile.TarError, EOFError):
        result.failed += len(by_key)
        return
    result.failed += len(set(by_key) - seen)  # not in the shard
    if not new:
        return
    with atomic_path(path) as tmp:
        with tarfile.open(path, "r:") as src, tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as dst:
            for info in src:
                key, ext = key_ext(info.name)
                if info.isfile() and key in new and ext in IMAGE_EXTS:
                    _add(dst, info, info.name, new[key])
                else:
                    dst.addfile(info, src.extractfile(info) if info.isfile() else None)
    for key in new:
        done[by_key[key][0]] = by_key[key][1]


def cropped(root: Path) -> set[str]:
    """Return the url_hash of every image whose original is kept aside (what is in place may be a crop)."""
    return set(crops_in_place(root))

