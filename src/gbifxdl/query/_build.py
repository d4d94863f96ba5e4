"""Builders: the common download predicate and request body from a few options."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gbifxdl import _terms as terms
from gbifxdl.errors import PredicateError
from gbifxdl.query._validate import _UUID, _normal, validate_predicate, validate_request

_YEARS = re.compile(r"^\s*(\d{1,4})?\s*(?:(-|\.\.|,)\s*(\d{1,4})?)?\s*$")


def parse_years(text: str) -> tuple[int | None, int | None]:
    """Return (first, last) year from '2015-2024', '2020', '2015-' or '-2010' (None = open end)."""
    match = _YEARS.match(str(text))
    if not match or (match.group(1) is None and match.group(3) is None):
        raise PredicateError(f"year: {text!r} is not a year or a range; write e.g. 2020, 2015-2024, "
                             "2015- (from 2015) or -2010 (up to 2010)")
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(3)) if match.group(3) else None
    if match.group(2) is None:
        last = first
    if first is not None and last is not None and first > last:
        raise PredicateError(f"year: {text!r} ends before it starts; write the earlier year first")
    return first, last


def build_predicate(
    *,
    taxon_keys: Sequence[int | str] = (),
    media_type: str | None = "StillImage",
    countries: Sequence[str] = (),
    years: str | int | tuple[int | None, int | None] | None = None,
    basis_of_record: Sequence[str] = (),
    licenses: Sequence[str] = (),
    dataset_keys: Sequence[str] = (),
    extra: Sequence[dict] = (),
) -> dict:
    """Return a GBIF predicate (validated) joining every given condition under one 'and'."""
    parts: list[dict] = []
    keys = _unique(_taxon_key(k) for k in taxon_keys)
    if keys:
        parts.append(_equals_or_in("TAXON_KEY", keys))
    if media_type is not None:
        parts.append({"type": "equals", "key": "MEDIA_TYPE", "value": _enum_value(media_type, terms.MEDIA_TYPE, "media type")})
    codes = _unique(_country(c) for c in countries)
    if codes:
        parts.append(_equals_or_in("COUNTRY", codes))
    if years is not None:
        parts.extend(_year_predicates(years))
    bases = _unique(_enum_value(b, terms.BASIS_OF_RECORD, "basis of record") for b in basis_of_record)
    if bases:
        parts.append(_equals_or_in("BASIS_OF_RECORD", bases))
    licence_values = _unique(_license(v) for v in licenses)
    if licence_values:
        parts.append({"type": "in", "key": "LICENSE", "values": licence_values})
    datasets = _unique(_dataset_key(d) for d in dataset_keys)
    if datasets:
        parts.append(_equals_or_in("DATASET_KEY", datasets))
    for i, predicate in enumerate(extra):
        validate_predicate(predicate, path=f"extra[{i}]")
        parts.append(predicate)
    if not parts:
        raise PredicateError("no condition given: such a download would hold every occurrence in GBIF; "
                             "give at least a taxon, a country, a year or a dataset")
    predicate = parts[0] if len(parts) == 1 else {"type": "and", "predicates": parts}
    validate_predicate(predicate)
    return predicate


def build_request(
    predicate: dict,
    *,
    creator: str,
    notification_addresses: Sequence[str] = (),
    send_notification: bool = False,
    format: str = "DWCA",
    description: str | None = None,
) -> dict:
    """Return a download request body for GBIF (validated), with the predicate inside."""
    request: dict[str, Any] = {
        "creator": creator,
        "notificationAddresses": list(notification_addresses),
        "sendNotification": bool(send_notification),
        "format": format,
        "predicate": predicate,
    }
    if description is not None:
        request["description"] = description
    if not isinstance(creator, str) or not creator.strip():
        raise PredicateError("creator: the request needs your GBIF username; set GBIF_USER or pass --user")
    validate_request(request)
    return request


def _equals_or_in(key: str, values: list[str]) -> dict:
    if len(values) == 1:
        return {"type": "equals", "key": key, "value": values[0]}
    return {"type": "in", "key": key, "values": values}


def _year_predicates(years: str | int | tuple[int | None, int | None]) -> list[dict]:
    first, last = parse_years(str(years)) if isinstance(years, (str, int)) else years
    if first is None and last is None:
        return []
    if first is not None and last is not None and first > last:
        raise PredicateError(f"year: {first}-{last} ends before it starts; write the earlier year first")
    if first == last:
        return [{"type": "equals", "key": "YEAR", "value": str(first)}]
    out = []
    if first is not None:
        out.append({"type": "greaterThanOrEquals", "key": "YEAR", "value": str(first)})
    if last is not None:
        out.append({"type": "lessThanOrEquals", "key": "YEAR", "value": str(last)})
    return out


def _taxon_key(key: int | str) -> str:
    text = str(key).strip()
    if isinstance(key, bool) or not text or not re.fullmatch(r"[0-9A-Za-z]+", text):
        raise PredicateError(f"taxon: {key!r} is not a taxon key; give a GBIF key such as 7017, "
                             "or a name to resolve with match_names / --taxon")
    return text


def _country(code: str) -> str:
    text = str(code).strip().upper()
    if text in terms.COUNTRIES:
        return text
    hint = terms.COUNTRY_HINTS.get(text)
    raise PredicateError(f"country: {code!r} is not an ISO 3166-1 alpha-2 code"
                         + (f"; did you mean {hint!r}?" if hint else " (two letters, e.g. DK, GB, US)"))


def _enum_value(value: str, kind: str, label: str) -> str:
    normal = _normal(str(value))
    for allowed in terms.ENUMS[kind]:
        if _normal(allowed) == normal:
            return allowed
    raise PredicateError(f"{label}: {value!r} is not one of {', '.join(terms.ENUMS[kind])}")


def _license(value: str) -> str:
    text = re.sub(r"[\s_]+", "-", str(value).strip().upper())
    found = terms.LICENSE_ALIASES.get(text) or terms.LICENSE_ALIASES.get(text.replace("-", "_"))
    if found is None:
        raise PredicateError(f"license: {value!r} is not a licence GBIF knows; use CC0, CC-BY or CC-BY-NC "
                             "(or GBIF's CC0_1_0, CC_BY_4_0, CC_BY_NC_4_0)")
    return found


def _dataset_key(value: str) -> str:
    text = str(value).strip().lower()
    if not _UUID.match(text):
        raise PredicateError(f"dataset key: {value!r} is not a GBIF dataset key (a UUID such as "
                             "'50c9509d-22c7-4a22-a47d-8c48425ef4a7')")
    return text


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(values))
