"""Validation of GBIF download predicates and request bodies, before anything is sent.

Every error names the offending part by its path in the JSON
(``predicate.predicates[2].key``) and says what to write instead.
"""

from __future__ import annotations

import difflib
import re
from datetime import date
from typing import Any

from gbifxdl import _terms as terms
from gbifxdl.errors import PredicateError

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# yyyy, yyyy-MM, yyyy-MM-dd, optionally a time; GBIF's IsoDateParsingUtils forms
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)?)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_WKT_TYPES = ("POINT", "LINESTRING", "POLYGON", "LINEARRING", "MULTIPOLYGON")
_MAX_DEPTH = 100


def validate_predicate(predicate: Any, *, path: str = "predicate") -> None:
    """Return None if ``predicate`` is one GBIF accepts; raise PredicateError naming the faulty part."""
    _check(predicate, path, 0)


def validate_request(request: Any) -> None:
    """Return None if ``request`` is a download request body GBIF accepts; raise PredicateError otherwise."""
    if not isinstance(request, dict):
        raise PredicateError(f"request: expected a JSON object, got {_kind(request)}")
    for name in request:
        if name in terms.REQUEST_PROPERTIES or name in terms.REQUEST_ALIASES:
            continue
        hint = _suggest(name, sorted(terms.REQUEST_PROPERTIES))
        raise PredicateError(f"{name}: unknown property of a download request; GBIF refuses it{hint}")
    fields = dict(request)
    for alias, name in terms.REQUEST_ALIASES.items():
        if alias in fields:
            fields.setdefault(name, fields[alias])
    creator = fields.get("creator")
    if creator is not None and (not isinstance(creator, str) or not creator.strip()):
        raise PredicateError("creator: must be your GBIF username (a non-empty string)")
    for name in ["notificationAddresses", *[a for a, n in terms.REQUEST_ALIASES.items() if n == "notificationAddresses"]]:
        if name in request:
            _check_addresses(request[name], name)
    for name in ("sendNotification", "send_notification"):
        value = request.get(name)
        if value is not None and not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            raise PredicateError(f"{name}: must be true or false, got {value!r}")
    fmt = fields.get("format", "DWCA")
    if fmt not in terms.DOWNLOAD_FORMATS:
        hint = _suggest(str(fmt), terms.DOWNLOAD_FORMATS)
        raise PredicateError(f"format: {fmt!r} is not a GBIF download format{hint} "
                             f"(one of {', '.join(terms.DOWNLOAD_FORMATS)})")
    kind = fields.get("type", "OCCURRENCE")
    if kind not in terms.DOWNLOAD_TYPES:
        raise PredicateError(f"type: {kind!r} is not a download type (one of {', '.join(terms.DOWNLOAD_TYPES)})")
    for name in ("description", "checklistKey"):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise PredicateError(f"{name}: must be a string, got {_kind(fields[name])}")
    for name in ("verbatimExtensions", "interpretedExtensions"):
        value = fields.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise PredicateError(f"{name}: must be a list of extension row types (strings)")
    if fields.get("sql") is not None:
        if not isinstance(fields["sql"], str) or not fields["sql"].strip():
            raise PredicateError("sql: must be a non-empty SQL query string")
        if fmt != "SQL_TSV_ZIP":
            raise PredicateError("format: SQL downloads must use the format SQL_TSV_ZIP")
        if fields.get("predicate") is not None:
            raise PredicateError("predicate: a request has either a predicate or an sql query, not both")
        return
    if fmt == "SQL_TSV_ZIP":
        raise PredicateError("format: SQL_TSV_ZIP is only for SQL downloads; use DWCA for a predicate")
    if fields.get("predicate") is None:
        raise PredicateError("predicate: missing; without one GBIF would send every occurrence it holds "
                             "(billions). Add a predicate, e.g. a TAXON_KEY and a COUNTRY.")
    validate_predicate(fields["predicate"], path="predicate")


def _check_addresses(value: Any, path: str) -> None:
    if not isinstance(value, list):
        raise PredicateError(f"{path}: must be a list of e-mail addresses, got {_kind(value)}")
    for i, address in enumerate(value):
        if not isinstance(address, str) or "@" not in address:
            raise PredicateError(f"{path}[{i}]: {address!r} is not an e-mail address")


