"""Distributed fetch benchmark (issue 13): one machine against ``--cluster local:2`` on the same cores, in one run.

    python bench/cluster.py [--images 2000] [--resize 256] [--hosts 4] [--shard-size 200]
                            [--latency 0] [--repeat 5]

The same selection is fetched from the same emulated image hosts (their own process,
serving the cached real-sized JPEGs of bench/.cache/fetch-images, as bench/fetch.py
does; ``--images`` URLs cycle over them) twice per round, in alternating order:

- single: ``fetch(sel, out, FetchSettings(workers=2))``: one engine, 2 image processes;
- cluster: ``fetch(sel, out, FetchSettings(workers=1), cluster=ADDRESS)`` on a
  ``LocalCluster`` started exactly as ``cluster="local:2"`` starts it (2 one-thread worker
  processes on 127.0.0.1), each Dask worker running the engine with 1 image process: the
  same 2 cores.

The cluster is started once and serves every round, as a cluster started with
``dask scheduler``/``dask worker`` or under Slurm serves one run after another; the single
side runs in one process too. Each side first fetches the selection once as a warm-up
(printed, not counted): the single side's fork server and imports, and each Dask
worker's engine (its imports, its image processes) are then ready, on both sides alike.
The warm-up figures (a cold single process against a freshly started cluster) and the
cluster's start-up time are printed as well. Everything else (client connection, the
shared host limits in the scheduler, units going to the store, metadata assembly) is
timed.

Prints images/s (wall) of each side and their ratio per round, the median of the rounds'
ratios (the headline; target >= 0.90) and the best against the best; the same by CPU
(images per CPU-second of this process and all its children, the image hosts' excepted,
x cores: what the engine costs, which other load on the machine moves less than wall
time); and checks that the two
outputs are equal: the same image files, byte for byte, and the same metadata rows (all
columns but ``attempts``, a timing column).
"""

from __future__ import annotations

import os
import sys

# bench/ holds scripts named like standard modules (select.py): never import from it by name
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(_HERE)
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
TIMING_COLUMNS = ("attempts",)  # may differ between two runs of the same selection
TARGET = 0.90
CORES = os.cpu_count() or 1


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # its functions go to a process pool by name
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_proctree = _load("_proctree")


class CpuMeter:
    """CPU seconds used by this process and all its descendants but one subtree (the image hosts).

    A thread reads /proc every 0.2 s (bench/_proctree.py), looking for new processes every
    0.6 s: a process's last 0.2 s may be missed, the same for both sides.
    """

    def __init__(self, exclude: int) -> None:
        self.exclude = exclude
        self.ticks: dict[int, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self, tree: list[int]) -> None:
        _, ticks = _proctree.usage(tree)
        with self.lock:
            for pid, n in ticks.items():
                self.ticks[pid] = max(n, self.ticks.get(pid, 0))

    def _tree(self) -> list[int]:
        hosts = set(_proctree.descendants(self.exclude))
        return [p for p in _proctree.descendants(os.getpid()) if p not in hosts]

    def _run(self) -> None:
        tree, i = self._tree(), 0
        while not self.stop.wait(0.2):
            i += 1
            if i % 3 == 0:
                tree = self._tree()
            self._sample(tree)

    def seconds(self) -> float:
        """Return the CPU seconds used so far (read now)."""
        self._sample(self._tree())
        with self.lock:
            return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def start_local_cluster(n: int):  # type: ignore[no-untyped-def]
    """Return a LocalCluster started as ``cluster="local:N"`` starts one (gbifxdl.fetch.cluster._client)."""
    from gbifxdl.fetch.cluster import start_local_cluster

    return start_local_cluster(n)


def run_single(sel: Path, out: Path, settings_kw: dict, meter: CpuMeter) -> tuple[int, float, float]:
    """Return (images ok, seconds, CPU seconds) of the single-machine engine with 2 image processes."""
    from gbifxdl.fetch import FetchSettings, fetch

    cpu = meter.seconds()
    started = time.perf_counter()
    summary = fetch(sel, out, FetchSettings(workers=2, **settings_kw), progress=False)
    seconds = time.perf_counter() - started
    return summary.ok, seconds, meter.seconds() - cpu


