"""Download a finished GBIF archive to ``DIR/KEY.zip``: streamed, resumable, checked."""

from __future__ import annotations

import logging
import os
import time
import zipfile
import zlib
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from gbifxdl.errors import DownloadNotReady, GbifError, GbifUnavailable
from gbifxdl.gbif._api import raise_if_unsuccessful, status
from gbifxdl._gbif_http import DEFAULT_SETTINGS, ApiSettings, GbifUnreachable, check, resolve_api_url, send

log = logging.getLogger("gbifxdl.gbif")

CHUNK = 1 << 20


class ArchiveCheckFailed(GbifError):
    """The downloaded archive does not have GBIF's announced size, or is not a readable zip."""


def _zip_problem(path: Path, expected: int, *, thorough: bool) -> str | None:
    """Return what is wrong with the archive at ``path``, or None when it looks whole.

    ``thorough`` also checks every member's CRC: a resumed download may have spliced
    bytes that no longer belong together, which only the CRCs reveal.
    """
    size = path.stat().st_size
    if expected and size != expected:
        return f"it has {size:,} bytes where GBIF announced {expected:,}"
    try:
        with zipfile.ZipFile(path) as archive:
            if not archive.namelist():
                return "it is an empty zip"
            bad = archive.testzip() if thorough else None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        return f"it is not a readable zip ({exc})"
    return f"its member {bad} is corrupt" if bad else None


def download_archive(
    key: str,
    dest_dir: str | Path,
    *,
    api_url: str | None = None,
    progress: bool = True,
    settings: ApiSettings | None = None,
) -> Path:
    """Return the path of ``dest_dir/KEY.zip``, downloading it unless a whole copy is there.

    Streams to ``KEY.zip.part``, resuming it with an HTTP Range request after an
    interruption, follows GBIF's redirect to its archive host, then checks the size GBIF
    announced and that the zip opens before renaming it into place.
    """
    settings = settings or DEFAULT_SETTINGS
    api = resolve_api_url(api_url)
    st = status(key, api_url=api, settings=settings)
    raise_if_unsuccessful(st)
    if not st.succeeded:
        raise DownloadNotReady(f"GBIF download {key} is {st.status}, not ready yet; wait for it with `gbifxdl wait {key}`")
    key = st.key  # the caller may have given the DOI
    expected = st.size
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / f"{key}.zip"
    if final.exists() and _zip_problem(final, expected, thorough=False) is None:  # checked before its rename
        return final
    part = dest / f"{key}.zip.part"
    url = f"{api}/occurrence/download/request/{key}.zip"

    delay = settings.backoff
    for attempt in range(settings.retries + 1):
        have = part.stat().st_size if part.exists() else 0
        if expected and have >= expected:
            break
        try:
            _fetch(url, part, have, expected, key=key, progress=progress, settings=settings)
            break
        except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError, GbifUnreachable) as exc:
            # The bytes received so far stay in the .part; the next attempt asks for the rest.
            # GBIF answered the status just now, so a lost network here is worth waiting out.
            if attempt == settings.retries:
                raise GbifUnavailable(
                    f"the download of {key} broke off {settings.retries + 1} times ({type(exc).__name__}); "
                    f"the partial file {part} is kept: run the same command again to resume"
                ) from None
            log.warning("download of %s interrupted (%s); resuming in %.1f s", key, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, settings.max_backoff)

    problem = _zip_problem(part, expected, thorough=True)
    if problem is not None:
        part.unlink()
        raise ArchiveCheckFailed(
            f"the archive of {key} is damaged: {problem}; the partial file was removed, "
            "run the same command again to download it afresh"
        )
    os.replace(part, final)
    return final


def _fetch(url: str, part: Path, have: int, expected: int, *, key: str, progress: bool, settings: ApiSettings) -> None:
    """Append the bytes from offset ``have`` of the archive at ``url`` to ``part``."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    with send("GET", url, headers=headers, stream=True, settings=settings) as response:
        if response.status_code == 416:  # nothing left to send: the size check decides
            return
        check(response, what=f"download the archive of {key}", key=key)
        if response.status_code == 206:
            start = int(response.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
            if start != have:
                raise GbifError(f"the archive host resumed {key} at byte {start} instead of {have}; delete {part} and retry")
            mode = "ab"
        else:  # 200: the host ignored the Range header, so start over
            have, mode = 0, "wb"
        total = expected or (have + int(response.headers.get("Content-Length", 0))) or None
        with open(part, mode) as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=f"{key}.zip", disable=not progress
        ) as bar:
            # read1 hands over whatever has arrived, so a dropped connection loses no byte
            # already received (iter_content would discard a partly filled chunk).
            while chunk := response.raw.read1(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
