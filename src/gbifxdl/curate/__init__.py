"""Curation: a fetched folder -> a clean, deduplicated, split dataset.

``curate(DIR)`` starts from every fetched row (the last curated table plus what it
removed, or the table fetch reassembled), drops failed rows, keeps files and table in
exact agreement, removes exact and near duplicates, and adds the ``split`` and ``set``
columns. It replaces ``DIR/metadata.parquet`` atomically, writes the rows it removed
(with ``removed_reason``) to ``DIR/removed.parquet`` and ``DIR/curate_summary.json``,
and by default the dataset card (``README.md``, ``ATTRIBUTION.csv``).

Nothing is deleted: removed files are moved to ``DIR/.gbifxdl/removed/`` (WebDataset:
removed samples to side shards there), and files that the current settings keep are
moved back, so curating again with other settings restores what an earlier curation
removed. ``purge_removed`` (``gbifxdl clean``) deletes the set-aside files for good.
Tables are written before files move, and every table write keeps the union of the two
tables complete, so a killed run is completed by running it again; a second run with
the same settings changes nothing. Nothing is printed: pass ``progress`` to follow it.

- :mod:`~gbifxdl.curate.stage`    the stage itself, :func:`curate` (which also writes the card) and
  :func:`purge_removed`
- :mod:`~gbifxdl.curate.toolkit`  curation's building blocks, public for the stages after it
- ``_columns``, ``_plan``, ``_write``: the decisions a column at a time, and the two tables
  written by streaming; ``_table``: the tables and their provenance; ``_files``,
  ``_setaside``: the files behind them, and those set aside; ``_dedupe``, ``_lsh``, ``_near``,
  ``_pixels``, ``_images``: duplicates and near duplicates; ``_splits``: splits and folds;
  ``_summary``: what a curation did and the warnings a user must see; ``_rules``, ``_models``:
  rules over ``gbifxdl infer``'s results (keep, drop, minimum scores, outliers, the crop's boxes);
  ``_crops``: crops written as the dataset's images, the originals kept to cut again or put back
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gbifxdl._lazy import lazy_getattr

if TYPE_CHECKING:
    from gbifxdl.curate._setaside import SET_ASIDE, PurgeSummary
    from gbifxdl.curate._summary import CurateSummary, split_warnings
    from gbifxdl.curate.stage import CROSS_CLASS_POLICIES, CurateSettings, curate, purge_removed

__all__ = ["CROSS_CLASS_POLICIES", "CurateSettings", "CurateSummary", "PurgeSummary", "curate", "purge_removed",
           "split_warnings"]

# lazy: the card and the report import curation's tables and warnings from here, and
# curate() writes the card, so naming it must not import it
__getattr__ = lazy_getattr(__name__, {
    "CROSS_CLASS_POLICIES": "gbifxdl.curate.stage",
    "CurateSettings": "gbifxdl.curate.stage",
    "curate": "gbifxdl.curate.stage",
    "purge_removed": "gbifxdl.curate.stage",
    "CurateSummary": "gbifxdl.curate._summary",
    "split_warnings": "gbifxdl.curate._summary",
    "PurgeSummary": "gbifxdl.curate._setaside",
    "SET_ASIDE": "gbifxdl.curate._setaside",
})
