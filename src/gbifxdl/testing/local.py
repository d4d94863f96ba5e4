"""A whole local GBIF in one context manager: the API emulator and its image hosts.

This is what ``gbifxdl demo`` and the end-to-end tests run against. Everything binds
to loopback addresses only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gbifxdl.testing.gbif_server import GbifEmulator
from gbifxdl.testing._host_policy import HostPolicy
from gbifxdl.testing.image_hosts import ImageHosts

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # the emulator's own account; not a real GBIF secret


@dataclass(frozen=True)
class LocalGbifSettings:
    """How big, how slow and how faulty the local GBIF is."""

    n_occurrences: int = 300
    seed: int = 0
    prepare_seconds: float = 1.0
    run_seconds: float = 2.0
    n_hosts: int = 3
    fault_rate: float = 0.05
    latency: float = 0.0
    # the last host is a small portal: it answers 429 (with Retry-After) beyond 5 requests/s
    throttled_host_rate: float | None = 5.0


@dataclass(frozen=True)
class LocalGbif:
    """The running servers: ``api_url`` for the client, ``hosts`` for request records."""

    api_url: str
    emulator: GbifEmulator
    hosts: ImageHosts


@contextlib.contextmanager
def local_gbif(settings: LocalGbifSettings = LocalGbifSettings(), *, archive_dir: Path | None = None) -> Iterator[LocalGbif]:
    """Start image hosts and the GBIF emulator on loopback; stop both on exit."""
    policies = {}
    if settings.throttled_host_rate is not None and settings.n_hosts > 1:
        policies[settings.n_hosts - 1] = HostPolicy(rate=settings.throttled_host_rate)
    with ImageHosts(
        settings.n_hosts, seed=settings.seed, latency=settings.latency, fault_rate=settings.fault_rate,
        policies=policies,
    ) as hosts:
        with GbifEmulator(
            users={DEMO_USER: DEMO_PASSWORD},
            seed=settings.seed,
            n_occurrences=settings.n_occurrences,
            prepare_seconds=settings.prepare_seconds,
            run_seconds=settings.run_seconds,
            image_base_urls=hosts.base_urls,
            archive_dir=archive_dir,
        ) as emulator:
            yield LocalGbif(api_url=emulator.api_url, emulator=emulator, hosts=hosts)
