"""A legacy participant written the way the seed ("madoguchi") describes it: a FastAPI
app run by uvicorn in its own process, with ``GET /manifest``, ``POST /visit`` and
``POST /chat``, that registers its URL at a registry with ``requests`` and visits others
by POSTing to their URLs. It knows nothing of libp2p.

Its owner drives it through ``/_owner/...`` (not part of the seed protocol): register at
the bridge, visit someone listed in the bridge's directory, and read back what it said
and heard. Configured by environment: ``SEED_NAME``, ``SEED_BRIDGE``, ``SEED_TOKEN``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import requests
from fastapi import FastAPI, HTTPException, Request

NAME = os.environ.get("SEED_NAME", "Zundamon")
BRIDGE = os.environ.get("SEED_BRIDGE", "http://127.0.0.1:8000")
TOKEN = os.environ.get("SEED_TOKEN", "")
DONE_AFTER = 3

app = FastAPI()
hosted: dict[str, list[tuple[str, str]]] = {}
"""conversation id → (speaker, text) of every visit we hosted."""
made: list[dict[str, Any]] = []
"""Every visit we made: host, conversation id, (speaker, text) lines."""


def _headers() -> dict[str, str]:
    return {"X-Roomverse-Token": TOKEN}


@app.get("/manifest")
def manifest() -> dict[str, Any]:
    return {
        "name": NAME,
        "description": "ずんだ餅の妖精なのだ。",
        "greeting": "ボクはずんだもんなのだ！",
        "icon": "https://example.invalid/zundamon.png",
    }


@app.post("/visit")
def visit(body: dict[str, Any]) -> dict[str, Any]:
    conversation = uuid.uuid4().hex
    visitor = body["visitor"]["name"]
    reply = f"{NAME}: いらっしゃいなのだ、{visitor}！ (1)"
    hosted[conversation] = [(visitor, body["message"]), (NAME, reply)]
    return {"conversation_id": conversation, "reply": reply}


@app.post("/chat")
def chat(body: dict[str, Any]) -> dict[str, Any]:
    lines = hosted.get(body["conversation_id"])
    if lines is None:
        raise HTTPException(404, "no such conversation")
    count = sum(1 for speaker, _ in lines if speaker == NAME) + 1
    reply = f"{NAME}: そうなのだ。 ({count})"
    lines += [(body.get("partner", "?"), body["message"]), (NAME, reply)]
    return {"reply": reply, "done": count >= DONE_AFTER}


@app.post("/_owner/register")
def register(request: Request) -> dict[str, Any]:
    own = str(request.base_url).rstrip("/")
    # The seed's own registration call.
    answer = requests.post(
        f"{BRIDGE}/register", json={"name": NAME, "url": own}, headers=_headers(), timeout=30
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


@app.post("/_owner/visit")
def visit_someone(body: dict[str, Any], request: Request) -> dict[str, Any]:
    own = str(request.base_url).rstrip("/")
    listed = requests.get(f"{BRIDGE}/directory", headers=_headers(), timeout=30).json()
    (host,) = [row for row in listed["online"] if row["name"] == body["host"]]
    lines: list[tuple[str, str]] = []
    first, *rest = body["lines"]
    answer = requests.post(
        f"{host['url']}/visit",
        json={"visitor": {"name": NAME, "url": own}, "message": first},
        headers=_headers(),
        timeout=180,
    ).json()
    lines += [(NAME, first), (host["name"], answer["reply"])]
    conversation, done = answer["conversation_id"], answer["done"]
    for text in rest:
        if done:
            break
        answer = requests.post(
            f"{host['url']}/chat",
            json={"conversation_id": conversation, "message": text, "partner": NAME},
            headers=_headers(),
            timeout=180,
        ).json()
        lines += [(NAME, text), (host["name"], answer["reply"])]
        done = answer["done"]
    record = {"host": host, "conversation_id": conversation, "lines": lines, "done": done}
    made.append(record)
    return record


@app.get("/_owner/log")
def log() -> dict[str, Any]:
    return {"hosted": hosted, "made": made}
