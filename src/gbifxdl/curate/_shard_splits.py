"""Shards of one split each (WebDataset layout), so that loaders pick a split by file name.

Fetch writes shards before any split exists, so a fetched shard mixes the splits. After
curation has written the splits into ``metadata.parquet``, every kept sample moves to the
shard ``<folder>/<split>-<name>`` (``shards/train-shard-000000.tar``), its JSON gains its
``split`` and a ``<key>.cls`` member holds its label: the index of its class among the
class names sorted as text (null = ``unlabeled``), the order ``label`` has in the Hugging
Face tables and torchvision's ``ImageFolder``. The ``shard`` column follows.

Order, so that a kill leaves no sample only in a file the table does not name: the new
shards are written (each atomically), then the table, then the old shards are deleted (a
kill before that leaves them as strays, which the next curation sets aside).
"""

from __future__ import annotations

import io
import json
import tarfile
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl._io import atomic_path
from gbifxdl.curate._files import key_ext
from gbifxdl.curate._setaside import _members
from gbifxdl.curate._splits import SPLIT_NAMES
from gbifxdl.curate._table import METADATA, Rows, write_table

__all__ = ["relocate", "shard_for", "split_shards"]

_BY_LENGTH = sorted(SPLIT_NAMES, key=len, reverse=True)  # test_ood- before test-


def shard_for(shard: str, split: str) -> str:
    """Return the shard a sample of ``split`` belongs in: ``<folder>/<split>-<name>`` (any split prefix replaced)."""
    folder, slash, name = shard.rpartition("/")
    for known in _BY_LENGTH:
        if name.startswith(known + "-"):
            name = name[len(known) + 1:]
            break
    return f"{folder}{slash}{split}-{name}"


def _class_names(path: Path, class_column: str) -> list[str]:
    names: set[str] = set()
    for batch in pq.ParquetFile(path).iter_batches(columns=[class_column]):
        names |= set(pc.unique(pc.fill_null(pc.cast(batch.column(0), pa.string()), "unlabeled")).to_pylist())
    return sorted(names)


