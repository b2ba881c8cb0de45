"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from keys import register_body_validator
from tests.support.procs import NodeProcess


@contextmanager
def free_form(*kinds: str) -> Iterator[None]:
    """Let ``kinds`` carry any map for the block (to build envelopes a schema refuses)."""
    previous = {kind: register_body_validator(kind, lambda body: None) for kind in kinds}
    try:
        yield
    finally:
        for kind, validator in previous.items():
            register_body_validator(kind, validator)


@pytest.fixture(scope="module")
def free_form_bodies() -> Iterator[None]:
    """For tests that use ``directory`` and ``visit`` as kinds with free-form bodies:
    importing registry_crdt or node.visits (as other modules in the same process do)
    installs their schemas."""
    with free_form("directory", "visit"):
        yield


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """Node processes a test starts (see ``tests.procs.start_character``); stopped after."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()
