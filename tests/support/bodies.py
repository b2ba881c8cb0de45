"""Body validators for tests: ``keys``' own, with some kinds taking any map."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from keys import BODIES, Bodies


def free_form(*kinds: str) -> Bodies:
    """``keys.BODIES`` with ``kinds`` carrying any map: pass it as ``bodies=`` to seal
    envelopes a schema refuses, or to test ``keys`` without the owners of other kinds."""
    return MappingProxyType({**BODIES, **dict.fromkeys(kinds, _any_map)})


def _any_map(body: Mapping[str, Any]) -> None:
    """Accept any map."""
