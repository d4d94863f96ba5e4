"""Infer benchmark (issue 21): `gbifxdl infer` against its ceiling and a one-image-at-a-time loop, in one run.

    python bench/infer.py                          # 2,000 images, MobileNet-sized model, 2 rounds
    python bench/infer.py --images 1000            # quicker (a few minutes on 2 cores)
    python bench/infer.py --large --images 200 --repeat 1   # ViT-B-sized model: the model is the cost
    python bench/infer.py --device cuda            # on an NVIDIA GPU (bench/gpu_infer.sh installs what it needs)

1. Makes (once, cached in bench/.cache/infer-data-N/) a dataset folder of N photo-like
   JPEGs of real size (1024x768 to 1600x1200, quality 90: a smooth random background,
   shapes and grain) in the folders layout, with the minimal metadata.parquet the stage
   reads (url_hash, outcome, path, gbifID, speciesKey).
2. Builds (once, cached in bench/.cache/infer-models/) a model with ``onnx.helper`` and
   random weights (seed 0), with its JSON sidecar (classifier, 224x224, centre-crop,
   ImageNet mean and std, 1000 labels):
   - default, ``mobilenet``: MobileNet-v1 1.0-224: a 3x3 stride-2 conv, 13 depthwise-
     separable blocks (depthwise 3x3 conv + ReLU, pointwise 1x1 conv + ReLU; no batch norm,
     folded away as an export would), global average pool, a 1024x1000 Gemm: 4.2 M
     parameters, 0.57 G multiply-adds per image;
   - ``--large``, ``vit_b``: ViT-B/16: a 16x16 stride-16 patch conv to 196 tokens of 768,
     12 pre-norm transformer blocks (LayerNormalization, 12-head attention with Softmax,
     an MLP of 3072 with GELU as x*sigmoid(1.702x)), mean pool, LayerNorm, a 768x1000 Gemm:
     86 M parameters, 17.5 G multiply-adds per image.
3. Measures, on the same cores, each round in turn, over the same images and batch size:
   - *model alone*: the stage's own session (``gbifxdl.infer._engine.Session``, its default
     threads) run on decoded input tensors already in memory -> images/s;
   - *decode alone*: the stage's own preprocessing (``_pre.decode_batch``: the file read,
     DCT-scaled JPEG decode, centre crop, normalise, stack) in the same number of spawned
     processes the stage uses, already started, a few batches in flight -> images/s;
   - *ceiling* = 1 / (1/model + 1/decode): the two costs that cannot be avoided, sharing the CPU;
     also printed: decode alone in as many processes as there are CPUs, and the stricter
     ceiling it gives (with one decode process on a 2-CPU machine the decode leaves a core
     idle, so the stage can beat the first ceiling by overlapping decode with the model);
   - *gbifxdl infer*: the public ``gbifxdl.infer.infer`` (into a fresh results folder each
     round; its wall time, session and process start included) -> images/s and its share
     of the ceiling (target: at least 85 %);
   - *naive loop*: like the original's: Pillow open, convert to RGB, resize to 224x224,
     normalise, one image at a time through the same kind of session -> images/s, and
     gbifxdl's ratio to it (target: at least 2x).
   Medians of the rounds (``--repeat``) are printed, then PASS/FAIL lines against the targets,
   and ceiling / naive: the most any ratio to the naive loop can be on this machine.
4. With ``--device cuda``: the model's session (model alone, gbifxdl infer, the naive loop) is
   on the GPU (the decode stays on the CPUs, as in the stage), and gbifxdl infer is also
   measured once on the CPU (``--cpu-images`` of the images) for the CPU figure; printed:
   images/s against the model-only ceiling (the GPU session alone) and against the CPU.
   Without ONNX Runtime's CUDA provider this is a one-line error, never a run on the CPU.
"""

from __future__ import annotations

import os
import sys

# bench/ holds scripts named like standard modules (select.py): never import from it by name
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import collections  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

CACHE = ROOT / "bench" / ".cache"
SIDE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SPECIES = 20
DATA_VERSION = 1


# --- the dataset ------------------------------------------------------------------------------


