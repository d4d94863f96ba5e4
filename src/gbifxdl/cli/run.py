"""``gbifxdl run``, ``gbifxdl init``, ``gbifxdl demo`` and the original ``gbifpipe``."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from gbifxdl.cli._quiet import quiet_options
from gbifxdl.errors import ConfigError, GbifxdlError

DEMO_DIR = "gbifxdl-demo"
DEMO_MODEL = Path(".gbifxdl") / "demo-model" / "exposure.onnx"  # written by the demo, inside its folder


def _stage_sections() -> dict[str, Any]:
    from gbifxdl.run.config import stage_classes

    return {name: cls() for name, cls in stage_classes().items()}


def _query_options(f: Any) -> Any:
    from gbifxdl.cli._query_options import query_options

    return query_options(f)


@click.command()
@click.argument("payload", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", metavar="DIR|URL", help="Dataset folder, or an s3://, gs:// URL (worked on through a copy here).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="TOML configuration (`gbifxdl init` writes one).")
@_query_options
@click.option("--key", help="Use this existing GBIF download instead of posting a request.")
@click.option("--archive", type=click.Path(dir_okay=False, path_type=Path), help="Use this archive already on disk.")
@click.option("--api-url", envvar="GBIF_API_URL", help="GBIF API base URL, with its version path.")
@click.option("--source", type=click.Choice(["download", "search", "auto"]),
              help="download (default: post, wait, get an archive; needs a GBIF account), search (GBIF's "
                   "occurrence search: no account, up to 100,000 records, or capped with --max-per-class), or "
                   "auto: search without a GBIF account or when capped per species, else download.")
@click.option("--max-per-class", type=int, help="At most N images per class, drawn at random (seeded).")
@click.option("--min-per-class", type=int, help="Drop classes with fewer than N images.")
@click.option("--all-images", is_flag=True, default=None, help="Keep every image of an occurrence, not one.")
@click.option("--layout", type=click.Choice(["folders", "webdataset"]), help="Species folders or WebDataset shards.")
@click.option("--resize", type=int, help="Longest side in pixels (never enlarges).")
@click.option("--jpeg-quality", type=int)
@click.option("--connections", type=int, help="Global connection limit.")
@click.option("--per-host", type=int, help="Connections per image host.")
@click.option("--cluster", default=None, metavar="local:N|slurm:N|pbs:N|tcp://HOST:8786",
              help="Fetch on a Dask cluster: N local workers, N Slurm/PBS batch jobs (slurm:jobs=N,cores=C,"
                   "memory=M,walltime=T,queue=Q; [cluster] keys), or a running scheduler (pip install 'gbifxdl[dask]').")
@click.option("--seed", type=int, help="Seed of every random choice (caps, splits).")
@click.option("--no-report", is_flag=True, help="Skip the dataset card and HTML report.")
@click.option("--allow-changed-settings", is_flag=True, help="Continue a dataset with new settings, redoing the stages they affect.")
@quiet_options
def run(**params: Any) -> None:
    """Run the whole pipeline: post, wait, get, select, fetch, infer, curate, report.

    Give a PAYLOAD predicate file, or builder options (--taxon, --country, --year ...),
    or --key KEY, or --archive FILE. Run the same command again to continue after an
    interruption: nothing done is lost and no request is posted twice. With --config,
    an option given on the command line wins over the file, and the file over the defaults;
    the file's [[models]] steps run your ONNX models between fetch and curate.
    """
    from gbifxdl.run import run as run_job

    settings = settings_from_context(click.get_current_context())
    dataset = run_job(
        settings,
        allow_changed_settings=params["allow_changed_settings"],
        progress=not params["no_progress"],
        quiet=params["quiet"],
        echo=click.echo,
    )
    if not params["quiet"]:
        output = settings.output
        _say_what_to_open(dataset, output if output != str(dataset) else None)


def given_options(ctx: click.Context) -> dict[str, Any]:
    """Return the options the user gave, on the command line or through their environment variable."""
    given_sources = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {p.name: ctx.params[p.name] for p in ctx.command.params
            if p.name and ctx.get_parameter_source(p.name) in given_sources}  # fmt: skip


def merged_options(ctx: click.Context) -> dict[str, Any]:
    """Return the configuration file's values with the given options merged over them."""
    from gbifxdl.run.config import merge, read_config

    config_path = ctx.params.get("config_path")
    return merge(read_config(config_path) if config_path else {}, given_options(ctx))


