"""Ctrl-C as a terminal sends it (SIGINT to the whole process group): one line, exit 130, nothing lost.

The CLI runs in its own session (so its process group is its own), fetching from slow
loopback image hosts; SIGINT goes to the whole group, worker processes and fork server
included, as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gbifxdl.testing.image_hosts import ImageHosts
from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER, LocalGbifSettings, local_gbif
from gbifxdl.testing._images import write_selection

from _process_group import fetched_rows, group_ends

ONE_LINE = "Interrupted; nothing done so far is lost. Run the same command again to continue."


def _interrupt_when(cmd: list[str], env: dict[str, str], moment: Callable[[], bool]) -> tuple[int, str]:
    """Start ``cmd`` in its own process group, SIGINT the group once ``moment()`` holds;
    return its exit code and stderr (after checking no process of the group is left)."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while not moment():
                if proc.poll() is not None:
                    stderr.seek(0)
                    raise AssertionError(f"ended before the interrupt: {stderr.read().decode()}")
                assert time.monotonic() < deadline
                time.sleep(0.02)
            before = os.fstat(stderr.fileno()).st_size
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
            assert group_ends(proc.pid, 15), "worker processes outlived the interrupted command"
            stderr.seek(before)
            return proc.returncode, stderr.read().decode()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gbifxdl", *args]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--quiet"], ["--workers", "0", "--quiet"], []],
                         ids=["processes", "threads", "progress-bar"])
def test_ctrl_c_during_fetch_prints_one_line_and_the_same_command_finishes(tmp_path: Path, extra: list[str]) -> None:
    n = 240
    env = {**os.environ, "COLUMNS": "100"}
    with ImageHosts(3, latency=0.3, max_side=1600) as hosts:
        sel = write_selection(tmp_path / "sel.parquet", [hosts.photo_url(i, i % 3) for i in range(n)])
        out = tmp_path / "out"
        cmd = _cli("fetch", str(sel), "-o", str(out), "--resize", "128", "--shard-size", "40", *extra)
        code, err = _interrupt_when(cmd, env, lambda: fetched_rows(out) >= 20)
        assert code == 130, err
        if "--quiet" in extra:
            assert err == ONE_LINE + "\n", repr(err)
        else:  # the progress bar's last redraw, ended by its newline, then the one line
            assert err.endswith(ONE_LINE + "\n"), repr(err)
            assert all(part.startswith("fetch:") for part in err[:-len(ONE_LINE) - 1].split("\r") if part), repr(err)
        assert fetched_rows(out) < n  # it was interrupted mid-way
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    table = pq.read_table(out / "metadata.parquet")
    assert table.num_rows == n and set(table.column("outcome").to_pylist()) == {"ok"}
    files = [p for p in (out / "images").rglob("*") if p.is_file()]
    assert len(files) == n and not list(out.rglob("*.tmp-*"))


RUN_CONFIG = """
[wait]
min_interval = 0.2
max_interval = 0.5

[fetch]
resize = 96
shard_size = 20
"""


@pytest.mark.slow
def test_ctrl_c_during_run_prints_one_line_and_the_same_command_finishes(tmp_path: Path) -> None:
    settings = LocalGbifSettings(n_occurrences=200, prepare_seconds=0.3, run_seconds=0.5, fault_rate=0.0,
                                 latency=0.2)
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "gbifxdl.toml"
    config.write_text(RUN_CONFIG)
    out = tmp_path / "ds"
    with local_gbif(settings) as local:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GBIF_", "NETRC"))},
               "HOME": str(home), "GBIF_USER": DEMO_USER, "GBIF_PWD": DEMO_PASSWORD,
               "GBIF_EMAIL": "demo@example.org", "GBIF_API_URL": local.api_url}
        cmd = _cli("run", "--taxon", "Nymphalidae", "--config", str(config), "-o", str(out), "--no-progress")
        code, err = _interrupt_when(cmd, env, lambda: fetched_rows(out) >= 10)
        assert code == 130 and err == ONE_LINE + "\n", repr(err)
        done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert (out / "metadata.parquet").exists()


@pytest.mark.parametrize("python", ["3.11+", "3.10"])
def test_the_event_loop_turns_a_first_sigint_into_quiet_cancellation(monkeypatch: pytest.MonkeyPatch,
                                                                     python: str) -> None:
    import asyncio
    import types

    from gbifxdl.fetch import _loop

    if python == "3.10":  # the hand-made route (Python 3.10 has no asyncio.Runner), run here too
        monkeypatch.setattr(_loop, "sys", types.SimpleNamespace(version_info=(3, 10)))
    ended: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("left unawaited, it would print 'Task exception was never retrieved'")

    async def main() -> None:
        side = asyncio.create_task(failing())
        try:
            asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.sleep(30)
        finally:
            side.cancel()
            await asyncio.gather(side, return_exceptions=True)
            ended.append("main cleaned up")

    with pytest.raises(KeyboardInterrupt):
        _loop.run_loop(main())
    assert ended == ["main cleaned up"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
