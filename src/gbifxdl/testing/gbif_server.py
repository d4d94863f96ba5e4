"""A GBIF on loopback: the occurrence download API, its archive host, species match and occurrence search.

>>> with GbifEmulator(prepare_seconds=0.2, run_seconds=0.2) as gbif:   # doctest: +SKIP
...     key = gbifxdl.gbif.post_request(predicate, credentials=..., api_url=gbif.api_url)

The API answers on ``http://127.0.0.1:PORT/v1`` with GBIF's paths, status codes, content
types and bodies (checked against recorded answers); downloads go PREPARING -> RUNNING ->
SUCCEEDED over a configurable time while a synthetic Darwin Core Archive is written;
``GET .../request/KEY.zip`` redirects to a second loopback host that serves it with Range.
Runs in a background thread with its own event loop; binds only 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from aiohttp import web

from gbifxdl.testing._gbif_handlers import STATE, add_api_routes, add_archive_routes, set_status
from gbifxdl.testing.derived_datasets import add_derived_dataset_routes
from gbifxdl.testing._gbif_state import Download, EmulatorState
from gbifxdl.testing._search import SearchState, add_search_routes, cached

__all__ = ["GbifEmulator", "RequestRecord"]

log = logging.getLogger("gbifxdl.testing")


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered: which host, method, path, status, and Range asked."""

    host: str  # "api" or "archive"
    method: str
    path: str
    status: int
    range: str | None = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    prefix: str
    status: int
    body: str
    times: int


def _loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the GBIF emulator binds loopback addresses only (127.0.0.0/8), not {host}")
    return host


