"""``/api/directory?search=``: everyone the node knows of, present first, as
:mod:`node.directory.listing` shows them, with the replica's summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from node.dashboard.api import ApiError

if TYPE_CHECKING:
    from node.character import CharacterNode

MAX_SEARCH_CHARS = 200


def register_directory_routes(app: QuartTrio, node: CharacterNode) -> None:
    @app.get("/api/directory")
    async def directory() -> Response:
        search = request.args.get("search") or None
        if search is not None and len(search) > MAX_SEARCH_CHARS:
            raise ApiError(400, f"search at most {MAX_SEARCH_CHARS} characters")
        return jsonify({"entries": node.directory.listing(search), **node.directory.summary()})
