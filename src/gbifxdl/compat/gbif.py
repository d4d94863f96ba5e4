"""The original ``post``, ``poll_status`` and ``download_occurrences``, over :mod:`gbifxdl.gbif`."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

from gbifxdl import gbif
from gbifxdl.credentials import load_credentials
from gbifxdl.errors import DownloadErased, DownloadFailed, GbifError, WaitTimeout


def post(
    payload: str | Path | dict[str, Any],
    pwd: str | None = None,
    wait: bool = False,
    *,
    user: str | None = None,
    api_url: str | None = None,
) -> str | None:
    """Return the download key for a predicate JSON file (or a predicate or request dict).

    As in the original, the request's ``creator`` is the GBIF username and ``pwd`` its
    password (else GBIF_PWD, ``.env`` or ``~/.netrc``); GBIF refusing the request prints
    why and returns None. With ``wait``, returns once the archive is ready.
    """
    data = gbif.check_payload(payload)  # a bad payload is said before any password prompt
    creator = user or (data.get("creator") if ("predicate" in data or "creator" in data) else None)
    credentials = load_credentials(user=creator, password=pwd, api_url=api_url)
    try:
        key = gbif.post_request(data, credentials=credentials, api_url=api_url)
        if wait:
            gbif.wait(key, api_url=api_url)
    except GbifError as exc:
        print(f"GBIF request failed: {exc}", file=sys.stderr)
        return None
    return key


def poll_status(
    download_key: str,
    wait: bool = True,
    wait_period: float = 60,
    wait_timeout: float | None = None,
    *,
    api_url: str | None = None,
) -> str:
    """Return ``'succeeded'``, ``'pending'`` or ``'failed'`` for a download.

    With ``wait``, polls every ``wait_period`` seconds until it ends or ``wait_timeout``
    seconds pass (default: two days, as GBIF may take hours; the original gave up after
    ten minutes).
    """
    if not wait:
        st = gbif.status(download_key, api_url=api_url)
        return "succeeded" if st.succeeded else "pending" if st.is_running else "failed"
    try:
        gbif.wait(
            download_key,
            api_url=api_url,
            timeout=gbif.DEFAULT_WAIT_TIMEOUT if wait_timeout is None else wait_timeout,
            min_interval=wait_period,
            max_interval=wait_period,
        )
    except WaitTimeout:
        return "pending"
    except (DownloadFailed, DownloadErased):
        return "failed"
    return "succeeded"


def download_occurrences(
    download_key: str, dataset_dir: str | Path, file_format: str = "dwca", *, api_url: str | None = None
) -> Path:
    """Return the path of the downloaded archive ``dataset_dir/KEY.zip``.

    For formats other than ``dwca`` the zip is also extracted into ``dataset_dir`` and
    the path of its single data file is returned (the folder if it holds several).
    """
    path = gbif.download_archive(download_key, dataset_dir, api_url=api_url)
    if file_format.lower() == "dwca":
        return path
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        archive.extractall(dataset_dir)
    return Path(dataset_dir) / names[0] if len(names) == 1 else Path(dataset_dir)
