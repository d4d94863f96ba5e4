"""What a killed run left on disk, taken up on resume instead of fetched again (issue 20, item 8).

The engine journals a row *before* it renames the row's file into place (see
:mod:`~gbifxdl.fetch.journal`), and a SIGKILL can fall between the two, or among the renames
of one batch of rows. So on resume, in the units a killed run had started (those with a
journal; a unit without one was never started, and nothing of it can be on disk):

- a row journalled ``ok`` whose file is missing at its final path but whole at a killed
  run's temporary name (same size and sha256 as journalled) is renamed into place
  (:func:`finish_renames`): the journal line holds every column already;
- a row without a journal line whose file is at its final path (in the folders layout,
  ``images/<class>/<key>.<ext>``; in the WebDataset layout, its unit's spool) is *adopted*
  (:func:`measure_file`): decoded whole and measured by fetch's own functions (sha256,
  pixel hash, pHash, colour hash, signature, sizes), then journalled as fetched, without a
  request. A file that is not a whole, valid image of the kind this fetch writes (half
  written, corrupt, another format, the wrong size) is deleted and fetched again.

What the file tells of itself is what an uninterrupted run records: a kept original's size
is the file's; a re-encoded JPEG carries its size before processing in a comment
(``gbifxdl orig=WxH``, :func:`~gbifxdl.fetch.process.with_origin`), and its hashes are of the
written file (:mod:`~gbifxdl.fetch.process`). A re-encoded file without that comment
(written by a version before it) is fetched again: its size before processing is lost.

What no file tells is how it was downloaded: an adopted row records a first-try success
(1 attempt, HTTP 200, ``fetched_url`` the URL a first try asks: the rendition when renditions
apply, else ``identifier``), which is what an uninterrupted run records unless the host
failed and was retried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gbifxdl._io import sha256_file

if TYPE_CHECKING:
    from gbifxdl.fetch._seams import Writer
    from gbifxdl.fetch.image_types import Processed
    from gbifxdl.fetch.journal import FetchState
    from gbifxdl.fetch.settings import FetchSettings

# the extensions a kept original may have: fetch.process's names of the formats it takes
# (fetch.process.sniff; any other body is `not_image`)
KEPT_EXTENSIONS = ("jpg", "png", "gif", "webp", "tif", "bmp")


def extensions(settings: FetchSettings) -> tuple[str, ...]:
    """Return the extensions an image file of this fetch may have."""
    return ("jpg",) if settings.should_reencode else KEPT_EXTENSIONS


def measure_file(path: str, settings: FetchSettings) -> Processed | None:
    """Return the measurements fetch records for the image file at ``path``, or None when it is not
    one this fetch would have written (see the module's docstring)."""
    from gbifxdl.fetch.image_types import ProcessOptions
    from gbifxdl.fetch.process import origin_of, process_bytes, target_size

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        if settings.header_only:
            from gbifxdl.fetch.validate import inspect_bytes

            done = inspect_bytes(data, settings.max_pixels)
        elif settings.should_reencode:
            origin = origin_of(data)
            if origin is None:
                return None  # not ours, or written before the comment existed: the size before is lost
            # a re-encoded JPEG is measured as a kept one: fetch measures the file it wrote
            _, done = process_bytes(data, ProcessOptions(max_pixels=settings.max_pixels))
            if (done.width, done.height) != target_size(*origin, settings.resize, settings.resize_mode):
                return None
            done = dataclasses.replace(done, orig_width=origin[0], orig_height=origin[1])
        else:
            _, done = process_bytes(data, ProcessOptions(max_pixels=settings.max_pixels,
                                                         pixel_hash=settings.pixel_hash))
    except Exception:  # noqa: BLE001 - whatever is wrong with the file, it is fetched again
        return None
    return done if path.endswith(f".{done.ext}") else None


def adopted_entry(url: str, path: str, done: Processed, settings: FetchSettings) -> dict[str, Any]:
    """Return the journal entry of an adopted file (``path``: as the writer journals it)."""
    from gbifxdl.fetch.download import host_of
    from gbifxdl.fetch.journal import RESULT_COLUMNS

    fetched_url = url
    if settings.renditions and settings.resize is not None and settings.should_reencode:
        from gbifxdl.fetch.renditions import rendition_for

        rendition = rendition_for(url, settings.resize, settings.rendition_hosts)
        fetched_url = url if rendition is None else rendition.url
    entry: dict[str, Any] = {k: None for k in RESULT_COLUMNS}
    entry.update(outcome="ok", attempts=1, http_status=200, host=host_of(fetched_url), path=path,
                 fetched_url=fetched_url, **{k: getattr(done, k) for k in MEASURES})
    return entry


def adopt_unit(writer: Writer, settings: FetchSettings, unit: int,
               rows: list[tuple[int, str, str, str]]) -> list[tuple[int, dict[str, Any]]]:
    """Return the entries of the files ``rows`` (row number, URL, key, class; none journalled) have at
    their final paths, each checked and measured; a file that fails is deleted. Runs in a thread."""
    exts = extensions(settings)
    adopted = []
    for i, url, key, cls in rows:
        found = _at_final_path(writer, unit, key, cls, exts)
        if found is None:
            continue
        path, full = found
        done = measure_file(full, settings)
        if done is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)  # fetched again, and written where it was
            continue
        adopted.append((i, adopted_entry(url, path, done, settings)))
    return adopted


def _at_final_path(writer: Writer, unit: int, key: str, cls: str, exts: tuple[str, ...]) -> tuple[str, str] | None:
    """Return (path as journalled, full path) of a file at the image's final path, if any (WebDataset: in its
    unit's spool, its place until the unit's tar exists; a tar holds journalled rows only)."""
    for ext in exts:
        path = writer.final_path(unit, key, cls, ext)
        full = writer.full_path(unit, {"path": path})
        if os.path.isfile(full):
            return path, full
    return None


def finish_renames(state: FetchState, writer: Writer) -> int:
    """Rename into place the files of rows a killed run had journalled but not yet renamed; return how many.

    Runs before the killed run's temporaries are deleted (``writer.cleanup``).
    """
    renamed = 0
    for journal in sorted(state.dir.glob("unit-*.jsonl")):
        unit = int(journal.stem.split("-")[1])
        if state.unit_done(unit):
            continue
        for entry in state.read_journal(unit).values():
            if entry.get("outcome") != "ok" or not entry.get("path") or writer.valid(unit, entry):
                continue
            final = Path(writer.full_path(unit, entry))
            key = final.name.rsplit(".", 1)[0]
            for temp in final.parent.glob(f".{key}.tmp-*"):
                if _holds(temp, entry):
                    os.replace(temp, final)
                    renamed += 1
                    break
    return renamed


def _holds(temp: Path, entry: dict[str, Any]) -> bool:
    """Return whether ``temp`` holds the bytes ``entry`` journals (its size, then its sha256)."""
    try:
        if temp.stat().st_size != entry.get("bytes"):
            return False
        return sha256_file(temp) == entry.get("sha256")
    except OSError:
        return False


MEASURES = ("orig_width", "orig_height", "width", "height", "bytes", "sha256", "pixel_hash", "phash",
            "chroma_hash", "signature")
