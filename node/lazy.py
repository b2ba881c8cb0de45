"""Public names a package loads on first use (PEP 562), so importing the package is free.

``node`` and ``node.testing`` re-export names from modules that pull in heavy libraries
(libp2p, quart, llama.cpp); a name's module is imported only when the name is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_getattr(
    package: str, where: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: name → the module in ``where`` that
    defines it; the value is cached in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


__all__ = ["lazy_getattr"]
