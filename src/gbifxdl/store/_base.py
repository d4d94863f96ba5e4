"""The contract of :mod:`gbifxdl.store`: the :class:`Store` interface, keys and temporary names."""

from __future__ import annotations

import abc
import itertools
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/@]*)@")
TEMP_MARK = ".tmp-"


def redact_url(url: str) -> str:
    """Return ``url`` without a password: ``user:secret@`` is dropped whole, ``user@`` kept."""
    match = _USERINFO.match(url)
    if not match or ":" not in match.group(2):
        return url
    return match.group(1) + url[match.end():]


def is_temporary(key: str) -> bool:
    """Return whether ``key`` names a put still in progress (or abandoned by a killed process)."""
    return TEMP_MARK in key.rsplit("/", 1)[-1]


_TOKEN: tuple[int, str, itertools.count[int]] | None = None


def temp_name(final: str) -> str:
    """Return a unique temporary name in the folder of ``final`` (same folder: the rename is atomic).

    Unique across threads (a counter), processes (the pid) and machines sharing a store
    (a random token drawn once per process).
    """
    global _TOKEN
    pid = os.getpid()
    if _TOKEN is None or _TOKEN[0] != pid:  # first call, or a forked child
        _TOKEN = (pid, f"{pid}-{uuid.uuid4().hex[:6]}", itertools.count())
    head, _, name = final.rpartition("/")
    tmp = f".{name}{TEMP_MARK}{_TOKEN[1]}-{next(_TOKEN[2])}"
    return f"{head}/{tmp}" if head else tmp


def check_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a relative ``/``-separated key (``prefix``: may be empty or end in ``/``)."""
    if not isinstance(key, str):
        raise TypeError(f"a store key is a str, not {type(key).__name__}")
    body = key[:-1] if prefix and key.endswith("/") else key
    if body == "" and prefix:
        return key
    # the usual key ("images/123/abc.jpg") passes the first test without a split
    if (not body or body[0] == "/" or body[-1] == "/" or "//" in body or "\\" in body
            or ((body[0] == "." or "/." in body) and any(p in (".", "..") for p in body.split("/")))):
        raise ValueError(f"{key!r} is not a store key: use a relative path such as 'images/123/abc.jpg'")
    return key


class Store(abc.ABC):
    """Whole objects under one target, addressed by relative keys; every put is atomic.

    Remote stores block the calling thread: from an event loop, call them through
    ``asyncio.to_thread`` (or a thread pool). A missing key read raises ``FileNotFoundError``;
    every other failure raises :class:`~gbifxdl.errors.StorageError`.
    """

    is_local: bool = False

    @abc.abstractmethod
    def describe(self, key: str = "") -> str:
        """Return the target (or one key under it) as a user reads it, without credentials."""

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release connections (a no-op for a local folder)."""

    def local_path(self, key: str) -> Path | None:
        """Return the key's path on this machine's filesystem, or None for a remote store."""
        return None

    def check_found(self) -> None:
        """Make sure the target's bucket (or folder) exists, without writing; raise a one-line error if not."""

    @abc.abstractmethod
    def check(self) -> None:
        """Make sure the target can be written (create the folder; find the bucket); raise if not."""

    @abc.abstractmethod
    def temp_path(self, key: str) -> str:
        """Return a fresh local path to build the file meant for ``key`` in, for :meth:`put_file`.

        A str, not a Path: it is made for every image, where pathlib would cost more than the rename.
        """

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes | Sequence[bytes]) -> None:
        """Store ``data`` (bytes, or a list of chunks) as the whole object ``key``, atomically."""

    @abc.abstractmethod
    def put_file(self, local_path: str | Path, key: str) -> None:
        """Move the local file ``local_path`` to the object ``key`` atomically (the file is gone after)."""

    @abc.abstractmethod
    def copy_file(self, local_path: str | Path, key: str) -> None:
        """Store a copy of the local file ``local_path`` as the object ``key``, atomically (the file stays)."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the whole object ``key``."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Return a seekable binary reader of ``key`` (for pyarrow, tarfile); close it after use."""

    @abc.abstractmethod
    def get_file(self, key: str, local_path: str | Path) -> None:
        """Copy the object ``key`` to the local file ``local_path``."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """Return the size in bytes of ``key``, or None when there is no such object."""

    def exists(self, key: str) -> bool:
        """Return whether the object ``key`` exists (complete: puts are atomic)."""
        return self.size(key) is not None

    @abc.abstractmethod
    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Return ``{key: size}`` of every object under ``prefix`` (recursive; temporaries left out).

        One listing instead of one request per key: how a resume checks many objects at once.
        """

    def list_versions(self, prefix: str = "") -> dict[str, tuple[int, str]]:
        """Return ``{key: (size, version)}`` under ``prefix``; the version changes when the object does.

        ``md5:<hex>`` where the store gives the content's MD5 (S3 single-part ETag, GCS md5Hash),
        else its own tag (a multipart ETag, a generation, a time); "" where it gives none.
        """
        return {key: (size, "") for key, size in self.list_sizes(prefix).items()}

    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys of every object under ``prefix`` (recursive; temporaries left out)."""
        return sorted(self.list_sizes(prefix))

    @abc.abstractmethod
    def remove(self, key: str) -> None:
        """Delete the object ``key``; nothing happens when it is absent."""

    @abc.abstractmethod
    def remove_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix`` (a folder's whole tree)."""

    @abc.abstractmethod
    def remove_temporaries(self, prefix: str = "") -> int:
        """Delete the temporaries that killed puts left under ``prefix``; returns how many."""
