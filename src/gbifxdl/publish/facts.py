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

from gbifxdl._io import sha256_file
from gbifxdl.curate.toolkit import METADATA, column_or_nulls, provenance, read_table

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


def ranked(values: list[Any], null: str = "unknown") -> list[tuple[str, int]]:
    """Return (value, count) pairs, most frequent first."""
    return sorted(Counter(null if v is None else str(v) for v in values).items(), key=lambda kv: (-kv[1], kv[0]))


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

    @property
    def images(self) -> int:
        return self.table.num_rows

    @property
    def occurrences(self) -> int:
        return sum(self.per_dataset.values())

    def col(self, name: str) -> list[Any]:
        return column_or_nulls(self.table, name)

    @functools.cached_property
    def table_sha256(self) -> str:
        """Return the sha256 of ``metadata.parquet``: the identity of this version of the dataset."""
        return sha256_file(self.root / METADATA)


def dataset_facts(dataset_dir: str | Path, table: pa.Table | None = None) -> DatasetFacts:
    """Return the facts of the dataset in ``dataset_dir`` (its curated table and derived DOI)."""
    from gbifxdl.card import license_name

    root = Path(dataset_dir)
    table = read_table(root / METADATA) if table is None else table
    prov = provenance(table)
    class_column = (prov.get("curate_settings") or {}).get("class_column") or (
        prov.get("fetch_settings") or {}).get("class_column") or "speciesKey"
    col = lambda name: column_or_nulls(table, name)  # noqa: E731
    licences = ranked([license_name(v) for v in col("license")])
    hub, name = most_restrictive([k for k, _ in licences])
    occurrences: dict[str, set[Any]] = {}
    for key, gbif_id in zip(col("datasetKey"), col("gbifID")):
        if key is not None:
            occurrences.setdefault(str(key), set()).add(gbif_id)
    return DatasetFacts(
        root=root, table=table, prov=prov, class_column=class_column,
        layout="webdataset" if any(col("shard")) else "folders",
        classes=ranked(col(class_column), null="unlabeled"),
        splits=ranked(col("split")) if "split" in table.column_names else [],
        licences=licences, licence_hub=hub, licence_name=name,
        per_dataset={k: len(v) for k, v in sorted(occurrences.items())},
        countries=ranked(col("countryCode")),
        derived=read_json(root / DERIVED_STATE),
    )  # fmt: skip
