"""The emulated GBIF's HTTP routes: the occurrence download API and its archive host."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from gbifxdl.testing._gbif_state import (
    ALL_STATUSES,
    FORMATS,
    REQUEST_FIELDS,
    RUNNING,
    Download,
    EmulatorState,
)

STATE = web.AppKey("state", EmulatorState)
_LEAF_FIELDS = {
    "equals": ("key", "value"), "like": ("key", "value"), "lessThan": ("key", "value"),
    "lessThanOrEquals": ("key", "value"), "greaterThan": ("key", "value"),
    "greaterThanOrEquals": ("key", "value"), "in": ("key", "values"), "within": ("geometry",),
    "geoDistance": ("latitude", "longitude", "distance"), "isNull": ("parameter",), "isNotNull": ("parameter",),
}


def _text(status: int, text: str, content_type: str = "text/plain") -> web.Response:
    return web.Response(status=status, text=text, content_type=content_type)


def _unauthorized(user: str) -> web.Response:
    response = _text(401, f"Failed to authenticate user {user}\r\n")
    response.headers["WWW-Authenticate"] = 'Basic realm="GBIF"'
    return response


def _authenticated_user(request: web.Request) -> str | None:
    """Return the user whose Basic credentials are valid, else None."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if request.app[STATE].users.get(user) == password and password else None


