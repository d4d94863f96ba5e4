"""Procedurally generated *look-alike* photo collections, for testing near-duplicate detection.

A real GBIF collection holds thousands to millions of specimens photographed the same way:
herbarium sheets on the same paper, with the same colour chart in the same place and the
label in the same corner; pinned insects on the same ground next to the same scale bar;
camera-trap frames of one unmoving scene. Two *different* specimens of such a collection
look very alike at low resolution -- and curation's dedupe (``gbifxdl.curate``) must not call
them duplicates, while true copies (the same photo at another resolution, JPEG quality, or
slightly cropped, as image portals make them) must still be found.

This module draws such collections from integers only (numpy, Pillow and simplejpeg; no
internet, no image corpus), for the tests of near-duplicate detection and for
``bench/dedupe.py``:

- :func:`herbarium_sheet`   a pressed plant on a mounted sheet, colour chart, barcode, label
- :func:`pinned_insect`     a spread moth or a beetle on a plain ground, scale bar, label
- :func:`camera_trap_frame` one animal in a fixed scene, with a timestamp strip
- :func:`copies`            the three true copies of a photo a portal makes
- :func:`profile_copies`    two copies whose colours went through another colour space
- :func:`collection`        ``n`` images of one collection, a true copy every ``copy_every``-th

Everything a collection (or a camera site) shares -- the image size, the paper or ground,
vignetting, colour chart, scale bar, the place of label and barcode, the scene -- is drawn
from the ``collection`` (``site``) number and cached; everything a specimen (frame) changes
-- the plant, insect or animal, label text, barcode, lighting, white balance, noise -- is
drawn from ``seed``. The output is deterministic: the same arguments give the same bytes.
Seeds and collection numbers are non-negative integers. One image takes some 20-50 ms.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import simplejpeg
from PIL import Image, ImageChops, ImageDraw, ImageFilter

__all__ = ["KINDS", "camera_trap_frame", "collection", "copies", "herbarium_sheet", "pinned_insect",
           "profile_copies"]

KINDS = ("herbarium", "pinned", "camera_trap")

_HERB, _PIN, _CAM = 11, 12, 13  # salts: one random stream per kind
_Color = tuple[int, int, int]


# ---------------------------------------------------------------------------------------
# shared helpers


def _rng(*key: int) -> np.random.Generator:
    if any(k < 0 for k in key):
        raise ValueError(f"seeds and collection numbers must be non-negative, got {key}")
    return np.random.default_rng([int(k) for k in key])


def _rgb(values: np.ndarray | list[float] | tuple[float, ...]) -> _Color:
    r, g, b = (min(255, max(0, round(float(v)))) for v in values)
    return (r, g, b)


def _jitter(rng: np.random.Generator, colour: _Color | np.ndarray, sd: float) -> _Color:
    return _rgb(np.asarray(colour, dtype=float) + rng.normal(0, sd, 3))


def _encode(img: Image.Image, quality: int) -> bytes:
    return simplejpeg.encode_jpeg(np.asarray(img), quality=quality, colorspace="RGB", colorsubsampling="420")


def _smooth_field(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """Return a smooth random (h, w) float32 field in about -1..1 (bicubic upscaled noise)."""
    small = rng.uniform(0, 255, size=(max(2, h * cells // max(w, h)), max(2, w * cells // max(w, h))))
    img = Image.fromarray(small.astype(np.uint8), "L").resize((w, h), Image.BICUBIC)
    return (np.asarray(img, dtype=np.float32) - 127.5) / 127.5


def _vignette(w: int, h: int, strength: float, cx: float = 0.5, cy: float = 0.5) -> np.ndarray:
    """Return an (h, w, 1) float32 gain: 1 at (cx, cy), falling as r^2 to 1 - strength at the corners."""
    y = (np.linspace(0, 1, h, dtype=np.float32) - cy)[:, None]
    x = (np.linspace(0, 1, w, dtype=np.float32) - cx)[None, :]
    r2 = (x * x + y * y) / 0.5
    return (1 - strength * r2)[..., None]


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


@lru_cache(maxsize=8)
def _grain_tile(w: int, h: int, sigma: float) -> Image.Image:
    """Return an RGB tile 32 px larger than (w, h) of 128 + sensor-like noise (luma and chroma)."""
    rng = np.random.default_rng([w, h, int(sigma * 100)])
    luma = rng.normal(0, sigma, size=(h + 32, w + 32, 1)).astype(np.float32)
    chroma = rng.normal(0, sigma * 0.4, size=(h + 32, w + 32, 3)).astype(np.float32)
    return _to_image(128 + luma + chroma)


def _add_grain(img: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    """Return ``img`` plus noise: a random window of a cached noise tile (different per photo)."""
    w, h = img.size
    ox, oy = (int(v) for v in rng.integers(0, 33, size=2))
    tile = _grain_tile(w, h, sigma).crop((ox, oy, ox + w, oy + h))
    return ImageChops.add(img, tile, 1.0, -128)


def _photographed(img: Image.Image, rng: np.random.Generator, balance: float, exposure: float, grain: float) -> bytes:
    """Return the JPEG of ``img`` as one photo takes it: its own white balance, exposure and gamma, and grain."""
    gains = rng.normal(1.0, balance, 3) * rng.normal(1.0, exposure)
    img = _relight(img, gains, float(rng.normal(1.0, 0.04)))
    return _encode(_add_grain(img, rng, grain), int(rng.integers(88, 96)))


def _relight(img: Image.Image, gains: np.ndarray, gamma: float, lift: float = 0.0) -> Image.Image:
    """Return ``img`` through per-channel lookup tables: exposure/white-balance gains, gamma, black lift."""
    x = np.arange(256, dtype=np.float64) / 255
    lut = [np.clip(255 * (lift + (1 - lift) * (x ** gamma) * g), 0, 255).round().astype(int) for g in gains]
    return img.point(np.concatenate(lut).tolist())


def _chaikin(pts: np.ndarray, iterations: int = 2, closed: bool = True) -> np.ndarray:
    """Return the polygon (closed) or polyline ``pts`` rounded by Chaikin's corner cutting."""
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0) if closed else pts[1:]
        cur = pts if closed else pts[:-1]
        q, r = 0.75 * cur + 0.25 * nxt, 0.25 * cur + 0.75 * nxt
        mid = np.stack([q, r], axis=1).reshape(-1, 2)
        pts = mid if closed else np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def _flat(pts: np.ndarray) -> list[float]:
    return pts.ravel().tolist()


# ---------------------------------------------------------------------------------------
# "text": typed lines of pseudo-glyphs, and a real 5x7 font for digits (timestamps, barcodes)

_DIGITS = {  # 5x7 bitmaps, rows top to bottom
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.", "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####", "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.", "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.", "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.", "9": ".###. #...# #...# .#### ....# ...#. .##..",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....", "/": "....# ....# ...#. ..#.. .#... #.... #....",
    "-": "..... ..... ..... ##### ..... ..... .....", " ": "..... ..... ..... ..... ..... ..... .....",
    "°": ".##.. #..#. .##.. ..... ..... ..... .....", "C": ".###. #...# #.... #.... #.... #...# .###.",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#", "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "F": "##### #.... #.... ####. #.... #.... #....", "E": "##### #.... #.... ####. #.... #.... #####",
}

# pseudo-letters are drawn from these strokes on the 5x7 grid (x 0..4, y 0..6; lowercase in rows 2..6)
_LOWER_STROKES = [((0, 2), (0, 6)), ((4, 2), (4, 6)), ((2, 2), (2, 6)), ((0, 2), (4, 2)), ((0, 4), (4, 4)),
                  ((0, 6), (4, 6)), ((0, 2), (4, 6)), ((4, 2), (0, 6)), ((1, 2), (3, 2)), ((1, 6), (3, 6)),
                  ((0, 0), (0, 6)), ((4, 0), (4, 6)), ((2, 0), (2, 6)), ((0, 3), (2, 6)), ((4, 3), (2, 6))]
