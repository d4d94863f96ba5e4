"""What dataset hubs read: the card's YAML front matter, and per-split tables for ``datasets``.

Hugging Face's image-folder builder pairs each image with a row of a metadata file
whose ``file_name`` column holds the image's path relative to that file. gbifxdl's
``metadata.parquet`` names it ``path``, and holds every split, so for the folders layout
the card writes one small table per split at the dataset's root,
``metadata-<split>.parquet``: the curated rows of that split plus ``file_name`` and a
``label`` (a ClassLabel whose names are the class folders, sorted as torchvision's
ImageFolder sorts them, so label indices agree). The front matter's ``configs`` point the
builder at them, so ``datasets.load_dataset(DIR)`` loads the folder as it is.

For the WebDataset layout, curation writes each split into shards of its own
(``shards/<split>-*.tar``, each sample with ``<key>.cls``, its label): the front matter
maps each split to its shards and declares ``cls`` a ClassLabel of the same names.

``datasets`` keys the cache of a local folder by its card (configs, patterns), not by
where the folder is: a folder's cache holds its images' absolute paths, so the card's
recipe for the folders layout passes ``data_files=`` itself, which puts the files' absolute
paths (and times) in the cache key. Shards need not: their cache holds the images.
"""

from __future__ import annotations

import json
import tarfile
from contextlib import ExitStack
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl._io import atomic_path
from gbifxdl.curate.toolkit import METADATA
from gbifxdl.publish.facts import HUB_SPLITS, DatasetFacts, size_category

__all__ = ["front_matter", "hub_data_files", "split_table_name", "write_split_tables"]

_FETCH_INTERNALS = ("outcome", "error", "attempts", "http_status", "phash", "chroma_hash", "pixel_hash", "signature")


def split_table_name(split: str) -> str:
    """Return the file name of a split's table (``metadata-validation.parquet`` for ``val``)."""
    return f"metadata-{HUB_SPLITS.get(split, split)}.parquet"


