"""gbifxdl: from a GBIF occurrence query to a clean, training-ready image dataset.

The stages, in the order data flows through them:

- :mod:`gbifxdl.query`    predicates: validation, a builder, taxon-name matching
- :mod:`gbifxdl.gbif`     the GBIF occurrence download API: post, status, wait, get
- :mod:`gbifxdl.archive`  a Darwin Core Archive's layout and provenance, streamed
- :mod:`gbifxdl.select`   a Darwin Core Archive -> a Parquet table of images to fetch
- :mod:`gbifxdl.fetch`    images: download, validate, resize, hash, write (here, to a store, on Dask)
- :mod:`gbifxdl.infer`    the user's ONNX models over every image: results beside the dataset
- :mod:`gbifxdl.curate`   duplicates and near duplicates, files and tables in sync, splits
- :mod:`gbifxdl.publish`  the dataset card, Croissant, hub tables, derived DOI, manifest, rebuild
- :mod:`gbifxdl.report`   the HTML report
- :mod:`gbifxdl.run`      all of it as one resumable job, and its configuration file

Below them, :mod:`gbifxdl.store` (a local folder or an fsspec URL, written atomically) and
the modules every stage shares (errors, atomic files, Darwin Core terms, credentials).

Each stage is a module named after it and holds a function of the same name:
``from gbifxdl.fetch import fetch, FetchSettings``, or ``gbifxdl.fetch.fetch(...)``.
The package itself exports the other public names (``gbifxdl.post``, ``gbifxdl.wait``,
``gbifxdl.FetchSettings``, the original API, ...). Names and stage modules are imported
lazily on first use, so ``import gbifxdl`` stays fast.
"""

from __future__ import annotations

import logging

from gbifxdl._lazy import lazy_getattr

# a library logs, and prints nothing: without a handler of the caller's, records go nowhere
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "GbifxdlError": "gbifxdl.errors",
    # query
    "validate_predicate": "gbifxdl.query",
    "build_predicate": "gbifxdl.query",
    "match_names": "gbifxdl.query",
    # GBIF API
    "Credentials": "gbifxdl.credentials",
    "load_credentials": "gbifxdl.credentials",
    "DownloadStatus": "gbifxdl.gbif",
    "post": "gbifxdl.compat",
    "status": "gbifxdl.gbif",
    "wait": "gbifxdl.gbif",
    "download_archive": "gbifxdl.gbif",
    "cancel": "gbifxdl.gbif",
    "list_downloads": "gbifxdl.gbif",
    "citation": "gbifxdl.gbif",
    "poll_status": "gbifxdl.compat",
    "download_occurrences": "gbifxdl.compat",
    # select
    "SelectSettings": "gbifxdl.select",
    "preprocess_occurrences_stream": "gbifxdl.compat",
    # fetch
    "FetchSettings": "gbifxdl.fetch",
    "AsyncImagePipeline": "gbifxdl.compat",
    # curate
    "CurateSettings": "gbifxdl.curate",
    "postprocess": "gbifxdl.compat",
    "add_set_column": "gbifxdl.compat",
    "write_card": "gbifxdl.publish.card",
    "write_report": "gbifxdl.report",
    # run
    "RunSettings": "gbifxdl.run",
}

# public submodules, importable as ``gbifxdl.NAME`` after a bare ``import gbifxdl``
_SUBMODULES = frozenset({
    "archive", "card", "cli", "compat", "config", "credentials", "curate", "errors", "fetch", "gbif",
    "query", "report", "run", "select", "testing",
})

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _EXPORTS, _SUBMODULES)


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
