"""The smallest rendition of an image that is big enough: one table of rules, one per kind of host.

Many image hosts serve every photo at several sizes. When a resize is asked for, fetching
the smallest one whose longest side still reaches the target costs a fraction of the
bytes of the original, and the output (resized to the same target) is the same size.

A rule says which URLs it knows (a host pattern and a path pattern) and how to write the
URL of a rendition of a given size. :func:`rendition_for` gives the URL to try first; the
scheduler falls back to the URL as given when that rendition fails or comes back smaller
than needed (then the original may be no bigger: one request wasted, rarely), and stops
trying renditions on a host where the first ones all failed. A rule only ever rewrites the path of a URL on
its own host: bulk fetching is never routed through another server (in particular not
GBIF's image cache, which asks scripts to use a single connection).

To add a host: append a :class:`Rule` to ``RULES``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# a URL: scheme://host[:port] + path + optional query
_URL = re.compile(r"(?P<base>[A-Za-z][A-Za-z0-9+.-]*://(?P<host>[^/?#]+))(?P<path>/[^?#]*)(?P<query>[?#].*)?\Z")


@dataclass(frozen=True)
class Rule:
    """How one kind of host names the renditions of a photo."""

    name: str
    hosts: re.Pattern[str]                     # the hosts it applies to (lower-case host[:port])
    path: re.Pattern[str]                      # the paths it applies to
    # (match of ``path``, target side) -> (new path, its nominal longest side), or None
    # when no rendition smaller than the given URL reaches the target
    rewrite: Callable[[re.Match[str], int], tuple[str, int] | None]


def _ladder(sizes: dict[str, int], given: str, target: int) -> tuple[str, int] | None:
    """Return the smallest named size reaching ``target`` that is smaller than ``given``'s."""
    limit = sizes.get(given, 1 << 30)
    fitting = [(side, name) for name, side in sizes.items() if target <= side < limit]
    if not fitting:
        return None
    side, name = min(fitting)
    return name, side


# iNaturalist: .../photos/<id>/<size>.<ext>; original has no fixed size
_INAT_SIZES = {"small": 240, "medium": 500, "large": 1024}


def _inaturalist(m: re.Match[str], target: int) -> tuple[str, int] | None:
    found = _ladder(_INAT_SIZES, m["size"], target)
    return None if found is None else (f"{m['prefix']}{found[0]}{m['ext']}", found[1])


# IIIF Image API: {prefix}/{region}/{size}/{rotation}/{quality}.{format}, asked for a box of N x N
def _iiif(m: re.Match[str], target: int) -> tuple[str, int] | None:
    return f"{m['prefix']}/full/!{target},{target}/0/{m['quality']}.{m['format']}", target


# Flickr static: <id>_<secret>[_<size>].jpg; _o original, _b 1024, _c 800, _z 640
_FLICKR_SIZES = {"z": 640, "c": 800, "b": 1024}


def _flickr(m: re.Match[str], target: int) -> tuple[str, int] | None:
    # (an _o URL may carry the original's own secret, then the rendition fails and the
    # scheduler falls back to the original, and stops trying renditions on a host where
    # they keep failing)
    found = _ladder(_FLICKR_SIZES, m["size"] or "o", target)
    if found is None:
        return None
    return f"{m['prefix']}_{found[0]}.{m['ext']}", found[1]


RULES: list[Rule] = [
    Rule("inaturalist",
         re.compile(r"(?:[a-z0-9.-]*\.)?(?:inaturalist-open-data\.s3[a-z0-9.-]*\.amazonaws\.com|static\.inaturalist\.org)"
                    r"|s3[a-z0-9.-]*\.amazonaws\.com"),
         re.compile(r"(?P<prefix>(?:/[\w.-]+)*/photos/\d+/)(?P<size>original|large|medium|small)"
                    r"(?P<ext>\.[A-Za-z]{3,4})"),
         _inaturalist),
    Rule("iiif", re.compile(r".+"),
         re.compile(r"(?P<prefix>/.+)/full/(?:max|full)/0/(?P<quality>default|color|native)\.(?P<format>jpg|jpeg)"),
         _iiif),
    Rule("flickr", re.compile(r"(?:live|farm\d+)\.staticflickr\.com"),
         re.compile(r"(?P<prefix>/\d+/\d+_[0-9a-f]+)(?:_(?P<size>[a-z]))?\.(?P<ext>jpg)"),
         _flickr),
]

_BY_NAME = {rule.name: rule for rule in RULES}


@dataclass(frozen=True)
class Rendition:
    """A smaller rendition of an image to try first."""

    url: str
    nominal: int      # its longest side, when the original is at least that big
    rule: str


def rendition_for(url: str, target: int, extra_hosts: tuple[tuple[str, str], ...] = ()) -> Rendition | None:
    """Return the smallest rendition of ``url`` whose longest side reaches ``target``, or None.

    ``extra_hosts`` are (host, rule name) pairs: hosts laid out like a known one (a mirror,
    or the emulator's loopback hosts) that the rule's host pattern does not name.
    """
    m = _URL.match(url)
    if m is None:
        return None
    host = m["host"].lower().rsplit("@", 1)[-1]
    if m["path"].startswith("/v1/image/"):
        return None  # GBIF's image cache: never rewritten (nor rewritten to)
    named = [_BY_NAME[name] for h, name in extra_hosts if h == host and name in _BY_NAME]
    for rule in named + [r for r in RULES if r not in named]:
        if rule not in named and not rule.hosts.fullmatch(host):
            continue
        pm = rule.path.fullmatch(m["path"])
        if pm is None:
            continue
        found = rule.rewrite(pm, target)
        if found is None:
            return None
        path, nominal = found
        if rule.name == "inaturalist" and "amazonaws" in host and "inaturalist-open-data" not in host + m["path"]:
            return None  # an S3 bucket that is not iNaturalist's
        return Rendition(m["base"] + path + (m["query"] or ""), nominal, rule.name)
    return None


def big_enough(width: int, height: int, target: int, mode: str) -> bool:
    """Return whether a rendition of ``width`` x ``height`` serves a resize to ``target``
    (its side that the resize applies to reaches the target)."""
    side = max(width, height) if mode == "longest" else min(width, height)
    return side >= target


def image_size(chunks: list[bytes]) -> tuple[int, int] | None:
    """Return the (width, height) stored in an image's header (before EXIF orientation), or None."""
    head = chunks[0] if len(chunks[0]) >= 1 << 16 or len(chunks) == 1 else b"".join(chunks)[: 1 << 16]
    if head[:3] == b"\xff\xd8\xff":
        import simplejpeg

        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(head)
            return width, height
        except ValueError:
            pass
    import io

    from PIL import Image

    try:
        return Image.open(io.BytesIO(b"".join(chunks))).size
    except Exception:  # noqa: BLE001 - not an image: the worker will say which fault
        return None
