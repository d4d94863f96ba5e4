"""Kept originals checked by their headers only (``validate="header"``): no pixel decode.

The body is hashed and written chunk by chunk as it arrived (never joined: a join is a
copy of it all), in a thread: sha256 and the write release the GIL, so they overlap the
event loop. ``pixel_hash`` and ``phash`` stay null in this mode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import simplejpeg
from PIL import Image

from gbifxdl._io import write_file
from gbifxdl.fetch.process import (_EXTENSIONS, ImageFault, Processed, ProcessOptions, _check_pixels, _image_kind,
                                   _orientation, _oriented, sniff)


def keep_to_file(chunks: list[bytes], max_pixels: int, tmp_path: str) -> Processed:
    """Return the measurements of an image kept as is (headers checked), written to ``tmp_path``.

    ``chunks`` is the body as it arrived: it is hashed and written chunk by chunk, never
    joined (a join is a copy of the whole body). Meant for a thread: sha256 and the
    write release the GIL, so they overlap the event loop.
    """
    head = _join_upto(chunks, _HEAD)
    if sniff(head) != "JPEG":
        head = b"".join(chunks)  # Pillow may read anywhere in other formats
    try:
        processed = _inspect(head, _tail(chunks), max_pixels)
    except ImageFault:
        if len(head) == sum(map(len, chunks)):
            raise
        # a header bigger than our head (huge ICC or EXIF block), or padding after the
        # end marker longer than our tail: look at it all
        whole = b"".join(chunks)
        processed = _inspect(whole, whole, max_pixels)
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    write_file(tmp_path, chunks)
    return dataclasses.replace(processed, bytes=sum(map(len, chunks)), sha256=sha.hexdigest())


def inspect_bytes(data: bytes, max_pixels: int) -> Processed:
    """Return the measurements of an image kept as is, checking its headers and end only.

    The fast validation (no pixel decode, so no ``pixel_hash`` nor ``phash``): the format
    is recognised, the size is read and within ``max_pixels``, and a JPEG or PNG is not
    cut short. Raises :class:`ImageFault`.
    """
    processed = _inspect(data, data, max_pixels)
    return dataclasses.replace(processed, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


# bytes of a kept JPEG read for its header (SOF and EXIF orientation come before the pixels)
_HEAD = 1 << 17


def _join_upto(chunks: list[bytes], n: int) -> bytes:
    """Return the first ``n`` bytes (or all) of the chunks, joining only what is needed."""
    if len(chunks[0]) >= n or len(chunks) == 1:
        return chunks[0]
    out, size = [], 0
    for chunk in chunks:
        out.append(chunk)
        size += len(chunk)
        if size >= n:
            break
    return b"".join(out)


def _tail(chunks: list[bytes]) -> bytes:
    last = chunks[-1]
    return last[-64:] if len(last) >= 64 or len(chunks) == 1 else (chunks[-2][-64:] + last)[-64:]


def _inspect(data: bytes, tail: bytes, max_pixels: int) -> Processed:
    """Return the measurements read from the headers in ``data`` (the start of the body or all
    of it) and its end ``tail`` (last bytes, or all); ``bytes`` and ``sha256`` are left for the caller."""
    kind = _image_kind(data)
    try:
        if kind == "JPEG":
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
            orientation = _orientation(data)
            complete = tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
        else:
            img = Image.open(io.BytesIO(data))
            (width, height), kind = img.size, img.format or kind
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            complete = kind != "PNG" or b"IEND" in tail[-32:]
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise ImageFault("corrupt", f"cannot read the image header: {exc}") from None
    if not complete:
        raise ImageFault("corrupt", f"the {kind} file is cut short (no end marker)")
    _check_pixels(width, height, ProcessOptions(max_pixels=max_pixels))
    ow, oh = _oriented(width, height, orientation)
    return Processed(ext=_EXTENSIONS.get(kind, kind.lower()), orig_width=ow, orig_height=oh, width=ow, height=oh,
                     bytes=0, sha256="", pixel_hash=None, phash=None)
