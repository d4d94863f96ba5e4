"""``gbifxdl run``, ``gbifxdl init``, ``gbifxdl demo`` and the original ``gbifpipe``."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import click

from gbifxdl.errors import ConfigError

DEMO_DIR = "gbifxdl-demo"


def _stage_sections() -> dict[str, Any]:
    from gbifxdl.curate import CurateSettings
    from gbifxdl.fetch import FetchSettings
    from gbifxdl.run import WaitSettings
    from gbifxdl.select import SelectSettings

    return {
        "wait": WaitSettings(),
        "select": SelectSettings(),
        "fetch": FetchSettings(),
        "curate": CurateSettings(),
    }


def _query_options(f: Any) -> Any:
    from gbifxdl.cli._query_options import query_options

    return query_options(f)


@click.command()
@click.argument("payload", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), help="Dataset folder (holds the run state).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="TOML configuration (`gbifxdl init` writes one).")
@_query_options
@click.option("--key", help="Use this existing GBIF download instead of posting a request.")
@click.option("--archive", type=click.Path(dir_okay=False, path_type=Path), help="Use this archive already on disk.")
@click.option("--api-url", envvar="GBIF_API_URL", help="GBIF API base URL, with its version path.")
@click.option("--max-per-class", type=int, help="At most N images per class, drawn at random (seeded).")
@click.option("--min-per-class", type=int, help="Drop classes with fewer than N images.")
@click.option("--all-images", is_flag=True, default=None, help="Keep every image of an occurrence, not one.")
@click.option("--layout", type=click.Choice(["folders", "webdataset"]), help="Species folders or WebDataset shards.")
@click.option("--resize", type=int, help="Longest side in pixels (never enlarges).")
@click.option("--jpeg-quality", type=int)
@click.option("--connections", type=int, help="Global connection limit.")
@click.option("--per-host", type=int, help="Connections per image host.")
@click.option("--seed", type=int, help="Seed of every random choice (caps, splits).")
@click.option("--no-report", is_flag=True, help="Skip the dataset card and HTML report.")
@click.option("--allow-changed-settings", is_flag=True, help="Continue a dataset with new settings, redoing the stages they affect.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run(payload: Path | None, output: Path | None, config_path: Path | None, **options: Any) -> None:
    """Run the whole pipeline: post, wait, get, select, fetch, curate, report.

    Give a PAYLOAD predicate file, or builder options (--taxon, --country, --year ...),
    or --key KEY, or --archive FILE. Run the same command again to continue after an
    interruption: nothing done is lost and no request is posted twice.
    """
    from gbifxdl.run import run as run_job

    settings = settings_from_cli(payload, output, config_path, options)
    dataset = run_job(
        settings,
        allow_changed_settings=options["allow_changed_settings"],
        progress=not options["no_progress"],
        echo=click.echo,
    )
    _say_what_to_open(dataset)


def settings_from_cli(payload: Path | None, output: Path | None, config_path: Path | None, options: dict[str, Any]) -> Any:
    """Merge defaults, the config file and command-line options into RunSettings."""
    from gbifxdl.config import read_config, settings_from
    from gbifxdl.run import RunSettings, SourceSettings

    config = read_config(config_path) if config_path else {}
    base = config.get("source", {})
    output = output or (Path(config["output"]) if "output" in config else None)
    if output is None:
        raise ConfigError("no dataset folder: give -o/--output DIR (or `output` in the config file)")

    sections = _stage_sections()
    staged = {name: settings_from(type(obj), config.get(name, {}), section=name) for name, obj in sections.items()}
    cli_stage = {
        "select": {"max_per_class": options["max_per_class"], "min_per_class": options["min_per_class"],
                   "one_per_occurrence": None if options["all_images"] is None else not options["all_images"],
                   "seed": options["seed"]},
        "fetch": {"layout": options["layout"], "resize": options["resize"], "jpeg_quality": options["jpeg_quality"],
                  "connections": options["connections"], "per_host": options["per_host"]},
        "curate": {"seed": options["seed"]},
    }  # fmt: skip
    for name, values in cli_stage.items():
        given = {k: v for k, v in values.items() if v is not None}
        staged[name] = settings_from(type(staged[name]), given, section=name, base=staged[name])

    api_url = options["api_url"] or base.get("api_url")
    source = SourceSettings(
        predicate=_predicate(payload, options, base, api_url),
        key=options["key"] or base.get("key"),
        archive=str(options["archive"] or base.get("archive") or "") or None,
        api_url=api_url,
        format=base.get("format", "DWCA"),
        notification=bool(base.get("notification", False)),
    )
    source.kind()  # exactly one source, said clearly now rather than later
    report = not options["no_report"] and bool(config.get("report", True))
    return RunSettings(output=str(output), source=source, report=report, **staged)


def _predicate(payload: Path | None, options: dict[str, Any], base: dict[str, Any], api_url: str | None) -> dict | None:
    from gbifxdl.cli._query_options import predicate_from_options

    payload = payload or (Path(base["payload"]) if base.get("payload") else None)
    if payload is not None:
        try:
            return json.loads(payload.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"payload file {payload} not found") from None
        except ValueError as exc:
            raise ConfigError(f"payload file {payload} is not valid JSON: {exc}") from None
    names = ("taxon", "country", "year", "basis_of_record", "license", "dataset_key", "media_type", "lenient")
    merged = {}
    for name in names:
        value = options.get(name)
        if value in (None, (), []) and name in base:
            value = base[name]
            value = tuple(value) if isinstance(value, list) else value
        merged[name] = value
    return predicate_from_options(api_url, **merged)


@click.command()
@click.argument("path", default="gbifxdl.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented configuration file holding every option."""
    from gbifxdl._io import write_text_atomic
    from gbifxdl.config import default_config_text

    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    write_text_atomic(path, default_config_text(_stage_sections()))
    click.echo(f"Wrote {path}. Edit it, then: gbifxdl run --config {path}")


