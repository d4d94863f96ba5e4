"""Commands over the GBIF API: match, post, status, wait, get, cancel, downloads, cite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from gbifxdl.cli._quiet import quiet_options
from gbifxdl.cli._query_options import predicate_from_options, query_options
from gbifxdl.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

PASSWORD_WARNING = (
    "warning: a password given with -w/--password shows in the process list and your shell "
    "history; prefer GBIF_PWD, a .env file or ~/.netrc"
)


def api_url_option(f: F) -> F:
    """Return ``f`` with ``--api-url`` (env GBIF_API_URL) added."""
    return click.option(
        "--api-url", envvar="GBIF_API_URL", metavar="URL",
        help="GBIF API base URL with its version path [default: https://api.gbif.org/v1; env GBIF_API_URL].",
    )(f)


def credential_options(f: F) -> F:
    """Return ``f`` with ``-u/--user``, ``-w/--password`` and ``-e/--email`` added."""
    f = click.option("-e", "--email", help="E-mail for GBIF's notification [env GBIF_EMAIL].")(f)
    f = click.option("-w", "--password", help="GBIF password (shows in the process list: prefer GBIF_PWD).")(f)
    return click.option("-u", "--user", help="GBIF username [env GBIF_USER, .env, ~/.netrc].")(f)


def credentials_from(user: str | None, password: str | None, email: str | None, api_url: str | None,
                     user_hint: str | None = "pass -u/--user USER") -> Any:
    """Return the Credentials for a command, warning when the password came on the command line.

    ``user_hint`` is where else this command takes a username (None when it has no such option).
    """
    from gbifxdl.credentials import load_credentials

    if password:
        click.echo(PASSWORD_WARNING, err=True)
    return load_credentials(user=user, password=password, email=email, api_url=api_url, user_hint=user_hint)


def read_key(value: str) -> str:
    """Return a download key given as itself, as a DOI, or as the path of a file holding it (checked)."""
    from gbifxdl.gbif import check_key

    path = Path(value)
    if value.strip() and path.is_file():
        try:
            words = path.read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the key file {value} ({type(exc).__name__}); "
                              "give a download key or a text file holding one") from None
        if not words:
            raise ConfigError(f"the key file {value} is empty; it should hold a GBIF download key")
        return check_key(words[0], file_hint=True)
    return check_key(value, file_hint=True)


def check_format(value: str | None) -> str | None:
    """Return the archive format in GBIF's spelling, or raise ConfigError naming --format."""
    from gbifxdl._terms import DOWNLOAD_FORMATS

    if value is None:
        return None
    if value.strip().upper() not in DOWNLOAD_FORMATS:
        raise ConfigError(f"--format {value!r} is not a GBIF download format; give one of {', '.join(DOWNLOAD_FORMATS)} "
                          "(DWCA is the only one with image links)")
    return value.strip().upper()


def check_query_options(options: dict[str, Any]) -> bool:
    """Return whether builder options were given, after checking them all locally.

    Everything but the taxon names (which only GBIF's species match can resolve) is
    checked here, so a bad --year or --country is said before anything is sent.
    """
    from gbifxdl.cli._query_options import _BUILDER_OPTIONS

    if not any(options.get(name) for name in _BUILDER_OPTIONS):
        return False
    taxa = [part.strip() for value in options.get("taxon") or () for part in str(value).split(",")]
    if options.get("taxon") and not any(taxa):
        raise ConfigError("--taxon is empty: give a taxon name or a GBIF taxon key")
    # a placeholder key stands for each name, so the rest of the predicate is built and checked
    placeholders = tuple(t if t.isdigit() else "1" for t in taxa if t)
    predicate_from_options(None, **{**options, "taxon": placeholders})
    return True


def check_wait_options(timeout: float | None, min_interval: float, max_interval: float) -> None:
    """Raise ConfigError naming the option when a waiting time is not a sensible number of seconds."""
    for name, value in (("--timeout", timeout), ("--min-interval", min_interval), ("--max-interval", max_interval)):
        if value is not None and not (value > 0 or (name == "--timeout" and value == 0)):
            raise ConfigError(f"{name} {value}: give a number of seconds above 0")


def write_key(path: Path, key: str) -> None:
    """Save the download key to ``path`` atomically."""
    from gbifxdl._io import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, key + "\n")


