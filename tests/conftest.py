"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import NodeProcess


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """Node processes a test starts (see ``tests.procs.start_character``); stopped after."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()
