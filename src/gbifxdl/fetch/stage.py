"""The fetch stage, :func:`fetch`: where its units run (here, to a store, on a Dask cluster) is decided here."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from gbifxdl.errors import FetchError
from gbifxdl.fetch._host_stats import write_host_stats
from gbifxdl.fetch._results import assemble, summarise
from gbifxdl.fetch.pipeline import UnitRun, _nothing_to_do, lock_folder
from gbifxdl.fetch.progress import Progress, close_log, log, open_log
from gbifxdl.fetch.scaleout import fetch_scaled
from gbifxdl.fetch.settings import FetchSettings, FetchSummary
from gbifxdl.fetch.shards import FetchState, input_fingerprint
from gbifxdl.fetch.writers import make_writer
from gbifxdl.store import local_target


def fetch(selection: str | Path, output_dir: str | Path, settings: FetchSettings = FetchSettings(),
          *, progress: bool = True, cluster: str | None = None,
          storage_options: dict[str, Any] | None = None) -> FetchSummary:
    """Return the summary of fetching every row of ``selection`` into ``output_dir``.

    Resumable: run it again after any interruption and it finishes the work without
    downloading again what was written. Writes ``output_dir/metadata.parquet``.
    ``output_dir`` may also be an fsspec URL (``s3://bucket/prefix``, ``gs://...``,
    ``sftp://user@host/path``, ``file://...``): each unit's files go there as it finishes.
    ``cluster`` (``"local:N"``, or a Dask scheduler's address such as ``tcp://host:8786``)
    spreads the units over a Dask cluster (the ``dask`` extra); without it Dask is not imported.
    """
    out_dir = local_target(output_dir)
    if cluster is not None or out_dir is None:
        return fetch_scaled(selection, str(output_dir), settings, progress=progress, cluster=cluster,
                            storage_options=storage_options)
    selection = Path(selection)
    if not selection.is_file():
        raise FetchError(f"selection {selection} not found; make one with `gbifxdl select`")
    fingerprint, schema = input_fingerprint(selection, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = FetchState(out_dir, settings)
    lock = lock_folder(state.dir / "lock")
    handler = open_log(out_dir)
    started = time.monotonic()
    try:
        resuming = state.check(fingerprint)
        writer = make_writer(out_dir, settings, state)
        if resuming:
            state.remove_temporaries()
            writer.cleanup()
        total = fingerprint["rows"]
        n_units = -(-total // settings.shard_size)
        if settings.retry_failed:
            _reopen_failed(state, writer, n_units)
        pending = [u for u in range(n_units) if not state.unit_done(u)]
        metadata = out_dir / "metadata.parquet"
        if not pending and metadata.exists():
            return _nothing_to_do(summarise(metadata, 0, time.monotonic() - started), progress)
        done_rows = (n_units - len(pending)) * settings.shard_size
        run = UnitRun(selection, out_dir, settings, state, writer, set(pending), schema)
        fetched_now = run.run(Progress(total, min(done_rows, total), progress))
        assemble(selection, state.read_unit, schema, settings, metadata)
        summary = summarise(metadata, fetched_now, time.monotonic() - started)
        summary.hosts = write_host_stats(state.dir / "hosts.json", run.scheduler.stats())
        log.info("%s", summary.format())
        if progress:
            print(summary.format())
        return summary
    finally:
        close_log(handler)
        os.close(lock)


def _reopen_failed(state: FetchState, writer: Any, n_units: int) -> None:
    for unit in range(n_units):
        if not state.unit_done(unit):
            continue
        outcomes = state.read_unit(unit).column("outcome")
        if pc.all(pc.equal(outcomes, "ok")).as_py():
            continue
        ok = state.ok_rows(unit)
        old_shards = writer.restore(unit, ok)
        state.reopen(unit, ok)
        for name in old_shards:
            (state.out_dir / name).unlink(missing_ok=True)
