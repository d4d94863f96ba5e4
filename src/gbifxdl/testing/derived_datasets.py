"""The emulated GBIF registry's derived-dataset service (``/v1/derivedDataset``).

As GBIF documents it: ``POST /derivedDataset`` with HTTP Basic authentication and a JSON
body (``title``, ``description``, ``sourceUrl`` and ``relatedDatasets`` — datasetKey or
dataset DOI to a positive record count — required; ``originalDownloadDOI`` and
``registrationDate`` optional) answers 201 with the registered record: a new
``10.15468/dd.xxxxxx`` DOI, its citation, and who and when. 401 without valid
credentials, 400 naming each invalid field. ``GET /derivedDataset/{doi}``,
``.../{doi}/citation`` and ``.../{doi}/datasets`` read a record back.
"""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from gbifxdl.testing._gbif_handlers import STATE, _authenticated_user, _claimed_user, _unauthorized
from gbifxdl.testing._gbif_state import gbif_time

__all__ = ["DERIVED", "DerivedRegistry", "add_derived_dataset_routes"]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.I)
_FIELDS = frozenset({"title", "description", "sourceUrl", "originalDownloadDOI", "registrationDate", "relatedDatasets"})


@dataclass
class DerivedRegistry:
    """The derived datasets registered so far, by DOI."""

    seed: int = 0
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_doi(self) -> str:
        rng = random.Random(f"derived-{self.seed}-{len(self.records)}")
        return "10.15468/dd." + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6))


DERIVED = web.AppKey("derived", DerivedRegistry)


def _problems(body: Any) -> list[str]:
    """Return GBIF-like reasons why a derived-dataset request is invalid (empty when valid)."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [f"unknown field {name!r}" for name in body if name not in _FIELDS]
    for name in ("title", "description"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            problems.append(f"{name}: must not be blank")
    url = urlparse(body.get("sourceUrl") or "") if isinstance(body.get("sourceUrl"), str) else None
    if url is None or url.scheme not in ("http", "https") or not url.netloc:
        problems.append("sourceUrl: must be a valid http(s) URI")
    if body.get("originalDownloadDOI") is not None and not _DOI.match(str(body["originalDownloadDOI"])):
        problems.append("originalDownloadDOI: invalid DOI")
    related = body.get("relatedDatasets")
    if not isinstance(related, dict) or not related:
        problems.append("relatedDatasets: must not be empty")
    else:
        for key, count in related.items():
            if not (_UUID.match(key) or _DOI.match(key)):
                problems.append(f"relatedDatasets: {key!r} is neither a datasetKey nor a dataset DOI")
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                problems.append(f"relatedDatasets: the count of {key} must be a positive integer")
    return problems


async def post_derived(request: web.Request) -> web.Response:
    """POST /v1/derivedDataset: register a derived dataset; 201 with its record."""
    user = _authenticated_user(request)
    if user is None:
        return _unauthorized(_claimed_user(request))
    try:
        body = json.loads(await request.text())
    except ValueError:
        return web.Response(status=400, text="Unable to parse the request body as JSON")
    problems = _problems(body)
    if problems:
        return web.Response(status=400, text="; ".join(problems))
    registry = request.app[DERIVED]
    now = datetime.now(timezone.utc)
    with registry.lock:
        doi = registry.new_doi()
        record = {
            "doi": doi, "originalDownloadDOI": _DOI.match(body["originalDownloadDOI"]).group(1)  # type: ignore[union-attr]
            if body.get("originalDownloadDOI") else None,
            "title": body["title"], "description": body["description"], "sourceUrl": body["sourceUrl"],
            "citation": f"{body['title']}. GBIF.org ({now.day} {now:%B %Y}) Filtered export of GBIF occurrence data "
                        f"https://doi.org/{doi}",
            "created": gbif_time(now), "modified": gbif_time(now), "createdBy": user, "modifiedBy": user,
            "registrationDate": body.get("registrationDate") or gbif_time(now),
        }  # fmt: skip
        registry.records[doi] = record
        registry.datasets[doi] = dict(body["relatedDatasets"])
    return web.json_response(record, status=201)


def _find(request: web.Request) -> tuple[str, dict[str, Any]] | None:
    doi = f"{request.match_info['prefix']}/{request.match_info['suffix']}"
    record = request.app[DERIVED].records.get(doi)
    return (doi, record) if record else None


async def get_derived(request: web.Request) -> web.Response:
    """GET /v1/derivedDataset/{doi}[/citation|/datasets]."""
    found = _find(request)
    if found is None:
        return web.Response(status=404, text="Not Found")
    doi, record = found
    what = request.match_info.get("what")
    if what == "citation":
        return web.Response(text=record["citation"])
    if what == "datasets":
        used = request.app[DERIVED].datasets[doi]
        results = [{"datasetKey": k, "numberRecords": n} for k, n in used.items()]
        return web.json_response({"offset": 0, "limit": len(results), "endOfRecords": True,
                                  "count": len(results), "results": results})  # fmt: skip
    return web.json_response(record)


def add_derived_dataset_routes(app: web.Application) -> None:
    """Register the derived-dataset service under ``/v1`` (the app must hold the emulator STATE)."""
    app[DERIVED] = DerivedRegistry(seed=app[STATE].seed)
    app.router.add_post("/v1/derivedDataset", post_derived)
    app.router.add_get("/v1/derivedDataset/{prefix}/{suffix}", get_derived)
    app.router.add_get("/v1/derivedDataset/{prefix}/{suffix}/{what:citation|datasets}", get_derived)
