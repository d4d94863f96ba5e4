"""Taxon names to GBIF keys, through GBIF's species match (v1 and v2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gbifxdl.errors import ConfigError, GbifError
from gbifxdl._gbif_http import ApiSettings, check, resolve_api_url, send

_RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
# matches that may not be the taxon the user meant: refused unless strict=False
_UNSURE = ("FUZZY", "HIGHERRANK", "VARIANT")


class NameMatchError(ConfigError):
    """A taxon name has no match, or only an uncertain one (fuzzy, higher rank).

    ``matched``: the names that did match, with their matches (what a user still wants to see).
    """

    def __init__(self, message: str, matched: Sequence[NameMatch] = ()) -> None:
        super().__init__(message)
        self.matched = list(matched)


@dataclass(frozen=True)
class NameMatch:
    """What GBIF's species match answered for one name."""

    name: str                       # the name as asked
    key: int | str | None           # the matched usage key (a synonym's own key for synonyms)
    canonical_name: str | None
    rank: str | None
    match_type: str                 # EXACT, FUZZY, HIGHERRANK, VARIANT or NONE
    confidence: int | None
    status: str | None              # ACCEPTED, SYNONYM, DOUBTFUL ...
    accepted_key: int | str | None  # the accepted taxon's key (same as key unless a synonym)
    scientific_name: str | None = None
    accepted_name: str | None = None
    classification: tuple[tuple[str, str, int | str], ...] = ()  # (rank, name, key) kingdom..
    note: str | None = None         # what the user should know (synonym resolved, fuzzy ...)

    @property
    def taxon_key(self) -> int | str | None:
        """Return the key to put in a predicate: the accepted key, else the matched key."""
        return self.accepted_key if self.accepted_key is not None else self.key


def match_names(
    names: Sequence[str],
    *,
    api_url: str | None = None,
    version: int = 1,
    strict: bool = True,
    settings: ApiSettings | None = None,
) -> list[NameMatch]:
    """Return one NameMatch per name (in order); raise NameMatchError for unmatched or unsure names."""
    if version not in (1, 2):
        raise ConfigError(f"species match version must be 1 or 2, not {version!r}")
    base = resolve_api_url(api_url)
    if version == 1:
        url, param = f"{base}/species/match", "name"
    else:
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        url, param = f"{root}/v2/species/match", "scientificName"
    cache: dict[str, NameMatch] = {}
    results: list[NameMatch] = []
    for name in names:
        clean = " ".join(str(name).split())
        if not clean:
            raise NameMatchError("taxon name: an empty name was given; remove it or write a name")
        if clean not in cache:
            parse = parse_v1 if version == 1 else parse_v2
            cache[clean] = parse(clean, _get_json(url, {param: clean}, settings))
        results.append(cache[clean])
    each = [_problem(m, strict) for m in results]
    problems = [p for p in dict.fromkeys(each) if p]
    if problems:
        raise NameMatchError("; ".join(problems), [m for m, p in zip(results, each) if not p])
    return results


def parse_v1(name: str, body: dict[str, Any]) -> NameMatch:
    """Return the NameMatch of a v1 /species/match answer body."""
    match_type = str(body.get("matchType") or "NONE")
    key = body.get("usageKey") if match_type != "NONE" else None
    synonym = bool(body.get("synonym")) or body.get("status") == "SYNONYM"
    accepted = body.get("acceptedUsageKey") if synonym else key
    classification = tuple(
        (rank.upper(), body[rank], body[f"{rank}Key"])
        for rank in _RANKS
        if body.get(rank) and body.get(f"{rank}Key") is not None
    )
    # v1 gives no accepted name, but the rank fields describe the accepted taxon
    accepted_name = next((n for _, n, k in classification if k == accepted), None) if synonym else None
    match = NameMatch(
        name=name, key=key, canonical_name=body.get("canonicalName"), rank=body.get("rank"),
        match_type=match_type, confidence=body.get("confidence"), status=body.get("status"),
        accepted_key=accepted, scientific_name=body.get("scientificName"),
        accepted_name=accepted_name if synonym else body.get("scientificName"),
        classification=classification,
    )
    return _with_note(match, body.get("note"))


