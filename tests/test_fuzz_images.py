"""Fuzzing the image path: damaged JPEG, PNG, WebP, GIF and TIFF bodies through a real worker process.

Every body ends with an outcome (the image's measurements, or a failure kind), never a
crash of the fetch, and a file is written only for a body that decodes: the file a
worker leaves at its path is what the writer renames to the final path.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gbifxdl.fetch import image_processes
from gbifxdl.fetch.image_types import ImageFault, Processed, ProcessOptions
from gbifxdl.fetch.settings import FAILURE_KINDS


def _seed(fmt: str) -> bytes:
    rng = np.random.default_rng(len(fmt))
    y, x = np.mgrid[0:40, 0:56]
    pixels = np.stack([x * 4, y * 6, (x + y) * 2], -1).astype(np.uint8) + rng.integers(0, 20, (40, 56, 3), np.uint8)
    img = Image.fromarray(pixels)
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=80)
    elif fmt == "jpeg-progressive":
        img.save(buf, "JPEG", quality=80, progressive=True)
    elif fmt == "png":
        img.convert("RGBA").save(buf, "PNG")
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=70)
    elif fmt == "gif":
        img.convert("P").save(buf, "GIF")
    else:  # TIFF: LZW (libtiff's "Using code not yet in table" on damage), deflate, none
        img.save(buf, "TIFF", compression=fmt.split("-")[1])
    return buf.getvalue()


FORMATS = ("jpeg", "jpeg-progressive", "png", "webp", "gif", "tiff-tiff_lzw", "tiff-tiff_adobe_deflate", "tiff-raw")
SEEDS = {fmt: _seed(fmt) for fmt in FORMATS}
_SIGNATURE = 12  # bytes naming the format (RIFF....WEBP is the longest)


@st.composite
def damaged(draw: st.DrawFn, fmt: str) -> bytes:
    """Return the seed of ``fmt`` truncated, bit-flipped, or spliced with another image or noise."""
    data = bytearray(SEEDS[fmt])
    # damage past the first bytes: a wrong signature is only ever `not_image` (tested apart)
    first = _SIGNATURE
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["truncate", "flip", "flip", "splice", "noise"]))
        if how == "truncate":
            del data[draw(st.integers(first, max(first, len(data) - 1))):]
        elif how == "flip" and len(data) > first:
            for _ in range(draw(st.integers(1, 8))):
                pos = draw(st.integers(first, len(data) - 1))
                data[pos] ^= 1 << draw(st.integers(0, 7))
        elif how == "splice":
            other = SEEDS[draw(st.sampled_from(FORMATS))]
            start = draw(st.integers(first, max(first, len(data))))
            cut = draw(st.integers(0, len(other)))
            data[start:] = other[cut:]
        else:
            start = draw(st.integers(first, max(first, len(data))))
            data[start:start + draw(st.integers(0, 64))] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


class _Pool:
    """One real worker process and the event loop its replies arrive on."""

    def __init__(self, options: ProcessOptions, log: Path) -> None:
        self.loop = asyncio.new_event_loop()

        async def start() -> image_processes.ImageProcessPool:
            return image_processes.ImageProcessPool(1, options, log)  # decoders' warnings go there, as in a fetch

        self.pool = self.loop.run_until_complete(start())

    def process(self, path: Path, body: bytes) -> Any:
        """Return the worker's result for ``body``: measurements, or the exception it gave."""
        try:
            return self.loop.run_until_complete(self.pool.process(str(path), [body]))
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            return exc

    def close(self) -> None:
        self.pool.shutdown()
        self.loop.close()


# kept originals (validated by a DCT-scaled decode) and re-encoded at a small size; a low
# pixel limit keeps a flipped size field from allocating gigabytes
OPTIONS = {"keep": ProcessOptions(max_pixels=4_000_000), "resize": ProcessOptions(resize=24, reencode=True,
                                                                                 max_pixels=4_000_000)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", params=sorted(OPTIONS))
def pool(request: pytest.FixtureRequest, folder: Path) -> Iterator[tuple[str, _Pool]]:
    running = _Pool(OPTIONS[request.param], folder / "workers.log")
    yield request.param, running
    running.close()


def test_the_seeds_themselves_come_out_ok(pool: tuple[str, _Pool], folder: Path) -> None:
    for fmt, body in SEEDS.items():
        result = pool[1].process(folder / f"seed-{fmt}", body)
        assert isinstance(result, Processed), (fmt, result)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_damaged_body_ends_with_an_outcome_and_only_decodable_files_are_written(
        pool: tuple[str, _Pool], folder: Path, fmt: str) -> None:
    mode, running = pool
    counter = iter(range(10**9))

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=damaged(fmt))
    def check(body: bytes) -> None:
        path = folder / f"{mode}-{fmt}-{next(counter)}"
        result = running.process(path, body)
        if isinstance(result, Processed):
            written = path.read_bytes()
            if mode == "keep":
                assert written == body
            img = Image.open(io.BytesIO(written))
            img.load()  # decodes: a file that would sit at a final path is a real image
            assert (result.width, result.height) in (img.size, img.size[::-1])
            path.unlink()
        else:
            # a refused body is an outcome, and leaves no file
            assert isinstance(result, ImageFault | image_processes.WorkerDied), repr(result)
            if isinstance(result, ImageFault):
                assert result.kind in FAILURE_KINDS and result.message
            assert not path.exists()

    check()
