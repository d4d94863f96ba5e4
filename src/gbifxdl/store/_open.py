"""Which store a target names: :func:`open_store`, :func:`local_target`, :func:`is_url`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gbifxdl.errors import StorageError
from gbifxdl.store._base import Store, redact_url
from gbifxdl.store._local import LocalStore

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


def is_url(target: str | Path) -> bool:
    """Return whether ``target`` names a store other than this machine's filesystem (s3://, gs://, sftp://...)."""
    return local_target(target) is None


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
