"""What GBIF's API answers look like, written down as facts the tests check bodies against.

Each fact names a field, its JSON type, whether GBIF always sends it, and the values it
takes where GBIF enumerates them. The facts were written from GBIF's documentation and
from bodies recorded from api.gbif.org; the tests prove them against those recordings
where they are present (``shared_gbif``), and check the emulator's real answers and
gbifxdl's own request bodies against them in every checkout.

``problems(body, FACT)`` returns what is wrong with a body, as readable lines (empty:
the body agrees). A *closed* object may hold only the fields its fact names; an open one
(an occurrence, a media item) may hold others, as GBIF adds fields over the years.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DOWNLOAD_FORMATS", "DOWNLOAD_LIST_PAGE", "DOWNLOAD_STATUS", "DOWNLOAD_STATUSES", "Field", "MATCH_TYPES",
    "OCCURRENCE_SEARCH_FACET", "OCCURRENCE_SEARCH_PAGE", "Obj", "PREDICATE_FIELDS", "REQUEST_BODY", "SPECIES_MATCH_V1", "SPECIES_MATCH_V2",
    "predicate_problems", "problems",
]

# JSON type names, and the Python types json.loads gives for each
_PY = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "object": (dict,),
       "array": (list,), "null": (type(None),)}


@dataclass(frozen=True)
class Field:
    """One field: its JSON type, whether it is always there, and its allowed values or form."""

    type: str
    required: bool = True
    values: frozenset[Any] | None = None  # enumerated values
    pattern: str | None = None  # a regular expression a string matches whole
    obj: Obj | None = None  # the fields of an object
    items: Field | None = None  # the fact of each item of an array


@dataclass(frozen=True)
class Obj:
    """The fields of a JSON object; ``closed``: no other field may appear."""

    fields: dict[str, Field] = field(default_factory=dict)
    closed: bool = True


def _opt(type_: str, **kw: Any) -> Field:
    return Field(type_, required=False, **kw)


# --- the occurrence download API -----------------------------------------------------------

DOWNLOAD_STATUSES = frozenset({"PREPARING", "RUNNING", "SUCCEEDED", "CANCELLED", "KILLED", "FAILED", "SUSPENDED",
                               "FILE_ERASED"})
DOWNLOAD_FORMATS = frozenset({"DWCA", "SIMPLE_CSV", "SIMPLE_AVRO", "SIMPLE_WITH_VERBATIM_AVRO", "SIMPLE_PARQUET",
                              "SPECIES_LIST", "MAP_OF_LIFE", "BIONOMIA", "SQL_TSV_ZIP"})
KEY = r"\d{7}-\d{15}"  # a zero-padded counter, then yyMMddHHmmssSSS
DOI = r"10\.15468/dl\.[a-z0-9]{6}"  # GBIF's prefix for download DOIs
TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00"  # always UTC, to the millisecond

# Predicates: each type and the fields it carries (besides "type"); required ones first.
PREDICATE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "and": (("predicates",), ()),
    "or": (("predicates",), ()),
    "not": (("predicate",), ()),
    **{t: (("key", "value"), ("matchCase", "checklistKey")) for t in
       ("equals", "like", "lessThan", "lessThanOrEquals", "greaterThan", "greaterThanOrEquals")},
    "in": (("key", "values"), ("matchCase", "checklistKey")),
    "within": (("geometry",), ()),
    "geoDistance": (("latitude", "longitude", "distance"), ()),
    "isNull": (("parameter",), ()),
    "isNotNull": (("parameter",), ()),
}
_PREDICATE_KEY = re.compile(r"[A-Z][A-Z0-9_]*")  # keys are UPPER_SNAKE: TAXON_KEY, never taxonKey

# The body a client posts to /occurrence/download/request: GBIF refuses any other field.
REQUEST_BODY = Obj({
    "creator": _opt("string"),  # the GBIF username; another user's name is refused (401)
    "notificationAddresses": _opt("array", items=Field("string")),
    "sendNotification": _opt("boolean"),  # default false
    "format": _opt("string", values=DOWNLOAD_FORMATS),  # default DWCA
    "predicate": Field("object"),
    "description": _opt("string"),
    "checklistKey": _opt("string"),
})

# The request as a status echoes it (leaf predicates gain "matchCase": false).
_ECHOED_REQUEST = Obj({
    "predicate": _opt("object"),
    "sql": _opt("string"),  # an SQL download (format SQL_TSV_ZIP) has this instead of a predicate
    "creator": _opt("string"),  # in a user's own listing
    "notificationAddresses": _opt("array", items=Field("string")),
    "sendNotification": Field("boolean"),
    "format": Field("string", values=DOWNLOAD_FORMATS),
    "type": Field("string", values=frozenset({"OCCURRENCE", "EVENT"})),
    "verbatimExtensions": _opt("array", items=Field("string")),  # absent on SQL downloads
    "description": _opt("string"),
    "checklistKey": _opt("string"),
    "machineDescription": _opt("object"),
})

# GET /occurrence/download/{key}: the DOI appears only once the download has ended (and
# not at all on some old downloads); size is 0 until SUCCEEDED.
DOWNLOAD_STATUS = Obj({
    "key": Field("string", pattern=KEY),
    "doi": _opt("string", pattern=DOI),
    "license": Field("string"),
    "request": Field("object", obj=_ECHOED_REQUEST),
    "created": Field("string", pattern=TIMESTAMP),
    "modified": Field("string", pattern=TIMESTAMP),
    "eraseAfter": Field("string", pattern=TIMESTAMP),
    "status": Field("string", values=DOWNLOAD_STATUSES),
    "downloadLink": Field("string", pattern=r"https?://\S+/occurrence/download/request/" + KEY + r"\.zip"),
    "size": Field("integer"),
    "totalRecords": Field("integer"),
    "numberDatasets": Field("integer"),
    "source": _opt("string"),  # in a user's listing: the client that asked (rgbif, pygbif, ...)
})


def _page(item: Field) -> Obj:
    """Return GBIF's paging envelope around items of ``item``."""
    return Obj({
        "offset": Field("integer"),
        "limit": Field("integer"),
        "endOfRecords": Field("boolean"),
        "count": Field("integer"),
        "results": Field("array", items=item),
        "facets": _opt("array"),
    })