def write_split_tables(facts: DatasetFacts) -> list[str]:
    """Return the names of the per-split tables written at the dataset's root (folders layout).

    Tables of splits that no longer exist are deleted; nothing is written for shards.
    The rows are streamed from metadata.parquet a batch at a time, each to its split's
    table (written under a temporary name, then renamed), so any table size fits in memory.
    """
    root = facts.root
    for stale in root.glob("metadata-*.parquet"):
        stale.unlink()
    schema = facts.schema if facts.schema is not None else facts.table.schema
    if facts.layout != "folders" or "split" not in schema.names or "path" not in schema.names:
        return []
    names = sorted(label for label, _ in facts.classes)
    features = {"label": {"_type": "ClassLabel", "names": names}, "file_name": {"_type": "Value", "dtype": "string"}}
    meta = dict(schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": features}}).encode()
    # fetch's bookkeeping stays in metadata.parquet (datasets cannot hold phash, a uint64 above 2**63)
    columns = [f for f in schema if f.name not in _FETCH_INTERNALS]
    out_schema = pa.schema(columns + [pa.field("file_name", schema.field("path").type), pa.field("label", pa.int64())],
                           metadata=meta)
    splits = _ordered(facts)
    written = [split_table_name(split) for split in splits]
    with ExitStack() as stack:
        writers = {}
        for split, name in zip(splits, written):
            tmp = stack.enter_context(atomic_path(root / name))
            writers[split] = stack.enter_context(pq.ParquetWriter(tmp, out_schema))
        source = pq.ParquetFile(root / METADATA, pre_buffer=False, buffer_size=1 << 20)
        label_set = pa.array(names, pa.string())
        for batch in source.iter_batches(batch_size=16_384, columns=[f.name for f in columns]):
            part = pa.Table.from_batches([batch])
            text = pc.fill_null(pc.cast(part.column(facts.class_column), pa.string()), "unlabeled")
            labels = pc.cast(pc.index_in(text, value_set=label_set), pa.int64())
            full = pa.Table.from_arrays(list(part.columns) + [part.column("path"), labels], schema=out_schema)
            for split, writer in writers.items():
                chosen = full.filter(pc.equal(full.column("split"), split))
                if chosen.num_rows:
                    writer.write_table(chosen)
    return written


_HUB_DTYPES = {"int64": "int64", "int32": "int32", "uint64": "uint64", "double": "float64", "float": "float32",
               "string": "string", "large_string": "string", "bool": "bool"}


def _shard_features(facts: DatasetFacts) -> list[dict[str, Any]]:
    """Return the hub features of a shard sample, typed from metadata.parquet.

    Declared rather than inferred, so that every sample reads with the same types
    (``phash`` is hex text in the sample's JSON).
    """
    shard = next((s for s in pc.unique(facts.arrow("shard")).to_pylist() if s), None)
    try:
        with tarfile.open(facts.root / shard) as tar:  # type: ignore[operator]
            member = next(m for m in tar if m.name.endswith(".json"))
            keys = list(json.loads(tar.extractfile(member).read()))  # type: ignore[union-attr]
    except (OSError, StopIteration, TypeError, ValueError, tarfile.TarError):
        return []
    schema = facts.schema if facts.schema is not None else facts.table.schema
    struct = [{"name": k, "dtype": _HUB_DTYPES.get(str(schema.field(k).type), "string")
               if k in schema.names and k != "phash" else "string"} for k in keys]  # phash: hex text there
    labels = {"class_label": {"names": {str(i): name for i, name in enumerate(sorted(n for n, _ in facts.classes))}}}
    return [{"name": "cls", "dtype": labels}, {"name": "jpg", "dtype": "image"}, {"name": "json", "struct": struct},
            {"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}]


def _ordered(facts: DatasetFacts) -> list[str]:
    """Return the dataset's split names, train first, as hubs list them."""
    order = list(HUB_SPLITS)
    return sorted((s for s, _ in facts.splits), key=lambda s: (order.index(s) if s in order else len(order), s))


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Return ``value`` (dicts, lists, scalars) as block YAML lines; scalars as JSON, which YAML reads."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{pad}{key}:"] + _yaml(item, indent + 2)
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
    else:
        for item in value:
            sub = _yaml(item, indent + 2) if isinstance(item, (dict, list)) else [f"{pad}  {json.dumps(item)}"]
            lines.append(f"{pad}- {sub[0].lstrip()}")
            lines += sub[1:]
    return lines


def hub_data_files(facts: DatasetFacts) -> dict[str, list[str]]:
    """Return {Hugging Face split: the patterns of its files}, relative to the dataset folder.

    Folders: the split's table and the images (the table picks the split's images). Shards:
    curation writes each split into shards of its own, ``shards/<split>-*.tar``.
    """
    splits = _ordered(facts)
    if facts.layout == "folders":
        if not splits:
            return {"train": ["images/*/*"]}
        return {HUB_SPLITS.get(s, s): [split_table_name(s), "images/*/*"] for s in splits}
    shards = sorted({str(s) for s in pc.unique(facts.arrow("shard")).to_pylist() if s})
    if not splits or not all(s.rpartition("/")[2].startswith(tuple(f"{p}-" for p in splits)) for s in shards):
        return {"train": ["shards/*.tar"]}  # fetched, not curated: one split of everything
    return {HUB_SPLITS.get(s, s): [f"shards/{s}-*.tar"] for s in splits}


def front_matter(facts: DatasetFacts, title: str, split_tables: list[str]) -> list[str]:
    """Return the card's YAML front matter lines (between ``---`` lines) for dataset hubs."""
    meta: dict[str, Any] = {"license": facts.licence_hub}
    if facts.licence_hub == "other":
        meta["license_name"] = "mixed"
        meta["license_link"] = "ATTRIBUTION.csv"
    meta.update({
        "pretty_name": title,
        "task_categories": ["image-classification"],
        "size_categories": [size_category(facts.images)],
        "tags": ["biology", "biodiversity", "GBIF", "species", "gbifxdl"],
    })  # fmt: skip
    # datasets keys its cache by the config, not by the folder: the table's digest in the
    # description keeps two datasets with the same card layout from sharing a cache
    identity = f"gbifxdl dataset, metadata.parquet sha256 {facts.table_sha256[:16]}"
    if facts.layout == "folders" and split_tables:
        default = {
            "config_name": "default", "default": True, "description": identity, "metadata_filenames": split_tables,
            "data_files": [{"split": HUB_SPLITS.get(s, s), "path": [split_table_name(s), "images/*/*"]}
                           for s in _ordered(facts)],
        }  # fmt: skip
    elif facts.layout == "folders":
        default = {"config_name": "default", "default": True, "description": identity,
                   "data_files": [{"split": "train", "path": "images/*/*"}]}
    else:
        default = {"config_name": "default", "default": True, "description": identity,
                   "data_files": [{"split": split, "path": paths} for split, paths in hub_data_files(facts).items()]}
        features = _shard_features(facts)
        if features:
            meta["dataset_info"] = {"features": features}
    # one config only: datasets builds every config of a folder with the builder inferred for the default
    meta["configs"] = [default]
    return ["---"] + _yaml(meta) + ["---", ""]
