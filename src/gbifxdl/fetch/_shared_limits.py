"""Per-host limits shared by every worker of a Dask cluster, held by its scheduler.

The scheduler runs one :class:`~gbifxdl.fetch._host_limiter.HostLimiter` per host, the
same code a single machine runs: concurrency slots, request rate, the pause a 429's
``Retry-After`` asks for, and the adaptation to how the host answers. Before each request
(each redirect hop) a worker asks it for a slot and gives the slot back with how the host
answered. So a host never sees more requests in flight, or per second, than its limits,
whatever the number of workers, and a ``Retry-After`` met by one worker holds back all
of them. Fixed rates are paced at :data:`RATE_MARGIN` of their value at the scheduler:
a request leaves its worker a few milliseconds after its grant, and that jitter must
not push two requests into one rate interval.

The messages ride on the stream every Dask worker keeps open to its scheduler, never on
a connection of their own, and what a worker's engine says within a few milliseconds
travels as one ``gbifxdl_batch`` (Dask handles each stream message at some cost; a batch
is one): ``want`` (a slot, please), ``leave`` (the slot back, with the answer),
``progress``, ``unit_ends`` (free what the unit still holds). The grants a batch's wants
get at once go back as one ``gbifxdl_grants``; a want that waits for its slot gets its own
(a grant, or the host's deadline passed). Slots held by a worker that dies are freed when the scheduler
loses it, and a slot granted to a worker or unit already gone is given back at once.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distributed.comm import CommClosedError
from distributed.diagnostics.plugin import SchedulerPlugin

from gbifxdl.fetch._host_limiter import HostDeadline, HostLimiter
from gbifxdl.fetch.settings import FetchSettings

if TYPE_CHECKING:
    from distributed import Scheduler, Worker

    from gbifxdl.fetch.download import Attempt
    from gbifxdl.fetch.per_host import HostScheduler

PLUGIN_PREFIX = "gbifxdl-limits-"
PROGRESS_EVERY = 0.5  # seconds between a worker's progress reports
RATE_MARGIN = 0.9     # fixed rates are paced at this share of their value (see above)
ENDED_KEPT = 10_000   # units remembered as ended (their late grants are given back)


@dataclass(frozen=True)
class _Answer:
    """What the limiter needs of a host's answer (an Attempt without its body)."""

    outcome: str
    throttle: bool
    retry_after: float | None


class SharedLimits(SchedulerPlugin):
    """The scheduler's side of one output's fetches: installs :class:`RunLimits` and the handlers.

    Keyed by the output, not by the client: a client that disconnected may leave tasks
    running on the workers, and the client that takes the output up again must share
    their limits, so registering again keeps the hosts' limiters and the slots held.
    """

    def __init__(self, run_id: str, settings: FetchSettings) -> None:
        self.name = PLUGIN_PREFIX + run_id
        self.run_id = run_id
        self.settings = settings

    async def start(self, scheduler: Scheduler) -> None:
        limits = _RUNS.get(self.run_id)
        if limits is None:
            _RUNS[self.run_id] = RunLimits(scheduler, self.settings, self.run_id)
        else:
            limits.adopt(self.settings)
        scheduler.stream_handlers["gbifxdl_batch"] = _batch

    def remove_worker(self, scheduler: Scheduler, worker: str, **kwargs: Any) -> None:
        """Free the slots a lost worker held (its requests died with it)."""
        for limits in _RUNS.values():
            limits.free(lambda owner: owner.startswith(worker + "|"))


