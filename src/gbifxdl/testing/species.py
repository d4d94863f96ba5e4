"""The emulator's species match: GBIF's ``/v1/species/match`` and ``/v2/species/match``.

Answers are drawn from the synthetic :class:`~gbifxdl.testing.universe.Universe` and shaped
as GBIF's recorded bodies (``species_match_v1_*.json``, ``species_match_v2_*.json``): same
field names and types (v1 keys are numbers, v2 keys are strings; v2 nests ``usage``,
``acceptedUsage``, ``classification`` and ``diagnostics``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from gbifxdl.testing.universe import Taxon, Universe

_V1_RANKS = ("KINGDOM", "PHYLUM", "ORDER", "FAMILY", "GENUS", "SPECIES")  # "class" comes last, as GBIF writes it
_NONE_NOTE = "No match because of too little confidence"


def add_species_routes(app: web.Application, universe: Universe) -> None:
    """Mount GET /v1/species/match and /v2/species/match on ``app``, answering from ``universe``."""

    async def match_v1(request: web.Request) -> web.Response:
        name = request.query.get("name") or request.query.get("scientificName") or ""
        verbose = request.query.get("verbose", "").lower() == "true"
        return web.json_response(v1_body(universe, name, verbose=verbose))

    async def match_v2(request: web.Request) -> web.Response:
        name = request.query.get("scientificName") or request.query.get("name") or ""
        verbose = request.query.get("verbose", "").lower() == "true"
        return web.json_response(v2_body(universe, name, verbose=verbose))

    app.router.add_get("/v1/species/match", match_v1)
    app.router.add_get("/v2/species/match", match_v2)


def v1_body(universe: Universe, name: str, *, verbose: bool = False) -> dict[str, Any]:
    """Return the v1 species match answer for ``name``, as GBIF shapes it."""
    taxon, match_type, confidence = _search(universe, name)
    if taxon is None:
        return {"confidence": confidence, "note": _NONE_NOTE, "matchType": "NONE", "synonym": False}
    accepted = _accepted(universe, taxon)
    body: dict[str, Any] = {"usageKey": taxon.key}
    if accepted is not taxon:
        body["acceptedUsageKey"] = accepted.key
    body.update({
        "scientificName": _scientific_name(taxon),
        "canonicalName": taxon.name,
        "rank": taxon.rank,
        "status": taxon.status,
        "confidence": confidence,
        "matchType": match_type,
    })
    if verbose or match_type != "EXACT":
        body["note"] = _note(match_type, confidence)
    lineage = {_rank(t): t for t in _lineage(accepted)}
    for rank in _V1_RANKS:
        if rank in lineage:
            body[rank.lower()] = lineage[rank].name
    for rank in (*_V1_RANKS[:2], "CLASS", *_V1_RANKS[2:]):
        if rank in lineage:
            body[f"{rank.lower()}Key"] = lineage[rank].key
    body["synonym"] = accepted is not taxon
    if "CLASS" in lineage:
        body["class"] = lineage["CLASS"].name
    return body


def v2_body(universe: Universe, name: str, *, verbose: bool = False) -> dict[str, Any]:
    """Return the v2 species match answer for ``name``, as GBIF shapes it."""
    taxon, match_type, confidence = _search(universe, name)
    timings = {"nameNRank": 0, "sciNameMatch": 1, "nameParse": 0, "luceneMatch": 1}
    if taxon is None:
        return {
            "diagnostics": {"matchType": "NONE", "issues": [], "confidence": confidence,
                            "timeTaken": 1, "timings": {"sciNameMatch": 1}},
            "synonym": False,
        }
    accepted = _accepted(universe, taxon)
    body: dict[str, Any] = {"usage": _usage(taxon, with_status=True)}
    if accepted is not taxon:
        body["acceptedUsage"] = _usage(accepted, with_status=False)
    body["classification"] = [
        {"key": str(t.key), "name": t.name, "rank": _rank(t)} for t in _lineage(accepted)
    ]
    diagnostics: dict[str, Any] = {"matchType": match_type, "confidence": confidence, "timeTaken": 1}
    if verbose or match_type != "EXACT":
        diagnostics["note"] = _note(match_type, confidence)
    diagnostics["timings"] = timings
    body["diagnostics"] = diagnostics
    body["additionalStatus"] = []
    body["synonym"] = accepted is not taxon
    # nested-set bounds of the taxon in the tree; only their type matters to clients
    body["left"] = int(taxon.key) % 1_000_000
    body["right"] = body["left"] + 1
    return body


def _search(universe: Universe, name: str) -> tuple[Taxon | None, str, int]:
    clean = " ".join(name.split())
    if not clean:
        return None, "NONE", 100
    taxon, match_type, confidence = universe.search(clean)
    if taxon is None or match_type == "NONE":
        return None, "NONE", int(confidence or 100)
    return taxon, match_type, int(confidence)


def _accepted(universe: Universe, taxon: Taxon) -> Taxon:
    if taxon.status == "SYNONYM" and taxon.accepted_key is not None:
        return universe.taxon(taxon.accepted_key) or taxon
    return taxon


def _lineage(taxon: Taxon) -> tuple[Taxon, ...]:
    return tuple(taxon.classification) or (taxon,)


def _rank(taxon: Taxon) -> str:
    return str(taxon.rank).upper()


def _scientific_name(taxon: Taxon) -> str:
    return f"{taxon.name} {taxon.authorship}".strip()


def _usage(taxon: Taxon, *, with_status: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "key": str(taxon.key),
        "name": _scientific_name(taxon),
        "canonicalName": taxon.name,
        "authorship": taxon.authorship,
        "rank": _rank(taxon),
    }
    if with_status:
        usage["status"] = taxon.status
    words = taxon.name.split()
    if len(words) >= 2:
        usage["genericName"] = words[0]
        usage["specificEpithet"] = words[1]
        if len(words) >= 3:
            usage["infraspecificEpithet"] = words[-1]
    else:
        usage["uninomial"] = taxon.name
    usage["type"] = "SCIENTIFIC"
    italic = " ".join(f"<i>{w}</i>" for w in words) if _rank(taxon) in ("GENUS", "SPECIES") or len(words) > 1 else taxon.name
    usage["formattedName"] = f"{italic} {taxon.authorship}".strip()
    return usage


def _note(match_type: str, confidence: int) -> str:
    return f"Similarity: matchType={match_type}; score={confidence}"
