"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keys import register_body_validator


@pytest.fixture(scope="module")
def free_form_directory_bodies() -> Iterator[None]:
    """For tests that use ``directory`` as a kind with free-form bodies: importing
    registry_crdt (as other modules in the same process do) installs its schema."""
    previous = register_body_validator("directory", lambda body: None)
    yield
    register_body_validator("directory", previous)
