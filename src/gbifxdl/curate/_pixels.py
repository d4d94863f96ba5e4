"""Pixel-level confirmation of near-duplicate candidates: two images aligned, then compared part by part.

A perceptual hash keeps a few dozen bits of an image's layout of light and dark. Photos of
one collection taken the same way (herbarium sheets with one colour chart, pinned insects
on one ground, frames of one camera trap) share that layout, so their hashes meet far
more often than chance: a hash match is only a *candidate*. What tells a copy from a
look-alike is that a copy agrees *everywhere*: the same plant, label and animal, in every
part of the frame. So each candidate pair is confirmed on its pixels, in two stages:

1. the **signatures** fetch stored (``gbifxdl.fetch.hashing.signature``: the 32x32
   greyscale area average of the displayed image, aspect ratio dropped), compared in
   4 x 4 parts. Cheap, and needs no image file: it rejects most look-alikes;
2. where the image files can be read, the pair that passed is compared again on
   128 x 128 pixels decoded from the files, in 16 x 16 parts of 8 x 8 pixels, in luma
   and in both chroma planes:
   a pinned insect with other wings, or an animal elsewhere in a camera-trap scene,
   differs in a few of these parts even where the signatures agree.

**Alignment.** A copy cropped by a few percent on some sides is the same picture stretched
and shifted on each axis. For each axis, every hypothesis of up to ``MAX_CUT`` cut from
either side of either image (in steps of 1.25 % of the frame) resamples one image's
profile (the mean of its columns, or rows) onto the other's; the hypothesis under which
the two profiles correlate best gives that axis' alignment. The 128-pixel stage refines it
in steps of 0.3125 %.

**Comparison.** Over the part of the frame both images show, the second image's
brightness and contrast are fitted to the first's (least squares), and each pixel's
difference is divided by what resampling and JPEG may change there: ``EPS`` grey levels,
plus ``KAPPA`` times the local gradient (an edge moved by a fraction of a pixel changes a
lot). The score of a pair is the largest RMS of that ratio over the parts: a copy's is
small in every part; a look-alike's is large in the parts where it differs. A pair is a
near duplicate when its scores are at most ``SIGNATURE_THRESHOLD`` and ``PIXEL_THRESHOLD``;
bench/dedupe.py measures both sides of these lines on photos and on look-alike collections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SIGNATURE_SIDE = 32  # the stored signature: SIGNATURE_SIDE x SIGNATURE_SIDE bytes (fetch.hashing.SIGNATURE_SIDE)
PIXEL_SIDE = 128  # the second stage's greyscale pixels, decoded from the files
MAX_CUT = 0.05  # the largest cut (a fraction of the frame, on each side) a copy may have
COARSE_STEP = 0.0125  # alignment steps: the signature stage's, then the pixel stage's
FINE_STEP = COARSE_STEP / 4
EPS, KAPPA = 3.0, 0.5  # tolerated difference: EPS grey levels + KAPPA x the local gradient
# the largest part score of a copy, per stage (bench/dedupe.py measures both sides of each line)
SIGNATURE_THRESHOLD = 1.3
PIXEL_THRESHOLD = 1.2
_FINE_REACH = 1  # the pixel stage searches this many coarse steps around the signature stage's alignment
_MIN_COVER = 0.75  # a part counts when this share of its cells is shown by both images
_BLOCK = 4096  # pairs compared at once: bounds the temporaries


@dataclass(frozen=True)
class Stage:
    """One comparison: images of ``side`` x ``side`` cut into ``parts`` x ``parts``, passing at ``threshold``."""

    side: int
    parts: int
    threshold: float


SIGNATURES = Stage(SIGNATURE_SIDE, 4, SIGNATURE_THRESHOLD)
PIXELS = Stage(PIXEL_SIDE, 16, PIXEL_THRESHOLD)


def _sources(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the linear interpolation taking one image's axis onto the other's under the hypotheses
    (``lo``, ``hi``) (any shape S): the other's [0, 1] shows this one's [lo, 1 - hi] (negative:
    beyond this one's edge). For each hypothesis and each of the other's ``n`` cells (shape S + (n,)):
    the two source cells, the weight of the second, and whether the hypothesis covers the cell."""
    centres = ((np.arange(n) + 0.5) / n).astype(np.float32)
    lo, hi = lo.astype(np.float32), hi.astype(np.float32)
    x = (lo[..., None] + centres * (1 - lo - hi)[..., None]) * n - 0.5
    covered = (x >= -0.5) & (x <= n - 0.5)
    np.clip(x, 0, n - 1, out=x)
    i0 = x.astype(np.int32)  # x >= 0: truncation is the floor
    return i0, np.minimum(i0 + 1, n - 1), x - i0, covered


