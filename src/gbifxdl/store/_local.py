"""A local folder as a :class:`~gbifxdl.store.Store`: plain ``os`` calls, no fsspec."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, cast

from gbifxdl._io import write_file
from gbifxdl.store._base import Store, check_key, is_temporary, temp_name
from gbifxdl.errors import StorageError


class LocalStore(Store):
    """A folder on this machine: plain ``os`` calls, the same cost as before stores existed."""

    is_local = True

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self._root = str(self.root)
        self._made: set[str] = set()

    def describe(self, key: str = "") -> str:
        return f"{self._root}/{key}" if key else self._root

    def _path(self, key: str) -> str:
        return f"{self._root}/{check_key(key)}"

    def _parent(self, path: str) -> None:
        folder = path.rpartition("/")[0]
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)

    def _fail(self, what: str, key: str, exc: OSError) -> StorageError:
        return StorageError(
            f"cannot {what} {self.describe(key)}: {exc.strerror or exc}; check that the folder "
            "exists, is writable and has free space")

    def local_path(self, key: str) -> Path:
        return Path(self._path(key))

    def check_found(self) -> None:
        if not os.path.isdir(self._root):
            raise StorageError(f"{self._root} does not exist: check the path")

    def check(self) -> None:
        try:
            os.makedirs(self._root, exist_ok=True)
            probe = f"{self._root}/{temp_name('probe')}"
            with open(probe, "wb"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise self._fail("write to", "", exc) from None

    def temp_path(self, key: str) -> str:
        final = self._path(key)
        try:
            self._parent(final)
            if not os.path.isdir(final.rpartition("/")[0]):
                self._parent_again(final)
        except OSError as exc:
            raise self._fail("create the folder of", key, exc) from None
        return temp_name(final)

    def _parent_again(self, path: str) -> None:
        # another process removed the folder since this one made it
        self._made.discard(path.rpartition("/")[0])
        self._parent(path)

    def put_bytes(self, key: str, data: bytes | Sequence[bytes]) -> None:
        final = self._path(key)
        tmp = temp_name(final)
        whole = isinstance(data, (bytes, bytearray, memoryview))
        chunks = [cast(bytes, data)] if whole else list(cast("Sequence[bytes]", data))
        try:
            self._parent(final)
            try:
                write_file(tmp, chunks)
            except FileNotFoundError:
                self._parent_again(final)
                write_file(tmp, chunks)
            os.replace(tmp, final)
        except BaseException as exc:
            _unlink(tmp)
            if isinstance(exc, OSError):
                raise self._fail("write", key, exc) from None
            raise

    def put_file(self, local_path: str | Path, key: str) -> None:
        final = self._path(key)
        try:
            self._parent(final)
            try:
                os.replace(local_path, final)
            except FileNotFoundError:
                if not os.path.exists(local_path):
                    raise
                self._parent_again(final)
                os.replace(local_path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                if isinstance(exc, FileNotFoundError) and not os.path.exists(local_path):
                    raise
                raise self._fail("write", key, exc) from None
            self._copy_in(local_path, final, key)

    def _copy_in(self, local_path: str | Path, final: str, key: str) -> None:
        # another filesystem: copy beside the final path first, so the last step is still a rename
        self.copy_file(local_path, key)
        _unlink(str(local_path))

    def copy_file(self, local_path: str | Path, key: str) -> None:
        final = self._path(key)
        tmp = temp_name(final)
        try:
            self._parent(final)
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, final)
        except OSError as exc:
            _unlink(tmp)
            if isinstance(exc, FileNotFoundError) and not os.path.exists(local_path):
                raise
            raise self._fail("write", key, exc) from None

    def read_bytes(self, key: str) -> bytes:
        with open(self._path(key), "rb") as fh:
            return fh.read()

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def get_file(self, key: str, local_path: str | Path) -> None:
        shutil.copyfile(self._path(key), local_path)

    def size(self, key: str) -> int | None:
        try:
            return os.stat(self._path(key)).st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        check_key(prefix, prefix=True)
        out: dict[str, int] = {}
        for rel, entry in self._walk(prefix):
            if not is_temporary(rel):
                try:
                    out[rel] = entry.stat().st_size
                except FileNotFoundError:
                    continue  # removed while listing
        return out

    def _walk(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        # a prefix is a folder ("a/b/") or the start of names in one ("a/b/sha-")
        folder, _, start = prefix.rpartition("/")
        base = f"{self._root}/{folder}" if folder else self._root
        stack = [(base, f"{folder}/" if folder else "", start)]
        while stack:
            path, rel, start = stack.pop()
            try:
                entries = list(os.scandir(path))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if not entry.name.startswith(start):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{rel}{entry.name}/", ""))
                else:
                    yield f"{rel}{entry.name}", entry

    def remove(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail("delete", key, exc) from None

    def remove_prefix(self, prefix: str) -> None:
        check_key(prefix, prefix=True)
        for rel, _ in list(self._walk(prefix)):
            self.remove(rel)
        folder = f"{self._root}/{prefix.rstrip('/')}" if prefix.strip("/") else None
        if folder and os.path.isdir(folder):
            shutil.rmtree(folder, ignore_errors=True)
        self._made.clear()

    def remove_temporaries(self, prefix: str = "") -> int:
        check_key(prefix, prefix=True)
        found = [rel for rel, _ in self._walk(prefix) if is_temporary(rel)]
        for rel in found:
            _unlink(f"{self._root}/{rel}")
        return len(found)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
