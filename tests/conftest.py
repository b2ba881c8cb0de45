"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keys import register_body_validator
from tests.procs import NodeProcess


@pytest.fixture(scope="module")
def free_form_directory_bodies() -> Iterator[None]:
    """For tests that use ``directory`` as a kind with free-form bodies: importing
    registry_crdt (as other modules in the same process do) installs its schema."""
    previous = register_body_validator("directory", lambda body: None)
    yield
    register_body_validator("directory", previous)


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """Node processes a test starts (see ``tests.procs.start_character``); stopped after."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()
