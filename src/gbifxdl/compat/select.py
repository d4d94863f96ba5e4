"""The original ``preprocess_occurrences_stream``, now a thin wrapper over :func:`gbifxdl.select.select`."""

from __future__ import annotations

import logging
from pathlib import Path

from gbifxdl.errors import ConfigError, NoMediaError
from gbifxdl.select import SelectSettings, select
from gbifxdl.select.settings import RANKS

log = logging.getLogger(__name__)


def preprocess_occurrences_stream(
    dwca_path: str | Path,
    file_format: str = "dwca",
    max_img_spc: int | None = None,
    chunk_size: int = 10000,
    mediatype: str = "StillImage",
    one_media_per_occurrence: bool = True,
    delete: bool = False,
    log_mem: bool = False,
    strict: bool = False,
) -> Path:
    """Return the path of ``<archive stem>.parquet``, written next to the archive: one row per image.

    As the original: ``max_img_spc`` caps images per species (now a seeded random draw
    by ``speciesKey``, not the first rows in file order), ``strict`` drops rows lacking
    any of kingdomKey..speciesKey, ``delete`` removes the archive afterwards.
    ``chunk_size`` and ``log_mem`` are accepted and ignored: the archive is streamed.
    """
    if str(file_format).lower() != "dwca":
        raise NoMediaError(
            f"file_format={file_format!r}: only Darwin Core Archives carry media URLs; "
            'request the download with "format": "DWCA"'
        )
    if max_img_spc is not None and (not isinstance(max_img_spc, int) or max_img_spc < 1):
        raise ConfigError(f"max_img_spc must be a positive whole number or None, not {max_img_spc!r}")
    del chunk_size, log_mem  # streaming needs neither
    dwca_path = Path(dwca_path)
    output = dwca_path.with_suffix(".parquet")
    settings = SelectSettings(
        media_type=mediatype or None,
        required_ranks=RANKS if strict else (),
        one_per_occurrence=one_media_per_occurrence,
        max_per_class=max_img_spc,
    )
    select(dwca_path, output, settings, progress=True)
    if delete:
        dwca_path.unlink(missing_ok=True)
        log.info("deleted %s", dwca_path)
    return output