KEY = click.argument("key", metavar="KEY")


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--v2", "version", flag_value=2, help="Use GBIF's species match v2 (checklists).")
@click.option("--v1", "version", flag_value=1, default=True, help="Use species match v1 (the backbone) [default].")
@click.option("--lenient", is_flag=True, help="Accept fuzzy and higher-rank matches instead of failing.")
@api_url_option
def match(names: tuple[str, ...], version: int, lenient: bool, api_url: str | None) -> None:
    """Match taxon NAMES to GBIF taxon keys (one line per name)."""
    from gbifxdl.query import match_names

    if not all(name.strip() for name in names):
        raise ConfigError("a taxon name is empty: give names such as 'Aglais io' (quote names with spaces)")

    from gbifxdl.query import NameMatchError

    try:
        matches = match_names(list(names), api_url=api_url, version=version, strict=not lenient)
    except NameMatchError as exc:  # the names that matched are printed, then what did not (one line)
        _print_matches(exc.matched)
        raise
    _print_matches(matches)


def _print_matches(matches: list[Any]) -> None:
    for m in matches:
        fields = [m.name, str(m.taxon_key), m.match_type, str(m.confidence), m.rank or "", m.accepted_name or m.canonical_name or ""]
        click.echo("\t".join(fields) + (f"\t({m.note})" if m.note else ""))


@click.command()
@click.argument("payload", required=False, type=click.Path())
@query_options
@click.option("-k", "--key-file", type=click.Path(path_type=Path), help="Save the download key to this file.")
@click.option("--format", "format_", default=None, help="Archive format [default: the payload's, else DWCA].")
@click.option("--notify/--no-notify", default=None, help="Ask GBIF to e-mail when ready [default: the payload's sendNotification, else no; as `run`].")
@click.option("--dry-run", is_flag=True, help="Print the request JSON without sending it.")
@click.option("--wait", "wait_", is_flag=True, help="Then wait until the archive is ready.")
@credential_options
@api_url_option
def post(payload: str | None, key_file: Path | None, format_: str | None, notify: bool | None, dry_run: bool,
         wait_: bool, user: str | None, password: str | None, email: str | None, api_url: str | None,
         **builder: Any) -> None:
    """Post a download request: a PAYLOAD JSON file (predicate or full request) or builder options."""
    from gbifxdl import gbif
    from gbifxdl.errors import GbifxdlError

    # Everything is checked here, before a credential prompt or a request (only taxon
    # names need GBIF, and they are matched before the password is asked for).
    format_ = check_format(format_)
    if key_file is not None and key_file.is_dir():
        raise ConfigError(f"-k/--key-file {key_file} is a folder; give a file name such as {key_file / 'key.txt'}")
    has_builder = check_query_options(builder)
    if payload is not None and has_builder:
        raise ConfigError("give either a PAYLOAD file or builder options (--taxon ...), not both")
    if payload is None and not has_builder:
        raise ConfigError("give a PAYLOAD JSON file or builder options such as --taxon (see `gbifxdl post --help`)")
    if payload is not None:
        data = gbif.check_payload(payload, format=format_, send_notification=notify)
    else:
        data = predicate_from_options(api_url, **builder)
        assert data is not None
        gbif.check_payload(data, format=format_, send_notification=notify)
    creator = user or (data.get("creator") if "predicate" in data else None)
    if dry_run:  # no password needed just to look at the request
        try:
            from gbifxdl.credentials import load_credentials

            found = load_credentials(user=creator, password=password, email=email, api_url=api_url, prompt=False)
            creator, email = found.user, found.email
        except GbifxdlError:
            creator = creator or "YOUR_GBIF_USERNAME"
        body = gbif.make_request(data, creator=creator, email=email, format=format_, send_notification=notify)
        click.echo(json.dumps(body, indent=2))
        return
    credentials = credentials_from(creator, password, email, api_url)
    key = gbif.post_request(data, credentials=credentials, api_url=api_url, format=format_, send_notification=notify)
    click.echo(key)  # first: the key is shown even if saving it fails
    if key_file is not None:
        write_key(key_file, key)
        click.echo(f"download key saved to {key_file}", err=True)
    if wait_:
        final = gbif.wait(key, api_url=api_url)
        click.echo(final.summary(), err=True)
    else:
        click.echo(f"follow it with `gbifxdl wait {key}`, then `gbifxdl get {key} -o DIR`", err=True)


