"""Showing other people's text on the owner's terminal."""

from __future__ import annotations


def printable(text: str) -> str:
    """Names, cards and speech come from other people (and their LLMs): never let them
    drive the terminal. Control characters become U+FFFD."""
    return "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
