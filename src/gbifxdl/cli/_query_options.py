"""Click options that build a GBIF predicate, shared by ``gbifxdl post`` and ``gbifxdl run``.

``--taxon`` takes names or GBIF keys; names go through GBIF's species match, and each
resolution is shown on stderr so the user sees which taxon a name became.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# option name -> does it count as "a builder option was given"
_BUILDER_OPTIONS = ("taxon", "country", "year", "basis_of_record", "license", "dataset_key")


def query_options(f: F) -> F:
    """Return ``f`` with the predicate-builder options added (--taxon, --country, --year ...)."""
    options = [
        click.option("--taxon", "taxon", multiple=True, metavar="NAME|KEY",
                     help="Taxon name or GBIF taxon key; repeat or comma-separate "
                          "(e.g. --taxon Nymphalidae --taxon 'Aglais io,1898286')."),
        click.option("--country", "country", multiple=True, metavar="CODES",
                     help="ISO 3166-1 alpha-2 country codes, comma-separated (e.g. DK,GB)."),
        click.option("--year", "year", metavar="RANGE",
                     help="A year or a range: 2020, 2015-2024, 2015- (from), -2010 (up to)."),
        click.option("--basis-of-record", "basis_of_record", multiple=True, metavar="BASIS",
                     help="e.g. HUMAN_OBSERVATION,PRESERVED_SPECIMEN (comma-separated)."),
        click.option("--license", "license", multiple=True, metavar="LICENCE",
                     help="CC0, CC-BY, CC-BY-NC (or CC0_1_0, CC_BY_4_0, CC_BY_NC_4_0), comma-separated."),
        click.option("--dataset-key", "dataset_key", multiple=True, metavar="UUID",
                     help="GBIF dataset keys, comma-separated."),
        click.option("--media-type", "media_type", default="StillImage", show_default=True,
                     metavar="TYPE", help="StillImage, MovingImage, Sound, InteractiveResource, or 'any'."),
        click.option("--lenient", "lenient", is_flag=True,
                     help="Accept fuzzy and higher-rank matches of taxon names instead of failing."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def predicate_from_options(api_url: str | None, **options: Any) -> dict | None:
    """Return the predicate the builder options describe, or None if none was given.

    Other keyword arguments (a command's remaining options) are ignored, so a command can
    pass all of its parameters. The media type alone does not make a predicate.
    """
    return predicate_and_names(api_url, **options)[0]


def predicate_and_names(api_url: str | None, known: Mapping[str, int] | None = None, **options: Any
                        ) -> tuple[dict | None, dict[str, int]]:
    """Return the predicate the builder options describe (None if none was given) and the taxon names
    in it with the keys GBIF's species match gave them. A name in ``known`` (an earlier run's) is not
    matched again: a finished run, run again, asks GBIF nothing."""
    from gbifxdl.query import build_predicate, resolve_taxa

    if not any(options.get(name) for name in _BUILDER_OPTIONS):
        return None, {}
    known = known or {}
    taxa = _split(options.get("taxon"))
    plain = lambda t: " ".join(t.split())  # noqa: E731 - how the species match names a name
    ask = [t for t in taxa if not t.isdigit() and plain(t) not in known]
    _, matches = resolve_taxa(ask, api_url=api_url, strict=not options.get("lenient")) if ask else ([], [])
    for match in matches:
        line = f"taxon {match.name!r} -> {match.taxon_key} ({match.scientific_name}, {match.rank})"
        click.echo(line + (f": {match.note}" if match.note else ""), err=True)
    names = {plain(t): known[plain(t)] for t in taxa if plain(t) in known}
    names.update({m.name: int(m.taxon_key) for m in matches if m.taxon_key is not None})
    keys = [int(t) if t.isdigit() else names[plain(t)] for t in taxa]
    media_type = options.get("media_type", "StillImage")
    return build_predicate(
        taxon_keys=keys,
        media_type=None if media_type is None or str(media_type).lower() in ("any", "none", "") else media_type,
        countries=_split(options.get("country")),
        years=str(options["year"]) if options.get("year") not in (None, "") else None,
        basis_of_record=_split(options.get("basis_of_record")),
        licenses=_split(options.get("license")),
        dataset_keys=_split(options.get("dataset_key")),
    ), names


def _split(values: str | Iterable[str] | None) -> list[str]:
    if not values:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]
