"""What each image host saw of a fetch: requests, bytes, latency, 429s, the rate it settled at.

Kept per host by the host scheduler, written to ``DIR/.gbifxdl/fetch/hosts.json`` and to the
log, and shown (the busiest hosts, the rest summed) in the fetch summary: a run over
hundreds of hosts stays readable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

# hosts shown one per line in the summary; the others are summed on one line
TOP_HOSTS = 8


@dataclass
class HostStats:
    """One host's traffic in this run."""

    host: str
    requests: int = 0            # HTTP requests sent (each redirect hop counts on its own host)
    bytes: int = 0               # body bytes received
    latency_sum: float = 0.0     # seconds from sending a request to its last byte
    throttled: int = 0           # 429 and 503 answers
    connections: int = 0         # new TCP connections (the others reused a kept-alive one)
    dns_lookups: int = 0         # name resolutions that missed the DNS cache
    peak_in_flight: int = 0      # most requests in flight at once
    limit: int = 0               # its concurrency limit at the end
    ceiling: int = 0             # the most requests in flight it may ever get (limits adapt below it)
    rate: float | None = None    # the request rate it settled at (None: never limited)
    opted_out: int = 0           # answers whose X-Robots-Tag opted out

    @property
    def mean_latency(self) -> float:
        """Return the mean seconds per request."""
        return self.latency_sum / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the numbers as a JSON-ready dict (with the mean latency)."""
        data = asdict(self)
        data["mean_latency"] = round(self.mean_latency, 4)
        data["latency_sum"] = round(self.latency_sum, 3)
        data["rate"] = None if self.rate is None else round(self.rate, 3)
        return data


def format_hosts(hosts: list[dict[str, Any]], top: int = TOP_HOSTS) -> list[str]:
    """Return summary lines: the ``top`` busiest hosts one per line, the rest on one line."""
    lines = [f"hosts ({len(hosts)}): requests, MB, mean latency, 429/503, settled rate, "
             "connections opened, peak in flight/most allowed (limit at the end)"]
    ordered = sorted(hosts, key=lambda h: -int(h["requests"]))
    for h in ordered[:top]:
        rate = "unlimited" if h["rate"] is None else f"{h['rate']:.3g}/s"
        lines.append(f"  {h['host']}: {h['requests']} req, {h['bytes'] / 1e6:.1f} MB, "
                     f"{h['mean_latency'] * 1000:.0f} ms, {h['throttled']} throttled, {rate}, "
                     f"{h['connections']} conn, peak {h['peak_in_flight']}/{h.get('ceiling') or h['limit']} (now {h['limit']})")
    rest = ordered[top:]
    if rest:
        req = sum(int(h["requests"]) for h in rest)
        mb = sum(int(h["bytes"]) for h in rest) / 1e6
        thr = sum(int(h["throttled"]) for h in rest)
        slowed = sum(1 for h in rest if h["rate"] is not None)
        lines.append(f"  {len(rest)} other hosts: {req} req, {mb:.1f} MB, {thr} throttled, "
                     f"{slowed} of them rate-limited")
    return lines


def trace_config(stats_of: Callable[[str], HostStats]) -> aiohttp.TraceConfig:
    """Return a trace that counts new connections and DNS lookups per host in ``stats_of(host)``."""
    trace = aiohttp.TraceConfig()

    async def on_start(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        url = params.url
        ctx.host = f"{url.host}:{url.port}" if url.port and not url.is_default_port() else (url.host or "")

    async def on_connection(session: Any, ctx: Any, params: Any) -> None:
        stats_of(ctx.host).connections += 1

    async def on_dns(session: Any, ctx: Any, params: Any) -> None:
        stats_of(ctx.host).dns_lookups += 1

    trace.on_request_start.append(on_start)
    trace.on_connection_create_end.append(on_connection)
    trace.on_dns_resolvehost_end.append(on_dns)
    return trace


def write_host_stats(path: Path, stats: list[HostStats]) -> list[dict[str, Any]]:
    """Return the hosts' stats as JSON-ready dicts, after writing them to ``path`` (atomically)."""
    import json

    from gbifxdl._io import atomic_path

    data = [s.to_json() for s in stats]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return data
