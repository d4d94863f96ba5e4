"""The steps of ``gbifxdl run``, one function per stage, each calling the stage's public API.

Every step reads what earlier steps left in the dataset folder and the run state, and
writes its outputs atomically; :func:`gbifxdl.run.run` marks the step done afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from gbifxdl._io import write_text_atomic

if TYPE_CHECKING:
    from gbifxdl.run._job import RunSettings, RunState

Echo = Callable[[str], None]

SELECTION = "selection.parquet"


def stage_request(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Post the request to GBIF, saving the key the moment it is known."""
    key_file = dataset / "download_key.txt"
    if state.download_key:  # posted before an interruption: never post twice
        if not key_file.exists():  # killed between the two saves below: write the file now
            write_text_atomic(key_file, state.download_key + "\n")
        return
    from gbifxdl.credentials import load_credentials
    from gbifxdl.gbif import check_payload, post_request
    from gbifxdl.query import build_request

    source = settings.source
    assert source.predicate is not None
    # the request is checked whole before any credential prompt (a full request keeps its own format)
    check_payload(source.predicate, format=None if "predicate" in source.predicate else source.format)
    credentials = load_credentials(api_url=source.api_url)
    if "predicate" in source.predicate:  # a full request body, as in the original payloads
        request = dict(source.predicate)
        request["creator"] = credentials.user
    else:
        request = build_request(
            source.predicate,
            creator=credentials.user,
            notification_addresses=[credentials.email] if credentials.email else [],
            send_notification=source.notification,
            format=source.format,
        )
    # If we are killed between GBIF's answer and the save below, posting the identical
    # request again within 48 h returns the same key (GBIF deduplicates), so nothing is lost.
    key = post_request(request, credentials=credentials, api_url=source.api_url)
    state.download_key = key
    state.save()
    write_text_atomic(key_file, key + "\n")
    echo(f"GBIF download key {key} (saved in {key_file})")


def stage_wait(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Wait until GBIF has prepared the archive."""
    from gbifxdl.gbif import wait

    key = _key(settings, state)
    w = settings.wait
    wait(
        key,
        api_url=settings.source.api_url,
        timeout=w.timeout,
        min_interval=w.min_interval,
        max_interval=w.max_interval,
        progress=progress,
    )


def stage_get(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Download the archive into ``archive/KEY.zip`` (resuming a partial one)."""
    from gbifxdl.gbif import download_archive

    key = _key(settings, state)
    path = download_archive(key, dataset / "archive", api_url=settings.source.api_url, progress=progress)
    state.archive = str(path)
    state.save()


def stage_select(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Stream the archive into ``selection.parquet`` (or page GBIF's occurrence search into it)."""
    from gbifxdl.select import select

    if settings.source.route == "search":
        from gbifxdl.select.search import select_from_search

        from gbifxdl.query import predicate_of

        assert settings.source.predicate is not None
        summary = select_from_search(predicate_of(settings.source.predicate), dataset / SELECTION, settings.select, api_url=settings.source.api_url,
                                     progress=progress)
        if not progress:
            echo(summary.to_text())
        return
    archive = state.archive or settings.source.archive
    assert archive is not None
    beside = dataset / "archive" / Path(archive).name
    if state.archive and not Path(archive).is_file() and beside.is_file():
        archive = str(beside)  # a store's dataset, resumed from another machine's working copy
    summary = select(archive, dataset / SELECTION, settings.select, progress=progress)
    if not progress:  # select prints its summary only under its bar
        echo(summary.to_text())


def stage_fetch(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Download and process every selected image."""
    from gbifxdl.fetch import fetch

    summary = fetch(dataset / SELECTION, dataset, settings.fetch, progress=progress, cluster=settings.cluster)
    if not progress:  # fetch prints its summary (with the failed images) only under its bar
        echo(summary.format())


def stage_infer(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Run every ``[[models]]`` step over the fetched images (each measures only what it has not yet)."""
    from gbifxdl._progress import StepBars
    from gbifxdl.infer import infer

    with StepBars(enabled=progress, prefix="infer ") as bars:
        for step in settings.models:
            summary = infer(dataset, step.model, kind=step.kind, labels=step.labels, name=step.step_name,
                            batch_size=step.batch_size, device=step.device, workers=step.workers,
                            cluster=settings.cluster, progress=bars)
            bars.close()
            echo(summary.format())


def stage_curate(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Clean the fetched images and add the splits."""
    from gbifxdl.curate import curate

    summary = curate(dataset, settings.curate, progress=progress)
    echo(summary.format())


def stage_report(settings: RunSettings, state: RunState, dataset: Path, *, progress: bool, echo: Echo) -> None:
    """Write the dataset card, the attributions and the HTML report."""
    from gbifxdl.card import write_card
    from gbifxdl.report import write_report

    write_card(dataset)
    write_report(dataset)


def _key(settings: RunSettings, state: RunState) -> str:
    key = state.download_key or settings.source.key
    assert key is not None
    return key
