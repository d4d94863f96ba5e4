"""Nothing one image does stops a fetch: exceptions and dying workers become that image's outcome.

Faults are injected with real worker processes: a body naming a fault (see
``gbifxdl.fetch._faults``, on only with GBIFXDL_TEST_FAULTS=1) makes the real worker
raise, exit, SIGKILL itself or segfault while processing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.fetch import _faults, image_processes
from gbifxdl.fetch.image_types import ImageFault, ProcessOptions
from gbifxdl.fetch.settings import FAILURE_KINDS
from gbifxdl.testing._images import image_bytes, write_selection


@pytest.fixture(autouse=True)
def _faults_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_faults.ENV, "1")


class BodyServer:
    """Serves fixed bodies on 127.0.0.1 (port 0): ``/<name>`` answers ``bodies[name]`` as image/jpeg."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        served = bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                body = served.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "BodyServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _good(i: int) -> bytes:
    return image_bytes(300 + i, 160, "jpeg")[0]


def test_outcomes_are_known_failure_kinds() -> None:
    assert {"process_error", "worker_died"} <= set(FAILURE_KINDS)


async def _through_pool(bodies: list[bytes], folder: Path, n_workers: int) -> tuple[list[object], int]:
    pool = image_processes.ImageProcessPool(n_workers, ProcessOptions())
    try:
        futures = [pool.process(str(folder / f"{i}.tmp"), [b]) for i, b in enumerate(bodies)]
        return await asyncio.gather(*futures, return_exceptions=True), pool.replaced
    finally:
        pool.shutdown()


def test_real_workers_that_raise_exit_are_killed_or_segfault_cost_one_image_each(tmp_path: Path) -> None:
    faults = [_faults.body("raise", "KeyError"), _faults.body("raise", "struct.error"),
              _faults.body("raise", "MemoryError"), _faults.body("exit"), _faults.body("kill"),
              _faults.body("segv")]
    bodies: list[bytes] = []
    for i, fault in enumerate(faults):
        bodies += [_good(2 * i), fault, _good(2 * i + 1)]
    results, replaced = asyncio.run(_through_pool(bodies, tmp_path, 2))
    kinds = {}
    for body, result in zip(bodies, results):
        if body.startswith(_faults.PREFIX):
            assert isinstance(result, image_processes.WorkerDied | ImageFault), result
            kinds[body.split()[1]] = result
        else:  # the images queued behind a dying one went to another worker, whole
            assert not isinstance(result, BaseException), result
            assert result.sha256 == hashlib.sha256(body).hexdigest()  # type: ignore[attr-defined]
    for what in (b"exit", b"kill", b"segv"):
        assert isinstance(kinds[what], image_processes.WorkerDied)
    assert "SIGKILL" in str(kinds[b"kill"]) and "SIGSEGV" in str(kinds[b"segv"])
    raised = [r for r in results if isinstance(r, ImageFault)]
    assert [r.kind for r in raised] == ["process_error"] * 3
    assert [r.message.split(":")[0] for r in raised] == ["KeyError", "error", "MemoryError"]
    assert replaced == 3


def test_a_worker_stuck_on_one_image_is_stopped_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_processes, "_MAX_SECONDS", 1.0)
    bodies = [_good(1), _faults.body("sleep", "60"), _good(2), _good(3)]
    results, replaced = asyncio.run(_through_pool(bodies, tmp_path, 1))
    assert isinstance(results[1], image_processes.WorkerDied) and "stopped after 1 s" in str(results[1])
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 1)
    assert replaced == 1


def _fault_selection(folder: Path, server: BodyServer, names: list[str]) -> Path:
    return write_selection(folder / "sel.parquet", [f"{server.base}/{n}" for n in names])