_TOP = round(MAX_CUT / COARSE_STEP)
_CUTS = np.arange(-_TOP, _TOP + 1) * COARSE_STEP
_LO, _HI = (a.ravel() for a in np.meshgrid(_CUTS, _CUTS, indexing="ij"))  # the coarse hypotheses, (H,)


def _profile_moves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the coarse hypotheses as one (n, H * n) matrix (one product moves a profile under every
    hypothesis) and the cells every hypothesis covers (n,): profiles are compared there only, so that
    no hypothesis wins by leaving the hard cells out."""
    i0, i1, w, covered = _sources(_LO, _HI, n)
    h = np.arange(len(_LO))[:, None]
    m = np.zeros((len(_LO), n, n), dtype=np.float32)
    np.add.at(m, (h, np.arange(n)[None, :], i0), 1 - w)
    np.add.at(m, (h, np.arange(n)[None, :], i1), w)
    common = covered.all(axis=0)
    m *= common[None, :, None]
    return m.reshape(-1, n).T.copy(), common.astype(np.float32)


_MOVES, _COMMON = _profile_moves(SIGNATURE_SIDE)


def _correlations(pa: np.ndarray, moved: np.ndarray, common: np.ndarray) -> np.ndarray:
    """Return the correlation of profiles ``pa`` (P, n) with each of ``moved`` (P, K, n) over ``common`` cells."""
    count = float(common.sum())
    a = pa * common
    sa, saa = a.sum(axis=1)[:, None], (a * a).sum(axis=1)[:, None]
    moved = moved * common
    sm, smm = moved.sum(axis=2), (moved * moved).sum(axis=2)
    cov = np.matmul(moved, a[:, :, None])[:, :, 0] - sa * sm / count
    var = np.maximum(saa - sa * sa / count, 1e-6) * np.maximum(smm - sm * sm / count, 1e-6)
    return cov / np.sqrt(var)


def _coarse_axis(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Return, per pair, the coarse hypothesis (index into _LO/_HI) under which profile ``pb`` (P, n)
    correlates best with ``pa``."""
    moved = (pb @ _MOVES).reshape(len(pb), len(_LO), -1)
    return np.argmax(_correlations(pa, moved, _COMMON), axis=1)


