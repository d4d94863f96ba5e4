"""The stage itself, :func:`infer`: run one model over every image of a dataset folder, resumably.

The images are the rows of ``metadata.parquet`` (and of ``removed.parquet``: an image
set aside by a curation is measured too, so a gentler rule can bring it back) whose fetch
succeeded, one per image key (``url_hash``), in both layouts: a file in a species folder or
a member of a tar shard, in the dataset or set aside under ``.gbifxdl/removed``.

Batches of images are decoded and preprocessed in a pool of processes, a few batches ahead
of the model, while the one ONNX Runtime session runs in this process; results gather into
parts of ``part_size`` images (see :mod:`gbifxdl.infer._results`). Memory holds the list of
images to do and a bounded window of batches.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow.parquet as pq

from gbifxdl._io import sha256_file
from gbifxdl._locate import (METADATA, REMOVED, ImageLocator, Source, crops_in_place, fetched_images,
                             original_path)
from gbifxdl.errors import ConfigError
from gbifxdl.infer import _decode, _results
from gbifxdl.infer._engine import Session
from gbifxdl.infer._pre import Prep, decode_batch, ignore_interrupts, read_items
from gbifxdl.infer.spec import KINDS, ModelError, ModelSpec, load_spec

Progress = Callable[[str, int, int], None]


@dataclass
class InferSummary:
    """What :func:`infer` did for one model."""

    model: str
    kind: str
    sha256: str
    images: int = 0  # image keys in the dataset
    done_before: int = 0  # already measured by this model (a resumed run)
    inferred: int = 0  # measured now, errors included
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    results: str = ""  # the model's results folder
    providers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def format(self) -> str:
        rate = f", {self.inferred / self.seconds:.1f} images/s" if self.seconds > 0 and self.inferred else ""
        lines = [f"{self.model} ({self.kind}, sha256 {self.sha256[:12]}): {self.inferred} images measured{rate}"
                 + (f", {self.done_before} done before" if self.done_before else "")]
        if self.errors:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.error_kinds.items()))
            lines.append(f"  {self.errors} could not be read ({kinds}): error rows, see the 'error' column")
        lines.append(f"  results: {self.results}")
        return "\n".join(lines)


def _images(root: Path) -> list[tuple[str, str | None, str | None, str | None]]:
    """Return (url_hash, path, shard, key) of every fetched image, once per key, in table order."""
    if not any((root / t).is_file() for t in (METADATA, REMOVED)):
        raise ConfigError(f"{root}: no metadata.parquet; infer runs on a `gbifxdl fetch` folder")
    for name in (METADATA, REMOVED):
        path = root / name
        names = set(pq.read_schema(path).names) if path.is_file() else {"url_hash", "path"}
        if "url_hash" not in names or not ({"path", "shard"} & names):
            raise ConfigError(f"{path}: lacks url_hash and path/shard columns; is it a `gbifxdl fetch` table?")
    rows = fetched_images(root)
    return list(zip(*(rows[c].to_pylist() for c in ("url_hash", "path", "shard", "key"))))


@contextlib.contextmanager
def _caller_script_hidden() -> Iterator[None]:
    """Keep the caller's script from the decode processes that start meanwhile.

    A spawned process imports the script it was started from again: one without an ``if
    __name__ == "__main__"`` guard would run again in every decode process.
    """
    main = sys.modules.get("__main__")
    names = ("__file__", "__spec__")
    kept = {n: getattr(main, n) for n in names if hasattr(main, n)} if main is not None else {}
    if main is not None:
        vars(main).update(__spec__=None)
        vars(main).pop("__file__", None)
    try:
        yield
    finally:
        if main is not None:
            vars(main).pop("__spec__", None)
            vars(main).update(kept)


def default_workers(device: str) -> int:
    """Return the decode processes a run starts by default: the CPUs less one (the session's), at most 4 on
    the CPU, where the model shares the cores; on a GPU the model leaves the CPUs to the decode."""
    spare = max(1, (os.cpu_count() or 2) - 1)
    return spare if device == "cuda" else min(4, spare)


def _fingerprint(sha: str, spec: ModelSpec, labels_sha: str | None) -> str:
    blob = json.dumps({"model": sha, "spec": spec.to_json(), "labels": labels_sha}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _originals(root: Path) -> dict[str, Path]:
    """Return {url_hash: its original} of the images a curation cut to a crop: a model measures the original."""
    kept = {key: original_path(root, key, ext) for key, (ext, _) in crops_in_place(root).items()}
    return {key: path for key, path in kept.items() if path.is_file()}


def _batches(todo: list[tuple[str, str | None, str | None, str | None]], size: int, locator: ImageLocator,
             originals: dict[str, Path]) -> Iterator[tuple[list[str], list[Source | None]]]:
    for start in range(0, len(todo), size):
        chunk = todo[start:start + size]
        yield [c[0] for c in chunk], [(str(originals[c[0]]), None, None) if c[0] in originals
                                      else locator.source(*c[1:]) for c in chunk]


def infer(
    dataset_dir: str | Path,
    model_path: str | Path,
    *,
    kind: str | None = None,
    labels: str | Path | None = None,
    name: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    workers: int | None = None,
    part_size: int = 1024,
    progress: Progress | bool | None = None,
    cluster: str | None = None,
) -> InferSummary:
    """Run the model at ``model_path`` (with its JSON sidecar) over every image of ``dataset_dir``.

    Results go to ``dataset_dir/.gbifxdl/models/<name>/part-*.parquet`` (``name``: the model
    file's stem), one row per image key with the model's sha256; an image that cannot be
    read gets a row with its ``error``. Run again after a kill, it measures only what is
    missing; after the model (or its sidecar or label matrix) changed, it measures that
    model's images again. ``labels`` (embedders): an ``.npz`` of ``names`` and their
    ``embeddings``, for a zero-shot label and score. ``workers``: decode processes (0:
    decode here; default: the CPUs less one, at most 4 unless on a GPU). ``device="cuda"`` without ONNX
    Runtime's CUDA provider is an error. ``progress``: a callback ``(what, done, total)``.
    ``cluster`` (``local:N``, ``slurm:...``, ``pbs:...`` or a Dask scheduler's address, as for
    the fetch): the batches are decoded and run on the Dask workers (one session per worker;
    ``device="cuda"`` asks each batch for a worker with the Dask resource ``GPU``), with the same
    results as here.
    """
    started = time.monotonic()
    root = Path(dataset_dir)
    model_path = Path(model_path)
    if kind is not None and kind not in KINDS:
        raise ModelError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if batch_size < 1 or part_size < 1:
        raise ConfigError("batch_size and part_size must be at least 1")
    if cluster is not None:
        from gbifxdl.fetch.cluster import parse_cluster

        parse_cluster(cluster)  # a bad address is one line now, before any work
    spec = load_spec(model_path, kind)
    if labels is not None and spec.kind != "embedder":
        raise ModelError(f"--labels gives zero-shot labels to an embedder; {model_path.name} is a {spec.kind}")
    matrix = _decode.load_labels(labels) if labels is not None else None
    name = name or model_path.stem
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ConfigError(f"model name {name!r}: give a plain name (no slashes, not starting with a dot)")
    sha = sha256_file(model_path)
    fingerprint = _fingerprint(sha, spec, sha256_file(labels) if labels is not None else None)
    images = _images(root)
    # on a cluster the workers run the model (on their device): loaded here on the CPU, a bad model is said now
    session = Session(model_path, spec, "cpu" if cluster is not None else device)

    folder = _results.model_dir(root, name)
    done, number = _results.prune(folder, fingerprint)
    todo = [image for image in images if image[0] not in done]
    summary = InferSummary(model=name, kind=spec.kind, sha256=sha, images=len(images),
                           done_before=len(images) - len(todo), results=str(folder), providers=session.providers)
    meta = {"fingerprint": fingerprint, "model": model_path.name, "model_sha256": sha, "spec": spec.to_json(),
            "labels": str(labels) if labels is not None else None}
    report: Progress = progress if callable(progress) else (lambda *_: None)
    prep = Prep(spec.input_size, spec.resize, spec.mean, spec.std, spec.layout, spec.pad_value)
    if workers is None:
        workers = default_workers(device)
    pending: list[dict[str, Any]] = []

    def add(keys: list[str], rows: list[dict[str, Any]]) -> None:
        nonlocal number
        pending.extend(rows)
        for row in rows:
            if row["error"] is not None:
                summary.errors += 1
                kind_ = row["error"].split(":", 1)[0]
                summary.error_kinds[kind_] = summary.error_kinds.get(kind_, 0) + 1
        summary.inferred += len(keys)
        while len(pending) >= part_size:
            _results.write_part(folder, number, spec.kind, pending[:part_size], meta)
            del pending[:part_size]
            number += 1
        report(name, summary.inferred, len(todo))

    def consume(keys: list[str], result: tuple[np.ndarray, list[str | None], list[Any]]) -> None:
        arrays, errors, geometries = result
        output = session.run(arrays) if len(arrays) else None
        add(keys, _decode.rows(spec, output, keys, errors, geometries, sha, matrix))

    locator = ImageLocator(root, shards_held=8)
    batches = _batches(todo, batch_size, locator, _originals(root))
    if cluster is not None and todo:
        from gbifxdl.infer import _cluster

        job = _cluster.ModelJob(model_path.name, sha, spec, prep, matrix, device)
        for keys, rows in _cluster.run_batches(cluster, job, model_path.read_bytes(),
                                               ((k, read_items(s)) for k, s in batches)):
            add(keys, rows)
        summary.providers = [f"Dask workers ({device})"]
    elif workers == 0 or len(todo) <= batch_size:
        for keys, sources in batches:
            consume(keys, decode_batch(sources, prep))
    else:
        window: collections.deque[tuple[list[str], Future]] = collections.deque()
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=ignore_interrupts)
        try:
            for keys, sources in batches:  # a few batches decode ahead while the model runs
                with _caller_script_hidden():  # a submit may start a decode process
                    window.append((keys, pool.submit(decode_batch, sources, prep)))
                if len(window) > 2 * workers:
                    keys_, future = window.popleft()
                    consume(keys_, future.result())
            while window:
                keys_, future = window.popleft()
                consume(keys_, future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if pending:
        _results.write_part(folder, number, spec.kind, pending, meta)
    summary.seconds = time.monotonic() - started
    return summary