def parse_v2(name: str, body: dict[str, Any]) -> NameMatch:
    """Return the NameMatch of a v2 /species/match answer body (string keys made int when numeric)."""
    diagnostics = body.get("diagnostics") or {}
    match_type = str(diagnostics.get("matchType") or "NONE")
    usage = body.get("usage") or {}
    accepted_usage = body.get("acceptedUsage") or {}
    synonym = bool(body.get("synonym")) or usage.get("status") == "SYNONYM"
    key = _key(usage.get("key")) if usage and match_type != "NONE" else None
    accepted = _key(accepted_usage.get("key")) if synonym else key
    classification = tuple(
        (str(c.get("rank")), str(c.get("name")), _key(c.get("key")))  # type: ignore[misc]
        for c in body.get("classification") or () if c.get("key") is not None
    )
    match = NameMatch(
        name=name, key=key, canonical_name=usage.get("canonicalName"), rank=usage.get("rank"),
        match_type=match_type, confidence=diagnostics.get("confidence"), status=usage.get("status"),
        accepted_key=accepted, scientific_name=usage.get("name"),
        accepted_name=(accepted_usage.get("name") if synonym else usage.get("name")),
        classification=classification,
    )
    return _with_note(match, diagnostics.get("note"))


def _with_note(match: NameMatch, gbif_note: Any) -> NameMatch:
    note = None
    if match.match_type == "NONE":
        note = f"no match for {match.name!r}" + (f" ({gbif_note})" if gbif_note else "")
    elif match.status == "SYNONYM" or (match.accepted_key is not None and match.accepted_key != match.key):
        note = (f"{match.name!r} is a synonym ({match.key}) of {match.accepted_name or 'an accepted taxon'}; "
                f"using the accepted key {match.accepted_key}")
    elif match.match_type != "EXACT":
        note = (f"{match.name!r} is only a {match.match_type} match for {match.scientific_name!r} "
                f"({match.rank}, key {match.key}, confidence {match.confidence})")
    if note is None:
        return match
    return replace(match, note=note)


def _problem(match: NameMatch, strict: bool) -> str | None:
    if match.match_type == "NONE" or match.key is None:
        return (f"taxon {match.name!r}: GBIF found no match; check the spelling, or give the GBIF "
                "taxon key instead (search https://www.gbif.org/species)")
    if match.status == "SYNONYM" and match.accepted_key is None:
        return (f"taxon {match.name!r}: a synonym whose accepted taxon GBIF did not give; "
                "give the accepted taxon's key instead")
    if strict and match.match_type in _UNSURE:
        what = "a higher-rank taxon" if match.match_type == "HIGHERRANK" else "a similar name"
        return (f"taxon {match.name!r}: only {what} matched ({match.scientific_name!r}, {match.rank}, "
                f"key {match.key}, {match.match_type}); use that exact name or key if it is what you "
                "meant, or accept uncertain matches (--lenient; strict=False in Python)")
    return None


def _key(value: Any) -> int | str | None:
    if value is None:
        return None
    text = str(value)
    return int(text) if text.isdigit() else text


def _get_json(url: str, params: dict[str, str], settings: ApiSettings | None) -> dict[str, Any]:
    """Return the JSON object GBIF answers to GET url (retries and typed errors from gbifxdl._gbif_http)."""
    response = check(send("GET", url, params=params, settings=settings), what="match taxon names")
    try:
        body = response.json()
    except ValueError as exc:
        raise GbifError(f"GBIF species match at {url} did not answer JSON ({exc}); check --api-url") from exc
    if not isinstance(body, dict):
        raise GbifError(f"GBIF species match at {url} answered {type(body).__name__}, not an object; "
                        "check --api-url")
    return body
