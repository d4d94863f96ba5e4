"""Image bytes -> a model's input tensor, in the decode processes (numpy and Pillow only).

A JPEG is decoded in the DCT at the smallest scale still at least the model's input size
(Pillow's ``draft``), turned as displayed (EXIF orientation), converted to RGB and resized:

- ``squash``: to the input size, the aspect ratio dropped;
- ``letterbox``: the whole image fitted inside, centred, the rest ``pad_value`` grey
  (as Ultralytics pads); the scale and padding are kept so that boxes can be mapped back;
- ``centre-crop``: the shorter side scaled to the input, the middle cut out.

Then pixels / 255, minus mean, over std, as float32 in the model's layout.
"""

from __future__ import annotations

import io
import signal
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from gbifxdl._locate import Source, read_source


@dataclass(frozen=True)
class Prep:
    """What the decode processes need of a spec (small, picklable)."""

    size: tuple[int, int]  # (height, width)
    resize: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: str
    pad_value: int


# (original width, original height, x scale, y scale, x offset, y offset): input pixel
# (u, v) is image pixel ((u - x offset) / x scale, (v - y offset) / y scale)
Geometry = tuple[int, int, float, float, float, float]


def fit(img: Image.Image, prep: Prep) -> tuple[Image.Image, Geometry]:
    """Return ``img`` (RGB) resized as ``prep`` says, and where the image lies in the result."""
    th, tw = prep.size
    w, h = img.size
    if prep.resize == "squash":
        return img.resize((tw, th), Image.BILINEAR), (w, h, tw / w, th / h, 0.0, 0.0)
    if prep.resize == "letterbox":
        scale = min(tw / w, th / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new("RGB", (tw, th), (prep.pad_value,) * 3)
        px, py = (tw - nw) // 2, (th - nh) // 2
        canvas.paste(img.resize((nw, nh), Image.BILINEAR), (px, py))
        return canvas, (w, h, scale, scale, float(px), float(py))
    scale = max(tw / w, th / h)  # centre-crop
    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    left, top = (nw - tw) // 2, (nh - th) // 2
    resized = img.resize((nw, nh), Image.BILINEAR)
    return resized.crop((left, top, left + tw, top + th)), (w, h, nw / w, nh / h, float(-left), float(-top))


def tensor(img: Image.Image, prep: Prep) -> np.ndarray:
    """Return a fitted RGB image as the model's normalised float32 input (one image, no batch axis)."""
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1) if prep.layout == "NCHW" else x)


def prepare(data: bytes, prep: Prep) -> tuple[np.ndarray, Geometry]:
    """Return the model input of the image in ``data`` and its geometry; raises when it cannot be decoded."""
    with Image.open(io.BytesIO(data)) as img:
        side = max(prep.size)
        img.draft("RGB", (side, side))  # JPEG: decoded in the DCT at 1/2 to 1/8 scale, never below the input
        img = ImageOps.exif_transpose(img)
        fitted, geometry = fit(img.convert("RGB"), prep)
    return tensor(fitted, prep), geometry


def ignore_interrupts() -> None:
    """The decode processes leave Ctrl-C to the main process, which stops them (no traceback from each)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def read_items(sources: list[Source | None]) -> list[bytes | str]:
    """Return each image's bytes, or the error that says why there are none."""
    items: list[bytes | str] = []
    for source in sources:
        if source is None:
            items.append("missing: the image is not in the dataset")
            continue
        try:
            items.append(read_source(source))
        except OSError as exc:
            items.append(f"undecodable: {' '.join(str(exc).split()) or type(exc).__name__}")
    return items


def decode_items(items: list[bytes | str], prep: Prep) -> tuple[np.ndarray, list[str | None], list[Geometry | None]]:
    """Return the inputs of the images that decode (stacked), each image's error (None: fine) and geometry.

    ``items``: each image's bytes, or the error already known (a str).
    """
    arrays, errors, geometries = [], [], []
    for item in items:
        if isinstance(item, str):
            errors.append(item)
            geometries.append(None)
            continue
        try:
            array, geometry = prepare(item, prep)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            errors.append(f"undecodable: {' '.join(str(exc).split()) or type(exc).__name__}")
            geometries.append(None)
            continue
        arrays.append(array)
        errors.append(None)
        geometries.append(geometry)
    h, w = prep.size
    empty_shape = (0, 3, h, w) if prep.layout == "NCHW" else (0, h, w, 3)
    return (np.stack(arrays) if arrays else np.zeros(empty_shape, np.float32)), errors, geometries


def decode_batch(sources: list[Source | None], prep: Prep
                 ) -> tuple[np.ndarray, list[str | None], list[Geometry | None]]:
    """Return the inputs of a batch of images read from the dataset (see :func:`decode_items`).

    Runs in the decode processes: one batch per call, so the model's session never waits on
    one image at a time.
    """
    return decode_items(read_items(sources), prep)
