"""The look-alike collections of gbifxdl.testing.lookalike: deterministic, distinct, well-formed, true copies."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gbifxdl.testing import lookalike

MAKERS = {"herbarium": lookalike.herbarium_sheet, "pinned": lookalike.pinned_insect,
          "camera_trap": lookalike.camera_trap_frame}


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    img.load()
    return img


def _size_ok(kind: str, size: tuple[int, int]) -> bool:
    w, h = size
    if kind == "herbarium":  # portrait, about 2:3, 1,000-1,500 px tall
        return 1000 <= h <= 1500 and abs(w / h - 2 / 3) < 0.01
    return (w, h) == ((1200, 900) if kind == "pinned" else (1280, 960))


def test_kinds() -> None:
    assert lookalike.KINDS == tuple(MAKERS)


@pytest.mark.parametrize("kind", lookalike.KINDS)
def test_deterministic_distinct_and_well_formed(kind: str) -> None:
    make = MAKERS[kind]
    a, b, again = make(1, 0), make(2, 0), make(1, 0)
    assert a == again  # the same seed gives the same bytes
    assert a != b
    ia, ib = _open(a), _open(b)
    assert ia.mode == "RGB" and _size_ok(kind, ia.size)
    assert ia.size == ib.size  # one collection (site), one layout
    pa, pb = (np.asarray(i.convert("L"), dtype=np.int16) for i in (ia, ib))
    # different specimens differ in content, not just in noise ...
    assert np.mean(np.abs(pa - pb) > 40) > 0.005
    # ... yet share the collection's look: the same ground at low resolution, on average
    small = [np.asarray(i.convert("L").resize((8, 8), Image.BOX), dtype=float) for i in (ia, ib)]
    assert np.median(np.abs(small[0] - small[1])) < 25
    # another collection (site) looks different
    assert make(1, 1) != a


@pytest.mark.parametrize("kind", lookalike.KINDS)
def test_collections_differ(kind: str) -> None:
    one, other = (np.asarray(_open(MAKERS[kind](5, c)).convert("RGB").resize((64, 48), Image.BOX), dtype=float)
                  for c in (0, 1))
    assert np.abs(one - other).mean() > 3


def test_copies() -> None:
    original = lookalike.pinned_insect(7, 0)
    made = lookalike.copies(original, 7)
    assert made == lookalike.copies(original, 7) and made != lookalike.copies(original, 8)
    assert len(made) == 3 and len(set(made)) == 3 and original not in made
    w, h = _open(original).size
    resolution, quality, cropped = (_open(c).size for c in made)
    assert 500 <= max(resolution) <= 1000
    assert abs(resolution[0] / resolution[1] - w / h) < 0.01
    assert 0.8 * max(w, h) - 1 <= max(quality) <= max(w, h)
    assert abs(quality[0] / quality[1] - w / h) < 0.01
    assert 600 <= max(cropped) <= 1200


def test_profile_copies_are_the_same_photo_paler() -> None:
    original = lookalike.pinned_insect(1, 0)
    made = lookalike.profile_copies(original, 3)
    assert made == lookalike.profile_copies(original, 3) and len(made) == 2
    rgb = [np.asarray(_open(data).convert("RGB"), dtype=float) for data in [original] + made]
    assert all(x.shape == rgb[0].shape for x in rgb)
    colour = [x.std(axis=2).mean() for x in rgb]  # how far from grey: both copies paler
    assert colour[0] > max(colour[1:]) + 0.5
    grey = [x.mean(axis=2) for x in rgb]  # the same picture: its light and dark where they were
    assert all(np.corrcoef(grey[0].ravel(), g.ravel())[0, 1] > 0.99 for g in grey[1:])


def _grid(data: bytes) -> np.ndarray:
    return np.asarray(_open(data).convert("L").resize((16, 12), Image.BOX), dtype=float)


def test_collection_ids_and_copy_placement() -> None:
    items = lookalike.collection("pinned", 9, seed=4, copy_every=4)
    assert items == lookalike.collection("pinned", 9, seed=4, copy_every=4)
    ids = [p for _, p in items]
    assert ids == [0, 1, 2, 2, 3, 4, 5, 5, 6]  # indices 3 and 7 are copies of the image before them
    datas = [d for d, _ in items]
    assert len(set(datas)) == len(datas)
    originals = [i for i in range(9) if i not in (3, 7)]
    assert all(_open(datas[i]).size == (1200, 900) for i in originals)  # the generator's own photos
    for i in (3, 7):
        longest = max(_open(datas[i]).size)
        assert 500 <= longest <= 1200
        # of all the collection's photos, the copy looks most like the one before it
        diffs = {j: np.abs(_grid(datas[i]) - _grid(datas[j])).mean() for j in originals}
        assert min(diffs, key=diffs.get) == i - 1


def test_collection_without_copies_and_errors() -> None:
    items = lookalike.collection("herbarium", 3, seed=1, copy_every=0)
    assert [p for _, p in items] == [0, 1, 2]
    assert len({d for d, _ in items}) == 3
    assert lookalike.collection("pinned", 0) == []
    with pytest.raises(ValueError):
        lookalike.collection("fungi", 2)
    with pytest.raises(ValueError):
        lookalike.collection("pinned", 2, copy_every=1)
    with pytest.raises(ValueError):
        lookalike.pinned_insect(-1)
