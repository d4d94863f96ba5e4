"""Long-lived image processes, each fed over its own pipe from the event loop.

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

Nothing one image does stops the fetch: an exception while processing it is its outcome
(``process_error``), and a worker that dies on it (a segfault in a native decoder, the
out-of-memory killer) is replaced, the image marked ``worker_died`` and the images queued
behind it handed to the workers left. Workers ignore SIGINT (a terminal's Ctrl-C reaches
the whole process group): the fetch shuts them down itself. Their stderr, where native
decoders write warnings, goes to the dataset's log, never the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver, reduction
from pathlib import Path
from typing import Any

from gbifxdl._io import write_file
from gbifxdl.fetch import _faults
from gbifxdl.fetch._pipes import Channel, Slot, SlotView
from gbifxdl.fetch.image_types import ImageFault, Processed, ProcessOptions, WorkerDied, unexpected_fault

# tasks queued in each worker's pipe, so it starts the next image without waiting for
# the event loop to answer its last result; one shared-memory slot each
_DEPTH = 2
_MEMFD = hasattr(os, "memfd_create") and reduction.HAVE_SEND_HANDLE
_FIELDS = tuple(f.name for f in dataclasses.fields(Processed))
# workers in a row that die before their imports are done: past this the pool is broken
# (the machine cannot start one), rather than starting them for ever
_MAX_STARTUP_DEATHS = 3
# seconds one image may take in a worker: past this the worker is killed (a decoder caught
# in a loop) and the image marked; a 180-megapixel image takes a few seconds
_MAX_SECONDS = 300.0


def _serve(conn: Any, parent: int, options: ProcessOptions, slots: int, stderr: str | None, faults: bool) -> None:
    """Run in a worker: process every task received until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the fetch ends its workers itself
    if stderr is not None:
        _stderr_to(stderr)
    from gbifxdl.fetch.process import process_to_file  # the imaging libraries: here only

    _watch_parent(parent)
    views = [SlotView(reduction.recv_handle(conn)) for _ in range(slots)]
    channel = Channel(conn.fileno())
    inject = _faults.inject if faults else None
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
                if inject is not None:
                    inject(data)
                done = process_to_file(data, path, options)
                reply: tuple[Any, ...] = ("ok", tuple(getattr(done, f) for f in _FIELDS))
            except ImageFault as fault:
                reply = ("fault", fault.kind, fault.message)
            except OSError as exc:
                if exc.errno is None:  # raised by a decoder, not the file system
                    fault = unexpected_fault(exc)
                    reply = ("fault", fault.kind, fault.message)
                else:  # disk full, no permission, ...: every image would fail alike
                    reply = ("error", exc.errno, f"{exc.strerror}: {path}")
            except Exception as exc:  # noqa: BLE001 - whatever one image does is its outcome
                fault = unexpected_fault(exc)
                reply = ("fault", fault.kind, fault.message)
            try:
                channel.send(reply)
            except OSError:  # the fetch has gone
                return


