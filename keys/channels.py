"""Gossipsub topics and stream protocols, and which envelope kinds each may carry.

The channel is part of what an envelope signs, so a message cannot be lifted from one
topic or protocol and replayed on another.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from keys.kinds import HARD_CAP, KIND_ACTION, KIND_CONTEXT, KIND_DIRECTORY, KIND_MCP, KIND_VISIT
from keys.kinds import SIZE_CAPS as _SIZE_CAPS

TOPIC_ACTIONS: Final = "roomverse/1/actions"
TOPIC_CONTEXTS: Final = "roomverse/1/contexts"
TOPIC_DIRECTORY: Final = "roomverse/1/directory"
PROTO_VISIT: Final = "/roomverse/visit/1.0.0"
PROTO_SYNC: Final = "/roomverse/sync/1.0.0"
PROTO_MCP: Final = "/roomverse/mcp/1.0.0"

TOPICS: Final = (TOPIC_ACTIONS, TOPIC_CONTEXTS, TOPIC_DIRECTORY)
PROTOCOLS: Final = (PROTO_VISIT, PROTO_SYNC, PROTO_MCP)

KINDS_BY_CHANNEL: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        TOPIC_ACTIONS: frozenset({KIND_ACTION}),
        TOPIC_CONTEXTS: frozenset({KIND_CONTEXT}),
        TOPIC_DIRECTORY: frozenset({KIND_DIRECTORY}),
        PROTO_SYNC: frozenset({KIND_DIRECTORY}),
        PROTO_VISIT: frozenset({KIND_VISIT}),
        PROTO_MCP: frozenset({KIND_MCP}),
    }
)


def kinds_allowed_on(channel: str) -> frozenset[str]:
    """Return the kinds ``channel`` carries; empty for a channel this code does not know."""
    return KINDS_BY_CHANNEL.get(channel, frozenset())


def channel_size_cap(channel: str) -> int:
    """Return the largest envelope any kind on ``channel`` may have (checked before decoding)."""
    return max((_SIZE_CAPS[kind] for kind in kinds_allowed_on(channel)), default=HARD_CAP)
