"""Lazy exports: a package names its public objects, imported on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection
from typing import Any


def lazy_getattr(
    package: str, exports: dict[str, str], submodules: Collection[str] = ()
) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``exports[name]`` and caches the object.

    A name in ``submodules`` gives the submodule ``package.name``, imported on first use
    (the import system binds it on the package, as any ``import package.name`` does).
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
