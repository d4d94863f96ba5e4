"""Fetch benchmark (issue #4): gbifxdl against img2dataset on the same URLs, in one run.

    python bench/fetch.py [--images 5000] [--skip-img2dataset] [--skip-latency]
                          [--memory 10000,200000] [--repeat N] [--only-keep]

1. Makes (once, cached in bench/.cache/) JPEGs of real-world sizes (0.2-12 MP).
2. Times decode-resize-encode routes in a tight loop on all cores over the same images;
   the fastest is the floor.
3. Serves the images from loopback with Debian's nginx (installed with apt if missing)
   and times `gbifxdl fetch` and img2dataset (in bench/.venv-img2dataset) on the same
   URLs: resize 512 / JPEG 95, then originals kept (validated by decoding, with pHash,
   the default; and headers only) against img2dataset --disable_all_reencoding
   (--only-keep: that comparison alone). The machine's speed drifts with other
   load, so each comparison runs in rounds (--repeat): each gbifxdl run is bracketed by
   floor runs and followed by img2dataset's, and the median of the rounds' ratios is the
   headline (the best against the best is printed too).
4. Latency: the emulator's image hosts (4 hosts, in their own process) with 0 and 200 ms
   added to every response.
5. Memory: peak RSS of the fetch processes for N URLs of small images.
"""

from __future__ import annotations

import os
import sys

# bench/ holds scripts named like standard modules (select.py): never import from it by name
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
BENCH_VENV = HERE / ".venv-img2dataset"
sys.path.insert(0, str(ROOT / "src"))

from gbifxdl.testing.image_hosts import write_selection  # noqa: E402


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


make_images = _load("_fetch_data").make_images
Nginx = _load("_nginx").Nginx
timed = _load("_proctree").timed

ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
PURE_ROUTES = ("pillow-draft", "simplejpeg+box", "opencv-reduced+area", "pyvips-thumbnail")


def bench_python() -> Path:
    """Return the bench venv's python, creating the venv with img2dataset, OpenCV and pyvips."""
    python = BENCH_VENV / "bin" / "python"
    if not (BENCH_VENV / "bin" / "img2dataset").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "img2dataset", "opencv-python-headless",
                        "pyvips", "pyvips-binary", "simplejpeg", "pillow"], check=True)
    return python


@dataclass
class Rate:
    """One timed run: images ok per second by wall time, and per CPU-second x cores."""

    wall: float
    cpu: float
    ok: int
    peak_mib: int = 0
    inner: float = 0.0   # images/s over fetch()'s own time (from its log): no interpreter start

    def __str__(self) -> str:
        return f"{self.wall:6.1f} images/s wall, {self.cpu:6.1f} per CPU-second x cores ({self.ok} ok)"

    def ratio(self, other: "Rate") -> str:
        return f"{self.wall / other.wall:.2f}x wall, {self.cpu / other.cpu:.2f}x CPU"


CORES = os.cpu_count() or 1


# each timed run is repeated this many times (--repeat) and the best kept: on a shared
# machine a run is only ever slowed down by others, so the best is the least disturbed
REPEAT = [1]


def best(rates: list[Rate]) -> Rate:
    """Return the best wall and CPU rates of several runs (the least disturbed)."""
    return Rate(max(r.wall for r in rates), max(r.cpu for r in rates), rates[0].ok,
                max(r.peak_mib for r in rates), max(r.inner for r in rates))


def best_of(measure):  # type: ignore[no-untyped-def]
    """Wrap a timing function: run it REPEAT times, keep the best wall and CPU rates."""

    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        return best([measure(*args, **kwargs) for _ in range(REPEAT[0])])

    return run


def gbifxdl_fetch_once(selection: Path, out: Path, *args: str) -> Rate:
    """Return the rate of one `gbifxdl fetch` (a fresh output folder)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", "from gbifxdl.cli import main; main()", "fetch", str(selection), "-o", str(out),
           "--quiet", *args]
    seconds, peak, cpu = timed(cmd, ENV)
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    outcomes = pq.read_table(out / "metadata.parquet", columns=["outcome"]).column("outcome")
    ok = pc.sum(pc.equal(outcomes, "ok")).as_py()
    found = re.findall(r"handled in this run, ([0-9.]+) s\)", (out / "fetch.log").read_text())
    return Rate(ok / seconds, ok / cpu * CORES, ok, peak, ok / float(found[-1]) if found else 0.0)


gbifxdl_fetch = best_of(gbifxdl_fetch_once)


def img2dataset_once(urls: Path, out: Path, *args: str) -> Rate:
    """Return the rate of one img2dataset run on the same URLs."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(bench_python().parent / "img2dataset"), "--url_list", str(urls), "--input_format", "txt",
           "--output_folder", str(out), "--output_format", "files", "--processes_count", "2",
           "--number_sample_per_shard", "1000", "--retries", "0", *args]
    seconds, peak, cpu = timed(cmd)
    ok = sum(json.loads(p.read_text()).get("successes", 0) for p in out.glob("*_stats.json"))
    return Rate(ok / seconds, ok / cpu * CORES, ok, peak)


