"""Renditions benchmark (issue 12): the smallest big-enough rendition against the originals, in one run.

    python bench/renditions.py [--images 5000] [--resize 512] [--side 2048] [--pool 48]

An emulated host (its own process) serves iNaturalist-style photos: ``original.jpg``
with a longest side of ``--side`` px, and ``large`` (1024), ``medium`` (500) and
``small`` (240) renditions. `gbifxdl fetch --resize 512` runs twice on the same
``--images`` URLs, once with ``--no-renditions`` (the originals) and once with
renditions (it fetches ``large``: the smallest whose longest side reaches 512), and the
script prints bytes downloaded and images per second side by side, and checks that the
outputs have the same sizes. (``--pool`` distinct photos are drawn, shown under
``--images`` different URLs: making thousands of 2048 px photos would take longer than
the benchmark.)
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(_HERE).parent
sys.path.insert(0, str(ROOT / "src"))

SERVER = r"""
import sys
from gbifxdl.testing.image_hosts import ImageHosts
with ImageHosts(1, max_side=int(sys.argv[1]), exact_size=True, photo_pool=int(sys.argv[2])) as hosts:
    print(hosts.base_urls[0], flush=True)
    sys.stdin.read()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--resize", type=int, default=512)
    parser.add_argument("--side", type=int, default=2048, help="longest side of the originals")
    parser.add_argument("--pool", type=int, default=48, help="distinct photos behind the URLs")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    from gbifxdl.fetch import FetchSettings, fetch
    from gbifxdl.testing.image_hosts import write_selection

    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(args.side), str(args.pool)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        base = proc.stdout.readline().strip()  # type: ignore[union-attr]
        netloc = base.split("//")[1]
        print(f"making {args.pool} photos of {args.side} px and their renditions (once)...", file=sys.stderr)
        for i in range(args.pool):
            for size in ("original", "large"):
                urllib.request.urlopen(f"{base}/photos/{i}/{size}.jpg", timeout=120).read()
        urls = [f"{base}/photos/{i}/original.jpg" for i in range(args.images)]
        results = {}
        with tempfile.TemporaryDirectory(prefix="gbifxdl-renditions-") as tmp:
            sel = write_selection(Path(tmp) / "sel.parquet", urls)
            runs = {
                "originals": FetchSettings(resize=args.resize, renditions=False),
                "renditions": FetchSettings(resize=args.resize, rendition_hosts=((netloc, "inaturalist"),)),
            }
            for name, settings in runs.items():
                out = Path(tmp) / name
                started = time.perf_counter()
                summary = fetch(sel, out, settings, progress=False)
                seconds = time.perf_counter() - started
                hosts = json.loads((out / ".gbifxdl" / "fetch" / "hosts.json").read_text())
                table = pq.read_table(out / "metadata.parquet", columns=["width", "height", "fetched_url"])
                results[name] = {
                    "ok": summary.ok, "seconds": seconds, "bytes": sum(h["bytes"] for h in hosts),
                    "sizes": list(zip(table.column("width").to_pylist(), table.column("height").to_pylist())),
                    "fetched": table.column("fetched_url").to_pylist()[0],
                }
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)

    o, r = results["originals"], results["renditions"]
    print(f"{args.images} photos, originals {args.side} px, --resize {args.resize}")
    print(f"{'':<12} {'ok':>6} {'MB downloaded':>14} {'seconds':>8} {'images/s':>9}  first URL fetched")
    for name, res in results.items():
        print(f"{name:<12} {res['ok']:>6} {res['bytes'] / 1e6:>14.1f} {res['seconds']:>8.1f} "
              f"{res['ok'] / res['seconds']:>9.1f}  {res['fetched']}")
    fewer = o["bytes"] / max(1, r["bytes"])
    faster = (r["ok"] / r["seconds"]) / (o["ok"] / o["seconds"])
    same = o["sizes"] == r["sizes"]
    print(f"renditions: {fewer:.2f}x fewer bytes, {faster:.2f}x images per second; "
          f"outputs of the same sizes: {same}")
    checks = {"all images ok": o["ok"] == r["ok"] == args.images, ">= 3x fewer bytes": fewer >= 3,
              ">= 2x images per second": faster >= 2, "same output sizes": same}
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