def _bound_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class GbifEmulator:
    """A local GBIF for tests and demos, started and stopped as a context manager."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        seed: int = 0,
        n_occurrences: int = 200,
        prepare_seconds: float = 0.5,
        run_seconds: float = 1.0,
        max_simultaneous: int = 3,
        image_base_urls: Sequence[str] = (),
        archive_dir: Path | None = None,
        host: str = "127.0.0.1",
        archive_host: str = "127.0.0.1",
        universe: Any = None,
    ) -> None:
        """``universe``: the taxa and occurrences to answer from (a ``Universe``; by default
        ``Universe(seed=seed)``, built on first use)."""
        self.users = dict(users) if users is not None else {"demo": "demo-password"}
        self.seed = seed
        self.n_occurrences = n_occurrences
        self.image_base_urls = tuple(image_base_urls)
        self.host = _loopback(host)
        self.archive_host = _loopback(archive_host)
        self._own_archive_dir = archive_dir is None
        self._archive_dir = Path(archive_dir) if archive_dir is not None else None
        self._settings = (prepare_seconds, run_seconds, max_simultaneous)
        self.requests: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._universe: Any = universe
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._runners: list[web.AppRunner] = []
        self.state: EmulatorState | None = None
        # the occurrence search answers from the occurrences a download of the same query holds
        self.search = SearchState(cached(self._occurrences_of))
        self.api_url = ""
        self.archive_url = ""

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> GbifEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start both hosts in a background thread; returns once they accept connections."""
        if self._thread is not None:
            return
        if self._archive_dir is None:
            self._archive_dir = Path(tempfile.mkdtemp(prefix="gbifxdl-emulator-"))
        self._archive_dir.mkdir(parents=True, exist_ok=True)
        prepare, run, limit = self._settings
        self.state = EmulatorState(
            users=self.users, seed=self.seed, n_occurrences=self.n_occurrences, prepare_seconds=prepare,
            run_seconds=run, max_simultaneous=limit, archive_dir=self._archive_dir, build_archive=self._build_archive,
        )
        self._loop = asyncio.new_event_loop()
        # Archives are written in our own pool, so stop() can wait for them before cleaning up.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gbif-emulator-archive")
        self._loop.set_default_executor(self._executor)
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start_sites())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="gbif-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Stop both hosts and remove the archives the emulator wrote in its own temp folder."""
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop_sites(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._loop.close()
        self._thread = None
        if self._own_archive_dir and self._archive_dir is not None:
            shutil.rmtree(self._archive_dir, ignore_errors=True)
            self._archive_dir = None

    async def _start_sites(self) -> None:
        assert self.state is not None
        api = web.Application(middlewares=[self._middleware()])
        api.on_response_prepare.append(self._recorder("api"))
        api[STATE] = self.state
        add_api_routes(api)
        add_derived_dataset_routes(api)
        self._add_species_routes(api)
        add_search_routes(api, self.search)
        archive = web.Application(middlewares=[self._middleware()])
        archive.on_response_prepare.append(self._recorder("archive"))
        archive[STATE] = self.state
        add_archive_routes(archive)
        for app, host in ((api, self.host), (archive, self.archive_host)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            sock = _bound_socket(host)
            await web.SockSite(runner, sock).start()
            self._runners.append(runner)
            port = sock.getsockname()[1]
            if app is api:
                self.api_url = f"http://{host}:{port}/v1"
            else:
                self.archive_url = f"http://{host}:{port}"
        self.state.api_url, self.state.archive_url = self.api_url, self.archive_url

    async def _stop_sites(self) -> None:
        assert self.state is not None
        for download in self.state.downloads.values():
            if download.task is not None and not download.task.done():
                download.task.cancel()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    def _add_species_routes(self, app: web.Application) -> None:
        try:
            from gbifxdl.testing.species import add_species_routes

            universe = self.universe
        except ImportError as exc:  # species match is optional for download-only use
            log.warning("GBIF emulator without species match: %s", exc)
            return
        add_species_routes(app, universe)

    # --- what tests use ----------------------------------------------------------------

    @property
    def universe(self) -> Any:
        """Return the synthetic universe behind species match and the archives (built once)."""
        if self._universe is None:
            from gbifxdl.testing.universe import Universe

            self._universe = Universe(seed=self.seed)
        return self._universe

    def set_status(self, key: str, status: str) -> None:
        """Force a download's status (FAILED, KILLED, CANCELLED, FILE_ERASED, SUSPENDED, ...)."""
        assert self.state is not None, "start the emulator first"
        with self.state.lock:
            download = self.state.find(key)
            if download is None:
                raise KeyError(f"the emulator has no download {key}")
            set_status(download, status)

    def download(self, key: str) -> Download:
        """Return the emulator's record of a download (its archive path, size, status)."""
        assert self.state is not None, "start the emulator first"
        download = self.state.find(key)
        if download is None:
            raise KeyError(f"the emulator has no download {key}")
        return download

    def rate_limit_search(self, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` occurrence searches with GBIF's 429 and ``Retry-After``."""
        self.search.rate_limit(times, retry_after)

    def fail_next(self, path_prefix: str, status: int, body: str = "", times: int = 1) -> None:
        """Answer the next ``times`` requests whose path starts with ``path_prefix`` with ``status``."""
        self._faults.append(_Fault(path_prefix, status, body, times))

    def cut_next(self, after_bytes: int, times: int = 1, path_prefix: str = "/occurrence/download/request/") -> None:
        """Drop the next ``times`` archive transfers after ``after_bytes`` bytes (an interrupted download)."""
        assert self.state is not None, "start the emulator first"
        with self.state.lock:
            self.state.cuts.append([path_prefix, after_bytes, times])

    # --- internals -----------------------------------------------------------------------

    def _middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def inject_faults(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            fault = next((f for f in self._faults if f.times > 0 and request.path.startswith(f.prefix)), None)
            if fault is None:
                return await handler(request)
            fault.times -= 1
            return web.Response(status=fault.status, text=fault.body)

        return inject_faults

    def _recorder(self, host: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
        # Recorded when headers go out, so a file's 206 (decided late) is what is logged.
        async def record(request: web.Request, response: web.StreamResponse) -> None:
            self.requests.append(
                RequestRecord(host, request.method, request.path, response.status, request.headers.get("Range"), dict(request.query))
            )

        return record

    def _image_bases(self) -> tuple[str, ...]:
        return self.image_base_urls or ("http://127.0.0.1:8080",)

    def _occurrences_of(self, predicate: dict | None) -> list[Any]:
        """Return the occurrences a download of ``predicate`` holds, in the archive's order."""
        return list(self.universe.occurrences(self.n_occurrences, predicate, image_base_urls=self._image_bases()))

    def _build_archive(self, download: Download, path: Path) -> tuple[int, int]:
        """Write the download's DwC-A (in a worker thread); return (zip size, occurrences)."""
        from gbifxdl.testing.dwca import write_dwca

        stats = write_dwca(
            path,
            n_occurrences=self.n_occurrences,
            predicate=download.request.get("predicate"),
            seed=self.seed,
            universe=self.universe,
            image_base_urls=self._image_bases(),
            download_key=download.key,
            doi=download.doi,
            created=download.created,
        )
        return stats.size, stats.n_occurrences
