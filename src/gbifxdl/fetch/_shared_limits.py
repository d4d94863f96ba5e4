"""Per-host limits shared by every worker of a Dask cluster, held by its scheduler.

The scheduler runs one :class:`~gbifxdl.fetch._host_limiter.HostLimiter` per host, the
same code a single machine runs: concurrency slots, request rate, the pause a 429's
``Retry-After`` asks for, and the adaptation to how the host answers. Before each request
(each redirect hop) a worker asks it for a slot (``gbifxdl_enter``) and gives the slot back
with how the host answered (``gbifxdl_leave``). So a host never sees more requests in
flight, or per second, than its limits, whatever the number of workers, and a
``Retry-After`` met by one worker holds back all of them. Slots held by a worker that
dies are freed when the scheduler loses it; those of a unit that ends are freed then.
The same plugin adds up the workers' progress for the client's one bar.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from gbifxdl.fetch._host_limiter import HostDeadline, HostLimiter
from gbifxdl.fetch.settings import FetchSettings

PLUGIN_PREFIX = "gbifxdl-limits-"
PROGRESS_EVERY = 0.5  # seconds between a worker's progress reports


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

    async def start(self, scheduler: Any) -> None:
        limits = _RUNS.get(self.run_id)
        if limits is None:
            _RUNS[self.run_id] = RunLimits(self.settings)
        else:
            limits.adopt(self.settings)
        for op, handler in (("gbifxdl_enter", _enter), ("gbifxdl_leave", _leave),
                            ("gbifxdl_progress", _progress), ("gbifxdl_unit_ends", _unit_ends)):
            scheduler.handlers[op] = handler

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        """Free the slots a lost worker held (its requests died with it)."""
        for limits in _RUNS.values():
            limits.free(lambda owner: owner.startswith(worker + "|"))


class RunLimits:
    """Every host's limiter for one output's fetch, the slots handed out, and the progress."""

    def __init__(self, settings: FetchSettings) -> None:
        from gbifxdl.fetch.scheduler import Scheduler

        self.settings = settings
        self.limits = Scheduler(None, settings)  # its limiter(): the single-machine rules
        self.tickets: dict[int, tuple[str, HostLimiter, float]] = {}
        self.next_ticket = itertools.count(1)
        self.units: dict[int, list[int]] = {}  # unit -> [ok, failed, bytes] reported so far

    def adopt(self, settings: FetchSettings) -> None:
        """Take up a new client's settings; slots held stay held (and are given back as usual)."""
        from gbifxdl.fetch.scheduler import Scheduler

        if settings != self.settings:
            self.settings = settings
            self.limits = Scheduler(None, settings)
        self.units.clear()

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


async def _enter(run: str, host: str, owner: str) -> dict[str, Any]:
    return await _RUNS[run].enter(host, owner)


async def _leave(run: str, ticket: int, answer: Any, nbytes: int) -> None:
    _RUNS[run].leave(ticket, answer, nbytes)


async def _progress(run: str, unit: int, counts: list[int]) -> None:
    _RUNS[run].units[unit] = counts


async def _unit_ends(run: str, unit: int, owner: str) -> None:
    _RUNS[run].free(lambda o: o == owner)


def snapshot(dask_scheduler: Any, run_id: str) -> dict[str, Any]:
    """Return the run's snapshot (for ``client.run_on_scheduler``)."""
    limits = _RUNS.get(run_id)
    return limits.snapshot() if limits is not None else {"totals": [0, 0, 0], "hosts": []}


class WorkerSide:
    """A worker's link to the scheduler's limits for one unit: gates and progress reports."""

    def __init__(self, address: str, connection_args: dict[str, Any], run_id: str, unit: int, owner: str) -> None:
        self.address = address
        self.connection_args = connection_args
        self.run_id = run_id
        self.unit = unit
        self.owner = owner
        self.counts = [0, 0, 0]
        self._reported = 0.0
        self._rpc: Any = None
        self._pending: set[asyncio.Task[Any]] = set()

    def rpc(self) -> Any:
        if self._rpc is None:  # made in the engine's own event loop, where it is used
            from distributed.core import rpc

            self._rpc = rpc(self.address, connection_args=self.connection_args)
        return self._rpc

    def gate(self, scheduler: Any, before_request: Any) -> RemoteGate:
        """Return a gate for one image (what ``Scheduler`` makes per image)."""
        return RemoteGate(self, before_request)

    def _later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # the engine's progress interface
    def update(self, outcome: str, nbytes: int) -> None:
        if outcome == "ok":
            self.counts[0] += 1
            self.counts[2] += nbytes
        else:
            self.counts[1] += 1
        now = time.monotonic()
        if now - self._reported >= PROGRESS_EVERY:
            self._reported = now
            self._later(self.rpc().gbifxdl_progress(run=self.run_id, unit=self.unit, counts=list(self.counts)))

    def close(self) -> None:
        """Nothing to show: the client's bar adds up every worker's reports."""

    async def aclose(self) -> None:
        """Send what is left (slots given back, progress), then free what this unit still holds."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        rpc = self.rpc()
        try:
            await rpc.gbifxdl_progress(run=self.run_id, unit=self.unit, counts=list(self.counts))
            await rpc.gbifxdl_unit_ends(run=self.run_id, unit=self.unit, owner=self.owner)
        finally:
            await rpc.close_rpc()


class RemoteGate:
    """Holds a slot of each host a request goes to, granted by the scheduler's limiters."""

    def __init__(self, side: WorkerSide, before_request: Any) -> None:
        self.side = side
        self.before_request = before_request
        self.entered = 0

    async def enter(self, host: str) -> tuple[int, float]:
        side = self.side
        reply = await side.rpc().gbifxdl_enter(run=side.run_id, host=host, owner=side.owner)
        if "deadline" in reply:
            raise HostDeadline(reply["deadline"])
        ticket = (reply["ticket"], asyncio.get_running_loop().time())
        if self.before_request is not None:
            try:
                await self.before_request()
            except BaseException:
                self.leave(ticket, None)
                raise
            self.before_request = None  # once per image
        self.entered += 1
        return ticket

    def leave(self, ticket: tuple[int, float], result: Any, nbytes: int = 0) -> None:
        answer = None if result is None else (result.outcome, result.throttle, result.retry_after)
        side = self.side
        side._later(side.rpc().gbifxdl_leave(run=side.run_id, ticket=ticket[0], answer=answer, nbytes=nbytes))
