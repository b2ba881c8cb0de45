"""Souvenirs: MCP tools a character lends (DESIGN §8).

Plugins (this package's lower half): :func:`open_plugins` starts the MCP servers the
owner declared (character file ``"souvenirs"`` and ``<data_dir>/plugins/*.json``, see
:func:`all_souvenirs`), each in a sandbox (:mod:`node.souvenirs.sandbox`), and yields
:class:`Plugins`: what is lent (:class:`LentTool`) and calling it (:class:`ToolOutcome`,
or :class:`PluginError` with a ``reason``).
"""

from node.souvenirs.lend_policy import LentTool, ToolOutcome
from node.souvenirs.plugin_errors import PluginError, SandboxUnavailable
from node.souvenirs.plugin_files import all_souvenirs, read_plugin_files
from node.souvenirs.plugins import Backoff, Plugins, open_plugins
from node.souvenirs.sandbox import SandboxLimits, sandbox_problem

__all__ = [
    "Backoff",
    "LentTool",
    "PluginError",
    "Plugins",
    "SandboxLimits",
    "SandboxUnavailable",
    "ToolOutcome",
    "all_souvenirs",
    "open_plugins",
    "read_plugin_files",
    "sandbox_problem",
]
