"""Envelope kinds and the size cap of each, in bytes of the whole wire envelope."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

KIND_ACTION: Final = "action"
KIND_CONTEXT: Final = "context"
KIND_DIRECTORY: Final = "directory"
KIND_VISIT: Final = "visit"
KIND_MCP: Final = "mcp"

KINDS: Final = frozenset({KIND_ACTION, KIND_CONTEXT, KIND_DIRECTORY, KIND_VISIT, KIND_MCP})

KIB: Final = 1024
SIZE_CAPS: Final[Mapping[str, int]] = MappingProxyType(
    {
        KIND_ACTION: 16 * KIB,
        KIND_CONTEXT: 256 * KIB,
        KIND_DIRECTORY: 64 * KIB,
        KIND_VISIT: 32 * KIB,
        KIND_MCP: 64 * KIB,
    }
)
# Checked before any decoding, whatever the channel claims.
HARD_CAP: Final = 512 * KIB
