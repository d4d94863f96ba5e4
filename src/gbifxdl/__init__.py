"""gbifxdl: from a GBIF occurrence query to a clean, training-ready image dataset.

The stages, in the order data flows through them:

- :mod:`gbifxdl.query`   predicates: validation, a builder, taxon-name matching
- :mod:`gbifxdl.gbif`    the GBIF occurrence download API: post, status, wait, get
- :mod:`gbifxdl.select`  a Darwin Core Archive -> a Parquet table of images to fetch
- :mod:`gbifxdl.fetch`   images: download, validate, resize, hash, write
- :mod:`gbifxdl.curate`  dedupe, sync, splits; dataset card and report
- :mod:`gbifxdl.run`     all of it as one resumable job

Names are imported lazily, so ``import gbifxdl`` stays fast.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from gbifxdl._lazy import lazy_getattr

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
    "select": "gbifxdl.select",
    "SelectSettings": "gbifxdl.select",
    "preprocess_occurrences_stream": "gbifxdl.compat",
    # fetch
    "fetch": "gbifxdl.fetch",
    "FetchSettings": "gbifxdl.fetch",
    "AsyncImagePipeline": "gbifxdl.compat",
    # curate
    "curate": "gbifxdl.curate",
    "CurateSettings": "gbifxdl.curate",
    "postprocess": "gbifxdl.compat",
    "add_set_column": "gbifxdl.compat",
    "write_card": "gbifxdl.card",
    "write_report": "gbifxdl.report",
    # run
    "run": "gbifxdl.run",
    "RunSettings": "gbifxdl.run",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return __all__


# The stage functions share their modules' names (gbifxdl.select.select, ...). Importing
# a submodule would bind the package attribute to the module and hide the function, so
# the package keeps those names for the functions; the modules stay in sys.modules.
_STAGE_FUNCTIONS = frozenset({"select", "fetch", "curate", "run"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _STAGE_FUNCTIONS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
