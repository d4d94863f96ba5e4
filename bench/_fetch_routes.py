"""Decode-resize-encode routes, each timed in a tight loop on every core over the same files.

Run with the bench environment's Python (it has OpenCV and pyvips besides Pillow and
simplejpeg). gbifxdl's own route is loaded from ``src/gbifxdl/fetch/process.py`` by path.
Prints one JSON object: route -> images per second.
"""

from __future__ import annotations

import os
import sys

# bench/ holds scripts named like standard modules (select.py): never import from it by name
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

SIZE, QUALITY = 512, 95
_spec = importlib.util.spec_from_file_location(
    "gbifxdl_process", Path(__file__).resolve().parents[1] / "src" / "gbifxdl" / "fetch" / "process.py")
process = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["gbifxdl_process"] = process
_spec.loader.exec_module(process)  # type: ignore[union-attr]


def _target(w: int, h: int) -> tuple[int, int]:
    return process.target_size(w, h, SIZE, "longest")


def pillow_draft(data: bytes) -> bytes:
    from PIL import Image
    img = Image.open(io.BytesIO(data))
    tw, th = _target(*img.size)
    img.draft("RGB", (tw, th))
    img = img.convert("RGB")
    if img.size != (tw, th):
        img = img.resize((tw, th), Image.BOX)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def simplejpeg_box(data: bytes) -> bytes:
    import numpy as np
    import simplejpeg
    from PIL import Image
    h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    tw, th = _target(w, h)
    arr = simplejpeg.decode_jpeg(data, min_width=tw, min_height=th)
    if arr.shape[:2] != (th, tw):
        arr = np.asarray(Image.fromarray(arr).resize((tw, th), Image.BOX))
    return simplejpeg.encode_jpeg(arr, quality=QUALITY, colorsubsampling="420")


def opencv_reduced(data: bytes) -> bytes:
    import cv2
    import numpy as np
    import simplejpeg
    h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    tw, th = _target(w, h)
    flag = cv2.IMREAD_COLOR
    for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if w // factor >= tw and h // factor >= th:
            flag = reduced
            break
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img.shape[:2] != (th, tw):
        img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes()


def pyvips_thumbnail(data: bytes) -> bytes:
    import pyvips
    img = pyvips.Image.thumbnail_buffer(data, SIZE, size="down")
    return img.jpegsave_buffer(Q=QUALITY)


def gbifxdl_route(data: bytes) -> bytes:
    """gbifxdl's whole per-image work: decode, resize, encode, and every hash."""
    out, _ = process.process_bytes(data, process.ProcessOptions(resize=SIZE, reencode=True, jpeg_quality=QUALITY))
    return out


def gbifxdl_validate(data: bytes) -> bytes:
    """gbifxdl's work when original bytes are kept: a full decode and every hash."""
    out, _ = process.process_bytes(data, process.ProcessOptions())
    return out


ROUTES = {"pillow-draft": pillow_draft, "simplejpeg+box": simplejpeg_box, "opencv-reduced+area": opencv_reduced,
          "pyvips-thumbnail": pyvips_thumbnail, "gbifxdl process (with hashes)": gbifxdl_route,
          "gbifxdl validate only (no resize)": gbifxdl_validate}


def _run(args: tuple[str, str]) -> int:
    name, path = args
    ROUTES[name](Path(path).read_bytes())
    return 1


def measure(name: str, paths: list[str], cores: int) -> dict[str, float]:
    """Return images/s of route ``name`` over ``paths`` on ``cores`` processes: by wall time,
    and by CPU time x cores (what the cores would do alone: steady on a shared machine)."""
    pool = Pool(cores)
    warm = paths[: cores * 4]
    try:
        pool.map(_run, [(name, p) for p in warm])  # warm imports
        start = time.perf_counter()
        n = sum(pool.imap_unordered(_run, [(name, p) for p in paths], chunksize=4))
        wall = time.perf_counter() - start
    finally:
        pool.close()
        pool.join()
    return {"wall": n / wall, "cpu": (n + len(warm)) / _cpu_since(name) * cores}


_CPU: dict[str, float] = {}


def _cpu_since(name: str) -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    now = usage.ru_utime + usage.ru_stime
    spent = now - _CPU.get("last", 0.0)
    _CPU["last"] = now
    return spent


if __name__ == "__main__":
    folder, limit = Path(sys.argv[1]), int(sys.argv[2])
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(ROUTES)
    files = sorted(str(p) for p in folder.glob("*.jpg"))[:limit]
    results: dict[str, object] = {}
    _cpu_since("start")
    for route in names:
        try:
            results[route] = measure(route, files, os.cpu_count() or 1)
        except Exception as exc:  # noqa: BLE001 - a route whose library is missing is reported, not fatal
            results[route] = f"unavailable: {type(exc).__name__}: {exc}"
    print(json.dumps(results))
