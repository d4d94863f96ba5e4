"""The loopback object-store servers as module fixtures (`s3`, `gcs`), for the tests that write to a bucket.

Import the fixtures by name into a test module: ``from _object_servers import gcs, need, s3``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def need(*modules: str) -> None:
    """Skip the test when a test extra is not installed (pip install -e '.[test]')."""
    for module in modules:
        pytest.importorskip(module, reason=f"{module} is a test extra (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1 with a fresh bucket; the AWS_* variables name it while it runs."""
    need("s3fs", "moto")
    from gbifxdl.testing.object_stores import S3Server

    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def gcs() -> Iterator[Any]:
    """gcp-storage-emulator on 127.0.0.1 with a fresh bucket; STORAGE_EMULATOR_HOST names it while it runs."""
    need("gcsfs", "gcp_storage_emulator")
    from gbifxdl.testing.object_stores import GCSServer

    with GCSServer() as server:
        yield server
