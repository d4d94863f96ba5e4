"""``gbifxdl review DIR``: a thin skin over :func:`gbifxdl.review.serve`."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from gbifxdl.cli._dataset import dataset_argument, dataset_folder


@click.command()
@dataset_argument("dataset_dir")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: a free one).")
@click.option("--open/--no-open", "open_browser", default=True, show_default=True,
              help="Open the page in the browser.")
@click.option("--model", default=None, metavar="NAME",
              help="The embedder (a model `gbifxdl infer` ran) that 'find more like these' learns from "
                   "[default: the first one, else built-in colour and shape features].")
@click.option("--export", "export_to", default=None, type=click.Path(file_okay=False, path_type=Path), metavar="OUT",
              help="Serve nothing: write the marked images as an ImageFolder, OUT/<mark>/<key>.jpg (+ labels.csv), "
                   "to train a model on.")
def review(dataset_dir: Path | str, port: int, open_browser: bool, model: str | None, export_to: Path | None) -> None:
    """Review DATASET_DIR's images in the browser, and mark them with the keyboard.

    Serves a page on 127.0.0.1 only, at a link with a random token (printed; every request
    needs it). Keys: arrows move; g good, b bad, w wrong species, c needs crop, 0 clear,
    u undo, n/p next/previous page. Each mark is on disk in
    DATASET_DIR/.gbifxdl/review/marks.jsonl before the page shows it saved; `gbifxdl curate`
    then sets aside images marked bad or wrong species. f ("find more like these") ranks the
    unmarked images by how likely each is bad, from the marks. Stop with Ctrl-C. DATASET_DIR may
    be an s3://, gs:// URL: its working copy is served, and the marks go back to it when review stops.
    """
    with dataset_folder(dataset_dir, push=export_to is None) as copy:
        _review(copy.path, port, open_browser, model, export_to, shown=str(dataset_dir))


def _review(dataset_dir: Path, port: int, open_browser: bool, model: str | None, export_to: Path | None,
            shown: str) -> None:
    if export_to is not None:
        from gbifxdl.review import export_marks

        counts = export_marks(dataset_dir, export_to)
        missing = counts.pop("not_found", 0)
        listed = ", ".join(f"{mark} {n}" for mark, n in sorted(counts.items()))
        click.echo(f"exported {sum(counts.values())} marked images to {export_to} ({listed})"
                   + (f"; {missing} could not be found" if missing else ""))
        return
    from gbifxdl.review import serve

    if model is not None:  # (checked only when given: the check imports pyarrow, and opening should be quick)
        from gbifxdl.review import embedders

        found = embedders(dataset_dir)
        if model not in found:
            raise click.UsageError(f"--model {model}: no embedder of that name ran on {shown} (found: "
                                   f"{', '.join(found) or 'none'}); run `gbifxdl infer` first")

    def ready(link: str) -> None:
        click.echo(f"review {shown} at {link}  (Ctrl-C stops; every mark is saved as it is made)")
        if open_browser:
            webbrowser.open(link)

    serve(dataset_dir, port=port, on_ready=ready, model=model)
