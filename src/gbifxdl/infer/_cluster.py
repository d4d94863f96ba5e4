"""``infer --cluster``: a model's batches decoded and run on Dask workers, with the same results as here.

The client (the stage's process) reads each batch's image bytes from the dataset and
submits the batch, a few per worker at most; a worker decodes it (:func:`~gbifxdl.infer._pre.decode_items`),
runs it through its own session (made once per model and kept, from the model's bytes, sent
once to every worker) and decodes the outputs into result rows, which come back in the order
the batches were submitted: the parts written are those a run on one machine writes. The
workers need no access to the dataset folder. With ``device="cuda"`` each batch asks for the
Dask resource ``GPU`` (workers started with ``--resources GPU=1``). The cluster is started or
reached as the fetch's ``--cluster`` is (``local:N``, ``slurm:...``, ``pbs:...``, an address).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gbifxdl.errors import ConfigError
from gbifxdl.infer import _decode
from gbifxdl.infer._engine import Session
from gbifxdl.infer._pre import Prep, decode_items
from gbifxdl.infer.spec import ModelSpec

BATCHES_PER_WORKER = 2  # batches queued on each worker: the next one starts as one ends


@dataclass(frozen=True)
class ModelJob:
    """What a worker needs besides the model's bytes: how to feed the model and read its outputs."""

    model: str  # the model file's name (in messages)
    sha256: str
    spec: ModelSpec
    prep: Prep
    labels: _decode.LabelMatrix | None
    device: str
    threads: int = 0  # the session's threads (0: ONNX Runtime's choice)


_SESSIONS: dict[tuple[str, str, int], Session] = {}  # a worker's sessions, by (sha256, device, threads)


def run_batch(job: ModelJob, model: bytes, keys: list[str], items: list[bytes | str]) -> list[dict[str, Any]]:
    """Return the result rows of one batch (on a Dask worker): decode, run, read the outputs."""
    key = (job.sha256, job.device, job.threads)
    session = _SESSIONS.get(key)
    if session is None:
        _SESSIONS.clear()  # one model at a time: the last one's memory goes
        session = _SESSIONS[key] = Session(model, job.spec, job.device, job.threads, name=job.model)
    arrays, errors, geometries = decode_items(items, job.prep)
    output = session.run(arrays) if len(arrays) else None
    return _decode.rows(job.spec, output, keys, errors, geometries, job.sha256, job.labels)


def run_batches(cluster: str, job: ModelJob, model: bytes, batches: Iterable[tuple[list[str], list[bytes | str]]]
                ) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    """Yield (keys, rows) of every batch, in order, run on the Dask cluster ``cluster``."""
    try:
        import distributed
    except ImportError:
        raise ConfigError("--cluster needs Dask's distributed scheduler: pip install 'gbifxdl[dask]'") from None
    from gbifxdl.fetch.cluster import open_client, parse_cluster

    kind, where = parse_cluster(cluster)
    if kind == "local" and not job.threads:  # the local workers share this machine's cores
        job = ModelJob(**{**job.__dict__, "threads": max(1, (os.cpu_count() or 1) // int(where))})  # type: ignore[arg-type]
    resources = {"GPU": 1} if job.device == "cuda" else None
    with open_client(distributed, kind, where) as client:
        blob = client.scatter(model, broadcast=True)  # the model's bytes, once to every worker
        window: collections.deque[tuple[list[str], Any]] = collections.deque()
        limit = max(1, len(client.scheduler_info()["workers"])) * BATCHES_PER_WORKER
        for keys, items in batches:
            window.append((keys, client.submit(run_batch, job, blob, keys, items, resources=resources, pure=False)))
            if len(window) > limit:
                keys_, future = window.popleft()
                yield keys_, future.result()
        while window:
            keys_, future = window.popleft()
            yield keys_, future.result()
