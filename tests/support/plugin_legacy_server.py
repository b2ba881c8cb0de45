"""A stdio MCP server of the handshake era (protocol 2025-06-18), without the SDK.

No server of the 1.x generation can be installed beside mcp 2.x here (they pin
``mcp<2``), so this one stands in for the strict kind: it knows only ``initialize``,
and any other request before it (such as 2.x's ``server/discover`` probe) makes it
print an error on stderr and exit, so the modern handshake fails outright and the
runner must start it again with ``mode="legacy"``. Each start is counted in
``$LEGACY_STARTS`` (a file in a writable path) when that is set.

Run: ``python plugin_legacy_server.py``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

PROTOCOL = "2025-06-18"
TOOLS = [
    {
        "name": "echo",
        "description": "Echoes its text.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    }
]


def answer(request_id: Any, result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n")
    sys.stdout.flush()


def main() -> int:
    if starts := os.environ.get("LEGACY_STARTS"):
        with open(starts, "a", encoding="utf-8") as handle:
            handle.write("start\n")
    initialized = False
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method = message.get("method")
        if "id" not in message:
            continue  # notifications (initialized, cancelled)
        if method == "initialize":
            initialized = True
            answer(
                message["id"],
                {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "legacy-echo", "version": "1.0"},
                },
            )
        elif not initialized:
            sys.stderr.write(f"validation error: unexpected {method!r} before initialize\n")
            return 2
        elif method == "tools/list":
            answer(message["id"], {"tools": TOOLS})
        elif method == "tools/call":
            text = str(message["params"].get("arguments", {}).get("text", ""))
            answer(message["id"], {"content": [{"type": "text", "text": text}], "isError": False})
        elif method == "ping":
            answer(message["id"], {})
        else:
            error = {"code": -32601, "message": f"unknown method {method}"}
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "error": error}))
            sys.stdout.write("\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