def _fine_axis(pa: np.ndarray, pb: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, per pair, the (lo, hi) within ``_FINE_REACH`` coarse steps of (``lo``, ``hi``), in fine
    steps, under which profile ``pb`` correlates best with ``pa``."""
    k = round(_FINE_REACH * COARSE_STEP / FINE_STEP)
    d = np.arange(-k, k + 1) * FINE_STEP
    los = (lo[:, None, None] + d[None, :, None]).repeat(len(d), axis=2).reshape(len(lo), -1)
    his = (hi[:, None, None] + d[None, None, :]).repeat(len(d), axis=1).reshape(len(hi), -1)
    n = pa.shape[1]
    i0, i1, w, covered = _sources(los, his, n)  # (P, F, n)
    rows = np.arange(len(pb))[:, None, None]
    moved = pb[rows, i0] * (1 - w) + pb[rows, i1] * w
    reach = MAX_CUT + _FINE_REACH * COARSE_STEP  # cells every hypothesis within reach covers
    centres = (np.arange(n) + 0.5) / n
    common = ((centres > reach + 1 / n) & (centres < 1 - reach - 1 / n)).astype(np.float32)
    best = np.argmax(_correlations(pa, moved, common), axis=1)
    pick = np.arange(len(lo))
    return los[pick, best], his[pick, best]


def _moved(b: np.ndarray, x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``b`` (P, n, n) or (P, n, n, planes) resampled under the per-pair hypotheses ``x`` and ``y``
    ((lo, hi) each), and the mask (P, n, n) of the cells both images show."""
    n = b.shape[1]
    p = np.arange(len(b))[:, None]
    y0, y1, wy, cy = _sources(y[0], y[1], n)
    x0, x1, wx, cx = _sources(x[0], x[1], n)
    extra = (None,) * (b.ndim - 3)  # a plane axis broadcasts
    wy = wy[(slice(None), slice(None), None) + extra]
    rows = b[p, y0] * (1 - wy) + b[p, y1] * wy  # (P, n, n[, planes]): rows moved
    wx = wx[(slice(None), None, slice(None)) + extra]
    out = rows[p[:, :, None], np.arange(n)[None, :, None], x0[:, None, :]] * (1 - wx) + \
        rows[p[:, :, None], np.arange(n)[None, :, None], x1[:, None, :]] * wx
    return out, (cy[:, :, None] & cx[:, None, :]).astype(np.float32)


def _gradient(x: np.ndarray) -> np.ndarray:
    """Return each cell's largest absolute difference to a 4-neighbour."""
    g = np.zeros_like(x)
    d = np.abs(x[:, :, 1:] - x[:, :, :-1])
    g[:, :, :-1] = d
    np.maximum(g[:, :, 1:], d, out=g[:, :, 1:])
    d = np.abs(x[:, 1:, :] - x[:, :-1, :])
    np.maximum(g[:, :-1, :], d, out=g[:, :-1, :])
    np.maximum(g[:, 1:, :], d, out=g[:, 1:, :])
    return g


def _part_sums(x: np.ndarray, parts: int) -> np.ndarray:
    """Return the sums of ``x`` (P, n, n) over its ``parts`` x ``parts`` square parts (rows first: contiguous)."""
    p, n = x.shape[0], x.shape[1]
    rows = x.reshape(p, parts, n // parts, n).sum(axis=2)  # (P, parts, n)
    return rows.reshape(p, parts, parts, n // parts).sum(axis=3)


def _halved(x: np.ndarray) -> np.ndarray:
    """Return the 2x2 means of ``x`` (P, n, n): a plane at half resolution."""
    return (x[:, ::2, ::2] + x[:, 1::2, ::2] + x[:, ::2, 1::2] + x[:, 1::2, 1::2]) * 0.25


def _brightness_fitted(a: np.ndarray, moved: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return ``moved`` (P, n, n) with its brightness and contrast fitted to ``a``'s over the shown cells
    (least squares; the gain held between 0.5 and 2)."""
    count = np.maximum(mask.sum(axis=(1, 2)), 1)[:, None, None]
    ma = (a * mask).sum(axis=(1, 2))[:, None, None] / count
    mm = (moved * mask).sum(axis=(1, 2))[:, None, None] / count
    ca, cm = (a - ma) * mask, (moved - mm) * mask
    gain = np.clip((ca * cm).sum(axis=(1, 2)) / np.maximum((cm * cm).sum(axis=(1, 2)), 1e-3), 0.5, 2.0)
    return (moved - mm) * gain[:, None, None] + ma


def _part_scores(a: np.ndarray, moved: np.ndarray, mask: np.ndarray, parts: int) -> np.ndarray:
    """Return, per pair, the largest part RMS of the tolerance-scaled difference (see the module docstring)."""
    fitted = _brightness_fitted(a, moved, mask)
    ratio = _scaled_squares(a, fitted, np.maximum(_gradient(a), _gradient(fitted)), mask)
    return _worst_part(_part_sums(ratio, parts), _part_sums(mask, parts), a.shape[1] // parts)


def _scaled_squares(a: np.ndarray, fitted: np.ndarray, gradient: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return each shown cell's squared difference over its tolerance (``gradient`` is overwritten)."""
    gradient *= KAPPA
    gradient += EPS
    ratio = a - fitted
    ratio /= gradient
    ratio *= ratio
    ratio *= mask
    return ratio


def _worst_part(total: np.ndarray, cover: np.ndarray, t: int) -> np.ndarray:
    """Return, per pair, the largest part RMS from the parts' sums of squares and shown cells (P, parts, parts)."""
    rms = np.sqrt(total / np.maximum(cover, 1))
    rms[cover < _MIN_COVER * t * t] = 0.0  # a part mostly outside the shared frame says nothing
    return rms.reshape(len(total), -1).max(axis=1)


_SIGNATURE_BLOCK = 128  # pairs of signatures compared at once: their temporaries stay in the core's cache


def _resampling(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each coarse hypothesis' resampling as a matrix (H, n, n) (destination cell x source cell:
    ``W @ image`` moves the rows, ``image @ W.T`` the columns) and the cells it covers (H, n)."""
    i0, i1, w, covered = _sources(_LO, _HI, n)
    h = np.arange(len(_LO))[:, None]
    m = np.zeros((len(_LO), n, n), dtype=np.float32)
    np.add.at(m, (h, np.arange(n)[None, :], i0), 1 - w)
    np.add.at(m, (h, np.arange(n)[None, :], i1), w)
    return m, covered.astype(np.float32)


_RESAMPLE, _COVERED = _resampling(SIGNATURE_SIDE)
_RESAMPLE_T = np.ascontiguousarray(_RESAMPLE.transpose(0, 2, 1))


def _best_moves(pa: np.ndarray, pb: np.ndarray, of_b: np.ndarray) -> np.ndarray:
    """Return, per pair, the coarse hypothesis under which profile ``pb[of_b[k]]`` correlates best with
    ``pa[k]`` (``_coarse_axis``'s choice, the same sums): each ``pb`` (P, n) is moved under every
    hypothesis once, however many pairs it is in; the pairs then take ``_SIGNATURE_BLOCK`` at a time."""
    count = float(_COMMON.sum())
    a = pa * _COMMON
    sa, saa = a.sum(axis=1)[:, None], (a * a).sum(axis=1)[:, None]
    every = (pb @ _MOVES).reshape(len(pb), len(_LO), -1)  # exactly zero outside the common cells
    sm, smm = every.sum(axis=2), (every * every).sum(axis=2)
    best = np.empty(len(pa), dtype=np.intp)
    for start in range(0, len(pa), _SIGNATURE_BLOCK):
        part = slice(start, start + _SIGNATURE_BLOCK)
        b = of_b[part]
        cov = np.matmul(every[b], a[part, :, None])[:, :, 0] - sa[part] * sm[b] / count
        var = np.maximum(saa[part] - sa[part] * sa[part] / count, 1e-6) * np.maximum(smm[b] - sm[b] * sm[b] / count,
                                                                                     1e-6)
        best[part] = np.argmax(cov / np.sqrt(var), axis=1)
    return best


def _signature_part_scores(a: np.ndarray, moved: np.ndarray, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
    """``_part_scores`` of signatures, for a mask that is the product of the rows and the columns covered
    (``cy``, ``cx``: (P, n) of 0 and 1): its sums are products of theirs, and fewer temporaries."""
    p, n = a.shape[0], a.shape[1]
    parts = SIGNATURES.parts
    t = n // parts
    mask = cy[:, :, None] * cx[:, None, :]
    count = np.maximum(cy.sum(axis=1) * cx.sum(axis=1), 1)
    ma = (np.einsum("pij,pij->p", a, mask) / count)[:, None, None]
    mm = (np.einsum("pij,pij->p", moved, mask) / count)[:, None, None]
    ca = a - ma
    ca *= mask
    centred = moved - mm
    cm = centred * mask
    gain = np.clip(np.einsum("pij,pij->p", ca, cm) / np.maximum(np.einsum("pij,pij->p", cm, cm), 1e-3), 0.5, 2.0)
    centred *= gain[:, None, None]
    centred += ma
    fitted = centred
    # each cell's largest absolute difference to a 4-neighbour, in either image (_gradient of both, at once)
    g = np.empty_like(a)
    d = np.maximum(np.abs(a[:, :, 1:] - a[:, :, :-1]), np.abs(fitted[:, :, 1:] - fitted[:, :, :-1]))
    g[:, :, :-1] = d
    g[:, :, -1] = 0
    np.maximum(g[:, :, 1:], d, out=g[:, :, 1:])
    d = np.maximum(np.abs(a[:, 1:, :] - a[:, :-1, :]), np.abs(fitted[:, 1:, :] - fitted[:, :-1, :]))
    np.maximum(g[:, :-1, :], d, out=g[:, :-1, :])
    np.maximum(g[:, 1:, :], d, out=g[:, 1:, :])
    total = _scaled_squares(a, fitted, g, mask).reshape(p, parts, t, parts, t).sum(axis=(2, 4))
    cover = cy.reshape(p, parts, t).sum(axis=2)[:, :, None] * cx.reshape(p, parts, t).sum(axis=2)[:, None, :]
    return _worst_part(total, cover, t)


def signature_scores(a: np.ndarray, b: np.ndarray, ia: np.ndarray | None = None, ib: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Return each pair's signature-stage score and alignment, for signatures ``a``, ``b`` (P, 32, 32) uint8,
    or, given ``ia`` and ``ib``, for the pairs (``a[ia[k]]``, ``b[ib[k]]``) (gathered a block at a time:
    millions of pairs never sit in memory as signatures).

    The alignment is an (P, 4) array of (x lo, x hi, y lo, y hi) cuts, for the pixel stage to refine.
    Each axis' hypothesis is a resampling matrix: one image moved under both is two small matrix products.
    """
    count = len(a) if ia is None else len(ia)
    scores = np.empty(count, dtype=np.float32)
    cuts = np.empty((count, 4), dtype=np.float32)  # multiples of COARSE_STEP: exact enough
    if ia is None or ib is None:
        ia = ib = np.arange(count)
        order = ia
    else:  # pairs by their second image: a block's second images are few, each moved once
        order = np.argsort(ib, kind="stable")
    for start in range(0, count, _BLOCK):
        here = order[start:start + _BLOCK]
        rows, of_b = np.unique(ib[here], return_inverse=True)
        sa, sb = a[ia[here]].astype(np.float32), b[rows].astype(np.float32)
        hx = _best_moves(sa.mean(axis=1), sb.mean(axis=1), of_b)  # column profiles: the x axis
        hy = _best_moves(sa.mean(axis=2), sb.mean(axis=2), of_b)
        cuts[here] = np.stack([_LO[hx], _HI[hx], _LO[hy], _HI[hy]], axis=1)
        for at in range(0, len(here), _SIGNATURE_BLOCK):
            part = slice(at, at + _SIGNATURE_BLOCK)
            x, y = hx[part], hy[part]
            moved = _RESAMPLE[y] @ sb[of_b[part]] @ _RESAMPLE_T[x]
            scores[here[part]] = _signature_part_scores(sa[part], moved, _COVERED[y], _COVERED[x])
    return scores, cuts


def _span(lo: float, hi: float, n: int) -> tuple[int, int, float, float]:
    """Return the destination cells [d0, d1) that the hypothesis (lo, hi) covers, and the source span
    (in cells) they show."""
    scale = 1 - lo - hi
    d0 = min(max(int(np.ceil(-lo / scale * n - 1e-9)), 0), n)
    d1 = min(max(int(np.floor((1 - lo) / scale * n + 1e-9)), d0), n)
    return d0, d1, max((lo + d0 / n * scale) * n, 0.0), min((lo + d1 / n * scale) * n, float(n))


def _aligned(pixels: np.ndarray, x: tuple[float, float], y: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``pixels`` (n, n, 3) resampled (bilinear, in C) under the hypotheses ``x`` and ``y``,
    and the mask of the cells the hypotheses cover."""
    n = pixels.shape[0]
    x0, x1, sx0, sx1 = _span(x[0], x[1], n)
    y0, y1, sy0, sy1 = _span(y[0], y[1], n)
    out = np.zeros_like(pixels)
    mask = np.zeros((n, n), dtype=np.float32)
    if x1 > x0 and y1 > y0:
        img = Image.fromarray(pixels, "YCbCr")
        out[y0:y1, x0:x1] = np.asarray(img.resize((x1 - x0, y1 - y0), Image.BILINEAR, box=(sx0, sy0, sx1, sy1)))
        mask[y0:y1, x0:x1] = 1
    return out, mask


def pixel_scores(a: np.ndarray, b: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Return each pair's pixel-stage score, for YCbCr pixels ``a``, ``b`` (P, 128, 128, 3) uint8, from the
    signature stage's alignment ``cuts`` (refined here on the luma): the largest of the luma's score and
    the chroma planes' (at half resolution, as JPEG keeps them). Both images must have at least 128
    pixels a side (a smaller one holds too little detail to compare at this scale: its JPEG blocks
    alone differ from the larger copy's pixels).
    """
    out = np.empty(len(a), dtype=np.float64)
    block = max(_BLOCK // 16, 1)
    for start in range(0, len(a), block):
        pa, pb = a[start:start + block], b[start:start + block]
        ya, yb = pa[..., 0].astype(np.float32), pb[..., 0].astype(np.float32)
        c = cuts[start:start + block]
        x = _fine_axis(ya.mean(axis=1), yb.mean(axis=1), c[:, 0], c[:, 1])
        y = _fine_axis(ya.mean(axis=2), yb.mean(axis=2), c[:, 2], c[:, 3])
        moved, masks = zip(*(_aligned(pb[k], (x[0][k], x[1][k]), (y[0][k], y[1][k])) for k in range(len(pb))))
        moved, mask = np.stack(moved).astype(np.float32), np.stack(masks)
        worst = _part_scores(ya, moved[..., 0], mask, PIXELS.parts)
        # colour tells apart what luma alone cannot (a brown deer on green grass)
        small = (_halved(mask) == 1).astype(np.float32)  # a half-size cell all four of whose cells are shown
        for plane in (1, 2):
            ca, cb = _halved(pa[..., plane].astype(np.float32)), _halved(moved[..., plane])
            worst = np.maximum(worst, _part_scores(ca, cb, small, PIXELS.parts))
        out[start:start + block] = worst
    return out


def signature_of_pixels(pixels: np.ndarray) -> np.ndarray:
    """Return the 32x32 signature of (128, 128, 3) YCbCr pixels (for rows fetched before signatures existed)."""
    f = PIXEL_SIDE // SIGNATURE_SIDE
    grid = pixels[..., 0].astype(np.float64).reshape(SIGNATURE_SIDE, f, SIGNATURE_SIDE, f).mean(axis=(1, 3))
    return np.clip(np.rint(grid), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# the third stage: the 256-pixel files, aligned to a twentieth of a pixel, compared at low frequency

DETAIL_SIDE = 256  # the third stage's pixels, decoded from the files
DETAIL_THRESHOLD = 1.1  # the largest part score of a copy (bench/dedupe.py, bench/dedupe_heldout.py)
_DETAIL_SIGMA = 2.0  # the residual and its tolerance are blurred by this (pixels at DETAIL_SIDE)
_DETAIL_EPS, _DETAIL_KAPPA = 2.0, 0.35
_DETAIL_PARTS = 32
_DETAIL = Stage(DETAIL_SIDE, _DETAIL_PARTS, DETAIL_THRESHOLD)


def _blur(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Return ``x`` (..., n, n) blurred by a Gaussian on both axes, the image mirrored beyond its edges
    (``d c b a | a b c d | d c b a``, as ``scipy.ndimage.gaussian_filter``): one shifted sum per tap."""
    reach = int(truncate * sigma + 0.5)
    offsets = np.arange(-reach, reach + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    out = x.astype(np.float32)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (reach, reach)
        padded = np.pad(out, pad, mode="symmetric")
        n = out.shape[axis]
        total = np.zeros_like(out)
        for k, weight in enumerate(kernel.tolist()):
            total += weight * (padded[..., k:k + n, :] if axis == -2 else padded[..., k:k + n])
        out = total
    return out


def _central_gradients(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.zeros_like(b), np.zeros_like(b)
    gx[:, 1:-1] = (b[:, 2:] - b[:, :-2]) * 0.5
    gy[1:-1] = (b[2:] - b[:-2]) * 0.5
    return gx, gy


def _refined(pa: np.ndarray, pb: np.ndarray, x: tuple[float, float], y: tuple[float, float],
             steps: int = 6, sigmas: tuple[float, ...] = (1.5, 1.0)) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the cuts under which ``pb`` (n, n, 3) best matches ``pa`` in luma, refined from ``x`` and
    ``y`` by Gauss-Newton (Lucas-Kanade) on brightness gain and offset, and shift and scale per axis, on
    blurred luma: a copy lines up to a twentieth of a pixel, where profile correlation leaves a third."""
    n = pa.shape[0]
    c = (n - 1) / 2
    ramp = np.arange(n, dtype=np.float32) - c
    lox, hix, loy, hiy = float(x[0]), float(x[1]), float(y[0]), float(y[1])
    blurred = {s: _blur(pa[..., 0].astype(np.float32), s) for s in set(sigmas)}
    for step in range(steps):
        s = sigmas[min(step, len(sigmas) - 1)]
        moved, mask = _aligned(pb, (lox, hix), (loy, hiy))
        b = _blur(moved[..., 0].astype(np.float32), s)
        bx, by = _central_gradients(b)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows) or not len(cols):
            break
        inset = 3 + int(2 * s)  # the shown rectangle, less what the blur and the gradients reach beyond it
        r0, r1, c0, c1 = rows[0] + inset, rows[-1] + 1 - inset, cols[0] + inset, cols[-1] + 1 - inset
        if r1 - r0 < n // 4 or c1 - c0 < n // 4:
            break
        part = (slice(r0, r1), slice(c0, c1))
        a_, b_, bx_, by_ = blurred[s][part].ravel(), b[part].ravel(), bx[part].ravel(), by[part].ravel()
        xs = np.broadcast_to(ramp[None, c0:c1], (r1 - r0, c1 - c0)).ravel()
        ys = np.broadcast_to(ramp[r0:r1, None], (r1 - r0, c1 - c0)).ravel()
        design = np.stack([b_, np.ones_like(b_), bx_, bx_ * xs, by_, by_ * ys], axis=1).astype(np.float64)
        coef = np.linalg.solve(design.T @ design + 1e-6 * np.eye(6), design.T @ a_)
        gain = coef[0] if abs(coef[0]) > 0.2 else 1.0
        tx, sx, ty, sy = (float(v) for v in coef[2:] / gain)
        sx, sy = float(np.clip(sx, -0.02, 0.02)), float(np.clip(sy, -0.02, 0.02))
        tx, ty = float(np.clip(tx, -3, 3)), float(np.clip(ty, -3, 3))
        (lox, hix), (loy, hiy) = _moved_cuts(lox, hix, tx, sx, c, n), _moved_cuts(loy, hiy, ty, sy, c, n)
        if max(abs(tx), abs(ty), abs(sx) * c, abs(sy) * c) < 0.03:
            break
    return (lox, hix), (loy, hiy)


def _moved_cuts(lo: float, hi: float, shift: float, scale: float, centre: float, n: int) -> tuple[float, float]:
    """Return one axis' cuts (lo, hi) after the image they show is shifted by ``shift`` cells and scaled by
    ``1 + scale`` about the ``centre`` cell (of ``n``)."""
    width = 1 - lo - hi
    new_lo = lo + width * (shift - scale * centre) / n
    return new_lo, 1 - new_lo - width * (1 + scale)


def _low_frequency_scores(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return, per pair, the largest part RMS of the blurred residual over its blurred tolerance, for
    luma ``a`` and aligned ``b`` (P, n, n) float32 and the mask of the shown cells."""
    fitted = _brightness_fitted(a, b, mask)
    gradient = np.maximum(_gradient(a), _gradient(fitted))
    weight = _blur(mask, _DETAIL_SIGMA, 2.5)
    shown = np.maximum(weight, 1e-3)
    residual = _blur((a - fitted) * mask, _DETAIL_SIGMA, 2.5) / shown
    tolerance = _blur(gradient * mask, _DETAIL_SIGMA, 2.5) / shown
    inside = (weight > 0.999).astype(np.float32)  # cells whose whole blur lies in the shown part
    ratio = (residual / (_DETAIL_EPS + _DETAIL_KAPPA * tolerance)) ** 2 * inside
    return _worst_part(_part_sums(ratio, _DETAIL.parts), _part_sums(inside, _DETAIL.parts), a.shape[1] // _DETAIL.parts)


def detail_scores(a: np.ndarray, b: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Return each pair's third-stage score, for YCbCr pixels ``a``, ``b`` (P, 256, 256, 3) uint8 of pairs
    that passed the pixel stage, from the signature stage's ``cuts`` (P, 4).

    The pixel stage's alignment (profiles correlated in steps of 0.3125 %) is often a third of a pixel
    off, so a copy's edges leave a residual everywhere, and the tolerance that forgives it forgives a
    dark animal at dusk too. Here the alignment is refined to a twentieth of a pixel (:func:`_refined`),
    and the residual and its tolerance are both blurred (a Gaussian of two pixels): what resampling and
    JPEG leave near the finest scale (labels, barcodes, grass) averages out; an animal elsewhere, another
    wing, does not. Both images must have at least 256 pixels a side.
    """
    out = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), 64):
        pa, pb, c = a[start:start + 64], b[start:start + 64], cuts[start:start + 64]
        ya, yb = _halved(pa[..., 0].astype(np.float32)), _halved(pb[..., 0].astype(np.float32))
        fx = _fine_axis(ya.mean(axis=1), yb.mean(axis=1), c[:, 0], c[:, 1])
        fy = _fine_axis(ya.mean(axis=2), yb.mean(axis=2), c[:, 2], c[:, 3])
        moved, masks = [], []
        for k in range(len(pa)):
            x, y = _refined(pa[k], pb[k], (fx[0][k], fx[1][k]), (fy[0][k], fy[1][k]))
            m, mask = _aligned(pb[k], x, y)
            moved.append(m[..., 0])
            masks.append(mask)
        out[start:start + 64] = _low_frequency_scores(pa[..., 0].astype(np.float32),
                                                      np.stack(moved).astype(np.float32), np.stack(masks))
    return out
