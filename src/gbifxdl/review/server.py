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
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from gbifxdl._locate import ImageLocator
from gbifxdl._marks import CLEAR, MARKS, RANKABLE, append_marks, latest_marks
from gbifxdl.errors import GbifxdlError
from gbifxdl.review._index import Images, check_dataset, load_images, make_thumb
from gbifxdl.review._page import PAGE

if TYPE_CHECKING:
    from gbifxdl.review._features import Features
    from gbifxdl.review.rank import Ranking


HOST = "127.0.0.1"
PAGE_SIZE = 60
MAX_PAGE_SIZE = 500
_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TOKEN = web.AppKey("token", str)
STATE = web.AppKey("state", "Review")


class Review:
    """One dataset under review: its images, where they are, and the marks now."""

    def __init__(self, root: Path, model: str | None = None) -> None:
        self.root = root.resolve()
        self.images = Images()
        self.marks: dict[str, str] = {}
        self._loading: asyncio.Future[None] | None = None
        self.locator = ImageLocator(self.root, shards_held=64)
        self.lock = asyncio.Lock()  # one writer at a time in this server; flock between servers
        self.model = model  # the embedder "find more like these" uses (None: the first one, else built-in)
        self.features: Features | None = None
        self.ranking: Ranking | None = None
        self.ranking_id = 0
        self.probability: dict[str, float] = {}  # the last ranking's probabilities, by key
        self.rank_lock = asyncio.Lock()
        self.described: tuple[int, int] | None = None  # built-in features computed so far: (done, total)
        self.suspects: tuple[list[int], list[str | None]] | None = None  # "likely wrong first": order, reasons
        self._signals: tuple[Features | None, Any] | None = None  # what made the order, and the features it saw
        self._by_label: dict[str, list[str]] | None = None  # each class's image keys

    def _load(self) -> None:
        self.images = load_images(self.root)
        self._by_label = None
        self.marks = {k: m for k, m in latest_marks(self.root).items() if k in self.images.position}

    def start_loading(self) -> None:
        """Read the tables in a thread: the server answers (the page loads) meanwhile."""
        self._loading = asyncio.get_running_loop().run_in_executor(None, self._load)

    async def ready(self) -> None:
        """Return once the dataset's tables are read (raising what reading them raised)."""
        if self._loading is None:
            self.start_loading()
        await asyncio.shield(self._loading)  # type: ignore[arg-type]

    def rank(self, target: str) -> Ranking:
        """Train on the marks now and rank the unmarked images (in a thread: features may be computed)."""
        from gbifxdl.review._features import load_features
        from gbifxdl.review.rank import rank_images

        if self.features is None:
            self.features = load_features(self.root, self.images, self.locator, self.model,
                                          progress=lambda done, total: setattr(self, "described", (done, total)))
        ranking = rank_images(self.images, self.features, dict(self.marks), target)
        self.ranking, self.ranking_id = ranking, self.ranking_id + 1
        self.probability = dict(zip(ranking.keys, ranking.scores.tolist()))
        self.suspects = None  # the order changes with the probabilities; the signals read from the tables do not
        return ranking

    def likely_order(self) -> tuple[list[int], list[str | None]]:
        """Return the images' positions, most likely wrong first, and each position's reason."""
        from gbifxdl.review._features import embedders, load_features
        from gbifxdl.review._suspects import combined, signals

        if self.suspects is None:
            if self.features is None and embedders(self.root):
                self.features = load_features(self.root, self.images, self.locator, self.model)
            if self._signals is None or self._signals[0] is not self.features:  # (features computed since)
                self._signals = (self.features, signals(self.root, self.images, self.features))
            score, reasons = combined(self._signals[1], self.images, self.probability)
            order = sorted(range(len(self.images)), key=lambda i: -score[i])
            self.suspects = (order, reasons)
        return self.suspects

    def counts(self, label: str | None) -> dict[str, Any]:
        """Return the progress shown on the page: images and marked images in view, and in all."""
        if label:
            if self._by_label is None:  # the images do not change while the server runs: grouped once
                self._by_label = {}
                for key, lab in zip(self.images.keys, self.images.labels):
                    self._by_label.setdefault(lab, []).append(key)
            keys = self._by_label.get(label, [])
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
    if request.path.startswith(("/api/", "/thumb/")):
        await request.app[STATE].ready()
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
                              "page_size": PAGE_SIZE, "targets": list(RANKABLE), **state.counts(None)})


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number\n") from None
    return max(low, min(high, value))


