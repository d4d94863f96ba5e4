"""``--quiet``, the one spelling of "print less" on every command (issue 20, item 9).

``--quiet`` hides the progress bars and the summaries; without it the summaries always
print, on a terminal or not. ``--no-progress``, the older spelling of some commands,
still works but is hidden from ``--help``: it hides the bars only, never the summaries.
"""

from __future__ import annotations

from typing import Any, Callable

import click

QUIET_HELP = "No progress bars and no summaries (errors and warnings still print)."


def quiet_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--quiet`` and the hidden, deprecated ``--no-progress`` (bars only) to a command."""
    f = click.option("--no-progress", "no_progress", is_flag=True, hidden=True,
                     help="Deprecated: hides the progress bars only; use --quiet.")(f)
    return click.option("--quiet", is_flag=True, help=QUIET_HELP)(f)
