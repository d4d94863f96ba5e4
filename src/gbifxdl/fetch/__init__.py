"""Fetch: download, process and write every image of a selection, politely and resumably.

Each module of ``gbifxdl/fetch/`` and its one job, from the stage down:

- :mod:`~gbifxdl.fetch.stage`       the stage itself, :func:`fetch`: decides where the units run (here into
  the output folder, here into a store, or on a Dask cluster into a store)
- :mod:`~gbifxdl.fetch.settings`    its settings, outcome vocabulary and summary
- :mod:`~gbifxdl.fetch._results`    ``metadata.parquet`` assembled from the finished units, and the summary
- :mod:`~gbifxdl.fetch.scaleout`    a fetch to a store: the client's side, and its units run here
- :mod:`~gbifxdl.fetch.cluster`     the units run on a Dask cluster: the client's side
- :mod:`~gbifxdl.fetch._on_dask_worker`  a Dask worker's side: one unit, and the engine kept from unit to unit
- :mod:`~gbifxdl.fetch._shared_limits` the host limits every Dask worker shares, held by its scheduler
- :mod:`~gbifxdl.fetch.pipeline`    the engine, the one way in wherever units run and go
  (:func:`~gbifxdl.fetch.pipeline.unit_folder`, then :meth:`~gbifxdl.fetch.pipeline.UnitFolder.run`)
- :mod:`~gbifxdl.fetch._seams`      the engine's seams, typed: writer, sink, host gate, progress report
- :mod:`~gbifxdl.fetch._sink`       where finished units go: nowhere (the output folder) or a store, via staging
- :mod:`~gbifxdl.fetch.journal`      work units and the resume state of a folder
- :mod:`~gbifxdl.fetch.writers`     species folders or WebDataset shards
- :mod:`~gbifxdl.fetch.progress`    the progress bar and the fetch log
- :mod:`~gbifxdl.fetch.per_host`   per-host limits, adaptive concurrency, Retry-After, retries, renditions
- :mod:`~gbifxdl.fetch._host_limiter` one host's concurrency slots, rate and pause
- :mod:`~gbifxdl.fetch._host_rate`  one host's request rate, learned from its answers
- :mod:`~gbifxdl.fetch._host_stats` what each host saw of a fetch (``hosts.json``)
- :mod:`~gbifxdl.fetch.download`    one HTTP attempt: timeouts, size limit, redirects, opt-outs
- :mod:`~gbifxdl.fetch.renditions`  the smallest rendition of a URL that is big enough (one table of host rules)
- :mod:`~gbifxdl.fetch._loop`       how the event loop runs (uvloop, batch scheduling)
- :mod:`~gbifxdl.fetch.image_processes`     the image processes, fed over pipes and shared memory
- :mod:`~gbifxdl.fetch._pipes`      those pipes: framed messages and shared-memory slots
- :mod:`~gbifxdl.fetch.process`     decode, resize, encode, hash (in the workers)
- :mod:`~gbifxdl.fetch.hashing`     perceptual hashes for near-duplicate search (in the workers)
- :mod:`~gbifxdl.fetch.image_types` what the workers are given and give back
- :mod:`~gbifxdl.fetch.validate`    kept originals checked by their headers only (in threads)
- :mod:`~gbifxdl.fetch._faults`     faults injected on purpose, for tests only
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gbifxdl._lazy import lazy_getattr

if TYPE_CHECKING:
    from gbifxdl.fetch.stage import fetch
    from gbifxdl.fetch.settings import FAILURE_KINDS, FetchSettings, FetchSummary

__all__ = ["FAILURE_KINDS", "FetchSettings", "FetchSummary", "fetch"]

# lazy: the image processes import gbifxdl.fetch.process, and must not pay for the
# pipeline's imports (aiohttp, pyarrow) on every start
__getattr__ = lazy_getattr(__name__, {
    "fetch": "gbifxdl.fetch.stage",
    "FAILURE_KINDS": "gbifxdl.fetch.settings",
    "FetchSettings": "gbifxdl.fetch.settings",
    "FetchSummary": "gbifxdl.fetch.settings",
})
