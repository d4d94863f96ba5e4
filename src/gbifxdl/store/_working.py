"""A dataset in a bucket, worked on as a local folder: :func:`working_copy`.

The commands after fetch (curate, infer, review, report, derive, export, cite, and ``run``'s
later stages) read and write a dataset folder with plain file calls. For a store URL they
work on a *working copy*: a cache folder (``$GBIFXDL_CACHE``, default ``~/.cache/gbifxdl``,
then ``buckets/<hash of the URL>/<name>``) that :meth:`WorkingCopy.pull` brings up to date
with the store and :meth:`WorkingCopy.push` puts back.

Both compare three listings: the store's (size and version of each object), the folder's
(size and modification time of each file) and the record of the last sync (``sync.json``
beside the folder: what each file was when it last matched its object). So

- a pull downloads only the objects changed in the store since the last sync (new on this
  machine: all of them), deletes the files whose objects were deleted there, and keeps what
  a command changed here and has not pushed yet (a command killed midway, run again, goes
  on from its own work, as on a local folder); an object changed in the store *and* here
  is taken from the store;
- a push puts every file changed here (each put atomic, through the store) in an order
  that leaves the bucket's dataset whole at every moment: bulk files first (images,
  shards, set-aside files), then the journals under ``.gbifxdl/``, then the tables, card
  and report at the top, then ``.gbifxdl/run.json`` (the run state, which says what is
  done); only then are the objects of files deleted here deleted. A push killed midway,
  run again, puts only what is still missing (the record is kept as it goes; an object
  put but not yet recorded is recognised by its size and MD5 instead of downloaded back).

A local path is its own working copy: nothing is copied, nothing changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gbifxdl._io import file_digest
from gbifxdl._locate import IMAGE_EXTS
from gbifxdl.errors import StorageError
from gbifxdl.store._base import Store, is_temporary, redact_url, temp_name

CACHE_ENV = "GBIFXDL_CACHE"
RECORD = "sync.json"
RUN_STATE = ".gbifxdl/run.json"
IMAGE_SUFFIXES = (*(f".{ext}" for ext in IMAGE_EXTS), ".tar")  # and WebDataset shards
ARCHIVES = "archive/"  # the GBIF archive: only `run` reads it (its select stage)
THREADS = 16  # transfers in flight: the store's client waits on the network, not the CPU
SAVE_EVERY = 10.0  # seconds between saves of the record during a long push

# local folder -> the URL it is a working copy of, while its command runs (the card names the URL)
_OPEN: dict[str, str] = {}
_LOCK = threading.Lock()


def is_image_file(key: str) -> bool:
    """Return whether ``key`` is an image or a WebDataset shard (the bulk a table-only command skips)."""
    return key.lower().endswith(IMAGE_SUFFIXES)


def location_of(folder: str | Path) -> str | None:
    """Return the store URL ``folder`` is the working copy of, or None for a dataset folder of its own."""
    return _OPEN.get(os.path.abspath(folder))


def cache_root() -> Path:
    """Return the folder holding the working copies (``$GBIFXDL_CACHE``, else ``~/.cache/gbifxdl``)."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gbifxdl"


@dataclass
class _Entry:
    """One file as it was when it last matched its object."""

    local: tuple[int, int]  # (size, mtime_ns) of the file
    remote: tuple[int, str]  # (size, version) of the object; version "" until a listing gives it


@dataclass
class Transfers:
    """What a pull or a push moved."""

    files: int = 0
    bytes: int = 0
    deleted: int = 0

    def format(self, verb: str) -> str:
        return f"{verb} {self.files} files ({self.bytes / 2**20:.1f} MiB), deleted {self.deleted}"