def run_routes(folder: Path, n: int, names: tuple[str, ...] = ()) -> dict[str, object]:
    """Return each route's rates (or why it is unavailable) over the first ``n`` images."""
    cmd = [str(bench_python()), str(HERE / "_fetch_routes.py"), str(folder), str(n)]
    if names:
        cmd.append(",".join(names))
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV).stdout)


@dataclass
class Floor:
    """The fastest pure route: its name and every rate measured in this run."""

    route: str
    rates: list[Rate]

    @property
    def best(self) -> Rate:
        return best(self.rates)


def compare_routes(folder: Path, n: int) -> Floor:
    """Print every decode-resize-encode route's rate; return the fastest pure route (the floor)."""
    routes = run_routes(folder, n)
    print(f"\nRoutes, resize 512 / JPEG 95, tight loop on {CORES} cores over {n} files:")
    fastest: tuple[str, Rate] | None = None
    for name, value in routes.items():
        if isinstance(value, str):
            print(f"  {name:<36} {value}")
            continue
        rate = Rate(value["wall"], value["cpu"], n)  # type: ignore[index]
        print(f"  {name:<36} {rate}")
        if name in PURE_ROUTES and (fastest is None or rate.cpu > fastest[1].cpu):
            fastest = (name, rate)
    assert fastest is not None
    return Floor(fastest[0], [fastest[1]])


def floor_once(folder: Path, n: int, floor: Floor) -> Rate:
    """Return (and keep) one rate of the floor route over the first ``n`` images."""
    value = run_routes(folder, n, (floor.route,))[floor.route]
    rate = Rate(value["wall"], value["cpu"], n)  # type: ignore[index]
    floor.rates.append(rate)
    return rate


def resize_rounds(folder: Path, n: int, selection: Path, url_list: Path, work: Path, floor: Floor,
                  skip: bool) -> None:
    """Print gbifxdl's rate at resize 512 / JPEG 95 against the floor and img2dataset, in rounds.

    Each gbifxdl run is bracketed by two floor runs (the one ending the round before and
    one just after it) and compared with their mean, so that both sides come from the
    same minutes: the machine's speed drifts by up to a quarter between minutes. The
    headline is the median of the rounds; the best against the best is printed too.
    """
    i2d = ("--resize_mode", "keep_ratio_largest", "--resize_only_if_bigger", "True", "--image_size", "512",
           "--encode_quality", "95")
    print(f"\nResize 512 / JPEG 95 over the same {n} images, in rounds (floor, then per round gbifxdl fetch,"
          f" floor{'' if skip else ', img2dataset'}):")
    before = floor_once(folder, n, floor)
    ours: list[Rate] = []
    theirs: list[Rate] = []
    ratios: list[tuple[float, float, float]] = []
    for i in range(REPEAT[0]):
        o = gbifxdl_fetch_once(selection, work / "ours-512", "--resize", "512", "--jpeg-quality", "95")
        after = floor_once(folder, n, floor)
        ours.append(o)
        wall, cpu = (before.wall + after.wall) / 2, (before.cpu + after.cpu) / 2
        ratios.append((o.wall / wall, o.cpu / cpu, o.inner / wall))
        line = (f"  round {i + 1}: floor {before.wall:6.1f} and {after.wall:6.1f}/s around gbifxdl {o.wall:6.1f}/s"
                f" = {ratios[-1][0]:.0%} of the floor ({ratios[-1][1]:.0%} by CPU; fetch() alone {ratios[-1][2]:.0%})")
        if not skip:
            theirs.append(img2dataset_once(url_list, work / "i2d-512", *i2d))
            line += f"; img2dataset {theirs[-1].wall:6.1f}/s, gbifxdl {o.wall / theirs[-1].wall:.2f}x"
        print(line)
        before = after
    wall, cpu, inner = (statistics.median(r[k] for r in ratios) for k in range(3))
    print(f"  median of {len(ratios)} rounds: {wall:.0%} of the floor by wall time, {cpu:.0%} by CPU time,"
          f" {inner:.0%} for fetch() alone (its own time: the floor's timer too starts after imports and"
          " process start)")
    floor_best, ours_best = floor.best, best(ours)
    print(f"floor, best of {len(floor.rates)} ({floor.route}):       {floor_best}")
    print(f"gbifxdl fetch, resize 512 / JPEG 95, best:   {ours_best}")
    print(f"  best against best: {ours_best.wall / floor_best.wall:.0%} of the floor by wall time,"
          f" {ours_best.cpu / floor_best.cpu:.0%} by CPU time")
    if theirs:
        print(f"img2dataset, resize 512 / JPEG 95, best:     {best(theirs)}")
        print(f"  gbifxdl / img2dataset, median of rounds:"
              f" {statistics.median(o.wall / t.wall for o, t in zip(ours, theirs)):.2f}x wall;"
              f" best against best: {ours_best.ratio(best(theirs))}")
    shutil.rmtree(work / "ours-512", ignore_errors=True)


