"""Benchmark of ``gbifxdl.select`` against the original's way and against the floor.

    python bench/select.py                      # 1,000,000 occurrences, all three side by side
    python bench/select.py --occurrences 200000
    python bench/select.py --baseline-rows 100000   # extrapolate the baseline (said so)
    python bench/select.py --memory             # peak RSS of select at 200k vs 2M occurrences
    python bench/select.py --repeat 5           # floor and select 5 times each, best compared

- floor: inflating occurrence.txt and multimedia.txt from the zip to nowhere, both at once;
- select: ``gbifxdl.select.select`` with the defaults (StillImage, species key required,
  one image per occurrence, URL de-duplication) and a cap of 2000 per species;
- baseline: what the original did, python-dwca-reader row by row with the same filters.

Each run is a fresh subprocess, so page cache is the only thing runs share (the archive is
read once before timing to warm it for everyone alike). Emulator archives are cached in
``bench/.cache/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named select.py: with its folder on sys.path it would shadow the standard
# library's `select` (which subprocess imports), so the folder comes off the path first
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import textwrap  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_common", _HERE / "_common.py")
_common = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_common)  # type: ignore[union-attr]
CACHE, cached_archive = _common.CACHE, _common.cached_archive

CAP = 2000

_FLOOR = """
import sys, threading, time, zipfile
path = sys.argv[1]
def inflate(name):
    with zipfile.ZipFile(path) as zf, zf.open(name) as member:
        while member.read(1 << 20):
            pass
started = time.perf_counter()
threads = [threading.Thread(target=inflate, args=(n,)) for n in ("occurrence.txt", "multimedia.txt")]
[t.start() for t in threads]; [t.join() for t in threads]
print(time.perf_counter() - started)
"""

_SELECT = """
import resource, sys, time
from pathlib import Path
from gbifxdl.select import SelectSettings, select
started = time.perf_counter()
summary = select(sys.argv[1], sys.argv[2], SelectSettings(max_per_class=int(sys.argv[3])), progress=False)
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(seconds, summary.media_rows_read, summary.images_selected, rss)
"""

# The original's loop (gbifxdl 0.1 preprocess_occurrences_stream), as it ran: it first
# opened the archive once to check, on the first row, that the extensions could be read
# (python-dwca-reader unzips the archive and indexes every extension by core id for that,
# verbatim.txt included), then opened it again for the real pass; row by row over every
# extension, each kept row's columns picked from the row's dict by testing every term
# name against a list built per test (`KEYS_OCC + KEYS_GBIF`), sha1 per URL, Arrow tables
# of 10,000 rows written to Parquet. The same filters as select's defaults here:
# StillImage (any case), a species key, one random image per occurrence, an exact set of
# seen URLs, a per-species cap. `--lean-baseline` drops the probe and uses sets: a
# baseline kinder than the original, printed as such.
_BASELINE = """
import hashlib, random, sys, time
from collections import defaultdict
import pyarrow as pa, pyarrow.parquet as pq
from dwca.read import DwCAReader
path, out, cap, limit, lean = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
OCC = ["gbifID", "basisOfRecord", "recordedBy", "countryCode", "eventDate", "lifeStage", "sex", "scientificName",
       "taxonRank", "datasetKey", "decimalLatitude", "decimalLongitude", "kingdom", "phylum", "class", "order",
       "family", "genus", "species",
       "taxonKey", "acceptedTaxonKey"]
RANKS = ["kingdomKey", "phylumKey", "classKey", "orderKey", "familyKey", "genusKey", "speciesKey"]
MEDIA = ["type", "format", "identifier", "references", "created", "creator", "publisher", "license", "rightsHolder"]
if lean:
    OCC, RANKS, MEDIA = set(OCC), set(RANKS), set(MEDIA)
def wanted(name, keys, more=None):
    if more is None:
        return name in keys
    return (name in keys or name in more) if lean else name in keys + more
started = time.perf_counter()
if not lean:  # the original's check that extensions are readable: a first unzip and index
    with DwCAReader(path) as probe:
        first = next(iter(probe), None)
        if first is not None:
            list(first.extensions)
rng = random.Random(0)
seen, per_species, chunk, writer = set(), defaultdict(int), defaultdict(list), None
kept = media_rows = occurrences = 0
def flush():
    global chunk, writer
    table = pa.table(chunk)
    writer = writer or pq.ParquetWriter(out, table.schema)
    writer.write_table(table)
    chunk = defaultdict(list)
with DwCAReader(path) as archive:
    setup = time.perf_counter() - started  # unzipping and indexing the extensions
    for row in archive:
        occurrences += 1
        images = []
        for ext in row.extensions:
            if ext.rowtype.endswith("Multimedia"):
                media_rows += 1
                if (ext.data.get("http://purl.org/dc/terms/type") or "").lower() == "stillimage":
                    images.append(ext.data)
        if images:
            image = rng.choice(images)
            url = image.get("http://purl.org/dc/terms/identifier")
            if url and url not in seen:
                seen.add(url)
                record = {k.split("/")[-1]: v for k, v in row.data.items() if wanted(k.split("/")[-1], OCC, RANKS)}
                record.update({k.split("/")[-1]: v for k, v in image.items() if wanted(k.split("/")[-1], MEDIA)})
                record["url_hash"] = hashlib.sha1(url.encode("utf-8")).hexdigest()
                species = record.get("speciesKey")
                if species:
                    per_species[species] += 1
                    if per_species[species] <= cap:
                        for k, v in record.items():
                            chunk[k].append(v)
                        kept += 1
                        if kept % 10000 == 0:
                            flush()
        if limit and occurrences >= limit:
            break