@dataclass
class WorkingCopy:
    """A dataset folder on this machine standing for ``url`` (see the module's docstring)."""

    path: Path
    url: str | None = None  # None: a local dataset folder, its own working copy
    store: Store | None = None
    skip: Callable[[str], bool] = field(default=lambda key: False)
    echo: Callable[[str], None] = field(default=lambda line: None)
    _record: dict[str, _Entry] = field(default_factory=dict)
    _saved: float = 0.0

    @property
    def remote(self) -> bool:
        return self.url is not None

    def shown(self, path: str | Path) -> str:
        """Return how a user names ``path``: its URL for a file of a working copy, else the path."""
        if self.url is None:
            return str(path)
        rel = os.path.relpath(path, self.path)
        return self.url if rel == "." else f"{self.url}/{Path(rel).as_posix()}"

    # --- the record ---------------------------------------------------------------------

    @property
    def _record_path(self) -> Path:
        return self.path.parent / RECORD

    def _load(self) -> None:
        try:
            data = json.loads(self._record_path.read_text())
            self._record = {k: _Entry(tuple(v[0]), tuple(v[1])) for k, v in data["files"].items()}  # type: ignore[arg-type]
        except FileNotFoundError:
            self._record = {}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self._record = {}  # a damaged record: every object is compared again (by MD5 where it can)

    def _save(self) -> None:
        from gbifxdl._io import write_text_atomic

        data = {"url": self.url, "files": {k: [list(e.local), list(e.remote)] for k, e in self._record.items()}}
        write_text_atomic(self._record_path, json.dumps(data, separators=(",", ":")))
        self._saved = time.monotonic()

    def _save_now_and_then(self) -> None:
        if time.monotonic() - self._saved > SAVE_EVERY:
            self._save()

    # --- the local folder ---------------------------------------------------------------

    def _local_files(self) -> dict[str, tuple[int, int]]:
        """Return ``{key: (size, mtime_ns)}`` of every file in the folder (temporaries left out)."""
        out: dict[str, tuple[int, int]] = {}
        root = str(self.path)
        for folder, dirs, files in os.walk(root):
            rel = os.path.relpath(folder, root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in files:
                key = prefix + name
                if is_temporary(key):
                    continue
                try:
                    st = os.stat(os.path.join(folder, name))
                except FileNotFoundError:
                    continue
                out[key] = (st.st_size, st.st_mtime_ns)
        return out

    def _stat(self, key: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path / key)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return (st.st_size, st.st_mtime_ns)

    # --- pull ---------------------------------------------------------------------------

    def pull(self, *, must_exist: bool = True) -> Transfers:
        """Bring the folder up to date with the store; return what was downloaded and deleted."""
        assert self.store is not None
        remote = self.store.list_versions()
        if not remote:
            self.store.check_found()  # a missing bucket says so
            if must_exist:
                raise StorageError(f"no dataset at {self.url}: nothing is stored under it; check the URL, or make "
                                   f"one there with `gbifxdl run ... -o {self.url}` or `gbifxdl fetch SELECTION "
                                   f"-o {self.url}`")
        self.path.mkdir(parents=True, exist_ok=True)
        done = Transfers()
        wanted: list[str] = []
        for key, (size, version) in remote.items():
            if self.skip(key):
                continue
            entry = self._record.get(key)
            here = self._stat(key)
            if entry is not None:
                if entry.remote[0] == size and entry.remote[1] in ("", version):
                    # unchanged there: what is here (changed, or deleted) is kept, for the push
                    entry.remote = (size, version)  # (a push's object gets its version)
                    continue
            elif here is not None and here[0] == size and version.startswith("md5:") and (
                    file_digest(self.path / key, "md5") == version[4:]):
                self._record[key] = _Entry(here, (size, version))  # put by a push killed before its record
                continue
            wanted.append(key)
        for key in [k for k in self._record if k not in remote]:
            entry = self._record.pop(key)
            if self._stat(key) == entry.local:  # deleted there, unchanged here
                (self.path / key).unlink(missing_ok=True)
                done.deleted += 1
        try:
            self._transfer(wanted, lambda key: self._download(key, remote[key]), done)
        finally:
            self._save()
        return done

    def _download(self, key: str, remote: tuple[int, str]) -> int:
        assert self.store is not None
        final = self.path / key
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(str(final))
        try:
            self.store.get_file(key, tmp)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        here = self._stat(key)
        assert here is not None
        with _LOCK:
            self._record[key] = _Entry(here, remote)
        return here[0]

    # --- push ---------------------------------------------------------------------------

    def push(self) -> Transfers:
        """Put back what changed in the folder since the last sync; return what was uploaded and deleted."""
        if self.store is None:
            return Transfers()
        local = self._local_files()
        changed = [k for k, st in local.items() if (e := self._record.get(k)) is None or e.local != st]
        changed = [k for k in changed if not self._rewritten_alike(k, local[k])]
        gone = sorted(k for k in self._record if k not in local)
        done = Transfers()
        try:
            for tier in range(4):
                keys = sorted(k for k in changed if _tier(k) == tier)
                self._transfer(keys, lambda key: self._upload(key, local[key]), done)
                self._save()
            for key in gone:
                self.store.remove(key)
                del self._record[key]
                done.deleted += 1
                self._save_now_and_then()
        finally:
            self._save()
        return done

    def _rewritten_alike(self, key: str, stat: tuple[int, int]) -> bool:
        """Return whether ``key`` was written again with the bytes its object holds (then recorded, not put)."""
        entry = self._record.get(key)
        if entry is None or entry.remote[0] != stat[0] or not entry.remote[1].startswith("md5:"):
            return False
        if file_digest(self.path / key, "md5") != entry.remote[1][4:]:
            return False
        entry.local = stat
        return True

    def shown_text(self, text: str) -> str:
        """Return ``text`` with the working copy's folder named by its URL."""
        return text if self.url is None else text.replace(str(self.path), self.url)

    def _upload(self, key: str, stat: tuple[int, int]) -> int:
        assert self.store is not None
        self.store.copy_file(self.path / key, key)
        with _LOCK:
            self._record[key] = _Entry(stat, (stat[0], ""))
        return stat[0]

    # --- both ---------------------------------------------------------------------------

    def _transfer(self, keys: list[str], one: Callable[[str], int], done: Transfers) -> None:
        if not keys:
            return
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(one, key) for key in keys]
            try:
                for future in futures:
                    done.bytes += future.result()
                    done.files += 1
                    self._save_now_and_then()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _tier(key: str) -> int:
    """Return when a push puts ``key``: bulk files, journals, the tables at the top, the run state last."""
    if key == RUN_STATE:
        return 3
    if "/" not in key:
        return 2
    if key.startswith(".gbifxdl/") and not is_image_file(key):
        return 1
    return 0