class RunLimits:
    """Every host's limiter for one output's fetch, the slots handed out, and the progress."""

    def __init__(self, scheduler: Scheduler, settings: FetchSettings, run_id: str) -> None:
        from gbifxdl.fetch.per_host import HostScheduler

        self.run_id = run_id
        self.scheduler = scheduler
        self.settings = settings
        self.limits = HostScheduler(None, _paced(settings))  # its limiter(): the single-machine rules
        self.tickets: dict[int, tuple[str, HostLimiter, float]] = {}
        self.next_ticket = itertools.count(1)
        self.units: dict[int, list[int]] = {}  # unit -> [ok, failed, bytes] reported so far
        self.ended: dict[str, None] = {}       # owners (unit runs) that ended, oldest first
        self.waiting: set[asyncio.Task[None]] = set()

    def adopt(self, settings: FetchSettings) -> None:
        """Take up a new client's settings; hosts keep their limiters (and the slots they handed out)."""
        from gbifxdl.fetch.per_host import HostScheduler

        if settings != self.settings:
            self.settings = settings
            fresh = HostScheduler(None, _paced(settings))
            fresh.hosts = self.limits.hosts  # in-flight slots stay counted; new hosts get the new limits
            self.limits = fresh
        self.units.clear()

    def gone(self, owner: str) -> bool:
        """Return whether the unit run ``owner`` ended or its worker left."""
        return owner in self.ended or owner.split("|", 1)[0] not in self.scheduler.stream_comms

    def grant_now(self, host: str, owner: str, wid: int) -> dict[str, Any] | None:
        """Return the grant of a slot of ``host`` when one is free now (the common case), else None.

        ``HostLimiter.try_acquire``, what ``acquire`` tries first, without a task per request.
        """
        lim = self.limits.limiter(host)
        now = asyncio.get_running_loop().time()
        if owner in self.ended or not lim.try_acquire(now):
            return None
        ticket = next(self.next_ticket)
        self.tickets[ticket] = (owner, lim, now)
        return {"wid": wid, "run": self.run_id, "ticket": ticket}

    async def grant(self, host: str, owner: str, wid: int, worker: str) -> None:
        """Wait for a slot of ``host`` and send it to ``worker`` (or give it back if nobody waits)."""
        reply = await self.enter(host, owner)
        comm = self.scheduler.stream_comms.get(worker)
        if comm is None or self.gone(owner):
            if "ticket" in reply:
                self.leave(reply["ticket"], None, 0)
            return
        comm.send({"op": "gbifxdl_grants", "grants": [{"wid": wid, "run": self.run_id, **reply}]})

    def end(self, owner: str) -> None:
        self.ended[owner] = None
        while len(self.ended) > ENDED_KEPT:
            del self.ended[next(iter(self.ended))]
        self.free(lambda o: o == owner)

    def free(self, match: Any) -> None:
        for ticket, (owner, lim, _) in list(self.tickets.items()):
            if match(owner):
                del self.tickets[ticket]
                lim.release(None)

    async def enter(self, host: str, owner: str) -> dict[str, Any]:
        lim = self.limits.limiter(host)
        while True:
            try:
                await lim.acquire()
            except HostDeadline as exc:
                return {"deadline": str(exc)}
            # a slot handed over before a 429 arrived: never send inside the pause it started
            if not lim.paused():
                break
            lim.release(None)
        ticket = next(self.next_ticket)
        self.tickets[ticket] = (owner, lim, asyncio.get_running_loop().time())
        return {"ticket": ticket}

    def leave(self, ticket: int, answer: tuple[str, bool, float | None] | None, nbytes: int) -> None:
        held = self.tickets.pop(ticket, None)
        if held is None:
            return  # freed already (its worker was thought lost)
        _, lim, sent_at = held
        result = _Answer(*answer) if answer is not None else None
        if result is not None and result.outcome == "opted_out":
            lim.stats.opted_out += 1
        lim.release(result, sent_at if result is not None else None, nbytes)  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, Any]:
        """Return the rows done (ok, failed, bytes) as the workers reported them, and every host's stats."""
        return {"totals": [sum(c[k] for c in self.units.values()) for k in range(3)],
                "hosts": sorted((lim.snapshot() for lim in self.limits.hosts.values()), key=lambda s: -s.requests)}


_RUNS: dict[str, RunLimits] = {}  # by output: lives in the scheduler process


def _batch(msgs: list[dict[str, Any]], worker: str) -> None:
    """Handle one batch of a worker's messages, in order; send the grants given at once in one message."""
    granted = []
    for msg in msgs:
        op, limits = msg["op"], _RUNS[msg["run"]]
        if op == "want":
            grant = limits.grant_now(msg["host"], msg["owner"], msg["wid"])
            if grant is not None:
                granted.append(grant)
                continue
            task = asyncio.ensure_future(limits.grant(msg["host"], msg["owner"], msg["wid"], worker))
            limits.waiting.add(task)
            task.add_done_callback(limits.waiting.discard)
        elif op == "leave":
            limits.leave(msg["ticket"], msg["answer"], msg["nbytes"])
        elif op == "progress":
            limits.units[msg["unit"]] = msg["counts"]
        elif op == "unit_ends":
            limits.end(msg["owner"])
    if granted:
        comm = limits.scheduler.stream_comms.get(worker)
        if comm is not None:
            comm.send({"op": "gbifxdl_grants", "grants": granted})
            return
        for grant in granted:  # the worker left meanwhile: its slots go back
            _RUNS[grant["run"]].leave(grant["ticket"], None, 0)


def _paced(settings: FetchSettings) -> FetchSettings:
    """Return ``settings`` with fixed rates at :data:`RATE_MARGIN` of their value."""
    import dataclasses

    rate = None if settings.per_host_rate is None else settings.per_host_rate * RATE_MARGIN
    overrides = tuple((h, r * RATE_MARGIN) for h, r in settings.per_host_rate_overrides)
    return dataclasses.replace(settings, per_host_rate=rate, per_host_rate_overrides=overrides)


def snapshot(dask_scheduler: Scheduler, run_id: str) -> dict[str, Any]:
    """Return the run's snapshot (for ``client.run_on_scheduler``)."""
    limits = _RUNS.get(run_id)
    return limits.snapshot() if limits is not None else {"totals": [0, 0, 0], "hosts": []}


