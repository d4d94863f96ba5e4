"""What several stages say about gbifxdl itself: one definition each.

The provenance key names the JSON object that travels in every table's Parquet schema
metadata (select writes it, fetch and curate extend it, the card and report read it);
the User-Agent is sent to GBIF and to every image host.
"""

from __future__ import annotations

from gbifxdl import __version__

PROVENANCE_KEY = b"gbifxdl.provenance"
HOMEPAGE = "https://github.com/GuillaumeMougeot/gbifxdl"
USER_AGENT = f"gbifxdl/{__version__} (+{HOMEPAGE})"

__all__ = ["HOMEPAGE", "PROVENANCE_KEY", "USER_AGENT"]
