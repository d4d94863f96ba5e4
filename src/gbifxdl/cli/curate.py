"""``gbifxdl curate DIR``, ``gbifxdl clean DIR`` and ``gbifxdl report DIR``: thin skins over curate,
purge_removed and write_report."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from gbifxdl._progress import StepBars
from gbifxdl.cli._dataset import dataset_argument, dataset_folder
from gbifxdl.cli._quiet import quiet_options
from gbifxdl.errors import ConfigError


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise ConfigError(f"--fractions {text!r}: give three numbers for train,val,test, e.g. 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


@click.command()
@dataset_argument("dataset_dir")
@click.option("--class-column", default="speciesKey", show_default=True, help="Column holding the class label.")
@click.option("--cross-class", "cross_class_duplicates", default="drop-all", show_default=True,
              type=click.Choice(["drop-all", "keep-one", "keep-per-class"]),
              help="A photo under two classes: drop every copy, keep the best one, or one per class.")
@click.option("--near-duplicates/--no-near-duplicates", default=True, show_default=True,
              help="Also remove resized, re-encoded or slightly cropped copies (hashes propose, pixels confirm).")
@click.option("--phash-threshold", default=16, show_default=True, type=click.IntRange(0, 32),
              help="Largest Hamming distance between perceptual hashes of a candidate pair.")
@click.option("--chroma-threshold", default=32, show_default=True, type=click.IntRange(0, 128),
              help="...and between their colour hashes (128: any); each candidate is then checked on its pixels.")
@click.option("--pixel-tolerance", default=1.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="How different a candidate's pixels may be and still make a copy, as a multiple of the measured line.")
@click.option("--max-near-duplicate-share", default=0.10, show_default=True, type=click.FloatRange(0, 1),
              help="Hold back (and warn about) near-duplicate removals above this share of the dataset; 1: never.")
@click.option("--accept-near-duplicate-changes", is_flag=True,
              help="Apply what pixel-confirmed near duplicates change in a dataset curated by an older gbifxdl.")
@click.option("--n-split", default=5, show_default=True, type=click.IntRange(1), help="Folds of the `set` column.")
@click.option("--ood-th", default=5, show_default=True, type=click.IntRange(0),
              help="Classes with at most this many images (and at most half the median class size) become test_ood.")
@click.option("--fractions", default="0.8,0.1,0.1", show_default=True, help="train,val,test fractions per class.")
@click.option("--group-by-occurrence/--no-group-by-occurrence", default=True, show_default=True,
              help="Keep all images of one occurrence in one split.")
@click.option("--split-by-time", is_flag=True, help="Oldest eventDate trains, newest tests.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the splits.")
@click.option("--verify-hashes", is_flag=True, help="Read every image whole and check its sha256 (slow).")
@click.option("--check-files/--no-check-files", default=True, show_default=True,
              help="Check every file is there and readable; --no-check-files trusts the table (files elsewhere).")
@click.option("--keep", multiple=True, metavar="RULE",
              help="Keep only images a model labels so (`gbifxdl infer` results), e.g. 'cleaner.label in [adult]'; "
                   "repeatable. Also not in, ==, !=.")
@click.option("--drop", multiple=True, metavar="RULE",
              help="Remove images a model labels so, e.g. 'cleaner.label in [larva, herbarium]'; repeatable.")
@click.option("--min-score", multiple=True, metavar="MODEL=SCORE",
              help="Remove images whose top score of MODEL is lower, e.g. cleaner=0.8; for the --crop detector, the "
                   "score a detection needs.")
@click.option("--max-outlier", multiple=True, metavar="MODEL=DISTANCE",
              help="Remove images farther than this (cosine distance, 0..2) from their class's mean embedding of "
                   "embedder MODEL, e.g. bioclip=0.5.")
@click.option("--crop", metavar="MODEL", default=None,
              help="Crop every image to the best box of detector MODEL (originals kept in .gbifxdl/originals).")
@click.option("--crop-padding", default=0.0, show_default=True, type=click.FloatRange(0, 10),
              help="Share of the box's size added on every side of a crop.")
@click.option("--crop-square", is_flag=True, help="Make each crop square (kept inside the image).")
@click.option("--no-detection", default="keep", show_default=True, type=click.Choice(["keep", "drop"]),
              help="An image the --crop detector found nothing in: keep it uncropped, or drop it (no_detection).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed; change nothing.")
@click.option("--no-card", is_flag=True, help="Do not write README.md and ATTRIBUTION.csv.")
@quiet_options
def curate(dataset_dir: Path | str, fractions: str, no_card: bool, quiet: bool, no_progress: bool,
           **options: object) -> None:
    """Clean DATASET_DIR (a `gbifxdl fetch` folder, or its s3://, gs:// URL) and add train/val/test splits.

    Starts from every fetched row, drops failed rows, rows whose file is missing or
    unreadable, and duplicate photos; writes the curated metadata.parquet,
    removed.parquet, curate_summary.json, and the dataset card README.md with
    ATTRIBUTION.csv. Removed files are set aside in DATASET_DIR/.gbifxdl/removed, so
    curating again with other settings brings back what they keep; `gbifxdl clean`
    deletes them for good.
    """
    from gbifxdl.curate import CurateSettings
    from gbifxdl.curate import curate as run_curate

    settings = CurateSettings(fractions=_fractions(fractions), **options)  # type: ignore[arg-type]
    muted = logging.getLogger("gbifxdl.curate")  # its warnings are echoed below, once
    level, muted.level = muted.level, logging.ERROR
    try:
        with dataset_folder(dataset_dir, push=not settings.dry_run) as copy, \
                StepBars(enabled=not (quiet or no_progress)) as bars:
            summary = run_curate(copy.path, settings, progress=bars, card=not no_card)
    finally:
        muted.setLevel(level)
    if not quiet:
        click.echo(copy.shown_text("\n".join(line for line in summary.format().splitlines()
                                             if not line.startswith("warning: "))))
    if summary.card and not quiet:
        click.echo(f"wrote {copy.shown(summary.card)} and {copy.shown(Path(summary.card).with_name('ATTRIBUTION.csv'))}")
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)


@click.command()
@dataset_argument("dataset_dir")
@click.option("--dry-run", is_flag=True, help="Only say how many files and bytes would be deleted.")
def clean(dataset_dir: Path | str, dry_run: bool) -> None:
    """Delete for good the files curation set aside in DATASET_DIR/.gbifxdl/removed.

    After this, curating again with other settings can no longer bring them back.
    """
    from gbifxdl.curate import purge_removed

    click.echo(purge_removed(dataset_dir, dry_run=dry_run).format())


@click.command()
@dataset_argument("dataset_dir")
@click.option("--thumbnails", "thumbnails_per_class", default=8, show_default=True, type=click.IntRange(0),
              help="Thumbnails shown per class.")
@click.option("--max-classes", default=60, show_default=True, type=click.IntRange(0),
              help="Classes shown with thumbnails (the largest).")
def report(dataset_dir: Path | str, thumbnails_per_class: int, max_classes: int) -> None:
    """Write DATASET_DIR/report.html: plots and thumbnails in one self-contained page."""
    from gbifxdl.errors import CurateError
    from gbifxdl.report import write_report

    with dataset_folder(dataset_dir) as copy:
        # fetch writes metadata.parquet; curate adds curate_summary.json
        if not (copy.path / "metadata.parquet").is_file():
            raise CurateError(
                f"{dataset_dir} holds no metadata.parquet, so there is nothing to report yet: build the dataset "
                f"with `gbifxdl run` (or `gbifxdl fetch`) first, then run `gbifxdl report {dataset_dir}`"
            )
        path = write_report(copy.path, thumbnails_per_class=thumbnails_per_class, max_classes=max_classes)
        curated = (copy.path / "curate_summary.json").is_file()
    click.echo(f"wrote {copy.shown(path)}")
    if not curated:
        click.echo(f"not curated yet: `gbifxdl curate {dataset_dir}` removes duplicates and adds the splits", err=True)
