"""The original ``postprocess`` and ``add_set_column``, over the new curation code.

They read the original pipeline's table (``status``, ``filename``, ``img_hash`` columns;
images in ``img_dir/<speciesKey>/<filename>``) and write ``<stem><suffix>.parquet`` beside
it, as before. One deliberate change: duplicates within a species keep one copy (the
original dropped every copy); a photo filed under two species is still dropped.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from gbifxdl.curate import toolkit
from gbifxdl.errors import ConfigError

_dedupe = _files = _splits = _table = toolkit  # curate's public building blocks, in one module

__all__ = ["add_set_column", "postprocess"]

_ORIGINAL_SEED = 42  # the original add_set_column seeded numpy with 42


def _failed(status: str | None) -> bool:
    return status is None or status.endswith("_failed")


def _with_set(table: pa.Table, species_column: str, n_split: int, ood_th: int, seed: int) -> pa.Table:
    labels = _table.class_labels(table, species_column)
    groups = [f"row:{i}" for i in range(table.num_rows)]  # the original split image by image
    spec = _splits.SplitSpec(n_split=n_split, ood_th=ood_th, seed=seed)
    _, fold = _splits.assign(labels, groups, [None] * table.num_rows, spec)
    table = _table.drop_columns(table, ("set",))
    return table.append_column("set", pa.array(fold, pa.string()))


def add_set_column(
    parquet_path: str | Path,
    batch_size: int = 1000,
    n_split: int = 5,
    ood_th: int = 5,
    species_column: str = "speciesKey",
    seed: int = _ORIGINAL_SEED,
    out_path: str | Path | None = None,
    suffix: str = "_set",
) -> Path:
    """Return the path of a copy of the table with a ``set`` column.

    ``set`` is ``test_ood`` for species with at most ``ood_th`` images, else a fold
    ``'0'``..``'n_split-1'`` spread evenly within the species. ``batch_size`` is accepted
    for compatibility and unused.
    """
    source = Path(parquet_path)
    target = Path(out_path) if out_path else source.with_stem(source.stem + suffix)
    table = _table.read_table(source)
    _table.write_table(_with_set(table, species_column, n_split, ood_th, seed), target)
    return target


def postprocess(
    parquet_path: str | Path,
    img_dir: str | Path,
    batch_size: int = 1000,
    status_column: str = "status",
    img_hash_column: str = "img_hash",
    filename_column: str = "filename",
    species_column: str = "speciesKey",
    n_split: int = 5,
    ood_th: int = 5,
    dry_run: bool = False,
    remove_itermediate: bool = True,
    suffix: str = "_postprocessed",
    sftp_params: object | None = None,
) -> Path:
    """Return the path of the postprocessed table ``<stem><suffix>.parquet``.

    Drops failed rows and duplicate images, deletes files no row refers to (not with
    ``dry_run``), drops rows whose file is missing or unreadable, removes empty folders
    and adds the ``set`` column. ``batch_size`` and ``remove_itermediate`` are accepted
    for compatibility (no intermediate files are written any more).
    """
    if sftp_params is not None:
        raise ConfigError(
            "postprocess on an SFTP server is no longer supported; mount the remote folder "
            "(e.g. with sshfs) and pass its local path as img_dir"
        )
    source, root = Path(parquet_path), Path(img_dir)
    table = _table.read_table(source)
    _table.require_columns(table, (status_column, filename_column), source)
    n = table.num_rows
    labels = _table.class_labels(table, species_column)
    folders = ["unlabeled_species" if v is None else str(v) for v in _table.column_or_nulls(table, species_column)]
    names = _table.column_or_nulls(table, filename_column)
    paths = [None if not f else (f if "/" in f else f"{d}/{f}") for f, d in zip(names, folders)]
    reasons = {i: "failed" for i, s in enumerate(_table.column_or_nulls(table, status_column)) if _failed(s)}
    alive = [i for i in range(n) if i not in reasons]
    reasons.update(_files.check_files(root, paths, [None] * n, alive))
    alive = [i for i in alive if i not in reasons]
    uf = _dedupe.UnionFind(n)
    for a, b in _dedupe.equal_value_pairs(_table.column_or_nulls(table, img_hash_column), alive):
        uf.union(a, b)
    drops = _dedupe.resolve(uf.groups(alive), labels, list(range(n)), paths, "drop-all", "duplicate")
    reasons.update({i: d.reason for i, d in drops.items()})
    keep = [i for i in range(n) if i not in reasons]
    sync = _files.sync_folders(root, {paths[i] for i in keep if paths[i]}, dry_run, base=root, only_images=True)
    result = _with_set(table.take(pa.array(keep, pa.int64())), species_column, n_split, ood_th, _ORIGINAL_SEED)
    target = source.with_stem(source.stem + suffix)
    _table.write_table(result, target)
    counts = {r: list(reasons.values()).count(r) for r in sorted(set(reasons.values()))}
    print(f"Postprocessed {n} rows: kept {len(keep)}, removed {sum(counts.values())} {counts}; "
          f"{'would delete' if dry_run else 'deleted'} {sync.files_deleted} files and "
          f"{sync.folders_removed} empty folders. Table: {target}")  # fmt: skip
    return target