def settings_from_context(ctx: click.Context) -> Any:
    """Return the RunSettings that the command line, the configuration file and the defaults give."""
    from gbifxdl.run.config import (RUN_OPTIONS, ClusterOptions, SourceOptions, build_section, model_steps,
                                    stage_classes, unify_shared)
    from gbifxdl._config_types import show
    from gbifxdl.run import RunSettings, SourceSettings

    given = given_options(ctx)
    config_path = ctx.params.get("config_path")
    by_option = {target: name for name, b in RUN_OPTIONS.items() if name in given for target in b.targets}

    def origin_in(section: str) -> Any:
        def origin(key: str, value: Any) -> str:
            name = by_option.get((section, key))
            if name is not None:
                return f"--{name.replace('_', '-')} {given[name]}"
            return f"config file {config_path}: [{section}] {key} = {show(value)}"

        return origin

    # a key several stages read, written once: the run gives its value to each (issue 20, item 14)
    merged = unify_shared(merged_options(ctx), lambda section, key, value: origin_in(section)(key, value))
    output = merged.get("output")
    if output is None:
        raise ConfigError("no dataset folder: give -o/--output DIR (or `output` in the config file)")
    from gbifxdl.store import local_target

    output = local_target(str(output)) or str(output)  # file:// URLs too; a store URL as it is
    staged = {name: build_section(cls, merged.get(name, {}), section=name, origin=origin_in(name))
              for name, cls in stage_classes().items()}  # fmt: skip
    models = model_steps(merged.get("models"))
    options = build_section(SourceOptions, merged.get("source", {}), section="source", origin=origin_in("source"))
    # every check of our own before the first request (matching taxon names asks GBIF): issue 20, item 2
    cluster = build_section(ClusterOptions, merged.get("cluster", {}), section="cluster", origin=origin_in("cluster"))
    address = cluster.address
    if address is not None or cluster.job_keys():
        from gbifxdl.fetch.cluster import cluster_address

        if address is None:
            raise ConfigError(f"[cluster] {', '.join(sorted(cluster.job_keys()))}: batch-job keys need "
                              'address = "slurm" or "pbs" (or --cluster slurm:N)')
        address = cluster_address(address, cluster.job_keys())  # a bad value is said now, not after the download
    # a dataset made before: its API address (unless another is given) and its matched taxon names
    # (a finished run, run again, needs no network; an unfinished one goes on where it started)
    earlier = _earlier_source(output)
    api_url = options.api_url or earlier.get("api_url")
    predicate, names = _predicate(options, api_url, dict(earlier.get("taxon_names") or ()))
    source = SourceSettings(
        predicate=predicate,
        key=options.key,
        archive=options.archive,
        api_url=api_url,
        taxon_names=tuple(sorted(names.items())),
        format=options.format,
        notification=options.notification,
        route=options.route,
    )
    source.kind()  # exactly one source, said clearly now rather than later
    _check_source(source)
    return RunSettings(output=str(output), source=source, report=merged.get("report", True),
                       cluster=address, models=models, **staged)


def _check_source(source: Any) -> None:
    """Raise the one-line error a bad key or request gives, before a folder, a prompt or a request."""
    from gbifxdl.gbif import check_key, check_payload

    if source.key:
        check_key(source.key)
    if source.archive is not None and not Path(source.archive).is_file():
        raise ConfigError(f"--archive {source.archive}: no such file; give the path of a GBIF download (KEY.zip)")
    if source.predicate is not None:  # a full request keeps its own format
        check_payload(source.predicate, format=None if "predicate" in source.predicate else source.format)


def _earlier_source(output: Path | str) -> dict[str, Any]:
    """Return the source settings a run saved in ``output`` ({} when there is none)."""
    from gbifxdl.run import RunState

    if isinstance(output, str):  # a store URL: its working copy's state, else the store's
        return _stored_source(output)
    try:
        state = RunState.load(Path(output))
    except GbifxdlError:
        return {}  # a damaged state is said by the run itself
    source = (state.settings.get("source") if state is not None else None) or {}
    return source if isinstance(source, dict) else {}


def _stored_source(url: str) -> dict[str, Any]:
    from gbifxdl.run import STATE_FILE
    from gbifxdl.store import cache_folder, open_store

    copy = cache_folder(url)
    if (copy / STATE_FILE).is_file():
        return _earlier_source(copy)
    try:
        with open_store(url) as store:
            data = json.loads(store.read_bytes(STATE_FILE.as_posix()))
    except (FileNotFoundError, GbifxdlError, ValueError):
        return {}  # none yet; a missing bucket or a damaged state is said by the run itself
    source = (data.get("settings") or {}).get("source") if isinstance(data, dict) else None
    return source if isinstance(source, dict) else {}


def _predicate(options: Any, api_url: str | None, known: dict[str, int]) -> tuple[dict | None, dict[str, int]]:
    from gbifxdl.cli._query_options import predicate_and_names

    if options.payload:
        payload = Path(options.payload)
        try:
            return json.loads(payload.read_text(encoding="utf-8")), {}
        except FileNotFoundError:
            raise ConfigError(f"payload file {payload} not found") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"payload file {payload} is not valid JSON: {exc}") from None
    from gbifxdl.cli.gbif import check_query_options

    builder = dict(
        taxon=tuple(str(t) for t in options.taxon),
        country=options.country,
        year=None if options.year is None else str(options.year),
        basis_of_record=options.basis_of_record,
        license=options.license,
        dataset_key=options.dataset_key,
        media_type=options.media_type,
        lenient=options.lenient,
    )
    check_query_options(builder)  # all but taxon names checked before GBIF's species match is asked
    return predicate_and_names(api_url, known, **builder)