def _float(request: web.Request, name: str, default: float) -> float:
    try:
        return float(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number\n") from None


async def _images(request: web.Request) -> web.Response:
    state = request.app[STATE]
    label = request.query.get("class") or None
    size = _int(request, "size", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int(request, "page", 0, 0, 10**9)
    view, sort = request.query.get("view", "all"), request.query.get("sort", "class")
    images = state.images
    reasons: list[str | None] | None = None
    if view == "ranked":  # the last ranking's images not marked since, most likely first
        ranking = state.ranking
        floor = _float(request, "min_p", 0.0)
        rows: Any = [images.position[k] for k, p in zip(ranking.keys, ranking.scores.tolist())
                     if p >= floor and k not in state.marks] if ranking else []
        if label:
            rows = [i for i in rows if images.labels[i] == label]
    elif sort == "likely":
        order, reasons = await asyncio.to_thread(state.likely_order)
        if label:
            order = [i for i in order if images.labels[i] == label]
        marked = state.marks  # the images nobody marked yet first, each part most likely wrong first
        rows = [i for i in order if images.keys[i] not in marked] + [i for i in order if images.keys[i] in marked]
    else:
        rows = [i for i, lab in enumerate(images.labels) if lab == label] if label else range(len(images))
    pages = max(1, -(-len(rows) // size))
    page = min(page, pages - 1)
    items = []
    for i in rows[page * size:(page + 1) * size]:
        key = images.keys[i]
        item = {"key": key, "class": images.labels[i], "mark": state.marks.get(key), "removed": images.removed[i]}
        if key in state.probability:
            item["p"] = round(state.probability[key], 4)
        if reasons is not None and reasons[i]:
            item["why"] = reasons[i]
        items.append(item)
    return web.json_response({"page": page, "pages": pages, "size": size, "items": items, "rows": len(rows),
                              **state.counts(label)})


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


async def _save(state: Review, wanted: list[tuple[str, str]], **note: Any) -> list[dict[str, Any]]:
    """Append marks to the journal (on disk, fsynced, before returning) and to the marks now."""
    async with state.lock:
        records = await asyncio.to_thread(append_marks, state.root, wanted, **note)
        for key, mark in wanted:
            if mark == CLEAR:
                state.marks.pop(key, None)
            else:
                state.marks[key] = mark
    return records


async def _mark(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
        wanted = [(str(m["key"]), str(m["mark"])) for m in body["marks"]]
        via = body.get("via")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise web.HTTPBadRequest(text='send {"marks": [{"key": ..., "mark": ...}]}\n') from None
    if via not in (None, "rank"):
        raise web.HTTPBadRequest(text='"via" is "rank" (confirmed from the ranking) or absent\n')
    for key, mark in wanted:
        if key not in state.images.position:
            raise web.HTTPNotFound(text=f"no image {key!r} in this dataset\n")
        if mark not in MARKS and mark != CLEAR:
            raise web.HTTPBadRequest(text=f"unknown mark {mark!r}\n")
    note: dict[str, Any] = {}
    if via:  # a bulk confirmation: each mark keeps the probability the ranking gave it
        note = {"via": via, "scores": {k: state.probability[k] for k, _ in wanted if k in state.probability}}
    records = await _save(state, wanted, **note)
    return web.json_response({"saved": records, **state.counts(request.query.get("class") or None)})


async def _rank(request: web.Request) -> web.Response:
    """Train on the marks now; answer how far to trust it (the images: /api/images?view=ranked)."""
    state = request.app[STATE]
    target = request.query.get("target", "bad")
    if target not in RANKABLE:
        raise web.HTTPBadRequest(text=f"target is one of {', '.join(RANKABLE)}\n")
    async with state.rank_lock:
        try:
            ranking = await asyncio.to_thread(state.rank, target)
        except (GbifxdlError, ValueError, FileNotFoundError) as exc:
            return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"id": state.ranking_id, **ranking.summary()})


async def _rank_progress(request: web.Request) -> web.Response:
    """How far the first ranking is in computing the built-in features (shown while it waits)."""
    state = request.app[STATE]
    done, total = state.described or (0, 0)
    return web.json_response({"busy": state.rank_lock.locked(), "done": done, "total": total})


async def _confirm(request: web.Request) -> web.Response:
    """Mark every image of ranking ``id`` not marked since with probability >= ``threshold`` (the
    rule a person confirmed on the page): normal marks, ``via: rank``, with each image's p."""
    state = request.app[STATE]
    try:
        body = await request.json()
        ranking_id, threshold, mark = int(body["id"]), float(body["threshold"]), str(body.get("mark", "bad"))
        expected = int(body["count"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise web.HTTPBadRequest(text='send {"id": ..., "threshold": ..., "count": ..., "mark": "bad"}\n') from None
    if mark not in MARKS:
        raise web.HTTPBadRequest(text=f"unknown mark {mark!r}\n")
    if not 0 < threshold <= 1:
        raise web.HTTPBadRequest(text="threshold is a probability in (0, 1]\n")
    ranking = state.ranking
    if ranking is None or ranking_id != state.ranking_id:
        return web.json_response({"error": "the ranking changed since: look at the new one and confirm again"},
                                 status=409)
    keys = [k for k, p in zip(ranking.keys, ranking.scores.tolist()) if p >= threshold and k not in state.marks]
    if len(keys) != expected:
        return web.json_response({"error": f"{len(keys)} images are ranked at or above {threshold} now, not "
                                           f"{expected}: confirm again"}, status=409)
    records = await _save(state, [(k, mark) for k in keys], via="rank", scores=state.probability, threshold=threshold)
    return web.json_response({"saved": len(records), **state.counts(request.query.get("class") or None)})


def make_app(root: Path, token: str, model: str | None = None) -> web.Application:
    """Return the review application of the dataset at ``root``, answering only requests with ``token``
    (``model``: the embedder "find more like these" uses)."""
    app = web.Application(middlewares=[_token_and_headers], client_max_size=8 << 20)
    app[TOKEN] = token
    app[STATE] = Review(root, model)

    async def load(app: web.Application) -> None:
        app[STATE].start_loading()

    app.on_startup.append(load)
    app.router.add_get("/", _page)
    app.router.add_get("/favicon.svg", _icon)
    app.router.add_get("/api/index", _index)
    app.router.add_get("/api/images", _images)
    app.router.add_get("/thumb/{key}", _thumb)
    app.router.add_post("/api/marks", _mark)
    app.router.add_post("/api/rank", _rank)
    app.router.add_post("/api/rank/confirm", _confirm)
    app.router.add_get("/api/rank/progress", _rank_progress)
    return app


async def _serve(root: Path, port: int, token: str, on_ready: Callable[[str], None], model: str | None) -> None:
    app = make_app(root, token, model)
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
          on_ready: Callable[[str], None] | None = None, model: str | None = None) -> None:
    """Serve the review page of ``dataset_dir`` on 127.0.0.1 until interrupted.

    ``port`` 0 picks a free one; ``token`` (default: a new random one) must be in every request;
    ``on_ready`` is called with the page's link once it answers (default: printed); ``model``:
    the embedder (a model ``gbifxdl infer`` ran) "find more like these" learns from (default: the
    first one, by name, else built-in features).
    """
    root = Path(dataset_dir)
    check_dataset(root)
    link_to = on_ready or (lambda link: print(link, flush=True))
    try:
        asyncio.run(_serve(root, port, token or secrets.token_urlsafe(24), link_to, model))
    except KeyboardInterrupt:
        print("review stopped; every mark is saved", file=sys.stderr)