_UPPER_STROKES = [((0, 0), (0, 6)), ((4, 0), (4, 6)), ((2, 0), (2, 6)), ((0, 0), (4, 0)), ((0, 3), (4, 3)),
                  ((0, 6), (4, 6)), ((0, 0), (4, 6)), ((4, 0), (0, 6)), ((0, 0), (2, 6)), ((4, 0), (2, 6)),
                  ((1, 0), (3, 0)), ((1, 6), (3, 6)), ((0, 0), (2, 3)), ((4, 0), (2, 3))]


def _raster(strokes: list[tuple[tuple[int, int], tuple[int, int]]]) -> np.ndarray:
    g = np.zeros((7, 5), dtype=bool)
    for (x0, y0), (x1, y1) in strokes:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for t in np.linspace(0, 1, steps + 1):
            g[round(y0 + (y1 - y0) * t), round(x0 + (x1 - x0) * t)] = True
    return g


@lru_cache(maxsize=1)
def _alphabets() -> tuple[np.ndarray, np.ndarray]:
    """Return (lowercase, uppercase) pseudo-glyphs: (30, 7, 5) and (20, 7, 5) bool bitmaps."""
    rng = np.random.default_rng(20240611)

    def make(strokes: list, n: int, lo: int, hi: int) -> np.ndarray:
        out = []
        for _ in range(n):
            picks = rng.choice(len(strokes), size=int(rng.integers(lo, hi + 1)), replace=False)
            out.append(_raster([strokes[i] for i in picks]))
        return np.stack(out)

    return make(_LOWER_STROKES, 30, 2, 3), make(_UPPER_STROKES, 20, 2, 4)


@lru_cache(maxsize=1)
def _digit_font() -> dict[str, np.ndarray]:
    return {c: np.array([[ch == "#" for ch in row] for row in s.split()]) for c, s in _DIGITS.items()}


def _glyph_row(glyphs: list[np.ndarray], scale: int) -> np.ndarray:
    """Return a uint8 mask (0/255) of glyph bitmaps side by side (1 px gap), each pixel ``scale`` px."""
    gap = np.zeros((7, 1), dtype=bool)
    row = np.hstack([part for g in glyphs for part in (g, gap)]) if glyphs else np.zeros((7, 1), bool)
    return np.repeat(np.repeat(row, scale, axis=0), scale, axis=1).astype(np.uint8) * 255


def _pseudo_words(rng: np.random.Generator, max_chars: int, caps: float = 0.3) -> list[np.ndarray]:
    """Return the glyphs of a line of pseudo-words (spaces as empty glyphs), at most ``max_chars`` long."""
    lower, upper = _alphabets()
    blank = np.zeros((7, 5), dtype=bool)
    out: list[np.ndarray] = []
    while True:
        n = int(rng.integers(2, 10))
        if len(out) + n > max_chars:
            return out
        word = [upper[rng.integers(len(upper))] if (k == 0 and rng.random() < caps) else lower[rng.integers(len(lower))]
                for k in range(n)]
        out += word + [blank]


def _string(text: str, scale: int) -> np.ndarray:
    """Return the mask of ``text`` in the 5x7 digit font (unknown characters as pseudo-capitals)."""
    font, upper = _digit_font(), _alphabets()[1]
    return _glyph_row([font[c] if c in font else upper[ord(c) % len(upper)] for c in text], scale)


def _stamp(img: Image.Image, mask: np.ndarray, xy: tuple[int, int], colour: _Color) -> None:
    """Paint ``colour`` through ``mask`` (uint8) at ``xy`` (clipped to the image)."""
    ImageDraw.Draw(img).bitmap((int(xy[0]), int(xy[1])), Image.fromarray(mask, "L"), fill=colour)