def _stderr_to(path: str) -> None:
    """Send this process's stderr (native decoders' warnings, Python's) to the end of ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def start_fork_server() -> None:
    """Start the process the image workers are forked from, loading their modules.

    Call it early: the fork server imports the imaging libraries on another core while
    this process goes on, and every worker is then forked with them loaded. Does nothing
    once the server runs.
    """
    multiprocessing.get_context("forkserver")  # the fork server must be usable here
    forkserver.set_forkserver_preload([__name__, "gbifxdl.fetch.process"])
    # started with SIGINT ignored, it keeps it ignored for life, and so do the workers
    # forked from it, from their first instruction (they restore the server's handlers)
    with _main_module_hidden(), _sigint_ignored(), _glibc_malloc_tuning():
        forkserver.ensure_running()


_DASK_MALLOC = "MALLOC_TRIM_THRESHOLD_"


@contextlib.contextmanager
def _glibc_malloc_tuning() -> Iterator[None]:
    """Start processes meanwhile with glibc's own malloc tuning, not the one Dask sets.

    Dask sets ``MALLOC_TRIM_THRESHOLD_`` (``distributed.nanny.pre-spawn-environ``) in its
    workers, and in any process that starts a ``LocalCluster``, for good. It also pins
    glibc's mmap threshold at 128 KiB: every buffer of a decoded or re-encoded image is then
    mapped and unmapped afresh, page faults and all. The image processes spent 10% more
    CPU that way (bench/cluster.py); their fork server, and so they, start without it.
    """
    saved = os.environ.pop(_DASK_MALLOC, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[_DASK_MALLOC] = saved


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT meanwhile (a no-op outside the main thread, where it cannot be set)."""
    try:
        before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


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
    def __init__(self, process: Any, conn: Any, slots: list[Slot]) -> None:
        self.process = process
        self.conn = conn                        # kept open for the pipe's life; messages go by channel
        self.channel = Channel(conn.fileno())
        self.slots = slots                      # empty without memfd
        self.free = deque(range(_DEPTH))
        self.since = 0.0                        # loop time the task in its hands started
        self.overdue = False                    # killed for taking too long
        # sent and not answered yet, oldest (the one in the worker's hands) first:
        # future, slot, body size, temporary path and body (kept to hand it to another worker)
        self.waiting: deque[tuple[asyncio.Future[Any], int, int, str | None, list[bytes] | None]] = deque()


