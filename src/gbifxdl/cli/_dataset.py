"""The DATASET argument of the commands after fetch: a dataset folder, or its store URL (s3://, gs://, ...).

A URL is worked on through a local working copy (:func:`gbifxdl.store.working_copy`): pulled
before the command, pushed back after it (never for a dry run or a command that only reads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


class DatasetTarget(click.ParamType):
    """A dataset folder that exists (a Path), or a store URL (a str, checked when opened)."""

    name = "DIR|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        if isinstance(value, str) and "://" in value and not value.lower().startswith("file://"):
            return value
        if isinstance(value, str) and value.lower().startswith("file://"):
            from gbifxdl.store import local_target

            value = str(local_target(value))
        return _FOLDER.convert(value, param, ctx)


def dataset_argument(name: str) -> Any:
    """Return the click argument ``name``: a dataset folder or a store URL."""
    return click.argument(name, type=DatasetTarget())


@contextlib.contextmanager
def dataset_folder(target: Path | str, *, images: bool = True, push: bool = True) -> Iterator[Any]:
    """Give the :class:`~gbifxdl.store.WorkingCopy` of ``target``; a URL's transfers are said on stderr."""
    if isinstance(target, Path):  # a folder: itself, without importing the store package's fsspec side
        from gbifxdl.store import WorkingCopy

        yield WorkingCopy(target)
        return
    from gbifxdl.store import working_copy

    with working_copy(target, images=images, push=push, echo=lambda line: click.echo(line, err=True)) as copy:
        yield copy
