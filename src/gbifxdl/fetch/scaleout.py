"""Fetching to a store (``-o s3://...``) and on a Dask cluster (``--cluster``).

Both run the single-machine engine (:class:`~gbifxdl.fetch.pipeline.UnitRun`) on units in
a local *staging* folder and hand each finished unit to a
:class:`~gbifxdl.fetch._sink.StoreSink`, which puts its files and then its result rows
into the store. The store's ``.gbifxdl/fetch/`` is the journal every machine reads: a
unit whose rows are there is done. At the end ``metadata.parquet`` is assembled from
those rows, exactly as a local fetch assembles it.

Staging lives under ``$GBIFXDL_STAGING`` (default: the system's temporary folder); a
unit's files leave it as soon as they are in the store, so it holds a few units at most.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from gbifxdl.errors import FetchError
from gbifxdl.fetch._host_stats import write_host_stats
from gbifxdl.fetch._results import assemble, summarise
from gbifxdl.fetch._sink import (STATE_DIR, StoreSink, check_state, prepare_staging, staging_dir, take_staging,
                                 upload_finished)
from gbifxdl.fetch.pipeline import UnitRun, _nothing_to_do, lock_folder
from gbifxdl.fetch.progress import Progress, close_log, log, open_log
from gbifxdl.fetch.settings import FetchSettings, FetchSummary
from gbifxdl.fetch.shards import input_fingerprint
from gbifxdl.fetch.writers import make_writer
from gbifxdl.store import Store, open_store


def fetch_scaled(selection: str | Path, target: str, settings: FetchSettings, *, progress: bool,
                 cluster: str | None, storage_options: dict[str, Any] | None) -> FetchSummary:
    """Return the summary of fetching ``selection`` into the store ``target`` (see :func:`~gbifxdl.fetch.fetch`)."""
    selection = Path(selection)
    if not selection.is_file():
        raise FetchError(f"selection {selection} not found; make one with `gbifxdl select`")
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
        if cluster is not None:
            from gbifxdl.fetch.cluster import fetch_on_cluster

            # the bar starts once the cluster answers (what it says comes first)
            fetched_now, hosts, logs = fetch_on_cluster(selection, target, storage_options, settings, pending,
                                                        schema, cluster, lambda: Progress(total, done_rows, progress),
                                                        progress)
        else:
            logs = ""
            bar = Progress(total, done_rows, progress)
            try:
                fetched_now, hosts = _fetch_here(selection, target, store, sink, settings, pending, schema,
                                                 fingerprint, bar)
            finally:
                bar.close()
        left = pending - sink.done_units()
        if left:
            raise FetchError(f"{len(left)} units are not finished in {store.describe()}; run the same command "
                             "again to resume")
        # staging leaves nothing behind, and its log goes to the store (issue 20, item 17)
        return _finish(selection, store, sink, settings, schema, fetched_now, hosts, started, progress,
                       logs + take_staging(target))


def _keep_log(store: Store, text: str) -> None:
    """Append this fetch's log (staging's and the workers') to the store's ``fetch.log``, as a local
    fetch keeps its own beside its files."""
    if text:
        before = store.read_bytes("fetch.log") if store.exists("fetch.log") else b""
        store.put_bytes("fetch.log", before + text.encode("utf-8"))


def _finish(selection: Path, store: Store, sink: StoreSink, settings: FetchSettings, schema: Any,
            fetched_now: int, hosts: list[Any], started: float, progress: bool, logs: str) -> FetchSummary:
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


def _fetch_here(selection: Path, target: str, store: Store, sink: StoreSink, settings: FetchSettings,
                pending: set[int], schema: Any, fingerprint: dict[str, Any], bar: Progress) -> tuple[int, list[Any]]:
    folder = staging_dir(target, "here")
    state = prepare_staging(folder, fingerprint, settings)
    lock = lock_folder(state.dir / "lock")
    handler = open_log(folder)
    try:
        state.remove_temporaries()
        writer = make_writer(folder, settings, state)
        writer.cleanup()
        store.remove_temporaries()
        left = upload_finished(state, sink, pending)
        if not left:
            return 0, []
        run = UnitRun(selection, folder, settings, state, writer, left, schema, sink=sink)
        fetched = run.run(bar)
        return fetched, run.scheduler.stats()
    finally:
        close_log(handler)
        os.close(lock)
