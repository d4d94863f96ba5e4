"""``gbifxdl curate DIR`` and ``gbifxdl report DIR``: thin skins over curate, write_card, write_report."""

from __future__ import annotations

from pathlib import Path

import click

from gbifxdl.errors import ConfigError

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise ConfigError(f"--fractions {text!r}: give three numbers for train,val,test, e.g. 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


@click.command()
@click.argument("dataset_dir", type=_DIR)
@click.option("--class-column", default="speciesKey", show_default=True, help="Column holding the class label.")
@click.option("--cross-class", "cross_class_duplicates", default="drop-all", show_default=True,
              type=click.Choice(["drop-all", "keep-one", "keep-per-class"]),
              help="A photo under two classes: drop every copy, keep the best one, or one per class.")
@click.option("--near-duplicates/--no-near-duplicates", default=True, show_default=True,
              help="Also remove resized or re-encoded copies (perceptual hash).")
@click.option("--phash-threshold", default=4, show_default=True, type=click.IntRange(0, 32),
              help="Largest Hamming distance between perceptual hashes of near duplicates.")
@click.option("--n-split", default=5, show_default=True, type=click.IntRange(1), help="Folds of the `set` column.")
@click.option("--ood-th", default=5, show_default=True, type=click.IntRange(0),
              help="Classes with at most this many images become test_ood.")
@click.option("--fractions", default="0.8,0.1,0.1", show_default=True, help="train,val,test fractions per class.")
@click.option("--group-by-occurrence/--no-group-by-occurrence", default=True, show_default=True,
              help="Keep all images of one occurrence in one split.")
@click.option("--split-by-time", is_flag=True, help="Oldest eventDate trains, newest tests.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the splits.")
@click.option("--verify-hashes", is_flag=True, help="Read every image whole and check its sha256 (slow).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed; change nothing.")
@click.option("--no-card", is_flag=True, help="Do not write README.md and ATTRIBUTION.csv.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def curate(dataset_dir: Path, fractions: str, no_card: bool, no_progress: bool, **options: object) -> None:
    """Clean DATASET_DIR (a `gbifxdl fetch` folder) and add train/val/test splits.

    Drops failed rows, files no row refers to, rows whose file is missing or unreadable,
    and duplicate photos; writes the curated metadata.parquet, removed.parquet,
    curate_summary.json, and the dataset card README.md with ATTRIBUTION.csv.
    """
    from gbifxdl.card import write_card
    from gbifxdl.curate import CurateSettings
    from gbifxdl.curate import curate as run_curate

    settings = CurateSettings(fractions=_fractions(fractions), **options)  # type: ignore[arg-type]
    summary = run_curate(dataset_dir, settings, progress=not no_progress)
    click.echo(summary.format())
    if not settings.dry_run and not no_card:
        card = write_card(dataset_dir)
        click.echo(f"wrote {card} and {card.with_name('ATTRIBUTION.csv')}")


@click.command()
@click.argument("dataset_dir", type=_DIR)
@click.option("--thumbnails", "thumbnails_per_class", default=8, show_default=True, type=click.IntRange(0),
              help="Thumbnails shown per class.")
@click.option("--max-classes", default=60, show_default=True, type=click.IntRange(0),
              help="Classes shown with thumbnails (the largest).")
def report(dataset_dir: Path, thumbnails_per_class: int, max_classes: int) -> None:
    """Write DATASET_DIR/report.html: plots and thumbnails in one self-contained page."""
    from gbifxdl.report import write_report

    path = write_report(dataset_dir, thumbnails_per_class=thumbnails_per_class, max_classes=max_classes)
    click.echo(f"wrote {path}")
