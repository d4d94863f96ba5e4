"""``gbifxdl derive``, ``gbifxdl export`` and ``gbifxdl rebuild``: publishing a curated dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from gbifxdl.cli._dataset import dataset_argument, dataset_folder
from gbifxdl.cli._quiet import quiet_options
from gbifxdl.cli.gbif import api_url_option, credential_options, credentials_from
from gbifxdl.publish.rebuild import DEFAULT_MIN_DELIVERED

DATASET = dataset_argument("dataset")


@click.command()
@DATASET
@click.option("--title", required=True, help="Title of the derived dataset.")
@click.option("--source-url", required=True, metavar="URL", help="Public page where the dataset is deposited.")
@click.option("--description", help="How the dataset was made [default: written from the dataset's counts].")
@click.option("--dry-run", is_flag=True, help="Print the request that would be sent, and send nothing.")
@click.option("--force", is_flag=True, help="Register again a dataset that already has a derived DOI.")
@credential_options
@api_url_option
def derive(dataset: Path | str, title: str, source_url: str, description: str | None, dry_run: bool, force: bool,
           user: str | None, password: str | None, email: str | None, api_url: str | None) -> None:
    """Register DATASET (a folder, or its s3://, gs:// URL) with GBIF as a derived dataset; its new DOI goes
    into the card."""
    # the card, croissant.json and the report are written again with the DOI (the report's thumbnails: the images)
    with dataset_folder(dataset, push=not dry_run) as copy:
        _derive(copy.path, title, source_url, description, dry_run, force, user, password, email, api_url)
    if not dry_run:
        click.echo(f"The card, croissant.json and the report of {dataset} now give this DOI.", err=True)


def _derive(dataset: Path, title: str, source_url: str, description: str | None, dry_run: bool, force: bool,
            user: str | None, password: str | None, email: str | None, api_url: str | None) -> None:
    from gbifxdl.publish.derived import check_destination, derive as derive_dataset, derive_request

    if dry_run:
        api = check_destination(dataset, api_url)  # a demo dataset is never sent to GBIF
        body = derive_request(dataset, title=title, source_url=source_url, description=description)
        who = user or os.environ.get("GBIF_USER") or "from .env, ~/.netrc or a prompt"
        click.echo(f"POST {api}/derivedDataset")
        click.echo(f"Authorization: Basic (user {who}; password not shown)")
        click.echo("Content-Type: application/json\n")
        click.echo(json.dumps(body, indent=2))
        click.echo(f"\n(dry run: nothing sent; {len(body['relatedDatasets'])} datasets credited with "
                   f"{sum(body['relatedDatasets'].values())} occurrences)", err=True)
        return
    check_destination(dataset, api_url)  # before any prompt for a password
    credentials = credentials_from(user, password, email, api_url)
    result = derive_dataset(dataset, title=title, source_url=source_url, description=description,
                            credentials=credentials, api_url=api_url, force=force)  # fmt: skip
    click.echo(f"Registered: https://doi.org/{result.doi}")
    click.echo(f"Cite as: {result.citation}")


@click.command()
@DATASET
@click.option("--manifest", "manifest", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Parquet file to write: one row per image, without the images.")
def export(dataset: Path | str, manifest: Path) -> None:
    """Write DATASET's manifest: what anyone needs to rebuild it (URLs, licences, sha256)."""
    from gbifxdl.publish.manifest import export_manifest

    with dataset_folder(dataset, images=False, push=False) as copy:  # the tables alone
        n = export_manifest(copy.path, manifest)
    click.echo(f"Wrote {manifest}: {n} images. Rebuild with: gbifxdl rebuild {manifest} -o DIR")


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--min-delivered", type=click.FloatRange(0, 1), default=DEFAULT_MIN_DELIVERED, show_default=True,
              help="Share of the images that must come back identical; below it (and with none at all) the "
                   "rebuild is an error (exit 1) and writes no card, report or croissant.json.")
@quiet_options
def rebuild(manifest: Path, output: Path, min_delivered: float, quiet: bool, no_progress: bool) -> None:
    """Fetch the images of MANIFEST again into OUTPUT, checking each against its sha256.

    Images changed at the source, gone, or on hosts that cannot be reached are removed and
    listed (rebuild.json, removed.parquet, the card and the report), never replaced.
    """
    from gbifxdl.publish.rebuild import rebuild as rebuild_dataset

    summary = rebuild_dataset(manifest, output, progress=not (quiet or no_progress), min_delivered=min_delivered)
    if not quiet:
        click.echo(summary.format())
