"""The emulated GBIF's occurrence search: ``GET /v1/occurrence/search``, paged, with facets.

It answers from the same occurrences as the emulator's download archives: the query
parameters are read back into the predicate gbifxdl's builder writes for the same options
(``taxonKey``, ``mediaType``, ``country``, ``year``, ``basisOfRecord``, ``license``,
``datasetKey``: same keys, same order), and the occurrences are those a download of that
predicate holds, in the archive's order. ``speciesKey`` narrows them further (the way a
capped search pages one species at a time) without changing which occurrences exist.

As GBIF: ``limit`` is clamped to 300 (default 20); ``offset + limit`` above 100,000 is a
400; every page says ``offset``, ``limit``, ``endOfRecords``, ``count``, ``results`` and
``facets``; ``facet=speciesKey`` (with ``facetLimit``, default 10, and ``facetOffset``)
gives ``facets: [{"field": "SPECIES_KEY", "counts": [{"name": "123", "count": 4}]}]``,
largest first. A test can ask for rate limiting (:meth:`SearchState.rate_limit`): the next
answers are GBIF's 429 with ``Retry-After`` and its recorded body.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from aiohttp import web

from gbifxdl.testing._dwca_text import EMULATOR_NOTE, LICENSE_URLS
from gbifxdl.testing._occurrences import Occurrence

MAX_LIMIT = 300  # GBIF clamps larger limits to this
DEFAULT_LIMIT = 20
CEILING = 100_000  # offset + limit may not pass this
DEFAULT_FACET_LIMIT = 10
# GBIF's 429 body for search (recorded: ../shared/gbif/api/occurrence_search_429_body.json)
RATE_LIMIT_BODY = [
    "To download GBIF occurrence data in bulk, please request a download through the website "
    "<https://www.gbif.org/occurrence/search>, the API <https://techdocs.gbif.org/en/data-use/api-downloads>, "
    "or use the free public cloud datasets <https://www.gbif.org/occurrence-snapshot>.",
    "We can also provide data about downloads, datasets, citations and so on in CSV or some other format, "
    "please contact helpdesk@gbif.org.",
]
_RANKS = ("KINGDOM", "PHYLUM", "CLASS", "ORDER", "FAMILY", "GENUS", "SPECIES")
_FACETS = {"speciesKey": "SPECIES_KEY"}
EMULATOR_HEADER = "X-Gbifxdl-Emulator"


@dataclass
class SearchState:
    """What the search API remembers: drawn occurrences per predicate, and 429s to answer."""

    occurrences: Callable[[dict | None], Found]  # the download's occurrences for a predicate
    limited: int = 0  # the next this many searches answer 429
    retry_after: int = 1
    delay: float = 0.0  # seconds before each answer (a slow search, for kill-and-resume tests)
    served: int = 0  # pages answered 200
    served_bytes: int = 0  # bytes of the bodies of those pages (JSON as sent, uncompressed)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def rate_limit(self, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` searches with 429 and ``Retry-After: retry_after``."""
        with self.lock:
            self.limited, self.retry_after = times, retry_after


@dataclass(frozen=True)
class Found:
    """The occurrences of one predicate, in the archive's order, and those of each species."""

    everything: list[Occurrence]
    by_species: dict[int, list[Occurrence]]

    @classmethod
    def of(cls, occurrences: Sequence[Occurrence]) -> Found:
        by_species: dict[int, list[Occurrence]] = {}
        for o in occurrences:
            if o.accepted.rank == "SPECIES":
                by_species.setdefault(o.accepted.key, []).append(o)
        return cls(list(occurrences), by_species)

    def narrowed(self, species: set[int]) -> list[Occurrence]:
        """Return the occurrences of these species (all of them when none is named), in order."""
        if not species:
            return self.everything
        if len(species) == 1:
            return self.by_species.get(next(iter(species)), [])
        return [o for o in self.everything if o.accepted.rank == "SPECIES" and o.accepted.key in species]


def cached(draw: Callable[[dict | None], Sequence[Occurrence]], size: int = 8) -> Callable[[dict | None], Found]:
    """Return ``draw`` remembering its last ``size`` answers (a search pages one predicate many
    times: a species' page is read from an index, not by a pass over every occurrence)."""
    memory: OrderedDict[str, Found] = OrderedDict()
    lock = threading.Lock()

    def get(predicate: dict | None) -> Found:
        key = json.dumps(predicate, sort_keys=True)
        with lock:
            if key in memory:
                memory.move_to_end(key)
                return memory[key]
        found = Found.of(list(draw(predicate)))
        with lock:
            memory[key] = found
            while len(memory) > size:
                memory.popitem(last=False)
        return found

    return get


def predicate_of(query: Any) -> dict | None:
    """Return the download predicate gbifxdl's builder writes for these search parameters."""
    parts: list[dict] = []

    def equals_or_in(key: str, values: list[str]) -> None:
        if len(values) == 1:
            parts.append({"type": "equals", "key": key, "value": values[0]})
        elif values:
            parts.append({"type": "in", "key": key, "values": values})

    def values(name: str) -> list[str]:
        return list(dict.fromkeys(v for raw in query.getall(name, []) for v in [raw.strip()] if v))

    equals_or_in("TAXON_KEY", values("taxonKey"))
    media = values("mediaType")
    if media:
        parts.append({"type": "equals", "key": "MEDIA_TYPE", "value": media[0]})
    equals_or_in("COUNTRY", [v.upper() for v in values("country")])
    for year in values("year")[:1]:
        low, comma, high = (p.strip() for p in year.partition(","))
        if not comma:
            parts.append({"type": "equals", "key": "YEAR", "value": low})
        else:
            if low not in ("", "*"):
                parts.append({"type": "greaterThanOrEquals", "key": "YEAR", "value": low})
            if high not in ("", "*"):
                parts.append({"type": "lessThanOrEquals", "key": "YEAR", "value": high})
    equals_or_in("BASIS_OF_RECORD", values("basisOfRecord"))
    licences = values("license")
    if licences:
        parts.append({"type": "in", "key": "LICENSE", "values": licences})
    equals_or_in("DATASET_KEY", [v.lower() for v in values("datasetKey")])
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"type": "and", "predicates": parts}


