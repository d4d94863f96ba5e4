"""Curation's building blocks, public for the stages after it.

The dataset card and the report read the curated tables with these; the original API
(:mod:`gbifxdl.compat`) rebuilds ``postprocess`` from them. Other stages import these
names from here, never from curate's private modules, so curate can reshape its insides
freely while these names keep their meaning.

- tables: :data:`METADATA`, :data:`REMOVED`, :func:`read_table`, :func:`write_table`,
  :func:`provenance`, :func:`with_provenance`, :func:`require_columns`,
  :func:`drop_columns`, :func:`class_labels`, :func:`column_or_nulls`
- files: :data:`IMAGE_EXTS`, :func:`check_files`, :func:`sync_folders`, :class:`ImageReader` (a row's
  image bytes, in the dataset or set aside), :func:`thumbnail_jpeg` (the report's and the review's)
- duplicates: :class:`UnionFind`, :func:`equal_value_pairs`, :func:`resolve`, :func:`rejected_pairs` (of a
  summary's near-duplicate evidence)
- splits: :class:`SplitSpec`, :func:`assign`, :func:`split_shards` (shards of one split each, every
  sample with its split and label)
"""

from __future__ import annotations

from gbifxdl.curate._dedupe import UnionFind, equal_value_pairs, resolve
from gbifxdl.curate._files import IMAGE_EXTS, check_files, sync_folders
from gbifxdl.curate._images import ImageReader, thumbnail_jpeg
from gbifxdl.curate._near import rejected_pairs
from gbifxdl.curate._shard_splits import split_shards
from gbifxdl.curate._splits import SplitSpec, assign
from gbifxdl.curate._table import (
    METADATA,
    REMOVED,
    class_labels,
    column_or_nulls,
    drop_columns,
    provenance,
    read_table,
    require_columns,
    with_provenance,
    write_table,
)

__all__ = [
    "IMAGE_EXTS",
    "ImageReader",
    "METADATA",
    "REMOVED",
    "SplitSpec",
    "UnionFind",
    "assign",
    "check_files",
    "class_labels",
    "column_or_nulls",
    "drop_columns",
    "equal_value_pairs",
    "provenance",
    "read_table",
    "rejected_pairs",
    "require_columns",
    "resolve",
    "split_shards",
    "sync_folders",
    "thumbnail_jpeg",
    "with_provenance",
    "write_table",
]
