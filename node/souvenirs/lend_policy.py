"""What is lent: the owner's list decides, the server's annotations only narrow it.

Annotations are hints from a third party (the MCP SDK itself says never to trust them
from an untrusted server), and absent hints mean "not read-only, destructive,
open-world". So a tool listed ``lend`` is lent only when the server marks it read-only,
not destructive and not open-world; anything else is lent only when the owner listed it
``ask`` (every call then waits for the owner's approval). ``ask`` on a read-only tool
also means ask. Pure code: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp import types

from node.config.settings import SouvenirSettings

MAX_DESCRIPTION_CHARS = 500
"""Tool descriptions are third-party text shown to an LLM: capped."""
MAX_NAME_CHARS = 64
"""OpenAI function names: ``[A-Za-z0-9_-]{1,64}``."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class LentTool:
    """One tool a character lends right now."""

    name: str
    """Souvenir name, unique per character, ``[A-Za-z0-9_-]{1,64}``: the tool name made
    safe, prefixed ``<plugin>_`` only when two plugins list the same one."""
    plugin: str
    tool: str
    """The server's MCP tool name."""
    description: str
    input_schema: dict[str, Any]
    read_only: bool
    """The server marks it read-only and not destructive/open-world (a hint, see above)."""
    ask: bool
    """Every call needs the owner's approval."""


@dataclass(frozen=True)
class ToolOutcome:
    """A tool call's result as text: text contents joined, else structured content as
    JSON. ``size`` is the text's length in UTF-8 bytes."""

    text: str
    is_error: bool
    size: int


def is_read_only(annotations: types.ToolAnnotations | None) -> bool:
    if annotations is None:
        return False
    return (
        annotations.read_only_hint is True
        and annotations.destructive_hint is not True
        and annotations.open_world_hint is not True
    )


def lend_as(mode: str | None, read_only: bool) -> bool | None:
    """None: not lent; otherwise the ``ask`` flag of the lent tool."""
    if mode == "ask":
        return True
    if mode == "lend" and read_only:
        return False
    return None


def souvenir_names(plugins: Sequence[SouvenirSettings]) -> dict[tuple[str, str], str]:
    """(plugin, tool) → souvenir name for every listed tool, decided from the settings
    alone so a name does not change when another plugin starts or stops."""
    safe = {
        (plugin.name, tool): _UNSAFE.sub("_", tool)[:MAX_NAME_CHARS]
        for plugin in plugins
        for tool, _ in plugin.tools
    }
    counts: dict[str, int] = {}
    for name in safe.values():
        counts[name] = counts.get(name, 0) + 1
    names: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for (plugin_name, tool), name in safe.items():
        if counts[name] > 1:
            name = f"{plugin_name}_{name}"[:MAX_NAME_CHARS]
        base, n = name, 2
        while name in taken:
            suffix = f"_{n}"
            name = base[: MAX_NAME_CHARS - len(suffix)] + suffix
            n += 1
        taken.add(name)
        names[(plugin_name, tool)] = name
    return names


def lent_tools(
    plugin: SouvenirSettings, offered: Iterable[types.Tool], names: Mapping[tuple[str, str], str]
) -> tuple[LentTool, ...]:
    """The tools of ``plugin`` that are lent, given what its server offers."""
    modes = dict(plugin.tools)
    lent = []
    for tool in offered:
        read_only = is_read_only(tool.annotations)
        ask = lend_as(modes.get(tool.name), read_only)
        if ask is None:
            continue
        lent.append(
            LentTool(
                name=names[(plugin.name, tool.name)],
                plugin=plugin.name,
                tool=tool.name,
                description=cap_text(tool.description or tool.title or "", MAX_DESCRIPTION_CHARS),
                input_schema=dict(tool.input_schema),
                read_only=read_only,
                ask=ask,
            )
        )
    return tuple(lent)


def cap_text(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outcome_text(result: types.CallToolResult) -> str:
    parts = []
    for item in result.content:
        if isinstance(item, types.TextContent):
            parts.append(item.text)
        else:
            parts.append(f"[{item.type} content omitted]")
    texts = any(isinstance(item, types.TextContent) for item in result.content)
    if not texts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False, sort_keys=True)]
    return "\n".join(parts)


__all__ = [
    "MAX_DESCRIPTION_CHARS",
    "LentTool",
    "ToolOutcome",
    "cap_text",
    "is_read_only",
    "lend_as",
    "lent_tools",
    "outcome_text",
    "souvenir_names",
]
