"""The search route: the selection from GBIF's occurrence search API, without an account.

``select_from_search(predicate, output, settings)`` pages ``GET /occurrence/search`` for the
parameters equivalent to ``predicate`` (only what :func:`gbifxdl.query.build_predicate`
writes: taxa, media type, countries, years, basis of record, licences, datasets) and writes
the same ``selection.parquet`` a download of that query gives: the pages become a small
Darwin Core Archive (the selection's columns only) that :func:`gbifxdl.select.select` reads,
so columns, types, de-duplication, the one-image-per-occurrence draw and the caps are the
very same code. Its provenance says ``source: search``, the search URL and the datasets'
occurrence counts; there is no download key and no DOI (``gbifxdl derive`` gives one).

- Uncapped: one request asks the count; over GBIF's 100,000-record ceiling the query is
  refused in one line (use a download, or cap per class); else every page of 300 is read.
- Capped (``max_per_class`` with ``class_column="speciesKey"``): the species facet lists the
  species, and each species is paged (``speciesKey=K``, pages of ``2 * cap + 10`` records, at
  most 300) only until it holds ``cap`` images, in GBIF's order for that species, species by
  ascending key: the cap is then drawn with the seed among those fetched,
  as select does. So the capped route keeps the first occurrences GBIF lists for each
  species, not a draw over all of them as a download does; a species whose first images
  repeat URLs of another class may come out a little under its cap.
- 429 answers are waited out (``Retry-After``) and asked again: no page is lost.
- Resumable: each page is written as ``<output>.search/pages/<name>.json`` (a temporary
  name, then renamed) and a rerun reads the pages it has before asking for more; the
  folder goes once the selection is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from gbifxdl._gbif_http import ApiSettings, check, resolve_api_url, send
from gbifxdl._io import atomic_path, write_text_atomic
from gbifxdl.errors import SelectionError
from gbifxdl.select.settings import MEDIA_COLUMNS, OCCURRENCE_COLUMNS, SelectSettings
from gbifxdl.select.summary import SelectSummary

__all__ = ["CEILING", "PAGE_LIMIT", "SearchRefused", "search_count", "search_params", "select_from_search"]

log = logging.getLogger(__name__)

PAGE_LIMIT = 300  # GBIF clamps larger limits to this
CEILING = 100_000  # GBIF answers 400 past offset + limit = 100,000
FACET_PAGE = 1000  # species per facet request
# predicate key -> search parameter, for the conditions build_predicate writes
_PARAMS = {"TAXON_KEY": "taxonKey", "MEDIA_TYPE": "mediaType", "COUNTRY": "country", "BASIS_OF_RECORD": "basisOfRecord",
           "LICENSE": "license", "DATASET_KEY": "datasetKey"}
# search API patience: a 429 is waited out, however often it comes
SEARCH_API_SETTINGS = ApiSettings(retries=30, backoff=1.0, max_backoff=60.0)


class SearchRefused(SelectionError):
    """The query cannot go through the search API (too large, or not expressible)."""


def search_params(predicate: dict) -> list[tuple[str, str]]:
    """Return the search parameters equivalent to a predicate of :func:`build_predicate`'s form.

    Raises :class:`SearchRefused` for what the search parameters cannot say (``or``, ``not``,
    geometry, other keys): such a query needs a download.
    """
    parts = predicate.get("predicates", []) if predicate.get("type") == "and" else [predicate]
    params: list[tuple[str, str]] = []
    low = high = None
    for part in parts:
        kind, key = part.get("type"), str(part.get("key", "")).upper()
        if kind == "equals" and key == "YEAR":
            low = high = str(part["value"])
        elif kind == "greaterThanOrEquals" and key == "YEAR":
            low = str(part["value"])
        elif kind == "lessThanOrEquals" and key == "YEAR":
            high = str(part["value"])
        elif kind == "equals" and key in _PARAMS:
            params.append((_PARAMS[key], str(part["value"])))
        elif kind == "in" and key in _PARAMS:
            params.extend((_PARAMS[key], str(v)) for v in part["values"])
        else:
            raise SearchRefused(
                f"the search route takes only taxa, media type, countries, years, basis of record, licences and "
                f"datasets; this query has {json.dumps(part)[:120]}: use a download (drop --source search)")
    if low is not None or high is not None:
        params.append(("year", low if low == high else f"{low or '*'},{high or '*'}"))
    return params


def search_count(predicate: dict, *, api_url: str | None = None, api_settings: ApiSettings = SEARCH_API_SETTINGS) -> int:
    """Return how many occurrences GBIF's search API holds for ``predicate`` (one request, no records).

    Raises :class:`SearchRefused` for a predicate the search parameters cannot say.
    """
    url = resolve_api_url(api_url) + "/occurrence/search"
    response = send("GET", url, params=search_params(predicate) + [("limit", "0")], settings=api_settings)
    check(response, what="count the occurrences of the search")
    return int(response.json()["count"])


@dataclass
class _Pages:
    """The page files of one search, in a folder that survives a killed run."""

    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / "pages" / f"{name}.json"

    def read(self, name: str) -> dict[str, Any] | None:
        path = self.path(name)
        return json.loads(path.read_text()) if path.is_file() else None

    def write(self, name: str, body: dict[str, Any]) -> None:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(body))


class _Client:
    def __init__(self, api_url: str | None, settings: ApiSettings, pages: _Pages) -> None:
        self.url = resolve_api_url(api_url) + "/occurrence/search"
        self.settings = settings
        self.pages = pages
        self.requests = 0
        self.emulator: str | None = None

    def get(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        self.requests += 1
        response = send("GET", self.url, params=params, settings=self.settings)
        check(response, what="search occurrences")
        # gbifxdl's GBIF emulator says so (made-up records: derive must not send them to GBIF)
        if response.headers.get("X-Gbifxdl-Emulator") and self.emulator is None:
            self.emulator = response.headers["X-Gbifxdl-Emulator"]
            (self.pages.folder / "emulator.txt").write_text(self.emulator)  # for a resumed run
        return response.json()

    def page(self, name: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        """Return a page: from its file when an earlier run wrote it, else from GBIF (then saved)."""
        body = self.pages.read(name)
        if body is None:
            body = self.get(params)
            self.pages.write(name, body)
        return body


def _images(occurrence: dict[str, Any], settings: SelectSettings) -> int:
    """Return how many images select could keep of this occurrence (its media with a URL of the type)."""
    wanted = (settings.media_type or "").lower()
    n = sum(1 for m in occurrence.get("media") or [] if m.get("identifier") and (
        not wanted or str(m.get("type", "")).lower() == wanted
        or (wanted == "stillimage" and not m.get("type") and str(m.get("format", "")).startswith("image/"))))
    return min(n, 1) if settings.one_per_occurrence else n


def _all_pages(client: _Client, params: list[tuple[str, str]]) -> Iterator[str]:
    head = client.get(params + [("limit", "0")])
    count = int(head["count"])
    if count > CEILING:
        raise SearchRefused(
            f"the search API pages at most {CEILING:,} records and this query matches {count:,}: "
            "use a download (drop --source search), or cap per class (--max-per-class)")
    offset = 0
    while True:
        name = f"all-{offset:07d}"
        body = client.page(name, params + [("offset", str(offset)), ("limit", str(PAGE_LIMIT))])
        yield name
        offset += PAGE_LIMIT
        if body.get("endOfRecords") or not body.get("results") or offset >= CEILING:
            return


def _species(client: _Client, params: list[tuple[str, str]]) -> list[int]:
    keys: list[int] = []
    offset = 0
    while True:
        name = f"facet-{offset:07d}"
        body = client.page(name, params + [("limit", "0"), ("facet", "speciesKey"),
                                           ("facetLimit", str(FACET_PAGE)), ("facetOffset", str(offset))])
        counts = next((f["counts"] for f in body.get("facets", []) if f.get("field") == "SPECIES_KEY"), [])
        keys.extend(int(c["name"]) for c in counts)
        if len(counts) < FACET_PAGE:
            return keys
        offset += FACET_PAGE


def _capped_pages(client: _Client, params: list[tuple[str, str]], settings: SelectSettings) -> Iterator[str]:
    cap = int(settings.max_per_class or 0)
    size = species_page(cap)
    for key in sorted(_species(client, params)):
        have, offset = 0, 0
        while have < cap and offset < CEILING:
            limit = min(size, CEILING - offset)
            name = f"species-{key}-{offset:07d}"
            body = client.page(name, params + [("speciesKey", str(key)), ("offset", str(offset)), ("limit", str(limit))])
            yield name
            have += sum(_images(o, settings) for o in body.get("results", []))
            offset += limit
            if body.get("endOfRecords") or not body.get("results"):
                break


def species_page(cap: int) -> int:
    """Return the page size for one species under a cap: twice the cap and 10 more (some
    occurrences have no usable image, some URLs repeat), at most GBIF's 300."""
    return min(PAGE_LIMIT, 2 * cap + 10)


