"""People's marks on a dataset's images: an append-only journal, ``DIR/.gbifxdl/review/marks.jsonl``.

Each line is one mark, ``{"key": <url_hash>, "mark": <mark>, "time": <unix seconds>}`` (a mark
confirmed in bulk from the ranking also has ``"via": "rank"``, ``"p"`` and maybe ``"threshold"``), written
whole by one ``write`` on a file opened for appending (under an exclusive lock, so that two
tabs or two servers never interleave) and made durable with ``fsync`` before the writer
returns: the review page says "saved" only after that. Nothing is ever rewritten or deleted:
every mark is kept with its time, and the last mark of an image wins (``clear`` takes a mark
back, as undo does). A line cut short by a kill is ignored on reading.

The review page (:mod:`gbifxdl.review`) writes it; curation (:mod:`gbifxdl.curate`) and the
card read it: it sits below both.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from gbifxdl._io import write_chunks

REVIEW = Path(".gbifxdl") / "review"
JOURNAL = REVIEW / "marks.jsonl"
MARKS = ("good", "bad", "wrong_species", "needs_crop")
CLEAR = "clear"  # takes an image's mark back (undo of a first mark)
# marks that curation sets aside, and the removed_reason it gives them
REMOVING = {"bad": "review:bad", "wrong_species": "review:wrong_species"}
RANKABLE = tuple(REMOVING)  # the marks "find more like these" can look for

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: O_APPEND alone
    fcntl = None  # type: ignore[assignment]


def journal_path(root: str | Path) -> Path:
    """Return where the marks of the dataset at ``root`` are kept."""
    return Path(root) / JOURNAL


def append_marks(root: str | Path, marks: list[tuple[str, str]], now: float | None = None, *,
                 via: str | None = None, scores: dict[str, float] | None = None,
                 threshold: float | None = None) -> list[dict[str, Any]]:
    """Append ``(key, mark)`` pairs to the journal of ``root`` and return the records, once on disk.

    One ``write`` of whole lines, flushed and fsynced before returning (the journal's folder
    too, when this call created the file). Marks a person confirmed in bulk from the ranking
    ("find more like these") carry ``via`` ("rank"), the image's probability ``p`` from
    ``scores`` and the ``threshold`` the person chose, if any; readers that know only
    ``key``, ``mark`` and ``time`` read them as any other mark.
    """
    stamp = time.time() if now is None else now
    records = []
    for key, mark in marks:
        if mark not in MARKS and mark != CLEAR:
            raise ValueError(f"unknown mark {mark!r}; use one of {', '.join(MARKS)} or {CLEAR}")
        if not isinstance(key, str) or not key or "\n" in key:
            raise ValueError(f"not an image key: {key!r}")
        record: dict[str, Any] = {"key": key, "mark": mark, "time": round(stamp, 6)}
        if via is not None:
            record["via"] = via
        if scores is not None and key in scores:
            record["p"] = round(float(scores[key]), 4)
        if threshold is not None:
            record["threshold"] = float(threshold)
        records.append(record)
    if not records:
        return records
    path = journal_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        # a torn last line (a writer killed mid-line) must not swallow this one: start on a new line
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        write_chunks(fd, [data])
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return records


def iter_marks(root: str | Path) -> Iterator[dict[str, Any]]:
    """Yield every whole mark of the journal of ``root``, oldest first (none when there is no journal)."""
    path = journal_path(root)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    for line in raw.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:  # a torn line, or an empty one
            continue
        if (isinstance(record, dict) and isinstance(record.get("key"), str)
                and (record.get("mark") in MARKS or record.get("mark") == CLEAR)):
            yield record


def latest_marks(root: str | Path) -> dict[str, str]:
    """Return each image's mark now (the last one wins; cleared images left out): key -> mark."""
    out: dict[str, str] = {}
    for record in iter_marks(root):
        if record["mark"] == CLEAR:
            out.pop(record["key"], None)
        else:
            out[record["key"]] = record["mark"]
    return out
