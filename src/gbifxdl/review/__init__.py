"""Review in the browser: ``gbifxdl review DIR`` serves a page where a person marks images.

A grid of thumbnails (a class at a time or across classes, paged), marked with the keyboard or
the mouse: good, bad, wrong species, needs crop; undo; progress. Marks go to an append-only
journal in the dataset (``DIR/.gbifxdl/review/marks.jsonl``, see :mod:`gbifxdl._marks`), each on
disk before the page shows it saved; :func:`read_marks` returns them as a table; ``gbifxdl
curate`` sets aside images marked bad or wrong species (``review:bad``, ``review:wrong_species``).

- :mod:`~gbifxdl.review.server`  the server (127.0.0.1, a token in every request): :func:`serve`
- :mod:`~gbifxdl.review.marks`   :func:`read_marks`
- ``_index``: the dataset's images by key and their cached thumbnails; ``_page``: the page
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gbifxdl._lazy import lazy_getattr

if TYPE_CHECKING:
    from gbifxdl.review.marks import read_marks
    from gbifxdl.review.server import serve

__all__ = ["read_marks", "serve"]

__getattr__ = lazy_getattr(__name__, {"read_marks": "gbifxdl.review.marks", "serve": "gbifxdl.review.server"})