def compare_with_img2dataset(paths: list[Path], folder: Path, work: Path, floor: Floor | None, skip: bool) -> None:
    """Print gbifxdl against the floor (unless None) and img2dataset on the same URLs served by nginx.

    The machine's speed drifts with other load: every comparison is run in rounds, each
    round timing its contenders back to back.
    """
    nginx = Nginx(folder)
    n = len(paths)
    try:
        urls = [f"{nginx.base}/{p.name}" for p in paths]
        selection = write_selection(work / "sel.parquet", urls, [i % 50 for i in range(len(urls))])
        url_list = work / "urls.txt"
        url_list.write_text("\n".join(urls) + "\n")
        if floor is not None:
            resize_rounds(folder, n, selection, url_list, work, floor, skip)
        keep_rounds(selection, url_list, work, skip)
    finally:
        nginx.stop()
        shutil.rmtree(work / "ours-512", ignore_errors=True)


def _phashed(out: Path) -> int:
    """Return how many rows of a fetch's metadata have a pHash."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return pc.count(pq.read_table(out / "metadata.parquet", columns=["phash"]).column("phash")).as_py()


def keep_rounds(selection: Path, url_list: Path, work: Path, skip: bool) -> None:
    """Print originals kept (the default validation: the whole image decoded in the DCT at
    reduced scale, pHash and sha256; and headers only) against img2dataset's
    --disable_all_reencoding (no decoding at all), in rounds, side by side."""
    print(f"\nOriginals kept, in rounds: gbifxdl fetch (default: whole image decoded, pHash, sha256), gbifxdl fetch"
          f" --validate header (no pHash){'' if skip else ', img2dataset --disable_all_reencoding True'}:")
    decoded: list[Rate] = []
    header: list[Rate] = []
    raw: list[Rate] = []
    for i in range(REPEAT[0]):
        decoded.append(gbifxdl_fetch_once(selection, work / "ours-keep"))
        hashed = _phashed(work / "ours-keep")
        header.append(gbifxdl_fetch_once(selection, work / "ours-keep-header", "--validate", "header"))
        line = (f"  round {i + 1}: gbifxdl {decoded[-1].wall:6.1f}/s (pHash for {hashed} of {decoded[-1].ok}),"
                f" headers only {header[-1].wall:6.1f}/s")
        if not skip:
            raw.append(img2dataset_once(url_list, work / "i2d-keep", "--disable_all_reencoding", "True"))
            line += f"; img2dataset {raw[-1].wall:6.1f}/s: gbifxdl {decoded[-1].wall / raw[-1].wall:.2f}x"
        print(line)
    print(f"gbifxdl fetch, originals kept, decoded + pHash: {best(decoded)}")
    print(f"gbifxdl fetch, originals kept, headers only:    {best(header)}")
    if raw:
        print(f"img2dataset, --disable_all_reencoding:          {best(raw)}")
        for name, ours, target in (("decoded + pHash", decoded, " (target 1.5x)"), ("headers only", header, "")):
            print(f"  gbifxdl ({name}) / img2dataset: {statistics.median(o.wall / r.wall for o, r in zip(ours, raw)):.2f}x"
                  f" wall{target}, median of rounds; best against best: {best(ours).ratio(best(raw))}")


def compare_latency(paths: list[Path], folder: Path, work: Path) -> None:
    """Print gbifxdl's rate from 4 emulator hosts with 0 and 200 ms added to every response,
    in rounds (one run of each per round; the median of the rounds' ratios is the headline)."""
    servers, selections = [], {}
    try:
        for latency in (0.0, 0.2):
            hosts = subprocess.Popen([sys.executable, str(HERE / "_fetch_hosts.py"), str(folder), "4", str(latency)],
                                     env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            servers.append(hosts)
            bases = json.loads(hosts.stdout.readline())  # type: ignore[union-attr]
            urls = [f"{bases[i % 4]}/files/{p.name}" for i, p in enumerate(paths)]
            selections[latency] = write_selection(work / f"sel-lat{latency}.parquet", urls)
        print("\nLatency, in rounds (emulator hosts with 0, then 200 ms added to every response):")
        rates: dict[float, list[Rate]] = {0.0: [], 0.2: []}
        for i in range(REPEAT[0]):
            for latency, sel in selections.items():
                rates[latency].append(gbifxdl_fetch_once(sel, work / f"ours-lat{latency}", "--resize", "512",
                                                         "--jpeg-quality", "95"))
            print(f"  round {i + 1}: {rates[0.0][-1].wall:6.1f}/s without, {rates[0.2][-1].wall:6.1f}/s with"
                  f" = {rates[0.2][-1].wall / rates[0.0][-1].wall:.0%}")
    finally:
        for hosts in servers:
            hosts.stdin.close()  # type: ignore[union-attr]
            hosts.wait(30)
    for latency, runs in rates.items():
        print(f"emulator hosts, {latency * 1000:3.0f} ms latency, best:      {best(runs)}")
    print(f"  with 200 ms latency: {statistics.median(b.wall / a.wall for a, b in zip(rates[0.0], rates[0.2])):.0%}"
          f" of the rate without (wall time, median of rounds); best against best"
          f" {best(rates[0.2]).wall / best(rates[0.0]).wall:.0%}")


def measure_memory(n: int, folder: Path, work: Path) -> None:
    """Print the peak RSS of `gbifxdl fetch` over ``n`` URLs of small images."""
    small = sorted(folder.glob("*.jpg"), key=lambda p: p.stat().st_size)[:20]
    nginx = Nginx(folder)
    try:
        urls = [f"{nginx.base}/{small[i % 20].name}?n={i}" for i in range(n)]
        sel = write_selection(work / f"sel-mem{n}.parquet", urls)
        rate = gbifxdl_fetch(sel, work / f"mem{n}", "--validate", "header")
    finally:
        nginx.stop()
        shutil.rmtree(work / f"mem{n}", ignore_errors=True)
    print(f"memory: {n} URLs -> peak RSS of the fetch process tree {rate.peak_mib} MiB ({rate})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--skip-img2dataset", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--only-memory", action="store_true", help="skip routes, comparisons and latency")
    parser.add_argument("--only-keep", action="store_true",
                        help="only originals kept (decoded + pHash, headers) against img2dataset, no routes nor resize")
    parser.add_argument("--memory", default="", help="comma-separated URL counts, e.g. 10000,200000")
    parser.add_argument("--repeat", type=int, default=1, help="run each timing N times and keep the best")
    opts = parser.parse_args()
    REPEAT[0] = max(1, opts.repeat)
    work = Path(tempfile.mkdtemp(prefix="gbifxdl-bench-"))
    folder = CACHE / "fetch-images"
    paths = make_images(folder, opts.images)
    summary = json.loads((folder / "summary.json").read_text())
    print(f"{len(paths)} JPEGs, mean {summary['mean_bytes'] / 1e3:.0f} kB, in {folder}")
    print("Rates by CPU time (images per CPU-second of the whole process tree x cores) do not move"
          " with other load on the machine; wall-time rates do.")
    if opts.only_keep:
        compare_with_img2dataset(paths, folder, work, None, opts.skip_img2dataset)
    elif not opts.only_memory:
        floor = compare_routes(folder, opts.images)
        compare_with_img2dataset(paths, folder, work, floor, opts.skip_img2dataset)
        if not opts.skip_latency:
            compare_latency(paths, folder, work)
    for n in [int(x) for x in opts.memory.split(",") if x]:
        measure_memory(n, folder, work)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
