"""Long-lived image worker processes, each fed over its own pipe from the event loop.

Cheaper per image than a ``ProcessPoolExecutor``: the options go to each worker once, a
task is a few bytes on the pipe, and results are read by the event loop itself
(``add_reader``), so there are no feeder or manager threads and no futures chained
across threads.

The body reaches the worker through shared memory: each worker has ``_DEPTH`` slots,
each an anonymous in-memory file (``memfd``) whose descriptor it received once. The
event loop copies the body into a free slot (one ``pwritev``), the worker reads it back
(one ``pread``) and writes only the result to the temporary path. Where ``memfd`` is
missing (not Linux) the body goes through the temporary file instead.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import reduction
from typing import Any

from gbifxdl._io import write_chunks, write_file
from gbifxdl.fetch.process import ImageFault, ProcessOptions, Processed, process_to_file, watch_parent

# tasks queued in each worker's pipe, so it starts the next image without waiting for
# the event loop to answer its last result; one shared-memory slot each
_DEPTH = 2
# a slot keeps the pages of the bodies written to it; a body past this size gives them back
_KEEP_BYTES = 16 << 20
_MEMFD = hasattr(os, "memfd_create") and reduction.HAVE_SEND_HANDLE


def _serve(conn: Any, parent: int, options: ProcessOptions, slots: int) -> None:
    """Run in a worker: process every task received until the pipe closes."""
    watch_parent(parent)
    fds = [reduction.recv_handle(conn) for _ in range(slots)]
    conn.send(("ok", os.getpid()))  # imports done: ready
    while True:
        try:
            slot, size, path = conn.recv()
        except (EOFError, OSError):
            return
        try:
            data = _read_all(path, fds[slot] if slot >= 0 else None, size)
            reply: tuple[Any, ...] = ("ok", process_to_file(data, path, options))
        except ImageFault as fault:
            reply = ("fault", fault.kind, fault.message)
        except Exception as exc:  # noqa: BLE001 - sent back and raised in the fetch
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


def _read_all(path: str, fd: int | None, size: int) -> bytes:
    """Return the body: ``size`` bytes of a slot, or the whole temporary file."""
    if fd is None:
        with open(path, "rb") as fh:
            return fh.read()
    data = os.pread(fd, size, 0)
    if len(data) != size:
        raise OSError(f"shared body cut short: {len(data)} of {size} bytes")
    return data


class _Worker:
    def __init__(self, process: Any, conn: Any, slots: list[int]) -> None:
        self.process = process
        self.conn = conn
        self.slots = slots                      # memfd per slot (empty without memfd)
        self.free = deque(range(_DEPTH))
        self.waiting: deque[tuple[asyncio.Future[Any], int, int]] = deque()  # future, slot, body size


class WorkerPool:
    """``workers`` processes running :func:`process_to_file` with fixed ``options``."""

    def __init__(self, workers: int, options: ProcessOptions) -> None:
        self.loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("forkserver")
        self._workers: list[_Worker] = []
        self._queue: deque[tuple[str, list[bytes], asyncio.Future[Any]]] = deque()
        self._broken = False
        for _ in range(workers):
            ours, theirs = ctx.Pipe(duplex=True)
            slots = [os.memfd_create("gbifxdl-body") for _ in range(_DEPTH)] if _MEMFD else []
            proc = ctx.Process(target=_serve, args=(theirs, os.getpid(), options, len(slots)), daemon=True,
                               name="gbifxdl-image-worker")
            proc.start()
            theirs.close()
            for fd in slots:
                reduction.send_handle(ours, fd, proc.pid)
            worker = _Worker(proc, ours, slots)
            # its "ready" (imports done) comes back first, like a reply that frees no slot
            worker.waiting.append((self.loop.create_future(), -1, 0))
            self._workers.append(worker)
            self.loop.add_reader(ours.fileno(), self._on_reply, worker)

    def process(self, path: str, chunks: list[bytes]) -> asyncio.Future[Processed]:
        """Return a future of the measurements of the image made from ``chunks`` (the body),
        written by a worker to ``path``. Raises ImageFault or BrokenProcessPool."""
        fut: asyncio.Future[Processed] = self.loop.create_future()
        if self._broken:
            fut.set_exception(BrokenProcessPool("an image worker died"))
            return fut
        self._queue.append((path, chunks, fut))
        self._dispatch()
        return fut

    def _dispatch(self) -> None:
        while self._queue:
            worker = min(self._workers, key=lambda w: len(w.waiting))
            if not worker.free:
                return
            path, chunks, fut = self._queue.popleft()
            slot = worker.free.popleft()
            size = sum(len(c) for c in chunks)
            if worker.slots:
                write_chunks(worker.slots[slot], chunks, 0)
            else:
                write_file(path, chunks)
            worker.conn.send((slot if worker.slots else -1, size, path))  # a few bytes: never blocks
            worker.waiting.append((fut, slot, size))

    def _on_reply(self, worker: _Worker) -> None:
        try:
            reply = worker.conn.recv()
        except (EOFError, OSError):
            self._break()
            return
        fut, slot, size = worker.waiting.popleft()
        if slot >= 0:
            # a slot only grows to the body just written (larger ones were cut back), so
            # that body's size says whether its pages should be given back
            if worker.slots and size > _KEEP_BYTES:
                os.ftruncate(worker.slots[slot], 0)
            worker.free.append(slot)
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
            for fut, _, _ in worker.waiting:
                if not fut.done():
                    fut.set_exception(BrokenProcessPool("an image worker died"))
            worker.waiting.clear()
        while self._queue:
            fut = self._queue.popleft()[2]
            if not fut.done():
                fut.set_exception(BrokenProcessPool("an image worker died"))

    def _forget(self, worker: _Worker) -> None:
        if not worker.conn.closed:
            self.loop.remove_reader(worker.conn.fileno())
            worker.conn.close()
        for fd in worker.slots:
            os.close(fd)
        worker.slots = []

    def shutdown(self) -> None:
        """End every worker (they exit when their pipe closes) and wait for them."""
        for worker in self._workers:
            self._forget(worker)
            for fut, _, _ in worker.waiting:
                fut.cancel()
        for _, _, fut in self._queue:
            fut.cancel()
        self._queue.clear()
        for worker in self._workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