_CORE = ("gbifID", *OCCURRENCE_COLUMNS[1:])
_DWC = "http://rs.tdwg.org/dwc/terms/"
_TERMS = {"gbifID": "http://rs.gbif.org/terms/1.0/gbifID", "type": "http://purl.org/dc/terms/type",
          **{n: f"http://purl.org/dc/terms/{n}" for n in ("format", "identifier", "references", "created", "creator",
                                                           "publisher", "license", "rightsHolder")}}
_MEDIA_ROW = "http://rs.gbif.org/terms/1.0/Multimedia"


def _meta_xml() -> str:
    attributes = ('encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" '
                  'ignoreHeaderLines="1"')

    def fields(names: tuple[str, ...]) -> str:
        return "\n".join(f'    <field index="{i}" term="{_TERMS.get(n, _DWC + n)}"/>' for i, n in enumerate(names))

    media = ("gbifID", *MEDIA_COLUMNS)
    return (f'<archive xmlns="http://rs.tdwg.org/dwc/text/">\n'
            f'  <core {attributes} rowType="{_DWC}Occurrence">\n    <files><location>occurrence.txt</location></files>\n'
            f'    <id index="0"/>\n{fields(_CORE)}\n  </core>\n'
            f'  <extension {attributes} rowType="{_MEDIA_ROW}">\n    <files><location>multimedia.txt</location></files>\n'
            f'    <coreid index="0"/>\n{fields(media)}\n  </extension>\n</archive>\n')


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return " ".join(text.replace("\t", " ").splitlines()) if ("\t" in text or "\n" in text or "\r" in text) else text


