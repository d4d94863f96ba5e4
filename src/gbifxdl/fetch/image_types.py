"""What the image workers are given and give back: plain values, light to import.

The event loop's process imports only this; the imaging libraries (numpy, Pillow,
simplejpeg) load in the workers alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessOptions:
    """What to do with each image (picklable, sent to the workers)."""

    resize: int | None = None
    resize_mode: str = "longest"
    reencode: bool = False
    jpeg_quality: int = 95
    max_pixels: int = 178_956_970


@dataclass(frozen=True)
class Processed:
    """The measurements of one written image."""

    ext: str
    orig_width: int
    orig_height: int
    width: int
    height: int
    bytes: int
    sha256: str
    pixel_hash: str | None     # None when only headers were checked
    phash: int | None


class ImageFault(Exception):
    """The bytes are not a usable image; ``kind`` is the outcome to record."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message
