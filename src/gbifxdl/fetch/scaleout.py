"""Fetching to a store (``-o s3://...``) and on a Dask cluster (``--cluster``).

:func:`fetch_to_store` is the client's side of both; its units run here (:func:`fetch_here`)
or on the cluster (:mod:`~gbifxdl.fetch.cluster`), as :func:`~gbifxdl.fetch.fetch` decides.
Both run the one engine (:func:`~gbifxdl.fetch.pipeline.unit_folder`) on units in
a local *staging* folder and hand each finished unit to a
:class:`~gbifxdl.fetch._sink.StoreSink`, which puts its files and then its result rows
into the store. The store's ``.gbifxdl/fetch/`` is the journal every machine reads: a
unit whose rows are there is done. At the end ``metadata.parquet`` is assembled from
those rows, exactly as a local fetch assembles it.

Staging lives under ``$GBIFXDL_STAGING`` (default: the system's temporary folder); a
unit's files leave it as soon as they are in the store, so it holds a few units at most.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from gbifxdl.errors import FetchError
from gbifxdl.fetch._host_stats import HostStats, write_host_stats
from gbifxdl.fetch._results import assemble, summarise
from gbifxdl.fetch._sink import STATE_DIR, StoreSink, check_state, staging_dir, take_staging
from gbifxdl.fetch.pipeline import _nothing_to_do, unit_folder
from gbifxdl.fetch.progress import Progress, log
from gbifxdl.fetch.settings import FetchSettings, FetchSummary
from gbifxdl.fetch.journal import input_fingerprint
from gbifxdl.store import Store, open_store


@dataclass
class StoreJob:
    """The units of a fetch to a store still to fetch, and what their runner needs to fetch them."""

    selection: Path
    target: str
    storage_options: dict[str, Any] | None
    settings: FetchSettings
    store: Store
    sink: StoreSink
    fingerprint: dict[str, Any]
    schema: pa.Schema
    pending: set[int]
    total: int       # the selection's rows
    done_rows: int   # rows of the units finished before
    progress: bool   # whether to show the bar

    def bar(self) -> Progress:
        """Return the progress bar, started at the rows done before."""
        return Progress(self.total, self.done_rows, self.progress)


# runs a fetch's pending units (here or on a cluster) until each is in the store; returns the
# rows fetched, the hosts' stats and the fetch logs to keep in the store (beside staging's)
UnitsRunner = Callable[[StoreJob], "tuple[int, list[HostStats], str]"]


def fetch_to_store(selection: Path, target: str, settings: FetchSettings, run_units: UnitsRunner, *,
                   progress: bool, storage_options: dict[str, Any] | None) -> FetchSummary:
    """Return the summary of fetching ``selection`` into the store ``target`` (see :func:`~gbifxdl.fetch.fetch`),
    its units fetched by ``run_units`` (:func:`fetch_here`, or on a cluster)."""
    if settings.retry_failed:
        raise FetchError("--retry-failed works on a local output folder only for now; fetch to a local "
                         "folder (or a shared filesystem path) to retry failed images")
    fingerprint, schema = input_fingerprint(selection, settings)
    started = time.monotonic()
    with open_store(target, storage_options=storage_options, check=True) as store:
        check_state(store, fingerprint, settings)
        sink = StoreSink(store, settings)
        total = fingerprint["rows"]
        n_units = -(-total // settings.shard_size)
        pending = set(range(n_units)) - sink.done_units()
        if not pending and store.exists("metadata.parquet"):
            with tempfile.TemporaryDirectory() as tmp:
                store.get_file("metadata.parquet", Path(tmp) / "m.parquet")
                summary = summarise(Path(tmp) / "m.parquet", 0, time.monotonic() - started,
                                    shown_as=store.describe("metadata.parquet"))
            return _nothing_to_do(summary, progress)
        done_rows = min((n_units - len(pending)) * settings.shard_size, total)
        fetched_now, hosts, logs = run_units(StoreJob(selection, target, storage_options, settings, store, sink,
                                                      fingerprint, schema, pending, total, done_rows, progress))
        left = pending - sink.done_units()
        if left:
            raise FetchError(f"{len(left)} units are not finished in {store.describe()}; run the same command "
                             "again to resume")
        # staging leaves nothing behind, and its log goes to the store (issue 20, item 17)
        return _finish(selection, store, sink, settings, schema, fetched_now, hosts, started, progress,
                       logs + take_staging(target))


def fetch_here(job: StoreJob) -> tuple[int, list[HostStats], str]:
    """Fetch ``job``'s units in this process, through this machine's staging folder, into the store."""
    bar = job.bar()
    try:
        with unit_folder(staging_dir(job.target, "here"), job.settings, job.fingerprint, job.sink) as place:
            job.store.remove_temporaries()
            left = place.take_up(job.pending)
            if not left:
                return 0, [], ""
            fetched, hosts = place.run(job.selection, job.schema, left, bar)
            return fetched, hosts, ""
    finally:
        bar.close()


def _keep_log(store: Store, text: str) -> None:
    """Append this fetch's log (staging's and the workers') to the store's ``fetch.log``, as a local
    fetch keeps its own beside its files."""
    if text:
        before = store.read_bytes("fetch.log") if store.exists("fetch.log") else b""
        store.put_bytes("fetch.log", before + text.encode("utf-8"))


def _finish(selection: Path, store: Store, sink: StoreSink, settings: FetchSettings, schema: pa.Schema,
            fetched_now: int, hosts: list[HostStats], started: float, progress: bool, logs: str) -> FetchSummary:
    with tempfile.TemporaryDirectory(prefix="gbifxdl-") as tmp:
        metadata = Path(tmp) / "metadata.parquet"
        assemble(selection, sink.read_unit, schema, settings, metadata)
        summary = summarise(metadata, fetched_now, time.monotonic() - started,
                            shown_as=store.describe("metadata.parquet"))
        summary.hosts = write_host_stats(Path(tmp) / "hosts.json", hosts)
        store.put_file(Path(tmp) / "hosts.json", f"{STATE_DIR}/hosts.json")
        store.put_file(metadata, "metadata.parquet")
    log.info("%s", summary.format())
    _keep_log(store, logs + f"{time.strftime('%Y-%m-%d %H:%M:%S')} INFO {summary.format()}\n")
    if progress:
        print(summary.format())
    return summary
