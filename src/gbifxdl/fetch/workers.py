"""Long-lived image worker processes, each fed over its own pipe from the event loop.

Cheaper per image than a ``ProcessPoolExecutor``: a task is the temporary file's path
(a few bytes on the pipe), the options go to each worker once, and results are read
by the event loop itself (``add_reader``), so there are no feeder or manager threads,
no wake-up pipe and no futures chained across threads.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from gbifxdl.fetch.process import ImageFault, ProcessOptions, Processed, process_file, watch_parent

# tasks queued in each worker's pipe, so it starts the next image without waiting for
# the event loop to answer its last result
_DEPTH = 2


def _serve(conn: Any, parent: int, options: ProcessOptions) -> None:
    """Run in a worker: process every path received until the pipe closes."""
    watch_parent(parent)
    conn.send(("ok", os.getpid()))  # imports done: ready
    while True:
        try:
            path = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[Any, ...] = ("ok", process_file(path.decode(), options))
        except ImageFault as fault:
            reply = ("fault", fault.kind, fault.message)
        except Exception as exc:  # noqa: BLE001 - sent back and raised in the fetch
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


class _Worker:
    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.waiting: deque[asyncio.Future[Any]] = deque()


class WorkerPool:
    """``workers`` processes running :func:`process_file` with fixed ``options``."""

    def __init__(self, workers: int, options: ProcessOptions) -> None:
        self.loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("forkserver")
        self._workers: list[_Worker] = []
        self._queue: deque[tuple[bytes, asyncio.Future[Any]]] = deque()
        self._broken = False
        for _ in range(workers):
            ours, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_serve, args=(theirs, os.getpid(), options), daemon=True,
                               name="gbifxdl-image-worker")
            proc.start()
            theirs.close()
            worker = _Worker(proc, ours)
            worker.waiting.append(self.loop.create_future())  # its "ready"
            self._workers.append(worker)
            self.loop.add_reader(ours.fileno(), self._on_reply, worker)

    async def ready(self) -> None:
        """Wait until every worker has imported what it needs."""
        await asyncio.gather(*(w.waiting[0] for w in self._workers))

    def process(self, path: str) -> asyncio.Future[Processed]:
        """Return a future of :func:`process_file` of ``path`` (raises ImageFault, BrokenProcessPool)."""
        fut: asyncio.Future[Processed] = self.loop.create_future()
        if self._broken:
            fut.set_exception(BrokenProcessPool("an image worker died"))
            return fut
        self._queue.append((path.encode(), fut))
        self._dispatch()
        return fut

    def _dispatch(self) -> None:
        while self._queue:
            worker = min(self._workers, key=lambda w: len(w.waiting))
            if len(worker.waiting) >= _DEPTH:
                return
            path, fut = self._queue.popleft()
            worker.conn.send_bytes(path)  # a few bytes: never blocks on a pipe
            worker.waiting.append(fut)

    def _on_reply(self, worker: _Worker) -> None:
        try:
            reply = worker.conn.recv()
        except (EOFError, OSError):
            self._break()
            return
        fut = worker.waiting.popleft()
        if not fut.done():
            if reply[0] == "ok":
                fut.set_result(reply[1])
            elif reply[0] == "fault":
                fut.set_exception(ImageFault(reply[1], reply[2]))
            else:
                fut.set_exception(RuntimeError(f"image worker failed: {reply[1]}"))
        self._dispatch()

    def _break(self) -> None:
        self._broken = True
        for worker in self._workers:
            self._forget(worker)
            for fut in worker.waiting:
                if not fut.done():
                    fut.set_exception(BrokenProcessPool("an image worker died"))
            worker.waiting.clear()
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(BrokenProcessPool("an image worker died"))

    def _forget(self, worker: _Worker) -> None:
        if not worker.conn.closed:
            self.loop.remove_reader(worker.conn.fileno())
            worker.conn.close()

    def shutdown(self) -> None:
        """End every worker (they exit when their pipe closes) and wait for them."""
        for worker in self._workers:
            self._forget(worker)
            for fut in worker.waiting:
                fut.cancel()
        for _, fut in self._queue:
            fut.cancel()
        self._queue.clear()
        for worker in self._workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
