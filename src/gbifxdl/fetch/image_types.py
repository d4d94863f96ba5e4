"""What the image processes are given and give back: plain values, light to import.

The event loop's process imports only this; the imaging libraries (numpy, Pillow,
simplejpeg) load in the workers alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from gbifxdl.errors import FetchError


@dataclass(frozen=True)
class ProcessOptions:
    """What to do with each image (picklable, sent to the workers)."""

    resize: int | None = None
    resize_mode: str = "longest"
    reencode: bool = False
    jpeg_quality: int = 95
    max_pixels: int = 178_956_970
    pixel_hash: bool = False   # kept originals: also hash the full-resolution pixels


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
    pixel_hash: str | None     # None unless asked for (kept originals, ``pixel_hash=True``)
    phash: int | None
    chroma_hash: int | None = None  # the 128-bit colour hash confirming phash (None: grey), see fetch.hashing
    signature: str | None = None  # the 32x32 greyscale grid confirming a hash match, as hex (see fetch.hashing)


class ImageFault(Exception):
    """The bytes are not a usable image; ``kind`` is the outcome to record."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message


class WorkerDied(Exception):
    """The worker process died while processing this image (its outcome is ``worker_died``)."""


# the longest error message kept for one image (an exception's text can be a whole buffer)
_MAX_MESSAGE = 300


def unexpected_fault(exc: BaseException) -> ImageFault:
    """Return the ``process_error`` outcome of an exception that processing did not expect.

    At tens of millions of images every decoder bug is met once: it becomes that image's
    outcome (journalled like any other), never the end of the fetch.
    """
    text = str(exc)
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    return ImageFault("process_error", f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def fault_of(exc: BaseException) -> ImageFault:
    """Return the outcome of an exception raised while processing one image.

    Raises :class:`FetchError` for a file-system error (disk full, no permission): every
    image after it would fail alike, so the fetch stops there and a resume goes on.
    """
    if isinstance(exc, ImageFault):
        return exc
    if isinstance(exc, WorkerDied):
        return ImageFault("worker_died", str(exc))
    if isinstance(exc, OSError) and exc.errno is not None:
        raise FetchError(f"cannot write an image: {exc}; free some space (or fix the permissions) "
                         "and run the same command again to resume") from None
    return unexpected_fault(exc)
