"""Why a plugin or one of its tools could not be used, as a stable ``reason`` code::

    LocalError
    └── PluginError          reason: not_lent, not_running, timeout, too_large, crashed,
        │                    failed, not_found, bad_path
        └── SandboxUnavailable   reason: no_sandbox (not root, or bwrap/setpriv/prlimit
                                 missing) and the owner did not allow ``unsandboxed``

Callers (the lending service, the dashboard) show the reason; they never see the
plugin's own exception text beyond a short, scrubbed message.
"""

from __future__ import annotations

from keys.errors import LocalError


class PluginError(LocalError):
    """A plugin could not start, or a call to one of its tools did not give a result."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SandboxUnavailable(PluginError):
    """The sandbox cannot be built here and the plugin's settings do not allow running
    it unsandboxed: the plugin is refused (it is not started at all)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="no_sandbox")


__all__ = ["PluginError", "SandboxUnavailable"]
