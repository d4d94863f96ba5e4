"""Faults injected on purpose, for tests only: a body naming a fault makes its processing fail so.

Off unless the fetch's environment has ``GBIFXDL_TEST_FAULTS=1`` (read once per fetch,
never per image). With it, the tests show with real image processes that an exception,
an exit, a kill or a segfault while processing one image gives that image an outcome and
the fetch goes on.

A fault body is ``GBIFXDL-TEST-FAULT <what> [<argument>]``:

- ``raise NAME``: raise ``NAME`` (``KeyError``, ``MemoryError``, ``struct.error``, ...);
- ``exit``: the process ends at once (``os._exit``), as a native abort would;
- ``kill``: the process sends itself SIGKILL, as the out-of-memory killer would;
- ``segv``: the process reads address 0 (a real segmentation fault, as in a native decoder);
- ``sleep SECONDS``: processing takes that long, then the body is refused as not an image.
"""

from __future__ import annotations

import builtins
import os
import signal
import struct
import time

ENV = "GBIFXDL_TEST_FAULTS"
PREFIX = b"GBIFXDL-TEST-FAULT "


def enabled() -> bool:
    """Return whether fault bodies are acted on (``GBIFXDL_TEST_FAULTS=1``)."""
    return os.environ.get(ENV) == "1"


def body(what: str, argument: str = "") -> bytes:
    """Return the body that injects ``what`` (see the module's text)."""
    return PREFIX + f"{what} {argument}".strip().encode()


def inject(data: bytes) -> None:
    """Fail as ``data`` asks when it is a fault body; else do nothing."""
    if not data.startswith(PREFIX):
        return
    what, _, argument = data[len(PREFIX):].decode("ascii", "replace").partition(" ")
    if what == "raise":
        exc_type = struct.error if argument == "struct.error" else getattr(builtins, argument, RuntimeError)
        raise exc_type(f"injected {argument} (test fault)")
    if what == "exit":
        os._exit(3)
    if what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "segv":
        import ctypes

        ctypes.string_at(0)
    if what == "sleep":
        time.sleep(float(argument or 1))
