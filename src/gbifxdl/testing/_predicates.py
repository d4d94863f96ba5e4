"""GBIF download predicates evaluated against one synthetic occurrence, in three-valued logic.

A record is a mapping from predicate key (``COUNTRY``, ``TAXON_KEY``, ...) to its value: a
scalar, ``None`` for a null, or a frozenset for many-valued keys (``TAXON_KEY`` holds the
whole lineage, ``MEDIA_TYPE`` every media type). A key absent from the record is *unknown*:
the universe uses that to ask "could any occurrence with this taxon (or this country, ...)
match?" before drawing the rest, so narrow queries need few rejected draws.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Mapping

from gbifxdl.errors import PredicateError

# Keys the universe models; any other key (GADM_GID, RECORDED_BY, ...) is ignored, which
# GBIF's own semantics cannot contradict because the synthetic data has no such values.
KNOWN_KEYS = frozenset(
    "TAXON_KEY ACCEPTED_TAXON_KEY SPECIES_KEY GENUS_KEY FAMILY_KEY ORDER_KEY CLASS_KEY "
    "PHYLUM_KEY KINGDOM_KEY COUNTRY YEAR MONTH BASIS_OF_RECORD MEDIA_TYPE LICENSE DATASET_KEY "
    "HAS_COORDINATE HAS_GEOSPATIAL_ISSUE OCCURRENCE_STATUS PUBLISHING_COUNTRY".split()
)

# Results: True, False, None (unknown), or IGNORED (the predicate says nothing we model).
IGNORED = "ignored"
_COMPARISONS = {
    "lessThan": lambda a, b: a < b,
    "lessThanOrEquals": lambda a, b: a <= b,
    "greaterThan": lambda a, b: a > b,
    "greaterThanOrEquals": lambda a, b: a >= b,
}


def matches(predicate: Mapping[str, Any] | None, record: Mapping[str, Any]) -> bool:
    """Return whether a fully known record satisfies the predicate (None matches all)."""
    return predicate is None or evaluate(predicate, record) is not False


def evaluate(predicate: Mapping[str, Any], record: Mapping[str, Any], path: str = "$") -> Any:
    """Return True, False, None (depends on keys absent from ``record``) or ``IGNORED``."""
    if not isinstance(predicate, Mapping):
        raise PredicateError(f"{path}: a predicate must be a JSON object, got {type(predicate).__name__}")
    kind = predicate.get("type")
    if kind in ("and", "or"):
        children = predicate.get("predicates")
        if not isinstance(children, list) or not children:
            raise PredicateError(f"{path}.predicates: '{kind}' needs a non-empty list of predicates")
        results = [evaluate(c, record, f"{path}.predicates[{i}]") for i, c in enumerate(children)]
        return _combine(kind, [r for r in results if r is not IGNORED])
    if kind == "not":
        inner = evaluate(predicate.get("predicate"), record, f"{path}.predicate")
        return inner if inner is None or inner is IGNORED else not inner
    if kind in ("within", "geoDistance"):
        return IGNORED  # no geometry in the synthetic universe: treated as matching
    if kind in ("isNull", "isNotNull"):
        key = _key(predicate, path, field="parameter")
        if key not in KNOWN_KEYS:
            return IGNORED
        if key not in record:
            return None
        value = record[key]
        empty = value is None or value == frozenset()
        return empty if kind == "isNull" else not empty
    if kind in ("equals", "in", "like") or kind in _COMPARISONS:
        key = _key(predicate, path)
        if key not in KNOWN_KEYS:
            return IGNORED
        if key not in record:
            return None
        return _leaf(kind, predicate, record[key], path)
    raise PredicateError(f"{path}.type: unknown predicate type {kind!r}")


def _combine(kind: str, results: list[Any]) -> Any:
    """Return the three-valued and/or of child results (IGNORED if every child was)."""
    if not results:
        return IGNORED
    decisive = kind == "or"  # True decides an 'or', False decides an 'and'
    if decisive in results:
        return decisive
    return None if None in results else not decisive


def _key(predicate: Mapping[str, Any], path: str, field: str = "key") -> str:
    """Return the predicate's key, checked to be a string."""
    key = predicate.get(field)
    if not isinstance(key, str) or not key:
        raise PredicateError(f"{path}.{field}: expected a key such as 'COUNTRY', got {key!r}")
    return key.upper()


def _leaf(kind: str, predicate: Mapping[str, Any], value: Any, path: str) -> bool:
    """Return whether a known record value satisfies one comparison predicate."""
    if kind == "in":
        wanted = predicate.get("values")
        if not isinstance(wanted, list) or not wanted:
            raise PredicateError(f"{path}.values: 'in' needs a non-empty list of values")
    else:
        if "value" not in predicate:
            raise PredicateError(f"{path}.value: '{kind}' needs a value")
        wanted = [predicate["value"]]
    values = value if isinstance(value, frozenset) else (value,)
    for v in values:
        if v is None:
            continue
        for w in wanted:
            if kind == "like":
                if fnmatch.fnmatchcase(str(v).lower(), str(w).lower()):
                    return True
            elif kind in _COMPARISONS:
                if isinstance(v, int) and not isinstance(v, bool):
                    if _COMPARISONS[kind](v, _number(w, path)):
                        return True
                elif _COMPARISONS[kind](str(v), str(w)):
                    return True
            elif _equals(v, w, path):
                return True
    return False


def _equals(value: Any, wanted: Any, path: str) -> bool:
    """Return whether a record value equals a predicate value (ranges 'a,b' for numbers)."""
    if isinstance(value, bool):
        return str(wanted).lower() == ("true" if value else "false")
    if isinstance(value, int):
        text = str(wanted)
        if "," in text:  # GBIF accepts numeric ranges "1990,2000", "*" for an open end
            low, high = (part.strip() for part in text.split(",", 1))
            return (low in ("", "*") or value >= _number(low, path)) and (
                high in ("", "*") or value <= _number(high, path)
            )
        return value == _number(text, path)
    return str(value).lower() == str(wanted).lower()


def _number(text: Any, path: str) -> int:
    """Return a predicate value as an integer, or raise PredicateError."""
    try:
        return int(float(str(text)))
    except ValueError:
        raise PredicateError(f"{path}.value: expected a number, got {text!r}") from None
