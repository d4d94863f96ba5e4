"""The pipes between the event loop and an image worker: framed messages and shared-memory slots."""

from __future__ import annotations

import marshal
import mmap
import os
import struct
from typing import Any

# a slot keeps the pages of the bodies written to it; a body past this size gives them back
_KEEP_BYTES = 16 << 20
_MIN_BYTES = 1 << 20
_LENGTH = struct.Struct("!I")


class Channel:
    """Messages over a pipe: marshalled tuples of plain values, each behind its length.

    A tenth of the cost of pickling, and one system call per message sent; a receive
    reads all that has arrived at once (``Connection.recv`` reads twice per message).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def send(self, message: tuple[Any, ...]) -> None:
        payload = marshal.dumps(message)
        view = memoryview(_LENGTH.pack(len(payload)) + payload)
        while view:
            view = view[os.write(self.fd, view):]

    def receive(self) -> list[Any]:
        """Return the messages complete after one read (none when only part of one came)."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            raise EOFError("the other end closed the pipe")
        buffer = self.buffer
        buffer += data
        messages, pos = [], 0
        while len(buffer) - pos >= 4:
            end = pos + 4 + _LENGTH.unpack_from(buffer, pos)[0]
            if end > len(buffer):
                break
            messages.append(marshal.loads(buffer[pos + 4:end]))
            pos = end
        del buffer[:pos]
        return messages


class Slot:
    """The event loop's end of one shared-memory slot: a memfd, mapped, grown as needed."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("gbifxdl-body")
        self.map: mmap.mmap | None = None

    def put(self, chunks: list[bytes], size: int) -> None:
        """Copy the body (``chunks``, ``size`` bytes) to the start of the slot."""
        if self.map is None or len(self.map) < size:
            self._map(max(_MIN_BYTES, 1 << (size - 1).bit_length()))
        pos = 0
        for chunk in chunks:
            end = pos + len(chunk)
            self.map[pos:end] = chunk  # type: ignore[index]
            pos = end

    def release(self, size: int) -> None:
        """The worker is done with a body of ``size`` bytes: give back the pages of a big one."""
        if size > _KEEP_BYTES:
            self._map(_MIN_BYTES)

    def _map(self, capacity: int) -> None:
        # the worker reads only the first `size` bytes of a task, which the file always
        # holds: a shrink never leaves it reading past the end of its (older) mapping
        if self.map is not None:
            self.map.close()
        os.ftruncate(self.fd, capacity)
        self.map = mmap.mmap(self.fd, capacity)

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        os.close(self.fd)


class SlotView:
    """A worker's end of a slot: mapped read-only, mapped again when the slot has grown."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.map: mmap.mmap | None = None

    def read(self, size: int) -> bytes:
        if self.map is None or len(self.map) < size:
            if self.map is not None:
                self.map.close()
            self.map = mmap.mmap(self.fd, os.fstat(self.fd).st_size, prot=mmap.PROT_READ)
        return self.map[:size]
