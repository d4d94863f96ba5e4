"""Predicates: validation before anything is sent, a builder from options, taxon-name matching.

- :func:`validate_predicate`, :func:`validate_request`: check a predicate or a whole request
  body the way GBIF will, naming the faulty part by its JSON path.
- :func:`build_predicate`, :func:`build_request`: the common case (taxa, media type,
  countries, years, basis of record, licence, datasets) as a valid predicate and body.
- :func:`match_names`: taxon names to GBIF keys through GBIF's species match v1 or v2.
"""

from __future__ import annotations

from collections.abc import Sequence

from gbifxdl.query._build import build_predicate, build_request, parse_years
from gbifxdl.query._match import NameMatch, NameMatchError, match_names, parse_v1, parse_v2
from gbifxdl.query._validate import validate_predicate, validate_request

__all__ = [
    "NameMatch",
    "NameMatchError",
    "build_predicate",
    "build_request",
    "match_names",
    "parse_v1",
    "parse_v2",
    "parse_years",
    "predicate_of",
    "resolve_taxa",
    "validate_predicate",
    "validate_request",
]


def predicate_of(query: dict) -> dict:
    """Return the predicate of ``query``: a bare predicate (it has a ``type``), or a whole request body
    holding one under ``predicate`` (a ``not`` predicate has a ``predicate`` too, and a ``type``)."""
    return query if "type" in query else query.get("predicate") or {}


def resolve_taxa(
    taxa: Sequence[int | str], *, api_url: str | None = None, version: int = 1, strict: bool = True
) -> tuple[list[int | str], list[NameMatch]]:
    """Return (taxon keys, matches): numeric entries kept as keys, names resolved by match_names."""
    names = [str(t).strip() for t in taxa if not str(t).strip().isdigit()]
    matches = match_names(names, api_url=api_url, version=version, strict=strict) if names else []
    by_name = {m.name: m for m in matches}
    keys: list[int | str] = []
    for taxon in taxa:
        text = str(taxon).strip()
        if text.isdigit():
            keys.append(int(text))
        else:
            key = by_name[" ".join(text.split())].taxon_key
            assert key is not None  # match_names raised for names without a key
            keys.append(key)
    return keys, matches
