"""``gbifxdl review DIR``: a thin skin over :func:`gbifxdl.review.serve`."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command()
@click.argument("dataset_dir", type=_DIR)
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: a free one).")
@click.option("--open/--no-open", "open_browser", default=True, show_default=True,
              help="Open the page in the browser.")
def review(dataset_dir: Path, port: int, open_browser: bool) -> None:
    """Review DATASET_DIR's images in the browser, and mark them with the keyboard.

    Serves a page on 127.0.0.1 only, at a link with a random token (printed; every request
    needs it). Keys: arrows move; g good, b bad, w wrong species, c needs crop, 0 clear,
    u undo, n/p next/previous page. Each mark is on disk in
    DATASET_DIR/.gbifxdl/review/marks.jsonl before the page shows it saved; `gbifxdl curate`
    then sets aside images marked bad or wrong species. Stop with Ctrl-C.
    """
    from gbifxdl.review import serve

    def ready(link: str) -> None:
        click.echo(f"review {dataset_dir} at {link}  (Ctrl-C stops; every mark is saved as it is made)")
        if open_browser:
            webbrowser.open(link)

    serve(dataset_dir, port=port, on_ready=ready)
