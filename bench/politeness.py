"""Politeness benchmark (issue 12): rate-limited hosts, a per-window host, a slow host, in one run.

    python bench/politeness.py [--seconds 60] [--per-host 4]

Five emulated image hosts on loopback (their own process, so the servers never share
fetch's CPU): three answering 2, 5 and 20 requests/s (429 with Retry-After beyond), one
that answers 429 after N requests per minute (until the minute is over), one that adds
200 ms to every answer. Each host gets as many images as its limit lets through in
about ``--seconds``. `gbifxdl fetch` gets all of them; the script prints, per host and in
total, the ideal time the hosts' limits set next to the actual one, and checks:

- at least 99.9% of the (good) images delivered;
- zero requests arriving inside a Retry-After window a host had given;
- no host ever above its configured concurrency (--per-host, its ceiling 4x that);
- total time within 15% of the ideal.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(_HERE).parent
sys.path.insert(0, str(ROOT / "src"))

SERVER = r"""
import json, sys
from gbifxdl.testing.image_hosts import HostPolicy, ImageHosts
spec = json.loads(sys.argv[1])
policies = {i: HostPolicy(**p) for i, p in enumerate(spec)}
with ImageHosts(len(spec), max_side=96, policies=policies) as hosts:
    print(json.dumps(hosts.base_urls), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            out = {u: {"max_concurrent": hosts.max_concurrent(u), "inside": hosts.requests_inside_retry_after(u),
                       "throttled": hosts.throttled(u)} for u in hosts.base_urls}
            out["requests"] = hosts.total_requests()
            print(json.dumps(out), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="about how long each host is kept busy")
    parser.add_argument("--per-host", type=int, default=4, help="starting connections per host")
    args = parser.parse_args()
    from gbifxdl.fetch import FetchSettings, fetch
    from gbifxdl.testing.image_hosts import write_selection

    t = args.seconds
    window = min(60.0, t)
    per_window = max(5, round(t))  # "N requests per minute": two windows' worth of images
    hosts = [
        ("rate 2/s", {"rate": 2.0}, round(2 * t)),
        ("rate 5/s", {"rate": 5.0}, round(5 * t)),
        ("rate 20/s", {"rate": 20.0}, round(20 * t)),
        (f"429 after {per_window}/{window:g}s", {"per_window": per_window, "window": window}, 2 * per_window),
        ("latency 200 ms", {"latency": 0.2}, round(20 * t)),
    ]
    ceiling = 4 * args.per_host
    ideal = {
        0: hosts[0][2] / 2.0, 1: hosts[1][2] / 5.0, 2: hosts[2][2] / 20.0,
        3: (math.ceil(hosts[3][2] / per_window) - 1) * window,
        4: hosts[4][2] * 0.2 / ceiling,
    }
    proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps([h[1] for h in hosts])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        base_urls = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        urls = [f"{base_urls[h]}/photos/{i}/original.jpg" for h, (_, _, n) in enumerate(hosts) for i in range(n)]
        # interleaved, as a real selection mixes hosts
        urls.sort(key=lambda u: int(u.split("/photos/")[1].split("/")[0]))
        with tempfile.TemporaryDirectory(prefix="gbifxdl-politeness-") as tmp:
            sel = write_selection(Path(tmp) / "sel.parquet", urls)
            settings = FetchSettings(workers=0, per_host=args.per_host, retry_backoff=0.2, shard_size=500)
            started = time.perf_counter()
            summary = fetch(sel, Path(tmp) / "out", settings, progress=False)
            actual = time.perf_counter() - started
            fetched = {h["host"]: h for h in json.loads((Path(tmp) / "out" / ".gbifxdl" / "fetch" / "hosts.json").read_text())}
        proc.stdin.write("stats\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        server = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)

    print(f"{len(urls)} images on {len(hosts)} hosts, per_host {args.per_host} (ceiling {ceiling})")
    print(f"{'host':<22} {'images':>6} {'ideal s':>8} {'settled':>9} {'429s':>5} {'inside RA':>9} {'peak conc':>9}")
    inside = 0
    peak_ok = True
    for h, (name, _, n) in enumerate(hosts):
        netloc = base_urls[h].split("//")[1]
        stats = server[base_urls[h]]
        rate = fetched[netloc]["rate"]
        inside += stats["inside"]
        peak_ok &= stats["max_concurrent"] <= ceiling
        print(f"{name:<22} {n:>6} {ideal[h]:>8.1f} {'unlimited' if rate is None else f'{rate:.2f}/s':>9} "
              f"{stats['throttled']:>5} {stats['inside']:>9} {stats['max_concurrent']:>5}/{ceiling}")
    best = max(ideal.values())
    delivered = summary.ok / len(urls)
    print(f"\ndelivered: {summary.ok} of {len(urls)} ({delivered:.2%}); outcomes {dict(summary.outcomes)}")
    print(f"requests: {server['requests']} for {len(urls)} images; inside a Retry-After window: {inside}")
    print(f"time: ideal {best:.1f} s (set by the hosts' limits), actual {actual:.1f} s, "
          f"ratio {actual / best:.3f}")
    checks = {"delivered >= 99.9%": delivered >= 0.999, "zero requests inside Retry-After": inside == 0,
              "never above the configured concurrency": peak_ok, "time within 15% of ideal": actual <= 1.15 * best}
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