class ImageProcessPool:
    """``workers`` processes running :func:`process_to_file` with fixed ``options``.

    ``stderr``: the file the workers' stderr goes to (the dataset's log); None leaves it.
    """

    def __init__(self, workers: int, options: ProcessOptions, stderr: str | Path | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._ctx = multiprocessing.get_context("forkserver")
        start_fork_server()
        self._options = options
        self._stderr = None if stderr is None else str(stderr)
        self._faults = _faults.enabled()
        self._queue: deque[tuple[str, list[bytes], asyncio.Future[Any]]] = deque()
        self._broken = False
        self._startup_deaths = 0
        self.replaced = 0                       # workers that died and were replaced
        self._workers: list[_Worker] = [self._start() for _ in range(workers)]
        self._watch = self.loop.call_later(_MAX_SECONDS / 4, self._watchdog)

    def _start(self) -> _Worker:
        ours, theirs = self._ctx.Pipe(duplex=True)
        slots = [Slot() for _ in range(_DEPTH)] if _MEMFD else []
        proc = self._ctx.Process(target=_serve, daemon=True, name="gbifxdl-image-worker",
                                 args=(theirs, os.getpid(), self._options, len(slots), self._stderr, self._faults))
        with _main_module_hidden():
            proc.start()
        theirs.close()
        for sl in slots:
            reduction.send_handle(ours, sl.fd, proc.pid)
        worker = _Worker(proc, ours, slots)
        # its "ready" (imports done) comes back first, like a reply that frees no slot
        worker.waiting.append((self.loop.create_future(), -1, 0, None, None))
        self.loop.add_reader(ours.fileno(), self._on_reply, worker)
        return worker

    def process(self, path: str, chunks: list[bytes]) -> asyncio.Future[Processed]:
        """Return a future of the measurements of the image made from ``chunks`` (the body),
        written by a worker to ``path``. Raises ImageFault, WorkerDied (the worker died on
        this image; it was replaced), OSError (cannot write) or BrokenProcessPool."""
        fut: asyncio.Future[Processed] = self.loop.create_future()
        if self._broken:
            fut.set_exception(BrokenProcessPool("the image workers cannot start"))
            return fut
        self._queue.append((path, chunks, fut))
        self._dispatch()
        return fut

    def _dispatch(self) -> None:
        while self._queue and not self._broken:
            worker = min(self._workers, key=lambda w: len(w.waiting))
            if not worker.free:
                return
            path, chunks, fut = self._queue.popleft()
            slot = worker.free.popleft()
            size = sum(len(c) for c in chunks)
            try:
                if worker.slots:
                    worker.slots[slot].put(chunks, size)
                else:
                    write_file(path, chunks)
                worker.channel.send((slot if worker.slots else -1, size, path))  # a few bytes: never blocks
            except (BrokenPipeError, ConnectionResetError):  # it died: the image goes to the next one
                self._queue.appendleft((path, chunks, fut))
                self._lost(worker)
                continue
            if not worker.waiting:
                worker.since = self.loop.time()
            worker.waiting.append((fut, slot, size, path, chunks))

    def _on_reply(self, worker: _Worker) -> None:
        try:
            replies = worker.channel.receive()
        except (EOFError, OSError):
            self._lost(worker)
            self._dispatch()
            return
        worker.since = self.loop.time()  # the next task in its pipe starts now
        for reply in replies:
            fut, slot, size, _, _ = worker.waiting.popleft()
            if slot >= 0:
                if worker.slots:
                    worker.slots[slot].release(size)
                worker.free.append(slot)
            if not fut.done():
                if reply[0] == "ok":
                    fut.set_result(Processed(*reply[1]))
                elif reply[0] == "ready":
                    self._startup_deaths = 0
                    fut.set_result(None)
                elif reply[0] == "fault":
                    fut.set_exception(ImageFault(reply[1], reply[2]))
                else:
                    fut.set_exception(OSError(reply[1], reply[2]))
        self._dispatch()

    def _lost(self, worker: _Worker) -> None:
        """A worker died: mark the image in its hands, queue the others again, start another."""
        self._forget(worker)
        worker.process.join(2)
        how = f"stopped after {_MAX_SECONDS:.0f} s on one image" if worker.overdue else _death(worker.process.exitcode)
        waiting = list(worker.waiting)
        worker.waiting.clear()
        if waiting and waiting[0][3] is None:  # before its imports were done
            self._startup_deaths += 1
        elif waiting:
            fut = waiting[0][0]
            if not fut.done():
                fut.set_exception(WorkerDied(f"the image worker process died ({how}) while processing this image"))
        for fut, _, _, path, chunks in reversed(waiting[1:]):
            self._queue.appendleft((path, chunks, fut))  # type: ignore[arg-type]
        if self._startup_deaths > _MAX_STARTUP_DEATHS:
            self._break(f"image workers die as they start ({how})")
            return
        try:
            self._workers[self._workers.index(worker)] = self._start()
            self.replaced += 1
        except Exception as exc:  # noqa: BLE001 - the fork server is gone, no memory, ...
            self._break(f"cannot start an image worker: {exc}")

    def _break(self, why: str) -> None:
        self._broken = True
        for worker in self._workers:
            self._forget(worker)
            for fut, *_ in worker.waiting:
                if not fut.done():
                    fut.set_exception(BrokenProcessPool(why))
            worker.waiting.clear()
        while self._queue:
            fut = self._queue.popleft()[2]
            if not fut.done():
                fut.set_exception(BrokenProcessPool(why))

    def _forget(self, worker: _Worker) -> None:
        if not worker.conn.closed:
            self.loop.remove_reader(worker.conn.fileno())
            worker.conn.close()
        for sl in worker.slots:
            sl.close()
        worker.slots = []

    def _watchdog(self) -> None:
        """Kill the workers busy on one image for over ``_MAX_SECONDS`` (their EOF marks it)."""
        now = self.loop.time()
        for worker in self._workers:
            started = worker.waiting and worker.waiting[0][3] is not None
            if started and not worker.overdue and now - worker.since > _MAX_SECONDS:
                worker.overdue = True
                worker.process.kill()
        self._watch = self.loop.call_later(_MAX_SECONDS / 4, self._watchdog)

    def shutdown(self) -> None:
        """End every worker (they exit when their pipe closes, after the image in hand) and wait."""
        self._watch.cancel()
        for worker in self._workers:
            self._forget(worker)
            for fut, *_ in worker.waiting:
                fut.cancel()
            worker.waiting.clear()
        for _, _, fut in self._queue:
            fut.cancel()
        self._queue.clear()
        deadline = time.monotonic() + 5
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)


def _death(exitcode: int | None) -> str:
    """Return how a process ended, in words (``killed by SIGKILL (out of memory?)``, ...)."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exit code {exitcode}"


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
