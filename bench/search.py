"""Benchmark of the search route against a download archive, for a query capped per species.

    python bench/search.py                          # 1,000 species x ~1,000 image occurrences, cap 20
    python bench/search.py --species 200 --per-species 500 --cap 20   # a smaller universe

One run prints both routes side by side, with the ratio: the time and the bytes from the
query to a ready ``selection.parquet``

- search: ``select_from_search`` (the species facet, then each species paged only as far as
  its cap needs: pages of ``2 * cap + 10`` records), against the emulator's
  ``/v1/occurrence/search``; bytes are the JSON bodies the emulator sent (uncompressed);
- download: the archive GBIF prepared, fetched (``download_archive``) and read by ``select``
  with the same cap; bytes are the archive's.

The emulator runs in its own process (as GBIF would be another machine), with the archive
delay set to zero (``prepare_seconds=0, run_seconds=0``). What the emulator itself spends
making up the occurrences is left out of both: its search index is built by one untimed
request first, and the download's preparation (the emulator writing the archive, which
stands in for GBIF's own work) is timed apart and printed, not counted. The universe has
every species equally likely (``Universe(even=True)``), so each species has about
``--per-species`` occurrences, all with a still image.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds select.py: with this folder on sys.path it would shadow the standard library's
# `select` (which subprocess imports), so the folder comes off the path first
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

# the emulator, in a process of its own: prints its address, then answers "stats" on stdin
_SERVE = """
import json, sys
from gbifxdl.testing.gbif_server import GbifEmulator
from gbifxdl.testing.universe import Universe
n_species, n_occurrences, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
universe = Universe(seed=0, n_species=n_species, even=True)
with GbifEmulator(n_occurrences=n_occurrences, prepare_seconds=0, run_seconds=0, universe=universe,
                  archive_dir=folder) as gbif:
    print(json.dumps({"api_url": gbif.api_url}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"pages": gbif.search.served, "bytes": gbif.search.served_bytes}), flush=True)
"""


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--species", type=int, default=1000, help="species in the universe (default 1000)")
    parser.add_argument("--per-species", type=int, default=1000, help="occurrences per species, about (default 1000)")
    parser.add_argument("--cap", type=int, default=20, help="--max-per-class of the query (default 20)")
    args = parser.parse_args()

    import requests

    from gbifxdl.credentials import Credentials
    from gbifxdl.gbif import download_archive, post_request, wait
    from gbifxdl.query import build_predicate
    from gbifxdl.select import SelectSettings, select
    from gbifxdl.select.search import search_params, select_from_search

    # 3% of a universe's draws are genus-level records: a few more keep ~per-species on each species
    n_occurrences = round(args.species * args.per_species / 0.97)
    predicate = build_predicate(media_type="StillImage")
    settings = SelectSettings(max_per_class=args.cap)
    with tempfile.TemporaryDirectory(prefix="gbifxdl-bench-search-") as tmp:
        work = Path(tmp)
        (work / "archives").mkdir()
        server = subprocess.Popen([sys.executable, "-c", _SERVE, str(args.species), str(n_occurrences),
                                   str(work / "archives")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert server.stdin is not None and server.stdout is not None
        try:
            api = json.loads(server.stdout.readline())["api_url"]

            def stats() -> dict:
                server.stdin.write("stats\n")
                server.stdin.flush()
                return json.loads(server.stdout.readline())

            print(f"universe: {args.species:,} species, {n_occurrences:,} occurrences, cap {args.cap}; "
                  f"emulator at {api}", file=sys.stderr, flush=True)
            # untimed: the emulator makes up the query's occurrences and indexes them once
            started = time.perf_counter()
            head = requests.get(f"{api}/occurrence/search", timeout=3600,
                                params=search_params(predicate) + [("limit", "0"), ("facet", "speciesKey"),
                                                                   ("facetLimit", str(args.species + 100))]).json()
            counts = sorted(c["count"] for c in head["facets"][0]["counts"])
            print(f"  emulator's search index: {head['count']:,} occurrences, {len(counts):,} species "
                  f"(min {counts[0]:,}, median {counts[len(counts) // 2]:,}, max {counts[-1]:,} each) "
                  f"in {time.perf_counter() - started:.0f} s (untimed)", file=sys.stderr, flush=True)

            # search route
            before = stats()
            started = time.perf_counter()
            searched = select_from_search(predicate, work / "search" / "selection.parquet", settings, api_url=api,
                                          progress=False)
            search_s = time.perf_counter() - started
            after = stats()
            search_bytes, search_pages = after["bytes"] - before["bytes"], after["pages"] - before["pages"]

            # download route: post and wait (the emulator writes the archive: untimed), then get + select
            credentials = Credentials("demo", "demo-password")
            started = time.perf_counter()
            key = post_request(predicate, credentials=credentials, api_url=api)
            wait(key, api_url=api, min_interval=0.2, max_interval=1.0, progress=False)
            prepared_s = time.perf_counter() - started
            print(f"  emulator's archive {key} written in {prepared_s:.0f} s (untimed: GBIF's preparation)",
                  file=sys.stderr, flush=True)
            started = time.perf_counter()
            path = download_archive(key, work / "download", api_url=api, progress=False)
            get_s = time.perf_counter() - started
            started = time.perf_counter()
            selected = select(path, work / "download" / "selection.parquet", settings, progress=False)
            select_s = time.perf_counter() - started
            archive_bytes = path.stat().st_size
        finally:
            server.stdin.close()
            server.wait(timeout=60)

    download_s = get_s + select_s
    print()
    print(f"capped query (--max-per-class {args.cap}) over {args.species:,} species, "
          f"{n_occurrences:,} image occurrences; time and bytes to a ready selection.parquet")
    print(f"{'route':<10} {'time':>9} {'bytes':>12} {'requests':>9} {'images':>8}  detail")
    print(f"{'search':<10} {search_s:>8.1f}s {_mb(search_bytes):>12} {search_pages:>9,} {searched.images_selected:>8,}  "
          f"facet + one species at a time (JSON bytes as sent, uncompressed)")
    print(f"{'download':<10} {download_s:>8.1f}s {_mb(archive_bytes):>12} {1:>9,} {selected.images_selected:>8,}  "
          f"get {get_s:.1f} s + select {select_s:.1f} s (archive preparation {prepared_s:.0f} s not counted)")
    print(f"{'ratio':<10} {download_s / search_s:>8.1f}x {archive_bytes / max(search_bytes, 1):>11.1f}x"
          f"            download / search")


if __name__ == "__main__":
    main()
