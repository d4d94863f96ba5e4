"""Run :class:`gbifxdl.testing.image_hosts.ImageHosts` in its own process for the benchmark.

Usage: python bench/_fetch_hosts.py FILES_DIR N_HOSTS LATENCY. Prints the base URLs as one
JSON line, then serves until its standard input closes.
"""

from __future__ import annotations

import os
import sys

# bench/ holds scripts named like standard modules (select.py): never import from it by name
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import json  # noqa: E402

from gbifxdl.testing.image_hosts import ImageHosts  # noqa: E402

if __name__ == "__main__":
    files_dir, n_hosts, latency = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with ImageHosts(n_hosts, latency=latency, files_dir=files_dir) as hosts:
        print(json.dumps(hosts.base_urls), flush=True)
        sys.stdin.read()
