"""The signature stage's faster path gives the scores of the straightforward one, and the hash stage's
compacted pair set and skipped re-check keep every pair (speed itself is shown by bench/curate_scale.py)."""

from __future__ import annotations

import numpy as np

from gbifxdl.curate import _lsh, _near, _pixels


def _straightforward(sa: np.ndarray, sb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The signature stage as first written: every pair moved and compared on its own."""
    sa, sb = sa.astype(np.float32), sb.astype(np.float32)
    hx = _pixels._coarse_axis(sa.mean(axis=1), sb.mean(axis=1))
    hy = _pixels._coarse_axis(sa.mean(axis=2), sb.mean(axis=2))
    moved, mask = _pixels._moved(sb, (_pixels._LO[hx], _pixels._HI[hx]), (_pixels._LO[hy], _pixels._HI[hy]))
    return _pixels._part_scores(sa, moved, mask, _pixels.SIGNATURES.parts), np.stack([hx, hy], axis=1)


def _signatures(rng: np.random.Generator, m: int) -> np.ndarray:
    grid = rng.integers(0, 256, (m, 8, 8)).repeat(4, axis=1).repeat(4, axis=2)
    return np.clip(grid + rng.integers(-3, 4, grid.shape), 0, 255).astype(np.uint8)


def _cropped(sig: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``sig`` with a few percent cut off some sides, back at 32 x 32, with noise."""
    from PIL import Image

    img = Image.fromarray(sig).resize((320, 320), Image.BILINEAR)
    cut = rng.integers(0, 13, 4)
    img = img.crop((int(cut[0]), int(cut[1]), 320 - int(cut[2]), 320 - int(cut[3]))).resize((32, 32), Image.BOX)
    return np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-2, 3, (32, 32)), 0, 255).astype(np.uint8)


def test_signature_scores_are_those_of_the_straightforward_stage() -> None:
    rng = np.random.default_rng(3)
    sigs = _signatures(rng, 60)
    copies = np.stack([_cropped(s, rng) for s in sigs[:30]])
    every = np.concatenate([sigs, copies])
    ia = np.concatenate([np.arange(30), rng.integers(0, 60, 300)])  # copies, then look-alikes at random
    ib = np.concatenate([np.arange(60, 90), rng.integers(0, 90, 300)])
    scores, steps = _near._signature_scores(every, ia, ib)
    cuts = _near._unpacked(steps)
    expected, hypotheses = _straightforward(every[ia], every[ib])
    hx, hy = hypotheses[:, 0], hypotheses[:, 1]
    same = (np.stack([_pixels._LO[hx], _pixels._HI[hx], _pixels._LO[hy], _pixels._HI[hy]], axis=1
                     ).astype(np.float32) == cuts).all(axis=1)
    assert same.mean() > 0.98  # a near tie of two alignments may fall either way (float rounding)
    np.testing.assert_allclose(scores[same], expected[same], rtol=1e-4, atol=1e-4)
    assert np.median(scores[:30]) < np.median(scores[30:])  # copies score lower than other pairs


def test_the_pair_set_keeps_every_pair_once_across_many_compactions(monkeypatch) -> None:
    monkeypatch.setattr(_lsh._Pairs, "least", 1 << 12)  # compactions every few parts, on small parts
    rng = np.random.default_rng(0)
    found = _lsh._Pairs()
    sent = []
    for _ in range(40):
        part = rng.integers(0, 50_000, 3_000).astype(np.int64)
        sent.append(part)
        found.append(part)
    assert np.array_equal(found.unique(), np.unique(np.concatenate(sent)))
    assert not _lsh._Pairs()
