"""The baseline of ``bench/bridge_http.py``: a minimal FastAPI app doing what the bridge's
seed routes do with no network behind them — ``GET /manifest`` a static card, ``POST
/chat`` a canned reply — run by uvicorn. It also serves the benchmark's visitor manifest."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()

MANIFEST = {
    "name": "Zundamon",
    "icon": None,
    "greeting": "ボクはずんだもんなのだ！",
    "description": "ずんだ餅の妖精なのだ。",
}


@app.get("/manifest")
async def manifest() -> dict[str, Any]:
    return MANIFEST


@app.post("/chat")
async def chat(body: dict[str, Any]) -> dict[str, Any]:
    return {"reply": f"{body.get('message', '')[:20]}… なのだ。", "done": False}
