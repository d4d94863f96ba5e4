"""``gbifxdl fetch``: download, process and write every image of a selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gbifxdl.cli._quiet import quiet_options
from gbifxdl.errors import ConfigError


def _per_host(values: tuple[str, ...], option: str = "--per-host", kind: type = int,
              example: str = "8") -> tuple[Any, tuple[tuple[str, Any], ...]]:
    """Return (the value for every host or None, (host, value) overrides) from ``N`` and ``HOST=N`` items."""
    default = None
    overrides: list[tuple[str, Any]] = []
    for value in values:
        host, sep, number = value.rpartition("=")
        try:
            n = kind(number)
        except ValueError:
            n = 0
        if not n > 0:
            raise ConfigError(f"{option} {value!r}: give a positive number ({example}) or HOST=NUMBER "
                              f"(example.org={example})")
        if sep:
            overrides.append((host.lower(), n))
        else:
            default = n
    return default, tuple(overrides)


def _duration(text: str) -> float:
    """Return seconds from ``90``, ``90s``, ``30m``, ``2h``."""
    text = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ConfigError(f"--host-deadline {text!r}: give a duration such as 30m, 2h or 600 (seconds)")
    return seconds


INT = click.IntRange(min=1)


@click.command("fetch")
@click.argument("selection", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output_dir", required=True, metavar="DIR|URL",
              help="Output folder (images or shards, metadata.parquet, fetch.log), or a store: s3://bucket/prefix, "
                   "gs://..., sftp://user@host/path, file://... (credentials from the usual places, never options).")
@click.option("--cluster", default=None, metavar="local:N|slurm:N|pbs:N|tcp://HOST:8786",
              help="Fetch on a Dask cluster: N local workers, N Slurm/PBS batch jobs (slurm:jobs=N,cores=C,"
                   "memory=M,walltime=T,queue=Q), or a running scheduler (pip install 'gbifxdl[dask]').")
@click.option("--layout", type=click.Choice(["folders", "webdataset"]), default="folders", show_default=True,
              help="Species folders images/<class>/<url_hash>.jpg, or WebDataset tar shards.")
@click.option("--resize", type=INT, default=None, help="Shrink the longest side to N pixels (never enlarges).")
@click.option("--resize-mode", type=click.Choice(["longest", "shortest"]), default="longest", show_default=True,
              help="Which side --resize applies to.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)
@click.option("--reencode/--keep-original", default=None,
              help="Re-encode as JPEG, or keep the original bytes (default: re-encode only when resizing).")
@click.option("--validate", type=click.Choice(["decode", "header"]), default="decode", show_default=True,
              help="For kept originals: decode every image (pHash), or only check headers (fast).")
@click.option("--pixel-hash", is_flag=True,
              help="Also hash every kept original's full-resolution pixels (slow; column pixel_hash).")
@click.option("--connections", type=INT, default=64, show_default=True, help="Requests in flight, all hosts together.")
@click.option("--per-host", multiple=True, metavar="N|HOST=N",
              help="Starting requests in flight per host (default 8); HOST=N fixes one host's limit. Repeatable.")
@click.option("--per-host-rate", multiple=True, metavar="N|HOST=N",
              help="Starting requests per second per host (default: unlimited until a host answers 429/503, "
                   "then learned); HOST=N caps one host. Repeatable.")
@click.option("--host-deadline", default="30m", show_default=True, metavar="DURATION",
              help="A host answering only 429/503 this long fails its waiting images (outcome host_deadline).")
@click.option("--renditions/--no-renditions", default=True, show_default=True,
              help="When resizing, fetch the smallest rendition big enough (iNaturalist, IIIF, Flickr).")
@click.option("--respect-opt-out/--ignore-opt-out", "respect_opt_out", default=True, show_default=True,
              help="Skip images whose host sends X-Robots-Tag noai, noimageai or none (outcome opted_out).")
@click.option("--contact", default=None, metavar="EMAIL",
              help="Named in the User-Agent so hosts can write before blocking (default: $GBIF_EMAIL).")
@click.option("--max-attempts", type=INT, default=3, show_default=True, help="Attempts per image for transient failures.")
@click.option("--shard-size", type=INT, default=1000, show_default=True,
              help="Rows per work unit (and samples per WebDataset shard).")
@click.option("--shard-bytes", type=INT, default=None, help="Also cut WebDataset shards at this many bytes.")
@click.option("--class-column", default="speciesKey", show_default=True, help="Column naming the class folder.")
@click.option("--max-bytes", type=INT, default=50 * 2**20, show_default=True,
              help="Refuse bodies larger than this (outcome too_large).")
@click.option("--max-pixels", type=INT, default=178_956_970, show_default=True,
              help="Refuse images with more pixels (outcome decompression_bomb).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Processing processes (default: every core; 0: threads).")
@click.option("--user-agent", default=None, help="User-Agent header (default names gbifxdl, its version and URL).")
@click.option("--retry-failed", is_flag=True, help="Try again the images that failed in an earlier run.")
@quiet_options
def fetch(selection: Path, output_dir: str, per_host: tuple[str, ...], user_agent: str | None, quiet: bool,
          no_progress: bool,
          per_host_rate: tuple[str, ...], host_deadline: str, cluster: str | None, **options: Any) -> None:
    """Download, process and write every image of SELECTION (a Parquet from `gbifxdl select`).

    Resumable: run the same command again after an interruption; finished images are
    not downloaded again. Writes OUTPUT/metadata.parquet with one row per input row.
    """
    from gbifxdl.fetch import FetchSettings

    default, overrides = _per_host(per_host)
    if user_agent:
        options["user_agent"] = user_agent
    options["per_host_rate"], options["per_host_rate_overrides"] = _per_host(per_host_rate, "--per-host-rate", float, "5")
    options["host_deadline"] = _duration(host_deadline)
    settings = FetchSettings(per_host=default or 8, per_host_overrides=overrides, **options)
    if cluster is not None:
        from gbifxdl.fetch.cluster import parse_cluster

        parse_cluster(cluster)
    elif settings.uses_processes:
        from gbifxdl.fetch.image_processes import start_fork_server

        start_fork_server()  # the workers' imports then run beside the pipeline's
    from gbifxdl.fetch import fetch as run_fetch

    summary = run_fetch(selection, output_dir, settings, progress=not (quiet or no_progress), cluster=cluster)
    if no_progress and not quiet:  # the bars hidden, the summary not (fetch prints it only with its bar)
        click.echo(summary.format())
