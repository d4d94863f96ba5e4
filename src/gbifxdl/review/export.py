"""The marks as labelled examples: an ImageFolder (``OUT/<mark>/<url_hash>.<ext>``) to train a model on.

The original gbifxdl's annotator sorted a sample of images per species into classes to train
a cleaner; here the review page is that annotator, and :func:`export_marks` writes what it
sorted as a folder torchvision's ``ImageFolder`` (or Hugging Face's ``imagefolder``) loads:
one sub-folder per mark (``good``, ``bad``, ``wrong_species``, ``needs_crop``) holding the
current marks' images, byte for byte, plus ``labels.csv`` (file, mark, key, class). A model
trained on it runs over the dataset with ``gbifxdl infer``.

The export is made in a folder beside ``OUT`` and renamed into place, so ``OUT`` is always a
whole export; an ``OUT`` that exists is replaced only when it is an earlier export
(it holds ``.gbifxdl-export``), never another folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from gbifxdl._locate import IMAGE_EXTS, ImageLocator, read_source
from gbifxdl._marks import MARKS, latest_marks
from gbifxdl.errors import GbifxdlError
from gbifxdl.review._index import load_images

STAMP = ".gbifxdl-export"


class ExportError(GbifxdlError):
    """The marks cannot be exported there."""


_MAGIC = ((b"\xff\xd8", "jpg"), (b"\x89PNG", "png"), (b"GIF8", "gif"), (b"II*\x00", "tif"), (b"MM\x00*", "tif"),
          (b"BM", "bmp"))


def _ext(path: str | None, data: bytes) -> str:
    """Return the extension of a file's name, else the one its first bytes say."""
    ext = path.rsplit(".", 1)[-1].lower() if path and "." in path else ""
    if ext in IMAGE_EXTS:
        return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((e for magic, e in _MAGIC if data.startswith(magic)), "jpg")


def export_marks(dataset_dir: str | Path, out: str | Path, marks: tuple[str, ...] = MARKS) -> dict[str, int]:
    """Write the images carrying one of ``marks`` now into ``out/<mark>/``; return the count per mark."""
    root = Path(dataset_dir).resolve()
    target = Path(out).resolve()
    if target == root or target.is_relative_to(root / "images") or target.is_relative_to(root / "shards"):
        raise ExportError(f"{out}: export outside the dataset's images (e.g. {root.parent / (root.name + '-marks')})")
    if target.exists() and not (target / STAMP).is_file():
        if not target.is_dir() or any(target.iterdir()):
            raise ExportError(f"{out} exists and is not an earlier export: give a new or empty folder")
    images = load_images(root)
    current = {k: m for k, m in latest_marks(root).items() if k in images.position and m in marks}
    if not current:
        raise ExportError(f"{dataset_dir}: no image is marked {' or '.join(marks)} yet; mark some with `gbifxdl review`")
    locator = ImageLocator(root, shards_held=64)
    building = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    counts: Counter[str] = Counter()
    missing = 0
    rows = []
    try:
        for key in sorted(current, key=lambda k: images.position[k]):
            i, mark = images.position[key], current[key]
            where = locator.source(images.paths[i], images.shards[i], images.members[i])
            if where is None:
                missing += 1
                continue
            data = read_source(where)
            name = f"{mark}/{key}.{_ext(where[0] if where[1] is None else None, data)}"
            (building / mark).mkdir(parents=True, exist_ok=True)
            (building / name).write_bytes(data)
            rows.append((name, mark, key, images.labels[i]))
            counts[mark] += 1
        if not rows:
            raise ExportError(f"{dataset_dir}: none of the {len(current)} marked images can be found or read")
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["file", "mark", "key", "class"])
        writer.writerows(rows)
        (building / "labels.csv").write_text(text.getvalue())
        (building / STAMP).write_text(json.dumps({"dataset": str(root), "time": time.time(), "counts": counts,
                                                  "not_found": missing}) + "\n")
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(building, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if missing:
        counts["not_found"] = missing
    return dict(counts)

