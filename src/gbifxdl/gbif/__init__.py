"""The GBIF occurrence download API: post a request, wait for it, get the archive.

- :func:`post_request` a predicate or request -> download key
- :func:`status`, :func:`wait` -> :class:`DownloadStatus`
- :func:`download_archive` -> ``DIR/KEY.zip`` (resumable, checked)
- :func:`cancel`, :func:`list_downloads`, :func:`citation`
- :func:`check_key`, :func:`check_payload`: the local checks every call makes first
- :func:`send`, :func:`check`: one HTTP call to the GBIF API with retries, and its answer
  turned into a typed error (defined in :mod:`gbifxdl._gbif_http`, below the stages, where
  query's species match reaches them too)

Every function takes ``api_url`` (default ``$GBIF_API_URL`` or ``https://api.gbif.org/v1``)
and raises the typed errors of :mod:`gbifxdl.errors`. Keys, payloads and options are
checked locally before any credential is asked for or anything is sent; a host that does
not resolve or refuses connections fails at once (:class:`GbifUnreachable`), while
:func:`wait` rides out outages once GBIF has answered.
"""

from __future__ import annotations

from gbifxdl.gbif._api import (
    DEFAULT_MAX_OUTAGE,
    DEFAULT_WAIT_TIMEOUT,
    cancel,
    check_payload,
    citation,
    list_downloads,
    load_payload,
    make_request,
    post_request,
    status,
    wait,
)
from gbifxdl.gbif._archive import ArchiveCheckFailed, download_archive
from gbifxdl._gbif_http import (  # shared with query's species match, which sits below gbif
    DEFAULT_API_URL,
    ApiSettings,
    GbifUnreachable,
    check,
    resolve_api_url,
    send,
)
from gbifxdl.gbif._key import InvalidKey, check_key
from gbifxdl.gbif._status import DownloadPage, DownloadStatus

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_MAX_OUTAGE",
    "DEFAULT_WAIT_TIMEOUT",
    "ApiSettings",
    "ArchiveCheckFailed",
    "DownloadPage",
    "DownloadStatus",
    "GbifUnreachable",
    "InvalidKey",
    "cancel",
    "check",
    "check_key",
    "check_payload",
    "citation",
    "download_archive",
    "list_downloads",
    "load_payload",
    "make_request",
    "post_request",
    "resolve_api_url",
    "send",
    "status",
    "wait",
]