# GET /occurrence/download/user/{user}
DOWNLOAD_LIST_PAGE = _page(Field("object", obj=DOWNLOAD_STATUS))

# --- species match -------------------------------------------------------------------------

MATCH_TYPES = frozenset({"EXACT", "FUZZY", "HIGHERRANK", "NONE", "VARIANT"})
TAXON_STATUSES = frozenset({"ACCEPTED", "DOUBTFUL", "SYNONYM", "HETEROTYPIC_SYNONYM", "HOMOTYPIC_SYNONYM",
                            "PROPARTE_SYNONYM", "MISAPPLIED", "BARE_NAME"})
_RANK = r"[A-Z_]+"  # KINGDOM, SPECIES, SUBSPECIES, VARIETY, ...
_V1_NAMES = ("kingdom", "phylum", "class", "order", "family", "genus", "species")

# GET /v1/species/match?name=...: keys are numbers; no usage at all when matchType is NONE.
SPECIES_MATCH_V1 = Obj({
    "usageKey": _opt("integer"),
    "acceptedUsageKey": _opt("integer"),  # when the name is a synonym
    "scientificName": _opt("string"),
    "canonicalName": _opt("string"),
    "rank": _opt("string", pattern=_RANK),
    "status": _opt("string", values=TAXON_STATUSES),
    "confidence": Field("integer"),
    "matchType": Field("string", values=MATCH_TYPES),
    "note": _opt("string"),
    "synonym": Field("boolean"),
    "alternatives": _opt("array", items=Field("object")),  # with verbose=true
    **{name: _opt("string") for name in _V1_NAMES},
    **{f"{name}Key": _opt("integer") for name in _V1_NAMES},
})