def cache_folder(url: str) -> Path:
    """Return the working copy's folder of ``url``: ``<cache>/buckets/<hash>/<the URL's last name>``."""
    shown = redact_url(url).rstrip("/")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", shown.rsplit("/", 1)[-1]) or "dataset"
    digest = hashlib.sha256(shown.encode()).hexdigest()[:16]
    return cache_root() / "buckets" / digest / name


@contextlib.contextmanager
def working_copy(target: str | Path, *, images: bool = True, archive: bool = False, must_exist: bool = True,
                 push: bool = True, storage_options: dict[str, Any] | None = None,
                 echo: Callable[[str], None] = lambda line: None) -> Iterator[WorkingCopy]:
    """Give a local folder standing for the dataset ``target`` (a path, or a store URL), put back after.

    A local path (or ``file://``) is given as it is. A URL's working copy is pulled first
    (``images=False``: without image files and shards; ``archive``: with the GBIF archive),
    and pushed when the block ends without an error (``push=False``: never, for commands that
    only read); a block ended by Ctrl-C or an error pushes nothing, and the next command on
    the same URL goes on from the folder as it is. ``must_exist``: a URL with nothing under
    it is an error (only ``run`` starts a dataset in an empty place). ``echo`` gets one line
    per pull and push.
    """
    from gbifxdl.store._open import local_target, open_store

    local = local_target(target)
    if local is not None:
        if must_exist and not local.is_dir():
            raise StorageError(f"{local} does not exist: give a dataset folder (or its s3://, gs:// URL)")
        yield WorkingCopy(local)
        return
    url = redact_url(str(target)).rstrip("/")
    folder = cache_folder(url)
    folder.parent.mkdir(parents=True, exist_ok=True)

    def skipped(key: str) -> bool:
        return (not archive and key.startswith(ARCHIVES)) or (not images and is_image_file(key))

    with _exclusive(folder.parent, url), open_store(str(target), storage_options=storage_options) as store:
        copy = WorkingCopy(folder, url=url, store=store, skip=skipped, echo=echo)
        copy._load()
        moved = copy.pull(must_exist=must_exist)
        if moved.files or moved.deleted:
            echo(f"{url}: {moved.format('downloaded')} into {folder}")
        _OPEN[os.path.abspath(folder)] = url
        try:
            yield copy
        finally:
            _OPEN.pop(os.path.abspath(folder), None)
        if push:
            moved = copy.push()
            if moved.files or moved.deleted:
                echo(f"{url}: {moved.format('uploaded')}")


@contextlib.contextmanager
def _exclusive(folder: Path, url: str) -> Iterator[None]:
    """Hold the working copy's lock: one command at a time works on it (on this machine)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(folder / "lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(f"another gbifxdl command is working on {url} (its working copy {folder.parent}): "
                               "wait for it to end, then run this one again") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
