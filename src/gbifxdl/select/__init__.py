"""Select: stream a GBIF Darwin Core Archive into the table of images to fetch.

``select(archive, output, SelectSettings(...))`` writes ``output`` (one row per image,
columns and provenance as ARCHITECTURE.md says) and ``<output stem>.summary.json``.
Three steps: :mod:`.stream` inflates and parses both members at once, filtering what
each file decides alone; :mod:`.engine` joins, de-duplicates, samples and caps narrow
keys in DuckDB, which spills to disk, so neither memory nor class count limits the
archive size; :mod:`.assemble` gathers the kept rows' columns by row position and
writes the table. :mod:`.search` makes the same table from GBIF's occurrence search API
instead of a download (no account; ``select_from_search``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from gbifxdl._io import write_text_atomic
from gbifxdl._meta import PROVENANCE_KEY
from gbifxdl.archive import open_archive
from gbifxdl.errors import NoMediaError, SelectionError
from gbifxdl.select.assemble import OUTPUT_SCHEMA, RowFile, assemble
from gbifxdl.select.engine import Engine
from gbifxdl.select.settings import SelectSettings, license_code
from gbifxdl.select.stream import class_source, stream_members
from gbifxdl.select.summary import REASONS, NothingSelectedError, SelectSummary, nothing_selected

__all__ = ["select", "SelectSettings", "SelectSummary", "NothingSelectedError", "OUTPUT_SCHEMA", "REASONS",
           "license_code", "summary_path"]

log = logging.getLogger(__name__)


def summary_path(output: str | Path) -> Path:
    """Return where the summary JSON of the selection at ``output`` goes."""
    output = Path(output)
    return output.with_name(f"{output.stem}.summary.json")


def select(
    archive: str | Path,
    output: str | Path,
    settings: SelectSettings = SelectSettings(),
    *,
    progress: bool = True,
    provenance: dict | None = None,
) -> SelectSummary:
    """Return the summary of selecting the images to fetch from ``archive`` into ``output``.

    Writes the Parquet table atomically (nothing at ``output`` on failure) and the
    summary JSON next to it; with ``progress``, shows a progress bar and prints the
    summary to stderr. ``provenance`` replaces what the archive's ``metadata.xml`` says of
    where the data comes from (the search route: no download, no DOI). Raises :class:`~gbifxdl.errors.ArchiveError` (unreadable
    archive), :class:`~gbifxdl.errors.NoMediaError` (no media URLs in it),
    :class:`NothingSelectedError` (no image kept: malformed rows, or every row filtered
    out; the message gives the counts and what to change; nothing is written) or
    :class:`~gbifxdl.errors.SelectionError`. Malformed rows among good ones are counted
    in the summary, logged as a warning, and skipped.
    """
    started = time.perf_counter()
    archive_path, output = Path(archive), Path(output)
    opened = open_archive(archive_path)
    multimedia = opened.multimedia
    if multimedia is None:
        raise NoMediaError(
            f"{archive_path}: the archive has no multimedia extension, so no media URLs; request the "
            'download again with "format": "DWCA" and a MEDIA_TYPE predicate (gbifxdl post does)'
        )
    if output.resolve() == archive_path.resolve():
        raise SelectionError(f"the output {output} is the archive itself; choose another output path")
    class_source(settings, opened)  # fails early on an unknown class column
    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".gbifxdl-select-", dir=output.parent))
    output_tmp = output.with_name(f"{output.name}.tmp-{os.getpid()}")
    bar = _Bar(opened.member_sizes.get(opened.core.location, 0) + opened.member_sizes.get(multimedia.location, 0),
               progress)
    try:
        files, counts = stream_members(opened, multimedia, settings, workdir, on_bytes=bar if progress else None)
        if counts.occurrences_read == 0:
            raise SelectionError(f"{archive_path}: the archive holds no occurrences; nothing to select")
        core = (opened.core.location, counts.occurrences_read, counts.dropped_occurrences["bad_row"])
        media = (multimedia.location, counts.media_read, counts.dropped_media["bad_row"])
        if any(read and bad == read for _, read, bad in (core, media)):  # a member wholly unreadable
            raise nothing_selected(str(archive_path), core, media, {}, counts.bad_row_examples)
        _warn_malformed(core, media, counts.bad_row_examples)
        origin = provenance if provenance is not None else opened.provenance.to_dict()
        metadata = {PROVENANCE_KEY: json.dumps(origin | {"select_settings": settings.to_dict()},
                                               sort_keys=True).encode()}
        pa.default_memory_pool().release_unused()  # the parse buffers: DuckDB needs the room now
        media_rows = RowFile(files.media, counts.media_batches)  # the URLs, for the engine's exact check
        engine = Engine(files, workdir, lambda at: media_rows.take(at).select(["identifier"]))
        try:
            result = engine.select(settings)
            if result.rows == 0:
                dropped = {k: counts.dropped_media.get(k, 0) + result.dropped.get(k, 0) for k in REASONS}
                raise nothing_selected(str(archive_path), core, media, dropped, counts.bad_row_examples)
            written = assemble(engine.kept(), files, counts, output_tmp, metadata)
        finally:
            engine.close()
            media_rows.close()
        if written != result.rows:  # would mean a key went missing between the passes
            raise SelectionError(f"internal error: {written} rows written but {result.rows} selected; please report")
        summary = SelectSummary(
            archive=str(archive_path), output=str(output),
            occurrences_read=counts.occurrences_read, media_rows_read=counts.media_read,
            images_selected=result.rows, classes=result.classes,
            dropped_occurrences={k: counts.dropped_occurrences.get(k, 0)
                                 for k in ("bad_row", "bad_id", "basis_of_record", "missing_rank_keys")},
            dropped_media_rows={k: (counts.dropped_media.get(k, 0) + result.dropped.get(k, 0))
                                for k in REASONS if k not in ("basis_of_record", "missing_rank_keys")},
            ambiguous_urls=result.ambiguous_urls, classes_below_minimum=result.classes_below_minimum,
            bad_row_examples=tuple(counts.bad_row_examples[:6]), settings=settings.to_dict(),
            provenance=origin, seconds=round(time.perf_counter() - started, 3),
        )
        _write_json(summary_path(output), summary.to_dict())
        os.replace(output_tmp, output)
    except duckdb.Error as exc:
        raise SelectionError(f"the selection engine failed: {exc}; check free disk space next to {output}") from exc
    except OSError as exc:
        raise SelectionError(f"cannot write the selection next to {output}: {exc}") from exc
    finally:
        bar.close()
        output_tmp.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    if progress:
        print(summary.to_text(), file=sys.stderr)
    return summary


def _warn_malformed(core: tuple[str, int, int], media: tuple[str, int, int], examples: list[str]) -> None:
    """Log the malformed rows skipped in each member (one bad row never stops a selection)."""
    for name, read, bad in (core, media):
        if bad:
            log.warning("%s: %s of %s rows are malformed and were skipped%s", name, f"{bad:,}", f"{read:,}",
                        f" (e.g. {examples[0]})" if examples else "")


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


class _Bar:
    """A thread-safe byte counter shown as a tqdm bar (or nothing)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._tqdm = None
        if enabled:
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, unit="B", unit_scale=True, desc="select", file=sys.stderr,
                              mininterval=0.5)

    def __call__(self, n: int) -> None:
        if self._tqdm is not None:
            with self._lock:
                self._tqdm.update(n)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()