_V2_USAGE = Obj({
    "key": Field("string"),  # v2 writes keys as strings
    "name": Field("string"),
    "canonicalName": _opt("string"),
    "authorship": _opt("string"),
    "rank": Field("string", pattern=_RANK),
    "code": _opt("string"),
    "status": _opt("string", values=TAXON_STATUSES),
    "uninomial": _opt("string"),  # the name of a genus or higher, instead of the parts below
    "genericName": _opt("string"),
    "infragenericEpithet": _opt("string"),
    "specificEpithet": _opt("string"),
    "infraspecificEpithet": _opt("string"),
    "type": _opt("string"),
    "formattedName": _opt("string"),
})

# GET /v2/species/match?scientificName=...: the usage nests; diagnostics are always there.
SPECIES_MATCH_V2 = Obj({
    "usage": _opt("object", obj=_V2_USAGE),
    "acceptedUsage": _opt("object", obj=_V2_USAGE),
    "classification": _opt("array", items=Field("object", obj=Obj({
        "key": Field("string"), "name": Field("string"), "rank": Field("string", pattern=_RANK)}))),
    "diagnostics": Field("object", obj=Obj({
        "matchType": Field("string", values=MATCH_TYPES),
        "confidence": Field("integer"),
        "note": _opt("string"),
        "issues": _opt("array"),
        "timeTaken": _opt("integer"),
        "timings": _opt("object"),
        "alternatives": _opt("array", items=Field("object")),
    })),
    "additionalStatus": _opt("array", items=Field("object")),
    "synonym": Field("boolean"),
    "left": _opt("integer"),
    "right": _opt("integer"),
})

# --- occurrence search ---------------------------------------------------------------------

MEDIA_TYPES = frozenset({"StillImage", "MovingImage", "Sound", "InteractiveResource"})

_MEDIA = Obj({
    "type": _opt("string", values=MEDIA_TYPES),
    "format": _opt("string"),
    "identifier": _opt("string"),  # the media URL; GBIF has media without one
    "references": _opt("string"),
    "created": _opt("string"),
    "creator": _opt("string"),
    "publisher": _opt("string"),
    "license": _opt("string"),
    "rightsHolder": _opt("string"),
    "title": _opt("string"),
    "description": _opt("string"),
}, closed=False)

# One occurrence of a search page: interpreted keys are numbers, names strings; GBIF adds
# verbatim terms under their own names (even full URIs), so the object stays open.
_OCCURRENCE = Obj({
    "key": Field("integer"),
    "gbifID": _opt("string"),
    "datasetKey": Field("string"),
    "basisOfRecord": Field("string"),
    "occurrenceStatus": _opt("string", values=frozenset({"PRESENT", "ABSENT"})),
    "scientificName": _opt("string"),
    "taxonRank": _opt("string", pattern=_RANK),
    **{f"{name}Key": _opt("integer") for name in _V1_NAMES},
    "taxonKey": _opt("integer"),
    "acceptedTaxonKey": _opt("integer"),
    **{name: _opt("string") for name in _V1_NAMES},
    "decimalLatitude": _opt("number"),
    "decimalLongitude": _opt("number"),
    "countryCode": _opt("string", pattern=r"[A-Z]{2}"),
    "year": _opt("integer"),
    "month": _opt("integer"),
    "day": _opt("integer"),
    "eventDate": _opt("string"),
    "license": _opt("string"),
    "issues": Field("array", items=Field("string")),
    "media": Field("array", items=Field("object", obj=_MEDIA)),
    "extensions": _opt("object"),
}, closed=False)

# GET /v1/occurrence/search: limit is clamped to 300.
OCCURRENCE_SEARCH_PAGE = _page(Field("object", obj=_OCCURRENCE))