class _Broker:
    """This worker process's end of the stream: sends wants and leaves, hands grants to their waiters."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.next_wid = itertools.count(1)
        self.waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[dict[str, Any]]]] = {}
        # messages and grants cross between the engine's loop and the worker's in batches:
        # one wake-up of the other thread per batch, not per message
        self._outbox: list[dict[str, Any]] = []
        self._inbox: dict[asyncio.AbstractEventLoop, list[tuple[Any, str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        worker.stream_handlers["gbifxdl_grants"] = self._granted

    def send(self, msg: dict[str, Any]) -> None:
        """Queue ``msg`` on the stream to the scheduler (from any thread)."""
        with self._lock:
            self._outbox.append(msg)
            first = len(self._outbox) == 1
        if first:
            self.worker.loop.add_callback(self._flush)

    def _flush(self) -> None:  # on the worker's event loop
        with self._lock:
            batch, self._outbox = self._outbox, []
        if batch:
            try:
                self.worker.batched_stream.send({"op": "gbifxdl_batch", "msgs": batch})
            except CommClosedError:
                # the worker is closing, or lost its scheduler: the scheduler frees what the
                # worker held when it removes it, and the units are redone
                pass

    def want(self, run: str, host: str, owner: str) -> asyncio.Future[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        wid = next(self.next_wid)
        self.waiting[wid] = (loop, fut)
        self.send({"op": "want", "run": run, "host": host, "owner": owner, "wid": wid})
        return fut

    def _granted(self, grants: list[dict[str, Any]]) -> None:  # on the worker's event loop
        wake = set()
        for reply in grants:
            run = reply.pop("run")
            entry = self.waiting.pop(reply.pop("wid"), None)
            if entry is None:  # nobody waits for it here any more
                self._give_back(run, reply)
                continue
            loop, fut = entry
            with self._lock:
                box = self._inbox.setdefault(loop, [])
                box.append((fut, run, reply))
                if len(box) == 1:
                    wake.add(loop)
        for loop in wake:
            try:
                loop.call_soon_threadsafe(self._deliver, loop)
            except RuntimeError:  # that unit's loop is closed: nobody waits
                self._deliver(loop)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            batch = self._inbox.pop(loop, [])
        for fut, run, reply in batch:
            if fut.done() or loop.is_closed():  # the request was cancelled meanwhile, or its loop is gone
                self._give_back(run, reply)
            else:
                fut.set_result(reply)

    def _give_back(self, run: str, reply: dict[str, Any]) -> None:
        if "ticket" in reply:
            self.send({"op": "leave", "run": run, "ticket": reply["ticket"], "answer": None, "nbytes": 0})


_BROKERS: dict[int, _Broker] = {}


def broker_of(worker: Worker) -> _Broker:
    """Return this worker's broker (one per worker process, made on first use)."""
    broker = _BROKERS.get(id(worker))
    if broker is None or broker.worker is not worker:
        broker = _BROKERS[id(worker)] = _Broker(worker)
    return broker


class WorkerSide:
    """A unit's link to the scheduler's limits: its gates and its progress reports."""

    def __init__(self, worker: Worker, run_id: str, unit: int, owner: str) -> None:
        self.broker = broker_of(worker)
        self.run_id = run_id
        self.unit = unit
        self.owner = owner
        self.counts = [0, 0, 0]
        self._reported = 0.0

    def gate(self, scheduler: HostScheduler, before_request: Callable[[], Awaitable[None]] | None) -> RemoteGate:
        """Return a gate for one image (what ``HostScheduler`` makes per image)."""
        return RemoteGate(self, before_request)

    # the engine's progress interface (fetch._seams.ProgressReport)
    def update(self, outcome: str, nbytes: int) -> None:
        if outcome == "ok":
            self.counts[0] += 1
            self.counts[2] += nbytes
        else:
            self.counts[1] += 1
        now = time.monotonic()
        if now - self._reported >= PROGRESS_EVERY:
            self._reported = now
            self._report()

    def _report(self) -> None:
        self.broker.send({"op": "progress", "run": self.run_id, "unit": self.unit, "counts": list(self.counts)})

    def close(self) -> None:
        """Send the last report, then free what this unit still holds (the stream keeps their order)."""
        self._report()
        self.broker.send({"op": "unit_ends", "run": self.run_id, "owner": self.owner})


class RemoteGate:
    """Holds a slot of each host a request goes to, granted by the scheduler's limiters."""

    def __init__(self, side: WorkerSide, before_request: Callable[[], Awaitable[None]] | None) -> None:
        self.side = side
        self.before_request = before_request
        self.entered = 0

    async def enter(self, host: str) -> tuple[int, float]:
        if self.before_request is not None:
            # before asking: a slot granted must be used at once, or the pause and the
            # rate it was granted under no longer hold
            await self.before_request()
            self.before_request = None  # once per image
        side = self.side
        reply = await side.broker.want(side.run_id, host, side.owner)
        if "deadline" in reply:
            raise HostDeadline(reply["deadline"])
        self.entered += 1
        return reply["ticket"], asyncio.get_running_loop().time()

    def leave(self, ticket: tuple[int, float], result: Attempt | None, nbytes: int = 0) -> None:
        answer = None if result is None else (result.outcome, result.throttle, result.retry_after)
        side = self.side
        side.broker.send({"op": "leave", "run": side.run_id, "ticket": ticket[0], "answer": answer,
                          "nbytes": nbytes})