@pytest.mark.parametrize("settings", [
    FetchSettings(workers=2),
    FetchSettings(workers=2, resize=64),
    FetchSettings(workers=0),
    FetchSettings(validate="header"),
], ids=["processes", "processes-resize", "threads", "header-validation"])
def test_a_fetch_goes_on_past_any_failing_image_and_journals_it(tmp_path: Path, settings: FetchSettings) -> None:
    bodies = {f"good{i}.jpg": _good(i) for i in range(12)}
    bodies["keyerror.jpg"] = _faults.body("raise", "KeyError")
    bodies["struct.jpg"] = _faults.body("raise", "struct.error")
    bodies["memory.jpg"] = _faults.body("raise", "MemoryError")
    if settings.uses_processes:  # a thread cannot die alone: only processes get these
        bodies["killed.jpg"] = _faults.body("kill")
        bodies["segv.jpg"] = _faults.body("segv")
    names = sorted(bodies)
    with BodyServer(bodies) as server:
        sel = _fault_selection(tmp_path, server, names)
        summary = fetch(sel, tmp_path / "out", settings, progress=False)
        rows = {r["identifier"].rsplit("/", 1)[1]: r for r in pq.read_table(tmp_path / "out" / "metadata.parquet")
                .to_pylist()}
        assert summary.ok == 12 and all(rows[f"good{i}.jpg"]["outcome"] == "ok" for i in range(12))
        assert rows["keyerror.jpg"]["outcome"] == "process_error"
        assert rows["keyerror.jpg"]["error"].startswith("KeyError: ")
        assert rows["struct.jpg"]["error"].startswith("error: injected struct.error")
        assert rows["memory.jpg"]["error"].startswith("MemoryError")
        if settings.uses_processes:
            assert rows["killed.jpg"]["outcome"] == rows["segv.jpg"]["outcome"] == "worker_died"
            assert "SIGKILL" in rows["killed.jpg"]["error"] and "SIGSEGV" in rows["segv.jpg"]["error"]
        failed = [n for n in names if not n.startswith("good")]
        assert not list((tmp_path / "out").rglob("*.tmp-*"))
        # journalled: a resume is done at once, and a retry of the failures completes too
        again = fetch(sel, tmp_path / "out", settings, progress=False)
        assert again.fetched_now == 0 and again.ok == 12
        retried = fetch(sel, tmp_path / "out", dataclasses.replace(settings, retry_failed=True), progress=False)
        assert retried.fetched_now == len(failed) and retried.ok == 12


@pytest.fixture()
def _no_faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(_faults.ENV)
    yield


@pytest.mark.usefixtures("_no_faults")
def test_fault_bodies_are_plain_bytes_without_the_test_switch(tmp_path: Path) -> None:
    with BodyServer({"kill.jpg": _faults.body("kill"), "ok.jpg": _good(1)}) as server:
        sel = _fault_selection(tmp_path, server, ["kill.jpg", "ok.jpg"])
        fetch(sel, tmp_path / "out", FetchSettings(workers=1), progress=False)
    outcomes = pq.read_table(tmp_path / "out" / "metadata.parquet").column("outcome").to_pylist()
    assert outcomes == ["not_image", "ok"]


def _damaged_lzw_tiff() -> bytes:
    """Return an LZW TIFF whose strip is damaged: libtiff writes "Using code not yet in table"."""
    import io

    import numpy as np
    from PIL import Image

    pixels = (np.random.default_rng(1).integers(0, 255, (64, 64, 3)) // 32 * 32).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    img = Image.open(io.BytesIO(bytes(data)))
    start, size = img.tag_v2[273][0], img.tag_v2[279][0]
    for pos in range(start + 50, start + size - 50, 97):
        data[pos] ^= 0xFF
    return bytes(data)


@pytest.mark.slow
def test_native_decoder_warnings_go_to_the_log_not_the_terminal(tmp_path: Path) -> None:
    import subprocess
    import sys

    bodies = {"tiff.tif": _damaged_lzw_tiff(), "ok.jpg": _good(3)}
    with BodyServer(bodies) as server:
        sel = _fault_selection(tmp_path, server, sorted(bodies))
        out = tmp_path / "out"
        done = subprocess.run([sys.executable, "-m", "gbifxdl", "fetch", str(sel), "-o", str(out), "--quiet",
                               "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""
    assert "Using code not yet in table" in (out / "fetch.log").read_text()
    outcomes = pq.read_table(out / "metadata.parquet").column("outcome").to_pylist()
    assert outcomes == ["ok", "corrupt"]