def run_cluster(sel: Path, out: Path, settings_kw: dict, address: str, meter: CpuMeter) -> tuple[int, float, float]:
    """Return (images ok, seconds, CPU seconds) on the running cluster at ``address`` (1 image process a worker)."""
    from gbifxdl.fetch import FetchSettings, fetch

    cpu = meter.seconds()
    started = time.perf_counter()
    summary = fetch(sel, out, FetchSettings(workers=1, **settings_kw), progress=False, cluster=address)
    seconds = time.perf_counter() - started
    return summary.ok, seconds, meter.seconds() - cpu


def image_digests(out: Path) -> dict[str, str]:
    """Return every image file under ``out/images`` with the sha256 of its bytes."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "images").rglob("*")) if p.is_file()}


def metadata_rows(out: Path) -> list[dict]:
    """Return the rows of ``out/metadata.parquet`` without the timing columns."""
    import pyarrow.parquet as pq

    table = pq.read_table(out / "metadata.parquet")
    return table.drop_columns([c for c in TIMING_COLUMNS if c in table.column_names]).to_pylist()


def compare(a: Path, b: Path) -> tuple[bool, str]:
    """Return whether two outputs are equal (files and metadata rows), and how they differ."""
    fa, fb = image_digests(a), image_digests(b)
    ra, rb = metadata_rows(a), metadata_rows(b)
    differ = []
    if fa.keys() != fb.keys():
        differ.append(f"{len(fa.keys() ^ fb.keys())} image paths in one output only")
    else:
        n = sum(fa[k] != fb[k] for k in fa)
        if n:
            differ.append(f"{n} images with other bytes")
    if len(ra) != len(rb):
        differ.append(f"{len(ra)} against {len(rb)} metadata rows")
    else:
        n = sum(x != y for x, y in zip(ra, rb))
        if n:
            first = next(i for i, (x, y) in enumerate(zip(ra, rb)) if x != y)
            cols = sorted(k for k in ra[first] if ra[first][k] != rb[first].get(k))
            differ.append(f"{n} metadata rows differ (first: row {first}, columns {cols})")
    detail = (f"{len(fa)} image files, same bytes; {len(ra)} metadata rows, same values "
              f"(columns compared: all but {', '.join(TIMING_COLUMNS)})") if not differ else "; ".join(differ)
    return not differ, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="URLs in the selection")
    parser.add_argument("--files", type=int, default=1500, help="distinct cached JPEGs behind them")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--hosts", type=int, default=4, help="emulated image hosts")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    parser.add_argument("--shard-size", type=int, default=200, help="rows per work unit (both sides)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each runs both sides, in alternating order")
    args = parser.parse_args()
    try:
        import distributed  # noqa: F401
    except ImportError:
        sys.exit("bench/cluster.py needs Dask's distributed scheduler: pip install 'gbifxdl[dask]'")
    from gbifxdl.testing.image_hosts import write_selection

    make_images = _load("_fetch_data").make_images
    folder = HERE / ".cache" / "fetch-images"
    paths = make_images(folder, args.files)
    work = Path(tempfile.mkdtemp(prefix="gbifxdl-bench-cluster-"))
    os.environ["GBIFXDL_STAGING"] = str(work / "staging")  # the Dask workers inherit it
    settings_kw = dict(resize=args.resize, shard_size=args.shard_size)
    hosts = subprocess.Popen([sys.executable, str(HERE / "_fetch_hosts.py"), str(folder), str(args.hosts),
                              str(args.latency)], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    meter = CpuMeter(hosts.pid)
    rounds: list[dict[str, float]] = []
    equal: list[tuple[bool, str]] = []
    local = None
    try:
        bases = json.loads(hosts.stdout.readline())  # type: ignore[union-attr]
        # the same file under many URLs (the query tells them apart): as many URLs as asked
        urls = [f"{bases[i % len(bases)]}/files/{paths[i % len(paths)].name}?n={i}" for i in range(args.images)]
        sel = write_selection(work / "sel.parquet", urls)
        mean_kb = json.loads((folder / "summary.json").read_text())["mean_bytes"] / 1e3
        print(f"{args.images} URLs over {len(paths)} JPEGs (mean {mean_kb:.0f} kB) on {args.hosts} emulated hosts "
              f"({args.latency * 1000:.0f} ms latency), --resize {args.resize}, {args.shard_size} rows per unit; "
              f"{os.cpu_count()} cores")
        print("single: one engine, 2 image processes; cluster: LocalCluster as local:2 starts it, "
              "1 image process per Dask worker")
        started = time.perf_counter()
        local = start_local_cluster(2)
        startup = time.perf_counter() - started
        print(f"cluster start-up: {startup:.1f} s (not counted)")

        def run(side: str, out: Path) -> tuple[int, float, float]:
            if side == "single":
                return run_single(sel, out, settings_kw, meter)
            return run_cluster(sel, out, settings_kw, local.scheduler_address, meter)

        warm = {side: run(side, work / f"warm-{side}") for side in ("single", "cluster")}
        equal.append(compare(work / "warm-single", work / "warm-cluster"))
        for side in ("single", "cluster"):
            shutil.rmtree(work / f"warm-{side}")
        ws, wc = (warm[s][0] / warm[s][1] for s in ("single", "cluster"))
        print(f"  warm-up (not counted; cold process, fresh cluster): single {ws:6.1f} images/s, cluster "
              f"{wc:6.1f} images/s = {wc / ws:.2f}x; outputs equal: {equal[-1][0]}")
        for r in range(max(1, args.repeat)):
            order = ("single", "cluster") if r % 2 == 0 else ("cluster", "single")
            res: dict[str, float] = {}
            for side in order:
                ok, secs, cpu = run(side, work / f"{side}-{r}")
                res[side] = ok / secs
                res[f"{side}_cpu"] = ok / cpu * CORES
                res[f"{side}_ok"] = ok
            equal.append(compare(work / f"single-{r}", work / f"cluster-{r}"))
            for side in ("single", "cluster"):
                shutil.rmtree(work / f"{side}-{r}", ignore_errors=True)
            rounds.append(res)
            print(f"  round {r + 1} ({' then '.join(order)}): single {res['single']:6.1f} images/s, "
                  f"cluster {res['cluster']:6.1f} images/s = {res['cluster'] / res['single']:.2f}x; "
                  f"outputs equal: {equal[-1][0]}")
            print(f"      by CPU: single {res['single_cpu']:6.1f}, cluster {res['cluster_cpu']:6.1f} images per "
                  f"CPU-second x {CORES} cores = {res['cluster_cpu'] / res['single_cpu']:.2f}x")
    finally:
        if local is not None:
            local.close()
        meter.stop.set()
        hosts.stdin.close()  # type: ignore[union-attr]
        hosts.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    def summary(key: str) -> tuple[float, float, float]:
        best_single = max(r[key.format("single")] for r in rounds)
        best_cluster = max(r[key.format("cluster")] for r in rounds)
        median = statistics.median(r[key.format("cluster")] / r[key.format("single")] for r in rounds)
        return best_single, best_cluster, median

    wall, cpu = summary("{}"), summary("{}_cpu")
    print(f"\n{'best of ' + str(len(rounds)) + ' rounds':<34}{'images/s':>10}{'per CPU-s x cores':>19}")
    print(f"{'single machine (workers=2)':<34}{wall[0]:>10.1f}{cpu[0]:>19.1f}")
    print(f"{'cluster local:2 (workers=1 each)':<34}{wall[1]:>10.1f}{cpu[1]:>19.1f}")
    print(f"cluster / single, wall: {wall[2]:.2f}x (median of the rounds' ratios), best against best "
          f"{wall[1] / wall[0]:.2f}x; target >= {TARGET:.2f}x")
    print(f"cluster / single, CPU:  {cpu[2]:.2f}x (median), best against best {cpu[1] / cpu[0]:.2f}x "
          "(the cost of the engine on the cluster, whatever else runs on the machine)")
    print(f"outputs: {next((d for e, d in equal if not e), equal[-1][1])}")
    median = wall[2]
    checks = {"every image ok on both sides": all(r["single_ok"] == r["cluster_ok"] == args.images for r in rounds),
              "outputs equal (files, metadata rows)": all(e for e, _ in equal),
              f"cluster >= {TARGET:.2f}x single (median)": median >= TARGET}
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