def photo(seed: int) -> bytes:
    """Return the JPEG (quality 90) of a photo-like image of 1024x768 to 1600x1200 made from ``seed``."""
    rng = np.random.default_rng(seed)
    w = int(rng.integers(1024, 1601))
    h = w * 3 // 4
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse, "RGB").resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(rng.integers(0, w, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h, 2).tolist())
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.6 else draw.rectangle)([x0, y0, x1 + 4, y1 + 4], fill=fill)
    pixels = np.asarray(img, dtype=np.int16) + rng.integers(-10, 11, size=(h, w, 1), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _write_one(args: tuple[int, str]) -> int:
    i, path = args
    data = photo(i)
    Path(path).write_bytes(data)
    return len(data)


def dataset(n: int) -> Path:
    """Return a folders-layout dataset of ``n`` photos, made once and cached."""
    root = CACHE / f"infer-data-{n}-v{DATA_VERSION}"
    if (root / "metadata.parquet").is_file():
        return root
    print(f"making {n:,} JPEGs in {root.relative_to(ROOT)} (cached for next runs)...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    rows, jobs = [], []
    for i in range(n):
        url = f"https://inaturalist-open-data.example.org/photos/{i}/original.jpg"
        url_hash = hashlib.sha1(url.encode()).hexdigest()
        species = 1000 + i % SPECIES
        rel = f"images/{species}/{url_hash}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        rows.append({"gbifID": 5_000_000 + i, "speciesKey": species, "identifier": url, "url_hash": url_hash,
                     "outcome": "ok", "path": rel, "shard": None, "key": None})
        jobs.append((i, str(root / rel)))
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        sizes = pool.map(_write_one, jobs, chunksize=16)
    for row, size in zip(rows, sizes):
        row["bytes"] = size
    schema = pa.schema([("gbifID", pa.int64()), ("speciesKey", pa.int64()), ("identifier", pa.string()),
                        ("url_hash", pa.string()), ("outcome", pa.string()), ("path", pa.string()),
                        ("shard", pa.string()), ("key", pa.string()), ("bytes", pa.int64())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "metadata.parquet.tmp")
    os.replace(root / "metadata.parquet.tmp", root / "metadata.parquet")
    print(f"  {sum(sizes) / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return root


# --- the models -------------------------------------------------------------------------------


class _Graph:
    """A small builder over onnx.helper: named nodes and random (He-scaled) initialisers."""

    def __init__(self, seed: int = 0) -> None:
        from onnx import helper

        self.helper = helper
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, array: np.ndarray, stem: str = "w") -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, shape: tuple[int, ...], fan_in: int) -> str:
        scaled = self.rng.standard_normal(shape, dtype=np.float32) * np.sqrt(2.0 / fan_in)
        return self.const(scaled.astype(np.float32))

    def op(self, op_type: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, groups: int = 1, relu: bool = True) -> str:
        w = self.weight((cout, cin // groups, k, k), fan_in=cin // groups * k * k)
        b = self.const(np.zeros(cout, np.float32), "b")
        y = self.op("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4 if k > 1 and
                    k != stride else [0, 0, 0, 0], group=groups)
        return self.op("Relu", [y]) if relu else y

    def linear(self, x: str, cin: int, cout: int) -> str:
        return self.op("Add", [self.op("MatMul", [x, self.weight((cin, cout), cin)]),
                               self.const(np.zeros(cout, np.float32), "b")])

    def layer_norm(self, x: str, dim: int) -> str:
        return self.op("LayerNormalization", [x, self.const(np.ones(dim, np.float32), "g"),
                                              self.const(np.zeros(dim, np.float32), "b")], axis=-1, epsilon=1e-6)


def mobilenet(g: _Graph) -> tuple[str, int]:
    """MobileNet-v1 1.0-224 (no batch norm): returns the pooled features and their width."""
    x = g.conv("images", 3, 32, 3, 2)
    blocks = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)]
    blocks += [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    for cin, cout, stride in blocks:
        x = g.conv(x, cin, cin, 3, stride, groups=cin)  # depthwise
        x = g.conv(x, cin, cout, 1, 1)  # pointwise
    x = g.op("GlobalAveragePool", [x])
    return g.op("Flatten", [x], axis=1), 1024


def vit_b(g: _Graph) -> tuple[str, int]:
    """ViT-B/16 (mean-pooled, no class token): returns the pooled features and their width."""
    dim, heads, mlp, depth, tokens = 768, 12, 3072, 12, (SIDE // 16) ** 2
    x = g.conv("images", 3, dim, 16, 16, relu=False)  # (N, 768, 14, 14)
    x = g.op("Reshape", [x, g.const(np.array([0, dim, tokens], np.int64), "s")])
    x = g.op("Transpose", [x], perm=[0, 2, 1])  # (N, 196, 768)
    x = g.op("Add", [x, g.const((g.rng.standard_normal((1, tokens, dim), dtype=np.float32) * 0.02), "pos")])
    split = g.const(np.array([0, tokens, heads, dim // heads], np.int64), "s")
    merge = g.const(np.array([0, tokens, dim], np.int64), "s")
    scale = g.const(np.array([1.0 / np.sqrt(dim // heads)], np.float32), "c")
    gelu_k = g.const(np.array([1.702], np.float32), "c")
    for _ in range(depth):
        h = g.layer_norm(x, dim)
        q, k, v = (g.op("Reshape", [g.linear(h, dim, dim), split]) for _ in range(3))  # (N, 196, 12, 64)
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [v], perm=[0, 2, 1, 3])
        att = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [q, k]), scale])], axis=-1)  # (N, 12, 196, 196)
        o = g.op("Transpose", [g.op("MatMul", [att, v])], perm=[0, 2, 1, 3])
        x = g.op("Add", [x, g.linear(g.op("Reshape", [o, merge]), dim, dim)])
        h = g.linear(g.layer_norm(x, dim), dim, mlp)
        h = g.op("Mul", [h, g.op("Sigmoid", [g.op("Mul", [h, gelu_k])])])
        x = g.op("Add", [x, g.linear(h, mlp, dim)])
    x = g.op("ReduceMean", [x], axes=[1], keepdims=0)
    return g.layer_norm(x, dim), dim


def model(large: bool) -> Path:
    """Return the path of the bench's model (with its sidecar), built once with random weights."""
    import onnx
    from onnx import TensorProto, helper

    name = "vit_b" if large else "mobilenet"
    path = CACHE / "infer-models" / f"{name}.onnx"
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    print(f"building {path.relative_to(ROOT)} (cached for next runs)...", file=sys.stderr, flush=True)
    g = _Graph(seed=0)
    features, width = (vit_b if large else mobilenet)(g)
    w = g.weight((width, 1000), width)
    b = g.const(np.zeros(1000, np.float32), "b")
    g.nodes.append(helper.make_node("Gemm", [features, w, b], ["logits"]))
    graph = helper.make_graph(g.nodes, name, [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                            ["N", 3, SIDE, SIDE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    params = sum(int(np.prod(t.dims)) for t in g.inits)
    sidecar = {"kind": "classifier", "input_size": [SIDE, SIDE], "resize": "centre-crop", "mean": list(MEAN),
               "std": list(STD), "layout": "NCHW", "labels": [f"class_{i:04d}" for i in range(1000)],
               "output": "logits", "top_k": 5}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    print(f"  {params / 1e6:.1f} M parameters, {path.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
    return path


# --- the measures -----------------------------------------------------------------------------


def _sources(root: Path) -> list:
    from gbifxdl._locate import ImageLocator

    table = pq.read_table(root / "metadata.parquet", columns=["path"])
    locator = ImageLocator(root)
    return [locator.source(rel, None, None) for rel in table["path"].to_pylist()]


def decode_alone(pool: ProcessPoolExecutor, sources: list, prep: object, batch: int, workers: int,
                 keep: int) -> tuple[float, list[np.ndarray]]:
    """Return images/s of the stage's decode in ``pool`` (already started), and the first ``keep`` batches."""
    from gbifxdl.infer._pre import decode_batch

    kept: list[np.ndarray] = []
    window: collections.deque = collections.deque()
    started = time.perf_counter()
    for start in range(0, len(sources), batch):
        window.append(pool.submit(decode_batch, sources[start:start + batch], prep))
        if len(window) > 2 * workers:
            arrays = window.popleft().result()[0]
            if len(kept) < keep:
                kept.append(arrays)
    while window:
        arrays = window.popleft().result()[0]
        if len(kept) < keep:
            kept.append(arrays)
    return len(sources) / (time.perf_counter() - started), kept


def model_alone(session: object, batches: list[np.ndarray], n: int, batch: int) -> float:
    """Return images/s of ``session`` over ``n`` images in batches of ``batch``, cycling ``batches``."""
    session.run(batches[0])  # warm
    started = time.perf_counter()
    done = i = 0
    while done < n:
        x = batches[i % len(batches)][: min(batch, n - done)]
        session.run(x)
        done += len(x)
        i += 1
    return n / (time.perf_counter() - started)


def gbifxdl_infer(root: Path, model_path: Path, batch: int, workers: int | None, device: str = "cpu") -> float:
    """Return images/s of ``gbifxdl.infer.infer`` (wall time) into a fresh results folder."""
    from gbifxdl.infer import infer

    shutil.rmtree(root / ".gbifxdl", ignore_errors=True)
    started = time.perf_counter()
    summary = infer(root, model_path, batch_size=batch, workers=workers, device=device)
    seconds = time.perf_counter() - started
    if summary.inferred != summary.images or summary.errors:
        raise SystemExit(f"infer measured {summary.inferred} of {summary.images} images, {summary.errors} errors")
    return summary.inferred / seconds


def naive_loop(session: object, paths: list[Path]) -> float:
    """Return images/s of the original's way: open, resize, normalise, one image at a time."""
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            x = np.asarray(img.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.float32) / 255.0
        x = ((x - mean) / std).transpose(2, 0, 1)[None]
        session.run(np.ascontiguousarray(x))
    return len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="JPEGs in the dataset (default 2000)")
    parser.add_argument("--large", action="store_true", help="the ViT-B-sized model instead of the MobileNet one")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; medians are printed (default 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="the stage's batch size (default 32, its default)")
    parser.add_argument("--workers", type=int, default=None,
                        help="decode processes (default: the stage's own: the CPUs less one, at most 4 on the CPU)")
    parser.add_argument("--naive-images", type=int, default=None,
                        help="images for the naive loop (default: all; a prefix is enough for a rate)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the model runs (cuda: an NVIDIA GPU through onnxruntime-gpu; never a CPU fallback)")
    parser.add_argument("--cpu-images", type=int, default=500,
                        help="with --device cuda: images of the CPU figure (gbifxdl infer on the CPU; default 500)")
    args = parser.parse_args()

    from gbifxdl.errors import GbifxdlError
    from gbifxdl.infer._engine import Session, check_device

    try:
        check_device(args.device)  # before anything is built: no CUDA provider is one line, not a CPU run
    except GbifxdlError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    from gbifxdl.infer._pre import Prep, ignore_interrupts
    from gbifxdl.infer.spec import load_spec

    root = dataset(args.images)
    model_path = model(args.large)
    spec = load_spec(model_path)
    prep = Prep(spec.input_size, spec.resize, spec.mean, spec.std, spec.layout, spec.pad_value)
    from gbifxdl.infer.stage import default_workers

    workers = args.workers if args.workers is not None else default_workers(args.device)
    sources = _sources(root)
    paths = [Path(s[0]) for s in sources][: args.naive_images or len(sources)]
    session = Session(model_path, spec, args.device)
    n = len(sources)
    print(f"{n:,} JPEGs (1024x768-1600x1200), model {model_path.name} "
          f"({model_path.stat().st_size / 1e6:.0f} MB), batch {args.batch_size}, {workers} decode process(es), "
          f"{os.cpu_count()} CPUs, ORT session threads: its default; {args.repeat} round(s); "
          f"device {args.device} ({', '.join(session.providers)})", flush=True)

    rounds: dict[str, list[float]] = collections.defaultdict(list)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_interrupts)
    cpus = os.cpu_count() or 1
    wide = ProcessPoolExecutor(cpus, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_interrupts)
    try:
        for w in ([pool.submit(time.sleep, 0.1) for _ in range(workers)]
                  + [wide.submit(time.sleep, 0.1) for _ in range(cpus)]):
            w.result()  # the processes are started before timing
        for r in range(args.repeat):
            decode, kept = decode_alone(pool, sources, prep, args.batch_size, workers, keep=4)
            rounds["decode alone"].append(decode)
            model_rate = model_alone(session, kept, n, args.batch_size)
            rounds["model alone"].append(model_rate)
            ceiling = 1 / (1 / model_rate + 1 / decode)
            rounds["ceiling"].append(ceiling)
            decode_all, _ = decode_alone(wide, sources, prep, args.batch_size, cpus, keep=0)
            rounds["decode all"].append(decode_all)
            rounds["ceiling all"].append(1 / (1 / model_rate + 1 / decode_all))
            rate = gbifxdl_infer(root, model_path, args.batch_size, args.workers, args.device)
            rounds["gbifxdl infer"].append(rate)
            naive = naive_loop(session, paths)
            rounds["naive loop"].append(naive)
            rounds["share"].append(rate / ceiling)
            rounds["ratio"].append(rate / naive)
            print(f"  round {r + 1}: decode {decode:.1f} ({cpus} processes: {decode_all:.1f}), model {model_rate:.1f}, "
                  f"ceiling {ceiling:.1f}, "
                  f"infer {rate:.1f}, naive {naive:.1f} images/s", flush=True)
    finally:
        pool.shutdown()
        wide.shutdown()
    cpu_rate = None
    if args.device == "cuda":  # the CPU figure: the same stage on this machine's CPU, over a prefix of the images
        cpu_root = dataset(min(args.cpu_images, args.images))
        cpu_rate = gbifxdl_infer(cpu_root, model_path, args.batch_size, args.workers, "cpu")
        shutil.rmtree(cpu_root / ".gbifxdl", ignore_errors=True)
    shutil.rmtree(root / ".gbifxdl", ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rounds.items()}
    print()
    print(f"{'images/s':<44}{'median':>10}{'rounds':>24}")
    for key, label in (("model alone", f"model alone (session, batch {args.batch_size})"),
                       ("decode alone", f"decode alone ({workers} process(es))"),
                       ("ceiling", "ceiling 1/(1/model + 1/decode)"),
                       ("decode all", f"decode alone ({cpus} processes: all CPUs)"),
                       ("ceiling all", "ceiling with decode on all CPUs"),
                       ("gbifxdl infer", "gbifxdl infer"),
                       ("naive loop", f"naive loop (1 image at a time, {len(paths)})")):
        print(f"{label:<44}{med[key]:>10.1f}{'  '.join(f'{v:.1f}' for v in rounds[key]):>24}")
    print()
    print(f"gbifxdl infer / ceiling: {med['share']:.1%}   (rounds: {', '.join(f'{v:.1%}' for v in rounds['share'])})")
    print(f"gbifxdl infer / naive:   {med['ratio']:.2f}x   (rounds: {', '.join(f'{v:.2f}x' for v in rounds['ratio'])})")
    print(f"gbifxdl infer / ceiling with decode on all CPUs: {med['gbifxdl infer'] / med['ceiling all']:.1%}")
    print(f"ceiling / naive: {med['ceiling'] / med['naive loop']:.2f}x, with decode on all CPUs "
          f"{med['ceiling all'] / med['naive loop']:.2f}x (the most a 2x target can expect here)")
    print(f"{'PASS' if med['share'] >= 0.85 else 'FAIL'}: gbifxdl infer reaches at least 85% of the ceiling "
          f"({med['share']:.1%})")
    print(f"{'PASS' if med['ratio'] >= 2 else 'FAIL'}: gbifxdl infer is at least 2x the naive loop "
          f"({med['ratio']:.2f}x)")
    if cpu_rate is not None:
        print()
        print(f"GPU: gbifxdl infer {med['gbifxdl infer']:.1f} images/s against the model-only ceiling "
              f"{med['model alone']:.1f} (the GPU session alone): {med['gbifxdl infer'] / med['model alone']:.1%}")
        print(f"GPU: gbifxdl infer on cuda {med['gbifxdl infer']:.1f} against the CPU figure {cpu_rate:.1f} images/s "
              f"(gbifxdl infer --device cpu, {min(args.cpu_images, args.images)} images): "
              f"{med['gbifxdl infer'] / cpu_rate:.1f}x")
        if med["decode alone"] < med["model alone"]:
            print(f"  the decode ({med['decode alone']:.1f} images/s in {workers} process(es)) is the bound here: "
                  "give more with --workers")


if __name__ == "__main__":
    main()
