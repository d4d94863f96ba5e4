"""``gbifxdl select``: a GBIF archive -> the Parquet table of images to fetch."""

from __future__ import annotations

from pathlib import Path

import click

from gbifxdl.cli._quiet import quiet_options


@click.command("select")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output Parquet file [default: ARCHIVE's stem + .parquet, next to it].")
@click.option("--media-type", default="StillImage", show_default=True,
              help="Media type to keep (case-insensitive); 'any' keeps every type.")
@click.option("--license", "licenses", multiple=True, metavar="LICENCE",
              help="Allowed licence (CC0, CC-BY, CC-BY-NC, CC-BY-SA, ... or a licence URL). Repeatable; default: any.")
@click.option("--basis-of-record", multiple=True, metavar="BASIS",
              help="Allowed basis of record (HUMAN_OBSERVATION, PRESERVED_SPECIMEN, ...). Repeatable; default: any.")
@click.option("--require-rank", "required_ranks", multiple=True, metavar="RANK",
              help="Drop rows lacking this rank's key (kingdom..species). Repeatable [default: species].")
@click.option("--no-strict", is_flag=True, help="Keep rows whatever rank keys they lack.")
@click.option("--class-column", default="speciesKey", show_default=True,
              help="What a class is, for URL de-duplication and per-class limits (any rank key or column).")
@click.option("--all-images", is_flag=True, help="Keep every image of an occurrence, not one chosen at random.")
@click.option("--max-per-class", type=click.IntRange(min=1), default=None,
              help="At most N images per class, drawn at random (seeded).")
@click.option("--min-per-class", type=click.IntRange(min=1), default=None,
              help="Drop classes with fewer than N images.")
@click.option("--ambiguous-urls", type=click.Choice(["drop", "keep-one"]), default="drop", show_default=True,
              help="A URL shared by occurrences of different classes: drop it, or keep one of its rows.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@quiet_options
def select(archive: Path, output: Path | None, media_type: str, licenses: tuple[str, ...],
           basis_of_record: tuple[str, ...], required_ranks: tuple[str, ...], no_strict: bool, class_column: str,
           all_images: bool, max_per_class: int | None, min_per_class: int | None, ambiguous_urls: str,
           seed: int, quiet: bool, no_progress: bool) -> None:
    """Select the images to fetch from ARCHIVE (a GBIF DWCA download, KEY.zip).

    Writes one row per image to the output Parquet file, and what was kept and dropped
    (and why) to <output stem>.summary.json next to it.
    """
    from gbifxdl.errors import ConfigError
    from gbifxdl.select import SelectSettings
    from gbifxdl.select import select as run_select
    from gbifxdl.select import summary_path

    if no_strict and required_ranks:
        raise ConfigError("--no-strict and --require-rank contradict each other: give one of them")
    settings = SelectSettings(
        media_type=None if media_type.lower() in ("any", "") else media_type,
        licenses=licenses or None,
        basis_of_record=basis_of_record or None,
        required_ranks=() if no_strict else (required_ranks or ("species",)),
        class_column=class_column,
        one_per_occurrence=not all_images,
        max_per_class=max_per_class,
        min_per_class=min_per_class,
        ambiguous_urls=ambiguous_urls,
        seed=seed,
    )
    output = output or archive.with_suffix(".parquet")
    summary = run_select(archive, output, settings, progress=not (quiet or no_progress))
    if no_progress and not quiet:  # the bar hidden, the summary not (select prints it only with its bar)
        click.echo(summary.to_text(), err=True)
    if not quiet:
        click.echo(f"wrote {output} and {summary_path(output)}")
