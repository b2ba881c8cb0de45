"""Test doubles shipped with RoomVerse, for its own tests and for anyone building on it.

- :class:`FakeOpenAI` / :func:`serve_fake_openai`: a scriptable OpenAI-compatible server
  over real HTTP (``python -m node.testing.fake_openai --port N``).
- :class:`MemoryNetwork` / :class:`MemoryHost`: in-memory hosts with the libp2p adapter's
  interface (:class:`node._libp2p.interface.Host`); one conformance suite runs against
  both (``tests/node/testing/test_host_conformance.py``).
- :class:`ManualClock`: monotonic seconds a test moves by hand.
- :class:`ScriptedVoice`: a visit voice that speaks numbered lines instead of an engine.

Names load on first use, so a test that needs the clock does not import quart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.lazy import lazy_getattr

if TYPE_CHECKING:
    from node.testing.clock import ManualClock
    from node.testing.fake_openai import FakeOpenAI, FakeReply, serve_fake_openai
    from node.testing.memory_host import MemoryHost, MemoryNetwork
    from node.testing.memory_stream import MemoryStream
    from node.testing.voice import ScriptedVoice

_WHERE: dict[str, str] = {
    "FakeOpenAI": "node.testing.fake_openai",
    "FakeReply": "node.testing.fake_openai",
    "serve_fake_openai": "node.testing.fake_openai",
    "ManualClock": "node.testing.clock",
    "MemoryHost": "node.testing.memory_host",
    "MemoryNetwork": "node.testing.memory_host",
    "MemoryStream": "node.testing.memory_stream",
    "ScriptedVoice": "node.testing.voice",
}

__all__ = [
    "FakeOpenAI",
    "FakeReply",
    "ManualClock",
    "MemoryHost",
    "MemoryNetwork",
    "MemoryStream",
    "ScriptedVoice",
    "serve_fake_openai",
]


__getattr__ = lazy_getattr("node.testing", _WHERE, globals())
