"""The fsspec side of :mod:`gbifxdl.store`: S3, GCS, SFTP and any other fsspec filesystem.

Imported only for a URL target, so a local fetch never imports fsspec.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import unquote, urlsplit

from gbifxdl.store._base import Store, check_key, is_temporary, redact_url, temp_name
from gbifxdl.errors import StorageError

T = TypeVar("T")

# protocol -> the gbifxdl extra that brings its fsspec back end
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "sftp": "sftp", "ssh": "sftp"}
# object stores: an object exists only once its upload completes, so upload to the final key
DIRECT_UPLOAD = {"s3", "s3a", "gs", "gcs"}
HINTS = {
    "s3": "check that the bucket exists and the AWS credentials (AWS_ACCESS_KEY_ID and "
          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE; AWS_ENDPOINT_URL for an S3-compatible server)",
    "gcs": "check that the bucket exists and the Google credentials (GOOGLE_APPLICATION_CREDENTIALS, "
           "or `gcloud auth application-default login`)",
    "sftp": "check the host and port, that the server's key is in ~/.ssh/known_hosts (connect once "
            "with ssh), and that it accepts your key (the SSH agent, or ~/.ssh/id_*)",
}
# S3 multipart parts: a shard of a few hundred MB goes up in parallel parts (s3fs: 50 MiB)
S3_PART_BYTES = 8 * 2**20


def open_fsspec_store(url: str, protocol: str, options: dict[str, Any]) -> FsspecStore:
    """Return the store of an fsspec ``url``, or a :class:`StorageError` saying what to install or set."""
    shown = redact_url(url)
    extra = EXTRAS.get(protocol)
    install = f"pip install 'gbifxdl[{extra}]'" if extra else "pip install fsspec"
    try:
        import fsspec
    except ImportError:
        raise StorageError(f"cannot use {shown}: the {extra or 'fsspec'} extra is not installed: {install}") from None
    try:
        if EXTRAS.get(protocol) == "sftp":
            # asyncssh-based, async like the fetch; fsspec's own "sftp" is paramiko's. asyncssh still
            # names DSA and TripleDES, and the cryptography package warns of each on import: a user
            # should see our lines, not ten of a dependency's (issue 20, item 16)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed)", module=r"asyncssh")
                from sshfs import SSHFileSystem as cls
        else:
            # Google's client libraries warn, on import, of each Python version they will drop (3.10 now):
            # a line of theirs before ours would break the one-line answer of every gs:// command
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
                cls = fsspec.get_filesystem_class(protocol)
    except ImportError:
        raise StorageError(f"cannot use {shown}: the {extra or protocol} extra is not installed: {install}") from None
    except ValueError:
        raise StorageError(f"cannot use {shown}: unknown storage protocol {protocol!r}; give a local "
                           "path or an s3://, gs://, sftp:// or file:// URL") from None
    kind = EXTRAS.get(protocol, protocol)
    options.setdefault("skip_instance_cache", True)
    if kind in ("s3", "gcs"):
        # other machines write here too: a cached listing would hide their objects from
        # every later read and existence check of this instance (s3fs answers from it)
        options.setdefault("use_listings_cache", False)
    if kind == "sftp":
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or port == -1:
            raise StorageError(f"{shown} names no host or a bad port: write sftp://user@host[:port]/path")
        options.setdefault("known_hosts", ())  # sshfs turns host checks off by default; asyncssh's own default
        if port:
            options.setdefault("port", port)
        if parts.username:
            options.setdefault("username", unquote(parts.username))
        root = unquote(parts.path).rstrip("/") or "."
        connect: Callable[[], Any] = lambda: cls(parts.hostname, **options)  # noqa: E731
    else:
        root = cls._strip_protocol(url).rstrip("/")
        connect = lambda: cls(**options)  # noqa: E731
    try:
        fs = connect()
    except Exception as exc:  # each back end raises its own kinds; all mean "cannot connect"
        raise StorageError(f"cannot connect to {shown}: {_reason(exc)}; {HINTS.get(kind, 'check the URL')}") from exc
    return FsspecStore(fs, kind, root, shown)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact_url(text.splitlines()[0] if text.strip() else type(exc).__name__)


class FsspecStore(Store):
    """A store on an fsspec filesystem (see :mod:`gbifxdl.store` for the contract)."""

    def __init__(self, fs: Any, kind: str, root: str, shown: str) -> None:
        self.fs = fs
        self.kind = kind
        self.root = root
        self._shown = shown.rstrip("/")
        self._direct = kind in DIRECT_UPLOAD
        self._hint = HINTS.get(kind, "check the URL and this filesystem's credentials")
        self._made: set[str] = set()
        self._spool: str | None = None

    # --- plumbing -----------------------------------------------------------------------

    def describe(self, key: str = "") -> str:
        return f"{self._shown}/{key}" if key else self._shown

    def _full(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _call(self, what: str, key: str, fn: Callable[..., T], *args: Any, reading: bool = False, **kw: Any) -> T:
        try:
            return fn(*args, **kw)
        except FileNotFoundError as exc:
            if reading:
                raise FileNotFoundError(errno.ENOENT, f"no object {self.describe(key)}") from None
            raise self._fail(what, key, exc) from exc
        except (StorageError, ValueError, TypeError):
            raise
        except Exception as exc:  # botocore, asyncssh, aiohttp... each has its own
            raise self._fail(what, key, exc) from exc

    def _fail(self, what: str, key: str, exc: BaseException) -> StorageError:
        return StorageError(f"cannot {what} {self.describe(key)}: {_reason(exc)}; {self._hint}")

    def _parent(self, full: str) -> None:
        # folder-based filesystems need the folder before the temporary file goes in
        folder = full.rpartition("/")[0]
        if folder and folder not in self._made:
            self.fs.makedirs(folder, exist_ok=True)
            self._made.add(folder)

    def _rename(self, tmp: str, final: str) -> None:
        if self.kind == "sftp" and hasattr(self.fs, "_pool"):
            self._sftp_rename(tmp, final)
        else:
            self.fs.mv(tmp, final)

    def _sftp_rename(self, tmp: str, final: str) -> None:
        # sshfs's mv falls back to copy + delete, which a reader could see half-done: not here
        import asyncssh
        from fsspec.asyn import sync

        async def rename() -> None:
            async with self.fs._pool.get() as channel:
                try:
                    await channel.posix_rename(tmp, final)
                except asyncssh.SFTPOpUnsupported:
                    # plain SFTP rename refuses an existing target: the object is briefly absent, never partial
                    if await channel.exists(final):
                        await channel.remove(final)
                    await channel.rename(tmp, final)

        sync(self.fs.loop, rename)

    def _discard(self, tmp: str) -> None:
        try:
            self.fs.rm_file(tmp)
        except Exception:  # best effort: remove_temporaries() sweeps what is left
            pass

    # --- the Store surface --------------------------------------------------------------

    def close(self) -> None:
        if self._spool:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def check_found(self) -> None:
        if self._direct:
            bucket = self.root.split("/", 1)[0]
            if not self._call("find the bucket of", "", self.fs.exists, bucket):
                make = f"`aws s3 mb s3://{bucket}`" if self.kind == "s3" else f"`gcloud storage buckets create gs://{bucket}`"
                raise StorageError(f"the bucket of {self.describe()} does not exist: create it "
                                   f"(e.g. {make}), or give another URL")
        elif not self._call("find", "", self.fs.exists, self.root):
            raise StorageError(f"{self.describe()} does not exist: check the URL")

    def check(self) -> None:
        if self._direct:
            self.check_found()
        else:
            self._call("create", "", self.fs.makedirs, self.root, exist_ok=True)
        probe = temp_name("gbifxdl-probe")
        self._call("write to", "", self.fs.pipe_file, f"{self.root}/{probe}", b"")
        self._call("delete from", "", self.fs.rm_file, f"{self.root}/{probe}")

    def temp_path(self, key: str) -> str:
        check_key(key)
        if self._spool is None:
            self._spool = tempfile.mkdtemp(prefix="gbifxdl-store-")
        name = key.rsplit("/", 1)[-1]
        return f"{self._spool}/{uuid.uuid4().hex[:12]}-{name}"

    def put_bytes(self, key: str, data: bytes | Sequence[bytes]) -> None:
        blob = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b"".join(data)
        self._put(key, self.fs.pipe_file, blob)

    def put_file(self, local_path: str | Path, key: str) -> None:
        self.copy_file(local_path, key)
        os.unlink(local_path)

    def copy_file(self, local_path: str | Path, key: str) -> None:
        if not os.path.isfile(local_path):
            raise FileNotFoundError(errno.ENOENT, f"no local file {local_path} to store")
        extra = {"chunksize": S3_PART_BYTES} if self.kind == "s3" else {}
        self._put(key, lambda dest: self.fs.put_file(str(local_path), dest, **extra))

    def _put(self, key: str, upload: Callable[..., Any], *args: Any) -> None:
        final = self._full(key)
        if self._direct:
            # s3fs/gcsfs: one PUT, or a multipart/resumable upload completed last (aborted on error)
            self._call("write", key, upload, final, *args)
            return
        tmp = temp_name(final)
        try:
            self._call("write", key, self._upload_beside, final, tmp, upload, *args)
        except BaseException:
            self._discard(tmp)
            raise

    def _upload_beside(self, final: str, tmp: str, upload: Callable[..., Any], *args: Any) -> None:
        self._parent(final)
        try:
            upload(tmp, *args)
        except FileNotFoundError:  # another process removed the folder since this one made it
            self._made.discard(final.rpartition("/")[0])
            self._parent(final)
            upload(tmp, *args)
        self._rename(tmp, final)

    def read_bytes(self, key: str) -> bytes:
        return self._call("read", key, self.fs.cat_file, self._full(key), reading=True)

    def open_read(self, key: str) -> BinaryIO:
        return self._call("read", key, self.fs.open, self._full(key), "rb", reading=True)

    def get_file(self, key: str, local_path: str | Path) -> None:
        self._call("read", key, self.fs.get_file, self._full(key), str(local_path), reading=True)

    def size(self, key: str) -> int | None:
        try:
            info = self._call("read", key, self.fs.info, self._full(key), reading=True)
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def _find(self, prefix: str) -> dict[str, int]:
        """Return ``{key: size}`` under ``prefix``, temporaries included."""
        return {key: int(info.get("size") or 0) for key, info in self._infos(prefix).items()}

    def _infos(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Return ``{key: the filesystem's details}`` under ``prefix``, temporaries included."""
        check_key(prefix, prefix=True)
        folder = prefix.rpartition("/")[0]
        base = f"{self.root}/{folder}" if folder else self.root
        try:
            found = self._call("list", prefix, self.fs.find, base, detail=True, reading=True)
        except FileNotFoundError:
            return {}
        root = self.root.strip("/") + "/"
        out: dict[str, dict[str, Any]] = {}
        for name, info in found.items():
            rel = name.strip("/")
            if info.get("type", "file") != "file" or not rel.startswith(root):
                continue
            rel = rel[len(root):]
            if rel.startswith(prefix):
                out[rel] = info
        return out

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        return {k: v for k, v in self._find(prefix).items() if not is_temporary(k)}

    def list_versions(self, prefix: str = "") -> dict[str, tuple[int, str]]:
        return {k: (int(info.get("size") or 0), _version(info))
                for k, info in self._infos(prefix).items() if not is_temporary(k)}

    def remove(self, key: str) -> None:
        try:
            self._call("delete", key, self.fs.rm_file, self._full(key), reading=True)
        except FileNotFoundError:
            pass

    def remove_prefix(self, prefix: str) -> None:
        keys = list(self._find(prefix))
        if keys:
            self._call("delete", prefix, self.fs.rm, [f"{self.root}/{k}" for k in keys])
        if not self._direct and prefix.endswith("/"):
            try:  # the emptied folders
                self.fs.rm(f"{self.root}/{prefix.rstrip('/')}", recursive=True)
            except Exception:
                pass
        self._made.clear()

    def remove_temporaries(self, prefix: str = "") -> int:
        found = [k for k in self._find(prefix) if is_temporary(k)]
        for key in found:
            self._discard(f"{self.root}/{key}")
        return len(found)


def _version(info: dict[str, Any]) -> str:
    """Return an object's version from its listing details (see :meth:`Store.list_versions`)."""
    md5 = info.get("md5Hash")  # GCS: base64 of the MD5
    if md5:
        import base64
        import binascii

        try:
            return "md5:" + base64.b64decode(md5).hex()
        except (binascii.Error, ValueError):
            pass
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower()):
        return "md5:" + etag.lower()  # S3: a single-part upload's ETag is its MD5
    if etag:
        return "etag:" + etag
    for name in ("generation", "mtime", "LastModified", "updated"):
        if info.get(name):
            return f"{name}:{info[name]}"
    return ""