@click.command()
@click.option("-o", "--output", default=DEMO_DIR, show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--occurrences", default=300, show_default=True, help="Size of the emulated GBIF download.")
@click.option("--layout", type=click.Choice(["folders", "webdataset"]), default="folders", show_default=True)
@click.option("--no-progress", is_flag=True)
def demo(output: Path, occurrences: int, layout: str, no_progress: bool) -> None:
    """Run the real pipeline offline, against a GBIF emulator and image hosts on loopback."""
    from gbifxdl.cli._query_options import predicate_from_options
    from gbifxdl.fetch import FetchSettings
    from gbifxdl.run import RunSettings, RunState, SourceSettings, WaitSettings, run as run_job
    from gbifxdl.select import SelectSettings
    from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER, LocalGbifSettings, local_gbif

    state = RunState.load(output) if output.is_dir() else None
    if state is not None and "report" in state.done:
        click.echo(f"The demo dataset in {output} is complete.")
        _say_what_to_open(output)
        return
    if state is not None:  # an interrupted demo: its emulator is gone with its ports
        click.echo(f"Starting the interrupted demo in {output} over (its emulator is gone).")
        shutil.rmtree(output)
    elif output.exists() and any(output.iterdir()):
        raise ConfigError(f"{output} exists and is not a gbifxdl demo folder; pass -o NEW_FOLDER")

    click.echo("Starting a GBIF emulator and 3 image hosts on loopback (no internet needed)...")
    with local_gbif(LocalGbifSettings(n_occurrences=occurrences)) as local:
        os.environ.update(GBIF_USER=DEMO_USER, GBIF_PWD=DEMO_PASSWORD, GBIF_EMAIL=f"{DEMO_USER}@example.org")
        predicate = predicate_from_options(local.api_url, taxon=("Nymphalidae",), year="2010-2025")
        click.echo(f"Query: Nymphalidae, 2010-2025, still images -> {json.dumps(predicate)}")
        settings = RunSettings(
            output=str(output),
            source=SourceSettings(predicate=predicate, api_url=local.api_url),
            wait=WaitSettings(min_interval=0.5, max_interval=2.0, timeout=600),
            select=SelectSettings(max_per_class=25),
            fetch=dataclasses.replace(FetchSettings(), layout=layout, resize=256),
        )
        dataset = run_job(settings, progress=not no_progress, echo=click.echo)
    _say_what_to_open(dataset)


def _say_what_to_open(dataset: Path) -> None:
    report = dataset / "report.html"
    card = dataset / "README.md"
    if report.exists():
        click.echo(f"Done. Open {report.resolve()} in a browser; the dataset card is {card}.")
    else:
        click.echo(f"Done. The dataset is in {dataset}.")


@click.command()
@click.option("-d", "--dataset-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("-k", "--key-file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--api-url", envvar="GBIF_API_URL")
def gbifpipe(dataset_dir: Path, key_file: Path, api_url: str | None) -> None:
    """The original pipeline: poll, download, select (2000 per species), fetch (512 px), curate."""
    from gbifxdl.fetch import FetchSettings
    from gbifxdl.run import RunSettings, SourceSettings, run as run_job
    from gbifxdl.select import SelectSettings

    key = key_file.read_text(encoding="utf-8").strip()
    if not key:
        raise ConfigError(f"{key_file} is empty; it should hold a GBIF download key")
    settings = RunSettings(
        output=str(dataset_dir),
        source=SourceSettings(key=key, api_url=api_url),
        select=SelectSettings(max_per_class=2000),
        fetch=dataclasses.replace(FetchSettings(), resize=512),
    )
    run_job(settings, echo=click.echo)


def gbifpipe_main() -> None:
    """Entry point of the original ``gbifpipe`` command."""
    from gbifxdl.cli import run_command

    run_command(gbifpipe, prog_name="gbifpipe")
