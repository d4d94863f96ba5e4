"""Where a dataset's files go: a local folder, or an fsspec URL (S3, GCS, SFTP, ...).

``open_store(target)`` gives a :class:`Store`: whole objects addressed by ``/``-separated
keys relative to the target. Every put is atomic: an object appears under its final key
only when complete, and a concurrent reader sees the old object, the new one, or none,
never a part. How, per back end:

- a local path (or ``file://``): write a temporary name beside the final path, then
  ``os.replace`` (plain ``os`` calls; fsspec is never imported);
- S3 and GCS: upload straight to the final key; the object exists only once the upload
  (single PUT, or multipart upload, or resumable upload) completes, and an interrupted
  multipart upload never becomes an object;
- SFTP and any other filesystem: upload to a temporary name beside it, then rename
  (SFTP's ``posix-rename``, which replaces the target in one step).

There is no append: a journal on an object store is written as whole objects (e.g. one per
finished unit), so any machine that can read the store can resume from it.

Temporary names contain ``.tmp-``; listings never show them and
:meth:`Store.remove_temporaries` deletes those a killed process left. Credentials are read
only from each filesystem's usual places (AWS variables, profiles and ``AWS_ENDPOINT_URL``;
Google application credentials; the SSH agent, ``~/.ssh`` keys and ``known_hosts``); a
password in the URL is refused, and nothing here shows one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gbifxdl.store._base import TEMP_MARK, Store, check_key, is_temporary, redact_url, temp_name
from gbifxdl.store._local import LocalStore
from gbifxdl.errors import StorageError

__all__ = ["Store", "LocalStore", "open_store", "local_target", "redact_url", "is_temporary", "check_key", "temp_name",
           "TEMP_MARK", "StorageError"]

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)


def open_store(target: str | Path, *, storage_options: Mapping[str, Any] | None = None,
               check: bool = False) -> Store:
    """Return the store of ``target``: a local path, ``file://...``, or an fsspec URL.

    ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``sftp://user@host[:port]/path``,
    ``memory://prefix`` (tests), or any protocol fsspec knows. ``storage_options`` go to the
    fsspec filesystem (tests use them for a loopback endpoint and keys); users rely on the
    usual places instead. ``check=True`` makes sure the target can be written first.
    """
    if isinstance(target, Path):
        store: Store = LocalStore(target)
    else:
        match = _URL.match(target)
        if not match:
            store = LocalStore(target)
        elif match.group(1).lower() == "file":
            store = LocalStore(_file_url_path(target))
        else:
            _refuse_password(target)
            from gbifxdl.store._fsspec import open_fsspec_store

            store = open_fsspec_store(target, match.group(1).lower(), dict(storage_options or {}))
    if check:
        store.check()
    return store


def local_target(target: str | Path) -> Path | None:
    """Return the local folder ``target`` names (a path or ``file://`` URL), or None for a remote URL."""
    if isinstance(target, Path):
        return target
    match = _URL.match(target)
    if not match:
        return Path(target)
    if match.group(1).lower() == "file":
        return Path(_file_url_path(target))
    return None


def _file_url_path(url: str) -> str:
    from urllib.parse import unquote

    rest = url[len("file://"):]
    if rest.startswith("localhost/"):
        rest = rest[len("localhost"):]
    if not rest.startswith("/"):
        raise StorageError(f"{url} is not a file URL of this machine: write file:///absolute/path")
    return unquote(rest)


def _refuse_password(url: str) -> None:
    if redact_url(url) != url:
        raise StorageError(
            f"{redact_url(url)}: a password in the URL is refused (it would show in process lists and "
            "be saved with the run's settings); for SFTP use an SSH key or the SSH agent, for S3 "
            "the AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a profile (AWS_PROFILE)")
