"""``gbifxdl review DIR``: the review page's server (aiohttp, 127.0.0.1 only, one random token).

Every request must carry the token printed in the link (``?t=...``), else it is refused (403):
another local user, or a web page in the same browser, can neither read nor mark. The page
names images by key (url_hash) only; the server finds each through the dataset's table and
:class:`gbifxdl._locate.ImageLocator`, which never leaves the dataset folder. A mark is
answered only once it is in the journal on disk (:mod:`gbifxdl._marks`).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from gbifxdl._locate import ImageLocator
from gbifxdl._marks import CLEAR, MARKS, append_marks, latest_marks
from gbifxdl.review._index import Images, load_images, make_thumb
from gbifxdl.review._page import PAGE

HOST = "127.0.0.1"
PAGE_SIZE = 60
MAX_PAGE_SIZE = 500
_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TOKEN = web.AppKey("token", str)
STATE = web.AppKey("state", "Review")


class Review:
    """One dataset under review: its images, where they are, and the marks now."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.images: Images = load_images(self.root)
        self.locator = ImageLocator(self.root, shards_held=64)
        self.marks: dict[str, str] = {k: m for k, m in latest_marks(self.root).items() if k in self.images.position}
        self.lock = asyncio.Lock()  # one writer at a time in this server; flock between servers

    def counts(self, label: str | None) -> dict[str, Any]:
        """Return the progress shown on the page: images and marked images in view, and in all."""
        if label:
            keys = [k for k, lab in zip(self.images.keys, self.images.labels) if lab == label]
        else:
            keys = self.images.keys
        in_view = sum(1 for k in keys if k in self.marks)
        return {"images": len(keys), "marked": in_view, "marked_all": len(self.marks),
                "images_all": len(self.images), "by_mark": dict(Counter(self.marks.values()))}


@web.middleware
async def _token_and_headers(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    given = request.query.get("t", "")
    if not hmac.compare_digest(given.encode(), request.app[TOKEN].encode()):
        raise web.HTTPForbidden(text="forbidden: open the link `gbifxdl review` printed (it carries the token)\n")
    response = await handler(request)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", charset="utf-8")


_ICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
         b'fill="#2e7d32"/><path d="M4 8l3 3 5-6" stroke="#fff" stroke-width="2" fill="none"/></svg>')


async def _icon(request: web.Request) -> web.Response:
    return web.Response(body=_ICON, content_type="image/svg+xml")


async def _index(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = Counter(state.images.labels)  # in the images' order: class by class
    classes = [{"label": label, "name": state.images.names.get(label, ""), "images": n} for label, n in counts.items()]
    return web.json_response({"dataset": state.root.name, "classes": classes, "marks": list(MARKS),
                              "page_size": PAGE_SIZE, **state.counts(None)})


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number\n") from None
    return max(low, min(high, value))


async def _images(request: web.Request) -> web.Response:
    state = request.app[STATE]
    label = request.query.get("class") or None
    size = _int(request, "size", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int(request, "page", 0, 0, 10**9)
    images = state.images
    rows = [i for i, lab in enumerate(images.labels) if lab == label] if label else range(len(images))
    pages = max(1, -(-len(rows) // size))
    page = min(page, pages - 1)
    items = [{"key": images.keys[i], "class": images.labels[i], "mark": state.marks.get(images.keys[i]),
              "removed": images.removed[i]} for i in rows[page * size:(page + 1) * size]]
    return web.json_response({"page": page, "pages": pages, "size": size, "items": items, **state.counts(label)})


async def _thumb(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = request.match_info["key"]
    if key not in state.images.position:
        raise web.HTTPNotFound(text="no such image in this dataset\n")
    data = await asyncio.get_running_loop().run_in_executor(
        None, make_thumb, state.root, state.images, state.locator, key)
    if data is None:
        raise web.HTTPNotFound(text="the image cannot be found or read\n")
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


async def _mark(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
        wanted = [(str(m["key"]), str(m["mark"])) for m in body["marks"]]
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text='send {"marks": [{"key": ..., "mark": ...}]}\n') from None
    for key, mark in wanted:
        if key not in state.images.position:
            raise web.HTTPNotFound(text=f"no image {key!r} in this dataset\n")
        if mark not in MARKS and mark != CLEAR:
            raise web.HTTPBadRequest(text=f"unknown mark {mark!r}\n")
    async with state.lock:
        records = await asyncio.to_thread(append_marks, state.root, wanted)  # on disk (fsync) before the answer
        for key, mark in wanted:
            if mark == CLEAR:
                state.marks.pop(key, None)
            else:
                state.marks[key] = mark
    return web.json_response({"saved": records, **state.counts(request.query.get("class") or None)})


def make_app(root: Path, token: str) -> web.Application:
    """Return the review application of the dataset at ``root``, answering only requests with ``token``."""
    app = web.Application(middlewares=[_token_and_headers], client_max_size=1 << 20)
    app[TOKEN] = token
    app[STATE] = Review(root)
    app.router.add_get("/", _page)
    app.router.add_get("/favicon.svg", _icon)
    app.router.add_get("/api/index", _index)
    app.router.add_get("/api/images", _images)
    app.router.add_get("/thumb/{key}", _thumb)
    app.router.add_post("/api/marks", _mark)
    return app


async def _serve(root: Path, port: int, token: str, on_ready: Callable[[str], None]) -> None:
    app = make_app(root, token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)  # loopback only: nothing else on the network can connect
    await site.start()
    bound = runner.addresses[0][1]
    on_ready(f"http://{HOST}:{bound}/?t={token}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve(dataset_dir: str | Path, *, port: int = 0, token: str | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the review page of ``dataset_dir`` on 127.0.0.1 until interrupted.

    ``port`` 0 picks a free one; ``token`` (default: a new random one) must be in every request;
    ``on_ready`` is called with the page's link once it answers (default: printed).
    """
    root = Path(dataset_dir)
    link_to = on_ready or (lambda link: print(link, flush=True))
    try:
        asyncio.run(_serve(root, port, token or secrets.token_urlsafe(24), link_to))
    except KeyboardInterrupt:
        print("review stopped; every mark is saved", file=sys.stderr)