def _check(node: Any, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise PredicateError(f"{path}: predicate nested more than {_MAX_DEPTH} levels deep")
    if not isinstance(node, dict):
        raise PredicateError(f"{path}: expected a predicate object with a 'type', got {_kind(node)}")
    kind = node.get("type")
    if not isinstance(kind, str) or kind not in terms.PREDICATE_FIELDS:
        if kind is None:
            raise PredicateError(f"{path}: missing 'type' (one of {', '.join(terms.PREDICATE_FIELDS)})")
        hint = _suggest(str(kind), list(terms.PREDICATE_FIELDS))
        raise PredicateError(f"{path}.type: {kind!r} is not a GBIF predicate type{hint} "
                             f"(one of {', '.join(terms.PREDICATE_FIELDS)})")
    allowed = terms.PREDICATE_FIELDS[kind]
    for name in node:
        if name not in allowed:
            hint = _suggest(name, sorted(allowed - {"type"}))
            raise PredicateError(f"{path}.{name}: not a field of {_a(kind)} predicate{hint} "
                                 f"(fields: {', '.join(sorted(allowed - {'type'}))})")
    for name in terms.REQUIRED_FIELDS.get(kind, ("key", "value")):
        if node.get(name) is None:
            raise PredicateError(f"{path}.{name}: missing; {_a(kind)} predicate needs "
                                 f"{', '.join(terms.REQUIRED_FIELDS.get(kind, ('key', 'value')))}")
    if "matchCase" in node and not isinstance(node["matchCase"], bool):
        raise PredicateError(f"{path}.matchCase: must be true or false, got {node['matchCase']!r}")
    if "checklistKey" in node and not isinstance(node["checklistKey"], str):
        raise PredicateError(f"{path}.checklistKey: must be a string (a checklist dataset key)")

    if kind in ("and", "or"):
        children = node["predicates"]
        if not isinstance(children, list) or not children:
            raise PredicateError(f"{path}.predicates: must be a non-empty list of predicates")
        for i, child in enumerate(children):
            _check(child, f"{path}.predicates[{i}]", depth + 1)
    elif kind == "not":
        _check(node["predicate"], f"{path}.predicate", depth + 1)
    elif kind == "in":
        key_kind = _check_key(node["key"], f"{path}.key")
        values = node["values"]
        if not isinstance(values, list) or not values:
            raise PredicateError(f"{path}.values: must be a non-empty list of values")
        for i, value in enumerate(values):
            _check_value(value, node["key"], key_kind, f"{path}.values[{i}]", ranges=False)
    elif kind == "within":
        _check_wkt(node["geometry"], f"{path}.geometry")
    elif kind == "geoDistance":
        _check_geo_distance(node, path)
    elif kind in ("isNull", "isNotNull"):
        _check_key(node["parameter"], f"{path}.parameter")
    else:  # equals, like and the comparisons
        key_kind = _check_key(node["key"], f"{path}.key")
        if kind in terms.COMPARISONS and key_kind not in terms.COMPARABLE_KINDS:
            raise PredicateError(f"{path}.type: {kind!r} compares numbers and dates only, and "
                                 f"{node['key']} is neither; use 'equals' or 'in'")
        _check_value(node["value"], node["key"], key_kind, f"{path}.value", ranges=kind == "equals",
                     like=kind == "like")


def _check_key(key: Any, path: str) -> str:
    """Return the value kind of ``key``; raise PredicateError if GBIF does not know it."""
    if not isinstance(key, str):
        raise PredicateError(f"{path}: must be a GBIF predicate key (a string such as 'TAXON_KEY'), got {_kind(key)}")
    kind = terms.PARAMETERS.get(key)
    if kind is None:
        normal = _normal(key)
        same = [k for k in terms.PARAMETERS if _normal(k) == normal]
        hint = f"; did you mean {same[0]!r}?" if same else _suggest(key.upper(), list(terms.PARAMETERS))
        raise PredicateError(f"{path}: {key!r} is not a GBIF predicate key{hint} "
                             "(keys are UPPER_SNAKE_CASE, as in GBIF's OccurrenceSearchParameter)")
    if kind == terms.GEOMETRY and not path.endswith(".parameter"):
        other = "a 'within' predicate" if key == "GEOMETRY" else "a 'geoDistance' predicate"
        raise PredicateError(f"{path}: {key} cannot be compared to a value; use {other}")
    return kind


def _check_value(value: Any, key: str, kind: str, path: str, *, ranges: bool, like: bool = False) -> None:
    if isinstance(value, bool):  # GBIF reads JSON scalars as their text
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        raise PredicateError(f"{path}: must be a string (or a number), got {_kind(value)}")
    if not value.strip():
        raise PredicateError(f"{path}: must not be empty")
    if like:
        return  # wildcards make a pattern, not a value of the key's kind
    if ranges and "," in value and kind in terms.COMPARABLE_KINDS:
        parts = value.split(",")
        if len(parts) != 2:
            raise PredicateError(f"{path}: a range is 'low,high' (either may be '*'), got {value!r}")
        for part in parts:
            if part.strip() != "*":
                _check_scalar(part.strip(), key, kind, path)
        return
    _check_scalar(value, key, kind, path)


def _check_scalar(value: str, key: str, kind: str, path: str) -> None:
    if kind == terms.INTEGER:
        if not _INTEGER.match(value):
            raise PredicateError(f"{path}: {key} takes a whole number, got {value!r}")
    elif kind == terms.DECIMAL:
        if not _NUMBER.match(value):
            raise PredicateError(f"{path}: {key} takes a number, got {value!r}")
    elif kind == terms.DATE:
        _check_date(value, key, path)
    elif kind == terms.BOOLEAN:
        if value.lower() not in ("true", "false"):
            raise PredicateError(f"{path}: {key} takes true or false, got {value!r}")
    elif kind == terms.UUID:
        if not _UUID.match(value):
            raise PredicateError(f"{path}: {key} takes a UUID such as "
                                 f"'50c9509d-22c7-4a22-a47d-8c48425ef4a7', got {value!r}")
    elif kind in terms.ENUMS:
        _check_enum(value, key, kind, path)


def _check_enum(value: str, key: str, kind: str, path: str) -> None:
    allowed = terms.ENUMS[kind]
    if kind == terms.COUNTRY:
        if value.upper() in terms.COUNTRIES:
            return
        hint = terms.COUNTRY_HINTS.get(value.upper())
        raise PredicateError(f"{path}: {value!r} is not an ISO 3166-1 alpha-2 country code"
                             + (f"; did you mean {hint!r}?" if hint else " (two letters, e.g. 'DK', 'GB')"))
    normal = _normal(value)
    if any(_normal(v) == normal for v in allowed):  # GBIF looks enums up leniently
        return
    hint = _suggest(value, allowed)
    raise PredicateError(f"{path}: {value!r} is not a {key} value{hint} (one of {', '.join(allowed)})")


def _check_date(value: str, key: str, path: str) -> None:
    match = _DATE.match(value)
    if match:
        year, month, day = (int(g) if g else None for g in match.groups())
        try:
            date(year, month or 1, day or 1)  # type: ignore[arg-type]
            return
        except ValueError:
            pass
    raise PredicateError(f"{path}: {key} takes an ISO 8601 date (yyyy, yyyy-MM or yyyy-MM-dd), got {value!r}")


def _check_wkt(geometry: Any, path: str) -> None:
    if not isinstance(geometry, str) or not geometry.strip():
        raise PredicateError(f"{path}: must be a WKT string such as 'POLYGON((-14 42, -7 26, 9 38, -14 42))'")
    text = geometry.strip()
    kind = re.match(r"^([A-Za-z]+)\s*\(", text)
    if not kind or kind.group(1).upper() not in _WKT_TYPES:
        raise PredicateError(f"{path}: not a WKT geometry GBIF accepts ({', '.join(_WKT_TYPES)}): "
                             f"{text[:60]!r}")
    if text.count("(") != text.count(")") or not text.endswith(")"):
        raise PredicateError(f"{path}: unbalanced parentheses in the WKT geometry")
    for ring in re.findall(r"\(([^()]*)\)", text):
        points = [p.split() for p in ring.split(",")]
        for point in points:
            if len(point) not in (2, 3) or not all(_NUMBER.match(c) for c in point):
                raise PredicateError(f"{path}: {' '.join(point)!r} is not a 'longitude latitude' pair")
        if kind.group(1).upper() in ("POLYGON", "MULTIPOLYGON", "LINEARRING"):
            if len(points) < 4 or [float(c) for c in points[0]] != [float(c) for c in points[-1]]:
                raise PredicateError(f"{path}: each polygon ring needs at least 4 points and must end "
                                     "where it starts")


def _check_geo_distance(node: dict, path: str) -> None:
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        text = str(node[name])
        if not _NUMBER.match(text) or not -bound <= float(text) <= bound:
            raise PredicateError(f"{path}.{name}: must be a number between -{bound:g} and {bound:g}, got {text!r}")
    distance = str(node["distance"]).strip()
    for unit in sorted(terms.DISTANCE_UNITS, key=len, reverse=True):
        if distance.endswith(unit):
            distance = distance[: -len(unit)].strip()
            break
    if not _NUMBER.match(distance) or float(distance) < 0:
        raise PredicateError(f"{path}.distance: must be a distance such as '5km' or '500m', "
                             f"got {node['distance']!r}")


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind!r}"


def _normal(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
