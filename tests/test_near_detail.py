"""The third stage of near-duplicate confirmation: the 256-pixel files, aligned to a twentieth of a pixel.

bench/dedupe.py's 64,000 images held 45 false matches that passed the signatures and the
128-pixel comparison: camera-trap frames of one site at dusk (an animal, dark on dark, somewhere
else) and pinned insects. Here one of them, made again by ``lookalike`` as the bench made it and
written by fetch's resize route, must fail the third stage, and true copies must pass it.
"""

from __future__ import annotations

import numpy as np
import pytest

from gbifxdl.curate import _near, _pixels
from gbifxdl.curate._images import pixels_of
from gbifxdl.fetch.image_types import ProcessOptions
from gbifxdl.fetch.process import process_bytes
from gbifxdl.testing import lookalike

OPTIONS = ProcessOptions(resize=512, reencode=True, jpeg_quality=95)  # as bench/dedupe.py fetches


def _written(original: bytes) -> tuple[bytes, np.ndarray]:
    data, measured = process_bytes(original, OPTIONS)
    return data, np.frombuffer(bytes.fromhex(measured.signature), np.uint8).reshape(32, 32)


@pytest.fixture(scope="module")
def images() -> list[tuple[bytes, np.ndarray]]:
    # two dusk frames of one camera site (bench/dedupe.py's photos 13687 and 13719, seed 0: site 171; the
    # second as its copy at another resolution, one of the bench's false matches), then the first frame's
    # three copies as portals make them
    first = lookalike.camera_trap_frame(13687, 171)
    other = lookalike.copies(lookalike.camera_trap_frame(13719, 171), 13719)[0]
    return [_written(first), _written(other)] + [_written(c) for c in lookalike.copies(first, 13687)]


def _decide(images: list[tuple[bytes, np.ndarray]], pairs: list[tuple[int, int]], third: bool):
    sigs = np.stack([s for _, s in images])
    small = [pixels_of(d, _pixels.PIXEL_SIDE) for d, _ in images]
    large = [pixels_of(d, _pixels.DETAIL_SIDE) for d, _ in images]
    ia, ib = np.array([p for p, _ in pairs]), np.array([q for _, q in pairs])
    return _near.decide(ia, ib, sigs, np.ones(len(images), bool), small.__getitem__,
                        detail=large.__getitem__ if third else None)


def test_frames_of_one_site_that_pass_the_128_pixel_stage_fail_the_third(images) -> None:
    keep, evidence, scores = _decide(images, [(0, 1)], third=False)
    assert keep.all(), "the hard case: without the third stage this pair of different frames is a match"
    keep, evidence, scores = _decide(images, [(0, 1)], third=True)
    assert not keep.any() and evidence.rejected_by_detail == 1
    assert scores[0, 2] > _pixels.DETAIL_THRESHOLD


def test_true_copies_pass_all_three_stages(images) -> None:
    pairs = [(0, 2), (0, 3), (0, 4), (2, 3), (2, 4), (3, 4)]  # the frame and its copies, every pair
    keep, evidence, scores = _decide(images, pairs, third=True)
    assert keep.all(), scores
    assert evidence.confirmed_by_pixels == len(pairs) and evidence.rejected_by_detail == 0
    assert (scores[:, 2] <= _pixels.DETAIL_THRESHOLD).all()


def test_an_image_under_256_pixels_keeps_the_second_stage_decision(images) -> None:
    sigs = np.stack([s for _, s in images])
    small = [pixels_of(d, _pixels.PIXEL_SIDE) for d, _ in images]
    tiny = [(p, 200) for p, _ in (pixels_of(d, _pixels.DETAIL_SIDE) for d, _ in images)]  # as if 200 px a side
    keep, evidence, scores = _near.decide(np.array([0]), np.array([1]), sigs, np.ones(len(images), bool),
                                          small.__getitem__, detail=tiny.__getitem__)
    assert keep.all() and np.isnan(scores[0, 2]) and evidence.confirmed_by_pixels == 1
