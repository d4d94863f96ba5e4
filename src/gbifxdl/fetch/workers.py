"""Long-lived image worker processes, each fed over its own pipe from the event loop.

Cheaper per image than a ``ProcessPoolExecutor``: the options go to each worker once, a
task is a few bytes on the pipe, and results are read by the event loop itself
(``add_reader``), so there are no feeder or manager threads and no futures chained
across threads.

The body reaches the worker through shared memory: each worker has ``_DEPTH`` slots,
each an anonymous in-memory file (``memfd``) whose descriptor it received once, mapped
in both processes. The event loop copies the body into a free slot's mapping, the worker
copies it out of its own, and writes only the result to the temporary path. (Mapped
copies are plain memory copies: measured a third cheaper than ``pwrite`` and ``pread``
on the file, which the kernel copies page by page.) Where ``memfd`` is missing (not
Linux) the body goes through the temporary file instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import marshal
import mmap
import multiprocessing
import os
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver, reduction
from typing import Any

from gbifxdl._io import write_file
from gbifxdl.fetch.image_types import ImageFault, Processed, ProcessOptions

# tasks queued in each worker's pipe, so it starts the next image without waiting for
# the event loop to answer its last result; one shared-memory slot each
_DEPTH = 2
# a slot keeps the pages of the bodies written to it; a body past this size gives them back
_KEEP_BYTES = 16 << 20
_MIN_BYTES = 1 << 20
_MEMFD = hasattr(os, "memfd_create") and reduction.HAVE_SEND_HANDLE
_FIELDS = tuple(f.name for f in dataclasses.fields(Processed))
_LENGTH = struct.Struct("!I")


def _serve(conn: Any, parent: int, options: ProcessOptions, slots: int) -> None:
    """Run in a worker: process every task received until the pipe closes."""
    from gbifxdl.fetch.process import process_to_file  # the imaging libraries: here only

    _watch_parent(parent)
    views = [_SlotView(reduction.recv_handle(conn)) for _ in range(slots)]
    channel = _Channel(conn.fileno())
    channel.send(("ready", os.getpid()))  # imports done
    while True:
        try:
            tasks = channel.receive()
        except (EOFError, OSError):
            return
        for slot, size, path in tasks:
            try:
                if slot >= 0:
                    data = views[slot].read(size)
                else:
                    with open(path, "rb") as fh:
                        data = fh.read()
                done = process_to_file(data, path, options)
                reply: tuple[Any, ...] = ("ok", tuple(getattr(done, f) for f in _FIELDS))
            except ImageFault as fault:
                reply = ("fault", fault.kind, fault.message)
            except Exception as exc:  # noqa: BLE001 - sent back and raised in the fetch
                reply = ("error", f"{type(exc).__name__}: {exc}")
            channel.send(reply)


class _Channel:
    """Messages over a pipe: marshalled tuples of plain values, each behind its length.

    A tenth of the cost of pickling, and one system call per message sent; a receive
    reads all that has arrived at once (``Connection.recv`` reads twice per message).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def send(self, message: tuple[Any, ...]) -> None:
        payload = marshal.dumps(message)
        view = memoryview(_LENGTH.pack(len(payload)) + payload)
        while view:
            view = view[os.write(self.fd, view):]

    def receive(self) -> list[Any]:
        """Return the messages complete after one read (none when only part of one came)."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            raise EOFError("the other end closed the pipe")
        buffer = self.buffer
        buffer += data
        messages, pos = [], 0
        while len(buffer) - pos >= 4:
            end = pos + 4 + _LENGTH.unpack_from(buffer, pos)[0]
            if end > len(buffer):
                break
            messages.append(marshal.loads(buffer[pos + 4:end]))
            pos = end
        del buffer[:pos]
        return messages


class _Slot:
    """The event loop's end of one shared-memory slot: a memfd, mapped, grown as needed."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("gbifxdl-body")
        self.map: mmap.mmap | None = None

    def put(self, chunks: list[bytes], size: int) -> None:
        """Copy the body (``chunks``, ``size`` bytes) to the start of the slot."""
        if self.map is None or len(self.map) < size:
            self._map(max(_MIN_BYTES, 1 << (size - 1).bit_length()))
        pos = 0
        for chunk in chunks:
            end = pos + len(chunk)
            self.map[pos:end] = chunk  # type: ignore[index]
            pos = end

    def release(self, size: int) -> None:
        """The worker is done with a body of ``size`` bytes: give back the pages of a big one."""
        if size > _KEEP_BYTES:
            self._map(_MIN_BYTES)

    def _map(self, capacity: int) -> None:
        # the worker reads only the first `size` bytes of a task, which the file always
        # holds: a shrink never leaves it reading past the end of its (older) mapping
        if self.map is not None:
            self.map.close()
        os.ftruncate(self.fd, capacity)
        self.map = mmap.mmap(self.fd, capacity)

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        os.close(self.fd)