def occurrence_json(occ: Occurrence) -> dict[str, Any]:
    """Return one occurrence as GBIF's search writes it (absent values left out, keys as numbers)."""
    accepted, taxon, d = occ.accepted, occ.taxon, occ.dataset
    body: dict[str, Any] = {"key": occ.gbif_id, "datasetKey": d.key, "publishingCountry": d.publishing_country,
                            "protocol": "DWC_ARCHIVE", "extensions": {}, "basisOfRecord": d.basis_of_record,
                            "occurrenceStatus": occ.occurrence_status, "taxonKey": taxon.key}
    for rank in _RANKS:
        key = accepted.key_at(rank)
        if key is not None:
            body[f"{rank.lower()}Key"] = key
    body["acceptedTaxonKey"] = accepted.key
    body["scientificName"] = taxon.scientific_name
    body["acceptedScientificName"] = accepted.scientific_name
    for rank in _RANKS[:-1]:
        name = accepted.name_at(rank)
        if name is not None:
            body[rank.lower()] = name
    if accepted.rank == "SPECIES":
        body["species"] = accepted.name
    body["taxonRank"] = taxon.rank
    body["taxonomicStatus"] = taxon.status
    if occ.latitude is not None:
        body["decimalLatitude"], body["decimalLongitude"] = occ.latitude, occ.longitude
        if occ.coordinate_uncertainty is not None:
            body["coordinateUncertaintyInMeters"] = occ.coordinate_uncertainty
    body.update(year=occ.year, month=occ.month, day=occ.day, eventDate=occ.event_date, issues=list(occ.issues))
    body["license"] = LICENSE_URLS[d.license][0] if d.license in LICENSE_URLS else d.license
    if occ.recorded_by:
        body["recordedBy"] = occ.recorded_by
    if occ.life_stage:
        body["lifeStage"] = occ.life_stage
    if occ.sex:
        body["sex"] = occ.sex
    if occ.individual_count is not None:
        body["individualCount"] = occ.individual_count
    body["media"] = [_medium_json(m) for m in occ.media]
    body["gbifID"] = str(occ.gbif_id)
    body["countryCode"] = occ.country
    body["datasetName"] = d.title
    return body


def _medium_json(m: Any) -> dict[str, str]:
    pairs = (("type", m.type), ("format", m.format), ("references", m.references), ("title", m.title),
             ("created", m.created), ("creator", m.creator), ("publisher", m.publisher),
             ("license", m.license), ("rightsHolder", m.rights_holder), ("identifier", m.identifier))
    return {name: value for name, value in pairs if value}


def _bad(text: str) -> web.Response:
    return web.Response(status=400, text=text, content_type="text/plain")


def _int(query: Any, name: str, default: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    return int(value)


async def search(request: web.Request) -> web.Response:
    """GET /occurrence/search: a page of occurrences (and facets), as GBIF answers it."""
    state: SearchState = request.app[SEARCH]
    with state.lock:
        if state.limited > 0:
            state.limited -= 1
            response = web.json_response(RATE_LIMIT_BODY, status=429)
            response.headers["Retry-After"] = str(state.retry_after)
            return response
    if state.delay:
        await asyncio.sleep(state.delay)
    query = request.query
    try:
        limit = min(max(0, _int(query, "limit", DEFAULT_LIMIT)), MAX_LIMIT)
        offset = max(0, _int(query, "offset", 0))
        facet_limit = max(0, _int(query, "facetLimit", DEFAULT_FACET_LIMIT))
        facet_offset = max(0, _int(query, "facetOffset", 0))
        species = {int(v) for v in query.getall("speciesKey", [])}
    except ValueError as exc:
        return _bad(f"Invalid integer parameter: {exc}")
    if offset + limit > CEILING:
        return _bad(f"Max offset of {CEILING} exceeded: {offset} + {limit}")
    facets = [name for name in query.getall("facet", []) if name]
    unknown = [name for name in facets if name not in _FACETS]
    if unknown:
        return _bad(f"Unknown facet {unknown[0]!r} (this emulator knows: {', '.join(_FACETS)})")
    predicate = predicate_of(query)
    index = await asyncio.get_running_loop().run_in_executor(None, state.occurrences, predicate)
    found = index.narrowed(species)
    page = found[offset: offset + limit]
    body: dict[str, Any] = {"offset": offset, "limit": limit, "endOfRecords": offset + limit >= len(found),
                            "count": len(found), "results": [occurrence_json(o) for o in page], "facets": []}
    for name in facets:
        counts = Counter({k: len(v) for k, v in index.by_species.items() if not species or k in species})
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[facet_offset: facet_offset + facet_limit]
        body["facets"].append({"field": _FACETS[name], "counts": [{"name": str(k), "count": n} for k, n in ranked]})
    text = json.dumps(body)
    with state.lock:
        state.served += 1
        state.served_bytes += len(text.encode())
    # the archives say so in their EML; a search page says so in a header GBIF never sends
    return web.json_response(text=text, headers={EMULATOR_HEADER: EMULATOR_NOTE})


SEARCH = web.AppKey("search", SearchState)


def add_search_routes(app: web.Application, state: SearchState) -> None:
    """Register ``GET /v1/occurrence/search``."""
    app[SEARCH] = state
    app.router.add_get("/v1/occurrence/search", search)
