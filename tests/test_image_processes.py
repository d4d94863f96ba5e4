"""Image worker processes: bodies of any size reach them whole, through shared memory or files."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from gbifxdl.fetch import image_processes
from gbifxdl.fetch.process import ImageFault, ProcessOptions
from gbifxdl.testing._images import image_bytes


def _padded_jpeg(total: int) -> bytes:
    """Return a valid JPEG of about ``total`` bytes: a small image behind APP15 segments."""
    data, _ = image_bytes(108, 64, "jpeg")
    pad = b"\xff\xef" + (65535).to_bytes(2, "big") + b"\x00" * 65533
    return data[:2] + pad * max(0, (total - len(data)) // len(pad)) + data[2:]


async def _run_bodies(bodies: list[bytes], folder: Path) -> list[object]:
    pool = image_processes.ImageProcessPool(1, ProcessOptions())  # originals kept: the file written is the body
    try:
        futures = [pool.process(str(folder / f"{i}.tmp"), [body[:1000], body[1000:]]) for i, body in enumerate(bodies)]
        return await asyncio.gather(*futures, return_exceptions=True)
    finally:
        pool.shutdown()


@pytest.mark.parametrize("shared", [True, False], ids=["shared-memory", "temporary-files"])
def test_bodies_small_and_huge_arrive_whole_in_any_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         shared: bool) -> None:
    if shared and not image_processes._MEMFD:
        pytest.skip("no memfd on this platform: only the temporary-file route exists")
    monkeypatch.setattr(image_processes, "_MEMFD", shared)
    # a slot grows for a 3 MiB body, past the 16 MiB it gives its pages back, then small again
    bodies = [_padded_jpeg(n) for n in (20_000, 3 << 20, 18 << 20, 30_000, 5 << 20)] + [b"<html>not an image"]
    results = asyncio.run(_run_bodies(bodies, tmp_path))
    for i, (body, result) in enumerate(zip(bodies[:-1], results)):
        assert not isinstance(result, BaseException), result
        assert result.sha256 == hashlib.sha256(body).hexdigest()  # type: ignore[attr-defined]
        assert (tmp_path / f"{i}.tmp").read_bytes() == body
    assert isinstance(results[-1], ImageFault) and results[-1].kind == "not_image"


def test_a_fetch_through_worker_processes_leaves_the_callers_scheduling_as_it_was(tmp_path: Path) -> None:
    from gbifxdl.fetch import FetchSettings, fetch
    from gbifxdl.testing.image_hosts import ImageHosts, write_selection

    before = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None
    with ImageHosts(1, max_side=300) as hosts:
        sel = write_selection(tmp_path / "sel.parquet", [hosts.photo_url(i) for i in range(6)])
        summary = fetch(sel, tmp_path / "out", FetchSettings(resize=64, workers=2), progress=False)
    assert summary.ok == 6
    if before is not None:
        assert os.sched_getscheduler(0) == before


async def _interrupted_worker_goes_on(folder: Path) -> tuple[object, int]:
    import signal

    pool = image_processes.ImageProcessPool(1, ProcessOptions(), folder / "workers.log")
    try:
        await pool.process(str(folder / "first.tmp"), [_padded_jpeg(10_000)])  # started and working
        os.kill(pool._workers[0].process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the group
        result = await pool.process(str(folder / "second.tmp"), [_padded_jpeg(20_000)])
        return result, pool.replaced
    finally:
        pool.shutdown()


def test_workers_ignore_sigint_and_write_their_stderr_to_the_given_log(tmp_path: Path) -> None:
    result, replaced = asyncio.run(_interrupted_worker_goes_on(tmp_path))
    assert not isinstance(result, BaseException) and replaced == 0
    assert "KeyboardInterrupt" not in (tmp_path / "workers.log").read_text()
