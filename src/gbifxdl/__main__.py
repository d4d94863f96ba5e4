"""``python -m gbifxdl``: the same as the ``gbifxdl`` command."""

from gbifxdl.cli import main

main()
