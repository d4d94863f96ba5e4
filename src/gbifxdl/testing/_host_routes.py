"""The image hosts' routes for politeness and renditions: sizes, IIIF, Flickr, opt-outs, cross-host redirects.

``/photos/{id}/{large,medium,small}.jpg``
    iNaturalist-style renditions of photo ``id`` (longest side 1024, 500, 240; never
    enlarged), beside its ``original.jpg``.
``/tiny/photos/{id}/{size}.jpg``
    The original as usual, but every rendition 100 px (a host whose renditions are too small).
``/norendition/photos/{id}/{size}.jpg``
    The original as usual, but 404 for every rendition.
``/iiif/{id}/full/{size}/0/default.jpg``
    IIIF Image API: ``max`` or ``full`` gives the original, ``!N,N`` fits it in N x N.
``/65535/{id}_{secret}[_{s}].jpg``
    Flickr static: ``_o`` the original, ``_b`` 1024, ``_c`` 800, ``_z`` 640, none 500.
``/optout/{directive}/{id}.jpg``
    The photo with ``X-Robots-Tag: {directive}`` (``noai``, ``noimageai``, ``none``,
    ``googlebot:noai``, ``noindex``...).
``/goto/{host}/{path}``
    A 302 to ``{path}`` on host number ``host`` (a redirect across hosts).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from gbifxdl.testing._images import photo_id

if TYPE_CHECKING:
    from gbifxdl.testing.image_hosts import ImageHosts

INAT_SIZES = {"large": 1024, "medium": 500, "small": 240}
FLICKR_SIZES = {"b": 1024, "c": 800, "z": 640, "": 500}


async def extra_route(hosts: "ImageHosts", request: web.Request, parts: list[str]) -> web.StreamResponse | None:
    """Return the answer of one of the routes above, or None when the path is not one of them."""
    if len(parts) == 4 and parts[0] in ("tiny", "norendition") and parts[1] == "photos":
        size = parts[3].split(".")[0]
        if size == "original":
            return await hosts._photo(request, photo_id(parts[2]))
        if parts[0] == "norendition" or size not in INAT_SIZES:
            return await hosts._send(request, 404, b"no such rendition", "text/plain")
        return await _sized(hosts, request, photo_id(parts[2]), 100)
    if len(parts) == 3 and parts[0] == "photos" and parts[2].split(".")[0] in INAT_SIZES:
        return await _sized(hosts, request, photo_id(parts[1]), INAT_SIZES[parts[2].split(".")[0]])
    if len(parts) == 6 and parts[0] == "iiif" and parts[2] == "full" and parts[4] == "0":
        size = unquote(parts[3])
        if size in ("max", "full"):
            return await hosts._photo(request, photo_id(parts[1]))
        m = re.fullmatch(r"!(\d+),(\d+)", size)
        if m is None:
            return await hosts._send(request, 400, b"unsupported IIIF size", "text/plain")
        return await _sized(hosts, request, photo_id(parts[1]), min(int(m[1]), int(m[2])))
    if len(parts) == 2 and parts[0] == "65535":
        m = re.fullmatch(r"(\d+)_[0-9a-f]+(?:_([a-z]))?\.jpg", parts[1])
        if m is not None:
            suffix = m[2] or ""
            if suffix == "o":
                return await hosts._photo(request, int(m[1]))
            if suffix in FLICKR_SIZES:
                return await _sized(hosts, request, int(m[1]), FLICKR_SIZES[suffix])
    if len(parts) == 3 and parts[0] == "optout":
        data, ctype = await hosts._image(photo_id(parts[2].split(".")[0]), hosts._original_variant)
        return await hosts._send(request, 200, data, ctype, {"X-Robots-Tag": unquote(parts[1])})
    if len(parts) >= 3 and parts[0] == "goto":
        target = hosts.base_urls[int(parts[1]) % len(hosts.base_urls)] + "/" + "/".join(parts[2:])
        return await hosts._send(request, 302, b"", "text/plain", {"Location": target})
    return None


async def _sized(hosts: "ImageHosts", request: web.Request, image_id: int, side: int) -> Any:
    prefix = "exact-side-" if hosts.exact_size else "side-"
    data, ctype = await hosts._image(image_id, f"{prefix}{side}")
    return await hosts._send(request, 200, data, ctype)