@click.command()
@KEY
@click.option("--json", "as_json", is_flag=True, help="Print GBIF's full status JSON.")
@api_url_option
def status(key: str, as_json: bool, api_url: str | None) -> None:
    """Show the status of download KEY (a key, a DOI, or a file holding the key)."""
    from gbifxdl import gbif

    st = gbif.status(read_key(key), api_url=api_url)
    if as_json:
        click.echo(json.dumps(st.raw, indent=2))
        return
    click.echo(st.summary())
    if st.succeeded:
        click.echo(f"ready: gbifxdl get {st.key} -o DIR")


@click.command()
@KEY
@click.option("--timeout", type=float, default=None, metavar="SECONDS", help="Give up after this long [default: 2 days].")
@click.option("--min-interval", type=float, default=30.0, show_default=True, help="First polling interval, seconds.")
@click.option("--max-interval", type=float, default=300.0, show_default=True, help="Longest polling interval, seconds.")
@api_url_option
def wait(key: str, timeout: float | None, min_interval: float, max_interval: float, api_url: str | None) -> None:
    """Wait until download KEY is ready (Ctrl-C loses nothing; run it again later)."""
    from gbifxdl import gbif

    check_wait_options(timeout, min_interval, max_interval)
    st = gbif.wait(
        read_key(key), api_url=api_url, timeout=gbif.DEFAULT_WAIT_TIMEOUT if timeout is None else timeout,
        min_interval=min_interval, max_interval=max(min_interval, max_interval),
    )
    click.echo(st.summary())


@click.command()
@KEY
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder to write KEY.zip into.")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the download to be ready first.")
@quiet_options
@api_url_option
def get(key: str, output: Path, wait_: bool, quiet: bool, no_progress: bool, api_url: str | None) -> None:
    """Download the archive of KEY to DIR/KEY.zip (an interrupted download resumes)."""
    from gbifxdl import gbif

    key = read_key(key)
    no_progress = no_progress or quiet  # the path of the archive is the answer, not a summary: always printed
    if wait_:
        gbif.wait(key, api_url=api_url, progress=not no_progress)
    click.echo(gbif.download_archive(key, output, api_url=api_url, progress=not no_progress))


@click.command()
@KEY
@credential_options
@api_url_option
def cancel(key: str, user: str | None, password: str | None, email: str | None, api_url: str | None) -> None:
    """Cancel download KEY (only a PREPARING, RUNNING or SUSPENDED one changes)."""
    from gbifxdl import gbif

    before = gbif.status(read_key(key), api_url=api_url)
    if not before.is_running:
        click.echo(f"{before.key} was already {before.status}; nothing to cancel")
        return
    st = gbif.cancel(before.key, credentials=credentials_from(user, password, email, api_url), api_url=api_url)
    click.echo(f"{st.key} cancelled" if st.status == "CANCELLED" else f"{st.key} is {st.status}; GBIF did not cancel it")


@click.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--running", is_flag=True, help="Only downloads still PREPARING, RUNNING or SUSPENDED.")
@credential_options
@api_url_option
def downloads(limit: int, offset: int, running: bool, user: str | None, password: str | None, email: str | None,
              api_url: str | None) -> None:
    """List your GBIF downloads, newest first."""
    from gbifxdl import gbif

    page = gbif.list_downloads(credentials=credentials_from(user, password, email, api_url), api_url=api_url,
                               limit=limit, offset=offset)
    shown = [d for d in page if d.is_running or not running]
    for d in shown:
        click.echo(d.summary())
    total = f" of {page.count}" if page.count is not None else ""
    listed = f"{offset + 1}-{offset + len(page)}{total}" if len(page) else f"none after {offset}{total}"
    click.echo(f"{len(shown)} shown (downloads {listed})", err=True)


@click.command()
@KEY
@api_url_option
def cite(key: str, api_url: str | None) -> None:
    """Print GBIF's citation of download KEY (with its DOI), or the one to give for a dataset folder."""
    from gbifxdl import gbif

    stored = "://" in key and not key.lower().startswith(("http://", "https://"))  # not a DOI's address
    if Path(key).is_dir() or stored:  # a dataset (or its URL): its derived-dataset DOI, else its download's
        from gbifxdl.cli._dataset import dataset_folder
        from gbifxdl.publish.derived import dataset_citation

        with dataset_folder(Path(key) if Path(key).is_dir() else key, images=False, push=False) as copy:
            click.echo(dataset_citation(copy.path))
        return
    click.echo(gbif.citation(read_key(key), api_url=api_url))