# One item of a search page's ``facets`` (``facet=speciesKey``): the field in UPPER_SNAKE, and
# the values as strings (keys too) with their counts, largest first. From GBIF's documentation:
# the recorded pages asked for no facet (``facets: []``).
OCCURRENCE_SEARCH_FACET = Obj({
    "field": Field("string", pattern=r"[A-Z_]+"),
    "counts": Field("array", items=Field("object", obj=Obj({"name": Field("string"), "count": Field("integer")}))),
})


# --- the checker ---------------------------------------------------------------------------

def _json_type(value: Any) -> str:
    for name, types in _PY.items():
        if isinstance(value, types) and not (name in ("integer", "number") and isinstance(value, bool)):
            return name
    return type(value).__name__


def _field_problems(value: Any, fact: Field, where: str) -> list[str]:
    got = _json_type(value)
    if got != fact.type and not (fact.type == "number" and got == "integer"):
        return [f"{where}: a JSON {got} ({value!r:.60}), GBIF sends a {fact.type}"]
    out: list[str] = []
    if fact.values is not None and value not in fact.values:
        out.append(f"{where}: {value!r} is not one of GBIF's values ({', '.join(sorted(map(str, fact.values)))})")
    if fact.pattern is not None and not re.fullmatch(fact.pattern, value):
        out.append(f"{where}: {value!r} does not have GBIF's form {fact.pattern}")
    if fact.obj is not None:
        out += problems(value, fact.obj, where)
    if fact.items is not None:
        for i, item in enumerate(value):
            out += _field_problems(item, fact.items, f"{where}[{i}]")
    return out


def problems(body: Any, fact: Obj, where: str = "body") -> list[str]:
    """Return each way ``body`` differs from ``fact`` (missing, unknown or mistyped fields), or []."""
    if not isinstance(body, dict):
        return [f"{where}: a JSON {_json_type(body)}, GBIF sends an object"]
    out = [f"{where}.{name}: missing, GBIF always sends it" for name, f in fact.fields.items()
           if f.required and name not in body]
    for name, value in body.items():
        known = fact.fields.get(name)
        if known is None:
            if fact.closed:
                out.append(f"{where}.{name}: not a field GBIF sends or accepts here")
            continue
        out += _field_problems(value, known, f"{where}.{name}")
    return out


def predicate_problems(node: Any, where: str = "predicate") -> list[str]:
    """Return each way ``node`` is not a predicate GBIF accepts (types, fields, key form), or []."""
    if not isinstance(node, dict):
        return [f"{where}: a JSON {_json_type(node)}, a predicate is an object"]
    kind = node.get("type")
    if kind not in PREDICATE_FIELDS:
        return [f"{where}.type: {kind!r} is not a predicate type ({', '.join(sorted(PREDICATE_FIELDS))})"]
    required, optional = PREDICATE_FIELDS[kind]
    out = [f"{where}.{name}: missing for a {kind!r} predicate" for name in required if name not in node]
    out += [f"{where}.{name}: not a field of a {kind!r} predicate" for name in node
            if name != "type" and name not in required and name not in optional]
    if "key" in node and not (isinstance(node["key"], str) and _PREDICATE_KEY.fullmatch(node["key"])):
        out.append(f"{where}.key: {node['key']!r} is not an UPPER_SNAKE search parameter")
    if "value" in node and not isinstance(node["value"], str):
        out.append(f"{where}.value: a JSON {_json_type(node['value'])}, GBIF takes a string")
    if "values" in node and not (isinstance(node["values"], list) and node["values"]
                                 and all(isinstance(v, str) for v in node["values"])):
        out.append(f"{where}.values: GBIF takes a non-empty list of strings")
    if "matchCase" in node and not isinstance(node["matchCase"], bool):
        out.append(f"{where}.matchCase: GBIF takes a boolean")
    if "predicates" in node:
        children = node["predicates"]
        if not isinstance(children, list) or not children:
            out.append(f"{where}.predicates: GBIF takes a non-empty list")
        else:
            for i, child in enumerate(children):
                out += predicate_problems(child, f"{where}.predicates[{i}]")
    if "predicate" in node:
        out += predicate_problems(node["predicate"], f"{where}.predicate")
    return out
