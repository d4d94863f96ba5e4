"""File writing: atomic renames (nothing partial ever sits at a final path) and gathered writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Return the hex digest (``algorithm``: any of hashlib's) of a file's bytes, read in 1 MiB blocks.
    Not for security: MD5 is what object stores give as a version, and FIPS builds allow it so."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes, read in 1 MiB blocks."""
    return file_digest(path, "sha256")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_chunks(fd: int, chunks: list[bytes]) -> None:
    """Write ``chunks`` to ``fd`` in (usually) one system call."""
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.writev(fd, views[:1024])  # IOV_MAX
        while views and n >= len(views[0]):
            n -= len(views.pop(0))
        if n:
            views[0] = views[0][n:]


def write_file(path: str | Path, chunks: list[bytes]) -> None:
    """Write ``chunks`` as the whole of the file at ``path`` (one open, usually one writev).

    No Python file object: for the many small files of a fetch, the cheapest write.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        write_chunks(fd, chunks)
    finally:
        os.close(fd)
