"""The ``gbifxdl`` command: a thin skin over the Python API.

Each subcommand lives in the module of its stage (``cli/gbif.py``, ``cli/select.py``,
...) and is imported only when it is invoked, so ``gbifxdl --help`` stays fast.
Errors derived from :class:`gbifxdl.errors.GbifxdlError` print as one line and exit
non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from gbifxdl import __version__
from gbifxdl.errors import GbifxdlError

# command name -> "module:attribute", in the order data flows
COMMANDS: dict[str, str] = {
    "demo": "gbifxdl.cli.run:demo",
    "run": "gbifxdl.cli.run:run",
    "init": "gbifxdl.cli.run:init",
    "match": "gbifxdl.cli.gbif:match",
    "post": "gbifxdl.cli.gbif:post",
    "status": "gbifxdl.cli.gbif:status",
    "wait": "gbifxdl.cli.gbif:wait",
    "get": "gbifxdl.cli.gbif:get",
    "cancel": "gbifxdl.cli.gbif:cancel",
    "downloads": "gbifxdl.cli.gbif:downloads",
    "cite": "gbifxdl.cli.gbif:cite",
    "select": "gbifxdl.cli.select:select",
    "fetch": "gbifxdl.cli.fetch:fetch",
    "infer": "gbifxdl.cli.infer:infer",
    "curate": "gbifxdl.cli.curate:curate",
    "review": "gbifxdl.cli.review:review",
    "report": "gbifxdl.cli.curate:report",
    "derive": "gbifxdl.cli.publish:derive",
    "export": "gbifxdl.cli.publish:export",
    "rebuild": "gbifxdl.cli.publish:rebuild",
    "clean": "gbifxdl.cli.curate:clean",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gbifxdl")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """gbifxdl: from a GBIF occurrence query to a clean image dataset.

    Start with `gbifxdl demo` (offline), then `gbifxdl run --help`.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    # The terminal gets warnings (everything with --debug); the dataset's log file,
    # attached by the stages, gets the INFO records too.
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if debug else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    if debug:
        logging.getLogger("gbifxdl").setLevel(logging.DEBUG)


def run_command(command: click.Command, args: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a click command, turning gbifxdl errors into one line and an exit code."""
    argv = sys.argv[1:] if args is None else args
    debug = "--debug" in argv
    try:
        _invoke(command, list(argv), prog_name)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # a terminal has just echoed "^C": write over it (back to the line's start, cleared)
        clear = "\r\x1b[K" if sys.stderr.isatty() else ""
        click.echo(f"{clear}{INTERRUPTED}", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `gbifxdl`: the help, as click shows it
        click.echo(exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        where = f"`{exc.ctx.command_path} --help`" if exc.ctx else "--help"
        click.echo(f"error: {_one_line(exc.format_message())} (see {where})", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GbifxdlError as exc:
        if debug:
            raise
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: never a bare traceback for users
        if debug:
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
            "(run again with --debug for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)


INTERRUPTED = "Interrupted; nothing done so far is lost. Run the same command again to continue."


def _invoke(command: click.Command, argv: list[str], prog_name: str | None) -> None:
    """Run ``command`` as click's ``main(standalone_mode=False)`` does, Ctrl-C left as KeyboardInterrupt.

    Click's ``main`` writes a blank line to stderr before it turns Ctrl-C into ``Abort``:
    with ours, an interrupt prints exactly one line (run_command's).
    """
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):  # shell completion
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
        return
    name = prog_name or os.path.basename(sys.argv[0]) or "gbifxdl"
    try:
        with command.make_context(name, argv) as ctx:
            command.invoke(ctx)
    except BrokenPipeError:  # output piped into a reader that closed it (`| head`): as click does
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - flushed at exit, never closed
        sys.exit(1)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    """Entry point of the ``gbifxdl`` command."""
    run_command(cli, prog_name="gbifxdl")