def _write_archive(pages: _Pages, names: list[str], path: Path) -> tuple[int, Counter[str]]:
    """Write the pages' occurrences and media as a DwC-A at ``path``; return (occurrences, per dataset)."""
    seen: set[int] = set()
    datasets: Counter[str] = Counter()
    # two members written one after the other: media rows are gathered in a spool file first
    spool = path.with_name(f"{path.name}.media-{os.getpid()}")
    try:
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive, \
                spool.open("w", encoding="utf-8") as media:
            media.write("\t".join(("gbifID", *MEDIA_COLUMNS)) + "\n")
            with archive.open("occurrence.txt", "w", force_zip64=True) as core:
                core.write(("\t".join(_CORE) + "\n").encode())
                for name in names:
                    body = pages.read(name) or {}
                    rows = []
                    for occ in body.get("results", []):
                        key = int(occ["key"])
                        if key in seen:  # a record listed twice (pages of a changing index)
                            continue
                        seen.add(key)
                        datasets[str(occ.get("datasetKey", ""))] += 1
                        rows.append("\t".join(_cell(key if c == "gbifID" else occ.get(c)) for c in _CORE))
                        for m in occ.get("media") or []:
                            media.write("\t".join([str(key), *(_cell(m.get(c)) for c in MEDIA_COLUMNS)]) + "\n")
                    if rows:
                        core.write(("\n".join(rows) + "\n").encode())
            media.close()
            archive.write(spool, "multimedia.txt")
            archive.writestr("meta.xml", _meta_xml())
    finally:
        spool.unlink(missing_ok=True)
    return len(seen), datasets


def select_from_search(
    predicate: dict,
    output: str | Path,
    settings: SelectSettings = SelectSettings(),
    *,
    api_url: str | None = None,
    api_settings: ApiSettings = SEARCH_API_SETTINGS,
    progress: bool = True,
) -> SelectSummary:
    """Return the summary of selecting the images of ``predicate`` from GBIF's search API into ``output``.

    Writes the same table as :func:`gbifxdl.select.select` over a download of the same
    query (see the module's notes for the capped route). Raises :class:`SearchRefused`
    (over the 100,000 ceiling uncapped, or a predicate the search parameters cannot say),
    GBIF's typed errors, or select's.
    """
    from gbifxdl.select import select  # the package imports this module lazily

    output = Path(output)
    params = search_params(predicate)
    folder = output.with_name(f".{output.name}.search")
    query = {"params": params, "cap": settings.max_per_class, "class_column": settings.class_column,
             "media_type": settings.media_type, "one_per_occurrence": settings.one_per_occurrence}
    marker = folder / "query.json"
    if marker.is_file() and json.loads(marker.read_text()) != json.loads(json.dumps(query)):
        shutil.rmtree(folder)  # pages of another query: not this one's
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(query))
    pages = _Pages(folder)
    client = _Client(api_url, api_settings, pages)
    capped = bool(settings.max_per_class) and settings.class_column == "speciesKey"
    names = list(_capped_pages(client, params, settings) if capped else _all_pages(client, params))
    archive = folder / "search.zip"
    n_occurrences, datasets = _write_archive(pages, names, archive)
    searched = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    provenance = {
        "source": "search", "download_key": None, "doi": None, "citation": None, "archive": None,
        "query": f"{client.url}?{urlencode(params)}", "created": searched,
        "search": {"params": [list(p) for p in params], "pages": len(names), "occurrences": n_occurrences,
                   "capped_per_species": capped, "datasets": dict(sorted(datasets.items(), key=lambda kv: (-kv[1], kv[0])))},
    }
    if client.emulator is None and (pages.folder / "emulator.txt").is_file():  # every page read from files
        client.emulator = (pages.folder / "emulator.txt").read_text()
    if client.emulator:
        provenance["emulator"] = client.emulator
    summary = select(archive, output, settings, progress=False, provenance=provenance)
    shutil.rmtree(folder, ignore_errors=True)
    if progress:
        print(f"search: {len(names)} pages, {n_occurrences:,} occurrences from {client.url}", file=sys.stderr)
        print(summary.to_text(), file=sys.stderr)
    return summary
