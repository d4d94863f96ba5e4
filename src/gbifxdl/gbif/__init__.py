"""The GBIF occurrence download API: post a request, wait for it, get the archive.

- :func:`post_request` a predicate or request -> download key
- :func:`status`, :func:`wait` -> :class:`DownloadStatus`
- :func:`download_archive` -> ``DIR/KEY.zip`` (resumable, checked)
- :func:`cancel`, :func:`list_downloads`, :func:`citation`

Every function takes ``api_url`` (default ``$GBIF_API_URL`` or ``https://api.gbif.org/v1``)
and raises the typed errors of :mod:`gbifxdl.errors`.
"""

from __future__ import annotations

from gbifxdl.gbif._api import (
    DEFAULT_WAIT_TIMEOUT,
    cancel,
    citation,
    list_downloads,
    load_payload,
    make_request,
    post_request,
    status,
    wait,
)
from gbifxdl.gbif._archive import ArchiveCheckFailed, download_archive
from gbifxdl.gbif._http import DEFAULT_API_URL, ApiSettings, resolve_api_url
from gbifxdl.gbif._status import DownloadPage, DownloadStatus

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_WAIT_TIMEOUT",
    "ApiSettings",
    "ArchiveCheckFailed",
    "DownloadPage",
    "DownloadStatus",
    "cancel",
    "citation",
    "download_archive",
    "list_downloads",
    "load_payload",
    "make_request",
    "post_request",
    "resolve_api_url",
    "status",
    "wait",
]
