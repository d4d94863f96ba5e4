"""The original ``gbifpost`` command, kept with its options: ``gbifpost -p PAYLOAD -k KEYFILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gbifxdl.cli.gbif import api_url_option, credentials_from, write_key
from gbifxdl.errors import ConfigError


class LegacyCommand(click.Command):
    """A click command that, called as a console script, reports errors as one line."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from gbifxdl.cli import run_command

        return run_command(self, prog_name=self.name)


@click.command(cls=LegacyCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--payload", required=True, type=click.Path(path_type=Path),
              help="Predicate JSON file; its 'creator' is your GBIF username.")
@click.option("-k", "--key-file", type=click.Path(path_type=Path), default=Path("download_key.txt"),
              show_default=True, help="File to save the download key to.")
@click.option("-w", "--password", help="GBIF password (shows in the process list: prefer GBIF_PWD or .env).")
@api_url_option
def gbifpost(payload: Path, key_file: Path, password: str | None, api_url: str | None) -> None:
    """Post a GBIF download request and save its key (the original command)."""
    from gbifxdl import gbif

    data = gbif.check_payload(payload)  # before any credential prompt or request
    if key_file.is_dir():
        raise ConfigError(f"-k/--key-file {key_file} is a folder; give a file name such as {key_file / 'key.txt'}")
    creator = data.get("creator") if "predicate" in data else None
    credentials = credentials_from(creator, password, None, api_url, user_hint='put "creator": "USER" in the payload')
    key = gbif.post_request(data, credentials=credentials, api_url=api_url)
    click.echo(key)  # first: the key is shown even if saving it fails
    write_key(key_file, key)
    click.echo(f"download key saved to {key_file}; follow it with `gbifxdl wait {key}`", err=True)
