"""The original gbifxdl API, kept working so its users can move over unchanged.

Each name is a thin wrapper over the new stage functions, defined in the module of
its stage (``compat/gbif.py``, ``compat/select.py``, ...) and imported lazily here.
"""

from __future__ import annotations


from gbifxdl._lazy import lazy_getattr

_EXPORTS: dict[str, str] = {
    "post": "gbifxdl.compat.gbif",
    "poll_status": "gbifxdl.compat.gbif",
    "download_occurrences": "gbifxdl.compat.gbif",
    "preprocess_occurrences_stream": "gbifxdl.compat.select",
    "AsyncImagePipeline": "gbifxdl.compat.fetch",
    "postprocess": "gbifxdl.compat.curate",
    "add_set_column": "gbifxdl.compat.curate",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
