"""The lend policy (pure): the owner's list decides, annotations only narrow it; names
are safe, stable and unique; results become capped text."""

from __future__ import annotations

import pytest
from mcp import types

from node.config.settings import SouvenirSettings
from node.souvenirs.lend_policy import (
    MAX_DESCRIPTION_CHARS,
    is_read_only,
    lend_as,
    lent_tools,
    outcome_text,
    souvenir_names,
)

RO = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


@pytest.mark.parametrize(
    ("annotations", "read_only"),
    [
        (None, False),
        (types.ToolAnnotations(), False),
        (types.ToolAnnotations(read_only_hint=True), True),
        (RO, True),
        (types.ToolAnnotations(read_only_hint=True, destructive_hint=True), False),
        (types.ToolAnnotations(read_only_hint=True, open_world_hint=True), False),
        (types.ToolAnnotations(read_only_hint=False), False),
    ],
)
def test_read_only_needs_the_hint_and_no_contrary_one(
    annotations: types.ToolAnnotations | None, read_only: bool
) -> None:
    assert is_read_only(annotations) is read_only


def test_lend_only_read_only_ask_anything_unlisted_nothing() -> None:
    assert lend_as("lend", True) is False
    assert lend_as("lend", False) is None
    assert lend_as("ask", True) is True
    assert lend_as("ask", False) is True
    assert lend_as(None, True) is None


def test_names_are_safe_and_prefixed_only_on_a_clash() -> None:
    a = SouvenirSettings("a", ("x",), tools=(("status", "lend"), ("fs.read", "lend")))
    b = SouvenirSettings("b", ("y",), tools=(("status", "lend"), ("time", "ask")))
    names = souvenir_names([a, b])
    assert names == {
        ("a", "status"): "a_status",
        ("a", "fs.read"): "fs_read",
        ("b", "status"): "b_status",
        ("b", "time"): "time",
    }
    long = SouvenirSettings("c", ("z",), tools=(("t" * 128, "lend"),))
    assert len(souvenir_names([long])[("c", "t" * 128)]) == 64


def test_lent_tools_follow_the_list_and_cap_descriptions() -> None:
    plugin = SouvenirSettings(
        "p", ("x",), tools=(("look", "lend"), ("write", "lend"), ("commit", "ask"))
    )
    offered = [
        types.Tool(
            name="look", description="x" * 2000, input_schema={"type": "object"}, annotations=RO
        ),
        types.Tool(name="write", input_schema={"type": "object"}),
        types.Tool(name="commit", input_schema={"type": "object"}),
        types.Tool(name="unlisted", input_schema={"type": "object"}, annotations=RO),
    ]
    lent = lent_tools(plugin, offered, souvenir_names([plugin]))
    assert [(t.name, t.read_only, t.ask) for t in lent] == [
        ("look", True, False),
        ("commit", False, True),
    ]
    assert len(lent[0].description) == MAX_DESCRIPTION_CHARS


def test_results_join_text_else_structured_json() -> None:
    text = types.CallToolResult(
        content=[
            types.TextContent(type="text", text="a"),
            types.ImageContent(type="image", data="AA==", mime_type="image/png"),
            types.TextContent(type="text", text="b"),
        ]
    )
    assert outcome_text(text) == "a\n[image content omitted]\nb"
    structured = types.CallToolResult(content=[], structured_content={"b": 1, "a": "é"})
    assert outcome_text(structured) == '{"a": "é", "b": 1}'
