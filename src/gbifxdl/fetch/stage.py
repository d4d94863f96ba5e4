"""The fetch stage, :func:`fetch`: where its units run (here, to a store, on a Dask cluster) is decided here."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gbifxdl.errors import FetchError
from gbifxdl.fetch._host_stats import write_host_stats
from gbifxdl.fetch._results import assemble, summarise
from gbifxdl.fetch._sink import FolderSink
from gbifxdl.fetch.pipeline import _nothing_to_do, unit_folder
from gbifxdl.fetch.progress import Progress, log
from gbifxdl.fetch.scaleout import StoreJob, fetch_here, fetch_to_store
from gbifxdl.fetch.settings import FetchSettings, FetchSummary
from gbifxdl.fetch.journal import input_fingerprint
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
    selection = Path(selection)
    if not selection.is_file():
        raise FetchError(f"selection {selection} not found; make one with `gbifxdl select`")
    out_dir = local_target(output_dir)
    if out_dir is not None and cluster is None:
        # here, into the output folder itself
        return _fetch_to_folder(selection, out_dir, settings, progress)
    if cluster is None:
        # here, through this machine's staging, into the store
        return fetch_to_store(selection, str(output_dir), settings, fetch_here, progress=progress,
                              storage_options=storage_options)

    # on a Dask cluster: each worker through its staging, into the store
    def on_cluster(job: StoreJob) -> tuple[int, list[Any], str]:
        from gbifxdl.fetch.cluster import fetch_on_cluster

        return fetch_on_cluster(job, cluster)

    return fetch_to_store(selection, str(output_dir), settings, on_cluster, progress=progress,
                          storage_options=storage_options)


def _fetch_to_folder(selection: Path, out_dir: Path, settings: FetchSettings, progress: bool) -> FetchSummary:
    fingerprint, schema = input_fingerprint(selection, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    with unit_folder(out_dir, settings, fingerprint, FolderSink(settings)) as place:
        started = time.monotonic()
        total = fingerprint["rows"]
        n_units = -(-total // settings.shard_size)
        pending = place.take_up(set(range(n_units)))
        metadata = out_dir / "metadata.parquet"
        if not pending and metadata.exists():
            return _nothing_to_do(summarise(metadata, 0, time.monotonic() - started), progress)
        done_rows = (n_units - len(pending)) * settings.shard_size
        fetched_now, hosts = place.run(selection, schema, pending, Progress(total, min(done_rows, total), progress))
        assemble(selection, place.state.read_unit, schema, settings, metadata)
        summary = summarise(metadata, fetched_now, time.monotonic() - started)
        summary.hosts = write_host_stats(place.state.dir / "hosts.json", hosts)
        log.info("%s", summary.format())
        if progress:
            print(summary.format())
        return summary