class _SlotView:
    """A worker's end of a slot: mapped read-only, mapped again when the slot has grown."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.map: mmap.mmap | None = None

    def read(self, size: int) -> bytes:
        if self.map is None or len(self.map) < size:
            if self.map is not None:
                self.map.close()
            self.map = mmap.mmap(self.fd, os.fstat(self.fd).st_size, prot=mmap.PROT_READ)
        return self.map[:size]


def start_fork_server() -> None:
    """Start the process the image workers are forked from, loading their modules.

    Call it early: the fork server imports the imaging libraries on another core while
    this process goes on, and every worker is then forked with them loaded. Does nothing
    once the server runs.
    """
    multiprocessing.get_context("forkserver")  # the fork server must be usable here
    forkserver.set_forkserver_preload([__name__, "gbifxdl.fetch.process"])
    with _main_module_hidden():
        forkserver.ensure_running()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Hide the caller's script from the processes started meanwhile.

    Else each would import it again, and a script without an ``if __name__ ==
    "__main__"`` guard would run again in every worker.
    """
    main = sys.modules.get("__main__")
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if main and name in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


class _Worker:
    def __init__(self, process: Any, conn: Any, slots: list[_Slot]) -> None:
        self.process = process
        self.conn = conn                        # kept open for the pipe's life; messages go by channel
        self.channel = _Channel(conn.fileno())
        self.slots = slots                      # empty without memfd
        self.free = deque(range(_DEPTH))
        self.waiting: deque[tuple[asyncio.Future[Any], int, int]] = deque()  # future, slot, body size


class WorkerPool:
    """``workers`` processes running :func:`process_to_file` with fixed ``options``."""

    def __init__(self, workers: int, options: ProcessOptions) -> None:
        self.loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("forkserver")
        start_fork_server()
        self._workers: list[_Worker] = []
        self._queue: deque[tuple[str, list[bytes], asyncio.Future[Any]]] = deque()
        self._broken = False
        for _ in range(workers):
            ours, theirs = ctx.Pipe(duplex=True)
            slots = [_Slot() for _ in range(_DEPTH)] if _MEMFD else []
            proc = ctx.Process(target=_serve, args=(theirs, os.getpid(), options, len(slots)), daemon=True,
                               name="gbifxdl-image-worker")
            with _main_module_hidden():
                proc.start()
            theirs.close()
            for sl in slots:
                reduction.send_handle(ours, sl.fd, proc.pid)
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
                worker.slots[slot].put(chunks, size)
            else:
                write_file(path, chunks)
            worker.channel.send((slot if worker.slots else -1, size, path))  # a few bytes: never blocks
            worker.waiting.append((fut, slot, size))

    def _on_reply(self, worker: _Worker) -> None:
        try:
            replies = worker.channel.receive()
        except (EOFError, OSError):
            self._break()
            return
        for reply in replies:
            fut, slot, size = worker.waiting.popleft()
            if slot >= 0:
                if worker.slots:
                    worker.slots[slot].release(size)
                worker.free.append(slot)
            if not fut.done():
                if reply[0] == "ok":
                    fut.set_result(Processed(*reply[1]))
                elif reply[0] == "ready":
                    fut.set_result(None)
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
        for sl in worker.slots:
            sl.close()
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


def _watch_parent(pid: int) -> None:
    """Start a thread ending this worker once process ``pid`` (the fetch) is gone.

    A fetch killed with SIGKILL cannot stop its workers, and they would wait for work
    forever (their queue's other end stays open in the workers themselves).
    """

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="gbifxdl-watch-parent", daemon=True).start()
