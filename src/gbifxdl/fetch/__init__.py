"""Fetch: download, process and write every image of a selection, politely and resumably.

- :mod:`~gbifxdl.fetch.scheduler`  per-host limits, adaptive concurrency, Retry-After, retries
- :mod:`~gbifxdl.fetch.download`   one HTTP attempt: timeouts, size limit, redirects
- :mod:`~gbifxdl.fetch.renditions` the smallest rendition of a URL that is big enough (one table of host rules)
- :mod:`~gbifxdl.fetch.workers`    the worker processes, fed over pipes and shared memory
- :mod:`~gbifxdl.fetch.process`    decode, resize, encode, hash (in the workers)
- :mod:`~gbifxdl.fetch.hashing`    perceptual hashes for near-duplicate search (in the workers)
- :mod:`~gbifxdl.fetch.image_types` what the workers are given and give back
- :mod:`~gbifxdl.fetch.validate`   kept originals checked by their headers only (in threads)
- :mod:`~gbifxdl.fetch.writers`    species folders or WebDataset shards
- :mod:`~gbifxdl.fetch.shards`     work units and resume state
- :mod:`~gbifxdl.fetch.pipeline`   the engine that runs units (:class:`~gbifxdl.fetch.pipeline.UnitRun`)
- :mod:`~gbifxdl.fetch.scaleout`   to a store, or on a Dask cluster (:mod:`~gbifxdl.fetch.cluster`)
- :mod:`~gbifxdl.fetch.stage`      the stage itself, :func:`fetch`: here, to a store or on a cluster
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gbifxdl._lazy import lazy_getattr

if TYPE_CHECKING:
    from gbifxdl.fetch.stage import fetch
    from gbifxdl.fetch.settings import FAILURE_KINDS, FetchSettings, FetchSummary

__all__ = ["FAILURE_KINDS", "FetchSettings", "FetchSummary", "fetch"]

# lazy: the image workers import gbifxdl.fetch.process, and must not pay for the
# pipeline's imports (aiohttp, pyarrow) on every start
__getattr__ = lazy_getattr(__name__, {
    "fetch": "gbifxdl.fetch.stage",
    "FAILURE_KINDS": "gbifxdl.fetch.settings",
    "FetchSettings": "gbifxdl.fetch.settings",
    "FetchSummary": "gbifxdl.fetch.settings",
})