def _current(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """Return {key: (its .cls text, its JSON's split)} of a shard ({} when absent or unreadable)."""
    out: dict[str, list[str | None]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                key, ext = key_ext(info.name)
                if info.isfile() and ext in ("cls", "json"):
                    data = tar.extractfile(info).read()  # type: ignore[union-attr]
                    slot = out.setdefault(key, [None, None])
                    if ext == "cls":
                        slot[0] = data.decode().strip()
                    else:
                        slot[1] = json.loads(data).get("split")
    except (OSError, tarfile.TarError, EOFError, ValueError):
        return {}
    return {k: (v[0], v[1]) for k, v in out.items()}


def _add(dst: tarfile.TarFile, like: tarfile.TarInfo, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), like.mtime, like.mode
    dst.addfile(info, io.BytesIO(data))


def _write(root: Path, tmp: Path, samples: list[tuple[str, str, str, int]]) -> None:
    """Write ``samples`` (source shard, key, split, label) into ``tmp``, each sample's members together."""
    by_source: dict[str, dict[str, tuple[str, int]]] = {}
    for source, key, split, label in samples:
        by_source.setdefault(source, {})[key] = (split, label)
    with tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as dst:
        for source, wanted in by_source.items():
            with tarfile.open(root / source, "r:") as src:
                members: dict[str, list[tarfile.TarInfo]] = {}
                for info in src:
                    key = key_ext(info.name)[0]
                    if info.isfile() and key in wanted:
                        members.setdefault(key, []).append(info)
                for key, infos in members.items():
                    split, label = wanted[key]
                    for info in infos:
                        ext = key_ext(info.name)[1]
                        if ext == "cls":
                            continue
                        if ext == "json":
                            meta = json.loads(src.extractfile(info).read())  # type: ignore[union-attr]
                            meta["split"] = split
                            _add(dst, info, info.name, json.dumps(meta, ensure_ascii=False).encode())
                        else:
                            dst.addfile(info, src.extractfile(info))
                    _add(dst, infos[0], f"{key}.cls", str(label).encode())


def split_shards(root: Path, class_column: str) -> int:
    """Return how many shards were written so that each holds the samples of one split (see the module)."""
    path = root / METADATA
    schema = pq.read_schema(path)
    if not {"shard", "key", "split", class_column} <= set(schema.names):
        return 0
    names = _class_names(path, class_column)
    index = {name: i for i, name in enumerate(names)}
    plan: dict[str, list[tuple[str, str, str, int]]] = {}
    for batch in pq.ParquetFile(path).iter_batches(columns=["shard", "key", "split", class_column]):
        labels = pc.fill_null(pc.cast(batch.column(3), pa.string()), "unlabeled").to_pylist()
        for shard, key, split, label in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(),
                                            batch.column(2).to_pylist(), labels):
            if shard and key and split:
                plan.setdefault(shard_for(shard, split), []).append((shard, key, split, index[label]))
    todo = {target: samples for target, samples in plan.items()
            if any(source != target for source, *_ in samples) or _stale(root / target, samples)}
    if not todo:
        return 0
    with ExitStack() as stack:  # every new shard is read from the old ones before any is replaced
        for target, samples in sorted(todo.items()):
            _write(root, stack.enter_context(atomic_path(root / target)), samples)
    moved = {source for samples in todo.values() for source, *_ in samples}
    _rewrite_shards(path, lambda part: [shard_for(s, sp) if s and sp else s for s, sp in zip(
        part.column("shard").to_pylist(), part.column("split").to_pylist())])
    for source in sorted(moved - set(plan)):
        (root / source).unlink(missing_ok=True)
    return len(todo)


def _rewrite_shards(path: Path, new: Callable[[pa.Table], list[str | None]]) -> None:
    """Rewrite ``path`` (streamed, atomically) with its ``shard`` column as ``new`` says, batch by batch."""
    schema = pq.read_schema(path)
    field = schema.field("shard")

    def batches() -> Iterator[pa.Table]:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
            part = pa.Table.from_batches([batch], schema=schema)
            yield part.set_column(schema.get_field_index("shard"), field, pa.array(new(part), field.type))

    write_table(Rows(schema, batches), path)


def relocate(root: Path) -> int:
    """Return how many rows were pointed at the split shard now holding their sample.

    A table that fetch reassembles from its units (``run`` does, to curate again with other
    settings) names the shards fetch wrote; after a curation their samples sit in
    ``<split>-<name>``. Rows whose shard is gone are pointed there before curation checks
    the files (samples set aside stay under their old shard's name, where curation looks).
    """
    path = root / METADATA
    if not path.is_file() or not {"shard", "key"} <= set(pq.read_schema(path).names):
        return 0
    named = {str(s) for s in pc.unique(pq.read_table(path, columns=["shard"]).column(0)).to_pylist() if s}
    where: dict[tuple[str, str], str] = {}
    for old in sorted(s for s in named if not (root / s).is_file()):
        for split in SPLIT_NAMES:
            shard = shard_for(old, split)
            if shard != old and (root / shard).is_file():
                where.update({(old, key): shard for key in _members(root / shard)})
    if not where:
        return 0
    found = 0

    def new(part: pa.Table) -> list[str | None]:
        nonlocal found
        out = [where.get((s, k), s) if s and k else s
               for s, k in zip(part.column("shard").to_pylist(), part.column("key").to_pylist())]
        found += sum(a != b for a, b in zip(out, part.column("shard").to_pylist()))
        return out

    _rewrite_shards(path, new)
    return found


def _stale(path: Path, samples: list[tuple[str, str, str, int]]) -> bool:
    """Return whether a shard already in place lacks a sample's label or split, or holds another."""
    current = _current(path)
    return (set(current) != {key for _, key, _, _ in samples}
            or any(current.get(key) != (str(label), split) for _, key, split, label in samples))