def _claimed_user(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    try:
        return base64.b64decode(header[6:]).decode("utf-8").partition(":")[0] or "anonymous"
    except (binascii.Error, UnicodeDecodeError):
        return "anonymous"


def _predicate_problem(node: Any, path: str = "predicate") -> str | None:
    """Return GBIF-like reason why a predicate is malformed, or None."""
    if not isinstance(node, dict) or "type" not in node:
        return f"{path}: a predicate must be an object with a 'type'"
    kind = node["type"]
    if kind in ("and", "or"):
        children = node.get("predicates")
        if not isinstance(children, list) or not children:
            return f"{path}: '{kind}' needs a non-empty 'predicates' list"
        return next((p for i, c in enumerate(children) if (p := _predicate_problem(c, f"{path}.predicates[{i}]"))), None)
    if kind == "not":
        return _predicate_problem(node.get("predicate"), f"{path}.predicate")
    fields = _LEAF_FIELDS.get(kind)
    if fields is None:
        return f"Could not resolve type id '{kind}' as a subtype of Predicate ({path})"
    missing = [name for name in fields if name not in node]
    if missing:
        return f"{path}: '{kind}' needs {', '.join(missing)}"
    if "key" in fields and not (isinstance(node["key"], str) and node["key"].isupper()):
        return f"{path}: Invalid search parameter {node['key']!r}"
    if kind == "in" and (not isinstance(node["values"], list) or not node["values"]):
        return f"{path}: 'in' needs a non-empty 'values' list"
    return None


async def post_request(request: web.Request) -> web.Response:
    """POST /occurrence/download/request: 201 with the bare key, or GBIF's refusal."""
    state = request.app[STATE]
    user = _authenticated_user(request)
    if user is None:
        return _unauthorized(_claimed_user(request))
    try:
        body = json.loads(await request.text())
    except ValueError as exc:
        return _text(400, f"Unexpected character in request body: {exc}")
    if not isinstance(body, dict):
        return _text(400, "The request body must be a JSON object")
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        return _text(400, f'Unrecognized field "{unknown[0]}" (class org.gbif.api.model.occurrence.PredicateDownloadRequest), not marked as ignorable')
    creator = body.get("creator") or user
    if creator != user:
        return _unauthorized(creator)
    if body.get("format", "DWCA") not in FORMATS:
        return _text(400, f"Cannot deserialize value of type `DownloadFormat` from String {body.get('format')!r}")
    if body.get("predicate") is not None and (problem := _predicate_problem(body["predicate"])):
        return _text(400, problem)
    now = datetime.now(timezone.utc)
    with state.lock:
        existing = state.duplicate_of(user, body, now)
        if existing is not None:
            return _text(201, existing.key, "application/json")
        running = state.running_of(user)
        if len(running) >= state.max_simultaneous:
            return _text(
                420,
                "A download limitation is exceeded:\nUser "
                f"{user} has too many simultaneous downloads; the limit is {state.max_simultaneous}.\n"
                "Please wait for some to complete, or cancel any unwanted downloads.  See your user page.",
            )
        key = state.new_key()
        source = request.headers.get("User-Agent", "unknown").split("/")[0].split()[0]
        download = Download(key=key, user=user, request=body, created=now, doi=state.new_doi(), source=source)
        state.downloads[key] = download
    download.task = asyncio.get_running_loop().create_task(state.lifecycle(download))
    download.task.add_done_callback(lambda task: task.cancelled() or task.exception())  # no "never retrieved" noise
    return _text(201, key, "application/json")


async def get_status(request: web.Request) -> web.Response:
    """GET /occurrence/download/{key or DOI}: the status JSON."""
    state = request.app[STATE]
    download = state.find(request.match_info["key"])
    if download is None:
        return _text(404, f"Download {request.match_info['key']} not found")
    return web.json_response(download.to_json(state.api_url, owner=False))


async def get_citation(request: web.Request) -> web.Response:
    """GET /occurrence/download/{key}/citation: GBIF's citation line with the DOI."""
    state = request.app[STATE]
    download = state.find(request.match_info["key"])
    if download is None or download.status in RUNNING:
        return _text(404, f"Download {request.match_info['key']} not found")
    date = f"{download.created.day} {download.created:%B %Y}"
    return _text(200, f"GBIF.org ({date}) GBIF Occurrence Download https://doi.org/{download.doi}\n")


async def list_user(request: web.Request) -> web.Response:
    """GET /occurrence/download/user/{user}: the owner's page of downloads, newest first."""
    state = request.app[STATE]
    owner = request.match_info["user"]
    if _authenticated_user(request) != owner:
        return _unauthorized(owner)
    try:
        limit = max(0, int(request.query.get("limit", 20)))
        offset = max(0, int(request.query.get("offset", 0)))
    except ValueError:
        return _text(400, "limit and offset must be integers")
    wanted = {s for value in request.query.getall("status", []) for s in value.split(",") if s}
    mine = [d for d in reversed(state.downloads.values()) if d.user == owner and (not wanted or d.status in wanted)]
    page = mine[offset : offset + limit]
    return web.json_response(
        {
            "offset": offset,
            "limit": limit,
            "endOfRecords": offset + limit >= len(mine),
            "count": len(mine),
            "results": [d.to_json(state.api_url, owner=True) for d in page],
        }
    )


async def delete_request(request: web.Request) -> web.Response:
    """DELETE /occurrence/download/request/{key}: cancel a running download of one's own (204)."""
    state = request.app[STATE]
    user = _authenticated_user(request)
    if user is None:
        return _unauthorized(_claimed_user(request))
    download = state.find(request.match_info["key"])
    if download is None:
        return _text(404, f"Download {request.match_info['key']} not found")
    if download.user != user:
        return _unauthorized(user)
    with state.lock:
        if download.status in RUNNING:
            set_status(download, "CANCELLED")
    return web.Response(status=204)


def set_status(download: Download, status: str) -> None:
    """Force ``status`` on a download; PREPARING/RUNNING/SUCCEEDED hand it back to its lifecycle."""
    if status not in ALL_STATUSES:
        raise ValueError(f"unknown GBIF download status {status!r}; use one of {sorted(ALL_STATUSES)}")
    download.forced = None if status in ("PREPARING", "RUNNING", "SUCCEEDED") else status
    download.modified = datetime.now(timezone.utc)
    if download.forced in ("FAILED", "KILLED", "CANCELLED") and download.task is not None:
        download.task.get_loop().call_soon_threadsafe(download.task.cancel)


async def get_archive_link(request: web.Request) -> web.Response:
    """GET /occurrence/download/request/{key}.zip: 302 to the archive host once SUCCEEDED."""
    state = request.app[STATE]
    name = request.match_info["name"]
    key = name.removesuffix(".zip")
    download = state.find(key)
    if download is not None and download.status == "FILE_ERASED":
        return _text(410, f"Download {key} has been erased")
    if download is None or download.status != "SUCCEEDED" or download.archive is None:
        return _text(404, f"Download {key} is not ready yet")
    return web.Response(status=302, headers={"Location": f"{state.archive_url}/occurrence/download/request/{key}.zip"})


async def serve_archive(request: web.Request) -> web.StreamResponse:
    """GET on the archive host: the zip itself, with Range support (206)."""
    state = request.app[STATE]
    key = request.match_info["name"].removesuffix(".zip")
    download = state.find(key)
    if download is None or download.archive is None or download.status != "SUCCEEDED":
        return _text(404, "Not Found")
    cut = state.take_cut(request.path)
    if cut is not None:
        return await _broken_transfer(request, download.archive, cut)
    return web.FileResponse(download.archive)


async def _broken_transfer(request: web.Request, path: Path, after_bytes: int) -> web.StreamResponse:
    """Start sending the (ranged) file as usual, then drop the connection after ``after_bytes``."""
    data = path.read_bytes()
    start = request.http_range.start or 0
    response = web.StreamResponse(status=206 if start else 200, headers={"Content-Type": "application/zip"})
    response.content_length = len(data) - start
    if start:
        response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    await response.prepare(request)
    await response.write(data[start : start + after_bytes])
    if request.transport is not None:
        request.transport.close()
    return response


def add_api_routes(app: web.Application) -> None:
    """Register the download API under ``/v1`` (specific paths before the key catch-all)."""
    base = "/v1/occurrence/download"
    app.router.add_post(f"{base}/request", post_request)
    app.router.add_get(f"{base}/request/{{name}}", get_archive_link)
    app.router.add_delete(f"{base}/request/{{key}}", delete_request)
    app.router.add_get(f"{base}/user/{{user}}", list_user)
    app.router.add_get(f"{base}/{{key:.+}}/citation", get_citation)
    app.router.add_get(f"{base}/{{key:.+}}", get_status)


def add_archive_routes(app: web.Application) -> None:
    """Register the archive host's single route."""
    app.router.add_get("/occurrence/download/request/{name}", serve_archive)
