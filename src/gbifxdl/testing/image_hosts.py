"""Image hosts on loopback that serve synthetic photos and inject faults, deterministically.

:class:`ImageHosts` starts ``n_hosts`` aiohttp servers, all on 127.0.0.1 (the one loopback
address every system has, stock macOS included), each on its own port, in a background
thread. A host is its ``address:port``, as gbifxdl's per-host limits see it. Every host serves the same URL space:

``/photos/{id}/original.jpg``
    The synthetic photo of ``id`` (see :mod:`gbifxdl.testing._images`): mostly JPEGs,
    and by ``id % 50``: 0 PNG with alpha, 1 CMYK JPEG, 2 GIF, 3 WebP, 4 TIFF, 5 JPEG with
    EXIF orientation 6, 6 progressive JPEG, 7 16-bit greyscale PNG. With
    ``fault_rate > 0`` a deterministic fraction of ids (from ``seed``) answer one of the
    faults below instead (see :meth:`ImageHosts.fault_of`).
``/files/{name}``
    With ``files_dir`` set, the bytes of that file (for benchmarks on real-sized images).
``/alias/{n}/{id}.jpg``
    Exactly the bytes of photo ``id`` under another URL (an exact duplicate).
``/near/{variant}/{id}.jpg``
    A near-identical copy of photo ``id``: ``reencoded`` (JPEG quality 70) or
    ``resized`` (60% size).
``/fault/{kind}/{id}.jpg``
    An explicit fault; ``kind`` is one of

    - ``404``, ``410``, ``403``, ``400``: that status, always;
    - ``500x{k}``, ``503x{k}``: that status for the first ``k`` requests, then the photo;
    - ``429-after-{s}x{k}``, ``503-after-{s}x{k}``: that status with ``Retry-After: s``
      (seconds) for the first ``k`` requests, then the photo; ``429-date-{s}x{k}``: the
      same with ``Retry-After`` as an HTTP date; ``429x{k}``: no ``Retry-After``;
    - ``slow-{ms}``: the first byte comes after ``ms`` milliseconds;
    - ``trickle-{ms}``: the body comes in 16 pieces spread over ``ms`` milliseconds;
    - ``truncated``: the body stops halfway through its declared length, always;
      ``truncatedx{k}``: only for the first ``k`` requests;
    - ``corrupt``: a JPEG header followed by garbage; ``html``: an HTML page (200,
      ``text/html``); ``wrongtype``: the photo served as ``text/plain``;
    - ``redirect-{n}``: ``n`` redirects then the photo; ``redirect-loop``: redirects to
      itself forever; ``redirect-ftp``: a redirect to an ``ftp://`` URL;
    - ``bomb``: a 196-megapixel PNG of 190 kB; ``huge-{mb}``: ``mb`` MiB of bytes with a
      Content-Length; ``hugechunked-{mb}``: the same without one; ``empty``: 200 with no body.

Renditions (iNaturalist, IIIF, Flickr), opt-out headers and cross-host redirects: see
:mod:`gbifxdl.testing._host_routes`. With ``exact_size`` every photo is a plain JPEG whose
longest side is ``max_side`` (benchmarks of renditions); with ``photo_pool`` only that
many distinct photos are made (id N shows photo N % photo_pool; benchmarks).

Every response waits ``latency`` seconds first. With ``max_connections_per_host`` set, a
request arriving while that many are in flight on its host gets 429 (``Retry-After: 1``).
``policies`` give hosts (by number) a :class:`HostPolicy`: a request rate or a number of
requests per window (429 with ``Retry-After`` beyond), or their own latency.

The hosts record, for tests: requests per URL (:meth:`requests_for`), the most requests
in flight at once per host (:meth:`max_concurrent`), requests for a URL that came
before its ``Retry-After`` had passed (:meth:`early_retries`), requests that reached a
host inside any ``Retry-After`` window it gave (:meth:`requests_inside_retry_after`), and
the User-Agent of the last request (:attr:`last_user_agent`).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

from aiohttp import web

from gbifxdl.testing._host_faults import answer_fault
from gbifxdl.testing._host_policy import HostPolicy, PolicyState
from gbifxdl.testing._host_routes import extra_route
from gbifxdl.testing._images import image_bytes, photo_id, write_selection

__all__ = ["RANDOM_FAULTS", "HostPolicy", "ImageHosts", "write_selection"]

# the fault kinds a fault_rate draws from, with how an ordinary client should end
RANDOM_FAULTS: tuple[str, ...] = (
    "404", "410", "403", "500x1", "503-after-1x1", "429-after-1x1", "truncatedx1",
    "corrupt", "html", "redirect-2", "redirect-loop", "empty", "wrongtype",
)


class ImageHosts:
    """Loopback image hosts with deterministic faults; use as a context manager."""

    def __init__(
        self,
        n_hosts: int = 3,
        *,
        seed: int = 0,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        max_connections_per_host: int | None = None,
        address: str = "127.0.0.1",
        max_side: int = 800,
        files_dir: str | Path | None = None,
        policies: dict[int, HostPolicy] | None = None,
        exact_size: bool = False,
        photo_pool: int | None = None,
    ) -> None:
        if not address.startswith("127."):
            raise ValueError("image hosts bind loopback addresses (127.0.0.0/8) only")
        self.n_hosts = n_hosts
        self.seed = seed
        self.latency = latency
        self.fault_rate = fault_rate
        self.max_connections_per_host = max_connections_per_host
        self.max_side = max_side
        self.files_dir = Path(files_dir) if files_dir is not None else None
        self.policies = dict(policies or {})
        self.exact_size = exact_size
        self.photo_pool = photo_pool  # benchmarks: photo id N shows photo N % photo_pool
        self._original_variant = "exact" if exact_size else "original"
        self._states: dict[str, PolicyState] = {}
        self.last_user_agent: str | None = None
        self._addresses = [address] * n_hosts  # distinct ports tell the hosts apart
        self.base_urls: list[str] = []
        self._requests: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._early: Counter[str] = Counter()
        self._not_before: dict[str, float] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> "ImageHosts":
        """Start the servers; returns self once every host is listening."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_sites())
            except BaseException as exc:  # reported to the caller's thread below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_sites())
            loop.close()

        self._thread = threading.Thread(target=serve, name="gbifxdl-image-hosts", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop the servers and their thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> "ImageHosts":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def _start_sites(self) -> None:
        for address in self._addresses:
            app = web.Application()
            app.router.add_get("/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, address, 0, backlog=1024)
            await site.start()
            port = runner.addresses[0][1]
            self._runners.append(runner)
            self.base_urls.append(f"http://{address}:{port}")
            policy = self.policies.get(len(self.base_urls) - 1, HostPolicy())
            self._states[f"{address}:{port}"] = PolicyState(policy)

    async def _stop_sites(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    # --- what tests read ----------------------------------------------------------------

    def photo_url(self, image_id: int, host: int = 0) -> str:
        """Return the URL of photo ``image_id`` on host number ``host``."""
        return f"{self.base_urls[host]}/photos/{image_id}/original.jpg"

    def fault_url(self, kind: str, image_id: int, host: int = 0) -> str:
        """Return the URL of an explicit fault (see the module docstring for kinds)."""
        return f"{self.base_urls[host]}/fault/{kind}/{image_id}.jpg"

    def fault_of(self, image_id: int) -> str | None:
        """Return the fault a ``/photos/{id}`` URL answers with under ``fault_rate``, or None."""
        if self.fault_rate <= 0:
            return None
        digest = hashlib.sha1(f"{self.seed}:{image_id}".encode()).digest()
        if int.from_bytes(digest[:4], "big") / 2**32 >= self.fault_rate:
            return None
        return RANDOM_FAULTS[digest[4] % len(RANDOM_FAULTS)]

    def requests_for(self, url: str) -> int:
        """Return how many requests reached ``url`` (scheme, host, port and path)."""
        with self._lock:
            return self._requests[url]

    def total_requests(self) -> int:
        """Return the number of requests all hosts received."""
        with self._lock:
            return sum(self._requests.values())

    def request_counts(self) -> dict[str, int]:
        """Return a copy of the per-URL request counts."""
        with self._lock:
            return dict(self._requests)

    def max_concurrent(self, host: str) -> int:
        """Return the most requests in flight at once on ``host`` (a base URL or ``ip:port``)."""
        with self._lock:
            return self._max_in_flight[_netloc(host)]

    def early_retries(self, host: str | None = None) -> int:
        """Return requests that came before their URL's ``Retry-After`` had passed."""
        with self._lock:
            if host is None:
                return sum(self._early.values())
            return self._early[_netloc(host)]

    def requests_inside_retry_after(self, host: str | None = None) -> int:
        """Return requests that reached ``host`` (all hosts when None) inside a ``Retry-After``
        window it had given, to any URL (those sent before the 429 could be read excepted)."""
        with self._lock:
            states = self._states.values() if host is None else [self._states[_netloc(host)]]
            return sum(s.inside_window for s in states)

    def throttled(self, host: str) -> int:
        """Return the 429 answers ``host``'s policy (rate or window) gave."""
        with self._lock:
            return self._states[_netloc(host)].throttled

    def reset_counts(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._requests.clear()
            self._max_in_flight.clear()
            self._early.clear()
            self._not_before.clear()
            for netloc, state in self._states.items():
                self._states[netloc] = PolicyState(state.policy)

    # --- serving ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        netloc = request.host
        url = f"http://{netloc}{request.path}"
        with self._lock:
            self._requests[url] += 1
            count = self._requests[url]
            self._in_flight[netloc] += 1
            in_flight = self._in_flight[netloc]
            self._max_in_flight[netloc] = max(self._max_in_flight[netloc], in_flight)
            not_before = self._not_before.get(url)
            if not_before is not None and time.monotonic() < not_before - 0.05:
                self._early[netloc] += 1
            self.last_user_agent = request.headers.get("User-Agent")
            state = self._states.get(netloc)
            refused = state.admit(time.monotonic()) if state is not None else None
        try:
            latency = state.policy.latency if state is not None and state.policy.latency is not None else self.latency
            if latency:
                await asyncio.sleep(latency)
            if refused is not None:
                return await self._send(request, 429, b"rate limited", "text/plain",
                                        {"Retry-After": str(refused)})
            limit = self.max_connections_per_host
            if limit is not None and in_flight > limit:
                return await self._send(request, 429, b"too many connections",
                                        "text/plain", {"Retry-After": "1"}, url=url, retry_after=1)
            return await self._route(request, url, count)
        except ConnectionError:
            # the client went away (a timeout or size limit on its side): nothing to answer
            return web.Response(status=499)
        finally:
            with self._lock:
                self._in_flight[netloc] -= 1

    async def _route(self, request: web.Request, url: str, count: int) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "photos":
            # a faulty photo is faulty in every rendition, as on a real host
            image_id = photo_id(parts[1])
            fault = self.fault_of(image_id)
            if fault is not None:
                return await self._fault(request, url, fault, image_id, count)
        extra = await extra_route(self, request, parts)
        if extra is not None:
            return extra
        if len(parts) == 3 and parts[0] == "photos":
            return await self._photo(request, image_id)
        if len(parts) == 2 and parts[0] == "files" and self.files_dir is not None:
            path = self.files_dir / parts[1]
            if path.is_file():
                data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
                return await self._send(request, 200, data, "image/jpeg")
        if len(parts) == 3 and parts[0] == "alias":
            return await self._photo(request, photo_id(parts[2].split(".")[0]))
        if len(parts) == 3 and parts[0] == "near" and parts[1] in ("reencoded", "resized"):
            data, ctype = await self._image(photo_id(parts[2].split(".")[0]), parts[1])
            return await self._send(request, 200, data, ctype)
        if len(parts) == 3 and parts[0] == "fault":
            return await self._fault(request, url, parts[1], photo_id(parts[2].split(".")[0]), count)
        return await self._send(request, 404, b"not found", "text/plain")

    async def _photo(self, request: web.Request, image_id: int, ctype: str | None = None) -> web.StreamResponse:
        data, default_type = await self._image(image_id, self._original_variant)
        return await self._send(request, 200, data, ctype or default_type)

    async def _image(self, image_id: int, variant: str = "original") -> tuple[bytes, str]:
        # generated off the event loop: one slow image must not stall the other hosts
        if self.photo_pool:
            image_id %= self.photo_pool
        return await asyncio.get_running_loop().run_in_executor(None, image_bytes, image_id, self.max_side, variant)

    async def _fault(self, request: web.Request, url: str, kind: str, image_id: int, count: int) -> web.StreamResponse:
        return await answer_fault(self, request, url, kind, image_id, count)

    async def _send(self, request: web.Request, status: int, body: bytes, ctype: str,
                    headers: dict[str, str] | None = None, *, url: str | None = None,
                    retry_after: float | None = None, pieces: int = 1, spread: float = 0.0,
                    truncate: bool = False) -> web.StreamResponse:
        # the body is written inside the handler, so in-flight counts cover the transfer
        if url is not None and retry_after is not None:
            with self._lock:
                self._not_before[url] = time.monotonic() + retry_after
                state = self._states.get(request.host)
                if state is not None:
                    state.note_retry_after(time.monotonic(), retry_after)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = ctype.split(";")[0]
        resp.content_length = len(body)
        await resp.prepare(request)
        if truncate:
            await resp.write(body[: len(body) // 2])
            await asyncio.sleep(0.01)
            if request.transport is not None:
                request.transport.close()
            return resp
        step = max(1, -(-len(body) // pieces))
        for start in range(0, len(body), step):
            await resp.write(body[start:start + step])
            if spread:
                await asyncio.sleep(spread / pieces)
        await resp.write_eof()
        return resp

def _netloc(host: str) -> str:
    return host.split("://", 1)[-1].split("/", 1)[0]
