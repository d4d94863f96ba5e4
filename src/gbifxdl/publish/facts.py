"""What the card, the Croissant file and the report all state about a dataset: one source.

The counts come from the curated ``metadata.parquet``; the derived-dataset DOI, when
one was registered, from ``.gbifxdl/derived.json`` (written by :func:`gbifxdl.publish.derive`).
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gbifxdl._io import sha256_file
from gbifxdl.curate.toolkit import METADATA, column_or_nulls, provenance, read_table
from gbifxdl.publish.credit import license_name

DERIVED_STATE = Path(".gbifxdl") / "derived.json"
REBUILD_STATE = "rebuild.json"
TAXON_RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test", "test_ood": "test_ood"}

# Hugging Face licence identifiers we may state (https://huggingface.co/docs/hub/repositories-licenses)
_HUB_LICENSES = frozenset({
    "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
})  # fmt: skip
_NAME = re.compile(r"^CC (BY(?:-(?:NC|SA|ND))*) (\d(?:\.\d)?)$")


def licence_conditions(name: str) -> frozenset[str] | None:
    """Return the conditions (BY, NC, SA, ND) of a short licence name, None when unknown."""
    if name.startswith("CC0") or name == "Public Domain Mark":
        return frozenset()
    m = _NAME.match(name)
    return frozenset(m.group(1).split("-")) if m else None


def most_restrictive(names: list[str]) -> tuple[str, str]:
    """Return (hub licence id, short name) of the licence whose terms cover every image's.

    The conditions of all images add up (CC BY-SA and CC BY-NC images together are
    used under BY-NC-SA terms); ND makes SA moot. An unknown licence gives "other".
    """
    present = set(names)
    if not present:
        return "unknown", "unknown"
    conditions: set[str] = set()
    for name in present:
        found = licence_conditions(name)
        if found is None:
            return "other", "mixed, including licences gbifxdl does not recognise (see the licence table)"
        conditions |= found
    if "ND" in conditions:
        conditions.discard("SA")
    if not conditions:
        return "cc0-1.0", "CC0 1.0"
    code = "-".join(c for c in ("BY", "NC", "ND", "SA") if c in conditions)
    versions = sorted({n.rsplit(" ", 1)[1] for n in present if licence_conditions(n) == frozenset(conditions)})
    version = versions[-1] if versions else "4.0"
    hub = f"cc-{code.lower()}-{version}"
    return (hub if hub in _HUB_LICENSES else f"cc-{code.lower()}-4.0"), f"CC {code} {version}"


def size_category(n: int) -> str:
    """Return the hub's size category of ``n`` examples ("n<1K", "1K<n<10K", ...)."""
    bounds = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
              (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"))  # fmt: skip
    return next((label for bound, label in bounds if n < bound), "n>1T")


def ranked(values: list[Any] | pa.Array | pa.ChunkedArray, null: str = "unknown") -> list[tuple[str, int]]:
    """Return (value, count) pairs, most frequent first (an Arrow column is counted in place, columnar)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        counts = pc.value_counts(values)
        found: Counter[str] = Counter()
        for v, k in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
            found[null if v is None else str(v)] += k
        return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
    return sorted(Counter(null if v is None else str(v) for v in values).items(), key=lambda kv: (-kv[1], kv[0]))


def licence_counts(values: pa.Array | pa.ChunkedArray) -> list[tuple[str, int]]:
    """Return (short licence name, images) pairs, most frequent first: ``license_name`` of each distinct value."""
    found: Counter[str] = Counter()
    for value, count in ranked(values, null="\x00"):
        found[license_name(None if value == "\x00" else value)] += count
    return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))


# the columns the facts are computed from (read alone: a table of millions of rows never is read whole)
FACT_COLUMNS = ("split", "shard", "license", "datasetKey", "gbifID", "countryCode")


def read_columns(path: Path, names: tuple[str, ...] | list[str]) -> pa.Table:
    """Return the columns ``names`` of the Parquet table at ``path`` that it has (with its schema metadata).

    Text columns are read dictionary-encoded (one dictionary per column): licences, dataset
    keys, splits and names repeat, and ten million rows of them would otherwise take gigabytes.
    """
    import pyarrow.parquet as pq

    if not path.is_file():
        read_table(path)  # raises the helpful error
    schema = pq.read_schema(path)
    wanted = list(dict.fromkeys(n for n in names if n in schema.names))
    text = [n for n in wanted if pa.types.is_string(schema.field(n).type) or pa.types.is_large_string(schema.field(n).type)]
    # a buffered stream of batches, not whole column chunks pre-read: the read costs little beyond its result
    source = pq.ParquetFile(path, read_dictionary=text, pre_buffer=False, buffer_size=1 << 20)
    batches = list(source.iter_batches(batch_size=1 << 20, columns=wanted))
    table = pa.Table.from_batches(batches, schema=source.schema_arrow.empty_table().select(wanted).schema
                                  if not batches else None).unify_dictionaries()
    return table.replace_schema_metadata(schema.metadata)


def read_column(path: Path, name: str) -> pa.ChunkedArray:
    """Return the column ``name`` of the Parquet table at ``path``, read alone (nulls when it has none).

    One column at a time: the card and the facts count each from its own read and let it go,
    so ten million rows never sit in memory as many columns at once.
    """
    import pyarrow.parquet as pq

    if not path.is_file():
        read_table(path)  # raises the helpful error
    if name not in pq.read_schema(path).names:
        return pa.chunked_array([pa.nulls(pq.ParquetFile(path).metadata.num_rows)])
    return read_columns(path, (name,)).column(name)


def count_distinct(values: pa.Array | pa.ChunkedArray) -> int:
    """Return the number of distinct non-null values of a column (what ``pc.count_distinct`` gives).

    Integers (gbifID) are counted by one in-place numpy sort, not a hash table of every value.
    """
    import numpy as np

    if not pa.types.is_integer(values.type):
        return int(pc.count_distinct(values).as_py())
    valid = pc.drop_null(values)
    chunks = valid.chunks if isinstance(valid, pa.ChunkedArray) else [valid]
    ids = np.concatenate([c.to_numpy() for c in chunks if len(c)] or [np.empty(0, np.int64)])  # a copy of its own
    del valid, chunks
    ids.sort()
    return int(len(ids) > 0) + int(np.count_nonzero(ids[1:] != ids[:-1]))


def any_text(values: pa.Array | pa.ChunkedArray) -> bool:
    """Return whether any value of a (text or dictionary) column is non-null and non-empty."""
    return any(v for v in pc.unique(values).to_pylist())


def distinct(values: pa.Array | pa.ChunkedArray) -> int:
    """Return the number of distinct non-null values of a column (dictionary-encoded too)."""
    return sum(1 for v in pc.unique(values).to_pylist() if v is not None)


def read_json(path: Path) -> dict[str, Any] | None:
    """Return the JSON object at ``path``, None when absent or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclass
class DatasetFacts:
    """The numbers and names every published description of a dataset states."""

    root: Path
    table: pa.Table
    prov: dict[str, Any]
    class_column: str
    layout: str
    classes: list[tuple[str, int]]
    splits: list[tuple[str, int]]
    licences: list[tuple[str, int]]
    licence_hub: str
    licence_name: str
    per_dataset: dict[str, int]  # datasetKey -> occurrences kept
    countries: list[tuple[str, int]]
    derived: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema: pa.Schema | None = None  # metadata.parquet's (``table`` may hold only some of its columns)
    rows: int | None = None  # the images, when ``table`` holds none of metadata.parquet's columns

    def __post_init__(self) -> None:
        if self.schema is None:
            self.schema = self.table.schema

    @property
    def images(self) -> int:
        return self.table.num_rows if self.rows is None else self.rows

    @property
    def occurrences(self) -> int:
        return sum(self.per_dataset.values())

    def col(self, name: str) -> list[Any]:
        return column_or_nulls(self.table, name) if self.rows is None else self.arrow(name).to_pylist()

    def arrow(self, name: str) -> pa.ChunkedArray:
        """Return a column as Arrow (nulls when absent): from ``table``, else read alone from metadata.parquet."""
        if self.rows is None or name in self.table.column_names:
            return _column(self.table, name)
        return read_column(self.root / METADATA, name)

    @functools.cached_property
    def table_sha256(self) -> str:
        """Return the sha256 of ``metadata.parquet``: the identity of this version of the dataset."""
        return sha256_file(self.root / METADATA)


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    return table.column(name) if name in table.column_names else pa.chunked_array([pa.nulls(table.num_rows)])


def _occurrences_per_dataset(keys: pa.ChunkedArray, gbif_ids: pa.ChunkedArray) -> dict[str, int]:
    """Return {datasetKey: distinct gbifIDs (null counted once)}, sorted by key: one numpy sort, no hash sets."""
    import numpy as np

    if not pa.types.is_dictionary(keys.type):
        keys = pc.dictionary_encode(pc.cast(keys, pa.string()))
    encoded = pa.table({"d": keys}).unify_dictionaries().column("d")
    if not encoded.num_chunks or not len(encoded):
        return {}
    names = encoded.chunk(0).dictionary.to_pylist()
    codes = np.concatenate([pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
                            for c in encoded.chunks])
    ids = pc.fill_null(pc.cast(gbif_ids, pa.int64()), np.iinfo(np.int64).min).to_numpy()
    live = codes >= 0
    codes, ids = codes[live], ids[live]
    order = np.lexsort((ids, codes))
    codes, ids = codes[order], ids[order]
    new = np.ones(len(codes), dtype=bool)
    new[1:] = (codes[1:] != codes[:-1]) | (ids[1:] != ids[:-1])
    counts = np.bincount(codes[new], minlength=len(names))
    return dict(sorted((str(names[k]), int(counts[k])) for k in np.flatnonzero(counts)))


def dataset_facts(dataset_dir: str | Path, table: pa.Table | None = None, schema: pa.Schema | None = None
                  ) -> DatasetFacts:
    """Return the facts of the dataset in ``dataset_dir`` (its curated table and derived DOI).

    Without ``table``, each column the facts need is read alone from metadata.parquet, counted
    and let go (the facts then hold no column: ``arrow`` reads one when asked);
    ``schema`` is metadata.parquet's when ``table`` holds only some of its columns.
    All counting is columnar (Arrow value counts, numpy sorts), never a Python object per row.
    """
    root = Path(dataset_dir)
    rows: int | None = None
    if table is None:
        import pyarrow.parquet as pq

        path = root / METADATA
        if not path.is_file():
            read_table(path)  # raises the helpful error
        schema = pq.read_schema(path)
        rows = pq.ParquetFile(path).metadata.num_rows
        table = pa.table({}).replace_schema_metadata(schema.metadata)
        names = schema.names
        col = lambda name: read_column(path, name)  # noqa: E731
    else:
        names = table.column_names
        col = lambda name: _column(table, name)  # noqa: E731
    prov = provenance(table)
    class_column = (prov.get("curate_settings") or {}).get("class_column") or (
        prov.get("fetch_settings") or {}).get("class_column") or "speciesKey"
    licences = licence_counts(col("license"))
    hub, name = most_restrictive([k for k, _ in licences])
    per_dataset = _occurrences_per_dataset(col("datasetKey"), col("gbifID"))
    return DatasetFacts(
        root=root, table=table, prov=prov, class_column=class_column,
        layout="webdataset" if any_text(col("shard")) else "folders",
        classes=ranked(col(class_column), null="unlabeled"),
        splits=ranked(col("split")) if "split" in names else [],
        licences=licences, licence_hub=hub, licence_name=name,
        per_dataset=per_dataset,
        countries=ranked(col("countryCode")),
        derived=read_json(root / DERIVED_STATE), schema=schema, rows=rows,
    )  # fmt: skip
