"""Where processed images go: species folders, or WebDataset tar shards.

Both writers offer the same steps (the engine's :class:`~gbifxdl.fetch._seams.Writer`). ``temp_path`` names where a worker writes an image;
``write`` renames it into place (after the journal line exists); ``valid`` tells whether
a journalled image is still there on resume and ``full_path`` where it lies (or would lie:
what :mod:`~gbifxdl.fetch.adopt` looks for);
``close_unit`` finishes a unit (the tar shard for WebDataset) and fills each row's ``path``
or ``shard``/``key``; ``restore`` brings a finished unit's images back into play for
``--retry-failed``.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from gbifxdl.fetch.settings import FetchSettings
from gbifxdl.fetch.journal import FetchState


class FolderWriter:
    """Writes ``DIR/images/<class>/<url_hash>.<ext>``."""

    def __init__(self, out_dir: Path, settings: FetchSettings, state: FetchState) -> None:
        self.out_dir = out_dir
        self.root = out_dir / settings.images_dir if settings.images_dir else out_dir
        self.settings = settings
        # paths as plain strings: built for every image, where pathlib costs more than the rename
        self._prefix = f"{self.root.relative_to(out_dir).as_posix()}/" if self.root != out_dir else ""
        self._folders: dict[str, str] = {}
        self._suffix = f".tmp-{os.getpid()}"

    def temp_path(self, unit: int, key: str, cls: str) -> str:
        """Return a temporary path in the image's final folder (so the rename is atomic)."""
        folder = self._folders.get(cls)
        if folder is None:
            made = self.root / cls
            made.mkdir(parents=True, exist_ok=True)
            folder = self._folders[cls] = str(made)
        return f"{folder}/.{key}{self._suffix}"

    def final_path(self, unit: int, key: str, cls: str, ext: str) -> str:
        """Return the image's path relative to DIR."""
        return f"{self._prefix}{cls}/{key}.{ext}"

    def write(self, temp: str, entry: dict[str, Any]) -> None:
        """Move a finished image into place."""
        os.replace(temp, f"{self.out_dir}/{entry['path']}")

    def valid(self, unit: int, entry: dict[str, Any]) -> bool:
        """Return whether a journalled image is at its path with its size."""
        try:
            return (self.out_dir / entry["path"]).stat().st_size == entry["bytes"]
        except (OSError, TypeError, KeyError):
            return False

    def full_path(self, unit: int, entry: dict[str, Any]) -> str:
        """Return where a journalled image lies."""
        return f"{self.out_dir}/{entry['path']}"

    def close_unit(self, unit: int, entries: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
        """Nothing to gather: every image is already at its final path."""

    def restore(self, unit: int, entries: list[dict[str, Any]]) -> list[str]:
        """Nothing to restore: the images never left their folders."""
        return []

    def cleanup(self) -> None:
        """Delete temporary files a killed run left behind."""
        if self.root.is_dir():
            for path in self.root.glob("*/.*.tmp-*"):
                path.unlink(missing_ok=True)


class WebDatasetWriter:
    """Writes ``DIR/shards/shard-NNNNNN.tar`` (``<key>.<ext>`` + ``<key>.json`` per sample)."""

    def __init__(self, out_dir: Path, settings: FetchSettings, state: FetchState) -> None:
        self.out_dir = out_dir
        self.shards = out_dir / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.state = state

    def temp_path(self, unit: int, key: str, cls: str) -> str:
        spool = self.state.spool_dir(unit)
        spool.mkdir(parents=True, exist_ok=True)
        return str(spool / f".{key}.tmp-{os.getpid()}")

    def final_path(self, unit: int, key: str, cls: str, ext: str) -> str:
        # until the tar exists the sample lives in the spool; `path` is cleared at close
        return f"{key}.{ext}"

    def write(self, temp: str, entry: dict[str, Any]) -> None:
        os.replace(temp, os.path.join(os.path.dirname(temp), entry["path"]))

    def valid(self, unit: int, entry: dict[str, Any]) -> bool:
        try:
            return (self.state.spool_dir(unit) / entry["path"]).stat().st_size == entry["bytes"]
        except (OSError, TypeError, KeyError):
            return False

    def full_path(self, unit: int, entry: dict[str, Any]) -> str:
        return str(self.state.spool_dir(unit) / entry["path"])

    def close_unit(self, unit: int, entries: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
        """Build the unit's tar shard(s) from its spool, in row order; set ``shard`` and ``key``."""
        spool = self.state.spool_dir(unit)
        part, size, tar, tmp, name = 0, 0, None, None, ""
        limit = self.settings.shard_bytes
        try:
            for entry, row in zip(entries, rows):
                if entry["outcome"] != "ok":
                    continue
                if tar is not None and limit is not None and size >= limit:
                    tar.close()
                    os.replace(tmp, self.out_dir / name)
                    tar, part, size = None, part + 1, 0
                if tar is None:
                    stem = f"shard-{unit:06d}" if limit is None else f"shard-{unit:06d}-{part:03d}"
                    name = f"shards/{stem}.tar"
                    tmp = self.out_dir / f"{name}.tmp-{os.getpid()}"
                    tar = tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT)
                file_name = entry["path"]
                key, ext = file_name.rsplit(".", 1)
                data = (spool / file_name).read_bytes()
                sample = {**row, **{k: entry.get(k) for k in _SAMPLE_FIELDS}}
                if sample["phash"] is not None:
                    # 16 hex digits: as a JSON number it passes 2**63, which int64 readers
                    # (Hugging Face datasets among them) cannot hold
                    sample["phash"] = f"{sample['phash']:016x}"
                if sample["chroma_hash"] is not None:
                    sample["chroma_hash"] = f"{sample['chroma_hash']:032x}"
                _add(tar, f"{key}.{ext}", data)
                _add(tar, f"{key}.json", json.dumps(sample, default=str, sort_keys=True).encode())
                size += len(data)
                entry["shard"], entry["key"], entry["path"] = name, key, None
            if tar is not None:
                tar.close()
                os.replace(tmp, self.out_dir / name)
        finally:
            if tar is not None and not tar.closed:
                tar.close()

    def restore(self, unit: int, entries: list[dict[str, Any]]) -> list[str]:
        """Put a finished unit's samples back in its spool; returns its shards (to delete later)."""
        spool = self.state.spool_dir(unit)
        spool.mkdir(parents=True, exist_ok=True)
        names = sorted({e["shard"] for e in entries if e.get("shard")})
        for name in names:
            with tarfile.open(self.out_dir / name) as tar:
                for member in tar.getmembers():
                    if not member.name.endswith(".json"):
                        data = tar.extractfile(member).read()  # type: ignore[union-attr]
                        (spool / member.name).write_bytes(data)
        for e in entries:
            if e.get("shard"):
                e["path"] = f"{e['key']}.{_ext_in(spool, e['key'])}"
                e["shard"] = e["key"] = None
        return names

    def cleanup(self) -> None:
        for path in self.shards.glob("*.tmp-*"):
            path.unlink(missing_ok=True)


_SAMPLE_FIELDS = ("orig_width", "orig_height", "width", "height", "bytes", "sha256", "pixel_hash", "phash",
                  "chroma_hash")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    # fixed owner and time: a resumed run builds byte-identical shards
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _ext_in(spool: Path, key: str) -> str:
    for path in spool.glob(f"{key}.*"):
        return path.name.rsplit(".", 1)[1]
    return "jpg"


def make_writer(out_dir: Path, settings: FetchSettings, state: FetchState) -> FolderWriter | WebDatasetWriter:
    """Return the writer of ``settings.layout``."""
    cls = WebDatasetWriter if settings.layout == "webdataset" else FolderWriter
    return cls(out_dir, settings, state)