def _text_block(img: Image.Image, rng: np.random.Generator, box: tuple[int, int, int, int], scale: int,
                colour: _Color, lines: int, header: list[np.ndarray] | None = None) -> None:
    """Write ``lines`` of pseudo-text in ``box`` (x0, y0, x1, y1), under an optional centred header."""
    x0, y0, x1, y1 = box
    y = y0
    if header is not None:
        m = _glyph_row(header, scale + 1)
        _stamp(img, m, (x0 + max(0, (x1 - x0 - m.shape[1]) // 2), y), colour)
        y += m.shape[0] + 5 * scale
    line_h = 7 * scale + 4 * scale
    max_chars = max(4, (x1 - x0) // (6 * scale))
    for k in range(lines):
        if y + 7 * scale > y1:
            break
        words = _pseudo_words(rng, int(max_chars * rng.uniform(0.45, 1.0)) if k else max_chars)
        if words:
            _stamp(img, _glyph_row(words, scale), (x0, y), colour)
        y += line_h


def _shadow(img: Image.Image, prims: list, offset: tuple[float, float], blur: float, alpha: float,
            colour: _Color = (40, 35, 30)) -> None:
    """Paint a soft shadow of the filled shapes ``prims`` (drawn at 1/4 resolution and blurred)."""
    w, h = img.size
    small = Image.new("L", (w // 4, h // 4), 0)
    d = ImageDraw.Draw(small)
    shift = np.array(offset)
    for kind, pts, *_rest in prims:
        if kind == "poly":
            d.polygon(_flat((pts + shift) / 4), fill=255)
        elif kind == "line":
            d.line(_flat((pts + shift) / 4), fill=255, width=max(1, round(_rest[0] / 4)))
    small = small.filter(ImageFilter.GaussianBlur(blur / 4))
    lut = [round(v * alpha) for v in range(256)]
    img.paste(colour, (0, 0, w, h), small.point(lut).resize((w, h), Image.BILINEAR))


def _draw(draw: ImageDraw.ImageDraw, prims: list) -> None:
    """Draw primitives: ("poly", pts, fill, outline) and ("line", pts, width, colour)."""
    for kind, pts, a, b in prims:
        if kind == "poly":
            draw.polygon(_flat(pts), fill=a, outline=b)
        else:
            draw.line(_flat(pts), fill=b, width=max(1, round(a)), joint="curve")


# ---------------------------------------------------------------------------------------
# herbarium sheets

# sRGB values of a ColorChecker-like chart, and a 12-step grey scale
_CHART = [(115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
          (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46)]
_GREYS = [int(v) for v in np.linspace(245, 20, 12)]


@dataclass(frozen=True)
class _Sheet:
    img: Image.Image
    plant_box: tuple[int, int, int, int]  # where the plant may grow
    label_box: tuple[int, int, int, int]  # the label's usual place (bottom right)
    barcode_xy: tuple[int, int]
    barcode_modules: int
    module: int
    scale: int  # glyph pixel size
    header: tuple[int, ...]  # the label's printed first line (per collection)
    ink: _Color
    label_paper: _Color


def _chart_size(patch: int, vertical: bool) -> tuple[int, int]:
    """Return the (width, height) of the colour chart of patches ``patch`` px wide."""
    pad = max(3, patch // 8)
    long_side, short_side = len(_CHART) * patch + 2 * pad, 2 * patch + 3 * pad + patch // 2
    return (short_side, long_side) if vertical else (long_side, short_side)


def _chart(draw: ImageDraw.ImageDraw, x: int, y: int, patch: int, vertical: bool) -> tuple[int, int]:
    """Draw the colour chart (12 colours over 12 greys, and a cm ruler) at (x, y); return its size."""
    pad = max(3, patch // 8)
    n = len(_CHART)
    long_side, short_side = n * patch + 2 * pad, 2 * patch + 3 * pad
    ruler = patch // 2
    w, h = _chart_size(patch, vertical)
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=(22, 22, 24))
    for i in range(n):
        for row, colour in enumerate((_CHART[i], (_GREYS[i],) * 3)):
            a, b = pad + i * patch, pad + row * (patch + pad)
            px, py = (x + b, y + a) if vertical else (x + a, y + b)
            draw.rectangle((px + 1, py + 1, px + patch - 2, py + patch - 2), fill=colour)
    # the ruler: white with black cm blocks and mm ticks
    if vertical:
        rx, ry, rw, rh = x + short_side, y + pad, ruler - pad, long_side - 2 * pad
        draw.rectangle((rx, ry, rx + rw, ry + rh), fill=(235, 235, 230))
        for k, yy in enumerate(range(ry, ry + rh, max(4, patch // 4))):
            draw.line((rx, yy, rx + (rw if k % 5 == 0 else rw // 3), yy), fill=(20, 20, 20), width=1)
    else:
        rx, ry, rw, rh = x + pad, y + short_side, long_side - 2 * pad, ruler - pad
        draw.rectangle((rx, ry, rx + rw, ry + rh), fill=(235, 235, 230))
        for k, xx in enumerate(range(rx, rx + rw, max(4, patch // 4))):
            draw.line((xx, ry, xx, ry + (rh if k % 5 == 0 else rh // 3)), fill=(20, 20, 20), width=1)
    return w, h


@lru_cache(maxsize=8)
def _sheet_base(collection: int) -> _Sheet:
    """Return what every sheet of a collection shares: paper, chart, layout (cached)."""
    rng = _rng(_HERB, collection, 0)
    h = int(rng.integers(1100, 1501))
    w = round(h * 2 / 3)
    light = rng.uniform(226, 244)  # cream to beige
    paper = np.array([light, light - rng.uniform(3, 12), light - rng.uniform(16, 40)])
    # faint texture: large mottling plus fine fibres, then the camera's vignetting
    mottle = _smooth_field(rng, w, h, 24)[..., None] * rng.uniform(2, 5)
    fibre = rng.normal(0, 1.6, size=(h, w, 1)).astype(np.float32)
    arr = (paper + mottle + fibre) * _vignette(w, h, rng.uniform(0.05, 0.12), *rng.uniform(0.4, 0.6, 2))
    border = 0
    if rng.random() < 0.5:  # the sheet photographed on a darker board, its edge visible
        border = int(w * rng.uniform(0.012, 0.03))
        board = rng.uniform(30, 90) + rng.normal(0, 4, 3)
        arr[:border], arr[-border:], arr[:, :border], arr[:, -border:] = board, board, board, board
    img = _to_image(arr)
    draw = ImageDraw.Draw(img)
    m = border + int(w * 0.035)
    patch = max(16, round(w * rng.uniform(0.035, 0.048)))
    layout = int(rng.integers(4))
    module = max(2, round(w / 450))
    modules = 110
    bw, bh = modules * module, int(h * 0.045)
    lw, lh = int(w * rng.uniform(0.36, 0.44)), int(h * rng.uniform(0.12, 0.16))
    label = (w - m - lw, h - m - lh, w - m, h - m)
    if layout == 0:  # chart along the top left, barcode top right
        cw, ch = _chart(draw, m, m, patch, vertical=False)
        barcode = (w - m - bw, m)
        top, left, bottom = m + max(ch, bh + 30) + 10, m, h - m
    elif layout == 1:  # chart along the bottom left, barcode top right
        while _chart_size(patch, False)[0] > w - 2 * m - lw - 20:  # room for the label beside it
            patch -= 1
        cw, ch = _chart(draw, m, h - m - _chart_size(patch, False)[1], patch, vertical=False)
        barcode = (w - m - bw, m)
        top, left, bottom = m + bh + 40, m, h - m - ch - 10
    elif layout == 2:  # chart upright along the left edge, barcode top left
        barcode = (m, m)
        cw, ch = _chart(draw, m, m + bh + 50, patch, vertical=True)
        top, left, bottom = m + 10, m + cw + 15, h - m
    else:  # chart along the top right, barcode bottom left
        cw, ch = _chart(draw, w - m - _chart_size(patch, False)[0], m, patch, vertical=False)
        barcode = (m, h - m - bh - 30)
        top, left, bottom = m + ch + 10, m, h - m - bh - 40
    upper = _alphabets()[1]
    header = tuple(int(i) for i in rng.integers(0, len(upper), size=int(rng.integers(10, 18))))
    ink = _rgb(rng.uniform([15, 15, 20], [50, 45, 60]))
    label_paper = _rgb(rng.uniform([238, 236, 226], [252, 250, 244]))
    return _Sheet(img, (left, top, w - m, bottom), label, barcode, modules, module, max(1, round(h / 700)),
                  header, ink, label_paper)


def _leaf(rng: np.random.Generator, base: np.ndarray, angle: float, length: float, width: float,
          shape: tuple[float, float], serrate: float) -> np.ndarray:
    """Return a leaf outline (lamina) from ``base`` along ``angle``: width(t) ~ t^a (1-t)^b."""
    a, b = shape
    t = np.linspace(0, 1, 14)
    prof = t ** a * (1 - t) ** b
    prof = prof / max(prof.max(), 1e-9) * width / 2
    if serrate:
        prof = prof * (1 + serrate * (np.arange(len(t)) % 2))
    bend = rng.normal(0, 0.08) * length * np.sin(np.pi * t)
    along = np.concatenate([t, t[::-1]]) * length
    across = np.concatenate([prof + bend, -prof[::-1] + bend[::-1]])
    c, s = np.cos(angle), np.sin(angle)
    return base + np.stack([along * c - across * s, along * s + across * c], axis=1)


def _plant(rng: np.random.Generator) -> list:
    """Return the primitives of one pressed plant in abstract units (main stem about 1 long, up = -y)."""
    g = rng.uniform(70, 120)  # dried green: olive, greyish or dark
    greens = np.array([g * rng.uniform(0.7, 1.0), g, g * rng.uniform(0.4, 0.7)])
    if rng.random() < 0.35:  # dried brown
        r = rng.uniform(90, 135)
        greens = np.array([r, r * rng.uniform(0.72, 0.85), r * rng.uniform(0.45, 0.6)])
    stem_colour = _rgb(greens * rng.uniform(0.6, 0.9) + [15, 5, 0])
    leaf_kind = rng.choice(["simple", "simple", "compound", "grass"])
    leaf_len = rng.uniform(0.08, 0.2) if leaf_kind != "grass" else rng.uniform(0.25, 0.5)
    ratio = {"simple": rng.uniform(0.25, 0.65), "compound": rng.uniform(0.3, 0.5), "grass": rng.uniform(0.04, 0.08)}
    shape = (rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.2)) if leaf_kind != "grass" else (0.3, 0.6)
    serrate = rng.uniform(0.05, 0.15) if rng.random() < 0.3 else 0.0
    opposite = rng.random() < 0.4
    leaf_angle = rng.uniform(0.5, 1.1)
    flower = _rgb(rng.choice([[205, 195, 150], [150, 100, 140], [210, 180, 60], [160, 75, 55], [120, 90, 150]]))
    has_flowers = rng.random() < 0.6
    stems: list = []
    leaves: list = []
    tips: list = []

    def add_leaf(p: np.ndarray, ang: float, length: float) -> None:
        colour = _rgb(greens * rng.uniform(0.8, 1.15) + rng.normal(0, 4, 3))
        dark = _rgb(np.array(colour) * 0.7)
        if leaf_kind == "compound":
            tip = p + length * 2.2 * np.array([np.cos(ang), np.sin(ang)])
            leaves.append(("line", np.vstack([p, tip]), 0.004, dark))
            for k in range(1, int(rng.integers(3, 6))):
                q = p + (tip - p) * k / 5.5
                for side in (-1, 1):
                    leaves.append(("poly", _leaf(rng, q, ang + side * rng.uniform(0.7, 1.1), length * 0.5,
                                                 length * 0.5 * ratio["compound"], shape, serrate), colour, dark))
            leaves.append(("poly", _leaf(rng, tip, ang, length * 0.55, length * 0.25, shape, serrate), colour, dark))
            return
        blade = _leaf(rng, p, ang, length, length * ratio[leaf_kind], shape, serrate)
        leaves.append(("poly", blade, colour, dark))
        if leaf_kind == "simple":  # the midrib
            leaves.append(("line", np.vstack([p, p + 0.9 * length * np.array([np.cos(ang), np.sin(ang)])]), 0.003,
                           dark))

    def grow(p: np.ndarray, ang: float, length: float, width: float, depth: int) -> None:
        n = int(rng.integers(6, 11))
        pts = [p]
        side = 1
        for k in range(n):
            ang += rng.normal(0, 0.12)
            p = p + length / n * np.array([np.cos(ang), np.sin(ang)])
            pts.append(p)
            taper = 1 - 0.5 * k / n
            if k >= 1 and rng.random() < 0.85:
                sides = (-1, 1) if opposite else (side,)
                side = -side
                for s in sides:
                    add_leaf(p, ang + s * leaf_angle + rng.normal(0, 0.15), leaf_len * taper * rng.uniform(0.7, 1.2))
            if depth < 2 and k >= 2 and rng.random() < 0.3 / (depth + 1):
                grow(p, ang + rng.choice([-1, 1]) * rng.uniform(0.35, 0.8), length * rng.uniform(0.3, 0.55),
                     width * 0.6, depth + 1)
        arr = np.array(pts)
        for k in range(len(arr) - 1):  # a tapering stem
            stems.append(("line", arr[k:k + 2], width * (1 - 0.5 * k / n), stem_colour))
        tips.append((p, ang))

    root = np.zeros(2)
    grow(root, -np.pi / 2 + rng.normal(0, 0.15), 1.0, rng.uniform(0.008, 0.016), 0)
    if rng.random() < 0.4:  # a second shoot from the base
        grow(root, -np.pi / 2 + rng.choice([-1, 1]) * rng.uniform(0.15, 0.4), rng.uniform(0.5, 0.8), 0.008, 1)
    extras: list = []
    for _ in range(int(rng.integers(2, 6))):  # roots
        q, a, pts = root.copy(), np.pi / 2 + rng.normal(0, 0.5), [root.copy()]
        for _k in range(6):
            a += rng.normal(0, 0.35)
            q = q + rng.uniform(0.01, 0.025) * np.array([np.cos(a), np.sin(a)])
            pts.append(q)
        extras.append(("line", np.array(pts), 0.003, (112, 92, 70)))
    if has_flowers:
        centre = _rgb(np.array(flower) * 0.6)
        for tip, a in tips:
            for _ in range(int(rng.integers(2, 8))):
                c = tip + rng.normal(0, 0.018, 2) + 0.01 * np.array([np.cos(a), np.sin(a)])
                r = rng.uniform(0.006, 0.014)
                angles = np.linspace(0, 2 * np.pi, 9)[:-1]
                extras.append(("poly", c + r * np.stack([np.cos(angles), np.sin(angles)], 1),
                               _jitter(rng, flower, 12), centre))
    return stems + leaves + extras


def _fit(prims: list, box: tuple[int, int, int, int], rng: np.random.Generator) -> tuple[list, float]:
    """Return ``prims`` scaled and moved to a random place and size inside ``box``, and the scale."""
    allpts = np.vstack([p[1] for p in prims])
    lo, hi = allpts.min(0), allpts.max(0)
    bw, bh = box[2] - box[0], box[3] - box[1]
    scale = min(bw / (hi[0] - lo[0]), bh / (hi[1] - lo[1])) * rng.uniform(0.8, 0.99)
    size = (hi - lo) * scale
    off = np.array([box[0] + rng.uniform(0, bw - size[0]), box[1] + rng.uniform(0, bh - size[1])]) - lo * scale
    out = []
    for kind, pts, a, b in prims:
        out.append((kind, pts * scale + off, a * scale if kind == "line" else a, b))
    return out, scale


def _barcode(draw: ImageDraw.ImageDraw, img: Image.Image, rng: np.random.Generator, sheet: _Sheet) -> None:
    x, y = sheet.barcode_xy
    mod, n = sheet.module, sheet.barcode_modules
    bh = int(img.size[1] * 0.045)
    digits = "".join(str(d) for d in rng.integers(0, 10, size=8))
    text = _string(digits, max(1, sheet.scale))
    draw.rectangle((x - 3 * mod, y - 3 * mod, x + (n + 3) * mod, y + bh + text.shape[0] + 6 * mod),
                   fill=(250, 250, 248))
    pos, black = 6, True  # widths of bars and spaces: random 1-4 modules, per specimen
    while pos < n - 6:
        wd = int(min(rng.integers(1, 5), n - 6 - pos))
        if black:
            draw.rectangle((x + pos * mod, y, x + (pos + wd) * mod - 1, y + bh), fill=(10, 10, 10))
        pos += wd
        black = not black
    _stamp(img, text, (x + (n * mod - text.shape[1]) // 2, y + bh + 3 * mod), (10, 10, 10))


def herbarium_sheet(seed: int, collection: int = 0) -> bytes:
    """Return the JPEG of one herbarium sheet of ``collection``; ``seed`` picks the specimen.

    Portrait, 1,100-1,500 px tall (2:3, fixed per collection): cream paper with a faint
    texture and vignetting (sometimes the darker board at its edge), the collection's colour
    chart (12 colours over a grey scale, with a ruler) in the collection's place, a barcode
    (random bar widths and number) near a corner, a label at the bottom right (the
    collection's printed header, then lines of pseudo-text), sometimes a determination slip,
    and one pressed plant -- stem, branches, leaves (simple, compound or grass-like), roots,
    perhaps flowers, fixed with paper strips -- whose shape, size and place are the
    specimen's. Each photo also gets its own small exposure / white-balance change and grain.
    """
    sheet = _sheet_base(collection)
    rng = _rng(_HERB, collection, 1, seed)
    img = sheet.img.copy()
    w, h = img.size
    draw = ImageDraw.Draw(img)
    prims, _scale = _fit(_plant(rng), sheet.plant_box, rng)
    _shadow(img, prims, (3, 4), 6, 0.25)
    _draw(draw, prims)
    stems = [p for p in prims if p[0] == "line" and p[2] > 2]
    for k in rng.choice(len(stems), size=min(len(stems), int(rng.integers(2, 6))), replace=False):  # paper strips
        cx, cy = stems[k][1].mean(0)
        sw, sh = rng.uniform(0.02, 0.04) * w, rng.uniform(0.006, 0.01) * h
        draw.rectangle((cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2), fill=_jitter(rng, (238, 234, 222), 3),
                       outline=(214, 208, 196))
    _barcode(draw, img, rng, sheet)
    x0, y0, x1, y1 = (int(v + d) for v, d in zip(sheet.label_box, rng.normal(0, w * 0.004, 4)))
    draw.rectangle((x0 + 2, y0 + 3, x1 + 2, y1 + 3), fill=(170, 160, 140))  # the label's shadow edge
    draw.rectangle((x0, y0, x1, y1), fill=sheet.label_paper, outline=sheet.ink if rng.random() < 0.5 else None)
    upper = _alphabets()[1]
    pad = 4 * sheet.scale
    _text_block(img, rng, (x0 + pad, y0 + pad, x1 - pad, y1 - pad), sheet.scale, sheet.ink,
                int(rng.integers(4, 8)), header=[upper[i] for i in sheet.header])
    if rng.random() < 0.4:  # a determination slip above the label
        sw, sh = int((x1 - x0) * rng.uniform(0.5, 0.8)), int(24 * sheet.scale)
        sx, sy = x1 - sw - int(rng.uniform(0, 20)), y0 - sh - int(rng.uniform(10, 40))
        draw.rectangle((sx, sy, sx + sw, sy + sh), fill=_jitter(rng, (245, 240, 225), 4))
        _text_block(img, rng, (sx + pad, sy + pad, sx + sw - pad, sy + sh - pad), sheet.scale,
                    _jitter(rng, (40, 40, 90), 15), 2)
    return _photographed(img, rng, 0.012, 0.025, 2.0)


# ---------------------------------------------------------------------------------------
# pinned insects


@dataclass(frozen=True)
class _Tray:
    img: Image.Image
    label_xy: tuple[int, int]
    beetles: bool
    shadow: tuple[float, float]


@lru_cache(maxsize=8)
def _tray_base(collection: int) -> _Tray:
    """Return what every photo of a collection of pinned insects shares: ground, scale bar, layout."""
    rng = _rng(_PIN, collection, 0)
    w, h = 1200, 900
    grey = rng.uniform(205, 245)
    ground = np.array([grey, grey, grey]) + rng.normal(0, 2, 3) + np.array([1.0, 0.6, 0.0]) * rng.uniform(-2, 8)
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    a = rng.uniform(0, 2 * np.pi)
    arr = ground * (1 + rng.uniform(0.03, 0.08) * (np.cos(a) * x + np.sin(a) * y)) * _vignette(w, h, 0.06)
    img = _to_image(arr + _smooth_field(rng, w, h, 8)[..., None] * 2)
    draw = ImageDraw.Draw(img)
    # the scale bar: 10 segments alternating black and white, in a black frame, a number under it
    seg, bh = int(rng.integers(18, 30)), int(rng.integers(10, 16))
    corner = int(rng.integers(3))
    sx = [40, 40, w - 40 - 10 * seg][corner]
    sy = [h - 70, 60, h - 70][corner]
    draw.rectangle((sx - 2, sy - 2, sx + 10 * seg + 1, sy + bh + 1), fill=(10, 10, 10))
    for k in range(10):
        if k % 2:
            draw.rectangle((sx + k * seg, sy, sx + (k + 1) * seg - 1, sy + bh - 1), fill=(245, 245, 245))
    _stamp(img, _string("10 MM", 2), (sx, sy + bh + 8), (15, 15, 15))
    label = (w - 300, h - 150) if corner != 2 else (40, h - 150)
    return _Tray(img, label, bool(rng.random() < 0.4), tuple(rng.uniform(2, 8, 2)))


def _mirror(prims: list, cx: float) -> list:
    out = []
    for kind, pts, a, b in prims:
        m = pts.copy()
        m[:, 0] = 2 * cx - m[:, 0]
        out.append((kind, m, a, b))
    return out


def _palette(rng: np.random.Generator) -> list[_Color]:
    """Return 4 colours of a moth's or beetle's pattern: browns, greys, and now and then a bright one."""
    base = rng.uniform([60, 45, 30], [190, 160, 120])
    out = [_rgb(base * rng.uniform(0.4, 1.3)) for _ in range(4)]
    if rng.random() < 0.35:
        out[int(rng.integers(1, 4))] = _rgb(rng.uniform(0, 255, 3))
    return out


def _moth(rng: np.random.Generator, cx: float, cy: float, span: float) -> list:
    """Return the primitives of a spread moth (right half, to be mirrored, then the body)."""
    colours = _palette(rng)
    half = span / 2
    root = np.array([cx + span * 0.02, cy - span * 0.06])
    apex = root + half * np.array([np.cos(a := rng.uniform(0.15, 0.6)), -np.sin(a)]) * rng.uniform(0.92, 1.0)
    tornus = root + half * np.array([rng.uniform(0.55, 0.75), rng.uniform(0.2, 0.4)])
    costa = (root + apex) / 2 + np.array([0, -half * rng.uniform(0.03, 0.1)])
    outer = (apex + tornus) / 2 + half * rng.uniform(-0.02, 0.08) * np.array([1, 0.4])
    fore = _chaikin(np.array([root, costa, apex, outer, tornus, root + [0, half * 0.12]]), 3)
    hroot = root + [0, half * 0.1]
    hind = _chaikin(np.array([hroot, hroot + half * np.array([0.55, 0.05]) * rng.uniform(0.8, 1.1),
                              hroot + half * np.array([0.55, 0.45]) * rng.uniform(0.7, 1.0),
                              hroot + half * np.array([0.2, 0.6]) * rng.uniform(0.7, 1.1),
                              hroot + [0, half * 0.25]]), 3)
    prims: list = []
    for wing, cols in ((hind, colours[2:] + colours[:2]), (fore, colours)):
        centre = wing.mean(0)
        prims.append(("poly", wing, cols[0], _rgb(np.array(cols[0]) * 0.6)))
        for k, f in enumerate(rng.uniform(0.3, 0.9, size=int(rng.integers(1, 4)))):  # bands: scaled copies
            anchor = root if k % 2 == 0 else centre
            prims.append(("poly", anchor + (wing - anchor) * f, cols[1 + k % 3], None))
        for _ in range(int(rng.integers(0, 4))):  # spots, ringed
            i = int(rng.integers(len(wing)))
            c = root + (wing[i] - root) * rng.uniform(0.4, 0.8)
            r = half * rng.uniform(0.03, 0.08)
            ring = np.linspace(0, 2 * np.pi, 13)[:-1]
            circle = np.stack([np.cos(ring), np.sin(ring)], 1)
            prims.append(("poly", c + r * circle, cols[3], None))
            prims.append(("poly", c + 0.5 * r * circle, cols[int(rng.integers(4))], None))
    # an antenna: a curved line from the head, sometimes a club at its end
    head = np.array([cx, cy - span * 0.1])
    ang = -np.pi / 2 + rng.uniform(0.3, 0.7)
    length = half * rng.uniform(0.3, 0.55)
    bend = rng.uniform(-0.4, 0.4)
    t = np.linspace(0, 1, 8)[:, None]
    ant = head + length * t * np.array([np.cos(ang), np.sin(ang)]) + bend * length * t ** 2 * np.array([1, 0.3])
    prims.append(("line", ant, max(1.5, span * 0.004), (50, 40, 30)))
    if rng.random() < 0.5:
        prims.append(("line", ant[-2:], max(3, span * 0.012), (50, 40, 30)))
    return prims


def _beetle(rng: np.random.Generator, cx: float, cy: float, length: float) -> list:
    """Return the primitives of a beetle seen from above (right half, to be mirrored, then the body)."""
    colours = _palette(rng)
    if rng.random() < 0.4:  # glossy black, metallic green or blue
        colours[0] = _rgb(rng.choice([[25, 22, 20], [40, 90, 50], [40, 60, 110], [120, 40, 30]]))
    wd = length * rng.uniform(0.28, 0.4)
    top = cy - length * 0.12
    ely = _chaikin(np.array([[cx, top], [cx + wd, top + length * 0.03], [cx + wd * 1.05, top + length * 0.3],
                             [cx + wd * 0.8, top + length * 0.55], [cx, top + length * 0.62]]), 3, closed=True)
    pw = wd * rng.uniform(0.7, 0.95)  # the pronotum, whole (it is symmetric: its mirror image is itself)
    pron = _chaikin(np.array([[cx - pw * 0.7, top - length * 0.19], [cx + pw * 0.7, top - length * 0.19],
                              [cx + pw, top - length * 0.02], [cx - pw, top - length * 0.02]]), 2)
    legs: list = []
    leg_colour = _rgb(np.array(colours[0]) * 0.5)
    for k, base_y in enumerate((top - length * 0.08, top + length * 0.08, top + length * 0.2)):
        a = [-0.6, 0.3, 0.8][k] + rng.normal(0, 0.15)
        femur = np.array([cx + wd * 0.5, base_y])
        knee = femur + length * 0.18 * np.array([np.cos(a), np.sin(a)])
        b = a + rng.uniform(-0.6, 0.6) + (0.5 if k == 2 else -0.3)
        foot = knee + length * 0.2 * np.array([np.cos(b), np.sin(b)])
        legs.append(("line", np.array([femur, knee, foot]), max(2, length * 0.018), leg_colour))
    ant_a = -np.pi / 2 + rng.uniform(0.2, 0.8)
    head = np.array([cx + wd * 0.15, top - length * 0.26])
    t = np.linspace(0, 1, 8)[:, None]
    ant = head + length * rng.uniform(0.2, 0.45) * t * np.array([np.cos(ant_a), np.sin(ant_a)])
    prims = legs + [("line", ant, max(1.5, length * 0.01), leg_colour)]
    prims.append(("poly", pron, colours[0], _rgb(np.array(colours[0]) * 0.6)))
    prims.append(("poly", ely, colours[0], _rgb(np.array(colours[0]) * 0.5)))
    if rng.random() < 0.6:  # spots or stripes on the elytra
        for _ in range(int(rng.integers(1, 5))):
            c = np.array([cx + wd * rng.uniform(0.25, 0.75), top + length * rng.uniform(0.08, 0.5)])
            r = length * rng.uniform(0.03, 0.07)
            ring = np.linspace(0, 2 * np.pi, 11)[:-1]
            prims.append(("poly", c + r * np.stack([np.cos(ring), np.sin(ring) * 1.3], 1), colours[1], None))
    shine = np.array([[cx + wd * 0.35, top + length * 0.06], [cx + wd * 0.55, top + length * 0.3]])
    prims.append(("line", shine, max(2, length * 0.02), _rgb(np.array(colours[0]) * 0.6 + 110)))
    return prims


def pinned_insect(seed: int, collection: int = 0) -> bytes:
    """Return the JPEG (1,200 x 900) of one pinned insect of ``collection``; ``seed`` picks the specimen.

    The collection's pale ground (near white or light grey, a smooth gradient) and scale bar,
    a small label with pseudo-text (the specimen's), and near the centre one insect of the
    collection's order (spread moths, or beetles): bilaterally symmetric, its size, shape
    and colour pattern the specimen's, with a soft shadow and the pin's head on the thorax.
    """
    tray = _tray_base(collection)
    rng = _rng(_PIN, collection, 1, seed)
    img = tray.img.copy()
    w, h = img.size
    draw = ImageDraw.Draw(img)
    cx, cy = w / 2 + rng.normal(0, w * 0.03), h / 2 + rng.normal(0, h * 0.03) - 20
    if tray.beetles:
        length = rng.uniform(0.3, 0.62) * h
        half = _beetle(rng, cx, cy, length)
        body: list = [("poly", _chaikin(np.array([[cx - length * 0.08, cy - length * 0.34], [cx, cy - length * 0.42],
                                                  [cx + length * 0.08, cy - length * 0.34],
                                                  [cx, cy - length * 0.3]]), 2), (30, 25, 20), None)]
        pin_at = (cx + length * 0.08, cy - length * 0.02)
    else:
        span = rng.uniform(0.38, 0.7) * w
        half = _moth(rng, cx, cy, span)
        body_col = _jitter(rng, (95, 80, 65), 20)
        t = np.linspace(0, 2 * np.pi, 17)[:-1]
        ring = np.stack([np.cos(t), np.sin(t)], 1)
        bw = span * rng.uniform(0.025, 0.04)
        body = [("poly", np.array([cx, cy + span * 0.1]) + ring * [bw * 0.8, span * rng.uniform(0.12, 0.18)],
                 _rgb(np.array(body_col) * 0.85), None),
                ("poly", np.array([cx, cy - span * 0.04]) + ring * [bw, span * 0.06], body_col, None),
                ("poly", np.array([cx, cy - span * 0.1]) + ring * bw * 0.7, _rgb(np.array(body_col) * 0.7), None)]
        pin_at = (cx, cy - span * 0.04)
    prims = half + _mirror(half, cx) + body
    _shadow(img, prims, tray.shadow, 10, 0.35)
    _draw(draw, prims)
    r = rng.uniform(4, 7)
    draw.ellipse((pin_at[0] - r, pin_at[1] - r, pin_at[0] + r, pin_at[1] + r), fill=(25, 25, 28))
    draw.ellipse((pin_at[0] - r * 0.5, pin_at[1] - r * 0.6, pin_at[0], pin_at[1] - r * 0.1), fill=(170, 170, 175))
    # the label: small, white, its own text
    lx, ly = (int(v + d) for v, d in zip(tray.label_xy, rng.normal(0, 6, 2)))
    lw, lh = int(rng.uniform(200, 250)), int(rng.uniform(70, 100))
    draw.rectangle((lx + 3, ly + 3, lx + lw + 3, ly + lh + 3), fill=_rgb(np.asarray(img.getpixel((lx, ly))) * 0.8))
    draw.rectangle((lx, ly, lx + lw, ly + lh), fill=_jitter(rng, (246, 245, 240), 3))
    _text_block(img, rng, (lx + 8, ly + 8, lx + lw - 8, ly + lh - 6), 1 if rng.random() < 0.5 else 2,
                _jitter(rng, (30, 30, 35), 8), int(rng.integers(3, 7)))
    return _photographed(img, rng, 0.015, 0.03, 1.8)


# ---------------------------------------------------------------------------------------
# camera traps


@dataclass(frozen=True)
class _Site:
    img: Image.Image  # the scene
    front: Image.Image  # RGBA: the nearest grass, drawn over animals
    horizon: int
    brand: str
    night_gain: float


@lru_cache(maxsize=4)
def _site_base(site: int) -> _Site:
    """Return the fixed scene of a camera-trap site: sky, woodland, ground, trunks, canopy, grass."""
    rng = _rng(_CAM, site, 0)
    w, h = 1280, 960
    horizon = int(h * rng.uniform(0.3, 0.5))
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    sky = np.array(rng.uniform([185, 195, 200], [230, 238, 245]))
    soil = np.array(rng.uniform([85, 72, 50], [140, 120, 85]))
    veg = np.array([rng.uniform(55, 100), 0, 0])
    veg = np.array([veg[0] * rng.uniform(0.75, 1.0), veg[0], veg[0] * rng.uniform(0.45, 0.7)])
    dry = soil * 0.5 + np.array([150, 140, 90]) * 0.5
    # ground: soil under patches of low vegetation, coarser towards the camera, lit at the back
    mix = np.clip(_smooth_field(rng, w, h, 40) * 0.8 + _smooth_field(rng, w, h, 160) * 0.4 + 0.35, 0, 1)[..., None]
    ground = soil * (1 - mix) + veg * mix
    depth = np.clip((yy - horizon) / (h - horizon), 0, 1)[..., None]
    ground = ground * (0.8 + 0.3 * depth) + rng.normal(0, 5, size=(h, w, 1)).astype(np.float32)
    arr = np.where((yy < horizon)[..., None], (sky * (0.92 + 0.1 * yy / horizon)[..., None]), ground)
    # foliage masses: far woodland on the horizon, a canopy hanging in at the top; ragged edges
    leafy = (_smooth_field(rng, w, h, 90) * 0.6 + _smooth_field(rng, w, h, 300) * 0.4)

    def profile(cells: int) -> np.ndarray:
        return _smooth_field(rng, w, 1, cells)[0][None, :]

    far_top = horizon - h * rng.uniform(0.08, 0.2) * (1.2 + profile(12)) + 25 * leafy
    foliage_tex = (veg * rng.uniform(0.45, 0.65))[None, None, :] * (0.8 + 0.45 * leafy)[..., None]
    far = (yy > far_top) & (yy < horizon + 4 + 6 * leafy)
    arr = np.where(far[..., None], foliage_tex * 0.8 + sky * 0.2, arr)
    img = _to_image(arr)
    draw = ImageDraw.Draw(img)
    # trunks: tapered, with bark streaks and a shaded side; nearer ones wider and standing lower
    for _ in range(int(rng.integers(2, 6))):
        base_y = rng.uniform(horizon + 10, h * 0.95)
        near = (base_y - horizon) / (h - horizon)
        x, wd = rng.uniform(0, w), (20 + 120 * near) * rng.uniform(0.6, 1.3)
        bark = _rgb(np.array(rng.choice([[85, 75, 62], [70, 66, 60], [110, 95, 75], [95, 90, 85]]))
                    * rng.uniform(0.7, 1.2))
        lean = rng.normal(0, wd * 0.4)
        draw.polygon([(x - wd / 2, base_y), (x + wd / 2, base_y), (x + lean + wd * 0.35, -10),
                      (x + lean - wd * 0.35, -10)], fill=bark)
        for _k in range(int(wd / 6)):
            sx = x + rng.uniform(-0.4, 0.4) * wd
            draw.line((sx, base_y, sx + lean, -10), fill=_rgb(np.array(bark) * rng.uniform(0.6, 0.9)), width=2)
        draw.polygon([(x - wd / 2, base_y), (x - wd / 6, base_y), (x + lean - wd * 0.1, -10),
                      (x + lean - wd * 0.35, -10)], fill=_rgb(np.array(bark) * 0.75))
    arr = np.asarray(img, dtype=np.float32)
    canopy = yy < h * rng.uniform(0.03, 0.13) * (1.3 + profile(8)) + 30 * leafy
    arr = np.where(canopy[..., None], foliage_tex * 0.95, arr)
    img = _to_image(arr)
    draw = ImageDraw.Draw(img)
    # grass and twigs over the ground; the nearest on a layer of its own, to hide animals' legs
    front = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    fdraw = ImageDraw.Draw(front)
    for _ in range(2200):
        y = rng.uniform(horizon, h)
        near = (y - horizon) / (h - horizon)
        x, blade = rng.uniform(0, w), (5 + 70 * near) * rng.uniform(0.5, 1.5)
        a = -np.pi / 2 + rng.normal(0, 0.3)
        colour = _rgb((veg if rng.random() < 0.6 else dry) * rng.uniform(0.6, 1.35) + rng.normal(0, 4, 3))
        d = fdraw if near > 0.55 and rng.random() < 0.5 else draw
        d.line((x, y, x + blade * np.cos(a), y + blade * np.sin(a)), fill=colour + ((255,) if d is fdraw else ()),
               width=max(1, round(3 * near)))
    img.paste(front, (0, 0), front)
    img = img.filter(ImageFilter.GaussianBlur(0.8))  # a trail camera's soft lens
    arr = np.asarray(img, dtype=np.float32) * _vignette(w, h, rng.uniform(0.15, 0.3))
    brand = "".join(chr(65 + int(i)) for i in rng.integers(0, 26, size=int(rng.integers(5, 9))))
    return _Site(_to_image(arr), front.filter(ImageFilter.GaussianBlur(0.8)), horizon, brand,
                 float(rng.uniform(0.45, 0.7)))


def _thick(pts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Return the outline of the polyline ``pts`` drawn ``widths`` wide at its points (a tapering limb)."""
    d = np.gradient(pts, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    half = normal * (widths / 2)[:, None]
    return np.vstack([pts + half, (pts - half)[::-1]])


def _animal(rng: np.random.Generator, x: float, feet_y: float, size: float) -> list:
    """Return the primitives of a four-legged animal (deer, boar, fox, ...) standing at (x, feet_y)."""
    coat = _rgb(np.array(rng.choice([[95, 70, 45], [60, 50, 40], [130, 90, 55], [150, 85, 45], [90, 85, 80],
                                     [40, 35, 30]])) * rng.uniform(0.8, 1.15))
    dark = _rgb(np.array(coat) * 0.6)
    facing = 1 if rng.random() < 0.5 else -1
    leg = size * rng.uniform(0.25, 0.75)  # size: body length
    bh = size * rng.uniform(0.3, 0.48)
    cy = feet_y - leg - bh * 0.3
    sx = np.array([facing * size, bh])
    hump, sag = rng.uniform(-0.1, 0.15), rng.uniform(0, 0.12)
    outline = np.array([[-0.5, 0.0], [-0.46, -0.42], [0.0, -0.5 - hump], [0.38, -0.48 - hump * 0.5], [0.5, -0.15],
                        [0.45, 0.3], [0.0, 0.5 + sag], [-0.42, 0.4]])
    body = np.array([x, cy]) + _chaikin(outline, 3) * sx
    prims: list = []
    lw = size * rng.uniform(0.06, 0.1)
    for k, lx in enumerate((-0.3, -0.22, 0.28, 0.36)):  # far legs first, darker
        hip = np.array([x + facing * lx * size, cy + bh * 0.1])
        knee = np.array([hip[0] + facing * size * rng.normal(0, 0.04), cy + bh * 0.35 + leg * 0.45])
        hoof = np.array([knee[0] + size * rng.normal(0, 0.05), feet_y])
        limb = _thick(np.array([hip, knee, hoof]), np.array([lw * 1.5, lw * 0.7, lw * 0.45]))
        prims.append(("poly", limb, dark if k in (0, 2) else coat, None))
    prims.append(("poly", body, coat, None))
    if rng.random() < 0.6:  # a lighter belly
        prims.append(("poly", np.array([x, cy + bh * 0.32]) + _chaikin(outline, 3) * sx * [0.7, 0.3],
                      _rgb(np.array(coat) * 1.1 + 12), None))
    neck_len = size * rng.uniform(0.1, 0.4)
    head = np.array([x + facing * (size * 0.45 + neck_len * 0.5), cy - bh * 0.3 - neck_len * rng.uniform(0.2, 1.0)])
    hr = size * rng.uniform(0.08, 0.13)
    prims.append(("poly", np.array([[x + facing * size * 0.25, cy - bh * 0.45], [head[0], head[1] - hr * 0.6],
                                    [head[0], head[1] + hr * 0.7], [x + facing * size * 0.38, cy + bh * 0.25]]), coat,
                  None))
    t = np.linspace(0, 2 * np.pi, 21)[:-1]
    ring = np.stack([np.cos(t), np.sin(t)], 1)
    prims.append(("poly", head + ring * [hr * 1.1, hr * 0.85], coat, None))
    snout = head + [facing * hr * 1.1, hr * 0.35]
    prims.append(("poly", snout + ring * [hr * 0.7, hr * 0.42], dark, None))
    ear_len = hr * rng.uniform(0.5, 1.6)
    for ex in (-0.5, 0.1):  # ears
        ear = head + [facing * hr * ex, -hr * 0.6]
        tip = ear + [facing * hr * 0.1, -ear_len]
        prims.append(("poly", np.array([ear + [-hr * 0.3, 0], ear + [hr * 0.3, 0], tip]), dark, None))
    tail = np.array([x - facing * size * 0.48, cy - bh * 0.25])
    tip = tail + [-facing * size * rng.uniform(0.05, 0.35), bh * rng.uniform(0.1, 0.9)]
    prims.append(("poly", _thick(np.array([tail, (tail + tip) / 2, tip]), np.array([lw * 0.8, lw * 0.6, lw * 0.2])),
                  dark, None))
    return prims


def camera_trap_frame(seed: int, site: int = 0) -> bytes:
    """Return the JPEG (1,280 x 960) of one camera-trap frame at ``site``; ``seed`` picks the frame.

    The site's fixed scene (sky, far woodland, trunks, ground and grass, the lens's softness
    and vignetting), one animal -- body, head, ears, legs, tail, its size, coat, place and
    facing the frame's (always inside the frame, at least a tenth of its width, in front of the trunks),
    its feet hidden in the nearest grass -- the frame's light (day, or a darker,
    warmer or bluer dusk), sensor noise (more at dusk) and a timestamp strip at the bottom
    (the site's camera name, temperature, date and time).
    """
    s = _site_base(site)
    rng = _rng(_CAM, site, 1, seed)
    img = s.img.copy()
    w, h = img.size
    feet_y = rng.uniform(s.horizon + 0.08 * (h - s.horizon), h * 0.97)
    near = (feet_y - s.horizon) / (h - s.horizon)
    # big enough, inside the frame and in front of the trunks: two frames of the scene alone (an animal
    # out of the frame or behind a trunk) differ by their timestamp digits and noise only, and no pixel
    # test tells those from a copy (the README says so)
    size = min(w * 0.5, max(w * 0.1, w * (0.06 + 0.4 * near) * rng.uniform(0.6, 1.3)))
    x = rng.uniform(0.15, 0.85) * w
    prims = _animal(rng, x, feet_y, size)
    draw = ImageDraw.Draw(img, "RGBA")
    draw.ellipse((x - size * 0.55, feet_y - size * 0.05, x + size * 0.55, feet_y + size * 0.05), fill=(0, 0, 0, 60))
    _draw(draw, prims)
    allpts = np.vstack([p[1] for p in prims])
    x0, y0 = (int(max(0, v)) for v in allpts.min(0) - 10)
    x1, y1 = int(min(w, allpts[:, 0].max() + 10)), int(min(h, allpts[:, 1].max() + 10))
    if x1 > x0 and y1 > y0:  # the nearest grass hides its feet (never a trunk: see above)
        box = (x0, y0, x1, y1)
        patch = s.front.crop(box)
        img.paste(patch, box[:2], patch)
    dusk = rng.random() < 0.3
    if dusk:
        gains = rng.uniform(s.night_gain, s.night_gain + 0.2) * (rng.choice([[1.12, 0.97, 0.8], [0.85, 0.95, 1.12]])
                                                                  + rng.normal(0, 0.03, 3))
        img = _relight(img, gains, float(rng.uniform(1.1, 1.3)), lift=0.02)
    else:
        img = _relight(img, rng.uniform(0.88, 1.12) * rng.normal(1.0, 0.03, 3), float(rng.normal(1.0, 0.05)))
    img = _add_grain(img, rng, 5.0 if dusk else 2.5)
    # the timestamp strip
    sh = 34
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h - sh, w, h), fill=(8, 8, 8))
    day = int(rng.integers(0, 365))
    month, mday = 1 + day // 31 % 12, 1 + day % 28
    hour = int(rng.integers(17, 21)) if dusk else int(rng.integers(6, 17))
    stamp = f"2023-{month:02d}-{mday:02d} {hour:02d}:{int(rng.integers(60)):02d}:{int(rng.integers(60)):02d}"
    temp = f"{int(rng.integers(-5, 30)):2d}°C"
    white = (235, 235, 235)
    _stamp(img, _string(s.brand, 3), (12, h - sh + 6), white)
    _stamp(img, _string(temp, 3), (w // 2 - 120, h - sh + 6), white)
    m = _string(stamp, 3)
    _stamp(img, m, (w - m.shape[1] - 12, h - sh + 6), white)
    return _encode(img, int(rng.integers(88, 96)))


# ---------------------------------------------------------------------------------------
# true copies, and collections


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def copies(original: bytes, seed: int) -> list[bytes]:
    """Return the three true copies of one photo that image portals make, deterministic from ``seed``.

    1. another resolution: longest side 500-1,000 px (Lanczos), JPEG quality 85-95;
    2. another JPEG quality: 40-75, the longest side 80-100 % of the original's (bicubic);
    3. cropped: 1-5 % off each side with probability 0.7, then resized to 600-1,200 px
       longest side, quality 70-95.
    """
    rng = _rng(10_000_000, seed)
    img = Image.open(io.BytesIO(original)).convert("RGB")
    w, h = img.size

    def scaled(im: Image.Image, longest: int, resample: int = Image.LANCZOS) -> Image.Image:
        f = longest / max(im.size)
        return im.resize((max(1, round(im.size[0] * f)), max(1, round(im.size[1] * f))), resample)

    resolution = _jpeg(scaled(img, int(rng.integers(500, 1001))), int(rng.integers(85, 96)))
    quality = _jpeg(scaled(img, int(max(w, h) * rng.uniform(0.8, 1.0)), Image.BICUBIC), int(rng.integers(40, 76)))
    cut = rng.uniform(0.01, 0.05, size=4) * (rng.random(4) < 0.7)
    box = (round(w * cut[0]), round(h * cut[1]), w - round(w * cut[2]), h - round(h * cut[3]))
    cropped = _jpeg(scaled(img.crop(box), int(rng.integers(600, 1201))), int(rng.integers(70, 96)))
    return [resolution, quality, cropped]


# sRGB (D65) to XYZ, and XYZ to the linear RGB of Display P3 and of Adobe RGB (1998)
_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_XYZ_TO = {"display_p3": np.array([[2.4935, -0.9314, -0.4027], [-0.8295, 1.7627, 0.0236], [0.0358, -0.0762, 0.9569]]),
           "adobe_rgb": np.array([[2.0414, -0.5649, -0.3447], [-0.9693, 1.8760, 0.0416], [0.0134, -0.1184, 1.0154]])}


def profile_copies(original: bytes, seed: int) -> list[bytes]:
    """Return two copies of one photo whose colours were converted to another colour space, Display P3
    then Adobe RGB (1998), and saved without the profile, so that they are read as sRGB: paler, as a
    portal that converts for wide-gamut screens and drops the ICC profile serves them. JPEG quality
    85-95, deterministic from ``seed``. (Not among :func:`copies`: ``bench/dedupe_heldout.py`` measures
    their recall apart.)
    """
    rng = _rng(10_000_001, seed)
    rgb = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.float32) / 255
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    out = []
    for space, matrix in _XYZ_TO.items():
        moved = np.clip(linear @ (matrix @ _SRGB_TO_XYZ).T.astype(np.float32), 0, 1)
        if space == "adobe_rgb":
            encoded = moved ** (1 / 2.19921875)
        else:  # Display P3 keeps sRGB's transfer curve
            encoded = np.where(moved <= 0.0031308, moved * 12.92, 1.055 * moved ** (1 / 2.4) - 0.055)
        pixels = np.ascontiguousarray(np.clip(encoded * 255 + 0.5, 0, 255).astype(np.uint8))
        out.append(simplejpeg.encode_jpeg(pixels, quality=int(rng.integers(85, 96)), colorsubsampling="420"))
    return out


_MAKERS = {"herbarium": herbarium_sheet, "pinned": pinned_insect, "camera_trap": camera_trap_frame}


def collection(kind: str, n: int, *, seed: int = 0, copy_every: int = 20) -> list[tuple[bytes, int]]:
    """Return ``n`` images of one look-alike collection of ``kind`` (one of ``KINDS``), as (JPEG, photo id).

    The collection (camera site) is number ``seed``; its images are distinct specimens
    (frames), except that every ``copy_every``-th image -- indices ``copy_every - 1``,
    ``2 * copy_every - 1``, ... -- is a true copy (one of the three of :func:`copies`, chosen
    by seed) of the image just before it, and carries that image's photo id. Photo ids count
    the distinct photos from 0. ``copy_every=0``: no copies. Deterministic for a given seed.
    """
    if kind not in _MAKERS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if n < 0 or copy_every < 0 or copy_every == 1:
        raise ValueError("n must be >= 0 and copy_every 0 (no copies) or >= 2")
    make = _MAKERS[kind]
    out: list[tuple[bytes, int]] = []
    photo = -1
    for i in range(n):
        if copy_every and (i + 1) % copy_every == 0:
            choose = _rng(seed, i, 7)
            out.append((copies(out[-1][0], int(choose.integers(2**31)))[int(choose.integers(3))], photo))
            continue
        specimen = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        photo += 1
        out.append((make(specimen, seed), photo))
    return out
