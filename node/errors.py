"""The node's own local errors, under the project's one tree (:mod:`keys.errors`)::

    RoomverseError
    └── LocalError
        ├── ControlError     the local control socket refused or failed a command
        └── PublishError     a message could not be handed to the network

Engines add theirs in :mod:`node.engine.errors`; remote garbage is always a
:class:`keys.errors.RemoteError`.
"""

from __future__ import annotations

from keys.errors import LocalError


class ControlError(LocalError):
    """The running node's control socket could not carry out a command."""


class PublishError(LocalError):
    """A message could not be handed to the network (never silently dropped)."""


__all__ = ["ControlError", "PublishError"]
