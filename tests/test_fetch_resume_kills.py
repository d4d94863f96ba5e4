"""SIGKILL the fetch command's process group at many random moments, resuming each time: no image
whose file had reached its final place (an image file, a spool sample, a shard member) is ever
asked of its host again, and the finished output equals an uninterrupted run's (issue 20, item 8).
"""

from __future__ import annotations

import json
import os
import random
import signal
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gbifxdl.testing.image_hosts import ImageHosts

from test_fetch_resume import _reap, outputs, start_cli, uninterrupted_run, written_keys

pytestmark = pytest.mark.slow  # whole file: see the README's Development section

# a longer soak: GBIFXDL_KILL_SOAK=SEED:KILLS:IMAGES
_SOAK = os.environ.get("GBIFXDL_KILL_SOAK", "")
SEED, KILLS, N_IMAGES = (int(x) for x in _SOAK.split(":")) if _SOAK else (0, 12, 150)


@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_sigkill_at_random_moments_never_fetches_a_written_image_again(tmp_path: Path, layout: str) -> None:
    rng = random.Random(f"item-8-{layout}-{SEED}")
    with ImageHosts(2, latency=0.02, max_side=300) as hosts:
        sel, _, hash_to_url, reference = uninterrupted_run(tmp_path, hosts, layout, N_IMAGES)

        out = tmp_path / "out"
        written: dict[str, int] = {}  # key -> requests of its URL when it was first seen at its final place
        how: dict[str, str] = {}  # key -> where it was seen, when
        kills = 0
        finished = False
        while kills < KILLS and not finished:
            before = len(written)
            proc = start_cli(sel, out, layout)
            # a random moment: while starting (reading the journal), or after a few more images
            target = before + rng.randrange(0, 30)
            deadline = time.monotonic() + rng.uniform(0.2, 8.0)
            while proc.poll() is None and len(_written_keys(out)) < target and time.monotonic() < deadline:
                time.sleep(0.003)
            time.sleep(rng.uniform(0, 0.05))
            if proc.poll() is not None:
                finished = True
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
            _reap(proc)
            temps = journalled_temps(out)
            for key in written_keys(out) | temps:
                if key not in written:
                    written[key] = hosts.requests_for(hash_to_url[key])
                    how[key] = f"{'journalled at its temporary name' if key in temps else 'at its final place'} " \
                               f"after kill {kills}"
        assert 0 < len(written)

        proc = start_cli(sel, out, layout)
        _, err = proc.communicate(timeout=300)
        _reap(proc)
        assert proc.returncode == 0, err.decode()
        again = {k: (n, hosts.requests_for(hash_to_url[k]), how[k]) for k, n in written.items()
                 if hosts.requests_for(hash_to_url[k]) != n}
        assert not again, f"written images fetched again after {kills} kills: {again}"

    got = pq.read_table(out / "metadata.parquet").to_pylist()
    want = pq.read_table(reference / "metadata.parquet").to_pylist()
    assert [{k: (g[k], w[k]) for k in g if g[k] != w[k]} for g, w in zip(got, want) if g != w] == []
    assert len(got) == len(want)
    assert outputs(out) == outputs(reference)
    assert not list(out.rglob("*.tmp-*"))


def journalled_temps(out: Path) -> set[str]:
    """Return the keys of images journalled ok whose whole file still lies at its temporary name (a kill
    fell between the journal line and the rename): complete, so not to be fetched again either."""
    keys = set()
    temps = {p.name.split(".")[1] for p in out.rglob(".*.tmp-*")}
    for journal in out.glob(".gbifxdl/fetch/unit-*.jsonl"):
        for line in journal.read_bytes().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry["outcome"] == "ok" and entry["path"]:
                key = entry["path"].rsplit("/", 1)[-1].split(".")[0]
                if key in temps:
                    keys.add(key)
    return keys


def _written_keys(out: Path) -> set[str]:
    """``written_keys`` while the command runs: a spool it removes meanwhile is looked at again."""
    for _ in range(100):
        try:
            return written_keys(out)
        except (OSError, tarfile.TarError):
            time.sleep(0.001)
    return written_keys(out)
