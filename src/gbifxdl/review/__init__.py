"""Review in the browser: ``gbifxdl review DIR`` serves a page where a person marks images.

A grid of thumbnails (a class at a time or across classes, paged), marked with the keyboard or
the mouse: good, bad, wrong species, needs crop; undo; progress. Marks go to an append-only
journal in the dataset (``DIR/.gbifxdl/review/marks.jsonl``, see :mod:`gbifxdl._marks`), each on
disk before the page shows it saved; :func:`read_marks` returns them as a table; ``gbifxdl
curate`` sets aside images marked bad or wrong species (``review:bad``, ``review:wrong_species``).

- :mod:`~gbifxdl.review.server`  the server (127.0.0.1, a token in every request): :func:`serve`
- :mod:`~gbifxdl.review.marks`   :func:`read_marks`
- :mod:`~gbifxdl.review.rank`    :func:`rank` ("find more like these"), :class:`Ranking`, :class:`RankError`
- :mod:`~gbifxdl.review.export`  :func:`export_marks` (the marks as an ImageFolder)
- ``_index``: the dataset's images by key and their cached thumbnails; ``_page``: the page;
  ``_features``: the vectors a ranking learns from (:func:`embedders`: the models that made some);
  ``_suspects``: the "likely wrong first" order
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gbifxdl._lazy import lazy_getattr

if TYPE_CHECKING:
    from gbifxdl.review._features import embedders
    from gbifxdl.review.export import export_marks
    from gbifxdl.review.marks import read_marks
    from gbifxdl.review.rank import Ranking, RankError, rank
    from gbifxdl.review.server import serve

__all__ = ["RankError", "Ranking", "embedders", "export_marks", "rank", "read_marks", "serve"]

__getattr__ = lazy_getattr(__name__, {
    "read_marks": "gbifxdl.review.marks",
    "serve": "gbifxdl.review.server",
    "rank": "gbifxdl.review.rank",
    "Ranking": "gbifxdl.review.rank",
    "RankError": "gbifxdl.review.rank",
    "export_marks": "gbifxdl.review.export",
    "embedders": "gbifxdl.review._features",
})
