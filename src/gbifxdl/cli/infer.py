"""``gbifxdl infer DIR --model FILE.onnx``: a thin skin over :func:`gbifxdl.infer.infer`."""

from __future__ import annotations

from pathlib import Path

import click

from gbifxdl.cli._dataset import dataset_argument, dataset_folder
from gbifxdl.cli._quiet import quiet_options

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@dataset_argument("dataset_dir")
@click.option("--model", "model_path", required=True, type=_FILE,
              help="The .onnx model; its sidecar (same name, .json) says how to feed it.")
@click.option("--kind", type=click.Choice(["classifier", "embedder", "detector"]),
              help="What the model is (default: the sidecar's 'kind').")
@click.option("--labels", type=_FILE, help="Embedders: an .npz of label names and their text embeddings (zero-shot).")
@click.option("--name", help="The model's name in the dataset (default: the file's stem).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Images per model call.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="cuda without ONNX Runtime's CUDA provider is an error, never a silent CPU run.")
@click.option("--workers", type=click.IntRange(0), help="Decode processes (0: decode in this process).")
@click.option("--cluster", default=None, metavar="local:N|slurm:N|pbs:N|tcp://HOST:8786",
              help="Decode and run the batches on a Dask cluster, as `gbifxdl fetch --cluster` (with --device cuda, "
                   "on workers with the Dask resource GPU); the same results as here.")
@click.option("--part-size", default=1024, show_default=True, type=click.IntRange(1), hidden=True,
              help="Images per results part.")
@quiet_options
def infer(dataset_dir: Path | str, model_path: Path, quiet: bool, no_progress: bool, **options: object) -> None:
    """Run a model over every image of DATASET_DIR (a `gbifxdl fetch` folder).

    Writes one row per image (label and score, embedding, or boxes; the model's sha256;
    an error for an image that cannot be read) to DATASET_DIR/.gbifxdl/models/NAME/.
    Run again after an interruption, it continues; after the model changed, it measures
    that model again.
    """
    from gbifxdl._progress import StepBars
    from gbifxdl.infer import infer as run_infer

    with dataset_folder(dataset_dir) as copy, StepBars(enabled=not (quiet or no_progress)) as bars:
        summary = run_infer(copy.path, model_path, progress=bars, **options)  # type: ignore[arg-type]
    if not quiet:
        click.echo(summary.format())
