"""Kill the fetch command with SIGKILL at several points: the resumed run downloads nothing
already written, and its outputs equal those of an uninterrupted run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import gbifxdl
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.testing.image_hosts import ImageHosts, write_selection

from _process_group import group_ends

pytestmark = pytest.mark.slow  # whole file: see the README's Development section

SRC = str(Path(gbifxdl.__file__).resolve().parents[1])
N_IMAGES = 120
KILL_AT = (5, 40, 80)  # images written (at their final place) when the process is killed


def start_cli(selection: Path, out: Path, layout: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = [sys.executable, "-c", "from gbifxdl.cli import main; main()", "fetch", str(selection), "-o", str(out),
            "--layout", layout, "--resize", "64", "--shard-size", "25", "--workers", "1", "--per-host", "2", "--quiet"]
    return subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def written_keys(out: Path) -> set[str]:
    """Return the keys of images complete at their final place (file, spool sample or shard)."""
    keys = {p.name.split(".")[0] for p in out.glob("images/*/*.jpg")}
    keys |= {p.name.split(".")[0] for p in out.glob(".gbifxdl/fetch/spool/*/*.jpg")}
    for shard in out.glob("shards/*.tar"):
        with tarfile.open(shard) as tar:
            keys |= {m.name.split(".")[0] for m in tar.getmembers()}
    return keys


def uninterrupted_run(tmp_path: Path, hosts: ImageHosts, layout: str,
                      n_images: int) -> tuple[Path, list[str], dict[str, str], Path]:
    """Return the selection of ``n_images`` photos, their URLs, URL by key, and the folder of their
    uninterrupted fetch (the command's settings); the hosts' counts start again after it."""
    urls = [hosts.photo_url(i, i % 2) for i in range(n_images)]
    hash_to_url = {hashlib.sha1(u.encode()).hexdigest(): u for u in urls}
    sel = write_selection(tmp_path / "sel.parquet", urls)
    reference = tmp_path / "reference"
    fetch(sel, reference, FetchSettings(layout=layout, resize=64, shard_size=25, workers=1, per_host=2),
          progress=False)
    hosts.reset_counts()
    return sel, urls, hash_to_url, reference


def outputs(out: Path) -> dict[str, bytes]:
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and ".gbifxdl" not in p.parts and p.name not in ("metadata.parquet", "fetch.log")}
    return files


@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_sigkill_at_several_points_then_resume_equals_an_uninterrupted_run(tmp_path: Path, layout: str) -> None:
    with ImageHosts(2, latency=0.04, max_side=300) as hosts:
        sel, urls, hash_to_url, reference = uninterrupted_run(tmp_path, hosts, layout, N_IMAGES)

        out = tmp_path / "out"
        written: dict[str, int] = {}  # key -> requests of its URL when it was seen written
        for kill_at in KILL_AT:
            proc = start_cli(sel, out, layout)
            # downloads run ahead of processing: a kill also loses images downloaded, not written
            while proc.poll() is None and len(written_keys(out)) < kill_at:
                time.sleep(0.005)
            assert proc.poll() is None, "the command ended before the kill point"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if kill_at == KILL_AT[0]:
                assert group_ends(proc.pid, 10), "worker processes outlived the killed command"
            _reap(proc)
            for key in written_keys(out):
                written.setdefault(key, hosts.requests_for(hash_to_url[key]))
        assert 0 < len(written) < N_IMAGES

        proc = start_cli(sel, out, layout)
        _, err = proc.communicate(timeout=120)
        _reap(proc)
        assert proc.returncode == 0, err.decode()
        assert {k: hosts.requests_for(hash_to_url[k]) for k in written} == written
        assert all(hosts.requests_for(u) >= 1 for u in urls)

    got = pq.read_table(out / "metadata.parquet")
    want = pq.read_table(reference / "metadata.parquet")
    assert got.equals(want)
    assert outputs(out) == outputs(reference)
    assert not list(out.rglob("*.tmp-*"))


def _reap(proc: subprocess.Popen[bytes]) -> None:
    # the killed command's worker processes share its session: end them too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.stdout:
        proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
