"""The dataset card's public name: the card lives with publishing, in :mod:`gbifxdl.publish.card`."""

from __future__ import annotations

from gbifxdl.publish.card import ATTRIBUTION_COLUMNS, citation_text, license_name, write_attribution, write_card

__all__ = ["ATTRIBUTION_COLUMNS", "citation_text", "license_name", "write_attribution", "write_card"]
