"""The image hosts' explicit faults (``/fault/{kind}/{id}.jpg``; kinds in :mod:`gbifxdl.testing.image_hosts`)."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import re
import time
from typing import TYPE_CHECKING

from aiohttp import web

from gbifxdl.testing._images import cached_bomb

if TYPE_CHECKING:
    from gbifxdl.testing.image_hosts import ImageHosts

_CHUNK = 1 << 16


async def answer_fault(hosts: "ImageHosts", request: web.Request, url: str, kind: str, image_id: int, count: int) -> web.StreamResponse:
    if kind in ("400", "403", "404", "410"):
        return await hosts._send(request, int(kind), b"no", "text/plain")
    match = re.fullmatch(r"(500|503)x(\d+)", kind)
    if match:
        if count <= int(match[2]):
            return await hosts._send(request, int(match[1]), b"server error", "text/plain")
        return await hosts._photo(request, image_id)
    match = re.fullmatch(r"(429|503)(?:-(after|date)-(\d+))?x(\d+)", kind)
    if match:
        if count > int(match[4]):
            return await hosts._photo(request, image_id)
        headers = {}
        seconds: float | None = int(match[3]) if match[3] else None
        if seconds is not None and match[2] == "date":
            # an HTTP date has whole seconds: the wait is until the date actually sent
            when = int(time.time() + seconds)
            headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
            seconds = when - time.time()
        elif seconds is not None:
            headers["Retry-After"] = str(int(seconds))
        return await hosts._send(request, int(match[1]), b"slow down", "text/plain", headers,
                                url=url, retry_after=seconds)
    match = re.fullmatch(r"slow-(\d+)", kind)
    if match:
        await asyncio.sleep(int(match[1]) / 1000)
        return await hosts._photo(request, image_id)
    match = re.fullmatch(r"trickle-(\d+)", kind)
    if match:
        data, ctype = await hosts._image(image_id)
        return await hosts._send(request, 200, data, ctype, pieces=16, spread=int(match[1]) / 1000)
    match = re.fullmatch(r"truncated(?:x(\d+))?", kind)
    if match:
        if match[1] is not None and count > int(match[1]):
            return await hosts._photo(request, image_id)
        data, ctype = await hosts._image(image_id)
        return await hosts._send(request, 200, data, ctype, truncate=True)
    if kind == "corrupt":
        data, _ = await hosts._image(image_id, "jpeg")
        garbage = hashlib.sha256(str(image_id).encode()).digest() * (len(data) // 32)
        return await hosts._send(request, 200, data[:200] + garbage, "image/jpeg")
    if kind == "html":
        page = b"<!DOCTYPE html><html><head><title>Not found</title></head><body>Gone</body></html>"
        return await hosts._send(request, 200, page, "text/html; charset=utf-8")
    if kind == "wrongtype":
        return await hosts._photo(request, image_id, "text/plain")
    match = re.fullmatch(r"redirect-(\d+)", kind)
    if match:
        hops = int(match[1])
        # the last hop goes to the photo's alias: the photo URL itself may be a fault
        target = (f"/fault/redirect-{hops - 1}/{image_id}.jpg" if hops > 1
                  else f"/alias/0/{image_id}.jpg")
        return await hosts._send(request, 302, b"", "text/plain", {"Location": target})
    if kind == "redirect-loop":
        return await hosts._send(request, 302, b"", "text/plain", {"Location": request.path})
    if kind == "redirect-ftp":
        return await hosts._send(request, 302, b"", "text/plain", {"Location": f"ftp://127.0.0.1/{image_id}.jpg"})
    if kind == "bomb":
        bomb = await asyncio.get_running_loop().run_in_executor(None, cached_bomb)
        return await hosts._send(request, 200, bomb, "image/png")
    match = re.fullmatch(r"huge(chunked)?-(\d+)", kind)
    if match:
        return await _huge(hosts, request, int(match[2]) * 2**20, chunked=bool(match[1]))
    if kind == "empty":
        return await hosts._send(request, 200, b"", "image/jpeg")
    return await hosts._send(request, 404, b"unknown fault", "text/plain")


async def _huge(hosts: "ImageHosts", request: web.Request, size: int, *, chunked: bool) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = "image/jpeg"
    if chunked:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = size
    await resp.prepare(request)
    block = b"\xff\xd8\xff" + b"\x00" * (_CHUNK - 3)
    sent = 0
    try:
        while sent < size:
            await resp.write(block[: min(_CHUNK, size - sent)])
            sent += _CHUNK
        await resp.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client gave up reading, as it should
    return resp