@click.command()
@click.argument("path", default="gbifxdl.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented configuration file holding every option."""
    from gbifxdl._io import write_text_atomic
    from gbifxdl.run.config import default_config_text

    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    write_text_atomic(path, default_config_text(_stage_sections()))
    click.echo(f"Wrote {path}. Edit it, then: gbifxdl run --config {path}")


@click.command()
@click.option("-o", "--output", default=DEMO_DIR, show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--occurrences", default=300, show_default=True, help="Size of the emulated GBIF download.")
@click.option("--layout", type=click.Choice(["folders", "webdataset"]), default="folders", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the emulated GBIF, its image hosts and every random choice: the same seed, the same dataset.")
@quiet_options
def demo(output: Path, occurrences: int, layout: str, seed: int, quiet: bool, no_progress: bool) -> None:
    """Run the real pipeline offline, against a GBIF emulator and image hosts on loopback.

    The same command makes the same dataset (give another --seed for another one). Its
    download key and DOI are the emulator's, marked so in the card: `gbifxdl derive`
    refuses to send the dataset to GBIF.
    """
    from gbifxdl.cli._query_options import predicate_from_options
    from gbifxdl.curate import CurateSettings
    from gbifxdl.fetch import FetchSettings
    from gbifxdl.fetch.download import host_of
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

    models, rules = _demo_model(output, quiet)
    click.echo("Starting a GBIF emulator and 3 image hosts on loopback (no internet needed; one allows 5 requests/s)...")
    with local_gbif(LocalGbifSettings(n_occurrences=occurrences, seed=seed)) as local:
        os.environ.update(GBIF_USER=DEMO_USER, GBIF_PWD=DEMO_PASSWORD, GBIF_EMAIL=f"{DEMO_USER}@example.org")
        predicate = predicate_from_options(local.api_url, taxon=("Nymphalidae",), year="2010-2025")
        click.echo(f"Query: Nymphalidae, 2010-2025, still images -> {json.dumps(predicate)}")
        settings = RunSettings(
            output=str(output),
            source=SourceSettings(predicate=predicate, api_url=local.api_url),
            wait=WaitSettings(min_interval=0.5, max_interval=2.0, timeout=600),
            select=SelectSettings(max_per_class=25, seed=seed),
            curate=CurateSettings(seed=seed, **rules),
            models=models,
            # the emulated hosts lay their photos out as iNaturalist does: fetch the smallest
            # rendition big enough for 256 px, as on the real hosts
            fetch=dataclasses.replace(FetchSettings(), layout=layout, resize=256,
                                      rendition_hosts=tuple((host_of(u), "inaturalist") for u in local.hosts.base_urls)),
        )
        dataset = run_job(settings, progress=not no_progress, quiet=quiet, echo=click.echo)
    _say_what_to_open(dataset)


def _demo_model(output: Path, quiet: bool) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Return the demo's model step and its curate rule: a tiny classifier it writes (no step without ONNX Runtime)."""
    import importlib.util

    from gbifxdl.run import ModelStep

    if importlib.util.find_spec("onnxruntime") is None:
        click.echo("Model step skipped: ONNX Runtime is not installed (pip install 'gbifxdl[infer]' to see a model "
                   "set images aside in the report).")
        return (), {}
    model = write_exposure_model(output / DEMO_MODEL)
    if not quiet:
        click.echo(f"Model step: {model.name}, a tiny classifier the demo wrote (too_dark: mean brightness under "
                   "0.4); curation drops what it calls too_dark (set aside as model:exposure, shown in the report).")
    return (ModelStep(model=str(model), workers=0),), {"drop": ("exposure.label in [too_dark]",)}


def write_exposure_model(path: Path, threshold: float = 0.4) -> Path:
    """Write the demo's exposure classifier to ``path`` (a .onnx file) and its sidecar beside it; return ``path``."""
    from gbifxdl._io import atomic_path, write_text_atomic
    from gbifxdl.testing.tiny_models import SIDECAR, exposure_model_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(exposure_model_bytes(int(SIDECAR["input_size"]), threshold))  # type: ignore[call-overload]
    write_text_atomic(path.with_suffix(".json"), json.dumps(SIDECAR, indent=2) + "\n")
    return path


def _say_what_to_open(dataset: Path, url: str | None = None) -> None:
    report = dataset / "report.html"
    card = dataset / "README.md"
    if url is not None:  # a store's dataset: the report opens from its working copy here
        shown = f"; its report is {url}/report.html (here: {report})" if report.exists() else ""
        click.echo(f"Done. The dataset is in {url}{shown}; the dataset card is {url}/README.md.")
    elif report.exists():
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

    from gbifxdl.cli.gbif import read_key

    key = read_key(str(key_file))  # checked before a folder is made or GBIF is asked
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
