"""Demo datasets for the publish tests, built as a user builds them: `gbifxdl demo`.

Also a guard that fails a test on any connection to a non-loopback address, so the
loaders (datasets, mlcroissant) are shown to work offline.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# mlcroissant caches extracted shards by their (relative) path: one cache for this test session
if "CROISSANT_CACHE" not in os.environ:
    os.environ["CROISSANT_CACHE"] = tempfile.mkdtemp(prefix="croissant-cache-")
    atexit.register(shutil.rmtree, os.environ["CROISSANT_CACHE"], ignore_errors=True)


def build_demo(path: Path, layout: str, occurrences: int = 120) -> Path:
    """Return the folder of a finished `gbifxdl demo` (a curated dataset with card and report)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBIF_")}
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "demo", "-o", str(path), "--occurrences", str(occurrences),
                           "--layout", layout, "--no-progress"], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"gbifxdl demo failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    assert (path / "metadata.parquet").is_file() and (path / "README.md").is_file()
    return path


def rows(root: Path) -> list[dict]:
    """Return the curated table's rows."""
    return pq.read_table(root / "metadata.parquet").to_pylist()


def _loopback(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True  # unix sockets
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail on any connection or name lookup that leaves the machine."""
    connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise AssertionError(f"network access to {address!r} during an offline test")
        return connect(self, address)

    lookup = socket.getaddrinfo

    def guarded_lookup(host: object, *args: object, **kwargs: object) -> object:
        if isinstance(host, str) and not _loopback(host):
            raise AssertionError(f"name lookup of {host!r} during an offline test")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