if chunk:
    flush()
if writer:
    writer.close()
print(time.perf_counter() - started, setup, media_rows, kept, occurrences)
"""


def _python(code: str, *args: object) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"benchmark step failed:\n{result.stderr}")
    return result.stdout.split()


def _warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


def speed(n_occurrences: int, baseline_rows: int | None, repeat: int, lean: bool = False) -> dict[str, float]:
    """Return the figures of one side-by-side run, printing them.

    The floor and select run ``repeat`` times, alternating (the machine is shared, so
    timings are noisy): their best times are compared. The baseline runs once.
    """
    archive = cached_archive(n_occurrences)
    _warm(archive)
    out = CACHE / f"bench-select-{n_occurrences}.parquet"
    floors, runs = [], []
    for _ in range(repeat):
        floors.append(float(_python(_FLOOR, archive)[0]))
        runs.append([float(v) for v in _python(_SELECT, archive, out, CAP)])
    floor = min(floors)
    seconds, media_rows, kept, rss = min(runs)
    print(f"floor runs: {', '.join(f'{f:.2f}' for f in floors)} s; select runs: "
          f"{', '.join(f'{r[0]:.2f}' for r in runs)} s (best of {repeat} compared)")
    b_out = CACHE / f"bench-baseline-{n_occurrences}.parquet"
    b_seconds, b_setup, b_media, b_kept, b_occ = (
        float(v) for v in _python(_BASELINE, archive, b_out, CAP, baseline_rows or 0, int(lean)))
    extrapolated = bool(baseline_rows) and b_occ < n_occurrences
    if extrapolated:
        # the setup (unzip, index) is paid once; the row loop scales with the occurrences
        b_seconds = b_setup + (b_seconds - b_setup) * n_occurrences / b_occ
        b_media = media_rows
    ours, theirs = media_rows / seconds, b_media / b_seconds
    figures = {"occurrences": n_occurrences, "media_rows": media_rows, "floor_s": floor, "select_s": seconds,
               "baseline_s": b_seconds, "select_rows_per_s": ours, "baseline_rows_per_s": theirs,
               "speedup_vs_baseline": ours / theirs, "ratio_vs_floor": seconds / floor,
               "select_peak_rss_mb": rss / 2**20, "select_kept": kept, "baseline_kept": b_kept,
               "baseline_extrapolated": extrapolated, "baseline": "lean" if lean else "original", "floor_runs_s": floors,
               "select_runs_s": [r[0] for r in runs]}
    print(textwrap.dedent(f"""\
        archive: {archive.name} ({archive.stat().st_size / 1e6:.0f} MB zip), {n_occurrences:,} occurrences, {media_rows:,.0f} media rows
        floor    (inflate both members, in parallel) {floor:8.2f} s
        select   (gbifxdl)                            {seconds:8.2f} s  {ours:12,.0f} media rows/s  peak RSS {rss / 2**20:.0f} MB
        baseline ({'lean re-implementation' if lean else "the original's loop"}, python-dwca-reader) {b_seconds:8.2f} s  {theirs:12,.0f} media rows/s{'  (EXTRAPOLATED from the first ' + f'{b_occ:,.0f} occurrences)' if extrapolated else ''}
        select is {ours / theirs:.1f}x the baseline's rows/s (target >= 40x) and {seconds / floor:.2f}x the floor (target <= 2.5x)"""))
    return figures


def memory(sizes: tuple[int, ...]) -> list[dict[str, float]]:
    """Return the peak RSS of select per archive size, printing it."""
    rows = []
    for n in sizes:
        archive = cached_archive(n)
        out = CACHE / f"bench-select-{n}.parquet"
        seconds, media_rows, kept, rss = (float(v) for v in _python(_SELECT, archive, out, CAP))
        rows.append({"occurrences": n, "media_rows": media_rows, "seconds": seconds, "peak_rss_mb": rss / 2**20})
        print(f"{n:>10,} occurrences: peak RSS {rss / 2**20:6.0f} MB  ({seconds:.1f} s, {media_rows:,.0f} media rows)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--occurrences", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=None,
                        help="Time the baseline on the first N occurrences only and extrapolate (printed as such).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of the floor and of select (best compared).")
    parser.add_argument("--lean-baseline", action="store_true",
                        help="A baseline kinder than the original: no probe pass, sets instead of lists.")
    parser.add_argument("--memory", action="store_true", help="Peak RSS at 200k vs 2M occurrences instead.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    figures = memory((200_000, 2_000_000)) if args.memory else speed(args.occurrences, args.baseline_rows, args.repeat, args.lean_baseline)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
