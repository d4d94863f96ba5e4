"""Publishing a curated dataset: hub loading, Croissant, a GBIF derived-dataset DOI, manifests.

``write_croissant(DIR)`` describes the dataset in MLCommons Croissant; ``derive(DIR, ...)``
registers it with GBIF's derived-dataset service and records the DOI it gets;
``export_manifest(DIR, OUT)`` writes the dataset without its images, and
``rebuild(OUT, DIR2)`` fetches them again, checking each against its sha256.

The dataset card is :mod:`~gbifxdl.publish.card` (``write_card``, which ``curate`` calls; its
public name is also ``gbifxdl.card``); licence names and the citation text, shared by the card,
Croissant, manifests, derived datasets and the report, are in :mod:`~gbifxdl.publish.credit`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gbifxdl._lazy import lazy_getattr

if TYPE_CHECKING:
    from gbifxdl.publish.croissant import write_croissant
    from gbifxdl.publish.derived import DerivedDataset, derive, derive_request
    from gbifxdl.publish.manifest import export_manifest
    from gbifxdl.publish.rebuild import RebuildSummary, rebuild

__all__ = ["DerivedDataset", "RebuildSummary", "derive", "derive_request", "export_manifest", "rebuild",
           "write_croissant"]

__getattr__ = lazy_getattr(__name__, {
    "write_croissant": "gbifxdl.publish.croissant",
    "DerivedDataset": "gbifxdl.publish.derived",
    "derive": "gbifxdl.publish.derived",
    "derive_request": "gbifxdl.publish.derived",
    "export_manifest": "gbifxdl.publish.manifest",
    "RebuildSummary": "gbifxdl.publish.rebuild",
    "rebuild": "gbifxdl.publish.rebuild",
})
